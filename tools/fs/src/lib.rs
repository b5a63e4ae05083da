//! File systems read straight from the evidence, never mounted: ext2/3/4, XFS, NTFS,
//! FAT12/16/32 and exFAT. Every reader sees what The Sleuth Kit sees, deleted entries included, and
//! serves it through one trait, [`FileSystem`], over any volume `ReadAt` (a partition of a
//! raw disk, an E01, a qcow2, an LVM logical volume …).
//!
//! Every reader follows the same rules:
//! - nothing is written: the volume is a `&dyn ReadAt`;
//! - every on-disk value is checked before use (sizes against the volume and fixed caps,
//!   block numbers inside the volume), tables are never allocated from a claim alone, and
//!   every walk is bounded (extent trees by depth, cluster chains by a visited set,
//!   directories by a cap), so hostile input gives an [`FsError`], never a panic or hang;
//! - names are returned as stored (bytes); printing them is the caller's job, escaped;
//! - times are returned as stored, in UTC, with the precision the file system has.
#![forbid(unsafe_code)]

pub use vestige_formats::crc32c;
pub mod error;
pub mod exfat;
pub mod ext4;
pub mod fat;
#[doc(hidden)]
pub mod fuzz_support;
pub mod locate;
pub mod mapped;
pub mod ntfs;
#[cfg(test)]
pub(crate) mod test_support;
pub mod walk;
pub mod xfs;

pub use error::FsError;
pub use vestige_evidence::read_at::ReadAt;

use serde::Serialize;

/// An inode number, an MFT entry number, or a FAT directory-entry address, as TSK numbers
/// them for that file system.
pub type Inode = u64;

/// What kind of file an entry or inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// Not known (a deleted entry whose inode says nothing, a type code we do not know).
    Unknown,
    /// A file the reader makes up to show something that has no entry of its own (TSK's
    /// `$OrphanFiles` directory).
    Virtual,
}

impl FileKind {
    /// TSK's one-letter type (`r`, `d`, `l`, `c`, `b`, `p`, `s`, `-`), as in bodyfile modes.
    #[must_use]
    pub fn tsk_letter(self) -> char {
        match self {
            Self::Regular => 'r',
            Self::Directory => 'd',
            Self::Symlink => 'l',
            Self::CharDevice => 'c',
            Self::BlockDevice => 'b',
            Self::Fifo => 'p',
            Self::Socket => 's',
            Self::Unknown => '-',
            Self::Virtual => 'V',
        }
    }
}

/// A point in time, UTC, as stored (nanoseconds where the file system has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub secs: i64,
    /// Nanoseconds within the second (0 ..= 999 999 999).
    pub nanos: u32,
}

/// The four times TSK reports. `None` where the file system has no such time or the value
/// is zero (unset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Times {
    /// Last access (atime).
    pub accessed: Option<Timestamp>,
    /// Last content change (mtime).
    pub modified: Option<Timestamp>,
    /// Last metadata change (ctime; NTFS: MFT entry changed).
    pub changed: Option<Timestamp>,
    /// Creation (crtime / birth).
    pub created: Option<Timestamp>,
}

/// A named data stream of a file besides its default one (an NTFS alternate data stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stream {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// TSK's address of it (`64-128-4` on NTFS).
    pub address: String,
}

/// What an inode (MFT entry, FAT directory entry) says about a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Its number.
    pub inode: Inode,
    /// TSK's address of its default data (`12` on ext4 and FAT; `64-128-2` on NTFS).
    pub address: String,
    /// Its kind.
    pub kind: FileKind,
    /// Permission bits (`0o7777`); for file systems without them, what TSK shows (NTFS and
    /// FAT: read bits unless read-only, write bits unless hidden, execute bits always).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Bytes of the default data stream.
    pub size: u64,
    /// Hard links.
    pub links: u32,
    /// Whether the inode / MFT entry is in use (false: deleted, possibly reused later).
    pub allocated: bool,
    /// The times TSK's bodyfile shows (NTFS: `$STANDARD_INFORMATION`).
    pub times: Times,
    /// NTFS `$FILE_NAME` times, reported beside the others: a disagreement is how
    /// timestomping shows.
    pub name_times: Option<Times>,
    /// TSK's address of the `$FILE_NAME` attribute those times come from (`64-48-3`).
    pub name_address: Option<String>,
    /// The size TSK shows on the `$FILE_NAME` line: that attribute's length.
    pub name_size: Option<u64>,
    /// Whether the file has a default (unnamed) data stream. NTFS system files such as
    /// `$Secure` have only named ones; the bodyfile then lists only those, as TSK does.
    pub default_data: bool,
    /// Named streams (NTFS ADS).
    pub streams: Vec<Stream>,
    /// Anything else an examiner should know (flags, oddities, what could not be read).
    pub notes: Vec<String>,
}

