//! VMware VMDK images: hosted sparse extents (`KDMV`: monolithicSparse, twoGbMaxExtentSparse,
//! streamOptimized with compressed grains and a footer), flat extents (monolithicFlat,
//! twoGbMaxExtentFlat, ESXi `vmfs`), ZERO extents, ESXi `vmfsSparse` (`COWD`) deltas, and
//! snapshot chains through `parentFileNameHint`.
//!
//! Layout (VMware "Virtual Disk Format 5.0"; libyal `libvmdk` notes): a text descriptor
//! (its own file, or embedded in a sparse extent at `descriptorOffset`) lists the extents
//! in virtual order. A sparse extent maps each grain (`grainSize` sectors) through a grain
//! directory (GD, `u32` sector offsets of grain tables) and grain tables (GT, 512 `u32`
//! sector offsets of grains): 0 = unallocated (the parent's bytes, or zeros), 1 = a zeroed
//! grain (when the header says so). streamOptimized grains are zlib streams behind a
//! 12-byte marker `{lba: u64, size: u32}`; the GD may be written only in the footer (a copy
//! of the header 1024 bytes before the end, flagged by `gdOffset = GD_AT_END`).
//!
//! Refused: seSparse extents, raw device mappings (VMFSRDM/VMFSRAW), compression other than
//! deflate. Files are opened read-only.

use crate::bytes::{le_u16, le_u32, le_u64};
use crate::{FormatError, Image, ImageInfo};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vestige_evidence::read_at::ReadAt;

/// Bytes per sector: every VMDK offset and size is in 512-byte sectors.
const SECTOR_BYTES: u64 = 512;
/// `SparseExtentHeader.magicNumber` as it appears in the file.
const KDMV_MAGIC: &[u8; 4] = b"KDMV";
/// The vmfsSparse (ESX 2/3 "COWD") header magic as it appears in the file.
const COWD_MAGIC: &[u8; 4] = b"COWD";
/// `gdOffset` meaning "the grain directory is located through the footer".
const GD_AT_END: u64 = u64::MAX;
/// Grain table entries per grain table in a hosted sparse extent (the only value used).
const KDMV_GTES_PER_GT: u64 = 512;
/// Grain table entries per grain table in a COWD extent (fixed by the format).
const COWD_GTES_PER_GT: u64 = 4096;
/// Largest descriptor read (real ones are a few KiB; a twoGbMaxExtent 62 TiB disk ~2 MiB
/// would need 31 744 lines of ~40 bytes = ~1.3 MiB, so this also caps the extents below).
const MAX_DESCRIPTOR_BYTES: u64 = 2 << 20;
/// Most extents in one descriptor (each is an open file).
const MAX_EXTENTS: usize = 32_768;
/// Largest grain (sectors): 32 MiB. Real grains are 64 KiB.
const MAX_GRAIN_SECTORS: u64 = 1 << 16;
/// Largest virtual disk accepted (bytes): 1 PiB, far above VMDK's 62 TiB limit.
const MAX_VIRTUAL_BYTES: u64 = 1 << 50;
/// Largest grain directory read (bytes): 62 TiB of 4 KiB grains needs 32 MiB.
const MAX_GD_BYTES: u64 = 64 << 20;
/// Bytes of grain tables kept in memory per extent.
const GT_CACHE_BYTES: u64 = 4 << 20;
/// Decompressed grains kept per extent (sequential readers touch one or two at a time).
const GRAIN_CACHE_ENTRIES: usize = 8;
/// `CID`/`parentCID` value meaning "none".
const CID_NONE: u32 = 0xffff_ffff;

/// Header flags (`SparseExtentHeader.flags`).
const FLAG_NEWLINE_TEST: u32 = 1;
const FLAG_REDUNDANT_GT: u32 = 1 << 1;
const FLAG_ZEROED_GTE: u32 = 1 << 2;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;
const KNOWN_FLAGS: u32 =
    FLAG_NEWLINE_TEST | FLAG_REDUNDANT_GT | FLAG_ZEROED_GTE | FLAG_COMPRESSED | FLAG_MARKERS;
/// `compressAlgorithm` for deflate (zlib streams).
const COMPRESSION_DEFLATE: u16 = 1;
/// streamOptimized marker type of the footer.
const MARKER_FOOTER: u32 = 3;

/// Whether `head` (the first bytes of a file) is this format: a sparse header (`KDMV`,
/// `COWD`) or a text descriptor.
pub(crate) fn probe(head: &[u8]) -> bool {
    if head.starts_with(KDMV_MAGIC) || head.starts_with(COWD_MAGIC) {
        return true;
    }
    looks_like_descriptor(head)
}

/// A descriptor file: text (no NUL before the markers) starting with the usual comment or
/// holding a `createType=` line.
fn looks_like_descriptor(head: &[u8]) -> bool {
    let text_len = head.iter().position(|&b| b == 0).unwrap_or(head.len());
    let Some(text) = head.get(..text_len) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(text).or_else(|e| {
        // A multi-byte character cut at the end of the probe.
        std::str::from_utf8(text.get(..e.valid_up_to()).unwrap_or_default())
    }) else {
        return false;
    };
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed
        .get(..21)
        .is_some_and(|s| s.eq_ignore_ascii_case("# Disk DescriptorFile"))
    {
        return true;
    }
    (trimmed.starts_with('#') || trimmed.starts_with("version"))
        && text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("createType") && l.contains('=')
        })
}

/// Opens `path` (see [`crate::open_in_chain`] for `chain`).
pub(crate) fn open_boxed(path: &Path, chain: &[PathBuf]) -> Result<Box<dyn Image>, FormatError> {
    Ok(Box::new(Vmdk::open_in_chain(path, chain)?))
}

/// An opened VMDK image (descriptor, extents and parent), readable from many threads.
pub struct Vmdk {
    path: PathBuf,
    size_bytes: u64,
    /// In virtual order, contiguous from 0.
    extents: Vec<Extent>,
    parent: Option<Box<dyn Image>>,
    info: ImageInfo,
}

impl std::fmt::Debug for Vmdk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vmdk")
            .field("path", &self.path)
            .field("size_bytes", &self.size_bytes)
            .field("extents", &self.extents.len())
            .field("parent", &self.parent.is_some())
            .finish_non_exhaustive()
    }
}

/// One extent: `len_bytes` of the virtual disk starting at `start_bytes`.
struct Extent {
    start_bytes: u64,
    len_bytes: u64,
    kind: ExtentKind,
}

