//! The GUID partition table (UEFI spec 2.10 §5.3): a header at LBA 1 and its backup at the
//! disk's last LBA, each with the CRC32 of itself and of its partition-entry array.
//!
//! Both copies are read and checked. A bad primary falls back to the backup (with a
//! warning); a bad or missing backup, or copies that disagree (entries, disk GUID, usable
//! range), are warnings. Sector size 512 is tried first, then 4096 (4Kn disks).

use super::{crc, Found, PartitionEntry, Slot, SlotKind};
use crate::bytes::{le_u32, le_u64};
use crate::{FormatError, ReadAt};
use std::path::Path;

/// Bytes of an entry array read at most (8192 entries of 128 bytes; real tables: 16 KiB).
pub(crate) const MAX_TABLE_BYTES: u64 = 1 << 20;
/// The largest entry size accepted (the spec allows 128 × 2^n).
const MAX_ENTRY_SIZE: u32 = 4096;
const SIGNATURE: &[u8; 8] = b"EFI PART";

/// A checked GPT header.
#[derive(Debug, Clone)]
struct Header {
    /// Where it was read, in bytes.
    at: u64,
    my_lba: u64,
    alternate_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: [u8; 16],
    entries_lba: u64,
    entry_count: u32,
    entry_size: u32,
    entries_crc: u32,
}

impl Header {
    fn table_bytes(&self) -> u64 {
        u64::from(self.entry_count) * u64::from(self.entry_size)
    }
}

