//! The routing tables: /proc/net/route (IPv4) and /proc/net/ipv6_route.
//!
//! A route the examiner did not expect (a gateway to an attacker's host, a blackhole for
//! the update server) is a classic persistence and exfiltration trick, and it is lost at
//! power-off. Both files list the main table only; policy routing tables need netlink.

use crate::proc_net::decode_hex_address;
use crate::table::{dec, fields, hex, parse_lines, ParseError, Parsed};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};

/// One route.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// Output interface (`lo` for local and reject routes in ipv6_route).
    pub interface: String,
    /// Destination network.
    pub destination: IpAddr,
    /// Destination prefix length, bits.
    pub prefix_len: u8,
    /// Next hop (unspecified when directly connected).
    pub gateway: IpAddr,
    /// Source prefix (IPv6 source routing only).
    pub source: Option<IpAddr>,
    /// Source prefix length, bits (IPv6 only).
    pub source_prefix_len: Option<u8>,
    /// Raw `RTF_*` flags (`include/uapi/linux/route.h`, `ipv6_route.h`).
    pub flags: u32,
    /// Names of the known flags that are set (`UP`, `GATEWAY`, `HOST`, …).
    pub flag_names: Vec<String>,
    /// Route metric.
    pub metric: u32,
    /// Reference count.
    pub ref_count: u32,
    /// Lookups that used this route.
    pub use_count: u32,
    /// Path MTU in bytes, IPv4 only (0 = interface MTU).
    pub mtu: Option<u32>,
    /// TCP window clamp in bytes, IPv4 only.
    pub window: Option<u32>,
    /// Initial round-trip time, IPv4 only.
    pub irtt: Option<u32>,
}

/// `RTF_*` bits and their names.
const ROUTE_FLAGS: [(u32, &str); 13] = [
    (0x0001, "UP"),
    (0x0002, "GATEWAY"),
    (0x0004, "HOST"),
    (0x0008, "REINSTATE"),
    (0x0010, "DYNAMIC"),
    (0x0020, "MODIFIED"),
    (0x0040, "MTU"),
    (0x0080, "WINDOW"),
    (0x0100, "IRTT"),
    (0x0200, "REJECT"),
    (0x0001_0000, "DEFAULT"),
    (0x0004_0000, "ADDRCONF"),
    (0x0100_0000, "CACHE"),
];

/// Names of the known `RTF_*` bits in `flags`; unknown bits stay visible in the raw value.
pub fn route_flag_names(flags: u32) -> Vec<String> {
    ROUTE_FLAGS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| (*name).to_string())
        .collect()
}

/// Prefix length of a contiguous network mask, or `None` for a mask with holes.
pub(crate) fn prefix_len(mask: IpAddr) -> Option<u8> {
    let bits: u128 = match mask {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    };
    let ones = bits.leading_ones();
    // Contiguous: no set bit after the leading ones.
    let rest = bits.checked_shl(ones).unwrap_or(0);
    (rest == 0).then(|| u8::try_from(ones).ok()).flatten()
}

/// Parses /proc/net/route (`Iface Destination Gateway Flags RefCnt Use Metric Mask MTU
/// Window IRTT`, addresses as native-endian hex words like /proc/net/tcp).
pub fn parse_ipv4_routes(text: &str) -> Parsed<Route> {
    parse_lines(text, 1, |n, line| {
        let f = fields(n, line, 11)?;
        let field = |i: usize| f.get(i).copied().unwrap_or_default();
        let mask = decode_v4(n, "Mask", field(7))?;
        let flags: u32 = hex(n, "Flags", field(3))?;
        Ok(Some(Route {
            family: "ipv4".to_string(),
            interface: crate::table::cap(field(0), crate::table::MAX_STRING_BYTES),
            destination: decode_v4(n, "Destination", field(1))?,
            prefix_len: prefix_len(mask)
                .ok_or_else(|| ParseError::field(n, "Mask", "contiguous network mask", field(7)))?,
            gateway: decode_v4(n, "Gateway", field(2))?,
            source: None,
            source_prefix_len: None,
            flags,
            flag_names: route_flag_names(flags),
            metric: dec(n, "Metric", field(6))?,
            ref_count: dec(n, "RefCnt", field(4))?,
            use_count: dec(n, "Use", field(5))?,
            mtu: Some(dec(n, "MTU", field(8))?),
            window: Some(dec(n, "Window", field(9))?),
            irtt: Some(dec(n, "IRTT", field(10))?),
        }))
    })
}

