//! The suspect system's time zone, to turn the local wall-clock times some logs store
//! (syslog's `Nov 20 03:10:00`) into UTC.
//!
//! [`Zone::load`] reads `/etc/localtime`, a TZif file (RFC 8536, versions 1 to 3), parsed
//! here with every count checked against the file's size, and names it from
//! `/etc/timezone` or the link target (`/usr/share/zoneinfo/Europe/Berlin`). Past the
//! last transition of the table, the footer's POSIX TZ string (`CET-1CEST,M3.5.0,M10.5.0/3`)
//! gives the rule. Without `/etc/localtime` the zone is UTC, and [`Zone::describe`] says
//! so.

use crate::files::Files;
use crate::text::display_safe;

/// TZif files above this are not time zones (the largest in tzdata are about 4 KiB).
pub const MAX_TZIF_BYTES: usize = 1 << 20;

/// One local time type: offset from UTC and whether it is daylight saving time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalType {
    /// Seconds east of UTC.
    pub utoff: i32,
    /// Daylight saving time.
    pub is_dst: bool,
}

/// When a POSIX TZ rule switches: `Mm.w.d`, `Jn` or `n`, at `secs` after local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleDay {
    /// Julian day 1..=365, February 29 never counted.
    Julian1(u16),
    /// Zero-based day 0..=365, February 29 counted.
    Julian0(u16),
    /// Month 1..=12, week 1..=5 (5: last), weekday 0..=6 (0: Sunday).
    MonthWeekDay(u8, u8, u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Switch {
    day: RuleDay,
    /// Seconds after local midnight (v3 allows -167..=167 hours).
    secs: i32,
}

/// A POSIX TZ string (the TZif footer).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PosixTz {
    std: LocalType,
    /// Daylight saving time and its start and end, if the zone has it.
    dst: Option<(LocalType, Switch, Switch)>,
}

/// A time zone: a transition table and a rule for after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    name: String,
    /// Where the name and rules came from, for the time notes.
    source: String,
    /// Transition instants (UTC seconds, increasing) and the type index from then on.
    transitions: Vec<(i64, usize)>,
    types: Vec<LocalType>,
    footer: Option<PosixTz>,
    footer_text: Option<String>,
    /// What could not be read (display-safe).
    problems: Vec<String>,
}

impl Zone {
    /// UTC: what local times are taken as when the zone is unknown.
    #[must_use]
    pub fn utc() -> Self {
        Self {
            name: "UTC".to_string(),
            source: "built in".to_string(),
            transitions: Vec::new(),
            types: vec![LocalType {
                utoff: 0,
                is_dst: false,
            }],
            footer: None,
            footer_text: None,
            problems: Vec::new(),
        }
    }

    /// The system's zone: `/etc/localtime` (TZif), named from `/etc/timezone` or the link
    /// target. UTC, with the reason in [`Zone::describe`] and [`Zone::problems`], when it
    /// is missing or damaged.
    #[must_use]
    pub fn load(files: &Files<'_>) -> Self {
        let from_file = match files.read(b"/etc/timezone", 4096) {
            Ok(Some(d)) => {
                let text = String::from_utf8_lossy(&d.bytes);
                let name = text.lines().next().unwrap_or("").trim().to_string();
                (!name.is_empty()).then(|| display_safe(name.as_bytes()))
            }
            _ => None,
        };
        let from_link = match files.read_link(b"/etc/localtime") {
            Ok(Some(target)) => {
                let t = String::from_utf8_lossy(&target).to_string();
                let name = t
                    .split_once("zoneinfo/")
                    .map_or(t.as_str(), |(_, n)| n)
                    .trim_start_matches("posix/")
                    .to_string();
                Some(display_safe(name.as_bytes()))
            }
            _ => None,
        };
        let (name, name_source) = match (&from_file, &from_link) {
            (Some(n), _) => (n.clone(), "/etc/timezone"),
            (None, Some(n)) => (n.clone(), "the /etc/localtime link"),
            (None, None) => ("unnamed".to_string(), "no name found"),
        };
        match files.read(b"/etc/localtime", MAX_TZIF_BYTES) {
            Ok(Some(d)) if !d.truncated => match Self::from_tzif(&d.bytes, &name) {
                Ok(mut z) => {
                    z.source = format!("name from {name_source}, rules from /etc/localtime");
                    if let (Some(a), Some(b)) = (&from_file, &from_link) {
                        if a != b {
                            z.problems.push(format!(
                                "/etc/timezone says {a} but /etc/localtime links to {b}; \
                                 the rules of /etc/localtime are used"
                            ));
                        }
                    }
                    z
                }
                Err(e) => Self::utc_because(format!("/etc/localtime: {e}")),
            },
            Ok(Some(_)) => Self::utc_because(format!(
                "/etc/localtime is larger than {MAX_TZIF_BYTES} bytes"
            )),
            Ok(None) => {
                // Not damage: a system may well run on UTC without the file.
                let mut z = Self::utc();
                z.source = "no /etc/localtime: local times taken as UTC".to_string();
                z
            }
            Err(e) => Self::utc_because(format!(
                "/etc/localtime: {}",
                display_safe(e.to_string().as_bytes())
            )),
        }
    }

