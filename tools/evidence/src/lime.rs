//! LiME v1, the memory image format Volatility 3 and most memory tools read.
//!
//! A LiME file is a sequence of ranges of physical memory, each a 32-byte header followed
//! by the range's bytes (LiME's `lime_mem_range_header`, little-endian):
//!
//! | offset | field     | value                                         |
//! |-------:|-----------|-----------------------------------------------|
//! | 0      | magic     | 0x4C694D45 (`EMiL` on disk)                   |
//! | 4      | version   | 1                                             |
//! | 8      | s_addr    | first physical address of the range           |
//! | 16     | e_addr    | last physical address of the range (inclusive) |
//! | 24     | reserved  | 8 zero bytes                                  |
//!
//! Vestige writes it strictly: ranges ascending and disjoint, no empty range, reserved
//! bytes zero, nothing after the last range. The reader here checks exactly that, so a
//! LiME file from elsewhere that breaks the rules is named, with the offset, rather than
//! half-read.

use crate::read_at::ReadAt;
use std::io;

/// The header magic, as a little-endian u32.
pub const MAGIC: u32 = 0x4C69_4D45;
/// The only version there is.
pub const VERSION: u32 = 1;
/// Bytes in one range header.
pub const HEADER_BYTES: u64 = 32;
/// The file name of a memory image inside an item: a seekable zstd container whose
/// decompressed bytes are a LiME file.
pub const MEMORY_FILE: &str = "memory.lime.zst";

/// One range of physical memory in a LiME file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First physical address.
    pub start: u64,
    /// Bytes in the range (never 0).
    pub length_bytes: u64,
    /// Where the range's data begins in the LiME file (just after its header).
    pub data_offset: u64,
}

impl Range {
    /// One past the last physical address.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.length_bytes)
    }
}

