//! Errors of adapter files and adapter selection.

use std::path::PathBuf;

/// What can go wrong reading, writing or applying adapters.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    /// No layer has an adapter of this name.
    #[error("no adapter named {0:?} in the model")]
    NoSuchAdapter(String),
    /// File-system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A malformed or unsupported adapter file.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl LoraError {
    pub(crate) fn format(path: &std::path::Path, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<formats::FormatError> for LoraError {
    fn from(e: formats::FormatError) -> Self {
        match e {
            formats::FormatError::Io { path, source } => Self::Io { path, source },
            formats::FormatError::Format { path, message } => Self::Format { path, message },
            // Config, tensor and dtype errors carry their file in the message.
            other => Self::Format {
                path: std::path::PathBuf::new(),
                message: other.to_string(),
            },
        }
    }
}
