//! VMDK reader tests against images made by qemu-img / qemu-io, and hostile variants.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::panic
)]

use super::*;
use crate::test_support::{check_random_reads_with, have, read_all, run_args as run, sha};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

/// Whether qemu-img and qemu-io are here; panics when they are missing and required.
fn have_tools() -> bool {
    have("qemu-img") && have("qemu-io")
}

/// Deterministic pseudo-random data with zero stretches (some whole grains, some partial).
fn source_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = vec![0u8; len];
    for (i, chunk) in v.chunks_mut(8).enumerate() {
        // Zero 1 MiB in every 3 MiB, and 4 KiB in every 24 KiB.
        if (i * 8) % (3 * MIB) < MIB || (i * 8) % 24_576 < 4096 {
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    v
}

/// Writes a source of `len` bytes to dir/src.raw and converts it with `subformat`.
fn convert(dir: &Path, len: usize, subformat: &str, name: &str) -> (Vec<u8>, PathBuf) {
    let data = source_bytes(len, 0x1234_5678);
    let raw = dir.join(format!("{name}.raw"));
    std::fs::write(&raw, &data).unwrap();
    let out = dir.join(format!("{name}.vmdk"));
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            &format!("subformat={subformat}"),
            raw.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    (data, out)
}

fn check_subformat(subformat: &str) {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let len = 5 * MIB + 3 * 512;
    let (data, vmdk) = convert(dir.path(), len, subformat, "disk");
    let img = Vmdk::open(&vmdk).unwrap();
    assert_eq!(img.size(), len as u64);
    assert_eq!(img.info().variant.as_deref(), Some(subformat));
    assert_eq!(sha(&read_all(&img, 777_777)), sha(&data), "{subformat}");
    check_random_reads_with(&img, &data, 300, 200_000, 32);
    // Through the content-based dispatch too.
    let dispatched = crate::open(&vmdk).unwrap();
    assert_eq!(dispatched.info().format, "vmdk");
    assert_eq!(sha(&read_all(dispatched.as_ref(), 777_777)), sha(&data));
}

#[test]
fn monolithic_sparse_matches_source() {
    check_subformat("monolithicSparse");
}

#[test]
fn monolithic_flat_matches_source() {
    check_subformat("monolithicFlat");
}

#[test]
fn two_gb_max_extent_sparse_matches_source() {
    check_subformat("twoGbMaxExtentSparse");
}

#[test]
fn two_gb_max_extent_flat_matches_source() {
    check_subformat("twoGbMaxExtentFlat");
}

#[test]
fn stream_optimized_matches_source() {
    check_subformat("streamOptimized");
}

/// qemu-img convert -O raw of `image`.
fn qemu_raw(image: &Path) -> Vec<u8> {
    let out = image.with_extension("qemu.raw");
    run(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            image.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    std::fs::read(out).unwrap()
}

fn make_child(dir: &Path, parent: &Path, name: &str, opts: &[&str]) -> PathBuf {
    let child = dir.join(name);
    let mut args = vec!["create", "-f", "vmdk", "-b"];
    args.push(parent.file_name().unwrap().to_str().unwrap());
    args.extend(["-F", "vmdk"]);
    args.extend_from_slice(opts);
    args.push(child.to_str().unwrap());
    run("qemu-img", &args);
    child
}

#[test]
fn snapshot_child_matches_qemu() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, parent) = convert(dir.path(), 4 * MIB, "monolithicSparse", "parent");
    let child = make_child(dir.path(), &parent, "child.vmdk", &[]);
    run(
        "qemu-io",
        &[
            "-f",
            "vmdk",
            "-c",
            "write -P 0xcd 2M 64k",
            "-c",
            "write -P 0x17 100k 3k",
            child.to_str().unwrap(),
        ],
    );
    let expected = qemu_raw(&child);
    let img = Vmdk::open(&child).unwrap();
    let info = img.info();
    assert!(info.backing.is_some());
    assert!(
        !info.notes.iter().any(|n| n.contains("MISMATCH")),
        "{:?}",
        info.notes
    );
    assert_eq!(sha(&read_all(&img, 777_777)), sha(&expected));
    check_random_reads_with(&img, &expected, 300, 200_000, 32);
    assert!(expected[2 * MIB..2 * MIB + 65536]
        .iter()
        .all(|&b| b == 0xcd));
}

