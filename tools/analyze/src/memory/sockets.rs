//! Open sockets from memory, per process: each task's file-descriptor table, the files
//! whose `f_op` is the kernel's `socket_file_ops`, and the `struct sock` behind them
//! (family, type, protocol, addresses, ports, state; the path of a unix socket), like
//! Volatility's `linux.sockstat`.
//!
//! Every pointer is evidence and untrusted. A descriptor table larger than any kernel
//! allows, a pointer that translates nowhere or a file that cannot be read is recorded as
//! a problem of that process, and the scan goes on with the next descriptor or process.

use super::isf::{Symbols, Types};
use super::linux::{display_c_string, LinuxKernel, Task};
use super::physical::{LimeMemory, MemoryError};
use crate::text::display_safe;
use serde::Serialize;
use std::net::{Ipv4Addr, Ipv6Addr};
use vestige_evidence::read_at::ReadAt;

/// The kernel's `sysctl_nr_open` ceiling is 2^30; a table this large (8 MiB of pointers)
/// is far beyond any real process and is reported rather than read.
const MAX_FDS: u32 = 1 << 20;
/// Descriptor pointers read per step: one page.
const FDS_PER_READ: u32 = 512;

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_STREAM: u16 = 1;

/// One socket held open by a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemorySocket {
    /// The process (thread-group id) holding it.
    pub pid: i32,
    /// The process's `comm`, display-safe.
    pub comm: String,
    /// The descriptor number.
    pub fd: u32,
    /// Kernel virtual address of the `struct sock`.
    pub sock: u64,
    /// The socket's inode number (`socket:[N]` in /proc/PID/fd), when readable.
    pub inode: Option<u64>,
    /// `AF_INET`, `AF_INET6`, `AF_UNIX`, … or `AF_<n>`.
    pub family: String,
    /// `STREAM`, `DGRAM`, … or the number.
    pub kind: String,
    /// `TCP`, `UDP`, … for internet sockets, else the protocol number.
    pub protocol: String,
    /// Local address (internet) or bound path (unix; `@name` for abstract names).
    pub local_address: Option<String>,
    /// Local port (internet).
    pub local_port: Option<u16>,
    /// Remote address (internet).
    pub remote_address: Option<String>,
    /// Remote port (internet).
    pub remote_port: Option<u16>,
    /// The inode of the connected peer (unix sockets): which process holds the other
    /// end. Its name, if bound, is the remote address.
    pub peer_inode: Option<u64>,
    /// Stream sockets: the kernel's `sk_state` (`LISTEN`, `ESTABLISHED`, …, as in
    /// include/net/tcp_states.h); others: the socket's state (`UNCONNECTED`,
    /// `CONNECTED`, …), as Volatility's sockstat reports them.
    pub state: String,
}

/// The sockets found and what could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SocketScan {
    /// Sockets in task-list order, then descriptor order.
    pub sockets: Vec<MemorySocket>,
    /// Processes or descriptors that could not be read, and why.
    pub problems: Vec<String>,
}

/// Field offsets of the structures followed, from the ISF.
#[derive(Debug, Clone, Copy)]
struct Offsets {
    task_files: u64,
    files_fdt: u64,
    fdt_max_fds: u64,
    fdt_fd: u64,
    file_f_op: u64,
    file_private_data: u64,
    socket_state: u64,
    socket_sk: u64,
    sk_socket: u64,
    /// `socket_alloc.vfs_inode`: the inode is allocated right after the socket.
    alloc_inode: u64,
    inode_ino: u64,
    family: u64,
    state: u64,
    sk_type: u64,
    protocol: u64,
    daddr: u64,
    rcv_saddr: u64,
    dport: u64,
    num: u64,
    v6_daddr: u64,
    v6_rcv_saddr: u64,
    unix_addr: u64,
    unix_peer: u64,
    unix_len: u64,
    unix_path: u64,
}

/// Finds the sockets of processes in a located kernel.
#[derive(Debug, Clone)]
pub struct SocketWalker {
    off: Offsets,
    socket_file_ops: u64,
}

