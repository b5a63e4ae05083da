//! The change journal: `$Extend/$UsnJrnl`'s `$J` stream, a sequence of `USN_RECORD_V2`,
//! `_V3` and `_V4` records (Microsoft's layouts, winioctl.h), each 8-byte aligned, padded
//! with zeros to the end of a 4096-byte page when the next record does not fit.
//!
//! `$J` is sparse: Windows frees its oldest clusters as it grows, so a journal of a few
//! MiB of records often sits behind gigabytes of hole. Only the stored runs are read (the
//! runlist says where they are); the hole is counted, never read.
//!
//! Hostile input: every record length is checked (at least the version's fixed part, a
//! multiple of 8, at most [`MAX_RECORD`], inside the stored range); a bad one is noted as
//! a problem and the scan resynchronises at the next 8-byte boundary; a zero length
//! followed by zeros to the page's end skips to the next page (the normal padding).

use super::{record, Ntfs, EXTEND, FILETIME_UNIX_EPOCH, ROOT};
use crate::{FsError, ReadAt, Timestamp};
use std::collections::BTreeSet;

/// Records larger than this are refused (a V2/V3 record holds at most 255 UTF-16 units of
/// name: 586 bytes; a V4 record a few hundred extents).
pub const MAX_RECORD: u64 = 64 * 1024;
/// The journal's page: records never start in the zero padding at a page's end.
const PAGE: u64 = 4096;
/// Bytes read per request.
const CHUNK: u64 = 1 << 20;
/// At most this many problems are kept (the rest are counted).
const MAX_PROBLEMS: usize = 1000;
/// At most this many parent links are followed by [`Ntfs::path_of`].
const MAX_DEPTH: usize = 1024;

/// `USN_REASON_*` bits and their names as Microsoft spells them (without the prefix).
pub const REASONS: [(u32, &str); 24] = [
    (0x0000_0001, "DATA_OVERWRITE"),
    (0x0000_0002, "DATA_EXTEND"),
    (0x0000_0004, "DATA_TRUNCATION"),
    (0x0000_0010, "NAMED_DATA_OVERWRITE"),
    (0x0000_0020, "NAMED_DATA_EXTEND"),
    (0x0000_0040, "NAMED_DATA_TRUNCATION"),
    (0x0000_0100, "FILE_CREATE"),
    (0x0000_0200, "FILE_DELETE"),
    (0x0000_0400, "EA_CHANGE"),
    (0x0000_0800, "SECURITY_CHANGE"),
    (0x0000_1000, "RENAME_OLD_NAME"),
    (0x0000_2000, "RENAME_NEW_NAME"),
    (0x0000_4000, "INDEXABLE_CHANGE"),
    (0x0000_8000, "BASIC_INFO_CHANGE"),
    (0x0001_0000, "HARD_LINK_CHANGE"),
    (0x0002_0000, "COMPRESSION_CHANGE"),
    (0x0004_0000, "ENCRYPTION_CHANGE"),
    (0x0008_0000, "OBJECT_ID_CHANGE"),
    (0x0010_0000, "REPARSE_POINT_CHANGE"),
    (0x0020_0000, "STREAM_CHANGE"),
    (0x0040_0000, "TRANSACTED_CHANGE"),
    (0x0080_0000, "INTEGRITY_CHANGE"),
    (0x0100_0000, "DESIRED_STORAGE_CLASS_CHANGE"),
    (0x8000_0000, "CLOSE"),
];

/// The names of the bits set in `reasons` (unknown bits stay only in the raw value).
pub fn reason_names(reasons: u32) -> Vec<&'static str> {
    REASONS
        .iter()
        .filter(|(bit, _)| reasons & bit != 0)
        .map(|&(_, name)| name)
        .collect()
}