#[test]
fn zeroed_grain_child_matches_qemu() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (data, parent) = convert(dir.path(), 4 * MIB, "monolithicSparse", "parent");
    let child = make_child(
        dir.path(),
        &parent,
        "child.vmdk",
        &["-o", "zeroed_grain=on"],
    );
    run(
        "qemu-io",
        &[
            "-f",
            "vmdk",
            "-c",
            "write -z 1536k 128k",
            child.to_str().unwrap(),
        ],
    );
    let expected = qemu_raw(&child);
    assert_ne!(sha(&expected), sha(&data), "the zero write changed nothing");
    let img = Vmdk::open(&child).unwrap();
    assert_eq!(sha(&read_all(&img, 777_777)), sha(&expected));
}

/// Replaces the first `from` in `path` by `to` (same length).
fn patch_text(path: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in {}", path.display()));
    bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn parent_cid_mismatch_is_noted() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, parent) = convert(dir.path(), MIB, "monolithicSparse", "parent");
    let child = make_child(dir.path(), &parent, "child.vmdk", &[]);
    let text = String::from_utf8_lossy(&std::fs::read(&child).unwrap()).into_owned();
    let pcid = text
        .lines()
        .find_map(|l| l.strip_prefix("parentCID="))
        .unwrap()
        .to_string();
    // QEMU writes the CID unpadded (`%x`): a CID below 0x10000000 has fewer than eight
    // digits. Another CID of the same length: the last digit changed.
    let mut other = pcid.clone();
    let last = other.pop().unwrap();
    other.push(if last == '0' { '1' } else { '0' });
    patch_text(
        &child,
        &format!("parentCID={pcid}"),
        &format!("parentCID={other}"),
    );
    let img = Vmdk::open(&child).unwrap();
    assert!(
        img.info().notes.iter().any(|n| n.contains("MISMATCH")),
        "{:?}",
        img.info().notes
    );
}

fn expect_invalid(result: Result<Vmdk, FormatError>, field_part: &str) -> (u64, String) {
    match result {
        Err(FormatError::Invalid {
            field,
            offset,
            reason,
            ..
        }) => {
            assert!(field.contains(field_part), "field {field}: {reason}");
            (offset, reason)
        }
        Err(e) => panic!("expected Invalid {field_part}, got {e}"),
        Ok(_) => panic!("expected Invalid {field_part}, opened"),
    }
}

#[test]
fn parent_loop_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.vmdk");
    let b = dir.path().join("b.vmdk");
    let desc = |parent: &str| {
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=11111111\nparentCID=22222222\n\
             createType=\"monolithicSparse\"\nparentFileNameHint=\"{parent}\"\n\
             RW 2048 ZERO\n"
        )
    };
    std::fs::write(&a, desc("b.vmdk")).unwrap();
    std::fs::write(&b, desc("a.vmdk")).unwrap();
    let (_, reason) = expect_invalid(Vmdk::open(&a), "backing chain");
    assert!(reason.contains("loop"), "{reason}");
    let self_loop = dir.path().join("self.vmdk");
    std::fs::write(&self_loop, desc("self.vmdk")).unwrap();
    expect_invalid(Vmdk::open(&self_loop), "backing chain");
}

#[test]
fn hand_written_descriptor_mixes_extent_types() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (sparse_data, sparse) = convert(dir.path(), MIB, "monolithicSparse", "piece");
    let flat_data = source_bytes(2 * MIB, 99);
    std::fs::write(dir.path().join("piece-flat.bin"), &flat_data).unwrap();
    // Flat from sector 1024 of the file for 1024 sectors, 512 zero sectors, the sparse
    // piece, then VMFS (flat) from sector 0 for 7 sectors.
    let desc = format!(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
         createType=\"custom\"\n\nRW 1024 FLAT \"piece-flat.bin\" 1024\nRW 512 ZERO\n\
         RDONLY 2048 SPARSE \"{}\"\nRW 7 VMFS \"piece-flat.bin\"\n",
        sparse.file_name().unwrap().to_str().unwrap()
    );
    let path = dir.path().join("mixed.vmdk");
    std::fs::write(&path, desc).unwrap();
    let mut expected = flat_data[512 * 1024..512 * 2048].to_vec();
    expected.extend(std::iter::repeat_n(0u8, 512 * 512));
    expected.extend_from_slice(&sparse_data);
    expected.extend_from_slice(&flat_data[..7 * 512]);
    let img = Vmdk::open(&path).unwrap();
    assert_eq!(img.info().files.len(), 3);
    assert_eq!(sha(&read_all(&img, 777_777)), sha(&expected));
    check_random_reads_with(&img, &expected, 300, 200_000, 32);
}