enum ExtentKind {
    /// Reads as zeros (ZERO extents, and NOACCESS ones, noted).
    Zero,
    /// Bytes at `offset_bytes` of a plain file (FLAT, VMFS).
    Flat {
        path: PathBuf,
        file: File,
        offset_bytes: u64,
    },
    /// Grains through a grain directory (SPARSE, VMFSSPARSE, streamOptimized).
    Sparse(Box<SparseExtent>),
}

/// Where one grain's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grain {
    /// Not written here: the parent's bytes, or zeros.
    Unallocated,
    /// Written as zeros (GTE 1 with the zeroed-grain flag).
    Zero,
    /// Stored plainly at this byte offset of the extent file.
    Data(u64),
    /// Stored compressed at this byte offset (a marker, or the zlib stream itself).
    Compressed(u64),
}

/// A hosted (`KDMV`) or COWD sparse extent, with bounded caches of its grain tables and of
/// its last decompressed grains.
struct SparseExtent {
    path: PathBuf,
    file: File,
    file_len: u64,
    capacity_bytes: u64,
    grain_bytes: u64,
    gtes_per_gt: u64,
    /// Sector offsets of the grain tables (0 = none); byte offset of the GD for errors.
    gd: Vec<u32>,
    gd_offset_bytes: u64,
    /// Grains may not start before this sector (the header and metadata).
    first_grain_sector: u64,
    zeroed_gte: bool,
    compressed: bool,
    markers: bool,
    gt_cache: Mutex<GtCache>,
    grain_cache: Mutex<VecDeque<(u64, Arc<Vec<u8>>)>>,
}

/// Grain tables by GD index, evicted first-in first-out.
struct GtCache {
    tables: HashMap<u64, Arc<Vec<u32>>>,
    order: VecDeque<u64>,
    capacity: usize,
}

/// The fields of a `SparseExtentHeader` this reader uses.
#[derive(Debug, Clone, Copy)]
struct KdmvHeader {
    version: u32,
    flags: u32,
    capacity_sectors: u64,
    grain_sectors: u64,
    descriptor_offset_sectors: u64,
    descriptor_sectors: u64,
    gtes_per_gt: u32,
    rgd_offset_sectors: u64,
    gd_offset_sectors: u64,
    overhead_sectors: u64,
    newline_chars: [u8; 4],
    compress_algorithm: u16,
}

fn le_u32s(raw: &[u8]) -> Vec<u32> {
    raw.chunks_exact(4).map(|c| le_u32(c, 0)).collect()
}

impl KdmvHeader {
    fn parse(b: &[u8; 512]) -> Self {
        let mut newline_chars = [0u8; 4];
        if let Some(s) = b.get(73..77) {
            newline_chars.copy_from_slice(s);
        }
        Self {
            version: le_u32(b, 4),
            flags: le_u32(b, 8),
            capacity_sectors: le_u64(b, 12),
            grain_sectors: le_u64(b, 20),
            descriptor_offset_sectors: le_u64(b, 28),
            descriptor_sectors: le_u64(b, 36),
            gtes_per_gt: le_u32(b, 44),
            rgd_offset_sectors: le_u64(b, 48),
            gd_offset_sectors: le_u64(b, 56),
            overhead_sectors: le_u64(b, 64),
            newline_chars,
            compress_algorithm: le_u16(b, 77),
        }
    }
}

fn io_err(path: &Path, what: String, source: io::Error) -> FormatError {
    FormatError::Io {
        file: path.to_path_buf(),
        what,
        source,
    }
}

/// Reads exactly `buf.len()` bytes at `offset` of `file`, which must lie inside `file_len`
/// (else an `Invalid` naming `field`).
fn read_exact_in(
    file: &File,
    path: &Path,
    file_len: u64,
    buf: &mut [u8],
    offset: u64,
    field: &'static str,
) -> Result<(), FormatError> {
    let end = offset.checked_add(buf.len() as u64);
    if end.is_none_or(|e| e > file_len) {
        return Err(FormatError::invalid(
            path,
            offset,
            field,
            format!(
                "{} bytes at byte {offset} run past the end of the file ({file_len} bytes)",
                buf.len()
            ),
        ));
    }
    file.read_exact_at(buf, offset)
        .map_err(|e| io_err(path, format!("read {field} at byte {offset}"), e))
}

fn open_file(path: &Path) -> Result<(File, u64), FormatError> {
    let file = File::open(path).map_err(|e| io_err(path, "open it".to_string(), e))?;
    let len = file
        .metadata()
        .map_err(|e| io_err(path, "read its size".to_string(), e))?
        .len();
    Ok((file, len))
}

fn sectors_to_bytes(
    sectors: u64,
    path: &Path,
    at: u64,
    field: &'static str,
) -> Result<u64, FormatError> {
    sectors.checked_mul(SECTOR_BYTES).ok_or_else(|| {
        FormatError::invalid(
            path,
            at,
            field,
            format!("{sectors} sectors overflow a byte offset"),
        )
    })
}

impl SparseExtent {
    /// Opens a sparse extent file (`KDMV` or `COWD` by its magic). Returns it and, for
    /// `KDMV`, its header (for the embedded descriptor).
    fn open(
        path: &Path,
        notes: &mut Vec<String>,
    ) -> Result<(Self, Option<KdmvHeader>), FormatError> {
        let (file, file_len) = open_file(path)?;
        let mut head = [0u8; 512];
        read_exact_in(
            &file,
            path,
            file_len,
            &mut head,
            0,
            "vmdk sparse header.magicNumber",
        )?;
        if head.starts_with(KDMV_MAGIC) {
            let (extent, header) = Self::open_kdmv(path, file, file_len, &head, notes)?;
            Ok((extent, Some(header)))
        } else if head.starts_with(COWD_MAGIC) {
            Ok((Self::open_cowd(path, file, file_len, &head)?, None))
        } else {
            Err(FormatError::invalid(
                path,
                0,
                "vmdk sparse header.magicNumber",
                format!(
                    "found {:02x?}, expected \"KDMV\" or \"COWD\"",
                    head.get(..4).unwrap_or_default()
                ),
            ))
        }
    }

