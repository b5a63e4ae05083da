//! Re-checking an evidence item: the signature, every listed file's hash, and every byte of
//! the image against the per-chunk digests and the whole-source hashes of the manifest.
//!
//! The image is read once, front to back: one thread reads the container sequentially
//! (hashing the file as listed in SHA256.sig), a pool decompresses frames and computes each
//! chunk's BLAKE3, and the calling thread hashes the restored source stream in order and,
//! for `export raw`, writes it out. Damage is reported, not fatal: the first chunk that
//! differs is named with its byte range in the source.

use crate::fsutil::{read_capped, sha256_file};
use crate::lime::MEMORY_FILE;
use crate::manifest::{
    Manifest, Status, FILE_ONLY_KINDS, IMAGE_FILE, MANIFEST_FILE, SIGNATURE_FILE,
};

/// The container files an item's source stream may be in, by kind of item.
pub const STREAM_FILES: [&str; 2] = [IMAGE_FILE, MEMORY_FILE];
use crate::read_at::{FileReader, ReadAt};
use crate::seekable::{decompress_frame, FrameInfo, SeekTable};
use crate::signify::{self, PublicKey};
use crate::stream_hash::{Algorithm, StreamHashers};
use serde::Serialize;
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

/// The largest SHA256.sig read.
const MAX_SIG_BYTES: u64 = 1 << 20;
/// Where case-level public keys are kept, relative to the case directory.
pub const CASE_KEYS_DIR: &str = "keys";

/// The overall result of verifying an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Signature, files and every byte check out, and the acquisition was complete.
    Verified,
    /// Everything checks out, but the manifest says the acquisition is incomplete.
    VerifiedIncomplete,
    /// Something does not verify.
    Failed,
}

/// Where the public key came from.
#[derive(Debug, Clone, Serialize)]
pub struct KeyCheck {
    /// signify key number from the signature.
    pub keynum: String,
    /// The fingerprint of the key that verified it (compare with the custody form).
    pub fingerprint: Option<String>,
    /// The key file used.
    pub key_file: Option<String>,
    /// True when the key was given by the examiner (--pubkey), false when taken from the case.
    pub pinned: bool,
    /// Whether the signature verified.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// One listed file.
#[derive(Debug, Clone, Serialize)]
pub struct FileCheck {
    /// The file name inside the item.
    pub name: String,
    /// The SHA-256 the signed list gives.
    pub expected_sha256: String,
    /// The SHA-256 found on disk.
    pub found_sha256: Option<String>,
    /// Whether they match.
    pub ok: bool,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// A chunk whose content differs from the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct BadChunk {
    /// Chunk (frame) index.
    pub index: u64,
    /// First source byte of the chunk.
    pub offset_bytes: u64,
    /// One past the last source byte of the chunk.
    pub end_bytes: u64,
    /// Offset of the frame in image.zst.
    pub container_offset_bytes: u64,
    /// What is wrong.
    pub reason: String,
}

/// The image check.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ImageCheck {
    /// Frames in the seek table.
    pub frames: u64,
    /// Source bytes restored.
    pub bytes: u64,
    /// Chunks whose BLAKE3 matched.
    pub chunks_ok: u64,
    /// Chunks that failed (digest or decompression).
    pub chunks_bad: u64,
    /// The first failing chunk.
    pub first_bad_chunk: Option<BadChunk>,
    /// Recomputed stream hashes (name → hex).
    pub recomputed: BTreeMap<String, String>,
    /// Hashes that disagree with the manifest: name → (manifest, recomputed).
    pub mismatched: BTreeMap<String, (String, String)>,
    /// Why the image could not be read at all.
    pub error: Option<String>,
}

/// Everything verify found about one item.
#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    /// The item directory.
    pub item_dir: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The signature check.
    pub signature: Option<KeyCheck>,
    /// Listed files.
    pub files: Vec<FileCheck>,
    /// The manifest status, when the manifest could be read.
    pub status: Option<Status>,
    /// The manifest's source SHA-256.
    pub source_sha256: Option<String>,
    /// The image check.
    pub image: Option<ImageCheck>,
    /// Every problem, one sentence each, in the order found.
    pub problems: Vec<String>,
}

/// Finds the public key for `keynum` among the case's keys/ directory.
fn find_case_key(item_dir: &Path, keynum: &str) -> Option<(PublicKey, PathBuf)> {
    let keys = item_dir.parent()?.join(CASE_KEYS_DIR);
    let mut entries: Vec<_> = std::fs::read_dir(&keys)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries.into_iter().find_map(|p| {
        if p.extension().and_then(|e| e.to_str()) != Some("pub") {
            return None;
        }
        let text = read_capped(&p, 4096).ok()?;
        let pk = PublicKey::parse(std::str::from_utf8(&text).ok()?).ok()?;
        (pk.keynum.to_string() == keynum).then_some((pk, p))
    })
}

