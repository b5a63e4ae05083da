//! Real captures by stock tools: tcpdump records loopback traffic this test makes (a DNS
//! query and answer over UDP, an HTTP GET, a TLS ClientHello), in microsecond and
//! nanosecond pcap (and pcapng when dumpcap is installed), and the summary must find
//! exactly that traffic with the right ports and directions. Packet counts are
//! cross-checked with `tcpdump -r`.
//!
//! Needs root and tcpdump; without them the test passes with a note on stderr, unless
//! `VESTIGE_REQUIRE_TOOLS=1`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vestige_analyze::pcap::{summarize, timeline_events, CaptureFormat, Endpoint};
use vestige_evidence::read_at::FileReader;

fn tools_required() -> bool {
    std::env::var("VESTIGE_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// Passes with a note, or fails when the tools are required.
fn skip(why: &str) {
    assert!(!tools_required(), "VESTIGE_REQUIRE_TOOLS=1 but {why}");
    eprintln!("pcap_real: skipped: {why}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A capture process writing `path`, ready once its stderr said `ready_marker`.
struct Capture {
    child: Child,
    path: PathBuf,
    /// The tool's stderr lines.
    log: Arc<Mutex<Vec<String>>>,
}

/// Starts `tool`; `Err` with its stderr when it exits or stays silent instead of
/// capturing (no CAP_NET_RAW in a container, say).
fn start(
    tool: &str,
    args: &[&str],
    path: &Path,
    ready_marker: &'static str,
) -> Result<Capture, String> {
    let mut child = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the capture tool");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log_lines = Arc::clone(&log);
    // Keep draining stderr so the tool never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(ready_marker) {
                let _ = tx.send(());
            }
            log_lines.lock().unwrap().push(line);
        }
    });
    if rx.recv_timeout(Duration::from_secs(15)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        let log = log.lock().unwrap().join("\n");
        return Err(format!("{tool} did not start capturing on lo: {log}"));
    }
    Ok(Capture {
        child,
        path: path.to_path_buf(),
        log,
    })
}

impl Capture {
    /// SIGINT: tcpdump and dumpcap flush and close the file on it.
    fn stop(mut self) -> PathBuf {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let status = self.child.wait().expect("wait for the capture tool");
        assert!(status.success() || status.code().is_none(), "{status}");
        // The reader thread ends with the pipe; give it a moment to store the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().unwrap().join("\n");
        // A dropped packet would make the expected counts below fail for a reason that
        // has nothing to do with the reader: say so instead.
        let dropped = log.lines().find(|l| l.contains("dropped by kernel"));
        assert!(
            dropped.is_none_or(|l| l.starts_with("0 ")),
            "the capture tool dropped packets:\n{log}"
        );
        self.path
    }
}

/// A DNS query for www.example.test, type A, id 0xBEEF; or its answer 192.0.2.7.
fn dns_message(response: bool) -> Vec<u8> {
    let flags: [u8; 2] = if response { [0x81, 0x80] } else { [0x01, 0x00] };
    let mut m = vec![
        0xBE,
        0xEF,
        flags[0],
        flags[1],
        0,
        1,
        0,
        u8::from(response),
        0,
        0,
        0,
        0,
    ];
    for label in ["www", "example", "test"] {
        m.push(u8::try_from(label.len()).unwrap());
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    if response {
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
    }
    m
}

/// A TLS 1.2-style ClientHello record asking for sni.example.test.
fn client_hello() -> Vec<u8> {
    let name = b"sni.example.test";
    let n = u16::try_from(name.len()).unwrap();
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&(n + 5).to_be_bytes());
    ext.extend_from_slice(&(n + 3).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&n.to_be_bytes());
    ext.extend_from_slice(name);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&ext);
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut hs = vec![1, len[1], len[2], len[3]];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&u16::try_from(hs.len()).unwrap().to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// The endpoints of each exchange, as the sockets saw them.
struct Traffic {
    dns: (SocketAddr, SocketAddr),
    http: (SocketAddr, SocketAddr),
    tls: (SocketAddr, SocketAddr),
}

