//! Scheduled jobs: `/etc/crontab`, `/etc/cron.d/*`, user crontabs
//! (`/var/spool/cron/crontabs/*`, `/var/spool/cron/*`), `/etc/anacrontab`, and the
//! scripts in `/etc/cron.{hourly,daily,weekly,monthly}`.
//!
//! Rule raised here:
//! - `linux.cron_persistence` (Medium; High when the command runs from `/tmp`,
//!   `/var/tmp`, `/dev/shm`, a hidden directory, or pipes curl/wget into a shell): a job
//!   not installed by a package — every user crontab entry; entries and scripts in
//!   `/etc/cron.d` and `/etc/cron.*` that no dpkg package owns (all of them when there is
//!   no dpkg database, which the description then says); lines of `/etc/crontab` and
//!   `/etc/anacrontab` other than the stock `run-parts` ones. Cron is the oldest way to
//!   come back after a reboot or a cleanup. False positives: an administrator's own
//!   backup or maintenance jobs, software installed outside dpkg. Commands are matched
//!   as text: a risky command hidden in a script the job calls is not seen here.

use super::packages::OwnedPaths;
use super::{fields, is_comment, join, lines, list, read, risky_command, safe, trim, CONFIG_CAP};
use crate::collected::Collected;
use crate::event::{Event, Evidence};
use crate::files::Files;
use crate::findings::{Finding, Severity};
use serde::Serialize;
use vestige_fs::FileKind;

/// Scheduled jobs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cron {
    /// One per job.
    pub entries: Vec<CronEntry>,
}

/// One scheduled job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CronEntry {
    /// `*/5 * * * *`, `@reboot`, `daily` (cron.daily), anacron's `1 5` (period, delay).
    pub schedule: String,
    /// Who runs it.
    pub user: String,
    /// The command.
    pub command: String,
    /// File and line.
    pub source: Evidence,
}

/// Where a cron file sits, which decides its format and how it is judged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `/etc/crontab`, `/etc/cron.d/*`: with a user field.
    System,
    /// A user crontab: no user field, the file's name is the user.
    User,
    /// `/etc/anacrontab`.
    Anacron,
}

pub(crate) fn collect(files: &Files<'_>, owned: &OwnedPaths, out: &mut Collected) -> Cron {
    let mut c = Cron::default();
    let mut todo: Vec<(Vec<u8>, Kind, Option<String>)> =
        vec![(b"/etc/crontab".to_vec(), Kind::System, None)];
    for e in list(files, "/etc/cron.d", out) {
        todo.push((join("/etc/cron.d", &e.name), Kind::System, None));
    }
    for dir in ["/var/spool/cron/crontabs", "/var/spool/cron"] {
        for e in list(files, dir, out) {
            if e.kind == FileKind::Directory {
                continue; // `crontabs`, `atjobs` …
            }
            todo.push((join(dir, &e.name), Kind::User, Some(safe(&e.name))));
        }
    }
    todo.push((b"/etc/anacrontab".to_vec(), Kind::Anacron, None));
    for (path, kind, user) in todo {
        let Some(data) = read(files, &path, CONFIG_CAP, out) else {
            continue;
        };
        out.events
            .extend(super::mtime_event(&data, "cron_file_modified", "cron file"));
        let packaged = owned.known && owned.owns(&path);
        for l in lines(&data.bytes) {
            let Some(entry) = parse_line(l.text, kind, user.as_deref()) else {
                continue;
            };
            let entry = CronEntry {
                source: data.evidence.at_line(l.no, l.offset),
                ..entry
            };
            let stock = kind != Kind::User
                && (packaged && path.starts_with(b"/etc/cron.d/")
                    || entry.command.contains("run-parts")
                    || entry.command.contains("anacron"));
            judge(&entry, stock, owned.known, l.text, out);
            if c.entries.len() < super::MAX_ITEMS {
                c.entries.push(entry);
            }
        }
    }
    for period in ["hourly", "daily", "weekly", "monthly"] {
        let dir = format!("/etc/cron.{period}");
        for e in list(files, &dir, out) {
            if e.name.starts_with(b".placeholder") {
                continue;
            }
            let path = join(&dir, &e.name);
            let source = files.evidence(&path, Some(e.inode));
            match files.fs().metadata(e.inode) {
                Ok(m) => {
                    if let Some(t) = m.times.modified {
                        out.events.push(
                            Event::new(
                                t,
                                "linux_config",
                                "cron_file_modified",
                                format!("cron script {} last modified", safe(&path)),
                                source.clone(),
                            )
                            .time_note("file modification time (mtime) of the file system"),
                        );
                    }
                }
                Err(err) => out.problem(format!("{}: {err}", safe(&path))),
            }
            let entry = CronEntry {
                schedule: period.into(),
                user: "root".into(),
                command: safe(&path),
                source,
            };
            let stock = owned.known && owned.owns(&path);
            judge(&entry, stock, owned.known, &path, out);
            if c.entries.len() < super::MAX_ITEMS {
                c.entries.push(entry);
            }
        }
    }
    c
}

