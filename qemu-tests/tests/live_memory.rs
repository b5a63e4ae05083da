//! A suspect Linux VM with known activity: a web server listening on port 8080, a TCP
//! connection to port 4444 on loopback, syslogd on /dev/log forwarding over UDP, and a
//! process whose binary was deleted (`/tmp/.hidden/sleep`). Inside it, `vestige collect
//! live` and `vestige acquire memory` (from /proc/kcore) write signed items to an evidence
//! disk; meanwhile the host takes a QMP `dump-guest-memory` of the same VM and converts it
//! with `vestige acquire memory --from`. Checked from the host: both items verify, the
//! live snapshot names the listener and the deleted binary (its recovered copy hashes like
//! the original), the kcore LiME and the converted dump hold the kernel banner at a common
//! physical address, and, when Volatility 3 is installed, `linux.pslist` with the ISF that
//! `vestige symbols` makes from the captured BTF and kallsyms lists both processes, and
//! `vestige analyze pslist`/`sockstat` (our own walkers) agree with Volatility's
//! `linux.pslist`/`linux.sockstat` and with the live snapshot's socket inodes.
//!
//! The VM is Debian's kernel with the appliance's initramfs, its /init replaced by a
//! busybox script (busybox-static). Skips (passes with a note) when a tool is missing,
//! unless VESTIGE_REQUIRE_TOOLS=1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use vestige_evidence::lime;
use vestige_evidence::manifest::{Manifest, MANIFEST_FILE};
use vestige_evidence::verify::{verify_item, Verdict};
use vestige_qemu_tests::appliance::{missing_tools, tools_required, workspace_root, Appliance};
use vestige_qemu_tests::disk::sha256_file;
use vestige_qemu_tests::evidence::extract_ext4;
use vestige_qemu_tests::files::keep_dir;
use vestige_qemu_tests::qmp::{json_string, Qmp};
use vestige_qemu_tests::vm::{self, Accel, Boot, Bus, Drive, Live};

const BUSYBOX: &str = "/bin/busybox";
const GUEST_MIB: u32 = 512;
const READY_FOR_DUMP: &str = "VESTIGE-TEST: ready-for-dump";
const DONE: &str = "VESTIGE-TEST: done";

/// The /init of the locked-down suspect: only the memory acquisition, which must fail
/// cleanly, and the live collection, which must still work.
const INIT_LOCKDOWN: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /mnt /run /tmp
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in virtio_pci virtio_blk crc32c_generic ext4; do $B modprobe $m || echo "modprobe $m failed"; done
n=0; while [ ! -b /dev/vda ] && [ $n -lt 50 ]; do $B sleep 0.2; n=$((n+1)); done
$B mount -t ext4 /dev/vda /mnt || echo "VESTIGE-TEST: evidence mount failed"
echo "VESTIGE-TEST: lockdown $(cat /sys/kernel/security/lockdown 2>/dev/null || $B mount -t securityfs s /sys/kernel/security && cat /sys/kernel/security/lockdown)"
/bin/vestige key generate /run/k >/dev/null
/bin/vestige case init /mnt/case --case-id LOCKED-1 --examiner "QEMU Test" >/dev/null
/bin/vestige acquire memory --case /mnt/case --item mem --key /run/k.sec > /mnt/memory.json 2> /mnt/memory.log
echo "VESTIGE-TEST: memory exit $?"
/bin/vestige collect live --case /mnt/case --item live --key /run/k.sec > /mnt/collect.json 2> /mnt/collect.log
echo "VESTIGE-TEST: collect exit $?"
echo "VESTIGE-TEST: done"
$B sync
$B umount /mnt
$B poweroff -f
"#;

