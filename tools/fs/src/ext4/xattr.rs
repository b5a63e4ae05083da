//! Extended attributes ("Extended Attributes" in the kernel's ext4 documentation): in the
//! inode after `i_extra_isize` and in one external block (`i_file_acl`). Enough to find
//! `system.data` (inline data) and to list attribute names.

use super::bytes::{le16, le32};

/// `h_magic` / the in-inode header magic.
pub const XATTR_MAGIC: u32 = 0xEA02_0000;
/// Entries read per region at most (a 64 KiB block holds fewer than 4096).
const MAX_ENTRIES: usize = 4096;
/// `e_name_index` of `system.`.
pub const INDEX_SYSTEM: u8 = 7;

/// One attribute.
#[derive(Debug, Clone)]
pub struct Xattr {
    pub name_index: u8,
    pub name: Vec<u8>,
    /// The value, when stored in this region (not in an EA inode) and inside it.
    pub value: Option<Vec<u8>>,
}

impl Xattr {
    /// The full name (`user.foo`).
    #[must_use]
    pub fn full_name(&self) -> String {
        let prefix = match self.name_index {
            1 => "user.",
            2 => "system.posix_acl_access",
            3 => "system.posix_acl_default",
            4 => "trusted.",
            6 => "security.",
            7 => "system.",
            8 => "system.richacl",
            _ => "?.",
        };
        format!("{prefix}{}", String::from_utf8_lossy(&self.name))
    }
}

/// Parses entries starting at `entries_at` in `region`; value offsets are relative to
/// `values_base` (the first entry in the inode, the block start in a block).
#[must_use]
pub fn parse_entries(region: &[u8], entries_at: usize, values_base: usize) -> Vec<Xattr> {
    let mut out = Vec::new();
    let mut pos = entries_at;
    while out.len() < MAX_ENTRIES {
        // The list ends with four zero bytes (or at the end of the region).
        if pos.checked_add(16).is_none_or(|end| end > region.len()) || le32(region, pos) == 0 {
            break;
        }
        let name_len = region.get(pos).copied().map_or(0, usize::from);
        let name_index = region.get(pos + 1).copied().unwrap_or(0);
        let value_offs = usize::from(le16(region, pos + 2));
        let value_inum = le32(region, pos + 4);
        let value_size = usize::try_from(le32(region, pos + 8)).unwrap_or(usize::MAX);
        let Some(name) = region.get(pos + 16..pos + 16 + name_len) else {
            break;
        };
        let value = if value_inum == 0 {
            values_base
                .checked_add(value_offs)
                .and_then(|s| Some((s, s.checked_add(value_size)?)))
                .and_then(|(s, e)| region.get(s..e))
                .map(<[u8]>::to_vec)
        } else {
            None
        };
        out.push(Xattr {
            name_index,
            name: name.to_vec(),
            value,
        });
        pos = super::bytes::round4(pos + 16 + name_len);
    }
    out
}

/// The attributes stored in an inode record (`raw`, with its `i_extra_isize`).
#[must_use]
pub fn in_inode(raw: &[u8], extra_isize: u16) -> Vec<Xattr> {
    let start = 128 + usize::from(extra_isize);
    match raw.get(start..) {
        Some(region) if region.len() >= 4 && le32(region, 0) == XATTR_MAGIC => {
            parse_entries(region, 4, 4)
        }
        _ => Vec::new(),
    }
}

/// The attributes in an external attribute block (`None`: not an attribute block).
#[must_use]
pub fn in_block(block: &[u8]) -> Option<Vec<Xattr>> {
    (le32(block, 0) == XATTR_MAGIC).then(|| parse_entries(block, 32, 0))
}
