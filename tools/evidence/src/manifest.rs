//! manifest.json: everything about one acquisition, in one signed file.
//!
//! The manifest is listed (with its SHA-256) in the item's `SHA256.sig`, so every field here
//! is covered by the signature. Field names are part of the evidence format: renaming one is a
//! format change and needs a new [`MANIFEST_FORMAT`].

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The format identifier written into every manifest.
pub const MANIFEST_FORMAT: &str = "vestige-manifest/1";

/// The file name of the manifest inside an item directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The file name of the image container inside an item directory.
pub const IMAGE_FILE: &str = "image.zst";

/// The GNU ddrescue mapfile of a disk item: which bytes read, which never did.
pub const ERRORS_MAP_FILE: &str = "errors.map";

/// `source.kind` of an item holding the volatile state of a live system (no image).
pub const LIVE_SYSTEM_KIND: &str = "live_system";

/// `source.kind` of a network capture item (a pcapng file, no image).
pub const NETWORK_CAPTURE_KIND: &str = "network_capture";

/// Kinds of item made of plain files only (no image container to stream).
pub const FILE_ONLY_KINDS: [&str; 2] = [LIVE_SYSTEM_KIND, NETWORK_CAPTURE_KIND];

/// The file name of the signed checksum list inside an item directory.
pub const SIGNATURE_FILE: &str = "SHA256.sig";

/// Whether the acquisition copied every byte of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every byte of the source was read and written.
    Complete,
    /// The acquisition stopped early (interrupted, read or write error); the image holds a
    /// prefix of the source and the hashes cover exactly that prefix.
    Incomplete,
}

/// One acquisition, as recorded in manifest.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// Complete or not; an incomplete item is never presented as a full copy.
    pub status: Status,
    /// Why the acquisition is incomplete: what failed, where, and how.
    pub incomplete_reason: Option<String>,
    /// The program that made the evidence.
    pub tool: ToolInfo,
    /// The case and item this evidence belongs to.
    pub case: CaseRef,
    /// What was read.
    pub source: SourceIdentity,
    /// The machine the acquisition ran on.
    pub host: HostInfo,
    /// When, in UTC.
    pub times: Times,
    /// How the copy was made and how much of it succeeded.
    pub acquisition: AcquisitionInfo,
    /// Hashes of the whole source stream (of the bytes read, in order).
    pub hashes: SourceHashes,
    /// Per-chunk digests: a damaged copy names the chunk that changed.
    pub chunks: ChunkDigests,
    /// The files of the item, with sizes and hashes (the manifest itself excluded).
    pub outputs: Vec<OutputFile>,
    /// The key that signs SHA256.sig.
    pub signing_key: Option<KeyRef>,
    /// For memory items: how the memory was read, its ranges, and what could not be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryInfo>,
    /// For network captures: the interface and what was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureInfo>,
}

/// A network capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CaptureInfo {
    /// The interface, e.g. "eth0".
    pub interface: String,
    /// The pcapng link type (1 = Ethernet).
    pub link_type: u32,
    /// Bytes kept of each packet.
    pub snap_len: u32,
    /// Packets written.
    pub packets: u64,
    /// Their total length on the wire.
    pub wire_bytes: u64,
    /// Why the capture stopped: "count", "duration" or "interrupted".
    pub stop_reason: String,
}

/// A memory acquisition: the LiME ranges, the method and its fallbacks, the pages that
/// could not be read, and the kernel identity captured with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MemoryInfo {
    /// What was read: "kcore" (/proc/kcore), "crash" (/dev/crash), "mem" (/dev/mem),
    /// "elf_core" (a hypervisor's ELF dump), "lime" (an existing LiME file), "vmware" (a
    /// .vmem or .vmss/.vmsn placed by the state file's memory regions) or "raw".
    pub method: String,
    /// Each method tried before the one used, and why it was not used.
    pub fallbacks: Vec<String>,
    /// The physical memory ranges in the LiME image, ascending.
    pub ranges: Vec<PhysicalRange>,
    /// Pages that could not be read: zero-filled in the image, listed here (physical).
    pub unreadable: Vec<PhysicalRange>,
    /// System RAM the method could not reach at all (no kcore segment covers it, say):
    /// absent from the image, listed so the gap is never silent.
    pub not_captured: Vec<PhysicalRange>,
    /// SHA-256 of the input file (`--from`), hashed as it was read.
    pub input_file_sha256: Option<String>,
    /// The running kernel, captured with its memory (absent for `--from`).
    pub kernel: Option<KernelCapture>,
    /// VMware memory (`--from` a .vmem, .vmss or .vmsn): the state file whose memory
    /// regions placed the bytes, hashed as the input is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmware_state: Option<VmwareStateInfo>,
}

