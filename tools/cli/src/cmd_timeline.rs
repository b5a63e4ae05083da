//! `vestige timeline CASE|FILE.jsonl [--from T] [--to T] [--filter TERM]…`: the rows of a
//! super-timeline `vestige analyze` wrote, filtered, as text, JSONL or CSV.

use crate::exit::Exit;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use vestige_analyze::timeline::{csv_line, filter_jsonl, Filter, CSV_HEADER};

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// A case (its newest report's timeline.jsonl) or a timeline.jsonl file.
    pub input: PathBuf,
    /// Only rows at or after this UTC time: 2026-11-20, 2026-11-20T03:00, or RFC 3339.
    #[arg(long)]
    pub from: Option<String>,
    /// Only rows at or before this UTC time (a date alone means its last second).
    #[arg(long)]
    pub to: Option<String>,
    /// Keep rows containing this text (case-insensitive) in source, kind, message, path
    /// or fields; `source:auth.log` and `kind:ssh_login` match those columns exactly.
    /// Repeat to require several.
    #[arg(long = "filter", value_name = "TERM")]
    pub filter: Vec<String>,
    /// Output JSONL rows (as in the file) instead of text.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Output CSV (the columns of timeline.csv).
    #[arg(long)]
    pub csv: bool,
}

/// The newest report directory's timeline of a case, or the file itself.
fn timeline_file(input: &Path) -> Result<PathBuf> {
    if input.is_file() {
        return Ok(input.to_path_buf());
    }
    let mut best: Option<(u32, PathBuf)> = None;
    for e in std::fs::read_dir(input)
        .with_context(|| format!("reading {}", input.display()))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let n = if name == "report" {
            1
        } else if let Some(n) = name.strip_prefix("report-").and_then(|n| n.parse().ok()) {
            n
        } else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, e.path().join("timeline.jsonl")));
        }
    }
    match best {
        Some((_, p)) if p.is_file() => Ok(p),
        _ => bail!(
            "{}: no report with a timeline.jsonl (run `vestige analyze` first)",
            input.display()
        ),
    }
}

/// Microseconds since the epoch of a UTC time given as a date, date and time, or RFC 3339;
/// `end` makes a date or a time without seconds mean the end of that day/minute.
pub fn parse_time_us(text: &str, end: bool) -> Result<i64> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{Date, OffsetDateTime, PrimitiveDateTime};
    let t = text.trim();
    if let Ok(dt) = OffsetDateTime::parse(t, &Rfc3339) {
        return Ok(i64::try_from(dt.unix_timestamp_nanos() / 1000)?);
    }
    let base = t.trim_end_matches('Z');
    let (dt, slack) = if let Ok(d) = Date::parse(base, format_description!("[year]-[month]-[day]"))
    {
        (d.midnight(), 86_400_000_000 - 1)
    } else if let Ok(p) = PrimitiveDateTime::parse(
        base,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    ) {
        (p, 999_999)
    } else if let Ok(p) = PrimitiveDateTime::parse(
        base,
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ) {
        (p, 60_000_000 - 1)
    } else {
        bail!("{text:?}: expected a UTC time such as 2026-11-20, 2026-11-20T03:00 or 2026-11-20T03:00:00Z");
    };
    let us = i64::try_from(dt.assume_utc().unix_timestamp_nanos() / 1000)?;
    Ok(if end { us + slack } else { us })
}

pub fn run(a: &TimelineArgs) -> Result<Exit> {
    let path = timeline_file(&a.input)?;
    let filter = Filter {
        from_us: a
            .from
            .as_deref()
            .map(|t| parse_time_us(t, false))
            .transpose()?,
        to_us: a
            .to
            .as_deref()
            .map(|t| parse_time_us(t, true))
            .transpose()?,
        terms: a.filter.clone(),
    };
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if a.csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    let s = |v: &Value, p: &str| match v.pointer(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    };
    let (read, kept) = filter_jsonl(&mut BufReader::new(file), &filter, |v| {
        if a.json {
            serde_json::to_writer(&mut out, v)?;
            writeln!(out)
        } else if a.csv {
            writeln!(out, "{}", csv_line(v))
        } else {
            let mut loc = s(v, "/evidence/path");
            if let Some(l) = v.pointer("/evidence/line") {
                loc.push_str(&format!(":{l}"));
            }
            writeln!(
                out,
                "{}  {:<14} {:<22} {}  [{} {}]",
                s(v, "/datetime"),
                s(v, "/source"),
                s(v, "/kind"),
                s(v, "/message"),
                s(v, "/evidence/volume"),
                loc
            )
        }
    })
    .with_context(|| format!("reading {}", path.display()))?;
    out.flush()?;
    eprintln!("{kept} of {read} rows of {}", path.display());
    Ok(Exit::Ok)
}
