//! `collect live`: the volatile state of the running system (vestige-live) as a signed
//! evidence item: `live.json` (everything, structured), `summary.txt` (for reading) and a
//! copy of every running binary whose file was deleted, all in the signed list.
//!
//! Collection reads /proc and /sys only and runs no program of the examined system.

use crate::disk::{check_item_name, AcquireError};
use crate::host;
use crate::seal::{self, ItemContext, ListedFile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vestige_evidence::custody::now_utc_rfc3339;
use vestige_evidence::fsutil::{sha256_hex, write_new};
use vestige_evidence::manifest::{
    AcquisitionInfo, ChunkDigests, Manifest, OutputFile, SourceHashes, SourceIdentity, Status,
    WriteProtection, LIVE_SYSTEM_KIND, MANIFEST_FORMAT,
};
use vestige_evidence::signify::validate_file_name;
use vestige_live::{CollectOptions, Snapshot};

/// The structured snapshot inside the item.
pub const LIVE_FILE: &str = "live.json";
/// The readable summary inside the item.
pub const SUMMARY_FILE: &str = "summary.txt";

/// What to collect and where it goes.
#[derive(Debug)]
pub struct LiveRequest<'a> {
    /// The case, item, examiner and key.
    pub ctx: ItemContext<'a>,
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
    check_item_name(req.ctx.item)?;
    let out_err = |path: &Path, what| {
        let path = path.to_path_buf();
        move |source| AcquireError::Output { path, what, source }
    };
    let item_dir = req.ctx.create_item_dir()?;
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
    let json_sha = sha256_hex(&json);
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_string(),
        status: Status::Complete,
        incomplete_reason: None,
        tool: req.ctx.tool.clone(),
        case: req.ctx.case_ref(),
        source: SourceIdentity {
            path: "/proc".to_string(),
            kind: LIVE_SYSTEM_KIND.to_string(),
            size_bytes: json.len() as u64,
            write_protection: WriteProtection::not_a_block_device("O_RDONLY"),
            ..SourceIdentity::default()
        },
        host: host::host_info(),
        times: seal::times(started, finished),
        acquisition: AcquisitionInfo::plain_files(json.len() as u64),
        hashes: SourceHashes::sha256_only(json_sha.clone()),
        chunks: ChunkDigests::none(),
        outputs,
        signing_key: Some(req.ctx.key_ref()),
        memory: None,
        capture: None,
    };
    let manifest_sha = req.ctx.seal(&item_dir, &manifest, &listed)?;
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
    req.ctx.record_custody("collect-live", hashes, details)?;
    Ok(LiveOutcome {
        item_dir,
        snapshot,
        manifest,
    })
}
