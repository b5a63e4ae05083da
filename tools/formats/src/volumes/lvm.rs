//! LVM2: physical volumes found by their label, the volume-group metadata in their
//! metadata areas, and the logical volumes it describes (lib/format_text/layout.h,
//! format-text.c, import_vsn1.c of LVM2).
//!
//! A PV starts with a label (`LABELONE`, in one of its first four sectors) pointing to the
//! PV header: its UUID, size, data areas and metadata areas. A metadata area opens with
//! an `mda_header` (checksummed) whose first `raw_locn` gives the offset and size of the
//! current metadata text inside the area's circular buffer. The text (checksummed) is
//! parsed with a bounded parser; each VG keeps the copy with the highest `seqno`.
//!
//! Nothing is activated and nothing is written: this reads the bytes an examiner holds.

use super::lvm_config::{self, Section, Value};
use super::{crc, Layout, SlotKind};
use crate::bytes::{le_u32, le_u64};
use crate::{FormatError, ReadAt};
use serde::Serialize;

/// Sectors searched for the label.
const LABEL_SCAN_SECTORS: u64 = 4;
const SECTOR: u64 = 512;
/// Bytes of the `mda_header` (the circular buffer starts after it).
const MDA_HEADER_SIZE: u64 = 512;
const MDA_MAGIC: &[u8; 16] = b"\x20\x4c\x56\x4d\x32\x20\x78\x5b\x35\x41\x25\x72\x30\x4e\x2a\x3e";
/// Metadata text read at most (LVM's default area is 1 MiB).
pub(crate) const MAX_METADATA_BYTES: u64 = 16 << 20;
/// Metadata text read in all, over every PV.
pub(crate) const MAX_TOTAL_METADATA_BYTES: u64 = 64 << 20;
/// Metadata areas per PV considered (LVM writes at most two).
const MAX_MDAS: usize = 8;
/// Partitions and disks searched for PVs at most.
const MAX_PV_CANDIDATES: usize = 4096;
/// PVs, LVs and segments kept per VG at most.
pub(crate) const MAX_ITEMS: usize = 65_536;

/// A PV found in the image by its label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhysicalVolume {
    /// Its UUID as LVM prints it (`xxxxxx-xxxx-…`).
    pub uuid: String,
    /// Where it starts on the disk, in bytes.
    pub start_bytes: u64,
    /// Its size in bytes (its header's, limited by the partition holding it).
    pub size_bytes: u64,
    /// The layout slot (partition) holding it; `None` for the whole disk.
    pub slot: Option<usize>,
    /// The VG its metadata names, if any was read.
    pub vg_name: Option<String>,
}

/// A volume group, from the newest metadata copy found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeGroup {
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub id: String,
    /// The metadata sequence number of the copy used.
    pub seqno: u64,
    /// Sectors (512 bytes) per extent.
    pub extent_size_sectors: u64,
    /// Its PVs as the metadata lists them, matched to the PVs found.
    pub pvs: Vec<VgPv>,
    /// Names of its PVs not found in this image (their LVs' parts there cannot be read).
    pub missing_pvs: Vec<String>,
    /// Its logical volumes.
    pub lvs: Vec<LogicalVolume>,
}

/// A PV as the VG metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VgPv {
    /// Its name in the metadata (`pv0`).
    pub name: String,
    /// Its UUID.
    pub id: String,
    /// The device it was on when the metadata was written (a hint only).
    pub device_hint: Option<String>,
    /// Sector (512 bytes) of its first extent, from its start.
    pub pe_start_sectors: u64,
    /// Extents.
    pub pe_count: u64,
    /// Where it is on this disk: start and size in bytes, if found.
    pub found_at: Option<(u64, u64)>,
}

/// A logical volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogicalVolume {
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub id: String,
    /// Its status flags (`READ`, `WRITE`, `VISIBLE`).
    pub status: Vec<String>,
    /// Bytes (its extents × the extent size).
    pub size_bytes: u64,
    /// Its segments, by start extent.
    pub segments: Vec<LvSegment>,
}

