//! ext2/3/4 against The Sleuth Kit on images made by mke2fs (`-d` copies a tree in, no
//! mount needed) and edited by debugfs (deletions, crafted times): `fls -r -m /` lines
//! against our bodyfile, `icat` SHA-256 against our content. Hostile variants of the same
//! images must give errors or bounded results.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::expect_used,
    clippy::panic
)]

use super::{journal, Ext4};
use crate::test_support::{sha, tools_required};
use crate::walk::{bodyfile, walk};
use crate::{FileKind, FileSystem, FsError, ReadAt};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether every tool runs; otherwise the test is skipped (or fails when required).
fn have(tools: &[&str]) -> bool {
    for t in tools {
        let ok = Command::new(t)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success() || !o.stderr.is_empty());
        if !ok {
            assert!(
                !tools_required(),
                "{t} is required (VESTIGE_REQUIRE_TOOLS=1)"
            );
            eprintln!("skipped: {t} is not installed");
            return false;
        }
    }
    true
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A tree with every kind of thing mke2fs can copy.
fn populate(dir: &Path, many: usize) {
    use std::fs;
    let w = |p: &str, data: &[u8]| fs::write(dir.join(p), data).unwrap();
    for d in ["deep/a/b/c/d", "big", "with space", "deldir"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    let pattern = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    };
    w("small.txt", b"hello\n");
    w("empty", b"");
    w("medium.bin", &pattern(70_000, 1));
    w("big/large.bin", &pattern(3_000_000, 2));
    w("deep/a/b/c/d/file", b"deep\n");
    w("with space/caf\u{e9} \u{f1}.txt", b"caf\n");
    w("del1.txt", b"del1\n");
    w("del2.bin", &pattern(20_000, 3));
    w("deldir/inner", b"x\n");
    w("inline.txt", b"tiny inline content\n");
    // Sparse: a hole, then data at 3 MB, size 5 MiB.
    let f = fs::File::create(dir.join("sparse.img")).unwrap();
    f.set_len(5 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"x marks the spot", 3_000_000).unwrap();
    std::os::unix::fs::symlink("small.txt", dir.join("shortlink")).unwrap();
    let long = format!("{}target", "long/".repeat(20));
    std::os::unix::fs::symlink(long, dir.join("longlink")).unwrap();
    run(Command::new("mkfifo").arg(dir.join("fifo")));
    for i in 0..many {
        w(&format!("big/f{i}"), format!("{i}\n").as_bytes());
    }
}

/// Makes an image with `mkfs` and `args`, populated, with some files deleted.
fn make_image(tmp: &Path, name: &str, mkfs: &str, args: &[&str], size_mib: u64) -> PathBuf {
    make_image_with(tmp, name, mkfs, args, size_mib, &[])
}

/// [`make_image`], then `extra` debugfs commands.
fn make_image_with(
    tmp: &Path,
    name: &str,
    mkfs: &str,
    args: &[&str],
    size_mib: u64,
    extra: &[&str],
) -> PathBuf {
    let src = tmp.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).unwrap();
    populate(&src, 2000);
    let img = tmp.join(format!("{name}.img"));
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(size_mib << 20).unwrap();
    drop(f);
    run(Command::new(mkfs)
        .args(["-F", "-q"])
        .args(args)
        .arg("-d")
        .arg(&src)
        .arg(&img));
    // Index the directories (htree), as a kernel does once one outgrows a block.
    let fsck = Command::new("e2fsck")
        .arg("-fyD")
        .arg(&img)
        .output()
        .unwrap();
    assert!(fsck.status.code().is_some_and(|c| c <= 2), "{fsck:?}");
    for cmd in [
        "rm /del1.txt",
        "rm /del2.bin",
        "rm /big/f77",
        "rm /big/f1500",
        "rm /deldir/inner",
        "rmdir /deldir",
    ]
    .iter()
    .chain(extra)
    {
        run(Command::new("debugfs").args(["-w", "-R", cmd]).arg(&img));
    }
    img
}

struct File(std::fs::File, u64);

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if offset >= self.1 {
            return Ok(0);
        }
        let n = buf.len().min((self.1 - offset) as usize);
        std::os::unix::fs::FileExt::read_at(&self.0, &mut buf[..n], offset)
    }
    fn size(&self) -> u64 {
        self.1
    }
}

fn open_file(p: &Path) -> File {
    let f = std::fs::File::open(p).unwrap();
    let len = f.metadata().unwrap().len();
    File(f, len)
}

/// TSK's lines (raw: the fast-symlink targets compared by [`compare_with_tsk`]).
fn tsk_lines(img: &Path) -> BTreeSet<String> {
    String::from_utf8_lossy(&run(Command::new("fls").args(["-r", "-m", "/"]).arg(img)))
        .lines()
        .map(str::to_string)
        .collect()
}

/// A line without the ` -> target` of a symlink: TSK writes it for fast symlinks only, we
/// for every symlink.
fn without_target(l: &str) -> String {
    let mut f: Vec<String> = l.split('|').map(str::to_string).collect();
    if f[3].starts_with("l/") || f[3].starts_with("-/l") {
        if let Some(i) = f[1].find(" -> ") {
            let suffix = [" (deleted)", " (deleted-realloc)"]
                .into_iter()
                .find(|s| f[1].ends_with(s))
                .unwrap_or("");
            f[1].truncate(i);
            f[1].push_str(suffix);
        }
    }
    f.join("|")
}

fn read_all(fs: &Ext4<'_>, ino: u64) -> Result<Vec<u8>, FsError> {
    let r = fs.open(ino, None)?;
    let mut buf = vec![0u8; r.size() as usize];
    r.read_exact_at(&mut buf, 0).map_err(|e| FsError::Io {
        volume: "t".into(),
        offset: 0,
        len: 0,
        source: e,
    })?;
    Ok(buf)
}

/// Bodyfile lines and content against fls and icat; returns our walk's entries count.
fn compare_with_tsk(img: &Path) -> usize {
    let file = open_file(img);
    let fs = Ext4::open(&file, "test").unwrap();
    compare_fs_with_tsk(&fs, img)
}

