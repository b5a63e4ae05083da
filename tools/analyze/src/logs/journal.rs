//! systemd journal files, native format (<https://systemd.io/JOURNAL_FILE_FORMAT/>):
//! header, the chain of entry array objects from `entry_array_offset`, each entry's items
//! pointing at data objects (`FIELD=value`), the entry's realtime stamp (µs, UTC).
//!
//! Untrusted as everything else: every object offset is checked inside the file and
//! 8-byte aligned, every object size against its type's minimum and the file's end; the
//! entry array chain must move forward (so it cannot loop), and entries are capped by the
//! file's size. Compact files (systemd 252+, 32-bit offsets) and keyed hashes (which only
//! matter for lookups, not for a walk) are read. zstd-compressed data objects are
//! decompressed with a cap; XZ and LZ4 ones are reported, not read.

use std::collections::HashMap;
use std::io::Read;

/// The journal file signature.
pub const SIGNATURE: &[u8; 8] = b"LPKSHHRH";
/// A decompressed field larger than this is cut (journald's own default limit on a
/// field is 64 KiB for most sources; a MESSAGE can be longer, rarely this long).
pub const MAX_FIELD_BYTES: usize = 4 << 20;
/// All decompressed data of one file together.
pub const MAX_DECOMPRESSED_BYTES: usize = 256 << 20;

/// Header incompatible flag: data objects may be XZ-compressed.
pub const INCOMPAT_XZ: u32 = 1;
/// Header incompatible flag: data objects may be LZ4-compressed.
pub const INCOMPAT_LZ4: u32 = 2;
/// Header incompatible flag: hash tables use SipHash keyed by the file id.
pub const INCOMPAT_KEYED_HASH: u32 = 4;
/// Header incompatible flag: data objects may be zstd-compressed.
pub const INCOMPAT_ZSTD: u32 = 8;
/// Header incompatible flag: 32-bit offsets in entries, entry arrays and data objects.
pub const INCOMPAT_COMPACT: u32 = 16;
const INCOMPAT_KNOWN: u32 = 31;

const OBJECT_DATA: u8 = 1;
const OBJECT_ENTRY: u8 = 3;
const OBJECT_ENTRY_ARRAY: u8 = 6;

const OBJ_XZ: u8 = 1;
const OBJ_LZ4: u8 = 2;
const OBJ_ZSTD: u8 = 4;

/// One entry: where it is, its stamps, and its fields (indices into
/// [`JournalFile::data`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// Byte offset of the entry object.
    pub offset: u64,
    /// Sequence number.
    pub seqnum: u64,
    /// Wall-clock time, µs since the epoch, UTC.
    pub realtime_usec: u64,
    /// Monotonic time since boot, µs.
    pub monotonic_usec: u64,
    /// The boot it belongs to.
    pub boot_id: [u8; 16],
    /// Its data objects, as indices into [`JournalFile::data`].
    pub items: Vec<usize>,
}

/// A data object's field, split at the first `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataField {
    /// Byte offset of the data object.
    pub offset: u64,
    /// The field name (`MESSAGE`).
    pub name: Vec<u8>,
    /// The value (binary allowed).
    pub value: Vec<u8>,
}

/// What was read from one journal file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalFile {
    /// Compact mode (32-bit offsets).
    pub compact: bool,
    /// The header's incompatible flags.
    pub incompatible_flags: u32,
    /// `n_entries` of the header.
    pub header_entries: u64,
    /// The header's state byte (0 offline, 1 online, 2 archived).
    pub state: u8,
    /// Entries in the order of the entry arrays (by seqnum within the file).
    pub entries: Vec<JournalEntry>,
    /// Data objects read (each once).
    pub data: Vec<DataField>,
    /// What could not be read, each with its offset.
    pub problems: Vec<String>,
}

