//! Timeline events from a traffic summary, for the super-timeline: each conversation's
//! start, DNS queries, TLS server names and HTTP requests, one display-safe line each.

use super::summary::{CaptureTime, TrafficSummary};
use serde::Serialize;

/// An entry for the super-timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEvent {
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// RFC 3339 UTC.
    pub utc: String,
    /// Always `pcap`.
    pub source: &'static str,
    /// `dns_query`, `tls_sni`, `http_request` or `conversation_start`.
    pub kind: &'static str,
    /// One display-safe line.
    pub description: String,
}

/// Timeline events of a summary, by time: each conversation's start, DNS queries (not
/// responses), TLS hellos with a server name and HTTP requests. Items without a
/// timestamp cannot be placed and are left out.
#[must_use]
pub fn timeline_events(s: &TrafficSummary) -> Vec<TimelineEvent> {
    let mut events = Vec::new();
    let mut push = |time: &Option<CaptureTime>, kind: &'static str, description: String| {
        if let Some(t) = time {
            events.push(TimelineEvent {
                timestamp_ns: t.timestamp_ns,
                utc: t.utc.clone(),
                source: "pcap",
                kind,
                description,
            });
        }
    };
    for c in &s.conversations {
        let packets = c.packets_a_to_b.saturating_add(c.packets_b_to_a);
        let bytes = c.bytes_a_to_b.saturating_add(c.bytes_b_to_a);
        let what = format!(
            "{} {} -> {}: {packets} packets, {bytes} bytes",
            c.protocol_name, c.a, c.b
        );
        push(&c.first, "conversation_start", what);
    }
    for d in s.dns.iter().filter(|d| !d.is_response) {
        let what = format!(
            "DNS {} query {} from {} to {}",
            d.qtype_name, d.query_name, d.client, d.server
        );
        push(&d.time, "dns_query", what);
    }
    for h in &s.tls_client_hellos {
        if let Some(name) = &h.server_name {
            let what = format!(
                "TLS ClientHello SNI {name} from {} to {}",
                h.client, h.server
            );
            push(&h.time, "tls_sni", what);
        }
    }
    for r in &s.http_requests {
        let host = r.host.as_deref().unwrap_or("(no Host)");
        let what = format!(
            "HTTP {} {host} {} from {} to {}",
            r.method, r.path, r.client, r.server
        );
        push(&r.time, "http_request", what);
    }
    events.sort_by_key(|e| e.timestamp_ns);
    events
}
