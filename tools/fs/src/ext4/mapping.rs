//! Where a file's bytes are: the extent tree (ext4) or the block map (ext2/3: 12 direct,
//! one indirect, one double and one triple indirect pointer), turned into sorted runs of
//! blocks, and a `ReadAt` over them. Both walks are bounded: the extent tree by its depth
//! (at most 5 levels, each exactly one below its parent) and a visited set of index
//! blocks; the block map by its three fixed levels and a visited set of indirect blocks;
//! the runs by the file's size in blocks.

use super::bytes::{le16, le32};
use super::inode::I_BLOCK_BYTES;
use super::Ext4;
use crate::FsError;
use std::collections::HashSet;

/// `eh_magic`.
const EXTENT_MAGIC: u16 = 0xF30A;
/// The deepest extent tree the kernel builds (`EXT4_MAX_EXTENT_DEPTH`).
const MAX_EXTENT_DEPTH: u16 = 5;
/// Logical blocks a file can map (`ee_block` and block-map indexes are 32-bit).
const MAX_LOGICAL_BLOCKS: u64 = 1 << 32;
/// An `ee_len` above this marks an unwritten extent of `ee_len - 32768` blocks (zeros).
const EXTENT_UNINIT_LEN: u16 = 32768;

/// Consecutive logical blocks at consecutive physical blocks (or zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First logical block.
    pub logical: u64,
    /// First physical block (meaningless when `zeros`).
    pub physical: u64,
    /// Blocks.
    pub len: u64,
    /// An unwritten extent: reads as zeros.
    pub zeros: bool,
}

/// Sorted, non-overlapping runs, built with a cap.
struct Runs {
    runs: Vec<Run>,
    /// Logical blocks past this are dropped (beyond the file's size).
    limit_blocks: u64,
}

impl Runs {
    fn push(&mut self, mut r: Run) {
        if r.logical >= self.limit_blocks || r.len == 0 {
            return;
        }
        r.len = r.len.min(self.limit_blocks - r.logical);
        if let Some(last) = self.runs.last_mut() {
            if !last.zeros
                && !r.zeros
                && last.logical.checked_add(last.len) == Some(r.logical)
                && last.physical.checked_add(last.len) == Some(r.physical)
            {
                last.len += r.len;
                return;
            }
        }
        self.runs.push(r);
    }

    fn finish(mut self) -> Vec<Run> {
        self.runs.sort_by_key(|r| r.logical);
        // Overlapping runs (hostile trees): keep the first claim of each block.
        let mut out: Vec<Run> = Vec::with_capacity(self.runs.len());
        for mut r in self.runs {
            if let Some(last) = out.last() {
                let end = last.logical.saturating_add(last.len);
                if r.logical < end {
                    let skip = end - r.logical;
                    if skip >= r.len {
                        continue;
                    }
                    r.logical += skip;
                    r.physical = r.physical.saturating_add(skip);
                    r.len -= skip;
                }
            }
            out.push(r);
        }
        out
    }
}

