//! QEMU's qcow2 format, versions 2 and 3 (spec: qemu `docs/interop/qcow2.txt`).
//!
//! The guest disk is mapped by a two-level table: the L1 table (in the header) points to L2
//! tables, one cluster each, whose entries point to data clusters. An L2 entry is one of:
//! - a standard cluster (host offset, cluster-aligned), read as is;
//! - a zero cluster (bit 0, v3), read as zeros;
//! - a compressed cluster (bit 62): host byte offset and a count of 512-byte sectors, in
//!   fields whose widths depend on `cluster_bits`, inflated (raw deflate or zstd) per cluster;
//! - unallocated (offset 0): read from the backing file, or zeros without one.
//!
//! With extended L2 entries (incompatible bit 4) each entry has a second word: a bitmap of
//! 32 subclusters, allocated (bits 0–31) or reading as zeros (bits 32–63).
//!
//! Refused: encryption, an external data file, unknown incompatible features. Internal
//! snapshots are listed in [`ImageInfo::snapshots`] and opened with
//! [`Qcow2::open_snapshot`].

use crate::bytes::{be_u16_opt as be16, be_u32_opt as be32, be_u64_opt as be64};
use crate::{FormatError, Image, ImageInfo, ReadAt, SnapshotInfo};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// `QFI\xfb`.
const MAGIC: [u8; 4] = *b"QFI\xfb";
/// Bytes of the version 2 header.
const V2_HEADER_BYTES: u32 = 72;
/// Bytes of the version 3 header without `compression_type` and its padding.
const V3_MIN_HEADER_BYTES: u32 = 104;
/// Bytes of the header read at open (the v3 header with `compression_type`).
const HEADER_READ_BYTES: usize = 112;
/// Smallest and largest `cluster_bits` (512 B to 2 MiB), as QEMU.
const CLUSTER_BITS: std::ops::RangeInclusive<u32> = 9..=21;
/// Largest L1 table, bytes (QEMU's `QCOW_MAX_L1_SIZE`).
const MAX_L1_BYTES: u64 = 32 << 20;
/// Longest backing file name, bytes (QEMU's limit).
const MAX_BACKING_NAME_BYTES: u32 = 1023;
/// Most internal snapshots (QEMU's `QCOW_MAX_SNAPSHOTS`).
const MAX_SNAPSHOTS: u32 = 65536;
/// Largest snapshot extra data, bytes (QEMU's `QCOW_MAX_SNAPSHOT_EXTRA_DATA`).
const MAX_SNAPSHOT_EXTRA_BYTES: u32 = 1024;
/// Bytes of L2 tables kept in memory.
const L2_CACHE_BYTES: u64 = 4 << 20;
/// Bytes of decompressed clusters kept in memory.
const CLUSTER_CACHE_BYTES: u64 = 4 << 20;
/// Bits 9–55 of an L1 or standard L2 entry: the host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry bit 62: a compressed cluster.
const COMPRESSED_FLAG: u64 = 1 << 62;
/// L2 entry bit 0: the cluster reads as zeros (v3, without extended L2).
const ZERO_FLAG: u64 = 1;
/// Subclusters per cluster with extended L2 entries.
const SUBCLUSTERS: u64 = 32;

/// Incompatible feature bits.
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

/// Header extension types.
const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
const EXT_BITMAPS: u32 = 0x2385_2875;
const EXT_DATA_FILE: u32 = 0x4441_5441;

/// Whether `head` (the first bytes of a file) is this format.
pub(crate) fn probe(head: &[u8]) -> bool {
    head.get(..4) == Some(&MAGIC[..])
}

/// Opens `path` (see [`crate::open_in_chain`] for `chain`).
pub(crate) fn open_boxed(path: &Path, chain: &[PathBuf]) -> Result<Box<dyn Image>, FormatError> {
    Ok(Box::new(Qcow2::open_in_chain(path, chain, None)?))
}

/// How compressed clusters are compressed (header `compression_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    /// Raw deflate (no zlib header), as QEMU's `windowBits = -12`.
    Deflate,
    /// zstd frames.
    Zstd,
}

/// An opened qcow2 image (or one of its internal snapshots): a read-only [`ReadAt`] over
/// its virtual disk.
pub struct Qcow2 {
    path: PathBuf,
    file: File,
    file_len: u64,
    cluster_bits: u32,
    cluster_size: u64,
    /// log2 of the entries in one L2 table.
    l2_bits: u32,
    extended_l2: bool,
    compression: Compression,
    virtual_size: u64,
    l1: Vec<u64>,
    l1_table_offset: u64,
    /// Whether L1 may be shorter than the disk (a snapshot's): the rest is unallocated.
    l1_may_be_short: bool,
    backing: Option<Box<dyn Image>>,
    l2_cache: Mutex<Lru<Arc<Vec<u64>>>>,
    cluster_cache: Mutex<Lru<Arc<Vec<u8>>>>,
    info: ImageInfo,
}

impl std::fmt::Debug for Qcow2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2")
            .field("path", &self.path)
            .field("cluster_size", &self.cluster_size)
            .field("virtual_size", &self.virtual_size)
            .field("extended_l2", &self.extended_l2)
            .field("compression", &self.compression)
            .field("l1_entries", &self.l1.len())
            .field("backing", &self.backing.as_ref().map(|b| b.info().files))
            .finish_non_exhaustive()
    }
}

