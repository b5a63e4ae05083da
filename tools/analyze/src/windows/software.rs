//! The SOFTWARE hive: product, build, install date, owner, Run/RunOnce, Uninstall entries,
//! ProfileList.

use super::regf::{Hive, Key};
use super::{key_event, key_evidence, safe, time_text, value_text, WindowsProfile};
use crate::collected::Collected;
use crate::event::{Event, Evidence, Timestamp};
use serde::Serialize;

/// Uninstall entries read at most.
pub const MAX_PROGRAMS: usize = 8192;
/// Values of one Run key read at most.
pub const MAX_RUN_VALUES: usize = 1024;

/// A Run / RunOnce entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Autorun {
    /// The hive file and key (`SOFTWARE Microsoft\Windows\CurrentVersion\Run`).
    pub location: String,
    /// The profile (user) it belongs to, for NTUSER.DAT entries.
    pub user: Option<String>,
    /// Value name.
    pub name: String,
    /// The command line.
    pub command: String,
    /// The key's last-written time.
    pub key_last_written: Option<String>,
    /// Where: the value's cell.
    pub evidence: Evidence,
    /// The key's last-written time, for rules.
    #[serde(skip)]
    pub time: Option<Timestamp>,
}

/// An Uninstall entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Program {
    /// The key name.
    pub key: String,
    /// `DisplayName`.
    pub name: Option<String>,
    /// `DisplayVersion`.
    pub version: Option<String>,
    /// `Publisher`.
    pub publisher: Option<String>,
    /// `InstallDate` (`YYYYMMDD`, as stored).
    pub install_date: Option<String>,
    /// The key's last-written time.
    pub key_last_written: Option<String>,
    /// Where.
    pub evidence: Evidence,
}

/// A `ProfileList` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProfileEntry {
    /// The account's SID (the key name).
    pub sid: String,
    /// `ProfileImagePath`.
    pub path: Option<String>,
    /// The key's last-written time.
    pub key_last_written: Option<String>,
}

/// Run key paths below a hive root (SOFTWARE: without the `Software\` prefix).
pub(crate) const RUN_KEYS: [&str; 4] = [
    "Microsoft\\Windows\\CurrentVersion\\Run",
    "Microsoft\\Windows\\CurrentVersion\\RunOnce",
    "Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\Run",
    "Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\RunOnce",
];

/// Reads the SOFTWARE hive into `profile` and events.
pub fn collect(h: &Hive<'_>, file: &Evidence, profile: &mut WindowsProfile, out: &mut Collected) {
    let cv_path = "Microsoft\\Windows NT\\CurrentVersion";
    if let Some(cv) = h.key(cv_path) {
        profile.product_name = value_text(&cv, "ProductName");
        profile.current_build =
            value_text(&cv, "CurrentBuild").or_else(|| value_text(&cv, "CurrentBuildNumber"));
        profile.registered_owner = value_text(&cv, "RegisteredOwner");
        if let Some(v) = cv.value("InstallDate") {
            if let Some(secs) = v
                .number()
                .and_then(|n| i64::try_from(n).ok())
                .filter(|&n| n > 0)
            {
                let t = Timestamp { secs, nanos: 0 };
                profile.install_date = time_text(Some(t));
                out.events.push(
                    Event::new(
                        t,
                        "registry",
                        "os_installed",
                        format!(
                            "Windows installed ({})",
                            profile.product_name.as_deref().unwrap_or("product unknown")
                        ),
                        file.at_offset(v.file_offset()),
                    )
                    .field("key", safe(cv_path)),
                );
            }
        }
        if let Some(pl) = cv.subkey("ProfileList") {
            for k in pl.subkeys().into_iter().flatten().take(super::MAX_PROFILES) {
                profile.profiles.push(ProfileEntry {
                    sid: safe(&k.name),
                    path: value_text(&k, "ProfileImagePath"),
                    key_last_written: time_text(k.last_written()),
                });
            }
        }
    }
    for p in RUN_KEYS {
        if let Some(k) = h.key(p) {
            run_key(&k, p, "SOFTWARE", None, file, profile, out);
        }
    }
    for base in [
        "Microsoft\\Windows\\CurrentVersion\\Uninstall",
        "Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall",
    ] {
        let Some(uk) = h.key(base) else { continue };
        for k in uk.subkeys().into_iter().flatten().take(MAX_PROGRAMS) {
            let p = Program {
                key: safe(&k.name),
                name: value_text(&k, "DisplayName"),
                version: value_text(&k, "DisplayVersion"),
                publisher: value_text(&k, "Publisher"),
                install_date: value_text(&k, "InstallDate"),
                key_last_written: time_text(k.last_written()),
                evidence: key_evidence(file, &k),
            };
            let what = format!(
                "program {} {}",
                p.name.as_deref().unwrap_or(&p.key),
                p.version.as_deref().unwrap_or("")
            );
            if let Some(e) = key_event(
                file,
                &k,
                &format!("{base}\\{}", k.name),
                "program_installed",
                what.trim_end(),
            ) {
                out.events.push(e);
            }
            profile.installed_programs.push(p);
        }
    }
}

/// The values of a Run/RunOnce key `k` (at `path` in hive `hive_name`) as autoruns and
/// events.
pub(crate) fn run_key(
    k: &Key<'_, '_>,
    path: &str,
    hive_name: &str,
    user: Option<&str>,
    file: &Evidence,
    profile: &mut WindowsProfile,
    out: &mut Collected,
) {
    for v in k.values().into_iter().take(MAX_RUN_VALUES) {
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                out.problem(format!("{}: {e}", file.describe()));
                continue;
            }
        };
        let Some(command) = v.strings().map(|s| safe(&s.join(" "))) else {
            continue;
        };
        let a = Autorun {
            location: format!("{hive_name} {}", safe(path)),
            user: user.map(safe),
            name: safe(&v.name),
            command,
            key_last_written: time_text(k.last_written()),
            evidence: file.at_offset(v.file_offset()),
            time: k.last_written(),
        };
        if let Some(t) = k.last_written() {
            let mut e = Event::new(
                t,
                "registry",
                "autorun",
                format!("{} entry {}: {}", a.location, a.name, a.command),
                a.evidence.clone(),
            )
            .field("key", safe(path))
            .field("command", a.command.clone())
            .time_note("registry key last-written time: the last change to the key, not necessarily this value");
            if let Some(u) = &a.user {
                e = e.field("user", u.clone());
            }
            out.events.push(e);
        }
        profile.autoruns.push(a);
    }
}
