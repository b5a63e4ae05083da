//! What every artifact parser hands the timeline and the report: an [`Event`] (something
//! that happened at a time), and the [`Evidence`] it was read from, precise enough for an
//! examiner to find the bytes again with a tool we did not write (path, inode, byte
//! offset, line or record number).

use serde::Serialize;
use std::collections::BTreeMap;
pub use vestige_fs::Timestamp;

/// Where a fact was read: the volume, and inside it the file, its inode, and the byte
/// offset / line / record within that file. Fields that do not apply are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Evidence {
    /// The evidence item and volume, as `vestige volumes` names it (`sdb:002`,
    /// `sdb:vg0/root`, `sdb:disk`).
    pub volume: String,
    /// The file's path inside the volume, display-safe (escaped as `vestige ls` prints it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The file's inode / MFT entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    /// Byte offset of the record inside the file (or the volume when there is no file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// 1-based line number, for text logs and configuration files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Record number the format itself gives (EVTX EventRecordID, USN, journal seqnum).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
}

impl Evidence {
    /// The same file, at byte `offset`.
    #[must_use]
    pub fn at_offset(&self, offset: u64) -> Self {
        Self {
            offset: Some(offset),
            ..self.clone()
        }
    }

    /// The same file, at 1-based line `line` (which starts at byte `offset`).
    #[must_use]
    pub fn at_line(&self, line: u64, offset: u64) -> Self {
        Self {
            line: Some(line),
            offset: Some(offset),
            ..self.clone()
        }
    }

    /// One line for text output: `sdb:002 /var/log/auth.log (inode 1234) line 17`.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut s = self.volume.clone();
        if let Some(p) = &self.path {
            s.push(' ');
            s.push_str(p);
        }
        if let Some(i) = self.inode {
            s.push_str(&format!(" (inode {i})"));
        }
        if let Some(l) = self.line {
            s.push_str(&format!(" line {l}"));
        }
        if let Some(r) = self.record {
            s.push_str(&format!(" record {r}"));
        }
        if let Some(o) = self.offset {
            s.push_str(&format!(" offset {o}"));
        }
        s
    }
}

/// Something that happened at a time, for the super-timeline.
///
/// `source` names the artifact family (`bodyfile`, `auth.log`, `wtmp`, `journal`,
/// `evtx`, `usnjrnl`, `registry`, `dpkg.log` …) and `kind` what happened, in snake case
/// (`file_modified`, `ssh_login_failed`, `user_added`, `service_installed` …): together
/// they are the filter an examiner types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When, UTC (RFC 3339 in JSON).
    #[serde(serialize_with = "ser_time")]
    pub time: Timestamp,
    /// The artifact family.
    pub source: String,
    /// What happened.
    pub kind: String,
    /// One line, display-safe (every string from evidence escaped with
    /// [`crate::text::display_safe`]).
    pub description: String,
    /// Where it was read.
    pub evidence: Evidence,
    /// Named values an examiner or a rule filters on: `user`, `address`, `uid`,
    /// `process`, `event_id`, `logon_type` … (display-safe).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// How the time was obtained when it is not simply stored in UTC: "year inferred
    /// from the file's mtime", "local time, zone from /etc/timezone: Europe/Berlin".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_note: Option<String>,
}

impl Event {
    /// An event with no fields and no time note.
    #[must_use]
    pub fn new(
        time: Timestamp,
        source: &str,
        kind: &str,
        description: String,
        evidence: Evidence,
    ) -> Self {
        Self {
            time,
            source: source.to_string(),
            kind: kind.to_string(),
            description,
            evidence,
            fields: BTreeMap::new(),
            time_note: None,
        }
    }

    /// Adds field `key` (a value from evidence must already be display-safe).
    #[must_use]
    pub fn field(mut self, key: &str, value: impl Into<String>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// Says how the time was obtained.
    #[must_use]
    pub fn time_note(mut self, note: impl Into<String>) -> Self {
        self.time_note = Some(note.into());
        self
    }
}

/// RFC 3339 UTC with the nanoseconds the time has (`2026-11-25T10:00:00Z`,
/// `2026-11-25T10:00:00.123456789Z`); out-of-range times as `@<secs>.<nanos>`.
#[must_use]
pub fn utc_text(t: Timestamp) -> String {
    let Ok(dt) = time::OffsetDateTime::from_unix_timestamp(t.secs) else {
        return format!("@{}.{:09}", t.secs, t.nanos);
    };
    let (y, mo, d) = (dt.year(), u8::from(dt.month()), dt.day());
    let (h, mi, s) = (dt.hour(), dt.minute(), dt.second());
    if t.nanos == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:09}Z",
            t.nanos
        )
    }
}

/// Serializes a time as [`utc_text`]: JSON readers get RFC 3339, not a pair of numbers.
///
/// # Errors
/// The serializer's.
pub fn ser_time<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&utc_text(*t))
}

/// [`ser_time`] for an optional time.
///
/// # Errors
/// The serializer's.
pub fn ser_opt_time<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&utc_text(*t)),
        None => s.serialize_none(),
    }
}
