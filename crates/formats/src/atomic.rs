//! Atomic file writes, with one temporary-name scheme for the whole workspace.
//!
//! A file is written whole into a temporary sibling, `<name>.tmp<pid>` (the writer's process
//! id), flushed to disk and renamed over `<name>`: a crash leaves the old file or the new one,
//! never a mix. A staged directory (a checkpoint, a converted data folder) uses the same name
//! and is renamed the same way.
//!
//! A process killed between creating the temporary and the rename leaves it behind. The pid in
//! the name tells whose it is: [`remove_stale_temporaries`] removes those whose process is dead
//! (a live writer's are kept), and every [`AtomicFile::create`] does so for the temporaries of
//! its own target, so rewriting a file also clears what a killed writer of it left.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("run.json");
//! formats::atomic::write_atomic(&path, b"{}\n").unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
//! // What a killed writer (pid 4000000000: no such process) left of an earlier write:
//! std::fs::write(dir.path().join("run.json.tmp4000000000"), b"{").unwrap();
//! assert_eq!(formats::atomic::remove_stale_temporaries(dir.path()).unwrap(), 1);
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::FormatError;

/// The temporary that a write of `path` by this process goes through: `<name>.tmp<pid>` beside
/// it, as [`temporary_pid`] reads back.
pub fn temporary_path(path: &Path) -> PathBuf {
    temporary_path_of(path, std::process::id())
}

fn temporary_path_of(path: &Path, pid: u32) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{pid}"));
    path.with_file_name(name)
}

/// The process id in a temporary's file name (`<name>.tmp<pid>`), or `None` for any other name.
pub fn temporary_pid(file_name: &str) -> Option<u32> {
    let (stem, pid) = file_name.rsplit_once(".tmp")?;
    if stem.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether a process with this pid runs (Linux `/proc`; a zombie counts as dead). Elsewhere
/// every pid is assumed alive, so nothing is removed that might still be written.
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if Path::new("/proc/self").exists() {
        // A zombie (killed, not yet reaped by its parent) no longer runs: treat it as dead.
        return std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false);
    }
    true
}

/// A file being written atomically: bytes go to the temporary; [`AtomicFile::commit`] syncs it
/// and renames it over the target. Dropped without a commit (an error, a panic), the temporary
/// is removed and the target is left as it was.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Starts a write of `path` (its directory must exist). Temporaries of `path` left by dead
    /// processes are removed first.
    pub fn create(path: &Path) -> Result<Self, FormatError> {
        remove_stale_siblings(path);
        let tmp = temporary_path(path);
        let file = File::create(&tmp).map_err(|e| FormatError::io(&tmp, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// The temporary's path (errors while writing name it).
    pub fn temporary(&self) -> &Path {
        &self.tmp
    }

    /// The open temporary.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until commit")
    }

    /// Syncs the temporary to disk and renames it over the target.
    pub fn commit(mut self) -> Result<(), FormatError> {
        let file = self.file.take().expect("open until commit");
        file.sync_all().map_err(|e| FormatError::io(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| FormatError::io(&self.path, e))?;
        sync_parent(&self.path);
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Not committed: a full disk, a failed write or a panic leaves no stray temporary.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically (its directory must exist); an error names the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    let mut f = AtomicFile::create(path)?;
    f.file()
        .write_all(bytes)
        .map_err(|e| FormatError::io(&f.tmp, e))?;
    f.commit()
}

/// Renames a directory staged at [`temporary_path`]`(dest)` over `dest` (removing an old `dest`
/// first; the two steps are not one atomic swap, so callers publish through a file written
/// with [`write_atomic`] when that matters, as checkpoints do with `LATEST`).
pub fn publish_dir(staged: &Path, dest: &Path) -> Result<(), FormatError> {
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| FormatError::io(dest, e))?;
    }
    std::fs::rename(staged, dest).map_err(|e| FormatError::io(dest, e))?;
    sync_parent(dest);
    Ok(())
}

fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(f) = File::open(dir)
    {
        let _ = f.sync_all();
    }
}

