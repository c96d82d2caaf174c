//! `cargo xtask suite` killed with SIGKILL in mid-training and resumed with `--resume` ends
//! with the same accuracy matrix as an uninterrupted run, bit for bit on the CPU, and its
//! result files and checkpoints are never corrupt.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn suite_cmd(out: &Path, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["suite", "--suite", "smoke", "--methods", "mssr", "--seeds", "1", "--device", "cpu", "--log-level", "warn"])
        .args(["--set", "epochs=2", "--set", "checkpoint_every=5", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        c.arg("--resume");
    }
    c
}

fn steps_logged(run: &Path) -> usize {
    std::fs::read_to_string(run.join("log.jsonl")).map_or(0, |t| t.lines().filter(|l| l.contains("\"type\":\"step\"")).count())
}

fn rows(run: &Path) -> serde_json::Value {
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("matrix.json")).unwrap()).unwrap();
    m["rows"].clone()
}

#[test]
fn sigkill_in_mid_training_then_resume_gives_the_uninterrupted_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    assert!(suite_cmd(&whole, false).status().unwrap().success());
    let expected = rows(&whole.join("smoke/mssr/0"));

    // Kill points: early in task 0, mid-run, late in the last task (64 steps in all).
    for (i, kill_after) in [3usize, 29, 58].into_iter().enumerate() {
        let out = dir.path().join(format!("killed-{i}"));
        let run = out.join("smoke/mssr/0");
        let mut child = suite_cmd(&out, false).spawn().unwrap();
        let start = Instant::now();
        while steps_logged(&run) < kill_after && start.elapsed() < Duration::from_secs(300) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Whatever exists is whole: every JSON file parses.
        for f in ["run.json", "matrix.json"] {
            if let Ok(t) = std::fs::read_to_string(run.join(f)) {
                serde_json::from_str::<serde_json::Value>(&t).unwrap_or_else(|e| panic!("{f} corrupt after SIGKILL: {e}"));
            }
        }
        let status = suite_cmd(&out, true).status().unwrap();
        assert!(status.success(), "resume after a kill at step {kill_after} failed");
        assert_eq!(rows(&run), expected, "kill at step {kill_after}: the resumed matrix differs");
        assert_eq!(steps_logged(&run), 64, "kill at step {kill_after}: every step logged exactly once");
    }
}
