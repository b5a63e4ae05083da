//! `vestige acquire disk`.

use crate::cmd_case::tool_string;
use crate::exit::Exit;
use crate::{keys, progress, signals};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vestige_acquire::disk::{acquire_disk, DiskRequest};
use vestige_acquire::memory::kernel::KernelPaths;
use vestige_acquire::memory::{
    acquire_memory, DumpFormat, LiveMethod, MemoryRequest, MemorySource,
};
use vestige_acquire::pipeline::{PipelineConfig, Progress, StopReason};
use vestige_acquire::rescue::RescueConfig;
use vestige_acquire::seal::ItemContext;
use vestige_evidence::custody::{Case, NewEntry};
use vestige_evidence::error_chain;
use vestige_evidence::fsutil::sha256_file;
use vestige_evidence::manifest::{Manifest, Status, ToolInfo};
use vestige_evidence::signify::SecretKey;

#[derive(Debug, Subcommand)]
pub enum AcquireCommand {
    /// Image a block device or an image file into a signed evidence item.
    Disk(DiskArgs),
    /// Acquire physical memory (this machine's, or a hypervisor's dump) as signed LiME.
    Memory(MemoryArgs),
}

/// Where an item goes and who signs it: shared by every acquisition.
#[derive(Debug, Args)]
pub struct ItemArgs {
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
    /// Examiner running this acquisition (default: the case's examiner).
    #[arg(long)]
    pub examiner: Option<String>,
    /// Notes for the manifest.
    #[arg(long)]
    pub notes: Option<String>,
}

/// How the stream is compressed and hashed: shared by disk and memory.
#[derive(Debug, Args)]
pub struct StreamArgs {
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
}

impl StreamArgs {
    fn pipeline(&self) -> PipelineConfig {
        let mut cfg = PipelineConfig::new(self.level);
        cfg.chunk_size = usize::try_from(self.chunk_mib).unwrap_or(4) << 20;
        if let Some(t) = self.threads {
            cfg.compress_threads = t.max(1);
        }
        cfg.md5 = self.md5;
        cfg.sha1 = self.sha1;
        cfg
    }
}

#[derive(Debug, Args)]
pub struct DiskArgs {
    /// The source: a block device (set read-only with BLKROSET first) or a regular file.
    pub source: PathBuf,
    /// Extra attempts for each sector that fails to read, before it is zero-filled and
    /// recorded in errors.map and the manifest.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: u32,
    /// Resume the interrupted acquisition of --item (same source, same case): the image
    /// written so far is re-verified against its resume journal and kept, the rest is read.
    #[arg(long)]
    pub resume: bool,
    /// Make the image durable (fsync and a resume-journal entry) every this many MiB of
    /// source; an interrupted run resumes from the last such point.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1048576))]
    pub sync_every_mib: u64,
    /// Start even when the evidence medium cannot hold the source stored incompressible
    /// (for sources known to compress well). If it fills up, the item ends incomplete and
    /// can be resumed on a larger medium's free space.
    #[arg(long)]
    pub skip_space_check: bool,
    /// `e01` also writes the image as an EnCase 6 style E01 segment set in the item
    /// (image.E01 …), from the acquired image, with MD5 and SHA-1 checked against the
    /// source's and its segments signed with the rest; `zst` (default) only the container.
    #[arg(long = "format", value_enum, default_value_t = DiskFormat::Zst)]
    pub disk_format: DiskFormat,
    #[command(flatten)]
    pub item: ItemArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
}

