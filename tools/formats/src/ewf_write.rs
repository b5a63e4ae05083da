//! An EWF-E01 writer: the EnCase 6 segment files `ewfacquire -f encase6` writes (the
//! default lab format), from media bytes streamed to it in order.
//!
//! The layout follows libyal's "Expert Witness Compression Format (EWF)" notes and what
//! `ewfacquire` 20140813 writes byte for byte (section order, header text, descriptor
//! fields), checked by `ewfverify`, `ewfinfo` and `ewfexport` and by our reader
//! ([`crate::ewf`]):
//! - segment 1: file header, `header2` twice (UTF-16LE, zlib), `header` (ASCII, zlib),
//!   `volume`; later segments open with `data` (a copy of `volume`);
//! - then groups of `sectors` (the stored chunks), `table` and `table2` (identical: entry
//!   count, base offset = the `sectors` descriptor's offset, one u32 per chunk with bit 31
//!   set when the chunk is zlib-compressed, each followed by an Adler-32). A group is
//!   closed at libewf's EnCase 6 limit of 65534 entries, or before an offset would not fit
//!   in the entries' 31 bits;
//! - a segment that is not the last ends with `next`; the last with `data` (only when it
//!   is also the first, as libewf does), `error2` (if sectors were marked unreadable),
//!   `digest` (MD5 + SHA-1), `hash` (MD5) and `done`. `next` and `done` point at
//!   themselves with size 0, as ewfacquire writes them.
//!
//! A chunk is stored compressed only if its zlib stream is smaller than the chunk;
//! otherwise it is stored raw followed by its Adler-32 (libewf's rule). Compression runs
//! on worker threads (a bounded number of chunks in flight, written in order); MD5 and
//! SHA-1 run on their own thread over the bytes in order. Memory is bounded by the chunks
//! in flight: at most twice the threads plus two, and at most 256 MiB of chunk data.
//!
//! Refused at [`EwfWriter::create`]: an existing file, a name not ending in `.E01`,
//! zero-size media (ewfacquire refuses it too), a media size that is not a whole number
//! of sectors (ewfacquire silently drops the tail, and ewfverify then fails), geometry
//! the volume section cannot hold, and metadata longer than [`MAX_FIELD_CHARS`]. Tabs and
//! line breaks in metadata are replaced by spaces; the ASCII `header` gets `?` for
//! characters outside ASCII (`header2` keeps them). The ASCII header's dates are written
//! in UTC (libewf writes the acquiring machine's local time; `header2`, which readers
//! prefer, holds Unix seconds either way).
//!
//! On an error the writer is unusable; the segment files written so far are left in
//! place (they are not a valid image) for the caller to remove or keep as evidence of
//! the attempt.

use crate::ewf::{adler32, civil_from_days, segment_extension, EVF_SIGNATURE, MAX_SEGMENTS};
use crate::FormatError;
use flate2::{Compress, Compression, FlushCompress, Status};
use md5::Md5;
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Bytes of a section descriptor.
const DESCRIPTOR_BYTES: u64 = 76;
/// Bytes of the `volume`/`data` section's data (EnCase 5+ layout, Adler-32 at 1048).
const VOLUME_DATA_BYTES: usize = 1052;
/// Most entries in one table: libewf's limit for EnCase 6 segment files.
pub const MAX_TABLE_ENTRIES: usize = 65_534;
/// Table entries hold 31-bit offsets from the base: a `sectors` section's chunks end
/// before this many bytes from its descriptor.
const MAX_SECTORS_SPAN_BYTES: u64 = 0x7fff_ffff;
/// `data` + `digest` + `hash` + `done`: kept free in every segment, since whether a
/// segment is the last is known only when the data ends.
const TRAILER_RESERVE_BYTES: u64 = (DESCRIPTOR_BYTES + 1052) + (76 + 80) + (76 + 36) + 76;
/// ewfacquire's default segment size (1.4 GiB).
pub const DEFAULT_SEGMENT_BYTES: u64 = 1_503_238_553;
/// Longest metadata value, in characters.
pub const MAX_FIELD_CHARS: usize = 512;
/// Largest chunk (sectors per chunk × bytes per sector) accepted.
const MAX_CHUNK_BYTES: u64 = 8 << 20;
/// Most unreadable ranges recorded (after merging adjacent ones).
const MAX_ERROR_RANGES: usize = 1 << 20;
/// Most compression threads.
const MAX_THREADS: usize = 64;
/// Chunk bytes handed to the compression threads and not yet written, at most (the
/// in-flight count is also at most twice the threads plus two).
const IN_FLIGHT_BYTES: u64 = 256 << 20;
/// Buffered bytes per segment file between system calls.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// The name of segment `number` (from 1) of the set whose first segment is `first`
/// (`….E01` → `….E02` … `….E99`, `….EAA` …); None past the last name EWF allows or when
/// `first` does not end in `.E01`/`.e01`.
pub fn segment_path(first: &Path, number: u32) -> Option<PathBuf> {
    let letter = match first.extension().and_then(|e| e.to_str()) {
        Some("E01") => 'E',
        Some("e01") => 'e',
        _ => return None,
    };
    Some(first.with_extension(segment_extension(letter, number)?))
}

/// Removes `first` (`….E01`) and the segments that follow it, stopping at the first name
/// that does not exist: what a failed write leaves. Only for sets this process created.
pub fn remove_segment_set(first: &Path) {
    for n in 1..=u32::MAX {
        match segment_path(first, n) {
            Some(p) if p.exists() => {
                let _ = std::fs::remove_file(&p);
            }
            _ => break,
        }
    }
}

