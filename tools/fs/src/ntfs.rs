//! NTFS, read straight from the volume: the boot sector, `$MFT` through its own runlist,
//! MFT entries with their update sequences, attribute lists, runlists (sparse and LZNT1
//! compressed), `$STANDARD_INFORMATION` and `$FILE_NAME` times, alternate data streams,
//! deleted entries, reparse points (symbolic links and junctions: `read_link`) and the
//! change journal (`usn_journal`, in [`usn`]).
//!
//! Directories are built from every MFT entry's `$FILE_NAME` parent reference (not from
//! the `$I30` B-trees): that finds deleted entries whose MFT record survives, and checks
//! the parent's sequence number so a reused parent does not adopt them (they become
//! orphans, as in TSK's `$OrphanFiles`). Names found only in `$I30` slack are not listed.
//!
//! Addresses are TSK's: `entry-type-id` (`64-128-2` for a file's unnamed `$DATA`,
//! `64-144-3` for a directory's `$I30` root, `64-48-4` for its `$FILE_NAME`).

mod data;
mod record;
#[cfg(test)]
mod tests;
pub mod usn;
#[cfg(test)]
mod usn_tests;

use crate::{
    DirEntry, FileKind, FileSystem, FsError, FsInfo, Inode, Metadata, ReadAt, Stream, Times,
    Timestamp,
};
use data::{Clusters, Run, Value};
use record::{Attr, Body, FileName, Header};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// The root directory's MFT entry.
const ROOT: u64 = 5;
/// `$LogFile`'s MFT entry.
const LOGFILE: u64 = 2;
/// `$Volume`'s MFT entry.
const VOLUME: u64 = 3;
/// `$Extend`'s MFT entry.
const EXTEND: u64 = 11;
/// At most this many MFT entries are scanned (2^28 × 1 KiB = 256 GiB of MFT).
const MAX_ENTRIES: u64 = 1 << 28;
/// At most this many extension records are followed from one attribute list.
const MAX_LIST_RECORDS: usize = 4096;
/// An attribute list's value is read only up to this size.
const MAX_LIST_BYTES: u64 = 16 << 20;
/// The largest compression unit decompressed (64 KiB in practice).
const MAX_COMPRESSION_UNIT_BYTES: u64 = 1 << 20;
/// A reparse point's data is at most this big (`MAXIMUM_REPARSE_DATA_BUFFER_SIZE`).
const MAX_REPARSE_BYTES: u64 = 16 * 1024;
/// Bytes read per request while scanning the MFT.
const SCAN_CHUNK: u64 = 1 << 20;
/// FILETIME of 1970-01-01 (100 ns units since 1601).
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// What the scan keeps of one base MFT entry.
#[derive(Debug, Clone)]
struct Entry {
    seq: u16,
    allocated: bool,
    dir: bool,
    /// Whether it holds any attribute (mkntfs leaves empty FILE records behind).
    has_attrs: bool,
    names: Vec<FileName>,
}

/// An NTFS file system over a volume.
pub struct Ntfs<'a> {
    vol: &'a dyn ReadAt,
    volume: String,
    cluster_size: u64,
    record_size: u64,
    clusters: u64,
    serial: u64,
    mft_runs: Vec<Run>,
    mft_entries: u64,
    entries: BTreeMap<u64, Entry>,
    children: HashMap<u64, Vec<DirEntry>>,
    orphans: Vec<u64>,
    scan_notes: Vec<String>,
    label: Mutex<Option<Option<String>>>,
}

impl std::fmt::Debug for Ntfs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ntfs")
            .field("volume", &self.volume)
            .field("cluster_size", &self.cluster_size)
            .field("record_size", &self.record_size)
            .field("mft_entries", &self.mft_entries)
            .finish_non_exhaustive()
    }
}

/// A FILETIME as a timestamp (`None` for 0).
fn filetime(ft: u64) -> Option<Timestamp> {
    if ft == 0 {
        return None;
    }
    let rel = i128::from(ft) - i128::from(FILETIME_UNIX_EPOCH);
    let secs = i64::try_from(rel.div_euclid(10_000_000)).ok()?;
    let nanos = u32::try_from(rel.rem_euclid(10_000_000) * 100).ok()?;
    Some(Timestamp { secs, nanos })
}

