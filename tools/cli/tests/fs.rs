//! `vestige bodyfile`, `ls`, `cat` and `extract` through the whole stack: an ext4 made by
//! mkfs.ext4 in a GPT partition made by sgdisk, converted to qcow2 by qemu-img. The
//! bodyfile must equal `fls -r -m /` of the raw disk line for line for every allocated
//! file, every `cat` must equal `icat`, and `extract` must keep hostile names from the
//! evidence inside its output directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{code, have, make_disk, ok, out, sha256, vestige};
use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files with names an attacker would choose, beside ordinary ones.
fn hostile_files(dir: &Path) -> PathBuf {
    let root = dir.join("files");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("home/user/.cache")).unwrap();
    std::fs::write(root.join("etc/hostname"), "suspect\n").unwrap();
    std::fs::write(
        root.join("home/user/notes.txt"),
        "meet at dawn\n".repeat(5000),
    )
    .unwrap();
    std::fs::write(
        root.join("home/user/.cache/big.bin"),
        common::pseudo_random(3 << 20, 7),
    )
    .unwrap();
    for name in [
        &b"new\nline"[..],
        b"esc\x1b[31mred",
        b"pipe|name",
        b"back\\slash",
        b"...",
    ] {
        let p = root.join(std::ffi::OsStr::from_bytes(name));
        std::fs::write(p, name).unwrap();
    }
    std::os::unix::fs::symlink("/etc/passwd", root.join("escape-link")).unwrap();
    root
}

/// The disk (raw) and its qcow2 copy; the ext4 partition starts at sector 2048.
fn disk(dir: &Path) -> (PathBuf, PathBuf) {
    let files = hostile_files(dir);
    let raw = make_disk(dir, "disk.raw", 48, Some(&files));
    let qcow = dir.join("disk.qcow2");
    ok(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow));
    (raw, qcow)
}

fn tools() -> bool {
    have("fls") && have("icat") && have("qemu-img") && have("mkfs.ext4") && have("sgdisk")
}

/// The bodyfile lines of allocated files (no `(deleted)`, no TSK virtual entries).
fn allocated(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.contains("(deleted)") && !l.contains("$OrphanFiles"))
        .map(str::to_string)
        .collect()
}

#[test]
fn bodyfile_of_ext4_in_gpt_in_qcow2_equals_fls() {
    if !tools() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (raw, qcow) = disk(t.path());
    let theirs = ok(Command::new("fls")
        .args(["-r", "-m", "/", "-o", "2048"])
        .arg(&raw));
    let o = out(vestige().arg("bodyfile").arg(&qcow));
    let (rc, err) = code(&o);
    assert_eq!(rc, 0, "{err}");
    let ours = String::from_utf8(o.stdout).unwrap();
    let (a, b) = (allocated(&theirs), allocated(&ours));
    // TSK writes names raw; ours escapes control characters, `|` and `\`. Compare the
    // lines whose names need no escaping, and the escaped ones by their other fields.
    let plain = |s: &BTreeSet<String>| -> BTreeSet<String> {
        s.iter()
            .filter(|l| {
                !l.contains("new")
                    && !l.contains("esc")
                    && !l.contains("pipe")
                    && !l.contains("back")
            })
            .cloned()
            .collect()
    };
    assert_eq!(plain(&a), plain(&b), "fls:\n{theirs}\nours:\n{ours}");
    for escaped in [
        "0|/new\\x0aline|",
        "0|/esc\\x1b[31mred|",
        "0|/pipe\\x7cname|",
        "0|/back\\x5cslash|",
    ] {
        assert!(ours.contains(escaped), "{escaped} missing:\n{ours}");
    }
    assert_eq!(
        ours.lines().count(),
        ours.split('\n').count() - 1,
        "one line per entry"
    );
}

#[test]
fn cat_equals_icat_and_ls_lists_like_fls() {
    if !tools() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (raw, qcow) = disk(t.path());
    for path in [
        "/etc/hostname",
        "/home/user/notes.txt",
        "/home/user/.cache/big.bin",
    ] {
        let o = out(vestige().arg("cat").arg(&qcow).arg(path));
        assert_eq!(code(&o).0, 0, "{}", code(&o).1);
        let inode = ok(Command::new("ifind")
            .args(["-o", "2048", "-n", path])
            .arg(&raw));
        let icat = Command::new("icat")
            .args(["-o", "2048"])
            .arg(&raw)
            .arg(inode.trim())
            .output()
            .unwrap();
        assert_eq!(sha256(&o.stdout), sha256(&icat.stdout), "{path}");
        // The SHA-256 on stderr is that of the bytes written.
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&sha256(&o.stdout)), "{err}");
    }
    let ls = ok(vestige().arg("ls").arg(&qcow).arg("/home/user"));
    assert!(ls.contains("r/r ") && ls.contains(":\tnotes.txt"), "{ls}");
    assert!(ls.contains("d/d ") && ls.contains(":\t.cache"), "{ls}");
    let fls = ok(Command::new("fls").args(["-o", "2048"]).arg(&raw).arg(
        ok(Command::new("ifind")
            .args(["-o", "2048", "-n", "/home/user"])
            .arg(&raw))
        .trim(),
    ));
    assert_eq!(
        ls.lines().collect::<BTreeSet<_>>(),
        fls.lines().collect::<BTreeSet<_>>(),
        "ls of /home/user"
    );
}

