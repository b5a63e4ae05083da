//! What is installed: dpkg's status database, its log of installs and removals, the paths
//! packages own (to tell packaged configuration from planted), and whether an rpm
//! database is present.

use super::{join, lines, list, read, safe, Fact, ProblemLog, CONFIG_CAP, LOG_CAP, MAX_ITEMS};
use crate::collected::Collected;
use crate::event::{Event, Evidence, Timestamp};
use crate::files::Files;
use serde::Serialize;
use std::collections::HashSet;
use std::io::Read;

/// Bytes of `/var/lib/dpkg/status` read.
const STATUS_CAP: usize = 64 << 20;
/// Bytes of all `/var/lib/dpkg/info/*.list` files read together.
const OWNED_LISTS_CAP: usize = 64 << 20;
/// Rotated dpkg logs read (`dpkg.log.N.gz`).
const MAX_ROTATED_LOGS: usize = 32;

/// Installed packages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Packages {
    /// Packages in `/var/lib/dpkg/status` whose status is `install ok installed`.
    pub dpkg_installed_count: usize,
    /// All entries of `/var/lib/dpkg/status` (installed or not), at most
    /// [`MAX_ITEMS`](super::MAX_ITEMS).
    pub dpkg: Vec<Package>,
    /// `rpm database present, not parsed` when `/var/lib/rpm` exists.
    pub rpm: Option<Fact>,
}

/// One dpkg status paragraph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Package {
    /// `Package`.
    pub name: String,
    /// `Status` (`install ok installed`, `deinstall ok config-files` …).
    pub status: String,
    /// `Version`.
    pub version: String,
    /// `Architecture`.
    pub architecture: String,
    /// Where the paragraph starts.
    pub source: Evidence,
}

/// The paths dpkg packages own under `/etc` (from `/var/lib/dpkg/info/*.list`), and
/// whether that database was found at all.
#[derive(Debug, Clone, Default)]
pub struct OwnedPaths {
    /// Whether any `.list` file was read: without them, ownership cannot be told.
    pub known: bool,
    paths: HashSet<Vec<u8>>,
}

impl OwnedPaths {
    /// Whether a package owns `path`.
    #[must_use]
    pub fn owns(&self, path: &[u8]) -> bool {
        self.paths.contains(path)
    }
}

/// Loads the `/etc` paths of `/var/lib/dpkg/info/*.list` (at most
/// [`OWNED_LISTS_CAP`] bytes in all).
pub(crate) fn owned_paths(files: &Files<'_>, out: &mut Collected) -> OwnedPaths {
    let mut owned = OwnedPaths::default();
    let mut budget = OWNED_LISTS_CAP;
    for e in list(files, "/var/lib/dpkg/info", out) {
        if !e.name.ends_with(b".list") {
            continue;
        }
        if budget == 0 {
            out.problem("/var/lib/dpkg/info: package file lists beyond 64 MiB not read");
            break;
        }
        let path = join("/var/lib/dpkg/info", &e.name);
        let Some(data) = read(files, &path, budget.min(CONFIG_CAP * 16), out) else {
            continue;
        };
        budget = budget.saturating_sub(data.bytes.len());
        owned.known = true;
        for l in lines(&data.bytes) {
            if l.text.starts_with(b"/etc/") && owned.paths.len() < MAX_ITEMS * 10 {
                owned.paths.insert(l.text.to_vec());
            }
        }
    }
    owned
}

pub(crate) fn collect(
    files: &Files<'_>,
    tz: Option<&str>,
    local_to_utc: &dyn Fn(i64) -> Option<i64>,
    out: &mut Collected,
) -> Packages {
    let mut p = Packages::default();
    if let Some(data) = read(files, b"/var/lib/dpkg/status", STATUS_CAP, out) {
        let (count, list) = parse_status(&data.bytes, &data.evidence);
        p.dpkg_installed_count = count;
        p.dpkg = list;
        if p.dpkg.len() >= MAX_ITEMS {
            out.problem(format!(
                "/var/lib/dpkg/status: only the first {MAX_ITEMS} packages listed"
            ));
        }
    }
    match files.resolve(b"/var/lib/rpm") {
        Ok(Some(inode)) => {
            p.rpm = Some(Fact {
                value: "rpm database present, not parsed".into(),
                source: files.evidence(b"/var/lib/rpm", Some(inode)),
            });
        }
        Ok(None) => {}
        Err(e) => out.problem(format!("/var/lib/rpm: {e}")),
    }
    let c = dpkg_log_events(files, tz, local_to_utc);
    out.absorb(c);
    p
}

/// The paragraphs of a dpkg status file: (installed count, entries).
#[must_use]
pub fn parse_status(bytes: &[u8], file: &Evidence) -> (usize, Vec<Package>) {
    let mut list = Vec::new();
    let mut installed = 0usize;
    let mut cur: Option<Package> = None;
    let mut finish = |cur: Option<Package>, list: &mut Vec<Package>| {
        if let Some(pkg) = cur {
            if pkg.status == "install ok installed" {
                installed = installed.saturating_add(1);
            }
            if list.len() < MAX_ITEMS {
                list.push(pkg);
            }
        }
    };
    for l in lines(bytes) {
        if l.text.is_empty() {
            finish(cur.take(), &mut list);
            continue;
        }
        if l.text.first().is_some_and(u8::is_ascii_whitespace) {
            continue; // a continuation line
        }
        let Some(colon) = l.text.iter().position(|&b| b == b':') else {
            continue;
        };
        let key = l.text.get(..colon).unwrap_or_default();
        let value = super::trim(l.text.get(colon + 1..).unwrap_or_default());
        let pkg = cur.get_or_insert_with(|| Package {
            source: file.at_line(l.no, l.offset),
            ..Package::default()
        });
        match key {
            b"Package" => pkg.name = safe(value),
            b"Status" => pkg.status = safe(value),
            b"Version" => pkg.version = safe(value),
            b"Architecture" => pkg.architecture = safe(value),
            _ => {}
        }
    }
    finish(cur, &mut list);
    (installed, list)
}

