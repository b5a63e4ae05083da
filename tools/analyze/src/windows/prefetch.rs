//! Prefetch files (`Windows/Prefetch/*.pf`): the executable's name and the hash of its
//! path from the file name, and the file's times (created ≈ first run, modified ≈ last
//! run). Windows 10+ compresses them (header `MAM\x04`, XPRESS Huffman): those are listed
//! and marked compressed, not parsed; uncompressed ones (`SCCA`) give their run count and
//! last run time.

use super::{regf::filetime, safe, time_text, WindowsProfile};
use crate::collected::Collected;
use crate::event::{Event, Evidence, Timestamp};
use crate::files::Files;
use serde::Serialize;

/// The prefetch directory.
pub const PREFETCH_DIR: &str = "Windows/Prefetch";
/// Prefetch files listed at most.
pub const MAX_PREFETCH: usize = 4096;

/// One prefetch file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Prefetch {
    /// The executable name (`CMD.EXE`).
    pub executable: String,
    /// The path hash from the file name (`4A81B364`).
    pub hash: Option<String>,
    /// `MAM` (compressed), `SCCA` (version n), or unknown.
    pub format: String,
    /// Run count (uncompressed formats only).
    pub run_count: Option<u32>,
    /// Last run (uncompressed formats only).
    pub last_run: Option<String>,
    /// The file's creation time (about the first run).
    pub created: Option<String>,
    /// The file's modification time (about the last run).
    pub modified: Option<String>,
    /// Where.
    pub evidence: Evidence,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The format, run count and last run of prefetch bytes (header only).
#[must_use]
pub fn header(b: &[u8]) -> (String, Option<u32>, Option<Timestamp>) {
    if b.get(..4) == Some(b"MAM\x04".as_slice()) {
        return ("MAM (compressed, not parsed)".to_string(), None, None);
    }
    if b.get(4..8) != Some(b"SCCA".as_slice()) {
        return ("unknown".to_string(), None, None);
    }
    let version = u32_at(b, 0).unwrap_or(0);
    // Last run time and run count offsets per version (libscca's documentation).
    let (t, c) = match version {
        17 => (0x78, 0x90),
        23 => (0x80, 0x98),
        26 | 30 => (0x80, 0xD0),
        _ => return (format!("SCCA version {version}"), None, None),
    };
    let last = b
        .get(t..t + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .and_then(|s| filetime(u64::from_le_bytes(s)));
    (format!("SCCA version {version}"), u32_at(b, c), last)
}

/// Lists the prefetch files.
pub fn collect(files: &Files<'_>, profile: &mut WindowsProfile, out: &mut Collected) {
    let entries = match files.list(PREFETCH_DIR.as_bytes()) {
        Ok(e) => e,
        Err(e) => {
            out.problem(format!("{PREFETCH_DIR}: {e}"));
            return;
        }
    };
    for e in entries.into_iter().take(MAX_PREFETCH) {
        let name = String::from_utf8_lossy(&e.name).into_owned();
        let Some(stem) = name
            .strip_suffix(".pf")
            .or_else(|| name.strip_suffix(".PF"))
        else {
            continue;
        };
        let (exe, hash) = match stem.rsplit_once('-') {
            Some((x, h)) if h.len() == 8 && h.chars().all(|c| c.is_ascii_hexdigit()) => {
                (x, Some(safe(h)))
            }
            _ => (stem, None),
        };
        let path = format!("{PREFETCH_DIR}/{name}");
        let evidence = files.evidence(path.as_bytes(), Some(e.inode));
        let md = files.fs().metadata(e.inode).ok();
        let times = md.map(|m| m.times).unwrap_or_default();
        let head = files
            .read(path.as_bytes(), 0x100)
            .ok()
            .flatten()
            .map(|f| f.bytes)
            .unwrap_or_default();
        let (format, run_count, last) = header(&head);
        let p = Prefetch {
            executable: safe(exe),
            hash,
            format,
            run_count,
            last_run: time_text(last),
            created: time_text(times.created),
            modified: time_text(times.modified),
            evidence: evidence.clone(),
        };
        if let Some((t, note)) = last
            .map(|t| (t, "last run time stored in the prefetch file"))
            .or(times.modified.map(|t| {
                (
                    t,
                    "the prefetch file's modification time (about the last run)",
                )
            }))
        {
            out.events.push(
                Event::new(
                    t,
                    "prefetch",
                    "program_run",
                    format!("program run: {}", p.executable),
                    evidence,
                )
                .field("process", p.executable.clone())
                .time_note(note),
            );
        }
        profile.prefetch.push(p);
    }
}
