//! The SAM hive: local accounts (`SAM\Domains\Account\Users`), their names and the
//! fixed-length `F` record (last logon, password last set, account expiry, last failed
//! logon, logon count, account control flags).

use super::regf::{filetime, Hive};
use super::{key_event, safe, time_text, WindowsProfile};
use crate::collected::Collected;
use crate::event::{Event, Evidence, Timestamp};
use serde::Serialize;

/// Accounts read at most.
pub const MAX_USERS: usize = 4096;

/// ACB flag: account disabled.
pub const ACB_DISABLED: u16 = 0x0001;
/// ACB flag: no password required.
pub const ACB_PWNOTREQ: u16 = 0x0004;

/// A local account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SamUser {
    /// Relative id (500 Administrator, 501 Guest, ≥ 1000 created accounts).
    pub rid: u32,
    /// The name (`Users\Names\<name>`, whose default value's type is the RID).
    pub name: Option<String>,
    /// `F`: last logon.
    pub last_logon: Option<String>,
    /// `F`: password last set.
    pub password_last_set: Option<String>,
    /// `F`: account expires (`None`: never).
    pub account_expires: Option<String>,
    /// `F`: last failed logon.
    pub last_failed_logon: Option<String>,
    /// `F`: successful logons.
    pub logon_count: Option<u16>,
    /// `F`: failed logons since the last success.
    pub failed_logon_count: Option<u16>,
    /// `F`: account control flags, raw.
    pub acb_flags: Option<u16>,
    /// ACB disabled flag.
    pub disabled: bool,
    /// The names key's last-written time (about when the account was created).
    pub name_key_last_written: Option<String>,
    /// Where.
    pub evidence: Evidence,
}

fn ft_at(f: &[u8], at: usize) -> Option<Timestamp> {
    let b: [u8; 8] = f.get(at..at + 8)?.try_into().ok()?;
    let v = u64::from_le_bytes(b);
    if v == 0x7FFF_FFFF_FFFF_FFFF || v == u64::MAX {
        return None;
    }
    filetime(v)
}

fn u16_at(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(f.get(at..at + 2)?.try_into().ok()?))
}

/// Reads the SAM hive's accounts into `profile` and events.
pub fn collect(h: &Hive<'_>, file: &Evidence, profile: &mut WindowsProfile, out: &mut Collected) {
    let base = "SAM\\Domains\\Account\\Users";
    let Some(users) = h.key(base) else {
        out.problem(format!("{}: no {base}", file.describe()));
        return;
    };
    // Names\<name>: the default value's *type* is the RID.
    let mut names: Vec<(u32, String, Option<Timestamp>)> = Vec::new();
    if let Some(nk) = users.subkey("Names") {
        for k in nk.subkeys().into_iter().flatten().take(MAX_USERS) {
            if let Some(v) = k.value("") {
                names.push((v.data_type, k.name.clone(), k.last_written()));
            }
        }
    }
    for k in users.subkeys().into_iter().flatten().take(MAX_USERS) {
        let Ok(rid) = u32::from_str_radix(&k.name, 16) else {
            continue;
        };
        let name = names.iter().find(|n| n.0 == rid);
        let f = k.value("F").and_then(|v| v.data().ok()).unwrap_or_default();
        if f.len() < 0x44 {
            out.problem(format!(
                "{}: user {rid}: F record of {} bytes, expected at least 68",
                super::key_evidence(file, &k).describe(),
                f.len()
            ));
        }
        let acb = u16_at(&f, 0x38);
        let u = SamUser {
            rid,
            name: name.map(|n| safe(&n.1)),
            last_logon: time_text(ft_at(&f, 0x08)),
            password_last_set: time_text(ft_at(&f, 0x18)),
            account_expires: time_text(ft_at(&f, 0x20)),
            last_failed_logon: time_text(ft_at(&f, 0x28)),
            logon_count: u16_at(&f, 0x42),
            failed_logon_count: u16_at(&f, 0x40),
            acb_flags: acb,
            disabled: acb.is_some_and(|a| a & ACB_DISABLED != 0),
            name_key_last_written: time_text(name.and_then(|n| n.2)),
            evidence: super::key_evidence(file, &k),
        };
        let who = u.name.clone().unwrap_or_else(|| format!("RID {rid}"));
        let fev = k.value("F").map(|v| file.at_offset(v.file_offset()));
        for (at, kind, what) in [
            (0x08, "last_logon", "last logon"),
            (0x18, "password_set", "password last set"),
            (0x28, "logon_failed", "last failed logon"),
        ] {
            if let (Some(t), Some(ev)) = (ft_at(&f, at), &fev) {
                out.events.push(
                    Event::new(
                        t,
                        "registry",
                        kind,
                        format!("SAM: {what} of {who}"),
                        ev.clone(),
                    )
                    .field("user", who.clone())
                    .field("rid", rid.to_string()),
                );
            }
        }
        if let Some(n) = name {
            if let Some(nk) = users.subkey("Names").and_then(|x| x.subkey(&n.1)) {
                let path = format!("{base}\\Names\\{}", n.1);
                if let Some(e) = key_event(
                    file,
                    &nk,
                    &path,
                    "user_key_written",
                    &format!("SAM account {who}"),
                ) {
                    out.events
                        .push(e.field("user", who.clone()).field("rid", rid.to_string()));
                }
            }
        }
        profile.users.push(u);
    }
}
