//! The XFS superblock (big-endian, at byte 0 of every allocation group; the one in AG 0
//! is the primary), its geometry checked before anything is read with it, and its CRC
//! (v5: CRC32C over the first sector with `sb_crc` zeroed, stored little-endian).

use super::be::{be16, be32, be64};
use crate::FsError;

/// `XFSB`.
pub const MAGIC: u32 = 0x5846_5342;
/// Bytes of the superblock read (one sector at most matters; the CRC covers the sector).
pub const SB_READ: usize = 512;

const VERSION_DIRV2: u16 = 0x2000;
const VERSION_MOREBITS: u16 = 0x8000;
const VERSION_ASCII_CI: u16 = 0x4000;
const FEATURES2_FTYPE: u32 = 0x200;

/// v5 incompat: ftype in directory entries.
pub const INCOMPAT_FTYPE: u32 = 0x1;
const INCOMPAT_SPINODES: u32 = 0x2;
const INCOMPAT_META_UUID: u32 = 0x4;
/// v5 incompat: 64-bit timestamps (nanoseconds since 1901).
pub const INCOMPAT_BIGTIME: u32 = 0x8;
const INCOMPAT_NEEDSREPAIR: u32 = 0x10;
/// v5 incompat: 64-bit extent counters.
pub const INCOMPAT_NREXT64: u32 = 0x20;
const INCOMPAT_EXCHRANGE: u32 = 0x40;
const INCOMPAT_PARENT: u32 = 0x80;
/// What this reader understands.
const INCOMPAT_KNOWN: u32 = INCOMPAT_FTYPE
    | INCOMPAT_SPINODES
    | INCOMPAT_META_UUID
    | INCOMPAT_BIGTIME
    | INCOMPAT_NEEDSREPAIR
    | INCOMPAT_NREXT64
    | INCOMPAT_EXCHRANGE
    | INCOMPAT_PARENT;

/// The parsed superblock.
#[derive(Debug, Clone)]
pub struct Superblock {
    pub block_size: u32,
    pub dblocks: u64,
    pub rblocks: u64,
    pub uuid: [u8; 16],
    pub logstart: u64,
    pub rootino: u64,
    pub agblocks: u32,
    pub agcount: u32,
    pub logblocks: u32,
    pub version: u16,
    pub versionnum: u16,
    pub sectsize: u16,
    pub inode_size: u16,
    pub inopblock: u16,
    pub label: Vec<u8>,
    pub blocklog: u8,
    pub inodelog: u8,
    pub inopblog: u8,
    pub agblklog: u8,
    pub icount: u64,
    pub ifree: u64,
    pub dirblklog: u8,
    pub features2: u32,
    pub ro_compat: u32,
    pub incompat: u32,
    pub log_incompat: u32,
    pub crc: u32,
    pub crc_ok: Option<bool>,
}

fn bad(volume: &str, off: u64, field: &'static str, reason: String) -> FsError {
    FsError::invalid(volume, off, field, reason)
}

pub use crate::crc32c::crc32c;

impl Superblock {
    /// Parses and checks the primary superblock (`raw` is its first sector).
    pub fn parse(raw: &[u8], volume: &str) -> Result<Self, FsError> {
        if be32(raw, 0) != MAGIC {
            return Err(bad(volume, 0, "xfs sb_magicnum", "not XFSB".into()));
        }
        let versionnum = be16(raw, 100);
        let version = versionnum & 0xF;
        let mut label = raw.get(108..120).unwrap_or_default().to_vec();
        while label.last() == Some(&0) {
            label.pop();
        }
        let mut uuid = [0u8; 16];
        if let Some(u) = raw.get(32..48) {
            uuid.copy_from_slice(u);
        }
        let byte = |o: usize| raw.get(o).copied().unwrap_or(0);
        let mut sb = Self {
            block_size: be32(raw, 4),
            dblocks: be64(raw, 8),
            rblocks: be64(raw, 16),
            uuid,
            logstart: be64(raw, 48),
            rootino: be64(raw, 56),
            agblocks: be32(raw, 84),
            agcount: be32(raw, 88),
            logblocks: be32(raw, 96),
            version,
            versionnum,
            sectsize: be16(raw, 102),
            inode_size: be16(raw, 104),
            inopblock: be16(raw, 106),
            label,
            blocklog: byte(120),
            inodelog: byte(122),
            inopblog: byte(123),
            agblklog: byte(124),
            icount: be64(raw, 128),
            ifree: be64(raw, 136),
            dirblklog: byte(192),
            features2: be32(raw, 200),
            ro_compat: 0,
            incompat: 0,
            log_incompat: 0,
            crc: 0,
            crc_ok: None,
        };
        if version == 5 {
            sb.ro_compat = be32(raw, 212);
            sb.incompat = be32(raw, 216);
            sb.log_incompat = be32(raw, 220);
            sb.crc = u32::from_le_bytes(
                raw.get(224..228)
                    .and_then(|s| s.try_into().ok())
                    .unwrap_or([0; 4]),
            );
            let sect = usize::from(sb.sectsize).min(raw.len());
            if let (Some(head), Some(tail)) = (raw.get(..224), raw.get(228..sect)) {
                let c = crc32c(crc32c(crc32c(!0, head), &[0; 4]), tail);
                sb.crc_ok = Some(!c == sb.crc);
            }
        }
        sb.check(volume)?;
        Ok(sb)
    }

