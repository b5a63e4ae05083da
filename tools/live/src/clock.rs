//! The system's sense of time: wall clock, uptime, boot time and the hardware clock.
//!
//! Collected first because every other timestamp in the snapshot (process start times,
//! logins) is read against it, and because a wrong system clock (or one an attacker set
//! back) shows up as an offset between the RTC and the system time.

use crate::table::{dec, ParseError, MAX_LINES};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Clock readings taken at the start of collection.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Clock {
    /// System (CLOCK_REALTIME) time, RFC 3339 UTC.
    pub system_utc: String,
    /// Seconds since boot (first field of /proc/uptime; excludes suspend on most kernels).
    pub uptime_seconds: Option<f64>,
    /// Boot time, Unix seconds (`btime` in /proc/stat).
    pub boot_unix_seconds: Option<i64>,
    /// Boot time, RFC 3339 UTC.
    pub boot_utc: Option<String>,
    /// The RTC's reading as sysfs gives it (`/sys/class/rtc/rtc0/{date,time}`,
    /// `YYYY-MM-DD HH:MM:SS`). Linux keeps the RTC in UTC unless configured for local time
    /// (dual boot with Windows), so the examiner must judge [`Clock::rtc_minus_system_seconds`].
    pub rtc_raw: Option<String>,
    /// The RTC reading taken as UTC, RFC 3339.
    pub rtc_utc: Option<String>,
    /// RTC minus system time, seconds (positive: RTC ahead). Read within a second of each
    /// other; an RTC has a one-second resolution.
    pub rtc_minus_system_seconds: Option<i64>,
}

/// Parses /proc/uptime (`uptime idle`, seconds with two decimals): the uptime.
pub fn parse_uptime(text: &str) -> Result<f64, ParseError> {
    let first = text.split_whitespace().next().unwrap_or_default();
    let valid = !first.is_empty()
        && first.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && first.bytes().filter(|&b| b == b'.').count() <= 1;
    let value: Option<f64> = valid.then(|| first.parse().ok()).flatten();
    value
        .filter(|v| v.is_finite())
        .ok_or_else(|| ParseError::field(1, "uptime", "seconds, e.g. 1234.56", first))
}

/// Finds `btime` (boot time, Unix seconds) in /proc/stat.
pub fn parse_btime(text: &str) -> Result<i64, ParseError> {
    for (index, line) in text.lines().take(MAX_LINES).enumerate() {
        if let Some(value) = line.strip_prefix("btime ") {
            return dec(index.saturating_add(1), "btime", value.trim());
        }
    }
    Err(ParseError::Missing { field: "btime" })
}

/// Parses the RTC's sysfs `date` (`YYYY-MM-DD`) and `time` (`HH:MM:SS`) as UTC.
pub fn parse_rtc(date: &str, time_of_day: &str) -> Result<OffsetDateTime, ParseError> {
    let d = numbers::<3>(date.trim(), '-')
        .ok_or_else(|| ParseError::field(1, "date", "YYYY-MM-DD", date))?;
    let t = numbers::<3>(time_of_day.trim(), ':')
        .ok_or_else(|| ParseError::field(1, "time", "HH:MM:SS", time_of_day))?;
    let [year, month, day] = d;
    let [hour, minute, second] = t;
    let date_value = i32::try_from(year)
        .ok()
        .zip(
            u8::try_from(month)
                .ok()
                .and_then(|m| Month::try_from(m).ok()),
        )
        .zip(u8::try_from(day).ok())
        .and_then(|((y, m), d)| Date::from_calendar_date(y, m, d).ok())
        .ok_or_else(|| ParseError::field(1, "date", "a valid calendar date", date))?;
    let time_value = u8::try_from(hour)
        .ok()
        .zip(u8::try_from(minute).ok())
        .zip(u8::try_from(second).ok())
        .and_then(|((h, m), s)| Time::from_hms(h, m, s).ok())
        .ok_or_else(|| ParseError::field(1, "time", "a valid time of day", time_of_day))?;
    Ok(PrimitiveDateTime::new(date_value, time_value).assume_utc())
}

/// `N` decimal numbers separated by `sep`, each at most 9 digits.
fn numbers<const N: usize>(text: &str, sep: char) -> Option<[u32; N]> {
    let mut out = [0u32; N];
    let mut parts = text.split(sep);
    for slot in &mut out {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// RFC 3339 text of a UTC time (empty only if the year is outside 0..=9999).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn uptime() {
        assert_eq!(parse_uptime("1138.97 8521.30\n"), Ok(1138.97));
        assert!(parse_uptime("").is_err());
        assert!(parse_uptime("inf 0").is_err());
        assert!(parse_uptime("1e400 0").is_err());
        assert!(parse_uptime("-1 0").is_err());
        assert!(parse_uptime("1.2.3").is_err());
    }

    #[test]
    fn btime() {
        let stat = "cpu  1 2 3\nintr 5\nctxt 99\nbtime 1700000000\nprocesses 12\n";
        assert_eq!(parse_btime(stat), Ok(1_700_000_000));
        assert_eq!(
            parse_btime("cpu 1"),
            Err(ParseError::Missing { field: "btime" })
        );
        assert!(matches!(
            parse_btime("btime x"),
            Err(ParseError::Field { line: 1, .. })
        ));
    }

    #[test]
    fn rtc() {
        let t = parse_rtc("2024-02-29\n", "23:59:58\n").unwrap();
        assert_eq!(rfc3339(t), "2024-02-29T23:59:58Z");
        assert!(parse_rtc("2023-02-29", "00:00:00").is_err());
        assert!(parse_rtc("2024-01-01", "24:00:00").is_err());
        assert!(parse_rtc("2024-01", "00:00:00").is_err());
        assert!(parse_rtc("99999999999-01-01", "00:00:00").is_err());
    }
}
