//! Cross-checks the seekable container against stock `zstd` (the reference CLI).
//!
//! If `zstd` is missing the tests print a note and pass, unless `VESTIGE_REQUIRE_TOOLS=1`,
//! which makes a missing tool a failure (CI images that promise the tools set it).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use vestige_evidence::read_at::{FileReader, ReadAt};
use vestige_evidence::seekable::{
    FrameCompressor, SeekTable, SeekTableWriter, SeekableError, SeekableReader,
};

/// Whether `tool` runs; a missing tool fails the test only under `VESTIGE_REQUIRE_TOOLS=1`.
fn have_tool(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("VESTIGE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{tool} is required (VESTIGE_REQUIRE_TOOLS=1) but not runnable"
        );
        eprintln!("note: {tool} not found, skipping the stock-tool cross-check");
    }
    ok
}

/// A few MiB of text, zero runs and pseudo-random bytes (xorshift, deterministic).
fn mixed(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        match next() % 3 {
            0 => {
                for line in 0..200 {
                    writeln!(
                        out,
                        "line {line}: evidence item, sector {}",
                        next() % 1_000_000
                    )
                    .unwrap();
                }
            }
            1 => out.resize(out.len() + 64 * 1024, 0),
            _ => (0..8 * 1024).for_each(|_| out.extend_from_slice(&next().to_le_bytes())),
        }
    }
    out.truncate(len);
    out
}

/// Writes `source` as a container with `chunk`-byte frames (the last one short) to `path`.
fn write_container(path: &Path, source: &[u8], chunk: usize) {
    let mut compressor = FrameCompressor::new(3).unwrap();
    let mut table = SeekTableWriter::new(true);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut frame = Vec::new();
    for piece in source.chunks(chunk) {
        table.push(compressor.compress(piece, &mut frame).unwrap());
        file.write_all(&frame).unwrap();
    }
    file.write_all(&table.try_to_bytes().unwrap()).unwrap();
    file.into_inner().unwrap().sync_all().unwrap();
}

fn zstd(args: &[&str], path: &Path) -> std::process::Output {
    Command::new("zstd")
        .args(args)
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn seekable_stock_zstd_restores_the_raw_bytes() {
    if !have_tool("zstd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.zst");
    let source = mixed(5 * 1024 * 1024 + 12_345);
    write_container(&path, &source, 1 << 20);

    let out = zstd(&["-d", "-c", "-q"], &path);
    assert!(
        out.status.success(),
        "zstd -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == source,
        "zstd -d output differs from the source"
    );

    let out = zstd(&["-t", "-q"], &path);
    assert!(
        out.status.success(),
        "zstd -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `zstd -l` counts the data frames plus the skippable seek-table frame.
    let out = zstd(&["-lv"], &path);
    assert!(
        out.status.success(),
        "zstd -l: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("Zstandard Frames: 6"), "{listing}");
    assert!(listing.contains("Skippable Frames: 1"), "{listing}");

    // And our reader agrees with the source.
    let reader = SeekableReader::open(FileReader::open(&path).unwrap()).unwrap();
    assert_eq!(reader.size(), source.len() as u64);
    assert_eq!(reader.table().frame_count(), 6);
    let mut all = vec![0u8; source.len()];
    reader.read_exact_at(&mut all, 0).unwrap();
    assert!(all == source);
}

#[test]
fn seekable_stock_damage_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.zst");
    let source = mixed(3 * 1024 * 1024);
    write_container(&path, &source, 1 << 20);
    let good = std::fs::read(&path).unwrap();

    // Truncated by one byte: the footer no longer ends in the seekable magic.
    let truncated = good[..good.len() - 1].to_vec();
    let err = SeekTable::read(&truncated).unwrap_err();
    assert!(
        matches!(err, SeekableError::BadSeekableMagic { offset, .. } if offset == truncated.len() as u64 - 4),
        "{err}"
    );

    // A flipped byte inside frame 1: that frame fails, naming itself; frame 0 still reads.
    let table = SeekTable::read(&good).unwrap();
    let f1 = table.frame(1).unwrap();
    let mut flipped = good.clone();
    let at = usize::try_from(f1.compressed_offset).unwrap() + f1.compressed_size as usize / 2;
    flipped[at] ^= 0x01;
    let reader = SeekableReader::open(flipped.clone()).unwrap();
    let mut buf = vec![0u8; 4096];
    reader.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf[..] == source[..4096]);
    let err = reader
        .read_exact_at(&mut buf, f1.decompressed_offset)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<SeekableError>());
    assert!(
        matches!(
            inner,
            Some(
                SeekableError::Decompress { index: 1, offset, .. }
                    | SeekableError::ChecksumMismatch { index: 1, offset, .. }
            ) if *offset == f1.compressed_offset
        ),
        "{err}"
    );

    // Stock zstd agrees that both files are damaged.
    if have_tool("zstd") {
        let bad = dir.path().join("flipped.zst");
        std::fs::write(&bad, &flipped).unwrap();
        assert!(!zstd(&["-t", "-q"], &bad).status.success());
        // A one-byte truncation cuts the skippable frame, which `zstd -t` also rejects.
        std::fs::write(&bad, &truncated).unwrap();
        assert!(!zstd(&["-t", "-q"], &bad).status.success());
    }
}

/// Throughput sanity check: prints MiB/s, asserts nothing about time.
#[test]
fn seekable_throughput_report() {
    let source = mixed(16 * 1024 * 1024);
    let chunk = 4 << 20;
    let start = Instant::now();
    let mut compressor = FrameCompressor::new(3).unwrap();
    let mut table = SeekTableWriter::new(true);
    let mut container = Vec::new();
    let mut frame = Vec::new();
    for piece in source.chunks(chunk) {
        table.push(compressor.compress(piece, &mut frame).unwrap());
        container.extend_from_slice(&frame);
    }
    container.extend_from_slice(&table.to_bytes());
    let compress_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let reader = SeekableReader::open(container.as_slice()).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    while at < reader.size() {
        at += reader.read_at(&mut buf, at).unwrap() as u64;
    }
    let read_s = start.elapsed().as_secs_f64();
    assert_eq!(at, source.len() as u64);
    let mib = source.len() as f64 / (1024.0 * 1024.0);
    eprintln!(
        "seekable: {mib:.0} MiB, ratio {:.2}, compress {:.0} MiB/s, sequential 64 KiB reads {:.0} MiB/s (test profile)",
        source.len() as f64 / container.len() as f64,
        mib / compress_s,
        mib / read_s
    );
}
