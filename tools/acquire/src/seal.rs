//! Sealing an evidence item: manifest.json, the signed checksum list (SHA256.sig) over
//! every file of the item, a synced directory, and the custody log entry. Shared by every
//! kind of item (disk, memory, live state) so they verify the same way.

use crate::disk::AcquireError;
use std::collections::BTreeMap;
use std::path::Path;
use vestige_evidence::custody::{Case, NewEntry};
use vestige_evidence::fsutil::{sha256_hex, sync_dir, write_new};
use vestige_evidence::manifest::{Manifest, ToolInfo, MANIFEST_FILE, SIGNATURE_FILE};
use vestige_evidence::signify::{self, ChecksumLine, SecretKey};

/// A file of the item with its SHA-256, for the signed list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Path relative to the item directory.
    pub name: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// Writes `manifest` to `item_dir/manifest.json`, then SHA256.sig listing `files` and the
/// manifest, signed with `key`; syncs the directory. Returns the manifest's SHA-256.
pub fn seal(
    item_dir: &Path,
    manifest: &Manifest,
    files: &[ListedFile],
    key: &SecretKey,
    public_key_file: Option<&str>,
) -> Result<String, AcquireError> {
    let out_err = |path: &Path, what| {
        let path = path.to_path_buf();
        move |source| AcquireError::Output { path, what, source }
    };
    let manifest_json = manifest.to_json();
    let manifest_path = item_dir.join(MANIFEST_FILE);
    write_new(&manifest_path, &manifest_json).map_err(out_err(
        &manifest_path,
        "write the manifest (the evidence files are kept)",
    ))?;
    let manifest_sha = sha256_hex(&manifest_json);
    let mut lines: Vec<ChecksumLine> = files
        .iter()
        .map(|f| ChecksumLine {
            algorithm: "SHA256".to_string(),
            name: f.name.clone(),
            hex: f.sha256.clone(),
        })
        .collect();
    lines.push(ChecksumLine {
        algorithm: "SHA256".to_string(),
        name: MANIFEST_FILE.to_string(),
        hex: manifest_sha.clone(),
    });
    let list = signify::format_checksum_list(&lines);
    let sig = key.sign(list.as_bytes());
    let comment = format!("verify with {}", public_key_file.unwrap_or("the case key"));
    let sig_path = item_dir.join(SIGNATURE_FILE);
    write_new(&sig_path, &signify::embed(&sig, &comment, list.as_bytes())).map_err(out_err(
        &sig_path,
        "write the signature (the evidence files and manifest are kept)",
    ))?;
    sync_dir(item_dir).map_err(out_err(item_dir, "sync the item directory"))?;
    Ok(manifest_sha)
}

/// What the custody entry of a sealed item says.
#[derive(Debug)]
pub struct CustodyRecord<'a> {
    /// The action: "acquire-disk", "acquire-memory", "collect-live".
    pub action: &'a str,
    /// Who did it.
    pub examiner: &'a str,
    /// The item.
    pub item: &'a str,
    /// The tool.
    pub tool: &'a ToolInfo,
    /// Hashes to record ("source sha256", "manifest.json sha256", …).
    pub hashes: BTreeMap<String, String>,
    /// Other details.
    pub details: BTreeMap<String, String>,
    /// The key that signed the item.
    pub key: &'a SecretKey,
}

/// Appends the custody entry of a sealed item.
pub fn record_custody(case: &Case, r: CustodyRecord<'_>) -> Result<(), AcquireError> {
    let mut details = r.details;
    details.insert(
        "key_fingerprint".to_string(),
        r.key.public_key().fingerprint(),
    );
    case.append(
        NewEntry {
            examiner: r.examiner.to_string(),
            action: r.action.to_string(),
            item: Some(r.item.to_string()),
            hashes: r.hashes,
            details,
        },
        &format!("{} {}", r.tool.name, r.tool.version),
    )?;
    Ok(())
}
