//! The imaging pipeline: parallel positional reads → per-chunk digest and zstd frame in a
//! worker pool → ordered writer → whole-stream hashes in order.
//!
//! ```text
//! readers (R) ──chunk──▶ compressors (W) ──frame──▶ writer (1, reorders) ──chunk──▶ SHA-256
//!                                                                          ├──────▶ MD5
//!                                                                          └──────▶ SHA-1
//! ```
//! The writer is the one place that restores source order. It hands each chunk to the
//! stream hashers only after its frame is written, so when the output fails (media full or
//! removed) the hashes cover exactly the bytes the image holds. Memory is bounded by a pool
//! of chunk slots: a reader must take a slot before it claims the next chunk index, so the
//! lowest unwritten chunk always holds a slot and the pipeline cannot deadlock; a slot comes
//! back when every hasher is done with its chunk.

use sha2::Digest;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use vestige_evidence::manifest::{AcquisitionInfo, ByteRange, ChunkDigests, SourceHashes};
use vestige_evidence::read_at::ReadAt;
use vestige_evidence::seekable::{FrameCompressor, FrameEntry, SeekTableWriter};
use vestige_evidence::stream_hash::{Algorithm, StreamHashers};

/// How to run the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Bytes per chunk: one zstd frame and one BLAKE3 digest each.
    pub chunk_size: usize,
    /// zstd level.
    pub level: i32,
    /// Compression worker threads.
    pub compress_threads: usize,
    /// Reader threads issuing positional reads in parallel.
    pub read_threads: usize,
    /// Chunks in flight at once (bounds memory: about 2 × chunk_size each).
    pub slots: usize,
    /// Compute MD5 of the stream too.
    pub md5: bool,
    /// Compute SHA-1 of the stream too.
    pub sha1: bool,
    /// Make the image durable (fsync, then a [`Journal`] entry) after every this many
    /// source bytes; 0 only at the end. A resumed run restarts from the last such point.
    pub sync_every_bytes: u64,
}

impl PipelineConfig {
    /// Defaults sized for this machine: 4 MiB chunks, one compressor per CPU.
    pub fn new(level: i32) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            chunk_size: 4 << 20,
            level,
            compress_threads: cpus,
            read_threads: 2,
            slots: cpus * 2 + 4,
            md5: false,
            sha1: false,
            sync_every_bytes: DEFAULT_SYNC_EVERY_BYTES,
        }
    }

    /// The whole-stream hash algorithms this configuration computes.
    fn algorithms(&self) -> Vec<Algorithm> {
        let mut algorithms = vec![Algorithm::Sha256];
        if self.md5 {
            algorithms.push(Algorithm::Md5);
        }
        if self.sha1 {
            algorithms.push(Algorithm::Sha1);
        }
        algorithms
    }
}

/// Default durability interval: 256 MiB of source (see the README for its measured cost).
pub const DEFAULT_SYNC_EVERY_BYTES: u64 = 256 << 20;

/// What the stream hashers are fed: pipeline chunks, or a verified prefix's bytes.
struct Fed(Box<dyn AsRef<[u8]> + Send + Sync>);

impl AsRef<[u8]> for Fed {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// The part of the image already written and verified, when a run resumes an earlier one;
/// empty for a fresh run. The output file must be positioned at `image_bytes`.
pub struct Prefix {
    chunks: u64,
    bytes: u64,
    image_bytes: u64,
    image_hash: sha2::Sha256,
    frames: Vec<FrameEntry>,
    digests: Vec<String>,
    hashers: StreamHashers<Fed>,
}

impl std::fmt::Debug for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefix")
            .field("chunks", &self.chunks)
            .field("bytes", &self.bytes)
            .field("image_bytes", &self.image_bytes)
            .finish_non_exhaustive()
    }
}

impl Prefix {
    /// An empty prefix: the run starts at chunk 0.
    #[must_use]
    pub fn empty(cfg: &PipelineConfig) -> Self {
        Self {
            chunks: 0,
            bytes: 0,
            image_bytes: 0,
            image_hash: sha2::Sha256::new(),
            frames: Vec::new(),
            digests: Vec::new(),
            hashers: StreamHashers::start(&cfg.algorithms(), cfg.slots.max(1)),
        }
    }

    /// Appends one chunk read back from the image and checked: its source bytes, its frame
    /// as stored, the frame's entry and its BLAKE3 digest (hex).
    pub fn push(&mut self, raw: Vec<u8>, frame: &[u8], entry: FrameEntry, digest: String) {
        self.chunks += 1;
        self.bytes += raw.len() as u64;
        self.image_bytes += frame.len() as u64;
        self.image_hash.update(frame);
        self.frames.push(entry);
        self.digests.push(digest);
        self.hashers.feed(&Arc::new(Fed(Box::new(raw))));
    }

