//! Linux system identity and configuration, read from a root file system through
//! [`Files`]: who the machine is (hostname, release, kernels, time zone), who may log in
//! (accounts, groups, sudoers, SSH keys), how it is wired (network), what is installed
//! (dpkg), what starts by itself (systemd, SysV, rc.local, cron) and what was typed
//! (shell histories).
//!
//! [`collect`] returns a [`LinuxProfile`] for the report, where every fact names the file
//! (and line) it came from, and a [`Collected`] with timeline events (package
//! installs, timed shell commands, modification times of persistence-relevant files) and
//! findings (`linux.*` rules, documented in the submodule that raises them).
//!
//! Nothing here trusts the evidence: every read is capped (configuration files at
//! [`CONFIG_CAP`], logs at [`LOG_CAP`]), every list is bounded, and what could not be read
//! or parsed is said in `problems`.
//!
//! ```no_run
//! # fn demo(files: &vestige_analyze::files::Files<'_>) {
//! use vestige_analyze::linux;
//! if linux::is_linux_root(files) {
//!     let (profile, collected) = linux::collect(files);
//!     println!("{:?} {} findings", profile.identity.hostname, collected.findings.len());
//! }
//! # }
//! ```

pub mod accounts;
pub mod cron;
pub mod history;
pub mod identity;
pub mod network;
pub mod packages;
pub mod services;
pub mod ssh;

use crate::collected::Collected;
use crate::event::{Event, Evidence, Timestamp};
use crate::files::{FileData, Files};
use crate::text::display_safe;
use serde::Serialize;
use vestige_fs::DirEntry;

/// Bytes read of a configuration file (passwd, crontab, unit file …).
pub const CONFIG_CAP: usize = 1 << 20;
/// Bytes read of a log or history file (dpkg.log, .bash_history), decompressed.
pub const LOG_CAP: usize = 64 << 20;
/// Entries taken from one directory listing.
pub const MAX_DIR_ENTRIES: usize = 4096;
/// Items kept in one profile list (packages, hosts entries, history lines …).
pub const MAX_ITEMS: usize = 20_000;
/// Bytes of one value from evidence kept in the profile or a description.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Problems recorded per file before the rest are only counted.
const MAX_PROBLEMS_PER_FILE: usize = 10;

/// A fact and the file (and line) it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    /// The value, display-safe.
    pub value: String,
    /// Where it was read.
    pub source: Evidence,
}

/// Everything [`collect`] learns about the system, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinuxProfile {
    /// Hostname, release, kernels, time zone.
    pub identity: identity::Identity,
    /// Users, groups, sudoers.
    pub accounts: accounts::Accounts,
    /// Interfaces, netplan, NetworkManager, resolvers, hosts.
    pub network: network::Network,
    /// Installed packages.
    pub packages: packages::Packages,
    /// Services that start by themselves.
    pub services: services::Services,
    /// Scheduled jobs.
    pub cron: cron::Cron,
    /// SSH server settings and authorized keys.
    pub ssh: ssh::Ssh,
    /// Shell histories.
    pub histories: Vec<history::History>,
}

/// Whether `files` looks like a Linux root: `/etc/os-release`, `/usr/lib/os-release` or
/// `/etc/passwd` exists. Cheap (three lookups); errors count as "no".
#[must_use]
pub fn is_linux_root(files: &Files<'_>) -> bool {
    ["/etc/os-release", "/usr/lib/os-release", "/etc/passwd"]
        .iter()
        .any(|p| matches!(files.resolve(p.as_bytes()), Ok(Some(_))))
}

/// Reads the profile, events and findings of the Linux root `files`. dpkg.log times are
/// written as read (local time, not converted); see [`collect_with_zone`].
#[must_use]
pub fn collect(files: &Files<'_>) -> (LinuxProfile, Collected) {
    collect_with_zone(files, &|_| None)
}

