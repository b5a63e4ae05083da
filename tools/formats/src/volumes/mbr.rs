//! The DOS/MBR partition table: four primary entries in sector 0, and for an extended
//! partition the chain of EBRs (extended boot records) holding the logical partitions.
//!
//! In each EBR, entry 0 is a logical partition whose start is relative to that EBR, and
//! entry 1 links to the next EBR with a start relative to the extended partition's start
//! (the primary entry's). The chain is read to at most [`MAX_EBRS`] records, and an EBR
//! seen twice ends it with a warning.

use super::{Found, PartitionEntry, Slot, SlotKind};
use crate::bytes::{le_u16, le_u32};
use crate::{FormatError, ReadAt};
use std::collections::BTreeSet;
use std::path::Path;

/// EBRs followed in one chain (real disks have a few dozen logical partitions at most).
pub(crate) const MAX_EBRS: usize = 1024;
/// Byte offset of the partition entries in an MBR or EBR.
const ENTRIES_AT: usize = 446;
const SECTOR: u64 = 512;

/// One 16-byte entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    status: u8,
    kind: u8,
    lba: u32,
    sectors: u32,
}

fn entry(sector: &[u8], i: usize) -> Entry {
    let at = ENTRIES_AT + 16 * i;
    Entry {
        status: sector.get(at).copied().unwrap_or(0),
        kind: sector.get(at + 4).copied().unwrap_or(0),
        lba: le_u32(sector, at + 8),
        sectors: le_u32(sector, at + 12),
    }
}

/// Whether the sector ends with 0x55 0xAA.
pub(crate) fn has_signature(sector: &[u8]) -> bool {
    le_u16(sector, 510) == 0xAA55
}

/// Whether an entry is a GPT protective (0xEE) one.
pub(crate) fn is_protective(sector: &[u8]) -> bool {
    (0..4).any(|i| entry(sector, i).kind == 0xEE)
}

fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0F | 0x85)
}

/// The primary table and every extended partition's chain, into `found`.
pub(crate) fn read(
    disk: &dyn ReadAt,
    path: &Path,
    sector0: &[u8],
    found: &mut Found,
) -> Result<(), FormatError> {
    found.meta(Some(0), 0, 1, "Primary Table (#0)".to_string());
    let mut next_table = 1u32;
    for i in 0..4u32 {
        let e = entry(sector0, i as usize);
        if e.kind == 0 {
            continue;
        }
        if e.sectors == 0 {
            found.warn(
                ENTRIES_AT as u64 + 16 * u64::from(i),
                "MBR entry.num_sectors",
                format!("entry {i} of type 0x{:02x} has 0 sectors: ignored", e.kind),
            );
            continue;
        }
        if is_extended(e.kind) {
            found
                .slots
                .push(slot(SlotKind::Meta, Some(0), None, u64::from(e.lba), e));
            chain(disk, path, u64::from(e.lba), &mut next_table, found)?;
        } else {
            found.slots.push(slot(
                SlotKind::Partition,
                Some(0),
                Some(i),
                u64::from(e.lba),
                e,
            ));
        }
    }
    Ok(())
}

/// Walks the EBR chain of the extended partition starting at sector `ext_start`.
fn chain(
    disk: &dyn ReadAt,
    path: &Path,
    ext_start: u64,
    next_table: &mut u32,
    found: &mut Found,
) -> Result<(), FormatError> {
    let mut seen = BTreeSet::new();
    let mut ebr = ext_start;
    for _ in 0..MAX_EBRS {
        let at = ebr.saturating_mul(SECTOR);
        if !seen.insert(ebr) {
            found.warn(
                at,
                "EBR.next",
                format!("the EBR chain loops back to sector {ebr}: chain ended"),
            );
            return Ok(());
        }
        if at.checked_add(SECTOR).is_none_or(|end| end > disk.size()) {
            found.warn(
                at,
                "EBR",
                format!(
                    "the EBR at sector {ebr} lies past the end of the disk ({} bytes): chain ended",
                    disk.size()
                ),
            );
            return Ok(());
        }
        let mut sector = [0u8; 512];
        disk.read_exact_at(&mut sector, at)
            .map_err(FormatError::io(path, "read an EBR"))?;
        if !has_signature(&sector) {
            found.warn(
                at + 510,
                "EBR.signature",
                format!(
                    "found 0x{:04x}, expected 0xAA55: chain ended",
                    le_u16(&sector, 510)
                ),
            );
            return Ok(());
        }
        let table = *next_table;
        *next_table = next_table.saturating_add(1);
        found.meta(Some(table), ebr, 1, format!("Extended Table (#{table})"));
        let mut next = None;
        for i in 0..4u32 {
            let e = entry(&sector, i as usize);
            if e.kind == 0 || e.sectors == 0 {
                continue;
            }
            if is_extended(e.kind) {
                let start = ext_start.saturating_add(u64::from(e.lba));
                found
                    .slots
                    .push(slot(SlotKind::Meta, Some(table), None, start, e));
                if next.is_none() {
                    next = Some(start);
                }
            } else {
                let start = ebr.saturating_add(u64::from(e.lba));
                found
                    .slots
                    .push(slot(SlotKind::Partition, Some(table), Some(i), start, e));
            }
        }
        match next {
            Some(n) => ebr = n,
            None => return Ok(()),
        }
    }
    found.warn(
        ebr.saturating_mul(SECTOR),
        "EBR.next",
        format!("more than {MAX_EBRS} EBRs: chain ended"),
    );
    Ok(())
}

fn slot(kind: SlotKind, table: Option<u32>, entry: Option<u32>, start: u64, e: Entry) -> Slot {
    let len = u64::from(e.sectors);
    Slot {
        kind,
        table,
        entry,
        start_sector: start,
        end_sector: start.saturating_add(len).saturating_sub(1),
        length_sectors: len,
        description: format!("{} (0x{:02x})", type_name(e.kind), e.kind),
        partition: Some(PartitionEntry {
            type_code: format!("0x{:02x}", e.kind),
            type_name: type_name(e.kind).to_string(),
            name: None,
            unique_guid: None,
            attributes: None,
            bootable: Some(e.status & 0x80 != 0),
        }),
    }
}

/// The common name of an MBR partition type (The Sleuth Kit's wording where it has one).
pub(crate) fn type_name(kind: u8) -> &'static str {
    match kind {
        0x00 => "Empty",
        0x01 => "DOS FAT12",
        0x04 => "DOS FAT16 (<32MB)",
        0x05 => "DOS Extended",
        0x06 => "DOS FAT16 (>32MB)",
        0x07 => "NTFS / exFAT",
        0x0b => "Win95 FAT32",
        0x0c => "Win95 FAT32",
        0x0e => "Win95 FAT16",
        0x0f => "Win95 Extended",
        0x11 => "Hidden FAT12",
        0x14 | 0x16 => "Hidden FAT16",
        0x17 => "Hidden NTFS",
        0x1b | 0x1c => "Hidden Win95 FAT32",
        0x27 => "Windows hidden recovery",
        0x42 => "Windows Dynamic",
        0x82 => "Linux Swap / Solaris x86",
        0x83 => "Linux",
        0x85 => "Linux Extended",
        0x8e => "Linux Logical Volume Manager",
        0xa5 => "FreeBSD",
        0xa6 => "OpenBSD",
        0xa8 => "Mac OS X",
        0xa9 => "NetBSD",
        0xaf => "Mac OS X HFS",
        0xbf => "Solaris x86",
        0xee => "GPT Safety Partition",
        0xef => "EFI File System",
        0xfd => "Linux RAID",
        _ => "Unknown Type",
    }
}
