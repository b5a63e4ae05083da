//! `vestige export raw`: restore the raw image, verifying every byte on the way.

use crate::cmd_case::tool_string;
use crate::cmd_verify::{load_pubkey, threads};
use crate::exit::Exit;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::BufWriter;
use std::path::PathBuf;
use vestige_evidence::custody::{Case, NewEntry};
use vestige_evidence::verify::{verify_item, Verdict};

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write the raw disk of an item (verified on the way) or of any image Vestige reads
    /// (E01, qcow2, VMDK, VHD, VHDX, VDI, split raw); the output is kept only if every
    /// check passes.
    Raw(RawArgs),
    /// Write an EnCase 6 style E01 segment set (MD5 and SHA-1 stored, case metadata in
    /// its header) of an item (verified on the way; its manifest's hashes must match) or
    /// of any image Vestige reads. ewfverify, ewfinfo and EnCase-compatible tools read it.
    E01(crate::cmd_export_e01::E01Args),
}

#[derive(Debug, Args)]
pub struct RawArgs {
    /// The item directory, or an image file (any segment of a split set).
    pub item: PathBuf,
    /// The raw image to write (must not exist).
    pub out: PathBuf,
    /// The public key that must have signed the item.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Decompression threads.
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(cmd: ExportCommand) -> Result<Exit> {
    match cmd {
        ExportCommand::Raw(a) => raw(&a),
        ExportCommand::E01(a) => crate::cmd_export_e01::run(&a),
    }
}

/// Refuses an existing `out`, and creates `out.partial` (renamed to `out` only when every
/// check passed).
fn create_partial(out: &std::path::Path) -> Result<(PathBuf, BufWriter<std::fs::File>)> {
    if out.exists() {
        bail!("{}: exists; refusing to overwrite", out.display());
    }
    let mut partial = out.to_path_buf().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    Ok((partial, BufWriter::with_capacity(4 << 20, file)))
}

fn raw(a: &RawArgs) -> Result<Exit> {
    if !a
        .item
        .join(vestige_evidence::manifest::SIGNATURE_FILE)
        .is_file()
    {
        return raw_from_image(a);
    }
    let pubkey = a.pubkey.as_deref().map(load_pubkey).transpose()?;
    let (partial, mut w) = create_partial(&a.out)?;
    let report = verify_item(&a.item, pubkey.as_ref(), threads(a.threads), Some(&mut w));
    let flushed = w
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all().map(|()| f));
    let ok = report.verdict != Verdict::Failed && flushed.is_ok();
    if !ok {
        let _ = std::fs::remove_file(&partial);
        for p in &report.problems {
            eprintln!("problem: {p}");
        }
        if let Err(e) = flushed {
            eprintln!("problem: writing {}: {e}", partial.display());
        }
        eprintln!(
            "export failed verification; nothing was left at {}",
            a.out.display()
        );
        return Ok(Exit::NotVerified);
    }
    std::fs::rename(&partial, &a.out)
        .with_context(|| format!("renaming {} to {}", partial.display(), a.out.display()))?;
    let bytes = report.image.as_ref().map_or(0, |i| i.bytes);
    let sha = report.source_sha256.clone().unwrap_or_default();
    println!(
        "{}",
        serde_json::json!({"out": a.out.display().to_string(), "bytes": bytes, "sha256": sha, "verdict": report.verdict})
    );
    if let Some(case_dir) = a.item.parent() {
        if let Ok(case) = Case::open(case_dir) {
            let mut hashes = BTreeMap::new();
            hashes.insert("raw sha256".to_string(), sha);
            let mut details = BTreeMap::new();
            details.insert("out".to_string(), a.out.display().to_string());
            details.insert("bytes".to_string(), bytes.to_string());
            let item = a.item.file_name().map(|n| n.to_string_lossy().to_string());
            if let Err(e) = case.append(
                NewEntry {
                    examiner: case.info().examiner.clone(),
                    action: "export-raw".to_string(),
                    item,
                    hashes,
                    details,
                },
                &tool_string(),
            ) {
                eprintln!("note: could not record the export in the custody log: {e}");
            }
        }
    }
    Ok(if report.verdict == Verdict::VerifiedIncomplete {
        Exit::Incomplete
    } else {
        Exit::Ok
    })
}

