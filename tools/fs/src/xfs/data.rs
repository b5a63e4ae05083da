//! Where a file's bytes are: its data fork's extent list (packed 128-bit records) or its
//! bmbt (a B+tree of those records, rooted in the inode), turned into sorted runs, and a
//! `ReadAt` over them. The tree walk is bounded by its level (each child exactly one
//! below its parent, at most [`MAX_LEVELS`]), a visited set of blocks and a cap on
//! records; every block pointer and extent is checked inside the file system.

use super::be::{be16, be32, be64};
use super::Xfs;
use crate::FsError;
use std::collections::HashSet;

/// `BMAP` (v4 bmbt block) and `BMA3` (v5).
const BMAP_MAGIC: u32 = 0x424D_4150;
const BMA3_MAGIC: u32 = 0x424D_4133;
/// Deeper than any bmbt the kernel can build for 2^64 bytes.
pub const MAX_LEVELS: u16 = 9;
/// Extent records collected at most for one file.
pub const MAX_EXTENTS: usize = 1 << 22;

/// Consecutive logical blocks at consecutive bytes of the volume (or zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First logical block.
    pub logical: u64,
    /// Byte offset in the volume of the first block (meaningless when `zeros`).
    pub at: u64,
    /// Blocks.
    pub len: u64,
    /// An unwritten extent: reads as zeros.
    pub zeros: bool,
}

/// One decoded extent record.
#[derive(Debug, Clone, Copy)]
pub struct Extent {
    pub startoff: u64,
    pub startblock: u64,
    pub blockcount: u64,
    pub unwritten: bool,
}

/// Decodes a 16-byte big-endian `xfs_bmbt_rec`: bit 127 unwritten, 126..73 startoff,
/// 72..21 startblock, 20..0 blockcount.
pub fn decode(rec: &[u8]) -> Extent {
    let l0 = be64(rec, 0);
    let l1 = be64(rec, 8);
    Extent {
        unwritten: l0 >> 63 != 0,
        startoff: (l0 & ((1 << 63) - 1)) >> 9,
        startblock: ((l0 & 0x1FF) << 43) | (l1 >> 21),
        blockcount: l1 & ((1 << 21) - 1),
    }
}

