//! exFAT, read straight from the volume (Microsoft "exFAT File System Specification"),
//! numbered and shown the way The Sleuth Kit does so that bodyfiles and `icat` compare:
//!
//! - inode 2 is the root directory; every other inode is a 32-byte directory-entry slot:
//!   3 + the slot's index counted from the cluster heap's first sector. A file's inode is
//!   the slot of its file entry (0x85); the allocation bitmap and up-case table entries are
//!   listed as `$ALLOC_BITMAP` and `$UPCASE_TABLE`, as TSK does.
//! - deleted entry sets (InUse bit clear: 0x05, 0x40, 0x41) are listed with their full
//!   names; a deleted file's content is recovered as TSK does (from its first cluster, the
//!   clusters the allocation bitmap marks free, until its size is covered).
//! - the entry set checksum is verified and the name hash checked against the up-case
//!   table; a mismatch is reported in [`Metadata::notes`], the entry is still listed.
//! - times carry a UTC offset byte: it is applied where marked valid (TSK ignores it, so
//!   those times differ from TSK's by the offset); where not, local time is shown as if UTC.
//!
//! Every walk is bounded: cluster chains by a visited set, directories by
//! [`MAX_DIR_ENTRIES`] slots, entry sets by their 18-secondary maximum.

mod boot;
mod entries;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod writer;

use crate::fat::runs::{file_runs, named_inodes, ClusterMap, Geometry};
use crate::{DirEntry, FileKind, FileSystem, FsError, FsInfo, Inode, Metadata, ReadAt};
use boot::Layout;
use entries::{
    Entry, UpCase, T_ACT, T_BITMAP, T_FILE, T_GUID, T_LABEL, T_NAME, T_STREAM, T_TEXFAT, T_UPCASE,
};

/// The root directory's inode, as TSK numbers it.
pub const ROOT_INODE: Inode = 2;
/// Slots read from one directory at most (32 MiB of entries).
pub const MAX_DIR_ENTRIES: u64 = 1 << 20;
/// The FAT is loaded whole; a larger one is refused.
const MAX_FAT_BYTES: u64 = 1 << 30;
/// The up-case table is at most 128 KiB (65 536 mappings).
const MAX_UPCASE_BYTES: u64 = 128 * 1024;
/// Free clusters are read this many bytes at a time when looking for orphans.
const ORPHAN_READ_BYTES: u64 = 4 << 20;
/// At most this many orphan entries are reported.
pub const MAX_ORPHANS: usize = 1_000_000;

/// Whether `vol` starts with an exFAT boot sector.
pub fn probe(vol: &dyn ReadAt) -> bool {
    let mut b = [0u8; 512];
    vol.read_exact_at(&mut b, 0).is_ok() && boot::looks_like_exfat(&b)
}

/// A file entry set as read from a directory.
#[derive(Debug, Clone)]
struct FileSet {
    file: Entry,
    /// The stream extension, when the next slot holds one of the same InUse state.
    stream: Option<Entry>,
    /// The secondary entries found (stream first).
    secondaries: Vec<Entry>,
    /// The name gathered from the file name entries.
    name: Vec<u16>,
    offset: u64,
    sector_allocated: bool,
}

impl FileSet {
    fn allocated(&self) -> bool {
        self.sector_allocated && self.file.in_use() && self.stream.is_some_and(|s| s.in_use())
    }
}

/// An exFAT file system opened read-only.
pub struct ExFat<'a> {
    vol: &'a dyn ReadAt,
    volume: String,
    layout: Layout,
    fat: Vec<u32>,
    bitmap: Vec<u8>,
    /// The bitmap's (first cluster, bytes).
    bitmap_at: (u64, u64),
    upcase: Option<UpCase>,
    label: Option<String>,
    notes: Vec<String>,
}

