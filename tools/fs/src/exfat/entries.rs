//! exFAT directory entries (Microsoft exFAT specification §6, §7): the 32-byte entries,
//! the file entry set (file 0x85, stream extension 0xC0, file names 0xC1), its checksum,
//! timestamps with their UTC offsets, and the name hash over the up-case table. Deleted
//! entries are the same types with bit 7 (InUse) clear: 0x05, 0x40, 0x41.

use crate::fat::runs::dos_time;
use crate::{Times, Timestamp};

/// Entry types without the InUse bit (TSK's `exfatfs_get_enum_from_type`).
pub(crate) const T_BITMAP: u8 = 0x01;
pub(crate) const T_UPCASE: u8 = 0x02;
pub(crate) const T_LABEL: u8 = 0x03;
pub(crate) const T_FILE: u8 = 0x05;
pub(crate) const T_GUID: u8 = 0x20;
pub(crate) const T_TEXFAT: u8 = 0x21;
pub(crate) const T_ACT: u8 = 0x22;
pub(crate) const T_STREAM: u8 = 0x40;
pub(crate) const T_NAME: u8 = 0x41;

/// Attribute bits of a file entry.
pub(crate) const ATTR_DIRECTORY: u16 = 0x10;

/// One 32-byte directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry(pub [u8; 32]);

impl Entry {
    pub fn le16(&self, at: usize) -> u16 {
        match (self.0.get(at), self.0.get(at + 1)) {
            (Some(&lo), Some(&hi)) => u16::from_le_bytes([lo, hi]),
            _ => 0,
        }
    }
    pub fn le32(&self, at: usize) -> u32 {
        u32::from(self.le16(at)) | (u32::from(self.le16(at + 2)) << 16)
    }
    pub fn le64(&self, at: usize) -> u64 {
        u64::from(self.le32(at)) | (u64::from(self.le32(at + 4)) << 32)
    }
    /// The raw type byte.
    pub fn raw_type(&self) -> u8 {
        self.0[0]
    }
    /// The type without the InUse bit.
    pub fn kind(&self) -> u8 {
        self.0[0] & 0x7f
    }
    pub fn in_use(&self) -> bool {
        self.0[0] & 0x80 != 0
    }

    // File entry (0x85).
    pub fn secondary_count(&self) -> u8 {
        self.0[1]
    }
    pub fn set_checksum(&self) -> u16 {
        self.le16(2)
    }
    pub fn attributes(&self) -> u16 {
        self.le16(4)
    }
    pub fn is_dir(&self) -> bool {
        self.attributes() & ATTR_DIRECTORY != 0
    }

    // Stream extension (0xC0).
    pub fn no_fat_chain(&self) -> bool {
        self.0[1] & 0x02 != 0
    }
    pub fn name_length(&self) -> u8 {
        self.0[3]
    }
    pub fn name_hash(&self) -> u16 {
        self.le16(4)
    }
    pub fn valid_data_length(&self) -> u64 {
        self.le64(8)
    }
    pub fn first_cluster(&self) -> u32 {
        self.le32(20)
    }
    pub fn data_length(&self) -> u64 {
        self.le64(24)
    }

    // File name (0xC1): 15 UTF-16 units.
    pub fn name_units(&self) -> impl Iterator<Item = u16> + '_ {
        (0..15).map(move |i| self.le16(2 + 2 * i))
    }

    /// The three times of a file entry, each with its UTC offset applied when the offset
    /// is marked valid, and what was applied (for notes).
    pub fn times(&self) -> (Times, Vec<String>) {
        let mut notes = Vec::new();
        let mut one = |ts_at: usize, tenths: u8, offset: u8, what: &str| -> Option<Timestamp> {
            let ts = self.le32(ts_at);
            let date = u16::try_from(ts >> 16).unwrap_or(0);
            let time = u16::try_from(ts & 0xffff).unwrap_or(0);
            let mut t = dos_time(date, time, tenths)?;
            if offset & 0x80 != 0 {
                // A 7-bit two's complement count of 15-minute steps (§7.4.10).
                let steps = i64::from(offset & 0x7f) - if offset & 0x40 != 0 { 128 } else { 0 };
                t.secs -= steps * 15 * 60;
                notes.push(format!(
                    "{what} time stored with UTC offset {}",
                    fmt_offset(steps)
                ));
            } else {
                notes.push(format!(
                    "{what} time has no UTC offset: local time shown as if UTC"
                ));
            }
            Some(t)
        };
        let created = one(8, self.0[20], self.0[22], "created");
        let modified = one(12, self.0[21], self.0[23], "modified");
        let accessed = one(16, 0, self.0[24], "accessed");
        (
            Times {
                accessed,
                modified,
                changed: None,
                created,
            },
            notes,
        )
    }
}

fn fmt_offset(steps: i64) -> String {
    let mins = steps * 15;
    let sign = if mins < 0 { '-' } else { '+' };
    format!(
        "{sign}{:02}:{:02} (applied)",
        mins.abs() / 60,
        mins.abs() % 60
    )
}

