//! Tests of the EWF reader against images made by libewf's `ewfacquire` (checked with
//! `ewfverify` and `ewfexport`), and hostile variants of them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::panic
)]

use super::*;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::process::Command;

/// Whether the libewf tools are here; if not, a test is skipped unless
/// `VESTIGE_REQUIRE_TOOLS=1`.
fn tools_present() -> bool {
    crate::test_support::have_with("ewfacquire", "-V")
}

/// A deterministic source: pseudo-random runs and zero runs, `len` bytes.
fn source_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut x = seed | 1;
    for (block, chunk) in out.chunks_mut(48 * 1024).enumerate() {
        if block % 3 == 1 {
            continue; // zeros
        }
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = if block % 3 == 2 {
                (x as u8) & 0x0f
            } else {
                x as u8
            };
        }
    }
    out
}

/// Runs `ewfacquire` on `source` into `dir/name.E01…`, returns the first segment.
fn acquire(dir: &Path, source: &Path, name: &str, compression: &str, segment: &str) -> PathBuf {
    let target = dir.join(name);
    let out = Command::new("ewfacquire")
        .args(["-u", "-q", "-t"])
        .arg(&target)
        .args([
            "-c",
            compression,
            "-S",
            segment,
            "-C",
            "case-42",
            "-e",
            "examiner-x",
        ])
        .args(["-E", "1", "-D", "desc-y", "-N", "notes-z", "-d", "sha1"])
        .arg(source)
        .output()
        .expect("run ewfacquire");
    assert!(
        out.status.success(),
        "ewfacquire failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.with_extension("E01")
}

fn ewfverify_ok(first: &Path) {
    let out = Command::new("ewfverify")
        .args(["-q"])
        .arg(first)
        .output()
        .expect("run ewfverify");
    assert!(
        out.status.success(),
        "ewfverify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    source: Vec<u8>,
    first: PathBuf,
}

/// A 3 MiB + 5 sectors source (the last chunk is short) acquired with `compression`.
fn fixture(compression: &str) -> Option<Fixture> {
    if !tools_present() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let source = source_bytes(3 * 1024 * 1024 + 5 * 512, 0x5eed);
    let src_path = dir.join("source.raw");
    std::fs::write(&src_path, &source).unwrap();
    let first = acquire(&dir, &src_path, "img", compression, "1MiB");
    Some(Fixture {
        _dir: tmp,
        dir,
        source,
        first,
    })
}

fn read_all(img: &Ewf, buf_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; buf_len];
    loop {
        let n = img.read_at(&mut buf, out.len() as u64).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn check_image(fx: &Fixture, min_segments: usize) {
    ewfverify_ok(&fx.first);
    let img = Ewf::open(&fx.first).unwrap();
    let info = img.info();
    assert_eq!(info.format, "e01");
    assert_eq!(info.virtual_size_bytes, fx.source.len() as u64);
    assert_eq!(img.size(), fx.source.len() as u64);
    assert!(
        info.files.len() >= min_segments,
        "{} segments: {:?}",
        info.files.len(),
        info.files
    );
    // Every byte, with an odd buffer size and with a large one.
    let want = Sha256::digest(&fx.source);
    assert_eq!(Sha256::digest(read_all(&img, 1 << 20)), want);
    assert_eq!(Sha256::digest(read_all(&img, 12_345)), want);
    // Stored hashes = the source's.
    assert_eq!(
        info.stored_hashes.get("md5").map(String::as_str),
        Some(hex::encode(Md5::digest(&fx.source)).as_str())
    );
    assert_eq!(
        info.stored_hashes.get("sha1").map(String::as_str),
        Some(hex::encode(Sha1::digest(&fx.source)).as_str())
    );
    for note in [
        "case number: case-42",
        "examiner: examiner-x",
        "description: desc-y",
        "notes: notes-z",
        "evidence number: 1",
    ] {
        assert!(
            info.notes.iter().any(|n| n == note),
            "{note} not in {:?}",
            info.notes
        );
    }
    assert!(
        info.notes.iter().any(|n| n.starts_with("acquired: 20")),
        "{:?}",
        info.notes
    );
    assert!(info
        .notes
        .iter()
        .any(|n| n.starts_with("software version: ")));
    // Random reads: unaligned, spanning chunk and segment boundaries, and at the end.
    let len = fx.source.len() as u64;
    let mut x: u64 = 0x1234_5678;
    let mut cases: Vec<(u64, usize)> = vec![
        (0, 1),
        (32_767, 2),
        (32_768 * 3 - 5, 70_000),
        (len - 1, 10),
        (len - 700, 700),
        (len, 5),
        (len + 100, 5),
        (u64::MAX - 3, 5),
    ];
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cases.push((x % len, (x >> 40) as usize % 200_000));
    }
    for (off, n) in cases {
        let mut buf = vec![0xa5u8; n];
        let got = img.read_at(&mut buf, off).unwrap();
        let start = usize::try_from(off)
            .unwrap_or(usize::MAX)
            .min(fx.source.len());
        let end = start.saturating_add(n).min(fx.source.len());
        assert_eq!(got, end - start, "read of {n} at {off}");
        assert!(
            buf[..got] == fx.source[start..end],
            "bytes of the read of {n} at {off}"
        );
    }
}

#[test]
fn deflate_fast_multi_segment_reads_as_source() {
    let Some(fx) = fixture("deflate:fast") else {
        return;
    };
    check_image(&fx, 2);
    let info = Ewf::open(&fx.first).unwrap().info();
    assert!(
        info.notes.iter().any(|n| n == "compression level: fast"),
        "{:?}",
        info.notes
    );
}

#[test]
fn uncompressed_reads_as_source() {
    let Some(fx) = fixture("none:none") else {
        return;
    };
    check_image(&fx, 3);
}

#[test]
fn best_compression_reads_as_source() {
    let Some(fx) = fixture("deflate:best") else {
        return;
    };
    check_image(&fx, 1);
}

#[test]
fn empty_block_compression_reads_as_source() {
    let Some(fx) = fixture("empty-block") else {
        return;
    };
    check_image(&fx, 2);
}

#[test]
fn dispatch_and_later_segment_name_open_the_whole_image() {
    let Some(fx) = fixture("deflate:fast") else {
        return;
    };
    let e02 = fx.first.with_extension("E02");
    let img = Ewf::open(&e02).unwrap();
    assert_eq!(img.info().files.first(), Some(&fx.first));
    let via_lib = crate::open(&fx.first).unwrap();
    assert_eq!(via_lib.info().format, "e01");
    let mut buf = vec![0u8; 4096];
    via_lib.read_exact_at(&mut buf, 1 << 20).unwrap();
    assert!(buf == fx.source[1 << 20..(1 << 20) + 4096]);
}

#[test]
fn matches_ewfexport_raw() {
    let Some(fx) = fixture("deflate:fast") else {
        return;
    };
    let out = fx.dir.join("export");
    let st = Command::new("ewfexport")
        .args(["-u", "-q", "-f", "raw", "-t"])
        .arg(&out)
        .arg(&fx.first)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let exported = std::fs::read(out.with_extension("raw")).unwrap();
    let img = Ewf::open(&fx.first).unwrap();
    assert!(read_all(&img, 1 << 20) == exported);
}

/// Section descriptors of a segment file: (offset, type, next, size).
fn sections(bytes: &[u8]) -> Vec<(usize, String, u64, u64)> {
    let mut out = Vec::new();
    let mut off = 13usize;
    loop {
        let d = &bytes[off..off + 76];
        let kind = String::from_utf8_lossy(&d[..16])
            .trim_end_matches('\0')
            .to_string();
        let next = le_u64(d, 16);
        let size = le_u64(d, 24);
        out.push((off, kind.clone(), next, size));
        if kind == "done" || kind == "next" {
            return out;
        }
        off = usize::try_from(next).unwrap();
    }
}

fn fix_descriptor_checksum(bytes: &mut [u8], off: usize) {
    let sum = adler32(&bytes[off..off + 72]);
    bytes[off + 72..off + 76].copy_from_slice(&sum.to_le_bytes());
}

fn fix_table_entries_checksum(bytes: &mut [u8], table_off: usize) {
    let data = table_off + 76;
    let count = le_u32(bytes, data) as usize;
    let entries = data + 24;
    let sum = adler32(&bytes[entries..entries + 4 * count]);
    bytes[entries + 4 * count..entries + 4 * count + 4].copy_from_slice(&sum.to_le_bytes());
}

fn expect_invalid(result: Result<Ewf, FormatError>, field_part: &str) -> FormatError {
    match result {
        Err(e @ FormatError::Invalid { .. }) => {
            let FormatError::Invalid { field, .. } = &e else {
                unreachable!()
            };
            assert!(
                field.contains(field_part),
                "field {field}, expected {field_part}: {e}"
            );
            e
        }
        Err(e) => panic!("expected Invalid ({field_part}), got {e}"),
        Ok(_) => panic!("expected Invalid ({field_part}), opened"),
    }
}

/// Reads every byte; the first error.
fn read_error(img: &Ewf) -> io::Error {
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        match img.read_at(&mut buf, off) {
            Ok(0) => panic!("read every byte without an error"),
            Ok(n) => off += n as u64,
            Err(e) => return e,
        }
    }
}

#[test]
fn hostile_table_entry_past_segment() {
    let Some(fx) = fixture("deflate:fast") else {
        return;
    };
    let mut bytes = std::fs::read(&fx.first).unwrap();
    let (toff, ..) = sections(&bytes)
        .into_iter()
        .find(|s| s.1 == "table")
        .unwrap();
    let entry = toff + 76 + 24 + 4 * 5;
    let flag = le_u32(&bytes, entry) & 0x8000_0000;
    bytes[entry..entry + 4].copy_from_slice(&(flag | 0x7fff_0000).to_le_bytes());
    fix_table_entries_checksum(&mut bytes, toff);
    std::fs::write(&fx.first, &bytes).unwrap();
    let img = Ewf::open(&fx.first).unwrap();
    let err = read_error(&img);
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let msg = err.to_string();
    assert!(
        msg.contains("ewf table.entry") && msg.contains("chunk 5"),
        "{msg}"
    );
    assert!(msg.contains(&format!("byte {entry}")), "{msg}");
}

#[test]
fn hostile_section_next_backwards() {
    let Some(fx) = fixture("deflate:fast") else {
        return;
    };
    let mut bytes = std::fs::read(&fx.first).unwrap();
    let secs = sections(&bytes);
    let (voff, ..) = secs.iter().find(|s| s.1 == "volume").cloned().unwrap();
    bytes[voff + 16..voff + 24].copy_from_slice(&13u64.to_le_bytes());
    fix_descriptor_checksum(&mut bytes, voff);
    std::fs::write(&fx.first, &bytes).unwrap();
    let err = expect_invalid(Ewf::open(&fx.first), "next");
    let FormatError::Invalid { offset, .. } = err else {
        unreachable!()
    };
    assert_eq!(offset, voff as u64 + 16);
}

#[test]
fn hostile_descriptor_checksum_and_truncation() {
    let Some(fx) = fixture("deflate:fast") else {
        return;
    };
    let good = std::fs::read(&fx.first).unwrap();
    let mut bytes = good.clone();
    bytes[13 + 30] ^= 1;
    std::fs::write(&fx.first, &bytes).unwrap();
    expect_invalid(Ewf::open(&fx.first), "checksum");
    for cut in [5usize, 13, 50, 400, good.len() / 2, good.len() - 3] {
        std::fs::write(&fx.first, &good[..cut]).unwrap();
        assert!(
            matches!(Ewf::open(&fx.first), Err(FormatError::Invalid { .. })),
            "cut at {cut}"
        );
    }
}

#[test]
fn hostile_missing_middle_segment() {
    let Some(fx) = fixture("deflate:fast") else {
        return;
    };
    let e02 = fx.first.with_extension("E02");
    std::fs::remove_file(&e02).unwrap();
    let err = expect_invalid(Ewf::open(&fx.first), "segment file");
    assert!(err.to_string().contains("img.E02"), "{err}");
}

#[test]
fn hostile_segment_number_out_of_order() {
    let Some(fx) = fixture("none:none") else {
        return;
    };
    let e02 = fx.first.with_extension("E02");
    let e03 = fx.first.with_extension("E03");
    let tmp = fx.dir.join("swap");
    std::fs::rename(&e02, &tmp).unwrap();
    std::fs::rename(&e03, &e02).unwrap();
    std::fs::rename(&tmp, &e03).unwrap();
    expect_invalid(Ewf::open(&fx.first), "segment_number");
}

/// The first chunk of the first table whose entry has (or lacks) the compressed flag:
/// (table offset, chunk index in it, its data offset).
fn find_chunk(bytes: &[u8], compressed: bool) -> (usize, usize, usize) {
    let (toff, ..) = sections(bytes)
        .into_iter()
        .find(|s| s.1 == "table")
        .unwrap();
    let data = toff + 76;
    let count = le_u32(bytes, data) as usize;
    let base = le_u64(bytes, data + 8) as usize;
    for i in 0..count {
        let e = le_u32(bytes, data + 24 + 4 * i);
        if (e & 0x8000_0000 != 0) == compressed {
            return (toff, i, base + (e & 0x7fff_ffff) as usize);
        }
    }
    panic!("no such chunk");
}

#[test]
fn hostile_corrupted_compressed_chunk() {
    let Some(fx) = fixture("deflate:fast") else {
        return;
    };
    let mut bytes = std::fs::read(&fx.first).unwrap();
    let (_, chunk, at) = find_chunk(&bytes, true);
    for b in &mut bytes[at + 2..at + 40] {
        *b ^= 0x5a;
    }
    std::fs::write(&fx.first, &bytes).unwrap();
    let img = Ewf::open(&fx.first).unwrap();
    let err = read_error(&img);
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("chunk {chunk} ")) && msg.contains("img.E01"),
        "{msg}"
    );
    // The same through a small read of that chunk (the cached path).
    let mut small = [0u8; 10];
    assert!(img.read_at(&mut small, chunk as u64 * 32_768 + 3).is_err());
}

