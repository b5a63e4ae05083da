//! Scheduled tasks (`Windows/System32/Tasks/**`, XML, usually UTF-16 with a BOM) and
//! startup folders (machine-wide and each profile's).

use super::{read_file, safe, time_text, WindowsProfile};
use crate::collected::Collected;
use crate::event::{Event, Evidence, Timestamp};
use crate::files::Files;
use serde::Serialize;
use vestige_fs::FileKind;

/// The tasks directory.
pub const TASK_DIR: &str = "Windows/System32/Tasks";
/// Bytes of one task file read at most.
pub const TASK_CAP: usize = 1024 * 1024;
/// Task files read at most.
pub const MAX_TASKS: usize = 8192;
/// Directory depth below [`TASK_DIR`] at most.
pub const MAX_TASK_DEPTH: usize = 16;
/// The machine-wide startup folder.
pub const COMMON_STARTUP: &str = "ProgramData/Microsoft/Windows/Start Menu/Programs/StartUp";
/// A profile's startup folder, below `Users/<name>/`.
pub const USER_STARTUP: &str = "AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Startup";

/// A scheduled task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Task {
    /// Its path below the tasks directory.
    pub name: String,
    /// `RegistrationInfo/URI`.
    pub uri: Option<String>,
    /// `RegistrationInfo/Author`.
    pub author: Option<String>,
    /// `RegistrationInfo/Date` (local time as written, unconverted).
    pub date: Option<String>,
    /// `Actions/Exec/Command`.
    pub command: Option<String>,
    /// `Actions/Exec/Arguments`.
    pub arguments: Option<String>,
    /// The file's modification time.
    pub file_modified: Option<String>,
    /// Where.
    pub evidence: Evidence,
    /// For rules.
    #[serde(skip)]
    pub time: Option<Timestamp>,
}

/// A file in a startup folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StartupFile {
    /// The profile, or `None` for the machine-wide folder.
    pub user: Option<String>,
    /// Its path.
    pub path: String,
    /// Its modification time.
    pub modified: Option<String>,
    /// Its creation time.
    pub created: Option<String>,
    /// Where.
    pub evidence: Evidence,
    /// For rules.
    #[serde(skip)]
    pub time: Option<Timestamp>,
}

