//! Sockets from /proc/net/{tcp,tcp6,udp,udp6,raw,raw6} and /proc/net/unix.
//!
//! The kernel prints each IPv4 address as `%08X` of the `__be32` loaded as a native `u32`,
//! and each IPv6 address as four such words (`tcp6_seq_show`, `udp6_seq_show`), so every
//! 32-bit word is byte-swapped on little-endian machines: `0100007F` is 127.0.0.1 on x86.
//! Ports are printed after `ntohs`, so they read as plain hex. These files describe the
//! network namespace of the reading process only.

use crate::table::{fields, fields_and_rest, hex, parse_lines, ParseError, Parsed};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A process holding a socket open (one socket may be shared by several, e.g. after fork).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SocketOwner {
    /// Process id.
    pub pid: u32,
    /// The process's `comm`.
    pub name: String,
}

/// One IPv4/IPv6 socket (TCP, UDP or raw).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// `tcp`, `tcp6`, `udp`, `udp6`, `raw` or `raw6`: the /proc/net file it came from.
    pub protocol: String,
    /// Local address.
    pub local_address: IpAddr,
    /// Local port (for raw sockets: the IP protocol number).
    pub local_port: u16,
    /// Remote address (unspecified when not connected).
    pub remote_address: IpAddr,
    /// Remote port (0 when not connected).
    pub remote_port: u16,
    /// State name as `ss` prints it (`LISTEN`, `ESTABLISHED`, … ; `UNCONN` for an
    /// unconnected UDP or raw socket), or `UNKNOWN(0xNN)`.
    pub state: String,
    /// The raw state number (`include/net/tcp_states.h`).
    pub state_code: u8,
    /// Owner's effective uid when the socket was created.
    pub uid: u32,
    /// Socket inode: the key to `socket:[N]` links under /proc/PID/fd. 0 for sockets no
    /// longer attached to a file (e.g. TIME_WAIT).
    pub inode: u64,
    /// Processes with this socket open, filled in after the process walk.
    pub owners: Vec<SocketOwner>,
}

/// The socket tables under /proc/net that [`parse_inet_sockets`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InetTable {
    /// /proc/net/tcp
    Tcp,
    /// /proc/net/tcp6
    Tcp6,
    /// /proc/net/udp
    Udp,
    /// /proc/net/udp6
    Udp6,
    /// /proc/net/raw
    Raw,
    /// /proc/net/raw6
    Raw6,
}

impl InetTable {
    /// All tables, in collection order.
    pub const ALL: [InetTable; 6] = [
        InetTable::Tcp,
        InetTable::Tcp6,
        InetTable::Udp,
        InetTable::Udp6,
        InetTable::Raw,
        InetTable::Raw6,
    ];

    /// File name under /proc/net, also the [`Socket::protocol`] value.
    pub fn name(self) -> &'static str {
        match self {
            InetTable::Tcp => "tcp",
            InetTable::Tcp6 => "tcp6",
            InetTable::Udp => "udp",
            InetTable::Udp6 => "udp6",
            InetTable::Raw => "raw",
            InetTable::Raw6 => "raw6",
        }
    }

    fn is_tcp(self) -> bool {
        matches!(self, InetTable::Tcp | InetTable::Tcp6)
    }
}

/// The name of a socket state number (`include/net/tcp_states.h`). UDP and raw sockets
/// reuse the numbers: 1 is a connected socket and 7 (TCP_CLOSE) an unconnected one, which
/// `ss` shows as `UNCONN`.
pub fn state_name(table: InetTable, code: u8) -> String {
    let name = match (code, table.is_tcp()) {
        (0x01, _) => "ESTABLISHED",
        (0x07, false) => "UNCONN",
        (0x02, true) => "SYN_SENT",
        (0x03, true) => "SYN_RECV",
        (0x04, true) => "FIN_WAIT1",
        (0x05, true) => "FIN_WAIT2",
        (0x06, true) => "TIME_WAIT",
        (0x07, true) => "CLOSE",
        (0x08, true) => "CLOSE_WAIT",
        (0x09, true) => "LAST_ACK",
        (0x0A, true) => "LISTEN",
        (0x0B, true) => "CLOSING",
        (0x0C, true) => "NEW_SYN_RECV",
        _ => return format!("UNKNOWN(0x{code:02X})"),
    };
    name.to_string()
}

/// Decodes one 32-bit word as the kernel printed it: `%08X` of bytes that were in network
/// order in memory, read as a native-endian `u32`.
fn word_bytes(line: usize, field: &'static str, text: &str) -> Result<[u8; 4], ParseError> {
    hex::<u32>(line, field, text).map(u32::to_ne_bytes)
}

