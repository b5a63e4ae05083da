//! Facts about the machine an acquisition runs on: host name, kernel, lockdown, hypervisor
//! hints, and the offset between the system clock and the hardware clock.

use std::time::{SystemTime, UNIX_EPOCH};
use vestige_evidence::manifest::HostInfo;

fn read_trim(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Collects [`HostInfo`] from /proc and /sys; what is missing stays `None`.
pub fn host_info() -> HostInfo {
    let mut hints = Vec::new();
    for (label, path) in [
        ("dmi sys_vendor", "/sys/class/dmi/id/sys_vendor"),
        ("dmi product_name", "/sys/class/dmi/id/product_name"),
        ("hypervisor type", "/sys/hypervisor/type"),
    ] {
        if let Some(v) = read_trim(path) {
            hints.push(format!("{label}: {v}"));
        }
    }
    if std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| {
            c.lines()
                .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
        })
        .unwrap_or(false)
    {
        hints.push("cpu flag: hypervisor".to_string());
    }
    HostInfo {
        hostname: read_trim("/proc/sys/kernel/hostname"),
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        lockdown: read_trim("/sys/kernel/security/lockdown"),
        hypervisor_hints: hints,
    }
}

/// System clock minus the RTC in whole seconds, and where the RTC reading came from.
///
/// The kernel exposes the RTC as seconds since the epoch, read as UTC; an RTC kept in local
/// time (common on Windows hosts) shows up as an offset of whole hours, which the examiner
/// reads from the note.
pub fn clock_offset() -> (Option<i64>, String) {
    let path = "/sys/class/rtc/rtc0/since_epoch";
    let Some(rtc) = read_trim(path).and_then(|s| s.parse::<i64>().ok()) else {
        return (None, format!("no RTC reading: {path} absent or unreadable"));
    };
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return (None, "system clock is before 1970".to_string());
    };
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    (
        Some(now.saturating_sub(rtc)),
        format!("{path} read as UTC, 1-second resolution"),
    )
}
