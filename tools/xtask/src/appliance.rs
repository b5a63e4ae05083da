//! `cargo xtask appliance [--update-lock] [--check-reproducible]`: builds the appliance into
//! target/appliance/ from the Debian packages pinned in image/packages.lock and statically
//! linked vestige/vestige-init: `vmlinuz` + `initramfs.img` (direct boot, PXE), `vestige.efi`
//! (UKI), `vestige-usb.img` (GPT: ESP + VESTIGE-EVIDENCE exFAT), `vestige-sb-usb.img` (the
//! same layout booting Debian's signed shim → grub → kernel, for Secure Boot), `vestige.iso`
//! (hybrid, UEFI), `build-info.json`, and `ovmf/` (the pinned OVMF firmware, for the boot
//! tests only).
//!
//! - `--update-lock` pins the archive's current `linux-image-amd64` dependency and the
//!   current versions of the other pinned packages in image/packages.lock (adding any of
//!   [`REQUIRED`] the lock lacks; review and commit it), then builds.
//! - `--check-reproducible` builds a second time from scratch (binaries into their own target
//!   dir, outputs into target/appliance-repro) and fails unless every output is identical.

use crate::host::{self, cargo, ensure_packages, output, root, run};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use vestige_image::direct_boot::{self, Config, Outputs};
use vestige_image::secure_boot::{self, SbInputs};
use vestige_image::uefi::{self, UsbLayout};
use vestige_image::{debian, lock};

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Host tools the appliance build runs, with the Debian package providing each.
const TOOLS: &[(&str, &str)] = &[
    ("depmod", "kmod"),
    ("dpkg-deb", "dpkg"),
    ("apt-get", "apt"),
    ("git", "git"),
    ("sgdisk", "gdisk"),
    ("mkfs.fat", "dosfstools"),
    ("mcopy", "mtools"),
    ("mkfs.exfat", "exfatprogs"),
    ("xorriso", "xorriso"),
];

/// The outputs compared by `--check-reproducible` (build-info.json, which lists the digests
/// of the others, last).
const OUTPUTS: [&str; 7] = [
    "vmlinuz",
    "initramfs.img",
    "vestige.efi",
    "vestige-usb.img",
    "vestige-sb-usb.img",
    "vestige.iso",
    "build-info.json",
];

/// Packages the lock must pin besides the kernel, by role (package, licence note):
/// `--update-lock` adds the missing ones.
const REQUIRED: [(&str, &str, &str); 4] = [
    (
        uefi::ROLE_UKI_STUB,
        "systemd-boot-efi",
        "LGPL-2.1-or-later (systemd-boot's linuxx64.efi.stub; a separate work shipped \
         unmodified as the UKI's code; full text in the package's /usr/share/doc/*/copyright)",
    ),
    (
        uefi::ROLE_FIRMWARE,
        "ovmf",
        "BSD-2-Clause-Patent (EDK II OVMF firmware; used only to boot the images under QEMU \
         in tests, never shipped in them)",
    ),
    (
        secure_boot::ROLE_SHIM,
        secure_boot::SHIM_PACKAGE,
        secure_boot::SHIM_LICENCE,
    ),
    (
        secure_boot::ROLE_GRUB,
        secure_boot::GRUB_PACKAGE,
        secure_boot::GRUB_LICENCE,
    ),
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
        check_reproducible(&dir)?;
    }
    Ok(())
}

/// Builds the appliance a second time from scratch (its own target dir for the binaries,
/// outputs into target/appliance-repro) and fails unless every output equals the one in
/// `dir` byte for byte. `cargo xtask test` runs it, so CI proves reproducibility.
pub fn check_reproducible(dir: &Path) -> Result<()> {
    let root = root();
    host::step("reproducibility: second build from scratch (own target dir and staging)");
    let again = build_with(
        &root.join("target/static-repro"),
        &root.join("target/appliance-repro"),
    )?;
    let mut differ = Vec::new();
    let again_dir = again
        .build_info
        .parent()
        .map_or_else(|| root.join("target/appliance-repro"), Path::to_path_buf);
    for name in OUTPUTS {
        if !same_bytes(&dir.join(name), &again_dir.join(name))? {
            differ.push(name);
        }
    }
    if !differ.is_empty() {
        bail!(
            "not reproducible: {differ:?} differ between target/appliance and \
             target/appliance-repro (compare the build-info.json files first)"
        );
    }
    eprintln!("reproducible: {} are byte-identical", OUTPUTS.join(", "));
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
    for name in OUTPUTS.iter().filter(|n| **n != "build-info.json") {
        let p = dir.join(name);
        let allocated = allocated_mib(&p);
        println!(
            "{:>8.2} MiB  {}  ({allocated:.2} MiB allocated)",
            mib(&p),
            p.display()
        );
    }
    let modules = text.matches(".ko\"").count();
    eprintln!("{modules} kernel modules in the initramfs");
    Ok(())
}

/// Disk space a (sparse) file takes, in MiB.
fn allocated_mib(p: &Path) -> f64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map_or(0.0, |m| {
        // Display only: exact in f64 far beyond any image size.
        #[allow(clippy::cast_precision_loss)]
        let bytes = m.blocks().saturating_mul(512) as f64;
        bytes / 1_048_576.0
    })
}

/// Whether two files have the same bytes (read in chunks: the USB image is 256 MiB).
fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(std::io::BufReader::new)
            .with_context(|| format!("opening {}", p.display()))
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na =
            read_up_to(&mut fa, &mut ba).with_context(|| format!("reading {}", a.display()))?;
        let nb =
            read_up_to(&mut fb, &mut bb).with_context(|| format!("reading {}", b.display()))?;
        if ba.get(..na) != bb.get(..nb) {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_up_to(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        match rest.len() {
            0 => break,
            _ => match r.read(rest)? {
                0 => break,
                n => filled += n,
            },
        }
    }
    Ok(filled)
}

