//! Walking a whole file system and writing TSK 3.x bodyfile lines, the same for every
//! file-system reader.
//!
//! The walk is bounded whatever the evidence says: a directory already visited is not
//! entered again (a hostile directory that names an ancestor), depth is capped, and so is
//! the number of entries. Deleted directories are entered when their inode still says
//! they are directories, as `fls -r` does.

use crate::{DirEntry, FileKind, FileSystem, FsError, Inode, Metadata, Times};
use std::collections::HashSet;
use std::fmt::Write as _;

/// Deeper paths are not followed (real trees are a few dozen levels deep).
pub const MAX_DEPTH: usize = 256;
/// At most this many entries are walked in all.
pub const MAX_ENTRIES: usize = 50_000_000;

/// One file found by the walk: where, under which name, and what its inode says.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its path from the root, `/`-separated, as stored (bytes).
    pub path: Vec<u8>,
    /// The directory entry that names it.
    pub entry: DirEntry,
    /// What its inode says (an error when the inode cannot be read: the entry is still
    /// reported).
    pub metadata: Result<Metadata, String>,
}

/// What went wrong on the way (the walk goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The directory's path.
    pub path: Vec<u8>,
    /// What happened.
    pub what: String,
}

/// Walks every directory from the root, depth first, children in the order the directory
/// gives them, and calls `visit` for each entry (directories before their contents).
/// Orphan inodes come last, under `$OrphanFiles/OrphanFile-N`, as TSK names them.
/// Returns the problems met (unreadable directories, loops, caps).
pub fn walk(fs: &dyn FileSystem, mut visit: impl FnMut(&Found)) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen: HashSet<Inode> = HashSet::new();
    let mut count = 0usize;
    let root = fs.root();
    seen.insert(root);
    // (directory inode, its path, depth)
    let mut stack: Vec<(Inode, Vec<u8>, usize)> = vec![(root, Vec::new(), 0)];
    while let Some((dir, path, depth)) = stack.pop() {
        let entries = match fs.read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                problems.push(Problem {
                    path,
                    what: e.to_string(),
                });
                continue;
            }
        };
        let mut subdirs = Vec::new();
        for entry in entries {
            count += 1;
            if count > MAX_ENTRIES {
                problems.push(Problem {
                    path,
                    what: format!("more than {MAX_ENTRIES} entries; the walk stops"),
                });
                return problems;
            }
            let mut child = path.clone();
            child.push(b'/');
            child.extend_from_slice(&entry.name);
            let metadata = fs.metadata(entry.inode).map_err(|e| e.to_string());
            let is_dir = match &metadata {
                Ok(m) => m.kind == FileKind::Directory,
                Err(_) => false,
            };
            let found = Found {
                path: child,
                entry,
                metadata,
            };
            visit(&found);
            if is_dir {
                if depth + 1 >= MAX_DEPTH {
                    problems.push(Problem {
                        path: found.path,
                        what: format!("deeper than {MAX_DEPTH} levels; not entered"),
                    });
                } else if seen.insert(found.entry.inode) {
                    subdirs.push((found.entry.inode, found.path, depth + 1));
                } else if !found.entry.deleted {
                    problems.push(Problem {
                        path: found.path,
                        what: format!(
                            "directory inode {} is already in the tree; not entered again",
                            found.entry.inode
                        ),
                    });
                }
            }
        }
        // Depth first, in directory order.
        stack.extend(subdirs.into_iter().rev());
    }
    match fs.orphans() {
        Ok(orphans) => {
            for inode in orphans {
                let metadata = fs.metadata(inode).map_err(|e| e.to_string());
                let kind = metadata.as_ref().map_or(FileKind::Unknown, |m| m.kind);
                let name = format!("OrphanFile-{inode}").into_bytes();
                let mut path = b"/$OrphanFiles/".to_vec();
                path.extend_from_slice(&name);
                visit(&Found {
                    path,
                    entry: DirEntry {
                        name,
                        inode,
                        kind,
                        deleted: true,
                    },
                    metadata,
                });
            }
        }
        Err(e) => problems.push(Problem {
            path: b"/$OrphanFiles".to_vec(),
            what: e.to_string(),
        }),
    }
    problems
}

