#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::event::{Evidence, Timestamp};

fn ev(secs: i64, kind: &str, msg: &str) -> Event {
    Event::new(
        Timestamp { secs, nanos: 5000 },
        "auth.log",
        kind,
        msg.to_string(),
        Evidence {
            volume: "sdb:002".into(),
            path: Some("/var/log/auth.log".into()),
            inode: Some(12),
            line: Some(3),
            offset: Some(100),
            ..Evidence::default()
        },
    )
    .field("address", "198.51.100.23")
}

#[test]
fn rows_load_into_timesketch_and_back_through_the_filter() {
    let mut events = vec![
        ev(1_700_000_100, "ssh_login", "Accepted password for root"),
        ev(
            1_700_000_000,
            "ssh_login_failed",
            "Failed password, for \"root\"",
        ),
    ];
    sort(&mut events);
    let mut jsonl = Vec::new();
    write_jsonl(&events, &mut jsonl).unwrap();
    let text = String::from_utf8(jsonl.clone()).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["datetime"], "2023-11-14T22:13:20.000005000Z");
    assert_eq!(first["timestamp"], 1_700_000_000_000_005_i64);
    assert_eq!(first["timestamp_desc"], "ssh_login_failed");
    assert_eq!(first["evidence"]["line"], 3);

    let mut csv = Vec::new();
    write_csv(&events, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with(CSV_HEADER));
    assert!(csv.contains("\"Failed password, for \"\"root\"\"\""));

    let filter = Filter {
        from_us: Some(1_700_000_050_000_000),
        terms: vec!["kind:ssh_login".into(), "198.51".into()],
        ..Filter::default()
    };
    let mut kept = Vec::new();
    let (read, n) = filter_jsonl(&mut jsonl.as_slice(), &filter, |v| {
        kept.push(v.clone());
        Ok(())
    })
    .unwrap();
    assert_eq!((read, n), (2, 1));
    assert_eq!(kept[0]["message"], "Accepted password for root");
    assert!(filter_jsonl(&mut &b"not json\n"[..], &filter, |_| Ok(())).is_err());
}

#[test]
fn spreadsheet_formulas_from_evidence_do_not_run() {
    assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    assert_eq!(csv_cell("@SUM(A1)"), "\"'@SUM(A1)\"");
    assert_eq!(csv_cell("plain"), "plain");
    assert_eq!(csv_cell("a\nb"), "\"a\nb\"");
}