/// Case metadata written into the `header2` and `header` sections (what `ewfinfo` shows
/// under "Acquiry information").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EwfMetadata {
    /// Case number (`c`).
    pub case_number: String,
    /// Evidence number (`n`).
    pub evidence_number: String,
    /// Description (`a`).
    pub description: String,
    /// Examiner name (`e`).
    pub examiner_name: String,
    /// Notes (`t`).
    pub notes: String,
    /// Acquisition date (`m`), UTC Unix seconds.
    pub acquisition_date_unix: i64,
    /// System date (`u`), UTC Unix seconds.
    pub system_date_unix: i64,
    /// Acquiry software, e.g. `vestige`; written with the version into `av` (EWF1 has no
    /// field of its own for the name).
    pub acquiry_software: String,
    /// Acquiry software version.
    pub acquiry_software_version: String,
    /// Acquiry operating system (`ov`).
    pub acquiry_os: String,
    /// The device's model (`md`, header2 only).
    pub model: String,
    /// The device's serial number (`sn`, header2 only).
    pub serial_number: String,
}

/// How chunks are compressed (deflate, as zlib streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EwfCompression {
    /// Every chunk stored raw with its Adler-32.
    None,
    /// Deflate tuned to libewf's "fast" (zlib level 1) in size: zlib-rs level 2.
    Fast,
    /// zlib level 9 (libewf's "best").
    Best,
}

/// The volume section's media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EwfMediaType {
    /// A fixed disk (1).
    Fixed,
    /// A removable disk (0).
    Removable,
}

/// How the image is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EwfOptions {
    /// Target size of a segment file in bytes. Room is kept for the tables and the
    /// closing sections but not for `error2`, which may push the last segment past it;
    /// a segment always holds at least one chunk, so a size below one chunk and its
    /// sections gives one chunk per segment.
    pub segment_bytes: u64,
    /// Sectors per chunk (1 to 32768; libewf's default 64).
    pub sectors_per_chunk: u32,
    /// Bytes per sector (512, 1024, 2048 or 4096).
    pub bytes_per_sector: u32,
    /// Chunk compression.
    pub compression: EwfCompression,
    /// Media type.
    pub media_type: EwfMediaType,
    /// Whether the media is a physical device (volume media flag 0x02; ewfacquire sets
    /// it by default).
    pub physical: bool,
    /// Compression threads (0: the available parallelism).
    pub threads: usize,
}

impl Default for EwfOptions {
    fn default() -> Self {
        Self {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            sectors_per_chunk: 64,
            bytes_per_sector: 512,
            compression: EwfCompression::Fast,
            media_type: EwfMediaType::Fixed,
            physical: true,
            threads: 0,
        }
    }
}

/// What [`EwfWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EwfSummary {
    /// MD5 of the media bytes (hex), as stored in the `digest` and `hash` sections.
    pub md5: String,
    /// SHA-1 of the media bytes (hex), as stored in the `digest` section.
    pub sha1: String,
    /// The segment files, in order.
    pub segments: Vec<PathBuf>,
    /// Chunks written.
    pub chunk_count: u64,
    /// Of those, chunks stored compressed.
    pub compressed_chunks: u64,
    /// Media bytes.
    pub media_bytes: u64,
}

/// The media geometry, checked.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    media_bytes: u64,
    sector_bytes: u64,
    chunk_bytes: u64,
    chunk_count: u64,
}

impl Geometry {
    /// Bytes of chunk `index` (the last may be short).
    fn chunk_len(&self, index: u64) -> u64 {
        let start = index.saturating_mul(self.chunk_bytes);
        self.media_bytes.saturating_sub(start).min(self.chunk_bytes)
    }
}

/// One chunk's stored form.
#[derive(Debug)]
struct Encoded {
    seq: u64,
    bytes: Vec<u8>,
    compressed: bool,
}

/// A chunk handed to a worker.
#[derive(Debug)]
struct Job {
    seq: u64,
    data: Arc<Vec<u8>>,
}

/// Compression workers and the hashing thread.
#[derive(Debug)]
struct Pipeline {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Encoded>,
    workers: Vec<JoinHandle<()>>,
    hash_tx: Option<SyncSender<Arc<Vec<u8>>>>,
    hasher: Option<JoinHandle<([u8; 16], [u8; 20])>>,
    /// Chunks handed out and not yet written.
    in_flight: usize,
    max_in_flight: usize,
    /// Results that arrived before their predecessors.
    reorder: BTreeMap<u64, Encoded>,
}

/// The segment file being written.
#[derive(Debug)]
struct SegmentFile {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes written so far (the offset of the next byte).
    pos: u64,
    /// Chunks stored in it.
    chunks: u64,
}

/// The open `sectors` section: its descriptor's offset and its table entries.
#[derive(Debug)]
struct SectorsGroup {
    start: u64,
    entries: Vec<u32>,
}

/// Writes one EWF-E01 image; see the module documentation.
#[derive(Debug)]
pub struct EwfWriter {
    first_path: PathBuf,
    stem: PathBuf,
    first_letter: char,
    geometry: Geometry,
    segment_bytes: u64,
    volume: Vec<u8>,
    segment_paths: Vec<PathBuf>,
    segment: Option<SegmentFile>,
    group: Option<SectorsGroup>,
    /// The chunk being filled.
    pending: Vec<u8>,
    received_bytes: u64,
    dispatched_chunks: u64,
    written_chunks: u64,
    compressed_chunks: u64,
    pipeline: Pipeline,
    /// Unreadable sector ranges (first, count), merged when adjacent.
    unreadable: Vec<(u64, u64)>,
    failed: bool,
}

