//! The Vestige evidence format: what an acquisition leaves on disk and how it is checked.
//!
//! * [`read_at`] — the positional-read trait every layer reads bytes through;
//! * [`seekable`] — the image container, zstd's seekable format: stock `zstd -d` restores
//!   the raw bytes, the seek table gives random access;
//! * [`signify`] — Ed25519 keys and signatures in OpenBSD signify's formats, so stock
//!   `signify -C` (and `minisign -V` for keys) check Vestige evidence;
//! * [`manifest`] — manifest.json, everything about one acquisition;
//! * [`lime`] — LiME v1, the memory image format;
//! * [`custody`] — the case and its hash-chained custody log;
//! * [`verify`] — re-checking an item: signature, file hashes, every chunk and the source hash;
//! * [`text`] — evidence strings made safe for a terminal and the HTML report;
//! * [`outdir`] — the output directory every extractor writes into: names from evidence
//!   become safe file names, and nothing is created outside it or through a symlink.
//!
//! This crate never prints and holds no device policy: it returns values and errors and
//! emits `tracing` events.
//!
//! ```
//! use vestige_evidence::read_at::ReadAt;
//! let data = b"evidence".to_vec();
//! let mut buf = [0u8; 3];
//! data.read_exact_at(&mut buf, 2).unwrap();
//! assert_eq!(&buf, b"ide");
//! ```
#![forbid(unsafe_code)]

pub mod custody;
pub mod fsutil;
pub mod lime;
pub mod manifest;
pub mod outdir;
pub mod read_at;
pub mod seekable;
pub mod signify;
pub mod stream_hash;
pub mod text;
pub mod verify;

/// An error and its sources on one line: "a: b: c".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
