//! A volume as its own disk: a bounded byte range of the disk underneath.

use crate::ReadAt;
use std::io;

/// Bytes `start_bytes .. start_bytes + len_bytes` of `disk`, read as offsets from 0.
///
/// The size is what the volume system claims; a partition may claim more than the image
/// holds (a truncated image, a hostile table). Reads of the part that exists work; a read
/// reaching past the disk's end fails with `UnexpectedEof` naming the offset, never
/// zero-filled guesses.
#[derive(Clone)]
pub struct Slice<R> {
    disk: R,
    start_bytes: u64,
    len_bytes: u64,
}

impl<R> std::fmt::Debug for Slice<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slice")
            .field("start_bytes", &self.start_bytes)
            .field("len_bytes", &self.len_bytes)
            .finish_non_exhaustive()
    }
}

impl<R: ReadAt> Slice<R> {
    /// The slice of `disk` at `start_bytes` of `len_bytes`.
    pub fn new(disk: R, start_bytes: u64, len_bytes: u64) -> Self {
        Self {
            disk,
            start_bytes,
            len_bytes,
        }
    }

    /// Where it starts on the disk, in bytes.
    pub fn start_bytes(&self) -> u64 {
        self.start_bytes
    }
}

impl<R: ReadAt> ReadAt for Slice<R> {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        if offset_bytes >= self.len_bytes {
            return Ok(0);
        }
        let left = self.len_bytes - offset_bytes;
        let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let Some(dst) = buf.get_mut(..n) else {
            return Ok(0);
        };
        let past_end = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "volume byte {offset_bytes} (+{n}) lies past the end of the disk ({} bytes)",
                    self.disk.size()
                ),
            )
        };
        let at = self
            .start_bytes
            .checked_add(offset_bytes)
            .ok_or_else(past_end)?;
        let end = at.checked_add(n as u64).ok_or_else(past_end)?;
        if end > self.disk.size() {
            return Err(past_end());
        }
        self.disk.read_exact_at(dst, at)?;
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.len_bytes
    }
}