/// A small least-recently-used map from host offsets to shared tables or clusters.
#[derive(Debug)]
struct Lru<T> {
    map: HashMap<u64, (T, u64)>,
    tick: u64,
    capacity: usize,
}

impl<T: Clone> Lru<T> {
    fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    fn get(&mut self, key: u64) -> Option<T> {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        self.map.get_mut(&key).map(|(value, used)| {
            *used = tick;
            value.clone()
        })
    }

    fn insert(&mut self, key: u64, value: T) {
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        self.tick = self.tick.wrapping_add(1);
        self.map.insert(key, (value, self.tick));
    }
}

/// The header fields this reader uses.
#[derive(Debug)]
struct Header {
    version: u32,
    backing_file_offset: u64,
    backing_file_size: u32,
    cluster_bits: u32,
    size: u64,
    l1_size: u32,
    l1_table_offset: u64,
    nb_snapshots: u32,
    snapshots_offset: u64,
    incompatible: u64,
    compatible: u64,
    autoclear: u64,
    header_length: u32,
    compression: Compression,
}

/// One internal snapshot's table entry.
#[derive(Debug, Clone)]
struct Snapshot {
    id: String,
    name: String,
    l1_table_offset: u64,
    l1_size: u32,
    /// Offset of its entry in the file.
    entry_offset: u64,
    disk_size: Option<u64>,
    vm_state_bytes: u64,
    date_sec: u32,
}

/// Where one piece of the guest disk comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Host bytes at this offset.
    Data(u64),
    /// Zeros.
    Zero,
    /// The backing file at the same guest offset (zeros without one).
    Backing,
    /// Byte `within` of the compressed cluster at `coffset` (`csize` bytes, whose L2
    /// entry is at `entry_at`).
    Compressed {
        coffset: u64,
        csize: u64,
        within: u64,
        entry_at: u64,
    },
}

