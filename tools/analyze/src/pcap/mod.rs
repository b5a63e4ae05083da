//! Network captures: a streaming pcap/pcapng [`reader`], a minimal link/IP/transport
//! [`decode`]r, and a [`summary`] of who talked to whom, which names were looked up
//! (DNS), asked for over TLS (SNI) or fetched over HTTP, with timeline events.
//!
//! ```no_run
//! use vestige_analyze::pcap::{summarize, timeline_events};
//! use vestige_evidence::read_at::FileReader;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let file = FileReader::open(std::path::Path::new("capture.pcapng"))?;
//! let summary = summarize(&file, "capture.pcapng")?;
//! for c in &summary.conversations {
//!     println!("{} {:?} ⇄ {:?}: {} bytes", c.protocol, c.a, c.b, c.bytes_a_to_b + c.bytes_b_to_a);
//! }
//! let events = timeline_events(&summary);
//! # let _ = events;
//! # Ok(())
//! # }
//! ```

pub mod decode;
pub mod dns;
pub mod http;
pub mod reader;
pub mod summary;
pub mod timeline;
pub mod tls;

pub use decode::{decode, Decoded, Undecodable};
pub use reader::{CaptureFormat, Packet, PcapError, PcapReader, MAX_CAPTURED_BYTES};
pub use summary::{
    summarize, CaptureTime, Conversation, DnsRecord, Endpoint, HttpRequest, LinkTypeCount,
    TlsClientHello, TrafficSummary,
};
pub use timeline::{timeline_events, TimelineEvent};

/// Shared with the memory walkers: see [`crate::text::display_safe`].
pub use crate::text::display_safe;
