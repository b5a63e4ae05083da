//! The report: one self-contained HTML file an examiner opens anywhere (no network, no
//! external file), and the same facts as JSON.
//!
//! Nothing from evidence can run in the viewer: every string goes through
//! [`html_escape`] (after [`crate::text::display_safe`] upstream), the page's only script
//! is ours, and a Content-Security-Policy that allows exactly that script (by its
//! SHA-256), inline styles and nothing else is the second line of defence — an escaping
//! mistake still could not load or run anything.

use crate::event::{utc_text, Event};
use crate::findings::{Finding, Severity};
use crate::text::html_escape;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// Timeline rows shown in the HTML (the JSONL and CSV have all of them).
pub const MAX_HTML_TIMELINE: usize = 5_000;

/// One evidence item as the report shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ItemSummary {
    /// Its name (directory in the case).
    pub name: String,
    /// `disk`, `memory`, `network capture`, `live collection`.
    pub kind: String,
    /// What was acquired: path, model, serial.
    pub source: String,
    /// Bytes of the source.
    pub size_bytes: u64,
    /// `complete` or `incomplete: reason`.
    pub status: String,
    /// Source hashes (name → hex).
    pub hashes: Vec<(String, String)>,
    /// `verified`, `verified (incomplete acquisition)` or `FAILED: …`.
    pub verification: String,
    /// Signing key number, fingerprint, and whether the signature verified.
    pub signature: String,
    /// Started – finished, on which host.
    pub acquired: String,
    /// How write-blocking was done and verified.
    pub write_protection: String,
    /// Unreadable ranges, if any.
    pub unreadable: String,
}

/// The custody log as verified.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CustodySummary {
    /// Whether the hash chain verified.
    pub chain_ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Its entries: seq, time, examiner, action, item, details.
    pub entries: Vec<Value>,
}

/// Everything the report shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Case id.
    pub case_id: String,
    /// Examiner of the case.
    pub examiner: String,
    /// Agency.
    pub agency: Option<String>,
    /// Case notes.
    pub notes: Option<String>,
    /// When the report was made (RFC 3339 UTC).
    pub generated_utc: String,
    /// `vestige 0.1.0` and its binary's SHA-256.
    pub tool: String,
    /// Evidence items.
    pub items: Vec<ItemSummary>,
    /// The custody log.
    pub custody: CustodySummary,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Volumes and system profiles: (title, facts as JSON).
    pub profiles: Vec<(String, Value)>,
    /// Timeline events shown (artifact events first choice, see [`select_timeline`]).
    pub timeline: Vec<Event>,
    /// Events in the full timeline.
    pub timeline_total: usize,
    /// What could not be read.
    pub problems: Vec<String>,
}

