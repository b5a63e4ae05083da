//! Block devices as the appliance sees them: write-protect each one as it appears, describe
//! the disks for the examiner, and find the evidence medium.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use vestige_acquire::blockdev;

/// The GPT partition name of the evidence medium.
pub const EVIDENCE_PARTNAME: &str = "VESTIGE-EVIDENCE";
/// The file-system label accepted on an examiner's own MBR drive.
pub const EVIDENCE_LABEL: &str = "VESTIGE";

/// Key=value pairs of a sysfs `uevent` file.
pub fn uevent(name: &str) -> BTreeMap<String, String> {
    std::fs::read_to_string(format!("/sys/class/block/{name}/uevent"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every block device name in /sys/class/block, sorted.
pub fn all_names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/block")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether the name is a partition (has a `partition` attribute).
pub fn is_partition(name: &str) -> bool {
    Path::new(&format!("/sys/class/block/{name}/partition")).exists()
}

/// The whole disk a partition belongs to (the sysfs parent directory's name).
pub fn parent_disk(name: &str) -> Option<String> {
    let real = std::fs::canonicalize(format!("/sys/class/block/{name}")).ok()?;
    Some(real.parent()?.file_name()?.to_string_lossy().into_owned())
}

/// Devices that are never evidence targets: RAM disks, loops, optical drives, floppies.
pub fn is_virtual(name: &str) -> bool {
    ["loop", "ram", "zram", "sr", "fd", "nbd", "dm-", "md"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The outcome of write-protecting one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// BLKROGET reads back 1.
    ReadOnly,
    /// The flag could not be set or does not read back: the device is writable.
    Unprotected(String),
}

/// Devices named in `vestige.fault.roset=NAME[,NAME…]`: their write-block is reported as
/// refused without being attempted. Real refusals are rare (drivers with a `set_read_only`
/// hook that says no) and cannot be provoked in a VM, so this is how the appliance's
/// handling of an unprotectable disk is exercised; it is logged on the console, and the
/// console log is saved into the case.
fn injected_roset_faults() -> &'static [String] {
    static FAULTS: OnceLock<Vec<String>> = OnceLock::new();
    FAULTS.get_or_init(|| {
        let line = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        crate::cmdline::vestige_params(&line)
            .get("fault.roset")
            .map(|v| crate::cmdline::name_list(v))
            .unwrap_or_default()
    })
}

/// Sets BLKROSET on /dev/NAME and reads it back. Opening read-only reads nothing.
pub fn protect(name: &str) -> Protection {
    if injected_roset_faults().iter().any(|n| n == name) {
        return Protection::Unprotected(
            "BLKROSET refused (fault injected by vestige.fault.roset)".to_string(),
        );
    }
    let path = format!("/dev/{name}");
    let file = match open_node(&path) {
        Ok(f) => f,
        Err(e) => return Protection::Unprotected(format!("cannot open {path}: {e}")),
    };
    if let Err(e) = blockdev::set_read_only(&file) {
        return Protection::Unprotected(format!("BLKROSET failed: {e}"));
    }
    match blockdev::read_only(&file) {
        Ok(true) => Protection::ReadOnly,
        Ok(false) => Protection::Unprotected("BLKROGET reads 0 after BLKROSET".to_string()),
        Err(e) => Protection::Unprotected(format!("BLKROGET failed: {e}")),
    }
}

/// Opens a device node, waiting briefly for devtmpfs to create it.
fn open_node(path: &str) -> std::io::Result<File> {
    for _ in 0..50 {
        match File::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
    File::open(path)
}

/// Clears the read-only flag of `name` (the evidence partition and its disk only).
pub fn make_writable(name: &str) -> Result<(), String> {
    let path = format!("/dev/{name}");
    let file = File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
    blockdev::set_read_only_flag(&file, false)
        .map_err(|e| format!("{path}: BLKROSET 0 failed: {e}"))
}

/// A whole disk, for the menu and the manifest.
#[derive(Debug, Clone)]
pub struct Disk {
    /// Kernel name, e.g. "vda".
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Model (sysfs), if any.
    pub model: Option<String>,
    /// Serial (sysfs), if any.
    pub serial: Option<String>,
}

/// Describes whole disk `name`.
pub fn describe(name: &str) -> Disk {
    let dir = PathBuf::from(format!("/sys/class/block/{name}"));
    let sectors: u64 = blockdev::attr(&dir, "size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let id = std::fs::canonicalize(&dir)
        .map(|d| blockdev::identity(&d))
        .unwrap_or_default();
    Disk {
        name: name.to_string(),
        size_bytes: sectors.saturating_mul(512),
        model: id.model,
        serial: id.serial,
    }
}

/// Whole disks that could be targets (not virtual, not empty), sorted by name.
pub fn whole_disks() -> Vec<Disk> {
    all_names()
        .into_iter()
        .filter(|n| !is_partition(n) && !is_virtual(n))
        .map(|n| describe(&n))
        .filter(|d| d.size_bytes > 0)
        .collect()
}

/// The evidence partition: GPT name VESTIGE-EVIDENCE, else a file system labelled VESTIGE.
pub fn find_evidence() -> Option<String> {
    let names = all_names();
    names
        .iter()
        .find(|n| {
            is_partition(n)
                && uevent(n).get("PARTNAME").map(String::as_str) == Some(EVIDENCE_PARTNAME)
        })
        .or_else(|| {
            names
                .iter()
                .find(|n| !is_virtual(n) && fs_label(n).as_deref() == Some(EVIDENCE_LABEL))
        })
        .cloned()
}

/// The label of an ext2/3/4 or FAT file system on /dev/NAME (read-only probe of the
/// superblock; the evidence medium is the examiner's, not a target).
pub fn fs_label(name: &str) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let f = File::open(format!("/dev/{name}")).ok()?;
    let mut sb = [0u8; 2048];
    f.read_exact_at(&mut sb, 0).ok()?;
    let text = |b: &[u8]| {
        let s = String::from_utf8_lossy(b)
            .trim_end_matches(['\0', ' '])
            .to_string();
        (!s.is_empty()).then_some(s)
    };
    // ext2/3/4: magic 0xEF53 at 1024+56, volume name at 1024+120 (16 bytes).
    if sb.get(1080..1082) == Some(&[0x53, 0xEF]) {
        return text(sb.get(1144..1160)?);
    }
    // FAT32: "FAT32   " at 82, label at 71; FAT12/16: "FAT" at 54, label at 43.
    if sb.get(82..87) == Some(b"FAT32") {
        return text(sb.get(71..82)?);
    }
    if sb.get(54..57) == Some(b"FAT") {
        return text(sb.get(43..54)?);
    }
    None
}
