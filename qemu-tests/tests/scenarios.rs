//! Boot scenarios beyond the plain acquisition: a target hot-plugged over QMP while the
//! appliance waits (`vestige.wait`), several targets on different buses at once, and the
//! two refusals (no evidence medium; an evidence medium too small for the targets). Each
//! generates its disks, boots unattended, and checks from the host.
//!
//! Skips (passes with a note) when QEMU, a disk tool or the appliance (`cargo xtask
//! appliance`) is missing, unless VESTIGE_REQUIRE_TOOLS=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use vestige_evidence::manifest::{Manifest, IMAGE_FILE, MANIFEST_FILE};
use vestige_evidence::verify::{verify_item, Verdict};
use vestige_qemu_tests::appliance::{missing_tools, tools_required, Appliance};
use vestige_qemu_tests::disk::{self, EvidenceDisk};
use vestige_qemu_tests::evidence::{ext4_state, extract_ext4};
use vestige_qemu_tests::files::{keep_dir, list, walk};
use vestige_qemu_tests::qmp::{json_string, Qmp};
use vestige_qemu_tests::vm::{self, Accel, Boot, Bus, Drive, Live, Outcome};

const CASE_ID: &str = "SCEN-1";
const EXAMINER: &str = "QEMU Scenario";
/// Bounds a hung appliance; each scenario takes well under a minute of TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// From QEMU's start to "vestige-init: ready" (about 8 s under TCG here).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// `vestige.wait` of the hot-plug scenario: time enough to plug after "ready".
const HOTPLUG_WAIT_SECONDS: u64 = 25;
const READY: &str = "vestige-init: ready";
/// What init says as it starts waiting (`vestige.wait`), evidence medium mounted.
const WAITING: &str = "for late disks (vestige.wait)";
const ACQUIRE_STARTED: &str = "running: vestige acquire";

/// One boot at a time: each guest gets the host's CPUs, and the timings mean something.
static ONE_BOOT_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The appliance and the lock of the one boot, or None (after a note) when something
/// needed is missing.
fn prerequisites() -> Option<(Appliance, MutexGuard<'static, ()>)> {
    let missing = missing_tools(&[vm::QEMU, "sgdisk", "mkfs.ext4", "debugfs", "dumpe2fs"]);
    let appliance = Appliance::find();
    let why = match (appliance, missing.is_empty()) {
        (Ok(app), true) => {
            // A failed boot poisons the lock; the next one still runs.
            let one = ONE_BOOT_AT_A_TIME
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return Some((app, one));
        }
        (Ok(_), false) => format!("missing tools: {}", missing.join(", ")),
        (Err(e), true) => e.to_string(),
        (Err(e), false) => format!("missing tools: {}; {e}", missing.join(", ")),
    };
    assert!(!tools_required(), "VESTIGE_REQUIRE_TOOLS=1: {why}");
    eprintln!("note: skipping the boot scenario: {why}");
    None
}

/// An unattended acquisition of every disk, with `extra` parameters.
fn acquire_cmdline(extra: &str) -> String {
    format!(
        "console=ttyS0 panic=-1 vestige.run=acquire vestige.targets=all \
         vestige.case={CASE_ID} vestige.examiner=\"{EXAMINER}\" {extra}"
    )
}

fn boot(app: &Appliance, cmdline: String, drives: Vec<Drive>) -> Boot {
    Boot {
        kernel: app.kernel.clone(),
        initrd: app.initrd.clone(),
        cmdline,
        drives,
        memory_mib: 1024,
        cpus: 2,
        timeout: BOOT_TIMEOUT,
        accel: Accel::detect(),
    }
}

/// Boots the appliance unattended with `extra` parameters on `drives`, waits for it to
/// power off by itself, and returns the console log's path and the outcome.
fn run_unattended(
    app: &Appliance,
    name: &str,
    extra: &str,
    drives: Vec<Drive>,
) -> (PathBuf, Outcome) {
    let log = keep_dir(name).join("console.log");
    let o = boot(app, acquire_cmdline(extra), drives).run(&log).unwrap();
    report_timings(name, &o);
    assert_powered_off(&log, &o);
    (log, o)
}

/// As [`run_unattended`], with `script` driving the boot over QMP (see
/// [`Boot::run_scripted`]); also returns what the script returned, or fails the test with
/// its error.
fn run_unattended_scripted<T, F>(
    app: &Appliance,
    name: &str,
    extra: &str,
    drives: Vec<Drive>,
    script: F,
) -> (PathBuf, Outcome, T)
where
    F: FnMut(&Live) -> Result<T, String> + Send,
    T: Send,
{
    let log = keep_dir(name).join("console.log");
    let socket = keep_dir(name).join("qmp.sock");
    let (o, result) = boot(app, acquire_cmdline(extra), drives)
        .run_scripted(&log, Some(&socket), script)
        .unwrap();
    report_timings(name, &o);
    let result = result.unwrap_or_else(|e| panic!("{e}; {}", context(&log, &o)));
    assert_powered_off(&log, &o);
    (log, o, result)
}

fn drive(path: &Path, bus: Bus, read_only: bool) -> Drive {
    Drive {
        path: path.to_path_buf(),
        bus,
        read_only,
        blkdebug: None,
    }
}

/// The console tail and QEMU's messages, for failure messages.
fn context(log: &Path, o: &Outcome) -> String {
    format!(
        "console ({}):\n{}\nqemu stderr:\n{}",
        log.display(),
        o.tail(50),
        o.qemu_stderr
    )
}

