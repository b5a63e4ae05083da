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
const FUZZ_SMOKE_SECONDS: u64 = 10;

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
    // The XFS tests: images populated by mkfs.xfs -p, checked against xfs_db.
    ("mkfs.xfs", "xfsprogs"),
    ("xfs_db", "xfsprogs"),
    // The analysis tests: login records by utmpdump, syslog lines by logger, journals by
    // systemd-journal-remote and read back by journalctl, SSH keys by ssh-keygen, hives
    // by hivex (and its Python bindings as the oracle), ELF by cc read back by nm and
    // objdump, the report opened in headless Chromium.
    ("utmpdump", "util-linux"),
    ("logger", "bsdutils"),
    ("journalctl", "systemd"),
    (
        "/lib/systemd/systemd-journal-remote",
        "systemd-journal-remote",
    ),
    ("ssh-keygen", "openssh-client"),
    ("openssl", "openssl"),
    ("hivexregedit", "libwin-hivex-perl"),
    ("hivexsh", "libhivex-bin"),
    (
        "/usr/lib/python3/dist-packages/hivex/__init__.py",
        "python3-hivex",
    ),
    ("cc", "gcc"),
    ("objdump", "binutils"),
    ("chromium", "chromium"),
];

/// Oracles from PyPI, into a venv under target/ (Debian's pip refuses system
/// installs): Volatility 3 cross-checks our memory images and ISF, dissect.ntfs our
/// change-journal parser, case-utils (the CASE project's validator) our CASE/UCO export.
const PYPI_ORACLES: &[&str] = &[
    "volatility3==2.28.2",
    "dissect.ntfs==3.16",
    "case-utils==0.18.0",
    "jsonschema",
];

/// Installs the PyPI oracles into target/vol-venv unless they are there; returns the
/// `vol` path (its python3 sits beside it).
fn ensure_volatility() -> Result<std::path::PathBuf> {
    let venv = host::root().join("target/vol-venv");
    let vol = venv.join("bin/vol");
    let python = venv.join("bin/python3");
    let present = vol.is_file()
        && std::process::Command::new(&python)
            .args([
                "-c",
                "import volatility3, dissect.ntfs, case_utils, jsonschema",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
    if present {
        return Ok(vol);
    }
    if !host::have("pip3")
        || run(std::process::Command::new("python3").args(["-m", "venv", "--help"])).is_err()
    {
        host::apt_install(&["python3-venv", "python3-pip"])?;
    }
    if !python.is_file() {
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv))?;
    }
    run(std::process::Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet"])
        .args(PYPI_ORACLES))?;
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
    host::step("Volatility 3 and dissect.ntfs, the PyPI oracles");
    let vol = ensure_volatility()?;
    host::step("cargo test (stock tools and QEMU boots required)");
    run(cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .env("VESTIGE_REQUIRE_TOOLS", "1")
        .env("VESTIGE_PYTHON", vol.with_file_name("python3"))
        .env("VESTIGE_DISSECT_PYTHON", vol.with_file_name("python3"))
        .env("VESTIGE_CASE_VALIDATE", vol.with_file_name("case_validate"))
        .env("VESTIGE_VOL", vol))?;
    Ok(())
}