fn decode_v4(line: usize, field: &'static str, text: &str) -> Result<IpAddr, ParseError> {
    if text.len() != 8 {
        return Err(ParseError::field(line, field, "8 hex digits", text));
    }
    decode_hex_address(line, field, text)
}

/// An address as `%pi6` prints it: 32 hex digits in network byte order (unlike tcp6).
fn decode_pi6(line: usize, field: &'static str, text: &str) -> Result<IpAddr, ParseError> {
    if text.len() != 32 {
        return Err(ParseError::field(line, field, "32 hex digits", text));
    }
    let value: u128 =
        hex_u128(text).ok_or_else(|| ParseError::field(line, field, "32 hex digits", text))?;
    Ok(IpAddr::V6(Ipv6Addr::from(value)))
}

fn hex_u128(text: &str) -> Option<u128> {
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(text, 16).ok()
}

fn prefix(line: usize, field: &'static str, text: &str) -> Result<u8, ParseError> {
    let v: u8 = hex(line, field, text)?;
    if v > 128 {
        return Err(ParseError::field(
            line,
            field,
            "prefix length 0..=128",
            text,
        ));
    }
    Ok(v)
}

/// Parses /proc/net/ipv6_route (no header; `dest dest_len src src_len next_hop metric
/// refcnt use flags device`, all numbers hex, addresses in network order).
pub fn parse_ipv6_routes(text: &str) -> Parsed<Route> {
    parse_lines(text, 0, |n, line| {
        let f = fields(n, line, 10)?;
        let field = |i: usize| f.get(i).copied().unwrap_or_default();
        let flags: u32 = hex(n, "flags", field(8))?;
        Ok(Some(Route {
            family: "ipv6".to_string(),
            interface: crate::table::cap(field(9), crate::table::MAX_STRING_BYTES),
            destination: decode_pi6(n, "dest", field(0))?,
            prefix_len: prefix(n, "dest_prefix_len", field(1))?,
            gateway: decode_pi6(n, "next_hop", field(4))?,
            source: Some(decode_pi6(n, "src", field(2))?),
            source_prefix_len: Some(prefix(n, "src_prefix_len", field(3))?),
            flags,
            flag_names: route_flag_names(flags),
            metric: hex(n, "metric", field(5))?,
            ref_count: hex(n, "refcnt", field(6))?,
            use_count: hex(n, "use", field(7))?,
            mtu: None,
            window: None,
            irtt: None,
        }))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_routes() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FF00FF\t0\t0\t0
";
        let p = parse_ipv4_routes(text);
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.errors.len(), 1);
        let default = &p.items[0];
        assert_eq!(default.destination, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(default.prefix_len, 0);
        assert_eq!(default.gateway, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(default.flag_names, ["UP", "GATEWAY"]);
        assert_eq!(default.metric, 100);
        let net = &p.items[1];
        assert_eq!(net.destination, "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(net.prefix_len, 24);
    }

    #[test]
    fn ipv6_routes() {
        let text = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 81 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
";
        let p = parse_ipv6_routes(text);
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.errors.len(), 1, "prefix 0x81 > 128");
        assert_eq!(p.items[0].destination, "fd00::".parse::<IpAddr>().unwrap());
        assert_eq!(p.items[0].prefix_len, 64);
        assert_eq!(p.items[0].metric, 256);
        assert_eq!(p.items[1].gateway, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(p.items[1].flag_names, ["UP", "GATEWAY"]);
        assert_eq!(p.items[1].interface, "eth0");
    }

    #[test]
    fn masks() {
        assert_eq!(prefix_len("255.255.255.255".parse().unwrap()), Some(32));
        assert_eq!(prefix_len("255.255.128.0".parse().unwrap()), Some(17));
        assert_eq!(prefix_len("255.0.255.0".parse().unwrap()), None);
        assert_eq!(
            prefix_len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()),
            Some(128)
        );
    }
}
