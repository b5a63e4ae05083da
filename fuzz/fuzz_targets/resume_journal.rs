//! `resume::parse_journal` (resume.journal, read back from the evidence medium by
//! `acquire disk --resume`).
//!
//! Invariants when it parses: the frames add up (each restores the header's chunk size but
//! the last, never more than the source holds), every unreadable range lies inside the
//! journaled bytes, and an error names the journal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use vestige_acquire::resume::{parse_journal, ResumeError};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/resume.journal");
    match parse_journal(data, path) {
        Ok(j) => {
            let chunk = j.header.chunk_size_bytes;
            let size = j.header.source.size_bytes;
            let mut bytes = 0u64;
            for f in &j.frames {
                assert!(f.d > 0 && u64::from(f.d) <= chunk);
                bytes += u64::from(f.d);
            }
            assert!(bytes <= size);
            for r in &j.rescue.unreadable {
                assert!(r.offset_bytes + r.length_bytes <= bytes);
            }
        }
        Err(ResumeError::Journal { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
});
