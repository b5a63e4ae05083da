//! `cargo xtask demo`: the main job on a generated suspect disk.
//!
//! Generates a small GPT disk with an ext4 file system holding a suspect's files (one of
//! them deleted), attaches it as a loop device when running as root (so the acquisition
//! really sets BLKROSET on a block device), acquires it into a case, verifies it with
//! vestige and with stock tools (signify-openbsd -C, zstd -d), exports it raw, and proves
//! the target was never written by hashing it before and after.

use crate::host::{self, cargo, ensure_packages, output, root, run, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const DEMO_TOOLS: &[(&str, &str)] = &[
    ("zstd", "zstd"),
    ("signify-openbsd", "signify-openbsd"),
    ("sgdisk", "gdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("debugfs", "e2fsprogs"),
    ("losetup", "mount"),
];

fn sha256(path: &Path) -> Result<String> {
    let out = output(Command::new("sha256sum").arg(path))?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Builds the suspect disk: GPT, partition 1 ext4 with files, one deleted with debugfs.
fn make_suspect(dir: &Path) -> Result<PathBuf> {
    let disk = dir.join("suspect.raw");
    let files = dir.join("suspect-files");
    std::fs::create_dir_all(files.join("home/mallory/.ssh"))?;
    std::fs::create_dir_all(files.join("etc/cron.d"))?;
    std::fs::create_dir_all(files.join("tmp"))?;
    std::fs::write(files.join("etc/hostname"), "web-01\n")?;
    std::fs::write(
        files.join("home/mallory/.ssh/authorized_keys"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackdoorKeyForDemoOnly mallory@attacker\n",
    )?;
    std::fs::write(
        files.join("etc/cron.d/update"),
        "*/5 * * * * root /tmp/.x/update.sh\n",
    )?;
    std::fs::write(
        files.join("tmp/exfil.txt"),
        "customer list, 2026-11-20\n".repeat(2000),
    )?;
    let _ = std::fs::remove_file(&disk);
    run(Command::new("truncate").args(["-s", "64M"]).arg(&disk))?;
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-E",
            "offset=1048576",
            "-U",
            "5e1f0000-0000-4000-8000-00000000d1d0",
            "-d",
        ])
        .arg(&files)
        .arg(&disk)
        .arg("60M"))?;
    run(Command::new("sgdisk")
        .args([
            "-o",
            "-n",
            "1:2048:+60M",
            "-t",
            "1:8300",
            "-c",
            "1:suspect-root",
        ])
        .arg(&disk)
        .stdout(std::process::Stdio::null()))?;
    // Delete a file the way a suspect would, so later analysis has something to recover.
    let part = format!("{}?offset=1048576", disk.display());
    run(Command::new("debugfs")
        .args(["-w", "-R", "rm /tmp/exfil.txt"])
        .arg(&part)
        .stderr(std::process::Stdio::null()))?;
    std::fs::remove_dir_all(&files)?;
    Ok(disk)
}

struct Loop(String);
impl Drop for Loop {
    fn drop(&mut self) {
        // The kernel keeps BLKROSET on a loop device after detach; give it back writable
        // to the next user of this machine (the demo's target file is hashed, unchanged).
        let _ = Command::new("blockdev").args(["--setrw", &self.0]).status();
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn run_demo() -> Result<()> {
    ensure_packages(DEMO_TOOLS)?;
    step("building vestige (release)");
    run(cargo().args(["build", "--release", "--quiet", "-p", "vestige-cli"]))?;
    let vestige = root().join("target/release/vestige");
    let work = root().join("target/demo");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    step("generating the suspect disk (GPT + ext4, one file deleted)");
    let disk = make_suspect(&work)?;
    let before = sha256(&disk)?;
    eprintln!("suspect disk {} SHA-256 {before}", disk.display());

    // As root, attach it as a block device so the acquisition sets and verifies BLKROSET.
    let attached = host::have("losetup")
        && output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0");
    let loopdev = if attached {
        match output(Command::new("losetup").args(["-f", "--show"]).arg(&disk)) {
            Ok(dev) => Some(Loop(dev.trim().to_string())),
            Err(e) => {
                eprintln!("note: no loop device ({e:#}); acquiring the image file instead");
                None
            }
        }
    } else {
        eprintln!("note: not root; acquiring the image file instead of a loop device");
        None
    };
    let source: PathBuf = loopdev
        .as_ref()
        .map_or_else(|| disk.clone(), |l| PathBuf::from(&l.0));

    let case = work.join("case");
    let keys = work.join("keys");
    std::fs::create_dir_all(&keys)?;
    step("vestige key generate / case init");
    run(Command::new(&vestige)
        .args(["key", "generate"])
        .arg(keys.join("examiner")))?;
    run(Command::new(&vestige)
        .args(["case", "init"])
        .arg(&case)
        .args([
            "--case-id",
            "DEMO-2026-001",
            "--examiner",
            "Demo Examiner",
            "--agency",
            "Vestige demo lab",
        ]))?;

    step(&format!("vestige acquire disk {}", source.display()));
    run(Command::new(&vestige)
        .args(["acquire", "disk"])
        .arg(&source)
        .arg("--case")
        .arg(&case)
        .args(["--item", "suspect-disk", "--md5", "--sha1", "--key"])
        .arg(keys.join("examiner.sec")))?;
    drop(loopdev);

    let item = case.join("suspect-disk");
    step("vestige verify (pinned to the examiner's public key)");
    run(Command::new(&vestige)
        .arg("verify")
        .arg(&case)
        .arg("--pubkey")
        .arg(keys.join("examiner.pub")))?;

    step("stock tools: signify-openbsd -C and zstd -d");
    run(Command::new("signify-openbsd")
        .args(["-C", "-p"])
        .arg(keys.join("examiner.pub"))
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
    eprintln!("zstd -d | sha256sum: {restored}");

    step("vestige export raw");
    let raw = work.join("suspect-export.raw");
    run(Command::new(&vestige)
        .args(["export", "raw"])
        .arg(&item)
        .arg(&raw))?;
    let exported = sha256(&raw)?;

    let after = sha256(&disk)?;
    step("result");
    eprintln!("target before : {before}");
    eprintln!("target after  : {after}");
    eprintln!("zstd -d       : {restored}");
    eprintln!("export raw    : {exported}");
    if before != after {
        bail!("the target changed during the demo");
    }
    if restored != before || exported != before {
        bail!("restored bytes differ from the target");
    }
    eprintln!("\nall equal: the target was not written, the evidence restores it bit for bit.");
    eprintln!("case: {}", case.display());
    eprintln!("  manifest: {}", item.join("manifest.json").display());
    eprintln!("  custody : {}", case.join("custody.jsonl").display());
    Ok(())
}

/// Entry point.
pub fn task() -> Result<()> {
    run_demo().context("demo failed")
}