impl EwfWriter {
    /// Creates the first segment file `first_segment_path` (named `….E01` or `….e01`)
    /// for `media_bytes` bytes of media, writing its header sections, and starts the
    /// compression and hashing threads.
    ///
    /// # Errors
    /// An existing file (never overwritten), a bad name, geometry or metadata (see the
    /// module documentation), or an I/O error.
    pub fn create(
        first_segment_path: &Path,
        media_bytes: u64,
        metadata: &EwfMetadata,
        options: &EwfOptions,
    ) -> Result<Self, FormatError> {
        let path = first_segment_path;
        let first_letter = match path.extension().and_then(|e| e.to_str()) {
            Some("E01") => 'E',
            Some("e01") => 'e',
            _ => {
                return Err(FormatError::invalid(
                    path,
                    0,
                    "ewf writer.path",
                    "the first segment's name must end in .E01 (later segments are .E02 …)",
                ))
            }
        };
        let geometry = check_geometry(path, media_bytes, options)?;
        let header2 = zlib(&utf16le_with_bom(&header2_text(path, metadata)?));
        let header = zlib(header_text(path, metadata)?.as_bytes());
        let volume = volume_data(path, geometry, options)?;
        check_segment_count(
            path,
            geometry,
            options,
            (header.len() + 2 * header2.len()) as u64,
        )?;
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        }
        .min(MAX_THREADS);
        let level = match options.compression {
            EwfCompression::None => None,
            // zlib-rs's level 1 is a quick, single-pass match finder (as zlib-ng's): 11 %
            // larger than libewf's "fast" (zlib's level 1) on the benchmark corpus. Its
            // level 2 matches zlib's level 1 in size (561 against 567 MiB for 2 GiB) and
            // is still faster than ewfacquire (bench/formats.sh).
            EwfCompression::Fast => Some(Compression::new(2)),
            EwfCompression::Best => Some(Compression::best()),
        };
        let pipeline = Pipeline::start(path, threads, level, geometry.chunk_bytes)?;
        let mut writer = Self {
            first_path: path.to_path_buf(),
            stem: path.with_extension(""),
            first_letter,
            geometry,
            segment_bytes: options.segment_bytes,
            volume,
            segment_paths: Vec::new(),
            segment: None,
            group: None,
            pending: Vec::new(),
            received_bytes: 0,
            dispatched_chunks: 0,
            written_chunks: 0,
            compressed_chunks: 0,
            pipeline,
            unreadable: Vec::new(),
            failed: false,
        };
        writer.open_segment(1)?;
        let seg = writer.current()?;
        for (kind, data) in [
            ("header2", &header2),
            ("header2", &header2),
            ("header", &header),
        ] {
            write_section(seg, kind, data)?;
        }
        let volume = writer.volume.clone();
        write_section(writer.current()?, "volume", &volume)?;
        Ok(writer)
    }

    /// Appends `data` (any length) to the media stream.
    ///
    /// # Errors
    /// More bytes than the media size (the writer is then unusable), an earlier error,
    /// a stopped worker, or an I/O error.
    pub fn write(&mut self, data: &[u8]) -> Result<(), FormatError> {
        self.usable()?;
        let result = self.write_inner(data);
        self.failed = result.is_err();
        result
    }

    /// Records sectors `first_sector..first_sector + sector_count` as unreadable (the
    /// `error2` section, as ewfacquire does for read errors). Their bytes are still
    /// written (usually zeros) through [`EwfWriter::write`].
    ///
    /// # Errors
    /// A range outside the media, a range reaching sector 2^32 − 1 (EWF1 stores 32-bit
    /// sector numbers), or more than 2^20 separate ranges.
    pub fn mark_unreadable(
        &mut self,
        first_sector: u64,
        sector_count: u64,
    ) -> Result<(), FormatError> {
        let sectors = self.geometry.media_bytes / self.geometry.sector_bytes;
        let end = first_sector.checked_add(sector_count);
        if sector_count == 0 || end.is_none_or(|e| e > sectors) {
            return Err(FormatError::invalid(
                &self.first_path,
                0,
                "ewf error2.entry",
                format!(
                    "unreadable range {first_sector}+{sector_count}: not a non-empty range of \
                     the {sectors} sectors of the media"
                ),
            ));
        }
        let new_end = first_sector + sector_count;
        if new_end > u64::from(u32::MAX) {
            return Err(FormatError::invalid(
                &self.first_path,
                0,
                "ewf error2.entry",
                format!(
                    "unreadable range {first_sector}+{sector_count}: error2 holds 32-bit sector \
                     numbers (ranges must end below sector 2^32 − 1)"
                ),
            ));
        }
        if let Some(last) = self.unreadable.last_mut() {
            let last_end = last.0 + last.1;
            if first_sector >= last.0 && first_sector <= last_end {
                last.1 = last_end.max(new_end) - last.0;
                return Ok(());
            }
        }
        if self.unreadable.len() >= MAX_ERROR_RANGES {
            return Err(FormatError::invalid(
                &self.first_path,
                0,
                "ewf error2.entry_count",
                format!("more than {MAX_ERROR_RANGES} unreadable ranges"),
            ));
        }
        self.unreadable.push((first_sector, sector_count));
        Ok(())
    }

    /// Writes the remaining chunks and the closing sections, and returns the hashes and
    /// the segment files.
    ///
    /// # Errors
    /// Fewer bytes than the media size arrived (the error says how many are missing), an
    /// earlier error, or an I/O error.
    pub fn finish(mut self) -> Result<EwfSummary, FormatError> {
        self.usable()?;
        let media = self.geometry.media_bytes;
        if self.received_bytes != media {
            let missing = media - self.received_bytes;
            return Err(FormatError::invalid(
                &self.first_path,
                0,
                "ewf writer.media_size",
                format!(
                    "{} of {media} media bytes arrived: {missing} missing",
                    self.received_bytes
                ),
            ));
        }
        // Every chunk has been dispatched (the last one when its last byte arrived).
        self.pipeline.jobs = None;
        while self.written_chunks < self.dispatched_chunks {
            self.collect_one()?;
        }
        for worker in self.pipeline.workers.drain(..) {
            let _ = worker.join();
        }
        self.pipeline.hash_tx = None;
        let (md5, sha1) = self
            .pipeline
            .hasher
            .take()
            .and_then(|h| h.join().ok())
            .ok_or_else(|| self.stopped("the hashing thread"))?;
        self.close_segment(Some((md5, sha1)))?;
        Ok(EwfSummary {
            md5: hex::encode(md5),
            sha1: hex::encode(sha1),
            segments: self.segment_paths.clone(),
            chunk_count: self.written_chunks,
            compressed_chunks: self.compressed_chunks,
            media_bytes: media,
        })
    }

    fn usable(&self) -> Result<(), FormatError> {
        if self.failed {
            return Err(FormatError::invalid(
                &self.first_path,
                0,
                "ewf writer",
                "an earlier error left the image incomplete",
            ));
        }
        Ok(())
    }

    fn stopped(&self, what: &str) -> FormatError {
        FormatError::invalid(
            &self.first_path,
            0,
            "ewf writer",
            format!("{what} stopped unexpectedly"),
        )
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<(), FormatError> {
        let left = self.geometry.media_bytes - self.received_bytes;
        if data.len() as u64 > left {
            return Err(FormatError::invalid(
                &self.first_path,
                0,
                "ewf writer.media_size",
                format!(
                    "{} more bytes than the {}-byte media size",
                    data.len() as u64 - left,
                    self.geometry.media_bytes
                ),
            ));
        }
        while !data.is_empty() {
            let chunk_len = self.geometry.chunk_len(self.dispatched_chunks);
            let want = usize::try_from(chunk_len)
                .unwrap_or(usize::MAX)
                .saturating_sub(self.pending.len());
            let (head, rest) = data.split_at(want.min(data.len()));
            if self.pending.capacity() == 0 {
                self.pending
                    .reserve_exact(usize::try_from(chunk_len).unwrap_or(0));
            }
            self.pending.extend_from_slice(head);
            self.received_bytes += head.len() as u64;
            data = rest;
            if self.pending.len() as u64 == chunk_len {
                self.dispatch()?;
            }
        }
        Ok(())
    }

    /// Hands the filled chunk to the hasher and a worker, writing finished chunks while
    /// too many are in flight.
    fn dispatch(&mut self) -> Result<(), FormatError> {
        let data = Arc::new(std::mem::take(&mut self.pending));
        let seq = self.dispatched_chunks;
        let hashed = self
            .pipeline
            .hash_tx
            .as_ref()
            .is_some_and(|tx| tx.send(Arc::clone(&data)).is_ok());
        if !hashed {
            return Err(self.stopped("the hashing thread"));
        }
        let sent = self
            .pipeline
            .jobs
            .as_ref()
            .is_some_and(|tx| tx.send(Job { seq, data }).is_ok());
        if !sent {
            return Err(self.stopped("the compression threads"));
        }
        self.dispatched_chunks += 1;
        self.pipeline.in_flight += 1;
        while self.pipeline.in_flight >= self.pipeline.max_in_flight {
            self.collect_one()?;
        }
        Ok(())
    }

    /// Waits for one result and writes every chunk now ready in order.
    fn collect_one(&mut self) -> Result<(), FormatError> {
        let encoded = self
            .pipeline
            .results
            .recv()
            .map_err(|_| self.stopped("the compression threads"))?;
        self.pipeline.reorder.insert(encoded.seq, encoded);
        while let Some(next) = self.pipeline.reorder.remove(&self.written_chunks) {
            self.place(&next)?;
            self.pipeline.in_flight = self.pipeline.in_flight.saturating_sub(1);
        }
        Ok(())
    }

    /// Stores one chunk at the end of the current `sectors` section, first closing the
    /// section or the segment if it would not fit.
    fn place(&mut self, chunk: &Encoded) -> Result<(), FormatError> {
        let stored = chunk.bytes.len() as u64;
        self.make_room(stored)?;
        let open_group = self.group.as_ref().map(|g| g.start);
        let seg = self.current()?;
        let group_start = match open_group {
            Some(start) => start,
            None => {
                // The descriptor is written once the section's size is known.
                let start = seg.pos;
                write_bytes(seg, &[0u8; 76])?;
                start
            }
        };
        let relative = seg.pos - group_start;
        let entry = u32::try_from(relative)
            .ok()
            .filter(|r| *r <= 0x7fff_ffff)
            .ok_or_else(|| {
                FormatError::invalid(
                    &seg.path,
                    seg.pos,
                    "ewf table.entry",
                    format!("chunk offset {relative} from the sectors section exceeds 31 bits"),
                )
            })?;
        write_bytes(seg, &chunk.bytes)?;
        seg.chunks += 1;
        let group = self.group.get_or_insert_with(|| SectorsGroup {
            start: group_start,
            entries: Vec::new(),
        });
        group
            .entries
            .push(entry | if chunk.compressed { 0x8000_0000 } else { 0 });
        self.written_chunks += 1;
        if chunk.compressed {
            self.compressed_chunks += 1;
        }
        Ok(())
    }

    /// Closes the `sectors` section when its table is full or the chunk's offset would
    /// overflow, and the segment when the chunk would push it past its size.
    fn make_room(&mut self, stored: u64) -> Result<(), FormatError> {
        let pos = self.current()?.pos;
        if let Some(g) = &self.group {
            let span = pos.saturating_add(stored) - g.start;
            if g.entries.len() >= MAX_TABLE_ENTRIES || span > MAX_SECTORS_SPAN_BYTES {
                self.close_group()?;
            }
        }
        let (pos, chunks) = {
            let seg = self.current()?;
            (seg.pos, seg.chunks)
        };
        if chunks == 0 {
            return Ok(());
        }
        let (open_cost, entries) = match &self.group {
            Some(g) => (0, g.entries.len() + 1),
            None => (DESCRIPTOR_BYTES, 1),
        };
        let need = pos
            .saturating_add(open_cost + stored)
            .saturating_add(2 * table_section_bytes(entries))
            .saturating_add(TRAILER_RESERVE_BYTES);
        if need > self.segment_bytes {
            self.close_segment(None)?;
            let number = u32::try_from(self.segment_paths.len() + 1).unwrap_or(u32::MAX);
            self.open_segment(number)?;
            let volume = self.volume.clone();
            write_section(self.current()?, "data", &volume)?;
        }
        Ok(())
    }

    fn current(&mut self) -> Result<&mut SegmentFile, FormatError> {
        let first = &self.first_path;
        self.segment
            .as_mut()
            .ok_or_else(|| FormatError::invalid(first, 0, "ewf writer", "no open segment file"))
    }

    /// Creates segment file `number` (never overwriting) and writes its file header.
    fn open_segment(&mut self, number: u32) -> Result<(), FormatError> {
        let ext = (number <= MAX_SEGMENTS)
            .then(|| segment_extension(self.first_letter, number))
            .flatten()
            .ok_or_else(|| {
                FormatError::invalid(
                    &self.first_path,
                    0,
                    "ewf segment file",
                    format!("more than {MAX_SEGMENTS} segment files: raise the segment size"),
                )
            })?;
        let path = if number == 1 {
            self.first_path.clone()
        } else {
            self.stem.with_extension(ext)
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(FormatError::io(
                &path,
                "create the segment file (never overwritten)",
            ))?;
        let mut seg = SegmentFile {
            path: path.clone(),
            out: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            pos: 0,
            chunks: 0,
        };
        let number16 = u16::try_from(number).unwrap_or(u16::MAX);
        let mut head = Vec::with_capacity(13);
        head.extend_from_slice(EVF_SIGNATURE);
        head.push(1);
        head.extend_from_slice(&number16.to_le_bytes());
        head.extend_from_slice(&[0, 0]);
        write_bytes(&mut seg, &head)?;
        self.segment_paths.push(path);
        self.segment = Some(seg);
        Ok(())
    }

    /// Writes the open `sectors` section's descriptor, then `table` and `table2`.
    fn close_group(&mut self) -> Result<(), FormatError> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        let seg = self.current()?;
        let size = seg.pos - group.start;
        let descriptor = section_descriptor("sectors", seg.pos, size);
        seg.out
            .flush()
            .map_err(FormatError::io(&seg.path, "write the segment file"))?;
        seg.out
            .get_ref()
            .write_all_at(&descriptor, group.start)
            .map_err(FormatError::io(
                &seg.path,
                "write a sectors section descriptor",
            ))?;
        let mut table = Vec::with_capacity(24 + 4 * group.entries.len() + 4);
        let count = u32::try_from(group.entries.len()).unwrap_or(u32::MAX);
        table.extend_from_slice(&count.to_le_bytes());
        table.extend_from_slice(&[0; 4]);
        table.extend_from_slice(&group.start.to_le_bytes());
        table.extend_from_slice(&[0; 4]);
        table.extend_from_slice(&adler32(&table).to_le_bytes());
        let entries_at = table.len();
        for e in &group.entries {
            table.extend_from_slice(&e.to_le_bytes());
        }
        let sum = adler32(table.get(entries_at..).unwrap_or_default());
        table.extend_from_slice(&sum.to_le_bytes());
        write_section(seg, "table", &table)?;
        write_section(seg, "table2", &table)?;
        Ok(())
    }

    /// Ends the current segment: with `next`, or, given the hashes, as the last one.
    fn close_segment(&mut self, hashes: Option<([u8; 16], [u8; 20])>) -> Result<(), FormatError> {
        self.close_group()?;
        let single = self.segment_paths.len() == 1;
        let volume = self.volume.clone();
        let error2 = error2_data(&self.unreadable);
        let seg = self.current()?;
        let end_kind = match hashes {
            None => "next",
            Some((md5, sha1)) => {
                if single {
                    write_section(seg, "data", &volume)?;
                }
                if let Some(e) = &error2 {
                    write_section(seg, "error2", e)?;
                }
                let mut digest = Vec::with_capacity(80);
                digest.extend_from_slice(&md5);
                digest.extend_from_slice(&sha1);
                digest.resize(76, 0);
                digest.extend_from_slice(&adler32(&digest).to_le_bytes());
                write_section(seg, "digest", &digest)?;
                let mut hash = Vec::with_capacity(36);
                hash.extend_from_slice(&md5);
                hash.resize(32, 0);
                hash.extend_from_slice(&adler32(&hash).to_le_bytes());
                write_section(seg, "hash", &hash)?;
                "done"
            }
        };
        let terminal = section_descriptor(end_kind, seg.pos, 0);
        write_bytes(seg, &terminal)?;
        seg.out
            .flush()
            .map_err(FormatError::io(&seg.path, "write the segment file"))?;
        // The image is evidence: on disk before it is reported written.
        seg.out
            .get_ref()
            .sync_all()
            .map_err(FormatError::io(&seg.path, "sync the segment file"))?;
        self.segment = None;
        Ok(())
    }
}