    fn open_kdmv(
        path: &Path,
        file: File,
        file_len: u64,
        head: &[u8; 512],
        notes: &mut Vec<String>,
    ) -> Result<(Self, KdmvHeader), FormatError> {
        let first = KdmvHeader::parse(head);
        let mut header = first;
        let mut header_at = 0u64;
        if first.gd_offset_sectors == GD_AT_END {
            // streamOptimized: the real metadata is in the footer, a copy of the header in
            // the second-to-last 512 bytes, after a footer marker and before the EOS marker.
            let footer_at = file_len.checked_sub(1024).ok_or_else(|| {
                FormatError::invalid(
                    path,
                    0,
                    "vmdk sparse header.gdOffset",
                    format!("GD_AT_END but the file ({file_len} bytes) is too short for a footer"),
                )
            })?;
            let mut footer = [0u8; 512];
            read_exact_in(&file, path, file_len, &mut footer, footer_at, "vmdk footer")?;
            if !footer.starts_with(KDMV_MAGIC) {
                return Err(FormatError::invalid(
                    path,
                    footer_at,
                    "vmdk footer.magicNumber",
                    format!(
                        "gdOffset is GD_AT_END but the footer starts {:02x?}, expected \"KDMV\"",
                        footer.get(..4).unwrap_or_default()
                    ),
                ));
            }
            if let Some(marker_at) = footer_at.checked_sub(512) {
                let mut marker = [0u8; 512];
                read_exact_in(
                    &file,
                    path,
                    file_len,
                    &mut marker,
                    marker_at,
                    "vmdk footer marker",
                )?;
                let kind = le_u32(&marker, 12);
                if le_u32(&marker, 8) != 0 || kind != MARKER_FOOTER {
                    notes.push(format!(
                        "{}: the marker before the footer at byte {marker_at} has type {kind}, \
                         expected {MARKER_FOOTER} (footer)",
                        path.display()
                    ));
                }
            }
            header = KdmvHeader::parse(&footer);
            header_at = footer_at;
            if header.gd_offset_sectors == GD_AT_END {
                return Err(FormatError::invalid(
                    path,
                    footer_at + 56,
                    "vmdk footer.gdOffset",
                    "the footer's gdOffset is GD_AT_END too, expected the grain directory's sector",
                ));
            }
        }
        let at = |field_offset: u64| header_at + field_offset;
        if !(1..=3).contains(&header.version) {
            return Err(FormatError::Unsupported {
                file: path.to_path_buf(),
                what: format!(
                    "sparse extent header version {} (at byte {}; known: 1, 2, 3)",
                    header.version,
                    at(4)
                ),
            });
        }
        let unknown = header.flags & !KNOWN_FLAGS;
        if unknown != 0 {
            notes.push(format!(
                "{}: unknown header flags {unknown:#x}",
                path.display()
            ));
        }
        if header.flags & FLAG_NEWLINE_TEST != 0 && header.newline_chars != *b"\n \r\n" {
            notes.push(format!(
                "{}: newline-test bytes are {:02x?}, expected 0a 20 0d 0a (file altered by a \
                 text-mode transfer?)",
                path.display(),
                header.newline_chars
            ));
        }
        if u64::from(header.gtes_per_gt) != KDMV_GTES_PER_GT {
            return Err(FormatError::invalid(
                path,
                at(44),
                "vmdk sparse header.numGTEsPerGT",
                format!("found {}, expected 512", header.gtes_per_gt),
            ));
        }
        let compressed = header.flags & FLAG_COMPRESSED != 0;
        if compressed && header.compress_algorithm != COMPRESSION_DEFLATE {
            return Err(FormatError::Unsupported {
                file: path.to_path_buf(),
                what: format!(
                    "compressAlgorithm {} (at byte {}; only 1 = deflate is known)",
                    header.compress_algorithm,
                    at(77)
                ),
            });
        }
        let geometry = Geometry::check(
            path,
            header.capacity_sectors,
            header.grain_sectors,
            KDMV_GTES_PER_GT,
            at(12),
            at(20),
        )?;
        let mut first_grain_sector = header.overhead_sectors.max(1);
        if first_grain_sector > file_len / SECTOR_BYTES + 1 {
            notes.push(format!(
                "{}: overHead {} sectors lies past the end of the file; grains are only \
                 checked to avoid the header",
                path.display(),
                header.overhead_sectors
            ));
            first_grain_sector = 1;
        }
        let redundant = header.flags & FLAG_REDUNDANT_GT != 0 && header.rgd_offset_sectors != 0;
        let gd = match load_gd(
            &file,
            path,
            file_len,
            header.gd_offset_sectors,
            geometry.gd_entries,
            KDMV_GTES_PER_GT,
            at(56),
        ) {
            Ok(gd) => gd,
            Err(primary) if redundant => {
                let Ok(gd) = load_gd(
                    &file,
                    path,
                    file_len,
                    header.rgd_offset_sectors,
                    geometry.gd_entries,
                    KDMV_GTES_PER_GT,
                    at(48),
                ) else {
                    return Err(primary);
                };
                notes.push(format!(
                    "{}: the grain directory is damaged ({primary}); read through the \
                     redundant grain directory instead",
                    path.display()
                ));
                gd
            }
            Err(e) => return Err(e),
        };
        let extent = Self {
            path: path.to_path_buf(),
            file,
            file_len,
            capacity_bytes: geometry.capacity_bytes,
            grain_bytes: geometry.grain_bytes,
            gtes_per_gt: KDMV_GTES_PER_GT,
            gd: gd.0,
            gd_offset_bytes: gd.1,
            first_grain_sector,
            zeroed_gte: header.flags & FLAG_ZEROED_GTE != 0,
            compressed,
            markers: header.flags & FLAG_MARKERS != 0,
            gt_cache: Mutex::new(GtCache::new(KDMV_GTES_PER_GT)),
            grain_cache: Mutex::new(VecDeque::new()),
        };
        // The descriptor lives in the first header, not in the footer.
        let mut described = header;
        described.descriptor_offset_sectors = first.descriptor_offset_sectors;
        described.descriptor_sectors = first.descriptor_sectors;
        Ok((extent, described))
    }

