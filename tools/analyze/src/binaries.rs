//! Triage of the files found in suspicious places (temporary and hidden directories,
//! autostart places; see [`crate::fsevents::candidate_reason`]): what each is (ELF, PE,
//! script), its hashes, imports of note, packer hints and entropy; known-bad hash lists
//! and YARA rules the examiner supplies.
//!
//! ELF and PE headers are read with goblin, YARA rules run with boreal (a pure-Rust YARA
//! engine). Both are third-party parsers fed hostile bytes: each call is made inside
//! `catch_unwind`, so a panic in them becomes a problem line for that file, never the end
//! of the analysis.

use crate::collected::Collected;
use crate::event::utc_text;
use crate::files::Files;
use crate::findings::{Finding, Severity};
use crate::fsevents::Candidate;
use crate::text::display_safe;
use md5::Md5;
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::PathBuf;
use vestige_fs::walk::escape_name;

/// Bytes of one file read for triage (hashes of longer files cover this prefix, and say
/// so).
pub const MAX_TRIAGE_BYTES: usize = 64 * 1024 * 1024;
/// Lines read from one hash list.
pub const MAX_HASH_LINES: usize = 50_000_000;

/// What the examiner supplies.
#[derive(Debug, Clone, Default)]
pub struct TriageOptions {
    /// YARA rule files.
    pub yara_rules: Vec<PathBuf>,
    /// Known-bad hash lists: any MD5, SHA-1 or SHA-256 in hex on a line (plain lists,
    /// NSRL-style CSV, `sha256sum` output).
    pub hash_lists: Vec<PathBuf>,
}

/// Loaded rules and hash sets.
pub struct Triage {
    scanner: Option<boreal::Scanner>,
    known_bad: HashSet<String>,
    /// Where the hashes came from, for findings.
    lists: Vec<String>,
}

impl std::fmt::Debug for Triage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Triage")
            .field("yara", &self.scanner.is_some())
            .field("known_bad", &self.known_bad.len())
            .finish()
    }
}

impl Triage {
    /// Whether the examiner gave YARA rules.
    #[must_use]
    pub fn has_rules(&self) -> bool {
        self.scanner.is_some()
    }

    /// Compiles the rules and loads the lists.
    ///
    /// # Errors
    /// A rule file does not compile or a file cannot be read: the examiner's input, so
    /// the run stops and says which.
    pub fn load(opts: &TriageOptions) -> anyhow::Result<Self> {
        let scanner = if opts.yara_rules.is_empty() {
            None
        } else {
            let mut compiler = boreal::Compiler::new();
            for p in &opts.yara_rules {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                compiler.add_rules_str(&text).map_err(|e| {
                    anyhow::anyhow!("{}: YARA rules do not compile: {e:?}", p.display())
                })?;
            }
            let mut scanner = compiler.finalize();
            // Every match's offset, not just whether a rule matched: raw-volume findings
            // list where.
            scanner
                .set_scan_params(boreal::scanner::ScanParams::default().compute_full_matches(true));
            Some(scanner)
        };
        let mut known_bad = HashSet::new();
        let mut lists = Vec::new();
        for p in &opts.hash_lists {
            let text = std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            for line in text.split(|&b| b == b'\n').take(MAX_HASH_LINES) {
                for tok in line.split(|b| !b.is_ascii_hexdigit()) {
                    if matches!(tok.len(), 32 | 40 | 64) {
                        known_bad.insert(String::from_utf8_lossy(tok).to_ascii_lowercase());
                    }
                }
            }
            lists.push(p.display().to_string());
        }
        Ok(Self {
            scanner,
            known_bad,
            lists,
        })
    }
}

