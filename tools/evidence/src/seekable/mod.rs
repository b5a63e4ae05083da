//! The image container: zstd's seekable format (zstd `contrib/seekable_format`,
//! `zstd_seekable_compression_format.md`, version 0.1.0).
//!
//! A container is a run of independent zstd frames, one per chunk of the source, followed
//! by one skippable frame that holds the seek table:
//!
//! ```text
//! | frame 0 | frame 1 | … | Skippable_Magic_Number | Frame_Size | entries… | footer |
//!                          0x184D2A5E (u32 LE)      u32 LE       8 or 12 B   9 B
//! entry:  Compressed_Size u32 LE, Decompressed_Size u32 LE, [Checksum u32 LE]
//! footer: Number_Of_Frames u32 LE, Seek_Table_Descriptor u8, Seekable_Magic_Number 0x8F92EAB1
//! ```
//!
//! Stock `zstd -d` skips the skippable frame and restores the raw bytes; the seek table gives
//! random access ([`SeekableReader`]).
//!
//! Writing: each acquisition worker owns a [`FrameCompressor`] and turns a chunk into one
//! frame and its [`FrameEntry`]; the ordered writer appends the frames and pushes the entries
//! into a [`SeekTableWriter`], whose [`SeekTableWriter::to_bytes`] ends the file.
//!
//! Reading: [`SeekTable::read`] validates the table of a possibly hostile container before
//! anything is allocated on its word; [`decompress_frame`] checks one frame against its entry.
//!
//! ```
//! use vestige_evidence::read_at::ReadAt;
//! use vestige_evidence::seekable::{FrameCompressor, SeekTableWriter, SeekableReader};
//!
//! let source = b"chunk one, chunk two, and a short tail".to_vec();
//! let mut compressor = FrameCompressor::new(3)?;
//! let mut table = SeekTableWriter::new(true);
//! let mut container = Vec::new();
//! let mut frame = Vec::new();
//! for chunk in source.chunks(16) {
//!     let entry = compressor.compress(chunk, &mut frame)?;
//!     container.extend_from_slice(&frame);
//!     table.push(entry);
//! }
//! container.extend_from_slice(&table.to_bytes());
//!
//! let reader = SeekableReader::open(container)?;
//! assert_eq!(reader.size(), source.len() as u64);
//! let mut buf = [0u8; 9];
//! reader.read_exact_at(&mut buf, 11)?; // crosses the frame boundary at byte 16
//! assert_eq!(&buf, b"chunk two");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use zstd::zstd_safe::{self, CParameter, DCtx, InBuffer, OutBuffer};

use crate::read_at::ReadAt;

/// `Skippable_Magic_Number` of the seek-table frame (a zstd skippable frame).
pub const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// `Seekable_Magic_Number`, the last four bytes of every container.
pub const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Size of `Seek_Table_Footer` in bytes.
pub const FOOTER_BYTES: u64 = 9;
/// Size of the skippable frame header (`Skippable_Magic_Number` + `Frame_Size`) in bytes.
pub const SKIPPABLE_HEADER_BYTES: u64 = 8;
/// Largest `Decompressed_Size` the reader accepts for one frame (1 GiB, as the reference's
/// `ZSTD_SEEKABLE_MAX_FRAME_DECOMPRESSED_SIZE`). Buffers still grow only as data really comes
/// out of zstd, never on the table's word alone.
pub const MAX_FRAME_DECOMPRESSED_BYTES: u32 = 1 << 30;

/// `Seek_Table_Descriptor` bit 7: each entry carries a checksum.
const CHECKSUM_FLAG: u8 = 0x80;
/// `Seek_Table_Descriptor` bits 6-2: reserved for breaking changes, must be zero.
const RESERVED_BITS: u8 = 0x7C;
/// Largest up-front reservation of a frame's output buffer; beyond it the buffer grows as
/// zstd produces data, so a lying `Decompressed_Size` cannot make us allocate.
const MAX_UPFRONT_RESERVE_BYTES: usize = 16 << 20;
/// Entries read from the file per positional read while loading the table.
const TABLE_ENTRIES_PER_READ: usize = 4096;
/// Frames kept decompressed by a [`SeekableReader`] by default.
pub const DEFAULT_CACHE_FRAMES: usize = 4;
/// Bytes of decompressed frames kept by a [`SeekableReader`] by default (the most recently
/// used frame is always kept, whatever its size).
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// One seek-table entry (`Seek_Table_Entries`), as written or as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FrameEntry {
    /// `Compressed_Size`: bytes of the zstd frame in the container.
    pub compressed_size: u32,
    /// `Decompressed_Size`: bytes of source data the frame restores.
    pub decompressed_size: u32,
    /// `Checksum`: low 32 bits of XXH64 (seed 0) of the decompressed data, when the table
    /// carries checksums (see [`frame_checksum`]).
    pub checksum: Option<u32>,
}

/// A frame located in the container: its entry plus where it lives on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FrameInfo {
    /// Position of the frame in the table, from 0.
    pub index: usize,
    /// Absolute byte offset of the zstd frame in the container file.
    pub compressed_offset: u64,
    /// Bytes of the zstd frame.
    pub compressed_size: u32,
    /// Byte offset of the frame's data in the decompressed (source) stream.
    pub decompressed_offset: u64,
    /// Bytes of source data in the frame.
    pub decompressed_size: u32,
    /// Seek-table checksum of the decompressed data, if the table has checksums.
    pub checksum: Option<u32>,
}

impl FrameInfo {
    /// Container byte offset one past the frame's last compressed byte.
    pub fn compressed_end(&self) -> u64 {
        self.compressed_offset
            .saturating_add(u64::from(self.compressed_size))
    }

    /// Source byte offset one past the frame's last decompressed byte.
    pub fn decompressed_end(&self) -> u64 {
        self.decompressed_offset
            .saturating_add(u64::from(self.decompressed_size))
    }
}

