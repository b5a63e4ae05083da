//! `acquire disk`: one source into one evidence item of a case, signed.
//!
//! Order of work: validate the item name → open the source read-only (BLKROSET) → refuse an
//! output that lives on the source → create the item directory → run the pipeline over the
//! source through [`RescueReader`] (bad sectors retried, zero-filled, recorded) → write
//! errors.map (GNU ddrescue mapfile) → write manifest.json → sign the checksum list
//! (SHA256.sig) → append to the custody log.
//! An acquisition that stops early keeps its partial image, sealed with a seek table, and a
//! manifest that says `incomplete` and why; its signature attests exactly that. So does one
//! with unreadable sectors: its hash is that of the zero-filled image, and the manifest
//! and errors.map say which bytes those are.

use crate::pipeline::{self, PipelineConfig, Progress, StopReason};
use crate::rescue::{ddrescue_mapfile, RescueConfig, RescueReader, RescueReport};
use crate::seal::{self, ItemContext, ListedFile};
use crate::{host, source};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use vestige_evidence::custody::{now_utc_rfc3339, CustodyError};
use vestige_evidence::error_chain;
use vestige_evidence::fsutil::{sha256_hex, write_new};
use vestige_evidence::manifest::{
    Manifest, OutputFile, RescueInfo, Status, ERRORS_MAP_FILE, IMAGE_FILE, MANIFEST_FORMAT,
};

/// What to acquire and how.
#[derive(Debug)]
pub struct DiskRequest<'a> {
    /// A block device or a regular file.
    pub source: &'a Path,
    /// The case, item, examiner and key.
    pub ctx: ItemContext<'a>,
    /// The pipeline settings.
    pub pipeline: PipelineConfig,
    /// Bad-sector handling (the sector size is taken from the source).
    pub rescue: RescueConfig,
}

/// The outcome of an acquisition that produced an item.
#[derive(Debug)]
pub struct DiskOutcome {
    /// The item directory.
    pub item_dir: PathBuf,
    /// The manifest as written.
    pub manifest: Manifest,
    /// Why it is incomplete, if it is.
    pub stopped: Option<StopReason>,
}

