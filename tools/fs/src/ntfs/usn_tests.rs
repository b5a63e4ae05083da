//! The change journal against records written by a small writer following Microsoft's
//! `USN_RECORD_V2`/`_V3`/`_V4` layouts, placed as `$Extend/$UsnJrnl:$J` (behind a 40 GiB
//! sparse hole) in a real mkntfs image through ntfs-3g, and against dissect.ntfs (a
//! parser we did not write) on the same image; plus hostile streams.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::expect_used
)]

use super::usn::{reason_names, scan_stream, UsnRecord, UsnScan, MAX_RECORD};
use super::*;
use crate::test_support::{installed as have, tools_required};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The leading hole of the test journal: 40 GiB.
const HOLE: u64 = 40 << 30;
/// Records in the test journal (about 2 MiB).
const RECORDS: u64 = 20_000;

/// Appends USN records to a `$J` image, padding a page with zeros when the next record
/// does not fit (as NTFS does).
struct Writer {
    base: u64,
    out: Vec<u8>,
    expected: Vec<UsnRecord>,
}

struct Rec<'a> {
    v: u16,
    file: (u64, u16),
    parent: (u64, u16),
    ft: u64,
    reasons: u32,
    source: u32,
    sec: u32,
    attrs: u32,
    name: &'a [u16],
}

impl Writer {
    fn new(base: u64) -> Self {
        Self {
            base,
            out: Vec::new(),
            expected: Vec::new(),
        }
    }

    fn fit(&mut self, len: usize) {
        let in_page = self.out.len() % 4096;
        if in_page + len > 4096 {
            self.out.resize(self.out.len() + 4096 - in_page, 0);
        }
    }

