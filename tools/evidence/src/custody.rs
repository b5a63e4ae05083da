//! The case (case.json) and its chain-of-custody log (custody.jsonl).
//!
//! Every action on a case appends one JSON line to custody.jsonl. Each line carries the
//! SHA-256 of the line before it (`prev_sha256`, 64 zeros for the first), so removing,
//! reordering or editing an entry breaks the chain at a line [`verify_chain`] names.
//! The log is append-only: Vestige opens it with `O_APPEND` under an exclusive lock and never
//! rewrites it.

use crate::fsutil::{read_capped, sha256_hex, sync_dir, write_new};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The format identifier of case.json.
pub const CASE_FORMAT: &str = "vestige-case/1";
/// The case description file.
pub const CASE_FILE: &str = "case.json";
/// The custody log file.
pub const CUSTODY_FILE: &str = "custody.jsonl";
/// The `prev_sha256` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The largest custody log or case file read back.
const MAX_CASE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// case.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseInfo {
    /// [`CASE_FORMAT`].
    pub format: String,
    /// The case identifier.
    pub case_id: String,
    /// The examiner who opened the case.
    pub examiner: String,
    /// The examiner's agency.
    pub agency: Option<String>,
    /// Free-form notes.
    pub notes: Option<String>,
    /// When the case was opened (RFC 3339, UTC).
    pub created_utc: String,
    /// The tool and version that created the case.
    pub tool: String,
}

impl CaseInfo {
    /// A new case description, created now; [`Case::init`] fills in the format and tool.
    pub fn new(
        case_id: &str,
        examiner: &str,
        agency: Option<String>,
        notes: Option<String>,
    ) -> Self {
        CaseInfo {
            format: CASE_FORMAT.to_string(),
            case_id: case_id.to_string(),
            examiner: examiner.to_string(),
            agency,
            notes,
            created_utc: now_utc_rfc3339(),
            tool: String::new(),
        }
    }
}

/// One line of custody.jsonl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyEntry {
    /// 1-based position in the log.
    pub seq: u64,
    /// When (RFC 3339, UTC).
    pub time_utc: String,
    /// Who.
    pub examiner: String,
    /// What, e.g. "case-init", "acquire-disk", "verify", "export-raw".
    pub action: String,
    /// The tool and version that acted.
    pub tool: String,
    /// The evidence item acted on, if any.
    pub item: Option<String>,
    /// Hashes involved (name → lowercase hex), e.g. source SHA-256, manifest SHA-256.
    pub hashes: BTreeMap<String, String>,
    /// Free-form facts: outcome, paths, key fingerprint.
    pub details: BTreeMap<String, String>,
    /// SHA-256 of the previous line's bytes (without its newline), or [`GENESIS`].
    pub prev_sha256: String,
}

/// What a new custody entry says; the log fills in seq, time, tool and the chain.
#[derive(Debug, Clone, Default)]
pub struct NewEntry {
    /// Who.
    pub examiner: String,
    /// What.
    pub action: String,
    /// The item, if any.
    pub item: Option<String>,
    /// Hashes involved.
    pub hashes: BTreeMap<String, String>,
    /// Free-form facts.
    pub details: BTreeMap<String, String>,
}

