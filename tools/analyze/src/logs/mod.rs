//! Linux logs and event histories: syslog-format text logs (`auth.log`, `secure`,
//! `syslog`, `messages`, `kern.log` and their rotations, gzip included), the binary login
//! records (`wtmp`, `btmp`, `utmp`, `lastlog`) and systemd journal files, turned into
//! timeline [`Event`]s and the findings of [`rules`].
//!
//! Every event points at its bytes: path and inode, plus line and byte offset for text
//! (for a `.gz` rotation: in the decompressed text, said in the `gzip` field), byte offset
//! and record number for binary records, the entry object's offset and sequence number
//! for the journal. Local times are converted with the system's [`Zone`], and the legacy
//! syslog year is inferred from the file's mtime; both are said in `time_note`.
//!
//! ```no_run
//! # fn f(files: &vestige_analyze::files::Files<'_>) {
//! use vestige_analyze::{logs, tz::Zone};
//! let zone = Zone::load(files);
//! let found = logs::collect(files, &zone);
//! for f in &found.findings {
//!     println!("{} {}", f.rule, f.title);
//! }
//! # }
//! ```

pub mod auth;
pub mod journal;
pub mod rules;
pub mod syslog;
pub mod utmp;

use crate::collected::Collected;
use crate::event::{utc_text, Event, Evidence, Timestamp};
use crate::files::{FileData, Files};
use crate::text::display_safe;
use crate::tz::Zone;
use std::collections::{BTreeMap, HashSet};
use std::io::Read;

/// Bytes read of one text log or binary record file (decompressed, for `.gz`).
pub const LOG_CAP: usize = 64 << 20;
/// Bytes read of one journal file (journald's default maximum file size).
pub const JOURNAL_CAP: usize = 128 << 20;
/// Rotated copies read per log (`auth.log.1` … `auth.log.30.gz`).
pub const MAX_ROTATIONS: usize = 30;
/// Journal files read.
pub const MAX_JOURNAL_FILES: usize = 200;
/// Characters of a message kept in an event's description.
const MESSAGE_CHARS: usize = 400;

/// The syslog-format text logs read, by base name in `/var/log`.
pub const TEXT_LOGS: [&str; 5] = ["auth.log", "secure", "syslog", "messages", "kern.log"];

/// What was seen of one log and its rotations, for [`rules::cleared_logs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSet {
    /// Base name (`auth.log`, `wtmp`).
    pub base: String,
    /// The current file, if it exists: its evidence and size.
    pub current: Option<(Evidence, u64)>,
    /// Rotated copies: evidence and size.
    pub rotated: Vec<(Evidence, u64)>,
}

/// Reads every log of the volume. `zone` converts local times (see [`Zone::load`]).
#[must_use]
pub fn collect(files: &Files<'_>, zone: &Zone) -> Collected {
    let mut out = Collected::default();
    for p in zone.problems() {
        out.problem(format!("time zone: {p}"));
    }
    let mut sets = Vec::new();
    let var_log = match files.list(b"/var/log") {
        Ok(l) => l,
        Err(e) => {
            out.problem(format!(
                "/var/log: {}",
                display_safe(e.to_string().as_bytes())
            ));
            Vec::new()
        }
    };
    let names: Vec<Vec<u8>> = var_log.iter().map(|e| e.name.clone()).collect();
    for base in TEXT_LOGS {
        let set = text_log_set(files, zone, base, &names, &mut out);
        sets.push(set);
    }
    for base in ["wtmp", "btmp"] {
        sets.push(utmp_set(files, base, &names, &mut out));
    }
    read_utmp_now(files, &mut out);
    read_lastlog(files, &mut out);
    read_journals(files, &mut out);
    out.findings.extend(rules::bruteforce(&out.events));
    out.findings.extend(rules::user_added(&out.events));
    out.findings.extend(rules::cleared_logs(&sets));
    out.findings
        .extend(rules::anti_forensic_commands(&out.events));
    out
}

