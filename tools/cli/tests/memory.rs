//! `vestige acquire memory --from`: hypervisor dumps (ELF cores as QEMU's dump-guest-memory
//! writes them), LiME files and raw dumps become signed LiME items that stock zstd,
//! signify and `vestige verify` check; damaged dumps are refused with the file, offset and
//! field, and leave no item behind. (Live acquisition runs in the QEMU guest tests: this
//! host has no /proc/kcore.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// Deterministic bytes standing for a page range of guest memory.
fn memory_bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u64::from(seed) | 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|i| {
            if i % 4096 < 2048 {
                // Half of every page compressible, as real memory is.
                seed
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

/// An ELF64 core laid out as QEMU's dump-guest-memory writes one: a PT_NOTE, then one
/// PT_LOAD per RAM block with its guest-physical address.
fn elf_core(segments: &[(u64, &[u8])]) -> Vec<u8> {
    let phnum = segments.len() + 1;
    let mut f = vec![0u8; 64 + 56 * phnum];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&4u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    f[64..68].copy_from_slice(&4u32.to_le_bytes());
    for (i, (paddr, data)) in segments.iter().enumerate() {
        let at = 64 + 56 * (i + 1);
        let off = f.len() as u64;
        f[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
        f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
        f[at + 24..at + 32].copy_from_slice(&paddr.to_le_bytes());
        f[at + 32..at + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        f[at + 40..at + 48].copy_from_slice(&(data.len() as u64).to_le_bytes());
        f.extend_from_slice(data);
    }
    f
}

/// A strict LiME file of the ranges, written independently of the code under test.
fn lime(segments: &[(u64, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (start, data) in segments {
        v.extend_from_slice(&0x4C69_4D45u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&start.to_le_bytes());
        v.extend_from_slice(&(start + data.len() as u64 - 1).to_le_bytes());
        v.extend_from_slice(&[0u8; 8]);
        v.extend_from_slice(data);
    }
    v
}

fn acquire_memory(
    from: &Path,
    case: &Path,
    item: &str,
    key: &Path,
    extra: &[&str],
) -> std::process::Output {
    out(vestige()
        .args(["acquire", "memory", "--from"])
        .arg(from)
        .arg("--case")
        .arg(case)
        .args(["--item", item, "--key"])
        .arg(key)
        .args(["--chunk-mib", "1"])
        .args(extra))
}

/// Checks an item made from a dump: its LiME is `want`, every tool verifies it.
fn check_item(case: &Path, item: &str, public: &Path, want: &[u8], method: &str, input: &Path) {
    let dir = case.join(item);
    let m = manifest(&dir);
    assert_eq!(m["status"], "complete");
    assert_eq!(m["memory"]["method"], method);
    assert_eq!(m["source"]["kind"], "memory_dump_file");
    assert_eq!(
        m["memory"]["input_file_sha256"],
        sha256_file(input).as_str()
    );
    assert_eq!(m["hashes"]["sha256"], sha256(want).as_str());
    assert_eq!(m["acquisition"]["bytes_acquired"], want.len() as u64);
    assert!(m["memory"]["unreadable"].as_array().unwrap().is_empty());
    if have("zstd") {
        let restored = out(Command::new("zstd")
            .arg("-dc")
            .arg(dir.join("memory.lime.zst")));
        assert!(restored.status.success());
        assert!(
            restored.stdout == want,
            "stock zstd does not restore the LiME file"
        );
    }
    if have("signify-openbsd") {
        let s = out(Command::new("signify-openbsd")
            .args(["-C", "-p"])
            .arg(public)
            .arg("-x")
            .arg(dir.join("SHA256.sig"))
            .current_dir(&dir));
        assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    }
    let v = out(vestige().arg("verify").arg(&dir));
    assert_eq!(code(&v).0, 0, "verify: {}", code(&v).1);
}

#[test]
fn dumps_become_signed_lime_items() {
    let t = tempfile::tempdir().unwrap();
    let low = memory_bytes(0x9f000, 1);
    let high = memory_bytes(3 << 20, 2);
    let segments: [(u64, &[u8]); 2] = [(0, &low), (0x10_0000, &high)];
    let want = lime(&segments);
    let (sec, public) = new_key(t.path(), "examiner");
    let case = new_case(t.path(), "case");

    let core = t.path().join("guest.core");
    std::fs::write(&core, elf_core(&segments)).unwrap();
    let core_sha = sha256_file(&core);
    let o = acquire_memory(&core, &case, "qemu-dump", &sec, &[]);
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    check_item(&case, "qemu-dump", &public, &want, "elf_core", &core);
    assert_eq!(sha256_file(&core), core_sha, "the dump changed");

    // A LiME file from another tool: re-sealed byte for byte.
    let lime_in = t.path().join("other-tool.lime");
    std::fs::write(&lime_in, &want).unwrap();
    let o = acquire_memory(&lime_in, &case, "imported", &sec, &[]);
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    check_item(&case, "imported", &public, &want, "lime", &lime_in);

    // A raw dump: one range from physical address 0.
    let raw = t.path().join("guest.raw");
    std::fs::write(&raw, &high).unwrap();
    let o = acquire_memory(&raw, &case, "raw", &sec, &[]);
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    check_item(&case, "raw", &public, &lime(&[(0, &high)]), "raw", &raw);

    // The custody log records each, and the whole case verifies.
    let custody = std::fs::read_to_string(case.join("custody.jsonl")).unwrap();
    assert_eq!(custody.matches("acquire-memory").count(), 3);
    let v = out(vestige().arg("verify").arg(&case));
    assert_eq!(code(&v).0, 0, "{}", code(&v).1);
}

#[test]
fn tampered_memory_item_is_caught() {
    let t = tempfile::tempdir().unwrap();
    let data = memory_bytes(2 << 20, 3);
    let core = t.path().join("guest.core");
    std::fs::write(&core, elf_core(&[(0x10_0000, &data)])).unwrap();
    let (sec, _) = new_key(t.path(), "examiner");
    let case = new_case(t.path(), "case");
    let o = acquire_memory(&core, &case, "mem", &sec, &[]);
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    let img = case.join("mem/memory.lime.zst");
    let mut bytes = std::fs::read(&img).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&img, &bytes).unwrap();
    let v = out(vestige().arg("verify").arg(case.join("mem")));
    let (rc, err) = code(&v);
    let report = String::from_utf8_lossy(&v.stdout);
    assert_eq!(rc, 1, "a damaged memory image verified: {err}{report}");
    assert!(
        report.contains("memory.lime.zst HASH MISMATCH") && report.contains("chunk 1 "),
        "{report}"
    );
}

#[test]
fn damaged_dumps_are_refused_with_where_and_what() {
    let t = tempfile::tempdir().unwrap();
    let data = memory_bytes(64 << 10, 4);
    let good = elf_core(&[(0, &data), (0x10_0000, &data)]);
    let (sec, _) = new_key(t.path(), "examiner");
    let case = new_case(t.path(), "case");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            "p_offset/p_filesz",
        ),
        (
            "huge-phnum",
            {
                let mut g = good.clone();
                g[56..58].copy_from_slice(&0xfff0u16.to_le_bytes());
                g
            },
            "e_phoff/e_phnum",
        ),
        (
            "overlap",
            elf_core(&[(0, &data), (0x8000, &data)]),
            "stored twice",
        ),
        (
            "lime-bad-order",
            {
                let mut l = lime(&[(0x10_0000, &data)]);
                l.extend_from_slice(&lime(&[(0, &data)]));
                l
            },
            "s_addr",
        ),
    ];
    for (name, bytes, needle) in cases {
        let f = t.path().join(name);
        std::fs::write(&f, &bytes).unwrap();
        let o = acquire_memory(&f, &case, name, &sec, &[]);
        let (rc, err) = code(&o);
        assert_eq!(rc, 2, "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
        assert!(
            err.contains(&f.display().to_string()),
            "{name} not named: {err}"
        );
        assert!(!case.join(name).exists(), "{name}: an item was left behind");
    }
}

#[test]
fn live_method_without_kcore_says_why() {
    if Path::new("/proc/kcore").exists() || !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (sec, _) = new_key(t.path(), "examiner");
    let case = new_case(t.path(), "case");
    let o = out(vestige()
        .args(["acquire", "memory", "--method", "kcore", "--case"])
        .arg(&case)
        .args(["--item", "live", "--key"])
        .arg(&sec));
    let (rc, err) = code(&o);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("/proc/kcore"), "{err}");
    assert!(!case.join("live").exists());
}
