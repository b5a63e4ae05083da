//! A logical volume as a disk: LV bytes mapped through its segments onto the PVs.
//!
//! A `striped` segment of `n` stripes with chunks of `stripe_size` sectors places LV chunk
//! `k` (counted from the segment's start) on stripe `k % n`, row `k / n` of that stripe's
//! area; linear is the one-stripe case. Other segment types are refused when opening.

use super::lvm::VolumeGroup;
use crate::{FormatError, ReadAt};
use std::io;
use std::path::Path;

const SECTOR: u64 = 512;

/// Where a stripe's area is on the disk.
#[derive(Debug, Clone)]
struct Area {
    /// The PV's name (for errors).
    pv: String,
    /// Disk byte of the area's start, and the disk byte where its PV ends; `None` when the
    /// PV is not in this image.
    at: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
struct Mapped {
    /// LV byte where the segment starts.
    lv_start: u64,
    /// Its bytes.
    len: u64,
    /// Bytes per stripe chunk (the whole area for one stripe).
    chunk: u64,
    areas: Vec<Area>,
}

/// An LV readable as a disk. Reads that reach a PV missing from the image, or past a PV's
/// end, fail (`NotFound` / `UnexpectedEof`) with the LV byte and the PV named.
pub struct LvReader<R> {
    disk: R,
    size: u64,
    segments: Vec<Mapped>,
}

impl<R> std::fmt::Debug for LvReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LvReader")
            .field("size", &self.size)
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

impl<R: ReadAt> LvReader<R> {
    /// Maps LV `lv` of `vg` onto `disk` (`path` names the image in errors).
    ///
    /// # Errors
    /// No such LV; a segment that is not `striped` ([`FormatError::Unsupported`]); or
    /// segments that overlap, leave holes, or whose sizes overflow.
    pub fn new(disk: R, path: &Path, vg: &VolumeGroup, lv: usize) -> Result<Self, FormatError> {
        let bad =
            |reason: String| FormatError::invalid(path, 0, "LVM logical volume segment", reason);
        let l = vg
            .lvs
            .get(lv)
            .ok_or_else(|| bad(format!("VG {} has no LV {lv}", vg.name)))?;
        let extent = vg
            .extent_size_sectors
            .checked_mul(SECTOR)
            .filter(|&e| e > 0)
            .ok_or_else(|| bad(format!("extent size {} sectors", vg.extent_size_sectors)))?;
        // PV names to PVs (the first of a repeated name), looked up once per stripe.
        let mut by_name = std::collections::HashMap::new();
        for p in &vg.pvs {
            by_name.entry(p.name.as_str()).or_insert(p);
        }
        let mut segments = Vec::new();
        let mut next_extent = 0u64;
        for s in &l.segments {
            if s.seg_type != "striped" {
                return Err(FormatError::Unsupported {
                    file: path.to_path_buf(),
                    what: format!("LV {} segment type {:?}", l.name, s.seg_type),
                });
            }
            if s.start_extent != next_extent {
                return Err(bad(format!(
                    "LV {}: a segment starts at extent {}, expected {next_extent}",
                    l.name, s.start_extent
                )));
            }
            let n = u64::try_from(s.stripes.len()).unwrap_or(0);
            if n == 0 || s.extent_count == 0 || s.extent_count % n != 0 {
                return Err(bad(format!(
                    "LV {}: {} extents over {n} stripes",
                    l.name, s.extent_count
                )));
            }
            let len = s.extent_count.checked_mul(extent).ok_or_else(|| {
                bad(format!(
                    "LV {}: {} extents overflow",
                    l.name, s.extent_count
                ))
            })?;
            let area_len = len / n;
            let chunk = if n == 1 {
                area_len
            } else {
                s.stripe_size_sectors
                    .and_then(|v| v.checked_mul(SECTOR))
                    .filter(|&c| c > 0)
                    .ok_or_else(|| bad(format!("LV {}: striped without a stripe_size", l.name)))?
            };
            let mut areas = Vec::new();
            for st in &s.stripes {
                let pv = by_name.get(st.pv.as_str()).copied();
                let at = match pv.and_then(|p| p.found_at.map(|f| (p, f))) {
                    Some((p, (start, size))) => {
                        let area = p
                            .pe_start_sectors
                            .checked_mul(SECTOR)
                            .and_then(|b| b.checked_add(st.start_extent.checked_mul(extent)?))
                            .and_then(|b| b.checked_add(start));
                        let end = start.checked_add(size);
                        match (area, end) {
                            (Some(a), Some(e)) => Some((a, e)),
                            _ => {
                                return Err(bad(format!(
                                    "LV {}: PV {} extent {} overflows",
                                    l.name, st.pv, st.start_extent
                                )))
                            }
                        }
                    }
                    None => None,
                };
                areas.push(Area {
                    pv: st.pv.clone(),
                    at,
                });
            }
            let lv_start = next_extent.saturating_mul(extent);
            next_extent = next_extent
                .checked_add(s.extent_count)
                .ok_or_else(|| bad(format!("LV {}: extents overflow", l.name)))?;
            next_extent
                .checked_mul(extent)
                .ok_or_else(|| bad(format!("LV {}: size overflows", l.name)))?;
            segments.push(Mapped {
                lv_start,
                len,
                chunk,
                areas,
            });
        }
        Ok(Self {
            disk,
            size: next_extent.saturating_mul(extent),
            segments,
        })
    }

