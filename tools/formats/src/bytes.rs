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
