//! What starts by itself: systemd units enabled through `*.wants`/`*.requires` links,
//! unit files an administrator (or intruder) put in `/etc/systemd/system`, SysV start
//! links (`/etc/rc?.d/S*`) and `/etc/rc.local`.
//!
//! Rules raised here:
//! - `linux.systemd_persistence` (Medium; High when an `ExecStart=` runs from `/tmp`,
//!   `/var/tmp`, `/dev/shm`, a hidden directory, or pipes curl/wget into a shell): an
//!   enabled unit file in `/etc/systemd/system` that no dpkg package owns. Packages install
//!   units under `/lib/systemd/system`; a unit file here was written by hand (or by an
//!   installer outside dpkg), the usual way to survive reboots. When the dpkg database is
//!   absent every enabled unit file there is flagged and the description says so. False
//!   positives: local services an administrator wrote, software installed from tarballs or
//!   by configuration management.
//! - `linux.rc_local` (Medium): `/etc/rc.local` runs commands at boot (beyond `exit 0`).
//!   Rarely used on systemd machines, so a populated one deserves a look. False positives:
//!   old-style local boot tweaks.

use super::packages::OwnedPaths;
use super::{
    is_comment, join, lines, list, mtime_event, read, risky_command, safe, trim, CONFIG_CAP,
};
use crate::collected::Collected;
use crate::event::Evidence;
use crate::files::Files;
use crate::findings::{Finding, Severity};
use serde::Serialize;
use vestige_fs::FileKind;

/// Services that start by themselves.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Services {
    /// Links in `*.wants`/`*.requires` directories: which unit a target pulls in.
    pub systemd_enabled: Vec<EnabledUnit>,
    /// Regular unit files in `/etc/systemd/system`.
    pub systemd_local_units: Vec<UnitFile>,
    /// SysV start links `/etc/rc?.d/S*`.
    pub sysv_start_links: Vec<EnabledUnit>,
    /// The commands of `/etc/rc.local`.
    pub rc_local: Vec<super::Fact>,
}

/// A link that enables a unit (or SysV script).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnabledUnit {
    /// The directory (`/etc/systemd/system/multi-user.target.wants`, `/etc/rc2.d`).
    pub directory: String,
    /// The link's name (`ssh.service`, `S01ssh`).
    pub name: String,
    /// Where it points.
    pub target: String,
    /// The link.
    pub source: Evidence,
}

/// A unit file in `/etc/systemd/system`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitFile {
    /// Its name.
    pub name: String,
    /// Its `ExecStart=` lines (also `ExecStartPre=`/`ExecStartPost=`).
    pub exec_start: Vec<String>,
    /// Whether a `*.wants`/`*.requires` link names it.
    pub enabled: bool,
    /// Whether a dpkg package owns it (`None`: no dpkg database).
    pub packaged: Option<bool>,
    /// The file.
    pub source: Evidence,
}

const SYSTEMD_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

