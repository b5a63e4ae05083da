//! `vestige export e01` checked by libewf's own tools: ewfverify recomputes the MD5 and
//! SHA-1 and compares them with the ones we stored, ewfexport gives back the bytes, ewfinfo
//! shows the case metadata. From an item (verified on the way, custody logged) and from an
//! image of another format.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{
    acquire, code, have, new_case, new_key, ok, out, pseudo_random, sha256, sha256_file, vestige,
};
use std::path::Path;
use std::process::Command;

/// Whether libewf's tools are here (required when VESTIGE_REQUIRE_TOOLS=1).
fn have_ewf() -> bool {
    have("ewfverify") && have("ewfinfo") && have("ewfexport")
}

/// 2 MiB of noise, 1 MiB of zeros, 5 sectors of noise: the last chunk is short.
fn source() -> Vec<u8> {
    let mut d = pseudo_random(2 << 20, 0xe01e_01e0);
    d.extend(std::iter::repeat_n(0u8, 1 << 20));
    d.extend(pseudo_random(5 * 512, 0x0bad_cafe));
    d
}

/// A case with the test source acquired into item `item` with `extra` flags.
struct Acquired {
    t: tempfile::TempDir,
    public: std::path::PathBuf,
    case: std::path::PathBuf,
    src: std::path::PathBuf,
    data: Vec<u8>,
}

fn acquired(item: &str, extra: &[&str]) -> Acquired {
    let t = tempfile::tempdir().unwrap();
    let (sec, public) = new_key(t.path(), "k");
    let data = source();
    let src = t.path().join("src.raw");
    std::fs::write(&src, &data).unwrap();
    let case = new_case(t.path(), "case");
    let (rc, err) = code(&acquire(&src, &case, item, &sec, extra));
    assert_eq!(rc, 0, "{err}");
    Acquired {
        t,
        public,
        case,
        src,
        data,
    }
}

/// `ewfverify` passes and reports the MD5 we stored; `ewfexport` restores `want`.
fn check_with_libewf(first: &Path, want: &[u8]) {
    let v = ok(Command::new("ewfverify")
        .args(["-q", "-d", "sha1"])
        .arg(first));
    assert!(v.contains("SUCCESS"), "{v}");
    let md5 = hex_md5(want);
    assert!(
        v.contains(&md5),
        "ewfverify output lacks the source's MD5 {md5}: {v}"
    );
    let target = first.with_extension("restored");
    ok(Command::new("ewfexport")
        .args(["-q", "-u", "-f", "raw", "-t"])
        .arg(&target)
        .arg(first));
    let restored = target.with_extension("restored.raw");
    assert_eq!(sha256_file(&restored), sha256(want));
    std::fs::remove_file(restored).unwrap();
}

