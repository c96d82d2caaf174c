//! `cargo xtask suite` killed with SIGKILL anywhere and resumed with `--resume` ends with the
//! same accuracy matrix as an uninterrupted run, bit for bit on the CPU, with every step logged
//! once; after every kill every JSON file parses and `ckpt/LATEST` names a complete checkpoint.
//! A full disk (writes failing with `EFBIG` under `ulimit -f`, and a really full tmpfs giving
//! `ENOSPC` at whichever write comes first) is a clear error naming the file, leaves the last
//! checkpoint as it was, and the run resumes from it once there is room.
//!
//! Kill points are drawn with a fixed seed: after a number of logged steps, after a wall-clock
//! delay, and at named places through the engine's test hook (`CONTINUAL_TEST_PAUSE`, see
//! `continual::test_pause`): inside a training step, inside an evaluation, in the middle of a
//! checkpoint write and between a checkpoint's rename and its publication. Kills chain: each
//! resumed process is killed again until the run finishes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Two epochs of MSSR (64 steps, 5 evaluations) with a checkpoint every 2 steps, so writes are
/// frequent and buffer, memory state and scheduler RNG cross every resume.
const SETTINGS: [&str; 2] = ["epochs=2", "checkpoint_every=2"];
const STEPS: usize = 64;
const RUN: &str = "smoke/mssr/0";
/// Kills survived by the random-kill test, and at least this many of each kind.
const KILLS: usize = 24;
const PER_KIND: usize = 3;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn suite_args(out: &Path, resume: bool) -> Vec<String> {
    let mut a: Vec<String> = [
        "suite",
        "--suite",
        "smoke",
        "--methods",
        "mssr",
        "--seeds",
        "1",
        "--device",
        "cpu",
        "--log-level",
        "warn",
    ]
    .map(String::from)
    .to_vec();
    for s in SETTINGS {
        a.extend(["--set".into(), s.into()]);
    }
    a.extend(["--out".into(), out.display().to_string()]);
    if resume {
        a.push("--resume".into());
    }
    a
}

fn suite_cmd(out: &Path, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.current_dir(root())
        .args(suite_args(out, resume))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// The uninterrupted run's matrix rows, computed once for all tests of this file.
fn expected_rows() -> &'static serde_json::Value {
    static ROWS: OnceLock<serde_json::Value> = OnceLock::new();
    ROWS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let out = suite_cmd(dir.path(), false).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("uninterrupted run: {:.1} s", t.elapsed().as_secs_f64());
        rows(&dir.path().join(RUN))
    })
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is corrupt: {e}", path.display()))
}

fn rows(run: &Path) -> serde_json::Value {
    read_json(&run.join("matrix.json"))["rows"].clone()
}

fn steps_logged(run: &Path) -> usize {
    std::fs::read_to_string(run.join("log.jsonl")).map_or(0, |t| {
        t.lines()
            .filter(|l| l.contains("\"type\":\"step\""))
            .count()
    })
}

/// Fixed-seed xorshift64: the kill points are the same on every run of the test.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Once the log holds this many more step lines than before the process started.
    Steps(usize),
    /// This long after the process started (startup, restore, training or evaluation).
    Wall(Duration),
    /// The `n`-th time the process reaches the named hook point (it then sleeps until killed).
    Pause(&'static str, u64),
}

impl Kill {
    const KINDS: [&'static str; 6] = [
        "steps",
        "step",
        "eval",
        "checkpoint-write",
        "wall",
        "checkpoint-publish",
    ];

    fn kind(&self) -> &'static str {
        match self {
            Kill::Steps(_) => "steps",
            Kill::Wall(_) => "wall",
            Kill::Pause(p, _) => p,
        }
    }

    /// Attempt `i` cycles through the kinds; the amount is random.
    fn draw(i: usize, rng: &mut XorShift) -> Kill {
        match Self::KINDS[i % Self::KINDS.len()] {
            "steps" => Kill::Steps(1 + rng.below(16) as usize),
            "wall" => Kill::Wall(Duration::from_millis(100 + rng.below(900))),
            "step" => Kill::Pause("step", 1 + rng.below(16)),
            "eval" => Kill::Pause("eval", 1 + rng.below(12)),
            "checkpoint-write" => Kill::Pause("checkpoint-write", 1 + rng.below(8)),
            "checkpoint-publish" => Kill::Pause("checkpoint-publish", 1 + rng.below(8)),
            _ => unreachable!(),
        }
    }
}

