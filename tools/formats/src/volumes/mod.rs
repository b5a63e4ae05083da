//! Volume systems: how a disk is divided. MBR (with the extended partition's EBR chain),
//! GPT (primary and backup checked against each other) and LVM2 volume groups found on
//! the partitions.
//!
//! [`read_layout`] reads the tables of any [`ReadAt`] (a raw file, an E01, a qcow2 — all
//! the same) into a [`Layout`]: one sorted list of [`Slot`]s covering the disk the way
//! The Sleuth Kit's `mmls` shows it (tables as `Meta`, gaps as `Unallocated`, partitions
//! with their table and entry number), the warnings an examiner must see (bad checksums,
//! a backup GPT used, overlapping partitions, an EBR loop), and the LVM volume groups.
//! Every partition and logical volume opens as a `ReadAt` for the file-system readers.
//!
//! Hostile tables are the normal case: every count and offset is checked against the disk
//! and a fixed cap, chains are bounded and cycle-checked, and what is odd but readable is
//! a warning, not a refusal.
//!
//! ```no_run
//! use vestige_formats::volumes;
//! # fn main() -> Result<(), vestige_formats::FormatError> {
//! let path = std::path::Path::new("disk.E01");
//! let image = vestige_formats::open(path)?;
//! let layout = volumes::read_layout(&*image, path)?;
//! for (i, slot) in layout.slots.iter().enumerate() {
//!     if slot.kind == volumes::SlotKind::Partition {
//!         let _partition = layout.open_volume(&*image, i)?;
//!     }
//! }
//! # Ok(()) }
//! ```

mod crc;
mod gpt;
pub mod lvm;
mod lvm_config;
mod lvm_map;
mod mbr;
mod slice;

pub use lvm::{LogicalVolume, LvSegment, PhysicalVolume, Stripe, VgPv, VolumeGroup};
pub use lvm_map::LvReader;
pub use slice::Slice;

use crate::{FormatError, ReadAt};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The sector size of MBR disks and of most GPT disks.
pub const SECTOR_512: u32 = 512;

/// Which partition table the disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// A DOS/MBR partition table (with its extended partitions).
    Mbr,
    /// A GUID partition table (behind its protective MBR).
    Gpt,
    /// No partition table: the disk is one volume (perhaps an LVM PV).
    None,
}

/// What a slot of the layout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotKind {
    /// A table or header (MBR, EBR, GPT header or entry array), or an extended partition's
    /// container.
    Meta,
    /// Sectors no partition covers.
    Unallocated,
    /// A partition holding data.
    Partition,
}

/// One row of the layout, in sectors of [`Layout::sector_size`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// What it is.
    pub kind: SlotKind,
    /// The table that describes it: 0 for the MBR or the GPT, 1… for the EBRs of the
    /// extended partition in chain order (as `mmls` numbers them).
    pub table: Option<u32>,
    /// Its entry number in that table (0-based).
    pub entry: Option<u32>,
    /// First sector.
    pub start_sector: u64,
    /// Last sector (inclusive, as `mmls` shows it).
    pub end_sector: u64,
    /// Sectors.
    pub length_sectors: u64,
    /// What `mmls` would show: the type (`Linux (0x83)`), the GPT name, or the table.
    pub description: String,
    /// The partition entry's details (partitions and extended containers).
    pub partition: Option<PartitionEntry>,
}

/// The fields of a partition-table entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionEntry {
    /// The type: `0x83` for MBR, the type GUID for GPT.
    pub type_code: String,
    /// The type's common name (`Linux filesystem`, `EFI System`), or `Unknown`.
    pub type_name: String,
    /// The GPT partition name (UTF-16LE decoded; unpaired surrogates replaced).
    pub name: Option<String>,
    /// The GPT unique partition GUID.
    pub unique_guid: Option<String>,
    /// The GPT attribute bits (raw).
    pub attributes: Option<u64>,
    /// The MBR boot indicator (0x80).
    pub bootable: Option<bool>,
}

/// Something odd an examiner must know, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The byte offset on the disk of the structure concerned.
    pub offset_bytes: u64,
    /// The structure and field, e.g. `GPT header.header_crc32`.
    pub field: String,
    /// What was found and what that means.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "byte {}: {}: {}",
            self.offset_bytes, self.field, self.message
        )
    }
}

