//! VHDX reader tests against images made by qemu-img / qemu-io.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use super::*;
use crate::test_support::{have, run_args as run, sha, source_chunks};

/// A deterministic source: pseudo-random MiBs with zero MiBs between, and a tail that
/// ends mid-block.
fn source(len: usize) -> Vec<u8> {
    source_chunks(len, 0x9E37_79B9_7F4A_7C15, 1 << 20, |i| i % 3 == 1)
}

fn read_all(img: &Vhdx) -> Vec<u8> {
    let mut out = vec![0u8; img.size() as usize];
    // Odd-sized reads so spans cross block boundaries.
    let step = 3 * 1024 * 1024 + 4097;
    let mut at = 0usize;
    while at < out.len() {
        let end = (at + step).min(out.len());
        let n = img.read_at(&mut out[at..end], at as u64).unwrap();
        assert_eq!(n, end - at);
        at = end;
    }
    let mut tail = [0u8; 16];
    assert_eq!(img.read_at(&mut tail, img.size()).unwrap(), 0);
    out
}

fn random_reads(img: &Vhdx, expected: &[u8]) {
    let mut x: u64 = 12345;
    for _ in 0..200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = (x >> 16) as usize % expected.len();
        let len = ((x >> 40) as usize % 300_000) + 1;
        let mut buf = vec![0u8; len];
        let n = img.read_at(&mut buf, off as u64).unwrap();
        let want = len.min(expected.len() - off);
        assert_eq!(n, want);
        assert_eq!(&buf[..n], &expected[off..off + n], "read {len} at {off}");
    }
    // A short read at the end.
    let mut buf = vec![0u8; 100];
    let off = expected.len() as u64 - 10;
    assert_eq!(img.read_at(&mut buf, off).unwrap(), 10);
}

/// Converts `src` to a vhdx with `opts`; returns its path.
fn convert(dir: &Path, raw: &Path, name: &str, opts: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["convert", "-f", "raw", "-O", "vhdx"];
    args.extend_from_slice(opts);
    args.push(raw.to_str().unwrap());
    args.push(out.to_str().unwrap());
    run("qemu-img", &args);
    out
}

fn setup(len: usize) -> Option<(tempfile::TempDir, PathBuf, Vec<u8>)> {
    if !have("qemu-img") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = source(len);
    let raw = dir.path().join("src.raw");
    std::fs::write(&raw, &data).unwrap();
    Some((dir, raw, data))
}

fn check_variant(opts: &[&str], variant: &str) {
    let Some((dir, raw, data)) = setup(7 * 1024 * 1024 + 512 * 3) else {
        return;
    };
    let img_path = convert(dir.path(), &raw, "t.vhdx", opts);
    let img = Vhdx::open(&img_path).unwrap();
    assert_eq!(img.size(), data.len() as u64);
    assert_eq!(img.info().variant.as_deref(), Some(variant));
    assert_eq!(sha(&read_all(&img)), sha(&data), "{opts:?}");
    random_reads(&img, &data);
    // Through the crate's dispatcher too.
    let boxed = crate::open(&img_path).unwrap();
    assert_eq!(boxed.info().format, "vhdx");
}

#[test]
fn vhdx_dynamic_default_matches_source() {
    check_variant(&[], "dynamic");
}

#[test]
fn vhdx_dynamic_1m_blocks_matches_source() {
    check_variant(&["-o", "block_size=1M"], "dynamic");
}

#[test]
fn vhdx_fixed_matches_source() {
    check_variant(&["-o", "subformat=fixed"], "fixed");
}

#[test]
fn vhdx_log_size_1m_matches_source() {
    check_variant(&["-o", "log_size=1M,block_size=2M"], "dynamic");
}

#[test]
fn vhdx_crc32c_known_value() {
    // RFC 3720 B.4: 32 bytes of zeros.
    assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

/// qemu-io writes into the image; compare to qemu-img's own raw conversion.
#[test]
fn vhdx_qemu_io_write_matches_qemu_raw() {
    let Some((dir, raw, _data)) = setup(6 * 1024 * 1024) else {
        return;
    };
    if !have("qemu-io") {
        return;
    }
    let img_path = convert(dir.path(), &raw, "w.vhdx", &["-o", "block_size=1M"]);
    run(
        "qemu-io",
        &[
            "-f",
            "vhdx",
            "-c",
            "write -P 0x5a 3M 128k",
            "-c",
            "write -P 0xa5 1048000 9000",
            img_path.to_str().unwrap(),
        ],
    );
    let back = dir.path().join("back.raw");
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "vhdx",
            "-O",
            "raw",
            img_path.to_str().unwrap(),
            back.to_str().unwrap(),
        ],
    );
    let want = std::fs::read(&back).unwrap();
    let img = Vhdx::open(&img_path).unwrap();
    assert_eq!(sha(&read_all(&img)), sha(&want));
    random_reads(&img, &want);
}

