//! One error type for every file-system reader: which volume, which byte, which field, and
//! what was expected. Evidence is made by attackers, so these are ordinary values.

use std::io;

/// Why a file system, a directory or a file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A structure is not what the file system allows.
    #[error("{volume}: byte {offset}: {field}: {reason}")]
    Invalid {
        /// The volume, as the caller named it (e.g. `disk.E01 volume 002 (ext4)`).
        volume: String,
        /// The structure's byte offset in the volume.
        offset: u64,
        /// The structure and field, e.g. `ext4 inode 12.i_block`.
        field: &'static str,
        /// What was found and what was expected.
        reason: String,
    },
    /// A feature this reader does not implement (refused, never guessed).
    #[error("{volume}: {what} is not supported")]
    Unsupported {
        /// The volume.
        volume: String,
        /// What is not supported.
        what: String,
    },
    /// No such inode, entry or path.
    #[error("{volume}: {what} not found")]
    NotFound {
        /// The volume.
        volume: String,
        /// What was looked for.
        what: String,
    },
    /// Reading the volume failed.
    #[error("{volume}: cannot read {len} bytes at byte {offset}")]
    Io {
        /// The volume.
        volume: String,
        /// Where.
        offset: u64,
        /// How many bytes.
        len: usize,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl FsError {
    /// A [`FsError::Invalid`].
    pub fn invalid(
        volume: &str,
        offset: u64,
        field: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            volume: volume.to_string(),
            offset,
            field,
            reason: reason.into(),
        }
    }

    /// Turns this into an `io::Error` (for a file's `ReadAt`), keeping the message.
    #[must_use]
    pub fn into_io(self) -> io::Error {
        match self {
            Self::Io { source, .. } if source.kind() != io::ErrorKind::Other => {
                io::Error::new(source.kind(), source.to_string())
            }
            Self::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, self.to_string()),
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}
