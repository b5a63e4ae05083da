//! pcapng blocks (draft-ietf-opsawg-pcapng §4): SHB, IDB, EPB, SPB, the obsolete PB,
//! and the timestamp units an IDB sets. The framing checks (length at both ends, a
//! multiple of 4, inside the file) come first; a block body is read only after them.

use super::{
    array, invalid, read_array, read_vec, Endian, Layout, Packet, PcapError, PcapReader, Step,
    MAX_CAPTURED_BYTES,
};

/// The largest SHB/IDB read, in bytes: their options are short text, never megabytes.
const MAX_HEADER_BLOCK_BYTES: u64 = 1 << 20;
/// The SHB block type is a byte palindrome, readable before the byte order is known.
pub(super) const NG_SHB: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];
/// Written in the SHB in the section's byte order.
pub(super) const NG_BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Block types (§4.2–4.4, Appendix A for PB).
pub(super) const NG_IDB: u32 = 1;
pub(super) const NG_PB: u32 = 2;
pub(super) const NG_SPB: u32 = 3;
pub(super) const NG_EPB: u32 = 6;
/// Option codes: end of options, and the IDB's timestamp resolution and offset.
pub(super) const OPT_END: u16 = 0;
pub(super) const IF_TSRESOL: u16 = 9;
pub(super) const IF_TSOFFSET: u16 = 14;

/// A pcapng interface as its IDB describes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Interface {
    pub(super) link_type: u16,
    /// 0 = no limit.
    pub(super) snap_len: u32,
    /// `if_tsresol`: bit 7 clear = 10^-n s, set = 2^-n s.
    pub(super) ts_resolution: u8,
    /// `if_tsoffset`: seconds added to every timestamp.
    pub(super) ts_offset_s: i64,
}

