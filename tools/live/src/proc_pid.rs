//! Per-process text files: /proc/PID/stat, /proc/PID/status and the NUL-separated
//! /proc/PID/cmdline and /proc/PID/environ (`Documentation/filesystems/proc.rst`, 1.1).
//!
//! Everything here is under the process's own control in part: `comm` is settable with
//! `prctl(PR_SET_NAME)` and a process may overwrite its argv, so a name is a claim, the
//! exe link and its hash are the evidence.

use crate::table::{cap, dec, ParseError, MAX_LINES};
use time::OffsetDateTime;

/// `PF_KTHREAD` in the stat `flags` field (`include/linux/sched.h`): a kernel thread.
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// The fields of /proc/PID/stat the collector uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidStat {
    /// Process id (field 1).
    pub pid: u32,
    /// `comm` (field 2, between the first `(` and the last `)`), lossy UTF-8, ≤ 64 bytes.
    pub comm: String,
    /// State letter (field 3: R, S, D, Z, T, t, X, I, …).
    pub state: String,
    /// Parent pid (field 4).
    pub ppid: u32,
    /// Session id (field 6).
    pub session: i32,
    /// Controlling terminal device number (field 7; 0 = none).
    pub tty_nr: i32,
    /// `PF_*` flags (field 9).
    pub flags: u32,
    /// Threads in the process (field 20).
    pub num_threads: u32,
    /// Start time after boot in clock ticks (field 22; see [`start_time`]).
    pub start_ticks: u64,
}

/// Most bytes kept of a `comm` (the kernel's is 16; more means the input is not genuine).
const MAX_COMM_BYTES: usize = 64;

/// Parses /proc/PID/stat. The comm may contain spaces and `)`, so the fields after it are
/// found from the last `)`.
pub fn parse_stat(text: &str) -> Result<PidStat, ParseError> {
    let open = text
        .find('(')
        .ok_or_else(|| ParseError::field(1, "comm", "(comm)", text))?;
    let close = text
        .rfind(')')
        .filter(|&c| c > open)
        .ok_or_else(|| ParseError::field(1, "comm", "(comm)", text))?;
    let pid_text = text.get(..open).unwrap_or_default().trim();
    let comm = text.get(open.saturating_add(1)..close).unwrap_or_default();
    let rest = text.get(close.saturating_add(1)..).unwrap_or_default();
    // Field 3 is at index 0 here; field 22 (starttime) at index 19.
    let f: Vec<&str> = rest.split_whitespace().take(20).collect();
    if f.len() < 20 {
        return Err(ParseError::TooFewFields {
            line: 1,
            expected: 22,
            found: f.len().saturating_add(2),
        });
    }
    let field = |field_no: usize| {
        f.get(field_no.saturating_sub(3))
            .copied()
            .unwrap_or_default()
    };
    Ok(PidStat {
        pid: dec(1, "pid", pid_text)?,
        comm: cap(comm, MAX_COMM_BYTES),
        state: cap(field(3), MAX_COMM_BYTES),
        ppid: dec(1, "ppid", field(4))?,
        session: dec(1, "session", field(6))?,
        tty_nr: dec(1, "tty_nr", field(7))?,
        flags: dec(1, "flags", field(9))?,
        num_threads: dec(1, "num_threads", field(20))?,
        start_ticks: dec(1, "starttime", field(22))?,
    })
}

/// The fields of /proc/PID/status the collector uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PidStatus {
    /// `Name:` (escaped by the kernel: `\n` and `\\`).
    pub name: Option<String>,
    /// `State:` e.g. `S (sleeping)`.
    pub state: Option<String>,
    /// `PPid:`.
    pub ppid: Option<u32>,
    /// `Uid:` real, effective, saved set, file system.
    pub uid: Option<[u32; 4]>,
    /// `Gid:` real, effective, saved set, file system.
    pub gid: Option<[u32; 4]>,
    /// `Threads:`.
    pub threads: Option<u32>,
}

/// Parses /proc/PID/status (`Key:\tvalue` lines). Unknown keys are ignored; a known key
/// with a malformed value is an error naming its line.
pub fn parse_status(text: &str) -> Result<PidStatus, ParseError> {
    let mut s = PidStatus::default();
    for (index, line) in text.lines().take(MAX_LINES).enumerate() {
        let n = index.saturating_add(1);
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Name" => s.name = Some(cap(value, MAX_COMM_BYTES)),
            "State" => s.state = Some(cap(value, MAX_COMM_BYTES)),
            "PPid" => s.ppid = Some(dec(n, "PPid", value)?),
            "Threads" => s.threads = Some(dec(n, "Threads", value)?),
            "Uid" => s.uid = Some(four_ids(n, "Uid", value)?),
            "Gid" => s.gid = Some(four_ids(n, "Gid", value)?),
            _ => {}
        }
    }
    Ok(s)
}

fn four_ids(line: usize, field: &'static str, value: &str) -> Result<[u32; 4], ParseError> {
    let mut ids = [0u32; 4];
    let mut parts = value.split_whitespace();
    for id in &mut ids {
        let part = parts
            .next()
            .ok_or_else(|| ParseError::field(line, field, "four ids", value))?;
        *id = dec(line, field, part)?;
    }
    if parts.next().is_some() {
        return Err(ParseError::field(line, field, "four ids", value));
    }
    Ok(ids)
}

