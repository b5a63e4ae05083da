//! CRC32C (Castagnoli, reflected polynomial 0x82F63B78) in the raw form file systems use:
//! no inversion in or out, so a caller chains pieces (`crc32c(crc32c(seed, a), b)`) and
//! applies the format's own initial value and final inversion (XFS: `!0` in, `!` out;
//! jbd2: a seed from the journal UUID, no inversion; VHDX: `!0` in, `!` out). Shared by
//! the image readers and the file systems.

/// The byte-at-a-time table, built at compile time (`i < 256`: the index and the cast
/// cannot go wrong, and a const block cannot use `get_mut`).
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// `crc` updated with `data`.
#[must_use]
pub fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        let i = usize::try_from((crc ^ u32::from(b)) & 0xFF).unwrap_or(0);
        crc = (crc >> 8) ^ TABLE.get(i).copied().unwrap_or(0);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::crc32c;

    #[test]
    fn known_values() {
        // RFC 3720 (iSCSI), B.4: 32 bytes of zeros, with the standard inversions.
        assert_eq!(!crc32c(!0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(!crc32c(!0, &[0xFFu8; 32]), 0x62A8_AB43);
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
        // Chaining equals one pass.
        assert_eq!(
            crc32c(crc32c(7, b"1234"), b"56789"),
            crc32c(7, b"123456789")
        );
    }
}
