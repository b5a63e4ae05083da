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
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
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

    /// Whether a descriptor, revoke or commit block's own checksum (csum v2/v3) holds;
    /// true without checksums.
    fn checksum_ok(&self, kind: u32, b: &[u8]) -> bool {
        if !self.csum() {
            return true;
        }
        let at = match kind {
            DESCRIPTOR | REVOKE => b.len().saturating_sub(4),
            COMMIT => 0x10,
            _ => return true,
        };
        be32(b, at) == self.block_csum(b, at)
    }

    /// The tags of a descriptor block, up to the one marked last.
    fn tags(&self, b: &[u8]) -> Vec<Tag> {
        let limit = if self.csum() {
            b.len().saturating_sub(4)
        } else {
            b.len()
        };
        let tag_bytes = self.tag_bytes();
        let v3 = self.incompat & INCOMPAT_CSUM_V3 != 0;
        let be16 = |at: usize| {
            u32::from(u16::from_be_bytes([
                b.get(at).copied().unwrap_or(0),
                b.get(at + 1).copied().unwrap_or(0),
            ]))
        };
        let mut out = Vec::new();
        let mut p = 12;
        while p + tag_bytes <= limit {
            let lo = u64::from(be32(b, p));
            let (flags, hi_at, checksum) = if v3 {
                (be32(b, p + 4), p + 8, be32(b, p + 12))
            } else {
                (be16(p + 6), p + 8, be16(p + 4))
            };
            let hi = if self.incompat & INCOMPAT_64BIT != 0 {
                u64::from(be32(b, hi_at))
            } else {
                0
            };
            out.push(Tag {
                fs_block: lo | (hi << 32),
                flags,
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
        out
    }

    /// The block numbers a revoke block names.
    fn revoked(&self, b: &[u8]) -> Vec<u64> {
        let used = usize::try_from(be32(b, 12)).unwrap_or(usize::MAX);
        let limit = used.min(if self.csum() {
            b.len().saturating_sub(4)
        } else {
            b.len()
        });
        let wide = self.incompat & INCOMPAT_64BIT != 0;
        let step = if wide { 8 } else { 4 };
        let mut out = Vec::new();
        let mut p = 16;
        while p + step <= limit {
            out.push(if wide {
                be64(b, p)
            } else {
                u64::from(be32(b, p))
            });
            p += step;
        }
        out
    }

    /// The checksum of a whole metadata block whose stored checksum (4 bytes at `at`) is
    /// read as zero.
    fn block_csum(&self, block: &[u8], at: usize) -> u32 {
        let head = block.get(..at).unwrap_or_default();
        let tail = block.get(at + 4..).unwrap_or_default();
        crc32c(crc32c(crc32c(self.csum_seed, head), &[0; 4]), tail)
    }
}

/// One descriptor tag.
struct Tag {
    fs_block: u64,
    flags: u32,
    checksum: u32,
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        DESCRIPTOR => "descriptor",
        COMMIT => "commit",
        REVOKE => "revoke",
        SUPERBLOCK_V1 | SUPERBLOCK_V2 => "superblock",
        _ => "unknown",
    }
}

/// A commit block's time when it is one (`h_commit_sec`, `h_commit_nsec`), and the raw
/// seconds field.
fn commit_time(b: &[u8]) -> (Option<(i64, u32)>, u64) {
    let secs = be64(b, 0x30);
    let t = i64::try_from(secs)
        .ok()
        .filter(|&s| s > 0 && s <= LATEST_TIME)
        .map(|s| (s, be32(b, 0x38)));
    (t, secs)
}

fn not_a_time(sequence: u32, raw: u64, at: u64) -> String {
    format!(
        "transaction {sequence}: commit time {raw:#018x} (bytes 48..56 of log block {at}) is \
         not a time (e2fsprogs' debugfs writes a 32-bit value there)"
    )
}

/// One block of the log as the journal reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Its block number in the journal.
    pub log_block: u64,
    /// `descriptor`, `data`, `commit` or `revoke`.
    pub kind: &'static str,
    /// The transaction it belongs to.
    pub sequence: u32,
    /// Data: the file-system block it is a copy of.
    pub fs_block: Option<u64>,
    /// Data: the descriptor tag's flags (1 escaped, 2 same UUID, 4 deleted, 8 last).
    pub flags: Option<u32>,
    /// Data: the tag's checksum of the block (csum v2/v3).
    #[serde(skip)]
    pub checksum: u32,
    /// Revoke: the file-system blocks it revokes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<u64>,
    /// Commit: its time (seconds, nanoseconds), when the field holds one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_time: Option<(i64, u32)>,
    /// Commit: the raw `h_commit_sec`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_raw: Option<u64>,
    /// Part of the log a replay reads (from `s_start`); false: an older transaction still
    /// in the log, already written home, whose data blocks may since have been reused.
    pub live: bool,
    /// Descriptor, revoke or commit: whether its own checksum holds (None without
    /// checksums).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_ok: Option<bool>,
}