    fn add(&mut self, r: &Rec<'_>) {
        let fixed = if r.v == 2 { 60 } else { 76 };
        let len = (fixed + r.name.len() * 2).next_multiple_of(8);
        self.fit(len);
        let offset = self.base + self.out.len() as u64;
        let usn = offset.cast_signed();
        let mut b = vec![0u8; len];
        b[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        b[4..6].copy_from_slice(&r.v.to_le_bytes());
        let fref = r.file.0 | (u64::from(r.file.1) << 48);
        let pref = r.parent.0 | (u64::from(r.parent.1) << 48);
        let u = if r.v == 2 {
            b[8..16].copy_from_slice(&fref.to_le_bytes());
            b[16..24].copy_from_slice(&pref.to_le_bytes());
            24
        } else {
            b[8..16].copy_from_slice(&fref.to_le_bytes());
            b[24..32].copy_from_slice(&pref.to_le_bytes());
            40
        };
        b[u..u + 8].copy_from_slice(&usn.to_le_bytes());
        b[u + 8..u + 16].copy_from_slice(&r.ft.to_le_bytes());
        b[u + 16..u + 20].copy_from_slice(&r.reasons.to_le_bytes());
        b[u + 20..u + 24].copy_from_slice(&r.source.to_le_bytes());
        b[u + 24..u + 28].copy_from_slice(&r.sec.to_le_bytes());
        b[u + 28..u + 32].copy_from_slice(&r.attrs.to_le_bytes());
        b[u + 32..u + 34].copy_from_slice(&((r.name.len() * 2) as u16).to_le_bytes());
        b[u + 34..u + 36].copy_from_slice(&(fixed as u16).to_le_bytes());
        for (i, c) in r.name.iter().enumerate() {
            b[fixed + 2 * i..fixed + 2 * i + 2].copy_from_slice(&c.to_le_bytes());
        }
        self.out.extend_from_slice(&b);
        self.expected.push(UsnRecord {
            offset,
            major_version: r.v,
            minor_version: 0,
            usn,
            time: usn::filetime_any(r.ft),
            filetime: r.ft,
            reasons: r.reasons,
            reason_names: reason_names(r.reasons),
            source_info: r.source,
            security_id: r.sec,
            file_attributes: r.attrs,
            file_ref: r.file,
            file_ref_high: 0,
            parent_ref: r.parent,
            parent_ref_high: 0,
            name: String::from_utf16_lossy(r.name).into_bytes(),
            name_utf16: r.name.to_vec(),
        });
    }

    /// A V4 (range tracking) record with one extent.
    fn v4(&mut self) {
        self.fit(80);
        let offset = self.base + self.out.len() as u64;
        let mut b = vec![0u8; 80];
        b[0..4].copy_from_slice(&80u32.to_le_bytes());
        b[4..6].copy_from_slice(&4u16.to_le_bytes());
        b[40..48].copy_from_slice(&offset.cast_signed().to_le_bytes());
        b[48..52].copy_from_slice(&0x2u32.to_le_bytes());
        b[60..62].copy_from_slice(&1u16.to_le_bytes());
        b[62..64].copy_from_slice(&16u16.to_le_bytes());
        self.out.extend_from_slice(&b);
    }
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// The journal written into the image: parents are the root (5/5), `/dir1` and
/// `/dir1/sub` (entries and sequence numbers given), one reused (wrong sequence) and
/// one unknown entry.
fn journal(base: u64, dir1: (u64, u16), sub: (u64, u16)) -> Writer {
    let mut w = Writer::new(base);
    let ft0 = 133_000_000_000_000_000u64;
    let names = [
        "new.txt",
        "caf\u{e9} \u{20ac}.docx",
        "a-rather-long-name-to-fill-pages-quickly-0123456789-abcdefghijklmnopqrstuvwxyz.tmp",
    ];
    let parents = [
        (5, 5),
        dir1,
        sub,
        (dir1.0, dir1.1.wrapping_add(7)),
        (99_999, 1),
    ];
    let reasons = [
        0x100,
        0x102,
        0x8000_0102,
        0x2000,
        0x1000,
        0x8000_0200,
        0x0020_0000,
        0x8000_0000,
    ];
    for i in 0..RECORDS {
        let name = utf16(names[(i % 3) as usize]);
        w.add(&Rec {
            v: if i % 4 == 3 { 3 } else { 2 },
            file: (64 + i, (1 + i % 5) as u16),
            parent: parents[(i % 5) as usize],
            ft: ft0 + i * 12_345_678,
            reasons: reasons[(i % 8) as usize],
            source: (i % 3) as u32,
            sec: 256 + i as u32,
            attrs: if i % 2 == 0 { 0x20 } else { 0x10 },
            name: &name,
        });
        if i == 70 {
            w.v4();
        }
    }
    w
}

const MAKE_IMAGE: &str = r#"
set -e
IMG=$1; J=$2; HOLE=$3; M=$(mktemp -d)
rm -f "$IMG"; truncate -s 16M "$IMG"
mkntfs -F -q -Q -c 4096 -s 512 -L USN "$IMG" >/dev/null 2>&1
ntfs-3g -o streams_interface=windows "$IMG" "$M"
trap 'umount "$M" 2>/dev/null; rmdir "$M"' EXIT
mkdir -p "$M/dir1/sub"
echo hello > "$M/dir1/sub/file.txt"
touch "$M/UsnJrnlX"
python3 -c 'import sys; f=open(sys.argv[1],"wb"); f.seek(int(sys.argv[3])); f.write(open(sys.argv[2],"rb").read()); f.close()' "$M/UsnJrnlX:\$J" "$J" "$HOLE"
mv "$M/UsnJrnlX" "$M/\$Extend/\$UsnJrnl"
"#;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The image and the journal written into it: `(dir, image, writer)`.
fn image() -> Option<(tempfile::TempDir, PathBuf, Writer)> {
    let tools = ["mkntfs", "ntfs-3g", "python3"];
    let missing: Vec<_> = tools.iter().filter(|t| !have(t)).collect();
    if !missing.is_empty() || !is_root() || !Path::new("/dev/fuse").exists() {
        assert!(
            !tools_required(),
            "VESTIGE_REQUIRE_TOOLS=1 but missing {missing:?} or not root / no FUSE"
        );
        eprintln!("skipped: the USN image needs {tools:?}, root and /dev/fuse");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("usn.img");
    let jpath = dir.path().join("j.bin");
    // mkntfs numbers the first user entries from 64: dir1 = 64, sub = 65, file.txt = 66,
    // UsnJrnlX = 67, all with sequence number 1 (checked below).
    let w = journal(HOLE, (64, 1), (65, 1));
    std::fs::write(&jpath, &w.out).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg(MAKE_IMAGE)
        .arg("sh")
        .arg(&img)
        .arg(&jpath)
        .arg(HOLE.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "making the USN image failed");
    Some((dir, img, w))
}

/// A volume that counts the bytes read from it.
struct Counting<'a> {
    inner: &'a [u8],
    read: AtomicU64,
}

impl ReadAt for Counting<'_> {
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
        let n = self.inner.read_at(buf, off)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

#[test]
fn journal_matches_writer_and_skips_the_hole() {
    let Some((_dir, img, w)) = image() else {
        return;
    };
    let bytes = std::fs::read(&img).unwrap();
    let vol = Counting {
        inner: &bytes,
        read: AtomicU64::new(0),
    };
    let fs = Ntfs::open(&vol, "usn.img").unwrap();
    for (n, want) in [(64, "/dir1"), (65, "/dir1/sub")] {
        assert_eq!(fs.entries[&n].seq, 1);
        assert_eq!(fs.path_of(n, 1).as_deref(), Some(want.as_bytes()));
    }
    vol.read.store(0, Ordering::Relaxed);
    let t = std::time::Instant::now();
    let mut got = Vec::new();
    let scan = fs.usn_journal(|r| got.push(r.clone())).unwrap();
    let took = t.elapsed();
    let read = vol.read.load(Ordering::Relaxed);
    eprintln!(
        "usn_journal: {} records, {} bytes stored of {} ({read} bytes read) in {took:?}",
        scan.records, scan.stored_bytes, scan.stream_size
    );
    assert_eq!(got, w.expected);
    assert_eq!(scan.records, RECORDS);
    assert_eq!(scan.v4_skipped, 1);
    assert!(scan.problems.is_empty(), "{:?}", scan.problems);
    assert_eq!(scan.skipped_bytes, 0);
    assert_eq!(scan.stream_size, HOLE + w.out.len() as u64);
    assert!(scan.sparse_bytes >= HOLE, "{scan:?}");
    assert!(scan.stored_bytes < w.out.len() as u64 + 4096);
    // The hole is never read: the journal's bytes, its MFT entry and little else.
    assert!(
        read < 2 * w.out.len() as u64 + 64 * 1024,
        "{read} bytes read"
    );
    // Paths at analysis time: only where the sequence number matches.
    let path = |r: &UsnRecord| fs.path_of(r.parent_ref.0, r.parent_ref.1);
    assert_eq!(path(&got[0]).as_deref(), Some(b"/".as_slice()));
    assert_eq!(path(&got[1]).as_deref(), Some(b"/dir1".as_slice()));
    assert_eq!(path(&got[2]).as_deref(), Some(b"/dir1/sub".as_slice()));
    assert_eq!(path(&got[3]), None, "reused parent");
    assert_eq!(path(&got[4]), None, "unknown parent");
    assert_eq!(
        got[2].reason_names,
        vec!["DATA_EXTEND", "FILE_CREATE", "CLOSE"]
    );
    assert!(fs
        .info()
        .notes
        .iter()
        .any(|n| n.starts_with("$Extend/$UsnJrnl present")));
}

/// The oracle: dissect.ntfs (`pip install dissect.ntfs`; found through
/// `VESTIGE_DISSECT_PYTHON`, `/tmp/usnvenv/bin/python3` or `python3`) on the same image.
const DISSECT: &str = r#"
import sys
from dissect.ntfs import NTFS
from dissect.ntfs.usnjrnl import UsnRecord
from dissect.ntfs.util import segment_reference
fs = NTFS(open(sys.argv[1], "rb"))
j = fs.usnjrnl
def ref(r, v):
    if v == 2:
        return "%d/%d/0" % (segment_reference(r), r.SequenceNumber)
    b = bytes(r.Identifier)
    lo = int.from_bytes(b[:8], "little")
    return "%d/%d/%d" % (lo & 0xFFFFFFFFFFFF, lo >> 48, int.from_bytes(b[8:], "little"))
def dump(kind, rec):
    r = rec.record
    v = rec.header.MajorVersion
    f = [kind, rec.offset, v, rec.header.MinorVersion, r.Usn, r.TimeStamp, int(r.Reason),
         int(r.SourceInfo), r.SecurityId, int(r.FileAttributes),
         ref(r.FileReferenceNumber, v), ref(r.ParentFileReferenceNumber, v),
         rec.filename.encode("unicode_escape").decode(), rec.full_path.encode("unicode_escape").decode() if v == 2 else "-"]
    print("|".join(str(x) for x in f))
for r in j.records():
    dump("v2", r)
for o in sys.argv[2:]:
    dump("extra", UsnRecord(j, j.fh, int(o)))
"#;

fn dissect_python() -> Option<String> {
    let mut cands = Vec::new();
    if let Ok(p) = std::env::var("VESTIGE_DISSECT_PYTHON") {
        cands.push(p);
    }
    cands.push("/tmp/usnvenv/bin/python3".into());
    cands.push("python3".into());
    cands.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import dissect.ntfs"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Python's `unicode_escape` of a string (enough for the test's names).
fn py_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\\' => "\\\\".to_string(),
            c if (' '..='~').contains(&c) => c.to_string(),
            c if u32::from(c) < 0x100 => format!("\\x{:02x}", u32::from(c)),
            c if u32::from(c) < 0x10000 => format!("\\u{:04x}", u32::from(c)),
            c => format!("\\U{:08x}", u32::from(c)),
        })
        .collect()
}

