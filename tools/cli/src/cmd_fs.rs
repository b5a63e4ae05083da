//! `vestige ls`, `bodyfile`, `cat` and `extract`: the file systems of any image, read
//! straight from the evidence (never mounted), deleted entries included.
//!
//! Names come from the evidence: they are printed escaped (`walk::escape_name`), never
//! used as paths except through `SafeOutDir`, which cannot be led out of `--out` or
//! through a symlink.

use crate::exit::Exit;
use anyhow::{bail, Context, Result};
use clap::Args;
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use vestige_evidence::outdir::SafeOutDir;
use vestige_fs::locate::{open_fs_with, volumes, OpenOptions, Volume};
use vestige_fs::walk::{self, escape_name, Found};
use vestige_fs::{FileKind, FileSystem, Inode, ReadAt};

/// The image and which of its volumes.
#[derive(Debug, Args)]
pub struct Target {
    /// The image (any format Vestige reads: raw, E01, qcow2, VMDK, VHD(X), VDI, an item).
    pub image: PathBuf,
    /// The volume: its row in `vestige volumes` (`002`), `VG/LV`, or `disk`. Needed
    /// when the image holds more than one file system.
    #[arg(long)]
    pub volume: Option<String>,
    /// Read ext3/4 blocks as stored: do not replay a journal that needs recovery (what
    /// TSK shows). By default it is replayed in memory, as the kernel would; the image
    /// is never written either way.
    #[arg(long)]
    pub as_stored: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub target: Target,
    /// The directory (default: the root), a path or an inode number.
    pub path: Option<String>,
    /// Recurse into subdirectories.
    #[arg(short, long)]
    pub recursive: bool,
    /// Only deleted entries.
    #[arg(long)]
    pub deleted: bool,
}

#[derive(Debug, Args)]
pub struct BodyfileArgs {
    /// The image.
    pub image: PathBuf,
    /// Only this volume (default: every volume with a file system).
    #[arg(long)]
    pub volume: Option<String>,
    /// Read ext3/4 blocks as stored: do not replay a journal that needs recovery.
    #[arg(long)]
    pub as_stored: bool,
}