    /// An ESX vmfsSparse (`COWD`) extent: `u32` fields after the magic: version, flags,
    /// numSectors, grainSize, gdOffset, numGDEntries, freeSector; 4096 GTEs per GT.
    fn open_cowd(
        path: &Path,
        file: File,
        file_len: u64,
        head: &[u8; 512],
    ) -> Result<Self, FormatError> {
        let version = le_u32(head, 4);
        if version != 1 {
            return Err(FormatError::Unsupported {
                file: path.to_path_buf(),
                what: format!("COWD version {version} (at byte 4; known: 1)"),
            });
        }
        let geometry = Geometry::check(
            path,
            u64::from(le_u32(head, 12)),
            u64::from(le_u32(head, 16)),
            COWD_GTES_PER_GT,
            12,
            16,
        )?;
        let gd_entries_in_header = u64::from(le_u32(head, 24));
        if gd_entries_in_header < geometry.gd_entries {
            return Err(FormatError::invalid(
                path,
                24,
                "vmdk COWD header.numGDEntries",
                format!(
                    "found {gd_entries_in_header}, the capacity needs {}",
                    geometry.gd_entries
                ),
            ));
        }
        let (gd, gd_offset_bytes) = load_gd(
            &file,
            path,
            file_len,
            u64::from(le_u32(head, 20)),
            geometry.gd_entries,
            COWD_GTES_PER_GT,
            20,
        )?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            file_len,
            capacity_bytes: geometry.capacity_bytes,
            grain_bytes: geometry.grain_bytes,
            gtes_per_gt: COWD_GTES_PER_GT,
            gd,
            gd_offset_bytes,
            first_grain_sector: 1,
            zeroed_gte: false,
            compressed: false,
            markers: false,
            gt_cache: Mutex::new(GtCache::new(COWD_GTES_PER_GT)),
            grain_cache: Mutex::new(VecDeque::new()),
        })
    }

    /// The grain table of GD entry `gd_index` (cached), or `None` if unallocated.
    fn grain_table(&self, gd_index: u64) -> Result<Option<Arc<Vec<u32>>>, FormatError> {
        let entry_at = self.gd_offset_bytes + gd_index * 4;
        let sector = usize::try_from(gd_index)
            .ok()
            .and_then(|i| self.gd.get(i))
            .copied()
            .ok_or_else(|| {
                FormatError::invalid(
                    &self.path,
                    entry_at,
                    "vmdk grain directory entry",
                    format!("index {gd_index} is past the {} entries", self.gd.len()),
                )
            })?;
        if sector == 0 {
            return Ok(None);
        }
        if let Ok(cache) = self.gt_cache.lock() {
            if let Some(t) = cache.tables.get(&gd_index) {
                return Ok(Some(Arc::clone(t)));
            }
        }
        // In bounds: load_gd checked every entry against the file.
        let gt_bytes = usize::try_from(self.gtes_per_gt * 4).unwrap_or(usize::MAX);
        let mut raw = vec![0u8; gt_bytes];
        read_exact_in(
            &self.file,
            &self.path,
            self.file_len,
            &mut raw,
            u64::from(sector) * SECTOR_BYTES,
            "vmdk grain table",
        )?;
        let table: Arc<Vec<u32>> = Arc::new(le_u32s(&raw));
        if let Ok(mut cache) = self.gt_cache.lock() {
            cache.insert(gd_index, Arc::clone(&table));
        }
        Ok(Some(table))
    }

    /// Where grain `grain_index` of this extent is.
    fn grain(&self, grain_index: u64) -> Result<Grain, FormatError> {
        let gd_index = grain_index / self.gtes_per_gt;
        let gt_index = grain_index % self.gtes_per_gt;
        let Some(table) = self.grain_table(gd_index)? else {
            return Ok(Grain::Unallocated);
        };
        let gte = usize::try_from(gt_index)
            .ok()
            .and_then(|i| table.get(i))
            .copied()
            .unwrap_or(0);
        let gte_at = u64::from(
            self.gd
                .get(usize::try_from(gd_index).unwrap_or(0))
                .copied()
                .unwrap_or(0),
        ) * SECTOR_BYTES
            + gt_index * 4;
        match gte {
            0 => Ok(Grain::Unallocated),
            1 if self.zeroed_gte => Ok(Grain::Zero),
            sector => {
                let sector = u64::from(sector);
                if sector < self.first_grain_sector {
                    return Err(FormatError::invalid(
                        &self.path,
                        gte_at,
                        "vmdk grain table entry",
                        format!(
                            "grain {grain_index} at sector {sector} lies in the header/metadata \
                             (grains start at sector {})",
                            self.first_grain_sector
                        ),
                    ));
                }
                let offset = sector * SECTOR_BYTES;
                let end = if self.compressed {
                    offset.checked_add(1)
                } else {
                    offset.checked_add(self.grain_bytes)
                };
                // The last grain may be cut at the capacity; only require what is read.
                let needed_end = end.map(|e| {
                    let in_extent = self
                        .capacity_bytes
                        .saturating_sub(grain_index * self.grain_bytes);
                    e.min(offset + in_extent.max(1))
                });
                if needed_end.is_none_or(|e| e > self.file_len) {
                    return Err(FormatError::invalid(
                        &self.path,
                        gte_at,
                        "vmdk grain table entry",
                        format!(
                            "grain {grain_index} at byte {offset} lies past the end of the file \
                             ({} bytes)",
                            self.file_len
                        ),
                    ));
                }
                Ok(if self.compressed {
                    Grain::Compressed(offset)
                } else {
                    Grain::Data(offset)
                })
            }
        }
    }

    /// The decompressed bytes of compressed grain `grain_index` stored at `offset` (cached).
    fn decompressed(&self, grain_index: u64, offset: u64) -> Result<Arc<Vec<u8>>, FormatError> {
        if let Ok(cache) = self.grain_cache.lock() {
            if let Some((_, g)) = cache.iter().find(|(i, _)| *i == grain_index) {
                return Ok(Arc::clone(g));
            }
        }
        let max_compressed = self.grain_bytes.saturating_mul(2).saturating_add(4096);
        let (data_at, data_len) = if self.markers {
            let mut marker = [0u8; 12];
            read_exact_in(
                &self.file,
                &self.path,
                self.file_len,
                &mut marker,
                offset,
                "vmdk grain marker",
            )?;
            let lba = le_u64(&marker, 0);
            let size = u64::from(le_u32(&marker, 8));
            let expected_lba = grain_index * (self.grain_bytes / SECTOR_BYTES);
            if lba != expected_lba {
                return Err(FormatError::invalid(
                    &self.path,
                    offset,
                    "vmdk grain marker.lba",
                    format!("found {lba}, the grain table maps it as sector {expected_lba}"),
                ));
            }
            if size == 0 || size > max_compressed {
                return Err(FormatError::invalid(
                    &self.path,
                    offset + 8,
                    "vmdk grain marker.size",
                    format!("found {size}, expected 1..={max_compressed} bytes"),
                ));
            }
            (offset + 12, size)
        } else {
            (
                offset,
                max_compressed.min(self.file_len.saturating_sub(offset)),
            )
        };
        let mut compressed = vec![0u8; usize::try_from(data_len).unwrap_or(0)];
        read_exact_in(
            &self.file,
            &self.path,
            self.file_len,
            &mut compressed,
            data_at,
            "vmdk compressed grain",
        )?;
        let mut out = vec![0u8; usize::try_from(self.grain_bytes).unwrap_or(0)];
        let mut z = flate2::Decompress::new(true);
        let status = z.decompress(&compressed, &mut out, flate2::FlushDecompress::Finish);
        let produced = usize::try_from(z.total_out()).unwrap_or(usize::MAX);
        match status {
            Ok(flate2::Status::StreamEnd) => {}
            Ok(_) => {
                return Err(FormatError::invalid(
                    &self.path,
                    data_at,
                    "vmdk compressed grain",
                    format!(
                        "the zlib stream does not end within {data_len} bytes or inflates past \
                         the grain ({} bytes)",
                        self.grain_bytes
                    ),
                ))
            }
            Err(e) => {
                return Err(FormatError::invalid(
                    &self.path,
                    data_at,
                    "vmdk compressed grain",
                    format!("bad zlib stream: {e}"),
                ))
            }
        }
        // A short last grain: the rest reads as zeros (out is zero-filled).
        if produced > out.len() {
            out.fill(0);
        }
        let grain = Arc::new(out);
        if let Ok(mut cache) = self.grain_cache.lock() {
            if cache.len() >= GRAIN_CACHE_ENTRIES {
                cache.pop_front();
            }
            cache.push_back((grain_index, Arc::clone(&grain)));
        }
        Ok(grain)
    }

    /// Fills `buf` with the extent's bytes at `offset` (inside the extent); unallocated
    /// grains come from `parent` at `virtual_offset + …`, or zeros.
    fn read(
        &self,
        buf: &mut [u8],
        offset: u64,
        virtual_offset: u64,
        parent: Option<&dyn Image>,
    ) -> Result<(), FormatError> {
        let total = buf.len();
        let mut done = 0usize;
        while done < total {
            let pos = offset + done as u64;
            let grain_index = pos / self.grain_bytes;
            let in_grain = pos % self.grain_bytes;
            let first_len = (self.grain_bytes - in_grain).min((total - done) as u64);
            let kind = self.grain(grain_index)?;
            // Coalesce following grains of the same kind (contiguous for Data).
            let mut run = first_len;
            let mut next = grain_index + 1;
            if !matches!(kind, Grain::Compressed(_)) {
                while done as u64 + run < total as u64 {
                    let following = self.grain(next)?;
                    let same = match (kind, following) {
                        (Grain::Data(a), Grain::Data(b)) => {
                            Some(b) == a.checked_add((next - grain_index) * self.grain_bytes)
                        }
                        (a, b) => a == b,
                    };
                    if !same {
                        break;
                    }
                    run = (run + self.grain_bytes).min((total - done) as u64);
                    next += 1;
                }
            }
            let run_usize = usize::try_from(run).unwrap_or(0);
            let Some(out) = buf.get_mut(done..done + run_usize) else {
                break;
            };
            match kind {
                Grain::Zero => out.fill(0),
                Grain::Unallocated => match parent {
                    Some(p) => read_or_zero(p, out, virtual_offset + done as u64)
                        .map_err(|e| io_err(&self.path, "read the parent image".into(), e))?,
                    None => out.fill(0),
                },
                Grain::Data(base) => {
                    let at = base + in_grain;
                    self.file.read_exact_at(out, at).map_err(|e| {
                        io_err(&self.path, format!("read grain data at byte {at}"), e)
                    })?;
                }
                Grain::Compressed(at) => {
                    let grain = self.decompressed(grain_index, at)?;
                    let start = usize::try_from(in_grain).unwrap_or(0);
                    match grain.get(start..start + run_usize) {
                        Some(src) => out.copy_from_slice(src),
                        None => out.fill(0),
                    }
                }
            }
            done += run_usize;
        }
        Ok(())
    }
}

