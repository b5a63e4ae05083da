//! Just enough dissection for a traffic summary: link layer → IPv4/IPv6 → TCP/UDP ports
//! and payload. Every field is read with `get()`; a frame that ends early or carries a
//! header the summary does not follow is [`Undecodable`], never a panic.
//!
//! Link types (<https://www.tcpdump.org/linktypes.html>): Ethernet II with up to two
//! 802.1Q/802.1ad tags, Linux cooked SLL and SLL2, raw IP, and BSD loopback (NULL/LOOP).

use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// LINKTYPE_NULL: BSD loopback, a 4-byte address family in the capturer's byte order.
pub const LINKTYPE_NULL: u16 = 0;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// LINKTYPE_RAW: IPv4 or IPv6 by the version nibble.
pub const LINKTYPE_RAW: u16 = 101;
/// LINKTYPE_LOOP: like NULL, in network byte order (OpenBSD).
pub const LINKTYPE_LOOP: u16 = 108;
/// LINKTYPE_LINUX_SLL: Linux "any" device, 16-byte cooked header.
pub const LINKTYPE_LINUX_SLL: u16 = 113;
/// LINKTYPE_IPV4.
pub const LINKTYPE_IPV4: u16 = 228;
/// LINKTYPE_IPV6.
pub const LINKTYPE_IPV6: u16 = 229;
/// LINKTYPE_LINUX_SLL2: 20-byte cooked header (libpcap ≥ 1.10 on "any").
pub const LINKTYPE_LINUX_SLL2: u16 = 276;

/// IP protocol numbers the summary looks into.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
/// More tags than this is not a frame any switch forwards.
const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers followed before giving up (real packets carry one or two).
const MAX_IPV6_EXTENSIONS: usize = 8;

/// A short name for a link type, for the summary's per-link-type counts.
#[must_use]
pub fn link_type_name(link_type: u16) -> &'static str {
    match link_type {
        LINKTYPE_NULL => "NULL",
        LINKTYPE_ETHERNET => "ETHERNET",
        LINKTYPE_RAW => "RAW",
        LINKTYPE_LOOP => "LOOP",
        LINKTYPE_LINUX_SLL => "LINUX_SLL",
        LINKTYPE_IPV4 => "IPV4",
        LINKTYPE_IPV6 => "IPV6",
        LINKTYPE_LINUX_SLL2 => "LINUX_SLL2",
        105 => "IEEE802_11",
        127 => "IEEE802_11_RADIOTAP",
        _ => "other",
    }
}

/// Why a frame gave no IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Undecodable {
    /// A link type this module does not dissect.
    UnsupportedLinkType,
    /// A link-layer protocol other than IPv4/IPv6 (ARP, LLDP, …).
    NotIp,
    /// The frame ends inside a link or IP header.
    Truncated,
    /// An IP header field is impossible (version, header length, total length).
    BadIpHeader,
    /// More than two VLAN tags.
    TooManyVlanTags,
    /// More than eight IPv6 extension headers.
    TooManyExtensionHeaders,
}

impl Undecodable {
    /// The snake_case name used as a count key.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Undecodable::UnsupportedLinkType => "unsupported_link_type",
            Undecodable::NotIp => "not_ip",
            Undecodable::Truncated => "truncated",
            Undecodable::BadIpHeader => "bad_ip_header",
            Undecodable::TooManyVlanTags => "too_many_vlan_tags",
            Undecodable::TooManyExtensionHeaders => "too_many_extension_headers",
        }
    }
}

/// An IP packet as far as the summary needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number of the transport (after IPv6 extension headers).
    pub protocol: u8,
    /// TCP/UDP ports, when the captured bytes reach them and this is a first fragment.
    pub ports: Option<(u16, u16)>,
    /// TCP flags byte, when the TCP header was captured.
    pub tcp_flags: Option<u8>,
    /// TCP/UDP payload as captured (empty when the header is incomplete).
    pub payload: &'a [u8],
}

/// Dissects one frame of `link_type`.
///
/// # Errors
/// [`Undecodable`] says why no IP packet could be found.
pub fn decode(link_type: u16, frame: &[u8]) -> Result<Decoded<'_>, Undecodable> {
    let (ethertype, rest) = match link_type {
        LINKTYPE_ETHERNET => ethernet(frame)?,
        LINKTYPE_LINUX_SLL => (
            be16(frame, 14)?,
            frame.get(16..).ok_or(Undecodable::Truncated)?,
        ),
        LINKTYPE_LINUX_SLL2 => (
            be16(frame, 0)?,
            frame.get(20..).ok_or(Undecodable::Truncated)?,
        ),
        LINKTYPE_RAW => (version_ethertype(frame)?, frame),
        LINKTYPE_IPV4 => (ETHERTYPE_IPV4, frame),
        LINKTYPE_IPV6 => (ETHERTYPE_IPV6, frame),
        LINKTYPE_NULL | LINKTYPE_LOOP => (null_family(frame)?, frame.get(4..).unwrap_or_default()),
        _ => return Err(Undecodable::UnsupportedLinkType),
    };
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(rest),
        ETHERTYPE_IPV6 => ipv6(rest),
        _ => Err(Undecodable::NotIp),
    }
}