#[derive(Debug, Args)]
pub struct FsstatArgs {
    /// The image.
    pub image: PathBuf,
    /// Only this volume (default: every volume with a file system).
    #[arg(long)]
    pub volume: Option<String>,
    /// Read ext3/4 blocks as stored: do not replay a journal that needs recovery.
    #[arg(long)]
    pub as_stored: bool,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    #[command(flatten)]
    pub target: Target,
    /// The file: a path or an inode number.
    pub file: String,
    /// A named stream (NTFS alternate data stream).
    #[arg(long)]
    pub stream: Option<String>,
    /// Write to this new file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    pub target: Target,
    /// Files or directories (paths from the root, or inode numbers).
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// The output directory (created if missing; nothing in it is overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// Opens the image and calls `f` with each chosen volume's file system.
fn with_file_systems(
    image: &Path,
    volume: Option<&str>,
    as_stored: bool,
    all: bool,
    mut f: impl FnMut(&Volume<'_>, &dyn FileSystem, usize) -> Result<()>,
) -> Result<()> {
    let options = OpenOptions {
        replay_journal: !as_stored,
    };
    let disk = vestige_formats::open(image)?;
    let (_, vols) = volumes(&*disk, image)?;
    let mut chosen = Vec::new();
    let mut refused = Vec::new();
    for v in &vols {
        if volume.is_some_and(|want| want != v.id) {
            continue;
        }
        let name = format!("{} {}", image.display(), v.description);
        match open_fs_with(&*v.reader, &name, options) {
            Ok(fs) => chosen.push((v, fs)),
            Err(e) => refused.push(format!("{}: {e}", v.id)),
        }
    }
    if chosen.is_empty() {
        match volume {
            Some(want) if !vols.iter().any(|v| v.id == want) => bail!(
                "{}: no volume {want:?}; volumes: {}",
                image.display(),
                vols.iter()
                    .map(|v| v.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => bail!(
                "{}: no file system found ({})",
                image.display(),
                refused.join("; ")
            ),
        }
    }
    if chosen.len() > 1 && !all {
        bail!(
            "{}: {} file systems; choose one with --volume ({})",
            image.display(),
            chosen.len(),
            chosen
                .iter()
                .map(|(v, fs)| format!("{} = {}", v.id, fs.info().kind))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let n = chosen.len();
    for (v, fs) in &chosen {
        f(v, &**fs, n)?;
    }
    Ok(())
}

/// A path from the root, or an inode number.
fn resolve(fs: &dyn FileSystem, what: &str) -> Result<Inode> {
    if let Ok(n) = what.parse::<Inode>() {
        return Ok(n);
    }
    Ok(walk::lookup(fs, what.as_bytes())?)
}

/// One line as `fls` prints it: `r/r * 12:\tname` (the `*` for deleted entries).
fn fls_line(f: &Found) -> String {
    let m = f.metadata.as_ref().ok();
    let mode = walk::mode_string(f.entry.kind, m);
    let types = mode.get(..3).unwrap_or("-/-");
    let deleted = f.entry.deleted;
    let address = m.map_or_else(|| f.entry.inode.to_string(), |m| m.address.clone());
    format!(
        "{types} {}{address}:\t{}",
        if deleted { "* " } else { "" },
        escape_name(f.path.strip_prefix(b"/").unwrap_or(&f.path))
    )
}

pub fn ls(a: &LsArgs) -> Result<Exit> {
    with_file_systems(
        &a.target.image,
        a.target.volume.as_deref(),
        a.target.as_stored,
        false,
        |_, fs, _| {
            let dir = resolve(fs, a.path.as_deref().unwrap_or("/"))?;
            let mut out = std::io::stdout().lock();
            let show = |f: &Found, out: &mut std::io::StdoutLock<'_>| -> Result<()> {
                if !a.deleted || f.entry.deleted {
                    writeln!(out, "{}", fls_line(f))?;
                }
                Ok(())
            };
            if a.recursive {
                let mut result = Ok(());
                let problems = walk::walk_from(fs, dir, false, |f| {
                    if result.is_ok() {
                        result = show(f, &mut out);
                    }
                });
                result?;
                for p in problems {
                    eprintln!("problem: {}: {}", escape_name(&p.path), p.what);
                }
            } else {
                for entry in fs.read_dir(dir)? {
                    let mut path = b"/".to_vec();
                    path.extend_from_slice(&entry.name);
                    show(&Found::read(fs, path, entry), &mut out)?;
                }
            }
            Ok(())
        },
    )?;
    Ok(Exit::Ok)
}

pub fn bodyfile(a: &BodyfileArgs) -> Result<Exit> {
    let mut problems = 0usize;
    with_file_systems(
        &a.image,
        a.volume.as_deref(),
        a.as_stored,
        true,
        |v, fs, n| {
            // One file system: `/` as fls -m / writes it; several: each under its volume.
            let prefix = if n == 1 {
                "/".to_string()
            } else {
                format!("/{}/", v.id)
            };
            let mut out = std::io::stdout().lock();
            let mut result = Ok(());
            let found = walk::walk(fs, |f| {
                if result.is_ok() {
                    result = out.write_all(walk::bodyfile_lines(&prefix, f).as_bytes());
                }
            });
            result?;
            for p in found {
                problems += 1;
                eprintln!("problem: {} {}: {}", v.id, escape_name(&p.path), p.what);
            }
            Ok(())
        },
    )?;
    Ok(if problems == 0 {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

/// Copies `reader` to `out`, returning its size and SHA-256.
fn copy_hashed(reader: &dyn ReadAt, out: &mut dyn Write) -> Result<(u64, String)> {
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    loop {
        let n = reader.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        h.update(chunk);
        out.write_all(chunk)?;
        at += n as u64;
    }
    Ok((at, hex::encode(h.finalize())))
}

pub fn cat(a: &CatArgs) -> Result<Exit> {
    with_file_systems(
        &a.target.image,
        a.target.volume.as_deref(),
        a.target.as_stored,
        false,
        |_, fs, _| {
            let inode = resolve(fs, &a.file)?;
            let reader = fs.open(inode, a.stream.as_deref())?;
            let (bytes, sha256) = match &a.out {
                Some(path) => {
                    let mut f = std::fs::File::create_new(path).with_context(|| {
                        format!("creating {} (it must not exist)", path.display())
                    })?;
                    let r = copy_hashed(&*reader, &mut f)?;
                    f.sync_all()?;
                    r
                }
                None => copy_hashed(&*reader, &mut std::io::stdout().lock())?,
            };
            eprintln!(
                "{}",
                serde_json::json!({"inode": inode, "bytes": bytes, "sha256": sha256})
            );
            Ok(())
        },
    )?;
    Ok(Exit::Ok)
}

pub fn extract(a: &ExtractArgs) -> Result<Exit> {
    let out = SafeOutDir::open_or_create(&a.out)?;
    let mut records = Vec::new();
    let mut problems = Vec::new();
    with_file_systems(
        &a.target.image,
        a.target.volume.as_deref(),
        a.target.as_stored,
        false,
        |_, fs, _| {
            for want in &a.paths {
                let inode = resolve(fs, want)?;
                let base: Vec<u8> = if want.parse::<Inode>().is_ok() {
                    format!("inode-{inode}").into_bytes()
                } else {
                    want.trim_matches('/').as_bytes().to_vec()
                };
                let meta = fs.metadata(inode)?;
                if meta.kind == FileKind::Directory {
                    walk::walk_from(fs, inode, true, |f| {
                        let mut path = base.clone();
                        path.extend_from_slice(&f.path);
                        extract_one(fs, &out, &path, f, &mut records, &mut problems);
                    });
                } else {
                    let f = Found {
                        path: base.clone(),
                        entry: vestige_fs::DirEntry {
                            name: base.clone(),
                            inode,
                            kind: meta.kind,
                            deleted: !meta.allocated,
                        },
                        metadata: Ok(meta),
                        link: None,
                    };
                    extract_one(fs, &out, &base, &f, &mut records, &mut problems);
                }
            }
            Ok(())
        },
    )?;
    let sidecar = out.create_file(&["extracted.json"])?;
    serde_json::to_writer_pretty(sidecar.file, &records)?;
    for p in &problems {
        eprintln!("problem: {p}");
    }
    println!(
        "{}",
        serde_json::json!({"out": a.out.display().to_string(), "files": records.len(), "problems": problems.len(), "sidecar": "extracted.json"})
    );
    Ok(if problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

/// Writes one regular file under `out` (each path component made safe) and records it.
fn extract_one(
    fs: &dyn FileSystem,
    out: &SafeOutDir,
    path: &[u8],
    f: &Found,
    records: &mut Vec<serde_json::Value>,
    problems: &mut Vec<String>,
) {
    let Ok(meta) = &f.metadata else {
        return;
    };
    if meta.kind != FileKind::Regular {
        return;
    }
    let shown = path.strip_prefix(b"/").unwrap_or(path);
    let components: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let result = (|| -> Result<(String, u64, String)> {
        let reader = fs.open(f.entry.inode, None)?;
        let mut created = out.create_file(&components)?;
        let (bytes, sha) = copy_hashed(&*reader, &mut created.file)?;
        created.file.sync_all()?;
        Ok((created.relative_path, bytes, sha))
    })();
    match result {
        Ok((relative_path, bytes, sha256)) => records.push(serde_json::json!({
            "path": escape_name(shown),
            "path_hex": hex::encode(shown),
            "extracted_as": relative_path,
            "inode": f.entry.inode,
            "address": meta.address,
            "deleted": f.entry.deleted || !meta.allocated,
            "bytes": bytes,
            "sha256": sha256,
            "metadata": meta,
        })),
        Err(e) => problems.push(format!("{}: {e:#}", escape_name(shown))),
    }
}

#[derive(Debug, Args)]
pub struct UsnArgs {
    #[command(flatten)]
    pub target: Target,
    /// One JSON object per record (the timeline's rows) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `vestige usnjrnl IMG`: the NTFS change journal ($Extend/$UsnJrnl:$J) of every NTFS
/// volume (or `--volume`), one line per record in stream order.
pub fn usnjrnl(a: &UsnArgs) -> Result<Exit> {
    let disk = vestige_formats::open(&a.target.image)?;
    let (_, vols) = volumes(&*disk, &a.target.image)?;
    let mut out = std::io::stdout().lock();
    let mut seen = 0usize;
    let mut problems = 0usize;
    for v in &vols {
        if a.target.volume.as_deref().is_some_and(|want| want != v.id)
            || !vestige_fs::ntfs::probe(&*v.reader)
        {
            continue;
        }
        let name = format!("{}:{}", a.target.image.display(), v.id);
        let ntfs = vestige_fs::ntfs::Ntfs::open(&*v.reader, &name)?;
        seen += 1;
        let Some((summary, got)) = vestige_analyze::usn::collect(&ntfs, &name) else {
            eprintln!("{name}: no change journal ($Extend/$UsnJrnl absent)");
            continue;
        };
        for e in &got.events {
            if a.json {
                serde_json::to_writer(&mut out, &vestige_analyze::timeline::row(e))?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{}  usn {:>12}  {:<24} {}",
                    vestige_analyze::event::utc_text(e.time),
                    e.evidence.record.map_or("-".to_string(), |r| r.to_string()),
                    e.fields.get("file_ref").map_or("", String::as_str),
                    e.description
                )?;
            }
        }
        for p in &got.problems {
            eprintln!("problem: {p}");
        }
        problems += got.problems.len();
        eprintln!(
            "{name}: {} records ($J {} bytes, {} sparse, {} skipped as damaged)",
            summary.records, summary.stream_bytes, summary.sparse_bytes, summary.skipped_bytes
        );
    }
    if seen == 0 {
        bail!("{}: no NTFS volume", a.target.image.display());
    }
    Ok(if problems == 0 {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

/// `vestige fsstat`: what each file system is (kind, label, id, block size, size) and
/// what the examiner should know about it (features, times, a journal replayed or not,
/// inconsistencies), like TSK's fsstat header.
pub fn fsstat(a: &FsstatArgs) -> Result<Exit> {
    let mut all = Vec::new();
    with_file_systems(
        &a.image,
        a.volume.as_deref(),
        a.as_stored,
        true,
        |v, fs, _| {
            all.push((v.id.clone(), v.description.clone(), fs.info()));
            Ok(())
        },
    )?;
    if a.json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|(id, desc, info)| {
                serde_json::json!({"volume": id, "description": desc, "file_system": info})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Exit::Ok);
    }
    let safe = |s: &str| vestige_evidence::text::display_safe(s.as_bytes());
    for (id, desc, info) in &all {
        println!("volume {id}: {}", safe(desc));
        println!("  file system: {}", info.kind);
        if let Some(l) = &info.label {
            println!("  label: {}", safe(l));
        }
        if let Some(i) = &info.id {
            println!("  id: {}", safe(i));
        }
        println!("  block size: {} bytes", info.block_size);
        println!("  size: {} bytes", info.size_bytes);
        for n in &info.notes {
            println!("  note: {}", safe(n));
        }
    }
    Ok(Exit::Ok)
}

#[derive(Debug, Args)]
pub struct JournalArgs {
    #[command(flatten)]
    pub target: Target,
    /// JSON (the listing with every entry) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `vestige journal IMG`: the ext3/4 journal of every ext3/4 volume (or `--volume`), block
/// by block: the live log a replay reads and older transactions still in the log, each
/// data block with the file-system block it is a copy of and what that block holds.
pub fn journal(a: &JournalArgs) -> Result<Exit> {
    let disk = vestige_formats::open(&a.target.image)?;
    let (_, vols) = volumes(&*disk, &a.target.image)?;
    let mut out = std::io::stdout().lock();
    let mut seen = 0usize;
    for v in &vols {
        if a.target.volume.as_deref().is_some_and(|want| want != v.id)
            || !vestige_fs::ext4::probe(&*v.reader)
        {
            continue;
        }
        let name = format!("{}:{}", a.target.image.display(), v.id);
        let fs = vestige_fs::ext4::Ext4::open_with(&*v.reader, &name, !a.target.as_stored)?;
        seen += 1;
        let listing = match fs.journal_listing() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{name}: no journal read: {e}");
                continue;
            }
        };
        if a.json {
            let entries: Vec<serde_json::Value> = listing
                .entries
                .iter()
                .map(|e| {
                    let mut j = serde_json::to_value(e).unwrap_or_default();
                    if let (Some(b), Some(o)) = (e.fs_block, j.as_object_mut()) {
                        if let Some(role) = fs.block_role(b) {
                            o.insert("fs_block_role".into(), role.into());
                        }
                    }
                    j
                })
                .collect();
            let mut doc = serde_json::to_value(&listing)?;
            if let Some(o) = doc.as_object_mut() {
                o.insert("volume".into(), v.id.clone().into());
                o.insert("entries".into(), entries.into());
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            continue;
        }
        writeln!(
            out,
            "{name}: journal of {} blocks from block {}, s_start {}{}, sequence {}, features: {}",
            listing.log_blocks,
            listing.first,
            listing.start,
            if listing.start == 0 { " (clean)" } else { "" },
            listing.sequence,
            listing.features.join(" ")
        )?;
        writeln!(out, "live log: {}", listing.live_end)?;
        writeln!(out, "{:>8}  {:>10}  {:<4}  what", "log blk", "tx", "live")?;
        for e in &listing.entries {
            let what = match e.kind {
                "data" => {
                    let b = e.fs_block.unwrap_or_default();
                    match fs.block_role(b) {
                        Some(role) => format!("copy of fs block {b} ({role})"),
                        None => format!("copy of fs block {b}"),
                    }
                }
                "commit" => match (e.commit_time, e.commit_raw) {
                    (Some((secs, nanos)), _) => format!(
                        "commit at {}",
                        vestige_analyze::event::utc_text(vestige_fs::Timestamp { secs, nanos })
                    ),
                    (None, Some(raw)) => format!("commit (time field {raw:#018x} is not a time)"),
                    (None, None) => "commit".to_string(),
                },
                "revoke" => format!(
                    "revoke of fs blocks {}",
                    e.revoked
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                other => other.to_string(),
            };
            let bad = if e.checksum_ok == Some(false) {
                " [bad checksum]"
            } else {
                ""
            };
            writeln!(
                out,
                "{:>8}  {:>10}  {:<4}  {what}{bad}",
                e.log_block,
                e.sequence,
                if e.live { "yes" } else { "old" }
            )?;
        }
    }
    if seen == 0 {
        bail!("{}: no ext3/4 file system", a.target.image.display());
    }
    Ok(Exit::Ok)
}
