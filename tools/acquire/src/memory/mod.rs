//! `acquire memory`: physical memory into a signed LiME item.
//!
//! Live, on the machine itself (root): /proc/kcore (System RAM from /proc/iomem intersected
//! with kcore's PT_LOAD segments, the way AVML does), else /dev/crash, else /dev/mem. Each
//! method that cannot be used is recorded with its reason before the next is tried. From a
//! file: a hypervisor's ELF dump (QEMU `dump-guest-memory`, `virsh dump --memory-only`), a
//! LiME file from another tool, or a raw dump (QEMU `memory-backend-file`, VMware .vmem of
//! a guest whose RAM is one block below the PCI hole), detected by content.
//!
//! The LiME stream goes through the disk pipeline, so the item is a seekable zstd
//! container (memory.lime.zst) that stock `zstd -d` turns into a strict LiME file, with
//! per-chunk digests and the stream's SHA-256 (MD5, SHA-1) in the manifest. The running
//! kernel's identity (banner, kallsyms, BTF, …) is captured after the memory, into
//! `kernel.*` files of the item, so analysis needs no symbol hunt.

pub mod elf_core;
pub mod iomem;
pub mod kernel;
pub mod physmap;
pub mod stream;

use crate::disk::{check_item_name, source_io_err, AcquireError};
use crate::host;
use crate::pipeline::{self, PipelineConfig, Progress, StopReason};
use crate::seal::{self, ItemContext, ListedFile};
use physmap::{PhysMap, Piece};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use stream::LimeStream;
use vestige_evidence::custody::now_utc_rfc3339;
use vestige_evidence::error_chain;
use vestige_evidence::fsutil::{sha256_file, sha256_hex, write_new};
use vestige_evidence::lime::{self, MEMORY_FILE};
use vestige_evidence::manifest::{
    ByteRange, Manifest, MemoryInfo, OutputFile, PhysicalRange, SourceIdentity, Status,
    WriteProtection, MANIFEST_FORMAT,
};
use vestige_evidence::read_at::ReadAt;

/// How live memory is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveMethod {
    /// kcore, then crash, then mem.
    Auto,
    /// /proc/kcore only.
    Kcore,
    /// /dev/crash only.
    Crash,
    /// /dev/mem only.
    Mem,
}

/// The format of a memory dump file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    /// Detect by content: ELF core, LiME, else raw.
    Auto,
    /// An ELF64 core with physical addresses in its PT_LOAD segments.
    ElfCore,
    /// A LiME file.
    Lime,
    /// Raw: byte N of the file is physical address N.
    Raw,
}

/// Where the memory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemorySource {
    /// This machine's memory.
    Live(LiveMethod),
    /// A dump file.
    File {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: DumpFormat,
    },
}

/// What to acquire and how.
#[derive(Debug)]
pub struct MemoryRequest<'a> {
    /// The memory.
    pub source: MemorySource,
    /// The case, item, examiner and key.
    pub ctx: ItemContext<'a>,
    /// The pipeline settings.
    pub pipeline: PipelineConfig,
    /// Where the running kernel's files are (live acquisitions).
    pub kernel_paths: kernel::KernelPaths,
}

/// The outcome of a memory acquisition that produced an item.
#[derive(Debug)]
pub struct MemoryOutcome {
    /// The item directory.
    pub item_dir: PathBuf,
    /// The manifest as written.
    pub manifest: Manifest,
    /// Why it is incomplete, if it is.
    pub stopped: Option<StopReason>,
}

/// A file or device read with pread, of unknown or unbounded size (/dev/mem cannot seek to
/// its end; /proc/kcore's size is the span of kernel address space, not data).
#[derive(Debug)]
struct Positional {
    file: File,
    size: u64,
}