/// Verifies one item directory. With `pubkey`, that key must have signed it; otherwise the
/// matching key from the case's keys/ directory is used and reported as not pinned.
/// With `sink`, the restored raw image is written to it as it is verified (export raw).
pub fn verify_item(
    item_dir: &Path,
    pubkey: Option<&PublicKey>,
    threads: usize,
    sink: Option<&mut dyn Write>,
) -> ItemReport {
    let mut r = ItemReport {
        item_dir: item_dir.display().to_string(),
        verdict: Verdict::Failed,
        signature: None,
        files: Vec::new(),
        status: None,
        source_sha256: None,
        image: None,
        problems: Vec::new(),
    };
    let sig_path = item_dir.join(SIGNATURE_FILE);
    let listed = match read_signed_list(&sig_path, item_dir, pubkey, &mut r) {
        Some(l) => l,
        None => return r,
    };

    // Listed files other than the image: hash now. The image (a disk's image.zst or a
    // memory item's memory.lime.zst) is hashed while it is streamed.
    let mut image_expected = None;
    let mut image_name = IMAGE_FILE;
    for line in &listed {
        if let Some(stream) = STREAM_FILES.iter().find(|n| **n == line.name) {
            if image_expected.is_none() {
                image_expected = Some(line.hex.clone());
                image_name = stream;
                continue;
            }
        }
        let path = item_dir.join(&line.name);
        let check = match sha256_file(&path) {
            Ok((found, _)) => FileCheck {
                ok: found == line.hex,
                name: line.name.clone(),
                expected_sha256: line.hex.clone(),
                found_sha256: Some(found),
                error: None,
            },
            Err(e) => FileCheck {
                name: line.name.clone(),
                expected_sha256: line.hex.clone(),
                found_sha256: None,
                ok: false,
                error: Some(e.to_string()),
            },
        };
        if !check.ok {
            r.problems.push(match &check.error {
                Some(e) => format!("{}: cannot read: {e}", check.name),
                None => format!(
                    "{}: SHA-256 is {}, the signed list says {}",
                    check.name,
                    check.found_sha256.as_deref().unwrap_or("?"),
                    check.expected_sha256
                ),
            });
        }
        r.files.push(check);
    }
    if !listed.iter().any(|l| l.name == MANIFEST_FILE) {
        r.problems
            .push("the signed list does not cover manifest.json".to_string());
    }
    let manifest_ok = r.files.iter().any(|f| f.name == MANIFEST_FILE && f.ok);
    let manifest = match Manifest::read(&item_dir.join(MANIFEST_FILE)) {
        Ok(m) => m,
        Err(e) => {
            r.problems.push(crate::error_chain(&e));
            return r;
        }
    };
    if !manifest_ok {
        r.problems.push(
            "manifest.json does not match its signed hash; its contents are not trusted"
                .to_string(),
        );
    }
    r.status = Some(manifest.status);
    r.source_sha256 = Some(manifest.hashes.sha256.clone());

    let Some(image_expected) = image_expected else {
        if FILE_ONLY_KINDS.contains(&manifest.source.kind.as_str()) {
            // Live state and captures have no image: their files were all hashed above.
            if r.problems.is_empty() {
                r.verdict = match manifest.status {
                    Status::Complete => Verdict::Verified,
                    Status::Incomplete => Verdict::VerifiedIncomplete,
                };
            }
        } else {
            r.problems.push(format!(
                "the signed list covers no image ({})",
                STREAM_FILES.join(" or ")
            ));
        }
        return r;
    };
    let image_path = item_dir.join(image_name);
    let (image, image_found) = check_image(&image_path, &manifest, threads, sink);
    let file_check = FileCheck {
        name: image_name.to_string(),
        ok: image_found.as_deref() == Some(image_expected.as_str()),
        expected_sha256: image_expected,
        found_sha256: image_found,
        error: image.error.clone(),
    };
    if !file_check.ok {
        r.problems.push(format!(
            "{image_name}: SHA-256 is {}, the signed list says {}",
            file_check.found_sha256.as_deref().unwrap_or("(unreadable)"),
            file_check.expected_sha256
        ));
    }
    r.files.push(file_check);
    if let Some(e) = &image.error {
        r.problems.push(format!("{image_name}: {e}"));
    }
    if let Some(b) = &image.first_bad_chunk {
        r.problems.push(format!(
            "chunk {} (source bytes {}..{}, {image_name} byte {}) is damaged: {}; {} chunk(s) bad in all",
            b.index, b.offset_bytes, b.end_bytes, b.container_offset_bytes, b.reason, image.chunks_bad
        ));
    }
    for (name, (want, got)) in &image.mismatched {
        r.problems.push(format!(
            "source {name}: recomputed {got}, the manifest says {want}"
        ));
    }
    if image.error.is_none() && image.bytes != manifest.acquisition.bytes_acquired {
        r.problems.push(format!(
            "image restores {} bytes, the manifest says {} were acquired",
            image.bytes, manifest.acquisition.bytes_acquired
        ));
    }
    r.image = Some(image);
    if r.problems.is_empty() {
        r.verdict = match manifest.status {
            Status::Complete => Verdict::Verified,
            Status::Incomplete => Verdict::VerifiedIncomplete,
        };
    }
    r
}

