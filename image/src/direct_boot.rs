//! The direct-boot pair: `vmlinuz` (Debian's signed kernel, copied as shipped) and
//! `initramfs.img` (zstd-compressed newc cpio of vestige-init, vestige and the module subset),
//! plus `build-info.json` describing both.
//!
//! Every input is pinned (lock file, static binaries built from the commit) and every
//! variable of the archive is fixed (sorted names, SOURCE_DATE_EPOCH mtimes, root owners,
//! single-threaded zstd), so two builds of one commit give byte-identical outputs.

use crate::cpio::Tree;
use crate::lock::{Lock, ROLE_KERNEL};
use crate::modules::{Index, Selection, WANTED};
use crate::{debian, elf};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// zstd level of the initramfs: what the kernel's own build uses for initramfs
/// (scripts/Makefile.lib); its 8 MiB window suits the kernel's decompressor.
pub const ZSTD_LEVEL: i32 = 19;

/// Inputs of a build.
#[derive(Debug, Clone)]
pub struct Config {
    /// `image/packages.lock`.
    pub lock_path: PathBuf,
    /// Downloaded `.deb`s and unpacked packages, shared between builds.
    pub cache_dir: PathBuf,
    /// Scratch folder for this build's module tree (emptied first).
    pub staging_dir: PathBuf,
    /// Where the outputs go.
    pub out_dir: PathBuf,
    /// The static `vestige` binary.
    pub vestige: PathBuf,
    /// The static `vestige-init` binary (becomes `/init`).
    pub init: PathBuf,
    /// mtime of every archive entry.
    pub source_date_epoch: u64,
    /// `git rev-parse HEAD`, when known.
    pub vestige_commit: Option<String>,
    /// Whether the work tree had uncommitted changes.
    pub tree_modified: bool,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// `OUT/vmlinuz`.
    pub vmlinuz: PathBuf,
    /// `OUT/initramfs.img`.
    pub initramfs: PathBuf,
    /// `OUT/build-info.json`.
    pub build_info: PathBuf,
    /// The contents of `build-info.json`.
    pub info: BuildInfo,
}

/// `build-info.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BuildInfo {
    /// Format version of this file.
    pub format: u32,
    /// `git rev-parse HEAD` of the Vestige sources.
    pub vestige_commit: Option<String>,
    /// Whether the work tree had uncommitted changes (then the commit does not describe it).
    pub vestige_tree_modified: bool,
    /// mtime of every initramfs entry.
    pub source_date_epoch: u64,
    /// Kernel release (`uname -r`).
    pub kernel_release: String,
    /// The pinned packages used.
    pub packages: Vec<PackageInfo>,
    /// Modules shipped (paths relative to lib/modules/KVER).
    pub modules: Vec<String>,
    /// Wanted modules that are built into the kernel.
    pub modules_builtin: Vec<String>,
    /// Optional wanted modules the kernel lacks.
    pub modules_absent: Vec<String>,
    /// Static binaries in the initramfs.
    pub binaries: Vec<FileInfo>,
    /// Uncompressed cpio size in bytes.
    pub cpio_bytes: u64,
    /// The outputs.
    pub outputs: Vec<FileInfo>,
}

/// A pinned package in `build-info.json`.
#[derive(Debug, Clone, Serialize)]
pub struct PackageInfo {
    /// Binary package.
    pub name: String,
    /// Version.
    pub version: String,
    /// SHA-256 of the `.deb`.
    pub sha256: String,
    /// Source package.
    pub source: String,
    /// Licence note.
    pub licence: String,
}

impl From<&crate::lock::Package> for PackageInfo {
    fn from(p: &crate::lock::Package) -> Self {
        PackageInfo {
            name: p.name.clone(),
            version: p.version.clone(),
            sha256: p.sha256.clone(),
            source: p.source.clone(),
            licence: p.licence.clone(),
        }
    }
}

/// A file with its size and digest.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// Path inside the image, or output file name.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// Size and SHA-256 of `path`, recorded as `name`.
pub fn file_info(name: &str, path: &Path) -> Result<FileInfo> {
    Ok(FileInfo {
        name: name.to_owned(),
        bytes: std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len(),
        sha256: debian::sha256_file(path)?,
    })
}

