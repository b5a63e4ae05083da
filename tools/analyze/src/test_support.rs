//! Helpers shared by the artifact tests: external tools (skipped when missing unless
//! `VESTIGE_REQUIRE_TOOLS=1`), and real ext4 images made by `mkfs.ext4 -d` from a host
//! directory, opened through `vestige-fs` as the analysis opens evidence.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::files::Files;
use std::path::Path;
use std::process::Command;

/// Whether `VESTIGE_REQUIRE_TOOLS=1`: a missing tool then fails the test.
pub(crate) fn tools_required() -> bool {
    std::env::var("VESTIGE_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// Whether the tools are on the PATH; when not, the test is skipped unless
/// `VESTIGE_REQUIRE_TOOLS=1`.
pub(crate) fn have_tools(tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools
        .iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !tools_required(),
        "missing tools {missing:?} and VESTIGE_REQUIRE_TOOLS=1"
    );
    eprintln!("skipped: missing {missing:?}");
    false
}

/// Runs `cmd`, failing the test unless it succeeds; returns its stdout.
pub(crate) fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A real ext4 image of `root` (made by `mkfs.ext4 -d`, `size_mib` MiB), as bytes; `None`
/// when mkfs.ext4 is missing (and not required). Files keep their host mtimes.
pub(crate) fn ext4_of(root: &Path, size_mib: u32) -> Option<Vec<u8>> {
    if !have_tools(&["mkfs.ext4"]) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("root.ext4");
    let size = format!("{size_mib}M");
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-E",
            "root_owner=0:0",
            "-d",
            root.to_str().unwrap(),
            img.to_str().unwrap(),
            &size,
        ],
    );
    Some(std::fs::read(&img).unwrap())
}

/// Calls `f` with the files of the ext4 image `image` (from [`ext4_of`]), named
/// `test:001` in evidence references.
pub(crate) fn with_ext4<R>(image: &[u8], f: impl FnOnce(&Files<'_>) -> R) -> R {
    let vol: &[u8] = image;
    let fs = vestige_fs::ext4::Ext4::open(&vol, "test:001").expect("ext4 opens");
    let files = Files::new(&fs, "test:001");
    f(&files)
}

/// Writes `text` to `root/rel`, making the directories.
pub(crate) fn put(root: &Path, rel: &str, text: &[u8]) {
    let p = root.join(rel.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}
