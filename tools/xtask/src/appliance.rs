//! `cargo xtask appliance [--update-lock] [--check-reproducible]`: builds the direct-boot
//! appliance (target/appliance/vmlinuz + initramfs.img + build-info.json) from the Debian
//! kernel pinned in image/packages.lock and statically linked vestige/vestige-init.
//!
//! - `--update-lock` pins the archive's current `linux-image-amd64` dependency in
//!   image/packages.lock (review and commit it), then builds.
//! - `--check-reproducible` builds a second time from scratch (binaries into their own target
//!   dir, outputs into target/appliance-repro) and fails unless every output is identical.

use crate::host::{self, cargo, ensure_packages, output, root, run};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use vestige_image::direct_boot::{self, Config, Outputs};
use vestige_image::{debian, lock};

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Host tools the appliance build runs, with the Debian package providing each.
const TOOLS: &[(&str, &str)] = &[
    ("depmod", "kmod"),
    ("dpkg-deb", "dpkg"),
    ("apt-get", "apt"),
    ("git", "git"),
];

/// Builds the appliance into target/appliance and returns that folder.
pub fn build() -> Result<PathBuf> {
    ensure_packages(TOOLS)?;
    let root = root();
    let out = build_with(&root.join("target/static"), &root.join("target/appliance"))?;
    Ok(out
        .vmlinuz
        .parent()
        .map_or_else(|| root.join("target/appliance"), Path::to_path_buf))
}

/// The task: parses its flags, builds, prints the outputs and their sizes.
pub fn task() -> Result<()> {
    let mut update_lock = false;
    let mut check = false;
    for arg in std::env::args().skip(2) {
        match arg.as_str() {
            "--update-lock" => update_lock = true,
            "--check-reproducible" => check = true,
            other => bail!(
                "cargo xtask appliance: unknown flag {other:?} \
                 (flags: --update-lock, --check-reproducible)"
            ),
        }
    }
    ensure_packages(TOOLS)?;
    let root = root();
    if update_lock {
        update_lock_file(&root.join("image/packages.lock"))?;
    }
    let started = Instant::now();
    let dir = build()?;
    let info_path = dir.join("build-info.json");
    let seconds = started.elapsed().as_secs_f64();
    report(&dir, &info_path)?;
    eprintln!("built in {seconds:.1} s");
    if check {
        host::step("reproducibility: second build from scratch (own target dir and staging)");
        let again = build_with(
            &root.join("target/static-repro"),
            &root.join("target/appliance-repro"),
        )?;
        let mut differ = Vec::new();
        for name in ["vmlinuz", "initramfs.img", "build-info.json"] {
            let a = std::fs::read(dir.join(name))?;
            let b = std::fs::read(again.build_info.with_file_name(name))?;
            if a != b {
                differ.push(name);
            }
        }
        if !differ.is_empty() {
            bail!(
                "not reproducible: {differ:?} differ between target/appliance and \
                 target/appliance-repro (compare the build-info.json files first)"
            );
        }
        eprintln!("reproducible: vmlinuz, initramfs.img and build-info.json are byte-identical");
    }
    Ok(())
}

fn report(dir: &Path, info: &Path) -> Result<()> {
    let text = std::fs::read_to_string(info)?;
    eprintln!("{}", info.display());
    let mib = |p: &Path| {
        std::fs::metadata(p).map_or(0.0, |m| {
            // Display only: sizes far below 2^52 bytes are exact in f64.
            #[allow(clippy::cast_precision_loss)]
            let bytes = m.len() as f64;
            bytes / 1_048_576.0
        })
    };
    for name in ["vmlinuz", "initramfs.img"] {
        let p = dir.join(name);
        println!("{:>8.2} MiB  {}", mib(&p), p.display());
    }
    let modules = text.matches(".ko\"").count();
    eprintln!("{modules} kernel modules in the initramfs");
    Ok(())
}

/// Builds the static binaries into `static_target` and the appliance into `out_dir`.
fn build_with(static_target: &Path, out_dir: &Path) -> Result<Outputs> {
    let root = root();
    host::step("static vestige and vestige-init (+crt-static)");
    // Paths of this checkout and of cargo's registry are remapped so the binaries do not
    // depend on where the sources live (CI builds in another folder).
    let mut flags = vec![
        "-Ctarget-feature=+crt-static".to_owned(),
        format!("--remap-path-prefix={}=/vestige", root.display()),
    ];
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
    {
        flags.push(format!(
            "--remap-path-prefix={}=/cargo",
            cargo_home.display()
        ));
    }
    run(cargo()
        .args(["build", "--release", "--target", TARGET])
        .args(["-p", "vestige-cli", "-p", "vestige-init"])
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env("CARGO_TARGET_DIR", static_target))?;
    let bin = static_target.join(TARGET).join("release");

    let commit = output(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&root),
    )
    .ok()
    .map(|s| s.trim().to_owned())
    .filter(|s| !s.is_empty());
    let tree_modified = output(
        Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .current_dir(&root),
    )
    .is_ok_and(|s| !s.trim().is_empty());
    let source_date_epoch = source_date_epoch(&root)?;

    host::step(&format!(
        "kernel, modules and initramfs (SOURCE_DATE_EPOCH={source_date_epoch})"
    ));
    let cache_dir = root.join("target/appliance-cache");
    let staging_name = format!(
        "staging-{}",
        out_dir
            .file_name()
            .map_or_else(|| "appliance".into(), |n| n.to_string_lossy())
    );
    direct_boot::build(&Config {
        lock_path: root.join("image/packages.lock"),
        staging_dir: cache_dir.join(staging_name),
        cache_dir,
        out_dir: out_dir.to_owned(),
        vestige: bin.join("vestige"),
        init: bin.join("vestige-init"),
        source_date_epoch,
        vestige_commit: commit,
        tree_modified,
    })
}

/// SOURCE_DATE_EPOCH from the environment, else the commit time of HEAD, else 0.
fn source_date_epoch(root: &Path) -> Result<u64> {
    if let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH") {
        let s = v.to_string_lossy();
        return s
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"));
    }
    Ok(output(
        Command::new("git")
            .args(["log", "-1", "--format=%ct", "HEAD"])
            .current_dir(root),
    )
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0))
}

/// Rewrites the lock's kernel entry with the archive's current candidate.
fn update_lock_file(path: &Path) -> Result<()> {
    host::step("updating image/packages.lock from the Debian archive");
    let mut lock = if path.exists() {
        lock::Lock::read(path)?
    } else {
        lock::Lock::default()
    };
    let name = debian::current_kernel_package()?;
    let old = lock
        .packages
        .iter()
        .position(|p| p.role == lock::ROLE_KERNEL);
    let licence = old.and_then(|i| lock.packages.get(i)).map_or_else(
        || debian::default_licence(lock::ROLE_KERNEL).to_owned(),
        |p| p.licence.clone(),
    );
    let new = debian::candidate(&name, lock::ROLE_KERNEL, &licence)?;
    match old.and_then(|i| lock.packages.get_mut(i)) {
        Some(p) if *p == new => eprintln!("{} {} is already pinned", new.name, new.version),
        Some(p) => {
            eprintln!(
                "kernel: {} {} -> {} {}",
                p.name, p.version, new.name, new.version
            );
            *p = new;
        }
        None => {
            eprintln!("kernel: pinning {} {}", new.name, new.version);
            lock.packages.push(new);
        }
    }
    lock.write(path)?;
    Ok(())
}
