//! NTFS against The Sleuth Kit on images made by mkntfs and populated through ntfs-3g
//! (FUSE, so root), and against hostile edits of those images.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::expect_used
)]

use super::*;
use crate::test_support::{installed as have, read_all, sha, tools_required};
use crate::walk;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Makes a populated image (see the script); `None` when the tools are missing.
const MAKE_IMAGE: &str = r#"
set -e
IMG=$1; M=$(mktemp -d)
rm -f "$IMG"; truncate -s 24M "$IMG"
mkntfs -F -q -Q -c 4096 -s 512 -L VEST "$IMG" >/dev/null 2>&1
ntfs-3g -o streams_interface=windows "$IMG" "$M"
trap 'umount "$M" 2>/dev/null; rmdir "$M"' EXIT
echo hello > "$M/small.txt"
head -c 100000 /dev/urandom > "$M/big.bin"
mkdir -p "$M/dir1/sub" "$M/many" "$M/comp" "$M/gone"
for i in $(seq 1 80); do echo "file $i" > "$M/many/f$i.txt"; done
head -c 5000 /dev/urandom > "$M/dir1/mid.bin"
echo deep > "$M/dir1/sub/deep.txt"
echo "stream data" > "$M/small.txt:ads1"
head -c 9000 /dev/urandom > "$M/dir1/mid.bin:big stream"
truncate -s 2M "$M/sparse.bin"
echo middle | dd of="$M/sparse.bin" bs=1 seek=1000000 conv=notrunc 2>/dev/null
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "system.ntfs_attrib_be", bytes([0,0,8,0]))' "$M/comp"
yes "compressible line of text" | head -c 300000 > "$M/comp/text.txt"
head -c 70000 /dev/urandom > "$M/comp/random.bin"
(head -c 20000 /dev/urandom; yes abc | head -c 50000) > "$M/comp/mixed.bin"
ln "$M/dir1/mid.bin" "$M/hardlink.bin"
printf 'caf\303\251 \342\202\254' > "$M/$(printf 'unicod\303\251.txt')"
mkdir "$M/jtarget" "$M/junc"; touch "$M/slink" "$M/rlink"
python3 - "$M" <<'PY'
import os, struct, sys
def buf(tag, sub, pr, flags=None):
    s = sub.encode("utf-16-le"); p = pr.encode("utf-16-le")
    if flags is None:
        hdr = struct.pack("<HHHH", 0, len(s), len(s) + 2, len(p)); pb = s + b"\0\0" + p + b"\0\0"
    else:
        hdr = struct.pack("<HHHHI", 0, len(s), len(s), len(p), flags); pb = s + p
    body = hdr + pb
    return struct.pack("<IHH", tag, len(body), 0) + body
