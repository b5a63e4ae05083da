//! A readable text report of a [`Snapshot`], for the examiner's first look.
//!
//! Every string in a snapshot came from the examined system, and process names and
//! command lines are chosen by whoever runs the process: control characters (terminal
//! escape sequences) and bidirectional-text overrides are shown escaped, so a hostile name
//! can neither drive the examiner's terminal nor disguise itself.

use crate::proc_net::{Socket, SocketOwner};
use crate::process::Process;
use crate::snapshot::Snapshot;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Widest command line shown per process, in characters.
const COMMAND_CHARS: usize = 120;
/// Deepest indentation of the process tree.
const MAX_TREE_DEPTH: usize = 24;
/// Errors listed before "… and N more".
const ERRORS_SHOWN: usize = 30;

/// The snapshot as a text report: host and clocks, listening and established sockets with
/// their processes, the process tree (kernel threads counted, not listed), deleted
/// executables, kernel modules and taint, logins and collection errors.
pub fn summary(s: &Snapshot) -> String {
    let mut out = String::new();
    header(&mut out, s);
    sockets(&mut out, s);
    processes(&mut out, s);
    deleted(&mut out, s);
    modules(&mut out, s);
    logins(&mut out, s);
    errors(&mut out, s);
    out
}

/// `text` with control characters and bidi overrides escaped (`\u{1b}`), cut to `max`
/// characters with `…`.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i >= max {
            out.push('…');
            break;
        }
        let bidi = matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn p(text: &str) -> String {
    printable(text, COMMAND_CHARS)
}

fn opt(v: Option<&str>) -> String {
    v.map_or_else(|| "-".to_string(), p)
}

fn header(out: &mut String, s: &Snapshot) {
    let h = &s.host;
    let c = &s.clock;
    let _ = writeln!(out, "Vestige live snapshot, collected {}", s.collected_utc);
    let _ = writeln!(
        out,
        "Host      {}  kernel {}",
        opt(h.hostname.as_deref()),
        opt(h.kernel_release.as_deref())
    );
    let _ = writeln!(
        out,
        "Machine   {}  boot {}",
        opt(h.machine_id.as_deref()),
        opt(h.boot_id.as_deref())
    );
    let uptime = c
        .uptime_seconds
        .map_or_else(|| "-".to_string(), |u| format!("{u:.0} s"));
    let _ = writeln!(
        out,
        "Clock     system {}  booted {}  up {uptime}",
        c.system_utc,
        opt(c.boot_utc.as_deref())
    );
    match (&c.rtc_raw, c.rtc_minus_system_seconds) {
        (Some(raw), Some(off)) => {
            let _ = writeln!(out, "RTC       {} (RTC minus system: {off:+} s)", p(raw));
        }
        (Some(raw), None) => {
            let _ = writeln!(out, "RTC       {} (unreadable)", p(raw));
        }
        _ => {
            let _ = writeln!(out, "RTC       none");
        }
    }
}

/// An RFC 3339 UTC time without its fraction, for an aligned column.
fn whole_seconds(t: Option<&str>) -> String {
    match t {
        None => "-".to_string(),
        Some(t) => match t.split_once('.') {
            Some((head, _)) if t.ends_with('Z') => format!("{head}Z"),
            _ => t.to_string(),
        },
    }
}

fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn owners(list: &[SocketOwner]) -> String {
    if list.is_empty() {
        return "-".to_string();
    }
    let names: Vec<String> = list
        .iter()
        .map(|o| format!("{}/{}", o.pid, p(&o.name)))
        .collect();
    names.join(",")
}

/// A socket waiting for peers: TCP LISTEN, or a bound UDP/raw socket with no peer.
fn listening(s: &Socket) -> bool {
    s.state == "LISTEN"
        || (s.state == "UNCONN" && s.remote_port == 0 && s.remote_address.is_unspecified())
}