/// Builds the static binaries into `static_target` and the appliance into `out_dir`.
fn build_with(static_target: &Path, out_dir: &Path) -> Result<Outputs> {
    let root = root();
    host::step("static vestige and vestige-init (+crt-static)");
    // Paths of this checkout and of cargo's registry are remapped so the binaries do not
    // depend on where the sources live (CI builds in another folder).
    // Debug info is stripped: the appliance prints panics with their messages anyway, and
    // the line tables tripled the initramfs the kernel must unpack at every boot.
    let mut flags = vec![
        "-Ctarget-feature=+crt-static".to_owned(),
        "-Cstrip=debuginfo".to_owned(),
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
    let lock_path = root.join("image/packages.lock");
    let mut outputs = direct_boot::build(&Config {
        lock_path: lock_path.clone(),
        staging_dir: cache_dir.join(&staging_name),
        cache_dir: cache_dir.clone(),
        out_dir: out_dir.to_owned(),
        vestige: bin.join("vestige"),
        init: bin.join("vestige-init"),
        source_date_epoch,
        vestige_commit: commit.clone(),
        tree_modified,
    })?;

    host::step(
        "UKI (systemd-boot stub), USB images (GPT: ESP + exFAT evidence; UKI and Secure Boot), ISO",
    );
    let work = cache_dir.join(format!("uefi-{staging_name}"));
    let stub_root = uefi::unpacked_package(&lock_path, &cache_dir, uefi::ROLE_UKI_STUB)?;
    let ovmf_root = uefi::unpacked_package(&lock_path, &cache_dir, uefi::ROLE_FIRMWARE)?;
    let os_release = uefi::os_release(env!("CARGO_PKG_VERSION"), commit.as_deref());
    let uki = out_dir.join("vestige.efi");
    uefi::build_uki(
        &stub_root.join(uefi::STUB_PATH),
        &outputs.vmlinuz,
        &outputs.initramfs,
        uefi::DEFAULT_CMDLINE,
        &os_release,
        &uki,
    )?;
    let usb = out_dir.join("vestige-usb.img");
    uefi::build_usb(
        &uki,
        &usb,
        UsbLayout::default(),
        source_date_epoch,
        &work.join("usb"),
    )?;
    // The Secure Boot stick: Debian's signed shim → grub → kernel, our initramfs.
    let shim_root = uefi::unpacked_package(&lock_path, &cache_dir, secure_boot::ROLE_SHIM)?;
    let grub_root = uefi::unpacked_package(&lock_path, &cache_dir, secure_boot::ROLE_GRUB)?;
    let sb_usb = out_dir.join("vestige-sb-usb.img");
    let grub_cfg =
        secure_boot::grub_cfg(uefi::DEFAULT_CMDLINE, secure_boot::DEFAULT_TIMEOUT_SECONDS);
    secure_boot::build_sb_usb(
        &SbInputs {
            shim: &shim_root.join(secure_boot::SHIM_PATH),
            grub: &grub_root.join(secure_boot::GRUB_PATH),
            kernel: &outputs.vmlinuz,
            initrd: &outputs.initramfs,
            grub_cfg: &grub_cfg,
        },
        &sb_usb,
        UsbLayout::default(),
        source_date_epoch,
        &work.join("sb-usb"),
    )?;
    let iso = out_dir.join("vestige.iso");
    uefi::build_iso(
        &uki,
        &iso,
        &os_release,
        source_date_epoch,
        &work.join("iso"),
    )?;
    uefi::copy_ovmf(&ovmf_root, &out_dir.join("ovmf"))?;

    let lock = lock::Lock::read(&lock_path)?;
    for role in [
        uefi::ROLE_UKI_STUB,
        uefi::ROLE_FIRMWARE,
        secure_boot::ROLE_SHIM,
        secure_boot::ROLE_GRUB,
    ] {
        outputs
            .info
            .packages
            .push(lock.by_role(role, &lock_path)?.into());
    }
    for (name, path) in [
        ("vestige.efi", &uki),
        ("vestige-usb.img", &usb),
        ("vestige-sb-usb.img", &sb_usb),
        ("vestige.iso", &iso),
    ] {
        outputs
            .info
            .outputs
            .push(direct_boot::file_info(name, path)?);
    }
    direct_boot::write_build_info(&outputs.build_info, &outputs.info)?;
    Ok(outputs)
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
    // Roles the lock lacks (an older lock): pin their packages.
    for (role, name, licence) in REQUIRED {
        if !lock.packages.iter().any(|p| p.role == role) {
            let mut new = debian::candidate(name, role, licence)?;
            if !new.source.contains('(') {
                new.source = format!("{} ({})", new.source, new.version);
            }
            eprintln!("{role}: pinning {} {}", new.name, new.version);
            lock.packages.push(new);
        }
    }
    // The other packages keep their names; pin the archive's current version of each.
    for p in lock
        .packages
        .iter_mut()
        .filter(|p| p.role != lock::ROLE_KERNEL)
    {
        let mut new = debian::candidate(&p.name, &p.role, &p.licence)?;
        if !new.source.contains('(') {
            new.source = format!("{} ({})", new.source, new.version);
        }
        if *p != new {
            eprintln!("{}: {} -> {}", p.name, p.version, new.version);
            *p = new;
        }
    }
    lock.write(path)?;
    Ok(())
}