/// The seek-table checksum of one frame: the least significant 32 bits of XXH64 (seed 0) of
/// the decompressed data (spec: `Checksum`).
pub fn frame_checksum(decompressed: &[u8]) -> u32 {
    let [a, b, c, d, ..] = xxhash_rust::xxh64::xxh64(decompressed, 0).to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}

/// Everything that can go wrong writing or reading a container.
///
/// Errors about a container name the absolute byte offset in the container file (`offset`),
/// the field, and what was expected vs found. Frame errors also name the frame `index`; their
/// `offset` is the frame's compressed offset unless said otherwise.
#[derive(Debug, thiserror::Error)]
pub enum SeekableError {
    /// Reading a seek-table field from the container failed.
    #[error("seekable container: reading {field} at byte {offset} failed")]
    Read {
        /// Absolute byte offset of the read.
        offset: u64,
        /// The structure being read.
        field: &'static str,
        /// The underlying read error.
        #[source]
        source: io::Error,
    },
    /// The container is shorter than the 9-byte `Seek_Table_Footer`.
    #[error(
        "seek table footer at byte 0: container is {found} bytes, expected at least {expected}"
    )]
    TooShort {
        /// Minimum container size in bytes.
        expected: u64,
        /// Actual container size in bytes.
        found: u64,
    },
    /// `Seekable_Magic_Number` is wrong: not a seekable container, or truncated.
    #[error("Seekable_Magic_Number at byte {offset}: expected {SEEKABLE_MAGIC:#010x}, found {found:#010x}")]
    BadSeekableMagic {
        /// Absolute byte offset of the field.
        offset: u64,
        /// The value found.
        found: u32,
    },
    /// `Seek_Table_Descriptor` has reserved bits (6-2) set: a format we do not know.
    #[error("Seek_Table_Descriptor at byte {offset}: reserved bits 6-2 must be zero, found {found:#04x}")]
    ReservedDescriptorBits {
        /// Absolute byte offset of the field.
        offset: u64,
        /// The raw descriptor byte.
        found: u8,
    },
    /// `Number_Of_Frames` needs a seek table larger than the container.
    #[error(
        "Number_Of_Frames at byte {offset}: {frames} frames need a {needed}-byte seek table \
         frame, but only {available} bytes precede the footer"
    )]
    TableExceedsFile {
        /// Absolute byte offset of `Number_Of_Frames`.
        offset: u64,
        /// The value found.
        frames: u32,
        /// Bytes of skippable header plus entries the value implies.
        needed: u64,
        /// Bytes of the container before the footer.
        available: u64,
    },
    /// The seek-table frame does not start with `Skippable_Magic_Number`.
    #[error("seek table Skippable_Magic_Number at byte {offset}: expected {SKIPPABLE_MAGIC:#010x}, found {found:#010x}")]
    BadSkippableMagic {
        /// Absolute byte offset of the field (where the seek-table frame should start).
        offset: u64,
        /// The value found.
        found: u32,
    },
    /// The skippable frame's `Frame_Size` disagrees with the size of the table.
    #[error("seek table Frame_Size at byte {offset}: expected {expected}, found {found}")]
    SkippableSizeMismatch {
        /// Absolute byte offset of the field.
        offset: u64,
        /// Entries plus footer, in bytes.
        expected: u64,
        /// The value found.
        found: u32,
    },
    /// A `Decompressed_Size` is 0 or above [`MAX_FRAME_DECOMPRESSED_BYTES`].
    #[error("seek table entry {index} Decompressed_Size at byte {offset}: expected 1..={max}, found {found}")]
    FrameSizeOutOfRange {
        /// Frame index.
        index: usize,
        /// Absolute byte offset of the field.
        offset: u64,
        /// The value found.
        found: u32,
        /// [`MAX_FRAME_DECOMPRESSED_BYTES`].
        max: u32,
    },
    /// A frame, by the running sum of `Compressed_Size`, ends past the start of the
    /// seek-table frame.
    #[error(
        "seek table entry {index} Compressed_Size at byte {offset}: frame ends at byte \
         {frame_end}, past the seek table frame at byte {table_offset}"
    )]
    FrameBeyondTable {
        /// Frame index.
        index: usize,
        /// Absolute byte offset of the field.
        offset: u64,
        /// Where the frame would end.
        frame_end: u64,
        /// Where the seek-table frame starts.
        table_offset: u64,
    },
    /// The frames end before the seek-table frame starts: bytes no entry accounts for.
    #[error(
        "seek table frame at byte {offset}: the Compressed_Size fields sum to {frames_end}, \
         expected {offset} (frames must run from byte 0 up to the seek table)"
    )]
    FramesEndBeforeTable {
        /// Where the seek-table frame starts (the expected sum).
        offset: u64,
        /// The sum found.
        frames_end: u64,
    },
    /// The running total of `Decompressed_Size` overflows u64.
    #[error("seek table entry {index} Decompressed_Size at byte {offset}: total decompressed size overflows u64")]
    DecompressedSizeOverflow {
        /// Frame index.
        index: usize,
        /// Absolute byte offset of the field.
        offset: u64,
    },
    /// A size from the container does not fit this machine's address space.
    #[error("{field} at byte {offset}: {found} does not fit this machine's address space")]
    AddressSpace {
        /// Absolute byte offset the size belongs to.
        offset: u64,
        /// The field.
        field: &'static str,
        /// The value found.
        found: u64,
    },
    /// Reading a frame's compressed bytes failed.
    #[error("frame {index} at byte {offset}: reading {len} compressed bytes failed")]
    FrameRead {
        /// Frame index.
        index: usize,
        /// Compressed offset of the frame.
        offset: u64,
        /// Bytes asked for.
        len: u32,
        /// The underlying read error.
        #[source]
        source: io::Error,
    },
    /// [`decompress_frame`] was given a slice that is not the frame's `Compressed_Size`.
    #[error("frame {index} at byte {offset}: given {found} compressed bytes, expected {expected}")]
    CompressedLengthMismatch {
        /// Frame index.
        index: usize,
        /// Compressed offset of the frame.
        offset: u64,
        /// `Compressed_Size`.
        expected: u32,
        /// Length of the slice given.
        found: usize,
    },
    /// The zstd frame header's `Frame_Content_Size` disagrees with the seek table.
    #[error("frame {index} at byte {offset}: zstd Frame_Content_Size is {found}, seek table Decompressed_Size is {expected}")]
    ContentSizeMismatch {
        /// Frame index.
        index: usize,
        /// Compressed offset of the frame.
        offset: u64,
        /// `Decompressed_Size` from the seek table.
        expected: u32,
        /// `Frame_Content_Size` from the frame header.
        found: u64,
    },
    /// zstd rejected the frame (corrupt data, zstd's own content checksum, …).
    #[error("frame {index} at byte {offset}: zstd decompression failed: {reason}")]
    Decompress {
        /// Frame index.
        index: usize,
        /// Compressed offset of the frame.
        offset: u64,
        /// zstd's error name.
        reason: &'static str,
    },
    /// The zstd frame does not end within its `Compressed_Size` bytes.
    #[error("frame {index} at byte {offset}: zstd frame does not end within its {compressed_size} compressed bytes")]
    FrameTruncated {
        /// Frame index.
        index: usize,
        /// Compressed offset of the frame.
        offset: u64,
        /// `Compressed_Size`.
        compressed_size: u32,
    },
    /// Bytes follow the zstd frame inside its `Compressed_Size`: not exactly one frame.
    #[error("frame {index}: zstd frame ends at byte {offset} but {found} more bytes belong to it, expected exactly one frame")]
    TrailingBytes {
        /// Frame index.
        index: usize,
        /// Absolute byte offset where the zstd frame ended.
        offset: u64,
        /// Bytes left over.
        found: usize,
    },
    /// The frame decompresses to fewer bytes than `Decompressed_Size`.
    #[error("frame {index} at byte {offset}: decompresses to {found} bytes, expected {expected}")]
    FrameSizeMismatch {
        /// Frame index.
        index: usize,
        /// Compressed offset of the frame.
        offset: u64,
        /// `Decompressed_Size`.
        expected: u32,
        /// Bytes produced.
        found: usize,
    },
    /// The frame decompresses to more bytes than `Decompressed_Size` (decompression stopped
    /// there, so the real size is not known).
    #[error("frame {index} at byte {offset}: decompresses to more than {expected} bytes")]
    FrameOverrun {
        /// Frame index.
        index: usize,
        /// Compressed offset of the frame.
        offset: u64,
        /// `Decompressed_Size`.
        expected: u32,
    },
    /// The decompressed data fails the seek-table `Checksum`.
    #[error("frame {index} at byte {offset}: seek table checksum {expected:#010x}, decompressed data has {found:#010x}")]
    ChecksumMismatch {
        /// Frame index.
        index: usize,
        /// Compressed offset of the frame.
        offset: u64,
        /// `Checksum` from the seek table.
        expected: u32,
        /// Checksum of the data produced.
        found: u32,
    },
    /// A decompressed offset inside the container's size has no frame (cannot happen with a
    /// validated table; reported rather than panicking).
    #[error("decompressed byte {offset}: no frame holds it")]
    NoFrame {
        /// The decompressed offset.
        offset: u64,
    },
    /// A chunk to compress is empty or larger than [`MAX_FRAME_DECOMPRESSED_BYTES`].
    #[error("chunk of {found} bytes: expected 1..={max} bytes per frame")]
    ChunkSizeOutOfRange {
        /// Chunk length.
        found: usize,
        /// [`MAX_FRAME_DECOMPRESSED_BYTES`].
        max: u32,
    },
    /// Setting up the zstd compressor failed.
    #[error("zstd compressor at level {level}: setup failed")]
    CompressorSetup {
        /// Compression level asked for.
        level: i32,
        /// zstd's error.
        #[source]
        source: io::Error,
    },
    /// zstd failed to compress a chunk.
    #[error("compressing a chunk of {chunk_bytes} bytes failed")]
    Compress {
        /// Chunk length.
        chunk_bytes: usize,
        /// zstd's error.
        #[source]
        source: io::Error,
    },
    /// The table being written cannot be represented or would be refused by the reader.
    #[error("seek table entry {index}: {problem}")]
    InvalidEntry {
        /// Frame index.
        index: usize,
        /// What is wrong.
        problem: &'static str,
    },
}