/// Removes `<name>.tmp<pid>` siblings of `path` whose process is dead.
fn remove_stale_siblings(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.tmp", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix)
            && temporary_pid(&n).is_some_and(|pid| !process_alive(pid))
            && n.len() > prefix.len()
        {
            let _ = remove_path(&e.path());
        }
    }
}

fn remove_path(p: &Path) -> std::io::Result<()> {
    if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
}

/// Removes every temporary (`<name>.tmp<pid>`, file or staged directory) of a dead process
/// anywhere under `dir`; those of live processes are kept. Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize, FormatError> {
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .map_err(|e| FormatError::io(&d, e))?
            .flatten()
        {
            let path = e.path();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let pid = temporary_pid(&e.file_name().to_string_lossy());
            if pid.is_some_and(|pid| !process_alive(pid)) {
                remove_path(&path).map_err(|e| FormatError::io(&path, e))?;
                removed += 1;
            } else if is_dir {
                stack.push(path);
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No process has this pid: Linux caps pids at 2^22.
    const DEAD: u32 = 4_000_000_000;

    #[test]
    fn the_pid_of_a_temporary_is_read_back_from_its_name() {
        for name in [
            "run.json",
            "LATEST",
            "trainable.safetensors",
            "a.tar.gz",
            "step-1",
        ] {
            let tmp = temporary_path(&Path::new("/x").join(name));
            let tmp = tmp.file_name().unwrap().to_str().unwrap();
            assert_eq!(tmp, format!("{name}.tmp{}", std::process::id()));
            assert_eq!(temporary_pid(tmp), Some(std::process::id()), "{tmp}");
        }
        for other in [
            "run.json",
            "notes.tmp",
            "a.tmpx1",
            "log.jsonl",
            ".tmp12",
            "a.tmp+1",
        ] {
            assert_eq!(temporary_pid(other), None, "{other}");
        }
    }

    #[test]
    fn a_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_uncommitted_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        write_atomic(&p, b"old").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"half of the n").unwrap();
        assert!(f.temporary().exists());
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_write_into_a_missing_directory_is_an_error_naming_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no-such-dir/m.json");
        let e = write_atomic(&p, b"x").unwrap_err().to_string();
        assert!(e.contains("no-such-dir/m.json.tmp"), "{e}");
    }

    #[test]
    fn a_write_removes_what_dead_writers_of_the_same_file_left() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(format!("m.json.tmp{DEAD}"));
        let other_file = dir.path().join(format!("n.json.tmp{DEAD}"));
        let live = temporary_path_of(&dir.path().join("m.json"), 1); // init is always alive
        for p in [&dead, &other_file, &live] {
            std::fs::write(p, "x").unwrap();
        }
        write_atomic(&dir.path().join("m.json"), b"new").unwrap();
        assert!(!dead.exists(), "the dead writer's temporary is removed");
        assert!(
            other_file.exists(),
            "another file's temporary is not this write's business"
        );
        assert!(live.exists() || !Path::new("/proc/1").exists());
    }

    #[test]
    fn temporaries_of_dead_processes_are_removed_everywhere_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("ckpt/step-2");
        std::fs::create_dir_all(&ckpt).unwrap();
        let staged = dir.path().join(format!("ckpt/step-4.tmp{DEAD}"));
        std::fs::create_dir_all(&staged).unwrap();
        std::fs::write(staged.join("state.json"), "{}").unwrap();
        let dead = [
            dir.path().join(format!("run.json.tmp{DEAD}")),
            ckpt.join(format!("state.json.tmp{}", DEAD + 1)),
        ];
        let live = temporary_path(&dir.path().join("matrix.json"));
        let other = [
            dir.path().join("log.jsonl"),
            dir.path().join("notes.tmp"),
            ckpt.join("trainable.safetensors"),
        ];
        for p in dead.iter().chain([&live]).chain(&other) {
            std::fs::write(p, "x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 3);
        assert!(dead.iter().all(|p| !p.exists()) && !staged.exists());
        assert!(live.exists() && other.iter().all(|p| p.exists()));
    }
}
