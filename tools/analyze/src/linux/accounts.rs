//! Who may log in: `/etc/passwd`, `/etc/shadow`, `/etc/group`, sudoers.
//!
//! Rules raised here:
//! - `linux.uid0_account` (High): an account other than `root` with uid 0. Such an account
//!   has every privilege of root under another name, a classic backdoor. False positives:
//!   deliberate aliases some appliances ship (`toor` on BSD-derived systems, `operator`).
//! - `linux.empty_password` (High): the shadow password field is empty, so the account
//!   logs in without a password wherever PAM allows `nullok` (Debian's default). False
//!   positives: kiosk or live-system accounts made so on purpose.
//! - `linux.sudoers_nopasswd` (Medium): a sudoers rule with `NOPASSWD`, letting its user
//!   (or whoever takes over that user) become root without knowing a password. False
//!   positives: automation accounts and cloud images (`cloud-init` gives the default user
//!   `NOPASSWD:ALL`).
//!
//! Password hashes are never copied: the profile says only how the account is protected.

use super::{
    contains, date_of_day, is_comment, join, lines, list, mtime_event, read, safe, trim,
    ProblemLog, CONFIG_CAP,
};
use crate::collected::Collected;
use crate::event::Evidence;
use crate::files::Files;
use crate::findings::{Finding, Severity};
use serde::Serialize;

/// Accounts, privileged groups and sudo rules.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Accounts {
    /// From `/etc/passwd`, with `/etc/shadow`'s password state.
    pub users: Vec<User>,
    /// Groups in `/etc/group`.
    pub group_count: usize,
    /// The groups that grant power (sudo, wheel, adm, root, docker …) and their members.
    pub privileged_groups: Vec<Group>,
    /// The non-comment lines of `/etc/sudoers` and `/etc/sudoers.d/*`.
    pub sudoers: Vec<SudoRule>,
}

/// One passwd entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id (as written, when it is not a number).
    pub uid: String,
    /// Primary group id.
    pub gid: String,
    /// Full name and other GECOS text.
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// From shadow: `locked`, `no password`, `EMPTY (no password needed)`, `hash $6$
    /// (SHA-512 crypt)` …; `no shadow entry` when shadow lacks it.
    pub password: String,
    /// Shadow's last password change, as a date.
    pub password_changed: Option<String>,
    /// The passwd line.
    pub source: Evidence,
    /// The shadow line, if any.
    pub shadow_source: Option<Evidence>,
    /// The home directory as raw bytes, for reading files inside it.
    #[serde(skip)]
    pub home_raw: Vec<u8>,
}

/// A group that grants power, and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: String,
    /// Members listed in `/etc/group`.
    pub members: Vec<String>,
    /// The line.
    pub source: Evidence,
}

/// One sudoers line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SudoRule {
    /// The line, display-safe.
    pub line: String,
    /// Whether it has `NOPASSWD`.
    pub nopasswd: bool,
    /// Where.
    pub source: Evidence,
}

/// Groups whose members hold root or can read every log.
const PRIVILEGED_GROUPS: &[&[u8]] = &[
    b"root", b"sudo", b"wheel", b"adm", b"docker", b"lxd", b"disk", b"admin", b"shadow",
];

pub(crate) fn collect(files: &Files<'_>, out: &mut Collected) -> Accounts {
    let mut acc = Accounts::default();
    let shadow = read_shadow(files, out);
    let by_name: std::collections::HashMap<&[u8], &Shadow> =
        shadow.iter().map(|s| (s.name.as_slice(), s)).collect();
    if let Some(data) = read(files, b"/etc/passwd", CONFIG_CAP, out) {
        out.events
            .extend(mtime_event(&data, "account_file_modified", "passwd"));
        let mut log = ProblemLog::new(&data.evidence, out);
        for l in lines(&data.bytes) {
            if is_comment(l.text) {
                continue;
            }
            let f: Vec<&[u8]> = l.text.splitn(7, |&b| b == b':').collect();
            let [name, _pw, uid, gid, gecos, home, shell] = f.as_slice() else {
                log.line(l.no, "not a passwd entry (7 fields)");
                continue;
            };
            let source = data.evidence.at_line(l.no, l.offset);
            let sh = by_name.get(name);
            let mut user = User {
                name: safe(name),
                uid: safe(uid),
                gid: safe(gid),
                gecos: safe(gecos),
                home: safe(home),
                shell: safe(shell),
                password: "no shadow entry".into(),
                password_changed: None,
                source: source.clone(),
                shadow_source: None,
                home_raw: home.to_vec(),
            };
            if let Some(s) = sh {
                user.password = s.state.clone();
                user.password_changed = s.changed.clone();
                user.shadow_source = Some(s.source.clone());
            }
            if *uid == b"0" && *name != b"root" {
                log.out().findings.push(Finding::new(
                    "linux.uid0_account",
                    Severity::High,
                    format!("Account {} has uid 0", user.name),
                    format!(
                        "/etc/passwd gives the account {} (home {}, shell {}) user id 0: it \
                         has every privilege of root under another name, a classic backdoor.",
                        user.name, user.home, user.shell
                    ),
                    vec![source],
                ));
            }
            if acc.users.len() < super::MAX_ITEMS {
                acc.users.push(user);
            }
        }
    }
    for s in &shadow {
        if s.empty {
            out.findings.push(Finding::new(
                "linux.empty_password",
                Severity::High,
                format!("Account {} has an empty password", safe(&s.name)),
                format!(
                    "The shadow entry of {} has an empty password field: the account logs \
                     in without a password wherever PAM allows it (nullok).",
                    safe(&s.name)
                ),
                vec![s.source.clone()],
            ));
        }
    }
    groups(files, &mut acc, out);
    sudoers(files, &mut acc, out);
    acc
}