/// QEMU powered off by itself (no timeout, no panic, no reboot).
fn assert_powered_off(log: &Path, o: &Outcome) {
    assert!(
        o.powered_off(),
        "QEMU did not power off by itself ({:?}); {}",
        o.ending,
        context(log, o)
    );
    assert!(
        o.line_containing("vestige-init: power off").is_some(),
        "no \"vestige-init: power off\" on the console; {}",
        context(log, o)
    );
    assert!(
        o.line_containing("Kernel panic").is_none(),
        "kernel panic; {}",
        context(log, o)
    );
}

fn assert_console_says(log: &Path, o: &Outcome, needle: &str) {
    assert!(
        o.line_containing(needle).is_some(),
        "no \"{needle}\" on the console; {}",
        context(log, o)
    );
}

/// The file, byte for byte, is what it was before the boot.
fn assert_unchanged(path: &Path, sha256_before: &str) {
    assert_eq!(
        disk::sha256_file(path).unwrap(),
        sha256_before,
        "{} changed during the boot",
        path.display()
    );
}

/// Prints boot and acquisition times read off the console.
fn report_timings(name: &str, o: &Outcome) {
    let at = |needle: &str| o.line_containing(needle).map(|l| l.at.as_secs_f64());
    eprintln!(
        "timing [{name}] accel={} total={:.3} s",
        o.accel,
        o.elapsed.as_secs_f64()
    );
    if let Some(why) = &o.kvm_fallback {
        eprintln!("note [{name}] KVM abandoned for TCG: {why}");
    }
    if let Some(ready) = at(READY) {
        eprintln!("timing [{name}] QEMU start -> \"ready\": {ready:.3} s");
        if let Some(off) = at("vestige-init: power off") {
            eprintln!(
                "timing [{name}] \"ready\" -> \"power off\": {:.3} s",
                off - ready
            );
        }
    }
    if let (Some(start), Some(end)) = (at(ACQUIRE_STARTED), at("vestige-init: acquired:")) {
        eprintln!(
            "timing [{name}] first acquisition start -> \"acquired:\": {:.3} s",
            end - start
        );
    }
}

/// Reads the case back from the evidence disk (checking its file system was left clean)
/// into `dir/extracted`; returns the extraction root.
fn extract_evidence(evidence: &EvidenceDisk, dir: &Path, log: &Path, o: &Outcome) -> PathBuf {
    let state = ext4_state(&evidence.path, evidence.partition_offset_bytes).unwrap();
    assert!(
        state.clean && !state.needs_recovery,
        "evidence file system left {state:?}; {}",
        context(log, o)
    );
    let out = dir.join("extracted");
    extract_ext4(&evidence.path, evidence.partition_offset_bytes, &out).unwrap();
    out
}

/// Checks item `item` of the case: it verifies, its source hash is `sha256`, its size is
/// `size_bytes`, and the appliance verified the source read-only before reading it.
fn check_item(case: &Path, item: &str, sha256: &str, size_bytes: u64, log: &Path, o: &Outcome) {
    let dir = case.join(item);
    assert!(
        dir.is_dir(),
        "no item {item} in the case (found: {:?}); {}",
        list(case),
        context(log, o)
    );
    let report = verify_item(&dir, None, 2, None);
    assert_eq!(
        report.verdict,
        Verdict::Verified,
        "verify {}: {:?}",
        dir.display(),
        report.problems
    );
    assert_eq!(report.source_sha256.as_deref(), Some(sha256), "item {item}");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(manifest.hashes.sha256, sha256, "item {item}");
    assert_eq!(manifest.source.size_bytes, size_bytes, "item {item}");
    assert_eq!(manifest.case.case_id, CASE_ID);
    assert_eq!(manifest.case.item, item);
    eprintln!(
        "item {item}: write protection {:?}",
        manifest.source.write_protection
    );
    assert_eq!(
        manifest.source.write_protection.read_only_verified,
        Some(true),
        "the appliance did not verify {item} read-only: {:?}",
        manifest.source.write_protection
    );
}

/// A target file of `size_mib` MiB of deterministic incompressible bytes (xorshift64), no
/// partition table: the worst case for the evidence medium's free space.
fn incompressible_target(dir: &Path, name: &str, size_mib: u64, seed: u64) -> PathBuf {
    let path = dir.join(name);
    let mut x = seed | 1;
    let mut data = vec![0u8; usize::try_from(size_mib << 20).unwrap()];
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&path, data).unwrap();
    path
}

/// What the hot-plug script did, with times since QEMU's start.
#[derive(Debug)]
struct HotPlug {
    ready_at: Duration,
    waiting_at: Duration,
    plugged_at: Duration,
    events: Vec<String>,
}

