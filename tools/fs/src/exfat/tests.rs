//! exFAT against The Sleuth Kit on volumes made by mkfs.exfat and populated by the test
//! writer (checked by fsck.exfat first), and against damaged copies of them.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use super::writer::{Stamp, Writer};
use super::*;
use crate::test_support::{
    content, exercise, fls_lines, have_tools, ours, read_file as read_all, run, sha,
};
use crate::walk;
use std::path::{Path, PathBuf};

/// Valid UTC offset +00:00: the times TSK shows.
const UTC: Stamp = Stamp { offset: 0x80 };

/// Makes and populates an exFAT volume of `size_mib` MiB; returns its path and the inode
/// of the file whose times carry a +02:00 offset.
fn make_image(dir: &Path, size_mib: u64) -> PathBuf {
    let img = dir.join("exfat.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(size_mib << 20).unwrap();
    drop(f);
    run("mkfs.exfat", &["-L", "VESTIGE", img.to_str().unwrap()]);
    let mut w = Writer::new(std::fs::read(&img).unwrap());
    let root = w.root.clone();
    w.file(&root, "README.txt", &content(1, 100), false, UTC);
    w.file(
        &root,
        "Long name with spaces and more than fifteen characters.docx",
        &content(2, 30_000),
        true,
        UTC,
    );
    w.file(&root, "empty.bin", &[], false, UTC);
    w.file(
        &root,
        "caf\u{e9} \u{65e5}\u{672c}.txt",
        &content(3, 5000),
        false,
        UTC,
    );
    let hidden = w.file(&root, "hidden.sys", &content(4, 10), false, UTC);
    w.set_attributes(&hidden, 0x22);
    let ro = w.file(&root, "readonly.txt", &content(5, 10), false, UTC);
    w.set_attributes(&ro, 0x21);
    w.file(
        &root,
        "offset plus two.txt",
        &content(6, 10),
        false,
        Stamp { offset: 0x88 },
    );
    w.file(
        &root,
        "no offset.txt",
        &content(7, 10),
        false,
        Stamp { offset: 0 },
    );
    let (docs, _) = w.dir(&root, "Docs", 1, UTC);
    w.file(
        &docs,
        "report final version.pdf",
        &content(8, 20_000),
        true,
        UTC,
    );
    let (deeper, _) = w.dir(&docs, "Deeper", 1, UTC);
    w.file(&deeper, "leaf.txt", &content(9, 1), false, UTC);
    let (many, _) = w.dir(&root, "many", 4, UTC);
    for i in 0..60 {
        w.file(
            &many,
            &format!("entry number {i}.txt"),
            &content(100 + i, i as usize * 97),
            i % 7 == 3,
            UTC,
        );
    }
    let del = w.file(&root, "deleted.bin", &content(10, 9000), false, UTC);
    let del_frag = w.file(
        &root,
        "deleted fragmented.dat",
        &content(11, 12_000),
        true,
        UTC,
    );
    let (gone, gone_w) = w.dir(&root, "gone", 1, UTC);
    w.file(&gone, "secret.txt", &content(12, 1500), false, UTC);
    let reused = w.file(&many, "reused.bin", &content(13, 5000), false, UTC);
    w.delete(&del);
    w.delete(&del_frag);
    w.delete(&gone_w);
    w.delete(&reused);
    // Takes the clusters reused.bin (and more) had.
    w.file(&root, "newcomer.bin", &content(14, 70_000), false, UTC);
    std::fs::write(&img, &w.img).unwrap();
    img
}

fn populated() -> Option<(tempfile::TempDir, PathBuf)> {
    if !have_tools(&["mkfs.exfat", "fsck.exfat", "fls", "icat"]) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), 16);
    // The writer's work passes the stock checker before anything else reads it.
    run("fsck.exfat", &["-n", img.to_str().unwrap()]);
    Some((dir, img))
}

