//! The collector on real ext4 images (mkfs.ext4 -d): the demo's auth.log, rotations with
//! gzip, wtmp/btmp written by utmpdump, journals written by systemd-journal-remote, lines
//! sent by logger.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use super::*;
use crate::findings::Severity;
use crate::test_support::{ext4_of, have_tools, put, run, with_ext4};
use std::path::Path;

/// The demo's auth.log (tools/xtask/src/demo.rs, `linux_root`).
fn demo_auth_log() -> String {
    let mut auth = String::new();
    for i in 0..40 {
        auth.push_str(&format!(
            "Nov 20 03:{:02}:{:02} web-01 sshd[{}]: Failed password for root from 198.51.100.23 port {} ssh2\n",
            i / 6 + 10,
            (i * 7) % 60,
            4000 + i,
            50000 + i
        ));
    }
    auth.push_str("Nov 20 03:17:44 web-01 sshd[4100]: Accepted password for root from 198.51.100.23 port 50999 ssh2\n");
    auth
}

/// Sets the mtime of `root/rel` to `secs` (touch -d).
fn set_mtime(root: &Path, rel: &str, secs: i64) {
    let p = root.join(rel);
    run(
        "touch",
        &["-m", "-d", &format!("@{secs}"), p.to_str().unwrap()],
    );
}

fn collect_from(root: &Path, mib: u32) -> Option<Collected> {
    let img = ext4_of(root, mib)?;
    Some(with_ext4(&img, |files| {
        let zone = Zone::load(files);
        collect(files, &zone)
    }))
}

fn zone_berlin(root: &Path) {
    put(
        root,
        "usr/share/zoneinfo/Europe/Berlin",
        &std::fs::read("/usr/share/zoneinfo/Europe/Berlin").unwrap(),
    );
    put(root, "etc/timezone", b"Europe/Berlin\n");
    std::os::unix::fs::symlink(
        "../usr/share/zoneinfo/Europe/Berlin",
        root.join("etc/localtime"),
    )
    .unwrap();
}

const JAN_10_2025: i64 = 1_736_510_400; // 2025-01-10T12:00:00Z

#[test]
fn demo_bruteforce_in_utc_and_berlin() {
    for berlin in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        put(root, "var/log/auth.log", demo_auth_log().as_bytes());
        // Written in January: the November lines are of the year before.
        set_mtime(root, "var/log/auth.log", JAN_10_2025);
        if berlin {
            zone_berlin(root);
        }
        let Some(c) = collect_from(root, 8) else {
            return;
        };
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.events.len(), 41);
        let f: Vec<_> = c
            .findings
            .iter()
            .filter(|f| f.rule == "auth.bruteforce_then_success")
            .collect();
        assert_eq!(f.len(), 1, "{:?}", c.findings);
        let f = f[0];
        assert_eq!(f.severity, Severity::High);
        // 2024-11-20 03:17:44 local: UTC, or CET (+1).
        let want = if berlin {
            "2024-11-20T02:17:44Z"
        } else {
            "2024-11-20T03:17:44Z"
        };
        assert_eq!(utc_text(f.time.unwrap()), want);
        assert_eq!(f.evidence[0].line, Some(41));
        assert_eq!(f.evidence[1].line, Some(1));
        assert_eq!(f.evidence[0].path.as_deref(), Some("/var/log/auth.log"));
        assert!(f.evidence[0].inode.is_some());
        assert_eq!(
            f.evidence[0].offset,
            Some(demo_auth_log().rfind("Nov 20 03:17:44").unwrap() as u64)
        );
        assert!(
            f.description.contains("40 failed logins"),
            "{}",
            f.description
        );
        let success = c.events.iter().find(|e| e.kind == "ssh_login").unwrap();
        let note = success.time_note.as_deref().unwrap();
        assert!(note.contains("year 2024 inferred"), "{note}");
        if berlin {
            assert!(note.contains("Europe/Berlin"), "{note}");
        }
        assert_eq!(success.fields["address"], "198.51.100.23");
        assert_eq!(success.fields["user"], "root");
        assert_eq!(success.fields["method"], "password");
    }
}

#[test]
fn year_follows_the_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let text = "Dec 31 23:59:00 h sudo:  alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id\n\
                Jan  1 00:01:00 h sudo:  alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/journalctl --vacuum-size=1K\n";
    put(root, "var/log/auth.log", text.as_bytes());
    set_mtime(root, "var/log/auth.log", JAN_10_2025);
    let Some(c) = collect_from(root, 8) else {
        return;
    };
    let times: Vec<String> = c.events.iter().map(|e| utc_text(e.time)).collect();
    assert_eq!(times, ["2024-12-31T23:59:00Z", "2025-01-01T00:01:00Z"]);
    let f: Vec<_> = c
        .findings
        .iter()
        .filter(|f| f.rule == "logs.cleared")
        .collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].evidence[0].line, Some(2));
}

