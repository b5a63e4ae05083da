//! VDI images from untrusted hands: `Vdi::open` over the bytes (written to a temp file, as
//! the reader takes a path), then `info` and reads across the disk.
//!
//! Invariants: no panic, no hang, memory bounded by the reader's caps; a read that succeeds
//! returns exactly the bytes up to the disk's end (short only at the end, 0 past it); a
//! read that fails is an `io::Error` carrying the `FormatError`'s message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_formats::fuzz_support::{exercise, write_input};
use vestige_formats::vdi::Vdi;

fuzz_target!(|data: &[u8]| {
    let path = write_input("vdi", "vdi", data);
    if let Ok(img) = Vdi::open(&path) {
        exercise(&img, "vdi", false);
    }
    let _ = std::fs::remove_file(&path);
});
