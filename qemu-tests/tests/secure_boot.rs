//! Secure Boot: the stick `target/appliance/vestige-sb-usb.img` boots under OVMF with Secure
//! Boot enforced (SMM-protected variables, Microsoft keys enrolled) through Debian's signed
//! chain — shim (Microsoft-signed) → grub → kernel (Debian-signed) — and acquires a
//! read-only virtio target onto the stick's exFAT VESTIGE-EVIDENCE partition; the kernel
//! says Secure Boot is on and runs locked down, the manifest records the lockdown, the
//! Debian-signed modules still load, the evidence verifies on the host and QEMU powers off
//! by itself. Then the unsigned UKI stick (`vestige-usb.img`) must be refused by the same
//! firmware.
//!
//! The shipped grub.cfg boots the console menu after a short timeout, so the test boots a
//! copy of the stick whose `EFI/debian/grub.cfg` (not signature-checked) is rewritten with
//! mtools to an unattended command line.
//!
//! Skips (passes with a note) when QEMU, a tool or an appliance file is missing, unless
//! VESTIGE_REQUIRE_TOOLS=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vestige_evidence::custody::{CaseInfo, CASE_FILE};
use vestige_qemu_tests::appliance::{appliance_dir, missing_tools, tools_required};
use vestige_qemu_tests::disk;
use vestige_qemu_tests::files::assert_item_verified;
use vestige_qemu_tests::files::keep_dir;
use vestige_qemu_tests::uefi::extract_exfat_evidence;
use vestige_qemu_tests::uefi::{copy_stick, run, tail, StickLayout};
use vestige_qemu_tests::vm;

const CASE_ID: &str = "SB-1";
const EXAMINER: &str = "SB Test";
const TARGET_MIB: u64 = 48;
/// OVMF with SMM under TCG, then shim and grub: slower than the UKI stick.
const BOOT_TIMEOUT: Duration = Duration::from_secs(480);
/// How long the refused UKI may take to NOT reach the kernel.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(120);
const SB_USB_IMAGE: &str = "vestige-sb-usb.img";
const UKI_USB_IMAGE: &str = "vestige-usb.img";
const OVMF_CODE: &str = "ovmf/OVMF_CODE_4M.secboot.fd";
const OVMF_VARS: &str = "ovmf/OVMF_VARS_4M.ms.fd";
/// Where Debian's signed grub reads its configuration (its built-in prefix is /EFI/debian).
const ESP_GRUB_CFG: &str = "::/EFI/debian/grub.cfg";
/// Printed by OVMF's boot manager when the image verification (DxeImageVerificationLib)
/// refuses a boot loader.
const OVMF_REFUSAL: &str = "Access Denied";

/// The appliance folder, or None (after a note) when something needed is missing.
fn prerequisites(what: &str, files: &[&str]) -> Option<PathBuf> {
    let tools = [
        vm::QEMU,
        "mcopy",
        "mtype",
        "fsck.exfat",
        "signify-openbsd",
        "cp",
    ];
    let mut why: Vec<String> = missing_tools(&tools)
        .iter()
        .map(|t| format!("missing tool {t}"))
        .collect();
    let dir = appliance_dir();
    for f in files {
        if !dir.join(f).is_file() {
            why.push(format!(
                "missing {} (build it with `cargo xtask appliance`)",
                dir.join(f).display()
            ));
        }
    }
    if why.is_empty() {
        return Some(dir);
    }
    let why = why.join("; ");
    assert!(!tools_required(), "VESTIGE_REQUIRE_TOOLS=1: {why}");
    eprintln!("note: skipping {what}: {why}");
    None
}

/// QEMU with OVMF enforcing Secure Boot: q35 with SMM, the flash's secure property on (only
/// SMM code may write the variables), the Secure Boot build of OVMF, a private copy of the
/// variable store with Microsoft's keys enrolled (PK, KEK, db with the Microsoft UEFI CA).
fn secure_boot_qemu(app: &Path, vars: &Path) -> Command {
    let mut qemu = Command::new(vm::QEMU);
    qemu.args([
        "-accel",
        "tcg",
        "-machine",
        "q35,smm=on",
        "-m",
        "1024",
        "-smp",
        "2",
    ])
    .args(["-global", "driver=cfi.pflash01,property=secure,value=on"])
    // OVMF's Secure Boot build wants S3 off (its S3 resume path is not SMM-safe).
    .args(["-global", "ICH9-LPC.disable_s3=1"])
    .args([
        "-nodefaults",
        "-nographic",
        "-serial",
        "stdio",
        "-no-reboot",
    ])
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=0,readonly=on,file={}",
        app.join(OVMF_CODE).display()
    ))
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=1,file={}",
        vars.display()
    ));
    qemu
}

