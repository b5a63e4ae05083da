//! What FAT12/16/32 and exFAT share: the cluster heap's geometry, bounded cluster-chain
//! walks, TSK's recovery of deleted files, and a file's content as a list of byte runs on
//! the volume (what a chain or a recovery maps), served as a `ReadAt`.

use crate::{FileSystem, FsError, Inode, ReadAt};
use std::collections::HashSet;
use std::io;

/// Where the clusters are: FAT and exFAT lay out their heap the same way (cluster 2 at
/// [`Self::first_cluster_sector`], then `cluster_count` clusters of equal size).
pub(crate) trait Geometry {
    fn bytes_per_sector(&self) -> u64;
    fn sectors_per_cluster(&self) -> u64;
    /// The sector of cluster 2.
    fn first_cluster_sector(&self) -> u64;
    /// Clusters in the heap; valid cluster numbers are 2 ..= count + 1.
    fn cluster_count(&self) -> u64;

    fn cluster_bytes(&self) -> u64 {
        self.bytes_per_sector() * self.sectors_per_cluster()
    }
    fn last_cluster(&self) -> u64 {
        self.cluster_count() + 1
    }
    /// The first sector of cluster `c` (2 ..= last).
    fn cluster_sector(&self, c: u64) -> Option<u64> {
        c.checked_sub(2)?
            .checked_mul(self.sectors_per_cluster())?
            .checked_add(self.first_cluster_sector())
    }
    /// 32-byte directory entries per sector.
    fn entries_per_sector(&self) -> u64 {
        self.bytes_per_sector() / 32
    }
}

/// A FAT over a cluster heap: the chain walks and recovery FAT and exFAT do alike. What
/// differs is a parameter: the end-of-chain marker (FAT12/16/32 mask it to the entry
/// width, exFAT's is 0xFFFFFFF8 and up) and what marks a cluster in use (FAT: a non-zero
/// entry; exFAT: the allocation bitmap).
pub(crate) trait ClusterMap {
    type Layout: Geometry;
    fn layout(&self) -> &Self::Layout;
    /// The FAT, decoded: entry `c` is the next cluster of `c`.
    fn fat(&self) -> &[u32];
    /// Whether FAT entry `v` ends a chain.
    fn is_eof(&self, v: u32) -> bool;
    /// Whether cluster `c` is in use.
    fn cluster_allocated(&self, c: u64) -> bool;

    /// Cluster `c`'s FAT entry; 0 (free) past the FAT.
    fn next(&self, c: u64) -> u32 {
        usize::try_from(c)
            .ok()
            .and_then(|i| self.fat().get(i))
            .copied()
            .unwrap_or(0)
    }

    /// The sectors of a cluster chain from `first`, at most `max_bytes` of them (all when
    /// `None`): stops at end-of-chain, a free or bad entry, a cluster out of range or one
    /// seen before. Returns the clusters and why it stopped early, if it did.
    fn chain(&self, first: u64, max_bytes: Option<u64>) -> (Vec<u64>, Option<String>) {
        let l = self.layout();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut c = first;
        let mut bytes = 0u64;
        loop {
            if max_bytes.is_some_and(|m| bytes >= m) {
                return (out, None);
            }
            if c < 2 || c > l.last_cluster() {
                return (
                    out,
                    Some(format!("cluster {c} is outside 2 ..= {}", l.last_cluster())),
                );
            }
            if !seen.insert(c) {
                return (
                    out,
                    Some(format!("the cluster chain loops back to cluster {c}")),
                );
            }
            out.push(c);
            bytes = bytes.saturating_add(l.cluster_bytes());
            let n = self.next(c);
            if self.is_eof(n) {
                return (out, None);
            }
            if n == 0 {
                return (out, Some(format!("cluster {c}'s FAT entry is free (0)")));
            }
            c = u64::from(n);
        }
    }

