//! `vestige analyze CASE`: every evidence item of a case verified, every file system of
//! every disk item walked, every artifact collector run on the systems found, and the
//! results gathered into one [`Analysis`] the report is written from.
//!
//! Unverified evidence proves nothing: an item that fails verification is reported as
//! such and not analysed. Everything is read through the readers (images → volumes →
//! file systems → [`Files`]), never mounted, never written.

use crate::collected::Collected;
use crate::event::{Event, Evidence, Timestamp};
use crate::files::Files;
use crate::findings::Finding;
use crate::fsevents;
use crate::report::{select_timeline, CustodySummary, ItemSummary, Report};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use vestige_evidence::custody::{verify_chain, Case, CUSTODY_FILE};
use vestige_evidence::manifest::{Manifest, Status, IMAGE_FILE, MANIFEST_FILE};
use vestige_evidence::read_at::FileReader;
use vestige_evidence::verify::{verify_item, ItemReport, Verdict};
use vestige_fs::locate::{open_fs, volumes};

/// What the examiner adds to an analysis.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Threads for verification.
    pub threads: usize,
    /// Binary triage: YARA rule files and known-bad hash lists.
    pub triage: crate::binaries::TriageOptions,
}

/// The result of analysing a case.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// What the report shows.
    pub report: Report,
    /// The whole timeline, sorted.
    pub events: Vec<Event>,
}

/// Item directories of a case (those with a manifest), sorted.
///
/// # Errors
/// The case directory cannot be read.
pub fn case_items(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut items: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(MANIFEST_FILE).is_file())
        .collect();
    items.sort();
    Ok(items)
}

fn item_kind(m: &Manifest) -> &'static str {
    if m.memory.is_some() {
        "memory"
    } else if m.capture.is_some() {
        "network capture"
    } else if m.outputs.iter().any(|o| o.name == IMAGE_FILE) {
        "disk"
    } else {
        "files"
    }
}

fn summarize_item(name: &str, m: Option<&Manifest>, v: &ItemReport) -> ItemSummary {
    let verification = match v.verdict {
        Verdict::Verified => "verified".to_string(),
        Verdict::VerifiedIncomplete => "verified (incomplete acquisition)".to_string(),
        Verdict::Failed => format!("FAILED: {}", v.problems.join("; ")),
    };
    let signature = v.signature.as_ref().map_or("unsigned".to_string(), |k| {
        format!(
            "key {} {}{}: {}",
            k.keynum,
            k.fingerprint.as_deref().unwrap_or(""),
            if k.pinned {
                " (pinned)"
            } else {
                " (from the case)"
            },
            if k.ok {
                "signature verified"
            } else {
                "signature FAILED"
            }
        )
    });
    let Some(m) = m else {
        return ItemSummary {
            name: name.to_string(),
            verification,
            signature,
            ..ItemSummary::default()
        };
    };
    let s = &m.source;
    let mut source = s.path.clone();
    for (label, v) in [
        ("model", &s.vendor),
        ("model", &s.model),
        ("serial", &s.serial),
    ] {
        if let Some(v) = v {
            source.push_str(&format!(", {label} {v}"));
        }
    }
    let mut hashes = vec![("SHA-256".to_string(), m.hashes.sha256.clone())];
    for (k, v) in [("MD5", &m.hashes.md5), ("SHA-1", &m.hashes.sha1)] {
        if let Some(v) = v {
            hashes.push((k.to_string(), v.clone()));
        }
    }
    let wp = &s.write_protection;
    ItemSummary {
        name: name.to_string(),
        kind: item_kind(m).to_string(),
        source,
        size_bytes: s.size_bytes,
        status: match m.status {
            Status::Complete => "complete".to_string(),
            Status::Incomplete => format!(
                "incomplete: {}",
                m.incomplete_reason.as_deref().unwrap_or("no reason given")
            ),
        },
        hashes,
        verification,
        signature,
        acquired: format!(
            "{} – {} on {} (kernel {})",
            m.times.started_utc,
            m.times.finished_utc,
            m.host.hostname.as_deref().unwrap_or("?"),
            m.host.kernel.as_deref().unwrap_or("?")
        ),
        write_protection: format!(
            "opened {}; BLKROSET {}; read-only verified: {}",
            wp.open_mode,
            wp.blkroset,
            wp.read_only_verified
                .map_or("n/a".to_string(), |b| b.to_string())
        ),
        unreadable: if m.acquisition.unreadable_ranges.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{} ranges, {} bytes",
                m.acquisition.unreadable_ranges.len(),
                m.acquisition
                    .unreadable_ranges
                    .iter()
                    .map(|r| r.length_bytes)
                    .sum::<u64>()
            )
        },
    }
}

/// Runs every collector on one file system; returns its profile sections.
/// `ntfs` is the same file system as `files`' when it is NTFS (its change journal is
/// read too); `reader` is the raw volume (for YARA).
/// The file system a volume was opened as, when a collector needs more than the
/// [`vestige_fs::FileSystem`] trait gives (a journal).
#[derive(Clone, Copy)]
enum Opened<'a, 'v> {
    Ntfs(&'a vestige_fs::ntfs::Ntfs<'v>),
    Ext4(&'a vestige_fs::ext4::Ext4<'v>),
    Other,
}

