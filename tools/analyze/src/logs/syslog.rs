//! syslog-format text logs (`/var/log/auth.log`, `secure`, `syslog`, `messages`): the
//! line header (time stamp, host, tag, pid) and the time stamps' conversion to UTC.
//!
//! Two time stamp forms: the legacy BSD one (`Nov 20 03:10:00`, RFC 3164: local time, no
//! year) and RFC 3339 (rsyslog's high-precision `2024-11-20T03:10:00.123456+01:00`,
//! journald's short-iso `2024-11-20T03:10:00+0100`). The legacy year is inferred: the
//! newest line is at or before the file's modification time, and going backwards through
//! the file the year goes down by one each time the month goes up.

use crate::event::Timestamp;
use crate::tz::{civil_from_days, days_from_civil, Zone};

/// One line of a text file: its 1-based number, the byte offset of its start, its bytes
/// without the line end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based.
    pub number: u64,
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// Without `\n` / `\r\n`.
    pub text: &'a [u8],
}

/// The lines of `bytes` (a final line without `\n` included).
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = Line<'_>> {
    let mut offset = 0u64;
    let mut number = 0u64;
    bytes.split_inclusive(|&b| b == b'\n').map(move |raw| {
        number += 1;
        let start = offset;
        offset += raw.len() as u64;
        let text = raw.strip_suffix(b"\n").unwrap_or(raw);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        Line {
            number,
            offset: start,
            text,
        }
    })
}

/// A line's time stamp as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// `Nov 20 03:10:00`: local time without a year; `secs_of_day` 0..86400.
    Legacy {
        /// 1..=12.
        month: u8,
        /// 1..=31.
        day: u8,
        /// Seconds since local midnight.
        secs_of_day: i64,
    },
    /// RFC 3339 with an offset: UTC.
    Utc(Timestamp),
    /// RFC 3339 without an offset: local seconds since the epoch (as if UTC).
    Local(Timestamp),
}

/// A syslog line's header and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// When.
    pub stamp: Stamp,
    /// The host name field.
    pub host: &'a [u8],
    /// The tag without the pid (`sshd`, `sudo`, `CRON`); empty when absent.
    pub program: &'a [u8],
    /// The pid in brackets, if any.
    pub pid: Option<u32>,
    /// The rest of the line.
    pub message: &'a [u8],
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// `hh:mm:ss` at the start of `b`, in seconds.
fn hms(b: &[u8]) -> Option<i64> {
    let (h, m, s) = (
        digits(b.get(0..2)?)?,
        digits(b.get(3..5)?)?,
        digits(b.get(6..8)?)?,
    );
    if b.get(2) != Some(&b':') || b.get(5) != Some(&b':') || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(h * 3600 + m * 60 + s)
}

