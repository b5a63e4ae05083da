//! Snapshot test of `summary()`: a small hand-written snapshot and the exact report.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use vestige_live::{summary, Snapshot};

fn process(
    pid: u32,
    ppid: u32,
    name: &str,
    cmdline: &[&str],
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut p = serde_json::json!({
        "pid": pid, "ppid": ppid, "name": name, "state": "S (sleeping)",
        "uid_real": 0, "uid_effective": 0, "gid_real": 0, "gid_effective": 0, "threads": 1,
        "start_ticks": 100, "start_utc": "2024-05-01T10:00:01.25Z",
        "cmdline": cmdline, "cmdline_truncated": false,
        "environment": null, "environment_truncated": false,
        "exe": format!("/usr/bin/{name}"), "exe_deleted": false, "exe_sha256": null,
        "cwd": "/", "root": "/", "fd_count": 3, "socket_inodes": [],
        "maps": null, "kernel_thread": false
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

fn snapshot() -> Snapshot {
    let none = serde_json::json!({});
    let socket = |proto: &str,
                  local: &str,
                  lport: u16,
                  remote: &str,
                  rport: u16,
                  state: &str,
                  inode: u64,
                  owners: serde_json::Value| {
        serde_json::json!({
            "protocol": proto, "local_address": local, "local_port": lport,
            "remote_address": remote, "remote_port": rport, "state": state, "state_code": 0,
            "uid": 0, "inode": inode, "owners": owners
        })
    };
    let v = serde_json::json!({
        "collected_utc": "2024-05-01T12:00:00Z",
        "clock": {
            "system_utc": "2024-05-01T12:00:00Z", "uptime_seconds": 7199.5,
            "boot_unix_seconds": 1714557600, "boot_utc": "2024-05-01T10:00:00Z",
            "rtc_raw": "2024-05-01 12:00:03", "rtc_utc": "2024-05-01T12:00:03Z",
            "rtc_minus_system_seconds": 3
        },
        "host": {
            "hostname": "suspect", "kernel_release": "6.1.0-18-amd64", "kernel_version": null,
            "machine_id": "0123456789abcdef0123456789abcdef", "boot_id": null
        },
        "processes": [
            process(1, 0, "systemd", &["/sbin/init"], none.clone()),
            process(2, 0, "kthreadd", &[], serde_json::json!({"kernel_thread": true, "exe": null})),
            process(812, 1, "sshd", &["sshd: /usr/sbin/sshd -D"], none.clone()),
            process(900, 812, "bash\u{1b}[2J", &["-bash", "\u{1b}[2J\u{202E}"], none.clone()),
            process(4242, 1, "kworker", &["[kworker/0:1]"], serde_json::json!({
                "exe": "/tmp/.x/kworker", "exe_deleted": true, "exe_sha256": "ab".repeat(32),
                "maps": {
                    "mappings": 20, "executable": 5, "anonymous_executable": 1,
                    "writable_executable": 1, "files": ["/tmp/.x/kworker"], "files_truncated": false,
                    "deleted_files": ["/tmp/.x/kworker"], "deleted_files_truncated": false
                }
            })),
        ],
        "sockets": [
            socket("tcp", "0.0.0.0", 22, "0.0.0.0", 0, "LISTEN", 10, serde_json::json!([{"pid": 812, "name": "sshd"}])),
            socket("tcp", "192.0.2.5", 22, "198.51.100.7", 50123, "ESTABLISHED", 11, serde_json::json!([{"pid": 812, "name": "sshd"}, {"pid": 900, "name": "bash"}])),
            socket("udp6", "::", 53, "::", 0, "UNCONN", 12, serde_json::json!([])),
            socket("tcp", "192.0.2.5", 40000, "203.0.113.9", 443, "TIME_WAIT", 0, serde_json::json!([])),
        ],
        "unix_sockets": [], "routes": [], "neighbours": [],
        "interfaces": [{
            "name": "eth0", "ifindex": 2, "mac_address": null, "operstate": "up", "mtu": 1500,
            "flags": 4419, "flag_names": ["UP", "BROADCAST", "PROMISC", "MULTICAST"],
            "promiscuous": true, "addresses": []
        }],
        "modules": [
            {"name": "ext4", "size_bytes": 1, "ref_count": 1, "used_by": [], "state": "Live", "address": 0, "taint": null},
            {"name": "diamorphine", "size_bytes": 1, "ref_count": 0, "used_by": [], "state": "Live", "address": 0, "taint": "OE"}
        ],
        "taint": {"value": 12288, "flags": [
            {"bit": 12, "letter": "O", "description": "externally-built (out-of-tree) module was loaded"},
            {"bit": 13, "letter": "E", "description": "unsigned module was loaded"}
        ], "unknown_bits": 0},
        "mounts": [],
        "logins": [{
            "user": "alice", "line": "pts/0", "id": "ts/0", "host": "198.51.100.7",
            "address": "198.51.100.7", "pid": 900, "session": 900,
            "login_unix_seconds": 1714564800, "login_utc": "2024-05-01T12:00:00Z", "record_offset": 384
        }],
        "errors": [{"section": "processes", "path": "/proc/1", "message": "exe: Permission denied (os error 13)"}],
        "recovered": [{
            "pid": 4242, "original_path": "/tmp/.x/kworker", "file_name": "pid-4242-kworker.bin",
            "size_bytes": 100, "sha256": "ab".repeat(32), "truncated": false
        }]
    });
    serde_json::from_value(v).unwrap()
}

/// Compares with tests/summary_report.txt; `VESTIGE_BLESS=1 cargo test` rewrites that file
/// after a deliberate change to the report (review the diff before committing it).
#[test]
fn report() {
    let got = summary(&snapshot());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/summary_report.txt");
    if std::env::var_os("VESTIGE_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(got, want, "\n--- got ---\n{got}");
}
