//! `acquire memory`: physical memory into a signed LiME item.
//!
//! Live, on the machine itself (root): /proc/kcore (System RAM from /proc/iomem intersected
//! with kcore's PT_LOAD segments, the way AVML does), else /dev/crash, else /dev/mem. Each
//! method that cannot be used is recorded with its reason before the next is tried. From a
//! file: a hypervisor's ELF dump (QEMU `dump-guest-memory`, `virsh dump --memory-only`), a
//! LiME file from another tool, VMware memory, or a raw dump (QEMU `memory-backend-file`),
//! detected by content.
//!
//! VMware: a .vmem holds the guest's RAM regions end to end, so byte N is physical address
//! N only below the PCI hole; the suspend (.vmss) or snapshot (.vmsn) state file of the same
//! stem says where each region belongs ([`vmware`]). A .vmem with such a sibling is placed
//! by its regions (the .vmss is preferred, as Volatility does), and the state file is named
//! and hashed in the manifest next to the input; a state file given itself (recognised by
//! its magic) is read with its embedded memory (old snapshots, ESX) or its sibling .vmem.
//! Only finding the sibling goes by file name; a .vmem without one is taken as raw.
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
pub mod vmware;

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
    VmwareRegion, VmwareStateInfo, WriteProtection, MANIFEST_FORMAT,
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
    /// Detect by content: ELF core, LiME, VMware state file, a .vmem with a state file
    /// beside it, else raw.
    Auto,
    /// An ELF64 core with physical addresses in its PT_LOAD segments.
    ElfCore,
    /// A LiME file.
    Lime,
    /// Raw: byte N of the file is physical address N.
    Raw,
    /// VMware: a .vmss/.vmsn state file (its embedded memory, or the .vmem beside it), or
    /// a .vmem placed by the state file beside it.
    Vmware,
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
    vmware_state: Option<VmwareStateInfo>,
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
        vmware_state: None,
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
        vmware_state: None,
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
    let (reader, head) = open_dump(path)?;
    let head = head.as_slice();
    let format = match format {
        DumpFormat::Auto if elf_core::is_elf64_core(head) => DumpFormat::ElfCore,
        DumpFormat::Auto if head.get(..4) == Some(&lime::MAGIC.to_le_bytes()) => DumpFormat::Lime,
        DumpFormat::Auto if vmware::is_state_file(head) => DumpFormat::Vmware,
        // Content cannot tell a .vmem from a raw dump: a state file beside it can.
        DumpFormat::Auto if is_vmem(path) && !state_siblings(path).is_empty() => DumpFormat::Vmware,
        DumpFormat::Auto => DumpFormat::Raw,
        f => f,
    };
    let size = reader.size;
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
        DumpFormat::Vmware if vmware::is_state_file(head) => {
            return open_vmware_state(path, reader);
        }
        DumpFormat::Vmware => return open_vmem(path, reader),
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
        vmware_state: None,
    })
}

/// Opens a dump file read-only and reads its first bytes (for detection by content).
fn open_dump(path: &Path) -> Result<(Positional, Vec<u8>), AcquireError> {
    let file = File::open(path).map_err(source_io_err(path, "open it read-only"))?;
    let size = file
        .metadata()
        .map_err(source_io_err(path, "stat it"))?
        .len();
    let reader = Positional { file, size };
    let mut head = vec![0u8; 64];
    let n = reader
        .read_at(&mut head, 0)
        .map_err(source_io_err(path, "read its header"))?;
    head.truncate(n);
    Ok((reader, head))
}

/// Whether the file is named like VMware memory (`*.vmem`, any case).
fn is_vmem(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("vmem"))
}

/// The state files beside a .vmem (same stem), .vmss before .vmsn as Volatility looks.
fn state_siblings(vmem: &Path) -> Vec<PathBuf> {
    ["vmss", "vmsn"]
        .iter()
        .map(|ext| vmem.with_extension(ext))
        .filter(|p| p.is_file())
        .collect()
}

