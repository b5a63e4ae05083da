//! `vestige export e01`: an EnCase 6 style E01 segment set of an item (verified on the
//! way) or of any image Vestige reads, for labs whose tools take E01.
//!
//! The E01 stores MD5 and SHA-1 of the media (EWF1 has no SHA-256 field); both must equal
//! what the source says: the item's manifest (whose signature `verify` checks while the
//! bytes stream through), or the hashes an input E01 stores. Otherwise every segment
//! written is removed. The segments' SHA-256 go into the case's custody log when the input
//! is an item.

use crate::cmd_case::tool_string;
use crate::cmd_verify::{load_pubkey, threads};
use crate::exit::Exit;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use vestige_evidence::custody::{Case, NewEntry};
use vestige_evidence::manifest::{Manifest, MANIFEST_FILE, SIGNATURE_FILE};
use vestige_evidence::stream_hash::Algorithm;
use vestige_evidence::verify::{verify_item, Verdict};
use vestige_formats::ewf_write::{EwfCompression, EwfMetadata, EwfOptions, EwfSummary, EwfWriter};
use vestige_formats::FormatError;

#[derive(Debug, Args)]
pub struct E01Args {
    /// The item directory, or an image file (any format Vestige reads).
    pub input: PathBuf,
    /// The first segment to write, `NAME.E01` (`.E01` is added when missing); later
    /// segments are NAME.E02 … NAME.E99, NAME.EAA … None may exist.
    pub out: PathBuf,
    /// The public key that must have signed the item.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Case number (default: the item's case id).
    #[arg(long)]
    pub case_number: Option<String>,
    /// Evidence number (default: the item's name, or the image's file name).
    #[arg(long)]
    pub evidence_number: Option<String>,
    /// Description (default: the source's model and path).
    #[arg(long)]
    pub description: Option<String>,
    /// Examiner (default: the item's examiner).
    #[arg(long)]
    pub examiner: Option<String>,
    /// Notes (default: the item's notes).
    #[arg(long)]
    pub notes: Option<String>,
    /// Segment file size in MiB (EnCase and ewfacquire default to 1.4 GiB).
    #[arg(long, default_value_t = 1434)]
    pub segment_mib: u64,
    /// Chunk compression.
    #[arg(long, value_enum, default_value_t = Level::Fast)]
    pub compression: Level,
    /// Threads that decode the input and compress chunks.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `--compression`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Level {
    /// Stored raw.
    None,
    /// Deflate level 1.
    Fast,
    /// Deflate level 9.
    Best,
}

/// The segment name after `out` (which must end in `.E01`), `number` from 1.
fn segment(first: &Path, number: u32) -> Option<PathBuf> {
    vestige_formats::ewf_write::segment_path(first, number)
}

/// `out` with `.E01` added unless it ends in `.E01` or `.e01`.
fn first_segment(out: &Path) -> PathBuf {
    match out.extension().and_then(|e| e.to_str()) {
        Some("E01" | "e01") => out.to_path_buf(),
        _ => {
            let mut s = out.as_os_str().to_owned();
            s.push(".E01");
            PathBuf::from(s)
        }
    }
}

pub fn run(a: &E01Args) -> Result<Exit> {
    let out = first_segment(&a.out);
    let options = EwfOptions {
        segment_bytes: a.segment_mib.max(1) << 20,
        compression: match a.compression {
            Level::None => EwfCompression::None,
            Level::Fast => EwfCompression::Fast,
            Level::Best => EwfCompression::Best,
        },
        threads: threads(a.threads),
        ..EwfOptions::default()
    };
    let is_item = a.input.join(SIGNATURE_FILE).is_file();
    // Every segment name the export could use must be free: a refusal half-way would
    // otherwise leave a partial set.
    // An image is opened once, here; an item's manifest gives the size.
    let image = if is_item {
        None
    } else {
        Some(vestige_formats::open(&a.input)?)
    };
    let size = match &image {
        Some(i) => Some(i.size()),
        None => read_manifest(&a.input).ok().map(|m| m.source.size_bytes),
    };
    if let Some(size) = size {
        let max_segments = size / options.segment_bytes.max(1) + 2;
        for n in 1..=u32::try_from(max_segments).unwrap_or(u32::MAX).min(16_000) {
            match segment(&out, n) {
                Some(p) if p.exists() => bail!("{}: exists; refusing to overwrite", p.display()),
                Some(_) => {}
                None => break,
            }
        }
    }
    // Set once the first segment exists: only then are segments ours to remove.
    let mut created = false;
    let result = match image {
        None => from_item(a, &out, &options, &mut created),
        Some(image) => from_image(a, &*image, &out, &options, &mut created),
    };
    match result {
        Ok(Some(summary)) => {
            println!(
                "{}",
                serde_json::json!({
                    "out": out.display().to_string(),
                    "segments": summary.segments.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    "bytes": summary.media_bytes,
                    "md5": summary.md5,
                    "sha1": summary.sha1,
                    "chunks": summary.chunk_count,
                    "compressed_chunks": summary.compressed_chunks,
                })
            );
            Ok(Exit::Ok)
        }
        Ok(None) | Err(_) => {
            // All were created by this export: existing names were refused first.
            if created {
                vestige_formats::ewf_write::remove_segment_set(&out);
            }
            if let Err(e) = result {
                eprintln!("problem: {e:#}");
            }
            eprintln!("export failed; no segment was left at {}", out.display());
            Ok(Exit::NotVerified)
        }
    }
}

