//! One walk over a volume's file system gives the file-system part of the super-timeline
//! (every file's times, grouped by instant as mactime does: `m.cb` …), the deleted files,
//! NTFS timestomping, and the candidate files the binary triage looks at.

use crate::collected::Collected;
use crate::event::{utc_text, Event, Evidence, Timestamp};
use crate::files::Files;
use crate::findings::{Finding, Severity};
use serde::Serialize;
use vestige_fs::walk::{escape_name, walk, Found};
use vestige_fs::{FileKind, Inode, Times};

/// Deleted files listed in the profile (all of them are in the timeline).
pub const MAX_DELETED_LISTED: usize = 500;
/// Candidate files handed to the binary triage.
pub const MAX_CANDIDATES: usize = 20_000;

/// What the walk saw, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsSummary {
    /// The volume (`item:volume`).
    pub volume: String,
    /// `ext4`, `ntfs` …
    pub kind: String,
    /// Its label.
    pub label: Option<String>,
    /// Its UUID or serial.
    pub id: Option<String>,
    /// Bytes the file system claims.
    pub size_bytes: u64,
    /// The reader's notes (features, journal, last mount).
    pub notes: Vec<String>,
    /// Names walked.
    pub entries: u64,
    /// Directories among them.
    pub directories: u64,
    /// Deleted names among them.
    pub deleted: u64,
    /// The first [`MAX_DELETED_LISTED`] deleted names.
    pub deleted_files: Vec<DeletedFile>,
}

/// A deleted name.
#[derive(Debug, Clone, Serialize)]
pub struct DeletedFile {
    /// Its path, escaped.
    pub path: String,
    /// The inode it names.
    pub inode: Inode,
    /// Its size, when the inode still says.
    pub size: Option<u64>,
    /// Whether the inode now belongs to another file.
    pub inode_reused: bool,
    /// Its last modification, when the inode still says.
    pub modified: Option<String>,
}

/// A regular file the binary triage should look at: where it is and why.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its path as stored.
    pub path: Vec<u8>,
    /// Its inode.
    pub inode: Inode,
    /// Its size.
    pub size: u64,
    /// Its times.
    pub times: Times,
    /// Why it is a candidate (`temp directory`, `hidden directory` …).
    pub reason: &'static str,
}

/// Why a path is worth triage, if it is: temporary and hidden directories, autostart
/// places, and user-writable Windows directories binaries are dropped into.
#[must_use]
pub fn candidate_reason(path: &[u8]) -> Option<&'static str> {
    let lower = String::from_utf8_lossy(path).to_lowercase();
    let dir = lower.rsplit_once('/').map_or("", |(d, _)| d);
    let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    if dir.starts_with("/tmp") || dir.starts_with("/var/tmp") || dir.starts_with("/dev/shm") {
        return Some("temporary directory");
    }
    if parts
        .iter()
        .any(|p| p.starts_with('.') && *p != "." && *p != "..")
    {
        return Some("hidden directory");
    }
    if dir.contains("/start menu/programs/startup") {
        return Some("startup folder");
    }
    if dir.contains("/appdata/local/temp") || dir.starts_with("/windows/temp") {
        return Some("temporary directory");
    }
    if dir.starts_with("/users/public") || dir.starts_with("/programdata") && parts.len() <= 2 {
        return Some("user-writable directory");
    }
    if dir == "/etc/init.d" || dir.starts_with("/etc/cron") || dir == "/etc/rc.local" {
        return Some("autostart directory");
    }
    None
}

/// The letters of `t`'s times equal to `at`, as mactime writes them (`m.cb`).
fn macb(t: &Times, at: Timestamp) -> String {
    let l = |v: Option<Timestamp>, c: char| if v == Some(at) { c } else { '.' };
    [
        l(t.modified, 'm'),
        l(t.accessed, 'a'),
        l(t.changed, 'c'),
        l(t.created, 'b'),
    ]
    .iter()
    .collect()
}

/// One event per distinct instant of `t`.
fn time_events(
    out: &mut Vec<Event>,
    source: &str,
    what: &str,
    t: &Times,
    evidence: &Evidence,
    fields: &[(&str, String)],
) {
    let mut seen: Vec<Timestamp> = Vec::with_capacity(4);
    for at in [t.modified, t.accessed, t.changed, t.created]
        .into_iter()
        .flatten()
    {
        if seen.contains(&at) {
            continue;
        }
        seen.push(at);
        let letters = macb(t, at);
        let mut e = Event::new(
            at,
            source,
            "file_times",
            format!("[{letters}] {what}"),
            evidence.clone(),
        )
        .field("macb", letters);
        for (k, v) in fields {
            e = e.field(k, v.clone());
        }
        out.push(e);
    }
}

