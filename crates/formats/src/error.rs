//! The one error type of the readers: each variant names the file, and the tensor or the
//! config field at fault.

use std::path::{Path, PathBuf};

/// Why a file could not be read or does not hold what its format promises.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid for its format (truncated, corrupt header, ...).
    #[error("{path}: {message}")]
    Format {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A config field is missing or has a value the model cannot use.
    #[error("{}config field `{field}`: {message}", .path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Config {
        /// The config file, when known.
        path: Option<PathBuf>,
        /// The field (a dotted path for nested ones: `rope_scaling.factor`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A file lacks a tensor asked for by name.
    #[error("{source_name}: missing tensor `{key}`")]
    MissingTensor {
        /// Weight file(s).
        source_name: String,
        /// Tensor name.
        key: String,
    },
    /// A tensor type this reader cannot convert.
    #[error("{source_name}: tensor `{key}` has unsupported type {dtype}")]
    UnsupportedDtype {
        /// Weight file(s).
        source_name: String,
        /// Tensor name.
        key: String,
        /// The type's name.
        dtype: String,
    },
}

impl FormatError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A malformed `path`.
    pub fn format(path: &Path, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// A bad config `field` (the file is attached later with [`FormatError::in_file`]).
    pub fn config(field: &str, message: impl Into<String>) -> Self {
        Self::Config {
            path: None,
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Attaches the config file's path to a config error that has none.
    pub fn in_file(self, file: &Path) -> Self {
        match self {
            Self::Config {
                path: None,
                field,
                message,
            } => Self::Config {
                path: Some(file.to_path_buf()),
                field,
                message,
            },
            other => other,
        }
    }
}
