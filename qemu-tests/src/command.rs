//! Running host tools.

use crate::HarnessError;
use std::process::Command;

/// Runs `cmd` to completion; returns its stdout, or an error quoting its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String, HarnessError> {
    let out = cmd.output().map_err(|source| HarnessError::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    if !out.status.success() {
        return Err(HarnessError::Command {
            command: format!("{cmd:?}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`run`], and also returns stderr (for tools that report errors there with exit 0).
pub(crate) fn run_with_stderr(cmd: &mut Command) -> Result<(String, String), HarnessError> {
    let out = cmd.output().map_err(|source| HarnessError::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(HarnessError::Command {
            command: format!("{cmd:?}"),
            status: out.status.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), stderr))
}