fn make_traffic(server_ip: Ipv4Addr) -> Traffic {
    let timeout = Some(Duration::from_secs(5));
    // DNS over UDP to port 53 of a loopback address of our own (root may bind it).
    let server = UdpSocket::bind((server_ip, 53)).expect("bind UDP port 53");
    let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    client.set_read_timeout(timeout).unwrap();
    server.set_read_timeout(timeout).unwrap();
    client
        .send_to(&dns_message(false), server.local_addr().unwrap())
        .unwrap();
    let mut buf = [0u8; 512];
    let (_, from) = server.recv_from(&mut buf).unwrap();
    server.send_to(&dns_message(true), from).unwrap();
    client.recv_from(&mut buf).unwrap();
    let dns = (client.local_addr().unwrap(), server.local_addr().unwrap());

    // HTTP GET, one write so it is one segment.
    let listener = TcpListener::bind((server_ip, 0)).unwrap();
    let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    c.write_all(b"GET /vestige-test?x=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n")
        .unwrap();
    let mut req = [0u8; 256];
    let _ = s.read(&mut req).unwrap();
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .unwrap();
    drop(s);
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).unwrap();
    let http = (c.local_addr().unwrap(), listener.local_addr().unwrap());
    drop(c);

    // TLS ClientHello; the server just closes.
    let listener = TcpListener::bind((server_ip, 0)).unwrap();
    let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    c.write_all(&client_hello()).unwrap();
    let _ = s.read(&mut req).unwrap();
    drop(s);
    let tls = (c.local_addr().unwrap(), listener.local_addr().unwrap());
    Traffic { dns, http, tls }
}

fn ep(a: SocketAddr) -> Endpoint {
    Endpoint {
        ip: a.ip(),
        port: Some(a.port()),
    }
}

/// `tcpdump -r` of `path`: one line per packet with -n -q.
fn tcpdump_text(path: &Path) -> String {
    let out = Command::new("tcpdump")
        .args(["-n", "-q", "-r"])
        .arg(path)
        .stderr(Stdio::null())
        .output()
        .expect("run tcpdump -r");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Packets in `path` according to `tcpdump -r`.
fn tcpdump_count(path: &Path) -> u64 {
    tcpdump_text(path).lines().count() as u64
}

fn check(path: &Path, t: &Traffic, format: CaptureFormat, started_ns: u64) {
    let file = FileReader::open(path).unwrap();
    let s = summarize(&file, &path.display().to_string()).unwrap();
    let label = path.display();
    assert_eq!(s.format, format, "{label}");
    assert!(s.errors.is_empty(), "{label}: {:?}", s.errors);
    assert!(
        s.packets > 0 && s.undecodable_packets == 0,
        "{label}: {s:?}"
    );
    assert_eq!(
        s.packets,
        tcpdump_count(path),
        "{label}: packets vs tcpdump -r"
    );
    assert_eq!(s.link_types.len(), 1);
    assert_eq!(s.link_types[0].link_type, 1, "lo is Ethernet on Linux");

    let (client, server) = (ep(t.dns.0), ep(t.dns.1));
    assert_eq!(s.dns.len(), 2, "{label}: {:?}", s.dns);
    for (d, response) in s.dns.iter().zip([false, true]) {
        assert_eq!(
            (d.client, d.server, d.is_response),
            (client, server, response)
        );
        assert_eq!(
            (d.query_name.as_str(), d.qtype, d.id),
            ("www.example.test", 1, 0xBEEF)
        );
    }
    assert_eq!(s.dns[1].answers.len(), 1);
    assert_eq!(s.dns[1].answers[0].data, "192.0.2.7");
    let udp: Vec<_> = s
        .conversations
        .iter()
        .filter(|c| c.protocol_name == "udp")
        .collect();
    assert_eq!(udp.len(), 1);
    assert_eq!((udp[0].a, udp[0].b), (client, server));
    assert_eq!((udp[0].packets_a_to_b, udp[0].packets_b_to_a), (1, 1));

    assert_eq!(s.http_requests.len(), 1, "{label}: {:?}", s.http_requests);
    let h = &s.http_requests[0];
    assert_eq!((h.client, h.server), (ep(t.http.0), ep(t.http.1)));
    assert_eq!((h.method, h.host.as_deref()), ("GET", Some("example.test")));
    assert_eq!(h.path, "/vestige-test?x=1");

    assert_eq!(s.tls_client_hellos.len(), 1, "{label}");
    let tls = &s.tls_client_hellos[0];
    assert_eq!((tls.client, tls.server), (ep(t.tls.0), ep(t.tls.1)));
    assert_eq!(tls.server_name.as_deref(), Some("sni.example.test"));

    // TCP: the HTTP and TLS connections, each one conversation with both directions.
    let tcp: Vec<_> = s
        .conversations
        .iter()
        .filter(|c| c.protocol_name == "tcp")
        .collect();
    assert_eq!(tcp.len(), 2);
    for c in tcp {
        assert_eq!(c.b.ip, IpAddr::V4(server_ip_of(t)));
        assert!(
            c.packets_a_to_b >= 3 && c.packets_b_to_a >= 2,
            "{c:?}\n{}",
            tcpdump_text(path)
        );
    }
    let first = s.first.as_ref().unwrap().timestamp_ns;
    let last = s.last.as_ref().unwrap().timestamp_ns;
    assert!(started_ns.saturating_sub(2_000_000_000) <= first && first <= last);
    assert!(last <= now_ns() + 2_000_000_000);
    let kinds: Vec<_> = timeline_events(&s).iter().map(|e| e.kind).collect();
    for k in ["dns_query", "http_request", "tls_sni", "conversation_start"] {
        assert_eq!(
            kinds.iter().filter(|&&x| x == k).count(),
            if k == "conversation_start" { 3 } else { 1 }
        );
    }
}

fn server_ip_of(t: &Traffic) -> Ipv4Addr {
    match t.dns.1.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => unreachable!("bound to IPv4"),
    }
}

