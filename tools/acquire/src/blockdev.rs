//! Block-device ioctls and sysfs identity: the only unsafe code of the acquisition path.
//!
//! Linux's block layer answers size and sector sizes through ioctls on an open descriptor;
//! the device's model, serial and WWN live in sysfs under /sys/dev/block/MAJOR:MINOR.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

// _IO(0x12, 93) / _IO(0x12, 94): set / get the block device's read-only flag (int).
nix::ioctl_write_ptr_bad!(ioctl_blkroset, 0x125d, libc::c_int);
nix::ioctl_read_bad!(ioctl_blkroget, 0x125e, libc::c_int);
// _IO(0x12, 104): logical sector size (int); _IO(0x12, 123): physical sector size (uint).
nix::ioctl_read_bad!(ioctl_blksszget, 0x1268, libc::c_int);
nix::ioctl_read_bad!(ioctl_blkpbszget, 0x127b, libc::c_uint);
// _IOR(0x12, 114, size_t): size in bytes (u64).
nix::ioctl_read!(ioctl_blkgetsize64, 0x12, 114, u64);

/// Reads the block device's read-only flag (BLKROGET).
pub fn read_only(dev: &File) -> nix::Result<bool> {
    let mut flag: libc::c_int = 0;
    // SAFETY: the descriptor is open for the lifetime of `dev`; BLKROGET writes one c_int
    // through the pointer, which points at `flag`, a live, aligned c_int on this stack frame.
    unsafe { ioctl_blkroget(dev.as_raw_fd(), &mut flag) }?;
    Ok(flag != 0)
}

/// Sets the block device's read-only flag (BLKROSET). Needs CAP_SYS_ADMIN.
///
/// The flag stops writes from user space through any descriptor, not the kernel's own writes
/// (a journal replay on mount): Vestige never mounts a target.
pub fn set_read_only(dev: &File) -> nix::Result<()> {
    set_read_only_flag(dev, true)
}

/// Sets or clears the read-only flag (BLKROSET). The appliance clears it on exactly one
/// partition and its disk: the evidence medium.
pub fn set_read_only_flag(dev: &File, read_only: bool) -> nix::Result<()> {
    let flag: libc::c_int = libc::c_int::from(read_only);
    // SAFETY: the descriptor is open for the lifetime of `dev`; BLKROSET reads one c_int
    // through the pointer, which points at `flag`, live and aligned for the whole call.
    unsafe { ioctl_blkroset(dev.as_raw_fd(), &flag) }?;
    Ok(())
}

/// The device size in bytes (BLKGETSIZE64).
pub fn size_bytes(dev: &File) -> nix::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: the descriptor is open; BLKGETSIZE64 writes one u64 (size_t on 64-bit Linux)
    // through the pointer, which points at `size`, live and aligned on this stack frame.
    unsafe { ioctl_blkgetsize64(dev.as_raw_fd(), &mut size) }?;
    Ok(size)
}

/// The logical sector size in bytes (BLKSSZGET).
pub fn logical_sector_size(dev: &File) -> nix::Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: the descriptor is open; BLKSSZGET writes one c_int through the pointer, which
    // points at `size`, live and aligned on this stack frame.
    unsafe { ioctl_blksszget(dev.as_raw_fd(), &mut size) }?;
    u32::try_from(size).map_err(|_| nix::Error::EINVAL)
}

/// The physical sector size in bytes (BLKPBSZGET).
pub fn physical_sector_size(dev: &File) -> nix::Result<u32> {
    let mut size: libc::c_uint = 0;
    // SAFETY: the descriptor is open; BLKPBSZGET writes one c_uint through the pointer,
    // which points at `size`, live and aligned on this stack frame.
    unsafe { ioctl_blkpbszget(dev.as_raw_fd(), &mut size) }?;
    Ok(size)
}

/// The sysfs directory of a block device number, resolved (e.g.
/// /sys/devices/pci0000:00/.../block/sda/sda1).
pub fn sysfs_dir(major: u64, minor: u64) -> Option<PathBuf> {
    std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()
}

/// The whole-disk sysfs directory: the parent for a partition, the device itself otherwise.
pub fn whole_disk_dir(dir: &Path) -> PathBuf {
    if dir.join("partition").exists() {
        if let Some(parent) = dir.parent() {
            return parent.to_path_buf();
        }
    }
    dir.to_path_buf()
}

/// Reads a sysfs attribute, trimmed; None when absent or empty.
pub fn attr(dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read(dir.join(name)).ok()?;
    let s = String::from_utf8_lossy(&text).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Identity read from sysfs for a whole disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SysfsIdentity {
    /// device/vendor.
    pub vendor: Option<String>,
    /// device/model (or the NVMe model).
    pub model: Option<String>,
    /// device/serial, the SCSI unit serial page, or the virtio serial.
    pub serial: Option<String>,
    /// wwid / device/wwid / device/wwn.
    pub wwn: Option<String>,
    /// loop/backing_file for loop devices.
    pub loop_backing_file: Option<String>,
}

/// Reads what sysfs knows of the disk at `disk_dir` (from [`whole_disk_dir`]).
pub fn identity(disk_dir: &Path) -> SysfsIdentity {
    let dev = disk_dir.join("device");
    let serial = attr(&dev, "serial")
        .or_else(|| attr(disk_dir, "serial"))
        .or_else(|| scsi_unit_serial(&dev));
    SysfsIdentity {
        vendor: attr(&dev, "vendor"),
        model: attr(&dev, "model"),
        serial,
        wwn: attr(disk_dir, "wwid")
            .or_else(|| attr(&dev, "wwid"))
            .or_else(|| attr(&dev, "wwn")),
        loop_backing_file: attr(&disk_dir.join("loop"), "backing_file"),
    }
}

/// The SCSI Unit Serial Number VPD page (0x80): 4-byte header, then the serial.
fn scsi_unit_serial(dev: &Path) -> Option<String> {
    let page = std::fs::read(dev.join("vpd_pg80")).ok()?;
    let len = usize::from(*page.get(3)?);
    let serial = page.get(4..4usize.checked_add(len)?)?;
    let s = String::from_utf8_lossy(serial).trim().to_string();
    (!s.is_empty()).then_some(s)
}
