//! Windows registry hive files ("regf"), read by our own parser so that every bound is
//! ours and every detail (checksum, sequence numbers, key write times) is reported.
//!
//! Layout (after Maxim Suhanov's "Windows registry file format specification" and
//! libregf's documentation): a 4096-byte base block, then hive bins ("hbin", 4 KiB
//! multiples) holding cells. A cell starts with a signed 32-bit size: negative when
//! allocated. Cell offsets in the hive are relative to the first hbin (file offset 4096).
//! Cells: `nk` key, `vk` value, `lf`/`lh`/`li`/`ri` subkey lists, `db` big data, `sk`
//! security descriptor; a key's value list is a bare array of cell offsets.
//!
//! Everything read is bounded: offsets must fall inside the hive, counts are capped
//! ([`MAX_SUBKEYS`], [`MAX_VALUES`]), `ri` nesting is limited ([`MAX_RI_DEPTH`]), lists
//! already visited are not revisited (cycles), value data is capped ([`MAX_VALUE_DATA`]).
//!
//! A hive whose two sequence numbers differ was not cleanly written: its transaction
//! logs (`.LOG1`/`.LOG2`) hold changes that are *not* applied here (we never write to
//! evidence, and replaying logs would present data the hive file itself does not hold).

use crate::event::Timestamp;
use std::collections::HashSet;

/// The base block's size; cell offsets count from its end.
pub const BASE_BLOCK_SIZE: usize = 4096;
/// Subkeys read per key at most.
pub const MAX_SUBKEYS: usize = 65_536;
/// Values read per key at most.
pub const MAX_VALUES: usize = 65_536;
/// Nesting of `ri` index roots at most (Windows writes one level).
pub const MAX_RI_DEPTH: u32 = 4;
/// Bytes of value data read at most.
pub const MAX_VALUE_DATA: usize = 16 * 1024 * 1024;
/// Depth of a full walk at most (Windows limits key nesting to 512).
pub const MAX_DEPTH: usize = 512;

/// REG_NONE .. REG_QWORD.
pub const REG_NONE: u32 = 0;
/// A string (UTF-16LE).
pub const REG_SZ: u32 = 1;
/// A string with `%VARIABLES%`.
pub const REG_EXPAND_SZ: u32 = 2;
/// Raw bytes.
pub const REG_BINARY: u32 = 3;
/// A little-endian 32-bit number.
pub const REG_DWORD: u32 = 4;
/// A big-endian 32-bit number.
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
/// A symbolic link (UTF-16LE).
pub const REG_LINK: u32 = 6;
/// Strings separated by NULs.
pub const REG_MULTI_SZ: u32 = 7;
/// A little-endian 64-bit number.
pub const REG_QWORD: u32 = 11;

/// Why a hive or one of its cells could not be read. Offsets are hive offsets (file
/// offset minus 4096) unless the variant says file offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegfError {
    /// Shorter than a base block.
    #[error("hive of {len} bytes: shorter than the 4096-byte base block")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// No "regf" at file offset 0.
    #[error("base block at file offset 0: bad signature {found:02x?}, expected \"regf\"")]
    BadSignature {
        /// What was there.
        found: Vec<u8>,
    },
    /// A cell does not fit inside the hive, is free where an allocated one is needed, or
    /// has the wrong signature or a field out of range.
    #[error(
        "{structure} cell at hive offset {offset:#x} (file offset {file_offset:#x}): {reason}"
    )]
    Cell {
        /// `nk`, `vk`, `lf` …
        structure: &'static str,
        /// Hive offset.
        offset: u32,
        /// File offset (hive offset + 4096).
        file_offset: u64,
        /// What is wrong, with expected vs found.
        reason: String,
    },
}

fn cell_err(structure: &'static str, offset: u32, reason: String) -> RegfError {
    RegfError::Cell {
        structure,
        offset,
        file_offset: u64::from(offset) + BASE_BLOCK_SIZE as u64,
        reason,
    }
}