impl SeekableError {
    /// The absolute container byte offset the error is about, if it has one (compression
    /// errors and [`SeekableError::InvalidEntry`] do not; [`SeekableError::NoFrame`] names a
    /// decompressed offset).
    pub fn offset(&self) -> Option<u64> {
        use SeekableError as E;
        match self {
            E::Read { offset, .. }
            | E::BadSeekableMagic { offset, .. }
            | E::ReservedDescriptorBits { offset, .. }
            | E::TableExceedsFile { offset, .. }
            | E::BadSkippableMagic { offset, .. }
            | E::SkippableSizeMismatch { offset, .. }
            | E::FrameSizeOutOfRange { offset, .. }
            | E::FrameBeyondTable { offset, .. }
            | E::FramesEndBeforeTable { offset, .. }
            | E::DecompressedSizeOverflow { offset, .. }
            | E::AddressSpace { offset, .. }
            | E::FrameRead { offset, .. }
            | E::CompressedLengthMismatch { offset, .. }
            | E::ContentSizeMismatch { offset, .. }
            | E::Decompress { offset, .. }
            | E::FrameTruncated { offset, .. }
            | E::TrailingBytes { offset, .. }
            | E::FrameSizeMismatch { offset, .. }
            | E::FrameOverrun { offset, .. }
            | E::ChecksumMismatch { offset, .. } => Some(*offset),
            E::TooShort { .. } => Some(0),
            E::NoFrame { .. }
            | E::ChunkSizeOutOfRange { .. }
            | E::CompressorSetup { .. }
            | E::Compress { .. }
            | E::InvalidEntry { .. } => None,
        }
    }
}