    /// Chunks in the prefix.
    #[must_use]
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Source bytes in the prefix.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Image bytes (frames) in the prefix.
    #[must_use]
    pub fn image_bytes(&self) -> u64 {
        self.image_bytes
    }
}

/// A point at which the image is durable: every frame up to here is on stable storage.
#[derive(Debug)]
pub struct Durable<'a> {
    /// Chunks in the image.
    pub chunks: u64,
    /// Source bytes in the image.
    pub bytes_acquired: u64,
    /// Image bytes (frames, no seek table).
    pub image_bytes: u64,
    /// The frames made durable since the previous point, in order.
    pub new_frames: &'a [FrameEntry],
    /// Their chunks' BLAKE3 digests (hex).
    pub new_digests: &'a [String],
}

/// Told about durable points, so an interrupted run can be resumed (see `crate::resume`).
pub trait Journal {
    /// Records a durable point. An error stops the run as a write error: the medium that
    /// holds the journal is the one that holds the image.
    ///
    /// # Errors
    /// The journal could not be written.
    fn durable(&mut self, point: &Durable<'_>) -> io::Result<()>;

    /// Writing the image failed (media full or removed): release any space held back so
    /// the seek table and manifest can still be written.
    fn write_failed(&mut self) {}
}

/// No journal: a run that cannot be resumed (memory, tests).
#[derive(Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn durable(&mut self, _: &Durable<'_>) -> io::Result<()> {
        Ok(())
    }
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Source bytes read, compressed, written and handed to the hashers.
    pub bytes_done: AtomicU64,
    /// The source size, set when the pipeline starts (0 until then).
    pub bytes_total: AtomicU64,
    /// Compressed bytes written.
    pub bytes_written: AtomicU64,
}

/// Why the pipeline stopped before the end of the source.
#[derive(Debug, thiserror::Error)]
pub enum StopReason {
    /// The operator interrupted it.
    #[error("interrupted by the operator before byte {offset_bytes}")]
    Cancelled {
        /// The first byte not acquired.
        offset_bytes: u64,
    },
    /// A read failed.
    #[error("read of {length_bytes} bytes at byte {offset_bytes} of the source failed")]
    Read {
        /// Where the failed read started.
        offset_bytes: u64,
        /// How long it was.
        length_bytes: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The source ended before the size it had when opened.
    #[error("source ended at byte {offset_bytes}, expected {expected_bytes} bytes (did it shrink or vanish?)")]
    Truncated {
        /// Where the data ended.
        offset_bytes: u64,
        /// The size when opened.
        expected_bytes: u64,
    },
    /// Writing the image failed.
    #[error("writing the image at byte {offset_bytes} of image.zst failed")]
    Write {
        /// Offset in image.zst.
        offset_bytes: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// zstd failed (out of memory, usually).
    #[error("compressing chunk {chunk} failed: {message}")]
    Compress {
        /// Chunk index.
        chunk: u64,
        /// zstd's message.
        message: String,
    },
}

/// What the pipeline produced.
#[derive(Debug)]
pub struct PipelineOutput {
    /// Source bytes in the image, a prefix of the source from byte 0.
    pub bytes_acquired: u64,
    /// SHA-256 of those bytes.
    pub sha256: String,
    /// MD5, when asked.
    pub md5: Option<String>,
    /// SHA-1, when asked.
    pub sha1: Option<String>,
    /// BLAKE3 of each chunk, in order.
    pub chunk_digests: Vec<String>,
    /// The frames written, in order (the seek table).
    pub frames: Vec<FrameEntry>,
    /// Size of the image file, seek table included.
    pub image_size: u64,
    /// SHA-256 of the image file as written.
    pub image_sha256: String,
    /// Why it stopped early; None when the whole source was acquired.
    pub stopped: Option<StopReason>,
}

/// A chunk slot: the raw bytes and their frame.
#[derive(Debug, Default)]
struct Slot {
    raw: Vec<u8>,
    frame: Vec<u8>,
}

#[derive(Debug)]
struct Pool {
    state: Mutex<(Vec<Slot>, usize)>,
    returned: Condvar,
    capacity: usize,
}

impl Pool {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new((Vec::new(), 0)),
            returned: Condvar::new(),
            capacity: capacity.max(1),
        })
    }

    /// Takes a slot, waiting while all are in flight.
    fn take(&self) -> Slot {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(slot) = st.0.pop() {
                return slot;
            }
            if st.1 < self.capacity {
                st.1 += 1;
                return Slot::default();
            }
            st = self.returned.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give(&self, slot: Slot) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0.push(slot);
        self.returned.notify_one();
    }
}

