//! FAT12, FAT16 and FAT32 with VFAT long names, read straight from the volume (Microsoft
//! "FAT: General Overview of On-Disk Format" 1.03), numbered and shown the way The Sleuth
//! Kit does so that bodyfiles and `icat` compare:
//!
//! - inode 2 is the root directory; every other inode is a directory-entry slot: 3 + the
//!   slot's index counted from the first sector after the FATs (TSK's `firstdatasect`), 32
//!   bytes a slot. A file's inode is the slot of its short (8.3) entry.
//! - deleted entries (first byte 0xE5) are listed with `_` for the lost first character,
//!   or with their long name when the long-name entries are still there and their checksum
//!   matches the short name for some first byte; entries in clusters the FAT marks free are
//!   deleted too (a deleted directory's children).
//! - a deleted file's content is recovered as TSK does: from its first cluster on, the
//!   clusters that are free in the FAT, in order, until its size is covered (when its first
//!   cluster is in use again, only that one cluster).
//! - times are local time with no zone on disk; they are reported as if UTC (as TSK does
//!   with TZ unset) and [`FsInfo::notes`] says so.
//!
//! Every walk is bounded: cluster chains stop at a cluster seen before (a cycle) or after as
//! many clusters as the volume has, directories at [`MAX_DIR_ENTRIES`] slots.

pub(crate) mod boot;
pub(crate) mod dirent;
pub(crate) mod runs;
#[cfg(test)]
mod tests;

use crate::{DirEntry, FileKind, FileSystem, FsError, FsInfo, Inode, Metadata, ReadAt};
use boot::{FatType, Layout};
use dirent::{LongName, Raw};
use runs::{file_runs, named_inodes, ClusterMap, Geometry, Run, Runs};

/// The root directory's inode, as TSK numbers it.
pub const ROOT_INODE: Inode = 2;
/// Slots read from one directory at most (FAT allows 65 536 entries; twice that is hostile).
pub const MAX_DIR_ENTRIES: u64 = 131_072;
/// The FAT is loaded whole; a larger one (a claim no real volume makes) is refused.
const MAX_FAT_BYTES: u64 = 1 << 30;
/// Free clusters are read this many bytes at a time when looking for orphans.
const ORPHAN_READ_BYTES: u64 = 4 << 20;
/// At most this many orphan entries are reported.
pub const MAX_ORPHANS: usize = 1_000_000;

/// A FAT12/16/32 file system opened read-only.
pub struct Fat<'a> {
    vol: &'a dyn ReadAt,
    volume: String,
    layout: Layout,
    /// The first FAT, decoded: entry `c` is the next cluster of `c` (masked).
    fat: Vec<u32>,
    label: Option<String>,
    notes: Vec<String>,
}

impl std::fmt::Debug for Fat<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fat")
            .field("volume", &self.volume)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// Whether `vol` starts with a FAT boot sector (signature and a sane BPB).
pub fn probe(vol: &dyn ReadAt) -> bool {
    let mut b = [0u8; 512];
    vol.read_exact_at(&mut b, 0).is_ok() && boot::looks_like_fat(&b)
}

/// Where a directory-entry inode lives.
#[derive(Debug, Clone, Copy)]
struct Slot {
    sector: u64,
    /// Byte offset in the volume.
    offset: u64,
}