/// Waits for "ready" and for init to start its `vestige.wait` (so the disk arrives after
/// coldplug and the evidence search, as a responder's late disk would), then hot-plugs
/// `disk` as a virtio-blk-pci device on pci.0: a raw file node opened read-write (the
/// hypervisor does not protect it; BLKROSET in the guest is the only guard).
fn hot_plug(live: &Live, disk: &Path) -> Result<HotPlug, String> {
    let ready = live
        .wait_for_line(READY, READY_TIMEOUT)
        .ok_or_else(|| format!("no \"{READY}\" within {READY_TIMEOUT:?} (or QEMU ended)"))?;
    let waiting = live
        .wait_for_line(WAITING, Duration::from_secs(30))
        .ok_or_else(|| format!("no \"{WAITING}\" after \"{READY}\""))?;
    let socket = live.qmp_socket().ok_or("no QMP socket")?;
    let mut qmp = Qmp::connect(socket, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let node = format!(
        r#"{{"driver":"raw","node-name":"hotplug-node","read-only":false,"file":{{"driver":"file","filename":{}}}}}"#,
        json_string(&disk.to_string_lossy())
    );
    qmp.execute("blockdev-add", &node)
        .map_err(|e| e.to_string())?;
    qmp.execute(
        "device_add",
        r#"{"driver":"virtio-blk-pci","id":"hotplug-disk","drive":"hotplug-node","bus":"pci.0"}"#,
    )
    .map_err(|e| e.to_string())?;
    let plugged_at = live.elapsed();
    Ok(HotPlug {
        ready_at: ready.at,
        waiting_at: waiting.at,
        plugged_at,
        events: qmp.events().to_vec(),
    })
}

/// The appliance waits (`vestige.wait`) after "ready"; meanwhile a target is hot-plugged
/// over QMP, writable at the hypervisor. The uevent listener must write-protect it as it
/// appears, and the unattended run must acquire it beside the target present at boot.
#[test]
fn hotplugged_disk_is_write_protected_and_acquired() {
    const NAME: &str = "hotplug";
    const BOOT_TARGET_MIB: u64 = 32;
    const HOTPLUG_MIB: u64 = 48;
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let files = disk::write_sample_files(dir).unwrap();
    let boot_target = disk::make_target(dir, "boot-target.raw", BOOT_TARGET_MIB, &files).unwrap();
    let boot_sha = disk::sha256_file(&boot_target).unwrap();
    let plugged = disk::make_target(dir, "hotplug.raw", HOTPLUG_MIB, &files).unwrap();
    let plugged_sha = disk::sha256_file(&plugged).unwrap();
    assert_ne!(boot_sha, plugged_sha, "the two targets must differ");
    let evidence = disk::make_evidence_disk(dir, "evidence.raw", 256).unwrap();
    let socket = dir.join("qmp.sock");

    // vda: the target at boot; vdb: the evidence medium; the hot-plugged disk comes third.
    let b = boot(
        &app,
        acquire_cmdline(&format!("vestige.wait={HOTPLUG_WAIT_SECONDS}")),
        vec![
            drive(&boot_target, Bus::Virtio, true),
            drive(&evidence.path, Bus::Virtio, false),
        ],
    );
    let log = keep_dir(NAME).join("console.log");
    let (o, plug) = b
        .run_scripted(&log, Some(&socket), |live| hot_plug(live, &plugged))
        .unwrap();
    report_timings(NAME, &o);
    let plug = plug.unwrap_or_else(|e| panic!("hot-plug failed: {e}; {}", context(&log, &o)));
    eprintln!(
        "timing [{NAME}] \"ready\" at {:.3} s, waiting at {:.3} s, hot-plugged at {:.3} s; \
         QMP events: {:?}",
        plug.ready_at.as_secs_f64(),
        plug.waiting_at.as_secs_f64(),
        plug.plugged_at.as_secs_f64(),
        plug.events
    );
    assert_powered_off(&log, &o);

    // The listener's line for the new whole disk, after the plug.
    let appeared = o
        .console
        .iter()
        .filter(|l| l.at >= plug.plugged_at)
        .find_map(|l| {
            let rest = l.text.split("vestige-init: block device ").nth(1)?;
            let name = rest.strip_suffix(" appeared; write-protected")?;
            (!name.ends_with(|c: char| c.is_ascii_digit())).then(|| name.to_string())
        })
        .unwrap_or_else(|| {
            panic!(
                "no \"block device vdX appeared; write-protected\" after the hot-plug; {}",
                context(&log, &o)
            )
        });
    assert!(
        appeared.starts_with("vd") && appeared != "vda" && appeared != "vdb",
        "the hot-plugged disk came up as {appeared}; {}",
        context(&log, &o)
    );
    if let Some(l) = o.line_containing(&format!("{appeared}: NOT write-protected")) {
        panic!("{}; {}", l.text, context(&log, &o));
    }
    let appeared_at = o
        .line_containing(&format!("block device {appeared} appeared"))
        .map(|l| l.at)
        .unwrap();
    let acquire_at = o
        .line_containing(ACQUIRE_STARTED)
        .map(|l| l.at)
        .unwrap_or_else(|| panic!("no acquisition started; {}", context(&log, &o)));
    assert!(
        appeared_at < acquire_at,
        "{appeared} appeared at {appeared_at:?}, after the acquisition began at {acquire_at:?}"
    );
    eprintln!(
        "timing [{NAME}] hot-plug -> \"{appeared} appeared\": {:.3} s",
        (appeared_at - plug.plugged_at).as_secs_f64()
    );

    let root = extract_evidence(&evidence, dir, &log, &o);
    let case = root.join(CASE_ID);
    check_item(&case, &appeared, &plugged_sha, HOTPLUG_MIB << 20, &log, &o);
    check_item(&case, "vda", &boot_sha, BOOT_TARGET_MIB << 20, &log, &o);
    assert!(!case.join("vdb").exists(), "the evidence disk was acquired");
    assert_unchanged(&plugged, &plugged_sha);
    assert_unchanged(&boot_target, &boot_sha);
}

/// Three targets on three buses in one unattended run: virtio-blk read-only at the
/// hypervisor, NVMe writable (BLKROSET the only guard), a virtio-scsi disk read-only.
#[test]
fn several_targets_at_once() {
    const NAME: &str = "several";
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let files = disk::write_sample_files(dir).unwrap();
    // (file, size, bus, read-only at the hypervisor, the guest's name = the item)
    let specs = [
        ("virtio.raw", 32, Bus::Virtio, true, "vda"),
        ("nvme.raw", 40, Bus::Nvme, false, "nvme0n1"),
        ("scsi.raw", 48, Bus::VirtioScsi, true, "sda"),
    ];
    let mut targets = Vec::new();
    for (file, mib, bus, ro, item) in specs {
        let path = disk::make_target(dir, file, mib, &files).unwrap();
        let sha = disk::sha256_file(&path).unwrap();
        targets.push((path, sha, mib, bus, ro, item));
    }
    let evidence = disk::make_evidence_disk(dir, "evidence.raw", 256).unwrap();
    let mut drives: Vec<Drive> = targets
        .iter()
        .map(|(path, _, _, bus, ro, _)| drive(path, *bus, *ro))
        .collect();
    // Last of the virtio disks: vdb.
    drives.push(drive(&evidence.path, Bus::Virtio, false));

    let (log, o) = run_unattended(&app, NAME, "", drives);
    // The appliance acquires in name order.
    let mut items: Vec<&str> = targets.iter().map(|t| t.5).collect();
    items.sort_unstable();
    assert_console_says(
        &log,
        &o,
        &format!(
            "vestige-init: acquired: {}; incomplete: none; failed: none",
            items.join(" ")
        ),
    );

    let root = extract_evidence(&evidence, dir, &log, &o);
    let case = root.join(CASE_ID);
    for (path, sha, mib, _, _, item) in &targets {
        check_item(&case, item, sha, mib << 20, &log, &o);
        assert_unchanged(path, sha);
    }
    assert!(!case.join("vdb").exists(), "the evidence disk was acquired");
}

/// Without an evidence medium the appliance says so, acquires nothing and powers off.
#[test]
fn no_evidence_medium_refuses_and_powers_off() {
    const NAME: &str = "no_evidence";
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let files = disk::write_sample_files(dir).unwrap();
    let target = disk::make_target(dir, "target.raw", 32, &files).unwrap();
    let sha = disk::sha256_file(&target).unwrap();

    let log = keep_dir(NAME).join("console.log");
    // Writable at the hypervisor: nothing but the appliance keeps it unchanged.
    let o = boot(
        &app,
        acquire_cmdline(""),
        vec![drive(&target, Bus::Virtio, false)],
    )
    .run(&log)
    .unwrap();
    report_timings(NAME, &o);
    assert_powered_off(&log, &o);
    assert_console_says(&log, &o, "no evidence medium");
    assert_console_says(&log, &o, "refusing to acquire");
    assert!(
        o.line_containing(ACQUIRE_STARTED).is_none(),
        "an acquisition ran without an evidence medium; {}",
        context(&log, &o)
    );
    assert_unchanged(&target, &sha);
}

/// A 64 MiB incompressible target and a 16 MiB evidence file system: the appliance refuses
/// before reading the target, and writes no image.
#[test]
fn evidence_medium_too_small_refuses_before_starting() {
    const NAME: &str = "evidence_too_small";
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let target = incompressible_target(dir, "target.raw", 64, 0x00c0_ffee);
    let sha = disk::sha256_file(&target).unwrap();
    // 18 MiB disk: a 16 MiB ext4 file system in its one partition.
    let evidence = disk::make_evidence_disk(dir, "evidence.raw", 18).unwrap();

    let (log, o) = run_unattended(
        &app,
        NAME,
        "",
        vec![
            drive(&target, Bus::Virtio, false),
            drive(&evidence.path, Bus::Virtio, false),
        ],
    );
    assert_console_says(&log, &o, "evidence medium too small");
    assert!(
        o.line_containing(ACQUIRE_STARTED).is_none(),
        "an acquisition started on a medium too small; {}",
        context(&log, &o)
    );

    let root = extract_evidence(&evidence, dir, &log, &o);
    let images: Vec<PathBuf> = walk(&root)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == IMAGE_FILE))
        .collect();
    assert!(
        images.is_empty(),
        "images written to a medium too small: {images:?}"
    );
    assert!(
        !root.join(CASE_ID).join("vda").exists(),
        "an item directory was made (case holds {:?})",
        list(&root.join(CASE_ID))
    );
    assert_unchanged(&target, &sha);
}

