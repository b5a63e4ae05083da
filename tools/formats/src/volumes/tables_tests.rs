//! MBR and GPT layouts of disks partitioned by `sfdisk` and `sgdisk`, compared with The
//! Sleuth Kit's `mmls` on the same file: every partition (start, length, description or
//! name, slot number) and every unallocated gap must agree.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use super::{read_layout, Layout, Scheme, SlotKind};
use crate::test_support::{have, run};
use crate::ReadAt;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use vestige_evidence::read_at::FileReader;

/// One row of `mmls` output: slot label, start, length, description.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct MmlsRow {
    pub(super) slot: String,
    pub(super) start: u64,
    pub(super) length: u64,
    pub(super) description: String,
}

/// The non-Meta rows of `mmls [-b ss] img` (partitions and `-------` gaps).
pub(super) fn mmls(img: &Path, sector_size: u32) -> Vec<MmlsRow> {
    let out = Command::new("mmls")
        .args(["-b", &sector_size.to_string()])
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mmls: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut rows = Vec::new();
    for line in text.lines() {
        // "004:  000       0000002048   0000018431   0000016384   EFI sys"
        let Some((_, rest)) = line.split_once(":  ") else {
            continue;
        };
        let f: Vec<&str> = rest.splitn(5, char::is_whitespace).collect();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 4 || fields[0] == "Meta" || f.is_empty() {
            continue;
        }
        let Ok(start) = fields[1].parse::<u64>() else {
            continue;
        };
        let length = fields[3].parse::<u64>().unwrap();
        // The description is what follows the length column (may be empty or have spaces).
        let after_len = rest.find(fields[3]).unwrap() + fields[3].len();
        let description = rest[after_len..].trim_start_matches(' ').to_string();
        rows.push(MmlsRow {
            slot: fields[0].to_string(),
            start,
            length,
            description,
        });
    }
    assert!(
        rows.iter().any(|r| r.slot != "-------"),
        "mmls listed no partition:\n{text}"
    );
    rows.sort();
    rows
}

/// Our layout in the same form.
pub(super) fn ours(layout: &Layout) -> Vec<MmlsRow> {
    let mut rows: Vec<MmlsRow> = layout
        .slots
        .iter()
        .filter(|s| s.kind != SlotKind::Meta)
        .map(|s| MmlsRow {
            slot: if s.kind == SlotKind::Unallocated {
                "-------".to_string()
            } else {
                super::slot_name(s)
            },
            start: s.start_sector,
            length: s.length_sectors,
            description: match &s.partition {
                Some(p) if p.name.is_some() => p.name.clone().unwrap(),
                _ => s.description.clone(),
            },
        })
        .collect();
    rows.sort();
    rows
}

fn sparse(dir: &Path, name: &str, mib: u64) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
    p
}

