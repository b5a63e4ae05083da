//! One working session of the appliance: the evidence medium, the case, acquisitions.
//!
//! Init runs the `vestige` binary for every evidence action, exactly as an examiner would
//! on a workstation, so the appliance produces the same evidence format and custody log.

use crate::blocks::{self, Disk, Protection};
use crate::console::Console;
use crate::uevent::Devices;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the evidence medium is mounted.
pub const EVIDENCE_MOUNT: &str = "/mnt/evidence";
/// The vestige binary in the initramfs.
pub const VESTIGE: &str = "/bin/vestige";
/// Per-case secret keys live in RAM only: they die with the power-off and never reach the
/// evidence medium; the fingerprint on the console goes on the custody form.
pub const KEY_DIR: &str = "/run/vestige/keys";

/// The mounted evidence medium.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The partition, e.g. "vdb1".
    pub partition: String,
    /// Its disk, e.g. "vdb" (never offered as a target).
    pub disk: String,
    /// The file system it was mounted as.
    pub fstype: &'static str,
}

/// Finds the evidence partition, makes it (and only it, with its disk) writable, mounts it.
pub fn open_evidence(console: &Console, devices: &Devices) -> Result<Evidence, String> {
    let partition = blocks::find_evidence().ok_or_else(|| {
        format!(
            "no evidence medium: attach a disk with a GPT partition named {} (or a file system labelled {})",
            blocks::EVIDENCE_PARTNAME,
            blocks::EVIDENCE_LABEL
        )
    })?;
    let disk = if blocks::is_partition(&partition) {
        blocks::parent_disk(&partition).unwrap_or_else(|| partition.clone())
    } else {
        partition.clone()
    };
    for dev in [&disk, &partition] {
        blocks::make_writable(dev)?;
        devices.set(
            dev,
            Protection::Unprotected("the evidence medium (writable on purpose)".to_string()),
        );
    }
    let fstype = crate::system::mount_evidence(&partition, EVIDENCE_MOUNT)?;
    console.log(&format!(
        "evidence medium /dev/{partition} ({fstype}) mounted at {EVIDENCE_MOUNT}"
    ));
    Ok(Evidence {
        partition,
        disk,
        fstype,
    })
}

/// Free bytes on the evidence medium.
pub fn free_bytes() -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(EVIDENCE_MOUNT).ok()?;
    Some(s.blocks_available().saturating_mul(s.fragment_size()))
}

/// The disks that may be acquired: every whole disk but the evidence disk.
pub fn targets(evidence: Option<&Evidence>) -> Vec<Disk> {
    blocks::whole_disks()
        .into_iter()
        .filter(|d| evidence.is_none_or(|e| e.disk != d.name))
        .collect()
}

/// Runs `vestige ARGS…`, passing its output to the console line by line. Returns its exit
/// code (None when it could not run or was killed).
pub fn vestige(console: &Console, args: &[&str]) -> Option<i32> {
    console.log(&format!("running: vestige {}", args.join(" ")));
    let child = Command::new(VESTIGE)
        .args(args)
        .env("VESTIGE_KEY_DIR", KEY_DIR)
        .env("HOME", "/run")
        .env("PATH", "/bin")
        .env("VESTIGE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            console.warn(&format!("cannot run {VESTIGE}: {e}"));
            return None;
        }
    };
    let pumps: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|r| {
        let c = console.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                c.child(&line);
            }
        })
    })
    .collect();
    let status = child.wait();
    for p in pumps {
        let _ = p.join();
    }
    crate::system::reap_orphans();
    status.ok().and_then(|s| s.code())
}

/// The case directory for `case_id` on the evidence medium, created with `vestige case init`
/// when missing.
pub fn open_case(console: &Console, case_id: &str, examiner: &str) -> Result<PathBuf, String> {
    if case_id.is_empty()
        || case_id.contains('/')
        || case_id.starts_with('.')
        || case_id.chars().any(char::is_control)
    {
        return Err(format!("case id {case_id:?} cannot be a directory name"));
    }
    let dir = Path::new(EVIDENCE_MOUNT).join(case_id);
    if dir.join("case.json").exists() {
        console.log(&format!("using existing case {}", dir.display()));
        return Ok(dir);
    }
    let d = dir.to_string_lossy().into_owned();
    match vestige(
        console,
        &[
            "case",
            "init",
            &d,
            "--case-id",
            case_id,
            "--examiner",
            examiner,
        ],
    ) {
        Some(0) => Ok(dir),
        code => Err(format!("vestige case init failed (exit {code:?})")),
    }
}