/// The L2 table last used by a read: its L1 index and its entries.
type L2Cursor = Option<(u64, Arc<Vec<u64>>)>;

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl Qcow2 {
    /// Opens the image at `path` (its current state), with its backing chain.
    ///
    /// # Errors
    /// A [`FormatError`] naming the file, byte offset and field of anything invalid or
    /// unsupported, in this image or its backing chain.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let chain: Vec<PathBuf> = std::fs::canonicalize(path).into_iter().collect();
        Self::open_in_chain(path, &chain, None)
    }

    /// Opens the internal snapshot of `path` whose id or name is `id_or_name` (the id is
    /// tried first): the virtual disk as it was when the snapshot was taken.
    ///
    /// # Errors
    /// As [`Qcow2::open`]; also if no snapshot matches or its L1 table is invalid.
    pub fn open_snapshot(path: &Path, id_or_name: &str) -> Result<Self, FormatError> {
        let chain: Vec<PathBuf> = std::fs::canonicalize(path).into_iter().collect();
        Self::open_in_chain(path, &chain, Some(id_or_name))
    }

    fn open_in_chain(
        path: &Path,
        chain: &[PathBuf],
        snapshot: Option<&str>,
    ) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(FormatError::io(path, "open it"))?;
        let file_len = file
            .metadata()
            .map_err(FormatError::io(path, "read its length"))?
            .len();
        let h = read_header(path, &file, file_len)?;
        let cluster_bits = h.cluster_bits;
        let cluster_size = 1u64 << cluster_bits;
        let extended_l2 = h.incompatible & INCOMPAT_EXTL2 != 0;
        let entry_bits = if extended_l2 { 4 } else { 3 };
        let l2_bits = cluster_bits - entry_bits;
        if extended_l2 && cluster_bits < 14 {
            return Err(FormatError::invalid(
                path,
                20,
                "qcow2 header.cluster_bits",
                format!("{cluster_bits} with extended L2 entries; expected at least 14 (16 KiB clusters)"),
            ));
        }

        let mut notes = vec![format!("cluster size {cluster_size} bytes")];
        header_notes(&h, &mut notes);
        let extensions = read_extensions(path, &file, file_len, &h)?;
        notes.extend(extensions.notes);

        // Snapshots: listed; a damaged table is reported, not fatal for the current state.
        let snapshots = match read_snapshots(path, &file, file_len, &h, cluster_size) {
            Ok(s) => s,
            Err(e) if snapshot.is_none() => {
                notes.push(format!("snapshot table unreadable: {e}"));
                Vec::new()
            }
            Err(e) => return Err(e),
        };

        let (l1_offset, l1_size, virtual_size, l1_field_at, l1_may_be_short) = match snapshot {
            None => (h.l1_table_offset, h.l1_size, h.size, 36u64, false),
            Some(key) => {
                let s = snapshots
                    .iter()
                    .find(|s| s.id == key)
                    .or_else(|| snapshots.iter().find(|s| s.name == key))
                    .ok_or_else(|| FormatError::Unsupported {
                        file: path.to_path_buf(),
                        what: format!("snapshot {key:?} (no snapshot has that id or name)"),
                    })?;
                notes.push(format!("snapshot view: id {} name {:?}", s.id, s.name));
                (
                    s.l1_table_offset,
                    s.l1_size,
                    s.disk_size.unwrap_or(h.size),
                    s.entry_offset.saturating_add(8),
                    true,
                )
            }
        };
        if !l1_may_be_short {
            check_l1_covers(path, l1_size, virtual_size, cluster_bits, l2_bits)?;
        }
        let l1 = read_l1(
            path,
            &file,
            file_len,
            l1_offset,
            l1_size,
            l1_field_at,
            cluster_size,
        )?;

        // As QEMU: no backing file without an offset, or with an empty name.
        let backing = if h.backing_file_offset == 0 || h.backing_file_size == 0 {
            None
        } else {
            let name = read_backing_name(path, &file, file_len, &h)?;
            let dir = path.parent().unwrap_or_else(|| Path::new(""));
            // As QEMU: a declared format decides how the backing file is read.
            let declared = extensions.backing_format.as_deref();
            let image = crate::open_in_chain_as(&dir.join(&name), chain, declared)?;
            let found = image.info().format;
            notes.push(match declared {
                Some(d) => format!(
                    "backing file {} (format {}, as the header declares)",
                    name.display(),
                    d
                ),
                None => format!(
                    "backing file {} (no format declared; recognised by content as {found})",
                    name.display()
                ),
            });
            Some(image)
        };

        let mut variant = format!("v{}", h.version);
        if h.compression == Compression::Zstd {
            variant.push_str(", zstd");
        }
        if extended_l2 {
            variant.push_str(", extended L2");
        }
        let info = ImageInfo {
            format: "qcow2".to_string(),
            variant: Some(variant),
            virtual_size_bytes: virtual_size,
            files: vec![path.to_path_buf()],
            backing: backing.as_ref().map(|b| Box::new(b.info())),
            snapshots: snapshots
                .iter()
                .map(|s| SnapshotInfo {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    virtual_size_bytes: s.disk_size.unwrap_or(h.size),
                    taken_utc: Some(rfc3339(s.date_sec)),
                })
                .collect(),
            stored_hashes: std::collections::BTreeMap::new(),
            notes: {
                for s in &snapshots {
                    notes.push(format!(
                        "snapshot {} {:?}: VM state {} bytes",
                        s.id, s.name, s.vm_state_bytes
                    ));
                }
                notes
            },
        };
        let l2_tables = to_usize(L2_CACHE_BYTES >> cluster_bits).clamp(2, 1024);
        let clusters = to_usize(CLUSTER_CACHE_BYTES >> cluster_bits).clamp(2, 64);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            file_len,
            cluster_bits,
            cluster_size,
            l2_bits,
            extended_l2,
            compression: h.compression,
            virtual_size,
            l1,
            l1_table_offset: l1_offset,
            l1_may_be_short,
            backing,
            l2_cache: Mutex::new(Lru::new(l2_tables)),
            cluster_cache: Mutex::new(Lru::new(clusters)),
            info,
        })
    }

    /// Fills `buf` from the host file at `offset`, all of it.
    fn pread_exact(
        &self,
        buf: &mut [u8],
        offset: u64,
        field: &'static str,
    ) -> Result<(), FormatError> {
        pread_exact(&self.path, &self.file, buf, offset, field)
    }

    /// The L2 table at `l1_index` (None: not allocated), through the cache.
    fn l2_table(&self, l1_index: u64) -> Result<Option<Arc<Vec<u64>>>, FormatError> {
        let entry_at = self
            .l1_table_offset
            .saturating_add(l1_index.saturating_mul(8));
        let Some(&entry) = self.l1.get(to_usize(l1_index)) else {
            if self.l1_may_be_short {
                return Ok(None);
            }
            return Err(FormatError::invalid(
                &self.path,
                entry_at,
                "qcow2 L1 table",
                format!("index {l1_index} past its {} entries", self.l1.len()),
            ));
        };
        let l2_offset = entry & OFFSET_MASK;
        if l2_offset == 0 {
            return Ok(None);
        }
        if let Some(t) = self
            .l2_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(l2_offset)
        {
            return Ok(Some(t));
        }
        if l2_offset & (self.cluster_size - 1) != 0 {
            return Err(FormatError::invalid(
                &self.path,
                entry_at,
                "qcow2 L1 entry.l2_offset",
                format!(
                    "{l2_offset:#x} is not aligned to the {}-byte cluster",
                    self.cluster_size
                ),
            ));
        }
        if l2_offset < self.cluster_size
            || l2_offset.saturating_add(self.cluster_size) > self.file_len
        {
            return Err(FormatError::invalid(
                &self.path,
                entry_at,
                "qcow2 L1 entry.l2_offset",
                format!(
                    "L2 table at {l2_offset:#x} is {}; expected a cluster after the header inside the {}-byte file",
                    if l2_offset < self.cluster_size { "the header" } else { "past the end" },
                    self.file_len
                ),
            ));
        }
        let mut raw = vec![0u8; to_usize(self.cluster_size)];
        self.pread_exact(&mut raw, l2_offset, "qcow2 L2 table")?;
        let table: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| c.try_into().map_or(0, u64::from_be_bytes))
            .collect();
        let table = Arc::new(table);
        self.l2_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(l2_offset, Arc::clone(&table));
        Ok(Some(table))
    }

    /// Where guest byte `guest` comes from, and how many bytes from there (at most `want`)
    /// come from the same place.
    fn source_at(
        &self,
        guest: u64,
        want: u64,
        cursor: &mut L2Cursor,
    ) -> Result<(Source, u64), FormatError> {
        let cluster_mask = self.cluster_size - 1;
        let within = guest & cluster_mask;
        let l2_span_bits = self.cluster_bits + self.l2_bits;
        let l1_index = guest >> l2_span_bits;
        let l2_index = (guest >> self.cluster_bits) & ((1u64 << self.l2_bits) - 1);
        let table = match cursor {
            Some((i, t)) if *i == l1_index => Arc::clone(t),
            _ => match self.l2_table(l1_index)? {
                Some(t) => {
                    *cursor = Some((l1_index, Arc::clone(&t)));
                    t
                }
                None => {
                    // The whole L2 span is unallocated.
                    let span_left = (1u64 << l2_span_bits) - (guest & ((1u64 << l2_span_bits) - 1));
                    return Ok((Source::Backing, span_left.min(want)));
                }
            },
        };
        let l2_offset = self
            .l1
            .get(to_usize(l1_index))
            .map_or(0, |e| e & OFFSET_MASK);
        let words = if self.extended_l2 { 2 } else { 1 };
        let entry_at = l2_offset.saturating_add(l2_index.saturating_mul(8 * words));
        let slot = to_usize(l2_index.saturating_mul(words));
        let entry = table.get(slot).copied().unwrap_or(0);
        let cluster_left = (self.cluster_size - within).min(want);

        if entry & COMPRESSED_FLAG != 0 {
            let x = 62 - (self.cluster_bits - 8);
            let coffset = entry & ((1u64 << x) - 1);
            let sectors = ((entry >> x) & ((1u64 << (self.cluster_bits - 8)) - 1)) + 1;
            let csize = (sectors * 512).saturating_sub(coffset & 511);
            if coffset < self.cluster_size || coffset >= self.file_len {
                return Err(FormatError::invalid(
                    &self.path,
                    entry_at,
                    "qcow2 L2 entry.compressed_offset",
                    format!(
                        "{coffset:#x}; expected compressed data after the header cluster inside the {}-byte file",
                        self.file_len
                    ),
                ));
            }
            return Ok((
                Source::Compressed {
                    coffset,
                    csize,
                    within,
                    entry_at,
                },
                cluster_left,
            ));
        }

        let host = entry & OFFSET_MASK;
        let (source, len) = if self.extended_l2 {
            let bitmap = table.get(slot.saturating_add(1)).copied().unwrap_or(0);
            let alloc = bitmap & 0xffff_ffff;
            let zeros = bitmap >> 32;
            if alloc & zeros != 0 {
                return Err(FormatError::invalid(
                    &self.path,
                    entry_at.saturating_add(8),
                    "qcow2 L2 entry.subcluster_bitmap",
                    format!("{bitmap:#018x}: subclusters both allocated and zero"),
                ));
            }
            if host == 0 && alloc != 0 {
                return Err(FormatError::invalid(
                    &self.path,
                    entry_at.saturating_add(8),
                    "qcow2 L2 entry.subcluster_bitmap",
                    format!("{bitmap:#018x}: subclusters allocated in an unallocated cluster"),
                ));
            }
            let sc_size = self.cluster_size / SUBCLUSTERS;
            let sc = within / sc_size;
            let sc_left = (sc_size - within % sc_size).min(want);
            if (alloc >> sc) & 1 != 0 {
                (Source::Data(host.saturating_add(within)), sc_left)
            } else if (zeros >> sc) & 1 != 0 {
                (Source::Zero, sc_left)
            } else {
                (Source::Backing, sc_left)
            }
        } else if entry & ZERO_FLAG != 0 {
            (Source::Zero, cluster_left)
        } else if host == 0 {
            (Source::Backing, cluster_left)
        } else {
            (Source::Data(host.saturating_add(within)), cluster_left)
        };
        if let Source::Data(at) = source {
            if host & cluster_mask != 0
                || host < self.cluster_size
                || at.saturating_add(len) > self.file_len
            {
                return Err(FormatError::invalid(
                    &self.path,
                    entry_at,
                    "qcow2 L2 entry.offset",
                    format!(
                        "data cluster at {host:#x}; expected a {}-byte aligned offset after the header with its bytes inside the {}-byte file",
                        self.cluster_size, self.file_len
                    ),
                ));
            }
        }
        Ok((source, len))
    }

    /// The decompressed cluster at `coffset`, through the cache (for partial reads).
    fn compressed_cluster(
        &self,
        coffset: u64,
        csize: u64,
        entry_at: u64,
    ) -> Result<Arc<Vec<u8>>, FormatError> {
        if let Some(c) = self
            .cluster_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(coffset)
        {
            return Ok(c);
        }
        let mut out = vec![0u8; to_usize(self.cluster_size)];
        self.decompress_into(coffset, csize, entry_at, &mut out)?;
        let out = Arc::new(out);
        self.cluster_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(coffset, Arc::clone(&out));
        Ok(out)
    }

    /// Decompresses the cluster at `coffset` into all of `out` (one cluster). A whole
    /// cluster asked for goes straight into the caller's buffer: sequential reads then
    /// neither copy nor cache what they will not read again.
    fn decompress_into(
        &self,
        coffset: u64,
        csize: u64,
        entry_at: u64,
        out: &mut [u8],
    ) -> Result<(), FormatError> {
        // The last compressed cluster may end before its last sector does.
        let avail = csize.min(self.file_len.saturating_sub(coffset));
        let mut input = vec![0u8; to_usize(avail)];
        self.pread_exact(&mut input, coffset, "qcow2 compressed cluster")?;
        let ok = match self.compression {
            Compression::Deflate => inflate_raw(&input, out),
            Compression::Zstd => unzstd(&input, out),
        };
        ok.map_err(|reason| {
            FormatError::invalid(
                &self.path,
                entry_at,
                "qcow2 compressed cluster",
                format!("{avail} bytes at {coffset:#x}: {reason}"),
            )
        })
    }

    /// Fills `buf` from the backing image at `guest` (zeros past its end or without one).
    fn read_backing(&self, buf: &mut [u8], guest: u64) -> Result<(), FormatError> {
        let mut done = 0usize;
        if let Some(b) = &self.backing {
            while let Some(rest) = buf.get_mut(done..) {
                if rest.is_empty() {
                    break;
                }
                let n = b
                    .read_at(rest, guest.saturating_add(done as u64))
                    .map_err(|source| FormatError::Io {
                        file: self.path.clone(),
                        what: format!("read its backing image at byte {guest}"),
                        source,
                    })?;
                if n == 0 {
                    break;
                }
                done = done.saturating_add(n);
            }
        }
        if let Some(rest) = buf.get_mut(done..) {
            rest.fill(0);
        }
        Ok(())
    }

    /// Reads one run of pieces from the same kind of source.
    fn flush(
        &self,
        buf: &mut [u8],
        run: Option<(Source, u64, usize, usize)>,
    ) -> Result<(), FormatError> {
        let Some((source, guest, start, len)) = run else {
            return Ok(());
        };
        let Some(dst) = buf.get_mut(start..start.saturating_add(len)) else {
            return Ok(());
        };
        match source {
            Source::Data(host) => self.pread_exact(dst, host, "qcow2 data cluster"),
            Source::Zero => {
                dst.fill(0);
                Ok(())
            }
            Source::Backing => self.read_backing(dst, guest),
            Source::Compressed { .. } => Ok(()),
        }
    }

    /// `read_at` with the reader's own error.
    fn read_inner(&self, buf: &mut [u8], offset: u64) -> Result<usize, FormatError> {
        if offset >= self.virtual_size || buf.is_empty() {
            return Ok(0);
        }
        let n = to_usize((self.virtual_size - offset).min(buf.len() as u64));
        let mut cursor: L2Cursor = None;
        // (source, guest offset, start in buf, length) of the run being coalesced.
        let mut run: Option<(Source, u64, usize, usize)> = None;
        let mut done = 0usize;
        while done < n {
            let guest = offset + done as u64;
            let (source, len) = self.source_at(guest, (n - done) as u64, &mut cursor)?;
            let len = to_usize(len).clamp(1, n - done);
            if let Source::Compressed {
                coffset,
                csize,
                within,
                entry_at,
            } = source
            {
                self.flush(buf, run.take())?;
                let whole = within == 0 && len as u64 == self.cluster_size;
                if let (true, Some(dst)) = (whole, buf.get_mut(done..done + len)) {
                    self.decompress_into(coffset, csize, entry_at, dst)?;
                } else {
                    let cluster = self.compressed_cluster(coffset, csize, entry_at)?;
                    let w = to_usize(within);
                    if let (Some(dst), Some(src)) = (
                        buf.get_mut(done..done + len),
                        cluster.get(w..w.saturating_add(len)),
                    ) {
                        dst.copy_from_slice(src);
                    }
                }
            } else {
                let extends = match (&mut run, source) {
                    (Some((Source::Data(h), _, _, l)), Source::Data(next)) => {
                        h.checked_add(*l as u64) == Some(next)
                    }
                    (Some((Source::Zero, ..)), Source::Zero)
                    | (Some((Source::Backing, ..)), Source::Backing) => true,
                    _ => false,
                };
                if extends {
                    if let Some((_, _, _, l)) = &mut run {
                        *l += len;
                    }
                } else {
                    self.flush(buf, run.take())?;
                    run = Some((source, guest, done, len));
                }
            }
            done += len;
        }
        self.flush(buf, run.take())?;
        Ok(n)
    }
}

