//! The UEFI hybrid ISO (`target/appliance/vestige.iso`) booted as an IDE CD-ROM under OVMF
//! reaches the console menu, and the menu is driven from the serial console: with a
//! read-only virtio target and no evidence medium it lists the target as read-only, says
//! there is no evidence medium, refuses `a` (acquire all), and `p` powers the VM off. The
//! target is unchanged (SHA-256).
//!
//! The shipped UKI's command line is `console=ttyS0 console=tty0`: the kernel logs to both,
//! but the last `console=` is /dev/console, which is vestige-init's stdin and stdout, so the
//! menu goes to the screen and reads the keyboard (what a laptop wants). A VM without a
//! screen sees only the kernel's log on ttyS0, and typing there reaches nothing. The test
//! therefore boots a copy of the ISO with the two swapped in place
//! (`console=tty0 console=ttyS0`, the same length: nothing in the ISO moves, and without
//! Secure Boot nothing is signed), which puts the menu on ttyS0 = QEMU's stdio.
//!
//! Skips (passes with a note) when QEMU or an appliance file is missing, unless
//! VESTIGE_REQUIRE_TOOLS=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vestige_qemu_tests::appliance::{appliance_dir, missing_tools, tools_required};
use vestige_qemu_tests::disk;
use vestige_qemu_tests::files::keep_dir;
use vestige_qemu_tests::vm::{self, ConsoleLine, CustomBoot, Ending};

const ISO: &str = "vestige.iso";
const OVMF_CODE: &str = "ovmf/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "ovmf/OVMF_VARS_4M.fd";
/// The shipped UKI's command line, and the same with the menu's console (the last) on ttyS0.
const SHIPPED_CMDLINE: &str = "console=ttyS0 console=tty0";
const SERIAL_CMDLINE: &str = "console=tty0 console=ttyS0";
const TARGET_MIB: usize = 32;
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// The menu's option line.
const OPTIONS: &str = "p) power off";
const NO_EVIDENCE: &str = "no evidence medium: acquisition is disabled";
/// What the menu answers to an acquisition without an evidence medium.
const REFUSED: &str = "no evidence medium: attach one and reboot";
const POWER_OFF: &str = "vestige-init: power off";

