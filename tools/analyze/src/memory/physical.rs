//! Physical memory from a LiME file (any [`ReadAt`], such as the decompressed view of an
//! item's `memory.lime.zst`).

use vestige_evidence::lime::{self, Range};
use vestige_evidence::read_at::ReadAt;

/// Why memory could not be read or walked.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The LiME file is malformed.
    #[error(transparent)]
    Lime(#[from] lime::LimeError),
    /// A physical address is in no range of the image.
    #[error("physical address {phys:#x} ({len} bytes) is not in the image")]
    NotInImage {
        /// The address.
        phys: u64,
        /// Bytes wanted.
        len: usize,
    },
    /// Reading the image failed.
    #[error("reading physical address {phys:#x} (LiME byte {offset})")]
    Read {
        /// The address.
        phys: u64,
        /// Its offset in the LiME file.
        offset: u64,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel could not be found or walked.
    #[error("{0}")]
    Kernel(String),
}

/// A LiME image addressed by physical address.
#[derive(Debug)]
pub struct LimeMemory<R> {
    file: R,
    ranges: Vec<Range>,
}

impl<R: ReadAt> LimeMemory<R> {
    /// Reads the range headers of `file`.
    pub fn open(file: R) -> Result<Self, MemoryError> {
        let ranges = lime::read_ranges(&file)?;
        Ok(LimeMemory { file, ranges })
    }

    /// The ranges, ascending.
    #[must_use]
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// Reads `buf.len()` bytes at physical address `phys` (within one range).
    pub fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let not_in = || MemoryError::NotInImage {
            phys,
            len: buf.len(),
        };
        let i = self.ranges.partition_point(|r| r.end() <= phys);
        let r = self
            .ranges
            .get(i)
            .filter(|r| r.start <= phys)
            .ok_or_else(not_in)?;
        let end = phys.checked_add(buf.len() as u64).ok_or_else(not_in)?;
        if end > r.end() {
            return Err(not_in());
        }
        let offset = r.data_offset + (phys - r.start);
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| MemoryError::Read {
                phys,
                offset,
                source,
            })
    }

    /// A little-endian u64 at `phys`.
    pub fn u64_at(&self, phys: u64) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.read(phys, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Every physical address where `needle` starts (at most `limit`), scanning the image
    /// in 4 MiB steps that overlap by the needle's length.
    pub fn find(&self, needle: &[u8], limit: usize) -> Result<Vec<u64>, MemoryError> {
        const STEP: u64 = 4 << 20;
        let mut out = Vec::new();
        if needle.is_empty() {
            return Ok(out);
        }
        let overlap = needle.len() as u64 - 1;
        let mut buf = Vec::new();
        for r in &self.ranges {
            let mut at = r.start;
            while at < r.end() && out.len() < limit {
                let len = (r.end() - at).min(STEP + overlap);
                buf.resize(usize::try_from(len).unwrap_or(0), 0);
                self.read(at, &mut buf)?;
                for (i, w) in buf.windows(needle.len()).enumerate() {
                    if w == needle && (i as u64) < STEP {
                        out.push(at + i as u64);
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
                at += STEP;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn image() -> Vec<u8> {
        let mut v = Vec::new();
        for (start, data) in [
            (0x1000u64, vec![1u8; 0x1000]),
            (0x10_0000, b"..needle..".to_vec()),
        ] {
            v.extend_from_slice(&lime::header(start, data.len() as u64).unwrap());
            v.extend_from_slice(&data);
        }
        v
    }

    #[test]
    fn reads_by_physical_address() {
        let img = image();
        let m = LimeMemory::open(img.as_slice()).unwrap();
        let mut b = [0u8; 6];
        m.read(0x10_0002, &mut b).unwrap();
        assert_eq!(&b, b"needle");
        assert!(matches!(
            m.read(0x1ffe, &mut [0u8; 4]),
            Err(MemoryError::NotInImage { phys: 0x1ffe, .. })
        ));
        assert!(m.read(0x5000, &mut b).is_err());
        assert!(m.read(u64::MAX - 2, &mut b).is_err());
        assert_eq!(m.find(b"needle", 10).unwrap(), vec![0x10_0002]);
    }
}
