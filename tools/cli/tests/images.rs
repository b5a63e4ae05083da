//! `vestige image info` and `vestige export raw` on images made by the real tools: one
//! source converted by qemu-img into every format and subformat it writes, acquired by
//! ewfacquire into a split E01, and cut by `split` into a split raw set. Every image must
//! be recognised by its content and export to exactly the source's bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{code, have, ok, out, pseudo_random, sha256, sha256_file, vestige};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: usize = 1 << 20;

/// 3 MiB of noise, 4 MiB of zeros (unallocated in sparse formats), 2 MiB of noise.
fn source(dir: &Path) -> (PathBuf, Vec<u8>) {
    let mut data = pseudo_random(3 * MIB as u64, 0x001a_e6e5);
    data.extend(std::iter::repeat_n(0u8, 4 * MIB));
    data.extend(pseudo_random(2 * MIB as u64, 0x005e_c07d));
    let path = dir.join("source.raw");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

fn qemu_img(dir: &Path, src: &Path, format: &str, opts: &[&str], name: &str) -> PathBuf {
    let dst = dir.join(name);
    ok(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", format])
        .args(opts)
        .arg(src)
        .arg(&dst));
    dst
}

/// `image info --json`, then `export raw`: the format it names and the bytes it restores.
fn check(image: &Path, format: &str, want_sha: &str, size: u64) -> serde_json::Value {
    let info: serde_json::Value =
        serde_json::from_str(&ok(vestige().args(["image", "info", "--json"]).arg(image))).unwrap();
    assert_eq!(info["format"], format, "{}: {info}", image.display());
    assert_eq!(info["virtual_size_bytes"], size, "{}", image.display());
    let raw = image.with_extension("exported.raw");
    let _ = std::fs::remove_file(&raw);
    let o = out(vestige().args(["export", "raw"]).arg(image).arg(&raw));
    let (rc, err) = code(&o);
    assert_eq!(rc, 0, "export raw {}: {err}", image.display());
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["sha256"], want_sha, "{}", image.display());
    assert_eq!(sha256_file(&raw), want_sha, "{}", image.display());
    std::fs::remove_file(&raw).unwrap();
    // The same bytes hashed without an output, on one thread and on several.
    for threads in ["1", "3"] {
        let h: serde_json::Value = serde_json::from_str(&ok(vestige()
            .args(["image", "hash", "--threads", threads])
            .arg(image)))
        .unwrap();
        assert_eq!(h["sha256"], want_sha, "image hash {}: {h}", image.display());
        assert_eq!(h["problems"], serde_json::json!([]), "{}", image.display());
    }
    info
}

#[test]
fn every_format_is_recognised_by_content_and_exports_the_source() {
    if !have("qemu-img") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (src, data) = source(dir);
    let sha = sha256(&data);
    let size = data.len() as u64;
    let cases: &[(&str, &[&str], &str, &str)] = &[
        ("qcow2", &[], "plain.qcow2", "qcow2"),
        (
            "qcow2",
            &["-c", "-o", "compression_type=zstd"],
            "zstd.qcow2",
            "qcow2",
        ),
        ("qcow2", &["-o", "compat=0.10"], "v2.qcow2", "qcow2"),
        (
            "vmdk",
            &["-o", "subformat=monolithicSparse"],
            "sparse.vmdk",
            "vmdk",
        ),
        (
            "vmdk",
            &["-o", "subformat=streamOptimized"],
            "stream.vmdk",
            "vmdk",
        ),
        (
            "vmdk",
            &["-o", "subformat=twoGbMaxExtentFlat"],
            "flat.vmdk",
            "vmdk",
        ),
        (
            "vpc",
            &["-o", "subformat=dynamic,force_size=on"],
            "dynamic.vhd",
            "vhd",
        ),
        (
            "vpc",
            &["-o", "subformat=fixed,force_size=on"],
            "fixed.vhd",
            "vhd",
        ),
        ("vhdx", &[], "dynamic.vhdx", "vhdx"),
        ("vdi", &[], "dynamic.vdi", "vdi"),
        // Extensions lie: detection is by content.
        ("qcow2", &[], "misnamed.raw", "qcow2"),
    ];
    for (fmt, opts, name, want) in cases {
        let image = qemu_img(dir, &src, fmt, opts, name);
        check(&image, want, &sha, size);
    }

    // A split raw set (`split`), opened from a middle segment.
    ok(Command::new("split")
        .args(["-b", "2000000", "-d", "-a", "3", "--numeric-suffixes=1"])
        .arg(&src)
        .arg(dir.join("split.")));
    let info = check(&dir.join("split.003"), "raw", &sha, size);
    assert_eq!(info["files"].as_array().unwrap().len(), 5, "{info}");
    assert_eq!(sha256_file(&src), sha, "the source changed");
}

#[test]
fn split_e01_from_ewfacquire_exports_the_source_and_its_stored_hashes_match() {
    if !have("ewfacquire") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (src, data) = source(dir);
    let sha = sha256(&data);
    ok(Command::new("ewfacquire")
        .args(["-u", "-q", "-t"])
        .arg(dir.join("ev"))
        .args([
            "-c",
            "deflate:fast",
            "-S",
            "1MiB",
            "-C",
            "CASE-7",
            "-e",
            "Examiner",
        ])
        .args(["-E", "1", "-D", "test disk", "-N", "notes", "-d", "sha1"])
        .arg(&src));
    assert!(dir.join("ev.E02").is_file(), "ewfacquire made one segment");
    let info = check(&dir.join("ev.E02"), "e01", &sha, data.len() as u64);
    let md5 = {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(&data))
    };
    assert_eq!(info["stored_hashes"]["md5"], md5.as_str(), "{info}");
    // A damaged chunk: export refuses and leaves nothing.
    let e01 = dir.join("ev.E01");
    let mut bytes = std::fs::read(&e01).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&e01, &bytes).unwrap();
    let raw = dir.join("damaged.raw");
    let o = out(vestige().args(["export", "raw"]).arg(&e01).arg(&raw));
    assert_ne!(code(&o).0, 0, "a damaged E01 exported");
    assert!(!raw.exists());
}