/// The suspect's /init: plant the activity, collect, acquire, wait for the host's dump.
const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /mnt /run /tmp
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in virtio_pci virtio_blk crc32c_generic ext4; do $B modprobe $m || echo "modprobe $m failed"; done
n=0; while [ ! -b /dev/vda ] && [ $n -lt 50 ]; do $B sleep 0.2; n=$((n+1)); done
$B mount -t ext4 /dev/vda /mnt || echo "VESTIGE-TEST: evidence mount failed"
$B ifconfig lo 127.0.0.1 up
$B mkdir -p /srv && echo hello > /srv/index.html
$B httpd -p 8080 -f -h /srv &
$B syslogd -n -O /tmp/messages -R 127.0.0.1:5514 &
$B sleep 86400 | $B nc -l -p 4444 > /dev/null &
$B sleep 1
$B logger -t planted "syslogd forwards this over UDP"
$B sleep 86400 | $B nc 127.0.0.1 4444 &
$B mkdir -p /tmp/.hidden && $B cp /bin/busybox /tmp/.hidden/sleep
/tmp/.hidden/sleep 86400 &
$B sleep 1
$B rm /tmp/.hidden/sleep
/bin/vestige key generate /run/k >/dev/null
/bin/vestige case init /mnt/case --case-id LIVE-1 --examiner "QEMU Test" >/dev/null
/bin/vestige collect live --case /mnt/case --item live --key /run/k.sec > /mnt/collect.json 2> /mnt/collect.log
echo "VESTIGE-TEST: collect exit $?"
/bin/vestige acquire memory --case /mnt/case --item mem --key /run/k.sec > /mnt/memory.json 2> /mnt/memory.log
echo "VESTIGE-TEST: memory exit $?"
$B cp /run/k.pub /mnt/case/examiner.pub
echo "VESTIGE-TEST: ready-for-dump"
read line
echo "VESTIGE-TEST: done"
$B sync
$B umount /mnt
$B poweroff -f
"#;

fn prerequisites() -> Option<Appliance> {
    let missing = missing_tools(&[vm::QEMU, "cpio", "zstd", "mkfs.ext4", "debugfs"]);
    let busybox = Path::new(BUSYBOX).is_file();
    let appliance = Appliance::find();
    let why = match (&appliance, missing.is_empty(), busybox) {
        (Ok(_), true, true) => return appliance.ok(),
        (_, _, false) => format!("{BUSYBOX} missing (apt-get install busybox-static)"),
        (Ok(_), false, _) => format!("missing tools: {}", missing.join(", ")),
        (Err(e), _, _) => e.to_string(),
    };
    assert!(!tools_required(), "VESTIGE_REQUIRE_TOOLS=1: {why}");
    eprintln!("note: skipping the live memory test: {why}");
    None
}

fn run(cmd: &mut Command) -> std::process::Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The appliance initramfs (decompressed) followed by an overlay cpio with the script.
fn suspect_initrd(app: &Appliance, dir: &Path, init: &str) -> PathBuf {
    let overlay = dir.join("overlay");
    std::fs::create_dir_all(overlay.join("bin")).unwrap();
    std::fs::copy(BUSYBOX, overlay.join("bin/busybox")).unwrap();
    std::fs::write(overlay.join("init"), init).unwrap();
    run(Command::new("chmod").arg("755").arg(overlay.join("init")));
    let cpio = run(Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort | cpio -o -H newc --quiet")
        .current_dir(&overlay));
    let base = run(Command::new("zstd").arg("-dc").arg(&app.initrd));
    let mut initrd = base.stdout;
    initrd.extend_from_slice(&cpio.stdout);
    let path = dir.join("suspect-initrd.img");
    std::fs::write(&path, initrd).unwrap();
    path
}