/// What the triage says about one file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BinaryInfo {
    /// Its path, escaped.
    pub path: String,
    /// Its inode.
    pub inode: u64,
    /// Why it was looked at.
    pub place: String,
    /// Its size.
    pub size: u64,
    /// `ELF 64-bit x86-64 executable`, `PE32+ DLL`, `script (#!/bin/sh)`, `data`.
    pub format: String,
    /// MD5, SHA-1, SHA-256 of the bytes read.
    pub md5: String,
    /// SHA-1.
    pub sha1: String,
    /// SHA-256.
    pub sha256: String,
    /// Whether the hashes cover only the first [`MAX_TRIAGE_BYTES`].
    pub hashes_of_prefix: bool,
    /// Shannon entropy in bits per byte (8 = random: packed or encrypted).
    pub entropy: f64,
    /// Imports and symbols an examiner looks at (process injection, download, sockets).
    pub imports_of_note: Vec<String>,
    /// UPX sections, high entropy, no imports at all …
    pub packer_hints: Vec<String>,
    /// YARA rules that matched.
    pub yara: Vec<String>,
    /// Whether a hash is on a known-bad list.
    pub known_bad: bool,
    /// Last modification (UTC).
    pub modified: Option<String>,
}

/// Shannon entropy of `b` in bits per byte.
#[must_use]
pub fn entropy(b: &[u8]) -> f64 {
    if b.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for &x in b {
        if let Some(c) = counts.get_mut(usize::from(x)) {
            *c += 1;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let n = b.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            #[allow(clippy::cast_precision_loss)]
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// PE imports and ELF symbols that show what a binary can do to others: inject into
/// processes, download and run, hide, open sockets, escalate.
const NOTABLE: &[&str] = &[
    "VirtualAllocEx",
    "WriteProcessMemory",
    "CreateRemoteThread",
    "NtUnmapViewOfSection",
    "SetWindowsHookExA",
    "SetWindowsHookExW",
    "URLDownloadToFileA",
    "URLDownloadToFileW",
    "InternetOpenA",
    "InternetOpenW",
    "InternetOpenUrlA",
    "InternetOpenUrlW",
    "WinExec",
    "ShellExecuteA",
    "ShellExecuteW",
    "CreateServiceA",
    "CreateServiceW",
    "RegSetValueExA",
    "RegSetValueExW",
    "CryptEncrypt",
    "IsDebuggerPresent",
    "AdjustTokenPrivileges",
    "WSAStartup",
    "ptrace",
    "execve",
    "execl",
    "execvp",
    "system",
    "popen",
    "socket",
    "connect",
    "bind",
    "listen",
    "setuid",
    "setgid",
    "fork",
    "daemon",
    "unlink",
    "prctl",
    "memfd_create",
    "init_module",
    "dlopen",
];

/// Format, imports of note and packer hints from the headers (goblin).
fn headers(b: &[u8]) -> (String, Vec<String>, Vec<String>) {
    let mut notable = Vec::new();
    let mut hints = Vec::new();
    let format = match goblin::Object::parse(b) {
        Ok(goblin::Object::Elf(elf)) => {
            let class = if elf.is_64 { "64-bit" } else { "32-bit" };
            let kind = match elf.header.e_type {
                goblin::elf::header::ET_EXEC => "executable",
                goblin::elf::header::ET_DYN if elf.interpreter.is_some() => "executable (PIE)",
                goblin::elf::header::ET_DYN => "shared object",
                goblin::elf::header::ET_REL => "relocatable object",
                goblin::elf::header::ET_CORE => "core dump",
                _ => "other",
            };
            let machine = goblin::elf::header::machine_to_str(elf.header.e_machine);
            for s in elf.dynsyms.iter() {
                if let Some(name) = elf.dynstrtab.get_at(s.st_name) {
                    if s.is_import()
                        && NOTABLE.contains(&name)
                        && !notable.iter().any(|n| n == name)
                    {
                        notable.push(name.to_string());
                    }
                }
            }
            if elf.interpreter.is_none() && elf.header.e_type == goblin::elf::header::ET_EXEC {
                hints.push("statically linked".to_string());
            }
            if elf.syms.is_empty() {
                hints.push("stripped (no symbol table)".to_string());
            }
            for sh in &elf.section_headers {
                if let Some(n) = elf.shdr_strtab.get_at(sh.sh_name) {
                    if n.starts_with("UPX") {
                        hints.push(format!("UPX section {n}"));
                    }
                }
            }
            if b.windows(4).any(|w| w == b"UPX!") {
                hints.push("UPX! marker".to_string());
            }
            format!("ELF {class} {machine} {kind}")
        }
        Ok(goblin::Object::PE(pe)) => {
            let class = if pe.is_64 { "PE32+" } else { "PE32" };
            let kind = if pe.is_lib { "DLL" } else { "executable" };
            for i in &pe.imports {
                let name: &str = &i.name;
                if NOTABLE.contains(&name) && !notable.iter().any(|n| n == name) {
                    notable.push(name.to_string());
                }
            }
            if pe.imports.is_empty() {
                hints.push("no imports".to_string());
            }
            for s in &pe.sections {
                let n = String::from_utf8_lossy(&s.name)
                    .trim_end_matches('\0')
                    .to_string();
                if n.starts_with("UPX") || n == ".aspack" || n == ".petite" || n == "MPRESS1" {
                    hints.push(format!("packer section {}", display_safe(n.as_bytes())));
                }
            }
            format!("{class} {kind}")
        }
        Ok(goblin::Object::Mach(_)) => "Mach-O".to_string(),
        _ if b.starts_with(b"#!") => {
            let line = b.split(|&c| c == b'\n').next().unwrap_or_default();
            format!(
                "script ({})",
                display_safe(line.get(..line.len().min(80)).unwrap_or_default())
            )
        }
        _ => "data".to_string(),
    };
    (format, notable, hints)
}

/// A rule's name as examiners write it: `rule`, or `namespace:rule` outside the default
/// namespace.
fn rule_name(r: &boreal::scanner::EvaluatedRule<'_>) -> String {
    if r.namespace.is_empty() || r.namespace == "default" {
        r.name.to_string()
    } else {
        format!("{}:{}", r.namespace, r.name)
    }
}

/// Names of the YARA rules matching `b`.
fn yara(scanner: &boreal::Scanner, b: &[u8]) -> Vec<String> {
    let res = match scanner.scan_mem(b) {
        Ok(r) => r,
        Err((_, r)) => r,
    };
    res.rules
        .iter()
        .filter(|r| r.matched)
        .map(rule_name)
        .collect()
}

/// Triage of `candidates` on `files`' volume.
///
/// # Errors
/// None: unreadable files become problems.
pub fn triage(
    files: &Files<'_>,
    candidates: &[Candidate],
    loaded: &Triage,
) -> (Vec<BinaryInfo>, Collected) {
    let mut out = Collected::default();
    let mut infos = Vec::new();
    let fs = files.fs();
    for c in candidates {
        let path = escape_name(&c.path);
        let evidence = files.evidence(&c.path, Some(c.inode));
        let want = usize::try_from(c.size)
            .unwrap_or(usize::MAX)
            .min(MAX_TRIAGE_BYTES);
        let mut bytes = vec![0u8; want];
        let read = fs
            .open(c.inode, None)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                r.read_exact_at(&mut bytes, 0)
                    .map_err(|e| format!("reading {want} bytes: {e}"))
            });
        if let Err(e) = read {
            out.problem(format!("{}: {path}: {e}", files.volume()));
            continue;
        }
        let analysed = std::panic::catch_unwind(|| headers(&bytes));
        let (format, imports_of_note, mut packer_hints) = analysed.unwrap_or_else(|_| {
            out.problems.push(format!(
                "{}: {path}: the ELF/PE parser failed on this file (panic caught)",
                files.volume()
            ));
            ("unparsed".to_string(), Vec::new(), Vec::new())
        });
        let ent = entropy(&bytes);
        if ent > 7.2 && bytes.len() > 4096 {
            packer_hints.push(format!("entropy {ent:.2} bits/byte (packed or encrypted)"));
        }
        let matched = loaded.scanner.as_ref().map_or_else(Vec::new, |s| {
            std::panic::catch_unwind(|| yara(s, &bytes))
                .unwrap_or_else(|_| vec!["(YARA engine failed on this file)".to_string()])
        });
        let info = BinaryInfo {
            path: path.clone(),
            inode: c.inode,
            place: c.reason.to_string(),
            size: c.size,
            md5: hex::encode(Md5::digest(&bytes)),
            sha1: hex::encode(Sha1::digest(&bytes)),
            sha256: hex::encode(Sha256::digest(&bytes)),
            hashes_of_prefix: (bytes.len() as u64) < c.size,
            format,
            entropy: (ent * 100.0).round() / 100.0,
            imports_of_note,
            packer_hints,
            yara: matched,
            known_bad: false,
            modified: c.times.modified.map(utc_text),
        };
        let known_bad = [&info.md5, &info.sha1, &info.sha256]
            .iter()
            .any(|h| loaded.known_bad.contains(h.as_str()));
        let info = BinaryInfo { known_bad, ..info };
        let when = c.times.modified;
        let dated = |f: Finding| match when {
            Some(t) => f.at(t),
            None => f,
        };
        let executable = info.format.starts_with("ELF") || info.format.starts_with("PE");
        if executable || info.format.starts_with("script") {
            let severity = if executable {
                Severity::Medium
            } else {
                Severity::Low
            };
            out.findings.push(dated(Finding::new(
                "binary.suspicious_location",
                severity,
                format!("{} in a {}: {path}", info.format, c.reason),
                format!(
                    "{} ({} bytes, SHA-256 {}) lies in a {}, where programs are dropped by attackers{}{}.",
                    info.format,
                    info.size,
                    info.sha256,
                    c.reason,
                    if info.imports_of_note.is_empty() {
                        String::new()
                    } else {
                        format!("; imports of note: {}", info.imports_of_note.join(", "))
                    },
                    if info.packer_hints.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", info.packer_hints.join(", "))
                    }
                ),
                vec![evidence.clone()],
            )));
        }
        if info.known_bad {
            out.findings.push(dated(Finding::new(
                "binary.known_bad_hash",
                Severity::High,
                format!("Known-bad file: {path}"),
                format!(
                    "Its hash is on a list the examiner supplied ({}): SHA-256 {}, MD5 {}.",
                    loaded.lists.join(", "),
                    info.sha256,
                    info.md5
                ),
                vec![evidence.clone()],
            )));
        }
        if !info.yara.is_empty() {
            out.findings.push(dated(Finding::new(
                "yara.match",
                Severity::High,
                format!("YARA {} matched {path}", info.yara.join(", ")),
                format!(
                    "The examiner's YARA rules {} match this file (SHA-256 {}).",
                    info.yara.join(", "),
                    info.sha256
                ),
                vec![evidence.clone()],
            )));
        }
        infos.push(info);
    }
    (infos, out)
}