fn be16(b: &[u8], at: usize) -> Result<u16, Undecodable> {
    match b.get(at..at.saturating_add(2)) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(Undecodable::Truncated),
    }
}

fn byte(b: &[u8], at: usize) -> Result<u8, Undecodable> {
    b.get(at).copied().ok_or(Undecodable::Truncated)
}

/// Ethernet II: destination, source, then EtherType, VLAN tags in between.
fn ethernet(frame: &[u8]) -> Result<(u16, &[u8]), Undecodable> {
    let mut at = 12usize;
    for _ in 0..=MAX_VLAN_TAGS {
        let ethertype = be16(frame, at)?;
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            let rest = frame
                .get(at.saturating_add(2)..)
                .ok_or(Undecodable::Truncated)?;
            return Ok((ethertype, rest));
        }
        at = at.saturating_add(4);
    }
    Err(Undecodable::TooManyVlanTags)
}

fn version_ethertype(packet: &[u8]) -> Result<u16, Undecodable> {
    match byte(packet, 0)? >> 4 {
        4 => Ok(ETHERTYPE_IPV4),
        6 => Ok(ETHERTYPE_IPV6),
        _ => Err(Undecodable::BadIpHeader),
    }
}

/// The NULL header's family is in the capturing host's byte order; accept either.
/// AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD),
/// 30 (macOS).
fn null_family(frame: &[u8]) -> Result<u16, Undecodable> {
    let raw: [u8; 4] = frame
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(Undecodable::Truncated)?;
    let family = u32::from_le_bytes(raw).min(u32::from_be_bytes(raw));
    match family {
        2 => Ok(ETHERTYPE_IPV4),
        10 | 24 | 28 | 30 => Ok(ETHERTYPE_IPV6),
        _ => Err(Undecodable::NotIp),
    }
}

fn ipv4(p: &[u8]) -> Result<Decoded<'_>, Undecodable> {
    let vihl = byte(p, 0)?;
    let header_len = usize::from(vihl & 0x0F).saturating_mul(4);
    if vihl >> 4 != 4 || header_len < 20 {
        return Err(Undecodable::BadIpHeader);
    }
    let total_len = usize::from(be16(p, 2)?);
    if total_len < header_len {
        return Err(Undecodable::BadIpHeader);
    }
    let header = p.get(..header_len).ok_or(Undecodable::Truncated)?;
    let addr = |at: usize| -> Result<Ipv4Addr, Undecodable> {
        let a: [u8; 4] = header
            .get(at..at.saturating_add(4))
            .and_then(|s| s.try_into().ok())
            .ok_or(Undecodable::Truncated)?;
        Ok(Ipv4Addr::from(a))
    };
    let fragment_offset = be16(p, 6)? & 0x1FFF;
    let protocol = byte(p, 9)?;
    // The total length drops Ethernet padding; a snap-length cut keeps what was captured.
    let body = p
        .get(header_len..total_len.min(p.len()))
        .unwrap_or_default();
    let (ports, tcp_flags, payload) = if fragment_offset == 0 {
        transport(protocol, body)
    } else {
        // Later fragments carry no transport header: bytes count, ports are unknown.
        (None, None, &[][..])
    };
    Ok(Decoded {
        src: IpAddr::V4(addr(12)?),
        dst: IpAddr::V4(addr(16)?),
        protocol,
        ports,
        tcp_flags,
        payload,
    })
}

fn ipv6(p: &[u8]) -> Result<Decoded<'_>, Undecodable> {
    if byte(p, 0)? >> 4 != 6 {
        return Err(Undecodable::BadIpHeader);
    }
    let header = p.get(..40).ok_or(Undecodable::Truncated)?;
    let addr = |at: usize| -> Ipv6Addr {
        let a: [u8; 16] = header
            .get(at..at.saturating_add(16))
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 16]);
        Ipv6Addr::from(a)
    };
    let payload_len = usize::from(be16(p, 4)?);
    let mut next = byte(p, 6)?;
    // Payload length 0 is a jumbogram (hop-by-hop option); take what was captured.
    let end = if payload_len == 0 {
        p.len()
    } else {
        payload_len.saturating_add(40).min(p.len())
    };
    let mut body = p.get(40..end).unwrap_or_default();
    let mut first_fragment = true;
    let mut followed = 0usize;
    loop {
        let ext_len = match next {
            0 | 43 | 60 => usize::from(byte(body, 1)?)
                .saturating_add(1)
                .saturating_mul(8),
            44 => {
                first_fragment = be16(body, 2)? & 0xFFF8 == 0;
                8
            }
            51 => usize::from(byte(body, 1)?)
                .saturating_add(2)
                .saturating_mul(4),
            _ => break,
        };
        followed = followed.saturating_add(1);
        if followed > MAX_IPV6_EXTENSIONS {
            return Err(Undecodable::TooManyExtensionHeaders);
        }
        next = byte(body, 0)?;
        body = body.get(ext_len..).ok_or(Undecodable::Truncated)?;
    }
    let (ports, tcp_flags, payload) = if first_fragment {
        transport(next, body)
    } else {
        (None, None, &[][..])
    };
    Ok(Decoded {
        src: IpAddr::V6(addr(8)),
        dst: IpAddr::V6(addr(24)),
        protocol: next,
        ports,
        tcp_flags,
        payload,
    })
}