/// Refuses when the evidence medium cannot hold the worst case: incompressible data, plus
/// zstd's frame overhead and the manifests.
pub fn check_space(disks: &[Disk], opts: &AcquireOptions) -> Result<(), String> {
    let mut need: u64 = disks.iter().map(|d| d.size_bytes).sum();
    // An E01 beside the container stores every byte a second time.
    if opts.e01 {
        need = need.saturating_mul(2);
    }
    let worst = need + need / 1000 + (16 << 20);
    match free_bytes() {
        Some(free) if free < worst => Err(format!(
            "evidence medium too small: {free} bytes free, up to {worst} needed for {} disk(s); nothing acquired",
            disks.len()
        )),
        _ => Ok(()),
    }
}

/// How init runs its acquisitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcquireOptions {
    /// Resume an interrupted acquisition of a disk (`vestige.resume`; always in the menu).
    pub resume: bool,
    /// `vestige.sync_every=MIB`: the durability interval (default: the CLI's).
    pub sync_every_mib: Option<u64>,
    /// `vestige.space_check=0` starts even when the medium cannot hold the worst case.
    pub skip_space_check: bool,
    /// `vestige.format=e01`: each item also holds an E01 segment set (`--format e01`).
    pub e01: bool,
}

/// The resume journal's name in an item (the CLI's `resume::JOURNAL_FILE`).
const RESUME_JOURNAL: &str = "resume.journal";

/// The item in `case` holding an interrupted acquisition of `disk` (named after the device,
/// or `DISK-N`), if there is one.
pub fn interrupted_item(case: &Path, disk: &str) -> Option<String> {
    let numbered = format!("{disk}-");
    let mut found: Vec<String> = std::fs::read_dir(case)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            (n == disk
                || n.strip_prefix(&numbered)
                    .is_some_and(|r| r.parse::<u32>().is_ok()))
                && case.join(n).join(RESUME_JOURNAL).is_file()
        })
        .collect();
    found.sort();
    found.pop()
}

/// A free item name for `disk`: the device name, else `DISK-2`, `DISK-3`, …
fn new_item_name(case: &Path, disk: &str) -> String {
    if !case.join(disk).exists() {
        return disk.to_string();
    }
    (2u32..)
        .map(|n| format!("{disk}-{n}"))
        .find(|n| !case.join(n).exists())
        .unwrap_or_else(|| disk.to_string())
}

/// The disks whose acquisition starts from byte 0 (not resumed): what the free-space
/// check before the run must cover.
pub fn fresh_disks(case: &Path, disks: &[Disk], opts: &AcquireOptions) -> Vec<Disk> {
    disks
        .iter()
        .filter(|d| !opts.resume || interrupted_item(case, &d.name).is_none())
        .cloned()
        .collect()
}

