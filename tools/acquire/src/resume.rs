//! Resuming an interrupted disk acquisition: the resume journal, reading it back, and
//! re-verifying what the image already holds.
//!
//! While a disk is acquired, the pipeline makes the image durable every
//! `sync_every_bytes` of source (fsync) and then appends one line to `resume.journal` in the
//! item: the frames made durable (compressed and decompressed sizes, seek-table checksum,
//! BLAKE3 of the chunk), the unreadable ranges found in them and the rescue counters. The
//! first line names the source and the settings. A journal line is written only after the
//! frames it names are on stable storage, and is itself synced, so after a power loss, a
//! killed VM or Ctrl-C the journal names a prefix of the image that is really there; a torn
//! last line is ignored.
//!
//! `acquire disk --resume` then:
//! 1. reads the journal (bounded: sizes are checked against the chunk size before anything
//!    is allocated, a line that does not add up ends the journal);
//! 2. opens the source and refuses unless its size, sector size, model, serial and WWN are
//!    the journaled ones;
//! 3. reads every journaled frame back from image.zst, decompresses it and compares its
//!    BLAKE3 with the journal: the image is kept up to the first chunk that fails, which is
//!    read again from the source (the manifest says so);
//! 4. re-reads the first and the last kept chunks from the source and refuses unless they
//!    match their digests (the same disk, unchanged);
//! 5. cuts the image after the kept frames and runs the pipeline from there, with the stream
//!    hashes already fed with the kept bytes. Frames are deterministic (same data, level and
//!    chunk size), so the finished image.zst is byte for byte the one an uninterrupted run
//!    would have written, and its hashes are the same.
//!
//! The journal is not evidence (the signed list does not cover it): it is deleted once every
//! byte of the source has been read, and kept while the item can still be resumed.

use crate::pipeline::{Durable, Journal, Prefix};
use crate::rescue::{RescueReader, RescueReport};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use vestige_evidence::fsutil::sync_dir;
use vestige_evidence::manifest::{ByteRange, ResumeRecord, SourceIdentity};
use vestige_evidence::read_at::ReadAt;
use vestige_evidence::seekable::{
    FrameDecompressor, FrameEntry, FrameInfo, MAX_FRAME_DECOMPRESSED_BYTES,
};

/// The journal's file name in the item directory.
pub const JOURNAL_FILE: &str = "resume.journal";
/// Space held back in the item (`.seal-reserve`) so that the seek table, errors.map,
/// manifest and signature can still be written when the medium fills up.
pub const RESERVE_FILE: &str = ".seal-reserve";
const JOURNAL_FORMAT: &str = "vestige-resume-journal/1";
/// A journal for a 16 TiB source at 4 MiB chunks is about 400 MiB; anything larger is not
/// one of ours.
const MAX_JOURNAL_BYTES: u64 = 1 << 30;

/// The journal's first line: the source and the settings every run must share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHeader {
    /// `vestige-resume-journal/1`.
    pub format: String,
    /// When the first run started (UTC): the manifest's start time.
    pub started_utc: String,
    /// The source as first opened.
    pub source: SourceIdentity,
    /// Pipeline chunk size.
    pub chunk_size_bytes: u64,
    /// zstd level.
    pub zstd_level: i32,
    /// MD5 computed too.
    pub md5: bool,
    /// SHA-1 computed too.
    pub sha1: bool,
    /// Durability interval.
    pub sync_every_bytes: u64,
    /// Earlier resumptions, in order.
    #[serde(default)]
    pub resumes: Vec<ResumeRecord>,
}

/// One journaled frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalFrame {
    /// Compressed bytes in image.zst.
    pub c: u32,
    /// Source bytes.
    pub d: u32,
    /// Seek-table checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<u32>,
    /// BLAKE3 of the chunk, hex.
    pub b: String,
}

