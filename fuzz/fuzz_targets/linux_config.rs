//! Linux configuration and history files from untrusted hands: the same bytes through
//! every text parser of `vestige_analyze::linux` (dpkg status and log, gzip-rotated logs,
//! shell history, authorized_keys lines, ifupdown, netplan, NetworkManager keyfiles,
//! shadow password fields).
//!
//! Invariants: no panic, no hang; every string taken from the input is display-safe;
//! line numbers and offsets point inside the input; the decompressed size respects its
//! cap; history counts agree (timed ≤ all, kept ≤ all).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_analyze::collected::Collected;
use vestige_analyze::event::Evidence;
use vestige_analyze::linux::{accounts, history, network, packages, ssh};

fn assert_display_safe(s: &str) {
    assert!(
        s.bytes().all(|b| (0x20..0x7F).contains(&b)),
        "unsafe string {s:?}"
    );
}

fn assert_inside(e: &Evidence, len: u64) {
    if let Some(o) = e.offset {
        assert!(o <= len, "offset {o} beyond {len}");
    }
    if let Some(l) = e.line {
        assert!(l >= 1 && l <= len.saturating_add(1), "line {l}");
    }
}

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let file = Evidence::default();

    let (installed, list) = packages::parse_status(data, &file);
    assert!(installed <= list.len() || list.len() == vestige_analyze::linux::MAX_ITEMS);
    for p in &list {
        for s in [&p.name, &p.status, &p.version, &p.architecture] {
            assert_display_safe(s);
        }
        assert_inside(&p.source, len);
    }

    let mut out = Collected::default();
    packages::parse_dpkg_log(data, &file, "fuzz", &|s| s.checked_sub(3600), &mut out);
    for e in &out.events {
        assert_display_safe(&e.description);
        e.fields.values().for_each(|v| assert_display_safe(v));
        assert_inside(&e.evidence, len);
    }

    let cap = 1 << 20;
    if let Ok((bytes, truncated)) = packages::gunzip(data, cap) {
        assert!(bytes.len() <= cap);
        assert!(!truncated || bytes.len() == cap);
    }

    let mut out = Collected::default();
    let h = history::parse(data, &file, "fuzz", "bash", &mut out);
    assert!(h.timed_count <= h.command_count);
    assert!(h.last_commands.len() <= h.command_count);
    h.last_commands.iter().for_each(|c| assert_display_safe(c));
    for e in &out.events {
        assert_display_safe(&e.description);
        assert_inside(&e.evidence, len);
    }
    for f in &out.findings {
        assert_display_safe(&f.title);
        assert_display_safe(&f.description);
    }

    for line in data.split(|&b| b == b'\n').take(1000) {
        if let Some(k) = ssh::parse_key_line(line) {
            for s in [&k.key_type, &k.comment, &k.options, &k.fingerprint] {
                assert_display_safe(s);
            }
        }
        assert_display_safe(&accounts::password_state(line));
    }

    for c in [
        network::parse_interfaces(data, file.clone()),
        network::parse_netplan(data, file.clone()),
    ] {
        c.interfaces.iter().for_each(|s| assert_display_safe(s));
        c.addresses.iter().for_each(|s| assert_display_safe(s));
        c.lines.iter().for_each(|s| assert_display_safe(s));
    }
    let nm = network::parse_keyfile(data, file);
    for s in [
        &nm.id,
        &nm.kind,
        &nm.interface_name,
        &nm.ssid,
        &nm.ipv4_method,
    ]
    .into_iter()
    .flatten()
    {
        assert_display_safe(s);
    }
    nm.addresses.iter().for_each(|s| assert_display_safe(s));
});
