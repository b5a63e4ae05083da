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

use crate::pipeline::{self, PipelineConfig, Prefix, Progress, StopReason};
use crate::rescue::{ddrescue_mapfile, RescueConfig, RescueReader, RescueReport};
use crate::resume::{self, JournalFrame, JournalHeader, JournalWriter, ResumeError, JOURNAL_FILE};
use crate::seal::{self, ItemContext, ListedFile};
use crate::{host, source};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use vestige_evidence::custody::{now_utc_rfc3339, CustodyError};
use vestige_evidence::error_chain;
use vestige_evidence::fsutil::{sha256_file, sha256_hex, write_new};
use vestige_evidence::manifest::{
    Manifest, OutputFile, RescueInfo, ResumeRecord, Status, ERRORS_MAP_FILE, IMAGE_FILE,
    MANIFEST_FILE, MANIFEST_FORMAT, SIGNATURE_FILE,
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
    /// Resume the interrupted acquisition in the item instead of starting a new one.
    pub resume: bool,
    /// Refuse to start when the evidence medium cannot hold the worst case.
    pub check_space: bool,
    /// Also write the image as an E01 segment set in the item (see [`crate::e01`]).
    pub e01: bool,
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
    /// Why the E01 asked for was not written (the item is sealed without it).
    pub e01_error: Option<String>,
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
    /// The acquisition cannot be resumed.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// The evidence medium is too small for the worst case.
    #[error("{path}: {free} bytes free, up to {needed} needed (the source stored incompressible, plus the seal); nothing acquired. Free space or use a larger medium (--skip-space-check if the data is known to compress)")]
    NoSpace {
        /// The case directory.
        path: PathBuf,
        /// Bytes available.
        free: u64,
        /// Bytes needed at worst.
        needed: u64,
    },
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

/// Runs one disk acquisition, or resumes one (`req.resume`). See the module docs for the
/// order of work and [`crate::resume`] for resuming.
pub fn acquire_disk(
    req: &DiskRequest<'_>,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<DiskOutcome, AcquireError> {
    check_item_name(req.ctx.item)?;
    let case_dir = req.ctx.case.dir();
    // Checked before the source is opened: BLKROSET on a disk whose file system holds the
    // case would break that file system's writes, and the evidence would land on the target.
    let device = source::device_number(req.source).map_err(source_io_err(req.source, "stat it"))?;
    if let Some(dev) = device {
        if let Some(why) = source::output_overlaps_source(dev, case_dir).map_err(|source| {
            AcquireError::Output {
                path: case_dir.to_path_buf(),
                what: "stat the case directory",
                source,
            }
        })? {
            return Err(AcquireError::OutputOnSource(why));
        }
    }
    let src = source::open(req.source)?;
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
    let item_dir = case_dir.join(req.ctx.item);
    let start = if req.resume {
        resume_start(req, &src, &rescuer, &item_dir, progress)?
    } else {
        fresh_start(req, &src)?
    };
    let StartPoint {
        image,
        cfg,
        prefix,
        header,
        kept,
    } = start;
    let reserve = resume::seal_reserve_bytes(src.identity.size_bytes, cfg.chunk_size as u64);
    let mut journal = JournalWriter::create(&item_dir, &header, &kept, &rescuer, reserve)?;
    let host = host::host_info();
    tracing::info!(source = %req.source.display(), size = src.identity.size_bytes,
        item = %item_dir.display(), from_byte = prefix.bytes(), "acquisition started");
    let out = pipeline::run_from(
        &rescuer,
        image,
        &cfg,
        progress,
        cancel,
        prefix,
        &mut journal,
    );
    journal.release_reserve();
    let finished = now_utc_rfc3339();
    let rescued = rescuer.report();

    // The mapfile covers the whole source: read, unreadable, never tried.
    let map = ddrescue_mapfile(
        src.identity.size_bytes,
        out.bytes_acquired,
        &rescued.unreadable,
        &format!(
            "Mapfile of {} (GNU ddrescue format; ddrescuelog reads it)\nsource: {}\nitem: {}\nstarted {}, finished {finished}",
            req.ctx.tool.name,
            src.identity.path,
            item_dir.display(),
            header.started_utc
        ),
    );
    let map_written = write_new(&item_dir.join(ERRORS_MAP_FILE), map.as_bytes());
    let status = if out.stopped.is_none() && rescued.unreadable.is_empty() {
        Status::Complete
    } else {
        Status::Incomplete
    };
    let mut incomplete_reason = incompleteness(
        out.stopped.as_ref(),
        out.bytes_acquired,
        src.identity.size_bytes,
        &rescued,
        rescue_cfg.retries,
        map_written.as_ref().err(),
    );
    if out.stopped.is_some() {
        let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let how = format!(
            "resume with: vestige acquire disk {} --case {} --item {} --resume (with the same signing key)",
            absolute(req.source).display(),
            absolute(case_dir).display(),
            req.ctx.item
        );
        incomplete_reason = Some(match incomplete_reason {
            Some(r) => format!("{r}; {how}"),
            None => how,
        });
    }
    let mut acquisition =
        out.acquisition_info(&cfg, src.identity.size_bytes, rescued.unreadable.clone());
    acquisition.rescue = Some(RescueInfo {
        retries: rescue_cfg.retries,
        sector_size_bytes: rescue_cfg.sector_bytes,
        direct_io: rescued.direct_io,
        failed_reads: rescued.failed_reads,
        recovered_sectors: rescued.recovered_sectors,
        unreadable_bytes: rescued.unreadable_bytes(),
        map_file: ERRORS_MAP_FILE.to_string(),
    });
    acquisition.resumes.clone_from(&header.resumes);
    let mut outputs = vec![OutputFile {
        name: IMAGE_FILE.to_string(),
        size_bytes: out.image_size,
        sha256: out.image_sha256.clone(),
    }];
    let mut listed = vec![ListedFile {
        name: IMAGE_FILE.to_string(),
        sha256: out.image_sha256.clone(),
    }];
    let e01_error = if req.e01 {
        let case = req.ctx.case_ref();
        let segments = e01_segments(
            &item_dir,
            &out,
            &crate::e01::E01Request {
                case: &case,
                source: &src.identity,
                started_utc: &header.started_utc,
                unreadable: &rescued.unreadable,
                md5: out.md5.as_deref().unwrap_or_default(),
                sha1: out.sha1.as_deref().unwrap_or_default(),
                tool_version: &req.ctx.tool.version,
            },
        );
        match segments {
            Ok(files) => {
                for f in files {
                    outputs.push(OutputFile {
                        name: f.name.clone(),
                        size_bytes: f.size_bytes,
                        sha256: f.sha256.clone(),
                    });
                    listed.push(ListedFile {
                        name: f.name,
                        sha256: f.sha256,
                    });
                }
                None
            }
            Err(why) => {
                tracing::warn!(item = %item_dir.display(), "E01 not written: {why}");
                Some(why)
            }
        }
    } else {
        None
    };
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
        times: seal::times(header.started_utc.clone(), finished),
        acquisition,
        hashes: out.source_hashes(),
        chunks: out.chunk_digests(&cfg),
        outputs,
        signing_key: Some(req.ctx.key_ref()),
        memory: None,
        capture: None,
    };
    let manifest_sha = req.ctx.seal(&item_dir, &manifest, &listed)?;
    // Every byte was read (unreadable sectors included, zero-filled): nothing is left to
    // resume, so the journal goes.
    if out.stopped.is_none() {
        journal.finish(&item_dir);
    }

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
    if let Some(r) = header.resumes.last() {
        details.insert("resumed_at_byte".to_string(), r.resumed_at_byte.to_string());
        details.insert("resumes".to_string(), header.resumes.len().to_string());
        if let Some(old) = &r.superseded_manifest_sha256 {
            hashes.insert("superseded manifest.json sha256".to_string(), old.clone());
        }
    }
    req.ctx.record_custody("acquire-disk", hashes, details)?;
    Ok(DiskOutcome {
        item_dir,
        manifest,
        stopped: out.stopped,
        e01_error,
    })
}

