//! Acquisition: opening sources read-only, recording their identity, and the imaging
//! pipeline that turns them into signed evidence items.
//!
//! * [`source`] opens a block device or file read-only (BLKROSET/BLKROGET for devices);
//! * [`blockdev`] holds the ioctls and sysfs identity (the crate's only `unsafe`);
//! * [`rescue`] retries bad sectors, zero-fills and records what never reads;
//! * [`pipeline`] reads in parallel, compresses per chunk, writes in order, hashes in order;
//! * [`writeback`] starts write-back of the image early, so the final fsync is short;
//! * [`disk`] ties them into `acquire disk`: item directory, manifest, signature, custody;
//! * [`memory`] does the same for physical memory (LiME), [`live_item`] for live state;
//! * [`seal`] writes the manifest, the signed checksum list and the custody entry of any item.
//!
//! Library code never prints: progress is a set of counters the caller polls, and a
//! cancel flag the caller sets.

pub mod blockdev;
pub mod disk;
pub mod e01;
pub mod host;
pub mod live_item;
pub mod memory;
pub mod net;
pub mod pipeline;
pub mod rescue;
pub mod resume;
pub mod seal;
pub mod source;
pub mod writeback;
