//! Helpers shared by the readers' tests: external tools (skipped when missing unless
//! `VESTIGE_REQUIRE_TOOLS=1`), deterministic sources, and whole/random read checks.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::panic
)]

use crate::{FormatError, ReadAt};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// Whether `tool --version` runs; if not, the test is skipped unless
/// `VESTIGE_REQUIRE_TOOLS=1`, which makes it fail.
pub(crate) fn have(tool: &str) -> bool {
    have_with(tool, "--version")
}

/// Whether `tool arg` runs (see [`have`]).
pub(crate) fn have_with(tool: &str, arg: &str) -> bool {
    let ok = Command::new(tool).arg(arg).output().is_ok();
    if !ok {
        assert!(
            std::env::var("VESTIGE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{tool} is required (VESTIGE_REQUIRE_TOOLS=1) but missing"
        );
        eprintln!("skipping: {tool} not installed");
    }
    ok
}

/// Runs `cmd`, failing the test (with its stderr) unless it succeeds; returns its stdout.
pub(crate) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd args…` (see [`run`]).
pub(crate) fn run_args(cmd: &str, args: &[&str]) {
    run(Command::new(cmd).args(args));
}

/// `qemu-img convert` of the image `img` (format `fmt`) to raw at `raw`; returns its bytes.
pub(crate) fn qemu_to_raw(fmt: &str, img: &Path, raw: &Path) -> Vec<u8> {
    run(Command::new("qemu-img")
        .args(["convert", "-f", fmt, "-O", "raw"])
        .arg(img)
        .arg(raw));
    std::fs::read(raw).unwrap()
}

/// One xorshift64 step.
pub(crate) fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Deterministic pseudo-random bytes (xorshift from `seed | 1`) in `chunk`-byte chunks,
/// the chunks for which `zero(index)` holds left zero.
pub(crate) fn source_chunks(
    len: usize,
    seed: u64,
    chunk: usize,
    zero: impl Fn(usize) -> bool,
) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut x = seed | 1;
    for (i, c) in out.chunks_mut(chunk).enumerate() {
        if zero(i) {
            continue;
        }
        for b in c.iter_mut() {
            *b = xorshift(&mut x) as u8;
        }
    }
    out
}

/// The SHA-256 of `b`, in hex.
pub(crate) fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Every byte through the reader, in reads of `step` bytes (unaligned to blocks); a read
/// at the end gives 0.
pub(crate) fn read_all(r: &dyn ReadAt, step: usize) -> Vec<u8> {
    let mut out = vec![0u8; usize::try_from(r.size()).unwrap()];
    let mut pos = 0usize;
    while pos < out.len() {
        let end = (pos + step).min(out.len());
        let n = r.read_at(&mut out[pos..end], pos as u64).unwrap();
        assert!(n > 0, "short read at {pos}");
        pos += n;
    }
    let mut past = [0u8; 8];
    assert_eq!(r.read_at(&mut past, out.len() as u64).unwrap(), 0);
    out
}

/// `reads` random unaligned reads of up to `max_len` bytes (spanning blocks) equal
/// `expected`.
pub(crate) fn check_random_reads_with(
    r: &dyn ReadAt,
    expected: &[u8],
    reads: usize,
    max_len: u64,
    len_shift: u32,
) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..reads {
        xorshift(&mut x);
        let off = (x % expected.len() as u64) as usize;
        let len = ((x >> len_shift) % max_len) as usize + 1;
        let mut buf = vec![0u8; len];
        let n = r.read_at(&mut buf, off as u64).unwrap();
        let want = len.min(expected.len() - off);
        assert_eq!(n, want, "read of {len} at {off}");
        assert!(buf[..n] == expected[off..off + n], "bytes at {off}+{len}");
    }
}

/// 200 random reads of up to 3 MiB equal `expected`; reads at and past the end give 0.
pub(crate) fn check_random_reads(r: &dyn ReadAt, expected: &[u8]) {
    check_random_reads_with(r, expected, 200, 3 << 20, 40);
    let mut buf = [0u8; 8];
    assert_eq!(r.read_at(&mut buf, expected.len() as u64).unwrap(), 0);
    assert_eq!(r.read_at(&mut buf, u64::MAX).unwrap(), 0);
}

/// The field and offset of a [`FormatError::Invalid`]; panics on any other error.
pub(crate) fn invalid_field(e: &FormatError) -> (&'static str, u64) {
    match e {
        FormatError::Invalid { field, offset, .. } => (field, *offset),
        other => panic!("expected FormatError::Invalid, got {other:?}"),
    }
}
