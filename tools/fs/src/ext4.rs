//! ext2, ext3 and ext4, read straight from the volume, never mounted. A file system that
//! needs recovery has its journal replayed in memory ([`journal`]), as the kernel and
//! e2fsck would before reading it; the image is never written, and
//! [`Ext4::open_as_stored`] reads the blocks as they are stored (what TSK shows).
//!
//! What is read: the superblock (unknown incompatible features are refused), group
//! descriptors (32- and 64-byte, flex_bg, meta_bg), inodes (128 bytes and larger, with
//! `i_extra_isize`: nanoseconds, the 2038 epoch bits, crtime), extent trees and ext2/3
//! block maps, inline data (`i_block` + `system.data`), linear and htree directories,
//! fast and slow symlinks, extended attribute names. Deleted directory entries are
//! recovered from directory slack, and deleted inodes no entry names are listed as TSK's
//! `$OrphanFiles`. "Allocated" is the inode bitmap's bit, as TSK has it.
//!
//! ```no_run
//! use vestige_fs::{ext4::Ext4, FileSystem};
//! # fn demo(vol: &dyn vestige_fs::ReadAt) -> Result<(), vestige_fs::FsError> {
//! let fs = Ext4::open(vol, "disk.raw volume 1")?;
//! for e in fs.read_dir(fs.root())? {
//!     println!("{} {}", String::from_utf8_lossy(&e.name), e.inode);
//! }
//! # Ok(()) }
//! ```

mod bytes;
mod dir;
mod inode;
pub mod journal;
mod mapping;
pub mod superblock;
#[cfg(test)]
mod tests;
mod xattr;

use crate::{DirEntry, FileKind, FileSystem, FsError, FsInfo, Inode, Metadata, ReadAt, Times};
use inode::{RawInode, FL_EXTENTS, FL_INDEX, FL_INLINE_DATA};
use mapping::{Content, FileData};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use superblock::{GroupDesc, Superblock, BG_INODE_UNINIT};

/// Directories larger than this are refused (real ones are a few MiB at most).
const MAX_DIR_BYTES: u64 = 256 << 20;
/// Inode bitmaps kept in memory at most (one block each).
const BITMAP_CACHE: usize = 4096;
/// Orphan-list inodes followed at most.
const MAX_ORPHAN_CHAIN: usize = 10_000;
/// Directories visited at most when looking for orphans.
const MAX_ORPHAN_DIRS: usize = 10_000_000;
/// Bytes of inode table read at a time when looking for orphans.
const ORPHAN_BATCH_BYTES: usize = 1 << 20;

/// The volume as the file system reads it: the stored bytes, with the journal's committed
/// blocks laid over them when the journal was replayed.
struct Source<'a> {
    base: &'a dyn ReadAt,
    /// File-system block → replayed content (each `block_size` bytes).
    overlay: BTreeMap<u64, Vec<u8>>,
    block_size: u64,
}

impl ReadAt for Source<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let n = self.base.read_at(buf, offset)?;
        if self.overlay.is_empty() || n == 0 {
            return Ok(n);
        }
        let bs = self.block_size.max(1);
        let end = offset.saturating_add(n as u64);
        for (&block, data) in self.overlay.range(offset / bs..=(end - 1) / bs) {
            let start = block.saturating_mul(bs);
            let (from, to) = (start.max(offset), start.saturating_add(bs).min(end));
            let (Ok(dst_a), Ok(dst_b), Ok(src_a), Ok(src_b)) = (
                usize::try_from(from - offset),
                usize::try_from(to - offset),
                usize::try_from(from - start),
                usize::try_from(to - start),
            ) else {
                continue;
            };
            if let (Some(dst), Some(src)) = (buf.get_mut(dst_a..dst_b), data.get(src_a..src_b)) {
                dst.copy_from_slice(src);
            }
        }
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.base.size()
    }
}

/// An ext2/3/4 file system over a volume.
pub struct Ext4<'a> {
    vol: Source<'a>,
    volume: String,
    sb: Superblock,
    groups: Vec<GroupDesc>,
    bitmaps: Mutex<HashMap<u32, Arc<Vec<u8>>>>,
    notes: Vec<String>,
    /// Transactions replayed from the journal.
    journal: Vec<journal::Transaction>,
}

/// An inode as a copy of its inode table block in the journal holds it: an earlier
/// version of an inode that is free now (see [`Ext4::journal_inodes`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalInode {
    /// The inode number.
    pub inode: Inode,
    /// The transaction whose copy holds it.
    pub sequence: u32,
    /// The copy's block in the journal.
    pub log_block: u64,
    /// Whether that transaction is in the live log.
    pub live: bool,
    /// What it was.
    pub kind: FileKind,
    /// Its permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Bytes.
    pub size: u64,
    /// Links.
    pub links: u32,
    /// Its four times then.
    pub times: crate::Times,
}