/// The menu's line of choices.
const MENU_OPTIONS: &str = "p) power off";
/// Injects a refused write-block (`vestige.fault.roset`): the appliance cannot make a VM
/// disk's BLKROSET fail for real.
const FAULT_INJECTED: &str = "BLKROSET refused (fault injected by vestige.fault.roset)";
const CONFIRMED_NOTE: &str =
    "acquired because the examiner confirmed the hypervisor attaches it read-only";

/// The manifest notes of `item`.
fn manifest_notes(case: &Path, item: &str) -> Option<String> {
    let m: Manifest =
        serde_json::from_slice(&std::fs::read(case.join(item).join(MANIFEST_FILE)).unwrap())
            .unwrap();
    m.case.notes
}

/// Two targets whose write-block is refused: an unattended run skips the one the examiner
/// did not vouch for and acquires the one named in `vestige.hypervisor_ro`, saying so in
/// its manifest.
#[test]
fn unprotectable_disk_is_acquired_only_when_confirmed_unattended() {
    const NAME: &str = "roset_refused_unattended";
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let files = disk::write_sample_files(dir).unwrap();
    let unconfirmed = disk::make_target(dir, "unconfirmed.raw", 32, &files).unwrap();
    let unconfirmed_sha = disk::sha256_file(&unconfirmed).unwrap();
    let confirmed = disk::make_target(dir, "confirmed.raw", 40, &files).unwrap();
    let confirmed_sha = disk::sha256_file(&confirmed).unwrap();
    let evidence = disk::make_evidence_disk(dir, "evidence.raw", 256).unwrap();

    let (log, o) = run_unattended(
        &app,
        NAME,
        "vestige.fault.roset=vda,vdb vestige.hypervisor_ro=vdb",
        vec![
            drive(&unconfirmed, Bus::Virtio, true),
            drive(&confirmed, Bus::Virtio, true),
            drive(&evidence.path, Bus::Virtio, false),
        ],
    );
    assert_console_says(
        &log,
        &o,
        &format!("vda: NOT write-protected: {FAULT_INJECTED}"),
    );
    assert_console_says(&log, &o, "vda: skipped, not write-protected");
    assert_console_says(&log, &o, "block device vda appeared; NOT write-protected");
    assert_console_says(&log, &o, "vdb: the appliance could not write-protect");

    let root = extract_evidence(&evidence, dir, &log, &o);
    let case = root.join(CASE_ID);
    assert!(
        !case.join("vda").exists(),
        "the unconfirmed, unprotected disk was acquired; {}",
        context(&log, &o)
    );
    check_item(&case, "vdb", &confirmed_sha, 40 << 20, &log, &o);
    let notes = manifest_notes(&case, "vdb").unwrap_or_default();
    assert!(
        notes.contains(FAULT_INJECTED) && notes.contains(CONFIRMED_NOTE),
        "vdb's manifest notes do not record the failed write-block and the confirmation: {notes:?}"
    );
    let saved = std::fs::read_to_string(case.join("console.log")).unwrap();
    assert!(
        saved.contains(FAULT_INJECTED),
        "the case's console.log does not record the injected fault"
    );
    assert_unchanged(&unconfirmed, &unconfirmed_sha);
    assert_unchanged(&confirmed, &confirmed_sha);
}