/// A run of an LV's extents and where they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LvSegment {
    /// First LV extent.
    pub start_extent: u64,
    /// Extents.
    pub extent_count: u64,
    /// Its type: `striped` (linear is one stripe), or `thin`, `raid1`, `mirror`, …
    pub seg_type: String,
    /// Sectors per stripe chunk (striped with more than one stripe).
    pub stripe_size_sectors: Option<u64>,
    /// The stripes: PV name and first PV extent.
    pub stripes: Vec<Stripe>,
    /// Why it is not readable here, for types other than `striped`.
    pub note: Option<String>,
}

/// One stripe of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stripe {
    /// The PV's name in the metadata.
    pub pv: String,
    /// First extent on that PV.
    pub start_extent: u64,
}

impl LogicalVolume {
    /// Whether every segment is `striped` (so [`super::LvReader`] can read it).
    #[must_use]
    pub fn is_readable(&self) -> bool {
        self.segments.iter().all(|s| s.seg_type == "striped")
    }
}

/// The LVM UUID text form: 32 characters grouped 6-4-4-4-4-4-6.
fn uuid_text(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if matches!(i, 6 | 10 | 14 | 18 | 22 | 26) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

fn bare_uuid(s: &str) -> String {
    s.chars().filter(|&c| c != '-').collect()
}

/// A parsed metadata copy and where it came from.
struct Copy {
    at: u64,
    vg_name: String,
    vg: Section,
}

/// Looks for PVs on every partition (or the whole disk when there is no table), reads their
/// metadata, and fills `layout.physical_volumes` and `layout.volume_groups`.
pub(crate) fn scan(disk: &dyn ReadAt, layout: &mut Layout) -> Result<(), FormatError> {
    let mut candidates: Vec<(Option<usize>, u64, u64)> = Vec::new();
    if layout.scheme == super::Scheme::None {
        candidates.push((None, 0, disk.size()));
    }
    for (i, s) in layout.slots.iter().enumerate() {
        if s.kind == SlotKind::Partition && candidates.len() < MAX_PV_CANDIDATES {
            if let Ok((start, len)) = layout.slot_bytes(i) {
                let end = start.saturating_add(len).min(disk.size());
                candidates.push((Some(i), start, end.saturating_sub(start)));
            }
        }
    }
    let mut copies = Vec::new();
    // Each area is read once (hostile PVs may all point at the same one), and the text
    // parsed in all is bounded.
    let mut areas_read = std::collections::HashSet::new();
    let mut budget = MAX_TOTAL_METADATA_BYTES;
    for (slot, start, len) in candidates {
        if let Some((pv, mdas)) = read_pv(disk, layout, slot, start, len)? {
            let idx = layout.physical_volumes.len();
            layout.physical_volumes.push(pv);
            for (at, mda_size, avail_end) in mdas {
                if !areas_read.insert(at) {
                    continue;
                }
                if budget == 0 {
                    layout.warnings.push(super::Warning {
                        offset_bytes: at,
                        field: "LVM mda_header".to_string(),
                        message: format!(
                            "more than {MAX_TOTAL_METADATA_BYTES} bytes of metadata text already read: area skipped"
                        ),
                    });
                    continue;
                }
                if let Some(c) = read_metadata(disk, layout, at, mda_size, avail_end, &mut budget)?
                {
                    if let Some(p) = layout.physical_volumes.get_mut(idx) {
                        p.vg_name = Some(c.vg_name.clone());
                    }
                    copies.push(c);
                }
            }
        }
    }
    build_groups(layout, copies);
    Ok(())
}

/// The PV whose label is in the first sectors of `start..start+len`, with its metadata
/// areas as (area start on disk, area size, disk byte where the PV's readable bytes end).
#[allow(clippy::type_complexity)]
fn read_pv(
    disk: &dyn ReadAt,
    layout: &mut Layout,
    slot: Option<usize>,
    start: u64,
    len: u64,
) -> Result<Option<(PhysicalVolume, Vec<(u64, u64, u64)>)>, FormatError> {
    let path = layout.path.clone();
    for i in 0..LABEL_SCAN_SECTORS {
        let rel = i * SECTOR;
        if rel + SECTOR > len {
            return Ok(None);
        }
        let at = start.saturating_add(rel);
        let mut s = [0u8; 512];
        disk.read_exact_at(&mut s, at)
            .map_err(FormatError::io(&path, "read an LVM label"))?;
        if s.get(..8) != Some(b"LABELONE".as_slice()) {
            continue;
        }
        let warn = |layout: &mut Layout, off: u64, field: &str, m: String| {
            layout.warnings.push(super::Warning {
                offset_bytes: at + off,
                field: field.to_string(),
                message: m,
            });
        };
        let crc = crc::lvm(s.get(20..).unwrap_or_default());
        if crc != le_u32(&s, 16)
            || le_u64(&s, 8) != i
            || s.get(24..32) != Some(b"LVM2 001".as_slice())
        {
            warn(
                layout,
                16,
                "LVM label_header",
                format!(
                    "a LABELONE label with CRC 0x{crc:08x} (field 0x{:08x}), sector field {} (read at {i}), type {:?}: ignored",
                    le_u32(&s, 16),
                    le_u64(&s, 8),
                    String::from_utf8_lossy(s.get(24..32).unwrap_or_default())
                ),
            );
            continue;
        }
        let hdr = usize::try_from(le_u32(&s, 20)).unwrap_or(usize::MAX);
        let Some(pvh) = s.get(hdr..).filter(|p| p.len() >= 40 + 16) else {
            warn(
                layout,
                20,
                "LVM label_header.offset_xl",
                format!("{hdr}: the PV header does not fit in the label sector"),
            );
            continue;
        };
        let uuid = uuid_text(pvh.get(..32).unwrap_or_default());
        let device_size = le_u64(pvh, 32);
        // Data areas, then metadata areas, each list ended by an all-zero entry.
        let mut pos = 40usize;
        let mut lists: [Vec<(u64, u64)>; 2] = [Vec::new(), Vec::new()];
        for list in &mut lists {
            while pvh.get(pos..pos + 16).is_some() {
                let (off, size) = (le_u64(pvh, pos), le_u64(pvh, pos + 8));
                pos += 16;
                if off == 0 {
                    break;
                }
                list.push((off, size));
            }
        }
        let size = if device_size == 0 {
            len
        } else {
            device_size.min(len)
        };
        if device_size > len {
            warn(
                layout,
                u64::try_from(hdr).unwrap_or(0) + 32,
                "LVM pv_header.device_size",
                format!("the PV {uuid} claims {device_size} bytes, the space holding it has {len}"),
            );
        }
        let mut mdas = Vec::new();
        let pvh_at = u64::try_from(hdr).unwrap_or(0);
        for (off, msize) in lists[1].iter().take(MAX_MDAS) {
            let header_fits = off.checked_add(MDA_HEADER_SIZE).is_some_and(|e| e <= len);
            match start.checked_add(*off) {
                Some(a) if header_fits && *msize > MDA_HEADER_SIZE => {
                    if off.checked_add(*msize).is_none_or(|e| e > len) {
                        warn(
                            layout,
                            pvh_at,
                            "LVM pv_header.metadata_area",
                            format!(
                                "the metadata area at PV byte {off} of {msize} bytes runs past the PV's {len} bytes: read as far as it goes"
                            ),
                        );
                    }
                    mdas.push((a, *msize, start.saturating_add(len)));
                }
                _ => warn(
                    layout,
                    pvh_at,
                    "LVM pv_header.metadata_area",
                    format!(
                        "the metadata area at PV byte {off} of {msize} bytes is not inside the PV ({len} bytes)"
                    ),
                ),
            }
        }
        let pv = PhysicalVolume {
            uuid,
            start_bytes: start,
            size_bytes: size,
            slot,
            vg_name: None,
        };
        return Ok(Some((pv, mdas)));
    }
    Ok(None)
}

/// The current metadata text of the area at `mda_start` (disk bytes), parsed.
fn read_metadata(
    disk: &dyn ReadAt,
    layout: &mut Layout,
    mda_start: u64,
    mda_size: u64,
    avail_end: u64,
    budget: &mut u64,
) -> Result<Option<Copy>, FormatError> {
    let at = mda_start;
    let path = layout.path.clone();
    let warn = |layout: &mut Layout, off: u64, field: &str, m: String| {
        layout.warnings.push(super::Warning {
            offset_bytes: off,
            field: field.to_string(),
            message: m,
        });
    };
    let mut h = [0u8; 512];
    disk.read_exact_at(&mut h, at)
        .map_err(FormatError::io(&path, "read an LVM metadata area header"))?;
    let crc = crc::lvm(h.get(4..).unwrap_or_default());
    if h.get(4..20) != Some(MDA_MAGIC.as_slice()) || crc != le_u32(&h, 0) {
        warn(
            layout,
            at,
            "LVM mda_header",
            format!("bad magic or checksum (computed 0x{crc:08x}, field 0x{:08x}): metadata area ignored", le_u32(&h, 0)),
        );
        return Ok(None);
    }
    let (offset, size, text_crc, flags) = (
        le_u64(&h, 40),
        le_u64(&h, 48),
        le_u32(&h, 56),
        le_u32(&h, 60),
    );
    if offset == 0 && size == 0 {
        return Ok(None);
    }
    let buffer = mda_size - MDA_HEADER_SIZE;
    if flags & 1 != 0 {
        warn(
            layout,
            at + 60,
            "LVM raw_locn.flags",
            "the metadata is marked ignored (RAW_LOCN_IGNORED); read anyway".to_string(),
        );
    }
    if offset < MDA_HEADER_SIZE
        || offset >= mda_size
        || size > buffer
        || size > MAX_METADATA_BYTES
        || size == 0
    {
        warn(
            layout,
            at + 40,
            "LVM raw_locn",
            format!("metadata at area offset {offset} of {size} bytes does not fit the {mda_size}-byte area (cap {MAX_METADATA_BYTES})"),
        );
        return Ok(None);
    }
    // The circular buffer: the text may wrap from the area's end to just after the header.
    let first = size.min(mda_size - offset);
    let second = size - first;
    let inside = |from: u64, n: u64| n == 0 || from.checked_add(n).is_some_and(|e| e <= avail_end);
    if !inside(mda_start + offset, first) || !inside(mda_start + MDA_HEADER_SIZE, second) {
        warn(
            layout,
            at + 40,
            "LVM raw_locn",
            format!(
                "metadata at area offset {offset} of {size} bytes runs past the PV's readable end (disk byte {avail_end})"
            ),
        );
        return Ok(None);
    }
    *budget = budget.saturating_sub(size);
    let mut text = vec![0u8; usize::try_from(size).unwrap_or(0)];
    let (a, b) = text.split_at_mut(usize::try_from(first).unwrap_or(0));
    disk.read_exact_at(a, mda_start + offset)
        .map_err(FormatError::io(&path, "read LVM metadata"))?;
    disk.read_exact_at(b, mda_start + MDA_HEADER_SIZE)
        .map_err(FormatError::io(&path, "read LVM metadata"))?;
    let crc = crc::lvm(&text);
    if crc != text_crc {
        warn(
            layout,
            at + 56,
            "LVM raw_locn.checksum",
            format!("the metadata text has checksum 0x{crc:08x}, the field says 0x{text_crc:08x}: ignored"),
        );
        return Ok(None);
    }
    let text_at = mda_start + offset;
    let top = match lvm_config::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            warn(
                layout,
                text_at + e.offset as u64,
                "LVM metadata text",
                e.reason,
            );
            return Ok(None);
        }
    };
    let Some((name, vg)) = top
        .sections()
        .find(|(_, s)| s.get("physical_volumes").is_some())
    else {
        warn(
            layout,
            text_at,
            "LVM metadata text",
            "no volume group section".to_string(),
        );
        return Ok(None);
    };
    Ok(Some(Copy {
        at: text_at,
        vg_name: name.to_string(),
        vg: vg.clone(),
    }))
}