impl Pipeline {
    fn start(
        path: &Path,
        threads: usize,
        level: Option<Compression>,
        chunk_bytes: u64,
    ) -> Result<Self, FormatError> {
        let threads = threads.max(1);
        let by_bytes = usize::try_from(IN_FLIGHT_BYTES / chunk_bytes.max(1)).unwrap_or(usize::MAX);
        let max_in_flight = (2 * threads + 2).min(by_bytes.max(2));
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(max_in_flight);
        let (results_tx, results_rx) = mpsc::channel::<Encoded>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&jobs_rx);
            let tx = results_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("ewf-deflate-{i}"))
                .spawn(move || compress_worker(&rx, &tx, level))
                .map_err(FormatError::io(path, "start a compression thread"))?;
            workers.push(handle);
        }
        let (hash_tx, hash_rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(max_in_flight);
        let hasher = std::thread::Builder::new()
            .name("ewf-hash".to_string())
            .spawn(move || hash_worker(&hash_rx))
            .map_err(FormatError::io(path, "start the hashing thread"))?;
        Ok(Self {
            jobs: Some(jobs_tx),
            results: results_rx,
            workers,
            hash_tx: Some(hash_tx),
            hasher: Some(hasher),
            in_flight: 0,
            max_in_flight,
            reorder: BTreeMap::new(),
        })
    }
}