fn sockets(out: &mut String, s: &Snapshot) {
    let listen: Vec<&Socket> = s.sockets.iter().filter(|x| listening(x)).collect();
    let _ = writeln!(out, "\nListening sockets ({})", listen.len());
    let _ = writeln!(
        out,
        "  {:<6} {:<46} {:>6}  PROCESS",
        "PROTO", "LOCAL", "UID"
    );
    for x in listen {
        let _ = writeln!(
            out,
            "  {:<6} {:<46} {:>6}  {}",
            x.protocol,
            endpoint(x.local_address, x.local_port),
            x.uid,
            owners(&x.owners)
        );
    }
    let est: Vec<&Socket> = s
        .sockets
        .iter()
        .filter(|x| x.state == "ESTABLISHED")
        .collect();
    let _ = writeln!(out, "\nEstablished connections ({})", est.len());
    let _ = writeln!(
        out,
        "  {:<6} {:<46} {:<46} PROCESS",
        "PROTO", "LOCAL", "REMOTE"
    );
    for x in est {
        let _ = writeln!(
            out,
            "  {:<6} {:<46} {:<46} {}",
            x.protocol,
            endpoint(x.local_address, x.local_port),
            endpoint(x.remote_address, x.remote_port),
            owners(&x.owners)
        );
    }
    let unix_listening = s.unix_sockets.iter().filter(|u| u.listening).count();
    let _ = writeln!(
        out,
        "\nUnix sockets: {} ({unix_listening} listening); routes: {}; ARP entries: {}; interfaces: {}",
        s.unix_sockets.len(),
        s.routes.len(),
        s.neighbours.len(),
        s.interfaces.len()
    );
    for i in s.interfaces.iter().filter(|i| i.promiscuous) {
        let _ = writeln!(out, "  ! interface {} is in promiscuous mode", p(&i.name));
    }
}

/// Marks shown before a process: what deserves a second look.
fn marks(x: &Process) -> String {
    let mut m = String::new();
    m.push(if x.exe_deleted { 'D' } else { '.' });
    let maps = x.maps.as_ref();
    m.push(if maps.is_some_and(|m| m.anonymous_executable > 0) {
        'A'
    } else {
        '.'
    });
    m.push(if maps.is_some_and(|m| m.writable_executable > 0) {
        'W'
    } else {
        '.'
    });
    m.push(if maps.is_some_and(|m| !m.deleted_files.is_empty()) {
        'M'
    } else {
        '.'
    });
    m
}

fn command(x: &Process) -> String {
    if x.cmdline.is_empty() {
        format!("[{}]", p(&x.name))
    } else {
        p(&x.cmdline.join(" "))
    }
}

fn processes(out: &mut String, s: &Snapshot) {
    let user: Vec<&Process> = s.processes.iter().filter(|x| !x.kernel_thread).collect();
    let kernel = s.processes.len().saturating_sub(user.len());
    let _ = writeln!(
        out,
        "\nProcesses ({} user; kernel threads not listed: {kernel})\n  marks: D exe deleted, A anonymous executable memory, W writable+executable memory, M deleted file mapped",
        user.len()
    );
    let _ = writeln!(
        out,
        "  {:>7} {:>7} {:>6} {:<4} {:<20} COMMAND",
        "PID", "PPID", "UID", "MARK", "STARTED"
    );
    let pids: HashSet<u32> = user.iter().map(|x| x.pid).collect();
    let mut children: BTreeMap<u32, Vec<&Process>> = BTreeMap::new();
    let mut roots = Vec::new();
    for x in &user {
        if x.ppid == 0 || x.ppid == x.pid || !pids.contains(&x.ppid) {
            roots.push(*x);
        } else {
            children.entry(x.ppid).or_default().push(*x);
        }
    }
    let mut shown: HashSet<u32> = HashSet::new();
    let mut stack: Vec<(usize, &Process)> = roots.into_iter().rev().map(|x| (0, x)).collect();
    // Entries in a parent cycle (impossible from a sane kernel) are shown flat at the end.
    let next_unshown = |shown: &HashSet<u32>| {
        user.iter()
            .find(|x| !shown.contains(&x.pid))
            .map(|x| (0, *x))
    };
    while let Some((depth, x)) = stack.pop().or_else(|| next_unshown(&shown)) {
        if !shown.insert(x.pid) {
            continue;
        }
        let indent = "  ".repeat(depth.min(MAX_TREE_DEPTH));
        let uid = x
            .uid_effective
            .map_or_else(|| "-".to_string(), |u| u.to_string());
        let _ = writeln!(
            out,
            "  {:>7} {:>7} {:>6} {:<4} {:<20} {indent}{}",
            x.pid,
            x.ppid,
            uid,
            marks(x),
            whole_seconds(x.start_utc.as_deref()),
            command(x)
        );
        if let Some(kids) = children.get(&x.pid) {
            stack.extend(kids.iter().rev().map(|k| (depth.saturating_add(1), *k)));
        }
    }
}