/// What the menu script saw.
#[derive(Debug, Default)]
struct MenuSeen {
    /// The menu's line for vda.
    vda_line: Option<String>,
    skipped: bool,
    acquired_menu_again: bool,
    power_off: bool,
    error: Option<String>,
}

/// At the console menu, a disk whose write-block was refused is shown in red as WRITABLE;
/// choosing it without typing YES acquires nothing, typing YES acquires it.
#[test]
fn unprotectable_disk_in_the_menu_is_red_and_needs_a_confirmation() {
    const NAME: &str = "roset_refused_menu";
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let files = disk::write_sample_files(dir).unwrap();
    let target = disk::make_target(dir, "target.raw", 32, &files).unwrap();
    let sha = disk::sha256_file(&target).unwrap();
    let evidence = disk::make_evidence_disk(dir, "evidence.raw", 256).unwrap();

    let log = keep_dir(NAME).join("console.log");
    let b = boot(
        &app,
        format!(
            "console=ttyS0 panic=-1 vestige.case={CASE_ID} vestige.examiner=\"{EXAMINER}\" \
             vestige.fault.roset=vda"
        ),
        vec![
            drive(&target, Bus::Virtio, true),
            drive(&evidence.path, Bus::Virtio, false),
        ],
    );
    let (o, seen) = b
        .run_interactive(&log, None, |live| {
            let mut seen = MenuSeen::default();
            let Some(_) = live.wait_for_line(MENU_OPTIONS, READY_TIMEOUT) else {
                seen.error = Some("no menu".into());
                return seen;
            };
            seen.vda_line = live
                .lines_from(0)
                .into_iter()
                .rev()
                .find(|l| l.text.contains("[1] vda"))
                .map(|l| l.text);
            let send = |text: &str| {
                live.send_line(text)
                    .map_err(|e| format!("typing {text:?}: {e}"))
            };
            // Choose disk 1, then decline the confirmation.
            let from = live.line_count();
            if let Err(e) = send("1").and_then(|()| send("no")) {
                seen.error = Some(e);
                return seen;
            }
            seen.skipped = live
                .wait_for_line_from(
                    "vda: skipped, not write-protected",
                    from,
                    Duration::from_secs(30),
                )
                .is_some();
            let Some(menu) = live.wait_for_line_from(MENU_OPTIONS, from, Duration::from_secs(30))
            else {
                seen.error = Some("no menu after the declined confirmation".into());
                return seen;
            };
            let _ = menu;
            // Again, confirming.
            let from = live.line_count();
            if let Err(e) = send("1").and_then(|()| send("YES")) {
                seen.error = Some(e);
                return seen;
            }
            seen.acquired_menu_again = live
                .wait_for_line_from(MENU_OPTIONS, from, Duration::from_secs(120))
                .is_some();
            let from = live.line_count();
            if let Err(e) = send("p") {
                seen.error = Some(e);
                return seen;
            }
            seen.power_off = live
                .wait_for_line_from("vestige-init: power off", from, Duration::from_secs(60))
                .is_some();
            seen
        })
        .unwrap();
    report_timings(NAME, &o);
    let why = || format!("{seen:?}; {}", context(&log, &o));
    assert!(seen.error.is_none(), "{}", why());
    let vda = seen.vda_line.clone().unwrap_or_default();
    assert!(
        vda.contains("\u{1b}[1;31mWRITABLE (") && vda.contains(FAULT_INJECTED),
        "vda is not shown in red as WRITABLE: {vda:?}; {}",
        why()
    );
    assert!(seen.skipped, "declining did not skip vda; {}", why());
    assert!(seen.acquired_menu_again && seen.power_off, "{}", why());
    assert_powered_off(&log, &o);

    let root = extract_evidence(&evidence, dir, &log, &o);
    let case = root.join(CASE_ID);
    let items: Vec<String> = list(&case)
        .into_iter()
        .filter(|n| n.starts_with("vd"))
        .collect();
    assert_eq!(
        items,
        vec!["vda".to_string()],
        "one item, from the confirmed run; {}",
        why()
    );
    check_item(&case, "vda", &sha, 32 << 20, &log, &o);
    let notes = manifest_notes(&case, "vda").unwrap_or_default();
    assert!(notes.contains(CONFIRMED_NOTE), "manifest notes: {notes:?}");
    assert_unchanged(&target, &sha);
}