impl ReadAt for Qcow2 {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        self.read_inner(buf, offset_bytes)
            .map_err(FormatError::into_io)
    }

    fn size(&self) -> u64 {
        self.virtual_size
    }
}

impl Image for Qcow2 {
    fn info(&self) -> ImageInfo {
        self.info.clone()
    }
}

fn pread_exact(
    path: &Path,
    file: &File,
    buf: &mut [u8],
    offset: u64,
    field: &'static str,
) -> Result<(), FormatError> {
    let mut done = 0usize;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        let at = offset.saturating_add(done as u64);
        match file.read_at(rest, at) {
            Ok(0) => {
                return Err(FormatError::invalid(
                    path,
                    at,
                    field,
                    format!("file ends at byte {at}, {} bytes short", rest.len()),
                ))
            }
            Ok(k) => done = done.saturating_add(k),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(FormatError::Io {
                    file: path.to_path_buf(),
                    what: format!("read {field} at byte {at}"),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Reads and checks the header.
fn read_header(path: &Path, file: &File, file_len: u64) -> Result<Header, FormatError> {
    let mut b = [0u8; HEADER_READ_BYTES];
    let have = to_usize(file_len.min(HEADER_READ_BYTES as u64));
    pread_exact(
        path,
        file,
        b.get_mut(..have).unwrap_or_default(),
        0,
        "qcow2 header",
    )?;
    let inv = |at: u64, field: &'static str, reason: String| {
        FormatError::invalid(path, at, field, reason)
    };
    if b.get(..4) != Some(&MAGIC[..]) {
        return Err(inv(
            0,
            "qcow2 header.magic",
            format!("{:02x?}; expected QFI\\xfb", b.get(..4)),
        ));
    }
    let u32_at = |at: usize| be32(&b, at).unwrap_or(0);
    let u64_at = |at: usize| be64(&b, at).unwrap_or(0);
    let version = u32_at(4);
    if version != 2 && version != 3 {
        return Err(inv(
            4,
            "qcow2 header.version",
            format!("{version}; expected 2 or 3"),
        ));
    }
    let header_length = if version == 2 {
        V2_HEADER_BYTES
    } else {
        u32_at(100)
    };
    if (have as u64) < u64::from(V2_HEADER_BYTES)
        || (version == 3 && (have as u64) < u64::from(V3_MIN_HEADER_BYTES))
    {
        return Err(inv(
            0,
            "qcow2 header",
            format!("file is {file_len} bytes, shorter than the v{version} header"),
        ));
    }
    let cluster_bits = u32_at(20);
    if !CLUSTER_BITS.contains(&cluster_bits) {
        return Err(inv(
            20,
            "qcow2 header.cluster_bits",
            format!("{cluster_bits}; expected 9..=21"),
        ));
    }
    let cluster_size = 1u64 << cluster_bits;
    if version == 3
        && (header_length < V3_MIN_HEADER_BYTES
            || !header_length.is_multiple_of(8)
            || u64::from(header_length) > cluster_size)
    {
        return Err(inv(
            100,
            "qcow2 header.header_length",
            format!("{header_length}; expected a multiple of 8 from 104 to the cluster size {cluster_size}"),
        ));
    }
    let crypt = u32_at(32);
    if crypt != 0 {
        return Err(FormatError::Unsupported {
            file: path.to_path_buf(),
            what: format!("encryption (header.crypt_method {crypt})"),
        });
    }
    let (incompatible, compatible, autoclear) = if version == 3 {
        (u64_at(72), u64_at(80), u64_at(88))
    } else {
        (0, 0, 0)
    };
    let unknown = incompatible & !INCOMPAT_KNOWN;
    if unknown != 0 {
        return Err(FormatError::Unsupported {
            file: path.to_path_buf(),
            what: format!("unknown incompatible features {unknown:#x} (header.incompatible_features at byte 72)"),
        });
    }
    if incompatible & INCOMPAT_DATA_FILE != 0 {
        return Err(FormatError::Unsupported {
            file: path.to_path_buf(),
            what: "an external data file (incompatible feature bit 2)".to_string(),
        });
    }
    let compression_byte = if header_length > V3_MIN_HEADER_BYTES {
        b.get(104).copied()
    } else {
        None
    };
    let compression = match (incompatible & INCOMPAT_COMPRESSION != 0, compression_byte) {
        (false, None | Some(0)) => Compression::Deflate,
        (true, Some(0)) => Compression::Deflate,
        (true, Some(1)) => Compression::Zstd,
        (true, None) => {
            return Err(inv(
                100,
                "qcow2 header.header_length",
                format!("{header_length}: the compression type bit is set but the header has no compression_type field"),
            ))
        }
        (false, Some(t)) => {
            return Err(inv(104, "qcow2 header.compression_type", format!("{t} without the compression type bit; expected 0")))
        }
        (true, Some(t)) => {
            return Err(inv(104, "qcow2 header.compression_type", format!("{t}; expected 0 (deflate) or 1 (zstd)")))
        }
    };
    let l1_table_offset = u64_at(40);
    Ok(Header {
        version,
        backing_file_offset: u64_at(8),
        backing_file_size: u32_at(16),
        cluster_bits,
        size: u64_at(24),
        l1_size: u32_at(36),
        l1_table_offset,
        nb_snapshots: u32_at(60),
        snapshots_offset: u64_at(64),
        incompatible,
        compatible,
        autoclear,
        header_length,
        compression,
    })
}

/// Notes on feature bits an examiner should know about.
fn header_notes(h: &Header, notes: &mut Vec<String>) {
    if h.incompatible & INCOMPAT_DIRTY != 0 {
        notes.push("dirty bit set: refcounts may be stale (QEMU did not close it cleanly); data reads are unaffected".to_string());
    }
    if h.incompatible & INCOMPAT_CORRUPT != 0 {
        notes.push("corrupt bit set: QEMU found metadata corruption in this image".to_string());
    }
    if h.compatible != 0 {
        notes.push(format!("compatible features {:#x}", h.compatible));
    }
    if h.autoclear != 0 {
        notes.push(format!("autoclear features {:#x}", h.autoclear));
    }
    notes.push(format!(
        "compression {}",
        match h.compression {
            Compression::Deflate => "deflate",
            Compression::Zstd => "zstd",
        }
    ));
}

/// What the header extensions say.
#[derive(Debug, Default)]
struct Extensions {
    backing_format: Option<String>,
    notes: Vec<String>,
}

/// Walks the header extensions (after the header, inside the first cluster).
fn read_extensions(
    path: &Path,
    file: &File,
    file_len: u64,
    h: &Header,
) -> Result<Extensions, FormatError> {
    let mut out = Extensions::default();
    let cluster_size = 1u64 << h.cluster_bits;
    let mut end = cluster_size.min(file_len);
    if h.backing_file_offset > u64::from(h.header_length) {
        end = end.min(h.backing_file_offset);
    }
    let start = u64::from(h.header_length);
    if end <= start {
        return Ok(out);
    }
    let mut area = vec![0u8; to_usize(end - start)];
    pread_exact(path, file, &mut area, start, "qcow2 header extension")?;
    let mut at = 0usize;
    // Each extension takes at least 8 bytes, so this ends.
    while let (Some(kind), Some(len)) = (be32(&area, at), be32(&area, at.saturating_add(4))) {
        let abs = start.saturating_add(at as u64);
        if kind == EXT_END {
            break;
        }
        let data_at = at.saturating_add(8);
        let Some(data) = area.get(data_at..data_at.saturating_add(to_usize(u64::from(len)))) else {
            return Err(FormatError::invalid(
                path,
                abs,
                "qcow2 header extension.length",
                format!("{len} bytes for extension {kind:#x} run past the first cluster"),
            ));
        };
        match kind {
            EXT_BACKING_FORMAT => {
                out.backing_format = Some(String::from_utf8_lossy(data).into_owned());
            }
            EXT_DATA_FILE => {
                out.notes.push(format!(
                    "external data file name {:?}",
                    String::from_utf8_lossy(data)
                ));
            }
            EXT_BITMAPS => out
                .notes
                .push("persistent dirty bitmaps present".to_string()),
            EXT_FEATURE_NAMES => {}
            other => out
                .notes
                .push(format!("unknown header extension {other:#x} ({len} bytes)")),
        }
        let padded = (u64::from(len) + 7) & !7;
        at = data_at.saturating_add(to_usize(padded));
    }
    Ok(out)
}

/// The backing file name, as written in the header.
fn read_backing_name(
    path: &Path,
    file: &File,
    file_len: u64,
    h: &Header,
) -> Result<PathBuf, FormatError> {
    let len = h.backing_file_size;
    if len > MAX_BACKING_NAME_BYTES {
        return Err(FormatError::invalid(
            path,
            16,
            "qcow2 header.backing_file_size",
            format!("{len}; expected at most {MAX_BACKING_NAME_BYTES} bytes"),
        ));
    }
    let end = h.backing_file_offset.checked_add(u64::from(len));
    let cluster_size = 1u64 << h.cluster_bits;
    if end.is_none_or(|e| e > file_len || e > cluster_size) {
        return Err(FormatError::invalid(
            path,
            8,
            "qcow2 header.backing_file_offset",
            format!(
                "{:#x} + {len} bytes; expected the name inside the first cluster of the {file_len}-byte file",
                h.backing_file_offset
            ),
        ));
    }
    let mut name = vec![0u8; to_usize(u64::from(len))];
    pread_exact(
        path,
        file,
        &mut name,
        h.backing_file_offset,
        "qcow2 backing file name",
    )?;
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&name)))
}

