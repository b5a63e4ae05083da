//! Offline analysis of acquired evidence: image readers, volume systems, file systems,
//! artifacts, timeline and report.
//!
//! Analysis reads evidence through [`vestige_evidence::read_at::ReadAt`], starting with
//! the Vestige container itself ([`vestige_evidence::seekable::SeekableReader`]), so that
//! nothing is ever mounted. Built so far: [`pcap`], network captures (pcap/pcapng) and
//! their traffic summary.
#![forbid(unsafe_code)]

pub mod binaries;
pub mod case;
pub mod collected;
pub mod event;
pub mod ext4journal;
pub mod files;
pub mod findings;
pub mod fsevents;
pub mod linux;
pub mod logs;
pub mod memory;
pub mod output;
pub mod pcap;
pub mod report;
#[cfg(test)]
pub(crate) mod test_support;
pub mod text;
pub mod timeline;
pub mod tz;
pub mod usn;
pub mod windows;

pub use vestige_evidence::read_at::ReadAt;
