//! Reading a failing source without giving up: bad sectors are retried, then zero-filled
//! and recorded, and the acquisition goes on.
//!
//! [`RescueReader`] wraps the source's reader, so the pipeline keeps its ordered,
//! compressed stream and never sees an error for a bad sector. Each read the pipeline
//! makes (one chunk, 4 MiB) goes through ddrescue's phases in miniature:
//! * **copy:** the whole chunk in one read; a healthy disk never leaves this phase;
//! * **trim:** after an error, the chunk again in 64 KiB blocks, so good blocks cost one
//!   read each;
//! * **scrape:** each block that still fails, one logical sector at a time, each sector
//!   tried `1 + retries` times, with O_DIRECT when the source allows it: a buffered read
//!   fetches a whole page, so one bad sector would fail its seven neighbours too, and a
//!   retry through the page cache would not reach the device.
//!
//! A sector that never reads is zero-filled in the image and recorded (merged into
//! ranges) for the manifest and `errors.map`. The phases run per chunk rather than over
//! the whole disk, because the image is a stream written in source order; the pipeline's
//! other reader thread keeps copying healthy chunks meanwhile.
//!
//! A source that is gone is not a bad sector: ENODEV, ENXIO, ENOMEDIUM or ESHUTDOWN, or a
//! size that no longer matches the one at open (a pulled USB stick, a hot-unplugged VM
//! disk, a resized file), ends the read with an error, and the pipeline stops cleanly.

use crate::pipeline::read_full;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use vestige_evidence::manifest::ByteRange;
use vestige_evidence::read_at::ReadAt;

/// Block size of the trim phase.
const TRIM_BLOCK_BYTES: u64 = 64 << 10;
/// O_DIRECT buffers are aligned to this (covers 512 and 4096-byte sectors).
const DIRECT_ALIGN: usize = 4096;

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RescueConfig {
    /// Extra attempts per bad sector after the first.
    pub retries: u32,
    /// The source's logical sector size: the unit that is zero-filled and recorded.
    pub sector_bytes: u32,
}

impl Default for RescueConfig {
    fn default() -> Self {
        RescueConfig {
            retries: 2,
            sector_bytes: 512,
        }
    }
}

/// What rescuing found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RescueReport {
    /// Sectors that never read, zero-filled in the image, merged and ascending.
    pub unreadable: Vec<ByteRange>,
    /// Sectors that failed at first and read on a retry.
    pub recovered_sectors: u64,
    /// Reads that failed and were split (trim phase entered).
    pub failed_reads: u64,
    /// Whether scraping used O_DIRECT.
    pub direct_io: bool,
}

impl RescueReport {
    /// Bytes zero-filled.
    #[must_use]
    pub fn unreadable_bytes(&self) -> u64 {
        self.unreadable.iter().map(|r| r.length_bytes).sum()
    }
}

/// A [`ReadAt`] over a failing source: see the module docs.
pub struct RescueReader<'a> {
    inner: &'a dyn ReadAt,
    /// The same source opened with O_DIRECT, for the scrape phase; dropped at its first
    /// EINVAL (an alignment the device does not accept).
    direct: Mutex<Option<File>>,
    cfg: RescueConfig,
    size: u64,
    /// Reports the source's current size, to tell a vanished or resized source from a
    /// bad sector.
    current_size: Box<dyn Fn() -> io::Result<u64> + Send + Sync + 'a>,
    bad: Mutex<BTreeMap<u64, u64>>,
    recovered: AtomicU64,
    failed_reads: AtomicU64,
    used_direct: AtomicBool,
}

impl std::fmt::Debug for RescueReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RescueReader")
            .field("cfg", &self.cfg)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A byte count within one read buffer as an index (it always fits: the buffer exists).
fn idx(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Errors that mean the source is gone, not that a sector is bad.
fn source_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODEV | libc::ENXIO | libc::ENOMEDIUM | libc::ESHUTDOWN)
    )
}

impl<'a> RescueReader<'a> {
    /// Wraps `inner`. `direct` is the source opened again with O_DIRECT, when that
    /// worked; `current_size` re-reads the source's size (BLKGETSIZE64 or fstat).
    pub fn new(
        inner: &'a dyn ReadAt,
        direct: Option<File>,
        cfg: RescueConfig,
        current_size: impl Fn() -> io::Result<u64> + Send + Sync + 'a,
    ) -> Self {
        let cfg = RescueConfig {
            sector_bytes: cfg.sector_bytes.clamp(512, 64 << 10),
            ..cfg
        };
        RescueReader {
            size: inner.size(),
            inner,
            direct: Mutex::new(direct),
            cfg,
            current_size: Box::new(current_size),
            bad: Mutex::new(BTreeMap::new()),
            recovered: AtomicU64::new(0),
            failed_reads: AtomicU64::new(0),
            used_direct: AtomicBool::new(false),
        }
    }

