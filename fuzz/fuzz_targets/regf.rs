//! Registry hives from untrusted hands: `Hive::open`, then a walk of every key and the
//! data of every value.
//!
//! Invariants: no panic; the walk ends (visited set, depth cap); no key is listed twice;
//! every key and value cell lies inside the input; value data never exceeds the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use vestige_analyze::windows::regf::{Hive, BASE_BLOCK_SIZE, MAX_VALUE_DATA};

fuzz_target!(|data: &[u8]| {
    let Ok(hive) = Hive::open(data) else {
        assert!(data.len() < BASE_BLOCK_SIZE || data.get(..4) != Some(b"regf".as_slice()));
        return;
    };
    let _ = (hive.base.dirty(), hive.base.checksum_ok());
    let (keys, _errors) = hive.walk(100_000);
    let mut seen = HashSet::new();
    for (_path, key) in &keys {
        assert!(seen.insert(key.offset), "key listed twice");
        assert!(key.file_offset() < data.len() as u64);
        let _ = key.security_descriptor();
        let _ = key.last_written();
        for v in key.values().into_iter().flatten() {
            assert!(v.file_offset() < data.len() as u64);
            if let Ok(d) = v.data() {
                assert!(d.len() <= MAX_VALUE_DATA);
            }
            let _ = (v.strings(), v.number());
        }
    }
});
