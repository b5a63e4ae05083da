//! A traffic summary of one capture: conversations, DNS lookups, TLS server names and
//! HTTP requests, with counts and the capture's time span ([`super::timeline`] turns it
//! into events for the super-timeline).
//!
//! The summary is built in one pass over [`PcapReader`]; nothing is reassembled, so TLS
//! and HTTP are read from the segment that starts them. A read error ends the pass but
//! not the summary: what was read before it is returned with the error in `errors`
//! (partial success is data). Every string taken from the capture goes through
//! [`display_safe`].

use super::decode::{decode, link_type_name, IPPROTO_TCP, IPPROTO_UDP};
use super::dns::{self, rtype_name, DnsAnswer};
use super::reader::{CaptureFormat, Packet, PcapError, PcapReader};
use super::{display_safe, http, tls};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use vestige_evidence::read_at::ReadAt;

/// The DNS port (RFC 1035 §4.2).
const DNS_PORT: u16 = 53;
/// HTTP request targets are cut to this many bytes (query strings can be kilobytes).
const MAX_PATH_BYTES: usize = 200;

/// A point in time: nanoseconds since the Unix epoch and the same in RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CaptureTime {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    pub timestamp_ns: u64,
    /// RFC 3339, UTC, nanosecond precision.
    pub utc: String,
}

impl CaptureTime {
    /// Formats `timestamp_ns` (every u64 value is a valid year ≤ 2554).
    #[must_use]
    pub fn from_ns(timestamp_ns: u64) -> Self {
        let utc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ns))
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        Self { timestamp_ns, utc }
    }
}

/// An IP address and, for TCP/UDP, a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Endpoint {
    /// IPv4 or IPv6 address.
    pub ip: IpAddr,
    /// TCP/UDP port; `None` for other protocols and non-first fragments.
    pub port: Option<u16>,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (IpAddr::V6(ip), Some(p)) => write!(f, "[{ip}]:{p}"),
            (ip, Some(p)) => write!(f, "{ip}:{p}"),
            (ip, None) => write!(f, "{ip}"),
        }
    }
}

/// Both directions of one 5-tuple. `a` is the source of the first packet seen (usually
/// the initiator, unless the capture began mid-flow). Bytes are lengths on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversation {
    /// IP protocol number.
    pub protocol: u8,
    /// `tcp`, `udp`, `icmp`, `icmpv6` or `other`.
    pub protocol_name: &'static str,
    /// The first packet's source.
    pub a: Endpoint,
    /// The first packet's destination.
    pub b: Endpoint,
    /// Packets from `a` to `b`.
    pub packets_a_to_b: u64,
    /// Wire bytes from `a` to `b`.
    pub bytes_a_to_b: u64,
    /// Packets from `b` to `a`.
    pub packets_b_to_a: u64,
    /// Wire bytes from `b` to `a`.
    pub bytes_b_to_a: u64,
    /// Earliest packet time.
    pub first: Option<CaptureTime>,
    /// Latest packet time.
    pub last: Option<CaptureTime>,
    /// Index of the first packet, for finding it in the capture.
    pub first_packet_index: u64,
}

/// One DNS question, from a query or a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    /// When the packet was captured.
    #[serde(flatten)]
    pub time: Option<CaptureTime>,
    /// Index of the packet in the capture.
    pub packet_index: u64,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// The asking side.
    pub client: Endpoint,
    /// The side on port 53.
    pub server: Endpoint,
    /// Transaction id (pairs queries with responses).
    pub id: u16,
    /// QR bit.
    pub is_response: bool,
    /// RCODE (0 = no error, 3 = NXDOMAIN).
    pub rcode: u8,
    /// The question name, display-safe.
    pub query_name: String,
    /// QTYPE number.
    pub qtype: u16,
    /// QTYPE mnemonic.
    pub qtype_name: &'static str,
    /// A, AAAA and CNAME answers (responses only).
    pub answers: Vec<DnsAnswer>,
}

/// A TLS ClientHello found at the start of a TCP segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsClientHello {
    /// When the packet was captured.
    #[serde(flatten)]
    pub time: Option<CaptureTime>,
    /// Index of the packet in the capture.
    pub packet_index: u64,
    /// The sender of the hello.
    pub client: Endpoint,
    /// Its destination.
    pub server: Endpoint,
    /// The SNI host name, display-safe.
    pub server_name: Option<String>,
    /// Record layer version.
    pub record_version: u16,
    /// ClientHello `legacy_version`.
    pub client_version: u16,
}

/// An HTTP/1.x request found at the start of a TCP segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRequest {
    /// When the packet was captured.
    #[serde(flatten)]
    pub time: Option<CaptureTime>,
    /// Index of the packet in the capture.
    pub packet_index: u64,
    /// The requesting side.
    pub client: Endpoint,
    /// The server.
    pub server: Endpoint,
    /// Method token.
    pub method: &'static str,
    /// `Host` header, display-safe.
    pub host: Option<String>,
    /// Request target, first 200 bytes, display-safe.
    pub path: String,
    /// Whether the target was longer than 200 bytes.
    pub path_truncated: bool,
}

