//! The Linux log parsers from untrusted hands, all on the same input: systemd journal
//! files, utmp/wtmp/btmp and lastlog records, TZif time zones, syslog lines and the
//! authentication message classifier.
//!
//! Invariants: no panic, no hang; journal entries and data objects lie inside the input
//! and no more entries are read than the input can hold; utmp records are 384 bytes apart
//! inside the input; every string taken from the input is display-safe; a zone converts
//! any instant without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_analyze::logs::{auth, journal, syslog, utmp};
use vestige_analyze::tz::Zone;

fn assert_display_safe(s: &str) {
    assert!(
        s.bytes().all(|b| (0x20..0x7F).contains(&b)),
        "unsafe string {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    if let Ok(j) = journal::parse_journal(data) {
        assert!(j.entries.len() as u64 <= len / 64);
        for e in &j.entries {
            assert!(e.offset + 64 <= len);
            assert!(e.items.iter().all(|&i| i < j.data.len()));
        }
        for d in &j.data {
            assert!(d.offset + 64 <= len);
        }
    }
    let f = utmp::parse_utmp(data);
    for r in &f.records {
        assert_eq!(r.offset, r.index * utmp::UTMP_SIZE as u64);
        assert!(r.offset + utmp::UTMP_SIZE as u64 <= len);
        for s in [&r.user, &r.line, &r.host, &r.id, &r.address] {
            assert_display_safe(s);
        }
        let _ = utmp::event_kind(r, false);
    }
    for r in utmp::parse_lastlog(data) {
        assert!(r.offset + utmp::LASTLOG_SIZE as u64 <= len);
        assert_display_safe(&r.host);
        assert_display_safe(&r.line);
    }
    if let Ok(z) = Zone::from_tzif(data, "fuzz") {
        for t in [i64::MIN, -1 << 40, 0, 1_700_000_000, 1 << 40, i64::MAX] {
            let _ = z.offset_at(t);
            let _ = z.to_utc(t);
        }
        assert_display_safe(&z.describe());
    }
    for line in syslog::lines(data).take(10_000) {
        assert!(line.offset + line.text.len() as u64 <= len);
        if let Some(h) = syslog::parse_line(line.text) {
            if let Some(a) = auth::classify(h.program, h.message) {
                for (_, v) in &a.fields {
                    assert_display_safe(v);
                }
            }
        }
    }
    let years = syslog::infer_years(&[(12, 31, 0), (1, 1, 0)], 1_700_000_000);
    assert_eq!(years.len(), 2);
});
