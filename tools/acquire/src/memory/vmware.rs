//! VMware suspended-state (.vmss) and snapshot (.vmsn) files: where each guest-physical
//! page of a VMware guest is stored.
//!
//! A `.vmem` is not a raw image once the guest has RAM above the PCI hole: its pages are
//! the guest's RAM regions laid end to end, and only the state file beside it says which
//! guest-physical page each run of the file holds. Older snapshots (and ESX suspends)
//! keep the memory itself inside the state file, as a "Memory" block of the "memory"
//! group; the same regions then count pages from the start of that block.
//!
//! Layout (little-endian), as read by Volatility 3 (`layers/vmware.py`) and the crash
//! utility (`vmware_vmss.c`), and no more of it than acquisition needs:
//! - header (12 bytes): magic, a version word, the group count;
//! - group table: per group a 64-byte NUL-padded name, the byte offset of its tags and a
//!   size (80 bytes; the size is reported, not trusted: the walk is bounded by the file);
//! - tags, from a group's offset until a NULL tag (two zero bytes): a flags byte (bits 7–6
//!   the number of 32-bit indices, bits 5–0 the value size), a name-length byte, the name,
//!   the indices, then the value. Value sizes 62 (compressed) and 63 mark a block: its
//!   stored size and in-memory size (32-bit with magic 0xbed2bed0, else 64-bit), a 16-bit
//!   padding length, the padding, the data.
//!
//! The "memory" group's `regionsCount`, and per region index `regionPPN` (first
//! guest-physical page), `regionPageNum` (first page in the memory file) and `regionSize`
//! (pages), give the map; with no regions the memory file is one run from address 0.
//!
//! The file is untrusted: the group count is capped and the table must lie inside the
//! file; every tag, index, value and block must end inside the file; the walk stops at
//! [`MAX_TAGS`] tags and only moves forward, so it ends; page arithmetic is checked; a
//! region must end inside the memory file. Nothing is allocated from a size the header
//! merely claims (the group table is read only once it is known to fit in the file).

use super::physmap::{MapError, PhysMap, Piece};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use vestige_evidence::read_at::ReadAt;

/// The magics accepted (the first four bytes, little-endian), as Volatility 3 accepts
/// them: 0xbed2bed0 (an old, 32-bit checkpoint), 0xbad1bad1 (a checkpoint that was
/// restored), 0xbed2bed2 (a checkpoint), 0xbed3bed3 (a partial checkpoint).
pub const MAGICS: [u32; 4] = [0xbed2_bed0, 0xbad1_bad1, 0xbed2_bed2, 0xbed3_bed3];

/// The magic whose block sizes are 32-bit (Volatility 3: "version 0").
const MAGIC_32BIT_BLOCKS: u32 = 0xbed2_bed0;

/// The page size the region tags count in.
pub const PAGE_BYTES: u64 = 4096;

/// More groups than any VMware product writes (a few dozen); a larger count is damage.
pub const MAX_GROUPS: u32 = 4096;

/// Tags walked in the memory group before the walk is refused as endless.
pub const MAX_TAGS: u32 = 1 << 20;

/// Region indices accepted (VMware writes a handful; crash supports three).
pub const MAX_REGIONS: usize = 1024;

const HEADER_BYTES: u64 = 12;
const GROUP_BYTES: u64 = 80;
const GROUP_NAME_BYTES: usize = 64;
const VALUE_SIZE_MASK: u8 = 0x3f;
const VALUE_BLOCK: u8 = 63;
const VALUE_BLOCK_COMPRESSED: u8 = 62;
/// The largest fixed part of a tag: flags, name length, a 255-byte name, three indices,
/// and a block header (two 64-bit sizes and the padding length).
const TAG_HEAD_MAX: usize = 2 + 255 + 3 * 4 + 8 + 8 + 2;

