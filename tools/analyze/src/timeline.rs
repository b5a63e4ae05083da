//! The super-timeline: every event of every collector, sorted, written as JSONL and CSV in
//! the shape Timesketch imports (`datetime`, `timestamp` in microseconds,
//! `timestamp_desc`, `message`), plus our own columns (source, kind, evidence, fields,
//! time note), and filtered again by `vestige timeline`.

use crate::event::{utc_text, Event};
use serde_json::{json, Map, Value};
use std::io::{self, BufRead, Write};

/// Sorts by time, then source, kind, evidence and description: the same events always
/// give the same file.
pub fn sort(events: &mut [Event]) {
    events.sort_by(|a, b| {
        (a.time, &a.source, &a.kind, &a.evidence, &a.description).cmp(&(
            b.time,
            &b.source,
            &b.kind,
            &b.evidence,
            &b.description,
        ))
    });
}

/// Microseconds since the epoch, as Timesketch's `timestamp` (saturating).
fn micros(e: &Event) -> i64 {
    e.time
        .secs
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(e.time.nanos / 1000))
}

/// One event as a JSON object: Timesketch's fields first, then ours.
#[must_use]
pub fn row(e: &Event) -> Value {
    let mut m = Map::new();
    m.insert("datetime".into(), json!(utc_text(e.time)));
    m.insert("timestamp".into(), json!(micros(e)));
    m.insert("timestamp_desc".into(), json!(e.kind));
    m.insert("message".into(), json!(e.description));
    m.insert("source".into(), json!(e.source));
    m.insert("kind".into(), json!(e.kind));
    m.insert(
        "evidence".into(),
        serde_json::to_value(&e.evidence).unwrap_or(Value::Null),
    );
    if !e.fields.is_empty() {
        m.insert(
            "fields".into(),
            serde_json::to_value(&e.fields).unwrap_or(Value::Null),
        );
    }
    if let Some(n) = &e.time_note {
        m.insert("time_note".into(), json!(n));
    }
    Value::Object(m)
}

/// Writes one JSON object per line.
///
/// # Errors
/// The writer fails.
pub fn write_jsonl(events: &[Event], w: &mut dyn Write) -> io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut *w, &row(e))?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// The CSV columns.
pub const CSV_HEADER: &str = "datetime,timestamp,timestamp_desc,message,source,kind,volume,path,inode,offset,line,record,fields,time_note";

/// One CSV cell, quoted as RFC 4180 says. A cell that a spreadsheet would run as a
/// formula (starting with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`: evidence
/// must not execute in the examiner's spreadsheet. The JSONL keeps the text unchanged.
#[must_use]
pub fn csv_cell(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) || guarded != s {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// One CSV line (no newline) of a row as [`row`] makes it, the columns of [`CSV_HEADER`]:
/// `timeline.csv` and `vestige timeline --csv` write the same line for the same row.
#[must_use]
pub fn csv_line(row: &Value) -> String {
    let s = |p: &str| match row.pointer(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    };
    let fields = row
        .get("fields")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let cells = [
        s("/datetime"),
        s("/timestamp"),
        s("/timestamp_desc"),
        s("/message"),
        s("/source"),
        s("/kind"),
        s("/evidence/volume"),
        s("/evidence/path"),
        s("/evidence/inode"),
        s("/evidence/offset"),
        s("/evidence/line"),
        s("/evidence/record"),
        fields,
        s("/time_note"),
    ];
    cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes the header and one line per event.
///
/// # Errors
/// The writer fails.
pub fn write_csv(events: &[Event], w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "{CSV_HEADER}")?;
    for e in events {
        writeln!(w, "{}", csv_line(&row(e)))?;
    }
    Ok(())
}

/// Which rows `vestige timeline` keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Microseconds since the epoch, inclusive.
    pub from_us: Option<i64>,
    /// Microseconds since the epoch, inclusive.
    pub to_us: Option<i64>,
    /// Every word must occur (case-insensitively) in the row's source, kind, message,
    /// path or fields; `source:X` and `kind:X` match those columns exactly.
    pub terms: Vec<String>,
}

impl Filter {
    /// Whether `row` (a JSONL line of [`write_jsonl`]) passes.
    #[must_use]
    pub fn keeps(&self, row: &Value) -> bool {
        let t = row
            .get("timestamp")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MIN);
        if self.from_us.is_some_and(|f| t < f) || self.to_us.is_some_and(|to| t > to) {
            return false;
        }
        let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("");
        let haystack = format!(
            "{} {} {} {} {}",
            text("source"),
            text("kind"),
            text("message"),
            row.pointer("/evidence/path")
                .and_then(Value::as_str)
                .unwrap_or(""),
            row.get("fields").map(Value::to_string).unwrap_or_default()
        )
        .to_lowercase();
        self.terms.iter().all(|term| {
            if let Some(s) = term.strip_prefix("source:") {
                text("source").eq_ignore_ascii_case(s)
            } else if let Some(k) = term.strip_prefix("kind:") {
                text("kind").eq_ignore_ascii_case(k)
            } else {
                haystack.contains(&term.to_lowercase())
            }
        })
    }
}

/// Copies the rows of a JSONL timeline that `filter` keeps to `out` (as JSONL); returns
/// (rows read, rows kept). A line that is not JSON is an error naming its number.
///
/// # Errors
/// Reading or writing fails, or a line is not a JSON object.
pub fn filter_jsonl(
    input: &mut dyn BufRead,
    filter: &Filter,
    mut out: impl FnMut(&Value) -> io::Result<()>,
) -> io::Result<(u64, u64)> {
    let (mut read, mut kept) = (0u64, 0u64);
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        read += 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {read}: not a timeline row: {e}"),
            )
        })?;
        if filter.keeps(&v) {
            kept += 1;
            out(&v)?;
        }
    }
    Ok((read, kept))
}

#[cfg(test)]
#[path = "timeline_tests.rs"]
mod tests;