    /// Carries over what an earlier, interrupted run of the same acquisition found (a
    /// resume): its unreadable ranges and counters count in [`Self::report`] as if found now.
    pub fn seed(&self, earlier: &RescueReport) {
        let mut bad = self.bad.lock().unwrap_or_else(|p| p.into_inner());
        for r in &earlier.unreadable {
            bad.insert(r.offset_bytes, r.length_bytes);
        }
        drop(bad);
        self.recovered
            .fetch_add(earlier.recovered_sectors, Ordering::Relaxed);
        self.failed_reads
            .fetch_add(earlier.failed_reads, Ordering::Relaxed);
        if earlier.direct_io {
            self.used_direct.store(true, Ordering::Relaxed);
        }
    }

    /// What was found so far.
    pub fn report(&self) -> RescueReport {
        let bad = self.bad.lock().unwrap_or_else(|p| p.into_inner());
        let mut unreadable: Vec<ByteRange> = Vec::new();
        for (&start, &len) in bad.iter() {
            match unreadable.last_mut() {
                Some(last) if last.offset_bytes + last.length_bytes == start => {
                    last.length_bytes += len;
                }
                _ => unreadable.push(ByteRange {
                    offset_bytes: start,
                    length_bytes: len,
                }),
            }
        }
        RescueReport {
            unreadable,
            recovered_sectors: self.recovered.load(Ordering::Relaxed),
            failed_reads: self.failed_reads.load(Ordering::Relaxed),
            direct_io: self.used_direct.load(Ordering::Relaxed),
        }
    }

