//! VHD reader tests: images made by qemu-img (dynamic, fixed) and, for what qemu-img cannot
//! make (differencing disks, partial sector bitmaps, other block sizes), by a small writer
//! here whose dynamic output is first checked against qemu-img's reading of it.
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

/// Deterministic pseudo-random bytes with zero runs (64 KiB chunks, some zero, and a whole
/// zero 2 MiB-aligned region so dynamic images leave blocks unallocated).
fn source(len: usize, seed: u64) -> Vec<u8> {
    source_chunks(len, seed, 64 << 10, |i| i % 5 == 2 || (32..64).contains(&i))
}

fn read_all_steps(r: &dyn ReadAt) -> Vec<u8> {
    read_all(r, MIB + 3)
}

fn qemu_to_vhd(raw: &Path, vhd: &Path, opts: &str) {
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "vpc", "-o", opts])
        .arg(raw)
        .arg(vhd));
}

const SIZE: usize = 5 * MIB + 7 * 512;

#[test]
fn vhd_dynamic_from_qemu_reads_like_the_source() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(SIZE, 1);
    let raw = dir.path().join("s.raw");
    std::fs::write(&raw, &src).unwrap();
    let vhd = dir.path().join("d.vhd");
    qemu_to_vhd(&raw, &vhd, "subformat=dynamic,force_size=on");
    let img = Vhd::open(&vhd).unwrap();
    assert_eq!(img.size(), SIZE as u64);
    let all = read_all_steps(&img);
    assert_eq!(sha(&all), sha(&src));
    assert_eq!(
        sha(&all),
        sha(&qemu_to_raw("vpc", &vhd, &dir.path().join("q.raw")))
    );
    check_random_reads(&img, &src);
    let info = img.info();
    assert_eq!(info.format, "vhd");
    assert_eq!(info.variant.as_deref(), Some("dynamic"));
    // Through the crate's dispatch (probe on the footer copy at byte 0).
    let head = std::fs::read(&vhd).unwrap();
    assert!(probe(&head[..4096]));
    let boxed = crate::open(&vhd).unwrap();
    assert_eq!(boxed.info().format, "vhd");
    assert_eq!(sha(&read_all_steps(&*boxed)), sha(&src));
}

#[test]
fn vhd_fixed_from_qemu_reads_like_the_source() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(SIZE, 2);
    let raw = dir.path().join("s.raw");
    std::fs::write(&raw, &src).unwrap();
    let vhd = dir.path().join("f.vhd");
    qemu_to_vhd(&raw, &vhd, "subformat=fixed,force_size=on");
    let img = Vhd::open(&vhd).unwrap();
    assert_eq!(img.info().variant.as_deref(), Some("fixed"));
    let all = read_all_steps(&img);
    assert_eq!(sha(&all), sha(&src));
    check_random_reads(&img, &src);
    let bytes = std::fs::read(&vhd).unwrap();
    assert!(!probe(&bytes));
    assert!(probe_tail(&bytes[bytes.len() - 512..]));
}

// ---- A minimal VHD writer, for what qemu-img cannot make. ----

struct Block {
    /// One bit per sector, most significant first.
    bitmap: Vec<u8>,
    data: Vec<u8>,
}

struct Spec {
    disk_type: u32,
    size: u64,
    block_size: u32,
    blocks: Vec<Option<Block>>,
    unique_id: [u8; 16],
    parent_id: [u8; 16],
    parent_name: String,
    /// (platform code, locator bytes)
    locators: Vec<Locator>,
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}
fn pad512(n: usize) -> usize {
    n.div_ceil(512) * 512
}

fn footer_bytes(s: &Spec) -> [u8; 512] {
    let mut f = [0u8; 512];
    f[..8].copy_from_slice(b"conectix");
    put32(&mut f, 8, 2);
    put32(&mut f, 12, 0x0001_0000);
    put64(&mut f, 16, if s.disk_type == 2 { u64::MAX } else { 512 });
    f[28..32].copy_from_slice(b"win ");
    put32(&mut f, 32, 0x0001_0000);
    f[36..40].copy_from_slice(b"Wi2k");
    put64(&mut f, 40, s.size);
    put64(&mut f, 48, s.size);
    put32(&mut f, 60, s.disk_type);
    f[68..84].copy_from_slice(&s.unique_id);
    let c = checksum(&f, 64);
    put32(&mut f, 64, c);
    f
}