#[test]
fn hostile_corrupted_uncompressed_chunk() {
    let Some(fx) = fixture("none:none") else {
        return;
    };
    let mut bytes = std::fs::read(&fx.first).unwrap();
    let (_, chunk, at) = find_chunk(&bytes, false);
    bytes[at + 100] ^= 1;
    std::fs::write(&fx.first, &bytes).unwrap();
    let img = Ewf::open(&fx.first).unwrap();
    let msg = read_error(&img).to_string();
    assert!(
        msg.contains("ewf chunk.checksum") && msg.contains(&format!("chunk {chunk} ")),
        "{msg}"
    );
}

#[test]
fn hostile_absurd_volume_values() {
    let Some(fx) = fixture("deflate:fast") else {
        return;
    };
    let good = std::fs::read(&fx.first).unwrap();
    let (voff, ..) = sections(&good)
        .into_iter()
        .find(|s| s.1 == "volume")
        .unwrap();
    let data = voff + 76;
    let patch = |at: usize, value: &[u8]| {
        let mut b = good.clone();
        b[data + at..data + at + value.len()].copy_from_slice(value);
        let sum = adler32(&b[data..data + 1048]);
        b[data + 1048..data + 1052].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(&fx.first, &b).unwrap();
    };
    patch(8, &(1u32 << 20).to_le_bytes()); // 2^20 sectors per chunk: 512 MiB chunks
    expect_invalid(Ewf::open(&fx.first), "sectors_per_chunk");
    patch(8, &0u32.to_le_bytes());
    expect_invalid(Ewf::open(&fx.first), "sectors_per_chunk");
    patch(16, &u64::MAX.to_le_bytes()); // sector count
    expect_invalid(Ewf::open(&fx.first), "sector_count");
    patch(4, &1_000_000u32.to_le_bytes()); // chunk count
    expect_invalid(Ewf::open(&fx.first), "chunk_count");
}