/// A .vmem (or a raw-looking file given as `--format vmware`): placed by the regions of
/// the state file beside it.
fn open_vmem(path: &Path, reader: Positional) -> Result<Opened, AcquireError> {
    let siblings = state_siblings(path);
    let Some(state_path) = siblings.first() else {
        return Err(invalid(
            path,
            format!(
                "VMware memory needs its state file: neither {} nor {} exists",
                path.with_extension("vmss").display(),
                path.with_extension("vmsn").display()
            ),
        ));
    };
    if let Some(other) = siblings.get(1) {
        tracing::warn!(used = %state_path.display(), ignored = %other.display(),
            "two state files beside the .vmem; the suspend state (.vmss) is used");
    }
    let (state_reader, _) = open_dump(state_path)?;
    let beside = |e: &vmware::VmwareError| {
        invalid(
            state_path,
            format!(
                "{} (the state file beside {}; --format raw reads the .vmem as raw)",
                error_chain(e),
                path.display()
            ),
        )
    };
    let state = vmware::parse(&state_reader).map_err(|e| beside(&e))?;
    let memory = vmware::MemoryFile::Separate {
        size_bytes: reader.size,
    };
    let map = state.phys_map(memory).map_err(|e| beside(&e))?;
    vmware_opened(path, reader, state_path, &state, map, false)
}

/// A state file given itself: its embedded memory, else the .vmem beside it.
fn open_vmware_state(path: &Path, reader: Positional) -> Result<Opened, AcquireError> {
    let state = vmware::parse(&reader).map_err(|e| invalid(path, error_chain(&e)))?;
    if state.memory_block.is_some() {
        let map = state
            .phys_map(vmware::MemoryFile::Embedded)
            .map_err(|e| invalid(path, error_chain(&e)))?;
        return vmware_opened(path, reader, path, &state, map, true);
    }
    let vmem = path.with_extension("vmem");
    if !vmem.is_file() {
        return Err(invalid(
            path,
            format!(
                "the VMware state file holds no memory, and its .vmem ({}) is not there",
                vmem.display()
            ),
        ));
    }
    let (vmem_reader, _) = open_dump(&vmem)?;
    let memory = vmware::MemoryFile::Separate {
        size_bytes: vmem_reader.size,
    };
    let map = state
        .phys_map(memory)
        .map_err(|e| invalid(path, error_chain(&e)))?;
    vmware_opened(&vmem, vmem_reader, path, &state, map, false)
}

/// The memory file `data_path` placed by `state`: both hashed, the state file's header
/// logged and kept for the manifest.
fn vmware_opened(
    data_path: &Path,
    reader: Positional,
    state_path: &Path,
    state: &vmware::StateFile,
    map: PhysMap,
    embedded: bool,
) -> Result<Opened, AcquireError> {
    tracing::info!(memory = %data_path.display(), state_file = %state_path.display(),
        "{}", state.describe());
    tracing::info!(path = %data_path.display(), format = "vmware", "hashing the dump file");
    let (sha, _) = sha256_file(data_path).map_err(source_io_err(data_path, "hash it"))?;
    let state_sha = if embedded {
        sha.clone()
    } else {
        tracing::info!(path = %state_path.display(), "hashing the VMware state file");
        sha256_file(state_path)
            .map_err(source_io_err(state_path, "hash it"))?
            .0
    };
    let regions = state
        .regions
        .iter()
        .map(|r| VmwareRegion {
            phys_start: r.guest_page.saturating_mul(vmware::PAGE_BYTES),
            memory_offset: r.file_page.saturating_mul(vmware::PAGE_BYTES),
            length_bytes: r.pages.saturating_mul(vmware::PAGE_BYTES),
        })
        .collect();
    Ok(Opened {
        reader,
        map,
        method: "vmware",
        path: data_path.to_path_buf(),
        not_captured: Vec::new(),
        fallbacks: Vec::new(),
        input_sha256: Some(sha),
        vmware_state: Some(VmwareStateInfo {
            path: state_path.display().to_string(),
            sha256: state_sha,
            magic: format!(
                "{:#010x} ({})",
                state.magic,
                vmware::magic_meaning(state.magic)
            ),
            version: state.version,
            groups: state.groups.iter().map(|g| g.name.clone()).collect(),
            memory_embedded: embedded,
            regions,
        }),
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
            vmware_state: opened.vmware_state.clone(),
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
    if let Some(v) = &opened.vmware_state {
        hashes.insert("VMware state file sha256".to_string(), v.sha256.clone());
    }
    let mut details = BTreeMap::new();
    details.insert("source".to_string(), opened.path.display().to_string());
    details.insert("method".to_string(), opened.method.to_string());
    if let Some(v) = &opened.vmware_state {
        details.insert("vmware_state_file".to_string(), v.path.clone());
    }
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
