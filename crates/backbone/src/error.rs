//! Errors of model loading: each names the file, the tensor or the config field at fault.

use std::path::{Path, PathBuf};

/// Why a model, its weights or its tokenizer could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
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
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint lacks a tensor the model needs.
    #[error("{source_name}: missing tensor `{key}`")]
    MissingTensor {
        /// Weight file(s).
        source_name: String,
        /// Checkpoint key.
        key: String,
    },
    /// The checkpoint has tensors the model does not use.
    #[error("{source_name}: unexpected tensor(s) {keys:?} not used by a {family} model")]
    UnexpectedTensors {
        /// Weight file(s).
        source_name: String,
        /// Keys.
        keys: Vec<String>,
        /// Model family.
        family: String,
    },
    /// A tensor's shape does not match the config.
    #[error("{source_name}: tensor `{key}` has shape {found:?}, the config needs {expected:?}")]
    ShapeMismatch {
        /// Weight file(s).
        source_name: String,
        /// Checkpoint key.
        key: String,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor type this loader cannot convert.
    #[error("{source_name}: tensor `{key}` has unsupported type {dtype}")]
    UnsupportedDtype {
        /// Weight file(s).
        source_name: String,
        /// Checkpoint key.
        key: String,
        /// The type's name.
        dtype: String,
    },
    /// The tokenizer could not be built or does not fit the model.
    #[error("tokenizer ({origin}): {message}")]
    Tokenizer {
        /// File or metadata it came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

impl LoadError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl From<formats::FormatError> for LoadError {
    /// The readers' errors keep their variant, so their messages are unchanged.
    fn from(e: formats::FormatError) -> Self {
        use formats::FormatError as F;
        match e {
            F::Io { path, source } => Self::Io { path, source },
            F::Format { path, message } => Self::Format { path, message },
            F::Config {
                path,
                field,
                message,
            } => Self::Config {
                path,
                field,
                message,
            },
            F::MissingTensor { source_name, key } => Self::MissingTensor { source_name, key },
            F::UnsupportedDtype {
                source_name,
                key,
                dtype,
            } => Self::UnsupportedDtype {
                source_name,
                key,
                dtype,
            },
        }
    }
}
