//! FAT against The Sleuth Kit on images made by mkfs.fat and populated by mtools (no
//! mounting), and against damaged copies of them.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use super::*;
use crate::test_support::{
    content, exercise, fls_lines, have_tools, ours, read_file as read_all, run, sha,
};
use crate::walk;
use std::path::{Path, PathBuf};

/// A populated FAT image: files of many sizes, long and short names, nested and
/// many-entry directories, attributes, fragmented files, deleted files and a deleted tree.
fn make_image(dir: &Path, fat: u32, size_kib: u32, cluster_sectors: u32) -> PathBuf {
    let img = dir.join(format!("fat{fat}.img"));
    let src = dir.join(format!("src{fat}"));
    std::fs::create_dir_all(src.join("Docs/Nested Deeper/leaf")).unwrap();
    std::fs::create_dir_all(src.join("many")).unwrap();
    std::fs::create_dir_all(src.join("gone/inner")).unwrap();
    std::fs::create_dir_all(src.join("EMPTY")).unwrap();
    let files: &[(&str, usize)] = &[
        ("README.TXT", 100),
        ("lower.txt", 3000),
        ("Mixed Case Long Name.document", 7000),
        ("zero.bin", 0),
        ("Docs/report final version.pdf", 20_000),
        ("Docs/Nested Deeper/leaf/x.y", 1),
        ("Docs/Nested Deeper/leaf/exactly-cluster.bin", 2048),
        ("gone/inner/secret.txt", 1500),
        ("gone/deleted long name in dir.dat", 5000),
        ("to be deleted.bin", 12_345),
        ("DELME.TXT", 700),
        ("frag1.bin", 4096),
        ("frag2.bin", 4096),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        std::fs::write(src.join(name), content(i as u64 + u64::from(fat), *len)).unwrap();
    }
    for i in 0..70 {
        std::fs::write(
            src.join(format!("many/entry number {i}.txt")),
            content(1000 + i, i as usize * 37),
        )
        .unwrap();
    }
    let img_s = img.to_str().unwrap();
    let _ = std::fs::remove_file(&img);
    run(
        "mkfs.fat",
        &[
            "-C",
            "-F",
            &fat.to_string(),
            "-s",
            &cluster_sectors.to_string(),
            "-n",
            "VESTIGE",
            img_s,
            &size_kib.to_string(),
        ],
    );
    let mut args = vec!["-i", img_s, "-s", "-m"];
    let entries: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_string())
        .collect();
    let mut entries = entries;
    entries.sort();
    args.extend(entries.iter().map(String::as_str));
    args.push("::/");
    run("mcopy", &args);
    run("mattrib", &["-i", img_s, "+r", "::/README.TXT"]);
    run("mattrib", &["-i", img_s, "+h", "::/lower.txt"]);
    run(
        "mdel",
        &[
            "-i",
            img_s,
            "::/to be deleted.bin",
            "::/DELME.TXT",
            "::/frag1.bin",
        ],
    );
    run("mdeltree", &["-i", img_s, "::/gone"]);
    // A file written into the hole frag1 left and beyond: a fragmented chain.
    let big = dir.join(format!("fragmented{fat}.bin"));
    std::fs::write(&big, content(77, 9000)).unwrap();
    run(
        "mcopy",
        &[
            "-i",
            img_s,
            "-m",
            big.to_str().unwrap(),
            "::/fragmented.bin",
        ],
    );
    run("mdel", &["-i", img_s, "::/many/entry number 5.txt"]);
    img
}

/// Bodyfile lines and every file's content, against TSK.
fn compare_with_tsk(fat: u32, size_kib: u32, cluster_sectors: u32, expect: &str) {
    if !have_tools(&[
        "mkfs.fat", "mcopy", "mdel", "mdeltree", "mattrib", "fls", "icat",
    ]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), fat, size_kib, cluster_sectors);
    let data = std::fs::read(&img).unwrap();
    let fs = Fat::open(&data, "test").unwrap();
    assert_eq!(fs.info().kind, expect);
    assert_eq!(fs.info().label.as_deref(), Some("VESTIGE"));
    let tsk = fls_lines(&img);
    let mine = ours(&fs);
    let tsk_v: Vec<&String> = tsk.values().collect();
    let mine_v: Vec<&String> = mine.values().collect();
    let only_tsk: Vec<&&String> = tsk_v.iter().filter(|l| !mine_v.contains(l)).collect();
    let only_mine: Vec<&&String> = mine_v.iter().filter(|l| !tsk_v.contains(l)).collect();
    assert!(
        only_tsk.is_empty() && only_mine.is_empty(),
        "bodyfile differs from fls -r -m /:\nonly TSK: {only_tsk:#?}\nonly ours: {only_mine:#?}"
    );
    assert!(tsk.values().any(|l| l.contains("(deleted)")));
    // Content: every regular file, allocated and deleted.
    let mut compared = 0;
    for line in tsk.values() {
        let f: Vec<&str> = line.split('|').collect();
        if !f[3].starts_with("r/r") {
            continue;
        }
        let inode: Inode = f[2].parse().unwrap();
        let tsk_data = run("icat", &[img.to_str().unwrap(), f[2]]);
        let mine = read_all(&fs, inode).unwrap_or_else(|e| panic!("{line}: {e}"));
        let first_diff = mine.iter().zip(&tsk_data).position(|(a, b)| a != b);
        assert_eq!(
            sha(&mine),
            sha(&tsk_data),
            "content of {line}: {} vs TSK's {} bytes, first difference at {first_diff:?}",
            mine.len(),
            tsk_data.len()
        );
        compared += 1;
    }
    assert!(compared > 80, "{compared}");
}