impl std::fmt::Debug for ExFat<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExFat")
            .field("volume", &self.volume)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl<'a> ExFat<'a> {
    /// Opens the exFAT file system on `vol`, named `volume` in errors.
    ///
    /// # Errors
    /// Not exFAT, or its boot sector, FAT, root directory or allocation bitmap cannot be
    /// read or are inconsistent.
    pub fn open(vol: &'a dyn ReadAt, volume: &str) -> Result<Self, FsError> {
        let layout = boot::read(vol, volume)?;
        let bps = layout.bytes_per_sector;
        let mut notes = vec![
            "exFAT times carry a UTC offset: applied where marked valid (TSK ignores it, so \
             such times differ from TSK's by the offset); times without one are local time \
             shown as if UTC"
                .to_string(),
        ];
        if layout.flags & 0x02 != 0 {
            notes.push("VolumeDirty is set: the volume was not unmounted cleanly".into());
        }
        if layout.flags & 0x01 != 0 {
            notes.push(
                "ActiveFat is 1 (TexFAT); the first FAT and bitmap are used, as TSK does".into(),
            );
        }
        let claimed = layout.volume_sectors.saturating_mul(bps);
        if claimed > vol.size() {
            notes.push(format!(
                "the file system claims {claimed} bytes but the volume has {}: clusters past \
                 the end cannot be read",
                vol.size()
            ));
        }
        if let Some(n) = boot_checksum_note(vol, volume, bps) {
            notes.push(n);
        }
        let fat_at = layout.fat_sector * bps;
        let fat_bytes = ((layout.cluster_count + 2) * 4).min(layout.fat_sectors * bps);
        if fat_bytes > MAX_FAT_BYTES {
            return Err(FsError::invalid(
                volume,
                84,
                "exFAT boot sector.FatLength",
                format!("a FAT of {fat_bytes} bytes (more than {MAX_FAT_BYTES})"),
            ));
        }
        let available = vol.size().saturating_sub(fat_at).min(fat_bytes);
        if available < fat_bytes {
            notes.push(format!(
                "the volume ends inside the FAT: {available} of its {fat_bytes} bytes are \
                 there; clusters past that read as free"
            ));
        }
        let mut raw = vec![0u8; usize::try_from(available).unwrap_or(0)];
        crate::read_exact(vol, volume, &mut raw, fat_at)?;
        let fat: Vec<u32> = raw
            .chunks_exact(4)
            .map(|c| match *c {
                [a, b, x, y] => u32::from_le_bytes([a, b, x, y]),
                _ => 0,
            })
            .collect();
        let mut fs = Self {
            vol,
            volume: volume.to_string(),
            layout,
            fat,
            bitmap: Vec::new(),
            bitmap_at: (0, 0),
            upcase: None,
            label: None,
            notes,
        };
        fs.load_root_metadata()?;
        Ok(fs)
    }

    /// Finds the allocation bitmap, up-case table and label in the root directory.
    fn load_root_metadata(&mut self) -> Result<(), FsError> {
        let l = self.layout.clone();
        let bps = l.bytes_per_sector;
        let (clusters, _) = self.chain(u64::from(l.root_cluster), None);
        let mut bitmap = None;
        let mut upcase = None;
        let mut buf = vec![0u8; usize::try_from(l.cluster_bytes()).unwrap_or(0)];
        'scan: for c in clusters.iter().take(64) {
            let Some(s) = l.cluster_sector(*c) else { break };
            crate::read_exact(self.vol, &self.volume, &mut buf, s * bps)?;
            for chunk in buf.chunks_exact(32) {
                let Ok(raw) = <[u8; 32]>::try_from(chunk) else {
                    continue;
                };
                let e = Entry(raw);
                match e.raw_type() {
                    0x00 => break 'scan,
                    0x81 if bitmap.is_none() && e.0[1] & 1 == 0 => {
                        bitmap = Some((u64::from(e.le32(20)), e.le64(24)));
                    }
                    0x82 if upcase.is_none() => {
                        upcase = Some((u64::from(e.le32(20)), e.le64(24), e.le32(4)))
                    }
                    0x83 => {
                        let n = usize::from(e.0[1].min(11));
                        let units: Vec<u16> = (0..n).map(|i| e.le16(2 + 2 * i)).collect();
                        let s = String::from_utf8_lossy(&entries::utf16_name(&units)).into_owned();
                        self.label = (!s.is_empty()).then_some(s);
                    }
                    _ => {}
                }
            }
        }
        let root_at = l.cluster_sector(u64::from(l.root_cluster)).unwrap_or(0) * bps;
        let Some((first, len)) = bitmap else {
            return Err(FsError::invalid(
                &self.volume,
                root_at,
                "exFAT root directory.AllocationBitmap",
                "no allocation bitmap entry (0x81)",
            ));
        };
        let need = l.cluster_count.div_ceil(8);
        let at = l
            .cluster_sector(first)
            .filter(|_| first <= l.last_cluster())
            .map(|s| s * bps)
            .ok_or_else(|| {
                FsError::invalid(
                    &self.volume,
                    root_at,
                    "exFAT allocation bitmap entry.FirstCluster",
                    format!("{first}, expected 2 ..= {}", l.last_cluster()),
                )
            })?;
        if len < need || len > need.saturating_add(l.cluster_bytes()) {
            return Err(FsError::invalid(
                &self.volume,
                root_at,
                "exFAT allocation bitmap entry.DataLength",
                format!(
                    "{len} bytes for {} clusters, expected {need}",
                    l.cluster_count
                ),
            ));
        }
        let mut bits = vec![0u8; usize::try_from(need).unwrap_or(0)];
        crate::read_exact(self.vol, &self.volume, &mut bits, at)?;
        self.bitmap = bits;
        self.bitmap_at = (first, len);
        match upcase {
            Some((first, len, checksum)) if len > 0 && len <= MAX_UPCASE_BYTES => {
                let at = l
                    .cluster_sector(first)
                    .filter(|_| first <= l.last_cluster());
                let mut raw = vec![0u8; usize::try_from(len).unwrap_or(0)];
                match at.map(|s| crate::read_exact(self.vol, &self.volume, &mut raw, s * bps)) {
                    Some(Ok(())) => {
                        let sum = entries::table_checksum(&raw);
                        if sum != checksum {
                            self.notes.push(format!(
                                "up-case table checksum {sum:08x}, its entry says {checksum:08x}"
                            ));
                        }
                        self.upcase = Some(UpCase::parse(&raw));
                    }
                    _ => self.notes.push(format!(
                        "the up-case table at cluster {first} cannot be read"
                    )),
                }
            }
            Some((_, len, _)) => self
                .notes
                .push(format!("up-case table of {len} bytes ignored")),
            None => self
                .notes
                .push("no up-case table entry: name hashes not checked".into()),
        }
        Ok(())
    }

    fn not_found(&self, inode: Inode) -> FsError {
        FsError::NotFound {
            volume: self.volume.clone(),
            what: format!("exFAT inode {inode}"),
        }
    }

    fn sector_allocated(&self, sector: u64) -> bool {
        let l = &self.layout;
        if sector < l.heap_sector {
            return true;
        }
        let c = (sector - l.heap_sector) / l.sectors_per_cluster + 2;
        c <= l.last_cluster() && self.cluster_allocated(c)
    }

    /// `n` clusters from `first` (NoFatChain), clipped to the heap.
    fn contiguous(&self, first: u64, bytes: u64) -> (Vec<u64>, Option<String>) {
        let l = &self.layout;
        let n = bytes.div_ceil(l.cluster_bytes());
        if first < 2 || first > l.last_cluster() {
            return (
                Vec::new(),
                Some(format!("first cluster {first} is outside the heap")),
            );
        }
        let end = first.saturating_add(n).min(l.last_cluster() + 1);
        let why =
            (end - first < n).then(|| "the contiguous clusters run past the heap".to_string());
        ((first..end).collect(), why)
    }

    /// Byte offset and sector of inode `inode`'s slot.
    fn slot(&self, inode: Inode) -> Result<(u64, u64), FsError> {
        let l = &self.layout;
        let eps = l.entries_per_sector();
        let index = inode.checked_sub(3).ok_or_else(|| self.not_found(inode))?;
        let sector = l.heap_sector + index / eps;
        if sector >= l.volume_sectors {
            return Err(self.not_found(inode));
        }
        Ok((sector * l.bytes_per_sector + (index % eps) * 32, sector))
    }

    fn read_entry(&self, offset: u64) -> Result<Entry, FsError> {
        let mut b = [0u8; 32];
        crate::read_exact(self.vol, &self.volume, &mut b, offset)?;
        Ok(Entry(b))
    }

    /// The slot after `inode` in its directory, as TSK finds it: the next slot, or at the end
    /// of a cluster the first slot of the next one (by the FAT; by position when the FAT
    /// entry is free, as for contiguous directories).
    fn next_inode(&self, inode: Inode) -> Option<Inode> {
        let l = &self.layout;
        let per_cluster = l.entries_per_sector() * l.sectors_per_cluster;
        let index = inode.checked_sub(3)?;
        if (index + 1) % per_cluster != 0 {
            return Some(inode + 1);
        }
        let cluster = index / per_cluster + 2;
        let n = u64::from(self.next(cluster));
        let next = if n == 0 {
            cluster + 1
        } else if n >= 2 && n <= l.last_cluster() {
            n
        } else {
            return None;
        };
        Some(3 + (next - 2) * per_cluster)
    }

    /// The entry set whose file entry is inode `inode`.
    fn file_set(&self, inode: Inode) -> Result<FileSet, FsError> {
        let (offset, sector) = self.slot(inode)?;
        let file = self.read_entry(offset)?;
        if file.kind() != T_FILE {
            return Err(FsError::invalid(
                &self.volume,
                offset,
                "exFAT directory entry.EntryType",
                format!(
                    "inode {inode} is entry type 0x{:02x}, not a file entry",
                    file.raw_type()
                ),
            ));
        }
        let mut secondaries = Vec::new();
        let mut name = Vec::new();
        let mut stream = None;
        let mut at = inode;
        let mut name_len = 0usize;
        for i in 0..file.secondary_count().min(18) {
            let Some(next) = self.next_inode(at) else {
                break;
            };
            let Ok((o, _)) = self.slot(next) else { break };
            let Ok(e) = self.read_entry(o) else { break };
            if i == 0 {
                if e.kind() != T_STREAM || e.in_use() != file.in_use() {
                    break;
                }
                stream = Some(e);
                name_len = usize::from(e.name_length());
            } else {
                if e.kind() != T_NAME {
                    break;
                }
                let want = name_len.saturating_sub(name.len()).min(15);
                name.extend(e.name_units().take(want));
            }
            secondaries.push(e);
            at = next;
        }
        Ok(FileSet {
            file,
            stream,
            secondaries,
            name,
            offset,
            sector_allocated: self.sector_allocated(sector),
        })
    }

    /// The clusters of a file set's data and why they fall short, if they do.
    fn set_clusters(&self, set: &FileSet) -> (Vec<u64>, Option<String>, u64) {
        let Some(stream) = set.stream else {
            return (Vec::new(), None, 0);
        };
        let size = stream.data_length();
        let first = u64::from(stream.first_cluster());
        if size == 0 {
            return (Vec::new(), None, 0);
        }
        if set.allocated() {
            let (c, why) = if stream.no_fat_chain() {
                self.contiguous(first, size)
            } else {
                self.chain(first, Some(size))
            };
            (c, why, size)
        } else {
            let c = self.recover(first, size);
            let why = c
                .is_empty()
                .then(|| format!("deleted file's first cluster {first} is out of range"));
            (c, why, size)
        }
    }

    /// The sectors of directory `dir` (capped) and whether it is itself deleted.
    fn dir_sectors(&self, dir: Inode) -> Result<(Vec<u64>, bool), FsError> {
        let l = &self.layout;
        let cap = usize::try_from(MAX_DIR_ENTRIES / l.entries_per_sector()).unwrap_or(usize::MAX);
        let spc = l.sectors_per_cluster;
        let to_sectors = |clusters: Vec<u64>| -> Vec<u64> {
            clusters
                .into_iter()
                .filter_map(|c| l.cluster_sector(c))
                .flat_map(|s| s..s + spc)
                .take(cap)
                .collect()
        };
        if dir == ROOT_INODE {
            let (c, _) = self.chain(u64::from(l.root_cluster), None);
            return Ok((to_sectors(c), false));
        }
        let set = self.file_set(dir)?;
        if !set.file.is_dir() {
            return Err(FsError::invalid(
                &self.volume,
                set.offset,
                "exFAT file entry.FileAttributes",
                format!(
                    "inode {dir} is not a directory (attributes 0x{:04x})",
                    set.file.attributes()
                ),
            ));
        }
        let (clusters, _, _) = self.set_clusters(&set);
        Ok((to_sectors(clusters), !set.allocated()))
    }

    /// TSK's test of whether a slot holds an entry (`exfatfs_is_dentry`).
    fn is_entry(&self, e: &Entry, sector_allocated: bool) -> bool {
        let l = &self.layout;
        let heap_bytes = l.cluster_count.saturating_mul(l.cluster_bytes());
        let cluster_ok = |c: u32| u64::from(c) >= 2 && u64::from(c) <= l.last_cluster();
        match e.kind() {
            T_FILE => {
                (2..=18).contains(&e.secondary_count())
                    && e.0.get(8..22).is_some_and(|t| t.iter().any(|&b| b != 0))
            }
            T_STREAM => {
                let size = e.data_length();
                size == 0 || (size <= heap_bytes && cluster_ok(e.first_cluster()))
            }
            T_NAME => true,
            T_LABEL => {
                sector_allocated
                    && if e.in_use() {
                        (1..=11).contains(&e.0[1])
                    } else {
                        e.0[1] == 0 && e.0.get(2..24).is_some_and(|b| b.iter().all(|&x| x == 0))
                    }
            }
            T_BITMAP => {
                sector_allocated
                    && e.le64(24) == l.cluster_count.div_ceil(8)
                    && cluster_ok(e.le32(20))
                    && self.cluster_allocated(u64::from(e.le32(20)))
            }
            T_UPCASE => {
                let size = e.le64(24);
                sector_allocated
                    && size > 0
                    && size <= heap_bytes
                    && cluster_ok(e.le32(20))
                    && self.cluster_allocated(u64::from(e.le32(20)))
            }
            T_GUID | T_TEXFAT | T_ACT => sector_allocated,
            _ => false,
        }
    }

    /// The notes on an entry set: checksum, name hash, valid data length.
    fn set_notes(&self, set: &FileSet) -> Vec<String> {
        let mut notes = Vec::new();
        let count = usize::from(set.file.secondary_count());
        if set.secondaries.len() < count {
            notes.push(format!(
                "entry set claims {count} secondary entries, {} found",
                set.secondaries.len()
            ));
        } else {
            // A deleted set's type bytes lost their InUse bit: checksum it as written.
            let mut all = vec![set.file];
            all.extend(set.secondaries.iter().copied());
            for e in &mut all {
                e.0[0] |= 0x80;
            }
            let sum = entries::set_checksum(&all);
            if sum != set.file.set_checksum() {
                notes.push(format!(
                    "entry set checksum mismatch: stored {:04x}, computed {sum:04x}",
                    set.file.set_checksum()
                ));
            }
        }
        if let (Some(up), Some(stream)) = (&self.upcase, set.stream) {
            let h = up.name_hash(&set.name);
            if h != stream.name_hash() {
                notes.push(format!(
                    "name hash mismatch: stored {:04x}, computed {h:04x}",
                    stream.name_hash()
                ));
            }
            if stream.valid_data_length() < stream.data_length() {
                notes.push(format!(
                    "valid data length {} of {} bytes: the rest was never written",
                    stream.valid_data_length(),
                    stream.data_length()
                ));
            }
        }
        if set.stream.is_none() {
            notes.push("no stream extension entry follows: size and content unknown".into());
        }
        notes
    }

    /// Metadata of a special entry (bitmap, up-case table, GUID, …): a regular file as TSK
    /// shows it, mode `--x--x--x`, no times.
    fn special_metadata(&self, inode: Inode, e: &Entry, allocated: bool, offset: u64) -> Metadata {
        let size = match e.kind() {
            T_BITMAP | T_UPCASE => e.le64(24),
            _ => 0,
        };
        Metadata {
            mode: 0o111,
            size,
            allocated,
            notes: vec![format!(
                "exFAT entry type 0x{:02x} at byte {offset}",
                e.raw_type()
            )],
            ..Metadata::new(inode, FileKind::Regular)
        }
    }
}

