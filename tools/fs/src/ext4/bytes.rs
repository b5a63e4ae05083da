//! Little-endian fields read with bounds checks: a field past the end of its buffer reads
//! as 0 (callers size their buffers from the structure's fixed layout first).

/// The `u16` at `at`, or 0 past the end.
pub fn le16(b: &[u8], at: usize) -> u16 {
    at.checked_add(2)
        .and_then(|end| b.get(at..end))
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_le_bytes)
}

/// The `u32` at `at`, or 0 past the end.
pub fn le32(b: &[u8], at: usize) -> u32 {
    at.checked_add(4)
        .and_then(|end| b.get(at..end))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_le_bytes)
}

/// `n` rounded up to a multiple of 4.
pub fn round4(n: usize) -> usize {
    n.saturating_add(3) & !3
}