/// One durable point.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JournalEntry {
    chunks: u64,
    bytes_acquired: u64,
    image_bytes: u64,
    frames: Vec<JournalFrame>,
    #[serde(default)]
    unreadable: Vec<ByteRange>,
    failed_reads: u64,
    recovered_sectors: u64,
    direct_io: bool,
}

/// A journal read back.
#[derive(Debug, Clone)]
pub struct LoadedJournal {
    /// The first line.
    pub header: JournalHeader,
    /// Every journaled frame, in order.
    pub frames: Vec<JournalFrame>,
    /// What rescuing had found by the last durable point.
    pub rescue: RescueReport,
    /// Lines after the last usable one, and why they were not used (a torn write).
    pub ignored: Option<String>,
}

/// Why an acquisition cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// No journal, or one that cannot be read.
    #[error("{path}: {reason}")]
    Journal {
        /// The journal.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The source is not the journaled one.
    #[error("{source_path} is not the source of this acquisition: {reason}")]
    DifferentSource {
        /// The source given.
        source_path: String,
        /// What differs.
        reason: String,
    },
    /// I/O on the item failed.
    #[error("{path}: cannot {what}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err<'p>(path: &'p Path, what: &'static str) -> impl FnOnce(io::Error) -> ResumeError + 'p {
    move |source| ResumeError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// Reads a journal. Lines are trusted only as far as they add up: each must follow the
/// previous one (chunk, byte and image counts), hold frames no larger than the chunk size
/// allows and end with a newline; the first that does not ends the journal.
pub fn read_journal(path: &Path) -> Result<LoadedJournal, ResumeError> {
    let bytes = vestige_evidence::fsutil::read_capped(path, MAX_JOURNAL_BYTES).map_err(|e| {
        ResumeError::Journal {
            path: path.to_path_buf(),
            reason: format!("cannot read the resume journal: {e}"),
        }
    })?;
    parse_journal(&bytes, path)
}

/// [`read_journal`] on bytes already read (`path` names them in errors).
pub fn parse_journal(bytes: &[u8], path: &Path) -> Result<LoadedJournal, ResumeError> {
    let bad = |reason: String| ResumeError::Journal {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let first = lines
        .next()
        .filter(|l| l.ends_with(b"\n"))
        .ok_or_else(|| bad("empty or torn first line".to_string()))?;
    let header: JournalHeader = serde_json::from_slice(first)
        .map_err(|e| bad(format!("line 1 is not a journal header: {e}")))?;
    if header.format != JOURNAL_FORMAT {
        return Err(bad(format!(
            "format {:?}, expected {JOURNAL_FORMAT:?}",
            header.format
        )));
    }
    let chunk = header.chunk_size_bytes;
    if chunk == 0 || chunk > u64::from(MAX_FRAME_DECOMPRESSED_BYTES) {
        return Err(bad(format!("chunk size {chunk} is out of range")));
    }
    let size = header.source.size_bytes;
    let mut out = LoadedJournal {
        header,
        frames: Vec::new(),
        rescue: RescueReport::default(),
        ignored: None,
    };
    let (mut chunks, mut bytes_acq, mut image) = (0u64, 0u64, 0u64);
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        let entry = match check_entry(line, chunk, size, (chunks, bytes_acq, image)) {
            Ok(e) => e,
            Err(why) => {
                out.ignored = Some(format!("line {line_no} and after ignored: {why}"));
                break;
            }
        };
        chunks = entry.chunks;
        bytes_acq = entry.bytes_acquired;
        image = entry.image_bytes;
        out.frames.extend(entry.frames);
        out.rescue.unreadable.extend(entry.unreadable);
        out.rescue.failed_reads = entry.failed_reads;
        out.rescue.recovered_sectors = entry.recovered_sectors;
        out.rescue.direct_io = entry.direct_io;
    }
    Ok(out)
}

/// Parses one entry line and checks it continues `(chunks, bytes, image)`.
fn check_entry(
    line: &[u8],
    chunk: u64,
    size: u64,
    (chunks, bytes, image): (u64, u64, u64),
) -> Result<JournalEntry, String> {
    if !line.ends_with(b"\n") {
        return Err("torn line (no newline)".to_string());
    }
    let e: JournalEntry = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let (mut c, mut b, mut im) = (chunks, bytes, image);
    for f in &e.frames {
        let expected = chunk.min(size.saturating_sub(b));
        if u64::from(f.d) != expected || expected == 0 {
            return Err(format!(
                "frame {c} restores {} bytes, expected {expected}",
                f.d
            ));
        }
        // zstd's worst case for incompressible data is a little over the input.
        if u64::from(f.c) > expected + expected / 64 + 1024 || f.c == 0 {
            return Err(format!("frame {c} claims {} compressed bytes", f.c));
        }
        if f.b.len() != 64 || !f.b.bytes().all(|x| x.is_ascii_hexdigit()) {
            return Err(format!("frame {c} has no BLAKE3 digest"));
        }
        c += 1;
        b += u64::from(f.d);
        im += u64::from(f.c);
    }
    if (e.chunks, e.bytes_acquired, e.image_bytes) != (c, b, im) {
        return Err(format!(
            "counts ({}, {}, {}) do not follow from the frames ({c}, {b}, {im})",
            e.chunks, e.bytes_acquired, e.image_bytes
        ));
    }
    if e.unreadable
        .iter()
        .any(|r| r.offset_bytes < bytes || r.offset_bytes.saturating_add(r.length_bytes) > b)
    {
        return Err("an unreadable range lies outside the entry's bytes".to_string());
    }
    Ok(e)
}

/// Refuses a source whose identity differs from the journaled one in size, sector size or
/// any of model, serial and WWN that either side knows. The device path may differ (disks
/// are named in probe order).
pub fn check_same_source(
    journaled: &SourceIdentity,
    now: &SourceIdentity,
) -> Result<(), ResumeError> {
    let differ = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        Err(ResumeError::DifferentSource {
            source_path: now.path.clone(),
            reason: format!("{what} is {b:?}, the journal says {a:?}"),
        })
    };
    if journaled.size_bytes != now.size_bytes {
        return differ("size", &journaled.size_bytes, &now.size_bytes);
    }
    if journaled.logical_sector_size != now.logical_sector_size {
        return differ(
            "logical sector size",
            &journaled.logical_sector_size,
            &now.logical_sector_size,
        );
    }
    for (what, a, b) in [
        ("model", &journaled.model, &now.model),
        ("serial", &journaled.serial, &now.serial),
        ("WWN", &journaled.wwn, &now.wwn),
    ] {
        if a != b {
            return differ(what, a, b);
        }
    }
    Ok(())
}