impl PcapReader<'_> {
    pub(super) fn next_ng(&mut self) -> Step {
        loop {
            let at = self.pos;
            if at >= self.size {
                return Ok(None);
            }
            let head: [u8; 8] = read_array(self.src, self.size, at, "pcapng block header")?;
            let is_shb = head.get(..4) == Some(NG_SHB.as_slice());
            let endian = if is_shb {
                let bom_at = at.saturating_add(8);
                let bom: [u8; 4] = read_array(self.src, self.size, bom_at, "SHB.byte_order_magic")?;
                if u32::from_le_bytes(bom) == NG_BYTE_ORDER_MAGIC {
                    Endian::Little
                } else if u32::from_be_bytes(bom) == NG_BYTE_ORDER_MAGIC {
                    Endian::Big
                } else {
                    let found = format!("{bom:02x?}");
                    return Err(invalid(at, "SHB.byte_order_magic", "1a2b3c4d", found));
                }
            } else {
                match &self.layout {
                    Layout::Ng { endian, .. } => *endian,
                    Layout::Classic { .. } => return Ok(None),
                }
            };
            let block_type = endian.u32(&head, 0);
            let total = endian.u32(&head, 4);
            let left = self.size.saturating_sub(at);
            if total < 12 || total % 4 != 0 {
                let want = "a multiple of 4, at least 12";
                return Err(invalid(at, "block.total_length", want, total));
            }
            if u64::from(total) > left {
                return Err(PcapError::Truncated {
                    offset: at,
                    field: "block.total_length",
                    needed: u64::from(total),
                    available: left,
                });
            }
            let end = at.saturating_add(u64::from(total));
            let trailer: [u8; 4] = read_array(
                self.src,
                self.size,
                end.saturating_sub(4),
                "block trailing length",
            )?;
            let trailing = endian.u32(&trailer, 0);
            if trailing != total {
                return Err(invalid(
                    at,
                    "block.trailing_total_length",
                    &total.to_string(),
                    trailing,
                ));
            }
            self.pos = end;
            let body = Body {
                block_at: at,
                at: at.saturating_add(8),
                len: total.saturating_sub(12),
            };
            let packet = match block_type {
                _ if is_shb => {
                    self.section(endian, body)?;
                    None
                }
                NG_IDB => {
                    self.interface(endian, body)?;
                    None
                }
                NG_EPB => Some(self.enhanced(endian, body, "EPB")?),
                NG_PB => Some(self.enhanced(endian, body, "PB")?),
                NG_SPB => Some(self.simple(endian, body)?),
                _ => None,
            };
            if packet.is_some() {
                return Ok(packet);
            }
        }
    }

    /// SHB: a new section with its own byte order and no interfaces yet.
    fn section(&mut self, endian: Endian, body: Body) -> Result<(), PcapError> {
        let fixed = body.read(self, 16, "SHB body")?;
        let major = endian.u16(&fixed, 4);
        if major != 1 {
            return Err(invalid(body.block_at, "SHB.major_version", "1", major));
        }
        self.layout = Layout::Ng {
            endian,
            interfaces: Vec::new(),
        };
        Ok(())
    }

    /// IDB: link type, snap length and the timestamp options of the next interface.
    fn interface(&mut self, endian: Endian, body: Body) -> Result<(), PcapError> {
        if u64::from(body.len) > MAX_HEADER_BLOCK_BYTES {
            let want = format!("at most {}", MAX_HEADER_BLOCK_BYTES.saturating_add(12));
            return Err(invalid(body.block_at, "IDB.total_length", &want, body.len));
        }
        let bytes = body.read(self, body.len, "IDB body")?;
        if bytes.len() < 8 {
            return Err(invalid(
                body.block_at,
                "IDB.total_length",
                "at least 20",
                body.len,
            ));
        }
        let mut iface = Interface {
            link_type: endian.u16(&bytes, 0),
            snap_len: endian.u32(&bytes, 4),
            ts_resolution: 6,
            ts_offset_s: 0,
        };
        let mut opt = 8usize;
        // Each option takes at least 4 bytes, so this walk ends within the body.
        while let Some(head) = opt.checked_add(4).and_then(|e| bytes.get(opt..e)) {
            let code = endian.u16(head, 0);
            let len = usize::from(endian.u16(head, 2));
            let value_at = opt.saturating_add(4);
            let Some(value) = value_at
                .checked_add(len)
                .and_then(|e| bytes.get(value_at..e))
            else {
                let field = "IDB.option_length";
                return Err(invalid(body.block_at, field, "inside the block", len));
            };
            match (code, value) {
                (OPT_END, _) => break,
                (IF_TSRESOL, [r]) => iface.ts_resolution = *r,
                (IF_TSOFFSET, v) if v.len() == 8 => {
                    let raw = array::<8>(v, 0);
                    iface.ts_offset_s = match endian {
                        Endian::Little => i64::from_le_bytes(raw),
                        Endian::Big => i64::from_be_bytes(raw),
                    };
                }
                _ => {}
            }
            opt = value_at.saturating_add(len.next_multiple_of(4));
        }
        if let Layout::Ng { interfaces, .. } = &mut self.layout {
            interfaces.push(iface);
        }
        Ok(())
    }

    fn iface(&self, block_at: u64, field: &'static str, id: u32) -> Result<Interface, PcapError> {
        let found = match &self.layout {
            Layout::Ng { interfaces, .. } => {
                let i = usize::try_from(id).ok();
                match i.and_then(|i| interfaces.get(i)) {
                    Some(iface) => return Ok(*iface),
                    None => interfaces.len(),
                }
            }
            Layout::Classic { .. } => 0,
        };
        let want = format!("an interface described by an earlier IDB (< {found})");
        Err(invalid(block_at, field, &want, id))
    }

    /// EPB, or the obsolete PB (16-bit interface id and drop count where EPB has 32 bits).
    fn enhanced(&mut self, endian: Endian, body: Body, kind: &'static str) -> PacketResult {
        let is_pb = kind == "PB";
        let (id_field, cap_field) = if is_pb {
            ("PB.interface_id", "PB.captured_len")
        } else {
            ("EPB.interface_id", "EPB.captured_len")
        };
        let fixed = body.read(self, 20, if is_pb { "PB body" } else { "EPB body" })?;
        let interface_id = if is_pb {
            u32::from(endian.u16(&fixed, 0))
        } else {
            endian.u32(&fixed, 0)
        };
        let iface = self.iface(body.block_at, id_field, interface_id)?;
        let ts = (u64::from(endian.u32(&fixed, 4)) << 32) | u64::from(endian.u32(&fixed, 8));
        let cap_len = endian.u32(&fixed, 12);
        let original_len = endian.u32(&fixed, 16);
        let room = body.len.saturating_sub(20);
        if cap_len > room {
            let want = format!("at most the {room} bytes left in the block");
            return Err(invalid(body.block_at, cap_field, &want, cap_len));
        }
        if cap_len > MAX_CAPTURED_BYTES {
            let want = format!("at most {MAX_CAPTURED_BYTES}");
            return Err(invalid(body.block_at, cap_field, &want, cap_len));
        }
        let data_at = body.at.saturating_add(20);
        let captured = read_vec(self.src, self.size, data_at, cap_len, "packet data")?;
        let timestamp_ns = ng_timestamp_ns(ts, &iface);
        Ok(self.packet(
            interface_id,
            iface.link_type,
            timestamp_ns,
            captured,
            original_len,
            body.block_at,
        ))
    }

    /// SPB: interface 0, no timestamp; captured = min(original, snap length, block room).
    fn simple(&mut self, endian: Endian, body: Body) -> PacketResult {
        let fixed = body.read(self, 4, "SPB body")?;
        let original_len = endian.u32(&fixed, 0);
        let iface = self.iface(body.block_at, "SPB (interface 0)", 0)?;
        let mut cap_len = original_len.min(body.len.saturating_sub(4));
        if iface.snap_len != 0 {
            cap_len = cap_len.min(iface.snap_len);
        }
        if cap_len > MAX_CAPTURED_BYTES {
            let want = format!("at most {MAX_CAPTURED_BYTES}");
            return Err(invalid(body.block_at, "SPB.captured_len", &want, cap_len));
        }
        let data_at = body.at.saturating_add(4);
        let captured = read_vec(self.src, self.size, data_at, cap_len, "packet data")?;
        Ok(self.packet(
            0,
            iface.link_type,
            None,
            captured,
            original_len,
            body.block_at,
        ))
    }
}

