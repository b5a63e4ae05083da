#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use super::*;
use crate::windows::test_hives::{build_hive, have_hivex, oracle, MINIMAL, SPECIAL};
use std::fmt::Write as _;

fn hex_or_dash(b: &[u8]) -> String {
    if b.is_empty() {
        "-".into()
    } else {
        hex::encode(b)
    }
}

fn ticks(t: Option<Timestamp>) -> u64 {
    t.map_or(0, |t| {
        (t.secs + 11_644_473_600) as u64 * 10_000_000 + u64::from(t.nanos / 100)
    })
}

/// Our listing of `bytes` in the oracle's format.
fn ours(bytes: &[u8]) -> String {
    let hive = Hive::open(bytes).unwrap();
    let (keys, errors) = hive.walk(100_000);
    assert!(errors.is_empty(), "{errors:?}");
    let mut out = String::new();
    for (path, key) in keys {
        let p = hex_or_dash(path.as_bytes());
        writeln!(out, "K {p} {}", ticks(key.last_written())).unwrap();
        for v in key.values() {
            let v = v.unwrap();
            let data = v.data().unwrap();
            writeln!(
                out,
                "V {p} {} {} {}",
                hex_or_dash(v.name.as_bytes()),
                v.data_type,
                hex_or_dash(&data)
            )
            .unwrap();
        }
    }
    out
}

#[test]
fn windows_written_hive_matches_hivex() {
    if !have_hivex() {
        return;
    }
    assert_eq!(ours(SPECIAL), oracle(SPECIAL));
    let hive = Hive::open(SPECIAL).unwrap();
    assert!(hive.base.checksum_ok());
    assert!(!hive.base.dirty());
    let k = hive.key("ZERO\0KEY").unwrap();
    assert_eq!(k.value("zero\0val").unwrap().number(), Some(0));
}

#[test]
fn hivex_written_hive_matches_hivex() {
    if !have_hivex() {
        return;
    }
    let mut many = String::new();
    for i in 0..700 {
        writeln!(many, "\"v{i}\"=dword:{i:08x}").unwrap();
    }
    let mut sections: Vec<(String, String)> = vec![
        (
            "Microsoft\\Windows\\CurrentVersion\\Run".into(),
            concat!(
                "\"Updater\"=\"C:\\\\Users\\\\Public\\\\upd.exe -q\"\n",
                "\"Num\"=dword:0000002a\n",
                "\"Q\"=hex(b):01,02,03,04,05,06,07,08\n",
                "\"Multi\"=hex(7):61,00,62,00,00,00,63,00,00,00,00,00\n",
                "\"Exp\"=hex(2):25,00,54,00,45,00,4d,00,50,00,25,00,00,00\n",
                "\"Bin\"=hex:de,ad,be,ef,00\n",
                "\"Ünïcødé ☃\"=\"snow ☃ man\"\n",
                "\"Empty\"=hex:\n",
                "@=\"default\"",
            )
            .into(),
        ),
        ("Many".into(), many),
    ];
    for i in 0..300 {
        sections.push((format!("Many\\Sub{i:03}"), String::new()));
    }
    let refs: Vec<(&str, &str)> = sections
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let bytes = build_hive(&refs);
    assert_eq!(ours(&bytes), oracle(&bytes));

    let hive = Hive::open(&bytes).unwrap();
    let run = hive.key("microsoft\\WINDOWS\\CurrentVersion\\Run").unwrap();
    assert_eq!(
        run.value("updater").unwrap().string().unwrap(),
        "C:\\Users\\Public\\upd.exe -q"
    );
    assert_eq!(run.value("Num").unwrap().number(), Some(42));
    assert_eq!(
        run.value("Q").unwrap().number(),
        Some(0x0807_0605_0403_0201)
    );
    assert_eq!(
        run.value("Multi").unwrap().strings().unwrap(),
        vec!["ab", "c"]
    );
    assert_eq!(run.value("Exp").unwrap().string().unwrap(), "%TEMP%");
    assert_eq!(run.value("").unwrap().string().unwrap(), "default");
    // hivexregedit reads .reg text as bytes (each UTF-8 byte one character): the oracle
    // comparison above covers how the name and data were stored.
    assert!(run.value("Ünïcødé ☃").is_some() || run.values().len() == 9);
    assert_eq!(hive.key("Many").unwrap().subkeys().len(), 300);
    assert_eq!(hive.key("Many").unwrap().values().len(), 700);
    assert!(hive.key("Many\\Sub299").is_some());
    assert!(hive.key("Many\\Sub300").is_none());
    assert!(hive.key("Many").unwrap().security_descriptor().is_some());
}

#[test]
fn base_block_checksum_and_dirty_state() {
    let hive = Hive::open(MINIMAL).unwrap();
    assert!(hive.base.checksum_ok(), "{:?}", hive.base);
    assert!(!hive.base.dirty());
    let mut b = MINIMAL.to_vec();
    b[8] ^= 1; // secondary sequence number: dirty, and the checksum no longer matches
    let hive = Hive::open(&b).unwrap();
    assert!(hive.base.dirty());
    assert!(!hive.base.checksum_ok());
    assert_eq!(
        Hive::open(&b[..100]).unwrap_err(),
        RegfError::TooShort { len: 100 }
    );
    b[0] = b'x';
    assert!(matches!(
        Hive::open(&b),
        Err(RegfError::BadSignature { .. })
    ));
}

