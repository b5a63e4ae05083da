//! Hostile and damaged tables built byte by byte: loops, chains past the end, absurd
//! counts, partitions outside the disk, LVM metadata with huge sizes, deep nesting and
//! missing PVs, truncated images. Each gives a warning or error naming the offset and
//! field — never a panic, a hang or a huge allocation.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use super::{crc, read_layout, Layout, Scheme, SlotKind};
use crate::test_support::invalid_field;
use crate::{FormatError, ReadAt};
use std::path::Path;

fn layout(d: &[u8]) -> Layout {
    read_layout(&d.to_vec(), Path::new("hostile.img")).unwrap()
}

fn put_entry(d: &mut [u8], sector: u64, i: usize, kind: u8, lba: u32, len: u32) {
    let at = usize::try_from(sector * 512).unwrap() + 446 + 16 * i;
    d[at + 4] = kind;
    d[at + 8..at + 12].copy_from_slice(&lba.to_le_bytes());
    d[at + 12..at + 16].copy_from_slice(&len.to_le_bytes());
    let s = usize::try_from(sector * 512).unwrap();
    d[s + 510] = 0x55;
    d[s + 511] = 0xAA;
}

fn warned<'a>(l: &'a Layout, field: &str) -> &'a super::Warning {
    l.warnings
        .iter()
        .find(|w| w.field == field)
        .unwrap_or_else(|| panic!("no warning on {field}: {:?}", l.warnings))
}

#[test]
fn an_ebr_chain_that_loops_ends_with_a_warning() {
    let mut d = vec![0u8; 2048 * 512];
    put_entry(&mut d, 0, 0, 0x05, 100, 1000);
    put_entry(&mut d, 100, 0, 0x83, 10, 10);
    put_entry(&mut d, 100, 1, 0x05, 50, 100);
    put_entry(&mut d, 150, 0, 0x83, 10, 10);
    put_entry(&mut d, 150, 1, 0x05, 0, 100); // back to the first EBR
    let l = layout(&d);
    let w = warned(&l, "EBR.next");
    assert_eq!(w.offset_bytes, 100 * 512);
    assert!(w.message.contains("loops"), "{w}");
    let logicals = l
        .slots
        .iter()
        .filter(|s| s.kind == SlotKind::Partition)
        .count();
    assert_eq!(logicals, 2);
}

#[test]
fn an_ebr_past_the_end_and_a_bad_signature_end_the_chain() {
    let mut d = vec![0u8; 2048 * 512];
    put_entry(&mut d, 0, 0, 0x0f, 100, 1000);
    put_entry(&mut d, 100, 0, 0x83, 10, 10);
    put_entry(&mut d, 100, 1, 0x05, 0xFFFF_FF00, 100);
    let l = layout(&d);
    let w = warned(&l, "EBR");
    assert_eq!(w.offset_bytes, (100 + 0xFFFF_FF00u64) * 512);
    // Now the link points inside the disk at a sector without 0x55AA.
    put_entry(&mut d, 100, 1, 0x05, 500, 100);
    let l = layout(&d);
    assert_eq!(warned(&l, "EBR.signature").offset_bytes, 600 * 512 + 510);
}

#[test]
fn a_chain_longer_than_the_cap_is_cut() {
    let n = super::mbr::MAX_EBRS as u32 + 10;
    let mut d = vec![0u8; (n as usize + 10) * 512];
    put_entry(&mut d, 0, 0, 0x05, 1, n + 1);
    for i in 0..n {
        put_entry(&mut d, u64::from(1 + i), 1, 0x05, i + 1, 1);
    }
    let l = layout(&d);
    assert!(warned(&l, "EBR.next").message.contains("more than"));
}