fn deleted(out: &mut String, s: &Snapshot) {
    let flagged: Vec<&Process> = s.processes.iter().filter(|x| x.exe_deleted).collect();
    if flagged.is_empty() {
        let _ = writeln!(out, "\nDeleted executables: none");
        return;
    }
    let _ = writeln!(
        out,
        "\nDeleted executables ({}): the file is gone, the process still runs it",
        flagged.len()
    );
    for x in flagged {
        let copy = s.recovered.iter().find(|r| r.pid == x.pid).map_or_else(
            || "not recovered".to_string(),
            |r| format!("recovered as {}", r.file_name),
        );
        let _ = writeln!(
            out,
            "  ! pid {} ({}) ran {}\n      sha256 {}  {copy}",
            x.pid,
            p(&x.name),
            opt(x.exe.as_deref()),
            x.exe_sha256.as_deref().unwrap_or("-")
        );
    }
}

fn modules(out: &mut String, s: &Snapshot) {
    let _ = writeln!(out, "\nKernel modules ({})", s.modules.len());
    let tainted: Vec<String> = s
        .modules
        .iter()
        .filter_map(|m| {
            m.taint
                .as_ref()
                .map(|t| format!("{}({})", p(&m.name), p(t)))
        })
        .collect();
    if !tainted.is_empty() {
        let _ = writeln!(out, "  tainting modules: {}", tainted.join(" "));
    }
    let names: Vec<String> = s.modules.iter().map(|m| p(&m.name)).collect();
    for chunk in names.chunks(8) {
        let _ = writeln!(out, "  {}", chunk.join(" "));
    }
    match &s.taint {
        None => {
            let _ = writeln!(out, "Kernel taint: unknown");
        }
        Some(t) if t.value == 0 => {
            let _ = writeln!(out, "Kernel taint: 0 (not tainted)");
        }
        Some(t) => {
            let letters: String = t.flags.iter().map(|f| f.letter).collect();
            let _ = writeln!(out, "Kernel taint: {} ({letters})", t.value);
            for f in &t.flags {
                let _ = writeln!(out, "  {} bit {:>2}: {}", f.letter, f.bit, f.description);
            }
            if t.unknown_bits != 0 {
                let _ = writeln!(out, "  unknown bits: {:#x}", t.unknown_bits);
            }
        }
    }
}

fn logins(out: &mut String, s: &Snapshot) {
    let _ = writeln!(out, "\nLogged-in users ({}, from utmp)", s.logins.len());
    for l in &s.logins {
        let _ = writeln!(
            out,
            "  {:<16} {:<10} {:<20} pid {:<7} {}",
            p(&l.user),
            p(&l.line),
            l.login_utc.as_deref().unwrap_or("-"),
            l.pid,
            p(&l.host)
        );
    }
}

fn errors(out: &mut String, s: &Snapshot) {
    let _ = writeln!(out, "\nCollection errors ({})", s.errors.len());
    for e in s.errors.iter().take(ERRORS_SHOWN) {
        let _ = writeln!(out, "  [{}] {}: {}", e.section, p(&e.path), p(&e.message));
    }
    if s.errors.len() > ERRORS_SHOWN {
        let _ = writeln!(
            out,
            "  … and {} more",
            s.errors.len().saturating_sub(ERRORS_SHOWN)
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb", 10), "a\\u{1b}[2Jb");
        assert_eq!(printable("evil\u{202E}txt.exe", 40), "evil\\u{202e}txt.exe");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
