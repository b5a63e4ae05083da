//! The files of one volume, by path, as artifact parsers need them: `/etc/passwd`,
//! `/var/log/auth.log`, `Windows/System32/config/SYSTEM`.
//!
//! Everything goes through a [`FileSystem`] reader of `vestige-fs`, so nothing is ever
//! mounted and deleted names are never mistaken for live ones. Symbolic links are followed
//! *inside the image* only (an absolute target restarts at the volume's root, never the
//! host's), at most [`MAX_LINK_HOPS`] times. NTFS, FAT and exFAT are matched without
//! regard to case, as Windows does.

use crate::event::Evidence;
use std::collections::VecDeque;
use vestige_fs::walk::escape_name;
use vestige_fs::{DirEntry, FileKind, FileSystem, FsError, Inode, Metadata};

/// Symbolic links followed while resolving one path, as Linux's `MAXSYMLINKS`.
pub const MAX_LINK_HOPS: u32 = 40;

/// One volume's files, by path.
pub struct Files<'a> {
    fs: &'a dyn FileSystem,
    volume: String,
    case_insensitive: bool,
}

/// A file read by path.
#[derive(Debug, Clone)]
pub struct FileData {
    /// Its content, at most the cap the caller gave.
    pub bytes: Vec<u8>,
    /// Its metadata (after following links).
    pub metadata: Metadata,
    /// Whether the file is longer than what was read.
    pub truncated: bool,
    /// Where it is: volume, path as asked, inode.
    pub evidence: Evidence,
}

impl std::fmt::Debug for Files<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("volume", &self.volume)
            .field("case_insensitive", &self.case_insensitive)
            .finish_non_exhaustive()
    }
}

impl<'a> Files<'a> {
    /// The files of `fs`, named `volume` in evidence references (`sdb:002`).
    #[must_use]
    pub fn new(fs: &'a dyn FileSystem, volume: &str) -> Self {
        let kind = fs.info().kind;
        let case_insensitive = matches!(kind.as_str(), "ntfs" | "exfat") || kind.starts_with("fat");
        Self {
            fs,
            volume: volume.to_string(),
            case_insensitive,
        }
    }

