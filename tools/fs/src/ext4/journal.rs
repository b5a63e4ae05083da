//! The jbd2 journal of ext3/ext4, replayed in memory.
//!
//! A file system taken from a running or crashed system (a hypervisor snapshot, a pulled
//! disk) says `needs_recovery`: metadata the kernel committed to its journal has not all
//! reached its home blocks yet. The kernel and e2fsck replay the journal before anything
//! else reads the file system; a reader that does not (TSK) shows an older, possibly
//! inconsistent state. This module reads the log the way jbd2's recovery does
//! (`fs/jbd2/recovery.c`: a scan pass, a revoke pass, a replay pass) and gives the
//! committed blocks as an overlay: the image itself is never written.
//!
//! The log is untrusted: every block is bounded by the journal's own length, the walk
//! stops at the first block that is not the next expected one, a transaction counts only
//! with its commit block, checksums (v2/v3) are verified as the kernel does, and the
//! overlay is capped in memory.

use crate::crc32c::crc32c;
use std::collections::{BTreeMap, HashMap};
use vestige_evidence::read_at::ReadAt;

/// `h_magic` of every journal metadata block.
pub const MAGIC: u32 = 0xC03B_3998;
const DESCRIPTOR: u32 = 1;
const COMMIT: u32 = 2;
const SUPERBLOCK_V1: u32 = 3;
const SUPERBLOCK_V2: u32 = 4;
const REVOKE: u32 = 5;

const INCOMPAT_REVOKE: u32 = 0x1;
const INCOMPAT_64BIT: u32 = 0x2;
const INCOMPAT_ASYNC_COMMIT: u32 = 0x4;
const INCOMPAT_CSUM_V2: u32 = 0x8;
const INCOMPAT_CSUM_V3: u32 = 0x10;
const INCOMPAT_FAST_COMMIT: u32 = 0x20;
const INCOMPAT_KNOWN: u32 = INCOMPAT_REVOKE
    | INCOMPAT_64BIT
    | INCOMPAT_ASYNC_COMMIT
    | INCOMPAT_CSUM_V2
    | INCOMPAT_CSUM_V3
    | INCOMPAT_FAST_COMMIT;

const TAG_ESCAPE: u32 = 1;
const TAG_SAME_UUID: u32 = 2;
const TAG_LAST: u32 = 8;

/// 9999-12-31T23:59:59Z: a commit time past it is not a time.
const LATEST_TIME: i64 = 253_402_300_799;

/// Bytes of replayed blocks kept at most; a larger replay is refused (the file system is
/// then read as stored, and the notes say why).
pub const MAX_OVERLAY_BYTES: u64 = 512 << 20;

/// One committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Its transaction id (`h_sequence`).
    pub sequence: u32,
    /// The commit block's time (`h_commit_sec`, `h_commit_nsec`), when set.
    pub commit_time: Option<(i64, u32)>,
    /// File-system blocks it logs, in log order.
    pub blocks: Vec<u64>,
}

/// The outcome of reading a journal.
#[derive(Debug, Default)]
pub struct Replay {
    /// Committed transactions, oldest first.
    pub transactions: Vec<Transaction>,
    /// File-system block → its content after replay.
    pub overlay: BTreeMap<u64, Vec<u8>>,
    /// What the examiner must know: where the log ends and why, blocks skipped.
    pub notes: Vec<String>,
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

fn be64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The journal's geometry and features, from its superblock (journal block 0).
struct Header {
    /// Journal blocks in the log (`s_maxlen`); the log wraps from here to `first`.
    max_len: u64,
    first: u64,
    sequence: u32,
    start: u64,
    incompat: u32,
    csum_seed: u32,
}

impl Header {
    fn parse(b: &[u8], fs_block_size: u64, log_bytes: u64) -> Result<Self, String> {
        let kind = be32(b, 4);
        if be32(b, 0) != MAGIC || !(kind == SUPERBLOCK_V1 || kind == SUPERBLOCK_V2) {
            return Err(format!(
                "journal block 0: magic {:#010x} type {kind}, expected {MAGIC:#010x} type 3 or 4 \
                 (a jbd2 superblock)",
                be32(b, 0)
            ));
        }
        let block_size = u64::from(be32(b, 0xC));
        if block_size != fs_block_size {
            return Err(format!(
                "journal superblock s_blocksize (byte 12) is {block_size}, expected the file \
                 system's {fs_block_size}"
            ));
        }
        let max_len = u64::from(be32(b, 0x10));
        let first = u64::from(be32(b, 0x14));
        if max_len > log_bytes / block_size || first == 0 || first >= max_len {
            return Err(format!(
                "journal superblock s_maxlen {max_len} / s_first {first} (bytes 16, 20) do not \
                 fit the journal inode's {} blocks",
                log_bytes / block_size
            ));
        }
        let start = u64::from(be32(b, 0x1C));
        if start != 0 && (start < first || start >= max_len) {
            return Err(format!(
                "journal superblock s_start (byte 28) is {start}, expected 0 or {first}..{max_len}"
            ));
        }
        let incompat = if kind == SUPERBLOCK_V2 {
            be32(b, 0x28)
        } else {
            0
        };
        if incompat & !INCOMPAT_KNOWN != 0 {
            return Err(format!(
                "journal incompatible feature bits {:#x} (byte 40) are unknown",
                incompat & !INCOMPAT_KNOWN
            ));
        }
        Ok(Self {
            max_len,
            first,
            sequence: be32(b, 0x18),
            start,
            incompat,
            // jbd2_chksum(journal, ~0, s_uuid, 16).
            csum_seed: crc32c(!0, b.get(0x30..0x40).unwrap_or_default()),
        })
    }