/// Checked sizes of a sparse extent.
struct Geometry {
    capacity_bytes: u64,
    grain_bytes: u64,
    gd_entries: u64,
}

impl Geometry {
    fn check(
        path: &Path,
        capacity_sectors: u64,
        grain_sectors: u64,
        gtes_per_gt: u64,
        capacity_at: u64,
        grain_at: u64,
    ) -> Result<Self, FormatError> {
        if !(1..=MAX_GRAIN_SECTORS).contains(&grain_sectors) {
            return Err(FormatError::invalid(
                path,
                grain_at,
                "vmdk sparse header.grainSize",
                format!("found {grain_sectors} sectors, expected 1..={MAX_GRAIN_SECTORS}"),
            ));
        }
        let capacity_bytes = capacity_sectors
            .checked_mul(SECTOR_BYTES)
            .filter(|b| *b <= MAX_VIRTUAL_BYTES)
            .ok_or_else(|| {
                FormatError::invalid(
                    path,
                    capacity_at,
                    "vmdk sparse header.capacity",
                    format!(
                        "found {capacity_sectors} sectors, more than the {MAX_VIRTUAL_BYTES} \
                         bytes accepted"
                    ),
                )
            })?;
        let grain_bytes = grain_sectors * SECTOR_BYTES;
        let gt_span = grain_bytes * gtes_per_gt;
        let gd_entries = capacity_bytes.div_ceil(gt_span);
        Ok(Self {
            capacity_bytes,
            grain_bytes,
            gd_entries,
        })
    }
}

