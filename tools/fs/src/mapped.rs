//! A file's content as a `ReadAt`, for the readers that map files to runs of blocks
//! (ext4 extents and block maps, XFS extents): runs in logical order, holes and unwritten
//! extents read as zeros, the end at the file's size; or bytes held in the inode itself.

use crate::{FsError, ReadAt};
use std::io;

/// A run of a file's blocks, as each reader stores it.
pub trait BlockRun {
    /// Its first logical block.
    fn logical(&self) -> u64;
    /// Its length in blocks.
    fn blocks(&self) -> u64;
    /// Whether it reads as zeros (an unwritten extent).
    fn zeros(&self) -> bool;
    /// The volume byte offset of its block `i` (blocks of `block_size` bytes).
    fn byte_of(&self, i: u64, block_size: u64) -> u64;
}

/// Where a file's bytes are.
#[derive(Debug)]
pub enum Content<R> {
    /// In the inode (inline data, fast symlinks, XFS local format).
    Inline(Vec<u8>),
    /// In runs of blocks, sorted by logical block, not overlapping.
    Runs(Vec<R>),
}

/// A file's content over its volume.
pub struct Mapped<'f, R> {
    /// The volume.
    pub vol: &'f dyn ReadAt,
    /// Its name in errors.
    pub volume: &'f str,
    /// Bytes per block.
    pub block_size: u64,
    /// The file's size: reads end there.
    pub size: u64,
    /// Where the bytes are.
    pub content: Content<R>,
}

impl<R> std::fmt::Debug for Mapped<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapped")
            .field("volume", &self.volume)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl<R: BlockRun + Send + Sync> ReadAt for Mapped<'_, R> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let want = usize::try_from(self.size - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let Some(out) = buf.get_mut(..want) else {
            return Ok(0);
        };
        match &self.content {
            Content::Inline(bytes) => {
                out.fill(0);
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                if let Some(src) = bytes.get(start..) {
                    let n = src.len().min(out.len());
                    if let (Some(d), Some(s)) = (out.get_mut(..n), src.get(..n)) {
                        d.copy_from_slice(s);
                    }
                }
            }
            Content::Runs(runs) => self.read_runs(runs, out, offset)?,
        }
        Ok(want)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl<R: BlockRun> Mapped<'_, R> {
    fn read_runs(&self, runs: &[R], out: &mut [u8], offset: u64) -> io::Result<()> {
        let bs = self.block_size.max(1);
        let mut done = 0usize;
        while done < out.len() {
            let pos = offset.saturating_add(done as u64);
            let lb = pos / bs;
            let within = pos % bs;
            let rest = out.len() - done;
            let i = runs.partition_point(|r| r.logical().saturating_add(r.blocks()) <= lb);
            let (n, source) = match runs.get(i) {
                Some(r) if r.logical() <= lb => {
                    let in_run = lb - r.logical();
                    let bytes_left = (r.blocks() - in_run).saturating_mul(bs) - within;
                    let n = usize::try_from(bytes_left).unwrap_or(usize::MAX).min(rest);
                    let src = (!r.zeros()).then(|| r.byte_of(in_run, bs).saturating_add(within));
                    (n, src)
                }
                Some(r) => {
                    let bytes_left = (r.logical() - lb).saturating_mul(bs) - within;
                    (
                        usize::try_from(bytes_left).unwrap_or(usize::MAX).min(rest),
                        None,
                    )
                }
                None => (rest, None),
            };
            let Some(chunk) = out.get_mut(done..done + n) else {
                break;
            };
            match source {
                Some(at) => {
                    crate::read_exact(self.vol, self.volume, chunk, at)
                        .map_err(FsError::into_io)?;
                }
                None => chunk.fill(0),
            }
            done += n;
        }
        Ok(())
    }
}
