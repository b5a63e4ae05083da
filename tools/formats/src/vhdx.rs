//! VHDX (Hyper-V) images, per Microsoft's MS-VHDX specification.
//!
//! Layout (MS-VHDX §2): the file type identifier `vhdxfile` at 0; two headers (`head`,
//! CRC-32C) at 64 KiB and 128 KiB, the valid one with the higher sequence number wins;
//! two region tables (`regi`, CRC-32C) at 192 KiB and 256 KiB locating the BAT and the
//! metadata region; metadata items (file parameters, virtual disk size, sector sizes,
//! page 83 data, parent locator); the BAT, whose payload block entries are interleaved
//! with a sector bitmap entry after every `chunk ratio` payload entries.
//!
//! A non-empty log (the header's LogGuid is not zero) is replayed **in memory only**:
//! never write to evidence. The replayed 4 KiB sectors form an overlay consulted by every
//! later read of the file (region tables, metadata, BAT, payload). Differencing images
//! read unallocated sectors from the parent named by the parent locator, whose
//! `parent_linkage` must match the parent's DataWriteGuid.

use crate::bytes::{le_u16 as u16_at, le_u32 as u32_at, le_u64 as u64_at};
use crate::{FormatError, Image, ImageInfo};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vestige_evidence::read_at::ReadAt;

const KIB: u64 = 1024;
const MIB: u64 = 1 << 20;
/// The two header copies (MS-VHDX §2.2.2).
const HEADER_OFFSETS: [u64; 2] = [64 * KIB, 128 * KIB];
const HEADER_BYTES: usize = 4096;
/// The two region table copies (§2.2.3).
const REGION_OFFSETS: [u64; 2] = [192 * KIB, 256 * KIB];
const REGION_BYTES: usize = 64 * 1024;
const METADATA_TABLE_BYTES: usize = 64 * 1024;
/// Region and metadata tables hold at most this many entries (§2.2.3, §2.6.1).
const MAX_TABLE_ENTRIES: u32 = 2047;
/// A metadata item is at most 1 MiB (§2.6.1.2).
const MAX_ITEM_BYTES: u32 = 1 << 20;
/// The largest virtual disk the format allows (§2.6.2.2).
const MAX_VIRTUAL_BYTES: u64 = 64 << 40;
/// Log sectors are 4 KiB (§2.3).
const LOG_SECTOR: u64 = 4096;
/// Logs longer than this are refused (real ones are 1 MiB; the log is read whole).
const MAX_LOG_BYTES: u64 = 64 * MIB;
/// CRC bytes the log search may spend before calling the log hostile.
const LOG_CRC_BUDGET: u64 = 1 << 30;
/// Sectors the replay overlay may hold (a zero descriptor can cover many).
const MAX_OVERLAY_SECTORS: usize = 1 << 20;
/// Log descriptors may write at most this far into the file (far past any real one).
const MAX_REPLAY_END: u64 = 1 << 50;
/// BAT entries per cached page (64 KiB).
const BAT_PAGE_ENTRIES: u64 = 8192;
/// Cached BAT pages (64 × 64 KiB = 4 MiB).
const BAT_CACHE_PAGES: usize = 64;
/// Cached 1 MiB sector bitmaps.
const BITMAP_CACHE_BLOCKS: usize = 4;
/// Sector bitmap blocks are 1 MiB and cover 2^23 sectors.
const BITMAP_BYTES: u64 = MIB;

/// Builds a GUID's on-disk bytes (first three fields little-endian).
const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5],
        d4[6], d4[7],
    ]
}

const BAT_REGION: [u8; 16] = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
const METADATA_REGION: [u8; 16] = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);
const FILE_PARAMETERS: [u8; 16] = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const PAGE83_DATA: [u8; 16] = guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
const LOGICAL_SECTOR_SIZE: [u8; 16] = guid(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
const PHYSICAL_SECTOR_SIZE: [u8; 16] = guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);
const PARENT_LOCATOR: [u8; 16] = guid(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);
const VHDX_PARENT_LOCATOR_TYPE: [u8; 16] = guid(
    0xB04A_EFB7,
    0xD19E,
    0x4A81,
    [0xB7, 0x89, 0x25, 0xB8, 0xE9, 0x44, 0x59, 0x13],
);

/// BAT payload block states (§2.5.1.1).
const PAYLOAD_NOT_PRESENT: u64 = 0;
const PAYLOAD_UNDEFINED: u64 = 1;
const PAYLOAD_ZERO: u64 = 2;
const PAYLOAD_UNMAPPED: u64 = 3;
const PAYLOAD_FULLY_PRESENT: u64 = 6;
const PAYLOAD_PARTIALLY_PRESENT: u64 = 7;
/// Sector bitmap block state "present" (§2.5.1.2).
const SB_PRESENT: u64 = 6;

// ---------------------------------------------------------------------------------------
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as MS-VHDX §2.2.2 requires.

/// CRC-32C of `bytes`.
#[cfg(test)]
fn crc32c(bytes: &[u8]) -> u32 {
    !crc32c_update(!0, bytes)
}

use crate::crc32c::crc32c as crc32c_update;

/// CRC-32C of `bytes` with its 4-byte checksum field at offset 4 taken as zero.
fn crc32c_zeroed_field(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    crc = crc32c_update(crc, bytes.get(..4).unwrap_or(&[]));
    crc = crc32c_update(crc, &[0; 4]);
    crc = crc32c_update(crc, bytes.get(8..).unwrap_or(&[]));
    !crc
}

// ---------------------------------------------------------------------------------------
// Field readers (the integer ones are in `crate::bytes`): out-of-range reads give 0.
fn guid_at(b: &[u8], at: usize) -> [u8; 16] {
    b.get(at..at.saturating_add(16))
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; 16])
}

fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

// ---------------------------------------------------------------------------------------
// The file with the replayed log laid over it.

/// One 4 KiB sector written by the replayed log.
#[derive(Debug, Clone)]
enum LogSector {
    Zero,
    Data(Arc<[u8]>),
}

/// The image file as the log says it is: the bytes on disk with the replayed sectors
/// laid over them (in memory only).
#[derive(Debug)]
struct Source {
    path: PathBuf,
    file: File,
    /// Bytes of the file on disk.
    file_len: u64,
    /// Bytes readable: the file, or further if the log wrote past its end.
    len: u64,
    /// Replayed log sectors by (4 KiB-aligned) file offset.
    overlay: BTreeMap<u64, LogSector>,
}

