//! Fixed-width integer fields read from a byte slice. Bounds are always checked: the
//! plain readers give 0 for a field out of range (callers check lengths first), the
//! `_opt` readers `None`.

/// The `N` bytes at `at`, if they are all inside `b`.
fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    array(b, at).map_or(0, u16::from_le_bytes)
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    le_u32_opt(b, at).unwrap_or(0)
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    array(b, at).map_or(0, u64::from_le_bytes)
}

pub(crate) fn be_u16(b: &[u8], at: usize) -> u16 {
    be_u16_opt(b, at).unwrap_or(0)
}

pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    be_u32_opt(b, at).unwrap_or(0)
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> u64 {
    be_u64_opt(b, at).unwrap_or(0)
}

pub(crate) fn le_u32_opt(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_le_bytes)
}

pub(crate) fn be_u16_opt(b: &[u8], at: usize) -> Option<u16> {
    array(b, at).map(u16::from_be_bytes)
}

pub(crate) fn be_u32_opt(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_be_bytes)
}

pub(crate) fn be_u64_opt(b: &[u8], at: usize) -> Option<u64> {
    array(b, at).map(u64::from_be_bytes)
}

/// The UTF-16LE code units of `b` (an odd last byte is dropped).
pub(crate) fn utf16le_units(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| le_u16(c, 0))
}

/// A GUID in its text form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (lowercase): the first
/// three fields little-endian, the rest as stored (missing bytes read as 0).
pub(crate) fn guid_text(b: &[u8]) -> String {
    let g = |i: usize| b.get(i).copied().unwrap_or(0);
    let mut out = String::with_capacity(36);
    for (k, i) in [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
        .into_iter()
        .enumerate()
    {
        if matches!(k, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{:02x}", g(i)));
    }
    out
}
