//! The ext3/4 journal in the super-timeline: when each transaction still in the log was
//! committed, and the earlier versions of deleted inodes its copies of inode table blocks
//! hold. The journal keeps metadata blocks as they were when they were logged, after the
//! file system itself has moved on: a deleted file's size, owner and times survive there
//! (what ext4magic and extundelete read).

use crate::collected::Collected;
use crate::event::{utc_text, Event, Evidence, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use vestige_fs::ext4::{Ext4, JournalInode};
use vestige_fs::FileSystem;

/// Earlier inode versions turned into events at most.
pub const MAX_JOURNAL_INODES: usize = 100_000;

/// What the journal held, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JournalSummary {
    /// Transactions in the live log (replayed when the file system is read).
    pub live_transactions: usize,
    /// Older transactions still in the log area.
    pub old_transactions: usize,
    /// Copies of file-system blocks in the log.
    pub blocks_logged: usize,
    /// Why the live log ends.
    pub live_end: String,
    /// Earlier versions of inodes that are free now.
    pub deleted_inodes: usize,
}

/// The journal of `fs` as events of volume `volume`; `None` when the file system has no
/// journal inode (ext2, or an external journal).
#[must_use]
pub fn collect(fs: &Ext4<'_>, volume: &str) -> Option<(JournalSummary, Collected)> {
    if fs.journal_inode() == 0 {
        return None;
    }
    let mut out = Collected::default();
    let listing = match fs.journal_listing() {
        Ok(l) => l,
        Err(e) => {
            out.problem(format!("{volume}: ext4 journal: {e}"));
            return Some((JournalSummary::default(), out));
        }
    };
    let block_size = u64::from(fs.info().block_size);
    let base = Evidence {
        volume: volume.to_string(),
        inode: Some(u64::from(fs.journal_inode())),
        ..Evidence::default()
    };
    // Per transaction: whether it is live, and how many blocks it logged.
    let mut txs: BTreeMap<(bool, u32), usize> = BTreeMap::new();
    for e in &listing.entries {
        let n = txs.entry((e.live, e.sequence)).or_default();
        if e.kind == "data" {
            *n += 1;
        }
    }
    for e in listing.entries.iter().filter(|e| e.kind == "commit") {
        let Some((secs, nanos)) = e.commit_time else {
            continue;
        };
        let blocks = txs.get(&(e.live, e.sequence)).copied().unwrap_or(0);
        let state = if e.live {
            "in the live log: replayed when the file system is read"
        } else {
            "already written home; still in the log"
        };
        out.events.push(
            Event::new(
                Timestamp { secs, nanos },
                "ext4_journal",
                "journal_commit",
                format!(
                    "ext4 journal transaction {} committed: {blocks} blocks logged ({state})",
                    e.sequence
                ),
                Evidence {
                    record: Some(u64::from(e.sequence)),
                    ..base.at_offset(e.log_block * block_size)
                },
            )
            .field("transaction", e.sequence.to_string())
            .field("blocks", blocks.to_string())
            .field("live", e.live.to_string()),
        );
    }
    let inodes = match fs.journal_inodes(&listing, MAX_JOURNAL_INODES) {
        Ok(i) => i,
        Err(e) => {
            out.problem(format!("{volume}: ext4 journal: {e}"));
            Vec::new()
        }
    };
    for i in &inodes {
        if let Some(ev) = inode_event(i, &base, block_size) {
            out.events.push(ev);
        }
    }
    let summary = JournalSummary {
        live_transactions: txs.keys().filter(|(live, _)| *live).count(),
        old_transactions: txs.keys().filter(|(live, _)| !*live).count(),
        blocks_logged: listing.entries.iter().filter(|e| e.kind == "data").count(),
        live_end: listing.live_end,
        deleted_inodes: inodes.len(),
    };
    Some((summary, out))
}