/// How a disk is divided.
#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    /// The partition table found.
    pub scheme: Scheme,
    /// Bytes per sector (512, or 4096 for a 4Kn GPT disk).
    pub sector_size: u32,
    /// Bytes of the disk.
    pub disk_size_bytes: u64,
    /// Tables, gaps and partitions, sorted by start sector.
    pub slots: Vec<Slot>,
    /// What is odd (bad checksums, backup used, overlaps, loops), in the order found.
    pub warnings: Vec<Warning>,
    /// LVM2 physical volumes found (by their label) on partitions or the whole disk.
    pub physical_volumes: Vec<PhysicalVolume>,
    /// LVM2 volume groups described by those PVs' metadata (the newest copy of each).
    pub volume_groups: Vec<VolumeGroup>,
    /// The image, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
}

/// Tables and warnings as a scheme's reader finds them.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub(crate) slots: Vec<Slot>,
    pub(crate) warnings: Vec<Warning>,
}

impl Found {
    pub(crate) fn warn(&mut self, offset_bytes: u64, field: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            offset_bytes,
            field: field.to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn meta(&mut self, table: Option<u32>, start: u64, len: u64, what: String) {
        self.slots.push(Slot {
            kind: SlotKind::Meta,
            table,
            entry: None,
            start_sector: start,
            end_sector: start.saturating_add(len).saturating_sub(1),
            length_sectors: len,
            description: what,
            partition: None,
        });
    }
}

/// Reads the volume system of `disk` (`path` names it in errors).
///
/// A GPT (behind a protective MBR, or found at LBA 1 with no MBR at all) wins over the MBR;
/// a bad primary GPT falls back to the backup with a warning; no table at all gives
/// [`Scheme::None`] with the whole disk as the one place an LVM PV is looked for.
///
/// # Errors
/// Only when the disk cannot be read (an I/O error of the image underneath); every
/// problem of the tables themselves is a [`Warning`].
pub fn read_layout(disk: &dyn ReadAt, path: &Path) -> Result<Layout, FormatError> {
    let size = disk.size();
    let mut found = Found::default();
    let mut sector0 = [0u8; 512];
    let have_sector0 = size >= 512;
    if have_sector0 {
        disk.read_exact_at(&mut sector0, 0)
            .map_err(FormatError::io(path, "read the MBR"))?;
    } else {
        found.warn(
            0,
            "disk size",
            format!("{size} bytes: too small for a partition table"),
        );
    }
    let mbr_ok = have_sector0 && mbr::has_signature(&sector0);
    let protective = mbr_ok && mbr::is_protective(&sector0);
    let mut scheme = Scheme::None;
    let mut sector_size = SECTOR_512;
    if have_sector0 && (protective || !mbr_ok) {
        if let Some(ss) = gpt::read(disk, path, &mut found)? {
            scheme = Scheme::Gpt;
            sector_size = ss;
            if !mbr_ok {
                found.warn(
                    510,
                    "MBR.signature",
                    "no 0x55AA signature: a GPT without a protective MBR",
                );
            }
        } else if protective {
            found.warn(
                446,
                "MBR.partition_type",
                "a protective MBR (0xEE) but no valid GPT: listing the MBR as it is",
            );
        }
    }
    if scheme == Scheme::None && mbr_ok {
        mbr::read(disk, path, &sector0, &mut found)?;
        scheme = Scheme::Mbr;
    }
    let disk_sectors = size / u64::from(sector_size);
    check_partitions(&mut found, disk_sectors, sector_size);
    add_unallocated(&mut found.slots, disk_sectors);
    sort_slots(&mut found.slots);
    let mut layout = Layout {
        scheme,
        sector_size,
        disk_size_bytes: size,
        slots: found.slots,
        warnings: found.warnings,
        physical_volumes: Vec::new(),
        volume_groups: Vec::new(),
        path: path.to_path_buf(),
    };
    lvm::scan(disk, &mut layout)?;
    Ok(layout)
}

impl Layout {
    /// The byte range of slot `index` on the disk.
    ///
    /// # Errors
    /// No such slot, or its range overflows a byte offset.
    pub fn slot_bytes(&self, index: usize) -> Result<(u64, u64), FormatError> {
        let slot = self.slots.get(index).ok_or_else(|| {
            FormatError::invalid(
                &self.path,
                0,
                "volume slot",
                format!("no slot {index} (the layout has {})", self.slots.len()),
            )
        })?;
        let ss = u64::from(self.sector_size);
        let start = slot.start_sector.checked_mul(ss);
        let len = slot.length_sectors.checked_mul(ss);
        match (start, len) {
            (Some(s), Some(l)) if s.checked_add(l).is_some() => Ok((s, l)),
            _ => Err(FormatError::invalid(
                &self.path,
                0,
                "volume slot",
                format!(
                    "slot {index} (sector {} + {}) overflows a byte offset",
                    slot.start_sector, slot.length_sectors
                ),
            )),
        }
    }

