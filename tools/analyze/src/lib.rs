//! Offline analysis of acquired evidence: image readers, volume systems, file systems,
//! artifacts, timeline and report.
//!
//! Analysis reads evidence through [`vestige_evidence::read_at::ReadAt`], starting with
//! the Vestige container itself ([`vestige_evidence::seekable::SeekableReader`]), so that
//! nothing is ever mounted. Built so far: [`pcap`], network captures (pcap/pcapng) and
//! their traffic summary.
#![forbid(unsafe_code)]

pub mod memory;
pub mod pcap;
pub mod text;

pub use vestige_evidence::read_at::ReadAt;
