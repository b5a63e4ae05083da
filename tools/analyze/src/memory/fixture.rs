//! A synthetic x86-64 Linux memory image for the walkers' unit tests: a KASLR'd kernel
//! image, a direct map, real 4-level page tables mapping a vmalloc area, three tasks,
//! their descriptor tables and sockets, and the ISF and kallsyms that describe them.
//! (The QEMU test checks the same walkers against a real kernel and Volatility.)
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::new_without_default,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use serde_json::{json, Value};
use vestige_evidence::lime;

pub const BANNER: &str = "Linux version 6.1.0-test (x@y) #1 SMP\n";
/// A KASLR'd layout: the image's virtual offset exceeds its physical address.
pub const IMAGE_VA: u64 = 0xffff_ffff_9000_0000;
pub const PHYS_IMAGE: u64 = 0x0100_0000;
pub const POB: u64 = 0xffff_9000_0000_0000;
pub const VMALLOC: u64 = 0xffff_a000_0000_0000;
pub const INIT_TASK: u64 = IMAGE_VA + 0x1000;
pub const SOCKET_FILE_OPS: u64 = IMAGE_VA + 0x3000;
const TOP_PGT: u64 = 0x4000;
/// Task A (pid 1) and B (pid 7), by physical address in the direct map.
pub const TASK_A: u64 = 0x1_0000;
pub const TASK_B: u64 = 0x2_0000;

// task_struct
pub const TASKS: u64 = 0x40;
pub const PID: u64 = 0x80;
pub const TGID: u64 = 0x84;
pub const REAL_PARENT: u64 = 0x90;
pub const CRED: u64 = 0x98;
pub const COMM: u64 = 0xa0;
pub const FILES: u64 = 0xb0;
pub const CRED_UID: u64 = 8;
// files_struct, fdtable, file, socket, socket_alloc, inode
const FDT: u64 = 0x20;
const MAX_FDS: u64 = 0;
const FD: u64 = 8;
const F_OP: u64 = 0x28;
const PRIVATE_DATA: u64 = 0xc8;
const SOCKET_STATE: u64 = 0;
const SK: u64 = 0x18;
const VFS_INODE: u64 = 0x80;
const I_INO: u64 = 0x40;
// sock (sock_common at 0, with its anonymous unions) and unix_sock
const DADDR: u64 = 0;
const RCV_SADDR: u64 = 4;
const DPORT: u64 = 12;
const NUM: u64 = 14;
const FAMILY: u64 = 16;
const STATE: u64 = 18;
const V6_DADDR: u64 = 56;
const V6_RCV_SADDR: u64 = 72;
const SK_TYPE: u64 = 514;
const SK_PROTOCOL: u64 = 516;
const SK_SOCKET: u64 = 0x110;
const UNIX_ADDR: u64 = 776;
const UNIX_PEER: u64 = 784;

fn fields(list: &[(&str, u64, &str)]) -> Value {
    let mut m = serde_json::Map::new();
    for (name, offset, ty) in list {
        m.insert(
            (*name).to_string(),
            json!({"offset": offset, "type": {"kind": "struct", "name": ty}}),
        );
    }
    Value::Object(m)
}

