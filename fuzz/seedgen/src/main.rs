//! Writes small valid inputs for every fuzz target into `<out>/<target>/` (default
//! `fuzz/seeds`). Keys are freshly generated, so a rerun writes different (equally valid)
//! key and signature seeds; containers, lists, manifests and logs are built with the
//! evidence crate's writers from fixed text.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vestige_evidence::custody::{Case, CaseInfo, NewEntry};
use vestige_evidence::manifest::*;
use vestige_evidence::seekable::{FrameCompressor, SeekTableWriter};
use vestige_evidence::signify::{embed, format_checksum_list, ChecksumLine, SecretKey};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const TEXT: &[u8] = b"Vestige seed: the quick brown fox jumps over the lazy dog. 0123456789";

fn main() -> Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("fuzz/seeds"), PathBuf::from);
    seek_table(&out.join("seek_table"))?;
    seekable_roundtrip(&out.join("seekable_roundtrip"))?;
    signify(&out.join("signify"))?;
    checksum_list(&out.join("checksum_list"))?;
    manifest(&out.join("manifest"))?;
    custody(&out.join("custody"))?;
    Ok(())
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    eprintln!("{}: {} bytes", dir.join(name).display(), bytes.len());
    Ok(())
}

/// A container of `source` in `chunk`-byte frames.
fn container(source: &[u8], chunk: usize, checksums: bool) -> Result<Vec<u8>> {
    let mut compressor = FrameCompressor::new(3)?;
    let mut table = SeekTableWriter::new(checksums);
    let mut out = Vec::new();
    let mut frame = Vec::new();
    for c in source.chunks(chunk) {
        let mut entry = compressor.compress(c, &mut frame)?;
        if !checksums {
            entry.checksum = None;
        }
        out.extend_from_slice(&frame);
        table.push(entry);
    }
    out.extend_from_slice(&table.try_to_bytes()?);
    Ok(out)
}

fn seek_table(dir: &Path) -> Result<()> {
    put(dir, "empty-source.zst", &container(b"", 16, true)?)?;
    put(
        dir,
        "three-frames-checksums.zst",
        &container(TEXT, 24, true)?,
    )?;
    put(
        dir,
        "two-frames-no-checksums.zst",
        &container(TEXT, 40, false)?,
    )?;
    put(
        dir,
        "zeros-one-frame.zst",
        &container(&[0u8; 4096], 4096, true)?,
    )?;
    Ok(())
}

fn seekable_roundtrip(dir: &Path) -> Result<()> {
    // 8 parameter bytes (chunk sizes ×3, level, flags, cache frames, byte to change ×2),
    // then the data.
    let mut a = vec![5, 1, 9, 3, 1, 4, 7, 0];
    a.extend_from_slice(TEXT);
    put(dir, "text-small-chunks", &a)?;
    let mut b = vec![255, 255, 255, 1, 0, 0, 40, 0];
    b.extend_from_slice(&[0u8; 2000]);
    put(dir, "zeros-no-cache", &b)?;
    put(dir, "empty", &[0, 0, 0, 0, 3, 1, 0, 0])?;
    Ok(())
}

fn signify(dir: &Path) -> Result<()> {
    let sk = SecretKey::generate()?;
    let pk = sk.public_key();
    put(
        dir,
        "key.pub",
        pk.to_file_string("vestige seed public key").as_bytes(),
    )?;
    put(
        dir,
        "key.sec",
        sk.to_file_string("vestige seed secret key", None)?
            .as_bytes(),
    )?;
    put(
        dir,
        "key-encrypted.sec",
        sk.to_file_string("vestige seed secret key", Some(b"seed"))?
            .as_bytes(),
    )?;
    let sig = sk.sign(TEXT);
    put(
        dir,
        "detached.sig",
        sig.to_file_string("verify with key.pub").as_bytes(),
    )?;
    put(
        dir,
        "embedded.sig",
        &embed(&sig, "verify with key.pub", TEXT),
    )?;
    Ok(())
}

