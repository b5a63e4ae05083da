//! The Vestige container (`image.zst`, zstd's seekable format): an evidence item is an
//! image like any other. Recognised by its seek-table footer at the end of the file, or
//! given as the item directory.

use crate::{FormatError, Image, ImageInfo, ReadAt};
use std::io;
use std::path::{Path, PathBuf};
use vestige_evidence::manifest::IMAGE_FILE;
use vestige_evidence::read_at::FileReader;
use vestige_evidence::seekable::{SeekableReader, FOOTER_BYTES, SEEKABLE_MAGIC};

/// An evidence container opened for reading.
#[derive(Debug)]
pub struct Container {
    reader: SeekableReader<FileReader>,
    path: PathBuf,
}

/// The image file of `path`: itself, or `path/image.zst` for an item directory.
#[must_use]
pub fn image_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(IMAGE_FILE)
    } else {
        path.to_path_buf()
    }
}

/// Whether `tail` (a file's last bytes, the whole file if shorter) ends with a
/// seekable-format footer: the magic in its last 4 bytes.
pub(crate) fn probe_tail(tail: &[u8]) -> bool {
    tail.len() as u64 >= FOOTER_BYTES
        && tail
            .last_chunk::<4>()
            .is_some_and(|m| u32::from_le_bytes(*m) == SEEKABLE_MAGIC)
}

impl Container {
    /// Opens a container file (or an item directory's image.zst).
    ///
    /// # Errors
    /// The file cannot be read, or its seek table is not valid.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let path = image_file(path);
        let file = FileReader::open(&path).map_err(FormatError::io(&path, "open it"))?;
        let reader = SeekableReader::open(file).map_err(|e| {
            FormatError::invalid(&path, 0, "seekable zstd seek table", e.to_string())
        })?;
        Ok(Self { reader, path })
    }
}

impl ReadAt for Container {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        self.reader.read_at(buf, offset_bytes)
    }

    fn size(&self) -> u64 {
        self.reader.size()
    }
}

impl Image for Container {
    fn info(&self) -> ImageInfo {
        let table = self.reader.table();
        ImageInfo {
            format: "vestige".to_string(),
            variant: Some("zstd seekable".to_string()),
            virtual_size_bytes: self.reader.size(),
            files: vec![self.path.clone()],
            notes: vec![format!(
                "{} frames; verify the item with `vestige verify` for its signed hashes",
                table.frame_count()
            )],
            ..ImageInfo::default()
        }
    }
}
