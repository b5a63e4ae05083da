//! The UEFI outputs, built from the direct-boot pair:
//!
//! - `vestige.efi`, a unified kernel image (UKI): systemd-boot's `linuxx64.efi.stub` (Debian
//!   package systemd-boot-efi, pinned in the lock) with `.osrel`, `.cmdline`, `.initrd` and
//!   `.linux` sections appended by our own PE code ([`crate::pe`]), in ukify's order;
//! - `vestige-usb.img`, a GPT disk (sgdisk, fixed disk and partition GUIDs): partition 1 an
//!   EFI system partition (FAT32 by `mkfs.fat --invariant` with a fixed volume id, the UKI
//!   copied in as `EFI/BOOT/BOOTX64.EFI` with mtools, nothing mounted), partition 2 named
//!   `VESTIGE-EVIDENCE`, exFAT labelled `VESTIGE` (mkfs.exfat, then a fixed volume serial:
//!   [`crate::exfat`]). Sparse: ~20 MiB of its 256 MiB are allocated;
//! - `vestige-sb-usb.img` ([`crate::secure_boot`]), the same GPT layout (other GUIDs) with
//!   Debian's signed shim, grub and kernel on the ESP: [`build_usb_with`] takes any ESP files;
//! - `vestige.iso`, a hybrid ISO 9660 image for helper VMs (xorriso): its El Torito EFI boot
//!   image is an appended FAT partition holding `EFI/BOOT/BOOTX64.EFI`, so the same file boots
//!   as a CD (El Torito) and as a disk (its GPT lists the ESP). UEFI only: no BIOS boot.
//!
//! Every tool runs with SOURCE_DATE_EPOCH and TZ=UTC, every date and id is fixed, so two
//! builds from the same inputs are byte-identical.

use crate::lock::Lock;
use crate::{debian, exfat, pe};
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Lock role of systemd-boot-efi (the UKI stub).
pub const ROLE_UKI_STUB: &str = "uki-stub";
/// Lock role of ovmf (UEFI firmware for the tests; never shipped in an image).
pub const ROLE_FIRMWARE: &str = "firmware";
/// The stub inside the systemd-boot-efi package.
pub const STUB_PATH: &str = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// The firmware files copied next to the outputs (`OUT/ovmf/`), from the ovmf package's
/// `usr/share/OVMF/`: 4 MiB code/vars, plain and Secure Boot (Microsoft keys enrolled).
pub const OVMF_FILES: [&str; 4] = [
    "OVMF_CODE_4M.fd",
    "OVMF_VARS_4M.fd",
    "OVMF_CODE_4M.secboot.fd",
    "OVMF_VARS_4M.ms.fd",
];
/// The default kernel command line of the UKI: no `vestige.run`, so the console menu; the
/// last `console=` (the screen) becomes /dev/console, the serial port gets kernel messages.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 console=tty0";
/// The GPT partition name by which vestige-init finds the evidence medium.
pub const EVIDENCE_PARTITION_NAME: &str = "VESTIGE-EVIDENCE";
/// The evidence file system's label (exFAT labels hold at most 11 characters).
pub const EVIDENCE_LABEL: &str = "VESTIGE";
/// Path of the UKI on the ESPs (the removable-media default path on x86-64).
pub const ESP_BOOT_PATH: &str = "EFI/BOOT/BOOTX64.EFI";