/// As [`collect`], converting the local times of dpkg.log with `local_to_utc` (local
/// seconds since the epoch, as if UTC → UTC seconds; `None` when it cannot say).
#[must_use]
pub fn collect_with_zone(
    files: &Files<'_>,
    local_to_utc: &dyn Fn(i64) -> Option<i64>,
) -> (LinuxProfile, Collected) {
    let mut out = Collected::default();
    let identity = identity::collect(files, &mut out);
    let accounts = accounts::collect(files, &mut out);
    let owned = packages::owned_paths(files, &mut out);
    let tz_name = identity.time_zone.as_ref().map(|f| f.value.clone());
    let packages = packages::collect(files, tz_name.as_deref(), local_to_utc, &mut out);
    let network = network::collect(files, &mut out);
    let services = services::collect(files, &owned, &mut out);
    let cron = cron::collect(files, &owned, &mut out);
    let hostname = identity.hostname.as_ref().map(|f| f.value.clone());
    let ssh = ssh::collect(files, &accounts.users, hostname.as_deref(), &mut out);
    let histories = history::collect(files, &accounts.users, &mut out);
    let profile = LinuxProfile {
        identity,
        accounts,
        network,
        packages,
        services,
        cron,
        ssh,
        histories,
    };
    (profile, out)
}

/// One line of a text file: its 1-based number, the byte offset where it starts, and its
/// bytes without the line end (`\n`, `\r\n`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub no: u64,
    pub offset: u64,
    pub text: &'a [u8],
}

/// The lines of `bytes`.
pub(crate) fn lines(bytes: &[u8]) -> impl Iterator<Item = Line<'_>> {
    let mut offset = 0u64;
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(move |(i, raw)| {
            let start = offset;
            offset = offset.saturating_add(raw.len() as u64).saturating_add(1);
            if start >= bytes.len() as u64 && raw.is_empty() {
                return None; // after the final newline
            }
            let text = raw.strip_suffix(b"\r").unwrap_or(raw);
            Some(Line {
                no: u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1),
                offset: start,
                text,
            })
        })
}

/// `bytes` without leading and trailing ASCII white space.
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e.saturating_add(1));
    bytes.get(start..end.max(start)).unwrap_or_default()
}

/// Whether a configuration line is blank or a `#` comment.
pub(crate) fn is_comment(line: &[u8]) -> bool {
    let t = trim(line);
    t.is_empty() || t.first() == Some(&b'#')
}

/// A value from evidence made display-safe, at most [`MAX_VALUE_BYTES`] of it.
pub(crate) fn safe(bytes: &[u8]) -> String {
    match bytes.get(..MAX_VALUE_BYTES) {
        Some(head) if bytes.len() > MAX_VALUE_BYTES => {
            format!("{} [... {} bytes]", display_safe(head), bytes.len())
        }
        _ => display_safe(bytes),
    }
}

/// Whether `hay` contains `needle` (bytes, ASCII case-insensitive).
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// White-space separated fields of `line`.
pub(crate) fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
}

/// `dir` + `/` + `name`.
pub(crate) fn join(dir: &str, name: &[u8]) -> Vec<u8> {
    let mut p = dir.trim_end_matches('/').as_bytes().to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Reads `path` (at most `cap` bytes); `None` when it does not exist. Errors and
/// truncation are recorded in `out`.
pub(crate) fn read(
    files: &Files<'_>,
    path: &[u8],
    cap: usize,
    out: &mut Collected,
) -> Option<FileData> {
    match files.read(path, cap) {
        Ok(Some(data)) => {
            if data.truncated {
                out.problem(format!(
                    "{}: only the first {} of {} bytes read",
                    display_safe(path),
                    data.bytes.len(),
                    data.metadata.size
                ));
            }
            Some(data)
        }
        Ok(None) => None,
        Err(e) => {
            out.problem(format!("{}: {e}", display_safe(path)));
            None
        }
    }
}

/// The allocated entries of directory `dir`, sorted by name, at most
/// [`MAX_DIR_ENTRIES`]; errors and the cut recorded in `out`.
pub(crate) fn list(files: &Files<'_>, dir: &str, out: &mut Collected) -> Vec<DirEntry> {
    let mut entries = match files.list(dir.as_bytes()) {
        Ok(e) => e,
        Err(e) => {
            out.problem(format!("{}: {e}", display_safe(dir.as_bytes())));
            return Vec::new();
        }
    };
    entries.retain(|e| e.name != b"." && e.name != b"..");
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    if entries.len() > MAX_DIR_ENTRIES {
        out.problem(format!(
            "{}: {} entries, only the first {MAX_DIR_ENTRIES} read",
            display_safe(dir.as_bytes()),
            entries.len()
        ));
        entries.truncate(MAX_DIR_ENTRIES);
    }
    entries
}

/// Counts a file's parse problems, keeping the first few.
pub(crate) struct ProblemLog<'a> {
    what: String,
    count: usize,
    out: &'a mut Collected,
}

