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
    /// Decompress an item to a raw image; the output is kept only if every check passes.
    Raw(RawArgs),
}

#[derive(Debug, Args)]
pub struct RawArgs {
    /// The item directory.
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

fn raw(a: &RawArgs) -> Result<Exit> {
    let pubkey = a.pubkey.as_deref().map(load_pubkey).transpose()?;
    if a.out.exists() {
        bail!("{}: exists; refusing to overwrite", a.out.display());
    }
    let mut partial = a.out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut w = BufWriter::with_capacity(4 << 20, file);
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