    fn check(&self, volume: &str) -> Result<(), FsError> {
        match self.version {
            4 => {
                if self.versionnum & VERSION_DIRV2 == 0 {
                    return Err(FsError::Unsupported {
                        volume: volume.to_string(),
                        what: "xfs version 4 without v2 directories (sb_versionnum)".into(),
                    });
                }
            }
            5 => {
                let unknown = self.incompat & !INCOMPAT_KNOWN;
                if unknown != 0 {
                    return Err(FsError::Unsupported {
                        volume: volume.to_string(),
                        what: format!("xfs incompatible features {unknown:#x}"),
                    });
                }
            }
            v => {
                return Err(bad(
                    volume,
                    100,
                    "xfs sb_versionnum",
                    format!("version {v}; 4 or 5 expected"),
                ))
            }
        }
        let bs = self.block_size;
        if !(512..=65536).contains(&bs)
            || !bs.is_power_of_two()
            || 1u32.checked_shl(u32::from(self.blocklog)) != Some(bs)
        {
            return Err(bad(
                volume,
                4,
                "xfs sb_blocksize",
                format!("{bs} (log {}); a power of two 512..65536", self.blocklog),
            ));
        }
        let is = u32::from(self.inode_size);
        if !(256..=2048).contains(&is)
            || !is.is_power_of_two()
            || u32::from(self.inodelog) >= 16
            || 1u32 << self.inodelog != is
            || is > bs
        {
            return Err(bad(
                volume,
                104,
                "xfs sb_inodesize",
                format!("{is}; a power of two 256..2048, at most a block"),
            ));
        }
        if u32::from(self.inopblock) != bs / is
            || u32::from(self.inopblog) >= 16
            || 1u32 << self.inopblog != u32::from(self.inopblock)
        {
            return Err(bad(
                volume,
                106,
                "xfs sb_inopblock",
                format!("{} (log {})", self.inopblock, self.inopblog),
            ));
        }
        if self.agblocks < 5
            || self.agblklog > 31
            || u64::from(self.agblocks) > 1u64 << self.agblklog
            || self.agcount == 0
        {
            return Err(bad(
                volume,
                84,
                "xfs sb_agblocks",
                format!(
                    "{} blocks per AG (log {}), {} AGs",
                    self.agblocks, self.agblklog, self.agcount
                ),
            ));
        }
        let max = u64::from(self.agcount).saturating_mul(u64::from(self.agblocks));
        if self.dblocks == 0
            || self.dblocks > max
            || self.dblocks.checked_mul(u64::from(bs)).is_none()
        {
            return Err(bad(
                volume,
                8,
                "xfs sb_dblocks",
                format!("{} blocks; {max} at most for the AGs", self.dblocks),
            ));
        }
        if u32::from(self.dirblklog) + u32::from(self.blocklog) > 16 {
            return Err(bad(
                volume,
                192,
                "xfs sb_dirblklog",
                format!("{}: directory blocks over 64 KiB", self.dirblklog),
            ));
        }
        if u32::from(self.agblklog) + u32::from(self.inopblog) > 56 {
            return Err(bad(
                volume,
                124,
                "xfs sb_agblklog",
                "inode numbers overflow".into(),
            ));
        }
        Ok(())
    }