/// The rotation number of `name` as a copy of `base`: `base` 0, `base.1` 1, `base.2.gz`
/// 2, `base-20241120[.gz]` by date (ordered after the numbered ones); `None` otherwise.
fn rotation(base: &str, name: &[u8]) -> Option<u64> {
    let name = std::str::from_utf8(name).ok()?;
    let rest = name.strip_prefix(base)?;
    if rest.is_empty() {
        return Some(0);
    }
    let rest = rest.strip_suffix(".gz").unwrap_or(rest);
    if let Some(n) = rest.strip_prefix('.') {
        return n.parse::<u64>().ok().filter(|&n| n > 0 && n < 1000);
    }
    if let Some(d) = rest.strip_prefix('-') {
        // dateext: newer dates are more recent copies, so order by 10^9 - date.
        let date: u64 = d
            .parse()
            .ok()
            .filter(|&d| (19_700_101..=99_991_231).contains(&d))?;
        return Some(1_000 + (99_991_231 - date));
    }
    None
}

/// The files of `base` in `/var/log`, current first, then rotations newest first.
fn rotations(base: &str, names: &[Vec<u8>]) -> Vec<(u64, Vec<u8>)> {
    let mut found: Vec<(u64, Vec<u8>)> = names
        .iter()
        .filter_map(|n| rotation(base, n).map(|r| (r, n.clone())))
        .collect();
    found.sort();
    found.truncate(MAX_ROTATIONS + 1);
    found
}

/// Reads `/var/log/<name>` with `cap`, gunzipping `.gz`; problems recorded.
fn read_log(
    files: &Files<'_>,
    name: &[u8],
    cap: usize,
    out: &mut Collected,
) -> Option<(FileData, bool)> {
    let mut path = b"/var/log/".to_vec();
    path.extend_from_slice(name);
    let shown = display_safe(&path);
    let mut data = match files.read(&path, cap) {
        Ok(Some(d)) => d,
        Ok(None) => return None,
        Err(e) => {
            out.problem(format!(
                "{shown}: {}",
                display_safe(e.to_string().as_bytes())
            ));
            return None;
        }
    };
    if data.truncated {
        out.problem(format!(
            "{shown}: only the first {cap} bytes of {} read",
            data.metadata.size
        ));
    }
    let gz = name.ends_with(b".gz");
    if gz {
        let mut text = Vec::new();
        let dec = flate2::read::MultiGzDecoder::new(data.bytes.as_slice());
        match dec.take(cap as u64).read_to_end(&mut text) {
            Ok(_) => {}
            Err(e) => out.problem(format!(
                "{shown}: gzip stream damaged after {} bytes of text: {}; the text before \
                 is read",
                text.len(),
                display_safe(e.to_string().as_bytes())
            )),
        }
        if text.len() >= cap {
            out.problem(format!(
                "{shown}: only the first {cap} decompressed bytes read"
            ));
        }
        data.bytes = text;
    }
    Some((data, gz))
}

/// A log and its rotations (`auth.log`, `auth.log.1`, `auth.log.2.gz` …): each file read
/// and handed to `read` (with whether it was gzipped), and the set's sizes kept for the
/// log-clearing rule.
fn log_set(
    files: &Files<'_>,
    base: &str,
    names: &[Vec<u8>],
    out: &mut Collected,
    mut read: impl FnMut(&FileData, bool, &mut Collected),
) -> LogSet {
    let mut set = LogSet {
        base: base.to_string(),
        current: None,
        rotated: Vec::new(),
    };
    for (rot, name) in rotations(base, names) {
        let Some((data, gz)) = read_log(files, &name, LOG_CAP, out) else {
            continue;
        };
        let entry = (data.evidence.clone(), data.metadata.size);
        if rot == 0 {
            set.current = Some(entry);
        } else {
            set.rotated.push(entry);
        }
        read(&data, gz, out);
    }
    set
}

fn text_log_set(
    files: &Files<'_>,
    zone: &Zone,
    base: &str,
    names: &[Vec<u8>],
    out: &mut Collected,
) -> LogSet {
    log_set(files, base, names, out, |data, gz, out| {
        read_text_log(data, gz, base, zone, out);
    })
}

