//! Opening an acquisition source read-only and recording what it is.
//!
//! A source is a block device or a regular file. Both are opened `O_RDONLY`; a block device
//! additionally gets its kernel read-only flag set (BLKROSET) and read back (BLKROGET)
//! before a single byte is read, and both outcomes go into the manifest.

use crate::blockdev;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use vestige_evidence::manifest::{SourceIdentity, WriteProtection};
use vestige_evidence::read_at::FileReader;

/// Why a source could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// stat or open failed.
    #[error("source {path}: cannot {what}")]
    Io {
        /// The source path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Not a block device or a regular file.
    #[error("source {path}: is a {kind}, expected a block device or a regular file")]
    Kind {
        /// The source path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A block-device ioctl failed.
    #[error("source {path}: {ioctl} failed")]
    Ioctl {
        /// The source path.
        path: PathBuf,
        /// Which ioctl.
        ioctl: &'static str,
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

/// An opened source: a reader and its identity.
#[derive(Debug)]
pub struct Source {
    /// Positional reads over the source.
    pub reader: FileReader,
    /// What it is, for the manifest.
    pub identity: SourceIdentity,
    /// (major, minor) for block devices.
    pub device_number: Option<(u64, u64)>,
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> SourceError + 'a {
    move |source| SourceError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

fn kind_name(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Opens a regular file read-only, without updating its access time where the kernel lets
/// us (O_NOATIME needs ownership or CAP_FOWNER): reading evidence must not change it.
fn open_read_only(path: &Path) -> io::Result<(File, &'static str)> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Ok(f) => Ok((f, "O_RDONLY|O_NOATIME")),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok((File::open(path)?, "O_RDONLY")),
        Err(e) => Err(e),
    }
}

/// The source opened a second time with O_DIRECT, for sector reads that bypass the page
/// cache (see [`crate::rescue`]); None where the kernel refuses it (tmpfs, some FUSE).
pub fn open_direct(path: &Path) -> Option<File> {
    let open = |flags| OpenOptions::new().read(true).custom_flags(flags).open(path);
    match open(libc::O_DIRECT | libc::O_NOATIME) {
        Ok(f) => Some(f),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(libc::O_DIRECT).ok(),
        Err(_) => None,
    }
}

/// The source's size now: BLKGETSIZE64 for a block device (0 once it is removed), the
/// file length otherwise.
pub fn current_size(file: &File, block_device: bool) -> io::Result<u64> {
    if block_device {
        blockdev::size_bytes(file).map_err(io::Error::from)
    } else {
        file.metadata().map(|m| m.len())
    }
}

/// Splits a device number into (major, minor).
fn major_minor(dev: u64) -> (u64, u64) {
    (nix::sys::stat::major(dev), nix::sys::stat::minor(dev))
}

/// Opens `path` for acquisition. Block devices get BLKROSET before anything reads them.
pub fn open(path: &Path) -> Result<Source, SourceError> {
    let meta = std::fs::metadata(path).map_err(io_err(path, "stat it"))?;
    let ft = meta.file_type();
    let canonical = std::fs::canonicalize(path)
        .ok()
        .map(|p| p.display().to_string());
    if ft.is_block_device() {
        open_block_device(path, &meta, canonical)
    } else if ft.is_file() {
        let (file, mode) = open_read_only(path).map_err(io_err(path, "open it read-only"))?;
        let reader = FileReader::from_file(file, path).map_err(io_err(path, "find its size"))?;
        let identity = SourceIdentity {
            path: path.display().to_string(),
            canonical_path: canonical,
            kind: "regular_file".to_string(),
            size_bytes: vestige_evidence::read_at::ReadAt::size(&reader),
            write_protection: WriteProtection {
                open_mode: mode.to_string(),
                read_only_before: None,
                blkroset: "not_applicable".to_string(),
                read_only_verified: None,
            },
            ..SourceIdentity::default()
        };
        Ok(Source {
            reader,
            identity,
            device_number: None,
        })
    } else {
        Err(SourceError::Kind {
            path: path.to_path_buf(),
            kind: kind_name(ft),
        })
    }
}

fn open_block_device(
    path: &Path,
    meta: &std::fs::Metadata,
    canonical: Option<String>,
) -> Result<Source, SourceError> {
    let ioctl_err = |ioctl: &'static str| {
        move |source| SourceError::Ioctl {
            path: path.to_path_buf(),
            ioctl,
            source,
        }
    };
    // Open without O_NOATIME games: device nodes' atimes are devtmpfs', not evidence.
    let file = File::open(path).map_err(io_err(path, "open it read-only"))?;
    let before = blockdev::read_only(&file).map_err(ioctl_err("BLKROGET"))?;
    let blkroset = if before {
        "already_set".to_string()
    } else {
        match blockdev::set_read_only(&file) {
            Ok(()) => "set".to_string(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e,
                    "BLKROSET failed: the source is opened read-only, but other processes could still write to it");
                format!("failed: {e}")
            }
        }
    };
    let verified = blockdev::read_only(&file).map_err(ioctl_err("BLKROGET"))?;
    let size = blockdev::size_bytes(&file).map_err(ioctl_err("BLKGETSIZE64"))?;
    let logical = blockdev::logical_sector_size(&file).map_err(ioctl_err("BLKSSZGET"))?;
    let physical = blockdev::physical_sector_size(&file).map_err(ioctl_err("BLKPBSZGET"))?;
    let rdev = meta.rdev();
    let (major, minor) = major_minor(rdev);
    let sys = blockdev::sysfs_dir(major, minor)
        .map(|d| blockdev::identity(&blockdev::whole_disk_dir(&d)))
        .unwrap_or_default();
    let reader = FileReader::from_file(file, path).map_err(io_err(path, "find its size"))?;
    if vestige_evidence::read_at::ReadAt::size(&reader) != size {
        tracing::warn!(
            "BLKGETSIZE64 says {size} bytes, seeking to the end says {}",
            vestige_evidence::read_at::ReadAt::size(&reader)
        );
    }
    let identity = SourceIdentity {
        path: path.display().to_string(),
        canonical_path: canonical,
        kind: "block_device".to_string(),
        size_bytes: size,
        logical_sector_size: Some(logical),
        physical_sector_size: Some(physical),
        device_number: Some(format!("{major}:{minor}")),
        vendor: sys.vendor,
        model: sys.model,
        serial: sys.serial,
        wwn: sys.wwn,
        loop_backing_file: sys.loop_backing_file,
        write_protection: WriteProtection {
            open_mode: "O_RDONLY".to_string(),
            read_only_before: Some(before),
            blkroset,
            read_only_verified: Some(verified),
        },
    };
    Ok(Source {
        reader,
        identity,
        device_number: Some((major, minor)),
    })
}

/// The block device number of `path` when it is a block device, from `stat` alone (nothing
/// is opened or read), so the output can be checked before the source is touched.
pub fn device_number(path: &Path) -> io::Result<Option<(u64, u64)>> {
    let meta = std::fs::metadata(path)?;
    if !meta.file_type().is_block_device() {
        return Ok(None);
    }
    let rdev = meta.rdev();
    Ok(Some(major_minor(rdev)))
}

/// Whether writing into `dir` could write to the block device `source` (major, minor):
/// `dir` lives on the device itself, or on a partition of it, or the source is a partition
/// of the disk `dir` is on. Sibling partitions of one disk do not overlap.
pub fn output_overlaps_source(source: (u64, u64), dir: &Path) -> io::Result<Option<String>> {
    let out_dev = std::fs::metadata(dir)?.dev();
    let (omaj, omin) = major_minor(out_dev);
    let (smaj, smin) = source;
    if (smaj, smin) == (omaj, omin) {
        return Ok(Some(format!(
            "{} is on the source device {smaj}:{smin} itself",
            dir.display()
        )));
    }
    if let (Some(sdir), Some(odir)) = (
        blockdev::sysfs_dir(smaj, smin),
        blockdev::sysfs_dir(omaj, omin),
    ) {
        let sdisk = blockdev::whole_disk_dir(&sdir);
        let odisk = blockdev::whole_disk_dir(&odir);
        if sdisk == odisk && (sdir == sdisk || odir == odisk) {
            return Ok(Some(format!(
                "{} is on device {omaj}:{omin}, which shares a disk with the source {smaj}:{smin}",
                dir.display()
            )));
        }
    }
    Ok(None)
}