impl SocketWalker {
    /// Resolves the fields and `socket_file_ops` from the same symbols the kernel was
    /// located with.
    pub fn new(types: Types<'_>, symbols: &Symbols) -> Result<Self, MemoryError> {
        let sk = |f: &str| types.offset("sock", &["__sk_common", f]);
        let unix_name = types.offset("unix_address", &["name"])?;
        let off = Offsets {
            task_files: types.offset("task_struct", &["files"])?,
            files_fdt: types.offset("files_struct", &["fdt"])?,
            fdt_max_fds: types.offset("fdtable", &["max_fds"])?,
            fdt_fd: types.offset("fdtable", &["fd"])?,
            file_f_op: types.offset("file", &["f_op"])?,
            file_private_data: types.offset("file", &["private_data"])?,
            socket_state: types.offset("socket", &["state"])?,
            socket_sk: types.offset("socket", &["sk"])?,
            sk_socket: types.offset("sock", &["sk_socket"])?,
            alloc_inode: types.offset("socket_alloc", &["vfs_inode"])?,
            inode_ino: types.offset("inode", &["i_ino"])?,
            family: sk("skc_family")?,
            state: sk("skc_state")?,
            sk_type: types.offset("sock", &["sk_type"])?,
            protocol: types.offset("sock", &["sk_protocol"])?,
            daddr: sk("skc_daddr")?,
            rcv_saddr: sk("skc_rcv_saddr")?,
            dport: sk("skc_dport")?,
            num: sk("skc_num")?,
            v6_daddr: sk("skc_v6_daddr")?,
            v6_rcv_saddr: sk("skc_v6_rcv_saddr")?,
            unix_addr: types.offset("unix_sock", &["addr"])?,
            unix_peer: types.offset("unix_sock", &["peer"])?,
            unix_len: types.offset("unix_address", &["len"])?,
            unix_path: unix_name + types.offset("sockaddr_un", &["sun_path"])?,
        };
        Ok(SocketWalker {
            off,
            socket_file_ops: symbols.need("socket_file_ops")?,
        })
    }

    /// The sockets open in each of `tasks` (thread-group leaders, as the task list
    /// gives them; threads share their leader's table in all but rare cases).
    pub fn scan<R: ReadAt>(
        &self,
        k: &LinuxKernel,
        mem: &LimeMemory<R>,
        tasks: &[Task],
    ) -> SocketScan {
        let mut scan = SocketScan::default();
        for t in tasks {
            if let Err(e) = self.task_sockets(k, mem, t, &mut scan) {
                scan.problems
                    .push(format!("pid {} ({}): {e}", t.tgid, t.comm));
            }
        }
        scan
    }

    fn task_sockets<R: ReadAt>(
        &self,
        k: &LinuxKernel,
        mem: &LimeMemory<R>,
        t: &Task,
        scan: &mut SocketScan,
    ) -> Result<(), MemoryError> {
        let o = &self.off;
        let files = k.u64_at(mem, t.address.wrapping_add(o.task_files))?;
        if files == 0 {
            return Ok(()); // a kernel thread or an exiting task
        }
        let fdt = k.u64_at(mem, files.wrapping_add(o.files_fdt))?;
        let max_fds = k.u32_at(mem, fdt.wrapping_add(o.fdt_max_fds))?;
        if max_fds > MAX_FDS {
            return Err(MemoryError::Kernel(format!(
                "descriptor table at {fdt:#x} claims {max_fds} entries (more than {MAX_FDS})"
            )));
        }
        let array = k.u64_at(mem, fdt.wrapping_add(o.fdt_fd))?;
        let mut ptrs = vec![0u8; FDS_PER_READ as usize * 8];
        let mut first = 0u32;
        while first < max_fds {
            let n = FDS_PER_READ.min(max_fds - first);
            let buf = ptrs.get_mut(..n as usize * 8).unwrap_or_default();
            k.read(mem, array.wrapping_add(u64::from(first) * 8), buf)?;
            for (fd, p) in (first..).zip(buf.chunks_exact(8)) {
                let file = u64::from_le_bytes(p.try_into().unwrap_or_default());
                if file == 0 {
                    continue;
                }
                match self.socket(k, mem, t, fd, file) {
                    Ok(Some(s)) => scan.sockets.push(s),
                    Ok(None) => {}
                    Err(e) => scan.problems.push(format!(
                        "pid {} ({}) fd {fd}: file at {file:#x}: {e}",
                        t.tgid, t.comm
                    )),
                }
            }
            first += n;
        }
        Ok(())
    }