/// The events of one syslog-format file.
pub fn read_text_log(data: &FileData, gz: bool, source: &str, zone: &Zone, out: &mut Collected) {
    let shown = data.evidence.path.clone().unwrap_or_default();
    let parsed: Vec<(syslog::Line<'_>, syslog::Header<'_>)> = syslog::lines(&data.bytes)
        .filter_map(|l| syslog::parse_line(l.text).map(|h| (l, h)))
        .collect();
    // Years of the legacy stamps, inferred from the mtime.
    let legacy: Vec<(u8, u8, i64)> = parsed
        .iter()
        .filter_map(|(_, h)| match h.stamp {
            syslog::Stamp::Legacy {
                month,
                day,
                secs_of_day,
            } => Some((month, day, secs_of_day)),
            _ => None,
        })
        .collect();
    let mtime = data.metadata.times.modified;
    let years = match mtime {
        Some(m) => syslog::infer_years(
            &legacy,
            m.secs.saturating_add(i64::from(zone.offset_at(m.secs))),
        ),
        None => {
            if !legacy.is_empty() {
                out.problem(format!(
                    "{shown}: no modification time, so the year of its {} legacy time \
                     stamps cannot be inferred; those lines are skipped",
                    legacy.len()
                ));
            }
            Vec::new()
        }
    };
    let mtime_text = mtime.map(utc_text).unwrap_or_default();
    let mut years = years.into_iter();
    let mut unparsed_dates = 0u64;
    for (line, h) in &parsed {
        let (time, note) = match h.stamp {
            syslog::Stamp::Legacy {
                month,
                day,
                secs_of_day,
            } => {
                let Some(year) = years.next() else { continue };
                let Some(secs) = syslog::legacy_to_utc(year, month, day, secs_of_day, zone) else {
                    unparsed_dates += 1;
                    continue;
                };
                (
                    Timestamp { secs, nanos: 0 },
                    Some(format!(
                        "year {year} inferred: the newest line is taken to be at or before \
                         the file's mtime ({mtime_text}), the year going down by one each \
                         time the month goes up, reading backwards; {}",
                        zone.describe()
                    )),
                )
            }
            syslog::Stamp::Utc(t) => (t, None),
            syslog::Stamp::Local(t) => match zone.to_utc(t.secs) {
                Some(secs) => (
                    Timestamp {
                        secs,
                        nanos: t.nanos,
                    },
                    Some(zone.describe()),
                ),
                None => {
                    unparsed_dates += 1;
                    continue;
                }
            },
        };
        let Some(a) = auth::classify(h.program, h.message) else {
            continue;
        };
        let ev = data.evidence.at_line(line.number, line.offset);
        let mut e = make_event(time, source, &a, h.program, h.pid, h.message, ev);
        e = e.field("host", display_safe(h.host));
        if gz {
            e = e.field("gzip", "line and offset in the decompressed text");
        }
        if let Some(n) = note {
            e = e.time_note(n);
        }
        out.events.push(e);
    }
    if unparsed_dates > 0 {
        out.problem(format!(
            "{shown}: {unparsed_dates} lines with dates that do not exist (Feb 29 of a \
             common year after year inference) skipped"
        ));
    }
}

/// An event from an [`auth::AuthEvent`] of `program[pid]: message`.
fn make_event(
    time: Timestamp,
    source: &str,
    a: &auth::AuthEvent,
    program: &[u8],
    pid: Option<u32>,
    message: &[u8],
    evidence: Evidence,
) -> Event {
    let msg = display_safe(message);
    let msg: String = msg.chars().take(MESSAGE_CHARS).collect();
    let prog = display_safe(program);
    let description = match pid {
        Some(p) => format!("{prog}[{p}]: {msg}"),
        None => format!("{prog}: {msg}"),
    };
    let mut e = Event::new(time, source, a.kind, description, evidence).field("process", prog);
    if let Some(p) = pid {
        e = e.field("pid", p.to_string());
    }
    for (k, v) in &a.fields {
        e = e.field(k, v.clone());
    }
    e
}

fn utmp_set(files: &Files<'_>, base: &str, names: &[Vec<u8>], out: &mut Collected) -> LogSet {
    log_set(files, base, names, out, |data, _gz, out| {
        read_utmp_file(data, base, base == "btmp", out);
    })
}