/// A name as a bodyfile (or terminal) shows it: valid UTF-8 kept, control characters,
/// `|` (the field separator), `\` and invalid bytes as `\xNN`, so one name is one field on
/// one line whatever the evidence holds.
#[must_use]
pub fn escape_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '|' || c == '\\' {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// TSK's mode string: the entry's type letter, `/`, the inode's type letter and the
/// permission bits as `ls` shows them (`r/rrw-r--r--`).
#[must_use]
pub fn mode_string(entry_kind: FileKind, m: Option<&Metadata>) -> String {
    let mut s = String::with_capacity(12);
    s.push(entry_kind.tsk_letter());
    s.push('/');
    let Some(m) = m else {
        s.push_str("----------");
        return s;
    };
    s.push(m.kind.tsk_letter());
    let mode = m.mode;
    let special = [
        (0o4000, 0o100, 's', 'S'),
        (0o2000, 0o010, 's', 'S'),
        (0o1000, 0o001, 't', 'T'),
    ];
    for (i, (bit_special, bit_x, lower, upper)) in special.into_iter().enumerate() {
        let shift = 6 - 3 * i;
        s.push(if mode & (0o4 << shift) != 0 { 'r' } else { '-' });
        s.push(if mode & (0o2 << shift) != 0 { 'w' } else { '-' });
        s.push(match (mode & bit_special != 0, mode & bit_x != 0) {
            (true, true) => lower,
            (true, false) => upper,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

fn secs(t: Option<crate::Timestamp>) -> i64 {
    t.map_or(0, |t| t.secs)
}

fn line(
    out: &mut String,
    name: &str,
    address: &str,
    mode: &str,
    m: Option<&Metadata>,
    size: u64,
    t: &Times,
) {
    let (uid, gid) = m.map_or((0, 0), |m| (m.uid, m.gid));
    let _ = writeln!(
        out,
        "0|{name}|{address}|{mode}|{uid}|{gid}|{size}|{}|{}|{}|{}",
        secs(t.accessed),
        secs(t.modified),
        secs(t.changed),
        secs(t.created)
    );
}

/// The bodyfile lines of one found file (TSK 3.x: `MD5|name|inode|mode|UID|GID|size|
/// atime|mtime|ctime|crtime`, MD5 `0`), names under `prefix`: the default data, each named
/// stream (`name:stream`), and on NTFS the `$FILE_NAME` times (`name ($FILE_NAME)`).
/// Deleted entries end in ` (deleted)`.
#[must_use]
pub fn bodyfile_lines(prefix: &str, f: &Found) -> String {
    let mut out = String::new();
    let deleted = if f.entry.deleted || f.metadata.as_ref().is_ok_and(|m| !m.allocated) {
        " (deleted)"
    } else {
        ""
    };
    let base = format!(
        "{prefix}{}",
        escape_name(f.path.strip_prefix(b"/").unwrap_or(&f.path))
    );
    let m = f.metadata.as_ref().ok();
    let mode = mode_string(f.entry.kind, m);
    let none = Times::default();
    match m {
        None => line(
            &mut out,
            &format!("{base}{deleted}"),
            &f.entry.inode.to_string(),
            &mode,
            None,
            0,
            &none,
        ),
        Some(m) => {
            line(
                &mut out,
                &format!("{base}{deleted}"),
                &m.address,
                &mode,
                Some(m),
                m.size,
                &m.times,
            );
            for s in &m.streams {
                let name = format!("{base}:{}{deleted}", escape_name(s.name.as_bytes()));
                line(
                    &mut out,
                    &name,
                    &s.address,
                    &mode,
                    Some(m),
                    s.size,
                    &m.times,
                );
            }
            if let Some(t) = &m.name_times {
                let name = format!("{base} ($FILE_NAME){deleted}");
                let address = m.name_address.as_deref().unwrap_or(&m.address);
                line(&mut out, &name, address, &mode, Some(m), m.size, t);
            }
        }
    }
    out
}

/// The whole bodyfile of `fs` (see [`bodyfile_lines`]) and the walk's problems.
pub fn bodyfile(fs: &dyn FileSystem, prefix: &str) -> (String, Vec<Problem>) {
    let mut out = String::new();
    let problems = walk(fs, |f| out.push_str(&bodyfile_lines(prefix, f)));
    (out, problems)
}

/// Looks `path` (`/`-separated, from the root) up, allocated entries first: the inode it
/// names.
///
/// # Errors
/// A component is missing or not a directory.
pub fn lookup(fs: &dyn FileSystem, path: &[u8]) -> Result<Inode, FsError> {
    let mut at = fs.root();
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        let entries = fs.read_dir(at)?;
        let hit = entries
            .iter()
            .filter(|e| e.name == part)
            .min_by_key(|e| e.deleted)
            .ok_or_else(|| FsError::NotFound {
                volume: fs.info().kind,
                what: format!("{} in directory inode {at}", escape_name(part)),
            })?;
        at = hit.inode;
    }
    Ok(at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_field_on_one_line() {
        assert_eq!(escape_name(b"plain.txt"), "plain.txt");
        assert_eq!(escape_name("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(escape_name(b"a|b\nc\\d\xff"), "a\\x7cb\\x0ac\\x5cd\\xff");
        assert_eq!(escape_name("\u{85}".as_bytes()), "\\xc2\\x85");
    }

    #[test]
    fn modes_as_tsk_writes_them() {
        let m = Metadata {
            inode: 12,
            address: "12".into(),
            kind: FileKind::Regular,
            mode: 0o4755,
            uid: 0,
            gid: 0,
            size: 0,
            links: 1,
            allocated: true,
            times: Times::default(),
            name_times: None,
            name_address: None,
            streams: Vec::new(),
            notes: Vec::new(),
        };
        assert_eq!(mode_string(FileKind::Regular, Some(&m)), "r/rrwsr-xr-x");
        let m = Metadata {
            mode: 0o1777,
            kind: FileKind::Directory,
            ..m
        };
        assert_eq!(mode_string(FileKind::Directory, Some(&m)), "d/drwxrwxrwt");
        let m = Metadata {
            mode: 0o644,
            kind: FileKind::Regular,
            ..m
        };
        assert_eq!(mode_string(FileKind::Regular, Some(&m)), "r/rrw-r--r--");
        assert_eq!(mode_string(FileKind::Unknown, None), "-/----------");
    }
}
