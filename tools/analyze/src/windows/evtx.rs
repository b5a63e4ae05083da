//! Windows event logs (`Windows/System32/winevt/Logs/*.evtx`), parsed by the `evtx`
//! crate and mapped to events: logons (4624/4625/4634/4647), account changes
//! (4720/4732), process creation (4688), scheduled task creation (4698), service
//! installation (7045), log clearing (1102/104) and PowerShell script blocks (4104).
//! Other event ids are counted, not mapped.

use super::{read_file, safe, WindowsProfile};
use crate::collected::Collected;
use crate::event::{Event, Evidence, Timestamp};
use crate::files::Files;
use evtx::{EvtxParser, ParserSettings};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The directory of the event logs.
pub const LOG_DIR: &str = "Windows/System32/winevt/Logs";
/// Bytes of one log read at most.
pub const LOG_CAP: usize = 256 * 1024 * 1024;
/// Log files read at most.
pub const MAX_LOGS: usize = 1024;
/// Records read per log at most.
pub const MAX_RECORDS: usize = 2_000_000;
/// Characters of a script block kept.
pub const SCRIPT_CAP: usize = 4096;

/// One log file read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogState {
    /// Its path.
    pub path: String,
    /// Records parsed.
    pub records: u64,
    /// Records mapped to events.
    pub mapped: u64,
    /// Records that failed to parse.
    pub errors: u64,
}

/// Reads every log in [`LOG_DIR`].
pub fn collect(files: &Files<'_>, profile: &mut WindowsProfile, out: &mut Collected) {
    let entries = match files.list(LOG_DIR.as_bytes()) {
        Ok(e) => e,
        Err(e) => {
            out.problem(format!("{LOG_DIR}: {e}"));
            return;
        }
    };
    let mut names: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .filter(|n| n.to_ascii_lowercase().ends_with(".evtx"))
        .collect();
    names.sort();
    for name in names.into_iter().take(MAX_LOGS) {
        let path = format!("{LOG_DIR}/{name}");
        let Some(f) = read_file(files, &path, LOG_CAP, out) else {
            continue;
        };
        if f.bytes.is_empty() {
            continue;
        }
        let (state, c) = parse_log(f.bytes, &f.evidence);
        profile.event_logs.push(state);
        out.absorb(c);
    }
}

/// Parses one log's bytes; `file` is its evidence.
#[must_use]
pub fn parse_log(bytes: Vec<u8>, file: &Evidence) -> (LogState, Collected) {
    let mut out = Collected::default();
    let mut state = LogState {
        path: file.path.clone().unwrap_or_default(),
        ..LogState::default()
    };
    let mut parser = match EvtxParser::from_buffer(bytes) {
        // Built without the crate's multithreading: one thread, nothing to set.
        Ok(p) => p.with_configuration(ParserSettings::new()),
        Err(e) => {
            out.problem(format!(
                "{}: not an event log: {}",
                file.describe(),
                safe(&e.to_string())
            ));
            return (state, out);
        }
    };
    for r in parser.records_json_value().take(MAX_RECORDS) {
        match r {
            Ok(r) => {
                state.records += 1;
                // The event's own TimeCreated and EventRecordID (System element), which
                // examiners and other tools show; the record header's copies only when
                // those are missing (they differ in logs re-assembled from selections).
                let system = r.data.get("Event").and_then(|e| e.get("System"));
                let time = system
                    .and_then(|s| s.get("TimeCreated"))
                    .and_then(|t| t.get("#attributes"))
                    .and_then(|a| a.get("SystemTime"))
                    .and_then(Value::as_str)
                    .and_then(parse_time)
                    .unwrap_or(Timestamp {
                        secs: r.timestamp.as_second(),
                        nanos: u32::try_from(r.timestamp.subsec_nanosecond()).unwrap_or(0),
                    });
                let record = system
                    .and_then(|s| s.get("EventRecordID"))
                    .and_then(leaf)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(r.event_record_id);
                let ev = Evidence {
                    record: Some(record),
                    ..file.clone()
                };
                if let Some(e) = map_record(&r.data, time, ev) {
                    state.mapped += 1;
                    out.events.push(e);
                }
            }
            Err(e) => {
                state.errors += 1;
                if state.errors <= 20 {
                    out.problem(format!("{}: {}", file.describe(), safe(&e.to_string())));
                }
            }
        }
    }
    if state.errors > 20 {
        out.problem(format!(
            "{}: {} records failed to parse in all",
            file.describe(),
            state.errors
        ));
    }
    (state, out)
}

