//! Sealing an evidence item: manifest.json, the signed checksum list (SHA256.sig) over
//! every file of the item, a synced directory, and the custody log entry. Shared by every
//! kind of item (disk, memory, live state) so they verify the same way.

use crate::disk::{check_item_name, AcquireError};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use vestige_evidence::custody::{Case, NewEntry};
use vestige_evidence::fsutil::{sha256_hex, sync_dir, write_new};
use vestige_evidence::manifest::{
    CaseRef, KeyRef, Manifest, Times, ToolInfo, MANIFEST_FILE, SIGNATURE_FILE,
};
use vestige_evidence::signify::{self, ChecksumLine, SecretKey};

/// Who makes an item, for which case, signed with which key: what every kind of
/// acquisition (disk, memory, live state, capture) records the same way.
#[derive(Debug)]
pub struct ItemContext<'a> {
    /// The case the item joins.
    pub case: &'a Case,
    /// The item name (its directory in the case).
    pub item: &'a str,
    /// Who runs it.
    pub examiner: &'a str,
    /// Notes for the manifest.
    pub notes: Option<&'a str>,
    /// The signing key.
    pub key: &'a SecretKey,
    /// Where the public key is kept, relative to the case directory.
    pub public_key_file: Option<String>,
    /// The tool's identity for the manifest.
    pub tool: ToolInfo,
}

impl ItemContext<'_> {
    /// The manifest's case and item record.
    #[must_use]
    pub fn case_ref(&self) -> CaseRef {
        CaseRef {
            case_id: self.case.info().case_id.clone(),
            item: self.item.to_string(),
            examiner: self.examiner.to_string(),
            agency: self.case.info().agency.clone(),
            notes: self.notes.map(str::to_string),
        }
    }

    /// The manifest's record of the signing key.
    #[must_use]
    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            keynum: self.key.keynum().to_string(),
            fingerprint: self.key.public_key().fingerprint(),
            public_key_file: self.public_key_file.clone(),
        }
    }

    /// Creates the item directory; an existing one is refused, never reused.
    pub fn create_item_dir(&self) -> Result<PathBuf, AcquireError> {
        check_item_name(self.item)?;
        let dir = self.case.dir().join(self.item);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(AcquireError::ItemExists { path: dir })
            }
            Err(source) => Err(AcquireError::Output {
                path: dir,
                what: "create the item directory",
                source,
            }),
        }
    }

    /// Creates the item directory and, in it, the new file `name` that will hold the
    /// evidence stream. When the file cannot be made, the empty directory is removed:
    /// nothing is left behind to be mistaken for evidence.
    pub fn create_item_with_file(&self, name: &str) -> Result<(PathBuf, File), AcquireError> {
        let dir = self.create_item_dir()?;
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => Ok((dir, f)),
            Err(source) => {
                let _ = std::fs::remove_dir(&dir);
                Err(AcquireError::Output {
                    path,
                    what: "create the evidence file",
                    source,
                })
            }
        }
    }

    /// [`seal`] with this context's key.
    pub fn seal(
        &self,
        item_dir: &Path,
        manifest: &Manifest,
        files: &[ListedFile],
    ) -> Result<String, AcquireError> {
        seal(
            item_dir,
            manifest,
            files,
            self.key,
            self.public_key_file.as_deref(),
        )
    }

    /// [`record_custody`] for this item.
    pub fn record_custody(
        &self,
        action: &str,
        hashes: BTreeMap<String, String>,
        details: BTreeMap<String, String>,
    ) -> Result<(), AcquireError> {
        record_custody(
            self.case,
            CustodyRecord {
                action,
                examiner: self.examiner,
                item: self.item,
                tool: &self.tool,
                hashes,
                details,
                key: self.key,
            },
        )
    }
}

/// The manifest's times: start and end (UTC) and the system clock against the RTC.
#[must_use]
pub fn times(started_utc: String, finished_utc: String) -> Times {
    let (system_minus_rtc_seconds, rtc_note) = crate::host::clock_offset();
    Times {
        started_utc,
        finished_utc,
        system_minus_rtc_seconds,
        rtc_note,
    }
}

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