/// The ISF `user_types` of the fixture (types of leaf fields do not matter).
pub fn isf() -> Value {
    let t = |size: u64, f: Value| json!({"size": size, "fields": f});
    json!({"user_types": {
        "task_struct": t(0x100, fields(&[("tasks", TASKS, "list_head"), ("pid", PID, "int"),
            ("tgid", TGID, "int"), ("real_parent", REAL_PARENT, "p"), ("cred", CRED, "p"),
            ("comm", COMM, "a"), ("files", FILES, "p")])),
        "cred": t(16, fields(&[("uid", CRED_UID, "kuid_t")])),
        "files_struct": t(64, fields(&[("fdt", FDT, "p")])),
        "fdtable": t(56, fields(&[("max_fds", MAX_FDS, "u"), ("fd", FD, "p")])),
        "file": t(232, fields(&[("f_op", F_OP, "p"), ("private_data", PRIVATE_DATA, "p")])),
        "socket": t(128, fields(&[("state", SOCKET_STATE, "e"), ("sk", SK, "p")])),
        "socket_alloc": t(0x200, fields(&[("socket", 0, "socket"), ("vfs_inode", VFS_INODE, "inode")])),
        "inode": t(0x100, fields(&[("i_ino", I_INO, "u")])),
        "sock": t(776, fields(&[("__sk_common", 0, "sock_common"), ("sk_socket", SK_SOCKET, "p"), ("sk_type", SK_TYPE, "u"),
            ("sk_protocol", SK_PROTOCOL, "u")])),
        "sock_common": t(136, fields(&[("unnamed_field_0", 0, "unnamed_union_1"),
            ("unnamed_field_2", 12, "unnamed_union_3"), ("skc_family", FAMILY, "u"),
            ("skc_state", STATE, "u"), ("skc_v6_daddr", V6_DADDR, "in6_addr"),
            ("skc_v6_rcv_saddr", V6_RCV_SADDR, "in6_addr")])),
        "unnamed_union_1": t(8, fields(&[("skc_addrpair", 0, "u"),
            ("unnamed_field_0", 0, "unnamed_struct_2")])),
        "unnamed_struct_2": t(8, fields(&[("skc_daddr", DADDR, "u"), ("skc_rcv_saddr", RCV_SADDR, "u")])),
        "unnamed_union_3": t(4, fields(&[("unnamed_field_0", 0, "unnamed_struct_4")])),
        "unnamed_struct_4": t(4, fields(&[("skc_dport", DPORT - 12, "u"), ("skc_num", NUM - 12, "u")])),
        "unix_sock": t(1024, fields(&[("sk", 0, "sock"), ("addr", UNIX_ADDR, "p"),
            ("peer", UNIX_PEER, "p")])),
        "unix_address": t(8, fields(&[("len", 4, "int"), ("name", 8, "sockaddr_un")])),
        "sockaddr_un": t(110, fields(&[("sun_path", 2, "a")])),
    }})
}

/// kallsyms text of the fixture (runtime addresses).
pub fn kallsyms() -> String {
    [
        (IMAGE_VA + 0x100, "linux_banner"),
        (IMAGE_VA + 0x200, "page_offset_base"),
        (IMAGE_VA + 0x208, "vmalloc_base"),
        (INIT_TASK, "init_task"),
        (SOCKET_FILE_OPS, "socket_file_ops"),
        (IMAGE_VA + TOP_PGT, "init_top_pgt"),
    ]
    .iter()
    .map(|(a, n)| format!("{a:016x} D {n}\n"))
    .collect()
}

/// Physical memory under construction: 0..16 MiB direct-map objects, then the image.
#[derive(Debug)]
pub struct Mem {
    pub bytes: Vec<u8>,
    /// Next free page for page tables.
    next_table: u64,
}

impl Mem {
    pub fn new() -> Self {
        let mut m = Mem {
            bytes: vec![0u8; (PHYS_IMAGE + 0x10_0000) as usize],
            next_table: 0x80_0000,
        };
        m.put(PHYS_IMAGE + 0x100, BANNER.as_bytes());
        m.put(PHYS_IMAGE + 0x200, &POB.to_le_bytes());
        m.put(PHYS_IMAGE + 0x208, &VMALLOC.to_le_bytes());
        m
    }

    pub fn put(&mut self, phys: u64, bytes: &[u8]) {
        let p = phys as usize;
        self.bytes[p..p + bytes.len()].copy_from_slice(bytes);
    }

    pub fn put_u64(&mut self, phys: u64, v: u64) {
        self.put(phys, &v.to_le_bytes());
    }

    fn get_u64(&self, phys: u64) -> u64 {
        let p = phys as usize;
        u64::from_le_bytes(self.bytes[p..p + 8].try_into().unwrap())
    }