impl From<SeekableError> for io::Error {
    /// Format errors become [`io::ErrorKind::InvalidData`]; failed reads of the underlying
    /// container keep their own kind (an unreadable medium is not corrupt data). The message
    /// is the [`SeekableError`]'s, which stays reachable through [`io::Error::get_ref`].
    fn from(err: SeekableError) -> Self {
        let kind = match &err {
            SeekableError::Read { source, .. } | SeekableError::FrameRead { source, .. } => {
                source.kind()
            }
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err)
    }
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// A reusable zstd compressor turning one chunk into one complete seekable-format frame.
///
/// Frames carry zstd's content size and content checksum; the returned [`FrameEntry`] carries
/// the seek-table checksum. One per worker thread: the type is `Send`, and reusing it avoids
/// re-creating zstd's context per chunk.
pub struct FrameCompressor {
    inner: zstd::bulk::Compressor<'static>,
    level: i32,
}

impl fmt::Debug for FrameCompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameCompressor")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl FrameCompressor {
    /// A compressor at zstd `level` (zstd clamps out-of-range levels; 0 means its default).
    ///
    /// # Errors
    /// [`SeekableError::CompressorSetup`] if zstd refuses the parameters.
    pub fn new(level: i32) -> Result<Self, SeekableError> {
        let setup = |source| SeekableError::CompressorSetup { level, source };
        let mut inner = zstd::bulk::Compressor::new(level).map_err(setup)?;
        inner
            .set_parameter(CParameter::ContentSizeFlag(true))
            .map_err(setup)?;
        inner
            .set_parameter(CParameter::ChecksumFlag(true))
            .map_err(setup)?;
        Ok(Self { inner, level })
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Compresses `chunk` into one zstd frame: `out` is cleared and filled with the frame
    /// (its allocation is reused when large enough), and the frame's entry is returned with
    /// its checksum.
    ///
    /// # Errors
    /// [`SeekableError::ChunkSizeOutOfRange`] for an empty chunk or one above
    /// [`MAX_FRAME_DECOMPRESSED_BYTES`] (the reader would refuse either);
    /// [`SeekableError::Compress`] if zstd fails.
    pub fn compress(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<FrameEntry, SeekableError> {
        let decompressed_size = u32::try_from(chunk.len())
            .ok()
            .filter(|&n| (1..=MAX_FRAME_DECOMPRESSED_BYTES).contains(&n))
            .ok_or(SeekableError::ChunkSizeOutOfRange {
                found: chunk.len(),
                max: MAX_FRAME_DECOMPRESSED_BYTES,
            })?;
        out.clear();
        out.reserve(zstd_safe::compress_bound(chunk.len()));
        let written = self
            .inner
            .compress_to_buffer(chunk, out)
            .map_err(|source| SeekableError::Compress {
                chunk_bytes: chunk.len(),
                source,
            })?;
        let compressed_size = u32::try_from(written).map_err(|_| SeekableError::Compress {
            chunk_bytes: chunk.len(),
            source: io::Error::other("compressed frame exceeds 4 GiB"),
        })?;
        // zstd's content checksum (ChecksumFlag) ends the frame: the low 32 bits of XXH64,
        // seed 0, little-endian — exactly the seek table's checksum, so take it from there
        // rather than hash the chunk a second time.
        let checksum = out
            .get(written.saturating_sub(4)..written)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| SeekableError::Compress {
                chunk_bytes: chunk.len(),
                source: io::Error::other("zstd wrote a frame shorter than its checksum"),
            })?;
        Ok(FrameEntry {
            compressed_size,
            decompressed_size,
            checksum: Some(checksum),
        })
    }
}

/// Collects the entries of the frames written so far and encodes the seek-table frame.
#[derive(Debug, Clone, Default)]
pub struct SeekTableWriter {
    with_checksums: bool,
    frames: Vec<FrameEntry>,
}

impl SeekTableWriter {
    /// An empty table; `with_checksums` sets `Checksum_Flag` and writes each entry's checksum.
    pub fn new(with_checksums: bool) -> Self {
        Self {
            with_checksums,
            frames: Vec::new(),
        }
    }

    /// Whether the table carries checksums.
    pub fn with_checksums(&self) -> bool {
        self.with_checksums
    }

    /// Appends the entry of the next frame (frames must be pushed in file order).
    pub fn push(&mut self, entry: FrameEntry) {
        self.frames.push(entry);
    }

    /// The entries pushed so far.
    pub fn frames(&self) -> &[FrameEntry] {
        &self.frames
    }

    /// Bytes per entry: 12 with checksums, 8 without.
    fn entry_bytes(&self) -> usize {
        if self.with_checksums {
            12
        } else {
            8
        }
    }

    /// The whole seek-table skippable frame, footer included, to append after the last frame.
    ///
    /// Entries from [`FrameCompressor::compress`] always encode correctly. For entries from
    /// elsewhere prefer [`SeekTableWriter::try_to_bytes`]: this method does not refuse, so a
    /// missing checksum in a checksummed table is written as 0 and an unrepresentable frame
    /// count saturates — both of which the reader then reports loudly.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode()
    }