/// The entry set checksum (§6.3.3): every byte of the set but the checksum field itself.
pub(crate) fn set_checksum(set: &[Entry]) -> u16 {
    let mut sum: u16 = 0;
    for (i, e) in set.iter().enumerate() {
        for (j, &b) in e.0.iter().enumerate() {
            if i == 0 && (j == 2 || j == 3) {
                continue;
            }
            sum = sum.rotate_right(1).wrapping_add(u16::from(b));
        }
    }
    sum
}

/// The up-case table (§7.2.5), expanded: `map[c]` is `c` up-cased (identity past its end).
#[derive(Debug, Default, Clone)]
pub(crate) struct UpCase {
    map: Vec<u16>,
}

/// At most the whole UTF-16 range is mapped.
const UPCASE_MAX: usize = 0x1_0000;

impl UpCase {
    /// Expands the compressed table: `0xFFFF n` stands for `n` identity mappings.
    pub fn parse(raw: &[u8]) -> Self {
        let mut map: Vec<u16> = Vec::with_capacity(UPCASE_MAX.min(raw.len()));
        let mut units = raw.chunks_exact(2).map(|p| match *p {
            [lo, hi] => u16::from_le_bytes([lo, hi]),
            _ => 0,
        });
        while let Some(u) = units.next() {
            if map.len() >= UPCASE_MAX {
                break;
            }
            if u == 0xffff {
                let n = usize::from(units.next().unwrap_or(0));
                for _ in 0..n {
                    let Ok(c) = u16::try_from(map.len()) else {
                        break;
                    };
                    map.push(c);
                }
            } else {
                map.push(u);
            }
        }
        map.truncate(UPCASE_MAX);
        Self { map }
    }

    pub fn upcase(&self, c: u16) -> u16 {
        self.map.get(usize::from(c)).copied().unwrap_or(c)
    }

    /// The name hash (§7.6.4) of `name` up-cased.
    pub fn name_hash(&self, name: &[u16]) -> u16 {
        let mut hash: u16 = 0;
        for &c in name {
            let u = self.upcase(c);
            for b in u.to_le_bytes() {
                hash = hash.rotate_right(1).wrapping_add(u16::from(b));
            }
        }
        hash
    }
}

/// The table checksum (§7.2.2): over every byte, as the boot checksum.
pub(crate) fn table_checksum(raw: &[u8]) -> u32 {
    raw.iter().fold(0u32, |sum, &b| {
        sum.rotate_right(1).wrapping_add(u32::from(b))
    })
}

/// UTF-16 to UTF-8, unpaired surrogates as U+FFFD.
pub(crate) fn utf16_name(units: &[u16]) -> Vec<u8> {
    char::decode_utf16(units.iter().copied())
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect::<String>()
        .into_bytes()
}

/// TSK's permission bits for exFAT attributes, as for FAT (every entry executable;
/// readable unless read-only; writable unless hidden): the low byte holds FAT's bits.
pub(crate) fn tsk_mode(attributes: u16) -> u32 {
    let [low, _] = attributes.to_le_bytes();
    crate::fat::dirent::tsk_mode(low)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_applied_when_valid() {
        let mut e = [0u8; 32];
        e[0] = 0x85;
        // 2026-11-26 01:20:36 local.
        let date: u32 = ((2026 - 1980) << 9) | (11 << 5) | 26;
        let time: u32 = (1 << 11) | (20 << 5) | 18;
        let ts = (date << 16) | time;
        e[12..16].copy_from_slice(&ts.to_le_bytes());
        e[23] = 0x80 | 8; // +02:00
        e[16..20].copy_from_slice(&ts.to_le_bytes());
        e[24] = 0x80 | 0x7c; // -01:00
        e[8..12].copy_from_slice(&ts.to_le_bytes());
        e[20] = 150;
        let (t, notes) = Entry(e).times();
        assert_eq!(t.modified.unwrap().secs, 1_795_656_036 - 7200);
        assert_eq!(t.accessed.unwrap().secs, 1_795_656_036 + 3600);
        assert_eq!(t.created.unwrap().secs, 1_795_656_037);
        assert_eq!(t.created.unwrap().nanos, 500_000_000);
        assert!(notes.iter().any(|n| n.contains("+02:00")));
        assert!(notes.iter().any(|n| n.contains("-01:00")));
        assert!(notes.iter().any(|n| n.contains("no UTC offset")));
    }

    #[test]
    fn upcase_table_expands_and_hashes() {
        // Identity for 0..0x61, then 'a'..'c' -> 'A'..'C'.
        let mut raw = vec![0xff, 0xff, 0x61, 0x00];
        for c in [0x41u16, 0x42, 0x43] {
            raw.extend_from_slice(&c.to_le_bytes());
        }
        let up = UpCase::parse(&raw);
        assert_eq!(up.upcase(0x61), 0x41);
        assert_eq!(up.upcase(0x30), 0x30);
        assert_eq!(up.upcase(0x7a), 0x7a);
        assert_eq!(up.name_hash(&[0x61]), up.name_hash(&[0x41]));
    }
}