pub(super) fn sfdisk(img: &Path, script: &str) {
    let mut child = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(img)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn layout_of(img: &Path) -> Layout {
    let disk = FileReader::open(img).unwrap();
    read_layout(&disk, img).unwrap()
}

fn gpt_disk(dir: &Path) -> std::path::PathBuf {
    let img = sparse(dir, "gpt.img", 48);
    run(Command::new("sgdisk")
        .args([
            "-n1:2048:+8M",
            "-t1:ef00",
            "-c1:EFI system",
            "-n2:0:+4M",
            "-t2:8300",
            "-c2:root \u{fc}ber",
            "-n3:0:+4M",
            "-t3:8e00",
            "-n4:0:+2M",
            "-t4:0700",
            "-c4:data",
            "-n5:0:+1M",
            "-t5:0c01",
            "-n6:30M:+3M",
            "-t6:8200",
            "-c6:swap",
        ])
        .arg(&img));
    img
}

fn tools(list: &[&str]) -> bool {
    list.iter().all(|t| have(t))
}

#[test]
fn mbr_with_three_primaries_and_three_logicals_matches_mmls() {
    if !tools(&["sfdisk", "mmls"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = sparse(t.path(), "mbr.img", 64);
    sfdisk(
        &img,
        "label: dos\nstart=2048,size=8192,type=83,bootable\nstart=10240,size=8192,type=7\n\
         start=20480,size=8192,type=82\nstart=30720,size=90000,type=5\n\
         start=32768,size=4096,type=83\nstart=38912,size=4096,type=8e\nstart=45056,size=4096,type=c\n",
    );
    let layout = layout_of(&img);
    assert_eq!(layout.scheme, Scheme::Mbr);
    assert_eq!(layout.sector_size, 512);
    assert!(layout.warnings.is_empty(), "{:?}", layout.warnings);
    assert_eq!(ours(&layout), mmls(&img, 512));
    let parts: Vec<_> = layout
        .slots
        .iter()
        .filter(|s| s.kind == SlotKind::Partition)
        .collect();
    assert_eq!(parts.len(), 6);
    assert_eq!(parts[0].partition.as_ref().unwrap().bootable, Some(true));
    // The EBRs are Meta rows numbered as mmls does.
    let tables: Vec<_> = layout
        .slots
        .iter()
        .filter(|s| s.description.starts_with("Extended Table"))
        .map(|s| (s.start_sector, s.description.clone()))
        .collect();
    assert_eq!(
        tables,
        [
            (30720, "Extended Table (#1)".to_string()),
            (36864, "Extended Table (#2)".to_string()),
            (43008, "Extended Table (#3)".to_string())
        ]
    );
}

#[test]
fn gpt_with_names_and_types_matches_mmls() {
    if !tools(&["sgdisk", "mmls"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = gpt_disk(t.path());
    let layout = layout_of(&img);
    assert_eq!(layout.scheme, Scheme::Gpt);
    assert!(layout.warnings.is_empty(), "{:?}", layout.warnings);
    assert_eq!(ours(&layout), mmls(&img, 512));
    let types: Vec<(String, String)> = layout
        .slots
        .iter()
        .filter_map(|s| s.partition.as_ref())
        .map(|p| (p.type_name.clone(), p.name.clone().unwrap()))
        .collect();
    assert_eq!(
        types,
        [
            ("EFI System", "EFI system"),
            ("Linux filesystem", "root \u{fc}ber"),
            ("Linux LVM", ""),
            ("Microsoft basic data", "data"),
            ("Microsoft reserved", ""),
            ("Linux swap", "swap"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // The unique GUIDs are sgdisk's.
    let out = Command::new("sgdisk")
        .arg("-i1")
        .arg(&img)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&out.stdout);
    let first = layout
        .slots
        .iter()
        .find_map(|s| s.partition.as_ref())
        .unwrap();
    assert!(
        info.contains(first.unique_guid.as_deref().unwrap()),
        "{info} vs {first:?}"
    );
    assert!(layout
        .slots
        .iter()
        .any(|s| s.description == "Backup GPT Header" && s.start_sector == (48 << 20) / 512 - 1));
}

/// Flips one byte of the image at `at`.
fn flip(img: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, at).unwrap();
}

#[test]
fn gpt_with_a_corrupt_primary_header_or_array_uses_the_backup_and_says_so() {
    if !tools(&["sgdisk", "mmls"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = gpt_disk(t.path());
    let want = mmls(&img, 512);
    // The header's disk GUID (CRC no longer matches), then an entry's name in the array.
    for (at, field) in [
        (512 + 60, "GPT header.header_crc32"),
        (1024 + 128 + 60, "GPT header.partition_entry_array_crc32"),
    ] {
        let copy = t.path().join("bad-primary.img");
        std::fs::copy(&img, &copy).unwrap();
        flip(&copy, at);
        let layout = layout_of(&copy);
        assert_eq!(layout.scheme, Scheme::Gpt);
        assert_eq!(ours(&layout), want, "{field}");
        assert_eq!(layout.warnings.len(), 1, "{:?}", layout.warnings);
        let w = &layout.warnings[0];
        assert_eq!(w.field, field);
        assert!(w.message.contains("using the backup"), "{w}");
        assert!(!layout.slots.iter().any(|s| s.description == "GPT Header"));
    }
}

#[test]
fn gpt_with_a_corrupt_backup_warns_and_uses_the_primary() {
    if !tools(&["sgdisk", "mmls"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = gpt_disk(t.path());
    let last = (48u64 << 20) - 512;
    flip(&img, last + 60);
    let layout = layout_of(&img);
    assert_eq!(ours(&layout), mmls(&img, 512));
    assert_eq!(layout.warnings.len(), 1, "{:?}", layout.warnings);
    assert_eq!(layout.warnings[0].offset_bytes, last + 16);
    assert_eq!(layout.warnings[0].field, "GPT header.header_crc32");
    assert!(layout.warnings[0].message.contains("backup GPT unusable"));
}

#[test]
fn gpt_copies_that_disagree_are_reported() {
    if !tools(&["sgdisk", "mmls"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = gpt_disk(t.path());
    // Rewrite the backup with another disk GUID and one entry renamed: sgdisk writes both
    // copies, so do it on a second disk and graft its backup onto the first.
    let other = t.path().join("other.img");
    std::fs::copy(&img, &other).unwrap();
    run(Command::new("sgdisk")
        .args(["-U", "R", "-c4:changed"])
        .arg(&other));
    use std::os::unix::fs::FileExt;
    let tail_len = 33 * 512;
    let start = (48u64 << 20) - tail_len;
    let mut tail = vec![0u8; usize::try_from(tail_len).unwrap()];
    std::fs::File::open(&other)
        .unwrap()
        .read_exact_at(&mut tail, start)
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .write_all_at(&tail, start)
        .unwrap();
    let layout = layout_of(&img);
    let fields: Vec<&str> = layout.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(
        fields,
        ["GPT header.disk_guid", "GPT partition entry"],
        "{:?}",
        layout.warnings
    );
    assert!(
        layout.warnings[1].message.contains("[3]"),
        "{}",
        layout.warnings[1]
    );
    assert_eq!(layout.warnings[1].offset_bytes, start);
    // The primary's entries are listed.
    assert_eq!(ours(&layout), mmls(&img, 512));
}

#[test]
fn gpt_on_a_4k_sector_disk_matches_mmls() {
    if !tools(&["sgdisk", "mmls", "losetup"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = sparse(t.path(), "4k.img", 32);
    let Some(dev) = super::lvm_tests::Loop::attach(&img, &["--sector-size", "4096"]) else {
        return;
    };
    run(Command::new("sgdisk")
        .args(["-n1:0:+8M", "-c1:data", "-t1:8300", "-n2:0:+4M", "-t2:8200"])
        .arg(&dev.path));
    drop(dev);
    let layout = layout_of(&img);
    assert_eq!(layout.scheme, Scheme::Gpt);
    assert_eq!(layout.sector_size, 4096);
    assert!(layout.warnings.is_empty(), "{:?}", layout.warnings);
    assert_eq!(ours(&layout), mmls(&img, 4096));
}

#[test]
fn a_partition_opens_as_its_bytes_and_a_truncated_one_errors_past_the_end() {
    if !tools(&["sfdisk"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = sparse(t.path(), "mbr.img", 8);
    sfdisk(
        &img,
        "label: dos\nstart=2048,size=4096,type=83\nstart=6144,size=10240,type=83\n",
    );
    let mut data = std::fs::read(&img).unwrap();
    let pattern = crate::test_support::source_chunks(4096 * 512, 7, 4096, |_| false);
    data[2048 * 512..6144 * 512].copy_from_slice(&pattern);
    // Cut the disk in the middle of the second partition.
    data.truncate(10_000 * 512);
    let layout = read_layout(&data, Path::new("cut.img")).unwrap();
    let i = layout
        .slots
        .iter()
        .position(|s| s.kind == SlotKind::Partition)
        .unwrap();
    let p = layout.open_volume(&data, i).unwrap();
    assert_eq!(p.size(), 4096 * 512);
    crate::test_support::check_random_reads_with(&p, &pattern, 200, 300_000, 20);
    assert_eq!(crate::test_support::read_all(&p, 77_777), pattern);
    // The second partition: reported as reaching past the disk, readable up to it.
    assert_eq!(layout.warnings.len(), 1, "{:?}", layout.warnings);
    assert_eq!(layout.warnings[0].offset_bytes, 6144 * 512);
    let j = layout
        .slots
        .iter()
        .rposition(|s| s.kind == SlotKind::Partition)
        .unwrap();
    let q = layout.open_volume(&data, j).unwrap();
    assert_eq!(q.size(), 10240 * 512);
    let mut buf = vec![0u8; 4096];
    assert_eq!(q.read_at(&mut buf, 0).unwrap(), 4096);
    let e = q
        .read_at(&mut buf, (10_000 - 6144) * 512 - 100)
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(e.to_string().contains("past the end of the disk"), "{e}");
}
