//! Disk image readers: every format an examiner is handed, each opened read-only as one
//! [`ReadAt`] with random access and bounded memory.
//!
//! Every reader follows the same rules:
//! - files are opened read-only and never written (a VHDX log is replayed in memory only);
//! - every header field is checked before it is used: sizes against the file and against
//!   fixed caps, table offsets inside the file, tables never allocated from a claim alone;
//! - every error is a [`FormatError`] naming the file, the byte offset and the field;
//! - reads of unallocated areas give zeros (or the backing file's bytes), as the
//!   hypervisor would show them.
#![forbid(unsafe_code)]

mod bytes;
pub mod crc32c;
pub mod error;
#[doc(hidden)]
pub mod fuzz_support;
#[cfg(test)]
pub(crate) mod test_support;

pub use error::FormatError;
pub use vestige_evidence::read_at::ReadAt;

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What `vestige image info` shows about an opened image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    /// The format, e.g. `qcow2`, `vmdk`, `e01`.
    pub format: String,
    /// Its variant, e.g. `v3`, `monolithicSparse`, `dynamic`.
    pub variant: Option<String>,
    /// Bytes of the virtual disk.
    pub virtual_size_bytes: u64,
    /// The files read, in order (segments, extents).
    pub files: Vec<PathBuf>,
    /// The backing or parent image, itself described (a chain, outermost first).
    pub backing: Option<Box<ImageInfo>>,
    /// Internal snapshots, where the format has them.
    pub snapshots: Vec<SnapshotInfo>,
    /// Hashes stored in the image (e.g. EWF's MD5 and SHA-1), by algorithm.
    pub stored_hashes: BTreeMap<String, String>,
    /// Anything else an examiner should know (features, metadata, oddities).
    pub notes: Vec<String>,
}

/// One internal snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// Its id in the image.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Bytes of its virtual disk.
    pub virtual_size_bytes: u64,
    /// When it was taken (UTC, RFC 3339), if recorded.
    pub taken_utc: Option<String>,
}

pub mod container;
pub mod ewf;
pub mod ewf_write;
pub mod qcow2;
pub mod raw;
pub mod stream;
pub mod vdi;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;
pub mod volumes;

use std::path::Path;

/// An opened image: its bytes and its description.
pub trait Image: ReadAt {
    /// What `vestige image info` shows.
    fn info(&self) -> ImageInfo;
}

/// Backing chains longer than this are refused (real ones are a handful deep).
pub const MAX_CHAIN_DEPTH: usize = 16;
/// Bytes read from the start of a file to recognise its format.
pub const PROBE_BYTES: usize = 4096;

type Probe = fn(&[u8]) -> bool;
type Opener = fn(&Path, &[PathBuf]) -> Result<Box<dyn Image>, FormatError>;

/// The formats recognised by content, in the order they are tried. Raw (which matches
/// anything) is the fallback.
const FORMATS: &[(&str, Probe, Opener)] = &[
    ("e01", ewf::probe, ewf::open_boxed),
    ("qcow2", qcow2::probe, qcow2::open_boxed),
    ("vhdx", vhdx::probe, vhdx::open_boxed),
    ("vmdk", vmdk::probe, vmdk::open_boxed),
    ("vdi", vdi::probe, vdi::open_boxed),
    ("vhd", vhd::probe, vhd::open_boxed),
];

/// Opens `path` as whatever format its content says (never its extension).
///
/// # Errors
/// As the format's reader: a [`FormatError`] naming the file, offset and field.
pub fn open(path: &Path) -> Result<Box<dyn Image>, FormatError> {
    open_in_chain(path, &[])
}

/// Opens `path` as the backing (parent) image of the images in `chain` (outermost first):
/// refuses a loop (a file already in the chain) and chains deeper than
/// [`MAX_CHAIN_DEPTH`]. Readers call this for their backing files.
///
/// # Errors
/// A loop, a chain too deep, or the backing image's own errors.
pub fn open_in_chain(path: &Path, chain: &[PathBuf]) -> Result<Box<dyn Image>, FormatError> {
    open_in_chain_as(path, chain, None)
}