impl Ext4<'_> {
    /// The blocks of a file of `size` bytes whose inode (at byte `inode_offset`) holds
    /// `i_block` and `flags`.
    pub(super) fn map(
        &self,
        inode_offset: u64,
        i_block: &[u8; I_BLOCK_BYTES],
        extents: bool,
        size: u64,
    ) -> Result<Vec<Run>, FsError> {
        let bs = u64::from(self.sb.block_size);
        // Logical block numbers are 32-bit (extents and block maps alike): nothing maps
        // past 2^32 blocks, whatever i_size claims, and byte offsets stay far from u64::MAX.
        let mut runs = Runs {
            runs: Vec::new(),
            limit_blocks: size.div_ceil(bs).min(MAX_LOGICAL_BLOCKS),
        };
        if extents {
            self.map_extents(inode_offset, i_block, &mut runs)?;
        } else {
            self.map_block_pointers(inode_offset, i_block, &mut runs)?;
        }
        Ok(runs.finish())
    }

    fn check_block(
        &self,
        offset: u64,
        field: &'static str,
        block: u64,
        len: u64,
    ) -> Result<(), FsError> {
        if block
            .checked_add(len)
            .is_none_or(|end| end > self.sb.blocks_count)
        {
            return Err(FsError::invalid(
                &self.volume,
                offset,
                field,
                format!(
                    "blocks {block}+{len} run past the file system's {} blocks",
                    self.sb.blocks_count
                ),
            ));
        }
        Ok(())
    }

    fn map_extents(
        &self,
        inode_offset: u64,
        i_block: &[u8; I_BLOCK_BYTES],
        runs: &mut Runs,
    ) -> Result<(), FsError> {
        let at = inode_offset + 0x28;
        let root_depth = le16(i_block, 6);
        if le16(i_block, 0) != EXTENT_MAGIC {
            return Err(FsError::invalid(
                &self.volume,
                at,
                "ext4 inode.i_block extent header eh_magic",
                format!("{:#06x}, expected {EXTENT_MAGIC:#06x}", le16(i_block, 0)),
            ));
        }
        if root_depth > MAX_EXTENT_DEPTH {
            return Err(FsError::invalid(
                &self.volume,
                at + 6,
                "ext4 inode.i_block extent header eh_depth",
                format!("{root_depth}, expected at most {MAX_EXTENT_DEPTH}"),
            ));
        }
        let mut visited: HashSet<u64> = HashSet::new();
        // (node bytes, its byte offset in the volume, the depth it must have)
        let mut stack: Vec<(Vec<u8>, u64, u16)> = vec![(i_block.to_vec(), at, root_depth)];
        let bs = u64::from(self.sb.block_size);
        while let Some((node, node_at, depth)) = stack.pop() {
            let magic = le16(&node, 0);
            let entries = le16(&node, 2);
            let node_depth = le16(&node, 6);
            if magic != EXTENT_MAGIC {
                return Err(FsError::invalid(
                    &self.volume,
                    node_at,
                    "ext4 extent header eh_magic",
                    format!("{magic:#06x}, expected {EXTENT_MAGIC:#06x}"),
                ));
            }
            if node_depth != depth {
                return Err(FsError::invalid(
                    &self.volume,
                    node_at + 6,
                    "ext4 extent header eh_depth",
                    format!("{node_depth}, expected {depth} (one below its parent)"),
                ));
            }
            let fits = (node.len() - 12) / 12;
            if usize::from(entries) > fits {
                return Err(FsError::invalid(
                    &self.volume,
                    node_at + 2,
                    "ext4 extent header eh_entries",
                    format!("{entries}, but the node holds at most {fits}"),
                ));
            }
            let mut children = Vec::new();
            for i in 0..usize::from(entries) {
                let e = 12 + 12 * i;
                let e_at = node_at + e as u64;
                let first = u64::from(le32(&node, e));
                if depth == 0 {
                    let raw_len = le16(&node, e + 4);
                    let (len, zeros) = if raw_len > EXTENT_UNINIT_LEN {
                        (raw_len - EXTENT_UNINIT_LEN, true)
                    } else {
                        (raw_len, false)
                    };
                    let physical =
                        u64::from(le32(&node, e + 8)) | (u64::from(le16(&node, e + 6)) << 32);
                    if !zeros {
                        self.check_block(e_at, "ext4 extent ee_start", physical, len.into())?;
                    }
                    runs.push(Run {
                        logical: first,
                        physical,
                        len: len.into(),
                        zeros,
                    });
                } else {
                    let leaf =
                        u64::from(le32(&node, e + 4)) | (u64::from(le16(&node, e + 8)) << 32);
                    self.check_block(e_at, "ext4 extent index ei_leaf", leaf, 1)?;
                    if !visited.insert(leaf) {
                        return Err(FsError::invalid(
                            &self.volume,
                            e_at,
                            "ext4 extent index ei_leaf",
                            format!("block {leaf} is already part of this extent tree (a loop)"),
                        ));
                    }
                    // Only subtrees that can hold blocks inside the file are read.
                    if first < runs.limit_blocks {
                        children.push(leaf);
                    }
                }
            }
            for leaf in children.into_iter().rev() {
                let mut buf = vec![0u8; self.sb.block_size as usize];
                let off = leaf * bs;
                crate::read_exact(&self.vol, &self.volume, &mut buf, off)?;
                stack.push((buf, off, depth - 1));
            }
        }
        Ok(())
    }

    fn map_block_pointers(
        &self,
        inode_offset: u64,
        i_block: &[u8; I_BLOCK_BYTES],
        runs: &mut Runs,
    ) -> Result<(), FsError> {
        let at = inode_offset + 0x28;
        for i in 0..12usize {
            let b = u64::from(le32(i_block, 4 * i));
            if b != 0 {
                self.check_block(at + 4 * i as u64, "ext4 inode.i_block direct", b, 1)?;
                runs.push(Run {
                    logical: i as u64,
                    physical: b,
                    len: 1,
                    zeros: false,
                });
            }
        }
        let per = u64::from(self.sb.block_size / 4);
        let mut visited = HashSet::new();
        let mut base = 12u64;
        let mut span = per;
        for level in 1..=3u32 {
            let slot = 12 + level as usize - 1;
            let b = u64::from(le32(i_block, 4 * slot));
            if base >= runs.limit_blocks {
                break;
            }
            if b != 0 {
                self.indirect(at + 4 * slot as u64, b, level, base, &mut visited, runs)?;
            }
            base = base.saturating_add(span);
            span = span.saturating_mul(per);
        }
        Ok(())
    }

    /// One indirect block of `level` (1: pointers to data) mapping from logical `base`.
    fn indirect(
        &self,
        pointer_at: u64,
        block: u64,
        level: u32,
        base: u64,
        visited: &mut HashSet<u64>,
        runs: &mut Runs,
    ) -> Result<(), FsError> {
        self.check_block(pointer_at, "ext4 indirect block pointer", block, 1)?;
        if !visited.insert(block) {
            return Err(FsError::invalid(
                &self.volume,
                pointer_at,
                "ext4 indirect block pointer",
                format!("block {block} is already part of this file's block map (a loop)"),
            ));
        }
        let bs = u64::from(self.sb.block_size);
        let mut buf = vec![0u8; self.sb.block_size as usize];
        let off = block * bs;
        crate::read_exact(&self.vol, &self.volume, &mut buf, off)?;
        let per = bs / 4;
        let child_span = per.saturating_pow(level - 1);
        for (i, ptr) in (0u64..).zip(buf.chunks_exact(4)) {
            let logical = base.saturating_add(i.saturating_mul(child_span));
            if logical >= runs.limit_blocks {
                break;
            }
            let p = u64::from(le32(ptr, 0));
            if p == 0 {
                continue;
            }
            if level == 1 {
                self.check_block(off + 4 * i, "ext4 indirect block entry", p, 1)?;
                runs.push(Run {
                    logical,
                    physical: p,
                    len: 1,
                    zeros: false,
                });
            } else {
                self.indirect(off + 4 * i, p, level - 1, logical, visited, runs)?;
            }
        }
        Ok(())
    }
}

/// A file's content as a `ReadAt` (see [`crate::mapped`]).
pub type FileData<'f> = crate::mapped::Mapped<'f, Run>;

/// Where the bytes are.
pub type Content = crate::mapped::Content<Run>;

impl crate::mapped::BlockRun for Run {
    fn logical(&self) -> u64 {
        self.logical
    }
    fn blocks(&self) -> u64 {
        self.len
    }
    fn zeros(&self) -> bool {
        self.zeros
    }
    fn byte_of(&self, i: u64, block_size: u64) -> u64 {
        self.physical.saturating_add(i).saturating_mul(block_size)
    }
}
