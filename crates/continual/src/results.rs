//! Result files (`docs/results-format.md`): atomic JSON writes, the per-step JSONL log that
//! resumes cleanly, the run-directory lock and the suite's index.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::EngineError;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory
/// (`<name>.tmp<pid>`, the workspace's one scheme: [`formats::atomic`]), flushed to disk, then
/// renamed over `path`. A crash leaves either the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    formats::atomic::write_atomic(path, bytes).map_err(from_format)
}

/// [`write_atomic`] of pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), EngineError> {
    let mut s = serde_json::to_string_pretty(value).expect("results serialise");
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// The per-step log: one JSON object per line, appended and flushed per line. On resume it
/// is cut back to the length recorded in the checkpoint, so replayed steps are not logged twice.
pub struct JsonlLog {
    path: PathBuf,
    file: File,
    len: u64,
    /// Bytes of a torn last line cut off when opened.
    repaired: u64,
    /// A failed append whose cut-back failed too: the file may end in half a line.
    torn: bool,
}

/// The length of the longest prefix of the first `len` bytes of `file` that ends a line (or is
/// empty).
fn whole_lines_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut end = len;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

impl JsonlLog {
    /// Opens `path` for appending after cutting it to `keep` bytes (`0` starts afresh,
    /// `u64::MAX` keeps everything).
    ///
    /// A log must end in a whole line. Kept whole (`u64::MAX`), a torn last line (an append
    /// cut short by a kill or a full disk) is cut off and reported ([`JsonlLog::repaired`], a
    /// warning), so the next event cannot be glued onto it. Cut to a checkpoint's length, that
    /// length must end a line; if it does not, the file was rewritten by something else and
    /// opening it is an error naming it.
    pub fn open(path: &Path, keep: u64) -> Result<Self, EngineError> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| EngineError::io(path, e))?;
        let have = file.metadata().map_err(|e| EngineError::io(path, e))?.len();
        let keep_all = keep == u64::MAX;
        let mut keep = if keep_all { have } else { keep };
        if have < keep {
            return Err(EngineError::Checkpoint(format!(
                "{}: the log has {have} bytes but the checkpoint recorded {keep}; it was truncated by something else",
                path.display()
            )));
        }
        let whole = whole_lines_len(&mut file, keep).map_err(|e| EngineError::io(path, e))?;
        if whole != keep {
            if !keep_all {
                return Err(EngineError::Checkpoint(format!(
                    "{}: the checkpoint recorded {keep} bytes of log, but byte {keep} is inside a line (the last whole line ends at byte {whole}); the log was rewritten by something else",
                    path.display()
                )));
            }
            tracing::warn!(
                "{}: the last line is torn ({} bytes after the last newline, an append cut short): cut off",
                path.display(),
                keep - whole
            );
        }
        let repaired = keep - whole;
        keep = whole;
        file.set_len(keep).map_err(|e| EngineError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            len: keep,
            repaired,
            torn: false,
        })
    }

    /// Appends one event. A failed append (a full disk) is cut back off the file before the
    /// error is returned, so the log never holds half a line followed by later ones; if even
    /// the cut fails, every later append retries it first and fails while it cannot.
    pub fn write(&mut self, event: &serde_json::Value) -> Result<(), EngineError> {
        if self.torn {
            self.file
                .set_len(self.len)
                .map_err(|e| EngineError::io(&self.path, e))?;
            self.torn = false;
        }
        let mut line = serde_json::to_string(event).expect("events serialise");
        line.push('\n');
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            self.torn = self.file.set_len(self.len).is_err();
            return Err(EngineError::io(&self.path, e));
        }
        self.len += line.len() as u64;
        Ok(())
    }

    /// Bytes of a torn last line that [`JsonlLog::open`] cut off (0 when the log was whole).
    pub fn repaired(&self) -> u64 {
        self.repaired
    }

    /// Bytes written so far (what a checkpoint records).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been logged.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Flushes to disk (before a checkpoint records the length).
    pub fn sync(&mut self) -> Result<(), EngineError> {
        self.file
            .sync_data()
            .map_err(|e| EngineError::io(&self.path, e))
    }
}