/// The item's manifest, read with a cap (it is evidence until its signature is checked).
fn read_manifest(item: &Path) -> Result<Manifest> {
    let path = item.join(MANIFEST_FILE);
    let bytes = vestige_evidence::fsutil::read_capped(&path, 64 << 20)
        .with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The metadata every export writes; the item or the arguments fill in the rest.
fn base_metadata() -> EwfMetadata {
    EwfMetadata {
        acquiry_software: "vestige".to_string(),
        acquiry_software_version: env!("CARGO_PKG_VERSION").to_string(),
        acquiry_os: std::env::consts::OS.to_string(),
        system_date_unix: now_unix(),
        ..EwfMetadata::default()
    }
}

/// Adapts the writer to the `Write` sink `verify_item` streams the image into.
struct Sink<'a>(&'a mut EwfWriter);

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(FormatError::into_io)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn from_item(
    a: &E01Args,
    out: &Path,
    options: &EwfOptions,
    created: &mut bool,
) -> Result<Option<EwfSummary>> {
    let pubkey = a.pubkey.as_deref().map(load_pubkey).transpose()?;
    // Read before verification only to fill the E01's header; the hashes are compared
    // only once `verify` has checked the signature over this manifest.
    let m = read_manifest(&a.input)?;
    let item_name = a
        .input
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().to_string());
    // The acquisition's own header (as `acquire disk --format e01` writes it), with the
    // examiner's overrides; the evidence number is the item's directory name.
    let base = vestige_acquire::e01::ewf_metadata(
        &m.case,
        &m.source,
        &m.times.started_utc,
        env!("CARGO_PKG_VERSION"),
    );
    let meta = EwfMetadata {
        case_number: a.case_number.clone().unwrap_or(base.case_number.clone()),
        evidence_number: a.evidence_number.clone().unwrap_or(item_name),
        description: a.description.clone().unwrap_or(base.description.clone()),
        examiner_name: a.examiner.clone().unwrap_or(base.examiner_name.clone()),
        notes: a.notes.clone().unwrap_or(base.notes.clone()),
        ..base
    };
    // An item stopped early holds part of the disk; an E01 would claim all of it. One
    // whose only gaps are unreadable sectors (zero-filled, in the manifest) becomes an E01
    // with those sectors in its error2 section, as ewfacquire writes them.
    let acq = &m.acquisition;
    if acq.bytes_acquired != m.source.size_bytes || acq.bytes_expected != m.source.size_bytes {
        bail!(
            "{}: the acquisition stopped after {} of {} bytes; resume it first (an E01 cannot say which part is missing)",
            a.input.display(),
            acq.bytes_acquired,
            m.source.size_bytes
        );
    }
    let mut writer = EwfWriter::create(out, m.source.size_bytes, &meta, options)?;
    *created = true;
    vestige_acquire::e01::mark_unreadable(
        &mut writer,
        &acq.unreadable_ranges,
        options.bytes_per_sector,
    )?;
    let report = verify_item(
        &a.input,
        pubkey.as_ref(),
        threads(a.threads),
        Some(&mut Sink(&mut writer)),
    );
    if report.verdict == Verdict::Failed {
        for p in &report.problems {
            eprintln!("problem: {p}");
        }
        return Ok(None);
    }
    let summary = writer.finish()?;
    // The verified manifest's hashes of the source, against what went into the E01.
    let m = read_manifest(&a.input)?;
    let mut problems = Vec::new();
    if report.source_sha256.as_deref() != Some(m.hashes.sha256.as_str()) {
        problems.push("the manifest changed during the export".to_string());
    }
    for (name, stored, written) in [
        ("md5", &m.hashes.md5, &summary.md5),
        ("sha1", &m.hashes.sha1, &summary.sha1),
    ] {
        if let Some(s) = stored {
            if !s.eq_ignore_ascii_case(written) {
                problems.push(format!(
                    "{name}: the manifest says {s}, the E01's media hashes to {written}"
                ));
            }
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("problem: {p}");
        }
        return Ok(None);
    }
    record_custody(&a.input, &summary, &m.hashes.sha256)?;
    Ok(Some(summary))
}