/// A state file this reader refuses, or memory regions that do not fit.
#[derive(Debug, thiserror::Error)]
pub enum VmwareError {
    /// Reading failed.
    #[error("VMware state file {what} at byte {offset}: cannot read")]
    Read {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A field has a value this reader refuses.
    #[error("VMware state file {field} at byte {offset} is {found}, expected {expected}")]
    Field {
        /// Which structure and field.
        field: &'static str,
        /// Its offset in the state file.
        offset: u64,
        /// The value found.
        found: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// No group is named "memory".
    #[error("VMware state file has no \"memory\" group (groups: {groups})")]
    NoMemoryGroup {
        /// The names found, comma-separated.
        groups: String,
    },
    /// A memory region is incomplete, or does not fit.
    #[error("VMware memory region {index} (tag at byte {offset} of the state file): {problem}")]
    Region {
        /// The region's index.
        index: u32,
        /// The state-file offset of its first tag (or of `regionsCount`).
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// The memory is to be read from the state file, which has no "Memory" block.
    #[error("VMware state file holds no \"Memory\" block: its memory is in a separate .vmem file")]
    NoEmbeddedMemory,
    /// The embedded memory is compressed (not supported: reading it would need VMware's
    /// page compression, and a guess would put wrong bytes in evidence).
    #[error(
        "VMware \"Memory\" block (tag at byte {offset}) is compressed, which is not supported"
    )]
    Compressed {
        /// The state-file offset of the tag.
        offset: u64,
    },
    /// Two regions claim the same guest-physical page.
    #[error("VMware memory regions do not form a physical memory map")]
    Map(#[source] MapError),
}

/// One group of the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its name, bytes outside printable ASCII escaped (`\xNN`).
    pub name: String,
    /// The state-file offset of its tags.
    pub tags_offset: u64,
    /// The size the table gives it.
    pub size_bytes: u64,
}

/// A run of guest-physical pages stored contiguously in the memory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// The region index of its tags.
    pub index: u32,
    /// `regionPPN`: its first guest-physical page.
    pub guest_page: u64,
    /// `regionPageNum`: its first page in the memory (.vmem file or "Memory" block).
    pub file_page: u64,
    /// `regionSize`: its length in pages.
    pub pages: u64,
    /// The state-file offset of its first tag.
    pub tag_offset: u64,
}

/// The "Memory" block of the memory group: the memory stored inside the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBlock {
    /// The state-file offset of its tag.
    pub tag_offset: u64,
    /// The state-file offset of its data.
    pub data_offset: u64,
    /// Bytes stored in the file.
    pub stored_bytes: u64,
    /// Bytes it stands for in memory (equal to `stored_bytes` unless compressed).
    pub memory_bytes: u64,
    /// Whether the block is compressed.
    pub compressed: bool,
}

/// What the header of a state file says about the guest's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    /// The magic (one of [`MAGICS`]).
    pub magic: u32,
    /// The word after the magic.
    pub version: u32,
    /// Every group, in table order.
    pub groups: Vec<Group>,
    /// `regionsCount`, if the memory group has it.
    pub regions_count: Option<u64>,
    /// The regions, by index (`0..regions_count`).
    pub regions: Vec<Region>,
    /// The memory stored in the state file, if it is.
    pub memory_block: Option<MemoryBlock>,
    /// Tags read in the memory group.
    pub memory_tags: u32,
}

/// Where the memory the regions describe is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryFile {
    /// A .vmem file of this many bytes: region pages count from its start.
    Separate {
        /// Its size.
        size_bytes: u64,
    },
    /// The state file's "Memory" block: region pages count from the block's data.
    Embedded,
}

fn le(b: &[u8], at: usize, width: usize) -> Option<u64> {
    let bytes = b.get(at..at.checked_add(width)?)?;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
    )
}

/// Whether the first bytes carry a state-file magic.
#[must_use]
pub fn is_state_file(head: &[u8]) -> bool {
    le(head, 0, 4).is_some_and(|m| MAGICS.iter().any(|&k| u64::from(k) == m))
}

/// What a magic says about the file.
#[must_use]
pub fn magic_meaning(magic: u32) -> &'static str {
    match magic {
        0xbed2_bed0 => "old checkpoint, 32-bit block sizes",
        0xbad1_bad1 => "checkpoint, restored since",
        0xbed2_bed2 => "checkpoint",
        0xbed3_bed3 => "partial checkpoint",
        _ => "unknown",
    }
}

/// The three tags of a region, as found.
#[derive(Debug, Default)]
struct PartialRegion {
    guest_page: Option<u64>,
    file_page: Option<u64>,
    pages: Option<u64>,
    tag_offset: u64,
}

/// A tag's value.
enum Value {
    /// An inline value of 0–61 bytes (an integer when 1–8).
    Inline(Option<u64>, u8),
    /// A block.
    Block(MemoryBlock),
}

