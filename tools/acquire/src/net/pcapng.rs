//! A pcapng writer (draft-ietf-opsawg-pcapng): one Section Header Block, one Interface
//! Description Block (Ethernet or the interface's link type, nanosecond timestamps), then
//! one Enhanced Packet Block per packet. Every block is padded to 32 bits and carries its
//! length at both ends, so tcpdump, tshark and Wireshark read the file as written.

/// Block types.
const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
/// The byte-order magic of the section header.
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Option codes.
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u16 = 1;

fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    let value = value.get(..usize::from(len)).unwrap_or_default();
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
    out.extend(std::iter::repeat_n(0u8, pad4(value.len())));
}

fn block(block_type: u32, body: &[u8]) -> Vec<u8> {
    let total = u32::try_from(12 + body.len()).unwrap_or(u32::MAX);
    let mut b = Vec::with_capacity(body.len() + 12);
    b.extend_from_slice(&block_type.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

/// The Section Header Block and the Interface Description Block that start the file.
#[must_use]
pub fn header(
    application: &str,
    comment: &str,
    interface: &str,
    link_type: u16,
    snap_len: u32,
) -> Vec<u8> {
    let mut shb = Vec::new();
    shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes()); // major
    shb.extend_from_slice(&0u16.to_le_bytes()); // minor
    shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length: not given
    option(&mut shb, SHB_USERAPPL, application.as_bytes());
    option(&mut shb, OPT_COMMENT, comment.as_bytes());
    option(&mut shb, OPT_END, &[]);
    let mut idb = Vec::new();
    idb.extend_from_slice(&link_type.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&snap_len.to_le_bytes());
    option(&mut idb, IF_NAME, interface.as_bytes());
    option(&mut idb, IF_TSRESOL, &[9]); // 10^-9 s
    option(&mut idb, OPT_END, &[]);
    let mut out = block(SHB, &shb);
    out.extend(block(IDB, &idb));
    out
}

/// An Enhanced Packet Block: `data` (at most the snap length) of a packet `original_len`
/// bytes long, received at `timestamp_ns` nanoseconds since the Unix epoch.
#[must_use]
pub fn packet(timestamp_ns: u64, data: &[u8], original_len: u32) -> Vec<u8> {
    let captured = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut epb = Vec::with_capacity(data.len() + 24);
    epb.extend_from_slice(&0u32.to_le_bytes()); // interface 0
    epb.extend_from_slice(
        &u32::try_from(timestamp_ns >> 32)
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    epb.extend_from_slice(
        &u32::try_from(timestamp_ns & 0xffff_ffff)
            .unwrap_or(0)
            .to_le_bytes(),
    );
    epb.extend_from_slice(&captured.to_le_bytes());
    epb.extend_from_slice(&original_len.max(captured).to_le_bytes());
    epb.extend_from_slice(data);
    epb.extend(std::iter::repeat_n(0u8, pad4(data.len())));
    block(EPB, &epb)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn blocks_are_framed_and_padded() {
        let h = header("vestige 0.1.0", "case X", "lo", LINKTYPE_ETHERNET, 65535);
        assert_eq!(u32_at(&h, 0), SHB);
        let shb_len = u32_at(&h, 4) as usize;
        assert_eq!(shb_len % 4, 0);
        assert_eq!(u32_at(&h, shb_len - 4), shb_len as u32);
        assert_eq!(u32_at(&h, 8), BYTE_ORDER_MAGIC);
        assert_eq!(u32_at(&h, shb_len), IDB);
        assert_eq!(h.len(), shb_len + u32_at(&h, shb_len + 4) as usize);
        let p = packet(1_700_000_000_123_456_789, &[1, 2, 3, 4, 5], 60);
        assert_eq!(p.len(), 12 + 20 + 8);
        assert_eq!(u32_at(&p, 0), EPB);
        assert_eq!(u32_at(&p, 20), 5);
        assert_eq!(u32_at(&p, 24), 60);
        let ts = (u64::from(u32_at(&p, 12)) << 32) | u64::from(u32_at(&p, 16));
        assert_eq!(ts, 1_700_000_000_123_456_789);
        assert_eq!(u32_at(&p, p.len() - 4), p.len() as u32);
    }
}