enum Outcome {
    Killed,
    Exited(ExitStatus, String),
}

/// Runs one process of the suite (resuming if asked) until `kill` fires (then SIGKILL) or the
/// process exits by itself.
fn run_until(mut cmd: Command, run: &Path, kill: Option<Kill>) -> Outcome {
    if let Some(Kill::Pause(point, n)) = kill {
        cmd.env("CONTINUAL_TEST_PAUSE", format!("{point}:{n}"));
    }
    let before = steps_logged(run);
    let mut child = cmd.spawn().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let (paused_tx, paused) = mpsc::channel();
    let reader = {
        let pipe = child.stderr.take().unwrap();
        let stderr = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.starts_with("CONTINUAL_TEST_PAUSE: paused at") {
                    let _ = paused_tx.send(());
                }
                let mut s = stderr.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        })
    };
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            reader.join().unwrap();
            let text = stderr.lock().unwrap().clone();
            return Outcome::Exited(status, text);
        }
        let fire = match kill {
            None => false,
            Some(Kill::Steps(n)) => steps_logged(run) >= before + n,
            Some(Kill::Wall(d)) => start.elapsed() >= d,
            Some(Kill::Pause(..)) => paused.try_recv().is_ok(),
        };
        if fire {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            reader.join().unwrap();
            return Outcome::Killed;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no progress: {}",
            stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A safetensors file is whole: its header parses and its size is header + data.
fn check_safetensors(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() >= 8, "{} is truncated", path.display());
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert!(bytes.len() >= 8 + n, "{} is truncated", path.display());
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n])
        .unwrap_or_else(|e| panic!("{}: corrupt header: {e}", path.display()));
    let end = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v["data_offsets"][1].as_u64().unwrap() as usize)
        .max()
        .unwrap_or(0);
    assert_eq!(
        bytes.len(),
        8 + n + end,
        "{} is truncated or padded",
        path.display()
    );
}

/// Every result file parses, every complete log line parses, and `ckpt/LATEST` (once it has
/// existed) names a complete checkpoint. Returns the name it holds.
fn check_files(run: &Path, published: &mut bool) -> Option<String> {
    for f in ["run.json", "matrix.json", "metrics.json"] {
        if run.join(f).exists() {
            read_json(&run.join(f));
        }
    }
    let index = run.join("../../index.jsonl");
    for line in std::fs::read_to_string(&index).unwrap_or_default().lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("index.jsonl line corrupt: {e}: {line}"));
    }
    // A SIGKILL may cut the last line short (resume cuts it off); every whole line parses.
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap_or_default();
    for line in log.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("log.jsonl line corrupt: {e}: {line}"));
    }
    let ckpt = run.join("ckpt");
    let name = match std::fs::read_to_string(ckpt.join("LATEST")) {
        Ok(name) => name.trim().to_string(),
        Err(_) => {
            assert!(!*published, "ckpt/LATEST disappeared");
            return None;
        }
    };
    *published = true;
    let dir = ckpt.join(&name);
    let state = read_json(&dir.join("state.json"));
    let step: u64 = name
        .strip_prefix("step-")
        .and_then(|r| r.split('-').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        state["global_step"], step,
        "{name}: state.json of another step"
    );
    read_json(&dir.join("trainer/trainer.json"));
    assert!(
        std::fs::metadata(dir.join("trainer/optimizer.bpk"))
            .unwrap()
            .len()
            > 0,
        "{name}: empty optimizer state"
    );
    check_safetensors(&dir.join("trainable.safetensors"));
    Some(name)
}