/// One earlier inode version as an event at its change time (the last time its inode was
/// written before the copy), with every time in the description and the fields.
fn inode_event(i: &JournalInode, base: &Evidence, block_size: u64) -> Option<Event> {
    let t = &i.times;
    let at = t.changed.or(t.modified).or(t.created).or(t.accessed)?;
    let show = |x: Option<Timestamp>| x.map_or_else(|| "-".to_string(), utc_text);
    let kind = serde_json::to_value(i.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut e = Event::new(
        at,
        "ext4_journal",
        "deleted_inode_in_journal",
        format!(
            "inode {} (free now) as journal transaction {} holds it: {kind}, {} bytes, owner \
             {}:{}, mode {:o}; modified {}, accessed {}, changed {}, created {}",
            i.inode,
            i.sequence,
            i.size,
            i.uid,
            i.gid,
            i.mode,
            show(t.modified),
            show(t.accessed),
            show(t.changed),
            show(t.created)
        ),
        Evidence {
            record: Some(u64::from(i.sequence)),
            ..base.at_offset(i.log_block * block_size)
        },
    )
    .field("deleted_inode", i.inode.to_string())
    .field("size", i.size.to_string())
    .field("uid", i.uid.to_string())
    .field("transaction", i.sequence.to_string());
    for (name, v) in [
        ("modified", t.modified),
        ("accessed", t.accessed),
        ("changed", t.changed),
        ("created", t.created),
    ] {
        if let Some(v) = v {
            e = e.field(name, utc_text(v));
        }
    }
    Some(e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::test_support::{ext4_of, have_tools, put, run};

    /// A deletion the journal remembers, made with debugfs as a kernel leaves it: the file
    /// removed on a copy; the changed blocks before and after the deletion written as two
    /// journal transactions (no checksums, so transaction 1's commit time can be set the
    /// kernel's way) and replayed (`jr`), the log left clean with both in it.
    #[test]
    fn a_deleted_file_and_the_commits_are_in_the_timeline() {
        if !have_tools(&["mkfs.ext4", "debugfs"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        put(&root, "home/alice/plan.txt", &b"the plan\n".repeat(3000));
        put(&root, "etc/hostname", b"web-01\n");
        let Some(bytes) = ext4_of(&root, 16) else {
            return;
        };
        let img = dir.path().join("fs.img");
        let path = img.to_str().unwrap();
        std::fs::write(&img, &bytes).unwrap();
        let stat =
            String::from_utf8(run("debugfs", &["-R", "stat /home/alice/plan.txt", path])).unwrap();
        let victim: u64 = stat
            .split("Inode: ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        run("debugfs", &["-w", "-R", "rm /home/alice/plan.txt", path]);
        let after = std::fs::read(&img).unwrap();
        let bs =
            1024usize << u32::from_le_bytes(bytes[1024 + 0x18..1024 + 0x1C].try_into().unwrap());
        let changed: Vec<usize> = (0..bytes.len() / bs)
            .filter(|&i| bytes[i * bs..(i + 1) * bs] != after[i * bs..(i + 1) * bs])
            .collect();
        let pick = |b: &[u8]| -> Vec<u8> {
            changed
                .iter()
                .flat_map(|&i| b[i * bs..(i + 1) * bs].to_vec())
                .collect()
        };
        let (tx1, tx2) = (dir.path().join("tx1"), dir.path().join("tx2"));
        std::fs::write(&tx1, pick(&bytes)).unwrap();
        std::fs::write(&tx2, pick(&after)).unwrap();
        let list: Vec<String> = changed.iter().map(ToString::to_string).collect();
        let cmds = dir.path().join("j.cmds");
        std::fs::write(
            &cmds,
            format!(
                "jo\njw -b {0} {1}\njw -b {0} {2}\njc\n",
                list.join(","),
                tx1.display(),
                tx2.display()
            ),
        )
        .unwrap();
        run("debugfs", &["-w", "-f", cmds.to_str().unwrap(), path]);
        // Transaction 1's commit block: h_commit_sec as the kernel writes it (64 bits).
        let commit_at = {
            let vol: &[u8] = &std::fs::read(&img).unwrap();
            let fs = Ext4::open_as_stored(&vol, "t").unwrap();
            let l = fs.journal_listing().unwrap();
            l.entries
                .iter()
                .find(|e| e.kind == "commit" && e.sequence == 1)
                .unwrap()
                .log_block
        };
        let home: u64 = String::from_utf8(run(
            "debugfs",
            &["-R", &format!("bmap <8> {commit_at}"), path],
        ))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
        let mut b = std::fs::read(&img).unwrap();
        let at = usize::try_from(home).unwrap() * bs + 0x30;
        b[at..at + 12].copy_from_slice(&[0, 0, 0, 0, 0x65, 0x5B, 0x2A, 0x40, 0, 0, 0, 7]);
        std::fs::write(&img, &b).unwrap();
        run("debugfs", &["-w", "-R", "jr", path]);
        let vol: &[u8] = &std::fs::read(&img).unwrap();
        let fs = Ext4::open(&vol, "t").unwrap();
        let (summary, got) = collect(&fs, "t:001").unwrap();
        assert!(got.problems.is_empty(), "{:?}", got.problems);
        assert_eq!(
            (
                summary.live_transactions,
                summary.old_transactions,
                summary.deleted_inodes
            ),
            (0, 2, 1),
            "{summary:?}"
        );
        // 0x655B2A40 = 1700473408 = 2023-11-20T09:43:28Z, and 7 ns.
        let commit = got
            .events
            .iter()
            .find(|e| e.kind == "journal_commit")
            .unwrap();
        assert_eq!((commit.time.secs, commit.time.nanos), (1_700_473_408, 7));
        assert_eq!(commit.evidence.record, Some(1));
        assert_eq!(commit.evidence.inode, Some(8));
        let del = got
            .events
            .iter()
            .find(|e| e.kind == "deleted_inode_in_journal")
            .unwrap();
        assert_eq!(del.fields.get("deleted_inode"), Some(&victim.to_string()));
        assert_eq!(del.fields.get("size").map(String::as_str), Some("27000"));
        // Its times are those debugfs showed before the deletion.
        let mtime = stat
            .lines()
            .find(|l| l.trim_start().starts_with("mtime: 0x"))
            .unwrap();
        let secs = i64::from_str_radix(mtime.trim_start()[9..17].trim(), 16).unwrap();
        assert!(del
            .fields
            .get("modified")
            .unwrap()
            .starts_with(&utc_text(Timestamp { secs, nanos: 0 })[..19]));
        assert!(
            del.description
                .contains("(free now) as journal transaction 1 holds it: regular"),
            "{}",
            del.description
        );
    }
}
