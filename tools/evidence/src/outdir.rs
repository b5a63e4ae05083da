//! The output directory of an extraction: names from evidence become safe file names, and
//! nothing is ever created outside the directory or through a symlink.
//!
//! Every writer that stores files named by evidence (file-system extractors,
//! `vestige extract … --out DIR`, recovered binaries, the report's attachments) goes
//! through [`SafeOutDir`]:
//!
//! * the directory is opened once ([`SafeOutDir::open`], `O_DIRECTORY | O_NOFOLLOW`) and
//!   every later creation is relative to that descriptor (`mkdirat`, `openat` with
//!   `O_NOFOLLOW`), one component at a time. A symlink planted in the directory, or swapped
//!   in while an extraction runs, is never followed: it is an error naming it. Renaming the
//!   directory away and putting a symlink in its place does not redirect writes either;
//! * each untrusted name becomes exactly one component through [`safe_component`]: `/`,
//!   `..`, control characters, invalid UTF-8 and over-long names cannot leave the directory,
//!   inject terminal escape sequences or collide;
//! * files are created with `O_EXCL`: nothing is ever overwritten, whether a file of an
//!   earlier run, a second file that maps to the same name on a case-insensitive file
//!   system, or a planted symlink;
//! * created files are never executable (mode `0640`, directories `0750`, before the umask),
//!   so a recovered malware binary cannot be started by a stray double-click.
//!
//! The caller records each original name next to the relative path it got back
//! ([`CreatedFile::relative_path`]), e.g. in a sidecar file, so the mapping stays auditable.
//!
//! ```
//! use std::io::Write;
//! use vestige_evidence::outdir::SafeOutDir;
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path().join("out");
//! let out = SafeOutDir::open_or_create(&dir).unwrap();
//! let mut created = out.create_file(&[&b".."[..], b"etc", b"passwd\x1b[2J"]).unwrap();
//! created.file.write_all(b"root:x:0:0::/root:/bin/sh\n").unwrap();
//! assert_eq!(created.relative_path, "\\x2e\\x2e/etc/passwd\\x1b[2J");
//! assert!(dir.join(&created.relative_path).is_file());
//! ```

use crate::text::push_byte_escaped;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The longest file-name component Linux file systems accept (`NAME_MAX`), in bytes.
pub const NAME_MAX_BYTES: usize = 255;

/// What an empty name becomes: `\(` is never produced by the byte escaping.
pub const EMPTY_NAME: &str = "\\(empty)";

/// Starts the hash suffix of a shortened name: `\#` is never produced by the byte escaping.
pub const SHORTENED_MARK: &str = "\\#";

/// Hex digits of the SHA-256 prefix that ends a shortened name (128 bits).
const SHORTENED_HASH_HEX_CHARS: usize = 32;

/// Bytes of a shortened name's suffix: the mark and the hex digits.
const SHORTENED_SUFFIX_BYTES: usize = SHORTENED_MARK.len() + SHORTENED_HASH_HEX_CHARS;

/// Permissions of created files before the umask: never executable.
const FILE_MODE: u32 = 0o640;
/// Permissions of created directories before the umask.
const DIR_MODE: u32 = 0o750;

