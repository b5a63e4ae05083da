//! Windows artifacts of one volume: registry hives (our own [`regf`] parser: SYSTEM,
//! SOFTWARE, SAM and each profile's NTUSER.DAT), event logs ([`evtx`]), scheduled tasks,
//! startup folders and prefetch ([`tasks`], [`prefetch`]), and the rules over them
//! ([`rules`]).
//!
//! ```no_run
//! # fn demo(files: &vestige_analyze::files::Files<'_>) {
//! if vestige_analyze::windows::is_windows_root(files) {
//!     let (profile, collected) = vestige_analyze::windows::collect(files);
//!     println!("{:?} {}", profile.computer_name, collected.events.len());
//! }
//! # }
//! ```

pub mod evtx;
pub mod ntuser;
pub mod prefetch;
pub mod regf;
pub mod rules;
pub mod sam;
pub mod software;
pub mod system;
pub mod tasks;
#[cfg(test)]
pub(crate) mod test_hives;
#[cfg(test)]
mod tests;

use crate::collected::Collected;
use crate::event::{utc_text, Event, Evidence, Timestamp};
use crate::files::{FileData, Files};
use crate::text::display_safe;
use regf::{Hive, Key};
use serde::Serialize;

/// Bytes of one hive read at most (SOFTWARE hives reach a few hundred MiB).
pub const HIVE_CAP: usize = 512 * 1024 * 1024;
/// Profiles (Users/*) whose NTUSER.DAT is read at most.
pub const MAX_PROFILES: usize = 256;

/// Where the SYSTEM hive lives; its presence makes a volume a Windows root.
pub const SYSTEM_HIVE: &str = "Windows/System32/config/SYSTEM";
/// The SOFTWARE hive.
pub const SOFTWARE_HIVE: &str = "Windows/System32/config/SOFTWARE";
/// The SAM hive.
pub const SAM_HIVE: &str = "Windows/System32/config/SAM";

/// Facts about a Windows installation, for the report; every string display-safe, times
/// as RFC 3339 UTC text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WindowsProfile {
    /// The hives read and their state.
    pub hives: Vec<HiveState>,
    /// `ComputerName` of the current control set.
    pub computer_name: Option<String>,
    /// The control set `Select\Current` names (`ControlSet001`).
    pub current_control_set: Option<String>,
    /// `TimeZoneKeyName` (`W. Europe Standard Time`).
    pub time_zone: Option<String>,
    /// `Bias`: minutes to add to local time to get UTC.
    pub time_zone_bias_minutes: Option<i32>,
    /// `Control\Windows\ShutdownTime`.
    pub last_shutdown: Option<String>,
    /// `ProductName` (`Windows 10 Pro`).
    pub product_name: Option<String>,
    /// `CurrentBuild`.
    pub current_build: Option<String>,
    /// `InstallDate`.
    pub install_date: Option<String>,
    /// `RegisteredOwner`.
    pub registered_owner: Option<String>,
    /// Local accounts from the SAM.
    pub users: Vec<sam::SamUser>,
    /// `ProfileList`: SID → profile directory.
    pub profiles: Vec<software::ProfileEntry>,
    /// Services of the current control set.
    pub services: Vec<system::Service>,
    /// USB devices (`Enum\USBSTOR`, `Enum\USB`).
    pub usb_devices: Vec<system::UsbDevice>,
    /// TCP/IP interfaces.
    pub network_interfaces: Vec<system::NetInterface>,
    /// Run / RunOnce entries, machine and per user.
    pub autoruns: Vec<software::Autorun>,
    /// Uninstall entries.
    pub installed_programs: Vec<software::Program>,
    /// Per profile: RecentDocs, TypedPaths, RunMRU.
    pub user_activity: Vec<ntuser::UserActivity>,
    /// Scheduled tasks (Windows/System32/Tasks).
    pub scheduled_tasks: Vec<tasks::Task>,
    /// Files in startup folders.
    pub startup_files: Vec<tasks::StartupFile>,
    /// Prefetch files.
    pub prefetch: Vec<prefetch::Prefetch>,
    /// Event log files read.
    pub event_logs: Vec<evtx::LogState>,
}

/// A hive file's base block state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HiveState {
    /// Its path in the volume.
    pub path: String,
    /// Its inode.
    pub inode: Option<u64>,
    /// Whether the base block checksum matched.
    pub checksum_ok: bool,
    /// Whether the sequence numbers differ (transaction logs not applied).
    pub dirty: bool,
    /// The base block's last-written time.
    pub last_written: Option<String>,
    /// Format version (`1.5`).
    pub version: String,
    /// Whether the file was longer than what was read.
    pub truncated: bool,
}

/// Whether `files` holds a Windows installation at its root (the SYSTEM hive exists).
#[must_use]
pub fn is_windows_root(files: &Files<'_>) -> bool {
    matches!(files.metadata(SYSTEM_HIVE.as_bytes()), Ok(Some(m)) if m.kind == vestige_fs::FileKind::Regular)
}

