//! Each profile's NTUSER.DAT: Run/RunOnce, RecentDocs, TypedPaths, RunMRU.

use super::regf::{utf16_string, Hive, Key};
use super::software::{run_key, RUN_KEYS};
use super::{
    open_hive, read_file, safe, time_text, value_text, WindowsProfile, HIVE_CAP, MAX_PROFILES,
};
use crate::collected::Collected;
use crate::event::Evidence;
use crate::files::Files;
use serde::Serialize;

/// MRU entries read per list at most.
pub const MAX_MRU: usize = 1024;

/// What one user's hive says they did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserActivity {
    /// The profile directory name (`Users/<name>`).
    pub profile: String,
    /// `Explorer\RecentDocs`: names, most recent first.
    pub recent_docs: Vec<String>,
    /// `RecentDocs` key last written (the most recent document's time).
    pub recent_docs_last_written: Option<String>,
    /// `Explorer\TypedPaths` (`url1` …), in order.
    pub typed_paths: Vec<String>,
    /// `Explorer\RunMRU`: commands typed in Win+R, most recent first.
    pub run_mru: Vec<String>,
    /// `RunMRU` key last written (the most recent command's time).
    pub run_mru_last_written: Option<String>,
    /// Where: the hive file.
    pub evidence: Evidence,
}

const EXPLORER: &str = "Software\\Microsoft\\Windows\\CurrentVersion\\Explorer";

/// Reads Users/*/NTUSER.DAT.
pub fn collect_all(files: &Files<'_>, profile: &mut WindowsProfile, out: &mut Collected) {
    let entries = match files.list(b"Users") {
        Ok(e) => e,
        Err(e) => {
            out.problem(format!("Users: {e}"));
            return;
        }
    };
    for d in entries.into_iter().take(MAX_PROFILES) {
        let name = String::from_utf8_lossy(&d.name).into_owned();
        let path = format!("Users/{name}/NTUSER.DAT");
        let Some(f) = read_file(files, &path, HIVE_CAP, out) else {
            continue;
        };
        let Some(h) = open_hive(&f, profile, out) else {
            continue;
        };
        collect(&h, &safe(&name), &f.evidence, profile, out);
    }
}

/// Reads one NTUSER.DAT hive of profile `user`.
pub fn collect(
    h: &Hive<'_>,
    user: &str,
    file: &Evidence,
    profile: &mut WindowsProfile,
    out: &mut Collected,
) {
    for p in RUN_KEYS {
        let path = format!("Software\\{p}");
        if let Some(k) = h.key(&path) {
            run_key(&k, &path, "NTUSER.DAT", Some(user), file, profile, out);
        }
    }
    let mut a = UserActivity {
        profile: user.to_string(),
        evidence: file.clone(),
        ..UserActivity::default()
    };
    if let Some(k) = h.key(&format!("{EXPLORER}\\RecentDocs")) {
        a.recent_docs = mru_ex(&k)
            .iter()
            .filter_map(|n| k.value(n))
            .filter_map(|v| v.data().ok())
            .map(|d| safe(&utf16_string(&d)))
            .collect();
        a.recent_docs_last_written = time_text(k.last_written());
    }
    if let Some(k) = h.key(&format!("{EXPLORER}\\TypedPaths")) {
        for i in 1..=MAX_MRU {
            let Some(t) = value_text(&k, &format!("url{i}")) else {
                break;
            };
            a.typed_paths.push(t);
        }
    }
    if let Some(k) = h.key(&format!("{EXPLORER}\\RunMRU")) {
        let order = value_text(&k, "MRUList").unwrap_or_default();
        for c in order.chars().take(MAX_MRU) {
            if let Some(cmd) = k.value(&c.to_string()).and_then(|v| v.string()) {
                // Each entry ends in "\1".
                let cmd = cmd.strip_suffix("\\1").unwrap_or(&cmd).to_string();
                a.run_mru.push(safe(&cmd));
            }
        }
        a.run_mru_last_written = time_text(k.last_written());
        if let (Some(first), Some(e)) = (
            a.run_mru.first(),
            super::key_event(
                file,
                &k,
                &format!("{EXPLORER}\\RunMRU"),
                "run_dialog",
                "Win+R command",
            ),
        ) {
            let e = e
                .field("user", user.to_string())
                .field("command", first.clone());
            out.events.push(crate::event::Event {
                description: format!("{} by {user}: {first}", e.description),
                ..e
            });
        }
    }
    if !(a.recent_docs.is_empty() && a.typed_paths.is_empty() && a.run_mru.is_empty()) {
        profile.user_activity.push(a);
    }
}

/// The value names of an `MRUListEx` (u32 indices, ended by 0xFFFFFFFF), in order.
fn mru_ex(k: &Key<'_, '_>) -> Vec<String> {
    let Some(d) = k.value("MRUListEx").and_then(|v| v.data().ok()) else {
        return Vec::new();
    };
    d.chunks_exact(4)
        .filter_map(|c| <[u8; 4]>::try_from(c).ok())
        .map(u32::from_le_bytes)
        .take_while(|&i| i != u32::MAX)
        .take(MAX_MRU)
        .map(|i| i.to_string())
        .collect()
}
