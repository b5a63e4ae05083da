//! The Secure Boot USB image, `vestige-sb-usb.img`: the firmware's Microsoft-signed first
//! stage is Debian's shim (package shim-signed), which starts Debian's signed grub (package
//! grub-efi-amd64-signed), which loads Debian's signed kernel (the kernel package's
//! `vmlinuz`, unchanged) and our initramfs from the ESP. Nothing of ours is signed:
//!
//! - the firmware checks shim against its `db` (Microsoft's UEFI CA);
//! - shim checks grub, and grub (through shim's protocol) the kernel, against the Debian
//!   Secure Boot CA built into shim;
//! - the initramfs and `grub.cfg` are not checked; the kernel then runs in lockdown
//!   (integrity) and loads only signed modules, which the initramfs carries byte for byte.
//!
//! Layout of the ESP (FAT32, made like the UKI stick's: [`crate::uefi::build_usb_with`]):
//!
//! | ESP path | what |
//! | --- | --- |
//! | `EFI/BOOT/BOOTX64.EFI` | `shimx64.efi.signed` (the removable-media path) |
//! | `EFI/BOOT/grubx64.efi` | `grubx64.efi.signed` (shim starts `grubx64.efi` next to itself) |
//! | `EFI/debian/grub.cfg` | [`grub_cfg`]: Debian's signed grub has the prefix `/EFI/debian` built in |
//! | `vmlinuz`, `initramfs.img` | the direct-boot pair |
//!
//! No `fbx64.efi` (shim would run the fallback loader, which writes boot entries into the
//! firmware's variables) and no `mmx64.efi` (MokManager: nothing to enrol).

use crate::uefi::{self, UsbLayout, UsbPartitions};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Lock role of shim-signed.
pub const ROLE_SHIM: &str = "shim";
/// Lock role of grub-efi-amd64-signed.
pub const ROLE_GRUB: &str = "grub";
/// The package holding Debian's Microsoft-signed shim.
pub const SHIM_PACKAGE: &str = "shim-signed";
/// The package holding Debian's signed grub.
pub const GRUB_PACKAGE: &str = "grub-efi-amd64-signed";
/// Licence note of shim-signed in the lock.
pub const SHIM_LICENCE: &str = "BSD-2-Clause (shim, with OpenSSL-derived Cryptlib; signed by \
     Microsoft; a separate work shipped unmodified; see the shim source package's \
     debian/copyright)";
/// Licence note of grub-efi-amd64-signed in the lock.
pub const GRUB_LICENCE: &str = "GPL-3.0-or-later (GNU GRUB 2, signed by Debian; a separate \
     work shipped unmodified; corresponding source: Debian source package grub2)";
/// Debian's Microsoft-signed shim inside shim-signed.
pub const SHIM_PATH: &str = "usr/lib/shim/shimx64.efi.signed";
/// Debian's signed grub (disk image, not the CD or network one) inside
/// grub-efi-amd64-signed.
pub const GRUB_PATH: &str = "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";
/// The prefix built into Debian's signed grub: it reads `$prefix/grub.cfg` from the device
/// it was started from.
pub const GRUB_PREFIX: &str = "/EFI/debian";
/// Where shim goes on the ESP.
pub const ESP_SHIM: &str = "EFI/BOOT/BOOTX64.EFI";
/// Where grub goes on the ESP (shim loads `grubx64.efi` from its own folder).
pub const ESP_GRUB: &str = "EFI/BOOT/grubx64.efi";
/// Where grub's configuration goes on the ESP (`GRUB_PREFIX/grub.cfg`).
pub const ESP_GRUB_CFG: &str = "EFI/debian/grub.cfg";
/// The kernel on the ESP.
pub const ESP_KERNEL: &str = "vmlinuz";
/// The initramfs on the ESP.
pub const ESP_INITRD: &str = "initramfs.img";
/// Seconds grub shows its menu before it boots the appliance.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 3;
/// PE data directory index of the certificate (security) table.
const CERTIFICATE_TABLE_INDEX: usize = 4;

