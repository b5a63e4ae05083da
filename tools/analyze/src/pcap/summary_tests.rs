//! Summary tests on hand-built Ethernet captures, and a round trip through the pcapng
//! writer of `capture net`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::pcap::dns::tests::{query, response};
use crate::pcap::reader::tests::{classic, Ng};
use crate::pcap::timeline::timeline_events;
use crate::pcap::tls::tests::client_hello_record;
use std::net::Ipv4Addr;

const CLIENT: [u8; 4] = [192, 0, 2, 10];
const SERVER: [u8; 4] = [198, 51, 100, 20];

/// An Ethernet II frame with IPv4 and TCP (PSH|ACK) or UDP.
pub(crate) fn frame(
    src: [u8; 4],
    dst: [u8; 4],
    protocol: u8,
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&ports.0.to_be_bytes());
    l4.extend_from_slice(&ports.1.to_be_bytes());
    if protocol == IPPROTO_TCP {
        l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]);
    } else {
        l4.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(payload);
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&u16::try_from(20 + l4.len()).unwrap().to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&l4);
    f
}

fn ep(ip: [u8; 4], port: u16) -> Endpoint {
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::from(ip)),
        port: Some(port),
    }
}

/// DNS query + response, an HTTP GET and its reply, a TLS ClientHello, and an ARP frame.
fn session() -> Vec<Vec<u8>> {
    let mut arp = vec![0xFF; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    vec![
        frame(
            CLIENT,
            SERVER,
            IPPROTO_UDP,
            (40000, 53),
            &query("www.example.test", 1),
        ),
        frame(
            SERVER,
            CLIENT,
            IPPROTO_UDP,
            (53, 40000),
            &response("www.example.test"),
        ),
        frame(
            CLIENT,
            SERVER,
            IPPROTO_TCP,
            (40001, 80),
            b"GET /index.html HTTP/1.1\r\nHost: www.example.test\r\n\r\n",
        ),
        frame(SERVER, CLIENT, IPPROTO_TCP, (80, 40001), &[b'x'; 500]),
        frame(
            CLIENT,
            SERVER,
            IPPROTO_TCP,
            (40002, 443),
            &client_hello_record(b"sni.example.test"),
        ),
        arp,
    ]
}

fn check_session(s: &TrafficSummary, with_time: bool) {
    assert_eq!((s.packets, s.undecodable_packets), (6, 1));
    assert_eq!(s.undecodable_reasons.get("not_ip"), Some(&1));
    assert_eq!(
        s.link_types,
        [LinkTypeCount {
            link_type: 1,
            name: "ETHERNET",
            packets: 6
        }]
    );
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    // Both directions in one conversation; the HTTP one carries the most bytes.
    assert_eq!(s.conversations.len(), 3);
    let http = &s.conversations[0];
    assert_eq!((http.a, http.b), (ep(CLIENT, 40001), ep(SERVER, 80)));
    assert_eq!((http.packets_a_to_b, http.packets_b_to_a), (1, 1));
    assert!(http.bytes_b_to_a > 500);
    assert_eq!(s.dns.len(), 2);
    let (q, r) = (&s.dns[0], &s.dns[1]);
    assert_eq!(
        (q.client, q.server, q.is_response),
        (ep(CLIENT, 40000), ep(SERVER, 53), false)
    );
    assert_eq!(
        (q.query_name.as_str(), q.qtype_name, q.id),
        ("www.example.test", "A", 0x1234)
    );
    assert_eq!(
        (r.client, r.server, r.is_response),
        (q.client, q.server, true)
    );
    assert_eq!(r.answers.last().map(|a| a.data.as_str()), Some("192.0.2.7"));
    assert_eq!(s.http_requests.len(), 1);
    let h = &s.http_requests[0];
    assert_eq!(
        (h.method, h.host.as_deref(), h.path.as_str()),
        ("GET", Some("www.example.test"), "/index.html")
    );
    assert_eq!((h.client, h.server), (ep(CLIENT, 40001), ep(SERVER, 80)));
    assert_eq!(s.tls_client_hellos.len(), 1);
    let t = &s.tls_client_hellos[0];
    assert_eq!(
        (t.server_name.as_deref(), t.server),
        (Some("sni.example.test"), ep(SERVER, 443))
    );
    let events = timeline_events(s);
    if with_time {
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                "conversation_start",
                "dns_query",
                "conversation_start",
                "http_request",
                "conversation_start",
                "tls_sni"
            ]
        );
        assert!(events
            .windows(2)
            .all(|w| w[0].timestamp_ns <= w[1].timestamp_ns));
    } else {
        assert!(events.is_empty());
    }
}

