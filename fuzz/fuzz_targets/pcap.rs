//! pcap/pcapng captures from untrusted hands: `PcapReader` over the bytes, then
//! `summarize` and `timeline_events` on the same bytes.
//!
//! Invariants: no panic; iteration ends, with at most one error and nothing after it;
//! every packet starts inside the input, keeps at most `MAX_CAPTURED_BYTES` and at most
//! the input's length, and packet indices count up from 0; the summary's counts agree
//! with the reader's and with each other (every decodable packet is in exactly one
//! conversation); every string taken from the capture is display-safe.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_analyze::pcap::{summarize, timeline_events, PcapReader, MAX_CAPTURED_BYTES};

fn assert_display_safe(s: &str) {
    assert!(
        s.bytes().all(|b| (0x20..0x7F).contains(&b)),
        "unsafe string {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let Ok(reader) = PcapReader::new(&data) else {
        assert!(summarize(&data, "fuzz").is_err());
        return;
    };
    let mut packets = 0u64;
    let mut errors = 0u64;
    let mut captured_bytes = 0u64;
    for item in reader {
        assert_eq!(errors, 0, "an item after an error");
        match item {
            Ok(p) => {
                assert_eq!(p.index, packets);
                assert!(p.file_offset < len);
                assert!(p.captured.len() as u64 <= u64::from(MAX_CAPTURED_BYTES));
                assert!(p.file_offset + p.captured.len() as u64 <= len);
                captured_bytes += p.captured.len() as u64;
                packets += 1;
            }
            Err(_) => errors += 1,
        }
        // Each step moves at least 12 bytes forward.
        assert!(packets <= len / 12 + 1);
    }
    let s = summarize(&data, "fuzz").expect("the reader accepted the header");
    assert_eq!(s.packets, packets);
    assert_eq!(s.errors.len() as u64, errors);
    assert_eq!(s.captured_bytes, captured_bytes);
    assert_eq!(s.link_types.iter().map(|l| l.packets).sum::<u64>(), packets);
    assert_eq!(
        s.undecodable_reasons.values().sum::<u64>(),
        s.undecodable_packets
    );
    let in_conversations: u64 = s
        .conversations
        .iter()
        .map(|c| c.packets_a_to_b + c.packets_b_to_a)
        .sum();
    assert_eq!(in_conversations + s.undecodable_packets, packets);
    assert!(s.packets_without_timestamp <= packets);
    assert_eq!(s.first.is_some(), s.last.is_some());
    if let (Some(f), Some(l)) = (&s.first, &s.last) {
        assert!(f.timestamp_ns <= l.timestamp_ns);
    }
    for w in s.conversations.windows(2) {
        let total = |c: &vestige_analyze::pcap::Conversation| c.bytes_a_to_b + c.bytes_b_to_a;
        assert!(
            total(&w[0]) >= total(&w[1]),
            "conversations sorted by bytes"
        );
    }
    for d in &s.dns {
        assert_display_safe(&d.query_name);
        for a in &d.answers {
            assert_display_safe(&a.name);
            assert_display_safe(&a.data);
        }
    }
    for t in &s.tls_client_hellos {
        t.server_name.as_deref().map(assert_display_safe);
    }
    for h in &s.http_requests {
        h.host.as_deref().map(assert_display_safe);
        assert_display_safe(&h.path);
        assert!(h.path.len() <= 200 * 4);
    }
    let events = timeline_events(&s);
    for e in &events {
        assert_display_safe(&e.description);
    }
    assert!(events
        .windows(2)
        .all(|w| w[0].timestamp_ns <= w[1].timestamp_ns));
});