    /// Whether directory entries carry a file-type byte.
    pub fn ftype(&self) -> bool {
        if self.version == 5 {
            self.incompat & INCOMPAT_FTYPE != 0
        } else {
            self.versionnum & VERSION_MOREBITS != 0 && self.features2 & FEATURES2_FTYPE != 0
        }
    }

    /// Bytes of a directory block.
    pub fn dir_block(&self) -> u32 {
        self.block_size << self.dirblklog
    }

    /// The byte offset of file-system block `fsbno` (AG number in the high bits).
    pub fn fsb_offset(&self, fsbno: u64) -> Option<u64> {
        let agno = fsbno >> self.agblklog;
        let agbno = fsbno & ((1u64 << self.agblklog) - 1);
        if agno >= u64::from(self.agcount) || agbno >= u64::from(self.agblocks) {
            return None;
        }
        let daddr = agno * u64::from(self.agblocks) + agbno;
        if daddr >= self.dblocks {
            return None;
        }
        daddr.checked_mul(u64::from(self.block_size))
    }

    /// Whether `len` blocks from `fsbno` stay inside one AG and the file system.
    pub fn extent_ok(&self, fsbno: u64, len: u64) -> bool {
        let agbno = fsbno & ((1u64 << self.agblklog) - 1);
        self.fsb_offset(fsbno).is_some()
            && agbno
                .checked_add(len)
                .is_some_and(|e| e <= u64::from(self.agblocks))
            && self
                .fsb_offset(fsbno)
                .and_then(|o| o.checked_add(len.checked_mul(u64::from(self.block_size))?))
                .is_some_and(|e| e <= self.dblocks.saturating_mul(u64::from(self.block_size)))
    }

    /// The byte offset of inode `ino`, or None when it names no inode of this file system.
    pub fn inode_offset(&self, ino: u64) -> Option<u64> {
        let shift = u32::from(self.agblklog) + u32::from(self.inopblog);
        let agno = ino.checked_shr(shift).unwrap_or(0);
        let agino = ino & ((1u64 << shift) - 1);
        let agbno = agino >> self.inopblog;
        let index = agino & ((1u64 << self.inopblog) - 1);
        if agno >= u64::from(self.agcount) || agbno >= u64::from(self.agblocks) {
            return None;
        }
        let block = self.fsb_offset((agno << self.agblklog) | agbno)?;
        block.checked_add(index * u64::from(self.inode_size))
    }

    /// The largest inode number (for deciding whether 32 bits hold every inode number).
    pub fn max_inode(&self) -> u64 {
        let shift = u32::from(self.agblklog) + u32::from(self.inopblog);
        (u64::from(self.agcount) << shift).saturating_sub(1)
    }

    /// Feature names for the notes.
    pub fn feature_names(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.version == 5 {
            f.push("crc");
            let inc = [
                (INCOMPAT_FTYPE, "ftype"),
                (INCOMPAT_SPINODES, "sparse_inodes"),
                (INCOMPAT_META_UUID, "meta_uuid"),
                (INCOMPAT_BIGTIME, "bigtime"),
                (INCOMPAT_NEEDSREPAIR, "needsrepair"),
                (INCOMPAT_NREXT64, "nrext64"),
                (INCOMPAT_EXCHRANGE, "exchange_range"),
                (INCOMPAT_PARENT, "parent_pointers"),
            ];
            f.extend(
                inc.iter()
                    .filter(|(b, _)| self.incompat & b != 0)
                    .map(|p| p.1),
            );
            let ro = [
                (1, "finobt"),
                (2, "rmapbt"),
                (4, "reflink"),
                (8, "inobtcount"),
            ];
            f.extend(
                ro.iter()
                    .filter(|(b, _)| self.ro_compat & b != 0)
                    .map(|p| p.1),
            );
        } else {
            if self.ftype() {
                f.push("ftype");
            }
            if self.versionnum & 0x10 != 0 {
                f.push("attr");
            }
            if self.versionnum & 0x1000 != 0 {
                f.push("extflg");
            }
            if self.versionnum & 0x400 != 0 {
                f.push("logv2");
            }
            if self.features2 & 0x8 != 0 {
                f.push("attr2");
            }
            if self.features2 & 0x80 != 0 {
                f.push("projid32");
            }
        }
        if self.versionnum & VERSION_ASCII_CI != 0 {
            f.push("ascii_ci");
        }
        f
    }
}
