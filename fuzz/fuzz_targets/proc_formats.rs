//! The /proc, /sys and utmp parsers of vestige-live. The first byte picks the parser
//! (modulo the number of parsers); the rest is its input, as lossy UTF-8 text for the text
//! formats and as bytes for utmp.
//!
//! Invariants: no panic or hang on any input; every error names a line that exists;
//! strings stay within `MAX_STRING_BYTES`; a parsed inet socket, written back in the
//! kernel's format, parses to the same socket (the address decoding is exact);
//! a parsed route's prefix fits its family; utmp records lie inside the input; the maps
//! summary's counts are consistent and its lists capped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use vestige_live::proc_net::{parse_inet_sockets, parse_unix_sockets, InetTable, Socket};
use vestige_live::table::{ParseError, MAX_STRING_BYTES};
use vestige_live::{
    clock, interfaces, maps, modules, mountinfo, neighbours, proc_pid, routes, utmp,
};

/// Every line number in `errors` is a line of `text`.
fn check_errors(errors: &[ParseError], text: &str) {
    let lines = text.lines().count();
    for e in errors {
        let line = match e {
            ParseError::Field { line, .. } | ParseError::TooFewFields { line, .. } => *line,
            _ => continue,
        };
        assert!(
            line >= 1 && line <= lines,
            "{e} names line {line} of {lines}"
        );
    }
}

fn check_len(s: &str) {
    assert!(s.len() <= MAX_STRING_BYTES, "{} bytes kept", s.len());
}

/// An address as the kernel prints it: native-endian hex words.
fn hex_address(addr: IpAddr) -> String {
    let octets: Vec<u8> = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    octets
        .chunks_exact(4)
        .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .collect()
}

/// A socket written back as a /proc/net/tcp line.
fn socket_line(s: &Socket) -> String {
    format!(
        "   0: {}:{:04X} {}:{:04X} {:02X} 00000000:00000000 00:00000000 00000000 {} 0 {} 1 0",
        hex_address(s.local_address),
        s.local_port,
        hex_address(s.remote_address),
        s.remote_port,
        s.state_code,
        s.uid,
        s.inode
    )
}

const TABLES: [InetTable; 6] = InetTable::ALL;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let text = text.as_ref();
    match selector % 16 {
        n @ 0..=5 => {
            let table = TABLES[usize::from(n)];
            let p = parse_inet_sockets(text, table);
            check_errors(&p.errors, text);
            for s in &p.items {
                assert_eq!(s.protocol, table.name());
                let line = socket_line(s);
                let again = parse_inet_sockets(&format!("header\n{line}\n"), table);
                assert_eq!(again.items.as_slice(), std::slice::from_ref(s), "{line}");
            }
        }
        6 => {
            let p = parse_unix_sockets(text);
            check_errors(&p.errors, text);
            for s in &p.items {
                if let Some(path) = &s.path {
                    assert!(!path.is_empty());
                    check_len(path);
                }
            }
        }
        7 => {
            let p = routes::parse_ipv4_routes(text);
            check_errors(&p.errors, text);
            assert!(p
                .items
                .iter()
                .all(|r| r.prefix_len <= 32 && r.destination.is_ipv4()));
            let p = routes::parse_ipv6_routes(text);
            check_errors(&p.errors, text);
            assert!(p
                .items
                .iter()
                .all(|r| r.prefix_len <= 128 && r.destination.is_ipv6()));
        }
        8 => {
            let p = neighbours::parse_arp(text);
            check_errors(&p.errors, text);
            for n in &p.items {
                check_len(&n.hw_address);
                check_len(&n.device);
            }
        }
        9 => {
            let p = modules::parse_modules(text);
            check_errors(&p.errors, text);
            for m in &p.items {
                check_len(&m.name);
                m.used_by.iter().for_each(|u| check_len(u));
            }
            if let Ok(t) = modules::parse_tainted(text) {
                let known: u64 = t.flags.iter().map(|f| 1u64 << f.bit).sum();
                assert_eq!(known | t.unknown_bits, t.value);
            }
        }
        10 => {
            let p = mountinfo::parse_mountinfo(text);
            check_errors(&p.errors, text);
            for m in &p.items {
                check_len(&m.mount_point);
                check_len(&m.source);
                assert!(m.optional_fields.len() <= 64);
            }
            let decoded = mountinfo::unescape_octal(text);
            assert!(decoded.len() <= text.len().saturating_mul(3));
        }
        11 => {
            if let Ok(s) = proc_pid::parse_status(text) {
                assert!(s.name.as_ref().is_none_or(|n| n.len() <= 64));
            }
            let _ = interfaces::parse_sysfs_flags(text);
        }
        12 => {
            if let Ok(s) = proc_pid::parse_stat(text) {
                assert!(s.comm.len() <= 64);
            }
            let nul = proc_pid::split_nul(rest, 16, 32);
            assert!(nul.items.len() <= 16 && nul.items.iter().all(|i| i.len() <= 32));
        }
        13 => {
            let p = utmp::parse_utmp(rest);
            assert!(p.items.len() <= rest.len() / utmp::UTMP_RECORD_BYTES);
            assert!(p.errors.len() <= 1);
            for l in &p.items {
                assert_eq!(l.record_offset % utmp::UTMP_RECORD_BYTES, 0);
                assert!(l.record_offset + utmp::UTMP_RECORD_BYTES <= rest.len());
            }
        }
        14 => {
            let p = maps::parse_maps(text);
            check_errors(&p.errors, text);
            let s = maps::summarise_maps(&p.items);
            assert_eq!(s.mappings, p.items.len() as u64);
            assert!(
                s.anonymous_executable <= s.executable && s.writable_executable <= s.executable
            );
            assert!(s.executable <= s.mappings);
            assert!(
                s.files.len() <= maps::MAX_MAPPED_FILES
                    && s.deleted_files.len() <= maps::MAX_MAPPED_FILES
            );
        }
        _ => {
            if let Ok(u) = clock::parse_uptime(text) {
                assert!(u.is_finite() && u >= 0.0);
            }
            let _ = clock::parse_btime(text);
            let (date, time) = text.split_once('\n').unwrap_or((text, ""));
            if let Ok(t) = clock::parse_rtc(date, time) {
                assert!(!clock::rfc3339(t).is_empty());
            }
        }
    }
});
