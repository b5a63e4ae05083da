//! VHD (Microsoft Virtual Hard Disk; qemu calls it `vpc`): fixed, dynamic and differencing
//! disks, read-only.
//!
//! Spec: Microsoft "Virtual Hard Disk Image Format Specification" v1.0. Layout:
//! - the 512-byte footer (cookie `conectix`, big-endian fields, one's-complement byte-sum
//!   checksum) ends the file; dynamic and differencing disks keep a copy at byte 0;
//! - a fixed disk is its data followed by the footer;
//! - a dynamic or differencing disk has a 1024-byte dynamic header (cookie `cxsparse`) at the
//!   footer's data offset, pointing at the block allocation table (BAT: one big-endian u32
//!   sector number per block, `0xFFFFFFFF` = unallocated). Each allocated block is a sector
//!   bitmap (one bit per sector, most significant bit first, padded to 512 bytes) followed by
//!   the block's data.
//!
//! Reads: an unallocated block, or a sector whose bitmap bit is clear, reads as zeros on a
//! dynamic disk and from the parent on a differencing disk (spec "Sector bitmap"). (qemu
//! ignores the bitmap of dynamic disks; it writes all-ones bitmaps itself, so its images read
//! the same either way.) The virtual size is the footer's current size; qemu's CHS-derived
//! size is only noted when it differs.

use crate::bytes::{be_u16, be_u32, be_u64};
use crate::{FormatError, Image, ImageInfo};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vestige_evidence::read_at::ReadAt;

/// Bytes of the footer (and of its copy at byte 0).
const FOOTER_BYTES: u64 = 512;
/// Bytes of the dynamic disk header.
const DYN_HEADER_BYTES: u64 = 1024;
/// The VHD sector.
const SECTOR_BYTES: u64 = 512;
const FOOTER_COOKIE: &[u8] = b"conectix";
const DYN_COOKIE: &[u8] = b"cxsparse";
/// BAT entry of a block not allocated in this file.
const UNALLOCATED: u32 = u32::MAX;
/// Largest block accepted (the spec's default is 2 MiB; qemu and Hyper-V use 2 MiB, some
/// tools 512 KiB).
const MAX_BLOCK_BYTES: u32 = 256 << 20;
/// Largest BAT read into memory (4 bytes per block: 16 Mi blocks, 32 TiB at 2 MiB).
const MAX_BAT_BYTES: u64 = 64 << 20;
/// Memory for cached sector bitmaps.
const BITMAP_CACHE_BYTES: usize = 4 << 20;
/// Longest parent locator read (a path).
const MAX_LOCATOR_BYTES: u32 = 64 << 10;
/// Parent locator entries in the dynamic header.
const LOCATOR_COUNT: u64 = 8;

/// Disk types (footer `disk_type`).
const TYPE_FIXED: u32 = 2;
const TYPE_DYNAMIC: u32 = 3;
const TYPE_DIFFERENCING: u32 = 4;

/// Whether `head` (the first bytes of a file) is this format: the footer copy of a dynamic
/// or differencing disk at byte 0. A fixed disk has its footer only at the end: see
/// [`probe_tail`].
pub(crate) fn probe(head: &[u8]) -> bool {
    head.get(..8) == Some(FOOTER_COOKIE)
}

/// Whether `tail` (the last 512 bytes of a file) is a VHD footer: how a fixed VHD, which has
/// nothing at its start, is recognised. The caller decides whether to look there.
#[must_use]
pub fn probe_tail(tail: &[u8]) -> bool {
    tail.len() == 512 && tail.get(..8) == Some(FOOTER_COOKIE) && checksum_ok(tail, 64)
}

/// Opens `path` (see [`crate::open_in_chain`] for `chain`).
pub(crate) fn open_boxed(path: &Path, chain: &[PathBuf]) -> Result<Box<dyn Image>, FormatError> {
    Ok(Box::new(Vhd::open_in_chain(path, chain)?))
}

/// The footer's fields this reader uses or reports.
#[derive(Debug, Clone)]
struct Footer {
    features: u32,
    data_offset: u64,
    creator_app: [u8; 4],
    creator_version: u32,
    creator_host: [u8; 4],
    original_size: u64,
    current_size: u64,
    cylinders: u16,
    heads: u8,
    sectors_per_track: u8,
    disk_type: u32,
    unique_id: [u8; 16],
    saved_state: u8,
}