fn build(s: &Spec) -> Vec<u8> {
    let footer = footer_bytes(s);
    let entries = s.blocks.len();
    let bat_at = 1536usize;
    let mut loc_at = bat_at + pad512(entries * 4);
    let mut h = [0u8; 1024];
    h[..8].copy_from_slice(b"cxsparse");
    put64(&mut h, 8, u64::MAX);
    put64(&mut h, 16, bat_at as u64);
    put32(&mut h, 24, 0x0001_0000);
    put32(&mut h, 28, entries as u32);
    put32(&mut h, 32, s.block_size);
    h[40..56].copy_from_slice(&s.parent_id);
    let name: Vec<u8> = s
        .parent_name
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    h[64..64 + name.len()].copy_from_slice(&name);
    let mut tail = Vec::new();
    for (i, (code, data)) in s.locators.iter().enumerate() {
        let e = 576 + i * 24;
        h[e..e + 4].copy_from_slice(code);
        put32(&mut h, e + 4, (pad512(data.len()) / 512) as u32);
        put32(&mut h, e + 8, data.len() as u32);
        put64(&mut h, e + 16, loc_at as u64);
        let mut d = data.clone();
        d.resize(pad512(data.len()), 0);
        tail.extend_from_slice(&d);
        loc_at += d.len();
    }
    let c = checksum(&h, 36);
    put32(&mut h, 36, c);
    let mut out = footer.to_vec();
    out.extend_from_slice(&h);
    let mut bat = vec![0xffu8; pad512(entries * 4)];
    out.resize(bat_at, 0);
    let bitmap_bytes = pad512((s.block_size as usize / 512).div_ceil(8));
    let mut blocks_out = Vec::new();
    let mut at = loc_at;
    for (i, b) in s.blocks.iter().enumerate() {
        if let Some(b) = b {
            put32(&mut bat, i * 4, (at / 512) as u32);
            let mut bm = b.bitmap.clone();
            bm.resize(bitmap_bytes, 0);
            blocks_out.extend_from_slice(&bm);
            assert_eq!(b.data.len(), s.block_size as usize);
            blocks_out.extend_from_slice(&b.data);
            at += bitmap_bytes + b.data.len();
        }
    }
    out.extend_from_slice(&bat);
    out.extend_from_slice(&tail);
    out.extend_from_slice(&blocks_out);
    out.extend_from_slice(&footer);
    out
}

/// A spec holding `bytes` in blocks of `block_size`, every non-zero block allocated with
/// the bitmap from `bitmap_of(block index)`.
fn spec_from(bytes: &[u8], block_size: u32, bitmap_of: &dyn Fn(usize) -> Vec<u8>) -> Spec {
    let bs = block_size as usize;
    let blocks = bytes
        .chunks(bs)
        .enumerate()
        .map(|(i, c)| {
            if c.iter().all(|&b| b == 0) {
                return None;
            }
            let mut data = c.to_vec();
            data.resize(bs, 0);
            Some(Block {
                bitmap: bitmap_of(i),
                data,
            })
        })
        .collect();
    Spec {
        disk_type: 3,
        size: bytes.len() as u64,
        block_size,
        blocks,
        unique_id: [7; 16],
        parent_id: [0; 16],
        parent_name: String::new(),
        locators: Vec::new(),
    }
}

fn full_bitmap(block_size: u32) -> Vec<u8> {
    vec![0xff; (block_size as usize / 512).div_ceil(8)]
}

#[test]
fn vhd_hand_built_dynamic_reads_like_qemu() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(3 * MIB + 512, 3);
    let bs = 64 << 10;
    let spec = spec_from(&src, bs, &|_| full_bitmap(bs));
    let path = dir.path().join("h.vhd");
    std::fs::write(&path, build(&spec)).unwrap();
    let img = Vhd::open(&path).unwrap();
    let all = read_all_steps(&img);
    assert_eq!(sha(&all), sha(&src));
    assert_eq!(
        sha(&all),
        sha(&qemu_to_raw("vpc", &path, &dir.path().join("q.raw")))
    );
}

#[test]
fn vhd_dynamic_clear_bitmap_bits_read_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(MIB, 4);
    let bs = 64 << 10;
    // Alternate bytes of the bitmap: sectors 0-7 present, 8-15 absent, ...
    let spec = spec_from(&src, bs, &|_| [0xff, 0x00].repeat(8));
    let path = dir.path().join("z.vhd");
    std::fs::write(&path, build(&spec)).unwrap();
    let img = Vhd::open(&path).unwrap();
    let mut expected = src.clone();
    for (s, sector) in expected.chunks_mut(512).enumerate() {
        if (s / 8) % 2 == 1 {
            sector.fill(0);
        }
    }
    assert_eq!(sha(&read_all_steps(&img)), sha(&expected));
    check_random_reads(&img, &expected);
}

