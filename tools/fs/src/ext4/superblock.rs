//! The ext2/3/4 superblock and group descriptors (kernel `Documentation/filesystems/ext4/`
//! "Super Block" and "Block Group Descriptors"), parsed and checked before anything else is
//! read through them.

use super::bytes::{le16, le32};
use crate::FsError;

/// Byte offset of the primary superblock in the volume.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Bytes of the superblock.
pub const SUPERBLOCK_BYTES: usize = 1024;
/// `s_magic`.
pub const MAGIC: u16 = 0xEF53;

// s_feature_compat
pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
pub const COMPAT_SPARSE_SUPER2: u32 = 0x200;
// s_feature_incompat
pub const INCOMPAT_COMPRESSION: u32 = 0x1;
pub const INCOMPAT_FILETYPE: u32 = 0x2;
pub const INCOMPAT_RECOVER: u32 = 0x4;
pub const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
pub const INCOMPAT_META_BG: u32 = 0x10;
pub const INCOMPAT_EXTENTS: u32 = 0x40;
pub const INCOMPAT_64BIT: u32 = 0x80;
pub const INCOMPAT_MMP: u32 = 0x100;
pub const INCOMPAT_FLEX_BG: u32 = 0x200;
pub const INCOMPAT_EA_INODE: u32 = 0x400;
pub const INCOMPAT_DIRDATA: u32 = 0x1000;
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
pub const INCOMPAT_LARGEDIR: u32 = 0x4000;
pub const INCOMPAT_INLINE_DATA: u32 = 0x8000;
pub const INCOMPAT_ENCRYPT: u32 = 0x10000;
pub const INCOMPAT_CASEFOLD: u32 = 0x20000;
/// What this reader understands; anything else is refused.
const INCOMPAT_KNOWN: u32 = INCOMPAT_FILETYPE
    | INCOMPAT_RECOVER
    | INCOMPAT_META_BG
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_MMP
    | INCOMPAT_FLEX_BG
    | INCOMPAT_EA_INODE
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA
    | INCOMPAT_ENCRYPT
    | INCOMPAT_CASEFOLD;
// s_feature_ro_compat
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub const RO_COMPAT_HUGE_FILE: u32 = 0x8;
pub const RO_COMPAT_GDT_CSUM: u32 = 0x10;
pub const RO_COMPAT_BIGALLOC: u32 = 0x200;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

/// Block group descriptor flag: the inode table and bitmap are not initialised (every
/// inode of the group is free).
pub const BG_INODE_UNINIT: u16 = 0x1;

/// The fields of the superblock this reader uses, as stored.
#[derive(Debug, Clone)]
pub struct Superblock {
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub first_data_block: u32,
    /// Bytes per block (1024 << s_log_block_size).
    pub block_size: u32,
    pub blocks_per_group: u32,
    /// Bytes per allocation unit: the block size, or the cluster size with bigalloc.
    pub cluster_size: u64,
    pub inodes_per_group: u32,
    pub mtime: u32,
    pub wtime: u32,
    pub state: u16,
    pub rev_level: u32,
    pub first_ino: u32,
    /// Bytes per inode record.
    pub inode_size: u16,
    pub compat: u32,
    pub incompat: u32,
    pub ro_compat: u32,
    pub uuid: [u8; 16],
    pub label: Vec<u8>,
    pub last_mounted: Vec<u8>,
    pub last_orphan: u32,
    /// The journal's inode (`s_journal_inum`; 0 with an external journal).
    pub journal_inum: u32,
    /// Bytes per group descriptor.
    pub desc_size: u16,
    pub first_meta_bg: u32,
    pub backup_bgs: [u32; 2],
    pub mkfs_time: u32,
    /// Number of block groups (derived, checked).
    pub groups: u32,
}

fn nul_trimmed(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b.get(..end).unwrap_or_default().to_vec()
}