/// A small COWD (vmfsSparse) extent: 4 MiB, 8 KiB grains, grains 0, 5 and 511 allocated.
fn cowd_image() -> (Vec<u8>, Vec<u8>) {
    let grain = 8192usize;
    let capacity = 4 * MIB;
    let mut file = vec![0u8; 40 * 512];
    file[..4].copy_from_slice(b"COWD");
    let put = |f: &mut Vec<u8>, at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put(&mut file, 4, 1);
    put(&mut file, 8, 3);
    put(&mut file, 12, (capacity / 512) as u32);
    put(&mut file, 16, (grain / 512) as u32);
    put(&mut file, 20, 4); // GD at sector 4
    put(&mut file, 24, 1);
    put(&mut file, 4 * 512, 5); // GT at sector 5
    let mut expected = vec![0u8; capacity];
    for (i, g) in [0usize, 5, 511].into_iter().enumerate() {
        let sector = file.len() / 512;
        put(&mut file, 5 * 512 + g * 4, sector as u32);
        let bytes: Vec<u8> = (0..grain).map(|b| (b * 7 + i * 31 + 1) as u8).collect();
        expected[g * grain..(g + 1) * grain].copy_from_slice(&bytes);
        file.extend_from_slice(&bytes);
    }
    (file, expected)
}

#[test]
fn vmfs_sparse_cowd_extent_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (file, expected) = cowd_image();
    std::fs::write(dir.path().join("disk-delta.vmdk"), &file).unwrap();
    let desc = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
                createType=\"vmfsSparse\"\nRW 8192 VMFSSPARSE \"disk-delta.vmdk\"\n";
    let path = dir.path().join("disk.vmdk");
    std::fs::write(&path, desc).unwrap();
    let img = Vmdk::open(&path).unwrap();
    assert_eq!(sha(&read_all(&img, 777_777)), sha(&expected));
    check_random_reads_with(&img, &expected, 300, 200_000, 32);
    let direct = Vmdk::open(&dir.path().join("disk-delta.vmdk")).unwrap();
    assert_eq!(direct.info().variant.as_deref(), Some("vmfsSparse"));
    assert_eq!(sha(&read_all(&direct, 777_777)), sha(&expected));
}

#[test]
fn seseparse_and_rdm_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["SESPARSE", "VMFSRDM"] {
        let path = dir.path().join("d.vmdk");
        std::fs::write(
            &path,
            format!("# Disk DescriptorFile\nversion=1\nRW 2048 {kind} \"x.vmdk\"\n"),
        )
        .unwrap();
        assert!(
            matches!(Vmdk::open(&path), Err(FormatError::Unsupported { .. })),
            "{kind}"
        );
    }
}

/// A monolithicSparse image and its header fields.
fn sparse_fixture(dir: &Path) -> (Vec<u8>, PathBuf, KdmvHeader) {
    let (data, path) = convert(dir, 2 * MIB, "monolithicSparse", "h");
    let bytes = std::fs::read(&path).unwrap();
    let header = KdmvHeader::parse(bytes[..512].try_into().unwrap());
    (data, path, header)
}

fn patch(path: &Path, at: u64, bytes: &[u8]) {
    let mut f = std::fs::read(path).unwrap();
    let at = at as usize;
    f[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, f).unwrap();
}

