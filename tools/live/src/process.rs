//! The process walk: one [`Process`] per /proc/PID directory.
//!
//! Processes exit and pids are reused while we read, so every read may fail with
//! ENOENT/ESRCH; such a process is dropped or kept partial, never an error of the run. A
//! pid reused between the first and last read is detected by its start time changing.

use crate::collect::{read_capped, vanished, Collector, MAX_FILE_BYTES};
use crate::maps::{parse_maps, summarise_maps, MapsSummary};
use crate::proc_pid::{parse_stat, parse_status, split_nul, start_time, PidStat, PF_KTHREAD};
use crate::snapshot::RecoveredBinary;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Most bytes of cmdline or environ read per process (Linux allows far more, but a command
/// line beyond this is itself the finding).
pub const MAX_ARGS_BYTES: u64 = 256 * 1024;
/// Most strings kept from a cmdline or environ.
pub const MAX_ARGS: usize = 4096;
/// Most bytes kept per argument or environment entry.
pub const MAX_ARG_BYTES: usize = 32 * 1024;
/// Most open file descriptors examined per process (the kernel's default `nr_open` cap).
pub const MAX_FDS: usize = 1_048_576;
/// Most /proc entries examined (pid_max is at most 2^22).
pub const MAX_PROCESSES: usize = 4_194_304;

/// Suffix the kernel appends to the link of an unlinked file.
const DELETED_SUFFIX: &str = " (deleted)";

/// One process (thread-group leader).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Parent process id (0 for init and kthreadd).
    pub ppid: u32,
    /// `comm` from /proc/PID/stat: set by the process, at most 15 bytes.
    pub name: String,
    /// State from /proc/PID/status, e.g. `S (sleeping)` (the stat letter if unavailable).
    pub state: String,
    /// Real uid.
    pub uid_real: Option<u32>,
    /// Effective uid.
    pub uid_effective: Option<u32>,
    /// Real gid.
    pub gid_real: Option<u32>,
    /// Effective gid.
    pub gid_effective: Option<u32>,
    /// Number of threads.
    pub threads: Option<u32>,
    /// Start time in clock ticks after boot (stat field 22), kept raw.
    pub start_ticks: u64,
    /// Start time, RFC 3339 UTC (boot time + ticks / CLK_TCK).
    pub start_utc: Option<String>,
    /// Command line, lossy UTF-8; the process may have rewritten it.
    pub cmdline: Vec<String>,
    /// True when the command line was cut ([`MAX_ARGS_BYTES`], [`MAX_ARGS`], [`MAX_ARG_BYTES`]).
    pub cmdline_truncated: bool,
    /// Environment (`KEY=value`), only with [`crate::CollectOptions::include_environment`].
    pub environment: Option<Vec<String>>,
    /// True when the environment was cut.
    pub environment_truncated: bool,
    /// Executable path (link of /proc/PID/exe), without a ` (deleted)` suffix.
    pub exe: Option<String>,
    /// The executable file was deleted (suffix present and no link left to the inode).
    pub exe_deleted: bool,
    /// SHA-256 of the executable as the process runs it (read through /proc/PID/exe, so
    /// it works for deleted files too), lowercase hex.
    pub exe_sha256: Option<String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Root directory (≠ `/` when chrooted or in another mount namespace).
    pub root: Option<String>,
    /// Number of open file descriptors.
    pub fd_count: Option<u64>,
    /// Inodes of open sockets (`socket:[N]` descriptors), sorted, distinct.
    pub socket_inodes: Vec<u64>,
    /// Memory map summary.
    pub maps: Option<MapsSummary>,
    /// A kernel thread (`PF_KTHREAD`): no executable, no command line.
    pub kernel_thread: bool,
}

/// Identity of an executable file, to hash each distinct one once.
type FileKey = (u64, u64, u64, i64, i64, i64, i64);

/// State shared across the walk.
struct Walk {
    btime: Option<i64>,
    ticks_per_second: Option<u64>,
    hashes: HashMap<FileKey, String>,
    recovered: Vec<RecoveredBinary>,
}

/// Reads every process under the procfs root, in pid order.
pub(crate) fn walk(
    c: &mut Collector<'_>,
    btime: Option<i64>,
) -> (Vec<Process>, Vec<RecoveredBinary>) {
    let root = c.opts.proc_root.clone();
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|&t| t > 0);
    if ticks_per_second.is_none() {
        c.record(
            "processes",
            Path::new("sysconf(_SC_CLK_TCK)"),
            "unknown; start times left out",
        );
    }
    let mut pids: Vec<u32> = match fs::read_dir(&root) {
        Ok(entries) => entries
            .take(MAX_PROCESSES)
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect(),
        Err(e) => {
            c.record("processes", &root, e);
            return (Vec::new(), Vec::new());
        }
    };
    pids.sort_unstable();
    let mut w = Walk {
        btime,
        ticks_per_second,
        hashes: HashMap::new(),
        recovered: Vec::new(),
    };
    let processes = pids
        .into_iter()
        .filter_map(|pid| read_process(c, &mut w, &root.join(pid.to_string()), pid))
        .collect();
    (processes, w.recovered)
}

