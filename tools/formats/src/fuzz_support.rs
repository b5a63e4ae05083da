//! Shared bodies of the `image_*` fuzz targets (not part of the API; hidden from docs).

use crate::Image;
use std::path::PathBuf;

/// Writes the fuzz input to `vestige-fuzz-<name>-<pid>.<ext>` in the temp directory and
/// returns its path.
///
/// # Panics
/// If the file cannot be written.
#[must_use]
pub fn write_input(name: &str, ext: &str, data: &[u8]) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("vestige-fuzz-{name}-{}.{ext}", std::process::id()));
    std::fs::write(&path, data).expect("write the input");
    path
}

/// The invariants every opened image keeps: `info` describes it as `format` with its
/// size; a read that succeeds returns exactly the bytes up to the disk's end (short only
/// at the end, 0 past it); a read that fails carries a message. With `invalid_data`, a
/// failed read must also be `InvalidData`.
///
/// # Panics
/// When an invariant does not hold (that is the point).
pub fn exercise(img: &dyn Image, format: &str, invalid_data: bool) {
    let size = img.size();
    let info = img.info();
    assert_eq!(info.virtual_size_bytes, size);
    assert_eq!(info.format, format);
    let mut buf = vec![0u8; 64 << 10];
    let mut offsets = vec![
        0,
        511,
        size / 2,
        size.saturating_sub(100),
        size,
        u64::MAX - 3,
    ];
    // A few reads across the disk (each block at most once, bounded).
    let step = (size / 16).max(1);
    offsets.extend((0..16).map(|i| i * step + 7));
    for offset in offsets {
        match img.read_at(&mut buf, offset) {
            Ok(n) => {
                let expected = size.saturating_sub(offset).min(buf.len() as u64);
                assert_eq!(n as u64, expected, "read at {offset} of {size}");
            }
            Err(e) => {
                if invalid_data {
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
                }
                assert!(!e.to_string().is_empty());
            }
        }
    }
}