/// Everything this module reads from a Windows volume: the profile, events for the
/// timeline, findings and problems.
#[must_use]
pub fn collect(files: &Files<'_>) -> (WindowsProfile, Collected) {
    let mut profile = WindowsProfile::default();
    let mut out = Collected::default();
    let mut control_set = None;
    if let Some(f) = read_file(files, SYSTEM_HIVE, HIVE_CAP, &mut out) {
        if let Some(h) = open_hive(&f, &mut profile, &mut out) {
            control_set = system::collect(&h, &f.evidence, &mut profile, &mut out);
        }
    }
    let bias = profile.time_zone_bias_minutes;
    if let Some(f) = read_file(files, SOFTWARE_HIVE, HIVE_CAP, &mut out) {
        if let Some(h) = open_hive(&f, &mut profile, &mut out) {
            software::collect(&h, &f.evidence, &mut profile, &mut out);
        }
    }
    if let Some(f) = read_file(files, SAM_HIVE, HIVE_CAP, &mut out) {
        if let Some(h) = open_hive(&f, &mut profile, &mut out) {
            sam::collect(&h, &f.evidence, &mut profile, &mut out);
        }
    }
    let _ = (control_set, bias);
    ntuser::collect_all(files, &mut profile, &mut out);
    evtx::collect(files, &mut profile, &mut out);
    tasks::collect(files, &mut profile, &mut out);
    prefetch::collect(files, &mut profile, &mut out);
    rules::apply(&profile, &mut out);
    (profile, out)
}

/// Reads `path` (cap `cap`), noting a missing file nowhere, an error or truncation in
/// problems.
pub(crate) fn read_file(
    files: &Files<'_>,
    path: &str,
    cap: usize,
    out: &mut Collected,
) -> Option<FileData> {
    match files.read(path.as_bytes(), cap) {
        Ok(Some(f)) => {
            if f.truncated {
                out.problem(format!(
                    "{}: only the first {cap} bytes read",
                    f.evidence.describe()
                ));
            }
            Some(f)
        }
        Ok(None) => None,
        Err(e) => {
            out.problem(format!("{}: {e}", display_safe(path.as_bytes())));
            None
        }
    }
}

/// Opens the hive in `f`, recording its state in the profile and its faults in problems.
pub(crate) fn open_hive<'a>(
    f: &'a FileData,
    profile: &mut WindowsProfile,
    out: &mut Collected,
) -> Option<Hive<'a>> {
    let h = match Hive::open(&f.bytes) {
        Ok(h) => h,
        Err(e) => {
            out.problem(format!("{}: {e}", f.evidence.describe()));
            return None;
        }
    };
    let b = &h.base;
    if !b.checksum_ok() {
        out.problem(format!(
            "{}: base block checksum {:#010x}, computed {:#010x}",
            f.evidence.at_offset(508).describe(),
            b.checksum_stored,
            b.checksum_computed
        ));
    }
    if b.dirty() {
        out.problem(format!(
            "{}: hive is dirty (sequence numbers {} and {}): changes in its transaction logs (.LOG1/.LOG2) were not applied",
            f.evidence.describe(),
            b.sequence_primary,
            b.sequence_secondary
        ));
    }
    profile.hives.push(HiveState {
        path: f.evidence.path.clone().unwrap_or_default(),
        inode: f.evidence.inode,
        checksum_ok: b.checksum_ok(),
        dirty: b.dirty(),
        last_written: b.last_written.map(utc_text),
        version: format!("{}.{}", b.version_major, b.version_minor),
        truncated: f.truncated,
    });
    Some(h)
}

/// A string from evidence, display-safe.
pub(crate) fn safe(s: &str) -> String {
    display_safe(s.as_bytes())
}

/// The evidence of `key` in the hive file `file`: its cell's file offset.
pub(crate) fn key_evidence(file: &Evidence, key: &Key<'_, '_>) -> Evidence {
    file.at_offset(key.file_offset())
}

/// An event at `key`'s last-written time (none when unset), source "registry", with the
/// key's path in field `key` and the description.
pub(crate) fn key_event(
    file: &Evidence,
    key: &Key<'_, '_>,
    key_path: &str,
    kind: &str,
    what: &str,
) -> Option<Event> {
    let t = key.last_written()?;
    Some(
        Event::new(
            t,
            "registry",
            kind,
            format!("{what} (key {} last written)", safe(key_path)),
            key_evidence(file, key),
        )
        .field("key", safe(key_path))
        .time_note(
            "registry key last-written time: the last change to the key, not necessarily this one",
        ),
    )
}

/// A value of `key` as display-safe text: strings as they are, numbers in decimal.
pub(crate) fn value_text(key: &Key<'_, '_>, name: &str) -> Option<String> {
    let v = key.value(name)?;
    if let Some(s) = v.strings() {
        return Some(safe(&s.join("; ")));
    }
    v.number().map(|n| n.to_string())
}

/// A time as profile text.
pub(crate) fn time_text(t: Option<Timestamp>) -> Option<String> {
    t.map(utc_text)
}
