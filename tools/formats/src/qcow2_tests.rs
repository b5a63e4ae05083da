//! qcow2 against images made by qemu-img and qemu-io, and hostile variants of them.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::panic
)]

use super::*;
use crate::test_support::{have, sha};
use std::process::Command;

/// Bytes of the test source: 4 MiB and a bit (a multiple of 512, not of any cluster).
const SOURCE_BYTES: usize = (4 << 20) + 12800;

/// Runs a command in `dir`, failing the test on error.
fn run(dir: &Path, args: &[&str]) {
    crate::test_support::run(Command::new(args[0]).args(&args[1..]).current_dir(dir));
}

/// `qemu-img convert -f raw -O qcow2 FROM TO` in `dir`.
fn to_qcow2(dir: &Path, from: &str, to: &str) {
    run(
        dir,
        &["qemu-img", "convert", "-f", "raw", "-O", "qcow2", from, to],
    );
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Pseudo-random data, zero runs and compressible text, deterministic.
fn source(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = vec![0u8; len];
    for (i, block) in out.chunks_mut(48 * 1024).enumerate() {
        match i % 5 {
            1 => {} // zeros
            2 => {
                for (j, b) in block.iter_mut().enumerate() {
                    *b = b"vestige qcow2 test text "[j % 24];
                }
            }
            3 => {
                let half = block.len() / 2;
                for b in &mut block[half..] {
                    *b = rng.next() as u8;
                }
            }
            _ => {
                for b in block.iter_mut() {
                    *b = rng.next() as u8;
                }
            }
        }
    }
    out
}

/// Reads the whole virtual disk in odd-sized chunks.
fn read_all(img: &dyn ReadAt) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; (1 << 20) + 4099];
    loop {
        let n = img.read_at(&mut buf, out.len() as u64).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out.len() as u64, img.size());
    out
}

/// Random unaligned reads (spanning clusters) equal `raw`; the end reads short, then 0.
fn check_random(img: &dyn ReadAt, raw: &[u8]) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let size = raw.len() as u64;
    for _ in 0..300 {
        let off = rng.next() % size;
        let len = (rng.next() % 200_000) as usize + 1;
        let mut buf = vec![0xeeu8; len];
        let n = img.read_at(&mut buf, off).unwrap();
        let end = (off as usize + len).min(raw.len());
        assert_eq!(n, end - off as usize, "read at {off} of {len}");
        assert_eq!(&buf[..n], &raw[off as usize..end], "read at {off} of {len}");
    }
    let mut buf = [0u8; 100];
    assert_eq!(img.read_at(&mut buf, size - 1).unwrap(), 1);
    assert_eq!(img.read_at(&mut buf, size).unwrap(), 0);
    assert_eq!(img.read_at(&mut buf, u64::MAX).unwrap(), 0);
}

/// Converts the source to qcow2 with `opts` and checks every byte and random reads.
fn roundtrip(opts: &[&str], variant: &str) -> Option<Qcow2> {
    if !have("qemu-img") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(SOURCE_BYTES, 0x1234_5678);
    std::fs::write(dir.path().join("src.raw"), &src).unwrap();
    let mut args = vec!["qemu-img", "convert", "-f", "raw", "-O", "qcow2"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["src.raw", "img.qcow2"]);
    run(dir.path(), &args);
    let img = Qcow2::open(&dir.path().join("img.qcow2")).unwrap();
    let info = img.info();
    assert_eq!(info.format, "qcow2");
    assert_eq!(info.variant.as_deref(), Some(variant));
    assert_eq!(info.virtual_size_bytes, SOURCE_BYTES as u64);
    assert_eq!(sha(&read_all(&img)), sha(&src));
    check_random(&img, &src);
    Some(img)
}

#[test]
fn qcow2_default_v3() {
    roundtrip(&[], "v3");
}

#[test]
fn qcow2_compat_v2() {
    roundtrip(&["-o", "compat=0.10"], "v2");
}

