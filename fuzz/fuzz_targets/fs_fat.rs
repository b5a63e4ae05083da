//! `vestige_fs::fat::Fat` over arbitrary bytes taken as the volume.
//!
//! Invariants: opening never panics and fails with an error that says what; an opened
//! file system walks to the end (bounded: cluster-chain cycles, directory loops, entry
//! caps) and every file and directory it finds can be opened and read without a panic;
//! a read returns at most the bytes asked and never past the file's size; every reader
//! error carries a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_fs::fat::{probe, Fat};
use vestige_fs::fuzz_support::{check_error, exercise, Reads};
use vestige_fs::ReadAt;

fuzz_target!(|data: &[u8]| {
    let vol: &dyn ReadAt = &data;
    let _ = probe(vol);
    match Fat::open(vol, "fuzz") {
        Ok(fs) => exercise(&fs, "fat", Reads::Within),
        Err(e) => check_error(&e),
    }
});
