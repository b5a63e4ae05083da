//! `vestige acquire memory --from`: hypervisor dumps (ELF cores as QEMU's dump-guest-memory
//! writes them), LiME files and raw dumps become signed LiME items that stock zstd,
//! signify and `vestige verify` check; damaged dumps are refused with the file, offset and
//! field, and leave no item behind. VMware memory is placed by its state file's regions,
//! cross-checked with Volatility 3's VMware layer when installed. (Live acquisition runs
//! in the QEMU guest tests: this host has no /proc/kcore.)
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

/// One tag of a VMware state file, written from the layout (not from the parser): flags
/// (index count in bits 7-6, value size in bits 5-0), name length, name, 32-bit indices,
/// value.
fn vmware_tag(name: &str, indices: &[u32], value: &[u8]) -> Vec<u8> {
    let mut t = vec![
        (indices.len() as u8) << 6 | value.len() as u8,
        name.len() as u8,
    ];
    t.extend_from_slice(name.as_bytes());
    for i in indices {
        t.extend_from_slice(&i.to_le_bytes());
    }
    t.extend_from_slice(value);
    t
}

/// A VMware state file (magic 0xbed2bed2) with groups "cpu" and "memory"; the memory
/// group holds `(guest page, .vmem page, pages)` regions and, if given, the memory itself
/// as a "Memory" block (value size 63: stored and in-memory sizes, 16-bit padding length).
fn vmware_state(regions: &[(u32, u32, u32)], embedded: Option<&[u8]>) -> Vec<u8> {
    let cpu = [
        vmware_tag("cpu:numVCPUs", &[], &1u32.to_le_bytes()),
        vec![0, 0],
    ]
    .concat();
    let mut mem = vmware_tag("regionsCount", &[], &(regions.len() as u32).to_le_bytes());
    for (i, (ppn, page, pages)) in regions.iter().enumerate() {
        let i = i as u32;
        mem.extend(vmware_tag("regionPPN", &[i], &ppn.to_le_bytes()));
        mem.extend(vmware_tag("regionPageNum", &[i], &page.to_le_bytes()));
        mem.extend(vmware_tag("regionSize", &[i], &pages.to_le_bytes()));
    }
    if let Some(data) = embedded {
        mem.extend([2 << 6 | 63, 6]);
        mem.extend_from_slice(b"Memory");
        mem.extend_from_slice(&[0; 8]);
        mem.extend_from_slice(&(data.len() as u64).to_le_bytes());
        mem.extend_from_slice(&(data.len() as u64).to_le_bytes());
        mem.extend_from_slice(&0u16.to_le_bytes());
        mem.extend_from_slice(data);
    }
    mem.extend([0, 0]);
    let mut f = Vec::new();
    f.extend_from_slice(&0xbed2_bed2u32.to_le_bytes());
    f.extend_from_slice(&8u32.to_le_bytes());
    f.extend_from_slice(&2u32.to_le_bytes());
    let mut at = 12 + 2 * 80;
    for (name, len) in [("cpu", cpu.len()), ("memory", mem.len())] {
        let mut n = [0u8; 64];
        n[..name.len()].copy_from_slice(name.as_bytes());
        f.extend_from_slice(&n);
        f.extend_from_slice(&(at as u64).to_le_bytes());
        f.extend_from_slice(&(len as u64).to_le_bytes());
        at += len;
    }
    f.extend(cpu);
    f.extend(mem);
    f
}

/// `len` bytes at physical `phys` of an item's LiME, read through the seekable container.
fn lime_bytes(item: &Path, phys: u64, len: usize) -> Vec<u8> {
    use vestige_evidence::read_at::{FileReader, ReadAt};
    let file = FileReader::open(&item.join("memory.lime.zst")).unwrap();
    let lime = vestige_evidence::seekable::SeekableReader::open(file).unwrap();
    let ranges = vestige_evidence::lime::read_ranges(&lime).unwrap();
    let r = ranges
        .iter()
        .find(|r| r.start <= phys && phys + len as u64 <= r.end())
        .unwrap_or_else(|| panic!("{phys:#x} is not in the LiME ranges {ranges:?}"));
    let mut buf = vec![0u8; len];
    lime.read_exact_at(&mut buf, r.data_offset + (phys - r.start))
        .unwrap();
    buf
}