/// The image prefix that survived: what to keep and why the rest was dropped.
#[derive(Debug)]
pub struct Verified {
    /// The kept chunks, fed to the hashers, ready for [`crate::pipeline::run_from`].
    pub prefix: Prefix,
    /// Why journaled chunks after the prefix were dropped, if any were.
    pub discarded: Option<String>,
}

/// Reads the journaled frames back from `image` (image.zst at `path`), decompresses each
/// and compares it with the journal; stops at the first that fails. `prefix` is empty on
/// entry. `on_chunk` is called with the source bytes verified so far (progress).
pub fn verify_image(
    image: &File,
    path: &Path,
    journal: &LoadedJournal,
    mut prefix: Prefix,
    mut on_chunk: impl FnMut(u64),
) -> Verified {
    let chunk = journal.header.chunk_size_bytes;
    let mut dctx = FrameDecompressor::new();
    let mut compressed = Vec::new();
    let mut raw = Vec::new();
    let mut discarded = None;
    for (index, f) in journal.frames.iter().enumerate() {
        let info = FrameInfo {
            index,
            compressed_offset: prefix.image_bytes(),
            compressed_size: f.c,
            decompressed_offset: prefix.bytes(),
            decompressed_size: f.d,
            checksum: f.x,
        };
        let why = (|| {
            compressed.resize(f.c as usize, 0);
            image
                .read_exact_at(&mut compressed, info.compressed_offset)
                .map_err(|e| format!("cannot read it: {e}"))?;
            dctx.decompress(&info, &compressed, &mut raw)
                .map_err(|e| vestige_evidence::error_chain(&e))?;
            let digest = blake3::hash(&raw).to_hex().to_string();
            if digest != f.b {
                return Err(format!("BLAKE3 {digest}, the journal says {}", f.b));
            }
            Ok(digest)
        })();
        match why {
            Ok(digest) => {
                let entry = FrameEntry {
                    compressed_size: f.c,
                    decompressed_size: f.d,
                    checksum: f.x,
                };
                prefix.push(std::mem::take(&mut raw), &compressed, entry, digest);
                raw = Vec::with_capacity(usize::try_from(chunk).unwrap_or(0));
                on_chunk(prefix.bytes());
            }
            Err(reason) => {
                discarded = Some(format!(
                    "chunk {index} ({} byte {}) failed re-verification: {reason}; it and the {} journaled chunk(s) after it were read again from the source",
                    path.display(),
                    info.compressed_offset,
                    journal.frames.len() - index - 1
                ));
                break;
            }
        }
    }
    Verified { prefix, discarded }
}

