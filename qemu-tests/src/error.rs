//! The harness's one error type.

use std::io;
use std::path::PathBuf;

/// What went wrong while preparing disks, booting QEMU or reading the evidence back.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A program could not be started (not installed?).
    #[error("cannot start {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A program ran and failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// A file operation failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What we were doing.
        what: &'static str,
        /// On which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The appliance files (`cargo xtask appliance`) are not there.
    #[error("appliance file {} is missing (build it with `cargo xtask appliance`, or set VESTIGE_APPLIANCE_DIR)", path.display())]
    ApplianceMissing {
        /// The missing file.
        path: PathBuf,
    },
    /// A tool's output was not what we expected.
    #[error("{tool}: {problem}")]
    UnexpectedOutput {
        /// The tool.
        tool: &'static str,
        /// What was wrong, quoting the output.
        problem: String,
    },
}

impl HarnessError {
    /// An [`HarnessError::Io`] maker for `map_err`.
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| HarnessError::Io { what, path, source }
    }
}