/// Turns one untrusted name from evidence into one safe file-name component.
///
/// The mapping, byte by byte, is [`crate::text::display_safe`]'s, with a few more escapes:
///
/// | input | output |
/// |---|---|
/// | printable ASCII (0x20–0x7E) except `\` and `/` | itself |
/// | `\`, `/`, NUL, controls, DEL, bytes ≥ 0x80 (invalid UTF-8 too) | `\xNN`, lowercase hex |
/// | `-` as the first byte (would read as an option in a shell) | `\x2d` |
/// | the names `.` and `..` | every byte escaped: `\x2e`, `\x2e\x2e` |
/// | the empty name | [`EMPTY_NAME`], `\(empty)` |
/// | a result longer than [`NAME_MAX_BYTES`] | cut after a whole escape to at most 221 bytes, then [`SHORTENED_MARK`] and 32 hex digits of the SHA-256 of the original bytes |
///
/// So the result is never empty, never `.` or `..`, at most 255 bytes, printable ASCII only
/// (no `/`, no NUL, no escape sequence reaches a terminal), and does not start with `-`.
///
/// **Injective on realistic input**: two different names never give the same component.
/// Outside the two special forms a literal `\` only ever starts a `\xNN` escape, so an
/// unshortened result decodes back to exactly one name. [`EMPTY_NAME`] (`\(`) and the
/// shortened suffix (`\#`) are sequences that escaping never produces, so they cannot equal
/// an unshortened result, nor each other. Two shortened results are equal only if two
/// different names share the first 128 bits of their SHA-256, which needs about 2^64 hash
/// evaluations to find on purpose. On a case-insensitive output file system (vfat, exFAT)
/// names differing only in case still meet; [`SafeOutDir::create_file`] then refuses the
/// second rather than overwriting the first.
#[must_use]
pub fn safe_component(name: &[u8]) -> String {
    if name.is_empty() {
        return EMPTY_NAME.to_owned();
    }
    let full = escape_component(name, usize::MAX);
    if full.len() <= NAME_MAX_BYTES {
        return full;
    }
    let mut out = escape_component(name, NAME_MAX_BYTES - SHORTENED_SUFFIX_BYTES);
    out.push_str(SHORTENED_MARK);
    let digest = Sha256::digest(name);
    let hex = hex::encode(digest);
    out.push_str(hex.get(..SHORTENED_HASH_HEX_CHARS).unwrap_or(&hex));
    out
}

/// Whether `component` has the properties [`safe_component`] guarantees: non-empty, not
/// `.` or `..`, at most [`NAME_MAX_BYTES`], printable ASCII without `/`, not starting
/// with `-`. For names read back from a listing or sidecar before they are used as paths.
#[must_use]
pub fn is_safe_component(component: &str) -> bool {
    !component.is_empty()
        && component != "."
        && component != ".."
        && component.len() <= NAME_MAX_BYTES
        && component
            .bytes()
            .all(|b| (0x20..0x7F).contains(&b) && b != b'/')
        && !component.starts_with('-')
}

/// The name a [`safe_component`] result was made from: the escaping undone. `None` for a
/// shortened component (its tail is a hash) and for text that escaping cannot produce (a
/// bare or cut `\`, upper-case hex).
#[must_use]
pub fn original_name(component: &str) -> Option<Vec<u8>> {
    if component == EMPTY_NAME {
        return Some(Vec::new());
    }
    if component.contains(SHORTENED_MARK) {
        return None;
    }
    let mut out = Vec::with_capacity(component.len());
    let mut rest = component.as_bytes();
    while let Some((&b, after)) = rest.split_first() {
        if b == b'\\' {
            let (escape, after) = after.split_at_checked(3)?;
            let (x, hex) = escape.split_first()?;
            let hex = std::str::from_utf8(hex).ok()?;
            if *x != b'x' || hex != hex.to_ascii_lowercase() {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            rest = after;
        } else {
            out.push(b);
            rest = after;
        }
    }
    Some(out)
}

/// The escaped form of `name`, stopping before the first byte whose escape would take the
/// result past `limit_bytes`, so no `\xNN` escape is ever cut in half.
fn escape_component(name: &[u8], limit_bytes: usize) -> String {
    let special = name == b"." || name == b"..";
    let mut out = String::with_capacity(name.len().min(limit_bytes));
    let mut piece = String::with_capacity(4);
    for (index, &b) in name.iter().enumerate() {
        let force = special || b == b'/' || (index == 0 && b == b'-');
        piece.clear();
        push_byte_escaped(&mut piece, b, force);
        if out.len().saturating_add(piece.len()) > limit_bytes {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The kind of an existing directory entry, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    RegularFile,
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO, socket or device node.
    Special,
    /// The entry could not be examined (it vanished, or `fstatat` failed).
    Unknown,
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RegularFile => "regular file",
            Self::Directory => "directory",
            Self::Symlink => "symbolic link",
            Self::Special => "FIFO, socket or device node",
            Self::Unknown => "entry of unknown kind",
        })
    }
}

