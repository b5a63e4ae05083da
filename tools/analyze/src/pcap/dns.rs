//! DNS messages (RFC 1035 §4.1): header, question section and the A/AAAA/CNAME answers,
//! enough to say who asked for which name and what came back.
//!
//! Names are read with compression pointers (§4.1.4) under two bounds, so that a
//! message that points into itself cannot loop: at most [`MAX_POINTER_JUMPS`] jumps and
//! [`MAX_NAME_BYTES`] bytes of name. Labels are made display-safe as they are read.

use super::display_safe;
use serde::Serialize;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Compression pointers followed in one name before it is declared a loop.
pub const MAX_POINTER_JUMPS: usize = 128;
/// RFC 1035 §2.3.4: a name is at most 255 bytes on the wire.
pub const MAX_NAME_BYTES: usize = 255;
/// Questions and answers read per message; real messages have one question and a few
/// answers, a hostile count must not make us walk the whole message repeatedly.
const MAX_RECORDS: usize = 64;

/// A record in a DNS answer section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsAnswer {
    /// Owner name, display-safe.
    pub name: String,
    /// RR type number.
    pub rtype: u16,
    /// RR type mnemonic (`A`, `AAAA`, `CNAME`).
    pub rtype_name: &'static str,
    /// The address or target name, display-safe.
    pub data: String,
}

/// The parts of a DNS message the summary keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMessage {
    /// Transaction id.
    pub id: u16,
    /// QR bit: a response.
    pub is_response: bool,
    /// RCODE (low 4 bits of the flags).
    pub rcode: u8,
    /// (name, qtype) of each question read.
    pub questions: Vec<(String, u16)>,
    /// A, AAAA and CNAME answers read (others are skipped).
    pub answers: Vec<DnsAnswer>,
}

/// The mnemonic of common RR types; `"other"` for the rest (the number is kept too).
#[must_use]
pub fn rtype_name(rtype: u16) -> &'static str {
    match rtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        _ => "other",
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at.checked_add(2)?)? {
        &[hi, lo] => Some(u16::from_be_bytes([hi, lo])),
        _ => None,
    }
}

/// Parses a DNS message; `None` when even the header or first question is unreadable.
/// Answers stop at the first malformed record: what was read before it is kept.
#[must_use]
pub fn parse(msg: &[u8]) -> Option<DnsMessage> {
    let id = be16(msg, 0)?;
    let flags = be16(msg, 2)?;
    let qdcount = usize::from(be16(msg, 4)?);
    let ancount = usize::from(be16(msg, 6)?);
    let mut at = 12usize;
    let mut questions = Vec::new();
    for _ in 0..qdcount.min(MAX_RECORDS) {
        let Some((name, next)) = read_name(msg, at) else {
            break;
        };
        let Some(qtype) = be16(msg, next) else {
            break;
        };
        questions.push((name, qtype));
        at = next.checked_add(4)?;
    }
    if questions.is_empty() {
        return None;
    }
    let mut answers = Vec::new();
    for _ in 0..ancount.min(MAX_RECORDS) {
        let Some((answer, next)) = read_record(msg, at) else {
            break;
        };
        answers.extend(answer);
        at = next;
    }
    Some(DnsMessage {
        id,
        is_response: flags & 0x8000 != 0,
        rcode: u8::try_from(flags & 0x000F).unwrap_or(0),
        questions,
        answers,
    })
}

/// One resource record at `at`: the answer if it is A/AAAA/CNAME, and where the next
/// record starts.
fn read_record(msg: &[u8], at: usize) -> Option<(Option<DnsAnswer>, usize)> {
    let (name, fixed) = read_name(msg, at)?;
    let rtype = be16(msg, fixed)?;
    let rdlen = usize::from(be16(msg, fixed.checked_add(8)?)?);
    let rdata_at = fixed.checked_add(10)?;
    let next = rdata_at.checked_add(rdlen)?;
    let rdata = msg.get(rdata_at..next)?;
    let data = match (rtype, rdata.len()) {
        (1, 4) => {
            let a: [u8; 4] = rdata.try_into().ok()?;
            Ipv4Addr::from(a).to_string()
        }
        (28, 16) => {
            let a: [u8; 16] = rdata.try_into().ok()?;
            Ipv6Addr::from(a).to_string()
        }
        (5, _) => read_name(msg, rdata_at)?.0,
        _ => return Some((None, next)),
    };
    let answer = DnsAnswer {
        name,
        rtype,
        rtype_name: rtype_name(rtype),
        data,
    };
    Some((Some(answer), next))
}