/// [`compare_with_tsk`] of an open file system against TSK on the image `img` (another
/// image when the file system is a replay that TSK cannot do).
fn compare_fs_with_tsk(fs: &Ext4<'_>, img: &Path) -> usize {
    let (body, problems) = bodyfile(fs, "/");
    assert!(problems.is_empty(), "{problems:?}");
    // TSK shows crtime on ext4 only; we show it wherever the inode has it.
    let ext4 = fs.info().kind == "ext4";
    let raw_theirs = tsk_lines(img);
    // Every symlink target TSK shows (fast symlinks) is ours too, verbatim (but the
    // crtime, on ext2/3).
    let crtime = |l: &str| -> String {
        let mut f: Vec<&str> = l.split('|').collect();
        if !ext4 {
            f[10] = "0";
        }
        f.join("|")
    };
    for l in raw_theirs.iter().filter(|l| l.contains(" -> ")) {
        assert!(
            body.lines().any(|o| crtime(o) == crtime(l)),
            "TSK's {l} missing:\n{body}"
        );
    }
    let ours: BTreeSet<String> = body
        .lines()
        .map(|l| {
            let mut f: Vec<String> = without_target(l).split('|').map(str::to_string).collect();
            if !ext4 {
                f[10] = "0".into();
            }
            f.join("|")
        })
        .collect();
    let theirs: BTreeSet<String> = raw_theirs.iter().map(|l| without_target(l)).collect();
    // TSK reads the hash index of an htree directory (/big) as names too: "deleted" entries
    // whose type byte is whatever the hash bytes hold (usually none, sometimes `l`, as the
    // random hash seed of mkfs decides). We skip dx blocks, as the kernel does. The real
    // deleted names of /big are in both listings, so only TSK's extra ones are skipped.
    let missing: Vec<_> = theirs
        .difference(&ours)
        .filter(|l| {
            let f: Vec<&str> = l.split('|').collect();
            !(f[1].starts_with("/big/") && f[1].contains(" (deleted"))
        })
        .collect();
    // …but the names really deleted from /big (by make_image) must be ours and TSK's.
    let has_big = ours.iter().any(|l| l.contains("|/big/"));
    for name in ["/big/f77 (deleted", "/big/f1500 (deleted"]
        .into_iter()
        .filter(|_| has_big)
    {
        for set in [&ours, &theirs] {
            assert!(
                set.iter()
                    .any(|l| l.split('|').nth(1).is_some_and(|p| p.starts_with(name))),
                "{}: {name}) not listed",
                img.display()
            );
        }
    }
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{}: TSK only: {missing:#?}\nours only: {extra:#?}",
        img.display()
    );
    // Content of every regular file and symlink (a sample of the 2000 small ones).
    let mut checked = 0;
    walk(fs, |f| {
        let Ok(m) = &f.metadata else { return };
        if !matches!(m.kind, FileKind::Regular | FileKind::Symlink) {
            return;
        }
        let path = String::from_utf8_lossy(&f.path).into_owned();
        if path.starts_with("/big/f") && !path.ends_with('7') {
            return;
        }
        if m.kind == FileKind::Symlink && m.size < 60 {
            // TSK's icat gives zeros for a fast symlink; istat shows the target.
            let istat = run(Command::new("istat")
                .arg(img)
                .arg(f.entry.inode.to_string()));
            let istat = String::from_utf8_lossy(&istat).into_owned();
            let target = fs.read_link(f.entry.inode).unwrap();
            let want = format!("symbolic link to: {}\n", String::from_utf8_lossy(&target));
            assert!(istat.contains(&want), "{path}: {istat}");
            checked += 1;
            return;
        }
        let icat = Command::new("icat")
            .arg(img)
            .arg(f.entry.inode.to_string())
            .output()
            .unwrap();
        match read_all(fs, f.entry.inode) {
            Ok(data) => {
                assert_eq!(
                    sha(&data),
                    sha(&icat.stdout),
                    "{path} (inode {}) differs from icat",
                    f.entry.inode
                );
                checked += 1;
            }
            Err(e) => assert!(
                f.entry.deleted || !m.allocated,
                "{path}: allocated but unreadable: {e}"
            ),
        }
    });
    assert!(checked > 20, "only {checked} files compared");
    ours.len()
}

fn setup(tools: &[&str]) -> Option<tempfile::TempDir> {
    if !have(tools) {
        return None;
    }
    Some(tempfile::tempdir().unwrap())
}

const TOOLS: &[&str] = &["mkfs.ext4", "debugfs", "fls", "icat", "istat", "mkfifo"];

#[test]
fn ext4_default_matches_tsk() {
    let Some(tmp) = setup(TOOLS) else { return };
    let img = make_image(tmp.path(), "ext4", "mkfs.ext4", &[], 32);
    let file = open_file(&img);
    let fs = Ext4::open(&file, "test").unwrap();
    assert_eq!(fs.info().kind, "ext4");
    assert!(compare_with_tsk(&img) > 2000);
}

/// An inode no entry names, unallocated, with a ctime: TSK's `$OrphanFiles` lists it.
const ORPHAN: &[&str] = &[
    "set_inode_field <2100> mode 0100644",
    "set_inode_field <2100> size 10",
    "set_inode_field <2100> ctime 1700000000",
    "set_inode_field <2100> dtime 1700000001",
];

#[test]
fn ext4_1k_blocks_with_an_orphan_matches_tsk() {
    let Some(tmp) = setup(TOOLS) else { return };
    let img = make_image_with(tmp.path(), "orph", "mkfs.ext4", &["-b", "1024"], 32, ORPHAN);
    let file = open_file(&img);
    let fs = Ext4::open(&file, "test").unwrap();
    assert_eq!(fs.orphans().unwrap(), vec![2100]);
    compare_with_tsk(&img);
}

#[test]
fn ext4_4k_no_journal_64bit_matches_tsk() {
    let Some(tmp) = setup(TOOLS) else { return };
    let img = make_image(
        tmp.path(),
        "nj64",
        "mkfs.ext4",
        &["-b", "4096", "-O", "^has_journal,64bit", "-I", "128"],
        32,
    );
    let file = open_file(&img);
    let fs = Ext4::open(&file, "test").unwrap();
    assert!(fs.info().notes[0].contains("64bit"));
    compare_with_tsk(&img);
}

#[test]
fn ext4_inline_data_matches_tsk() {
    let Some(tmp) = setup(TOOLS) else { return };
    let img = make_image(
        tmp.path(),
        "inline",
        "mkfs.ext4",
        &["-O", "inline_data", "-I", "256"],
        32,
    );
    let file = open_file(&img);
    let fs = Ext4::open(&file, "test").unwrap();
    let ino = crate::walk::lookup(&fs, b"/inline.txt").unwrap();
    assert!(fs
        .metadata(ino)
        .unwrap()
        .notes
        .iter()
        .any(|n| n == "inline data"));
    assert_eq!(read_all(&fs, ino).unwrap(), b"tiny inline content\n");
    compare_with_tsk(&img);
}

#[test]
fn ext4_meta_bg_matches_tsk() {
    let Some(tmp) = setup(TOOLS) else { return };
    let img = make_image(
        tmp.path(),
        "metabg",
        "mkfs.ext4",
        &["-O", "meta_bg,^resize_inode", "-b", "1024"],
        32,
    );
    compare_with_tsk(&img);
}

#[test]
fn ext3_block_maps_match_tsk() {
    let Some(tmp) = setup(&["mkfs.ext3", "debugfs", "fls", "icat", "istat", "mkfifo"]) else {
        return;
    };
    let img = make_image(tmp.path(), "ext3", "mkfs.ext3", &["-b", "1024"], 32);
    let file = open_file(&img);
    let fs = Ext4::open(&file, "test").unwrap();
    assert_eq!(fs.info().kind, "ext3");
    compare_with_tsk(&img);
}

#[test]
fn ext2_block_maps_match_tsk() {
    let Some(tmp) = setup(&["mkfs.ext2", "debugfs", "fls", "icat", "istat", "mkfifo"]) else {
        return;
    };
    let img = make_image(
        tmp.path(),
        "ext2",
        "mkfs.ext2",
        &["-b", "4096", "-I", "128"],
        32,
    );
    let file = open_file(&img);
    let fs = Ext4::open(&file, "test").unwrap();
    assert_eq!(fs.info().kind, "ext2");
    compare_with_tsk(&img);
}

/// One directory entry as `debugfs ls -p -d` prints it: `/inode/mode/uid/gid/name/size/`
/// (a deleted name has inode 0 and mode 000000; a directory's size is empty).
fn debugfs_entries(img: &Path, dir: &str) -> Vec<(u64, u32, u32, u32, String, Option<u64>)> {
    let out = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("ls -p -d \"{dir}\""))
        .arg(img));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(|l| {
            let inner = &l[1..l.len() - 1];
            let mut it = inner.splitn(5, '/');
            let mut num = |radix| u64::from_str_radix(it.next().unwrap(), radix).unwrap();
            let (ino, mode, uid, gid) = (num(10), num(8), num(10), num(10));
            let (name, size) = it.next().unwrap().rsplit_once('/').unwrap();
            (
                ino,
                mode as u32,
                uid as u32,
                gid as u32,
                name.to_string(),
                size.parse().ok(),
            )
        })
        .collect()
}