#[test]
fn qcow2_compressed_zlib() {
    roundtrip(&["-c", "-o", "compression_type=zlib"], "v3");
}

#[test]
fn qcow2_compressed_zstd() {
    roundtrip(&["-c", "-o", "compression_type=zstd"], "v3, zstd");
}

#[test]
fn qcow2_compressed_v2_4k_clusters() {
    roundtrip(&["-c", "-o", "compat=0.10,cluster_size=4k"], "v2");
}

#[test]
fn qcow2_cluster_4k() {
    roundtrip(&["-o", "cluster_size=4k"], "v3");
}

#[test]
fn qcow2_cluster_2m() {
    roundtrip(&["-o", "cluster_size=2M"], "v3");
}

#[test]
fn qcow2_compressed_zstd_2m() {
    roundtrip(
        &["-c", "-o", "cluster_size=2M,compression_type=zstd"],
        "v3, zstd",
    );
}

#[test]
fn qcow2_extended_l2() {
    roundtrip(&["-o", "extended_l2=on"], "v3, extended L2");
}

/// Compares `img` with `qemu-img convert -O raw` of `name` in `dir`.
fn check_against_qemu(dir: &Path, name: &str, img: &dyn ReadAt, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["qemu-img", "convert", "-O", "raw"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[name, "out.raw"]);
    run(dir, &args);
    let raw = std::fs::read(dir.join("out.raw")).unwrap();
    assert_eq!(sha(&read_all(img)), sha(&raw));
    check_random(img, &raw);
    raw
}

#[test]
fn qcow2_backing_chain_matches_qemu() {
    if !have("qemu-img") || !have("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("src.raw"), source(SOURCE_BYTES, 7)).unwrap();
    to_qcow2(d, "src.raw", "base.qcow2");
    // Larger than its backing file: the rest reads as zeros.
    run(
        d,
        &[
            "qemu-img",
            "create",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "top.qcow2",
            "6M",
        ],
    );
    run(d, &["qemu-io", "-c", "write -P 0xab 1M 64k", "top.qcow2"]);
    run(
        d,
        &["qemu-io", "-c", "write -P 0xcd 3001k 10k", "top.qcow2"],
    );
    run(d, &["qemu-io", "-c", "write -z 2M 64k", "top.qcow2"]);
    run(d, &["qemu-io", "-c", "write -P 0x11 5M 4k", "top.qcow2"]);
    let img = Qcow2::open(&d.join("top.qcow2")).unwrap();
    let info = img.info();
    assert_eq!(info.backing.as_ref().unwrap().format, "qcow2");
    assert!(
        info.notes.iter().any(|n| n.contains("base.qcow2")),
        "{:?}",
        info.notes
    );
    let raw = check_against_qemu(d, "top.qcow2", &img, &[]);
    assert!(raw[1 << 20..(1 << 20) + 65536].iter().all(|&b| b == 0xab));
    // Opened through the crate's dispatcher, too.
    let boxed = crate::open(&d.join("top.qcow2")).unwrap();
    assert_eq!(sha(&read_all(&*boxed)), sha(&raw));
}

/// A raw backing disk whose first bytes are a qcow2 header (a disk that holds an image,
/// or an attacker's bait): declared raw, it must be read as raw, as QEMU reads it; not
/// declared, it is recognised by content and the note says so.
#[test]
fn qcow2_declared_backing_format_decides_how_the_backing_file_is_read() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("src.raw"), source(1 << 20, 9)).unwrap();
    to_qcow2(d, "src.raw", "inner.qcow2");
    // The bait: a raw disk of 2 MiB starting with inner.qcow2's bytes.
    let mut bait = std::fs::read(d.join("inner.qcow2")).unwrap();
    bait.resize(2 << 20, 0x5a);
    std::fs::write(d.join("bait.raw"), &bait).unwrap();
    run(
        d,
        &[
            "qemu-img",
            "create",
            "-f",
            "qcow2",
            "-b",
            "bait.raw",
            "-F",
            "raw",
            "top.qcow2",
            "2M",
        ],
    );
    let img = Qcow2::open(&d.join("top.qcow2")).unwrap();
    let info = img.info();
    assert_eq!(info.backing.as_ref().unwrap().format, "raw", "{info:?}");
    assert!(
        info.notes
            .iter()
            .any(|n| n.contains("format raw, as the header declares")),
        "{:?}",
        info.notes
    );
    let raw = check_against_qemu(d, "top.qcow2", &img, &[]);
    assert_eq!(raw, bait);

    // A declared format the content does not match (refused, as QEMU refuses it), and a
    // format name we do not read.
    for (format, name) in [("vmdk", "wrong.qcow2"), ("nbd", "odd.qcow2")] {
        let args = ["-b", "src.raw", "-F", format, "-u", name, "1M"];
        run(
            d,
            &[&["qemu-img", "create", "-f", "qcow2"][..], &args].concat(),
        );
    }
    assert!(Qcow2::open(&d.join("wrong.qcow2")).is_err());
    let e = Qcow2::open(&d.join("odd.qcow2")).unwrap_err();
    assert!(e.to_string().contains("\"nbd\""), "{e}");
}

