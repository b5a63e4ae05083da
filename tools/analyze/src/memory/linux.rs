//! The Linux task list, walked from `init_task` with the symbols and types captured with
//! the memory.
//!
//! Locating the kernel without page tables (x86-64):
//! * kallsyms gives runtime (KASLR-shifted) virtual addresses of `init_task`,
//!   `linux_banner` and `page_offset_base`;
//! * the banner's bytes are found in physical memory; for each hit, the physical base of
//!   the kernel image follows from `phys = vaddr - __START_KERNEL_map + phys_base`, and it
//!   is accepted only if `init_task.comm` reads "swapper/0" through it;
//! * `page_offset_base` (read through the image) gives the direct map, where every other
//!   task structure lives.

use super::physical::{LimeMemory, MemoryError};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use vestige_evidence::read_at::ReadAt;

/// `__START_KERNEL_map` on x86-64.
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// The direct map's base without KASLR (`page_offset_base` is absent from kallsyms then).
const DEFAULT_PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
/// No system has this many tasks; a longer list is a loop or garbage.
const MAX_TASKS: usize = 1 << 20;

/// A process (thread-group leader or thread) from the task list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    /// Kernel virtual address of its task_struct.
    pub address: u64,
    /// `pid` (the thread id).
    pub pid: i32,
    /// `tgid` (the process id).
    pub tgid: i32,
    /// `real_parent->tgid`.
    pub ppid: i32,
    /// `comm`, display-safe.
    pub comm: String,
    /// `cred->uid`, when the cred pointer could be followed.
    pub uid: Option<u32>,
}

/// The outcome of walking the task list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskWalk {
    /// The tasks read, in list order.
    pub tasks: Vec<Task>,
    /// Where and why the walk stopped before returning to `init_task`, if it did.
    pub broken: Option<String>,
}

/// Byte offsets of the fields walked, from the ISF's `user_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offsets {
    tasks: u64,
    pid: u64,
    tgid: u64,
    comm: u64,
    real_parent: u64,
    cred: u64,
    cred_uid: u64,
}

/// A located kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxKernel {
    /// Physical address where the kernel image's `__START_KERNEL_map` maps.
    pub phys_base: u64,
    /// The direct map's base.
    pub page_offset_base: u64,
    /// `init_task`'s runtime virtual address.
    pub init_task: u64,
    offsets: Offsets,
}

fn kernel(msg: String) -> MemoryError {
    MemoryError::Kernel(msg)
}

fn field(isf: &Value, ty: &str, name: &str) -> Result<u64, MemoryError> {
    isf.get("user_types")
        .and_then(|t| t.get(ty))
        .and_then(|t| t.get("fields"))
        .and_then(|f| f.get(name))
        .and_then(|f| f.get("offset"))
        .and_then(Value::as_u64)
        .ok_or_else(|| kernel(format!("the symbol table has no {ty}.{name}")))
}

/// The runtime address of kernel symbol `name` in kallsyms text.
fn symbol(kallsyms: &str, name: &str) -> Option<u64> {
    vestige_symbols::kallsyms::parse(kallsyms)
        .symbols
        .iter()
        .find(|s| s.name == name && s.module.is_none())
        .map(|s| s.address)
}