impl<'a> Fat<'a> {
    /// Opens the FAT file system on `vol`, named `volume` in errors.
    ///
    /// # Errors
    /// Not FAT, or its boot sector or FAT cannot be read or is inconsistent with the volume.
    pub fn open(vol: &'a dyn ReadAt, volume: &str) -> Result<Self, FsError> {
        let layout = boot::read(vol, volume)?;
        let bps = layout.bytes_per_sector;
        let mut notes = vec![
            "FAT times are local time with no time zone on disk; they are shown as if UTC \
             (as TSK does with TZ unset): add the acquisition machine's offset"
                .to_string(),
        ];
        let claimed = layout.total_sectors.saturating_mul(bps);
        if claimed > vol.size() {
            notes.push(format!(
                "the file system claims {claimed} bytes but the volume has {}: clusters past \
                 the end cannot be read",
                vol.size()
            ));
        }
        let fat_bytes = match layout.fat_type {
            FatType::Fat12 => (layout.cluster_count + 2) * 3 / 2 + 1,
            FatType::Fat16 => (layout.cluster_count + 2) * 2,
            FatType::Fat32 => (layout.cluster_count + 2) * 4,
        }
        .min(layout.sectors_per_fat * bps);
        let fat_at = layout.first_fat_sector * bps;
        if fat_bytes > MAX_FAT_BYTES {
            return Err(FsError::invalid(
                volume,
                22,
                "FAT BPB.sectors_per_fat",
                format!("a FAT of {fat_bytes} bytes (more than {MAX_FAT_BYTES})"),
            ));
        }
        // A volume cut short (a partial image) keeps what it has of the FAT: the entries
        // past its end read as free, and the notes say so.
        let available = vol.size().saturating_sub(fat_at).min(fat_bytes);
        if available == 0 {
            return Err(FsError::invalid(
                volume,
                fat_at,
                "FAT table",
                format!(
                    "starts at byte {fat_at}, past the volume's end ({} bytes)",
                    vol.size()
                ),
            ));
        }
        if available < fat_bytes {
            notes.push(format!(
                "the volume ends inside the first FAT: {available} of its {fat_bytes} bytes \
                 are there; clusters past that read as free"
            ));
        }
        let len = usize::try_from(available)
            .map_err(|_| FsError::invalid(volume, fat_at, "FAT table", "too large"))?;
        let mut raw = vec![0u8; len];
        crate::read_exact(vol, volume, &mut raw, fat_at)?;
        let fat = decode_fat(&raw, layout.fat_type, layout.cluster_count + 2);
        // The other copies should agree; say so when they do not (compare what we loaded).
        for copy in 1..layout.num_fats {
            let at = (layout.first_fat_sector + copy * layout.sectors_per_fat) * bps;
            let mut other = vec![0u8; len];
            match crate::read_exact(vol, volume, &mut other, at) {
                Ok(()) if other != raw => notes.push(format!(
                    "FAT copy {} (byte {at}) differs from the first; the first is used",
                    copy + 1
                )),
                Ok(()) => {}
                Err(e) => notes.push(format!("FAT copy {} cannot be read: {e}", copy + 1)),
            }
        }
        let mut fs = Self {
            vol,
            volume: volume.to_string(),
            layout,
            fat,
            label: None,
            notes,
        };
        fs.label = fs.root_label().or_else(|| fs.layout.label.clone());
        Ok(fs)
    }

    /// FAT12, FAT16 or FAT32.
    fn bad(&self, offset: u64, field: &'static str, why: impl Into<String>) -> FsError {
        FsError::invalid(&self.volume, offset, field, why)
    }

    /// Whether `sector` is allocated, as TSK decides (`fatfs_is_sectalloc`).
    fn sector_allocated(&self, sector: u64) -> bool {
        let l = &self.layout;
        if sector < l.first_cluster_sector {
            return true;
        }
        let cluster_end = l.first_cluster_sector + l.cluster_count * l.sectors_per_cluster;
        if sector >= cluster_end {
            return false;
        }
        self.cluster_allocated((sector - l.first_cluster_sector) / l.sectors_per_cluster + 2)
    }

    /// The slot of inode `inode` (3 and up).
    fn slot(&self, inode: Inode) -> Result<Slot, FsError> {
        let l = &self.layout;
        let eps = l.entries_per_sector();
        let index = inode.checked_sub(3).ok_or_else(|| self.not_found(inode))?;
        let sector = l.first_data_sector + index / eps;
        if sector >= l.total_sectors {
            return Err(self.not_found(inode));
        }
        Ok(Slot {
            sector,
            offset: sector * l.bytes_per_sector + (index % eps) * 32,
        })
    }

    fn not_found(&self, inode: Inode) -> FsError {
        FsError::NotFound {
            volume: self.volume.clone(),
            what: format!("FAT inode {inode}"),
        }
    }

    fn read_entry(&self, offset: u64) -> Result<Raw, FsError> {
        let mut b = [0u8; 32];
        crate::read_exact(self.vol, &self.volume, &mut b, offset)?;
        Ok(Raw(b))
    }