#[test]
fn journal_matches_dissect() {
    let Some(py) = dissect_python() else {
        // `cargo xtask test` installs it into its venv and names it here.
        assert!(
            std::env::var("VESTIGE_DISSECT_PYTHON").is_err(),
            "VESTIGE_DISSECT_PYTHON is set but cannot import dissect.ntfs"
        );
        eprintln!("skipped: dissect.ntfs is not installed (pip install dissect.ntfs)");
        return;
    };
    let Some((_dir, img, _)) = image() else {
        return;
    };
    let bytes = std::fs::read(&img).unwrap();
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "usn.img").unwrap();
    let mut got = Vec::new();
    fs.usn_journal(|r| got.push(r.clone())).unwrap();
    let v3: Vec<String> = got
        .iter()
        .filter(|r| r.major_version == 3)
        .map(|r| r.offset.to_string())
        .collect();
    let out = Command::new(&py)
        .arg("-c")
        .arg(DISSECT)
        .arg(&img)
        .args(&v3)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let theirs: Vec<&str> = text.lines().collect();
    let n2 = got.iter().filter(|r| r.major_version == 2).count();
    assert_eq!(theirs.iter().filter(|l| l.starts_with("v2|")).count(), n2);
    assert_eq!(theirs.len(), got.len());
    let mut resolved = 0;
    for t in theirs {
        let f: Vec<&str> = t.splitn(14, '|').collect();
        let off: u64 = f[1].parse().unwrap();
        let r = got.iter().find(|r| r.offset == off).expect("same offsets");
        let name = String::from_utf8(r.name.clone()).unwrap();
        // dissect's full path: backslash-separated, where the parent
        // resolves with a matching sequence number.
        // (dissect cannot resolve a V3 record's 128-bit parent reference: "-".)
        let path = match fs.path_of(r.parent_ref.0, r.parent_ref.1) {
            Some(_) if f[13] == "-" => "-".to_string(),
            Some(p) => {
                resolved += 1;
                let p = String::from_utf8(p).unwrap();
                // dissect names the root "." and other directories without it.
                let p = match p.trim_start_matches('/') {
                    "" => ".".to_string(),
                    p => p.replace('/', "\\"),
                };
                py_escape(&format!("{p}\\{name}"))
            }
            None => f[13].to_string(),
        };
        assert!(
            !f[13].contains("unavailable") || path == f[13],
            "{off}: dissect resolves none, we do: {path}"
        );
        let ours = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}/{}/{}|{}/{}/{}|{}|{}",
            f[0],
            r.offset,
            r.major_version,
            r.minor_version,
            r.usn,
            r.filetime,
            r.reasons,
            r.source_info,
            r.security_id,
            r.file_attributes,
            r.file_ref.0,
            r.file_ref.1,
            r.file_ref_high,
            r.parent_ref.0,
            r.parent_ref.1,
            r.parent_ref_high,
            py_escape(&name),
            path
        );
        assert_eq!(t, ours);
    }
    assert!(resolved > 50, "{resolved}");
}

