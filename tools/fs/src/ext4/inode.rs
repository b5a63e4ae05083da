//! The ext2/3/4 inode record ("Index Nodes" in the kernel's ext4 documentation): mode,
//! owners, size, the four times with their `_extra` nanoseconds and epoch bits, flags and
//! the 60-byte `i_block` area.

use super::bytes::{le16, le32};
use crate::{FileKind, Times, Timestamp};

pub const FL_INDEX: u32 = 0x1000;
pub const FL_HUGE_FILE: u32 = 0x4_0000;
pub const FL_EXTENTS: u32 = 0x8_0000;
pub const FL_EA_INODE: u32 = 0x20_0000;
pub const FL_INLINE_DATA: u32 = 0x1000_0000;
pub const FL_ENCRYPT: u32 = 0x800;

/// Bytes of `i_block`.
pub const I_BLOCK_BYTES: usize = 60;

/// The parts of an inode this reader uses, as stored.
#[derive(Debug, Clone)]
pub struct RawInode {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub links: u16,
    pub dtime: u32,
    pub flags: u32,
    pub i_block: [u8; I_BLOCK_BYTES],
    pub file_acl: u64,
    /// `i_extra_isize` (0 for 128-byte inodes).
    pub extra_isize: u16,
    pub times: Times,
    /// The whole record (for in-inode extended attributes).
    pub raw: Vec<u8>,
}

/// A time from its 32-bit seconds and, where present, its `_extra` word (low 2 bits:
/// epoch, extending the signed seconds past 2038; upper 30 bits: nanoseconds).
#[must_use]
pub fn decode_time(secs_lo: u32, extra: Option<u32>) -> Option<Timestamp> {
    let base = i64::from(i32::from_le_bytes(secs_lo.to_le_bytes()));
    let (secs, nanos) = match extra {
        Some(x) => (base + (i64::from(x & 3) << 32), (x >> 2).min(999_999_999)),
        None => (base, 0),
    };
    if secs == 0 && nanos == 0 {
        None
    } else {
        Some(Timestamp { secs, nanos })
    }
}

impl RawInode {
    /// Parses one inode record (`s_inode_size` bytes, at least 128).
    #[must_use]
    pub fn parse(b: &[u8]) -> Self {
        let extra_isize = if b.len() > 128 { le16(b, 0x80) } else { 0 };
        // An `_extra` field counts only when i_extra_isize covers it.
        let covered = |field_end: usize| {
            usize::from(extra_isize)
                .checked_add(128)
                .is_some_and(|end| end >= field_end && end <= b.len())
        };
        let extra = |at: usize| covered(at + 4).then(|| le32(b, at));
        let mut i_block = [0u8; I_BLOCK_BYTES];
        if let Some(s) = b.get(0x28..0x28 + I_BLOCK_BYTES) {
            i_block.copy_from_slice(s);
        }
        let created = if covered(0x94) {
            decode_time(le32(b, 0x90), extra(0x94))
        } else {
            None
        };
        Self {
            mode: le16(b, 0x0),
            uid: u32::from(le16(b, 0x2)) | (u32::from(le16(b, 0x78)) << 16),
            gid: u32::from(le16(b, 0x18)) | (u32::from(le16(b, 0x7A)) << 16),
            size: u64::from(le32(b, 0x4)) | (u64::from(le32(b, 0x6C)) << 32),
            links: le16(b, 0x1A),
            dtime: le32(b, 0x14),
            flags: le32(b, 0x20),
            i_block,
            file_acl: u64::from(le32(b, 0x68)) | (u64::from(le16(b, 0x76)) << 32),
            extra_isize,
            times: Times {
                accessed: decode_time(le32(b, 0x8), extra(0x8C)),
                modified: decode_time(le32(b, 0x10), extra(0x88)),
                changed: decode_time(le32(b, 0xC), extra(0x84)),
                created,
            },
            raw: b.to_vec(),
        }
    }

    /// The kind `i_mode` says.
    #[must_use]
    pub fn kind(&self) -> FileKind {
        kind_of_mode(self.mode)
    }
}

/// The kind an `i_mode` says.
#[must_use]
pub fn kind_of_mode(mode: u16) -> FileKind {
    match mode & 0xF000 {
        0x1000 => FileKind::Fifo,
        0x2000 => FileKind::CharDevice,
        0x4000 => FileKind::Directory,
        0x6000 => FileKind::BlockDevice,
        0x8000 => FileKind::Regular,
        0xA000 => FileKind::Symlink,
        0xC000 => FileKind::Socket,
        _ => FileKind::Unknown,
    }
}

/// The kind a directory entry's file type byte says.
#[must_use]
pub fn kind_of_dirent_type(t: u8) -> FileKind {
    match t {
        1 => FileKind::Regular,
        2 => FileKind::Directory,
        3 => FileKind::CharDevice,
        4 => FileKind::BlockDevice,
        5 => FileKind::Fifo,
        6 => FileKind::Socket,
        7 => FileKind::Symlink,
        _ => FileKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_past_2038_and_before_1970() {
        // 0x8000_0000 with epoch 0 is 1901; with epoch 1 it is 2038-01-19T03:14:08Z.
        let t =
            decode_time(0x8000_0000, Some(1 | (5 << 2))).unwrap_or(Timestamp { secs: 0, nanos: 0 });
        assert_eq!(t.secs, 2_147_483_648);
        assert_eq!(t.nanos, 5);
        let t = decode_time(0x8000_0000, Some(0));
        assert_eq!(t.map(|t| t.secs), Some(-2_147_483_648));
        // Epoch 3 with a small positive value: 2446 and later.
        let t = decode_time(10, Some(3));
        assert_eq!(t.map(|t| t.secs), Some(10 + (3i64 << 32)));
        assert_eq!(decode_time(0, Some(0)), None);
        assert_eq!(decode_time(0, None), None);
    }
}
