//! Runlists and the reader of an attribute's value: resident bytes, or clusters mapped by
//! a runlist (sparse runs and bytes past the initialized size read as zeros; LZNT1
//! compression units decompressed).

use crate::{FsError, ReadAt};
use std::io;
use std::sync::Mutex;

/// At most this many runs in one attribute (a badly fragmented 1 TiB file has ~10^6).
pub const MAX_RUNS: usize = 1 << 21;
/// Bytes of one LZNT1 chunk, decompressed.
const LZNT1_CHUNK: usize = 4096;

/// Clusters `vcn .. vcn + len` of a value, at `lcn` (None: sparse, reads as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First virtual cluster.
    pub vcn: u64,
    /// Clusters.
    pub len: u64,
    /// First logical cluster, or None when sparse.
    pub lcn: Option<u64>,
}

/// Decodes a runlist starting at `start_vcn`, appending to `runs`; every real run must
/// lie inside the volume's `clusters`.
pub fn decode(
    bytes: &[u8],
    start_vcn: u64,
    clusters: u64,
    runs: &mut Vec<Run>,
    volume: &str,
    offset: u64,
) -> Result<(), FsError> {
    let mut at = 0usize;
    let mut vcn = start_vcn;
    let mut lcn: i64 = 0;
    loop {
        let bad = |reason: String| {
            FsError::invalid(
                volume,
                offset.saturating_add(at as u64),
                "ntfs runlist",
                reason,
            )
        };
        let head = *bytes
            .get(at)
            .ok_or_else(|| bad("runs past the end of the attribute".into()))?;
        if head == 0 {
            return Ok(());
        }
        if runs.len() >= MAX_RUNS {
            return Err(bad(format!("more than {MAX_RUNS} runs")));
        }
        let len_bytes = usize::from(head & 0x0F);
        let off_bytes = usize::from(head >> 4);
        if len_bytes == 0 || len_bytes > 8 || off_bytes > 8 {
            return Err(bad(format!("header byte {head:#04x}")));
        }
        let field = |from: usize, n: usize| -> Option<[u8; 8]> {
            let s = bytes.get(from..from.checked_add(n)?)?;
            let mut v = [0u8; 8];
            v.get_mut(..n)?.copy_from_slice(s);
            // Sign-extend.
            if n > 0 && n < 8 && s.last().is_some_and(|&b| b & 0x80 != 0) {
                v.get_mut(n..)?.fill(0xFF);
            }
            Some(v)
        };
        let len_raw =
            field(at + 1, len_bytes).ok_or_else(|| bad("run length past the end".into()))?;
        let len = i64::from_le_bytes(len_raw);
        let len = u64::try_from(len)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| bad(format!("run length {len}")))?;
        let run_lcn = if off_bytes == 0 {
            None
        } else {
            let delta = i64::from_le_bytes(
                field(at + 1 + len_bytes, off_bytes)
                    .ok_or_else(|| bad("run offset past the end".into()))?,
            );
            lcn = lcn
                .checked_add(delta)
                .ok_or_else(|| bad("run offset overflows".into()))?;
            let first =
                u64::try_from(lcn).map_err(|_| bad(format!("run starts at cluster {lcn}")))?;
            match first.checked_add(len) {
                Some(e) if e <= clusters => {}
                _ => {
                    return Err(bad(format!(
                        "run of {len} clusters at cluster {first} past the volume's {clusters}"
                    )))
                }
            }
            Some(first)
        };
        runs.push(Run {
            vcn,
            len,
            lcn: run_lcn,
        });
        vcn = vcn
            .checked_add(len)
            .ok_or_else(|| bad("VCN overflows".into()))?;
        at = at + 1 + len_bytes + off_bytes;
    }
}

