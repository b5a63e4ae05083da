//! The LiME file of an acquisition as a [`ReadAt`]: range headers made on the fly, range
//! data read from the source (/proc/kcore, /dev/mem, a dump) through the [`PhysMap`].
//!
//! This lets memory go through the same pipeline as disks (parallel reads, per-chunk
//! BLAKE3 and zstd frames, ordered hashing) and come out as a seekable zstd container
//! whose decompressed bytes are exactly the LiME file that was hashed.
//!
//! A read that fails is retried page by page; a page that still cannot be read is
//! zero-filled and recorded, so one bad page costs 4 KiB of zeros, never the acquisition
//! and never a silent gap.

use super::physmap::PhysMap;
use std::io;
use std::sync::Mutex;
use vestige_evidence::lime::{self, Range};
use vestige_evidence::read_at::ReadAt;

/// The page size for retries and for recording unreadable memory.
const PAGE_BYTES: u64 = 4096;

/// A LiME file over a source.
#[derive(Debug)]
pub struct LimeStream<R> {
    source: R,
    map: PhysMap,
    ranges: Vec<Range>,
    size: u64,
    unreadable: Mutex<Vec<(u64, u64)>>,
}

impl<R: ReadAt> LimeStream<R> {
    /// The LiME file of the physical memory `map` describes, read from `source`.
    pub fn new(source: R, map: PhysMap) -> Result<Self, lime::LimeError> {
        let ranges = lime::layout(&map.spans())?;
        let size = lime::file_size(&ranges);
        Ok(LimeStream {
            source,
            map,
            ranges,
            size,
            unreadable: Mutex::new(Vec::new()),
        })
    }

    /// The LiME ranges, in file order.
    #[must_use]
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// Physical ranges that could not be read (zero-filled), ascending and merged.
    #[must_use]
    pub fn unreadable(&self) -> Vec<(u64, u64)> {
        let mut v = self
            .unreadable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        v.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (s, l) in v {
            match out.last_mut() {
                Some((ps, pl)) if *ps + *pl >= s => *pl = (*pl).max(s + l - *ps),
                _ => out.push((s, l)),
            }
        }
        out
    }

    /// Reads physical memory `[phys, phys + buf.len())`, all inside one LiME range.
    fn read_phys(&self, buf: &mut [u8], phys: u64) -> io::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = phys + done as u64;
            let piece = self.map.piece_at(at).ok_or_else(|| {
                io::Error::other(format!("physical address {at:#x} is in no piece"))
            })?;
            let in_piece = piece.phys + piece.length_bytes - at;
            let n = usize::try_from(in_piece)
                .unwrap_or(usize::MAX)
                .min(buf.len() - done);
            let file_offset = piece.file_offset + (at - piece.phys);
            if let Some(dst) = buf.get_mut(done..done + n) {
                if self.source.read_exact_at(dst, file_offset).is_err() {
                    self.read_pages(dst, at, file_offset);
                }
            }
            done += n;
        }
        Ok(())
    }

    /// The slow path: page by page, zero-filling and recording pages that fail.
    fn read_pages(&self, dst: &mut [u8], phys: u64, file_offset: u64) {
        let mut done = 0usize;
        while done < dst.len() {
            let at = phys + done as u64;
            let to_boundary = PAGE_BYTES - at % PAGE_BYTES;
            let n = usize::try_from(to_boundary)
                .unwrap_or(usize::MAX)
                .min(dst.len() - done);
            if let Some(page) = dst.get_mut(done..done + n) {
                if let Err(e) = self.source.read_exact_at(page, file_offset + done as u64) {
                    tracing::warn!(physical = format!("{at:#x}"), bytes = n, error = %e,
                        "unreadable memory: zero-filled and recorded");
                    page.fill(0);
                    self.unreadable
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((at, n as u64));
                }
            }
            done += n;
        }
    }
}