#[derive(Debug, Args)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub item: ItemArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// How to read this machine's memory: auto tries kcore, then crash, then mem.
    #[arg(long, value_enum, default_value_t = LiveArg::Auto, conflicts_with = "from")]
    pub method: LiveArg,
    /// Convert a dump instead of reading this machine: a QEMU/libvirt ELF core, a LiME
    /// file, VMware memory (a .vmem placed by the .vmss/.vmsn beside it, or a .vmss/.vmsn
    /// with its memory inside or beside it), or a raw dump (memory-backend-file).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// The dump's format (default: detected by content).
    #[arg(long, value_enum, default_value_t = FormatArg::Auto, requires = "from")]
    pub format: FormatArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiskFormat {
    /// The Vestige container (zstd seekable), always written.
    Zst,
    /// The container and an E01 segment set.
    E01,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LiveArg {
    Auto,
    Kcore,
    Crash,
    Mem,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Auto,
    Elf,
    Lime,
    Raw,
    Vmware,
}

pub fn run(cmd: AcquireCommand) -> Result<Exit> {
    match cmd {
        AcquireCommand::Disk(a) => disk(&a),
        AcquireCommand::Memory(a) => memory(&a),
    }
}

pub fn tool_info() -> ToolInfo {
    ToolInfo {
        name: "vestige".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        binary_sha256: sha256_file(std::path::Path::new("/proc/self/exe"))
            .ok()
            .map(|(h, _)| h),
    }
}

/// An opened case, the examiner and the signing key of a new item.
pub struct ItemSetup {
    pub case: Case,
    pub examiner: String,
    pub key: SecretKey,
    pub public_key_file: String,
}

impl ItemSetup {
    /// The library's view of who makes item `a.item`, for which case, with which key.
    pub fn context<'a>(&'a self, a: &'a ItemArgs) -> ItemContext<'a> {
        ItemContext {
            case: &self.case,
            item: &a.item,
            examiner: &self.examiner,
            notes: a.notes.as_deref(),
            key: &self.key,
            public_key_file: Some(self.public_key_file.clone()),
            tool: tool_info(),
        }
    }
}

/// Opens the case, checks the item name is free, and loads (or makes) the signing key.
pub fn open_item(a: &ItemArgs) -> Result<ItemSetup> {
    open_item_for(a, false)
}

/// As [`open_item`]; `resuming` wants the item to exist instead.
fn open_item_for(a: &ItemArgs, resuming: bool) -> Result<ItemSetup> {
    let case = Case::open(&a.case).with_context(|| format!("opening case {}", a.case.display()))?;
    let examiner = a
        .examiner
        .clone()
        .unwrap_or_else(|| case.info().examiner.clone());
    vestige_acquire::disk::check_item_name(&a.item)?;
    if resuming && !case.dir().join(&a.item).is_dir() {
        bail!(
            "{}: no such item to resume",
            case.dir().join(&a.item).display()
        );
    }
    if !resuming && case.dir().join(&a.item).exists() {
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
    Ok(ItemSetup {
        case,
        examiner,
        key,
        public_key_file: pub_rel,
    })
}

fn disk(a: &DiskArgs) -> Result<Exit> {
    let setup = open_item_for(&a.item, a.resume)?;
    let pk = setup.key.public_key();
    let pub_rel = setup.public_key_file.clone();
    let mut cfg = a.stream.pipeline();
    cfg.sync_every_bytes = a.sync_every_mib << 20;

    // The total comes from the pipeline once the source is open and write-protected:
    // nothing here opens the source first.
    let (progress, display) = start_pipeline_progress("acquiring");
    let req = DiskRequest {
        source: &a.source,
        ctx: setup.context(&a.item),
        pipeline: cfg,
        rescue: RescueConfig {
            retries: a.retries,
            ..RescueConfig::default()
        },
        resume: a.resume,
        check_space: !a.skip_space_check,
        e01: a.disk_format == DiskFormat::E01,
    };
    let outcome = acquire_disk(&req, &progress, &signals::CANCEL);
    display.finish();
    let outcome = outcome?;
    let exit = report(
        &outcome.item_dir,
        &outcome.manifest,
        outcome.stopped.as_ref(),
        &pk.fingerprint(),
        &pub_rel,
    );
    if let Some(why) = &outcome.e01_error {
        eprintln!("problem: no E01 was written: {why}");
        eprintln!(
            "the item is sealed without it; `vestige export e01 {}` makes one later",
            outcome.item_dir.display()
        );
        if exit == Exit::Ok {
            return Ok(Exit::Failed);
        }
    }
    Ok(exit)
}

/// Catches Ctrl-C/SIGTERM for a clean stop and shows the pipeline's progress.
fn start_pipeline_progress(label: &'static str) -> (Arc<Progress>, progress::Display) {
    signals::catch_interrupts();
    let progress = Arc::new(Progress::default());
    let display = progress::show(
        label,
        progress::counter_of(Arc::clone(&progress), |p| &p.bytes_total),
        progress::counter_of(Arc::clone(&progress), |p| &p.bytes_done),
    );
    (progress, display)
}

/// Prints the item's summary (JSON on stdout, a line on stderr) and picks the exit code.
fn report(
    item_dir: &Path,
    m: &Manifest,
    stopped: Option<&StopReason>,
    fingerprint: &str,
    public_key: &str,
) -> Exit {
    let mut summary = serde_json::json!({
        "item": item_dir.display().to_string(),
        "status": m.status,
        "bytes_acquired": m.acquisition.bytes_acquired,
        "bytes_expected": m.acquisition.bytes_expected,
        "sha256": m.hashes.sha256,
        "md5": m.hashes.md5,
        "sha1": m.hashes.sha1,
        "image_bytes": m.outputs.first().map(|o| o.size_bytes),
        "unreadable_ranges": m.acquisition.unreadable_ranges.len(),
        "key_fingerprint": fingerprint,
        "public_key": public_key,
        "incomplete_reason": m.incomplete_reason,
    });
    if let (Some(mem), Some(obj)) = (&m.memory, summary.as_object_mut()) {
        obj.insert("memory_method".to_string(), mem.method.clone().into());
        obj.insert("memory_ranges".to_string(), mem.ranges.len().into());
        obj.insert(
            "kernel_problems".to_string(),
            serde_json::json!(mem.kernel.as_ref().map(|k| k.problems.clone())),
        );
        if let Some(v) = &mem.vmware_state {
            obj.insert("vmware_state_file".to_string(), v.path.clone().into());
            obj.insert("vmware_state_sha256".to_string(), v.sha256.clone().into());
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    if let Some(mem) = &m.memory {
        for f in &mem.fallbacks {
            eprintln!("not used: {f}");
        }
        if let Some(v) = &mem.vmware_state {
            eprintln!(
                "VMware memory placed by {} ({} regions{}), recorded in the manifest",
                v.path,
                v.regions.len(),
                if v.memory_embedded {
                    ", memory inside it"
                } else {
                    ""
                }
            );
        }
        if !mem.unreadable.is_empty() {
            eprintln!(
                "{} physical range(s) could not be read: zero-filled, listed in the manifest",
                mem.unreadable.len()
            );
        }
        if !mem.not_captured.is_empty() {
            eprintln!(
                "{} System RAM range(s) are not reachable by {}: listed in the manifest as not captured",
                mem.not_captured.len(),
                mem.method
            );
        }
    }
    match (m.status, stopped) {
        (Status::Complete, _) => {
            eprintln!(
                "acquired {} bytes; SHA-256 {}",
                m.acquisition.bytes_acquired, m.hashes.sha256
            );
            Exit::Ok
        }
        (Status::Incomplete, stopped) => {
            eprintln!(
                "INCOMPLETE: {}",
                m.incomplete_reason.clone().unwrap_or_else(
                    || stopped.map_or_else(|| "stopped early".to_string(), |s| error_chain(s))
                )
            );
            if stopped.is_some() {
                eprintln!(
                    "the partial image (bytes 0..{}) is kept in {} and marked incomplete",
                    m.acquisition.bytes_acquired,
                    item_dir.display()
                );
            } else {
                eprintln!(
                    "every byte that read is in {}; SHA-256 of the image with the unreadable bytes zero-filled: {}",
                    item_dir.display(),
                    m.hashes.sha256
                );
            }
            Exit::Incomplete
        }
    }
}

fn memory(a: &MemoryArgs) -> Result<Exit> {
    let setup = open_item(&a.item)?;
    let pk = setup.key.public_key();
    let pub_rel = setup.public_key_file.clone();
    let source = match &a.from {
        Some(path) => MemorySource::File {
            path: path.clone(),
            format: match a.format {
                FormatArg::Auto => DumpFormat::Auto,
                FormatArg::Elf => DumpFormat::ElfCore,
                FormatArg::Lime => DumpFormat::Lime,
                FormatArg::Raw => DumpFormat::Raw,
                FormatArg::Vmware => DumpFormat::Vmware,
            },
        },
        None => MemorySource::Live(match a.method {
            LiveArg::Auto => LiveMethod::Auto,
            LiveArg::Kcore => LiveMethod::Kcore,
            LiveArg::Crash => LiveMethod::Crash,
            LiveArg::Mem => LiveMethod::Mem,
        }),
    };
    let (progress, display) = start_pipeline_progress("acquiring memory");
    let req = MemoryRequest {
        source,
        ctx: setup.context(&a.item),
        pipeline: a.stream.pipeline(),
        kernel_paths: KernelPaths::default(),
    };
    let outcome = acquire_memory(&req, &progress, &signals::CANCEL);
    display.finish();
    let outcome = outcome?;
    Ok(report(
        &outcome.item_dir,
        &outcome.manifest,
        outcome.stopped.as_ref(),
        &pk.fingerprint(),
        &pub_rel,
    ))
}
