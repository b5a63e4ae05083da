//! End to end: real disks (mkfs.ext4 + sgdisk, loop devices) acquired by `vestige`, then
//! checked with stock tools (zstd, signify-openbsd) and by `vestige verify`; tampering,
//! truncation, interruption and bad input each give the promised outcome.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn image_file_round_trips_through_stock_tools() {
    if !(have("mkfs.ext4")
        && have("sgdisk")
        && have("zstd")
        && have("signify-openbsd")
        && have("md5sum"))
    {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let files = make_files(t.path());
    let disk = make_disk(t.path(), "disk.raw", 40, Some(&files));
    let before = sha256_file(&disk);
    let (sec, public) = new_key(t.path(), "examiner");
    let case = new_case(t.path(), "case");

    let o = acquire(
        &disk,
        &case,
        "disk1",
        &sec,
        &["--md5", "--sha1", "--chunk-mib", "1"],
    );
    let (rc, err) = code(&o);
    assert_eq!(rc, 0, "acquire failed: {err}");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["sha256"], before.as_str());
    let md5 = ok(Command::new("md5sum").arg(&disk));
    assert_eq!(summary["md5"], md5.split_whitespace().next().unwrap());
    let sha1 = ok(Command::new("sha1sum").arg(&disk));
    assert_eq!(summary["sha1"], sha1.split_whitespace().next().unwrap());

    let item = case.join("disk1");
    let m = manifest(&item);
    assert_eq!(m["status"], "complete");
    assert_eq!(m["source"]["kind"], "regular_file");
    assert_eq!(m["acquisition"]["bytes_acquired"], 40u64 << 20);
    assert_eq!(m["chunks"]["digests"].as_array().unwrap().len(), 40);
    assert_eq!(m["hashes"]["sha256"], before.as_str());

    // Stock zstd restores the exact bytes.
    let restored = out(Command::new("zstd").arg("-dc").arg(item.join("image.zst")));
    assert!(restored.status.success());
    assert_eq!(sha256(&restored.stdout), before);
    // Stock signify checks the signed checksum list and every file it names.
    let s = out(Command::new("signify-openbsd")
        .args(["-C", "-p"])
        .arg(&public)
        .args(["-x", "SHA256.sig"])
        .current_dir(&item));
    assert!(
        s.status.success(),
        "signify -C: {}",
        String::from_utf8_lossy(&s.stderr)
    );
    // vestige verify, pinned to the key, and as JSON.
    let v = out(vestige()
        .arg("verify")
        .arg(&item)
        .arg("--pubkey")
        .arg(&public)
        .arg("--json"));
    assert_eq!(code(&v).0, 0, "{}", String::from_utf8_lossy(&v.stdout));
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(report["items"][0]["verdict"], "verified");
    assert_eq!(report["items"][0]["image"]["chunks_ok"], 40);
    // export raw gives the source back.
    let raw = t.path().join("export.raw");
    ok(vestige().args(["export", "raw"]).arg(&item).arg(&raw));
    assert_eq!(sha256_file(&raw), before);
    // The whole case verifies and its custody chain is intact.
    let v = out(vestige().arg("verify").arg(&case));
    assert_eq!(code(&v).0, 0);
    assert!(String::from_utf8_lossy(&v.stdout).contains("hash chain intact"));
    // The source was never written.
    assert_eq!(sha256_file(&disk), before);
}

