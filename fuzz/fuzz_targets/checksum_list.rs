//! `parse_checksum_list` (the signed list of an evidence item, `SHA256 (name) = hex`).
//!
//! Invariants when a list parses: it is not empty; every name is a plain file name (not
//! empty, not `.` or `..`, no `/`, `\`, `:`, `)` or control characters, at most 255 bytes)
//! listed once, so a verifier can join it to the item directory without leaving it; every
//! digest is lowercase hex of the algorithm's length; `format_checksum_list` gives the input
//! back byte for byte (the syntax is strict) and re-parses to the same lines; each line is
//! accepted by `ChecksumLine::new`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use vestige_evidence::signify::{
    format_checksum_list, parse_checksum_list, validate_file_name, ChecksumLine,
    CHECKSUM_NAME_MAX_BYTES,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        // Exercise the parser on the lossy text too; nothing to compare against.
        let _ = parse_checksum_list(&String::from_utf8_lossy(data));
        return;
    };
    let Ok(lines) = parse_checksum_list(text) else {
        return;
    };
    assert!(!lines.is_empty());
    let mut names = HashSet::new();
    for line in &lines {
        let name = line.name.as_str();
        assert!(!name.is_empty());
        assert!(name != "." && name != "..", "dot name {name:?}");
        assert!(
            !name.contains(['/', '\\', ':', ')']),
            "separator in {name:?}"
        );
        assert!(
            !name.chars().any(char::is_control),
            "control char in {name:?}"
        );
        assert!(name.len() <= CHECKSUM_NAME_MAX_BYTES);
        assert!(validate_file_name(name).is_ok());
        assert!(names.insert(name), "duplicate name {name:?}");
        let want = match line.algorithm.as_str() {
            "SHA256" => 64,
            "SHA512" => 128,
            other => panic!("unknown algorithm {other:?} accepted"),
        };
        assert_eq!(line.hex.len(), want);
        assert!(line
            .hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        let rebuilt = ChecksumLine::new(&line.algorithm, &line.name, &line.hex)
            .expect("a parsed line is a valid entry");
        assert_eq!(&rebuilt, line);
    }
    let formatted = format_checksum_list(&lines);
    assert_eq!(formatted, text, "formatting a parsed list changes it");
    let again = parse_checksum_list(&formatted).expect("formatted list parses");
    assert_eq!(again, lines);
});