/// Re-reads the first and the last kept chunks that hold no unreadable sector from the
/// source and compares them with the journal: a different or changed disk is refused.
/// Returns the chunk indices checked.
pub fn recheck_source(
    source: &dyn ReadAt,
    source_path: &str,
    journal: &LoadedJournal,
    kept_chunks: u64,
) -> Result<Vec<u64>, ResumeError> {
    let chunk = journal.header.chunk_size_bytes;
    let clean = |i: u64| {
        let (a, b) = (i * chunk, (i + 1) * chunk);
        !journal
            .rescue
            .unreadable
            .iter()
            .any(|r| r.offset_bytes < b && r.offset_bytes + r.length_bytes > a)
    };
    let first = (0..kept_chunks).find(|&i| clean(i));
    let last = (0..kept_chunks).rev().find(|&i| clean(i));
    let mut checked: Vec<u64> = first.into_iter().chain(last).collect();
    checked.dedup();
    let mut buf = Vec::new();
    for &i in &checked {
        let Some(f) = usize::try_from(i).ok().and_then(|i| journal.frames.get(i)) else {
            continue;
        };
        buf.resize(f.d as usize, 0);
        source
            .read_exact_at(&mut buf, i * chunk)
            .map_err(|e| ResumeError::DifferentSource {
                source_path: source_path.to_string(),
                reason: format!("chunk {i} cannot be read again: {e}"),
            })?;
        let digest = blake3::hash(&buf).to_hex().to_string();
        if digest != f.b {
            return Err(ResumeError::DifferentSource {
                source_path: source_path.to_string(),
                reason: format!(
                    "chunk {i} (bytes {}..{}) now has BLAKE3 {digest}, it had {} when acquired: another disk, or it changed",
                    i * chunk,
                    i * chunk + u64::from(f.d),
                    f.b
                ),
            });
        }
    }
    Ok(checked)
}

/// Writes the journal of a run: the header, then (for a resumed run) one entry for the kept
/// prefix, then one per durable point. It replaces the file atomically (write, fsync,
/// rename, fsync the directory), so a crash while it is rewritten leaves the old one.
pub struct JournalWriter<'j, 'a> {
    file: File,
    path: PathBuf,
    rescue: &'j RescueReader<'a>,
    last_bytes: u64,
    reserve: Option<PathBuf>,
}