/// What went wrong creating something in the output directory. Paths are the output
/// directory as given joined with the safe relative path, so they are printable.
#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    /// The output directory could not be opened as a directory without following a symlink.
    #[error(
        "output directory {path}: cannot open it, expected a directory that is not a symbolic link"
    )]
    OpenDir {
        /// The directory as given.
        path: PathBuf,
        /// The `open` error (`ELOOP` for a symlink, `ENOTDIR`, `ENOENT`, …).
        #[source]
        source: io::Error,
    },
    /// The output directory did not exist and could not be created.
    #[error("output directory {path}: cannot create it")]
    CreateDir {
        /// The directory as given.
        path: PathBuf,
        /// The `mkdir` error.
        #[source]
        source: io::Error,
    },
    /// An intermediate component exists but is not a directory (a symlink is never followed).
    #[error("{path}: is a {found}, expected a directory (symbolic links are never followed)")]
    NotADirectory {
        /// The offending entry.
        path: PathBuf,
        /// What it is instead.
        found: EntryKind,
    },
    /// The file to create already exists: nothing is overwritten, and a symlink is not followed.
    #[error("{path}: already exists as a {found}, expected no entry (nothing is overwritten)")]
    AlreadyExists {
        /// The existing entry.
        path: PathBuf,
        /// What it is.
        found: EntryKind,
    },
    /// Creating or opening an entry failed otherwise.
    #[error("{path}: cannot {operation}")]
    Io {
        /// The entry.
        path: PathBuf,
        /// What was attempted: "create directory", "open directory", "create file".
        operation: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A file was asked for with no name at all.
    #[error("output directory {path}: no path components given, expected at least a file name")]
    NoComponents {
        /// The output directory.
        path: PathBuf,
    },
}

/// A file just created by [`SafeOutDir::create_file`].
#[derive(Debug)]
pub struct CreatedFile {
    /// Open for writing; the file was created empty by this call.
    pub file: File,
    /// Where it is, relative to the output directory: the safe components joined with `/`
    /// (printable ASCII). Record it next to the original name.
    pub relative_path: String,
}

/// An output directory, held open so that everything created in it stays in it.
///
/// Only the last component of the path given to [`SafeOutDir::open`] must not be a
/// symlink; the components above it were chosen by the examiner and are resolved as usual.
/// Below it, nothing is resolved through a symlink.
#[derive(Debug)]
pub struct SafeOutDir {
    dir: OwnedFd,
    path: PathBuf,
}