impl JournalFile {
    /// The fields of `entry`: (name, value).
    pub fn fields<'a>(
        &'a self,
        entry: &'a JournalEntry,
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        entry.items.iter().filter_map(move |&i| {
            self.data
                .get(i)
                .map(|d| (d.name.as_slice(), d.value.as_slice()))
        })
    }

    /// The value of field `name` in `entry` (the first, when repeated).
    #[must_use]
    pub fn field<'a>(&'a self, entry: &'a JournalEntry, name: &[u8]) -> Option<&'a [u8]> {
        self.fields(entry).find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

fn le64(b: &[u8], at: u64) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

fn le32(b: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

struct Reader<'a> {
    bytes: &'a [u8],
    header_size: u64,
    compact: bool,
    decompressed: usize,
}

impl<'a> Reader<'a> {
    /// The object at `offset` of `kind`: its flags and bytes (header included).
    fn object(&self, offset: u64, kind: u8, min_size: u64) -> Result<(u8, &'a [u8]), String> {
        if !offset.is_multiple_of(8) || offset < self.header_size {
            return Err(format!(
                "object at byte {offset}: not 8-byte aligned or inside the header"
            ));
        }
        let t = self
            .bytes
            .get(usize::try_from(offset).map_err(|_| "offset")?)
            .copied()
            .ok_or_else(|| format!("object at byte {offset}: past the end of the file"))?;
        if t != kind {
            return Err(format!(
                "object at byte {offset}: type {t}, expected {kind}"
            ));
        }
        let flags = self
            .bytes
            .get(usize::try_from(offset + 1).map_err(|_| "offset")?)
            .copied()
            .unwrap_or(0);
        let size = le64(self.bytes, offset + 8)
            .ok_or_else(|| format!("object at byte {offset}: size past the end of the file"))?;
        let end = offset
            .checked_add(size)
            .filter(|&e| e <= self.bytes.len() as u64);
        match end {
            Some(end) if size >= min_size => {
                let s = usize::try_from(offset).map_err(|_| "offset")?;
                let e = usize::try_from(end).map_err(|_| "offset")?;
                Ok((flags, self.bytes.get(s..e).unwrap_or(&[])))
            }
            _ => Err(format!(
                "object at byte {offset}: size {size} (type {kind} needs {min_size}, file \
                 has {} bytes)",
                self.bytes.len()
            )),
        }
    }

    /// The payload of the data object at `offset`, decompressed.
    fn data(&mut self, offset: u64) -> Result<DataField, String> {
        let payload_at: u64 = if self.compact { 72 } else { 64 };
        let (flags, obj) = self.object(offset, OBJECT_DATA, payload_at)?;
        let raw = obj
            .get(usize::try_from(payload_at).map_err(|_| "offset")?..)
            .unwrap_or(&[]);
        let payload: Vec<u8> = if flags & OBJ_ZSTD != 0 {
            let left = MAX_DECOMPRESSED_BYTES.saturating_sub(self.decompressed);
            if left == 0 {
                return Err(format!(
                    "data object at byte {offset}: not decompressed, the file's \
                     {MAX_DECOMPRESSED_BYTES}-byte budget is spent"
                ));
            }
            let cap = MAX_FIELD_BYTES.min(left);
            let mut out = Vec::new();
            let dec = zstd::stream::read::Decoder::with_buffer(raw)
                .map_err(|e| format!("data object at byte {offset}: zstd: {e}"))?;
            dec.take(cap as u64)
                .read_to_end(&mut out)
                .map_err(|e| format!("data object at byte {offset}: zstd: {e}"))?;
            self.decompressed += out.len();
            out
        } else if flags & (OBJ_XZ | OBJ_LZ4) != 0 {
            let what = if flags & OBJ_XZ != 0 { "XZ" } else { "LZ4" };
            return Err(format!(
                "data object at byte {offset}: compressed with {what}, not read"
            ));
        } else {
            raw.get(..raw.len().min(MAX_FIELD_BYTES))
                .unwrap_or(&[])
                .to_vec()
        };
        let eq = payload.iter().position(|&b| b == b'=');
        let (name, value) = match eq {
            Some(i) => (
                payload.get(..i).unwrap_or(&[]).to_vec(),
                payload.get(i + 1..).unwrap_or(&[]).to_vec(),
            ),
            None => (payload, Vec::new()),
        };
        Ok(DataField {
            offset,
            name,
            value,
        })
    }
}

/// Reads a journal file.
///
/// # Errors
/// The header is not a journal's (signature, sizes); damage after the header goes into
/// [`JournalFile::problems`].
pub fn parse_journal(bytes: &[u8]) -> Result<JournalFile, String> {
    if bytes.get(..8) != Some(SIGNATURE) {
        return Err("journal header at byte 0: bad signature".to_string());
    }
    let incompatible = le32(bytes, 12).ok_or("journal header: too short")?;
    let state = bytes.get(16).copied().unwrap_or(0);
    let header_size = le64(bytes, 88).ok_or("journal header: too short")?;
    // The oldest header (systemd 187) ends with n_entry_arrays at 208+; `n_entries` is at
    // 152 and `entry_array_offset` at 176.
    if !(208..=bytes.len() as u64).contains(&header_size) || !header_size.is_multiple_of(8) {
        return Err(format!(
            "journal header at byte 88: header_size {header_size} (file has {} bytes)",
            bytes.len()
        ));
    }
    let header_entries = le64(bytes, 152).ok_or("journal header: n_entries")?;
    let first_array = le64(bytes, 176).ok_or("journal header: entry_array_offset")?;
    let compact = incompatible & INCOMPAT_COMPACT != 0;
    let mut out = JournalFile {
        compact,
        incompatible_flags: incompatible,
        header_entries,
        state,
        ..JournalFile::default()
    };
    if incompatible & !INCOMPAT_KNOWN != 0 {
        out.problems.push(format!(
            "journal header at byte 12: unknown incompatible flags {:#x}; read as far as \
             the known layout allows",
            incompatible & !INCOMPAT_KNOWN
        ));
    }
    let mut r = Reader {
        bytes,
        header_size,
        compact,
        decompressed: 0,
    };
    let mut data_index: HashMap<u64, Option<usize>> = HashMap::new();
    // Every entry takes at least 64 bytes of the file.
    let max_entries = bytes.len() / 64;
    let item_size: u64 = if compact { 4 } else { 8 };
    let entry_item_size: u64 = if compact { 4 } else { 16 };
    let mut array_at = first_array;
    let mut last_array: u64 = 0;
    while array_at != 0 {
        if array_at <= last_array {
            out.problems.push(format!(
                "entry array at byte {last_array}: next array at byte {array_at} does not \
                 move forward; the walk stops"
            ));
            break;
        }
        last_array = array_at;
        let (_, obj) = match r.object(array_at, OBJECT_ENTRY_ARRAY, 24) {
            Ok(o) => o,
            Err(e) => {
                out.problems.push(format!("entry array: {e}"));
                break;
            }
        };
        let next = le64(obj, 16).unwrap_or(0);
        let n_items = (obj.len() as u64 - 24) / item_size;
        for i in 0..n_items {
            let at = 24 + i * item_size;
            let entry_at = if compact {
                le32(obj, at).map(u64::from)
            } else {
                le64(obj, at)
            }
            .unwrap_or(0);
            // Unused slots at the end of the last array are zero.
            if entry_at == 0 {
                continue;
            }
            if out.entries.len() >= max_entries {
                out.problems.push(format!(
                    "entry array at byte {array_at}: more entries than the file can hold; \
                     the walk stops"
                ));
                return Ok(out);
            }
            match read_entry(&mut r, entry_at, entry_item_size, &mut data_index, &mut out) {
                Ok(e) => out.entries.push(e),
                Err(e) => out.problems.push(format!("entry: {e}")),
            }
        }
        array_at = next;
    }
    if out.entries.len() as u64 != header_entries {
        out.problems.push(format!(
            "journal header says {header_entries} entries, {} read (state {})",
            out.entries.len(),
            match state {
                0 => "offline",
                1 => "online: the file was open when imaged",
                2 => "archived",
                _ => "unknown",
            }
        ));
    }
    Ok(out)
}

fn read_entry(
    r: &mut Reader<'_>,
    at: u64,
    item_size: u64,
    data_index: &mut HashMap<u64, Option<usize>>,
    out: &mut JournalFile,
) -> Result<JournalEntry, String> {
    let (_, obj) = r.object(at, OBJECT_ENTRY, 64)?;
    let mut boot_id = [0u8; 16];
    if let Some(b) = obj.get(40..56) {
        boot_id.copy_from_slice(b);
    }
    let mut entry = JournalEntry {
        offset: at,
        seqnum: le64(obj, 16).unwrap_or(0),
        realtime_usec: le64(obj, 24).unwrap_or(0),
        monotonic_usec: le64(obj, 32).unwrap_or(0),
        boot_id,
        items: Vec::new(),
    };
    let n = (obj.len() as u64 - 64) / item_size;
    for i in 0..n {
        let p = 64 + i * item_size;
        let data_at = if r.compact {
            le32(obj, p).map(u64::from)
        } else {
            le64(obj, p)
        }
        .unwrap_or(0);
        if data_at == 0 {
            continue;
        }
        let idx = match data_index.get(&data_at) {
            Some(i) => *i,
            None => {
                let i = match r.data(data_at) {
                    Ok(d) => {
                        out.data.push(d);
                        Some(out.data.len() - 1)
                    }
                    Err(e) => {
                        out.problems.push(format!("entry at byte {at}: {e}"));
                        None
                    }
                };
                data_index.insert(data_at, i);
                i
            }
        };
        if let Some(i) = idx {
            entry.items.push(i);
        }
    }
    Ok(entry)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]
pub(crate) mod tests {
    use super::*;
    use crate::test_support::tools_required;
    use std::io::Write;
    use std::process::{Command, Stdio};

    pub(crate) const REMOTE: &str = "/lib/systemd/systemd-journal-remote";

    /// Entries in the Journal Export Format: `(realtime µs, fields)`.
    pub(crate) fn export(entries: &[(u64, Vec<(&str, String)>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (t, fields)) in entries.iter().enumerate() {
            writeln!(out, "__REALTIME_TIMESTAMP={t}").unwrap();
            writeln!(out, "__MONOTONIC_TIMESTAMP={}", 1_000_000 + i).unwrap();
            writeln!(out, "_BOOT_ID=0123456789abcdef0123456789abcdef").unwrap();
            for (k, v) in fields {
                if v.contains('\n') {
                    // Binary-safe form: name, newline, le64 length, bytes.
                    writeln!(out, "{k}").unwrap();
                    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    out.extend_from_slice(v.as_bytes());
                    out.push(b'\n');
                } else {
                    writeln!(out, "{k}={v}").unwrap();
                }
            }
            out.push(b'\n');
        }
        out
    }

    /// A journal file written by systemd-journal-remote from `export`, with `env`.
    pub(crate) fn journal_of(export: &[u8], env: &[(&str, &str)]) -> Option<Vec<u8>> {
        if !std::path::Path::new(REMOTE).exists() {
            assert!(!tools_required(), "{REMOTE} missing");
            eprintln!("skipped: {REMOTE} missing (apt-get install systemd-journal-remote)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.journal");
        let mut child = Command::new(REMOTE)
            .arg(format!("--output={}", p.display()))
            .arg("-")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(export).unwrap();
        assert!(child.wait().unwrap().success());
        Some(std::fs::read(&p).unwrap())
    }

    fn sample() -> Vec<(u64, Vec<(&'static str, String)>)> {
        let mut v = Vec::new();
        for i in 0..30u64 {
            v.push((
                1_700_449_800_000_000 + i * 1_000_123,
                vec![
                    (
                        "MESSAGE",
                        format!(
                            "Failed password for root from 198.51.100.23 port {} ssh2",
                            50_000 + i
                        ),
                    ),
                    ("_PID", format!("{}", 4000 + i)),
                    ("_COMM", "sshd".to_string()),
                    ("SYSLOG_IDENTIFIER", "sshd".to_string()),
                    ("_HOSTNAME", "web-01".to_string()),
                    ("PRIORITY", "5".to_string()),
                ],
            ));
        }
        // A long message (compressed when the writer compresses), a multi-line one.
        v.push((
            1_700_449_900_000_000,
            vec![
                ("MESSAGE", "x".repeat(20_000)),
                ("SYSLOG_IDENTIFIER", "big".to_string()),
            ],
        ));
        v.push((
            1_700_449_901_000_000,
            vec![
                ("MESSAGE", "two\nlines".to_string()),
                ("SYSLOG_IDENTIFIER", "ml".to_string()),
            ],
        ));
        v
    }

    /// Every entry of `bytes` as journalctl's JSON shows it, against ours.
    fn compare_with_journalctl(bytes: &[u8]) {
        let f = parse_journal(bytes).unwrap();
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.journal");
        std::fs::write(&p, bytes).unwrap();
        let out = Command::new("journalctl")
            .args([
                "--file",
                p.to_str().unwrap(),
                "-o",
                "json",
                "--all",
                "--no-pager",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let theirs: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(theirs.len(), f.entries.len());
        for (e, j) in f.entries.iter().zip(&theirs) {
            assert_eq!(
                j["__REALTIME_TIMESTAMP"].as_str().unwrap(),
                e.realtime_usec.to_string()
            );
            assert_eq!(
                j["__MONOTONIC_TIMESTAMP"].as_str().unwrap(),
                e.monotonic_usec.to_string()
            );
            let mut n = 0;
            for (k, v) in f.fields(e) {
                let k = std::str::from_utf8(k).unwrap();
                let jv = &j[k];
                match jv {
                    serde_json::Value::String(s) => assert_eq!(s.as_bytes(), v, "{k}"),
                    // journalctl shows non-printable values as byte arrays.
                    serde_json::Value::Array(a) => {
                        let b: Vec<u8> = a.iter().map(|x| x.as_u64().unwrap() as u8).collect();
                        assert_eq!(b, v, "{k}");
                    }
                    other => panic!("{k}: {other:?}"),
                }
                n += 1;
            }
            let theirs_n = j
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| !k.starts_with("__"))
                .count();
            assert_eq!(n, theirs_n);
        }
    }

    #[test]
    fn compact_zstd_journal_matches_journalctl() {
        let Some(j) = journal_of(&export(&sample()), &[]) else {
            return;
        };
        let f = parse_journal(&j).unwrap();
        assert!(f.compact);
        assert_eq!(f.entries.len(), 32);
        assert_eq!(f.field(&f.entries[0], b"_PID"), Some(&b"4000"[..]));
        assert_eq!(f.field(&f.entries[30], b"MESSAGE").unwrap().len(), 20_000);
        compare_with_journalctl(&j);
    }

    #[test]
    fn regular_journal_matches_journalctl() {
        let env = [
            ("SYSTEMD_JOURNAL_COMPACT", "0"),
            ("SYSTEMD_JOURNAL_KEYED_HASH", "0"),
        ];
        let Some(j) = journal_of(&export(&sample()), &env) else {
            return;
        };
        let f = parse_journal(&j).unwrap();
        assert!(!f.compact);
        assert_eq!(f.incompatible_flags & INCOMPAT_KEYED_HASH, 0);
        compare_with_journalctl(&j);
    }

    #[test]
    fn hostile_journals() {
        let Some(j) = journal_of(&export(&sample()), &[]) else {
            return;
        };
        // Cut anywhere: an error or problems, never a panic.
        for n in (0..j.len()).step_by(4093) {
            let _ = parse_journal(&j[..n]);
        }
        let used = j.iter().rposition(|&b| b != 0).unwrap() + 1;
        let _ = parse_journal(&j[..used.div_ceil(8) * 8 - 64]);
        // Flip bytes in the used part.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..3000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut b = j[..used.min(j.len())].to_vec();
            let i = (seed as usize) % b.len();
            b[i] ^= (seed >> 32) as u8 | 1;
            let _ = parse_journal(&b);
        }
        // An entry array pointing back at itself.
        let mut b = j.clone();
        let first = le64(&b, 176).unwrap() as usize;
        b[first + 16..first + 24].copy_from_slice(&(first as u64).to_le_bytes());
        let f = parse_journal(&b).unwrap();
        assert!(
            f.problems
                .iter()
                .any(|p| p.contains("does not move forward")),
            "{:?}",
            f.problems
        );
        assert!(parse_journal(b"LPKSHHRH").is_err());
    }
}