/// "N committed transactions (ids a to b, committed from s to t, Unix seconds)".
fn journal_summary(r: &journal::Replay) -> String {
    let t = &r.transactions;
    let ids = match (t.first(), t.last()) {
        (Some(a), Some(b)) => format!(" (ids {} to {})", a.sequence, b.sequence),
        _ => String::new(),
    };
    let times: Vec<i64> = t
        .iter()
        .filter_map(|x| x.commit_time.map(|c| c.0))
        .collect();
    let when = match (times.iter().min(), times.iter().max()) {
        (Some(a), Some(b)) => format!(", committed from {a} to {b} (Unix seconds)"),
        _ => String::new(),
    };
    format!("{} committed transactions{ids}{when}", t.len())
}

impl std::fmt::Debug for Ext4<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ext4")
            .field("volume", &self.volume)
            .field("kind", &self.sb.kind())
            .field("block_size", &self.sb.block_size)
            .finish_non_exhaustive()
    }
}

/// Whether `vol` has an ext2/3/4 superblock magic.
#[must_use]
pub fn probe(vol: &dyn ReadAt) -> bool {
    let mut m = [0u8; 2];
    vol.read_exact_at(&mut m, superblock::SUPERBLOCK_OFFSET + 0x38)
        .is_ok()
        && u16::from_le_bytes(m) == superblock::MAGIC
}

impl<'a> Ext4<'a> {
    /// Whether `vol` has an ext2/3/4 superblock magic.
    #[must_use]
    pub fn probe(vol: &dyn ReadAt) -> bool {
        probe(vol)
    }

    /// Opens the file system on `vol`; `volume` names it in errors.
    ///
    /// # Errors
    /// Not ext2/3/4, damaged geometry or group descriptors, or an incompatible feature
    /// this reader does not know ([`FsError::Unsupported`]).
    pub fn open(vol: &'a dyn ReadAt, volume: &str) -> Result<Self, FsError> {
        let mut fs = Self::open_as_stored(vol, volume)?;
        if fs.sb.incompat & superblock::INCOMPAT_RECOVER == 0 {
            return Ok(fs);
        }
        let replay = match fs.journal_replay() {
            Ok(r) if !r.overlay.is_empty() => r,
            Ok(r) => {
                fs.notes.push(format!(
                    "the journal needs recovery but holds no committed block to replay ({})",
                    r.notes.join("; ")
                ));
                return Ok(fs);
            }
            Err(e) => {
                fs.notes.push(format!(
                    "the journal needs recovery but was not replayed: {e}; read as stored"
                ));
                return Ok(fs);
            }
        };
        let blocks = replay.overlay.len();
        let summary = journal_summary(&replay);
        let source = Source {
            base: vol,
            overlay: replay.overlay,
            block_size: u64::from(fs.sb.block_size),
        };
        match Self::open_source(source, volume, true) {
            Ok(mut replayed) => {
                replayed.notes.push(format!(
                    "journal replayed in memory (the image is unchanged): {summary}; {blocks} \
                     blocks read from the log instead of their home; {}",
                    replay.notes.join("; ")
                ));
                replayed.journal = replay.transactions;
                Ok(replayed)
            }
            Err(e) => {
                fs.notes.push(format!(
                    "the journal was read ({summary}) but the replayed file system does not \
                     open ({e}); read as stored"
                ));
                Ok(fs)
            }
        }
    }

    /// [`Ext4::open`] when `replay_journal`, else [`Ext4::open_as_stored`].
    ///
    /// # Errors
    /// As [`Ext4::open`].
    pub fn open_with(
        vol: &'a dyn ReadAt,
        volume: &str,
        replay_journal: bool,
    ) -> Result<Self, FsError> {
        if replay_journal {
            Self::open(vol, volume)
        } else {
            Self::open_as_stored(vol, volume)
        }
    }

    /// Opens the file system on `vol` as its blocks are stored: a journal that needs
    /// recovery is not replayed (the notes say so). This is what TSK reads.
    ///
    /// # Errors
    /// As [`Ext4::open`].
    pub fn open_as_stored(vol: &'a dyn ReadAt, volume: &str) -> Result<Self, FsError> {
        let source = Source {
            base: vol,
            overlay: BTreeMap::new(),
            block_size: 1,
        };
        Self::open_source(source, volume, false)
    }

    /// The transactions replayed from the journal (empty when none was).
    #[must_use]
    pub fn replayed_transactions(&self) -> &[journal::Transaction] {
        &self.journal
    }

