//! The one error type of the crate: every variant names the file it is about.

use std::fmt;
use std::path::PathBuf;

/// Why a results tree could not be read or a report could not be written.
///
/// Every variant names the file (and, for `log.jsonl`, the 1-based line) so that a malformed
/// input can be found and fixed; bad input never panics.
#[derive(Debug)]
pub enum ReportError {
    /// Reading or writing a file or directory failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file is not valid JSON or does not have the documented shape.
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error (with its own line and column).
        source: serde_json::Error,
    },
    /// A file parsed but its content is inconsistent (wrong matrix shape, a required file missing).
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// One line of a `log.jsonl` file is malformed.
    LogLine {
        /// The `log.jsonl` file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Json { path, source } => {
                write!(f, "{}: malformed JSON: {source}", path.display())
            }
            Self::Invalid { path, message } => write!(f, "{}: {message}", path.display()),
            Self::LogLine {
                path,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", path.display()),
        }
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Json { source, .. } => Some(source),
            Self::Invalid { .. } | Self::LogLine { .. } => None,
        }
    }
}

impl ReportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
