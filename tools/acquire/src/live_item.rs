//! `collect live`: the volatile state of the running system (vestige-live) as a signed
//! evidence item: `live.json` (everything, structured), `summary.txt` (for reading) and a
//! copy of every running binary whose file was deleted, all in the signed list.
//!
//! Collection reads /proc and /sys only and runs no program of the examined system.

use crate::disk::{check_item_name, AcquireError};
use crate::host;
use crate::seal::{self, CustodyRecord, ListedFile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vestige_evidence::custody::{now_utc_rfc3339, Case};
use vestige_evidence::fsutil::{sha256_hex, write_new};
use vestige_evidence::manifest::{
    AcquisitionInfo, CaseRef, ChunkDigests, KeyRef, Manifest, OutputFile, SourceHashes,
    SourceIdentity, Status, Times, ToolInfo, WriteProtection, LIVE_SYSTEM_KIND, MANIFEST_FORMAT,
};
use vestige_evidence::signify::{validate_file_name, SecretKey};
use vestige_live::{CollectOptions, Snapshot};

/// The structured snapshot inside the item.
pub const LIVE_FILE: &str = "live.json";
/// The readable summary inside the item.
pub const SUMMARY_FILE: &str = "summary.txt";

/// What to collect and where it goes.
#[derive(Debug)]
pub struct LiveRequest<'a> {
    /// The case the item joins.
    pub case: &'a Case,
    /// The item name.
    pub item: &'a str,
    /// Who runs it.
    pub examiner: &'a str,
    /// Notes for the manifest.
    pub notes: Option<&'a str>,
    /// The signing key.
    pub key: &'a SecretKey,
    /// Where the public key is kept, relative to the case directory.
    pub public_key_file: Option<String>,
    /// The tool's identity.
    pub tool: ToolInfo,
    /// Collect process environments (they may hold credentials).
    pub include_environment: bool,
}

/// The outcome: the item and what was collected.
#[derive(Debug)]
pub struct LiveOutcome {
    /// The item directory.
    pub item_dir: PathBuf,
    /// The snapshot as written.
    pub snapshot: Snapshot,
    /// The manifest as written.
    pub manifest: Manifest,
}

/// Collects the live state into a new item of the case.
pub fn collect_live(req: &LiveRequest<'_>) -> Result<LiveOutcome, AcquireError> {
    check_item_name(req.item)?;
    let out_err = |path: &Path, what| {
        let path = path.to_path_buf();
        move |source| AcquireError::Output { path, what, source }
    };
    let item_dir = req.case.dir().join(req.item);
    match std::fs::create_dir(&item_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(AcquireError::ItemExists { path: item_dir })
        }
        Err(e) => return Err(out_err(&item_dir, "create the item directory")(e)),
    }
    let started = now_utc_rfc3339();
    let snapshot = vestige_live::collect(&CollectOptions {
        include_environment: req.include_environment,
        recover_deleted_to: Some(item_dir.clone()),
        ..CollectOptions::default()
    });
    let finished = now_utc_rfc3339();
    let json = serde_json::to_vec_pretty(&snapshot).unwrap_or_default();
    let text = vestige_live::summary(&snapshot);
    let mut listed = Vec::new();
    let mut outputs = Vec::new();
    for (name, bytes) in [
        (LIVE_FILE, json.as_slice()),
        (SUMMARY_FILE, text.as_bytes()),
    ] {
        let path = item_dir.join(name);
        write_new(&path, bytes).map_err(out_err(&path, "write the snapshot"))?;
        let sha256 = sha256_hex(bytes);
        listed.push(ListedFile {
            name: name.to_string(),
            sha256: sha256.clone(),
        });
        outputs.push(OutputFile {
            name: name.to_string(),
            size_bytes: bytes.len() as u64,
            sha256,
        });
    }
    for r in &snapshot.recovered {
        if validate_file_name(&r.file_name).is_err() {
            // The library names copies pid-N-comm.bin with comm sanitised; anything else
            // would make the item unverifiable, so it is a bug worth stopping for.
            return Err(out_err(
                &item_dir.join(&r.file_name),
                "list a recovered binary",
            )(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a plain file name",
            )));
        }
        listed.push(ListedFile {
            name: r.file_name.clone(),
            sha256: r.sha256.clone(),
        });
        outputs.push(OutputFile {
            name: r.file_name.clone(),
            size_bytes: r.size_bytes,
            sha256: r.sha256.clone(),
        });
    }
    let (clock_offset, rtc_note) = host::clock_offset();
    let json_sha = sha256_hex(&json);
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_string(),
        status: Status::Complete,
        incomplete_reason: None,
        tool: req.tool.clone(),
        case: CaseRef {
            case_id: req.case.info().case_id.clone(),
            item: req.item.to_string(),
            examiner: req.examiner.to_string(),
            agency: req.case.info().agency.clone(),
            notes: req.notes.map(str::to_string),
        },
        source: SourceIdentity {
            path: "/proc".to_string(),
            kind: LIVE_SYSTEM_KIND.to_string(),
            size_bytes: json.len() as u64,
            write_protection: WriteProtection {
                open_mode: "O_RDONLY".to_string(),
                blkroset: "not_applicable".to_string(),
                ..WriteProtection::default()
            },
            ..SourceIdentity::default()
        },
        host: host::host_info(),
        times: Times {
            started_utc: started,
            finished_utc: finished,
            system_minus_rtc_seconds: clock_offset,
            rtc_note,
        },
        acquisition: AcquisitionInfo {
            bytes_expected: json.len() as u64,
            bytes_acquired: json.len() as u64,
            unreadable_ranges: Vec::new(),
            chunk_size_bytes: 0,
            zstd_level: 0,
            compression_threads: 0,
        },
        hashes: SourceHashes {
            sha256: json_sha.clone(),
            md5: None,
            sha1: None,
        },
        chunks: ChunkDigests {
            algorithm: "none".to_string(),
            chunk_size_bytes: 0,
            digests: Vec::new(),
        },
        outputs,
        signing_key: Some(KeyRef {
            keynum: req.key.keynum().to_string(),
            fingerprint: req.key.public_key().fingerprint(),
            public_key_file: req.public_key_file.clone(),
        }),
        memory: None,
    };
    let manifest_sha = seal::seal(
        &item_dir,
        &manifest,
        &listed,
        req.key,
        req.public_key_file.as_deref(),
    )?;
    let mut hashes = BTreeMap::new();
    hashes.insert(format!("{LIVE_FILE} sha256"), json_sha);
    hashes.insert("manifest.json sha256".to_string(), manifest_sha);
    let mut details = BTreeMap::new();
    details.insert(
        "processes".to_string(),
        snapshot.processes.len().to_string(),
    );
    details.insert("sockets".to_string(), snapshot.sockets.len().to_string());
    details.insert(
        "recovered_binaries".to_string(),
        snapshot.recovered.len().to_string(),
    );
    details.insert(
        "collect_errors".to_string(),
        snapshot.errors.len().to_string(),
    );
    seal::record_custody(
        req.case,
        CustodyRecord {
            action: "collect-live",
            examiner: req.examiner,
            item: req.item,
            tool: &req.tool,
            hashes,
            details,
            key: req.key,
        },
    )?;
    Ok(LiveOutcome {
        item_dir,
        snapshot,
        manifest,
    })
}
