//! Expert Witness Compression Format (EWF-E01, EnCase 1–7 and libewf's `ewfacquire`):
//! segment files `.E01`, `.E02`, … `.E99`, `.EAA`, … each a chain of sections.
//!
//! Layout (libyal's "Expert Witness Compression Format (EWF)" notes):
//! - a 13-byte file header: the signature `EVF\x09\x0d\x0a\xff\x00`, `0x01`, the segment
//!   number (u16, from 1) and `0x0000`;
//! - then sections, each opened by a 76-byte descriptor: type (16 bytes, NUL padded), the
//!   absolute offset of the next section (u64), the section size including the
//!   descriptor (u64), 40 bytes of padding and an Adler-32 of the first 72 bytes;
//! - `header`/`header2`: zlib-compressed case metadata (ASCII / UTF-16LE, tab separated);
//! - `volume`/`disk`/`data`: chunk count, sectors per chunk, bytes per sector, sector count;
//! - `sectors`: the chunk data; `table` (and its copy `table2`): a 24-byte header (entry
//!   count, base offset in EnCase 6+) and one u32 per chunk: bit 31 = compressed, bits
//!   0–30 = offset from the base; then an Adler-32 of the entries;
//! - `hash` (MD5), `digest` (MD5 + SHA-1), `error2` (acquisition read errors);
//! - `next` (another segment follows) or `done` (the last segment).
//!
//! A compressed chunk is a zlib stream of exactly the chunk size (the last chunk of the
//! media may be shorter); an uncompressed chunk is the raw bytes followed by their
//! Adler-32, which is checked. Tables are read lazily into a bounded cache and decoded
//! chunks go through a small bounded cache, so memory does not grow with the image.
//!
//! Refused as unsupported: logical evidence files (`LVF`, `.L01`), EWF2 (`.Ex01`,
//! `.Lx01`), and table entries using EnCase's 2 GiB offset overflow.

use crate::bytes::{le_u16, le_u32, le_u64};
use crate::{FormatError, Image, ImageInfo};
use flate2::{Decompress, FlushDecompress, Status};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use vestige_evidence::read_at::ReadAt;

/// The EWF-E01 / EWF-S01 segment file signature.
pub(crate) const EVF_SIGNATURE: &[u8; 8] = b"EVF\x09\x0d\x0a\xff\x00";
/// The EWF-L01 (logical evidence) signature: recognised only to be refused.
const LVF_SIGNATURE: &[u8; 8] = b"LVF\x09\x0d\x0a\xff\x00";
/// EWF2 signatures (EnCase 7 `.Ex01` / `.Lx01`): recognised only to be refused.
const EVF2_SIGNATURE: &[u8; 8] = b"EVF2\x0d\x0a\x81\x00";
const LEF2_SIGNATURE: &[u8; 8] = b"LEF2\x0d\x0a\x81\x00";

/// Bytes of the segment file header.
const FILE_HEADER_BYTES: u64 = 13;
/// Bytes of a section descriptor.
const DESCRIPTOR_BYTES: u64 = 76;
/// Bytes of a table section's header (before the entries).
const TABLE_HEADER_BYTES: u64 = 24;
/// Largest chunk accepted (sectors per chunk × bytes per sector).
const MAX_CHUNK_BYTES: u64 = 64 << 20;
/// Most sections walked in one segment file.
const MAX_SECTIONS_PER_SEGMENT: usize = 1 << 16;
/// Most segment files (`.E01`–`.E99`, then `.EAA`–`.ZZZ`).
pub(crate) const MAX_SEGMENTS: u32 = 99 + 26 * 26 * 22;
/// Most entries in one table section (real ones hold at most 65534).
const MAX_TABLE_ENTRIES: u64 = 1 << 18;
/// Table entries kept decoded in memory (16 bytes each: about 8 MiB).
const TABLE_CACHE_ENTRIES: usize = 1 << 19;
/// Bytes of decoded chunks kept in the chunk cache (at least two chunks are kept).
const CHUNK_CACHE_BYTES: usize = 4 << 20;
/// Largest span of stored chunk data read by one system call.
const READ_SPAN_BYTES: u64 = 4 << 20;
/// Largest compressed header section, and largest decompressed header text.
const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Error2 ranges listed one by one in the notes (the rest are counted).
const ERROR_RANGES_LISTED: usize = 32;
/// Scratch buffers (decompressor + read buffer) kept for reuse.
const SCRATCH_POOL: usize = 8;

/// Whether `head` (the first bytes of a file) is an EWF segment file (E01, and the
/// logical and EWF2 variants, which [`open_boxed`] refuses by name).
pub(crate) fn probe(head: &[u8]) -> bool {
    [EVF_SIGNATURE, LVF_SIGNATURE, EVF2_SIGNATURE, LEF2_SIGNATURE]
        .iter()
        .any(|sig| head.starts_with(*sig))
}

/// Opens `path` (see [`crate::open_in_chain`] for `chain`; EWF has no backing file).
pub(crate) fn open_boxed(path: &Path, _chain: &[PathBuf]) -> Result<Box<dyn Image>, FormatError> {
    Ok(Box::new(Ewf::open(path)?))
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Segment {
    fn read_exact(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<(), FormatError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| FormatError::Io {
                file: self.path.clone(),
                what: format!("read {what} at byte {offset}"),
                source,
            })
    }

    fn invalid(&self, offset: u64, field: &'static str, reason: impl Into<String>) -> FormatError {
        FormatError::invalid(&self.path, offset, field, reason)
    }
}

/// Where one table section's chunks are.
#[derive(Debug, Clone, Copy)]
struct TableRef {
    /// Index into `Ewf::segments`.
    segment: usize,
    /// Offset of the table section descriptor (for errors).
    section_offset: u64,
    /// The first chunk it describes.
    first_chunk: u64,
    /// How many chunks it describes.
    entry_count: u64,
    /// Offset of the entries array.
    entries_offset: u64,
    /// Whether an Adler-32 of the entries follows them.
    has_footer: bool,
    /// Base added to every entry's offset (EnCase 6+; 0 before).
    base_offset: u64,
    /// Bounds of the chunk data (the preceding `sectors` section's data).
    data_start: u64,
    data_end: u64,
}

/// Where one chunk's stored bytes are.
#[derive(Debug, Clone, Copy)]
struct ChunkLoc {
    offset: u64,
    stored_bytes: u32,
    compressed: bool,
}

/// Decoded tables, least recently used first.
#[derive(Debug, Default)]
struct TableCache {
    tables: VecDeque<(usize, Arc<Vec<ChunkLoc>>)>,
    entries: usize,
}

/// Decoded chunks, least recently used first.
#[derive(Debug, Default)]
struct ChunkCache {
    chunks: VecDeque<(u64, Arc<Vec<u8>>)>,
    bytes: usize,
}

