//! The reflected CRC-32 (polynomial 0xEDB88320) in the two forms volume systems use: GPT's
//! standard one (UEFI spec 2.10 §5.3.2: initial and final value inverted) and LVM2's
//! (`calc_crc` in lib/misc/crc.c: initial 0xf597a6cf, no final inversion).

/// The byte-at-a-time table, built at compile time.
#[allow(clippy::indexing_slicing)] // compile-time, i < 256
const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        #[allow(clippy::cast_possible_truncation)]
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
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

/// The raw register update: `crc` run over `data`, without any inversion.
fn update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        let i = usize::from(crc.to_le_bytes()[0] ^ b);
        crc = TABLE.get(i).copied().unwrap_or(0) ^ (crc >> 8);
    }
    crc
}

/// The CRC-32 of GPT headers and partition-entry arrays (the zlib/IEEE one).
pub(crate) fn gpt(data: &[u8]) -> u32 {
    !update(!0, data)
}

/// LVM2's checksum of labels, metadata-area headers and metadata text.
pub(crate) fn lvm(data: &[u8]) -> u32 {
    update(0xf597_a6cf, data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn gpt_crc_is_the_standard_crc32() {
        assert_eq!(super::gpt(b"123456789"), 0xCBF4_3926);
    }
}