/// Bodyfile and content against TSK; the one file whose times carry +02:00 differs by
/// exactly that (TSK ignores the offset).
#[test]
fn exfat_matches_tsk() {
    let Some((_dir, img)) = populated() else {
        return;
    };
    let data = std::fs::read(&img).unwrap();
    let fs = ExFat::open(&data, "test").unwrap();
    assert_eq!(fs.info().kind, "exfat");
    assert_eq!(fs.info().label.as_deref(), Some("VESTIGE"));
    let tsk = fls_lines(&img);
    let mut mine = ours(&fs);
    let offset_ino = walk::lookup(&fs, b"/offset plus two.txt")
        .unwrap()
        .to_string();
    let line = mine.get_mut(&offset_ino).unwrap();
    let mut f: Vec<String> = line.split('|').map(str::to_string).collect();
    for i in [7, 8, 10] {
        let t: i64 = f[i].parse().unwrap();
        f[i] = (t + 7200).to_string();
    }
    *line = f.join("|");
    let only_tsk: Vec<&String> = tsk
        .values()
        .filter(|l| !mine.values().any(|m| m == *l))
        .collect();
    let only_mine: Vec<&String> = mine
        .values()
        .filter(|l| !tsk.values().any(|m| m == *l))
        .collect();
    assert!(
        only_tsk.is_empty() && only_mine.is_empty(),
        "bodyfile differs from fls -r -m /:\nonly TSK: {only_tsk:#?}\nonly ours: {only_mine:#?}"
    );
    assert!(tsk.values().filter(|l| l.contains("(deleted)")).count() >= 5);
    let mut compared = 0;
    for line in tsk.values() {
        let f: Vec<&str> = line.split('|').collect();
        if !f[3].starts_with("r/r") {
            continue;
        }
        let inode: Inode = f[2].parse().unwrap();
        let tsk_data = run("icat", &[img.to_str().unwrap(), f[2]]);
        let mine = read_all(&fs, inode).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(
            sha(&mine),
            sha(&tsk_data),
            "content of {line}: {} vs TSK's {} bytes",
            mine.len(),
            tsk_data.len()
        );
        compared += 1;
    }
    assert!(compared > 70, "{compared}");
    // Checksums and hashes hold on what the writer wrote; the offset is noted.
    let m = fs.metadata(offset_ino.parse().unwrap()).unwrap();
    assert!(
        m.notes.iter().any(|n| n.contains("+02:00")),
        "{:?}",
        m.notes
    );
    assert!(
        !m.notes.iter().any(|n| n.contains("mismatch")),
        "{:?}",
        m.notes
    );
}

fn image_bytes() -> Option<Vec<u8>> {
    let (_dir, img) = populated()?;
    Some(std::fs::read(img).unwrap())
}

/// Byte offset of inode `inode`'s slot.
fn slot_of(fs: &ExFat<'_>, path: &[u8]) -> (Inode, usize) {
    let ino = walk::lookup(fs, path).unwrap();
    let (off, _) = fs.slot(ino).unwrap();
    (ino, usize::try_from(off).unwrap())
}

/// FAT chains that loop (a fragmented file's, a directory's): bounded, with the reason.
#[test]
fn exfat_chain_cycles_are_bounded() {
    let Some(mut data) = image_bytes() else {
        return;
    };
    let (fat_at, report_first, many_first) = {
        let fs = ExFat::open(&data, "t").unwrap();
        let first = |p: &[u8]| {
            let set = fs.file_set(walk::lookup(&fs, p).unwrap()).unwrap();
            set.stream.unwrap().first_cluster()
        };
        (
            usize::try_from(fs.layout.fat_sector * fs.layout.bytes_per_sector).unwrap(),
            first(b"/Docs/report final version.pdf"),
            first(b"/many"),
        )
    };
    for c in [report_first, many_first] {
        let at = fat_at + c as usize * 4;
        data[at..at + 4].copy_from_slice(&c.to_le_bytes());
    }
    let fs = ExFat::open(&data, "t").unwrap();
    let ino = walk::lookup(&fs, b"/Docs/report final version.pdf").unwrap();
    let err = read_all(&fs, ino).unwrap_err();
    assert!(err.contains("loops back"), "{err}");
    assert!(exercise(&fs) > 10);
}

/// A damaged entry set is still listed, its checksum mismatch noted; a directory whose
/// stream points at its parent's cluster is not walked twice.
#[test]
fn exfat_damaged_sets_and_loops() {
    let Some(mut data) = image_bytes() else {
        return;
    };
    let (fs_ro, ro_at) = {
        let fs = ExFat::open(&data, "t").unwrap();
        slot_of(&fs, b"/readonly.txt")
    };
    data[ro_at + 8] ^= 0x01; // a time bit: the checksum no longer holds
    let (deeper_at, docs_first) = {
        let fs = ExFat::open(&data, "t").unwrap();
        let (_, deeper_at) = slot_of(&fs, b"/Docs/Deeper");
        let docs = fs.file_set(walk::lookup(&fs, b"/Docs").unwrap()).unwrap();
        (deeper_at, docs.stream.unwrap().first_cluster())
    };
    // Deeper's stream extension is the slot after its file entry.
    data[deeper_at + 32 + 20..deeper_at + 32 + 24].copy_from_slice(&docs_first.to_le_bytes());
    let fs = ExFat::open(&data, "t").unwrap();
    let m = fs.metadata(fs_ro).unwrap();
    assert!(
        m.notes.iter().any(|n| n.contains("checksum mismatch")),
        "{:?}",
        m.notes
    );
    let (_, problems) = walk::bodyfile(&fs, "/");
    assert!(
        problems
            .iter()
            .any(|p| p.what.contains("already in the tree")),
        "{problems:?}"
    );
}

