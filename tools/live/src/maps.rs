//! /proc/PID/maps, summarised for an examiner (`Documentation/filesystems/proc.rst`, 1.1).
//!
//! Code injected into a process usually runs from anonymous executable memory (shellcode,
//! reflectively loaded libraries) or from a file deleted after mapping (`memfd_create`,
//! an unlinked dropper). Both are only visible while the process lives. They are hints,
//! not proof: JIT compilers (JVMs, JavaScript engines) map anonymous executable memory too.

use crate::table::{cap, fields_and_rest, hex, parse_lines, ParseError, Parsed, MAX_STRING_BYTES};
use serde::{Deserialize, Serialize};

/// Most distinct file paths kept per process in [`MapsSummary::files`] and
/// [`MapsSummary::deleted_files`].
pub const MAX_MAPPED_FILES: usize = 64;

/// Suffix the kernel appends to the path of an unlinked file (`d_path`).
const DELETED_SUFFIX: &str = " (deleted)";

/// Pseudo paths of kernel-provided code, not anonymous memory.
const KERNEL_PSEUDO_PATHS: [&str; 5] = [
    "[vdso]",
    "[vsyscall]",
    "[vvar]",
    "[vvar_vclock]",
    "[uprobes]",
];

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// Permissions, e.g. `r-xp`.
    pub perms: String,
    /// Offset into the file, bytes.
    pub offset: u64,
    /// Device `major:minor` in hex.
    pub dev: String,
    /// Inode of the file (0 for anonymous memory).
    pub inode: u64,
    /// Path or pseudo path (`[heap]`), without the ` (deleted)` suffix; `None` if anonymous.
    pub path: Option<String>,
    /// Whether the path carried the ` (deleted)` suffix.
    pub deleted: bool,
}

impl Mapping {
    /// Whether the mapping is executable.
    pub fn executable(&self) -> bool {
        self.perms.get(2..3) == Some("x")
    }

    /// Whether the mapping is writable.
    pub fn writable(&self) -> bool {
        self.perms.get(1..2) == Some("w")
    }

    /// Whether the mapping is not backed by a file: no path, or a bracketed pseudo path
    /// other than the kernel's own code pages (`[heap]`, `[stack]`, `[anon:name]`).
    pub fn anonymous(&self) -> bool {
        match &self.path {
            None => true,
            Some(p) => p.starts_with('[') && !KERNEL_PSEUDO_PATHS.contains(&p.as_str()),
        }
    }
}

/// Parses /proc/PID/maps (`start-end perms offset dev inode [path]`, no header).
pub fn parse_maps(text: &str) -> Parsed<Mapping> {
    parse_lines(text, 0, |n, line| {
        let (f, rest) = fields_and_rest(n, line, 5)?;
        let field = |i: usize| f.get(i).copied().unwrap_or_default();
        let (start, end) = field(0)
            .split_once('-')
            .ok_or_else(|| ParseError::field(n, "address", "START-END", field(0)))?;
        let perms = field(1);
        if perms.len() != 4 {
            return Err(ParseError::field(
                n,
                "perms",
                "four permission characters",
                perms,
            ));
        }
        // The path is padded to a column with spaces.
        let raw_path = rest.trim_start_matches(' ');
        let (path, deleted) = match raw_path.strip_suffix(DELETED_SUFFIX) {
            Some(p) => (p, true),
            None => (raw_path, false),
        };
        Ok(Some(Mapping {
            start: hex(n, "start", start)?,
            end: hex(n, "end", end)?,
            perms: perms.to_string(),
            offset: hex(n, "offset", field(2))?,
            dev: cap(field(3), MAX_STRING_BYTES),
            inode: crate::table::dec(n, "inode", field(4))?,
            path: (!path.is_empty()).then(|| cap(path, MAX_STRING_BYTES)),
            deleted,
        }))
    })
}

