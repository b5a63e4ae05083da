//! Reader tests on hand-built files in both formats and both byte orders. The builders
//! are shared with the summary tests.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::pcapng::*;
use super::*;

/// Classic pcap: `(seconds, fraction, data, original_len)` records.
pub(crate) fn classic(
    big: bool,
    nano: bool,
    link_type: u32,
    recs: &[(u32, u32, &[u8], u32)],
) -> Vec<u8> {
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = Vec::new();
    f.extend_from_slice(&w32(if nano { PCAP_NANO } else { PCAP_MICRO }));
    f.extend_from_slice(&w16(2));
    f.extend_from_slice(&w16(4));
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&w32(65535));
    f.extend_from_slice(&w32(link_type));
    for (s, frac, data, orig) in recs {
        f.extend_from_slice(&w32(*s));
        f.extend_from_slice(&w32(*frac));
        f.extend_from_slice(&w32(u32::try_from(data.len()).unwrap()));
        f.extend_from_slice(&w32(*orig));
        f.extend_from_slice(data);
    }
    f
}

/// pcapng block builders in one byte order.
#[derive(Clone, Copy)]
pub(crate) struct Ng {
    pub(crate) big: bool,
}

impl Ng {
    fn w32(self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn w16(self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    pub(crate) fn block(self, block_type: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        body.resize(body.len().next_multiple_of(4), 0);
        let total = u32::try_from(body.len() + 12).unwrap();
        let mut b = self.w32(block_type).to_vec();
        b.extend_from_slice(&self.w32(total));
        b.extend_from_slice(&body);
        b.extend_from_slice(&self.w32(total));
        b
    }
    pub(crate) fn shb(self) -> Vec<u8> {
        let mut body = self.w32(NG_BYTE_ORDER_MAGIC).to_vec();
        body.extend_from_slice(&self.w16(1));
        body.extend_from_slice(&self.w16(0));
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        self.block(u32::from_le_bytes(NG_SHB), &body)
    }
    pub(crate) fn idb(self, link_type: u16, tsresol: Option<u8>, tsoffset: Option<i64>) -> Vec<u8> {
        let mut body = self.w16(link_type).to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.w32(0));
        // A comment option first, so the walk has to skip one.
        body.extend_from_slice(&self.w16(1));
        body.extend_from_slice(&self.w16(3));
        body.extend_from_slice(b"hi\0\0");
        if let Some(r) = tsresol {
            body.extend_from_slice(&self.w16(IF_TSRESOL));
            body.extend_from_slice(&self.w16(1));
            body.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = tsoffset {
            body.extend_from_slice(&self.w16(IF_TSOFFSET));
            body.extend_from_slice(&self.w16(8));
            body.extend_from_slice(&if self.big {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            });
        }
        body.extend_from_slice(&[0, 0, 0, 0]);
        self.block(NG_IDB, &body)
    }
    pub(crate) fn epb(self, iface: u32, ts: u64, data: &[u8], orig: u32) -> Vec<u8> {
        let mut body = self.w32(iface).to_vec();
        body.extend_from_slice(&self.w32(u32::try_from(ts >> 32).unwrap()));
        body.extend_from_slice(&self.w32(u32::try_from(ts & 0xFFFF_FFFF).unwrap()));
        body.extend_from_slice(&self.w32(u32::try_from(data.len()).unwrap()));
        body.extend_from_slice(&self.w32(orig));
        body.extend_from_slice(data);
        self.block(NG_EPB, &body)
    }
    pub(crate) fn pb(self, iface: u16, ts: u64, data: &[u8]) -> Vec<u8> {
        let mut b = self.epb(0, ts, data, u32::try_from(data.len()).unwrap());
        b[..4].copy_from_slice(&self.w32(NG_PB));
        b[8..10].copy_from_slice(&self.w16(iface));
        b[10..12].copy_from_slice(&self.w16(7)); // drops
        b
    }
    pub(crate) fn spb(self, orig: u32, data: &[u8]) -> Vec<u8> {
        let mut body = self.w32(orig).to_vec();
        body.extend_from_slice(data);
        self.block(NG_SPB, &body)
    }
}

fn read_all(file: &[u8]) -> (Vec<Packet>, Option<PcapError>) {
    let mut r = PcapReader::new(&file).unwrap();
    let mut packets = Vec::new();
    let mut error = None;
    for item in r.by_ref() {
        match item {
            Ok(p) => packets.push(p),
            Err(e) => error = Some(e),
        }
    }
    assert!(r.next().is_none(), "iteration stays finished");
    (packets, error)
}

#[test]
fn classic_in_both_byte_orders_and_precisions() {
    for (big, nano) in [(false, false), (true, false), (false, true), (true, true)] {
        let frac = if nano { 123_456_789 } else { 123_456 };
        let f = classic(
            big,
            nano,
            0x0400_0001,
            &[(1_700_000_000, frac, b"abc", 60), (5, 0, b"", 0)],
        );
        let slice = f.as_slice();
        let r = PcapReader::new(&slice).unwrap();
        let want = if nano {
            CaptureFormat::PcapNanosecond
        } else {
            CaptureFormat::Pcap
        };
        assert_eq!(r.format(), want);
        let (p, err) = read_all(&f);
        assert!(err.is_none());
        assert_eq!(p.len(), 2);
        let ns = if nano {
            1_700_000_000_123_456_789
        } else {
            1_700_000_000_123_456_000
        };
        assert_eq!(p[0].timestamp_ns, Some(ns));
        // The FCS bits above the low 16 do not leak into the link type.
        assert_eq!(
            (p[0].link_type, p[0].original_len, p[0].file_offset),
            (1, 60, 24)
        );
        assert_eq!(p[0].captured, b"abc");
        assert_eq!(
            (p[1].index, p[1].file_offset, p[1].timestamp_ns),
            (1, 24 + 16 + 3, Some(5_000_000_000))
        );
    }
}

#[test]
fn pcapng_blocks_sections_and_resolutions() {
    for big in [false, true] {
        let ng = Ng { big };
        let other = Ng { big: !big };
        let mut f = ng.shb();
        f.extend(ng.idb(1, None, None));
        f.extend(ng.idb(101, Some(9), Some(-1)));
        f.extend(ng.epb(0, 1_500_000, b"eth", 100));
        f.extend(ng.block(0xBAD, b"unknown block, skipped"));
        f.extend(ng.epb(1, 2_000_000_123, b"raw", 3));
        let spb_at = f.len() as u64;
        f.extend(ng.spb(10, b"0123456789"));
        f.extend(ng.pb(1, 7, b"pb"));
        // A second section in the other byte order: interfaces start again.
        f.extend(other.shb());
        f.extend(other.idb(113, Some(0x80 | 10), None));
        f.extend(other.epb(0, 2048, b"sll", 3));
        let (p, err) = read_all(&f);
        assert!(err.is_none(), "{err:?}");
        let ts: Vec<_> = p.iter().map(|p| p.timestamp_ns).collect();
        assert_eq!(
            ts,
            [
                Some(1_500_000_000),
                Some(1_000_000_123),
                None,
                None,
                Some(2_000_000_000)
            ]
        );
        let lt: Vec<_> = p.iter().map(|p| (p.interface_id, p.link_type)).collect();
        assert_eq!(lt, [(0, 1), (1, 101), (0, 1), (1, 101), (0, 113)]);
        assert_eq!(
            (p[2].captured.as_slice(), p[2].file_offset),
            (&b"0123456789"[..], spb_at)
        );
        assert_eq!(p[3].captured, b"pb");
        assert_eq!(
            p.iter().map(|p| p.index).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
    }
}

fn first_error(f: &[u8]) -> PcapError {
    read_all(f).1.expect("an error")
}

#[test]
fn hostile_lengths_name_offset_and_field() {
    let ng = Ng { big: false };
    let mut head = ng.shb();
    head.extend(ng.idb(1, None, None));
    let at = head.len() as u64;
    // captured_len beyond the block body.
    let mut f = head.clone();
    let mut epb = ng.epb(0, 0, b"abcd", 4);
    epb[20..24].copy_from_slice(&100u32.to_le_bytes());
    f.extend(epb);
    match first_error(&f) {
        PcapError::Invalid { offset, field, .. } => {
            assert_eq!((offset, field), (at, "EPB.captured_len"))
        }
        e => panic!("{e}"),
    }
    // Total length not a multiple of 4, then below 12.
    for bad in [13u32, 8] {
        let mut f = head.clone();
        let mut epb = ng.epb(0, 0, b"abcd", 4);
        epb[4..8].copy_from_slice(&bad.to_le_bytes());
        f.extend(epb);
        match first_error(&f) {
            PcapError::Invalid {
                offset,
                field,
                found,
                ..
            } => {
                assert_eq!(
                    (offset, field, found),
                    (at, "block.total_length", bad.to_string())
                );
            }
            e => panic!("{e}"),
        }
    }
    // Trailing length differs.
    let mut f = head.clone();
    f.extend(ng.epb(0, 0, b"abcd", 4));
    let n = f.len();
    f[n - 4] = 0;
    assert!(matches!(
        first_error(&f),
        PcapError::Invalid {
            field: "block.trailing_total_length",
            ..
        }
    ));
    // Length beyond the file: no allocation of the claimed size.
    let mut f = head.clone();
    f.extend(ng.block(NG_EPB, &[0; 20]));
    f[usize::try_from(at).unwrap() + 4..][..4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let e = first_error(&f);
    assert!(
        matches!(e, PcapError::Truncated { offset, needed: 0xFFFF_FFF0, .. } if offset == at),
        "{e}"
    );
    // An interface no IDB described.
    let mut f = head.clone();
    f.extend(ng.epb(3, 0, b"", 0));
    assert!(matches!(
        first_error(&f),
        PcapError::Invalid {
            field: "EPB.interface_id",
            ..
        }
    ));
    // Packets over the cap.
    let big = vec![0u8; usize::try_from(MAX_CAPTURED_BYTES).unwrap() + 4];
    let mut f = head.clone();
    f.extend(ng.epb(0, 0, &big, 0));
    assert!(matches!(
        first_error(&f),
        PcapError::Invalid {
            field: "EPB.captured_len",
            ..
        }
    ));
    let f = classic(false, false, 1, &[(0, 0, &big, 0)]);
    assert!(matches!(
        first_error(&f),
        PcapError::Invalid {
            offset: 24,
            field: "pcap record.incl_len",
            ..
        }
    ));
}

#[test]
fn truncation_is_an_error_after_the_good_packets() {
    let f = classic(false, false, 1, &[(1, 0, b"abcd", 4), (2, 0, b"efgh", 4)]);
    let (p, err) = read_all(&f[..f.len() - 2]);
    assert_eq!(p.len(), 1);
    let e = err.unwrap();
    assert!(
        matches!(
            e,
            PcapError::Truncated {
                offset: 60,
                needed: 4,
                available: 2,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "capture at byte 60: pcap record data needs 4 bytes, 2 left in the file"
    );
    let (p, err) = read_all(&f[..f.len() - 10]);
    assert_eq!(p.len(), 1);
    assert!(matches!(
        err,
        Some(PcapError::Truncated {
            offset: 44,
            field: "pcap record header",
            ..
        })
    ));
}

#[test]
fn not_a_capture() {
    let e = PcapReader::new(&&b"PK\x03\x04rest"[..]).err().unwrap();
    assert!(matches!(
        e,
        PcapError::UnknownMagic {
            found: [b'P', b'K', 3, 4]
        }
    ));
    assert!(matches!(
        PcapReader::new(&&b"\xd4\xc3"[..]).err(),
        Some(PcapError::Truncated { .. })
    ));
    let mut f = classic(false, false, 1, &[]);
    f[4] = 3;
    assert!(matches!(
        PcapReader::new(&f.as_slice()).err(),
        Some(PcapError::Invalid { .. })
    ));
    let mut f = Ng { big: false }.shb();
    f[8] = 0;
    assert!(matches!(
        first_error(&f),
        PcapError::Invalid {
            offset: 0,
            field: "SHB.byte_order_magic",
            ..
        }
    ));
}

#[test]
fn every_prefix_terminates_inside_the_file() {
    let ng = Ng { big: true };
    let mut f = ng.shb();
    f.extend(ng.idb(1, Some(3), None));
    f.extend(ng.epb(0, 9, b"packet one", 10));
    f.extend(ng.spb(4, b"spb!"));
    for cut in 0..=f.len() {
        let prefix = &f[..cut];
        if let Ok(r) = PcapReader::new(&prefix) {
            let mut steps = 0;
            for item in r {
                steps += 1;
                if let Ok(p) = item {
                    assert!(p.file_offset < cut as u64);
                }
            }
            assert!(steps <= 3);
        }
    }
}

#[test]
fn timestamp_resolutions() {
    let iface = |r: u8, off: i64| Interface {
        link_type: 1,
        snap_len: 0,
        ts_resolution: r,
        ts_offset_s: off,
    };
    assert_eq!(ng_timestamp_ns(5, &iface(0, 0)), Some(5_000_000_000));
    assert_eq!(ng_timestamp_ns(5, &iface(12, 0)), Some(0));
    assert_eq!(ng_timestamp_ns(u64::MAX, &iface(127, 0)), Some(0));
    assert_eq!(
        ng_timestamp_ns(1024, &iface(0x80 | 10, 0)),
        Some(1_000_000_000)
    );
    assert_eq!(ng_timestamp_ns(1, &iface(0xFF, 0)), Some(0));
    assert_eq!(ng_timestamp_ns(u64::MAX, &iface(0, 0)), None);
    assert_eq!(ng_timestamp_ns(0, &iface(9, -1)), None);
}