/// One change-journal record (V2 or V3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsnRecord {
    /// Byte offset of the record in the `$J` stream (the examiner's pointer).
    pub offset: u64,
    /// 2 or 3.
    pub major_version: u16,
    /// The minor version.
    pub minor_version: u16,
    /// The update sequence number (by design the record's offset in `$J`).
    pub usn: i64,
    /// When the change was recorded (a FILETIME of 0 gives 1601-01-01).
    pub time: Timestamp,
    /// The raw FILETIME.
    pub filetime: u64,
    /// `USN_REASON_*` bits.
    pub reasons: u32,
    /// Their names (see [`REASONS`]).
    pub reason_names: Vec<&'static str>,
    /// `USN_SOURCE_*` bits.
    pub source_info: u32,
    /// Index in `$Secure`.
    pub security_id: u32,
    /// `FILE_ATTRIBUTE_*` bits.
    pub file_attributes: u32,
    /// The file: MFT entry (48 bits) and sequence number. For a V3 record these come from
    /// the low 64 bits of the 128-bit file ID (NTFS puts its 64-bit reference there; the
    /// high half, zero on NTFS, is in `file_ref_high`).
    pub file_ref: (u64, u16),
    /// V3 only: the high 64 bits of the 128-bit file ID (0 for V2).
    pub file_ref_high: u64,
    /// The parent directory, as `file_ref`.
    pub parent_ref: (u64, u16),
    /// V3 only: the high 64 bits of the parent's 128-bit file ID (0 for V2).
    pub parent_ref_high: u64,
    /// The name, UTF-8 (unpaired surrogates as U+FFFD, as the NTFS reader does names).
    pub name: Vec<u8>,
    /// The name's UTF-16 code units as stored (lossless).
    pub name_utf16: Vec<u16>,
}

/// What a scan of `$J` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsnScan {
    /// MFT entry of `$UsnJrnl`.
    pub entry: u64,
    /// Bytes of the `$J` stream (its logical size).
    pub stream_size: u64,
    /// Bytes never stored (sparse runs, or past the initialized size): not read.
    pub sparse_bytes: u64,
    /// Bytes stored and read.
    pub stored_bytes: u64,
    /// V2 and V3 records given to the visitor.
    pub records: u64,
    /// V4 (range tracking) records recognised and skipped.
    pub v4_skipped: u64,
    /// Bytes skipped as invalid (not counting the zero padding at the end of pages).
    pub skipped_bytes: u64,
    /// Where a stretch of invalid bytes starts, and why (at most 1000).
    pub problems: Vec<(u64, String)>,
    /// Problems beyond those kept.
    pub problems_dropped: u64,
}

impl UsnScan {
    fn problem(&mut self, at: u64, why: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push((at, why));
        } else {
            self.problems_dropped += 1;
        }
    }
}

/// A FILETIME as a timestamp (0 is 1601-01-01, not "unset": it is in a record).
pub(crate) fn filetime_any(ft: u64) -> Timestamp {
    let rel = i128::from(ft) - i128::from(FILETIME_UNIX_EPOCH);
    // |rel| / 10^7 < 2^64 / 10^7 fits an i64; the remainder is below 10^7.
    Timestamp {
        secs: i64::try_from(rel.div_euclid(10_000_000)).unwrap_or(i64::MAX),
        nanos: u32::try_from(rel.rem_euclid(10_000_000) * 100).unwrap_or(0),
    }
}

fn split_ref(r: u64) -> (u64, u16) {
    (
        r & 0xFFFF_FFFF_FFFF,
        u16::try_from(r >> 48).unwrap_or(u16::MAX),
    )
}

/// One parsed record, or why the bytes at this offset are not one.
enum Parsed {
    Record(Box<UsnRecord>),
    V4,
    Bad(String),
}

/// Parses the record `rec` (exactly its `RecordLength` bytes) at `offset` in `$J`.
fn parse(rec: &[u8], offset: u64) -> Parsed {
    let u16_ = |at| record::u16_at(rec, at).unwrap_or(0);
    let u32_ = |at| record::u32_at(rec, at).unwrap_or(0);
    let u64_ = |at| record::u64_at(rec, at).unwrap_or(0);
    let major = u16_(4);
    // (fixed part, file ref, parent ref, high halves?, usn, then the shared tail)
    let (fixed, usn_at) = match major {
        2 => (60usize, 24usize),
        3 => (76, 40),
        4 => return Parsed::V4,
        v => return Parsed::Bad(format!("major version {v}")),
    };
    if rec.len() < fixed {
        return Parsed::Bad(format!(
            "record of {} bytes, shorter than the V{major} fixed part of {fixed}",
            rec.len()
        ));
    }
    let name_len = usize::from(u16_(usn_at + 32));
    let name_off = usize::from(u16_(usn_at + 34));
    let Some(name_bytes) = name_off
        .checked_add(name_len)
        .filter(|_| name_len % 2 == 0 && name_off >= fixed)
        .and_then(|e| rec.get(name_off..e))
    else {
        return Parsed::Bad(format!(
            "name of {name_len} bytes at {name_off} outside the record's {} bytes",
            rec.len()
        ));
    };
    let name_utf16: Vec<u16> = name_bytes
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .collect();
    let (file_ref, file_ref_high, parent_ref, parent_ref_high) = if major == 2 {
        (split_ref(u64_(8)), 0, split_ref(u64_(16)), 0)
    } else {
        (split_ref(u64_(8)), u64_(16), split_ref(u64_(24)), u64_(32))
    };
    let filetime = u64_(usn_at + 8);
    let reasons = u32_(usn_at + 16);
    Parsed::Record(Box::new(UsnRecord {
        offset,
        major_version: major,
        minor_version: u16_(6),
        usn: i64::from_le_bytes(u64_(usn_at).to_le_bytes()),
        time: filetime_any(filetime),
        filetime,
        reasons,
        reason_names: reason_names(reasons),
        source_info: u32_(usn_at + 20),
        security_id: u32_(usn_at + 24),
        file_attributes: u32_(usn_at + 28),
        file_ref,
        file_ref_high,
        parent_ref,
        parent_ref_high,
        name: record::utf16(name_bytes).into_bytes(),
        name_utf16,
    }))
}

