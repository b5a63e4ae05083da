//! VHD images from untrusted hands: `Vhd::open` over the bytes (written to a temp file, as
//! the reader takes a path), then `info` and reads across the disk.
//!
//! Invariants: no panic, no hang, memory bounded by the reader's caps; a read that succeeds
//! returns exactly the bytes up to the disk's end (short only at the end, 0 past it); a
//! read that fails is an `io::Error` carrying the `FormatError`'s message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_formats::fuzz_support::{exercise, write_input};
use vestige_formats::vhd::Vhd;

fuzz_target!(|data: &[u8]| {
    let path = write_input("vhd", "vhd", data);
    if let Ok(img) = Vhd::open(&path) {
        exercise(&img, "vhd", false);
    }
    let _ = std::fs::remove_file(&path);
});