impl ClusterMap for ExFat<'_> {
    type Layout = Layout;
    fn layout(&self) -> &Layout {
        &self.layout
    }
    fn fat(&self) -> &[u32] {
        &self.fat
    }
    fn is_eof(&self, v: u32) -> bool {
        v >= 0xffff_fff8
    }
    /// Whether cluster `c` is in use in the allocation bitmap.
    fn cluster_allocated(&self, c: u64) -> bool {
        let Some(i) = c.checked_sub(2) else {
            return false;
        };
        usize::try_from(i / 8)
            .ok()
            .and_then(|b| self.bitmap.get(b))
            .is_some_and(|byte| byte & (1 << (i % 8)) != 0)
    }
}

/// The boot region checksum (§3.4): sectors 0–10 against sector 11.
fn boot_checksum_note(vol: &dyn ReadAt, volume: &str, bps: u64) -> Option<String> {
    let len = usize::try_from(bps * 12).ok()?;
    let mut raw = vec![0u8; len];
    crate::read_exact(vol, volume, &mut raw, 0).ok()?;
    let split = usize::try_from(bps * 11).ok()?;
    let (region, check) = raw.split_at(split);
    let mut sum: u32 = 0;
    for (i, &b) in region.iter().enumerate() {
        if i == 106 || i == 107 || i == 112 {
            continue;
        }
        sum = sum.rotate_right(1).wrapping_add(u32::from(b));
    }
    let stored = check
        .get(..4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_le_bytes)?;
    (stored != sum).then(|| format!("boot region checksum {sum:08x}, sector 11 says {stored:08x}"))
}

