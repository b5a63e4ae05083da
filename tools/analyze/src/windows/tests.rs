//! The whole module on a Windows tree in a real ext4 image: hives written by hivex,
//! event logs written by Windows (the evtx crate's samples, checked against
//! python-evtx's reading), a UTF-16 task file, a startup file and prefetch files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use super::test_hives::{build_hive, have_hivex};
use super::*;
use crate::test_support::{ext4_of, put, with_ext4};
use std::fmt::Write as _;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn w(s: &str) -> String {
    crate::text::display_safe(s.as_bytes())
}

fn ft_hex(secs: i64) -> String {
    let ticks = ((secs + 11_644_473_600) * 10_000_000) as u64;
    ticks
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn utf16_bom(s: &str) -> Vec<u8> {
    let mut v = vec![0xFF, 0xFE];
    for u in s.encode_utf16() {
        v.extend_from_slice(&u.to_le_bytes());
    }
    v
}

fn system_hive() -> Vec<u8> {
    build_hive(&[
        ("Select", "\"Current\"=dword:00000002"),
        ("ControlSet002\\Control\\ComputerName\\ComputerName", "\"ComputerName\"=\"DESKTOP-EVIL\""),
        (
            "ControlSet002\\Control\\TimeZoneInformation",
            "\"TimeZoneKeyName\"=\"W. Europe Standard Time\"\n\"Bias\"=dword:ffffffc4",
        ),
        ("ControlSet002\\Control\\Windows", &format!("\"ShutdownTime\"=hex:{}", ft_hex(1_700_000_000))),
        (
            "ControlSet002\\Services\\EvilSvc",
            "\"ImagePath\"=\"C:\\\\ProgramData\\\\evil\\\\svc.exe\"\n\"Start\"=dword:00000002\n\"Type\"=dword:00000010",
        ),
        (
            "ControlSet002\\Services\\Tcpip\\Parameters\\Interfaces\\{1234}",
            "\"EnableDHCP\"=dword:00000000\n\"IPAddress\"=hex(7):31,00,30,00,2e,00,30,00,2e,00,30,00,2e,00,35,00,00,00,00,00\n\"DefaultGateway\"=hex(7):31,00,30,00,2e,00,30,00,2e,00,30,00,2e,00,31,00,00,00,00,00",
        ),
        (
            "ControlSet002\\Enum\\USBSTOR\\Disk&Ven_SanDisk&Prod_Cruzer&Rev_1.00\\4C530001230521117081&0",
            "\"FriendlyName\"=\"SanDisk Cruzer USB Device\"",
        ),
    ])
}

fn software_hive() -> Vec<u8> {
    build_hive(&[
        (
            "Microsoft\\Windows NT\\CurrentVersion",
            "\"ProductName\"=\"Windows 10 Pro\"\n\"CurrentBuild\"=\"19045\"\n\"InstallDate\"=dword:65000000\n\"RegisteredOwner\"=\"alice\"",
        ),
        (
            "Microsoft\\Windows NT\\CurrentVersion\\ProfileList\\S-1-5-21-1-2-3-1001",
            "\"ProfileImagePath\"=hex(2):43,00,3a,00,5c,00,55,00,73,00,65,00,72,00,73,00,5c,00,61,00,6c,00,69,00,63,00,65,00,00,00",
        ),
        ("Microsoft\\Windows\\CurrentVersion\\Run", "\"Updater\"=\"C:\\\\Users\\\\Public\\\\upd.exe -q\""),
        (
            "Microsoft\\Windows\\CurrentVersion\\Uninstall\\7-Zip",
            "\"DisplayName\"=\"7-Zip 23.01\"\n\"DisplayVersion\"=\"23.01\"\n\"Publisher\"=\"Igor Pavlov\"\n\"InstallDate\"=\"20240102\"",
        ),
    ])
}

fn sam_hive() -> Vec<u8> {
    let mut f = vec![0u8; 80];
    let put_ft = |f: &mut Vec<u8>, at: usize, secs: i64| {
        let t = ((secs + 11_644_473_600) * 10_000_000) as u64;
        f[at..at + 8].copy_from_slice(&t.to_le_bytes());
    };
    put_ft(&mut f, 0x08, 1_704_164_645);
    put_ft(&mut f, 0x18, 1_704_000_000);
    f[0x20..0x28].copy_from_slice(&0x7FFF_FFFF_FFFF_FFFFu64.to_le_bytes());
    f[0x30..0x34].copy_from_slice(&1001u32.to_le_bytes());
    f[0x38..0x3A].copy_from_slice(&0x0011u16.to_le_bytes());
    f[0x42..0x44].copy_from_slice(&7u16.to_le_bytes());
    let fhex: Vec<String> = f.iter().map(|b| format!("{b:02x}")).collect();
    let fval = format!("\"F\"=hex:{}", fhex.join(","));
    build_hive(&[
        ("SAM\\Domains\\Account\\Users\\000003E9", &fval),
        ("SAM\\Domains\\Account\\Users\\Names\\alice", "@=hex(3e9):"),
    ])
}

fn ntuser_hive() -> Vec<u8> {
    let doc: Vec<String> = "secret.docx\0"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .map(|b| format!("{b:02x}"))
        .collect();
    build_hive(&[
        (
            "Software\\Microsoft\\Windows\\CurrentVersion\\Run",
            "\"Tray\"=\"powershell -w hidden -enc SQBFAFgA\"",
        ),
        (
            "Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\RecentDocs",
            &format!(
                "\"0\"=hex:{}\n\"MRUListEx\"=hex:00,00,00,00,ff,ff,ff,ff",
                doc.join(",")
            ),
        ),
        (
            "Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\TypedPaths",
            "\"url1\"=\"C:\\\\Users\\\\alice\\\\Secret\"",
        ),
        (
            "Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\RunMRU",
            "\"a\"=\"cmd /c whoami\\\\1\"\n\"b\"=\"notepad\\\\1\"\n\"MRUList\"=\"ba\"",
        ),
    ])
}

/// Event logs Windows wrote (tests/data/evtx/README.md), each with its python-evtx oracle.
const EVTX_SAMPLES: [&str; 5] = [
    "new-user-security",
    "Security_short_selected",
    "Security-4624",
    "System-7045",
    "System-104",
];
#[test]
fn windows_tree_in_ext4() {
    if !have_hivex() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, SYSTEM_HIVE, &system_hive());
    put(root, SOFTWARE_HIVE, &software_hive());
    put(root, SAM_HIVE, &sam_hive());
    put(root, "Users/alice/NTUSER.DAT", &ntuser_hive());
    for f in EVTX_SAMPLES {
        put(
            root,
            &format!("{}/{f}.evtx", evtx::LOG_DIR),
            &std::fs::read(format!("{DATA}/evtx/{f}.evtx")).unwrap(),
        );
    }
    let task = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n<Task version=\"1.2\" xmlns=\"http://schemas.microsoft.com/windows/2004/02/mit/task\">\r\n<RegistrationInfo><Date>2024-01-02T03:04:05</Date><Author>DESKTOP-EVIL\\alice</Author><URI>\\Updater</URI></RegistrationInfo>\r\n<Actions Context=\"Author\"><Exec><Command>C:\\Users\\alice\\AppData\\Local\\Temp\\u.exe</Command><Arguments>-silent &amp; more</Arguments></Exec></Actions></Task>";
    put(root, "Windows/System32/Tasks/Updater", &utf16_bom(task));
    put(
        root,
        &format!("{}/evil.lnk", tasks::COMMON_STARTUP),
        b"L\0\0\0",
    );
    put(root, "Windows/Prefetch/CMD.EXE-4A81B364.pf", b"MAM\x04rest");
    let mut scca = vec![0u8; 0x100];
    scca[0..4].copy_from_slice(&23u32.to_le_bytes());
    scca[4..8].copy_from_slice(b"SCCA");
    let t = ((1_704_164_645i64 + 11_644_473_600) * 10_000_000) as u64;
    scca[0x80..0x88].copy_from_slice(&t.to_le_bytes());
    scca[0x98..0x9C].copy_from_slice(&3u32.to_le_bytes());
    put(root, "Windows/Prefetch/NOTEPAD.EXE-D8414F97.pf", &scca);
    let img = ext4_of(root, 16).unwrap();
    let (p, c) = with_ext4(&img, |files| {
        assert!(is_windows_root(files));
        collect(files)
    });
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    // SYSTEM
    assert_eq!(p.current_control_set.as_deref(), Some("ControlSet002"));
    assert_eq!(p.computer_name.as_deref(), Some("DESKTOP-EVIL"));
    assert_eq!(p.time_zone.as_deref(), Some("W. Europe Standard Time"));
    assert_eq!(p.time_zone_bias_minutes, Some(-60));
    assert_eq!(p.last_shutdown.as_deref(), Some("2023-11-14T22:13:20Z"));
    let svc = p.services.iter().find(|s| s.name == "EvilSvc").unwrap();
    assert_eq!(svc.image_path, Some(w("C:\\ProgramData\\evil\\svc.exe")));
    assert_eq!((svc.start, svc.service_type), (Some(2), Some(16)));
    let usb = &p.usb_devices[0];
    assert_eq!(
        (
            usb.vendor.as_str(),
            usb.product.as_str(),
            usb.serial.as_str()
        ),
        ("SanDisk", "Cruzer", "4C530001230521117081&0")
    );
    assert_eq!(p.network_interfaces[0].addresses, vec!["10.0.0.5"]);
    assert_eq!(p.network_interfaces[0].gateways, vec!["10.0.0.1"]);
    // SOFTWARE
    assert_eq!(p.product_name.as_deref(), Some("Windows 10 Pro"));
    assert_eq!(p.current_build.as_deref(), Some("19045"));
    assert_eq!(p.install_date.as_deref(), Some("2023-09-12T06:06:56Z"));
    assert_eq!(p.profiles[0].path, Some(w("C:\\Users\\alice")));
    assert_eq!(p.installed_programs[0].name.as_deref(), Some("7-Zip 23.01"));
    // SAM
    let u = &p.users[0];
    assert_eq!((u.rid, u.name.as_deref()), (1001, Some("alice")));
    assert_eq!(u.last_logon.as_deref(), Some("2024-01-02T03:04:05Z"));
    assert_eq!(u.account_expires, None);
    assert_eq!((u.logon_count, u.disabled), (Some(7), true));
    // NTUSER
    let a = &p.user_activity[0];
    assert_eq!(a.recent_docs, vec!["secret.docx"]);
    assert_eq!(a.typed_paths, vec![w("C:\\Users\\alice\\Secret")]);
    assert_eq!(a.run_mru, vec!["notepad", "cmd /c whoami"]);
    assert_eq!(p.autoruns.len(), 2);
    // Tasks, startup, prefetch
    let t = &p.scheduled_tasks[0];
    assert_eq!(
        t.command,
        Some(w("C:\\Users\\alice\\AppData\\Local\\Temp\\u.exe"))
    );
    assert_eq!(t.arguments.as_deref(), Some("-silent & more"));
    assert_eq!(p.startup_files.len(), 1);
    assert_eq!(p.prefetch.len(), 2);
    let np = p
        .prefetch
        .iter()
        .find(|x| x.executable == "NOTEPAD.EXE")
        .unwrap();
    assert_eq!(
        (np.run_count, np.last_run.as_deref()),
        (Some(3), Some("2024-01-02T03:04:05Z"))
    );
    // Hives all clean.
    assert_eq!(p.hives.len(), 4);
    assert!(
        p.hives.iter().all(|h| h.checksum_ok && !h.dirty),
        "{:?}",
        p.hives
    );
    // Events and findings.
    for kind in [
        "shutdown",
        "service_key_written",
        "usb_device",
        "os_installed",
        "autorun",
        "last_logon",
        "run_dialog",
        "user_added",
        "logon_failed",
        "task_file_modified",
        "startup_file",
        "program_run",
    ] {
        assert!(c.events.iter().any(|e| e.kind == kind), "no {kind} event");
    }
    let rules: Vec<&str> = c.findings.iter().map(|f| f.rule.as_str()).collect();
    for r in [
        "windows.run_key_persistence",
        "windows.service_installed",
        "windows.new_admin",
        "windows.scheduled_task_persistence",
        "windows.startup_folder",
    ] {
        assert!(rules.contains(&r), "no {r} in {rules:?}");
    }
    // System 104 from a real log (System-104.evtx): the cleared log is the one its
    // UserData names, not the System channel the record lives in.
    let cleared: Vec<&crate::findings::Finding> = c
        .findings
        .iter()
        .filter(|f| f.rule == "windows.log_cleared")
        .collect();
    assert_eq!(cleared.len(), 2, "{cleared:#?}");
    assert!(
        cleared.iter().all(|f| f
            .description
            .contains("Microsoft-Windows-Sysmon/Operational log cleared by tony")),
        "{cleared:#?}"
    );
    assert!(c
        .findings
        .iter()
        .filter(|f| f.rule == "windows.run_key_persistence")
        .all(|f| f.severity == crate::findings::Severity::High));
    // The EVTX events agree with python-evtx, record by record.
    let mut ours = String::new();
    let mut theirs = String::new();
    for f in EVTX_SAMPLES {
        theirs.push_str(&std::fs::read_to_string(format!("{DATA}/evtx/{f}.oracle")).unwrap());
        for e in c.events.iter().filter(|e| {
            e.source == "evtx" && e.evidence.path.as_deref().is_some_and(|p| p.contains(f))
        }) {
            let g = |k: &str| e.fields.get(k).cloned();
            let mut kv: Vec<(String, String)> = Vec::new();
            for (ours_k, theirs_k) in [
                ("address", "IpAddress"),
                ("logon_type", "LogonType"),
                ("status", "Status"),
                ("sub_status", "SubStatus"),
                ("workstation", "WorkstationName"),
                ("member_sid", "MemberSid"),
                ("group_sid", "TargetSid"),
                ("group", "TargetUserName"),
            ] {
                if let Some(v) = g(ours_k) {
                    kv.push((theirs_k.into(), v));
                }
            }
            kv.sort();
            writeln!(
                ours,
                "{} {} {}",
                e.evidence.record.unwrap(),
                g("event_id").unwrap(),
                crate::event::utc_text(e.time)
            )
            .unwrap();
            let _ = kv;
        }
    }
    // Record ids, event ids and times exactly (to the microsecond: the oracle reads the
    // FILETIME itself, see oracle.py).
    let micros = |l: &str| -> (String, i64) {
        let mut it = l.split(' ');
        let head = format!("{} {}", it.next().unwrap(), it.next().unwrap());
        let rest: Vec<&str> = it.collect();
        let text = rest.join("T").replace("+00:00", "Z");
        let t = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .unwrap();
        (head, (t.unix_timestamp_nanos() / 1000) as i64)
    };
    let a: Vec<(String, i64)> = ours.lines().map(micros).collect();
    let b: Vec<(String, i64)> = theirs
        .lines()
        .map(|l| l.split(' ').take(4).collect::<Vec<_>>().join(" "))
        .map(|l| micros(&l))
        .collect();
    assert_eq!(
        a.iter().map(|x| &x.0).collect::<Vec<_>>(),
        b.iter().map(|x| &x.0).collect::<Vec<_>>()
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.1, y.1, "{x:?} vs {y:?}");
    }
    // And the fields, value by value.
    // (Record ids repeat across logs: each line is matched within its own file.)
    let by_file = EVTX_SAMPLES.iter().flat_map(|f| {
        std::fs::read_to_string(format!("{DATA}/evtx/{f}.oracle"))
            .unwrap()
            .lines()
            .map(|l| (*f, l.to_string()))
            .collect::<Vec<_>>()
    });
    for (f, line) in by_file {
        let mut it = line.split(' ');
        let rid: u64 = it.next().unwrap().parse().unwrap();
        let e = c
            .events
            .iter()
            .find(|e| {
                e.source == "evtx"
                    && e.evidence.record == Some(rid)
                    && e.evidence.path.as_deref().is_some_and(|p| p.contains(f))
            })
            .unwrap();
        // `Name=value` pairs; a value may hold spaces (a service name), so a word
        // without `=` continues the previous value.
        let mut pairs: Vec<(String, String)> = Vec::new();
        for w in it.skip(3) {
            match w.split_once('=') {
                Some((k, v)) if k.chars().all(|c| c.is_ascii_alphanumeric()) => {
                    pairs.push((k.to_string(), v.to_string()));
                }
                _ => {
                    let last = pairs.last_mut().unwrap();
                    last.1.push(' ');
                    last.1.push_str(w);
                }
            }
        }
        for (k, v) in &pairs {
            let (k, v) = (k.as_str(), v.as_str());
            let ours_k = match k {
                "IpAddress" => "address",
                "LogonType" => "logon_type",
                "Status" => "status",
                "SubStatus" => "sub_status",
                "WorkstationName" => "workstation",
                "ServiceName" => "service",
                "ImagePath" => "image_path",
                "MemberSid" => "member_sid",
                "TargetSid" if e.kind == "group_member_added" => "group_sid",
                "Channel" if e.kind == "log_cleared" => "cleared_log",
                "SubjectUserName" if e.kind == "log_cleared" => "user",
                "TargetUserName" if e.kind == "group_member_added" => "group",
                "TargetUserName" | "SubjectUserName" if e.kind != "group_member_added" => {
                    if k == "TargetUserName" {
                        "user"
                    } else {
                        continue;
                    }
                }
                _ => continue,
            };
            assert_eq!(
                e.fields.get(ours_k).map(String::as_str),
                Some(crate::text::display_safe(v.as_bytes()).as_str()),
                "record {rid} {k}"
            );
        }
    }
}

#[test]
fn hostile_files_give_problems_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, SYSTEM_HIVE, b"regf but far too short");
    put(root, SOFTWARE_HIVE, &[0u8; 5000]);
    put(
        root,
        &format!("{}/x.evtx", evtx::LOG_DIR),
        b"ElfFile\0garbage",
    );
    put(root, "Windows/System32/Tasks/bad", b"\xff\xfe<\0");
    let Some(img) = ext4_of(root, 8) else { return };
    let (_, c) = with_ext4(&img, collect);
    assert!(c.problems.len() >= 4, "{:#?}", c.problems);
    // Every real EVTX sample, cut short anywhere: problems, no panic.
    let b = std::fs::read(format!("{DATA}/evtx/new-user-security.evtx")).unwrap();
    for len in [0, 100, 4096, 4200, 10_000, 40_000] {
        let _ = evtx::parse_log(b[..len].to_vec(), &crate::event::Evidence::default());
    }
}