    /// Fails when the source is no longer the one opened: gone, or another size.
    fn check_still_there(&self, cause: &io::Error) -> io::Result<()> {
        if source_gone(cause) {
            return Err(io::Error::new(
                cause.kind(),
                format!("the source is gone ({cause})"),
            ));
        }
        match (self.current_size)() {
            Ok(now) if now == self.size => Ok(()),
            Ok(now) => Err(io::Error::other(format!(
                "the source changed size from {} to {now} bytes during acquisition ({cause})",
                self.size
            ))),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("the source cannot be queried any more ({e}), after: {cause}"),
            )),
        }
    }

    /// One attempt at the sector at `sector_start` (aligned), into `out` (a sector).
    fn read_sector(&self, out: &mut [u8], sector_start: u64) -> io::Result<()> {
        let mut direct = self.direct.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = direct.as_ref() {
            let mut backing = vec![0u8; out.len() + DIRECT_ALIGN];
            let skew = backing.as_ptr() as usize % DIRECT_ALIGN;
            let start = (DIRECT_ALIGN - skew) % DIRECT_ALIGN;
            let aligned = backing
                .get_mut(start..start + out.len())
                .ok_or_else(|| io::Error::other("internal: aligned buffer"))?;
            match file.read_exact_at(aligned, sector_start) {
                Ok(()) => {
                    out.copy_from_slice(aligned);
                    self.used_direct.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::warn!(error = %e, "O_DIRECT read refused; scraping through the page cache");
                    *direct = None;
                }
                Err(e) => return Err(e),
            }
        }
        drop(direct);
        self.inner.read_exact_at(out, sector_start)
    }

    /// Trim and scrape `buf` (at `offset`) after a failed read; returns the bytes that
    /// exist (fewer than `buf.len()` only at the end of the source).
    fn rescue(&self, buf: &mut [u8], offset: u64, first: &io::Error) -> io::Result<usize> {
        self.check_still_there(first)?;
        self.failed_reads.fetch_add(1, Ordering::Relaxed);
        let end = offset + buf.len() as u64;
        let mut at = offset;
        while at < end {
            let block_end = ((at / TRIM_BLOCK_BYTES + 1) * TRIM_BLOCK_BYTES).min(end);
            let range = idx(at - offset)..idx(block_end - offset);
            let block = buf.get_mut(range).unwrap_or_default();
            match read_full(self.inner, block, at) {
                Ok(n) if n == block.len() => {}
                Ok(n) => return Ok(idx(at - offset) + n),
                Err(e) => {
                    self.check_still_there(&e)?;
                    self.scrape(block, at)?;
                }
            }
            at = block_end;
        }
        Ok(buf.len())
    }

    /// Sector by sector over `block` (at `offset`): retried, else zero-filled and recorded.
    fn scrape(&self, block: &mut [u8], offset: u64) -> io::Result<()> {
        let sector = u64::from(self.cfg.sector_bytes);
        let end = offset + block.len() as u64;
        let mut sector_buf = vec![0u8; self.cfg.sector_bytes as usize];
        let mut s = offset / sector * sector;
        while s < end {
            // The last sector of a source whose size is not a multiple of the sector.
            let len = sector.min(self.size.saturating_sub(s));
            if len == 0 {
                break;
            }
            let one = sector_buf.get_mut(..idx(len)).unwrap_or_default();
            let mut ok = false;
            let mut last_err = None;
            for attempt in 0..=self.cfg.retries {
                match self.read_sector(one, s) {
                    Ok(()) => {
                        ok = true;
                        if attempt > 0 {
                            self.recovered.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                    Err(e) => {
                        self.check_still_there(&e)?;
                        last_err = Some(e);
                    }
                }
            }
            if !ok {
                one.fill(0);
                tracing::warn!(sector_offset = s, error = ?last_err, "unreadable sector zero-filled");
                self.bad
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(s, len);
            }
            // Copy the part of the sector inside the block.
            let from = s.max(offset);
            let to = (s + len).min(end);
            if let (Some(dst), Some(src)) = (
                block.get_mut(idx(from - offset)..idx(to - offset)),
                one.get(idx(from - s)..idx(to - s)),
            ) {
                dst.copy_from_slice(src);
            }
            s += sector;
        }
        Ok(())
    }
}

impl ReadAt for RescueReader<'_> {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.size.saturating_sub(offset_bytes)).unwrap_or(usize::MAX));
        let buf = buf.get_mut(..want).unwrap_or_default();
        match read_full(self.inner, buf, offset_bytes) {
            Ok(n) if n < want => {
                // The source ended early: a removed disk reports a capacity of 0. Say so
                // when its size changed; otherwise the pipeline reports the short read.
                let short = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("it ended after {n} of {want} bytes at byte {offset_bytes}"),
                );
                self.check_still_there(&short).map(|()| n)
            }
            Ok(n) => Ok(n),
            Err(e) => self.rescue(buf, offset_bytes, &e),
        }
    }

    fn size(&self) -> u64 {
        self.size
    }
}

/// GNU ddrescue's mapfile for an acquisition of `size` bytes of which the first
/// `acquired` were read (the rest never tried), with `bad` sectors zero-filled.
/// `ddrescuelog` reads it: `ddrescuelog -l- errors.map` lists the bad sectors.
#[must_use]
pub fn ddrescue_mapfile(size: u64, acquired: u64, bad: &[ByteRange], header: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    let done = acquired >= size;
    let _ = writeln!(out, "# current_pos  current_status  current_pass");
    let _ = writeln!(
        out,
        "0x{:08X}     {}               1",
        acquired.min(size),
        if done { '+' } else { '?' }
    );
    let _ = writeln!(out, "#      pos        size  status");
    let mut at = 0u64;
    let block = |out: &mut String, pos: u64, len: u64, status: char| {
        if len > 0 {
            let _ = writeln!(out, "0x{pos:08X}  0x{len:08X}  {status}");
        }
    };
    for r in bad.iter().filter(|r| r.offset_bytes < acquired) {
        block(&mut out, at, r.offset_bytes.saturating_sub(at), '+');
        let len = r.length_bytes.min(acquired - r.offset_bytes);
        block(&mut out, r.offset_bytes, len, '-');
        at = r.offset_bytes + len;
    }
    block(&mut out, at, acquired.min(size).saturating_sub(at), '+');
    block(
        &mut out,
        acquired.min(size),
        size.saturating_sub(acquired),
        '?',
    );
    out
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]
mod tests {
    use super::*;
    use crate::pipeline::{self, PipelineConfig, Progress, StopReason};
    use sha2::Digest;
    use std::collections::HashMap;
    use vestige_evidence::seekable::SeekableReader;

