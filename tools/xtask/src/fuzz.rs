//! Fuzzing the parsers of untrusted bytes (fuzz/, cargo-fuzz + libFuzzer, nightly).
//!
//! [`smoke`] runs every target briefly from its seeds (part of `cargo xtask test`);
//! [`soak`] runs every target longer and keeps the corpus it grows between runs. Both
//! install what is missing first: the nightly toolchain (through rustup) and cargo-fuzz.
//!
//! The repository's seeds (fuzz/seeds/<target>/) and saved crash inputs
//! (fuzz/regressions/<target>/) are read-only inputs; libFuzzer writes new inputs to the
//! working corpus target/fuzz-corpus/<target>/ and failing ones to fuzz/artifacts/<target>/.

use crate::host::{have, root, run, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The fuzz targets (fuzz/fuzz_targets/<name>.rs) and the largest input libFuzzer makes for
/// each, in bytes: room for the structures the target parses, not more, so time goes into
/// structure rather than bulk.
pub const TARGETS: &[(&str, usize)] = &[
    // A seek table of a few hundred frames plus the frames themselves.
    ("seek_table", 64 * 1024),
    // 8 parameter bytes, then the source data that is compressed and read back.
    ("seekable_roundtrip", 16 * 1024),
    // Key, signature and embedded files: a ≤1023-byte comment, one base64 line, a message.
    ("signify", 4 * 1024),
    ("checksum_list", 16 * 1024),
    ("manifest", 16 * 1024),
    ("custody", 16 * 1024),
    // A selector byte, then /proc text or utmp records (vestige-live's parsers).
    ("proc_formats", 16 * 1024),
    // A selector byte, then a LiME file, an ELF core or /proc/iomem text.
    ("memory_formats", 64 * 1024),
    // Raw BTF (header, types, strings); an ISF is built from what parses.
    ("btf", 64 * 1024),
    // A classic pcap or pcapng file: reader, decoder and traffic summary.
    ("pcap", 64 * 1024),
    // A selector byte, then a name from evidence (PATH_MAX is 4 KiB): output file names
    // and HTML-escaped report strings.
    ("output_names", 4 * 1024),
    // resume.journal: a header line and entries of journaled frames.
    ("resume_journal", 16 * 1024),
    // Disk images (vestige-formats): the seeds are small images made by qemu-img and
    // ewfacquire. A VHDX cannot be smaller than its 1 MiB header area plus its regions.
    ("image_ewf", 64 * 1024),
    ("image_qcow2", 64 * 1024),
    ("image_vmdk", 70 * 1024),
    ("image_vhd", 64 * 1024),
    ("image_vhdx", 5 * 1024 * 1024),
    ("image_vdi", 64 * 1024),
    ("volumes", 64 * 1024),
    ("fs_ext4", 64 * 1024),
    // A block-size selector byte, then a jbd2 log (the ext4 journal replayed in memory).
    ("ext4_journal", 64 * 1024 + 1),
    ("fs_ntfs", 64 * 1024),
    ("fs_fat", 64 * 1024),
    ("fs_exfat", 64 * 1024),
    ("fs_xfs", 64 * 1024),
    ("linux_config", 64 * 1024),
    ("regf", 64 * 1024),
    ("evtx", 128 * 1024),
    ("logs", 64 * 1024),
];

/// libFuzzer's memory limit per process (also its largest single allocation), MiB.
pub const RSS_LIMIT_MB: u32 = 512;
/// libFuzzer's limit for one input, seconds: a hang in a parser is a bug.
pub const TIMEOUT_SECS: u32 = 10;

/// Runs every target for `seconds_per_target` from its seeds, with a fresh working corpus.
///
/// # Errors
/// If the tools cannot be installed, or any target fails to build, crashes, leaks past the
/// memory limit or hangs.
pub fn smoke(seconds_per_target: u64) -> Result<()> {
    fuzz_all(seconds_per_target, Corpus::Fresh)
}

/// Runs every target for `seconds_per_target`, continuing from the corpus earlier runs grew.
///
/// # Errors
/// As [`smoke`].
pub fn soak(seconds_per_target: u64) -> Result<()> {
    fuzz_all(seconds_per_target, Corpus::Keep)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Corpus {
    /// Start from the seeds only: reproducible, and a smoke run stays short.
    Fresh,
    /// Keep target/fuzz-corpus/<target>/ between runs.
    Keep,
}

fn fuzz_all(seconds_per_target: u64, corpus: Corpus) -> Result<()> {
    ensure_tools()?;
    let root = root();
    step("cargo +nightly fuzz build (all targets)");
    let started = Instant::now();
    run(nightly_cargo().args(["fuzz", "build"]))?;
    eprintln!("fuzz build took {:.0?}", started.elapsed());

    let mut failed = Vec::new();
    for &(target, max_len) in TARGETS {
        step(&format!("fuzz {target} for {seconds_per_target} s"));
        let working = root.join("target/fuzz-corpus").join(target);
        if corpus == Corpus::Fresh && working.exists() {
            std::fs::remove_dir_all(&working)
                .with_context(|| format!("emptying {}", working.display()))?;
        }
        std::fs::create_dir_all(&working)
            .with_context(|| format!("creating {}", working.display()))?;

        let mut cmd = nightly_cargo();
        cmd.args(["fuzz", "run", target]).arg(&working);
        // Read-only inputs: libFuzzer writes new units to the first directory only.
        for dir in [
            Path::new("fuzz/seeds").join(target),
            Path::new("fuzz/regressions").join(target),
        ] {
            if root.join(&dir).is_dir() {
                cmd.arg(dir);
            }
        }
        cmd.arg("--").args([
            format!("-max_total_time={seconds_per_target}"),
            format!("-max_len={max_len}"),
            format!("-rss_limit_mb={RSS_LIMIT_MB}"),
            format!("-timeout={TIMEOUT_SECS}"),
            "-print_final_stats=1".to_string(),
        ]);
        if let Err(e) = run(&mut cmd) {
            eprintln!("fuzz target {target} FAILED: {e:#}");
            eprintln!("  failing input: fuzz/artifacts/{target}/ (reproduce: cargo +nightly fuzz run {target} <file>)");
            failed.push(target);
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {}; save each failing input under fuzz/regressions/<target>/",
            failed.join(", ")
        );
    }
    Ok(())
}

/// `cargo +nightly` through the rustup proxy on PATH, run in the workspace root.
///
/// Not [`crate::host::cargo`]: that is `$CARGO`, the toolchain's own cargo binary when we
/// run under `cargo xtask`, which does not understand `+nightly`.
fn nightly_cargo() -> Command {
    let mut c = Command::new("cargo");
    c.arg("+nightly")
        .current_dir(root())
        // Let the proxy pick nightly for cargo-fuzz's inner `cargo build` too.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    c
}

/// Whether a command runs and exits 0 (output discarded).
fn works(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the nightly toolchain and cargo-fuzz when missing.
fn ensure_tools() -> Result<()> {
    if !works(nightly_cargo().arg("--version")) {
        if !have("rustup") {
            bail!("fuzzing needs a nightly toolchain and rustup is not on PATH to install it");
        }
        step("installing the nightly toolchain (fuzzing needs -Zsanitizer)");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !works(nightly_cargo().args(["fuzz", "--version"])) {
        step("cargo install cargo-fuzz --locked");
        let started = Instant::now();
        run(Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .current_dir(cargo_home_or_root())
            .env_remove("RUSTUP_TOOLCHAIN"))?;
        eprintln!("cargo-fuzz install took {:.0?}", started.elapsed());
    }
    Ok(())
}

/// Where to run `cargo install` from: outside the workspace, so its rust-toolchain or
/// config files cannot change what gets installed.
fn cargo_home_or_root() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(root)
}