/// A problem with one copy: where, which field, what.
type Problem = (u64, &'static str, String);

/// Reads the GPT into `found`; returns the sector size it was found with, or `None` (with
/// warnings if a damaged GPT was seen) when there is no usable GPT.
pub(crate) fn read(
    disk: &dyn ReadAt,
    path: &Path,
    found: &mut Found,
) -> Result<Option<u32>, FormatError> {
    let mut problems: Vec<Problem> = Vec::new();
    for ss in [512u32, 4096] {
        let ss64 = u64::from(ss);
        let disk_lbas = disk.size() / ss64;
        if disk_lbas < 3 {
            continue;
        }
        let last_lba = disk_lbas - 1;
        let primary = read_copy(disk, path, ss, 1)?;
        let primary_seen = seen(&primary);
        let backup_lba = match &primary {
            Ok((h, _)) if h.alternate_lba > 1 && h.alternate_lba <= last_lba => h.alternate_lba,
            _ => last_lba,
        };
        let mut backup = read_copy(disk, path, ss, backup_lba)?;
        if backup.is_err() && backup_lba != last_lba {
            backup = read_copy(disk, path, ss, last_lba)?;
        }
        let backup_seen = seen(&backup);
        if !primary_seen && !backup_seen {
            continue;
        }
        let used = match (&primary, &backup) {
            (Ok(p), Ok(b)) => {
                compare(&p.0, &p.1, &b.0, &b.1, found);
                if p.0.alternate_lba != b.0.my_lba {
                    found.warn(
                        p.0.at + 32,
                        "GPT header.alternate_lba",
                        format!(
                            "says the backup is at LBA {}, found at LBA {} (the disk's last is {last_lba})",
                            p.0.alternate_lba, b.0.my_lba
                        ),
                    );
                }
                p.clone()
            }
            (Ok(p), Err((at, field, why))) => {
                found.warn(*at, field, format!("backup GPT unusable: {why}"));
                p.clone()
            }
            (Err((at, field, why)), Ok(b)) => {
                found.warn(
                    *at,
                    field,
                    format!(
                        "primary GPT unusable: {why}; using the backup at LBA {}",
                        b.0.my_lba
                    ),
                );
                b.clone()
            }
            (Err(p), Err(b)) => {
                problems.push(p.clone());
                problems.push(b.clone());
                continue;
            }
        };
        add_slots(
            &used.0,
            &used.1,
            ss,
            primary.is_ok(),
            backup.as_ref().ok(),
            found,
        );
        return Ok(Some(ss));
    }
    for (at, field, why) in problems {
        found.warn(at, field, format!("GPT unusable: {why}"));
    }
    Ok(None)
}

/// Whether a copy has at least its signature (so a damaged GPT is reported, not ignored).
fn seen(copy: &Result<(Header, Vec<u8>), Problem>) -> bool {
    match copy {
        Ok(_) => true,
        Err((_, field, _)) => *field != "GPT header.signature" && *field != "GPT header",
    }
}

/// The header at `lba` and its entry array, both checked.
fn read_copy(
    disk: &dyn ReadAt,
    path: &Path,
    ss: u32,
    lba: u64,
) -> Result<Result<(Header, Vec<u8>), Problem>, FormatError> {
    let ss64 = u64::from(ss);
    let Some(at) = lba.checked_mul(ss64) else {
        return Ok(Err((0, "GPT header", format!("LBA {lba} overflows"))));
    };
    let mut sector = vec![0u8; ss as usize];
    if at.checked_add(ss64).is_none_or(|e| e > disk.size()) {
        return Ok(Err((
            at,
            "GPT header",
            "past the end of the disk".to_string(),
        )));
    }
    disk.read_exact_at(&mut sector, at)
        .map_err(FormatError::io(path, "read a GPT header"))?;
    let h = match parse_header(&sector, at, lba, ss, disk.size()) {
        Ok(h) => h,
        Err(p) => return Ok(Err(p)),
    };
    let len = h.table_bytes();
    let table_at = h.entries_lba.saturating_mul(ss64);
    let mut table = vec![0u8; usize::try_from(len).unwrap_or(0)];
    disk.read_exact_at(&mut table, table_at)
        .map_err(FormatError::io(path, "read a GPT partition-entry array"))?;
    let crc = crc::gpt(&table);
    if crc != h.entries_crc {
        return Ok(Err((
            at + 88,
            "GPT header.partition_entry_array_crc32",
            format!(
                "the entry array at byte {table_at} has CRC32 0x{crc:08x}, the header says 0x{:08x}",
                h.entries_crc
            ),
        )));
    }
    Ok(Ok((h, table)))
}

/// Checks one header sector (signature, size, CRC, its own LBA, the entry array's bounds).
fn parse_header(s: &[u8], at: u64, lba: u64, ss: u32, disk_size: u64) -> Result<Header, Problem> {
    if s.get(..8) != Some(SIGNATURE.as_slice()) {
        return Err((
            at,
            "GPT header.signature",
            "no \"EFI PART\" signature".to_string(),
        ));
    }
    let header_size = le_u32(s, 12);
    if !(92..=ss).contains(&header_size) {
        return Err((
            at + 12,
            "GPT header.header_size",
            format!("{header_size} bytes, expected 92..={ss}"),
        ));
    }
    let stored = le_u32(s, 16);
    let mut copy = s.get(..header_size as usize).unwrap_or_default().to_vec();
    if let Some(f) = copy.get_mut(16..20) {
        f.fill(0);
    }
    let crc = crc::gpt(&copy);
    if crc != stored {
        return Err((
            at + 16,
            "GPT header.header_crc32",
            format!("the header has CRC32 0x{crc:08x}, the field says 0x{stored:08x}"),
        ));
    }
    let mut disk_guid = [0u8; 16];
    if let Some(g) = s.get(56..72) {
        disk_guid.copy_from_slice(g);
    }
    let h = Header {
        at,
        my_lba: le_u64(s, 24),
        alternate_lba: le_u64(s, 32),
        first_usable: le_u64(s, 40),
        last_usable: le_u64(s, 48),
        disk_guid,
        entries_lba: le_u64(s, 72),
        entry_count: le_u32(s, 80),
        entry_size: le_u32(s, 84),
        entries_crc: le_u32(s, 88),
    };
    if h.my_lba != lba {
        return Err((
            at + 24,
            "GPT header.my_lba",
            format!("says LBA {}, read at LBA {lba}", h.my_lba),
        ));
    }
    if h.entry_size < 128 || h.entry_size > MAX_ENTRY_SIZE || !h.entry_size.is_multiple_of(128) {
        return Err((
            at + 84,
            "GPT header.size_of_partition_entry",
            format!(
                "{} bytes, expected a multiple of 128 up to {MAX_ENTRY_SIZE}",
                h.entry_size
            ),
        ));
    }
    if h.table_bytes() > MAX_TABLE_BYTES {
        return Err((
            at + 80,
            "GPT header.number_of_partition_entries",
            format!(
                "{} entries of {} bytes: more than the {MAX_TABLE_BYTES}-byte cap",
                h.entry_count, h.entry_size
            ),
        ));
    }
    let inside = h
        .entries_lba
        .checked_mul(u64::from(ss))
        .and_then(|b| b.checked_add(h.table_bytes()))
        .is_some_and(|end| end <= disk_size);
    if !inside || h.entries_lba == lba {
        return Err((
            at + 72,
            "GPT header.partition_entry_lba",
            format!(
                "the entry array at LBA {} ({} bytes) is not inside the disk ({disk_size} bytes)",
                h.entries_lba,
                h.table_bytes()
            ),
        ));
    }
    Ok(h)
}

/// Warns where the primary and backup disagree.
fn compare(p: &Header, pt: &[u8], b: &Header, bt: &[u8], found: &mut Found) {
    if p.disk_guid != b.disk_guid {
        found.warn(
            b.at + 56,
            "GPT header.disk_guid",
            format!(
                "the backup's disk GUID {} differs from the primary's {}",
                guid(&b.disk_guid),
                guid(&p.disk_guid)
            ),
        );
    }
    if (p.first_usable, p.last_usable) != (b.first_usable, b.last_usable) {
        found.warn(
            b.at + 40,
            "GPT header.first_usable_lba",
            format!(
                "the backup's usable range {}..={} differs from the primary's {}..={}",
                b.first_usable, b.last_usable, p.first_usable, p.last_usable
            ),
        );
    }
    if (p.entry_count, p.entry_size) != (b.entry_count, b.entry_size) {
        found.warn(
            b.at + 80,
            "GPT header.number_of_partition_entries",
            format!(
                "the backup has {} entries of {} bytes, the primary {} of {}",
                b.entry_count, b.entry_size, p.entry_count, p.entry_size
            ),
        );
    }
    let size = p.entry_size as usize;
    let differing: Vec<usize> = pt
        .chunks(size)
        .zip(bt.chunks(size))
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| i)
        .collect();
    if !differing.is_empty() {
        found.warn(
            b.entries_lba.saturating_mul(b.at / b.my_lba.max(1)),
            "GPT partition entry",
            format!(
                "the backup's entries {:?} differ from the primary's (the primary's are listed)",
                differing.iter().take(16).collect::<Vec<_>>()
            ),
        );
    }
}

