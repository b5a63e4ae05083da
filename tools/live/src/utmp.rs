//! Logged-in users from utmp (/var/run/utmp), glibc's x86-64 `struct utmp`.
//!
//! utmp is a plain file any root process can edit, so a missing login proves nothing; it
//! is collected because it names the terminal and remote host of each session, which the
//! process list (`sshd: user@pts/0`) can then corroborate.
//!
//! Layout (`bits/utmp.h`, 384 bytes, little-endian; 32-bit time fields since glibc keeps
//! the on-disk format the same for 32- and 64-bit programs):
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | `ut_type` | i16 (+2 padding) |
//! | 4 | `ut_pid` | i32 |
//! | 8 | `ut_line` | `char[32]` |
//! | 40 | `ut_id` | `char[4]` |
//! | 44 | `ut_user` | `char[32]` |
//! | 76 | `ut_host` | `char[256]` |
//! | 332 | `ut_exit` | 2 × i16 |
//! | 336 | `ut_session` | i32 |
//! | 340 | `ut_tv` | 2 × i32 (sec, usec) |
//! | 348 | `ut_addr_v6` | 4 × i32 (network order bytes) |
//! | 364 | unused | 20 bytes |

use crate::table::ParseError;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Size of one `struct utmp` record, bytes.
pub const UTMP_RECORD_BYTES: usize = 384;
/// `ut_type` of a logged-in user's session.
pub const USER_PROCESS: i16 = 7;
/// Most records read (a utmp file of genuine use holds a few hundred).
pub const MAX_UTMP_RECORDS: usize = 100_000;

/// One logged-in user (a `USER_PROCESS` record).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// User name (`ut_user`).
    pub user: String,
    /// Terminal without `/dev/` (`ut_line`, e.g. `pts/0`).
    pub line: String,
    /// Terminal suffix / inittab id (`ut_id`).
    pub id: String,
    /// Remote host name or address as the login service wrote it (`ut_host`).
    pub host: String,
    /// Remote address (`ut_addr_v6`): IPv4 when only the first word is set.
    pub address: Option<IpAddr>,
    /// Process id of the login process (`ut_pid`).
    pub pid: i32,
    /// Session id (`ut_session`).
    pub session: i32,
    /// Login time, seconds since the Unix epoch (`ut_tv.tv_sec`).
    pub login_unix_seconds: i64,
    /// Login time as RFC 3339 UTC, when representable.
    pub login_utc: Option<String>,
    /// Byte offset of the record in the file.
    pub record_offset: usize,
}

/// Parses utmp bytes into the `USER_PROCESS` records. A trailing partial record is
/// reported as [`ParseError::TruncatedRecord`] alongside the whole records before it.
pub fn parse_utmp(bytes: &[u8]) -> crate::table::Parsed<Login> {
    let mut out = crate::table::Parsed::default();
    let mut chunks = bytes.chunks_exact(UTMP_RECORD_BYTES);
    for (index, record) in chunks.by_ref().enumerate() {
        if index >= MAX_UTMP_RECORDS {
            out.errors.push(ParseError::TooManyLines {
                limit: MAX_UTMP_RECORDS,
            });
            return out;
        }
        let offset = index.saturating_mul(UTMP_RECORD_BYTES);
        if let Some(login) = parse_record(record, offset) {
            out.items.push(login);
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        out.errors.push(ParseError::TruncatedRecord {
            offset: bytes.len().saturating_sub(rest.len()),
            expected: UTMP_RECORD_BYTES,
            found: rest.len(),
        });
    }
    out
}

/// One record, or `None` if it is not a `USER_PROCESS` entry.
fn parse_record(r: &[u8], record_offset: usize) -> Option<Login> {
    if i16::from_le_bytes(array(r, 0)?) != USER_PROCESS {
        return None;
    }
    let login_unix_seconds = i64::from(i32::from_le_bytes(array(r, 340)?));
    let login_utc = OffsetDateTime::from_unix_timestamp(login_unix_seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok());
    Some(Login {
        user: c_string(r.get(44..76)?),
        line: c_string(r.get(8..40)?),
        id: c_string(r.get(40..44)?),
        host: c_string(r.get(76..332)?),
        address: address(r.get(348..364)?),
        pid: i32::from_le_bytes(array(r, 4)?),
        session: i32::from_le_bytes(array(r, 336)?),
        login_unix_seconds,
        login_utc,
        record_offset,
    })
}

/// `N` bytes at `offset`.
fn array<const N: usize>(r: &[u8], offset: usize) -> Option<[u8; N]> {
    r.get(offset..offset.checked_add(N)?)?.try_into().ok()
}

/// A fixed-size char array: up to the first NUL (not necessarily present), lossy UTF-8.
fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(field.get(..end).unwrap_or_default()).into_owned()
}

