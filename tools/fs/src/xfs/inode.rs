//! The inode core (v2: 100 bytes, v3: 176 bytes with crtime), its times (32-bit seconds
//! and nanoseconds, or bigtime: 64-bit nanoseconds since 1901-12-13T20:45:52Z), and where
//! its data and attribute forks are.

use super::be::{be16, be32, be64, bei32};
use crate::{FileKind, Times, Timestamp};

/// `IN`.
pub const MAGIC: u16 = 0x494E;
/// `di_format`.
pub const FMT_DEV: u8 = 0;
pub const FMT_LOCAL: u8 = 1;
pub const FMT_EXTENTS: u8 = 2;
pub const FMT_BTREE: u8 = 3;
const FLAGS2_BIGTIME: u64 = 0x8;
const FLAGS2_NREXT64: u64 = 0x10;
/// Seconds bigtime's zero lies before the Unix epoch (`-(2^31)`).
const BIGTIME_EPOCH_OFFSET: i64 = 1 << 31;

/// What the inode core says.
#[derive(Debug, Clone)]
pub struct RawInode {
    pub magic: u16,
    pub mode: u16,
    pub version: u8,
    pub format: u8,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub nextents: u64,
    pub forkoff: u8,
    pub aformat: u8,
    pub anextents: u64,
    pub flags: u16,
    pub flags2: u64,
    pub times: Times,
    /// The inode number v3 records in itself (0 on v2).
    pub self_ino: u64,
    /// The whole record.
    pub raw: Vec<u8>,
}

fn time(raw: &[u8], at: usize, bigtime: bool) -> Option<Timestamp> {
    let t = if bigtime {
        let ns = be64(raw, at);
        let secs = i64::try_from(ns / 1_000_000_000).ok()? - BIGTIME_EPOCH_OFFSET;
        let nanos = u32::try_from(ns % 1_000_000_000).ok()?;
        Timestamp { secs, nanos }
    } else {
        let secs = i64::from(bei32(raw, at));
        let nanos = be32(raw, at + 4);
        if nanos >= 1_000_000_000 {
            return None;
        }
        Timestamp { secs, nanos }
    };
    (t.secs != 0 || t.nanos != 0).then_some(t)
}

impl RawInode {
    pub fn parse(raw: &[u8]) -> Self {
        let version = raw.get(4).copied().unwrap_or(0);
        let flags2 = if version >= 3 { be64(raw, 120) } else { 0 };
        let bigtime = flags2 & FLAGS2_BIGTIME != 0;
        let nrext64 = flags2 & FLAGS2_NREXT64 != 0;
        let (nextents, anextents) = if nrext64 {
            (be64(raw, 24), u64::from(be32(raw, 76)))
        } else {
            (u64::from(be32(raw, 76)), u64::from(be16(raw, 80)))
        };
        let times = Times {
            accessed: time(raw, 32, bigtime),
            modified: time(raw, 40, bigtime),
            changed: time(raw, 48, bigtime),
            created: if version >= 3 {
                time(raw, 144, bigtime)
            } else {
                None
            },
        };
        Self {
            magic: be16(raw, 0),
            mode: be16(raw, 2),
            version,
            format: raw.get(5).copied().unwrap_or(0),
            uid: be32(raw, 8),
            gid: be32(raw, 12),
            nlink: if version == 1 {
                u32::from(be16(raw, 6))
            } else {
                be32(raw, 16)
            },
            size: be64(raw, 56),
            nextents,
            forkoff: raw.get(82).copied().unwrap_or(0),
            aformat: raw.get(83).copied().unwrap_or(0),
            anextents,
            flags: be16(raw, 90),
            flags2,
            times,
            self_ino: if version >= 3 { be64(raw, 152) } else { 0 },
            raw: raw.to_vec(),
        }
    }

    pub fn kind(&self) -> FileKind {
        match self.mode & 0o170_000 {
            0o100_000 => FileKind::Regular,
            0o040_000 => FileKind::Directory,
            0o120_000 => FileKind::Symlink,
            0o020_000 => FileKind::CharDevice,
            0o060_000 => FileKind::BlockDevice,
            0o010_000 => FileKind::Fifo,
            0o140_000 => FileKind::Socket,
            _ => FileKind::Unknown,
        }
    }

    /// Bytes of the core (where the literal area starts).
    pub fn core_size(&self) -> usize {
        if self.version >= 3 {
            176
        } else {
            100
        }
    }

    /// The data fork's bytes.
    pub fn data_fork(&self) -> &[u8] {
        let start = self.core_size();
        let end = if self.forkoff != 0 {
            start + usize::from(self.forkoff) * 8
        } else {
            self.raw.len()
        };
        self.raw
            .get(start..end.min(self.raw.len()))
            .unwrap_or_default()
    }

    /// The attribute fork's bytes (empty when there is none).
    pub fn attr_fork(&self) -> &[u8] {
        if self.forkoff == 0 {
            return &[];
        }
        let start = self.core_size() + usize::from(self.forkoff) * 8;
        self.raw.get(start..).unwrap_or_default()
    }
}