impl Source {
    /// Reads `buf.len()` bytes at `offset`; `field` names what is read, for the error.
    fn read_exact(
        &self,
        buf: &mut [u8],
        offset: u64,
        field: &'static str,
    ) -> Result<(), FormatError> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                FormatError::invalid(
                    &self.path,
                    offset,
                    field,
                    format!(
                        "{} bytes at {offset} lie past the end of the file ({} bytes)",
                        buf.len(),
                        self.len
                    ),
                )
            })?;
        // From the disk: what the file holds; zeros beyond (only the log writes there).
        let on_disk = usize_of(self.file_len.saturating_sub(offset)).min(buf.len());
        let (disk_part, beyond) = buf.split_at_mut(on_disk);
        if !disk_part.is_empty() {
            self.file
                .read_exact_at(disk_part, offset)
                .map_err(|source| FormatError::Io {
                    file: self.path.clone(),
                    what: format!("read {field} ({} bytes at byte {offset})", disk_part.len()),
                    source,
                })?;
        }
        beyond.fill(0);
        if !self.overlay.is_empty() {
            let first = offset - offset % LOG_SECTOR;
            for (&at, sector) in self.overlay.range(first..end) {
                let lo = at.max(offset);
                let hi = (at + LOG_SECTOR).min(end);
                let dst = buf.get_mut(usize_of(lo - offset)..usize_of(hi - offset));
                let Some(dst) = dst else { continue };
                match sector {
                    LogSector::Zero => dst.fill(0),
                    LogSector::Data(data) => {
                        let src = data.get(usize_of(lo - at)..usize_of(hi - at));
                        if let Some(src) = src {
                            dst.copy_from_slice(src);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Headers (§2.2.2).

#[derive(Debug, Clone)]
struct Header {
    offset: u64,
    sequence: u64,
    file_write_guid: [u8; 16],
    data_write_guid: [u8; 16],
    log_guid: [u8; 16],
    log_version: u16,
    version: u16,
    log_length: u32,
    log_offset: u64,
}

/// Parses one header copy, or says why it is not valid.
fn parse_header(b: &[u8], offset: u64) -> Result<Header, String> {
    if b.len() < HEADER_BYTES {
        return Err(format!(
            "only {} of {HEADER_BYTES} bytes in the file",
            b.len()
        ));
    }
    if b.get(..4) != Some(b"head") {
        return Err(format!(
            "signature {:02x?}, expected \"head\"",
            b.get(..4).unwrap_or(&[])
        ));
    }
    let stored = u32_at(b, 4);
    let computed = crc32c_zeroed_field(b.get(..HEADER_BYTES).unwrap_or(&[]));
    if stored != computed {
        return Err(format!(
            "checksum {stored:#010x}, computed CRC-32C {computed:#010x}"
        ));
    }
    Ok(Header {
        offset,
        sequence: u64_at(b, 8),
        file_write_guid: guid_at(b, 16),
        data_write_guid: guid_at(b, 32),
        log_guid: guid_at(b, 48),
        log_version: u16_at(b, 64),
        version: u16_at(b, 66),
        log_length: u32_at(b, 68),
        log_offset: u64_at(b, 72),
    })
}

/// Reads both header copies of `file` and returns the current one (§2.2.2.1).
fn read_active_header(path: &Path, file: &File, file_len: u64) -> Result<Header, FormatError> {
    let mut reasons = Vec::new();
    let mut best: Option<Header> = None;
    for &offset in &HEADER_OFFSETS {
        let mut buf = vec![0u8; HEADER_BYTES];
        let avail = usize_of(file_len.saturating_sub(offset)).min(HEADER_BYTES);
        let got = buf.get_mut(..avail).unwrap_or(&mut []);
        file.read_exact_at(got, offset)
            .map_err(|source| FormatError::Io {
                file: path.to_path_buf(),
                what: format!("read the header at byte {offset}"),
                source,
            })?;
        buf.truncate(avail);
        match parse_header(&buf, offset) {
            Ok(h) => {
                if best.as_ref().is_none_or(|b| h.sequence > b.sequence) {
                    best = Some(h);
                }
            }
            Err(r) => reasons.push(format!("at {offset}: {r}")),
        }
    }
    best.ok_or_else(|| {
        FormatError::invalid(
            path,
            HEADER_OFFSETS[0],
            "vhdx header.checksum",
            format!("neither header is valid ({})", reasons.join("; ")),
        )
    })
}

// ---------------------------------------------------------------------------------------
// The log (§2.3): found and replayed in memory.

/// A log entry that passed every check (its descriptors are parsed again when replayed).
#[derive(Debug, Clone, Copy)]
struct LogEntry {
    /// Offset in the log.
    pos: u64,
    length: u64,
    tail: u64,
    sequence: u64,
    descriptors: u64,
    /// Sectors of header and descriptors.
    descriptor_sectors: u64,
}

/// `len` bytes of the circular log from `pos`, wrapping at its end.
fn log_bytes(log: &[u8], pos: u64, len: u64) -> Vec<u8> {
    let start = usize_of(pos);
    let len = usize_of(len).min(log.len());
    let first = log.get(start..).unwrap_or(&[]);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(first.get(..len.min(first.len())).unwrap_or(first));
    let rest = len - out.len();
    out.extend_from_slice(log.get(..rest).unwrap_or(&[]));
    out
}

/// Checks the entry at `pos` of `log` (§2.3.1); `None` if it is not a valid entry.
fn check_log_entry(
    log: &[u8],
    pos: u64,
    log_guid: &[u8; 16],
    budget: &mut u64,
) -> Option<LogEntry> {
    let log_len = log.len() as u64;
    let head = log.get(usize_of(pos)..usize_of(pos).saturating_add(64))?;
    if head.get(..4) != Some(b"loge") {
        return None;
    }
    let length = u64::from(u32_at(head, 8));
    let tail = u64::from(u32_at(head, 12));
    let sequence = u64_at(head, 16);
    let descriptors = u64::from(u32_at(head, 24));
    if length == 0 || !length.is_multiple_of(LOG_SECTOR) || length > log_len {
        return None;
    }
    if !tail.is_multiple_of(LOG_SECTOR) || tail >= log_len || guid_at(head, 32) != *log_guid {
        return None;
    }
    let descriptor_sectors = descriptors
        .checked_mul(32)?
        .checked_add(64)?
        .div_ceil(LOG_SECTOR);
    if descriptor_sectors.checked_mul(LOG_SECTOR)? > length {
        return None;
    }
    *budget = budget.checked_sub(length)?;
    let entry = log_bytes(log, pos, length);
    if crc32c_zeroed_field(&entry) != u32_at(&entry, 4) {
        return None;
    }
    // Descriptors: each names this entry's sequence; data ones have a data sector.
    let mut data_sectors = 0u64;
    for i in 0..descriptors {
        let at = usize_of(64 + i * 32);
        let d = entry.get(at..at.saturating_add(32))?;
        let d_seq = u64_at(d, 24);
        if d_seq != sequence {
            return None;
        }
        match d.get(..4)? {
            b"zero" => {
                if !u64_at(d, 8).is_multiple_of(LOG_SECTOR)
                    || !u64_at(d, 16).is_multiple_of(LOG_SECTOR)
                {
                    return None;
                }
            }
            b"desc" => {
                if !u64_at(d, 16).is_multiple_of(LOG_SECTOR) {
                    return None;
                }
                let s_at = usize_of((descriptor_sectors + data_sectors) * LOG_SECTOR);
                let s = entry.get(s_at..s_at.saturating_add(4096))?;
                let high = u64::from(u32_at(s, 4));
                let low = u64::from(u32_at(s, 4092));
                if s.get(..4)? != b"data" || (high << 32 | low) != sequence {
                    return None;
                }
                data_sectors += 1;
            }
            _ => return None,
        }
    }
    if (descriptor_sectors + data_sectors) * LOG_SECTOR > length {
        return None;
    }
    Some(LogEntry {
        pos,
        length,
        tail,
        sequence,
        descriptors,
        descriptor_sectors,
    })
}

/// Applies one (checked) entry's descriptors to `overlay`.
fn apply_log_entry(
    log: &[u8],
    e: &LogEntry,
    overlay: &mut BTreeMap<u64, LogSector>,
    path: &Path,
    log_offset: u64,
) -> Result<(), FormatError> {
    let entry = log_bytes(log, e.pos, e.length);
    let mut data_sectors = 0u64;
    for i in 0..e.descriptors {
        let at = usize_of(64 + i * 32);
        let d = entry.get(at..at.saturating_add(32)).unwrap_or(&[]);
        let file_offset = u64_at(d, 16);
        let span = if d.get(..4) == Some(b"zero") {
            u64_at(d, 8)
        } else {
            LOG_SECTOR
        };
        if file_offset
            .checked_add(span)
            .is_none_or(|end| end > MAX_REPLAY_END)
        {
            return Err(FormatError::invalid(
                path,
                log_offset + e.pos + 64 + i * 32 + 16,
                "vhdx log descriptor.file_offset",
                format!(
                    "{span} bytes at byte {file_offset}: past {MAX_REPLAY_END}, the end of \
                     any file this reader replays into"
                ),
            ));
        }
        if d.get(..4) == Some(b"zero") {
            let zero_len = span;
            let sectors = zero_len / LOG_SECTOR;
            if overlay.len() as u64 + sectors > MAX_OVERLAY_SECTORS as u64 {
                return Err(FormatError::Unsupported {
                    file: path.to_path_buf(),
                    what: format!(
                        "a log zero descriptor of {zero_len} bytes (entry at byte {}; more \
                         than {MAX_OVERLAY_SECTORS} replayed sectors)",
                        log_offset + e.pos
                    ),
                });
            }
            for k in 0..sectors {
                if let Some(o) = file_offset.checked_add(k * LOG_SECTOR) {
                    overlay.insert(o, LogSector::Zero);
                }
            }
        } else {
            let s_at = usize_of((e.descriptor_sectors + data_sectors) * LOG_SECTOR);
            data_sectors += 1;
            let s = entry.get(s_at..s_at.saturating_add(4096)).unwrap_or(&[]);
            // The sector: 8 leading bytes from the descriptor, 4084 from the data
            // sector, 4 trailing bytes from the descriptor (§2.3.1.3, §2.3.1.4).
            let mut sector = Vec::with_capacity(4096);
            sector.extend_from_slice(&u64_at(d, 8).to_le_bytes());
            sector.extend_from_slice(s.get(8..4092).unwrap_or(&[]));
            sector.extend_from_slice(&u32_at(d, 4).to_le_bytes());
            if overlay.len() >= MAX_OVERLAY_SECTORS {
                return Err(FormatError::Unsupported {
                    file: path.to_path_buf(),
                    what: format!("a log of more than {MAX_OVERLAY_SECTORS} sectors"),
                });
            }
            overlay.insert(file_offset, LogSector::Data(sector.into()));
        }
    }
    Ok(())
}

/// Finds the active log sequence (§2.3.3) and replays it into an overlay.
fn replay_log(
    path: &Path,
    file: &File,
    file_len: u64,
    h: &Header,
) -> Result<(BTreeMap<u64, LogSector>, Vec<String>), FormatError> {
    let log_guid = crate::bytes::guid_text(&h.log_guid);
    let log_len = u64::from(h.log_length);
    let field = "vhdx header.log_offset";
    if log_len == 0
        || !log_len.is_multiple_of(MIB)
        || h.log_offset < MIB
        || !h.log_offset.is_multiple_of(MIB)
    {
        return Err(FormatError::invalid(
            path,
            h.offset + 68,
            "vhdx header.log_length",
            format!(
                "log of {log_len} bytes at byte {} (LogGuid {log_guid}): expected a non-zero \
                 multiple of 1 MiB at a 1 MiB-aligned offset past the first MiB",
                h.log_offset
            ),
        ));
    }
    if log_len > MAX_LOG_BYTES {
        return Err(FormatError::Unsupported {
            file: path.to_path_buf(),
            what: format!(
                "replaying a log of {log_len} bytes (LogGuid {log_guid}; at most \
                 {MAX_LOG_BYTES})"
            ),
        });
    }
    let end = h.log_offset.checked_add(log_len).filter(|&e| e <= file_len);
    if end.is_none() {
        return Err(FormatError::invalid(
            path,
            h.offset + 72,
            field,
            format!(
                "log of {log_len} bytes at byte {} ends past the end of the file ({file_len} bytes)",
                h.log_offset
            ),
        ));
    }
    let mut log = vec![0u8; usize_of(log_len)];
    file.read_exact_at(&mut log, h.log_offset)
        .map_err(|source| FormatError::Io {
            file: path.to_path_buf(),
            what: format!("read the log at byte {}", h.log_offset),
            source,
        })?;
    let mut budget = LOG_CRC_BUDGET;
    let mut entries: BTreeMap<u64, LogEntry> = BTreeMap::new();
    for s in 0..log_len / LOG_SECTOR {
        if let Some(e) = check_log_entry(&log, s * LOG_SECTOR, &h.log_guid, &mut budget) {
            entries.insert(e.pos, e);
        }
        if budget == 0 {
            break;
        }
    }
    // Sequences: chains of entries each following the previous in the log with the next
    // sequence number. The active one has the highest head sequence number and contains
    // the entry its head names as tail; it is replayed from that tail.
    let successors: std::collections::HashSet<u64> = entries
        .values()
        .filter_map(|e| {
            let next = (e.pos + e.length) % log_len;
            entries
                .get(&next)
                .filter(|n| Some(n.sequence) == e.sequence.checked_add(1))
                .map(|n| n.pos)
        })
        .collect();
    let mut steps = 0u64;
    let max_steps = 1u64 << 22;
    let mut best: Option<(u64, Vec<LogEntry>)> = None;
    for start in entries.values().filter(|e| !successors.contains(&e.pos)) {
        let mut chain = vec![*start];
        let mut cur = *start;
        loop {
            steps += 1;
            if steps > max_steps || chain.len() as u64 > log_len / LOG_SECTOR {
                break;
            }
            let next = (cur.pos + cur.length) % log_len;
            match entries.get(&next) {
                Some(n) if Some(n.sequence) == cur.sequence.checked_add(1) => {
                    chain.push(*n);
                    cur = *n;
                }
                _ => break,
            }
        }
        if let Some(i) = chain.iter().position(|e| e.pos == cur.tail) {
            if best.as_ref().is_none_or(|(seq, _)| cur.sequence > *seq) {
                best = Some((cur.sequence, chain.split_off(i)));
            }
        }
    }
    let Some((head_seq, sequence)) = best else {
        return Err(FormatError::invalid(
            path,
            h.log_offset,
            "vhdx log",
            format!(
                "LogGuid {log_guid} says the log must be replayed, but its {} bytes hold no \
                 complete sequence of valid entries ({} valid entries)",
                log_len,
                entries.len()
            ),
        ));
    };
    let mut overlay = BTreeMap::new();
    for e in &sequence {
        apply_log_entry(&log, e, &mut overlay, path, h.log_offset)?;
    }
    let note = format!(
        "log {log_guid} replayed in memory (the file is unchanged): {} entries up to \
         sequence {head_seq}, {} sectors",
        sequence.len(),
        overlay.len()
    );
    Ok((overlay, vec![note]))
}

// ---------------------------------------------------------------------------------------
// Region table (§2.2.3) and metadata (§2.6).

#[derive(Debug, Clone, Copy)]
struct Region {
    offset: u64,
    length: u64,
}

/// Reads the region tables and returns the (BAT, metadata) regions.
fn read_regions(src: &Source) -> Result<(Region, Region), FormatError> {
    let mut reasons = Vec::new();
    let mut table = None;
    for &offset in &REGION_OFFSETS {
        let mut buf = vec![0u8; REGION_BYTES];
        if let Err(e) = src.read_exact(&mut buf, offset, "vhdx region table") {
            reasons.push(e.to_string());
            continue;
        }
        if buf.get(..4) != Some(b"regi") {
            reasons.push(format!(
                "at {offset}: signature {:02x?}, expected \"regi\"",
                buf.get(..4).unwrap_or(&[])
            ));
            continue;
        }
        let (stored, computed) = (u32_at(&buf, 4), crc32c_zeroed_field(&buf));
        if stored != computed {
            reasons.push(format!(
                "at {offset}: checksum {stored:#010x}, computed {computed:#010x}"
            ));
            continue;
        }
        table = Some((offset, buf));
        break;
    }
    let Some((table_at, buf)) = table else {
        return Err(FormatError::invalid(
            &src.path,
            REGION_OFFSETS[0],
            "vhdx region table.checksum",
            format!("neither region table is valid ({})", reasons.join("; ")),
        ));
    };
    let count = u32_at(&buf, 8);
    if count > MAX_TABLE_ENTRIES {
        return Err(FormatError::invalid(
            &src.path,
            table_at + 8,
            "vhdx region table.entry_count",
            format!("{count} entries, at most {MAX_TABLE_ENTRIES}"),
        ));
    }
    let (mut bat, mut meta) = (None, None);
    for i in 0..usize_of(u64::from(count)) {
        let at = 16 + i * 32;
        let entry_at = table_at + at as u64;
        let id = guid_at(&buf, at);
        let offset = u64_at(&buf, at + 16);
        let length = u64::from(u32_at(&buf, at + 24));
        let required = u32_at(&buf, at + 28) & 1 != 0;
        let region = Region { offset, length };
        let slot = if id == BAT_REGION {
            &mut bat
        } else if id == METADATA_REGION {
            &mut meta
        } else {
            if required {
                return Err(FormatError::Unsupported {
                    file: src.path.clone(),
                    what: format!(
                        "required region {} (region table entry at byte {entry_at})",
                        crate::bytes::guid_text(&id)
                    ),
                });
            }
            continue;
        };
        let end = offset.checked_add(length);
        if offset < MIB
            || !offset.is_multiple_of(MIB)
            || length == 0
            || !length.is_multiple_of(MIB)
            || end.is_none_or(|e| e > src.len)
        {
            return Err(FormatError::invalid(
                &src.path,
                entry_at + 16,
                "vhdx region table entry.file_offset",
                format!(
                    "region {} of {length} bytes at byte {offset}: expected 1 MiB-aligned, \
                     non-empty, past the first MiB (headers) and inside the file ({} bytes)",
                    crate::bytes::guid_text(&id),
                    src.len
                ),
            ));
        }
        if slot.is_some() {
            return Err(FormatError::invalid(
                &src.path,
                entry_at,
                "vhdx region table entry.guid",
                format!("region {} listed twice", crate::bytes::guid_text(&id)),
            ));
        }
        *slot = Some(region);
    }
    let missing = |what: &str| {
        FormatError::invalid(
            &src.path,
            table_at + 8,
            "vhdx region table.entry_count",
            format!("no {what} region among {count} entries"),
        )
    };
    let bat = bat.ok_or_else(|| missing("BAT"))?;
    let meta = meta.ok_or_else(|| missing("metadata"))?;
    let overlap = bat.offset < meta.offset + meta.length && meta.offset < bat.offset + bat.length;
    if overlap {
        return Err(FormatError::invalid(
            &src.path,
            table_at + 16,
            "vhdx region table entry.file_offset",
            format!(
                "BAT (byte {}, {} bytes) overlaps metadata (byte {}, {} bytes)",
                bat.offset, bat.length, meta.offset, meta.length
            ),
        ));
    }
    Ok((bat, meta))
}

/// What the metadata region says.
#[derive(Debug, Default)]
struct Metadata {
    block_size: u64,
    leave_blocks_allocated: bool,
    has_parent: bool,
    virtual_size: u64,
    logical_sector: u64,
    physical_sector: u64,
    page83: Option<[u8; 16]>,
    /// Key/value pairs of a VHDX parent locator.
    parent_locator: Vec<(String, String)>,
}

/// Decodes UTF-16LE (lossily: evidence may hold unpaired surrogates).
fn utf16le(b: &[u8]) -> String {
    String::from_utf16_lossy(&crate::bytes::utf16le_units(b).collect::<Vec<_>>())
}

fn read_metadata(src: &Source, region: Region) -> Result<Metadata, FormatError> {
    let path = &src.path;
    let mut table = vec![0u8; METADATA_TABLE_BYTES];
    src.read_exact(&mut table, region.offset, "vhdx metadata table")?;
    if table.get(..8) != Some(b"metadata") {
        return Err(FormatError::invalid(
            path,
            region.offset,
            "vhdx metadata table.signature",
            format!(
                "{:02x?}, expected \"metadata\"",
                table.get(..8).unwrap_or(&[])
            ),
        ));
    }
    let count = u16_at(&table, 10);
    if u32::from(count) > MAX_TABLE_ENTRIES {
        return Err(FormatError::invalid(
            path,
            region.offset + 10,
            "vhdx metadata table.entry_count",
            format!("{count} entries, at most {MAX_TABLE_ENTRIES}"),
        ));
    }
    let mut md = Metadata::default();
    let mut seen: Vec<[u8; 16]> = Vec::new();
    let (mut got_params, mut got_size, mut got_logical, mut got_physical) =
        (false, false, false, false);
    for i in 0..usize::from(count) {
        let at = 32 + i * 32;
        let entry_at = region.offset + at as u64;
        let id = guid_at(&table, at);
        let item_offset = u32_at(&table, at + 16);
        let item_len = u32_at(&table, at + 20);
        let flags = u32_at(&table, at + 24);
        let required = flags & 4 != 0;
        if seen.contains(&id) {
            return Err(FormatError::invalid(
                path,
                entry_at,
                "vhdx metadata entry.item_id",
                format!("item {} listed twice", crate::bytes::guid_text(&id)),
            ));
        }
        seen.push(id);
        let known = [
            FILE_PARAMETERS,
            VIRTUAL_DISK_SIZE,
            PAGE83_DATA,
            LOGICAL_SECTOR_SIZE,
            PHYSICAL_SECTOR_SIZE,
            PARENT_LOCATOR,
        ];
        if !known.contains(&id) {
            if required {
                return Err(FormatError::Unsupported {
                    file: path.clone(),
                    what: format!(
                        "required metadata item {} (entry at byte {entry_at})",
                        crate::bytes::guid_text(&id)
                    ),
                });
            }
            continue;
        }
        let in_region = u64::from(item_offset) >= METADATA_TABLE_BYTES as u64
            && u64::from(item_offset) + u64::from(item_len) <= region.length
            && item_len <= MAX_ITEM_BYTES;
        if !in_region {
            return Err(FormatError::invalid(
                path,
                entry_at + 16,
                "vhdx metadata entry.offset",
                format!(
                    "item {} of {item_len} bytes at offset {item_offset}: expected past the \
                     64 KiB table, inside the {}-byte region, at most {MAX_ITEM_BYTES} bytes",
                    crate::bytes::guid_text(&id),
                    region.length
                ),
            ));
        }
        let item_at = region.offset + u64::from(item_offset);
        let mut item = vec![0u8; usize_of(u64::from(item_len))];
        src.read_exact(&mut item, item_at, "vhdx metadata item")?;
        let need = |n: u32, field: &'static str| -> Result<(), FormatError> {
            if item_len < n {
                Err(FormatError::invalid(
                    path,
                    entry_at + 20,
                    field,
                    format!("{item_len} bytes, expected {n}"),
                ))
            } else {
                Ok(())
            }
        };
        if id == FILE_PARAMETERS {
            need(8, "vhdx metadata.file_parameters length")?;
            md.block_size = u64::from(u32_at(&item, 0));
            let f = u32_at(&item, 4);
            md.leave_blocks_allocated = f & 1 != 0;
            md.has_parent = f & 2 != 0;
            if !md.block_size.is_power_of_two() || !(MIB..=256 * MIB).contains(&md.block_size) {
                return Err(FormatError::invalid(
                    path,
                    item_at,
                    "vhdx metadata.file_parameters.block_size",
                    format!(
                        "{} bytes, expected a power of two from 1 MiB to 256 MiB",
                        md.block_size
                    ),
                ));
            }
            got_params = true;
        } else if id == VIRTUAL_DISK_SIZE {
            need(8, "vhdx metadata.virtual_disk_size length")?;
            md.virtual_size = u64_at(&item, 0);
            got_size = true;
        } else if id == LOGICAL_SECTOR_SIZE || id == PHYSICAL_SECTOR_SIZE {
            need(4, "vhdx metadata.sector_size length")?;
            let v = u64::from(u32_at(&item, 0));
            let (field, slot, got) = if id == LOGICAL_SECTOR_SIZE {
                (
                    "vhdx metadata.logical_sector_size",
                    &mut md.logical_sector,
                    &mut got_logical,
                )
            } else {
                (
                    "vhdx metadata.physical_sector_size",
                    &mut md.physical_sector,
                    &mut got_physical,
                )
            };
            if v != 512 && v != 4096 {
                return Err(FormatError::invalid(
                    path,
                    item_at,
                    field,
                    format!("{v}, expected 512 or 4096"),
                ));
            }
            *slot = v;
            *got = true;
        } else if id == PAGE83_DATA {
            need(16, "vhdx metadata.page83_data length")?;
            md.page83 = Some(guid_at(&item, 0));
        } else if id == PARENT_LOCATOR {
            md.parent_locator = parse_parent_locator(path, &item, item_at)?;
        }
    }
    let missing = [
        (got_params, "file parameters"),
        (got_size, "virtual disk size"),
        (got_logical, "logical sector size"),
    ];
    for (got, what) in missing {
        if !got {
            return Err(FormatError::invalid(
                path,
                region.offset + 10,
                "vhdx metadata table.entry_count",
                format!("no {what} item among {count} entries"),
            ));
        }
    }
    if !got_physical {
        md.physical_sector = md.logical_sector;
    }
    if md.virtual_size > MAX_VIRTUAL_BYTES || !md.virtual_size.is_multiple_of(md.logical_sector) {
        return Err(FormatError::invalid(
            path,
            region.offset,
            "vhdx metadata.virtual_disk_size",
            format!(
                "{} bytes, expected a multiple of the {}-byte logical sector up to 64 TiB",
                md.virtual_size, md.logical_sector
            ),
        ));
    }
    Ok(md)
}

/// The key/value pairs of a parent locator item (§2.6.2.6).
fn parse_parent_locator(
    path: &Path,
    item: &[u8],
    item_at: u64,
) -> Result<Vec<(String, String)>, FormatError> {
    let kind = guid_at(item, 0);
    if item.len() < 20 || kind != VHDX_PARENT_LOCATOR_TYPE {
        return Err(FormatError::Unsupported {
            file: path.to_path_buf(),
            what: format!(
                "parent locator type {} at byte {item_at} (only the VHDX locator {})",
                crate::bytes::guid_text(&kind),
                crate::bytes::guid_text(&VHDX_PARENT_LOCATOR_TYPE)
            ),
        });
    }
    let count = usize::from(u16_at(item, 18));
    if 20 + count * 12 > item.len() {
        return Err(FormatError::invalid(
            path,
            item_at + 18,
            "vhdx parent locator.key_value_count",
            format!("{count} entries do not fit in the {}-byte item", item.len()),
        ));
    }
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let at = 20 + i * 12;
        let (ko, vo) = (
            usize_of(u64::from(u32_at(item, at))),
            usize_of(u64::from(u32_at(item, at + 4))),
        );
        let (kl, vl) = (
            usize::from(u16_at(item, at + 8)),
            usize::from(u16_at(item, at + 10)),
        );
        let key = item.get(ko..ko.saturating_add(kl));
        let value = item.get(vo..vo.saturating_add(vl));
        let (Some(key), Some(value)) = (key, value) else {
            return Err(FormatError::invalid(
                path,
                item_at + at as u64,
                "vhdx parent locator entry.key_offset",
                format!(
                    "key {ko}+{kl} or value {vo}+{vl} outside the {}-byte item",
                    item.len()
                ),
            ));
        };
        pairs.push((utf16le(key), utf16le(value)));
    }
    Ok(pairs)
}

// ---------------------------------------------------------------------------------------
// The reader.

/// A VHDX image (fixed, dynamic or differencing), read-only, with any pending log
/// replayed in memory.
pub struct Vhdx {
    src: Source,
    header: Header,
    meta: Metadata,
    bat: Region,
    /// Payload blocks plus sector bitmap entries.
    bat_entries: u64,
    chunk_ratio: u64,
    parent: Option<Box<dyn Image>>,
    notes: Vec<String>,
    bat_cache: Mutex<HashMap<u64, Arc<[u64]>>>,
    bitmap_cache: Mutex<HashMap<u64, Arc<[u8]>>>,
}

impl std::fmt::Debug for Vhdx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vhdx")
            .field("path", &self.src.path)
            .field("virtual_size", &self.meta.virtual_size)
            .field("block_size", &self.meta.block_size)
            .finish_non_exhaustive()
    }
}

/// Whether `head` (the first bytes of a file) is a VHDX file type identifier.
pub(crate) fn probe(head: &[u8]) -> bool {
    head.starts_with(b"vhdxfile")
}

/// Opens `path` (see [`crate::open_in_chain`] for `chain`).
pub(crate) fn open_boxed(path: &Path, chain: &[PathBuf]) -> Result<Box<dyn Image>, FormatError> {
    Ok(Box::new(Vhdx::open_in_chain(path, chain)?))
}

impl Vhdx {
    /// Opens a VHDX image (its parent too, for a differencing disk).
    ///
    /// # Errors
    /// A [`FormatError`] naming the file, offset and field of the first structure that is
    /// not what MS-VHDX allows; `Unsupported` for required features not implemented.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let canonical =
            std::fs::canonicalize(path).map_err(FormatError::io(path, "resolve the path"))?;
        Self::open_in_chain(path, &[canonical])
    }

    /// The current header's DataWriteGuid (what a child's `parent_linkage` names).
    #[must_use]
    pub fn data_write_guid(&self) -> String {
        crate::bytes::guid_text(&self.header.data_write_guid)
    }

    fn open_in_chain(path: &Path, chain: &[PathBuf]) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(FormatError::io(path, "open it"))?;
        let file_len = file
            .metadata()
            .map_err(FormatError::io(path, "read its size"))?
            .len();
        let mut ident = [0u8; 8];
        if file_len < 8 || file.read_exact_at(&mut ident, 0).is_err() || &ident != b"vhdxfile" {
            return Err(FormatError::invalid(
                path,
                0,
                "vhdx file type identifier.signature",
                format!("{ident:02x?}, expected \"vhdxfile\""),
            ));
        }
        let header = read_active_header(path, &file, file_len)?;
        if header.version != 1 || header.log_version != 0 {
            return Err(FormatError::Unsupported {
                file: path.to_path_buf(),
                what: format!(
                    "VHDX version {} / log version {} (header at byte {}; expected 1 / 0)",
                    header.version, header.log_version, header.offset
                ),
            });
        }
        let mut notes = vec![format!(
            "header at byte {} (sequence {}), DataWriteGuid {}, FileWriteGuid {}",
            header.offset,
            header.sequence,
            crate::bytes::guid_text(&header.data_write_guid),
            crate::bytes::guid_text(&header.file_write_guid)
        )];
        let (overlay, log_notes) = if header.log_guid == [0; 16] {
            (BTreeMap::new(), Vec::new())
        } else {
            replay_log(path, &file, file_len, &header)?
        };
        notes.extend(log_notes);
        let len = overlay.keys().next_back().map_or(file_len, |&last| {
            file_len.max(last.saturating_add(LOG_SECTOR))
        });
        let src = Source {
            path: path.to_path_buf(),
            file,
            file_len,
            len,
            overlay,
        };
        let (bat, meta_region) = read_regions(&src)?;
        let meta = read_metadata(&src, meta_region)?;
        let chunk_ratio = ((1u64 << 23) * meta.logical_sector) / meta.block_size;
        let data_blocks = meta.virtual_size.div_ceil(meta.block_size);
        let bat_entries = if meta.has_parent {
            data_blocks.div_ceil(chunk_ratio) * (chunk_ratio + 1)
        } else if data_blocks == 0 {
            0
        } else {
            data_blocks + (data_blocks - 1) / chunk_ratio
        };
        if bat_entries * 8 > bat.length {
            return Err(FormatError::invalid(
                path,
                bat.offset,
                "vhdx BAT region.length",
                format!(
                    "{} bytes, but {} blocks of {} bytes need {bat_entries} entries ({} bytes)",
                    bat.length,
                    data_blocks,
                    meta.block_size,
                    bat_entries * 8
                ),
            ));
        }
        let parent = if meta.has_parent {
            Some(open_parent(path, chain, &meta.parent_locator, &mut notes)?)
        } else {
            None
        };
        if let Some(p83) = &meta.page83 {
            notes.push(format!("page 83 data {}", crate::bytes::guid_text(p83)));
        }
        Ok(Self {
            src,
            header,
            meta,
            bat,
            bat_entries,
            chunk_ratio,
            parent,
            notes,
            bat_cache: Mutex::new(HashMap::new()),
            bitmap_cache: Mutex::new(HashMap::new()),
        })
    }

    /// BAT entry `index` (payload or sector bitmap).
    fn bat_entry(&self, index: u64) -> Result<u64, FormatError> {
        if index >= self.bat_entries {
            return Err(FormatError::invalid(
                &self.src.path,
                self.bat.offset,
                "vhdx BAT",
                format!("entry {index} asked of {}", self.bat_entries),
            ));
        }
        let page = index / BAT_PAGE_ENTRIES;
        let cached = self
            .bat_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&page).cloned());
        let entries = if let Some(e) = cached {
            e
        } else {
            let first = page * BAT_PAGE_ENTRIES;
            let n = (self.bat_entries - first).min(BAT_PAGE_ENTRIES);
            let mut raw = vec![0u8; usize_of(n * 8)];
            self.src
                .read_exact(&mut raw, self.bat.offset + first * 8, "vhdx BAT")?;
            let e: Arc<[u64]> = raw
                .chunks_exact(8)
                .map(|c| u64_at(c, 0))
                .collect::<Vec<_>>()
                .into();
            if let Ok(mut c) = self.bat_cache.lock() {
                if c.len() >= BAT_CACHE_PAGES {
                    c.clear();
                }
                c.insert(page, Arc::clone(&e));
            }
            e
        };
        Ok(entries
            .get(usize_of(index - page * BAT_PAGE_ENTRIES))
            .copied()
            .unwrap_or(0))
    }

    /// The BAT index of payload block `block`.
    fn payload_index(&self, block: u64) -> u64 {
        block + block / self.chunk_ratio
    }

    /// Payload block `block`'s (state, file offset), checked against the file.
    fn payload(&self, block: u64) -> Result<(u64, u64), FormatError> {
        let index = self.payload_index(block);
        let e = self.bat_entry(index)?;
        let state = e & 7;
        let offset = e & !(MIB - 1);
        let entry_at = self.bat.offset + index * 8;
        match state {
            PAYLOAD_FULLY_PRESENT | PAYLOAD_PARTIALLY_PRESENT => {
                let block_start = block * self.meta.block_size;
                let used = (self.meta.virtual_size - block_start).min(self.meta.block_size);
                if state == PAYLOAD_PARTIALLY_PRESENT && !self.meta.has_parent {
                    return Err(FormatError::invalid(
                        &self.src.path,
                        entry_at,
                        "vhdx BAT entry.state",
                        format!("block {block} PARTIALLY_PRESENT (7) in a disk without a parent"),
                    ));
                }
                if offset < MIB || offset.checked_add(used).is_none_or(|e| e > self.src.len) {
                    return Err(FormatError::invalid(
                        &self.src.path,
                        entry_at,
                        "vhdx BAT entry.file_offset",
                        format!(
                            "block {block} at byte {offset} ({used} bytes): expected past the \
                             first MiB and inside the file ({} bytes)",
                            self.src.len
                        ),
                    ));
                }
            }
            PAYLOAD_NOT_PRESENT | PAYLOAD_UNDEFINED | PAYLOAD_ZERO | PAYLOAD_UNMAPPED => {}
            other => {
                return Err(FormatError::invalid(
                    &self.src.path,
                    entry_at,
                    "vhdx BAT entry.state",
                    format!("block {block} in state {other}, expected 0-3, 6 or 7"),
                ))
            }
        }
        Ok((state, offset))
    }

    /// Reads from the parent (zeros where it is shorter).
    fn read_parent(&self, buf: &mut [u8], offset: u64) -> Result<(), FormatError> {
        let Some(parent) = &self.parent else {
            buf.fill(0);
            return Ok(());
        };
        let mut done = 0usize;
        while let Some(rest) = buf.get_mut(done..) {
            if rest.is_empty() {
                break;
            }
            let n = parent
                .read_at(rest, offset + done as u64)
                .map_err(|source| FormatError::Io {
                    file: self.src.path.clone(),
                    what: format!("read the parent at byte {}", offset + done as u64),
                    source,
                })?;
            if n == 0 {
                rest.fill(0);
                break;
            }
            done += n;
        }
        Ok(())
    }

    /// The sector bitmap of the chunk holding payload block `block`.
    fn bitmap(&self, block: u64) -> Result<Arc<[u8]>, FormatError> {
        let chunk = block / self.chunk_ratio;
        let index = chunk * (self.chunk_ratio + 1) + self.chunk_ratio;
        let e = self.bat_entry(index)?;
        let entry_at = self.bat.offset + index * 8;
        if e & 7 != SB_PRESENT {
            return Err(FormatError::invalid(
                &self.src.path,
                entry_at,
                "vhdx BAT sector bitmap entry.state",
                format!(
                    "state {} for chunk {chunk}, whose block {block} is PARTIALLY_PRESENT; \
                     expected PRESENT (6)",
                    e & 7
                ),
            ));
        }
        let offset = e & !(MIB - 1);
        if offset < MIB
            || offset
                .checked_add(BITMAP_BYTES)
                .is_none_or(|end| end > self.src.len)
        {
            return Err(FormatError::invalid(
                &self.src.path,
                entry_at,
                "vhdx BAT sector bitmap entry.file_offset",
                format!(
                    "bitmap at byte {offset}: outside the file ({} bytes)",
                    self.src.len
                ),
            ));
        }
        if let Some(b) = self
            .bitmap_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&offset).cloned())
        {
            return Ok(b);
        }
        let mut raw = vec![0u8; usize_of(BITMAP_BYTES)];
        self.src
            .read_exact(&mut raw, offset, "vhdx sector bitmap")?;
        let b: Arc<[u8]> = raw.into();
        if let Ok(mut c) = self.bitmap_cache.lock() {
            if c.len() >= BITMAP_CACHE_BLOCKS {
                c.clear();
            }
            c.insert(offset, Arc::clone(&b));
        }
        Ok(b)
    }

    /// Reads a PARTIALLY_PRESENT block's bytes `[in_block, in_block + buf.len())`.
    fn read_partial(
        &self,
        buf: &mut [u8],
        block: u64,
        in_block: u64,
        file_offset: u64,
    ) -> Result<(), FormatError> {
        let bitmap = self.bitmap(block)?;
        let lss = self.meta.logical_sector;
        let sectors_per_block = self.meta.block_size / lss;
        let first_sector = (block % self.chunk_ratio) * sectors_per_block;
        let bit = |s: u64| {
            let i = first_sector + s;
            bitmap
                .get(usize_of(i / 8))
                .is_some_and(|byte| byte >> (i % 8) & 1 != 0)
        };
        let block_start = block * self.meta.block_size;
        let mut done = 0u64;
        let total = buf.len() as u64;
        while done < total {
            let pos = in_block + done;
            let present = bit(pos / lss);
            // Extend the run while the sectors agree.
            let mut end = (pos / lss + 1) * lss;
            while end < in_block + total && bit(end / lss) == present {
                end += lss;
            }
            let run = end.min(in_block + total) - pos;
            let dst = buf
                .get_mut(usize_of(done)..usize_of(done + run))
                .unwrap_or(&mut []);
            if present {
                self.src
                    .read_exact(dst, file_offset + pos, "vhdx payload block")?;
            } else {
                self.read_parent(dst, block_start + pos)?;
            }
            done += run;
        }
        Ok(())
    }

    /// Fills `buf` from virtual offset `offset` (all inside the disk).
    fn read_inside(&self, buf: &mut [u8], offset: u64) -> Result<(), FormatError> {
        let bs = self.meta.block_size;
        let total = buf.len() as u64;
        let mut done = 0u64;
        while done < total {
            let pos = offset + done;
            let block = pos / bs;
            let in_block = pos % bs;
            let mut run = (bs - in_block).min(total - done);
            let (state, file_offset) = self.payload(block)?;
            match state {
                PAYLOAD_FULLY_PRESENT => {
                    // Coalesce blocks that follow each other in the file too.
                    let mut next = block + 1;
                    while done + run < total {
                        match self.payload(next)? {
                            (PAYLOAD_FULLY_PRESENT, o)
                                if Some(o) == file_offset.checked_add((next - block) * bs) =>
                            {
                                run += bs.min(total - done - run);
                                next += 1;
                            }
                            _ => break,
                        }
                    }
                    let dst = buf
                        .get_mut(usize_of(done)..usize_of(done + run))
                        .unwrap_or(&mut []);
                    self.src
                        .read_exact(dst, file_offset + in_block, "vhdx payload block")?;
                }
                PAYLOAD_PARTIALLY_PRESENT => {
                    let dst = buf
                        .get_mut(usize_of(done)..usize_of(done + run))
                        .unwrap_or(&mut []);
                    self.read_partial(dst, block, in_block, file_offset)?;
                }
                PAYLOAD_NOT_PRESENT if self.parent.is_some() => {
                    let dst = buf
                        .get_mut(usize_of(done)..usize_of(done + run))
                        .unwrap_or(&mut []);
                    self.read_parent(dst, pos)?;
                }
                _ => {
                    // Zero-filled: coalesce the following zero blocks.
                    let mut next = block + 1;
                    while done + run < total {
                        let (s, _) = self.payload(next)?;
                        let zero = matches!(s, PAYLOAD_UNDEFINED | PAYLOAD_ZERO | PAYLOAD_UNMAPPED)
                            || (s == PAYLOAD_NOT_PRESENT && self.parent.is_none());
                        if !zero {
                            break;
                        }
                        run += bs.min(total - done - run);
                        next += 1;
                    }
                    if let Some(dst) = buf.get_mut(usize_of(done)..usize_of(done + run)) {
                        dst.fill(0);
                    }
                }
            }
            done += run;
        }
        Ok(())
    }
}