/// The VMware suspended-state (.vmss) or snapshot (.vmsn) file used to place a VMware
/// guest's memory, and what its header says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VmwareStateInfo {
    /// The state file, as given or as found beside the memory file (same stem).
    pub path: String,
    /// Its SHA-256, hashed as it was read.
    pub sha256: String,
    /// The header magic, e.g. "0xbed2bed2", and what it means.
    pub magic: String,
    /// The header word after the magic.
    pub version: u32,
    /// Its group names, in table order (bytes outside printable ASCII escaped).
    pub groups: Vec<String>,
    /// Whether the memory is stored inside the state file (a "Memory" block) rather than
    /// in a separate .vmem.
    pub memory_embedded: bool,
    /// The regions as the state file gives them (empty: one run from address 0).
    pub regions: Vec<VmwareRegion>,
}

/// One memory region of a VMware state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmwareRegion {
    /// First guest-physical address (`regionPPN` × 4096).
    pub phys_start: u64,
    /// Its offset in the memory file (`regionPageNum` × 4096; in the state file, from the
    /// start of the "Memory" block's data).
    pub memory_offset: u64,
    /// Length in bytes (`regionSize` × 4096).
    pub length_bytes: u64,
}

/// A range of physical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalRange {
    /// First physical address.
    pub start: u64,
    /// Length in bytes.
    pub length_bytes: u64,
}

/// The kernel's identity, captured so the memory can be analysed without hunting symbols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KernelCapture {
    /// /proc/version, exactly (the `linux_banner` string in memory).
    pub banner: String,
    /// Files of the item holding what was captured (kallsyms, BTF, System.map, iomem…).
    pub files: Vec<String>,
    /// kptr_restrict as found, and whether it was lowered for the capture and restored.
    pub kptr_restrict: Option<String>,
    /// Whether kallsyms showed real addresses.
    pub kallsyms_addresses: bool,
    /// What could not be captured, and why.
    pub problems: Vec<String>,
}

/// The program that made the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// "vestige".
    pub name: String,
    /// The crate version.
    pub version: String,
    /// SHA-256 of the running executable (/proc/self/exe), when it could be read.
    pub binary_sha256: Option<String>,
}

/// The case and evidence item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRef {
    /// The case identifier from case.json.
    pub case_id: String,
    /// The evidence item name (also its directory name).
    pub item: String,
    /// Who ran the acquisition.
    pub examiner: String,
    /// The examiner's agency, if given.
    pub agency: Option<String>,
    /// Free-form notes for this item.
    pub notes: Option<String>,
}

/// What the source was and how it was protected from writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SourceIdentity {
    /// The path given on the command line.
    pub path: String,
    /// The path after resolving symlinks.
    pub canonical_path: Option<String>,
    /// "block_device" or "regular_file".
    pub kind: String,
    /// Size in bytes when opened (BLKGETSIZE64 for block devices).
    pub size_bytes: u64,
    /// Logical sector size (BLKSSZGET), block devices only.
    pub logical_sector_size: Option<u32>,
    /// Physical sector size (BLKPBSZGET), block devices only.
    pub physical_sector_size: Option<u32>,
    /// "major:minor" of the block device.
    pub device_number: Option<String>,
    /// Vendor from sysfs, where present.
    pub vendor: Option<String>,
    /// Model from sysfs, where present.
    pub model: Option<String>,
    /// Serial number from sysfs, where present.
    pub serial: Option<String>,
    /// World Wide Name / WWID from sysfs, where present.
    pub wwn: Option<String>,
    /// For loop devices: the file behind it.
    pub loop_backing_file: Option<String>,
    /// The write protection that was set and verified.
    pub write_protection: WriteProtection,
}