/// `(secs, nanos)` of each time debugfs's `stat` prints (`ctime: 0xSECS:EXTRA`), by name.
fn debugfs_times(stat: &str) -> BTreeMap<&str, (i64, u32)> {
    let mut out = BTreeMap::new();
    for l in stat.lines() {
        let l = l.trim_start();
        for name in ["ctime", "atime", "mtime", "crtime"] {
            let Some(rest) = l.strip_prefix(name).and_then(|r| r.strip_prefix(": 0x")) else {
                continue;
            };
            let hex = rest.split(' ').next().unwrap();
            let (lo, extra) = hex.split_once(':').unwrap_or((hex, "0"));
            let lo = i64::from(u32::from_str_radix(lo, 16).unwrap().cast_signed());
            let extra = u32::from_str_radix(extra, 16).unwrap();
            // The kernel's decoding: two epoch bits above the signed 32-bit seconds, and
            // nanoseconds in the upper 30 bits.
            out.insert(name, (lo + (i64::from(extra & 3) << 32), extra >> 2));
        }
    }
    out
}

/// bigalloc, with 1 KiB blocks (s_first_data_block is 0 there, but the superblock is in
/// block 1 and the descriptors in block 2) and with 4 KiB blocks. TSK 4.11 cannot open it
/// ("Cannot determine file system type"), so e2fsprogs' debugfs, which reads it, is the
/// oracle: `ls -p -d` of every directory it finds (inode, mode, owner, size, and the
/// deleted names), `stat` of every inode (four times with nanoseconds) and `rdump` (every
/// file's content).
#[test]
fn ext4_bigalloc_matches_debugfs() {
    let Some(tmp) = setup(&["mkfs.ext4", "debugfs", "mkfifo"]) else {
        return;
    };
    for (name, block, blocks_per_cluster) in [("ba1k", 1024u32, 16u32), ("ba4k", 4096, 4)] {
        let cluster = (block * blocks_per_cluster).to_string();
        let img = make_image(
            tmp.path(),
            name,
            "mkfs.ext4",
            &["-O", "bigalloc", "-b", &block.to_string(), "-C", &cluster],
            64,
        );
        bigalloc_against_debugfs(
            tmp.path(),
            &img,
            &format!("clusters of {cluster} bytes ({blocks_per_cluster} blocks)"),
        );
    }
}

fn bigalloc_against_debugfs(tmp: &Path, img: &Path, note: &str) {
    let img = img.to_path_buf();
    let file = open_file(&img);
    let fs = Ext4::open(&file, "test").unwrap();
    let notes = &fs.info().notes;
    assert!(notes.iter().any(|n| n.contains(note)), "{notes:?}");
    // debugfs's tree, walked by its own listings.
    let mut theirs = BTreeMap::new();
    let mut theirs_deleted = BTreeSet::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let shown = if dir.is_empty() { "/" } else { dir.as_str() };
        for (ino, mode, uid, gid, name, size) in debugfs_entries(&img, shown) {
            if name == "." || name == ".." {
                continue;
            }
            let path = format!("{dir}/{name}");
            if ino == 0 {
                // An empty name is a free record spanning a directory block (lost+found's
                // preallocated blocks), not a deleted name.
                if !name.is_empty() {
                    theirs_deleted.insert(path);
                }
                continue;
            }
            if mode & 0o170_000 == 0o040_000 {
                dirs.push(path.clone());
            }
            theirs.insert(path, (ino, mode & 0o7777, uid, gid, size));
        }
    }
    assert!(theirs.len() > 2000, "{}", theirs.len());
    let mut ours = BTreeMap::new();
    let mut ours_deleted = BTreeSet::new();
    let mut kinds = BTreeMap::new();
    walk(&fs, |f| {
        let path = String::from_utf8(f.path.clone()).unwrap();
        if f.entry.deleted {
            ours_deleted.insert(path);
            return;
        }
        let m = f.metadata.as_ref().unwrap();
        if m.kind == FileKind::Virtual {
            return; // TSK's $OrphanFiles: not a directory entry
        }
        let size = (m.kind != FileKind::Directory).then_some(m.size);
        kinds.insert(path.clone(), (m.kind, m.times));
        ours.insert(path, (f.entry.inode, m.mode, m.uid, m.gid, size));
    });
    let differ: Vec<_> = ours
        .iter()
        .filter(|(k, v)| theirs.get(*k) != Some(v))
        .map(|(k, v)| (k, Some(v), theirs.get(k)))
        .chain(
            theirs
                .iter()
                .filter(|(k, _)| !ours.contains_key(*k))
                .map(|(k, v)| (k, None, Some(v))),
        )
        .collect();
    assert!(differ.is_empty(), "(path, ours, debugfs): {differ:#?}");
    // debugfs lists every deleted name a directory block still holds; our walk does too
    // (and recurses into deleted directories, which debugfs does not).
    let ours_top: BTreeSet<String> = ours_deleted
        .iter()
        .filter(|p| !p.starts_with("/deldir/"))
        .cloned()
        .collect();
    assert_eq!(ours_top, theirs_deleted);
    for p in [
        "/del1.txt",
        "/del2.bin",
        "/big/f77",
        "/big/f1500",
        "/deldir",
    ] {
        assert!(ours_deleted.contains(p), "{p} not recovered");
    }
    // Times, inode by inode, from one debugfs run.
    let inodes: Vec<u64> = ours.values().map(|v| v.0).collect();
    let script: String = inodes.iter().map(|i| format!("stat <{i}>\n")).collect();
    let stat = debugfs_script(&img, &tmp.join("stat.cmds"), &script, false);
    let blocks: Vec<&str> = stat.split("Inode: ").skip(1).collect();
    assert_eq!(blocks.len(), inodes.len());
    let by_inode: BTreeMap<u64, BTreeMap<&str, (i64, u32)>> = blocks
        .iter()
        .map(|b| {
            let ino: u64 = b.split_whitespace().next().unwrap().parse().unwrap();
            (ino, debugfs_times(b))
        })
        .collect();
    for (path, (ino, ..)) in &ours {
        let t = kinds[path].1;
        let got = |x: Option<crate::Timestamp>| x.map(|x| (x.secs, x.nanos));
        let want = &by_inode[ino];
        for (name, ours_t) in [
            ("atime", got(t.accessed)),
            ("mtime", got(t.modified)),
            ("ctime", got(t.changed)),
            ("crtime", got(t.created)),
        ] {
            assert_eq!(ours_t, want.get(name).copied(), "{path} {name}");
        }
    }
    // Content: debugfs's rdump against ours, every regular file and symlink.
    let out = tmp.join(format!(
        "rdump-{}",
        img.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&out).unwrap();
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / \"{}\"", out.display()))
        .arg(&img));
    let mut checked = 0;
    for (path, (ino, ..)) in &ours {
        let theirs = out.join(path.trim_start_matches('/'));
        match kinds[path].0 {
            FileKind::Regular => {
                let data = read_all(&fs, *ino).unwrap();
                assert_eq!(sha(&data), sha(&std::fs::read(&theirs).unwrap()), "{path}");
                checked += 1;
            }
            FileKind::Symlink => {
                let target = std::fs::read_link(&theirs).unwrap();
                assert_eq!(
                    fs.read_link(*ino).unwrap(),
                    target.as_os_str().as_encoded_bytes(),
                    "{path}"
                );
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked > 2000, "only {checked} files compared");
}

/// Times past 2038 and nanoseconds, set with debugfs, decoded as the kernel does; xattr
/// names in the inode and in an external block. TSK 4.11
/// ignores the epoch bits (it shows 16 for a time of 2106), so these are checked against
/// what debugfs wrote, not against fls.
#[test]
fn times_with_epoch_bits_and_nanoseconds_and_xattr_names() {
    let Some(tmp) = setup(TOOLS) else { return };
    // Too big for the inode: it goes to an external attribute block.
    let value = tmp.path().join("value");
    std::fs::write(&value, [b'v'; 600]).unwrap();
    let big_xattr = format!("ea_set -f {} /medium.bin user.big", value.display());
    let img = make_image_with(
        tmp.path(),
        "times",
        "mkfs.ext4",
        &[],
        32,
        &[
            "set_inode_field /small.txt mtime 0x10",
            "set_inode_field /small.txt mtime_extra 0x5",
            "set_inode_field /medium.bin atime 20450101000000",
            "set_inode_field /medium.bin crtime_extra 4000",
            "set_inode_field /empty ctime 0x90000000",
            "set_inode_field /empty ctime_extra 0",
            "ea_set /small.txt user.note hello",
            &big_xattr,
        ],
    );
    let file = open_file(&img);
    let fs = Ext4::open(&file, "test").unwrap();
    let m = |p: &[u8]| fs.metadata(crate::walk::lookup(&fs, p).unwrap()).unwrap();
    let t = m(b"/small.txt").times.modified.unwrap();
    assert_eq!((t.secs, t.nanos), ((1i64 << 32) + 16, 1)); // 2106-02-07T06:28:32Z
    let medium = m(b"/medium.bin");
    assert_eq!(medium.times.accessed.unwrap().secs, 2_366_841_600); // 2045-01-01
    assert_eq!(medium.times.created.unwrap().nanos, 1000);
    // Epoch 0 and the sign bit: before 1970, as the kernel reads it.
    assert_eq!(m(b"/empty").times.changed.unwrap().secs, -1_879_048_192);
    let notes = m(b"/small.txt").notes;
    assert!(
        notes.iter().any(|n| n == "xattrs in inode: user.note"),
        "{notes:?}"
    );
    let notes = medium.notes;
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("xattrs in block ") && n.ends_with(": user.big")),
        "{notes:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Hostile input: fields of a real image corrupted one at a time, then a seeded flip storm.

/// A small image in memory: a few files, one of them fragmented (an extent tree of depth 1
/// on ext4, double indirect blocks on ext2 with 1 KiB blocks).
fn small_image(tmp: &Path, mkfs: &str, args: &[&str]) -> Vec<u8> {
    let src = tmp.join(format!("small-src-{mkfs}"));
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("d/b.txt"), b"beta\n").unwrap();
    std::fs::write(src.join("c.txt"), b"gamma\n").unwrap();
    let f = std::fs::File::create(src.join("frag")).unwrap();
    f.set_len(400 << 10).unwrap();
    for i in 0..12u64 {
        std::os::unix::fs::FileExt::write_at(&f, b"island", (i * 32) << 10).unwrap();
    }
    drop(f);
    std::fs::write(src.join("e.bin"), vec![7u8; 300 << 10]).unwrap();
    let img = tmp.join(format!("small-{mkfs}.img"));
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(4 << 20).unwrap();
    drop(f);
    run(Command::new(mkfs)
        .args(["-F", "-q", "-b", "1024"])
        .args(args)
        .arg("-d")
        .arg(&src)
        .arg(&img));
    run(Command::new("debugfs")
        .args(["-w", "-R", "rm /c.txt"])
        .arg(&img));
    std::fs::read(&img).unwrap()
}