/// Per-process failures other than "gone", gathered into one error per process so a
/// collector without full privileges gives one line per process, not ten.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    /// `Some(value)`; `None` for an error, noting it unless the file is simply gone.
    fn check<T>(&mut self, what: &str, r: io::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) if vanished(&e) => None,
            Err(e) => {
                self.0.push(format!("{what}: {e}"));
                None
            }
        }
    }
}

fn read_stat(dir: &Path) -> io::Result<Result<PidStat, crate::table::ParseError>> {
    let (bytes, _) = read_capped(&dir.join("stat"), 64 * 1024)?;
    Ok(parse_stat(&String::from_utf8_lossy(&bytes)))
}

fn read_process(c: &mut Collector<'_>, w: &mut Walk, dir: &Path, pid: u32) -> Option<Process> {
    let stat = match read_stat(dir) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            c.record("processes", &dir.join("stat"), e);
            return None;
        }
        Err(e) if vanished(&e) => return None,
        Err(e) => {
            c.record("processes", &dir.join("stat"), e);
            return None;
        }
    };
    let mut fail = Failures::default();
    let status = fail
        .check("status", read_capped(&dir.join("status"), 1024 * 1024))
        .and_then(|(b, _)| match parse_status(&String::from_utf8_lossy(&b)) {
            Ok(s) => Some(s),
            Err(e) => {
                fail.0.push(format!("status: {e}"));
                None
            }
        })
        .unwrap_or_default();
    let cmdline = fail
        .check("cmdline", read_capped(&dir.join("cmdline"), MAX_ARGS_BYTES))
        .map(|(b, cut)| (split_nul(&b, MAX_ARGS, MAX_ARG_BYTES), cut))
        .unwrap_or_default();
    let environ = if c.opts.include_environment {
        fail.check("environ", read_capped(&dir.join("environ"), MAX_ARGS_BYTES))
            .map(|(b, cut)| (split_nul(&b, MAX_ARGS, MAX_ARG_BYTES), cut))
    } else {
        None
    };
    let kernel_thread = stat.flags & PF_KTHREAD != 0;
    let exe_link = dir.join("exe");
    let (exe, exe_deleted) = if kernel_thread {
        (None, false)
    } else {
        match fail.check("exe", fs::read_link(&exe_link)) {
            Some(target) => {
                let (path, deleted) = exe_path(&exe_link, &target);
                (Some(path), deleted)
            }
            None => (None, false),
        }
    };
    let exe_sha256 = match exe {
        Some(_) => fail.check("exe (hash)", hash_exe(w, &exe_link)).flatten(),
        None => None,
    };
    let link = |fail: &mut Failures, name: &str| {
        fail.check(name, fs::read_link(dir.join(name)))
            .map(|p| p.to_string_lossy().into_owned())
    };
    let cwd = link(&mut fail, "cwd");
    let root = link(&mut fail, "root");
    let fds = fail.check("fd", read_fds(&dir.join("fd")));
    let maps = fail
        .check("maps", read_capped(&dir.join("maps"), MAX_FILE_BYTES))
        .map(|(b, _)| {
            let parsed = parse_maps(&String::from_utf8_lossy(&b));
            if let Some(e) = parsed.errors.first() {
                fail.0.push(format!(
                    "maps: {} bad lines, first: {e}",
                    parsed.errors.len()
                ));
            }
            summarise_maps(&parsed.items)
        });

    // A pid reused since the first read would mix two processes' data.
    match read_stat(dir) {
        Ok(Ok(again)) if again.start_ticks == stat.start_ticks => {}
        _ => return None,
    }
    if !fail.0.is_empty() {
        c.record("processes", dir, fail.0.join("; "));
    }
    let process = Process {
        pid,
        ppid: stat.ppid,
        name: stat.comm,
        state: status.state.unwrap_or(stat.state),
        uid_real: status.uid.map(|[real, ..]| real),
        uid_effective: status.uid.map(|[_, effective, ..]| effective),
        gid_real: status.gid.map(|[real, ..]| real),
        gid_effective: status.gid.map(|[_, effective, ..]| effective),
        threads: status.threads.or(Some(stat.num_threads)),
        start_ticks: stat.start_ticks,
        start_utc: w
            .btime
            .zip(w.ticks_per_second)
            .and_then(|(b, hz)| start_time(b, stat.start_ticks, hz))
            .map(crate::clock::rfc3339),
        cmdline_truncated: cmdline.1 || cmdline.0.truncated,
        cmdline: cmdline.0.items,
        environment_truncated: environ.as_ref().is_some_and(|(e, cut)| *cut || e.truncated),
        environment: environ.map(|(e, _)| e.items),
        exe,
        exe_deleted,
        exe_sha256,
        cwd,
        root,
        fd_count: fds.as_ref().map(|f| f.0),
        socket_inodes: fds.map(|f| f.1).unwrap_or_default(),
        maps,
        kernel_thread,
    };
    if process.exe_deleted {
        if let Some(dir_out) = c.opts.recover_deleted_to.clone() {
            crate::recover::recover(c, &mut w.recovered, &dir_out, &process, &exe_link);
        }
    }
    Some(process)
}