/// A GPT disk of `sectors` 512-byte sectors with `parts` (first, last LBA), headers and
/// arrays at their usual places; `tweak` edits the primary header before its CRC.
fn gpt(sectors: u64, parts: &[(u64, u64)], tweak: impl Fn(&mut [u8])) -> Vec<u8> {
    let mut d = vec![0u8; usize::try_from(sectors * 512).unwrap()];
    put_entry(&mut d, 0, 0, 0xEE, 1, u32::try_from(sectors - 1).unwrap());
    let mut table = vec![0u8; 128 * 128];
    for (i, (first, last)) in parts.iter().enumerate() {
        let e = &mut table[i * 128..(i + 1) * 128];
        e[0] = 0xAF; // a type GUID that is not all zeros
        e[16] = u8::try_from(i + 1).unwrap();
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        e[56] = b'p';
    }
    let table_crc = crc::gpt(&table);
    for (my, alt, entries) in [(1, sectors - 1, 2), (sectors - 1, 1, sectors - 33)] {
        let mut h = vec![0u8; 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
        h[72..80].copy_from_slice(&entries.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&table_crc.to_le_bytes());
        if my == 1 {
            tweak(&mut h);
        }
        let c = crc::gpt(&h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        let at = usize::try_from(my * 512).unwrap();
        d[at..at + 92].copy_from_slice(&h);
        let t = usize::try_from(entries * 512).unwrap();
        if let Some(dst) = d.get_mut(t..t + table.len()) {
            dst.copy_from_slice(&table);
        }
    }
    d
}

#[test]
fn a_hand_made_gpt_reads_without_warnings() {
    let l = layout(&gpt(4096, &[(34, 99), (100, 4000)], |_| {}));
    assert_eq!(l.scheme, Scheme::Gpt);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(
        l.slots
            .iter()
            .filter(|s| s.kind == SlotKind::Partition)
            .count(),
        2
    );
}

#[test]
fn a_gpt_with_an_absurd_entry_count_or_size_is_refused_by_field() {
    for (at, value, field) in [
        (80, u32::MAX, "GPT header.number_of_partition_entries"),
        (84, 0x8000_0000, "GPT header.size_of_partition_entry"),
        (84, 100, "GPT header.size_of_partition_entry"),
        (72, 0xFFFF_FFF0, "GPT header.partition_entry_lba"),
    ] {
        let d = gpt(4096, &[(34, 99)], |h| {
            h[at..at + 4].copy_from_slice(&value.to_le_bytes());
            if at == 72 {
                h[76..80].fill(0xFF);
            }
        });
        let l = layout(&d);
        // The backup is fine: used, and the primary's problem named at its field.
        assert_eq!(l.scheme, Scheme::Gpt);
        let w = warned(&l, field);
        assert_eq!(w.offset_bytes, 512 + at as u64, "{w}");
        assert!(w.message.contains("using the backup"), "{w}");
    }
}

#[test]
fn partitions_outside_the_disk_and_overlapping_are_listed_and_warned() {
    let d = gpt(
        4096,
        &[(34, 2000), (1000, 3000), (3500, 1 << 40), (50, 40)],
        |_| {},
    );
    let l = layout(&d);
    let parts: Vec<_> = l
        .slots
        .iter()
        .filter(|s| s.kind == SlotKind::Partition)
        .collect();
    assert_eq!(parts.len(), 3, "the reversed one is not listed");
    assert_eq!(
        l.warnings
            .iter()
            .filter(|w| w.field == "partition extent")
            .count(),
        2,
        "{:?}",
        l.warnings
    );
    assert!(l
        .warnings
        .iter()
        .any(|w| w.field == "GPT partition entry.ending_lba"));
    assert!(l
        .warnings
        .iter()
        .any(|w| w.field == "GPT partition entry.starting_lba"));
    // The huge one opens with its claimed size; reads past the disk fail.
    let i = l.slots.iter().position(|s| s.start_sector == 3500).unwrap();
    let v = l.open_volume(&d, i).unwrap();
    let mut buf = [0u8; 512];
    assert_eq!(v.read_at(&mut buf, 0).unwrap(), 512);
    assert!(v.read_at(&mut buf, 1 << 30).is_err());
    assert!(l.open_volume(&d, 999).is_err());
}

#[test]
fn truncated_images_never_panic() {
    let full = gpt(4096, &[(34, 99), (100, 4000)], |_| {});
    for len in [
        0,
        1,
        100,
        511,
        512,
        1000,
        1024,
        17 * 1024,
        100_000,
        full.len() - 1,
    ] {
        let cut = full[..len].to_vec();
        let l = layout(&cut);
        for i in 0..l.slots.len() {
            let v = l.open_volume(&cut, i).unwrap();
            let mut buf = [0u8; 4096];
            let _ = v.read_at(&mut buf, 0);
        }
    }
}

/// A whole-disk PV: label in sector 1, one metadata area at 4 KiB of `mda` bytes holding
/// `text` at area offset `text_at` (wrapping if it runs past the end).
fn pv(uuid: &str, mda: u64, text: &[u8], text_at: u64) -> Vec<u8> {
    let mut d = vec![0u8; 4 << 20];
    let l = &mut d[512..1024];
    l[..8].copy_from_slice(b"LABELONE");
    l[8..16].copy_from_slice(&1u64.to_le_bytes());
    l[20..24].copy_from_slice(&32u32.to_le_bytes());
    l[24..32].copy_from_slice(b"LVM2 001");
    l[32..64].copy_from_slice(uuid.as_bytes());
    l[64..72].copy_from_slice(&(4u64 << 20).to_le_bytes());
    // Data area (1 MiB..), end, metadata area (4 KiB, mda bytes), end.
    l[72..80].copy_from_slice(&(1u64 << 20).to_le_bytes());
    l[104..112].copy_from_slice(&4096u64.to_le_bytes());
    l[112..120].copy_from_slice(&mda.to_le_bytes());
    let c = crc::lvm(&l[20..]);
    l[16..20].copy_from_slice(&c.to_le_bytes());
    let h = &mut d[4096..4608];
    h[4..20].copy_from_slice(b"\x20\x4c\x56\x4d\x32\x20\x78\x5b\x35\x41\x25\x72\x30\x4e\x2a\x3e");
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[24..32].copy_from_slice(&4096u64.to_le_bytes());
    h[32..40].copy_from_slice(&mda.to_le_bytes());
    h[40..48].copy_from_slice(&text_at.to_le_bytes());
    h[48..56].copy_from_slice(&(text.len() as u64).to_le_bytes());
    h[56..60].copy_from_slice(&crc::lvm(text).to_le_bytes());
    let c = crc::lvm(&h[4..]);
    h[0..4].copy_from_slice(&c.to_le_bytes());
    let area = 4096usize;
    let mda = usize::try_from(mda).unwrap();
    for (i, &b) in text.iter().enumerate() {
        let mut off = usize::try_from(text_at).unwrap() + i;
        if off >= mda {
            off = off - mda + 512;
        }
        d[area + off] = b;
    }
    d
}

const UUID: &str = "abcdefghijklmnopqrstuvwxyz012345";

fn vg_text(lv_body: &str, pv_id: &str) -> String {
    format!(
        "vg {{\nid = \"x\"\nseqno = 2\nextent_size = 8\nphysical_volumes {{\npv0 {{\nid = \"{pv_id}\"\npe_start = 2048\npe_count = 100\n}}\n}}\nlogical_volumes {{\nlv {{\nid = \"l\"\nstatus = [\"READ\"]\n{lv_body}\n}}\n}}\n}}\ncontents = \"Text Format Volume Group\"\n"
    )
}

const LINEAR: &str = "segment1 {\nstart_extent = 0\nextent_count = 4\ntype = \"striped\"\nstripe_count = 1\nstripes = [\"pv0\", 1]\n}";

#[test]
fn lvm_metadata_wrapping_round_the_circular_buffer_is_read() {
    let text = vg_text(LINEAR, "abcdef-ghij-klmn-opqr-stuv-wxyz-012345");
    let d = pv(UUID, 8192, text.as_bytes(), 8192 - 100);
    let l = layout(&d);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(l.scheme, Scheme::None);
    let vg = &l.volume_groups[0];
    assert_eq!(vg.lvs[0].size_bytes, 4 * 8 * 512);
    let r = l.open_lv(&d, 0, 0).unwrap();
    // pe_start 2048 sectors + extent 1 of 8 sectors.
    assert_eq!(r.disk_offset(0).unwrap(), (2048 + 8) * 512);
}

#[test]
fn lvm_hostile_metadata_gives_warnings_or_errors_naming_the_field() {
    let area = 4096u64;
    // Deep nesting: a parse error at its offset.
    let deep = format!("vg {{ {} }}", "a { ".repeat(10_000));
    let l = layout(&pv(UUID, 1 << 20, deep.as_bytes(), 512));
    let w = warned(&l, "LVM metadata text");
    assert!(w.message.contains("deeper"), "{w}");
    assert!(
        w.offset_bytes > area + 512 && w.offset_bytes < area + 512 + 200,
        "{w}"
    );
    // A raw_locn claiming more than the area.
    let mut d = pv(UUID, 8192, b"vg { }", 512);
    let h = &mut d[usize::try_from(area).unwrap()..][..512];
    h[48..56].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let l = layout(&d);
    assert!(warned(&l, "LVM mda_header").message.contains("checksum"));
    let h = &mut d[usize::try_from(area).unwrap()..][..512];
    let c = crc::lvm(&h[4..]);
    h[0..4].copy_from_slice(&c.to_le_bytes());
    let l = layout(&d);
    assert_eq!(warned(&l, "LVM raw_locn").offset_bytes, area + 40);
    // Huge extent counts and offsets: the LV refuses to open, no panic.
    let huge = LINEAR.replace("extent_count = 4", "extent_count = 9223372036854775807");
    let l = layout(&pv(UUID, 1 << 20, vg_text(&huge, UUID).as_bytes(), 512));
    let e = l.open_lv(&d, 0, 0).unwrap_err();
    assert_eq!(invalid_field(&e).0, "LVM logical volume segment");
    let far = LINEAR.replace("[\"pv0\", 1]", "[\"pv0\", 9223372036854775807]");
    let l = layout(&pv(UUID, 1 << 20, vg_text(&far, UUID).as_bytes(), 512));
    assert!(l.open_lv(&d, 0, 0).is_err());
    // Striped without a stripe size, and an unsupported type.
    let bad = LINEAR.replace("[\"pv0\", 1]", "[\"pv0\", 1, \"pv0\", 50]");
    let l = layout(&pv(UUID, 1 << 20, vg_text(&bad, UUID).as_bytes(), 512));
    assert!(invalid_field(&l.open_lv(&d, 0, 0).unwrap_err()).1 == 0);
    let thin = LINEAR.replace("\"striped\"", "\"thin\"");
    let l = layout(&pv(UUID, 1 << 20, vg_text(&thin, UUID).as_bytes(), 512));
    assert!(l.volume_groups[0].lvs[0].segments[0].note.is_some());
    assert!(matches!(
        l.open_lv(&d, 0, 0).unwrap_err(),
        FormatError::Unsupported { .. }
    ));
    // A PV the metadata names that is not here.
    let text = vg_text(LINEAR, "zzzzzz-zzzz-zzzz-zzzz-zzzz-zzzz-zzzzzz");
    let d = pv(UUID, 1 << 20, text.as_bytes(), 512);
    let l = layout(&d);
    assert_eq!(l.volume_groups[0].missing_pvs, ["pv0"]);
    let r = l.open_lv(&d, 0, 0).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        r.read_at(&mut buf, 0).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    // A bad text checksum.
    let mut d = pv(UUID, 1 << 20, vg_text(LINEAR, UUID).as_bytes(), 512);
    d[usize::try_from(area).unwrap() + 600] ^= 1;
    assert!(warned(&layout(&d), "LVM raw_locn.checksum").offset_bytes == area + 56);
}

/// A small deterministic mutation run (the `volumes` fuzz target's invariants, without
/// libFuzzer): flipped bytes in the table and metadata regions of the hand-made GPT, MBR
/// chain and LVM PV never panic, and every slot and LV opens or fails cleanly.
#[test]
fn mutated_tables_and_metadata_never_panic() {
    let text = vg_text(LINEAR, "abcdef-ghij-klmn-opqr-stuv-wxyz-012345");
    let mut mbr = vec![0u8; 2048 * 512];
    put_entry(&mut mbr, 0, 0, 0x05, 100, 1000);
    put_entry(&mut mbr, 100, 0, 0x83, 10, 10);
    put_entry(&mut mbr, 100, 1, 0x05, 50, 100);
    put_entry(&mut mbr, 150, 0, 0x83, 10, 10);
    // Each image with the byte ranges worth mutating (tables, headers, metadata).
    type Base<'a> = (Vec<u8>, &'a [(usize, usize)]);
    let bases: [Base; 3] = [
        (
            gpt(4096, &[(34, 99), (100, 4000)], |_| {}),
            &[(0, 3 * 512), ((4096 - 33) * 512, 4096 * 512)],
        ),
        (
            mbr,
            &[(0, 512), (100 * 512, 101 * 512), (150 * 512, 151 * 512)],
        ),
        (
            pv(UUID, 8192, text.as_bytes(), 512),
            &[(512, 1024), (4096, 4096 + 512 + 600)],
        ),
    ];
    let mut x = 0x1234_5678_9abc_def1u64;
    for round in 0..1500 {
        let (base, regions) = &bases[round % 3];
        let mut d = base.clone();
        for _ in 0..1 + round % 4 {
            let r = crate::test_support::xorshift(&mut x);
            let (a, b) = regions[(r % regions.len() as u64) as usize];
            let at = a + (r >> 16) as usize % (b - a);
            d[at] = (r >> 8) as u8;
        }
        let l = layout(&d);
        for i in 0..l.slots.len().min(32) {
            if let Ok(v) = l.open_volume(&d, i) {
                let mut buf = [0u8; 1024];
                if let Ok(n) = v.read_at(&mut buf, 0) {
                    assert_eq!(n as u64, v.size().min(1024));
                }
            }
        }
        for (g, vg) in l.volume_groups.iter().enumerate() {
            for k in 0..vg.lvs.len().min(8) {
                if let Ok(r) = l.open_lv(&d, g, k) {
                    let mut buf = [0u8; 1024];
                    let _ = r.read_at(&mut buf, r.size() / 2);
                }
            }
        }
        serde_json::to_string(&l).unwrap();
    }
}