    /// The journal's inode (`s_journal_inum`; 0 with an external journal).
    #[must_use]
    pub fn journal_inode(&self) -> u32 {
        self.sb.journal_inum
    }

    /// The journal's blocks (see [`journal::list`]): the live log and older transactions
    /// still in the log area.
    ///
    /// # Errors
    /// No journal inode, or a journal superblock this reader cannot trust.
    pub fn journal_listing(&self) -> Result<journal::Listing, String> {
        let log = self.journal_log()?;
        journal::list(&*log, u64::from(self.sb.block_size))
            .map_err(|e| format!("journal inode {}: {e}", self.sb.journal_inum))
    }

    /// Earlier versions of inodes that are free now, from the copies of inode table
    /// blocks in the journal (`listing`, live or old): each record whose inode the file
    /// system has free now (inode bitmap clear, or `i_dtime` set) but which the copy shows
    /// in use (a mode, links, no `i_dtime`). Identical versions are listed once, from the
    /// latest transaction holding them; at most `limit` are returned.
    ///
    /// This is how a deleted file's size, owner and times (and, in its `i_block`, where
    /// its data was) survive its deletion: ext4 clears the inode, but the journal keeps
    /// the block as it was when an earlier transaction logged it.
    ///
    /// # Errors
    /// The journal cannot be read.
    pub fn journal_inodes(
        &self,
        listing: &journal::Listing,
        limit: usize,
    ) -> Result<Vec<JournalInode>, String> {
        let log = self.journal_log()?;
        let bs = u64::from(self.sb.block_size);
        let isz = usize::from(self.sb.inode_size);
        let mut out: Vec<JournalInode> = Vec::new();
        let mut seen: HashSet<(Inode, u16, u64, Times)> = HashSet::new();
        // Newest first, so that a version repeated in older transactions is kept once,
        // from the latest; live entries are newer than old ones.
        let mut copies: Vec<&journal::LogEntry> = listing
            .entries
            .iter()
            .filter(|e| e.kind == "data")
            .collect();
        copies.sort_by_key(|e| std::cmp::Reverse((e.live, e.sequence)));
        for e in copies {
            let Some((_, first, _)) = e.fs_block.and_then(|b| self.inode_table_slot(b)) else {
                continue;
            };
            let mut block = vec![0u8; usize::try_from(bs).unwrap_or(0)];
            if log.read_exact_at(&mut block, e.log_block * bs).is_err() {
                continue;
            }
            for (i, rec) in (0u64..).zip(block.chunks_exact(isz)) {
                let ino = first + i;
                if ino > u64::from(self.sb.inodes_count) {
                    break;
                }
                let then = RawInode::parse(rec);
                if then.mode == 0 || then.links == 0 || then.dtime != 0 {
                    continue;
                }
                let free_now = match (self.allocated(ino), self.read_inode(ino)) {
                    (Ok(alloc), Ok((now, _))) => !alloc || now.dtime != 0,
                    _ => false,
                };
                if !free_now || !seen.insert((ino, then.mode, then.size, then.times)) {
                    continue;
                }
                if out.len() >= limit {
                    return Ok(out);
                }
                out.push(JournalInode {
                    inode: ino,
                    sequence: e.sequence,
                    log_block: e.log_block,
                    live: e.live,
                    kind: then.kind(),
                    mode: u32::from(then.mode & 0o7777),
                    uid: then.uid,
                    gid: then.gid,
                    size: then.size,
                    links: u32::from(then.links),
                    times: then.times,
                });
            }
        }
        Ok(out)
    }

    /// What file-system block `block` holds, when it is metadata a group descriptor
    /// locates: "superblock", "group descriptors", "block bitmap of group G", "inode
    /// bitmap of group G", "inode table of group G (inodes A-B)"; None otherwise (data, directories, extent blocks).
    #[must_use]
    pub fn block_role(&self, block: u64) -> Option<String> {
        let bs = u64::from(self.sb.block_size);
        if block == superblock::SUPERBLOCK_OFFSET / bs {
            return Some("superblock".into());
        }
        if self.sb.incompat & superblock::INCOMPAT_META_BG == 0 {
            let (first, _) = self.sb.descriptor_location(0);
            let (last, _) = self
                .sb
                .descriptor_location(self.sb.groups.saturating_sub(1));
            if (first..=last).contains(&block) {
                return Some("group descriptors".into());
            }
        }
        if let Some((g, first, last)) = self.inode_table_slot(block) {
            return Some(format!("inode table of group {g} (inodes {first}-{last})"));
        }
        for (g, gd) in (0u64..).zip(&self.groups) {
            if block == gd.block_bitmap {
                return Some(format!("block bitmap of group {g}"));
            }
            if block == gd.inode_bitmap {
                return Some(format!("inode bitmap of group {g}"));
            }
        }
        None
    }