/// A finished run: the uninterrupted matrix, every step logged once in order, status complete.
fn check_finished(run: &Path, what: &str) {
    assert_eq!(
        &rows(run),
        expected_rows(),
        "{what}: the resumed matrix differs"
    );
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    assert!(log.ends_with('\n'));
    let steps: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("{what}: log line corrupt: {e}: {l}"))
        })
        .filter(|v| v["type"] == "step")
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        steps,
        (0..STEPS as u64).collect::<Vec<_>>(),
        "{what}: every step logged exactly once"
    );
    assert_eq!(read_json(&run.join("run.json"))["status"], "complete");
    read_json(&run.join("metrics.json"));
    check_files(run, &mut true);
    // Temporaries of atomic writes cut short by a kill were removed when the next process started.
    let stray: Vec<PathBuf> = snapshot(run)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            backbone::weights::atomic_temporary_pid(&p.file_name().unwrap().to_string_lossy())
                .is_some()
        })
        .collect();
    assert!(stray.is_empty(), "{what}: temporaries left: {stray:?}");
}

#[test]
fn sigkill_at_random_points_then_resume_gives_the_uninterrupted_matrix() {
    let expected = expected_rows();
    assert_eq!(expected.as_array().unwrap().len(), 5);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut rng = XorShift(0x5EED_2026_0909_0003);
    let mut survived: Vec<String> = Vec::new();
    let mut per_kind = [0usize; Kill::KINDS.len()];
    let mut attempts = 0;
    let enough =
        |per_kind: &[usize], n: usize| n >= KILLS && per_kind.iter().all(|&k| k >= PER_KIND);
    let mut chain = 0;
    while !enough(&per_kind, survived.len()) {
        assert!(
            chain < 8 && started.elapsed() < Duration::from_secs(240),
            "too slow: {} kills in {chain} chains",
            survived.len()
        );
        let out = dir.path().join(format!("chain-{chain}"));
        let run = out.join(RUN);
        let (mut resume, mut published) = (false, false);
        loop {
            let kill = (!enough(&per_kind, survived.len())).then(|| {
                attempts += 1;
                Kill::draw(attempts - 1, &mut rng)
            });
            match run_until(suite_cmd(&out, resume), &run, kill) {
                Outcome::Killed => {
                    let kill = kill.expect("only a drawn kill kills");
                    let latest = check_files(&run, &mut published);
                    let what = format!(
                        "chain {chain}: {kill:?} with {} steps logged, LATEST {latest:?}",
                        steps_logged(&run)
                    );
                    eprintln!("killed: {what}");
                    per_kind[Kill::KINDS.iter().position(|k| *k == kill.kind()).unwrap()] += 1;
                    survived.push(what);
                    resume = true;
                }
                Outcome::Exited(status, stderr) => {
                    assert!(
                        status.success(),
                        "chain {chain}: the run failed after {} kills:\n{stderr}",
                        survived.len()
                    );
                    check_finished(&run, &format!("chain {chain}"));
                    break;
                }
            }
        }
        chain += 1;
    }
    eprintln!(
        "{} kills survived in {chain} runs ({attempts} drawn; per kind {:?}) in {:.1} s",
        survived.len(),
        Kill::KINDS.iter().zip(per_kind).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
}

/// Every file under `dir` with its bytes, by relative path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_last_checkpoint_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("disk");
    let run = out.join(RUN);
    // A first process leaves checkpoints (every 2 steps) and is killed in step 11.
    assert!(matches!(
        run_until(suite_cmd(&out, false), &run, Some(Kill::Pause("step", 12))),
        Outcome::Killed
    ));
    let mut published = false;
    let latest = check_files(&run, &mut published).expect("a checkpoint was published");
    let ckpt = run.join("ckpt");
    let good = snapshot(&ckpt.join(&latest));

    // The resumed process may write files of at most 128 KiB: the log and the small JSON files
    // fit, the next checkpoint's weights (about 370 KB) do not. SIGXFSZ is ignored, so the write
    // fails with EFBIG ("File too large") as on a full disk, rather than killing the process.
    // No BURN_DEVICE here: xtask pins Burn's default device to `--device` (cpu → Flex), so the
    // resumed process never starts WGPU (whose Mesa buffers would die with SIGBUS under the limit).
    let mut limited = Command::new("bash");
    limited
        .current_dir(root())
        .env_remove("BURN_DEVICE")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 128 && exec \"$@\"",
            "bash",
            env!("CARGO_BIN_EXE_xtask"),
        ])
        .args(suite_args(&out, true))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let Outcome::Exited(status, stderr) = run_until(limited, &run, None) else {
        unreachable!()
    };
    assert!(
        !status.success(),
        "the write past the limit should fail:\n{stderr}"
    );
    let error = stderr
        .lines()
        .find(|l| l.starts_with("Error:"))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    eprintln!("full disk: {error}");
    assert!(error.contains("File too large"), "{error}");
    assert!(
        error.contains("/ckpt/step-")
            && error.contains(".tmp")
            && error.contains("trainable.safetensors"),
        "the error names the file: {error}"
    );
    // The last good checkpoint is untouched and still the latest.
    assert_eq!(
        check_files(&run, &mut published).as_deref(),
        Some(latest.as_str())
    );
    assert!(snapshot(&ckpt.join(&latest)) == good, "{latest} changed");

    // With room again, the run resumes from it to the uninterrupted result.
    let Outcome::Exited(status, stderr) = run_until(suite_cmd(&out, true), &run, None) else {
        unreachable!()
    };
    assert!(status.success(), "{stderr}");
    check_finished(&run, "after the full disk");
}