/// Decompresses one LZNT1 buffer into `out` (at most `max` bytes); chunks that decompress
/// to less than 4096 bytes are padded with zeros, as NTFS reads them.
pub fn lznt1(input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let mut at = 0usize;
    while out.len() < max {
        let Some(head) = input
            .get(at..at + 2)
            .and_then(|h| h.try_into().ok())
            .map(u16::from_le_bytes)
        else {
            break;
        };
        if head == 0 {
            break;
        }
        let size = usize::from(head & 0x0FFF) + 1;
        let chunk = input
            .get(at + 2..at + 2 + size)
            .ok_or_else(|| format!("chunk of {size} bytes at {at} past the compressed data"))?;
        at += 2 + size;
        let start = out.len();
        if head & 0x8000 == 0 {
            out.extend_from_slice(chunk);
        } else {
            let mut i = 0usize;
            'chunk: while i < chunk.len() {
                let flags = chunk.get(i).copied().unwrap_or(0);
                i += 1;
                for bit in 0..8 {
                    if i >= chunk.len() {
                        break 'chunk;
                    }
                    if flags & (1 << bit) == 0 {
                        out.push(chunk.get(i).copied().unwrap_or(0));
                        i += 1;
                    } else {
                        let token = chunk
                            .get(i..i + 2)
                            .and_then(|t| t.try_into().ok())
                            .map(u16::from_le_bytes)
                            .ok_or("back-reference cut short")?;
                        i += 2;
                        let pos = out.len() - start;
                        if pos == 0 {
                            return Err("back-reference at the start of a chunk".into());
                        }
                        let mut len_mask: u16 = 0x0FFF;
                        let mut shift = 12u32;
                        let mut p = pos - 1;
                        while p >= 0x10 {
                            len_mask >>= 1;
                            shift -= 1;
                            p >>= 1;
                        }
                        let back = usize::from(token >> shift) + 1;
                        let n = usize::from(token & len_mask) + 3;
                        if back > pos {
                            return Err(format!(
                                "back-reference {back} bytes before a chunk's {pos}"
                            ));
                        }
                        for _ in 0..n {
                            let b = out.get(out.len() - back).copied().unwrap_or(0);
                            out.push(b);
                        }
                    }
                }
            }
        }
        let written = out.len() - start;
        if written > LZNT1_CHUNK {
            return Err(format!(
                "chunk decompresses to {written} bytes, more than {LZNT1_CHUNK}"
            ));
        }
        out.resize(start + LZNT1_CHUNK, 0);
    }
    out.truncate(max);
    Ok(())
}

/// An attribute's value as a `ReadAt`.
pub enum Value<'a> {
    /// Resident bytes.
    Resident(Vec<u8>),
    /// Clusters.
    Clusters(Clusters<'a>),
}

impl std::fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Resident(v) => write!(f, "Resident({} bytes)", v.len()),
            Self::Clusters(c) => write!(f, "Clusters({} runs, {} bytes)", c.runs.len(), c.size),
        }
    }
}

/// A non-resident value.
pub struct Clusters<'a> {
    pub vol: &'a dyn ReadAt,
    pub volume: String,
    pub cluster_size: u64,
    pub runs: Vec<Run>,
    pub size: u64,
    pub initialized: u64,
    /// Clusters per compression unit (0: not compressed).
    pub unit_clusters: u64,
    /// The last decompressed unit: (unit number, bytes).
    pub cache: Mutex<Option<(u64, Vec<u8>)>>,
}