/// NUL-separated strings (cmdline, environ) and whether anything was cut.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NulStrings {
    /// The strings, lossy UTF-8.
    pub items: Vec<String>,
    /// True when `max_items` or `max_item_bytes` cut something.
    pub truncated: bool,
}

/// Splits NUL-separated bytes (a trailing NUL ends the last string, it does not start an
/// empty one), keeping at most `max_items` strings of at most `max_item_bytes` each.
pub fn split_nul(bytes: &[u8], max_items: usize, max_item_bytes: usize) -> NulStrings {
    let mut out = NulStrings::default();
    let body = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if body.is_empty() {
        return out;
    }
    for part in body.split(|&b| b == 0) {
        if out.items.len() >= max_items {
            out.truncated = true;
            break;
        }
        let text = String::from_utf8_lossy(part);
        if text.len() > max_item_bytes {
            out.truncated = true;
        }
        out.items.push(cap(&text, max_item_bytes));
    }
    out
}

/// A process's start time: boot time (`btime` of /proc/stat, Unix seconds) plus
/// `start_ticks` clock ticks of `ticks_per_second` (sysconf `_SC_CLK_TCK`). `None` when
/// out of range or `ticks_per_second` is 0. Exact to the tick; btime itself is whole
/// seconds, so the result may be up to a second off.
pub fn start_time(btime: i64, start_ticks: u64, ticks_per_second: u64) -> Option<OffsetDateTime> {
    if ticks_per_second == 0 {
        return None;
    }
    let nanos_after_boot = u128::from(start_ticks)
        .checked_mul(1_000_000_000)?
        .checked_div(u128::from(ticks_per_second))?;
    let total = i128::from(btime)
        .checked_mul(1_000_000_000)?
        .checked_add(i128::try_from(nanos_after_boot).ok()?)?;
    OffsetDateTime::from_unix_timestamp_nanos(total).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const STAT: &str = "3901 (cat) R 3892 3892 2836 34816 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 1138097 3133440 383 18446744073709551615 94753518718976 0\n";

    #[test]
    fn stat_fields() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.state.as_str(), s.ppid),
            (3901, "cat", "R", 3892)
        );
        assert_eq!((s.session, s.tty_nr, s.flags), (2836, 34816, 4_194_304));
        assert_eq!((s.num_threads, s.start_ticks), (1, 1_138_097));
    }

    #[test]
    fn stat_comm_with_parens_and_spaces() {
        let s = parse_stat("7 (a) b (c)) S 1 7 7 0 -1 2097216 0 0 0 0 0 0 0 0 20 0 1 0 12 0 0")
            .unwrap();
        assert_eq!(s.comm, "a) b (c)");
        assert_eq!(s.flags & PF_KTHREAD, PF_KTHREAD);
    }

    #[test]
    fn stat_rejects_garbage() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat(")(").is_err());
        assert!(matches!(
            parse_stat("1 (x) S 0"),
            Err(ParseError::TooFewFields {
                expected: 22,
                found: 4,
                ..
            })
        ));
        assert!(matches!(
            parse_stat(&STAT.replace("1138097", "-3")),
            Err(ParseError::Field {
                field: "starttime",
                ..
            })
        ));
    }

    #[test]
    fn status_fields() {
        let text = "Name:\tsshd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t812\nPPid:\t1\nUid:\t0\t1000\t0\t0\nGid:\t0\t0\t0\t0\nThreads:\t1\n";
        let s = parse_status(text).unwrap();
        assert_eq!(s.name.as_deref(), Some("sshd"));
        assert_eq!(s.state.as_deref(), Some("S (sleeping)"));
        assert_eq!((s.ppid, s.threads), (Some(1), Some(1)));
        assert_eq!(s.uid, Some([0, 1000, 0, 0]));
        assert_eq!(s.gid, Some([0; 4]));
        assert!(matches!(
            parse_status("Name:\tx\nUid:\t0\t0\t0\n"),
            Err(ParseError::Field {
                line: 2,
                field: "Uid",
                ..
            })
        ));
        assert!(parse_status("Uid:\t0\t0\t0\t0\t0").is_err());
    }

    #[test]
    fn nul_split() {
        let s = split_nul(b"/usr/bin/python3\0-c\0\0print(1)\0", 10, 100);
        assert_eq!(s.items, ["/usr/bin/python3", "-c", "", "print(1)"]);
        assert!(!s.truncated);
        assert_eq!(split_nul(b"", 10, 10), NulStrings::default());
        let s = split_nul(b"abcdef\0x\0y", 2, 3);
        assert_eq!(s.items, ["abc", "x"]);
        assert!(s.truncated);
        assert_eq!(split_nul(b"\xff\0", 4, 10).items, ["\u{FFFD}"]);
    }

    #[test]
    fn start_times() {
        let t = start_time(1_700_000_000, 250, 100).unwrap();
        assert_eq!(t.unix_timestamp(), 1_700_000_002);
        assert_eq!(t.nanosecond(), 500_000_000);
        assert_eq!(start_time(0, 1, 0), None);
        assert_eq!(start_time(i64::MAX, u64::MAX, 1), None);
    }
}