/// A compression thread: takes chunks until the job channel closes.
fn compress_worker(
    jobs: &Mutex<Receiver<Job>>,
    results: &Sender<Encoded>,
    level: Option<Compression>,
) {
    let mut deflate = level.map(|l| Compress::new(l, true));
    loop {
        let job = {
            let rx = jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            rx.recv()
        };
        let Ok(job) = job else { return };
        let (bytes, compressed) = encode_chunk(&job.data, deflate.as_mut());
        if results
            .send(Encoded {
                seq: job.seq,
                bytes,
                compressed,
            })
            .is_err()
        {
            return;
        }
    }
}

/// The stored form of a chunk: its zlib stream if that is smaller than the chunk, else
/// the chunk followed by its Adler-32.
fn encode_chunk(data: &[u8], deflate: Option<&mut Compress>) -> (Vec<u8>, bool) {
    if let Some(z) = deflate {
        z.reset();
        // Room for less than the chunk: a stream that does not end in it is not smaller.
        let mut out = Vec::with_capacity(data.len().saturating_sub(1));
        if let Ok(Status::StreamEnd) = z.compress_vec(data, &mut out, FlushCompress::Finish) {
            return (out, true);
        }
    }
    let mut out = Vec::with_capacity(data.len() + 4);
    out.extend_from_slice(data);
    out.extend_from_slice(&adler32(data).to_le_bytes());
    (out, false)
}