    /// Maps the 4 KiB page at `va` to `phys` in the 4-level tables at the image's
    /// `init_top_pgt`.
    pub fn map(&mut self, va: u64, phys: u64) {
        let mut table = PHYS_IMAGE + TOP_PGT;
        for shift in [39u32, 30, 21] {
            let at = table + ((va >> shift) & 0x1ff) * 8;
            let mut e = self.get_u64(at);
            if e & 1 == 0 {
                e = self.next_table | 0x63;
                self.next_table += 0x1000;
                self.put_u64(at, e);
            }
            table = e & 0x000f_ffff_ffff_f000;
        }
        self.put_u64(table + ((va >> 12) & 0x1ff) * 8, phys | 0x63);
    }

    /// A task at direct-map physical address `phys`.
    pub fn task(&mut self, phys: u64, pid: i32, comm: &str, next_va: u64, parent_va: u64) {
        self.put_u64(phys + TASKS, next_va);
        self.put(phys + PID, &pid.to_le_bytes());
        self.put(phys + TGID, &pid.to_le_bytes());
        self.put(phys + COMM, comm.as_bytes());
        self.put_u64(phys + REAL_PARENT, parent_va);
        // cred at phys 0x100; uid 1000.
        self.put_u64(phys + CRED, POB + 0x100);
        self.put(0x100 + CRED_UID, &1000u32.to_le_bytes());
    }

    /// Gives the task at `task_phys` a files_struct at `files_phys` whose descriptor
    /// array (of `max_fds`) is at virtual `array_va`.
    pub fn files(&mut self, task_phys: u64, files_phys: u64, max_fds: u32, array_va: u64) {
        self.put_u64(task_phys + FILES, POB + files_phys);
        let fdt = files_phys + 0x100;
        self.put_u64(files_phys + FDT, POB + fdt);
        self.put(fdt + MAX_FDS, &max_fds.to_le_bytes());
        self.put_u64(fdt + FD, array_va);
    }

    /// A socket: file, socket_alloc (with inode `ino`) and sock at `phys`, `phys +
    /// 0x400` and `phys + 0x800`; returns the file's virtual address.
    pub fn socket(&mut self, phys: u64, ino: u64, s: &SockSpec) -> u64 {
        let (file, alloc, sk) = (phys, phys + 0x400, phys + 0x800);
        self.put_u64(file + F_OP, SOCKET_FILE_OPS);
        self.put_u64(file + PRIVATE_DATA, POB + alloc);
        self.put_u64(alloc + SK, POB + sk);
        self.put_u64(alloc + VFS_INODE + I_INO, ino);
        self.put(sk + FAMILY, &s.family.to_le_bytes());
        self.put(sk + STATE, &[s.state]);
        self.put(alloc + SOCKET_STATE, &s.socket_state.to_le_bytes());
        self.put_u64(sk + SK_SOCKET, POB + alloc);
        self.put(sk + SK_TYPE, &s.sk_type.to_le_bytes());
        self.put(sk + SK_PROTOCOL, &s.protocol.to_le_bytes());
        self.put(sk + NUM, &s.local_port.to_le_bytes());
        self.put(sk + DPORT, &s.remote_port.to_be_bytes());
        match s.family {
            2 => {
                self.put(sk + RCV_SADDR, &s.local[..4]);
                self.put(sk + DADDR, &s.remote[..4]);
            }
            10 => {
                self.put(sk + V6_RCV_SADDR, &s.local);
                self.put(sk + V6_DADDR, &s.remote);
            }
            _ => {}
        }
        if let Some(path) = s.unix_path {
            let addr = phys + 0xc00;
            self.put_u64(sk + UNIX_ADDR, POB + addr);
            self.put(addr + 4, &(path.len() as u32 + 2).to_le_bytes());
            self.put(addr + 8 + 2, path);
        }
        POB + file
    }

    /// Connects the unix socket made at `phys` to the one at `peer_phys`.
    pub fn connect_unix(&mut self, phys: u64, peer_phys: u64) {
        self.put_u64(phys + 0x800 + UNIX_PEER, POB + peer_phys + 0x800);
    }