impl Xfs<'_> {
    /// The runs of an extents- or btree-format data fork, for a file of `size` bytes.
    pub(super) fn map_fork(
        &self,
        ino: u64,
        inode_at: u64,
        fork: &[u8],
        btree: bool,
        nextents: u64,
        size: u64,
    ) -> Result<Vec<Run>, FsError> {
        let mut recs = Vec::new();
        if btree {
            self.walk_bmbt_root(ino, inode_at, fork, &mut recs)?;
        } else {
            let n = usize::try_from(nextents).unwrap_or(usize::MAX);
            if n > fork.len() / 16 {
                return Err(FsError::invalid(
                    &self.volume,
                    inode_at + 76,
                    "xfs inode di_nextents",
                    format!(
                        "inode {ino}: {nextents} extents do not fit in a {}-byte fork",
                        fork.len()
                    ),
                ));
            }
            recs.extend(fork.chunks_exact(16).take(n).map(decode));
        }
        self.runs(ino, inode_at, &recs, size)
    }

    fn runs(
        &self,
        ino: u64,
        inode_at: u64,
        recs: &[Extent],
        size: u64,
    ) -> Result<Vec<Run>, FsError> {
        let bs = u64::from(self.sb.block_size);
        let limit = size.div_ceil(bs);
        let mut runs: Vec<Run> = Vec::new();
        for e in recs {
            if e.blockcount == 0 || e.startoff >= limit {
                continue;
            }
            if !self.sb.extent_ok(e.startblock, e.blockcount) {
                return Err(FsError::invalid(
                    &self.volume,
                    inode_at,
                    "xfs bmbt record startblock",
                    format!(
                        "inode {ino}: extent at block {:#x} of {} blocks is outside the file system",
                        e.startblock, e.blockcount
                    ),
                ));
            }
            let at = self.sb.fsb_offset(e.startblock).unwrap_or(0);
            let len = e.blockcount.min(limit - e.startoff);
            runs.push(Run {
                logical: e.startoff,
                at,
                len,
                zeros: e.unwritten,
            });
        }
        runs.sort_by_key(|r| r.logical);
        // Overlapping runs (hostile trees): keep the first claim of each block.
        let mut out: Vec<Run> = Vec::with_capacity(runs.len());
        for mut r in runs {
            if let Some(last) = out.last() {
                let end = last.logical.saturating_add(last.len);
                if r.logical < end {
                    let skip = end - r.logical;
                    if skip >= r.len {
                        continue;
                    }
                    r.logical += skip;
                    r.at = r.at.saturating_add(skip * bs);
                    r.len -= skip;
                }
            }
            out.push(r);
        }
        Ok(out)
    }

    fn walk_bmbt_root(
        &self,
        ino: u64,
        inode_at: u64,
        fork: &[u8],
        recs: &mut Vec<Extent>,
    ) -> Result<(), FsError> {
        let level = be16(fork, 0);
        let numrecs = usize::from(be16(fork, 2));
        let maxrecs = fork.len().saturating_sub(4) / 16;
        if level == 0 || level > MAX_LEVELS || numrecs > maxrecs {
            return Err(FsError::invalid(
                &self.volume,
                inode_at,
                "xfs inode bmdr root",
                format!("inode {ino}: level {level}, {numrecs} records (at most {maxrecs})"),
            ));
        }
        let mut visited = HashSet::new();
        let ptrs = 4 + maxrecs * 8;
        for i in 0..numrecs {
            let p = be64(fork, ptrs + i * 8);
            self.walk_bmbt(ino, p, level - 1, &mut visited, recs)?;
        }
        Ok(())
    }

    fn walk_bmbt(
        &self,
        ino: u64,
        fsbno: u64,
        level: u16,
        visited: &mut HashSet<u64>,
        recs: &mut Vec<Extent>,
    ) -> Result<(), FsError> {
        let Some(at) = self.sb.fsb_offset(fsbno) else {
            return Err(FsError::invalid(
                &self.volume,
                0,
                "xfs bmbt block pointer",
                format!("inode {ino}: block {fsbno:#x} is outside the file system"),
            ));
        };
        if !visited.insert(fsbno) {
            return Err(FsError::invalid(
                &self.volume,
                at,
                "xfs bmbt block pointer",
                format!("inode {ino}: block {fsbno:#x} is reached twice (a loop)"),
            ));
        }
        let bs = self.sb.block_size as usize;
        let mut buf = vec![0u8; bs];
        crate::read_exact(self.vol, &self.volume, &mut buf, at)?;
        let magic = be32(&buf, 0);
        let (want, hdr) = if self.sb.version == 5 {
            (BMA3_MAGIC, 72)
        } else {
            (BMAP_MAGIC, 24)
        };
        if magic != want {
            return Err(FsError::invalid(
                &self.volume,
                at,
                "xfs bmbt block magic",
                format!("inode {ino}: {magic:#010x}, {want:#010x} expected"),
            ));
        }
        let blevel = be16(&buf, 4);
        let numrecs = usize::from(be16(&buf, 6));
        let maxrecs = (bs - hdr) / 16;
        if blevel != level || numrecs > maxrecs {
            return Err(FsError::invalid(
                &self.volume,
                at + 4,
                "xfs bmbt block bb_level",
                format!(
                    "inode {ino}: level {blevel} ({level} expected), {numrecs} records (at most {maxrecs})"
                ),
            ));
        }
        if self.sb.version == 5 && be64(&buf, 56) != ino {
            return Err(FsError::invalid(
                &self.volume,
                at + 56,
                "xfs bmbt block bb_owner",
                format!("inode {ino}: the block belongs to inode {}", be64(&buf, 56)),
            ));
        }
        if level == 0 {
            if recs.len() + numrecs > MAX_EXTENTS {
                return Err(FsError::Unsupported {
                    volume: self.volume.clone(),
                    what: format!("inode {ino} with more than {MAX_EXTENTS} extents"),
                });
            }
            let body = buf.get(hdr..hdr + numrecs * 16).unwrap_or_default();
            recs.extend(body.chunks_exact(16).map(decode));
            return Ok(());
        }
        let ptrs = hdr + maxrecs * 8;
        for i in 0..numrecs {
            let p = be64(&buf, ptrs + i * 8);
            self.walk_bmbt(ino, p, level - 1, visited, recs)?;
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
        self.at.saturating_add(i.saturating_mul(block_size))
    }
}
