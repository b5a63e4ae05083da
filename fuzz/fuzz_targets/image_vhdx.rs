//! VHDX images from untrusted hands: `Vhdx::open` over the bytes (written to a temp file, as
//! the reader takes a path), then `info` and reads across the disk.
//!
//! Invariants: no panic, no hang, memory bounded by the reader's caps; a read that succeeds
//! returns exactly the bytes up to the disk's end (short only at the end, 0 past it); a
//! read that fails is an `io::Error` carrying the `FormatError`'s message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_formats::fuzz_support::{exercise, write_input};
use vestige_formats::vhdx::Vhdx;

fuzz_target!(|data: &[u8]| {
    let path = write_input("vhdx", "vhdx", data);
    if let Ok(img) = Vhdx::open(&path) {
        exercise(&img, "vhdx", false);
    }
    let _ = std::fs::remove_file(&path);
});