/// One chunk travelling through the pipeline; its slot returns to the pool on drop.
#[derive(Debug)]
struct Chunk {
    index: u64,
    slot: Slot,
    entry: Option<FrameEntry>,
    digest: [u8; 32],
    pool: Arc<Pool>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.slot.raw
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.slot));
    }
}

/// Shared stop state: the earliest failure wins, and everyone stops claiming work.
#[derive(Debug, Default)]
struct Stop {
    flag: AtomicBool,
    reason: Mutex<Option<(u64, StopReason)>>,
}

impl Stop {
    fn set(&self, chunk: u64, reason: StopReason) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.as_ref().is_none_or(|(c, _)| chunk < *c) {
            *r = Some((chunk, reason));
        }
        self.flag.store(true, Ordering::SeqCst);
    }
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// Runs the pipeline over `source`, writing the seekable container to `out`.
///
/// Never fails as a whole: a failure stops the pipeline and is returned in
/// [`PipelineOutput::stopped`], with everything before it written, hashed and sealed with a
/// seek table (when the output still accepts writes).
pub fn run(
    source: &dyn ReadAt,
    out: File,
    cfg: &PipelineConfig,
    progress: &Progress,
    cancel: &AtomicBool,
) -> PipelineOutput {
    run_from(
        source,
        out,
        cfg,
        progress,
        cancel,
        Prefix::empty(cfg),
        &mut NoJournal,
    )
}

