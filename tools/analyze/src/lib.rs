//! Offline analysis of acquired evidence: image readers, volume systems, file systems,
//! artifacts, timeline and report.
//!
//! Not built yet. Analysis will read evidence through
//! [`vestige_evidence::read_at::ReadAt`], starting with the Vestige container itself
//! ([`vestige_evidence::seekable::SeekableReader`]), so that nothing is ever mounted.
#![forbid(unsafe_code)]

pub use vestige_evidence::read_at::ReadAt;
