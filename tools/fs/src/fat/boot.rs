//! The FAT boot sector and BIOS parameter block (Microsoft FAT specification §3), and the
//! layout it implies: where the FATs, the root directory region and the clusters are, and
//! whether the volume is FAT12, FAT16 or FAT32 (decided by the cluster count, §3.5).

use crate::{FsError, ReadAt};

/// FAT12, FAT16 or FAT32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

impl FatType {
    /// TSK's mask on FAT entries.
    pub fn mask(self) -> u32 {
        match self {
            Self::Fat12 => 0x0fff,
            Self::Fat16 => 0xffff,
            Self::Fat32 => 0x0fff_ffff,
        }
    }

    /// `fat12`, `fat16`, `fat32`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fat12 => "fat12",
            Self::Fat16 => "fat16",
            Self::Fat32 => "fat32",
        }
    }
}

/// What the boot sector says, checked, in sectors unless named otherwise.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub fat_type: FatType,
    pub bytes_per_sector: u64,
    pub sectors_per_cluster: u64,
    pub num_fats: u64,
    pub sectors_per_fat: u64,
    pub first_fat_sector: u64,
    /// TSK's `firstdatasect`: the first sector after the FATs (FAT12/16: the root directory
    /// region). FAT directory-entry addresses count from here.
    pub first_data_sector: u64,
    /// The sector of cluster 2.
    pub first_cluster_sector: u64,
    /// Sectors the file system claims.
    pub total_sectors: u64,
    /// Clusters in the data area (TSK's `clustcnt`); valid cluster numbers are 2 ..= count+1.
    pub cluster_count: u64,
    /// FAT32: the root directory's first cluster.
    pub root_cluster: u32,
    pub label: Option<String>,
    pub serial: Option<u32>,
    pub oem: String,
}

impl crate::fat::runs::Geometry for Layout {
    fn bytes_per_sector(&self) -> u64 {
        self.bytes_per_sector
    }
    fn sectors_per_cluster(&self) -> u64 {
        self.sectors_per_cluster
    }
    fn first_cluster_sector(&self) -> u64 {
        self.first_cluster_sector
    }
    fn cluster_count(&self) -> u64 {
        self.cluster_count
    }
}

/// Little-endian fields of a boot sector (0 past its end); exFAT's too.
pub(crate) fn le16(b: &[u8; 512], at: usize) -> u16 {
    match (b.get(at), b.get(at + 1)) {
        (Some(&lo), Some(&hi)) => u16::from_le_bytes([lo, hi]),
        _ => 0,
    }
}

pub(crate) fn le32(b: &[u8; 512], at: usize) -> u32 {
    u32::from(le16(b, at)) | (u32::from(le16(b, at + 2)) << 16)
}

fn label(raw: Option<&[u8]>) -> Option<String> {
    let raw = raw?;
    let s: String = raw
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect();
    let s = s.trim_end().to_string();
    (!s.is_empty() && s != "NO NAME").then_some(s)
}

/// Whether `b` looks like a FAT boot sector (cheap: signature and BPB sanity).
pub(crate) fn looks_like_fat(b: &[u8; 512]) -> bool {
    let bps = le16(b, 11);
    let spc = b[13];
    b[510] == 0x55
        && b[511] == 0xaa
        && matches!(bps, 512 | 1024 | 2048 | 4096)
        && spc != 0
        && spc.is_power_of_two()
        && le16(b, 14) != 0
        && b[16] != 0
        && b.get(3..11) != Some(b"EXFAT   ".as_slice())
        && (le16(b, 19) != 0 || le32(b, 32) != 0)
        && (le16(b, 22) != 0 || le32(b, 36) != 0)
}