/// Whether this machine lets a process mount a tmpfs in a user and mount namespace of its own
/// (`unshare -rm`: no root needed where user namespaces are allowed).
fn can_mount_tmpfs_in_a_namespace(dir: &Path) -> bool {
    let probe = Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            r#"mount -t tmpfs -o size=64k tmpfs "$1""#,
            "sh",
        ])
        .arg(dir)
        .output();
    match probe {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "cannot mount a tmpfs in a user namespace here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("no `unshare` here: {e}");
            false
        }
    }
}

/// Runs `cargo xtask suite` (fresh, `--out` on a tmpfs of `kib` KiB) inside a user and mount
/// namespace, then copies what it left to `keep` before the namespace and its tmpfs go away.
fn run_on_small_tmpfs(kib: usize, keep: &Path) -> Outcome {
    let mnt = keep.with_extension("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(keep).unwrap();
    let script = r#"mount -t tmpfs -o "size=${KIB}k" tmpfs "$MNT" || exit 90
"$@"; rc=$?
cp -a "$MNT"/. "$KEEP"/ || exit 91
exit $rc"#;
    let mut cmd = Command::new("unshare");
    cmd.current_dir(root())
        .env("KIB", kib.to_string())
        .env("MNT", &mnt)
        .env("KEEP", keep)
        .args(["-rm", "sh", "-c", script, "sh", env!("CARGO_BIN_EXE_xtask")])
        .args(suite_args(&mnt, false))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    run_until(cmd, &keep.join(RUN), None)
}

#[test]
fn a_really_full_disk_at_any_write_is_a_clear_error_and_the_run_resumes() {
    // Sizes of the tmpfs the run writes to, each running out of space at another write: the
    // first checkpoint's weights (about 360 KB) and optimizer state (about 720 KB), the second
    // checkpoint's weights and optimizer state (the first one still on disk), and the `LATEST`
    // that would publish a later one (two whole checkpoints on disk). From about 2264 KiB on,
    // the run fits (`crates/continual` tests a log append that fails half-way on its own).
    const KIB: [usize; 5] = [64, 600, 1150, 1500, 2240];
    let expected = expected_rows();
    let dir = tempfile::tempdir().unwrap();
    if !can_mount_tmpfs_in_a_namespace(dir.path()) {
        eprintln!(
            "SKIPPED: this test needs `unshare -rm` and tmpfs; the EFBIG test above still runs"
        );
        return;
    }
    let mut failed_files = Vec::new();
    for kib in KIB {
        let keep = dir.path().join(format!("keep-{kib}"));
        let Outcome::Exited(status, stderr) = run_on_small_tmpfs(kib, &keep) else {
            unreachable!()
        };
        assert_ne!(status.code(), Some(90), "{kib} KiB: no tmpfs:\n{stderr}");
        let run = keep.join(RUN);
        if status.success() {
            // The whole run fitted: nothing to test at this size.
            assert_eq!(&rows(&run), expected);
            eprintln!("{kib} KiB: the run fitted");
            continue;
        }
        assert!(
            !stderr.contains("panicked"),
            "{kib} KiB: a panic instead of an error:\n{stderr}"
        );
        let error = stderr
            .lines()
            .find(|l| l.starts_with("Error:"))
            .unwrap_or_else(|| panic!("{kib} KiB: no error line:\n{stderr}"));
        eprintln!("{kib} KiB: {error}");
        assert!(
            error.contains("No space left on device"),
            "{kib} KiB: {error}"
        );
        let mnt = keep.with_extension("mnt");
        let file = error
            .split_whitespace()
            .find(|w| w.starts_with(mnt.to_str().unwrap()))
            .unwrap_or_else(|| panic!("{kib} KiB: the error names no file: {error}"));
        let name = Path::new(file.trim_end_matches(':'))
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // `trainable.safetensors.tmp<pid>` → `trainable.safetensors`.
        failed_files.push(
            name.split(".tmp")
                .next()
                .unwrap()
                .trim_end_matches('.')
                .to_string(),
        );
        // Nothing corrupt, LATEST (if any) complete; with room again the run resumes to the
        // uninterrupted matrix with every step logged once.
        check_files(&run, &mut false);
        let Outcome::Exited(status, stderr) = run_until(suite_cmd(&keep, true), &run, None) else {
            unreachable!()
        };
        assert!(status.success(), "{kib} KiB: the resume failed:\n{stderr}");
        check_finished(&run, &format!("{kib} KiB"));
    }
    eprintln!("writes that hit the full disk: {failed_files:?}");
    let mut distinct = failed_files.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() >= 3,
        "too few different writes ran out of space: {failed_files:?}"
    );
}

