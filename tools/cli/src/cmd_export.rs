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
/// into OUT, hashed on the way (SHA-256, and MD5 and SHA-1 in parallel when the image
/// stores them). Hashes the image stores (EWF's MD5 and SHA-1) must match, or nothing is
/// left at OUT.
fn raw_from_image(a: &RawArgs) -> Result<Exit> {
    use std::io::Write;
    use vestige_evidence::stream_hash::{Algorithm, StreamHashers};
    if a.pubkey.is_some() {
        bail!(
            "{}: --pubkey applies to Vestige items; this is an image file",
            a.item.display()
        );
    }
    let image = vestige_formats::open(&a.item)?;
    let info = image.info();
    let (partial, mut w) = create_partial(&a.out)?;
    // SHA-256 always; MD5 and SHA-1 when the image stores them, to check them.
    let mut algorithms = vec![Algorithm::Sha256];
    if info.stored_hashes.contains_key("md5") {
        algorithms.push(Algorithm::Md5);
    }
    if info.stored_hashes.contains_key("sha1") {
        algorithms.push(Algorithm::Sha1);
    }
    let hashers = StreamHashers::<Vec<u8>>::start(&algorithms, 4);
    let size = image.size();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let display = crate::progress::show("exporting", std::sync::Arc::new(move || size), {
        let p = std::sync::Arc::clone(&progress);
        std::sync::Arc::new(move || p.load(std::sync::atomic::Ordering::Relaxed))
    });
    let copied = (|| -> Result<()> {
        let mut at = 0u64;
        while at < size {
            let n = usize::try_from((size - at).min(4 << 20)).unwrap_or(4 << 20);
            let mut buf = vec![0u8; n];
            image
                .read_exact_at(&mut buf, at)
                .with_context(|| format!("reading {} at byte {at}", a.item.display()))?;
            w.write_all(&buf)
                .with_context(|| format!("writing {}", partial.display()))?;
            at += n as u64;
            progress.store(at, std::sync::atomic::Ordering::Relaxed);
            hashers.feed(&std::sync::Arc::new(buf));
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
            .with_context(|| format!("syncing {}", partial.display()))?;
        Ok(())
    })();
    display.finish();
    let digests = hashers.finish();
    let hex = |alg| digests.get(&alg).map(|d| d.hex.clone()).unwrap_or_default();
    let optional = |alg| digests.get(&alg).map(|d| d.hex.clone());
    let mut problems = Vec::new();
    if let Err(e) = &copied {
        problems.push(format!("{e:#}"));
    }
    for (alg, stored) in &info.stored_hashes {
        let computed = match alg.as_str() {
            "md5" => hex(Algorithm::Md5),
            "sha1" => hex(Algorithm::Sha1),
            "sha256" => hex(Algorithm::Sha256),
            _ => continue,
        };
        if !computed.eq_ignore_ascii_case(stored) {
            problems.push(format!(
                "{alg}: the image stores {stored}, its data hashes to {computed}"
            ));
        }
    }
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