/// Parses the time stamp at the start of `line`; returns it and the rest after one space.
pub fn parse_stamp(line: &[u8]) -> Option<(Stamp, &[u8])> {
    if let Some(m) = MONTHS.iter().position(|m| line.get(..3) == Some(&m[..])) {
        // `Nov 20 03:10:00` or `Nov  2 03:10:00`.
        if line.get(3) != Some(&b' ') {
            return None;
        }
        let day_field = line.get(4..6)?;
        let day = digits(day_field.trim_ascii_start())?;
        if !(1..=31).contains(&day) || line.get(6) != Some(&b' ') {
            return None;
        }
        let secs_of_day = hms(line.get(7..15)?)?;
        let mut rest = line.get(15..)?;
        // rsyslog's `Nov 20 03:10:00.123` variants are rare; fractions are skipped.
        if rest.first() == Some(&b'.') {
            let n = rest
                .iter()
                .skip(1)
                .take_while(|c| c.is_ascii_digit())
                .count();
            rest = rest.get(1 + n..)?;
        }
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        return Some((
            Stamp::Legacy {
                month: u8::try_from(m + 1).ok()?,
                day: u8::try_from(day).ok()?,
                secs_of_day,
            },
            rest,
        ));
    }
    // RFC 3339: 2024-11-20T03:10:00[.frac][Z|+hh:mm|+hhmm]
    let y = digits(line.get(0..4)?)?;
    let mo = digits(line.get(5..7)?)?;
    let d = digits(line.get(8..10)?)?;
    if line.get(4) != Some(&b'-')
        || line.get(7) != Some(&b'-')
        || !matches!(line.get(10), Some(b'T' | b' '))
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let sod = hms(line.get(11..19)?)?;
    let mut rest = line.get(19..)?;
    let mut nanos = 0u32;
    if let Some(r) = rest.strip_prefix(b".") {
        let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
        let frac = r.get(..n)?;
        for i in 0..9 {
            let digit = frac.get(i).map_or(0, |c| u32::from(c - b'0'));
            nanos = nanos * 10 + digit;
        }
        rest = r.get(n..)?;
    }
    let (mo, d) = (u8::try_from(mo).ok()?, u8::try_from(d).ok()?);
    let day = days_from_civil(y, mo, d);
    // 2024-02-30 does not exist.
    if civil_from_days(day) != (y, mo, d) {
        return None;
    }
    let local = day.checked_mul(86_400)?.checked_add(sod)?;
    let (stamp, rest) = if let Some(r) = rest.strip_prefix(b"Z") {
        (Stamp::Utc(Timestamp { secs: local, nanos }), r)
    } else if let Some(sign) = rest.first().and_then(|c| match c {
        b'+' => Some(1i64),
        b'-' => Some(-1i64),
        _ => None,
    }) {
        let hh = digits(rest.get(1..3)?)?;
        let (mm, used) = if rest.get(3) == Some(&b':') {
            (digits(rest.get(4..6)?)?, 6)
        } else {
            (digits(rest.get(3..5)?)?, 5)
        };
        if hh > 23 || mm > 59 {
            return None;
        }
        let secs = local.checked_sub(sign * (hh * 3600 + mm * 60))?;
        (Stamp::Utc(Timestamp { secs, nanos }), rest.get(used..)?)
    } else {
        (Stamp::Local(Timestamp { secs: local, nanos }), rest)
    };
    let rest = rest.strip_prefix(b" ")?;
    Some((stamp, rest))
}

/// Parses a syslog line: time stamp, host, `tag[pid]:`, message. `None` when the line
/// does not start with a time stamp.
pub fn parse_line(line: &[u8]) -> Option<Header<'_>> {
    let (stamp, rest) = parse_stamp(line)?;
    let host_len = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    let host = rest.get(..host_len)?;
    let rest = rest.get(host_len..)?.strip_prefix(b" ").unwrap_or(&[]);
    // The tag: up to `[` or `:`, no spaces.
    let tag_len = rest
        .iter()
        .position(|&c| c == b'[' || c == b':' || c == b' ')
        .unwrap_or(rest.len());
    let after = rest.get(tag_len..).unwrap_or(&[]);
    let (program, pid, message) = if let Some(r) = after.strip_prefix(b"[") {
        let close = r.iter().position(|&c| c == b']');
        let pid = close
            .and_then(|c| r.get(..c))
            .and_then(digits)
            .and_then(|p| u32::try_from(p).ok());
        match (close, pid) {
            (Some(c), Some(p)) => {
                let m = r.get(c + 1..).unwrap_or(&[]);
                let m = m.strip_prefix(b":").unwrap_or(m);
                (rest.get(..tag_len)?, Some(p), m)
            }
            _ => (&[][..], None, rest),
        }
    } else if let Some(m) = after.strip_prefix(b":") {
        (rest.get(..tag_len)?, None, m)
    } else {
        (&[][..], None, rest)
    };
    let message = message.strip_prefix(b" ").unwrap_or(message);
    Some(Header {
        stamp,
        host,
        program,
        pid,
        message,
    })
}

