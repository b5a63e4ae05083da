//! Binary login records: `wtmp` (logins, logouts, boots, shutdowns), `btmp` (failed
//! logins), `utmp` (who is logged in) — glibc's `struct utmp` on Linux, 384 bytes — and
//! `lastlog` (one 292-byte record per uid: last login time, line and host).

use crate::text::display_safe;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Bytes of one Linux `struct utmp` (x86-64, aarch64 and i386 alike: `ut_tv` is two
/// 32-bit fields there).
pub const UTMP_SIZE: usize = 384;
/// Bytes of one `struct lastlog` (32-bit time).
pub const LASTLOG_SIZE: usize = 292;

/// One utmp record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtmpRecord {
    /// 0-based record number.
    pub index: u64,
    /// Byte offset in the file.
    pub offset: u64,
    /// `ut_type` (1 RUN_LVL, 2 BOOT_TIME, 5 INIT, 6 LOGIN, 7 USER_PROCESS, 8 DEAD_PROCESS …).
    pub kind: i16,
    /// `ut_pid`.
    pub pid: i32,
    /// `ut_line` (tty), display-safe.
    pub line: String,
    /// `ut_id`, display-safe.
    pub id: String,
    /// `ut_user`, display-safe.
    pub user: String,
    /// `ut_host`, display-safe.
    pub host: String,
    /// `ut_session`.
    pub session: i32,
    /// `ut_tv.tv_sec`, UTC.
    pub secs: i64,
    /// `ut_tv.tv_usec`.
    pub usecs: i32,
    /// `ut_addr_v6` as text (IPv4 when only the first word is set), or empty.
    pub address: String,
}

/// The records of a utmp-format file and, when its length is not a multiple of 384, the
/// byte offset of the partial record at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UtmpFile {
    /// Records in file order.
    pub records: Vec<UtmpRecord>,
    /// Offset of a trailing partial record.
    pub partial_at: Option<u64>,
    /// Records with a type outside 0..=9: (index, offset, type).
    pub bad_types: Vec<(u64, u64, i16)>,
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    display_safe(b.get(..end).unwrap_or(&[]))
}

fn le_i32(b: &[u8], at: usize) -> i32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, i32::from_le_bytes)
}

/// `ut_addr_v6`: four 32-bit words in network byte order; IPv4 uses the first only.
fn address(raw: &[u8]) -> String {
    let Ok(a): Result<[u8; 16], _> = raw.try_into() else {
        return String::new();
    };
    if a.iter().all(|&b| b == 0) {
        return String::new();
    }
    if a.get(4..).is_some_and(|r| r.iter().all(|&b| b == 0)) {
        return Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string();
    }
    Ipv6Addr::from(a).to_string()
}

/// Parses a utmp/wtmp/btmp file.
#[must_use]
pub fn parse_utmp(bytes: &[u8]) -> UtmpFile {
    let mut out = UtmpFile::default();
    for (i, rec) in bytes.chunks(UTMP_SIZE).enumerate() {
        let index = i as u64;
        let offset = index * UTMP_SIZE as u64;
        if rec.len() < UTMP_SIZE {
            out.partial_at = Some(offset);
            break;
        }
        let kind = rec
            .get(0..2)
            .and_then(|s| s.try_into().ok())
            .map_or(0, i16::from_le_bytes);
        if !(0..=9).contains(&kind) {
            out.bad_types.push((index, offset, kind));
            continue;
        }
        out.records.push(UtmpRecord {
            index,
            offset,
            kind,
            pid: le_i32(rec, 4),
            line: c_string(rec.get(8..40).unwrap_or(&[])),
            id: c_string(rec.get(40..44).unwrap_or(&[])),
            user: c_string(rec.get(44..76).unwrap_or(&[])),
            host: c_string(rec.get(76..332).unwrap_or(&[])),
            session: le_i32(rec, 336),
            // tv_sec is a signed 32-bit field; glibc writes it as such.
            secs: i64::from(le_i32(rec, 340)),
            usecs: le_i32(rec, 344),
            address: address(rec.get(348..364).unwrap_or(&[])),
        });
    }
    out
}

/// The event kind of a record in a wtmp (`failed` false) or btmp (`failed` true) file;
/// `None` for records that say nothing on their own (EMPTY, INIT_PROCESS, LOGIN_PROCESS,
/// ACCOUNTING, clock changes).
#[must_use]
pub fn event_kind(r: &UtmpRecord, failed: bool) -> Option<&'static str> {
    if failed {
        // lastb shows every btmp record as a failed login.
        return (r.kind != 0).then_some("failed_login");
    }
    match r.kind {
        1 if r.user == "shutdown" => Some("shutdown"),
        1 => Some("runlevel"),
        2 => Some("boot"),
        7 => Some("login"),
        8 => Some("logout"),
        _ => None,
    }
}

/// One lastlog record in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastlogRecord {
    /// The uid (record number).
    pub uid: u64,
    /// Byte offset.
    pub offset: u64,
    /// `ll_time`, UTC.
    pub secs: i64,
    /// `ll_line`, display-safe.
    pub line: String,
    /// `ll_host`, display-safe.
    pub host: String,
}

