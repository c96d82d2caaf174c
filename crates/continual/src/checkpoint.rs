//! Checkpoints: written whole into a temporary directory, renamed into place, then published
//! by an atomic rewrite of `LATEST`. A crash at any point leaves the previous checkpoint
//! intact and named by `LATEST`; older checkpoints are removed only after the new one is
//! published.
//!
//! ```text
//! ckpt/LATEST                 "step-000120-task-02"
//! ckpt/step-000120-task-02/   trainable.safetensors, wise_prev.safetensors, trainer/, state.json
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
    /// WiSE-FT's previous-stage weights.
    pub wise_prev: Option<&'a TrainableSnapshot>,
    /// Optimizer moments and step counter.
    pub trainer: &'a Trainer,
    /// The engine's state (buffer, scheduler, RNGs, counters, matrix rows, log length).
    pub state: &'a serde_json::Value,
}

/// A checkpoint read back.
pub struct Loaded {
    /// Trainable weights.
    pub trainable: TrainableSnapshot,
    /// WiSE-FT's previous-stage weights.
    pub wise_prev: Option<TrainableSnapshot>,
    /// The engine's state.
    pub state: serde_json::Value,
}

/// Writes a checkpoint under `root` and publishes it.
pub fn save(root: &Path, step: u64, task: usize, c: &Contents<'_>) -> Result<(), EngineError> {
    std::fs::create_dir_all(root).map_err(|e| EngineError::io(root, e))?;
    let name = format!("step-{step:06}-task-{task:02}");
    let tmp = root.join(format!(".tmp-{name}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
    c.trainable.save(&tmp.join("trainable.safetensors"))?;
    if let Some(w) = c.wise_prev {
        w.save(&tmp.join("wise_prev.safetensors"))?;
    }
    c.trainer.save(&tmp.join("trainer")).map_err(|e| EngineError::Checkpoint(format!("{}: {e}", tmp.display())))?;
    write_json(&tmp.join("state.json"), c.state)?;
    sync_dir(&tmp);
    let dest = root.join(&name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| EngineError::io(&dest, e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| EngineError::io(&dest, e))?;
    sync_dir(root);
    write_atomic(&root.join("LATEST"), format!("{name}\n").as_bytes())?;
    // Only now is the older checkpoint garbage.
    for e in std::fs::read_dir(root).map_err(|e| EngineError::io(root, e))?.flatten() {
        let p = e.path();
        let n = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() && n != name && (n.starts_with("step-") || n.starts_with(".tmp-")) {
            let _ = std::fs::remove_dir_all(&p);
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
                return Err(EngineError::Checkpoint(format!("{} names {}, which is not a complete checkpoint", latest.display(), dir.display())));
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
    let state = serde_json::from_str(&text).map_err(|e| EngineError::Checkpoint(format!("{}: {e}", state_path.display())))?;
    let trainable = TrainableSnapshot::load(&dir.join("trainable.safetensors"))?;
    let wp = dir.join("wise_prev.safetensors");
    let wise_prev = if wp.is_file() { Some(TrainableSnapshot::load(&wp)?) } else { None };
    Ok(Loaded { trainable, wise_prev, state })
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}