/// A parent dynamic VHD from qemu-img and a hand-built differencing child over it.
struct Diff {
    dir: tempfile::TempDir,
    parent_src: Vec<u8>,
    parent_id: [u8; 16],
}

fn diff_setup() -> Option<Diff> {
    if !have("qemu-img") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let parent_src = source(SIZE, 5);
    let raw = dir.path().join("p.raw");
    std::fs::write(&raw, &parent_src).unwrap();
    let parent = dir.path().join("parent.vhd");
    qemu_to_vhd(&raw, &parent, "subformat=dynamic,force_size=on");
    let bytes = std::fs::read(&parent).unwrap();
    let parent_id: [u8; 16] = bytes[bytes.len() - 512 + 68..bytes.len() - 512 + 84]
        .try_into()
        .unwrap();
    Some(Diff {
        dir,
        parent_src,
        parent_id,
    })
}

/// A parent locator: platform code and bytes.
type Locator = ([u8; 4], Vec<u8>);

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// The child: every third 128 KiB block allocated, with sectors whose index % 3 == 0 set.
fn child_spec(d: &Diff, locators: Vec<Locator>) -> (Spec, Vec<u8>) {
    let bs: u32 = 128 << 10;
    let child_data = source(SIZE, 6);
    let mut spec = spec_from(&child_data, bs, &|_| {
        let mut bm = vec![0u8; 32];
        for s in (0..256).step_by(3) {
            bm[s / 8] |= 0x80 >> (s % 8);
        }
        bm
    });
    for (i, b) in spec.blocks.iter_mut().enumerate() {
        if i % 3 != 0 {
            *b = None;
        }
    }
    spec.disk_type = 4;
    spec.unique_id = [9; 16];
    spec.parent_id = d.parent_id;
    spec.parent_name = "parent.vhd".to_string();
    spec.locators = locators;
    let mut expected = d.parent_src.clone();
    for (s, sector) in expected.chunks_mut(512).enumerate() {
        let block = s * 512 / bs as usize;
        let in_block = s % 256;
        if spec.blocks[block].is_some() && in_block % 3 == 0 {
            sector.copy_from_slice(&child_data[s * 512..s * 512 + 512]);
        }
    }
    (spec, expected)
}

#[test]
fn vhd_differencing_reads_parent_where_the_child_has_no_sector() {
    let Some(d) = diff_setup() else {
        return;
    };
    let variants: Vec<(&str, Vec<Locator>)> = vec![
        ("W2ru", vec![(*b"W2ru", utf16le(".\\parent.vhd"))]),
        (
            "W2ku fallback to the name",
            vec![(*b"W2ku", utf16le("C:\\vms\\parent.vhd"))],
        ),
        (
            "MacX",
            vec![(
                *b"MacX",
                format!("file://{}", d.dir.path().join("parent.vhd").display()).into_bytes(),
            )],
        ),
        ("header name only", vec![]),
    ];
    for (what, locators) in variants {
        let (spec, expected) = child_spec(&d, locators);
        let child = d.dir.path().join("child.vhd");
        std::fs::write(&child, build(&spec)).unwrap();
        let img = Vhd::open(&child).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(sha(&read_all_steps(&img)), sha(&expected), "{what}");
        check_random_reads(&img, &expected);
        let info = img.info();
        assert_eq!(info.variant.as_deref(), Some("differencing"));
        assert_eq!(info.backing.unwrap().variant.as_deref(), Some("dynamic"));
        // Through the crate's dispatch too.
        let boxed = crate::open(&child).unwrap();
        assert_eq!(
            sha(&read_all_steps(&*boxed)),
            sha(&expected),
            "{what} via open"
        );
    }
}

#[test]
fn vhd_differencing_parent_id_mismatch_names_both() {
    let Some(d) = diff_setup() else {
        return;
    };
    let (mut spec, _) = child_spec(&d, vec![(*b"W2ru", utf16le(".\\parent.vhd"))]);
    spec.parent_id = [0xab; 16];
    let child = d.dir.path().join("child.vhd");
    std::fs::write(&child, build(&spec)).unwrap();
    let e = Vhd::open(&child).unwrap_err();
    assert_eq!(
        invalid_field(&e),
        ("vhd dynamic header.parent_unique_id", 512 + 40)
    );
    let msg = e.to_string();
    assert!(
        msg.contains("abababab-abab") && msg.contains("parent.vhd"),
        "{msg}"
    );
}