/// The files of the Secure Boot ESP.
#[derive(Debug, Clone, Copy)]
pub struct SbInputs<'a> {
    /// `shimx64.efi.signed`.
    pub shim: &'a Path,
    /// `grubx64.efi.signed`.
    pub grub: &'a Path,
    /// Debian's signed `vmlinuz`.
    pub kernel: &'a Path,
    /// The initramfs.
    pub initrd: &'a Path,
    /// Text of `EFI/debian/grub.cfg` ([`grub_cfg`]).
    pub grub_cfg: &'a str,
}

/// The shipped `grub.cfg`: one entry booting `/vmlinuz` with `cmdline` and
/// `/initramfs.img` from the ESP after `timeout_seconds`. `cmdline` is written as it is:
/// grub splits it into words like a shell (quotes group words) and hands the kernel each
/// word, re-quoted when it holds a space.
#[must_use]
pub fn grub_cfg(cmdline: &str, timeout_seconds: u32) -> String {
    format!(
        "# Vestige forensic appliance: Debian's signed shim and grub load Debian's signed\n\
         # kernel; under Secure Boot the kernel runs locked down and loads only signed modules.\n\
         # The initramfs and this file are not signature-checked.\n\
         set timeout={timeout_seconds}\n\
         set default=0\n\
         menuentry \"Vestige forensic appliance\" {{\n\
         \techo \"Loading Debian's signed kernel...\"\n\
         \tlinux /{ESP_KERNEL} {cmdline}\n\
         \techo \"Loading the initramfs...\"\n\
         \tinitrd /{ESP_INITRD}\n\
         }}\n"
    )
}

/// Checks that `grub` has [`GRUB_PREFIX`] built in (NUL-terminated), so `grub.cfg` goes
/// where it looks.
///
/// # Errors
/// When the prefix is not found.
pub fn check_grub_prefix(grub: &[u8]) -> Result<()> {
    let needle = format!("{GRUB_PREFIX}\0");
    if grub.windows(needle.len()).any(|w| w == needle.as_bytes()) {
        Ok(())
    } else {
        bail!(
            "grub has no built-in prefix {GRUB_PREFIX:?}: grub.cfg would not be found \
             (did the package change where its signed grub looks? check with `strings`)"
        )
    }
}

/// File offset and length of the Authenticode certificate table of a PE32+ image, or None
/// when it has none (unsigned).
///
/// # Errors
/// When `image` is not a PE32+ image.
pub fn certificate_table(image: &[u8]) -> Result<Option<(u32, u32)>> {
    let headers = crate::pe::parse(image)?;
    let u32_at = |at: usize| {
        at.checked_add(4)
            .and_then(|end| image.get(at..end))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
    };
    let opt = headers.optional_offset;
    // PE32+: NumberOfRvaAndSizes at 108, the data directories (8 bytes each) from 112.
    let count = u32_at(opt.saturating_add(108)).context("PE: truncated optional header")?;
    if usize::try_from(count).unwrap_or(0) <= CERTIFICATE_TABLE_INDEX {
        return Ok(None);
    }
    let entry = opt.saturating_add(112 + 8 * CERTIFICATE_TABLE_INDEX);
    let (Some(offset), Some(len)) = (u32_at(entry), u32_at(entry.saturating_add(4))) else {
        bail!("PE: truncated data directories");
    };
    if offset == 0 || len == 0 {
        return Ok(None);
    }
    let end = u64::from(offset) + u64::from(len);
    if end > image.len() as u64 {
        bail!(
            "PE: certificate table {offset:#x}+{len:#x} runs past the end of the file ({} bytes)",
            image.len()
        );
    }
    Ok(Some((offset, len)))
}

/// Checks that the file at `path` is a PE32+ image with an Authenticode signature (it does
/// not verify the signature: the firmware, shim and grub do that).
///
/// # Errors
/// When it cannot be read, is not PE32+ or carries no certificate table.
pub fn check_signed(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    match certificate_table(&bytes).with_context(|| format!("{}", path.display()))? {
        Some(_) => Ok(()),
        None => bail!(
            "{} carries no Authenticode signature: a Secure Boot chain needs the signed file",
            path.display()
        ),
    }
}

