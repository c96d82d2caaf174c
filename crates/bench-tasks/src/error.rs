//! The crate's error type: every data problem names the file, the place in it and the field.

use std::fmt;
use std::path::PathBuf;

/// Where in a file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole.
    File,
    /// A 1-based line (JSONL rows, CSV records, JSON syntax errors).
    Line(usize),
    /// A 0-based index into the top-level JSON array (or `Instances` of a SuperNI file).
    Index(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => Ok(()),
            Location::Line(n) => write!(f, ", line {n}"),
            Location::Index(n) => write!(f, ", array index {n}"),
        }
    }
}

/// Everything that can go wrong while finding, reading, fetching or formatting task data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON / CSV / TOML at all.
    #[error("{}{at}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// A row is well-formed but a field is missing or has the wrong type or value.
    #[error("{}{at}: field `{field}`: {problem}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// The row.
        at: Location,
        /// The field, dotted for nested ones (`question.stem`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No data directory was given and the default does not exist.
    #[error(
        "no task data directory: pass --data-dir, set CONTINUAL_DATA_DIR, or place the data at \
         {} (tried: {})",
        default.display(),
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoDataDir {
        /// The default location (`../shared/data` from the current directory).
        default: PathBuf,
        /// Every location tried, in order.
        tried: Vec<PathBuf>,
    },
    /// A suite file or a task name in it is invalid.
    #[error("suite {}: {message}", path.display())]
    Suite {
        /// The suite file (or the task's name when no file is involved).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A download failed.
    #[error("fetch {url}: {message}")]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn field(
        path: impl Into<PathBuf>,
        at: Location,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        DataError::Field {
            path: path.into(),
            at,
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn suite(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Suite {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_error_names_file_line_and_field() {
        let e = DataError::field("gsm8k/test.jsonl", Location::Line(7), "answer", "missing");
        assert_eq!(
            e.to_string(),
            "gsm8k/test.jsonl, line 7: field `answer`: missing"
        );
    }

    #[test]
    fn index_location_reads_as_array_index() {
        let e = DataError::field("a.json", Location::Index(3), "prompt", "expected a string");
        assert_eq!(
            e.to_string(),
            "a.json, array index 3: field `prompt`: expected a string"
        );
    }
}
