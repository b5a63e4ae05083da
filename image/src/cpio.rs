//! A reproducible writer of "newc" cpio archives (the format the Linux kernel unpacks as an
//! initramfs: `Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Every entry header is the magic `070701` followed by thirteen 8-digit hexadecimal fields
//! (ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
//! namesize, check), then the NUL-terminated name padded to a multiple of 4 bytes, then the
//! data padded to a multiple of 4 bytes. The archive ends with an entry named `TRAILER!!!`.
//!
//! Reproducibility is the point of writing it ourselves rather than piping `find | cpio`:
//! names are emitted sorted by their bytes (so a parent directory always precedes its
//! children), every mtime is the one given to [`Tree::write`] (SOURCE_DATE_EPOCH), owners are
//! root, inode numbers count up from 1 in name order, regular files have nlink 1 (so the
//! kernel never treats two of them as hard links of one another) and directories nlink 2.
//!
//! ```
//! use vestige_image::cpio::Tree;
//! let mut tree = Tree::new();
//! tree.add_file("bin/hello", 0o755, b"#!/bin/sh\necho hi\n".to_vec()).unwrap();
//! tree.add_symlink("sbin", "bin").unwrap();
//! let mut archive = Vec::new();
//! tree.write(&mut archive, 0).unwrap();
//! assert!(archive.starts_with(b"070701"));
//! ```

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The "newc" magic (no header checksum).
pub const MAGIC: &[u8; 6] = b"070701";
/// Name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";
/// Length of a newc header in bytes (magic + 13 fields of 8 hex digits).
pub const HEADER_LEN: usize = 110;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
/// Permission bits a mode may carry (rwx for all, setuid, setgid, sticky).
const PERMISSION_BITS: u32 = 0o7777;