/// The header's LogGuid of `path`'s current header.
fn current_header(path: &Path) -> Header {
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    read_active_header(path, &f, len).unwrap()
}

/// A real log: qemu writes a BAT update through its log (then flushes it and clears the
/// header's LogGuid on close). Putting that entry's LogGuid back into the headers makes
/// the log live again; zeroing the BAT entry on disk shows that the in-memory replay is
/// what restores the block, and the file is never written.
#[test]
fn vhdx_dirty_log_replayed_in_memory() {
    let Some((dir, raw, data)) = setup(4 * 1024 * 1024) else {
        return;
    };
    if !have("qemu-io") {
        return;
    }
    let img_path = convert(dir.path(), &raw, "d.vhdx", &["-o", "block_size=1M"]);
    // Block 1 (1-2 MiB) is all zeros in the source, so not allocated: the write allocates.
    run(
        "qemu-io",
        &[
            "-f",
            "vhdx",
            "-c",
            "write -P 0x5a 1M 128k",
            img_path.to_str().unwrap(),
        ],
    );
    let mut want = data.clone();
    want[1 << 20..(1 << 20) + 128 * 1024].fill(0x5a);
    let mut bytes = std::fs::read(&img_path).unwrap();
    let h = current_header(&img_path);
    assert_eq!(h.log_guid, [0; 16], "qemu closed the image cleanly");
    // qemu starts each session's log at its beginning with a new LogGuid: the entry at
    // 0 is qemu-io's, and its data sector is the BAT sector with block 1 allocated.
    let lo = h.log_offset as usize;
    let newest = 0usize;
    assert_eq!(&bytes[lo..lo + 4], b"loge");
    assert_eq!(u64_at(&bytes, lo + 4096 + 8) & 7, PAYLOAD_FULLY_PRESENT);
    let guid = guid_at(&bytes, lo + newest + 32);
    for at in HEADER_OFFSETS {
        let at = at as usize;
        bytes[at + 48..at + 64].copy_from_slice(&guid);
        bytes[at + 4..at + 8].fill(0);
        let c = crc32c(&bytes[at..at + HEADER_BYTES]);
        bytes[at + 4..at + 8].copy_from_slice(&c.to_le_bytes());
    }
    // Undo the BAT update on disk: only the log still has it.
    let (bat, _) = region_entries(&bytes);
    let e1 = u64_at(&bytes, bat + 16) as usize + 8;
    assert_eq!(u64_at(&bytes, e1) & 7, PAYLOAD_FULLY_PRESENT);
    bytes[e1..e1 + 8].fill(0);
    let stale = dir.path().join("stale.vhdx");
    std::fs::write(&stale, &bytes).unwrap();

    let img = Vhdx::open(&stale).unwrap();
    let notes = img.info().notes;
    assert!(
        notes.iter().any(|n| n.contains("replayed in memory")),
        "{notes:?}"
    );
    assert_eq!(sha(&read_all(&img)), sha(&want));
    drop(img);
    assert_eq!(
        std::fs::read(&stale).unwrap(),
        bytes,
        "the file must not change"
    );

    // The same log with a corrupted entry: no valid sequence, refused naming the log.
    let mut bad = bytes.clone();
    bad[lo + newest + 100] ^= 0xff;
    let off = expect_invalid(open_bytes(dir.path(), &bad), "vhdx log");
    assert_eq!(off, lo as u64);
}

// ----- hostile variants -----

fn small_image() -> Option<(tempfile::TempDir, PathBuf, Vec<u8>)> {
    let (dir, raw, _) = setup(3 * 1024 * 1024)?;
    let p = convert(dir.path(), &raw, "h.vhdx", &["-o", "block_size=1M"]);
    let bytes = std::fs::read(&p).unwrap();
    Some((dir, p, bytes))
}

fn open_bytes(dir: &Path, bytes: &[u8]) -> Result<Vhdx, FormatError> {
    let p = dir.join("hostile.vhdx");
    std::fs::write(&p, bytes).unwrap();
    Vhdx::open(&p)
}

