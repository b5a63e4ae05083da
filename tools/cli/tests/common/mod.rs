//! Helpers for the end-to-end tests: run `vestige` and the stock tools, make disks.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The vestige binary under test.
pub fn vestige() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vestige"));
    c.env("VESTIGE_LOG", "warn");
    c
}

/// Runs a command, returns its output.
pub fn out(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let o = out(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit code and stderr.
pub fn code(o: &Output) -> (i32, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn strict() -> bool {
    std::env::var_os("VESTIGE_REQUIRE_TOOLS").is_some_and(|v| v == "1")
}

/// Whether `tool` is installed; under VESTIGE_REQUIRE_TOOLS=1 a missing tool fails the test.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "command -v {tool} || test -x /sbin/{tool} || test -x /usr/sbin/{tool}"
        ))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !strict(),
            "{tool} is required (VESTIGE_REQUIRE_TOOLS=1) but not installed"
        );
        eprintln!("note: {tool} not installed; skipping");
    }
    found
}

/// Whether we run as root (loop devices, mounts); required under VESTIGE_REQUIRE_TOOLS=1.
pub fn root() -> bool {
    let is_root = ok(Command::new("id").arg("-u")).trim() == "0";
    if !is_root {
        assert!(!strict(), "root is required (VESTIGE_REQUIRE_TOOLS=1)");
        eprintln!("note: not root; skipping");
    }
    is_root
}

/// SHA-256 of a file as hex.
pub fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(p).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

/// SHA-256 of bytes as hex.
pub fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A GPT disk of `mib` MiB: partition 1 ext4 populated from `files` (if given) made by
/// mkfs.ext4 -d, partition table by sgdisk, and `random_tail_mib` MiB of deterministic
/// pseudo-random bytes after the partition (incompressible, so frames differ in size).
pub fn make_disk(dir: &Path, name: &str, mib: u64, files: Option<&Path>) -> PathBuf {
    let disk = dir.join(name);
    ok(Command::new("truncate")
        .arg("-s")
        .arg(format!("{mib}M"))
        .arg(&disk));
    let fs_mib = mib.saturating_sub(4).max(8) * 3 / 4;
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-E", "offset=1048576"]);
    if let Some(f) = files {
        mkfs.arg("-d").arg(f);
    }
    ok(mkfs.arg(&disk).arg(format!("{fs_mib}M")));
    ok(Command::new("sgdisk")
        .arg("-o")
        .arg("-n")
        .arg(format!("1:2048:+{fs_mib}M"))
        .args(["-t", "1:8300", "-n", "2:0:0", "-t", "2:8300"])
        .arg(&disk));
    // Pseudo-random bytes in partition 2 (deterministic, incompressible).
    let start = (fs_mib + 2) << 20;
    let len = (mib << 20) - start - (1 << 20);
    let data = pseudo_random(len, 0x9e37_79b9_7f4a_7c15);
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    f.write_all_at(&data, start).unwrap();
    disk
}

/// `len` deterministic pseudo-random bytes (xorshift64 from `seed | 1`): incompressible.
pub fn pseudo_random(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = vec![0u8; usize::try_from(len).unwrap()];
    for b in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
    }
    data
}

/// A directory of files to populate a file system.
pub fn make_files(dir: &Path) -> PathBuf {
    let root = dir.join("files");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("home/user")).unwrap();
    std::fs::write(root.join("etc/hostname"), "suspect\n").unwrap();
    std::fs::write(
        root.join("home/user/notes.txt"),
        "meet at dawn\n".repeat(5000),
    )
    .unwrap();
    root
}

/// A case directory (created by `vestige case init`).
pub fn new_case(dir: &Path, name: &str) -> PathBuf {
    let case = dir.join(name);
    ok(vestige().args(["case", "init"]).arg(&case).args([
        "--case-id",
        "T-1",
        "--examiner",
        "Tess Tester",
    ]));
    case
}

/// A key pair made by `vestige key generate`; returns (sec, pub).
pub fn new_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    ok(vestige().args(["key", "generate"]).arg(&prefix));
    (prefix.with_extension("sec"), prefix.with_extension("pub"))
}

/// The command `vestige acquire disk SOURCE --case CASE --item ITEM --key KEY [extra…]`.
fn acquire_command(source: &Path, case: &Path, item: &str, key: &Path, extra: &[&str]) -> Command {
    let mut c = vestige();
    c.args(["acquire", "disk"])
        .arg(source)
        .arg("--case")
        .arg(case)
        .args(["--item", item, "--key"])
        .arg(key)
        .args(extra);
    c
}

/// Runs `vestige acquire disk SOURCE --case CASE --item ITEM --key KEY [extra…]`.
pub fn acquire(source: &Path, case: &Path, item: &str, key: &Path, extra: &[&str]) -> Output {
    out(&mut acquire_command(source, case, item, key, extra))
}

/// Starts the same in the background, its output piped.
pub fn spawn_acquire(source: &Path, case: &Path, item: &str, key: &Path, extra: &[&str]) -> Child {
    acquire_command(source, case, item, key, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGINT, as Ctrl-C would stop it; returns its output.
pub fn interrupt(child: Child) -> Output {
    ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    child.wait_with_output().unwrap()
}

/// `vestige verify ITEM --pubkey PUBLIC --json`: exit code and the JSON report.
pub fn verify_json(item: &Path, public: &Path) -> (i32, serde_json::Value) {
    let v = out(vestige()
        .arg("verify")
        .arg(item)
        .arg("--pubkey")
        .arg(public)
        .arg("--json"));
    let report = serde_json::from_slice(&v.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}",
            String::from_utf8_lossy(&v.stderr)
        )
    });
    (code(&v).0, report)
}

/// The item verifies as sound but incomplete (exit 3), never as complete.
pub fn assert_verified_incomplete(item: &Path, public: &Path) {
    let (rc, r) = verify_json(item, public);
    assert_eq!(rc, 3, "{r}");
    assert_eq!(r["items"][0]["verdict"], "verified_incomplete", "{r}");
}

/// Reads an item's manifest as JSON.
pub fn manifest(item: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(item.join("manifest.json")).unwrap()).unwrap()
}

/// A loop device over `file`, detached on drop.
pub struct Loop(pub PathBuf);

impl Loop {
    /// Attaches `file` writable. The kernel keeps a loop device's BLKROSET flag across
    /// detach and re-attach, so the flag is cleared first: every test starts from a device
    /// a suspect could write to.
    pub fn attach(file: &Path) -> Loop {
        let dev = ok(Command::new("losetup").args(["-f", "--show"]).arg(file));
        let dev = PathBuf::from(dev.trim());
        ok(Command::new("blockdev").arg("--setrw").arg(&dev));
        Loop(dev)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // Leave the loop device as we found it for the next user of this machine.
        let _ = Command::new("blockdev")
            .arg("--setrw")
            .arg(&self.0)
            .status();
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A mount point, unmounted on drop.
pub struct Mount(pub PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
