//! The findings of the log collector.
//!
//! - `auth.bruteforce_then_success` (High): at least [`BRUTEFORCE_FAILURES`] failed SSH
//!   logins from one address within [`BRUTEFORCE_WINDOW_SECS`], then a successful login
//!   from that address within a day of the last failure. Password guessing that worked is
//!   the classic way in. False positives: a user who mistyped a password many times, or a
//!   scanner and a legitimate user behind the same NAT address.
//! - `auth.bruteforce` (Medium): the same failures without a success. Internet-facing SSH
//!   servers see this daily: it says the server was targeted, not that it was entered.
//! - `auth.user_added` (Info; Medium for uid 0): `useradd` logged a new account. A second
//!   uid-0 account is a backdoor; a new ordinary account is worth checking against
//!   change records.
//! - `logs.cleared` (High): a log whose current file is empty or missing while rotated
//!   copies of it hold data (Medium for btmp, which is often legitimately empty), or a
//!   sudo command that destroys logs (`journalctl --vacuum…`, `shred`, a redirection or
//!   `rm`/`truncate` aimed at `/var/log`, wtmp/btmp/lastlog or a shell history). False
//!   positives: a log rotated moments before the image was taken, an administrator
//!   freeing disk space.
//!
//! Failures are counted per source (the syslog files together, the journal, btmp), so the
//! same attempt logged both by rsyslog and journald is not counted twice; one finding is
//! kept per address. Only sshd's `Failed <method> for …` lines (and btmp records) are
//! counted, not the `Invalid user` and PAM lines that accompany them.

use super::LogSet;
use crate::event::{utc_text, Event, Evidence};
use crate::findings::{Finding, Severity};
use std::collections::{BTreeMap, BTreeSet};

/// Failed logins that make a brute force.
pub const BRUTEFORCE_FAILURES: usize = 10;
/// Within this many seconds.
pub const BRUTEFORCE_WINDOW_SECS: i64 = 3600;
/// A success at most this long after the last failure counts as its outcome.
pub const SUCCESS_WITHIN_SECS: i64 = 86_400;

fn field<'a>(e: &'a Event, k: &str) -> Option<&'a str> {
    e.fields.get(k).map(String::as_str)
}

fn is_counted_failure(e: &Event) -> bool {
    (e.kind == "ssh_login_failed" && e.fields.contains_key("method"))
        || (e.kind == "failed_login" && e.source == "btmp")
}