/// The exe path and whether it was deleted. The kernel marks an unlinked file with a
/// ` (deleted)` suffix, but a file may also be *named* `x (deleted)` to fake it (or to
/// hide a deletion among such names), so the suffix counts only when the inode behind the
/// link has no names left.
fn exe_path(exe_link: &Path, target: &Path) -> (String, bool) {
    let text = target.to_string_lossy();
    match text.strip_suffix(DELETED_SUFFIX) {
        Some(original) => {
            let unlinked = fs::metadata(exe_link).map_or(true, |m| m.nlink() == 0);
            if unlinked {
                (original.to_string(), true)
            } else {
                (text.into_owned(), false)
            }
        }
        None => (text.into_owned(), false),
    }
}

/// SHA-256 of the file behind /proc/PID/exe, from the cache when the same file (device,
/// inode, size, times) was hashed before. `Ok(None)` for a non-regular file.
fn hash_exe(w: &mut Walk, exe_link: &Path) -> io::Result<Option<String>> {
    let file = File::open(exe_link)?;
    let m = file.metadata()?;
    if !m.is_file() {
        return Ok(None);
    }
    let key: FileKey = (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    );
    if let Some(h) = w.hashes.get(&key) {
        return Ok(Some(h.clone()));
    }
    let hex = sha256_reader(file)?;
    w.hashes.insert(key, hex.clone());
    Ok(Some(hex))
}

/// SHA-256 of everything a reader yields, lowercase hex.
pub(crate) fn sha256_reader(mut r: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Counts open descriptors and collects the inodes of sockets among them.
fn read_fds(fd_dir: &Path) -> io::Result<(u64, Vec<u64>)> {
    let mut count = 0u64;
    let mut sockets = Vec::new();
    for entry in fs::read_dir(fd_dir)?.take(MAX_FDS) {
        // A descriptor closed while we list is simply not counted.
        let Ok(entry) = entry else { continue };
        count = count.saturating_add(1);
        if let Ok(target) = fs::read_link(entry.path()) {
            if let Some(inode) = socket_inode(&target) {
                sockets.push(inode);
            }
        }
    }
    sockets.sort_unstable();
    sockets.dedup();
    Ok((count, sockets))
}

/// The inode in a `socket:[N]` link target.
pub fn socket_inode(target: &Path) -> Option<u64> {
    target
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The process's `comm` made safe as part of a file name: ASCII letters, digits, `.`, `_`
/// and `-` kept, anything else `_`, at most 32 characters, never empty.
pub fn sanitise_name(comm: &str) -> String {
    let s: String = comm
        .chars()
        .take(32)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "unknown".to_string()
    } else {
        s
    }
}

/// The path a recovered binary is written to.
pub(crate) fn recovery_path(dir: &Path, pid: u32, comm: &str) -> (PathBuf, String) {
    let name = format!("pid-{pid}-{}.bin", sanitise_name(comm));
    (dir.join(&name), name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(Path::new("socket:[12345]")), Some(12345));
        assert_eq!(socket_inode(Path::new("pipe:[12345]")), None);
        assert_eq!(socket_inode(Path::new("socket:[]")), None);
        assert_eq!(socket_inode(Path::new("/tmp/socket:[1]")), None);
    }

    #[test]
    fn names_for_files() {
        assert_eq!(sanitise_name("kworker/0:1"), "kworker_0_1");
        assert_eq!(sanitise_name("../../etc"), ".._.._etc");
        assert_eq!(sanitise_name(""), "unknown");
        assert_eq!(sanitise_name("évil\n"), "_vil_");
        let (path, name) = recovery_path(Path::new("/out"), 42, "a/b");
        assert_eq!(name, "pid-42-a_b.bin");
        assert_eq!(path, Path::new("/out/pid-42-a_b.bin"));
    }

    #[test]
    fn our_own_process() {
        let opts = crate::CollectOptions::default();
        let mut c = Collector {
            opts: &opts,
            errors: Vec::new(),
        };
        let mut w = Walk {
            btime: Some(0),
            ticks_per_second: Some(100),
            hashes: HashMap::new(),
            recovered: Vec::new(),
        };
        let pid = std::process::id();
        let p = read_process(
            &mut c,
            &mut w,
            &Path::new("/proc").join(pid.to_string()),
            pid,
        )
        .unwrap();
        assert_eq!(p.pid, pid);
        assert!(!p.kernel_thread);
        assert!(!p.exe_deleted);
        assert_eq!(
            p.exe.as_deref().map(Path::new),
            Some(std::env::current_exe().unwrap().as_path())
        );
        let own = sha256_reader(File::open(std::env::current_exe().unwrap()).unwrap()).unwrap();
        assert_eq!(p.exe_sha256.as_deref(), Some(own.as_str()));
        assert!(p.maps.unwrap().executable > 0);
        assert!(p.fd_count.unwrap() >= 3);
    }
}