impl LinuxKernel {
    /// Finds the kernel in `mem`: `kallsyms` (runtime addresses) and `banner`
    /// (/proc/version) from the capture, `isf` from `vestige symbols` (the same BTF).
    pub fn locate<R: ReadAt>(
        mem: &LimeMemory<R>,
        kallsyms: &str,
        isf: &Value,
        banner: &str,
    ) -> Result<Self, MemoryError> {
        let offsets = Offsets {
            tasks: field(isf, "task_struct", "tasks")?,
            pid: field(isf, "task_struct", "pid")?,
            tgid: field(isf, "task_struct", "tgid")?,
            comm: field(isf, "task_struct", "comm")?,
            real_parent: field(isf, "task_struct", "real_parent")?,
            cred: field(isf, "task_struct", "cred")?,
            cred_uid: field(isf, "cred", "uid")?,
        };
        let need = |name: &str| {
            symbol(kallsyms, name)
                .filter(|&a| a != 0)
                .ok_or_else(|| kernel(format!("kallsyms has no address for {name}")))
        };
        let init_task = need("init_task")?;
        let banner_va = need("linux_banner")?;
        let banner_offset = banner_va.checked_sub(START_KERNEL_MAP).ok_or_else(|| {
            kernel(format!(
                "linux_banner at {banner_va:#x} is not in the kernel image"
            ))
        })?;
        let mut tried = Vec::new();
        for hit in mem.find(banner.as_bytes(), 64)? {
            // phys_base is modular: with KASLR the virtual offset of the image can exceed
            // its physical address, and the kernel's own `phys_base` then "wraps" too.
            let phys_base = hit.wrapping_sub(banner_offset);
            let mut k = LinuxKernel {
                phys_base,
                page_offset_base: DEFAULT_PAGE_OFFSET,
                init_task,
                offsets,
            };
            if k.comm(mem, init_task).ok().as_deref() != Some("swapper/0") {
                tried.push(format!("{phys_base:#x}"));
                continue;
            }
            if let Some(pob) = symbol(kallsyms, "page_offset_base") {
                k.page_offset_base = mem.u64_at(k.image_phys(pob)?)?;
            }
            return Ok(k);
        }
        Err(kernel(format!(
            "no copy of the banner gives a kernel base where init_task.comm is \"swapper/0\" (tried {})",
            if tried.is_empty() { "none".to_string() } else { tried.join(", ") }
        )))
    }

    /// Physical address of a kernel-image virtual address.
    fn image_phys(&self, va: u64) -> Result<u64, MemoryError> {
        va.checked_sub(START_KERNEL_MAP)
            .map(|o| o.wrapping_add(self.phys_base))
            .ok_or_else(|| kernel(format!("{va:#x} is not a kernel-image address")))
    }

    /// Physical address of a kernel virtual address in the image or the direct map.
    fn phys(&self, va: u64) -> Result<u64, MemoryError> {
        if va >= START_KERNEL_MAP {
            self.image_phys(va)
        } else if va >= self.page_offset_base {
            Ok(va - self.page_offset_base)
        } else {
            Err(kernel(format!(
                "{va:#x} is neither in the kernel image nor in the direct map at {:#x}",
                self.page_offset_base
            )))
        }
    }

    fn read<R: ReadAt>(
        &self,
        mem: &LimeMemory<R>,
        va: u64,
        buf: &mut [u8],
    ) -> Result<(), MemoryError> {
        mem.read(self.phys(va)?, buf)
    }

