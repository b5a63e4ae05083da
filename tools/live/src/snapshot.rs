//! What [`crate::collect`] takes and returns.

use crate::clock::Clock;
use crate::interfaces::Interface;
use crate::modules::{KernelModule, Taint};
use crate::mountinfo::Mount;
use crate::neighbours::Neighbour;
use crate::proc_net::{Socket, UnixSocket};
use crate::process::Process;
use crate::routes::Route;
use crate::utmp::Login;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where to read from and what to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectOptions {
    /// procfs mount point (default `/proc`). Another root is for tests of the parsers: the
    /// interface addresses and the process hashes always describe the live system.
    pub proc_root: PathBuf,
    /// sysfs mount point (default `/sys`).
    pub sys_root: PathBuf,
    /// utmp file listing logged-in users (default `/var/run/utmp`); a missing file is not
    /// an error (minimal systems have none).
    pub utmp_path: PathBuf,
    /// machine-id file (default `/etc/machine-id`); a missing file is not an error.
    pub machine_id_path: PathBuf,
    /// Collect each process's environment. Off by default: environments often hold
    /// credentials (tokens, passwords) the examiner may not be authorised to take.
    pub include_environment: bool,
    /// Directory to copy running binaries whose executable file was deleted into, as
    /// `pid-<PID>-<comm>.bin`. The copy is the only one left once the process exits.
    /// Must exist; existing files are never overwritten.
    pub recover_deleted_to: Option<PathBuf>,
    /// Most bytes copied per recovered binary.
    pub max_recover_bytes: u64,
}

/// Default for [`CollectOptions::max_recover_bytes`]: 512 MiB, more than any ordinary
/// executable, less than would fill a collection stick with one bloated binary.
pub const DEFAULT_MAX_RECOVER_BYTES: u64 = 512 * 1024 * 1024;

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            utmp_path: PathBuf::from("/var/run/utmp"),
            machine_id_path: PathBuf::from("/etc/machine-id"),
            include_environment: false,
            recover_deleted_to: None,
            max_recover_bytes: DEFAULT_MAX_RECOVER_BYTES,
        }
    }
}

/// Who the system says it is.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct HostIdentity {
    /// /proc/sys/kernel/hostname (of the collector's UTS namespace).
    pub hostname: Option<String>,
    /// /proc/sys/kernel/osrelease, e.g. `6.1.0-18-amd64`.
    pub kernel_release: Option<String>,
    /// /proc/version: build string, compiler and build date.
    pub kernel_version: Option<String>,
    /// /etc/machine-id (stable across boots).
    pub machine_id: Option<String>,
    /// /proc/sys/kernel/random/boot_id: unique per boot, ties this snapshot to the
    /// journal entries of the same boot.
    pub boot_id: Option<String>,
}

/// Something that could not be read or parsed. Collection goes on; the snapshot is
/// incomplete in exactly these places.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CollectError {
    /// Section of the snapshot (`clock`, `sockets`, `processes`, …).
    pub section: String,
    /// File or directory concerned.
    pub path: String,
    /// What went wrong (with line numbers for parse errors).
    pub message: String,
}

/// A running binary copied out because its file was deleted.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RecoveredBinary {
    /// Process it was copied from (through /proc/PID/exe).
    pub pid: u32,
    /// Path the executable had, without the ` (deleted)` suffix.
    pub original_path: String,
    /// Name of the copy inside [`CollectOptions::recover_deleted_to`].
    pub file_name: String,
    /// Bytes copied.
    pub size_bytes: u64,
    /// SHA-256 of the bytes copied, lowercase hex.
    pub sha256: String,
    /// True when the copy stopped at [`CollectOptions::max_recover_bytes`].
    pub truncated: bool,
}

/// Everything collected, in order of volatility.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Snapshot {
    /// When collection started, RFC 3339 UTC.
    pub collected_utc: String,
    /// Clocks, read first.
    pub clock: Clock,
    /// Host identity.
    pub host: HostIdentity,
    /// Processes (thread-group leaders), by pid.
    pub processes: Vec<Process>,
    /// IPv4/IPv6 TCP, UDP and raw sockets with owning processes.
    pub sockets: Vec<Socket>,
    /// Unix-domain sockets with owning processes.
    pub unix_sockets: Vec<UnixSocket>,
    /// IPv4 and IPv6 routes (main table).
    pub routes: Vec<Route>,
    /// IPv4 ARP cache (IPv6 neighbours need netlink and are not collected).
    pub neighbours: Vec<Neighbour>,
    /// Network interfaces with their addresses.
    pub interfaces: Vec<Interface>,
    /// Loaded kernel modules.
    pub modules: Vec<KernelModule>,
    /// Kernel taint mask, decoded.
    pub taint: Option<Taint>,
    /// Mounts of the collector's mount namespace.
    pub mounts: Vec<Mount>,
    /// Logged-in users from utmp.
    pub logins: Vec<Login>,
    /// What could not be read or parsed.
    pub errors: Vec<CollectError>,
    /// Binaries recovered from processes whose executable was deleted.
    pub recovered: Vec<RecoveredBinary>,
}