fn analyze_volume(
    reader: &dyn vestige_fs::ReadAt,
    opened: Opened<'_, '_>,
    files: &Files<'_>,
    triage: &crate::binaries::Triage,
    out: &mut Collected,
    progress: &dyn Fn(&str),
) -> Vec<(String, Value)> {
    let vol = files.volume().to_string();
    let mut profiles = Vec::new();
    progress(&format!("{vol}: walking the file system"));
    let (summary, candidates, got) = fsevents::collect(files);
    out.absorb(got);
    profiles.push((
        format!("{vol}: {} file system", summary.kind),
        serde_json::to_value(&summary).unwrap_or(Value::Null),
    ));
    match opened {
        Opened::Ntfs(ntfs) => {
            progress(&format!("{vol}: NTFS change journal"));
            if let Some((usn, got)) = crate::usn::collect(ntfs, &vol) {
                out.absorb(got);
                profiles.push((
                    format!("{vol}: NTFS change journal ($UsnJrnl:$J)"),
                    serde_json::to_value(&usn).unwrap_or(Value::Null),
                ));
            }
        }
        Opened::Ext4(ext4) => {
            progress(&format!("{vol}: ext4 journal"));
            if let Some((journal, got)) = crate::ext4journal::collect(ext4, &vol) {
                out.absorb(got);
                profiles.push((
                    format!("{vol}: ext4 journal"),
                    serde_json::to_value(&journal).unwrap_or(Value::Null),
                ));
            }
        }
        Opened::Other => {}
    }
    if crate::linux::is_linux_root(files) {
        progress(&format!("{vol}: Linux system artifacts and logs"));
        // Logs and dpkg.log hold local times: the system's own zone converts them.
        let zone = crate::tz::Zone::load(files);
        let (profile, got) = crate::linux::collect_with_zone(files, &|local| zone.to_utc(local));
        out.absorb(got);
        profiles.push((
            format!("{vol}: Linux system"),
            serde_json::to_value(&profile).unwrap_or(Value::Null),
        ));
        out.absorb(crate::logs::collect(files, &zone));
    }
    if crate::windows::is_windows_root(files) {
        progress(&format!(
            "{vol}: Windows registry, event logs and artifacts"
        ));
        let (profile, got) = crate::windows::collect(files);
        out.absorb(got);
        profiles.push((
            format!("{vol}: Windows system"),
            serde_json::to_value(&profile).unwrap_or(Value::Null),
        ));
    }
    if triage.has_rules() {
        progress(&format!(
            "{vol}: YARA over the raw volume (files, slack, unallocated)"
        ));
        out.absorb(crate::binaries::yara_volume(triage, reader, &vol, progress));
    }
    if !candidates.is_empty() {
        progress(&format!(
            "{vol}: binary triage of {} files",
            candidates.len()
        ));
        let (bins, got) = crate::binaries::triage(files, &candidates, triage);
        out.absorb(got);
        if !bins.is_empty() {
            profiles.push((
                format!("{vol}: binaries in suspicious places"),
                serde_json::to_value(&bins).unwrap_or(Value::Null),
            ));
        }
    }
    profiles
}

/// Every file system of a disk item.
fn analyze_disk(
    item_dir: &Path,
    name: &str,
    triage: &crate::binaries::Triage,
    out: &mut Collected,
    progress: &dyn Fn(&str),
) -> Vec<(String, Value)> {
    let mut profiles = Vec::new();
    let disk = match vestige_formats::open(item_dir) {
        Ok(d) => d,
        Err(e) => {
            out.problem(format!("{name}: cannot open the image: {e}"));
            return profiles;
        }
    };
    let (layout, vols) = match volumes(&*disk, item_dir) {
        Ok(v) => v,
        Err(e) => {
            out.problem(format!("{name}: cannot read the volume system: {e}"));
            return profiles;
        }
    };
    profiles.push((
        format!("{name}: volumes"),
        serde_json::to_value(&layout).unwrap_or(Value::Null),
    ));
    for v in &vols {
        let label = format!("{name}:{}", v.id);
        let reader = &*v.reader;
        let mut run = |fs: &dyn vestige_fs::FileSystem, opened: Opened<'_, '_>| {
            let files = Files::new(fs, &label);
            profiles.extend(analyze_volume(
                reader, opened, &files, triage, out, progress,
            ));
        };
        // NTFS and ext2/3/4 are opened as themselves (not through `open_fs`, which would
        // hide them behind the trait) so that one open serves both the file system and
        // its journal.
        let opened = if vestige_fs::ntfs::probe(reader) {
            vestige_fs::ntfs::Ntfs::open(reader, &label).map(|n| run(&n, Opened::Ntfs(&n)))
        } else if vestige_fs::ext4::probe(reader) {
            vestige_fs::ext4::Ext4::open(reader, &label).map(|e| run(&e, Opened::Ext4(&e)))
        } else {
            open_fs(reader, &label).map(|fs| run(&*fs, Opened::Other))
        };
        match opened {
            Ok(()) => {}
            Err(vestige_fs::FsError::Unsupported { what, .. }) => {
                out.problem(format!(
                    "{label} ({}): no file system read: {what}",
                    v.description
                ));
            }
            Err(e) => out.problem(format!("{label} ({}): {e}", v.description)),
        }
    }
    profiles
}