impl std::fmt::Debug for JournalWriter<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWriter")
            .field("path", &self.path)
            .field("last_bytes", &self.last_bytes)
            .finish_non_exhaustive()
    }
}

fn line<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    let mut l = serde_json::to_vec(v).map_err(io::Error::other)?;
    l.push(b'\n');
    Ok(l)
}

impl<'j, 'a> JournalWriter<'j, 'a> {
    /// Starts the journal in `item_dir` with `header` and the `kept` frames (empty for a
    /// fresh run), and holds `reserve_bytes` of space for the seal.
    pub fn create(
        item_dir: &Path,
        header: &JournalHeader,
        kept: &[JournalFrame],
        rescue: &'j RescueReader<'a>,
        reserve_bytes: u64,
    ) -> Result<Self, ResumeError> {
        let path = item_dir.join(JOURNAL_FILE);
        let tmp = item_dir.join(format!("{JOURNAL_FILE}.new"));
        let mut text = line(header).map_err(io_err(&tmp, "encode the journal"))?;
        let bytes: u64 = kept.iter().map(|f| u64::from(f.d)).sum();
        if !kept.is_empty() {
            let earlier = rescue.report();
            let entry = JournalEntry {
                chunks: kept.len() as u64,
                bytes_acquired: bytes,
                image_bytes: kept.iter().map(|f| u64::from(f.c)).sum(),
                frames: kept.to_vec(),
                unreadable: clip(&earlier.unreadable, 0, bytes),
                failed_reads: earlier.failed_reads,
                recovered_sectors: earlier.recovered_sectors,
                direct_io: earlier.direct_io,
            };
            text.extend(line(&entry).map_err(io_err(&tmp, "encode the journal"))?);
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp, "create the resume journal"))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(io_err(&tmp, "write the resume journal"))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path, "replace the resume journal"))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path, "open the resume journal"))?;
        let reserve = item_dir.join(RESERVE_FILE);
        hold_space(&reserve, reserve_bytes).map_err(io_err(&reserve, "hold space for the seal"))?;
        sync_dir(item_dir).map_err(io_err(item_dir, "sync the item directory"))?;
        Ok(Self {
            file,
            path,
            rescue,
            last_bytes: bytes,
            reserve: Some(reserve),
        })
    }

    /// Gives the held space back (before sealing, or when the medium is full).
    pub fn release_reserve(&mut self) {
        if let Some(p) = self.reserve.take() {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove the seal reserve");
            }
        }
    }

    /// Removes the journal: the item is complete and there is nothing left to resume.
    pub fn finish(mut self, item_dir: &Path) {
        self.release_reserve();
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the resume journal");
        }
        let _ = sync_dir(item_dir);
    }
}

impl Drop for JournalWriter<'_, '_> {
    fn drop(&mut self) {
        self.release_reserve();
    }
}

impl Journal for JournalWriter<'_, '_> {
    fn durable(&mut self, point: &Durable<'_>) -> io::Result<()> {
        let report = self.rescue.report();
        let entry = JournalEntry {
            chunks: point.chunks,
            bytes_acquired: point.bytes_acquired,
            image_bytes: point.image_bytes,
            frames: point
                .new_frames
                .iter()
                .zip(point.new_digests)
                .map(|(f, b)| JournalFrame {
                    c: f.compressed_size,
                    d: f.decompressed_size,
                    x: f.checksum,
                    b: b.clone(),
                })
                .collect(),
            unreadable: clip(&report.unreadable, self.last_bytes, point.bytes_acquired),
            failed_reads: report.failed_reads,
            recovered_sectors: report.recovered_sectors,
            direct_io: report.direct_io,
        };
        self.file.write_all(&line(&entry)?)?;
        self.file.sync_data()?;
        self.last_bytes = point.bytes_acquired;
        tracing::info!(
            durable_bytes = point.bytes_acquired,
            chunks = point.chunks,
            "durable: the image can be resumed from here"
        );
        Ok(())
    }