/// A parent image and where it was found.
struct Parent {
    image: Box<dyn Image>,
    path: PathBuf,
}

/// A cached sector bitmap.
struct Bitmap {
    bits: Vec<u8>,
    all_set: bool,
}

/// What a dynamic or differencing disk adds to the footer.
struct Sparse {
    header_offset: u64,
    table_offset: u64,
    max_table_entries: u32,
    block_bytes: u64,
    /// Bytes of each block's sector bitmap, padded to a sector.
    bitmap_bytes: u64,
    /// One entry per block of the virtual disk.
    bat: Vec<u32>,
    /// Blocks must end at or before this byte (the footer at the end, or the file's end).
    data_limit: u64,
    parent: Option<Parent>,
    bitmaps: Mutex<HashMap<u32, Arc<Bitmap>>>,
    bitmap_cache_entries: usize,
}

/// An opened VHD.
pub struct Vhd {
    path: PathBuf,
    file: File,
    footer: Footer,
    size_bytes: u64,
    sparse: Option<Sparse>,
    notes: Vec<String>,
}

impl std::fmt::Debug for Vhd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vhd")
            .field("path", &self.path)
            .field("disk_type", &self.footer.disk_type)
            .field("size_bytes", &self.size_bytes)
            .finish_non_exhaustive()
    }
}

fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .unwrap_or([0; N])
}

/// The VHD checksum: the one's complement of the byte sum, the 4-byte field at `field`
/// counted as zeros.
fn checksum(b: &[u8], field: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |acc, (_, &v)| acc.wrapping_add(u32::from(v)));
    !sum
}

fn checksum_ok(b: &[u8], field: usize) -> bool {
    checksum(b, field) == be_u32(b, field)
}

/// A UUID as text (the bytes in order, as Windows tools show VHD ids).
fn uuid_text(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    )
}

fn fourcc(b: &[u8; 4]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                char::from(c)
            } else {
                '.'
            }
        })
        .collect()
}

fn read_exact(
    file: &File,
    path: &Path,
    buf: &mut [u8],
    offset: u64,
    what: &str,
) -> Result<(), FormatError> {
    file.read_exact_at(buf, offset)
        .map_err(|source| FormatError::Io {
            file: path.to_path_buf(),
            what: format!("read the {what} at byte {offset}"),
            source,
        })
}

/// Parses a footer read at byte `at`.
fn parse_footer(path: &Path, b: &[u8], at: u64) -> Result<Footer, FormatError> {
    if b.get(..8) != Some(FOOTER_COOKIE) {
        return Err(FormatError::invalid(
            path,
            at,
            "vhd footer.cookie",
            format!(
                "found {:02x?}, expected \"conectix\"",
                b.get(..8).unwrap_or_default()
            ),
        ));
    }
    let stored = be_u32(b, 64);
    let computed = checksum(b, 64);
    if stored != computed {
        return Err(FormatError::invalid(
            path,
            at + 64,
            "vhd footer.checksum",
            format!("found {stored:#010x}, the footer's bytes give {computed:#010x}"),
        ));
    }
    let version = be_u32(b, 12);
    if version >> 16 != 1 {
        return Err(FormatError::invalid(
            path,
            at + 12,
            "vhd footer.file_format_version",
            format!("found {version:#010x}, expected major version 1 (0x00010000)"),
        ));
    }
    let disk_type = be_u32(b, 60);
    if !matches!(disk_type, TYPE_FIXED | TYPE_DYNAMIC | TYPE_DIFFERENCING) {
        return Err(FormatError::invalid(
            path,
            at + 60,
            "vhd footer.disk_type",
            format!("found {disk_type}, expected 2 (fixed), 3 (dynamic) or 4 (differencing)"),
        ));
    }
    Ok(Footer {
        features: be_u32(b, 8),
        data_offset: be_u64(b, 16),
        creator_app: array(b, 28),
        creator_version: be_u32(b, 32),
        creator_host: array(b, 36),
        original_size: be_u64(b, 40),
        current_size: be_u64(b, 48),
        cylinders: be_u16(b, 56),
        heads: b.get(58).copied().unwrap_or(0),
        sectors_per_track: b.get(59).copied().unwrap_or(0),
        disk_type,
        unique_id: array(b, 68),
        saved_state: b.get(84).copied().unwrap_or(0),
    })
}

