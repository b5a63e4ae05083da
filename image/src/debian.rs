//! Fetching pinned Debian packages with `apt-get download`, checking them against the lock,
//! unpacking them with `dpkg-deb -x`, and finding the archive's current candidates for
//! `--update-lock`. The only network this touches is apt's configured Debian archive.

use crate::lock::{self, Package};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The meta package whose dependency names the current versioned kernel package.
pub const KERNEL_META_PACKAGE: &str = "linux-image-amd64";

/// Licence note recorded for a role when the lock gets a new package.
pub fn default_licence(role: &str) -> &'static str {
    match role {
        lock::ROLE_KERNEL => {
            "GPL-2.0-only (Linux kernel and modules; a separate work shipped unmodified; \
             full text in the package's /usr/share/doc/*/copyright)"
        }
        _ => "see the package's /usr/share/doc/*/copyright",
    }
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The cached `.deb` of a pinned package: `DEBS/NAME_VERSION_ARCH.deb` (the version's `:`
/// written `%3a`, as apt-get names it).
pub fn deb_path(debs: &Path, package: &Package) -> PathBuf {
    debs.join(format!(
        "{}_{}_{}.deb",
        package.name,
        package.version.replace(':', "%3a"),
        package.architecture
    ))
}

/// Returns the `.deb` of `package` in `debs`, downloading it with apt-get when it is not
/// cached, after checking its SHA-256 against the lock. A cached file with another digest is
/// an error (it is never silently replaced).
pub fn fetch(package: &Package, debs: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(debs).with_context(|| format!("creating {}", debs.display()))?;
    let path = deb_path(debs, package);
    if !path.exists() {
        download(package, debs, &path)?;
    }
    let found = sha256_file(&path)?;
    if found != package.sha256 {
        bail!(
            "{}: SHA-256 mismatch: the lock expects {}, the file has {found} \
             (delete the file to download it again, or update the lock)",
            path.display(),
            package.sha256
        );
    }
    Ok(path)
}

fn download(package: &Package, debs: &Path, dest: &Path) -> Result<()> {
    // Download into an empty folder of its own so a half-written file never looks cached.
    let partial = debs.join(".partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)?;
    let spec = format!(
        "{}:{}={}",
        package.name, package.architecture, package.version
    );
    let attempt = || {
        Command::new("apt-get")
            .args(["download", "-q", &spec])
            .current_dir(&partial)
            .output()
            .with_context(|| "starting apt-get (is this a Debian host?)")
    };
    let mut out = attempt()?;
    if !out.status.success() {
        // The package lists may be stale or absent on a fresh machine: refresh once.
        let update = Command::new("apt-get").args(["update", "-q"]).output();
        if update.is_ok_and(|u| u.status.success()) {
            out = attempt()?;
        }
    }
    if !out.status.success() {
        bail!(
            "apt-get download {spec} failed: {}\n\
             The pinned version is probably no longer in the archive. Either run\n  \
             cargo xtask appliance --update-lock\n\
             to pin the archive's current candidate (then review and commit image/packages.lock),\n\
             or put the exact file (SHA-256 {}) at {} (snapshot.debian.org keeps old versions).",
            String::from_utf8_lossy(&out.stderr).trim(),
            package.sha256,
            dest.display()
        );
    }
    let mut debs_found = Vec::new();
    for entry in std::fs::read_dir(&partial)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "deb") {
            debs_found.push(p);
        }
    }
    let [got] = debs_found.as_slice() else {
        bail!(
            "apt-get download {spec} left {} .deb files in {}, expected 1",
            debs_found.len(),
            partial.display()
        );
    };
    std::fs::rename(got, dest)
        .with_context(|| format!("moving {} to {}", got.display(), dest.display()))?;
    std::fs::remove_dir_all(&partial).ok();
    Ok(())
}

/// Unpacks `deb` into `dest` with `dpkg-deb -x`, unless `dest` already holds this exact
/// `.deb` (a stamp file records its SHA-256). Returns `dest`.
pub fn unpack(deb: &Path, sha256: &str, dest: &Path) -> Result<PathBuf> {
    let stamp = dest.join(".vestige-unpacked-sha256");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == sha256) {
        return Ok(dest.to_owned());
    }
    if dest.exists() {
        std::fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    let tmp = dest.with_extension("partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp)?;
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&tmp)
        .output()
        .context("starting dpkg-deb")?;
    if !out.status.success() {
        bail!(
            "dpkg-deb -x {} failed: {}",
            deb.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::write(tmp.join(".vestige-unpacked-sha256"), sha256)?;
    std::fs::rename(&tmp, dest)
        .with_context(|| format!("moving {} to {}", tmp.display(), dest.display()))?;
    Ok(dest.to_owned())
}

/// The versioned kernel package `linux-image-amd64` currently depends on
/// (`apt-cache depends`).
pub fn current_kernel_package() -> Result<String> {
    let text = apt_cache(&["depends", KERNEL_META_PACKAGE])?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|d| d.starts_with("linux-image-") && !d.starts_with('<'))
        .map(str::to_owned)
        .with_context(|| {
            format!("apt-cache depends {KERNEL_META_PACKAGE}: no linux-image-* dependency")
        })
}

/// The archive's candidate version of `name` as a lock entry (`apt-cache show`: version,
/// SHA256, source), with `role` and `licence`.
pub fn candidate(name: &str, role: &str, licence: &str) -> Result<Package> {
    let text = apt_cache(&["show", "--no-all-versions", name])?;
    let field = |f: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(f).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("apt-cache show {name}: no {f} field"))
    };
    let version = field("Version")?;
    let sha256 = field("SHA256")?;
    if !lock::is_sha256_hex(&sha256) {
        bail!("apt-cache show {name}: SHA256 {sha256:?} is not 64 hex digits");
    }
    Ok(Package {
        name: name.to_owned(),
        // Binary packages built from the same source share its name when Source is absent.
        source: field("Source").unwrap_or_else(|_| format!("{name} ({version})")),
        version,
        architecture: field("Architecture")?,
        sha256,
        role: role.to_owned(),
        licence: licence.to_owned(),
    })
}

fn apt_cache(args: &[&str]) -> Result<String> {
    let run = || {
        Command::new("apt-cache")
            .args(args)
            .output()
            .context("starting apt-cache")
    };
    let mut out = run()?;
    if !out.status.success() || out.stdout.is_empty() {
        Command::new("apt-get").args(["update", "-q"]).output().ok();
        out = run()?;
    }
    if !out.status.success() {
        bail!(
            "apt-cache {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
