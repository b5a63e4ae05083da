//! `vestige_formats::qcow2::Qcow2` over arbitrary bytes written to a temporary file.
//!
//! Invariants: opening never panics and fails only with a `FormatError`; an opened image
//! describes itself as qcow2 with its virtual size; reads never panic, succeed with exactly
//! `min(len, size - offset)` bytes (0 at and past the end) or fail with `InvalidData`/an
//! I/O error carrying a message; the same range read twice (through the caches) and read
//! in pieces gives the same bytes. Each internal snapshot opens or fails the same way.
//!
//! Backing file names containing `/` are blanked before writing, so a backing file can
//! only be looked up next to the input in its private directory (never a device or FIFO
//! elsewhere); relative names still exercise the chain (missing file, self-loop).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use vestige_formats::qcow2::Qcow2;
use vestige_formats::{FormatError, Image, ReadAt};

/// Bytes of each read.
const READ_BYTES: usize = 64 * 1024;
/// Snapshots opened per input.
const SNAPSHOTS_CHECKED: usize = 2;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("vestige-fuzz-qcow2-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("input.qcow2");
    let mut bytes = data.to_vec();
    blank_absolute_backing(&mut bytes);
    std::fs::write(&path, &bytes).expect("write the input");

    match Qcow2::open(&path) {
        Ok(img) => {
            check(&img, &path);
            let ids: Vec<String> = img
                .info()
                .snapshots
                .iter()
                .take(SNAPSHOTS_CHECKED)
                .map(|s| s.id.clone())
                .collect();
            for id in ids {
                match Qcow2::open_snapshot(&path, &id) {
                    Ok(snap) => check(&snap, &path),
                    Err(e) => check_error(&e),
                }
            }
        }
        Err(e) => check_error(&e),
    }
});

/// Zeroes `backing_file_offset` if the name it points to has a `/` (or runs off the input).
fn blank_absolute_backing(bytes: &mut [u8]) {
    let be = |b: &[u8], at: usize, n: usize| -> Option<u64> {
        let s = b.get(at..at + n)?;
        Some(s.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    };
    let (Some(off), Some(len)) = (be(bytes, 8, 8), be(bytes, 16, 4)) else {
        return;
    };
    if off == 0 {
        return;
    }
    let name = usize::try_from(off)
        .ok()
        .and_then(|o| bytes.get(o..o.checked_add(usize::try_from(len).ok()?)?));
    if name.is_none_or(|n| n.contains(&b'/')) {
        if let Some(field) = bytes.get_mut(8..16) {
            field.fill(0);
        }
    }
}

/// An error says what: a message, and for a bad structure its field.
fn check_error(e: &FormatError) {
    assert!(!e.to_string().is_empty());
    if let FormatError::Invalid { field, .. } = e {
        assert!(!field.is_empty());
    }
}

fn check(img: &Qcow2, path: &PathBuf) {
    let info = img.info();
    assert_eq!(info.format, "qcow2");
    assert_eq!(info.virtual_size_bytes, img.size());
    assert_eq!(info.files.first(), Some(path));
    let size = img.size();
    let ranges = [
        0,
        size / 2,
        size.saturating_sub(READ_BYTES as u64 / 2 + 3),
        size.saturating_sub(1),
        size,
        u64::MAX - 10,
    ];
    for off in ranges {
        read_range(img, off);
    }
}

fn read_range(img: &Qcow2, off: u64) {
    let size = img.size();
    let expected = usize::try_from(size.saturating_sub(off).min(READ_BYTES as u64)).unwrap_or(0);
    let mut whole = vec![0u8; READ_BYTES];
    match img.read_at(&mut whole, off) {
        Ok(n) => {
            assert_eq!(n, expected, "read at {off} of {size}");
            // Again, through the caches, and in pieces.
            let mut again = vec![0u8; READ_BYTES];
            assert_eq!(
                img.read_at(&mut again, off)
                    .expect("a read that worked works again"),
                n
            );
            assert_eq!(whole[..n], again[..n]);
            let mut pieces = vec![0u8; n];
            let mut done = 0;
            for chunk in pieces.chunks_mut(4099) {
                let k = img
                    .read_at(chunk, off + done as u64)
                    .expect("part of a read that worked");
                assert_eq!(k, chunk.len());
                done += k;
            }
            assert_eq!(whole[..n], pieces[..]);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
