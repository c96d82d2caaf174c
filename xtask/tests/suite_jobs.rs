//! `cargo xtask suite --jobs N`: runs as child processes give the same result files as the same
//! runs one after the other in one process, skip what is complete, and report a failed child.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn suite(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .args([
            "suite",
            "--suite",
            "smoke",
            "--methods",
            "sequential,fixed-replay",
            "--seeds",
            "2",
            "--device",
            "cpu",
        ])
        .args([
            "--log-level",
            "warn",
            "--set",
            "epochs=1",
            "--set",
            "eval_limit=8",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn two_jobs_write_the_same_matrices_as_one_process_and_skip_complete_runs() {
    let serial = tempfile::tempdir().unwrap();
    let parallel = tempfile::tempdir().unwrap();
    let out = suite(serial.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = suite(parallel.path(), &["--jobs", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for run in [
        "sequential/0",
        "sequential/1",
        "fixed-replay/0",
        "fixed-replay/1",
    ] {
        let (a, b) = (
            serial.path().join("smoke").join(run),
            parallel.path().join("smoke").join(run),
        );
        assert_eq!(
            json(&a.join("matrix.json")),
            json(&b.join("matrix.json")),
            "{run}"
        );
        assert_eq!(
            json(&a.join("metrics.json"))["cost"]["replayed_samples"],
            json(&b.join("metrics.json"))["cost"]["replayed_samples"]
        );
        assert!(
            b.join("console.log").exists(),
            "{run}: the child's console is kept"
        );
        assert!(
            stderr.contains(&format!("{}: AA", b.display())),
            "{run} not reported: {stderr}"
        );
    }
    let index = std::fs::read_to_string(parallel.path().join("smoke/index.jsonl")).unwrap();
    assert_eq!(index.lines().count(), 4, "one index row per run: {index}");
    // Asked again, every run is complete and nothing is started.
    let again = suite(parallel.path(), &["--jobs", "2"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert_eq!(stderr.matches("complete, skipped").count(), 4, "{stderr}");
    assert!(!stderr.contains("=="), "{stderr}");
}

#[test]
fn a_failing_child_fails_the_command_and_names_its_run() {
    let out_dir = tempfile::tempdir().unwrap();
    // A started run (run.json present) without --resume is refused by the engine.
    let run = out_dir.path().join("smoke/sequential/0");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("run.json"), r#"{"status": "running"}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .args([
            "suite",
            "--suite",
            "smoke",
            "--methods",
            "sequential",
            "--seeds",
            "1",
            "--jobs",
            "2",
            "--log-level",
            "warn",
        ])
        .args(["--set", "epochs=1", "--out"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 run(s) failed") && stderr.contains("sequential/0"),
        "{stderr}"
    );
    let console = std::fs::read_to_string(run.join("console.log")).unwrap();
    assert!(
        console.contains("--resume") || console.contains("exists"),
        "the child's error is in its console: {console}"
    );
}