/// The E01 of a finished acquisition, written from its image and checked against the
/// source's MD5 and SHA-1; its segments as output files. An acquisition that stopped
/// early gets none (it is written when a resume completes the item).
fn e01_segments(
    item_dir: &Path,
    out: &pipeline::PipelineOutput,
    req: &crate::e01::E01Request<'_>,
) -> Result<Vec<OutputFile>, String> {
    if out.stopped.is_some() {
        return Err(
            "the acquisition stopped early; the E01 is written when a resume with --format e01 completes it"
                .to_string(),
        );
    }
    if req.md5.is_empty() || req.sha1.is_empty() {
        return Err("the source's MD5 and SHA-1 were not computed (this acquisition was resumed from a run without --md5 --sha1), so the E01's could not be checked".to_string());
    }
    tracing::info!(item = %item_dir.display(), "writing the E01 from the image");
    let segments = crate::e01::write_from_image(item_dir, &item_dir.join(IMAGE_FILE), req)?;
    segments
        .iter()
        .map(|p| {
            let (sha256, size_bytes) =
                sha256_file(p).map_err(|e| format!("hashing {}: {e}", p.display()))?;
            Ok(OutputFile {
                name: p
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().to_string()),
                size_bytes,
                sha256,
            })
        })
        .collect()
}