/// Boot sectors that lie: refused with the field named.
#[test]
fn exfat_bad_boot_sectors_name_the_field() {
    let Some(data) = image_bytes() else { return };
    let cases: &[(usize, &[u8], &str)] = &[
        (3, b"EXFOO   ", "FileSystemName"),
        (108, &[20], "BytesPerSectorShift"),
        (109, &[30], "SectorsPerClusterShift"),
        (110, &[0], "NumberOfFats"),
        (84, &[1, 0, 0, 0], "FatLength"),
        (88, &[0xff, 0xff, 0xff, 0x7f], "ClusterHeapOffset"),
        (96, &[0, 0, 0, 0], "FirstClusterOfRootDirectory"),
        (510, &[0, 0], "BootSignature"),
    ];
    for (at, bytes, field) in cases {
        let mut d = data.clone();
        d[*at..*at + bytes.len()].copy_from_slice(bytes);
        match ExFat::open(&d, "t") {
            Err(FsError::Invalid { field: f, .. }) => assert!(f.contains(field), "{f} vs {field}"),
            other => panic!("{field}: {other:?}"),
        }
    }
    // No allocation bitmap entry in the root directory.
    let fs = ExFat::open(&data, "t").unwrap();
    let root_at = usize::try_from(
        fs.layout
            .cluster_sector(u64::from(fs.layout.root_cluster))
            .unwrap()
            * fs.layout.bytes_per_sector,
    )
    .unwrap();
    let mut d = data.clone();
    for slot in d[root_at..root_at + 4096].chunks_exact_mut(32) {
        if slot[0] == 0x81 {
            slot[0] = 0x01;
        }
    }
    match ExFat::open(&d, "t") {
        Err(FsError::Invalid { field, .. }) => assert!(field.contains("AllocationBitmap")),
        other => panic!("{other:?}"),
    }
    assert!(probe(&data));
    assert!(!probe(&&data[..100]));
    let cut = &data[..data.len() / 4];
    if let Ok(fs) = ExFat::open(&cut, "t") {
        exercise(&fs);
    }
}

/// Random damage to the metadata of a real volume: never a panic or hang.
#[test]
fn exfat_random_damage_never_panics() {
    let Some(data) = image_bytes() else { return };
    let fs = ExFat::open(&data, "t").unwrap();
    let l = fs.layout.clone();
    drop(fs);
    // The boot region, the FAT, and the first clusters (bitmap, up-case, root, Docs, many).
    let regions = [
        (0usize, 512usize),
        (
            usize::try_from(l.fat_sector * l.bytes_per_sector).unwrap(),
            1024,
        ),
        (
            usize::try_from(l.heap_sector * l.bytes_per_sector).unwrap(),
            64 * 1024,
        ),
    ];
    let mut x = 0x0bad_cafe_dead_beefu64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..60 {
        let mut d = data.clone();
        for _ in 0..48 {
            let (start, len) = regions[(rnd() % 3) as usize];
            let at = start + (rnd() % len as u64) as usize;
            d[at] = rnd() as u8;
        }
        if let Ok(fs) = ExFat::open(&d, "t") {
            exercise(&fs);
        }
    }
}

/// The fuzz seeds (fuzz/seeds/fs_exfat): a 256 KiB volume of 512-byte clusters made by
/// mkfs.exfat, populated by the writer (a deleted file, a fragmented one, a subdirectory)
/// and cut to its first 64 KiB. `VESTIGE_WRITE_SEEDS=1` rewrites them; otherwise they are
/// checked to open and walk.
#[test]
fn exfat_fuzz_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/fs_exfat");
    if std::env::var("VESTIGE_WRITE_SEEDS").as_deref() == Ok("1") && have_tools(&["mkfs.exfat"]) {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("seed.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(256 * 1024)
            .unwrap();
        run(
            "mkfs.exfat",
            &[
                "-c",
                "512",
                "-b",
                "512",
                "-L",
                "SEED",
                img.to_str().unwrap(),
            ],
        );
        let mut w = Writer::new(std::fs::read(&img).unwrap());
        let root = w.root.clone();
        w.file(&root, "a.txt", b"hello", false, UTC);
        w.file(&root, "A long file name.text", &content(1, 1300), true, UTC);
        let gone = w.file(&root, "deleted.bin", &content(2, 700), false, UTC);
        let (sub, _) = w.dir(&root, "Sub", 1, Stamp { offset: 0xf8 });
        w.file(
            &sub,
            "inner.bin",
            &content(3, 600),
            true,
            Stamp { offset: 0 },
        );
        w.delete(&gone);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("exfat-512.img"), &w.img[..64 * 1024]).unwrap();
    }
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no {}", dir.display());
        return;
    };
    let mut n = 0;
    for e in rd {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        assert!(data.len() <= 64 * 1024);
        let fs = ExFat::open(&data, "seed").unwrap();
        let (body, problems) = walk::bodyfile(&fs, "/");
        assert!(problems.is_empty(), "{problems:?}");
        assert!(body.contains("/A long file name.text|"), "{body}");
        assert!(body.contains("/deleted.bin (deleted)|"), "{body}");
        assert!(body.contains("/Sub/inner.bin|"), "{body}");
        exercise(&fs);
        n += 1;
    }
    assert!(n >= 1);
}