#[test]
fn a_run_killed_at_any_point_of_its_index_append_gets_its_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");
    let run = out.join(RUN);
    let index = out.join("smoke/index.jsonl");
    let rows = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&index)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a torn row {l:?}: {e}")))
            .collect()
    };
    // Kill point 1: `run.json` says complete, the row is not written yet.
    assert!(matches!(
        run_until(
            suite_cmd(&out, false),
            &run,
            Some(Kill::Pause("index-append", 1))
        ),
        Outcome::Killed
    ));
    assert_eq!(read_json(&run.join("run.json"))["status"], "complete");
    assert!(!index.exists(), "killed before the append");
    // Kill point 2, inside the append: half a row written, no newline (what a kill or a full
    // disk in the middle of the write leaves). It must be cut off, never glued to the new row.
    std::fs::create_dir_all(index.parent().unwrap()).unwrap();
    std::fs::write(&index, r#"{"suite":"smoke","method":"mssr","se"#).unwrap();
    // Kill point 3: the row was appended, the process killed before it returned.
    assert!(matches!(
        run_until(
            suite_cmd(&out, false),
            &run,
            Some(Kill::Pause("index-appended", 1))
        ),
        Outcome::Killed
    ));
    assert_eq!(
        rows().len(),
        1,
        "the torn row was cut off and the row written"
    );
    // The next calls (with or without --resume) skip the complete run and write no second row.
    for resume in [false, true] {
        let Outcome::Exited(status, stderr) = run_until(suite_cmd(&out, resume), &run, None) else {
            unreachable!()
        };
        assert!(status.success(), "{stderr}");
        let rows = rows();
        assert_eq!(
            rows.len(),
            1,
            "one row, however often the suite is asked again"
        );
        assert_eq!(
            (rows[0]["method"].as_str(), rows[0]["seed"].as_u64()),
            (Some("mssr"), Some(0))
        );
        assert_eq!(rows[0]["aa"], read_json(&run.join("metrics.json"))["aa"]);
    }
    check_finished(&run, "after the index repair");
}