/// An address as printed in `/proc/net/{tcp,udp,raw}[6]` and /proc/net/route: 8 hex digits
/// for IPv4, 32 (four words) for IPv6.
pub fn decode_hex_address(
    line: usize,
    field: &'static str,
    text: &str,
) -> Result<IpAddr, ParseError> {
    match text.len() {
        8 => Ok(IpAddr::V4(Ipv4Addr::from(word_bytes(line, field, text)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let start = i.saturating_mul(8);
                let word = text
                    .get(start..start.saturating_add(8))
                    .ok_or_else(|| ParseError::field(line, field, "32 hex digits", text))?;
                chunk.copy_from_slice(&word_bytes(line, field, word)?);
            }
            Ok(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => Err(ParseError::field(line, field, "8 or 32 hex digits", text)),
    }
}

/// `ADDRESS:PORT` as in /proc/net/tcp (`0100007F:1F90` is 127.0.0.1:8080).
pub fn decode_endpoint(
    line: usize,
    field: &'static str,
    text: &str,
) -> Result<(IpAddr, u16), ParseError> {
    let (addr, port) = text
        .split_once(':')
        .ok_or_else(|| ParseError::field(line, field, "ADDRESS:PORT", text))?;
    Ok((
        decode_hex_address(line, field, addr)?,
        hex(line, field, port)?,
    ))
}

/// Parses /proc/net/{tcp,tcp6,udp,udp6,raw,raw6} (header line, then one socket per line:
/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout
/// inode …`). [`Socket::owners`] is left empty.
pub fn parse_inet_sockets(text: &str, table: InetTable) -> Parsed<Socket> {
    parse_lines(text, 1, |n, line| {
        let f = fields(n, line, 10)?;
        let field = |i: usize| f.get(i).copied().unwrap_or_default();
        let (local_address, local_port) = decode_endpoint(n, "local_address", field(1))?;
        let (remote_address, remote_port) = decode_endpoint(n, "rem_address", field(2))?;
        let state_code: u8 = hex(n, "st", field(3))?;
        Ok(Some(Socket {
            protocol: table.name().to_string(),
            local_address,
            local_port,
            remote_address,
            remote_port,
            state: state_name(table, state_code),
            state_code,
            uid: crate::table::dec(n, "uid", field(7))?,
            inode: crate::table::dec(n, "inode", field(9))?,
            owners: Vec::new(),
        }))
    })
}

/// `__SO_ACCEPTCON` in the Flags column of /proc/net/unix: the socket is listening.
const UNIX_FLAG_LISTENING: u32 = 0x0001_0000;

/// One Unix-domain socket from /proc/net/unix.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// Socket inode (key to `socket:[N]` under /proc/PID/fd).
    pub inode: u64,
    /// Reference count.
    pub ref_count: u32,
    /// Raw Flags column.
    pub flags: u32,
    /// Whether the socket is listening (`__SO_ACCEPTCON` in Flags).
    pub listening: bool,
    /// `STREAM`, `DGRAM`, `SEQPACKET` or `UNKNOWN(N)`.
    pub socket_type: String,
    /// Raw Type column.
    pub type_code: u16,
    /// `UNCONNECTED`, `CONNECTING`, `CONNECTED`, `DISCONNECTING` or `UNKNOWN(N)`.
    pub state: String,
    /// Raw St column (`socket_state` in `include/uapi/linux/net.h`).
    pub state_code: u8,
    /// Bound path; abstract names start with `@`. `None` when unbound.
    pub path: Option<String>,
    /// Processes with this socket open, filled in after the process walk.
    pub owners: Vec<SocketOwner>,
}

/// Parses /proc/net/unix (`Num RefCount Protocol Flags Type St Inode Path`). The path is
/// everything after the inode, so paths with spaces survive; [`UnixSocket::owners`] is left
/// empty.
pub fn parse_unix_sockets(text: &str) -> Parsed<UnixSocket> {
    parse_lines(text, 1, |n, line| {
        let (f, rest) = fields_and_rest(n, line, 7)?;
        let field = |i: usize| f.get(i).copied().unwrap_or_default();
        let flags: u32 = hex(n, "Flags", field(3))?;
        let type_code: u16 = hex(n, "Type", field(4))?;
        let state_code: u8 = hex(n, "St", field(5))?;
        let socket_type = match type_code {
            1 => "STREAM".to_string(),
            2 => "DGRAM".to_string(),
            5 => "SEQPACKET".to_string(),
            other => format!("UNKNOWN({other})"),
        };
        let state = match state_code {
            1 => "UNCONNECTED".to_string(),
            2 => "CONNECTING".to_string(),
            3 => "CONNECTED".to_string(),
            4 => "DISCONNECTING".to_string(),
            other => format!("UNKNOWN({other})"),
        };
        let path = rest.trim_end_matches(['\r', '\n']);
        Ok(Some(UnixSocket {
            inode: crate::table::dec(n, "Inode", field(6))?,
            ref_count: hex(n, "RefCount", field(1))?,
            flags,
            listening: flags & UNIX_FLAG_LISTENING != 0,
            socket_type,
            type_code,
            state,
            state_code,
            path: (!path.is_empty())
                .then(|| crate::table::cap(path, crate::table::MAX_STRING_BYTES)),
            owners: Vec::new(),
        }))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 552 1 0000000035067d21 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 7781 1 0000000000000000 20 4 30 10 -1
   2: nonsense
";

    #[test]
    fn tcp_ipv4_lines() {
        let p = parse_inet_sockets(TCP, InetTable::Tcp);
        assert_eq!(p.items.len(), 2);
        assert_eq!(
            p.errors,
            [ParseError::TooFewFields {
                line: 4,
                expected: 10,
                found: 2
            }]
        );
        let s = &p.items[0];
        assert_eq!(s.protocol, "tcp");
        assert_eq!(s.state, "LISTEN");
        assert_eq!(s.inode, 552);
        assert_eq!(s.uid, 0);
        assert_eq!(s.remote_address, "0.0.0.0".parse::<IpAddr>().unwrap());
        let s = &p.items[1];
        assert_eq!(s.remote_port, 50000);
        assert_eq!(s.state, "ESTABLISHED");
        assert_eq!(s.uid, 1000);
    }

    // The expected addresses assume a little-endian kernel, as on x86-64 and arm64.
    #[cfg(target_endian = "little")]
    #[test]
    fn known_addresses() {
        assert_eq!(
            decode_endpoint(1, "a", "0100007F:1F90").unwrap(),
            ("127.0.0.1".parse().unwrap(), 8080)
        );
        assert_eq!(
            decode_endpoint(1, "a", "0000000000000000FFFF00000100007F:0050").unwrap(),
            ("::ffff:127.0.0.1".parse().unwrap(), 80)
        );
        assert_eq!(
            decode_endpoint(1, "a", "00000000000000000000000001000000:0016").unwrap(),
            ("::1".parse().unwrap(), 22)
        );
        // fe80::1 on the wire: fe 80 00 00 … 00 01; the first word prints as 000080FE.
        assert_eq!(
            decode_hex_address(1, "a", "000080FE000000000000000001000000").unwrap(),
            "fe80::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            decode_hex_address(1, "a", "0102A8C0").unwrap(),
            "192.168.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn tcp6_line() {
        let text = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21318 1 0000000000000000 100 0 0 10 0
";
        let p = parse_inet_sockets(text, InetTable::Tcp6);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let s = &p.items[0];
        assert_eq!(s.local_address, "::".parse::<IpAddr>().unwrap());
        assert_eq!(
            (s.local_port, s.state.as_str(), s.inode),
            (22, "LISTEN", 21318)
        );
        assert_eq!(s.protocol, "tcp6");
    }

    #[test]
    fn udp_states() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 1993 2 0000000000000000 0
";
        let p = parse_inet_sockets(text, InetTable::Udp);
        assert_eq!(p.items[0].state, "UNCONN");
        assert_eq!(p.items[0].local_port, 53);
        assert_eq!(state_name(InetTable::Tcp, 0x7F), "UNKNOWN(0x7F)");
    }

    #[test]
    fn bad_addresses_are_errors() {
        for bad in [
            "0100007F",
            "0100007G:1F90",
            "0100007F:1F9000",
            "01007F:0050",
            "é0000000:0000",
            ":",
        ] {
            assert!(decode_endpoint(1, "a", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_lines() {
        let text = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 21305 /run/dbus/system_bus_socket
0000000000000000: 00000003 00000000 00000000 0001 03 1142
0000000000000000: 00000002 00000000 00000000 0002 01 33 @abstract name with spaces
0000000000000000: 00000002 00000000 00000000 0002 01
";
        let p = parse_unix_sockets(text);
        assert_eq!(p.items.len(), 3);
        assert_eq!(p.errors.len(), 1);
        let s = &p.items[0];
        assert!(s.listening);
        assert_eq!(
            (s.inode, s.socket_type.as_str(), s.state.as_str()),
            (21305, "STREAM", "UNCONNECTED")
        );
        assert_eq!(s.path.as_deref(), Some("/run/dbus/system_bus_socket"));
        assert_eq!(p.items[1].path, None);
        assert_eq!(p.items[1].state, "CONNECTED");
        assert_eq!(
            p.items[2].path.as_deref(),
            Some("@abstract name with spaces")
        );
        assert_eq!(p.items[2].socket_type, "DGRAM");
    }
}