/// Reads and checks the boot sector of `vol`.
pub(crate) fn read(vol: &dyn ReadAt, volume: &str) -> Result<Layout, FsError> {
    let mut b = [0u8; 512];
    crate::read_exact(vol, volume, &mut b, 0)?;
    let bad =
        |off: u64, field: &'static str, why: String| FsError::invalid(volume, off, field, why);
    if b[510] != 0x55 || b[511] != 0xaa {
        return Err(bad(
            510,
            "FAT boot sector.signature",
            format!("found {:02x}{:02x}, expected 55aa", b[510], b[511]),
        ));
    }
    if b.get(3..11) == Some(b"EXFAT   ".as_slice()) {
        return Err(bad(3, "FAT boot sector.oem_name", "this is exFAT".into()));
    }
    let bps = le16(&b, 11);
    if !matches!(bps, 512 | 1024 | 2048 | 4096) {
        return Err(bad(
            11,
            "FAT BPB.bytes_per_sector",
            format!("{bps}, expected 512, 1024, 2048 or 4096"),
        ));
    }
    let spc = b[13];
    if spc == 0 || !spc.is_power_of_two() {
        return Err(bad(
            13,
            "FAT BPB.sectors_per_cluster",
            format!("{spc}, expected a power of two"),
        ));
    }
    let reserved = le16(&b, 14);
    if reserved == 0 {
        return Err(bad(
            14,
            "FAT BPB.reserved_sectors",
            "0, expected at least 1".into(),
        ));
    }
    let num_fats = b[16];
    if num_fats == 0 {
        return Err(bad(16, "FAT BPB.num_fats", "0, expected at least 1".into()));
    }
    let root_entries = u64::from(le16(&b, 17));
    let total_sectors = match le16(&b, 19) {
        0 => u64::from(le32(&b, 32)),
        n => u64::from(n),
    };
    if total_sectors == 0 {
        return Err(bad(19, "FAT BPB.total_sectors", "0 in both fields".into()));
    }
    let fat16_size = le16(&b, 22);
    let sectors_per_fat = match fat16_size {
        0 => u64::from(le32(&b, 36)),
        n => u64::from(n),
    };
    if sectors_per_fat == 0 {
        return Err(bad(
            22,
            "FAT BPB.sectors_per_fat",
            "0 in both fields".into(),
        ));
    }
    let bytes_per_sector = u64::from(bps);
    let first_fat_sector = u64::from(reserved);
    let first_data_sector = sectors_per_fat
        .checked_mul(u64::from(num_fats))
        .and_then(|s| s.checked_add(first_fat_sector))
        .ok_or_else(|| bad(22, "FAT BPB.sectors_per_fat", "overflows".into()))?;
    let root_sectors = (root_entries * 32).div_ceil(bytes_per_sector);
    let first_cluster_sector = first_data_sector + root_sectors;
    if first_cluster_sector >= total_sectors {
        return Err(bad(
            19,
            "FAT BPB.total_sectors",
            format!("{total_sectors}, but the data area starts at sector {first_cluster_sector}"),
        ));
    }
    let sectors_per_cluster = u64::from(spc);
    let cluster_count = (total_sectors - first_cluster_sector) / sectors_per_cluster;
    let fat_type = if cluster_count < 4085 {
        FatType::Fat12
    } else if cluster_count < 65525 {
        FatType::Fat16
    } else {
        FatType::Fat32
    };
    if fat_type == FatType::Fat32 && root_entries != 0 {
        return Err(bad(
            17,
            "FAT BPB.root_entries",
            format!("{root_entries} on a FAT32 volume ({cluster_count} clusters), expected 0"),
        ));
    }
    if fat_type != FatType::Fat32 && root_entries == 0 {
        return Err(bad(
            17,
            "FAT BPB.root_entries",
            format!("0 on a volume of {cluster_count} clusters (FAT12/16 need a root region)"),
        ));
    }
    // The FAT must hold an entry for every cluster.
    let fat_bits: u64 = match fat_type {
        FatType::Fat12 => 12,
        FatType::Fat16 => 16,
        FatType::Fat32 => 32,
    };
    let needed_bytes = ((cluster_count + 2) * fat_bits).div_ceil(8);
    if sectors_per_fat.saturating_mul(bytes_per_sector) < needed_bytes {
        return Err(bad(
            22,
            "FAT BPB.sectors_per_fat",
            format!(
                "{sectors_per_fat} sectors cannot hold {} cluster entries",
                cluster_count + 2
            ),
        ));
    }
    let (label_at, serial_at, sig_at, root_cluster) = if fat_type == FatType::Fat32 {
        (71usize, 67usize, 66usize, le32(&b, 44))
    } else {
        (43, 39, 38, 0)
    };
    if fat_type == FatType::Fat32
        && (root_cluster < 2 || u64::from(root_cluster) > cluster_count + 1)
    {
        return Err(bad(
            44,
            "FAT32 BPB.root_cluster",
            format!("{root_cluster}, expected 2 ..= {}", cluster_count + 1),
        ));
    }
    let has_ext = b.get(sig_at).is_some_and(|&s| s == 0x29 || s == 0x28);
    Ok(Layout {
        fat_type,
        bytes_per_sector,
        sectors_per_cluster,
        num_fats: u64::from(num_fats),
        sectors_per_fat,
        first_fat_sector,
        first_data_sector,
        first_cluster_sector,
        total_sectors,
        cluster_count,
        root_cluster,
        label: if has_ext {
            label(b.get(label_at..label_at + 11))
        } else {
            None
        },
        serial: has_ext.then(|| le32(&b, serial_at)),
        oem: b
            .get(3..11)
            .map(|o| String::from_utf8_lossy(o).trim_end().to_string())
            .unwrap_or_default(),
    })
}