/// Everything read: the walk, every file's content, every link; never a panic.
fn read_everything(fs: &Ext4<'_>) -> (usize, usize) {
    let (mut ok, mut bad) = (0, 0);
    let mut inodes = Vec::new();
    walk(fs, |f| {
        inodes.push((f.entry.inode, f.metadata.as_ref().ok().map(|m| m.kind)))
    });
    for (ino, kind) in inodes {
        match read_some(fs, ino) {
            Ok(()) => ok += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                bad += 1;
            }
        }
        if kind == Some(FileKind::Symlink) {
            let _ = fs.read_link(ino);
        }
    }
    let _ = fs.orphans();
    let _ = fs.info();
    (ok, bad)
}

/// Reads the first 4 MiB and the last 64 KiB of a file (a claimed size can be anything).
fn read_some(fs: &Ext4<'_>, ino: u64) -> Result<(), FsError> {
    let r = fs.open(ino, None)?;
    let size = r.size();
    let mut buf = vec![0u8; 64 << 10];
    let io = |e| FsError::Io {
        volume: "t".into(),
        offset: 0,
        len: 0,
        source: e,
    };
    let mut at = 0;
    while at < size.min(4 << 20) {
        let n = r.read_at(&mut buf, at).map_err(io)?;
        assert!(n > 0 && n as u64 <= size - at);
        at += n as u64;
    }
    let tail = size.saturating_sub(64 << 10);
    let n = r.read_at(&mut buf, tail).map_err(io)?;
    assert_eq!(n as u64, size - tail);
    assert_eq!(r.read_at(&mut buf, size).map_err(io)?, 0);
    Ok(())
}

