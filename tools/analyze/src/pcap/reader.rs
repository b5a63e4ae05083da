//! Streaming reader for classic pcap and pcapng captures, over [`ReadAt`].
//!
//! Classic pcap (<https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/>): a 24-byte
//! global header (magic `a1b2c3d4` for microsecond or `a1b23c4d` for nanosecond
//! timestamps, in the writer's byte order; the link type is global), then a 16-byte
//! record header per packet.
//!
//! pcapng (<https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/>): blocks framed by
//! their length at both ends. A Section Header Block (SHB) fixes the byte order and
//! resets the interfaces; an Interface Description Block (IDB) gives each interface its
//! link type and timestamp resolution (`if_tsresol`, `if_tsoffset`); packets come in
//! Enhanced (EPB), Simple (SPB, no timestamp) or obsolete Packet Blocks (PB). Other
//! blocks are skipped.
//!
//! The file is evidence from untrusted hands: every length is checked against what is
//! left of the file before anything is allocated, each step moves forward at least 12
//! bytes (so iteration ends), and the first structural error is yielded once and ends the
//! iteration: after a bad length nothing further can be framed reliably.

use serde::Serialize;
use std::io;
use vestige_evidence::read_at::ReadAt;

mod pcapng;
use pcapng::{Interface, NG_SHB};

/// The largest packet kept, in bytes. Real link MTUs (even 64 KiB loopback and TSO
/// super-frames) fit; anything larger is a corrupt or hostile length.
pub const MAX_CAPTURED_BYTES: u32 = 256 * 1024;

pub(crate) const PCAP_MICRO: u32 = 0xA1B2_C3D4;
pub(crate) const PCAP_NANO: u32 = 0xA1B2_3C4D;

/// Why reading a capture stopped. Offsets are absolute byte offsets in the file: of the
/// record or block concerned, which `field` then names (`EPB.captured_len`).
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The source failed to read.
    #[error("capture at byte {offset}: cannot read {field}")]
    Read {
        offset: u64,
        field: &'static str,
        #[source]
        source: io::Error,
    },
    /// A structure runs past the end of the file.
    #[error(
        "capture at byte {offset}: {field} needs {needed} bytes, {available} left in the file"
    )]
    Truncated {
        offset: u64,
        field: &'static str,
        needed: u64,
        available: u64,
    },
    /// A field holds a value the format does not allow.
    #[error("capture at byte {offset}: {field}: expected {expected}, found {found}")]
    Invalid {
        offset: u64,
        field: &'static str,
        expected: String,
        found: String,
    },
    /// The file starts with neither pcap nor pcapng magic.
    #[error("capture at byte 0: not pcap or pcapng, magic {found:02x?}")]
    UnknownMagic { found: [u8; 4] },
    /// An error in the named capture file.
    #[error("{path}")]
    InFile {
        path: String,
        #[source]
        source: Box<PcapError>,
    },
}

/// Which container the capture is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureFormat {
    /// Classic pcap, microsecond timestamps.
    Pcap,
    /// Classic pcap, nanosecond timestamps.
    PcapNanosecond,
    /// pcapng.
    PcapNg,
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Packet {
    /// 0-based position among the packets of the file.
    pub index: u64,
    /// pcapng interface (index into the section's IDBs); 0 for classic pcap.
    pub interface_id: u32,
    /// LINKTYPE_* value (<https://www.tcpdump.org/linktypes.html>).
    pub link_type: u16,
    /// Nanoseconds since the Unix epoch; `None` for Simple Packet Blocks or a timestamp
    /// outside the u64 range.
    pub timestamp_ns: Option<u64>,
    /// The bytes kept by the capture (at most [`MAX_CAPTURED_BYTES`]).
    #[serde(serialize_with = "as_hex")]
    pub captured: Vec<u8>,
    /// The packet's length on the wire, as recorded (untrusted: may be below `captured`).
    pub original_len: u32,
    /// Byte offset of the packet's record or block in the file.
    pub file_offset: u64,
}

fn as_hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let a = array::<2>(b, at);
        match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        }
    }
    fn u32(self, b: &[u8], at: usize) -> u32 {
        let a = array::<4>(b, at);
        match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        }
    }
}

/// `N` bytes at `at`; zeros past the end. Callers read only from buffers whose length
/// they have already checked, so the fallback is never taken for a valid read.
fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    at.checked_add(N)
        .and_then(|end| b.get(at..end))
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

#[derive(Debug)]
enum Layout {
    Classic {
        endian: Endian,
        nanosecond: bool,
        link_type: u16,
    },
    Ng {
        endian: Endian,
        interfaces: Vec<Interface>,
    },
}

/// Iterates over the packets of a pcap or pcapng file; see the module docs.
pub struct PcapReader<'a> {
    src: &'a dyn ReadAt,
    size: u64,
    format: CaptureFormat,
    layout: Layout,
    pos: u64,
    next_index: u64,
    finished: bool,
}