#[test]
fn vhd_differencing_loop_and_missing_parent_are_errors() {
    let Some(d) = diff_setup() else {
        return;
    };
    // A child that names itself as its parent.
    let (mut spec, _) = child_spec(&d, vec![(*b"W2ru", utf16le(".\\self.vhd"))]);
    spec.parent_id = spec.unique_id;
    spec.parent_name = "self.vhd".to_string();
    let me = d.dir.path().join("self.vhd");
    std::fs::write(&me, build(&spec)).unwrap();
    let e = Vhd::open(&me).unwrap_err();
    assert_eq!(invalid_field(&e).0, "backing chain");
    assert!(e.to_string().contains("loop"), "{e}");
    // Two children naming each other.
    let (mut a, _) = child_spec(&d, vec![(*b"W2ru", utf16le("b.vhd"))]);
    let (mut b, _) = child_spec(&d, vec![(*b"W2ru", utf16le("a.vhd"))]);
    a.unique_id = [1; 16];
    b.unique_id = [2; 16];
    a.parent_id = b.unique_id;
    b.parent_id = a.unique_id;
    std::fs::write(d.dir.path().join("a.vhd"), build(&a)).unwrap();
    std::fs::write(d.dir.path().join("b.vhd"), build(&b)).unwrap();
    let Err(e) = crate::open(&d.dir.path().join("a.vhd")) else {
        panic!("a loop of two children opened");
    };
    assert!(e.to_string().contains("loop"), "{e}");
    // No parent anywhere.
    let (mut spec, _) = child_spec(&d, vec![(*b"W2ru", utf16le("gone.vhd"))]);
    spec.parent_name = "gone.vhd".to_string();
    let orphan = d.dir.path().join("orphan.vhd");
    std::fs::write(&orphan, build(&spec)).unwrap();
    let e = Vhd::open(&orphan).unwrap_err();
    assert_eq!(
        invalid_field(&e),
        ("vhd dynamic header.parent_locator", 512 + 576)
    );
}

// ---- Hostile variants of a qemu-made dynamic image. ----

fn qemu_dynamic(dir: &Path) -> Vec<u8> {
    let raw = dir.join("s.raw");
    std::fs::write(&raw, source(SIZE, 7)).unwrap();
    let vhd = dir.join("d.vhd");
    qemu_to_vhd(&raw, &vhd, "subformat=dynamic,force_size=on");
    std::fs::read(&vhd).unwrap()
}

fn fix_header_checksum(b: &mut [u8]) {
    let c = checksum(&b[512..1536], 36);
    put32(&mut b[512..1536], 36, c);
}

fn fix_footers(b: &mut [u8]) {
    let n = b.len();
    let c = checksum(&b[n - 512..], 64);
    put32(&mut b[n - 512..], 64, c);
    let copy = b[n - 512..].to_vec();
    b[..512].copy_from_slice(&copy);
}

fn open_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<Vhd, FormatError> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    Vhd::open(&p)
}

/// The first allocated BAT entry's index.
fn first_allocated(b: &[u8]) -> usize {
    let bat = u64::from_be_bytes(b[512 + 16..512 + 24].try_into().unwrap()) as usize;
    (0..)
        .find(|i| b[bat + i * 4..bat + i * 4 + 4] != [0xff; 4])
        .unwrap()
}