/// Builds `vmlinuz`, `initramfs.img` and `build-info.json` into `config.out_dir`.
pub fn build(config: &Config) -> Result<Outputs> {
    let lock = Lock::read(&config.lock_path)?;
    let kernel = lock.by_role(ROLE_KERNEL, &config.lock_path)?;
    let deb = debian::fetch(kernel, &config.cache_dir.join("debs"))?;
    let root = debian::unpack(
        &deb,
        &kernel.sha256,
        &config.cache_dir.join(format!("root-{}", kernel.name)),
    )?;
    let kver = kernel_release(&root)?;
    let modules_dir = root.join("lib/modules").join(&kver);
    if !modules_dir.join("modules.dep").exists() {
        // The package ships no modules.dep (its postinst runs depmod): make it once.
        depmod(&root, &kver)?;
    }
    let index = Index::load(&modules_dir)?;
    let selection = index.resolve(WANTED)?;

    for bin in [&config.init, &config.vestige] {
        elf::check_static(bin)?;
    }
    stage_modules(&modules_dir, &selection, &config.staging_dir, &kver)?;

    let release = release_file(config, kernel.version.as_str(), &kver);
    let mut tree = Tree::new();
    for dir in ["dev", "proc", "sys", "run", "mnt", "etc", "root"] {
        tree.add_dir(dir, 0o755)?;
    }
    tree.add_dir("tmp", 0o1777)?;
    // The kernel opens /dev/console for PID 1's stdio before anything mounts devtmpfs.
    tree.add_char_device("dev/console", 0o600, 5, 1)?;
    tree.add_host_file("init", 0o755, &config.init)?;
    tree.add_host_file("bin/vestige", 0o755, &config.vestige)?;
    tree.add_file("etc/vestige-release", 0o644, release.into_bytes())?;
    add_tree(&mut tree, &config.staging_dir, &config.staging_dir)?;

    std::fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("creating {}", config.out_dir.display()))?;
    let initramfs = config.out_dir.join("initramfs.img");
    let cpio_bytes = write_initramfs(&tree, config.source_date_epoch, &initramfs)?;
    let vmlinuz = config.out_dir.join("vmlinuz");
    let kernel_image = root.join("boot").join(format!("vmlinuz-{kver}"));
    copy_replacing(&kernel_image, &vmlinuz)?;

    let info = BuildInfo {
        format: 1,
        vestige_commit: config.vestige_commit.clone(),
        vestige_tree_modified: config.tree_modified,
        source_date_epoch: config.source_date_epoch,
        kernel_release: kver,
        packages: vec![PackageInfo::from(kernel)],
        modules: selection.paths.iter().cloned().collect(),
        modules_builtin: selection.builtin.clone(),
        modules_absent: selection.absent.clone(),
        binaries: vec![
            file_info("/init", &config.init)?,
            file_info("/bin/vestige", &config.vestige)?,
        ],
        cpio_bytes,
        outputs: vec![
            file_info("vmlinuz", &vmlinuz)?,
            file_info("initramfs.img", &initramfs)?,
        ],
    };
    let build_info = config.out_dir.join("build-info.json");
    write_build_info(&build_info, &info)?;
    Ok(Outputs {
        vmlinuz,
        initramfs,
        build_info,
        info,
    })
}

/// Writes `info` as pretty JSON (with a final newline) to `path`.
pub fn write_build_info(path: &Path, info: &BuildInfo) -> Result<()> {
    let mut json = serde_json::to_string_pretty(info)?;
    json.push('\n');
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

/// The single `lib/modules/KVER` of an unpacked kernel package, checked against its
/// `boot/vmlinuz-KVER`.
fn kernel_release(root: &Path) -> Result<String> {
    let dir = root.join("lib/modules");
    let mut releases = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        releases.push(entry?.file_name().to_string_lossy().into_owned());
    }
    let [kver] = releases.as_slice() else {
        bail!(
            "{}: expected one kernel release, found {releases:?}",
            dir.display()
        );
    };
    let image = root.join("boot").join(format!("vmlinuz-{kver}"));
    if !image.is_file() {
        bail!(
            "{}: missing (the package has modules for {kver})",
            image.display()
        );
    }
    Ok(kver.clone())
}

