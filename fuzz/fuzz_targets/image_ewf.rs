//! EWF (E01) images from untrusted hands: `Ewf::open` over the bytes (written to a temp
//! file named `….E01`, as the reader takes a path and finds segments by name), then `info`
//! and reads across the media.
//!
//! Invariants: no panic, no hang, memory bounded by the reader's caps; an open that fails
//! is a `FormatError`; a read that succeeds returns exactly the bytes up to the media's
//! end (short only at the end, 0 past it); a read that fails is an `InvalidData`
//! `io::Error` carrying the `FormatError`'s message. A `next` section makes the reader
//! look for `….E02`, which does not exist: that must be an error naming it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_formats::ewf::Ewf;
use vestige_formats::fuzz_support::{exercise, write_input};
use vestige_formats::Image;

fuzz_target!(|data: &[u8]| {
    let path = write_input("ewf", "E01", data);
    match Ewf::open(&path) {
        Ok(img) => {
            assert_eq!(img.info().files.len(), 1);
            exercise(&img, "e01", true);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let _ = std::fs::remove_file(&path);
});