/// Raises `linux.cron_persistence` for `entry` unless it is `stock`.
fn judge(entry: &CronEntry, stock: bool, db: bool, raw_command: &[u8], out: &mut Collected) {
    let risk = risky_command(raw_command);
    if stock && risk.is_none() {
        return;
    }
    let (severity, why) = match risk {
        Some(why) => (Severity::High, format!(" The command {why}.")),
        None if db => (
            Severity::Medium,
            " No dpkg package installed it.".to_string(),
        ),
        None => (
            Severity::Medium,
            " (No dpkg database was found to tell packaged jobs apart.)".to_string(),
        ),
    };
    out.findings.push(Finding::new(
        "linux.cron_persistence",
        severity,
        format!("Cron job runs {}", entry.command),
        format!(
            "A cron job ({}, as {}) runs `{}`.{why} Scheduled jobs bring a program back \
             after reboots and cleanups.",
            entry.schedule, entry.user, entry.command
        ),
        vec![entry.source.clone()],
    ));
}

/// One crontab line as an entry (source left empty), or `None` for comments, blank lines
/// and environment settings.
fn parse_line(line: &[u8], kind: Kind, user: Option<&str>) -> Option<CronEntry> {
    let t = trim(line);
    if is_comment(t) {
        return None;
    }
    let first = fields(t).next()?;
    let starts_schedule = first
        .first()
        .is_some_and(|b| b.is_ascii_digit() || *b == b'*' || *b == b'@');
    if !starts_schedule {
        return None; // `SHELL=/bin/sh`, `MAILTO=…`, or something cron would reject
    }
    let n_schedule = match kind {
        _ if first.first() == Some(&b'@') => 1,
        Kind::Anacron => 3, // period, delay, job id
        _ => 5,
    };
    let n_user = usize::from(kind == Kind::System);
    // Split off schedule and user fields, keeping the command's own spacing.
    let mut rest = t;
    let mut taken: Vec<&[u8]> = Vec::new();
    for _ in 0..n_schedule + n_user {
        let r = trim(rest);
        let end = r
            .iter()
            .position(u8::is_ascii_whitespace)
            .unwrap_or(r.len());
        taken.push(r.get(..end)?);
        rest = r.get(end..)?;
    }
    let command = trim(rest);
    if command.is_empty() {
        return None;
    }
    let schedule: Vec<&[u8]> = taken.iter().take(n_schedule).copied().collect();
    let user = match (kind, user) {
        (Kind::System, _) => safe(taken.get(n_schedule).copied().unwrap_or_default()),
        (Kind::User, Some(u)) => u.to_string(),
        _ => "root".into(),
    };
    Some(CronEntry {
        schedule: safe(&schedule.join(&b' ')),
        user,
        command: safe(command),
        source: Evidence::default(),
    })
}