/// One VG per id, from its copy with the highest seqno.
fn build_groups(layout: &mut Layout, copies: Vec<Copy>) {
    let mut best: Vec<Copy> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for c in copies {
        let id = c.vg.str("id").unwrap_or_default().to_string();
        let seq = c.vg.int("seqno").unwrap_or(0);
        let known = index.get(&id).copied();
        if known.is_none() {
            index.insert(id.clone(), best.len());
        }
        match known.and_then(|i| best.get_mut(i)) {
            Some(b) => {
                let bseq = b.vg.int("seqno").unwrap_or(0);
                if seq != bseq {
                    layout.warnings.push(super::Warning {
                        offset_bytes: if seq < bseq { c.at } else { b.at },
                        field: "LVM metadata seqno".to_string(),
                        message: format!(
                            "VG {id}: copies with seqno {seq} and {bseq}; the newest is used"
                        ),
                    });
                }
                if seq > bseq {
                    *b = c;
                }
            }
            None => best.push(c),
        }
    }
    for c in best {
        let vg = build_vg(layout, &c);
        layout.volume_groups.push(vg);
    }
}

/// A non-negative integer setting, or 0 with a note.
fn uint(notes: &mut Vec<String>, s: &Section, key: &str, what: &str) -> u64 {
    match s.int(key).map(u64::try_from) {
        Some(Ok(v)) => v,
        _ => {
            notes.push(format!(
                "{what}.{key}: missing or not a non-negative integer"
            ));
            0
        }
    }
}