/// The events of one utmp-format file; `source` is `wtmp`, `btmp` or `utmp`.
pub fn read_utmp_file(data: &FileData, source: &str, failed: bool, out: &mut Collected) {
    let shown = data.evidence.path.clone().unwrap_or_default();
    let f = utmp::parse_utmp(&data.bytes);
    if let Some(at) = f.partial_at {
        out.problem(format!(
            "{shown}: a partial record at byte {at} ({} bytes; records are {})",
            data.bytes.len() as u64 - at,
            utmp::UTMP_SIZE
        ));
    }
    for (index, offset, kind) in f.bad_types.iter().take(20) {
        out.problem(format!(
            "{shown}: record {index} at byte {offset}: type {kind} unknown, skipped"
        ));
    }
    if f.bad_types.len() > 20 {
        out.problem(format!(
            "{shown}: {} more records of unknown type skipped",
            f.bad_types.len() - 20
        ));
    }
    for r in &f.records {
        let Some(kind) = utmp::event_kind(r, failed) else {
            continue;
        };
        let nanos = u32::try_from(r.usecs)
            .ok()
            .filter(|&u| u < 1_000_000)
            .map_or(0, |u| u * 1000);
        let mut ev = data.evidence.at_offset(r.offset);
        ev.record = Some(r.index);
        let who = if r.user.is_empty() {
            "-"
        } else {
            r.user.as_str()
        };
        let description = match kind {
            "boot" => format!("boot (kernel {})", r.host),
            "shutdown" => format!("shutdown (kernel {})", r.host),
            "runlevel" => format!("run level change {} (kernel {})", r.user, r.host),
            "logout" => format!("logout on {}", r.line),
            _ if r.host.is_empty() => format!("{kind} {who} on {}", r.line),
            _ => format!("{kind} {who} on {} from {}", r.line, r.host),
        };
        let mut e = Event::new(
            Timestamp {
                secs: r.secs,
                nanos,
            },
            source,
            kind,
            description,
            ev,
        )
        .field("pid", r.pid.to_string());
        for (k, v) in [("user", &r.user), ("tty", &r.line), ("host", &r.host)] {
            if !v.is_empty() && !matches!(kind, "boot" | "shutdown" | "runlevel") {
                e = e.field(k, v.clone());
            }
        }
        let address = if r.address.is_empty() && r.host.parse::<std::net::IpAddr>().is_ok() {
            r.host.clone()
        } else {
            r.address.clone()
        };
        if !address.is_empty() && address != "0.0.0.0" {
            e = e.field("address", address);
        }
        out.events.push(e);
    }
}

/// `/run/utmp` or `/var/run/utmp` (the same file when one links to the other): who was
/// logged in when the system stopped. Usually absent from disk images (tmpfs).
fn read_utmp_now(files: &Files<'_>, out: &mut Collected) {
    let mut seen = HashSet::new();
    for path in [&b"/run/utmp"[..], b"/var/run/utmp"] {
        let data = match files.read(path, LOG_CAP) {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(e) => {
                out.problem(format!(
                    "{}: {}",
                    display_safe(path),
                    display_safe(e.to_string().as_bytes())
                ));
                continue;
            }
        };
        if !seen.insert(data.metadata.inode) {
            continue;
        }
        read_utmp_file(&data, "utmp", false, out);
    }
}

/// `/var/log/lastlog`, named with `/etc/passwd`.
fn read_lastlog(files: &Files<'_>, out: &mut Collected) {
    let data = match files.read(b"/var/log/lastlog", LOG_CAP) {
        Ok(Some(d)) => d,
        Ok(None) => return,
        Err(e) => {
            out.problem(format!(
                "/var/log/lastlog: {}",
                display_safe(e.to_string().as_bytes())
            ));
            return;
        }
    };
    if data.truncated {
        out.problem(format!(
            "/var/log/lastlog: only the first {LOG_CAP} bytes (uids below {}) read of a \
             sparse file of {} bytes",
            LOG_CAP / utmp::LASTLOG_SIZE,
            data.metadata.size
        ));
    }
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    if let Ok(Some(p)) = files.read(b"/etc/passwd", 1 << 20) {
        for line in p.bytes.split(|&b| b == b'\n') {
            let mut f = line.split(|&b| b == b':');
            let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if let Some(uid) = std::str::from_utf8(uid).ok().and_then(|u| u.parse().ok()) {
                names.entry(uid).or_insert_with(|| display_safe(name));
            }
        }
    }
    for r in utmp::parse_lastlog(&data.bytes) {
        let mut ev = data.evidence.at_offset(r.offset);
        ev.record = Some(r.uid);
        let user = names.get(&r.uid).cloned();
        let who = user.clone().unwrap_or_else(|| format!("uid {}", r.uid));
        let from = if r.host.is_empty() {
            String::new()
        } else {
            format!(" from {}", r.host)
        };
        let mut e = Event::new(
            Timestamp {
                secs: r.secs,
                nanos: 0,
            },
            "lastlog",
            "last_login",
            format!("last login of {who} on {}{from}", r.line),
            ev,
        )
        .field("uid", r.uid.to_string());
        if let Some(u) = user {
            e = e.field("user", u);
        }
        if !r.line.is_empty() {
            e = e.field("tty", r.line.clone());
        }
        if !r.host.is_empty() {
            e = e.field("host", r.host.clone());
        }
        out.events.push(e);
    }
}