    fn u64_at<R: ReadAt>(&self, mem: &LimeMemory<R>, va: u64) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.read(mem, va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn u32_at<R: ReadAt>(&self, mem: &LimeMemory<R>, va: u64) -> Result<u32, MemoryError> {
        let mut b = [0u8; 4];
        self.read(mem, va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn i32_at<R: ReadAt>(&self, mem: &LimeMemory<R>, va: u64) -> Result<i32, MemoryError> {
        let mut b = [0u8; 4];
        self.read(mem, va, &mut b)?;
        Ok(i32::from_le_bytes(b))
    }

    fn comm<R: ReadAt>(&self, mem: &LimeMemory<R>, task: u64) -> Result<String, MemoryError> {
        let mut b = [0u8; 16];
        self.read(mem, task.wrapping_add(self.offsets.comm), &mut b)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Ok(b.get(..end)
            .unwrap_or_default()
            .iter()
            .map(|&c| {
                if c.is_ascii_graphic() || c == b' ' {
                    char::from(c).to_string()
                } else {
                    format!("\\x{c:02x}")
                }
            })
            .collect())
    }

    fn task<R: ReadAt>(&self, mem: &LimeMemory<R>, addr: u64) -> Result<Task, MemoryError> {
        let o = self.offsets;
        let parent = self.u64_at(mem, addr.wrapping_add(o.real_parent))?;
        let ppid = if parent == addr {
            0
        } else {
            self.i32_at(mem, parent.wrapping_add(o.tgid)).unwrap_or(-1)
        };
        let uid = self
            .u64_at(mem, addr.wrapping_add(o.cred))
            .and_then(|c| self.u32_at(mem, c.wrapping_add(o.cred_uid)))
            .ok();
        Ok(Task {
            address: addr,
            pid: self.i32_at(mem, addr.wrapping_add(o.pid))?,
            tgid: self.i32_at(mem, addr.wrapping_add(o.tgid))?,
            ppid,
            comm: self.comm(mem, addr)?,
            uid,
        })
    }

    /// The tasks on the list from `init_task` (processes: thread-group leaders), in list
    /// order, `init_task` first.
    ///
    /// A memory image taken from a running system can be smeared: a process that exited
    /// while memory was read leaves pointers that lead nowhere. The walk then stops there
    /// and says where ([`TaskWalk::broken`]); the tasks before it are kept. A task seen
    /// twice that is not the head, or more than a million tasks, also stops it.
    pub fn tasks<R: ReadAt>(&self, mem: &LimeMemory<R>) -> Result<TaskWalk, MemoryError> {
        let head = self.init_task;
        let mut walk = TaskWalk {
            tasks: vec![self.task(mem, head)?],
            broken: None,
        };
        let mut seen = HashSet::from([head]);
        let mut next = self.u64_at(mem, head.wrapping_add(self.offsets.tasks))?;
        while walk.tasks.len() <= MAX_TASKS {
            let task = next.wrapping_sub(self.offsets.tasks);
            if task == head {
                return Ok(walk);
            }
            if !seen.insert(task) {
                walk.broken = Some(format!(
                    "the task list loops at {task:#x} without returning to init_task"
                ));
                return Ok(walk);
            }
            let step = self
                .task(mem, task)
                .and_then(|t| Ok((t, self.u64_at(mem, next)?)));
            match step {
                Ok((t, n)) => {
                    walk.tasks.push(t);
                    next = n;
                }
                Err(e) => {
                    walk.broken = Some(format!(
                        "the task list breaks after {} tasks, at list entry {next:#x}: {e}",
                        walk.tasks.len()
                    ));
                    return Ok(walk);
                }
            }
        }
        walk.broken = Some(format!("more than {MAX_TASKS} tasks: not a task list"));
        Ok(walk)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]
mod tests {
    use super::*;
    use vestige_evidence::lime;

    const BANNER: &str = "Linux version 6.1.0-test (x@y) #1 SMP\n";
    /// A KASLR'd layout: the image's virtual offset exceeds its physical address.
    const IMAGE_VA: u64 = 0xffff_ffff_9000_0000;
    const PHYS_IMAGE: u64 = 0x0100_0000;
    const POB: u64 = 0xffff_9000_0000_0000;
    const OFF: Offsets = Offsets {
        tasks: 0x40,
        pid: 0x80,
        tgid: 0x84,
        comm: 0xa0,
        real_parent: 0x90,
        cred: 0x98,
        cred_uid: 8,
    };

    fn isf() -> Value {
        serde_json::json!({"user_types": {
            "task_struct": {"fields": {
                "tasks": {"offset": OFF.tasks}, "pid": {"offset": OFF.pid},
                "tgid": {"offset": OFF.tgid}, "comm": {"offset": OFF.comm},
                "real_parent": {"offset": OFF.real_parent}, "cred": {"offset": OFF.cred}}},
            "cred": {"fields": {"uid": {"offset": OFF.cred_uid}}}}})
    }

    fn kallsyms() -> String {
        format!(
            "{:016x} D linux_banner\n{:016x} D init_task\n{:016x} D page_offset_base\n",
            IMAGE_VA + 0x100,
            IMAGE_VA + 0x1000,
            IMAGE_VA + 0x200
        )
    }

    /// Physical memory: 0..1 MiB of direct-map slabs, then the kernel image.
    struct Mem(Vec<u8>);
    impl Mem {
        fn put(&mut self, phys: u64, bytes: &[u8]) {
            let p = phys as usize;
            self.0[p..p + bytes.len()].copy_from_slice(bytes);
        }
        fn task(&mut self, phys: u64, pid: i32, comm: &str, next_va: u64, parent_va: u64) {
            self.put(phys + OFF.tasks, &next_va.to_le_bytes());
            self.put(phys + OFF.pid, &pid.to_le_bytes());
            self.put(phys + OFF.tgid, &pid.to_le_bytes());
            self.put(phys + OFF.comm, comm.as_bytes());
            self.put(phys + OFF.real_parent, &parent_va.to_le_bytes());
            // cred at phys 0x100; uid 1000.
            self.put(phys + OFF.cred, &(POB + 0x100).to_le_bytes());
        }
        fn lime(&self) -> Vec<u8> {
            let mut v = lime::header(0, self.0.len() as u64).unwrap().to_vec();
            v.extend_from_slice(&self.0);
            v
        }
    }

    /// init_task → task A (pid 1) → task B (pid 7) → back to init_task.
    fn system(b_next: Option<u64>) -> Vec<u8> {
        let mut m = Mem(vec![0u8; (PHYS_IMAGE + 0x10_0000) as usize]);
        m.put(0x100 + OFF.cred_uid, &1000u32.to_le_bytes());
        let init_va = IMAGE_VA + 0x1000;
        let a_va = POB + 0x1_0000;
        let b_va = POB + 0x2_0000;
        m.put(PHYS_IMAGE + 0x100, BANNER.as_bytes());
        m.put(PHYS_IMAGE + 0x200, &POB.to_le_bytes());
        m.task(
            PHYS_IMAGE + 0x1000,
            0,
            "swapper/0",
            a_va + OFF.tasks,
            init_va,
        );
        m.task(0x1_0000, 1, "init", b_va + OFF.tasks, init_va);
        let back = b_next.unwrap_or(init_va + OFF.tasks);
        m.task(0x2_0000, 7, "evil\x1b[2J", back, a_va);
        m.lime()
    }

    #[test]
    fn walks_the_list_through_image_and_direct_map() {
        let img = system(None);
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        let k = LinuxKernel::locate(&mem, &kallsyms(), &isf(), BANNER).unwrap();
        assert_eq!(k.page_offset_base, POB);
        assert_eq!(
            k.phys_base,
            PHYS_IMAGE.wrapping_sub(IMAGE_VA - START_KERNEL_MAP)
        );
        let walk = k.tasks(&mem).unwrap();
        assert!(walk.broken.is_none());
        let got: Vec<(i32, i32, &str, Option<u32>)> = walk
            .tasks
            .iter()
            .map(|t| (t.pid, t.ppid, t.comm.as_str(), t.uid))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, "swapper/0", Some(1000)),
                (1, 0, "init", Some(1000)),
                (7, 1, "evil\\x1b[2J", Some(1000))
            ]
        );
    }

    #[test]
    fn broken_and_looping_lists_stop_with_a_reason() {
        // B points at a freed entry outside every mapping (a smeared image).
        let img = system(Some(0xf0));
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        let k = LinuxKernel::locate(&mem, &kallsyms(), &isf(), BANNER).unwrap();
        let walk = k.tasks(&mem).unwrap();
        assert_eq!(walk.tasks.len(), 3);
        assert!(walk.broken.unwrap().contains("0xf0"));
        // B points back at A: a loop that never returns to init_task.
        let img = system(Some(POB + 0x1_0000 + OFF.tasks));
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        let walk = k.tasks(&mem).unwrap();
        assert!(walk.broken.unwrap().contains("loops"));
    }

    #[test]
    fn a_wrong_banner_or_missing_symbols_are_named() {
        let img = system(None);
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        let e = LinuxKernel::locate(&mem, &kallsyms(), &isf(), "Linux version 9\n").unwrap_err();
        assert!(e.to_string().contains("swapper/0"), "{e}");
        let e = LinuxKernel::locate(&mem, "", &isf(), BANNER).unwrap_err();
        assert!(e.to_string().contains("init_task"), "{e}");
        let e = LinuxKernel::locate(&mem, &kallsyms(), &serde_json::json!({}), BANNER).unwrap_err();
        assert!(e.to_string().contains("task_struct.tasks"), "{e}");
    }
}