/// Install, upgrade and removal events of `/var/log/dpkg.log`, `dpkg.log.1` and the
/// gzip-compressed rotations `dpkg.log.N.gz`. dpkg writes local time: each time is
/// converted with `local_to_utc` (local seconds as if UTC → UTC seconds); when that says
/// `None` the time is kept as read, and `time_note` says which (`tz` is the zone name
/// the system was configured with, if known).
#[must_use]
pub fn dpkg_log_events(
    files: &Files<'_>,
    tz: Option<&str>,
    local_to_utc: &dyn Fn(i64) -> Option<i64>,
) -> Collected {
    let mut out = Collected::default();
    let mut names: Vec<Vec<u8>> = list(files, "/var/log", &mut out)
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n.starts_with(b"dpkg.log"))
        .collect();
    names.truncate(MAX_ROTATED_LOGS.saturating_add(2));
    for name in names {
        let path = join("/var/log", &name);
        let Some(data) = read(files, &path, LOG_CAP, &mut out) else {
            continue;
        };
        let bytes = if name.ends_with(b".gz") {
            match gunzip(&data.bytes, LOG_CAP) {
                Ok((b, truncated)) => {
                    if truncated {
                        out.problem(format!(
                            "{}: decompressed beyond {LOG_CAP} bytes, the rest not read",
                            safe(&path)
                        ));
                    }
                    b
                }
                Err(e) => {
                    out.problem(format!("{}: gzip: {e}", safe(&path)));
                    continue;
                }
            }
        } else {
            data.bytes
        };
        let zone = tz.unwrap_or("unknown");
        parse_dpkg_log(&bytes, &data.evidence, zone, local_to_utc, &mut out);
    }
    out
}

/// Up to `cap` bytes of the (possibly multi-member) gzip stream `bytes`, and whether
/// there was more.
pub fn gunzip(bytes: &[u8], cap: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut dec = flate2::read::MultiGzDecoder::new(bytes).take(limit);
    let mut buf = Vec::new();
    dec.read_to_end(&mut buf)?;
    let truncated = buf.len() > cap;
    buf.truncate(cap);
    Ok((buf, truncated))
}

/// The events of one dpkg log's text (`file` is where it was read; line numbers and
/// offsets refer to the decompressed text of rotated logs).
pub fn parse_dpkg_log(
    bytes: &[u8],
    file: &Evidence,
    zone: &str,
    local_to_utc: &dyn Fn(i64) -> Option<i64>,
    out: &mut Collected,
) {
    let mut log = ProblemLog::new(file, out);
    for l in lines(bytes) {
        let f: Vec<&[u8]> = super::fields(l.text).take(6).collect();
        let (Some(date), Some(time), Some(action)) = (f.first(), f.get(1), f.get(2)) else {
            if !l.text.is_empty() {
                log.line(l.no, "not a dpkg.log line");
            }
            continue;
        };
        let kind = match *action {
            b"install" => "package_installed",
            b"upgrade" => "package_upgraded",
            b"remove" | b"purge" => "package_removed",
            _ => continue,
        };
        let Some(local) = local_secs(date, time) else {
            log.line(l.no, "bad date/time");
            continue;
        };
        let pkg = safe(f.get(3).copied().unwrap_or_default());
        let old = safe(f.get(4).copied().unwrap_or_default());
        let new = safe(f.get(5).copied().unwrap_or_default());
        let (secs, note) = match local_to_utc(local) {
            Some(utc) => (utc, format!("local time, zone {zone}, converted to UTC")),
            None => (
                local,
                format!("local time, zone {zone} (written as read, not converted to UTC)"),
            ),
        };
        let description = match kind {
            "package_installed" => format!("dpkg installed {pkg} {new}"),
            "package_upgraded" => format!("dpkg upgraded {pkg} from {old} to {new}"),
            _ => format!("dpkg {} {pkg} {old}", safe(action)),
        };
        log.out().events.push(
            Event::new(
                Timestamp { secs, nanos: 0 },
                "dpkg.log",
                kind,
                description,
                file.at_line(l.no, l.offset),
            )
            .field("package", pkg)
            .field("old_version", old)
            .field("new_version", new)
            .time_note(note),
        );
    }
}

/// `YYYY-MM-DD` `HH:MM:SS` as seconds since the epoch, taking the wall-clock time as if
/// it were UTC.
pub(crate) fn local_secs(date: &[u8], time: &[u8]) -> Option<i64> {
    let num = |b: &[u8]| -> Option<u32> { std::str::from_utf8(b).ok()?.parse().ok() };
    let d: Vec<&[u8]> = date.split(|&b| b == b'-').collect();
    let t: Vec<&[u8]> = time.split(|&b| b == b':').collect();
    let ([y, mo, da], [h, mi, s]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    let year = i32::try_from(num(y)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(mo)?).ok()?).ok()?;
    let day = time::Date::from_calendar_date(year, month, u8::try_from(num(da)?).ok()?).ok()?;
    let tod = time::Time::from_hms(
        u8::try_from(num(h)?).ok()?,
        u8::try_from(num(mi)?).ok()?,
        u8::try_from(num(s)?).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(day, tod)
            .assume_utc()
            .unix_timestamp(),
    )
}