m = sys.argv[1]
os.setxattr(m + "/slink", "system.ntfs_reparse_data", buf(0xA000000C, "\\??\\C:\\jtarget\\t.txt", "C:\\jtarget\\t.txt", 0))
os.setxattr(m + "/rlink", "system.ntfs_reparse_data", buf(0xA000000C, "jtarget\\t.txt", "jtarget\\t.txt", 1))
os.setxattr(m + "/junc", "system.ntfs_reparse_data", buf(0xA0000003, "\\??\\C:\\jtarget", "C:\\jtarget"))
PY
echo "to be deleted" > "$M/deleted.txt"
head -c 20000 /dev/urandom > "$M/deleted_big.bin"
echo a > "$M/gone/inner.txt"
for i in $(seq 1 30); do echo "x $i" > "$M/many/f$i.txt"; done
sync
rm "$M/deleted.txt" "$M/deleted_big.bin" "$M/gone/inner.txt"
rmdir "$M/gone"
rm "$M/many/f5.txt" "$M/many/f6.txt"
"#;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The populated image, built once per test run (in a temp dir kept for the process).
fn image() -> Option<PathBuf> {
    static IMG: std::sync::OnceLock<Option<(tempfile::TempDir, PathBuf)>> =
        std::sync::OnceLock::new();
    IMG.get_or_init(|| {
        let tools = ["mkntfs", "ntfs-3g", "python3", "fls", "icat"];
        let missing: Vec<_> = tools.iter().filter(|t| !have(t)).collect();
        if !missing.is_empty() || !is_root() || !Path::new("/dev/fuse").exists() {
            assert!(
                !tools_required(),
                "VESTIGE_REQUIRE_TOOLS=1 but missing {missing:?} or not root / no FUSE"
            );
            eprintln!("skipped: NTFS fixtures need {tools:?}, root and /dev/fuse");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("ntfs.img");
        let st = Command::new("sh")
            .arg("-c")
            .arg(MAKE_IMAGE)
            .arg("sh")
            .arg(&img)
            .status()
            .unwrap();
        assert!(st.success(), "making the NTFS image failed");
        Some((dir, img))
    })
    .as_ref()
    .map(|(_, p)| p.clone())
}

fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A bodyfile line as compared: name|address|size|atime|mtime|ctime|crtime.
fn key(line: &str) -> Option<String> {
    let f: Vec<&str> = line.split('|').collect();
    if f.len() != 11 || f[1] == "/$OrphanFiles" {
        return None;
    }
    let size = f[6];
    // TSK turns a zero FILETIME into 3373865674 (an unsigned wrap); we give 0 (unset).
    let t = |s: &str| if s == "3373865674" { "0" } else { s }.to_string();
    Some(format!(
        "{}|{}|{}|{}|{}|{}|{}",
        f[1],
        f[2],
        size,
        t(f[7]),
        t(f[8]),
        t(f[9]),
        t(f[10])
    ))
}

#[test]
fn filetime_conversion() {
    assert_eq!(filetime(0), None);
    assert_eq!(
        filetime(FILETIME_UNIX_EPOCH),
        Some(Timestamp { secs: 0, nanos: 0 })
    );
    assert_eq!(
        filetime(FILETIME_UNIX_EPOCH + 12_345_678),
        Some(Timestamp {
            secs: 1,
            nanos: 234_567_800
        })
    );
    // Before 1970.
    assert_eq!(
        filetime(1),
        Some(Timestamp {
            secs: -11_644_473_600,
            nanos: 100
        })
    );
}

#[test]
fn bodyfile_matches_fls() {
    let Some(img) = image() else { return };
    let bytes = std::fs::read(&img).unwrap();
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "ntfs.img").unwrap();
    let (ours, problems) = walk::bodyfile(&fs, "/");
    assert!(problems.is_empty(), "{problems:?}");
    let tsk = String::from_utf8(run("fls", &["-r", "-m", "/", img.to_str().unwrap()])).unwrap();
    let ours: BTreeSet<String> = ours.lines().filter_map(key).collect();
    let theirs: BTreeSet<String> = tsk.lines().filter_map(key).collect();
    let missing: Vec<_> = theirs.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    for want in [
        "/gone/inner.txt (deleted)",
        "/deleted_big.bin (deleted)",
        "/many/f5.txt (deleted)",
    ] {
        assert!(
            ours.iter().any(|l| l.starts_with(&format!("{want}|"))),
            "{want}"
        );
    }
    let info = fs.info();
    assert_eq!(info.label.as_deref(), Some("VEST"));
    assert!(
        info.notes.iter().any(|n| n.starts_with("$LogFile present")),
        "{:?}",
        info.notes
    );
}

#[test]
fn content_matches_icat() {
    let Some(img) = image() else { return };
    let bytes = std::fs::read(&img).unwrap();
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "ntfs.img").unwrap();
    let mut checked = 0;
    walk::walk(&fs, |f| {
        let Ok(m) = &f.metadata else { return };
        // TSK's icat writes nothing for $BadClus:$Bad (all sparse); we read zeros.
        if m.kind != FileKind::Regular || m.inode == 8 {
            return;
        }
        let mut addrs: Vec<(Option<String>, String)> = Vec::new();
        if m.address.contains("-128-") {
            addrs.push((None, m.address.clone()));
        }
        for s in &m.streams {
            if s.address.contains("-128-") {
                addrs.push((Some(s.name.clone()), s.address.clone()));
            }
        }
        for (stream, addr) in addrs {
            let theirs = run("icat", &[img.to_str().unwrap(), &addr]);
            let ours = read_all(&*fs.open(m.inode, stream.as_deref()).unwrap());
            assert_eq!(
                sha(&ours),
                sha(&theirs),
                "{} {addr}",
                walk::escape_name(&f.path)
            );
            checked += 1;
        }
    });
    assert!(checked > 100, "{checked}");
}

