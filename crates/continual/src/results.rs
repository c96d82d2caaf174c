//! Result files (`docs/results-format.md`): atomic JSON writes, the per-step JSONL log that
//! resumes cleanly, the run-directory lock and the suite's index.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::EngineError;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to disk,
/// then renamed over `path`. A crash leaves either the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    backbone::weights::write_atomic(path, bytes).map_err(EngineError::from)
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
}

impl JsonlLog {
    /// Opens `path` for appending after cutting it to `keep` bytes (`0` starts afresh,
    /// `u64::MAX` keeps everything).
    pub fn open(path: &Path, keep: u64) -> Result<Self, EngineError> {
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| EngineError::io(path, e))?;
        let have = file.metadata().map_err(|e| EngineError::io(path, e))?.len();
        let keep = if keep == u64::MAX { have } else { keep };
        if have < keep {
            return Err(EngineError::Checkpoint(format!(
                "{}: the log has {have} bytes but the checkpoint recorded {keep}; it was truncated by something else",
                path.display()
            )));
        }
        file.set_len(keep).map_err(|e| EngineError::io(path, e))?;
        Ok(Self { path: path.to_path_buf(), file, len: keep })
    }

    /// Appends one event.
    pub fn write(&mut self, event: &serde_json::Value) -> Result<(), EngineError> {
        let mut line = serde_json::to_string(event).expect("events serialise");
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(|e| EngineError::io(&self.path, e))?;
        self.len += line.len() as u64;
        Ok(())
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
        self.file.sync_data().map_err(|e| EngineError::io(&self.path, e))
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
                        return Err(EngineError::Locked { dir: dir.to_path_buf(), pid: pid.unwrap_or(0) });
                    }
                    // A stale lock of a dead run: take it over.
                    std::fs::remove_file(&path).map_err(|e| EngineError::io(&path, e))?;
                }
                Err(e) => return Err(EngineError::io(&path, e)),
            }
        }
        Err(EngineError::Locked { dir: dir.to_path_buf(), pid: 0 })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a process with this pid exists (Linux `/proc`; elsewhere, assume it does unless it
/// is this very process's stale id).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if Path::new("/proc/self").exists() {
        // A zombie (killed, not yet reaped by its parent) no longer runs: treat it as dead.
        return std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(false);
    }
    true
}

/// Appends one line to `index.jsonl` (opened in append mode: whole lines, one writer per run).
pub fn append_index(path: &Path, row: &serde_json::Value) -> Result<(), EngineError> {
    let mut f = OpenOptions::new().create(true).append(true).open(path).map_err(|e| EngineError::io(path, e))?;
    let mut line = serde_json::to_string(row).expect("index rows serialise");
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(|e| EngineError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_cut_back_to_the_checkpointed_length_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        let mut log = JsonlLog::open(&p, 0).unwrap();
        log.write(&serde_json::json!({"type": "step", "step": 0})).unwrap();
        let keep = log.len();
        log.write(&serde_json::json!({"type": "step", "step": 1})).unwrap();
        drop(log);
        let mut log = JsonlLog::open(&p, keep).unwrap();
        log.write(&serde_json::json!({"type": "step", "step": 1})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(JsonlLog::open(&p, 10_000).is_err());
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
}
