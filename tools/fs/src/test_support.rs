//! Helpers shared by the readers' tests: external tools (skipped when missing unless
//! `VESTIGE_REQUIRE_TOOLS=1`), deterministic content, reading a file whole, and TSK's
//! bodyfile keyed by inode.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::panic
)]

use crate::{walk, FileSystem, Inode, ReadAt};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Whether `VESTIGE_REQUIRE_TOOLS=1`: a missing tool then fails the test.
pub(crate) fn tools_required() -> bool {
    std::env::var("VESTIGE_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// Whether `tool` is on the PATH (`command -v`).
pub(crate) fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the tools are there; when not, the test is skipped unless
/// `VESTIGE_REQUIRE_TOOLS=1`.
pub(crate) fn have_tools(tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools.iter().filter(|t| !installed(t)).collect();
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

/// Runs `cmd` with the FAT tools' environment (UTC, mtools without its checks, VFAT
/// names), failing the test unless it succeeds; returns its stdout.
pub(crate) fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd)
        .args(args)
        .env("TZ", "UTC")
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("MTOOLS_NO_VFAT", "0")
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

/// Deterministic content of `len` bytes.
pub(crate) fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Hex SHA-256 of `data`.
pub(crate) fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// All of `r`.
pub(crate) fn read_all(r: &dyn ReadAt) -> Vec<u8> {
    let mut v = vec![0u8; usize::try_from(r.size()).unwrap()];
    r.read_exact_at(&mut v, 0).unwrap();
    v
}

/// The default data of `inode`, whole, or the error as text.
pub(crate) fn read_file(fs: &dyn FileSystem, inode: Inode) -> Result<Vec<u8>, String> {
    let f = fs.open(inode, None).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::try_from(f.size()).unwrap()];
    f.read_exact_at(&mut buf, 0).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// `fls -r -m /` lines keyed by inode, without TSK's virtual files and the label entry.
pub(crate) fn fls_lines(img: &Path) -> BTreeMap<String, String> {
    let out = run("fls", &["-r", "-m", "/", img.to_str().unwrap()]);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.contains("|v/v") && !l.contains("|V/V") && !l.contains("(Volume Label Entry)")
        })
        .map(|l| (l.split('|').nth(2).unwrap().to_string(), l.to_string()))
        .collect()
}

/// Our bodyfile keyed by inode (orphans named by their short entry, as TSK names them).
pub(crate) fn ours(fs: &dyn FileSystem) -> BTreeMap<String, String> {
    let (body, problems) = walk::bodyfile(fs, "/");
    assert!(problems.is_empty(), "{problems:?}");
    body.lines()
        .map(|l| (l.split('|').nth(2).unwrap().to_string(), l.to_string()))
        .collect()
}

/// Walks everything and reads every file and directory: what the fuzz target does.
pub(crate) fn exercise(fs: &dyn FileSystem) -> usize {
    let mut files = 0;
    let _ = walk::walk(fs, |f| {
        files += 1;
        if let Ok(r) = fs.open(f.entry.inode, None) {
            let mut buf = vec![0u8; 4096];
            let mut at = 0u64;
            while at < r.size().min(1 << 20) {
                match r.read_at(&mut buf, at) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => at += n as u64,
                }
            }
        }
    });
    files
}