/// The tables as `Meta` slots and every used entry as a partition.
fn add_slots(
    h: &Header,
    table: &[u8],
    ss: u32,
    primary_used: bool,
    backup: Option<&(Header, Vec<u8>)>,
    found: &mut Found,
) {
    let ss64 = u64::from(ss);
    let table_lbas = h.table_bytes().div_ceil(ss64).max(1);
    found.meta(None, 0, 1, "Safety Table".to_string());
    if primary_used {
        found.meta(None, h.my_lba, 1, "GPT Header".to_string());
        found.meta(
            None,
            h.entries_lba,
            table_lbas,
            "Partition Table".to_string(),
        );
    }
    let (bh, bt) = match backup {
        Some((b, _)) => (b.my_lba, b.entries_lba),
        None if !primary_used => (h.my_lba, h.entries_lba),
        None => (0, 0),
    };
    if bh != 0 {
        found.meta(None, bt, table_lbas, "Backup Partition Table".to_string());
        found.meta(None, bh, 1, "Backup GPT Header".to_string());
    }
    let table_at = h.entries_lba.saturating_mul(ss64);
    for (i, e) in table.chunks(h.entry_size as usize).enumerate() {
        let type_guid = e.get(0..16).unwrap_or_default();
        if type_guid.iter().all(|&b| b == 0) {
            continue;
        }
        let first = le_u64(e, 32);
        let last = le_u64(e, 40);
        let at = table_at.saturating_add((i as u64).saturating_mul(u64::from(h.entry_size)));
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        if last < first {
            found.warn(
                at + 40,
                "GPT partition entry.ending_lba",
                format!("entry {index}: ends at LBA {last} before its start {first}: not listed"),
            );
            continue;
        }
        let Some(length) = (last - first).checked_add(1) else {
            found.warn(
                at + 40,
                "GPT partition entry.ending_lba",
                format!("entry {index}: LBA {first}..={last} has no u64 length: not listed"),
            );
            continue;
        };
        if first < h.first_usable || last > h.last_usable {
            found.warn(
                at + 32,
                "GPT partition entry.starting_lba",
                format!(
                    "entry {index} (LBA {first}..={last}) is outside the usable range {}..={}",
                    h.first_usable, h.last_usable
                ),
            );
        }
        let t = guid(type_guid);
        let name = utf16_name(e.get(56..128).unwrap_or_default());
        let type_name = type_name(&t);
        found.slots.push(Slot {
            kind: SlotKind::Partition,
            table: None,
            entry: Some(index),
            start_sector: first,
            end_sector: last,
            length_sectors: length,
            description: if name.is_empty() {
                type_name.to_string()
            } else {
                name.clone()
            },
            partition: Some(PartitionEntry {
                type_code: t,
                type_name: type_name.to_string(),
                name: Some(name),
                unique_guid: Some(guid(e.get(16..32).unwrap_or_default())),
                attributes: Some(le_u64(e, 48)),
                bootable: None,
            }),
        });
    }
}

