//! Reading a whole image in order with the decoding spread over threads.
//!
//! Every reader is a `ReadAt` taking `&self`, so several threads can decode different
//! blocks of the same image at once (inflating EWF chunks, compressed qcow2 clusters and
//! streamOptimized grains is what costs). Hashing, exporting and converting all consume
//! the virtual disk front to back; [`for_each_block`] gives them that order while up to
//! `threads` blocks are decoded ahead. Memory stays bounded: a block is read only when it
//! is at most `2 × threads` blocks ahead of the one being consumed.

use crate::ReadAt;
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Block size used by the whole-image consumers: large enough that per-call overhead
/// vanishes, small enough that `2 × threads` of them in flight stay a few tens of MiB.
pub const BLOCK_BYTES: usize = 4 << 20;

/// Reads `image` from byte 0 to its end in blocks of `block` bytes (the last one shorter),
/// decoding with `threads` worker threads, and calls `sink(offset, block)` for each block in
/// order, on the calling thread.
///
/// Stops at the first error: a read error names the byte offset of its block; an error
/// from `sink` is returned as it is.
///
/// # Errors
/// The first read error (its message names the offset) or the first error of `sink`.
pub fn for_each_block<R, F>(image: &R, block: usize, threads: usize, mut sink: F) -> io::Result<()>
where
    R: ReadAt + ?Sized,
    F: FnMut(u64, Arc<Vec<u8>>) -> io::Result<()>,
{
    let size = image.size();
    let block = block.max(1);
    let block_u64 = block as u64;
    let blocks = size.div_ceil(block_u64);
    let threads = threads.clamp(1, 64);
    let window_blocks = 2 * threads;
    let window = window_blocks as u64;
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    // The index of the block the sink waits for; workers stay within `window` of it.
    let consumed = (Mutex::new(0u64), Condvar::new());
    let (tx, rx) = sync_channel::<(u64, io::Result<Vec<u8>>)>(window_blocks);

    std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, consumed) = (&next, &stop, &consumed);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= blocks || stop.load(Ordering::Relaxed) {
                    break;
                }
                {
                    let (lock, cv) = consumed;
                    let mut at = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    while i >= *at + window && !stop.load(Ordering::Relaxed) {
                        at = cv.wait(at).unwrap_or_else(PoisonError::into_inner);
                    }
                }
                let offset = i * block_u64;
                let len = usize::try_from((size - offset).min(block_u64)).unwrap_or(block);
                let mut buf = vec![0u8; len];
                let r = image
                    .read_exact_at(&mut buf, offset)
                    .map(|()| buf)
                    .map_err(|e| io::Error::new(e.kind(), format!("at byte {offset}: {e}")));
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);

        let mut pending: BTreeMap<u64, io::Result<Vec<u8>>> = BTreeMap::new();
        let mut want = 0u64;
        let result = (|| {
            while want < blocks {
                let r = match pending.remove(&want) {
                    Some(r) => r,
                    None => match rx.recv() {
                        Ok((i, r)) if i == want => r,
                        Ok((i, r)) => {
                            pending.insert(i, r);
                            continue;
                        }
                        Err(_) => {
                            return Err(io::Error::other(format!(
                                "the readers stopped before block {want}"
                            )))
                        }
                    },
                };
                let data = r?;
                sink(want * block_u64, Arc::new(data))?;
                want += 1;
                let (lock, cv) = &consumed;
                *lock.lock().unwrap_or_else(PoisonError::into_inner) = want;
                cv.notify_all();
            }
            Ok(())
        })();
        {
            // Under the lock, so a worker cannot miss the wake-up between its check and
            // its wait.
            let _held = consumed.0.lock().unwrap_or_else(PoisonError::into_inner);
            stop.store(true, Ordering::Relaxed);
        }
        consumed.1.notify_all();
        // Unblock workers waiting to send, so the scope can end.
        drop(rx);
        result
    })
}

/// The default number of decoding threads: the machine's parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A source that fails at one offset, and counts how far ahead it was read.
    struct Flaky {
        data: Vec<u8>,
        fail_at: Option<u64>,
    }

    impl ReadAt for Flaky {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            if Some(offset) == self.fail_at {
                return Err(io::Error::other("bad block"));
            }
            self.data.as_slice().read_at(buf, offset)
        }
        fn size(&self) -> u64 {
            self.data.len() as u64
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect()
    }

    #[test]
    fn blocks_arrive_in_order_and_cover_everything() {
        for (len, block, threads) in [
            (0, 7, 3),
            (1, 7, 3),
            (1000, 7, 1),
            (1000, 7, 4),
            (4096, 4096, 2),
            (10_000, 333, 8),
        ] {
            let src = Flaky {
                data: data(len),
                fail_at: None,
            };
            let mut got = Vec::new();
            let mut offsets = Vec::new();
            for_each_block(&src, block, threads, |off, b| {
                offsets.push(off);
                got.extend_from_slice(&b);
                Ok(())
            })
            .unwrap();
            assert_eq!(got, src.data, "len {len} block {block} threads {threads}");
            let expect: Vec<u64> = (0..len.div_ceil(block) as u64)
                .map(|i| i * block as u64)
                .collect();
            assert_eq!(offsets, expect);
        }
    }

    #[test]
    fn a_read_error_stops_with_its_offset() {
        let src = Flaky {
            data: data(10_000),
            fail_at: Some(3000),
        };
        let mut seen = 0u64;
        let e = for_each_block(&src, 1000, 3, |off, _| {
            seen = off;
            Ok(())
        })
        .unwrap_err();
        assert!(e.to_string().contains("at byte 3000"), "{e}");
        assert_eq!(
            seen, 2000,
            "blocks before the bad one were consumed, none after"
        );
    }

    #[test]
    fn a_sink_error_stops_the_readers() {
        let src = Flaky {
            data: data(1 << 20),
            fail_at: None,
        };
        let mut calls = 0;
        let e = for_each_block(&src, 1000, 4, |_, _| {
            calls += 1;
            if calls == 5 {
                return Err(io::Error::other("disk full"));
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert_eq!(calls, 5);
    }
}
