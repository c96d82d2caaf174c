//! Checkpoints: written whole into a temporary directory (`<name>.tmp<pid>`, the workspace's
//! one temporary-name scheme, [`formats::atomic`]), renamed into place, then published
//! by an atomic rewrite of `LATEST`. A crash at any point leaves the previous checkpoint
//! intact and named by `LATEST`; older checkpoints are removed only after the new one is
//! published.
//!
//! ```text
//! ckpt/LATEST                 "step-000120-task-02"
//! ckpt/step-000120-task-02/   trainable.safetensors, plugins/<name>/, trainer/, state.json
//! ```

use std::path::{Path, PathBuf};

use finetune::Trainer;

use crate::EngineError;
use crate::params::TrainableSnapshot;
use crate::results::{write_atomic, write_json};

/// What goes into a checkpoint.
pub struct Contents<'a> {
    /// The trainable weights (adapter factors or the whole model).
    pub trainable: &'a TrainableSnapshot,
    /// Writes the method plugins' state into the folder it is given (`plugins/`).
    pub plugins: &'a dyn Fn(&Path) -> Result<(), EngineError>,
    /// Optimizer moments and step counter.
    pub trainer: &'a Trainer,
    /// The engine's state (buffer, scheduler, RNGs, counters, matrix rows, log length).
    pub state: &'a serde_json::Value,
}

/// A checkpoint read back.
pub struct Loaded {
    /// Trainable weights.
    pub trainable: TrainableSnapshot,
    /// The engine's state.
    pub state: serde_json::Value,
}

/// Writes a checkpoint under `root` and publishes it; of the older ones, the newest
/// `keep_older` stay (a divergence rollback may need one from before the newest).
pub fn save(
    root: &Path,
    step: u64,
    task: usize,
    c: &Contents<'_>,
    keep_older: usize,
) -> Result<(), EngineError> {
    std::fs::create_dir_all(root).map_err(|e| EngineError::io(root, e))?;
    let name = format!("step-{step:06}-task-{task:02}");
    let dest = root.join(&name);
    let tmp = formats::atomic::temporary_path(&dest);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
    c.trainable.save(&tmp.join("trainable.safetensors"))?;
    crate::test_pause("checkpoint-write");
    (c.plugins)(&tmp.join("plugins"))?;
    let trainer = tmp.join("trainer");
    c.trainer
        .save(&trainer)
        .map_err(|e| EngineError::Checkpoint(format!("writing {}: {e}", trainer.display())))?;
    // The trainer writes plainly: flush its files before the checkpoint can be published.
    for f in ["optimizer.bpk", "trainer.json"] {
        let p = trainer.join(f);
        std::fs::File::open(&p)
            .and_then(|f| f.sync_all())
            .map_err(|e| EngineError::io(&p, e))?;
    }
    sync_dir(&trainer);
    write_json(&tmp.join("state.json"), c.state)?;
    sync_dir(&tmp);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| EngineError::io(&dest, e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| EngineError::io(&dest, e))?;
    sync_dir(root);
    crate::test_pause("checkpoint-publish");
    write_atomic(&root.join("LATEST"), format!("{name}\n").as_bytes())?;
    // Only now are older checkpoints garbage.
    let mut older: Vec<(u64, PathBuf)> = published(root)?
        .into_iter()
        .filter(|(s, p)| *s < step && !p.ends_with(&name))
        .collect();
    older.sort();
    let n_drop = older.len().saturating_sub(keep_older);
    for (_, p) in &older[..n_drop] {
        let _ = std::fs::remove_dir_all(p);
    }
    remove_stale_staging(root)
}

/// Removes the staging directories under `root` of earlier saves that failed (this process's)
/// or were killed (a dead pid), and `.tmp-<name>` ones of the naming scheme before
/// `formats::atomic`; a live process's are kept.
fn remove_stale_staging(root: &Path) -> Result<(), EngineError> {
    for e in std::fs::read_dir(root)
        .map_err(|e| EngineError::io(root, e))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = formats::atomic::temporary_pid(&name);
        let stale = name.starts_with(".tmp-")
            || pid.is_some_and(|p| p == std::process::id() || !formats::atomic::process_alive(p));
        if stale && e.path().is_dir() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(())
}