/// The years of legacy time stamps, newest last: `stamps` are `(month, day,
/// secs_of_day)` in file order, `reference` the file's mtime in local time (seconds since
/// the epoch as if UTC). Returns one year per stamp.
#[must_use]
pub fn infer_years(stamps: &[(u8, u8, i64)], reference_local: i64) -> Vec<i64> {
    let ref_day = reference_local.div_euclid(86_400);
    let (ref_year, ref_month, ref_dom) = civil_from_days(ref_day);
    let ref_key = (ref_month, ref_dom, reference_local.rem_euclid(86_400));
    let mut years = vec![0i64; stamps.len()];
    let mut year = ref_year;
    let mut later_month: Option<u8> = None;
    for (slot, &(m, d, s)) in years.iter_mut().zip(stamps).rev() {
        match later_month {
            None => {
                if (m, d, s) > ref_key {
                    year -= 1;
                }
            }
            Some(lm) if m > lm => year -= 1,
            Some(_) => {}
        }
        later_month = Some(m);
        *slot = year;
    }
    years
}

/// The UTC time of a legacy stamp in `year`, with `zone`; `None` for an invalid date
/// (Feb 30) or overflow.
#[must_use]
pub fn legacy_to_utc(year: i64, month: u8, day: u8, secs_of_day: i64, zone: &Zone) -> Option<i64> {
    let days = days_from_civil(year, month, day);
    // Reject dates that do not exist in that year (Feb 29 of a common year, Apr 31).
    if civil_from_days(days) != (year, month, day) {
        return None;
    }
    zone.to_utc(days.checked_mul(86_400)?.checked_add(secs_of_day)?)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h =
            parse_line(b"Nov 20 03:17:44 web-01 sshd[4100]: Accepted password for root").unwrap();
        assert_eq!(
            h.stamp,
            Stamp::Legacy {
                month: 11,
                day: 20,
                secs_of_day: 3 * 3600 + 17 * 60 + 44
            }
        );
        assert_eq!(h.host, b"web-01");
        assert_eq!(h.program, b"sshd");
        assert_eq!(h.pid, Some(4100));
        assert_eq!(h.message, b"Accepted password for root");
        let h = parse_line(b"Nov  2 03:17:44 web-01 sudo:    alice : TTY=pts/0").unwrap();
        assert_eq!(h.program, b"sudo");
        assert_eq!(h.message, b"   alice : TTY=pts/0");
        let h = parse_line(b"2024-11-20T03:10:00.123456+01:00 h CRON[5]: x").unwrap();
        assert_eq!(
            h.stamp,
            Stamp::Utc(Timestamp {
                secs: 1_732_068_600,
                nanos: 123_456_000
            })
        );
        let h = parse_line(b"2024-11-20T03:10:00+0100 h kernel: x").unwrap();
        assert_eq!(
            h.stamp,
            Stamp::Utc(Timestamp {
                secs: 1_732_068_600,
                nanos: 0
            })
        );
        let h = parse_line(b"2024-11-20T03:10:00Z h x").unwrap();
        assert_eq!(h.program, b"");
        assert_eq!(h.message, b"x");
        assert!(matches!(
            parse_line(b"2024-11-20T03:10:00 h p: x").unwrap().stamp,
            Stamp::Local(_)
        ));
        for bad in [
            &b""[..],
            b"Nov",
            b"Nov 40 03:10:00 h",
            b"2024-13-01T00:00:00Z h",
            b"\xff\xfe",
        ] {
            assert!(parse_line(bad).is_none());
        }
    }

    #[test]
    fn years_walk_back() {
        let local = |y, m, d| days_from_civil(y, m, d) * 86_400;
        // mtime 2025-01-03: Dec lines belong to 2024, Jan lines to 2025.
        let s = [(12, 30, 0), (12, 31, 0), (1, 2, 0), (1, 3, 0)];
        assert_eq!(
            infer_years(&s, local(2025, 1, 3) + 3600),
            vec![2024, 2024, 2025, 2025]
        );
        // The newest line after the mtime's date: the year before.
        assert_eq!(infer_years(&[(11, 20, 0)], local(2025, 3, 1)), vec![2024]);
        assert_eq!(infer_years(&[(11, 20, 0)], local(2025, 11, 21)), vec![2025]);
        // Two wraps.
        let s = [(3, 1, 0), (1, 1, 0), (6, 1, 0), (2, 1, 0)];
        assert_eq!(
            infer_years(&s, local(2025, 2, 2)),
            vec![2023, 2024, 2024, 2025]
        );
    }
}