/// Why an acquisition produced no item.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// The item name cannot be a directory name.
    #[error("item name {name:?}: {reason}")]
    ItemName {
        /// The name given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The source could not be opened.
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// The output would be written onto the source.
    #[error("refusing to write evidence onto the source: {0}")]
    OutputOnSource(String),
    /// The item exists already.
    #[error("{path}: item already exists; choose another --item name")]
    ItemExists {
        /// The item directory.
        path: PathBuf,
    },
    /// Output I/O failed before any evidence was written.
    #[error("{path}: cannot {what}")]
    Output {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The custody log could not be appended.
    #[error(transparent)]
    Custody(#[from] CustodyError),
}

/// Wraps an I/O error on a source (a device, a dump file, an interface) with its path and
/// what was being done.
pub(crate) fn source_io_err<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(io::Error) -> AcquireError + 'a {
    move |source| {
        AcquireError::Source(source::SourceError::Io {
            path: path.to_path_buf(),
            what,
            source,
        })
    }
}

/// Checks that a name is usable as one directory name inside the case.
pub fn check_item_name(name: &str) -> Result<(), AcquireError> {
    let bad = |reason| {
        Err(AcquireError::ItemName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name == "." || name == ".." {
        return bad("must be a plain, non-empty directory name");
    }
    if name.len() > 200 {
        return bad("is longer than 200 bytes");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("must not contain a path separator");
    }
    if name.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    if name.starts_with('-') {
        return bad("must not start with '-'");
    }
    Ok(())
}

/// Runs one disk acquisition. See the module docs for the order of work.
pub fn acquire_disk(
    req: &DiskRequest<'_>,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<DiskOutcome, AcquireError> {
    check_item_name(req.ctx.item)?;
    let case_dir = req.ctx.case.dir();
    let out_err = |path: &Path, what| {
        let path = path.to_path_buf();
        move |source| AcquireError::Output { path, what, source }
    };
    // Checked before the source is opened: BLKROSET on a disk whose file system holds the
    // case would break that file system's writes, and the evidence would land on the target.
    let device = source::device_number(req.source).map_err(|e| {
        AcquireError::Source(source::SourceError::Io {
            path: req.source.to_path_buf(),
            what: "stat it",
            source: e,
        })
    })?;
    if let Some(dev) = device {
        if let Some(why) = source::output_overlaps_source(dev, case_dir)
            .map_err(out_err(case_dir, "stat the case directory"))?
        {
            return Err(AcquireError::OutputOnSource(why));
        }
    }
    let src = source::open(req.source)?;
    let (item_dir, image) = req.ctx.create_item_with_file(IMAGE_FILE)?;

    let host = host::host_info();
    let started = now_utc_rfc3339();
    tracing::info!(source = %req.source.display(), size = src.identity.size_bytes,
        item = %item_dir.display(), "acquisition started");
    let rescue_cfg = RescueConfig {
        sector_bytes: src.identity.logical_sector_size.unwrap_or(512),
        ..req.rescue
    };
    let block_device = src.device_number.is_some();
    let source_file = src.reader.file();
    let rescuer = RescueReader::new(
        &src.reader,
        source::open_direct(req.source),
        rescue_cfg,
        move || source::current_size(source_file, block_device),
    );
    let out = pipeline::run(&rescuer, image, &req.pipeline, progress, cancel);
    let finished = now_utc_rfc3339();
    let rescued = rescuer.report();

    // The mapfile covers the whole source: read, unreadable, never tried.
    let map = ddrescue_mapfile(
        src.identity.size_bytes,
        out.bytes_acquired,
        &rescued.unreadable,
        &format!(
            "Mapfile of {} (GNU ddrescue format; ddrescuelog reads it)\nsource: {}\nitem: {}\nstarted {started}, finished {finished}",
            req.ctx.tool.name,
            src.identity.path,
            item_dir.display()
        ),
    );
    let map_written = write_new(&item_dir.join(ERRORS_MAP_FILE), map.as_bytes());
    let status = if out.stopped.is_none() && rescued.unreadable.is_empty() {
        Status::Complete
    } else {
        Status::Incomplete
    };
    let incomplete_reason = incompleteness(
        out.stopped.as_ref(),
        out.bytes_acquired,
        src.identity.size_bytes,
        &rescued,
        rescue_cfg.retries,
        map_written.as_ref().err(),
    );
    let mut acquisition = out.acquisition_info(
        &req.pipeline,
        src.identity.size_bytes,
        rescued.unreadable.clone(),
    );
    acquisition.rescue = Some(RescueInfo {
        retries: rescue_cfg.retries,
        sector_size_bytes: rescue_cfg.sector_bytes,
        direct_io: rescued.direct_io,
        failed_reads: rescued.failed_reads,
        recovered_sectors: rescued.recovered_sectors,
        unreadable_bytes: rescued.unreadable_bytes(),
        map_file: ERRORS_MAP_FILE.to_string(),
    });
    let mut outputs = vec![OutputFile {
        name: IMAGE_FILE.to_string(),
        size_bytes: out.image_size,
        sha256: out.image_sha256.clone(),
    }];
    let mut listed = vec![ListedFile {
        name: IMAGE_FILE.to_string(),
        sha256: out.image_sha256.clone(),
    }];
    if map_written.is_ok() {
        let sha256 = sha256_hex(map.as_bytes());
        outputs.push(OutputFile {
            name: ERRORS_MAP_FILE.to_string(),
            size_bytes: map.len() as u64,
            sha256: sha256.clone(),
        });
        listed.push(ListedFile {
            name: ERRORS_MAP_FILE.to_string(),
            sha256,
        });
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_string(),
        status,
        incomplete_reason,
        tool: req.ctx.tool.clone(),
        case: req.ctx.case_ref(),
        source: src.identity.clone(),
        host,
        times: seal::times(started, finished),
        acquisition,
        hashes: out.source_hashes(),
        chunks: out.chunk_digests(&req.pipeline),
        outputs,
        signing_key: Some(req.ctx.key_ref()),
        memory: None,
        capture: None,
    };
    let manifest_sha = req.ctx.seal(&item_dir, &manifest, &listed)?;

    let mut hashes = BTreeMap::new();
    hashes.insert("source sha256".to_string(), out.sha256.clone());
    if let Some(m) = &out.md5 {
        hashes.insert("source md5".to_string(), m.clone());
    }
    if let Some(s) = &out.sha1 {
        hashes.insert("source sha1".to_string(), s.clone());
    }
    hashes.insert("image.zst sha256".to_string(), out.image_sha256.clone());
    hashes.insert("manifest.json sha256".to_string(), manifest_sha);
    let mut details = BTreeMap::new();
    details.insert("source".to_string(), src.identity.path.clone());
    details.insert("status".to_string(), format!("{status:?}").to_lowercase());
    details.insert("bytes_acquired".to_string(), out.bytes_acquired.to_string());
    details.insert(
        "bytes_unreadable".to_string(),
        rescued.unreadable_bytes().to_string(),
    );
    req.ctx.record_custody("acquire-disk", hashes, details)?;
    Ok(DiskOutcome {
        item_dir,
        manifest,
        stopped: out.stopped,
    })
}

/// Why the item is not a complete copy, in words for the manifest: unreadable sectors
/// (zero-filled), an early stop (and which bytes are missing), a mapfile not written.
fn incompleteness(
    stopped: Option<&StopReason>,
    acquired: u64,
    size: u64,
    rescued: &RescueReport,
    retries: u32,
    map_error: Option<&io::Error>,
) -> Option<String> {
    let mut why = Vec::new();
    if !rescued.unreadable.is_empty() {
        why.push(format!(
            "{} bytes in {} ranges could not be read after {retries} retries and are zero-filled in the image (acquisition.unreadable_ranges, {ERRORS_MAP_FILE})",
            rescued.unreadable_bytes(),
            rescued.unreadable.len()
        ));
    }
    if let Some(r) = stopped {
        why.push(format!(
            "{}; bytes 0..{acquired} acquired, {acquired}..{size} missing",
            error_chain(r)
        ));
    }
    if let Some(e) = map_error {
        why.push(format!("{ERRORS_MAP_FILE} could not be written: {e}"));
    }
    (!why.is_empty()).then(|| why.join("; "))
}