/// Checks that `l1_size` entries cover `size` bytes, and the cap.
fn check_l1_covers(
    path: &Path,
    l1_size: u32,
    size: u64,
    cluster_bits: u32,
    l2_bits: u32,
) -> Result<(), FormatError> {
    let span = 1u64 << (cluster_bits + l2_bits);
    let needed = size.div_ceil(span);
    if u64::from(l1_size) < needed {
        return Err(FormatError::invalid(
            path,
            36,
            "qcow2 header.l1_size",
            format!("{l1_size} entries cover fewer than the {size} bytes of header.size; expected at least {needed}"),
        ));
    }
    Ok(())
}

/// Reads an L1 table, checking its placement first.
fn read_l1(
    path: &Path,
    file: &File,
    file_len: u64,
    offset: u64,
    l1_size: u32,
    field_at: u64,
    cluster_size: u64,
) -> Result<Vec<u64>, FormatError> {
    if l1_size == 0 {
        return Ok(Vec::new());
    }
    let bytes = u64::from(l1_size) * 8;
    if bytes > MAX_L1_BYTES {
        return Err(FormatError::invalid(
            path,
            field_at,
            "qcow2 l1_size",
            format!("{l1_size} entries; expected at most {}", MAX_L1_BYTES / 8),
        ));
    }
    if offset & (cluster_size - 1) != 0
        || offset < cluster_size
        || offset.saturating_add(bytes) > file_len
    {
        return Err(FormatError::invalid(
            path,
            field_at.saturating_add(4),
            "qcow2 l1_table_offset",
            format!(
                "{offset:#x} for {bytes} bytes; expected a {cluster_size}-byte aligned offset after the header, inside the {file_len}-byte file"
            ),
        ));
    }
    let mut raw = vec![0u8; to_usize(bytes)];
    pread_exact(path, file, &mut raw, offset, "qcow2 L1 table")?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| c.try_into().map_or(0, u64::from_be_bytes))
        .collect())
}