/// The hashing thread: MD5 and SHA-1 of the chunks in order, until the channel closes.
fn hash_worker(rx: &Receiver<Arc<Vec<u8>>>) -> ([u8; 16], [u8; 20]) {
    let mut md5 = Md5::new();
    let mut sha1 = Sha1::new();
    for chunk in rx {
        md5.update(chunk.as_slice());
        sha1.update(chunk.as_slice());
    }
    (md5.finalize().into(), sha1.finalize().into())
}

/// Checks the options against the media size and the volume section's fields.
fn check_geometry(
    path: &Path,
    media_bytes: u64,
    options: &EwfOptions,
) -> Result<Geometry, FormatError> {
    let bad = |field: &'static str, reason: String| FormatError::invalid(path, 0, field, reason);
    let spc = options.sectors_per_chunk;
    let bps = options.bytes_per_sector;
    if !matches!(bps, 512 | 1024 | 2048 | 4096) {
        return Err(bad(
            "ewf volume.bytes_per_sector",
            format!("{bps} bytes per sector; 512, 1024, 2048 or 4096 expected"),
        ));
    }
    let chunk_bytes = u64::from(spc) * u64::from(bps);
    if spc == 0 || spc > 32_768 || chunk_bytes > MAX_CHUNK_BYTES {
        return Err(bad(
            "ewf volume.sectors_per_chunk",
            format!(
                "{spc} sectors per chunk of {bps} bytes; 1 to 32768 and chunks of at most \
                 {MAX_CHUNK_BYTES} bytes expected"
            ),
        ));
    }
    if media_bytes == 0 {
        return Err(bad(
            "ewf volume.sector_count",
            "zero-size media: nothing to image (ewfacquire refuses it too)".to_string(),
        ));
    }
    if !media_bytes.is_multiple_of(u64::from(bps)) {
        return Err(bad(
            "ewf volume.sector_count",
            format!(
                "media of {media_bytes} bytes is not a whole number of {bps}-byte sectors \
                 ({} bytes over)",
                media_bytes % u64::from(bps)
            ),
        ));
    }
    let chunk_count = media_bytes.div_ceil(chunk_bytes);
    if chunk_count > u64::from(u32::MAX) {
        return Err(bad(
            "ewf volume.chunk_count",
            format!("{chunk_count} chunks; the volume section holds at most 2^32 − 1"),
        ));
    }
    if options.segment_bytes == 0 {
        return Err(bad(
            "ewf writer.segment_bytes",
            "segment size 0; a positive size expected".to_string(),
        ));
    }
    Ok(Geometry {
        media_bytes,
        sector_bytes: u64::from(bps),
        chunk_bytes,
        chunk_count,
    })
}