fn checksum_list(dir: &Path) -> Result<()> {
    let one = [ChecksumLine::sha256("image.zst", &[0xab; 32])?];
    put(dir, "one-sha256", format_checksum_list(&one).as_bytes())?;
    let two = [
        ChecksumLine::sha256("manifest.json", &[0x01; 32])?,
        ChecksumLine::sha512("image.zst", &[0xfe; 64])?,
    ];
    put(
        dir,
        "sha256-and-sha512",
        format_checksum_list(&two).as_bytes(),
    )?;
    Ok(())
}

fn manifest(dir: &Path) -> Result<()> {
    let m = Manifest {
        format: MANIFEST_FORMAT.to_string(),
        status: Status::Incomplete,
        incomplete_reason: Some("read error at byte 4096".into()),
        tool: ToolInfo {
            name: "vestige".into(),
            version: "0.1.0".into(),
            binary_sha256: None,
        },
        case: CaseRef {
            case_id: "C-1".into(),
            item: "disk0".into(),
            examiner: "Ada".into(),
            agency: Some("Lab".into()),
            notes: None,
        },
        source: SourceIdentity {
            path: "/dev/loop0".into(),
            canonical_path: Some("/dev/loop0".into()),
            kind: "block_device".into(),
            size_bytes: 8192,
            logical_sector_size: Some(512),
            physical_sector_size: Some(4096),
            device_number: Some("7:0".into()),
            serial: Some("S3R1AL".into()),
            write_protection: WriteProtection {
                open_mode: "O_RDONLY".into(),
                read_only_before: Some(false),
                blkroset: "set".into(),
                read_only_verified: Some(true),
            },
            ..Default::default()
        },
        host: HostInfo {
            hostname: Some("lab1".into()),
            kernel: Some("6.1.0".into()),
            lockdown: None,
            hypervisor_hints: vec!["kvm".into()],
        },
        times: Times {
            started_utc: "2026-11-25T14:35:41Z".into(),
            finished_utc: "2026-11-25T14:35:42Z".into(),
            system_minus_rtc_seconds: Some(-1),
            rtc_note: "/dev/rtc0".into(),
        },
        acquisition: AcquisitionInfo {
            bytes_expected: 8192,
            bytes_acquired: 4096,
            unreadable_ranges: vec![ByteRange {
                offset_bytes: 4096,
                length_bytes: 4096,
            }],
            chunk_size_bytes: 4096,
            zstd_level: 3,
            compression_threads: 2,
        },
        hashes: SourceHashes {
            sha256: "ab".repeat(32),
            md5: Some("cd".repeat(16)),
            sha1: None,
        },
        chunks: ChunkDigests {
            algorithm: "BLAKE3".into(),
            chunk_size_bytes: 4096,
            digests: vec!["ef".repeat(32)],
        },
        outputs: vec![OutputFile {
            name: IMAGE_FILE.into(),
            size_bytes: 123,
            sha256: "01".repeat(32),
        }],
        signing_key: Some(KeyRef {
            keynum: "0011223344556677".into(),
            fingerprint: format!("SHA256:{}", "23".repeat(32)),
            public_key_file: Some("keys/vestige.pub".into()),
        }),
    };
    put(dir, "incomplete.json", &m.to_json())?;
    Ok(())
}

fn custody(dir: &Path) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("vestige-seedgen-{}", std::process::id()));
    let case_dir = tmp.join("case");
    let case = Case::init(
        &case_dir,
        CaseInfo {
            format: String::new(),
            case_id: "C-1".into(),
            examiner: "Ada".into(),
            agency: None,
            notes: None,
            created_utc: "2026-11-25T14:35:41Z".into(),
            tool: String::new(),
        },
        "vestige 0.1.0",
    )?;
    let mut hashes = BTreeMap::new();
    hashes.insert("source sha256".to_string(), "ab".repeat(32));
    let mut details = BTreeMap::new();
    details.insert("outcome".to_string(), "complete".to_string());
    case.append(
        NewEntry {
            examiner: "Ada".into(),
            action: "acquire-disk".into(),
            item: Some("disk0".into()),
            hashes,
            details,
        },
        "vestige 0.1.0",
    )?;
    let log = std::fs::read(case_dir.join(vestige_evidence::custody::CUSTODY_FILE))?;
    std::fs::remove_dir_all(&tmp)?;
    put(dir, "two-entries.jsonl", &log)?;
    Ok(())
}