fn build_vg(layout: &mut Layout, c: &Copy) -> VolumeGroup {
    let mut notes: Vec<String> = Vec::new();
    let vg = &c.vg;
    let extent_size = uint(&mut notes, vg, "extent_size", &c.vg_name);
    // The first PV found with each UUID (a hostile image may repeat one).
    let mut by_uuid = std::collections::HashMap::new();
    for f in &layout.physical_volumes {
        by_uuid
            .entry(bare_uuid(&f.uuid))
            .or_insert((f.start_bytes, f.size_bytes));
    }
    let mut pvs = Vec::new();
    for (name, p) in vg
        .section("physical_volumes")
        .map(|s| s.sections().take(MAX_ITEMS).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let id = p.str("id").unwrap_or_default().to_string();
        let found_at = by_uuid.get(&bare_uuid(&id)).copied();
        pvs.push(VgPv {
            name: name.to_string(),
            device_hint: p.str("device").map(str::to_string),
            pe_start_sectors: uint(&mut notes, p, "pe_start", name),
            pe_count: uint(&mut notes, p, "pe_count", name),
            id,
            found_at,
        });
    }
    let missing_pvs: Vec<String> = pvs
        .iter()
        .filter(|p| p.found_at.is_none())
        .map(|p| p.name.clone())
        .collect();
    let mut lvs = Vec::new();
    for (name, l) in vg
        .section("logical_volumes")
        .map(|s| s.sections().take(MAX_ITEMS).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let mut segments = Vec::new();
        for (_, s) in l.sections().take(MAX_ITEMS) {
            let seg_type = s.str("type").unwrap_or("?").to_string();
            let mut stripes = Vec::new();
            if let Some(list) = s.list("stripes") {
                for pair in list.chunks(2).take(MAX_ITEMS) {
                    if let [Value::Str(pv), Value::Int(e)] = pair {
                        stripes.push(Stripe {
                            pv: pv.clone(),
                            start_extent: u64::try_from(*e).unwrap_or(u64::MAX),
                        });
                    } else {
                        notes.push(format!(
                            "{name}: a stripes entry is not a (name, extent) pair"
                        ));
                    }
                }
            }
            let striped = seg_type == "striped";
            segments.push(LvSegment {
                start_extent: uint(&mut notes, s, "start_extent", name),
                extent_count: uint(&mut notes, s, "extent_count", name),
                stripe_size_sectors: s.int("stripe_size").and_then(|v| u64::try_from(v).ok()),
                stripes,
                note: (!striped).then(|| format!("segment type {seg_type:?} is listed, not read (only linear and striped are mapped)")),
                seg_type,
            });
        }
        segments.sort_by_key(|s| s.start_extent);
        let extents: u64 = segments
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.extent_count));
        lvs.push(LogicalVolume {
            name: name.to_string(),
            id: l.str("id").unwrap_or_default().to_string(),
            status: l
                .list("status")
                .unwrap_or_default()
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            size_bytes: extents.saturating_mul(extent_size).saturating_mul(SECTOR),
            segments,
        });
    }
    for n in notes {
        layout.warnings.push(super::Warning {
            offset_bytes: c.at,
            field: "LVM metadata".to_string(),
            message: n,
        });
    }
    if !missing_pvs.is_empty() {
        layout.warnings.push(super::Warning {
            offset_bytes: c.at,
            field: "LVM physical_volumes".to_string(),
            message: format!(
                "VG {}: PVs {missing_pvs:?} are not in this image",
                c.vg_name
            ),
        });
    }
    VolumeGroup {
        name: c.vg_name.clone(),
        id: vg.str("id").unwrap_or_default().to_string(),
        seqno: vg
            .int("seqno")
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0),
        extent_size_sectors: extent_size,
        pvs,
        missing_pvs,
        lvs,
    }
}