/// Reads the footer at the end of `file`, or, if that one is damaged or missing, its copy at
/// byte 0 (dynamic and differencing disks only). Returns the footer, whether it came from
/// the end, and notes.
fn read_footer(
    path: &Path,
    file: &File,
    file_len: u64,
) -> Result<(Footer, bool, Vec<String>), FormatError> {
    if file_len < FOOTER_BYTES {
        return Err(FormatError::invalid(
            path,
            0,
            "vhd footer",
            format!("the file is {file_len} bytes, shorter than the 512-byte footer"),
        ));
    }
    let end_at = file_len - FOOTER_BYTES;
    let mut end = [0u8; 512];
    read_exact(file, path, &mut end, end_at, "footer")?;
    let mut copy = [0u8; 512];
    let copy_read = read_exact(file, path, &mut copy, 0, "footer copy");
    let mut notes = Vec::new();
    match parse_footer(path, &end, end_at) {
        Ok(f) => {
            if f.disk_type != TYPE_FIXED && copy_read.is_ok() && copy != end {
                notes.push(
                    "the footer copy at byte 0 differs from the footer at the end (the end one \
                     is used)"
                        .to_string(),
                );
            }
            Ok((f, true, notes))
        }
        Err(end_err) => {
            if copy_read.is_ok() {
                if let Ok(f) = parse_footer(path, &copy, 0) {
                    if f.disk_type != TYPE_FIXED {
                        notes.push(format!(
                            "the footer at the end is damaged ({end_err}); the copy at byte 0 \
                             is used"
                        ));
                        return Ok((f, false, notes));
                    }
                }
            }
            Err(end_err)
        }
    }
}

/// Decodes UTF-16 code units, stopping at the first NUL; `None` if not valid UTF-16.
fn utf16(bytes: &[u8], big_endian: bool) -> Option<String> {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| {
            if big_endian {
                crate::bytes::be_u16(c, 0)
            } else {
                crate::bytes::le_u16(c, 0)
            }
        })
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16(&units).ok()
}

/// Decodes `%XX` escapes of a file URL path.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0usize;
    while let Some(&c) = bytes.get(i) {
        if c == b'%' {
            let hex_pair = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex_pair.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The last component of a Windows or Unix path.
fn file_name_of(p: &str) -> Option<&str> {
    p.rsplit(['\\', '/']).next().filter(|s| !s.is_empty())
}

impl Vhd {
    /// Opens the VHD at `path` (its parent, for a differencing disk, too).
    ///
    /// # Errors
    /// A [`FormatError`] naming the file, byte offset and field of the first structure
    /// that is not what the spec allows, or the parent's errors.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let canonical =
            std::fs::canonicalize(path).map_err(FormatError::io(path, "resolve the path"))?;
        Self::open_in_chain(path, &[canonical])
    }

    /// Opens `path`, which is the last image of `chain` (see [`crate::open_in_chain`]).
    fn open_in_chain(path: &Path, chain: &[PathBuf]) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(FormatError::io(path, "open it read-only"))?;
        let file_len = file
            .metadata()
            .map_err(FormatError::io(path, "read its size"))?
            .len();
        let (footer, footer_at_end, mut notes) = read_footer(path, &file, file_len)?;
        let footer_at = if footer_at_end {
            file_len - FOOTER_BYTES
        } else {
            0
        };
        let size_bytes = footer.current_size;
        let chs_bytes = u64::from(footer.cylinders)
            * u64::from(footer.heads)
            * u64::from(footer.sectors_per_track)
            * SECTOR_BYTES;
        if chs_bytes != size_bytes {
            notes.push(format!(
                "CHS geometry {}/{}/{} gives {chs_bytes} bytes; the current size {size_bytes} \
                 is used (qemu uses the CHS size for some creators)",
                footer.cylinders, footer.heads, footer.sectors_per_track
            ));
        }
        if footer.saved_state != 0 {
            notes.push("the saved-state flag is set (the VM was suspended)".to_string());
        }
        let sparse = if footer.disk_type == TYPE_FIXED {
            let data_bytes = file_len - FOOTER_BYTES;
            if size_bytes > data_bytes {
                return Err(FormatError::invalid(
                    path,
                    footer_at + 48,
                    "vhd footer.current_size",
                    format!(
                        "a fixed disk of {size_bytes} bytes, but the file holds only \
                         {data_bytes} bytes before its footer"
                    ),
                ));
            }
            if size_bytes < data_bytes {
                notes.push(format!(
                    "{} bytes between the end of the disk and the footer are not part of it",
                    data_bytes - size_bytes
                ));
            }
            None
        } else {
            let data_limit = if footer_at_end {
                file_len - FOOTER_BYTES
            } else {
                file_len
            };
            Some(Sparse::open(
                path, &file, file_len, data_limit, &footer, footer_at, chain, &mut notes,
            )?)
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
            footer,
            size_bytes,
            sparse,
            notes,
        })
    }

    /// Reads `buf.len()` bytes at `offset` (inside the disk).
    fn read_inside(&self, buf: &mut [u8], offset: u64) -> Result<(), FormatError> {
        let Some(sparse) = &self.sparse else {
            return read_exact(&self.file, &self.path, buf, offset, "fixed disk data");
        };
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let block = pos / sparse.block_bytes;
            let in_block = pos % sparse.block_bytes;
            let left_in_block = sparse.block_bytes - in_block;
            let n = usize::try_from(left_in_block)
                .unwrap_or(usize::MAX)
                .min(buf.len() - done);
            let Some(chunk) = buf.get_mut(done..done + n) else {
                break;
            };
            sparse.read_block(&self.path, &self.file, block, in_block, chunk)?;
            done += n;
        }
        Ok(())
    }
}

