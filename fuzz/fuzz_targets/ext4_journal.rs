//! `vestige_fs::ext4::journal::replay` and `list` over arbitrary bytes taken as a jbd2
//! log.
//!
//! The first byte picks the file system's block size (1, 2 or 4 KiB); the rest is the
//! journal inode's content. Invariants: replay never panics or loops (the walk is bounded
//! by the log's own length); it fails with a message, or gives an overlay of whole blocks,
//! all inside the file system, and no more transactions than the log has blocks; the
//! listing names each log block at most once, in order, inside the log.
//!
//! Seeds (`fuzz/seeds/ext4_journal/`): the first 64 KiB of the journal of an 8 MiB
//! `mkfs.ext4 -b 1024` file system into which debugfs wrote a committed transaction
//! (`jo`, `jw -b …`), a revoke and an uncommitted transaction, without and with csum v3
//! (`jo -c`); `s_maxlen` set to 64 blocks to fit; selector byte 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_fs::ext4::journal::{list, replay};
use vestige_fs::ReadAt;

const FS_BLOCKS: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, log)) = data.split_first() else {
        return;
    };
    let bs = 1024u64 << (sel % 3);
    let vol: &dyn ReadAt = &log;
    match replay(vol, bs, FS_BLOCKS) {
        Ok(r) => {
            assert!(r.transactions.len() as u64 <= log.len() as u64 / bs + 1);
            for (block, content) in &r.overlay {
                assert!(*block < FS_BLOCKS);
                assert_eq!(content.len() as u64, bs);
            }
            assert!(!r.notes.is_empty());
        }
        Err(e) => assert!(!e.is_empty()),
    }
    match list(vol, bs) {
        Ok(l) => {
            let blocks = log.len() as u64 / bs;
            assert!(l.entries.windows(2).all(|w| w[0].log_block < w[1].log_block));
            assert!(l.entries.iter().all(|e| e.log_block < blocks));
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
