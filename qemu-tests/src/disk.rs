//! Disks for the VMs, made with the real tools: sgdisk for GPT, mkfs.ext4 for file systems
//! (formatted in place at the partition's offset, so no loop device and no root needed).

use crate::command::run;
use crate::HarnessError;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bytes per sector of the generated disks.
pub const SECTOR_BYTES: u64 = 512;
/// The first partition starts here (1 MiB, sgdisk's default alignment).
pub const FIRST_PARTITION_LBA: u64 = 2048;
/// The GPT partition name by which the appliance finds its evidence medium.
pub const EVIDENCE_PARTITION_NAME: &str = "VESTIGE-EVIDENCE";

const MIB: u64 = 1 << 20;

/// A generated evidence disk.
#[derive(Debug, Clone)]
pub struct EvidenceDisk {
    /// The raw disk file.
    pub path: PathBuf,
    /// Where its ext4 partition starts.
    pub partition_offset_bytes: u64,
}

/// Writes a small tree of files (an /etc/hostname, a user's notes, a binary blob) under
/// `dir/files` to populate a target's file system; returns that directory.
///
/// # Errors
/// [`HarnessError::Io`] naming the file that could not be written.
pub fn write_sample_files(dir: &Path) -> Result<PathBuf, HarnessError> {
    let root = dir.join("files");
    let files: [(&str, Vec<u8>); 3] = [
        ("etc/hostname", b"suspect\n".to_vec()),
        ("home/user/notes.txt", b"meet at dawn\n".repeat(5000)),
        ("var/lib/blob.bin", pseudo_random(0x5eed, 300_000)),
    ];
    for (name, bytes) in files {
        let path = root.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(HarnessError::io("creating directory", parent))?;
        }
        std::fs::write(&path, bytes).map_err(HarnessError::io("writing", &path))?;
    }
    Ok(root)
}

/// A target disk of `size_mib` MiB: GPT (sgdisk), partition 1 an ext4 file system populated
/// from `files` (mkfs.ext4 -d), and deterministic pseudo-random bytes after it, so the image
/// is neither empty nor all compressible.
///
/// # Errors
/// When a tool fails or the file cannot be written.
pub fn make_target(
    dir: &Path,
    name: &str,
    size_mib: u64,
    files: &Path,
) -> Result<PathBuf, HarnessError> {
    let disk = dir.join(name);
    create_sparse(&disk, size_mib)?;
    let fs_mib = size_mib.saturating_sub(4).max(8) / 2;
    run(Command::new("sgdisk")
        .arg("-o")
        .arg("-n")
        .arg(format!("1:{FIRST_PARTITION_LBA}:+{fs_mib}M"))
        .args(["-t", "1:8300", "-c", "1:suspect-root"])
        .arg(&disk))?;
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "suspect-root", "-E"])
        .arg(format!(
            "offset={},nodiscard",
            FIRST_PARTITION_LBA * SECTOR_BYTES
        ))
        .arg("-d")
        .arg(files)
        .arg(&disk)
        .arg(format!("{fs_mib}M")))?;
    // Pseudo-random bytes between the partition and the backup GPT (unallocated space is
    // evidence too: the image must carry it byte for byte).
    let start = FIRST_PARTITION_LBA * SECTOR_BYTES + fs_mib * MIB;
    let end = size_mib * MIB - MIB;
    if end > start {
        let len = usize::try_from(end - start).unwrap_or(0);
        let f = OpenOptions::new()
            .write(true)
            .open(&disk)
            .map_err(HarnessError::io("opening", &disk))?;
        f.write_all_at(&pseudo_random(0x9e37_79b9_7f4a_7c15, len), start)
            .map_err(HarnessError::io("writing", &disk))?;
    }
    Ok(disk)
}

/// An evidence disk of `size_mib` MiB: GPT with one partition named
/// [`EVIDENCE_PARTITION_NAME`] filling the disk, formatted ext4 in place (the host reads it
/// back with debugfs, without mounting).
///
/// # Errors
/// When a tool fails or the file cannot be created.
pub fn make_evidence_disk(
    dir: &Path,
    name: &str,
    size_mib: u64,
) -> Result<EvidenceDisk, HarnessError> {
    let disk = dir.join(name);
    create_sparse(&disk, size_mib)?;
    run(Command::new("sgdisk")
        .arg("-o")
        .arg("-n")
        .arg(format!("1:{FIRST_PARTITION_LBA}:0"))
        .args(["-t", "1:8300", "-c"])
        .arg(format!("1:{EVIDENCE_PARTITION_NAME}"))
        .arg(&disk))?;
    let partition_offset_bytes = FIRST_PARTITION_LBA * SECTOR_BYTES;
    // The partition ends 33 sectors before the disk (backup GPT); 2 MiB less than the disk
    // stays inside it.
    let fs_mib = size_mib.saturating_sub(2);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "VESTIGE", "-E"])
        .arg(format!("offset={partition_offset_bytes},nodiscard"))
        .arg(&disk)
        .arg(format!("{fs_mib}M")))?;
    Ok(EvidenceDisk {
        path: disk,
        partition_offset_bytes,
    })
}

/// SHA-256 of a file, lowercase hex.
///
/// # Errors
/// [`HarnessError::Io`] when the file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String, HarnessError> {
    let mut f = File::open(path).map_err(HarnessError::io("opening", path))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(HarnessError::io("reading", path))?;
    Ok(hex::encode(h.finalize()))
}

fn create_sparse(path: &Path, size_mib: u64) -> Result<(), HarnessError> {
    let f = File::create(path).map_err(HarnessError::io("creating", path))?;
    f.set_len(size_mib * MIB)
        .map_err(HarnessError::io("sizing", path))
}

/// `len` deterministic, incompressible bytes (xorshift64 from `seed`).
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = vec![0u8; len];
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        for (d, s) in chunk.iter_mut().zip(bytes) {
            *d = s;
        }
    }
    data
}