/// As [`open_in_chain`], read as `declared` (QEMU's format names: `raw`, `qcow2`, `vmdk`,
/// `vpc`, `vhdx`, `vdi`) when the child image names its backing file's format, as QEMU
/// does: a raw backing disk whose first sector happens to look like another format must
/// still be read as raw.
///
/// # Errors
/// A loop, a chain too deep, a declared format we do not read, or the backing image's own
/// errors (including content that is not the declared format).
pub fn open_in_chain_as(
    path: &Path,
    chain: &[PathBuf],
    declared: Option<&str>,
) -> Result<Box<dyn Image>, FormatError> {
    let canonical =
        std::fs::canonicalize(path).map_err(FormatError::io(path, "resolve the path"))?;
    if chain.contains(&canonical) {
        return Err(FormatError::invalid(
            path,
            0,
            "backing chain",
            format!(
                "loop: {} is already in the chain {:?}",
                canonical.display(),
                chain
            ),
        ));
    }
    if chain.len() >= MAX_CHAIN_DEPTH {
        return Err(FormatError::invalid(
            path,
            0,
            "backing chain",
            format!("deeper than {MAX_CHAIN_DEPTH} images"),
        ));
    }
    let mut inner = chain.to_vec();
    inner.push(canonical.clone());
    if let Some(name) = declared {
        let ours = match name {
            "vpc" => "vhd",
            other => other,
        };
        if ours == "raw" {
            return Ok(Box::new(raw::Raw::open_single(&canonical)?));
        }
        let Some((_, _, opener)) = FORMATS.iter().find(|(n, ..)| *n == ours) else {
            return Err(FormatError::Unsupported {
                file: path.to_path_buf(),
                what: format!("the declared backing format {name:?}"),
            });
        };
        return opener(&canonical, &inner);
    }
    if canonical.is_dir() {
        return Ok(Box::new(container::Container::open(&canonical)?));
    }
    // Formats recognised by their end: read it once for both.
    let tail = read_tail(&canonical, 512)?;
    if container::probe_tail(&tail) {
        return Ok(Box::new(container::Container::open(&canonical)?));
    }
    let head = read_head(&canonical)?;
    for (_, probe, opener) in FORMATS {
        if probe(&head) {
            return opener(&canonical, &inner);
        }
    }
    // A fixed VHD is raw data with a footer at the end only.
    if vhd::probe_tail(&tail) {
        return vhd::open_boxed(&canonical, &inner);
    }
    raw::open_boxed(&canonical, &inner)
}

/// The first [`PROBE_BYTES`] of a file (fewer if it is shorter).
fn read_head(path: &Path) -> Result<Vec<u8>, FormatError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(PROBE_BYTES);
    std::fs::File::open(path)
        .and_then(|f| f.take(PROBE_BYTES as u64).read_to_end(&mut head))
        .map_err(FormatError::io(path, "read its first bytes"))?;
    Ok(head)
}

/// The last `n` bytes of a file (fewer if it is shorter).
fn read_tail(path: &Path, n: u64) -> Result<Vec<u8>, FormatError> {
    use vestige_evidence::read_at::FileReader;
    let io_err = FormatError::io(path, "read its last bytes");
    let f = FileReader::open(path).map_err(io_err)?;
    let len = n.min(f.size());
    let mut tail = vec![0u8; usize::try_from(len).unwrap_or(0)];
    f.read_exact_at(&mut tail, f.size() - len).map_err(io_err)?;
    Ok(tail)
}

/// The shared body of a reader's `read_at`: clips `buf` to the `size` of the disk (0 at or
/// past the end), fills it with `read_inside`, and maps its error to an `io::Error`.
pub(crate) fn read_clipped(
    buf: &mut [u8],
    offset: u64,
    size: u64,
    read_inside: impl FnOnce(&mut [u8], u64) -> Result<(), FormatError>,
) -> std::io::Result<usize> {
    if offset >= size {
        return Ok(0);
    }
    let left = size - offset;
    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
    let Some(dst) = buf.get_mut(..n) else {
        return Ok(0);
    };
    read_inside(dst, offset).map_err(FormatError::into_io)?;
    Ok(n)
}