#[test]
fn hostile_grain_directory_entries() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (data, path, h) = sparse_fixture(dir.path());
    let gd_at = h.gd_offset_sectors * 512;
    let rgd_at = h.rgd_offset_sectors * 512;
    // Primary GD entry past the end: the redundant GD is used, and says so.
    patch(&path, gd_at, &0x00ff_ff00u32.to_le_bytes());
    let img = Vmdk::open(&path).unwrap();
    assert!(img.info().notes.iter().any(|n| n.contains("redundant")));
    assert_eq!(sha(&read_all(&img, 777_777)), sha(&data));
    // Both past the end: refused, naming the primary entry.
    patch(&path, rgd_at, &0x00ff_ff00u32.to_le_bytes());
    let (offset, _) = expect_invalid(Vmdk::open(&path), "grain directory entry");
    assert_eq!(offset, gd_at);
}

#[test]
fn hostile_grain_table_entry_at_header() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, path, h) = sparse_fixture(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let gt_sector = u64::from(le_u32(&bytes, (h.gd_offset_sectors * 512) as usize));
    // The first allocated GTE (the source's second MiB is data).
    let gt_at = gt_sector * 512;
    let gte = (0..512u64)
        .find(|i| le_u32(&bytes, (gt_at + i * 4) as usize) > 1)
        .unwrap();
    patch(&path, gt_at + gte * 4, &1u32.to_le_bytes());
    let img = Vmdk::open(&path).unwrap();
    let mut buf = vec![0u8; 65536];
    let err = img.read_at(&mut buf, gte * 65536).unwrap_err();
    assert!(err.to_string().contains("grain table entry"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("byte {}", gt_at + gte * 4)),
        "{err}"
    );
    // Past the end of the file.
    patch(&path, gt_at + gte * 4, &0x0fff_ffffu32.to_le_bytes());
    let img = Vmdk::open(&path).unwrap();
    let err = img.read_at(&mut buf, gte * 65536).unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
}

#[test]
fn hostile_header_sizes() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, path, _) = sparse_fixture(dir.path());
    let orig = std::fs::read(&path).unwrap();
    let cases: [(u64, Vec<u8>, &str); 5] = [
        (12, (u64::MAX / 4).to_le_bytes().to_vec(), "capacity"),
        (20, 0u64.to_le_bytes().to_vec(), "grainSize"),
        (20, (1u64 << 40).to_le_bytes().to_vec(), "grainSize"),
        (44, 4096u32.to_le_bytes().to_vec(), "numGTEsPerGT"),
        (12, (1u64 << 40).to_le_bytes().to_vec(), "gdOffset"),
    ];
    for (at, bytes, field) in cases {
        std::fs::write(&path, &orig).unwrap();
        patch(&path, at, &bytes);
        expect_invalid(Vmdk::open(&path), field);
    }
    // Descriptor size beyond the cap.
    std::fs::write(&path, &orig).unwrap();
    patch(&path, 36, &(1u64 << 30).to_le_bytes());
    expect_invalid(Vmdk::open(&path), "descriptorSize");
}

#[test]
fn truncated_images_fail_cleanly() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for sub in ["monolithicSparse", "streamOptimized"] {
        let (_, path) = convert(dir.path(), 3 * MIB, sub, sub);
        let full = std::fs::read(&path).unwrap();
        for cut in [600, full.len() / 2, full.len() - 700] {
            std::fs::write(&path, &full[..cut]).unwrap();
            if let Ok(img) = Vmdk::open(&path) {
                let mut buf = vec![0u8; MIB];
                let mut pos = 0;
                while pos < img.size() {
                    if let Err(e) = img.read_at(&mut buf, pos) {
                        assert!(e.to_string().contains(path.to_str().unwrap()), "{e}");
                    }
                    pos += MIB as u64;
                }
            }
        }
    }
}