/// The name field: UTF-16LE up to the first NUL.
fn utf16_name(b: &[u8]) -> String {
    let units: Vec<u16> = crate::bytes::utf16le_units(b)
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// A GUID in its text form (the first three fields little-endian), upper case as sgdisk.
pub(crate) fn guid(b: &[u8]) -> String {
    crate::bytes::guid_text(b).to_ascii_uppercase()
}

/// The common name of a partition type GUID.
pub(crate) fn type_name(guid: &str) -> &'static str {
    match guid {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI System",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" => "Microsoft reserved",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC" => "Windows recovery",
        "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3" => "Windows LDM metadata",
        "AF9B60A0-1431-4F62-BC68-3311714A69AD" => "Windows LDM data",
        "E75CAF8F-F680-4CEE-AFA3-B001E56EFC2D" => "Windows Storage Spaces",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" => "Linux LVM",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" => "Linux RAID",
        "933AC7E1-2EB4-4F13-B844-0E14E2AEF915" => "Linux /home",
        "3B8F8425-20E0-4F3B-907F-1A25A76F98E8" => "Linux /srv",
        "CA7D7CCB-63ED-4C53-861C-1742536059CC" => "Linux LUKS",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux x86-64 root (/)",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "Linux extended boot",
        "6A898CC3-1DD2-11B2-99A6-080020736631" => "Solaris /usr or Apple ZFS",
        "48465300-0000-11AA-AA11-00306543ECAC" => "Apple HFS+",
        "7C3457EF-0000-11AA-AA11-00306543ECAC" => "Apple APFS",
        "516E7CB4-6ECF-11D6-8FF8-00022D09712B" => "FreeBSD UFS",
        "83BD6B9D-7F41-11DC-BE0B-001560B84F0F" => "FreeBSD boot",
        "516E7CB5-6ECF-11D6-8FF8-00022D09712B" => "FreeBSD swap",
        "516E7CBA-6ECF-11D6-8FF8-00022D09712B" => "FreeBSD ZFS",
        _ => "Unknown",
    }
}