    /// A disk with bad sectors (EIO on any read that touches one), flaky sectors (EIO
    /// for their first `n` reads), and a point after which it is gone (ENODEV). Reads
    /// are counted per sector, so a test can see retries.
    struct Disk {
        data: Vec<u8>,
        bad: Vec<u64>,
        flaky: Mutex<HashMap<u64, u32>>,
        gone_after_reads: Option<u64>,
        reads: AtomicU64,
    }

    impl Disk {
        fn new(data: Vec<u8>, bad: &[u64]) -> Self {
            Disk {
                data,
                bad: bad.to_vec(),
                flaky: Mutex::new(HashMap::new()),
                gone_after_reads: None,
                reads: AtomicU64::new(0),
            }
        }
    }

    impl ReadAt for Disk {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst);
            if self.gone_after_reads.is_some_and(|g| n >= g) {
                return Err(io::Error::from_raw_os_error(libc::ENODEV));
            }
            let end = offset + buf.len() as u64;
            let touches = |s: u64| s * 512 < end && offset < (s + 1) * 512;
            if self.bad.iter().any(|&s| touches(s)) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let mut flaky = self.flaky.lock().unwrap();
            for (s, left) in flaky.iter_mut() {
                if touches(*s) && *left > 0 {
                    *left -= 1;
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                }
            }
            self.data.as_slice().read_at(buf, offset)
        }
        fn size(&self) -> u64 {
            self.data.len() as u64
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8 + 1).collect()
    }

    fn range(o: u64, l: u64) -> ByteRange {
        ByteRange {
            offset_bytes: o,
            length_bytes: l,
        }
    }

    #[test]
    fn bad_sectors_are_zero_filled_and_recorded_exactly() {
        // Sectors 3, 4 (adjacent), 300 and the last one; a 1 MiB + 512 disk.
        let len = (1 << 20) + 512;
        let last = len as u64 / 512 - 1;
        let disk = Disk::new(data(len), &[3, 4, 300, last]);
        let r = RescueReader::new(&disk, None, RescueConfig::default(), || Ok(len as u64));
        let mut buf = vec![0xaa; len];
        assert_eq!(r.read_at(&mut buf, 0).unwrap(), len);
        let mut want = data(len);
        for s in [3u64, 4, 300, last] {
            want[s as usize * 512..(s as usize + 1) * 512].fill(0);
        }
        assert_eq!(buf, want);
        let rep = r.report();
        assert_eq!(
            rep.unreadable,
            vec![
                range(3 * 512, 1024),
                range(300 * 512, 512),
                range(last * 512, 512)
            ]
        );
        assert_eq!(rep.unreadable_bytes(), 2048);
        assert_eq!(rep.recovered_sectors, 0);
    }

    #[test]
    fn a_sector_that_reads_on_retry_is_not_bad_and_retries_are_bounded() {
        let disk = Disk::new(data(8192), &[]);
        // Fails the whole read, the trim block and the first sector attempt.
        disk.flaky.lock().unwrap().insert(5, 3);
        let cfg = RescueConfig {
            retries: 2,
            sector_bytes: 512,
        };
        let r = RescueReader::new(&disk, None, cfg, || Ok(8192));
        let mut buf = vec![0u8; 8192];
        r.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, data(8192));
        let rep = r.report();
        assert!(rep.unreadable.is_empty());
        assert_eq!(rep.recovered_sectors, 1);

        // With no retries the same sector is bad; a bad sector costs 1 + retries reads.
        let disk = Disk::new(data(8192), &[9]);
        disk.flaky.lock().unwrap().insert(5, 3);
        let cfg = RescueConfig {
            retries: 0,
            sector_bytes: 512,
        };
        let r = RescueReader::new(&disk, None, cfg, || Ok(8192));
        r.read_at(&mut buf, 0).unwrap();
        assert_eq!(
            r.report().unreadable,
            vec![range(5 * 512, 512), range(9 * 512, 512)]
        );
        // 1 whole read + 1 trim block + 16 sector reads.
        assert_eq!(disk.reads.load(Ordering::SeqCst), 18);
    }

    #[test]
    fn a_vanished_or_resized_source_is_an_error_not_bad_sectors() {
        let mut disk = Disk::new(data(1 << 16), &[]);
        disk.gone_after_reads = Some(0);
        let r = RescueReader::new(&disk, None, RescueConfig::default(), || Ok(1 << 16));
        let e = r.read_at(&mut vec![0u8; 4096], 0).unwrap_err();
        assert!(e.to_string().contains("gone"), "{e}");
        assert!(r.report().unreadable.is_empty());

        let disk = Disk::new(data(1 << 16), &[7]);
        let r = RescueReader::new(&disk, None, RescueConfig::default(), || Ok(1 << 15));
        let e = r.read_at(&mut vec![0u8; 4096], 0).unwrap_err();
        assert!(
            e.to_string().contains("changed size from 65536 to 32768"),
            "{e}"
        );

        // A disk hot-unplugged mid-run reads as ended (0 bytes) and reports capacity 0.
        struct Removed(Vec<u8>);
        impl ReadAt for Removed {
            fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
                if offset >= 4096 {
                    return Ok(0);
                }
                self.0.as_slice().read_at(buf, offset)
            }
            fn size(&self) -> u64 {
                self.0.len() as u64
            }
        }
        let disk = Removed(data(1 << 16));
        let r = RescueReader::new(&disk, None, RescueConfig::default(), || Ok(0));
        assert_eq!(r.read_at(&mut vec![0u8; 4096], 0).unwrap(), 4096);
        let e = r.read_at(&mut vec![0u8; 4096], 8192).unwrap_err();
        assert!(
            e.to_string()
                .contains("changed size from 65536 to 0 bytes during acquisition (it ended after 0 of 4096 bytes at byte 8192)"),
            "{e}"
        );
        // Same size, ended early (a file truncated and regrown): the short read stands.
        let r = RescueReader::new(&disk, None, RescueConfig::default(), || Ok(1 << 16));
        assert_eq!(r.read_at(&mut vec![0u8; 4096], 8192).unwrap(), 0);
    }

    #[test]
    fn the_pipeline_over_a_failing_disk_completes_with_the_zero_filled_hash() {
        let len = 5 * 65536 + 1000;
        let bad = [130u64, 131, 600, 601, 602];
        let disk = Disk::new(data(len), &bad);
        let r = RescueReader::new(&disk, None, RescueConfig::default(), || Ok(len as u64));
        let mut cfg = PipelineConfig::new(1);
        cfg.chunk_size = 65536;
        let f = tempfile::NamedTempFile::new().unwrap();
        let out = pipeline::run(
            &r,
            f.reopen().unwrap(),
            &cfg,
            &Progress::default(),
            &AtomicBool::new(false),
        );
        assert!(out.stopped.is_none(), "{:?}", out.stopped);
        let mut want = data(len);
        for s in bad {
            want[s as usize * 512..(s as usize + 1) * 512].fill(0);
        }
        assert_eq!(out.sha256, hex::encode(sha2::Sha256::digest(&want)));
        let image = SeekableReader::open(std::fs::read(f.path()).unwrap()).unwrap();
        let mut back = vec![0u8; len];
        image.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, want);
        assert_eq!(
            r.report().unreadable,
            vec![range(130 * 512, 1024), range(600 * 512, 1536)]
        );

        // The same disk pulled mid-run: the pipeline stops with the reason.
        let mut disk = Disk::new(data(len), &bad);
        disk.gone_after_reads = Some(3);
        let r = RescueReader::new(&disk, None, RescueConfig::default(), || Ok(len as u64));
        let out = pipeline::run(
            &r,
            tempfile::tempfile().unwrap(),
            &cfg,
            &Progress::default(),
            &AtomicBool::new(false),
        );
        assert!(
            matches!(out.stopped, Some(StopReason::Read { .. })),
            "{:?}",
            out.stopped
        );
    }

    #[test]
    fn the_mapfile_covers_the_source_once_in_order() {
        let map = ddrescue_mapfile(
            10_000,
            10_000,
            &[range(512, 1024), range(9728, 272)],
            "Vestige test\nsecond line",
        );
        let blocks: Vec<&str> = map.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            blocks,
            vec![
                "0x00002710     +               1",
                "0x00000000  0x00000200  +",
                "0x00000200  0x00000400  -",
                "0x00000600  0x00002000  +",
                "0x00002600  0x00000110  -",
            ]
        );
        assert!(map.starts_with("# Vestige test\n# second line\n"));
        // Stopped at 4096: what follows was never tried.
        let map = ddrescue_mapfile(10_000, 4096, &[range(512, 512)], "");
        let blocks: Vec<&str> = map.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            blocks,
            vec![
                "0x00001000     ?               1",
                "0x00000000  0x00000200  +",
                "0x00000200  0x00000200  -",
                "0x00000400  0x00000C00  +",
                "0x00001000  0x00001710  ?",
            ]
        );
    }
}