    /// When `block` is in a group's inode table: (the group, the first and last inode it
    /// holds).
    fn inode_table_slot(&self, block: u64) -> Option<(u64, u64, u64)> {
        let bs = u64::from(self.sb.block_size);
        let per_block = bs / u64::from(self.sb.inode_size).max(1);
        let table_blocks =
            (u64::from(self.sb.inodes_per_group) * u64::from(self.sb.inode_size)).div_ceil(bs);
        (0u64..).zip(&self.groups).find_map(|(g, gd)| {
            let within = block.checked_sub(gd.inode_table)?;
            (within < table_blocks).then(|| {
                let first = g * u64::from(self.sb.inodes_per_group) + within * per_block + 1;
                (g, first, first + per_block - 1)
            })
        })
    }

    /// The journal inode's content, as stored.
    fn journal_log(&self) -> Result<Box<dyn ReadAt + '_>, String> {
        let ino = self.sb.journal_inum;
        if ino == 0 {
            return Err("no journal inode (s_journal_inum 0: an external journal, or none)".into());
        }
        self.open(u64::from(ino), None)
            .map_err(|e| format!("journal inode {ino}: {e}"))
    }

    /// Reads the journal (inode `s_journal_inum`) as stored and replays it in memory.
    fn journal_replay(&self) -> Result<journal::Replay, String> {
        let log = self.journal_log()?;
        journal::replay(&*log, u64::from(self.sb.block_size), self.sb.blocks_count)
            .map_err(|e| format!("journal inode {}: {e}", self.sb.journal_inum))
    }

    fn open_source(src: Source<'a>, volume: &str, replayed: bool) -> Result<Self, FsError> {
        let vol: &dyn ReadAt = &src;
        let mut raw = vec![0u8; superblock::SUPERBLOCK_BYTES];
        crate::read_exact(vol, volume, &mut raw, superblock::SUPERBLOCK_OFFSET)?;
        let sb = Superblock::parse(&raw, volume)?;
        let bs = u64::from(sb.block_size);
        let vol_size = vol.size();
        // The descriptors must fit in the volume before any table is allocated for them.
        let gdt_bytes = u64::from(sb.groups) * u64::from(sb.desc_size);
        if gdt_bytes > vol_size {
            return Err(FsError::invalid(
                volume,
                superblock::SUPERBLOCK_OFFSET + 0x4,
                "ext4 superblock.s_blocks_count",
                format!(
                    "{} groups need {gdt_bytes} bytes of descriptors; the volume has {vol_size}",
                    sb.groups
                ),
            ));
        }
        let is64 = sb.incompat & superblock::INCOMPAT_64BIT != 0;
        let mut groups = Vec::with_capacity(sb.groups as usize);
        let mut block_buf = vec![0u8; sb.block_size as usize];
        let mut loaded: Option<u64> = None;
        for g in 0..sb.groups {
            let (block, within) = sb.descriptor_location(g);
            if loaded != Some(block) {
                let off = block.checked_mul(bs).ok_or_else(|| {
                    FsError::invalid(volume, 0, "ext4 group descriptor block", "overflows")
                })?;
                crate::read_exact(vol, volume, &mut block_buf, off)?;
                loaded = Some(block);
            }
            let w = within as usize;
            let d = block_buf
                .get(w..w + usize::from(sb.desc_size))
                .unwrap_or_default();
            let gd = GroupDesc::parse(d, is64);
            let table_blocks =
                (u64::from(sb.inodes_per_group) * u64::from(sb.inode_size)).div_ceil(bs);
            if gd
                .inode_table
                .checked_add(table_blocks)
                .is_none_or(|end| end > sb.blocks_count)
            {
                return Err(FsError::invalid(
                    volume,
                    block * bs + u64::from(within) + 0x8,
                    "ext4 group descriptor.bg_inode_table",
                    format!(
                        "group {g}: inode table at block {} runs past the {} blocks",
                        gd.inode_table, sb.blocks_count
                    ),
                ));
            }
            groups.push(gd);
        }
        let mut notes = vec![format!("features: {}", sb.feature_names().join(" "))];
        let claimed = sb.blocks_count.saturating_mul(bs);
        if claimed > vol_size {
            notes.push(format!(
                "the file system claims {claimed} bytes but the volume has {vol_size} (truncated image?)"
            ));
        }
        if sb.ro_compat & superblock::RO_COMPAT_BIGALLOC != 0 {
            notes.push(format!(
                "bigalloc: space is allocated in clusters of {} bytes ({} blocks)",
                sb.cluster_size,
                sb.cluster_size / bs.max(1)
            ));
        }
        if sb.incompat & superblock::INCOMPAT_RECOVER != 0 && !replayed {
            notes.push("the journal needs recovery; it was not replayed (read as stored)".into());
        }
        if sb.state & 1 == 0 {
            notes.push("not cleanly unmounted (s_state)".into());
        }
        if !sb.last_mounted.is_empty() {
            notes.push(format!(
                "last mounted on: {}",
                crate::walk::escape_name(&sb.last_mounted)
            ));
        }
        notes.push(format!(
            "mount time {}, write time {}, created {} (s_mtime, s_wtime, s_mkfs_time; Unix seconds)",
            sb.mtime, sb.wtime, sb.mkfs_time
        ));
        let mut fs = Self {
            vol: src,
            volume: volume.to_string(),
            sb,
            groups,
            bitmaps: Mutex::new(HashMap::new()),
            notes,
            journal: Vec::new(),
        };
        let orphans = fs.orphan_chain();
        if !orphans.is_empty() {
            fs.notes.push(orphans);
        }
        Ok(fs)
    }

    fn not_found(&self, what: String) -> FsError {
        FsError::NotFound {
            volume: self.volume.clone(),
            what,
        }
    }

    /// The byte offset of inode `ino`'s record.
    fn inode_offset(&self, ino: Inode) -> Result<(u32, u32, u64), FsError> {
        let n = u32::try_from(ino)
            .ok()
            .filter(|&n| n >= 1 && n <= self.sb.inodes_count)
            .ok_or_else(|| self.not_found(format!("inode {ino}")))?;
        let group = (n - 1) / self.sb.inodes_per_group;
        let index = (n - 1) % self.sb.inodes_per_group;
        let gd = self
            .groups
            .get(group as usize)
            .ok_or_else(|| self.not_found(format!("inode {ino} (group {group})")))?;
        let off = gd.inode_table * u64::from(self.sb.block_size)
            + u64::from(index) * u64::from(self.sb.inode_size);
        Ok((group, index, off))
    }

    fn read_inode(&self, ino: Inode) -> Result<(RawInode, u64), FsError> {
        let (_, _, off) = self.inode_offset(ino)?;
        let mut buf = vec![0u8; usize::from(self.sb.inode_size)];
        crate::read_exact(&self.vol, &self.volume, &mut buf, off)?;
        Ok((RawInode::parse(&buf), off))
    }

    /// The inode bitmap's bit for `ino`.
    fn allocated(&self, ino: Inode) -> Result<bool, FsError> {
        let (group, index, _) = self.inode_offset(ino)?;
        let Some(gd) = self.groups.get(group as usize) else {
            return Ok(false);
        };
        let csum = self.sb.ro_compat
            & (superblock::RO_COMPAT_GDT_CSUM | superblock::RO_COMPAT_METADATA_CSUM)
            != 0;
        if csum && gd.flags & BG_INODE_UNINIT != 0 {
            return Ok(false);
        }
        let bitmap = self.bitmap(group, gd)?;
        let byte = bitmap.get((index / 8) as usize).copied().unwrap_or(0);
        Ok(byte & (1 << (index % 8)) != 0)
    }

    fn bitmap(&self, group: u32, gd: &GroupDesc) -> Result<Arc<Vec<u8>>, FsError> {
        if let Ok(cache) = self.bitmaps.lock() {
            if let Some(b) = cache.get(&group) {
                return Ok(Arc::clone(b));
            }
        }
        if gd.inode_bitmap >= self.sb.blocks_count {
            return Err(FsError::invalid(
                &self.volume,
                0,
                "ext4 group descriptor.bg_inode_bitmap",
                format!(
                    "group {group}: block {} is past the {} blocks",
                    gd.inode_bitmap, self.sb.blocks_count
                ),
            ));
        }
        let mut buf = vec![0u8; self.sb.block_size as usize];
        crate::read_exact(
            &self.vol,
            &self.volume,
            &mut buf,
            gd.inode_bitmap * u64::from(self.sb.block_size),
        )?;
        let b = Arc::new(buf);
        if let Ok(mut cache) = self.bitmaps.lock() {
            if cache.len() >= BITMAP_CACHE {
                cache.clear();
            }
            cache.insert(group, Arc::clone(&b));
        }
        Ok(b)
    }

    /// The s_last_orphan chain (linked through i_dtime), for the notes.
    fn orphan_chain(&self) -> String {
        let mut seen = HashSet::new();
        let mut list = Vec::new();
        let mut next = self.sb.last_orphan;
        while next != 0 && list.len() < MAX_ORPHAN_CHAIN && seen.insert(next) {
            list.push(next.to_string());
            match self.read_inode(u64::from(next)) {
                Ok((raw, _)) => next = raw.dtime,
                Err(e) => {
                    list.push(format!("(chain broken: {e})"));
                    break;
                }
            }
        }
        if list.is_empty() {
            String::new()
        } else {
            format!(
                "orphan list (s_last_orphan, inodes being deleted when last written): {}",
                list.join(" ")
            )
        }
    }

    /// The system.data attribute of an inline-data inode.
    fn inline_tail(&self, raw: &RawInode, off: u64) -> Result<Vec<u8>, FsError> {
        let found = xattr::in_inode(&raw.raw, raw.extra_isize)
            .into_iter()
            .find(|x| x.name_index == xattr::INDEX_SYSTEM && x.name == b"data");
        match found {
            Some(x) => Ok(x.value.unwrap_or_default()),
            None if raw.size <= inode::I_BLOCK_BYTES as u64 => Ok(Vec::new()),
            None => Err(FsError::invalid(
                &self.volume,
                off + 128,
                "ext4 inode system.data xattr",
                format!(
                    "inline data of {} bytes but no system.data attribute",
                    raw.size
                ),
            )),
        }
    }

    /// The names in an external attribute block, for the notes.
    fn xattr_block_note(&self, block: u64) -> String {
        if block >= self.sb.blocks_count {
            return format!("xattr block {block} is past the file system's end");
        }
        let mut buf = vec![0u8; self.sb.block_size as usize];
        let at = block * u64::from(self.sb.block_size);
        if let Err(e) = crate::read_exact(&self.vol, &self.volume, &mut buf, at) {
            return format!("xattr block {block} unreadable: {e}");
        }
        match xattr::in_block(&buf) {
            Some(list) => {
                let names: Vec<String> = list.iter().map(xattr::Xattr::full_name).collect();
                format!("xattrs in block {block}: {}", names.join(" "))
            }
            None => format!("xattr block {block} has no attribute block magic"),
        }
    }

    /// What backs the content of an inode.
    fn content(&self, raw: &RawInode, off: u64) -> Result<Content, FsError> {
        if raw.flags & FL_INLINE_DATA != 0 {
            let mut bytes = raw.i_block.to_vec();
            bytes.extend(self.inline_tail(raw, off)?);
            return Ok(Content::Inline(bytes));
        }
        // A fast symlink keeps its target in i_block (the kernel makes one for targets
        // shorter than i_block); a slow one has a block.
        let fast_symlink = raw.kind() == FileKind::Symlink
            && raw.flags & FL_EXTENTS == 0
            && raw.size < inode::I_BLOCK_BYTES as u64;
        if fast_symlink {
            return Ok(Content::Inline(raw.i_block.to_vec()));
        }
        let kind = raw.kind();
        if matches!(
            kind,
            FileKind::CharDevice | FileKind::BlockDevice | FileKind::Fifo | FileKind::Socket
        ) {
            return Ok(Content::Inline(Vec::new()));
        }
        let runs = self.map(off, &raw.i_block, raw.flags & FL_EXTENTS != 0, raw.size)?;
        Ok(Content::Runs(runs))
    }

    fn data(&self, raw: &RawInode, off: u64) -> Result<FileData<'_>, FsError> {
        let content = self.content(raw, off)?;
        let size = match raw.kind() {
            FileKind::CharDevice | FileKind::BlockDevice | FileKind::Fifo | FileKind::Socket => 0,
            _ => raw.size,
        };
        Ok(FileData {
            vol: &self.vol,
            volume: &self.volume,
            block_size: u64::from(self.sb.block_size),
            size,
            content,
        })
    }

    /// Inodes named by any entry (allocated or deleted) of the tree from the root.
    fn named_inodes(&self) -> HashSet<Inode> {
        let mut named = HashSet::new();
        let mut visited = HashSet::new();
        let mut stack = vec![self.root()];
        visited.insert(self.root());
        named.insert(self.root());
        while let Some(d) = stack.pop() {
            if visited.len() > MAX_ORPHAN_DIRS {
                break;
            }
            let Ok(entries) = self.read_dir(d) else {
                continue;
            };
            for e in entries {
                named.insert(e.inode);
                let dir = if e.deleted {
                    self.read_inode(e.inode)
                        .is_ok_and(|(r, _)| r.kind() == FileKind::Directory)
                } else {
                    e.kind == FileKind::Directory
                        || (e.kind == FileKind::Unknown
                            && self
                                .read_inode(e.inode)
                                .is_ok_and(|(r, _)| r.kind() == FileKind::Directory))
                };
                if dir && visited.insert(e.inode) {
                    stack.push(e.inode);
                }
            }
        }
        named
    }
}