fn put32(img: &mut [u8], at: u64, v: u32) {
    img[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
}

fn put16(img: &mut [u8], at: u64, v: u16) {
    img[at as usize..at as usize + 2].copy_from_slice(&v.to_le_bytes());
}

fn invalid_at<T>(r: Result<T, FsError>) -> (u64, &'static str) {
    match r {
        Err(FsError::Invalid { offset, field, .. }) => (offset, field),
        Err(other) => panic!("expected Invalid, got {other:?}"),
        Ok(_) => panic!("expected Invalid, got Ok"),
    }
}

#[test]
fn hostile_superblocks_are_refused_with_their_field() {
    let Some(tmp) = setup(&["mkfs.ext4", "debugfs"]) else {
        return;
    };
    let good = small_image(tmp.path(), "mkfs.ext4", &[]);
    let mut img = good.clone();
    put16(&mut img, 1024 + 0x38, 0x1234);
    assert_eq!(
        invalid_at(Ext4::open(&img, "t")),
        (1024 + 0x38, "ext4 superblock.s_magic")
    );
    let mut img = good.clone();
    put32(&mut img, 1024 + 0x18, 30);
    assert_eq!(invalid_at(Ext4::open(&img, "t")).0, 1024 + 0x18);
    let mut img = good.clone();
    put32(&mut img, 1024 + 0x28, u32::MAX);
    assert_eq!(invalid_at(Ext4::open(&img, "t")).0, 1024 + 0x28);
    let mut img = good.clone();
    put32(&mut img, 1024 + 0x4, u32::MAX); // ~4 Gi blocks: descriptors past the volume
    assert!(Ext4::open(&img, "t").is_err());
    let mut img = good.clone();
    put32(&mut img, 1024 + 0x60, 0x8000_0000 | 0x2 | 0x40);
    assert!(matches!(
        Ext4::open(&img, "t"),
        Err(FsError::Unsupported { .. })
    ));
    // bigalloc: the cluster size and the clusters per group must agree with the blocks.
    let ro = u32::from_le_bytes(good[1024 + 0x64..1024 + 0x68].try_into().unwrap());
    let log_block = u32::from_le_bytes(good[1024 + 0x18..1024 + 0x1C].try_into().unwrap());
    let per_group = u32::from_le_bytes(good[1024 + 0x20..1024 + 0x24].try_into().unwrap());
    let mut img = good.clone();
    put32(&mut img, 1024 + 0x64, ro | 0x200);
    put32(&mut img, 1024 + 0x1C, 25);
    assert_eq!(invalid_at(Ext4::open(&img, "t")).0, 1024 + 0x1C);
    put32(&mut img, 1024 + 0x1C, log_block + 1);
    put32(&mut img, 1024 + 0x24, per_group); // should be half: two blocks per cluster
    assert_eq!(invalid_at(Ext4::open(&img, "t")).0, 1024 + 0x24);
    put32(&mut img, 1024 + 0x24, per_group / 2);
    assert!(Ext4::open(&img, "t").is_ok());
    // Truncated inside the superblock: an I/O error naming the offset.
    assert!(matches!(
        Ext4::open(&good[..1500].to_vec(), "t"),
        Err(FsError::Io { offset: 1024, .. })
    ));
    // Truncated after the descriptors: it opens, says so, and every read fails cleanly.
    let short = good[..8192].to_vec();
    let fs = Ext4::open(&short, "t").unwrap();
    assert!(fs.info().notes.iter().any(|n| n.contains("truncated")));
    read_everything(&fs);
    assert!(Ext4::probe(&good));
    assert!(!Ext4::probe(&good[..1000].to_vec()));
}

#[test]
fn hostile_extent_trees_and_directories_give_errors() {
    let Some(tmp) = setup(&["mkfs.ext4", "debugfs"]) else {
        return;
    };
    let good = small_image(tmp.path(), "mkfs.ext4", &[]);
    let fs = Ext4::open(&good, "t").unwrap();
    let frag = crate::walk::lookup(&fs, b"/frag").unwrap();
    let (_, _, frag_at) = fs.inode_offset(frag).unwrap();
    let (raw, _) = fs.read_inode(frag).unwrap();
    assert_eq!(
        super::bytes::le16(&raw.i_block, 6),
        1,
        "frag has a depth-1 tree"
    );
    let d = crate::walk::lookup(&fs, b"/d").unwrap();
    let (_, _, d_at) = fs.inode_offset(d).unwrap();
    drop(fs);
    let i_block = frag_at + 0x28;

    // The same leaf twice: a loop in the tree.
    let mut img = good.clone();
    put16(&mut img, i_block + 2, 2);
    let first: Vec<u8> = img[(i_block + 12) as usize..(i_block + 24) as usize].to_vec();
    img[(i_block + 24) as usize..(i_block + 36) as usize].copy_from_slice(&first);
    put32(&mut img, i_block + 24, 1);
    let fs = Ext4::open(&img, "t").unwrap();
    assert_eq!(
        invalid_at(fs.open(frag, None)),
        (i_block + 24, "ext4 extent index ei_leaf")
    );

    // A leaf past the end of the file system.
    let mut img = good.clone();
    put32(&mut img, i_block + 16, 0xFFFF_FF00);
    let fs = Ext4::open(&img, "t").unwrap();
    assert_eq!(invalid_at(fs.open(frag, None)).0, i_block + 12);

    // A claimed depth of 9; more entries than the root holds.
    let mut img = good.clone();
    put16(&mut img, i_block + 6, 9);
    let fs = Ext4::open(&img, "t").unwrap();
    assert_eq!(invalid_at(fs.open(frag, None)).0, i_block + 6);
    let mut img = good.clone();
    put16(&mut img, i_block + 2, 500);
    let fs = Ext4::open(&img, "t").unwrap();
    assert_eq!(invalid_at(fs.open(frag, None)).0, i_block + 2);

    // A child node whose depth is not one below its parent (a tree pointing back up).
    let mut img = good.clone();
    let leaf = u64::from(super::bytes::le32(&img, (i_block + 16) as usize));
    put16(&mut img, leaf * 1024 + 6, 1);
    let fs = Ext4::open(&img, "t").unwrap();
    assert_eq!(
        invalid_at(fs.open(frag, None)),
        (leaf * 1024 + 6, "ext4 extent header eh_depth")
    );

    // A directory claiming 4 GiB; a directory whose first entry's rec_len is 0.
    let mut img = good.clone();
    put32(&mut img, d_at + 4, u32::MAX);
    let fs = Ext4::open(&img, "t").unwrap();
    assert_eq!(invalid_at(fs.read_dir(d)), (d_at + 4, "ext4 inode.i_size"));
    let mut img = good.clone();
    // The directory's one extent: ee_start_lo is at i_block + 12 + 8.
    let dblock = u64::from(super::bytes::le32(&img, (d_at + 0x28 + 20) as usize));
    put16(&mut img, dblock * 1024 + 4, 0);
    let fs = Ext4::open(&img, "t").unwrap();
    assert!(fs.read_dir(d).unwrap().len() <= 1);
    read_everything(&fs);
}

#[test]
fn hostile_block_maps_and_orphan_chains_are_bounded() {
    let Some(tmp) = setup(&["mkfs.ext2", "debugfs"]) else {
        return;
    };
    let good = small_image(tmp.path(), "mkfs.ext2", &[]);
    let fs = Ext4::open(&good, "t").unwrap();
    let e = crate::walk::lookup(&fs, b"/e.bin").unwrap();
    let (_, _, e_at) = fs.inode_offset(e).unwrap();
    drop(fs);
    // The double indirect block lists itself: a loop in the block map.
    let mut img = good.clone();
    let dind = u64::from(super::bytes::le32(&img, (e_at + 0x28 + 13 * 4) as usize));
    assert_ne!(dind, 0, "e.bin uses a double indirect block");
    put32(&mut img, dind * 1024, u32::try_from(dind).unwrap());
    let fs = Ext4::open(&img, "t").unwrap();
    let (offset, field) = invalid_at(fs.open(e, None));
    assert_eq!(field, "ext4 indirect block pointer");
    assert_eq!(offset, dind * 1024);
    // A direct pointer past the end.
    let mut img = good.clone();
    put32(&mut img, e_at + 0x28, 0xFFFF_FFF0);
    let fs = Ext4::open(&img, "t").unwrap();
    assert_eq!(invalid_at(fs.open(e, None)).0, e_at + 0x28);
    // An orphan list that loops (inode e's dtime names itself).
    let mut img = good.clone();
    put32(&mut img, 1024 + 0xE8, u32::try_from(e).unwrap());
    put32(&mut img, e_at + 0x14, u32::try_from(e).unwrap());
    let fs = Ext4::open(&img, "t").unwrap();
    assert!(fs.info().notes.iter().any(|n| n.contains("orphan list")));
}

/// A small xorshift generator: the storm is the same on every run.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn flipped_metadata_never_panics() {
    let Some(tmp) = setup(&["mkfs.ext4", "mkfs.ext2", "debugfs"]) else {
        return;
    };
    for (mkfs, args) in [
        ("mkfs.ext4", &[][..]),
        ("mkfs.ext4", &["-O", "inline_data"][..]),
        ("mkfs.ext2", &[][..]),
    ] {
        let good = small_image(tmp.path(), mkfs, args);
        // Metadata lives in the first ~300 KiB of these images.
        let hot = good.len().min(300 << 10);
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..300 {
            let mut img = good.clone();
            for _ in 0..10 {
                let r = next(&mut seed);
                let at = (r % hot as u64) as usize;
                img[at] = (r >> 32) as u8;
            }
            if let Ok(fs) = Ext4::open(&img, "t") {
                read_everything(&fs);
            }
        }
    }
}

/// A window of a file: a partition of a raw disk.
struct Window(File, u64, u64);

impl ReadAt for Window {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if offset >= self.2 {
            return Ok(0);
        }
        let n = buf.len().min((self.2 - offset) as usize);
        self.0.read_at(&mut buf[..n], self.1 + offset)
    }
    fn size(&self) -> u64 {
        self.2
    }
}