    /// Slot `index` (a partition, or any other row: a gap can be carved too) as a disk of
    /// its own.
    ///
    /// # Errors
    /// No such slot, or its range overflows a byte offset.
    pub fn open_volume<'a>(
        &self,
        disk: &'a dyn ReadAt,
        index: usize,
    ) -> Result<Slice<&'a dyn ReadAt>, FormatError> {
        let (start, len) = self.slot_bytes(index)?;
        Ok(Slice::new(disk, start, len))
    }

    /// Logical volume `lv` of volume group `vg` as a disk of its own: its segments mapped
    /// onto the PVs found in this image, striping included.
    ///
    /// # Errors
    /// No such VG or LV, or a segment that cannot be mapped (see [`LvReader::new`]).
    pub fn open_lv<'a>(
        &self,
        disk: &'a dyn ReadAt,
        vg: usize,
        lv: usize,
    ) -> Result<LvReader<&'a dyn ReadAt>, FormatError> {
        let group = self.volume_groups.get(vg).ok_or_else(|| {
            FormatError::invalid(&self.path, 0, "LVM volume group", format!("no VG {vg}"))
        })?;
        LvReader::new(disk, &self.path, group, lv)
    }
}

/// Warns about partitions that overlap or reach past the disk (they stay listed).
fn check_partitions(found: &mut Found, disk_sectors: u64, sector_size: u32) {
    let mut parts: Vec<&Slot> = found
        .slots
        .iter()
        .filter(|s| s.kind == SlotKind::Partition)
        .collect();
    parts.sort_by_key(|s| (s.start_sector, s.end_sector));
    let ss = u64::from(sector_size);
    let mut warnings = Vec::new();
    for p in &parts {
        if p.end_sector >= disk_sectors {
            warnings.push((
                p.start_sector.saturating_mul(ss),
                format!(
                    "partition {} (sectors {}..={}) reaches past the disk's last sector {}",
                    slot_name(p),
                    p.start_sector,
                    p.end_sector,
                    disk_sectors.saturating_sub(1)
                ),
            ));
        }
    }
    for pair in parts.windows(2) {
        if let [a, b] = pair {
            if b.start_sector <= a.end_sector {
                warnings.push((
                    b.start_sector.saturating_mul(ss),
                    format!(
                        "partitions {} (sectors {}..={}) and {} (sectors {}..={}) overlap",
                        slot_name(a),
                        a.start_sector,
                        a.end_sector,
                        slot_name(b),
                        b.start_sector,
                        b.end_sector
                    ),
                ));
            }
        }
    }
    for (at, m) in warnings {
        found.warn(at, "partition extent", m);
    }
}

/// `table:entry` as `mmls` writes it.
fn slot_name(s: &Slot) -> String {
    match (s.table, s.entry) {
        (Some(t), Some(e)) => format!("{t:03}:{e:03}"),
        (None, Some(e)) => format!("{e:03}"),
        _ => "-".to_string(),
    }
}

/// Adds `Unallocated` slots for the sectors no partition covers (as `mmls`: tables and
/// extended containers do not count as allocated).
fn add_unallocated(slots: &mut Vec<Slot>, disk_sectors: u64) {
    let mut parts: Vec<(u64, u64)> = slots
        .iter()
        .filter(|s| s.kind == SlotKind::Partition)
        .map(|s| (s.start_sector, s.end_sector))
        .collect();
    parts.sort_unstable();
    let mut cursor = 0u64;
    let mut gaps = Vec::new();
    for (start, end) in parts {
        if start > cursor {
            gaps.push((cursor, start - 1));
        }
        cursor = cursor.max(end.saturating_add(1));
    }
    if cursor < disk_sectors {
        gaps.push((cursor, disk_sectors - 1));
    }
    for (start, end) in gaps {
        slots.push(Slot {
            kind: SlotKind::Unallocated,
            table: None,
            entry: None,
            start_sector: start,
            end_sector: end,
            length_sectors: end - start + 1,
            description: "Unallocated".to_string(),
            partition: None,
        });
    }
}

/// By start sector; at the same start, tables first, then gaps, then partitions.
fn sort_slots(slots: &mut [Slot]) {
    slots.sort_by(|a, b| {
        (
            a.start_sector,
            a.kind,
            std::cmp::Reverse(a.length_sectors),
            a.table,
            a.entry,
        )
            .cmp(&(
                b.start_sector,
                b.kind,
                std::cmp::Reverse(b.length_sectors),
                b.table,
                b.entry,
            ))
    });
}

#[cfg(test)]
#[path = "hostile_tests.rs"]
mod hostile_tests;
#[cfg(test)]
#[path = "lvm_tests.rs"]
mod lvm_tests;
#[cfg(test)]
#[path = "tables_tests.rs"]
mod tables_tests;
