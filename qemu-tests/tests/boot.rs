//! Boots of the appliance under QEMU: an unattended acquisition scripted on the kernel
//! command line, checked from the host with the evidence library and stock signify.
//!
//! Skips (passes with a note) when QEMU, a disk tool or the appliance (`cargo xtask
//! appliance`) is missing, unless VESTIGE_REQUIRE_TOOLS=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use vestige_evidence::custody::{verify_chain, CaseInfo, CASE_FILE, CUSTODY_FILE};
use vestige_evidence::manifest::{Manifest, MANIFEST_FILE};
use vestige_evidence::verify::{verify_item, Verdict, CASE_KEYS_DIR};
use vestige_qemu_tests::appliance::{missing_tools, tools_required, Appliance};
use vestige_qemu_tests::disk::{self, EvidenceDisk};
use vestige_qemu_tests::evidence::{ext4_state, extract_ext4};
use vestige_qemu_tests::files::{keep_dir, list, signify_check, walk};
use vestige_qemu_tests::vm::{self, Accel, Boot, Bus, Drive, Outcome};

const CASE_ID: &str = "QEMU-1";
const EXAMINER: &str = "QEMU Test";
const TARGET_MIB: u64 = 64;
const EVIDENCE_MIB: u64 = 512;
/// TCG boots in seconds; this bounds a hung appliance.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// The appliance, or None (after a note) when something needed is missing.
fn prerequisites() -> Option<Appliance> {
    let missing = missing_tools(&[
        vm::QEMU,
        "sgdisk",
        "mkfs.ext4",
        "debugfs",
        "dumpe2fs",
        "signify-openbsd",
    ]);
    let appliance = Appliance::find();
    let why = match (&appliance, missing.is_empty()) {
        (Ok(_), true) => return appliance.ok(),
        (Ok(_), false) => format!("missing tools: {}", missing.join(", ")),
        (Err(e), true) => e.to_string(),
        (Err(e), false) => format!("missing tools: {}; {e}", missing.join(", ")),
    };
    assert!(!tools_required(), "VESTIGE_REQUIRE_TOOLS=1: {why}");
    eprintln!("note: skipping the boot test: {why}");
    None
}

/// The scripted kernel command line of an unattended acquisition of every disk.
fn acquire_cmdline() -> String {
    format!(
        "console=ttyS0 panic=-1 vestige.run=acquire vestige.targets=all \
         vestige.case={CASE_ID} vestige.examiner=\"{EXAMINER}\""
    )
}

struct Scenario {
    /// How the target is attached.
    target_bus: Bus,
    /// Whether QEMU attaches it read-only.
    target_read_only: bool,
    /// The guest's name for the target (the item name).
    target_item: &'static str,
    /// The guest's name for the evidence disk (must never become an item).
    evidence_item: &'static str,
    /// `vestige.format=e01`: the item must also hold an E01 that libewf verifies.
    e01: bool,
}

/// One boot at a time: each guest gets the host's CPUs, and the timings mean something.
static ONE_BOOT_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Generates the disks, boots, and checks everything from the host.
fn run_scenario(name: &str, s: &Scenario) {
    let Some(app) = prerequisites() else {
        return;
    };
    if s.e01 && !missing_tools(&["ewfverify"]).is_empty() {
        assert!(
            !tools_required(),
            "VESTIGE_REQUIRE_TOOLS=1: ewfverify missing"
        );
        eprintln!("note: skipping {name}: ewfverify missing");
        return;
    }
    // A failed boot poisons the lock; the next one still runs.
    let _one = ONE_BOOT_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let files = disk::write_sample_files(dir).unwrap();
    let target = disk::make_target(dir, "target.raw", TARGET_MIB, &files).unwrap();
    let target_sha256 = disk::sha256_file(&target).unwrap();
    let evidence = disk::make_evidence_disk(dir, "evidence.raw", EVIDENCE_MIB).unwrap();

    let boot = Boot {
        kernel: app.kernel.clone(),
        initrd: app.initrd.clone(),
        cmdline: if s.e01 {
            format!("{} vestige.format=e01", acquire_cmdline())
        } else {
            acquire_cmdline()
        },
        drives: vec![
            Drive {
                path: target.clone(),
                bus: s.target_bus,
                read_only: s.target_read_only,
                blkdebug: None,
            },
            Drive {
                path: evidence.path.clone(),
                bus: Bus::Virtio,
                read_only: false,
                blkdebug: None,
            },
        ],
        memory_mib: 1024,
        cpus: 2,
        timeout: BOOT_TIMEOUT,
        accel: Accel::detect(),
    };
    let log = keep_dir(name).join("console.log");
    let outcome = boot.run(&log).unwrap();
    report_timings(name, &outcome);

    let context = || {
        format!(
            "console ({}):\n{}\nqemu stderr:\n{}",
            log.display(),
            outcome.tail(40),
            outcome.qemu_stderr
        )
    };
    assert!(
        outcome.powered_off(),
        "QEMU did not power off by itself ({:?}); {}",
        outcome.ending,
        context()
    );
    assert!(
        outcome.line_containing("vestige-init: power off").is_some(),
        "no \"vestige-init: power off\" on the console; {}",
        context()
    );
    assert!(
        outcome.line_containing("Kernel panic").is_none(),
        "kernel panic; {}",
        context()
    );

    check_case(&evidence, dir, s, &target_sha256, &context);
    // The target, byte for byte, after the boot.
    assert_eq!(
        disk::sha256_file(&target).unwrap(),
        target_sha256,
        "the target changed during the boot"
    );
}