#[test]
fn vhd_hostile_variants_are_format_errors() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let good = qemu_dynamic(dir);
    let n = good.len();
    let bat = u64::from_be_bytes(good[512 + 16..512 + 24].try_into().unwrap()) as usize;
    let first = first_allocated(&good);

    // Bad checksum in both footers.
    let mut b = good.clone();
    b[n - 512 + 50] ^= 1;
    b[50] ^= 1;
    let e = open_bytes(dir, "ck.vhd", &b).unwrap_err();
    assert_eq!(
        invalid_field(&e),
        ("vhd footer.checksum", (n - 512 + 64) as u64)
    );

    // Bad checksum only at the end: the copy at byte 0 is used, and noted.
    let mut b = good.clone();
    b[n - 512 + 50] ^= 1;
    let img = open_bytes(dir, "ck1.vhd", &b).unwrap();
    assert!(img
        .info()
        .notes
        .iter()
        .any(|s| s.contains("copy at byte 0")));

    // Dynamic header checksum.
    let mut b = good.clone();
    b[512 + 40] ^= 1;
    let e = open_bytes(dir, "hck.vhd", &b).unwrap_err();
    assert_eq!(invalid_field(&e), ("vhd dynamic header.checksum", 512 + 36));

    // Absurd block sizes.
    for bs in [0u32, 511, 3 << 20, 1 << 31] {
        let mut b = good.clone();
        put32(&mut b[512..1536], 32, bs);
        fix_header_checksum(&mut b);
        let e = open_bytes(dir, "bs.vhd", &b).unwrap_err();
        assert_eq!(
            invalid_field(&e),
            ("vhd dynamic header.block_size", 512 + 32),
            "{bs}"
        );
    }

    // A BAT larger than the file.
    let mut b = good.clone();
    put32(&mut b[512..1536], 28, u32::MAX);
    fix_header_checksum(&mut b);
    let e = open_bytes(dir, "bat.vhd", &b).unwrap_err();
    assert_eq!(
        invalid_field(&e),
        ("vhd dynamic header.table_offset", 512 + 16)
    );

    // Too few BAT entries for the disk.
    let mut b = good.clone();
    put32(&mut b[512..1536], 28, 1);
    fix_header_checksum(&mut b);
    let e = open_bytes(dir, "few.vhd", &b).unwrap_err();
    assert_eq!(
        invalid_field(&e),
        ("vhd dynamic header.max_table_entries", 512 + 28)
    );

    // An absurd current size (needs a BAT over the limit).
    let mut b = good.clone();
    put64(&mut b[n - 512..], 48, u64::MAX - 511);
    fix_footers(&mut b);
    assert!(open_bytes(dir, "size.vhd", &b).is_err());

    // Data offset past the end.
    let mut b = good.clone();
    put64(&mut b[n - 512..], 16, n as u64);
    fix_footers(&mut b);
    let e = open_bytes(dir, "doff.vhd", &b).unwrap_err();
    assert_eq!(
        invalid_field(&e),
        ("vhd footer.data_offset", (n - 512 + 16) as u64)
    );

    // BAT entries past the end and at the header: open works, reads of that block fail
    // naming the entry; other blocks still read.
    for sector in [u32::MAX - 1, (n / 512) as u32, 1, (bat / 512) as u32] {
        let mut b = good.clone();
        put32(&mut b, bat + first * 4, sector);
        let img = open_bytes(dir, "entry.vhd", &b).unwrap();
        let mut buf = vec![0u8; 4096];
        let at = first as u64 * (2 << 20);
        let e = img.read_at(&mut buf, at).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.to_string()
                .contains(&format!("byte {}: vhd BAT entry", bat + first * 4)),
            "{e}"
        );
        let err = img.read_inside(&mut buf, at).unwrap_err();
        assert_eq!(
            invalid_field(&err),
            ("vhd BAT entry", (bat + first * 4) as u64)
        );
    }

    // Truncated: the end footer is gone, the copy at 0 is used; blocks past the new end
    // are errors, never panics.
    for cut in [n / 2, 2048, 1000, 600, 100, 0] {
        let r = open_bytes(dir, "cut.vhd", &good[..cut]);
        if let Ok(img) = r {
            let mut buf = vec![0u8; MIB];
            let mut pos = 0;
            while pos < img.size() {
                let _ = img.read_at(&mut buf, pos);
                pos += MIB as u64;
            }
        }
    }

    // A fixed disk whose footer claims more than the file holds.
    let raw = dir.join("f.raw");
    std::fs::write(&raw, source(MIB, 8)).unwrap();
    let fixed = dir.join("f.vhd");
    qemu_to_vhd(&raw, &fixed, "subformat=fixed,force_size=on");
    let mut b = std::fs::read(&fixed).unwrap();
    let n = b.len();
    put64(&mut b[n - 512..], 48, 2 * MIB as u64);
    let c = checksum(&b[n - 512..], 64);
    put32(&mut b[n - 512..], 64, c);
    let e = open_bytes(dir, "fbig.vhd", &b).unwrap_err();
    assert_eq!(
        invalid_field(&e),
        ("vhd footer.current_size", (n - 512 + 48) as u64)
    );
}

/// The fuzz seeds (fuzz/seeds/image_vhd) open and read: they reach the read paths.
#[test]
fn vhd_fuzz_seeds_open_and_read() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/image_vhd");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let img = Vhd::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let all = read_all_steps(&img);
        assert_eq!(all.len() as u64, img.size());
        seen += 1;
    }
    assert!(seen >= 4);
    // The differencing seed over the dynamic one: block 2 mixes both (bitmap 0xa5).
    let child = Vhd::open(&dir.join("small-blocks-differencing.vhd")).unwrap();
    assert_eq!(child.info().variant.as_deref(), Some("differencing"));
    let parent = Vhd::open(&dir.join("small-blocks-dynamic.vhd")).unwrap();
    assert_eq!(read_all_steps(&child), read_all_steps(&parent));
    let p = read_all_steps(&parent);
    assert!(p[8192 + 512..8192 + 1024].iter().all(|&b| b == 0));
    assert!(p[8192..8192 + 512].iter().any(|&b| b != 0));
}
