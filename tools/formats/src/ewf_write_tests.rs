//! Tests of the EWF writer against libewf's tools (`ewfverify`, `ewfinfo`, `ewfexport`)
//! and our reader ([`crate::ewf::Ewf`]).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::panic
)]

use super::*;
use crate::ewf::Ewf;
use crate::test_support::{have_with, read_all, sha, source_chunks, xorshift};
use crate::{Image, ReadAt};
use std::process::Command;

/// Whether libewf's tools are here (a test is skipped, unless `VESTIGE_REQUIRE_TOOLS=1`).
fn tools_present() -> bool {
    have_with("ewfverify", "-V") && have_with("ewfinfo", "-V") && have_with("ewfexport", "-V")
}

/// 2026-11-26T00:35:31Z and an hour earlier.
const ACQUIRED: i64 = 1_795_653_331;
const SYSTEM: i64 = ACQUIRED - 3600;

fn metadata() -> EwfMetadata {
    EwfMetadata {
        case_number: "case-42".into(),
        evidence_number: "ev-7".into(),
        description: "desc\twith tab".into(),
        examiner_name: "examiner x".into(),
        notes: "line one\nline two".into(),
        acquisition_date_unix: ACQUIRED,
        system_date_unix: SYSTEM,
        acquiry_software: "vestige".into(),
        acquiry_software_version: "0.1.0".into(),
        acquiry_os: "Linux".into(),
        model: "WDC WD10EZEX".into(),
        serial_number: "WD-1234".into(),
    }
}

fn options(compression: EwfCompression, segment_bytes: u64) -> EwfOptions {
    EwfOptions {
        segment_bytes,
        compression,
        threads: 2,
        ..EwfOptions::default()
    }
}

/// Random 32 KiB runs with zero runs between them, `len` bytes.
fn source(len: usize, seed: u64) -> Vec<u8> {
    source_chunks(len, seed, 40_000, |i| i % 3 == 1)
}

/// Writes `data` as `dir/name.E01…` in pieces of `step` bytes.
fn write_image(
    dir: &Path,
    name: &str,
    data: &[u8],
    opts: &EwfOptions,
    unreadable: &[(u64, u64)],
    step: usize,
) -> (PathBuf, EwfSummary) {
    let first = dir.join(format!("{name}.E01"));
    let mut w = EwfWriter::create(&first, data.len() as u64, &metadata(), opts).unwrap();
    for &(s, n) in unreadable {
        w.mark_unreadable(s, n).unwrap();
    }
    for piece in data.chunks(step.max(1)) {
        w.write(piece).unwrap();
    }
    (first, w.finish().unwrap())
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.env("TZ", "UTC").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The value after `label` on its line in `text`.
fn value_of<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(str::trim)
}

/// `ewfverify` succeeds and computes the source's MD5 and SHA-1, equal to what we stored.
fn check_ewfverify(first: &Path, data: &[u8], summary: &EwfSummary) {
    let text = output(
        Command::new("ewfverify")
            .args(["-q", "-d", "sha1"])
            .arg(first),
    );
    let md5 = hex::encode(Md5::digest(data));
    let sha1 = hex::encode(Sha1::digest(data));
    assert_eq!(
        value_of(&text, "MD5 hash calculated over data:"),
        Some(md5.as_str()),
        "{text}"
    );
    assert_eq!(
        value_of(&text, "MD5 hash stored in file:"),
        Some(md5.as_str()),
        "{text}"
    );
    assert_eq!(
        value_of(&text, "SHA1 hash calculated over data:"),
        Some(sha1.as_str()),
        "{text}"
    );
    assert_eq!(
        value_of(&text, "SHA1 hash stored in file:"),
        Some(sha1.as_str()),
        "{text}"
    );
    assert!(text.contains("ewfverify: SUCCESS"), "{text}");
    assert_eq!(summary.md5, md5);
    assert_eq!(summary.sha1, sha1);
}

/// `ewfexport -f raw` gives back the source.
fn check_ewfexport(dir: &Path, first: &Path, data: &[u8]) {
    let target = dir.join("exported");
    output(
        Command::new("ewfexport")
            .args(["-u", "-q", "-f", "raw", "-t"])
            .arg(&target)
            .arg(first),
    );
    let raw = target.with_extension("raw");
    let back = std::fs::read(&raw).unwrap();
    assert!(
        back == data,
        "ewfexport gave {} bytes, not the source",
        back.len()
    );
    std::fs::remove_file(&raw).unwrap();
    let _ = std::fs::remove_file(target.with_extension("raw.info"));
}