#[test]
fn compressed_and_sparse_content() {
    let Some(img) = image() else { return };
    let bytes = std::fs::read(&img).unwrap();
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "ntfs.img").unwrap();
    let text = walk::lookup(&fs, b"/comp/text.txt").unwrap();
    let data = read_all(&*fs.open(text, None).unwrap());
    let want: Vec<u8> = b"compressible line of text\n"
        .iter()
        .copied()
        .cycle()
        .take(300_000)
        .collect();
    assert_eq!(data, want);
    let sparse = walk::lookup(&fs, b"/sparse.bin").unwrap();
    let data = read_all(&*fs.open(sparse, None).unwrap());
    assert_eq!(data.len(), 2 << 20);
    assert_eq!(&data[1_000_000..1_000_007], b"middle\n");
    assert!(data[..1_000_000].iter().all(|&b| b == 0));
    let ads = walk::lookup(&fs, b"/small.txt").unwrap();
    assert_eq!(
        read_all(&*fs.open(ads, Some("ads1")).unwrap()),
        b"stream data\n"
    );
}

/// A small image without FUSE: mkntfs and ntfscp (`small.txt` resident, `big.bin` in
/// clusters), as bytes.
fn plain_image() -> Option<Vec<u8>> {
    if !have("mkntfs") || !have("ntfscp") {
        assert!(
            !tools_required(),
            "VESTIGE_REQUIRE_TOOLS=1 but mkntfs/ntfscp missing"
        );
        eprintln!("skipped: needs mkntfs and ntfscp");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
set -e
cd "$1"
truncate -s 8M img
mkntfs -F -q -Q -c 4096 -s 512 img >/dev/null 2>&1
echo hello > small.txt
head -c 50000 /dev/zero | tr '\0' x > big.bin
ntfscp img small.txt /small.txt >/dev/null
ntfscp img big.bin /big.bin >/dev/null
"#;
    let st = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    Some(std::fs::read(dir.path().join("img")).unwrap())
}

fn offset_of(bytes: &[u8], entry: u64) -> u64 {
    let vol = bytes;
    Ntfs::open(&vol, "t").unwrap().record_offset(entry).unwrap()
}

fn field_of(e: &FsError) -> (&'static str, u64) {
    match e {
        FsError::Invalid { field, offset, .. } => (field, *offset),
        other => panic!("not Invalid: {other}"),
    }
}

#[test]
fn plain_image_reads() {
    let Some(bytes) = plain_image() else { return };
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "t").unwrap();
    let big = walk::lookup(&fs, b"/big.bin").unwrap();
    assert_eq!(read_all(&*fs.open(big, None).unwrap()), vec![b'x'; 50_000]);
    let small = walk::lookup(&fs, b"/small.txt").unwrap();
    assert_eq!(read_all(&*fs.open(small, None).unwrap()), b"hello\n");
    assert!(probe(&vol));
    assert!(!probe(&[0u8; 512].as_slice()));
}

#[test]
fn hostile_bad_fixup_names_the_entry() {
    let Some(mut bytes) = plain_image() else {
        return;
    };
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "t").unwrap();
    let big = walk::lookup(&fs, b"/big.bin").unwrap();
    let at = fs.record_offset(big).unwrap();
    drop(fs);
    // The end of the entry's first sector no longer matches the update sequence number.
    bytes[at as usize + 510] ^= 0xFF;
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "t").unwrap();
    let e = fs.metadata(big).unwrap_err();
    assert_eq!(field_of(&e), ("ntfs MFT entry.update_sequence", at));
    assert!(fs
        .info()
        .notes
        .iter()
        .any(|n| n.contains("1 MFT entries are damaged")));
    // Entry 0 damaged: $MFT cannot be read at all.
    let at0 = offset_of(&bytes, 0);
    bytes[at0 as usize + 1022] ^= 0xFF;
    let vol = bytes.as_slice();
    let e = Ntfs::open(&vol, "t").unwrap_err();
    assert_eq!(field_of(&e), ("ntfs MFT entry.update_sequence", at0));
}

/// Finds attribute `kind` in the (fixed-up on disk is fine: fixups sit at sector ends)
/// entry at `at`: its offset in `bytes`.
fn attr_at(bytes: &[u8], at: usize, kind: u32) -> usize {
    let mut a = at + usize::from(record::u16_at(bytes, at + 20).unwrap());
    loop {
        let t = record::u32_at(bytes, a).unwrap();
        assert_ne!(t, 0xFFFF_FFFF, "no attribute {kind:#x}");
        if t == kind {
            return a;
        }
        a += record::u32_at(bytes, a + 4).unwrap() as usize;
    }
}