/// Packets per link type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkTypeCount {
    /// LINKTYPE_* value.
    pub link_type: u16,
    /// Its name, or `other`.
    pub name: &'static str,
    /// Packets with this link type.
    pub packets: u64,
}

/// What one capture file holds; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficSummary {
    /// The label the caller gave the file.
    pub source: String,
    /// pcap or pcapng.
    pub format: CaptureFormat,
    /// Packets read.
    pub packets: u64,
    /// Bytes captured (kept in the file).
    pub captured_bytes: u64,
    /// Bytes on the wire, as recorded.
    pub original_bytes: u64,
    /// Packets without a timestamp (pcapng Simple Packet Blocks).
    pub packets_without_timestamp: u64,
    /// Packets that gave no IP packet; they are in no conversation.
    pub undecodable_packets: u64,
    /// `undecodable_packets` by reason.
    pub undecodable_reasons: BTreeMap<&'static str, u64>,
    /// Packets per link type, ascending.
    pub link_types: Vec<LinkTypeCount>,
    /// Earliest packet time (captures are not always in order).
    pub first: Option<CaptureTime>,
    /// Latest packet time.
    pub last: Option<CaptureTime>,
    /// Conversations, most bytes first.
    pub conversations: Vec<Conversation>,
    /// DNS questions in capture order.
    pub dns: Vec<DnsRecord>,
    /// TLS ClientHellos in capture order.
    pub tls_client_hellos: Vec<TlsClientHello>,
    /// HTTP requests in capture order.
    pub http_requests: Vec<HttpRequest>,
    /// Why reading stopped early, with the file label and byte offset; empty when the
    /// whole file was read.
    pub errors: Vec<String>,
}

/// Summarises the capture in `reader`; `path_label` names it in errors and the result.
///
/// # Errors
/// Only when the file is not a capture at all (unknown magic, damaged header); errors
/// later in the file end up in [`TrafficSummary::errors`].
pub fn summarize(reader: &dyn ReadAt, path_label: &str) -> Result<TrafficSummary, PcapError> {
    let packets = PcapReader::new(reader).map_err(|e| PcapError::InFile {
        path: path_label.to_string(),
        source: Box::new(e),
    })?;
    let mut s = TrafficSummary {
        source: path_label.to_string(),
        format: packets.format(),
        packets: 0,
        captured_bytes: 0,
        original_bytes: 0,
        packets_without_timestamp: 0,
        undecodable_packets: 0,
        undecodable_reasons: BTreeMap::new(),
        link_types: Vec::new(),
        first: None,
        last: None,
        conversations: Vec::new(),
        dns: Vec::new(),
        tls_client_hellos: Vec::new(),
        http_requests: Vec::new(),
        errors: Vec::new(),
    };
    let mut link_types: BTreeMap<u16, u64> = BTreeMap::new();
    let mut conversations: HashMap<(u8, Endpoint, Endpoint), usize> = HashMap::new();
    for item in packets {
        let packet = match item {
            Ok(p) => p,
            Err(e) => {
                s.errors.push(format!("{path_label}: {}", with_sources(&e)));
                break;
            }
        };
        *link_types.entry(packet.link_type).or_default() += 1;
        add_packet(&mut s, &mut conversations, &packet);
    }
    s.link_types = link_types
        .into_iter()
        .map(|(link_type, packets)| LinkTypeCount {
            link_type,
            name: link_type_name(link_type),
            packets,
        })
        .collect();
    s.conversations.sort_by(|x, y| {
        let total = |c: &Conversation| c.bytes_a_to_b.saturating_add(c.bytes_b_to_a);
        total(y)
            .cmp(&total(x))
            .then(x.first_packet_index.cmp(&y.first_packet_index))
    });
    Ok(s)
}

/// An error and its sources on one line (Display of each level names only its own part).
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        line.push_str(": ");
        line.push_str(&s.to_string());
        source = s.source();
    }
    line
}

