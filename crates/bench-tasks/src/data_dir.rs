//! Where the task data lives: `--data-dir`, then `CONTINUAL_DATA_DIR`, then `../shared/data`.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "CONTINUAL_DATA_DIR";

/// The default data directory, relative to the current directory (the repository root).
pub const DEFAULT_DATA_DIR: &str = "../shared/data";

/// Resolves the data directory: an explicit path (`--data-dir`) wins, then the
/// `CONTINUAL_DATA_DIR` environment variable, then `../shared/data` relative to the current
/// directory. The chosen directory must exist; otherwise the error lists what was tried.
pub fn resolve_data_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let env = std::env::var_os(DATA_DIR_ENV).map(PathBuf::from);
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    resolve_from(explicit, env.as_deref(), &cwd)
}

/// [`resolve_data_dir`] with the environment value and current directory given (testable).
pub fn resolve_from(explicit: Option<&Path>, env: Option<&Path>, cwd: &Path) -> Result<PathBuf> {
    let default = cwd.join(DEFAULT_DATA_DIR);
    // The first source that is set decides: a wrong explicit path is an error, not a fallback.
    let chosen = explicit
        .map(Path::to_path_buf)
        .or_else(|| {
            env.filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| default.clone());
    let chosen = if chosen.is_relative() {
        cwd.join(chosen)
    } else {
        chosen
    };
    if chosen.is_dir() {
        Ok(chosen)
    } else {
        Err(DataError::NoDataDir {
            default,
            tried: vec![chosen],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_dir_wins_over_env_and_default() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let got = resolve_from(Some(a.path()), Some(b.path()), b.path()).unwrap();
        assert_eq!(got, a.path());
    }

    #[test]
    fn env_wins_over_default() {
        let root = tempfile::tempdir().unwrap();
        let cwd = root.path().join("repo");
        std::fs::create_dir_all(cwd.join("../shared/data")).unwrap();
        let env = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve_from(None, Some(env.path()), &cwd).unwrap(),
            env.path()
        );
    }

    #[test]
    fn default_is_shared_data_beside_the_repo() {
        let root = tempfile::tempdir().unwrap();
        let cwd = root.path().join("repo");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir_all(root.path().join("shared/data")).unwrap();
        let got = resolve_from(None, None, &cwd).unwrap();
        assert!(got.ends_with("shared/data"));
    }

    #[test]
    fn missing_dir_is_a_clear_error() {
        let root = tempfile::tempdir().unwrap();
        let e = resolve_from(None, None, root.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CONTINUAL_DATA_DIR") && e.contains("--data-dir"),
            "{e}"
        );
    }

    #[test]
    fn wrong_explicit_dir_does_not_fall_back() {
        let root = tempfile::tempdir().unwrap();
        let e = resolve_from(Some(Path::new("/nonexistent/xyz")), None, root.path());
        assert!(e.is_err());
    }
}