/// Created, modified, changed, accessed → [`Times`].
fn times(t: [u64; 4]) -> Times {
    Times {
        created: filetime(t[0]),
        modified: filetime(t[1]),
        changed: filetime(t[2]),
        accessed: filetime(t[3]),
    }
}

/// 2^n for a signed size byte (`-12` → 4096), or `n × unit`.
fn signed_size(v: u8, unit: u64) -> Option<u64> {
    let s = i8::from_le_bytes([v]);
    if s < 0 {
        let shift = u32::from(s.unsigned_abs());
        (shift < 32).then(|| 1u64 << shift)
    } else {
        u64::from(v).checked_mul(unit)
    }
}

/// Whether the volume starts with an NTFS boot sector (its OEM id).
pub fn probe(vol: &dyn ReadAt) -> bool {
    let mut b = [0u8; 11];
    vol.read_exact_at(&mut b, 0).is_ok() && b.get(3..11) == Some(b"NTFS    ".as_slice())
}

impl<'a> Ntfs<'a> {
    /// Whether the volume starts with an NTFS boot sector (see [`probe`]).
    pub fn probe(vol: &dyn ReadAt) -> bool {
        probe(vol)
    }

    /// Opens the NTFS on `vol` (named `volume` in errors) and scans its MFT.
    ///
    /// # Errors
    /// The boot sector or `$MFT` is damaged or unreadable.
    pub fn open(vol: &'a dyn ReadAt, volume: &str) -> Result<Self, FsError> {
        let mut boot = [0u8; 512];
        crate::read_exact(vol, volume, &mut boot, 0)?;
        let bad = |at: u64, field: &'static str, reason: String| {
            FsError::invalid(volume, at, field, reason)
        };
        if boot.get(3..11) != Some(b"NTFS    ".as_slice()) {
            return Err(bad(
                3,
                "ntfs boot sector.oem_id",
                format!("{:02x?}, expected \"NTFS    \"", boot.get(3..11)),
            ));
        }
        let sector = u64::from(record::u16_at(&boot, 0x0B).unwrap_or(0));
        if !(256..=4096).contains(&sector) || !sector.is_power_of_two() {
            return Err(bad(
                0x0B,
                "ntfs boot sector.bytes_per_sector",
                format!("{sector}"),
            ));
        }
        let spc_raw = boot.get(0x0D).copied().unwrap_or(0);
        let spc = if spc_raw > 0x80 {
            1u64.checked_shl(256 - u32::from(spc_raw)).unwrap_or(0)
        } else {
            u64::from(spc_raw)
        };
        let cluster_size = sector.saturating_mul(spc);
        if spc == 0 || !spc.is_power_of_two() || cluster_size > (2 << 20) {
            return Err(bad(
                0x0D,
                "ntfs boot sector.sectors_per_cluster",
                format!("{spc_raw:#04x}"),
            ));
        }
        let total_sectors = record::u64_at(&boot, 0x28).unwrap_or(0);
        let clusters = total_sectors / spc;
        let mft_lcn = record::u64_at(&boot, 0x30).unwrap_or(0);
        let rec_raw = boot.get(0x40).copied().unwrap_or(0);
        let record_size = signed_size(rec_raw, cluster_size).unwrap_or(0);
        if !(512..=65536).contains(&record_size) || !record_size.is_power_of_two() {
            return Err(bad(
                0x40,
                "ntfs boot sector.clusters_per_mft_record",
                format!("{rec_raw:#04x}: {record_size} bytes"),
            ));
        }
        let idx_raw = boot.get(0x44).copied().unwrap_or(0);
        let index_size = signed_size(idx_raw, cluster_size).unwrap_or(0);
        if !(512..=65536).contains(&index_size) || !index_size.is_power_of_two() {
            return Err(bad(
                0x44,
                "ntfs boot sector.clusters_per_index_record",
                format!("{idx_raw:#04x}: {index_size} bytes"),
            ));
        }
        if mft_lcn >= clusters {
            return Err(bad(
                0x30,
                "ntfs boot sector.mft_cluster",
                format!("{mft_lcn}, past the volume's {clusters} clusters"),
            ));
        }
        let mut fs = Self {
            vol,
            volume: volume.to_string(),
            cluster_size,
            record_size,
            clusters,
            serial: record::u64_at(&boot, 0x48).unwrap_or(0),
            // Until entry 0 is read: its first record.
            mft_runs: vec![Run {
                vcn: 0,
                len: record_size.div_ceil(cluster_size),
                lcn: Some(mft_lcn),
            }],
            mft_entries: 1,
            entries: BTreeMap::new(),
            children: HashMap::new(),
            orphans: Vec::new(),
            scan_notes: Vec::new(),
            label: Mutex::new(None),
        };
        // $MFT through its own $DATA: first the extent in entry 0, then (if entry 0 has an
        // attribute list) the extents in its extension records, read through the first.
        let (h0, attrs0) = fs.record(0)?.ok_or_else(|| {
            bad(
                mft_lcn.saturating_mul(cluster_size),
                "ntfs $MFT entry 0",
                "not a FILE record".into(),
            )
        })?;
        let first = attrs0
            .iter()
            .find(|a| a.kind == record::ATTR_DATA && a.name.is_empty())
            .ok_or_else(|| {
                bad(
                    mft_lcn.saturating_mul(cluster_size),
                    "ntfs $MFT entry 0",
                    "no unnamed $DATA".into(),
                )
            })?;
        let mut runs = Vec::new();
        let mft_size = fs.runs_of(std::slice::from_ref(first), &mut runs)?;
        fs.mft_runs = runs;
        fs.mft_entries = (mft_size / record_size).min(MAX_ENTRIES);
        if attrs0.iter().any(|a| a.kind == record::ATTR_ATTRIBUTE_LIST) {
            let all = fs.all_attributes(0, &h0, attrs0)?;
            let data: Vec<Attr> = all
                .into_iter()
                .filter(|a| a.kind == record::ATTR_DATA && a.name.is_empty())
                .collect();
            let mut runs = Vec::new();
            let size = fs.runs_of(&data, &mut runs)?;
            fs.mft_runs = runs;
            fs.mft_entries = (size / record_size).min(MAX_ENTRIES);
        }
        let cap = vol.size() / record_size;
        if fs.mft_entries > cap {
            fs.scan_notes.push(format!(
                "$MFT claims {} entries; only {cap} fit in the volume",
                fs.mft_entries
            ));
            fs.mft_entries = cap;
        }
        fs.scan()?;
        Ok(fs)
    }

    /// Byte offset of MFT entry `n` in the volume.
    fn record_offset(&self, n: u64) -> Option<u64> {
        let off = n.checked_mul(self.record_size)?;
        let vcn = off / self.cluster_size;
        let i = self
            .mft_runs
            .partition_point(|r| r.vcn.saturating_add(r.len) <= vcn);
        let run = self.mft_runs.get(i).filter(|r| r.vcn <= vcn)?;
        let lcn = run.lcn?;
        lcn.checked_mul(self.cluster_size)?
            .checked_add(off - run.vcn * self.cluster_size)
    }

    /// Reads, fixes up and parses MFT entry `n` (`Ok(None)` when it was never used).
    fn record(&self, n: u64) -> Result<Option<(Header, Vec<Attr>)>, FsError> {
        let off = self.record_offset(n).ok_or_else(|| FsError::NotFound {
            volume: self.volume.clone(),
            what: format!("MFT entry {n}"),
        })?;
        let mut buf = vec![0u8; usize::try_from(self.record_size).unwrap_or(1024)];
        crate::read_exact(self.vol, &self.volume, &mut buf, off)?;
        self.parse_record(&mut buf, off)
    }

    fn parse_record(
        &self,
        buf: &mut [u8],
        off: u64,
    ) -> Result<Option<(Header, Vec<Attr>)>, FsError> {
        let Some(h) = record::fixup(buf, &self.volume, off)? else {
            return Ok(None);
        };
        let attrs = record::attributes(buf, &h, &self.volume, off)?;
        Ok(Some((h, attrs)))
    }

    /// The attributes of base entry `n` including those its `$ATTRIBUTE_LIST` places in
    /// extension records.
    fn all_attributes(&self, n: u64, h: &Header, attrs: Vec<Attr>) -> Result<Vec<Attr>, FsError> {
        let Some(list) = attrs.iter().find(|a| a.kind == record::ATTR_ATTRIBUTE_LIST) else {
            return Ok(attrs);
        };
        let bytes = self.value_bytes(list, MAX_LIST_BYTES)?;
        let mut others = BTreeSet::new();
        let mut at = 0usize;
        while let Some(len) = record::u16_at(&bytes, at + 4) {
            if len < 0x1A {
                break;
            }
            let mref = record::u64_at(&bytes, at + 16).unwrap_or(0);
            let rec = mref & 0xFFFF_FFFF_FFFF;
            if rec != n {
                others.insert(rec);
                if others.len() > MAX_LIST_RECORDS {
                    return Err(FsError::invalid(
                        &self.volume,
                        list.offset,
                        "ntfs $ATTRIBUTE_LIST",
                        format!("entry {n} names more than {MAX_LIST_RECORDS} extension records"),
                    ));
                }
            }
            at += usize::from(len);
        }
        let _ = h;
        let mut all = attrs;
        for rec in others {
            let Some((eh, ea)) = self.record(rec)? else {
                continue;
            };
            if eh.base_ref & 0xFFFF_FFFF_FFFF != n {
                continue; // Reused: no longer ours.
            }
            all.extend(ea);
        }
        Ok(all)
    }

    /// The whole value of `a`, at most `max` bytes.
    fn value_bytes(&self, a: &Attr, max: u64) -> Result<Vec<u8>, FsError> {
        let v = self.value(std::slice::from_ref(a))?;
        let size = v.size();
        if size > max || size > self.vol.size() {
            return Err(FsError::invalid(
                &self.volume,
                a.offset,
                "ntfs attribute.real_size",
                format!("{size} bytes, more than {max}"),
            ));
        }
        let mut buf = vec![0u8; usize::try_from(size).unwrap_or(0)];
        v.read_exact_at(&mut buf, 0).map_err(|source| FsError::Io {
            volume: self.volume.clone(),
            offset: a.offset,
            len: buf.len(),
            source,
        })?;
        Ok(buf)
    }

    /// Decodes the runlists of the extents of one attribute (sorted by start VCN) into
    /// `runs`; returns the value's size (from the extent starting at VCN 0).
    fn runs_of(&self, extents: &[Attr], runs: &mut Vec<Run>) -> Result<u64, FsError> {
        let mut ext: Vec<&Attr> = extents.iter().collect();
        ext.sort_by_key(|a| match &a.body {
            Body::NonResident { start_vcn, .. } => *start_vcn,
            Body::Resident(_) => 0,
        });
        let mut size = 0;
        for a in ext {
            if let Body::NonResident {
                start_vcn,
                runlist,
                real_size,
                runlist_offset,
                ..
            } = &a.body
            {
                if *start_vcn == 0 {
                    size = *real_size;
                }
                let next = runs.last().map_or(0, |r| r.vcn + r.len);
                if *start_vcn != next {
                    return Err(FsError::invalid(
                        &self.volume,
                        a.offset,
                        "ntfs attribute.start_vcn",
                        format!("{start_vcn}, expected {next} (extents overlap or leave a gap)"),
                    ));
                }
                data::decode(
                    runlist,
                    *start_vcn,
                    self.clusters,
                    runs,
                    &self.volume,
                    *runlist_offset,
                )?;
            }
        }
        Ok(size)
    }

    /// The value of an attribute made of `extents`.
    fn value(&self, extents: &[Attr]) -> Result<Value<'a>, FsError> {
        let Some(first) = extents.first() else {
            return Ok(Value::Resident(Vec::new()));
        };
        match &first.body {
            Body::Resident(v) => Ok(Value::Resident(v.clone())),
            Body::NonResident { .. } => {
                let mut runs = Vec::new();
                self.runs_of(extents, &mut runs)?;
                let base = extents
                    .iter()
                    .find(|a| matches!(a.body, Body::NonResident { start_vcn: 0, .. }))
                    .unwrap_or(first);
                let Body::NonResident {
                    real_size,
                    initialized_size,
                    compression_unit,
                    ..
                } = base.body
                else {
                    return Ok(Value::Resident(Vec::new()));
                };
                if base.flags & 0x4000 != 0 {
                    return Err(FsError::Unsupported {
                        volume: self.volume.clone(),
                        what: "an EFS-encrypted attribute".into(),
                    });
                }
                let unit_clusters = if compression_unit == 0 || base.flags & 0x00FF == 0 {
                    0
                } else if compression_unit > 16 {
                    return Err(FsError::invalid(
                        &self.volume,
                        base.offset,
                        "ntfs attribute.compression_unit",
                        format!("{compression_unit}"),
                    ));
                } else {
                    1u64 << compression_unit
                };
                // Real units are 16 clusters of 4 KiB or less: one unit is decompressed in
                // memory, so a claim is not trusted beyond 1 MiB.
                if unit_clusters.saturating_mul(self.cluster_size) > MAX_COMPRESSION_UNIT_BYTES {
                    return Err(FsError::Unsupported {
                        volume: self.volume.clone(),
                        what: format!(
                            "a compression unit of {unit_clusters} clusters of {} bytes",
                            self.cluster_size
                        ),
                    });
                }
                Ok(Value::Clusters(Clusters {
                    vol: self.vol,
                    volume: self.volume.clone(),
                    cluster_size: self.cluster_size,
                    runs,
                    size: real_size,
                    initialized: initialized_size,
                    unit_clusters,
                    cache: Mutex::new(None),
                }))
            }
        }
    }

    /// Reads every MFT entry once: names for directories, deleted entries, orphans.
    fn scan(&mut self) -> Result<(), FsError> {
        let rs = usize::try_from(self.record_size).unwrap_or(1024);
        let per_chunk = (SCAN_CHUNK / self.record_size).max(1);
        let mut entries: BTreeMap<u64, Entry> = BTreeMap::new();
        let mut ext_names: Vec<(u64, FileName)> = Vec::new();
        let mut damaged = 0u64;
        let mut n = 0u64;
        let mut buf = Vec::new();
        while n < self.mft_entries {
            // A run of entries contiguous on disk, read in one request.
            let Some(off) = self.record_offset(n) else {
                // Not mapped (a sparse or short $MFT runlist).
                n += 1;
                continue;
            };
            let mut count = 1u64;
            while count < per_chunk
                && n + count < self.mft_entries
                && self.record_offset(n + count) == off.checked_add(count * self.record_size)
            {
                count += 1;
            }
            buf.resize(usize::try_from(count * self.record_size).unwrap_or(0), 0);
            if crate::read_exact(self.vol, &self.volume, &mut buf, off).is_err() {
                // One unreadable entry must not hide its neighbours: read them one by one.
                if count > 1 {
                    buf.truncate(rs);
                    count = 1;
                    if crate::read_exact(self.vol, &self.volume, &mut buf, off).is_err() {
                        damaged += 1;
                        n += 1;
                        continue;
                    }
                } else {
                    damaged += 1;
                    n += 1;
                    continue;
                }
            }
            for (i, rec) in buf.chunks_exact_mut(rs).enumerate() {
                let num = n + i as u64;
                let roff = off + i as u64 * self.record_size;
                let (h, attrs) = match self.parse_record(rec, roff) {
                    Ok(Some(r)) => r,
                    // Never used.
                    Ok(None) => continue,
                    Err(_) => {
                        damaged += 1;
                        continue;
                    }
                };
                let names: Vec<FileName> = attrs
                    .iter()
                    .filter(|a| a.kind == record::ATTR_FILE_NAME)
                    .filter_map(|a| match &a.body {
                        Body::Resident(v) => record::file_name(v),
                        Body::NonResident { .. } => None,
                    })
                    .collect();
                let base = h.base_ref & 0xFFFF_FFFF_FFFF;
                if h.base_ref != 0 {
                    if h.flags & 1 != 0 {
                        ext_names.extend(names.into_iter().map(|f| (base, f)));
                    }
                    continue;
                }
                entries.insert(
                    num,
                    Entry {
                        seq: h.seq,
                        allocated: h.flags & 1 != 0,
                        dir: h.flags & 2 != 0,
                        has_attrs: !attrs.is_empty(),
                        names,
                    },
                );
            }
            n += count;
        }
        for (base, f) in ext_names {
            if let Some(e) = entries.get_mut(&base) {
                e.names.push(f);
            }
        }
        if damaged > 0 {
            self.scan_notes.push(format!(
                "{damaged} MFT entries are damaged or unreadable (bad magic, fixup or attributes)"
            ));
        }
        let mut children: HashMap<u64, Vec<DirEntry>> = HashMap::new();
        let mut orphans = Vec::new();
        for (&num, e) in &entries {
            let mut named = false;
            let mut seen = BTreeSet::new();
            for f in e.names.iter().filter(|f| f.namespace != 2) {
                if num == ROOT || f.parent == num {
                    continue;
                }
                let parent_ok = entries.get(&f.parent).is_some_and(|p| {
                    p.dir
                        && (p.seq == f.parent_seq
                            || (!p.allocated && p.seq == f.parent_seq.wrapping_add(1)))
                });
                if !parent_ok || !seen.insert((f.parent, f.name.clone())) {
                    continue;
                }
                named = true;
                children.entry(f.parent).or_default().push(DirEntry {
                    name: f.name.clone().into_bytes(),
                    inode: num,
                    // TSK shows a deleted name's type as unknown (`-/r`).
                    kind: match (e.allocated, e.dir) {
                        (false, _) => FileKind::Unknown,
                        (true, true) => FileKind::Directory,
                        (true, false) => FileKind::Regular,
                    },
                    deleted: !e.allocated,
                });
            }
            // Deleted entries no directory names (TSK lists those that kept any
            // attribute), and allocated ones whose parent is gone or was reused.
            let lost = if e.allocated {
                e.names.iter().any(|f| f.namespace != 2)
            } else {
                e.has_attrs
            };
            if !named && num != ROOT && lost {
                orphans.push(num);
            }
        }
        for list in children.values_mut() {
            list.sort_by(|a, b| {
                a.name
                    .cmp(&b.name)
                    .then(a.deleted.cmp(&b.deleted))
                    .then(a.inode.cmp(&b.inode))
            });
        }
        self.entries = entries;
        self.children = children;
        self.orphans = orphans;
        Ok(())
    }

    /// Base entry `n`'s header and every attribute.
    fn entry(&self, n: Inode) -> Result<(Header, Vec<Attr>), FsError> {
        let not_found = || FsError::NotFound {
            volume: self.volume.clone(),
            what: format!("MFT entry {n}"),
        };
        if n >= self.mft_entries {
            return Err(not_found());
        }
        let (h, attrs) = self.record(n)?.ok_or_else(not_found)?;
        if h.base_ref != 0 {
            return Err(FsError::NotFound {
                volume: self.volume.clone(),
                what: format!(
                    "MFT entry {n} as a base entry (it extends entry {})",
                    h.base_ref & 0xFFFF_FFFF_FFFF
                ),
            });
        }
        let attrs = self.all_attributes(n, &h, attrs)?;
        Ok((h, attrs))
    }

    /// `$Volume`'s label.
    fn label(&self) -> Option<String> {
        let mut cache = self
            .label
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get_or_insert_with(|| {
                let (_, attrs) = self.entry(VOLUME).ok()?;
                attrs
                    .iter()
                    .find(|a| a.kind == record::ATTR_VOLUME_NAME)
                    .and_then(|a| match &a.body {
                        Body::Resident(v) => Some(record::utf16(v)),
                        Body::NonResident { .. } => None,
                    })
            })
            .clone()
    }

    /// The `$REPARSE_POINT` among `attrs`, parsed (at most 16 KiB, Windows' limit).
    fn reparse_of(&self, attrs: &[Attr]) -> Result<Option<(Attr, record::Reparse)>, FsError> {
        let Some(a) = attrs.iter().find(|a| a.kind == record::ATTR_REPARSE_POINT) else {
            return Ok(None);
        };
        let v = self.value_bytes(a, MAX_REPARSE_BYTES)?;
        let r = record::reparse(&v).ok_or_else(|| {
            FsError::invalid(
                &self.volume,
                a.offset,
                "ntfs $REPARSE_POINT",
                format!("{} bytes, shorter than its header", v.len()),
            )
        })?;
        Ok(Some((a.clone(), r)))
    }

    /// The allocated entry named `name` in directory `dir`.
    fn child(&self, dir: u64, name: &str) -> Option<u64> {
        self.children
            .get(&dir)?
            .iter()
            .find(|e| !e.deleted && e.name == name.as_bytes())
            .map(|e| e.inode)
    }
}