/// Errors of the case and custody log.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// File-system failure.
    #[error("{path}: {what}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The case directory already holds something.
    #[error("{path}: already exists and is not empty; a new case needs a new directory")]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// case.json is not a Vestige case.
    #[error("{path}: not a Vestige case file: {reason}")]
    BadCase {
        /// case.json.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A custody line is not valid JSON of the expected shape.
    #[error("{path}: line {line}: not a custody entry: {reason}")]
    BadEntry {
        /// custody.jsonl.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The hash chain is broken.
    #[error("{path}: line {line}: chain broken: prev_sha256 is {found}, expected {expected} (the SHA-256 of line {prev_line})")]
    Chain {
        /// custody.jsonl.
        path: PathBuf,
        /// 1-based line number of the entry whose link is wrong.
        line: usize,
        /// 1-based line number of the entry it should link to.
        prev_line: usize,
        /// The hash the previous line has.
        expected: String,
        /// The hash the entry records.
        found: String,
    },
    /// A sequence number is out of order.
    #[error("{path}: line {line}: seq is {found}, expected {expected}")]
    Sequence {
        /// custody.jsonl.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Expected seq.
        expected: u64,
        /// Found seq.
        found: u64,
    },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> CustodyError + 'a {
    move |source| CustodyError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// The current time as RFC 3339 UTC with second precision, e.g. "2026-11-25T14:35:41Z".
pub fn now_utc_rfc3339() -> String {
    format_utc(time::OffsetDateTime::now_utc())
}

/// Formats a time as RFC 3339 UTC (seconds precision; subseconds are noise in a custody log).
pub fn format_utc(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&fmt)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// An open case directory.
#[derive(Debug, Clone)]
pub struct Case {
    dir: PathBuf,
    info: CaseInfo,
}

impl Case {
    /// Creates a case in `dir` (created if missing; must be empty): writes case.json and the
    /// first custody entry ("case-init", with case.json's SHA-256).
    pub fn init(dir: &Path, mut info: CaseInfo, tool: &str) -> Result<Self, CustodyError> {
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(CustodyError::NotEmpty {
                        path: dir.to_path_buf(),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)
                    .map_err(io_err(dir, "cannot create the case directory"))?;
            }
            Err(e) => return Err(io_err(dir, "cannot read the case directory")(e)),
        }
        info.format = CASE_FORMAT.to_string();
        info.tool = tool.to_string();
        let mut json = serde_json::to_vec_pretty(&info).unwrap_or_default();
        json.push(b'\n');
        let case_path = dir.join(CASE_FILE);
        write_new(&case_path, &json).map_err(io_err(&case_path, "cannot write case.json"))?;
        let case = Case {
            dir: dir.to_path_buf(),
            info,
        };
        let mut hashes = BTreeMap::new();
        hashes.insert("case.json sha256".to_string(), sha256_hex(&json));
        case.append(
            NewEntry {
                examiner: case.info.examiner.clone(),
                action: "case-init".to_string(),
                item: None,
                hashes,
                details: BTreeMap::new(),
            },
            tool,
        )?;
        sync_dir(dir).map_err(io_err(dir, "cannot sync the case directory"))?;
        Ok(case)
    }

    /// Opens an existing case directory.
    pub fn open(dir: &Path) -> Result<Self, CustodyError> {
        let path = dir.join(CASE_FILE);
        let bytes = read_capped(&path, MAX_CASE_FILE_BYTES).map_err(io_err(
            &path,
            "cannot read case.json (is this a case directory?)",
        ))?;
        let info: CaseInfo = serde_json::from_slice(&bytes).map_err(|e| CustodyError::BadCase {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if info.format != CASE_FORMAT {
            return Err(CustodyError::BadCase {
                path,
                reason: format!("format is {:?}, expected {CASE_FORMAT:?}", info.format),
            });
        }
        Ok(Case {
            dir: dir.to_path_buf(),
            info,
        })
    }

    /// The case directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// case.json's contents.
    pub fn info(&self) -> &CaseInfo {
        &self.info
    }

    /// Appends a custody entry, chained to the last one, under an exclusive lock; fsyncs.
    pub fn append(&self, entry: NewEntry, tool: &str) -> Result<CustodyEntry, CustodyError> {
        let path = self.dir.join(CUSTODY_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path, "cannot open the custody log"))?;
        file.lock()
            .map_err(io_err(&path, "cannot lock the custody log"))?;
        let existing = read_capped(&path, MAX_CASE_FILE_BYTES)
            .map_err(io_err(&path, "cannot read the custody log"))?;
        let (seq, prev) = match last_line(&existing) {
            None => (1, GENESIS.to_string()),
            Some(line) => {
                let last: CustodyEntry =
                    serde_json::from_slice(line).map_err(|e| CustodyError::BadEntry {
                        path: path.clone(),
                        line: existing
                            .split(|&b| b == b'\n')
                            .filter(|l| !l.is_empty())
                            .count(),
                        reason: e.to_string(),
                    })?;
                (last.seq.saturating_add(1), sha256_hex(line))
            }
        };
        let record = CustodyEntry {
            seq,
            time_utc: now_utc_rfc3339(),
            examiner: entry.examiner,
            action: entry.action,
            tool: tool.to_string(),
            item: entry.item,
            hashes: entry.hashes,
            details: entry.details,
            prev_sha256: prev,
        };
        let mut line = serde_json::to_vec(&record).unwrap_or_default();
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|()| file.sync_all())
            .map_err(io_err(&path, "cannot append to the custody log"))?;
        Ok(record)
    }

    /// Reads the custody log and checks its chain.
    pub fn custody(&self) -> Result<Vec<CustodyEntry>, CustodyError> {
        verify_chain(&self.dir.join(CUSTODY_FILE))
    }
}

fn last_line(bytes: &[u8]) -> Option<&[u8]> {
    bytes.split(|&b| b == b'\n').rfind(|l| !l.is_empty())
}

/// Reads custody.jsonl and checks every link and sequence number; returns the entries.
pub fn verify_chain(path: &Path) -> Result<Vec<CustodyEntry>, CustodyError> {
    let bytes = read_capped(path, MAX_CASE_FILE_BYTES)
        .map_err(io_err(path, "cannot read the custody log"))?;
    let mut entries = Vec::new();
    let mut prev_hash = GENESIS.to_string();
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let line_no = i + 1;
        if line.is_empty() {
            if lines.peek().is_none() {
                break;
            }
            return Err(CustodyError::BadEntry {
                path: path.to_path_buf(),
                line: line_no,
                reason: "empty line".to_string(),
            });
        }
        let entry: CustodyEntry =
            serde_json::from_slice(line).map_err(|e| CustodyError::BadEntry {
                path: path.to_path_buf(),
                line: line_no,
                reason: e.to_string(),
            })?;
        let expected_seq = entries.len() as u64 + 1;
        if entry.seq != expected_seq {
            return Err(CustodyError::Sequence {
                path: path.to_path_buf(),
                line: line_no,
                expected: expected_seq,
                found: entry.seq,
            });
        }
        if entry.prev_sha256 != prev_hash {
            return Err(CustodyError::Chain {
                path: path.to_path_buf(),
                line: line_no,
                prev_line: line_no.saturating_sub(1),
                expected: prev_hash,
                found: entry.prev_sha256,
            });
        }
        prev_hash = sha256_hex(line);
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn info() -> CaseInfo {
        CaseInfo::new("C-1", "Ada", None, None)
    }

    #[test]
    fn chain_links_and_detects_edits() {
        let dir = tempfile::tempdir().unwrap();
        let case_dir = dir.path().join("case");
        let case = Case::init(&case_dir, info(), "vestige 0").unwrap();
        for action in ["a", "b", "c"] {
            case.append(
                NewEntry {
                    examiner: "Ada".into(),
                    action: action.into(),
                    ..Default::default()
                },
                "vestige 0",
            )
            .unwrap();
        }
        let entries = case.custody().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].prev_sha256, GENESIS);

        let log = case_dir.join(CUSTODY_FILE);
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::write(
            &log,
            text.replacen("\"action\":\"b\"", "\"action\":\"x\"", 1),
        )
        .unwrap();
        match verify_chain(&log) {
            Err(CustodyError::Chain { line, .. }) => assert_eq!(line, 4),
            other => panic!("expected a broken chain, got {other:?}"),
        }

        let lines: Vec<&str> = text.lines().collect();
        let dropped = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[3]);
        std::fs::write(&log, dropped).unwrap();
        assert!(matches!(
            verify_chain(&log),
            Err(CustodyError::Sequence { line: 3, .. })
        ));
    }

    #[test]
    fn init_refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        assert!(matches!(
            Case::init(dir.path(), info(), "t"),
            Err(CustodyError::NotEmpty { .. })
        ));
    }
}