impl Sparse {
    #[allow(clippy::too_many_arguments)]
    fn open(
        path: &Path,
        file: &File,
        file_len: u64,
        data_limit: u64,
        footer: &Footer,
        footer_at: u64,
        chain: &[PathBuf],
        notes: &mut Vec<String>,
    ) -> Result<Self, FormatError> {
        let header_offset = footer.data_offset;
        let header_end = header_offset.checked_add(DYN_HEADER_BYTES);
        if header_offset < FOOTER_BYTES || header_end.is_none_or(|e| e > file_len) {
            return Err(FormatError::invalid(
                path,
                footer_at + 16,
                "vhd footer.data_offset",
                format!(
                    "the dynamic header would be at byte {header_offset}; expected at or after \
                     byte 512 and its 1024 bytes inside the {file_len}-byte file"
                ),
            ));
        }
        let mut h = [0u8; 1024];
        read_exact(file, path, &mut h, header_offset, "dynamic header")?;
        if h.get(..8) != Some(DYN_COOKIE) {
            return Err(FormatError::invalid(
                path,
                header_offset,
                "vhd dynamic header.cookie",
                format!(
                    "found {:02x?}, expected \"cxsparse\"",
                    h.get(..8).unwrap_or_default()
                ),
            ));
        }
        let stored = be_u32(&h, 36);
        let computed = checksum(&h, 36);
        if stored != computed {
            return Err(FormatError::invalid(
                path,
                header_offset + 36,
                "vhd dynamic header.checksum",
                format!("found {stored:#010x}, the header's bytes give {computed:#010x}"),
            ));
        }
        let version = be_u32(&h, 24);
        if version >> 16 != 1 {
            return Err(FormatError::invalid(
                path,
                header_offset + 24,
                "vhd dynamic header.header_version",
                format!("found {version:#010x}, expected 0x00010000"),
            ));
        }
        let block_size = be_u32(&h, 32);
        if !block_size.is_power_of_two()
            || u64::from(block_size) < SECTOR_BYTES
            || block_size > MAX_BLOCK_BYTES
        {
            return Err(FormatError::invalid(
                path,
                header_offset + 32,
                "vhd dynamic header.block_size",
                format!(
                    "found {block_size}, expected a power of two from 512 to {MAX_BLOCK_BYTES}"
                ),
            ));
        }
        let block_bytes = u64::from(block_size);
        let max_table_entries = be_u32(&h, 28);
        let table_offset = be_u64(&h, 16);
        let table_bytes = u64::from(max_table_entries) * 4;
        let table_end = table_offset.checked_add(table_bytes);
        if table_offset < FOOTER_BYTES || table_end.is_none_or(|e| e > file_len) {
            return Err(FormatError::invalid(
                path,
                header_offset + 16,
                "vhd dynamic header.table_offset",
                format!(
                    "a BAT of {max_table_entries} entries ({table_bytes} bytes) at byte \
                     {table_offset}; expected it after the footer copy and inside the \
                     {file_len}-byte file"
                ),
            ));
        }
        let blocks = footer.current_size.div_ceil(block_bytes);
        if blocks > u64::from(max_table_entries) {
            return Err(FormatError::invalid(
                path,
                header_offset + 28,
                "vhd dynamic header.max_table_entries",
                format!(
                    "found {max_table_entries}, but the {}-byte disk needs {blocks} blocks of \
                     {block_size} bytes",
                    footer.current_size
                ),
            ));
        }
        let bat_bytes = blocks * 4;
        if bat_bytes > MAX_BAT_BYTES {
            return Err(FormatError::invalid(
                path,
                header_offset + 28,
                "vhd dynamic header.max_table_entries",
                format!(
                    "{blocks} blocks need a {bat_bytes}-byte BAT, more than this reader's \
                     {MAX_BAT_BYTES}-byte limit"
                ),
            ));
        }
        // Bounded above: at most MAX_BAT_BYTES and inside the file.
        let mut raw = vec![0u8; usize::try_from(bat_bytes).unwrap_or(0)];
        read_exact(file, path, &mut raw, table_offset, "BAT")?;
        let bat: Vec<u32> = raw.chunks_exact(4).map(|c| be_u32(c, 0)).collect();
        let sectors_per_block = block_bytes / SECTOR_BYTES;
        let bitmap_bytes = sectors_per_block.div_ceil(8).div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
        let bitmap_cache_entries =
            (BITMAP_CACHE_BYTES / usize::try_from(bitmap_bytes).unwrap_or(usize::MAX)).max(1);
        notes.push(format!("block size {block_size} bytes, {blocks} blocks"));
        let parent = if footer.disk_type == TYPE_DIFFERENCING {
            Some(open_parent(
                path,
                file,
                file_len,
                &h,
                header_offset,
                chain,
                notes,
            )?)
        } else {
            None
        };
        Ok(Self {
            header_offset,
            table_offset,
            max_table_entries,
            block_bytes,
            bitmap_bytes,
            bat,
            data_limit,
            parent,
            bitmaps: Mutex::new(HashMap::new()),
            bitmap_cache_entries,
        })
    }