/// A target with bad sectors (QEMU blkdebug fails every read that touches them with EIO,
/// as a failing disk would): the appliance finishes, the item is marked incomplete, the
/// manifest and errors.map list exactly the injected sectors (ddrescuelog agrees), every
/// other byte hashes as the source's, and the target is unchanged.
#[test]
fn bad_sectors_are_zero_filled_and_listed_exactly() {
    const NAME: &str = "bad_sectors";
    const TARGET_MIB: u64 = 32;
    // Two adjacent sectors at 1 MiB, one at 19.5 MiB, the last sector of the disk.
    const LAST: u64 = (TARGET_MIB << 20) / 512 - 1;
    const BAD: [u64; 4] = [2048, 2049, 40_000, LAST];
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let target = incompressible_target(dir, "failing.raw", TARGET_MIB, 0xbad5ec7);
    let sha_before = disk::sha256_file(&target).unwrap();
    let rules = dir.join("blkdebug.conf");
    let rule = |s: u64| {
        format!("[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"{s}\"\nonce = \"off\"\n\n")
    };
    std::fs::write(&rules, BAD.map(rule).concat()).unwrap();
    // What the image must hold: the source with the bad sectors zero-filled.
    let mut expected = std::fs::read(&target).unwrap();
    for s in BAD {
        let at = usize::try_from(s * 512).unwrap();
        expected[at..at + 512].fill(0);
    }
    let expected_sha = vestige_evidence::fsutil::sha256_hex(&expected);
    let evidence = disk::make_evidence_disk(dir, "evidence.raw", 128).unwrap();
    let mut failing = drive(&target, Bus::Virtio, true);
    failing.blkdebug = Some(rules);

    let (log, o) = run_unattended(
        &app,
        NAME,
        "",
        vec![failing, drive(&evidence.path, Bus::Virtio, false)],
    );
    assert_console_says(
        &log,
        &o,
        "vestige-init: acquired: none; incomplete: vda; failed: none",
    );

    let root = extract_evidence(&evidence, dir, &log, &o);
    let item = root.join(CASE_ID).join("vda");
    let report = verify_item(&item, None, 2, None);
    assert_eq!(
        report.verdict,
        Verdict::VerifiedIncomplete,
        "{:?}",
        report.problems
    );
    let m: Manifest =
        serde_json::from_slice(&std::fs::read(item.join(MANIFEST_FILE)).unwrap()).unwrap();
    let ranges: Vec<(u64, u64)> = m
        .acquisition
        .unreadable_ranges
        .iter()
        .map(|r| (r.offset_bytes, r.length_bytes))
        .collect();
    assert_eq!(
        ranges,
        vec![(2048 * 512, 1024), (40_000 * 512, 512), (LAST * 512, 512)],
        "{}",
        context(&log, &o)
    );
    assert_eq!(m.acquisition.bytes_acquired, TARGET_MIB << 20);
    assert_eq!(m.hashes.sha256, expected_sha, "not the zero-filled source");
    let rescue = m.acquisition.rescue.clone().expect("no rescue record");
    assert!(
        rescue.direct_io,
        "sector reads did not use O_DIRECT: {rescue:?}"
    );
    assert_eq!(rescue.unreadable_bytes, 4 * 512);
    assert!(
        !item.join("resume.journal").exists(),
        "every byte was read, yet the resume journal was kept"
    );
    assert!(
        m.incomplete_reason
            .as_deref()
            .is_some_and(|r| r.contains("2048 bytes in 3 ranges")),
        "{:?}",
        m.incomplete_reason
    );
    eprintln!("{NAME}: {rescue:?}");

    // GNU ddrescuelog reads our mapfile and lists the same sectors as bad.
    let map = item.join("errors.map");
    if missing_tools(&["ddrescuelog"]).is_empty() {
        let out = std::process::Command::new("ddrescuelog")
            .arg("--list-blocks=-")
            .arg(&map)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: Vec<u64> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|b| b.parse().unwrap())
            .collect();
        assert_eq!(listed, BAD.to_vec(), "ddrescuelog -l- {}", map.display());
    } else {
        assert!(
            !tools_required(),
            "VESTIGE_REQUIRE_TOOLS=1: ddrescuelog (gddrescue) missing"
        );
        eprintln!("note: ddrescuelog missing: mapfile cross-check skipped");
    }
    assert_unchanged(&target, &sha_before);
}

/// A scratch directory holding an incompressible target (and its SHA-256) and an evidence
/// disk.
struct Rig {
    t: tempfile::TempDir,
    target: PathBuf,
    sha: String,
    evidence: EvidenceDisk,
}

/// A [`Rig`]: target `name` of `mib` MiB from `seed`, evidence disk of `evidence_mib` MiB.
fn rig(name: &str, mib: u64, seed: u64, evidence_mib: u64) -> Rig {
    let t = tempfile::tempdir().unwrap();
    let target = incompressible_target(t.path(), name, mib, seed);
    let sha = disk::sha256_file(&target).unwrap();
    let evidence = disk::make_evidence_disk(t.path(), "evidence.raw", evidence_mib).unwrap();
    Rig {
        t,
        target,
        sha,
        evidence,
    }
}

/// What the CLI logs at each durable point (tracing, `VESTIGE_LOG=info` under init).
const DURABLE: &str = "durable: the image can be resumed from here";

/// The image.zst an uninterrupted acquisition of `target` writes with the appliance's
/// defaults (zstd level 3, 4 MiB chunks): its SHA-256, computed on the host by the same
/// pipeline library. Frames are deterministic, so a resumed image must equal it byte for
/// byte.
fn uninterrupted_image_sha256(target: &Path, dir: &Path) -> String {
    use vestige_acquire::pipeline::{run, PipelineConfig, Progress};
    let data = std::fs::read(target).unwrap();
    let out = std::fs::File::create(dir.join("reference-image.zst")).unwrap();
    let result = run(
        &data,
        out,
        &PipelineConfig::new(3),
        &Progress::default(),
        &std::sync::atomic::AtomicBool::new(false),
    );
    assert!(result.stopped.is_none(), "{:?}", result.stopped);
    result.image_sha256
}

