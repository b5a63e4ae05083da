//! XFS (version 4 and 5 superblocks), read straight from the volume (never mounted, the
//! log never replayed).
//!
//! What is read: the primary superblock (its CRC checked and a mismatch noted, unknown
//! incompatible features refused), inodes by XFS's own numbers (`agno << (agblklog +
//! inopblog) | agino`), inode cores v2 and v3 (crtime; bigtime and nrext64), data forks
//! in local, extents and btree (bmbt) format, unwritten extents as zeros, shortform,
//! block, leaf and node directories (data blocks only, below the 32 GiB leaf offset),
//! inline and remote symlinks, local attribute fork names. Names of freed entries are
//! recovered from the unused regions of directory data blocks. A realtime section is
//! ignored (noted); an inode is "allocated" when its core has the `IN` magic and a
//! non-zero mode (the kernel zeroes the mode when it frees an inode): the inode B+trees
//! are not read.
//!
//! ```no_run
//! use vestige_fs::{xfs::Xfs, FileSystem};
//! # fn demo(vol: &dyn vestige_fs::ReadAt) -> Result<(), vestige_fs::FsError> {
//! let fs = Xfs::open(vol, "disk.raw volume 1")?;
//! for e in fs.read_dir(fs.root())? {
//!     println!("{} {}", String::from_utf8_lossy(&e.name), e.inode);
//! }
//! # Ok(()) }
//! ```

mod be;
mod data;
mod dir;
mod inode;
pub mod sb;
#[cfg(test)]
mod tests;

use crate::{DirEntry, FileKind, FileSystem, FsError, FsInfo, Inode, Metadata, ReadAt};
use data::{Content, FileData};
use inode::RawInode;
use sb::Superblock;

/// Logical byte offset of a directory's leaf blocks: data blocks lie below.
const DIR2_LEAF_OFFSET: u64 = 32 << 30;
/// Bytes of directory data blocks read for one directory at most.
const MAX_DIR_BYTES: u64 = 256 << 20;
/// Entries returned for one directory at most.
const MAX_DIR_ENTRIES: usize = 10_000_000;
/// Symlink targets are at most this long (`XFS_SYMLINK_MAXLEN`).
const SYMLINK_MAX: u64 = 1024;
/// `XSLM`, the v5 remote symlink block header magic, and that header's size.
const XSLM: u32 = 0x5853_4C4D;
const XSLM_HDR: usize = 56;

/// An XFS file system over a volume.
pub struct Xfs<'a> {
    vol: &'a dyn ReadAt,
    volume: String,
    sb: Superblock,
    notes: Vec<String>,
}

impl std::fmt::Debug for Xfs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xfs")
            .field("volume", &self.volume)
            .field("version", &self.sb.version)
            .field("block_size", &self.sb.block_size)
            .finish_non_exhaustive()
    }
}

/// Whether `vol` starts with an XFS superblock magic (`XFSB`).
#[must_use]
pub fn probe(vol: &dyn ReadAt) -> bool {
    let mut m = [0u8; 4];
    vol.read_exact_at(&mut m, 0).is_ok() && u32::from_be_bytes(m) == sb::MAGIC
}

fn uuid_string(u: &[u8; 16]) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex::encode(u.get(0..4).unwrap_or_default()),
        hex::encode(u.get(4..6).unwrap_or_default()),
        hex::encode(u.get(6..8).unwrap_or_default()),
        hex::encode(u.get(8..10).unwrap_or_default()),
        hex::encode(u.get(10..16).unwrap_or_default())
    )
}

impl<'a> Xfs<'a> {
    /// Whether `vol` starts with an XFS superblock magic.
    #[must_use]
    pub fn probe(vol: &dyn ReadAt) -> bool {
        probe(vol)
    }