impl LogEntry {
    fn new(log_block: u64, kind: &'static str, sequence: u32, live: bool) -> Self {
        Self {
            log_block,
            kind,
            sequence,
            fs_block: None,
            flags: None,
            checksum: 0,
            revoked: Vec::new(),
            commit_time: None,
            commit_raw: None,
            live,
            checksum_ok: None,
        }
    }
}

/// The entries of a metadata block `b` at `at` (with the data blocks a descriptor's tags
/// announce, at the log blocks after it), or None when it is no journal metadata block.
/// `taken` are log blocks already attributed; a data block there is not claimed again.
fn entries_of(
    h: &Header,
    b: &[u8],
    at: u64,
    live: bool,
    taken: &HashSet<u64>,
) -> Option<Vec<LogEntry>> {
    let (magic, kind, seq) = (be32(b, 0), be32(b, 4), be32(b, 8));
    if magic != MAGIC || !matches!(kind, DESCRIPTOR | COMMIT | REVOKE) {
        return None;
    }
    let mut head = LogEntry::new(at, kind_name(kind), seq, live);
    head.checksum_ok = h.csum().then(|| h.checksum_ok(kind, b));
    let mut out = Vec::new();
    match kind {
        DESCRIPTOR => {
            out.push(head);
            let mut data_at = at;
            for tag in h.tags(b) {
                data_at = h.next(data_at);
                if taken.contains(&data_at) {
                    continue;
                }
                let mut e = LogEntry::new(data_at, "data", seq, live);
                e.fs_block = Some(tag.fs_block);
                e.flags = Some(tag.flags);
                e.checksum = tag.checksum;
                out.push(e);
            }
        }
        COMMIT => {
            let (t, raw) = commit_time(b);
            head.commit_time = t;
            head.commit_raw = Some(raw);
            out.push(head);
        }
        _ => {
            head.revoked = h.revoked(b);
            out.push(head);
        }
    }
    Some(out)
}

/// The live log: from `s_start`, each block the next one of the expected transaction,
/// until one is not (or a checksum fails). Returns the entries and why the walk ended.
fn walk_live(
    h: &Header,
    read: &dyn Fn(u64) -> Result<Vec<u8>, String>,
) -> Result<(Vec<LogEntry>, String), String> {
    let mut entries: Vec<LogEntry> = Vec::new();
    if h.start == 0 {
        return Ok((entries, "the journal is clean (s_start 0)".into()));
    }
    let none = HashSet::new();
    let mut at = h.start;
    let mut sequence = h.sequence;
    // Each step moves at least one log block forward; a walk longer than the log goes
    // round.
    let mut walked = 0u64;
    let end = loop {
        if walked > h.max_len {
            break format!("the log goes round past its {} blocks", h.max_len);
        }
        let b = read(at)?;
        let got = entries_of(h, &b, at, true, &none);
        let Some(got) = got.filter(|g| g.first().is_some_and(|e| e.sequence == sequence)) else {
            break format!(
                "log block {at} is not the next block of transaction {sequence} (the end of \
                 the log)"
            );
        };
        let head = got.first().map_or("", |e| e.kind);
        if got.first().and_then(|e| e.checksum_ok) == Some(false) {
            break format!("{head} block {at} of transaction {sequence}: bad checksum");
        }
        walked += got.len() as u64;
        at = got.last().map_or(at, |e| e.log_block);
        if head == "commit" {
            sequence = sequence.wrapping_add(1);
        }
        entries.extend(got);
        at = h.next(at);
    };
    Ok((entries, end))
}

/// Journal block `n` of `log`, whole, or why not.
fn block_reader(
    log: &dyn ReadAt,
    fs_block_size: u64,
) -> Result<impl Fn(u64) -> Result<Vec<u8>, String> + '_, String> {
    let bs = usize::try_from(fs_block_size).map_err(|_| "block size".to_string())?;
    Ok(move |n: u64| -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; bs];
        log.read_exact_at(&mut b, n.saturating_mul(fs_block_size))
            .map_err(|e| format!("journal block {n}: cannot read: {e}"))?;
        Ok(b)
    })
}