    /// Where block `block`'s bitmap starts, `None` if it is not allocated here; checks that
    /// the block lies inside the file and clear of the metadata.
    fn block_start(&self, path: &Path, block: u64) -> Result<Option<u64>, FormatError> {
        let entry_at = self.table_offset + block * 4;
        let entry = usize::try_from(block)
            .ok()
            .and_then(|i| self.bat.get(i).copied())
            .ok_or_else(|| {
                FormatError::invalid(path, entry_at, "vhd BAT entry", "block past the BAT")
            })?;
        if entry == UNALLOCATED {
            return Ok(None);
        }
        let start = u64::from(entry) * SECTOR_BYTES;
        let end = start + self.bitmap_bytes + self.block_bytes;
        let overlaps = |a: u64, len: u64| start < a.saturating_add(len) && a < end;
        let table_bytes = u64::from(self.max_table_entries) * 4;
        if start < FOOTER_BYTES
            || end > self.data_limit
            || overlaps(self.header_offset, DYN_HEADER_BYTES)
            || overlaps(self.table_offset, table_bytes)
        {
            return Err(FormatError::invalid(
                path,
                entry_at,
                "vhd BAT entry",
                format!(
                    "block {block} at sector {entry} spans bytes {start}..{end}; expected after \
                     the footer copy, clear of the dynamic header and BAT, and ending by byte \
                     {} (the footer)",
                    self.data_limit
                ),
            ));
        }
        Ok(Some(start))
    }

