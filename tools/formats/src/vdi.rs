//! VDI (VirtualBox Disk Image), read-only: normal (dynamic) and fixed images of header
//! version 1.1.
//!
//! Layout (VirtualBox `VDICore.h`, qemu `block/vdi.c`; all fields little-endian): a 64-byte
//! pre-header text, the signature `0xBEDA107F` at byte 64, the version (`0x00010001`) and
//! the version-1 header (`cbHeader` ≥ 0x180 bytes from byte 72). The header gives the block
//! map's offset (one u32 per block of the virtual disk: the index of the block in the data
//! area, `0xFFFFFFFF` unallocated, `0xFFFFFFFE` discarded/zero) and the data area's offset;
//! block `i` of the data area starts at `offset_data + i * (block_size + block_extra) +
//! block_extra`. Unallocated and discarded blocks read as zeros.
//!
//! Refused: differencing (`diff`, type 4) and undo (type 3) images, whose parent is found by
//! UUID only (no path is stored), and header versions other than 1.x.

use crate::bytes::{le_u32 as u32_at, le_u32_opt as le_u32, le_u64};
use crate::{FormatError, Image, ImageInfo};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use vestige_evidence::read_at::ReadAt;

/// The signature at byte 64.
const SIGNATURE: u32 = 0xBEDA_107F;
/// Byte offset of the signature (after the pre-header text).
const SIGNATURE_AT: u64 = 64;
/// Bytes of the header read (pre-header, signature, version, version-1 header, padding).
const HEADER_BYTES: usize = 512;
/// Smallest `cbHeader` of a version-1 header (`VDIHEADER1`).
const MIN_HEADER_SIZE: u32 = 0x180;
/// Largest `cbHeader` that fits in [`HEADER_BYTES`] after byte 72.
const MAX_HEADER_SIZE: u32 = 512 - 72;
/// Block map entry: the block is not allocated.
const UNALLOCATED: u32 = 0xFFFF_FFFF;
/// Block map entry: the block was discarded and reads as zeros.
const ZERO_BLOCK: u32 = 0xFFFF_FFFE;
/// Largest block accepted (VirtualBox and qemu write 1 MiB).
const MAX_BLOCK_BYTES: u32 = 256 << 20;
/// Largest block map read into memory (4 bytes per block: 64 TiB at 1 MiB blocks).
const MAX_BMAP_BYTES: u64 = 256 << 20;
/// Largest per-block extra data accepted.
const MAX_BLOCK_EXTRA: u32 = 1 << 20;

/// Image types.
const TYPE_NORMAL: u32 = 1;
const TYPE_FIXED: u32 = 2;
const TYPE_UNDO: u32 = 3;
const TYPE_DIFF: u32 = 4;

/// Whether `head` (the first bytes of a file) is this format.
pub(crate) fn probe(head: &[u8]) -> bool {
    le_u32(head, 64) == Some(SIGNATURE)
}

/// Opens `path` (see [`crate::open_in_chain`] for `chain`).
pub(crate) fn open_boxed(path: &Path, _chain: &[PathBuf]) -> Result<Box<dyn Image>, FormatError> {
    Ok(Box::new(Vdi::open(path)?))
}

/// An opened VDI.
pub struct Vdi {
    path: PathBuf,
    file: File,
    size_bytes: u64,
    block_bytes: u64,
    /// Bytes of each block's extra data, before its data.
    extra_bytes: u64,
    offset_bmap: u64,
    offset_data: u64,
    blocks_in_image: u32,
    /// One entry per block of the virtual disk.
    bmap: Vec<u32>,
    image_type: u32,
    file_len: u64,
    notes: Vec<String>,
}

impl std::fmt::Debug for Vdi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vdi")
            .field("path", &self.path)
            .field("image_type", &self.image_type)
            .field("size_bytes", &self.size_bytes)
            .finish_non_exhaustive()
    }
}

fn read_exact(
    file: &File,
    path: &Path,
    buf: &mut [u8],
    offset: u64,
    what: &str,
) -> Result<(), FormatError> {
    file.read_exact_at(buf, offset)
        .map_err(|source| FormatError::Io {
            file: path.to_path_buf(),
            what: format!("read the {what} at byte {offset}"),
            source,
        })
}