type Transport<'a> = (Option<(u16, u16)>, Option<u8>, &'a [u8]);

/// Ports from the first 4 bytes (present even in a snap-length-cut header); payload and
/// flags only when the whole header was captured.
fn transport(protocol: u8, seg: &[u8]) -> Transport<'_> {
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP {
        return (None, None, &[]);
    }
    let ports = be16(seg, 0).ok().zip(be16(seg, 2).ok());
    if protocol == IPPROTO_UDP {
        // The UDP length bounds the payload when it is sane; else take what is there.
        let payload = match be16(seg, 4).map(usize::from) {
            Ok(len) if len >= 8 => seg.get(8..len.min(seg.len())),
            _ => seg.get(8..),
        };
        return (ports, None, payload.unwrap_or_default());
    }
    let header_len = byte(seg, 12).map(|b| usize::from(b >> 4).saturating_mul(4));
    match header_len {
        Ok(h) if h >= 20 => match seg.get(h..) {
            Some(payload) => (ports, byte(seg, 13).ok(), payload),
            None => (ports, None, &[]),
        },
        _ => (ports, None, &[]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + 8 + payload.len()).unwrap();
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, IPPROTO_UDP, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(&1234u16.to_be_bytes());
        p.extend_from_slice(&53u16.to_be_bytes());
        p.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ethernet_with_two_vlan_tags_and_padding() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xA8, 0, 5, 0x81, 0x00, 0, 7, 0x08, 0x00]);
        f.extend(ipv4_udp(b"hi"));
        f.extend_from_slice(&[0; 10]); // Ethernet padding must not reach the payload
        let d = decode(LINKTYPE_ETHERNET, &f).unwrap();
        assert_eq!(d.ports, Some((1234, 53)));
        assert_eq!(d.payload, b"hi");
        assert_eq!(d.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn three_vlan_tags_are_refused() {
        let mut f = vec![0u8; 12];
        for _ in 0..3 {
            f.extend_from_slice(&[0x81, 0x00, 0, 1]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        assert_eq!(
            decode(LINKTYPE_ETHERNET, &f),
            Err(Undecodable::TooManyVlanTags)
        );
    }

    #[test]
    fn later_ipv4_fragment_has_no_ports() {
        let mut p = ipv4_udp(b"xx");
        p[6] = 0x00;
        p[7] = 0x10;
        let d = decode(LINKTYPE_IPV4, &p).unwrap();
        assert_eq!(d.ports, None);
        assert!(d.payload.is_empty());
    }

    #[test]
    fn cooked_and_null_headers() {
        let ip = ipv4_udp(b"a");
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert_eq!(decode(LINKTYPE_LINUX_SLL, &sll).unwrap().payload, b"a");
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        assert_eq!(decode(LINKTYPE_LINUX_SLL2, &sll2).unwrap().payload, b"a");
        for family in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut null = family.to_vec();
            null.extend_from_slice(&ip);
            assert_eq!(
                decode(LINKTYPE_NULL, &null).unwrap().ports,
                Some((1234, 53))
            );
        }
        assert_eq!(decode(LINKTYPE_RAW, &ip).unwrap().protocol, IPPROTO_UDP);
        assert_eq!(decode(147, &ip), Err(Undecodable::UnsupportedLinkType));
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 0 /* hop-by-hop */, 64];
        p.extend_from_slice(&[0u8; 32]);
        // Hop-by-hop (8 bytes) → fragment (offset 0) → TCP.
        p.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&[IPPROTO_TCP, 0, 0, 0, 0, 0, 0, 1]);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&443u16.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x18;
        p.extend_from_slice(&tcp);
        p.extend_from_slice(b"data");
        let len = u16::try_from(p.len() - 40).unwrap();
        p[4..6].copy_from_slice(&len.to_be_bytes());
        let d = decode(LINKTYPE_IPV6, &p).unwrap();
        assert_eq!(
            (d.protocol, d.ports, d.tcp_flags),
            (IPPROTO_TCP, Some((40000, 443)), Some(0x18))
        );
        assert_eq!(d.payload, b"data");
        // A loop of hop-by-hop headers stops at the bound.
        let mut l = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        l.extend_from_slice(&[0u8; 32]);
        l.extend(std::iter::repeat_n(0u8, 8 * 20));
        assert_eq!(
            decode(LINKTYPE_IPV6, &l),
            Err(Undecodable::TooManyExtensionHeaders)
        );
    }

    #[test]
    fn truncated_headers_never_panic() {
        let f = ipv4_udp(b"payload");
        for cut in 0..f.len() {
            let _ = decode(LINKTYPE_RAW, &f[..cut]);
        }
        let mut bad = f.clone();
        bad[0] = 0x43;
        assert_eq!(decode(LINKTYPE_RAW, &bad), Err(Undecodable::BadIpHeader));
    }
}
