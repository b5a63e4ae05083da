//! Exit codes: one enum, so that scripts can tell complete, incomplete and failed apart.

/// The process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done: evidence complete and verified.
    Ok = 0,
    /// Evidence does not verify (damaged, tampered, wrong key).
    NotVerified = 1,
    /// Could not run: usage, I/O, refused input.
    Failed = 2,
    /// Evidence is sound but incomplete (the acquisition stopped early).
    Incomplete = 3,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}