pub(crate) fn collect(files: &Files<'_>, owned: &OwnedPaths, out: &mut Collected) -> Services {
    let mut s = Services::default();
    for dir in SYSTEMD_DIRS {
        for e in list(files, dir, out) {
            let is_dir = e.kind == FileKind::Directory;
            if is_dir && (e.name.ends_with(b".wants") || e.name.ends_with(b".requires")) {
                let sub = join(dir, &e.name);
                let sub = String::from_utf8_lossy(&sub);
                links(files, &sub, |_| true, &mut s.systemd_enabled, out);
            }
        }
    }
    for e in list(files, "/etc/systemd/system", out) {
        if e.kind != FileKind::Regular || !is_unit_name(&e.name) {
            continue;
        }
        let path = join("/etc/systemd/system", &e.name);
        let Some(data) = read(files, &path, CONFIG_CAP, out) else {
            continue;
        };
        out.events
            .extend(mtime_event(&data, "service_unit_modified", "systemd unit"));
        let name = safe(&e.name);
        let enabled = s
            .systemd_enabled
            .iter()
            .any(|l| l.name == name || l.target.rsplit('/').next() == Some(name.as_str()));
        let mut unit = UnitFile {
            name,
            exec_start: Vec::new(),
            enabled,
            packaged: owned.known.then(|| owned.owns(&path)),
            source: data.evidence.clone(),
        };
        let mut risk: Option<(&str, Evidence, String)> = None;
        for l in lines(&data.bytes) {
            let t = trim(l.text);
            if !t.starts_with(b"ExecStart") {
                continue;
            }
            let cmd = t
                .iter()
                .position(|&b| b == b'=')
                .and_then(|i| t.get(i + 1..))
                .unwrap_or_default();
            if risk.is_none() {
                if let Some(why) = risky_command(cmd) {
                    risk = Some((why, data.evidence.at_line(l.no, l.offset), safe(t)));
                }
            }
            if unit.exec_start.len() < 64 {
                unit.exec_start.push(safe(t));
            }
        }
        if unit.enabled && unit.packaged != Some(true) {
            let unowned = if owned.known {
                "no dpkg package owns it"
            } else {
                "no dpkg database was found to tell packaged units apart"
            };
            let (severity, why, mut evidence) = match risk {
                Some((why, ev, line)) => (Severity::High, format!("; `{line}` {why}"), vec![ev]),
                None => (Severity::Medium, String::new(), Vec::new()),
            };
            evidence.insert(0, unit.source.clone());
            out.findings.push(Finding::new(
                "linux.systemd_persistence",
                severity,
                format!("Enabled local systemd unit {}", unit.name),
                format!(
                    "{} is enabled and lives in /etc/systemd/system ({unowned}){why}. Units \
                     written there start at every boot.",
                    unit.name
                ),
                evidence,
            ));
        }
        if s.systemd_local_units.len() < super::MAX_ITEMS {
            s.systemd_local_units.push(unit);
        }
    }
    for n in b"0123456S".iter() {
        let dir = format!("/etc/rc{}.d", char::from(*n));
        links(
            files,
            &dir,
            |n| n.first() == Some(&b'S'),
            &mut s.sysv_start_links,
            out,
        );
    }
    rc_local(files, &mut s, out);
    s
}

fn is_unit_name(name: &[u8]) -> bool {
    [
        &b".service"[..],
        b".timer",
        b".socket",
        b".path",
        b".mount",
        b".target",
    ]
    .iter()
    .any(|s| name.ends_with(s))
}

/// The symbolic links in `dir`, into `found`.
fn links(
    files: &Files<'_>,
    dir: &str,
    want: impl Fn(&[u8]) -> bool,
    found: &mut Vec<EnabledUnit>,
    out: &mut Collected,
) {
    for e in list(files, dir, out) {
        if !want(&e.name) {
            continue;
        }
        let path = join(dir, &e.name);
        let target = match files.read_link(&path) {
            Ok(Some(t)) => safe(&t),
            Ok(None) => "(not a link)".into(),
            Err(err) => {
                out.problem(format!("{}: {err}", safe(&path)));
                continue;
            }
        };
        if found.len() < super::MAX_ITEMS {
            found.push(EnabledUnit {
                directory: safe(dir.as_bytes()),
                name: safe(&e.name),
                target,
                source: files.evidence(&path, Some(e.inode)),
            });
        }
    }
}

fn rc_local(files: &Files<'_>, s: &mut Services, out: &mut Collected) {
    let Some(data) = read(files, b"/etc/rc.local", CONFIG_CAP, out) else {
        return;
    };
    for l in lines(&data.bytes) {
        let t = trim(l.text);
        if is_comment(t) || t == b"exit 0" {
            continue;
        }
        if s.rc_local.len() < super::MAX_ITEMS {
            s.rc_local.push(super::Fact {
                value: safe(t),
                source: data.evidence.at_line(l.no, l.offset),
            });
        }
    }
    if let Some(first) = s.rc_local.first() {
        let evidence: Vec<Evidence> = s
            .rc_local
            .iter()
            .take(20)
            .map(|f| f.source.clone())
            .collect();
        out.findings.push(Finding::new(
            "linux.rc_local",
            Severity::Medium,
            "/etc/rc.local runs commands at boot".into(),
            format!(
                "/etc/rc.local holds {} command line(s), the first `{}`; it runs as root at \
                 every boot.",
                s.rc_local.len(),
                first.value
            ),
            evidence,
        ));
    }
}