/// Waits for the guest to finish, dumps its memory over QMP, lets it power off.
fn dump_when_ready(live: &Live, dump: &Path) -> Result<(), String> {
    live.wait_for_line(READY_FOR_DUMP, Duration::from_secs(900))
        .ok_or_else(|| format!("no \"{READY_FOR_DUMP}\" (or QEMU ended)"))?;
    let socket = live.qmp_socket().ok_or("no QMP socket")?;
    let mut qmp = Qmp::connect(socket, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let args = format!(
        r#"{{"paging":false,"protocol":{}}}"#,
        json_string(&format!("file:{}", dump.display()))
    );
    qmp.execute("dump-guest-memory", &args)
        .map_err(|e| e.to_string())?;
    live.send_line("go").map_err(|e| e.to_string())?;
    Ok(())
}

/// The physical addresses of `needle` in a LiME file (at most 256).
fn find_physical(lime_bytes: &[u8], needle: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    for r in lime::read_ranges(&lime_bytes).unwrap() {
        let data = &lime_bytes[r.data_offset as usize..(r.data_offset + r.length_bytes) as usize];
        out.extend(
            data.windows(needle.len())
                .enumerate()
                .filter(|(_, w)| *w == needle)
                .map(|(i, _)| r.start + i as u64)
                .take(256),
        );
    }
    out
}

fn verified(item: &Path) -> Manifest {
    let report = verify_item(item, None, 2, None);
    assert_eq!(
        report.verdict,
        Verdict::Verified,
        "{}: {:?}",
        item.display(),
        report.problems
    );
    serde_json::from_slice(&std::fs::read(item.join(MANIFEST_FILE)).unwrap()).unwrap()
}

/// The suspect VM running `init`, with a blank ext4 evidence disk of `evidence_size`
/// (a `truncate` size) as vda; returns the boot and the evidence disk's path.
fn suspect_vm(
    app: &Appliance,
    dir: &Path,
    init: &str,
    evidence_size: &str,
    cmdline_extra: &str,
    timeout_secs: u64,
) -> (Boot, PathBuf) {
    let initrd = suspect_initrd(app, dir, init);
    let evidence = dir.join("evidence.raw");
    run(Command::new("truncate")
        .arg("-s")
        .arg(evidence_size)
        .arg(&evidence));
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&evidence));
    let boot = Boot {
        kernel: app.kernel.clone(),
        initrd,
        cmdline: format!("console=ttyS0 panic=-1 quiet{cmdline_extra}"),
        drives: vec![Drive {
            path: evidence.clone(),
            bus: Bus::Virtio,
            read_only: false,
            blkdebug: None,
        }],
        memory_mib: GUEST_MIB,
        cpus: 2,
        timeout: Duration::from_secs(timeout_secs),
        accel: Accel::detect(),
    };
    (boot, evidence)
}

fn vestige_bin() -> PathBuf {
    workspace_root().join("target/debug/vestige")
}

