//! Copying out running binaries whose file was deleted.
//!
//! Malware commonly deletes its executable after starting; the kernel keeps the inode
//! alive while the process runs and /proc/PID/exe still opens it. Once the process exits
//! (or the system is powered off) the binary is gone, so it is copied during collection.

use crate::collect::Collector;
use crate::process::{recovery_path, Process};
use crate::snapshot::RecoveredBinary;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Copies `exe_link` (a /proc/PID/exe) to `<dir>/pid-<PID>-<comm>.bin` and records it;
/// failures are recorded as errors of section `recovered`.
pub(crate) fn recover(
    c: &mut Collector<'_>,
    out: &mut Vec<RecoveredBinary>,
    dir: &Path,
    process: &Process,
    exe_link: &Path,
) {
    let (dest, file_name) = recovery_path(dir, process.pid, &process.name);
    match copy_capped(exe_link, &dest, c.opts.max_recover_bytes) {
        Ok(copy) => {
            tracing::info!(pid = process.pid, file = %dest.display(), bytes = copy.size_bytes, "recovered deleted executable");
            out.push(RecoveredBinary {
                pid: process.pid,
                original_path: process.exe.clone().unwrap_or_default(),
                file_name,
                size_bytes: copy.size_bytes,
                sha256: copy.sha256,
                truncated: copy.truncated,
            });
        }
        Err(e) => c.record("recovered", &dest, e),
    }
}

/// What [`copy_capped`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Copied {
    pub(crate) size_bytes: u64,
    pub(crate) sha256: String,
    pub(crate) truncated: bool,
}

/// Copies at most `max_bytes` of `src` to a new file `dest`, hashing what is written.
///
/// `dest` is created exclusively (`O_CREAT|O_EXCL`, which never follows a symlink, plus
/// `O_NOFOLLOW` to say so), so an existing file or a planted link is an error, never
/// overwritten or followed. The copy is read-only (0400): it is evidence, and it is not
/// meant to be run. It is synced before returning. A partial copy is removed on error.
pub(crate) fn copy_capped(src: &Path, dest: &Path, max_bytes: u64) -> io::Result<Copied> {
    let source = File::open(src)?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dest)?;
    match copy_into(source, &mut target, max_bytes) {
        Ok(copy) => Ok(copy),
        Err(e) => {
            drop(target);
            // Ours to remove: create_new made it. If removing fails too, the original error
            // is the one worth reporting.
            let _ = std::fs::remove_file(dest);
            Err(e)
        }
    }
}

fn copy_into(source: File, target: &mut File, max_bytes: u64) -> io::Result<Copied> {
    let mut hasher = Sha256::new();
    let mut limited = source.take(max_bytes);
    let mut buf = vec![0u8; 256 * 1024];
    let mut size_bytes = 0u64;
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        target.write_all(chunk)?;
        size_bytes = size_bytes.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
    // One more byte beyond the cap means the copy is not the whole file.
    let truncated = limited.into_inner().read(&mut [0u8; 1])? > 0;
    target.sync_all()?;
    Ok(Copied {
        size_bytes,
        sha256: hex::encode(hasher.finalize()),
        truncated,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn copies_hashes_and_caps() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"hello world").unwrap();
        let copy = copy_capped(&src, &dir.path().join("a"), 1024).unwrap();
        assert_eq!(copy.size_bytes, 11);
        assert!(!copy.truncated);
        assert_eq!(
            copy.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        let copy = copy_capped(&src, &dir.path().join("b"), 5).unwrap();
        assert_eq!((copy.size_bytes, copy.truncated), (5, true));
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"hello");
    }

    #[test]
    fn never_overwrites_or_follows() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"x").unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(copy_capped(&src, &link, 10).is_err());
        assert!(copy_capped(&src, &victim, 10).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        // A failed source open leaves nothing behind.
        assert!(copy_capped(&dir.path().join("missing"), &dir.path().join("c"), 10).is_err());
        assert!(!dir.path().join("c").exists());
    }
}