#[test]
fn rotations_gzip_and_cleared_logs() {
    if !have_tools(&["gzip"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "var/log/auth.log", b"");
    put(
        root,
        "var/log/auth.log.1",
        b"2024-11-19T10:00:00.123456+01:00 h useradd[77]: new user: name=backup2, UID=0, GID=0, home=/var/tmp/.b, shell=/bin/bash, from=/dev/pts/0\n",
    );
    put(
        root,
        "var/log/auth.log.2",
        b"2024-11-18T10:00:00+0000 h systemd-logind[5]: New session 3 of user alice.\n\
          2024-11-18T10:00:01Z h sshd[9]: Accepted publickey for alice from 192.0.2.7 port 41234 ssh2: ED25519 SHA256:AbC\n",
    );
    run("gzip", &[root.join("var/log/auth.log.2").to_str().unwrap()]);
    let Some(c) = collect_from(root, 8) else {
        return;
    };
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let kinds: Vec<&str> = c.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["user_added", "session_opened", "ssh_login"]);
    assert_eq!(utc_text(c.events[0].time), "2024-11-19T09:00:00.123456000Z");
    let gz = &c.events[2];
    assert_eq!(gz.evidence.path.as_deref(), Some("/var/log/auth.log.2.gz"));
    assert_eq!(gz.evidence.line, Some(2));
    assert!(gz.fields.contains_key("gzip"));
    assert_eq!(gz.fields["key_fingerprint"], "SHA256:AbC");
    let cleared: Vec<_> = c
        .findings
        .iter()
        .filter(|f| f.rule == "logs.cleared")
        .collect();
    assert_eq!(cleared.len(), 1, "{:?}", c.findings);
    assert_eq!(cleared[0].severity, Severity::High);
    assert_eq!(cleared[0].evidence.len(), 3);
    let added: Vec<_> = c
        .findings
        .iter()
        .filter(|f| f.rule == "auth.user_added")
        .collect();
    assert_eq!((added.len(), added[0].severity), (1, Severity::Medium));
}

#[test]
fn login_records_from_utmpdump() {
    let mut dump = String::new();
    for i in 0..12 {
        dump.push_str(&format!(
            "[6] [0{:04}] [    ] [admin   ] [ssh:notty   ] [203.0.113.9         ] [203.0.113.9    ] [2024-11-20T05:{:02}:00,000000+00:00]\n",
            5000 + i,
            i * 2
        ));
    }
    let Some(btmp) = utmp::tests::wtmp_from_dump(&dump) else {
        return;
    };
    let Some(wtmp) = utmp::tests::wtmp_from_dump(utmp::tests::DUMP) else {
        return;
    };
    let later = "[7] [06000] [ts/2] [admin   ] [pts/2       ] [203.0.113.9         ] [203.0.113.9    ] [2024-11-20T05:30:00,000000+00:00]\n";
    let Some(wtmp2) = utmp::tests::wtmp_from_dump(later) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "var/log/btmp", &btmp);
    let mut w = wtmp.clone();
    w.extend_from_slice(&wtmp2);
    w.extend_from_slice(&[7u8; 100]);
    put(root, "var/log/wtmp", &w);
    put(root, "var/log/wtmp.1", &wtmp);
    put(root, "var/log/btmp.1", b"");
    let mut ll = vec![0u8; utmp::LASTLOG_SIZE * 1001];
    ll[utmp::LASTLOG_SIZE * 1000..][..4].copy_from_slice(&1_732_078_800i32.to_le_bytes());
    ll[utmp::LASTLOG_SIZE * 1000 + 4..][..5].copy_from_slice(b"pts/1");
    put(root, "var/log/lastlog", &ll);
    put(
        root,
        "etc/passwd",
        b"root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    );
    let Some(c) = collect_from(root, 8) else {
        return;
    };
    assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
    assert!(
        c.problems[0].contains("partial record at byte 2688"),
        "{:?}",
        c.problems
    );
    let count = |src: &str, kind: &str| {
        c.events
            .iter()
            .filter(|e| e.source == src && e.kind == kind)
            .count()
    };
    assert_eq!(count("btmp", "failed_login"), 12);
    // wtmp: boot, runlevel, 3 logins, logout, shutdown; wtmp.1 the same less the third login.
    assert_eq!(count("wtmp", "login"), 5);
    assert_eq!(count("wtmp", "boot"), 2);
    assert_eq!(count("wtmp", "shutdown"), 2);
    let ll: Vec<_> = c.events.iter().filter(|e| e.source == "lastlog").collect();
    assert_eq!(ll.len(), 1);
    assert_eq!(ll[0].fields["user"], "alice");
    assert_eq!(ll[0].evidence.record, Some(1000));
    let bf: Vec<_> = c
        .findings
        .iter()
        .filter(|f| f.rule.starts_with("auth.brute"))
        .collect();
    assert_eq!(bf.len(), 1, "{:?}", c.findings);
    assert_eq!(bf[0].rule, "auth.bruteforce_then_success");
    assert_eq!(utc_text(bf[0].time.unwrap()), "2024-11-20T05:30:00Z");
    assert_eq!(bf[0].evidence[0].record, Some(6));
    // btmp is empty beside an empty rotation: nothing cleared.
    assert!(!c.findings.iter().any(|f| f.rule == "logs.cleared"));
}