fn special_name(kind: u8) -> Option<&'static [u8]> {
    Some(match kind {
        T_BITMAP => b"$ALLOC_BITMAP",
        T_UPCASE => b"$UPCASE_TABLE",
        T_GUID => b"$VOLUME_GUID",
        T_TEXFAT => b"$TEX_FAT",
        T_ACT => b"$ACCESS_CONTROL_TABLE",
        _ => return None,
    })
}

/// A name being gathered from a file entry set while a directory is parsed (TSK's
/// `EXFATFS_FS_NAME_INFO`).
#[derive(Debug, Default)]
struct Pending {
    inode: Inode,
    dir: bool,
    deleted: bool,
    last_type: u8,
    expected: u8,
    actual: u8,
    name_len: usize,
    name: Vec<u16>,
}

impl Pending {
    fn flush(&mut self, out: &mut Vec<DirEntry>) {
        if !self.name.is_empty() {
            out.push(DirEntry {
                name: entries::utf16_name(&self.name),
                inode: self.inode,
                kind: if self.dir {
                    FileKind::Directory
                } else {
                    FileKind::Regular
                },
                deleted: self.deleted,
            });
        }
        *self = Self::default();
    }
}

impl FileSystem for ExFat<'_> {
    fn info(&self) -> FsInfo {
        let l = &self.layout;
        let mut notes = self.notes.clone();
        notes.push(format!(
            "{} clusters of {} bytes; {} FAT(s); allocation bitmap of {} bytes at cluster {}; \
             revision {}.{}; {}% in use (boot sector)",
            l.cluster_count,
            l.cluster_bytes(),
            l.number_of_fats,
            self.bitmap_at.1,
            self.bitmap_at.0,
            l.revision >> 8,
            l.revision & 0xff,
            l.percent_in_use
        ));
        notes.push(
            "modes as TSK shows them: every entry --x--x--x, plus r-- unless read-only, \
             plus -w- unless hidden (TSK ties the write bits to the hidden attribute)"
                .into(),
        );
        notes.push(
            "not listed (TSK lists them): the volume label entry and TSK's virtual files \
             $MBR, $FAT1, $OrphanFiles"
                .into(),
        );
        FsInfo {
            kind: "exfat".into(),
            label: self.label.clone(),
            id: Some(format!("{:04X}-{:04X}", l.serial >> 16, l.serial & 0xffff)),
            block_size: u32::try_from(l.cluster_bytes()).unwrap_or(u32::MAX),
            size_bytes: l.volume_sectors.saturating_mul(l.bytes_per_sector),
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
        let mut out = Vec::new();
        let mut p = Pending::default();
        let mut buf = vec![0u8; usize::try_from(bps).unwrap_or(512)];
        for sector in sectors {
            let Some(at) = sector.checked_mul(bps) else {
                break;
            };
            if crate::read_exact(self.vol, &self.volume, &mut buf, at).is_err() {
                p.flush(&mut out);
                continue;
            }
            let sect_alloc = !dir_deleted && self.sector_allocated(sector);
            let ibase = 3 + (sector - l.heap_sector) * eps;
            for (idx, chunk) in (0u64..).zip(buf.chunks_exact(32)) {
                let Ok(raw) = <[u8; 32]>::try_from(chunk) else {
                    continue;
                };
                let e = Entry(raw);
                let inode = ibase + idx;
                if !self.is_entry(&e, sect_alloc) {
                    p.flush(&mut out);
                    continue;
                }
                match e.kind() {
                    T_FILE => {
                        p.flush(&mut out);
                        p.inode = inode;
                        p.dir = e.is_dir();
                        p.deleted = !(sect_alloc && e.in_use());
                        p.last_type = e.raw_type();
                        p.expected = e.secondary_count();
                    }
                    T_STREAM => {
                        if p.last_type & 0x7f != T_FILE
                            || (p.last_type & 0x80) != (e.raw_type() & 0x80)
                        {
                            p.flush(&mut out);
                            continue;
                        }
                        p.last_type = e.raw_type();
                        p.name_len = usize::from(e.name_length());
                        p.actual += 1;
                        if p.actual == p.expected {
                            p.flush(&mut out);
                        }
                    }
                    T_NAME => {
                        let last = p.last_type & 0x7f;
                        if (last != T_STREAM && last != T_NAME)
                            || (p.last_type & 0x80) != (e.raw_type() & 0x80)
                        {
                            p.flush(&mut out);
                            continue;
                        }
                        p.last_type = e.raw_type();
                        let want = p.name_len.saturating_sub(p.name.len()).min(15);
                        p.name.extend(e.name_units().take(want));
                        p.actual += 1;
                        if p.actual == p.expected {
                            p.flush(&mut out);
                        }
                    }
                    T_LABEL => p.flush(&mut out),
                    kind => {
                        p.flush(&mut out);
                        if let Some(name) = special_name(kind) {
                            out.push(DirEntry {
                                name: name.to_vec(),
                                inode,
                                kind: FileKind::Regular,
                                deleted: !sect_alloc,
                            });
                        }
                    }
                }
            }
        }
        p.flush(&mut out);
        Ok(out)
    }

    fn metadata(&self, inode: Inode) -> Result<Metadata, FsError> {
        let l = &self.layout;
        if inode == ROOT_INODE {
            let (c, _) = self.chain(u64::from(l.root_cluster), None);
            return Ok(Metadata {
                mode: 0o777,
                size: (c.len() as u64).saturating_mul(l.cluster_bytes()),
                notes: vec!["the root directory has no entry and no times".into()],
                ..Metadata::new(inode, FileKind::Directory)
            });
        }
        let (offset, sector) = self.slot(inode)?;
        let e = self.read_entry(offset)?;
        if e.kind() != T_FILE {
            if special_name(e.kind()).is_some() || e.kind() == T_LABEL {
                let allocated = self.sector_allocated(sector) && e.in_use();
                return Ok(self.special_metadata(inode, &e, allocated, offset));
            }
            if e.raw_type() == 0 {
                return Err(self.not_found(inode));
            }
            return Err(FsError::invalid(
                &self.volume,
                offset,
                "exFAT directory entry.EntryType",
                format!(
                    "inode {inode} is entry type 0x{:02x}, not a file",
                    e.raw_type()
                ),
            ));
        }
        let set = self.file_set(inode)?;
        let (times, mut notes) = set.file.times();
        notes.insert(
            0,
            format!(
                "file entry at byte {offset}; attributes 0x{:04x}",
                set.file.attributes()
            ),
        );
        notes.extend(self.set_notes(&set));
        if let Some(s) = set.stream {
            notes.push(format!(
                "first cluster {}{}",
                s.first_cluster(),
                if s.no_fat_chain() {
                    ", contiguous (NoFatChain)"
                } else {
                    ""
                }
            ));
        }
        if !set.file.in_use() {
            notes.push("deleted entry set (InUse bit clear)".into());
        } else if !set.sector_allocated {
            notes.push(
                "the entry is in a cluster the bitmap marks free (its directory was deleted)"
                    .into(),
            );
        }
        let kind = if set.file.is_dir() {
            FileKind::Directory
        } else {
            FileKind::Regular
        };
        Ok(Metadata {
            mode: entries::tsk_mode(set.file.attributes()),
            size: set.stream.map_or(0, |s| s.data_length()),
            links: u32::from(set.file.in_use()),
            allocated: set.allocated(),
            times,
            notes,
            ..Metadata::new(inode, kind)
        })
    }

    fn open(&self, inode: Inode, stream: Option<&str>) -> Result<Box<dyn ReadAt + '_>, FsError> {
        if let Some(s) = stream {
            return Err(FsError::NotFound {
                volume: self.volume.clone(),
                what: format!("stream {s:?} of exFAT inode {inode} (exFAT has no named streams)"),
            });
        }
        let l = &self.layout;
        let (clusters, short_reason, size, allocated) = if inode == ROOT_INODE {
            let (c, why) = self.chain(u64::from(l.root_cluster), None);
            let size = (c.len() as u64).saturating_mul(l.cluster_bytes());
            (c, why, size, true)
        } else {
            let (offset, sector) = self.slot(inode)?;
            let e = self.read_entry(offset)?;
            match e.kind() {
                T_FILE => {
                    let set = self.file_set(inode)?;
                    let (c, why, size) = self.set_clusters(&set);
                    (c, why, size, set.allocated())
                }
                T_BITMAP | T_UPCASE => {
                    let size = e.le64(24);
                    let (c, why) = self.contiguous(u64::from(e.le32(20)), size);
                    (c, why, size, self.sector_allocated(sector))
                }
                _ => (Vec::new(), None, 0, true),
            }
        };
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

    fn read_link(&self, inode: Inode) -> Result<Vec<u8>, FsError> {
        Err(FsError::Unsupported {
            volume: self.volume.clone(),
            what: format!("symbolic links (inode {inode}): exFAT has none"),
        })
    }

    /// TSK's orphan search: file entries in clusters the bitmap marks free that no
    /// directory names. Reads every free cluster, as `fls -r` does.
    fn orphans(&self) -> Result<Vec<Inode>, FsError> {
        let named = named_inodes(self);
        let l = &self.layout;
        let bps = l.bytes_per_sector;
        let eps = l.entries_per_sector();
        let batch = (ORPHAN_READ_BYTES / l.cluster_bytes()).max(1);
        let mut out = Vec::new();
        let mut c = 2u64;
        let mut buf = Vec::new();
        while c <= l.last_cluster() {
            if self.cluster_allocated(c) {
                c += 1;
                continue;
            }
            let mut n = 1u64;
            while n < batch && c + n <= l.last_cluster() && !self.cluster_allocated(c + n) {
                n += 1;
            }
            let Some(first_sector) = l.cluster_sector(c) else {
                break;
            };
            let sectors =
                (n * l.sectors_per_cluster).min(l.volume_sectors.saturating_sub(first_sector));
            buf.resize(usize::try_from(sectors * bps).unwrap_or(0), 0);
            if crate::read_exact(self.vol, &self.volume, &mut buf, first_sector * bps).is_ok() {
                for (s, sector) in
                    (first_sector..).zip(buf.chunks_exact(usize::try_from(bps).unwrap_or(512)))
                {
                    let first = sector.get(..32).and_then(|b| <[u8; 32]>::try_from(b).ok());
                    if !first.is_some_and(|b| self.is_entry(&Entry(b), false)) {
                        continue;
                    }
                    let entries = sector
                        .chunks_exact(32)
                        .filter_map(|e| <[u8; 32]>::try_from(e).ok().map(Entry));
                    let ibase = 3 + (s - l.heap_sector) * eps;
                    for (idx, e) in (0u64..).zip(entries) {
                        let e = &e;
                        if !self.is_entry(e, false) || e.kind() == T_STREAM || e.kind() == T_NAME {
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
}