/// Runs QEMU until it exits, `timeout` passes, or a console line contains `stop_at` (then it
/// is killed); the serial console goes to `log` and is returned. Our own child, killed by
/// its handle.
fn boot(
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
    stop_at: Option<&'static str>,
) -> (Option<ExitStatus>, String, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting qemu-system-x86_64");
    let stdout = child.stdout.take().unwrap();
    let log_path = log.to_path_buf();
    let (seen_tx, seen_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::create(&log_path).unwrap();
        let mut text = String::new();
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            std::io::Write::write_all(&mut file, &line).unwrap();
            let s = String::from_utf8_lossy(&line);
            if stop_at.is_some_and(|needle| s.contains(needle)) {
                let _ = seen_tx.send(());
            }
            text.push_str(&s);
            line.clear();
        }
        text
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > timeout || seen_rx.try_recv().is_ok() {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = start.elapsed();
    (status, reader.join().unwrap(), elapsed)
}

/// The console without terminal escape sequences (grub and OVMF draw with them).
fn plain(console: &str) -> String {
    let mut out = String::with_capacity(console.len());
    let mut chars = console.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters and intermediates, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[test]
fn secure_boot_usb_acquires_through_signed_shim_grub_kernel() {
    let Some(app) = prerequisites(
        "the Secure Boot test",
        &[SB_USB_IMAGE, OVMF_CODE, OVMF_VARS],
    ) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();

    // The stick: a sparse copy, its grub.cfg made unattended.
    let usb = dir.join("sb-usb.img");
    let StickLayout {
        esp_at,
        evidence_at: ev_at,
        evidence_bytes: ev_bytes,
    } = copy_stick(&app.join(SB_USB_IMAGE), &usb);
    let esp = format!("{}@@{esp_at}", usb.display());
    let shipped =
        run(Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i", &esp, ESP_GRUB_CFG]));
    assert!(
        shipped.contains("linux /vmlinuz ") && shipped.contains("initrd /initramfs.img"),
        "the shipped grub.cfg does not boot /vmlinuz + /initramfs.img:\n{shipped}"
    );
    // grub splits words like a shell; it hands the kernel a word with a space re-quoted.
    let words = format!(
        "console=ttyS0 panic=-1 vestige.run=acquire vestige.targets=all \
         vestige.case={CASE_ID} \"vestige.examiner={EXAMINER}\""
    );
    let cfg = dir.join("grub.cfg");
    std::fs::write(
        &cfg,
        format!(
            "set timeout=0\nset default=0\nmenuentry \"Vestige (unattended test)\" {{\n\
             \tlinux /vmlinuz {words}\n\tinitrd /initramfs.img\n}}\n"
        ),
    )
    .unwrap();
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-o", "-i", &esp])
        .arg(&cfg)
        .arg(ESP_GRUB_CFG));
    let files = disk::write_sample_files(dir).unwrap();
    let target = disk::make_target(dir, "target.raw", TARGET_MIB, &files).unwrap();
    let target_sha256 = disk::sha256_file(&target).unwrap();
    let vars = dir.join("OVMF_VARS.ms.fd");
    std::fs::copy(app.join(OVMF_VARS), &vars).unwrap();

    let mut qemu = secure_boot_qemu(&app, &vars);
    // The stick first (vda, the boot disk), the target second (vdb), read-only.
    qemu.arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", usb.display()))
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,readonly=on",
            target.display()
        ));
    let log = keep_dir("secure_boot").join("console.log");
    let (status, raw, elapsed) = boot(&mut qemu, &log, BOOT_TIMEOUT, None);
    let console = plain(&raw);
    let context = || format!("console ({}):\n{}", log.display(), tail(&console, 40));
    eprintln!(
        "timing: Secure Boot (shim → grub → kernel) + acquisition + power off: {elapsed:.1?}"
    );

    // shim verified grub (else: "Verification failed: (0x1A) Security Violation"), grub
    // verified the kernel through shim (else: "bad shim signature").
    assert!(
        !console.contains(OVMF_REFUSAL),
        "the firmware refused shim (Microsoft's db does not trust it?); {}",
        context()
    );
    assert!(
        console.contains("Welcome to GRUB!"),
        "shim did not start grub; {}",
        context()
    );
    assert!(
        console.contains("EFI stub: UEFI Secure Boot is enabled."),
        "grub did not start the kernel with Secure Boot on; {}",
        context()
    );
    assert!(
        console.contains("secureboot: Secure boot enabled"),
        "the kernel does not report Secure Boot; {}",
        context()
    );
    assert!(
        console.contains("Kernel is locked down from EFI Secure Boot"),
        "the kernel is not locked down; {}",
        context()
    );
    let expected = format!(
        "Kernel command line: BOOT_IMAGE=/vmlinuz console=ttyS0 panic=-1 vestige.run=acquire \
         vestige.targets=all vestige.case={CASE_ID} \"vestige.examiner={EXAMINER}\""
    );
    assert!(
        console.contains(&expected),
        "the kernel did not get grub.cfg's command line; {}",
        context()
    );
    // Debian-signed modules load under lockdown (a rejected one: "Loading of unsigned
    // module is rejected" / "Key was rejected by service", or an init warning).
    assert!(
        console.contains("vestige-init: loaded module"),
        "vestige-init loaded no module; {}",
        context()
    );
    for refusal in [
        "Loading of unsigned module is rejected",
        "Key was rejected by service",
        "module verification failed",
    ] {
        assert!(
            !console.contains(refusal),
            "a module was refused ({refusal:?}); {}",
            context()
        );
    }
    let module_warnings: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("vestige-init: WARNING") && l.contains("module"))
        .collect();
    assert!(
        module_warnings.is_empty(),
        "module warnings: {module_warnings:#?}"
    );
    assert!(
        status.is_some_and(|s| s.success()) && console.contains("reboot: Power down"),
        "QEMU did not power off by itself ({status:?}); {}",
        context()
    );
    assert!(
        !console.contains("Kernel panic"),
        "kernel panic; {}",
        context()
    );

    // The evidence, read back from the stick without mounting it (the exfat module loaded:
    // the appliance mounted the partition and wrote the case).
    let out = extract_exfat_evidence(&usb, ev_at, ev_bytes, dir);
    let case = out.join(CASE_ID);
    assert!(case.is_dir(), "no case {CASE_ID}; {}", context());
    let info: CaseInfo =
        serde_json::from_slice(&std::fs::read(case.join(CASE_FILE)).unwrap()).unwrap();
    assert_eq!(info.examiner, EXAMINER);
    assert!(
        !case.join("vda").exists(),
        "the boot stick (vda) was acquired as a target"
    );
    let manifest = assert_item_verified(&case, "vdb", &target_sha256);
    // The lockdown as the manifest records it (/sys/kernel/security/lockdown, on the
    // securityfs vestige-init mounts): Secure Boot puts Debian's kernel in integrity mode.
    let lockdown = manifest.host.lockdown.as_deref().unwrap_or_default();
    assert!(
        lockdown.contains("[integrity]") || lockdown.contains("[confidentiality]"),
        "the manifest's host.lockdown is {lockdown:?}, expected [integrity] or [confidentiality]"
    );
    assert_eq!(
        disk::sha256_file(&target).unwrap(),
        target_sha256,
        "the target changed during the boot"
    );
}

