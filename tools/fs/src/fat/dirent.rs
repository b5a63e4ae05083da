//! FAT directory entries (Microsoft FAT specification §6, §7): the 32-byte short entry, VFAT
//! long-name entries and their checksum, and the validity tests TSK applies so that the same
//! entries are listed.

use super::runs::dos_time;
use crate::Times;

/// Attribute bits.
pub(crate) const ATTR_READ_ONLY: u8 = 0x01;
pub(crate) const ATTR_HIDDEN: u8 = 0x02;
pub(crate) const ATTR_SYSTEM: u8 = 0x04;
pub(crate) const ATTR_VOLUME_ID: u8 = 0x08;
pub(crate) const ATTR_DIRECTORY: u8 = 0x10;
pub(crate) const ATTR_ARCHIVE: u8 = 0x20;
pub(crate) const ATTR_LONG_NAME: u8 = 0x0f;

/// The first name byte of a deleted entry.
pub(crate) const DELETED: u8 = 0xe5;

/// One 32-byte directory entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw(pub [u8; 32]);

impl Raw {
    fn le16(&self, at: usize) -> u16 {
        match (self.0.get(at), self.0.get(at + 1)) {
            (Some(&lo), Some(&hi)) => u16::from_le_bytes([lo, hi]),
            _ => 0,
        }
    }
    pub fn attr(&self) -> u8 {
        self.0[11]
    }
    pub fn is_lfn(&self) -> bool {
        self.attr() & ATTR_LONG_NAME == ATTR_LONG_NAME
    }
    pub fn is_deleted(&self) -> bool {
        self.0[0] == DELETED
    }
    pub fn is_dir(&self) -> bool {
        self.attr() & ATTR_DIRECTORY != 0
    }
    pub fn is_label(&self) -> bool {
        self.attr() & ATTR_VOLUME_ID != 0 && !self.is_lfn()
    }
    fn nt_byte(&self) -> u8 {
        self.0[12]
    }
    fn ctime_tenths(&self) -> u8 {
        self.0[13]
    }
    fn ctime(&self) -> u16 {
        self.le16(14)
    }
    fn cdate(&self) -> u16 {
        self.le16(16)
    }
    fn adate(&self) -> u16 {
        self.le16(18)
    }
    fn wtime(&self) -> u16 {
        self.le16(22)
    }
    fn wdate(&self) -> u16 {
        self.le16(24)
    }
    /// The first cluster (high word only where `fat32`, as TSK reads it).
    pub fn first_cluster(&self, fat32: bool) -> u32 {
        let hi = if fat32 { u32::from(self.le16(20)) } else { 0 };
        (hi << 16) | u32::from(self.le16(26))
    }
    pub fn size(&self) -> u32 {
        u32::from(self.le16(28)) | (u32::from(self.le16(30)) << 16)
    }
    /// The four times, as stored (local time read as UTC); FAT has no change time.
    pub fn times(&self) -> Times {
        Times {
            accessed: dos_time(self.adate(), 0, 0),
            modified: dos_time(self.wdate(), self.wtime(), 0),
            changed: None,
            created: dos_time(self.cdate(), self.ctime(), self.ctime_tenths()),
        }
    }
    /// Whether this is the `.` or `..` entry.
    pub fn is_dot(&self) -> bool {
        self.0[0] == b'.'
            && self.is_dir()
            && (self.0[1] == b' ' || (self.0[1] == b'.' && self.0[2] == b' '))
    }