fn add_packet(
    s: &mut TrafficSummary,
    index: &mut HashMap<(u8, Endpoint, Endpoint), usize>,
    p: &Packet,
) {
    let wire = u64::from(p.original_len);
    s.packets = s.packets.saturating_add(1);
    s.captured_bytes = s
        .captured_bytes
        .saturating_add(u64::try_from(p.captured.len()).unwrap_or(u64::MAX));
    s.original_bytes = s.original_bytes.saturating_add(wire);
    let time = p.timestamp_ns.map(CaptureTime::from_ns);
    match &time {
        None => s.packets_without_timestamp = s.packets_without_timestamp.saturating_add(1),
        Some(t) => {
            if s.first.as_ref().is_none_or(|f| t < f) {
                s.first = Some(t.clone());
            }
            if s.last.as_ref().is_none_or(|l| t > l) {
                s.last = Some(t.clone());
            }
        }
    }
    let d = match decode(p.link_type, &p.captured) {
        Ok(d) => d,
        Err(why) => {
            s.undecodable_packets = s.undecodable_packets.saturating_add(1);
            *s.undecodable_reasons.entry(why.as_str()).or_default() += 1;
            return;
        }
    };
    let src = Endpoint {
        ip: d.src,
        port: d.ports.map(|(sp, _)| sp),
    };
    let dst = Endpoint {
        ip: d.dst,
        port: d.ports.map(|(_, dp)| dp),
    };
    let key = (d.protocol, src.min(dst), src.max(dst));
    let slot = *index.entry(key).or_insert_with(|| {
        s.conversations.push(Conversation {
            protocol: d.protocol,
            protocol_name: protocol_name(d.protocol),
            a: src,
            b: dst,
            packets_a_to_b: 0,
            bytes_a_to_b: 0,
            packets_b_to_a: 0,
            bytes_b_to_a: 0,
            first: None,
            last: None,
            first_packet_index: p.index,
        });
        s.conversations.len().saturating_sub(1)
    });
    if let Some(c) = s.conversations.get_mut(slot) {
        if c.a == src {
            c.packets_a_to_b = c.packets_a_to_b.saturating_add(1);
            c.bytes_a_to_b = c.bytes_a_to_b.saturating_add(wire);
        } else {
            c.packets_b_to_a = c.packets_b_to_a.saturating_add(1);
            c.bytes_b_to_a = c.bytes_b_to_a.saturating_add(wire);
        }
        if let Some(t) = &time {
            if c.first.as_ref().is_none_or(|f| t < f) {
                c.first = Some(t.clone());
            }
            if c.last.as_ref().is_none_or(|l| t > l) {
                c.last = Some(t.clone());
            }
        }
    }
    if d.payload.is_empty() {
        return;
    }
    let is_dns = d.ports.is_some_and(|(a, b)| a == DNS_PORT || b == DNS_PORT);
    match d.protocol {
        IPPROTO_UDP if is_dns => add_dns(s, p, &time, "udp", src, dst, d.payload),
        IPPROTO_TCP if is_dns => {
            // DNS over TCP: a 2-byte length, then the message (RFC 1035 §4.2.2).
            if let Some((len, rest)) = d.payload.split_first_chunk::<2>() {
                if let Some(msg) = rest.get(..usize::from(u16::from_be_bytes(*len))) {
                    add_dns(s, p, &time, "tcp", src, dst, msg);
                }
            }
        }
        IPPROTO_TCP => add_tcp_application(s, p, &time, src, dst, d.payload),
        _ => {}
    }
}

fn protocol_name(protocol: u8) -> &'static str {
    match protocol {
        1 => "icmp",
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        58 => "icmpv6",
        _ => "other",
    }
}

fn add_dns(
    s: &mut TrafficSummary,
    p: &Packet,
    time: &Option<CaptureTime>,
    transport: &'static str,
    src: Endpoint,
    dst: Endpoint,
    msg: &[u8],
) {
    let Some(m) = dns::parse(msg) else {
        return;
    };
    // The server is the side on port 53; if both are, the direction of the message says.
    let src_is_server = match (src.port, dst.port) {
        (Some(DNS_PORT), Some(DNS_PORT)) => m.is_response,
        (Some(DNS_PORT), _) => true,
        _ => false,
    };
    let (client, server) = if src_is_server {
        (dst, src)
    } else {
        (src, dst)
    };
    for (query_name, qtype) in m.questions {
        s.dns.push(DnsRecord {
            time: time.clone(),
            packet_index: p.index,
            transport,
            client,
            server,
            id: m.id,
            is_response: m.is_response,
            rcode: m.rcode,
            query_name,
            qtype,
            qtype_name: rtype_name(qtype),
            answers: m.answers.clone(),
        });
    }
}

/// TLS ClientHello or HTTP request at the start of a TCP segment; the sender is the client.
fn add_tcp_application(
    s: &mut TrafficSummary,
    p: &Packet,
    time: &Option<CaptureTime>,
    client: Endpoint,
    server: Endpoint,
    payload: &[u8],
) {
    if let Some(hello) = tls::client_hello(payload) {
        s.tls_client_hellos.push(TlsClientHello {
            time: time.clone(),
            packet_index: p.index,
            client,
            server,
            server_name: hello.server_name.map(display_safe),
            record_version: hello.record_version,
            client_version: hello.client_version,
        });
    } else if let Some(req) = http::request(payload) {
        let path = req.target.get(..MAX_PATH_BYTES).unwrap_or(req.target);
        s.http_requests.push(HttpRequest {
            time: time.clone(),
            packet_index: p.index,
            client,
            server,
            method: req.method,
            host: req.host.map(display_safe),
            path: display_safe(path),
            path_truncated: req.target.len() > MAX_PATH_BYTES,
        });
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