/// Refuses a segment size that would need more segment files than names exist (counting
/// every chunk stored raw, the worst case).
fn check_segment_count(
    path: &Path,
    g: Geometry,
    options: &EwfOptions,
    header_bytes: u64,
) -> Result<(), FormatError> {
    let fixed = 13 + 3 * DESCRIPTOR_BYTES + header_bytes + DESCRIPTOR_BYTES + 1052;
    let per_chunk = g.chunk_bytes + 4 + 8;
    let room = options.segment_bytes.saturating_sub(
        fixed + DESCRIPTOR_BYTES + 2 * table_section_bytes(0) + TRAILER_RESERVE_BYTES,
    );
    let chunks_per_segment = (room / per_chunk).max(1);
    let segments = g.chunk_count.div_ceil(chunks_per_segment);
    if segments > u64::from(MAX_SEGMENTS) {
        return Err(FormatError::invalid(
            path,
            0,
            "ewf writer.segment_bytes",
            format!(
                "segments of {} bytes would need up to {segments} segment files for {} bytes; \
                 at most {MAX_SEGMENTS} can be named",
                options.segment_bytes, g.media_bytes
            ),
        ));
    }
    Ok(())
}

/// Bytes of a `table` section with `entries` entries.
fn table_section_bytes(entries: usize) -> u64 {
    DESCRIPTOR_BYTES + 24 + 4 * entries as u64 + 4
}