/// As [`run`], starting after `prefix` (a verified part of an earlier run's image; `out` is
/// positioned at its end) and telling `journal` about every durable point.
pub fn run_from(
    source: &dyn ReadAt,
    out: File,
    cfg: &PipelineConfig,
    progress: &Progress,
    cancel: &AtomicBool,
    prefix: Prefix,
    journal: &mut dyn Journal,
) -> PipelineOutput {
    let size = source.size();
    progress.bytes_total.store(size, Ordering::Relaxed);
    progress.bytes_done.store(prefix.bytes, Ordering::Relaxed);
    let chunk_size = cfg.chunk_size.max(4096);
    let chunk_bytes = chunk_size as u64;
    let n_chunks = size.div_ceil(chunk_bytes);
    let pool = Pool::new(cfg.slots.max(cfg.read_threads + cfg.compress_threads + 2));
    let next = AtomicU64::new(prefix.chunks);
    let stop = Stop::default();

    let (work_tx, work_rx) = sync_channel::<Chunk>(cfg.slots);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = sync_channel::<Chunk>(cfg.slots);

    std::thread::scope(|s| {
        for _ in 0..cfg.read_threads.max(1) {
            let work_tx = work_tx.clone();
            let (pool, next, stop) = (&pool, &next, &stop);
            s.spawn(move || {
                read_loop(
                    source, size, chunk_size, n_chunks, pool, next, stop, cancel, &work_tx,
                )
            });
        }
        drop(work_tx);

        for _ in 0..cfg.compress_threads.max(1) {
            let (work_rx, done_tx, stop) = (Arc::clone(&work_rx), done_tx.clone(), &stop);
            let level = cfg.level;
            s.spawn(move || compress_loop(level, &work_rx, &done_tx, stop));
        }
        drop(done_tx);

        let (hashers, state) = prefix.into_writer(cfg.sync_every_bytes);
        let written = write_loop(out, &done_rx, &hashers, state, &stop, progress, journal);
        let mut digests = hashers.finish();
        let sha256 = digests.remove(&Algorithm::Sha256).unwrap_or_default();
        let hashed = sha256.bytes;
        let bytes_acquired = written.bytes_acquired;
        if hashed != bytes_acquired {
            stop.set(
                0,
                StopReason::Write {
                    offset_bytes: written.image_size,
                    source: io::Error::other(format!(
                        "internal: hashed {hashed} bytes but wrote {bytes_acquired}"
                    )),
                },
            );
        }
        let mut stopped = stop
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(|(_, r)| r);
        if stopped.is_none() && bytes_acquired < size {
            stopped = Some(StopReason::Cancelled {
                offset_bytes: bytes_acquired,
            });
        }
        PipelineOutput {
            bytes_acquired,
            sha256: sha256.hex,
            md5: digests.remove(&Algorithm::Md5).map(|d| d.hex),
            sha1: digests.remove(&Algorithm::Sha1).map(|d| d.hex),
            chunk_digests: written.chunk_digests,
            frames: written.frames,
            image_size: written.image_size,
            image_sha256: written.image_sha256,
            stopped: stopped.or(written.seal_error),
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn read_loop(
    source: &dyn ReadAt,
    size: u64,
    chunk_size: usize,
    n_chunks: u64,
    pool: &Arc<Pool>,
    next: &AtomicU64,
    stop: &Stop,
    cancel: &AtomicBool,
    work_tx: &SyncSender<Chunk>,
) {
    let chunk_bytes = chunk_size as u64;
    loop {
        if stop.is_set() {
            return;
        }
        // Take the slot before claiming an index: see the module docs (no deadlock).
        let slot = pool.take();
        let index = next.fetch_add(1, Ordering::SeqCst);
        let mut chunk = Chunk {
            index,
            slot,
            entry: None,
            digest: [0; 32],
            pool: Arc::clone(pool),
        };
        if index >= n_chunks {
            return;
        }
        let offset = index * chunk_bytes;
        if cancel.load(Ordering::SeqCst) {
            stop.set(
                index,
                StopReason::Cancelled {
                    offset_bytes: offset,
                },
            );
            return;
        }
        let want = usize::try_from((size - offset).min(chunk_bytes)).unwrap_or(chunk_size);
        chunk.slot.raw.resize(want, 0);
        match read_full(source, &mut chunk.slot.raw, offset) {
            Ok(n) if n == want => {}
            Ok(n) => {
                stop.set(
                    index,
                    StopReason::Truncated {
                        offset_bytes: offset + n as u64,
                        expected_bytes: size,
                    },
                );
                return;
            }
            Err(e) => {
                stop.set(
                    index,
                    StopReason::Read {
                        offset_bytes: offset,
                        length_bytes: want as u64,
                        source: e,
                    },
                );
                return;
            }
        }
        if work_tx.send(chunk).is_err() {
            return;
        }
    }
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
pub(crate) fn read_full(source: &dyn ReadAt, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0usize;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        match source.read_at(rest, offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// True when every byte is zero. Unallocated space is mostly zeros (44 % of the chunks of
/// the benchmark corpus), and recognising it is far cheaper than compressing and hashing it.
fn is_zero(data: &[u8]) -> bool {
    let mut blocks = data.chunks_exact(64);
    blocks
        .by_ref()
        .all(|b| b.iter().fold(0u8, |acc, &x| acc | x) == 0)
        && blocks.remainder().iter().all(|&x| x == 0)
}

/// A zero chunk's frame, entry and digest, computed once per chunk length and reused:
/// byte for byte what compressing that chunk would give.
type ZeroFrame = (Vec<u8>, FrameEntry, [u8; 32]);

fn compress_loop(
    level: i32,
    work_rx: &Mutex<Receiver<Chunk>>,
    done_tx: &SyncSender<Chunk>,
    stop: &Stop,
) {
    let mut compressor = match FrameCompressor::new(level) {
        Ok(c) => Some(c),
        Err(e) => {
            stop.set(
                0,
                StopReason::Compress {
                    chunk: 0,
                    message: e.to_string(),
                },
            );
            None
        }
    };
    let mut zero_frames: BTreeMap<usize, ZeroFrame> = BTreeMap::new();
    loop {
        let next = work_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(mut chunk) = next else { return };
        let Some(comp) = compressor.as_mut() else {
            continue;
        };
        let len = chunk.slot.raw.len();
        if is_zero(&chunk.slot.raw) {
            if let Some((frame, entry, digest)) = zero_frames.get(&len) {
                chunk.slot.frame.clear();
                chunk.slot.frame.extend_from_slice(frame);
                chunk.entry = Some(*entry);
                chunk.digest = *digest;
                if done_tx.send(chunk).is_err() {
                    return;
                }
                continue;
            }
        }
        chunk.digest = *blake3::hash(&chunk.slot.raw).as_bytes();
        match comp.compress(&chunk.slot.raw, &mut chunk.slot.frame) {
            Ok(entry) => chunk.entry = Some(entry),
            Err(e) => {
                stop.set(
                    chunk.index,
                    StopReason::Compress {
                        chunk: chunk.index,
                        message: e.to_string(),
                    },
                );
                continue;
            }
        }
        if let Some(entry) = chunk.entry {
            if !zero_frames.contains_key(&len) && is_zero(&chunk.slot.raw) {
                zero_frames.insert(len, (chunk.slot.frame.clone(), entry, chunk.digest));
            }
        }
        if done_tx.send(chunk).is_err() {
            return;
        }
    }
}

/// How much image is written before its write-back is started (see [`crate::writeback`]).
const WRITEBACK_STRIDE_BYTES: u64 = 32 << 20;

struct Written {
    bytes_acquired: u64,
    chunk_digests: Vec<String>,
    frames: Vec<FrameEntry>,
    image_size: u64,
    image_sha256: String,
    seal_error: Option<StopReason>,
}

/// The writer's running state: where a fresh run starts empty, a resumed one after its
/// verified prefix.
struct WriterState {
    chunks: u64,
    bytes_acquired: u64,
    image_size: u64,
    image_hash: sha2::Sha256,
    table: SeekTableWriter,
    digests: Vec<String>,
    sync_every: u64,
}

impl Prefix {
    fn into_writer(self, sync_every: u64) -> (StreamHashers<Fed>, WriterState) {
        let mut table = SeekTableWriter::new(true);
        for f in self.frames {
            table.push(f);
        }
        let state = WriterState {
            chunks: self.chunks,
            bytes_acquired: self.bytes,
            image_size: self.image_bytes,
            image_hash: self.image_hash,
            table,
            digests: self.digests,
            sync_every,
        };
        (self.hashers, state)
    }
}

/// Makes everything written so far durable and tells the journal: fsync (data only: the
/// file's size is part of it), then one journal entry for the frames since `*journaled`.
fn make_durable(
    out: &File,
    st: &WriterState,
    journaled: &mut u64,
    journal: &mut dyn Journal,
) -> io::Result<()> {
    out.sync_data()?;
    let from = usize::try_from(*journaled).unwrap_or(usize::MAX);
    journal.durable(&Durable {
        chunks: st.chunks,
        bytes_acquired: st.bytes_acquired,
        image_bytes: st.image_size,
        new_frames: st.table.frames().get(from..).unwrap_or_default(),
        new_digests: st.digests.get(from..).unwrap_or_default(),
    })?;
    *journaled = st.chunks;
    Ok(())
}

/// Writes one chunk's frame, then accounts for it: image hash and size, write-back, seek
/// table, digest, progress, and the stream hashers. On error nothing is accounted, so
/// `st` still describes the image up to the last whole frame.
fn write_chunk(
    out: &mut File,
    st: &mut WriterState,
    chunk: Chunk,
    hashers: &StreamHashers<Fed>,
    progress: &Progress,
    written_back: &mut u64,
) -> io::Result<()> {
    let Some(entry) = chunk.entry else {
        return Err(io::Error::other("internal: a chunk without its frame"));
    };
    out.write_all(&chunk.slot.frame)?;
    st.image_hash.update(&chunk.slot.frame);
    st.image_size += chunk.slot.frame.len() as u64;
    if st.image_size - *written_back >= WRITEBACK_STRIDE_BYTES {
        // Best effort: a failure here only means the next fsync does more work.
        let _ = crate::writeback::start(out, *written_back, st.image_size - *written_back);
        *written_back = st.image_size;
    }
    st.bytes_acquired += chunk.slot.raw.len() as u64;
    progress
        .bytes_written
        .store(st.image_size, Ordering::Relaxed);
    st.table.push(entry);
    st.digests.push(hex::encode(chunk.digest));
    st.chunks += 1;
    hashers.feed(&Arc::new(Fed(Box::new(chunk))));
    progress
        .bytes_done
        .store(st.bytes_acquired, Ordering::Relaxed);
    Ok(())
}

/// Writes frames in source order, forwards written chunks to the hashers, makes the image
/// durable every `sync_every` source bytes, and seals the container with its seek table at
/// the end.
fn write_loop(
    mut out: File,
    done_rx: &Receiver<Chunk>,
    hashers: &StreamHashers<Fed>,
    mut st: WriterState,
    stop: &Stop,
    progress: &Progress,
    journal: &mut dyn Journal,
) -> Written {
    let mut pending: BTreeMap<u64, Chunk> = BTreeMap::new();
    let mut written_back = st.image_size;
    let mut journaled = st.chunks;
    let mut synced_at = st.bytes_acquired;
    let mut failed = false;
    for chunk in done_rx {
        if failed {
            continue; // drain, so readers blocked on the pool wake up and see the stop
        }
        pending.insert(chunk.index, chunk);
        while let Some(chunk) = pending.remove(&st.chunks) {
            if chunk.entry.is_none() {
                break;
            }
            let index = chunk.index;
            let written = write_chunk(
                &mut out,
                &mut st,
                chunk,
                hashers,
                progress,
                &mut written_back,
            )
            .and_then(|()| {
                if st.sync_every == 0 || st.bytes_acquired - synced_at < st.sync_every {
                    return Ok(());
                }
                synced_at = st.bytes_acquired;
                make_durable(&out, &st, &mut journaled, journal)
            });
            if let Err(e) = written {
                stop.set(
                    index,
                    StopReason::Write {
                        offset_bytes: st.image_size,
                        source: e,
                    },
                );
                failed = true;
                pending.clear();
                break;
            }
        }
    }
    if failed {
        // Give back the space held for the seal, and drop a partly written frame.
        journal.write_failed();
        let _ = out.set_len(st.image_size);
    }
    // The last durable point covers every frame written; a resume truncates the seek table.
    if st.chunks > journaled || st.chunks == 0 {
        if let Err(e) = make_durable(&out, &st, &mut journaled, journal) {
            tracing::warn!(error = %e, "the final durable point could not be journaled");
        }
    }
    // Seal: the seek table for the frames written, then make it durable.
    let seek_table = st.table.to_bytes();
    let mut seal_error = None;
    match out
        .seek(io::SeekFrom::Start(st.image_size))
        .and_then(|_| out.write_all(&seek_table))
        .and_then(|()| out.sync_all())
    {
        Ok(()) => {
            st.image_hash.update(&seek_table);
            st.image_size += seek_table.len() as u64;
        }
        Err(e) => {
            seal_error = Some(StopReason::Write {
                offset_bytes: st.image_size,
                source: e,
            });
        }
    }
    Written {
        bytes_acquired: st.bytes_acquired,
        chunk_digests: st.digests,
        frames: st.table.frames().to_vec(),
        image_size: st.image_size,
        image_sha256: hex::encode(st.image_hash.finalize()),
        seal_error,
    }
}

impl PipelineOutput {
    /// The manifest's record of what the run did: `bytes_expected` of the source,
    /// `unreadable_ranges` (in source offsets) zero-filled, and the settings of `cfg`.
    #[must_use]
    pub fn acquisition_info(
        &self,
        cfg: &PipelineConfig,
        bytes_expected: u64,
        unreadable_ranges: Vec<ByteRange>,
    ) -> AcquisitionInfo {
        AcquisitionInfo {
            bytes_expected,
            bytes_acquired: self.bytes_acquired,
            unreadable_ranges,
            chunk_size_bytes: cfg.chunk_size as u64,
            zstd_level: cfg.level,
            compression_threads: u32::try_from(cfg.compress_threads).unwrap_or(u32::MAX),
            rescue: None,
            resumes: Vec::new(),
        }
    }

    /// The source stream's hashes.
    #[must_use]
    pub fn source_hashes(&self) -> SourceHashes {
        SourceHashes {
            sha256: self.sha256.clone(),
            md5: self.md5.clone(),
            sha1: self.sha1.clone(),
        }
    }

    /// The per-chunk BLAKE3 digests, at `cfg`'s chunk size.
    #[must_use]
    pub fn chunk_digests(&self, cfg: &PipelineConfig) -> ChunkDigests {
        ChunkDigests {
            algorithm: "BLAKE3".to_string(),
            chunk_size_bytes: cfg.chunk_size as u64,
            digests: self.chunk_digests.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use vestige_evidence::seekable::SeekableReader;

    /// A source that fails reads touching `bad_from..` (a fault-injecting ReadAt).
    struct Faulty {
        data: Vec<u8>,
        bad_from: u64,
    }

    impl ReadAt for Faulty {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            if offset + buf.len() as u64 > self.bad_from {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.data.read_at(buf, offset)
        }
        fn size(&self) -> u64 {
            self.data.len() as u64
        }
    }

    fn pseudo_random(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mix compressible runs with noise so frames differ in size.
                if (i / 100_000) % 3 == 0 {
                    0
                } else {
                    x.to_le_bytes()[0]
                }
            })
            .collect()
    }

    fn config(chunk: usize) -> PipelineConfig {
        let mut c = PipelineConfig::new(1);
        c.chunk_size = chunk;
        c.md5 = true;
        c.sha1 = true;
        c
    }

    fn run_to_file(src: &dyn ReadAt, cfg: &PipelineConfig) -> (PipelineOutput, Vec<u8>) {
        let f = tempfile::NamedTempFile::new().unwrap();
        let out = run(
            src,
            f.reopen().unwrap(),
            cfg,
            &Progress::default(),
            &AtomicBool::new(false),
        );
        (out, std::fs::read(f.path()).unwrap())
    }

    #[test]
    fn parallel_pipeline_equals_sequential_hashes_and_restores_the_source() {
        let data = pseudo_random(3 * 65536 + 12345);
        let (out, image) = run_to_file(&data, &config(65536));
        assert!(out.stopped.is_none());
        assert_eq!(out.bytes_acquired, data.len() as u64);
        assert_eq!(out.sha256, hex::encode(sha2::Sha256::digest(&data)));
        assert_eq!(out.md5.unwrap(), hex::encode(md5::Md5::digest(&data)));
        assert_eq!(out.sha1.unwrap(), hex::encode(sha1::Sha1::digest(&data)));
        assert_eq!(out.chunk_digests.len(), 4);
        for (i, chunk) in data.chunks(65536).enumerate() {
            assert_eq!(
                out.chunk_digests[i],
                blake3::hash(chunk).to_hex().to_string()
            );
        }
        assert_eq!(out.image_size, image.len() as u64);
        assert_eq!(out.image_sha256, hex::encode(sha2::Sha256::digest(&image)));
        let reader = SeekableReader::open(image).unwrap();
        let mut back = vec![0u8; data.len()];
        reader.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn zero_chunks_reuse_one_frame_and_stay_exact() {
        let mut data = vec![0u8; 5 * 65536 + 100];
        data[3 * 65536 + 7] = 1; // one non-zero chunk among zero ones
        let (out, image) = run_to_file(&data, &config(65536));
        assert!(out.stopped.is_none());
        for (i, chunk) in data.chunks(65536).enumerate() {
            assert_eq!(
                out.chunk_digests[i],
                blake3::hash(chunk).to_hex().to_string()
            );
        }
        assert_eq!(out.frames[0], out.frames[1]);
        assert_ne!(out.frames[2], out.frames[3]);
        let reader = SeekableReader::open(image).unwrap();
        let mut back = vec![1u8; data.len()];
        reader.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, data);
        assert!(is_zero(&[0; 1000]) && !is_zero(&[0, 0, 1]) && is_zero(&[]));
        let mut tail = vec![0u8; 130];
        tail[129] = 9;
        assert!(!is_zero(&tail));
    }

    #[test]
    fn empty_source_gives_an_empty_valid_container() {
        let (out, image) = run_to_file(&Vec::<u8>::new(), &config(65536));
        assert!(out.stopped.is_none());
        assert_eq!(out.bytes_acquired, 0);
        assert_eq!(out.sha256, hex::encode(sha2::Sha256::digest(b"")));
        assert_eq!(SeekableReader::open(image).unwrap().size(), 0);
    }

    #[test]
    fn read_error_stops_at_the_failing_chunk_with_hashes_of_the_prefix() {
        let data = pseudo_random(10 * 65536);
        let src = Faulty {
            data: data.clone(),
            bad_from: 6 * 65536 + 5,
        };
        let (out, image) = run_to_file(&src, &config(65536));
        match &out.stopped {
            Some(StopReason::Read {
                offset_bytes,
                length_bytes,
                ..
            }) => {
                assert_eq!(*offset_bytes, 6 * 65536);
                assert_eq!(*length_bytes, 65536);
            }
            other => panic!("expected a read error, got {other:?}"),
        }
        let prefix = &data[..6 * 65536];
        assert_eq!(out.bytes_acquired, prefix.len() as u64);
        assert_eq!(out.sha256, hex::encode(sha2::Sha256::digest(prefix)));
        assert_eq!(out.chunk_digests.len(), 6);
        // The partial container is sealed and restores exactly the prefix.
        let reader = SeekableReader::open(image).unwrap();
        assert_eq!(reader.size(), prefix.len() as u64);
        let mut back = vec![0u8; prefix.len()];
        reader.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, prefix);
    }

    #[test]
    fn cancel_before_start_acquires_nothing_and_says_why() {
        let data = pseudo_random(4 * 65536);
        let f = tempfile::NamedTempFile::new().unwrap();
        let out = run(
            &data,
            f.reopen().unwrap(),
            &config(65536),
            &Progress::default(),
            &AtomicBool::new(true),
        );
        assert!(matches!(
            out.stopped,
            Some(StopReason::Cancelled { offset_bytes: 0 })
        ));
        assert_eq!(out.bytes_acquired, 0);
    }

    #[test]
    fn full_output_media_stops_cleanly_with_a_write_error() {
        // /dev/full fails every write with ENOSPC, like an evidence drive that filled up.
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let data = pseudo_random(8 * 65536);
        let out = run(
            &data,
            full,
            &config(65536),
            &Progress::default(),
            &AtomicBool::new(false),
        );
        match &out.stopped {
            Some(StopReason::Write {
                offset_bytes: 0,
                source,
            }) => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
            }
            other => panic!("expected a write error, got {other:?}"),
        }
        assert_eq!(out.bytes_acquired, 0);
        assert_eq!(out.sha256, hex::encode(sha2::Sha256::digest(b"")));
    }

    #[test]
    fn a_source_that_shrinks_is_reported_as_truncated() {
        struct Shrunk(Vec<u8>);
        impl ReadAt for Shrunk {
            fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
                // Claims 4 chunks, holds 2.5.
                self.0.read_at(buf, offset)
            }
            fn size(&self) -> u64 {
                4 * 65536
            }
        }
        let src = Shrunk(pseudo_random(2 * 65536 + 32768));
        let (out, _) = run_to_file(&src, &config(65536));
        assert!(
            matches!(out.stopped, Some(StopReason::Truncated { offset_bytes, expected_bytes })
                if offset_bytes == 2 * 65536 + 32768 && expected_bytes == 4 * 65536),
            "{:?}",
            out.stopped
        );
        assert_eq!(out.bytes_acquired, 2 * 65536);
    }

    /// Records the durable points it is told about.
    #[derive(Default)]
    struct Recorder {
        points: Vec<(u64, u64, u64, usize)>,
        write_failed: bool,
    }

    impl Journal for Recorder {
        fn durable(&mut self, p: &Durable<'_>) -> io::Result<()> {
            assert_eq!(p.new_frames.len(), p.new_digests.len());
            self.points.push((
                p.chunks,
                p.bytes_acquired,
                p.image_bytes,
                p.new_frames.len(),
            ));
            Ok(())
        }
        fn write_failed(&mut self) {
            self.write_failed = true;
        }
    }

    #[test]
    fn durable_points_come_at_the_interval_and_at_the_end() {
        let data = pseudo_random(10 * 65536 + 7);
        let mut cfg = config(65536);
        cfg.sync_every_bytes = 3 * 65536;
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut rec = Recorder::default();
        let out = run_from(
            &data,
            f.reopen().unwrap(),
            &cfg,
            &Progress::default(),
            &AtomicBool::new(false),
            Prefix::empty(&cfg),
            &mut rec,
        );
        assert!(out.stopped.is_none());
        let chunks: Vec<u64> = rec.points.iter().map(|p| p.0).collect();
        assert_eq!(chunks, vec![3, 6, 9, 11]);
        assert_eq!(rec.points.iter().map(|p| p.3).sum::<usize>(), 11);
        let frames_end: u64 = out
            .frames
            .iter()
            .map(|f| u64::from(f.compressed_size))
            .sum();
        assert_eq!(rec.points.last().unwrap().2, frames_end);
        assert_eq!(rec.points.last().unwrap().1, data.len() as u64);
        assert!(!rec.write_failed);
    }

    #[test]
    fn a_run_from_a_prefix_equals_one_run() {
        let data = pseudo_random(9 * 65536 + 100);
        let cfg = config(65536);
        let (whole, whole_image) = run_to_file(&data, &cfg);
        // Keep the first 4 frames of the whole run, as a verified resume would.
        let mut prefix = Prefix::empty(&cfg);
        let mut at = 0usize;
        for (i, f) in whole.frames.iter().take(4).enumerate() {
            let frame = &whole_image[at..at + f.compressed_size as usize];
            at += frame.len();
            let raw = data[i * 65536..(i + 1) * 65536].to_vec();
            prefix.push(raw, frame, *f, whole.chunk_digests[i].clone());
        }
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut out_file = f.reopen().unwrap();
        std::io::Write::write_all(&mut out_file, &whole_image[..at]).unwrap();
        let resumed = run_from(
            &data,
            out_file,
            &cfg,
            &Progress::default(),
            &AtomicBool::new(false),
            prefix,
            &mut NoJournal,
        );
        assert!(resumed.stopped.is_none());
        assert_eq!(resumed.sha256, whole.sha256);
        assert_eq!(resumed.md5, whole.md5);
        assert_eq!(resumed.sha1, whole.sha1);
        assert_eq!(resumed.chunk_digests, whole.chunk_digests);
        assert_eq!(resumed.image_sha256, whole.image_sha256);
        assert_eq!(std::fs::read(f.path()).unwrap(), whole_image);
    }

    #[test]
    fn a_full_medium_releases_the_reserve_and_journals_what_was_written() {
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let data = pseudo_random(4 * 65536);
        let cfg = config(65536);
        let mut rec = Recorder::default();
        let out = run_from(
            &data,
            full,
            &cfg,
            &Progress::default(),
            &AtomicBool::new(false),
            Prefix::empty(&cfg),
            &mut rec,
        );
        assert!(matches!(out.stopped, Some(StopReason::Write { .. })));
        assert!(rec.write_failed, "the seal reserve was not released");
    }
}