/// Scans the stored `ranges` (sorted, disjoint byte ranges) of a `$J` stream `data` of
/// `size` bytes.
///
/// # Errors
/// A stored range cannot be read.
pub fn scan_stream(
    data: &dyn ReadAt,
    ranges: &[(u64, u64)],
    size: u64,
    volume: &str,
    visit: &mut dyn FnMut(&UsnRecord),
) -> Result<UsnScan, FsError> {
    let mut scan = UsnScan {
        stream_size: size,
        ..UsnScan::default()
    };
    let mut buf: Vec<u8> = Vec::new();
    for &(start, end) in ranges {
        let end = end.min(size);
        if start >= end {
            continue;
        }
        scan.stored_bytes += end - start;
        // Records are 8-byte aligned in the stream.
        let mut pos = start.next_multiple_of(8);
        let mut buf_start = pos;
        buf.clear();
        let mut in_garbage = false;
        // Brings [pos, pos + need) into `buf` (clipped to the range); returns the bytes.
        let window = |pos: u64, need: u64, buf: &mut Vec<u8>, buf_start: &mut u64| {
            let have_end = *buf_start + buf.len() as u64;
            let want_end = pos.saturating_add(need).min(end);
            if pos < *buf_start || want_end > have_end {
                let len = (end - pos).min(CHUNK.max(need));
                buf.resize(usize::try_from(len).unwrap_or(0), 0);
                *buf_start = pos;
                data.read_exact_at(buf, pos).map_err(|source| FsError::Io {
                    volume: volume.to_string(),
                    offset: pos,
                    len: buf.len(),
                    source,
                })?;
            }
            let from = usize::try_from(pos - *buf_start).unwrap_or(usize::MAX);
            let to = usize::try_from(want_end - *buf_start).unwrap_or(usize::MAX);
            Ok::<(usize, usize), FsError>((from, to))
        };
        while pos.saturating_add(8) <= end {
            let (from, to) = window(pos, 8, &mut buf, &mut buf_start)?;
            let head = buf.get(from..to).unwrap_or(&[]);
            let len = u64::from(record::u32_at(head, 0).unwrap_or(0));
            if len == 0 {
                // Zero padding to the page's end, or a damaged record.
                let page_end = (pos / PAGE + 1).saturating_mul(PAGE).min(end);
                let (f, t) = window(pos, page_end - pos, &mut buf, &mut buf_start)?;
                if buf.get(f..t).unwrap_or(&[]).iter().all(|&b| b == 0) {
                    pos = page_end;
                    in_garbage = false;
                    continue;
                }
                if !in_garbage {
                    scan.problem(pos, "record length 0 before non-zero bytes".into());
                    in_garbage = true;
                }
                scan.skipped_bytes += 8;
                pos += 8;
                continue;
            }
            let why = if len < 8 || len % 8 != 0 {
                Some(format!(
                    "record length {len}: not a multiple of 8 of at least 8"
                ))
            } else if len > MAX_RECORD {
                Some(format!("record length {len}, more than {MAX_RECORD}"))
            } else if pos.saturating_add(len) > end {
                Some(format!(
                    "record length {len} runs past the stored data's end at {end}"
                ))
            } else {
                None
            };
            let parsed = match why {
                Some(w) => Parsed::Bad(w),
                None => {
                    let (f, t) = window(pos, len, &mut buf, &mut buf_start)?;
                    parse(buf.get(f..t).unwrap_or(&[]), pos)
                }
            };
            match parsed {
                Parsed::Record(r) => {
                    scan.records += 1;
                    visit(&r);
                    in_garbage = false;
                    pos += len;
                }
                Parsed::V4 => {
                    scan.v4_skipped += 1;
                    in_garbage = false;
                    pos += len;
                }
                Parsed::Bad(why) => {
                    if !in_garbage {
                        scan.problem(pos, why);
                        in_garbage = true;
                    }
                    scan.skipped_bytes += 8;
                    pos += 8;
                }
            }
        }
        if pos < end {
            let rest = end - pos;
            if !in_garbage {
                let (f, t) = window(pos, rest, &mut buf, &mut buf_start)?;
                if buf.get(f..t).unwrap_or(&[]).iter().any(|&b| b != 0) {
                    scan.problem(
                        pos,
                        format!("{rest} bytes at the end, too short for a record"),
                    );
                    scan.skipped_bytes += rest;
                }
            } else {
                scan.skipped_bytes += rest;
            }
        }
    }
    scan.sparse_bytes = size.saturating_sub(scan.stored_bytes);
    Ok(scan)
}