#[test]
fn live_state_and_memory_of_a_suspect_vm() {
    let Some(app) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (boot, evidence) = suspect_vm(&app, dir, INIT, "1536M", "", 1200);
    let dump = dir.join("guest.core");
    let socket = dir.join("qmp.sock");
    let log = keep_dir("live_memory").join("console.log");
    let (outcome, scripted) = boot
        .run_interactive(&log, Some(&socket), |live| dump_when_ready(live, &dump))
        .unwrap();
    let context = || format!("console ({}):\n{}", log.display(), outcome.tail(40));
    scripted.unwrap_or_else(|e| panic!("{e}; {}", context()));
    assert!(outcome.powered_off(), "did not power off; {}", context());
    assert!(outcome.line_containing(DONE).is_some(), "{}", context());
    assert!(
        outcome.line_containing("collect exit 0").is_some(),
        "{}",
        context()
    );
    assert!(
        outcome.line_containing("memory exit 0").is_some(),
        "{}",
        context()
    );

    let out = dir.join("extracted");
    extract_ext4(&evidence, 0, &out).unwrap();
    let case = out.join("case");

    // The live snapshot.
    let m = verified(&case.join("live"));
    assert_eq!(m.source.kind, "live_system");
    let snap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case.join("live/live.json")).unwrap()).unwrap();
    let procs = snap["processes"].as_array().unwrap();
    let httpd = procs
        .iter()
        .find(|p| p["cmdline"].to_string().contains("httpd"))
        .unwrap_or_else(|| panic!("no httpd process in the snapshot"));
    let listener = snap["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["local_port"] == 8080 && s["state"] == "LISTEN")
        .expect("no LISTEN socket on port 8080");
    assert!(
        listener["owners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["pid"] == httpd["pid"]),
        "port 8080 not mapped to httpd: {listener}"
    );
    let hidden = procs
        .iter()
        .find(|p| {
            p["exe"]
                .as_str()
                .is_some_and(|e| e.contains("/tmp/.hidden/sleep"))
        })
        .expect("no process running /tmp/.hidden/sleep");
    assert_eq!(hidden["exe_deleted"], true, "{hidden}");
    let recovered = snap["recovered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == hidden["pid"])
        .expect("the deleted binary was not recovered");
    let copy = case
        .join("live")
        .join(recovered["file_name"].as_str().unwrap());
    assert_eq!(
        sha256_file(&copy).unwrap(),
        sha256_file(Path::new(BUSYBOX)).unwrap()
    );

    // The memory image from /proc/kcore.
    let m = verified(&case.join("mem"));
    let mem = m.memory.clone().expect("no memory section");
    assert_eq!(mem.method, "kcore", "{:?}", mem.fallbacks);
    let kernel = mem.kernel.clone().expect("no kernel capture");
    assert!(kernel.kallsyms_addresses, "{:?}", kernel.problems);
    for f in [
        "kernel.kallsyms",
        "kernel.btf",
        "kernel.version",
        "kernel.iomem",
    ] {
        assert!(
            kernel.files.iter().any(|k| k == f),
            "{f} not captured: {kernel:?}"
        );
    }
    eprintln!(
        "kcore: {} ranges, {} unreadable, {} not captured, {} bytes; times {} .. {}",
        mem.ranges.len(),
        mem.unreadable.len(),
        mem.not_captured.len(),
        m.acquisition.bytes_acquired,
        m.times.started_utc,
        m.times.finished_utc
    );
    let kcore_lime = run(Command::new("zstd")
        .arg("-dc")
        .arg(case.join("mem/memory.lime.zst")))
    .stdout;
    assert_eq!(
        vestige_evidence::fsutil::sha256_hex(&kcore_lime),
        m.hashes.sha256
    );

    // The hypervisor's view of the same memory, converted on the host.
    let host_case = dir.join("host-case");
    run(Command::new(vestige_bin())
        .args(["case", "init"])
        .arg(&host_case)
        .args(["--case-id", "LIVE-1-HOST", "--examiner", "QEMU Test"]));
    let o = Command::new(vestige_bin())
        .args(["acquire", "memory", "--from"])
        .arg(&dump)
        .arg("--case")
        .arg(&host_case)
        .args(["--item", "qmp-dump"])
        .env("VESTIGE_KEY_DIR", dir.join("keys"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dm = verified(&host_case.join("qmp-dump"));
    assert_eq!(dm.memory.as_ref().unwrap().method, "elf_core");
    let dump_lime = run(Command::new("zstd")
        .arg("-dc")
        .arg(host_case.join("qmp-dump/memory.lime.zst")))
    .stdout;
    let banner = kernel.banner.trim_end().as_bytes().to_vec();
    // The banner is in memory several times (the kernel's rodata, page cache, buffers);
    // the kernel's own copy does not move, so both images hold it at the same address.
    let in_kcore = find_physical(&kcore_lime, &banner);
    let in_dump = find_physical(&dump_lime, &banner);
    let common: Vec<u64> = in_kcore
        .iter()
        .copied()
        .filter(|a| in_dump.contains(a))
        .collect();
    assert!(
        !common.is_empty(),
        "no common physical address of the kernel banner: kcore {in_kcore:x?}, dump {in_dump:x?}"
    );
    eprintln!(
        "kernel banner at physical {common:x?} in both images (kcore {} copies, dump {})",
        in_kcore.len(),
        in_dump.len()
    );

    let pid = |p: &serde_json::Value| p["pid"].as_u64().unwrap();
    let expected = [(pid(httpd), "busybox"), (pid(hidden), "sleep")];
    // Our own walker of the task list, on the kcore item and on the converted dump (whose
    // kernel files come from the kcore item: same boot).
    // Kept for a look after a failure.
    let kept = keep_dir("live_memory").join("case-mem");
    let _ = std::fs::remove_dir_all(&kept);
    run(Command::new("cp")
        .arg("-a")
        .arg(case.join("mem"))
        .arg(&kept));
    let ours_kcore = own_pslist(&case.join("mem"), None);
    let ours_dump = own_pslist(&host_case.join("qmp-dump"), Some(&case.join("mem")));
    // The dump is taken with the guest idle: its list must be whole. The kcore image is
    // read while the guest runs and may be smeared; then only what was read is compared.
    assert!(ours_dump.1, "the task list of the QMP dump is broken");
    for (name, (rows, _)) in [("kcore", &ours_kcore), ("dump", &ours_dump)] {
        for (pid, comm) in &expected {
            assert!(
                rows.iter().any(|(p, c)| p == pid && c == comm),
                "{name}: pid {pid} ({comm}) not in vestige's pslist: {rows:?}"
            );
        }
        eprintln!(
            "{name}: vestige analyze pslist lists {} processes",
            rows.len()
        );
    }
    volatility_pslist(
        dir,
        &case,
        &kcore_lime,
        &dump_lime,
        &expected,
        [&ours_kcore, &ours_dump],
    );

    // Sockets from memory, on the dump: the planted ones, with the inodes the live
    // snapshot saw for them (same boot, same processes).
    let sockets = own_sockstat(&host_case.join("qmp-dump"), &case.join("mem"));
    let find = |what: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        sockets
            .iter()
            .find(|s| f(s))
            .unwrap_or_else(|| panic!("no {what} in vestige's sockstat: {sockets:#?}"))
            .clone()
    };
    let port = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap_or(0);
    let web = find("LISTEN on 8080", &|s| {
        port(s, "local_port") == 8080 && s["state"] == "LISTEN"
    });
    assert_eq!(web["pid"], httpd["pid"], "{web}");
    let client = find("connection to 127.0.0.1:4444", &|s| {
        port(s, "remote_port") == 4444 && s["state"] == "ESTABLISHED"
    });
    find("the server end of the 4444 connection", &|s| {
        port(s, "local_port") == 4444
            && port(s, "remote_port") == port(&client, "local_port")
            && s["state"] == "ESTABLISHED"
    });
    find("syslogd's /dev/log", &|s| {
        s["family"] == "AF_UNIX" && s["local_address"] == "/dev/log"
    });
    find("syslogd's UDP socket", &|s| s["protocol"] == "UDP");
    for live in snap["sockets"].as_array().unwrap() {
        if ![8080, 4444].contains(&live["local_port"].as_u64().unwrap_or(0)) {
            continue;
        }
        assert!(
            sockets.iter().any(|s| s["inode"] == live["inode"]
                && s["local_port"] == live["local_port"]
                && s["state"] == live["state"]),
            "the live snapshot's {live} is not in memory: {sockets:#?}"
        );
    }
    eprintln!(
        "dump: vestige analyze sockstat lists {} sockets",
        sockets.len()
    );
    volatility_sockstat(dir, &sockets);
}

/// (pid, comm) of `vestige analyze pslist ITEM [--kernel-from K] --json`, and whether the
/// walk went round the whole list (exit 0; 3 when a smeared live image broke it).
fn own_pslist(item: &Path, kernel_from: Option<&Path>) -> (Vec<(u64, String)>, bool) {
    let mut cmd = Command::new(vestige_bin());
    cmd.args(["analyze", "pslist", "--json"]).arg(item);
    if let Some(k) = kernel_from {
        cmd.arg("--kernel-from").arg(k);
    }
    let o = cmd.output().unwrap();
    let rc = o.status.code();
    assert!(
        matches!(rc, Some(0 | 3)),
        "{cmd:?}: {rc:?}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    if rc == Some(3) {
        eprintln!("note: {}: {}", item.display(), v["broken"]);
    }
    let rows = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["pid"].as_u64().unwrap_or(0),
                t["comm"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (rows, rc == Some(0))
}

/// The sockets of `vestige analyze sockstat ITEM --kernel-from K --json` (whole: exit 0).
fn own_sockstat(item: &Path, kernel_from: &Path) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(vestige_bin());
    cmd.args(["analyze", "sockstat", "--json"])
        .arg(item)
        .arg("--kernel-from")
        .arg(kernel_from);
    let o = run(&mut cmd);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["sockets"].as_array().unwrap().clone()
}

/// One comparable line per socket: internet sockets by their endpoints and state, unix
/// sockets by inode and state (and path, when bound to one). Threads are folded into
/// their process (Volatility lists a row per thread).
fn socket_key(
    pid: &str,
    fd: &str,
    family: &str,
    kind: &str,
    ends: [&str; 4],
    state: &str,
    inode: &str,
) -> String {
    if family == "AF_UNIX" {
        let path = if ends[0].starts_with('/') {
            ends[0]
        } else {
            "-"
        };
        format!("{pid} {fd} {family} {kind} {path} inode {inode} {state}")
    } else {
        format!(
            "{pid} {fd} {family} {kind} {}:{} -> {}:{} {state}",
            ends[0], ends[1], ends[2], ends[3]
        )
    }
}

/// With Volatility 3 installed, `linux.sockstat` on the dump (kept by
/// [`volatility_pslist`]) lists the same sockets as ours.
fn volatility_sockstat(dir: &Path, ours: &[serde_json::Value]) {
    let Some(vol) = volatility() else {
        return;
    };
    let keep = keep_dir("live_memory");
    let o = run(Command::new(&vol)
        .arg("--offline")
        .arg("--cache-path")
        .arg(dir.join("vol-cache"))
        .args(["-r", "pretty", "-q", "-s"])
        .arg(keep.join("symbols"))
        .arg("-f")
        .arg(keep.join("dump.lime"))
        .arg("linux.sockstat"));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    std::fs::write(keep.join("dump.lime.sockstat.txt"), &text).unwrap();
    let mut lines = text.lines().skip_while(|l| !l.contains("Sock Offset"));
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_else(|| panic!("no sockstat table:\n{text}"))
        .split('|')
        .map(str::trim)
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut theirs: Vec<String> = lines
        .filter(|l| l.contains('|'))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            let get = |n: &str| c.get(col(n)).copied().unwrap_or_default();
            socket_key(
                get("PID"),
                get("FD"),
                get("Family"),
                get("Type"),
                [
                    get("Source Addr"),
                    get("Source Port"),
                    get("Destination Addr"),
                    get("Destination Port"),
                ],
                get("State"),
                get("Source Port"),
            )
        })
        .collect();
    let text_of = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_string(),
        v => v.to_string(),
    };
    let mut mine: Vec<String> = ours
        .iter()
        .map(|s| {
            let t = |k: &str| text_of(&s[k]);
            socket_key(
                &t("pid"),
                &t("fd"),
                &t("family"),
                &t("kind"),
                [
                    &t("local_address"),
                    &t("local_port"),
                    &t("remote_address"),
                    &t("remote_port"),
                ],
                &t("state"),
                &t("inode"),
            )
        })
        .collect();
    theirs.sort();
    theirs.dedup();
    mine.sort();
    assert_eq!(
        mine, theirs,
        "vestige's and Volatility's sockstat differ:\n{text}"
    );
    eprintln!(
        "dump: Volatility sockstat lists the same {} sockets as vestige's",
        mine.len()
    );
}

