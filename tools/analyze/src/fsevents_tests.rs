#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use super::*;
use crate::test_support::{ext4_of, have_tools, put, run, with_ext4};
use vestige_fs::FileSystem as _;

#[test]
fn an_ext4_walk_gives_times_deleted_files_and_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    put(r, "tmp/.x/update.sh", b"#!/bin/sh\n");
    put(r, "root/exfil.tar", &vec![b'a'; 5000]);
    put(r, "etc/hostname", b"web-01\n");
    let Some(mut img) = ext4_of(r, 8) else { return };
    if !have_tools(&["debugfs", "fls"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("img");
    std::fs::write(&path, &img).unwrap();
    run(
        "debugfs",
        &["-w", "-R", "rm /root/exfil.tar", path.to_str().unwrap()],
    );
    img = std::fs::read(&path).unwrap();
    let fls = String::from_utf8(run("fls", &["-r", "-m", "/", path.to_str().unwrap()])).unwrap();
    with_ext4(&img, |files| {
        let (summary, candidates, got) = collect(files);
        assert_eq!(summary.kind, "ext4");
        // Every name fls lists is walked (its lines have one name each).
        assert_eq!(summary.entries as usize, fls.lines().count());
        assert_eq!(summary.deleted, 1);
        let d = &summary.deleted_files[0];
        assert_eq!(d.path, "/root/exfil.tar");
        assert!(fls.contains("|/root/exfil.tar (deleted)|"));
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].path, b"/tmp/.x/update.sh");
        assert_eq!(candidates[0].reason, "temporary directory");
        // Each fls line's mtime appears as an event of that file with an m.
        let line = fls.lines().find(|l| l.contains("|/etc/hostname|")).unwrap();
        let mtime: i64 = line.split('|').nth(8).unwrap().parse().unwrap();
        assert!(got
            .events
            .iter()
            .any(|e| e.evidence.path.as_deref() == Some("/etc/hostname")
                && e.time.secs == mtime
                && e.fields["macb"].starts_with('m')));
        let del = got
            .events
            .iter()
            .find(|e| {
                e.description.starts_with('[')
                    && e.description.contains("/root/exfil.tar (deleted)")
            })
            .unwrap();
        assert_eq!(del.fields["deleted"], "true");
        assert!(got.findings.is_empty());
    });
}

#[test]
fn backdated_standard_information_is_flagged_as_istat_shows_it() {
    if !have_tools(&["mkntfs", "ntfscp", "istat", "ifind"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("n.img");
    let src = dir.path().join("payload");
    std::fs::write(&src, b"MZ payload").unwrap();
    run("truncate", &["-s", "8M", img.to_str().unwrap()]);
    run("mkntfs", &["-F", "-q", "-Q", img.to_str().unwrap()]);
    run(
        "ntfscp",
        &[
            "-f",
            img.to_str().unwrap(),
            src.to_str().unwrap(),
            "stomped.exe",
        ],
    );
    let mut bytes = std::fs::read(&img).unwrap();
    let vol: &[u8] = &bytes;
    let fs = vestige_fs::ntfs::Ntfs::open(&vol, "t").unwrap();
    let inode = vestige_fs::walk::lookup(&fs, b"/stomped.exe").unwrap();
    let created = fs.metadata(inode).unwrap().times.created.unwrap();
    drop(fs);
    // Windows' SetFileTime changes $STANDARD_INFORMATION only: do that to the first
    // copy of the creation time in the MFT entry (SI comes before $FILE_NAME).
    let ft = |secs: i64, nanos: u32| {
        (u64::try_from(secs + 11_644_473_600).unwrap() * 10_000_000 + u64::from(nanos / 100))
            .to_le_bytes()
    };
    let old = ft(created.secs, created.nanos);
    let at = bytes.windows(8).position(|w| w == old).unwrap();
    bytes[at..at + 8].copy_from_slice(&ft(1_420_070_400, 0));
    std::fs::write(&img, &bytes).unwrap();
    let istat =
        String::from_utf8(run("istat", &[img.to_str().unwrap(), &inode.to_string()])).unwrap();
    assert!(istat.contains("Created:\t2015-01-01"), "{istat}");
    let vol: &[u8] = &bytes;
    let fs = vestige_fs::ntfs::Ntfs::open(&vol, "t").unwrap();
    let files = Files::new(&fs, "t:002");
    let (_, _, got) = collect(&files);
    let f: Vec<_> = got
        .findings
        .iter()
        .filter(|f| f.rule == "fs.timestomp")
        .collect();
    assert_eq!(f.len(), 1, "{:?}", got.findings);
    assert_eq!(f[0].evidence[0].path.as_deref(), Some("/stomped.exe"));
    assert!(f[0].description.contains("2015-01-01T00:00:00Z"));
}

#[test]
fn candidate_places() {
    assert_eq!(candidate_reason(b"/tmp/a"), Some("temporary directory"));
    assert_eq!(
        candidate_reason(b"/home/u/.cache/x/bin"),
        Some("hidden directory")
    );
    assert_eq!(
        candidate_reason(b"/Users/bob/AppData/Local/Temp/drop.exe"),
        Some("hidden directory")
            .filter(|_| false)
            .or(Some("temporary directory"))
    );
    assert_eq!(
        candidate_reason(b"/ProgramData/Microsoft/Windows/Start Menu/Programs/StartUp/x.lnk"),
        Some("startup folder")
    );
    assert_eq!(candidate_reason(b"/usr/bin/ls"), None);
    assert_eq!(candidate_reason(b"/home/u/.bashrc"), None);
}
