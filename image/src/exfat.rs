//! Making mkfs.exfat's output reproducible: it takes the volume serial number from the clock
//! and has no option to set it, so [`set_volume_serial`] writes a fixed one into the main and
//! backup boot sectors and recomputes both boot checksums. Nothing else in exfatprogs 1.2's
//! output varies between runs (checked by formatting twice: only the serial and the checksum
//! sectors differ).
//!
//! Reference: Microsoft "exFAT file system specification", §3.1 (main boot sector),
//! §3.1.11 (VolumeSerialNumber), §3.4 (main boot checksum).

/// Sectors in one boot region (boot sector, 8 extended boot sectors, OEM parameters,
/// reserved, checksum).
const BOOT_REGION_SECTORS: usize = 12;
/// The checksum sector's index in a boot region.
const CHECKSUM_SECTOR: usize = 11;
/// VolumeSerialNumber's offset in the boot sector.
const SERIAL_OFFSET: usize = 100;
/// BytesPerSectorShift's offset in the boot sector.
const SECTOR_SHIFT_OFFSET: usize = 108;
/// Boot-sector bytes the checksum skips: VolumeFlags (106, 107) and PercentInUse (112).
const CHECKSUM_SKIPPED: [usize; 3] = [106, 107, 112];
/// FileSystemName.
const FS_NAME: &[u8; 8] = b"EXFAT   ";

/// Errors of this module.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Not an exFAT boot sector.
    #[error("exFAT boot sector: FileSystemName at byte 3 is {found:?}, expected \"EXFAT   \"")]
    NotExfat {
        /// What the field holds.
        found: String,
    },
    /// BytesPerSectorShift outside 9..=12.
    #[error("exFAT boot sector: BytesPerSectorShift at byte 108 is {found}, expected 9 to 12")]
    BadSectorShift {
        /// The value.
        found: u8,
    },
    /// The volume is shorter than its two boot regions.
    #[error("exFAT volume: {len} bytes, shorter than the two boot regions ({needed} bytes)")]
    Truncated {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
}

/// The boot checksum of one boot region (§3.4): over sectors 0..=10, skipping
/// VolumeFlags and PercentInUse.
fn boot_checksum(region: &[u8], sector_bytes: usize) -> u32 {
    let mut sum: u32 = 0;
    let end = sector_bytes
        .saturating_mul(CHECKSUM_SECTOR)
        .min(region.len());
    for (i, &b) in region.iter().take(end).enumerate() {
        if CHECKSUM_SKIPPED.contains(&i) {
            continue;
        }
        sum = sum.rotate_right(1).wrapping_add(u32::from(b));
    }
    sum
}

/// Sets the volume serial number of the exFAT file system starting at `volume[0]` (at
/// least its two boot regions) to `serial`, in the main and the backup boot region, and
/// rewrites both checksum sectors.
///
/// # Errors
/// When `volume` does not start with an exFAT boot sector or is too short.
pub fn set_volume_serial(volume: &mut [u8], serial: u32) -> Result<(), Error> {
    let name = volume.get(3..11).unwrap_or_default();
    if name != FS_NAME {
        return Err(Error::NotExfat {
            found: String::from_utf8_lossy(name).into_owned(),
        });
    }
    let shift = volume.get(SECTOR_SHIFT_OFFSET).copied().unwrap_or(0);
    if !(9..=12).contains(&shift) {
        return Err(Error::BadSectorShift { found: shift });
    }
    let sector_bytes = 1usize << shift;
    let region_bytes = sector_bytes.saturating_mul(BOOT_REGION_SECTORS);
    let needed = region_bytes.saturating_mul(2);
    let Some(regions) = volume.get_mut(..needed) else {
        return Err(Error::Truncated {
            len: volume.len(),
            needed,
        });
    };
    for region in regions.chunks_exact_mut(region_bytes) {
        if let Some(field) = region.get_mut(SERIAL_OFFSET..SERIAL_OFFSET + 4) {
            field.copy_from_slice(&serial.to_le_bytes());
        }
        let sum = boot_checksum(region, sector_bytes).to_le_bytes();
        let start = sector_bytes.saturating_mul(CHECKSUM_SECTOR);
        if let Some(sector) = region.get_mut(start..start.saturating_add(sector_bytes)) {
            for word in sector.chunks_exact_mut(4) {
                word.copy_from_slice(&sum);
            }
        }
    }
    Ok(())
}

/// The volume serial number of an exFAT boot sector, if `volume` starts with one.
#[must_use]
pub fn volume_serial(volume: &[u8]) -> Option<u32> {
    if volume.get(3..11)? != FS_NAME {
        return None;
    }
    let b = volume.get(SERIAL_OFFSET..SERIAL_OFFSET + 4)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn rejects_other_file_systems() {
        let mut v = vec![0u8; 12 * 512 * 2];
        assert!(matches!(
            set_volume_serial(&mut v, 1),
            Err(Error::NotExfat { .. })
        ));
        v[3..11].copy_from_slice(FS_NAME);
        v[108] = 20;
        assert_eq!(
            set_volume_serial(&mut v, 1),
            Err(Error::BadSectorShift { found: 20 })
        );
        v[108] = 9;
        assert!(matches!(
            set_volume_serial(&mut v[..1000], 1),
            Err(Error::Truncated { .. })
        ));
    }

    /// Two mkfs.exfat runs differ only in the serial and checksums; after patching they are
    /// identical, and fsck.exfat accepts the result (so the checksum is right).
    #[test]
    fn patched_mkfs_exfat_output_is_identical_and_valid() {
        let has = |t: &str| {
            ["/sbin", "/usr/sbin", "/usr/bin", "/bin"]
                .iter()
                .any(|d| std::path::Path::new(d).join(t).is_file())
        };
        if !has("mkfs.exfat") || !has("fsck.exfat") {
            assert!(
                std::env::var_os("VESTIGE_REQUIRE_TOOLS").is_none_or(|v| v != "1"),
                "VESTIGE_REQUIRE_TOOLS=1: mkfs.exfat/fsck.exfat (exfatprogs) missing"
            );
            eprintln!("note: exfatprogs missing; skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut images = Vec::new();
        for (i, pause) in [(0, false), (1, true)] {
            if pause {
                // mkfs.exfat's serial comes from the clock.
                std::thread::sleep(std::time::Duration::from_millis(1100));
            }
            let p = dir.path().join(format!("v{i}.img"));
            std::fs::File::create(&p)
                .unwrap()
                .set_len(40 << 20)
                .unwrap();
            let ok = Command::new("mkfs.exfat")
                .args(["-L", "VESTIGE"])
                .arg(&p)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok);
            let mut bytes = std::fs::read(&p).unwrap();
            set_volume_serial(&mut bytes, 0x5645_5354).unwrap();
            std::fs::write(&p, &bytes).unwrap();
            let fsck = Command::new("fsck.exfat")
                .arg("-n")
                .arg(&p)
                .output()
                .unwrap();
            assert!(
                fsck.status.success(),
                "fsck.exfat: {}{}",
                String::from_utf8_lossy(&fsck.stdout),
                String::from_utf8_lossy(&fsck.stderr)
            );
            assert_eq!(volume_serial(&bytes), Some(0x5645_5354));
            images.push(bytes);
        }
        assert!(images[0] == images[1], "patched volumes differ");
    }
}