fn expect_invalid(r: Result<Vhdx, FormatError>, field_part: &str) -> u64 {
    match r {
        Err(FormatError::Invalid {
            offset,
            field,
            reason,
            ..
        }) => {
            assert!(field.contains(field_part), "field {field}: {reason}");
            offset
        }
        other => panic!("expected Invalid {field_part}, got {other:?}"),
    }
}

/// Rewrites a region table's CRC after an edit.
fn fix_region_crc(bytes: &mut [u8], at: usize) {
    bytes[at + 4..at + 8].fill(0);
    let c = crc32c(&bytes[at..at + REGION_BYTES]);
    bytes[at + 4..at + 8].copy_from_slice(&c.to_le_bytes());
}

/// The (BAT, metadata) region table entries' positions in the first region table.
fn region_entries(bytes: &[u8]) -> (usize, usize) {
    let t = REGION_OFFSETS[0] as usize;
    let mut bat = 0;
    let mut meta = 0;
    for i in 0..u32_at(bytes, t + 8) as usize {
        let at = t + 16 + i * 32;
        if guid_at(bytes, at) == BAT_REGION {
            bat = at;
        } else if guid_at(bytes, at) == METADATA_REGION {
            meta = at;
        }
    }
    (bat, meta)
}

#[test]
fn vhdx_hostile_both_headers_bad() {
    let Some((dir, _, mut bytes)) = small_image() else {
        return;
    };
    bytes[64 * 1024 + 100] ^= 1;
    bytes[128 * 1024] = b'x';
    let off = expect_invalid(open_bytes(dir.path(), &bytes), "header.checksum");
    assert_eq!(off, 64 * 1024);
    // One bad header is fine.
    bytes[128 * 1024] = b'h';
    assert!(open_bytes(dir.path(), &bytes).is_ok());
}

#[test]
fn vhdx_hostile_region_overlapping_headers() {
    let Some((dir, _, mut bytes)) = small_image() else {
        return;
    };
    let (bat, _) = region_entries(&bytes);
    for t in REGION_OFFSETS {
        let at = bat - REGION_OFFSETS[0] as usize + t as usize;
        bytes[at + 16..at + 24].copy_from_slice(&(64u64 * 1024).to_le_bytes());
        fix_region_crc(&mut bytes, t as usize);
    }
    let off = expect_invalid(
        open_bytes(dir.path(), &bytes),
        "region table entry.file_offset",
    );
    assert_eq!(off, bat as u64 + 16);
}

#[test]
fn vhdx_hostile_bat_entry_past_end() {
    let Some((dir, _, mut bytes)) = small_image() else {
        return;
    };
    let (bat, _) = region_entries(&bytes);
    let bat_off = u64_at(&bytes, bat + 16) as usize;
    let entry = (1u64 << 40) | PAYLOAD_FULLY_PRESENT;
    bytes[bat_off..bat_off + 8].copy_from_slice(&entry.to_le_bytes());
    let img = open_bytes(dir.path(), &bytes).unwrap();
    let mut buf = vec![0u8; 4096];
    let err = img.read_at(&mut buf, 0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("byte {bat_off}")) && msg.contains("file_offset"),
        "{msg}"
    );
    // Pointing at the headers is refused too.
    let entry = (64u64 * 1024) | PAYLOAD_FULLY_PRESENT;
    bytes[bat_off..bat_off + 8].copy_from_slice(&entry.to_le_bytes());
    let img = open_bytes(dir.path(), &bytes).unwrap();
    assert!(img.read_at(&mut buf, 0).is_err());
}

/// The metadata table's offset and the file parameters item's offset.
fn metadata_at(bytes: &[u8]) -> (usize, usize) {
    let (_, meta) = region_entries(bytes);
    let m = u64_at(bytes, meta + 16) as usize;
    for i in 0..u16_at(bytes, m + 10) as usize {
        let at = m + 32 + i * 32;
        if guid_at(bytes, at) == FILE_PARAMETERS {
            return (m, m + u32_at(bytes, at + 16) as usize);
        }
    }
    panic!("no file parameters");
}

#[test]
fn vhdx_hostile_block_size_3m() {
    let Some((dir, _, mut bytes)) = small_image() else {
        return;
    };
    let (_, fp) = metadata_at(&bytes);
    bytes[fp..fp + 4].copy_from_slice(&(3u32 << 20).to_le_bytes());
    let off = expect_invalid(open_bytes(dir.path(), &bytes), "block_size");
    assert_eq!(off, fp as u64);
}