/// The 1052 bytes of the `volume` (and `data`) section, EnCase 5+ layout.
fn volume_data(path: &Path, g: Geometry, options: &EwfOptions) -> Result<Vec<u8>, FormatError> {
    let chunk_count = u32::try_from(g.chunk_count).unwrap_or(u32::MAX);
    let sectors = g.media_bytes / u64::from(options.bytes_per_sector);
    let mut v = Vec::with_capacity(VOLUME_DATA_BYTES);
    v.push(match options.media_type {
        EwfMediaType::Removable => 0,
        EwfMediaType::Fixed => 1,
    });
    v.extend_from_slice(&[0; 3]);
    v.extend_from_slice(&chunk_count.to_le_bytes());
    v.extend_from_slice(&options.sectors_per_chunk.to_le_bytes());
    v.extend_from_slice(&options.bytes_per_sector.to_le_bytes());
    v.extend_from_slice(&sectors.to_le_bytes());
    // Cylinders, heads, sectors (CHS): unknown.
    v.extend_from_slice(&[0; 12]);
    // Media flags: 0x01 image, 0x02 physical device.
    let flags: u32 = if options.physical { 0x03 } else { 0x01 };
    v.extend_from_slice(&flags.to_le_bytes());
    // PALM volume start sector, unknown, SMART logs start sector.
    v.extend_from_slice(&[0; 12]);
    v.push(match options.compression {
        EwfCompression::None => 0,
        EwfCompression::Fast => 1,
        EwfCompression::Best => 2,
    });
    v.extend_from_slice(&[0; 3]);
    // Error granularity: ewfacquire uses the chunk size.
    v.extend_from_slice(&options.sectors_per_chunk.to_le_bytes());
    // Unknown, then the set identifier (GUID), left zero as ewfacquire 20140813 does.
    v.resize(1048, 0);
    let sum = adler32(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    if v.len() == VOLUME_DATA_BYTES {
        Ok(v)
    } else {
        Err(FormatError::invalid(
            path,
            0,
            "ewf volume",
            format!("built {} bytes, {VOLUME_DATA_BYTES} expected", v.len()),
        ))
    }
}

/// The `error2` section's data, if there are unreadable ranges: a count, 512 unused
/// bytes and an Adler-32, then (first sector, sector count) pairs of u32 and their
/// Adler-32.
fn error2_data(ranges: &[(u64, u64)]) -> Option<Vec<u8>> {
    if ranges.is_empty() {
        return None;
    }
    // Sorted, overlapping and adjacent ranges merged (they may be marked in any order).
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (first, count) in sorted {
        match merged.last_mut() {
            Some(last) if first <= last.0 + last.1 => {
                last.1 = (last.0 + last.1).max(first + count) - last.0;
            }
            _ => merged.push((first, count)),
        }
    }
    let mut entries = Vec::with_capacity(merged.len() * 8);
    for (first, count) in merged {
        // mark_unreadable keeps every range below sector 2^32 − 1.
        let (Ok(first), Ok(count)) = (u32::try_from(first), u32::try_from(count)) else {
            continue;
        };
        entries.extend_from_slice(&first.to_le_bytes());
        entries.extend_from_slice(&count.to_le_bytes());
    }
    let count = u32::try_from(entries.len() / 8).unwrap_or(u32::MAX);
    let mut data = Vec::with_capacity(520 + entries.len() + 4);
    data.extend_from_slice(&count.to_le_bytes());
    data.resize(516, 0);
    data.extend_from_slice(&adler32(&data).to_le_bytes());
    data.extend_from_slice(&entries);
    data.extend_from_slice(&adler32(&entries).to_le_bytes());
    Some(data)
}

/// A section descriptor: type, absolute offset of the next section, size including the
/// descriptor, 40 zero bytes and an Adler-32 of the first 72 bytes.
fn section_descriptor(kind: &str, next: u64, size: u64) -> Vec<u8> {
    let mut d = Vec::with_capacity(76);
    let mut name = [0u8; 16];
    for (dst, src) in name.iter_mut().zip(kind.bytes()) {
        *dst = src;
    }
    d.extend_from_slice(&name);
    d.extend_from_slice(&next.to_le_bytes());
    d.extend_from_slice(&size.to_le_bytes());
    d.resize(72, 0);
    d.extend_from_slice(&adler32(&d).to_le_bytes());
    d
}

fn write_bytes(seg: &mut SegmentFile, bytes: &[u8]) -> Result<(), FormatError> {
    seg.out
        .write_all(bytes)
        .map_err(FormatError::io(&seg.path, "write the segment file"))?;
    seg.pos += bytes.len() as u64;
    Ok(())
}

/// Writes a section (descriptor + `data`) at the end of `seg`.
fn write_section(seg: &mut SegmentFile, kind: &str, data: &[u8]) -> Result<(), FormatError> {
    let size = DESCRIPTOR_BYTES + data.len() as u64;
    let descriptor = section_descriptor(kind, seg.pos + size, size);
    write_bytes(seg, &descriptor)?;
    write_bytes(seg, data)
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(data);
    z.finish().unwrap_or_default()
}

fn utf16le_with_bom(text: &str) -> Vec<u8> {
    let mut out = vec![0xff, 0xfe];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// A metadata value made safe for the tab-separated header text: control characters
/// (tabs, line breaks) become spaces; longer than [`MAX_FIELD_CHARS`] is refused.
fn field(path: &Path, name: &'static str, value: &str) -> Result<String, FormatError> {
    let n = value.chars().count();
    if n > MAX_FIELD_CHARS {
        return Err(FormatError::invalid(
            path,
            0,
            name,
            format!("{n} characters; at most {MAX_FIELD_CHARS} accepted"),
        ));
    }
    Ok(value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect())
}

/// The metadata's values, cleaned, in header2 order: a c n e t md sn av ov m u.
fn fields(path: &Path, m: &EwfMetadata) -> Result<[String; 11], FormatError> {
    let software = format!("{} {}", m.acquiry_software, m.acquiry_software_version);
    for (name, date) in [
        ("ewf header.m", m.acquisition_date_unix),
        ("ewf header.u", m.system_date_unix),
    ] {
        if !(0..=253_402_300_799).contains(&date) {
            return Err(FormatError::invalid(
                path,
                0,
                name,
                format!("date {date}: seconds from 1970 to the year 9999 expected"),
            ));
        }
    }
    Ok([
        field(path, "ewf header.a", &m.description)?,
        field(path, "ewf header.c", &m.case_number)?,
        field(path, "ewf header.n", &m.evidence_number)?,
        field(path, "ewf header.e", &m.examiner_name)?,
        field(path, "ewf header.t", &m.notes)?,
        field(path, "ewf header2.md", &m.model)?,
        field(path, "ewf header2.sn", &m.serial_number)?,
        field(path, "ewf header.av", software.trim())?,
        field(path, "ewf header.ov", &m.acquiry_os)?,
        m.acquisition_date_unix.to_string(),
        m.system_date_unix.to_string(),
    ])
}

/// The `header2` text as EnCase 6 / ewfacquire write it (three categories).
fn header2_text(path: &Path, m: &EwfMetadata) -> Result<String, FormatError> {
    let [a, c, n, e, t, md, sn, av, ov, acquired, system] = fields(path, m)?;
    Ok(format!(
        "3\nmain\na\tc\tn\te\tt\tmd\tsn\tav\tov\tm\tu\tp\tdc\n\
         {a}\t{c}\t{n}\t{e}\t{t}\t{md}\t{sn}\t{av}\t{ov}\t{acquired}\t{system}\t0\t\n\n\
         srce\n0\t1\np\tn\tid\tev\ttb\tlo\tpo\tah\tgu\taq\n0\t0\n\t\t\t\t\t-1\t-1\t\t\t\n\n\
         sub\n0\t1\np\tn\tid\tnu\tco\tgu\n0\t0\n\t\t\t\t1\t\n\n"
    ))
}

/// The ASCII `header` text as EnCase 6 / ewfacquire write it; dates as
/// `year month day hour minute second` (UTC here).
fn header_text(path: &Path, m: &EwfMetadata) -> Result<String, FormatError> {
    let [a, c, n, e, t, _md, _sn, av, ov, _, _] = fields(path, m)?;
    let ascii = |s: String| -> String {
        s.chars()
            .map(|ch| if ch.is_ascii() { ch } else { '?' })
            .collect()
    };
    Ok(format!(
        "1\r\nmain\r\nc\tn\ta\te\tt\tav\tov\tm\tu\tp\r\n\
         {}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t0\r\n\r\n",
        ascii(c),
        ascii(n),
        ascii(a),
        ascii(e),
        ascii(t),
        ascii(av),
        ascii(ov),
        header_date(m.acquisition_date_unix),
        header_date(m.system_date_unix),
    ))
}

/// `2026 11 26 0 35 31`: the ASCII header's date form.
fn header_date(secs: i64) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y} {mo} {d} {} {} {}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
#[path = "ewf_write_tests.rs"]
mod tests;