#[test]
fn hostile_runlist_and_attribute_lengths() {
    let Some(mut bytes) = plain_image() else {
        return;
    };
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "t").unwrap();
    let big = walk::lookup(&fs, b"/big.bin").unwrap();
    let at = fs.record_offset(big).unwrap() as usize;
    drop(fs);
    let data = attr_at(&bytes, at, record::ATTR_DATA);
    let rl = data + usize::from(record::u16_at(&bytes, data + 32).unwrap());
    // One run of 13 clusters at cluster 0x7FFF_FFFF: past the end of the volume.
    let mut hostile = bytes.clone();
    hostile[rl..rl + 6].copy_from_slice(&[0x41, 13, 0xFF, 0xFF, 0xFF, 0x7F]);
    let vol = hostile.as_slice();
    let fs = Ntfs::open(&vol, "t").unwrap();
    let e = fs.open(big, None).err().unwrap();
    assert_eq!(field_of(&e), ("ntfs runlist", (rl) as u64));
    // An attribute of length 0 would loop forever: refused, naming it.
    let mut hostile = bytes.clone();
    hostile[data + 4..data + 8].copy_from_slice(&0u32.to_le_bytes());
    let vol = hostile.as_slice();
    let fs = Ntfs::open(&vol, "t").unwrap();
    let e = fs.metadata(big).unwrap_err();
    assert_eq!(field_of(&e), ("ntfs attribute.length", data as u64));
    // A resident value claiming 4 GiB.
    let si = attr_at(&bytes, at, record::ATTR_STANDARD_INFORMATION);
    bytes[si + 16..si + 20].copy_from_slice(&u32::MAX.to_le_bytes());
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "t").unwrap();
    let e = fs.metadata(big).unwrap_err();
    assert_eq!(field_of(&e), ("ntfs attribute.value_length", si as u64));
}

#[test]
fn hostile_boot_sector() {
    let Some(bytes) = plain_image() else { return };
    for (at, value, field) in [
        (0x0Busize, 3u8, "ntfs boot sector.bytes_per_sector"),
        (0x0D, 0x81, "ntfs boot sector.sectors_per_cluster"),
        (0x40, 0x7F, "ntfs boot sector.clusters_per_mft_record"),
        (0x44, 0x00, "ntfs boot sector.clusters_per_index_record"),
        (0x37, 0x10, "ntfs boot sector.mft_cluster"),
    ] {
        let mut b = bytes.clone();
        b[at] = value;
        let vol = b.as_slice();
        let e = Ntfs::open(&vol, "t").unwrap_err();
        assert_eq!(field_of(&e).0, field, "{at:#x}");
    }
    // Cut short: an I/O error, not a panic.
    let vol = &bytes[..4096];
    assert!(Ntfs::open(&vol, "t").is_err());
}

/// Random damage to the MFT: errors or bounded results, never a panic or hang.
#[test]
fn hostile_random_mft_damage() {
    let Some(bytes) = plain_image() else { return };
    let mft = offset_of(&bytes, 0) as usize;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..150 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 16 {
            let at = mft + (next() % (70 * 1024)) as usize;
            b[at] = next() as u8;
        }
        let vol = b.as_slice();
        if let Ok(fs) = Ntfs::open(&vol, "t") {
            let _ = fs.info();
            walk::walk(&fs, |f| {
                if let Ok(m) = &f.metadata {
                    if let Ok(r) = fs.open(m.inode, None) {
                        let mut buf = vec![0u8; 70_000];
                        let _ = r.read_at(&mut buf, 0);
                    }
                }
            });
        }
    }
}