impl std::fmt::Debug for PcapReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapReader")
            .field("size", &self.size)
            .field("format", &self.format)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<'a> PcapReader<'a> {
    /// Recognises the format and reads the classic global header.
    ///
    /// # Errors
    /// [`PcapError::UnknownMagic`] for other files; `Truncated`/`Invalid`/`Read` for a
    /// damaged header.
    pub fn new(src: &'a dyn ReadAt) -> Result<Self, PcapError> {
        let size = src.size();
        let magic: [u8; 4] = read_array(src, size, 0, "file magic")?;
        let mut reader = Self {
            src,
            size,
            format: CaptureFormat::PcapNg,
            // Replaced by the first SHB, which the magic check proves is there.
            layout: Layout::Ng {
                endian: Endian::Little,
                interfaces: Vec::new(),
            },
            pos: 0,
            next_index: 0,
            finished: false,
        };
        if magic == NG_SHB {
            return Ok(reader);
        }
        let (endian, nanosecond) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
            (PCAP_MICRO, _) => (Endian::Little, false),
            (PCAP_NANO, _) => (Endian::Little, true),
            (_, PCAP_MICRO) => (Endian::Big, false),
            (_, PCAP_NANO) => (Endian::Big, true),
            _ => return Err(PcapError::UnknownMagic { found: magic }),
        };
        let header: [u8; 24] = read_array(src, size, 0, "pcap global header")?;
        let major = endian.u16(&header, 4);
        if major != 2 {
            return Err(invalid(0, "pcap header.version_major", "2", major));
        }
        // The low 16 bits are the link type; the upper ones carry FCS information.
        let network = endian.u32(&header, 20);
        let link_type = u16::try_from(network & 0xFFFF).unwrap_or(u16::MAX);
        reader.format = if nanosecond {
            CaptureFormat::PcapNanosecond
        } else {
            CaptureFormat::Pcap
        };
        reader.layout = Layout::Classic {
            endian,
            nanosecond,
            link_type,
        };
        reader.pos = 24;
        Ok(reader)
    }

    /// The container format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Byte offset of the next record or block to read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn next_classic(&mut self, endian: Endian, nanosecond: bool, link_type: u16) -> Step {
        let at = self.pos;
        if at >= self.size {
            return Ok(None);
        }
        let hdr: [u8; 16] = read_array(self.src, self.size, at, "pcap record header")?;
        let ts_s = u64::from(endian.u32(&hdr, 0));
        let ts_frac = u64::from(endian.u32(&hdr, 4));
        let incl_len = endian.u32(&hdr, 8);
        let original_len = endian.u32(&hdr, 12);
        if incl_len > MAX_CAPTURED_BYTES {
            let want = format!("at most {MAX_CAPTURED_BYTES}");
            return Err(invalid(at, "pcap record.incl_len", &want, incl_len));
        }
        let data_at = at.saturating_add(16);
        let captured = read_vec(self.src, self.size, data_at, incl_len, "pcap record data")?;
        self.pos = data_at.saturating_add(u64::from(incl_len));
        let frac_ns = if nanosecond {
            Some(ts_frac)
        } else {
            ts_frac.checked_mul(1000)
        };
        let timestamp_ns = ts_s
            .checked_mul(1_000_000_000)
            .zip(frac_ns)
            .and_then(|(s, f)| s.checked_add(f));
        Ok(Some(self.packet(
            0,
            link_type,
            timestamp_ns,
            captured,
            original_len,
            at,
        )))
    }

    fn packet(
        &mut self,
        interface_id: u32,
        link_type: u16,
        timestamp_ns: Option<u64>,
        captured: Vec<u8>,
        original_len: u32,
        file_offset: u64,
    ) -> Packet {
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        Packet {
            index,
            interface_id,
            link_type,
            timestamp_ns,
            captured,
            original_len,
            file_offset,
        }
    }
}

type Step = Result<Option<Packet>, PcapError>;

impl Iterator for PcapReader<'_> {
    type Item = Result<Packet, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let step = match self.layout {
            Layout::Classic {
                endian,
                nanosecond,
                link_type,
            } => self.next_classic(endian, nanosecond, link_type),
            Layout::Ng { .. } => self.next_ng(),
        };
        match step {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(e) => {
                self.finished = true;
                Some(Err(e))
            }
        }
    }
}

fn invalid(offset: u64, field: &'static str, expected: &str, found: impl ToString) -> PcapError {
    PcapError::Invalid {
        offset,
        field,
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

fn read_array<const N: usize>(
    src: &dyn ReadAt,
    size: u64,
    at: u64,
    field: &'static str,
) -> Result<[u8; N], PcapError> {
    let v = read_vec(src, size, at, u32::try_from(N).unwrap_or(u32::MAX), field)?;
    Ok(array::<N>(&v, 0))
}

/// Reads `len` bytes at `at` after checking they lie inside the file, so a hostile
/// length can never make us allocate more than the file holds.
fn read_vec(
    src: &dyn ReadAt,
    size: u64,
    at: u64,
    len: u32,
    field: &'static str,
) -> Result<Vec<u8>, PcapError> {
    let available = size.saturating_sub(at);
    let truncated = || PcapError::Truncated {
        offset: at,
        field,
        needed: u64::from(len),
        available,
    };
    if u64::from(len) > available {
        return Err(truncated());
    }
    let n = usize::try_from(len).map_err(|_| truncated())?;
    let mut buf = vec![0u8; n];
    src.read_exact_at(&mut buf, at)
        .map_err(|source| PcapError::Read {
            offset: at,
            field,
            source,
        })?;
    Ok(buf)
}

#[cfg(test)]
#[path = "reader_tests.rs"]
pub(crate) mod tests;
