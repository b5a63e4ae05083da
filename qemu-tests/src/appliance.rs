//! Where the built appliance and the host tools are.

use crate::HarnessError;
use std::path::{Path, PathBuf};

/// The kernel file name in the appliance directory.
pub const KERNEL_FILE: &str = "vmlinuz";
/// The initramfs file name in the appliance directory.
pub const INITRD_FILE: &str = "initramfs.img";

/// The kernel and initramfs built by `cargo xtask appliance`.
#[derive(Debug, Clone)]
pub struct Appliance {
    /// The directory holding both.
    pub dir: PathBuf,
    /// The kernel (bzImage).
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
}

impl Appliance {
    /// Finds the appliance in [`appliance_dir`].
    ///
    /// # Errors
    /// [`HarnessError::ApplianceMissing`] naming the first missing file.
    pub fn find() -> Result<Appliance, HarnessError> {
        Appliance::in_dir(&appliance_dir())
    }

    /// Finds the appliance in `dir`.
    ///
    /// # Errors
    /// [`HarnessError::ApplianceMissing`] naming the first missing file.
    pub fn in_dir(dir: &Path) -> Result<Appliance, HarnessError> {
        let kernel = dir.join(KERNEL_FILE);
        let initrd = dir.join(INITRD_FILE);
        for path in [&kernel, &initrd] {
            if !path.is_file() {
                return Err(HarnessError::ApplianceMissing { path: path.clone() });
            }
        }
        Ok(Appliance {
            dir: dir.to_path_buf(),
            kernel,
            initrd,
        })
    }
}

/// The workspace root (this crate's parent directory).
#[must_use]
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// `$VESTIGE_APPLIANCE_DIR`, else `<workspace>/target/appliance`.
#[must_use]
pub fn appliance_dir() -> PathBuf {
    std::env::var_os("VESTIGE_APPLIANCE_DIR")
        .map_or_else(|| workspace_root().join("target/appliance"), PathBuf::from)
}

/// Whether `VESTIGE_REQUIRE_TOOLS=1`: then a missing tool or appliance fails a test
/// instead of skipping it.
#[must_use]
pub fn tools_required() -> bool {
    std::env::var_os("VESTIGE_REQUIRE_TOOLS").is_some_and(|v| v == "1")
}

/// The programs of `tools` found neither on PATH nor in /sbin, /usr/sbin.
#[must_use]
pub fn missing_tools<'a>(tools: &[&'a str]) -> Vec<&'a str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain([PathBuf::from("/sbin"), PathBuf::from("/usr/sbin")])
        .collect();
    tools
        .iter()
        .filter(|tool| !dirs.iter().any(|d| d.join(tool).is_file()))
        .copied()
        .collect()
}
