//! Project tasks (the xtask pattern): `cargo xtask demo`, `cargo xtask test`.
//!
//! Each task first installs, with apt-get, the host packages it needs when they are
//! missing, so both work on a fresh Debian machine.

mod appliance;
mod demo;
mod fuzz;
mod host;
mod qemu;

use anyhow::{bail, Result};
use host::{cargo, ensure_packages, run};

const USAGE: &str = "usage: cargo xtask <demo|test|fuzz [SECONDS]|appliance [FLAGS]>
  demo   build vestige, generate a suspect disk, acquire it (from a loop device when
         root), verify with vestige and with stock signify/zstd, export raw
  test   fmt --check, clippy -D warnings, every test (stock tools required), and a
         short run of every fuzz target
  fuzz   a longer soak of every fuzz target (default 300 s each)
  appliance  build target/appliance/{vmlinuz,initramfs.img,vestige.efi,vestige-usb.img,
         vestige.iso,build-info.json} from the Debian packages pinned in
         image/packages.lock and static vestige/vestige-init; --update-lock pins the
         archive's current kernel and packages, --check-reproducible builds twice from
         scratch and compares
  qemu-test  install QEMU and run the boot tests (needs `cargo xtask appliance`)";

/// Seconds each fuzz target runs inside `cargo xtask test`.
const FUZZ_SMOKE_SECONDS: u64 = 15;

/// Host tools the tests and the demo call, with the Debian package that provides each.
pub const TOOLS: &[(&str, &str)] = &[
    ("zstd", "zstd"),
    ("signify-openbsd", "signify-openbsd"),
    ("minisign", "minisign"),
    ("sgdisk", "gdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("losetup", "mount"),
    ("python3", "python3"),
    ("cpio", "cpio"),
    ("debugfs", "e2fsprogs"),
    ("depmod", "kmod"),
    ("mcopy", "mtools"),
    ("fsck.exfat", "exfatprogs"),
    ("mkfs.exfat", "exfatprogs"),
    ("mkfs.fat", "dosfstools"),
    ("xorriso", "xorriso"),
    // The suspect VM of the live/memory test runs busybox (static) as its userland.
    ("busybox", "busybox-static"),
    // Reads back the pcapng of `vestige capture net`.
    ("tcpdump", "tcpdump"),
    // Reads back the errors.map of a disk with bad sectors (GNU ddrescue's mapfile).
    ("ddrescuelog", "gddrescue"),
    // Make and check E01 images for the EWF reader's tests.
    ("ewfacquire", "ewf-tools"),
    ("ewfverify", "ewf-tools"),
    ("ewfexport", "ewf-tools"),
    // The volume-system tests: partition tables made by sfdisk, checked against TSK's
    // mmls; LVM2 made by lvm2's own tools (activation off: no device-mapper needed).
    ("sfdisk", "fdisk"),
    ("mmls", "sleuthkit"),
    ("pvcreate", "lvm2"),
    // The NTFS tests: mkntfs, and ntfs-3g (FUSE) to fill an image with streams, sparse
    // and compressed files as Windows would.
    ("mkntfs", "ntfs-3g"),
    ("ntfs-3g", "ntfs-3g"),
];

/// Volatility 3, from PyPI into a venv under target/ (Debian's pip refuses system
/// installs): the memory test cross-checks our images and ISF with it.
const VOLATILITY: &str = "volatility3==2.28.2";

/// Installs Volatility 3 into target/vol-venv unless it is there; returns the `vol` path.
fn ensure_volatility() -> Result<std::path::PathBuf> {
    let venv = host::root().join("target/vol-venv");
    let vol = venv.join("bin/vol");
    if vol.is_file() {
        return Ok(vol);
    }
    if !host::have("pip3")
        || run(std::process::Command::new("python3").args(["-m", "venv", "--help"])).is_err()
    {
        host::apt_install(&["python3-venv", "python3-pip"])?;
    }
    run(std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv))?;
    run(std::process::Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        VOLATILITY,
        "jsonschema",
    ]))?;
    Ok(vol)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo::task(),
        Some("test") => test(),
        Some("appliance") => appliance::task(),
        Some("qemu-test") => qemu::task(),
        Some("fuzz") => {
            let secs = match args.get(1) {
                Some(s) => s
                    .parse()
                    .map_err(|_| anyhow::anyhow!("SECONDS must be a number"))?,
                None => 300,
            };
            fuzz::soak(secs)
        }
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown task")
        }
    }
}

fn test() -> Result<()> {
    ensure_packages(TOOLS)?;
    qemu::ensure_qemu()?;
    host::step("cargo fmt --check");
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    host::step("cargo clippy -D warnings");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The fuzz smoke runs first so that cargo test's summary closes the output.
    host::step("fuzz smoke run");
    fuzz::smoke(FUZZ_SMOKE_SECONDS)?;
    host::step("building the appliance for the boot tests");
    let appliance = appliance::build()?;
    host::step("the appliance is reproducible (second build, byte-for-byte comparison)");
    appliance::check_reproducible(&appliance)?;
    host::step("Volatility 3 for the memory cross-check");
    let vol = ensure_volatility()?;
    host::step("cargo test (stock tools and QEMU boots required)");
    run(cargo()
        .args(["test", "--workspace"])
        .env("VESTIGE_REQUIRE_TOOLS", "1")
        .env("VESTIGE_PYTHON", vol.with_file_name("python3"))
        .env("VESTIGE_VOL", vol))?;
    Ok(())
}