/// The events the HTML shows when the timeline is long: every artifact event (logs,
/// registry, …) before file-system times, newest dropped last, up to
/// [`MAX_HTML_TIMELINE`]; then sorted by time.
#[must_use]
pub fn select_timeline(events: &[Event]) -> Vec<Event> {
    if events.len() <= MAX_HTML_TIMELINE {
        return events.to_vec();
    }
    let is_fs = |e: &Event| e.source == "filesystem" || e.source == "ntfs_file_name";
    let mut out: Vec<Event> = events
        .iter()
        .filter(|e| !is_fs(e))
        .take(MAX_HTML_TIMELINE)
        .cloned()
        .collect();
    let room = MAX_HTML_TIMELINE.saturating_sub(out.len());
    // The most recent file-system activity is what an examiner looks at first.
    let fs: Vec<&Event> = events.iter().filter(|e| is_fs(e)).collect();
    out.extend(fs.iter().rev().take(room).map(|e| (*e).clone()));
    crate::timeline::sort(&mut out);
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.6em}h2{border-bottom:2px solid #444;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0;font-size:.9em;max-width:100%}\
td,th{border:1px solid #bbb;padding:.25em .5em;vertical-align:top;text-align:left;overflow-wrap:anywhere}\
table.item td:first-child{white-space:nowrap;font-weight:bold}td.when{white-space:nowrap}\
code{white-space:nowrap}#findings-table td:first-child,#findings-table th{overflow-wrap:normal}\
th{background:#eee}.sev-high{background:#f8d0d0}.sev-medium{background:#fde8c8}\
.sev-low{background:#fff6c8}.sev-info{background:#e8f0f8}.ok{color:#070}.bad{color:#b00;font-weight:bold}\
code,.mono{font-family:ui-monospace,monospace;font-size:.9em}\
#filter input{margin-right:1em}.hidden{display:none}";

/// Our only script: filters the timeline table by text and time range.
const SCRIPT: &str = "(function(){var q=document.getElementById('tl-q'),f=document.getElementById('tl-from'),t=document.getElementById('tl-to'),n=document.getElementById('tl-n');\
function run(){var s=q.value.toLowerCase(),a=f.value,b=t.value,k=0,rows=document.querySelectorAll('#timeline tbody tr');\
for(var i=0;i<rows.length;i++){var r=rows[i],d=r.getAttribute('data-t'),x=r.textContent.toLowerCase();\
var show=(!s||x.indexOf(s)>=0)&&(!a||d>=a)&&(!b||d<=b+'~');r.className=show?'':'hidden';if(show)k++;}n.textContent=k;}\
q.addEventListener('input',run);f.addEventListener('input',run);t.addEventListener('input',run);run();})();";

fn esc(s: &str) -> String {
    html_escape(s)
}

fn sev_class(s: Severity) -> &'static str {
    match s {
        Severity::High => "sev-high",
        Severity::Medium => "sev-medium",
        Severity::Low => "sev-low",
        Severity::Info => "sev-info",
    }
}

fn sev_name(s: Severity) -> &'static str {
    match s {
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        Severity::Info => "info",
    }
}

/// A JSON value as nested HTML: objects as two-column tables, arrays of objects as
/// tables with a column per key, scalars escaped. Depth-bounded.
fn json_html(out: &mut String, v: &Value, depth: usize) {
    if depth > 8 {
        out.push('…');
        return;
    }
    match v {
        Value::Null => out.push('–'),
        Value::Bool(b) => out.push_str(if *b { "yes" } else { "no" }),
        Value::Number(n) => out.push_str(&esc(&n.to_string())),
        Value::String(s) => out.push_str(&esc(s)),
        Value::Array(a) if a.is_empty() => out.push_str("(none)"),
        Value::Array(a) if a.iter().all(Value::is_object) => {
            let mut keys: Vec<&String> = Vec::new();
            for o in a.iter().filter_map(Value::as_object) {
                for k in o.keys() {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            out.push_str("<table><thead><tr>");
            for k in &keys {
                let _ = write!(out, "<th>{}</th>", esc(k));
            }
            out.push_str("</tr></thead><tbody>");
            for o in a.iter().filter_map(Value::as_object) {
                out.push_str("<tr>");
                for k in &keys {
                    out.push_str("<td>");
                    if let Some(x) = o.get(*k) {
                        json_html(out, x, depth + 1);
                    }
                    out.push_str("</td>");
                }
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table>");
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str("<br>");
                }
                json_html(out, x, depth + 1);
            }
        }
        Value::Object(o) => {
            out.push_str("<table>");
            for (k, x) in o {
                let _ = write!(out, "<tr><th>{}</th><td>", esc(k));
                json_html(out, x, depth + 1);
                out.push_str("</td></tr>");
            }
            out.push_str("</table>");
        }
    }
}

fn row(out: &mut String, cells: &[&str]) {
    out.push_str("<tr>");
    for c in cells {
        let _ = write!(out, "<td>{}</td>", esc(c));
    }
    out.push_str("</tr>");
}

/// The Content-Security-Policy of the page: our script by hash, inline styles, nothing
/// else (no network, no images, no frames, no forms).
#[must_use]
pub fn content_security_policy() -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
         base-uri 'none'; form-action 'none'"
    )
}

/// The report as one HTML document.
#[must_use]
pub fn html(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024 + r.timeline.len() * 256);
    let title = format!("Vestige report — case {}", r.case_id);
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        esc(&content_security_policy()),
        esc(&title)
    );
    let _ = write!(o, "<h1>{}</h1>", esc(&title));
    o.push_str("<table id=\"case\">");
    row(&mut o, &["Case", &r.case_id]);
    row(&mut o, &["Examiner", &r.examiner]);
    row(&mut o, &["Agency", r.agency.as_deref().unwrap_or("–")]);
    row(&mut o, &["Notes", r.notes.as_deref().unwrap_or("–")]);
    row(&mut o, &["Report generated (UTC)", &r.generated_utc]);
    row(&mut o, &["Tool", &r.tool]);
    o.push_str("</table>");

    let high = r
        .findings
        .iter()
        .filter(|f| f.severity == Severity::High)
        .count();
    let _ = write!(
        o,
        "<p>{} findings ({high} high), {} timeline events, {} evidence items.</p>",
        r.findings.len(),
        r.timeline_total,
        r.items.len()
    );

    o.push_str("<h2 id=\"evidence\">Evidence items</h2>");
    for i in &r.items {
        let _ = write!(o, "<h3>{}</h3><table class=\"item\">", esc(&i.name));
        row(&mut o, &["Kind", &i.kind]);
        row(&mut o, &["Source", &i.source]);
        row(&mut o, &["Size (bytes)", &i.size_bytes.to_string()]);
        row(&mut o, &["Status", &i.status]);
        for (k, v) in &i.hashes {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"mono\">{}</td></tr>",
                esc(k),
                esc(v)
            );
        }
        let _ = write!(
            o,
            "<tr><td>Verification</td><td class=\"{}\">{}</td></tr>",
            if i.verification.starts_with("verified") {
                "ok"
            } else {
                "bad"
            },
            esc(&i.verification)
        );
        row(&mut o, &["Signature", &i.signature]);
        row(&mut o, &["Acquired", &i.acquired]);
        row(&mut o, &["Write protection", &i.write_protection]);
        row(&mut o, &["Unreadable", &i.unreadable]);
        o.push_str("</table>");
    }

    o.push_str("<h2 id=\"findings\">Findings</h2>");
    if r.findings.is_empty() {
        o.push_str("<p>No rule flagged anything.</p>");
    } else {
        o.push_str("<table id=\"findings-table\"><thead><tr><th>Severity</th><th>Rule</th><th>Title</th><th>Time (UTC)</th><th>What was seen</th><th>Evidence</th></tr></thead><tbody>");
        for f in &r.findings {
            let ev = f
                .evidence
                .iter()
                .map(|e| esc(&e.describe()))
                .collect::<Vec<_>>()
                .join("<br>");
            let _ = write!(
                o,
                "<tr class=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"when\">{}</td><td>{}</td><td class=\"mono\">{ev}</td></tr>",
                sev_class(f.severity),
                sev_name(f.severity),
                esc(&f.rule),
                esc(&f.title),
                f.time.map(utc_text).unwrap_or_default(),
                esc(&f.description)
            );
        }
        o.push_str("</tbody></table>");
    }

    o.push_str("<h2 id=\"custody\">Chain of custody</h2>");
    let _ = write!(
        o,
        "<p class=\"{}\">{}</p>",
        if r.custody.chain_ok { "ok" } else { "bad" },
        if r.custody.chain_ok {
            format!("Hash chain verified: {} entries.", r.custody.entries.len())
        } else {
            esc(&format!(
                "Hash chain BROKEN: {}",
                r.custody.error.as_deref().unwrap_or("unknown")
            ))
        }
    );
    json_html(&mut o, &Value::Array(r.custody.entries.clone()), 0);

    o.push_str("<h2 id=\"systems\">Volumes and systems</h2>");
    for (t, v) in &r.profiles {
        let _ = write!(o, "<h3>{}</h3>", esc(t));
        json_html(&mut o, v, 0);
    }

    let _ = write!(
        o,
        "<h2 id=\"timeline-view\">Timeline</h2><p>{} of {} events shown here (every artifact event first, then the most recent file-system times); timeline.jsonl and timeline.csv beside this file hold all of them.</p>\
         <p id=\"filter\">Filter: <input id=\"tl-q\" placeholder=\"text\"> from <input id=\"tl-from\" placeholder=\"2026-01-01T00:00\"> to <input id=\"tl-to\" placeholder=\"2026-12-31\"> <span id=\"tl-n\"></span> rows</p>",
        r.timeline.len(),
        r.timeline_total
    );
    o.push_str("<table id=\"timeline\"><thead><tr><th>Time (UTC)</th><th>Source</th><th>Kind</th><th>Description</th><th>Evidence</th><th>Note</th></tr></thead><tbody>");
    for e in &r.timeline {
        let t = utc_text(e.time);
        let _ = write!(
            o,
            "<tr data-t=\"{}\"><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
            esc(&t),
            esc(&t),
            esc(&e.source),
            esc(&e.kind),
            esc(&e.description),
            esc(&e.evidence.describe()),
            esc(e.time_note.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</tbody></table>");

    o.push_str("<h2 id=\"problems\">What could not be read</h2>");
    if r.problems.is_empty() {
        o.push_str("<p>Nothing.</p>");
    } else {
        o.push_str("<ul>");
        for p in &r.problems {
            let _ = write!(o, "<li>{}</li>", esc(p));
        }
        o.push_str("</ul>");
    }
    let _ = writeln!(o, "<script>{SCRIPT}</script></body></html>");
    o
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