/// The base block's facts, raw values kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BaseBlock {
    /// Primary sequence number.
    pub sequence_primary: u32,
    /// Secondary sequence number; differs from the primary when the hive is dirty.
    pub sequence_secondary: u32,
    /// The hive's last write (FILETIME), if set.
    pub last_written: Option<Timestamp>,
    /// Format version, major.minor (1.3, 1.5 …).
    pub version_major: u32,
    /// Minor version.
    pub version_minor: u32,
    /// Hive offset of the root key's cell.
    pub root_cell: u32,
    /// Bytes of hive bins the base block claims.
    pub hive_bins_size: u32,
    /// The file name stored in the base block (last part of the hive's path), lossy.
    pub embedded_name: String,
    /// The checksum stored at byte 508.
    pub checksum_stored: u32,
    /// XOR-32 of the first 508 bytes, as Windows computes it.
    pub checksum_computed: u32,
}

impl BaseBlock {
    /// Whether the sequence numbers differ: transaction logs hold changes not in the
    /// file (and not applied by this parser).
    #[must_use]
    pub fn dirty(&self) -> bool {
        self.sequence_primary != self.sequence_secondary
    }

    /// Whether the stored checksum matches.
    #[must_use]
    pub fn checksum_ok(&self) -> bool {
        self.checksum_stored == self.checksum_computed
    }
}

