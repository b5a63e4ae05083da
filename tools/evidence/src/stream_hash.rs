//! Whole-stream hashes computed in parallel: one thread per algorithm.
//!
//! SHA-256, MD5 and SHA-1 are each one sequential stream; running them one after another
//! on one thread would cost their sum per byte, on separate threads only the slowest.
//! Acquisition and verification both feed chunks, in source order, through this.

use sha2::Digest;
use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A whole-stream hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, always computed.
    Sha256,
    /// MD5, for labs that require it.
    Md5,
    /// SHA-1, for labs that require it.
    Sha1,
}

/// A digest and the number of bytes it covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamDigest {
    /// Lowercase hex.
    pub hex: String,
    /// Bytes hashed.
    pub bytes: u64,
}

/// Hash threads fed with shared chunks in order.
#[derive(Debug)]
pub struct StreamHashers<T: AsRef<[u8]> + Send + Sync + 'static> {
    workers: Vec<(Algorithm, SyncSender<Arc<T>>, JoinHandle<StreamDigest>)>,
}

fn run<D: Digest, T: AsRef<[u8]>>(mut d: D, rx: std::sync::mpsc::Receiver<Arc<T>>) -> StreamDigest {
    let mut bytes = 0u64;
    for chunk in rx {
        let data = (*chunk).as_ref();
        d.update(data);
        bytes += data.len() as u64;
    }
    StreamDigest {
        hex: hex::encode(d.finalize()),
        bytes,
    }
}

impl<T: AsRef<[u8]> + Send + Sync + 'static> StreamHashers<T> {
    /// Starts one thread per algorithm, each buffering up to `queue` chunks.
    pub fn start(algorithms: &[Algorithm], queue: usize) -> Self {
        let workers = algorithms
            .iter()
            .map(|&alg| {
                let (tx, rx) = sync_channel::<Arc<T>>(queue.max(1));
                let handle = std::thread::spawn(move || match alg {
                    Algorithm::Sha256 => run(sha2::Sha256::new(), rx),
                    Algorithm::Md5 => run(md5::Md5::new(), rx),
                    Algorithm::Sha1 => run(sha1::Sha1::new(), rx),
                });
                (alg, tx, handle)
            })
            .collect();
        Self { workers }
    }

    /// Hands the next chunk of the stream to every hasher.
    pub fn feed(&self, chunk: &Arc<T>) {
        for (_, tx, _) in &self.workers {
            // A hasher only stops receiving by panicking; finish() then reports it missing.
            let _ = tx.send(Arc::clone(chunk));
        }
    }

    /// Waits for every hasher; an algorithm whose thread died is absent from the result.
    pub fn finish(self) -> BTreeMap<Algorithm, StreamDigest> {
        let mut out = BTreeMap::new();
        for (alg, tx, handle) in self.workers {
            drop(tx);
            if let Ok(d) = handle.join() {
                out.insert(alg, d);
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn parallel_hashes_equal_one_shot_hashes() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let h = StreamHashers::<Vec<u8>>::start(
            &[Algorithm::Sha256, Algorithm::Md5, Algorithm::Sha1],
            2,
        );
        for c in data.chunks(65536) {
            h.feed(&Arc::new(c.to_vec()));
        }
        let d = h.finish();
        assert_eq!(
            d[&Algorithm::Sha256].hex,
            hex::encode(sha2::Sha256::digest(&data))
        );
        assert_eq!(d[&Algorithm::Md5].hex, hex::encode(md5::Md5::digest(&data)));
        assert_eq!(
            d[&Algorithm::Sha1].hex,
            hex::encode(sha1::Sha1::digest(&data))
        );
        assert_eq!(d[&Algorithm::Sha1].bytes, data.len() as u64);
    }
}