#[test]
fn qcow2_extended_l2_subclusters_over_backing() {
    if !have("qemu-img") || !have("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("src.raw"), source(SOURCE_BYTES, 9)).unwrap();
    to_qcow2(d, "src.raw", "base.qcow2");
    run(
        d,
        &[
            "qemu-img",
            "create",
            "-f",
            "qcow2",
            "-o",
            "extended_l2=on",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "top.qcow2",
        ],
    );
    // 2 KiB subclusters: partial writes leave the rest of each cluster to the backing file.
    run(d, &["qemu-io", "-c", "write -P 0xab 1M 4k", "top.qcow2"]);
    run(d, &["qemu-io", "-c", "write -P 0xcd 1100k 6k", "top.qcow2"]);
    run(d, &["qemu-io", "-c", "write -z 2050k 8k", "top.qcow2"]);
    run(d, &["qemu-io", "-c", "discard 3M 64k", "top.qcow2"]);
    let img = Qcow2::open(&d.join("top.qcow2")).unwrap();
    assert_eq!(img.info().variant.as_deref(), Some("v3, extended L2"));
    check_against_qemu(d, "top.qcow2", &img, &[]);
}

#[test]
fn qcow2_internal_snapshot() {
    if !have("qemu-img") || !have("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = source(SOURCE_BYTES, 11);
    std::fs::write(d.join("src.raw"), &src).unwrap();
    to_qcow2(d, "src.raw", "img.qcow2");
    run(d, &["qemu-img", "snapshot", "-c", "snap1", "img.qcow2"]);
    run(
        d,
        &["qemu-io", "-c", "write -P 0x5a 512k 128k", "img.qcow2"],
    );
    let img = Qcow2::open(&d.join("img.qcow2")).unwrap();
    let info = img.info();
    assert_eq!(info.snapshots.len(), 1);
    let s = &info.snapshots[0];
    assert_eq!((s.id.as_str(), s.name.as_str()), ("1", "snap1"));
    assert_eq!(s.virtual_size_bytes, SOURCE_BYTES as u64);
    assert!(s.taken_utc.as_ref().unwrap().starts_with("20"), "{s:?}");
    let current = check_against_qemu(d, "img.qcow2", &img, &[]);
    assert_ne!(sha(&current), sha(&src));

    for key in ["snap1", "1"] {
        let snap = Qcow2::open_snapshot(&d.join("img.qcow2"), key).unwrap();
        assert_eq!(sha(&read_all(&snap)), sha(&src));
        check_random(&snap, &src);
    }
    check_against_qemu(
        d,
        "img.qcow2",
        &Qcow2::open_snapshot(&d.join("img.qcow2"), "snap1").unwrap(),
        &["-l", "snapshot.name=snap1"],
    );
    assert!(matches!(
        Qcow2::open_snapshot(&d.join("img.qcow2"), "nope"),
        Err(FormatError::Unsupported { .. })
    ));
}

#[test]
fn qcow2_dispatch_and_probe() {
    assert!(probe(b"QFI\xfb\0\0\0\x03"));
    assert!(!probe(b"QFI"));
    assert!(!probe(b"KDMV"));
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
}

// ---- hostile variants ----

/// A small image (64 KiB clusters), its bytes, and its dir.
fn base_image(opts: &[&str]) -> Option<(tempfile::TempDir, Vec<u8>)> {
    if !have("qemu-img") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("src.raw"), source(SOURCE_BYTES, 3)).unwrap();
    let mut args = vec!["qemu-img", "convert", "-f", "raw", "-O", "qcow2"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["src.raw", "img.qcow2"]);
    run(dir.path(), &args);
    let bytes = std::fs::read(dir.path().join("img.qcow2")).unwrap();
    Some((dir, bytes))
}

/// Opens `bytes` as an image and reads it all: the first error.
fn open_and_read(dir: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    let p = dir.join("hostile.qcow2");
    std::fs::write(&p, bytes).unwrap();
    let img = Qcow2::open(&p)?;
    let _ = img.info();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < img.size() {
        let n = img.read_inner(&mut buf, at)?;
        assert!(n > 0);
        at += n as u64;
    }
    Ok(())
}

/// Asserts an `Invalid` error on `field` at `offset` (if given), in the hostile file.
#[track_caller]
fn assert_invalid(r: Result<(), FormatError>, want_field: &str, want_offset: Option<u64>) {
    match r {
        Err(FormatError::Invalid {
            file,
            offset,
            field,
            reason,
        }) => {
            assert!(file.ends_with("hostile.qcow2"), "{file:?}");
            assert_eq!(field, want_field, "{reason}");
            if let Some(o) = want_offset {
                assert_eq!(offset, o, "{field}: {reason}");
            }
        }
        other => panic!("expected Invalid {want_field}, got {other:?}"),
    }
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn get64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn qcow2_hostile_header_fields() {
    let Some((dir, good)) = base_image(&[]) else {
        return;
    };
    let d = dir.path();
    assert!(open_and_read(d, &good).is_ok());

    let mut b = good.clone();
    b[0] = b'X';
    assert_invalid(open_and_read(d, &b), "qcow2 header.magic", Some(0));

    let mut b = good.clone();
    put32(&mut b, 4, 4);
    assert_invalid(open_and_read(d, &b), "qcow2 header.version", Some(4));

    let mut b = good.clone();
    put32(&mut b, 20, 30);
    assert_invalid(open_and_read(d, &b), "qcow2 header.cluster_bits", Some(20));

    // Absurd size: the L1 table no longer covers it.
    let mut b = good.clone();
    put64(&mut b, 24, u64::MAX / 2);
    assert_invalid(open_and_read(d, &b), "qcow2 header.l1_size", Some(36));

    // Absurd L1 size: over the cap, never allocated.
    let mut b = good.clone();
    put64(&mut b, 24, 1 << 60);
    put32(&mut b, 36, u32::MAX);
    assert_invalid(open_and_read(d, &b), "qcow2 l1_size", Some(36));

    // L1 table unaligned, at the header, past the end.
    for off in [0x1234u64, 0, 1 << 40] {
        let mut b = good.clone();
        put64(&mut b, 40, off);
        assert_invalid(open_and_read(d, &b), "qcow2 l1_table_offset", Some(40));
    }

    // Header shorter than v3's.
    assert_invalid(open_and_read(d, &good[..90]), "qcow2 header", Some(0));
    assert_invalid(open_and_read(d, &[]), "qcow2 header.magic", Some(0));

    let mut b = good.clone();
    put32(&mut b, 100, 100_000);
    assert_invalid(
        open_and_read(d, &b),
        "qcow2 header.header_length",
        Some(100),
    );

    // Unknown incompatible bit, external data file, encryption: refused.
    for (at, v) in [(72usize, 1u64 << 20), (72, 1 << 2)] {
        let mut b = good.clone();
        put64(&mut b, at, v);
        assert!(matches!(
            open_and_read(d, &b),
            Err(FormatError::Unsupported { .. })
        ));
    }
    let mut b = good.clone();
    put32(&mut b, 32, 2);
    assert!(matches!(
        open_and_read(d, &b),
        Err(FormatError::Unsupported { .. })
    ));

    // Dirty and corrupt bits: noted, still read.
    let mut b = good.clone();
    put64(&mut b, 72, 3);
    assert!(open_and_read(d, &b).is_ok());
    let img = Qcow2::open(&d.join("hostile.qcow2")).unwrap();
    let notes = img.info().notes.join("\n");
    assert!(
        notes.contains("dirty") && notes.contains("corrupt"),
        "{notes}"
    );

    // Unknown compression type.
    let mut b = good.clone();
    put64(&mut b, 72, 1 << 3);
    b[104] = 7;
    assert_invalid(
        open_and_read(d, &b),
        "qcow2 header.compression_type",
        Some(104),
    );
}

#[test]
fn qcow2_hostile_tables() {
    let Some((dir, good)) = base_image(&[]) else {
        return;
    };
    let d = dir.path();
    let l1_at = get64(&good, 40) as usize;
    let l2_at = (get64(&good, l1_at) & OFFSET_MASK) as usize;
    assert_ne!(l2_at, 0);

    // Truncated file: tables or data past the end.
    assert!(matches!(
        open_and_read(d, &good[..good.len() / 2]),
        Err(FormatError::Invalid { .. })
    ));

    // L1 entry: L2 table past the end, at the header, unaligned.
    for v in [1u64 << 40, 0x200] {
        let mut b = good.clone();
        put64(&mut b, l1_at, (1 << 63) | v);
        assert_invalid(
            open_and_read(d, &b),
            "qcow2 L1 entry.l2_offset",
            Some(l1_at as u64),
        );
    }

    // The first L2 entry: data past the end, unaligned.
    for v in [1u64 << 40, 0x10200] {
        let mut b = good.clone();
        put64(&mut b, l2_at, (1 << 63) | v);
        assert_invalid(
            open_and_read(d, &b),
            "qcow2 L2 entry.offset",
            Some(l2_at as u64),
        );
    }

    // Compressed cluster in the header, or past the end.
    for v in [0x10u64, 1 << 40] {
        let mut b = good.clone();
        put64(&mut b, l2_at + 8, COMPRESSED_FLAG | v);
        assert_invalid(
            open_and_read(d, &b),
            "qcow2 L2 entry.compressed_offset",
            Some(l2_at as u64 + 8),
        );
    }

    // Snapshot table past the end: noted, the current state still reads.
    let mut b = good.clone();
    put32(&mut b, 60, 3);
    put64(&mut b, 64, 1 << 40);
    assert!(open_and_read(d, &b).is_ok());
    let img = Qcow2::open(&d.join("hostile.qcow2")).unwrap();
    assert!(img
        .info()
        .notes
        .iter()
        .any(|n| n.contains("snapshot table unreadable")));
    assert!(Qcow2::open_snapshot(&d.join("hostile.qcow2"), "1").is_err());
}

#[test]
fn qcow2_hostile_compressed_data() {
    for opts in [
        ["-c", "-o", "compression_type=zlib"],
        ["-c", "-o", "compression_type=zstd"],
    ] {
        let Some((dir, good)) = base_image(&opts) else {
            return;
        };
        let d = dir.path();
        let l1_at = get64(&good, 40) as usize;
        let l2_at = (get64(&good, l1_at) & OFFSET_MASK) as usize;
        let entry = get64(&good, l2_at);
        assert_ne!(entry & COMPRESSED_FLAG, 0, "first cluster compressed");
        let coffset = (entry & ((1 << 54) - 1)) as usize;
        let mut b = good.clone();
        for x in &mut b[coffset..coffset + 64] {
            *x ^= 0x5a;
        }
        assert_invalid(
            open_and_read(d, &b),
            "qcow2 compressed cluster",
            Some(l2_at as u64),
        );
    }
}

#[test]
fn qcow2_hostile_backing() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // a -> b -> a, and c -> c.
    run(
        d,
        &[
            "qemu-img", "create", "-f", "qcow2", "-u", "-b", "b.qcow2", "-F", "qcow2", "a.qcow2",
            "1M",
        ],
    );
    run(
        d,
        &[
            "qemu-img", "create", "-f", "qcow2", "-u", "-b", "a.qcow2", "-F", "qcow2", "b.qcow2",
            "1M",
        ],
    );
    run(
        d,
        &[
            "qemu-img", "create", "-f", "qcow2", "-u", "-b", "x.qcow2", "-F", "qcow2", "c.qcow2",
            "1M",
        ],
    );
    // qemu-img refuses to name an image its own backing file: patch the name in.
    let mut c = std::fs::read(d.join("c.qcow2")).unwrap();
    let at = get64(&c, 8) as usize;
    assert_eq!(&c[at..at + 7], b"x.qcow2");
    c[at] = b'c';
    std::fs::write(d.join("c.qcow2"), &c).unwrap();
    for name in ["a.qcow2", "c.qcow2"] {
        match Qcow2::open(&d.join(name)) {
            Err(FormatError::Invalid { field, reason, .. }) => {
                assert_eq!(field, "backing chain", "{reason}");
            }
            other => panic!("{name}: expected a loop, got {other:?}"),
        }
    }
    // Backing name longer than 1023 bytes.
    let mut b = std::fs::read(d.join("c.qcow2")).unwrap();
    put32(&mut b, 16, 1024);
    std::fs::write(d.join("hostile.qcow2"), &b).unwrap();
    assert_invalid(
        Qcow2::open(&d.join("hostile.qcow2")).map(|_| ()),
        "qcow2 header.backing_file_size",
        Some(16),
    );
    // Missing backing file: an I/O error naming it.
    run(
        d,
        &[
            "qemu-img",
            "create",
            "-f",
            "qcow2",
            "-u",
            "-b",
            "gone.qcow2",
            "-F",
            "qcow2",
            "m.qcow2",
            "1M",
        ],
    );
    assert!(matches!(
        Qcow2::open(&d.join("m.qcow2")),
        Err(FormatError::Io { .. })
    ));
}

/// Sequential read speed against `qemu-img convert -O raw` (prints; no timing assert).
/// `cargo test -p vestige-formats qcow2_speed -- --ignored --nocapture`
#[test]
#[ignore = "timing: run by hand"]
fn qcow2_speed() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("src.raw"), source(64 << 20, 5)).unwrap();
    for (name, opts) in [
        ("plain", ""),
        ("zlib", "-c"),
        ("zstd", "-c -o compression_type=zstd"),
    ] {
        let mut args = vec!["qemu-img", "convert", "-f", "raw", "-O", "qcow2"];
        args.extend(opts.split_whitespace());
        args.extend_from_slice(&["src.raw", "img.qcow2"]);
        run(d, &args);
        let t = std::time::Instant::now();
        run(
            d,
            &["qemu-img", "convert", "-O", "raw", "img.qcow2", "out.raw"],
        );
        let qemu = t.elapsed();
        let img = Qcow2::open(&d.join("img.qcow2")).unwrap();
        let t = std::time::Instant::now();
        let mut buf = vec![0u8; 4 << 20];
        let mut at = 0u64;
        while at < img.size() {
            let n = img.read_at(&mut buf, at).unwrap();
            at += n as u64;
        }
        let ours = t.elapsed();
        eprintln!("{name}: qemu-img convert -O raw {qemu:?}, Qcow2 full read {ours:?}");
    }
}