    /// TSK's recovery of a deleted file: from `first`, the free clusters in order until
    /// `size` is covered; if `first` is in use or they run out, just the first cluster.
    fn recover(&self, first: u64, size: u64) -> Vec<u64> {
        let l = self.layout();
        if first < 2 || first > l.last_cluster() {
            return Vec::new();
        }
        if self.cluster_allocated(first) {
            return vec![first];
        }
        let mut out = Vec::new();
        let mut left = size;
        let mut c = first;
        while left > 0 {
            if c > l.last_cluster() {
                return vec![first];
            }
            if !self.cluster_allocated(c) {
                out.push(c);
                left = left.saturating_sub(l.cluster_bytes());
            }
            c += 1;
        }
        out
    }

    /// The runs of clusters `clusters`.
    fn cluster_runs(&self, clusters: &[u64]) -> Vec<Run> {
        let l = self.layout();
        let mut runs = Vec::new();
        for &c in clusters {
            if let Some(s) = l.cluster_sector(c) {
                push_run(&mut runs, s * l.bytes_per_sector(), l.cluster_bytes());
            }
        }
        runs
    }
}

/// Every inode some directory of `fs` names, allocated or deleted, walking from the root
/// as `fls -r` does (bounded: each directory once, at most `walk::MAX_ENTRIES` names).
pub(crate) fn named_inodes(fs: &dyn FileSystem) -> HashSet<Inode> {
    let root = fs.root();
    let mut named = HashSet::new();
    let mut dirs_seen = HashSet::from([root]);
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs.read_dir(dir) else {
            continue;
        };
        for e in entries {
            if named.len() >= crate::walk::MAX_ENTRIES {
                return named;
            }
            named.insert(e.inode);
            if e.kind == crate::FileKind::Directory && dirs_seen.insert(e.inode) {
                stack.push(e.inode);
            }
        }
    }
    named
}

/// A file's content over `clusters`: `size` bytes, or for a deleted file (not
/// `allocated`) only as much as the clusters recovered hold (one cluster when its first is
/// in use again), as icat gives it.
pub(crate) fn file_runs<'a, M: ClusterMap>(
    map: &M,
    vol: &'a dyn ReadAt,
    volume: &str,
    clusters: &[u64],
    size: u64,
    allocated: bool,
    short_reason: Option<String>,
) -> Runs<'a> {
    let runs = map.cluster_runs(clusters);
    let mapped: u64 = runs.iter().map(|r| r.len).sum();
    let size = if allocated { size } else { size.min(mapped) };
    Runs {
        vol,
        volume: volume.to_string(),
        size,
        runs,
        short_reason,
    }
}

/// One piece of a file: `len` bytes at `logical` in the file live at `physical` in the
/// volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    /// Offset in the file.
    pub logical: u64,
    /// Offset in the volume.
    pub physical: u64,
    /// Bytes.
    pub len: u64,
}

/// Appends `len` bytes at `physical` to `runs`, merging with the last run when contiguous.
pub(crate) fn push_run(runs: &mut Vec<Run>, physical: u64, len: u64) {
    let logical = runs.last().map_or(0, |r| r.logical.saturating_add(r.len));
    if let Some(last) = runs.last_mut() {
        if last.physical.checked_add(last.len) == Some(physical) {
            last.len = last.len.saturating_add(len);
            return;
        }
    }
    runs.push(Run {
        logical,
        physical,
        len,
    });
}

/// A file's content: `size` bytes, read through `runs`. Bytes inside `size` that no run maps
/// (a chain that ends early) fail to read with `InvalidData`, never read as zeros.
pub(crate) struct Runs<'a> {
    pub vol: &'a dyn ReadAt,
    pub volume: String,
    pub size: u64,
    pub runs: Vec<Run>,
    /// Why the runs end before `size`, if they do.
    pub short_reason: Option<String>,
}

impl std::fmt::Debug for Runs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs")
            .field("volume", &self.volume)
            .field("size", &self.size)
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