    /// The socket behind `file`, or None when the file is not a socket.
    fn socket<R: ReadAt>(
        &self,
        k: &LinuxKernel,
        mem: &LimeMemory<R>,
        t: &Task,
        fd: u32,
        file: u64,
    ) -> Result<Option<MemorySocket>, MemoryError> {
        let o = &self.off;
        if k.u64_at(mem, file.wrapping_add(o.file_f_op))? != self.socket_file_ops {
            return Ok(None);
        }
        let socket = k.u64_at(mem, file.wrapping_add(o.file_private_data))?;
        let sk = k.u64_at(mem, socket.wrapping_add(o.socket_sk))?;
        let inode = self.inode(k, mem, socket).ok();
        let family = k.u16_at(mem, sk.wrapping_add(o.family))?;
        let sk_type = k.u16_at(mem, sk.wrapping_add(o.sk_type))?;
        let state = if sk_type == SOCK_STREAM {
            let mut b = [0u8; 1];
            k.read(mem, sk.wrapping_add(o.state), &mut b)?;
            tcp_state_name(b[0])
        } else {
            socket_state_name(k.u32_at(mem, socket.wrapping_add(o.socket_state))?)
        };
        let protocol = k.u16_at(mem, sk.wrapping_add(o.protocol))?;
        let mut s = MemorySocket {
            pid: t.tgid,
            comm: t.comm.clone(),
            fd,
            sock: sk,
            inode,
            family: family_name(family),
            kind: type_name(sk_type),
            protocol: protocol.to_string(),
            local_address: None,
            local_port: None,
            remote_address: None,
            remote_port: None,
            peer_inode: None,
            state,
        };
        match family {
            AF_INET | AF_INET6 => {
                s.protocol = inet_protocol_name(protocol);
                let (local, remote) = if family == AF_INET {
                    let mut l = [0u8; 4];
                    let mut r = [0u8; 4];
                    k.read(mem, sk.wrapping_add(o.rcv_saddr), &mut l)?;
                    k.read(mem, sk.wrapping_add(o.daddr), &mut r)?;
                    (Ipv4Addr::from(l).to_string(), Ipv4Addr::from(r).to_string())
                } else {
                    let mut l = [0u8; 16];
                    let mut r = [0u8; 16];
                    k.read(mem, sk.wrapping_add(o.v6_rcv_saddr), &mut l)?;
                    k.read(mem, sk.wrapping_add(o.v6_daddr), &mut r)?;
                    (Ipv6Addr::from(l).to_string(), Ipv6Addr::from(r).to_string())
                };
                s.local_address = Some(local);
                s.remote_address = Some(remote);
                // skc_num is the local port in host order, skc_dport the remote one in
                // network order.
                s.local_port = Some(k.u16_at(mem, sk.wrapping_add(o.num))?);
                s.remote_port = Some(k.u16_at(mem, sk.wrapping_add(o.dport))?.swap_bytes());
            }
            AF_UNIX => {
                s.local_address = self.unix_path(k, mem, sk)?;
                let peer = k.u64_at(mem, sk.wrapping_add(o.unix_peer))?;
                if peer != 0 {
                    s.remote_address = self.unix_path(k, mem, peer)?;
                    s.peer_inode = k
                        .u64_at(mem, peer.wrapping_add(o.sk_socket))
                        .and_then(|sock| self.inode(k, mem, sock))
                        .ok();
                }
            }
            _ => {}
        }
        Ok(Some(s))
    }

    /// The inode number of `socket` (its `socket_alloc` holds the inode right after it).
    fn inode<R: ReadAt>(
        &self,
        k: &LinuxKernel,
        mem: &LimeMemory<R>,
        socket: u64,
    ) -> Result<u64, MemoryError> {
        let o = &self.off;
        k.u64_at(mem, socket.wrapping_add(o.alloc_inode + o.inode_ino))
    }

    /// The name a unix socket is bound to: a path, or `@name` for the abstract
    /// namespace (a leading NUL); None when unbound.
    fn unix_path<R: ReadAt>(
        &self,
        k: &LinuxKernel,
        mem: &LimeMemory<R>,
        sk: u64,
    ) -> Result<Option<String>, MemoryError> {
        let o = &self.off;
        let addr = k.u64_at(mem, sk.wrapping_add(o.unix_addr))?;
        if addr == 0 {
            return Ok(None);
        }
        let len = k.u32_at(mem, addr.wrapping_add(o.unix_len))?;
        // len counts sun_family (2 bytes) and the path; sun_path has 108 bytes.
        let path_len = usize::try_from(len).unwrap_or(0).saturating_sub(2).min(108);
        let mut path = vec![0u8; path_len];
        k.read(mem, addr.wrapping_add(o.unix_path), &mut path)?;
        Ok(Some(match path.split_first() {
            Some((0, rest)) => format!("@{}", display_safe(rest)),
            _ => display_c_string(&path),
        }))
    }
}

