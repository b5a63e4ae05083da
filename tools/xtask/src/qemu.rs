//! QEMU on the host, and the boot tests that need it: `cargo xtask qemu-test`.

use crate::host::{self, cargo, have, run, step};
use anyhow::{Context, Result};

/// The QEMU binary the boot tests run.
const QEMU: &str = "qemu-system-x86_64";

/// Debian 12's QEMU. The machine may carry a newer qemu-utils (from backports) that
/// conflicts with bookworm's qemu-system-x86; these pins let apt downgrade it to the
/// matching release.
const QEMU_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-utils=1:7.2+dfsg-7+deb12u18+b3",
    "qemu-block-extra=1:7.2+dfsg-7+deb12u18+b3",
];

/// Host tools the boot tests call besides QEMU, with their Debian packages.
const BOOT_TEST_TOOLS: &[(&str, &str)] = &[
    ("sgdisk", "gdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("debugfs", "e2fsprogs"),
    ("dumpe2fs", "e2fsprogs"),
    ("signify-openbsd", "signify-openbsd"),
    ("mcopy", "mtools"),
    ("fsck.exfat", "exfatprogs"),
];

/// Installs QEMU with apt-get when `qemu-system-x86_64` is missing (apt-get update and a
/// second try when the first install fails, e.g. on stale package lists).
pub fn ensure_qemu() -> Result<()> {
    if have(QEMU) {
        return Ok(());
    }
    step(&format!("installing QEMU: {}", QEMU_PACKAGES.join(" ")));
    let mut install = vec!["install", "-y"];
    install.extend_from_slice(QEMU_PACKAGES);
    install.push("--allow-downgrades");
    host::apt_install(&install).context("installing QEMU")?;
    if !have(QEMU) {
        anyhow::bail!("{QEMU} is still missing after installing {QEMU_PACKAGES:?}");
    }
    Ok(())
}

/// `cargo xtask qemu-test`: installs QEMU and the disk tools, then runs the boot tests
/// with every tool (and the appliance, from `cargo xtask appliance`) required.
pub fn task() -> Result<()> {
    ensure_qemu()?;
    host::ensure_packages(BOOT_TEST_TOOLS)?;
    step("boot tests under QEMU (qemu-tests)");
    run(cargo()
        .args(["test", "-p", "vestige-qemu-tests", "--", "--nocapture"])
        .env("VESTIGE_REQUIRE_TOOLS", "1"))
}