    /// Opens the file system on `vol`; `volume` names it in errors.
    ///
    /// # Errors
    /// Not XFS, damaged geometry, or a feature this reader does not know
    /// ([`FsError::Unsupported`]).
    pub fn open(vol: &'a dyn ReadAt, volume: &str) -> Result<Self, FsError> {
        let mut raw = vec![0u8; sb::SB_READ];
        crate::read_exact(vol, volume, &mut raw, 0)?;
        let sb = Superblock::parse(&raw, volume)?;
        if sb.inode_offset(sb.rootino).is_none() {
            return Err(FsError::invalid(
                volume,
                56,
                "xfs sb_rootino",
                format!("inode {} is outside the file system", sb.rootino),
            ));
        }
        let mut notes = vec![
            format!("xfs version {}", sb.version),
            format!("features: {}", sb.feature_names().join(" ")),
            format!(
                "{} allocation groups of {} blocks; inodes of {} bytes; directory blocks of {} bytes",
                sb.agcount,
                sb.agblocks,
                sb.inode_size,
                sb.dir_block()
            ),
        ];
        match sb.crc_ok {
            Some(true) => notes.push("superblock CRC matches".into()),
            Some(false) => notes.push(format!(
                "superblock CRC mismatch (sb_crc {:#010x}): read anyway",
                sb.crc
            )),
            None => {}
        }
        if sb.logstart == 0 {
            notes.push(format!("external log of {} blocks", sb.logblocks));
        } else {
            notes.push(format!(
                "internal log at block {:#x} (byte {}), {} blocks; never replayed",
                sb.logstart,
                sb.fsb_offset(sb.logstart)
                    .map_or_else(|| "outside the file system".to_string(), |o| o.to_string()),
                sb.logblocks
            ));
        }
        if sb.rblocks != 0 {
            notes.push(format!(
                "realtime section of {} blocks ignored (its files read as empty)",
                sb.rblocks
            ));
        }
        if sb.log_incompat != 0 {
            notes.push(format!(
                "log incompatible features {:#x} (the log is dirty; not replayed)",
                sb.log_incompat
            ));
        }
        notes.push(format!(
            "{} inodes allocated, {} of them free (sb_icount, sb_ifree)",
            sb.icount, sb.ifree
        ));
        let bs = u64::from(sb.block_size);
        let claimed = sb.dblocks.saturating_mul(bs);
        if claimed > vol.size() {
            notes.push(format!(
                "the file system claims {claimed} bytes but the volume has {} (truncated image?)",
                vol.size()
            ));
        }
        Ok(Self {
            vol,
            volume: volume.to_string(),
            sb,
            notes,
        })
    }

    fn not_found(&self, what: String) -> FsError {
        FsError::NotFound {
            volume: self.volume.clone(),
            what,
        }
    }

    /// Inode `ino`'s record (its `IN` magic checked) and byte offset.
    fn read_inode(&self, ino: Inode) -> Result<(RawInode, u64), FsError> {
        let off = self
            .sb
            .inode_offset(ino)
            .ok_or_else(|| self.not_found(format!("inode {ino}")))?;
        let mut buf = vec![0u8; usize::from(self.sb.inode_size)];
        crate::read_exact(self.vol, &self.volume, &mut buf, off)?;
        let raw = RawInode::parse(&buf);
        if raw.magic != inode::MAGIC {
            return Err(FsError::invalid(
                &self.volume,
                off,
                "xfs inode di_magic",
                format!("inode {ino}: {:#06x}, IN expected", raw.magic),
            ));
        }
        if !(1..=3).contains(&raw.version) || (self.sb.version == 5 && raw.version != 3) {
            return Err(FsError::invalid(
                &self.volume,
                off + 4,
                "xfs inode di_version",
                format!("inode {ino}: version {}", raw.version),
            ));
        }
        if raw.version >= 3 && raw.raw.len() < 176 {
            return Err(FsError::invalid(
                &self.volume,
                off,
                "xfs inode di_version",
                format!("inode {ino}: a v3 core needs 176 bytes"),
            ));
        }
        if usize::from(raw.forkoff) * 8 + raw.core_size() > raw.raw.len() {
            return Err(FsError::invalid(
                &self.volume,
                off + 82,
                "xfs inode di_forkoff",
                format!("inode {ino}: {} past the inode", raw.forkoff),
            ));
        }
        Ok((raw, off))
    }

    fn size_of(raw: &RawInode) -> u64 {
        match raw.kind() {
            FileKind::CharDevice | FileKind::BlockDevice | FileKind::Fifo | FileKind::Socket => 0,
            _ => raw.size,
        }
    }

    /// What backs an inode's data fork, for `size` bytes.
    fn content(&self, ino: Inode, raw: &RawInode, off: u64, size: u64) -> Result<Content, FsError> {
        match raw.format {
            inode::FMT_DEV => Ok(Content::Inline(Vec::new())),
            inode::FMT_LOCAL => Ok(Content::Inline(raw.data_fork().to_vec())),
            f @ (inode::FMT_EXTENTS | inode::FMT_BTREE) => {
                if raw.flags & 0x1 != 0 {
                    // XFS_DIFLAG_REALTIME: blocks in the realtime section, not read.
                    return Ok(Content::Runs(Vec::new()));
                }
                Ok(Content::Runs(self.map_fork(
                    ino,
                    off,
                    raw.data_fork(),
                    f == inode::FMT_BTREE,
                    raw.nextents,
                    size,
                )?))
            }
            f => Err(FsError::invalid(
                &self.volume,
                off + 5,
                "xfs inode di_format",
                format!("inode {ino}: format {f}"),
            )),
        }
    }