/// Bytes of a volume scanned at once when YARA runs over the raw volume.
pub const RAW_WINDOW: usize = 16 << 20;
/// Bytes each window shares with the next: a match shorter than this that spans a window
/// boundary is still found.
pub const RAW_OVERLAP: usize = 1 << 20;
/// Offsets listed per rule in a raw-volume finding.
const RAW_OFFSETS_LISTED: usize = 10;

/// The examiner's YARA rules over the whole raw volume `vol` (named `volume`): allocated
/// files, slack and unallocated space alike, so deleted and carved-over data is searched
/// too. The volume is read in [`RAW_WINDOW`] windows overlapping by [`RAW_OVERLAP`];
/// rules are evaluated per window, so conditions on `filesize` or on the whole input
/// (`#a > 100`, `uint16(0) == 0x5a4d`) mean the window, not a file. Each matching rule
/// gives one finding with the volume offsets of its first string matches.
pub fn yara_volume(
    loaded: &Triage,
    vol: &dyn vestige_fs::ReadAt,
    volume: &str,
    progress: &dyn Fn(&str),
) -> Collected {
    yara_volume_with(loaded, vol, volume, RAW_WINDOW, RAW_OVERLAP, progress)
}

/// [`yara_volume`] with windows of `window` bytes overlapping by `overlap`.
pub fn yara_volume_with(
    loaded: &Triage,
    vol: &dyn vestige_fs::ReadAt,
    volume: &str,
    window: usize,
    overlap: usize,
    progress: &dyn Fn(&str),
) -> Collected {
    let mut out = Collected::default();
    let Some(scanner) = loaded.scanner.as_ref() else {
        return out;
    };
    let size = vol.size();
    let mut hits: std::collections::BTreeMap<String, std::collections::BTreeSet<u64>> =
        std::collections::BTreeMap::new();
    let window = window.max(2);
    let overlap = overlap.min(window / 2);
    let mut buf = vec![0u8; window];
    let step = (window - overlap) as u64;
    let mut start = 0u64;
    let mut last_report = std::time::Instant::now();
    while start < size {
        let len = usize::try_from(size - start)
            .unwrap_or(usize::MAX)
            .min(window);
        let Some(window) = buf.get_mut(..len) else {
            break;
        };
        if let Err(e) = vol.read_exact_at(window, start) {
            out.problem(format!(
                "{volume}: YARA over the raw volume: reading {len} bytes at offset {start}: {e}"
            ));
            start = start.saturating_add(step);
            continue;
        }
        let scanned = std::panic::catch_unwind(|| {
            let res = match scanner.scan_mem(window) {
                Ok(r) => r,
                Err((_, r)) => r,
            };
            res.rules
                .iter()
                .filter(|r| r.matched)
                .map(|r| {
                    let name = rule_name(r);
                    let offsets: Vec<u64> = r
                        .matches
                        .iter()
                        .flat_map(|s| s.matches.iter().map(|m| (m.base + m.offset) as u64))
                        .collect();
                    (name, offsets)
                })
                .collect::<Vec<_>>()
        });
        match scanned {
            Ok(rules) => {
                for (name, offsets) in rules {
                    let set = hits.entry(name).or_default();
                    for o in offsets {
                        set.insert(start + o);
                    }
                }
            }
            Err(_) => out.problem(format!(
                "{volume}: the YARA engine failed on the window at offset {start} (panic caught)"
            )),
        }
        if last_report.elapsed().as_secs() >= 10 {
            progress(&format!(
                "{volume}: YARA over the raw volume: {} of {size} bytes",
                start + len as u64
            ));
            last_report = std::time::Instant::now();
        }
        if start + len as u64 >= size {
            break;
        }
        start = start.saturating_add(step);
    }
    for (rule, offsets) in hits {
        let listed: Vec<u64> = offsets.iter().copied().take(RAW_OFFSETS_LISTED).collect();
        let evidence = listed
            .iter()
            .map(|&o| crate::event::Evidence {
                volume: volume.to_string(),
                offset: Some(o),
                ..crate::event::Evidence::default()
            })
            .collect();
        out.findings.push(Finding::new(
            "yara.match_volume",
            Severity::High,
            format!("YARA {rule} matched the raw volume {volume}"),
            format!(
                "The examiner's YARA rule {rule} matches the raw bytes of {volume} (files, slack and unallocated space) at {} string position{} (YARA reports at most 1,000 per string in each window); the first at volume offset{} {}.",
                offsets.len(),
                if offsets.len() == 1 { "" } else { "s" },
                if listed.len() == 1 { "" } else { "s" },
                listed.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ),
            evidence,
        ));
    }
    out
}

#[cfg(test)]
#[path = "binaries_tests.rs"]
mod tests;
