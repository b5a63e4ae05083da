//! Shell histories of root and every home in passwd: `.bash_history`, `.zsh_history`,
//! `.ash_history`, `.sh_history`. Times come from zsh's extended format
//! (`: 1700000000:0;command`) and bash's `HISTTIMEFORMAT` comments (`#1700000000` before a
//! command); those commands become timeline events (source `shell_history`, kind
//! `command`). Untimed commands stay in the profile only.
//!
//! Rule raised here:
//! - `linux.suspicious_history` (Medium): a command that downloads and runs
//!   (`curl … | sh`), decodes base64 into a shell, opens a reverse shell (`nc -e`,
//!   `/dev/tcp/`), clears or disables history (`history -c`, `unset HISTFILE`,
//!   `HISTSIZE=0`, `rm .bash_history`) or makes a file in a temporary directory executable.
//!   These are the steps of an intrusion typed by hand. False positives: administrators
//!   installing software with `curl | sh`, people who clear their history out of habit;
//!   the finding shows the line so the examiner judges.

use super::accounts::User;
use super::{contains, downloads_into_shell, join, lines, pipes_into_shell, read, safe, LOG_CAP};
use crate::collected::Collected;
use crate::event::{Event, Evidence, Timestamp};
use crate::files::Files;
use crate::findings::{Finding, Severity};
use serde::Serialize;

/// Commands of one history kept in the profile (the last ones).
const MAX_PROFILE_COMMANDS: usize = 1000;
/// `linux.suspicious_history` findings raised per file.
const MAX_FINDINGS_PER_FILE: usize = 100;

/// One history file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct History {
    /// Whose.
    pub user: String,
    /// `bash`, `zsh`, `ash`, `sh`.
    pub shell: String,
    /// Commands in the file.
    pub command_count: usize,
    /// Commands with a time (they are in the timeline).
    pub timed_count: usize,
    /// The last [`MAX_PROFILE_COMMANDS`] commands, as written.
    pub last_commands: Vec<String>,
    /// The file.
    pub source: Evidence,
}

const FILES: &[(&str, &str)] = &[
    (".bash_history", "bash"),
    (".zsh_history", "zsh"),
    (".ash_history", "ash"),
    (".sh_history", "sh"),
];

pub(crate) fn collect(files: &Files<'_>, users: &[User], out: &mut Collected) -> Vec<History> {
    let mut homes: Vec<(String, Vec<u8>)> = vec![("root".into(), b"/root".to_vec())];
    for u in users {
        if !u.home_raw.is_empty() && !homes.iter().any(|(_, h)| *h == u.home_raw) {
            homes.push((u.name.clone(), u.home_raw.clone()));
        }
        if homes.len() > super::MAX_ITEMS {
            break;
        }
    }
    let mut found = Vec::new();
    for (user, home) in homes {
        let home = String::from_utf8_lossy(&home).into_owned();
        for (name, shell) in FILES {
            let path = join(&home, name.as_bytes());
            let Some(data) = read(files, &path, LOG_CAP, out) else {
                continue;
            };
            found.push(parse(&data.bytes, &data.evidence, &user, shell, out));
        }
    }
    found
}