/// Task XML bytes as text: UTF-16LE/BE with a BOM, or UTF-8 (BOM dropped).
#[must_use]
pub fn decode_xml(b: &[u8]) -> String {
    let utf16 = |le: bool, rest: &[u8]| {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .filter_map(|c| <[u8; 2]>::try_from(c).ok())
            .map(|c| {
                if le {
                    u16::from_le_bytes(c)
                } else {
                    u16::from_be_bytes(c)
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    match b {
        [0xFF, 0xFE, rest @ ..] => utf16(true, rest),
        [0xFE, 0xFF, rest @ ..] => utf16(false, rest),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        [b'<', 0, ..] => utf16(true, b),
        _ => String::from_utf8_lossy(b).into_owned(),
    }
}

/// The text of the first `<tag>` (or `<tag attr…>`) element, XML entities decoded.
fn tag(xml: &str, name: &str) -> Option<String> {
    let mut from = 0usize;
    loop {
        let at = from.checked_add(xml.get(from..)?.find(&format!("<{name}"))?)?;
        let after = xml.get(at.checked_add(name.len() + 1)?..)?;
        let next = after.chars().next()?;
        if next == '>' || next.is_whitespace() {
            let open_end = after.find('>')?;
            let body = after.get(open_end + 1..)?;
            let end = body.find(&format!("</{name}>"))?;
            let raw = body.get(..end)?;
            return Some(
                raw.replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&amp;", "&")
                    .trim()
                    .to_string(),
            );
        }
        from = at + 1;
    }
}

/// Reads the scheduled tasks and startup folders.
pub fn collect(files: &Files<'_>, profile: &mut WindowsProfile, out: &mut Collected) {
    let mut stack = vec![(String::new(), 0usize)];
    let mut n = 0usize;
    while let Some((rel, depth)) = stack.pop() {
        let dir = if rel.is_empty() {
            TASK_DIR.to_string()
        } else {
            format!("{TASK_DIR}/{rel}")
        };
        let entries = match files.list(dir.as_bytes()) {
            Ok(e) => e,
            Err(e) => {
                out.problem(format!("{}: {e}", safe(&dir)));
                continue;
            }
        };
        for e in entries {
            let name = String::from_utf8_lossy(&e.name).into_owned();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let kind = if e.kind == FileKind::Unknown {
                files
                    .fs()
                    .metadata(e.inode)
                    .map(|m| m.kind)
                    .unwrap_or(FileKind::Unknown)
            } else {
                e.kind
            };
            if kind == FileKind::Directory {
                if depth < MAX_TASK_DEPTH {
                    stack.push((child, depth + 1));
                }
                continue;
            }
            n += 1;
            if n > MAX_TASKS {
                out.problem(format!(
                    "{TASK_DIR}: more than {MAX_TASKS} tasks; rest not read"
                ));
                return startup(files, profile, out);
            }
            let path = format!("{TASK_DIR}/{child}");
            let Some(f) = read_file(files, &path, TASK_CAP, out) else {
                continue;
            };
            let xml = decode_xml(&f.bytes);
            if !xml.contains("<Task") {
                out.problem(format!("{}: not task XML", f.evidence.describe()));
                continue;
            }
            let g = |t: &str| tag(&xml, t).map(|s| safe(&s));
            let time = f.metadata.times.modified;
            let t = Task {
                name: safe(&child),
                uri: g("URI"),
                author: g("Author"),
                date: g("Date"),
                command: g("Command"),
                arguments: g("Arguments"),
                file_modified: time_text(time),
                evidence: f.evidence.clone(),
                time,
            };
            if let Some(tm) = time {
                let cmd = format!(
                    "{} {}",
                    t.command.as_deref().unwrap_or("?"),
                    t.arguments.as_deref().unwrap_or("")
                );
                let mut e = Event::new(
                    tm,
                    "scheduled_task",
                    "task_file_modified",
                    format!("scheduled task {}: {}", t.name, cmd.trim_end()),
                    f.evidence.clone(),
                )
                .field("task", t.name.clone())
                .field("command", cmd.trim_end().to_string())
                .time_note("the task file's modification time");
                if let Some(a) = &t.author {
                    e = e.field("user", a.clone());
                }
                out.events.push(e);
            }
            profile.scheduled_tasks.push(t);
        }
    }
    startup(files, profile, out);
}

fn startup(files: &Files<'_>, profile: &mut WindowsProfile, out: &mut Collected) {
    let mut dirs: Vec<(Option<String>, String)> = vec![(None, COMMON_STARTUP.to_string())];
    if let Ok(users) = files.list(b"Users") {
        for u in users.into_iter().take(super::MAX_PROFILES) {
            let name = String::from_utf8_lossy(&u.name).into_owned();
            dirs.push((Some(name.clone()), format!("Users/{name}/{USER_STARTUP}")));
        }
    }
    for (user, dir) in dirs {
        let entries = match files.list(dir.as_bytes()) {
            Ok(e) => e,
            Err(e) => {
                out.problem(format!("{}: {e}", safe(&dir)));
                continue;
            }
        };
        for e in entries.into_iter().take(1024) {
            let name = String::from_utf8_lossy(&e.name).into_owned();
            // Windows puts a hidden desktop.ini in every startup folder.
            if name.eq_ignore_ascii_case("desktop.ini") {
                continue;
            }
            let path = format!("{dir}/{name}");
            let md = files.fs().metadata(e.inode).ok();
            let times = md.as_ref().map(|m| m.times).unwrap_or_default();
            let s = StartupFile {
                user: user.as_deref().map(safe),
                path: safe(&path),
                modified: time_text(times.modified),
                created: time_text(times.created),
                evidence: files.evidence(path.as_bytes(), Some(e.inode)),
                time: times.created.or(times.modified),
            };
            if let Some(t) = s.time {
                out.events.push(
                    Event::new(
                        t,
                        "startup_folder",
                        "startup_file",
                        format!("file in startup folder: {}", s.path),
                        s.evidence.clone(),
                    )
                    .time_note("the file's creation (or modification) time"),
                );
            }
            profile.startup_files.push(s);
        }
    }
}