    /// The sector bitmap of `block` (allocated at `start`), cached.
    fn bitmap(
        &self,
        path: &Path,
        file: &File,
        block: u64,
        start: u64,
    ) -> Result<Arc<Bitmap>, FormatError> {
        let key = u32::try_from(block).unwrap_or(u32::MAX);
        if let Some(b) = self.lock_bitmaps().get(&key) {
            return Ok(Arc::clone(b));
        }
        let used = usize::try_from((self.block_bytes / SECTOR_BYTES).div_ceil(8)).unwrap_or(0);
        let mut bits = vec![0u8; usize::try_from(self.bitmap_bytes).unwrap_or(0)];
        read_exact(file, path, &mut bits, start, "sector bitmap")?;
        bits.truncate(used);
        let all_set = bits.iter().all(|&b| b == 0xff);
        let bm = Arc::new(Bitmap { bits, all_set });
        let mut cache = self.lock_bitmaps();
        if cache.len() >= self.bitmap_cache_entries {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&bm));
        Ok(bm)
    }

    fn lock_bitmaps(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Bitmap>>> {
        // A panic while holding the lock leaves only a cache behind: keep using it.
        self.bitmaps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads `chunk` from block `block`, starting `in_block` bytes into it.
    fn read_block(
        &self,
        path: &Path,
        file: &File,
        block: u64,
        in_block: u64,
        chunk: &mut [u8],
    ) -> Result<(), FormatError> {
        let pos = block * self.block_bytes + in_block;
        let Some(start) = self.block_start(path, block)? else {
            return self.read_absent(chunk, pos);
        };
        let data = start + self.bitmap_bytes;
        let bm = self.bitmap(path, file, block, start)?;
        if bm.all_set {
            return read_exact(file, path, chunk, data + in_block, "block data");
        }
        // Runs of sectors with the same bit.
        let mut done = 0usize;
        while done < chunk.len() {
            let at = in_block + done as u64;
            let sector = at / SECTOR_BYTES;
            let set = bit(&bm.bits, sector);
            let mut run_end = (sector + 1) * SECTOR_BYTES;
            while run_end < in_block + chunk.len() as u64
                && bit(&bm.bits, run_end / SECTOR_BYTES) == set
            {
                run_end += SECTOR_BYTES;
            }
            let n = usize::try_from(run_end - at)
                .unwrap_or(usize::MAX)
                .min(chunk.len() - done);
            let Some(part) = chunk.get_mut(done..done + n) else {
                break;
            };
            if set {
                read_exact(file, path, part, data + at, "block data")?;
            } else {
                self.read_absent(part, pos + done as u64)?;
            }
            done += n;
        }
        Ok(())
    }

    /// Bytes this file does not hold: the parent's, or zeros.
    fn read_absent(&self, buf: &mut [u8], pos: u64) -> Result<(), FormatError> {
        let Some(parent) = &self.parent else {
            buf.fill(0);
            return Ok(());
        };
        let mut done = 0usize;
        while done < buf.len() {
            let Some(rest) = buf.get_mut(done..) else {
                break;
            };
            match parent.image.read_at(rest, pos + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(FormatError::Io {
                        file: parent.path.clone(),
                        what: format!("read the parent at byte {}", pos + done as u64),
                        source,
                    })
                }
            }
        }
        // Past the end of a smaller parent: zeros.
        if let Some(rest) = buf.get_mut(done..) {
            rest.fill(0);
        }
        Ok(())
    }
}

/// Whether sector `sector`'s bit is set (most significant bit first).
fn bit(bits: &[u8], sector: u64) -> bool {
    usize::try_from(sector / 8)
        .ok()
        .and_then(|i| bits.get(i))
        .is_some_and(|&b| b & (0x80u8 >> (sector % 8)) != 0)
}