    /// The short entry of inode `inode` and whether its sector is allocated.
    fn entry(&self, inode: Inode) -> Result<(Raw, Slot, bool), FsError> {
        let slot = self.slot(inode)?;
        let e = self.read_entry(slot.offset)?;
        if e.is_lfn() {
            return Err(self.bad(
                slot.offset,
                "FAT directory entry.attributes",
                format!("inode {inode} is a long-name entry, not a file"),
            ));
        }
        if e.0.iter().all(|&b| b == 0) {
            return Err(self.not_found(inode));
        }
        Ok((e, slot, self.sector_allocated(slot.sector)))
    }

    /// The bytes of directory `dir` as (sector, data) pieces, at most [`MAX_DIR_ENTRIES`]
    /// slots, and whether the directory is itself deleted.
    fn dir_sectors(&self, dir: Inode) -> Result<(Vec<u64>, bool), FsError> {
        let l = &self.layout;
        let spc = l.sectors_per_cluster;
        let cap_sectors = MAX_DIR_ENTRIES / l.entries_per_sector();
        let clusters_to_sectors = |clusters: Vec<u64>| -> Vec<u64> {
            clusters
                .into_iter()
                .filter_map(|c| l.cluster_sector(c))
                .flat_map(|s| s..s + spc)
                .take(usize::try_from(cap_sectors).unwrap_or(usize::MAX))
                .collect()
        };
        if dir == ROOT_INODE {
            if l.fat_type == FatType::Fat32 {
                let (clusters, _) = self.chain(u64::from(l.root_cluster), None);
                return Ok((clusters_to_sectors(clusters), false));
            }
            let end = l
                .first_cluster_sector
                .min(l.first_data_sector + cap_sectors);
            return Ok(((l.first_data_sector..end).collect(), false));
        }
        let (e, slot, sect_alloc) = self.entry(dir)?;
        if !e.is_dir() {
            return Err(self.bad(
                slot.offset,
                "FAT directory entry.attributes",
                format!(
                    "inode {dir} is not a directory (attributes 0x{:02x})",
                    e.attr()
                ),
            ));
        }
        let first = u64::from(e.first_cluster(l.fat_type == FatType::Fat32));
        let allocated = sect_alloc && !e.is_deleted();
        let clusters = if allocated {
            self.chain(first, None).0
        } else if first >= 2 && first <= l.last_cluster() && !self.cluster_allocated(first) {
            // TSK reads one cluster of a deleted directory.
            vec![first]
        } else {
            Vec::new()
        };
        Ok((clusters_to_sectors(clusters), !allocated))
    }

    /// The label in the root directory's volume-label entry, if any.
    fn root_label(&self) -> Option<String> {
        let (sectors, _) = self.dir_sectors(ROOT_INODE).ok()?;
        let bps = self.layout.bytes_per_sector;
        for s in sectors.into_iter().take(64) {
            let mut buf = vec![0u8; usize::try_from(bps).ok()?];
            crate::read_exact(self.vol, &self.volume, &mut buf, s * bps).ok()?;
            for chunk in buf.chunks_exact(32) {
                let e = Raw(<[u8; 32]>::try_from(chunk).ok()?);
                if e.0[0] == 0 {
                    return None;
                }
                if e.is_label() && !e.is_deleted() {
                    let l = e.label();
                    return (!l.is_empty()).then_some(l);
                }
            }
        }
        None
    }

    /// The 8.3 name in inode `inode`'s entry, as TSK shows it (`_` for a deleted first
    /// byte): what TSK names an orphan by.
    pub fn short_name(&self, inode: Inode) -> Result<Vec<u8>, FsError> {
        Ok(self.entry(inode)?.0.short_name())
    }

    /// The size TSK gives a directory: its chain's bytes (allocated), a cluster (deleted,
    /// first cluster free) or 0.
    fn dir_size(&self, e: &Raw, allocated: bool) -> u64 {
        let l = &self.layout;
        let first = u64::from(e.first_cluster(l.fat_type == FatType::Fat32));
        if allocated {
            let (c, _) = self.chain(first, None);
            (c.len() as u64).saturating_mul(l.cluster_bytes())
        } else if self.cluster_allocated(first) {
            0
        } else {
            l.cluster_bytes()
        }
    }
}