/// An opened hive: the base block and the cells after it, borrowed.
#[derive(Debug, Clone)]
pub struct Hive<'a> {
    /// Its base block.
    pub base: BaseBlock,
    cells: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([*s.first()?, *s.get(1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(s))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

/// A FILETIME (100 ns ticks since 1601-01-01 UTC) as a time; `None` when zero.
#[must_use]
pub fn filetime(ticks: u64) -> Option<Timestamp> {
    if ticks == 0 {
        return None;
    }
    const EPOCH_DIFF_SECS: i64 = 11_644_473_600;
    let secs = i64::try_from(ticks / 10_000_000).ok()?;
    let nanos = u32::try_from((ticks % 10_000_000) * 100).ok()?;
    Some(Timestamp {
        secs: secs.checked_sub(EPOCH_DIFF_SECS)?,
        nanos,
    })
}

/// UTF-16LE bytes as a string, stopping at the first NUL; unpaired surrogates → U+FFFD.
#[must_use]
pub fn utf16_string(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// A UTF-16LE name (key or value), whole: names may contain NULs.
fn utf16_name(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .collect();
    String::from_utf16_lossy(&units)
}

/// Latin-1 bytes (compressed key and value names) as a string.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

impl<'a> Hive<'a> {
    /// Reads the base block of `bytes` (a whole hive file).
    ///
    /// # Errors
    /// Shorter than a base block, or no "regf" signature. A bad checksum or dirty state
    /// is not an error: see [`BaseBlock`].
    pub fn open(bytes: &'a [u8]) -> Result<Self, RegfError> {
        let (head, cells) = match (bytes.get(..BASE_BLOCK_SIZE), bytes.get(BASE_BLOCK_SIZE..)) {
            (Some(h), Some(c)) => (h, c),
            _ => return Err(RegfError::TooShort { len: bytes.len() }),
        };
        if head.get(..4) != Some(b"regf".as_slice()) {
            return Err(RegfError::BadSignature {
                found: head.get(..4).unwrap_or_default().to_vec(),
            });
        }
        let mut xor = 0u32;
        for i in 0..127 {
            xor ^= u32_at(head, i * 4).unwrap_or(0);
        }
        let checksum_computed = match xor {
            0xFFFF_FFFF => 0xFFFF_FFFE,
            0 => 1,
            x => x,
        };
        let base = BaseBlock {
            sequence_primary: u32_at(head, 4).unwrap_or(0),
            sequence_secondary: u32_at(head, 8).unwrap_or(0),
            last_written: filetime(u64_at(head, 12).unwrap_or(0)),
            version_major: u32_at(head, 20).unwrap_or(0),
            version_minor: u32_at(head, 24).unwrap_or(0),
            root_cell: u32_at(head, 36).unwrap_or(0),
            hive_bins_size: u32_at(head, 40).unwrap_or(0),
            embedded_name: head.get(48..112).map(utf16_string).unwrap_or_default(),
            checksum_stored: u32_at(head, 508).unwrap_or(0),
            checksum_computed,
        };
        Ok(Self { base, cells })
    }

    /// The payload of the allocated cell at hive offset `offset` (after its size field).
    /// The cell at `offset`, which must begin with the two-byte signature `sig` (`nk`,
    /// `vk`).
    fn signed_cell(&self, offset: u32, sig: &'static str) -> Result<&'a [u8], RegfError> {
        let c = self.cell(offset, sig)?;
        if c.get(..2) != Some(sig.as_bytes()) {
            return Err(cell_err(
                sig,
                offset,
                format!(
                    "signature {:02x?}, expected {sig:?}",
                    c.get(..2).unwrap_or_default()
                ),
            ));
        }
        Ok(c)
    }

    fn cell(&self, offset: u32, structure: &'static str) -> Result<&'a [u8], RegfError> {
        let start = usize::try_from(offset)
            .map_err(|_| cell_err(structure, offset, "offset out of range".into()))?;
        let Some(size) = u32_at(self.cells, start) else {
            return Err(cell_err(
                structure,
                offset,
                format!("outside the hive's {} bytes of cells", self.cells.len()),
            ));
        };
        let signed = i32::from_le_bytes(size.to_le_bytes());
        if signed >= 0 {
            return Err(cell_err(
                structure,
                offset,
                format!("cell is free (size {signed}), expected allocated"),
            ));
        }
        let len = usize::try_from(signed.unsigned_abs()).unwrap_or(usize::MAX);
        if len < 4 {
            return Err(cell_err(
                structure,
                offset,
                format!("cell size {len} below 4"),
            ));
        }
        start
            .checked_add(len)
            .and_then(|end| self.cells.get(start.checked_add(4)?..end))
            .ok_or_else(|| {
                cell_err(
                    structure,
                    offset,
                    format!(
                        "cell of {len} bytes runs past the hive's {} bytes of cells",
                        self.cells.len()
                    ),
                )
            })
    }

    /// The root key.
    ///
    /// # Errors
    /// The root cell is not a readable `nk`.
    pub fn root(&self) -> Result<Key<'_, 'a>, RegfError> {
        self.key_at(self.base.root_cell)
    }

    /// The key at `path` below the root (`ControlSet001\Services`, `\` separated, case
    /// insensitive as Windows compares names); `None` when a component is missing or
    /// unreadable.
    #[must_use]
    pub fn key(&self, path: &str) -> Option<Key<'_, 'a>> {
        let mut key = self.root().ok()?;
        for part in path.split('\\').filter(|p| !p.is_empty()) {
            key = key.subkey(part)?;
        }
        Some(key)
    }

    /// The `nk` cell at hive offset `offset`.
    ///
    /// # Errors
    /// The cell is not a readable `nk`.
    pub fn key_at(&self, offset: u32) -> Result<Key<'_, 'a>, RegfError> {
        let c = self.signed_cell(offset, "nk")?;
        let short = || {
            cell_err(
                "nk",
                offset,
                format!("{} bytes, too short for a key", c.len()),
            )
        };
        let flags = u16_at(c, 2).ok_or_else(short)?;
        let name_len = usize::from(u16_at(c, 72).ok_or_else(short)?);
        let raw_name = c.get(76..76 + name_len).ok_or_else(|| {
            cell_err(
                "nk",
                offset,
                format!(
                    "name of {name_len} bytes runs past the cell's {} bytes",
                    c.len()
                ),
            )
        })?;
        let name = if flags & 0x20 != 0 {
            latin1(raw_name)
        } else {
            utf16_name(raw_name)
        };
        Ok(Key {
            hive: self,
            offset,
            name,
            flags,
            last_written: filetime(u64_at(c, 4).ok_or_else(short)?),
            subkey_count: u32_at(c, 20).ok_or_else(short)?,
            subkey_list: u32_at(c, 28).ok_or_else(short)?,
            value_count: u32_at(c, 36).ok_or_else(short)?,
            value_list: u32_at(c, 40).ok_or_else(short)?,
            security: u32_at(c, 44).ok_or_else(short)?,
        })
    }

    /// Every key below (and including) the root, depth first, with its path from the
    /// root (`\` separated, the root itself as ""); errors of unreadable cells beside.
    /// Bounded by [`MAX_DEPTH`], a visited set (cycles) and `max_keys`.
    #[must_use]
    pub fn walk(&self, max_keys: usize) -> (Vec<(String, Key<'_, 'a>)>, Vec<RegfError>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let root = match self.root() {
            Ok(r) => r,
            Err(e) => return (out, vec![e]),
        };
        let mut seen = HashSet::new();
        seen.insert(root.offset);
        let mut stack = vec![(String::new(), root, 0usize)];
        while let Some((path, key, depth)) = stack.pop() {
            if out.len() >= max_keys {
                break;
            }
            if depth < MAX_DEPTH {
                let mut children = Vec::new();
                for sub in key.subkeys() {
                    match sub {
                        Ok(k) if seen.insert(k.offset) => {
                            let p = if path.is_empty() {
                                k.name.clone()
                            } else {
                                format!("{path}\\{}", k.name)
                            };
                            children.push((p, k, depth + 1));
                        }
                        Ok(k) => errors.push(cell_err(
                            "nk",
                            k.offset,
                            "key reached twice (cycle)".into(),
                        )),
                        Err(e) => errors.push(e),
                    }
                }
                stack.extend(children.into_iter().rev());
            }
            out.push((path, key));
        }
        (out, errors)
    }
}

/// A key (`nk` cell).
#[derive(Debug, Clone)]
pub struct Key<'h, 'a> {
    hive: &'h Hive<'a>,
    /// Hive offset of its cell (file offset = this + 4096).
    pub offset: u32,
    /// Its name (compressed names read as Latin-1, others as UTF-16LE), not yet
    /// display-safe.
    pub name: String,
    /// The `nk` flags (0x20 compressed name, 0x04 root …).
    pub flags: u16,
    last_written: Option<Timestamp>,
    /// Subkeys the key claims.
    pub subkey_count: u32,
    subkey_list: u32,
    /// Values the key claims.
    pub value_count: u32,
    value_list: u32,
    security: u32,
}

impl<'h, 'a> Key<'h, 'a> {
    /// When the key (its name, values or subkey list) was last written.
    #[must_use]
    pub fn last_written(&self) -> Option<Timestamp> {
        self.last_written
    }

    /// File offset of the key's cell (for evidence).
    #[must_use]
    pub fn file_offset(&self) -> u64 {
        u64::from(self.offset) + BASE_BLOCK_SIZE as u64
    }

    /// Its subkeys, each a key or the error of its unreadable cell; at most
    /// [`MAX_SUBKEYS`].
    #[must_use]
    pub fn subkeys(&self) -> Vec<Result<Key<'h, 'a>, RegfError>> {
        let mut offsets = Vec::new();
        let mut out = Vec::new();
        if self.subkey_count == 0 || self.subkey_list == 0xFFFF_FFFF {
            return out;
        }
        let mut seen = HashSet::new();
        if let Err(e) = self.collect_list(self.subkey_list, 0, &mut seen, &mut offsets) {
            out.push(Err(e));
        }
        for o in offsets {
            out.push(self.hive.key_at(o));
        }
        out
    }

    fn collect_list(
        &self,
        list: u32,
        depth: u32,
        seen: &mut HashSet<u32>,
        out: &mut Vec<u32>,
    ) -> Result<(), RegfError> {
        if !seen.insert(list) {
            return Err(cell_err(
                "ri",
                list,
                "subkey list reached twice (cycle)".into(),
            ));
        }
        let c = self.hive.cell(list, "subkey list")?;
        let sig = c.get(..2).unwrap_or_default();
        let count = usize::from(u16_at(c, 2).unwrap_or(0));
        let (stride, structure): (usize, &'static str) = match sig {
            b"lf" => (8, "lf"),
            b"lh" => (8, "lh"),
            b"li" => (4, "li"),
            b"ri" => (4, "ri"),
            other => {
                return Err(cell_err(
                    "subkey list",
                    list,
                    format!("signature {other:02x?}, expected lf/lh/li/ri"),
                ));
            }
        };
        let room = c.len().saturating_sub(4) / stride;
        if count > room {
            return Err(cell_err(
                structure,
                list,
                format!("{count} entries claimed, room for {room}"),
            ));
        }
        for i in 0..count {
            if out.len() >= MAX_SUBKEYS {
                return Err(cell_err(
                    structure,
                    list,
                    format!("more than {MAX_SUBKEYS} subkeys; rest not read"),
                ));
            }
            let Some(o) = u32_at(c, 4 + i * stride) else {
                break;
            };
            if structure == "ri" {
                if depth + 1 > MAX_RI_DEPTH {
                    return Err(cell_err(
                        "ri",
                        list,
                        format!("index roots nested deeper than {MAX_RI_DEPTH}"),
                    ));
                }
                self.collect_list(o, depth + 1, seen, out)?;
            } else {
                out.push(o);
            }
        }
        Ok(())
    }

    /// The subkey named `name` (case-insensitive), if readable.
    #[must_use]
    pub fn subkey(&self, name: &str) -> Option<Key<'h, 'a>> {
        let want = name.to_lowercase();
        self.subkeys()
            .into_iter()
            .flatten()
            .find(|k| k.name.to_lowercase() == want)
    }

    /// Its values, each a value or the error of its unreadable cell; at most
    /// [`MAX_VALUES`].
    #[must_use]
    pub fn values(&self) -> Vec<Result<Value<'h, 'a>, RegfError>> {
        let mut out = Vec::new();
        if self.value_count == 0 || self.value_list == 0xFFFF_FFFF {
            return out;
        }
        let list = match self.hive.cell(self.value_list, "value list") {
            Ok(c) => c,
            Err(e) => return vec![Err(e)],
        };
        let count = usize::try_from(self.value_count).unwrap_or(usize::MAX);
        let room = list.len() / 4;
        if count > room {
            out.push(Err(cell_err(
                "value list",
                self.value_list,
                format!("{count} values claimed, room for {room}"),
            )));
        }
        for i in 0..count.min(room).min(MAX_VALUES) {
            if let Some(o) = u32_at(list, i * 4) {
                out.push(self.hive.value_at(o));
            }
        }
        out
    }

    /// The value named `name` (case-insensitive; "" is the default value), if readable.
    #[must_use]
    pub fn value(&self, name: &str) -> Option<Value<'h, 'a>> {
        let want = name.to_lowercase();
        self.values()
            .into_iter()
            .flatten()
            .find(|v| v.name.to_lowercase() == want)
    }

    /// The raw security descriptor of its `sk` cell, if readable.
    #[must_use]
    pub fn security_descriptor(&self) -> Option<&'a [u8]> {
        let c = self.hive.cell(self.security, "sk").ok()?;
        if c.get(..2) != Some(b"sk".as_slice()) {
            return None;
        }
        let len = usize::try_from(u32_at(c, 16)?).ok()?;
        c.get(20..20usize.checked_add(len)?)
    }
}

/// A value (`vk` cell).
#[derive(Debug, Clone)]
pub struct Value<'h, 'a> {
    hive: &'h Hive<'a>,
    /// Hive offset of its cell.
    pub offset: u32,
    /// Its name ("" for the default value), not yet display-safe.
    pub name: String,
    /// Its type (`REG_SZ` …), raw.
    pub data_type: u32,
    /// Bytes of data it claims (high bit cleared).
    pub data_size: u32,
    inline: bool,
    data_offset: u32,
}

impl<'h, 'a> Hive<'a> {
    fn value_at(&'h self, offset: u32) -> Result<Value<'h, 'a>, RegfError> {
        let c = self.signed_cell(offset, "vk")?;
        let short = || {
            cell_err(
                "vk",
                offset,
                format!("{} bytes, too short for a value", c.len()),
            )
        };
        let name_len = usize::from(u16_at(c, 2).ok_or_else(short)?);
        let raw_size = u32_at(c, 4).ok_or_else(short)?;
        let flags = u16_at(c, 16).ok_or_else(short)?;
        let raw_name = c.get(20..20 + name_len).ok_or_else(|| {
            cell_err(
                "vk",
                offset,
                format!(
                    "name of {name_len} bytes runs past the cell's {} bytes",
                    c.len()
                ),
            )
        })?;
        Ok(Value {
            hive: self,
            offset,
            name: if flags & 1 != 0 {
                latin1(raw_name)
            } else {
                utf16_name(raw_name)
            },
            data_type: u32_at(c, 12).ok_or_else(short)?,
            data_size: raw_size & 0x7FFF_FFFF,
            inline: raw_size & 0x8000_0000 != 0,
            data_offset: u32_at(c, 8).ok_or_else(short)?,
        })
    }
}

/// Bytes of data one big-data segment holds.
const DB_SEGMENT: usize = 16_344;

impl Value<'_, '_> {
    /// File offset of the value's cell (for evidence).
    #[must_use]
    pub fn file_offset(&self) -> u64 {
        u64::from(self.offset) + BASE_BLOCK_SIZE as u64
    }

    /// Its data: inline (≤ 4 bytes in the offset field), one cell, or `db` segments.
    ///
    /// # Errors
    /// A data cell is unreadable, too short, or the value exceeds [`MAX_VALUE_DATA`].
    pub fn data(&self) -> Result<Vec<u8>, RegfError> {
        let size = usize::try_from(self.data_size).unwrap_or(usize::MAX);
        if self.inline {
            let b = self.data_offset.to_le_bytes();
            return Ok(b.get(..size.min(4)).unwrap_or_default().to_vec());
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        if size > MAX_VALUE_DATA {
            return Err(cell_err(
                "vk",
                self.offset,
                format!("{size} bytes of data, above the cap of {MAX_VALUE_DATA}"),
            ));
        }
        let c = self.hive.cell(self.data_offset, "value data")?;
        if size > DB_SEGMENT && c.get(..2) == Some(b"db".as_slice()) {
            return self.big_data(c, size);
        }
        c.get(..size).map(<[u8]>::to_vec).ok_or_else(|| {
            cell_err(
                "value data",
                self.data_offset,
                format!("{} bytes, the value claims {size}", c.len()),
            )
        })
    }

    fn big_data(&self, db: &[u8], size: usize) -> Result<Vec<u8>, RegfError> {
        let segments = usize::from(u16_at(db, 2).unwrap_or(0));
        let list_off = u32_at(db, 4).unwrap_or(0);
        let list = self.hive.cell(list_off, "db segment list")?;
        let mut out = Vec::with_capacity(size.min(MAX_VALUE_DATA));
        let mut seen = HashSet::new();
        for i in 0..segments {
            if out.len() >= size {
                break;
            }
            let o = u32_at(list, i * 4).ok_or_else(|| {
                cell_err(
                    "db segment list",
                    list_off,
                    format!("{segments} segments claimed, room for {}", list.len() / 4),
                )
            })?;
            if !seen.insert(o) {
                return Err(cell_err(
                    "db",
                    self.data_offset,
                    format!("segment {i} at {o:#x} repeats"),
                ));
            }
            let seg = self.hive.cell(o, "db segment")?;
            let want = (size - out.len()).min(DB_SEGMENT).min(seg.len());
            out.extend_from_slice(seg.get(..want).unwrap_or_default());
        }
        if out.len() < size {
            return Err(cell_err(
                "db",
                self.data_offset,
                format!("segments hold {} bytes, the value claims {size}", out.len()),
            ));
        }
        Ok(out)
    }

    /// REG_SZ / REG_EXPAND_SZ / REG_LINK data as a string (up to the first NUL); other
    /// types `None`.
    #[must_use]
    pub fn string(&self) -> Option<String> {
        match self.data_type {
            REG_SZ | REG_EXPAND_SZ | REG_LINK => self.data().ok().map(|d| utf16_string(&d)),
            _ => None,
        }
    }

    /// REG_MULTI_SZ data as its strings (empty ones dropped); a REG_SZ as one string.
    #[must_use]
    pub fn strings(&self) -> Option<Vec<String>> {
        match self.data_type {
            REG_MULTI_SZ => {
                let d = self.data().ok()?;
                let units: Vec<u16> = d
                    .chunks_exact(2)
                    .map(|c| {
                        u16::from_le_bytes([
                            c.first().copied().unwrap_or(0),
                            c.get(1).copied().unwrap_or(0),
                        ])
                    })
                    .collect();
                Some(
                    units
                        .split(|&u| u == 0)
                        .filter(|s| !s.is_empty())
                        .map(String::from_utf16_lossy)
                        .collect(),
                )
            }
            _ => self.string().map(|s| vec![s]),
        }
    }

    /// REG_DWORD (or big-endian) / REG_QWORD data as a number; a 4- or 8-byte binary too.
    #[must_use]
    pub fn number(&self) -> Option<u64> {
        let d = self.data().ok()?;
        match (self.data_type, d.len()) {
            (REG_DWORD_BIG_ENDIAN, 4) => Some(u64::from(u32::from_be_bytes(d.try_into().ok()?))),
            (REG_DWORD | REG_BINARY | REG_NONE, 4) => {
                Some(u64::from(u32::from_le_bytes(d.try_into().ok()?)))
            }
            (REG_QWORD | REG_BINARY | REG_NONE, 8) => Some(u64::from_le_bytes(d.try_into().ok()?)),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "regf_tests.rs"]
mod tests;