/// Reads the header, the group table and the memory group's tags.
pub fn parse(file: &dyn ReadAt) -> Result<StateFile, VmwareError> {
    let size = file.size();
    let mut h = [0u8; 12];
    file.read_exact_at(&mut h, 0)
        .map_err(|source| VmwareError::Read {
            what: "header",
            offset: 0,
            source,
        })?;
    let word = |at| {
        le(&h, at, 4)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0)
    };
    let (magic, version, count) = (word(0), word(4), word(8));
    if !MAGICS.contains(&magic) {
        return Err(VmwareError::Field {
            field: "header.magic",
            offset: 0,
            found: format!("{magic:#010x}"),
            expected: "0xbed2bed0, 0xbad1bad1, 0xbed2bed2 or 0xbed3bed3",
        });
    }
    let table_bytes = u64::from(count) * GROUP_BYTES;
    if count > MAX_GROUPS || HEADER_BYTES + table_bytes > size {
        return Err(VmwareError::Field {
            field: "header.group_count",
            offset: 8,
            found: format!("{count} ({table_bytes} bytes of group table in a {size}-byte file)"),
            expected: "at most 4096 groups, their table inside the file",
        });
    }
    // Bounded by MAX_GROUPS and by the file size just checked.
    let mut table = vec![0u8; usize::try_from(table_bytes).unwrap_or(0)];
    file.read_exact_at(&mut table, HEADER_BYTES)
        .map_err(|source| VmwareError::Read {
            what: "group table",
            offset: HEADER_BYTES,
            source,
        })?;
    let mut groups = Vec::new();
    let mut memory: Option<u64> = None;
    for (i, rec) in table.chunks_exact(80).enumerate() {
        let at = HEADER_BYTES + u64::try_from(i).unwrap_or(u64::MAX) * GROUP_BYTES;
        let raw = rec.get(..GROUP_NAME_BYTES).unwrap_or_default();
        let name = raw.split(|&b| b == 0).next().unwrap_or_default();
        let tags_offset = le(rec, 64, 8).unwrap_or(0);
        if name == b"memory" {
            if memory.is_some() {
                return Err(VmwareError::Field {
                    field: "group.name",
                    offset: at,
                    found: "a second \"memory\" group".to_string(),
                    expected: "one \"memory\" group",
                });
            }
            memory = Some(tags_offset);
        }
        groups.push(Group {
            name: name.escape_ascii().to_string(),
            tags_offset,
            size_bytes: le(rec, 72, 8).unwrap_or(0),
        });
    }
    let Some(tags_offset) = memory else {
        return Err(VmwareError::NoMemoryGroup {
            groups: groups
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let mut state = StateFile {
        magic,
        version,
        groups,
        regions_count: None,
        regions: Vec::new(),
        memory_block: None,
        memory_tags: 0,
    };
    walk_memory_group(file, &mut state, tags_offset)?;
    Ok(state)
}

/// Walks the memory group's tags from `start` to its NULL tag, keeping the region tags
/// and the "Memory" block.
fn walk_memory_group(
    file: &dyn ReadAt,
    state: &mut StateFile,
    start: u64,
) -> Result<(), VmwareError> {
    let size = file.size();
    let block_width: usize = if state.magic == MAGIC_32BIT_BLOCKS {
        4
    } else {
        8
    };
    let mut partial: BTreeMap<u32, PartialRegion> = BTreeMap::new();
    let mut count: Option<(u64, u64)> = None;
    let mut pos = start;
    loop {
        if state.memory_tags >= MAX_TAGS {
            return Err(VmwareError::Field {
                field: "memory group tags",
                offset: pos,
                found: format!("more than {MAX_TAGS} tags"),
                expected: "a NULL tag ending the group",
            });
        }
        let left = size.saturating_sub(pos);
        let short = |what: &'static str| VmwareError::Field {
            field: what,
            offset: pos,
            found: format!("{left} bytes left in the file"),
            expected: "a whole tag (the memory group ends with a NULL tag)",
        };
        if left < 2 {
            return Err(short("tag"));
        }
        let mut buf = [0u8; TAG_HEAD_MAX];
        let avail = usize::try_from(left).map_or(TAG_HEAD_MAX, |l| l.min(TAG_HEAD_MAX));
        let head = buf.get_mut(..avail).unwrap_or_default();
        file.read_exact_at(head, pos)
            .map_err(|source| VmwareError::Read {
                what: "tag",
                offset: pos,
                source,
            })?;
        let head: &[u8] = head;
        let flags = head.first().copied().unwrap_or(0);
        let name_len = usize::from(head.get(1).copied().unwrap_or(0));
        if flags == 0 && name_len == 0 {
            break;
        }
        state.memory_tags += 1;
        let name = head.get(2..2 + name_len).ok_or_else(|| short("tag.name"))?;
        let n_indices = usize::from(flags >> 6);
        let mut indices = Vec::with_capacity(n_indices);
        let mut cur = 2 + name_len;
        for _ in 0..n_indices {
            let v = le(head, cur, 4).ok_or_else(|| short("tag.index"))?;
            indices.push(u32::try_from(v).unwrap_or(u32::MAX));
            cur += 4;
        }
        let value_size = flags & VALUE_SIZE_MASK;
        let (value, next) = if value_size == VALUE_BLOCK || value_size == VALUE_BLOCK_COMPRESSED {
            let stored = le(head, cur, block_width).ok_or_else(|| short("tag.block_size"))?;
            let in_memory =
                le(head, cur + block_width, block_width).ok_or_else(|| short("tag.block_size"))?;
            let pad = le(head, cur + 2 * block_width, 2).ok_or_else(|| short("tag.block_pad"))?;
            cur += 2 * block_width + 2;
            // Volatility 3 takes the 16-bit field itself as the padding; crash (written at
            // VMware) skips that many more bytes. They agree when it is zero, as seen.
            let data_offset = pos.checked_add(cur as u64).and_then(|o| o.checked_add(pad));
            let end = data_offset.and_then(|o| o.checked_add(stored));
            let (Some(data_offset), Some(end)) = (data_offset, end.filter(|&e| e <= size)) else {
                return Err(VmwareError::Field {
                    field: "tag.block_size",
                    offset: pos,
                    found: format!("{stored} bytes after {pad} bytes of padding"),
                    expected: "block data inside the file",
                });
            };
            let block = MemoryBlock {
                tag_offset: pos,
                data_offset,
                stored_bytes: stored,
                memory_bytes: in_memory,
                compressed: value_size == VALUE_BLOCK_COMPRESSED,
            };
            (Value::Block(block), end)
        } else {
            let width = usize::from(value_size);
            let bytes = head
                .get(cur..cur + width)
                .ok_or_else(|| short("tag.value"))?;
            let int = (1..=8)
                .contains(&width)
                .then(|| le(bytes, 0, width))
                .flatten();
            // `cur + width` bytes were read at `pos`, so this cannot pass the file's size.
            (Value::Inline(int, value_size), pos + (cur + width) as u64)
        };
        keep_tag(state, &mut partial, &mut count, pos, name, &indices, value)?;
        // Every tag is at least two bytes long, so the walk only moves forward.
        pos = next;
    }
    state.regions = regions(partial, count, start)?;
    state.regions_count = count.map(|(n, _)| n);
    Ok(())
}

/// Keeps what a memory-group tag says about the memory.
fn keep_tag(
    state: &mut StateFile,
    partial: &mut BTreeMap<u32, PartialRegion>,
    count: &mut Option<(u64, u64)>,
    pos: u64,
    name: &[u8],
    indices: &[u32],
    value: Value,
) -> Result<(), VmwareError> {
    let field: &'static str = match name {
        b"regionsCount" => "regionsCount",
        b"regionPPN" => "regionPPN",
        b"regionPageNum" => "regionPageNum",
        b"regionSize" => "regionSize",
        b"Memory" => {
            if let Value::Block(block) = value {
                if state.memory_block.is_some() {
                    return Err(VmwareError::Field {
                        field: "Memory tag",
                        offset: pos,
                        found: "a second \"Memory\" block".to_string(),
                        expected: "one \"Memory\" block in the memory group",
                    });
                }
                state.memory_block = Some(block);
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    let int = match value {
        Value::Inline(Some(v), _) => v,
        Value::Inline(None, width) => {
            return Err(VmwareError::Field {
                field,
                offset: pos,
                found: format!("a {width}-byte value"),
                expected: "an integer of 1 to 8 bytes",
            })
        }
        Value::Block(_) => {
            return Err(VmwareError::Field {
                field,
                offset: pos,
                found: "a block".to_string(),
                expected: "an integer of 1 to 8 bytes",
            })
        }
    };
    if field == "regionsCount" {
        if count.is_some() {
            return Err(VmwareError::Field {
                field,
                offset: pos,
                found: "given twice".to_string(),
                expected: "one regionsCount",
            });
        }
        *count = Some((int, pos));
        return Ok(());
    }
    let Some(&index) = indices.first() else {
        return Err(VmwareError::Field {
            field,
            offset: pos,
            found: "no index".to_string(),
            expected: "a region index",
        });
    };
    if !partial.contains_key(&index) && partial.len() >= MAX_REGIONS {
        return Err(VmwareError::Field {
            field,
            offset: pos,
            found: format!("region index {index} beyond {MAX_REGIONS} regions"),
            expected: "at most 1024 regions",
        });
    }
    let r = partial.entry(index).or_insert_with(|| PartialRegion {
        tag_offset: pos,
        ..PartialRegion::default()
    });
    let slot = match field {
        "regionPPN" => &mut r.guest_page,
        "regionPageNum" => &mut r.file_page,
        _ => &mut r.pages,
    };
    if slot.is_some() {
        return Err(VmwareError::Region {
            index,
            offset: pos,
            problem: format!("{field} given twice"),
        });
    }
    *slot = Some(int);
    Ok(())
}

/// The regions, checked against `regionsCount` (`count`: value and tag offset).
fn regions(
    partial: BTreeMap<u32, PartialRegion>,
    count: Option<(u64, u64)>,
    group_offset: u64,
) -> Result<Vec<Region>, VmwareError> {
    let Some((n, count_at)) = count else {
        return match partial.into_iter().next() {
            None => Ok(Vec::new()),
            Some((index, r)) => Err(VmwareError::Region {
                index,
                offset: r.tag_offset,
                problem: format!(
                    "the memory group (tags at byte {group_offset}) has no regionsCount"
                ),
            }),
        };
    };
    let listed = u64::try_from(partial.len()).unwrap_or(u64::MAX);
    if let Some((&index, r)) = partial.iter().find(|(&i, _)| u64::from(i) >= n) {
        return Err(VmwareError::Region {
            index,
            offset: r.tag_offset,
            problem: format!("beyond regionsCount {n}"),
        });
    }
    if listed < n {
        // Indices are all below n and distinct, so one below n is missing.
        // (listed is at most MAX_REGIONS, so this search is short.)
        let missing = (0..=u32::try_from(listed).unwrap_or(u32::MAX))
            .find(|i| !partial.contains_key(i))
            .unwrap_or(u32::MAX);
        return Err(VmwareError::Region {
            index: missing,
            offset: count_at,
            problem: format!("regionsCount is {n}, and this region has no tags"),
        });
    }
    partial
        .into_iter()
        .map(|(index, r)| {
            let missing = |tag: &str| VmwareError::Region {
                index,
                offset: r.tag_offset,
                problem: format!("no {tag} tag"),
            };
            Ok(Region {
                index,
                guest_page: r.guest_page.ok_or_else(|| missing("regionPPN"))?,
                file_page: r.file_page.ok_or_else(|| missing("regionPageNum"))?,
                pages: r.pages.ok_or_else(|| missing("regionSize"))?,
                tag_offset: r.tag_offset,
            })
        })
        .collect()
}

impl StateFile {
    /// The guest's physical memory as pieces of the memory file: the .vmem
    /// (`MemoryFile::Separate`) or the state file itself (`MemoryFile::Embedded`).
    ///
    /// Errors: the memory is to be embedded and is not, or is compressed; a region ends
    /// past the end of the memory, or its page arithmetic overflows; two regions overlap.
    pub fn phys_map(&self, memory: MemoryFile) -> Result<PhysMap, VmwareError> {
        let (base, length) = match memory {
            MemoryFile::Separate { size_bytes } => (0, size_bytes),
            MemoryFile::Embedded => {
                let b = self.memory_block.ok_or(VmwareError::NoEmbeddedMemory)?;
                if b.compressed {
                    return Err(VmwareError::Compressed {
                        offset: b.tag_offset,
                    });
                }
                (b.data_offset, b.stored_bytes)
            }
        };
        if self.regions.is_empty() {
            // No regions: the memory is one run from address 0 (crash and Volatility 2
            // read it so; Volatility 3 refuses such a file).
            return PhysMap::new(vec![Piece {
                phys: 0,
                length_bytes: length,
                file_offset: base,
            }])
            .map_err(VmwareError::Map);
        }
        let mut pieces = Vec::with_capacity(self.regions.len());
        for r in &self.regions {
            let bad = |problem: String| VmwareError::Region {
                index: r.index,
                offset: r.tag_offset,
                problem,
            };
            let bytes = |pages: u64, what: &str| {
                pages
                    .checked_mul(PAGE_BYTES)
                    .ok_or_else(|| bad(format!("{what} {pages:#x} pages overflows")))
            };
            let phys = bytes(r.guest_page, "regionPPN")?;
            let start = bytes(r.file_page, "regionPageNum")?;
            let len = bytes(r.pages, "regionSize")?;
            if phys.checked_add(len).is_none() {
                return Err(bad(format!(
                    "{len} bytes at guest-physical {phys:#x} overflow the address space"
                )));
            }
            if start.checked_add(len).is_none_or(|end| end > length) {
                return Err(bad(format!(
                    "{len} bytes at byte {start} of the memory run past its end ({length} bytes)"
                )));
            }
            pieces.push(Piece {
                phys,
                length_bytes: len,
                file_offset: base + start,
            });
        }
        PhysMap::new(pieces).map_err(VmwareError::Map)
    }

    /// One line for the log and the examiner: magic, groups, where the memory is and the
    /// regions.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut s = format!(
            "VMware state file, magic {:#010x} ({}), version {}; {} groups: {}; ",
            self.magic,
            magic_meaning(self.magic),
            self.version,
            self.groups.len(),
            self.groups
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        match &self.memory_block {
            Some(b) => {
                let _ = write!(
                    s,
                    "memory inside it ({}\"Memory\" block of {} bytes at byte {}); ",
                    if b.compressed { "compressed " } else { "" },
                    b.stored_bytes,
                    b.data_offset
                );
            }
            None => s.push_str("memory in a separate .vmem; "),
        }
        if self.regions.is_empty() {
            s.push_str("no regions (one run from address 0)");
        } else {
            let _ = write!(s, "{} regions:", self.regions.len());
            for r in &self.regions {
                let _ = write!(
                    s,
                    " [{}] guest page {:#x} +{:#x} pages at memory page {:#x};",
                    r.index, r.guest_page, r.pages, r.file_page
                );
            }
            s.pop();
        }
        s
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]
pub(crate) mod tests {
    use super::*;

    /// One tag with a raw value of `value.len()` bytes (at most 61).
    fn raw_tag(name: &str, indices: &[u32], value: &[u8]) -> Vec<u8> {
        let mut t = vec![
            (u8::try_from(indices.len()).unwrap() << 6) | u8::try_from(value.len()).unwrap(),
            u8::try_from(name.len()).unwrap(),
        ];
        t.extend_from_slice(name.as_bytes());
        for i in indices {
            t.extend_from_slice(&i.to_le_bytes());
        }
        t.extend_from_slice(value);
        t
    }

    /// One tag: flags (indices, value size), name, indices, then an integer value of
    /// `width` bytes.
    pub(crate) fn int_tag(name: &str, indices: &[u32], width: u8, value: u64) -> Vec<u8> {
        raw_tag(name, indices, &value.to_le_bytes()[..usize::from(width)])
    }

    /// A block tag with 64-bit sizes and no padding.
    pub(crate) fn block_tag(name: &str, indices: &[u32], data: &[u8]) -> Vec<u8> {
        let mut t = vec![
            (u8::try_from(indices.len()).unwrap() << 6) | VALUE_BLOCK,
            u8::try_from(name.len()).unwrap(),
        ];
        t.extend_from_slice(name.as_bytes());
        for i in indices {
            t.extend_from_slice(&i.to_le_bytes());
        }
        t.extend_from_slice(&(data.len() as u64).to_le_bytes());
        t.extend_from_slice(&(data.len() as u64).to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(data);
        t
    }

    /// The tags of `(guest page, file page, pages)` regions.
    pub(crate) fn region_tags(regions: &[(u64, u64, u64)]) -> Vec<u8> {
        let mut t = int_tag("regionsCount", &[], 4, regions.len() as u64);
        for (i, (ppn, page, pages)) in regions.iter().enumerate() {
            let i = u32::try_from(i).unwrap();
            t.extend(int_tag("regionPPN", &[i], 4, *ppn));
            t.extend(int_tag("regionPageNum", &[i], 4, *page));
            t.extend(int_tag("regionSize", &[i], 4, *pages));
        }
        t
    }

    /// A state file: magic 0xbed2bed2, groups `cpu` (one tag) and `memory` (`memory_tags`
    /// then the NULL tag).
    pub(crate) fn state_file(memory_tags: &[u8]) -> Vec<u8> {
        let cpu = [int_tag("numVCPUs", &[], 4, 1), vec![0, 0]].concat();
        let mut f = Vec::new();
        f.extend_from_slice(&0xbed2_bed2u32.to_le_bytes());
        f.extend_from_slice(&8u32.to_le_bytes());
        f.extend_from_slice(&2u32.to_le_bytes());
        let mut at = 12 + 2 * 80;
        for (name, len) in [("cpu", cpu.len()), ("memory", memory_tags.len() + 2)] {
            let mut n = [0u8; 64];
            n[..name.len()].copy_from_slice(name.as_bytes());
            f.extend_from_slice(&n);
            f.extend_from_slice(&(at as u64).to_le_bytes());
            f.extend_from_slice(&(len as u64).to_le_bytes());
            at += len;
        }
        f.extend_from_slice(&cpu);
        f.extend_from_slice(memory_tags);
        f.extend_from_slice(&[0, 0]);
        f
    }

    const GIB: u64 = 1 << 30;
    const PAGES_PER_GIB: u64 = GIB / PAGE_BYTES;

    #[test]
    fn regions_below_and_above_the_pci_hole() {
        // 3 GiB below the hole, 1 GiB from 4 GiB: .vmem page 0xc0000 is guest page 0x100000.
        let f = state_file(&region_tags(&[
            (0, 0, 3 * PAGES_PER_GIB),
            (4 * PAGES_PER_GIB, 3 * PAGES_PER_GIB, PAGES_PER_GIB),
        ]));
        assert!(is_state_file(&f));
        let s = parse(&f.as_slice()).unwrap();
        assert_eq!(s.magic, 0xbed2_bed2);
        assert_eq!(
            s.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["cpu", "memory"]
        );
        assert_eq!(s.regions_count, Some(2));
        assert_eq!(s.memory_tags, 7);
        assert!(s.memory_block.is_none());
        let map = s
            .phys_map(MemoryFile::Separate {
                size_bytes: 4 * GIB,
            })
            .unwrap();
        assert_eq!(map.spans(), vec![(0, 3 * GIB), (4 * GIB, GIB)]);
        let p = map.piece_at(4 * GIB + 0x1234).unwrap();
        assert_eq!(
            p.file_offset + (4 * GIB + 0x1234 - p.phys),
            3 * GIB + 0x1234
        );
        assert!(map.piece_at(3 * GIB).is_none(), "the hole is not memory");
        let d = s.describe();
        assert!(d.contains("0xbed2bed2") && d.contains("cpu, memory"), "{d}");
        assert!(d.contains("[1] guest page 0x100000 +0x40000 pages at memory page 0xc0000"));

        // A .vmem shorter than the regions say: refused, naming the region.
        let e = s
            .phys_map(MemoryFile::Separate {
                size_bytes: 4 * GIB - 1,
            })
            .unwrap_err();
        assert!(matches!(e, VmwareError::Region { index: 1, .. }), "{e}");
    }

    #[test]
    fn memory_inside_the_state_file() {
        let mem: Vec<u8> = (0..3 * 4096u32).map(|i| (i / 4096 + 1) as u8).collect();
        let mut tags = region_tags(&[(0, 0, 1), (0x10_0000, 1, 2)]);
        tags.extend(int_tag("align_mask", &[], 4, 0xffff));
        tags.extend(block_tag("Memory", &[0, 0], &mem));
        let f = state_file(&tags);
        let s = parse(&f.as_slice()).unwrap();
        let b = s.memory_block.unwrap();
        assert_eq!(b.stored_bytes, mem.len() as u64);
        assert_eq!(&f[b.data_offset as usize..][..4], &[1, 1, 1, 1]);
        let map = s.phys_map(MemoryFile::Embedded).unwrap();
        assert_eq!(map.spans(), vec![(0, 4096), (4 * GIB, 8192)]);
        let p = map.piece_at(4 * GIB).unwrap();
        assert_eq!(f[usize::try_from(p.file_offset).unwrap()], 2);
        assert!(s.describe().contains("memory inside it"));

        // No regions: the block is one run from address 0.
        let f = state_file(&block_tag("Memory", &[0, 0], &mem));
        let s = parse(&f.as_slice()).unwrap();
        let map = s.phys_map(MemoryFile::Embedded).unwrap();
        assert_eq!(map.spans(), vec![(0, mem.len() as u64)]);
        // And a .vmem-only state file cannot be read as embedded.
        let s = parse(&state_file(&region_tags(&[(0, 0, 1)])).as_slice()).unwrap();
        assert!(matches!(
            s.phys_map(MemoryFile::Embedded),
            Err(VmwareError::NoEmbeddedMemory)
        ));
    }

    #[test]
    fn compressed_memory_is_refused() {
        let mut t = block_tag("Memory", &[0, 0], &[0; 64]);
        t[0] = (2 << 6) | VALUE_BLOCK_COMPRESSED;
        let s = parse(&state_file(&t).as_slice()).unwrap();
        assert!(matches!(
            s.phys_map(MemoryFile::Embedded),
            Err(VmwareError::Compressed { .. })
        ));
    }

    #[test]
    fn hostile_headers_are_refused_with_where() {
        let good = state_file(&region_tags(&[(0, 0, 1)]));
        let field_at = |f: &[u8]| match parse(&f) {
            Err(VmwareError::Field { field, offset, .. }) => (field, offset),
            other => panic!("{other:?}"),
        };
        // Not a state file.
        let mut g = good.clone();
        g[0] = 0;
        assert_eq!(field_at(&g), ("header.magic", 0));
        assert!(!is_state_file(&g));
        // An absurd group count, and one just past the file.
        let one_too_many = u32::try_from((good.len() - 12) / 80 + 1).unwrap();
        for count in [u32::MAX, MAX_GROUPS + 1, one_too_many] {
            let mut g = good.clone();
            g[8..12].copy_from_slice(&count.to_le_bytes());
            assert_eq!(field_at(&g), ("header.group_count", 8), "{count}");
        }
        // The memory group's tags past the end of the file.
        let mut g = good.clone();
        let past = g.len() as u64 + 10;
        g[12 + 80 + 64..12 + 80 + 72].copy_from_slice(&past.to_le_bytes());
        assert_eq!(field_at(&g), ("tag", g.len() as u64 + 10));
        let mut g = good.clone();
        g[12 + 80 + 64..12 + 80 + 72].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(field_at(&g), ("tag", u64::MAX));
        // Truncated anywhere: an error, never a panic or a hang.
        for cut in 0..good.len() {
            assert!(parse(&&good[..cut]).is_err(), "cut at {cut}");
        }
        // No NULL tag: the walk stops at the end of the file.
        let g = &good[..good.len() - 2];
        assert_eq!(field_at(g), ("tag", g.len() as u64));
        // A block claiming more bytes than the file has, or overflowing.
        for claim in [1u64 << 40, u64::MAX - 3] {
            let mut t = block_tag("Memory", &[0, 0], &[0; 16]);
            let at = 2 + 6 + 8;
            t[at..at + 8].copy_from_slice(&claim.to_le_bytes());
            let f = state_file(&t);
            assert_eq!(field_at(&f).0, "tag.block_size");
        }
        // No memory group.
        let mut g = good.clone();
        g[12 + 80..12 + 80 + 6].copy_from_slice(b"memorx");
        assert!(matches!(
            parse(&g.as_slice()),
            Err(VmwareError::NoMemoryGroup { groups }) if groups == "cpu, memorx"
        ));
        // Two memory groups.
        let mut g = good.clone();
        g[12..18].copy_from_slice(b"memory");
        assert_eq!(field_at(&g), ("group.name", 12 + 80));
    }

    #[test]
    fn inconsistent_regions_are_refused() {
        let region = |tags: Vec<u8>| match parse(&state_file(&tags).as_slice()) {
            Err(VmwareError::Region { index, problem, .. }) => (index, problem),
            other => panic!("{other:?}"),
        };
        // regionsCount claims more regions than are described (absurd counts allocate
        // nothing: the regions come from tags).
        let mut t = region_tags(&[(0, 0, 1)]);
        t[2 + 12..2 + 12 + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(region(t).0, 1);
        // A region missing its size.
        let mut t = int_tag("regionsCount", &[], 4, 1);
        t.extend(int_tag("regionPPN", &[0], 4, 0));
        t.extend(int_tag("regionPageNum", &[0], 4, 0));
        let (i, p) = region(t);
        assert_eq!((i, p.as_str()), (0, "no regionSize tag"));
        // A tag given twice.
        let mut t = region_tags(&[(0, 0, 1)]);
        t.extend(int_tag("regionSize", &[0], 4, 5));
        assert_eq!(region(t).1, "regionSize given twice");
        // Regions without a count.
        let t = region_tags(&[(0, 0, 1)]);
        let t = t[2 + 12 + 4..].to_vec();
        assert!(region(t).1.contains("no regionsCount"));

        // Page arithmetic that overflows, and regions that overlap.
        let s = parse(&state_file(&region_tags(&[(0, 0, 1)])).as_slice()).unwrap();
        let mut s2 = s.clone();
        s2.regions[0].pages = u64::MAX / 2;
        assert!(matches!(
            s2.phys_map(MemoryFile::Separate {
                size_bytes: u64::MAX
            }),
            Err(VmwareError::Region { index: 0, .. })
        ));
        let mut s3 = s.clone();
        s3.regions[0].guest_page = u64::MAX / PAGE_BYTES;
        assert!(s3
            .phys_map(MemoryFile::Separate {
                size_bytes: u64::MAX
            })
            .is_err());
        let s4 = parse(&state_file(&region_tags(&[(0, 0, 2), (1, 2, 2)])).as_slice()).unwrap();
        assert!(matches!(
            s4.phys_map(MemoryFile::Separate {
                size_bytes: 4 * 4096
            }),
            Err(VmwareError::Map(MapError::Overlap { at: 4096 }))
        ));
        // A region value that is not an integer.
        let mut t = int_tag("regionsCount", &[], 4, 1);
        t.extend(raw_tag("regionPPN", &[0], &[0; 9]));
        assert!(matches!(
            parse(&state_file(&t).as_slice()),
            Err(VmwareError::Field {
                field: "regionPPN",
                ..
            })
        ));
    }

    #[test]
    fn the_tag_walk_is_bounded() {
        // MAX_TAGS one-byte tags, no NULL tag: refused after MAX_TAGS, not walked forever.
        let one = int_tag("x", &[], 1, 7);
        let mut tags = Vec::with_capacity(one.len() * (MAX_TAGS as usize + 1));
        for _ in 0..=MAX_TAGS {
            tags.extend_from_slice(&one);
        }
        let f = state_file(&tags);
        assert!(matches!(
            parse(&f.as_slice()),
            Err(VmwareError::Field {
                field: "memory group tags",
                ..
            })
        ));
        // Unknown tags and tags with 61-byte values are skipped.
        let mut tags = raw_tag("blob", &[1, 2, 3], &[0xaa; 61]);
        tags.extend(region_tags(&[(0, 0, 1)]));
        let s = parse(&state_file(&tags).as_slice()).unwrap();
        assert_eq!(s.regions.len(), 1);
    }

    #[test]
    fn old_checkpoints_have_32_bit_block_sizes() {
        let mem = vec![9u8; 4096];
        let mut t = vec![(2 << 6) | VALUE_BLOCK, 6];
        t.extend_from_slice(b"Memory");
        t.extend_from_slice(&[0; 8]);
        t.extend_from_slice(&4096u32.to_le_bytes());
        t.extend_from_slice(&4096u32.to_le_bytes());
        t.extend_from_slice(&[0, 0]);
        t.extend_from_slice(&mem);
        let mut f = state_file(&t);
        f[..4].copy_from_slice(&0xbed2_bed0u32.to_le_bytes());
        let s = parse(&f.as_slice()).unwrap();
        let b = s.memory_block.unwrap();
        assert_eq!(
            (b.stored_bytes, b.data_offset as usize),
            (4096, f.len() - 2 - 4096)
        );
    }
}