/// Reads `log` (the journal inode's content) of a file system with `fs_block_size`-byte
/// blocks and `fs_blocks` blocks, and replays every committed transaction from `s_start`.
///
/// # Errors
/// A journal superblock this reader cannot trust (geometry, unknown features, the block
/// size): nothing is replayed.
pub fn replay(log: &dyn ReadAt, fs_block_size: u64, fs_blocks: u64) -> Result<Replay, String> {
    let read = block_reader(log, fs_block_size)?;
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
    // Pass 1: scan.
    let (entries, end) = walk_live(&h, &read)?;
    let mut pending: Vec<&LogEntry> = Vec::new();
    let mut committed: Vec<(Transaction, Vec<&LogEntry>)> = Vec::new();
    let mut revoked: HashMap<u64, u32> = HashMap::new();
    for e in &entries {
        match e.kind {
            "data" => pending.push(e),
            "commit" => {
                if let (None, Some(raw)) = (e.commit_time, e.commit_raw.filter(|&r| r != 0)) {
                    out.notes.push(not_a_time(e.sequence, raw, e.log_block));
                }
                let logged = std::mem::take(&mut pending);
                committed.push((
                    Transaction {
                        sequence: e.sequence,
                        commit_time: e.commit_time,
                        blocks: logged.iter().filter_map(|l| l.fs_block).collect(),
                    },
                    logged,
                ));
            }
            "revoke" => {
                for &blk in &e.revoked {
                    // The latest transaction revoking a block wins.
                    let r = revoked.entry(blk).or_insert(e.sequence);
                    if e.sequence.wrapping_sub(*r).cast_signed() > 0 {
                        *r = e.sequence;
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(first) = pending.first() {
        out.notes.push(format!(
            "transaction {} is not committed (no valid commit block): its {} blocks are not \
             replayed",
            first.sequence,
            pending.len()
        ));
    }
    // Passes 2 and 3: a block logged in transaction T is replayed unless a revoke record
    // of a transaction at or after T names it; later transactions overwrite earlier ones.
    let (mut skipped_revoked, mut bad_csum, mut outside) = (0u64, 0u64, 0u64);
    let mut bytes = 0u64;
    for (t, logged) in &committed {
        for l in logged {
            let Some(fs_block) = l.fs_block else { continue };
            if revoked
                .get(&fs_block)
                .is_some_and(|&r| r.wrapping_sub(t.sequence).cast_signed() >= 0)
            {
                skipped_revoked += 1;
                continue;
            }
            if fs_block >= fs_blocks {
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
            if l.flags.is_some_and(|f| f & TAG_ESCAPE != 0) {
                if let Some(m) = data.get_mut(..4) {
                    m.copy_from_slice(&MAGIC.to_be_bytes());
                }
            }
            if out.overlay.insert(fs_block, data).is_none() {
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

/// Every block of a journal that can still be read as journal metadata: the live log
/// (what a replay reads) and older transactions still in the log area (written home
/// already; their copies of metadata blocks are earlier versions of those blocks).
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// Journal blocks in the log (`s_maxlen`).
    pub log_blocks: u64,
    /// First log block (`s_first`).
    pub first: u64,
    /// Where the live log starts (`s_start`; 0: clean) and its first transaction.
    pub start: u64,
    /// `s_sequence`.
    pub sequence: u32,
    /// The journal's incompatible features, by name.
    pub features: Vec<&'static str>,
    /// Why the live log ends.
    pub live_end: String,
    /// The entries, in log order.
    pub entries: Vec<LogEntry>,
}

/// Lists `log` (the journal inode's content) of a file system with `fs_block_size`-byte
/// blocks: the live log from `s_start` as a replay reads it, then every other log block
/// that is a descriptor, commit or revoke block of any transaction, with the data blocks
/// its tags announce. Each log block is read once; old entries are not checked against
/// each other (a later transaction may have reused an old one's data blocks, which then
/// belong to the later one).
///
/// # Errors
/// As [`replay`]: a journal superblock this reader cannot trust.
pub fn list(log: &dyn ReadAt, fs_block_size: u64) -> Result<Listing, String> {
    let read = block_reader(log, fs_block_size)?;
    let h = Header::parse(&read(0)?, fs_block_size, log.size())?;
    let (mut entries, live_end) = walk_live(&h, &read)?;
    let mut taken: HashSet<u64> = entries.iter().map(|e| e.log_block).collect();
    for at in h.first..h.max_len {
        if taken.contains(&at) {
            continue;
        }
        if let Some(got) = entries_of(&h, &read(at)?, at, false, &taken) {
            taken.extend(got.iter().map(|e| e.log_block));
            entries.extend(got);
        }
    }
    entries.sort_by_key(|e| e.log_block);
    let features = [
        (INCOMPAT_REVOKE, "revoke"),
        (INCOMPAT_64BIT, "64bit"),
        (INCOMPAT_ASYNC_COMMIT, "async_commit"),
        (INCOMPAT_CSUM_V2, "csum_v2"),
        (INCOMPAT_CSUM_V3, "csum_v3"),
        (INCOMPAT_FAST_COMMIT, "fast_commit"),
    ]
    .into_iter()
    .filter(|(bit, _)| h.incompat & bit != 0)
    .map(|(_, name)| name)
    .collect();
    Ok(Listing {
        log_blocks: h.max_len,
        first: h.first,
        start: h.start,
        sequence: h.sequence,
        features,
        live_end,
        entries,
    })
}