    fn write_failed(&mut self) {
        self.release_reserve();
    }
}

/// The parts of `ranges` inside `from..to`.
fn clip(ranges: &[ByteRange], from: u64, to: u64) -> Vec<ByteRange> {
    ranges
        .iter()
        .filter_map(|r| {
            let a = r.offset_bytes.max(from);
            let b = (r.offset_bytes + r.length_bytes).min(to);
            (a < b).then(|| ByteRange {
                offset_bytes: a,
                length_bytes: b - a,
            })
        })
        .collect()
}

/// Writes `bytes` of zeros to `path` and syncs it: real blocks, not a sparse hole, on any
/// file system (exFAT has no fallocate).
fn hold_space(path: &Path, bytes: u64) -> io::Result<()> {
    let mut f = File::create(path)?;
    let block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = block.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        f.write_all(block.get(..n).unwrap_or_default())?;
        left -= n as u64;
    }
    f.sync_all()
}

/// The space the seal needs at most for a source of `size` bytes in chunks of `chunk`:
/// the seek table (12 bytes a frame), the manifest's chunk digests (about 70 bytes each)
/// and a margin for the rest of the manifest, errors.map and the signature.
#[must_use]
pub fn seal_reserve_bytes(size: u64, chunk: u64) -> u64 {
    let frames = size.div_ceil(chunk.max(1));
    frames * (12 + 72) + (1 << 20)
}

/// Header for a fresh run.
#[must_use]
pub fn new_header(
    started_utc: String,
    source: SourceIdentity,
    cfg: &crate::pipeline::PipelineConfig,
) -> JournalHeader {
    JournalHeader {
        format: JOURNAL_FORMAT.to_string(),
        started_utc,
        source,
        chunk_size_bytes: cfg.chunk_size as u64,
        zstd_level: cfg.level,
        md5: cfg.md5,
        sha1: cfg.sha1,
        sync_every_bytes: cfg.sync_every_bytes,
        resumes: Vec::new(),
    }
}