/// An exclusive claim on a run directory: `run.lock` holding the owner's pid. A second process
/// is refused while the owner lives; a lock left by a dead process (a killed run) is taken over.
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Claims `dir`.
    pub fn acquire(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join("run.lock");
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    let _ = f.sync_all();
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let pid: Option<u32> = owner.trim().parse().ok();
                    if pid.is_some_and(process_alive) {
                        return Err(EngineError::Locked {
                            dir: dir.to_path_buf(),
                            pid: pid.unwrap_or(0),
                        });
                    }
                    // A stale lock of a dead run: take it over.
                    std::fs::remove_file(&path).map_err(|e| EngineError::io(&path, e))?;
                }
                Err(e) => return Err(EngineError::io(&path, e)),
            }
        }
        Err(EngineError::Locked {
            dir: dir.to_path_buf(),
            pid: 0,
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

use formats::atomic::process_alive;

/// A file error of `formats` as the engine's: I/O errors keep their path.
fn from_format(e: formats::FormatError) -> EngineError {
    match e {
        formats::FormatError::Io { path, source } => EngineError::io(&path, source),
        other => EngineError::from(backbone::LoadError::from(other)),
    }
}

/// Appends one line to `index.jsonl` (opened in append mode: whole lines, one writer per run).
/// A torn last line (an append cut short by a kill or a full disk) is cut off first, with a
/// warning, so the new row is never glued onto it.
pub fn append_index(path: &Path, row: &serde_json::Value) -> Result<(), EngineError> {
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| EngineError::io(path, e))?;
    let have = f.metadata().map_err(|e| EngineError::io(path, e))?.len();
    let whole = whole_lines_len(&mut f, have).map_err(|e| EngineError::io(path, e))?;
    if whole != have {
        tracing::warn!(
            "{}: the last line is torn ({} bytes after the last newline, an append cut short): cut off",
            path.display(),
            have - whole
        );
        f.set_len(whole).map_err(|e| EngineError::io(path, e))?;
    }
    let mut line = serde_json::to_string(row).expect("index rows serialise");
    line.push('\n');
    f.write_all(line.as_bytes())
        .map_err(|e| EngineError::io(path, e))?;
    f.sync_data().map_err(|e| EngineError::io(path, e))
}

/// The `index.jsonl` row of the complete run in `run_dir`, built from its `run.json` and
/// `metrics.json` (so a missing row can be written again from the files alone).
pub fn index_row(run_dir: &Path) -> Result<serde_json::Value, EngineError> {
    let read = |name: &str| -> Result<serde_json::Value, EngineError> {
        let p = run_dir.join(name);
        let text = std::fs::read_to_string(&p).map_err(|e| EngineError::io(&p, e))?;
        serde_json::from_str(&text).map_err(|e| EngineError::Config {
            path: p.clone(),
            message: format!("not valid JSON: {e}"),
        })
    };
    let (run, m) = (read("run.json")?, read("metrics.json")?);
    Ok(serde_json::json!({
        "suite": run["suite"], "method": run["method"], "seed": run["seed"], "dir": run_dir,
        "aa": m["aa"], "bwt": m["bwt"], "forgetting": m["forgetting"], "fwt": m["fwt"], "ans": m["ans"],
        "general_forgetting": m["general_forgetting"], "replayed_samples": m["cost"]["replayed_samples"],
        "wall_seconds": m["cost"]["wall_seconds"], "git_rev": run["provenance"]["git_revision"],
    }))
}

/// Appends the row of the complete run in `run_dir` to `index` unless a row for that run
/// (same suite, method and seed: an index serves one suite directory, whose runs live in
/// `<method>/<seed>/`) is already there. A run killed between turning
/// `complete` and its index append gets its row on the next `cargo xtask suite`. Returns whether
/// a row was written.
pub fn ensure_index_row(index: &Path, run_dir: &Path) -> Result<bool, EngineError> {
    let row = index_row(run_dir)?;
    // Not the directory: the same run may be named by a relative or an absolute path.
    let key = |v: &serde_json::Value| (v["suite"].clone(), v["method"].clone(), v["seed"].clone());
    let have = match std::fs::read_to_string(index) {
        Ok(text) => text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| key(&v) == key(&row)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(EngineError::io(index, e)),
    };
    if !have {
        append_index(index, &row)?;
        // A kill here: the row is in; the next call finds it and writes none.
        crate::test_pause("index-appended");
    }
    Ok(!have)
}

/// Removes the temporaries (`<name>.tmp<pid>` files and staged checkpoint directories, see
/// [`formats::atomic`]) that a killed process left anywhere under `dir`; those of a live
/// process are kept. Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize, EngineError> {
    formats::atomic::remove_stale_temporaries(dir).map_err(from_format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_cut_back_to_the_checkpointed_length_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        let mut log = JsonlLog::open(&p, 0).unwrap();
        log.write(&serde_json::json!({"type": "step", "step": 0}))
            .unwrap();
        let keep = log.len();
        log.write(&serde_json::json!({"type": "step", "step": 1}))
            .unwrap();
        drop(log);
        let mut log = JsonlLog::open(&p, keep).unwrap();
        log.write(&serde_json::json!({"type": "step", "step": 1}))
            .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(JsonlLog::open(&p, 10_000).is_err());
    }

    /// The `step` numbers of the lines of a log; panics on a line that is not JSON.
    fn logged_steps(path: &Path) -> Vec<u64> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("{l:?}: {e}"))["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn a_torn_last_log_line_is_cut_off_on_resume_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        let whole = "{\"type\":\"step\",\"step\":0}\n{\"type\":\"step\",\"step\":1}\n";
        let torn = "{\"type\":\"step\",\"st";
        std::fs::write(&p, format!("{whole}{torn}")).unwrap();
        let mut log = JsonlLog::open(&p, u64::MAX).unwrap();
        assert_eq!(log.repaired(), torn.len() as u64);
        assert_eq!(log.len(), whole.len() as u64);
        log.write(&serde_json::json!({"type": "step", "step": 2}))
            .unwrap();
        assert_eq!(
            logged_steps(&p),
            [0, 1, 2],
            "never glued onto the torn line"
        );
        // A whole log is kept as it is.
        let log = JsonlLog::open(&p, u64::MAX).unwrap();
        let size = std::fs::metadata(&p).unwrap().len();
        assert_eq!((log.repaired(), log.len()), (0, size));
    }

    #[test]
    fn a_checkpointed_log_length_inside_a_line_is_an_error_naming_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        std::fs::write(&p, "{\"step\":0}\n{\"step\":1}\n").unwrap();
        // 11 bytes end the first line; 15 fall inside the second.
        assert_eq!(JsonlLog::open(&p, 11).unwrap().len(), 11);
        std::fs::write(&p, "{\"step\":0}\n{\"step\":1}\n").unwrap();
        let e = JsonlLog::open(&p, 15).err().unwrap().to_string();
        assert!(
            e.contains("log.jsonl") && e.contains("byte 15 is inside a line"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"step\":0}\n{\"step\":1}\n",
            "a refused log is left as it was"
        );
    }

    #[test]
    fn a_torn_index_row_is_cut_off_before_the_missing_row_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("mssr/3");
        complete_run(&run, 3);
        let index = dir.path().join("index.jsonl");
        std::fs::write(&index, "{\"suite\":\"smoke\",\"meth").unwrap();
        assert!(ensure_index_row(&index, &run).unwrap());
        assert!(!ensure_index_row(&index, &run).unwrap());
        let text = std::fs::read_to_string(&index).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 1, "{text}");
        assert_eq!(rows[0]["seed"], 3);
    }

    #[test]
    fn a_live_lock_is_refused_and_a_stale_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        let e = RunLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(e.contains("in use"), "{e}");
        drop(lock);
        // No process has this pid (above the kernel's limit): a stale lock.
        std::fs::write(dir.path().join("run.lock"), "4000000000\n").unwrap();
        assert!(RunLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn atomic_writes_replace_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        write_json(&p, &serde_json::json!({"a": 1})).unwrap();
        write_json(&p, &serde_json::json!({"a": 2})).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\n  \"a\": 2\n}\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn complete_run(dir: &Path, seed: u64) {
        std::fs::create_dir_all(dir).unwrap();
        write_json(&dir.join("run.json"), &serde_json::json!({"suite": "smoke", "method": "mssr", "seed": seed, "status": "complete",
            "provenance": {"git_revision": "abc"}}))
        .unwrap();
        write_json(
            &dir.join("metrics.json"),
            &serde_json::json!({"aa": 0.5, "bwt": -0.1, "forgetting": 0.2, "fwt": null, "ans": 0.4,
            "general_forgetting": null, "cost": {"replayed_samples": 7, "wall_seconds": 1.5}}),
        )
        .unwrap();
    }

    #[test]
    fn a_missing_index_row_is_written_once_from_the_run_files() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("mssr/3"), dir.path().join("mssr/4"));
        complete_run(&a, 3);
        complete_run(&b, 4);
        let index = dir.path().join("index.jsonl");
        assert!(ensure_index_row(&index, &a).unwrap());
        assert!(
            !ensure_index_row(&index, &a).unwrap(),
            "a second call finds the row"
        );
        // The same run named another way (here: through `.`) is still the same run.
        assert!(!ensure_index_row(&index, &dir.path().join("./mssr/3")).unwrap());
        assert!(ensure_index_row(&index, &b).unwrap());
        let rows: Vec<serde_json::Value> = std::fs::read_to_string(&index)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["dir"], a.display().to_string());
        assert_eq!(
            (
                rows[0]["aa"].as_f64(),
                rows[0]["replayed_samples"].as_u64(),
                rows[0]["git_rev"].as_str()
            ),
            (Some(0.5), Some(7), Some("abc"))
        );
        assert_eq!(rows[0]["wall_seconds"], 1.5);
    }

    #[test]
    fn a_corrupt_metrics_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        complete_run(dir.path(), 0);
        std::fs::write(dir.path().join("metrics.json"), "{\"aa\": 0.5,").unwrap();
        let e = ensure_index_row(&dir.path().join("index.jsonl"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("metrics.json") && e.contains("not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn temporaries_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("ckpt/step-2");
        std::fs::create_dir_all(&ckpt).unwrap();
        let dead = [
            dir.path().join("run.json.tmp4000000000"),
            ckpt.join("state.json.tmp4000000001"),
        ];
        let live = dir
            .path()
            .join(format!("matrix.json.tmp{}", std::process::id()));
        let other = [
            dir.path().join("log.jsonl"),
            dir.path().join("notes.tmp"),
            ckpt.join("trainable.safetensors"),
        ];
        for p in dead.iter().chain([&live]).chain(&other) {
            std::fs::write(p, "x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 2);
        assert!(dead.iter().all(|p| !p.exists()));
        assert!(live.exists() && other.iter().all(|p| p.exists()));
    }

    /// Run as a child process under `ulimit -f 1` (writes past 1024 bytes fail with EFBIG,
    /// SIGXFSZ ignored) by [`a_log_append_that_fails_half_way_leaves_only_whole_lines`].
    fn append_until_the_file_size_limit(path: &Path) {
        let mut log = JsonlLog::open(path, 0).unwrap();
        let event =
            |i: usize| serde_json::json!({"type": "step", "step": i, "pad": "x".repeat(40)});
        let mut i = 0;
        let err = loop {
            match log.write(&event(i)) {
                Ok(()) => i += 1,
                Err(e) => break e.to_string(),
            }
        };
        assert!(
            err.contains("log.jsonl") && err.contains("File too large"),
            "{err}"
        );
        // The half-written line was cut off: the file is the whole lines written so far.
        assert_eq!(std::fs::metadata(path).unwrap().len(), log.len());
        assert!(log.write(&event(i)).is_err());
        assert_eq!(std::fs::metadata(path).unwrap().len(), log.len());
        println!("CHILD-OK {i}");
    }

    #[test]
    fn a_log_append_that_fails_half_way_leaves_only_whole_lines() {
        if let Ok(p) = std::env::var("CONTINUAL_TEST_LOG_CHILD") {
            return append_until_the_file_size_limit(Path::new(&p));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let out = std::process::Command::new("bash")
            .args(["-c", "trap '' XFSZ; ulimit -f 1 && exec \"$@\"", "bash"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "results::tests::a_log_append_that_fails_half_way_leaves_only_whole_lines",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CONTINUAL_TEST_LOG_CHILD", &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("CHILD-OK"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let n: usize = stdout
            .split("CHILD-OK ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // 1024 bytes hold some whole lines and the start of one more, which was cut off.
        assert!(
            n >= 5 && text.len() <= 1024 && text.ends_with('\n'),
            "{n} lines, {} bytes",
            text.len()
        );
        let steps: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(steps, (0..n as u64).collect::<Vec<_>>());
        // With room again (no limit here) the log goes on from the last whole line.
        let mut log = JsonlLog::open(&path, u64::MAX).unwrap();
        log.write(&serde_json::json!({"type": "step", "step": n}))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            n + 1
        );
    }
}
