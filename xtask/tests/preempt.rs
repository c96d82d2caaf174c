//! Preemption of `cargo xtask suite` by signals, as Slurm delivers them: the `--signal` signal
//! (here USR1) and SIGTERM each make the run checkpoint at its next step and exit with status
//! 75; `--resume` then ends with the matrix and step log of an uninterrupted run, bit for bit.
//! With `--jobs 2` a SIGTERM to the parent alone stops both children the same way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn suite(out: &Path, methods: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.current_dir(root())
        .args([
            "suite",
            "--suite",
            "smoke",
            "--methods",
            methods,
            "--seeds",
            "1",
        ])
        .args(["--device", "cpu", "--log-level", "warn", "--no-tensorboard"])
        .args(["--set", "epochs=2", "--set", "checkpoint_every=5", "--out"])
        .arg(out)
        .args(extra)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn steps_logged(run: &Path) -> usize {
    std::fs::read_to_string(run.join("log.jsonl")).map_or(0, |t| {
        t.lines()
            .filter(|l| l.contains("\"type\":\"step\""))
            .count()
    })
}

/// Waits until `run` has logged at least `n` steps, then sends `signal` to `child`.
fn signal_after(child: &Child, run: &Path, n: usize, signal: &str) {
    let t = Instant::now();
    while steps_logged(run) < n {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "{} never logged {n} steps",
            run.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn step_lines(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"type\":\"step\"") || l.contains("\"type\":\"replay\""))
        .map(String::from)
        .collect()
}

#[test]
fn usr1_and_sigterm_checkpoint_exit_75_and_the_resumed_run_equals_an_uninterrupted_one() {
    let whole = tempfile::tempdir().unwrap();
    let out = suite(whole.path(), "mssr", &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped = tempfile::tempdir().unwrap();
    let run = stopped.path().join("smoke/mssr/0");
    let mut stops = 0;
    // USR1 (named by --signal, as the Slurm script passes it) mid-way through task 0, then
    // SIGTERM in task 2 of the resumed process; the third process finishes.
    for (resume, signal, at) in [
        (false, Some("USR1"), 9),
        (true, Some("TERM"), 40),
        (true, None, 0),
    ] {
        let mut args = vec!["--signal", "USR1"];
        if resume {
            args.push("--resume");
        }
        let child = suite(stopped.path(), "mssr", &args).spawn().unwrap();
        let Some(signal) = signal else {
            let (code, err) = finish(child);
            assert_eq!(code, Some(0), "{err}");
            break;
        };
        signal_after(&child, &run, at, signal);
        let (code, err) = finish(child);
        assert_eq!(code, Some(75), "{signal}: {err}");
        assert!(
            err.contains("stopped: interrupted by a signal at step"),
            "{err}"
        );
        assert_eq!(json(&run.join("run.json"))["status"], "running");
        stops += 1;
    }
    assert_eq!(stops, 2);
    let rows = |d: &Path| json(&d.join("smoke/mssr/0/matrix.json"))["rows"].clone();
    assert_eq!(rows(whole.path()), rows(stopped.path()));
    assert_eq!(
        step_lines(&whole.path().join("smoke/mssr/0")),
        step_lines(&run)
    );
}

#[test]
fn sigterm_to_a_jobs_parent_stops_every_child_at_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let child = suite(dir.path(), "sequential,mssr", &["--jobs", "2"])
        .spawn()
        .unwrap();
    // Both children have started once the slower one has logged steps.
    signal_after(&child, &dir.path().join("smoke/mssr/0"), 6, "TERM");
    let (code, err) = finish(child);
    assert_eq!(code, Some(75), "{err}");
    for m in ["sequential", "mssr"] {
        let run = dir.path().join("smoke").join(m).join("0");
        let console = std::fs::read_to_string(run.join("console.log")).unwrap();
        assert!(
            console.contains("stopped: interrupted by a signal at step"),
            "{m}: {console}"
        );
        assert_eq!(json(&run.join("run.json"))["status"], "running", "{m}");
    }
    let out = suite(dir.path(), "sequential,mssr", &["--jobs", "2", "--resume"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for m in ["sequential", "mssr"] {
        assert_eq!(
            json(&dir.path().join("smoke").join(m).join("0/run.json"))["status"],
            "complete"
        );
    }
}