/// Our reader gives the source's bytes and the hashes we stored.
fn check_reader(first: &Path, data: &[u8], summary: &EwfSummary) {
    let img = Ewf::open(first).unwrap();
    assert_eq!(img.size(), data.len() as u64);
    assert_eq!(sha(&read_all(&img, 100_000)), sha(data));
    let info = img.info();
    assert_eq!(info.files, summary.segments);
    assert_eq!(info.stored_hashes.get("md5"), Some(&summary.md5));
    assert_eq!(info.stored_hashes.get("sha1"), Some(&summary.sha1));
}

fn check_all(dir: &Path, first: &Path, data: &[u8], summary: &EwfSummary) {
    check_ewfverify(first, data, summary);
    check_ewfexport(dir, first, data);
    check_reader(first, data, summary);
}

#[test]
fn libewf_verifies_exports_and_shows_metadata() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // 3 MiB and 7 sectors: the last chunk is short.
    let data = source(3 * 1024 * 1024 + 7 * 512, 1);
    let opts = options(EwfCompression::Fast, DEFAULT_SEGMENT_BYTES);
    let (first, summary) = write_image(tmp.path(), "img", &data, &opts, &[], 10_000);
    assert_eq!(summary.segments, vec![first.clone()]);
    assert_eq!(summary.chunk_count, 97);
    assert!(summary.compressed_chunks > 0 && summary.compressed_chunks < 97);
    check_all(tmp.path(), &first, &data, &summary);

    let info = output(Command::new("ewfinfo").args(["-d", "iso8601"]).arg(&first));
    for (label, want) in [
        ("Case number:", "case-42"),
        ("Description:", "desc with tab"),
        ("Examiner name:", "examiner x"),
        ("Evidence number:", "ev-7"),
        ("Notes:", "line one line two"),
        ("Acquisition date:", "2026-11-26T00:35:31"),
        ("System date:", "2026-11-25T23:35:31"),
        ("Operating system used:", "Linux"),
        ("Software version used:", "vestige 0.1.0"),
        ("Model:", "WDC WD10EZEX"),
        ("Serial number:", "WD-1234"),
        ("File format:", "EnCase 6"),
        ("Sectors per chunk:", "64"),
        ("Compression level:", "good (fast) compression"),
        ("Media type:", "fixed disk"),
        ("Is physical:", "yes"),
        ("Bytes per sector:", "512"),
        ("Number of sectors:", "6151"),
    ] {
        assert_eq!(value_of(&info, label), Some(want), "{label} in\n{info}");
    }
    assert!(info.contains("(3149312 bytes)"), "{info}");
    // Our reader shows the same metadata.
    let notes = Ewf::open(&first).unwrap().info().notes;
    for note in [
        "case number: case-42",
        "examiner: examiner x",
        "model: WDC WD10EZEX",
        "acquired: 2026-11-26T00:35:31Z",
    ] {
        assert!(notes.iter().any(|n| n == note), "{note} not in {notes:?}");
    }
}

#[test]
fn several_segments_with_each_compression() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = source(1536 * 1024 + 3 * 512, 2);
    for (i, compression) in [
        EwfCompression::None,
        EwfCompression::Fast,
        EwfCompression::Best,
    ]
    .into_iter()
    .enumerate()
    {
        let opts = options(compression, 300 * 1024);
        let (first, summary) =
            write_image(tmp.path(), &format!("img{i}"), &data, &opts, &[], 4096 + 17);
        assert!(summary.segments.len() > 2, "{:?}", summary.segments);
        assert_eq!(
            summary.segments[1].extension().unwrap(),
            "E02",
            "{:?}",
            summary.segments
        );
        for s in &summary.segments {
            let len = std::fs::metadata(s).unwrap().len();
            assert!(len <= 300 * 1024, "{} is {len} bytes", s.display());
        }
        if compression == EwfCompression::None {
            assert_eq!(summary.compressed_chunks, 0);
        } else {
            assert!(summary.compressed_chunks > 0);
        }
        check_all(tmp.path(), &first, &data, &summary);
        let level = output(Command::new("ewfinfo").arg(&first));
        let want = match compression {
            EwfCompression::None => "no compression",
            EwfCompression::Fast => "good (fast) compression",
            EwfCompression::Best => "best compression",
        };
        assert_eq!(
            value_of(&level, "Compression level:"),
            Some(want),
            "{level}"
        );
    }
}