/// Fixed ids of the USB image: the same on every stick (reproducibility asks for it; the
/// appliance identifies its evidence partition by name, never by GUID).
pub mod ids {
    /// GPT disk GUID.
    pub const DISK_GUID: &str = "8a4b5c1e-7f3d-4e2a-9b6c-56455354494d";
    /// ESP partition GUID.
    pub const ESP_GUID: &str = "8a4b5c1e-7f3d-4e2a-9b6c-565354455350";
    /// Evidence partition GUID.
    pub const EVIDENCE_GUID: &str = "8a4b5c1e-7f3d-4e2a-9b6c-565345564944";
    /// FAT volume id of the ESPs ("VEST").
    pub const FAT_VOLUME_ID: &str = "56455354";
    /// exFAT volume serial of the evidence partition ("EVID").
    pub const EXFAT_SERIAL: u32 = 0x4556_4944;
    /// GPT disk GUID of the ISO.
    pub const ISO_DISK_GUID: &str = "8a4b5c1e-7f3d-4e2a-9b6c-56495349534f";
    /// GPT disk GUID of the Secure Boot USB image (`vestige-sb-usb.img`).
    pub const SB_DISK_GUID: &str = "8a4b5c1e-7f3d-4e2a-9b6c-53424449534b";
    /// ESP partition GUID of the Secure Boot USB image.
    pub const SB_ESP_GUID: &str = "8a4b5c1e-7f3d-4e2a-9b6c-534245535020";
    /// Evidence partition GUID of the Secure Boot USB image.
    pub const SB_EVIDENCE_GUID: &str = "8a4b5c1e-7f3d-4e2a-9b6c-534245564944";
}

/// The GPT GUIDs of one USB image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbIds {
    /// Disk GUID.
    pub disk: &'static str,
    /// ESP partition GUID.
    pub esp: &'static str,
    /// Evidence partition GUID.
    pub evidence: &'static str,
}

/// GUIDs of `vestige-usb.img` (the UKI stick).
pub const USB_IDS: UsbIds = UsbIds {
    disk: ids::DISK_GUID,
    esp: ids::ESP_GUID,
    evidence: ids::EVIDENCE_GUID,
};

/// GUIDs of `vestige-sb-usb.img` (the Secure Boot stick): other ids, so both sticks can be
/// attached at once without two disks sharing a GUID.
pub const SB_USB_IDS: UsbIds = UsbIds {
    disk: ids::SB_DISK_GUID,
    esp: ids::SB_ESP_GUID,
    evidence: ids::SB_EVIDENCE_GUID,
};

const MIB: u64 = 1 << 20;
const SECTOR_BYTES: u64 = 512;
/// Partitions start and end on 1 MiB boundaries.
const ALIGN_SECTORS: u64 = MIB / SECTOR_BYTES;
/// Sectors the backup GPT occupies at the end of the disk (header + 32 sectors of entries).
const BACKUP_GPT_SECTORS: u64 = 33;

/// Layout of the USB image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbLayout {
    /// The whole disk.
    pub disk_mib: u64,
    /// The ESP (FAT32 needs at least ~33 MiB with 512-byte clusters).
    pub esp_mib: u64,
}

impl Default for UsbLayout {
    fn default() -> Self {
        UsbLayout {
            disk_mib: 256,
            esp_mib: 64,
        }
    }
}

/// Where the partitions of a USB image are, in bytes from the start of the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbPartitions {
    /// ESP start.
    pub esp_offset_bytes: u64,
    /// ESP length.
    pub esp_bytes: u64,
    /// Evidence partition start.
    pub evidence_offset_bytes: u64,
    /// Evidence partition length.
    pub evidence_bytes: u64,
}

impl UsbLayout {
    /// The partition extents: the ESP from 1 MiB, the evidence partition right after it up
    /// to the last whole MiB before the backup GPT.
    ///
    /// # Errors
    /// When the disk leaves no room for the evidence partition.
    pub fn partitions(&self) -> Result<UsbPartitions> {
        let total_sectors = self.disk_mib.saturating_mul(MIB / SECTOR_BYTES);
        let esp_start = ALIGN_SECTORS;
        let esp_sectors = self.esp_mib.saturating_mul(MIB / SECTOR_BYTES);
        let evidence_start = esp_start.saturating_add(esp_sectors);
        let last_usable = total_sectors.saturating_sub(BACKUP_GPT_SECTORS + 1);
        let evidence_end = (last_usable.saturating_add(1) / ALIGN_SECTORS) * ALIGN_SECTORS;
        if evidence_end <= evidence_start.saturating_add(ALIGN_SECTORS) {
            bail!(
                "USB image of {} MiB leaves no room for an evidence partition after a {} MiB ESP",
                self.disk_mib,
                self.esp_mib
            );
        }
        Ok(UsbPartitions {
            esp_offset_bytes: esp_start * SECTOR_BYTES,
            esp_bytes: esp_sectors * SECTOR_BYTES,
            evidence_offset_bytes: evidence_start * SECTOR_BYTES,
            evidence_bytes: (evidence_end - evidence_start) * SECTOR_BYTES,
        })
    }
}