/// One timed run of our bodyfile against `fls -r -m /` on the benchmark corpus
/// (`VESTIGE_EXT4_BENCH=DISK:OFFSET_BYTES:SIZE_BYTES`, e.g. the 1.5 GiB ext4 partition of
/// ../shared/bench/mkcorpus.sh's disk). Not a timing assert: it prints both and checks they
/// list the same lines. `cargo test --release -p vestige-fs ext4::tests::bench -- --ignored
/// --nocapture`.
#[test]
#[ignore = "needs the benchmark corpus"]
fn bench_bodyfile_against_fls() {
    let Ok(spec) = std::env::var("VESTIGE_EXT4_BENCH") else {
        eprintln!("skipped: VESTIGE_EXT4_BENCH is not set");
        return;
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (disk, offset, size) = (
        Path::new(parts[0]),
        parts[1].parse::<u64>().unwrap(),
        parts[2].parse::<u64>().unwrap(),
    );
    let vol = Window(open_file(disk), offset, size);
    let t = std::time::Instant::now();
    let fs = Ext4::open(&vol, "bench").unwrap();
    let (body, problems) = bodyfile(&fs, "/");
    let ours = t.elapsed();
    assert!(problems.is_empty(), "{problems:?}");
    let t = std::time::Instant::now();
    let out = run(Command::new("fls")
        .args(["-r", "-m", "/", "-o"])
        .arg((offset / 512).to_string())
        .arg(disk));
    let theirs = t.elapsed();
    eprintln!(
        "bodyfile: {} lines in {ours:?}; fls -r -m: {} lines in {theirs:?}; ratio {:.2}",
        body.lines().count(),
        String::from_utf8_lossy(&out).lines().count(),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
    let ours: BTreeSet<String> = body.lines().map(without_target).collect();
    let theirs: BTreeSet<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(without_target)
        .collect();
    let missing: Vec<_> = theirs.difference(&ours).take(20).collect();
    let extra: Vec<_> = ours.difference(&theirs).take(20).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "TSK only: {missing:#?}\nours only: {extra:#?}"
    );
}

/// The fuzz seeds (tiny images made by mke2fs, truncated to 64 KiB) open and read without
/// a panic; the untruncated ones list their files.
#[test]
fn fuzz_seeds_open_and_walk() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/fs_ext4");
    let Ok(list) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no {}", dir.display());
        return;
    };
    let mut opened = 0;
    for entry in list {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(fs) = Ext4::open(&bytes, "seed") {
            opened += 1;
            let names: Vec<Vec<u8>> = fs
                .read_dir(2)
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert!(names.contains(&b"a".to_vec()), "{names:?}");
            read_everything(&fs);
        }
    }
    assert!(opened >= 5);
}

/// The first entry of a directory block is deleted by zeroing its inode number (no
/// earlier entry to grow): TSK lists the name with inode 0, and the file's inode, named by
/// nothing now, under `$OrphanFiles`. So do we.
#[test]
fn deleted_first_entry_of_a_block_matches_tsk() {
    let Some(tmp) = setup(TOOLS) else { return };
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    for i in 0..150 {
        std::fs::write(src.join(format!("dir/file_number_{i}")), format!("{i}\n")).unwrap();
    }
    let img = tmp.path().join("first.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-F", "-q", "-b", "1024", "-d"])
        .arg(&src)
        .arg(&img));
    let file = open_file(&img);
    let fs = Ext4::open(&file, "t").unwrap();
    let dir = crate::walk::lookup(&fs, b"/dir").unwrap();
    let (raw, off) = fs.read_inode(dir).unwrap();
    let super::mapping::Content::Runs(runs) = fs.content(&raw, off).unwrap() else {
        panic!("a block directory")
    };
    // The first entry of the directory's second block.
    assert_eq!(runs[0].logical, 0);
    let second = if runs[0].len > 1 {
        (runs[0].physical + 1) * 1024
    } else {
        runs[1].physical * 1024
    };
    let bytes = std::fs::read(&img).unwrap();
    let at = second as usize;
    let name_len = bytes[at + 6] as usize;
    let name = String::from_utf8(bytes[at + 8..at + 8 + name_len].to_vec()).unwrap();
    drop(fs);
    run(Command::new("debugfs")
        .args(["-w", "-R", &format!("rm /dir/{name}")])
        .arg(&img));
    let file = open_file(&img);
    let fs = Ext4::open(&file, "t").unwrap();
    let e = fs.read_dir(dir).unwrap();
    let gone = e.iter().find(|e| e.name == name.as_bytes()).unwrap();
    assert_eq!((gone.inode, gone.deleted), (0, true));
    assert_eq!(fs.orphans().unwrap().len(), 1);
    compare_with_tsk(&img);
}

/// Runs debugfs on `img` with `script` (one command per line) from a file `cmds` (in
/// write mode when `write`); returns its output.
fn debugfs_script(img: &Path, cmds: &Path, script: &str, write: bool) -> String {
    std::fs::write(cmds, script).unwrap();
    let mut c = Command::new("debugfs");
    if write {
        c.arg("-w");
    }
    String::from_utf8(run(c.arg("-f").arg(cmds).arg(img))).unwrap()
}

/// The number after `label` in debugfs's `stat` output (`Inode: `, `Size: `).
fn stat_number(stat: &str, label: &str) -> u64 {
    stat.split(label)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in {stat}"))
}

/// The block size an ext2/3/4 image's superblock gives.
fn block_size_of(image: &[u8]) -> usize {
    1024usize << u32::from_le_bytes(image[1024 + 0x18..1024 + 0x1C].try_into().unwrap())
}

/// The blocks of `b` that differ from `a` (`bs` bytes each), and their content in `b`.
fn changed_blocks(a: &[u8], b: &[u8], bs: usize) -> (Vec<usize>, Vec<u8>) {
    let mut list = Vec::new();
    let mut data = Vec::new();
    for (i, (x, y)) in a.chunks(bs).zip(b.chunks(bs)).enumerate() {
        if x != y {
            list.push(i);
            data.extend_from_slice(y);
        }
    }
    (list, data)
}

/// A file system that needs recovery, made as a crash leaves one: `A` is populated; the
/// same changes a kernel would journal (deletions, new files, a changed time) are made by debugfs on a copy `B`; every block that differs goes into `A`'s
/// journal as a committed transaction (debugfs `jo`/`jw`/`jc`, with or without csum v3),
/// then a transaction revoking the directory block of `/deep/a`, then one without a
/// commit block. Returns (the image needing recovery, the same replayed by debugfs `jr`,
/// the image as stored before, the revoked block).
fn crashed_image(tmp: &Path, name: &str, checksums: bool) -> (PathBuf, PathBuf, PathBuf, u64) {
    let a = make_image(tmp, name, "mkfs.ext4", &[], 32);
    let b = tmp.join(format!("{name}-b.img"));
    std::fs::copy(&a, &b).unwrap();
    let newfile = tmp.join(format!("{name}-new"));
    std::fs::write(&newfile, b"written after the last checkpoint\n").unwrap();
    let changes = format!(
        "rm /small.txt\nwrite {0} /deep/a/newfile\nwrite {0} /newroot.txt\n\
         set_inode_field /medium.bin mtime 20200101000000\nrm /big/f5\n\
         rm /deep/a/b/c/d/file\n",
        newfile.display()
    );
    debugfs_script(&b, &tmp.join(format!("{name}-b.cmds")), &changes, true);
    let (before, after) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let bs = block_size_of(&before);
    let (list, data) = changed_blocks(&before, &after, bs);
    assert!(list.len() > 5, "{list:?}");
    let data_file = tmp.join(format!("{name}-tx1"));
    std::fs::write(&data_file, data).unwrap();
    let junk = tmp.join(format!("{name}-tx3"));
    std::fs::write(&junk, vec![0xA5u8; bs]).unwrap();
    let dir_block: u64 = String::from_utf8(run(Command::new("debugfs")
        .args(["-R", "blocks /deep/a"])
        .arg(&a)))
    .unwrap()
    .split_whitespace()
    .next()
    .unwrap()
    .parse()
    .unwrap();
    let blocks: Vec<String> = list.iter().map(ToString::to_string).collect();
    let stored = tmp.join(format!("{name}-stored.img"));
    std::fs::copy(&a, &stored).unwrap();
    let journal = format!(
        "jo{}\njw -b {} {}\njw -r {dir_block}\njw -b {} -c {}\njc\n",
        if checksums { " -c" } else { "" },
        blocks.join(","),
        data_file.display(),
        list[list.len() / 2],
        junk.display()
    );
    debugfs_script(&a, &tmp.join(format!("{name}-j.cmds")), &journal, true);
    let replayed = tmp.join(format!("{name}-replayed.img"));
    std::fs::copy(&a, &replayed).unwrap();
    run(Command::new("debugfs")
        .args(["-w", "-R", "jr"])
        .arg(&replayed));
    (a, replayed, stored, dir_block)
}