fn hex_md5(d: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(d)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn an_item_exports_to_an_e01_that_libewf_verifies_with_its_case_metadata() {
    if !have_ewf() {
        return;
    }
    let Acquired {
        t,
        public,
        case,
        data,
        ..
    } = acquired("disk1", &["--md5", "--sha1"]);
    let item = case.join("disk1");

    // Small segments: several files.
    let e01 = t.path().join("out/disk1");
    std::fs::create_dir(e01.parent().unwrap()).unwrap();
    let o = out(vestige()
        .args(["export", "e01"])
        .arg(&item)
        .arg(&e01)
        .args([
            "--segment-mib",
            "1",
            "--notes",
            "tab\tand\nnewline",
            "--pubkey",
        ])
        .arg(&public));
    let (rc, err) = code(&o);
    assert_eq!(rc, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = t.path().join("out/disk1.E01");
    assert_eq!(summary["out"], first.display().to_string());
    assert!(
        summary["segments"].as_array().unwrap().len() >= 2,
        "{summary}"
    );
    check_with_libewf(&first, &data);

    let info = ok(Command::new("ewfinfo").arg(&first));
    for want in ["T-1", "Tess Tester", "disk1", "tab and newline", "vestige"] {
        assert!(info.contains(want), "ewfinfo lacks {want:?}: {info}");
    }
    // Our own reader agrees, and sees the stored hashes.
    let h: serde_json::Value =
        serde_json::from_str(&ok(vestige().args(["image", "hash"]).arg(&first))).unwrap();
    assert_eq!(h["sha256"], sha256(&data));
    assert_eq!(h["problems"], serde_json::json!([]));
    assert_eq!(h["md5"], summary["md5"]);

    // The custody log records the export with every segment's SHA-256.
    let log = std::fs::read_to_string(case.join("custody.jsonl")).unwrap();
    let entry: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["action"] == "export-e01")
        .expect("an export-e01 custody entry");
    assert_eq!(entry["hashes"]["disk1.E01 sha256"], sha256_file(&first));
    assert_eq!(entry["hashes"]["e01 media md5"], summary["md5"]);

    // Names already taken: refused before anything is written, nothing removed.
    let o = out(vestige().args(["export", "e01"]).arg(&item).arg(&e01));
    let (rc, err) = code(&o);
    assert_ne!(rc, 0);
    assert!(err.contains("exists; refusing to overwrite"), "{err}");
    check_with_libewf(&first, &data);
}

#[test]
fn a_tampered_item_leaves_no_segment() {
    if !have_ewf() {
        return;
    }
    let Acquired {
        t, public, case, ..
    } = acquired("d", &[]);
    let image = case.join("d/image.zst");
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&image, &bytes).unwrap();
    let first = t.path().join("d.E01");
    let o = out(vestige()
        .args(["export", "e01"])
        .arg(case.join("d"))
        .arg(&first)
        .args(["--segment-mib", "1", "--pubkey"])
        .arg(&public));
    let (rc, err) = code(&o);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("no segment was left"), "{err}");
    let left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("d.E"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn another_format_exports_to_e01_and_back() {
    if !have_ewf() || !have("qemu-img") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let data = source();
    let src = t.path().join("src.raw");
    std::fs::write(&src, &data).unwrap();
    let qcow = t.path().join("src.qcow2");
    ok(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2", "-c"])
        .arg(&src)
        .arg(&qcow));
    let first = t.path().join("fromqcow.E01");
    let o = out(vestige()
        .args([
            "export",
            "e01",
            "--compression",
            "best",
            "--evidence-number",
            "EV-7",
        ])
        .arg(&qcow)
        .arg(&first));
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    check_with_libewf(&first, &data);
    assert!(ok(Command::new("ewfinfo").arg(&first)).contains("EV-7"));
    // An E01 in, an E01 out: its stored hashes are checked on the way.
    let again = t.path().join("again.E01");
    let o = out(vestige().args(["export", "e01"]).arg(&first).arg(&again));
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    check_with_libewf(&again, &data);
}

#[test]
fn acquire_with_format_e01_puts_a_signed_verified_e01_in_the_item() {
    if !have_ewf() {
        return;
    }
    let a = acquired("disk", &["--format", "e01"]);
    let (public, case, data) = (&a.public, &a.case, &a.data);
    assert_eq!(
        sha256_file(&a.src),
        sha256(data),
        "the source was written to"
    );
    let item = case.join("disk");
    let first = item.join("image.E01");
    check_with_libewf(&first, data);
    let info = ok(Command::new("ewfinfo").arg(&first));
    for want in ["T-1", "Tess Tester", "disk"] {
        assert!(info.contains(want), "ewfinfo lacks {want:?}: {info}");
    }
    // Listed in the manifest with its hash, MD5/SHA-1 forced on, and signed: verify passes
    // and fails once the E01 is changed.
    let m = common::manifest(&item);
    let listed: Vec<&str> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"image.E01"), "{listed:?}");
    assert_eq!(m["hashes"]["md5"], hex_md5(data));
    let (rc, v) = common::verify_json(&item, public);
    assert_eq!(rc, 0, "{v}");
    let mut bytes = std::fs::read(&first).unwrap();
    let last = bytes.len() - 200;
    bytes[last] ^= 1;
    std::fs::write(&first, &bytes).unwrap();
    let (rc, v) = common::verify_json(&item, public);
    assert_eq!(rc, 1, "a changed E01 must fail verification: {v}");
}
