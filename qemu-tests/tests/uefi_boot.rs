//! UEFI boot of the USB image (`target/appliance/vestige-usb.img`) under OVMF, the way a
//! laptop boots the stick: no `-kernel`, the firmware finds `EFI/BOOT/BOOTX64.EFI` (the UKI)
//! on the ESP, the stub starts the kernel with the initramfs, vestige-init acquires a
//! read-only virtio target onto the stick's VESTIGE-EVIDENCE partition and powers off.
//!
//! The shipped UKI's command line is the console menu, so the test boots a copy of the
//! image whose UKI carries an unattended command line (the `.cmdline` section rewritten in
//! place: its file space is 512 bytes). The evidence partition stays the shipped exFAT; the
//! host kernel here has no exfat and the harness no exFAT extractor, so a minimal read-only
//! exFAT reader below copies the case out of the image (no mount), and `fsck.exfat -n`
//! checks the file system the appliance left behind.
//!
//! Skips (passes with a note) when QEMU, a tool or an appliance file is missing, unless
//! VESTIGE_REQUIRE_TOOLS=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use vestige_evidence::custody::{CaseInfo, CASE_FILE};
use vestige_qemu_tests::appliance::{appliance_dir, missing_tools, tools_required};
use vestige_qemu_tests::disk;
use vestige_qemu_tests::files::assert_item_verified;
use vestige_qemu_tests::uefi::extract_exfat_evidence;
use vestige_qemu_tests::uefi::{copy_stick, run, tail, StickLayout};
use vestige_qemu_tests::vm;

const CASE_ID: &str = "UEFI-1";
const EXAMINER: &str = "UEFI Test";
const TARGET_MIB: u64 = 64;
/// OVMF under TCG takes a few seconds more than a direct kernel boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(420);
const USB_IMAGE: &str = "vestige-usb.img";
const OVMF_CODE: &str = "ovmf/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "ovmf/OVMF_VARS_4M.fd";
const ESP_LOADER: &str = "::/EFI/BOOT/BOOTX64.EFI";

/// The appliance folder, or None (after a note) when something needed is missing.
fn prerequisites() -> Option<PathBuf> {
    let tools = [vm::QEMU, "mcopy", "fsck.exfat", "signify-openbsd", "cp"];
    let mut why: Vec<String> = missing_tools(&tools)
        .iter()
        .map(|t| format!("missing tool {t}"))
        .collect();
    let dir = appliance_dir();
    for f in [USB_IMAGE, OVMF_CODE, OVMF_VARS] {
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
    eprintln!("note: skipping the UEFI boot test: {why}");
    None
}

/// `efi` with its `.cmdline` section holding `cmdline`: rewritten in the section's file
/// space (SizeOfRawData) and its VirtualSize set to the new length. Fine without Secure
/// Boot (nothing is signed); the next section starts a page later in memory.
fn with_cmdline(mut efi: Vec<u8>, cmdline: &str) -> Vec<u8> {
    let le16 = |b: &[u8], at: usize| usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let le32 = |b: &[u8], at: usize| {
        usize::try_from(u32::from_le_bytes(b[at..at + 4].try_into().unwrap())).unwrap()
    };
    let pe = le32(&efi, 0x3c);
    assert_eq!(&efi[pe..pe + 4], b"PE\0\0", "the UKI is not a PE image");
    let sections = le16(&efi, pe + 6);
    let table = pe + 24 + le16(&efi, pe + 20);
    let header = (0..sections)
        .map(|i| table + i * 40)
        .find(|&h| &efi[h..h + 8] == b".cmdline")
        .expect("the UKI has no .cmdline section");
    let raw_size = le32(&efi, header + 16);
    let raw_at = le32(&efi, header + 20);
    assert!(
        cmdline.len() <= raw_size,
        "command line of {} bytes does not fit the section's {raw_size}",
        cmdline.len()
    );
    let space = &mut efi[raw_at..raw_at + raw_size];
    space.fill(0);
    space[..cmdline.len()].copy_from_slice(cmdline.as_bytes());
    let len = u32::try_from(cmdline.len()).unwrap().to_le_bytes();
    efi[header + 8..header + 12].copy_from_slice(&len);
    efi
}

/// Runs QEMU to its end or the timeout; the serial console goes to `log` and is returned.
fn boot(cmd: &mut Command, log: &Path) -> (Option<ExitStatus>, String, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting qemu-system-x86_64");
    let stdout = child.stdout.take().unwrap();
    let log_path = log.to_path_buf();
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::create(&log_path).unwrap();
        let mut text = String::new();
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            std::io::Write::write_all(&mut file, &line).unwrap();
            text.push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
        text
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > BOOT_TIMEOUT {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = start.elapsed();
    (status, reader.join().unwrap(), elapsed)
}

#[test]
fn uefi_usb_boot_acquires_unattended_under_ovmf() {
    let Some(app) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();

    // The stick: a sparse copy, its UKI made unattended.
    let usb = dir.join("usb.img");
    let StickLayout {
        esp_at,
        evidence_at: ev_at,
        evidence_bytes: ev_bytes,
    } = copy_stick(&app.join(USB_IMAGE), &usb);
    let esp = format!("{}@@{esp_at}", usb.display());
    let loader = dir.join("BOOTX64.EFI");
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-n", "-i", &esp, ESP_LOADER])
        .arg(&loader));
    let cmdline = format!(
        "console=ttyS0 panic=-1 vestige.run=acquire vestige.targets=all \
         vestige.case={CASE_ID} vestige.examiner=\"{EXAMINER}\""
    );
    std::fs::write(
        &loader,
        with_cmdline(std::fs::read(&loader).unwrap(), &cmdline),
    )
    .unwrap();
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-o", "-i", &esp])
        .arg(&loader)
        .arg(ESP_LOADER));
    let files = disk::write_sample_files(dir).unwrap();
    let target = disk::make_target(dir, "target.raw", TARGET_MIB, &files).unwrap();
    let target_sha256 = disk::sha256_file(&target).unwrap();
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy(app.join(OVMF_VARS), &vars).unwrap();

    let mut qemu = Command::new(vm::QEMU);
    qemu.args(["-accel", "tcg", "-machine", "pc", "-m", "1024", "-smp", "2"])
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
        ))
        // The stick first (vda, the boot disk), the target second (vdb), read-only.
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", usb.display()))
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,readonly=on",
            target.display()
        ));
    let keep = std::env::temp_dir().join("vestige-qemu-tests/uefi_usb");
    std::fs::create_dir_all(&keep).unwrap();
    let log = keep.join("console.log");
    let (status, console, elapsed) = boot(&mut qemu, &log);
    let context = || format!("console ({}):\n{}", log.display(), tail(&console, 40));
    eprintln!("timing: UEFI boot + acquisition + power off: {elapsed:.1?}");

    assert!(
        console.contains("EFI stub:") || console.contains("Linux version"),
        "the UKI did not start the kernel; {}",
        context()
    );
    assert!(
        console.contains(&format!("Kernel command line: {cmdline}")),
        "the kernel did not get the UKI's command line; {}",
        context()
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

    // The evidence, read back from the stick without mounting it.
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
    assert_item_verified(&case, "vdb", &target_sha256);
    assert_eq!(
        disk::sha256_file(&target).unwrap(),
        target_sha256,
        "the target changed during the boot"
    );
}
