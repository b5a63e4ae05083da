//! The exFAT main boot sector (Microsoft exFAT specification §3.1): where the FAT, the
//! cluster heap and the root directory are.

use crate::fat::boot::{le16, le32};
use crate::{FsError, ReadAt};

/// What the boot sector says, checked.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub bytes_per_sector: u64,
    pub sectors_per_cluster: u64,
    /// Sectors the volume claims.
    pub volume_sectors: u64,
    pub fat_sector: u64,
    pub fat_sectors: u64,
    pub number_of_fats: u8,
    /// First sector of the cluster heap (TSK's `firstdatasect`: inodes count from here).
    pub heap_sector: u64,
    pub cluster_count: u64,
    pub root_cluster: u32,
    pub serial: u32,
    pub revision: u16,
    pub flags: u16,
    pub percent_in_use: u8,
}

impl crate::fat::runs::Geometry for Layout {
    fn bytes_per_sector(&self) -> u64 {
        self.bytes_per_sector
    }
    fn sectors_per_cluster(&self) -> u64 {
        self.sectors_per_cluster
    }
    fn first_cluster_sector(&self) -> u64 {
        self.heap_sector
    }
    fn cluster_count(&self) -> u64 {
        self.cluster_count
    }
}

fn le64(b: &[u8; 512], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

/// Whether `b` is an exFAT boot sector (the file system name).
pub(crate) fn looks_like_exfat(b: &[u8; 512]) -> bool {
    b.get(3..11) == Some(b"EXFAT   ".as_slice()) && b[510] == 0x55 && b[511] == 0xaa
}

/// Reads and checks the main boot sector.
pub(crate) fn read(vol: &dyn ReadAt, volume: &str) -> Result<Layout, FsError> {
    let mut b = [0u8; 512];
    crate::read_exact(vol, volume, &mut b, 0)?;
    let bad =
        |off: u64, field: &'static str, why: String| FsError::invalid(volume, off, field, why);
    if b.get(3..11) != Some(b"EXFAT   ".as_slice()) {
        return Err(bad(
            3,
            "exFAT boot sector.FileSystemName",
            format!(
                "{:02x?}, expected \"EXFAT   \"",
                b.get(3..11).unwrap_or_default()
            ),
        ));
    }
    if b[510] != 0x55 || b[511] != 0xaa {
        return Err(bad(
            510,
            "exFAT boot sector.BootSignature",
            format!("{:02x}{:02x}, expected 55aa", b[510], b[511]),
        ));
    }
    let bps_shift = b[108];
    if !(9..=12).contains(&bps_shift) {
        return Err(bad(
            108,
            "exFAT boot sector.BytesPerSectorShift",
            format!("{bps_shift}, expected 9 ..= 12"),
        ));
    }
    let spc_shift = b[109];
    if u32::from(spc_shift) + u32::from(bps_shift) > 25 {
        return Err(bad(
            109,
            "exFAT boot sector.SectorsPerClusterShift",
            format!("{spc_shift}: clusters over 32 MiB"),
        ));
    }
    let number_of_fats = b[110];
    if !(1..=2).contains(&number_of_fats) {
        return Err(bad(
            110,
            "exFAT boot sector.NumberOfFats",
            format!("{number_of_fats}, expected 1 or 2"),
        ));
    }
    let volume_sectors = le64(&b, 72);
    let fat_sector = u64::from(le32(&b, 80));
    let fat_sectors = u64::from(le32(&b, 84));
    let heap_sector = u64::from(le32(&b, 88));
    let cluster_count = u64::from(le32(&b, 92));
    let root_cluster = le32(&b, 96);
    let sectors_per_cluster = 1u64 << spc_shift;
    if fat_sector == 0 || fat_sectors == 0 {
        return Err(bad(
            80,
            "exFAT boot sector.FatOffset",
            "the FAT is empty or at sector 0".into(),
        ));
    }
    if fat_sectors.saturating_mul(1 << bps_shift) < (cluster_count + 2) * 4 {
        return Err(bad(
            84,
            "exFAT boot sector.FatLength",
            format!(
                "{fat_sectors} sectors cannot hold {} cluster entries",
                cluster_count + 2
            ),
        ));
    }
    let heap_end = cluster_count
        .checked_mul(sectors_per_cluster)
        .and_then(|s| s.checked_add(heap_sector));
    if heap_sector < fat_sector + fat_sectors || heap_end.is_none_or(|e| e > volume_sectors) {
        return Err(bad(
            88,
            "exFAT boot sector.ClusterHeapOffset",
            format!(
                "heap of {cluster_count} clusters at sector {heap_sector} does not fit between \
                 the FAT (sectors {fat_sector} + {fat_sectors}) and the volume's end ({volume_sectors} sectors)"
            ),
        ));
    }
    if root_cluster < 2 || u64::from(root_cluster) > cluster_count + 1 {
        return Err(bad(
            96,
            "exFAT boot sector.FirstClusterOfRootDirectory",
            format!("{root_cluster}, expected 2 ..= {}", cluster_count + 1),
        ));
    }
    Ok(Layout {
        bytes_per_sector: 1 << bps_shift,
        sectors_per_cluster,
        volume_sectors,
        fat_sector,
        fat_sectors,
        number_of_fats,
        heap_sector,
        cluster_count,
        root_cluster,
        serial: le32(&b, 100),
        revision: le16(&b, 104),
        flags: le16(&b, 106),
        percent_in_use: b[112],
    })
}