    /// Like [`SeekTableWriter::to_bytes`], but refuses a table [`SeekTable::read`] would
    /// reject: an entry with `decompressed_size` 0 or above [`MAX_FRAME_DECOMPRESSED_BYTES`],
    /// a missing checksum in a checksummed table, or more frames than `Frame_Size` (u32) can
    /// describe.
    ///
    /// # Errors
    /// [`SeekableError::InvalidEntry`] naming the first offending entry.
    pub fn try_to_bytes(&self) -> Result<Vec<u8>, SeekableError> {
        let max_frames = (u32::MAX as usize - 9) / self.entry_bytes();
        if self.frames.len() > max_frames {
            return Err(SeekableError::InvalidEntry {
                index: max_frames,
                problem: "too many frames for the seek table's u32 Frame_Size",
            });
        }
        for (index, e) in self.frames.iter().enumerate() {
            if !(1..=MAX_FRAME_DECOMPRESSED_BYTES).contains(&e.decompressed_size) {
                return Err(SeekableError::InvalidEntry {
                    index,
                    problem: "decompressed_size outside 1..=MAX_FRAME_DECOMPRESSED_BYTES",
                });
            }
            if self.with_checksums && e.checksum.is_none() {
                return Err(SeekableError::InvalidEntry {
                    index,
                    problem: "no checksum in a table with Checksum_Flag set",
                });
            }
        }
        Ok(self.encode())
    }

    fn encode(&self) -> Vec<u8> {
        let entries_bytes = self.frames.len().saturating_mul(self.entry_bytes());
        let frame_size = u32::try_from(entries_bytes.saturating_add(9)).unwrap_or(u32::MAX);
        let count = u32::try_from(self.frames.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(entries_bytes.saturating_add(17));
        out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        out.extend_from_slice(&frame_size.to_le_bytes());
        for e in &self.frames {
            out.extend_from_slice(&e.compressed_size.to_le_bytes());
            out.extend_from_slice(&e.decompressed_size.to_le_bytes());
            if self.with_checksums {
                out.extend_from_slice(&e.checksum.unwrap_or(0).to_le_bytes());
            }
        }
        out.extend_from_slice(&count.to_le_bytes());
        out.push(if self.with_checksums {
            CHECKSUM_FLAG
        } else {
            0
        });
        out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        out
    }
}

// ---------------------------------------------------------------------------------------
// Reading the seek table
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct FrameRecord {
    compressed_offset: u64,
    decompressed_offset: u64,
    entry: FrameEntry,
}

/// A validated seek table: where every frame lives in the container and in the source.
///
/// Invariants after [`SeekTable::read`]: frames start at byte 0 and are contiguous up to the
/// seek-table frame; every frame has 1..=[`MAX_FRAME_DECOMPRESSED_BYTES`] decompressed bytes;
/// decompressed offsets are strictly increasing.
#[derive(Debug, Clone)]
pub struct SeekTable {
    frames: Vec<FrameRecord>,
    descriptor: u8,
    container_bytes: u64,
    table_offset: u64,
    decompressed_size: u64,
}

fn le_u32(bytes: &[u8]) -> Option<u32> {
    let arr: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(arr))
}

fn read_field(
    src: &dyn ReadAt,
    buf: &mut [u8],
    offset: u64,
    field: &'static str,
) -> Result<(), SeekableError> {
    src.read_exact_at(buf, offset)
        .map_err(|source| SeekableError::Read {
            offset,
            field,
            source,
        })
}