/// Reads the snapshot table.
fn read_snapshots(
    path: &Path,
    file: &File,
    file_len: u64,
    h: &Header,
    cluster_size: u64,
) -> Result<Vec<Snapshot>, FormatError> {
    if h.nb_snapshots == 0 {
        return Ok(Vec::new());
    }
    if h.nb_snapshots > MAX_SNAPSHOTS {
        return Err(FormatError::invalid(
            path,
            60,
            "qcow2 header.nb_snapshots",
            format!("{}; expected at most {MAX_SNAPSHOTS}", h.nb_snapshots),
        ));
    }
    if h.snapshots_offset & (cluster_size - 1) != 0
        || h.snapshots_offset < cluster_size
        || h.snapshots_offset >= file_len
    {
        return Err(FormatError::invalid(
            path,
            64,
            "qcow2 header.snapshots_offset",
            format!("{:#x}; expected a cluster-aligned offset after the header inside the {file_len}-byte file", h.snapshots_offset),
        ));
    }
    let mut out = Vec::new();
    let mut at = h.snapshots_offset;
    for _ in 0..h.nb_snapshots {
        let mut fixed = [0u8; 40];
        if at.saturating_add(40) > file_len {
            return Err(FormatError::invalid(
                path,
                at,
                "qcow2 snapshot entry",
                format!("runs past the end of the {file_len}-byte file"),
            ));
        }
        pread_exact(path, file, &mut fixed, at, "qcow2 snapshot entry")?;
        let l1_table_offset = be64(&fixed, 0).unwrap_or(0);
        let l1_size = be32(&fixed, 8).unwrap_or(0);
        let id_len = be16(&fixed, 12).unwrap_or(0);
        let name_len = be16(&fixed, 14).unwrap_or(0);
        let date_sec = be32(&fixed, 16).unwrap_or(0);
        let vm_state_small = be32(&fixed, 32).unwrap_or(0);
        let extra_len = be32(&fixed, 36).unwrap_or(0);
        if extra_len > MAX_SNAPSHOT_EXTRA_BYTES {
            return Err(FormatError::invalid(
                path,
                at.saturating_add(36),
                "qcow2 snapshot entry.extra_data_size",
                format!("{extra_len}; expected at most {MAX_SNAPSHOT_EXTRA_BYTES}"),
            ));
        }
        let var_len = u64::from(extra_len) + u64::from(id_len) + u64::from(name_len);
        let var_at = at + 40;
        if var_at.saturating_add(var_len) > file_len {
            return Err(FormatError::invalid(
                path,
                at.saturating_add(12),
                "qcow2 snapshot entry.id_str_size",
                format!("extra data, id and name ({var_len} bytes) run past the end of the {file_len}-byte file"),
            ));
        }
        let mut var = vec![0u8; to_usize(var_len)];
        pread_exact(path, file, &mut var, var_at, "qcow2 snapshot entry")?;
        let extra_end = to_usize(u64::from(extra_len));
        let id_end = extra_end.saturating_add(usize::from(id_len));
        let extra = var.get(..extra_end).unwrap_or_default();
        let vm_state_large = be64(extra, 0);
        let disk_size = be64(extra, 8);
        let id =
            String::from_utf8_lossy(var.get(extra_end..id_end).unwrap_or_default()).into_owned();
        let name = String::from_utf8_lossy(var.get(id_end..).unwrap_or_default()).into_owned();
        out.push(Snapshot {
            id,
            name,
            l1_table_offset,
            l1_size,
            entry_offset: at,
            disk_size,
            vm_state_bytes: vm_state_large.unwrap_or(u64::from(vm_state_small)),
            date_sec,
        });
        at = (var_at + var_len + 7) & !7;
    }
    Ok(out)
}

