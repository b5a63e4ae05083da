#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use super::*;
use crate::event::{Evidence, Timestamp};
use crate::test_support::have_tools;
use crate::text::display_safe;

/// Strings an attacker would plant in file names and log lines.
const HOSTILE: &[&[u8]] = &[
    b"<script>alert(1)</script>",
    b"\"><img src=x onerror=alert(1)>",
    b"' onmouseover='alert(1)",
    b"</td></tr></table><iframe src=//evil>",
    b"line\nbreak\r\x1b[31mred\x00nul",
    b"\xff\xfe invalid utf-8 \xc3",
    "bidi \u{202e}txt.exe".as_bytes(),
    b"<!-- comment --><style>*{display:none}</style>",
    b"javascript:alert(1)",
];

fn hostile_report(raw: bool) -> Report {
    // `raw`: strings that skipped display_safe (a collector's mistake): html_escape
    // alone must still hold.
    let s = |b: &[u8]| {
        if raw {
            String::from_utf8_lossy(b).into_owned()
        } else {
            display_safe(b)
        }
    };
    let ev = |b: &[u8]| Evidence {
        volume: s(b),
        path: Some(s(b)),
        inode: Some(7),
        line: Some(1),
        ..Evidence::default()
    };
    let mut r = Report {
        case_id: s(HOSTILE[0]),
        examiner: s(HOSTILE[1]),
        agency: Some(s(HOSTILE[2])),
        notes: Some(s(HOSTILE[3])),
        generated_utc: "2026-11-26T00:00:00Z".into(),
        tool: "vestige test".into(),
        ..Report::default()
    };
    for (i, h) in HOSTILE.iter().enumerate() {
        let t = Timestamp {
            secs: 1_700_000_000 + i as i64,
            nanos: 0,
        };
        r.findings
            .push(Finding::new("x.y", Severity::High, s(h), s(h), vec![ev(h)]).at(t));
        r.timeline.push(
            Event::new(t, &s(h), &s(h), s(h), ev(h))
                .field("user", s(h))
                .time_note(s(h)),
        );
        r.items.push(ItemSummary {
            name: s(h),
            source: s(h),
            ..ItemSummary::default()
        });
        r.problems.push(s(h));
        r.profiles.push((
            s(h),
            serde_json::json!({ "k": s(h), "list": [{ "name": s(h) }] }),
        ));
        r.custody
            .entries
            .push(serde_json::json!({ "action": s(h) }));
    }
    r.timeline_total = r.timeline.len();
    r
}

/// Python's own HTML parser (not ours): every start tag, attribute and script body.
const PARSE: &str = r#"
import sys, json
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.scripts, self.inscript = [], [], [], False
    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(a for a, _ in attrs)
        self.inscript = tag == "script"
        if self.inscript: self.scripts.append("")
    def handle_endtag(self, tag):
        self.inscript = False
    def handle_data(self, d):
        if self.inscript: self.scripts[-1] += d
p = P(); p.feed(sys.stdin.read())
print(json.dumps({"tags": sorted(set(p.tags)), "attrs": sorted(set(p.attrs)), "scripts": p.scripts}))
"#;

#[test]
fn nothing_from_evidence_becomes_markup_or_script() {
    if !have_tools(&["python3"]) {
        return;
    }
    for raw in [false, true] {
        let page = html(&hostile_report(raw));
        for c in page.chars() {
            assert!(
                !c.is_control() || c == '\n',
                "control character {c:?} in the page"
            );
            assert_ne!(c, '\u{202e}');
        }
        let mut child = std::process::Command::new("python3")
            .args(["-c", PARSE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let tags: Vec<&str> = v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let allowed = [
            "br", "code", "h1", "h2", "h3", "head", "html", "input", "li", "meta", "p", "script",
            "span", "style", "table", "tbody", "td", "th", "thead", "title", "tr", "ul", "body",
        ];
        for t in &tags {
            assert!(allowed.contains(t), "unexpected element <{t}> (raw={raw})");
        }
        for a in v["attrs"].as_array().unwrap() {
            let a = a.as_str().unwrap();
            assert!(
                !a.starts_with("on") && a != "src" && a != "href",
                "attribute {a} (raw={raw})"
            );
        }
        let scripts = v["scripts"].as_array().unwrap();
        assert_eq!(scripts.len(), 1);
        assert_eq!(scripts[0], SCRIPT);
        assert_eq!(page.matches("<style>").count(), 1);
    }
}

#[test]
fn the_policy_allows_our_script_and_nothing_else() {
    let csp = content_security_policy();
    assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"));
    // The hash is of the script as embedded: recompute it with a tool we did not write.
    if have_tools(&["openssl"]) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.js");
        std::fs::write(&p, SCRIPT).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl dgst -sha256 -binary {} | openssl base64 -A",
                p.display()
            ))
            .output()
            .unwrap();
        let b64 = String::from_utf8(out.stdout).unwrap();
        assert!(
            csp.contains(&format!("'sha256-{}'", b64.trim())),
            "{csp} vs {b64}"
        );
    }
}

#[test]
fn long_timelines_keep_every_artifact_event() {
    let ev = |secs: i64, source: &str| {
        Event::new(
            Timestamp { secs, nanos: 0 },
            source,
            "k",
            String::new(),
            Evidence::default(),
        )
    };
    let mut all: Vec<Event> = (0..MAX_HTML_TIMELINE as i64 + 10)
        .map(|i| ev(i, "filesystem"))
        .collect();
    all.push(ev(5, "auth.log"));
    crate::timeline::sort(&mut all);
    let shown = select_timeline(&all);
    assert_eq!(shown.len(), MAX_HTML_TIMELINE);
    assert!(shown.iter().any(|e| e.source == "auth.log"));
    assert!(shown.windows(2).all(|w| w[0].time <= w[1].time));
    assert_eq!(
        shown.last().unwrap().time.secs,
        MAX_HTML_TIMELINE as i64 + 9
    );
}