    /// The 8.3 name as TSK shows it: padding dropped, `.` before the extension, the NT
    /// lower-case flags applied, a deleted entry's lost first byte as `_`. Other bytes are
    /// kept as stored (an OEM code page we do not know; TSK shows bytes > 0x7e as `^`).
    pub fn short_name(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        let lower_base = self.nt_byte() & 0x08 != 0;
        let lower_ext = self.nt_byte() & 0x10 != 0;
        let skip = |b: u8| b == 0 || b == 0xff || b == 0x20;
        for (i, &b) in self.0.iter().take(8).enumerate() {
            if skip(b) {
                continue;
            }
            out.push(if i == 0 && b == DELETED {
                b'_'
            } else if i == 0 && b == 0x05 {
                DELETED // 0x05 stands for a real 0xe5 first byte (§6.1)
            } else if lower_base {
                b.to_ascii_lowercase()
            } else {
                b
            });
        }
        let mut dot = false;
        for &b in self.0.iter().skip(8).take(3) {
            if skip(b) {
                continue;
            }
            if !dot {
                out.push(b'.');
                dot = true;
            }
            out.push(if lower_ext { b.to_ascii_lowercase() } else { b });
        }
        out
    }

    /// The volume label in a root-directory label entry.
    pub fn label(&self) -> String {
        self.0
            .iter()
            .take(11)
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    char::from(b)
                } else {
                    '^'
                }
            })
            .collect::<String>()
            .trim_end()
            .to_string()
    }

    /// The VFAT checksum of the 11-byte short name (§7.2), with `first` as its first byte.
    pub fn checksum_with_first(&self, first: u8) -> u8 {
        let mut sum: u8 = 0;
        for (i, &b) in self.0.iter().take(11).enumerate() {
            let b = if i == 0 { first } else { b };
            sum = sum.rotate_right(1).wrapping_add(b);
        }
        sum
    }

    /// TSK's test of whether a slot holds a directory entry at all (`fatxxfs_is_dentry`):
    /// `basic_only` for allocated sectors of a sane directory.
    pub fn is_entry(
        &self,
        basic_only: bool,
        last_cluster: u64,
        data_bytes: u64,
        fat32: bool,
    ) -> bool {
        if self.is_lfn() {
            let seq = self.0[0];
            return seq <= 0x4f || seq == DELETED;
        }
        if !basic_only {
            if self.nt_byte() & !0x18 != 0 || self.attr() & !0x3f != 0 {
                return false;
            }
            if self.attr() & ATTR_VOLUME_ID != 0
                && self.attr() & (ATTR_DIRECTORY | ATTR_READ_ONLY | ATTR_ARCHIVE) != 0
            {
                return false;
            }
            let time_ok =
                |t: u16| t == 0 || ((t & 0x1f) <= 30 && ((t >> 5) & 0x3f) <= 59 && (t >> 11) <= 23);
            let date_ok = |d: u16| {
                d == 0 || ((1..=31).contains(&(d & 0x1f)) && (1..=12).contains(&((d >> 5) & 0x0f)))
            };
            if !time_ok(self.ctime())
                || !time_ok(self.wtime())
                || !date_ok(self.cdate())
                || self.ctime_tenths() > 200
                || !date_ok(self.adate())
                || !date_ok(self.wdate())
            {
                return false;
            }
        }
        let clust = u64::from(self.first_cluster(fat32));
        let eof = (0x0fff_fff8..=0x0fff_ffff).contains(&clust);
        if clust > last_cluster && !eof {
            return false;
        }
        if u64::from(self.size()) > data_bytes {
            return false;
        }
        if self.size() > 0 && clust == 0 {
            return false;
        }
        if !self.is_83_name() {
            return false;
        }
        !(self.ctime() == 0
            && self.wtime() == 0
            && self.cdate() == 0
            && self.adate() == 0
            && self.wdate() == 0
            && clust == 0
            && self.size() == 0)
    }

    /// TSK's `is_83_name`.
    fn is_83_name(&self) -> bool {
        let legal = |c: u8| {
            !(c < 0x20
                || c == 0x22
                || (0x2a..=0x2c).contains(&c)
                || c == 0x2e
                || c == 0x2f
                || (0x3a..=0x3f).contains(&c)
                || (0x5b..=0x5d).contains(&c)
                || c == 0x7c)
        };
        let n = &self.0;
        if n[0] != 0x05 && n[0] != b'.' && !legal(n[0]) {
            return false;
        }
        if n[0] == 0x20 {
            return false;
        }
        if n[1] == b'.' {
            if n[0] != b'.' {
                return false;
            }
        } else if !legal(n[1]) {
            return false;
        }
        if !n.iter().take(11).skip(2).all(|&c| legal(c)) {
            return false;
        }
        if !self.is_label() {
            for i in 1..7 {
                if n.get(i) == Some(&0x20) && n.get(i + 1) != Some(&0x20) {
                    return false;
                }
            }
            if n[9] == 0x20 && n[10] != 0x20 {
                return false;
            }
        }
        true
    }
}