/// A journal that needs recovery is replayed in memory exactly as e2fsprogs replays it:
/// our file system over the crashed image equals fls/icat over debugfs's replayed copy,
/// committed blocks and a revoke honoured, the uncommitted transaction ignored, the
/// image itself unchanged; `open_as_stored` equals fls over the crashed image itself.
#[test]
fn journal_is_replayed_in_memory_as_e2fsprogs_does() {
    let Some(tmp) = setup(TOOLS) else { return };
    for (name, checksums) in [("jplain", false), ("jcsum", true)] {
        let (crashed, replayed, stored, revoked) = crashed_image(tmp.path(), name, checksums);
        if !checksums {
            // debugfs writes the commit time as 32 bits into the 64-bit h_commit_sec; the
            // kernel writes 64. Rewrite transaction 1's as the kernel does (no checksum
            // covers it here) to see it read back.
            fix_commit_time(&crashed);
        }
        let sha_before = sha(&std::fs::read(&crashed).unwrap());
        let file = open_file(&crashed);
        let fs = Ext4::open(&file, "test").unwrap();
        let notes = fs.info().notes;
        let note = notes
            .iter()
            .find(|n| n.starts_with("journal replayed in memory"))
            .unwrap_or_else(|| panic!("{notes:?}"));
        assert!(
            note.contains("2 committed transactions (ids 1 to 2"),
            "{note}"
        );
        if checksums {
            assert!(note.contains("is not a time (e2fsprogs' debugfs"), "{note}");
        } else {
            let secs = t_commit(&fs);
            assert!(
                secs > 1_700_000_000 && note.contains(&format!("committed from {secs} to")),
                "{note}"
            );
        }
        assert!(
            note.contains("transaction 3 is not committed (no valid commit block)"),
            "{note}"
        );
        assert!(
            note.contains("1 logged blocks not replayed: revoked by a later transaction"),
            "{note}"
        );
        let t = fs.replayed_transactions();
        assert_eq!(t.len(), 2);
        assert!(t[0].blocks.contains(&revoked) && t[1].blocks.is_empty());
        assert!(compare_fs_with_tsk(&fs, &replayed) > 2000);
        // The revoked directory block is as stored: /deep/a has no newfile.
        assert!(crate::walk::lookup(&fs, b"/deep/a/newfile").is_err());
        assert!(crate::walk::lookup(&fs, b"/newroot.txt").is_ok());
        // As stored: TSK's view of the crashed image, with a note.
        let as_stored = Ext4::open_as_stored(&file, "test").unwrap();
        assert!(as_stored
            .info()
            .notes
            .iter()
            .any(|n| n.contains("needs recovery; it was not replayed")));
        compare_fs_with_tsk(&as_stored, &crashed);
        assert!(crate::walk::lookup(&as_stored, b"/newroot.txt").is_err());
        drop((fs, as_stored));
        assert_eq!(sha(&std::fs::read(&crashed).unwrap()), sha_before);
        let _ = stored;
    }
}

/// A damaged log replays what it can prove and says where it stopped: a bad commit
/// checksum ends the log before that transaction; a bad data checksum skips the block;
/// random damage to the log never panics or hangs.
#[test]
fn damaged_journals_replay_what_is_proven() {
    let Some(tmp) = setup(TOOLS) else { return };
    let (crashed, _, _, _) = crashed_image(tmp.path(), "jdmg", true);
    let good = std::fs::read(&crashed).unwrap();
    let file = open_file(&crashed);
    let fs = Ext4::open_as_stored(&file, "test").unwrap();
    let bmap = |n: u64| journal_log_block(&crashed, n);
    let bs = u64::from(fs.sb.block_size);
    drop(fs);
    let commit = first_commit_block(&good, &crashed, bs);
    let mut img = good.clone();
    img[commit + 0x30] ^= 1; // inside the commit time: the checksum no longer matches
    let fs = Ext4::open(&img, "t").unwrap();
    let notes = fs.info().notes.join("\n");
    assert!(
        notes.contains("no committed block to replay")
            && notes.contains("commit block")
            && notes.contains("bad checksum"),
        "{notes}"
    );
    // A bad data block checksum: that block is skipped, the rest replayed.
    let mut img = good.clone();
    let data = (bmap(2) * bs) as usize;
    img[data + 100] ^= 0xFF;
    let fs = Ext4::open(&img, "t").unwrap();
    let notes = fs.info().notes.join("\n");
    assert!(
        notes.contains("1 logged blocks not replayed: with a bad data checksum"),
        "{notes}"
    );
    // Random damage anywhere in the first 40 journal blocks.
    let log: Vec<usize> = (0..40).map(|n| (bmap(n) * bs) as usize).collect();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut img = good.clone();
        for k in 0..4 {
            let blk = log[((seed >> (k * 8)) as usize) % log.len()];
            let at = blk + ((seed >> 20) as usize + k * 977) % bs as usize;
            img[at] ^= (seed >> 40) as u8 | 1;
        }
        if let Ok(fs) = Ext4::open(&img, "t") {
            read_everything(&fs);
        }
    }
}

/// The volume block holding journal block `n` of `img` (debugfs `bmap` of inode 8).
fn journal_log_block(img: &Path, n: u64) -> u64 {
    String::from_utf8(run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("bmap <8> {n}"))
        .arg(img)))
    .unwrap()
    .trim()
    .parse()
    .unwrap()
}

/// The byte offset in `bytes` (the image `img`) of the journal's first commit block.
fn first_commit_block(bytes: &[u8], img: &Path, bs: u64) -> usize {
    (1..64u64)
        .map(|n| (journal_log_block(img, n) * bs) as usize)
        .find(|&at| bytes[at..at + 4] == journal::MAGIC.to_be_bytes() && bytes[at + 7] == 2)
        .unwrap_or_else(|| panic!("no commit block in {}", img.display()))
}

/// The first commit block in the journal of `img`, its `h_commit_sec` rewritten from
/// debugfs's 32-bit form to the kernel's 64-bit big-endian form.
fn fix_commit_time(img: &Path) {
    let mut b = std::fs::read(img).unwrap();
    let file = open_file(img);
    let bs = u64::from(Ext4::open_as_stored(&file, "t").unwrap().sb.block_size);
    let at = first_commit_block(&b, img, bs);
    let secs = u32::from_be_bytes(b[at + 0x30..at + 0x34].try_into().unwrap());
    b[at + 0x30..at + 0x38].copy_from_slice(&u64::from(secs).to_be_bytes());
    std::fs::write(img, b).unwrap();
}

/// Transaction 1's commit time, in seconds.
fn t_commit(fs: &Ext4<'_>) -> i64 {
    fs.replayed_transactions()[0].commit_time.unwrap().0
}

/// What `debugfs logdump -a` (`-aO` for old transactions too) lists: journal metadata
/// blocks as (kind, log block, transaction), data blocks as (log block, fs block, tag
/// flags), and the revoked fs blocks.
type Logdump = (
    BTreeSet<(String, u64, u32)>,
    BTreeSet<(u64, u64, u32)>,
    BTreeSet<u64>,
);

