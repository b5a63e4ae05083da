//! XFS against xfsprogs on images made by `mkfs.xfs -p PROTOFILE` (it copies a tree in
//! without mounting; TSK has no XFS): every path against `xfs_db ncheck` (inode ↔ path),
//! every inode's size, mode, owner, links and four times (with nanoseconds) against
//! `xfs_db inode N; print`, content SHA-256 against the host files copied, symlink
//! targets against the protofile. v4 (`-m crc=0`), v5 and v5 bigtime; shortform, block,
//! leaf and node (btree-format) directories. Hostile variants give errors or bounded
//! results.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::expect_used,
    clippy::panic
)]

use super::Xfs;
use crate::test_support::{content, have_tools, read_file, sha};
use crate::walk::{bodyfile, walk};
use crate::{FileKind, FileSystem, FsError, ReadAt};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the protofile puts where: path → (host file, or symlink target).
struct Image {
    img: PathBuf,
    files: BTreeMap<String, PathBuf>,
    links: BTreeMap<String, String>,
    _dir: tempfile::TempDir,
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

/// Files of every kind the protofile can make; directories of 5, 20, 300 and 3000
/// names (shortform, block, leaf, node).
fn build(mkfs_args: &[&str], label: &str) -> Image {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    let mut files = BTreeMap::new();
    let mut links = BTreeMap::new();
    let mut proto = vec!["dummy".to_string(), "0 0".into(), "d--755 0 0".into()];
    let mut put = |proto: &mut Vec<String>, path: &str, name: &str, mode: &str, data: &[u8]| {
        let h = host.join(path.replace('/', "_"));
        std::fs::write(&h, data).unwrap();
        proto.push(format!("{name} {mode} 1000 100 {}", h.display()));
        files.insert(path.to_string(), h);
    };
    put(&mut proto, "small.txt", "small.txt", "---644", b"hello\n");
    put(&mut proto, "empty", "empty", "---600", b"");
    put(
        &mut proto,
        "medium.bin",
        "medium.bin",
        "---640",
        &content(1, 70_000),
    );
    put(
        &mut proto,
        "big.bin",
        "big.bin",
        "-u-755",
        &content(2, 3_000_000),
    );
    proto.push("shortlink l--777 0 0 small.txt".into());
    links.insert("shortlink".to_string(), "small.txt".to_string());
    let long = format!("{}end", "long/".repeat(150));
    proto.push(format!("longlink l--777 0 0 {long}"));
    links.insert("longlink".to_string(), long);
    proto.push("cdev c--644 0 0 1 3".into());
    proto.push("bdev b--600 0 0 8 1".into());
    proto.push("fifo p--644 0 0".into());
    for (d, n) in [("d5", 5), ("d20", 20), ("d300", 300), ("d3000", 3000)] {
        proto.push(format!("{d} d--750 7 8"));
        for i in 0..n {
            let name = if n == 5 {
                format!("f{i}")
            } else {
                format!("file_with_a_longish_name_{i:05}")
            };
            let data = content(100 + i as u64, i % 7 * 100);
            put(&mut proto, &format!("{d}/{name}"), &name, "---644", &data);
        }
        proto.push("$".into());
    }
    proto.push("$".into());
    let pf = dir.path().join("proto");
    std::fs::write(&pf, proto.join("\n") + "\n").unwrap();
    let img = dir.path().join("xfs.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let mut cmd = Command::new("mkfs.xfs");
    cmd.args(["-q", "-f", "-L", label])
        .args(mkfs_args)
        .arg("-p")
        .arg(&pf)
        .arg(&img);
    run(&mut cmd);
    Image {
        img,
        files,
        links,
        _dir: dir,
    }
}

/// `xfs_db ncheck`: path → inode (directories as `d/.`, made `d`).
fn ncheck(img: &Path) -> BTreeMap<String, u64> {
    let out = run(Command::new("xfs_db")
        .args(["-r", "-c", "blockget -n", "-c", "ncheck"])
        .arg(img));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let ino = it.next()?.parse().ok()?;
            let p = it.next()?;
            Some((p.strip_suffix("/.").unwrap_or(p).to_string(), ino))
        })
        .collect()
}

