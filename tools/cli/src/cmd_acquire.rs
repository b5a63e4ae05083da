//! `vestige acquire disk`.

use crate::cmd_case::tool_string;
use crate::exit::Exit;
use crate::{keys, progress, signals};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use vestige_acquire::disk::{acquire_disk, DiskRequest};
use vestige_acquire::pipeline::{PipelineConfig, Progress};
use vestige_evidence::custody::{Case, NewEntry};
use vestige_evidence::error_chain;
use vestige_evidence::fsutil::sha256_file;
use vestige_evidence::manifest::{Status, ToolInfo};

#[derive(Debug, Subcommand)]
pub enum AcquireCommand {
    /// Image a block device or an image file into a signed evidence item.
    Disk(DiskArgs),
}

#[derive(Debug, Args)]
pub struct DiskArgs {
    /// The source: a block device (set read-only with BLKROSET first) or a regular file.
    pub source: PathBuf,
    /// The case directory (from `vestige case init`).
    #[arg(long)]
    pub case: PathBuf,
    /// The evidence item name: its directory inside the case.
    #[arg(long)]
    pub item: String,
    /// Signing key (signify secret key). Without it, the case's own key is used or made.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// File holding the secret key's passphrase (else $VESTIGE_PASSPHRASE or a prompt).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// zstd level (1–19; 3 balances speed and size).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// Also compute MD5 of the source.
    #[arg(long)]
    pub md5: bool,
    /// Also compute SHA-1 of the source.
    #[arg(long)]
    pub sha1: bool,
    /// Chunk size in MiB: one zstd frame and one BLAKE3 digest each (1–64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub chunk_mib: u32,
    /// Compression threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Examiner running this acquisition (default: the case's examiner).
    #[arg(long)]
    pub examiner: Option<String>,
    /// Notes for the manifest.
    #[arg(long)]
    pub notes: Option<String>,
}

pub fn run(cmd: AcquireCommand) -> Result<Exit> {
    match cmd {
        AcquireCommand::Disk(a) => disk(&a),
    }
}

fn tool_info() -> ToolInfo {
    ToolInfo {
        name: "vestige".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        binary_sha256: sha256_file(std::path::Path::new("/proc/self/exe"))
            .ok()
            .map(|(h, _)| h),
    }
}

fn disk(a: &DiskArgs) -> Result<Exit> {
    let case = Case::open(&a.case).with_context(|| format!("opening case {}", a.case.display()))?;
    let examiner = a
        .examiner
        .clone()
        .unwrap_or_else(|| case.info().examiner.clone());
    vestige_acquire::disk::check_item_name(&a.item)?;
    if case.dir().join(&a.item).exists() {
        bail!(
            "{}: item already exists; choose another --item name",
            case.dir().join(&a.item).display()
        );
    }
    let (key, new_key) = match &a.key {
        Some(path) => (
            keys::load_secret(path, a.passphrase_file.as_deref())?,
            false,
        ),
        None => keys::per_case_key(case.dir(), &case.info().case_id)?,
    };
    let pk = key.public_key();
    let pub_rel = keys::publish_in_case(case.dir(), &pk)?;
    if new_key {
        let mut details = BTreeMap::new();
        details.insert("keynum".to_string(), pk.keynum.to_string());
        details.insert("fingerprint".to_string(), pk.fingerprint());
        details.insert("public_key_file".to_string(), pub_rel.clone());
        case.append(
            NewEntry {
                examiner: examiner.clone(),
                action: "key-generate".to_string(),
                item: None,
                hashes: BTreeMap::new(),
                details,
            },
            &tool_string(),
        )?;
        eprintln!("generated a per-case signing key; write its fingerprint on the custody form:");
        eprintln!("  {}", pk.fingerprint());
    }

    let mut cfg = PipelineConfig::new(a.level);
    cfg.chunk_size = usize::try_from(a.chunk_mib).unwrap_or(4) << 20;
    if let Some(t) = a.threads {
        cfg.compress_threads = t.max(1);
    }
    cfg.md5 = a.md5;
    cfg.sha1 = a.sha1;

    signals::catch_interrupts();
    let progress = Arc::new(Progress::default());
    // The total comes from the pipeline once the source is open and write-protected:
    // nothing here opens the source first.
    let display = progress::show(
        "acquiring",
        progress::counter_of(Arc::clone(&progress), |p| &p.bytes_total),
        progress::counter_of(Arc::clone(&progress), |p| &p.bytes_done),
    );
    let req = DiskRequest {
        source: &a.source,
        case: &case,
        item: &a.item,
        examiner: &examiner,
        notes: a.notes.as_deref(),
        key: &key,
        public_key_file: Some(pub_rel.clone()),
        pipeline: cfg,
        tool: tool_info(),
    };
    let outcome = acquire_disk(&req, &progress, &signals::CANCEL);
    display.finish();
    let outcome = outcome?;
    let m = &outcome.manifest;
    let summary = serde_json::json!({
        "item": outcome.item_dir.display().to_string(),
        "status": m.status,
        "bytes_acquired": m.acquisition.bytes_acquired,
        "bytes_expected": m.acquisition.bytes_expected,
        "sha256": m.hashes.sha256,
        "md5": m.hashes.md5,
        "sha1": m.hashes.sha1,
        "image_bytes": m.outputs.first().map(|o| o.size_bytes),
        "key_fingerprint": pk.fingerprint(),
        "public_key": pub_rel,
        "incomplete_reason": m.incomplete_reason,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    match (m.status, &outcome.stopped) {
        (Status::Complete, _) => {
            eprintln!(
                "acquired {} bytes; SHA-256 {}",
                m.acquisition.bytes_acquired, m.hashes.sha256
            );
            Ok(Exit::Ok)
        }
        (Status::Incomplete, stopped) => {
            eprintln!(
                "INCOMPLETE: {}",
                stopped
                    .as_ref()
                    .map_or_else(|| "stopped early".to_string(), |s| error_chain(s))
            );
            eprintln!(
                "the partial image (bytes 0..{}) is kept in {} and marked incomplete",
                m.acquisition.bytes_acquired,
                outcome.item_dir.display()
            );
            Ok(Exit::Incomplete)
        }
    }
}