/// Fetches (apt-get download, digest checked) and unpacks the package with `role`;
/// returns the unpacked root.
///
/// # Errors
/// When the lock lacks the role, or fetching or unpacking fails.
pub fn unpacked_package(lock_path: &Path, cache_dir: &Path, role: &str) -> Result<PathBuf> {
    let lock = Lock::read(lock_path)?;
    let package = lock.by_role(role, lock_path)?;
    let deb = debian::fetch(package, &cache_dir.join("debs"))?;
    debian::unpack(
        &deb,
        &package.sha256,
        &cache_dir.join(format!("root-{}", package.name)),
    )
}

/// The `.osrel` section: os-release(5) fields naming the appliance.
#[must_use]
pub fn os_release(version: &str, commit: Option<&str>) -> String {
    let build = commit.map_or_else(|| "unknown".to_owned(), |c| c.chars().take(12).collect());
    format!(
        "NAME=\"Vestige\"\nID=vestige\nPRETTY_NAME=\"Vestige forensic appliance {version}\"\n\
         VERSION_ID=\"{version}\"\nBUILD_ID=\"{build}\"\n\
         HOME_URL=\"https://github.com/vestige-forensics/vestige\"\n"
    )
}

/// Builds a UKI at `out` from the stub, kernel, initramfs, command line and os-release text.
///
/// # Errors
/// When a file cannot be read or written, or the stub is not a PE32+ image with room for
/// four more section headers.
pub fn build_uki(
    stub: &Path,
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    os_release: &str,
    out: &Path,
) -> Result<()> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let stub_bytes = read(stub)?;
    let kernel_bytes = read(kernel)?;
    let initrd_bytes = read(initrd)?;
    let image = pe::append_sections(
        &stub_bytes,
        &[
            pe::NewSection {
                name: ".osrel",
                data: os_release.as_bytes(),
            },
            pe::NewSection {
                name: ".cmdline",
                data: cmdline.as_bytes(),
            },
            pe::NewSection {
                name: ".initrd",
                data: &initrd_bytes,
            },
            // Last, as ukify puts it: the kernel may use memory past its image.
            pe::NewSection {
                name: ".linux",
                data: &kernel_bytes,
            },
        ],
    )
    .with_context(|| format!("adding sections to {}", stub.display()))?;
    write_replacing(out, &image)
}

/// Builds the USB disk image at `out` holding `uki` as the ESP's boot loader; `work` is a
/// scratch folder (emptied first).
///
/// # Errors
/// When a tool (sgdisk, mkfs.fat, mcopy, mkfs.exfat) fails or a file cannot be written.
pub fn build_usb(
    uki: &Path,
    out: &Path,
    layout: UsbLayout,
    source_date_epoch: u64,
    work: &Path,
) -> Result<UsbPartitions> {
    build_usb_with(
        &[(ESP_BOOT_PATH, uki)],
        &USB_IDS,
        out,
        layout,
        source_date_epoch,
        work,
    )
}