/// An RFC 3339 time (`2013-10-23T16:22:39.973499Z`).
fn parse_time(s: &str) -> Option<Timestamp> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(Timestamp {
        secs: t.unix_timestamp(),
        nanos: t.nanosecond(),
    })
}

/// A JSON leaf as text (strings as they are, numbers in decimal); objects with a
/// `#text` use it.
fn leaf(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(o) => o.get("#text").and_then(leaf),
        _ => None,
    }
}

/// The named data of a record: `EventData` and `UserData` leaves (one level of nesting
/// below `UserData`), raw.
fn data_fields(event: &Value) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut add = |o: &serde_json::Map<String, Value>| {
        for (k, v) in o {
            if k.starts_with('#') {
                continue;
            }
            if let Some(s) = leaf(v) {
                m.entry(k.clone()).or_insert(s);
            } else if let Value::Object(inner) = v {
                for (k2, v2) in inner {
                    if let Some(s) = leaf(v2) {
                        m.entry(k2.clone()).or_insert(s);
                    }
                }
            }
        }
    };
    for part in ["EventData", "UserData"] {
        if let Some(Value::Object(o)) = event.get(part) {
            add(o);
        }
    }
    m
}

/// The text between `<tag>` and `</tag>` in `xml`, if any.
fn xml_tag<'x>(xml: &'x str, tag: &str) -> Option<&'x str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)?.checked_add(open.len())?;
    let rest = xml.get(start..)?;
    rest.get(..rest.find(&format!("</{tag}>"))?)
}