fn from_image(
    a: &E01Args,
    image: &dyn vestige_formats::Image,
    out: &Path,
    options: &EwfOptions,
    created: &mut bool,
) -> Result<Option<EwfSummary>> {
    use crate::cmd_image::{read_hashed, stored_hash_mismatches};
    if a.pubkey.is_some() {
        bail!(
            "{}: --pubkey applies to Vestige items; this is an image file",
            a.input.display()
        );
    }
    let info = image.info();
    let name = a
        .input
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().to_string());
    let meta = EwfMetadata {
        case_number: a.case_number.clone().unwrap_or_default(),
        evidence_number: a.evidence_number.clone().unwrap_or(name),
        description: a
            .description
            .clone()
            .unwrap_or_else(|| format!("{} image {}", info.format, a.input.display())),
        examiner_name: a.examiner.clone().unwrap_or_default(),
        notes: a.notes.clone().unwrap_or_default(),
        acquisition_date_unix: now_unix(),
        ..base_metadata()
    };
    let mut writer = EwfWriter::create(out, image.size(), &meta, options)?;
    *created = true;
    let mut algorithms = crate::cmd_image::algorithms_for(&info);
    algorithms.retain(|a| *a != Algorithm::Sha256);
    let (digests, read) = read_hashed(
        image,
        &algorithms,
        threads(a.threads),
        "exporting",
        |_, block| writer.write(block).map_err(FormatError::into_io),
    );
    read.with_context(|| format!("exporting {} to {}", a.input.display(), out.display()))?;
    let summary = writer.finish()?;
    // The E01's own MD5/SHA-1 stand in for ours where the input stores hashes.
    let mut computed = digests;
    for (alg, hex) in [
        (Algorithm::Md5, &summary.md5),
        (Algorithm::Sha1, &summary.sha1),
    ] {
        computed
            .entry(alg)
            .or_insert_with(|| vestige_evidence::stream_hash::StreamDigest {
                hex: hex.clone(),
                bytes: summary.media_bytes,
            });
    }
    let problems = stored_hash_mismatches(&info, &computed);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("problem: {p}");
        }
        return Ok(None);
    }
    Ok(Some(summary))
}

/// An `export-e01` line in the custody log of the item's case, with every segment's
/// SHA-256.
fn record_custody(item: &Path, summary: &EwfSummary, source_sha256: &str) -> Result<()> {
    let Some(case_dir) = item.parent() else {
        return Ok(());
    };
    let Ok(case) = Case::open(case_dir) else {
        return Ok(());
    };
    let mut hashes = BTreeMap::new();
    hashes.insert("source sha256".to_string(), source_sha256.to_string());
    hashes.insert("e01 media md5".to_string(), summary.md5.clone());
    hashes.insert("e01 media sha1".to_string(), summary.sha1.clone());
    for p in &summary.segments {
        let name = p
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().to_string());
        let (sha, _) = vestige_evidence::fsutil::sha256_file(p)
            .with_context(|| format!("hashing {}", p.display()))?;
        hashes.insert(format!("{name} sha256"), sha);
    }
    let mut details = BTreeMap::new();
    details.insert(
        "out".to_string(),
        summary
            .segments
            .first()
            .map_or_else(String::new, |p| p.display().to_string()),
    );
    details.insert("segments".to_string(), summary.segments.len().to_string());
    details.insert("bytes".to_string(), summary.media_bytes.to_string());
    case.append(
        NewEntry {
            examiner: case.info().examiner.clone(),
            action: "export-e01".to_string(),
            item: item.file_name().map(|n| n.to_string_lossy().to_string()),
            hashes,
            details,
        },
        &tool_string(),
    )
    .context("recording the export in the custody log")?;
    Ok(())
}