    fn utc_because(why: String) -> Self {
        let mut z = Self::utc();
        z.source = format!("{why}: local times taken as UTC");
        z.problems.push(why);
        z
    }

    /// Parses a TZif file (v1, v2 or v3; the 64-bit block and footer when present).
    ///
    /// # Errors
    /// A message naming the field and offset when the file is not TZif or its counts do
    /// not fit it.
    pub fn from_tzif(bytes: &[u8], name: &str) -> Result<Self, String> {
        let v1 = Header::parse(bytes, 0)?;
        let v1_len = v1.data_len(4)?;
        let (h, block_start, time_size) = if v1.version >= b'2' {
            let second = 44usize
                .checked_add(v1_len)
                .ok_or("TZif: v1 block size overflows")?;
            (Header::parse(bytes, second)?, second + 44, 8usize)
        } else {
            (v1, 44usize, 4usize)
        };
        let data_len = h.data_len(time_size)?;
        let end = block_start
            .checked_add(data_len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                format!(
                    "TZif data block at byte {block_start}: needs {data_len} bytes, \
                     the file has {}",
                    bytes.len()
                )
            })?;
        let data = bytes.get(block_start..end).ok_or("TZif: data block")?;
        let times_len = h.timecnt * time_size;
        let mut transitions = Vec::with_capacity(h.timecnt);
        for i in 0..h.timecnt {
            let t = if time_size == 8 {
                be_i64(data, i * 8)
            } else {
                be_i32(data, i * 4).map(i64::from)
            }
            .ok_or("TZif: transition time")?;
            let idx = usize::from(*data.get(times_len + i).ok_or("TZif: type index")?);
            if idx >= h.typecnt {
                return Err(format!(
                    "TZif transition {i}: type index {idx}, only {} types",
                    h.typecnt
                ));
            }
            if let Some(&(prev, _)) = transitions.last() {
                if t <= prev {
                    return Err(format!("TZif transition {i}: times not increasing"));
                }
            }
            transitions.push((t, idx));
        }
        let types_at = times_len + h.timecnt;
        let mut types = Vec::with_capacity(h.typecnt);
        for i in 0..h.typecnt {
            let at = types_at + i * 6;
            let utoff = be_i32(data, at).ok_or("TZif: type offset")?;
            if !(-89_999..=93_599).contains(&utoff) {
                return Err(format!("TZif type {i}: UT offset {utoff} out of range"));
            }
            let is_dst = *data.get(at + 4).ok_or("TZif: type isdst")? != 0;
            types.push(LocalType { utoff, is_dst });
        }
        let mut zone = Self {
            name: display_safe(name.as_bytes()),
            source: "TZif".to_string(),
            transitions,
            types,
            footer: None,
            footer_text: None,
            problems: Vec::new(),
        };
        if time_size == 8 {
            let rest = bytes.get(end..).unwrap_or(&[]);
            if let Some(body) = rest.strip_prefix(b"\n") {
                if let Some(nl) = body.iter().position(|&b| b == b'\n') {
                    let text = String::from_utf8_lossy(body.get(..nl).unwrap_or(&[])).to_string();
                    if !text.is_empty() {
                        match parse_posix_tz(&text) {
                            Some(p) => zone.footer = Some(p),
                            None => zone.problems.push(format!(
                                "TZif footer {} not understood: the table's last type is \
                                 used after its end",
                                display_safe(text.as_bytes())
                            )),
                        }
                        zone.footer_text = Some(display_safe(text.as_bytes()));
                    }
                }
            }
        }
        Ok(zone)
    }

    /// The zone's name (`Europe/Berlin`), display-safe.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is UTC for lack of a zone or by configuration.
    #[must_use]
    pub fn is_utc(&self) -> bool {
        self.transitions.is_empty()
            && self
                .footer
                .as_ref()
                .is_none_or(|f| f.std.utoff == 0 && f.dst.is_none())
            && self.types.iter().all(|t| t.utoff == 0)
    }

    /// What could not be read while loading it (display-safe).
    #[must_use]
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// One line for time notes: `local time converted with zone Europe/Berlin (name from
    /// /etc/timezone, rules from /etc/localtime; ambiguous times take the first)`.
    #[must_use]
    pub fn describe(&self) -> String {
        let footer = self
            .footer_text
            .as_deref()
            .map(|f| format!(", then {f}"))
            .unwrap_or_default();
        format!(
            "local time converted with zone {} ({}{}; a repeated local time in the \
             fall-back hour is taken as its first occurrence)",
            self.name, self.source, footer
        )
    }

    /// The local time type in effect at `utc` (seconds since the epoch).
    #[must_use]
    pub fn type_at(&self, utc: i64) -> LocalType {
        let utc_type = LocalType {
            utoff: 0,
            is_dst: false,
        };
        let first = self.types.first().copied().unwrap_or(utc_type);
        let n = self.transitions.partition_point(|&(t, _)| t <= utc);
        if n == 0 {
            if self.transitions.is_empty() {
                if let Some(f) = &self.footer {
                    return f.type_at(utc);
                }
            }
            return first;
        }
        if n == self.transitions.len() {
            if let Some(f) = &self.footer {
                return f.type_at(utc);
            }
        }
        self.transitions
            .get(n - 1)
            .and_then(|&(_, i)| self.types.get(i))
            .copied()
            .unwrap_or(first)
    }

    /// Seconds east of UTC at `utc`.
    #[must_use]
    pub fn offset_at(&self, utc: i64) -> i32 {
        self.type_at(utc).utoff
    }

    /// The UTC instant of local wall-clock time `local_secs` (seconds since the epoch as if
    /// the local time were UTC). A time repeated in the fall-back hour gives its first
    /// occurrence; a time skipped by the spring-forward gap is read with the offset in
    /// effect before the gap (as `mktime` does with `tm_isdst = -1` on glibc). `None` only
    /// when arithmetic overflows.
    #[must_use]
    pub fn to_utc(&self, local_secs: i64) -> Option<i64> {
        let mut offsets: Vec<i32> = self.types.iter().map(|t| t.utoff).collect();
        if let Some(f) = &self.footer {
            offsets.push(f.std.utoff);
            if let Some((d, _, _)) = &f.dst {
                offsets.push(d.utoff);
            }
        }
        offsets.sort_unstable();
        offsets.dedup();
        let mut best: Option<i64> = None;
        for &off in &offsets {
            let Some(u) = local_secs.checked_sub(i64::from(off)) else {
                continue;
            };
            if self.offset_at(u) == off && best.is_none_or(|b| u < b) {
                best = Some(u);
            }
        }
        if best.is_some() {
            return best;
        }
        // In a gap: the offset a day before applies.
        let before = self.offset_at(local_secs.checked_sub(86_400)?);
        local_secs.checked_sub(i64::from(before))
    }
}

struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    fn parse(bytes: &[u8], at: usize) -> Result<Self, String> {
        let h = bytes
            .get(at..at.checked_add(44).ok_or("TZif: header offset")?)
            .ok_or_else(|| format!("TZif header at byte {at}: file too short"))?;
        if h.get(..4) != Some(b"TZif") {
            return Err(format!("TZif header at byte {at}: bad magic"));
        }
        let version = *h.get(4).ok_or("TZif: version")?;
        if version != 0 && !(b'2'..=b'9').contains(&version) {
            return Err(format!(
                "TZif header at byte {at}: version byte {version:#x}"
            ));
        }
        let count = |i: usize| -> Result<usize, String> {
            let v = be_i32(h, 20 + i * 4).ok_or("TZif: count")?;
            let v = u32::from_be_bytes(v.to_be_bytes());
            // No count can exceed the file's size: each counted item takes a byte or more.
            usize::try_from(v)
                .ok()
                .filter(|&n| n <= bytes.len())
                .ok_or_else(|| {
                    format!("TZif header at byte {at}: count {i} is {v}, larger than the file")
                })
        };
        let h = Self {
            version,
            isutcnt: count(0)?,
            isstdcnt: count(1)?,
            leapcnt: count(2)?,
            timecnt: count(3)?,
            typecnt: count(4)?,
            charcnt: count(5)?,
        };
        if h.typecnt == 0 {
            return Err(format!("TZif header at byte {at}: no local time types"));
        }
        Ok(h)
    }

    /// Bytes of the data block with `time_size`-byte times.
    fn data_len(&self, time_size: usize) -> Result<usize, String> {
        let parts = [
            self.timecnt.checked_mul(time_size + 1),
            self.typecnt.checked_mul(6),
            Some(self.charcnt),
            self.leapcnt.checked_mul(time_size + 4),
            Some(self.isstdcnt),
            Some(self.isutcnt),
        ];
        parts
            .iter()
            .try_fold(0usize, |acc, p| acc.checked_add((*p)?))
            .ok_or_else(|| "TZif: data block size overflows".to_string())
    }
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes(s.try_into().ok()?))
}

fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(i64::from_be_bytes(s.try_into().ok()?))
}

impl PosixTz {
    fn type_at(&self, utc: i64) -> LocalType {
        let Some((dst, start, end)) = &self.dst else {
            return self.std;
        };
        let local_year = civil_from_days(
            utc.saturating_add(i64::from(self.std.utoff))
                .div_euclid(86_400),
        )
        .0;
        // The switches of the year before, this year and the next decide (a southern
        // rule's DST spans the new year).
        let mut in_dst = false;
        let mut last_switch: Option<i64> = None;
        for y in [local_year - 1, local_year, local_year + 1] {
            // Start is given in standard time, end in daylight time.
            let s = switch_local(y, start).map(|l| l - i64::from(self.std.utoff));
            let e = switch_local(y, end).map(|l| l - i64::from(dst.utoff));
            for (t, becomes_dst) in [(s, true), (e, false)] {
                if let Some(t) = t {
                    if t <= utc && last_switch.is_none_or(|l| t >= l) {
                        last_switch = Some(t);
                        in_dst = becomes_dst;
                    }
                }
            }
        }
        if in_dst {
            *dst
        } else {
            self.std
        }
    }
}

/// Local seconds (as if UTC) of `sw` in year `y`.
fn switch_local(y: i64, sw: &Switch) -> Option<i64> {
    let leap = is_leap(y);
    let day = match sw.day {
        RuleDay::Julian1(n) => {
            let n = i64::from(n);
            // Days 1..=59 are Jan 1 .. Feb 28; from 60 on, March 1 follows Feb 28.
            days_from_civil(y, 1, 1) + n - 1 + i64::from(leap && n >= 60)
        }
        RuleDay::Julian0(n) => days_from_civil(y, 1, 1) + i64::from(n),
        RuleDay::MonthWeekDay(m, w, d) => {
            let first = days_from_civil(y, m, 1);
            // 1970-01-01 was a Thursday (4).
            let dow_first = (first + 4).rem_euclid(7);
            let mut day = first + (i64::from(d) - dow_first).rem_euclid(7) + (i64::from(w) - 1) * 7;
            let next_month = if m == 12 {
                days_from_civil(y + 1, 1, 1)
            } else {
                days_from_civil(y, m + 1, 1)
            };
            while day >= next_month {
                day -= 7;
            }
            day
        }
    };
    day.checked_mul(86_400)?.checked_add(i64::from(sw.secs))
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
#[must_use]
pub fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let (m, d) = (i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1..=12, day 1..=31) of a day number since 1970-01-01.
#[must_use]
pub fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u8::try_from(m).unwrap_or(1),
        u8::try_from(d).unwrap_or(1),
    )
}