/// Where a run starts: a new item, or the verified prefix of an interrupted one.
struct StartPoint {
    image: File,
    cfg: PipelineConfig,
    prefix: Prefix,
    header: JournalHeader,
    kept: Vec<JournalFrame>,
}

/// A new item: the free space is checked first, so a refusal leaves nothing behind.
fn fresh_start(req: &DiskRequest<'_>, src: &source::Source) -> Result<StartPoint, AcquireError> {
    let mut cfg = req.pipeline.clone();
    // The E01 stores MD5 and SHA-1; they are checked against the source's.
    if req.e01 {
        cfg.md5 = true;
        cfg.sha1 = true;
    }
    let size = src.identity.size_bytes;
    if req.check_space {
        check_free_space(
            req.ctx.case.dir(),
            if req.e01 {
                size.saturating_mul(2)
            } else {
                size
            },
            resume::seal_reserve_bytes(size, cfg.chunk_size as u64),
            0,
        )?;
    }
    let (_, image) = req.ctx.create_item_with_file(IMAGE_FILE)?;
    let header = resume::new_header(now_utc_rfc3339(), src.identity.clone(), &cfg);
    Ok(StartPoint {
        image,
        prefix: Prefix::empty(&cfg),
        cfg,
        header,
        kept: Vec::new(),
    })
}