    /// The file system underneath.
    #[must_use]
    pub fn fs(&self) -> &'a dyn FileSystem {
        self.fs
    }

    /// The volume's name in evidence references.
    #[must_use]
    pub fn volume(&self) -> &str {
        &self.volume
    }

    /// Whether names match regardless of case (NTFS, FAT, exFAT).
    #[must_use]
    pub fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// The evidence reference of `path` (display-safe, from the root: `/` added when
    /// missing, so every collector names a file the same way) and `inode`.
    #[must_use]
    pub fn evidence(&self, path: &[u8], inode: Option<Inode>) -> Evidence {
        let shown = escape_name(path);
        Evidence {
            volume: self.volume.clone(),
            path: Some(if shown.starts_with('/') {
                shown
            } else {
                format!("/{shown}")
            }),
            inode,
            ..Evidence::default()
        }
    }

    /// The inode `path` names, following symbolic links (the last one too); `None` when a
    /// component does not exist. Only allocated entries count.
    ///
    /// # Errors
    /// A directory cannot be read, or links loop.
    pub fn resolve(&self, path: &[u8]) -> Result<Option<Inode>, FsError> {
        self.resolve_with(path, true)
    }

    /// As [`Files::resolve`], but a link as the last component is not followed.
    ///
    /// # Errors
    /// A directory cannot be read, or links loop.
    pub fn resolve_no_follow(&self, path: &[u8]) -> Result<Option<Inode>, FsError> {
        self.resolve_with(path, false)
    }

    fn resolve_with(&self, path: &[u8], follow_last: bool) -> Result<Option<Inode>, FsError> {
        let root = self.fs.root();
        let mut stack: Vec<Inode> = vec![root];
        let mut todo: VecDeque<Vec<u8>> = components(path).collect();
        let mut hops = 0u32;
        while let Some(part) = todo.pop_front() {
            if part == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let dir = *stack.last().unwrap_or(&root);
            let Some(entry) = self.find(dir, &part)? else {
                return Ok(None);
            };
            let is_link = match entry.kind {
                FileKind::Symlink => true,
                FileKind::Unknown => self.fs.metadata(entry.inode)?.kind == FileKind::Symlink,
                _ => false,
            };
            if is_link && (follow_last || !todo.is_empty()) {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(FsError::Invalid {
                        volume: self.volume.clone(),
                        offset: 0,
                        field: "symbolic link",
                        reason: format!(
                            "more than {MAX_LINK_HOPS} links followed resolving {}",
                            escape_name(path)
                        ),
                    });
                }
                let target = self.fs.read_link(entry.inode)?;
                if target.first() == Some(&b'/') {
                    stack.truncate(1);
                }
                for (i, c) in components(&target).enumerate() {
                    todo.insert(i, c);
                }
            } else {
                stack.push(entry.inode);
            }
        }
        Ok(stack.last().copied())
    }

    /// The allocated entry named `name` in directory `dir`.
    fn find(&self, dir: Inode, name: &[u8]) -> Result<Option<DirEntry>, FsError> {
        let entries = match self.fs.read_dir(dir) {
            Ok(e) => e,
            // A path through a regular file names nothing.
            Err(_) if self.fs.metadata(dir)?.kind != FileKind::Directory => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(entries
            .into_iter()
            .find(|e| !e.deleted && self.same_name(&e.name, name)))
    }

    fn same_name(&self, a: &[u8], b: &[u8]) -> bool {
        if a == b {
            return true;
        }
        if !self.case_insensitive {
            return false;
        }
        match (std::str::from_utf8(a), std::str::from_utf8(b)) {
            (Ok(x), Ok(y)) => x.to_lowercase() == y.to_lowercase(),
            _ => a.eq_ignore_ascii_case(b),
        }
    }

    /// What `path` names (links followed), or `None`.
    ///
    /// # Errors
    /// As [`Files::resolve`], or the inode is damaged.
    pub fn metadata(&self, path: &[u8]) -> Result<Option<Metadata>, FsError> {
        match self.resolve(path)? {
            Some(i) => self.fs.metadata(i).map(Some),
            None => Ok(None),
        }
    }

    /// The first `cap` bytes of the file `path` names (links followed), or `None` when it
    /// does not exist or is a directory.
    ///
    /// # Errors
    /// As [`Files::resolve`], or its data cannot be read.
    pub fn read(&self, path: &[u8], cap: usize) -> Result<Option<FileData>, FsError> {
        let Some(inode) = self.resolve(path)? else {
            return Ok(None);
        };
        let metadata = self.fs.metadata(inode)?;
        if metadata.kind == FileKind::Directory {
            return Ok(None);
        }
        let want = usize::try_from(metadata.size)
            .unwrap_or(usize::MAX)
            .min(cap);
        let reader = self.fs.open(inode, None)?;
        let mut bytes = vec![0u8; want];
        let mut got = 0usize;
        while got < want {
            let Some(rest) = bytes.get_mut(got..) else {
                break;
            };
            let n = reader.read_at(rest, got as u64).map_err(|e| FsError::Io {
                volume: self.volume.clone(),
                offset: got as u64,
                len: rest.len(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            got += n;
        }
        bytes.truncate(got);
        let truncated = metadata.size > got as u64;
        Ok(Some(FileData {
            bytes,
            evidence: self.evidence(path, Some(inode)),
            metadata,
            truncated,
        }))
    }

    /// The allocated names in directory `path` (links followed), without `.`/`..`; empty
    /// when it does not exist.
    ///
    /// # Errors
    /// As [`Files::resolve`], or the directory is damaged.
    pub fn list(&self, path: &[u8]) -> Result<Vec<DirEntry>, FsError> {
        let Some(inode) = self.resolve(path)? else {
            return Ok(Vec::new());
        };
        match self.fs.read_dir(inode) {
            Ok(entries) => Ok(entries.into_iter().filter(|e| !e.deleted).collect()),
            Err(_) if self.fs.metadata(inode)?.kind != FileKind::Directory => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The target of the link `path` itself names (its parents' links followed), or
    /// `None` when it does not exist or is not a link.
    ///
    /// # Errors
    /// As [`Files::resolve`], or the link cannot be read.
    pub fn read_link(&self, path: &[u8]) -> Result<Option<Vec<u8>>, FsError> {
        let Some(inode) = self.resolve_no_follow(path)? else {
            return Ok(None);
        };
        if self.fs.metadata(inode)?.kind != FileKind::Symlink {
            return Ok(None);
        }
        self.fs.read_link(inode).map(Some)
    }
}

/// The non-empty, non-`.` components of a `/`-separated path.
fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .map(<[u8]>::to_vec)
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