/// Finds, checks and opens the parent of a differencing disk.
fn open_parent(
    path: &Path,
    file: &File,
    file_len: u64,
    h: &[u8],
    header_offset: u64,
    chain: &[PathBuf],
    notes: &mut Vec<String>,
) -> Result<Parent, FormatError> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let parent_id: [u8; 16] = array(h, 40);
    let unicode_name = h
        .get(64..576)
        .and_then(|b| utf16(b, true))
        .unwrap_or_default();
    let mut relative = Vec::new();
    let mut absolute = Vec::new();
    let mut names = Vec::new();
    for i in 0..LOCATOR_COUNT {
        let at = 576 + usize::try_from(i * 24).unwrap_or(0);
        let entry_at = header_offset + 576 + i * 24;
        let code: [u8; 4] = array(h, at);
        if code == [0; 4] {
            continue;
        }
        let len = be_u32(h, at + 8);
        let offset = be_u64(h, at + 16);
        let inside = offset
            .checked_add(u64::from(len))
            .is_some_and(|e| e <= file_len && offset >= FOOTER_BYTES);
        if len == 0 || len > MAX_LOCATOR_BYTES || !inside {
            notes.push(format!(
                "parent locator {i} ({}) at byte {entry_at} ignored: {len} bytes at byte \
                 {offset} is not inside the file or longer than {MAX_LOCATOR_BYTES}",
                fourcc(&code)
            ));
            continue;
        }
        let mut data = vec![0u8; usize::try_from(len).unwrap_or(0)];
        read_exact(file, path, &mut data, offset, "parent locator data")?;
        match &code {
            b"W2ru" | b"W2ku" => {
                let Some(text) = utf16(&data, false) else {
                    notes.push(format!("parent locator {i} is not UTF-16LE"));
                    continue;
                };
                let unix = text.replace('\\', "/");
                if &code == b"W2ru" {
                    relative.push(dir.join(unix.trim_start_matches("./")));
                } else if unix.starts_with('/') {
                    absolute.push(PathBuf::from(&unix));
                }
                names.extend(file_name_of(&text).map(str::to_string));
            }
            b"MacX" => {
                let text = String::from_utf8_lossy(&data);
                let text = text.trim_end_matches('\0');
                let p = text
                    .strip_prefix("file://localhost")
                    .or_else(|| text.strip_prefix("file://"))
                    .unwrap_or(text);
                let p = percent_decode(p);
                if p.starts_with('/') {
                    absolute.push(PathBuf::from(&p));
                } else {
                    relative.push(dir.join(&p));
                }
                names.extend(file_name_of(&p).map(str::to_string));
            }
            _ => notes.push(format!(
                "parent locator {i} has platform code {} (not used)",
                fourcc(&code)
            )),
        }
    }
    names.extend(file_name_of(&unicode_name).map(str::to_string));
    let candidates: Vec<PathBuf> = relative
        .into_iter()
        .chain(absolute)
        .chain(names.iter().map(|n| dir.join(n)))
        .collect();
    let Some(found) = candidates.iter().find(|p| p.is_file()).cloned() else {
        return Err(FormatError::invalid(
            path,
            header_offset + 576,
            "vhd dynamic header.parent_locator",
            format!(
                "no parent found for parent \"{unicode_name}\" (unique id {}); tried {:?}",
                uuid_text(&parent_id),
                candidates
            ),
        ));
    };
    // The parent's own unique id, from its footer, before opening it as a whole.
    let pfile = File::open(&found).map_err(FormatError::io(&found, "open the parent read-only"))?;
    let plen = pfile
        .metadata()
        .map_err(FormatError::io(&found, "read the parent's size"))?
        .len();
    let (pfooter, _, _) = read_footer(&found, &pfile, plen)?;
    if pfooter.unique_id != parent_id {
        return Err(FormatError::invalid(
            path,
            header_offset + 40,
            "vhd dynamic header.parent_unique_id",
            format!(
                "{} names parent unique id {}, but the parent found, {}, has unique id {}",
                path.display(),
                uuid_text(&parent_id),
                found.display(),
                uuid_text(&pfooter.unique_id)
            ),
        ));
    }
    notes.push(format!(
        "parent {} (unique id {})",
        found.display(),
        uuid_text(&parent_id)
    ));
    let image = crate::open_in_chain(&found, chain)?;
    Ok(Parent { image, path: found })
}

impl ReadAt for Vhd {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        crate::read_clipped(buf, offset_bytes, self.size_bytes, |dst, at| {
            self.read_inside(dst, at)
        })
    }

    fn size(&self) -> u64 {
        self.size_bytes
    }
}

impl Image for Vhd {
    fn info(&self) -> ImageInfo {
        let f = &self.footer;
        let variant = match f.disk_type {
            TYPE_FIXED => "fixed",
            TYPE_DYNAMIC => "dynamic",
            _ => "differencing",
        };
        let mut notes = vec![
            format!(
                "creator {} version {:#010x} on {}",
                fourcc(&f.creator_app),
                f.creator_version,
                fourcc(&f.creator_host)
            ),
            format!("unique id {}", uuid_text(&f.unique_id)),
            format!("original size {} bytes", f.original_size),
        ];
        if f.features & !0x2 != 0 {
            notes.push(format!("features {:#010x}", f.features));
        }
        notes.extend(self.notes.iter().cloned());
        let parent = self.sparse.as_ref().and_then(|s| s.parent.as_ref());
        ImageInfo {
            format: "vhd".to_string(),
            variant: Some(variant.to_string()),
            virtual_size_bytes: self.size_bytes,
            files: vec![self.path.clone()],
            backing: parent.map(|p| Box::new(p.image.info())),
            notes,
            ..ImageInfo::default()
        }
    }
}

#[cfg(test)]
#[path = "vhd_tests.rs"]
mod tests;
