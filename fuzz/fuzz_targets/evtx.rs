//! Event logs from untrusted hands, through our mapping over the `evtx` crate
//! (`windows::evtx::parse_log`).
//!
//! Invariants: no panic; the record count is bounded; every event's description and
//! fields are display-safe and carry the record number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_analyze::event::Evidence;
use vestige_analyze::windows::evtx::{parse_log, MAX_RECORDS};

fn assert_display_safe(s: &str) {
    assert!(s.bytes().all(|b| (0x20..0x7F).contains(&b)), "unsafe string {s:?}");
}

fuzz_target!(|data: &[u8]| {
    let (state, c) = parse_log(data.to_vec(), &Evidence::default());
    assert!(state.records <= MAX_RECORDS as u64);
    assert!(state.mapped <= state.records);
    for e in &c.events {
        assert!(e.evidence.record.is_some());
        assert_display_safe(&e.description);
        e.fields.values().for_each(|v| assert_display_safe(v));
    }
});