impl SeekTable {
    /// Reads and validates the seek table at the end of `src` (container length =
    /// `src.size()`).
    ///
    /// Nothing is allocated on the table's word before the table is known to fit in the file.
    /// `Unused_Bits` (1-0) of the descriptor are kept ([`SeekTable::descriptor`]) but not
    /// interpreted, as the spec asks.
    ///
    /// # Errors
    /// In the order checked: [`SeekableError::TooShort`], [`SeekableError::BadSeekableMagic`],
    /// [`SeekableError::ReservedDescriptorBits`], [`SeekableError::TableExceedsFile`],
    /// [`SeekableError::BadSkippableMagic`], [`SeekableError::SkippableSizeMismatch`], then per
    /// entry [`SeekableError::FrameSizeOutOfRange`], [`SeekableError::FrameBeyondTable`],
    /// [`SeekableError::DecompressedSizeOverflow`], and finally
    /// [`SeekableError::FramesEndBeforeTable`]; [`SeekableError::Read`] if `src` fails.
    pub fn read(src: &dyn ReadAt) -> Result<Self, SeekableError> {
        let container_bytes = src.size();
        let Some(footer_offset) = container_bytes.checked_sub(FOOTER_BYTES) else {
            return Err(SeekableError::TooShort {
                expected: FOOTER_BYTES,
                found: container_bytes,
            });
        };
        let mut footer = [0u8; 9];
        read_field(src, &mut footer, footer_offset, "Seek_Table_Footer")?;
        let [n0, n1, n2, n3, descriptor, m0, m1, m2, m3] = footer;
        let frames = u32::from_le_bytes([n0, n1, n2, n3]);
        let magic = u32::from_le_bytes([m0, m1, m2, m3]);

        if magic != SEEKABLE_MAGIC {
            return Err(SeekableError::BadSeekableMagic {
                offset: footer_offset + 5,
                found: magic,
            });
        }
        if descriptor & RESERVED_BITS != 0 {
            return Err(SeekableError::ReservedDescriptorBits {
                offset: footer_offset + 4,
                found: descriptor,
            });
        }
        let with_checksums = descriptor & CHECKSUM_FLAG != 0;
        let entry_bytes: u64 = if with_checksums { 12 } else { 8 };

        // u32 * 12 + 8 cannot overflow u64; the check is whether it fits before the footer.
        let entries_bytes = u64::from(frames) * entry_bytes;
        let needed = entries_bytes + SKIPPABLE_HEADER_BYTES;
        let Some(table_offset) = footer_offset.checked_sub(needed) else {
            return Err(SeekableError::TableExceedsFile {
                offset: footer_offset,
                frames,
                needed,
                available: footer_offset,
            });
        };

        let mut header = [0u8; 8];
        read_field(
            src,
            &mut header,
            table_offset,
            "seek table skippable frame header",
        )?;
        let [h0, h1, h2, h3, s0, s1, s2, s3] = header;
        let skippable_magic = u32::from_le_bytes([h0, h1, h2, h3]);
        let frame_size = u32::from_le_bytes([s0, s1, s2, s3]);
        if skippable_magic != SKIPPABLE_MAGIC {
            return Err(SeekableError::BadSkippableMagic {
                offset: table_offset,
                found: skippable_magic,
            });
        }
        let expected_frame_size = entries_bytes + FOOTER_BYTES;
        if u64::from(frame_size) != expected_frame_size {
            return Err(SeekableError::SkippableSizeMismatch {
                offset: table_offset + 4,
                expected: expected_frame_size,
                found: frame_size,
            });
        }

        let frame_count = usize::try_from(frames).map_err(|_| SeekableError::AddressSpace {
            offset: footer_offset,
            field: "Number_Of_Frames",
            found: u64::from(frames),
        })?;
        // The table fits in the file, so this is bounded by the container's size; still
        // reserve in steps so a huge (but real) table grows as it is read.
        let mut records = Vec::with_capacity(frame_count.min(1 << 20));
        let entries_start = table_offset + SKIPPABLE_HEADER_BYTES;
        let entry_len = if with_checksums { 12usize } else { 8 };
        let mut block = vec![0u8; entry_len * TABLE_ENTRIES_PER_READ.min(frame_count)];
        let mut compressed_offset = 0u64;
        let mut decompressed_offset = 0u64;
        let mut index = 0usize;
        while index < frame_count {
            let in_block = (frame_count - index).min(TABLE_ENTRIES_PER_READ);
            let entry_offset = entries_start + index as u64 * entry_bytes;
            // `block` holds TABLE_ENTRIES_PER_READ entries (fewer for a small table), so
            // this never fails; an empty slice here would loop forever, hence the check.
            let Some(buf) = block.get_mut(..in_block * entry_len) else {
                return Err(SeekableError::Read {
                    offset: entry_offset,
                    field: "Seek_Table_Entries",
                    source: io::Error::other("entry buffer smaller than a block"),
                });
            };
            read_field(src, buf, entry_offset, "Seek_Table_Entries")?;
            for raw in buf.chunks_exact(entry_len) {
                let at = entries_start + index as u64 * entry_bytes;
                let (Some(compressed_size), Some(decompressed_size)) =
                    (le_u32(raw), raw.get(4..).and_then(le_u32))
                else {
                    return Err(SeekableError::Read {
                        offset: at,
                        field: "Seek_Table_Entries",
                        source: io::Error::from(io::ErrorKind::UnexpectedEof),
                    });
                };
                let checksum = if with_checksums {
                    raw.get(8..).and_then(le_u32)
                } else {
                    None
                };
                if !(1..=MAX_FRAME_DECOMPRESSED_BYTES).contains(&decompressed_size) {
                    return Err(SeekableError::FrameSizeOutOfRange {
                        index,
                        offset: at + 4,
                        found: decompressed_size,
                        max: MAX_FRAME_DECOMPRESSED_BYTES,
                    });
                }
                let frame_end = compressed_offset + u64::from(compressed_size);
                if frame_end > table_offset {
                    return Err(SeekableError::FrameBeyondTable {
                        index,
                        offset: at,
                        frame_end,
                        table_offset,
                    });
                }
                // With at most 2^32 frames of at most 2^30 bytes this cannot overflow; checked
                // anyway so a change of limits cannot turn it into a wrap.
                let next_decompressed = decompressed_offset
                    .checked_add(u64::from(decompressed_size))
                    .ok_or(SeekableError::DecompressedSizeOverflow {
                        index,
                        offset: at + 4,
                    })?;
                records.push(FrameRecord {
                    compressed_offset,
                    decompressed_offset,
                    entry: FrameEntry {
                        compressed_size,
                        decompressed_size,
                        checksum,
                    },
                });
                compressed_offset = frame_end;
                decompressed_offset = next_decompressed;
                index += 1;
            }
        }
        if compressed_offset != table_offset {
            return Err(SeekableError::FramesEndBeforeTable {
                offset: table_offset,
                frames_end: compressed_offset,
            });
        }
        tracing::debug!(
            frames = frame_count,
            decompressed_bytes = decompressed_offset,
            table_offset,
            descriptor,
            "seekable container: seek table read"
        );
        Ok(Self {
            frames: records,
            descriptor,
            container_bytes,
            table_offset,
            decompressed_size: decompressed_offset,
        })
    }

    /// Number of frames (0 for an empty source).
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    fn info(&self, index: usize, r: &FrameRecord) -> FrameInfo {
        FrameInfo {
            index,
            compressed_offset: r.compressed_offset,
            compressed_size: r.entry.compressed_size,
            decompressed_offset: r.decompressed_offset,
            decompressed_size: r.entry.decompressed_size,
            checksum: r.entry.checksum,
        }
    }

    /// Frame `index`, or `None` past the last frame.
    pub fn frame(&self, index: usize) -> Option<FrameInfo> {
        self.frames.get(index).map(|r| self.info(index, r))
    }

    /// All frames in file order.
    pub fn frames(&self) -> impl Iterator<Item = FrameInfo> + '_ {
        self.frames
            .iter()
            .enumerate()
            .map(|(index, r)| self.info(index, r))
    }

    /// Total decompressed (source) size in bytes.
    pub fn decompressed_size(&self) -> u64 {
        self.decompressed_size
    }

    /// Byte offset where the frames end and the seek-table skippable frame starts.
    pub fn compressed_data_end(&self) -> u64 {
        self.table_offset
    }

    /// Byte offset of the seek-table skippable frame (its `Skippable_Magic_Number`); the same
    /// as [`SeekTable::compressed_data_end`], as frames are contiguous up to it.
    pub fn table_offset(&self) -> u64 {
        self.table_offset
    }

    /// Size of the container file in bytes, as read.
    pub fn container_size(&self) -> u64 {
        self.container_bytes
    }

    /// The raw `Seek_Table_Descriptor` byte, unused bits included.
    pub fn descriptor(&self) -> u8 {
        self.descriptor
    }

    /// Whether entries carry checksums (`Checksum_Flag`).
    pub fn has_checksums(&self) -> bool {
        self.descriptor & CHECKSUM_FLAG != 0
    }

    /// The frame holding decompressed byte `decompressed_offset`, or `None` at or past the
    /// end (binary search).
    pub fn frame_at(&self, decompressed_offset: u64) -> Option<FrameInfo> {
        if decompressed_offset >= self.decompressed_size {
            return None;
        }
        // First frame starting after the offset; the one before holds it.
        let after = self
            .frames
            .partition_point(|r| r.decompressed_offset <= decompressed_offset);
        let index = after.checked_sub(1)?;
        self.frame(index)
    }
}