impl FileSystem for Ntfs<'_> {
    fn info(&self) -> FsInfo {
        let mut notes = self.scan_notes.clone();
        notes.push(format!(
            "MFT entry size {} bytes, {} entries",
            self.record_size, self.mft_entries
        ));
        match self.metadata(LOGFILE) {
            Ok(m) => notes.push(format!("$LogFile present: {} bytes", m.size)),
            Err(e) => notes.push(format!("$LogFile unreadable: {e}")),
        }
        match self.child(EXTEND, "$UsnJrnl") {
            Some(n) => match self.metadata(n) {
                Ok(m) => {
                    let j = m
                        .streams
                        .iter()
                        .find(|s| s.name == "$J")
                        .map_or(0, |s| s.size);
                    notes.push(format!(
                        "$Extend/$UsnJrnl present (MFT entry {n}): $J stream {j} bytes"
                    ));
                }
                Err(e) => notes.push(format!("$Extend/$UsnJrnl unreadable: {e}")),
            },
            None => notes.push("$Extend/$UsnJrnl absent (no change journal)".into()),
        }
        FsInfo {
            kind: "ntfs".into(),
            label: self.label(),
            id: Some(format!("{:016X}", self.serial)),
            block_size: u32::try_from(self.cluster_size).unwrap_or(u32::MAX),
            size_bytes: self.clusters.saturating_mul(self.cluster_size),
            notes,
        }
    }

    fn root(&self) -> Inode {
        ROOT
    }

    fn read_dir(&self, dir: Inode) -> Result<Vec<DirEntry>, FsError> {
        match self.entries.get(&dir) {
            Some(e) if e.dir => Ok(self.children.get(&dir).cloned().unwrap_or_default()),
            Some(_) => Err(FsError::invalid(
                &self.volume,
                self.record_offset(dir).unwrap_or(0),
                "ntfs MFT entry.flags",
                format!("entry {dir} is not a directory"),
            )),
            None => Err(FsError::NotFound {
                volume: self.volume.clone(),
                what: format!("directory MFT entry {dir}"),
            }),
        }
    }

    fn metadata(&self, inode: Inode) -> Result<Metadata, FsError> {
        let (h, attrs) = self.entry(inode)?;
        let dir = h.flags & 2 != 0;
        let mut notes = Vec::new();
        let kind = if dir {
            FileKind::Directory
        } else {
            FileKind::Regular
        };
        let mut m = Metadata {
            mode: 0o111,
            links: u32::from(h.links),
            allocated: h.flags & 1 != 0,
            // Set below when the unnamed $DATA (or a directory's $I30 root) is found.
            default_data: false,
            ..Metadata::new(inode, kind)
        };
        if let Some(si) = attrs
            .iter()
            .find(|a| a.kind == record::ATTR_STANDARD_INFORMATION)
        {
            if let Body::Resident(v) = &si.body {
                let t = |at| record::u64_at(v, at).unwrap_or(0);
                m.times = times([t(0), t(8), t(16), t(24)]);
                let flags = record::u32_at(v, 32).unwrap_or(0);
                // TSK's rendition: read unless read-only, written unless hidden.
                if flags & 0x01 == 0 {
                    m.mode |= 0o444;
                }
                if flags & 0x02 == 0 {
                    m.mode |= 0o222;
                }
                if v.len() >= 72 {
                    m.uid = record::u32_at(v, 48).unwrap_or(0);
                }
                if flags != 0 {
                    notes.push(format!("$STANDARD_INFORMATION flags {flags:#x}"));
                }
            }
        } else {
            notes.push("no $STANDARD_INFORMATION".into());
        }
        // The last $FILE_NAME in the entry, as TSK chooses (also for hard links: every
        // name of the file shows the same one).
        let fname = attrs
            .iter()
            .rev()
            .filter(|a| a.kind == record::ATTR_FILE_NAME)
            .find_map(|a| match &a.body {
                Body::Resident(v) => record::file_name(v).map(|f| (a, f)),
                Body::NonResident { .. } => None,
            });
        if let Some((a, f)) = fname {
            m.name_times = Some(times(f.times));
            m.name_address = Some(format!("{inode}-48-{}", a.id));
            m.name_size = Some(a.size());
        }
        // Group extents of the same attribute.
        let mut groups: Vec<(u32, String, Vec<Attr>)> = Vec::new();
        for a in attrs
            .iter()
            .filter(|a| a.kind == record::ATTR_DATA || a.kind == record::ATTR_INDEX_ROOT)
        {
            match groups
                .iter_mut()
                .find(|(k, n, _)| *k == a.kind && *n == a.name)
            {
                Some(g) => g.2.push(a.clone()),
                None => groups.push((a.kind, a.name.clone(), vec![a.clone()])),
            }
        }
        for (kind, name, ext) in &groups {
            let base = ext
                .iter()
                .find(|a| {
                    matches!(
                        a.body,
                        Body::Resident(_) | Body::NonResident { start_vcn: 0, .. }
                    )
                })
                .or(ext.first());
            let Some(base) = base else { continue };
            let address = format!("{inode}-{kind}-{}", base.id);
            let size = base.size();
            let is_default = if dir {
                *kind == record::ATTR_INDEX_ROOT && name == "$I30"
            } else {
                *kind == record::ATTR_DATA && name.is_empty()
            };
            if is_default {
                m.address = address;
                m.size = size;
                m.default_data = true;
            } else if !(name.is_empty() || *kind == record::ATTR_INDEX_ROOT && name == "$I30") {
                m.streams.push(Stream {
                    name: name.clone(),
                    size,
                    address,
                });
            }
        }
        match self.reparse_of(&attrs) {
            Ok(None) => {}
            Ok(Some((_, r))) => {
                let mut note = format!(
                    "reparse point {:#010x} ({})",
                    r.tag,
                    record::reparse_tag_name(r.tag)
                );
                if let Some(s) = &r.substitute {
                    note.push_str(&format!(": substitute name {s:?}"));
                }
                if let Some(p) = &r.print {
                    note.push_str(&format!(", print name {p:?}"));
                }
                if r.relative {
                    note.push_str(", relative");
                }
                notes.push(note);
            }
            Err(e) => notes.push(format!("reparse point unreadable: {e}")),
        }
        m.notes = notes;
        Ok(m)
    }

    fn open(&self, inode: Inode, stream: Option<&str>) -> Result<Box<dyn ReadAt + '_>, FsError> {
        let (_, attrs) = self.entry(inode)?;
        let name = stream.unwrap_or("");
        let mut ext: Vec<Attr> = attrs
            .iter()
            .filter(|a| a.kind == record::ATTR_DATA && a.name == name)
            .cloned()
            .collect();
        if ext.is_empty() && !name.is_empty() {
            ext = attrs
                .iter()
                .filter(|a| a.kind == record::ATTR_INDEX_ROOT && a.name == name)
                .cloned()
                .collect();
        }
        if ext.is_empty() {
            return Err(FsError::NotFound {
                volume: self.volume.clone(),
                what: format!(
                    "$DATA{} of MFT entry {inode}",
                    stream.map(|s| format!(":{s}")).unwrap_or_default()
                ),
            });
        }
        Ok(Box::new(self.value(&ext)?))
    }

    /// A symbolic link's or mount point's (junction's) substitute name, from its
    /// `$REPARSE_POINT` (the print name when the substitute is empty). Such entries keep
    /// TSK's kinds (a file or a directory), so the walk does not ask for this: their
    /// metadata notes give the tag and both names.
    fn read_link(&self, inode: Inode) -> Result<Vec<u8>, FsError> {
        let (_, attrs) = self.entry(inode)?;
        let Some((a, r)) = self.reparse_of(&attrs)? else {
            return Err(FsError::invalid(
                &self.volume,
                self.record_offset(inode).unwrap_or(0),
                "ntfs $REPARSE_POINT",
                format!("MFT entry {inode} has no reparse point: not a link"),
            ));
        };
        if r.tag != record::IO_REPARSE_TAG_SYMLINK && r.tag != record::IO_REPARSE_TAG_MOUNT_POINT {
            return Err(FsError::Unsupported {
                volume: self.volume.clone(),
                what: format!(
                    "reparse tag {:#010x} ({}) of MFT entry {inode} as a link",
                    r.tag,
                    record::reparse_tag_name(r.tag)
                ),
            });
        }
        r.substitute
            .filter(|s| !s.is_empty())
            .or(r.print)
            .map(String::into_bytes)
            .ok_or_else(|| {
                FsError::invalid(
                    &self.volume,
                    a.offset,
                    "ntfs $REPARSE_POINT.substitute_name",
                    "names past the end of the reparse data".to_string(),
                )
            })
    }

    fn orphans(&self) -> Result<Vec<Inode>, FsError> {
        Ok(self.orphans.clone())
    }

    /// TSK numbers its virtual `$OrphanFiles` directory after the last MFT entry.
    fn orphan_dir_inode(&self) -> Option<Inode> {
        Some(self.mft_entries)
    }
}