/// Parses `std offset [dst [offset] [,start[/time],end[/time]]]`.
fn parse_posix_tz(s: &str) -> Option<PosixTz> {
    let mut p = s.as_bytes();
    let _std_name = take_name(&mut p)?;
    let std_off = take_offset(&mut p)?;
    let std = LocalType {
        utoff: -std_off,
        is_dst: false,
    };
    if p.is_empty() {
        return Some(PosixTz { std, dst: None });
    }
    let _dst_name = take_name(&mut p)?;
    let dst_off = if p.first().is_some_and(|c| *c != b',') {
        take_offset(&mut p)?
    } else {
        std_off - 3600
    };
    let dst = LocalType {
        utoff: -dst_off,
        is_dst: true,
    };
    // Without rules POSIX leaves it to the implementation; glibc uses the US rules.
    let (start, end) = if p.is_empty() {
        (
            Switch {
                day: RuleDay::MonthWeekDay(3, 2, 0),
                secs: 7200,
            },
            Switch {
                day: RuleDay::MonthWeekDay(11, 1, 0),
                secs: 7200,
            },
        )
    } else {
        p = p.strip_prefix(b",")?;
        let start = take_switch(&mut p)?;
        p = p.strip_prefix(b",")?;
        let end = take_switch(&mut p)?;
        (start, end)
    };
    if !p.is_empty() {
        return None;
    }
    Some(PosixTz {
        std,
        dst: Some((dst, start, end)),
    })
}

fn take_name<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
    if let Some(rest) = p.strip_prefix(b"<") {
        let close = rest.iter().position(|&c| c == b'>')?;
        let name = rest.get(..close)?;
        *p = rest.get(close + 1..)?;
        return (name.len() >= 3).then_some(name);
    }
    let n = p.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    let name = p.get(..n)?;
    *p = p.get(n..)?;
    (n >= 3).then_some(name)
}

/// `[+-]hh[:mm[:ss]]` in seconds (sign as written).
fn take_offset(p: &mut &[u8]) -> Option<i32> {
    let mut sign = 1;
    if let Some(rest) = p.strip_prefix(b"-") {
        sign = -1;
        *p = rest;
    } else if let Some(rest) = p.strip_prefix(b"+") {
        *p = rest;
    }
    let mut total = 0i32;
    for (i, unit) in [3600, 60, 1].into_iter().enumerate() {
        if i > 0 {
            match p.strip_prefix(b":") {
                Some(rest) => *p = rest,
                None => break,
            }
        }
        let n = p.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 3 {
            return None;
        }
        let v: i32 = std::str::from_utf8(p.get(..n)?).ok()?.parse().ok()?;
        if (i == 0 && v > 167) || (i > 0 && v > 59) {
            return None;
        }
        total += v * unit;
        *p = p.get(n..)?;
    }
    Some(sign * total)
}

fn take_number(p: &mut &[u8]) -> Option<u16> {
    let n = p.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 3 {
        return None;
    }
    let v = std::str::from_utf8(p.get(..n)?).ok()?.parse().ok()?;
    *p = p.get(n..)?;
    Some(v)
}

