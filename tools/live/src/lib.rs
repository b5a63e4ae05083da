//! Live response: the volatile state of a running Linux system, read from /proc and /sys.
//!
//! Before a suspect machine is powered off or imaged, an examiner records what exists only
//! in memory: clocks, network connections, processes and what they run, loaded kernel
//! modules, mounts and logged-in users. [`collect`] gathers all of it into a [`Snapshot`]
//! in order of volatility (RFC 3227): clocks, then sockets, neighbours and routes, then
//! processes, then modules, mounts, logins and interfaces. [`summary`] renders a snapshot
//! as a text report; the snapshot itself serialises to JSON with serde.
//!
//! Principles:
//!
//! * Nothing of the examined system is executed (no `ps`, `ss`, `netstat`): everything is
//!   parsed from procfs/sysfs, by the pure parsers in the modules below
//!   ([`proc_net`], [`proc_pid`], [`maps`], [`routes`], [`neighbours`], [`modules`],
//!   [`mountinfo`], [`utmp`], [`clock`]), which take text or bytes, never panic, cap what
//!   they keep and report bad lines with their line number ([`table::ParseError`]).
//! * Collection never fails as a whole: each unreadable file or bad line becomes a
//!   [`CollectError`] in [`Snapshot::errors`], and processes that exit mid-read are skipped.
//! * The collector reads its own namespaces' view (network, mount, pid); run it in the
//!   host's namespaces (as root) for the whole system.
//! * The library never prints; it emits `tracing` events.
//!
//! ```no_run
//! let opts = vestige_live::CollectOptions {
//!     recover_deleted_to: Some("/mnt/evidence/recovered".into()),
//!     ..Default::default()
//! };
//! let snapshot = vestige_live::collect(&opts);
//! eprintln!("{}", vestige_live::summary(&snapshot));
//! ```
//!
//! The parsers work on any text, e.g. a saved copy of /proc/net/tcp:
//!
//! ```
//! use vestige_live::proc_net::{parse_inet_sockets, InetTable};
//! let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//!    0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 552 1 0 100 0 0 10 0";
//! let parsed = parse_inet_sockets(text, InetTable::Tcp);
//! assert!(parsed.errors.is_empty());
//! assert_eq!(parsed.items[0].local_port, 8080);
//! assert_eq!(parsed.items[0].state, "LISTEN");
//! ```
#![forbid(unsafe_code)]

pub mod clock;
mod collect;
pub mod interfaces;
pub mod maps;
pub mod modules;
pub mod mountinfo;
pub mod neighbours;
pub mod proc_net;
pub mod proc_pid;
pub mod process;
mod recover;
pub mod routes;
mod snapshot;
mod summary;
pub mod table;
pub mod utmp;

pub use clock::Clock;
pub use collect::{collect, MAX_FILE_BYTES};
pub use interfaces::{Interface, InterfaceAddress};
pub use maps::MapsSummary;
pub use modules::{KernelModule, Taint, TaintFlag};
pub use mountinfo::Mount;
pub use neighbours::Neighbour;
pub use proc_net::{Socket, SocketOwner, UnixSocket};
pub use process::Process;
pub use routes::Route;
pub use snapshot::{
    CollectError, CollectOptions, HostIdentity, RecoveredBinary, Snapshot,
    DEFAULT_MAX_RECOVER_BYTES,
};
pub use summary::{printable, summary};
pub use table::{ParseError, Parsed};
pub use utmp::Login;