#[test]
fn fat12_matches_tsk() {
    compare_with_tsk(12, 1440, 1, "fat12");
}

#[test]
fn fat16_matches_tsk() {
    compare_with_tsk(16, 16 * 1024, 4, "fat16");
}

#[test]
fn fat32_matches_tsk() {
    compare_with_tsk(32, 40_000, 1, "fat32");
}

fn hostile_image(fat: u32) -> Option<Vec<u8>> {
    if !have_tools(&["mkfs.fat", "mcopy", "mdel", "mdeltree", "mattrib"]) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (size, spc) = if fat == 32 {
        (40_000, 1)
    } else {
        (16 * 1024, 4)
    };
    let img = make_image(dir.path(), fat, size, spc);
    Some(std::fs::read(img).unwrap())
}

fn set_fat(data: &mut [u8], fs_layout: &Layout, cluster: u64, value: u32) {
    let bps = fs_layout.bytes_per_sector;
    let base = usize::try_from(fs_layout.first_fat_sector * bps).unwrap();
    match fs_layout.fat_type {
        FatType::Fat16 => {
            let at = base + usize::try_from(cluster * 2).unwrap();
            data[at..at + 2].copy_from_slice(&(value as u16).to_le_bytes());
        }
        FatType::Fat32 => {
            let at = base + usize::try_from(cluster * 4).unwrap();
            data[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        FatType::Fat12 => unreachable!("not used"),
    }
}

/// A cluster chain that loops (a file's and a directory's): reads stop with an error that
/// says so, the walk ends.
#[test]
fn cluster_chain_cycles_are_bounded() {
    for fat in [16, 32] {
        let Some(mut data) = hostile_image(fat) else {
            return;
        };
        let (layout, file, many) = {
            let fs = Fat::open(&data, "t").unwrap();
            let file = walk::lookup(&fs, b"/Docs/report final version.pdf").unwrap();
            let many = walk::lookup(&fs, b"/many").unwrap();
            let (e, _, _) = fs.entry(file).unwrap();
            let (m, _, _) = fs.entry(many).unwrap();
            let fat32 = fat == 32;
            (
                fs.layout.clone(),
                u64::from(e.first_cluster(fat32)),
                u64::from(m.first_cluster(fat32)),
            )
        };
        // Each chain's first cluster points to itself.
        set_fat(&mut data, &layout, file, u32::try_from(file).unwrap());
        set_fat(&mut data, &layout, many, u32::try_from(many).unwrap());
        let fs = Fat::open(&data, "t").unwrap();
        let ino = walk::lookup(&fs, b"/Docs/report final version.pdf").unwrap();
        let err = read_all(&fs, ino).unwrap_err();
        assert!(err.contains("loops back to cluster"), "{err}");
        let many_ino = walk::lookup(&fs, b"/many").unwrap();
        assert!(!fs.read_dir(many_ino).unwrap().is_empty());
        assert!(exercise(&fs) > 10);
        assert!(fs
            .info()
            .notes
            .iter()
            .any(|n| n.contains("differs from the first")));
    }
}

/// A directory entry whose first cluster is its own directory's: the walk sees the same
/// inode again and does not enter it twice.
#[test]
fn directory_loops_are_not_followed() {
    let Some(mut data) = hostile_image(32) else {
        return;
    };
    let fs = Fat::open(&data, "t").unwrap();
    let leaf = walk::lookup(&fs, b"/Docs/Nested Deeper/leaf").unwrap();
    let docs = walk::lookup(&fs, b"/Docs").unwrap();
    let (d, _, _) = fs.entry(docs).unwrap();
    let docs_cluster = d.first_cluster(true);
    let slot = fs.slot(leaf).unwrap();
    drop(fs);
    let at = usize::try_from(slot.offset).unwrap();
    data[at + 20..at + 22].copy_from_slice(&((docs_cluster >> 16) as u16).to_le_bytes());
    data[at + 26..at + 28].copy_from_slice(&(docs_cluster as u16).to_le_bytes());
    let fs = Fat::open(&data, "t").unwrap();
    let (_, problems) = walk::bodyfile(&fs, "/");
    assert!(
        problems
            .iter()
            .any(|p| p.what.contains("already in the tree")),
        "{problems:?}"
    );
}

/// Boot sectors that lie: each refused with the field named.
#[test]
fn bad_boot_sectors_name_the_field() {
    let Some(data) = hostile_image(16) else {
        return;
    };
    let cases: &[(usize, &[u8], &str)] = &[
        (11, &[0, 0], "bytes_per_sector"),
        (13, &[3], "sectors_per_cluster"),
        (14, &[0, 0], "reserved_sectors"),
        (16, &[0], "num_fats"),
        (22, &[1, 0], "sectors_per_fat"),
        (510, &[0, 0], "signature"),
        (19, &[0x10, 0], "total_sectors"),
    ];
    for (at, bytes, field) in cases {
        let mut d = data.clone();
        d[*at..*at + bytes.len()].copy_from_slice(bytes);
        match Fat::open(&d, "t") {
            Err(FsError::Invalid { field: f, .. }) => assert!(f.contains(field), "{f} vs {field}"),
            other => panic!("{field}: {other:?}"),
        }
    }
    // A volume cut short: opens (the FAT is there), files past the end fail to read.
    let cut = &data[..data.len() / 8];
    let fs = Fat::open(&cut, "t").unwrap();
    assert!(fs.info().notes.iter().any(|n| n.contains("claims")));
    exercise(&fs);
    assert!(!probe(&&data[..100]));
    assert!(probe(&data));
}

/// Random damage to the metadata of a real image: never a panic or hang.
#[test]
fn random_damage_never_panics() {
    let Some(data) = hostile_image(16) else {
        return;
    };
    let fs = Fat::open(&data, "t").unwrap();
    let meta_end = usize::try_from(
        (fs.layout.first_cluster_sector + 16 * fs.layout.sectors_per_cluster)
            * fs.layout.bytes_per_sector,
    )
    .unwrap();
    drop(fs);
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..60 {
        let mut d = data.clone();
        for _ in 0..64 {
            let at = usize::try_from(rnd() % meta_end as u64).unwrap();
            d[at] = rnd() as u8;
        }
        if let Ok(fs) = Fat::open(&d, "t") {
            exercise(&fs);
        }
    }
}

/// The fuzz seeds (fuzz/seeds/fs_fat) open and walk; the FAT12 one as TSK sees it.
#[test]
fn fuzz_seeds_open() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/fs_fat");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no {}", dir.display());
        return;
    };
    let mut n = 0;
    for e in rd {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        assert!(data.len() <= 64 * 1024);
        let fs = Fat::open(&data, "seed").unwrap();
        exercise(&fs);
        n += 1;
    }
    assert!(n >= 3);
    let data = std::fs::read(dir.join("fat12.img")).unwrap();
    let fs = Fat::open(&data, "seed").unwrap();
    let (body, _) = walk::bodyfile(&fs, "/");
    assert!(
        body.contains("|/A Long File Name.text|6|r/rrwxrwxrwx|"),
        "{body}"
    );
    assert!(body.contains("|/_eldir/_n.txt (deleted)|773|"), "{body}");
}

