//! HTTP/1.x request lines (RFC 9112 §3) and their `Host` header (RFC 9110 §7.2), read
//! from the first TCP segment of a request: enough to say which site a client visited
//! over cleartext HTTP.

/// Methods recognised at the start of a segment. A fixed list (not "any token") keeps
/// arbitrary binary payloads from being taken for requests.
const METHODS: [&str; 8] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH",
];
/// Header bytes searched for `Host:`; a request's headers fit in far less.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A request line and Host header, raw (not yet display-safe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method token.
    pub method: &'static str,
    /// The request target (path, absolute URI or authority), up to the next space.
    pub target: &'a [u8],
    /// The `Host` header's value, trimmed, if it is in this segment.
    pub host: Option<&'a [u8]>,
}

/// Parses a TCP payload that starts with `METHOD SP`; `None` otherwise.
#[must_use]
pub fn request(payload: &[u8]) -> Option<Request<'_>> {
    let method = METHODS
        .iter()
        .copied()
        .find(|m| payload.strip_prefix(m.as_bytes()).and_then(|r| r.first()) == Some(&b' '))?;
    let head = payload.get(..payload.len().min(MAX_HEAD_BYTES))?;
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next()?;
    let after_method = request_line.get(method.len().saturating_add(1)..)?;
    let target = after_method
        .split(|&b| b == b' ')
        .next()
        .unwrap_or_default();
    let host = lines.take_while(|l| !l.is_empty()).find_map(|line| {
        let (name, value) = line.split_at_checked(5)?;
        name.eq_ignore_ascii_case(b"host:")
            .then(|| value.trim_ascii())
    });
    Some(Request {
        method,
        target,
        host,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_line_and_host() {
        let r = request(b"GET /a?b=c HTTP/1.1\r\nUser-Agent: x\r\nhOsT:  example.test \r\n\r\n")
            .unwrap();
        assert_eq!((r.method, r.target), ("GET", &b"/a?b=c"[..]));
        assert_eq!(r.host, Some(&b"example.test"[..]));
    }

    #[test]
    fn host_after_the_blank_line_is_body_not_header() {
        let r = request(b"POST /x HTTP/1.1\r\n\r\nHost: evil\r\n").unwrap();
        assert_eq!(r.host, None);
        assert_eq!(request(b"GETTER / HTTP/1.1\r\n"), None);
        assert_eq!(request(b"\x16\x03\x01"), None);
    }
}