/// NTFS timestomping signs between `$STANDARD_INFORMATION` (`si`, settable by any program
/// through SetFileTime) and `$FILE_NAME` (`fname`, set by the kernel): the SI creation
/// time earlier than the FN one (backdated), or SI times with no fraction of a second
/// while the FN ones have one (tools that write whole seconds). False positives: files
/// restored by archivers or installers that set creation times, and volumes written by
/// drivers that keep whole seconds (ntfs-3g keeps 100 ns).
fn timestomp_signs(si: &Times, fname: &Times) -> Vec<String> {
    let mut signs = Vec::new();
    if let (Some(s), Some(f)) = (si.created, fname.created) {
        if s.secs + 1 < f.secs {
            signs.push(format!(
                "$STANDARD_INFORMATION created {} is earlier than $FILE_NAME created {}",
                utc_text(s),
                utc_text(f)
            ));
        }
    }
    let whole = |t: &Times| {
        [t.modified, t.accessed, t.changed, t.created]
            .into_iter()
            .flatten()
            .all(|x| x.nanos == 0)
    };
    let any = |t: &Times| t.modified.is_some() || t.created.is_some();
    if any(si) && any(fname) && whole(si) && !whole(fname) {
        signs.push(
            "$STANDARD_INFORMATION times are whole seconds while $FILE_NAME times are not"
                .to_string(),
        );
    }
    signs
}

/// Walks `files`' file system once: timeline events for every name (deleted ones
/// marked), the summary, timestomping findings, and triage candidates.
pub fn collect(files: &Files<'_>) -> (FsSummary, Vec<Candidate>, Collected) {
    let fs = files.fs();
    let info = fs.info();
    let mut summary = FsSummary {
        volume: files.volume().to_string(),
        kind: info.kind.clone(),
        label: info.label.clone(),
        id: info.id.clone(),
        size_bytes: info.size_bytes,
        notes: info.notes.clone(),
        ..FsSummary::default()
    };
    let mut out = Collected::default();
    let mut candidates = Vec::new();
    let problems = walk(fs, |f: &Found| {
        summary.entries += 1;
        if f.is_dir() {
            summary.directories += 1;
        }
        let name = escape_name(&f.path);
        let evidence = files.evidence(&f.path, Some(f.entry.inode));
        let Ok(m) = &f.metadata else {
            if f.entry.deleted {
                summary.deleted += 1;
            }
            return;
        };
        let reused = f.entry.deleted && m.allocated;
        let state = match (f.entry.deleted, reused) {
            (false, _) => "",
            (true, false) => " (deleted)",
            (true, true) => " (deleted, inode reused)",
        };
        if f.entry.deleted {
            summary.deleted += 1;
            if summary.deleted_files.len() < MAX_DELETED_LISTED {
                summary.deleted_files.push(DeletedFile {
                    path: name.clone(),
                    inode: f.entry.inode,
                    size: (!reused).then_some(m.size),
                    inode_reused: reused,
                    modified: m.times.modified.map(utc_text),
                });
            }
        }
        let what = format!("{name}{state} size {}", m.size);
        let mut fields = vec![("inode", f.entry.inode.to_string())];
        if f.entry.deleted {
            fields.push(("deleted", "true".to_string()));
        }
        time_events(
            &mut out.events,
            "filesystem",
            &what,
            &m.times,
            &evidence,
            &fields,
        );
        if let Some(fname) = &m.name_times {
            time_events(
                &mut out.events,
                "ntfs_file_name",
                &format!("{what} ($FILE_NAME)"),
                fname,
                &evidence,
                &fields,
            );
            if !f.entry.deleted {
                let signs = timestomp_signs(&m.times, fname);
                if !signs.is_empty() {
                    let mut finding = Finding::new(
                        "fs.timestomp",
                        Severity::Medium,
                        format!("Timestamps of {name} look altered"),
                        signs.join("; "),
                        vec![evidence.clone()],
                    );
                    if let Some(c) = fname.created {
                        finding = finding.at(c);
                    }
                    out.findings.push(finding);
                }
            }
        }
        if m.kind == FileKind::Regular && !f.entry.deleted && candidates.len() < MAX_CANDIDATES {
            if let Some(reason) = candidate_reason(&f.path) {
                candidates.push(Candidate {
                    path: f.path.clone(),
                    inode: f.entry.inode,
                    size: m.size,
                    times: m.times,
                    reason,
                });
            }
        }
    });
    for p in problems {
        out.problem(format!(
            "{}: walking {}: {}",
            files.volume(),
            escape_name(&p.path),
            p.what
        ));
    }
    (summary, candidates, out)
}

#[cfg(test)]
#[path = "fsevents_tests.rs"]
mod tests;