/// The Volatility 3 command, when installed (`cargo xtask test` installs it into a
/// venv and names it in VESTIGE_VOL).
fn volatility() -> Option<std::ffi::OsString> {
    let vol = std::env::var_os("VESTIGE_VOL").unwrap_or_else(|| "vol".into());
    if Command::new(&vol)
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(vol);
    }
    assert!(
        !tools_required(),
        "VESTIGE_REQUIRE_TOOLS=1: vol (volatility3) missing"
    );
    eprintln!("note: volatility3 missing: cross-check with Volatility skipped");
    None
}

/// (pid, comm) rows of Volatility's pretty pslist output.
fn pslist_rows(text: &str) -> Vec<(u64, String)> {
    text.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cols.get(2)?.parse().ok()?, cols.get(5)?.to_string()))
        })
        .collect()
}

/// With Volatility 3 installed, pslist on both images with the ISF made from the capture
/// must list the `expected` (pid, comm) processes the live snapshot found.
fn volatility_pslist(
    dir: &Path,
    case: &Path,
    kcore_lime: &[u8],
    dump_lime: &[u8],
    expected: &[(u64, &str)],
    ours: [&(Vec<(u64, String)>, bool); 2],
) {
    let Some(vol) = volatility() else {
        return;
    };
    // Volatility caches which symbol file matches which banner; a cache from an earlier
    // run with a rewritten ISF makes it skip the table ("symbol_table_name" unmet), so
    // each run gets its own cache, and no network lookups.
    let cache = dir.join("vol-cache");
    std::fs::create_dir_all(&cache).unwrap();
    // Kept for a look after a failure: the images and the ISF.
    let keep = keep_dir("live_memory");
    let symbols = keep.join("symbols");
    let _ = std::fs::remove_dir_all(&symbols);
    run(Command::new(vestige_bin())
        .args(["symbols", "--item"])
        .arg(case.join("mem"))
        .arg("--out")
        .arg(symbols.join("linux")));
    for ((name, bytes), ours) in [("kcore.lime", kcore_lime), ("dump.lime", dump_lime)]
        .into_iter()
        .zip(ours)
    {
        let image = keep.join(name);
        std::fs::write(&image, bytes).unwrap();
        let o = run(Command::new(&vol)
            .arg("--offline")
            .arg("--cache-path")
            .arg(&cache)
            .arg("-r")
            .arg("pretty")
            .arg("-q")
            .arg("-s")
            .arg(&symbols)
            .arg("-f")
            .arg(&image)
            .arg("linux.pslist"));
        let text = String::from_utf8_lossy(&o.stdout);
        std::fs::write(
            keep_dir("live_memory").join(format!("{name}.pslist.txt")),
            &*text,
        )
        .unwrap();
        let rows = pslist_rows(&text);
        for (pid, comm) in expected {
            assert!(
                rows.iter().any(|(p, c)| p == pid && c == comm),
                "{name}: pid {pid} ({comm}) not in Volatility's pslist ({} rows):\n{text}\n{}",
                rows.len(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        // Our walker and Volatility read the same list: the same processes (every one we
        // read, when a smeared image broke our walk).
        let (ours, whole) = ours;
        let mut theirs: Vec<&(u64, String)> = rows.iter().collect();
        // Volatility leaves out the list head, init_task (pid 0, swapper/0); we list it.
        let mut mine: Vec<&(u64, String)> = ours.iter().filter(|(p, _)| *p != 0).collect();
        theirs.sort();
        mine.sort();
        if *whole {
            assert_eq!(
                mine, theirs,
                "{name}: vestige's and Volatility's pslist differ"
            );
        } else {
            assert!(
                mine.iter().all(|m| theirs.contains(m)),
                "{name}: vestige lists processes Volatility does not: {mine:?} / {theirs:?}"
            );
        }
        eprintln!(
            "{name}: Volatility pslist lists {} processes, among them {expected:?}, the same as vestige's",
            rows.len()
        );
    }
}

/// Kernel lockdown in confidentiality mode (what Secure Boot with `lockdown=confidentiality`
/// gives) closes /proc/kcore and /dev/mem. The acquisition must say so for each method,
/// exit 2 and leave no item; live collection still works.
#[test]
fn locked_down_kernel_refuses_memory_cleanly() {
    let Some(app) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (boot, evidence) = suspect_vm(
        &app,
        dir,
        INIT_LOCKDOWN,
        "256M",
        " lockdown=confidentiality",
        600,
    );
    let log = keep_dir("live_memory_lockdown").join("console.log");
    let outcome = boot.run(&log).unwrap();
    let context = || format!("console ({}):\n{}", log.display(), outcome.tail(40));
    assert!(outcome.powered_off(), "did not power off; {}", context());
    assert!(
        outcome.line_containing("[confidentiality]").is_some(),
        "lockdown not in force; {}",
        context()
    );
    assert!(
        outcome.line_containing("memory exit 2").is_some(),
        "{}",
        context()
    );
    assert!(
        outcome.line_containing("collect exit 0").is_some(),
        "{}",
        context()
    );
    let out = dir.join("extracted");
    extract_ext4(&evidence, 0, &out).unwrap();
    let err = std::fs::read_to_string(out.join("memory.log")).unwrap();
    for needle in ["/proc/kcore", "/dev/mem", "no method could read memory"] {
        assert!(err.contains(needle), "memory.log lacks {needle:?}:\n{err}");
    }
    eprintln!("locked down: {}", err.lines().last().unwrap_or_default());
    assert!(!out.join("case/mem").exists(), "an item was left behind");
    verified(&out.join("case/live"));
}