fn depmod(base: &Path, kver: &str) -> Result<()> {
    let program = ["/sbin/depmod", "/usr/sbin/depmod"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("depmod");
    let out = Command::new(program)
        .arg("-b")
        .arg(base)
        .arg(kver)
        .output()
        .with_context(|| format!("starting {program} (apt-get install kmod)"))?;
    if !out.status.success() {
        bail!(
            "depmod -b {} {kver} failed: {}",
            base.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Copies the selected `.ko` files (byte for byte) and the kernel's lists of built-ins into
/// `STAGING/lib/modules/KVER`, then lets depmod write the subset's modules.dep/alias/….
fn stage_modules(full: &Path, selection: &Selection, staging: &Path, kver: &str) -> Result<()> {
    if staging.exists() {
        std::fs::remove_dir_all(staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    let dest = staging.join("lib/modules").join(kver);
    for rel in &selection.paths {
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        copy_replacing(&full.join(rel), &target)?;
    }
    for name in ["modules.builtin", "modules.builtin.modinfo"] {
        copy_replacing(&full.join(name), &dest.join(name))?;
    }
    // modules.order keeps the kernel's link order; depmod uses it to order modules.dep.
    let order_path = full.join("modules.order");
    let order = std::fs::read_to_string(&order_path)
        .with_context(|| format!("reading {}", order_path.display()))?;
    let subset: String = order
        .lines()
        .filter(|l| selection.paths.contains(*l))
        .flat_map(|l| [l, "\n"])
        .collect();
    std::fs::write(dest.join("modules.order"), subset)?;
    depmod(staging, kver)
}

fn copy_replacing(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension(format!("partial.{}", std::process::id()));
    std::fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to)
        .with_context(|| format!("moving {} to {}", tmp.display(), to.display()))?;
    Ok(())
}

/// Adds every file under `dir` to `tree` at its path relative to `base` (files 0644,
/// directories 0755: modes of the host are not carried over).
fn add_tree(tree: &mut Tree, base: &Path, dir: &Path) -> Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        entries.push(entry?.path());
    }
    entries.sort();
    for path in entries {
        let rel = path
            .strip_prefix(base)
            .with_context(|| format!("{} outside {}", path.display(), base.display()))?;
        let name = rel
            .to_str()
            .with_context(|| format!("{}: not UTF-8", path.display()))?;
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            tree.add_dir(name, 0o755)?;
            add_tree(tree, base, &path)?;
        } else if meta.is_file() {
            tree.add_host_file(name, 0o644, &path)?;
        } else {
            bail!("{}: neither a file nor a directory", path.display());
        }
    }
    Ok(())
}

fn release_file(config: &Config, kernel_version: &str, kver: &str) -> String {
    format!(
        "NAME=Vestige\nVESTIGE_COMMIT={}\nVESTIGE_TREE={}\nKERNEL_RELEASE={kver}\n\
         KERNEL_PACKAGE_VERSION={kernel_version}\nSOURCE_DATE_EPOCH={}\n",
        config.vestige_commit.as_deref().unwrap_or("unknown"),
        if config.tree_modified {
            "modified"
        } else {
            "clean"
        },
        config.source_date_epoch
    )
}

/// Writes `tree` as a zstd-compressed cpio to `path` (through a temporary file). Returns the
/// uncompressed size.
fn write_initramfs(tree: &Tree, mtime: u64, path: &Path) -> Result<u64> {
    // Unique per process: two builds at once must not interleave in one temporary file.
    let tmp = path.with_extension(format!("partial.{}", std::process::id()));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    // Single-threaded on purpose: zstd's output then depends only on input and level.
    let mut encoder = zstd::stream::write::Encoder::new(std::io::BufWriter::new(file), ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    let cpio_bytes = tree.write(&mut encoder, mtime)?;
    let mut out = encoder.finish()?;
    out.flush()
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(out);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("moving {} to {}", tmp.display(), path.display()))?;
    Ok(cpio_bytes)
}
