//! `vestige_formats::vmdk::Vmdk` over arbitrary bytes written to a file: a sparse extent
//! (`KDMV`, streamOptimized footer, `COWD`) or a descriptor (its extents and parent resolve
//! in the same private directory, where nothing else exists).
//!
//! Invariants: opening and reading never panic and never hang; every failure is a
//! `FormatError` (open) or an `io::Error` carrying its message (read); a read inside the
//! disk returns the whole request clipped to the disk's end, and 0 at or past the end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use vestige_formats::vmdk::Vmdk;
use vestige_formats::{FormatError, Image, ReadAt};

fn work_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vestige-fuzz-vmdk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the fuzz directory");
    dir
}

fuzz_target!(|data: &[u8]| {
    let path = work_dir().join("input.vmdk");
    std::fs::write(&path, data).expect("write the input");
    let image = match Vmdk::open(&path) {
        Ok(image) => image,
        Err(
            FormatError::Invalid { .. } | FormatError::Unsupported { .. } | FormatError::Io { .. },
        ) => return,
    };
    let info = image.info();
    assert_eq!(info.format, "vmdk");
    let size = image.size();
    assert_eq!(info.virtual_size_bytes, size);
    let mut buf = vec![0u8; 200_000];
    for (offset, len) in [
        (0u64, 4096usize),
        (511, 70_000),
        (size / 2, 200_000),
        (size.saturating_sub(1000), 4096),
        (size, 16),
        (u64::MAX - 3, 16),
    ] {
        let Some(chunk) = buf.get_mut(..len) else {
            continue;
        };
        match image.read_at(chunk, offset) {
            Ok(n) => {
                let expected = size.saturating_sub(offset).min(len as u64);
                assert_eq!(n as u64, expected, "read {len} at {offset} of {size}");
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
