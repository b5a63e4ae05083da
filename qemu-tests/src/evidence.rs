//! Reading the case back from the evidence disk without mounting it: debugfs and dumpe2fs
//! open an ext4 file system at a byte offset inside a disk image (`IMAGE?offset=N`, the
//! unix I/O manager's option), read only.

use crate::command::{run, run_with_stderr};
use crate::HarnessError;
use std::path::Path;
use std::process::Command;

/// What dumpe2fs says about a file system's state after the appliance used it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext4State {
    /// "Filesystem state:" is "clean" (unmounted properly, no errors).
    pub clean: bool,
    /// The journal still needs replaying (the appliance did not unmount).
    pub needs_recovery: bool,
    /// The raw "Filesystem state:" value.
    pub state: String,
}

fn at_offset(disk: &Path, offset_bytes: u64) -> String {
    format!("{}?offset={offset_bytes}", disk.display())
}

/// Copies every file of the ext4 file system at `offset_bytes` in `disk` into `out_dir`
/// (created if missing) with `debugfs -R "rdump / OUT"`.
///
/// # Errors
/// When debugfs fails or reports an error (it exits 0 on a failed request, so its stderr
/// is checked too).
pub fn extract_ext4(disk: &Path, offset_bytes: u64, out_dir: &Path) -> Result<(), HarnessError> {
    std::fs::create_dir_all(out_dir).map_err(HarnessError::io("creating directory", out_dir))?;
    let (_, stderr) = run_with_stderr(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("rdump / {}", out_dir.display()))
            .arg(at_offset(disk, offset_bytes)),
    )?;
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .collect();
    if !errors.is_empty() {
        return Err(HarnessError::UnexpectedOutput {
            tool: "debugfs",
            problem: format!(
                "rdump of {} reported: {}",
                at_offset(disk, offset_bytes),
                errors.join(" | ")
            ),
        });
    }
    Ok(())
}

/// The state of the ext4 file system at `offset_bytes` in `disk` (`dumpe2fs -h`).
///
/// # Errors
/// When dumpe2fs fails or prints no "Filesystem state:" line.
pub fn ext4_state(disk: &Path, offset_bytes: u64) -> Result<Ext4State, HarnessError> {
    let out = run(Command::new("dumpe2fs")
        .arg("-h")
        .arg(at_offset(disk, offset_bytes)))?;
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let state = field("Filesystem state:").ok_or_else(|| HarnessError::UnexpectedOutput {
        tool: "dumpe2fs",
        problem: format!(
            "no \"Filesystem state:\" line for {}",
            at_offset(disk, offset_bytes)
        ),
    })?;
    let features = field("Filesystem features:").unwrap_or_default();
    Ok(Ext4State {
        clean: state == "clean",
        needs_recovery: features.split_whitespace().any(|f| f == "needs_recovery"),
        state,
    })
}