impl ClusterMap for Fat<'_> {
    type Layout = Layout;
    fn layout(&self) -> &Layout {
        &self.layout
    }
    fn fat(&self) -> &[u32] {
        &self.fat
    }
    /// FAT12/16/32: 0x?FF8 and up, masked to the entry width.
    fn is_eof(&self, v: u32) -> bool {
        v >= (0x0fff_fff8 & self.layout.fat_type.mask())
    }
    /// TSK: a cluster is in use when its FAT entry is not 0.
    fn cluster_allocated(&self, c: u64) -> bool {
        self.next(c) != 0
    }
}

/// Decodes the first `entries` entries of a FAT.
fn decode_fat(raw: &[u8], t: FatType, entries: u64) -> Vec<u32> {
    let n = usize::try_from(entries).unwrap_or(0);
    match t {
        FatType::Fat12 => (0..n)
            .map(|i| {
                let at = i + i / 2;
                let v = match (raw.get(at), raw.get(at + 1)) {
                    (Some(&a), Some(&b)) => u16::from_le_bytes([a, b]),
                    _ => 0,
                };
                u32::from(if i % 2 == 0 { v & 0x0fff } else { v >> 4 })
            })
            .collect(),
        FatType::Fat16 => raw
            .chunks_exact(2)
            .take(n)
            .map(|c| match *c {
                [a, b] => u32::from(u16::from_le_bytes([a, b])),
                _ => 0,
            })
            .collect(),
        FatType::Fat32 => raw
            .chunks_exact(4)
            .take(n)
            .map(|c| match *c {
                [a, b, x, y] => u32::from_le_bytes([a, b, x, y]) & 0x0fff_ffff,
                _ => 0,
            })
            .collect(),
    }
}