    fn data(
        &self,
        ino: Inode,
        raw: &RawInode,
        off: u64,
        size: u64,
    ) -> Result<FileData<'_>, FsError> {
        Ok(FileData {
            vol: self.vol,
            volume: &self.volume,
            block_size: u64::from(self.sb.block_size),
            size,
            content: self.content(ino, raw, off, size)?,
        })
    }

    fn dir_rules(&self) -> dir::Rules {
        dir::Rules {
            ftype: self.sb.ftype(),
            v5: self.sb.version == 5,
            max_inode: self.sb.max_inode(),
        }
    }

    /// A symlink's target.
    fn link_target(&self, ino: Inode, raw: &RawInode, off: u64) -> Result<Vec<u8>, FsError> {
        let len = raw.size.min(SYMLINK_MAX);
        let n = usize::try_from(len).unwrap_or(0);
        if raw.format == inode::FMT_LOCAL {
            return Ok(raw.data_fork().get(..n).unwrap_or(raw.data_fork()).to_vec());
        }
        let bs = self.sb.block_size as usize;
        let v5 = self.sb.version == 5;
        // v5: each block starts with an XSLM header; the span covers headers too.
        let per = if v5 { bs - XSLM_HDR } else { bs };
        let blocks = n.div_ceil(per).max(1);
        let span = (blocks * bs) as u64;
        let data = self.data(ino, raw, off, span)?;
        let mut out = Vec::with_capacity(n);
        let mut buf = vec![0u8; bs];
        for b in 0..blocks {
            data.read_exact_at(&mut buf, (b * bs) as u64)
                .map_err(|e| FsError::Io {
                    volume: self.volume.clone(),
                    offset: off,
                    len: bs,
                    source: e,
                })?;
            let want = n - out.len();
            // mkfs.xfs -p (xfsprogs 6.1) writes v5 remote symlinks without the header:
            // then the block holds the target alone, and that is what is read.
            if v5 && be::be32(&buf, 0) == XSLM {
                let bytes = (be::be32(&buf, 8) as usize).min(want).min(per);
                out.extend_from_slice(buf.get(XSLM_HDR..XSLM_HDR + bytes).unwrap_or_default());
            } else {
                out.extend_from_slice(buf.get(..want.min(bs)).unwrap_or_default());
            }
            if out.len() >= n {
                break;
            }
        }
        Ok(out)
    }

    /// Names in a local (shortform) attribute fork, for the notes.
    fn attr_names(raw: &RawInode) -> Vec<String> {
        let fork = raw.attr_fork();
        let mut names = Vec::new();
        if raw.aformat != inode::FMT_LOCAL {
            return names;
        }
        let count = usize::from(fork.get(2).copied().unwrap_or(0));
        let mut pos = 4;
        for _ in 0..count {
            let (Some(&nl), Some(&vl), Some(&fl)) =
                (fork.get(pos), fork.get(pos + 1), fork.get(pos + 2))
            else {
                break;
            };
            let Some(name) = fork.get(pos + 3..pos + 3 + usize::from(nl)) else {
                break;
            };
            let ns = match fl & 0xE {
                0x2 => "trusted.",
                0x4 => "security.",
                0x8 => "parent.",
                _ => "user.",
            };
            names.push(format!("{ns}{}", crate::walk::escape_name(name)));
            pos += 3 + usize::from(nl) + usize::from(vl);
        }
        names
    }
}