/// `xfs_db`'s `print` of each inode: field → value.
fn db_inodes(img: &Path, inodes: &[u64]) -> HashMap<u64, HashMap<String, String>> {
    let mut child = Command::new("xfs_db")
        .arg("-r")
        .arg(img)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut script = String::new();
    for i in inodes {
        script.push_str(&format!("inode {i}\nprint\n"));
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut res = HashMap::new();
    let mut it = inodes.iter();
    let mut cur: Option<(u64, HashMap<String, String>)> = None;
    for l in text.lines() {
        if let Some((k, v)) = l.split_once(" = ") {
            if k == "core.magic" {
                if let Some((i, m)) = cur.take() {
                    res.insert(i, m);
                }
                cur = Some((*it.next().unwrap(), HashMap::new()));
            }
            if let Some((_, m)) = cur.as_mut() {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    if let Some((i, m)) = cur {
        res.insert(i, m);
    }
    res
}

/// `Thu Nov 26 03:45:04 2026` (UTC) as Unix seconds.
fn ctime_secs(s: &str) -> i64 {
    let p: Vec<&str> = s.split_whitespace().collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|&x| x == p[1]).unwrap() as i64 + 1;
    let d: i64 = p[2].parse().unwrap();
    let y: i64 = p[4].parse().unwrap();
    let hms: Vec<i64> = p[3].split(':').map(|x| x.parse().unwrap()).collect();
    // days_from_civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
}

fn db_time(m: &HashMap<String, String>, prefix: &str) -> Option<(i64, u32)> {
    let s = ctime_secs(m.get(&format!("{prefix}.sec"))?);
    let n: u32 = m.get(&format!("{prefix}.nsec"))?.parse().unwrap();
    Some((s, n))
}

fn ours_time(t: Option<crate::Timestamp>) -> Option<(i64, u32)> {
    Some(t.map_or((0, 0), |t| (t.secs, t.nanos)))
}

/// Every path, inode, size, mode, owner, link count, time and content against xfsprogs.
fn compare(image: &Image, v5: bool) {
    let data = std::fs::read(&image.img).unwrap();
    let vol: &dyn ReadAt = &data.as_slice();
    let fs = Xfs::open(vol, "test").unwrap();
    let info = fs.info();
    assert_eq!(info.kind, "xfs");
    assert_eq!(info.label.as_deref(), Some("vlabel"));
    if v5 {
        assert!(
            info.notes.iter().any(|n| n == "superblock CRC matches"),
            "{:?}",
            info.notes
        );
    }
    let expected = ncheck(&image.img);
    let mut found = BTreeMap::new();
    let problems = walk(&fs, |f| {
        let p = String::from_utf8(f.path.clone()).unwrap();
        let p = p.trim_start_matches('/').to_string();
        assert!(!f.entry.deleted, "{p}");
        found.insert(p, f.clone());
    });
    assert!(problems.is_empty(), "{problems:?}");
    let paths: Vec<&String> = found.keys().collect();
    let want: Vec<&String> = expected.keys().collect();
    assert_eq!(paths, want);
    let mut inos: Vec<u64> = expected.values().copied().collect();
    inos.push(fs.root());
    let db = db_inodes(&image.img, &inos);
    let mut checked = 0;
    for (p, f) in &found {
        let ino = expected[p];
        assert_eq!(f.entry.inode, ino, "{p}");
        let m = f.metadata.as_ref().unwrap();
        let d = &db[&ino];
        let size: u64 = d["core.size"].parse().unwrap();
        let mode = u32::from_str_radix(&d["core.mode"], 8).unwrap();
        assert_eq!(m.mode, mode & 0o7777, "{p}");
        if matches!(
            m.kind,
            FileKind::Regular | FileKind::Directory | FileKind::Symlink
        ) {
            assert_eq!(m.size, size, "{p}");
        }
        let kind_bits = mode & 0o170_000;
        let kind = match kind_bits {
            0o100_000 => FileKind::Regular,
            0o040_000 => FileKind::Directory,
            0o120_000 => FileKind::Symlink,
            0o020_000 => FileKind::CharDevice,
            0o060_000 => FileKind::BlockDevice,
            0o010_000 => FileKind::Fifo,
            _ => FileKind::Unknown,
        };
        assert_eq!(m.kind, kind, "{p}");
        if v5 {
            assert_eq!(f.entry.kind, kind, "{p}: ftype");
        }
        assert_eq!(m.uid.to_string(), d["core.uid"], "{p}");
        assert_eq!(m.gid.to_string(), d["core.gid"], "{p}");
        assert_eq!(m.links.to_string(), d["core.nlinkv2"], "{p}");
        assert!(m.allocated);
        assert_eq!(ours_time(m.times.accessed), db_time(d, "core.atime"), "{p}");
        assert_eq!(ours_time(m.times.modified), db_time(d, "core.mtime"), "{p}");
        assert_eq!(ours_time(m.times.changed), db_time(d, "core.ctime"), "{p}");
        if v5 {
            assert_eq!(ours_time(m.times.created), db_time(d, "v3.crtime"), "{p}");
            assert!(m.times.modified.unwrap().nanos != 0 || m.times.changed.is_some());
        } else {
            assert_eq!(m.times.created, None);
        }
        if let Some(h) = image.files.get(p) {
            let want = std::fs::read(h).unwrap();
            assert_eq!(sha(&read_file(&fs, ino).unwrap()), sha(&want), "{p}");
            checked += 1;
        }
        if let Some(t) = image.links.get(p) {
            assert_eq!(
                fs.read_link(ino)
                    .map(|v| String::from_utf8(v).unwrap())
                    .map_err(|e| e.to_string()),
                Ok(t.clone()),
                "{p}"
            );
            assert_eq!(read_file(&fs, ino).unwrap(), t.as_bytes(), "{p}");
        }
    }
    assert_eq!(checked, image.files.len());
    // The directory formats this image was made to have.
    let format = |p: &str| db[&expected[p]]["core.format"].clone();
    assert!(format("d5").starts_with("1 "), "{}", format("d5"));
    assert!(format("d3000").starts_with("3 "), "{}", format("d3000"));
    let (body, problems) = bodyfile(&fs, "/");
    assert!(problems.is_empty());
    assert_eq!(body.lines().count(), found.len());
}

#[test]
fn xfs_v5_bigtime_against_xfs_db() {
    if !have_tools(&["mkfs.xfs", "xfs_db"]) {
        return;
    }
    let image = build(&["-m", "bigtime=1", "-i", "nrext64=1"], "vlabel");
    compare(&image, true);
}

#[test]
fn xfs_v5_against_xfs_db() {
    if !have_tools(&["mkfs.xfs", "xfs_db"]) {
        return;
    }
    let image = build(&["-m", "bigtime=0", "-b", "size=1024"], "vlabel");
    compare(&image, true);
}

#[test]
fn xfs_v4_against_xfs_db() {
    if !have_tools(&["mkfs.xfs", "xfs_db"]) {
        return;
    }
    let image = build(&["-m", "crc=0", "-n", "ftype=0"], "vlabel");
    compare(&image, false);
}

/// The packed extent record, bit by bit.
#[test]
fn extent_record_decodes() {
    let startoff: u64 = 0x12_3456_789A;
    let startblock: u64 = 0xF_EDCB_A987_6543;
    let count: u64 = 0x1_2345;
    let l0 = (1u64 << 63) | (startoff << 9) | (startblock >> 43);
    let l1 = (startblock << 21) | count;
    let mut rec = l0.to_be_bytes().to_vec();
    rec.extend(l1.to_be_bytes());
    let e = super::data::decode(&rec);
    assert!(e.unwritten);
    assert_eq!(e.startoff, startoff);
    assert_eq!(e.startblock, startblock);
    assert_eq!(e.blockcount, count);
}

#[test]
fn not_xfs_is_refused() {
    let zeros = vec![0u8; 8192];
    let vol: &dyn ReadAt = &zeros.as_slice();
    assert!(!super::probe(vol));
    assert!(matches!(Xfs::open(vol, "z"), Err(FsError::Invalid { .. })));
    let short: &dyn ReadAt = &&b"XFSB"[..];
    assert!(super::probe(short));
    assert!(Xfs::open(short, "s").is_err());
}

/// Reads every seed of the fuzz target (truncated images): open, walk, read all, with the
/// fuzz target's invariants.
#[test]
fn xfs_fuzz_seeds_exercise() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/fs_xfs");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no seeds at {}", dir.display());
        return;
    };
    let mut n = 0;
    for e in rd {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        let vol: &dyn ReadAt = &data.as_slice();
        let fs = Xfs::open(vol, "seed").unwrap();
        assert!(fs.info().notes.iter().any(|n| n.contains("truncated")));
        crate::fuzz_support::exercise(&fs, "xfs", crate::fuzz_support::Reads::Exact);
        let names: Vec<Vec<u8>> = fs
            .read_dir(fs.root())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(names.contains(&b"a".to_vec()), "{names:?}");
        n += 1;
    }
    assert_eq!(n, 2);
}