#[test]
fn classic_session_is_summarised() {
    let frames = session();
    let recs: Vec<(u32, u32, &[u8], u32)> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                1_700_000_000 + u32::try_from(i).unwrap(),
                250_000,
                f.as_slice(),
                u32::try_from(f.len()).unwrap(),
            )
        })
        .collect();
    let file = classic(true, false, 1, &recs);
    let s = summarize(&file.as_slice(), "session.pcap").unwrap();
    check_session(&s, true);
    assert_eq!(
        s.first.as_ref().map(|t| t.utc.as_str()),
        Some("2023-11-14T22:13:20.25Z")
    );
    assert_eq!(
        s.last.as_ref().map(|t| t.timestamp_ns),
        Some(1_700_000_005_250_000_000)
    );
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["dns"][0]["utc"], "2023-11-14T22:13:20.25Z");
    assert_eq!(json["conversations"][0]["a"]["ip"], "192.0.2.10");
    assert_eq!(json["format"], "pcap");
}

#[test]
fn pcapng_session_with_simple_blocks_has_no_times() {
    let ng = Ng { big: false };
    let mut file = ng.shb();
    file.extend(ng.idb(1, None, None));
    for f in session() {
        file.extend(ng.spb(u32::try_from(f.len()).unwrap(), &f));
    }
    let s = summarize(&file.as_slice(), "session.pcapng").unwrap();
    check_session(&s, false);
    assert_eq!((s.packets_without_timestamp, s.first.clone()), (6, None));
}

#[test]
fn acquire_writer_round_trips() {
    use vestige_acquire::net::pcapng;
    let mut file = pcapng::header(
        "vestige test",
        "case 1",
        "eth0",
        pcapng::LINKTYPE_ETHERNET,
        65535,
    );
    for (i, f) in session().iter().enumerate() {
        let ts = 1_700_000_000_000_000_001 + u64::try_from(i).unwrap() * 1_000;
        file.extend(pcapng::packet(ts, f, u32::try_from(f.len()).unwrap()));
    }
    let s = summarize(&file.as_slice(), "acquired.pcapng").unwrap();
    check_session(&s, true);
    assert_eq!(s.format, CaptureFormat::PcapNg);
    assert_eq!(
        s.first.as_ref().map(|t| t.utc.as_str()),
        Some("2023-11-14T22:13:20.000000001Z")
    );
}

#[test]
fn hostile_strings_are_display_safe() {
    let req = b"GET /\x1b[2J\xff HTTP/1.1\r\nHost: evil\x1b]0;pwned\x07\r\n\r\n";
    let mut long = b"GET /".to_vec();
    long.extend_from_slice(&[b'a'; 300]);
    long.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    let frames = [
        frame(CLIENT, SERVER, IPPROTO_TCP, (1, 80), req),
        frame(CLIENT, SERVER, IPPROTO_TCP, (1, 80), &long),
        frame(
            CLIENT,
            SERVER,
            IPPROTO_TCP,
            (2, 443),
            &client_hello_record(b"a\nb"),
        ),
    ];
    let recs: Vec<(u32, u32, &[u8], u32)> =
        frames.iter().map(|f| (1, 0, f.as_slice(), 0)).collect();
    let s = summarize(&classic(false, true, 1, &recs).as_slice(), "x").unwrap();
    let h = &s.http_requests[0];
    assert_eq!(h.path, "/\\x1b[2J\\xff");
    assert_eq!(h.host.as_deref(), Some("evil\\x1b]0;pwned\\x07"));
    assert_eq!(
        (
            s.http_requests[1].path.len(),
            s.http_requests[1].path_truncated
        ),
        (200, true)
    );
    assert_eq!(
        s.tls_client_hellos[0].server_name.as_deref(),
        Some("a\\x0ab")
    );
    for e in timeline_events(&s) {
        assert!(
            !e.description.bytes().any(|b| b.is_ascii_control()),
            "{}",
            e.description
        );
    }
}

#[test]
fn partial_capture_keeps_what_was_read() {
    let frames = session();
    let recs: Vec<(u32, u32, &[u8], u32)> =
        frames.iter().map(|f| (1, 0, f.as_slice(), 0)).collect();
    let file = classic(false, false, 1, &recs);
    let s = summarize(&file[..file.len() - 3].as_ref(), "cut.pcap").unwrap();
    assert_eq!(s.packets, 5);
    assert_eq!(s.errors.len(), 1);
    assert!(
        s.errors[0].starts_with("cut.pcap: capture at byte "),
        "{}",
        s.errors[0]
    );
    assert!(s.errors[0].contains("pcap record data"), "{}", s.errors[0]);
    let e = summarize(&&b"not a capture"[..], "junk.bin").err().unwrap();
    assert_eq!(e.to_string(), "junk.bin");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn dns_over_tcp_has_a_length_prefix() {
    let q = query("tcp.example.test", 28);
    let mut payload = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
    payload.extend_from_slice(&q);
    let f = frame(CLIENT, SERVER, IPPROTO_TCP, (5000, 53), &payload);
    let s = summarize(&classic(false, false, 1, &[(1, 0, &f, 0)]).as_slice(), "t").unwrap();
    assert_eq!(s.dns.len(), 1);
    assert_eq!(
        (
            s.dns[0].transport,
            s.dns[0].qtype_name,
            s.dns[0].query_name.as_str()
        ),
        ("tcp", "AAAA", "tcp.example.test")
    );
}