    /// A plain (non-socket) file; returns its virtual address.
    pub fn plain_file(&mut self, phys: u64) -> u64 {
        self.put_u64(phys + F_OP, IMAGE_VA + 0x3800);
        POB + phys
    }

    pub fn lime(&self) -> Vec<u8> {
        let mut v = lime::header(0, self.bytes.len() as u64).unwrap().to_vec();
        v.extend_from_slice(&self.bytes);
        v
    }

    /// The same memory with only its non-zero pages, as consecutive LiME ranges: small
    /// enough for a fuzz seed.
    pub fn sparse_lime(&self) -> Vec<u8> {
        let mut v = Vec::new();
        let mut pages = self.bytes.chunks(4096).enumerate().peekable();
        while let Some((i, page)) = pages.next() {
            if page.iter().all(|&b| b == 0) {
                continue;
            }
            let mut data = page.to_vec();
            while let Some((_, next)) = pages.next_if(|(_, p)| p.iter().any(|&b| b != 0)) {
                data.extend_from_slice(next);
            }
            v.extend_from_slice(&lime::header(i as u64 * 4096, data.len() as u64).unwrap());
            v.extend_from_slice(&data);
        }
        v
    }
}

/// What a fixture socket holds.
#[derive(Debug)]
pub struct SockSpec {
    pub family: u16,
    pub sk_type: u16,
    pub protocol: u16,
    pub state: u8,
    /// `socket.state` (1 unconnected, 3 connected).
    pub socket_state: u32,
    pub local: [u8; 16],
    pub local_port: u16,
    pub remote: [u8; 16],
    pub remote_port: u16,
    pub unix_path: Option<&'static [u8]>,
}

impl SockSpec {
    /// A TCP socket (`family` AF_INET or AF_INET6) in TCP `state`; connected when the
    /// state is ESTABLISHED.
    pub fn tcp(
        family: u16,
        state: u8,
        (local, local_port): ([u8; 16], u16),
        (remote, remote_port): ([u8; 16], u16),
    ) -> Self {
        SockSpec {
            family,
            sk_type: 1,
            protocol: 6,
            state,
            socket_state: if state == 1 { 3 } else { 1 },
            local,
            local_port,
            remote,
            remote_port,
            unix_path: None,
        }
    }

    /// A unix socket of `sk_type` in `state`/`socket_state`, bound to `path` if any.
    pub fn unix(sk_type: u16, state: u8, socket_state: u32, path: Option<&'static [u8]>) -> Self {
        SockSpec {
            family: 1,
            sk_type,
            protocol: 0,
            state,
            socket_state,
            local: [0; 16],
            local_port: 0,
            remote: [0; 16],
            remote_port: 0,
            unix_path: path,
        }
    }
}

/// init_task → task A (pid 1) → task B (pid 7) → `b_next` (default: back to init_task),
/// with page tables mapping init_task, its direct-map alias and one vmalloc page.
pub fn system(b_next: Option<u64>) -> Mem {
    let mut m = Mem::new();
    let a_va = POB + TASK_A;
    let b_va = POB + TASK_B;
    m.task(PHYS_IMAGE + 0x1000, 0, "swapper/0", a_va + TASKS, INIT_TASK);
    m.task(TASK_A, 1, "init", b_va + TASKS, INIT_TASK);
    let back = b_next.unwrap_or(INIT_TASK + TASKS);
    m.task(TASK_B, 7, "evil\x1b[2J", back, a_va);
    // The prev pointers: init_task ← A ← B ← init_task.
    m.put_u64(TASK_A + TASKS + 8, INIT_TASK + TASKS);
    m.put_u64(TASK_B + TASKS + 8, a_va + TASKS);
    m.put_u64(PHYS_IMAGE + 0x1000 + TASKS + 8, b_va + TASKS);
    m.map(INIT_TASK & !0xfff, PHYS_IMAGE + 0x1000);
    m.map(POB + PHYS_IMAGE + 0x1000, PHYS_IMAGE + 0x1000);
    m
}