impl Superblock {
    /// Parses and checks the superblock bytes (read at [`SUPERBLOCK_OFFSET`]).
    ///
    /// # Errors
    /// A bad magic, impossible geometry, or an incompatible feature this reader does not
    /// know.
    pub fn parse(b: &[u8], volume: &str) -> Result<Self, FsError> {
        let at = |field_offset: u64| SUPERBLOCK_OFFSET + field_offset;
        let bad = |off: u64, field: &'static str, reason: String| {
            FsError::invalid(volume, at(off), field, reason)
        };
        let magic = le16(b, 0x38);
        if magic != MAGIC {
            return Err(bad(
                0x38,
                "ext4 superblock.s_magic",
                format!("{magic:#06x}, expected {MAGIC:#06x}"),
            ));
        }
        let log_block_size = le32(b, 0x18);
        if log_block_size > 6 {
            return Err(bad(
                0x18,
                "ext4 superblock.s_log_block_size",
                format!("{log_block_size}, expected 0..=6 (1 KiB to 64 KiB blocks)"),
            ));
        }
        let block_size = 1024u32 << log_block_size;
        let rev_level = le32(b, 0x4C);
        let incompat = if rev_level >= 1 { le32(b, 0x60) } else { 0 };
        let unknown = incompat & !INCOMPAT_KNOWN;
        if unknown != 0 {
            let mut what = format!("ext4 incompatible feature bits {unknown:#x}");
            if unknown & INCOMPAT_COMPRESSION != 0 {
                what.push_str(" (compression)");
            }
            if unknown & INCOMPAT_JOURNAL_DEV != 0 {
                what.push_str(" (external journal device)");
            }
            if unknown & INCOMPAT_DIRDATA != 0 {
                what.push_str(" (dirdata)");
            }
            return Err(FsError::Unsupported {
                volume: volume.to_string(),
                what,
            });
        }
        let ro_compat = if rev_level >= 1 { le32(b, 0x64) } else { 0 };
        let blocks_per_group = le32(b, 0x20);
        let inodes_per_group = le32(b, 0x28);
        let bits_per_block = block_size.saturating_mul(8);
        // The block bitmap has one bit per allocation unit: a block, or with bigalloc a
        // cluster of 2^n blocks. Extents and group descriptors still count blocks, so
        // only the geometry checks change.
        let log_cluster_size = if ro_compat & RO_COMPAT_BIGALLOC != 0 {
            let log_cluster = le32(b, 0x1C);
            // The kernel's bound: clusters of at most 1 GiB (2^30 bytes).
            if log_cluster < log_block_size || log_cluster > 20 {
                return Err(bad(
                    0x1C,
                    "ext4 superblock.s_log_cluster_size",
                    format!(
                        "{log_cluster}, expected {log_block_size}..=20 (bigalloc: a cluster \
                         is a power-of-two number of blocks, at most 1 GiB)"
                    ),
                ));
            }
            let clusters_per_group = le32(b, 0x24);
            let ratio_log = log_cluster - log_block_size;
            if clusters_per_group == 0
                || clusters_per_group > bits_per_block
                || u64::from(clusters_per_group) << ratio_log != u64::from(blocks_per_group)
            {
                return Err(bad(
                    0x24,
                    "ext4 superblock.s_clusters_per_group",
                    format!(
                        "{clusters_per_group}, expected 1..={bits_per_block} and \
                         s_blocks_per_group {blocks_per_group} / {} blocks per cluster",
                        1u64 << ratio_log
                    ),
                ));
            }
            log_cluster
        } else {
            if blocks_per_group == 0 || blocks_per_group > bits_per_block {
                return Err(bad(
                    0x20,
                    "ext4 superblock.s_blocks_per_group",
                    format!("{blocks_per_group}, expected 1..={bits_per_block}"),
                ));
            }
            log_block_size
        };
        if inodes_per_group == 0 || inodes_per_group > bits_per_block {
            return Err(bad(
                0x28,
                "ext4 superblock.s_inodes_per_group",
                format!("{inodes_per_group}, expected 1..={bits_per_block}"),
            ));
        }
        let inode_size = if rev_level >= 1 { le16(b, 0x58) } else { 128 };
        if inode_size < 128 || !inode_size.is_power_of_two() || u32::from(inode_size) > block_size {
            return Err(bad(
                0x58,
                "ext4 superblock.s_inode_size",
                format!("{inode_size}, expected a power of two from 128 to the block size"),
            ));
        }
        let desc_size = if incompat & INCOMPAT_64BIT != 0 {
            let d = le16(b, 0xFE);
            if d < 64 || !d.is_power_of_two() || u32::from(d) > block_size {
                return Err(bad(
                    0xFE,
                    "ext4 superblock.s_desc_size",
                    format!("{d}, expected a power of two from 64 to the block size (64bit)"),
                ));
            }
            d
        } else {
            32
        };
        let first_data_block = le32(b, 0x14);
        let hi = if incompat & INCOMPAT_64BIT != 0 {
            le32(b, 0x150)
        } else {
            0
        };
        let blocks_count = u64::from(le32(b, 0x4)) | (u64::from(hi) << 32);
        if blocks_count <= u64::from(first_data_block) {
            return Err(bad(
                0x4,
                "ext4 superblock.s_blocks_count",
                format!("{blocks_count}, not above s_first_data_block {first_data_block}"),
            ));
        }
        if blocks_count.checked_mul(u64::from(block_size)).is_none() {
            return Err(bad(
                0x4,
                "ext4 superblock.s_blocks_count",
                format!("{blocks_count} blocks of {block_size} bytes overflow a 64-bit size"),
            ));
        }
        let groups64 =
            (blocks_count - u64::from(first_data_block)).div_ceil(u64::from(blocks_per_group));
        let groups = u32::try_from(groups64).map_err(|_| {
            bad(
                0x4,
                "ext4 superblock.s_blocks_count",
                format!("{blocks_count} blocks make {groups64} groups, more than 2^32"),
            )
        })?;
        let inodes_count = le32(b, 0x0);
        let max_inodes = u64::from(groups) * u64::from(inodes_per_group);
        if inodes_count == 0 || u64::from(inodes_count) > max_inodes {
            return Err(bad(
                0x0,
                "ext4 superblock.s_inodes_count",
                format!("{inodes_count}, expected 1..={max_inodes} ({groups} groups)"),
            ));
        }
        let mut uuid = [0u8; 16];
        if let Some(s) = b.get(0x68..0x78) {
            uuid.copy_from_slice(s);
        }
        Ok(Self {
            inodes_count,
            blocks_count,
            first_data_block,
            block_size,
            blocks_per_group,
            inodes_per_group,
            mtime: le32(b, 0x2C),
            wtime: le32(b, 0x30),
            state: le16(b, 0x3A),
            rev_level,
            first_ino: if rev_level >= 1 { le32(b, 0x54) } else { 11 },
            inode_size,
            compat: if rev_level >= 1 { le32(b, 0x5C) } else { 0 },
            incompat,
            ro_compat,
            cluster_size: 1024u64 << log_cluster_size,
            uuid,
            label: nul_trimmed(b.get(0x78..0x88).unwrap_or_default()),
            last_mounted: nul_trimmed(b.get(0x88..0xC8).unwrap_or_default()),
            last_orphan: le32(b, 0xE8),
            journal_inum: le32(b, 0xE0),
            desc_size,
            first_meta_bg: le32(b, 0x104),
            backup_bgs: [le32(b, 0x24C), le32(b, 0x250)],
            mkfs_time: le32(b, 0x108),
            groups,
        })
    }

    /// `ext2`, `ext3` or `ext4`, as TSK tells them apart (ext4-only features, a journal).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        let ext4_incompat =
            INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG | INCOMPAT_INLINE_DATA;
        if self.incompat & ext4_incompat != 0
            || self.ro_compat & (RO_COMPAT_HUGE_FILE | RO_COMPAT_METADATA_CSUM) != 0
        {
            "ext4"
        } else if self.compat & COMPAT_HAS_JOURNAL != 0 {
            "ext3"
        } else {
            "ext2"
        }
    }

    /// Whether group `g` holds a superblock backup (and so, without meta_bg, a GDT copy).
    #[must_use]
    pub fn has_super(&self, g: u32) -> bool {
        if g == 0 {
            return true;
        }
        if self.compat & COMPAT_SPARSE_SUPER2 != 0 {
            return g == self.backup_bgs[0] || g == self.backup_bgs[1];
        }
        if g <= 1 || self.ro_compat & RO_COMPAT_SPARSE_SUPER == 0 {
            return true;
        }
        if g.is_multiple_of(2) {
            return false;
        }
        [3u32, 5, 7].iter().any(|&base| {
            let mut p = base;
            while p < g {
                match p.checked_mul(base) {
                    Some(n) => p = n,
                    None => return false,
                }
            }
            p == g
        })
    }

    /// The first block of group `g`.
    #[must_use]
    pub fn group_first_block(&self, g: u32) -> u64 {
        u64::from(self.first_data_block) + u64::from(g) * u64::from(self.blocks_per_group)
    }

    /// The block holding group `g`'s descriptor and the byte offset in that block.
    #[must_use]
    pub fn descriptor_location(&self, g: u32) -> (u64, u32) {
        let per_block = self.block_size / u32::from(self.desc_size);
        let index = g / per_block.max(1);
        let within = (g % per_block.max(1)) * u32::from(self.desc_size);
        // The block holding the primary superblock (byte 1024): block 1 with 1 KiB blocks,
        // else 0. It is not always s_first_data_block: a 1 KiB-block bigalloc file system
        // has s_first_data_block 0 and its superblock in block 1 (as the kernel's
        // descriptor_loc and ext4_bg_num_gdb_meta count it).
        let sb_block = SUPERBLOCK_OFFSET / u64::from(self.block_size.max(1));
        if self.incompat & INCOMPAT_META_BG != 0 && index >= self.first_meta_bg {
            // meta_bg: each meta group's descriptors live in its first group, after its
            // superblock copy if it has one.
            let first = index.saturating_mul(per_block);
            let mut after = u64::from(self.has_super(first));
            if first == 0 && self.first_data_block == 0 && sb_block == 1 {
                after += 1;
            }
            (self.group_first_block(first) + after, within)
        } else {
            (sb_block + 1 + u64::from(index), within)
        }
    }

    /// The features, by name, for the notes.
    #[must_use]
    pub fn feature_names(&self) -> Vec<&'static str> {
        let compat = [
            (0x1, "dir_prealloc"),
            (0x2, "imagic_inodes"),
            (COMPAT_HAS_JOURNAL, "has_journal"),
            (0x8, "ext_attr"),
            (0x10, "resize_inode"),
            (0x20, "dir_index"),
            (0x200, "sparse_super2"),
            (0x400, "fast_commit"),
            (0x1000, "orphan_file"),
        ];
        let incompat = [
            (INCOMPAT_FILETYPE, "filetype"),
            (INCOMPAT_RECOVER, "needs_recovery"),
            (INCOMPAT_META_BG, "meta_bg"),
            (INCOMPAT_EXTENTS, "extent"),
            (INCOMPAT_64BIT, "64bit"),
            (INCOMPAT_MMP, "mmp"),
            (INCOMPAT_FLEX_BG, "flex_bg"),
            (INCOMPAT_EA_INODE, "ea_inode"),
            (INCOMPAT_CSUM_SEED, "metadata_csum_seed"),
            (INCOMPAT_LARGEDIR, "large_dir"),
            (INCOMPAT_INLINE_DATA, "inline_data"),
            (INCOMPAT_ENCRYPT, "encrypt"),
            (INCOMPAT_CASEFOLD, "casefold"),
        ];
        let ro = [
            (RO_COMPAT_SPARSE_SUPER, "sparse_super"),
            (0x2, "large_file"),
            (RO_COMPAT_HUGE_FILE, "huge_file"),
            (RO_COMPAT_GDT_CSUM, "uninit_bg"),
            (0x20, "dir_nlink"),
            (0x40, "extra_isize"),
            (0x100, "quota"),
            (RO_COMPAT_BIGALLOC, "bigalloc"),
            (RO_COMPAT_METADATA_CSUM, "metadata_csum"),
            (0x1000, "read-only"),
            (0x2000, "project"),
            (0x8000, "verity"),
            (0x10000, "orphan_present"),
        ];
        let mut out = Vec::new();
        for (set, table) in [
            (self.compat, &compat[..]),
            (self.incompat, &incompat[..]),
            (self.ro_compat, &ro[..]),
        ] {
            for &(bit, name) in table {
                if set & bit != 0 {
                    out.push(name);
                }
            }
        }
        out
    }
}

/// What a group descriptor says (the parts this reader uses).
#[derive(Debug, Clone, Copy)]
pub struct GroupDesc {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub flags: u16,
}

impl GroupDesc {
    /// Parses one descriptor (`desc_size` bytes).
    #[must_use]
    pub fn parse(b: &[u8], is64: bool) -> Self {
        let (bb_hi, ib_hi, it_hi) = if is64 {
            (le32(b, 0x20), le32(b, 0x24), le32(b, 0x28))
        } else {
            (0, 0, 0)
        };
        Self {
            block_bitmap: u64::from(le32(b, 0x0)) | (u64::from(bb_hi) << 32),
            inode_bitmap: u64::from(le32(b, 0x4)) | (u64::from(ib_hi) << 32),
            inode_table: u64::from(le32(b, 0x8)) | (u64::from(it_hi) << 32),
            flags: le16(b, 0x12),
        }
    }
}
