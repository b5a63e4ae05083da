//! Project tasks (the xtask pattern): `cargo xtask demo`, `cargo xtask test`.
//!
//! Each task first installs, with apt-get, the host packages it needs when they are
//! missing, so both work on a fresh Debian machine.

mod demo;
mod host;

use anyhow::{bail, Result};
use host::{cargo, ensure_packages, run};

const USAGE: &str = "usage: cargo xtask <demo|test|>
  demo   build vestige, generate a suspect disk, acquire it (from a loop device when
         root), verify with vestige and with stock signify/zstd, export raw
  test   fmt --check, clippy -D warnings, every test (stock tools required)";

/// Host tools the tests and the demo call, with the Debian package that provides each.
pub const TOOLS: &[(&str, &str)] = &[
    ("zstd", "zstd"),
    ("signify-openbsd", "signify-openbsd"),
    ("minisign", "minisign"),
    ("sgdisk", "gdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("losetup", "mount"),
    ("python3", "python3"),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo::task(),
        Some("test") => test(),
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown task")
        }
    }
}

fn test() -> Result<()> {
    ensure_packages(TOOLS)?;
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
    host::step("cargo test (stock tools required)");
    run(cargo()
        .args(["test", "--workspace"])
        .env("VESTIGE_REQUIRE_TOOLS", "1"))?;
    Ok(())
}