impl SafeOutDir {
    /// Opens an existing output directory.
    ///
    /// # Errors
    /// [`OutDirError::OpenDir`] if `path` does not exist, is not a directory or is a symlink.
    pub fn open(path: &Path) -> Result<Self, OutDirError> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| OutDirError::OpenDir {
            path: path.to_owned(),
            source: e.into(),
        })?;
        Ok(Self {
            dir,
            path: path.to_owned(),
        })
    }

    /// Opens the output directory, first creating it (not its parents) if it is missing.
    ///
    /// # Errors
    /// [`OutDirError::CreateDir`] if it cannot be created; then as [`SafeOutDir::open`].
    pub fn open_or_create(path: &Path) -> Result<Self, OutDirError> {
        match rustix::fs::mkdir(path, Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(OutDirError::CreateDir {
                    path: path.to_owned(),
                    source: e.into(),
                })
            }
        }
        Self::open(path)
    }

    /// The output directory as it was given.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the directories named by `components` (untrusted names, each made one level
    /// with [`safe_component`]); existing directories are reused. Returns the relative path.
    ///
    /// # Errors
    /// [`OutDirError::NotADirectory`] if an existing entry on the way is a symlink or not a
    /// directory; [`OutDirError::Io`] if creating or opening one fails.
    pub fn create_dir<C: AsRef<[u8]>>(&self, components: &[C]) -> Result<String, OutDirError> {
        let (_, relative_path) = self.walk_dirs(components)?;
        Ok(relative_path)
    }

    /// Creates a new file at the path named by `components`, creating the directories
    /// before the last component as [`SafeOutDir::create_dir`] does. Each component is
    /// taken as one untrusted name and passed through [`safe_component`]; nothing in them
    /// is interpreted (`..` or `a/b` is a name, not a path), so split a path on its
    /// separator before calling.
    ///
    /// # Errors
    /// [`OutDirError::NoComponents`] for an empty slice; [`OutDirError::AlreadyExists`] if
    /// anything, a symlink included, already has the file's name; as
    /// [`SafeOutDir::create_dir`] for the directories.
    pub fn create_file<C: AsRef<[u8]>>(
        &self,
        components: &[C],
    ) -> Result<CreatedFile, OutDirError> {
        let Some((last, dirs)) = components.split_last() else {
            return Err(OutDirError::NoComponents {
                path: self.path.clone(),
            });
        };
        let (parent, mut relative_path) = self.walk_dirs(dirs)?;
        let parent_fd = parent.as_ref().map_or(self.dir.as_fd(), AsFd::as_fd);
        let name = safe_component(last.as_ref());
        if !relative_path.is_empty() {
            relative_path.push('/');
        }
        relative_path.push_str(&name);
        // O_EXCL makes O_CREAT refuse any existing entry, a dangling symlink included, and
        // O_NOFOLLOW says so twice.
        let created = rustix::fs::openat(
            parent_fd,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        );
        match created {
            Ok(fd) => Ok(CreatedFile {
                file: File::from(fd),
                relative_path,
            }),
            Err(Errno::EXIST | Errno::LOOP) => Err(OutDirError::AlreadyExists {
                found: entry_kind(parent_fd, &name),
                path: self.path.join(&relative_path),
            }),
            Err(e) => Err(OutDirError::Io {
                path: self.path.join(&relative_path),
                operation: "create file",
                source: e.into(),
            }),
        }
    }

    /// Creates (or reuses) and opens each directory in turn, each relative to the one
    /// before. Returns the last one (`None`: the output directory itself) and the relative
    /// path.
    fn walk_dirs<C: AsRef<[u8]>>(
        &self,
        components: &[C],
    ) -> Result<(Option<OwnedFd>, String), OutDirError> {
        let mut current: Option<OwnedFd> = None;
        let mut relative_path = String::new();
        for component in components {
            let name = safe_component(component.as_ref());
            if !relative_path.is_empty() {
                relative_path.push('/');
            }
            relative_path.push_str(&name);
            let parent = current.as_ref().map_or(self.dir.as_fd(), AsFd::as_fd);
            // mkdirat never follows a symlink: an existing one, even dangling, is EEXIST,
            // and the open below then refuses it.
            match rustix::fs::mkdirat(parent, name.as_str(), Mode::from_raw_mode(DIR_MODE)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(OutDirError::Io {
                        path: self.path.join(&relative_path),
                        operation: "create directory",
                        source: e.into(),
                    })
                }
            }
            let opened = rustix::fs::openat(
                parent,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            let next = match opened {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(OutDirError::NotADirectory {
                        found: entry_kind(parent, &name),
                        path: self.path.join(&relative_path),
                    })
                }
                Err(e) => {
                    return Err(OutDirError::Io {
                        path: self.path.join(&relative_path),
                        operation: "open directory",
                        source: e.into(),
                    })
                }
            };
            current = Some(next);
        }
        Ok((current, relative_path))
    }
}

/// What `name` in `dir` is, without following a symlink; only for error messages.
fn entry_kind(dir: BorrowedFd<'_>, name: &str) -> EntryKind {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => EntryKind::RegularFile,
            FileType::Directory => EntryKind::Directory,
            FileType::Symlink => EntryKind::Symlink,
            FileType::Fifo
            | FileType::Socket
            | FileType::CharacterDevice
            | FileType::BlockDevice => EntryKind::Special,
            FileType::Unknown => EntryKind::Unknown,
        },
        Err(_) => EntryKind::Unknown,
    }
}

#[cfg(test)]
#[path = "outdir_tests.rs"]
mod tests;