/// Reads the name at `start`, following compression pointers. Returns the display-safe
/// dotted name (`.` for the root; a `.` inside a label shows as `\x2e`) and the offset
/// just past the name where it started (after the first pointer, if any).
#[must_use]
pub fn read_name(msg: &[u8], start: usize) -> Option<(String, usize)> {
    let mut at = start;
    let mut after_first_pointer = None;
    let mut jumps = 0usize;
    let mut wire_bytes = 0usize;
    let mut name = String::new();
    loop {
        let len = *msg.get(at)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                if name.is_empty() {
                    name.push('.');
                }
                let end = after_first_pointer.unwrap_or(at.checked_add(1)?);
                return Some((name, end));
            }
            0x00 => {
                let label_at = at.checked_add(1)?;
                let label_end = label_at.checked_add(usize::from(len))?;
                let label = msg.get(label_at..label_end)?;
                wire_bytes = wire_bytes
                    .saturating_add(usize::from(len))
                    .saturating_add(1);
                if wire_bytes > MAX_NAME_BYTES {
                    return None;
                }
                if !name.is_empty() {
                    name.push('.');
                }
                for chunk in label.split_inclusive(|&b| b == b'.') {
                    match chunk.split_last() {
                        Some((b'.', head)) => {
                            name.push_str(&display_safe(head));
                            name.push_str("\\x2e");
                        }
                        _ => name.push_str(&display_safe(chunk)),
                    }
                }
                at = label_end;
            }
            0xC0 => {
                let low = *msg.get(at.checked_add(1)?)?;
                jumps = jumps.saturating_add(1);
                if jumps > MAX_POINTER_JUMPS {
                    return None;
                }
                if after_first_pointer.is_none() {
                    after_first_pointer = Some(at.checked_add(2)?);
                }
                at = usize::from(u16::from_be_bytes([len & 0x3F, low]));
            }
            // 0x40 and 0x80 label types are obsolete or reserved.
            _ => return None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;

    /// A query for `name` (dotted) with `qtype`, id 0x1234.
    pub(crate) fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            m.push(u8::try_from(label.len()).unwrap());
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    /// The response to [`query`]: a CNAME to `cdn.<name>` and an A record 192.0.2.7,
    /// both with compressed names.
    pub(crate) fn response(name: &str) -> Vec<u8> {
        let mut m = query(name, 1);
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 2;
        // CNAME: owner = pointer to the question name at 12; target = "cdn" + pointer.
        m.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, b'c', b'd', b'n']);
        m.extend_from_slice(&[0xC0, 12]);
        let cname_at = u8::try_from(m.len() - 6).unwrap();
        m.extend_from_slice(&[0xC0, cname_at, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        m
    }

    #[test]
    fn query_and_compressed_answers() {
        let q = parse(&query("www.example.test", 28)).unwrap();
        assert_eq!(q.questions, vec![("www.example.test".to_string(), 28)]);
        assert!(!q.is_response);
        let r = parse(&response("www.example.test")).unwrap();
        assert!(r.is_response);
        assert_eq!(r.answers.len(), 2);
        assert_eq!(r.answers[0].data, "cdn.www.example.test");
        assert_eq!(r.answers[1].name, "cdn.www.example.test");
        assert_eq!(
            (r.answers[1].rtype_name, r.answers[1].data.as_str()),
            ("A", "192.0.2.7")
        );
    }

    #[test]
    fn pointer_loops_and_long_names_are_refused() {
        // A name that points at itself.
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[0xC0, 12]);
        assert_eq!(read_name(&m, 12), None);
        // Two pointers pointing at each other.
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[1, b'a', 0xC0, 16, 0xC0, 12]);
        assert_eq!(read_name(&m, 12), None);
        // 300 bytes of labels.
        let mut m = Vec::new();
        for _ in 0..5 {
            m.push(59);
            m.extend_from_slice(&[b'x'; 59]);
        }
        m.push(0);
        assert_eq!(read_name(&m, 0), None);
    }

    #[test]
    fn hostile_label_bytes_are_escaped() {
        let m = [5, 0x1B, b'[', b'2', b'J', b'.', 1, b'\\', 0];
        let (name, end) = read_name(&m, 0).unwrap();
        assert_eq!(name, "\\x1b[2J\\x2e.\\x5c");
        assert_eq!(end, m.len());
        assert_eq!(read_name(&[0], 0).unwrap().0, ".");
    }
}