/// Acquires `disks` into the case, one item per disk named after the device. A disk that is
/// not write-protected is skipped unless it is in `confirmed_read_only` (the examiner stated
/// that the hypervisor attaches it read-only); that statement and the failed write-block are
/// written into the item's manifest notes. With `opts.resume`, a disk whose earlier
/// acquisition was interrupted is resumed in its item; when the CLI refuses (another disk,
/// damaged journal) it is acquired afresh into a new item.
pub fn acquire(
    console: &Console,
    devices: &Devices,
    case: &Path,
    disks: &[Disk],
    confirmed_read_only: &[String],
    opts: &AcquireOptions,
) -> Outcomes {
    let mut out = Outcomes::default();
    if !opts.skip_space_check {
        if let Err(e) = check_space(&fresh_disks(case, disks, opts), opts) {
            console.warn(&e);
            out.failed = disks.iter().map(|d| d.name.clone()).collect();
            return out;
        }
    }
    for d in disks {
        let mut notes = None;
        if let Some(Protection::Unprotected(why)) = devices.get(&d.name) {
            if !confirmed_read_only.contains(&d.name) {
                console.warn(&format!(
                    "{}: skipped, not write-protected ({why}); acquire it only if the hypervisor attaches it read-only",
                    d.name
                ));
                out.failed.push(d.name.clone());
                continue;
            }
            let note = format!(
                "the appliance could not write-protect /dev/{} ({why}); acquired because the examiner confirmed the hypervisor attaches it read-only",
                d.name
            );
            console.warn(&format!("{}: {note}", d.name));
            notes = Some(note);
        }
        let interrupted = interrupted_item(case, &d.name);
        let mut code = None;
        let mut item = String::new();
        if let Some(old) = interrupted {
            if opts.resume {
                console.log(&format!(
                    "{}: resuming the interrupted acquisition in {old}",
                    d.name
                ));
                code = run_acquire(console, case, d, &old, notes.as_deref(), opts, true);
                if matches!(code, Some(0 | 3)) {
                    item = old;
                } else {
                    console.warn(&format!(
                        "{}: {old} cannot be resumed (exit {code:?}); acquiring it afresh",
                        d.name
                    ));
                    code = None;
                }
            } else {
                console.warn(&format!(
                    "{}: an interrupted acquisition is in {old}; boot with vestige.resume (or use the menu) to resume it. Acquiring afresh.",
                    d.name
                ));
            }
        }
        if item.is_empty() {
            item = new_item_name(case, &d.name);
            code = run_acquire(console, case, d, &item, notes.as_deref(), opts, false);
        }
        match code {
            Some(0) => out.acquired.push(item),
            // An item was made, signed and verifiable, but it is not a complete copy:
            // unreadable sectors (zero-filled, in errors.map) or an early stop.
            Some(3) => {
                console.warn(&format!(
                    "{}: INCOMPLETE acquisition: see {item}/manifest.json (incomplete_reason) and {item}/errors.map",
                    d.name
                ));
                out.incomplete.push(item);
            }
            code => {
                console.warn(&format!(
                    "{}: acquisition ended with exit code {code:?}",
                    d.name
                ));
                out.failed.push(item);
            }
        }
    }
    out
}

/// `vestige acquire disk /dev/DISK --case CASE --item ITEM [--resume] …`.
fn run_acquire(
    console: &Console,
    case: &Path,
    d: &Disk,
    item: &str,
    notes: Option<&str>,
    opts: &AcquireOptions,
    resume: bool,
) -> Option<i32> {
    let case_s = case.to_string_lossy().into_owned();
    let source = format!("/dev/{}", d.name);
    let mut args: Vec<String> = [
        "acquire", "disk", &source, "--case", &case_s, "--item", item,
    ]
    .map(str::to_string)
    .to_vec();
    if let Some(n) = notes {
        args.extend(["--notes".to_string(), n.to_string()]);
    }
    if resume {
        args.push("--resume".to_string());
    }
    if let Some(mib) = opts.sync_every_mib {
        args.extend(["--sync-every-mib".to_string(), mib.to_string()]);
    }
    if opts.skip_space_check {
        args.push("--skip-space-check".to_string());
    }
    if opts.e01 {
        args.extend(["--format".to_string(), "e01".to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    vestige(console, &args)
}

/// Item names by how their acquisition ended.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Complete copies.
    pub acquired: Vec<String>,
    /// Items that exist but are not complete copies (exit 3).
    pub incomplete: Vec<String>,
    /// Disks skipped or acquisitions that made no item.
    pub failed: Vec<String>,
}

impl Outcomes {
    /// The one-line summary init prints (tests and the benchmark look for it).
    pub fn summary(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(" ")
            }
        };
        format!(
            "acquired: {}; incomplete: {}; failed: {}",
            list(&self.acquired),
            list(&self.incomplete),
            list(&self.failed)
        )
    }
}

/// Writes the console transcript into the case (console.log, replaced each time).
pub fn save_console(console: &Console, case: &Path) {
    let path = case.join("console.log");
    if let Err(e) = std::fs::write(&path, console.transcript()) {
        console.warn(&format!("cannot write {}: {e}", path.display()));
    }
}

/// Human-readable size.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units.get(u).copied().unwrap_or("B"))
}