/// Maps one record (the crate's JSON) to an event, if its id is one we map.
#[must_use]
pub fn map_record(data: &Value, time: Timestamp, evidence: Evidence) -> Option<Event> {
    let event = data.get("Event")?;
    let system = event.get("System")?;
    let id: u32 = leaf(system.get("EventID")?)?.parse().ok()?;
    let channel = system.get("Channel").and_then(leaf).unwrap_or_default();
    let computer = system.get("Computer").and_then(leaf).unwrap_or_default();
    let d = data_fields(event);
    let g = |k: &str| {
        d.get(k)
            .map(|s| safe(s))
            .filter(|s| !s.is_empty() && s != "-")
    };
    let user = g("TargetUserName").or_else(|| g("SubjectUserName"));
    let domain = g("TargetDomainName");
    let who = match (&domain, &user) {
        (Some(dm), Some(u)) => format!("{dm}\\\\{u}"),
        (None, Some(u)) => u.clone(),
        _ => "unknown user".to_string(),
    };
    let address = g("IpAddress");
    let logon_type = g("LogonType");
    let chan_l = channel.to_ascii_lowercase();
    let (kind, description) = match (id, chan_l.as_str()) {
        (4624, "security") => (
            "logon",
            format!(
                "logon of {who}, type {}, from {} ({})",
                logon_type.as_deref().unwrap_or("?"),
                address.as_deref().unwrap_or("local"),
                g("WorkstationName").as_deref().unwrap_or("-")
            ),
        ),
        (4625, "security") => (
            "logon_failed",
            format!(
                "failed logon of {who}, type {}, from {} ({}), status {} / {}",
                logon_type.as_deref().unwrap_or("?"),
                address.as_deref().unwrap_or("local"),
                g("WorkstationName").as_deref().unwrap_or("-"),
                g("Status").as_deref().unwrap_or("-"),
                g("SubStatus").as_deref().unwrap_or("-")
            ),
        ),
        (4634 | 4647, "security") => ("logoff", format!("logoff of {who}")),
        (4720, "security") => (
            "user_added",
            format!(
                "user account {who} created by {}",
                g("SubjectUserName").as_deref().unwrap_or("?")
            ),
        ),
        (4732, "security") => (
            "group_member_added",
            format!(
                "{} added to group {} by {}",
                g("MemberName")
                    .or_else(|| g("MemberSid"))
                    .as_deref()
                    .unwrap_or("?"),
                g("TargetUserName").as_deref().unwrap_or("?"),
                g("SubjectUserName").as_deref().unwrap_or("?")
            ),
        ),
        (4688, "security") => (
            "process_created",
            format!(
                "process {} ({}) by {} from {}",
                g("NewProcessName").as_deref().unwrap_or("?"),
                g("CommandLine")
                    .as_deref()
                    .unwrap_or("no command line recorded"),
                g("SubjectUserName").as_deref().unwrap_or("?"),
                g("ParentProcessName").as_deref().unwrap_or("?")
            ),
        ),
        (1102, "security") => (
            "log_cleared",
            format!(
                "Security log cleared by {}",
                g("SubjectUserName").as_deref().unwrap_or("?")
            ),
        ),
        (104, "system") => (
            "log_cleared",
            format!(
                "{} log cleared by {}",
                g("Channel").as_deref().unwrap_or("an event"),
                g("SubjectUserName").as_deref().unwrap_or("?")
            ),
        ),
        (4698, "security") => {
            let content = d.get("TaskContent").cloned().unwrap_or_default();
            let cmd = xml_tag(&content, "Command").map(|c| {
                let args = xml_tag(&content, "Arguments").unwrap_or_default();
                safe(format!("{c} {args}").trim())
            });
            (
                "task_created",
                format!(
                    "scheduled task {} created by {}: {}",
                    g("TaskName").as_deref().unwrap_or("?"),
                    g("SubjectUserName").as_deref().unwrap_or("?"),
                    cmd.as_deref().unwrap_or("no command")
                ),
            )
        }
        (7045, "system") => (
            "service_installed",
            format!(
                "service {} installed: {}",
                g("ServiceName").as_deref().unwrap_or("?"),
                g("ImagePath").as_deref().unwrap_or("?")
            ),
        ),
        (4104, c) if c.contains("powershell") => {
            let text = d.get("ScriptBlockText").cloned().unwrap_or_default();
            let short: String = text.chars().take(200).collect();
            (
                "powershell_script",
                format!("PowerShell script block: {}", safe(&short)),
            )
        }
        _ => return None,
    };
    let mut e = Event::new(time, "evtx", kind, description, evidence)
        .field("event_id", id.to_string())
        .field("channel", safe(&channel))
        .field("computer", safe(&computer));
    if let Some(u) = user {
        e = e.field("user", u);
    }
    if let Some(a) = address {
        e = e.field("address", a);
    }
    if let Some(l) = logon_type {
        e = e.field("logon_type", l);
    }
    for (key, name) in [
        ("workstation", "WorkstationName"),
        ("status", "Status"),
        ("sub_status", "SubStatus"),
        ("process", "NewProcessName"),
        ("command_line", "CommandLine"),
        ("parent_process", "ParentProcessName"),
        ("service", "ServiceName"),
        ("image_path", "ImagePath"),
        ("task", "TaskName"),
        ("member", "MemberName"),
        ("member_sid", "MemberSid"),
        ("group", "TargetUserName"),
        ("group_sid", "TargetSid"),
    ] {
        let applies = match key {
            "group" | "group_sid" | "member" | "member_sid" => id == 4732,
            _ => true,
        };
        if applies {
            if let Some(v) = g(name) {
                e = e.field(key, v);
            }
        }
    }
    // The log that was cleared: 104 names it in its UserData (the record itself is in
    // System); 1102 is written into the Security log it clears.
    match (id, chan_l.as_str()) {
        (104, "system") => {
            if let Some(c) = g("Channel") {
                e = e.field("cleared_log", c);
            }
        }
        (1102, "security") => e = e.field("cleared_log", "Security".to_string()),
        _ => {}
    }
    if id == 4698 {
        if let Some(c) = d.get("TaskContent").and_then(|c| xml_tag(c, "Command")) {
            let args = d
                .get("TaskContent")
                .and_then(|c| xml_tag(c, "Arguments"))
                .unwrap_or_default();
            e = e.field("command", safe(format!("{c} {args}").trim()));
        }
    }
    if id == 4104 {
        let text = d.get("ScriptBlockText").cloned().unwrap_or_default();
        let capped: String = text.chars().take(SCRIPT_CAP).collect();
        e = e.field("script", safe(&capped));
    }
    Some(e)
}