/// The manifest of `item` in the case.
fn read_manifest(case: &Path, item: &str) -> Manifest {
    serde_json::from_slice(&std::fs::read(case.join(item).join(MANIFEST_FILE)).unwrap()).unwrap()
}

/// An item that stopped early: it verifies as incomplete, holds exactly a prefix of the
/// target (its hash is the hash of those bytes), and says which bytes are missing and how
/// to resume. Returns the manifest.
fn check_stopped_item(case: &Path, item: &str, target: &Path, log: &Path, o: &Outcome) -> Manifest {
    let report = verify_item(&case.join(item), None, 2, None);
    assert_eq!(
        report.verdict,
        Verdict::VerifiedIncomplete,
        "{:?}; {}",
        report.problems,
        context(log, o)
    );
    let m = read_manifest(case, item);
    let size = std::fs::metadata(target).unwrap().len();
    let got = m.acquisition.bytes_acquired;
    assert!(got < size, "{got} of {size} bytes: nothing is missing");
    let data = std::fs::read(target).unwrap();
    let prefix = &data[..usize::try_from(got).unwrap()];
    assert_eq!(
        m.hashes.sha256,
        vestige_evidence::fsutil::sha256_hex(prefix),
        "the item's hash is not that of the target's first {got} bytes"
    );
    let reason = m.incomplete_reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("bytes 0..{got} acquired, {got}..{size} missing"))
            && reason.contains("--resume"),
        "the reason does not name the missing range and how to resume: {reason}"
    );
    m
}

/// A VM killed mid-acquisition (QMP `quit`: no shutdown, no sync, as a pulled plug) and
/// booted again with `vestige.resume`: the appliance re-verifies the journaled part of the
/// image, resumes, and the item ends complete with the target's hash and the very image an
/// uninterrupted run writes.
#[test]
fn killed_mid_acquisition_resumes_after_reboot() {
    const NAME: &str = "killed_resumed";
    const TARGET_MIB: u64 = 160;
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let Rig {
        t,
        target,
        sha,
        evidence,
    } = rig("target.raw", TARGET_MIB, 0x7e5_0e5, 512);
    let dir = t.path();
    let socket = dir.join("qmp.sock");
    let drives = || {
        vec![
            drive(&target, Bus::Virtio, true),
            drive(&evidence.path, Bus::Virtio, false),
        ]
    };

    let log1 = keep_dir(NAME).join("console-killed.log");
    let (o1, killed) = boot(&app, acquire_cmdline("vestige.sync_every=8"), drives())
        .run_scripted(&log1, Some(&socket), |live| {
            // Two durable points: 16 MiB kept at least.
            live.wait_for_line("durable_bytes=16777216", BOOT_TIMEOUT)
                .ok_or("no second durable point")?;
            let mut qmp = Qmp::connect(
                live.qmp_socket().ok_or("no QMP socket")?,
                Duration::from_secs(10),
            )
            .map_err(|e| e.to_string())?;
            let at = live.elapsed();
            // QEMU exits at once; the reply may never come.
            let _ = qmp.execute("quit", "{}");
            Ok::<Duration, String>(at)
        })
        .unwrap();
    let killed_at = killed.unwrap_or_else(|e| panic!("{e}; {}", context(&log1, &o1)));
    eprintln!("{NAME}: killed at {:.3} s", killed_at.as_secs_f64());
    assert!(
        o1.line_containing("vestige-init: acquired:").is_none(),
        "the acquisition finished before the kill; make the target larger; {}",
        context(&log1, &o1)
    );

    let log2 = keep_dir(NAME).join("console-resumed.log");
    let o2 = boot(&app, acquire_cmdline("vestige.resume"), drives())
        .run(&log2)
        .unwrap();
    report_timings(NAME, &o2);
    assert_powered_off(&log2, &o2);
    assert_console_says(
        &log2,
        &o2,
        "vda: resuming the interrupted acquisition in vda",
    );
    assert_console_says(
        &log2,
        &o2,
        "vestige-init: acquired: vda; incomplete: none; failed: none",
    );
    let root = extract_evidence(&evidence, dir, &log2, &o2);
    let case = root.join(CASE_ID);
    check_item(&case, "vda", &sha, TARGET_MIB << 20, &log2, &o2);
    let m = read_manifest(&case, "vda");
    let [r] = m.acquisition.resumes.as_slice() else {
        panic!("expected one resume record: {:?}", m.acquisition.resumes)
    };
    eprintln!("{NAME}: {r:?}");
    assert!(
        r.verified_chunks >= 4 && r.verified_chunks == r.journaled_chunks,
        "{r:?}"
    );
    assert_eq!(r.resumed_at_byte, r.verified_chunks * (4 << 20));
    assert!(r.discarded.is_none(), "{r:?}");
    assert!(!case.join("vda").join("resume.journal").exists());
    let image_sha = disk::sha256_file(&case.join("vda").join(IMAGE_FILE)).unwrap();
    assert_eq!(
        image_sha,
        uninterrupted_image_sha256(&target, dir),
        "the resumed image.zst differs from an uninterrupted run's"
    );
    assert_unchanged(&target, &sha);
}