impl<R: ReadAt> ReadAt for LimeStream<R> {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        let mut done = 0usize;
        while done < buf.len() {
            let off = offset_bytes + done as u64;
            if off >= self.size {
                break;
            }
            // The range whose header or data holds `off`.
            let i = self
                .ranges
                .partition_point(|r| r.data_offset + r.length_bytes <= off);
            let Some(r) = self.ranges.get(i) else { break };
            let header_start = r.data_offset - lime::HEADER_BYTES;
            let rest = buf.get_mut(done..).unwrap_or_default();
            let n = if off < r.data_offset {
                let h = lime::header(r.start, r.length_bytes)
                    .ok_or_else(|| io::Error::other("LiME range without a header"))?;
                let from = usize::try_from(off - header_start).unwrap_or(0);
                let src = h.get(from..).unwrap_or_default();
                let n = src.len().min(rest.len());
                if let (Some(d), Some(s)) = (rest.get_mut(..n), src.get(..n)) {
                    d.copy_from_slice(s);
                }
                n
            } else {
                let in_range = r.data_offset + r.length_bytes - off;
                let n = usize::try_from(in_range)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                if let Some(d) = rest.get_mut(..n) {
                    self.read_phys(d, r.start + (off - r.data_offset))?;
                }
                n
            };
            done += n;
        }
        Ok(done)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::physmap::Piece;
    use super::*;

    /// A source whose bytes are a function of the offset, failing on one page.
    struct Source {
        bad_offset: Option<u64>,
    }
    impl ReadAt for Source {
        fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
            if let Some(b) = self.bad_offset {
                if off <= b && b < off + buf.len() as u64 {
                    return Err(io::Error::from_raw_os_error(libc::EFAULT));
                }
            }
            for (i, x) in buf.iter_mut().enumerate() {
                *x = ((off + i as u64) % 253) as u8;
            }
            Ok(buf.len())
        }
        fn size(&self) -> u64 {
            u64::MAX
        }
    }

    fn map() -> PhysMap {
        PhysMap::new(vec![
            Piece {
                phys: 0x1000,
                length_bytes: 0x3000,
                file_offset: 0x10_0000,
            },
            // Physically contiguous with the first, stored elsewhere: one LiME range.
            Piece {
                phys: 0x4000,
                length_bytes: 0x2000,
                file_offset: 0x50_0000,
            },
            Piece {
                phys: 0x10_0000,
                length_bytes: 0x1800,
                file_offset: 0x90_0000,
            },
        ])
        .unwrap()
    }

    fn expected(bad: Option<u64>) -> Vec<u8> {
        let mut v = Vec::new();
        let src = |off: u64| {
            if bad.is_some_and(|b| off / 4096 == b / 4096) {
                0
            } else {
                (off % 253) as u8
            }
        };
        v.extend_from_slice(&lime::header(0x1000, 0x5000).unwrap());
        v.extend((0..0x3000u64).map(|i| src(0x10_0000 + i)));
        v.extend((0..0x2000u64).map(|i| src(0x50_0000 + i)));
        v.extend_from_slice(&lime::header(0x10_0000, 0x1800).unwrap());
        v.extend((0..0x1800u64).map(|i| src(0x90_0000 + i)));
        v
    }

    fn read_all(s: &dyn ReadAt, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut off = 0u64;
        loop {
            let mut buf = vec![0u8; step];
            let n = s.read_at(&mut buf, off).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            off += n as u64;
        }
        out
    }

    #[test]
    fn stream_is_the_lime_file_whatever_the_read_size() {
        let s = LimeStream::new(Source { bad_offset: None }, map()).unwrap();
        let want = expected(None);
        assert_eq!(s.size(), want.len() as u64);
        for step in [1, 7, 31, 32, 33, 4096, 5000, 1 << 20] {
            assert_eq!(read_all(&s, step), want, "step {step}");
        }
        assert!(s.unreadable().is_empty());
        // The result parses as strict LiME.
        assert_eq!(lime::read_ranges(&want.as_slice()).unwrap(), s.ranges());
    }

    #[test]
    fn a_bad_page_is_zeroed_and_recorded() {
        let bad = 0x50_0000 + 0x1234;
        let s = LimeStream::new(
            Source {
                bad_offset: Some(bad),
            },
            map(),
        )
        .unwrap();
        assert_eq!(read_all(&s, 1 << 20), expected(Some(bad)));
        // File offset 0x50_1234 holds physical 0x4000 + 0x1234: page 0x5000.
        assert_eq!(s.unreadable(), vec![(0x5000, 0x1000)]);
    }
}