impl Vdi {
    /// Opens the VDI at `path`.
    ///
    /// # Errors
    /// A [`FormatError`] naming the file, byte offset and field of the first header field
    /// that is not what the format allows; [`FormatError::Unsupported`] for differencing and
    /// undo images.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(FormatError::io(path, "open it read-only"))?;
        let file_len = file
            .metadata()
            .map_err(FormatError::io(path, "read its size"))?
            .len();
        if file_len < HEADER_BYTES as u64 {
            return Err(FormatError::invalid(
                path,
                0,
                "vdi header",
                format!(
                    "the file is {file_len} bytes, shorter than the {HEADER_BYTES}-byte header"
                ),
            ));
        }
        let mut h = [0u8; HEADER_BYTES];
        read_exact(&file, path, &mut h, 0, "header")?;
        let inv = |at: usize, field: &'static str, reason: String| {
            FormatError::invalid(path, at as u64, field, reason)
        };
        let signature = u32_at(&h, 64);
        if signature != SIGNATURE {
            return Err(inv(
                64,
                "vdi header.signature",
                format!("found {signature:#010x}, expected {SIGNATURE:#010x}"),
            ));
        }
        let version = u32_at(&h, 68);
        if version >> 16 != 1 {
            return Err(inv(
                68,
                "vdi header.version",
                format!("found {version:#010x}, expected version 1.x (0x0001xxxx)"),
            ));
        }
        let header_size = u32_at(&h, 72);
        if !(MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&header_size) {
            return Err(inv(
                72,
                "vdi header.header_size",
                format!("found {header_size}, expected {MIN_HEADER_SIZE} to {MAX_HEADER_SIZE}"),
            ));
        }
        let image_type = u32_at(&h, 76);
        match image_type {
            TYPE_NORMAL | TYPE_FIXED => {}
            TYPE_UNDO | TYPE_DIFF => {
                return Err(FormatError::Unsupported {
                    file: path.to_path_buf(),
                    what: format!(
                        "a VDI {} image (type {image_type}; its parent {} is named by UUID \
                         only)",
                        if image_type == TYPE_DIFF {
                            "differencing"
                        } else {
                            "undo"
                        },
                        crate::bytes::guid_text(h.get(0x1b8..0x1c8).unwrap_or_default())
                    ),
                })
            }
            other => {
                return Err(inv(
                    76,
                    "vdi header.image_type",
                    format!("found {other}, expected 1 (normal) or 2 (fixed)"),
                ))
            }
        }
        let offset_bmap = u64::from(u32_at(&h, 0x154));
        let offset_data = u64::from(u32_at(&h, 0x158));
        let sector_size = u32_at(&h, 0x168);
        let disk_size = le_u64(&h, 0x170);
        let block_size = u32_at(&h, 0x178);
        let block_extra = u32_at(&h, 0x17c);
        let blocks_in_image = u32_at(&h, 0x180);
        let blocks_allocated = u32_at(&h, 0x184);
        if sector_size != 512 {
            return Err(inv(
                0x168,
                "vdi header.sector_size",
                format!("found {sector_size}, expected 512"),
            ));
        }
        if !block_size.is_power_of_two() || !(512..=MAX_BLOCK_BYTES).contains(&block_size) {
            return Err(inv(
                0x178,
                "vdi header.block_size",
                format!(
                    "found {block_size}, expected a power of two from 512 to {MAX_BLOCK_BYTES}"
                ),
            ));
        }
        if block_extra > MAX_BLOCK_EXTRA {
            return Err(inv(
                0x17c,
                "vdi header.block_extra",
                format!("found {block_extra}, expected at most {MAX_BLOCK_EXTRA}"),
            ));
        }
        let block_bytes = u64::from(block_size);
        let room = u64::from(blocks_in_image) * block_bytes;
        if disk_size > room {
            return Err(inv(
                0x170,
                "vdi header.disk_size",
                format!(
                    "found {disk_size} bytes, but {blocks_in_image} blocks of {block_size} \
                     bytes hold only {room}"
                ),
            ));
        }
        let bmap_bytes = u64::from(blocks_in_image) * 4;
        let bmap_end = offset_bmap.saturating_add(bmap_bytes);
        if offset_bmap < SIGNATURE_AT + u64::from(header_size) || bmap_end > file_len {
            return Err(inv(
                0x154,
                "vdi header.offset_bmap",
                format!(
                    "a block map of {blocks_in_image} entries ({bmap_bytes} bytes) at byte \
                     {offset_bmap}; expected after the header and inside the {file_len}-byte \
                     file"
                ),
            ));
        }
        if bmap_bytes > MAX_BMAP_BYTES {
            return Err(inv(
                0x180,
                "vdi header.blocks_in_image",
                format!(
                    "found {blocks_in_image}: a {bmap_bytes}-byte block map, more than this \
                     reader's {MAX_BMAP_BYTES}-byte limit"
                ),
            ));
        }
        if offset_data < bmap_end {
            return Err(inv(
                0x158,
                "vdi header.offset_data",
                format!("found {offset_data}, expected at or after the block map's end {bmap_end}"),
            ));
        }
        // Only the entries of blocks inside the disk are read (bounded by the file above).
        let used_blocks = disk_size.div_ceil(block_bytes);
        let mut raw = vec![0u8; usize::try_from(used_blocks * 4).unwrap_or(0)];
        read_exact(&file, path, &mut raw, offset_bmap, "block map")?;
        let bmap: Vec<u32> = raw.chunks_exact(4).map(|c| u32_at(c, 0)).collect();
        let mut notes = vec![
            format!("block size {block_size} bytes, {blocks_in_image} blocks, {blocks_allocated} allocated"),
            format!("image uuid {}", crate::bytes::guid_text(h.get(0x188..0x198).unwrap_or_default())),
        ];
        let text: String = h
            .get(..64)
            .unwrap_or_default()
            .iter()
            .take_while(|&&c| c != 0 && c != b'\n')
            .map(|&c| char::from(c))
            .collect();
        notes.push(format!("pre-header \"{text}\""));
        let description: String = h
            .get(0x54..0x154)
            .unwrap_or_default()
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| char::from(c))
            .collect();
        if !description.is_empty() {
            notes.push(format!("description \"{description}\""));
        }
        if block_extra != 0 {
            notes.push(format!(
                "{block_extra} bytes of extra data before each block"
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size_bytes: disk_size,
            block_bytes,
            extra_bytes: u64::from(block_extra),
            offset_bmap,
            offset_data,
            blocks_in_image,
            bmap,
            image_type,
            file_len,
            notes,
        })
    }

    /// Where the data of virtual block `block` starts in the file, `None` for a block
    /// reading as zeros; checks the entry and that the block lies inside the file.
    fn block_start(&self, block: u64) -> Result<Option<u64>, FormatError> {
        let entry_at = self.offset_bmap + block * 4;
        let entry = usize::try_from(block)
            .ok()
            .and_then(|i| self.bmap.get(i).copied())
            .ok_or_else(|| {
                FormatError::invalid(&self.path, entry_at, "vdi block map entry", "past the map")
            })?;
        if entry == UNALLOCATED || entry == ZERO_BLOCK {
            return Ok(None);
        }
        let stride = self.block_bytes + self.extra_bytes;
        let start = self.offset_data + u64::from(entry) * stride + self.extra_bytes;
        let end = start + self.block_bytes;
        if entry >= self.blocks_in_image || end > self.file_len {
            return Err(FormatError::invalid(
                &self.path,
                entry_at,
                "vdi block map entry",
                format!(
                    "block {block} maps to data block {entry} at bytes {start}..{end}; expected \
                     an index below {} ending inside the {}-byte file",
                    self.blocks_in_image, self.file_len
                ),
            ));
        }
        Ok(Some(start))
    }

    /// Reads `buf.len()` bytes at `offset` (inside the disk), coalescing blocks that are
    /// contiguous in the file into one read.
    fn read_inside(&self, buf: &mut [u8], offset: u64) -> Result<(), FormatError> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let block = pos / self.block_bytes;
            let in_block = pos % self.block_bytes;
            let start = self.block_start(block)?;
            // Extend over following blocks of the same kind (zero, or contiguous data).
            let mut span = self.block_bytes - in_block;
            let mut next = block + 1;
            let want = (buf.len() - done) as u64;
            while span < want {
                // A bad entry ahead is reported when the read gets there.
                let Ok(s) = self.block_start(next) else {
                    break;
                };
                let contiguous = match (start, s) {
                    (None, None) => true,
                    (Some(a), Some(b)) => {
                        self.extra_bytes == 0 && b == a + (next - block) * self.block_bytes
                    }
                    _ => false,
                };
                if !contiguous {
                    break;
                }
                span += self.block_bytes;
                next += 1;
            }
            let n = usize::try_from(span)
                .unwrap_or(usize::MAX)
                .min(buf.len() - done);
            let Some(part) = buf.get_mut(done..done + n) else {
                break;
            };
            match start {
                None => part.fill(0),
                Some(s) => read_exact(&self.file, &self.path, part, s + in_block, "block data")?,
            }
            done += n;
        }
        Ok(())
    }
}

impl ReadAt for Vdi {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        crate::read_clipped(buf, offset_bytes, self.size_bytes, |dst, at| {
            self.read_inside(dst, at)
        })
    }

    fn size(&self) -> u64 {
        self.size_bytes
    }
}

impl Image for Vdi {
    fn info(&self) -> ImageInfo {
        let variant = if self.image_type == TYPE_FIXED {
            "fixed"
        } else {
            "normal"
        };
        ImageInfo {
            format: "vdi".to_string(),
            variant: Some(variant.to_string()),
            virtual_size_bytes: self.size_bytes,
            files: vec![self.path.clone()],
            notes: self.notes.clone(),
            ..ImageInfo::default()
        }
    }
}

#[cfg(test)]
#[path = "vdi_tests.rs"]
mod tests;
