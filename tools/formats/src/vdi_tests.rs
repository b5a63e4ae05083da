//! VDI reader tests against images made by qemu-img (normal and static), and hostile
//! variants of them.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::expect_used,
    clippy::panic
)]

use super::*;
use crate::test_support::{
    check_random_reads, have, invalid_field, qemu_to_raw, read_all, run, sha, source_chunks,
};
use std::process::Command;

const MIB: usize = 1 << 20;
const SIZE: usize = 5 * MIB + 7 * 512 + 100;

/// Deterministic pseudo-random bytes with zero runs (some 64 KiB chunks and whole 1 MiB
/// blocks zero, so qemu leaves blocks unallocated).
fn source(len: usize, seed: u64) -> Vec<u8> {
    source_chunks(len, seed, 64 << 10, |i| i % 5 == 2 || (32..48).contains(&i))
}

fn read_all_steps(r: &dyn ReadAt) -> Vec<u8> {
    read_all(r, 3 * MIB + 5)
}

/// `qemu-img convert` of `src` to VDI with `opts`; returns the VDI path and the source
/// padded to the VDI's size (qemu rounds the size up to a sector).
fn make(dir: &Path, name: &str, src: &[u8], opts: &[&str]) -> PathBuf {
    let raw = dir.join(format!("{name}.raw"));
    std::fs::write(&raw, src).unwrap();
    let vdi = dir.join(format!("{name}.vdi"));
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "vdi"])
        .args(opts)
        .arg(&raw)
        .arg(&vdi));
    vdi
}

fn check_variant(opts: &[&str], variant: &str) {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut src = source(SIZE, 11);
    let path = make(dir.path(), "v", &src, opts);
    let img = Vdi::open(&path).unwrap();
    // qemu rounds the disk up to whole sectors.
    src.resize(SIZE.div_ceil(512) * 512, 0);
    assert_eq!(img.size(), src.len() as u64);
    let all = read_all_steps(&img);
    assert_eq!(sha(&all), sha(&src));
    assert_eq!(
        sha(&all),
        sha(&qemu_to_raw("vdi", &path, &dir.path().join("q.raw")))
    );
    check_random_reads(&img, &src);
    assert_eq!(img.info().variant.as_deref(), Some(variant));
    let head = std::fs::read(&path).unwrap();
    assert!(probe(&head[..4096]));
    let boxed = crate::open(&path).unwrap();
    assert_eq!(boxed.info().format, "vdi");
    assert_eq!(sha(&read_all_steps(&*boxed)), sha(&src));
}

#[test]
fn vdi_normal_from_qemu_reads_like_the_source() {
    check_variant(&[], "normal");
}

#[test]
fn vdi_static_from_qemu_reads_like_the_source() {
    check_variant(&["-o", "static=on"], "fixed");
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn open_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<Vdi, FormatError> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    Vdi::open(&p)
}

#[test]
fn vdi_zero_block_entries_read_as_zeros() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(4 * MIB, 12);
    let good = std::fs::read(make(dir.path(), "z", &src, &[])).unwrap();
    let bmap = u32::from_le_bytes(good[0x154..0x158].try_into().unwrap()) as usize;
    let mut b = good.clone();
    put32(&mut b, bmap + 4, ZERO_BLOCK);
    let img = open_bytes(dir.path(), "zz.vdi", &b).unwrap();
    let mut expected = src.clone();
    expected[MIB..2 * MIB].fill(0);
    assert_eq!(sha(&read_all_steps(&img)), sha(&expected));
}

#[test]
fn vdi_hostile_variants_are_format_errors() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let src = source(4 * MIB, 13);
    let good = std::fs::read(make(dir, "h", &src, &[])).unwrap();
    let n = good.len();
    let bmap = u32::from_le_bytes(good[0x154..0x158].try_into().unwrap()) as usize;

    let cases: Vec<(&str, usize, u32, &str)> = vec![
        ("sig", 0x40, 0x1234_5678, "vdi header.signature"),
        ("ver", 0x44, 0x0000_0000, "vdi header.version"),
        ("hsize", 0x48, 0x10, "vdi header.header_size"),
        ("type", 0x4c, 9, "vdi header.image_type"),
        ("sector", 0x168, 4096, "vdi header.sector_size"),
        ("bs0", 0x178, 0, "vdi header.block_size"),
        ("bs3", 0x178, 3 << 20, "vdi header.block_size"),
        ("bshuge", 0x178, 1 << 31, "vdi header.block_size"),
        ("blocks", 0x180, u32::MAX, "vdi header.offset_bmap"),
        ("fewblocks", 0x180, 1, "vdi header.disk_size"),
        ("bmap", 0x154, n as u32, "vdi header.offset_bmap"),
        ("bmaphdr", 0x154, 0x40, "vdi header.offset_bmap"),
        ("data", 0x158, 0x10, "vdi header.offset_data"),
        ("extra", 0x17c, u32::MAX, "vdi header.block_extra"),
    ];
    for (name, at, v, field) in cases {
        let mut b = good.clone();
        put32(&mut b, at, v);
        let e = open_bytes(dir, &format!("{name}.vdi"), &b).unwrap_err();
        let (f, _) = invalid_field(&e);
        assert_eq!(f, field, "{name}: {e}");
    }

    // A differencing image is refused, naming its parent's UUID.
    let mut b = good.clone();
    put32(&mut b, 0x4c, 4);
    let e = open_bytes(dir, "diff.vdi", &b).unwrap_err();
    assert!(matches!(e, FormatError::Unsupported { .. }), "{e}");

    // Block map entries past the data, or past the map's range: reads of that block fail
    // naming the entry; other blocks still read.
    for entry in [3u32 + 1, 1000, ZERO_BLOCK - 1] {
        let mut b = good.clone();
        put32(&mut b, bmap, entry);
        let img = open_bytes(dir, "entry.vdi", &b).unwrap();
        let mut buf = vec![0u8; 4096];
        let e = img.read_inside(&mut buf, 10).unwrap_err();
        assert_eq!(invalid_field(&e), ("vdi block map entry", bmap as u64));
        let io = img.read_at(&mut buf, 10).unwrap_err();
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
        assert_eq!(img.read_at(&mut buf, MIB as u64 + 5).unwrap(), 4096);
    }

    // Truncated anywhere: an error or reads that fail, never a panic.
    for cut in [n - 1, n / 2, 0x400, 0x201, 100, 0] {
        if let Ok(img) = open_bytes(dir, "cut.vdi", &good[..cut]) {
            let mut buf = vec![0u8; MIB];
            let mut pos = 0;
            while pos < img.size() {
                let _ = img.read_at(&mut buf, pos);
                pos += MIB as u64;
            }
        }
    }
}

/// The fuzz seeds (fuzz/seeds/image_vdi) open and read: they reach the read paths.
#[test]
fn vdi_fuzz_seeds_open_and_read() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/image_vdi");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let img = Vdi::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let all = read_all_steps(&img);
        assert_eq!(all.len() as u64, img.size());
        seen += 1;
    }
    assert!(seen >= 3);
    // Entries 0, unallocated, zero, 1 against the data area.
    let b = std::fs::read(dir.join("small-blocks-normal.vdi")).unwrap();
    let img = Vdi::open(&dir.join("small-blocks-normal.vdi")).unwrap();
    let all = read_all_steps(&img);
    assert_eq!(all[..4096], b[0x400..0x1400]);
    assert!(all[4096..12288].iter().all(|&x| x == 0));
    assert_eq!(all[12288..], b[0x1400..0x2400]);
}
