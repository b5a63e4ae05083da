//! `custody::verify_chain` (custody.jsonl, the hash-chained custody log). The input is
//! written to a per-process temporary file, since the function reads a path.
//!
//! Invariants when the chain verifies: one entry per non-empty line, `seq` 1, 2, …, the
//! first `prev_sha256` is `GENESIS` and every other is the SHA-256 of the line before.
//! Errors name a line that exists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use vestige_evidence::custody::{verify_chain, CustodyError, GENESIS};
use vestige_evidence::fsutil::sha256_hex;

fn log_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("vestige-fuzz-custody-{}.jsonl", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = log_path();
    std::fs::write(path, data).expect("write the temporary custody log");
    let result = verify_chain(path);
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    match result {
        Ok(entries) => {
            let non_empty: Vec<&[u8]> = lines.iter().copied().filter(|l| !l.is_empty()).collect();
            assert_eq!(entries.len(), non_empty.len());
            let mut prev = GENESIS.to_string();
            for (i, (entry, line)) in entries.iter().zip(&non_empty).enumerate() {
                assert_eq!(entry.seq, i as u64 + 1);
                assert_eq!(entry.prev_sha256, prev);
                prev = sha256_hex(line);
            }
        }
        Err(CustodyError::BadEntry { line, .. })
        | Err(CustodyError::Chain { line, .. })
        | Err(CustodyError::Sequence { line, .. }) => {
            assert!(
                line >= 1 && line <= lines.len(),
                "error names line {line} of {}",
                lines.len()
            );
        }
        Err(CustodyError::Io { .. }) => panic!("the temporary log is readable"),
        Err(_) => {}
    }
});