type PacketResult = Result<Packet, PcapError>;

/// Where a pcapng block's body lies: `len` bytes at `at`, inside the checked block.
#[derive(Debug, Clone, Copy)]
struct Body {
    block_at: u64,
    at: u64,
    len: u32,
}

impl Body {
    /// The first `want` bytes of the body, or `Invalid` naming the block's length.
    fn read(
        &self,
        r: &PcapReader<'_>,
        want: u32,
        field: &'static str,
    ) -> Result<Vec<u8>, PcapError> {
        if self.len < want {
            let expected = format!("at least {}", u64::from(want).saturating_add(12));
            let found = u64::from(self.len).saturating_add(12);
            return Err(invalid(self.block_at, field, &expected, found));
        }
        read_vec(r.src, r.size, self.at, want, field)
    }
}

/// A pcapng timestamp in interface units → ns since the epoch (`None` if out of range).
pub(super) fn ng_timestamp_ns(ts: u64, iface: &Interface) -> Option<u64> {
    let ts = u128::from(ts);
    let exp = u32::from(iface.ts_resolution & 0x7F);
    let ns = if iface.ts_resolution & 0x80 == 0 {
        if exp <= 9 {
            ts.checked_mul(10u128.checked_pow(9 - exp)?)?
        } else {
            // 10^39 and up exceed any u64 tick count: the result is 0.
            10u128.checked_pow(exp - 9).map_or(0, |d| ts / d)
        }
    } else {
        ts.checked_mul(1_000_000_000)?.checked_shr(exp)?
    };
    let offset_ns = i128::from(iface.ts_offset_s).checked_mul(1_000_000_000)?;
    let ns = i128::try_from(ns).ok()?.checked_add(offset_ns)?;
    u64::try_from(ns).ok()
}
