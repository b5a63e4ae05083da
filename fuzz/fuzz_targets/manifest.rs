//! `Manifest::from_json` (manifest.json of an evidence item).
//!
//! Invariants when a manifest parses: its format is `MANIFEST_FORMAT`; `to_json` re-parses
//! to an equal manifest, and serialising that again gives the same bytes (one canonical
//! form, so re-hashing a re-written manifest is stable).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use vestige_evidence::manifest::{Manifest, MANIFEST_FORMAT};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/manifest.json");
    let Ok(m) = Manifest::from_json(data, path) else {
        return;
    };
    assert_eq!(m.format, MANIFEST_FORMAT);
    let json = m.to_json();
    let back = Manifest::from_json(&json, path).expect("own JSON parses");
    assert_eq!(back, m);
    assert_eq!(back.to_json(), json, "to_json is not stable");
});
