//! Who the machine is: hostname, OS release, installed kernels, time zone.

use super::{is_comment, join, lines, list, read, safe, trim, Fact, CONFIG_CAP};
use crate::collected::Collected;
use crate::event::Evidence;
use crate::files::Files;
use serde::Serialize;

/// The machine's identity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Identity {
    /// `/etc/hostname`, else `/etc/HOSTNAME`.
    pub hostname: Option<Fact>,
    /// `/etc/os-release`, else `/usr/lib/os-release`.
    pub os_release: Option<OsRelease>,
    /// Kernels installed: `/boot/vmlinuz-*` and `/lib/modules/*`.
    pub kernels: Vec<Fact>,
    /// `/etc/timezone`, else the zone `/etc/localtime` links to.
    pub time_zone: Option<Fact>,
}

/// The fields of os-release(5) an examiner reads first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// `ID`.
    pub id: Option<String>,
    /// `VERSION_ID`.
    pub version_id: Option<String>,
    /// The file.
    pub source: Evidence,
}

pub(crate) fn collect(files: &Files<'_>, out: &mut Collected) -> Identity {
    Identity {
        hostname: hostname(files, out),
        os_release: os_release(files, out),
        kernels: kernels(files, out),
        time_zone: time_zone(files, out),
    }
}

/// The first non-comment line of the first of `paths` that has one.
fn first_line(files: &Files<'_>, paths: &[&str], out: &mut Collected) -> Option<Fact> {
    for p in paths {
        let Some(data) = read(files, p.as_bytes(), CONFIG_CAP, out) else {
            continue;
        };
        let first = lines(&data.bytes).find(|l| !is_comment(l.text));
        if let Some(l) = first {
            return Some(Fact {
                value: safe(trim(l.text)),
                source: data.evidence.at_line(l.no, l.offset),
            });
        }
    }
    None
}

fn hostname(files: &Files<'_>, out: &mut Collected) -> Option<Fact> {
    first_line(files, &["/etc/hostname", "/etc/HOSTNAME"], out)
}

fn os_release(files: &Files<'_>, out: &mut Collected) -> Option<OsRelease> {
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        let Some(data) = read(files, p.as_bytes(), CONFIG_CAP, out) else {
            continue;
        };
        let mut r = OsRelease {
            source: data.evidence.clone(),
            ..OsRelease::default()
        };
        for l in lines(&data.bytes) {
            let t = trim(l.text);
            let Some(eq) = t.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (key, value) = (t.get(..eq).unwrap_or_default(), t.get(eq + 1..));
            let value = unquote(value.unwrap_or_default());
            let slot = match key {
                b"PRETTY_NAME" => &mut r.pretty_name,
                b"ID" => &mut r.id,
                b"VERSION_ID" => &mut r.version_id,
                _ => continue,
            };
            *slot = Some(safe(value));
        }
        return Some(r);
    }
    None
}

/// A shell-style value without its surrounding quotes.
pub(crate) fn unquote(v: &[u8]) -> &[u8] {
    for q in [b'"', b'\''] {
        if v.len() >= 2 && v.first() == Some(&q) && v.last() == Some(&q) {
            return v.get(1..v.len() - 1).unwrap_or_default();
        }
    }
    v
}

fn kernels(files: &Files<'_>, out: &mut Collected) -> Vec<Fact> {
    let mut found = Vec::new();
    for e in list(files, "/boot", out) {
        if e.name.starts_with(b"vmlinuz-") || e.name.starts_with(b"vmlinux-") {
            let version = e.name.get(8..).unwrap_or_default();
            found.push(Fact {
                value: safe(version),
                source: files.evidence(&join("/boot", &e.name), Some(e.inode)),
            });
        }
    }
    for e in list(files, "/lib/modules", out) {
        found.push(Fact {
            value: safe(&e.name),
            source: files.evidence(&join("/lib/modules", &e.name), Some(e.inode)),
        });
    }
    found
}

fn time_zone(files: &Files<'_>, out: &mut Collected) -> Option<Fact> {
    if let Some(f) = first_line(files, &["/etc/timezone"], out) {
        return Some(f);
    }
    let target = match files.read_link(b"/etc/localtime") {
        Ok(t) => t?,
        Err(e) => {
            out.problem(format!("/etc/localtime: {e}"));
            return None;
        }
    };
    let marker = b"zoneinfo/";
    let zone = target
        .windows(marker.len())
        .rposition(|w| w == marker)
        .and_then(|i| target.get(i + marker.len()..))
        .unwrap_or(&target);
    let inode = files.resolve_no_follow(b"/etc/localtime").ok().flatten();
    Some(Fact {
        value: safe(zone),
        source: files.evidence(b"/etc/localtime", inode),
    })
}