/// Reads SHA256.sig, verifies its signature and returns the checksum list; records problems.
fn read_signed_list(
    sig_path: &Path,
    item_dir: &Path,
    pubkey: Option<&PublicKey>,
    r: &mut ItemReport,
) -> Option<Vec<signify::ChecksumLine>> {
    let bytes = match read_capped(sig_path, MAX_SIG_BYTES) {
        Ok(b) => b,
        Err(e) => {
            r.problems
                .push(format!("{}: cannot read: {e}", sig_path.display()));
            return None;
        }
    };
    let (sig, message) = match signify::parse_embedded(&bytes) {
        Ok(x) => x,
        Err(e) => {
            r.problems.push(format!(
                "{}: {}",
                sig_path.display(),
                crate::error_chain(&e)
            ));
            return None;
        }
    };
    let keynum = sig.keynum.to_string();
    let (key, key_file, pinned) = match pubkey {
        Some(k) => (Some(k.clone()), None, true),
        None => match find_case_key(item_dir, &keynum) {
            Some((k, p)) => (Some(k), Some(p.display().to_string()), false),
            None => (None, None, false),
        },
    };
    let mut check = KeyCheck {
        keynum: keynum.clone(),
        fingerprint: key.as_ref().map(PublicKey::fingerprint),
        key_file,
        pinned,
        ok: false,
        error: None,
    };
    match &key {
        None => {
            check.error = Some(format!(
                "no public key with key number {keynum} in the case's {CASE_KEYS_DIR}/ directory; pass --pubkey"
            ));
        }
        Some(k) => match k.verify(message, &sig) {
            Ok(()) => check.ok = true,
            Err(e) => check.error = Some(crate::error_chain(&e)),
        },
    }
    let ok = check.ok;
    if let Some(e) = &check.error {
        r.problems
            .push(format!("{SIGNATURE_FILE}: signature does not verify: {e}"));
    }
    r.signature = Some(check);
    if !ok {
        return None;
    }
    let text = match std::str::from_utf8(message) {
        Ok(t) => t,
        Err(e) => {
            r.problems
                .push(format!("{SIGNATURE_FILE}: checksum list is not UTF-8: {e}"));
            return None;
        }
    };
    match signify::parse_checksum_list(text) {
        Ok(l) => Some(l),
        Err(e) => {
            r.problems
                .push(format!("{SIGNATURE_FILE}: {}", crate::error_chain(&e)));
            None
        }
    }
}