/// Waits for the first durable point of an acquisition, then removes the device `id` with
/// QMP `device_del` (as a disk pulled from a running machine); returns when it did.
fn unplug_after_first_durable_point(live: &Live, id: &str) -> Result<Duration, String> {
    live.wait_for_line(DURABLE, BOOT_TIMEOUT)
        .ok_or("no durable point")?;
    let mut qmp = Qmp::connect(
        live.qmp_socket().ok_or("no QMP socket")?,
        Duration::from_secs(10),
    )
    .map_err(|e| e.to_string())?;
    qmp.execute("device_del", &format!(r#"{{"id":{}}}"#, json_string(id)))
        .map_err(|e| e.to_string())?;
    Ok(live.elapsed())
}

/// The target is hot-unplugged (QMP device_del) in the middle of its acquisition: the run
/// stops without hanging, the item is sealed incomplete with the prefix it holds, and the
/// appliance powers off.
#[test]
fn target_hot_unplugged_mid_run_ends_cleanly() {
    const NAME: &str = "hot_unplug";
    const TARGET_MIB: u64 = 192;
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let Rig {
        t,
        target,
        sha,
        evidence,
    } = rig("unplugged.raw", TARGET_MIB, 0x0dd_ba11, 512);
    let dir = t.path();
    let (log, o, unplugged_at) = run_unattended_scripted(
        &app,
        NAME,
        &format!("vestige.wait={HOTPLUG_WAIT_SECONDS} vestige.sync_every=8"),
        vec![drive(&evidence.path, Bus::Virtio, false)],
        |live| {
            hot_plug(live, &target)?;
            unplug_after_first_durable_point(live, "hotplug-disk")
        },
    );
    eprintln!("{NAME}: unplugged at {:.3} s", unplugged_at.as_secs_f64());
    assert_console_says(
        &log,
        &o,
        "vestige-init: acquired: none; incomplete: vdb; failed: none",
    );
    let root = extract_evidence(&evidence, dir, &log, &o);
    let m = check_stopped_item(&root.join(CASE_ID), "vdb", &target, &log, &o);
    eprintln!("{NAME}: {:?}", m.incomplete_reason);
    assert!(
        m.incomplete_reason.as_deref().is_some_and(|r| [
            "vanish",
            "the source is gone",
            "changed size"
        ]
        .iter()
        .any(|w| r.contains(w))),
        "the reason does not say the source went away: {:?}",
        m.incomplete_reason
    );
    assert_unchanged(&target, &sha);
}

/// The evidence medium fills up mid-run (`vestige.space_check=0`, as for a target known to
/// compress, here incompressible): the run stops cleanly, the held-back reserve lets the
/// seek table, manifest and signature be written, and the item is incomplete with the
/// prefix it holds, the missing range and how to resume.
#[test]
fn evidence_medium_full_mid_run_gives_a_clean_incomplete_item() {
    const NAME: &str = "evidence_full";
    const TARGET_MIB: u64 = 64;
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let Rig {
        t,
        target,
        sha,
        evidence,
    } = rig("target.raw", TARGET_MIB, 0xf1_11ed, 40);
    let dir = t.path();

    let (log, o) = run_unattended(
        &app,
        NAME,
        "vestige.space_check=0",
        vec![
            drive(&target, Bus::Virtio, true),
            drive(&evidence.path, Bus::Virtio, false),
        ],
    );
    assert_console_says(
        &log,
        &o,
        "vestige-init: acquired: none; incomplete: vda; failed: none",
    );
    let root = extract_evidence(&evidence, dir, &log, &o);
    let m = check_stopped_item(&root.join(CASE_ID), "vda", &target, &log, &o);
    assert!(
        m.incomplete_reason
            .as_deref()
            .is_some_and(|r| r.contains("No space left on device")),
        "{:?}",
        m.incomplete_reason
    );
    assert!(m.acquisition.bytes_acquired > 0, "nothing was kept");
    assert!(!root
        .join(CASE_ID)
        .join("vda")
        .join(".seal-reserve")
        .exists());
    assert_unchanged(&target, &sha);
}

/// The evidence medium is pulled out (QMP `device_del`) in the middle of an acquisition:
/// nothing more can be written to it, but the appliance must not hang. The acquisition
/// fails with the I/O error named (its seal cannot be written), init reports it as failed,
/// and the machine powers off. The target is unchanged.
#[test]
fn evidence_medium_removed_mid_run_ends_without_a_hang() {
    const NAME: &str = "evidence_removed";
    const TARGET_MIB: u64 = 192;
    let Some((app, _one)) = prerequisites() else {
        return;
    };
    let Rig {
        t: _scratch,
        target,
        sha,
        evidence,
    } = rig("target.raw", TARGET_MIB, 0x9_1ed, 512);
    let (log, o, pulled_at) = run_unattended_scripted(
        &app,
        NAME,
        "vestige.sync_every=8",
        vec![
            drive(&target, Bus::Virtio, true),
            // Drive 1: its device id is "unplug1".
            drive(&evidence.path, Bus::VirtioUnpluggable, false),
        ],
        |live| unplug_after_first_durable_point(live, "unplug1"),
    );
    eprintln!(
        "{NAME}: evidence medium pulled at {:.3} s",
        pulled_at.as_secs_f64()
    );
    // Which of vda and vdb is which depends on QEMU's PCI slot order.
    let evidence_disk = o
        .line_containing("evidence medium /dev/vd")
        .and_then(|l| {
            l.text
                .split("evidence medium /dev/")
                .nth(1)?
                .get(..3)
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no evidence medium line; {}", context(&log, &o)));
    let target_disk = if evidence_disk == "vda" { "vdb" } else { "vda" };
    assert_console_says(&log, &o, "Input/output error");
    assert_console_says(
        &log,
        &o,
        &format!("vestige-init: acquired: none; incomplete: none; failed: {target_disk}"),
    );
    assert_unchanged(&target, &sha);
}