fn family_name(f: u16) -> String {
    match f {
        AF_UNIX => "AF_UNIX".into(),
        AF_INET => "AF_INET".into(),
        AF_INET6 => "AF_INET6".into(),
        16 => "AF_NETLINK".into(),
        17 => "AF_PACKET".into(),
        40 => "AF_VSOCK".into(),
        n => format!("AF_{n}"),
    }
}

fn type_name(t: u16) -> String {
    match t {
        1 => "STREAM".into(),
        2 => "DGRAM".into(),
        3 => "RAW".into(),
        4 => "RDM".into(),
        5 => "SEQPACKET".into(),
        6 => "DCCP".into(),
        10 => "PACKET".into(),
        n => n.to_string(),
    }
}

fn inet_protocol_name(p: u16) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        136 => "UDPLITE".into(),
        255 => "RAW".into(),
        n => n.to_string(),
    }
}

/// The kernel's `sk_state` names of a stream socket (include/net/tcp_states.h).
fn tcp_state_name(s: u8) -> String {
    const TCP: [&str; 13] = [
        "0",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
        "NEW_SYN_RECV",
    ];
    TCP.get(usize::from(s))
        .map_or_else(|| s.to_string(), |n| (*n).to_string())
}

/// `socket_state` names (include/uapi/linux/net.h).
fn socket_state_name(s: u32) -> String {
    const STATES: [&str; 5] = [
        "FREE",
        "UNCONNECTED",
        "CONNECTING",
        "CONNECTED",
        "DISCONNECTING",
    ];
    usize::try_from(s)
        .ok()
        .and_then(|i| STATES.get(i))
        .map_or_else(|| s.to_string(), |n| (*n).to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::fixture::{self, system, SockSpec, BANNER, POB, TASK_A, TASK_B, VMALLOC};
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&a);
        b
    }

    /// Task A: fd 3 a TCP listener on 0.0.0.0:22, fd 4 a plain file, fd 5 /dev/log, fd
    /// 6 a unix stream connected to /run/ctl.
    /// Task B: a 1024-entry table in two vmalloc pages; fd 2 points nowhere, fd 600 (in
    /// the second page) a TCP connection [::1]:8080 ↔ [::1]:40000, fd 601 an abstract
    /// unix socket with a NUL and an escape in its name.
    fn populated() -> fixture::Mem {
        let mut m = system(None);
        m.files(TASK_A, 0x3_0000, 64, POB + 0x3_0800);
        let any = (v4([0, 0, 0, 0]), 0);
        let listen = m.socket(
            0x3_1000,
            1001,
            &SockSpec::tcp(AF_INET, 10, (v4([0, 0, 0, 0]), 22), any),
        );
        let plain = m.plain_file(0x3_2000);
        let log = m.socket(0x3_3000, 1003, &SockSpec::unix(2, 7, 1, Some(b"/dev/log")));
        // fd 6: a unix stream connected to a server bound to /run/ctl.
        let client = m.socket(0x3_4000, 1006, &SockSpec::unix(1, 1, 3, None));
        m.socket(0x3_5000, 1007, &SockSpec::unix(1, 1, 3, Some(b"/run/ctl")));
        m.connect_unix(0x3_4000, 0x3_5000);
        m.put_u64(0x3_0800 + 6 * 8, client);
        m.put_u64(0x3_0800 + 3 * 8, listen);
        m.put_u64(0x3_0800 + 4 * 8, plain);
        m.put_u64(0x3_0800 + 5 * 8, log);

        m.files(TASK_B, 0x4_0000, 1024, VMALLOC + 0x1000);
        m.map(VMALLOC + 0x1000, 0x7_0000);
        m.map(VMALLOC + 0x2000, 0x5_0000);
        let mut lo = [0u8; 16];
        lo[15] = 1;
        let conn = m.socket(
            0x4_1000,
            1004,
            &SockSpec::tcp(AF_INET6, 1, (lo, 8080), (lo, 40000)),
        );
        let abstract_ = m.socket(
            0x4_2000,
            1005,
            &SockSpec::unix(1, 10, 1, Some(b"\0x\0\x1b")),
        );
        m.put_u64(0x7_0000 + 2 * 8, 0xdead_0000);
        m.put_u64(0x5_0000 + (600 - 512) * 8, conn);
        m.put_u64(0x5_0000 + (601 - 512) * 8, abstract_);
        m
    }

    fn scan(m: &fixture::Mem) -> SocketScan {
        scan_image(&m.lime())
    }

    fn scan_image(img: &[u8]) -> SocketScan {
        let isf = fixture::isf();
        let symbols = Symbols::parse(&fixture::kallsyms());
        let mem = LimeMemory::open(img).unwrap();
        let k = LinuxKernel::locate(&mem, &symbols, Types::new(&isf), BANNER).unwrap();
        let tasks = k.tasks(&mem).unwrap().tasks;
        SocketWalker::new(Types::new(&isf), &symbols)
            .unwrap()
            .scan(&k, &mem, &tasks)
    }

    fn row(s: &MemorySocket) -> String {
        format!(
            "{} {} {} {} {} {} {:?}:{:?} -> {:?}:{:?} {} {:?} {:?}",
            s.pid,
            s.fd,
            s.family,
            s.kind,
            s.protocol,
            s.state,
            s.local_address,
            s.local_port,
            s.remote_address,
            s.remote_port,
            s.comm,
            s.inode,
            s.peer_inode
        )
    }

    #[test]
    fn sockets_of_each_process_through_direct_map_and_vmalloc() {
        let s = scan(&populated());
        let rows: Vec<String> = s.sockets.iter().map(row).collect();
        assert_eq!(
            rows,
            vec![
                "1 3 AF_INET STREAM TCP LISTEN Some(\"0.0.0.0\"):Some(22) -> Some(\"0.0.0.0\"):Some(0) init Some(1001) None",
                "1 5 AF_UNIX DGRAM 0 UNCONNECTED Some(\"/dev/log\"):None -> None:None init Some(1003) None",
                "1 6 AF_UNIX STREAM 0 ESTABLISHED None:None -> Some(\"/run/ctl\"):None init Some(1006) Some(1007)",
                "7 600 AF_INET6 STREAM TCP ESTABLISHED Some(\"::1\"):Some(8080) -> Some(\"::1\"):Some(40000) evil\\x1b[2J Some(1004) None",
                "7 601 AF_UNIX STREAM 0 LISTEN Some(\"@x\\\\x00\\\\x1b\"):None -> None:None evil\\x1b[2J Some(1005) None",
            ]
        );
        assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
        assert!(
            s.problems[0].contains("pid 7") && s.problems[0].contains("fd 2"),
            "{:?}",
            s.problems
        );
    }

    #[test]
    fn absurd_or_unreadable_tables_are_problems_not_failures() {
        let mut m = populated();
        // Task A claims 2^31 descriptors; task B's table is not in the image at all.
        m.put(0x3_0100, &(1u32 << 31).to_le_bytes());
        m.put_u64(0x4_0100 + 8, VMALLOC + 0x10_0000);
        let s = scan(&m);
        assert!(s.sockets.is_empty(), "{:?}", s.sockets);
        assert_eq!(s.problems.len(), 2, "{:?}", s.problems);
        assert!(
            s.problems[0].contains("claims 2147483648 entries"),
            "{:?}",
            s.problems
        );
        assert!(s.problems[1].contains("not mapped"), "{:?}", s.problems);
    }

    /// The fuzz target's seed is this fixture, sparse; it must scan the same.
    #[test]
    fn the_fuzz_seed_is_this_fixture() {
        let m = populated();
        let sparse = m.sparse_lime();
        assert_eq!(scan_image(&sparse), scan(&m));
        let mut want = vec![3u8];
        want.extend_from_slice(&sparse);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds/memory_formats/linux_sockets");
        if std::env::var_os("VESTIGE_UPDATE_SEEDS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        assert!(
            std::fs::read(&path).ok() == Some(want),
            "{} is not the fixture's image: rerun with VESTIGE_UPDATE_SEEDS=1",
            path.display()
        );
    }
}