/// Reads and checks a grain directory of `entries` at sector `gd_sector`: inside the file,
/// under [`MAX_GD_BYTES`], every grain table inside the file and after the header. Returns
/// the entries and the GD's byte offset.
fn load_gd(
    file: &File,
    path: &Path,
    file_len: u64,
    gd_sector: u64,
    entries: u64,
    gtes_per_gt: u64,
    field_at: u64,
) -> Result<(Vec<u32>, u64), FormatError> {
    let gd_at = sectors_to_bytes(gd_sector, path, field_at, "vmdk sparse header.gdOffset")?;
    let gd_bytes = entries * 4;
    if gd_bytes > 0 && gd_sector == 0 {
        return Err(FormatError::invalid(
            path,
            field_at,
            "vmdk sparse header.gdOffset",
            "found 0 (the header), expected the grain directory's sector",
        ));
    }
    if gd_bytes > MAX_GD_BYTES || gd_at.checked_add(gd_bytes).is_none_or(|e| e > file_len) {
        return Err(FormatError::invalid(
            path,
            field_at,
            "vmdk sparse header.gdOffset",
            format!(
                "a grain directory of {entries} entries at byte {gd_at} does not fit in the \
                 file ({file_len} bytes) or the {MAX_GD_BYTES}-byte cap"
            ),
        ));
    }
    let mut raw = vec![0u8; usize::try_from(gd_bytes).unwrap_or(0)];
    read_exact_in(
        file,
        path,
        file_len,
        &mut raw,
        gd_at,
        "vmdk grain directory",
    )?;
    let gd = le_u32s(&raw);
    let gt_bytes = gtes_per_gt * 4;
    for (i, &sector) in gd.iter().enumerate() {
        if sector == 0 {
            continue;
        }
        let at = u64::from(sector) * SECTOR_BYTES;
        if at + gt_bytes > file_len {
            return Err(FormatError::invalid(
                path,
                gd_at + i as u64 * 4,
                "vmdk grain directory entry",
                format!(
                    "grain table {i} at byte {at} runs past the end of the file ({file_len} bytes)"
                ),
            ));
        }
    }
    Ok((gd, gd_at))
}

impl GtCache {
    fn new(gtes_per_gt: u64) -> Self {
        Self {
            tables: HashMap::new(),
            order: VecDeque::new(),
            capacity: usize::try_from(GT_CACHE_BYTES / (gtes_per_gt * 4))
                .unwrap_or(1)
                .max(1),
        }
    }
    fn insert(&mut self, key: u64, table: Arc<Vec<u32>>) {
        if self.tables.insert(key, table).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.tables.remove(&old);
            }
        }
    }
}