impl FileSystem for Fat<'_> {
    fn info(&self) -> FsInfo {
        let l = &self.layout;
        let mut notes = self.notes.clone();
        notes.push(format!(
            "{} clusters of {} bytes; {} FATs of {} sectors; OEM name {:?}",
            l.cluster_count,
            l.cluster_bytes(),
            l.num_fats,
            l.sectors_per_fat,
            l.oem
        ));
        if let (Some(b), Some(r)) = (&l.label, &self.label) {
            if b != r {
                notes.push(format!(
                    "boot sector label {b:?}, root directory label {r:?}"
                ));
            }
        }
        notes.push(
            "modes as TSK shows them: every entry --x--x--x, plus r-- unless read-only, \
             plus -w- unless hidden (TSK ties the write bits to the hidden attribute)"
                .into(),
        );
        notes.push(
            "not listed (TSK lists them): the volume label entry and TSK's virtual files \
             $MBR, $FAT1, $FAT2, $OrphanFiles"
                .into(),
        );
        FsInfo {
            kind: l.fat_type.name().into(),
            label: self.label.clone(),
            id: l
                .serial
                .map(|s| format!("{:04X}-{:04X}", s >> 16, s & 0xffff)),
            block_size: u32::try_from(l.cluster_bytes()).unwrap_or(u32::MAX),
            size_bytes: l.total_sectors.saturating_mul(l.bytes_per_sector),
            notes,
        }
    }

    fn root(&self) -> Inode {
        ROOT_INODE
    }

    fn read_dir(&self, dir: Inode) -> Result<Vec<DirEntry>, FsError> {
        let l = &self.layout;
        let (sectors, dir_deleted) = self.dir_sectors(dir)?;
        let bps = l.bytes_per_sector;
        let eps = l.entries_per_sector();
        let fat32 = l.fat_type == FatType::Fat32;
        let data_bytes = l.cluster_count.saturating_mul(l.cluster_bytes());
        let mut out = Vec::new();
        let mut lfn = LongName::default();
        let mut seen = 0u32;
        let mut invalid = 0u32;
        let mut corrupt = false;
        let mut buf = vec![0u8; usize::try_from(bps).unwrap_or(512)];
        for sector in sectors {
            let Some(at) = sector.checked_mul(bps) else {
                break;
            };
            if crate::read_exact(self.vol, &self.volume, &mut buf, at).is_err() {
                // TSK skips what it cannot read; the entries there are lost, not the rest.
                lfn.reset();
                continue;
            }
            let sect_alloc = !dir_deleted && self.sector_allocated(sector);
            let ibase = 3 + (sector - l.first_data_sector) * eps;
            for (idx, chunk) in (0u64..).zip(buf.chunks_exact(32)) {
                let Ok(raw) = <[u8; 32]>::try_from(chunk) else {
                    continue;
                };
                let e = Raw(raw);
                seen += 1;
                if !e.is_entry(!corrupt && sect_alloc, l.last_cluster(), data_bytes, fat32) {
                    invalid += 1;
                    if seen == 4 && invalid == 4 {
                        corrupt = true;
                    }
                    lfn.reset();
                    continue;
                }
                if e.is_lfn() {
                    lfn.push(&e);
                    continue;
                }
                if e.is_label() {
                    lfn.reset();
                    continue;
                }
                let long = lfn.take_for(&e);
                if e.is_dot() && idx < 2 {
                    continue;
                }
                out.push(DirEntry {
                    name: long.unwrap_or_else(|| e.short_name()),
                    inode: ibase + idx,
                    kind: if e.is_dir() {
                        FileKind::Directory
                    } else {
                        FileKind::Regular
                    },
                    deleted: !sect_alloc || e.is_deleted(),
                });
            }
        }
        Ok(out)
    }

    fn metadata(&self, inode: Inode) -> Result<Metadata, FsError> {
        let l = &self.layout;
        if inode == ROOT_INODE {
            let size = if l.fat_type == FatType::Fat32 {
                let (c, _) = self.chain(u64::from(l.root_cluster), None);
                (c.len() as u64).saturating_mul(l.cluster_bytes())
            } else {
                (l.first_cluster_sector - l.first_data_sector) * l.bytes_per_sector
            };
            return Ok(Metadata {
                mode: 0o777,
                size,
                notes: vec!["the root directory has no entry and no times".into()],
                ..Metadata::new(inode, FileKind::Directory)
            });
        }
        let (e, slot, sect_alloc) = self.entry(inode)?;
        let allocated = sect_alloc && !e.is_deleted();
        let kind = if e.is_dir() {
            FileKind::Directory
        } else {
            FileKind::Regular
        };
        let size = if e.is_dir() {
            self.dir_size(&e, allocated)
        } else {
            u64::from(e.size())
        };
        let mut notes = vec![
            dirent::attr_names(e.attr()),
            format!("directory entry at byte {}", slot.offset),
            format!("short name {}", crate::walk::escape_name(&e.short_name())),
            format!(
                "first cluster {}",
                e.first_cluster(l.fat_type == FatType::Fat32)
            ),
        ];
        if e.is_deleted() {
            notes.push("deleted entry: the first character of the short name is lost".into());
            let first = u64::from(e.first_cluster(l.fat_type == FatType::Fat32));
            if kind == FileKind::Regular
                && size > l.cluster_bytes()
                && self.cluster_allocated(first)
            {
                notes.push(format!(
                    "first cluster {first} is in use again: only it is recovered (as TSK \
                     does): the content read is one cluster long"
                ));
            }
        } else if !sect_alloc {
            notes.push(
                "the entry is in a cluster the FAT marks free (its directory was deleted)".into(),
            );
        }
        Ok(Metadata {
            mode: dirent::tsk_mode(e.attr()),
            size,
            links: u32::from(!e.is_deleted()),
            allocated,
            times: e.times(),
            notes,
            ..Metadata::new(inode, kind)
        })
    }

    fn open(&self, inode: Inode, stream: Option<&str>) -> Result<Box<dyn ReadAt + '_>, FsError> {
        if let Some(s) = stream {
            return Err(FsError::NotFound {
                volume: self.volume.clone(),
                what: format!("stream {s:?} of FAT inode {inode} (FAT has no named streams)"),
            });
        }
        let l = &self.layout;
        let bps = l.bytes_per_sector;
        if inode == ROOT_INODE && l.fat_type != FatType::Fat32 {
            let size = (l.first_cluster_sector - l.first_data_sector) * bps;
            return Ok(Box::new(Runs {
                vol: self.vol,
                volume: self.volume.clone(),
                size,
                runs: vec![Run {
                    logical: 0,
                    physical: l.first_data_sector * bps,
                    len: size,
                }],
                short_reason: None,
            }));
        }
        let (first, size, allocated) = if inode == ROOT_INODE {
            let (c, _) = self.chain(u64::from(l.root_cluster), None);
            (
                u64::from(l.root_cluster),
                (c.len() as u64) * l.cluster_bytes(),
                true,
            )
        } else {
            let (e, _, sect_alloc) = self.entry(inode)?;
            let allocated = sect_alloc && !e.is_deleted();
            let size = if e.is_dir() {
                self.dir_size(&e, allocated)
            } else {
                u64::from(e.size())
            };
            (
                u64::from(e.first_cluster(l.fat_type == FatType::Fat32)),
                size,
                allocated,
            )
        };
        let (clusters, short_reason) = if size == 0 {
            (Vec::new(), None)
        } else if allocated {
            self.chain(first, Some(size))
        } else {
            let c = self.recover(first, size);
            let why = (c.is_empty())
                .then(|| format!("deleted file's first cluster {first} is out of range"));
            (c, why)
        };
        // A deleted file is as long as what is recovered of it (one cluster when its first
        // is in use again), as icat gives it; metadata's notes say so.
        Ok(Box::new(file_runs(
            self,
            self.vol,
            &self.volume,
            &clusters,
            size,
            allocated,
            short_reason,
        )))
    }

    /// TSK's orphan search: directory entries in clusters the FAT marks free that no
    /// directory (allocated or deleted) names. Reads every free cluster, as `fls -r` does.
    fn orphan_name(&self, inode: Inode) -> Option<Vec<u8>> {
        self.short_name(inode).ok()
    }

    fn orphans(&self) -> Result<Vec<Inode>, FsError> {
        let named = named_inodes(self);
        let l = &self.layout;
        let bps = l.bytes_per_sector;
        let eps = l.entries_per_sector();
        let fat32 = l.fat_type == FatType::Fat32;
        let data_bytes = l.cluster_count.saturating_mul(l.cluster_bytes());
        let batch_clusters = (ORPHAN_READ_BYTES / l.cluster_bytes()).max(1);
        let mut out = Vec::new();
        let mut c = 2u64;
        let mut buf = Vec::new();
        while c <= l.last_cluster() {
            if self.cluster_allocated(c) {
                c += 1;
                continue;
            }
            // A run of free clusters, read at once.
            let mut n = 1u64;
            while n < batch_clusters && c + n <= l.last_cluster() && !self.cluster_allocated(c + n)
            {
                n += 1;
            }
            let Some(first_sector) = l.cluster_sector(c) else {
                break;
            };
            let sectors = n * l.sectors_per_cluster;
            let sectors = sectors.min(l.total_sectors.saturating_sub(first_sector));
            buf.resize(usize::try_from(sectors * bps).unwrap_or(0), 0);
            if crate::read_exact(self.vol, &self.volume, &mut buf, first_sector * bps).is_ok() {
                for (s, sector) in
                    (first_sector..).zip(buf.chunks_exact(usize::try_from(bps).unwrap_or(512)))
                {
                    let valid = |e: &Raw| e.is_entry(false, l.last_cluster(), data_bytes, fat32);
                    // Most free space is not a directory: look at the first slot before
                    // anything else (TSK's rule for sectors outside directories).
                    let first = sector.get(..32).and_then(|b| <[u8; 32]>::try_from(b).ok());
                    if !first.is_some_and(|b| valid(&Raw(b))) {
                        continue;
                    }
                    let entries = sector
                        .chunks_exact(32)
                        .filter_map(|e| <[u8; 32]>::try_from(e).ok().map(Raw));
                    let ibase = 3 + (s - l.first_data_sector) * eps;
                    for (idx, e) in (0u64..).zip(entries) {
                        let e = &e;
                        if !valid(e) || e.is_lfn() || e.is_label() || (e.is_dir() && e.0[0] == b'.')
                        {
                            continue;
                        }
                        let inode = ibase + idx;
                        if !named.contains(&inode) {
                            out.push(inode);
                            if out.len() >= MAX_ORPHANS {
                                return Ok(out);
                            }
                        }
                    }
                }
            }
            c += n;
        }
        Ok(out)
    }

    fn read_link(&self, inode: Inode) -> Result<Vec<u8>, FsError> {
        Err(FsError::Unsupported {
            volume: self.volume.clone(),
            what: format!("symbolic links (inode {inode}): FAT has none"),
        })
    }
}
