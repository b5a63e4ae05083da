//! Walking /proc and /sys in order of volatility (RFC 3227, 2.1): clocks first, then the
//! network state that changes by the millisecond, then processes, then the slower state.
//!
//! Nothing here executes a program of the examined system (no `ps`, `ss`, `netstat`): a
//! compromised system's tools lie, and running them changes what they report on.

use crate::clock::{parse_btime, parse_rtc, parse_uptime, rfc3339, Clock};
use crate::proc_net::{
    parse_inet_sockets, parse_unix_sockets, InetTable, Socket, SocketOwner, UnixSocket,
};
use crate::process::Process;
use crate::snapshot::{CollectError, CollectOptions, HostIdentity, Snapshot};
use crate::table::{ParseError, Parsed};
use std::collections::HashMap;
use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Most bytes read from one file. /proc/net/tcp of a busy server is a few MiB; a file
/// longer than this is hostile or broken, and the prefix is kept with an error.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads at most `max_bytes` of a regular file; the flag says whether there was more.
///
/// Opened non-blocking and checked to be a regular file first, so a FIFO planted at an
/// expected path (e.g. utmp) cannot hang the collector. procfs and sysfs files are regular.
pub(crate) fn read_capped(path: &Path, max_bytes: u64) -> io::Result<(Vec<u8>, bool)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    read_all_capped(file, max_bytes)
}

fn read_all_capped(file: File, max_bytes: u64) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut buf)?;
    let keep = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let truncated = buf.len() > keep;
    buf.truncate(keep);
    Ok((buf, truncated))
}

/// Whether an error means "the process (or file) is gone": expected while walking /proc.
pub(crate) fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Collection state: the options and the errors met so far.
#[derive(Debug)]
pub(crate) struct Collector<'a> {
    pub(crate) opts: &'a CollectOptions,
    pub(crate) errors: Vec<CollectError>,
}

impl<'a> Collector<'a> {
    fn new(opts: &'a CollectOptions) -> Self {
        Collector {
            opts,
            errors: Vec::new(),
        }
    }

    /// A path under the procfs root.
    pub(crate) fn proc(&self, rel: &str) -> PathBuf {
        self.opts.proc_root.join(rel)
    }

    /// Records an error; collection goes on.
    pub(crate) fn record(&mut self, section: &str, path: &Path, message: impl Display) {
        let message = message.to_string();
        tracing::debug!(section, path = %path.display(), %message, "live collection error");
        self.errors.push(CollectError {
            section: section.to_string(),
            path: path.display().to_string(),
            message,
        });
    }

    /// A whole file as (lossy) text, or `None` with an error recorded. With `optional`, a
    /// missing file is `None` without an error.
    pub(crate) fn read_text(
        &mut self,
        section: &str,
        path: &Path,
        optional: bool,
    ) -> Option<String> {
        match read_capped(path, MAX_FILE_BYTES) {
            Ok((bytes, truncated)) => {
                if truncated {
                    self.record(
                        section,
                        path,
                        format!("read only the first {MAX_FILE_BYTES} bytes"),
                    );
                }
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            Err(e) if optional && e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.record(section, path, e);
                None
            }
        }
    }

    /// A one-line file (sysctl, sysfs attribute) without its trailing newline.
    pub(crate) fn read_line(
        &mut self,
        section: &str,
        path: &Path,
        optional: bool,
    ) -> Option<String> {
        let text = self.read_text(section, path, optional)?;
        Some(crate::table::cap(
            text.trim_end_matches(['\n', '\r']),
            crate::table::MAX_STRING_BYTES,
        ))
    }

    /// The rows of a tolerant parse, recording each rejected line.
    pub(crate) fn keep<T>(&mut self, section: &str, path: &Path, parsed: Parsed<T>) -> Vec<T> {
        for e in parsed.errors {
            self.record(section, path, e);
        }
        parsed.items
    }

    /// A strict parse's value, recording the error.
    fn keep_one<T>(
        &mut self,
        section: &str,
        path: &Path,
        parsed: Result<T, ParseError>,
    ) -> Option<T> {
        parsed.map_err(|e| self.record(section, path, e)).ok()
    }

    fn clock(&mut self) -> Clock {
        let system = OffsetDateTime::now_utc();
        let uptime_path = self.proc("uptime");
        let uptime_seconds = self
            .read_text("clock", &uptime_path, false)
            .and_then(|t| self.keep_one("clock", &uptime_path, parse_uptime(&t)));
        let stat_path = self.proc("stat");
        let boot_unix_seconds = self
            .read_text("clock", &stat_path, false)
            .and_then(|t| self.keep_one("clock", &stat_path, parse_btime(&t)));
        let boot_utc = boot_unix_seconds
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .map(rfc3339);
        let rtc_dir = self.opts.sys_root.join("class/rtc/rtc0");
        let date = self.read_line("clock", &rtc_dir.join("date"), true);
        let time_of_day = self.read_line("clock", &rtc_dir.join("time"), true);
        // Compared with a second reading of the system clock, not the first: the reads
        // above may have taken a while on a loaded system.
        let system_at_rtc = OffsetDateTime::now_utc();
        let (rtc_raw, rtc) = match (date, time_of_day) {
            (Some(d), Some(t)) => {
                let parsed = parse_rtc(&d, &t);
                (
                    Some(format!("{d} {t}")),
                    self.keep_one("clock", &rtc_dir, parsed),
                )
            }
            _ => (None, None),
        };
        Clock {
            system_utc: rfc3339(system),
            uptime_seconds,
            boot_unix_seconds,
            boot_utc,
            rtc_raw,
            rtc_utc: rtc.map(rfc3339),
            rtc_minus_system_seconds: rtc.map(|r| {
                r.unix_timestamp()
                    .saturating_sub(system_at_rtc.unix_timestamp())
            }),
        }
    }