#[test]
fn one_sector_and_all_zero_media() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let one = source(512, 3);
    let opts = options(EwfCompression::Fast, DEFAULT_SEGMENT_BYTES);
    let (first, summary) = write_image(tmp.path(), "one", &one, &opts, &[], 512);
    assert_eq!(summary.chunk_count, 1);
    check_all(tmp.path(), &first, &one, &summary);

    let zeros = vec![0u8; 2 * 1024 * 1024 + 512];
    let (first, summary) = write_image(tmp.path(), "zeros", &zeros, &opts, &[], 1 << 20);
    assert_eq!(summary.compressed_chunks, summary.chunk_count);
    assert!(std::fs::metadata(&first).unwrap().len() < 64 * 1024);
    check_all(tmp.path(), &first, &zeros, &summary);
}

/// The writer can be moved to the thread that reads the source.
#[test]
fn writer_is_send() {
    fn send<T: Send>() {}
    send::<EwfWriter>();
}

#[test]
fn refuses_zero_size_and_partial_sectors() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("x.E01");
    let opts = EwfOptions::default();
    for (size, why) in [(0, "zero-size"), (1000, "488 bytes over")] {
        let e = EwfWriter::create(&first, size, &metadata(), &opts).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
        assert!(!first.exists());
    }
    let bad_name = tmp.path().join("x.raw");
    let e = EwfWriter::create(&bad_name, 512, &metadata(), &opts).unwrap_err();
    assert!(e.to_string().contains(".E01"), "{e}");
}

#[test]
fn unreadable_ranges_listed_by_ewfinfo() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = source(1024 * 1024, 4);
    let opts = options(EwfCompression::Fast, DEFAULT_SEGMENT_BYTES);
    // Out of order; 10..14 and 12..20 merge into 10..20.
    let ranges = [(10, 4), (2000, 48), (100, 1), (12, 8)];
    let (first, summary) = write_image(tmp.path(), "err", &data, &opts, &ranges, 65_536);
    check_all(tmp.path(), &first, &data, &summary);
    let text = output(Command::new("ewfinfo").arg("-e").arg(&first));
    let want = [
        "at sector(s): 10 - 19 number: 10",
        "at sector(s): 100 - 100 number: 1",
        "at sector(s): 2000 - 2047 number: 48",
    ];
    for w in want {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == w),
            "{w:?} not in\n{text}"
        );
    }
    assert_eq!(value_of(&text, "total number:"), Some("3"), "{text}");
    let notes = Ewf::open(&first).unwrap().info().notes;
    assert!(
        notes.iter().any(|n| n.contains("3 range(s), 59 sector(s)")),
        "{notes:?}"
    );
}

#[test]
fn unreadable_range_outside_media_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("x.E01");
    let mut w = EwfWriter::create(&first, 4096, &metadata(), &EwfOptions::default()).unwrap();
    assert!(w.mark_unreadable(7, 2).is_err());
    assert!(w.mark_unreadable(0, 0).is_err());
    assert!(w.mark_unreadable(u64::MAX, 2).is_err());
    w.mark_unreadable(7, 1).unwrap();
    // EWF1's error2 holds 32-bit sector numbers: a 3 TiB disk's late errors are refused.
    let big = tmp.path().join("big.E01");
    let mut w = EwfWriter::create(&big, 3 << 40, &metadata(), &EwfOptions::default()).unwrap();
    w.mark_unreadable(1 << 20, 8).unwrap();
    let e = w.mark_unreadable(u64::from(u32::MAX) - 3, 8).unwrap_err();
    assert!(e.to_string().contains("32-bit"), "{e}");
}

#[test]
fn refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("x.E01");
    std::fs::write(&first, b"precious").unwrap();
    let e = EwfWriter::create(&first, 4096, &metadata(), &EwfOptions::default()).unwrap_err();
    assert!(matches!(e, FormatError::Io { .. }), "{e}");
    assert_eq!(std::fs::read(&first).unwrap(), b"precious");

    // A later segment that exists already: the write that needs it fails.
    let second = tmp.path().join("y.E02");
    std::fs::write(&second, b"precious too").unwrap();
    let opts = EwfOptions {
        segment_bytes: 1,
        threads: 1,
        ..EwfOptions::default()
    };
    let data = source(4 * 32_768, 5);
    let mut w = EwfWriter::create(
        &tmp.path().join("y.E01"),
        data.len() as u64,
        &metadata(),
        &opts,
    )
    .unwrap();
    let result = w.write(&data).and_then(|()| w.finish().map(|_| ()));
    let e = result.unwrap_err();
    assert!(e.to_string().contains("y.E02"), "{e}");
    assert_eq!(std::fs::read(&second).unwrap(), b"precious too");
}

