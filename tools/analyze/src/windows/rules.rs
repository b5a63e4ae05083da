//! The Windows rules: what they flag, why, and their false positives.

use super::WindowsProfile;
use crate::collected::Collected;
use crate::event::Event;
use crate::findings::{Finding, Severity};
use std::collections::BTreeMap;

/// Failed logons from one address before a success that makes it brute force.
pub const BRUTEFORCE_FAILURES: usize = 10;

/// Directories any user can write to, where legitimate autostart targets rarely live.
fn user_writable(path: &str) -> bool {
    // Strings here are display-safe: a backslash is `\x5c`.
    let p = path.to_ascii_lowercase().replace("\\x5c", "\\");
    [
        "\\temp\\",
        "\\tmp\\",
        "\\appdata\\",
        "\\programdata\\",
        "\\users\\public\\",
        "%temp%",
        "%appdata%",
        "%localappdata%",
        "%programdata%",
        "%public%",
    ]
    .iter()
    .any(|d| p.contains(d))
}

/// Script hosts and living-off-the-land launchers an attacker's autostart often uses.
fn script_host(cmd: &str) -> bool {
    let c = cmd.to_ascii_lowercase();
    [
        "powershell",
        "pwsh",
        "wscript",
        "cscript",
        "mshta",
        "rundll32",
        "regsvr32",
        "cmd.exe /c",
        "cmd /c",
        "bitsadmin",
        "certutil",
    ]
    .iter()
    .any(|h| c.contains(h))
}

/// Applies every rule to the profile and the events collected so far.
pub fn apply(profile: &WindowsProfile, out: &mut Collected) {
    let mut f = Vec::new();
    run_key_persistence(profile, &mut f);
    service_installed(profile, &out.events, &mut f);
    log_cleared(&out.events, &mut f);
    bruteforce_then_success(&out.events, &mut f);
    new_admin(&out.events, &mut f);
    scheduled_task_persistence(profile, &mut f);
    startup_folder(profile, &mut f);
    suspicious_powershell(&out.events, &mut f);
    out.findings.extend(f);
}

/// `windows.run_key_persistence`: every Run/RunOnce entry (machine or user). Medium;
/// High when the target is in a user-writable directory (Temp, AppData, ProgramData,
/// Users\Public) or is a script host (PowerShell, wscript, mshta, rundll32 …). Run keys
/// are the most common persistence; false positives: updaters and tray programs of
/// legitimate software (many live in AppData), which the examiner dismisses by name.
fn run_key_persistence(p: &WindowsProfile, f: &mut Vec<Finding>) {
    for a in &p.autoruns {
        let high = user_writable(&a.command) || script_host(&a.command);
        let mut x = Finding::new(
            "windows.run_key_persistence",
            if high {
                Severity::High
            } else {
                Severity::Medium
            },
            format!("Run key entry {}", a.name),
            format!(
                "{}{} starts {} at logon{}",
                a.location,
                a.user
                    .as_deref()
                    .map(|u| format!(" (user {u})"))
                    .unwrap_or_default(),
                a.command,
                if high {
                    "; the target is in a user-writable directory or is a script host"
                } else {
                    ""
                }
            ),
            vec![a.evidence.clone()],
        );
        if let Some(t) = a.time {
            x = x.at(t);
        }
        f.push(x);
    }
}

/// `windows.service_installed`: an EVTX 7045 (a service was installed), or a registered
/// service whose ImagePath lies in a user-writable directory. Medium: services run as
/// SYSTEM and are a classic persistence and lateral-movement trace (PsExec); false
/// positives: legitimate installers (7045 on every driver/software install) and software
/// that installs services under ProgramData.
fn service_installed(p: &WindowsProfile, events: &[Event], f: &mut Vec<Finding>) {
    for e in events
        .iter()
        .filter(|e| e.source == "evtx" && e.kind == "service_installed")
    {
        f.push(
            Finding::new(
                "windows.service_installed",
                Severity::Medium,
                format!(
                    "Service installed: {}",
                    e.fields.get("service").map_or("?", String::as_str)
                ),
                e.description.clone(),
                vec![e.evidence.clone()],
            )
            .at(e.time),
        );
    }
    for s in &p.services {
        let Some(img) = &s.image_path else { continue };
        if user_writable(img) {
            f.push(Finding::new(
                "windows.service_installed",
                Severity::Medium,
                format!("Service {} runs from a user-writable directory", s.name),
                format!("service {} has ImagePath {img}", s.name),
                vec![s.evidence.clone()],
            ));
        }
    }
}

/// `windows.log_cleared`: Security 1102 or System 104 (an event log was cleared). High:
/// anti-forensics; false positives: administrators clearing logs by routine (rare on
/// servers, documented by change management).
fn log_cleared(events: &[Event], f: &mut Vec<Finding>) {
    for e in events
        .iter()
        .filter(|e| e.source == "evtx" && e.kind == "log_cleared")
    {
        f.push(
            Finding::new(
                "windows.log_cleared",
                Severity::High,
                "Event log cleared".to_string(),
                e.description.clone(),
                vec![e.evidence.clone()],
            )
            .at(e.time),
        );
    }
}