/// Builds a USB disk image at `out`: GPT with the GUIDs `ids`, an ESP holding `files`
/// (pairs of a path on the ESP, `/`-separated without a leading `/`, and the file to copy
/// there byte for byte) and the exFAT evidence partition; `work` is a scratch folder
/// (emptied first).
///
/// # Errors
/// When a tool (sgdisk, mkfs.fat, mmd, mcopy, mkfs.exfat) fails, a file cannot be read or
/// written, or an ESP path is empty, absolute or has `.`/`..` components.
pub fn build_usb_with(
    files: &[(&str, &Path)],
    ids: &UsbIds,
    out: &Path,
    layout: UsbLayout,
    source_date_epoch: u64,
    work: &Path,
) -> Result<UsbPartitions> {
    let parts = layout.partitions()?;
    fresh_dir(work)?;
    let esp = work.join("esp.img");
    make_esp(files, &esp, parts.esp_bytes, source_date_epoch, work)?;
    let evidence = work.join("evidence.img");
    make_exfat(&evidence, parts.evidence_bytes)?;

    let tmp = partial_path(out);
    create_sparse(&tmp, layout.disk_mib.saturating_mul(MIB))?;
    let sector = |bytes: u64| bytes / SECTOR_BYTES;
    let esp_end = sector(parts.esp_offset_bytes + parts.esp_bytes) - 1;
    let ev_end = sector(parts.evidence_offset_bytes + parts.evidence_bytes) - 1;
    tool(
        Command::new("sgdisk")
            .arg("--clear")
            .arg(format!("--disk-guid={}", ids.disk))
            .arg(format!(
                "--new=1:{}:{esp_end}",
                sector(parts.esp_offset_bytes)
            ))
            .args(["--typecode=1:ef00", "--change-name=1:EFI system partition"])
            .arg(format!("--partition-guid=1:{}", ids.esp))
            .arg(format!(
                "--new=2:{}:{ev_end}",
                sector(parts.evidence_offset_bytes)
            ))
            // Microsoft basic data: Windows and macOS mount the exFAT partition.
            .arg("--typecode=2:0700")
            .arg(format!("--change-name=2:{EVIDENCE_PARTITION_NAME}"))
            .arg(format!("--partition-guid=2:{}", ids.evidence))
            .arg(&tmp),
        "sgdisk (apt-get install gdisk)",
    )?;
    splice(&esp, &tmp, parts.esp_offset_bytes)?;
    splice(&evidence, &tmp, parts.evidence_offset_bytes)?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("moving {} to {}", tmp.display(), out.display()))?;
    Ok(parts)
}

/// Builds the hybrid ISO at `out`: a FAT image holding `uki` as `EFI/BOOT/BOOTX64.EFI`,
/// appended as a GPT ESP and named as the El Torito EFI boot image; the ISO 9660 tree holds
/// only `VESTIGE.TXT` (the os-release text).
///
/// # Errors
/// When mkfs.fat, mcopy or xorriso fails.
pub fn build_iso(
    uki: &Path,
    out: &Path,
    os_release: &str,
    source_date_epoch: u64,
    work: &Path,
) -> Result<()> {
    fresh_dir(work)?;
    let uki_bytes = std::fs::metadata(uki)
        .with_context(|| format!("reading {}", uki.display()))?
        .len();
    // Room for the file and FAT16's tables, in whole MiB.
    let fat_bytes = (uki_bytes + 2 * MIB).div_ceil(MIB) * MIB;
    let efiboot = work.join("efiboot.img");
    make_esp(
        &[(ESP_BOOT_PATH, uki)],
        &efiboot,
        fat_bytes,
        source_date_epoch,
        work,
    )?;
    let tree = work.join("iso-root");
    std::fs::create_dir_all(&tree)?;
    let txt = tree.join("VESTIGE.TXT");
    std::fs::write(&txt, os_release)?;
    set_mtime(&txt, source_date_epoch)?;
    set_mtime(&tree, source_date_epoch)?;
    let tmp = partial_path(out);
    if tmp.exists() {
        std::fs::remove_file(&tmp)?;
    }
    let date = iso_date(source_date_epoch)?;
    tool(
        Command::new("xorriso")
            .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
            .env("TZ", "UTC")
            .args(["-as", "mkisofs", "-quiet", "-iso-level", "3", "-R", "-J"])
            .args(["-V", "VESTIGE", "-publisher", "Vestige"])
            .arg(format!("--modification-date={date}"))
            .args(["--gpt_disk_guid", ids::ISO_DISK_GUID])
            .arg("-append_partition")
            .arg("2")
            .arg("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
            .arg(&efiboot)
            .arg("-appended_part_as_gpt")
            .args([
                "-e",
                "--interval:appended_partition_2:all::",
                "-no-emul-boot",
            ])
            .arg("-o")
            .arg(&tmp)
            .arg(&tree),
        "xorriso (apt-get install xorriso)",
    )?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("moving {} to {}", tmp.display(), out.display()))?;
    Ok(())
}