/// What an examiner wants from a process's memory map.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct MapsSummary {
    /// Mappings in all.
    pub mappings: u64,
    /// Executable mappings.
    pub executable: u64,
    /// Executable mappings with no backing file: the classic injection hint.
    pub anonymous_executable: u64,
    /// Mappings both writable and executable (W^X violated).
    pub writable_executable: u64,
    /// Distinct mapped files (absolute paths), first [`MAX_MAPPED_FILES`].
    pub files: Vec<String>,
    /// True when [`MapsSummary::files`] was cut.
    pub files_truncated: bool,
    /// Distinct mapped files that were deleted (incl. `/memfd:…`), first
    /// [`MAX_MAPPED_FILES`].
    pub deleted_files: Vec<String>,
    /// True when [`MapsSummary::deleted_files`] was cut.
    pub deleted_files_truncated: bool,
}

/// Summarises parsed mappings.
pub fn summarise_maps(mappings: &[Mapping]) -> MapsSummary {
    let mut s = MapsSummary::default();
    for m in mappings {
        s.mappings = s.mappings.saturating_add(1);
        if m.executable() {
            s.executable = s.executable.saturating_add(1);
            if m.anonymous() {
                s.anonymous_executable = s.anonymous_executable.saturating_add(1);
            }
            if m.writable() {
                s.writable_executable = s.writable_executable.saturating_add(1);
            }
        }
        let Some(path) = m.path.as_deref().filter(|p| p.starts_with('/')) else {
            continue;
        };
        add_distinct(&mut s.files, &mut s.files_truncated, path);
        if m.deleted {
            add_distinct(&mut s.deleted_files, &mut s.deleted_files_truncated, path);
        }
    }
    s
}

fn add_distinct(list: &mut Vec<String>, truncated: &mut bool, path: &str) {
    if list.iter().any(|p| p == path) {
        return;
    }
    if list.len() >= MAX_MAPPED_FILES {
        *truncated = true;
        return;
    }
    list.push(path.to_string());
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const MAPS: &str = "55d0c5a00000-55d0c5a02000 r--p 00000000 08:01 1835 /usr/bin/cat
55d0c5a02000-55d0c5a07000 r-xp 00002000 08:01 1835 /usr/bin/cat
55d0c6a00000-55d0c6a21000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000001000 rwxp 00000000 00:00 0 
7f0000001000-7f0000002000 r-xp 00000000 00:01 4242                       /memfd:payload (deleted)
7f0000002000-7f0000003000 r-xp 00000000 08:01 99                         /tmp/my lib.so (deleted)
7ffc1a3f0000-7ffc1a3f2000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
zzzz-1 r-xp 0 0 0
";

    #[test]
    fn parse_and_summarise() {
        let p = parse_maps(MAPS);
        assert_eq!(p.items.len(), 8);
        assert!(matches!(
            p.errors[..],
            [ParseError::Field {
                line: 9,
                field: "start",
                ..
            }]
        ));
        assert_eq!(p.items[3].path, None);
        assert_eq!(p.items[4].path.as_deref(), Some("/memfd:payload"));
        assert!(p.items[4].deleted);
        assert_eq!(p.items[5].path.as_deref(), Some("/tmp/my lib.so"));
        let s = summarise_maps(&p.items);
        assert_eq!(s.mappings, 8);
        assert_eq!(s.executable, 6);
        assert_eq!(s.anonymous_executable, 1);
        assert_eq!(s.writable_executable, 1);
        assert_eq!(
            s.files,
            ["/usr/bin/cat", "/memfd:payload", "/tmp/my lib.so"]
        );
        assert_eq!(s.deleted_files, ["/memfd:payload", "/tmp/my lib.so"]);
        assert!(!s.files_truncated);
    }

    #[test]
    fn file_list_is_capped() {
        let text: String = (0..100)
            .map(|i| format!("1000-2000 r--p 00000000 08:01 {i} /lib/{i}.so\n"))
            .collect();
        let s = summarise_maps(&parse_maps(&text).items);
        assert_eq!(s.files.len(), MAX_MAPPED_FILES);
        assert!(s.files_truncated);
        assert_eq!(s.mappings, 100);
    }
}