/// Reads one history's text: profile entry, timed-command events and findings into `out`.
pub fn parse(
    bytes: &[u8],
    file: &Evidence,
    user: &str,
    shell: &str,
    out: &mut Collected,
) -> History {
    let mut h = History {
        user: user.to_string(),
        shell: shell.to_string(),
        command_count: 0,
        timed_count: 0,
        last_commands: Vec::new(),
        source: file.clone(),
    };
    let mut pending_time: Option<i64> = None;
    let mut findings = 0usize;
    let mut last = std::collections::VecDeque::new();
    for l in lines(bytes) {
        let mut text = l.text;
        let mut time = None;
        // bash HISTTIMEFORMAT: `#1700000000` on its own line dates the next command.
        if let Some(secs) = text.strip_prefix(b"#").and_then(epoch) {
            pending_time = Some(secs);
            continue;
        }
        // zsh EXTENDED_HISTORY: `: <start>:<elapsed>;<command>`.
        if let Some(rest) = text.strip_prefix(b": ") {
            if let Some(semi) = rest.iter().position(|&b| b == b';') {
                let head = rest.get(..semi).unwrap_or_default();
                let start = head.split(|&b| b == b':').next().unwrap_or_default();
                if let Some(secs) = epoch(start) {
                    time = Some(secs);
                    text = rest.get(semi + 1..).unwrap_or_default();
                }
            }
        }
        let time = time.or(pending_time.take());
        if text.is_empty() {
            continue;
        }
        h.command_count = h.command_count.saturating_add(1);
        let command = safe(text);
        let ev = file.at_line(l.no, l.offset);
        if let Some(secs) = time {
            h.timed_count = h.timed_count.saturating_add(1);
            out.events.push(
                Event::new(
                    Timestamp { secs, nanos: 0 },
                    "shell_history",
                    "command",
                    format!("{user} ({shell}): {command}"),
                    ev.clone(),
                )
                .field("user", user)
                .field("shell", shell)
                .field("command", command.clone()),
            );
        }
        if let Some(why) = suspicious(text) {
            findings = findings.saturating_add(1);
            if findings <= MAX_FINDINGS_PER_FILE {
                let mut f = Finding::new(
                    "linux.suspicious_history",
                    Severity::Medium,
                    format!("Shell history of {user}: {why}"),
                    format!("{user} typed `{command}`, which {why}."),
                    vec![ev],
                );
                if let Some(secs) = time {
                    f = f.at(Timestamp { secs, nanos: 0 });
                }
                out.findings.push(f);
            }
        }
        if last.len() >= MAX_PROFILE_COMMANDS {
            last.pop_front();
        }
        last.push_back(command);
    }
    h.last_commands = last.into();
    if findings > MAX_FINDINGS_PER_FILE {
        out.problem(format!(
            "{}: {} more suspicious commands not reported as findings",
            file.path.as_deref().unwrap_or_default(),
            findings - MAX_FINDINGS_PER_FILE
        ));
    }
    h
}

/// Seconds since the epoch, when `text` is all digits of a plausible time (9–11 digits).
fn epoch(text: &[u8]) -> Option<i64> {
    if !(9..=11).contains(&text.len()) || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// What a history line does that intruders do, if anything.
#[must_use]
pub fn suspicious(cmd: &[u8]) -> Option<&'static str> {
    if downloads_into_shell(cmd) {
        return Some("downloads and runs code");
    }
    if (contains(cmd, b"base64 -d") || contains(cmd, b"base64 --decode")) && pipes_into_shell(cmd) {
        return Some("decodes base64 into a shell");
    }
    let reverse = [
        &b"/dev/tcp/"[..],
        b"/dev/udp/",
        b"nc -e",
        b"ncat -e",
        b"netcat -e",
        b"nc -c",
        b"ncat -c",
        b"bash -i >&",
        b"sh -i >&",
    ];
    if reverse.iter().any(|n| contains(cmd, n))
        || (contains(cmd, b"mkfifo") && contains(cmd, b"nc "))
        || (contains(cmd, b"socat") && contains(cmd, b"exec:"))
    {
        return Some("opens a reverse shell");
    }
    let clears = [
        &b"history -c"[..],
        b"history -w /dev/null",
        b"unset HISTFILE",
        b"HISTFILE=/dev/null",
        b"HISTSIZE=0",
        b"HISTFILESIZE=0",
        b"set +o history",
    ];
    if clears.iter().any(|n| contains(cmd, n))
        || ((contains(cmd, b"rm ") || contains(cmd, b"shred") || contains(cmd, b"> "))
            && contains(cmd, b"_history"))
        || (contains(cmd, b"ln -s") && contains(cmd, b"/dev/null") && contains(cmd, b"_history"))
    {
        return Some("clears or disables the shell history");
    }
    if contains(cmd, b"chmod")
        && [&b"/tmp/"[..], b"/var/tmp/", b"/dev/shm/"]
            .iter()
            .any(|d| contains(cmd, d))
        && (contains(cmd, b"+x") || contains(cmd, b" 7") || contains(cmd, b" 5"))
    {
        return Some("makes a file in a temporary directory executable");
    }
    None
}