#[test]
fn hostile_table_count_larger_than_section() {
    let Some(fx) = fixture("deflate:fast") else {
        return;
    };
    let mut bytes = std::fs::read(&fx.first).unwrap();
    let (toff, ..) = sections(&bytes)
        .into_iter()
        .find(|s| s.1 == "table")
        .unwrap();
    let data = toff + 76;
    bytes[data..data + 4].copy_from_slice(&0x4000_0000u32.to_le_bytes());
    let sum = adler32(&bytes[data..data + 20]);
    bytes[data + 20..data + 24].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&fx.first, &bytes).unwrap();
    expect_invalid(Ewf::open(&fx.first), "entry_count");
}

#[test]
fn logical_and_ewf2_are_unsupported() {
    let tmp = tempfile::tempdir().unwrap();
    for (sig, name) in [(LVF_SIGNATURE, "x.L01"), (EVF2_SIGNATURE, "x.Ex01")] {
        let p = tmp.path().join(name);
        let mut b = sig.to_vec();
        b.extend_from_slice(&[1, 1, 0, 0, 0]);
        b.resize(200, 0);
        std::fs::write(&p, &b).unwrap();
        assert!(probe(&b));
        assert!(matches!(
            Ewf::open(&p),
            Err(FormatError::Unsupported { .. })
        ));
    }
}