fn take_switch(p: &mut &[u8]) -> Option<Switch> {
    let day = if let Some(rest) = p.strip_prefix(b"M") {
        *p = rest;
        let m = take_number(p)?;
        *p = p.strip_prefix(b".")?;
        let w = take_number(p)?;
        *p = p.strip_prefix(b".")?;
        let d = take_number(p)?;
        if !(1..=12).contains(&m) || !(1..=5).contains(&w) || d > 6 {
            return None;
        }
        RuleDay::MonthWeekDay(
            u8::try_from(m).ok()?,
            u8::try_from(w).ok()?,
            u8::try_from(d).ok()?,
        )
    } else if let Some(rest) = p.strip_prefix(b"J") {
        *p = rest;
        let n = take_number(p)?;
        if !(1..=365).contains(&n) {
            return None;
        }
        RuleDay::Julian1(n)
    } else {
        let n = take_number(p)?;
        if n > 365 {
            return None;
        }
        RuleDay::Julian0(n)
    };
    let secs = if let Some(rest) = p.strip_prefix(b"/") {
        *p = rest;
        take_offset(p)?
    } else {
        7200
    };
    Some(Switch { day, secs })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]
mod tests {
    use super::*;
    use crate::test_support::{ext4_of, have_tools, put, with_ext4};
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn zone(name: &str) -> Zone {
        let bytes = std::fs::read(format!("/usr/share/zoneinfo/{name}")).unwrap();
        Zone::from_tzif(&bytes, name).unwrap()
    }

    /// The instants to check: a coarse irregular grid over 1902..2100 and every 15
    /// minutes through 2024 and 2040 (after the table of a slim TZif: the footer rule).
    fn instants() -> Vec<i64> {
        let mut v = Vec::new();
        let mut t = -2_145_916_800; // 1902-01-01
        while t < 4_102_444_800 {
            v.push(t);
            t += 90_000 + 1_037;
        }
        for start in [1_704_067_200_i64, 2_208_988_800] {
            let mut t = start - 86_400;
            while t < start + 367 * 86_400 {
                v.push(t);
                t += 900;
            }
        }
        v
    }

    /// `(offset seconds, local wall clock as seconds)` per instant, from GNU date.
    fn date_says(name: &str, instants: &[i64]) -> Vec<(i32, i64)> {
        let mut child = Command::new("date")
            .env("TZ", name)
            .args(["-f", "-", "+%z %Y %m %d %H %M %S"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let input: String = instants.iter().map(|t| format!("@{t}\n")).collect();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let z = f[0];
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let off = sign
                    * (z[1..3].parse::<i32>().unwrap() * 3600
                        + z[3..5].parse::<i32>().unwrap() * 60);
                let n: Vec<i64> = f[1..].iter().map(|x| x.parse().unwrap()).collect();
                let local = days_from_civil(n[0], n[1] as u8, n[2] as u8) * 86_400
                    + n[3] * 3600
                    + n[4] * 60
                    + n[5];
                (off, local)
            })
            .collect()
    }

    #[test]
    fn zones_agree_with_gnu_date() {
        if !have_tools(&["date"]) {
            return;
        }
        let instants = instants();
        for name in [
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
            "UTC",
            "America/Sao_Paulo",
            "Pacific/Chatham",
        ] {
            let z = zone(name);
            let said = date_says(name, &instants);
            assert_eq!(said.len(), instants.len(), "{name}");
            let mut repeated = 0;
            for (&t, &(off, local)) in instants.iter().zip(&said) {
                // date prints offsets in whole minutes (LMT has seconds).
                let ours = z.offset_at(t);
                assert_eq!(ours / 60, off / 60, "{name} offset at {t}");
                let back = z.to_utc(local).unwrap();
                if back != t {
                    // A repeated local time: ours is the first occurrence, earlier.
                    assert!(
                        back < t && t - back <= 7200,
                        "{name} {t} -> {local} -> {back}"
                    );
                    assert_eq!(back + i64::from(z.offset_at(back)), local, "{name} {t}");
                    repeated += 1;
                }
            }
            if name == "Europe/Berlin" {
                // 2024 and 2040 each have one fall-back hour: 4 quarter hours each.
                assert!(repeated >= 8, "{repeated}");
            }
        }
    }