/// A network capture's events.
fn analyze_capture(item_dir: &Path, m: &Manifest, name: &str, out: &mut Collected) {
    let Some(file) = m
        .outputs
        .iter()
        .find(|o| o.name.ends_with(".pcapng") || o.name.ends_with(".pcap"))
    else {
        out.problem(format!("{name}: no capture file listed in the manifest"));
        return;
    };
    let path = item_dir.join(&file.name);
    let reader = match FileReader::open(&path) {
        Ok(r) => r,
        Err(e) => {
            out.problem(format!("{}: {e}", path.display()));
            return;
        }
    };
    match crate::pcap::summarize(&reader, &path.display().to_string()) {
        Ok(s) => {
            for e in crate::pcap::timeline_events(&s) {
                let secs = i64::try_from(e.timestamp_ns / 1_000_000_000).unwrap_or(i64::MAX);
                let nanos = u32::try_from(e.timestamp_ns % 1_000_000_000).unwrap_or(0);
                out.events.push(Event::new(
                    Timestamp { secs, nanos },
                    e.source,
                    e.kind,
                    e.description,
                    Evidence {
                        volume: name.to_string(),
                        path: Some(file.name.clone()),
                        ..Evidence::default()
                    },
                ));
            }
            out.problems
                .extend(s.errors.iter().map(|e| format!("{name}: {e}")));
        }
        Err(e) => out.problem(format!("{name}: {e}")),
    }
}

/// Analyses the case in `dir`. `progress` gets one line per step.
///
/// # Errors
/// `dir` is not a case (no readable case.json) or its items cannot be listed.
pub fn analyze_case(
    dir: &Path,
    opts: &Options,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Analysis> {
    let case = Case::open(dir)?;
    let triage = crate::binaries::Triage::load(&opts.triage)?;
    let info = case.info().clone();
    let custody = match verify_chain(&dir.join(CUSTODY_FILE)) {
        Ok(entries) => CustodySummary {
            chain_ok: true,
            error: None,
            entries: entries
                .iter()
                .map(|e| {
                    json!({"seq": e.seq, "time_utc": e.time_utc, "examiner": e.examiner,
                           "action": e.action, "item": e.item, "details": e.details})
                })
                .collect(),
        },
        Err(e) => CustodySummary {
            chain_ok: false,
            error: Some(e.to_string()),
            entries: Vec::new(),
        },
    };
    let mut out = Collected::default();
    let mut items = Vec::new();
    let mut profiles = Vec::new();
    for item_dir in case_items(dir)? {
        let name = item_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        progress(&format!("{name}: verifying"));
        let v = verify_item(&item_dir, None, opts.threads.max(1), None);
        let manifest = Manifest::read(&item_dir.join(MANIFEST_FILE)).ok();
        items.push(summarize_item(&name, manifest.as_ref(), &v));
        let Some(m) = manifest else {
            out.problem(format!("{name}: manifest unreadable; not analysed"));
            continue;
        };
        if v.verdict == Verdict::Failed {
            out.problem(format!("{name}: does not verify; not analysed"));
            continue;
        }
        match item_kind(&m) {
            "disk" => profiles.extend(analyze_disk(&item_dir, &name, &triage, &mut out, progress)),
            "network capture" => analyze_capture(&item_dir, &m, &name, &mut out),
            other => out.problem(format!(
                "{name}: {other} items are not part of `analyze` yet (use `vestige analyze pslist|sockstat`)"
            )),
        }
    }
    crate::timeline::sort(&mut out.events);
    sort_findings(&mut out.findings);
    let report = Report {
        case_id: info.case_id.clone(),
        examiner: info.examiner.clone(),
        agency: info.agency.clone(),
        notes: info.notes.clone(),
        generated_utc: vestige_evidence::custody::now_utc_rfc3339(),
        tool: tool_line(),
        items,
        custody,
        findings: out.findings,
        profiles,
        timeline: select_timeline(&out.events),
        timeline_total: out.events.len(),
        problems: out.problems,
    };
    Ok(Analysis {
        report,
        events: out.events,
    })
}

/// Most severe first, then by time, rule and evidence.
pub fn sort_findings(f: &mut [Finding]) {
    f.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| (a.time, &a.rule, &a.evidence).cmp(&(b.time, &b.rule, &b.evidence)))
    });
}

/// `vestige 0.1.0 (binary SHA-256 …)`.
fn tool_line() -> String {
    let sha = vestige_evidence::fsutil::sha256_file(Path::new("/proc/self/exe"))
        .map_or_else(|_| "unknown".to_string(), |(h, _)| h);
    format!(
        "vestige {} (binary SHA-256 {sha})",
        env!("CARGO_PKG_VERSION")
    )
}