#[test]
fn journal_through_the_image() {
    let mut entries = Vec::new();
    for i in 0..12u64 {
        entries.push((
            1_732_072_000_000_000 + i * 60_000_000,
            vec![
                (
                    "MESSAGE",
                    format!(
                        "Failed password for invalid user u{i} from 2001:db8::66 port {} ssh2",
                        40_000 + i
                    ),
                ),
                ("_PID", "700".to_string()),
                ("SYSLOG_IDENTIFIER", "sshd".to_string()),
                ("_HOSTNAME", "web-01".to_string()),
            ],
        ));
    }
    entries.push((
        1_732_073_000_000_000,
        vec![
            (
                "MESSAGE",
                "Started cron.service - Regular background program processing daemon.".to_string(),
            ),
            ("SYSLOG_IDENTIFIER", "systemd".to_string()),
            ("_PID", "1".to_string()),
        ],
    ));
    let Some(j) = journal::tests::journal_of(&journal::tests::export(&entries), &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(
        root,
        "var/log/journal/3d1219c7c4c5404aaa1f6d2a48adfda4/system.journal",
        &j,
    );
    let Some(c) = collect_from(root, 24) else {
        return;
    };
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(c.events.len(), 13);
    let last = &c.events[12];
    assert_eq!(
        (last.kind.as_str(), last.fields["unit"].as_str()),
        ("service_started", "cron.service")
    );
    assert_eq!(c.events[0].evidence.record, Some(1));
    assert_eq!(c.events[0].fields["address"], "2001:db8::66");
    assert_eq!(utc_text(c.events[0].time), "2024-11-20T03:06:40Z");
    let f: Vec<_> = c
        .findings
        .iter()
        .filter(|f| f.rule == "auth.bruteforce")
        .collect();
    assert_eq!(f.len(), 1, "{:?}", c.findings);
}

#[test]
fn lines_sent_by_logger() {
    if !have_tools(&["logger"]) {
        return;
    }
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("log.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let msg = "Accepted password for root from 198.51.100.23 port 50999 ssh2";
    let mut file = String::new();
    for fmt in ["--rfc3164", "--rfc5424"] {
        run(
            "logger",
            &[
                "-u",
                sock_path.to_str().unwrap(),
                fmt,
                "-t",
                "sshd",
                "--id=4100",
                msg,
            ],
        );
        let mut buf = vec![0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).to_string();
        // As rsyslog writes them: the priority dropped (traditional template), or RFC
        // 3339 stamp, host, tag[pid]: (high-precision template).
        let body = got.split_once('>').unwrap().1;
        if let Some(r) = body.strip_prefix("1 ") {
            let f: Vec<&str> = r.splitn(6, ' ').collect();
            let text = match f[5].strip_prefix("- ") {
                Some(t) => t,
                None => f[5].split_once("] ").unwrap().1,
            };
            file.push_str(&format!("{} web-01 {}[{}]: {}\n", f[0], f[2], f[3], text));
        } else {
            // logger already puts the host name after the stamp.
            file.push_str(&format!("{body}\n"));
        }
    }
    let root = dir.path().join("root");
    put(&root, "var/log/auth.log", file.as_bytes());
    let Some(c) = collect_from(&root, 8) else {
        return;
    };
    assert!(c.problems.is_empty(), "{:?} {file}", c.problems);
    assert_eq!(c.events.len(), 2, "{file}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for e in &c.events {
        assert_eq!(e.kind, "ssh_login");
        assert_eq!(e.fields["pid"], "4100");
        assert!((e.time.secs - now).abs() < 120, "{file}");
    }
}

#[test]
fn hostile_logs_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut junk = b"Feb 29 01:00:00 h sshd[1]: Accepted password for \xff\x1b[31m from <script> port 1 ssh2\n".to_vec();
    junk.extend_from_slice(
        b"2024-02-30T00:00:00Z h sshd[x: Failed password for root from 1.2.3.4\n\0\0\0\n",
    );
    junk.extend(std::iter::repeat_n(b'A', 5000));
    put(root, "var/log/auth.log", &junk);
    set_mtime(root, "var/log/auth.log", JAN_10_2025);
    put(root, "var/log/syslog.1.gz", b"\x1f\x8b\x08\x00garbage");
    put(root, "var/log/wtmp", &[0xFFu8; 1000]);
    put(
        root,
        "var/log/journal/x/system.journal",
        b"LPKSHHRH\0\0\0\0\0\0\0\0",
    );
    put(root, "var/log/journal/x/user-1000.journal~", &[0u8; 300]);
    put(root, "etc/localtime", b"TZif2\0\0\0");
    let Some(c) = collect_from(root, 8) else {
        return;
    };
    for e in &c.events {
        assert!(
            e.description.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{}",
            e.description
        );
    }
    let p = c.problems.join("\n");
    for want in [
        "/etc/localtime",
        "syslog.1.gz",
        "wtmp",
        "system.journal",
        "user-1000.journal~",
    ] {
        assert!(p.contains(want), "{want} not in {p}");
    }
}
