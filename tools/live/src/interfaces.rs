//! Network interfaces from /sys/class/net and their addresses from `getifaddrs(3)`.
//!
//! IPv4 addresses are not in /proc (only netlink or ioctls give them); `getifaddrs` asks
//! the kernel over netlink for both families. It describes the collector's own network
//! namespace, whatever [`crate::CollectOptions::sys_root`] says. A promiscuous interface
//! is flagged because a sniffer on the examined system sets it.

use crate::collect::Collector;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// `IFF_PROMISC` (`include/uapi/linux/if.h`).
const IFF_PROMISC: u32 = 0x100;

/// `IFF_*` bits and their names.
const INTERFACE_FLAGS: [(u32, &str); 16] = [
    (0x1, "UP"),
    (0x2, "BROADCAST"),
    (0x4, "DEBUG"),
    (0x8, "LOOPBACK"),
    (0x10, "POINTOPOINT"),
    (0x20, "NOTRAILERS"),
    (0x40, "RUNNING"),
    (0x80, "NOARP"),
    (0x100, "PROMISC"),
    (0x200, "ALLMULTI"),
    (0x400, "MASTER"),
    (0x800, "SLAVE"),
    (0x1000, "MULTICAST"),
    (0x2000, "PORTSEL"),
    (0x4000, "AUTOMEDIA"),
    (0x8000, "DYNAMIC"),
];

/// One address of an interface.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// The address.
    pub address: IpAddr,
    /// Prefix length from the netmask, when given and contiguous.
    pub prefix_len: Option<u8>,
}

/// One network interface.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Interface index (`ifindex`).
    pub ifindex: Option<u32>,
    /// Hardware address (`address`), e.g. `02:fc:00:00:00:05`.
    pub mac_address: Option<String>,
    /// Operational state (`operstate`: `up`, `down`, `unknown`, …).
    pub operstate: Option<String>,
    /// MTU, bytes.
    pub mtu: Option<u32>,
    /// Raw `IFF_*` flags (`flags`).
    pub flags: Option<u32>,
    /// Names of the set flags.
    pub flag_names: Vec<String>,
    /// `IFF_PROMISC` set: the interface receives all traffic (a sniffer's sign).
    pub promiscuous: bool,
    /// IPv4 and IPv6 addresses.
    pub addresses: Vec<InterfaceAddress>,
}

/// Names of the known `IFF_*` bits in `flags`.
pub fn interface_flag_names(flags: u32) -> Vec<String> {
    INTERFACE_FLAGS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| (*name).to_string())
        .collect()
}

/// Parses a sysfs `flags` attribute (`0x1003`).
pub fn parse_sysfs_flags(text: &str) -> Result<u32, crate::table::ParseError> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .ok_or_else(|| crate::table::ParseError::field(1, "flags", "0x-prefixed hex", t))?;
    crate::table::hex(1, "flags", digits)
}

/// Most interfaces read (a host with more is a hostile or a very unusual one).
const MAX_INTERFACES: usize = 65_536;

/// Reads every interface: sysfs attributes, then addresses from getifaddrs. Interfaces
/// that only getifaddrs knows are kept too.
pub(crate) fn read_interfaces(c: &mut Collector<'_>) -> Vec<Interface> {
    let net = c.opts.sys_root.join("class/net");
    let mut by_name: BTreeMap<String, Interface> = BTreeMap::new();
    match std::fs::read_dir(&net) {
        Ok(entries) => {
            for entry in entries.take(MAX_INTERFACES).filter_map(Result::ok) {
                let name = entry.file_name().to_string_lossy().into_owned();
                let iface = read_sysfs(c, &entry.path(), &name);
                by_name.insert(name, iface);
            }
        }
        Err(e) => c.record("interfaces", &net, e),
    }
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => {
            for a in addrs.take(MAX_INTERFACES.saturating_mul(16)) {
                let Some(address) = a.address.as_ref().and_then(ip_of) else {
                    continue;
                };
                let prefix_len = a
                    .netmask
                    .as_ref()
                    .and_then(ip_of)
                    .and_then(crate::routes::prefix_len);
                by_name
                    .entry(a.interface_name.clone())
                    .or_insert_with(|| empty(&a.interface_name))
                    .addresses
                    .push(InterfaceAddress {
                        address,
                        prefix_len,
                    });
            }
        }
        Err(e) => c.record("interfaces", std::path::Path::new("getifaddrs(3)"), e),
    }
    by_name.into_values().collect()
}

fn ip_of(s: &nix::sys::socket::SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

fn empty(name: &str) -> Interface {
    Interface {
        name: name.to_string(),
        ifindex: None,
        mac_address: None,
        operstate: None,
        mtu: None,
        flags: None,
        flag_names: Vec::new(),
        promiscuous: false,
        addresses: Vec::new(),
    }
}

fn read_sysfs(c: &mut Collector<'_>, dir: &std::path::Path, name: &str) -> Interface {
    let mut iface = empty(name);
    let attr = |c: &mut Collector<'_>, file: &str| c.read_line("interfaces", &dir.join(file), true);
    iface.mac_address = attr(c, "address").filter(|a| !a.is_empty());
    iface.operstate = attr(c, "operstate");
    iface.mtu = attr(c, "mtu").and_then(|t| number(c, dir, "mtu", &t));
    iface.ifindex = attr(c, "ifindex").and_then(|t| number(c, dir, "ifindex", &t));
    iface.flags = attr(c, "flags").and_then(|t| match parse_sysfs_flags(&t) {
        Ok(f) => Some(f),
        Err(e) => {
            c.record("interfaces", &dir.join("flags"), e);
            None
        }
    });
    if let Some(f) = iface.flags {
        iface.flag_names = interface_flag_names(f);
        iface.promiscuous = f & IFF_PROMISC != 0;
    }
    iface
}

fn number(
    c: &mut Collector<'_>,
    dir: &std::path::Path,
    file: &'static str,
    text: &str,
) -> Option<u32> {
    crate::table::dec(1, file, text.trim())
        .map_err(|e| c.record("interfaces", &dir.join(file), e))
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert_eq!(parse_sysfs_flags("0x1103\n"), Ok(0x1103));
        assert_eq!(
            interface_flag_names(0x1103),
            ["UP", "BROADCAST", "PROMISC", "MULTICAST"]
        );
        assert!(parse_sysfs_flags("4099").is_err());
    }

    #[test]
    fn loopback_has_its_address() {
        let opts = crate::CollectOptions::default();
        let mut c = Collector {
            opts: &opts,
            errors: Vec::new(),
        };
        let ifaces = read_interfaces(&mut c);
        let lo = ifaces.iter().find(|i| i.name == "lo").unwrap();
        assert!(lo.flag_names.iter().any(|f| f == "LOOPBACK"));
        assert!(lo
            .addresses
            .iter()
            .any(|a| a.address == IpAddr::from([127, 0, 0, 1]) && a.prefix_len == Some(8)));
    }
}