    fn host(&mut self) -> HostIdentity {
        let machine_id_path = self.opts.machine_id_path.clone();
        HostIdentity {
            hostname: self.read_line("host", &self.proc("sys/kernel/hostname"), false),
            kernel_release: self.read_line("host", &self.proc("sys/kernel/osrelease"), false),
            kernel_version: self.read_line("host", &self.proc("version"), false),
            machine_id: self.read_line("host", &machine_id_path, true),
            boot_id: self.read_line("host", &self.proc("sys/kernel/random/boot_id"), true),
        }
    }

    fn sockets(&mut self) -> Vec<Socket> {
        let mut out = Vec::new();
        for table in InetTable::ALL {
            let path = self.proc(&format!("net/{}", table.name()));
            // tcp6/udp6 are absent without IPv6, raw tables on some configurations.
            let optional = !matches!(table, InetTable::Tcp | InetTable::Udp);
            if let Some(text) = self.read_text("sockets", &path, optional) {
                out.extend(self.keep("sockets", &path, parse_inet_sockets(&text, table)));
            }
        }
        out
    }

    fn unix_sockets(&mut self) -> Vec<UnixSocket> {
        let path = self.proc("net/unix");
        match self.read_text("unix_sockets", &path, false) {
            Some(text) => self.keep("unix_sockets", &path, parse_unix_sockets(&text)),
            None => Vec::new(),
        }
    }

    /// Reads and parses one table file into a section.
    fn table<T>(
        &mut self,
        section: &str,
        path: PathBuf,
        optional: bool,
        parse: fn(&str) -> Parsed<T>,
    ) -> Vec<T> {
        match self.read_text(section, &path, optional) {
            Some(text) => self.keep(section, &path, parse(&text)),
            None => Vec::new(),
        }
    }

    fn logins(&mut self) -> Vec<crate::utmp::Login> {
        let path = self.opts.utmp_path.clone();
        let max = u64::try_from(
            crate::utmp::UTMP_RECORD_BYTES.saturating_mul(crate::utmp::MAX_UTMP_RECORDS),
        )
        .unwrap_or(u64::MAX);
        match read_capped(&path, max) {
            Ok((bytes, _)) => self.keep("logins", &path, crate::utmp::parse_utmp(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                self.record("logins", &path, e);
                Vec::new()
            }
        }
    }
}

/// Collects the volatile state of the running system. Never fails as a whole: whatever
/// could not be read or parsed is in [`Snapshot::errors`].
pub fn collect(opts: &CollectOptions) -> Snapshot {
    let mut c = Collector::new(opts);
    let clock = c.clock();
    let mut sockets = c.sockets();
    let mut unix_sockets = c.unix_sockets();
    let neighbours = c.table(
        "neighbours",
        c.proc("net/arp"),
        true,
        crate::neighbours::parse_arp,
    );
    let mut routes = c.table(
        "routes",
        c.proc("net/route"),
        false,
        crate::routes::parse_ipv4_routes,
    );
    routes.extend(c.table(
        "routes",
        c.proc("net/ipv6_route"),
        true,
        crate::routes::parse_ipv6_routes,
    ));
    let (processes, recovered) = crate::process::walk(&mut c, clock.boot_unix_seconds);
    link_owners(&processes, &mut sockets, &mut unix_sockets);
    // Absent on kernels built without module support.
    let modules = c.table(
        "modules",
        c.proc("modules"),
        true,
        crate::modules::parse_modules,
    );
    let tainted_path = c.proc("sys/kernel/tainted");
    let taint = c
        .read_text("modules", &tainted_path, false)
        .and_then(|t| c.keep_one("modules", &tainted_path, crate::modules::parse_tainted(&t)));
    let mounts = c.table(
        "mounts",
        c.proc("self/mountinfo"),
        false,
        crate::mountinfo::parse_mountinfo,
    );
    let logins = c.logins();
    let interfaces = crate::interfaces::read_interfaces(&mut c);
    // Identity does not change while the system runs: last.
    let host = c.host();
    Snapshot {
        collected_utc: clock.system_utc.clone(),
        clock,
        host,
        processes,
        sockets,
        unix_sockets,
        routes,
        neighbours,
        interfaces,
        modules,
        taint,
        mounts,
        logins,
        errors: c.errors,
        recovered,
    }
}

/// Fills in the owners of each socket from the processes' `socket:[N]` descriptors.
fn link_owners(processes: &[Process], sockets: &mut [Socket], unix_sockets: &mut [UnixSocket]) {
    let mut by_inode: HashMap<u64, Vec<SocketOwner>> = HashMap::new();
    for p in processes {
        for &inode in &p.socket_inodes {
            by_inode.entry(inode).or_default().push(SocketOwner {
                pid: p.pid,
                name: p.name.clone(),
            });
        }
    }
    for s in sockets.iter_mut().filter(|s| s.inode != 0) {
        s.owners = by_inode.get(&s.inode).cloned().unwrap_or_default();
    }
    for s in unix_sockets.iter_mut().filter(|s| s.inode != 0) {
        s.owners = by_inode.get(&s.inode).cloned().unwrap_or_default();
    }
}