/// `export raw` of an image that is not a Vestige item: every byte read through its reader
/// (decoded on several threads) into OUT, hashed on the way (SHA-256, and MD5 and SHA-1
/// when the image stores them). Ranges of zeros are left as holes, as `qemu-img convert`
/// does: they read back as zeros and the hashes cover them. Hashes the image stores (EWF's
/// MD5 and SHA-1) must match, or nothing is left at OUT.
fn raw_from_image(a: &RawArgs) -> Result<Exit> {
    use crate::cmd_image::{algorithms_for, read_hashed, stored_hash_mismatches};
    use vestige_evidence::stream_hash::Algorithm;
    if a.pubkey.is_some() {
        bail!(
            "{}: --pubkey applies to Vestige items; this is an image file",
            a.item.display()
        );
    }
    let image = vestige_formats::open(&a.item)?;
    let info = image.info();
    let (partial, w) = create_partial(&a.out)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    let size = image.size();
    let (digests, read) = read_hashed(
        &*image,
        &algorithms_for(&info),
        threads(a.threads),
        "exporting",
        |offset, block| write_sparse(&file, offset, block),
    );
    let written = read
        .with_context(|| format!("exporting {} to {}", a.item.display(), partial.display()))
        .and_then(|()| {
            file.set_len(size)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("finishing {}", partial.display()))
        });
    let hex = |alg| digests.get(&alg).map(|d| d.hex.clone()).unwrap_or_default();
    let optional = |alg| digests.get(&alg).map(|d| d.hex.clone());
    let mut problems = Vec::new();
    if let Err(e) = &written {
        problems.push(format!("{e:#}"));
    }
    problems.extend(stored_hash_mismatches(&info, &digests));
    if !problems.is_empty() {
        let _ = std::fs::remove_file(&partial);
        for p in &problems {
            eprintln!("problem: {p}");
        }
        eprintln!("export failed; nothing was left at {}", a.out.display());
        return Ok(Exit::NotVerified);
    }
    std::fs::rename(&partial, &a.out)
        .with_context(|| format!("renaming {} to {}", partial.display(), a.out.display()))?;
    println!(
        "{}",
        serde_json::json!({
            "out": a.out.display().to_string(),
            "format": info.format,
            "bytes": size,
            "sha256": hex(Algorithm::Sha256),
            "md5": optional(Algorithm::Md5),
            "sha1": optional(Algorithm::Sha1),
            "stored_hashes_checked": info.stored_hashes.keys().collect::<Vec<_>>(),
        })
    );
    Ok(Exit::Ok)
}

/// Granularity of the holes left for zeros: a file system block multiple.
const HOLE_BYTES: usize = 64 << 10;

/// Writes `block` at `offset` of a new file, skipping each all-zero 64 KiB piece (the file
/// is new, so a skipped range is a hole that reads as zeros; the caller sets the length).
fn write_sparse(file: &std::fs::File, offset: u64, block: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut at = offset;
    for piece in block.chunks(HOLE_BYTES) {
        if !is_zero(piece) {
            file.write_all_at(piece, at)?;
        }
        at += piece.len() as u64;
    }
    Ok(())
}

/// Whether every byte is zero (word-wise: this runs over every exported byte).
fn is_zero(bytes: &[u8]) -> bool {
    let (words, rest) = bytes.split_at(bytes.len() - bytes.len() % 16);
    words
        .chunks_exact(16)
        .all(|w| u128::from_ne_bytes(w.try_into().unwrap_or([1; 16])) == 0)
        && rest.iter().all(|&b| b == 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn zeros_become_holes_and_the_file_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.raw");
        let file = std::fs::File::create_new(&path).unwrap();
        // 1 MiB zeros, 1 byte of data in the next 64 KiB piece, zeros, an odd-sized tail.
        let mut data = vec![0u8; (1 << 20) + 3 * HOLE_BYTES + 17];
        data[(1 << 20) + 5] = 0xaa;
        data[(1 << 20) + 3 * HOLE_BYTES + 16] = 1;
        for (i, block) in data.chunks(300_000).enumerate() {
            write_sparse(&file, (i * 300_000) as u64, block).unwrap();
        }
        file.set_len(data.len() as u64).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert!(is_zero(&[0; 33]) && !is_zero(&[0, 0, 1]) && is_zero(&[]));
        let mut late = [0u8; 40];
        late[39] = 1;
        assert!(!is_zero(&late));
    }
}