/// Streams the image once; returns the image check and the SHA-256 of the container file.
fn check_image(
    path: &Path,
    manifest: &Manifest,
    threads: usize,
    sink: Option<&mut dyn Write>,
) -> (ImageCheck, Option<String>) {
    let mut check = ImageCheck::default();
    let reader = match FileReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            check.error = Some(format!("cannot open: {e}"));
            return (check, None);
        }
    };
    let table = match SeekTable::read(&reader) {
        Ok(t) => t,
        Err(e) => {
            check.error = Some(crate::error_chain(&e));
            let found = sha256_file(path).ok().map(|(h, _)| h);
            return (check, found);
        }
    };
    check.frames = table.frame_count() as u64;
    let mut algorithms = vec![Algorithm::Sha256];
    if manifest.hashes.md5.is_some() {
        algorithms.push(Algorithm::Md5);
    }
    if manifest.hashes.sha1.is_some() {
        algorithms.push(Algorithm::Sha1);
    }
    let hashers = StreamHashers::<Vec<u8>>::start(&algorithms, threads.max(1) * 2);
    let digests = &manifest.chunks.digests;
    if digests.len() as u64 != check.frames {
        check.error = Some(format!(
            "seek table has {} frames, the manifest lists {} chunk digests",
            check.frames,
            digests.len()
        ));
    }
    let mut sink = sink;
    let mut sink_error = None;
    let file_hash = stream_frames(&reader, &table, threads, |info, result| {
        let expected = digests.get(info.index);
        let bad = |reason: String| BadChunk {
            index: info.index as u64,
            offset_bytes: info.decompressed_offset,
            end_bytes: info.decompressed_offset + u64::from(info.decompressed_size),
            container_offset_bytes: info.compressed_offset,
            reason,
        };
        let problem = match &result {
            Err(e) => Some(bad(e.clone())),
            Ok((_, digest)) => match expected {
                Some(want) if want == digest => None,
                Some(want) => Some(bad(format!("BLAKE3 is {digest}, the manifest says {want}"))),
                None => Some(bad("no digest in the manifest for this chunk".to_string())),
            },
        };
        match problem {
            Some(b) => {
                check.chunks_bad += 1;
                check.first_bad_chunk.get_or_insert(b);
            }
            None => check.chunks_ok += 1,
        }
        // Keep the stream aligned even past damage: a bad frame contributes zeros of its
        // declared size, so later offsets (and export) stay where they belong.
        let data = Arc::new(match result {
            Ok((d, _)) => d,
            Err(_) => vec![0u8; info.decompressed_size as usize],
        });
        hashers.feed(&data);
        check.bytes += data.len() as u64;
        if let Some(w) = sink.as_mut() {
            if sink_error.is_none() {
                if let Err(e) = w.write_all(&data) {
                    sink_error = Some(e);
                }
            }
        }
    });
    let file_hash = match file_hash {
        Ok(h) => Some(h),
        Err(e) => {
            check
                .error
                .get_or_insert(format!("reading the container failed: {e}"));
            None
        }
    };
    if let Some(e) = sink_error {
        check
            .error
            .get_or_insert(format!("writing the restored image failed: {e}"));
    }
    let mut compare = |name: &str, want: Option<&String>, got: String| {
        if let Some(want) = want {
            if *want != got {
                check
                    .mismatched
                    .insert(name.to_string(), (want.clone(), got.clone()));
            }
        }
        check.recomputed.insert(name.to_string(), got);
    };
    let digests = hashers.finish();
    for (alg, name, want) in [
        (Algorithm::Sha256, "sha256", Some(&manifest.hashes.sha256)),
        (Algorithm::Md5, "md5", manifest.hashes.md5.as_ref()),
        (Algorithm::Sha1, "sha1", manifest.hashes.sha1.as_ref()),
    ] {
        if let Some(d) = digests.get(&alg) {
            compare(name, want, d.hex.clone());
        } else if want.is_some() {
            check
                .error
                .get_or_insert(format!("the {name} thread failed"));
        }
    }
    (check, file_hash)
}

type FrameResult = Result<(Vec<u8>, String), String>;

/// Reads every frame of the container in order on one thread (hashing the whole file with
/// SHA-256 on the way), decompresses and BLAKE3-hashes frames on `threads` workers, and calls
/// `each` in frame order. Returns the container file's SHA-256.
pub fn stream_frames(
    reader: &FileReader,
    table: &SeekTable,
    threads: usize,
    mut each: impl FnMut(&FrameInfo, FrameResult),
) -> io::Result<String> {
    let threads = threads.max(1);
    let (work_tx, work_rx) = sync_channel::<(FrameInfo, Vec<u8>)>(threads * 2);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = sync_channel::<(FrameInfo, FrameResult)>(threads * 2);
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> io::Result<String> {
            let mut file_hash = sha2::Sha256::new();
            for info in table.frames() {
                let mut buf = vec![0u8; info.compressed_size as usize];
                reader.read_exact_at(&mut buf, info.compressed_offset)?;
                file_hash.update(&buf);
                if work_tx.send((info, buf)).is_err() {
                    break;
                }
            }
            drop(work_tx);
            // The seek table and anything after the frames belong to the file hash too.
            let mut at = table.compressed_data_end();
            let mut buf = vec![0u8; 1 << 20];
            while at < reader.size() {
                let n = reader.read_at(&mut buf, at)?;
                if n == 0 {
                    break;
                }
                file_hash.update(buf.get(..n).unwrap_or_default());
                at += n as u64;
            }
            Ok(hex::encode(file_hash.finalize()))
        });
        for _ in 0..threads {
            let (rx, tx) = (Arc::clone(&work_rx), done_tx.clone());
            s.spawn(move || {
                let mut out = Vec::new();
                loop {
                    let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((info, compressed)) = job else { return };
                    let result = match decompress_frame(&info, &compressed, &mut out) {
                        Ok(()) => {
                            let digest = blake3::hash(&out).to_hex().to_string();
                            Ok((std::mem::take(&mut out), digest))
                        }
                        Err(e) => Err(crate::error_chain(&e)),
                    };
                    if tx.send((info, result)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut pending = BTreeMap::new();
        let mut next = 0usize;
        for (info, result) in done_rx {
            pending.insert(info.index, (info, result));
            while let Some((info, result)) = pending.remove(&next) {
                each(&info, result);
                next += 1;
            }
        }
        producer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("container reader thread panicked")))
    })
}