impl Metadata {
    /// The metadata every reader starts from: inode `inode` of kind `kind`, its address
    /// the inode number, allocated, one link, a default data stream, and nothing else
    /// known (mode, owner, size and times zero or unset, no streams, no notes). Readers
    /// override what their file system says: `Metadata { size, ..Metadata::new(i, k) }`.
    #[must_use]
    pub fn new(inode: Inode, kind: FileKind) -> Self {
        Self {
            inode,
            address: inode.to_string(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            links: 1,
            allocated: true,
            times: Times::default(),
            name_times: None,
            name_address: None,
            name_size: None,
            default_data: true,
            streams: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirEntry {
    /// The name as stored; UTF-16 names (NTFS, VFAT, exFAT) converted to UTF-8 (lossily
    /// for unpaired surrogates: U+FFFD).
    pub name: Vec<u8>,
    /// The inode it names (on a deleted entry, it may since have been reused).
    pub inode: Inode,
    /// The kind the entry says (ext4's file type byte, FAT's attributes), or Unknown.
    pub kind: FileKind,
    /// Whether the entry itself is deleted (found in slack or marked unused).
    pub deleted: bool,
}

/// What a file system is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsInfo {
    /// `ext2`, `ext3`, `ext4`, `xfs`, `ntfs`, `fat12`, `fat16`, `fat32`, `exfat`.
    pub kind: String,
    /// The volume label.
    pub label: Option<String>,
    /// The volume's UUID or serial number.
    pub id: Option<String>,
    /// Bytes per block (cluster).
    pub block_size: u32,
    /// Bytes the file system claims.
    pub size_bytes: u64,
    /// Anything else an examiner should know (features, last mount/write times, the
    /// time zone a FAT's local times are in, inconsistencies).
    pub notes: Vec<String>,
}

/// A file system opened read-only over a volume.
pub trait FileSystem: Send + Sync {
    /// What it is.
    fn info(&self) -> FsInfo;

    /// The root directory's inode.
    fn root(&self) -> Inode;

    /// The names in directory `dir`, allocated and deleted, without `.` and `..`.
    ///
    /// # Errors
    /// `dir` is not a directory, or its structures are damaged.
    fn read_dir(&self, dir: Inode) -> Result<Vec<DirEntry>, FsError>;

    /// What inode `inode` says.
    ///
    /// # Errors
    /// No such inode, or it is damaged.
    fn metadata(&self, inode: Inode) -> Result<Metadata, FsError>;

    /// The content of `inode`: its default data, or the named stream `stream`. Deleted
    /// files are read as far as their inode still maps their data.
    ///
    /// # Errors
    /// No such inode or stream, or its mapping is damaged.
    fn open(&self, inode: Inode, stream: Option<&str>) -> Result<Box<dyn ReadAt + '_>, FsError>;

    /// A symbolic link's target, as stored.
    ///
    /// # Errors
    /// Not a symlink, or damaged.
    fn read_link(&self, inode: Inode) -> Result<Vec<u8>, FsError>;

    /// Deleted inodes no directory entry names any more (TSK's `$OrphanFiles`).
    ///
    /// # Errors
    /// The inode tables cannot be read.
    fn orphans(&self) -> Result<Vec<Inode>, FsError> {
        Ok(Vec::new())
    }

    /// The number TSK gives its virtual `$OrphanFiles` directory, where it lists one (ext:
    /// the inode count + 1): the bodyfile then has its line.
    fn orphan_dir_inode(&self) -> Option<Inode> {
        None
    }

    /// The name TSK gives orphan `inode` under `$OrphanFiles`, when it is not
    /// `OrphanFile-N` (FAT: the short name of its directory entry).
    fn orphan_name(&self, inode: Inode) -> Option<Vec<u8>> {
        let _ = inode;
        None
    }
}

/// Reads exactly `buf.len()` bytes of `vol` at `offset`, naming `volume` on failure: the
/// one read every reader's structures go through.
///
/// # Errors
/// The volume ends early or cannot be read.
pub fn read_exact(
    vol: &dyn ReadAt,
    volume: &str,
    buf: &mut [u8],
    offset: u64,
) -> Result<(), FsError> {
    vol.read_exact_at(buf, offset)
        .map_err(|source| FsError::Io {
            volume: volume.to_string(),
            offset,
            len: buf.len(),
            source,
        })
}