    /// The disk byte holding LV byte `pos`, and how many bytes from there are contiguous
    /// (to the end of the chunk or segment).
    fn locate(&self, pos: u64) -> io::Result<(u64, u64)> {
        let i = self
            .segments
            .partition_point(|s| s.lv_start.saturating_add(s.len) <= pos);
        let seg = self.segments.get(i).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("LV byte {pos} is past the LV"),
            )
        })?;
        let off = pos - seg.lv_start;
        let n = seg.areas.len() as u64;
        let chunk_no = off / seg.chunk;
        let within = off % seg.chunk;
        let area = seg
            .areas
            .get(usize::try_from(chunk_no % n).unwrap_or(0))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no stripe"))?;
        let area_off = (chunk_no / n) * seg.chunk + within;
        let run = (seg.chunk - within).min(seg.len - off);
        let Some((area_at, pv_end)) = area.at else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "LV byte {pos} lies on PV {}, which is not in this image",
                    area.pv
                ),
            ));
        };
        let disk_at = area_at.saturating_add(area_off);
        if disk_at.checked_add(run).is_none_or(|e| e > pv_end) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "LV byte {pos} maps to disk byte {disk_at} (+{run}), past the end of PV {} (disk byte {pv_end})",
                    area.pv
                ),
            ));
        }
        Ok((disk_at, run))
    }

    /// The disk byte holding LV byte `pos` (for checks against LVM's own tools).
    ///
    /// # Errors
    /// As a read of that byte.
    pub fn disk_offset(&self, pos: u64) -> io::Result<u64> {
        self.locate(pos).map(|(at, _)| at)
    }
}

impl<R: ReadAt> ReadAt for LvReader<R> {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        if offset_bytes >= self.size {
            return Ok(0);
        }
        let total =
            usize::try_from(self.size - offset_bytes).map_or(buf.len(), |l| l.min(buf.len()));
        let mut done = 0usize;
        while done < total {
            let pos = offset_bytes + done as u64;
            let (disk_at, run) = self.locate(pos)?;
            let want = usize::try_from(run).map_or(total - done, |r| r.min(total - done));
            let Some(dst) = buf.get_mut(done..done + want) else {
                break;
            };
            self.disk.read_exact_at(dst, disk_at)?;
            done += want;
        }
        Ok(total)
    }

    fn size(&self) -> u64 {
        self.size
    }
}