impl ReadAt for Runs<'_> {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        if offset_bytes >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let want =
            usize::try_from(self.size - offset_bytes).map_or(buf.len(), |l| l.min(buf.len()));
        // The run holding offset_bytes: the last one starting at or before it.
        let idx = self.runs.partition_point(|r| r.logical <= offset_bytes);
        let run = idx
            .checked_sub(1)
            .and_then(|i| self.runs.get(i))
            .filter(|r| offset_bytes < r.logical.saturating_add(r.len));
        let Some(run) = run else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: byte {offset_bytes} of the file is not mapped: {}",
                    self.volume,
                    self.short_reason
                        .as_deref()
                        .unwrap_or("no cluster holds it")
                ),
            ));
        };
        let within = offset_bytes - run.logical;
        let n = usize::try_from(run.len - within).map_or(want, |l| l.min(want));
        let at = run
            .physical
            .checked_add(within)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "offset overflows"))?;
        let dst = buf
            .get_mut(..n)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffer"))?;
        crate::read_exact(self.vol, &self.volume, dst, at).map_err(FsError::into_io)?;
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

/// DOS date and time (local time, no zone) as seconds since 1970 as if UTC, the way TSK
/// converts them: `None` for a zero or impossible date (day 0 or > 31, month 0 or > 12);
/// out-of-range time fields become 0; `tenths` (10 ms units, 0..=199) adds its whole second.
/// Days past a month's end roll over as `mktime` does.
pub(crate) fn dos_time(date: u16, time: u16, tenths: u8) -> Option<crate::Timestamp> {
    if date == 0 {
        return None;
    }
    let day = i64::from(date & 0x1f);
    let month = i64::from((date >> 5) & 0x0f);
    let year = 1980 + i64::from(date >> 9);
    if !(1..=31).contains(&day) || !(1..=12).contains(&month) {
        return None;
    }
    let mut sec = i64::from(time & 0x1f) * 2;
    if sec > 60 {
        sec = 0;
    }
    if tenths >= 100 {
        sec += 1;
    }
    let mut min = i64::from((time >> 5) & 0x3f);
    if min > 59 {
        min = 0;
    }
    let mut hour = i64::from(time >> 11);
    if hour > 23 {
        hour = 0;
    }
    let days = days_from_civil(year, month, 1) + day - 1;
    Some(crate::Timestamp {
        secs: days * 86_400 + hour * 3600 + min * 60 + sec,
        nanos: u32::from(tenths % 100) * 10_000_000,
    })
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn dos_times_as_tsk_converts_them() {
        // 2026-11-26 01:20:36, as mkfs.fat/mcopy wrote it.
        let date = ((2026 - 1980) << 9) | (11 << 5) | 26;
        let time = (1 << 11) | (20 << 5) | 18;
        assert_eq!(dos_time(date, time, 0).unwrap().secs, 1_795_656_036);
        assert_eq!(dos_time(date, 0, 0).unwrap().secs, 1_795_651_200);
        let t = dos_time(date, time, 155).unwrap();
        assert_eq!((t.secs, t.nanos), (1_795_656_037, 550_000_000));
        assert_eq!(dos_time(0, time, 0), None);
        assert_eq!(dos_time(date & !0x1f, time, 0), None);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn runs_read_across_pieces_and_refuse_holes() {
        let vol: Vec<u8> = (0..=255u8).collect();
        let mut runs = Vec::new();
        push_run(&mut runs, 10, 4);
        push_run(&mut runs, 14, 2);
        push_run(&mut runs, 100, 4);
        assert_eq!(runs.len(), 2);
        let r = Runs {
            vol: &vol,
            volume: "v".into(),
            size: 12,
            runs,
            short_reason: None,
        };
        let mut buf = [0u8; 10];
        r.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [10, 11, 12, 13, 14, 15, 100, 101, 102, 103]);
        assert!(r.read_at(&mut buf, 10).is_err());
        assert_eq!(r.read_at(&mut buf, 12).unwrap(), 0);
    }
}