fn now_ns() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

#[test]
fn tcpdump_captures_are_summarised() {
    if !is_root() {
        return skip("not root (capturing on lo needs CAP_NET_RAW, binding port 53 root)");
    }
    if !have("tcpdump") {
        return skip("tcpdump is not installed");
    }
    // A loopback address of our own, so that other traffic on lo stays out of the filter.
    let pid = std::process::id();
    let server_ip = Ipv4Addr::new(
        127,
        100 + u8::try_from(pid % 100).unwrap(),
        u8::try_from(pid / 100 % 250).unwrap(),
        1,
    );
    let filter = format!("host {server_ip}");
    let dir = tempfile::tempdir().unwrap();
    let micro = dir.path().join("micro.pcap");
    let nano = dir.path().join("nano.pcap");
    let ng = dir.path().join("dumpcap.pcapng");
    // -Z root: keep writing as root into our private temp dir; -U: flush per packet;
    // --immediate-mode: no TPACKET_V3 block timeout, or packets still in the ring when
    // SIGINT arrives are lost; -s/-B: immediate mode sizes ring frames by the snap length,
    // and the default 256 KiB snap length in a 2 MiB buffer leaves room for only ~7
    // packets, so a burst of loopback traffic is dropped by the kernel.
    let tcpdump = |path: &Path, extra: &[&str]| {
        let mut args = vec![
            "-i",
            "lo",
            "-n",
            "-U",
            "--immediate-mode",
            "-s",
            "4096",
            "-B",
            "16384",
            "-Z",
            "root",
            "-w",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(&filter);
        start("tcpdump", &args, path, "listening on")
    };
    let mut captures = Vec::new();
    let mut wanted = vec![
        ("tcpdump", &micro, CaptureFormat::Pcap),
        ("tcpdump", &nano, CaptureFormat::PcapNanosecond),
    ];
    if have("dumpcap") {
        wanted.push(("dumpcap", &ng, CaptureFormat::PcapNg));
    } else {
        eprintln!("pcap_real: dumpcap not installed: no pcapng capture by a stock tool");
    }
    for (tool, path, format) in wanted {
        let started = match (tool, format) {
            ("dumpcap", _) => {
                let args = [
                    "-i",
                    "lo",
                    "-q",
                    "-f",
                    &filter,
                    "-w",
                    path.to_str().unwrap(),
                ];
                start("dumpcap", &args, path, "Capturing on")
            }
            (_, CaptureFormat::PcapNanosecond) => {
                tcpdump(path, &["--time-stamp-precision", "nano"])
            }
            _ => tcpdump(path, &[]),
        };
        match started {
            Ok(c) => captures.push((c, format)),
            Err(why) => {
                for (c, _) in captures {
                    let _ = c.stop();
                }
                return skip(&why);
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let started_ns = now_ns();
    let traffic = make_traffic(server_ip);
    std::thread::sleep(Duration::from_millis(500));
    for (capture, format) in captures {
        let path = capture.stop();
        check(&path, &traffic, format, started_ns);
    }
}