/// `auth.bruteforce_then_success` and `auth.bruteforce`.
#[must_use]
pub fn bruteforce(events: &[Event]) -> Vec<Finding> {
    // (group, address) -> failures; group: "syslog" for the text logs, "journal", "btmp".
    let group = |e: &Event| match e.source.as_str() {
        "journal" => "journal",
        "btmp" | "wtmp" | "utmp" => "login records",
        _ => "syslog",
    };
    let mut failures: BTreeMap<(&str, &str), Vec<&Event>> = BTreeMap::new();
    let mut successes: BTreeMap<(&str, &str), Vec<&Event>> = BTreeMap::new();
    for e in events {
        let Some(addr) = field(e, "address") else {
            continue;
        };
        if is_counted_failure(e) {
            failures.entry((group(e), addr)).or_default().push(e);
        } else if e.kind == "ssh_login" || (e.kind == "login" && e.source == "wtmp") {
            successes.entry((group(e), addr)).or_default().push(e);
        }
    }
    let mut out: Vec<Finding> = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    for ((g, addr), mut fails) in failures {
        if done.contains(addr) {
            continue;
        }
        fails.sort_by_key(|e| e.time);
        // The first window of BRUTEFORCE_FAILURES within the hour.
        let Some(start) = (0..fails.len()).find(|&i| {
            fails
                .get(i + BRUTEFORCE_FAILURES - 1)
                .zip(fails.get(i))
                .is_some_and(|(l, f)| l.time.secs - f.time.secs <= BRUTEFORCE_WINDOW_SECS)
        }) else {
            continue;
        };
        let Some(tenth) = fails.get(start + BRUTEFORCE_FAILURES - 1) else {
            continue;
        };
        let Some(first) = fails.get(start) else {
            continue;
        };
        let mut succ: Vec<&Event> = successes.get(&(g, addr)).cloned().unwrap_or_default();
        succ.sort_by_key(|e| e.time);
        let success = succ.into_iter().find(|s| {
            s.time >= tenth.time
                && fails
                    .iter()
                    .rev()
                    .find(|f| f.time <= s.time)
                    .is_some_and(|f| s.time.secs - f.time.secs <= SUCCESS_WITHIN_SECS)
        });
        let users: BTreeSet<&str> = fails.iter().filter_map(|e| field(e, "user")).collect();
        let users: Vec<&str> = users.into_iter().take(10).collect();
        done.insert(addr.to_string());
        match success {
            Some(s) => {
                let before: Vec<&&Event> = fails.iter().filter(|f| f.time <= s.time).collect();
                let last = before.last().copied().copied().unwrap_or(tenth);
                let n = before.iter().filter(|f| f.time >= first.time).count();
                let user = field(s, "user").unwrap_or("?");
                let method = field(s, "method")
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                out.push(
                    Finding::new(
                        "auth.bruteforce_then_success",
                        Severity::High,
                        format!("Brute force from {addr} followed by a successful login as {user}"),
                        format!(
                            "{n} failed logins from {addr} between {} and {} (users tried: \
                             {}), then a successful login as {user}{method} at {} ({}, {}).",
                            utc_text(first.time),
                            utc_text(last.time),
                            users.join(", "),
                            utc_text(s.time),
                            s.source,
                            s.evidence.describe()
                        ),
                        vec![
                            s.evidence.clone(),
                            first.evidence.clone(),
                            last.evidence.clone(),
                        ],
                    )
                    .at(s.time),
                );
            }
            None => {
                let last = fails.last().copied().unwrap_or(tenth);
                out.push(
                    Finding::new(
                        "auth.bruteforce",
                        Severity::Medium,
                        format!("Brute force from {addr}"),
                        format!(
                            "{} failed logins from {addr} between {} and {} (users tried: {}), \
                             at least {BRUTEFORCE_FAILURES} within an hour; no successful login \
                             from that address followed in the same source.",
                            fails.len() - start,
                            utc_text(first.time),
                            utc_text(last.time),
                            users.join(", ")
                        ),
                        vec![first.evidence.clone(), last.evidence.clone()],
                    )
                    .at(first.time),
                );
            }
        }
    }
    out
}

/// `auth.user_added`, one per logged account creation (syslog and journal copies of the
/// same line both count: each is evidence).
#[must_use]
pub fn user_added(events: &[Event]) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    events
        .iter()
        .filter(|e| e.kind == "user_added")
        .filter(|e| seen.insert((e.time, field(e, "user").unwrap_or(""))))
        .map(|e| {
            let user = field(e, "user").unwrap_or("?");
            let uid = field(e, "uid");
            let (severity, why) = if uid == Some("0") {
                (
                    Severity::Medium,
                    " with uid 0: a second superuser account is a classic backdoor",
                )
            } else {
                (Severity::Info, "")
            };
            let uid_text = uid.map(|u| format!(" (uid {u})")).unwrap_or_default();
            Finding::new(
                "auth.user_added",
                severity,
                format!("Account {user} added{uid_text}"),
                format!(
                    "useradd created account {user}{uid_text} at {}{why}; home {}, shell {}.",
                    utc_text(e.time),
                    field(e, "home").unwrap_or("?"),
                    field(e, "shell").unwrap_or("?")
                ),
                vec![e.evidence.clone()],
            )
            .at(e.time)
        })
        .collect()
}