impl Ntfs<'_> {
    /// Reads the change journal, `$Extend/$UsnJrnl:$J`, giving each V2/V3 record to
    /// `visit` in stream order; only the stored (non-sparse) parts of `$J` are read.
    ///
    /// # Errors
    /// The journal is absent (`NotFound`), its `$J` is compressed (`Unsupported`), or a
    /// stored part cannot be read.
    pub fn usn_journal(&self, mut visit: impl FnMut(&UsnRecord)) -> Result<UsnScan, FsError> {
        let entry = self
            .child(EXTEND, "$UsnJrnl")
            .ok_or_else(|| FsError::NotFound {
                volume: self.volume.clone(),
                what: "$Extend/$UsnJrnl (no change journal)".into(),
            })?;
        self.usn_journal_of(entry, &mut visit)
    }

    /// [`Ntfs::usn_journal`] for the `$J` stream of MFT entry `entry`.
    pub(crate) fn usn_journal_of(
        &self,
        entry: u64,
        visit: &mut dyn FnMut(&UsnRecord),
    ) -> Result<UsnScan, FsError> {
        let (_, attrs) = self.entry(entry)?;
        let ext: Vec<record::Attr> = attrs
            .into_iter()
            .filter(|a| a.kind == record::ATTR_DATA && a.name == "$J")
            .collect();
        if ext.is_empty() {
            return Err(FsError::NotFound {
                volume: self.volume.clone(),
                what: format!("$DATA:$J of MFT entry {entry}"),
            });
        }
        let value = self.value(&ext)?;
        let size = value.size();
        let ranges = match &value {
            super::data::Value::Resident(v) => vec![(0, v.len() as u64)],
            super::data::Value::Clusters(c) => {
                c.stored_ranges().ok_or_else(|| FsError::Unsupported {
                    volume: self.volume.clone(),
                    what: format!("a compressed $UsnJrnl:$J (MFT entry {entry})"),
                })?
            }
        };
        let mut scan = scan_stream(&value, &ranges, size, &self.volume, visit)?;
        scan.entry = entry;
        Ok(scan)
    }

    /// The path of MFT entry `entry` if its sequence number is `seq` (for a deleted entry,
    /// `seq` one less, as NTFS bumps it on deletion), through every parent likewise; the
    /// root is `/`. This is the path **at analysis time**, from the current MFT: a journal
    /// record's parent may have been renamed or moved since, and a reused entry (another
    /// sequence number) gives `None` rather than a wrong path.
    pub fn path_of(&self, entry: u64, seq: u16) -> Option<Vec<u8>> {
        let mut parts: Vec<&str> = Vec::new();
        let mut seen = BTreeSet::new();
        let (mut n, mut s) = (entry, seq);
        while n != ROOT {
            if parts.len() >= MAX_DEPTH || !seen.insert(n) {
                return None;
            }
            let e = self.entries.get(&n)?;
            if !(e.seq == s || (!e.allocated && e.seq == s.wrapping_add(1))) {
                return None;
            }
            let f = e
                .names
                .iter()
                .find(|f| f.namespace != 2)
                .or(e.names.first())?;
            parts.push(&f.name);
            (n, s) = (f.parent, f.parent_seq);
        }
        if entry == ROOT && self.entries.get(&ROOT).is_some_and(|e| e.seq != seq) {
            return None;
        }
        let mut path = Vec::new();
        for p in parts.iter().rev() {
            path.push(b'/');
            path.extend_from_slice(p.as_bytes());
        }
        if path.is_empty() {
            path.push(b'/');
        }
        Some(path)
    }
}