/// Reads the case off the evidence disk and checks it.
fn check_case(
    evidence: &EvidenceDisk,
    dir: &Path,
    s: &Scenario,
    target_sha256: &str,
    context: &dyn Fn() -> String,
) {
    // The appliance unmounted its evidence file system before powering off.
    let state = ext4_state(&evidence.path, evidence.partition_offset_bytes).unwrap();
    assert!(
        state.clean && !state.needs_recovery,
        "evidence file system left {state:?}; {}",
        context()
    );
    let out = dir.join("extracted");
    extract_ext4(&evidence.path, evidence.partition_offset_bytes, &out).unwrap();
    let case = out.join(CASE_ID);
    assert!(
        case.is_dir(),
        "no case {CASE_ID} on the evidence disk (found: {:?}); {}",
        list(&out),
        context()
    );

    // case.json carries the examiner with the space the kernel command line quoted.
    let info: CaseInfo =
        serde_json::from_slice(&std::fs::read(case.join(CASE_FILE)).unwrap()).unwrap();
    assert_eq!(info.case_id, CASE_ID);
    assert_eq!(info.examiner, EXAMINER);

    let item = case.join(s.target_item);
    assert!(
        item.is_dir(),
        "no item {} in the case (found: {:?}); {}",
        s.target_item,
        list(&case),
        context()
    );
    assert!(
        !case.join(s.evidence_item).exists(),
        "the evidence disk {} was acquired as a target",
        s.evidence_item
    );

    let report = verify_item(&item, None, 2, None);
    assert_eq!(
        report.verdict,
        Verdict::Verified,
        "verify {}: {:?}",
        item.display(),
        report.problems
    );
    assert_eq!(report.source_sha256.as_deref(), Some(target_sha256));

    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(item.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(manifest.hashes.sha256, target_sha256);
    assert_eq!(manifest.source.size_bytes, TARGET_MIB << 20);
    assert_eq!(manifest.case.case_id, CASE_ID);
    assert_eq!(manifest.case.item, s.target_item);
    assert_eq!(
        manifest.source.write_protection.read_only_verified,
        Some(true),
        "the appliance did not verify the target read-only: {:?}",
        manifest.source.write_protection
    );
    if let Ok(secs) = acquisition_seconds(&manifest) {
        eprintln!(
            "timing: in-VM acquisition of {} ({} MiB): {secs:.3} s (manifest times)",
            s.target_item, TARGET_MIB
        );
    }

    // Stock signify, with the case's published key.
    let key = manifest
        .signing_key
        .as_ref()
        .expect("the manifest names no signing key");
    let pubkey = case.join(CASE_KEYS_DIR).join(format!("{}.pub", key.keynum));
    assert!(pubkey.is_file(), "{} missing", pubkey.display());
    if let Err(e) = signify_check(&item, &pubkey) {
        panic!("{e}");
    }
    // The secret key never reaches the evidence medium.
    let secrets: Vec<PathBuf> = walk(&case)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sec"))
        .collect();
    assert!(
        secrets.is_empty(),
        "secret keys on the evidence disk: {secrets:?}"
    );

    let chain = verify_chain(&case.join(CUSTODY_FILE)).unwrap();
    assert!(
        chain
            .iter()
            .any(|e| e.item.as_deref() == Some(s.target_item)),
        "no custody entry for {}: {chain:?}",
        s.target_item
    );
    if s.e01 {
        check_e01(&item, &manifest);
    }
    let console_log = case.join("console.log");
    assert!(
        console_log.is_file(),
        "no console.log in the case (found: {:?})",
        list(&case)
    );
}

/// The item's E01 (`vestige.format=e01`): signed with the item (verified above), and
/// libewf's ewfverify recomputes the MD5 the manifest holds for the source.
fn check_e01(item: &Path, manifest: &Manifest) {
    let first = item.join("image.E01");
    assert!(
        manifest.outputs.iter().any(|o| o.name == "image.E01"),
        "image.E01 is not among the manifest's outputs: {:?}",
        manifest.outputs
    );
    let md5 = manifest
        .hashes
        .md5
        .as_deref()
        .expect("no source MD5 in the manifest");
    let out = std::process::Command::new("ewfverify")
        .arg("-q")
        .arg(&first)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ewfverify {}: {text}",
        first.display()
    );
    assert!(
        text.contains(md5),
        "ewfverify does not report the source's MD5 {md5}: {text}"
    );
}