/// The complete checkpoints under `root` (renamed into place, `state.json` present) with
/// their global steps, in no particular order.
fn published(root: &Path) -> Result<Vec<(u64, PathBuf)>, EngineError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root)
        .map_err(|e| EngineError::io(root, e))?
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if formats::atomic::temporary_pid(&n).is_some() {
            // A staging directory (`step-….tmp<pid>`) holds `state.json` before it is renamed.
            continue;
        }
        let step = n
            .strip_prefix("step-")
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(step) = step
            && e.path().join("state.json").is_file()
        {
            out.push((step, e.path()));
        }
    }
    Ok(out)
}

/// The newest complete checkpoint under `root` taken before global step `step`.
pub fn before(root: &Path, step: u64) -> Result<Option<PathBuf>, EngineError> {
    Ok(published(root)?
        .into_iter()
        .filter(|(s, _)| *s < step)
        .max_by_key(|(s, _)| *s)
        .map(|(_, p)| p))
}

/// Makes `dir` the latest checkpoint again (a rollback to an older one): `LATEST` is rewritten
/// to name it, then the newer checkpoints are removed.
pub fn republish(root: &Path, dir: &Path) -> Result<(), EngineError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let step = published(root)?
        .into_iter()
        .find(|(_, p)| p == dir)
        .map(|(s, _)| s);
    let Some(step) = step else {
        return Err(EngineError::Checkpoint(format!(
            "{} is not a complete checkpoint",
            dir.display()
        )));
    };
    write_atomic(&root.join("LATEST"), format!("{name}\n").as_bytes())?;
    for (s, p) in published(root)? {
        if s > step {
            let _ = std::fs::remove_dir_all(p);
        }
    }
    Ok(())
}

/// The directory `LATEST` names, if there is a checkpoint.
pub fn latest(root: &Path) -> Result<Option<PathBuf>, EngineError> {
    let latest = root.join("LATEST");
    match std::fs::read_to_string(&latest) {
        Ok(name) => {
            let dir = root.join(name.trim());
            if !dir.join("state.json").is_file() {
                return Err(EngineError::Checkpoint(format!(
                    "{} names {}, which is not a complete checkpoint",
                    latest.display(),
                    dir.display()
                )));
            }
            Ok(Some(dir))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EngineError::io(&latest, e)),
    }
}

/// Reads a checkpoint directory (the trainer is loaded by the caller from `dir/trainer`).
pub fn load(dir: &Path) -> Result<Loaded, EngineError> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| EngineError::io(&state_path, e))?;
    let state = serde_json::from_str(&text)
        .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", state_path.display())))?;
    let trainable = TrainableSnapshot::load(&dir.join("trainable.safetensors"))?;
    Ok(Loaded { trainable, state })
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_staging_directories_are_removed_and_published_or_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let p = root.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("state.json"), "{}").unwrap();
            p
        };
        let stale = [
            dir(".tmp-step-000002-task-00"),
            dir("step-000004-task-00.tmp4000000000"),
            dir(&format!("step-000006-task-01.tmp{}", std::process::id())),
        ];
        let kept = [dir("step-000008-task-01"), dir("step-000010-task-01.tmp1")];
        std::fs::write(root.path().join("LATEST"), "step-000008-task-01\n").unwrap();
        remove_stale_staging(root.path()).unwrap();
        assert!(stale.iter().all(|p| !p.exists()));
        // pid 1 (init) is alive where there is a /proc to ask.
        assert!(kept[0].exists() && (kept[1].exists() || !Path::new("/proc/1").exists()));
        assert!(root.path().join("LATEST").exists());
        // Staging directories are never taken for published checkpoints.
        let steps: Vec<u64> = published(root.path())
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(steps, [8]);
    }
}