/// The header of a range `[start, start + length_bytes)`, or None for an empty range or one
/// that would end past the top of the address space.
#[must_use]
pub fn header(start: u64, length_bytes: u64) -> Option<[u8; 32]> {
    let last = start.checked_add(length_bytes.checked_sub(1)?)?;
    let mut h = [0u8; 32];
    let fields: [(usize, &[u8]); 4] = [
        (0, &MAGIC.to_le_bytes()),
        (4, &VERSION.to_le_bytes()),
        (8, &start.to_le_bytes()),
        (16, &last.to_le_bytes()),
    ];
    for (at, bytes) in fields {
        if let Some(dst) = h.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    Some(h)
}

/// Where `ranges` (physical start, length) land in a LiME file, in order. Fails unless
/// they are non-empty, ascending and disjoint: the rules of a strict LiME file.
pub fn layout(ranges: &[(u64, u64)]) -> Result<Vec<Range>, LimeError> {
    let mut out = Vec::with_capacity(ranges.len());
    let mut offset = 0u64;
    let mut prev_end: Option<u64> = None;
    for (i, &(start, length_bytes)) in ranges.iter().enumerate() {
        let bad = |what: String| LimeError::Layout { index: i, what };
        if length_bytes == 0 {
            return Err(bad("is empty".to_string()));
        }
        let end = start
            .checked_add(length_bytes)
            .ok_or_else(|| bad("ends past the top of the address space".to_string()))?;
        if let Some(p) = prev_end {
            if start < p {
                return Err(bad(format!(
                    "starts at {start:#x}, before the previous range's end {p:#x}"
                )));
            }
        }
        let data_offset = offset
            .checked_add(HEADER_BYTES)
            .ok_or_else(|| bad("file offset overflows".to_string()))?;
        offset = data_offset
            .checked_add(length_bytes)
            .ok_or_else(|| bad("file offset overflows".to_string()))?;
        out.push(Range {
            start,
            length_bytes,
            data_offset,
        });
        prev_end = Some(end);
    }
    Ok(out)
}

/// The size of the LiME file holding `ranges` (as laid out by [`layout`]).
#[must_use]
pub fn file_size(ranges: &[Range]) -> u64 {
    ranges.last().map_or(0, |r| r.data_offset + r.length_bytes)
}

/// A LiME file that breaks the format, or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LimeError {
    /// Reading the file failed.
    #[error("LiME header at byte {offset}: cannot read")]
    Read {
        /// The header's offset.
        offset: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A header field is wrong.
    #[error("LiME header at byte {offset}: {field} is {found}, expected {expected}")]
    Field {
        /// The header's offset.
        offset: u64,
        /// Which field.
        field: &'static str,
        /// What was found.
        found: String,
        /// What the format requires.
        expected: String,
    },
    /// Ranges to be written are not a strict LiME sequence.
    #[error("memory range {index} {what}")]
    Layout {
        /// Index of the range.
        index: usize,
        /// What is wrong.
        what: String,
    },
    /// The file has no range at all.
    #[error("empty LiME file: no range header")]
    Empty,
}

/// Reads every range header of a LiME file. The walk is bounded by the file: each header
/// must be followed by its full data, so a file of N bytes has at most N/33 ranges.
pub fn read_ranges(file: &dyn ReadAt) -> Result<Vec<Range>, LimeError> {
    let size = file.size();
    let mut out: Vec<Range> = Vec::new();
    let mut offset = 0u64;
    while offset < size {
        let mut h = [0u8; 32];
        file.read_exact_at(&mut h, offset)
            .map_err(|source| LimeError::Read { offset, source })?;
        let field = |field, found: String, expected: String| LimeError::Field {
            offset,
            field,
            found,
            expected,
        };
        let (magic, version, start, last, reserved) = decode(&h);
        if magic != MAGIC {
            return Err(field(
                "magic",
                format!("{magic:#010x}"),
                format!("{MAGIC:#010x}"),
            ));
        }
        if version != VERSION {
            return Err(field("version", version.to_string(), "1".to_string()));
        }
        if reserved != 0 {
            return Err(field("reserved", format!("{reserved:#x}"), "0".to_string()));
        }
        if last < start {
            return Err(field(
                "e_addr",
                format!("{last:#x}"),
                format!("at least s_addr {start:#x}"),
            ));
        }
        if let Some(prev) = out.last() {
            if start < prev.end() {
                return Err(field(
                    "s_addr",
                    format!("{start:#x}"),
                    format!("at least {:#x}, the previous range's end", prev.end()),
                ));
            }
        }
        let length_bytes = (last - start)
            .checked_add(1)
            .ok_or_else(|| field("e_addr", format!("{last:#x}"), "below 2^64-1".to_string()))?;
        let data_offset = offset + HEADER_BYTES;
        let next = data_offset
            .checked_add(length_bytes)
            .filter(|&n| n <= size)
            .ok_or_else(|| {
                field(
                    "e_addr",
                    format!("{last:#x} ({length_bytes} bytes of data)"),
                    format!("a range that fits the {size}-byte file"),
                )
            })?;
        out.push(Range {
            start,
            length_bytes,
            data_offset,
        });
        offset = next;
    }
    if out.is_empty() {
        return Err(LimeError::Empty);
    }
    Ok(out)
}

/// (magic, version, s_addr, e_addr, reserved) of a header.
fn decode(h: &[u8; 32]) -> (u32, u32, u64, u64, u64) {
    let u32_at = |at: usize| {
        h.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    let u64_at = |at: usize| {
        h.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    (u32_at(0), u32_at(4), u64_at(8), u64_at(16), u64_at(24))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Vec<Range>, LimeError> {
        read_ranges(&bytes)
    }

    fn file(ranges: &[(u64, u64)]) -> Vec<u8> {
        let mut v = Vec::new();
        for &(s, l) in ranges {
            v.extend_from_slice(&header(s, l).unwrap());
            v.extend((0..l).map(|i| (i % 251) as u8));
        }
        v
    }

    #[test]
    fn header_matches_lime_layout() {
        let h = header(0x1000, 0x2000).unwrap();
        assert_eq!(&h[..4], b"EMiL");
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(h[8..16].try_into().unwrap()), 0x1000);
        assert_eq!(u64::from_le_bytes(h[16..24].try_into().unwrap()), 0x2fff);
        assert_eq!(&h[24..], &[0u8; 8]);
        assert!(header(5, 0).is_none());
        assert!(header(u64::MAX, 2).is_none());
    }

    #[test]
    fn layout_and_read_agree() {
        let ranges = [(0, 0x9f000), (0x100000, 0x1000), (0x200000, 17)];
        let laid = layout(&ranges).unwrap();
        let bytes = file(&ranges);
        assert_eq!(file_size(&laid), bytes.len() as u64);
        assert_eq!(read(&bytes).unwrap(), laid);
        assert_eq!(laid[1].data_offset, 32 + 0x9f000 + 32);
    }

    #[test]
    fn layout_refuses_what_lime_forbids() {
        assert!(matches!(
            layout(&[(0, 10), (5, 10)]),
            Err(LimeError::Layout { index: 1, .. })
        ));
        assert!(layout(&[(0, 0)]).is_err());
        assert!(layout(&[(u64::MAX, 2)]).is_err());
        assert!(layout(&[(0, 10), (10, 1)]).is_ok());
    }

    #[test]
    fn damaged_files_are_named_with_their_offset() {
        let good = file(&[(0, 64), (4096, 64)]);
        let second = 32 + 64;
        let mut bad = good.clone();
        bad[second] ^= 1;
        assert!(matches!(
            read(&bad),
            Err(LimeError::Field { offset, field: "magic", .. }) if offset == second as u64
        ));
        let mut bad = good.clone();
        bad[second + 8..second + 16].copy_from_slice(&10u64.to_le_bytes());
        assert!(matches!(
            read(&bad),
            Err(LimeError::Field {
                field: "s_addr",
                ..
            })
        ));
        let mut bad = good.clone();
        bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            read(&bad),
            Err(LimeError::Field {
                field: "e_addr",
                ..
            })
        ));
        for cut in [1, 31, 33, good.len() - 1] {
            assert!(read(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(read(&[]), Err(LimeError::Empty)));
    }
}