/// Finds, opens and checks the parent named by a differencing disk's parent locator.
fn open_parent(
    path: &Path,
    chain: &[PathBuf],
    locator: &[(String, String)],
    notes: &mut Vec<String>,
) -> Result<Box<dyn Image>, FormatError> {
    let get = |k: &str| {
        locator
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(rel) = get("relative_path") {
        let rel = rel.replace('\\', "/");
        candidates.push(dir.join(rel.trim_start_matches("./")));
    }
    // A Windows absolute path cannot be opened here; its file name, beside the child, can.
    for key in ["absolute_win32_path", "volume_path"] {
        if let Some(abs) = get(key) {
            if let Some(name) = abs.rsplit(['\\', '/']).next().filter(|n| !n.is_empty()) {
                candidates.push(dir.join(name));
            }
        }
    }
    let Some(found) = candidates.iter().find(|p| p.is_file()) else {
        return Err(FormatError::invalid(
            path,
            0,
            "vhdx parent locator",
            format!("no parent found; locator {locator:?}, tried {candidates:?}"),
        ));
    };
    let parent = crate::open_in_chain(found, chain)?;
    // The parent must be the one the child was made from: its DataWriteGuid.
    let linkage: Vec<String> = ["parent_linkage", "parent_linkage2"]
        .iter()
        .filter_map(|k| get(k))
        .map(|g| {
            g.trim_matches(|c| c == '{' || c == '}')
                .to_ascii_lowercase()
        })
        .collect();
    if parent.info().format == "vhdx" {
        let f = File::open(found).map_err(FormatError::io(found, "open it"))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let ph = read_active_header(found, &f, len)?;
        let dwg = crate::bytes::guid_text(&ph.data_write_guid);
        if !linkage.is_empty() && !linkage.contains(&dwg) {
            return Err(FormatError::invalid(
                path,
                0,
                "vhdx parent locator.parent_linkage",
                format!(
                    "{linkage:?}, but the parent {} has DataWriteGuid {dwg}",
                    found.display()
                ),
            ));
        }
    }
    notes.push(format!("parent {} (locator {locator:?})", found.display()));
    Ok(parent)
}

impl ReadAt for Vhdx {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        let size = self.meta.virtual_size;
        if offset_bytes >= size {
            return Ok(0);
        }
        let n = usize_of(size - offset_bytes).min(buf.len());
        let dst = buf.get_mut(..n).unwrap_or(&mut []);
        self.read_inside(dst, offset_bytes)
            .map_err(FormatError::into_io)?;
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.meta.virtual_size
    }
}

impl Image for Vhdx {
    fn info(&self) -> ImageInfo {
        let variant = if self.meta.has_parent {
            "differencing"
        } else if self.meta.leave_blocks_allocated {
            "fixed"
        } else {
            "dynamic"
        };
        let mut notes = self.notes.clone();
        notes.push(format!(
            "block size {} bytes, logical sector {} bytes, physical sector {} bytes",
            self.meta.block_size, self.meta.logical_sector, self.meta.physical_sector
        ));
        let files = vec![self.src.path.clone()];
        let backing = self.parent.as_ref().map(|p| Box::new(p.info()));
        ImageInfo {
            format: "vhdx".to_string(),
            variant: Some(variant.to_string()),
            virtual_size_bytes: self.meta.virtual_size,
            files,
            backing,
            notes,
            ..ImageInfo::default()
        }
    }
}

#[cfg(test)]
#[path = "vhdx_tests.rs"]
mod tests;