/// `/var/log/journal/*/*.journal` and `*.journal~`.
fn read_journals(files: &Files<'_>, out: &mut Collected) {
    let dirs = files.list(b"/var/log/journal").unwrap_or_default();
    let mut read = 0usize;
    for d in dirs {
        let mut dir = b"/var/log/journal/".to_vec();
        dir.extend_from_slice(&d.name);
        let Ok(entries) = files.list(&dir) else {
            continue;
        };
        let mut names: Vec<Vec<u8>> = entries
            .into_iter()
            .map(|e| e.name)
            .filter(|n| n.ends_with(b".journal") || n.ends_with(b".journal~"))
            .collect();
        names.sort();
        for n in names {
            if read >= MAX_JOURNAL_FILES {
                out.problem(format!(
                    "/var/log/journal: more than {MAX_JOURNAL_FILES} journal files; the rest \
                     is not read"
                ));
                return;
            }
            read += 1;
            let mut path = dir.clone();
            path.push(b'/');
            path.extend_from_slice(&n);
            read_journal_file(files, &path, out);
        }
    }
}

/// The events of one journal file.
pub fn read_journal_file(files: &Files<'_>, path: &[u8], out: &mut Collected) {
    let shown = display_safe(path);
    let data = match files.read(path, JOURNAL_CAP) {
        Ok(Some(d)) => d,
        Ok(None) => return,
        Err(e) => {
            out.problem(format!(
                "{shown}: {}",
                display_safe(e.to_string().as_bytes())
            ));
            return;
        }
    };
    if data.truncated {
        out.problem(format!(
            "{shown}: only the first {JOURNAL_CAP} bytes of {} read",
            data.metadata.size
        ));
    }
    journal_events(&data, out);
}

/// The events of a journal file's bytes.
pub fn journal_events(data: &FileData, out: &mut Collected) {
    let shown = data.evidence.path.clone().unwrap_or_default();
    let j = match journal::parse_journal(&data.bytes) {
        Ok(j) => j,
        Err(e) => {
            out.problem(format!("{shown}: {e}"));
            return;
        }
    };
    for p in j.problems.iter().take(50) {
        out.problem(format!("{shown}: {p}"));
    }
    if j.problems.len() > 50 {
        out.problem(format!("{shown}: {} more problems", j.problems.len() - 50));
    }
    for e in &j.entries {
        let program = j
            .field(e, b"SYSLOG_IDENTIFIER")
            .or_else(|| j.field(e, b"_COMM"))
            .unwrap_or(&[]);
        let Some(message) = j.field(e, b"MESSAGE") else {
            continue;
        };
        let Some(a) = auth::classify(program, message) else {
            continue;
        };
        let pid = j
            .field(e, b"_PID")
            .or_else(|| j.field(e, b"SYSLOG_PID"))
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| p.parse().ok());
        let mut ev = data.evidence.at_offset(e.offset);
        ev.record = Some(e.seqnum);
        let time = Timestamp {
            secs: i64::try_from(e.realtime_usec / 1_000_000).unwrap_or(i64::MAX),
            nanos: u32::try_from(e.realtime_usec % 1_000_000).unwrap_or(0) * 1000,
        };
        let mut event = make_event(time, "journal", &a, program, pid, message, ev);
        for (field, key) in [
            (&b"_HOSTNAME"[..], "host"),
            (b"_SYSTEMD_UNIT", "systemd_unit"),
            (b"PRIORITY", "priority"),
        ] {
            if let Some(v) = j.field(e, field) {
                event = event.field(key, display_safe(v));
            }
        }
        out.events.push(event);
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