/// Timing, by hand: `VESTIGE_BENCH_IMG=path cargo test --release -p vestige-fs
/// bench_bodyfile -- --ignored --nocapture` prints how long the bodyfile of a FAT or exFAT
/// image takes (compare with `time fls -r -m / path`). No timing is asserted.
#[test]
#[ignore = "timing by hand"]
fn bench_bodyfile() {
    let Ok(path) = std::env::var("VESTIGE_BENCH_IMG") else {
        eprintln!("set VESTIGE_BENCH_IMG");
        return;
    };
    let vol = vestige_evidence::read_at::FileReader::open(Path::new(&path)).unwrap();
    let start = std::time::Instant::now();
    let (lines, problems) = if probe(&vol) {
        let fs = Fat::open(&vol, &path).unwrap();
        let t = std::time::Instant::now();
        let orphans = fs.orphans().unwrap().len();
        eprintln!("orphan search alone: {orphans} in {:?}", t.elapsed());
        let start = std::time::Instant::now();
        let (body, problems) = walk::bodyfile(&fs, "/");
        eprintln!("bodyfile: {:?}", start.elapsed());
        if let Ok(out) = std::env::var("VESTIGE_BENCH_OUT") {
            std::fs::write(out, &body).unwrap();
        }
        (body.lines().count(), problems.len())
    } else {
        let fs = crate::exfat::ExFat::open(&vol, &path).unwrap();
        let (body, problems) = walk::bodyfile(&fs, "/");
        (body.lines().count(), problems.len())
    };
    eprintln!(
        "{path}: {lines} bodyfile lines, {problems} problems, in {:?}",
        start.elapsed()
    );
}
