//! The IPv4 neighbour (ARP) cache from /proc/net/arp.
//!
//! Entries age out within minutes, so this is among the first things collected: it shows
//! which local hosts the system talked to recently, and a gateway whose MAC address changed
//! hints at ARP spoofing. IPv6 neighbours (NDP) are not in /proc at all; they need an
//! `RTM_GETNEIGH` netlink dump, which this crate does not do.

use crate::table::{cap, fields, parse_lines, ParseError, Parsed, MAX_STRING_BYTES};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `ATF_COM`: the entry is complete (the MAC address is known).
const ATF_COM: u32 = 0x02;
/// `ATF_PERM`: a static entry, set by an administrator (or an attacker).
const ATF_PERM: u32 = 0x04;

/// One entry of the ARP cache.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// Neighbour's IPv4 address.
    pub ip_address: IpAddr,
    /// ARP hardware type (1 = Ethernet).
    pub hw_type: u32,
    /// Raw `ATF_*` flags.
    pub flags: u32,
    /// Whether the entry is complete (`ATF_COM`).
    pub complete: bool,
    /// Whether the entry is static (`ATF_PERM`).
    pub permanent: bool,
    /// Hardware address as printed (`aa:bb:cc:dd:ee:ff`; all zero when incomplete).
    pub hw_address: String,
    /// Mask column (`*` unless a proxy-ARP network entry).
    pub mask: String,
    /// Interface.
    pub device: String,
}

/// Parses /proc/net/arp (`IP address  HW type  Flags  HW address  Mask  Device`).
pub fn parse_arp(text: &str) -> Parsed<Neighbour> {
    parse_lines(text, 1, |n, line| {
        let f = fields(n, line, 6)?;
        let field = |i: usize| f.get(i).copied().unwrap_or_default();
        let ip_address: IpAddr = field(0)
            .parse::<std::net::Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| ParseError::field(n, "IP address", "dotted IPv4 address", field(0)))?;
        let flags = prefixed_hex(n, "Flags", field(2))?;
        Ok(Some(Neighbour {
            ip_address,
            hw_type: prefixed_hex(n, "HW type", field(1))?,
            flags,
            complete: flags & ATF_COM != 0,
            permanent: flags & ATF_PERM != 0,
            hw_address: cap(field(3), MAX_STRING_BYTES),
            mask: cap(field(4), MAX_STRING_BYTES),
            device: cap(field(5), MAX_STRING_BYTES),
        }))
    })
}

/// `0x`-prefixed hex as the ARP table prints it.
fn prefixed_hex(line: usize, field: &'static str, text: &str) -> Result<u32, ParseError> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| ParseError::field(line, field, "0x-prefixed hex", text))?;
    crate::table::hex(line, field, digits)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn arp_lines() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device
192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
192.0.2.9        0x1         0x0         00:00:00:00:00:00     *        eth0
192.0.2.7        0x1         0x6         02:fc:00:00:00:07     *        eth1
300.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
192.0.2.1        1           0x2         02:fc:00:00:00:05     *        eth0
";
        let p = parse_arp(text);
        assert_eq!(p.items.len(), 3);
        assert_eq!(p.errors.len(), 2);
        let n = &p.items[0];
        assert_eq!(n.ip_address, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert!(n.complete && !n.permanent);
        assert_eq!(
            (n.hw_address.as_str(), n.device.as_str()),
            ("02:fc:00:00:00:05", "eth0")
        );
        assert!(!p.items[1].complete);
        assert!(p.items[2].permanent);
        assert!(matches!(
            p.errors[0],
            ParseError::Field {
                line: 5,
                field: "IP address",
                ..
            }
        ));
        assert!(matches!(
            p.errors[1],
            ParseError::Field {
                line: 6,
                field: "HW type",
                ..
            }
        ));
    }
}