#[test]
fn hostile_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.vmdk");
    // 10^6 extents: larger than the descriptor cap.
    let mut many = String::from("# Disk DescriptorFile\nversion=1\ncreateType=\"x\"\n");
    for _ in 0..1_000_000 {
        many.push_str("RW 1 ZERO\n");
    }
    std::fs::write(&path, &many).unwrap();
    expect_invalid(Vmdk::open(&path), "vmdk descriptor");
    // Under the size cap but over the extent cap.
    let mut many = String::from("# Disk DescriptorFile\n");
    for _ in 0..MAX_EXTENTS + 5 {
        many.push_str("RW 1 ZERO\n");
    }
    std::fs::write(&path, &many).unwrap();
    let (_, reason) = expect_invalid(Vmdk::open(&path), "vmdk descriptor.extent");
    assert!(reason.contains("more than"), "{reason}");
    // NUL in an extent path and in the parent hint.
    std::fs::write(&path, "# Disk DescriptorFile\nRW 8 FLAT \"a\0b\" 0\n").unwrap();
    let (offset, _) = expect_invalid(Vmdk::open(&path), "vmdk descriptor");
    assert_eq!(offset, 34);
    std::fs::write(
        &path,
        "# Disk DescriptorFile\nparentFileNameHint=\"p\0q\"\nRW 8 ZERO\n",
    )
    .unwrap();
    expect_invalid(Vmdk::open(&path), "vmdk descriptor");
    // Trailing NUL padding is fine.
    std::fs::write(&path, "# Disk DescriptorFile\nRW 8 ZERO\n\0\0\0\0").unwrap();
    assert_eq!(Vmdk::open(&path).unwrap().size(), 4096);
    // Sizes that overflow.
    std::fs::write(
        &path,
        "# Disk DescriptorFile\nRW 18446744073709551615 ZERO\nRW 5 ZERO\n",
    )
    .unwrap();
    expect_invalid(Vmdk::open(&path), "extent");
    // A flat extent longer than its file.
    std::fs::write(dir.path().join("f.bin"), [0u8; 1024]).unwrap();
    std::fs::write(&path, "# Disk DescriptorFile\nRW 3 FLAT \"f.bin\" 0\n").unwrap();
    expect_invalid(Vmdk::open(&path), "extent");
}

#[test]
fn probe_recognises_headers_and_descriptors() {
    assert!(probe(b"KDMV\x01\0\0\0"));
    assert!(probe(b"COWD\x01\0\0\0"));
    assert!(probe(b"# Disk DescriptorFile\nversion=1\n"));
    assert!(probe(b"version=1\nCID=1\ncreateType=\"monolithicFlat\"\n"));
    assert!(!probe(b"#!/bin/sh\necho hi\n"));
    assert!(!probe(&[0u8; 4096]));
}

#[test]
fn stream_optimized_footer_gd_at_end() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (data, path) = convert(dir.path(), 3 * MIB, "streamOptimized", "so");
    let mut bytes = std::fs::read(&path).unwrap();
    // As VMware writes it: GD_AT_END in the header, the real header in a footer after a
    // footer marker, then an end-of-stream marker.
    let header: Vec<u8> = bytes[..512].to_vec();
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    let mut marker = [0u8; 512];
    marker[0] = 1;
    marker[12] = 3;
    bytes.extend_from_slice(&marker);
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&[0u8; 512]);
    bytes[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let img = Vmdk::open(&path).unwrap();
    assert_eq!(sha(&read_all(&img, 777_777)), sha(&data));
    // A damaged footer is refused, naming it.
    let footer_at = bytes.len() - 1024;
    bytes[footer_at] = b'X';
    std::fs::write(&path, &bytes).unwrap();
    let (offset, _) = expect_invalid(Vmdk::open(&path), "footer.magicNumber");
    assert_eq!(offset, footer_at as u64);
}

/// Sequential-read speed against `qemu-img convert -O raw` (run with `--ignored`).
#[test]
#[ignore = "timing; run by hand"]
fn sequential_read_speed() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for sub in ["monolithicSparse", "streamOptimized"] {
        let (data, path) = convert(dir.path(), 64 * MIB, sub, sub);
        let t = std::time::Instant::now();
        let img = Vmdk::open(&path).unwrap();
        let mut buf = vec![0u8; 4 * MIB];
        let mut h = Sha256::new();
        let mut pos = 0u64;
        while pos < img.size() {
            let n = img.read_at(&mut buf, pos).unwrap();
            h.update(&buf[..n]);
            pos += n as u64;
        }
        let ours = t.elapsed();
        assert_eq!(hex::encode(h.finalize()), sha(&data));
        let t = std::time::Instant::now();
        qemu_raw(&path);
        eprintln!(
            "{sub}: vmdk reader + sha256 {ours:?}, qemu-img convert -O raw {:?}",
            t.elapsed()
        );
    }
}
