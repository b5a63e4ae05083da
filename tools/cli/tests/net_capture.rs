//! `vestige capture net` on the loopback interface: UDP datagrams with known payloads are
//! sent while it captures; stock tcpdump reads the pcapng back with the payloads, every
//! packet once (loopback's outgoing copies dropped, as libpcap does), and the item
//! verifies. Needs root (AF_PACKET) and tcpdump; skips otherwise unless
//! VESTIGE_REQUIRE_TOOLS=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const COUNT: usize = 12;

fn prerequisites() -> bool {
    let ok = root() && have("tcpdump") && std::path::Path::new("/sys/class/net/lo").exists();
    if !ok {
        assert!(
            std::env::var_os("VESTIGE_REQUIRE_TOOLS").is_none_or(|v| v != "1"),
            "VESTIGE_REQUIRE_TOOLS=1: root, tcpdump and lo are needed"
        );
        eprintln!("note: skipping the capture test (root, tcpdump, lo needed)");
    }
    ok
}

#[test]
fn loopback_capture_is_read_by_tcpdump_and_verifies() {
    if !prerequisites() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (sec, public) = new_key(t.path(), "examiner");
    let case = new_case(t.path(), "case");
    // A listener, so the datagrams draw no ICMP replies: exactly COUNT packets to see.
    let listener = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let child = vestige()
        .args(["capture", "net", "--iface", "lo", "--count"])
        .arg(COUNT.to_string())
        .args(["--duration", "60", "--case"])
        .arg(&case)
        .args(["--item", "lo-capture", "--key"])
        .arg(&sec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Send until the capture has its count (it may start listening after the first few).
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(50);
    let pid = child.id();
    while std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
        && std::time::Instant::now() < deadline
    {
        sender
            .send_to(
                format!("VESTIGE-NET-{sent:04}").as_bytes(),
                ("127.0.0.1", port),
            )
            .unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let (rc, err) = code(&o);
    assert_eq!(rc, 0, "capture failed: {err}");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["packets"], COUNT as u64);
    assert_eq!(summary["stop_reason"], "count");

    let item = case.join("lo-capture");
    let pcap = item.join("capture.pcapng");
    let m = manifest(&item);
    assert_eq!(m["source"]["kind"], "network_capture");
    assert_eq!(m["hashes"]["sha256"], sha256_file(&pcap).as_str());
    let dump = out(Command::new("tcpdump").args(["-nn", "-A", "-r"]).arg(&pcap));
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let text = String::from_utf8_lossy(&dump.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" IP ")).collect();
    assert_eq!(
        lines.len(),
        COUNT,
        "tcpdump sees {} packets:\n{text}",
        lines.len()
    );
    // Ours are the datagrams to `port` (another program could use lo meanwhile): each
    // captured once (no loopback duplicate), consecutive (none lost).
    let ours = lines
        .iter()
        .filter(|l| l.contains(&format!("127.0.0.1.{port}: UDP, length 16")))
        .count();
    let payloads: Vec<u32> = text
        .match_indices("VESTIGE-NET-")
        .filter_map(|(i, _)| text.get(i + 12..i + 16)?.parse().ok())
        .collect();
    assert_eq!(payloads.len(), ours, "{text}");
    assert!(
        ours >= COUNT / 2,
        "only {ours} of our datagrams captured:\n{text}"
    );
    assert!(
        payloads.windows(2).all(|w| w[1] == w[0] + 1),
        "{payloads:?}"
    );

    if have("signify-openbsd") {
        let s = out(Command::new("signify-openbsd")
            .args(["-C", "-p"])
            .arg(&public)
            .arg("-x")
            .arg(item.join("SHA256.sig"))
            .current_dir(&item));
        assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    }
    let v = out(vestige().arg("verify").arg(&item));
    assert_eq!(code(&v).0, 0, "{}", String::from_utf8_lossy(&v.stdout));

    // Our own summary of the item agrees with tcpdump: one UDP conversation to `port`
    // holding exactly our datagrams.
    let a = out(vestige().args(["analyze", "pcap", "--json"]).arg(&item));
    assert_eq!(code(&a).0, 0, "{}", code(&a).1);
    let json: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(json["summary"]["packets"], COUNT as u64);
    let conv = json["summary"]["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["b"]["port"] == port || c["a"]["port"] == port)
        .unwrap_or_else(|| panic!("no conversation with port {port}: {json}"));
    assert_eq!(conv["protocol_name"], "udp");
    assert_eq!(
        conv["packets_a_to_b"].as_u64().unwrap() + conv["packets_b_to_a"].as_u64().unwrap(),
        ours as u64
    );
    // `vestige analyze CASE` puts the capture's conversations into the case's timeline.
    let a = out(vestige().arg("analyze").arg(&case));
    assert_eq!(code(&a).0, 0, "{}", code(&a).1);
    let timeline = std::fs::read_to_string(case.join("report/timeline.jsonl")).unwrap();
    let row = timeline
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| {
            r["source"] == "pcap"
                && r["kind"] == "conversation_start"
                && r["message"].as_str().unwrap().contains(&format!(":{port}"))
        })
        .unwrap_or_else(|| panic!("no pcap row for port {port}:\n{timeline}"));
    assert_eq!(row["evidence"]["volume"], "lo-capture");
    drop(listener);
}

#[test]
fn capture_refuses_what_it_cannot_do() {
    let t = tempfile::tempdir().unwrap();
    let (sec, _) = new_key(t.path(), "examiner");
    let case = new_case(t.path(), "case");
    let run = |args: &[&str]| {
        out(vestige()
            .args(["capture", "net"])
            .args(args)
            .arg("--case")
            .arg(&case)
            .args(["--item", "x", "--key"])
            .arg(&sec))
    };
    let (rc, err) = code(&run(&["--iface", "no-such-if0", "--count", "1"]));
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("/sys/class/net/no-such-if0"), "{err}");
    let (rc, err) = code(&run(&["--iface", "lo"]));
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("--duration") && err.contains("--count"),
        "{err}"
    );
    assert!(!case.join("x").exists());
}