/// A journal of `w`'s records at stream offset 0 (no hole), scanned from memory.
fn scan_bytes(bytes: &[u8]) -> (Vec<UsnRecord>, UsnScan) {
    let mut got = Vec::new();
    let scan = scan_stream(
        &bytes,
        &[(0, bytes.len() as u64)],
        bytes.len() as u64,
        "t",
        &mut |r| got.push(r.clone()),
    )
    .unwrap();
    (got, scan)
}

#[test]
fn names_keep_unpaired_surrogates() {
    let mut w = Writer::new(0);
    let name = [u16::from(b'a'), 0xD800, u16::from(b'b')];
    w.add(&Rec {
        v: 3,
        file: (70, 2),
        parent: (5, 5),
        ft: 0,
        reasons: 0x8000_0000 | 0x4000_0000,
        source: 0,
        sec: 0,
        attrs: 0,
        name: &name,
    });
    let (got, scan) = scan_bytes(&w.out);
    assert_eq!(got, w.expected);
    assert_eq!(got[0].name, "a\u{fffd}b".as_bytes());
    assert_eq!(got[0].name_utf16, name);
    // An unknown reason bit has no name; FILETIME 0 is 1601.
    assert_eq!(got[0].reason_names, vec!["CLOSE"]);
    assert_eq!(got[0].time.secs, -11_644_473_600);
    assert!(scan.problems.is_empty());
}