#[test]
fn adler32_known_values() {
    assert_eq!(adler32(b""), 1);
    assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    let big = vec![0xffu8; 100_000];
    // Reference from zlib's definition, computed slowly.
    let (mut a, mut b) = (1u64, 0u64);
    for &x in &big {
        a = (a + u64::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    assert_eq!(u64::from(adler32(&big)), (b << 16) | a);
}

#[test]
fn segment_names_follow_libewf() {
    assert_eq!(segment_extension('E', 1).as_deref(), Some("E01"));
    assert_eq!(segment_extension('E', 99).as_deref(), Some("E99"));
    assert_eq!(segment_extension('E', 100).as_deref(), Some("EAA"));
    assert_eq!(segment_extension('E', 101).as_deref(), Some("EAB"));
    assert_eq!(segment_extension('E', 126).as_deref(), Some("EBA"));
    assert_eq!(segment_extension('E', 775).as_deref(), Some("EZZ"));
    assert_eq!(segment_extension('E', 776).as_deref(), Some("FAA"));
    assert_eq!(segment_extension('e', 100).as_deref(), Some("eaa"));
    assert_eq!(segment_extension('E', MAX_SEGMENTS).as_deref(), Some("ZZZ"));
    assert_eq!(segment_extension('E', MAX_SEGMENTS + 1), None);
    assert_eq!(segment_extension('E', 0), None);
    assert_eq!(
        segment_naming(Path::new("/a/b.E07")),
        Some((PathBuf::from("/a/b"), 'E'))
    );
    assert_eq!(segment_naming(Path::new("/a/b.raw")), None);
}

#[test]
fn header2_dates_are_utc() {
    assert_eq!(
        unix_to_rfc3339("0").as_deref(),
        Some("1970-01-01T00:00:00Z")
    );
    assert_eq!(
        unix_to_rfc3339("1795649067").as_deref(),
        Some("2026-11-25T23:24:27Z")
    );
}

/// A 64 MiB image: full read through this reader vs `ewfexport -f raw`.
/// `cargo test -p vestige-formats --release ewf::tests::bench_full_read -- --ignored --nocapture`
#[test]
#[ignore = "benchmark"]
fn bench_full_read() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("source.raw");
    std::fs::write(&src, source_bytes(64 << 20, 7)).unwrap();
    let first = acquire(tmp.path(), &src, "big", "deflate:fast", "1.4GiB");
    let t = std::time::Instant::now();
    let img = Ewf::open(&first).unwrap();
    let ours = Sha256::digest(read_all(&img, 4 << 20));
    let ours_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let st = Command::new("ewfexport")
        .args(["-u", "-q", "-f", "raw", "-t"])
        .arg(tmp.path().join("out"))
        .arg(&first)
        .output()
        .unwrap();
    assert!(st.status.success());
    let theirs_s = t.elapsed().as_secs_f64();
    let exported = std::fs::read(tmp.path().join("out.raw")).unwrap();
    assert_eq!(Sha256::digest(exported), ours);
    eprintln!("64 MiB E01 full read: vestige {ours_s:.3}s, ewfexport {theirs_s:.3}s");
}

/// Every EWF-E01/S01 flavour `ewfacquire` writes reads back as the source.
#[test]
fn all_ewfacquire_formats_read_as_source() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let source = source_bytes(1024 * 1024 + 3 * 512, 99);
    let src = tmp.path().join("source.raw");
    std::fs::write(&src, &source).unwrap();
    let want = Sha256::digest(&source);
    for format in [
        "ewf", "smart", "ftk", "encase2", "encase3", "encase4", "encase5", "encase6", "encase7",
        "linen5", "linen6", "linen7",
    ] {
        let target = tmp.path().join(format);
        let out = Command::new("ewfacquire")
            .args(["-u", "-q", "-c", "deflate:fast", "-f", format, "-t"])
            .arg(&target)
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = ["E01", "e01", "s01"]
            .iter()
            .map(|ext| target.with_extension(ext))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{format}: no first segment"));
        let img = Ewf::open(&first).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(img.size(), source.len() as u64, "{format}");
        assert_eq!(Sha256::digest(read_all(&img, 100_000)), want, "{format}");
        assert_eq!(
            img.info().stored_hashes.get("md5").map(String::as_str),
            Some(hex::encode(Md5::digest(&source)).as_str()),
            "{format}"
        );
    }
}

