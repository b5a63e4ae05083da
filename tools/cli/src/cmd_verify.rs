//! `vestige verify`: a case (every item, and the custody chain) or one item.

use crate::cmd_case::tool_string;
use crate::exit::Exit;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vestige_evidence::custody::{verify_chain, Case, NewEntry, CASE_FILE, CUSTODY_FILE};
use vestige_evidence::error_chain;
use vestige_evidence::fsutil::read_capped;
use vestige_evidence::manifest::SIGNATURE_FILE;
use vestige_evidence::signify::PublicKey;
use vestige_evidence::verify::{verify_item, ItemReport, Verdict};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A case directory or an item directory.
    pub path: PathBuf,
    /// The public key that must have signed (else the case's keys/ are used, unpinned).
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Print a JSON report on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Decompression threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn load_pubkey(path: &Path) -> Result<PublicKey> {
    let bytes = read_capped(path, 4096)
        .with_context(|| format!("reading public key {}", path.display()))?;
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("{} is not a signify public key", path.display()))?;
    PublicKey::parse(text).with_context(|| format!("reading public key {}", path.display()))
}

pub fn threads(t: Option<usize>) -> usize {
    t.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Item directories of a case, sorted.
fn case_items(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut items: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(SIGNATURE_FILE).exists() || p.join("image.zst").exists())
        .collect();
    items.sort();
    Ok(items)
}

pub fn run(a: &VerifyArgs) -> Result<Exit> {
    let pubkey = a.pubkey.as_deref().map(load_pubkey).transpose()?;
    let meta = std::fs::metadata(&a.path).with_context(|| format!("{}", a.path.display()))?;
    if !meta.is_dir() {
        bail!("{}: expected a case or item directory", a.path.display());
    }
    let is_case = a.path.join(CASE_FILE).exists();
    let items = if is_case {
        case_items(&a.path)?
    } else {
        vec![a.path.clone()]
    };
    if !is_case && !a.path.join(SIGNATURE_FILE).exists() && !a.path.join("manifest.json").exists() {
        bail!(
            "{}: neither a case (no case.json) nor an evidence item (no SHA256.sig)",
            a.path.display()
        );
    }
    let custody = is_case.then(|| {
        verify_chain(&a.path.join(CUSTODY_FILE))
            .map(|e| e.len())
            .map_err(|e| error_chain(&e))
    });
    let mut reports = Vec::new();
    for item in &items {
        if !a.json {
            eprintln!("verifying {} ...", item.display());
        }
        let start = std::time::Instant::now();
        let report = verify_item(item, pubkey.as_ref(), threads(a.threads), None);
        let secs = start.elapsed().as_secs_f64();
        if !a.json {
            print_report(&report, secs);
        }
        reports.push(report);
    }
    let all_ok = reports.iter().all(|r| r.verdict != Verdict::Failed)
        && custody.as_ref().is_none_or(|c| c.is_ok());
    let any_incomplete = reports
        .iter()
        .any(|r| r.verdict == Verdict::VerifiedIncomplete);
    if a.json {
        let out = serde_json::json!({
            "path": a.path.display().to_string(),
            "custody_chain": custody.as_ref().map(|c| match c {
                Ok(n) => serde_json::json!({"ok": true, "entries": n}),
                Err(e) => serde_json::json!({"ok": false, "error": e}),
            }),
            "items": reports,
            "verified": all_ok,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else if let Some(c) = &custody {
        match c {
            Ok(n) => println!("custody log: {n} entries, hash chain intact"),
            Err(e) => println!("custody log: BROKEN: {e}"),
        }
    }
    if is_case {
        if let Ok(case) = Case::open(&a.path) {
            let mut details = BTreeMap::new();
            details.insert(
                "result".to_string(),
                if all_ok { "verified" } else { "failed" }.to_string(),
            );
            details.insert("items".to_string(), items.len().to_string());
            let hashes = reports
                .iter()
                .filter_map(|r| {
                    Some((
                        format!(
                            "{} source sha256",
                            Path::new(&r.item_dir).file_name()?.to_string_lossy()
                        ),
                        r.source_sha256.clone()?,
                    ))
                })
                .collect();
            // Only a chain that verified gets a new link; a broken log is left as found.
            if custody.as_ref().is_some_and(|c| c.is_ok()) {
                if let Err(e) = case.append(
                    NewEntry {
                        examiner: case.info().examiner.clone(),
                        action: "verify".to_string(),
                        item: None,
                        hashes,
                        details,
                    },
                    &tool_string(),
                ) {
                    eprintln!(
                        "note: could not record the verification in the custody log: {}",
                        error_chain(&e)
                    );
                }
            }
        }
    }
    Ok(if !all_ok {
        Exit::NotVerified
    } else if any_incomplete {
        Exit::Incomplete
    } else {
        Exit::Ok
    })
}

fn print_report(r: &ItemReport, secs: f64) {
    let verdict = match r.verdict {
        Verdict::Verified => "VERIFIED",
        Verdict::VerifiedIncomplete => "VERIFIED (INCOMPLETE ACQUISITION)",
        Verdict::Failed => "FAILED",
    };
    println!("{}: {verdict}", r.item_dir);
    if let Some(s) = &r.signature {
        let key = match (&s.fingerprint, s.pinned) {
            (Some(f), true) => format!("{f} (given with --pubkey)"),
            (Some(f), false) => format!(
                "{f} (from {}; compare with the custody form)",
                s.key_file.as_deref().unwrap_or("the case")
            ),
            (None, _) => "no key".to_string(),
        };
        println!(
            "  signature: {} by key {} {key}",
            if s.ok { "good" } else { "BAD" },
            s.keynum
        );
    }
    for f in &r.files {
        println!(
            "  {:<14} {}",
            f.name,
            if f.ok {
                "hash matches"
            } else {
                "HASH MISMATCH"
            }
        );
    }
    if let Some(i) = &r.image {
        let rate = if secs > 0.0 {
            i.bytes as f64 / secs / 1e6
        } else {
            0.0
        };
        println!(
            "  image: {} bytes in {} chunks, {} good, {} bad ({rate:.0} MB/s)",
            i.bytes, i.frames, i.chunks_ok, i.chunks_bad
        );
        for (name, value) in &i.recomputed {
            let ok = !i.mismatched.contains_key(name);
            println!(
                "  source {name:<7} {value} {}",
                if ok {
                    "matches the manifest"
                } else {
                    "DIFFERS from the manifest"
                }
            );
        }
    }
    for p in &r.problems {
        println!("  problem: {p}");
    }
}