#[test]
fn short_and_long_streams_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = options(EwfCompression::Fast, DEFAULT_SEGMENT_BYTES);
    let mut w =
        EwfWriter::create(&tmp.path().join("s.E01"), 100 * 512, &metadata(), &opts).unwrap();
    w.write(&[1u8; 40 * 512]).unwrap();
    let e = w.finish().unwrap_err();
    assert!(
        e.to_string()
            .contains("20480 of 51200 media bytes arrived: 30720 missing"),
        "{e}"
    );

    let mut w = EwfWriter::create(&tmp.path().join("l.E01"), 2 * 512, &metadata(), &opts).unwrap();
    w.write(&[1u8; 512]).unwrap();
    let e = w.write(&[1u8; 600]).unwrap_err();
    assert!(e.to_string().contains("88 more bytes"), "{e}");
    // The writer is unusable after an error.
    assert!(w.write(&[1u8; 1]).is_err());
    assert!(w.finish().is_err());
}

#[test]
fn metadata_too_long_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = metadata();
    m.notes = "x".repeat(MAX_FIELD_CHARS + 1);
    let first = tmp.path().join("m.E01");
    let e = EwfWriter::create(&first, 512, &m, &EwfOptions::default()).unwrap_err();
    assert!(e.to_string().contains("ewf header.t"), "{e}");
    assert!(!first.exists());
}

#[test]
fn segment_names_after_e99() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // One 512-byte chunk per segment: 101 segments, .E01 … .E99, .EAA, .EAB.
    let data = source(101 * 512, 6);
    let opts = EwfOptions {
        segment_bytes: 1,
        sectors_per_chunk: 1,
        compression: EwfCompression::Fast,
        threads: 2,
        ..EwfOptions::default()
    };
    let (first, summary) = write_image(tmp.path(), "many", &data, &opts, &[], 3000);
    let names: Vec<String> = summary
        .segments
        .iter()
        .map(|p| p.extension().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 101);
    assert_eq!(&names[97..], ["E98", "E99", "EAA", "EAB"]);
    check_all(tmp.path(), &first, &data, &summary);
}

/// Counts the sections of each kind in a segment file (walking the descriptors).
fn section_kinds(path: &Path) -> Vec<String> {
    let d = std::fs::read(path).unwrap();
    let mut off = 13usize;
    let mut kinds = Vec::new();
    loop {
        let kind = String::from_utf8_lossy(&d[off..off + 16])
            .trim_end_matches('\0')
            .to_string();
        let next = u64::from_le_bytes(d[off + 16..off + 24].try_into().unwrap()) as usize;
        kinds.push(kind.clone());
        if kind == "done" || kind == "next" {
            return kinds;
        }
        off = next;
    }
}

#[test]
fn section_order_as_ewfacquire() {
    let tmp = tempfile::tempdir().unwrap();
    let data = source(64 * 1024, 7);
    let opts = options(EwfCompression::Fast, DEFAULT_SEGMENT_BYTES);
    let (first, _) = write_image(tmp.path(), "one", &data, &opts, &[], 9999);
    assert_eq!(
        section_kinds(&first),
        [
            "header2", "header2", "header", "volume", "sectors", "table", "table2", "data",
            "digest", "hash", "done"
        ]
    );
    let data = source(3 * 32 * 1024, 8);
    let opts = EwfOptions {
        segment_bytes: 1,
        ..opts
    };
    let (_, summary) = write_image(tmp.path(), "three", &data, &opts, &[(3, 1)], 9999);
    let kinds: Vec<Vec<String>> = summary.segments.iter().map(|p| section_kinds(p)).collect();
    assert_eq!(
        kinds[0],
        ["header2", "header2", "header", "volume", "sectors", "table", "table2", "next"]
    );
    assert_eq!(kinds[1], ["data", "sectors", "table", "table2", "next"]);
    assert_eq!(
        kinds[2],
        ["data", "sectors", "table", "table2", "error2", "digest", "hash", "done"]
    );
}

