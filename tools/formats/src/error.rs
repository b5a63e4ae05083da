//! One error type for every image reader: which file, which byte, which field, and what
//! was expected. Hostile images are the normal case, so these are ordinary values, never
//! panics.

use std::io;
use std::path::{Path, PathBuf};

/// Why an image cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A structure in the image is not what the format allows.
    #[error("{}: byte {offset}: {field}: {reason}", file.display())]
    Invalid {
        /// The file holding the structure (a segment, an extent, a backing file).
        file: PathBuf,
        /// Its byte offset in that file.
        offset: u64,
        /// The structure and field, e.g. `qcow2 header.l1_size`.
        field: &'static str,
        /// What was found and what was expected.
        reason: String,
    },
    /// A feature of the format this reader does not implement (refused, never guessed).
    #[error("{}: {what} is not supported", file.display())]
    Unsupported {
        /// The file.
        file: PathBuf,
        /// What is not supported.
        what: String,
    },
    /// Reading a file failed.
    #[error("{}: cannot {what}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl FormatError {
    /// A [`FormatError::Invalid`].
    pub fn invalid(
        file: impl Into<PathBuf>,
        offset: u64,
        field: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            file: file.into(),
            offset,
            field,
            reason: reason.into(),
        }
    }

    /// A map from an `io::Error` to a [`FormatError::Io`] naming `file` and `what`.
    pub(crate) fn io<'a>(
        file: &'a Path,
        what: &'static str,
    ) -> impl Fn(io::Error) -> Self + Copy + 'a {
        move |source| Self::Io {
            file: file.to_path_buf(),
            what: what.to_string(),
            source,
        }
    }

    /// Turns this into an `io::Error` (for [`vestige_evidence::read_at::ReadAt::read_at`]),
    /// keeping the message: `InvalidData` for a bad structure, the cause's kind for I/O.
    #[must_use]
    pub fn into_io(self) -> io::Error {
        match self {
            Self::Io { source, .. } if source.kind() != io::ErrorKind::Other => {
                io::Error::new(source.kind(), source.to_string())
            }
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}