impl FileSystem for Ext4<'_> {
    fn info(&self) -> FsInfo {
        let u = &self.sb.uuid;
        let id = format!(
            "{}-{}-{}-{}-{}",
            hex::encode(u.get(0..4).unwrap_or_default()),
            hex::encode(u.get(4..6).unwrap_or_default()),
            hex::encode(u.get(6..8).unwrap_or_default()),
            hex::encode(u.get(8..10).unwrap_or_default()),
            hex::encode(u.get(10..16).unwrap_or_default())
        );
        FsInfo {
            kind: self.sb.kind().to_string(),
            label: (!self.sb.label.is_empty())
                .then(|| String::from_utf8_lossy(&self.sb.label).into_owned()),
            id: Some(id),
            block_size: self.sb.block_size,
            size_bytes: self
                .sb
                .blocks_count
                .saturating_mul(u64::from(self.sb.block_size)),
            notes: self.notes.clone(),
        }
    }

    fn root(&self) -> Inode {
        2
    }

    fn read_dir(&self, dir: Inode) -> Result<Vec<DirEntry>, FsError> {
        let (raw, off) = self.read_inode(dir)?;
        if raw.kind() != FileKind::Directory {
            return Err(FsError::invalid(
                &self.volume,
                off,
                "ext4 inode.i_mode",
                format!("inode {dir} is not a directory (mode {:#o})", raw.mode),
            ));
        }
        let bs = self.sb.block_size as usize;
        let cap = MAX_DIR_BYTES.min(self.vol.size());
        if raw.size > cap {
            return Err(FsError::invalid(
                &self.volume,
                off + 4,
                "ext4 inode.i_size",
                format!(
                    "directory inode {dir} claims {} bytes, more than {cap}",
                    raw.size
                ),
            ));
        }
        let mut rules = dir::BlockRules {
            filetype: self.sb.incompat & superblock::INCOMPAT_FILETYPE != 0,
            inodes_count: self.sb.inodes_count,
            htree: raw.flags & FL_INDEX != 0,
            first_block: true,
        };
        let mut out = Vec::new();
        let data = self.data(&raw, off)?;
        if let Content::Inline(bytes) = &data.content {
            // i_block: the parent's inode number, then entries; system.data: entries.
            rules.htree = false;
            if let Some(head) = bytes.get(4..inode::I_BLOCK_BYTES) {
                dir::parse_block(head, &rules, &mut out);
            }
            if let Some(tail) = bytes.get(inode::I_BLOCK_BYTES..) {
                if !tail.is_empty() {
                    dir::parse_block(tail, &rules, &mut out);
                }
            }
            return Ok(out);
        }
        let size = usize::try_from(raw.size).unwrap_or(0);
        let mut buf = vec![0u8; size];
        data.read_exact_at(&mut buf, 0).map_err(|e| FsError::Io {
            volume: self.volume.clone(),
            offset: off,
            len: size,
            source: e,
        })?;
        for block in buf.chunks(bs) {
            dir::parse_block(block, &rules, &mut out);
            rules.first_block = false;
        }
        Ok(out)
    }

    fn metadata(&self, ino: Inode) -> Result<Metadata, FsError> {
        let (raw, _) = self.read_inode(ino)?;
        let mut notes = Vec::new();
        // An unreadable bitmap does not hide the inode: it is reported unallocated, with why.
        let allocated = self.allocated(ino).unwrap_or_else(|e| {
            notes.push(format!("allocation unknown (inode bitmap unreadable: {e})"));
            false
        });
        if raw.dtime != 0 {
            notes.push(format!("i_dtime {}", raw.dtime));
        }
        if raw.flags & FL_INLINE_DATA != 0 {
            notes.push("inline data".into());
        }
        if raw.flags & inode::FL_ENCRYPT != 0 {
            notes.push("encrypted (content and names are ciphertext)".into());
        }
        if raw.flags & inode::FL_EA_INODE != 0 {
            notes.push("extended attribute value inode".into());
        }
        if raw.flags & inode::FL_HUGE_FILE != 0 {
            notes.push("huge_file (i_blocks in file system blocks)".into());
        }
        let names: Vec<String> = xattr::in_inode(&raw.raw, raw.extra_isize)
            .iter()
            .map(xattr::Xattr::full_name)
            .collect();
        if !names.is_empty() {
            notes.push(format!("xattrs in inode: {}", names.join(" ")));
        }
        if raw.file_acl != 0 {
            notes.push(self.xattr_block_note(raw.file_acl));
        }
        let kind = raw.kind();
        let size = match kind {
            FileKind::CharDevice | FileKind::BlockDevice | FileKind::Fifo | FileKind::Socket => 0,
            _ => raw.size,
        };
        Ok(Metadata {
            mode: u32::from(raw.mode & 0o7777),
            uid: raw.uid,
            gid: raw.gid,
            size,
            links: u32::from(raw.links),
            allocated,
            times: raw.times,
            notes,
            ..Metadata::new(ino, kind)
        })
    }

    fn open(&self, ino: Inode, stream: Option<&str>) -> Result<Box<dyn ReadAt + '_>, FsError> {
        if let Some(s) = stream {
            return Err(self.not_found(format!("stream {s:?} of inode {ino} (ext4 has none)")));
        }
        let (raw, off) = self.read_inode(ino)?;
        Ok(Box::new(self.data(&raw, off)?))
    }

    fn read_link(&self, ino: Inode) -> Result<Vec<u8>, FsError> {
        let (raw, off) = self.read_inode(ino)?;
        if raw.kind() != FileKind::Symlink {
            return Err(FsError::invalid(
                &self.volume,
                off,
                "ext4 inode.i_mode",
                format!("inode {ino} is not a symbolic link (mode {:#o})", raw.mode),
            ));
        }
        // Targets are at most a block (PATH_MAX 4096).
        let len = raw.size.min(u64::from(self.sb.block_size));
        let data = self.data(&raw, off)?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        data.read_exact_at(&mut buf, 0).map_err(|e| FsError::Io {
            volume: self.volume.clone(),
            offset: off,
            len: buf.len(),
            source: e,
        })?;
        Ok(buf)
    }

    fn orphan_dir_inode(&self) -> Option<Inode> {
        Some(u64::from(self.sb.inodes_count) + 1)
    }

    fn orphans(&self) -> Result<Vec<Inode>, FsError> {
        // Candidates first (free in the bitmap, ever used): the tree is walked for names
        // only when there are some.
        let mut out = Vec::new();
        let ipg = self.sb.inodes_per_group;
        let isz = usize::from(self.sb.inode_size);
        let csum = self.sb.ro_compat
            & (superblock::RO_COMPAT_GDT_CSUM | superblock::RO_COMPAT_METADATA_CSUM)
            != 0;
        // Inode tables are read a batch at a time (a claimed table can be huge).
        let batch = (ORPHAN_BATCH_BYTES / isz).max(1);
        let mut table = vec![0u8; batch * isz];
        for (g, gd) in (0u32..).zip(self.groups.iter()) {
            // An uninitialised group's inodes are all free; its table is still read, as
            // TSK reads it (anything written there since is evidence).
            let bitmap = if csum && gd.flags & BG_INODE_UNINIT != 0 {
                Arc::new(Vec::new())
            } else {
                self.bitmap(g, gd)?
            };
            let table_at = gd.inode_table * u64::from(self.sb.block_size);
            let mut first = 0u32;
            while first < ipg {
                let first_ino = u64::from(g) * u64::from(ipg) + u64::from(first) + 1;
                if first_ino > u64::from(self.sb.inodes_count) {
                    break;
                }
                let n = (ipg - first).min(u32::try_from(batch).unwrap_or(u32::MAX));
                let bytes_n = n as usize * isz;
                let buf = table.get_mut(..bytes_n).unwrap_or_default();
                crate::read_exact(
                    &self.vol,
                    &self.volume,
                    buf,
                    table_at + u64::from(first) * isz as u64,
                )?;
                for (i, rec) in (first..).zip(buf.chunks_exact(isz)) {
                    let ino = u64::from(g) * u64::from(ipg) + u64::from(i) + 1;
                    if ino > u64::from(self.sb.inodes_count) {
                        break;
                    }
                    let used = bitmap.get((i / 8) as usize).copied().unwrap_or(0) & (1 << (i % 8));
                    if used != 0 {
                        continue;
                    }
                    // As TSK: an inode that was ever used has a ctime (its mode and dtime
                    // may be zero).
                    if bytes::le32(rec, 0xC) != 0 {
                        out.push(ino);
                    }
                }
                first += n;
            }
        }
        if out.is_empty() {
            return Ok(out);
        }
        let named = self.named_inodes();
        out.retain(|i| !named.contains(i));
        // Names inside deleted directories that are themselves orphans count as names:
        // TSK shows those files under their orphan directory, not as orphans.
        let mut inner = HashSet::new();
        let mut stack: Vec<Inode> = out.clone();
        let mut visited: HashSet<Inode> = HashSet::new();
        while let Some(d) = stack.pop() {
            if visited.len() > MAX_ORPHAN_DIRS || !visited.insert(d) {
                continue;
            }
            let Ok((raw, _)) = self.read_inode(d) else {
                continue;
            };
            if raw.kind() != FileKind::Directory {
                continue;
            }
            for e in self.read_dir(d).unwrap_or_default() {
                if e.inode != d && inner.insert(e.inode) {
                    stack.push(e.inode);
                }
            }
        }
        out.retain(|i| !inner.contains(i));
        Ok(out)
    }
}