/// Cuts `image` after the kept frames (dropping an unjournaled tail or an old seek table)
/// and positions it there for appending.
pub fn cut_image(image: &mut File, path: &Path, kept_bytes: u64) -> Result<(), ResumeError> {
    use std::io::Seek;
    image
        .set_len(kept_bytes)
        .and_then(|()| image.seek(io::SeekFrom::Start(kept_bytes)).map(|_| ()))
        .and_then(|()| image.sync_all())
        .map_err(io_err(path, "cut the image after its verified frames"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::pipeline::PipelineConfig;
    use vestige_evidence::manifest::WriteProtection;

    fn identity(size: u64) -> SourceIdentity {
        SourceIdentity {
            path: "/dev/vdb".to_string(),
            canonical_path: None,
            kind: "block_device".to_string(),
            size_bytes: size,
            logical_sector_size: Some(512),
            physical_sector_size: Some(512),
            device_number: None,
            vendor: None,
            model: Some("QEMU HARDDISK".to_string()),
            serial: Some("S1".to_string()),
            wwn: None,
            loop_backing_file: None,
            write_protection: WriteProtection::default(),
        }
    }

    fn header_line(size: u64, chunk: usize) -> String {
        let mut cfg = PipelineConfig::new(3);
        cfg.chunk_size = chunk;
        let h = new_header("2026-11-25T00:00:00Z".to_string(), identity(size), &cfg);
        String::from_utf8(line(&h).unwrap()).unwrap()
    }

    fn entry(chunks: u64, bytes: u64, image: u64, frames: &[(u32, u32)]) -> String {
        let e = JournalEntry {
            chunks,
            bytes_acquired: bytes,
            image_bytes: image,
            frames: frames
                .iter()
                .map(|&(c, d)| JournalFrame {
                    c,
                    d,
                    x: Some(7),
                    b: "ab".repeat(32),
                })
                .collect(),
            unreadable: Vec::new(),
            failed_reads: 0,
            recovered_sectors: 0,
            direct_io: false,
        };
        String::from_utf8(line(&e).unwrap()).unwrap()
    }

    fn parse(text: &str) -> Result<LoadedJournal, ResumeError> {
        parse_journal(text.as_bytes(), Path::new("j"))
    }

    #[test]
    fn entries_are_used_while_they_add_up() {
        let h = header_line(10_000, 4096);
        let good = format!(
            "{h}{}{}",
            entry(2, 8192, 300, &[(100, 4096), (200, 4096)]),
            entry(3, 10_000, 350, &[(50, 1808)])
        );
        let j = parse(&good).unwrap();
        assert_eq!(j.frames.len(), 3);
        assert!(j.ignored.is_none());

        // Counts that do not follow from the frames end the journal there.
        let bad_counts = format!("{h}{}", entry(2, 8192, 999, &[(100, 4096), (200, 4096)]));
        let j = parse(&bad_counts).unwrap();
        assert!(j.frames.is_empty());
        assert!(j.ignored.unwrap().contains("do not follow"));

        // A frame restoring more than a chunk, or claiming a huge compressed size.
        for f in [(100, 4097), (1 << 30, 4096), (0, 4096)] {
            let text = format!("{h}{}", entry(1, u64::from(f.1), u64::from(f.0), &[f]));
            let j = parse(&text).unwrap();
            assert!(j.frames.is_empty(), "{f:?} accepted");
        }

        // A short frame anywhere but at the end of the source.
        let short = format!("{h}{}", entry(1, 100, 50, &[(50, 100)]));
        assert!(parse(&short).unwrap().frames.is_empty());

        // A torn last line (no newline) is ignored; the lines before it stand.
        let e2 = entry(3, 10_000, 350, &[(50, 1808)]);
        let torn = format!(
            "{h}{}{}",
            entry(2, 8192, 300, &[(100, 4096), (200, 4096)]),
            &e2[..e2.len() - 1]
        );
        let j = parse(&torn).unwrap();
        assert_eq!(j.frames.len(), 2);
        assert!(j.ignored.unwrap().contains("torn"));
    }

    #[test]
    fn a_bad_header_is_an_error_naming_the_journal() {
        for text in ["", "{\"format\":", "{}\n", "not json\n"] {
            let e = parse(text).unwrap_err();
            assert!(e.to_string().starts_with("j: "), "{e}");
        }
        let h = header_line(10_000, 4096).replace("vestige-resume-journal/1", "other/9");
        assert!(parse(&h).unwrap_err().to_string().contains("other/9"));
        let h = header_line(10_000, 0);
        assert!(parse(&h).unwrap_err().to_string().contains("chunk size"));
    }

    #[test]
    fn another_disk_is_refused_by_its_identity() {
        let a = identity(1 << 30);
        assert!(check_same_source(&a, &a).is_ok());
        let mut renamed = a.clone();
        renamed.path = "/dev/sdb".to_string();
        assert!(check_same_source(&a, &renamed).is_ok(), "device names move");
        let mut b = a.clone();
        b.serial = Some("S2".to_string());
        let e = check_same_source(&a, &b).unwrap_err().to_string();
        assert!(e.contains("serial") && e.contains("S2"), "{e}");
        let mut c = a.clone();
        c.size_bytes += 512;
        assert!(check_same_source(&a, &c)
            .unwrap_err()
            .to_string()
            .contains("size"));
    }

    #[test]
    fn clip_keeps_the_parts_inside() {
        let r = |o, l| ByteRange {
            offset_bytes: o,
            length_bytes: l,
        };
        assert_eq!(
            clip(&[r(0, 10), r(90, 20), r(200, 5)], 5, 100),
            vec![r(5, 5), r(90, 10)]
        );
    }
}