/// Builds `vestige-sb-usb.img` at `out` (GPT: ESP + VESTIGE-EVIDENCE exFAT, GUIDs
/// [`uefi::SB_USB_IDS`]); `work` is a scratch folder (emptied first).
///
/// # Errors
/// When shim, grub or the kernel is unsigned, grub lacks [`GRUB_PREFIX`], or building the
/// image fails.
pub fn build_sb_usb(
    inputs: &SbInputs<'_>,
    out: &Path,
    layout: UsbLayout,
    source_date_epoch: u64,
    work: &Path,
) -> Result<UsbPartitions> {
    for p in [inputs.shim, inputs.grub, inputs.kernel] {
        check_signed(p)?;
    }
    let grub =
        std::fs::read(inputs.grub).with_context(|| format!("reading {}", inputs.grub.display()))?;
    check_grub_prefix(&grub).with_context(|| format!("{}", inputs.grub.display()))?;
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    // Outside `work`, which build_usb_with empties.
    let cfg = work.with_extension("grub.cfg");
    std::fs::write(&cfg, inputs.grub_cfg).with_context(|| format!("writing {}", cfg.display()))?;
    let parts = uefi::build_usb_with(
        &[
            (ESP_SHIM, inputs.shim),
            (ESP_GRUB, inputs.grub),
            (ESP_GRUB_CFG, &cfg),
            (ESP_KERNEL, inputs.kernel),
            (ESP_INITRD, inputs.initrd),
        ],
        &uefi::SB_USB_IDS,
        out,
        layout,
        source_date_epoch,
        work,
    )?;
    std::fs::remove_file(&cfg).ok();
    Ok(parts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_boots_the_esp_files() {
        let cfg = grub_cfg("console=ttyS0 console=tty0", 3);
        assert!(cfg.contains("set timeout=3\n"));
        assert!(cfg.contains("\tlinux /vmlinuz console=ttyS0 console=tty0\n"));
        assert!(cfg.contains("\tinitrd /initramfs.img\n"));
        assert_eq!(ESP_GRUB_CFG, format!("{}/grub.cfg", &GRUB_PREFIX[1..]));
    }

    #[test]
    fn grub_prefix_must_be_built_in() {
        let mut image = b"junk\0/EFI/debian\0sbat,1".to_vec();
        check_grub_prefix(&image).unwrap();
        image = b"junk\0/EFI/debianx\0".to_vec();
        assert!(check_grub_prefix(&image).is_err());
    }

    /// A minimal PE32+ header: DOS stub, PE signature, COFF header with no sections and a
    /// 240-byte optional header (16 data directories).
    fn pe(cert: Option<(u32, u32)>, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        b[0x40..0x44].copy_from_slice(b"PE\0\0");
        b[0x44 + 16..0x44 + 18].copy_from_slice(&240u16.to_le_bytes());
        let opt = 0x44 + 20;
        b[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        b[opt + 32..opt + 36].copy_from_slice(&4096u32.to_le_bytes());
        b[opt + 36..opt + 40].copy_from_slice(&512u32.to_le_bytes());
        b[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        if let Some((at, n)) = cert {
            b[opt + 144..opt + 148].copy_from_slice(&at.to_le_bytes());
            b[opt + 148..opt + 152].copy_from_slice(&n.to_le_bytes());
        }
        b
    }

    #[test]
    fn certificate_table_found_or_absent() {
        assert_eq!(certificate_table(&pe(None, 1024)).unwrap(), None);
        assert_eq!(
            certificate_table(&pe(Some((512, 256)), 1024)).unwrap(),
            Some((512, 256))
        );
        let err = certificate_table(&pe(Some((512, 1024)), 1024)).unwrap_err();
        assert!(err.to_string().contains("past the end"), "{err}");
        assert!(certificate_table(b"not a PE image at all").is_err());
    }
}