    fn csum(&self) -> bool {
        self.incompat & (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3) != 0
    }

    /// Bytes of one descriptor tag (`journal_tag_bytes`).
    fn tag_bytes(&self) -> usize {
        if self.incompat & INCOMPAT_CSUM_V3 != 0 {
            return 16;
        }
        let mut n = 12;
        if self.incompat & INCOMPAT_CSUM_V2 != 0 {
            n += 2;
        }
        if self.incompat & INCOMPAT_64BIT == 0 {
            n -= 4;
        }
        n
    }

    /// The log block after `b`, wrapping at the end of the log.
    fn next(&self, b: u64) -> u64 {
        if b + 1 >= self.max_len {
            self.first
        } else {
            b + 1
        }
    }

    /// The checksum of a whole metadata block whose stored checksum (4 bytes at `at`) is
    /// read as zero.
    fn block_csum(&self, block: &[u8], at: usize) -> u32 {
        let head = block.get(..at).unwrap_or_default();
        let tail = block.get(at + 4..).unwrap_or_default();
        crc32c(crc32c(crc32c(self.csum_seed, head), &[0; 4]), tail)
    }
}

/// One logged block: where its data is in the log and how to check it.
struct Logged {
    fs_block: u64,
    log_block: u64,
    escaped: bool,
    checksum: u32,
}

/// Reads `log` (the journal inode's content) of a file system with `fs_block_size`-byte
/// blocks and `fs_blocks` blocks, and replays every committed transaction from `s_start`.
///
/// # Errors
/// A journal superblock this reader cannot trust (geometry, unknown features, the block
/// size): nothing is replayed.
pub fn replay(log: &dyn ReadAt, fs_block_size: u64, fs_blocks: u64) -> Result<Replay, String> {
    let bs = usize::try_from(fs_block_size).map_err(|_| "block size".to_string())?;
    let read = |n: u64| -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; bs];
        log.read_exact_at(&mut b, n * fs_block_size)
            .map_err(|e| format!("journal block {n}: cannot read: {e}"))?;
        Ok(b)
    };
    let h = Header::parse(&read(0)?, fs_block_size, log.size())?;
    let mut out = Replay::default();
    if h.start == 0 {
        out.notes
            .push("the journal is clean (s_start 0): nothing to replay".into());
        return Ok(out);
    }
    if h.incompat & INCOMPAT_FAST_COMMIT != 0 {
        out.notes
            .push("fast-commit blocks (after the log) are not replayed".into());
    }
    // Pass 1: scan. Each step moves one log block forward; the log holds max_len blocks,
    // so a walk longer than that is going round.
    let mut pending: Vec<Logged> = Vec::new();
    let mut committed: Vec<(Transaction, Vec<Logged>)> = Vec::new();
    let mut revoked: HashMap<u64, u32> = HashMap::new();
    let mut at = h.start;
    let mut sequence = h.sequence;
    let mut walked = 0u64;
    let end = loop {
        if walked > h.max_len {
            break format!("the log goes round past its {} blocks", h.max_len);
        }
        walked += 1;
        let b = read(at)?;
        let (magic, kind, seq) = (be32(&b, 0), be32(&b, 4), be32(&b, 8));
        if magic != MAGIC || seq != sequence {
            break format!(
                "log block {at} is not the next block of transaction {sequence} (the end of \
                 the log)"
            );
        }
        match kind {
            DESCRIPTOR => {
                if h.csum() && be32(&b, bs - 4) != h.block_csum(&b, bs - 4) {
                    break format!("descriptor block {at} of transaction {sequence}: bad checksum");
                }
                let limit = if h.csum() { bs - 4 } else { bs };
                let tag_bytes = h.tag_bytes();
                let mut p = 12;
                let mut data_at = at;
                while p + tag_bytes <= limit {
                    let v3 = h.incompat & INCOMPAT_CSUM_V3 != 0;
                    let lo = u64::from(be32(&b, p));
                    let (flags, hi_at, checksum) = if v3 {
                        (be32(&b, p + 4), p + 8, be32(&b, p + 12))
                    } else {
                        let f = u32::from(u16::from_be_bytes([
                            b.get(p + 6).copied().unwrap_or(0),
                            b.get(p + 7).copied().unwrap_or(0),
                        ]));
                        let c = u32::from(u16::from_be_bytes([
                            b.get(p + 4).copied().unwrap_or(0),
                            b.get(p + 5).copied().unwrap_or(0),
                        ]));
                        (f, p + 8, c)
                    };
                    let hi = if h.incompat & INCOMPAT_64BIT != 0 {
                        u64::from(be32(&b, hi_at))
                    } else {
                        0
                    };
                    data_at = h.next(data_at);
                    walked += 1;
                    pending.push(Logged {
                        fs_block: lo | (hi << 32),
                        log_block: data_at,
                        escaped: flags & TAG_ESCAPE != 0,
                        checksum,
                    });
                    p += tag_bytes;
                    if flags & TAG_SAME_UUID == 0 {
                        p += 16;
                    }
                    if flags & TAG_LAST != 0 {
                        break;
                    }
                }
                at = data_at;
            }
            COMMIT => {
                if h.csum() && be32(&b, 0x10) != h.block_csum(&b, 0x10) {
                    pending.clear();
                    break format!("commit block {at} of transaction {sequence}: bad checksum");
                }
                let secs = be64(&b, 0x30);
                let commit_time = i64::try_from(secs)
                    .ok()
                    .filter(|&s| s > 0 && s <= LATEST_TIME)
                    .map(|s| (s, be32(&b, 0x38)));
                if commit_time.is_none() && secs != 0 {
                    out.notes.push(format!(
                        "transaction {sequence}: commit time {secs:#018x} (bytes 48..56 of log \
                         block {at}) is not a time (e2fsprogs' debugfs writes a 32-bit value \
                         there)"
                    ));
                }
                let logged = std::mem::take(&mut pending);
                committed.push((
                    Transaction {
                        sequence,
                        commit_time,
                        blocks: logged.iter().map(|l| l.fs_block).collect(),
                    },
                    logged,
                ));
                sequence = sequence.wrapping_add(1);
            }
            REVOKE => {
                if h.csum() && be32(&b, bs - 4) != h.block_csum(&b, bs - 4) {
                    break format!("revoke block {at} of transaction {sequence}: bad checksum");
                }
                let used = usize::try_from(be32(&b, 12)).unwrap_or(usize::MAX);
                let limit = used.min(if h.csum() { bs - 4 } else { bs });
                let wide = h.incompat & INCOMPAT_64BIT != 0;
                let step = if wide { 8 } else { 4 };
                let mut p = 16;
                while p + step <= limit {
                    let blk = if wide {
                        be64(&b, p)
                    } else {
                        u64::from(be32(&b, p))
                    };
                    // The latest transaction revoking a block wins.
                    let e = revoked.entry(blk).or_insert(sequence);
                    if sequence.wrapping_sub(*e).cast_signed() > 0 {
                        *e = sequence;
                    }
                    p += step;
                }
            }
            other => {
                break format!("log block {at}: block type {other} in transaction {sequence}");
            }
        }
        at = h.next(at);
    };
    if !pending.is_empty() {
        out.notes.push(format!(
            "transaction {sequence} has no commit block: its {} blocks are not replayed",
            pending.len()
        ));
    }
    // Passes 2 and 3: a block logged in transaction T is replayed unless a revoke record
    // of a transaction at or after T names it; later transactions overwrite earlier ones.
    let (mut skipped_revoked, mut bad_csum, mut outside) = (0u64, 0u64, 0u64);
    let mut bytes = 0u64;
    for (t, logged) in &committed {
        for l in logged {
            if revoked
                .get(&l.fs_block)
                .is_some_and(|&r| r.wrapping_sub(t.sequence).cast_signed() >= 0)
            {
                skipped_revoked += 1;
                continue;
            }
            if l.fs_block >= fs_blocks {
                outside += 1;
                continue;
            }
            let mut data = read(l.log_block)?;
            if h.csum() {
                let sum = crc32c(
                    crc32c(h.csum_seed, &t.sequence.to_be_bytes()),
                    data.as_slice(),
                );
                let want = if h.incompat & INCOMPAT_CSUM_V3 != 0 {
                    sum
                } else {
                    sum & 0xFFFF
                };
                if want != l.checksum {
                    bad_csum += 1;
                    continue;
                }
            }
            if l.escaped {
                if let Some(m) = data.get_mut(..4) {
                    m.copy_from_slice(&MAGIC.to_be_bytes());
                }
            }
            if out.overlay.insert(l.fs_block, data).is_none() {
                bytes += fs_block_size;
                if bytes > MAX_OVERLAY_BYTES {
                    return Err(format!(
                        "replaying would hold more than {MAX_OVERLAY_BYTES} bytes of blocks"
                    ));
                }
            }
        }
    }
    out.transactions = committed.into_iter().map(|(t, _)| t).collect();
    out.notes.push(format!("the log ends: {end}"));
    for (n, why) in [
        (skipped_revoked, "revoked by a later transaction"),
        (bad_csum, "with a bad data checksum"),
        (outside, "past the end of the file system"),
    ] {
        if n > 0 {
            out.notes
                .push(format!("{n} logged blocks not replayed: {why}"));
        }
    }
    Ok(out)
}