#[test]
fn vmware_memory_is_placed_by_its_state_file() {
    const MIB: u32 = 1 << 20;
    let t = tempfile::tempdir().unwrap();
    let (sec, public) = new_key(t.path(), "examiner");
    let case = new_case(t.path(), "case");
    // A guest with 2 MiB below the hole and 2 MiB from 4 GiB: the .vmem holds them end to
    // end, so .vmem byte 2 MiB is guest-physical 4 GiB.
    let low = memory_bytes(2 << 20, 5);
    let high = memory_bytes(2 << 20, 6);
    let regions = [
        (0, 0, 2 * MIB / 4096),
        (0x10_0000, 2 * MIB / 4096, 2 * MIB / 4096),
    ];
    let want = lime(&[(0, &low), (4 << 30, &high)]);
    let vmem = t.path().join("guest.vmem");
    let vmss = t.path().join("guest.vmss");
    std::fs::write(&vmem, [low.as_slice(), &high].concat()).unwrap();
    std::fs::write(&vmss, vmware_state(&regions, None)).unwrap();
    let check_state = |item: &str, state: &Path, embedded: bool| {
        let m = manifest(&case.join(item));
        let v = &m["memory"]["vmware_state"];
        assert_eq!(v["path"], state.display().to_string().as_str(), "{m}");
        assert_eq!(v["sha256"], sha256_file(state).as_str());
        assert_eq!(v["memory_embedded"], embedded);
        assert_eq!(v["groups"], serde_json::json!(["cpu", "memory"]));
        assert_eq!(v["regions"][1]["phys_start"], 4u64 << 30);
        assert_eq!(v["regions"][1]["memory_offset"], 2u64 << 20);
        let custody = std::fs::read_to_string(case.join("custody.jsonl")).unwrap();
        assert!(
            custody.contains(&sha256_file(state)),
            "state file hash not in custody"
        );
    };

    // The .vmem: its state file is found beside it and named.
    let o = acquire_memory(&vmem, &case, "vmem", &sec, &[]);
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    assert!(code(&o).1.contains("guest.vmss"), "{}", code(&o).1);
    check_item(&case, "vmem", &public, &want, "vmware", &vmem);
    check_state("vmem", &vmss, false);
    assert_eq!(lime_bytes(&case.join("vmem"), 4 << 30, 4096), high[..4096]);
    // Read as raw (the old behaviour), the high region would sit at 2 MiB: it does not.
    let m = manifest(&case.join("vmem"));
    assert_eq!(m["memory"]["ranges"][1]["start"], 4u64 << 30);

    // The state file given itself: the .vmem beside it holds the memory.
    let o = acquire_memory(&vmss, &case, "vmss", &sec, &[]);
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    check_item(&case, "vmss", &public, &want, "vmware", &vmem);
    check_state("vmss", &vmss, false);

    // An old snapshot: the memory inside the .vmsn, found by its magic whatever its name.
    let snap = t.path().join("snapshot-1.bin");
    let memory = [low.as_slice(), &high].concat();
    std::fs::write(&snap, vmware_state(&regions, Some(&memory))).unwrap();
    let o = acquire_memory(&snap, &case, "vmsn", &sec, &[]);
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    check_item(&case, "vmsn", &public, &want, "vmware", &snap);
    check_state("vmsn", &snap, true);

    // `--format raw` still reads a .vmem as raw, when the examiner says so.
    let o = acquire_memory(&vmem, &case, "as-raw", &sec, &["--format", "raw"]);
    assert_eq!(code(&o).0, 0, "{}", code(&o).1);
    assert_eq!(manifest(&case.join("as-raw"))["memory"]["method"], "raw");

    // A damaged state file beside a .vmem is refused, named, and no item is left.
    let bad_vmem = t.path().join("bad.vmem");
    let bad_vmss = t.path().join("bad.vmss");
    std::fs::copy(&vmem, &bad_vmem).unwrap();
    let mut state = vmware_state(&regions, None);
    state[8..12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    std::fs::write(&bad_vmss, &state).unwrap();
    let o = acquire_memory(&bad_vmem, &case, "bad", &sec, &[]);
    let (rc, err) = code(&o);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("bad.vmss") && err.contains("header.group_count at byte 8"),
        "{err}"
    );
    assert!(!case.join("bad").exists());
    // Regions past the end of the .vmem, likewise.
    std::fs::write(&bad_vmss, vmware_state(&[(0, 0, 2048)], None)).unwrap();
    let o = acquire_memory(&bad_vmem, &case, "bad", &sec, &[]);
    let (rc, err) = code(&o);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("region 0") && err.contains("past its end"),
        "{err}"
    );

    volatility_reads_the_same(t.path(), &vmem, &case.join("vmem"));
}

/// Volatility 3's VMware layer (volshell, scripted) reads the .vmem through the .vmss: at
/// addresses in both regions, the bytes must be those of our LiME. Volatility is not ours,
/// so this checks the region semantics, not only our reading of them.
fn volatility_reads_the_same(dir: &Path, vmem: &Path, item: &Path) {
    let vol = std::env::var_os("VESTIGE_VOL").unwrap_or_else(|| "vol".into());
    // volshell is installed with vol (same package, same directory).
    let volshell = Path::new(&vol).with_file_name("volshell");
    let volshell = if Path::new(&vol).components().count() > 1 {
        volshell.into_os_string()
    } else {
        "volshell".into()
    };
    if !Command::new(&volshell)
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            std::env::var_os("VESTIGE_REQUIRE_TOOLS").is_none_or(|v| v != "1"),
            "VESTIGE_REQUIRE_TOOLS=1: volshell (volatility3) missing"
        );
        eprintln!("note: volatility3 missing: VMware cross-check with Volatility skipped");
        return;
    }
    let addresses: [u64; 5] = [0, 0x1f_f000, 0x1_0000_0000, 0x1_0010_0800, 0x1_001f_f000];
    let script = dir.join("read.py");
    std::fs::write(
        &script,
        format!(
            "layer = self.context.layers['primary']\n\
             print('LAYER', type(layer).__name__)\n\
             for a in {addresses:?}:\n    \
                 print('READ', a, layer.read(a, 4096).hex())\n"
        ),
    )
    .unwrap();
    let cache = dir.join("vol-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let o = out(Command::new(&volshell)
        .arg("--offline")
        .arg("--cache-path")
        .arg(&cache)
        .arg("-q")
        .arg("-f")
        .arg(vmem)
        .arg("--script")
        .arg(&script)
        .arg("--script-only"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("LAYER VmwareLayer"),
        "Volatility did not stack its VMware layer:\n{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut seen = 0;
    for line in text.lines().filter_map(|l| l.strip_prefix("READ ")) {
        let (addr, hex) = line.split_once(' ').unwrap();
        let addr: u64 = addr.parse().unwrap();
        let ours: String = lime_bytes(item, addr, 4096)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(ours == hex, "Volatility reads other bytes at {addr:#x}");
        seen += 1;
    }
    assert_eq!(seen, addresses.len(), "{text}");
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