/// The appliance folder, or None (after a note) when something needed is missing.
fn prerequisites() -> Option<PathBuf> {
    let mut why: Vec<String> = missing_tools(&[vm::QEMU])
        .iter()
        .map(|t| format!("missing tool {t}"))
        .collect();
    let dir = appliance_dir();
    for f in [ISO, OVMF_CODE, OVMF_VARS] {
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
    eprintln!("note: skipping the ISO menu test: {why}");
    None
}

/// `iso` with every [`SHIPPED_CMDLINE`] swapped for [`SERIAL_CMDLINE`]; panics when there
/// is none.
fn with_serial_menu(mut iso: Vec<u8>) -> Vec<u8> {
    let (from, to) = (SHIPPED_CMDLINE.as_bytes(), SERIAL_CMDLINE.as_bytes());
    assert_eq!(from.len(), to.len());
    let mut found = 0;
    let mut i = 0;
    while i + from.len() <= iso.len() {
        if &iso[i..i + from.len()] == from {
            iso[i..i + from.len()].copy_from_slice(to);
            found += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(
        found > 0,
        "no \"{SHIPPED_CMDLINE}\" in {ISO}: its UKI's command line changed"
    );
    iso
}

/// A target of deterministic, incompressible-looking bytes.
fn make_target(path: &Path) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(TARGET_MIB << 20);
    while bytes.len() < TARGET_MIB << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// What the script saw on the console.
#[derive(Debug, Default)]
struct Seen {
    /// The menu, from its heading to the option line.
    menu: Vec<ConsoleLine>,
    /// The answer to `a`.
    refused: Option<ConsoleLine>,
    /// The option line again after `a`.
    menu_again: Option<ConsoleLine>,
    /// init's "power off" after `p`.
    power_off: Option<ConsoleLine>,
    /// Why typing failed.
    send_error: Option<String>,
}

#[test]
fn iso_boots_under_ovmf_to_the_console_menu() {
    let Some(app) = prerequisites() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let iso = dir.join(ISO);
    std::fs::write(
        &iso,
        with_serial_menu(std::fs::read(app.join(ISO)).unwrap()),
    )
    .unwrap();
    let target = dir.join("target.raw");
    make_target(&target);
    let target_sha256 = disk::sha256_file(&target).unwrap();
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy(app.join(OVMF_VARS), &vars).unwrap();

    let opt = |s: String| OsString::from(s);
    let mut args: Vec<OsString> = [
        "-machine",
        "pc",
        "-m",
        "1024",
        "-smp",
        "2",
        "-nodefaults",
        "-nographic",
        "-serial",
        "stdio",
        "-no-reboot",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.extend([
        opt("-drive".into()),
        opt(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            app.join(OVMF_CODE).display()
        )),
        opt("-drive".into()),
        opt(format!(
            "if=pflash,format=raw,unit=1,file={}",
            vars.display()
        )),
        opt("-drive".into()),
        opt(format!(
            "file={},format=raw,if=none,id=cd,readonly=on",
            iso.display()
        )),
        opt("-device".into()),
        opt("ide-cd,drive=cd".into()),
        // The target, vda; no evidence disk.
        opt("-drive".into()),
        opt(format!(
            "file={},format=raw,if=virtio,readonly=on",
            target.display()
        )),
    ]);
    let boot = CustomBoot {
        args,
        timeout: BOOT_TIMEOUT,
        accel: vm::Accel::detect(),
    };
    let keep = keep_dir("iso_menu");
    let log = keep.join("console.log");
    let (outcome, seen) = boot
        .run_scripted(&log, None, true, |live| {
            let mut seen = Seen::default();
            let Some(options) = live.wait_for_line(OPTIONS, BOOT_TIMEOUT) else {
                return seen;
            };
            let lines = live.lines_from(0);
            let heading = lines
                .iter()
                .rposition(|l| l.text.contains("=== Vestige appliance ==="))
                .unwrap_or(0);
            seen.menu = lines
                .into_iter()
                .skip(heading)
                .take_while(|l| l.at <= options.at)
                .collect();
            let type_line = |seen: &mut Seen, text: &str| -> Option<usize> {
                let from = live.line_count();
                match live.send_line(text) {
                    Ok(()) => Some(from),
                    Err(e) => {
                        seen.send_error = Some(format!("typing {text:?}: {e}"));
                        None
                    }
                }
            };
            let Some(from) = type_line(&mut seen, "a") else {
                return seen;
            };
            seen.refused = live.wait_for_line_from(REFUSED, from, Duration::from_secs(30));
            seen.menu_again = live.wait_for_line_from(OPTIONS, from, Duration::from_secs(30));
            let Some(from) = type_line(&mut seen, "p") else {
                return seen;
            };
            seen.power_off = live.wait_for_line_from(POWER_OFF, from, Duration::from_secs(60));
            seen
        })
        .unwrap();
    let context = || {
        format!(
            "{seen:?}\nending {:?}, accel {} (fallback: {:?}); QEMU stderr: {}\nconsole ({}):\n{}",
            outcome.ending,
            outcome.accel,
            outcome.kvm_fallback,
            outcome.qemu_stderr.trim(),
            log.display(),
            outcome.tail(40)
        )
    };
    let at = |l: &Option<ConsoleLine>| l.as_ref().map(|l| format!("{:.1?}", l.at));
    eprintln!(
        "timing ({}{}): menu at {:?}, refusal at {:?}, power off at {:?}, QEMU ended at {:.1?}",
        outcome.accel,
        outcome
            .kvm_fallback
            .as_ref()
            .map_or(String::new(), |why| format!(
                ", KVM abandoned: {}",
                why.lines().next().unwrap_or("")
            )),
        seen.menu.last().map(|l| format!("{:.1?}", l.at)),
        at(&seen.refused),
        at(&seen.power_off),
        outcome.elapsed
    );

    assert!(
        outcome
            .line_containing(&format!("Kernel command line: {SERIAL_CMDLINE}"))
            .is_some(),
        "the kernel did not get the ISO's (swapped) command line; {}",
        context()
    );
    assert!(
        !seen.menu.is_empty(),
        "no menu on the console; {}",
        context()
    );
    let menu_has = |needle: &str| seen.menu.iter().any(|l| l.text.contains(needle));
    assert!(
        menu_has(NO_EVIDENCE),
        "the menu does not say \"{NO_EVIDENCE}\"; {}",
        context()
    );
    let target_line = seen
        .menu
        .iter()
        .find(|l| l.text.contains("[1]"))
        .unwrap_or_else(|| panic!("the menu lists no disk; {}", context()));
    assert!(
        target_line.text.contains("vda") && target_line.text.contains("read-only"),
        "the menu does not list the target vda as read-only: {:?}; {}",
        target_line.text,
        context()
    );
    assert!(
        !seen.menu.iter().any(|l| l.text.contains("[2]")),
        "the menu lists more than the target (the CD-ROM?); {}",
        context()
    );
    assert!(
        seen.send_error.is_none(),
        "typing on the console failed; {}",
        context()
    );
    assert!(
        seen.refused.is_some() && seen.menu_again.is_some(),
        "\"a\" was not refused with \"{REFUSED}\" and the menu shown again; {}",
        context()
    );
    assert!(
        seen.power_off.is_some(),
        "\"p\" did not make init say \"{POWER_OFF}\"; {}",
        context()
    );
    assert!(
        matches!(outcome.ending, Ending::Exited(_)) && outcome.powered_off(),
        "QEMU did not power off by itself; {}",
        context()
    );
    assert!(
        outcome.line_containing("Kernel panic").is_none(),
        "kernel panic; {}",
        context()
    );
    assert_eq!(
        disk::sha256_file(&target).unwrap(),
        target_sha256,
        "the target changed during the boot"
    );
}