#[test]
fn table_split_at_entry_limit() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // 512-byte chunks: 65534 fill the first table, 10 more open a second sectors section.
    let sectors = MAX_TABLE_ENTRIES + 10;
    let data = source_chunks(sectors * 512, 9, 512, |i| i % 4 != 0);
    let opts = EwfOptions {
        sectors_per_chunk: 1,
        threads: 2,
        ..EwfOptions::default()
    };
    let (first, summary) = write_image(tmp.path(), "big", &data, &opts, &[], 1 << 20);
    let kinds = section_kinds(&first);
    assert_eq!(
        kinds.iter().filter(|k| *k == "sectors").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "table").count(),
        2,
        "{kinds:?}"
    );
    check_ewfverify(&first, &data, &summary);
    check_reader(&first, &data, &summary);
}

/// reader(writer(x)) == x, and ewfverify agrees, over random sizes, geometry, segment
/// sizes, compression, thread counts and write sizes.
#[test]
fn round_trip_random_sizes_and_options() {
    let tools = tools_present();
    let tmp = tempfile::tempdir().unwrap();
    let mut x = 0x0123_4567_89ab_cdefu64;
    for case in 0..16 {
        let bytes_per_sector = [512u32, 512, 4096][(xorshift(&mut x) % 3) as usize];
        let sectors_per_chunk = [1u32, 8, 64, 128][(xorshift(&mut x) % 4) as usize];
        let sectors = 1 + xorshift(&mut x) % 1500;
        let len = (sectors * u64::from(bytes_per_sector)) as usize;
        let compression = [
            EwfCompression::None,
            EwfCompression::Fast,
            EwfCompression::Best,
        ][(xorshift(&mut x) % 3) as usize];
        let opts = EwfOptions {
            segment_bytes: 1 + xorshift(&mut x) % (1 << 20),
            sectors_per_chunk,
            bytes_per_sector,
            compression,
            media_type: if case % 2 == 0 {
                EwfMediaType::Fixed
            } else {
                EwfMediaType::Removable
            },
            physical: case % 3 != 0,
            threads: 1 + (xorshift(&mut x) % 3) as usize,
        };
        let data = source_chunks(len, xorshift(&mut x), 3000 + case * 1000, |i| i % 2 == 1);
        let step = 1 + (xorshift(&mut x) % 70_000) as usize;
        let (first, summary) =
            write_image(tmp.path(), &format!("rt{case}"), &data, &opts, &[], step);
        let ctx = format!("case {case}: {opts:?}, {len} bytes, step {step}");
        assert_eq!(summary.media_bytes, len as u64, "{ctx}");
        assert_eq!(summary.md5, hex::encode(Md5::digest(&data)), "{ctx}");
        check_reader(&first, &data, &summary);
        if tools {
            check_ewfverify(&first, &data, &summary);
        }
        for s in &summary.segments {
            std::fs::remove_file(s).unwrap();
        }
    }
}

/// Throughput on a file named by `VESTIGE_EWF_BENCH_SOURCE` (a whole number of sectors),
/// written with fast compression and 2 threads into `VESTIGE_EWF_BENCH_OUT` (a directory;
/// default a temporary one). Compare with `ewfacquire -u -c deflate:fast` of the same
/// file; run with `--release -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_write_throughput() {
    use std::io::Read;
    let Ok(src) = std::env::var("VESTIGE_EWF_BENCH_SOURCE") else {
        eprintln!("set VESTIGE_EWF_BENCH_SOURCE");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = std::env::var("VESTIGE_EWF_BENCH_OUT")
        .map_or_else(|_| tmp.path().to_path_buf(), PathBuf::from);
    let len = std::fs::metadata(&src).unwrap().len();
    let first = out_dir.join("bench.E01");
    let opts = options(EwfCompression::Fast, DEFAULT_SEGMENT_BYTES);
    let start = std::time::Instant::now();
    let mut w = EwfWriter::create(&first, len, &metadata(), &opts).unwrap();
    let mut f = std::fs::File::open(&src).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        w.write(&buf[..n]).unwrap();
    }
    let summary = w.finish().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let size: u64 = summary
        .segments
        .iter()
        .map(|s| std::fs::metadata(s).unwrap().len())
        .sum();
    eprintln!(
        "{len} bytes in {secs:.2} s ({:.0} MiB/s), {size} bytes written, md5 {}",
        len as f64 / secs / 1_048_576.0,
        summary.md5
    );
}