/// Copies the OVMF firmware of the pinned ovmf package into `dest` (for the boot tests);
/// returns the copied paths in [`OVMF_FILES`] order.
///
/// # Errors
/// When the package lacks a file or a copy fails.
pub fn copy_ovmf(ovmf_root: &Path, dest: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut copied = Vec::new();
    for name in OVMF_FILES {
        let from = ovmf_root.join("usr/share/OVMF").join(name);
        let to = dest.join(name);
        // The package has symlinks among these files: read through them.
        let bytes = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        write_replacing(&to, &bytes)?;
        copied.push(to);
    }
    Ok(copied)
}

/// A FAT image of `bytes` at `out` (mkfs.fat --invariant, fixed volume id; FAT32 when it is
/// large enough for it) holding `files` (ESP path, source), all dates SOURCE_DATE_EPOCH.
/// Nothing is mounted: mtools makes the directories (`mmd`, parents first) and copies the
/// files (`mcopy -m`) one by one in sorted path order, so the directory entries do not
/// depend on the order in which the build host's file system lists a folder.
fn make_esp(files: &[(&str, &Path)], out: &Path, bytes: u64, sde: u64, work: &Path) -> Result<()> {
    let stage = work.join(format!(
        "{}-tree",
        out.file_stem()
            .map_or_else(|| "esp".into(), |s| s.to_string_lossy())
    ));
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    std::fs::create_dir_all(&stage)?;
    let mut sorted: Vec<(&str, &Path)> = files.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut dirs = std::collections::BTreeSet::new();
    for (i, (path, _)) in sorted.iter().enumerate() {
        check_esp_path(path)?;
        if sorted.get(i + 1).is_some_and(|next| next.0 == *path) {
            bail!("ESP path {path:?} given twice");
        }
        let mut prefix = String::new();
        let components: Vec<&str> = path.split('/').collect();
        for c in components.iter().take(components.len().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            dirs.insert(prefix.clone());
        }
    }
    if out.exists() {
        std::fs::remove_file(out)?;
    }
    create_sparse(out, bytes)?;
    let mut mkfs = Command::new("mkfs.fat");
    // FAT32 with 512-byte clusters needs 65525 clusters; below that let mkfs.fat choose.
    if bytes >= 40 * MIB {
        mkfs.args(["-F", "32", "-s", "1"]);
    }
    tool(
        mkfs.args(["-n", "VESTIGE-EFI", "--invariant", "-i", ids::FAT_VOLUME_ID])
            .env("SOURCE_DATE_EPOCH", sde.to_string())
            .arg(out),
        "mkfs.fat (apt-get install dosfstools)",
    )?;
    let mtools = |program: &str| {
        let mut cmd = Command::new(program);
        cmd.env("MTOOLS_SKIP_CHECK", "1")
            // mtools dates what it creates (directories, `.`, `..`) with this.
            .env("SOURCE_DATE_EPOCH", sde.to_string())
            // FAT stores local time: make it UTC whatever the builder's zone.
            .env("TZ", "UTC");
        cmd
    };
    // BTreeSet order puts every parent before its children ("EFI" < "EFI/BOOT").
    for dir in &dirs {
        tool(
            mtools("mmd").arg("-i").arg(out).arg(format!("::/{dir}")),
            "mmd (apt-get install mtools)",
        )?;
    }
    for (i, (path, source)) in sorted.iter().enumerate() {
        // A dated copy: mcopy -m keeps the source's mtime.
        let staged = stage.join(format!("{i:03}"));
        std::fs::copy(source, &staged)
            .with_context(|| format!("copying {} to {}", source.display(), staged.display()))?;
        set_mtime(&staged, sde)?;
        tool(
            mtools("mcopy")
                .args(["-m", "-Q", "-i"])
                .arg(out)
                .arg(&staged)
                .arg(format!("::/{path}")),
            "mcopy (apt-get install mtools)",
        )?;
    }
    std::fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))
}