/// VFAT long-name entries gathered until their short entry (§7): the UTF-16 units in name
/// order and the checksum they carry.
#[derive(Debug, Default)]
pub(crate) struct LongName {
    units: Vec<u16>,
    checksum: u8,
    active: bool,
}

/// At most 20 long-name entries (255 characters) make one name; more are ignored.
const MAX_LFN_UNITS: usize = 20 * 13;

impl LongName {
    /// Adds a long-name entry (they come last part first).
    pub fn push(&mut self, e: &Raw) {
        let seq = e.0[0];
        let chk = e.0[13];
        if !self.active || (seq & 0x40 != 0 && seq != DELETED) || chk != self.checksum {
            self.units.clear();
            self.checksum = chk;
            self.active = true;
        }
        if self.units.len() >= MAX_LFN_UNITS {
            return;
        }
        let mut part: Vec<u16> = Vec::with_capacity(13);
        for (from, to) in [(1usize, 11usize), (14, 26), (28, 32)] {
            for pair in e.0.get(from..to).unwrap_or_default().chunks_exact(2) {
                if let [lo, hi] = *pair {
                    part.push(u16::from_le_bytes([lo, hi]));
                }
            }
        }
        part.extend_from_slice(&self.units);
        self.units = part;
    }

    /// Takes the gathered name if its checksum matches `short` (for a deleted short entry,
    /// whose first byte is lost, if it matches for some first byte).
    pub fn take_for(&mut self, short: &Raw) -> Option<Vec<u8>> {
        if !self.active {
            return None;
        }
        self.active = false;
        let units = std::mem::take(&mut self.units);
        let matches = if short.is_deleted() {
            (0..=255u8).any(|f| short.checksum_with_first(f) == self.checksum)
        } else {
            short.checksum_with_first(short.0[0]) == self.checksum
        };
        if !matches {
            return None;
        }
        let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
        let name: String = char::decode_utf16(units.into_iter().take(end))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        (!name.is_empty()).then(|| name.into_bytes())
    }

    /// Forgets a gathered name (an entry that is not its short entry came between).
    pub fn reset(&mut self) {
        self.active = false;
        self.units.clear();
    }
}

/// TSK's permission bits for FAT attributes: every file executable, readable unless
/// read-only, writable unless hidden (`attr2mode`; TSK ties write to hidden, not to
/// read-only, and this follows it so that bodyfiles compare).
pub(crate) fn tsk_mode(attr: u8) -> u32 {
    let mut mode = 0o111;
    if attr & ATTR_READ_ONLY == 0 {
        mode |= 0o444;
    }
    if attr & ATTR_HIDDEN == 0 {
        mode |= 0o222;
    }
    mode
}

/// The attributes in words, for notes.
pub(crate) fn attr_names(attr: u8) -> String {
    let names = [
        (ATTR_READ_ONLY, "read-only"),
        (ATTR_HIDDEN, "hidden"),
        (ATTR_SYSTEM, "system"),
        (ATTR_VOLUME_ID, "volume label"),
        (ATTR_DIRECTORY, "directory"),
        (ATTR_ARCHIVE, "archive"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(b, _)| attr & b != 0)
        .map(|(_, n)| *n)
        .collect();
    format!(
        "FAT attributes 0x{attr:02x}: {}",
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    )
}