/// The unsigned UKI stick under the same enforcing firmware: OVMF must refuse to start it,
/// so no kernel runs. The stick is attached read-only (nothing should write it anyway).
#[test]
fn unsigned_uki_is_refused_under_secure_boot() {
    let Some(app) = prerequisites(
        "the Secure Boot refusal test",
        &[UKI_USB_IMAGE, OVMF_CODE, OVMF_VARS],
    ) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let vars = t.path().join("OVMF_VARS.ms.fd");
    std::fs::copy(app.join(OVMF_VARS), &vars).unwrap();
    let mut qemu = secure_boot_qemu(&app, &vars);
    qemu.arg("-drive").arg(format!(
        "file={},format=raw,if=virtio,readonly=on",
        app.join(UKI_USB_IMAGE).display()
    ));
    let log = keep_dir("secure_boot_refusal").join("console.log");
    // Stop as soon as OVMF says it refused the loader; else give it REFUSAL_TIMEOUT.
    let (status, raw, elapsed) = boot(&mut qemu, &log, REFUSAL_TIMEOUT, Some(OVMF_REFUSAL));
    let console = plain(&raw);
    let context = || format!("console ({}):\n{}", log.display(), tail(&console, 30));
    eprintln!("timing: unsigned UKI refused after {elapsed:.1?}");
    assert!(
        status.is_none(),
        "QEMU exited by itself ({status:?}) instead of sitting refused; {}",
        context()
    );
    for started in ["EFI stub:", "Linux version", "Run /init", "vestige-init"] {
        assert!(
            !console.contains(started),
            "the unsigned UKI started ({started:?} on the console); {}",
            context()
        );
    }
    assert!(
        console.contains(OVMF_REFUSAL),
        "OVMF did not report refusing the UKI ({OVMF_REFUSAL:?}); {}",
        context()
    );
}
