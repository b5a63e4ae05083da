//! `vestige image info`: what an image file is, by its content.

use crate::exit::Exit;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vestige_evidence::stream_hash::{Algorithm, StreamDigest, StreamHashers};
use vestige_formats::stream::{for_each_block, BLOCK_BYTES};
use vestige_formats::ImageInfo;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Format, virtual size, files, backing chain, snapshots and stored hashes of an
    /// image (E01, qcow2, VMDK, VHD, VHDX, VDI, raw or split raw, or a Vestige item),
    /// recognised by content. Opened read-only.
    Info(InfoArgs),
    /// Read every byte of the virtual disk (decoded on several threads) and print its
    /// SHA-256, and MD5/SHA-1 when asked or when the image stores them; hashes the image
    /// stores (E01's MD5 and SHA-1) must match. Like `ewfverify`, for every format.
    Hash(HashArgs),
}

#[derive(Debug, Args)]
pub struct HashArgs {
    /// The image (any file of a split set or EWF segment set; an item directory).
    pub image: PathBuf,
    /// Also compute MD5 and SHA-1 (computed anyway when the image stores them).
    #[arg(long)]
    pub all: bool,
    /// Decoding threads (default: the machine's parallelism).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The image (any file of a split set or EWF segment set; an item directory).
    pub image: PathBuf,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: ImageCommand) -> Result<Exit> {
    match cmd {
        ImageCommand::Info(a) => info(&a),
        ImageCommand::Hash(a) => hash(&a),
    }
}

fn info(a: &InfoArgs) -> Result<Exit> {
    let image = vestige_formats::open(&a.image)?;
    let info = image.info();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_info(&info, 0);
    }
    Ok(Exit::Ok)
}

fn hash(a: &HashArgs) -> Result<Exit> {
    let image = vestige_formats::open(&a.image)?;
    let info = image.info();
    let mut algorithms = algorithms_for(&info);
    if a.all {
        algorithms.extend([Algorithm::Md5, Algorithm::Sha1]);
        algorithms.sort();
        algorithms.dedup();
    }
    let threads = crate::cmd_verify::threads(a.threads);
    let (digests, read) = read_hashed(&*image, &algorithms, threads, "hashing", |_, _| Ok(()));
    let mut problems = Vec::new();
    if let Err(e) = read {
        problems.push(format!("reading {}: {e}", a.image.display()));
    }
    problems.extend(stored_hash_mismatches(&info, &digests));
    let hex = |alg| digests.get(&alg).map(|d| d.hex.clone());
    println!(
        "{}",
        serde_json::json!({
            "image": a.image.display().to_string(),
            "format": info.format,
            "bytes": image.size(),
            "sha256": hex(Algorithm::Sha256),
            "md5": hex(Algorithm::Md5),
            "sha1": hex(Algorithm::Sha1),
            "stored_hashes_checked": info.stored_hashes.keys().collect::<Vec<_>>(),
            "problems": problems,
        })
    );
    for p in &problems {
        eprintln!("problem: {p}");
    }
    Ok(if problems.is_empty() {
        Exit::Ok
    } else {
        Exit::NotVerified
    })
}

/// SHA-256 always; MD5 and SHA-1 when the image stores them, to check them.
pub(crate) fn algorithms_for(info: &ImageInfo) -> Vec<Algorithm> {
    let mut algorithms = vec![Algorithm::Sha256];
    if info.stored_hashes.contains_key("md5") {
        algorithms.push(Algorithm::Md5);
    }
    if info.stored_hashes.contains_key("sha1") {
        algorithms.push(Algorithm::Sha1);
    }
    algorithms
}

/// Reads every byte of `image` in order, decoded on `threads` threads, hashing it with
/// `algorithms` (one thread each) and handing each block to `each` (offset, bytes) with a
/// progress display. Returns the digests of what was read, and the first error.
pub(crate) fn read_hashed(
    image: &dyn vestige_formats::ReadAt,
    algorithms: &[Algorithm],
    threads: usize,
    label: &'static str,
    mut each: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> (BTreeMap<Algorithm, StreamDigest>, std::io::Result<()>) {
    let hashers = StreamHashers::<Vec<u8>>::start(algorithms, 4);
    let size = image.size();
    let progress = Arc::new(AtomicU64::new(0));
    let display = crate::progress::show(label, Arc::new(move || size), {
        let p = Arc::clone(&progress);
        Arc::new(move || p.load(Ordering::Relaxed))
    });
    let read = for_each_block(image, BLOCK_BYTES, threads, |offset, block| {
        each(offset, &block)?;
        hashers.feed(&block);
        progress.store(offset + block.len() as u64, Ordering::Relaxed);
        Ok(())
    });
    display.finish();
    (hashers.finish(), read)
}

/// Every stored hash of the image that differs from the computed one, said plainly.
pub(crate) fn stored_hash_mismatches(
    info: &ImageInfo,
    digests: &BTreeMap<Algorithm, StreamDigest>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (alg, stored) in &info.stored_hashes {
        let which = match alg.as_str() {
            "md5" => Algorithm::Md5,
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            _ => continue,
        };
        let computed = digests.get(&which).map_or("", |d| d.hex.as_str());
        if !computed.eq_ignore_ascii_case(stored) {
            problems.push(format!(
                "{alg}: the image stores {stored}, its data hashes to {computed}"
            ));
        }
    }
    problems
}

/// The human-readable form; a backing image is indented under its child. Every string
/// from the image is escaped (file names and metadata are evidence).
fn print_info(i: &ImageInfo, depth: usize) {
    let pad = "  ".repeat(depth);
    let safe = |s: &str| vestige_evidence::text::display_safe(s.as_bytes());
    println!(
        "{pad}format: {}{}",
        safe(&i.format),
        i.variant
            .as_deref()
            .map(|v| format!(" ({})", safe(v)))
            .unwrap_or_default()
    );
    println!("{pad}virtual size: {} bytes", i.virtual_size_bytes);
    for f in &i.files {
        println!("{pad}file: {}", safe(&f.to_string_lossy()));
    }
    for (alg, h) in &i.stored_hashes {
        println!("{pad}stored {}: {}", safe(alg), safe(h));
    }
    for s in &i.snapshots {
        println!(
            "{pad}snapshot {}: {} ({} bytes{})",
            safe(&s.id),
            safe(&s.name),
            s.virtual_size_bytes,
            s.taken_utc
                .as_deref()
                .map(|t| format!(", taken {}", safe(t)))
                .unwrap_or_default()
        );
    }
    for n in &i.notes {
        println!("{pad}note: {}", safe(n));
    }
    if let Some(b) = &i.backing {
        println!("{pad}backing image:");
        print_info(b, depth + 1);
    }
}
