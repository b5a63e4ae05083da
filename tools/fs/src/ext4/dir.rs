//! Linear directory blocks ("Directory Entries" in the kernel's ext4 documentation), with
//! deleted names recovered from slack.
//!
//! ext4 removes an entry by growing the previous entry's `rec_len` over it (or, for the
//! first entry of a block, by zeroing its inode), so a deleted name survives after a live
//! entry's real length (`8 + name_len`, rounded up to 4) until something overwrites it.
//! Htree directories are read as linear: the dx root's `..` slack and the dx node blocks
//! (one fake entry covering the block) hold hash indexes, not names, and are skipped.

use super::bytes::{le16, le32, round4};
use super::inode::kind_of_dirent_type;
use crate::{DirEntry, FileKind};

/// How to read one block.
#[derive(Debug, Clone, Copy)]
pub struct BlockRules {
    /// `filetype` feature: `name_len` is one byte and a type byte follows.
    pub filetype: bool,
    /// Inode numbers above this are not plausible.
    pub inodes_count: u32,
    /// The directory is an htree (`EXT4_INDEX_FL`).
    pub htree: bool,
    /// This is the directory's first block (the dx root in an htree).
    pub first_block: bool,
}

struct Raw<'b> {
    inode: u32,
    rec_len: usize,
    name: &'b [u8],
    file_type: u8,
}

fn raw_at(b: &[u8], at: usize, filetype: bool) -> Option<Raw<'_>> {
    let head = b.get(at..at.checked_add(8)?)?;
    let inode = le32(head, 0);
    let rec_len = usize::from(le16(head, 4));
    let (name_len, file_type) = if filetype {
        (usize::from(*head.get(6)?), *head.get(7)?)
    } else {
        (usize::from(le16(head, 6)), 0)
    };
    let name = b.get(at + 8..at + 8 + name_len)?;
    Some(Raw {
        inode,
        rec_len,
        name,
        file_type,
    })
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

fn kind(rules: &BlockRules, t: u8) -> FileKind {
    if rules.filetype {
        kind_of_dirent_type(t)
    } else {
        FileKind::Unknown
    }
}

/// Appends the entries of one directory block (allocated, then deleted ones from slack,
/// in on-disk order) to `out`, without `.` and `..`.
pub fn parse_block(block: &[u8], rules: &BlockRules, out: &mut Vec<DirEntry>) {
    let len = block.len();
    if rules.htree {
        if let Some(r) = raw_at(block, 0, rules.filetype) {
            // A dx node block: one empty entry spanning the block.
            if !rules.first_block && r.inode == 0 && r.name.is_empty() && r.rec_len == len {
                return;
            }
        }
    }
    let mut pos = 0usize;
    while pos < len {
        let Some(r) = raw_at(block, pos, rules.filetype) else {
            break;
        };
        let real = round4(8 + r.name.len());
        let end = pos.checked_add(r.rec_len);
        if r.rec_len < real || !r.rec_len.is_multiple_of(4) || end.is_none_or(|e| e > len) {
            // A broken chain: the rest of the block is only searched for names.
            scan_slack(block, pos, len, rules, out);
            return;
        }
        let end = end.unwrap_or(len);
        if !r.name.is_empty() && !is_dot(r.name) {
            out.push(DirEntry {
                name: r.name.to_vec(),
                inode: u64::from(r.inode),
                kind: kind(rules, r.file_type),
                // The first entry of a block is deleted by zeroing its inode.
                deleted: r.inode == 0,
            });
        }
        let dx_root = rules.htree && rules.first_block && r.name == b"..";
        if !dx_root {
            scan_slack(block, pos + real, end, rules, out);
        }
        pos = end;
    }
}

/// Plausible deleted entries in `block[from..to]`.
fn scan_slack(block: &[u8], from: usize, to: usize, rules: &BlockRules, out: &mut Vec<DirEntry>) {
    let mut pos = round4(from);
    while pos.checked_add(8).is_some_and(|e| e <= to) {
        match raw_at(block, pos, rules.filetype) {
            Some(r) if plausible(&r, pos, to, block.len(), rules) => {
                out.push(DirEntry {
                    name: r.name.to_vec(),
                    inode: u64::from(r.inode),
                    kind: kind(rules, r.file_type),
                    deleted: true,
                });
                pos += round4(8 + r.name.len());
            }
            _ => pos += 4,
        }
    }
}

fn plausible(
    r: &Raw<'_>,
    pos: usize,
    slack_end: usize,
    block_len: usize,
    rules: &BlockRules,
) -> bool {
    let name_len = r.name.len();
    r.inode != 0
        && r.inode <= rules.inodes_count
        && name_len > 0
        && pos + 8 + name_len <= slack_end
        && r.rec_len.is_multiple_of(4)
        && r.rec_len >= 8 + name_len
        && pos + r.rec_len <= block_len
        && (!rules.filetype || (1..=7).contains(&r.file_type))
        && !r.name.iter().any(|&c| c == 0 || c == b'/')
        && !is_dot(r.name)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn put(b: &mut [u8], at: usize, inode: u32, rec_len: u16, name: &[u8], t: u8) {
        b[at..at + 4].copy_from_slice(&inode.to_le_bytes());
        b[at + 4..at + 6].copy_from_slice(&rec_len.to_le_bytes());
        b[at + 6] = u8::try_from(name.len()).unwrap_or(0);
        b[at + 7] = t;
        b[at + 8..at + 8 + name.len()].copy_from_slice(name);
    }

    fn rules() -> BlockRules {
        BlockRules {
            filetype: true,
            inodes_count: 1000,
            htree: false,
            first_block: false,
        }
    }

    #[test]
    fn deleted_names_in_slack() {
        let mut b = vec![0u8; 1024];
        put(&mut b, 0, 12, 16, b"live", 1);
        // "gone" was removed: "keep" (at 16) grew over it.
        put(&mut b, 16, 13, 1008, b"keep", 1);
        put(&mut b, 28, 14, 996, b"gone", 2);
        let mut out = Vec::new();
        parse_block(&b, &rules(), &mut out);
        let names: Vec<(&[u8], u64, bool)> = out
            .iter()
            .map(|e| (e.name.as_slice(), e.inode, e.deleted))
            .collect();
        assert_eq!(
            names,
            vec![
                (&b"live"[..], 12, false),
                (&b"keep"[..], 13, false),
                (&b"gone"[..], 14, true)
            ]
        );
        assert_eq!(out[2].kind, FileKind::Directory);
    }

    #[test]
    fn broken_chains_and_garbage_stay_in_the_block() {
        let mut b = vec![0xFFu8; 64];
        put(&mut b, 0, 2, 0, b"x", 1); // rec_len 0: would loop forever
        let mut out = Vec::new();
        parse_block(&b, &rules(), &mut out);
        assert!(out.is_empty());
        let mut b = vec![0u8; 64];
        put(&mut b, 0, 2, 65000, b"x", 1); // past the block
        parse_block(&b, &rules(), &mut out);
        assert!(out.is_empty());
    }
}