/// Inflates raw deflate into all of `out`.
fn inflate_raw(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut d = flate2::Decompress::new(false);
    let status = d
        .decompress(input, out, flate2::FlushDecompress::Finish)
        .map_err(|e| format!("deflate: {e}"))?;
    let produced = d.total_out();
    if produced != out.len() as u64 {
        return Err(format!(
            "deflate gave {produced} bytes ({status:?}); expected the {}-byte cluster",
            out.len()
        ));
    }
    Ok(())
}

/// Decompresses zstd frames into all of `out` (trailing sector padding is ignored).
fn unzstd(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let mut d = Decoder::new().map_err(|e| format!("zstd: {e}"))?;
    let mut inb = InBuffer::around(input);
    let mut outb = OutBuffer::around(out);
    // Each round consumes input or produces output; the input is bounded.
    for _ in 0..input.len().saturating_add(64) {
        if outb.pos() == outb.capacity() || inb.pos() == input.len() {
            break;
        }
        let (before_in, before_out) = (inb.pos(), outb.pos());
        d.run(&mut inb, &mut outb)
            .map_err(|e| format!("zstd: {e}"))?;
        if inb.pos() == before_in && outb.pos() == before_out {
            break;
        }
    }
    if outb.pos() != outb.capacity() {
        return Err(format!(
            "zstd gave {} bytes; expected the {}-byte cluster",
            outb.pos(),
            outb.capacity()
        ));
    }
    Ok(())
}

/// Seconds since 1970 as RFC 3339 UTC.
fn rfc3339(secs: u32) -> String {
    let secs = i64::from(secs);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
#[path = "qcow2_tests.rs"]
mod tests;