/// Write protection as attempted and as verified afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WriteProtection {
    /// How the source was opened (always read-only).
    pub open_mode: String,
    /// The block device's read-only flag before Vestige touched it (BLKROGET).
    pub read_only_before: Option<bool>,
    /// What BLKROSET did: "set", "already_set", "not_applicable" or "failed: <error>".
    pub blkroset: String,
    /// The read-only flag read back with BLKROGET after setting it.
    pub read_only_verified: Option<bool>,
}

/// The machine the acquisition ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HostInfo {
    /// Host name.
    pub hostname: Option<String>,
    /// Kernel release (uname -r).
    pub kernel: Option<String>,
    /// Kernel lockdown state from /sys/kernel/security/lockdown ("[none] integrity ...").
    pub lockdown: Option<String>,
    /// Hints that this is a virtual machine (DMI vendor/product, CPU hypervisor flag).
    pub hypervisor_hints: Vec<String>,
}

/// Start and end times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Times {
    /// RFC 3339, UTC.
    pub started_utc: String,
    /// RFC 3339, UTC.
    pub finished_utc: String,
    /// System clock minus the hardware clock (RTC, read as UTC) in seconds at the start.
    pub system_minus_rtc_seconds: Option<i64>,
    /// Where the RTC reading came from, or why there is none.
    pub rtc_note: String,
}

/// How the copy was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AcquisitionInfo {
    /// Bytes the source held when opened.
    pub bytes_expected: u64,
    /// Bytes read and written to the image, from offset 0.
    pub bytes_acquired: u64,
    /// Byte ranges that could not be read (start, length).
    pub unreadable_ranges: Vec<ByteRange>,
    /// Chunk size in bytes: one zstd frame and one digest per chunk.
    pub chunk_size_bytes: u64,
    /// zstd compression level.
    pub zstd_level: i32,
    /// Threads used for compression.
    pub compression_threads: u32,
    /// How read errors were handled (disk acquisitions); absent in older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescue: Option<RescueInfo>,
    /// Every time this acquisition was interrupted and resumed, in order; empty for one
    /// uninterrupted run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumes: Vec<ResumeRecord>,
}

/// One resumption of an interrupted acquisition (`acquire disk --resume`): what was kept
/// from the earlier run(s), how it was checked, and where reading started again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRecord {
    /// When the resumed run started (UTC).
    pub resumed_utc: String,
    /// Chunks of the earlier image that the resume journal recorded as durable.
    pub journaled_chunks: u64,
    /// Of those, the chunks read back, decompressed and matched to their journaled BLAKE3
    /// digests and kept: the image restarts after them.
    pub verified_chunks: u64,
    /// The first source byte read by the resumed run.
    pub resumed_at_byte: u64,
    /// Why journaled chunks were discarded and read again, if any were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discarded: Option<String>,
    /// Source chunks re-read and found equal to their journaled digests before resuming
    /// (the same source, unchanged), by index.
    pub source_chunks_rechecked: Vec<u64>,
    /// SHA-256 of the manifest the interrupted run sealed (incomplete), when it got that far;
    /// the custody log holds the same hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_manifest_sha256: Option<String>,
}

/// Bad-sector handling of a disk acquisition: retried, then zero-filled and recorded in
/// `unreadable_ranges` and in a GNU ddrescue mapfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RescueInfo {
    /// Extra attempts per bad sector.
    pub retries: u32,
    /// The unit zero-filled and recorded: the source's logical sector size.
    pub sector_size_bytes: u32,
    /// Whether sector reads bypassed the page cache (O_DIRECT).
    pub direct_io: bool,
    /// Reads that failed and were split into blocks and sectors.
    pub failed_reads: u64,
    /// Sectors that failed and then read on a retry.
    pub recovered_sectors: u64,
    /// Bytes that never read, zero-filled in the image.
    pub unreadable_bytes: u64,
    /// The mapfile in the item (`ddrescuelog` reads it).
    pub map_file: String,
}

