//! Finding the file systems on a disk: every partition of its table and every LVM logical
//! volume, or the whole disk when it has no table, each tried by every reader's probe.

use crate::{FileSystem, FsError};
use std::path::Path;
use vestige_formats::volumes::{read_layout, Layout, SlotKind};
use vestige_formats::ReadAt;

/// A volume of a disk that may hold a file system.
pub struct Volume<'a> {
    /// How `--volume` names it: the layout row (`002`, as `vestige volumes` and mmls
    /// number it), `VG/LV`, or `disk` for a disk without a table.
    pub id: String,
    /// What it is, for messages (`partition 002 (Linux (0x83))`).
    pub description: String,
    /// Its first byte on the disk (LVs: of their first extent's PV, for orientation only).
    pub start_bytes: u64,
    /// Its bytes.
    pub reader: Box<dyn ReadAt + 'a>,
}

impl std::fmt::Debug for Volume<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("id", &self.id)
            .field("description", &self.description)
            .field("start_bytes", &self.start_bytes)
            .finish_non_exhaustive()
    }
}

/// The layout of `disk` and its volumes: partitions (not tables or gaps), readable LVs, or
/// the whole disk when there is no partition table and no LVM.
///
/// # Errors
/// The disk cannot be read.
pub fn volumes<'a>(
    disk: &'a dyn ReadAt,
    path: &Path,
) -> Result<(Layout, Vec<Volume<'a>>), vestige_formats::FormatError> {
    let layout = read_layout(disk, path)?;
    let mut out = Vec::new();
    let sector = u64::from(layout.sector_size);
    for (i, slot) in layout.slots.iter().enumerate() {
        if slot.kind != SlotKind::Partition {
            continue;
        }
        let reader = layout.open_volume(disk, i)?;
        out.push(Volume {
            id: format!("{i:03}"),
            description: format!("partition {i:03} ({})", slot.description),
            start_bytes: slot.start_sector.saturating_mul(sector),
            reader: Box::new(reader),
        });
    }
    for (g, vg) in layout.volume_groups.iter().enumerate() {
        for (l, lv) in vg.lvs.iter().enumerate() {
            if !lv.is_readable() {
                continue;
            }
            let Ok(reader) = layout.open_lv(disk, g, l) else {
                continue;
            };
            out.push(Volume {
                id: format!("{}/{}", vg.name, lv.name),
                description: format!("LVM logical volume {}/{}", vg.name, lv.name),
                start_bytes: 0,
                reader: Box::new(reader),
            });
        }
    }
    if out.is_empty() && layout.physical_volumes.is_empty() {
        out.push(Volume {
            id: "disk".to_string(),
            description: "the whole disk".to_string(),
            start_bytes: 0,
            reader: Box::new(disk),
        });
    }
    Ok((layout, out))
}

/// How a file system is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Replay an ext3/4 journal that needs recovery, in memory, as the kernel would before
    /// reading (the default). Off: the blocks as stored, which is what TSK reads.
    pub replay_journal: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            replay_journal: true,
        }
    }
}

/// Opens the file system on `vol` with the reader whose probe recognises it. `name` is
/// how errors name the volume.
///
/// # Errors
/// No reader recognises it ([`FsError::Unsupported`]), or the recognised one fails.
pub fn open_fs<'a>(vol: &'a dyn ReadAt, name: &str) -> Result<Box<dyn FileSystem + 'a>, FsError> {
    open_fs_with(vol, name, OpenOptions::default())
}

/// [`open_fs`] with `options`.
///
/// # Errors
/// As [`open_fs`].
pub fn open_fs_with<'a>(
    vol: &'a dyn ReadAt,
    name: &str,
    options: OpenOptions,
) -> Result<Box<dyn FileSystem + 'a>, FsError> {
    if crate::ntfs::probe(vol) {
        return Ok(Box::new(crate::ntfs::Ntfs::open(vol, name)?));
    }
    if crate::exfat::probe(vol) {
        return Ok(Box::new(crate::exfat::ExFat::open(vol, name)?));
    }
    if crate::fat::probe(vol) {
        return Ok(Box::new(crate::fat::Fat::open(vol, name)?));
    }
    if crate::ext4::probe(vol) {
        return Ok(Box::new(crate::ext4::Ext4::open_with(
            vol,
            name,
            options.replay_journal,
        )?));
    }
    if crate::xfs::probe(vol) {
        return Ok(Box::new(crate::xfs::Xfs::open(vol, name)?));
    }
    Err(FsError::Unsupported {
        volume: name.to_string(),
        what: "the file system (not ext2/3/4, XFS, NTFS, FAT or exFAT)".to_string(),
    })
}