// ---------------------------------------------------------------------------------------
// Decompressing frames
// ---------------------------------------------------------------------------------------

/// A reusable zstd decompression context for [`FrameDecompressor::decompress`].
pub struct FrameDecompressor {
    dctx: DCtx<'static>,
}

impl fmt::Debug for FrameDecompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameDecompressor").finish_non_exhaustive()
    }
}

impl Default for FrameDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecompressor {
    /// A fresh decompression context.
    pub fn new() -> Self {
        Self {
            dctx: DCtx::create(),
        }
    }

    /// Same as [`decompress_frame`], reusing this context.
    ///
    /// # Errors
    /// As [`decompress_frame`].
    pub fn decompress(
        &mut self,
        info: &FrameInfo,
        compressed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SeekableError> {
        let index = info.index;
        let offset = info.compressed_offset;
        let expected = info.decompressed_size;
        out.clear();
        if u32::try_from(compressed.len()).ok() != Some(info.compressed_size) {
            return Err(SeekableError::CompressedLengthMismatch {
                index,
                offset,
                expected: info.compressed_size,
                found: compressed.len(),
            });
        }
        // A frame header that disagrees with the table is caught before decompressing. Frames
        // without a content size (other writers) are checked as they decompress.
        if let Ok(Some(found)) = zstd_safe::get_frame_content_size(compressed) {
            if found != u64::from(expected) {
                return Err(SeekableError::ContentSizeMismatch {
                    index,
                    offset,
                    expected,
                    found,
                });
            }
        }
        let expected_len = usize::try_from(expected).map_err(|_| SeekableError::AddressSpace {
            offset,
            field: "Decompressed_Size",
            found: u64::from(expected),
        })?;
        let zstd_err = |code| SeekableError::Decompress {
            index,
            offset,
            reason: zstd_safe::get_error_name(code),
        };

        // Abandon whatever a previous failed call left half done.
        self.dctx
            .reset(zstd_safe::ResetDirective::SessionOnly)
            .map_err(zstd_err)?;
        out.reserve_exact(expected_len.min(MAX_UPFRONT_RESERVE_BYTES));
        let mut input = InBuffer::around(compressed);
        loop {
            let before_in = input.pos();
            let before_out = out.len();
            let remaining = if out.len() < expected_len {
                if out.len() == out.capacity() {
                    // Grow as data really comes out: double, never past the expected size.
                    let grow = out.len().max(64 << 10).min(expected_len - out.len());
                    out.reserve_exact(grow);
                }
                let pos = out.len();
                let mut output = OutBuffer::around_pos(out, pos);
                self.dctx
                    .decompress_stream(&mut output, &mut input)
                    .map_err(zstd_err)?
            } else {
                // The expected bytes are all out: anything more is an overrun. Probe with a
                // tiny buffer so the frame's end (and zstd's checksum) is still consumed.
                let mut probe = [0u8; 16];
                let mut output = OutBuffer::around(&mut probe[..]);
                let remaining = self
                    .dctx
                    .decompress_stream(&mut output, &mut input)
                    .map_err(zstd_err)?;
                if output.pos() > 0 {
                    return Err(SeekableError::FrameOverrun {
                        index,
                        offset,
                        expected,
                    });
                }
                remaining
            };
            if out.len() > expected_len {
                return Err(SeekableError::FrameOverrun {
                    index,
                    offset,
                    expected,
                });
            }
            if remaining == 0 {
                break;
            }
            if input.pos() == before_in && out.len() == before_out {
                return Err(SeekableError::FrameTruncated {
                    index,
                    offset,
                    compressed_size: info.compressed_size,
                });
            }
        }
        if let Some(rest) = compressed.len().checked_sub(input.pos()).filter(|&r| r > 0) {
            return Err(SeekableError::TrailingBytes {
                index,
                offset: offset.saturating_add(input.pos() as u64),
                found: rest,
            });
        }
        if out.len() != expected_len {
            return Err(SeekableError::FrameSizeMismatch {
                index,
                offset,
                expected,
                found: out.len(),
            });
        }
        if let Some(want) = info.checksum {
            let found = frame_checksum(out);
            if found != want {
                return Err(SeekableError::ChecksumMismatch {
                    index,
                    offset,
                    expected: want,
                    found,
                });
            }
        }
        Ok(())
    }
}

/// Decompresses one frame's bytes (`compressed`, exactly `info.compressed_size` long) into
/// `out` (cleared first).
///
/// Checks that `compressed` is exactly one zstd frame, that it restores exactly
/// `info.decompressed_size` bytes, and the seek-table checksum when present; zstd checks its
/// own content checksum. `out` never grows past `info.decompressed_size`, and beyond 16 MiB
/// it grows only as zstd produces data. On error `out` holds unspecified partial data.
///
/// # Errors
/// [`SeekableError::CompressedLengthMismatch`], [`SeekableError::ContentSizeMismatch`],
/// [`SeekableError::Decompress`], [`SeekableError::FrameTruncated`],
/// [`SeekableError::TrailingBytes`], [`SeekableError::FrameSizeMismatch`],
/// [`SeekableError::FrameOverrun`], [`SeekableError::ChecksumMismatch`] — each naming the
/// frame index and its compressed offset.
pub fn decompress_frame(
    info: &FrameInfo,
    compressed: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SeekableError> {
    FrameDecompressor::new().decompress(info, compressed, out)
}

// ---------------------------------------------------------------------------------------
// Random access
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct FrameCache {
    /// Most recently used first.
    frames: VecDeque<(usize, Arc<Vec<u8>>)>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
}

impl FrameCache {
    fn get(&mut self, index: usize) -> Option<Arc<Vec<u8>>> {
        let at = self.frames.iter().position(|(i, _)| *i == index)?;
        let hit = self.frames.remove(at)?;
        let data = Arc::clone(&hit.1);
        self.frames.push_front(hit);
        Some(data)
    }

    fn insert(&mut self, index: usize, data: Arc<Vec<u8>>) {
        if self.max_frames == 0 || self.frames.iter().any(|(i, _)| *i == index) {
            return;
        }
        self.bytes = self.bytes.saturating_add(data.len());
        self.frames.push_front((index, data));
        while self.frames.len() > 1
            && (self.frames.len() > self.max_frames || self.bytes > self.max_bytes)
        {
            if let Some((_, old)) = self.frames.pop_back() {
                self.bytes = self.bytes.saturating_sub(old.len());
            }
        }
    }
}

/// Random access to the source bytes of a container: implements [`ReadAt`] with
/// `size()` = the decompressed size.
///
/// Keeps the most recently decompressed frames (by default [`DEFAULT_CACHE_FRAMES`] frames
/// within [`DEFAULT_CACHE_BYTES`]) so sequential small reads do not decompress a frame per
/// call. Safe to share between threads; frames missing from the cache are decompressed
/// outside the lock.
pub struct SeekableReader<R: ReadAt> {
    inner: R,
    table: SeekTable,
    cache: Mutex<FrameCache>,
    decompressors: Mutex<Vec<FrameDecompressor>>,
}

impl<R: ReadAt> fmt::Debug for SeekableReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeekableReader")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl<R: ReadAt> SeekableReader<R> {
    /// Reads and validates the seek table of `inner` ([`SeekTable::read`]).
    ///
    /// # Errors
    /// As [`SeekTable::read`].
    pub fn open(inner: R) -> Result<Self, SeekableError> {
        Self::with_cache(inner, DEFAULT_CACHE_FRAMES, DEFAULT_CACHE_BYTES)
    }

    /// Like [`SeekableReader::open`] with a cache of at most `max_frames` frames and
    /// `max_bytes` decompressed bytes (the most recent frame is kept whatever its size unless
    /// `max_frames` is 0, which disables the cache).
    ///
    /// # Errors
    /// As [`SeekTable::read`].
    pub fn with_cache(
        inner: R,
        max_frames: usize,
        max_bytes: usize,
    ) -> Result<Self, SeekableError> {
        let table = SeekTable::read(&inner)?;
        Ok(Self {
            inner,
            table,
            cache: Mutex::new(FrameCache {
                frames: VecDeque::with_capacity(max_frames.min(64)),
                bytes: 0,
                max_frames,
                max_bytes,
            }),
            decompressors: Mutex::new(Vec::new()),
        })
    }

    /// The validated seek table.
    pub fn table(&self) -> &SeekTable {
        &self.table
    }

    /// The container reader.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Gives back the container reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads and decompresses frame `info` (no cache), checking it as [`decompress_frame`].
    ///
    /// # Errors
    /// [`SeekableError::FrameRead`] if the container cannot be read, or any error of
    /// [`decompress_frame`].
    pub fn read_frame(&self, info: &FrameInfo, out: &mut Vec<u8>) -> Result<(), SeekableError> {
        let len =
            usize::try_from(info.compressed_size).map_err(|_| SeekableError::AddressSpace {
                offset: info.compressed_offset,
                field: "Compressed_Size",
                found: u64::from(info.compressed_size),
            })?;
        // Bounded: the validated table puts every frame inside the container.
        let mut compressed = vec![0u8; len];
        self.inner
            .read_exact_at(&mut compressed, info.compressed_offset)
            .map_err(|source| SeekableError::FrameRead {
                index: info.index,
                offset: info.compressed_offset,
                len: info.compressed_size,
                source,
            })?;
        let pooled = self
            .decompressors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut decompressor = pooled.unwrap_or_default();
        let result = decompressor.decompress(info, &compressed, out);
        self.decompressors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(decompressor);
        result
    }

    fn frame_data(&self, info: &FrameInfo) -> Result<Arc<Vec<u8>>, SeekableError> {
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(info.index)
        {
            return Ok(hit);
        }
        let mut data = Vec::new();
        self.read_frame(info, &mut data)?;
        let data = Arc::new(data);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(info.index, Arc::clone(&data));
        Ok(data)
    }

    fn read_at_checked(&self, buf: &mut [u8], offset_bytes: u64) -> Result<usize, SeekableError> {
        let mut done = 0usize;
        while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
            let Some(pos) = offset_bytes.checked_add(done as u64) else {
                break;
            };
            if pos >= self.table.decompressed_size {
                break;
            }
            let info = self
                .table
                .frame_at(pos)
                .ok_or(SeekableError::NoFrame { offset: pos })?;
            let data = self.frame_data(&info)?;
            let within = usize::try_from(pos - info.decompressed_offset)
                .ok()
                .and_then(|w| data.get(w..))
                .ok_or(SeekableError::NoFrame { offset: pos })?;
            let n = within.len().min(rest.len());
            if let (Some(dst), Some(src)) = (rest.get_mut(..n), within.get(..n)) {
                dst.copy_from_slice(src);
            }
            done += n;
        }
        Ok(done)
    }
}

impl<R: ReadAt> ReadAt for SeekableReader<R> {
    /// Reads decompressed bytes; a damaged frame fails the read with the
    /// [`SeekableError`] converted to [`io::Error`] (see its `From` impl).
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        self.read_at_checked(buf, offset_bytes)
            .map_err(io::Error::from)
    }

    fn size(&self) -> u64 {
        self.table.decompressed_size
    }
}

#[cfg(test)]
mod tests;