/// The fuzz seeds (made by `ewfacquire`, see the report of issue 7) open, and read back to
/// the MD5 stored in them.
#[test]
fn fuzz_seeds_read_to_their_stored_md5() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/image_ewf");
    let Ok(entries) = std::fs::read_dir(&seeds) else {
        eprintln!("no seeds at {}: skipped", seeds.display());
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        // Copied under the fuzz target's name, as a single segment.
        let copy = tmp.path().join("seed.E01");
        std::fs::copy(&path, &copy).unwrap();
        let img = Ewf::open(&copy).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let md5 = hex::encode(Md5::digest(read_all(&img, 50_000)));
        assert_eq!(
            img.info().stored_hashes.get("md5"),
            Some(&md5),
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 4);
}

/// Flipping bytes all over a real image gives errors, never a panic, and reads that
/// succeed return exactly the bytes asked for.
#[test]
fn byte_flips_never_panic() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds/image_ewf/encase6-deflate-fast.E01");
    let Ok(good) = std::fs::read(&seed) else {
        eprintln!("no seed: skipped");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("flip.E01");
    for at in (0..good.len()).step_by(37) {
        let mut bytes = good.clone();
        bytes[at] ^= 0x81;
        std::fs::write(&path, &bytes).unwrap();
        let Ok(img) = Ewf::open(&path) else { continue };
        let mut buf = vec![0u8; 300_000];
        for off in [0, 77_777, img.size().saturating_sub(5)] {
            if let Ok(n) = img.read_at(&mut buf, off) {
                assert_eq!(
                    n as u64,
                    img.size().saturating_sub(off).min(buf.len() as u64)
                );
            }
        }
    }
}