    #[test]
    fn dst_edges_berlin() {
        let z = zone("Europe/Berlin");
        let l = |y: i64, m: u8, d: u8, h: i64, mi: i64| {
            days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60
        };
        // 2024-03-31 02:30 does not exist: read with CET, 01:30Z.
        assert_eq!(z.to_utc(l(2024, 3, 31, 2, 30)), Some(l(2024, 3, 31, 1, 30)));
        // 2024-10-27 02:30 happens twice: the first, CEST, 00:30Z.
        assert_eq!(
            z.to_utc(l(2024, 10, 27, 2, 30)),
            Some(l(2024, 10, 27, 0, 30))
        );
        // Footer rule far ahead.
        assert_eq!(z.to_utc(l(2090, 7, 1, 12, 0)), Some(l(2090, 7, 1, 10, 0)));
        assert!(z.describe().contains("CET-1CEST,M3.5.0,M10.5.0/3"));
    }

    #[test]
    fn posix_strings() {
        let p = parse_posix_tz("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0").unwrap();
        assert_eq!(p.std.utoff, 37_800);
        assert_eq!(p.dst.unwrap().0.utoff, 39_600);
        let p = parse_posix_tz("<-02>2<-01>,M3.5.0/-1,M10.5.0/0").unwrap();
        assert_eq!(p.dst.unwrap().1.secs, -3600);
        assert!(parse_posix_tz("EST5EDT,M3.2.0,M11.1.0").is_some());
        assert!(parse_posix_tz("IST-5:30").is_some());
        for bad in [
            "",
            "X",
            "CET-1CEST,M13.5.0,M10.5.0",
            "CET-1CEST,M3.5.0",
            "CET-999",
        ] {
            assert!(parse_posix_tz(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn hostile_tzif() {
        let good = std::fs::read("/usr/share/zoneinfo/Europe/Berlin").unwrap();
        for n in 0..good.len() {
            let _ = Zone::from_tzif(&good[..n], "x");
        }
        let mut bad = good.clone();
        bad[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Zone::from_tzif(&bad, "x").unwrap_err().contains("count"));
        assert!(Zone::from_tzif(b"TZif2", "x").is_err());
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xA5;
            if let Ok(z) = Zone::from_tzif(&b, "x") {
                let _ = z.to_utc(1_700_000_000);
                let _ = z.to_utc(i64::MAX);
                let _ = z.to_utc(i64::MIN);
            }
        }
    }

    #[test]
    fn loaded_from_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        put(
            &root,
            "usr/share/zoneinfo/Europe/Berlin",
            &std::fs::read("/usr/share/zoneinfo/Europe/Berlin").unwrap(),
        );
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink(
            "/usr/share/zoneinfo/Europe/Berlin",
            root.join("etc/localtime"),
        )
        .unwrap();
        let Some(img) = ext4_of(&root, 4) else { return };
        with_ext4(&img, |files| {
            let z = Zone::load(files);
            assert_eq!(z.name(), "Europe/Berlin");
            assert!(
                z.describe().contains("/etc/localtime link"),
                "{}",
                z.describe()
            );
            assert_eq!(z.offset_at(1_700_000_000), 3600);
        });
        // No zone at all: UTC, said.
        let empty = dir.path().join("empty");
        put(&empty, "etc/hostname", b"x\n");
        let Some(img) = ext4_of(&empty, 4) else {
            return;
        };
        with_ext4(&img, |files| {
            let z = Zone::load(files);
            assert!(z.is_utc());
            assert!(
                z.describe().contains("no /etc/localtime"),
                "{}",
                z.describe()
            );
        });
    }
}