#[test]
fn vhdx_hostile_metadata_entry_count_absurd() {
    let Some((dir, _, mut bytes)) = small_image() else {
        return;
    };
    let (m, _) = metadata_at(&bytes);
    bytes[m + 10..m + 12].copy_from_slice(&u16::MAX.to_le_bytes());
    let off = expect_invalid(open_bytes(dir.path(), &bytes), "metadata table.entry_count");
    assert_eq!(off, m as u64 + 10);
}

#[test]
fn vhdx_hostile_truncated_and_garbage() {
    let Some((dir, _, bytes)) = small_image() else {
        return;
    };
    for cut in [
        0usize,
        7,
        4096,
        70_000,
        200_000,
        300_000,
        1 << 20,
        bytes.len() - 4096,
    ] {
        let r = open_bytes(dir.path(), &bytes[..cut]);
        match r {
            Err(FormatError::Invalid { .. }) => {}
            Ok(img) => {
                // Opened: every read either works or fails cleanly.
                let mut buf = vec![0u8; 1 << 20];
                for off in (0..img.size()).step_by(1 << 20) {
                    let _ = img.read_at(&mut buf, off);
                }
            }
            Err(e) => panic!("cut at {cut}: {e:?}"),
        }
    }
    // A dirty LogGuid with a log of garbage: refused, naming the log.
    let mut b = bytes.clone();
    let h = 64 * 1024;
    b[h + 48] = 1;
    b[h + 4..h + 8].fill(0);
    let c = crc32c(&b[h..h + 4096]);
    b[h + 4..h + 8].copy_from_slice(&c.to_le_bytes());
    let hseq = u64_at(&b, h + 8);
    let other = u64_at(&b, 128 * 1024 + 8);
    if hseq > other {
        let lo = u64_at(&b, h + 72) as usize;
        b[lo..lo + 4096].fill(0xee);
        let off = expect_invalid(open_bytes(dir.path(), &b), "vhdx log");
        assert_eq!(off, lo as u64);
    }
}