/// `windows.bruteforce_then_success`: at least [`BRUTEFORCE_FAILURES`] failed logons
/// (4625) from one address followed by a successful logon (4624) from the same address.
/// High: a guessed password. False positives: a user with a stale saved password on a
/// device behind the same address (NAT), then a correct logon.
fn bruteforce_then_success(events: &[Event], f: &mut Vec<Finding>) {
    let mut logons: Vec<&Event> = events
        .iter()
        .filter(|e| e.source == "evtx" && (e.kind == "logon" || e.kind == "logon_failed"))
        .filter(|e| {
            e.fields
                .get("address")
                .is_some_and(|a| a != "-" && a != "127.0.0.1" && a != "::1")
        })
        .collect();
    logons.sort_by_key(|e| (e.time, e.evidence.record));
    let mut failures: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in logons {
        let Some(addr) = e.fields.get("address") else {
            continue;
        };
        if e.kind == "logon_failed" {
            failures.entry(addr).or_default().push(e);
        } else if let Some(fails) = failures.remove(addr.as_str()) {
            if fails.len() >= BRUTEFORCE_FAILURES {
                let mut ev: Vec<_> = fails.iter().take(3).map(|x| x.evidence.clone()).collect();
                ev.push(e.evidence.clone());
                f.push(
                    Finding::new(
                        "windows.bruteforce_then_success",
                        Severity::High,
                        format!("Brute force then logon from {addr}"),
                        format!(
                            "{} failed logons from {addr}, then a successful logon of {}",
                            fails.len(),
                            e.fields.get("user").map_or("?", String::as_str)
                        ),
                        ev,
                    )
                    .at(e.time),
                );
            }
        }
    }
}

/// `windows.new_admin`: 4732 adding a member to Administrators (S-1-5-32-544), or 4720
/// creating a user account. High: attackers create accounts and make them
/// administrators for persistence; false positives: provisioning by administrators.
fn new_admin(events: &[Event], f: &mut Vec<Finding>) {
    for e in events.iter().filter(|e| e.source == "evtx") {
        let flag = match e.kind.as_str() {
            "user_added" => true,
            "group_member_added" => {
                e.fields
                    .get("group_sid")
                    .is_some_and(|s| s == "S-1-5-32-544")
                    || e.fields
                        .get("group")
                        .is_some_and(|g| g.eq_ignore_ascii_case("Administrators"))
            }
            _ => false,
        };
        if flag {
            f.push(
                Finding::new(
                    "windows.new_admin",
                    Severity::High,
                    "Account created or made administrator".to_string(),
                    e.description.clone(),
                    vec![e.evidence.clone()],
                )
                .at(e.time),
            );
        }
    }
}

/// `windows.scheduled_task_persistence`: a scheduled task whose action runs from a
/// user-writable directory or a script host, or whose author is not Microsoft. Medium:
/// tasks are a common persistence; false positives: updaters of third-party software.
fn scheduled_task_persistence(p: &WindowsProfile, f: &mut Vec<Finding>) {
    for t in &p.scheduled_tasks {
        let cmd = format!(
            "{} {}",
            t.command.as_deref().unwrap_or(""),
            t.arguments.as_deref().unwrap_or("")
        );
        let microsoft = t
            .author
            .as_deref()
            .is_some_and(|a| a.to_ascii_lowercase().contains("microsoft"))
            || t.uri
                .as_deref()
                .is_some_and(|u| u.starts_with("\\x5cMicrosoft\\x5c"));
        if !(user_writable(&cmd) || script_host(&cmd) || !microsoft) || t.command.is_none() {
            continue;
        }
        let mut x = Finding::new(
            "windows.scheduled_task_persistence",
            Severity::Medium,
            format!("Scheduled task {}", t.name),
            format!(
                "task {} (author {}) runs {}",
                t.name,
                t.author.as_deref().unwrap_or("?"),
                cmd.trim()
            ),
            vec![t.evidence.clone()],
        );
        if let Some(tm) = t.time {
            x = x.at(tm);
        }
        f.push(x);
    }
}

/// `windows.startup_folder`: a file in a startup folder (other than desktop.ini).
/// Medium: it runs at every logon; false positives: shortcuts that installers place
/// there.
fn startup_folder(p: &WindowsProfile, f: &mut Vec<Finding>) {
    for s in &p.startup_files {
        let mut x = Finding::new(
            "windows.startup_folder",
            Severity::Medium,
            "File in a startup folder".to_string(),
            format!("{} runs at logon", s.path),
            vec![s.evidence.clone()],
        );
        if let Some(t) = s.time {
            x = x.at(t);
        }
        f.push(x);
    }
}

/// `windows.suspicious_powershell`: a 4104 script block with an encoded command (`-enc`),
/// `IEX`/`Invoke-Expression`, `DownloadString` or `FromBase64String`. Medium: typical of
/// download cradles and obfuscated payloads; false positives: administration scripts that
/// use the same idioms.
fn suspicious_powershell(events: &[Event], f: &mut Vec<Finding>) {
    for e in events.iter().filter(|e| e.kind == "powershell_script") {
        let s = e
            .fields
            .get("script")
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default();
        let hits: Vec<&str> = [
            "-enc",
            "iex",
            "invoke-expression",
            "downloadstring",
            "frombase64string",
        ]
        .into_iter()
        .filter(|k| s.contains(k))
        .collect();
        if !hits.is_empty() {
            f.push(
                Finding::new(
                    "windows.suspicious_powershell",
                    Severity::Medium,
                    "Suspicious PowerShell script block".to_string(),
                    format!("script block uses {}: {}", hits.join(", "), e.description),
                    vec![e.evidence.clone()],
                )
                .at(e.time),
            );
        }
    }
}
