//! `cargo xtask demo`: the main job, end to end, on a generated suspect VM.
//!
//! 1. builds the appliance (kernel + initramfs from pinned Debian packages, static vestige);
//! 2. generates the suspect VM disk (`vestige_qemu_tests::suspect`): GPT with a Linux root
//!    (ext4) and a Windows volume (NTFS), each with planted activity;
//! 3. boots the appliance in QEMU against it, the suspect disk attached read-only, with an
//!    evidence disk; the appliance acquires unattended and powers off by itself;
//! 4. on the host: reads the case off the evidence disk (debugfs, no mount), verifies it with
//!    vestige and with stock signify-openbsd, and proves the suspect disk was not written;
//! 5. analyses the case (`vestige analyze`), checks that every planted trace
//!    (`vestige_qemu_tests::suspect::PLANTED`) is reported, and prints the report's path.

use crate::host::{cargo, ensure_packages, output, root, run, step};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vestige_qemu_tests::disk::make_evidence_disk;
use vestige_qemu_tests::evidence::extract_ext4;
use vestige_qemu_tests::suspect::{self, PLANTED};
use vestige_qemu_tests::vm::{Accel, Boot, Bus, Drive};

const DEMO_TOOLS: &[(&str, &str)] = &[
    ("zstd", "zstd"),
    ("signify-openbsd", "signify-openbsd"),
    ("sgdisk", "gdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("debugfs", "e2fsprogs"),
    ("mkntfs", "ntfs-3g"),
];

const CASE_ID: &str = "DEMO-2026-001";

fn sha256(path: &Path) -> Result<String> {
    let out = output(Command::new("sha256sum").arg(path))?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

fn run_demo() -> Result<()> {
    ensure_packages(DEMO_TOOLS)?;
    ensure_packages(suspect::TOOLS)?;
    crate::qemu::ensure_qemu()?;
    step("building the appliance (cargo xtask appliance)");
    let appliance = crate::appliance::build()?;
    step("building the host's vestige (release)");
    run(cargo().args(["build", "--release", "--quiet", "-p", "vestige-cli"]))?;
    let vestige = root().join("target/release/vestige");
    let work = root().join("target/demo");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    step("generating the suspect VM disk (GPT: Linux root with planted activity + NTFS volume)");
    // systemd-boot, from the appliance's package cache: a real PE to plant on the NTFS.
    let pe = root().join(
        "target/appliance-cache/root-systemd-boot-efi/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
    );
    let suspect = suspect::make_suspect(&work, &root(), pe.is_file().then_some(pe.as_path()))?;
    let before = sha256(&suspect)?;
    eprintln!("suspect disk {} SHA-256 {before}", suspect.display());
    let evidence = make_evidence_disk(&work, "evidence.raw", 512)?;

    step("booting the appliance in QEMU: unattended acquisition, then power off");
    let boot = Boot {
        kernel: appliance.join("vmlinuz"),
        initrd: appliance.join("initramfs.img"),
        cmdline: format!(
            "console=ttyS0 panic=-1 vestige.run=acquire vestige.targets=all \
             vestige.case={CASE_ID} vestige.examiner=\"Demo Examiner\""
        ),
        drives: vec![
            Drive {
                path: suspect.clone(),
                bus: Bus::Virtio,
                read_only: true,
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
        timeout: Duration::from_secs(600),
        accel: Accel::detect(),
    };
    let console = work.join("console.log");
    let outcome = boot.run(&console)?;
    for l in &outcome.console {
        if l.text.contains("vestige-init")
            || l.text.contains("fingerprint")
            || l.text.contains("SHA256:")
        {
            eprintln!("  | {}", l.text);
        }
    }
    if !outcome.powered_off() {
        bail!(
            "the appliance did not power off by itself:\n{}",
            outcome.tail(30)
        );
    }
    eprintln!(
        "QEMU ran {:.1} s ({:?})",
        outcome.elapsed.as_secs_f64(),
        outcome.accel
    );

    step("reading the case off the evidence disk (debugfs, nothing mounted)");
    let out = work.join("evidence");
    extract_ext4(&evidence.path, evidence.partition_offset_bytes, &out)?;
    let case = out.join(CASE_ID);
    let item = case.join("vda");

    step("vestige verify (host)");
    run(Command::new(&vestige).arg("verify").arg(&case))?;
    step("stock signify-openbsd -C");
    let key = std::fs::read_dir(case.join("keys"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "pub"))
        .context("no public key in the case")?;
    run(Command::new("signify-openbsd")
        .args(["-C", "-p"])
        .arg(&key)
        .args(["-x", "SHA256.sig"])
        .current_dir(&item))?;
    let restored = output(Command::new("sh").arg("-c").arg(format!(
        "zstd -dc '{}' | sha256sum",
        item.join("image.zst").display()
    )))?;
    let restored = restored
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();

    step("vestige analyze (host): every item verified, file systems, artifacts, logs, report");
    let started = std::time::Instant::now();
    run(Command::new(&vestige).arg("analyze").arg(&case))?;
    let analyze_secs = started.elapsed().as_secs_f64();
    let report = case.join("report");
    let findings = std::fs::read_to_string(report.join("findings.json"))?;
    let timeline = std::fs::read_to_string(report.join("timeline.jsonl"))?;
    let mut missing = Vec::new();
    for p in PLANTED {
        let found = match p.expect.split_once(':') {
            Some(("finding", rule)) => findings.contains(&format!("\"rule\": \"{rule}\"")),
            Some(("event", sk)) => {
                let (source, kind) = sk.split_once('/').unwrap_or((sk, ""));
                timeline.lines().any(|l| {
                    l.contains(&format!("\"source\":\"{source}\""))
                        && l.contains(&format!("\"kind\":\"{kind}\""))
                        && l.contains(p.text)
                })
            }
            _ => false,
        };
        eprintln!("  {} {}", if found { "found  " } else { "MISSING" }, p.what);
        if !found {
            missing.push(p.what);
        }
    }

    let after = sha256(&suspect)?;
    step("result");
    eprintln!("suspect before : {before}");
    eprintln!("suspect after  : {after}");
    eprintln!("zstd -d        : {restored}");
    if before != after {
        bail!("the suspect disk changed");
    }
    if restored != before {
        bail!("the evidence does not restore the suspect disk");
    }
    if !missing.is_empty() {
        bail!("the analysis missed planted traces: {missing:?}");
    }
    eprintln!("\nall equal: the appliance never wrote the suspect disk, and its evidence restores it bit for bit.");
    eprintln!(
        "every one of the {} planted traces is in the findings or the timeline (analysis: {analyze_secs:.1} s).",
        PLANTED.len()
    );
    eprintln!(
        "case (read back from the evidence disk): {}",
        case.display()
    );
    eprintln!("  item     : {}", item.display());
    eprintln!("  console  : {}", case.join("console.log").display());
    eprintln!("  custody  : {}", case.join("custody.jsonl").display());
    eprintln!("  QEMU log : {}", console.display());
    eprintln!("  report   : {}", report.join("report.html").display());
    eprintln!(
        "  timeline : {} (vestige timeline {} --filter …)",
        report.join("timeline.jsonl").display(),
        case.display()
    );
    Ok(())
}

/// Entry point.
pub fn task() -> Result<()> {
    run_demo().context("demo failed")
}