/// A decompressor and a read buffer, reused across reads.
struct Scratch {
    inflate: Decompress,
    raw: Vec<u8>,
}

/// The media description from the `volume`/`disk`/`data` section.
#[derive(Debug, Clone, Copy)]
struct Volume {
    chunk_count: u64,
    sectors_per_chunk: u32,
    bytes_per_sector: u32,
    sector_count: u64,
    compression_level: Option<u8>,
    media_type: Option<u8>,
}

/// An EWF-E01 image (all its segment files), read-only.
pub struct Ewf {
    path: PathBuf,
    segments: Vec<Segment>,
    tables: Vec<TableRef>,
    chunk_bytes: u64,
    chunk_count: u64,
    media_bytes: u64,
    info: ImageInfo,
    table_cache: Mutex<TableCache>,
    chunk_cache: Mutex<ChunkCache>,
    scratch: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Ewf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ewf")
            .field("path", &self.path)
            .field("segments", &self.segments.len())
            .field("tables", &self.tables.len())
            .field("chunk_bytes", &self.chunk_bytes)
            .field("chunk_count", &self.chunk_count)
            .field("media_bytes", &self.media_bytes)
            .finish_non_exhaustive()
    }
}

/// Adler-32 (RFC 1950) of `data`.
#[must_use]
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // The most bytes summed before `b` could overflow a u32 (zlib's NMAX).
    const NMAX: usize = 5552;
    let mut a: u32 = 1;
    let mut b: u32 = 0;
    for block in data.chunks(NMAX) {
        for &byte in block {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The file name extension of segment `number` (1-based), in the style of `first` (its
/// first letter, `E`/`e`/`S`/`s`): `E01`…`E99`, then `EAA`…`EAZ`, `EBA`…`ZZZ`.
pub(crate) fn segment_extension(first: char, number: u32) -> Option<String> {
    if number == 0 {
        return None;
    }
    if number <= 99 {
        return Some(format!("{first}{number:02}"));
    }
    let index = number - 100;
    let lower = first.is_ascii_lowercase();
    let base = if lower { b'a' } else { b'A' };
    let first_byte = u8::try_from(u32::from(first) + index / 676).ok()?;
    let last_letter = if lower { b'z' } else { b'Z' };
    if first_byte > last_letter {
        return None;
    }
    let mid = base + u8::try_from((index / 26) % 26).ok()?;
    let low = base + u8::try_from(index % 26).ok()?;
    Some(String::from_utf8_lossy(&[first_byte, mid, low]).into_owned())
}

/// Splits `path` into the path without its segment extension and the extension's first
/// letter, if its name follows the `.E01` convention (`.E01`–`.E99`, `.EAA`–`.ZZZ`, and
/// `.s01` for SMART).
fn segment_naming(path: &Path) -> Option<(PathBuf, char)> {
    let ext = path.extension()?.to_str()?;
    let bytes = ext.as_bytes();
    let [a, b, c] = bytes else { return None };
    let first = char::from(*a);
    let digits = b.is_ascii_digit() && c.is_ascii_digit();
    let letters = b.is_ascii_alphabetic() && c.is_ascii_alphabetic();
    if !(a.is_ascii_alphabetic() && (digits || letters)) {
        return None;
    }
    // Segment 1 is always `.E01` (or `.s01` for SMART); names past `.EZZ` (`.FAA`…) are
    // not mapped back, so that an unrelated extension such as `.raw` is never taken for
    // a segment name.
    if !matches!(first, 'E' | 'e' | 'S' | 's') {
        return None;
    }
    Some((path.with_extension(""), first))
}

/// A section descriptor as read.
#[derive(Debug, Clone)]
struct Section {
    offset: u64,
    kind: String,
    next: u64,
    size: u64,
}

impl Section {
    fn data_start(&self) -> u64 {
        self.offset + DESCRIPTOR_BYTES
    }
    /// End of the section's data (`size` is checked against the file when read).
    fn end(&self) -> u64 {
        self.offset + self.size
    }
    fn data_len(&self) -> u64 {
        self.size.saturating_sub(DESCRIPTOR_BYTES)
    }
}

/// Reads and checks the section descriptor at `offset`.
fn read_section(seg: &Segment, offset: u64) -> Result<Section, FormatError> {
    let end = offset.checked_add(DESCRIPTOR_BYTES);
    if end.is_none_or(|e| e > seg.len) {
        return Err(seg.invalid(
            offset,
            "ewf section descriptor",
            format!(
                "a 76-byte descriptor at byte {offset} does not fit in the {}-byte file (truncated?)",
                seg.len
            ),
        ));
    }
    let mut d = [0u8; 76];
    seg.read_exact(&mut d, offset, "a section descriptor")?;
    let stored = le_u32(&d, 72);
    let computed = adler32(d.get(..72).unwrap_or_default());
    if stored != computed {
        return Err(seg.invalid(
            offset + 72,
            "ewf section descriptor.checksum",
            format!("Adler-32 {stored:#010x} stored, {computed:#010x} computed"),
        ));
    }
    let type_bytes = d.get(..16).unwrap_or_default();
    let type_len = type_bytes.iter().position(|&b| b == 0).unwrap_or(16);
    let kind = String::from_utf8_lossy(type_bytes.get(..type_len).unwrap_or_default()).into_owned();
    let next = le_u64(&d, 16);
    let size = le_u64(&d, 24);
    let terminal = kind == "done" || kind == "next";
    if !terminal {
        if size < DESCRIPTOR_BYTES {
            return Err(seg.invalid(
                offset + 24,
                "ewf section descriptor.size",
                format!("{kind:?} section of {size} bytes: smaller than its 76-byte descriptor"),
            ));
        }
        if offset.checked_add(size).is_none_or(|e| e > seg.len) {
            return Err(seg.invalid(
                offset + 24,
                "ewf section descriptor.size",
                format!(
                    "{kind:?} section of {size} bytes at byte {offset} runs past the end of the {}-byte file",
                    seg.len
                ),
            ));
        }
    }
    Ok(Section {
        offset,
        kind,
        next,
        size,
    })
}

/// What one segment file contributed while it was walked.
#[derive(Debug, Default)]
struct SegmentScan {
    ended_with_done: bool,
}

/// Metadata gathered across segments while opening.
#[derive(Debug, Default)]
struct OpenState {
    volume: Option<Volume>,
    tables: Vec<TableRef>,
    chunks_seen: u64,
    header_text: Option<String>,
    header2_text: Option<String>,
    md5: Option<String>,
    sha1: Option<String>,
    notes: Vec<String>,
    sections_seen: BTreeMap<String, u64>,
}

impl Ewf {
    /// Opens the EWF image whose segment file is `path`: the other segments are found by
    /// the naming convention (`x.E01`, `x.E02`, …), starting from segment 1.
    ///
    /// # Errors
    /// A [`FormatError`] naming the file, offset and field of the first bad structure; a
    /// missing segment names the file expected; L01 and EWF2 are
    /// [`FormatError::Unsupported`].
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let naming = segment_naming(path);
        let mut segments: Vec<Segment> = Vec::new();
        let mut state = OpenState::default();
        let mut number: u32 = 1;
        loop {
            let seg_path = match &naming {
                Some((stem, first)) => {
                    let ext = segment_extension(*first, number).ok_or_else(|| {
                        FormatError::invalid(
                            path,
                            0,
                            "ewf segment file",
                            format!("more than {MAX_SEGMENTS} segment files"),
                        )
                    })?;
                    stem.with_extension(ext)
                }
                None if number == 1 => path.to_path_buf(),
                None => {
                    return Err(FormatError::invalid(
                        path,
                        0,
                        "ewf segment file",
                        format!(
                            "segment {} ends with a \"next\" section but its name does not \
                             follow the .E01 convention, so segment {number} cannot be found",
                            number - 1
                        ),
                    ))
                }
            };
            let seg = open_segment(&seg_path, number, segments.last())?;
            let index = segments.len();
            segments.push(seg);
            let Some(seg) = segments.last() else { break };
            let scan = scan_segment(seg, index, &mut state)?;
            if scan.ended_with_done {
                break;
            }
            if number >= MAX_SEGMENTS {
                return Err(seg.invalid(
                    0,
                    "ewf segment file",
                    format!("more than {MAX_SEGMENTS} segment files"),
                ));
            }
            number += 1;
        }
        Self::finish(path, segments, state)
    }

    fn finish(path: &Path, segments: Vec<Segment>, state: OpenState) -> Result<Self, FormatError> {
        let first = segments.first().map_or(path, |s| s.path.as_path());
        let volume = state.volume.ok_or_else(|| {
            FormatError::invalid(
                first,
                FILE_HEADER_BYTES,
                "ewf volume section",
                "no volume, disk or data section in any segment",
            )
        })?;
        let chunk_bytes = u64::from(volume.sectors_per_chunk) * u64::from(volume.bytes_per_sector);
        let media_bytes = volume
            .sector_count
            .checked_mul(u64::from(volume.bytes_per_sector))
            .ok_or_else(|| {
                FormatError::invalid(
                    first,
                    0,
                    "ewf volume.sector_count",
                    "sector count × bytes per sector overflows 64 bits",
                )
            })?;
        let needed = media_bytes.div_ceil(chunk_bytes);
        if needed != volume.chunk_count {
            return Err(FormatError::invalid(
                first,
                0,
                "ewf volume.chunk_count",
                format!(
                    "{} chunks claimed, {needed} needed for {media_bytes} bytes in chunks of {chunk_bytes}",
                    volume.chunk_count
                ),
            ));
        }
        if state.chunks_seen != volume.chunk_count {
            let last = segments.last().map_or(path, |s| s.path.as_path());
            return Err(FormatError::invalid(
                last,
                0,
                "ewf table.entry_count",
                format!(
                    "the tables of all segments describe {} chunks, the volume section {}",
                    state.chunks_seen, volume.chunk_count
                ),
            ));
        }

        let mut info = ImageInfo {
            format: "e01".to_string(),
            variant: Some(
                if segments.len() > 1 || state.sections_seen.contains_key("header2") {
                    "ewf1 (EnCase)".to_string()
                } else {
                    "ewf1".to_string()
                },
            ),
            virtual_size_bytes: media_bytes,
            files: segments.iter().map(|s| s.path.clone()).collect(),
            ..ImageInfo::default()
        };
        if let Some(md5) = state.md5 {
            info.stored_hashes.insert("md5".to_string(), md5);
        }
        if let Some(sha1) = state.sha1 {
            info.stored_hashes.insert("sha1".to_string(), sha1);
        }
        if let Some(text) = state.header2_text.as_deref() {
            info.notes.extend(header_notes(text, true));
        } else if let Some(text) = state.header_text.as_deref() {
            info.notes.extend(header_notes(text, false));
        }
        info.notes.push(format!(
            "{} segment file(s), {} chunks of {} sectors × {} bytes",
            segments.len(),
            volume.chunk_count,
            volume.sectors_per_chunk,
            volume.bytes_per_sector
        ));
        if let Some(level) = volume.compression_level {
            info.notes.push(format!(
                "compression level: {}",
                match level {
                    0 => "none".to_string(),
                    1 => "fast".to_string(),
                    2 => "best".to_string(),
                    other => format!("unknown ({other})"),
                }
            ));
        }
        if let Some(media) = volume.media_type {
            info.notes.push(format!(
                "media type: {}",
                match media {
                    0 => "removable".to_string(),
                    1 => "fixed".to_string(),
                    3 => "optical".to_string(),
                    0x0e => "logical".to_string(),
                    0x10 => "memory".to_string(),
                    other => format!("unknown ({other:#04x})"),
                }
            ));
        }
        info.notes.extend(state.notes);

        Ok(Self {
            path: path.to_path_buf(),
            segments,
            tables: state.tables,
            chunk_bytes,
            chunk_count: volume.chunk_count,
            media_bytes,
            info,
            table_cache: Mutex::new(TableCache::default()),
            chunk_cache: Mutex::new(ChunkCache::default()),
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// Bytes of chunk `chunk` (all chunks are `chunk_bytes` but the media's last).
    fn chunk_len(&self, chunk: u64) -> u64 {
        let start = chunk.saturating_mul(self.chunk_bytes);
        self.media_bytes.saturating_sub(start).min(self.chunk_bytes)
    }

    /// The table holding `chunk` (an index into `self.tables`).
    fn table_of(&self, chunk: u64) -> Option<usize> {
        let i = self.tables.partition_point(|t| t.first_chunk <= chunk);
        let i = i.checked_sub(1)?;
        let t = self.tables.get(i)?;
        (chunk < t.first_chunk + t.entry_count).then_some(i)
    }

    /// The decoded entries of table `index`, from the cache or the file.
    fn table_entries(&self, index: usize) -> Result<Arc<Vec<ChunkLoc>>, FormatError> {
        {
            let mut cache = lock(&self.table_cache);
            if let Some(pos) = cache.tables.iter().position(|(i, _)| *i == index) {
                if let Some(hit) = cache.tables.remove(pos) {
                    let entries = Arc::clone(&hit.1);
                    cache.tables.push_back(hit);
                    return Ok(entries);
                }
            }
        }
        let entries = Arc::new(self.load_table(index)?);
        let mut cache = lock(&self.table_cache);
        cache.entries += entries.len();
        cache.tables.push_back((index, Arc::clone(&entries)));
        while cache.entries > TABLE_CACHE_ENTRIES && cache.tables.len() > 1 {
            if let Some((_, old)) = cache.tables.pop_front() {
                cache.entries = cache.entries.saturating_sub(old.len());
            }
        }
        Ok(entries)
    }

    /// Reads and checks table `index`'s entries: every chunk inside its sectors data, the
    /// compressed ones ascending (each ends where the next begins, the last at the end of
    /// the sectors data), the uncompressed ones holding the chunk and its Adler-32.
    fn load_table(&self, index: usize) -> Result<Vec<ChunkLoc>, FormatError> {
        let t = self.tables.get(index).copied().ok_or_else(|| {
            FormatError::invalid(&self.path, 0, "ewf table", format!("no table {index}"))
        })?;
        let seg = self.segment(t.segment)?;
        let count = usize::try_from(t.entry_count)
            .map_err(|_| seg.invalid(t.section_offset, "ewf table.entry_count", "too large"))?;
        let mut raw = vec![0u8; count * 4 + if t.has_footer { 4 } else { 0 }];
        seg.read_exact(&mut raw, t.entries_offset, "table entries")?;
        if t.has_footer {
            let entries_bytes = raw.get(..count * 4).unwrap_or_default();
            let stored = le_u32(&raw, count * 4);
            let computed = adler32(entries_bytes);
            if stored != computed {
                return Err(seg.invalid(
                    t.entries_offset + t.entry_count * 4,
                    "ewf table.entries_checksum",
                    format!("Adler-32 {stored:#010x} stored, {computed:#010x} computed"),
                ));
            }
        }
        let mut offsets = Vec::with_capacity(count);
        for i in 0..count {
            let entry = le_u32(&raw, i * 4);
            let entry_at = t.entries_offset + (i as u64) * 4;
            let offset = t
                .base_offset
                .checked_add(u64::from(entry & 0x7fff_ffff))
                .filter(|o| *o >= t.data_start && *o < t.data_end)
                .ok_or_else(|| {
                    seg.invalid(
                        entry_at,
                        "ewf table.entry",
                        format!(
                            "chunk {}: offset {:#x} + base {} is outside the chunk data \
                             [{}, {}) of the {}-byte segment",
                            t.first_chunk + i as u64,
                            entry & 0x7fff_ffff,
                            t.base_offset,
                            t.data_start,
                            t.data_end,
                            seg.len
                        ),
                    )
                })?;
            offsets.push((offset, entry & 0x8000_0000 != 0));
        }
        let mut locs = Vec::with_capacity(count);
        for (i, &(offset, compressed)) in offsets.iter().enumerate() {
            let chunk = t.first_chunk + i as u64;
            let entry_at = t.entries_offset + (i as u64) * 4;
            let chunk_len = self.chunk_len(chunk);
            let stored = if compressed {
                let end = offsets.get(i + 1).map_or(t.data_end, |n| n.0);
                let stored = end.checked_sub(offset).filter(|s| *s > 0).ok_or_else(|| {
                    seg.invalid(
                        entry_at,
                        "ewf table.entry",
                        format!(
                            "chunk {chunk}: compressed data at byte {offset} does not end \
                             before the next chunk's at byte {end} (entries not ascending)"
                        ),
                    )
                })?;
                // zlib never needs much more than the input; more is not a chunk.
                let cap = chunk_len.saturating_mul(2).saturating_add(1024);
                if stored > cap {
                    return Err(seg.invalid(
                        entry_at,
                        "ewf table.entry",
                        format!(
                            "chunk {chunk}: {stored} compressed bytes for a {chunk_len}-byte chunk"
                        ),
                    ));
                }
                stored
            } else {
                let stored = chunk_len + 4;
                if offset + stored > t.data_end {
                    return Err(seg.invalid(
                        entry_at,
                        "ewf table.entry",
                        format!(
                            "chunk {chunk}: {stored} uncompressed bytes at byte {offset} run \
                             past the chunk data's end at byte {}",
                            t.data_end
                        ),
                    ));
                }
                stored
            };
            locs.push(ChunkLoc {
                offset,
                stored_bytes: u32::try_from(stored).map_err(|_| {
                    seg.invalid(entry_at, "ewf table.entry", "chunk larger than 4 GiB")
                })?,
                compressed,
            });
        }
        Ok(locs)
    }

    fn segment(&self, index: usize) -> Result<&Segment, FormatError> {
        self.segments.get(index).ok_or_else(|| {
            FormatError::invalid(&self.path, 0, "ewf segment", format!("no segment {index}"))
        })
    }

    fn take_scratch(&self) -> Scratch {
        lock(&self.scratch).pop().unwrap_or_else(|| Scratch {
            inflate: Decompress::new(true),
            raw: Vec::new(),
        })
    }

    fn put_scratch(&self, scratch: Scratch) {
        let mut pool = lock(&self.scratch);
        if pool.len() < SCRATCH_POOL {
            pool.push(scratch);
        }
    }

    /// Decodes chunk `chunk` from its stored bytes `stored` into `out` (exactly the
    /// chunk's length).
    fn decode_chunk(
        &self,
        chunk: u64,
        seg: &Segment,
        loc: ChunkLoc,
        stored: &[u8],
        out: &mut [u8],
        inflate: &mut Decompress,
    ) -> Result<(), FormatError> {
        if loc.compressed {
            inflate.reset(true);
            let status = inflate.decompress(stored, out, FlushDecompress::Finish);
            let produced = inflate.total_out();
            match status {
                Ok(Status::StreamEnd) if produced == out.len() as u64 => Ok(()),
                Ok(Status::StreamEnd) => Err(seg.invalid(
                    loc.offset,
                    "ewf chunk",
                    format!(
                        "chunk {chunk} (segment {}): inflates to {produced} bytes, {} expected",
                        seg.path.display(),
                        out.len()
                    ),
                )),
                Ok(_) => Err(seg.invalid(
                    loc.offset,
                    "ewf chunk",
                    format!(
                        "chunk {chunk} (segment {}): zlib stream does not end within {} \
                         compressed bytes and {} decompressed",
                        seg.path.display(),
                        stored.len(),
                        out.len()
                    ),
                )),
                Err(e) => Err(seg.invalid(
                    loc.offset,
                    "ewf chunk",
                    format!(
                        "chunk {chunk} (segment {}): bad zlib data: {e}",
                        seg.path.display()
                    ),
                )),
            }
        } else {
            let n = out.len();
            let (data, sum) = (stored.get(..n), stored.get(n..n + 4));
            let (Some(data), Some(sum)) = (data, sum) else {
                return Err(seg.invalid(
                    loc.offset,
                    "ewf chunk",
                    format!(
                        "chunk {chunk}: {} stored bytes, {} expected",
                        stored.len(),
                        n + 4
                    ),
                ));
            };
            let stored_sum = le_u32(sum, 0);
            let computed = adler32(data);
            if stored_sum != computed {
                return Err(seg.invalid(
                    loc.offset + n as u64,
                    "ewf chunk.checksum",
                    format!(
                        "chunk {chunk} (segment {}): Adler-32 {stored_sum:#010x} stored, \
                         {computed:#010x} computed",
                        seg.path.display()
                    ),
                ));
            }
            out.copy_from_slice(data);
            Ok(())
        }
    }

    /// Location of chunk `chunk` and its segment.
    fn locate(&self, chunk: u64) -> Result<(usize, ChunkLoc), FormatError> {
        let ti = self.table_of(chunk).ok_or_else(|| {
            FormatError::invalid(
                &self.path,
                0,
                "ewf table",
                format!("no table holds chunk {chunk}"),
            )
        })?;
        let t = self.tables.get(ti).copied().ok_or_else(|| {
            FormatError::invalid(&self.path, 0, "ewf table", format!("no table {ti}"))
        })?;
        let entries = self.table_entries(ti)?;
        let i = usize::try_from(chunk - t.first_chunk).unwrap_or(usize::MAX);
        let loc = entries.get(i).copied().ok_or_else(|| {
            FormatError::invalid(
                &self.path,
                0,
                "ewf table",
                format!("chunk {chunk} not in table {ti}"),
            )
        })?;
        Ok((t.segment, loc))
    }

    /// Chunk `chunk` decoded, through the chunk cache.
    fn cached_chunk(&self, chunk: u64) -> Result<Arc<Vec<u8>>, FormatError> {
        {
            let mut cache = lock(&self.chunk_cache);
            if let Some(pos) = cache.chunks.iter().position(|(c, _)| *c == chunk) {
                if let Some(hit) = cache.chunks.remove(pos) {
                    let data = Arc::clone(&hit.1);
                    cache.chunks.push_back(hit);
                    return Ok(data);
                }
            }
        }
        let (si, loc) = self.locate(chunk)?;
        let seg = self.segment(si)?;
        let len = usize::try_from(self.chunk_len(chunk)).unwrap_or(0);
        let mut out = vec![0u8; len];
        let mut scratch = self.take_scratch();
        scratch.raw.resize(loc.stored_bytes as usize, 0);
        let result = seg
            .read_exact(&mut scratch.raw, loc.offset, "chunk data")
            .and_then(|()| {
                self.decode_chunk(
                    chunk,
                    seg,
                    loc,
                    &scratch.raw,
                    &mut out,
                    &mut scratch.inflate,
                )
            });
        self.put_scratch(scratch);
        result?;
        let data = Arc::new(out);
        let mut cache = lock(&self.chunk_cache);
        cache.bytes += data.len();
        cache.chunks.push_back((chunk, Arc::clone(&data)));
        while cache.bytes > CHUNK_CACHE_BYTES && cache.chunks.len() > 2 {
            if let Some((_, old)) = cache.chunks.pop_front() {
                cache.bytes = cache.bytes.saturating_sub(old.len());
            }
        }
        Ok(data)
    }

    /// Decodes whole chunks `first..` straight into `out` (which holds exactly whole
    /// chunks), reading runs of contiguous stored chunks with one call each. Returns the
    /// bytes written (all of `out` on success).
    fn read_whole_chunks(&self, first: u64, out: &mut [u8]) -> Result<(), FormatError> {
        let mut scratch = self.take_scratch();
        let result = self.read_whole_chunks_with(first, out, &mut scratch);
        self.put_scratch(scratch);
        result
    }

    fn read_whole_chunks_with(
        &self,
        first: u64,
        out: &mut [u8],
        scratch: &mut Scratch,
    ) -> Result<(), FormatError> {
        let mut chunk = first;
        let mut done = 0usize;
        while done < out.len() {
            let ti = self.table_of(chunk).ok_or_else(|| {
                FormatError::invalid(
                    &self.path,
                    0,
                    "ewf table",
                    format!("no table holds chunk {chunk}"),
                )
            })?;
            let t = self.tables.get(ti).copied().ok_or_else(|| {
                FormatError::invalid(&self.path, 0, "ewf table", format!("no table {ti}"))
            })?;
            let entries = self.table_entries(ti)?;
            let seg = self.segment(t.segment)?;
            // A run: chunks of this table, stored back to back, up to READ_SPAN_BYTES.
            let start_i = usize::try_from(chunk - t.first_chunk).unwrap_or(usize::MAX);
            let Some(head) = entries.get(start_i).copied() else {
                return Err(FormatError::invalid(
                    &seg.path,
                    t.section_offset,
                    "ewf table",
                    format!("chunk {chunk} not in its table"),
                ));
            };
            let mut run_end = head.offset + u64::from(head.stored_bytes);
            let mut out_bytes = self.chunk_len(chunk);
            let mut n = 1usize;
            while let Some(next) = entries.get(start_i + n) {
                let c = chunk + n as u64;
                let len = self.chunk_len(c);
                if next.offset != run_end
                    || run_end - head.offset + u64::from(next.stored_bytes) > READ_SPAN_BYTES
                    || done as u64 + out_bytes + len > out.len() as u64
                {
                    break;
                }
                run_end += u64::from(next.stored_bytes);
                out_bytes += len;
                n += 1;
            }
            let span = usize::try_from(run_end - head.offset).unwrap_or(usize::MAX);
            scratch.raw.resize(span, 0);
            seg.read_exact(&mut scratch.raw, head.offset, "chunk data")?;
            for k in 0..n {
                let c = chunk + k as u64;
                let Some(loc) = entries.get(start_i + k).copied() else {
                    break;
                };
                let from = usize::try_from(loc.offset - head.offset).unwrap_or(usize::MAX);
                let stored = scratch
                    .raw
                    .get(from..from + loc.stored_bytes as usize)
                    .unwrap_or_default();
                let len = usize::try_from(self.chunk_len(c)).unwrap_or(usize::MAX);
                let Some(dst) = out.get_mut(done..done + len) else {
                    return Err(FormatError::invalid(
                        &seg.path,
                        loc.offset,
                        "ewf chunk",
                        "output overrun",
                    ));
                };
                self.decode_chunk(c, seg, loc, stored, dst, &mut scratch.inflate)?;
                done += len;
            }
            chunk += n as u64;
        }
        Ok(())
    }

    fn read_inner(&self, buf: &mut [u8], offset: u64) -> Result<usize, FormatError> {
        if offset >= self.media_bytes || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.media_bytes - offset)
            .map_or(buf.len(), |left| left.min(buf.len()));
        let mut done = 0usize;
        while done < want {
            let pos = offset + done as u64;
            let chunk = pos / self.chunk_bytes;
            let within = usize::try_from(pos % self.chunk_bytes).unwrap_or(0);
            let chunk_len = usize::try_from(self.chunk_len(chunk)).unwrap_or(0);
            if chunk_len == 0 {
                break;
            }
            let left = want - done;
            if within == 0 && left >= chunk_len {
                // Whole chunks: decode straight into the caller's buffer.
                let mut whole = 0usize;
                let mut c = chunk;
                while c < self.chunk_count {
                    let len = usize::try_from(self.chunk_len(c)).unwrap_or(usize::MAX);
                    if whole + len > left {
                        break;
                    }
                    whole += len;
                    c += 1;
                }
                let Some(dst) = buf.get_mut(done..done + whole) else {
                    break;
                };
                self.read_whole_chunks(chunk, dst)?;
                done += whole;
            } else {
                let data = self.cached_chunk(chunk)?;
                let n = (chunk_len - within).min(left);
                let (Some(dst), Some(src)) =
                    (buf.get_mut(done..done + n), data.get(within..within + n))
                else {
                    break;
                };
                dst.copy_from_slice(src);
                done += n;
            }
        }
        Ok(done)
    }
}

impl ReadAt for Ewf {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        self.read_inner(buf, offset_bytes)
            .map_err(FormatError::into_io)
    }

    fn size(&self) -> u64 {
        self.media_bytes
    }
}

impl Image for Ewf {
    fn info(&self) -> ImageInfo {
        self.info.clone()
    }
}

/// Opens segment file `number` at `path` and checks its header.
fn open_segment(
    path: &Path,
    number: u32,
    previous: Option<&Segment>,
) -> Result<Segment, FormatError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound && number > 1 => {
            let prev = previous.map_or_else(PathBuf::new, |p| p.path.clone());
            return Err(FormatError::invalid(
                &prev,
                0,
                "ewf segment file",
                format!(
                    "segment {} ends with a \"next\" section but segment {number} ({}) is missing",
                    prev.display(),
                    path.display()
                ),
            ));
        }
        Err(source) => {
            return Err(FormatError::Io {
                file: path.to_path_buf(),
                what: "open the segment file".to_string(),
                source,
            })
        }
    };
    let len = file
        .metadata()
        .map_err(FormatError::io(path, "read its size"))?
        .len();
    let seg = Segment {
        path: path.to_path_buf(),
        file,
        len,
    };
    if len < FILE_HEADER_BYTES {
        return Err(seg.invalid(
            0,
            "ewf file header",
            format!("the file has {len} bytes, fewer than the 13-byte header"),
        ));
    }
    let mut h = [0u8; 13];
    seg.read_exact(&mut h, 0, "the file header")?;
    let sig = h.get(..8).unwrap_or_default();
    if sig == LVF_SIGNATURE {
        return Err(FormatError::Unsupported {
            file: path.to_path_buf(),
            what: "EWF logical evidence (LVF, .L01)".to_string(),
        });
    }
    if sig == EVF2_SIGNATURE || sig == LEF2_SIGNATURE {
        return Err(FormatError::Unsupported {
            file: path.to_path_buf(),
            what: "EWF version 2 (.Ex01/.Lx01)".to_string(),
        });
    }
    if sig != EVF_SIGNATURE {
        return Err(seg.invalid(
            0,
            "ewf file header.signature",
            format!("{sig:02x?} found, EVF\\x09\\x0d\\x0a\\xff\\x00 expected"),
        ));
    }
    let found = le_u16(&h, 9);
    if u32::from(found) != number {
        return Err(seg.invalid(
            9,
            "ewf file header.segment_number",
            format!("segment number {found} found, {number} expected from the file order"),
        ));
    }
    Ok(seg)
}

/// Walks the sections of `seg` (segment `index`), gathering tables and metadata.
fn scan_segment(
    seg: &Segment,
    index: usize,
    st: &mut OpenState,
) -> Result<SegmentScan, FormatError> {
    let mut offset = FILE_HEADER_BYTES;
    let mut sectors: Option<Section> = None;
    let mut table_seen_since_sectors = false;
    for _ in 0..MAX_SECTIONS_PER_SEGMENT {
        let s = read_section(seg, offset)?;
        *st.sections_seen.entry(s.kind.clone()).or_insert(0) += 1;
        match s.kind.as_str() {
            "done" => {
                return Ok(SegmentScan {
                    ended_with_done: true,
                })
            }
            "next" => {
                return Ok(SegmentScan {
                    ended_with_done: false,
                })
            }
            // Case metadata is reported, not needed to read: a damaged header is a note.
            "header" if st.header_text.is_none() => match read_header(seg, &s, false) {
                Ok(text) => st.header_text = Some(text),
                Err(e) => st.notes.push(format!("header section unreadable: {e}")),
            },
            "header2" if st.header2_text.is_none() => match read_header(seg, &s, true) {
                Ok(text) => st.header2_text = Some(text),
                Err(e) => st.notes.push(format!("header2 section unreadable: {e}")),
            },
            "volume" | "disk" | "data" => {
                let v = read_volume(seg, &s)?;
                match st.volume {
                    None => st.volume = Some(v),
                    Some(old)
                        if old.chunk_count != v.chunk_count
                            || old.sector_count != v.sector_count
                            || old.sectors_per_chunk != v.sectors_per_chunk
                            || old.bytes_per_sector != v.bytes_per_sector =>
                    {
                        return Err(seg.invalid(
                            s.data_start(),
                            "ewf data section",
                            format!(
                                "describes {} chunks of {}×{} bytes, {} sectors; the first \
                                 volume section {} chunks of {}×{}, {} sectors",
                                v.chunk_count,
                                v.sectors_per_chunk,
                                v.bytes_per_sector,
                                v.sector_count,
                                old.chunk_count,
                                old.sectors_per_chunk,
                                old.bytes_per_sector,
                                old.sector_count
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
            "sectors" => {
                sectors = Some(s.clone());
                table_seen_since_sectors = false;
            }
            "table" => {
                read_table(
                    seg,
                    index,
                    &s,
                    sectors.as_ref(),
                    table_seen_since_sectors,
                    st,
                )?;
                table_seen_since_sectors = true;
            }
            "hash" => read_hash(seg, &s, st)?,
            "digest" => read_digest(seg, &s, st)?,
            "error2" => read_error2(seg, &s, st)?,
            "ltree" | "ltypes" => {
                return Err(FormatError::Unsupported {
                    file: seg.path.clone(),
                    what: "EWF logical evidence (ltree section)".to_string(),
                })
            }
            // table2 (a copy of table), session, xheader, xhash, ... are not needed.
            _ => {}
        }
        if s.next <= s.offset {
            return Err(seg.invalid(
                s.offset + 16,
                "ewf section descriptor.next",
                format!(
                    "{:?} section at byte {} points back to byte {} (loop)",
                    s.kind, s.offset, s.next
                ),
            ));
        }
        if s.next < s.offset + DESCRIPTOR_BYTES || s.next > seg.len {
            return Err(seg.invalid(
                s.offset + 16,
                "ewf section descriptor.next",
                format!(
                    "{:?} section at byte {}: next section at byte {} is inside this descriptor \
                     or past the end of the {}-byte file",
                    s.kind, s.offset, s.next, seg.len
                ),
            ));
        }
        offset = s.next;
    }
    Err(seg.invalid(
        offset,
        "ewf section descriptor",
        format!("more than {MAX_SECTIONS_PER_SEGMENT} sections without a done or next section"),
    ))
}

/// Reads a section's data (bounded by `cap`).
fn section_data(
    seg: &Segment,
    s: &Section,
    cap: u64,
    field: &'static str,
) -> Result<Vec<u8>, FormatError> {
    let len = s.data_len();
    if len > cap {
        return Err(seg.invalid(
            s.offset + 24,
            field,
            format!("{} bytes of data, at most {cap} expected", len),
        ));
    }
    let mut data = vec![0u8; usize::try_from(len).unwrap_or(0)];
    seg.read_exact(&mut data, s.data_start(), "section data")?;
    Ok(data)
}

fn read_header(seg: &Segment, s: &Section, utf16: bool) -> Result<String, FormatError> {
    let data = section_data(seg, s, MAX_HEADER_BYTES, "ewf header section.size")?;
    let mut text = Vec::new();
    flate2::read::ZlibDecoder::new(data.as_slice())
        .take(MAX_HEADER_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| {
            seg.invalid(
                s.data_start(),
                "ewf header section",
                format!("bad zlib data: {e}"),
            )
        })?;
    if utf16 {
        let units: Vec<u16> = crate::bytes::utf16le_units(&text).collect();
        let s = String::from_utf16_lossy(&units);
        Ok(s.trim_start_matches('\u{feff}').to_string())
    } else {
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian; H. Hinnant).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A header2 date (seconds since 1970, UTC) as RFC 3339.
fn unix_to_rfc3339(value: &str) -> Option<String> {
    let secs: i64 = value.trim().parse().ok()?;
    if !(0..=253_402_300_799).contains(&secs) {
        return None;
    }
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    Some(format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    ))
}

/// Notes from the header text: the `main` category's keys and values.
fn header_notes(text: &str, header2: bool) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let Some(main) = lines.iter().position(|l| *l == "main") else {
        return vec!["header: no main category".to_string()];
    };
    let (Some(keys), Some(values)) = (lines.get(main + 1), lines.get(main + 2)) else {
        return vec!["header: main category without values".to_string()];
    };
    let mut notes = Vec::new();
    for (key, value) in keys.split('\t').zip(values.split('\t')) {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let label = match key {
            "c" => "case number",
            "n" => "evidence number",
            "e" => "examiner",
            "a" => "description",
            "t" => "notes",
            "md" => "model",
            "sn" => "serial number",
            "av" => "software version",
            "ov" => "operating system",
            "l" => "device label",
            "pid" => "process identifier",
            "dc" => "unknown (dc)",
            "ext" => "extents",
            "m" | "u" => {
                let label = if key == "m" {
                    "acquired"
                } else {
                    "system date"
                };
                let shown = if header2 {
                    unix_to_rfc3339(value).unwrap_or_else(|| value.to_string())
                } else {
                    format!("{value} (local time of the acquiring machine)")
                };
                notes.push(format!("{label}: {shown}"));
                continue;
            }
            // The password hash and compression flag are not shown.
            "p" | "r" => continue,
            _ => {
                notes.push(format!("header {key}: {value}"));
                continue;
            }
        };
        notes.push(format!("{label}: {value}"));
    }
    notes
}

fn read_volume(seg: &Segment, s: &Section) -> Result<Volume, FormatError> {
    let data = section_data(seg, s, 1 << 16, "ewf volume section.size")?;
    let at = s.data_start();
    let v = if data.len() >= 1052 {
        let stored = le_u32(&data, 1048);
        let computed = adler32(data.get(..1048).unwrap_or_default());
        if stored != computed {
            return Err(seg.invalid(
                at + 1048,
                "ewf volume.checksum",
                format!("Adler-32 {stored:#010x} stored, {computed:#010x} computed"),
            ));
        }
        Volume {
            chunk_count: u64::from(le_u32(&data, 4)),
            sectors_per_chunk: le_u32(&data, 8),
            bytes_per_sector: le_u32(&data, 12),
            sector_count: le_u64(&data, 16),
            compression_level: data.get(52).copied(),
            media_type: data.first().copied(),
        }
    } else if data.len() >= 94 {
        // EWF-S01 (SMART) volume: 32-bit sector count.
        let stored = le_u32(&data, 90);
        let computed = adler32(data.get(..90).unwrap_or_default());
        if stored != computed {
            return Err(seg.invalid(
                at + 90,
                "ewf volume.checksum",
                format!("Adler-32 {stored:#010x} stored, {computed:#010x} computed"),
            ));
        }
        Volume {
            chunk_count: u64::from(le_u32(&data, 4)),
            sectors_per_chunk: le_u32(&data, 8),
            bytes_per_sector: le_u32(&data, 12),
            sector_count: u64::from(le_u32(&data, 16)),
            compression_level: None,
            media_type: None,
        }
    } else {
        return Err(seg.invalid(
            at,
            "ewf volume section.size",
            format!(
                "{} bytes of data, 1052 (or 94 for SMART) expected",
                data.len()
            ),
        ));
    };
    if v.sectors_per_chunk == 0 || v.bytes_per_sector == 0 {
        return Err(seg.invalid(
            at + 8,
            "ewf volume.sectors_per_chunk",
            format!(
                "{} sectors per chunk of {} bytes: both must be non-zero",
                v.sectors_per_chunk, v.bytes_per_sector
            ),
        ));
    }
    let chunk = u64::from(v.sectors_per_chunk) * u64::from(v.bytes_per_sector);
    if chunk > MAX_CHUNK_BYTES {
        return Err(seg.invalid(
            at + 8,
            "ewf volume.sectors_per_chunk",
            format!(
                "chunks of {} × {} = {chunk} bytes, at most {MAX_CHUNK_BYTES} accepted",
                v.sectors_per_chunk, v.bytes_per_sector
            ),
        ));
    }
    let Some(media_bytes) = v.sector_count.checked_mul(u64::from(v.bytes_per_sector)) else {
        return Err(seg.invalid(
            at + 16,
            "ewf volume.sector_count",
            format!(
                "{} sectors × {} bytes overflows 64 bits",
                v.sector_count, v.bytes_per_sector
            ),
        ));
    };
    let needed = media_bytes.div_ceil(chunk);
    if needed != v.chunk_count {
        return Err(seg.invalid(
            at + 4,
            "ewf volume.chunk_count",
            format!(
                "{} chunks claimed, {needed} needed for {} sectors of {} bytes in chunks of \
                 {} sectors",
                v.chunk_count, v.sector_count, v.bytes_per_sector, v.sectors_per_chunk
            ),
        ));
    }
    Ok(v)
}

fn read_table(
    seg: &Segment,
    index: usize,
    s: &Section,
    sectors: Option<&Section>,
    table_seen_since_sectors: bool,
    st: &mut OpenState,
) -> Result<(), FormatError> {
    let at = s.data_start();
    if s.data_len() < TABLE_HEADER_BYTES {
        return Err(seg.invalid(
            at,
            "ewf table section.size",
            format!(
                "{} bytes of data, fewer than the 24-byte table header",
                s.data_len()
            ),
        ));
    }
    let mut h = [0u8; 24];
    seg.read_exact(&mut h, at, "a table header")?;
    let stored = le_u32(&h, 20);
    let computed = adler32(h.get(..20).unwrap_or_default());
    if stored != computed {
        return Err(seg.invalid(
            at + 20,
            "ewf table.checksum",
            format!("Adler-32 {stored:#010x} stored, {computed:#010x} computed"),
        ));
    }
    let count = u64::from(le_u32(&h, 0));
    let base_offset = le_u64(&h, 8);
    let room = (s.data_len() - TABLE_HEADER_BYTES) / 4;
    if count == 0 || count > room || count > MAX_TABLE_ENTRIES {
        return Err(seg.invalid(
            at,
            "ewf table.entry_count",
            format!(
                "{count} entries: the section holds at most {room}, the reader accepts 1 to \
                 {MAX_TABLE_ENTRIES}"
            ),
        ));
    }
    let entries_offset = at + TABLE_HEADER_BYTES;
    let entries_end = entries_offset + count * 4;
    let (data_start, data_end, has_footer) = match sectors {
        Some(sec) if !table_seen_since_sectors => {
            (sec.data_start(), sec.end(), entries_end + 4 <= s.end())
        }
        Some(sec) => {
            // A second table for the same sectors section: EnCase 6+ writes one table
            // per sectors section, so this is a copy or a damaged file.
            return Err(seg.invalid(
                s.offset,
                "ewf table section",
                format!(
                    "second table for the sectors section at byte {} (one expected)",
                    sec.offset
                ),
            ));
        }
        // EnCase 1 / SMART: the chunks follow the entries inside the table section.
        None => (entries_end, s.end(), false),
    };
    st.tables.push(TableRef {
        segment: index,
        section_offset: s.offset,
        first_chunk: st.chunks_seen,
        entry_count: count,
        entries_offset,
        has_footer,
        base_offset,
        data_start,
        data_end,
    });
    st.chunks_seen = st
        .chunks_seen
        .checked_add(count)
        .ok_or_else(|| seg.invalid(at, "ewf table.entry_count", "total chunk count overflows"))?;
    if st.tables.len() > (1 << 20) {
        return Err(seg.invalid(s.offset, "ewf table section", "more than 2^20 tables"));
    }
    Ok(())
}

fn read_hash(seg: &Segment, s: &Section, st: &mut OpenState) -> Result<(), FormatError> {
    let data = section_data(seg, s, 4096, "ewf hash section.size")?;
    let (Some(md5), Some(head)) = (data.get(..16), data.get(..32)) else {
        st.notes
            .push(format!("hash section at byte {} too short", s.offset));
        return Ok(());
    };
    let stored = le_u32(&data, 32);
    if data.len() >= 36 && stored != adler32(head) {
        st.notes.push(format!(
            "hash section at byte {} ({}): checksum mismatch; MD5 {} not trusted",
            s.offset,
            seg.path.display(),
            hex::encode(md5)
        ));
        return Ok(());
    }
    if st.md5.is_none() {
        st.md5 = Some(hex::encode(md5));
    }
    Ok(())
}

fn read_digest(seg: &Segment, s: &Section, st: &mut OpenState) -> Result<(), FormatError> {
    let data = section_data(seg, s, 4096, "ewf digest section.size")?;
    let (Some(md5), Some(sha1), Some(head)) = (data.get(..16), data.get(16..36), data.get(..76))
    else {
        st.notes
            .push(format!("digest section at byte {} too short", s.offset));
        return Ok(());
    };
    if data.len() >= 80 && le_u32(&data, 76) != adler32(head) {
        st.notes.push(format!(
            "digest section at byte {} ({}): checksum mismatch; MD5 {} SHA-1 {} not trusted",
            s.offset,
            seg.path.display(),
            hex::encode(md5),
            hex::encode(sha1)
        ));
        return Ok(());
    }
    // The digest section is authoritative over the hash section.
    if md5.iter().any(|&b| b != 0) {
        st.md5 = Some(hex::encode(md5));
    }
    if sha1.iter().any(|&b| b != 0) {
        st.sha1 = Some(hex::encode(sha1));
    }
    Ok(())
}

fn read_error2(seg: &Segment, s: &Section, st: &mut OpenState) -> Result<(), FormatError> {
    let data = section_data(seg, s, 16 << 20, "ewf error2 section.size")?;
    let count = usize::try_from(le_u32(&data, 0)).unwrap_or(usize::MAX);
    let room = data.len().saturating_sub(520) / 8;
    if count > room {
        return Err(seg.invalid(
            s.data_start(),
            "ewf error2.entry_count",
            format!("{count} entries, the section holds at most {room}"),
        ));
    }
    let mut listed = Vec::new();
    let mut sectors_total: u64 = 0;
    for i in 0..count {
        let first = le_u32(&data, 520 + i * 8);
        let n = le_u32(&data, 524 + i * 8);
        sectors_total += u64::from(n);
        if listed.len() < ERROR_RANGES_LISTED {
            listed.push(format!("{first}+{n}"));
        }
    }
    st.notes.push(format!(
        "acquisition read errors (error2): {count} range(s), {sectors_total} sector(s): {}{}",
        listed.join(", "),
        if count > ERROR_RANGES_LISTED {
            ", …"
        } else {
            ""
        }
    ));
    Ok(())
}

#[cfg(test)]
#[path = "ewf_tests.rs"]
mod tests;
