//! `collect()` on the machine running the tests (as root, so every process is readable).
//!
//! One test function on purpose: it copies and executes a binary, and a concurrent
//! fork from another test thread could hold the copy's write descriptor open and make
//! exec fail with ETXTBSY.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::Read;
use std::net::{IpAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;
use vestige_live::{collect, summary, CollectOptions, Snapshot};

fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut data = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    hex::encode(Sha256::digest(&data))
}

/// Starts a copy of /bin/sleep from `dir`, retrying while exec sees the copy as busy.
fn start_copy_of_sleep(dir: &Path) -> (Child, std::path::PathBuf) {
    let exe = dir.join("vestige-test-sleeper");
    std::fs::copy("/bin/sleep", &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    for _ in 0..50 {
        match Command::new(&exe).arg("300").spawn() {
            Ok(child) => return (child, exe),
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("spawn {}: {e}", exe.display()),
        }
    }
    panic!("{} stayed busy", exe.display());
}

/// Kills the child when the test ends, pass or fail.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn collect_this_machine() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let work = tempfile::tempdir().unwrap();
    let (child, exe) = start_copy_of_sleep(work.path());
    let child = KillOnDrop(child);
    let child_pid = child.0.id();
    let original_sha256 = sha256_file(&exe);
    // Wait until the child runs the copy, not the test binary between fork and exec.
    for _ in 0..200 {
        let link = std::fs::read_link(format!("/proc/{child_pid}/exe")).unwrap();
        if link == exe {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_file(&exe).unwrap();
    let recovered_dir = tempfile::tempdir().unwrap();
    let opts = CollectOptions {
        recover_deleted_to: Some(recovered_dir.path().to_path_buf()),
        include_environment: true,
        ..Default::default()
    };

    let s = collect(&opts);

    own_process(&s);
    listener_owned_by_us(&s, port);
    deleted_exe_recovered(&s, child_pid, &exe, &original_sha256, recovered_dir.path());
    the_rest(&s);

    let text = summary(&s);
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(
        text.contains(&format!("pid {child_pid} (vestige-test-sl)")),
        "{text}"
    );
    let json = serde_json::to_string(&s).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    drop(listener);
}

fn own_process(s: &Snapshot) {
    let pid = std::process::id();
    let me = s
        .processes
        .iter()
        .find(|p| p.pid == pid)
        .expect("our own process");
    let exe = std::env::current_exe().unwrap();
    assert_eq!(me.exe.as_deref().map(Path::new), Some(exe.as_path()));
    assert!(!me.exe_deleted && !me.kernel_thread);
    assert_eq!(me.exe_sha256.as_deref(), Some(sha256_file(&exe).as_str()));
    // /proc/PID is owned by the process's effective uid (for a dumpable process).
    let euid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    assert_eq!(me.uid_effective, Some(euid));
    assert!(me.start_utc.is_some());
    assert!(!me.cmdline.is_empty());
    let env = me.environment.as_ref().expect("environment requested");
    assert!(env
        .iter()
        .any(|e| e.starts_with("PATH=") || e.starts_with("CARGO")));
    assert!(s.processes.iter().any(|p| p.pid == 1));
    assert!(
        s.processes.iter().any(|p| p.kernel_thread),
        "kernel threads are flagged"
    );
}

fn listener_owned_by_us(s: &Snapshot, port: u16) {
    let pid = std::process::id();
    let sock = s
        .sockets
        .iter()
        .find(|x| x.protocol == "tcp" && x.local_port == port && x.state == "LISTEN")
        .expect("our listener");
    assert_eq!(sock.local_address, IpAddr::from([127, 0, 0, 1]));
    assert!(
        sock.owners.iter().any(|o| o.pid == pid),
        "{:?}",
        sock.owners
    );
    let me = s.processes.iter().find(|p| p.pid == pid).unwrap();
    assert!(me.socket_inodes.contains(&sock.inode));
}

fn deleted_exe_recovered(
    s: &Snapshot,
    child_pid: u32,
    exe: &Path,
    original_sha256: &str,
    dir: &Path,
) {
    let p = s
        .processes
        .iter()
        .find(|p| p.pid == child_pid)
        .expect("the sleeper");
    assert!(p.exe_deleted, "{p:?}");
    assert_eq!(p.exe.as_deref().map(Path::new), Some(exe));
    assert_eq!(p.exe_sha256.as_deref(), Some(original_sha256));
    let r = s
        .recovered
        .iter()
        .find(|r| r.pid == child_pid)
        .expect("recovered copy");
    assert_eq!(r.sha256, original_sha256);
    assert_eq!(r.original_path, exe.to_str().unwrap());
    assert!(!r.truncated);
    assert_eq!(r.file_name, format!("pid-{child_pid}-vestige-test-sl.bin"));
    let copy = dir.join(&r.file_name);
    assert_eq!(sha256_file(&copy), original_sha256);
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), r.size_bytes);
    // Only deleted executables are recovered.
    assert!(s
        .recovered
        .iter()
        .all(|r| s.processes.iter().any(|p| p.pid == r.pid && p.exe_deleted)));
}

fn the_rest(s: &Snapshot) {
    assert!(s.collected_utc.ends_with('Z'));
    assert!(s.clock.uptime_seconds.is_some_and(|u| u > 0.0));
    assert!(s.clock.boot_unix_seconds.is_some());
    assert!(s.host.hostname.is_some() && s.host.kernel_release.is_some());
    assert!(s
        .mounts
        .iter()
        .any(|m| m.mount_point == "/proc" && m.fs_type == "proc"));
    assert!(s.interfaces.iter().any(|i| i.name == "lo"));
    assert!(s
        .routes
        .iter()
        .all(|r| r.family == "ipv4" || r.family == "ipv6"));
    assert!(s.taint.is_some());
    // Only "gone" and permission problems are acceptable on a healthy machine; no parse errors.
    for e in &s.errors {
        assert!(!e.message.contains("line "), "parse error: {e:?}");
    }
}