#[test]
fn extract_keeps_hostile_names_inside_the_output_directory() {
    if !tools() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (_, qcow) = disk(t.path());
    let dest = t.path().join("out");
    // A symlink planted where a file will go must not be followed.
    std::fs::create_dir_all(dest.join("all/home/user")).unwrap();
    let victim = t.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, dest.join("all/home/user/notes.txt")).unwrap();
    let o = out(vestige()
        .arg("extract")
        .arg(&qcow)
        .arg("/")
        .arg("--out")
        .arg(dest.join("all")));
    let (rc, err) = code(&o);
    assert_eq!(rc, 3, "one file refused, the rest extracted: {err}");
    assert!(err.contains("notes.txt"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    // Every name is one safe component; nothing outside the output directory.
    for entry in walk(&dest) {
        let rel = entry.strip_prefix(&dest).unwrap();
        for c in rel.components() {
            let s = c.as_os_str().to_str().expect("ASCII names");
            assert!(!s.contains(['\n', '\x1b', '/']) && s != "..", "{s:?}");
        }
    }
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("all/extracted.json")).unwrap()).unwrap();
    let big = sidecar
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"].as_str().unwrap().ends_with("big.bin"))
        .expect("big.bin in the sidecar");
    assert_eq!(big["sha256"], sha256(&common::pseudo_random(3 << 20, 7)));
    let on_disk = dest.join("all").join(big["extracted_as"].as_str().unwrap());
    assert_eq!(
        sha256(&std::fs::read(on_disk).unwrap()),
        big["sha256"].as_str().unwrap()
    );
    assert!(sidecar
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["path"] == "new\\x0aline"));
    // The symlink in the evidence was not extracted (nor followed).
    assert!(!sidecar
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["path"].as_str().unwrap().contains("escape-link")));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// An ext4 whose journal needs recovery (debugfs wrote a committed transaction into it,
/// as a crash leaves one): `bodyfile` replays it in memory and equals fls of the copy
/// e2fsprogs replayed (`debugfs jr`); `--as-stored` equals fls of the image itself;
/// `fsstat` says what was replayed; the image is unchanged.
#[test]
fn a_journal_needing_recovery_is_replayed_and_as_stored_is_tsk() {
    if !(have("fls") && have("mkfs.ext4") && have("debugfs")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("f{i}")), format!("file {i}\n")).unwrap();
    }
    let img = dir.join("crashed.raw");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    ok(Command::new("mkfs.ext4")
        .args(["-F", "-q", "-b", "4096", "-d"])
        .arg(&src)
        .arg(&img));
    // The changes, made on a copy; the blocks they touched go into the journal.
    let big = dir.join("big");
    std::fs::write(&big, common::pseudo_random(100_000, 3)).unwrap();
    let after = dir.join("after.raw");
    std::fs::copy(&img, &after).unwrap();
    ok(Command::new("debugfs")
        .args(["-w", "-f", "-"])
        .arg(&after)
        .stdin(
            std::fs::File::open({
                let cmds = dir.join("cmds");
                std::fs::write(&cmds, format!("rm /f3\nwrite {} /planted\n", big.display()))
                    .unwrap();
                cmds
            })
            .unwrap(),
        ));
    let (a, b) = (std::fs::read(&img).unwrap(), std::fs::read(&after).unwrap());
    let mut blocks = Vec::new();
    let mut data = Vec::new();
    for (i, (x, y)) in a.chunks(4096).zip(b.chunks(4096)).enumerate() {
        if x != y {
            blocks.push(i.to_string());
            data.extend_from_slice(y);
        }
    }
    std::fs::write(dir.join("tx"), data).unwrap();
    let jcmds = dir.join("jcmds");
    std::fs::write(
        &jcmds,
        format!(
            "jo -c\njw -b {} {}\njc\n",
            blocks.join(","),
            dir.join("tx").display()
        ),
    )
    .unwrap();
    ok(Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&jcmds)
        .arg(&img));
    let replayed = dir.join("replayed.raw");
    std::fs::copy(&img, &replayed).unwrap();
    ok(Command::new("debugfs")
        .args(["-w", "-R", "jr"])
        .arg(&replayed));
    let sha_before = common::sha256_file(&img);
    let fls = |p: &Path| allocated(&ok(Command::new("fls").args(["-r", "-m", "/"]).arg(p)));
    let ours = allocated(&ok(vestige().arg("bodyfile").arg(&img)));
    assert_eq!(ours, fls(&replayed));
    assert!(ours.iter().any(|l| l.contains("|/planted|")), "{ours:#?}");
    let stored = allocated(&ok(vestige().args(["bodyfile", "--as-stored"]).arg(&img)));
    assert_eq!(stored, fls(&img));
    assert_ne!(stored, ours);
    let stat = ok(vestige().arg("fsstat").arg(&img));
    assert!(
        stat.contains(
            "note: journal replayed in memory (the image is unchanged): 1 committed transactions"
        ),
        "{stat}"
    );
    // The journal block by block: the committed transaction, live, its copies named.
    let listing = ok(vestige().arg("journal").arg(&img));
    assert_eq!(
        listing.matches("  1  yes   copy of fs block ").count(),
        blocks.len(),
        "{listing}"
    );
    assert!(listing.contains("(superblock)"), "{listing}");
    assert!(
        listing.contains("(inode table of group 0 (inodes "),
        "{listing}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(vestige().args(["journal", "--json"]).arg(&img))).unwrap();
    let entries = json["entries"].as_array().unwrap();
    assert_eq!(
        entries.iter().filter(|e| e["kind"] == "data").count(),
        blocks.len()
    );
    assert!(entries
        .iter()
        .all(|e| e["live"] == true && e["sequence"] == 1));
    let stat = ok(vestige().args(["fsstat", "--as-stored"]).arg(&img));
    assert!(
        stat.contains("needs recovery; it was not replayed"),
        "{stat}"
    );
    assert_eq!(common::sha256_file(&img), sha_before);
}