/// `logs.cleared` from the files: a current log empty or missing beside non-empty
/// rotations.
#[must_use]
pub fn cleared_logs(sets: &[LogSet]) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in sets {
        let full: Vec<&(Evidence, u64)> = s.rotated.iter().filter(|(_, n)| *n > 0).collect();
        if full.is_empty() {
            continue;
        }
        let severity = if s.base == "btmp" {
            Severity::Medium
        } else {
            Severity::High
        };
        let (state, mut evidence) = match &s.current {
            Some((ev, 0)) => ("is empty", vec![ev.clone()]),
            Some(_) => continue,
            None => ("is missing", Vec::new()),
        };
        evidence.extend(full.iter().map(|(e, _)| e.clone()));
        out.push(Finding::new(
            "logs.cleared",
            severity,
            format!("/var/log/{} {state} while rotated copies hold data", s.base),
            format!(
                "/var/log/{} {state}, but {} rotated copies of it are not: the current log \
                 may have been emptied or deleted. It can also have been rotated just \
                 before the image was taken; compare its times with the last rotation.",
                s.base,
                full.len()
            ),
            evidence,
        ));
    }
    out
}

/// Why `command` destroys logs, if it does.
#[must_use]
pub fn destroys_logs(command: &str) -> Option<&'static str> {
    let c = command.to_ascii_lowercase();
    let writes = [
        " rm ",
        "/rm ",
        "truncate",
        "> /",
        ">/",
        "/dev/null",
        "shred",
        "cp /dev/",
        "unlink",
        "wipe",
    ];
    let destructive = c.starts_with("rm ") || writes.iter().any(|w| c.contains(w));
    if c.contains("journalctl") && c.contains("--vacuum") {
        return Some("journalctl --vacuum deletes journal files");
    }
    if c.contains("shred") {
        return Some("shred overwrites files");
    }
    if !destructive {
        return None;
    }
    if c.contains("/var/log") {
        return Some("removes or truncates files in /var/log");
    }
    if ["wtmp", "btmp", "lastlog", "utmp"]
        .iter()
        .any(|f| c.contains(f))
    {
        return Some("removes or truncates the login records");
    }
    if c.contains("_history") {
        return Some("removes or truncates a shell history");
    }
    None
}

/// `logs.cleared` from sudo commands.
#[must_use]
pub fn anti_forensic_commands(events: &[Event]) -> Vec<Finding> {
    events
        .iter()
        .filter(|e| e.kind == "sudo_command")
        .filter_map(|e| {
            let cmd = field(e, "command")?;
            let why = destroys_logs(cmd)?;
            let user = field(e, "user").unwrap_or("?");
            Some(
                Finding::new(
                    "logs.cleared",
                    Severity::High,
                    format!("{user} ran a log-destroying command with sudo"),
                    format!(
                        "{user} ran `{cmd}` as {} at {}: {why}. Records from before it may be \
                         gone; look for gaps and for deleted log files.",
                        field(e, "target_user").unwrap_or("root"),
                        utc_text(e.time)
                    ),
                    vec![e.evidence.clone()],
                )
                .at(e.time),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_destroying_commands() {
        for c in [
            "/usr/bin/journalctl --vacuum-time=1s",
            "/usr/bin/shred -u /var/log/auth.log",
            "/bin/sh -c > /var/log/auth.log",
            "/usr/bin/truncate -s 0 /var/log/wtmp",
            "/bin/rm -f /var/log/btmp",
            "/bin/cp /dev/null /root/.bash_history",
        ] {
            assert!(destroys_logs(c).is_some(), "{c}");
        }
        for c in [
            "/usr/bin/tail -f /var/log/syslog",
            "/usr/bin/last -f /var/log/wtmp",
            "/usr/bin/apt upgrade",
            "/usr/bin/journalctl -u ssh",
        ] {
            assert!(destroys_logs(c).is_none(), "{c}");
        }
    }
}