/// One shadow entry, reduced to what may be shown.
struct Shadow {
    name: Vec<u8>,
    state: String,
    empty: bool,
    changed: Option<String>,
    source: Evidence,
}

fn read_shadow(files: &Files<'_>, out: &mut Collected) -> Vec<Shadow> {
    let mut found = Vec::new();
    let Some(data) = read(files, b"/etc/shadow", CONFIG_CAP, out) else {
        return found;
    };
    out.events
        .extend(mtime_event(&data, "account_file_modified", "shadow"));
    let mut log = ProblemLog::new(&data.evidence, out);
    for l in lines(&data.bytes) {
        if is_comment(l.text) {
            continue;
        }
        let f: Vec<&[u8]> = l.text.splitn(4, |&b| b == b':').collect();
        let [name, pw, changed, ..] = f.as_slice() else {
            log.line(l.no, "not a shadow entry");
            continue;
        };
        if found.len() >= super::MAX_ITEMS {
            break;
        }
        let changed = std::str::from_utf8(changed)
            .ok()
            .and_then(|d| d.parse::<i64>().ok())
            .and_then(date_of_day);
        found.push(Shadow {
            name: name.to_vec(),
            state: password_state(pw),
            empty: pw.is_empty(),
            changed,
            source: data.evidence.at_line(l.no, l.offset),
        });
    }
    found
}

/// How a shadow password field protects the account, without the hash.
pub fn password_state(pw: &[u8]) -> String {
    if pw.is_empty() {
        return "EMPTY (login without password)".into();
    }
    if pw.first() == Some(&b'!') {
        let rest = pw.get(1..).unwrap_or_default();
        return if rest.is_empty() || rest == b"!" || rest == b"*" {
            "locked, no password".into()
        } else {
            format!(
                "locked ({})",
                hash_kind(rest.strip_prefix(b"!").unwrap_or(rest))
            )
        };
    }
    if pw == b"*" || pw == b"x" {
        return "no password (login disabled)".into();
    }
    hash_kind(pw)
}

fn hash_kind(pw: &[u8]) -> String {
    let id: &[u8] = if pw.first() == Some(&b'$') {
        let end = pw
            .iter()
            .skip(1)
            .position(|&b| b == b'$')
            .map_or(pw.len(), |i| i.saturating_add(2));
        pw.get(..end).unwrap_or_default()
    } else {
        b""
    };
    let name = match id {
        b"$1$" => "MD5 crypt",
        b"$2a$" | b"$2b$" | b"$2y$" => "bcrypt",
        b"$5$" => "SHA-256 crypt",
        b"$6$" => "SHA-512 crypt",
        b"$y$" => "yescrypt",
        b"$gy$" => "gost-yescrypt",
        b"$7$" => "scrypt",
        b"" if pw.len() == 13 => return "hash (DES crypt)".into(),
        _ => return "password set (unknown hash format)".into(),
    };
    format!("hash {} ({name})", safe(id))
}

fn groups(files: &Files<'_>, acc: &mut Accounts, out: &mut Collected) {
    let Some(data) = read(files, b"/etc/group", CONFIG_CAP, out) else {
        return;
    };
    let mut log = ProblemLog::new(&data.evidence, out);
    for l in lines(&data.bytes) {
        if is_comment(l.text) {
            continue;
        }
        let f: Vec<&[u8]> = l.text.splitn(4, |&b| b == b':').collect();
        let [name, _pw, gid, members] = f.as_slice() else {
            log.line(l.no, "not a group entry (4 fields)");
            continue;
        };
        acc.group_count = acc.group_count.saturating_add(1);
        if PRIVILEGED_GROUPS.contains(name) && acc.privileged_groups.len() < super::MAX_ITEMS {
            acc.privileged_groups.push(Group {
                name: safe(name),
                gid: safe(gid),
                members: members
                    .split(|&b| b == b',')
                    .filter(|m| !trim(m).is_empty())
                    .take(super::MAX_ITEMS)
                    .map(|m| safe(trim(m)))
                    .collect(),
                source: data.evidence.at_line(l.no, l.offset),
            });
        }
    }
}

fn sudoers(files: &Files<'_>, acc: &mut Accounts, out: &mut Collected) {
    let mut paths = vec![b"/etc/sudoers".to_vec()];
    for e in list(files, "/etc/sudoers.d", out) {
        paths.push(join("/etc/sudoers.d", &e.name));
    }
    for p in paths {
        let Some(data) = read(files, &p, CONFIG_CAP, out) else {
            continue;
        };
        if p != b"/etc/sudoers" {
            out.events
                .extend(mtime_event(&data, "sudoers_file_modified", "sudoers file"));
        }
        for l in lines(&data.bytes) {
            let t = trim(l.text);
            // `#include`/`#includedir` are directives, not comments.
            if t.is_empty() || (t.first() == Some(&b'#') && !t.starts_with(b"#include")) {
                continue;
            }
            let nopasswd = contains(t, b"NOPASSWD");
            let rule = SudoRule {
                line: safe(t),
                nopasswd,
                source: data.evidence.at_line(l.no, l.offset),
            };
            if nopasswd {
                out.findings.push(Finding::new(
                    "linux.sudoers_nopasswd",
                    Severity::Medium,
                    "sudo without password".into(),
                    format!(
                        "The sudoers rule `{}` lets its users run commands as root without a \
                         password.",
                        rule.line
                    ),
                    vec![rule.source.clone()],
                ));
            }
            if acc.sudoers.len() < super::MAX_ITEMS {
                acc.sudoers.push(rule);
            }
        }
    }
}