/// The committed fuzz seeds are valid images: they read as qemu-img reads them.
#[test]
fn vhdx_fuzz_seeds_match_qemu() {
    if !have("qemu-img") {
        return;
    }
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/image_vhdx");
    let Ok(dir) = std::fs::read_dir(&seeds) else {
        eprintln!("no seeds at {}", seeds.display());
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for entry in dir {
        let p = entry.unwrap().path();
        let back = tmp.path().join("back.raw");
        run(
            "qemu-img",
            &[
                "convert",
                "-f",
                "vhdx",
                "-O",
                "raw",
                p.to_str().unwrap(),
                back.to_str().unwrap(),
            ],
        );
        let img = Vhdx::open(&p).unwrap();
        assert_eq!(
            read_all(&img),
            std::fs::read(&back).unwrap(),
            "{}",
            p.display()
        );
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Turns qemu's dynamic `child` into a differencing disk of the parent whose
/// DataWriteGuid is `linkage`, found at `relative`: HasParent, a VHDX parent locator, a
/// sector bitmap for chunk 0 marking `present_sectors`, and block `partial` made
/// PARTIALLY_PRESENT, blocks in `absent` NOT_PRESENT.
fn make_differencing(
    child: &mut Vec<u8>,
    linkage: &str,
    relative: &str,
    partial: u64,
    present_sectors: std::ops::Range<u64>,
    absent: &[u64],
) {
    let (bat, _) = region_entries(child);
    let bat_off = u64_at(child, bat + 16) as usize;
    let (m, fp) = metadata_at(child);
    child[fp + 4] |= 2;
    // The parent locator item, 512 KiB into the metadata region.
    let count = u16_at(child, m + 10) as usize;
    let e = m + 32 + count * 32;
    child[m + 10..m + 12].copy_from_slice(&((count + 1) as u16).to_le_bytes());
    let item_rel = 512 * 1024u32;
    let pairs = [
        ("parent_linkage", linkage.to_string()),
        ("relative_path", relative.to_string()),
    ];
    let mut item = Vec::new();
    item.extend_from_slice(&VHDX_PARENT_LOCATOR_TYPE);
    item.extend_from_slice(&0u16.to_le_bytes());
    item.extend_from_slice(&(pairs.len() as u16).to_le_bytes());
    let mut data = Vec::new();
    let data_start = 20 + pairs.len() * 12;
    for (k, v) in &pairs {
        let (k, v) = (utf16(k), utf16(v));
        let ko = data_start + data.len();
        data.extend_from_slice(&k);
        let vo = data_start + data.len();
        data.extend_from_slice(&v);
        item.extend_from_slice(&(ko as u32).to_le_bytes());
        item.extend_from_slice(&(vo as u32).to_le_bytes());
        item.extend_from_slice(&(k.len() as u16).to_le_bytes());
        item.extend_from_slice(&(v.len() as u16).to_le_bytes());
    }
    item.extend_from_slice(&data);
    child[e..e + 16].copy_from_slice(&PARENT_LOCATOR);
    child[e + 16..e + 20].copy_from_slice(&item_rel.to_le_bytes());
    child[e + 20..e + 24].copy_from_slice(&(item.len() as u32).to_le_bytes());
    child[e + 24..e + 28].copy_from_slice(&(4u32 | 2).to_le_bytes());
    let at = m + item_rel as usize;
    child[at..at + item.len()].copy_from_slice(&item);
    // The sector bitmap block, appended (1 MiB-aligned), and its BAT entry (chunk 0).
    let end = child.len().div_ceil(1 << 20) * (1 << 20);
    child.resize(end + (1 << 20), 0);
    for s in present_sectors {
        child[end + (s / 8) as usize] |= 1 << (s % 8);
    }
    let chunk_ratio = (1u64 << 23) * 512 / (1 << 20);
    let sb = bat_off + chunk_ratio as usize * 8;
    child[sb..sb + 8].copy_from_slice(&((end as u64) | SB_PRESENT).to_le_bytes());
    let pe = bat_off + partial as usize * 8;
    let entry = u64_at(child, pe);
    assert_eq!(
        entry & 7,
        PAYLOAD_FULLY_PRESENT,
        "qemu allocated block {partial}"
    );
    child[pe..pe + 8].copy_from_slice(&((entry & !7) | PAYLOAD_PARTIALLY_PRESENT).to_le_bytes());
    for &b in absent {
        let at = bat_off + b as usize * 8;
        child[at..at + 8].fill(0);
    }
}

/// qemu-img cannot make differencing VHDX: the child is qemu's dynamic image turned into
/// one by hand (see `make_differencing`); the parent is qemu's.
#[test]
fn vhdx_differencing_reads_parent_and_bitmap() {
    let Some((dir, raw, data)) = setup(4 * 1024 * 1024) else {
        return;
    };
    if !have("qemu-io") {
        return;
    }
    let parent = convert(dir.path(), &raw, "parent.vhdx", &["-o", "block_size=1M"]);
    let linkage = format!(
        "{{{}}}",
        crate::bytes::guid_text(&current_header(&parent).data_write_guid)
    )
    .to_uppercase();
    let child_path = dir.path().join("child.vhdx");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vhdx",
            "-o",
            "block_size=1M",
            child_path.to_str().unwrap(),
            "4M",
        ],
    );
    run(
        "qemu-io",
        &[
            "-f",
            "vhdx",
            "-c",
            "write -P 0x11 0 1M",
            "-c",
            "write -P 0x22 2098688 4096",
            child_path.to_str().unwrap(),
        ],
    );
    let pristine = std::fs::read(&child_path).unwrap();
    // Block 2 starts at sector 4096 of chunk 0; the write covers sectors 4099..4107.
    let mut child = pristine.clone();
    make_differencing(
        &mut child,
        &linkage,
        ".\\parent.vhdx",
        2,
        4099..4107,
        &[1, 3],
    );
    std::fs::write(&child_path, &child).unwrap();
    let mut want = data.clone();
    want[..1 << 20].fill(0x11);
    want[2098688..2098688 + 4096].fill(0x22);
    let img = Vhdx::open(&child_path).unwrap();
    let info = img.info();
    assert_eq!(info.variant.as_deref(), Some("differencing"));
    assert_eq!(info.backing.as_ref().unwrap().format, "vhdx");
    assert_eq!(sha(&read_all(&img)), sha(&want));
    random_reads(&img, &want);

    // A parent that is not the one the child was made from.
    let mut wrong = pristine.clone();
    make_differencing(
        &mut wrong,
        "{00000000-1111-2222-3333-444444444444}",
        "parent.vhdx",
        2,
        4099..4107,
        &[],
    );
    let off = expect_invalid(open_bytes(dir.path(), &wrong), "parent_linkage");
    assert_eq!(off, 0);
    // A child that names itself as parent: a loop.
    let mut looped = pristine.clone();
    make_differencing(&mut looped, &linkage, "hostile.vhdx", 2, 4099..4107, &[]);
    expect_invalid(open_bytes(dir.path(), &looped), "backing chain");
}