impl ReadAt for Positional {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        if offset_bytes >= self.size {
            return Ok(0);
        }
        let left = usize::try_from(self.size - offset_bytes).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        let dst = buf.get_mut(..n).unwrap_or_default();
        loop {
            match self.file.read_at(dst, offset_bytes) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
    fn size(&self) -> u64 {
        self.size
    }
}

/// An opened memory source, ready to stream.
struct Opened {
    reader: Positional,
    map: PhysMap,
    method: &'static str,
    path: PathBuf,
    not_captured: Vec<(u64, u64)>,
    fallbacks: Vec<String>,
    input_sha256: Option<String>,
}

fn invalid(path: &Path, msg: String) -> AcquireError {
    AcquireError::Source(crate::source::SourceError::Io {
        path: path.to_path_buf(),
        what: "use it as memory",
        source: io::Error::new(io::ErrorKind::InvalidData, msg),
    })
}

/// Opens live memory with `method`, falling back in Auto mode.
fn open_live(method: LiveMethod, proc_root: &Path) -> Result<Opened, AcquireError> {
    let iomem_path = proc_root.join("iomem");
    let iomem = std::fs::read_to_string(&iomem_path)
        .map_err(source_io_err(&iomem_path, "read the physical memory map"))?;
    let ram = iomem::system_ram(&iomem).map_err(|e| invalid(&iomem_path, e.to_string()))?;
    let order: &[LiveMethod] = match method {
        LiveMethod::Auto => &[LiveMethod::Kcore, LiveMethod::Crash, LiveMethod::Mem],
        LiveMethod::Kcore => &[LiveMethod::Kcore],
        LiveMethod::Crash => &[LiveMethod::Crash],
        LiveMethod::Mem => &[LiveMethod::Mem],
    };
    let mut fallbacks = Vec::new();
    for m in order {
        let attempt = match m {
            LiveMethod::Kcore => open_kcore(&proc_root.join("kcore"), &ram),
            LiveMethod::Crash => open_physical(Path::new("/dev/crash"), "crash", &ram),
            LiveMethod::Mem | LiveMethod::Auto => open_physical(Path::new("/dev/mem"), "mem", &ram),
        };
        match attempt {
            Ok(mut o) => {
                o.fallbacks = fallbacks;
                return Ok(o);
            }
            Err(e) => {
                let why = error_chain(&e);
                tracing::warn!("{why}; trying the next method");
                fallbacks.push(why);
            }
        }
    }
    Err(invalid(
        Path::new("live memory"),
        format!("no method could read memory: {}", fallbacks.join("; ")),
    ))
}

fn open_kcore(path: &Path, ram: &[(u64, u64)]) -> Result<Opened, AcquireError> {
    let file = File::open(path).map_err(source_io_err(path, "open it"))?;
    let reader = Positional {
        file,
        size: u64::MAX,
    };
    let segments =
        elf_core::load_segments(&reader, false).map_err(|e| invalid(path, error_chain(&e)))?;
    let (map, not_captured) =
        PhysMap::from_kcore(&segments, ram).map_err(|e| invalid(path, e.to_string()))?;
    probe(&reader, &map, path)?;
    Ok(Opened {
        reader,
        map,
        method: "kcore",
        path: path.to_path_buf(),
        not_captured,
        fallbacks: Vec::new(),
        input_sha256: None,
    })
}

/// /dev/mem or /dev/crash: byte N is physical address N.
fn open_physical(
    path: &Path,
    method: &'static str,
    ram: &[(u64, u64)],
) -> Result<Opened, AcquireError> {
    let file = File::open(path).map_err(source_io_err(path, "open it"))?;
    let reader = Positional {
        file,
        size: u64::MAX,
    };
    let map = PhysMap::identity(ram).map_err(|e| invalid(path, e.to_string()))?;
    probe(&reader, &map, path)?;
    Ok(Opened {
        reader,
        map,
        method,
        path: path.to_path_buf(),
        not_captured: Vec::new(),
        fallbacks: Vec::new(),
        input_sha256: None,
    })
}

/// Reads one page of the largest piece: a method that cannot read RAM at all
/// (STRICT_DEVMEM, lockdown) is refused here rather than yielding an image of zeros.
fn probe(reader: &Positional, map: &PhysMap, path: &Path) -> Result<(), AcquireError> {
    let Some(p) = map.pieces().iter().max_by_key(|p| p.length_bytes) else {
        return Err(invalid(path, "no memory to read".to_string()));
    };
    let mut page = vec![0u8; 4096.min(usize::try_from(p.length_bytes).unwrap_or(4096))];
    reader
        .read_exact_at(&mut page, p.file_offset)
        .map_err(source_io_err(path, "read a page of System RAM through it"))
}

/// Opens a dump file and maps it by its format.
fn open_file(path: &Path, format: DumpFormat) -> Result<Opened, AcquireError> {
    let file = File::open(path).map_err(source_io_err(path, "open it read-only"))?;
    let size = file
        .metadata()
        .map_err(source_io_err(path, "stat it"))?
        .len();
    let reader = Positional { file, size };
    let mut head = [0u8; 64];
    let n = reader
        .read_at(&mut head, 0)
        .map_err(source_io_err(path, "read its header"))?;
    let head = head.get(..n).unwrap_or_default();
    let format = match format {
        DumpFormat::Auto if elf_core::is_elf64_core(head) => DumpFormat::ElfCore,
        DumpFormat::Auto if head.get(..4) == Some(&lime::MAGIC.to_le_bytes()) => DumpFormat::Lime,
        DumpFormat::Auto => DumpFormat::Raw,
        f => f,
    };
    let (map, method) = match format {
        DumpFormat::ElfCore => {
            let segs = elf_core::load_segments(&reader, true)
                .map_err(|e| invalid(path, error_chain(&e)))?;
            (PhysMap::from_elf_core(&segs), "elf_core")
        }
        DumpFormat::Lime => {
            let ranges = lime::read_ranges(&reader).map_err(|e| invalid(path, error_chain(&e)))?;
            let pieces = ranges
                .iter()
                .map(|r| Piece {
                    phys: r.start,
                    length_bytes: r.length_bytes,
                    file_offset: r.data_offset,
                })
                .collect();
            (PhysMap::new(pieces), "lime")
        }
        DumpFormat::Raw | DumpFormat::Auto => (PhysMap::identity(&[(0, size)]), "raw"),
    };
    let map = map.map_err(|e| invalid(path, e.to_string()))?;
    tracing::info!(path = %path.display(), format = method, "hashing the dump file");
    let (sha, _) = sha256_file(path).map_err(source_io_err(path, "hash it"))?;
    Ok(Opened {
        reader,
        map,
        method,
        path: path.to_path_buf(),
        not_captured: Vec::new(),
        fallbacks: Vec::new(),
        input_sha256: Some(sha),
    })
}

fn phys_ranges(v: &[(u64, u64)]) -> Vec<PhysicalRange> {
    v.iter()
        .map(|&(start, length_bytes)| PhysicalRange {
            start,
            length_bytes,
        })
        .collect()
}

/// Unreadable physical ranges as byte ranges of the LiME stream.
fn stream_ranges(ranges: &[lime::Range], unreadable: &[(u64, u64)]) -> Vec<ByteRange> {
    unreadable
        .iter()
        .filter_map(|&(phys, len)| {
            let r = ranges.iter().find(|r| r.start <= phys && phys < r.end())?;
            Some(ByteRange {
                offset_bytes: r.data_offset + (phys - r.start),
                length_bytes: len,
            })
        })
        .collect()
}

/// Runs one memory acquisition.
pub fn acquire_memory(
    req: &MemoryRequest<'_>,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<MemoryOutcome, AcquireError> {
    check_item_name(req.ctx.item)?;
    let out_err = |path: &Path, what| {
        let path = path.to_path_buf();
        move |source| AcquireError::Output { path, what, source }
    };
    // Refused before memory is touched; the directory is made once the source is open.
    let planned = req.ctx.case.dir().join(req.ctx.item);
    if planned.exists() {
        return Err(AcquireError::ItemExists { path: planned });
    }
    let opened = match &req.source {
        MemorySource::Live(m) => open_live(*m, &req.kernel_paths.proc_root)?,
        MemorySource::File { path, format } => open_file(path, *format)?,
    };
    let stream = LimeStream::new(&opened.reader, opened.map.clone())
        .map_err(|e| invalid(&opened.path, e.to_string()))?;
    let (item_dir, image) = req.ctx.create_item_with_file(MEMORY_FILE)?;
    let host = host::host_info();
    let started = now_utc_rfc3339();
    tracing::info!(source = %opened.path.display(), method = opened.method,
        bytes = stream.size(), item = %item_dir.display(), "memory acquisition started");
    let out = pipeline::run(&stream, image, &req.pipeline, progress, cancel);
    let finished = now_utc_rfc3339();

    // After the memory: reading these files disturbs it as little as possible before.
    let captured = match req.source {
        MemorySource::Live(_) => Some(kernel::capture(&req.kernel_paths)),
        MemorySource::File { .. } => None,
    };
    let mut listed = vec![ListedFile {
        name: MEMORY_FILE.to_string(),
        sha256: out.image_sha256.clone(),
    }];
    let mut outputs = vec![OutputFile {
        name: MEMORY_FILE.to_string(),
        size_bytes: out.image_size,
        sha256: out.image_sha256.clone(),
    }];
    if let Some(c) = &captured {
        for (name, bytes) in &c.files {
            let path = item_dir.join(name);
            write_new(&path, bytes).map_err(out_err(&path, "write a kernel identity file"))?;
            let sha256 = sha256_hex(bytes);
            listed.push(ListedFile {
                name: name.clone(),
                sha256: sha256.clone(),
            });
            outputs.push(OutputFile {
                name: name.clone(),
                size_bytes: bytes.len() as u64,
                sha256,
            });
        }
    }

    let unreadable = stream.unreadable();
    let status = if out.stopped.is_none() {
        Status::Complete
    } else {
        Status::Incomplete
    };
    let size = stream.size();
    let incomplete_reason = out.stopped.as_ref().map(|r| {
        format!(
            "{}; LiME bytes 0..{} acquired, {}..{size} missing",
            error_chain(r),
            out.bytes_acquired,
            out.bytes_acquired
        )
    });
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_string(),
        status,
        incomplete_reason,
        tool: req.ctx.tool.clone(),
        case: req.ctx.case_ref(),
        source: SourceIdentity {
            path: opened.path.display().to_string(),
            canonical_path: std::fs::canonicalize(&opened.path)
                .ok()
                .map(|p| p.display().to_string()),
            kind: match req.source {
                MemorySource::Live(_) => "live_memory".to_string(),
                MemorySource::File { .. } => "memory_dump_file".to_string(),
            },
            size_bytes: size,
            write_protection: WriteProtection::not_a_block_device("O_RDONLY"),
            ..SourceIdentity::default()
        },
        host,
        times: seal::times(started, finished),
        acquisition: out.acquisition_info(
            &req.pipeline,
            size,
            stream_ranges(stream.ranges(), &unreadable),
        ),
        hashes: out.source_hashes(),
        chunks: out.chunk_digests(&req.pipeline),
        outputs,
        signing_key: Some(req.ctx.key_ref()),
        memory: Some(MemoryInfo {
            method: opened.method.to_string(),
            fallbacks: opened.fallbacks.clone(),
            ranges: stream
                .ranges()
                .iter()
                .map(|r| PhysicalRange {
                    start: r.start,
                    length_bytes: r.length_bytes,
                })
                .collect(),
            unreadable: phys_ranges(&unreadable),
            not_captured: phys_ranges(&opened.not_captured),
            input_file_sha256: opened.input_sha256.clone(),
            kernel: captured.as_ref().map(|c| c.record.clone()),
        }),
        capture: None,
    };
    let manifest_sha = req.ctx.seal(&item_dir, &manifest, &listed)?;
    let mut hashes = BTreeMap::new();
    hashes.insert("LiME sha256".to_string(), out.sha256.clone());
    hashes.insert(format!("{MEMORY_FILE} sha256"), out.image_sha256.clone());
    hashes.insert("manifest.json sha256".to_string(), manifest_sha);
    if let Some(s) = &opened.input_sha256 {
        hashes.insert("input file sha256".to_string(), s.clone());
    }
    let mut details = BTreeMap::new();
    details.insert("source".to_string(), opened.path.display().to_string());
    details.insert("method".to_string(), opened.method.to_string());
    details.insert("status".to_string(), format!("{status:?}").to_lowercase());
    details.insert(
        "unreadable_ranges".to_string(),
        unreadable.len().to_string(),
    );
    req.ctx.record_custody("acquire-memory", hashes, details)?;
    Ok(MemoryOutcome {
        item_dir,
        manifest,
        stopped: out.stopped,
    })
}