/// The lastlog records with a time set.
#[must_use]
pub fn parse_lastlog(bytes: &[u8]) -> Vec<LastlogRecord> {
    bytes
        .chunks_exact(LASTLOG_SIZE)
        .enumerate()
        .filter_map(|(i, rec)| {
            let secs = le_i32(rec, 0);
            // A hole in the sparse file reads as zeros: that uid never logged in.
            (secs != 0).then(|| LastlogRecord {
                uid: i as u64,
                offset: (i * LASTLOG_SIZE) as u64,
                secs: i64::from(secs),
                line: c_string(rec.get(4..36).unwrap_or(&[])),
                host: c_string(rec.get(36..292).unwrap_or(&[])),
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]
pub(crate) mod tests {
    use super::*;
    use crate::test_support::{have_tools, run};

    /// A utmpdump text dump: records as `utmpdump -r` reads them.
    pub(crate) const DUMP: &str = "\
[2] [00000] [~~  ] [reboot  ] [~           ] [6.1.0-18-amd64      ] [0.0.0.0        ] [2024-11-20T03:00:01,000000+00:00]
[1] [00053] [~~  ] [runlevel] [~           ] [6.1.0-18-amd64      ] [0.0.0.0        ] [2024-11-20T03:00:05,000000+00:00]
[7] [04100] [ts/0] [root    ] [pts/0       ] [198.51.100.23       ] [198.51.100.23  ] [2024-11-20T03:17:44,123456+00:00]
[7] [04200] [ts/1] [alice   ] [pts/1       ] [2001:db8::7         ] [2001:db8::7    ] [2024-11-20T04:00:00,000000+00:00]
[8] [04100] [ts/0] [        ] [pts/0       ] [                    ] [0.0.0.0        ] [2024-11-20T05:00:00,000000+00:00]
[1] [00000] [~~  ] [shutdown] [~           ] [6.1.0-18-amd64      ] [0.0.0.0        ] [2024-11-20T06:00:00,000000+00:00]
";

    /// Writes DUMP with `utmpdump -r`, returns the binary file.
    pub(crate) fn wtmp_from_dump(dump: &str) -> Option<Vec<u8>> {
        if !have_tools(&["utmpdump"]) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("dump.txt");
        let bin = dir.path().join("wtmp");
        std::fs::write(&txt, dump).unwrap();
        run(
            "utmpdump",
            &["-r", "-o", bin.to_str().unwrap(), txt.to_str().unwrap()],
        );
        Some(std::fs::read(&bin).unwrap())
    }

    #[test]
    fn records_written_by_utmpdump() {
        let Some(bin) = wtmp_from_dump(DUMP) else {
            return;
        };
        assert_eq!(bin.len(), 6 * UTMP_SIZE);
        let f = parse_utmp(&bin);
        assert_eq!(f.partial_at, None);
        assert_eq!(f.records.len(), 6);
        let kinds: Vec<_> = f.records.iter().map(|r| event_kind(r, false)).collect();
        assert_eq!(
            kinds,
            [
                Some("boot"),
                Some("runlevel"),
                Some("login"),
                Some("login"),
                Some("logout"),
                Some("shutdown")
            ]
        );
        let r = &f.records[2];
        assert_eq!(
            (r.user.as_str(), r.line.as_str(), r.host.as_str()),
            ("root", "pts/0", "198.51.100.23")
        );
        assert_eq!(
            (r.address.as_str(), r.pid, r.secs, r.usecs),
            ("198.51.100.23", 4100, 1_732_072_664, 123_456)
        );
        assert_eq!(f.records[3].address, "2001:db8::7");
        // utmpdump reads back what we read: field by field, through its own text.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wtmp");
        std::fs::write(&p, &bin).unwrap();
        let text = String::from_utf8(run("utmpdump", &[p.to_str().unwrap()])).unwrap();
        for (line, r) in text.lines().zip(&f.records) {
            let fields: Vec<&str> = line
                .split("] [")
                .map(|s| s.trim_matches(['[', ']', ' ']))
                .collect();
            assert_eq!(fields[0].parse::<i16>().unwrap(), r.kind);
            assert_eq!(fields[1].parse::<i32>().unwrap(), r.pid);
            assert_eq!(fields[3], r.user);
            assert_eq!(fields[4], r.line);
            assert_eq!(fields[5], r.host);
        }
        // last -f lists the two logins with their hosts.
        if have_tools(&["last"]) {
            let last = String::from_utf8(run(
                "last",
                &["-f", p.to_str().unwrap(), "-w", "--time-format", "iso"],
            ))
            .unwrap();
            assert!(
                last.contains("root") && last.contains("198.51.100.23"),
                "{last}"
            );
            assert!(
                last.contains("alice") && last.contains("2001:db8::7"),
                "{last}"
            );
        }
        // A truncated tail is reported.
        let f = parse_utmp(&bin[..bin.len() - 10]);
        assert_eq!((f.records.len(), f.partial_at), (5, Some(5 * 384)));
    }

    #[test]
    fn hostile_records() {
        let mut b = vec![0xFFu8; UTMP_SIZE * 2 + 7];
        b[UTMP_SIZE..UTMP_SIZE + 2].copy_from_slice(&7i16.to_le_bytes());
        let f = parse_utmp(&b);
        assert_eq!(f.bad_types, vec![(0, 0, -1)]);
        assert_eq!(f.records.len(), 1);
        assert!(f.records[0].user.bytes().all(|c| (0x20..0x7f).contains(&c)));
        assert_eq!(f.partial_at, Some(768));
        assert!(parse_lastlog(&[1u8; 100]).is_empty());
        let mut ll = vec![0u8; LASTLOG_SIZE * 3];
        ll[LASTLOG_SIZE * 2..LASTLOG_SIZE * 2 + 4].copy_from_slice(&1_700_000_000i32.to_le_bytes());
        ll[LASTLOG_SIZE * 2 + 36..LASTLOG_SIZE * 2 + 39].copy_from_slice(b"a<b");
        let r = parse_lastlog(&ll);
        assert_eq!(
            (r[0].uid, r[0].secs, r[0].host.as_str()),
            (2, 1_700_000_000, "a<b")
        );
    }
}