#[test]
fn hostile_lengths_resynchronise() {
    let w = journal(0, (64, 1), (65, 1));
    let good = w.out.clone();
    let first_len = u32::from_le_bytes(good[0..4].try_into().unwrap()) as usize;
    let second = first_len;
    for (what, len) in [
        ("zero", 0u32),
        ("four", 4),
        ("huge", u32::MAX),
        ("odd", 61),
        ("past the name", 56),
    ] {
        let mut b = good.clone();
        b[second..second + 4].copy_from_slice(&len.to_le_bytes());
        let (got, scan) = scan_bytes(&b);
        // The damaged record is lost; the scan finds the next one.
        assert_eq!(got.len(), w.expected.len() - 1, "{what}");
        assert_eq!(got[1], w.expected[2], "{what}");
        assert_eq!(scan.problems.len(), 1, "{what}: {:?}", scan.problems);
        assert_eq!(scan.problems[0].0, second as u64, "{what}");
    }
    // A name offset/length pointing past the record.
    let mut b = good.clone();
    b[second + 58..second + 60].copy_from_slice(&500u16.to_le_bytes());
    let (got, scan) = scan_bytes(&b);
    assert_eq!(got.len(), w.expected.len() - 1);
    assert!(
        scan.problems[0].1.contains("name of"),
        "{:?}",
        scan.problems
    );
    // Truncated last record.
    let cut = w.out.len() - 8;
    let (got, scan) = scan_bytes(&good[..cut]);
    assert_eq!(got.len(), w.expected.len() - 1);
    assert_eq!(scan.problems.len(), 1, "{:?}", scan.problems);
    // Garbage: bounded, no panic, a few problems.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut b = good.clone();
    for _ in 0..2000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = (seed % b.len() as u64) as usize;
        b[at] = (seed >> 32) as u8;
    }
    let (_, scan) = scan_bytes(&b);
    assert!(scan.skipped_bytes <= b.len() as u64);
    let noise: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (got, scan) = scan_bytes(&noise);
    assert!(got.is_empty());
    assert!(!scan.problems.is_empty());
    assert!(MAX_RECORD < u64::from(u32::MAX));
}