/// `ut_addr_v6`: the address bytes in network order; IPv4 fills only the first word.
fn address(raw: &[u8]) -> Option<IpAddr> {
    let bytes: [u8; 16] = raw.try_into().ok()?;
    if bytes.iter().all(|&b| b == 0) {
        return None;
    }
    if bytes
        .get(4..)
        .is_some_and(|rest| rest.iter().all(|&b| b == 0))
    {
        let v4: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A `struct utmp` record built field by field.
    fn record(
        ut_type: i16,
        user: &str,
        line: &str,
        host: &str,
        addr: [u8; 16],
        sec: i32,
    ) -> Vec<u8> {
        let mut r = vec![0u8; UTMP_RECORD_BYTES];
        r[0..2].copy_from_slice(&ut_type.to_le_bytes());
        r[4..8].copy_from_slice(&4242i32.to_le_bytes());
        r[8..8 + line.len()].copy_from_slice(line.as_bytes());
        r[40..42].copy_from_slice(b"ts");
        r[44..44 + user.len()].copy_from_slice(user.as_bytes());
        r[76..76 + host.len()].copy_from_slice(host.as_bytes());
        r[336..340].copy_from_slice(&7i32.to_le_bytes());
        r[340..344].copy_from_slice(&sec.to_le_bytes());
        r[348..364].copy_from_slice(&addr);
        r
    }

    #[test]
    fn user_process_records_only() {
        let mut file = record(2, "reboot", "~", "6.1.0", [0; 16], 1_700_000_000);
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[192, 0, 2, 7]);
        file.extend(record(
            USER_PROCESS,
            "alice",
            "pts/0",
            "192.0.2.7",
            v4,
            1_700_000_100,
        ));
        let v6: [u8; 16] = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
        file.extend(record(
            USER_PROCESS,
            "bob",
            "pts/1",
            "2001:db8::1",
            v6,
            1_700_000_200,
        ));
        file.extend(record(8, "", "pts/2", "", [0; 16], 0));
        file.extend([7u8, 0, 0]);
        let p = parse_utmp(&file);
        assert_eq!(p.items.len(), 2);
        let a = &p.items[0];
        assert_eq!(
            (a.user.as_str(), a.line.as_str(), a.host.as_str()),
            ("alice", "pts/0", "192.0.2.7")
        );
        assert_eq!(a.address, Some("192.0.2.7".parse().unwrap()));
        assert_eq!((a.pid, a.session, a.id.as_str()), (4242, 7, "ts"));
        assert_eq!(a.login_utc.as_deref(), Some("2023-11-14T22:15:00Z"));
        assert_eq!(a.record_offset, 384);
        assert_eq!(p.items[1].address, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(
            p.errors,
            [ParseError::TruncatedRecord {
                offset: 4 * 384,
                expected: 384,
                found: 3
            }]
        );
    }

    #[test]
    fn full_width_fields_without_nul() {
        let user = "u".repeat(32);
        let r = record(USER_PROCESS, &user, "pts/0", "", [0; 16], -1);
        let p = parse_utmp(&r);
        assert_eq!(p.items[0].user, user);
        assert_eq!(p.items[0].address, None);
        assert_eq!(
            p.items[0].login_utc.as_deref(),
            Some("1969-12-31T23:59:59Z")
        );
        assert!(parse_utmp(&[]).items.is_empty());
    }
}
