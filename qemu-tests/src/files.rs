//! Looking at what a boot left behind: directories kept for the examiner of a failed test,
//! listings and walks of an extracted case, and the stock-signify check of an item.

use crate::appliance::workspace_root;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/qemu-tests/NAME`, created: keeps console logs after the test ends.
///
/// # Panics
/// When the directory cannot be created (a test helper: failing loudly is the point).
#[allow(clippy::expect_used)]
pub fn keep_dir(name: &str) -> PathBuf {
    let d = workspace_root().join("target/qemu-tests").join(name);
    std::fs::create_dir_all(&d).expect("creating target/qemu-tests/<scenario>");
    d
}

/// The names in `dir`, sorted; empty when it cannot be read.
pub fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every file under `dir`, recursively (symlinks are not followed into directories).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Runs stock `signify-openbsd -C -p PUBKEY -x SHA256.sig` inside `item`; Err carries
/// signify's output.
pub fn signify_check(item: &Path, pubkey: &Path) -> Result<(), String> {
    let out = Command::new("signify-openbsd")
        .args(["-C", "-p"])
        .arg(pubkey)
        .args(["-x", "SHA256.sig"])
        .current_dir(item)
        .output()
        .map_err(|e| format!("cannot run signify-openbsd: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "signify -C in {}: {}{}",
            item.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Checks an extracted item the way an examiner would: `vestige verify`'s library verdict is
/// Verified, its source SHA-256 is `sha256`, and stock `signify-openbsd -C` accepts it with
/// the case key the manifest names. Returns the manifest.
///
/// # Panics
/// On any failed check, naming the item (test support: the panic is the test's report).
#[allow(clippy::panic, clippy::expect_used)]
pub fn assert_item_verified(
    case: &Path,
    item: &str,
    sha256: &str,
) -> vestige_evidence::manifest::Manifest {
    use vestige_evidence::manifest::{Manifest, MANIFEST_FILE};
    use vestige_evidence::verify::{verify_item, Verdict, CASE_KEYS_DIR};
    let dir = case.join(item);
    let report = verify_item(&dir, None, 2, None);
    assert_eq!(
        report.verdict,
        Verdict::Verified,
        "verify {}: {:?}",
        dir.display(),
        report.problems
    );
    assert_eq!(
        report.source_sha256.as_deref(),
        Some(sha256),
        "{}: source SHA-256",
        dir.display()
    );
    let bytes = std::fs::read(dir.join(MANIFEST_FILE)).expect("reading manifest.json");
    let manifest: Manifest = serde_json::from_slice(&bytes).expect("parsing manifest.json");
    assert_eq!(manifest.hashes.sha256, sha256);
    let key = manifest
        .signing_key
        .as_ref()
        .expect("the manifest names no signing key");
    let pubkey = case.join(CASE_KEYS_DIR).join(format!("{}.pub", key.keynum));
    if let Err(e) = signify_check(&dir, &pubkey) {
        panic!("{e}");
    }
    manifest
}