#[test]
fn all_hole_journal() {
    // No stored range: nothing read, everything sparse.
    let empty: &[u8] = &[];
    let mut n = 0;
    let scan = scan_stream(&empty, &[], HOLE, "t", &mut |_| n += 1).unwrap();
    assert_eq!(n, 0);
    assert_eq!(scan.sparse_bytes, HOLE);
    assert_eq!(scan.records, 0);
    // A range past the stream's size is clipped, not read.
    let scan = scan_stream(&empty, &[(HOLE, HOLE + 4096)], HOLE, "t", &mut |_| n += 1).unwrap();
    assert_eq!(scan.stored_bytes, 0);
}

/// The fuzz seed `seed-usn.ntfs` (seed-c512.ntfs with slot 17 replaced by an ntfs-3g-made
/// `$Extend/$UsnJrnl` whose 344-byte `$J` is resident: four records, V2 and V3).
#[test]
fn fuzz_seed_with_a_resident_journal() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/fs_ntfs/seed-usn.ntfs");
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.len() <= 64 * 1024);
    let vol = bytes.as_slice();
    let fs = Ntfs::open(&vol, "seed").unwrap();
    let mut got = Vec::new();
    let scan = fs.usn_journal(|r| got.push(r.clone())).unwrap();
    assert_eq!(scan.entry, 17);
    assert_eq!(
        (scan.stream_size, scan.stored_bytes, scan.sparse_bytes),
        (344, 344, 0)
    );
    assert!(scan.problems.is_empty(), "{:?}", scan.problems);
    let names: Vec<_> = got
        .iter()
        .map(|r| String::from_utf8(r.name.clone()).unwrap())
        .collect();
    assert_eq!(
        names,
        ["small.txt", "small.txt", "unicod\u{e9}.txt", "gone.tmp"]
    );
    assert_eq!(
        got.iter().map(|r| r.major_version).collect::<Vec<_>>(),
        [2, 2, 3, 2]
    );
    assert_eq!(got[1].reason_names, ["DATA_EXTEND", "FILE_CREATE", "CLOSE"]);
    assert_eq!(got[3].reason_names, ["FILE_DELETE", "CLOSE"]);
    assert_eq!(got[2].offset.cast_signed(), got[2].usn);
    assert_eq!(got[2].parent_ref, (5, 5));
    assert_eq!(fs.path_of(5, 5).as_deref(), Some(b"/".as_slice()));
    // Cut anywhere: errors or fewer records, never a panic.
    for cut in (0..bytes.len()).step_by(97) {
        let vol = &bytes[..cut];
        if let Ok(fs) = Ntfs::open(&vol, "cut") {
            let _ = fs.usn_journal(|r| {
                let _ = fs.path_of(r.parent_ref.0, r.parent_ref.1);
            });
        }
    }
}
