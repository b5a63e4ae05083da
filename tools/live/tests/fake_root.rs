//! `collect()` over a fabricated /proc and /sys: damaged and missing files become errors
//! naming the file and line, and everything readable is still collected.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;
use vestige_live::{collect, CollectOptions};

fn write(root: &Path, rel: &str, text: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn damaged_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let proc_root = dir.path().join("proc");
    let sys_root = dir.path().join("sys");
    write(&proc_root, "uptime", b"100.50 300.00\n");
    write(&proc_root, "stat", b"cpu 1 2 3\nbtime 1700000000\n");
    write(
        &proc_root,
        "net/tcp",
        b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1\n\
   1: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 78 1\n",
    );
    // A process whose exe, fd and maps are missing (as for one that is exiting).
    write(
        &proc_root,
        "42/stat",
        b"42 (evil) S 1 42 42 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 250 0 0\n",
    );
    write(
        &proc_root,
        "42/status",
        b"Name:\tevil\nUid:\t1000\t0\t0\t0\nGid:\t5\t5\t5\t5\n",
    );
    write(&proc_root, "42/cmdline", b"./evil\0--quiet\0");
    // Not a process: a bad stat is an error, not a panic.
    write(&proc_root, "43/stat", b"garbage");
    write(&proc_root, "sys/kernel/tainted", b"4096\n");
    write(
        &proc_root,
        "self/mountinfo",
        b"1 1 0:1 / / rw - rootfs rootfs rw\nbroken\n",
    );
    write(&sys_root, "class/rtc/rtc0/date", b"2023-11-14\n");
    write(&sys_root, "class/rtc/rtc0/time", b"22:13:20\n");

    let s = collect(&CollectOptions {
        proc_root: proc_root.clone(),
        sys_root,
        utmp_path: dir.path().join("no-utmp"),
        machine_id_path: dir.path().join("no-machine-id"),
        ..Default::default()
    });

    assert_eq!(s.clock.uptime_seconds, Some(100.5));
    assert_eq!(s.clock.boot_utc.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(s.clock.rtc_utc.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert!(s.clock.rtc_minus_system_seconds.unwrap() < 0);

    assert_eq!(s.sockets.len(), 1);
    assert_eq!(s.sockets[0].local_port, 22);
    assert_eq!(s.processes.len(), 1);
    let p = &s.processes[0];
    assert_eq!((p.pid, p.ppid, p.name.as_str()), (42, 1, "evil"));
    assert_eq!(
        (p.uid_real, p.uid_effective, p.gid_effective),
        (Some(1000), Some(0), Some(5))
    );
    assert_eq!(p.cmdline, ["./evil", "--quiet"]);
    assert_eq!(p.start_ticks, 250);
    assert!(p
        .start_utc
        .as_deref()
        .unwrap()
        .starts_with("2023-11-14T22:13:2"));
    assert_eq!(
        (p.exe.as_deref(), p.fd_count, p.maps.as_ref()),
        (None, None, None)
    );
    assert_eq!(s.taint.as_ref().unwrap().flags[0].letter, 'O');
    assert_eq!(s.mounts.len(), 1);
    assert!(s.logins.is_empty() && s.host.machine_id.is_none());

    let error = |section: &str, rel: &str| {
        let path = proc_root.join(rel).display().to_string();
        s.errors
            .iter()
            .filter(|e| e.section == section && e.path == path)
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        error("sockets", "net/tcp"),
        [r#"line 3: local_address: expected hexadecimal number, found "ZZZZ""#]
    );
    assert_eq!(error("processes", "43/stat").len(), 1);
    assert_eq!(
        error("mounts", "self/mountinfo"),
        ["line 2: expected at least 6 fields, found 1"]
    );
    // Required files that are missing are reported; optional ones (tcp6, modules, rtc…) not.
    assert_eq!(error("unix_sockets", "net/unix").len(), 1);
    assert_eq!(error("routes", "net/route").len(), 1);
    assert!(error("sockets", "net/tcp6").is_empty());
    assert!(error("modules", "modules").is_empty());
}
