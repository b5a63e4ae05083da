//! Running commands and installing host packages.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// Prints a step header.
pub fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// `cargo` as invoked us (CARGO), or from PATH.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// The workspace root (tools/xtask/../..).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
        .map_or_else(|| here.clone(), PathBuf::from)
}

/// Runs a command in the workspace root; fails when it does.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a program is on PATH (or in /sbin, /usr/sbin).
pub fn have(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/sbin".into(), "/usr/sbin".into()])
        .any(|d| d.join(program).is_file())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

/// Installs, with apt-get, the packages of the tools that are missing.
pub fn ensure_packages(tools: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(tool, _)| !have(tool))
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("installing host packages: {}", missing.join(" ")));
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(missing.iter().copied());
    apt_install(&install)?;
    Ok(())
}

/// Runs apt-get non-interactively, through sudo unless we are root.
pub fn apt_get(args: &[&str]) -> Result<()> {
    let mut cmd = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut cmd)
}

/// `apt-get ARGS` (an install), with one `apt-get update` and a retry when it fails: a fresh
/// machine's package lists may be stale or absent.
pub fn apt_install(args: &[&str]) -> Result<()> {
    if apt_get(args).is_err() {
        apt_get(&["update"])?;
        apt_get(args)?;
    }
    Ok(())
}
