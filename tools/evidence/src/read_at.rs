//! Positional reads: the one trait every layer of Vestige reads bytes through.
//!
//! Acquisition reads a source with it from many threads at once; analysis reads the
//! evidence container (and later E01, qcow2, …) with it. The contract follows
//! `rust-vmm/vm-memory`'s: `&self`, an absolute byte offset, short reads allowed
//! only at the end of the data.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes at an offset, readable from many threads at once.
pub trait ReadAt: Send + Sync {
    /// Reads up to `buf.len()` bytes starting at `offset_bytes`.
    ///
    /// Returns the number of bytes read; fewer than asked only when the end of the data is
    /// reached inside the request, and 0 at or past the end.
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize>;

    /// The size of the readable data in bytes.
    fn size(&self) -> u64;

    /// Reads exactly `buf.len()` bytes at `offset_bytes`, or fails with
    /// [`io::ErrorKind::UnexpectedEof`] naming the offset where the data ended.
    fn read_exact_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<()> {
        let mut done = 0usize;
        while let Some(rest) = buf.get_mut(done..) {
            if rest.is_empty() {
                break;
            }
            let at = offset_bytes.checked_add(done as u64).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "offset overflows u64")
            })?;
            match self.read_at(rest, at) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("data ends at byte {at}, {} bytes short", rest.len()),
                    ))
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset_bytes)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for std::sync::Arc<T> {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset_bytes)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset_bytes) else {
            return Ok(0);
        };
        let Some(src) = self.get(start..) else {
            return Ok(0);
        };
        let n = src.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }
    fn size(&self) -> u64 {
        self.len() as u64
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset_bytes)
    }
    fn size(&self) -> u64 {
        self.len() as u64
    }
}

/// A file or block device opened read-only, with its size fixed when opened.
///
/// The size comes from seeking to the end, which works for block devices where
/// `metadata().len()` is 0.
#[derive(Debug)]
pub struct FileReader {
    file: File,
    path: PathBuf,
    size_bytes: u64,
}

impl FileReader {
    /// Opens `path` read-only (never for writing: this may be evidence).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        Self::from_file(file, path)
    }

    /// Wraps an already opened file; `path` is kept for error messages.
    pub fn from_file(file: File, path: &Path) -> io::Result<Self> {
        use std::io::Seek;
        let mut f = &file;
        let size_bytes = f.seek(io::SeekFrom::End(0))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            size_bytes,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying file (for ioctls and metadata).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl ReadAt for FileReader {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        if offset_bytes >= self.size_bytes {
            return Ok(0);
        }
        let left = self.size_bytes - offset_bytes;
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let dst = buf.get_mut(..want).unwrap_or_default();
        loop {
            match self.file.read_at(dst, offset_bytes) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
    fn size(&self) -> u64 {
        self.size_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_reads_are_short_only_at_the_end() {
        let data: Vec<u8> = (0u8..10).collect();
        let mut buf = [0u8; 4];
        assert_eq!(data.read_at(&mut buf, 8).ok(), Some(2));
        assert_eq!(&buf[..2], &[8, 9]);
        assert_eq!(data.read_at(&mut buf, 10).ok(), Some(0));
        assert_eq!(data.read_at(&mut buf, u64::MAX).ok(), Some(0));
    }

    #[test]
    fn read_exact_names_where_data_ends() {
        let data = vec![1u8; 10];
        let mut buf = [0u8; 4];
        let err = data.read_exact_at(&mut buf, 8).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("data ends at byte 10, 2 bytes short"));
    }

    #[test]
    fn file_reader_clamps_to_size() -> io::Result<()> {
        let mut f = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(&mut f, b"hello world")?;
        let r = FileReader::open(f.path())?;
        assert_eq!(r.size(), 11);
        let mut buf = [0u8; 8];
        assert_eq!(r.read_at(&mut buf, 6)?, 5);
        assert_eq!(&buf[..5], b"world");
        Ok(())
    }
}