#[test]
fn loop_device_is_set_read_only_and_never_written() {
    if !(have("losetup") && have("blockdev") && have("mkfs.ext4") && have("sgdisk") && root()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let disk = make_disk(t.path(), "disk.raw", 24, Some(&make_files(t.path())));
    let before = sha256_file(&disk);
    let (sec, _) = new_key(t.path(), "k");
    let case = new_case(t.path(), "case");
    let dev = Loop::attach(&disk);
    assert_eq!(
        ok(Command::new("blockdev").arg("--getro").arg(&dev.0)).trim(),
        "0"
    );

    let o = acquire(&dev.0, &case, "loop", &sec, &[]);
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    let m = manifest(&case.join("loop"));
    assert_eq!(m["source"]["kind"], "block_device");
    assert_eq!(m["source"]["write_protection"]["read_only_before"], false);
    assert_eq!(m["source"]["write_protection"]["blkroset"], "set");
    assert_eq!(m["source"]["write_protection"]["read_only_verified"], true);
    assert_eq!(m["source"]["logical_sector_size"], 512);
    assert_eq!(m["source"]["size_bytes"], 24u64 << 20);
    assert_eq!(
        m["source"]["loop_backing_file"].as_str().map(Path::new),
        Some(std::fs::canonicalize(&disk).unwrap().as_path())
    );
    assert_eq!(m["hashes"]["sha256"], before.as_str());
    // The kernel flag really is set: a write through the device now fails.
    assert_eq!(
        ok(Command::new("blockdev").arg("--getro").arg(&dev.0)).trim(),
        "1"
    );
    let w = out(Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", dev.0.display()))
        .args(["bs=512", "count=1", "conv=notrunc"]));
    assert!(
        !w.status.success(),
        "a write to the read-only device succeeded"
    );
    drop(dev);
    assert_eq!(sha256_file(&disk), before);
}

/// Offset of frame `index` in a container, from its seek table.
fn frame_offset(image: &Path, index: usize) -> u64 {
    let r = vestige_evidence::read_at::FileReader::open(image).unwrap();
    let t = vestige_evidence::seekable::SeekTable::read(&r).unwrap();
    t.frame(index).unwrap().compressed_offset
}

fn copy_item(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["image.zst", "manifest.json", "SHA256.sig"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x01;
    f.write_all_at(&b, offset).unwrap();
}

fn problems(report: &serde_json::Value) -> String {
    report["items"][0]["problems"].to_string()
}

#[test]
fn tampering_and_truncation_are_caught_and_named() {
    if !(have("mkfs.ext4") && have("sgdisk") && have("signify-openbsd")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let disk = make_disk(t.path(), "disk.raw", 16, Some(&make_files(t.path())));
    let (sec, public) = new_key(t.path(), "k");
    let case = new_case(t.path(), "case");
    assert_eq!(
        code(&acquire(&disk, &case, "orig", &sec, &["--chunk-mib", "1"])).0,
        0
    );
    let orig = case.join("orig");
    let signify_ok = |item: &Path| {
        out(Command::new("signify-openbsd")
            .args(["-C", "-p"])
            .arg(&public)
            .args(["-x", "SHA256.sig"])
            .current_dir(item))
        .status
        .success()
    };

    // One byte inside frame 5 of image.zst: the chunk and its source range are named.
    let a = t.path().join("frame");
    copy_item(&orig, &a);
    let at = frame_offset(&a.join("image.zst"), 5) + 40;
    flip_byte(&a.join("image.zst"), at);
    let (rc, r) = verify_json(&a, &public);
    assert_eq!(rc, 1);
    let bad = &r["items"][0]["image"]["first_bad_chunk"];
    assert_eq!(bad["index"], 5, "{r}");
    assert_eq!(bad["offset_bytes"], 5u64 << 20);
    assert_eq!(bad["end_bytes"], 6u64 << 20);
    assert!(problems(&r).contains("image.zst: SHA-256"), "{r}");
    assert!(!signify_ok(&a));

    // One byte of manifest.json.
    let b = t.path().join("manifest");
    copy_item(&orig, &b);
    let text = std::fs::read_to_string(b.join("manifest.json")).unwrap();
    std::fs::write(
        b.join("manifest.json"),
        text.replacen("Tess Tester", "Tess Teste_", 1),
    )
    .unwrap();
    let (rc, r) = verify_json(&b, &public);
    assert_eq!(rc, 1);
    assert!(problems(&r).contains("manifest.json: SHA-256"), "{r}");
    assert!(!signify_ok(&b));

    // One byte of the signature's base64.
    let c = t.path().join("sig");
    copy_item(&orig, &c);
    let sig = std::fs::read_to_string(c.join("SHA256.sig")).unwrap();
    let line2 = sig.find('\n').unwrap() + 20;
    let mut bytes = sig.into_bytes();
    bytes[line2] = if bytes[line2] == b'A' { b'B' } else { b'A' };
    std::fs::write(c.join("SHA256.sig"), bytes).unwrap();
    let (rc, r) = verify_json(&c, &public);
    assert_eq!(rc, 1);
    assert!(problems(&r).contains("SHA256.sig"), "{r}");
    assert!(!signify_ok(&c));

    // A truncated image.
    let d = t.path().join("trunc");
    copy_item(&orig, &d);
    let len = std::fs::metadata(d.join("image.zst")).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("image.zst"))
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let (rc, r) = verify_json(&d, &public);
    assert_eq!(rc, 1);
    assert!(problems(&r).contains("image.zst"), "{r}");

    // The wrong key.
    let (_, other) = new_key(t.path(), "other");
    let (rc, r) = verify_json(&orig, &other);
    assert_eq!(rc, 1);
    assert!(problems(&r).contains("key"), "{r}");
    // The untouched original still verifies.
    assert_eq!(verify_json(&orig, &public).0, 0);
    // Export refuses damaged evidence and leaves nothing behind.
    let raw = t.path().join("x.raw");
    let e = out(vestige()
        .args(["export", "raw"])
        .arg(&a)
        .arg(&raw)
        .arg("--pubkey")
        .arg(&public));
    assert_eq!(code(&e).0, 1);
    assert!(!raw.exists() && !t.path().join("x.raw.partial").exists());

    // An edited custody log breaks the case verification at the edited line.
    let log = case.join("custody.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replacen("Tess Tester", "Eve", 1)).unwrap();
    let v = out(vestige().arg("verify").arg(&case));
    assert_eq!(code(&v).0, 1);
    assert!(String::from_utf8_lossy(&v.stdout).contains("BROKEN"));
}

#[test]
fn bad_input_gives_one_clear_error_and_no_evidence() {
    let t = tempfile::tempdir().unwrap();
    let (sec, _) = new_key(t.path(), "k");
    let case = new_case(t.path(), "case");
    let src = t.path().join("src.raw");
    std::fs::write(&src, vec![7u8; 100_000]).unwrap();

    let o = acquire(&t.path().join("missing.raw"), &case, "a", &sec, &[]);
    let (rc, err) = code(&o);
    assert_eq!(rc, 2);
    assert!(
        err.contains("missing.raw") && err.contains("No such file"),
        "{err}"
    );
    assert!(!case.join("a").exists());

    let o = acquire(t.path(), &case, "b", &sec, &[]);
    let (rc, err) = code(&o);
    assert_eq!(rc, 2);
    assert!(err.contains("is a directory"), "{err}");
    assert!(!case.join("b").exists());

    let o = acquire(Path::new("/dev/null"), &case, "c", &sec, &[]);
    assert_eq!(code(&o).0, 2);
    assert!(code(&o).1.contains("character device"));

    for bad in ["../escape", "a/b", "..", ""] {
        let o = acquire(&src, &case, bad, &sec, &[]);
        assert_eq!(code(&o).0, 2, "item name {bad:?} accepted");
    }
    assert!(!t.path().join("escape").exists());

    assert_eq!(code(&acquire(&src, &case, "ok", &sec, &[])).0, 0);
    let o = acquire(&src, &case, "ok", &sec, &[]);
    assert_eq!(code(&o).0, 2);
    assert!(code(&o).1.contains("already exists"));

    let o = acquire(&src, &t.path().join("nocase"), "x", &sec, &[]);
    assert_eq!(code(&o).0, 2);
    assert!(code(&o).1.contains("case.json"), "{}", code(&o).1);

    // A secret key file that is not one.
    let o = acquire(&src, &case, "d", &src, &[]);
    assert_eq!(code(&o).0, 2);
    assert!(!case.join("d").exists());

    // verify of something that is not evidence.
    let o = out(vestige().arg("verify").arg(t.path().join("missing")));
    assert_eq!(code(&o).0, 2);
}

#[test]
fn output_on_the_source_is_refused_before_the_source_is_touched() {
    if !(have("losetup") && have("mkfs.ext4") && have("blockdev") && root()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let disk = t.path().join("fs.raw");
    ok(Command::new("truncate").args(["-s", "32M"]).arg(&disk));
    ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&disk));
    let dev = Loop::attach(&disk);
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    ok(Command::new("mount").arg(&dev.0).arg(&mnt));
    let mount = Mount(mnt.clone());
    let (sec, _) = new_key(t.path(), "k");
    let case = new_case(&mnt, "case");
    let o = acquire(&dev.0, &case, "self", &sec, &[]);
    let (rc, err) = code(&o);
    assert_eq!(rc, 2);
    assert!(
        err.contains("refusing to write evidence onto the source"),
        "{err}"
    );
    assert!(!case.join("self").exists());
    // BLKROSET was never applied, so the mounted file system still works.
    assert_eq!(
        ok(Command::new("blockdev").arg("--getro").arg(&dev.0)).trim(),
        "0"
    );
    drop(mount);
    drop(dev);
}

#[test]
fn unwritable_case_directory_fails_cleanly() {
    if !(have("mount") && root()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("ro");
    std::fs::create_dir(&mnt).unwrap();
    ok(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt));
    let mount = Mount(mnt.clone());
    let (sec, _) = new_key(t.path(), "k");
    let case = new_case(&mnt, "case");
    ok(Command::new("mount").args(["-o", "remount,ro"]).arg(&mnt));
    let src = t.path().join("src.raw");
    std::fs::write(&src, vec![1u8; 65536]).unwrap();
    let o = acquire(&src, &case, "x", &sec, &[]);
    let (rc, err) = code(&o);
    assert_eq!(rc, 2);
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!case.join("x").exists());
    drop(mount);
}

#[test]
fn interrupted_acquisition_is_kept_marked_incomplete_and_verifies_as_such() {
    if !have("zstd") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (sec, public) = new_key(t.path(), "k");
    let case = new_case(t.path(), "case");
    // A large sparse source: long enough to interrupt, cheap to store.
    let src = t.path().join("big.raw");
    ok(Command::new("truncate").args(["-s", "64G"]).arg(&src));
    // Zeros compress: the space check (sized for an incompressible 64 GiB) is skipped.
    let child = spawn_acquire(&src, &case, "cut", &sec, &["--skip-space-check"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (rc, err) = code(&interrupt(child));
    assert_eq!(rc, 3, "{err}");
    assert!(
        err.contains("INCOMPLETE") && err.contains("interrupted"),
        "{err}"
    );
    let item = case.join("cut");
    let m = manifest(&item);
    assert_eq!(m["status"], "incomplete");
    let got = m["acquisition"]["bytes_acquired"].as_u64().unwrap();
    assert!(
        got > 0 && got < 64 << 30 && got.is_multiple_of(4 << 20),
        "{got}"
    );
    assert!(m["incomplete_reason"].as_str().unwrap().contains("missing"));
    // Verify: sound but incomplete (exit 3), and never "verified" as complete.
    assert_verified_incomplete(&item, &public);
    // The partial image is valid: stock zstd restores exactly the acquired prefix.
    let restored = out(Command::new("sh").arg("-c").arg(format!(
        "zstd -dc '{}' | wc -c",
        item.join("image.zst").display()
    )));
    assert_eq!(
        String::from_utf8_lossy(&restored.stdout).trim(),
        got.to_string()
    );
}

#[test]
fn passphrase_keys_and_per_case_keys() {
    let t = tempfile::tempdir().unwrap();
    let pass = t.path().join("pass.txt");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let prefix = t.path().join("enc");
    ok(vestige()
        .args(["key", "generate", "--passphrase-file"])
        .arg(&pass)
        .arg(&prefix));
    let sec = prefix.with_extension("sec");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sec).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let case = new_case(t.path(), "case");
    let src = t.path().join("src.raw");
    std::fs::write(&src, vec![3u8; 3 << 20]).unwrap();

    let o = acquire(
        &src,
        &case,
        "a",
        &sec,
        &["--passphrase-file", pass.to_str().unwrap()],
    );
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    let wrong = t.path().join("wrong.txt");
    std::fs::write(&wrong, "wrong\n").unwrap();
    let o = acquire(
        &src,
        &case,
        "b",
        &sec,
        &["--passphrase-file", wrong.to_str().unwrap()],
    );
    assert_eq!(code(&o).0, 2);
    assert!(
        code(&o).1.to_lowercase().contains("passphrase"),
        "{}",
        code(&o).1
    );
    assert!(!case.join("b").exists());

    // Without --key: one per-case key, its secret outside the case, reused.
    let store = t.path().join("store");
    let run = |item: &str| {
        out(vestige()
            .env("VESTIGE_KEY_DIR", &store)
            .args(["acquire", "disk"])
            .arg(&src)
            .arg("--case")
            .arg(&case)
            .args(["--item", item]))
    };
    let first = run("p1");
    assert_eq!(code(&first).0, 0, "{}", code(&first).1);
    assert!(code(&first).1.contains("fingerprint"));
    let second = run("p2");
    assert_eq!(code(&second).0, 0);
    let fp = |o: &std::process::Output| {
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["key_fingerprint"].clone()
    };
    assert_eq!(fp(&first), fp(&second));
    let secrets = std::fs::read_dir(&store).unwrap().count();
    assert_eq!(secrets, 1);
    for f in files_under(&case) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(
            !text.contains("secret key"),
            "a secret key is inside the case: {}",
            f.display()
        );
    }
    // verify finds the case key by its key number.
    let v = out(vestige().arg("verify").arg(&case));
    assert_eq!(code(&v).0, 0, "{}", String::from_utf8_lossy(&v.stdout));
}