/// One fresh v5 image's bytes and its file system's geometry.
fn v5_bytes() -> Option<(Image, Vec<u8>)> {
    if !have_tools(&["mkfs.xfs", "xfs_db"]) {
        return None;
    }
    let image = build(&[], "vlabel");
    let data = std::fs::read(&image.img).unwrap();
    Some((image, data))
}

fn put_be(data: &mut [u8], at: u64, bytes: &[u8]) {
    let at = at as usize;
    data[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Walks and reads everything; must end (bounded) without a panic.
fn survive(data: &[u8]) -> Result<usize, FsError> {
    let vol: &dyn ReadAt = &data;
    let fs = Xfs::open(vol, "hostile")?;
    let n = crate::test_support::exercise(&fs);
    let _ = bodyfile(&fs, "/");
    Ok(n)
}

#[test]
fn xfs_hostile_images() {
    let Some((image, clean)) = v5_bytes() else {
        return;
    };
    let paths = ncheck(&image.img);
    let (sb, root) = {
        let vol: &dyn ReadAt = &clean.as_slice();
        let fs = Xfs::open(vol, "clean").unwrap();
        (fs.sb.clone(), fs.root())
    };
    let at = |ino: u64| sb.inode_offset(ino).unwrap();
    let isz = u64::from(sb.inode_size);
    let fork = 176u64;

    // A corrupted superblock byte: still read, the CRC mismatch noted.
    let mut d = clean.clone();
    d[300] ^= 0xFF;
    let vol: &dyn ReadAt = &d.as_slice();
    let fs = Xfs::open(vol, "crc").unwrap();
    assert!(fs.info().notes.iter().any(|n| n.contains("CRC mismatch")));

    // Impossible geometry: refused with the field named.
    for (off, bytes, field) in [
        (4u64, &[0, 0, 0x10, 1][..], "xfs sb_blocksize"),
        (88, &[0, 0, 0, 0][..], "xfs sb_agblocks"),
        (8, &[0xFF; 8][..], "xfs sb_dblocks"),
        (104, &[0, 3][..], "xfs sb_inodesize"),
        (56, &[0x7F, 0, 0, 0, 0, 0, 0, 0][..], "xfs sb_rootino"),
    ] {
        let mut d = clean.clone();
        put_be(&mut d, off, bytes);
        match survive(&d) {
            Err(FsError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // An unknown incompatible feature: refused as unsupported.
    let mut d = clean.clone();
    put_be(&mut d, 216, &[0x80, 0, 0, 1]);
    assert!(matches!(survive(&d), Err(FsError::Unsupported { .. })));

    // Bad root inode magic: the root cannot be read, named.
    let mut d = clean.clone();
    put_be(&mut d, at(root), b"XX");
    let vol: &dyn ReadAt = &d.as_slice();
    let fs = Xfs::open(vol, "magic").unwrap();
    match fs.read_dir(root) {
        Err(FsError::Invalid { field, .. }) => assert_eq!(field, "xfs inode di_magic"),
        other => panic!("{other:?}"),
    }
    survive(&d).unwrap();

    // A shortform directory whose entry names the root, and one naming itself: a loop
    // the walk stops.
    let d5 = paths["d5"];
    for target in [root, d5] {
        let mut d = clean.clone();
        // Header: count, i8count, 4-byte parent; entry: namelen, offset, "f0", ftype.
        put_be(&mut d, at(d5) + fork + 6 + 5, &[2]);
        put_be(
            &mut d,
            at(d5) + fork + 6 + 6,
            &(target as u32).to_be_bytes(),
        );
        let n = survive(&d).unwrap();
        assert!(n < 10_000, "{n}");
    }

    // A huge extent count on a file: refused (it cannot fit the fork).
    let big = paths["big.bin"];
    let mut d = clean.clone();
    put_be(&mut d, at(big) + 76, &[0xFF; 4]);
    let vol: &dyn ReadAt = &d.as_slice();
    let fs = Xfs::open(vol, "count").unwrap();
    match fs.open(big, None) {
        Err(FsError::Invalid { field, .. }) => assert_eq!(field, "xfs inode di_nextents"),
        other => panic!("{:?}", other.map(|r| r.size())),
    }
    survive(&d).unwrap();

    // An extent past the end of the file system.
    let mut d = clean.clone();
    let rec = at(big) + fork;
    d[rec as usize + 7] |= 0xFF;
    d[rec as usize + 6] |= 0x01;
    let vol: &dyn ReadAt = &d.as_slice();
    let fs = Xfs::open(vol, "extent").unwrap();
    assert!(fs.open(big, None).is_err());
    survive(&d).unwrap();

    // The btree directory: pointers past the end, to the inode's own block (wrong magic),
    // twice to the same block (a loop), and a root level too deep.
    let d3000 = paths["d3000"];
    let root_at = at(d3000) + fork;
    let maxrecs = (isz - fork - 4) / 16;
    let ptr0 = root_at + 4 + maxrecs * 8;
    let own_block = (at(d3000) / u64::from(sb.block_size)).to_be_bytes();
    let first = clean[ptr0 as usize..ptr0 as usize + 8].to_vec();
    for (what, edit) in [
        ("past the end", vec![(ptr0, vec![0x7F; 8])]),
        ("own block", vec![(ptr0, own_block.to_vec())]),
        (
            "twice",
            vec![(root_at + 2, vec![0, 2]), (ptr0 + 8, first.clone())],
        ),
        ("level", vec![(root_at, vec![0, 40])]),
    ] {
        let mut d = clean.clone();
        for (o, b) in &edit {
            put_be(&mut d, *o, b);
        }
        let vol: &dyn ReadAt = &d.as_slice();
        let fs = Xfs::open(vol, "bmbt").unwrap();
        assert!(fs.read_dir(d3000).is_err(), "{what}");
        survive(&d).unwrap();
    }

    // Truncated anywhere: never a panic.
    for len in [512usize, 4096, 65536, 1 << 20, 40 << 20] {
        let _ = survive(&clean[..len]);
    }
}

/// A freed entry in a block directory (tag 0xffff over the first 4 bytes of its inode
/// number) is listed as deleted, with its name and (inode numbers fit 32 bits here) its
/// inode; the allocated entries are unchanged.
#[test]
fn xfs_freed_entry_recovered() {
    let Some((image, clean)) = v5_bytes() else {
        return;
    };
    let paths = ncheck(&image.img);
    let d20 = paths["d20"];
    let victim = "file_with_a_longish_name_00003";
    let (before, block_at) = {
        let vol: &dyn ReadAt = &clean.as_slice();
        let fs = Xfs::open(vol, "clean").unwrap();
        let (raw, off) = fs.read_inode(d20).unwrap();
        let Ok(super::Content::Runs(runs)) = fs.content(d20, &raw, off, raw.size) else {
            panic!("d20 is a block directory")
        };
        (fs.read_dir(d20).unwrap(), runs[0].at)
    };
    let block = &clean[block_at as usize..block_at as usize + 4096];
    let name_at = block
        .windows(victim.len())
        .position(|w| w == victim.as_bytes())
        .unwrap();
    let entry = block_at as usize + name_at - 9;
    let mut d = clean.clone();
    // 8 + 1 + 30 + 1 + 2 = 42, rounded to 48.
    put_be(&mut d, entry as u64, &[0xFF, 0xFF, 0, 48]);
    let vol: &dyn ReadAt = &d.as_slice();
    let fs = Xfs::open(vol, "freed").unwrap();
    let after = fs.read_dir(d20).unwrap();
    let live: Vec<_> = after.iter().filter(|e| !e.deleted).cloned().collect();
    let want: Vec<_> = before
        .iter()
        .filter(|e| e.name != victim.as_bytes())
        .cloned()
        .collect();
    assert_eq!(live, want);
    let dead: Vec<_> = after.iter().filter(|e| e.deleted).collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].name, victim.as_bytes());
    assert_eq!(dead[0].inode, paths[&format!("d20/{victim}")]);
    assert_eq!(dead[0].kind, FileKind::Regular);
}

/// `bodyfile` on the largest test image (3338 files), timed.
#[test]
fn xfs_bodyfile_timing() {
    let Some((_image, data)) = v5_bytes() else {
        return;
    };
    let vol: &dyn ReadAt = &data.as_slice();
    let fs = Xfs::open(vol, "timing").unwrap();
    let t = std::time::Instant::now();
    let (body, problems) = bodyfile(&fs, "/");
    eprintln!(
        "xfs bodyfile: {} lines in {:?}",
        body.lines().count(),
        t.elapsed()
    );
    assert!(problems.is_empty());
}

/// Found by the fuzz smoke run: a superblock whose block log is 32 or more made the
/// check `1 << blocklog` overflow (a panic in debug builds). It must be an error.
#[test]
fn xfs_huge_block_log_is_an_error() {
    let data = include_bytes!("../../tests/data/xfs-blocklog-shift.bin");
    let vol: &dyn ReadAt = &data.as_slice();
    assert!(Xfs::open(vol, "fuzz").is_err());
    let mut bytes = data.to_vec();
    for log in [32u8, 40, 255] {
        // sb_blocklog is byte 120.
        bytes[120] = log;
        let vol: &dyn ReadAt = &bytes.as_slice();
        assert!(Xfs::open(vol, "fuzz").is_err());
    }
}