fn acquisition_seconds(m: &Manifest) -> Result<f64, time::error::Parse> {
    let start = OffsetDateTime::parse(&m.times.started_utc, &Rfc3339)?;
    let end = OffsetDateTime::parse(&m.times.finished_utc, &Rfc3339)?;
    Ok((end - start).as_seconds_f64())
}

/// Prints boot and acquisition times read off the console (wall time since QEMU started).
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
    if let Some(ready) = at("vestige-init: ready") {
        eprintln!("timing [{name}] QEMU start -> \"vestige-init: ready\": {ready:.3} s");
        if let Some(off) = at("vestige-init: power off") {
            eprintln!(
                "timing [{name}] \"ready\" -> \"power off\" (acquire + verify): {:.3} s",
                off - ready
            );
        }
    }
    if let (Some(start), Some(end)) = (
        at("vestige-init: running: vestige acquire"),
        at("vestige-init: acquired:"),
    ) {
        eprintln!(
            "timing [{name}] in-VM acquisition (console, key generation included): {:.3} s",
            end - start
        );
    }
}

#[test]
fn direct_kernel_boot_acquires_virtio_target_unattended() {
    run_scenario(
        "virtio_readonly",
        &Scenario {
            target_bus: Bus::Virtio,
            target_read_only: true,
            target_item: "vda",
            evidence_item: "vdb",
            e01: false,
        },
    );
}

/// IDE/AHCI disks cannot be attached read-only by QEMU: the guest's BLKROSET is the only
/// guard, and the target must still come back unchanged. This run also asks for an E01
/// (`vestige.format=e01`).
#[test]
fn ahci_target_without_hypervisor_write_block_stays_unchanged() {
    run_scenario(
        "ahci_writable",
        &Scenario {
            target_bus: Bus::Ahci,
            target_read_only: false,
            target_item: "sda",
            evidence_item: "vda",
            e01: true,
        },
    );
}

/// The PC's own IDE controller (ata_piix): no hypervisor write-block either.
#[test]
fn ide_target_without_hypervisor_write_block_stays_unchanged() {
    run_scenario(
        "ide_writable",
        &Scenario {
            target_bus: Bus::Ide,
            target_read_only: false,
            target_item: "sda",
            evidence_item: "vda",
            e01: false,
        },
    );
}

/// A USB stick handed to a VM (xHCI + usb-storage): enumerated late (usb-storage waits
/// before scanning), and still found, protected and acquired by the unattended run.
#[test]
fn usb_storage_target_is_found_and_acquired() {
    run_scenario(
        "usb_storage_readonly",
        &Scenario {
            target_bus: Bus::UsbStorage,
            target_read_only: true,
            target_item: "sda",
            evidence_item: "vda",
            e01: false,
        },
    );
}