impl<'a> ProblemLog<'a> {
    pub(crate) fn new(path: &Evidence, out: &'a mut Collected) -> Self {
        Self {
            what: path.path.clone().unwrap_or_default(),
            count: 0,
            out,
        }
    }

    pub(crate) fn line(&mut self, line: u64, why: &str) {
        self.count = self.count.saturating_add(1);
        if self.count <= MAX_PROBLEMS_PER_FILE {
            self.out
                .problem(format!("{} line {line}: {why}", self.what));
        }
    }

    pub(crate) fn out(&mut self) -> &mut Collected {
        self.out
    }
}

impl Drop for ProblemLog<'_> {
    fn drop(&mut self) {
        if self.count > MAX_PROBLEMS_PER_FILE {
            self.out.problem(format!(
                "{}: {} more lines not understood",
                self.what,
                self.count.saturating_sub(MAX_PROBLEMS_PER_FILE)
            ));
        }
    }
}

/// The event "file `data` was last modified" (`kind`), from its mtime; `None` when the
/// file system has no mtime for it.
pub(crate) fn mtime_event(data: &FileData, kind: &str, what: &str) -> Option<Event> {
    let time: Timestamp = data.metadata.times.modified?;
    let path = data.evidence.path.clone().unwrap_or_default();
    Some(
        Event::new(
            time,
            "linux_config",
            kind,
            format!("{what} {path} last modified"),
            data.evidence.clone(),
        )
        .time_note("file modification time (mtime) of the file system"),
    )
}

/// Why `command` (a cron job, an `ExecStart=`) is typical of an intrusion rather than of
/// a package: it runs from a world-writable or hidden place, or pipes a download into a
/// shell. `None` when nothing stands out.
pub(crate) fn risky_command(command: &[u8]) -> Option<&'static str> {
    for dir in [&b"/tmp/"[..], b"/var/tmp/", b"/dev/shm/"] {
        if contains(command, dir) {
            return Some("runs from a world-writable temporary directory");
        }
    }
    if hidden_dir(command) {
        return Some("runs from a hidden directory");
    }
    if downloads_into_shell(command) {
        return Some("pipes a download into a shell");
    }
    None
}

/// Whether a path in `text` passes through a hidden directory (`/.name/`).
fn hidden_dir(text: &[u8]) -> bool {
    text.windows(3).enumerate().any(|(i, w)| {
        let [a, b, c] = w else { return false };
        if *a != b'/' || *b != b'.' || *c == b'/' || *c == b'.' || c.is_ascii_whitespace() {
            return false;
        }
        // The component must be followed by another `/` (a directory, not a file).
        let rest = text.get(i.saturating_add(2)..).unwrap_or_default();
        rest.iter()
            .take_while(|b| !b.is_ascii_whitespace())
            .any(|&b| b == b'/')
    })
}

/// Whether `text` fetches with curl/wget and pipes into a shell or interpreter.
pub(crate) fn downloads_into_shell(text: &[u8]) -> bool {
    let fetches = contains(text, b"curl") || contains(text, b"wget");
    fetches && pipes_into_shell(text)
}

/// Whether `text` pipes into `sh`, `bash` … (`| sh`, `|bash -s`, `| python3`).
pub(crate) fn pipes_into_shell(text: &[u8]) -> bool {
    let mut rest = text;
    let mut guard = 0usize;
    while let Some(i) = rest.iter().position(|&b| b == b'|') {
        guard = guard.saturating_add(1);
        if guard > 1000 {
            break;
        }
        let after = rest.get(i.saturating_add(1)..).unwrap_or_default();
        let word = fields(after).next().unwrap_or_default();
        let base = word.rsplit(|&b| b == b'/').next().unwrap_or_default();
        if matches!(
            base,
            b"sh" | b"bash" | b"dash" | b"zsh" | b"ksh" | b"ash" | b"python" | b"python3" | b"perl"
        ) || word == b"sudo"
        {
            return true;
        }
        rest = after;
    }
    false
}

/// The calendar date of day `days` since 1970-01-01 (`2023-11-14`).
pub(crate) fn date_of_day(days: i64) -> Option<String> {
    let secs = days.checked_mul(86_400)?;
    let dt = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day()
    ))
}

#[cfg(test)]
mod tests;