impl FileSystem for Xfs<'_> {
    fn info(&self) -> FsInfo {
        FsInfo {
            kind: "xfs".into(),
            label: (!self.sb.label.is_empty())
                .then(|| String::from_utf8_lossy(&self.sb.label).into_owned()),
            id: Some(uuid_string(&self.sb.uuid)),
            block_size: self.sb.block_size,
            size_bytes: self
                .sb
                .dblocks
                .saturating_mul(u64::from(self.sb.block_size)),
            notes: self.notes.clone(),
        }
    }

    fn root(&self) -> Inode {
        self.sb.rootino
    }

    fn read_dir(&self, dir: Inode) -> Result<Vec<DirEntry>, FsError> {
        let (raw, off) = self.read_inode(dir)?;
        if raw.kind() != FileKind::Directory {
            return Err(FsError::invalid(
                &self.volume,
                off + 2,
                "xfs inode di_mode",
                format!("inode {dir} is not a directory (mode {:#o})", raw.mode),
            ));
        }
        let rules = self.dir_rules();
        let mut out = Vec::new();
        if raw.format == inode::FMT_LOCAL {
            dir::shortform(raw.data_fork(), &rules, &mut out, MAX_DIR_ENTRIES);
            return Ok(out);
        }
        let size = raw.size.min(DIR2_LEAF_OFFSET);
        let data = self.data(dir, &raw, off, size)?;
        let dbs = u64::from(self.sb.dir_block());
        let mut buf = vec![0u8; self.sb.dir_block() as usize];
        let Content::Runs(runs) = &data.content else {
            return Ok(out);
        };
        let bs = u64::from(self.sb.block_size);
        let cap = MAX_DIR_BYTES.min(self.vol.size().max(dbs));
        // Only directory blocks some run maps are read (holes are freed blocks).
        let mut starts: Vec<u64> = Vec::new();
        for r in runs {
            let first = r.logical * bs / dbs;
            let last = (r.logical + r.len) * bs;
            let mut d = first;
            while d * dbs < last && d * dbs < size {
                if starts.last() != Some(&d) {
                    if (starts.len() as u64).saturating_add(1).saturating_mul(dbs) > cap {
                        return Err(FsError::invalid(
                            &self.volume,
                            off + 56,
                            "xfs inode di_size",
                            format!(
                                "directory inode {dir} maps more than {cap} bytes of data blocks"
                            ),
                        ));
                    }
                    starts.push(d);
                }
                d += 1;
            }
        }
        for d in starts {
            if out.len() >= MAX_DIR_ENTRIES {
                break;
            }
            if data.read_exact_at(&mut buf, d * dbs).is_err() {
                continue;
            }
            dir::data_block(&buf, &rules, &mut out, MAX_DIR_ENTRIES);
        }
        Ok(out)
    }

    fn metadata(&self, ino: Inode) -> Result<Metadata, FsError> {
        let (raw, off) = self.read_inode(ino)?;
        let mut notes = Vec::new();
        if raw.version >= 3 && raw.self_ino != ino {
            notes.push(format!("di_ino says {} (not this inode)", raw.self_ino));
        }
        if raw.flags & 0x1 != 0 {
            notes.push("realtime file (its data, in the realtime section, is not read)".into());
        }
        if raw.flags2 & 0x2 != 0 {
            notes.push("reflink (may share blocks)".into());
        }
        let names = Self::attr_names(&raw);
        if !names.is_empty() {
            notes.push(format!("xattrs in inode: {}", names.join(" ")));
        } else if raw.forkoff != 0 && raw.aformat != inode::FMT_LOCAL {
            notes.push(format!(
                "attribute fork in format {} ({} extents), names not read",
                raw.aformat, raw.anextents
            ));
        }
        if raw.format == inode::FMT_BTREE {
            notes.push("data fork in btree format".into());
        }
        let _ = off;
        Ok(Metadata {
            mode: u32::from(raw.mode & 0o7777),
            uid: raw.uid,
            gid: raw.gid,
            size: Self::size_of(&raw),
            links: raw.nlink,
            allocated: raw.mode != 0,
            times: raw.times,
            notes,
            ..Metadata::new(ino, raw.kind())
        })
    }

    fn open(&self, ino: Inode, stream: Option<&str>) -> Result<Box<dyn ReadAt + '_>, FsError> {
        if let Some(s) = stream {
            return Err(self.not_found(format!("stream {s:?} of inode {ino} (xfs has none)")));
        }
        let (raw, off) = self.read_inode(ino)?;
        if raw.kind() == FileKind::Symlink {
            let target = self.link_target(ino, &raw, off)?;
            return Ok(Box::new(FileData {
                vol: self.vol,
                volume: &self.volume,
                block_size: u64::from(self.sb.block_size),
                size: target.len() as u64,
                content: Content::Inline(target),
            }));
        }
        Ok(Box::new(self.data(ino, &raw, off, Self::size_of(&raw))?))
    }

    fn read_link(&self, ino: Inode) -> Result<Vec<u8>, FsError> {
        let (raw, off) = self.read_inode(ino)?;
        if raw.kind() != FileKind::Symlink {
            return Err(FsError::invalid(
                &self.volume,
                off + 2,
                "xfs inode di_mode",
                format!("inode {ino} is not a symbolic link (mode {:#o})", raw.mode),
            ));
        }
        self.link_target(ino, &raw, off)
    }
}