/// Errors building or writing an archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name that the kernel would refuse or resolve elsewhere.
    #[error("cpio entry {name:?}: {reason}")]
    BadName {
        /// The offending name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Two entries with one name.
    #[error("cpio entry {name:?} added twice")]
    Duplicate {
        /// The name added twice.
        name: String,
    },
    /// A mode with bits beyond the permission bits.
    #[error("cpio entry {name:?}: mode {mode:#o} has bits beyond {PERMISSION_BITS:#o}")]
    BadMode {
        /// Entry name.
        name: String,
        /// The mode given.
        mode: u32,
    },
    /// A path whose parent was added as something other than a directory.
    #[error("cpio entry {name:?}: parent {parent:?} is not a directory")]
    ParentNotDirectory {
        /// Entry name.
        name: String,
        /// The parent that is a file, symlink or device.
        parent: String,
    },
    /// A field that does not fit the 32 bits of a newc header.
    #[error("cpio entry {name:?}: {field} {value} does not fit in 32 bits")]
    FieldTooLarge {
        /// Entry name.
        name: String,
        /// Header field (`filesize`, `mtime`, `namesize`).
        field: &'static str,
        /// The value that does not fit.
        value: u64,
    },
    /// A host file changed size between being added and being written.
    #[error("cpio entry {name:?}: {path} was {expected} bytes when added, {found} when written")]
    SizeChanged {
        /// Entry name.
        name: String,
        /// Host file.
        path: PathBuf,
        /// Size when added.
        expected: u64,
        /// Size read when writing.
        found: u64,
    },
    /// Reading a host file or writing the archive failed.
    #[error("cpio entry {name:?}: {path}")]
    Io {
        /// Entry name (or the trailer).
        name: String,
        /// Host file or `<archive>`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Where a regular file's bytes come from.
#[derive(Debug, Clone)]
enum Data {
    Bytes(Vec<u8>),
    /// A host file, read when the archive is written; its size is fixed when added.
    Host {
        path: PathBuf,
        size: u64,
    },
}

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File(Data),
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
}

#[derive(Debug, Clone)]
struct Entry {
    permissions: u32,
    kind: Kind,
}

/// A file tree to be written as one cpio archive. Names are relative (`bin/vestige`); missing
/// parent directories are created with mode 0755.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries (directories included, the trailer not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a directory (and its missing parents). Adding an existing directory again only
    /// sets its mode.
    pub fn add_dir(&mut self, name: &str, permissions: u32) -> Result<()> {
        let name = check_name(name)?;
        check_mode(&name, permissions)?;
        self.add_parents(&name)?;
        match self.entries.get_mut(&name) {
            Some(Entry {
                kind: Kind::Dir,
                permissions: p,
            }) => {
                *p = permissions;
                Ok(())
            }
            Some(_) => Err(Error::Duplicate { name }),
            None => {
                self.entries.insert(
                    name,
                    Entry {
                        permissions,
                        kind: Kind::Dir,
                    },
                );
                Ok(())
            }
        }
    }

    /// Adds a regular file holding `bytes`.
    pub fn add_file(&mut self, name: &str, permissions: u32, bytes: Vec<u8>) -> Result<()> {
        self.insert(name, permissions, Kind::File(Data::Bytes(bytes)))
    }

    /// Adds a regular file whose bytes are read from `host` when the archive is written
    /// (copied byte for byte: kernel modules keep their appended signatures).
    pub fn add_host_file(&mut self, name: &str, permissions: u32, host: &Path) -> Result<()> {
        let size = std::fs::metadata(host)
            .map_err(|source| Error::Io {
                name: name.to_owned(),
                path: host.to_owned(),
                source,
            })?
            .len();
        self.insert(
            name,
            permissions,
            Kind::File(Data::Host {
                path: host.to_owned(),
                size,
            }),
        )
    }

    /// Adds a symbolic link to `target` (stored verbatim; mode 0777 as on Linux).
    pub fn add_symlink(&mut self, name: &str, target: &str) -> Result<()> {
        if target.is_empty() || target.contains('\0') {
            return Err(Error::BadName {
                name: name.to_owned(),
                reason: "symlink target is empty or holds a NUL byte",
            });
        }
        self.insert(name, 0o777, Kind::Symlink(target.to_owned()))
    }

    /// Adds a character device node (e.g. `dev/console`, 5:1, which the kernel opens for
    /// PID 1's stdin/stdout/stderr before devtmpfs is mounted).
    pub fn add_char_device(
        &mut self,
        name: &str,
        permissions: u32,
        major: u32,
        minor: u32,
    ) -> Result<()> {
        self.insert(name, permissions, Kind::CharDevice { major, minor })
    }

    fn insert(&mut self, name: &str, permissions: u32, kind: Kind) -> Result<()> {
        let name = check_name(name)?;
        check_mode(&name, permissions)?;
        if self.entries.contains_key(&name) {
            return Err(Error::Duplicate { name });
        }
        self.add_parents(&name)?;
        self.entries.insert(name, Entry { permissions, kind });
        Ok(())
    }

    fn add_parents(&mut self, name: &str) -> Result<()> {
        let mut end = 0;
        while let Some(slash) = name.get(end..).and_then(|rest| rest.find('/')) {
            end += slash;
            let parent = name.get(..end).unwrap_or_default();
            match self.entries.get(parent) {
                Some(Entry {
                    kind: Kind::Dir, ..
                }) => {}
                Some(_) => {
                    return Err(Error::ParentNotDirectory {
                        name: name.to_owned(),
                        parent: parent.to_owned(),
                    })
                }
                None => {
                    self.entries.insert(
                        parent.to_owned(),
                        Entry {
                            permissions: 0o755,
                            kind: Kind::Dir,
                        },
                    );
                }
            }
            end += 1;
        }
        Ok(())
    }

    /// Writes the archive (entries sorted by name, then the trailer) with every mtime set to
    /// `mtime` (seconds since the epoch). Returns the number of bytes written.
    pub fn write<W: Write>(&self, out: W, mtime: u64) -> Result<u64> {
        let mut out = Counting {
            inner: out,
            bytes: 0,
        };
        for (index, (name, entry)) in self.entries.iter().enumerate() {
            // Inode 0 is left to the trailer, as GNU cpio does.
            let ino = u64::try_from(index).map_or(u64::MAX, |i| i.saturating_add(1));
            write_entry(&mut out, ino, name, entry, mtime)?;
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            mtime: 0,
            filesize: 0,
            rdev: (0, 0),
        };
        write_header(&mut out, TRAILER, &trailer)?;
        out.flush().map_err(|source| archive_io(TRAILER, source))?;
        Ok(out.bytes)
    }
}

fn check_name(name: &str) -> Result<String> {
    let bad = |reason| Error::BadName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.contains('\0') {
        return Err(bad("NUL byte in name"));
    }
    if name.starts_with('/') {
        return Err(bad(
            "absolute name (archive names are relative to the root)",
        ));
    }
    if name == TRAILER {
        return Err(bad("the trailer's name would end the archive early"));
    }
    for component in name.split('/') {
        match component {
            "" => return Err(bad("empty path component (`//` or a trailing `/`)")),
            "." | ".." => return Err(bad("`.` or `..` component")),
            _ => {}
        }
    }
    Ok(name.to_owned())
}