fn logdump(img: &Path, old: bool) -> Logdump {
    let text = String::from_utf8(run(Command::new("debugfs")
        .arg("-R")
        .arg(if old { "logdump -aO" } else { "logdump -a" })
        .arg(img)))
    .unwrap();
    let (mut meta, mut data, mut revoked) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for l in text.lines() {
        let words: Vec<&str> = l.split_whitespace().collect();
        if let Some(rest) = l.strip_prefix("Found expected sequence ") {
            // "1, type 1 (descriptor block) at block 1"
            let seq: u32 = rest.split(',').next().unwrap().parse().unwrap();
            let kind = match words[5] {
                "1" => "descriptor",
                "2" => "commit",
                "5" => "revoke",
                other => panic!("{other}: {l}"),
            };
            let at: u64 = words.last().unwrap().parse().unwrap();
            meta.insert((kind.to_string(), at, seq));
        } else if l.starts_with("  FS block ") {
            // "  FS block 1 logged at journal block 3 (flags 0x2)"
            let flags =
                u32::from_str_radix(words[9].trim_end_matches(')').trim_start_matches("0x"), 16)
                    .unwrap();
            data.insert((
                words[7].parse().unwrap(),
                words[2].parse().unwrap(),
                flags & 0xF,
            ));
        } else if l.starts_with("  Revoke FS block ") {
            revoked.insert(words[3].parse().unwrap());
        }
    }
    (meta, data, revoked)
}

fn our_logdump(fs: &Ext4<'_>) -> Logdump {
    let listing = fs.journal_listing().unwrap();
    let (mut meta, mut data, mut revoked) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for e in &listing.entries {
        match e.kind {
            "data" => {
                // logdump prints the 16 bits at tag byte 6 (the csum v2 layout's t_flags);
                // in a v3 tag t_flags is 32 bits at byte 4, and debugfs's writer leaves
                // other bits in its upper half. Only the low four bits mean anything.
                data.insert((e.log_block, e.fs_block.unwrap(), e.flags.unwrap() & 0xF));
            }
            kind => {
                meta.insert((kind.to_string(), e.log_block, e.sequence));
                revoked.extend(e.revoked.iter().copied());
            }
        }
    }
    (meta, data, revoked)
}

/// The journal listing equals debugfs's logdump: on the crashed image, the live log
/// (`logdump -a`, every entry live); after e2fsprogs replayed it (`jr`: the journal is
/// clean), every transaction is still in the log as an old one (`logdump -aO`). The roles
/// of the logged blocks come from the group descriptors (dumpe2fs's layout).
#[test]
fn journal_listing_matches_debugfs_logdump() {
    let Some(tmp) = setup(TOOLS) else { return };
    for (name, checksums) in [("lplain", false), ("lcsum", true)] {
        let (crashed, replayed, _, revoked) = crashed_image(tmp.path(), name, checksums);
        let file = open_file(&crashed);
        let fs = Ext4::open(&file, "test").unwrap();
        let ours = our_logdump(&fs);
        assert_eq!(ours, logdump(&crashed, false));
        assert!(ours.2.contains(&revoked));
        let listing = fs.journal_listing().unwrap();
        assert!(listing.entries.iter().all(|e| e.live));
        assert_eq!(listing.features.contains(&"csum_v3"), checksums);
        assert!(listing
            .entries
            .iter()
            .filter(|e| e.checksum_ok.is_some())
            .all(|e| e.checksum_ok == Some(true)));
        // The superblock and an inode table block are among the copies, named.
        let roles: Vec<String> = listing
            .entries
            .iter()
            .filter_map(|e| e.fs_block.and_then(|b| fs.block_role(b)))
            .collect();
        assert!(roles.iter().any(|r| r == "superblock"), "{roles:?}");
        assert!(
            roles.iter().any(|r| r.starts_with("inode table of group ")),
            "{roles:?}"
        );
        drop(fs);
        let file = open_file(&replayed);
        let fs = Ext4::open(&file, "test").unwrap();
        let listing = fs.journal_listing().unwrap();
        assert_eq!(listing.start, 0);
        assert!(listing.entries.iter().all(|e| !e.live));
        assert_eq!(our_logdump(&fs), logdump(&replayed, true));
    }
}

/// Deleted files whose earlier inodes survive in the journal, as they do after any
/// deletion on a journaled ext4: the image holds the deletion, and the (clean) journal
/// still holds the transaction before it, with the inode table blocks as they were.
/// Made with debugfs: files removed on a copy; the changed blocks before the deletion,
/// then after it, written as two committed transactions and replayed (`jr`), leaving the
/// log clean with both in it. Every deleted inode, and only those, is found, with the
/// size, owner, mode and four times `debugfs stat` gave for it before the deletion.
#[test]
fn deleted_inodes_are_recovered_from_journal_copies() {
    let Some(tmp) = setup(TOOLS) else { return };
    let tmp = tmp.path();
    let before = make_image(tmp, "hist", "mkfs.ext4", &[], 32);
    let victims = [
        "/medium.bin",
        "/big/large.bin",
        "/with space/caf\u{e9} \u{f1}.txt",
    ];
    let stat_before: Vec<(u64, String)> = victims
        .iter()
        .map(|v| {
            let s = String::from_utf8(run(Command::new("debugfs")
                .arg("-R")
                .arg(format!("stat \"{v}\""))
                .arg(&before)))
            .unwrap();
            (stat_number(&s, "Inode: "), s)
        })
        .collect();
    let after = tmp.join("hist-after.img");
    std::fs::copy(&before, &after).unwrap();
    let rm: String = victims.iter().map(|v| format!("rm \"{v}\"\n")).collect();
    debugfs_script(&after, &tmp.join("hist.cmds"), &rm, true);
    let (a, b) = (
        std::fs::read(&before).unwrap(),
        std::fs::read(&after).unwrap(),
    );
    let bs = block_size_of(&a);
    let (list, data_after) = changed_blocks(&a, &b, bs);
    let data_before: Vec<u8> = list
        .iter()
        .flat_map(|&i| a[i * bs..(i + 1) * bs].to_vec())
        .collect();
    std::fs::write(tmp.join("hist-tx1"), data_before).unwrap();
    std::fs::write(tmp.join("hist-tx2"), data_after).unwrap();
    let blocks: Vec<String> = list.iter().map(ToString::to_string).collect();
    let journal = format!(
        "jo -c\njw -b {0} {1}\njw -b {0} {2}\njc\n",
        blocks.join(","),
        tmp.join("hist-tx1").display(),
        tmp.join("hist-tx2").display()
    );
    debugfs_script(&after, &tmp.join("hist-j.cmds"), &journal, true);
    run(Command::new("debugfs").args(["-w", "-R", "jr"]).arg(&after));
    let file = open_file(&after);
    let fs = Ext4::open(&file, "test").unwrap();
    let listing = fs.journal_listing().unwrap();
    assert_eq!(listing.start, 0, "the journal is clean after jr");
    let found = fs.journal_inodes(&listing, 1000).unwrap();
    let got: BTreeSet<u64> = found.iter().map(|f| f.inode).collect();
    let want: BTreeSet<u64> = stat_before.iter().map(|(i, _)| *i).collect();
    assert_eq!(got, want, "{found:#?}");
    for (ino, stat) in &stat_before {
        let f = found.iter().find(|f| f.inode == *ino).unwrap();
        assert_eq!((f.sequence, f.live), (1, false), "{f:?}");
        assert_eq!(f.size, stat_number(stat, "Size: "), "{stat}");
        assert_eq!(f.kind, FileKind::Regular);
        let t = debugfs_times(stat);
        let pair = |x: Option<crate::Timestamp>| x.map(|x| (x.secs, x.nanos));
        assert_eq!(pair(f.times.modified), t.get("mtime").copied(), "{stat}");
        assert_eq!(pair(f.times.accessed), t.get("atime").copied(), "{stat}");
        assert_eq!(pair(f.times.changed), t.get("ctime").copied(), "{stat}");
        assert_eq!(pair(f.times.created), t.get("crtime").copied(), "{stat}");
        // …and the file system itself has the inode free now.
        assert!(!fs.metadata(*ino).unwrap().allocated);
    }
}