/// An interrupted item: its journal read, the source recognised, the image re-verified and
/// cut after the last good frame. Until the image is cut nothing in the item changes, so a
/// refused resume leaves it as it was.
fn resume_start(
    req: &DiskRequest<'_>,
    src: &source::Source,
    rescuer: &RescueReader<'_>,
    item_dir: &Path,
    progress: &Progress,
) -> Result<StartPoint, AcquireError> {
    let journal_path = item_dir.join(JOURNAL_FILE);
    if !journal_path.exists() {
        let why = if item_dir.join(MANIFEST_FILE).exists() {
            "no resume journal: the item is complete, or is not a disk acquisition"
        } else if item_dir.is_dir() {
            "no resume journal: the acquisition was interrupted before its first durable point; start a new item"
        } else {
            "no such item"
        };
        return Err(ResumeError::Journal {
            path: journal_path,
            reason: why.to_string(),
        }
        .into());
    }
    let journal = resume::read_journal(&journal_path)?;
    if let Some(why) = &journal.ignored {
        tracing::warn!(journal = %journal_path.display(), "{why}");
    }
    resume::check_same_source(&journal.header.source, &src.identity)?;
    let h = &journal.header;
    let mut cfg = req.pipeline.clone();
    cfg.chunk_size = usize::try_from(h.chunk_size_bytes).unwrap_or(usize::MAX);
    cfg.level = h.zstd_level;
    cfg.md5 = h.md5;
    cfg.sha1 = h.sha1;
    cfg.sync_every_bytes = h.sync_every_bytes;
    let image_path = item_dir.join(IMAGE_FILE);
    let mut image = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image_path)
        .map_err(|source| AcquireError::Output {
            path: image_path.clone(),
            what: "open the image to resume it",
            source,
        })?;
    progress
        .bytes_total
        .store(src.identity.size_bytes, Ordering::Relaxed);
    tracing::info!(image = %image_path.display(), chunks = journal.frames.len(),
        "re-verifying the journaled part of the image");
    let verified =
        resume::verify_image(&image, &image_path, &journal, Prefix::empty(&cfg), |done| {
            progress.bytes_done.store(done, Ordering::Relaxed)
        });
    if let Some(why) = &verified.discarded {
        tracing::warn!("{why}");
    }
    let kept_chunks = verified.prefix.chunks();
    let checked = resume::recheck_source(&src.reader, &src.identity.path, &journal, kept_chunks)?;
    if req.check_space {
        // Cutting the image gives back what lies after the kept frames.
        let cut = image
            .metadata()
            .map_or(0, |m| m.len().saturating_sub(verified.prefix.image_bytes()));
        check_free_space(
            req.ctx.case.dir(),
            src.identity.size_bytes - verified.prefix.bytes(),
            resume::seal_reserve_bytes(src.identity.size_bytes, cfg.chunk_size as u64),
            cut,
        )?;
    }

    // From here on the item changes: the old seal goes (its hash stays in the custody log
    // and in the new manifest), the image is cut after its verified frames.
    let old_manifest = item_dir.join(MANIFEST_FILE);
    let superseded = match sha256_file(&old_manifest) {
        Ok((sha, _)) => Some(sha),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(AcquireError::Output {
                path: old_manifest,
                what: "read the interrupted run's manifest",
                source,
            })
        }
    };
    for name in [MANIFEST_FILE, SIGNATURE_FILE, ERRORS_MAP_FILE] {
        let p = item_dir.join(name);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AcquireError::Output {
                    path: p,
                    what: "remove the interrupted run's seal",
                    source,
                })
            }
        }
    }
    resume::cut_image(&mut image, &image_path, verified.prefix.image_bytes())?;
    let kept_bytes = verified.prefix.bytes();
    let kept: Vec<JournalFrame> = journal
        .frames
        .iter()
        .take(usize::try_from(kept_chunks).unwrap_or(usize::MAX))
        .cloned()
        .collect();
    let mut earlier = journal.rescue.clone();
    earlier
        .unreadable
        .retain(|r| r.offset_bytes + r.length_bytes <= kept_bytes);
    rescuer.seed(&earlier);
    let mut header = journal.header.clone();
    header.resumes.push(ResumeRecord {
        resumed_utc: now_utc_rfc3339(),
        journaled_chunks: journal.frames.len() as u64,
        verified_chunks: kept_chunks,
        resumed_at_byte: kept_bytes,
        discarded: verified.discarded,
        source_chunks_rechecked: checked,
        superseded_manifest_sha256: superseded,
    });
    tracing::info!(
        kept_bytes,
        kept_chunks,
        "image verified; resuming the acquisition"
    );
    Ok(StartPoint {
        image,
        cfg,
        prefix: verified.prefix,
        header,
        kept,
    })
}

/// Refuses to start when the medium holding `dir` cannot take `remaining` source bytes stored
/// incompressible (zstd adds well under 0.1 %) plus `reserve` for the seal, counting
/// `reclaimable` bytes that will be freed before writing starts as free.
fn check_free_space(
    dir: &Path,
    remaining: u64,
    reserve: u64,
    reclaimable: u64,
) -> Result<(), AcquireError> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| AcquireError::Output {
        path: dir.to_path_buf(),
        what: "query the free space of the evidence medium",
        source: io::Error::from(e),
    })?;
    let free = st
        .blocks_available()
        .saturating_mul(st.fragment_size())
        .saturating_add(reclaimable);
    let needed = remaining + remaining / 1000 + reserve;
    if free < needed {
        return Err(AcquireError::NoSpace {
            path: dir.to_path_buf(),
            free,
            needed,
        });
    }
    Ok(())
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