/// Fills `buf` from `source` at `offset`; bytes past its end read as zeros.
fn read_or_zero(source: &dyn Image, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0usize;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        let Some(at) = offset.checked_add(done as u64) else {
            rest.fill(0);
            break;
        };
        match source.read_at(rest, at) {
            Ok(0) => {
                rest.fill(0);
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Access of an extent line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// `RW`
    Write,
    /// `RDONLY`
    Read,
    /// `NOACCESS`
    Denied,
}

/// One extent line: `RW 8192 SPARSE "file.vmdk"` or `RW 8192 FLAT "file-flat.vmdk" 0`.
#[derive(Debug, Clone)]
struct ExtentLine {
    access: Access,
    sectors: u64,
    kind: String,
    file: Option<String>,
    offset_sectors: u64,
    /// Byte offset of the line (for errors).
    at: u64,
}

/// The fields of a descriptor this reader uses.
#[derive(Debug, Default)]
struct Descriptor {
    cid: Option<u32>,
    parent_cid: Option<u32>,
    create_type: Option<String>,
    parent_hint: Option<String>,
    extents: Vec<ExtentLine>,
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
}

impl Descriptor {
    /// Parses descriptor text found at byte `base` of `path` (at most
    /// [`MAX_DESCRIPTOR_BYTES`], at most [`MAX_EXTENTS`] extent lines).
    fn parse(text: &[u8], path: &Path, base: u64, embedded: bool) -> Result<Self, FormatError> {
        // An embedded descriptor ends at its first NUL (the rest of its sectors is padding);
        // a descriptor file may end in NUL padding, but text after a NUL is refused (a path
        // or value with a NUL inside).
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        if !embedded {
            if let Some(i) = text.iter().skip(end).position(|&b| b != 0) {
                return Err(FormatError::invalid(
                    path,
                    base + end as u64,
                    "vmdk descriptor",
                    format!(
                        "a NUL byte inside the text (text resumes at byte {}); expected \
                         plain text",
                        base + (end + i) as u64
                    ),
                ));
            }
        }
        let text = text.get(..end).unwrap_or_default();
        let mut d = Self::default();
        let mut line_at = base;
        for raw_line in text.split(|&b| b == b'\n') {
            let at = line_at;
            line_at += raw_line.len() as u64 + 1;
            let line = String::from_utf8_lossy(raw_line);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let first = line.split_whitespace().next().unwrap_or_default();
            let access = match first {
                "RW" => Some(Access::Write),
                "RDONLY" => Some(Access::Read),
                "NOACCESS" => Some(Access::Denied),
                _ => None,
            };
            if let Some(access) = access {
                if d.extents.len() >= MAX_EXTENTS {
                    return Err(FormatError::invalid(
                        path,
                        at,
                        "vmdk descriptor.extent",
                        format!("more than {MAX_EXTENTS} extent lines"),
                    ));
                }
                d.extents.push(parse_extent_line(line, access, path, at)?);
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = unquote(value);
            match key.trim() {
                "CID" => d.cid = Some(parse_cid(value, path, at, "vmdk descriptor.CID")?),
                "parentCID" => {
                    d.parent_cid = Some(parse_cid(value, path, at, "vmdk descriptor.parentCID")?);
                }
                "createType" => d.create_type = Some(value.to_string()),
                "parentFileNameHint" => {
                    if value.contains('\0') {
                        return Err(FormatError::invalid(
                            path,
                            at,
                            "vmdk descriptor.parentFileNameHint",
                            "the path contains a NUL byte",
                        ));
                    }
                    d.parent_hint = Some(value.to_string());
                }
                _ => {}
            }
        }
        Ok(d)
    }
}

fn parse_cid(value: &str, path: &Path, at: u64, field: &'static str) -> Result<u32, FormatError> {
    u32::from_str_radix(value.trim(), 16).map_err(|_| {
        FormatError::invalid(
            path,
            at,
            field,
            format!("found {value:?}, expected 8 hex digits"),
        )
    })
}

fn parse_extent_line(
    line: &str,
    access: Access,
    path: &Path,
    at: u64,
) -> Result<ExtentLine, FormatError> {
    let bad = |reason: String| FormatError::invalid(path, at, "vmdk descriptor.extent", reason);
    let mut rest = line
        .split_once(char::is_whitespace)
        .map_or("", |x| x.1)
        .trim_start();
    let (sectors, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let sectors: u64 = sectors.parse().map_err(|_| {
        bad(format!(
            "sector count {sectors:?} in {line:?} is not a number"
        ))
    })?;
    rest = tail.trim_start();
    let (kind, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let kind = kind.to_ascii_uppercase();
    rest = tail.trim_start();
    let mut file = None;
    let mut offset_sectors = 0u64;
    if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted
            .find('"')
            .ok_or_else(|| bad(format!("unterminated file name in {line:?}")))?;
        let name = quoted.get(..end).unwrap_or_default();
        if name.contains('\0') {
            return Err(bad("the extent file name contains a NUL byte".to_string()));
        }
        if name.is_empty() {
            return Err(bad(format!("empty extent file name in {line:?}")));
        }
        file = Some(name.to_string());
        let after = quoted.get(end + 1..).unwrap_or_default().trim();
        if let Some(off) = after.split_whitespace().next() {
            offset_sectors = off
                .parse()
                .map_err(|_| bad(format!("extent offset {off:?} in {line:?} is not a number")))?;
        }
    } else if kind != "ZERO" {
        return Err(bad(format!(
            "{kind} extent without a quoted file name: {line:?}"
        )));
    }
    Ok(ExtentLine {
        access,
        sectors,
        kind,
        file,
        offset_sectors,
        at,
    })
}

/// Resolves an extent or parent file name from a descriptor in `dir`: relative to `dir`;
/// an absolute path that does not exist here (copied evidence) falls back to its last
/// component in `dir`.
fn resolve(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if Path::new(name).is_absolute() && !candidate.exists() {
        if let Some(base) = Path::new(name).file_name() {
            return dir.join(base);
        }
    }
    candidate
}

impl Vmdk {
    /// Opens the VMDK at `path` (a descriptor, a sparse extent or a COWD delta), with its
    /// extents and parents.
    ///
    /// # Errors
    /// A [`FormatError`] naming the file, byte offset and field of the first bad structure.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let canonical = std::fs::canonicalize(path)
            .map_err(|e| io_err(path, "resolve the path".to_string(), e))?;
        Self::open_in_chain(&canonical, std::slice::from_ref(&canonical))
    }

    fn open_in_chain(path: &Path, chain: &[PathBuf]) -> Result<Self, FormatError> {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let (file, file_len) = open_file(path)?;
        let mut head = [0u8; 512];
        let head_len = usize::try_from(file_len.min(512)).unwrap_or(0);
        if let Some(h) = head.get_mut(..head_len) {
            file.read_exact_at(h, 0)
                .map_err(|e| io_err(path, "read its header".to_string(), e))?;
        }
        let mut notes = Vec::new();
        let mut files = vec![path.to_path_buf()];
        let mut extents = Vec::new();
        let descriptor;
        let variant;
        if head.starts_with(KDMV_MAGIC) || head.starts_with(COWD_MAGIC) {
            drop(file);
            let (sparse, header) = SparseExtent::open(path, &mut notes)?;
            descriptor = match header {
                Some(h) if h.descriptor_offset_sectors != 0 && h.descriptor_sectors != 0 => {
                    let at = sectors_to_bytes(
                        h.descriptor_offset_sectors,
                        path,
                        28,
                        "vmdk sparse header.descriptorOffset",
                    )?;
                    let len = h
                        .descriptor_sectors
                        .checked_mul(SECTOR_BYTES)
                        .filter(|l| *l <= MAX_DESCRIPTOR_BYTES)
                        .ok_or_else(|| {
                            FormatError::invalid(
                                path,
                                36,
                                "vmdk sparse header.descriptorSize",
                                format!(
                                    "found {} sectors, at most {} accepted",
                                    h.descriptor_sectors,
                                    MAX_DESCRIPTOR_BYTES / SECTOR_BYTES
                                ),
                            )
                        })?;
                    let mut text = vec![0u8; usize::try_from(len).unwrap_or(0)];
                    read_exact_in(
                        &sparse.file,
                        path,
                        sparse.file_len,
                        &mut text,
                        at,
                        "vmdk embedded descriptor",
                    )?;
                    Descriptor::parse(&text, path, at, true)?
                }
                _ => Descriptor::default(),
            };
            variant = descriptor.create_type.clone().unwrap_or_else(|| {
                match header {
                    None => "vmfsSparse",
                    Some(h) if h.flags & FLAG_MARKERS != 0 => "streamOptimized",
                    Some(_) => "monolithicSparse",
                }
                .to_string()
            });
            if let Some(line) = descriptor.extents.first() {
                if line.sectors * SECTOR_BYTES != sparse.capacity_bytes {
                    notes.push(format!(
                        "embedded descriptor's extent has {} sectors, the header's capacity is {}",
                        line.sectors,
                        sparse.capacity_bytes / SECTOR_BYTES
                    ));
                }
            }
            extents.push(Extent {
                start_bytes: 0,
                len_bytes: sparse.capacity_bytes,
                kind: ExtentKind::Sparse(Box::new(sparse)),
            });
        } else {
            if file_len > MAX_DESCRIPTOR_BYTES {
                return Err(FormatError::invalid(
                    path,
                    0,
                    "vmdk descriptor",
                    format!(
                        "a {file_len}-byte file that is not a sparse extent; a descriptor is at \
                         most {MAX_DESCRIPTOR_BYTES} bytes"
                    ),
                ));
            }
            let mut text = vec![0u8; usize::try_from(file_len).unwrap_or(0)];
            read_exact_in(&file, path, file_len, &mut text, 0, "vmdk descriptor")?;
            drop(file);
            descriptor = Descriptor::parse(&text, path, 0, false)?;
            variant = descriptor
                .create_type
                .clone()
                .unwrap_or_else(|| "unknown".to_string());
            if descriptor.extents.is_empty() {
                return Err(FormatError::invalid(
                    path,
                    0,
                    "vmdk descriptor.extent",
                    "no extent lines (RW|RDONLY|NOACCESS <sectors> <type> \"<file>\")",
                ));
            }
            let mut start = 0u64;
            for line in &descriptor.extents {
                let len_bytes = line
                    .sectors
                    .checked_mul(SECTOR_BYTES)
                    .and_then(|l| start.checked_add(l).map(|e| (l, e)))
                    .filter(|(_, e)| *e <= MAX_VIRTUAL_BYTES);
                let Some((len_bytes, end)) = len_bytes else {
                    return Err(FormatError::invalid(
                        path,
                        line.at,
                        "vmdk descriptor.extent",
                        format!(
                            "{} sectors make the disk larger than {MAX_VIRTUAL_BYTES} bytes",
                            line.sectors
                        ),
                    ));
                };
                let kind = open_extent(path, &dir, line, len_bytes, &mut notes, &mut files)?;
                extents.push(Extent {
                    start_bytes: start,
                    len_bytes,
                    kind,
                });
                start = end;
            }
        }
        let size_bytes = extents.last().map_or(0, |e| e.start_bytes + e.len_bytes);
        if let Some(cid) = descriptor.cid {
            notes.push(format!("CID={cid:08x}"));
        }
        if let Some(pcid) = descriptor.parent_cid {
            notes.push(format!("parentCID={pcid:08x}"));
        }
        let mut parent = None;
        let mut backing = None;
        if let Some(hint) = &descriptor.parent_hint {
            let parent_path = resolve(&dir, hint);
            let p = crate::open_in_chain(&parent_path, chain)?;
            let pinfo = p.info();
            let parent_cid = pinfo.notes.iter().find_map(|n| {
                n.strip_prefix("CID=")
                    .and_then(|v| u32::from_str_radix(v, 16).ok())
            });
            match (descriptor.parent_cid, parent_cid) {
                (Some(CID_NONE), _) => notes.push(
                    "parentFileNameHint is set but parentCID is ffffffff (no parent)".to_string(),
                ),
                (Some(want), Some(found)) if want != found => notes.push(format!(
                    "PARENT CID MISMATCH: this descriptor's parentCID is {want:08x} but the parent \
                     {} has CID {found:08x}: the parent changed after this snapshot was taken, \
                     so unallocated grains may not show what the guest saw",
                    parent_path.display()
                )),
                _ => {}
            }
            if p.size() < size_bytes {
                notes.push(format!(
                    "the parent is {} bytes, smaller than this disk ({size_bytes}); the rest \
                     of its unallocated grains read as zeros",
                    p.size()
                ));
            }
            backing = Some(Box::new(pinfo));
            parent = Some(p);
        } else if descriptor.parent_cid.is_some_and(|c| c != CID_NONE) {
            notes.push(
                "parentCID is set but there is no parentFileNameHint: unallocated grains read \
                 as zeros"
                    .to_string(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        files.retain(|f| seen.insert(f.clone()));
        let info = ImageInfo {
            format: "vmdk".to_string(),
            variant: Some(variant),
            virtual_size_bytes: size_bytes,
            files,
            backing,
            notes,
            ..ImageInfo::default()
        };
        Ok(Self {
            path: path.to_path_buf(),
            size_bytes,
            extents,
            parent,
            info,
        })
    }

    /// Fills `buf` (inside the disk) from the extents.
    fn read_inner(&self, buf: &mut [u8], offset: u64) -> Result<(), FormatError> {
        let mut done = 0usize;
        let mut index = self
            .extents
            .partition_point(|e| e.start_bytes + e.len_bytes <= offset);
        while done < buf.len() {
            let pos = offset + done as u64;
            let Some(extent) = self.extents.get(index) else {
                break;
            };
            let in_extent = pos - extent.start_bytes;
            let n = usize::try_from((extent.len_bytes - in_extent).min((buf.len() - done) as u64))
                .unwrap_or(0);
            let Some(out) = buf.get_mut(done..done + n) else {
                break;
            };
            match &extent.kind {
                ExtentKind::Zero => out.fill(0),
                ExtentKind::Flat {
                    path,
                    file,
                    offset_bytes,
                } => {
                    let at = offset_bytes + in_extent;
                    file.read_exact_at(out, at)
                        .map_err(|e| io_err(path, format!("read flat extent at byte {at}"), e))?;
                }
                ExtentKind::Sparse(s) => s.read(out, in_extent, pos, self.parent.as_deref())?,
            }
            done += n;
            index += 1;
        }
        Ok(())
    }
}

/// Opens the extent of descriptor line `line` (of `descriptor`, in `dir`).
fn open_extent(
    descriptor: &Path,
    dir: &Path,
    line: &ExtentLine,
    len_bytes: u64,
    notes: &mut Vec<String>,
    files: &mut Vec<PathBuf>,
) -> Result<ExtentKind, FormatError> {
    if line.access == Access::Denied {
        notes.push(format!(
            "NOACCESS extent of {} sectors (descriptor byte {}) reads as zeros",
            line.sectors, line.at
        ));
        return Ok(ExtentKind::Zero);
    }
    let file_path = line.file.as_deref().map(|f| resolve(dir, f));
    match (line.kind.as_str(), file_path) {
        ("ZERO", _) => Ok(ExtentKind::Zero),
        ("FLAT" | "VMFS", Some(p)) => {
            let (file, file_len) = open_file(&p)?;
            let offset_bytes = sectors_to_bytes(
                line.offset_sectors,
                descriptor,
                line.at,
                "vmdk descriptor.extent",
            )?;
            if offset_bytes
                .checked_add(len_bytes)
                .is_none_or(|e| e > file_len)
            {
                return Err(FormatError::invalid(
                    descriptor,
                    line.at,
                    "vmdk descriptor.extent",
                    format!(
                        "flat extent {} needs {len_bytes} bytes at byte {offset_bytes}, the \
                         file has {file_len}",
                        p.display()
                    ),
                ));
            }
            files.push(p.clone());
            Ok(ExtentKind::Flat {
                path: p,
                file,
                offset_bytes,
            })
        }
        ("SPARSE" | "VMFSSPARSE", Some(p)) => {
            let (sparse, _) = SparseExtent::open(&p, notes)?;
            if sparse.capacity_bytes < len_bytes {
                return Err(FormatError::invalid(
                    descriptor,
                    line.at,
                    "vmdk descriptor.extent",
                    format!(
                        "{} sectors, but the sparse extent {} holds only {}",
                        line.sectors,
                        p.display(),
                        sparse.capacity_bytes / SECTOR_BYTES
                    ),
                ));
            }
            files.push(p);
            Ok(ExtentKind::Sparse(Box::new(sparse)))
        }
        (other, _) => Err(FormatError::Unsupported {
            file: descriptor.to_path_buf(),
            what: format!(
                "extent type {other} (descriptor byte {}; known: FLAT, SPARSE, ZERO, VMFS, \
                 VMFSSPARSE)",
                line.at
            ),
        }),
    }
}

impl ReadAt for Vmdk {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        if offset_bytes >= self.size_bytes {
            return Ok(0);
        }
        let n =
            usize::try_from((self.size_bytes - offset_bytes).min(buf.len() as u64)).unwrap_or(0);
        let Some(out) = buf.get_mut(..n) else {
            return Ok(0);
        };
        self.read_inner(out, offset_bytes)
            .map_err(FormatError::into_io)?;
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.size_bytes
    }
}

impl Image for Vmdk {
    fn info(&self) -> ImageInfo {
        self.info.clone()
    }
}

#[cfg(test)]
#[path = "vmdk_tests.rs"]
mod tests;