#[test]
fn lznt1_chunks() {
    // An uncompressed chunk of 3 bytes, padded to 4096.
    let mut out = Vec::new();
    data::lznt1(&[0x02, 0x30, b'a', b'b', b'c'], 8192, &mut out).unwrap();
    assert_eq!(&out[..3], b"abc");
    assert_eq!(out.len(), 4096);
    // "abcabcabc": 3 literals then a back-reference of 6 bytes at distance 3.
    // Token at position 3: 12 length bits; offset (3-1)<<12 | (6-3).
    let token: u16 = (2 << 12) | 3;
    let chunk = [
        0b0000_1000,
        b'a',
        b'b',
        b'c',
        token as u8,
        (token >> 8) as u8,
    ];
    let head = 0xB000u16 | (chunk.len() as u16 - 1);
    let mut input = head.to_le_bytes().to_vec();
    input.extend_from_slice(&chunk);
    let mut out = Vec::new();
    data::lznt1(&input, 9, &mut out).unwrap();
    assert_eq!(out, b"abcabcabc");
    // A back-reference before the chunk's start is refused.
    let bad = [0x03, 0xB0, 0b0000_0001, 0x00, 0x10, 0x00];
    assert!(data::lznt1(&bad, 4096, &mut Vec::new()).is_err());
}

/// The fuzz seeds (compacted mkntfs images, see fuzz/fuzz_targets/fs_ntfs.rs) open and
/// walk: the root lists the system files and the two user files.
#[test]
fn fuzz_seeds_open_and_walk() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/fs_ntfs");
    for c in [512, 4096] {
        let bytes = std::fs::read(dir.join(format!("seed-c{c}.ntfs"))).unwrap();
        assert!(bytes.len() <= 64 * 1024);
        let vol = bytes.as_slice();
        let fs = Ntfs::open(&vol, "seed").unwrap();
        let mut names = Vec::new();
        let problems = walk::walk(&fs, |f| names.push(walk::escape_name(&f.path)));
        assert!(problems.is_empty(), "{problems:?}");
        for want in ["/$MFT", "/$Extend", "/small.txt", "/unicod\u{e9}.txt"] {
            assert!(names.iter().any(|n| n == want), "{c}: {want} in {names:?}");
        }
        let small = walk::lookup(&fs, b"/small.txt").unwrap();
        assert_eq!(read_all(&*fs.open(small, None).unwrap()), b"hello\n");
        assert_eq!(fs.info().label.as_deref(), Some("SEED"));
    }
}

/// Symbolic links and junctions made with ntfs-3g's `system.ntfs_reparse_data`: TSK shows
/// them as a file and a directory (`bodyfile_matches_fls` checks the kinds); `read_link`
/// gives the substitute name, the notes both names.
#[test]
fn reparse_points() {
    let Some(img) = image() else { return };
    let bytes = std::fs::read(&img).unwrap();
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "ntfs.img").unwrap();
    for (path, kind, target, relative) in [
        ("/slink", FileKind::Regular, r"\??\C:\jtarget\t.txt", false),
        ("/rlink", FileKind::Regular, r"jtarget\t.txt", true),
        ("/junc", FileKind::Directory, r"\??\C:\jtarget", false),
    ] {
        let n = walk::lookup(&fs, path.as_bytes()).unwrap();
        assert_eq!(fs.read_link(n).unwrap(), target.as_bytes(), "{path}");
        let m = fs.metadata(n).unwrap();
        assert_eq!(m.kind, kind, "{path}");
        let note = m
            .notes
            .iter()
            .find(|n| n.starts_with("reparse point 0xa00000"))
            .unwrap();
        assert!(note.contains("print name"), "{note}");
        assert_eq!(note.ends_with(", relative"), relative, "{note}");
    }
    let plain = walk::lookup(&fs, b"/small.txt").unwrap();
    let e = fs.read_link(plain).unwrap_err();
    assert_eq!(field_of(&e).0, "ntfs $REPARSE_POINT");
}

#[test]
fn hostile_reparse_data() {
    let mut v = 0xA000_000Cu32.to_le_bytes().to_vec();
    v.extend_from_slice(&20u16.to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    // Substitute name: 400 bytes at offset 0 (past the buffer); print name empty.
    v.extend_from_slice(&[0, 0, 0x90, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
    let r = record::reparse(&v).unwrap();
    assert_eq!(r.tag, record::IO_REPARSE_TAG_SYMLINK);
    assert_eq!(r.substitute, None);
    assert_eq!(r.print.as_deref(), Some(""));
    assert_eq!(record::reparse(&v[..6]), None);
    for cut in 0..v.len() {
        let _ = record::reparse(&v[..cut]);
    }
    // Another tag: named, no link.
    let r = record::reparse(&0x8000_0017u32.to_le_bytes().repeat(2)).unwrap();
    assert_eq!(record::reparse_tag_name(r.tag), "WOF");
    assert_eq!(r.substitute, None);
}
