//! Version 2/3 directories: shortform (in the inode), and data blocks (`XD2B`/`XDB3`
//! single-block directories, `XD2D`/`XDD3` data blocks of leaf and node directories).
//! Entries of a data block are walked by their lengths, each checked against the block;
//! unused regions (tag `0xffff`) are searched for the names of freed entries.

use super::be::{be16, be32, be64};
use crate::{DirEntry, FileKind};

const XD2B: u32 = 0x5844_3242;
const XDB3: u32 = 0x5844_4233;
const XD2D: u32 = 0x5844_3244;
const XDD3: u32 = 0x5844_4433;
const FREE_TAG: u16 = 0xFFFF;

/// What parsing needs from the superblock.
pub struct Rules {
    pub ftype: bool,
    pub v5: bool,
    /// The largest inode number; when it fits in 32 bits, a freed entry's inode number
    /// (whose high 32 bits the free tag overwrote) is known.
    pub max_inode: u64,
}

pub fn ftype_kind(t: u8) -> FileKind {
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

/// The entries of a shortform directory (the data fork's bytes), capped at `cap`.
pub fn shortform(fork: &[u8], rules: &Rules, out: &mut Vec<DirEntry>, cap: usize) -> Option<()> {
    let count = usize::from(*fork.first()?);
    let i8count = usize::from(*fork.get(1)?);
    let wide = i8count != 0;
    let isz = if wide { 8 } else { 4 };
    let mut pos = 2 + isz;
    for _ in 0..count {
        if out.len() >= cap {
            break;
        }
        let namelen = usize::from(*fork.get(pos)?);
        let name = fork.get(pos + 3..pos + 3 + namelen)?;
        let mut p = pos + 3 + namelen;
        let mut kind = FileKind::Unknown;
        if rules.ftype {
            kind = ftype_kind(*fork.get(p)?);
            p += 1;
        }
        let inode = if wide {
            be64(fork, p)
        } else {
            u64::from(be32(fork, p))
        };
        fork.get(p..p + isz)?;
        pos = p + isz;
        if namelen == 0 {
            continue;
        }
        out.push(DirEntry {
            name: name.to_vec(),
            inode,
            kind,
            deleted: false,
        });
    }
    Some(())
}

/// The length of an entry with a `namelen`-byte name.
fn entry_len(namelen: usize, rules: &Rules) -> usize {
    (8 + 1 + namelen + usize::from(rules.ftype) + 2).div_ceil(8) * 8
}

/// The entries of one directory block (`XD2B`/`XDB3`/`XD2D`/`XDD3`); None when it has
/// none of these magics (a hole, a leaf or free block, garbage).
pub fn data_block(block: &[u8], rules: &Rules, out: &mut Vec<DirEntry>, cap: usize) -> Option<()> {
    let magic = be32(block, 0);
    let (hdr, single) = match (magic, rules.v5) {
        (XD2B, false) => (16, true),
        (XD2D, false) => (16, false),
        (XDB3, true) => (64, true),
        (XDD3, true) => (64, false),
        _ => return None,
    };
    let mut end = block.len();
    if single {
        // The tail (count, stale) and `count` leaf entries end the block.
        let count = usize::try_from(be32(block, block.len().checked_sub(8)?)).ok()?;
        end = block
            .len()
            .checked_sub(8)?
            .checked_sub(count.checked_mul(8)?)?;
    }
    let mut pos = hdr;
    while pos + 8 <= end && out.len() < cap {
        if be16(block, pos) == FREE_TAG {
            let len = usize::from(be16(block, pos + 2));
            if len < 8 || len % 8 != 0 || pos + len > end {
                break;
            }
            deleted_in(block, pos, pos + len, rules, out, cap);
            pos += len;
            continue;
        }
        let inode = be64(block, pos);
        let namelen = usize::from(*block.get(pos + 8)?);
        let len = entry_len(namelen, rules);
        if namelen == 0 || pos + len > end {
            break;
        }
        let name = block.get(pos + 9..pos + 9 + namelen)?;
        let kind = if rules.ftype {
            ftype_kind(*block.get(pos + 9 + namelen)?)
        } else {
            FileKind::Unknown
        };
        pos += len;
        if name == b"." || name == b".." {
            continue;
        }
        out.push(DirEntry {
            name: name.to_vec(),
            inode,
            kind,
            deleted: false,
        });
    }
    Some(())
}

/// Freed entries whose names survive in the unused region `start..end` of a block: an
/// entry that still has a name (no `/`, no NUL) and whose tag (its last two bytes)
/// still holds its own offset in the block.
fn deleted_in(
    block: &[u8],
    start: usize,
    end: usize,
    rules: &Rules,
    out: &mut Vec<DirEntry>,
    cap: usize,
) {
    let mut pos = start;
    while pos + 16 <= end && out.len() < cap {
        let namelen = usize::from(block.get(pos + 8).copied().unwrap_or(0));
        let len = entry_len(namelen, rules);
        let plausible = namelen > 0
            && pos + len <= end
            && usize::from(be16(block, pos + len - 2)) == pos
            && block
                .get(pos + 9..pos + 9 + namelen)
                .is_some_and(|n| n.iter().all(|&b| b != 0 && b != b'/'));
        if !plausible {
            pos += 8;
            continue;
        }
        let name = block.get(pos + 9..pos + 9 + namelen).unwrap_or_default();
        let kind = if rules.ftype {
            ftype_kind(block.get(pos + 9 + namelen).copied().unwrap_or(0))
        } else {
            FileKind::Unknown
        };
        // Bytes 0..4 (the high half of the inode number) hold the free tag and length.
        let low = u64::from(be32(block, pos + 4));
        let inode = if rules.max_inode <= u64::from(u32::MAX) {
            low
        } else {
            0
        };
        if name != b"." && name != b".." {
            out.push(DirEntry {
                name: name.to_vec(),
                inode,
                kind,
                deleted: true,
            });
        }
        pos += len;
    }
}