fn check_mode(name: &str, permissions: u32) -> Result<()> {
    if permissions & !PERMISSION_BITS != 0 {
        return Err(Error::BadMode {
            name: name.to_owned(),
            mode: permissions,
        });
    }
    Ok(())
}

struct Header {
    ino: u64,
    mode: u32,
    nlink: u32,
    mtime: u64,
    filesize: u64,
    rdev: (u32, u32),
}

fn field(name: &str, field: &'static str, value: u64) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::FieldTooLarge {
        name: name.to_owned(),
        field,
        value,
    })
}

fn archive_io(name: &str, source: io::Error) -> Error {
    Error::Io {
        name: name.to_owned(),
        path: PathBuf::from("<archive>"),
        source,
    }
}

fn write_header<W: Write>(out: &mut Counting<W>, name: &str, h: &Header) -> Result<()> {
    let namesize = u64::try_from(name.len())
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let fields = [
        field(name, "ino", h.ino)?,
        h.mode,
        0, // uid
        0, // gid
        h.nlink,
        field(name, "mtime", h.mtime)?,
        field(name, "filesize", h.filesize)?,
        0, // devmajor
        0, // devminor
        h.rdev.0,
        h.rdev.1,
        field(name, "namesize", namesize)?,
        0, // check (only used by the 070702 "crc" variant)
    ];
    let mut header = Vec::with_capacity(HEADER_LEN + name.len() + 4);
    header.extend_from_slice(MAGIC);
    for value in fields {
        header.extend_from_slice(format!("{value:08X}").as_bytes());
    }
    header.extend_from_slice(name.as_bytes());
    header.push(0);
    header.resize(header.len().next_multiple_of(4), 0);
    out.write_all(&header)
        .map_err(|source| archive_io(name, source))
}

fn write_entry<W: Write>(
    out: &mut Counting<W>,
    ino: u64,
    name: &str,
    entry: &Entry,
    mtime: u64,
) -> Result<()> {
    let (type_bits, nlink, filesize, rdev) = match &entry.kind {
        Kind::Dir => (S_IFDIR, 2, 0, (0, 0)),
        Kind::File(Data::Bytes(b)) => (S_IFREG, 1, len_u64(b), (0, 0)),
        Kind::File(Data::Host { size, .. }) => (S_IFREG, 1, *size, (0, 0)),
        Kind::Symlink(target) => (S_IFLNK, 1, len_u64(target.as_bytes()), (0, 0)),
        Kind::CharDevice { major, minor } => (S_IFCHR, 1, 0, (*major, *minor)),
    };
    let header = Header {
        ino,
        mode: type_bits | entry.permissions,
        nlink,
        mtime,
        filesize,
        rdev,
    };
    write_header(out, name, &header)?;
    match &entry.kind {
        Kind::File(Data::Bytes(b)) => {
            out.write_all(b)
                .map_err(|source| archive_io(name, source))?;
        }
        Kind::Symlink(target) => out
            .write_all(target.as_bytes())
            .map_err(|source| archive_io(name, source))?,
        Kind::File(Data::Host { path, size }) => copy_host(out, name, path, *size)?,
        Kind::Dir | Kind::CharDevice { .. } => {}
    }
    let pad = pad_len(filesize);
    out.write_all([0u8; 3].get(..pad).unwrap_or_default())
        .map_err(|source| archive_io(name, source))
}

fn copy_host<W: Write>(out: &mut Counting<W>, name: &str, path: &Path, size: u64) -> Result<()> {
    let host_err = |source| Error::Io {
        name: name.to_owned(),
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(host_err)?;
    // Read one byte past the expected size so a file that grew is caught too.
    let mut limited = file.take(size.saturating_add(1));
    let before = out.bytes;
    io::copy(&mut limited, out).map_err(|source| Error::Io {
        name: name.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let found = out.bytes.saturating_sub(before);
    if found != size {
        return Err(Error::SizeChanged {
            name: name.to_owned(),
            path: path.to_owned(),
            expected: size,
            found,
        });
    }
    Ok(())
}

fn len_u64(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

/// Bytes of zero padding after `len` bytes of data to reach a multiple of 4.
fn pad_len(len: u64) -> usize {
    match len % 4 {
        1 => 3,
        2 => 2,
        3 => 1,
        _ => 0,
    }
}

/// A writer that counts the bytes passed through it.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes = self
            .bytes
            .saturating_add(len_u64(buf.get(..n).unwrap_or(buf)));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests;
