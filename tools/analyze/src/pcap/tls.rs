//! The server name a TLS client asks for: the `server_name` extension (RFC 6066 §3) of a
//! ClientHello (RFC 8446 §4.1.2, same layout in TLS 1.0–1.2), read only when the whole
//! handshake record is in one TCP segment (no reassembly: a summary, not a dissector).

/// What a ClientHello said, as far as the summary keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The record layer version (`0x0301` for most clients, whatever TLS they offer).
    pub record_version: u16,
    /// The `legacy_version` field of the ClientHello.
    pub client_version: u16,
    /// The first `host_name` entry of `server_name`, raw bytes (not yet display-safe).
    pub server_name: Option<&'a [u8]>,
}

const RECORD_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST_NAME: u8 = 0;

/// A cursor over a slice whose every read is checked.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        match self.take(2)? {
            &[hi, lo] => Some(u16::from_be_bytes([hi, lo])),
            _ => None,
        }
    }
    fn u24(&mut self) -> Option<usize> {
        match self.take(3)? {
            &[a, b, c] => usize::try_from(u32::from_be_bytes([0, a, b, c])).ok(),
            _ => None,
        }
    }
    /// A vector with a `width`-byte length prefix (RFC 8446 §3.4).
    fn vector(&mut self, width: usize) -> Option<&'a [u8]> {
        let len = match width {
            1 => usize::from(self.u8()?),
            _ => usize::from(self.u16()?),
        };
        self.take(len)
    }
}

/// Parses a TCP payload that starts a TLS handshake record holding a ClientHello.
/// `None` for anything else, or when the record continues in a later segment.
#[must_use]
pub fn client_hello(payload: &[u8]) -> Option<ClientHello<'_>> {
    let mut rec = Cursor(payload);
    if rec.u8()? != RECORD_HANDSHAKE {
        return None;
    }
    let record_version = rec.u16()?;
    if record_version >> 8 != 3 {
        return None;
    }
    let record_len = usize::from(rec.u16()?);
    let mut hs = Cursor(rec.take(record_len)?);
    if hs.u8()? != HANDSHAKE_CLIENT_HELLO {
        return None;
    }
    let body_len = hs.u24()?;
    let mut body = Cursor(hs.take(body_len)?);
    let client_version = body.u16()?;
    body.take(32)?; // random
    body.vector(1)?; // legacy_session_id
    body.vector(2)?; // cipher_suites
    body.vector(1)?; // legacy_compression_methods
    let mut hello = ClientHello {
        record_version,
        client_version,
        server_name: None,
    };
    // SSL 3.0-era hellos may end here, without extensions.
    let Some(extensions) = body.vector(2) else {
        return Some(hello);
    };
    let mut ext = Cursor(extensions);
    while let (Some(kind), Some(data)) = (ext.u16(), ext.vector(2)) {
        if kind != EXT_SERVER_NAME {
            continue;
        }
        let mut list = Cursor(Cursor(data).vector(2)?);
        while let (Some(name_type), Some(name)) = (list.u8(), list.vector(2)) {
            if name_type == NAME_TYPE_HOST_NAME {
                hello.server_name = Some(name);
                break;
            }
        }
        break;
    }
    Some(hello)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A minimal TLS 1.2-style ClientHello record asking for `sni`.
    pub(crate) fn client_hello_record(sni: &[u8]) -> Vec<u8> {
        let name_len = u16::try_from(sni.len()).unwrap();
        let mut sni_ext = Vec::new();
        sni_ext.extend_from_slice(&(name_len + 3).to_be_bytes());
        sni_ext.push(NAME_TYPE_HOST_NAME);
        sni_ext.extend_from_slice(&name_len.to_be_bytes());
        sni_ext.extend_from_slice(sni);
        let mut exts = Vec::new();
        // An unrelated extension first (supported_groups), then server_name.
        exts.extend_from_slice(&[0x00, 0x0A, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1D]);
        exts.extend_from_slice(&EXT_SERVER_NAME.to_be_bytes());
        exts.extend_from_slice(&u16::try_from(sni_ext.len()).unwrap().to_be_bytes());
        exts.extend_from_slice(&sni_ext);
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x5A; 32]);
        body.extend_from_slice(&[0]); // no session id
        body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]);
        body.extend_from_slice(&[0x01, 0x00]);
        body.extend_from_slice(&u16::try_from(exts.len()).unwrap().to_be_bytes());
        body.extend_from_slice(&exts);
        let body_len = u32::try_from(body.len()).unwrap().to_be_bytes();
        let mut hs = vec![HANDSHAKE_CLIENT_HELLO];
        hs.extend_from_slice(&body_len[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![RECORD_HANDSHAKE, 0x03, 0x01];
        rec.extend_from_slice(&u16::try_from(hs.len()).unwrap().to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn finds_the_server_name() {
        let rec = client_hello_record(b"sni.example.test");
        let hello = client_hello(&rec).unwrap();
        assert_eq!(hello.server_name, Some(&b"sni.example.test"[..]));
        assert_eq!(
            (hello.record_version, hello.client_version),
            (0x0301, 0x0303)
        );
    }

    #[test]
    fn split_or_cut_records_are_ignored() {
        let rec = client_hello_record(b"a.test");
        for cut in 0..rec.len() {
            assert_eq!(client_hello(rec.get(..cut).unwrap()), None, "cut at {cut}");
        }
        assert_eq!(client_hello(b"GET / HTTP/1.1\r\n"), None);
    }
}