/// Checks an ESP path: relative, `/`-separated, no empty, `.` or `..` component.
fn check_esp_path(path: &str) -> Result<()> {
    if path.is_empty()
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\\'))
    {
        bail!("bad ESP path {path:?}: expected a relative path like EFI/BOOT/BOOTX64.EFI");
    }
    Ok(())
}

/// An exFAT file system of `bytes` at `out`, labelled [`EVIDENCE_LABEL`], with the fixed
/// serial [`ids::EXFAT_SERIAL`].
fn make_exfat(out: &Path, bytes: u64) -> Result<()> {
    if out.exists() {
        std::fs::remove_file(out)?;
    }
    create_sparse(out, bytes)?;
    tool(
        Command::new("mkfs.exfat")
            .args(["-L", EVIDENCE_LABEL])
            .arg(out),
        "mkfs.exfat (apt-get install exfatprogs)",
    )?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(out)
        .with_context(|| format!("opening {}", out.display()))?;
    // Two boot regions of 12 sectors of up to 4 KiB.
    let mut head = vec![0u8; 2 * 12 * 4096];
    file.read_exact_at(&mut head, 0)
        .with_context(|| format!("reading {}", out.display()))?;
    exfat::set_volume_serial(&mut head, ids::EXFAT_SERIAL)
        .with_context(|| format!("{}", out.display()))?;
    file.write_all_at(&head, 0)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Copies `src` into `dest` at `offset`, skipping all-zero blocks (the destination is a
/// fresh sparse file, so they stay holes).
fn splice(src: &Path, dest: &Path, offset: u64) -> Result<()> {
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let output = OpenOptions::new()
        .write(true)
        .open(dest)
        .with_context(|| format!("opening {}", dest.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut pos = offset;
    loop {
        let n = read_full(&mut input, &mut buf)
            .with_context(|| format!("reading {}", src.display()))?;
        let Some(chunk) = buf.get(..n) else { break };
        if n == 0 {
            break;
        }
        if chunk.iter().any(|&b| b != 0) {
            output
                .write_all_at(chunk, pos)
                .with_context(|| format!("writing {}", dest.display()))?;
        }
        pos = pos.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
    Ok(())
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match r.read(rest)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn create_sparse(path: &Path, bytes: u64) -> Result<()> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(bytes)
        .with_context(|| format!("sizing {}", path.display()))
}

fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn set_mtime(path: &Path, sde: u64) -> Result<()> {
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(sde);
    File::open(path)
        .and_then(|f| f.set_modified(when))
        .with_context(|| format!("setting the mtime of {}", path.display()))
}

/// `PATH.partial`: where an output is written before it is renamed into place.
fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    // Unique per process: two builds at once must not interleave in one temporary file.
    s.push(format!(".partial.{}", std::process::id()));
    PathBuf::from(s)
}

fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = partial_path(path);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("moving {} to {}", tmp.display(), path.display()))
}

/// Runs a build tool; on failure the error quotes its stderr and says which package has it.
fn tool(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// SOURCE_DATE_EPOCH as xorriso's `YYYYMMDDhhmmsscc` (UTC).
fn iso_date(sde: u64) -> Result<String> {
    let days = i64::try_from(sde / 86_400).context("SOURCE_DATE_EPOCH out of range")?;
    let secs = sde % 86_400;
    let (y, m, d) = civil_from_days(days);
    Ok(format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ))
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_layout() {
        let p = UsbLayout::default().partitions().unwrap();
        assert_eq!(p.esp_offset_bytes, MIB);
        assert_eq!(p.esp_bytes, 64 * MIB);
        assert_eq!(p.evidence_offset_bytes, 65 * MIB);
        // 256 MiB minus 1 MiB before, 64 MiB ESP, and the last MiB (backup GPT).
        assert_eq!(p.evidence_bytes, 190 * MIB);
        assert!(UsbLayout {
            disk_mib: 66,
            esp_mib: 64
        }
        .partitions()
        .is_err());
    }

    #[test]
    fn esp_paths_are_checked() {
        for good in ["EFI/BOOT/BOOTX64.EFI", "vmlinuz"] {
            check_esp_path(good).unwrap();
        }
        for bad in ["", "/vmlinuz", "EFI//x", "EFI/../x", "./x", "EFI/", "a\\b"] {
            assert!(check_esp_path(bad).is_err(), "{bad:?}");
        }
    }

    /// Two ESPs made 2.1 s apart (FAT dates have 2 s steps) from files listed in different
    /// orders are identical; mtools lists the files at their paths.
    #[test]
    fn esp_is_reproducible_and_holds_the_files() {
        let has = |t: &str| {
            ["/sbin", "/usr/sbin", "/usr/bin", "/bin"]
                .iter()
                .any(|d| Path::new(d).join(t).is_file())
        };
        if !["mkfs.fat", "mmd", "mcopy", "mtype"].iter().all(|t| has(t)) {
            assert!(
                std::env::var_os("VESTIGE_REQUIRE_TOOLS").is_none_or(|v| v != "1"),
                "VESTIGE_REQUIRE_TOOLS=1: mkfs.fat (dosfstools) / mtools missing"
            );
            eprintln!("note: dosfstools/mtools missing; skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (a, b, c) = (d.join("a"), d.join("b"), d.join("c"));
        std::fs::write(&a, b"boot loader").unwrap();
        std::fs::write(&b, b"second stage").unwrap();
        std::fs::write(&c, vec![7u8; 100_000]).unwrap();
        let forward = [
            ("EFI/BOOT/BOOTX64.EFI", a.as_path()),
            ("EFI/BOOT/grubx64.efi", b.as_path()),
            ("EFI/debian/grub.cfg", b.as_path()),
            ("vmlinuz", c.as_path()),
        ];
        let mut backward = forward;
        backward.reverse();
        let e1 = d.join("e1.img");
        make_esp(&forward, &e1, 2 * MIB, 1_700_000_000, &d.join("w1")).unwrap();
        std::thread::sleep(Duration::from_millis(2100));
        let e2 = d.join("e2.img");
        make_esp(&backward, &e2, 2 * MIB, 1_700_000_000, &d.join("w2")).unwrap();
        assert!(
            std::fs::read(&e1).unwrap() == std::fs::read(&e2).unwrap(),
            "two ESPs from the same files differ"
        );
        let typed = Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&e1)
            .arg("::/EFI/debian/grub.cfg")
            .output()
            .unwrap();
        assert_eq!(typed.stdout, b"second stage");
        let dup = [("vmlinuz", a.as_path()), ("vmlinuz", b.as_path())];
        assert!(make_esp(&dup, &d.join("e3.img"), 2 * MIB, 0, &d.join("w3")).is_err());
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_date(0).unwrap(), "1970010100000000");
        assert_eq!(iso_date(1_700_000_000).unwrap(), "2023111422132000");
        assert_eq!(iso_date(951_782_400).unwrap(), "2000022900000000");
    }
}