/// A byte range of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// First byte.
    pub offset_bytes: u64,
    /// Length in bytes.
    pub length_bytes: u64,
}

/// Hashes of the source stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SourceHashes {
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// MD5, when asked for.
    pub md5: Option<String>,
    /// SHA-1, when asked for.
    pub sha1: Option<String>,
}

/// The per-chunk digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChunkDigests {
    /// "BLAKE3".
    pub algorithm: String,
    /// Every chunk is this long but the last.
    pub chunk_size_bytes: u64,
    /// One lowercase hex digest per chunk, in order.
    pub digests: Vec<String>,
}

/// A file of the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// The file name inside the item directory.
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// The signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRef {
    /// signify key number, 16 hex digits.
    pub keynum: String,
    /// SHA256 fingerprint of the public key.
    pub fingerprint: String,
    /// Where the public key is kept, relative to the case directory.
    pub public_key_file: Option<String>,
}

/// Errors reading a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {path}")]
    Io {
        /// The manifest path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The JSON does not match the format.
    #[error(
        "manifest {path}: line {line}, column {column}: not a valid {MANIFEST_FORMAT} manifest"
    )]
    Json {
        /// The manifest path.
        path: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The format field names another format.
    #[error("manifest {path}: format is {found:?}, expected {MANIFEST_FORMAT:?}")]
    Format {
        /// The manifest path.
        path: String,
        /// The format found.
        found: String,
    },
}

/// The largest manifest accepted when reading (a 64 TiB source at 4 MiB chunks is ~1.1 GB of
/// digests; manifests that large are refused rather than loaded).
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

impl Manifest {
    /// Serialises as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a manifest from bytes; `path` names the file in errors.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            path: path.display().to_string(),
            line: source.line(),
            column: source.column(),
            source,
        })?;
        if m.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format {
                path: path.display().to_string(),
                found: m.format,
            });
        }
        Ok(m)
    }

    /// Reads and parses a manifest file, refusing files over [`MAX_MANIFEST_BYTES`].
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let io = |source| ManifestError::Io {
            path: path.display().to_string(),
            source,
        };
        let bytes = crate::fsutil::read_capped(path, MAX_MANIFEST_BYTES).map_err(io)?;
        Self::from_json(&bytes, path)
    }
}

impl WriteProtection {
    /// For sources that are not block devices (memory, /proc, a network interface): how
    /// they were opened; BLKROSET does not apply.
    #[must_use]
    pub fn not_a_block_device(open_mode: &str) -> Self {
        WriteProtection {
            open_mode: open_mode.to_string(),
            blkroset: "not_applicable".to_string(),
            ..WriteProtection::default()
        }
    }
}

impl AcquisitionInfo {
    /// An item written as plain files, not chunked or compressed: `bytes` of it.
    #[must_use]
    pub fn plain_files(bytes: u64) -> Self {
        AcquisitionInfo {
            bytes_expected: bytes,
            bytes_acquired: bytes,
            unreadable_ranges: Vec::new(),
            chunk_size_bytes: 0,
            zstd_level: 0,
            compression_threads: 0,
            rescue: None,
            resumes: Vec::new(),
        }
    }
}

impl SourceHashes {
    /// The SHA-256 alone (no MD5 or SHA-1 requested).
    #[must_use]
    pub fn sha256_only(sha256: String) -> Self {
        SourceHashes {
            sha256,
            md5: None,
            sha1: None,
        }
    }
}

impl ChunkDigests {
    /// No per-chunk digests: the item is not a chunked image.
    #[must_use]
    pub fn none() -> Self {
        ChunkDigests {
            algorithm: "none".to_string(),
            chunk_size_bytes: 0,
            digests: Vec::new(),
        }
    }
}