impl Clusters<'_> {
    /// The byte ranges of the value that are stored on disk (not sparse, and before the
    /// initialized size), adjacent runs merged, in order; `None` when the value is
    /// compressed (its sparse runs then belong to compression units).
    pub fn stored_ranges(&self) -> Option<Vec<(u64, u64)>> {
        if self.unit_clusters != 0 {
            return None;
        }
        let end = self.size.min(self.initialized);
        let mut out: Vec<(u64, u64)> = Vec::new();
        for r in self.runs.iter().filter(|r| r.lcn.is_some()) {
            let from = r.vcn.saturating_mul(self.cluster_size).min(end);
            let to = r
                .vcn
                .saturating_add(r.len)
                .saturating_mul(self.cluster_size)
                .min(end);
            if from >= to {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.1 == from => last.1 = to,
                _ => out.push((from, to)),
            }
        }
        Some(out)
    }

    fn run_at(&self, vcn: u64) -> Option<&Run> {
        let i = self
            .runs
            .partition_point(|r| r.vcn.saturating_add(r.len) <= vcn);
        self.runs.get(i).filter(|r| r.vcn <= vcn)
    }

    /// Reads raw (uncompressed) bytes of the value at `off`, at most to the end of a run.
    fn read_raw(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let vcn = off / self.cluster_size;
        let run = self.run_at(vcn).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: ntfs runlist maps no cluster for VCN {vcn}",
                    self.volume
                ),
            )
        })?;
        let run_end = (run.vcn + run.len).saturating_mul(self.cluster_size);
        let n = usize::try_from(run_end.saturating_sub(off))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let dst = buf.get_mut(..n).unwrap_or(&mut []);
        match run.lcn {
            None => dst.fill(0),
            Some(lcn) => {
                let within = off - run.vcn * self.cluster_size;
                let at = lcn
                    .checked_mul(self.cluster_size)
                    .and_then(|b| b.checked_add(within))
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "cluster offset overflows")
                    })?;
                self.vol.read_exact_at(dst, at)?;
            }
        }
        Ok(n)
    }

    /// Reads compression unit `unit`, decompressed.
    fn unit(&self, unit: u64) -> io::Result<Vec<u8>> {
        let unit_bytes = self.unit_clusters * self.cluster_size;
        let first = unit * self.unit_clusters;
        let mut stored = Vec::new();
        let mut sparse = 0u64;
        let mut vcn = first;
        while vcn < first + self.unit_clusters {
            let Some(run) = self.run_at(vcn) else { break };
            let n = (run.vcn + run.len).min(first + self.unit_clusters) - vcn;
            match run.lcn {
                None => sparse += n,
                Some(_) => {
                    let old = stored.len();
                    let add = usize::try_from(n * self.cluster_size).unwrap_or(0);
                    stored.resize(old + add, 0);
                    let mut done = 0usize;
                    while let Some(rest) = stored.get_mut(old + done..) {
                        if rest.is_empty() {
                            break;
                        }
                        let k = self.read_raw(
                            rest,
                            vcn.saturating_mul(self.cluster_size)
                                .saturating_add(done as u64),
                        )?;
                        if k == 0 {
                            break;
                        }
                        done += k;
                    }
                }
            }
            vcn += n;
        }
        let max = usize::try_from(unit_bytes).unwrap_or(0);
        if sparse == 0 {
            // Stored uncompressed.
            stored.resize(max, 0);
            return Ok(stored);
        }
        let mut out = Vec::with_capacity(max);
        if !stored.is_empty() {
            lznt1(&stored, max, &mut out).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: ntfs LZNT1 unit {unit}: {e}", self.volume),
                )
            })?;
        }
        out.resize(max, 0);
        Ok(out)
    }
}

impl ReadAt for Value<'_> {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        match self {
            Self::Resident(v) => {
                let Some(src) = usize::try_from(off).ok().and_then(|o| v.get(o..)) else {
                    return Ok(0);
                };
                let n = src.len().min(buf.len());
                if let (Some(d), Some(s)) = (buf.get_mut(..n), src.get(..n)) {
                    d.copy_from_slice(s);
                }
                Ok(n)
            }
            Self::Clusters(c) => {
                if off >= c.size || buf.is_empty() {
                    return Ok(0);
                }
                let want = usize::try_from(c.size - off)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let buf = buf.get_mut(..want).unwrap_or(&mut []);
                if off >= c.initialized {
                    buf.fill(0);
                    return Ok(want);
                }
                let init_n = usize::try_from(c.initialized - off)
                    .unwrap_or(usize::MAX)
                    .min(want);
                if c.unit_clusters == 0 {
                    return c.read_raw(buf.get_mut(..init_n).unwrap_or(&mut []), off);
                }
                let unit_bytes = c.unit_clusters * c.cluster_size;
                let unit = off / unit_bytes;
                let within = usize::try_from(off % unit_bytes).unwrap_or(0);
                let mut cache = c
                    .cache
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let data = match cache.as_ref() {
                    Some((u, d)) if *u == unit => d,
                    _ => &cache.insert((unit, c.unit(unit)?)).1,
                };
                let src = data.get(within..).unwrap_or(&[]);
                let n = src.len().min(init_n);
                if let (Some(d), Some(s)) = (buf.get_mut(..n), src.get(..n)) {
                    d.copy_from_slice(s);
                }
                Ok(n)
            }
        }
    }

    fn size(&self) -> u64 {
        match self {
            Self::Resident(v) => v.len() as u64,
            Self::Clusters(c) => c.size,
        }
    }
}
