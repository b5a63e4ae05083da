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
    /// A symlink's target, when it could be read.
    pub link: Option<Vec<u8>>,
}

impl Found {
    /// Whether its inode says it is a directory.
    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.metadata
            .as_ref()
            .is_ok_and(|m| m.kind == FileKind::Directory)
    }

    /// The entry at `path` naming `entry`, with its inode's metadata and, for a symlink,
    /// its target, read from `fs`.
    pub fn read(fs: &dyn FileSystem, path: Vec<u8>, entry: DirEntry) -> Self {
        let metadata = fs.metadata(entry.inode).map_err(|e| e.to_string());
        let link = match &metadata {
            Ok(m) if m.kind == FileKind::Symlink => fs.read_link(entry.inode).ok(),
            _ => None,
        };
        Self {
            path,
            entry,
            metadata,
            link,
        }
    }
}

/// A directory being walked: its remaining entries.
struct Frame {
    entries: std::vec::IntoIter<DirEntry>,
    path: Vec<u8>,
    depth: usize,
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
pub fn walk(fs: &dyn FileSystem, visit: impl FnMut(&Found)) -> Vec<Problem> {
    walk_from(fs, fs.root(), true, visit)
}

/// As [`walk`], from directory `root` (paths relative to it), with the orphan inodes at
/// the end only when `orphans`.
pub fn walk_from(
    fs: &dyn FileSystem,
    root: Inode,
    orphans: bool,
    mut visit: impl FnMut(&Found),
) -> Vec<Problem> {
    let mut seen: HashSet<Inode> = HashSet::new();
    seen.insert(root);
    let mut problems = walk_from_seen(fs, root, Vec::new(), &mut seen, &mut visit);
    if orphans {
        walk_orphans(fs, &mut seen, &mut visit, &mut problems);
    }
    problems
}

/// The tree under directory `root` (at `base`), skipping directories in `seen`.
fn walk_from_seen(
    fs: &dyn FileSystem,
    root: Inode,
    base: Vec<u8>,
    seen: &mut HashSet<Inode>,
    visit: &mut impl FnMut(&Found),
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut count = 0usize;
    // Depth first: a directory's contents come right after it, as `fls -r` lists them.
    let mut stack: Vec<Frame> = Vec::new();
    match fs.read_dir(root) {
        Ok(entries) => stack.push(Frame {
            entries: entries.into_iter(),
            path: base,
            depth: 0,
        }),
        Err(e) => problems.push(Problem {
            path: b"/".to_vec(),
            what: e.to_string(),
        }),
    }
    while let Some(frame) = stack.last_mut() {
        let Some(entry) = frame.entries.next() else {
            stack.pop();
            continue;
        };
        let depth = frame.depth;
        count += 1;
        if count > MAX_ENTRIES {
            problems.push(Problem {
                path: frame.path.clone(),
                what: format!("more than {MAX_ENTRIES} entries; the walk stops"),
            });
            return problems;
        }
        let mut path = frame.path.clone();
        path.push(b'/');
        path.extend_from_slice(&entry.name);
        let found = Found::read(fs, path, entry);
        let is_dir = found.is_dir();
        visit(&found);
        if !is_dir {
            continue;
        }
        if depth + 1 >= MAX_DEPTH {
            problems.push(Problem {
                path: found.path,
                what: format!("deeper than {MAX_DEPTH} levels; not entered"),
            });
        } else if seen.insert(found.entry.inode) {
            match fs.read_dir(found.entry.inode) {
                Ok(entries) => stack.push(Frame {
                    entries: entries.into_iter(),
                    path: found.path,
                    depth: depth + 1,
                }),
                Err(e) => problems.push(Problem {
                    path: found.path,
                    what: e.to_string(),
                }),
            }
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
    problems
}

/// The orphans (deleted inodes no entry names) under `/$OrphanFiles`, as TSK lists them:
/// the virtual directory itself where the file system numbers it, each orphan (an entry
/// of unknown type: the name is gone), and the contents of orphan directories.
fn walk_orphans(
    fs: &dyn FileSystem,
    seen: &mut HashSet<Inode>,
    visit: &mut impl FnMut(&Found),
    problems: &mut Vec<Problem>,
) {
    let dir = b"/$OrphanFiles".to_vec();
    if let Some(inode) = fs.orphan_dir_inode() {
        visit(&Found {
            path: dir.clone(),
            entry: DirEntry {
                name: b"$OrphanFiles".to_vec(),
                inode,
                kind: FileKind::Virtual,
                deleted: false,
            },
            metadata: Ok(Metadata::new(inode, FileKind::Virtual)),
            link: None,
        });
    }
    let orphans = match fs.orphans() {
        Ok(o) => o,
        Err(e) => {
            problems.push(Problem {
                path: dir,
                what: e.to_string(),
            });
            return;
        }
    };
    for inode in orphans {
        let name = fs
            .orphan_name(inode)
            .unwrap_or_else(|| format!("OrphanFile-{inode}").into_bytes());
        let mut path = dir.clone();
        path.push(b'/');
        path.extend_from_slice(&name);
        let entry = DirEntry {
            name,
            inode,
            kind: FileKind::Unknown,
            deleted: true,
        };
        let found = Found::read(fs, path, entry);
        let is_dir = found.is_dir();
        visit(&found);
        // An orphan directory's contents, as TSK lists them (once: it may be named too).
        if is_dir && seen.insert(inode) {
            problems.extend(walk_from_seen(fs, inode, found.path, seen, visit));
        }
    }
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
/// atime|mtime|ctime|crtime`, MD5 `0`), names under `prefix`: the default data (unless
/// the file has only named streams), each named stream (`name:stream`), and on NTFS the `$FILE_NAME`
/// times (`name ($FILE_NAME)`). As TSK: a deleted name ends in ` (deleted)`, or in
/// ` (deleted-realloc)` when its inode is in use again; a symlink's name is followed by
/// ` -> target` (TSK shows the target of fast symlinks only; we show every one we read).
#[must_use]
pub fn bodyfile_lines(prefix: &str, f: &Found) -> String {
    let mut out = String::new();
    let m = f.metadata.as_ref().ok();
    let deleted = match (f.entry.deleted, m) {
        (false, _) => "",
        (true, Some(m)) if m.allocated => " (deleted-realloc)",
        (true, _) => " (deleted)",
    };
    let mut base = format!(
        "{prefix}{}",
        escape_name(f.path.strip_prefix(b"/").unwrap_or(&f.path))
    );
    let mode = mode_string(f.entry.kind, m);
    let Some(m) = m else {
        let name = format!("{base}{deleted}");
        let inode = f.entry.inode.to_string();
        line(&mut out, &name, &inode, &mode, None, 0, &Times::default());
        return out;
    };
    let streams_base = base.clone();
    if let Some(target) = &f.link {
        base.push_str(" -> ");
        base.push_str(&escape_name(target));
    }
    // A file with only named streams is listed by them; one with no data at all still
    // gets its line (TSK: the bare inode).
    if m.default_data || m.streams.is_empty() {
        let name = format!("{base}{deleted}");
        line(
            &mut out,
            &name,
            &m.address,
            &mode,
            Some(m),
            m.size,
            &m.times,
        );
    }
    for s in &m.streams {
        let name = format!("{streams_base}:{}{deleted}", escape_name(s.name.as_bytes()));
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
        let name = format!("{streams_base} ($FILE_NAME){deleted}");
        let address = m.name_address.as_deref().unwrap_or(&m.address);
        let size = m.name_size.unwrap_or(m.size);
        line(&mut out, &name, address, &mode, Some(m), size, t);
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
            mode: 0o4755,
            ..Metadata::new(12, FileKind::Regular)
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

    /// A file system in memory: directory inode → entries; every inode ≥ 100 is a file.
    struct Mock {
        dirs: std::collections::BTreeMap<Inode, Vec<(&'static str, Inode, bool)>>,
        orphans: Vec<Inode>,
    }

    impl FileSystem for Mock {
        fn info(&self) -> crate::FsInfo {
            crate::FsInfo {
                kind: "mock".into(),
                ..crate::FsInfo::default()
            }
        }
        fn root(&self) -> Inode {
            2
        }
        fn read_dir(&self, dir: Inode) -> Result<Vec<DirEntry>, FsError> {
            let e = self
                .dirs
                .get(&dir)
                .ok_or_else(|| FsError::invalid("mock", dir, "dir", "not a directory"))?;
            Ok(e.iter()
                .map(|&(n, i, deleted)| DirEntry {
                    name: n.as_bytes().to_vec(),
                    inode: i,
                    kind: FileKind::Unknown,
                    deleted,
                })
                .collect())
        }
        fn metadata(&self, inode: Inode) -> Result<Metadata, FsError> {
            if inode == 666 {
                return Err(FsError::invalid("mock", 666, "inode", "damaged"));
            }
            let kind = if self.dirs.contains_key(&inode) || inode == 99 {
                FileKind::Directory
            } else {
                FileKind::Regular
            };
            Ok(Metadata {
                mode: 0o644,
                size: inode,
                allocated: inode != 101,
                ..Metadata::new(inode, kind)
            })
        }
        fn open(&self, _: Inode, _: Option<&str>) -> Result<Box<dyn crate::ReadAt + '_>, FsError> {
            Ok(Box::new(&[][..]))
        }
        fn read_link(&self, _: Inode) -> Result<Vec<u8>, FsError> {
            Ok(Vec::new())
        }
        fn orphans(&self) -> Result<Vec<Inode>, FsError> {
            Ok(self.orphans.clone())
        }
    }

    #[test]
    fn loops_damage_and_deleted_entries_are_walked_without_hanging() {
        let mut dirs = std::collections::BTreeMap::new();
        // / has a, sub/ and a damaged inode; sub/ has b, a loop back to / and itself, a
        // deleted file and 99, a "directory" whose listing fails.
        dirs.insert(
            2,
            vec![("a", 100, false), ("sub", 3, false), ("bad", 666, false)],
        );
        dirs.insert(
            3,
            vec![
                ("b", 102, false),
                ("up", 2, false),
                ("self", 3, false),
                ("gone", 101, true),
                ("broken", 99, false),
            ],
        );
        let fs = Mock {
            dirs,
            orphans: vec![105],
        };
        let mut paths = Vec::new();
        let problems = walk(&fs, |f| {
            paths.push(String::from_utf8(f.path.clone()).unwrap())
        });
        assert_eq!(
            paths,
            [
                "/a",
                "/sub",
                "/sub/b",
                "/sub/up",
                "/sub/self",
                "/sub/gone",
                "/sub/broken",
                "/bad",
                "/$OrphanFiles/OrphanFile-105"
            ]
        );
        let what: Vec<String> = problems
            .iter()
            .map(|p| format!("{} {}", String::from_utf8_lossy(&p.path), p.what))
            .collect();
        assert_eq!(what.len(), 3, "{what:?}");
        assert!(
            what[0].starts_with("/sub/up directory inode 2 is already in the tree"),
            "{what:?}"
        );
        assert!(
            what[1].starts_with("/sub/self directory inode 3"),
            "{what:?}"
        );
        assert!(
            what[2].contains("/sub/broken") && what[2].contains("not a directory"),
            "{what:?}"
        );
        // The bodyfile: the deleted and the unallocated marked, the damaged one still listed.
        let (body, _) = bodyfile(&fs, "/");
        assert!(
            body.contains("0|/sub/gone (deleted)|101|-/rrw-r--r--|0|0|101|0|0|0|0\n"),
            "{body}"
        );
        assert!(
            body.contains("0|/bad|666|-/----------|0|0|0|0|0|0|0\n"),
            "{body}"
        );
        // An orphan whose inode is in use again: TSK's "deleted-realloc".
        assert!(
            body.contains("0|/$OrphanFiles/OrphanFile-105 (deleted-realloc)|105|-/r"),
            "{body}"
        );
        assert_eq!(lookup(&fs, b"/sub/b").unwrap(), 102);
        assert!(lookup(&fs, b"/sub/nothing").is_err());
    }
}