/// A hand-made hive: root with one value whose 40,000 bytes of data live in `db`
/// segments (hivex does not write big data).
fn big_data_hive(segment_list_points_to_itself: bool) -> Vec<u8> {
    let mut b = MINIMAL.to_vec();
    let root = u32::from_le_bytes(b[36..40].try_into().unwrap()) as usize + 4096;
    let mut cells: Vec<u8> = Vec::new();
    let base = b.len() - 4096 + 32; // after a new hbin header
    let add = |payload: &[u8], cells: &mut Vec<u8>| -> u32 {
        let off = base + cells.len();
        let size = (payload.len() + 4).div_ceil(8) * 8;
        cells.extend_from_slice(&(-(size as i32)).to_le_bytes());
        cells.extend_from_slice(payload);
        cells.resize(cells.len() + size - 4 - payload.len(), 0);
        off as u32
    };
    let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let s1 = add(&data[..16_344], &mut cells);
    let s2 = add(&data[16_344..32_688], &mut cells);
    let s3 = add(&data[32_688..], &mut cells);
    let list_off = (base + cells.len()) as u32;
    let mut list = Vec::new();
    for s in [
        s1,
        if segment_list_points_to_itself {
            s1
        } else {
            s2
        },
        s3,
    ] {
        list.extend_from_slice(&s.to_le_bytes());
    }
    assert_eq!(add(&list, &mut cells), list_off);
    let mut db = b"db".to_vec();
    db.extend_from_slice(&3u16.to_le_bytes());
    db.extend_from_slice(&list_off.to_le_bytes());
    let db_off = add(&db, &mut cells);
    let mut vk = b"vk".to_vec();
    vk.extend_from_slice(&3u16.to_le_bytes());
    vk.extend_from_slice(&40_000u32.to_le_bytes());
    vk.extend_from_slice(&db_off.to_le_bytes());
    vk.extend_from_slice(&REG_BINARY.to_le_bytes());
    vk.extend_from_slice(&1u16.to_le_bytes());
    vk.extend_from_slice(&0u16.to_le_bytes());
    vk.extend_from_slice(b"big");
    let vk_off = add(&vk, &mut cells);
    let vl_off = add(&vk_off.to_le_bytes(), &mut cells);
    let bin_len = (cells.len() + 32).div_ceil(4096) * 4096;
    let mut hbin = b"hbin".to_vec();
    hbin.extend_from_slice(&((b.len() - 4096) as u32).to_le_bytes());
    hbin.extend_from_slice(&(bin_len as u32).to_le_bytes());
    hbin.resize(32, 0);
    hbin.extend_from_slice(&cells);
    // The rest of the bin: one free cell.
    let rest = bin_len - hbin.len();
    hbin.extend_from_slice(&(rest as i32).to_le_bytes());
    hbin.resize(bin_len, 0);
    b.extend_from_slice(&hbin);
    b[root + 4 + 36..root + 4 + 40].copy_from_slice(&1u32.to_le_bytes());
    b[root + 4 + 40..root + 4 + 44].copy_from_slice(&vl_off.to_le_bytes());
    let _ = data;
    b
}

#[test]
fn big_data_segments_are_joined() {
    let b = big_data_hive(false);
    let hive = Hive::open(&b).unwrap();
    let v = hive.root().unwrap().value("big").unwrap();
    let data = v.data().unwrap();
    assert_eq!(data.len(), 40_000);
    assert!(data.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
    let b = big_data_hive(true);
    let hive = Hive::open(&b).unwrap();
    let err = hive
        .root()
        .unwrap()
        .value("big")
        .unwrap()
        .data()
        .unwrap_err();
    assert!(err.to_string().contains("repeats"), "{err}");
}

#[test]
fn hostile_hives_give_errors_not_panics() {
    let base = big_data_hive(false);
    // Every truncation, and bytes flipped all over: never a panic, walks end.
    for len in (0..base.len()).step_by(97) {
        if let Ok(h) = Hive::open(&base[..len]) {
            let (keys, _) = h.walk(10_000);
            for (_, k) in keys {
                for v in k.values().into_iter().flatten() {
                    let _ = v.data();
                }
            }
        }
    }
    let mut seed = 0x1234_5678u32;
    for _ in 0..300 {
        let mut b = base.clone();
        for _ in 0..20 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let i = 4096 + (seed as usize) % (b.len() - 4096);
            b[i] = (seed >> 16) as u8;
        }
        let h = Hive::open(&b).unwrap();
        let (keys, _) = h.walk(10_000);
        for (_, k) in keys {
            for v in k.values().into_iter().flatten() {
                let _ = v.data();
                let _ = v.strings();
            }
        }
    }
    // The root's subkey list made to point at itself as an ri: a cycle, reported.
    let mut b = MINIMAL.to_vec();
    let root = u32::from_le_bytes(b[36..40].try_into().unwrap());
    let r = root as usize + 4096 + 4;
    b[r + 20..r + 24].copy_from_slice(&1u32.to_le_bytes());
    b[r + 28..r + 32].copy_from_slice(&root.to_le_bytes());
    let h = Hive::open(&b).unwrap();
    let subs = h.root().unwrap().subkeys();
    assert!(
        matches!(
            subs.as_slice(),
            [Err(RegfError::Cell {
                structure: "subkey list",
                ..
            })]
        ),
        "{subs:?}"
    );
}
