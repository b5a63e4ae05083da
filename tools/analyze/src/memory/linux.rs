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

use super::isf::{Symbols, Types};
use super::physical::{LimeMemory, MemoryError};
use crate::text::display_safe;
use serde::Serialize;
use std::collections::HashSet;
use vestige_evidence::read_at::ReadAt;

/// `__START_KERNEL_map` on x86-64.
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// The kernel image mapping's size (`KERNEL_IMAGE_SIZE` with KASLR); modules follow it
/// and are reached through the page tables.
const KERNEL_IMAGE_SIZE: u64 = 1 << 30;
/// The direct map's base without KASLR (`page_offset_base` is absent from kallsyms then).
const DEFAULT_PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
/// `VMALLOC_START` without KASLR: the direct map ends there.
const DEFAULT_VMALLOC_START: u64 = 0xffff_c900_0000_0000;
/// No system has this many tasks; a longer list is a loop or garbage.
const MAX_TASKS: usize = 1 << 20;
const PAGE: u64 = 4096;
/// Offsets of `next` and `prev` in a `struct list_head`.
const NEXT: u64 = 0;
const PREV: u64 = 8;
/// Bits 12..51 of a page-table entry: the next table or the page frame.
const PTE_ADDRESS: u64 = 0x000f_ffff_ffff_f000;
const PTE_PRESENT: u64 = 1;
const PTE_HUGE: u64 = 1 << 7;

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

/// The kernel's own page tables (`init_top_pgt`), which map every kernel address:
/// vmalloc and module memory as well as the image and the direct map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PageTables {
    /// Physical address of the top-level table.
    pub top: u64,
    /// 4 or 5 (la57).
    pub levels: u8,
}

/// A located kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxKernel {
    /// Physical address where the kernel image's `__START_KERNEL_map` maps.
    pub phys_base: u64,
    /// The direct map's base.
    pub page_offset_base: u64,
    /// Where the direct map ends (`vmalloc_base`).
    pub direct_map_end: u64,
    /// `init_task`'s runtime virtual address.
    pub init_task: u64,
    /// The page tables, when they translate `init_task` and its direct-map alias to the
    /// addresses found without them; otherwise why not (then only image and direct-map
    /// addresses are read).
    pub page_tables: Result<PageTables, String>,
    offsets: Offsets,
}

fn kernel(msg: String) -> MemoryError {
    MemoryError::Kernel(msg)
}

impl LinuxKernel {
    /// Finds the kernel in `mem`: `symbols` from the captured kallsyms (runtime
    /// addresses), `banner` (/proc/version) from the capture, `types` from the ISF that
    /// `vestige symbols` makes of the same kernel's BTF.
    pub fn locate<R: ReadAt>(
        mem: &LimeMemory<R>,
        symbols: &Symbols,
        types: Types<'_>,
        banner: &str,
    ) -> Result<Self, MemoryError> {
        let f = |ty: &str, name: &str| types.offset(ty, &[name]);
        let offsets = Offsets {
            tasks: f("task_struct", "tasks")?,
            pid: f("task_struct", "pid")?,
            tgid: f("task_struct", "tgid")?,
            comm: f("task_struct", "comm")?,
            real_parent: f("task_struct", "real_parent")?,
            cred: f("task_struct", "cred")?,
            cred_uid: f("cred", "uid")?,
        };
        let init_task = symbols.need("init_task")?;
        let banner_va = symbols.need("linux_banner")?;
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
                direct_map_end: DEFAULT_VMALLOC_START,
                init_task,
                page_tables: Err("not looked for yet".to_string()),
                offsets,
            };
            if k.comm(mem, init_task).ok().as_deref() != Some("swapper/0") {
                tried.push(format!("{phys_base:#x}"));
                continue;
            }
            if let Some(pob) = symbols.get("page_offset_base") {
                k.page_offset_base = mem.u64_at(k.image_phys(pob)?)?;
            }
            if let Some(vmb) = symbols.get("vmalloc_base") {
                k.direct_map_end = mem.u64_at(k.image_phys(vmb)?)?;
            }
            k.page_tables = k.check_page_tables(mem, symbols);
            return Ok(k);
        }
        Err(kernel(format!(
            "no copy of the banner gives a kernel base where init_task.comm is \"swapper/0\" (tried {})",
            if tried.is_empty() { "none".to_string() } else { tried.join(", ") }
        )))
    }

    /// The page tables from `init_top_pgt`, accepted only when they map `init_task` (an
    /// image address) and its direct-map alias where the image and direct-map arithmetic
    /// put them.
    fn check_page_tables<R: ReadAt>(
        &self,
        mem: &LimeMemory<R>,
        symbols: &Symbols,
    ) -> Result<PageTables, String> {
        let top_va = symbols
            .get("init_top_pgt")
            .ok_or("kallsyms has no init_top_pgt")?;
        let top = self.image_phys(top_va).map_err(|e| e.to_string())?;
        let levels = match symbols.get("__pgtable_l5_enabled") {
            Some(va) => {
                let mut b = [0u8; 4];
                self.read(mem, va, &mut b).map_err(|e| e.to_string())?;
                if u32::from_le_bytes(b) == 0 {
                    4
                } else {
                    5
                }
            }
            None => 4,
        };
        let pt = PageTables { top, levels };
        let phys = self.image_phys(self.init_task).map_err(|e| e.to_string())?;
        let alias = self.page_offset_base.wrapping_add(phys);
        for va in [self.init_task, alias] {
            match walk_page_tables(mem, pt, va) {
                Ok(p) if p == phys => {}
                Ok(p) => {
                    return Err(format!(
                        "the page tables at {top:#x} map {va:#x} to {p:#x}, not {phys:#x}"
                    ))
                }
                Err(e) => return Err(format!("the page tables at {top:#x}: {e}")),
            }
        }
        Ok(pt)
    }

    /// Physical address of a kernel-image virtual address.
    fn image_phys(&self, va: u64) -> Result<u64, MemoryError> {
        va.checked_sub(START_KERNEL_MAP)
            .map(|o| o.wrapping_add(self.phys_base))
            .ok_or_else(|| kernel(format!("{va:#x} is not a kernel-image address")))
    }

    /// Physical address of a kernel virtual address: arithmetic for the image and the
    /// direct map, the page tables for anything else (vmalloc, modules).
    pub fn phys<R: ReadAt>(&self, mem: &LimeMemory<R>, va: u64) -> Result<u64, MemoryError> {
        if (START_KERNEL_MAP..START_KERNEL_MAP + KERNEL_IMAGE_SIZE).contains(&va) {
            return self.image_phys(va);
        }
        if (self.page_offset_base..self.direct_map_end).contains(&va) {
            return Ok(va - self.page_offset_base);
        }
        match &self.page_tables {
            Ok(pt) => walk_page_tables(mem, *pt, va),
            Err(why) => Err(kernel(format!(
                "{va:#x} is neither in the kernel image nor in the direct map at {:#x}, and the page tables are not usable ({why})",
                self.page_offset_base
            ))),
        }
    }

    /// Reads kernel virtual memory, page by page (vmalloc pages are not contiguous).
    pub(super) fn read<R: ReadAt>(
        &self,
        mem: &LimeMemory<R>,
        va: u64,
        buf: &mut [u8],
    ) -> Result<(), MemoryError> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = va.wrapping_add(done as u64);
            let room = usize::try_from(PAGE - (at & (PAGE - 1))).unwrap_or(1);
            let n = room.min(buf.len() - done);
            let part = buf.get_mut(done..done + n).unwrap_or_default();
            mem.read(self.phys(mem, at)?, part)?;
            done += n;
        }
        Ok(())
    }

    pub(super) fn u64_at<R: ReadAt>(
        &self,
        mem: &LimeMemory<R>,
        va: u64,
    ) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.read(mem, va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub(super) fn u32_at<R: ReadAt>(
        &self,
        mem: &LimeMemory<R>,
        va: u64,
    ) -> Result<u32, MemoryError> {
        let mut b = [0u8; 4];
        self.read(mem, va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub(super) fn u16_at<R: ReadAt>(
        &self,
        mem: &LimeMemory<R>,
        va: u64,
    ) -> Result<u16, MemoryError> {
        let mut b = [0u8; 2];
        self.read(mem, va, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn i32_at<R: ReadAt>(&self, mem: &LimeMemory<R>, va: u64) -> Result<i32, MemoryError> {
        let mut b = [0u8; 4];
        self.read(mem, va, &mut b)?;
        Ok(i32::from_le_bytes(b))
    }

    pub(super) fn comm<R: ReadAt>(
        &self,
        mem: &LimeMemory<R>,
        task: u64,
    ) -> Result<String, MemoryError> {
        let mut b = [0u8; 16];
        self.read(mem, task.wrapping_add(self.offsets.comm), &mut b)?;
        Ok(display_c_string(&b))
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
    /// and says where ([`TaskWalk::broken`]), keeps the tasks before it, and walks the
    /// list backwards from `init_task` (the `prev` pointers) to recover the tasks after
    /// the break, as far as they lead. A task seen twice that is not the head, or more
    /// than a million tasks, also stops a walk.
    pub fn tasks<R: ReadAt>(&self, mem: &LimeMemory<R>) -> Result<TaskWalk, MemoryError> {
        let head = self.init_task;
        let mut walk = TaskWalk {
            tasks: vec![self.task(mem, head)?],
            broken: None,
        };
        let mut seen = HashSet::from([head]);
        let Some(why) = self.follow(mem, &mut walk.tasks, &mut seen, NEXT)? else {
            return Ok(walk);
        };
        let mut tail = Vec::new();
        let back_why = self.follow(mem, &mut tail, &mut seen, PREV)?;
        tail.reverse();
        walk.broken = Some(format!(
            "{why}; walking back from init_task recovered {} more{}",
            tail.len(),
            back_why.map_or_else(String::new, |b| format!(" (and stopped: {b})"))
        ));
        walk.tasks.extend(tail);
        Ok(walk)
    }

    /// Follows `init_task`'s list in one direction (`link`: [`NEXT`] or [`PREV`]),
    /// appending tasks until it returns to the head (None) or breaks (the reason). A task
    /// already in `seen` ends the walk: the other direction got there first.
    fn follow<R: ReadAt>(
        &self,
        mem: &LimeMemory<R>,
        tasks: &mut Vec<Task>,
        seen: &mut HashSet<u64>,
        link: u64,
    ) -> Result<Option<String>, MemoryError> {
        let head = self.init_task;
        let list = self.offsets.tasks;
        let back = NEXT + PREV - link;
        let mut from = head.wrapping_add(list);
        let mut next = self.u64_at(mem, from.wrapping_add(link))?;
        while tasks.len() <= MAX_TASKS {
            let task = next.wrapping_sub(list);
            if task == head {
                return Ok(None);
            }
            if !seen.insert(task) {
                return Ok((link == NEXT).then(|| {
                    format!("the task list loops at {task:#x} without returning to init_task")
                }));
            }
            // A list entry must point back where we came from (next->prev == this);
            // garbage in a smeared image rarely does.
            let step = self.u64_at(mem, next.wrapping_add(back)).and_then(|b| {
                if b != from {
                    return Err(kernel(format!(
                        "list entry {next:#x} points back to {b:#x}, not {from:#x}"
                    )));
                }
                Ok((
                    self.task(mem, task)?,
                    self.u64_at(mem, next.wrapping_add(link))?,
                ))
            });
            match step {
                Ok((t, n)) => {
                    tasks.push(t);
                    from = next;
                    next = n;
                }
                Err(e) => {
                    return Ok(Some(format!(
                        "the task list breaks after {} tasks, at list entry {next:#x}: {e}",
                        tasks.len()
                    )))
                }
            }
        }
        Ok(Some(format!(
            "more than {MAX_TASKS} tasks: not a task list"
        )))
    }
}

/// A NUL-terminated byte string from memory, printable (see
/// [`crate::text::display_safe`]).
pub(super) fn display_c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    display_safe(b.get(..end).unwrap_or_default())
}

/// Translates `va` through x86-64 page tables (4 or 5 levels, 1 GiB and 2 MiB pages).
fn walk_page_tables<R: ReadAt>(
    mem: &LimeMemory<R>,
    pt: PageTables,
    va: u64,
) -> Result<u64, MemoryError> {
    let shifts: &[u32] = if pt.levels == 5 {
        &[48, 39, 30, 21, 12]
    } else {
        &[39, 30, 21, 12]
    };
    let mut table = pt.top;
    for &shift in shifts {
        let entry_at = table + ((va >> shift) & 0x1ff) * 8;
        let entry = mem.u64_at(entry_at)?;
        if entry & PTE_PRESENT == 0 {
            return Err(kernel(format!(
                "{va:#x} is not mapped (entry at physical {entry_at:#x} is not present)"
            )));
        }
        let frame = entry & PTE_ADDRESS;
        if shift == 12 || (entry & PTE_HUGE != 0 && (shift == 30 || shift == 21)) {
            let within = (1u64 << shift) - 1;
            return Ok((frame & !within) | (va & within));
        }
        table = frame;
    }
    Err(kernel(format!("{va:#x}: no page-table level maps a page")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::fixture::{self, system, BANNER, IMAGE_VA, PHYS_IMAGE, POB, TASKS, VMALLOC};
    use super::*;

    fn locate(m: &fixture::Mem, symbols: &str) -> Result<(LinuxKernel, Vec<u8>), MemoryError> {
        let img = m.lime();
        let isf = fixture::isf();
        let mem = LimeMemory::open(img.as_slice())?;
        let k = LinuxKernel::locate(&mem, &Symbols::parse(symbols), Types::new(&isf), BANNER)?;
        Ok((k, img))
    }

    #[test]
    fn walks_the_list_through_image_and_direct_map() {
        let (k, img) = locate(&system(None), &fixture::kallsyms()).unwrap();
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        assert_eq!(k.page_offset_base, POB);
        assert_eq!(k.direct_map_end, VMALLOC);
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
    fn page_tables_are_used_only_when_they_agree() {
        let mut m = system(None);
        // Two vmalloc pages backed by pages that are not adjacent, in reverse order.
        m.map(VMALLOC + 0x1000, 0x5_0000);
        m.map(VMALLOC + 0x2000, 0x4_0000);
        m.put(0x5_0ffc, b"spli");
        m.put(0x4_0000, b"t!");
        let (k, img) = locate(&m, &fixture::kallsyms()).unwrap();
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        assert_eq!(
            k.page_tables,
            Ok(PageTables {
                top: PHYS_IMAGE + 0x4000,
                levels: 4
            })
        );
        let mut b = [0u8; 6];
        k.read(&mem, VMALLOC + 0x1ffc, &mut b).unwrap();
        assert_eq!(&b, b"split!");
        let e = k.read(&mem, VMALLOC + 0x9000, &mut b).unwrap_err();
        assert!(e.to_string().contains("not mapped"), "{e}");

        // Tables that map init_task elsewhere are not trusted; vmalloc is then unreadable
        // and says why.
        m.map(IMAGE_VA + 0x1000, 0x6_0000);
        let (k, img) = locate(&m, &fixture::kallsyms()).unwrap();
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        let why = k.page_tables.clone().unwrap_err();
        assert!(why.contains("not 0x"), "{why}");
        let e = k.read(&mem, VMALLOC + 0x1000, &mut b).unwrap_err();
        assert!(e.to_string().contains("page tables are not usable"), "{e}");
        assert_eq!(k.tasks(&mem).unwrap().tasks.len(), 3);
    }

    #[test]
    fn broken_and_looping_lists_stop_with_a_reason() {
        // B points at a freed entry outside every mapping (a smeared image).
        let (k, img) = locate(&system(Some(0xf0)), &fixture::kallsyms()).unwrap();
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        let walk = k.tasks(&mem).unwrap();
        assert_eq!(walk.tasks.len(), 3);
        assert!(walk.broken.unwrap().contains("0xf0"));
        // B points back at A: a loop that never returns to init_task.
        let (k, img) = locate(
            &system(Some(POB + fixture::TASK_A + TASKS)),
            &fixture::kallsyms(),
        )
        .unwrap();
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        let walk = k.tasks(&mem).unwrap();
        assert!(walk.broken.unwrap().contains("loops"));
    }

    #[test]
    fn a_break_early_in_the_list_is_bridged_from_the_other_end() {
        // A's next pointer is garbage (the first task of a smeared image); the prev
        // pointers init_task → B → A still lead back.
        let mut m = system(None);
        m.put_u64(fixture::TASK_A + TASKS, 0xf0);
        let (k, img) = locate(&m, &fixture::kallsyms()).unwrap();
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        let walk = k.tasks(&mem).unwrap();
        let pids: Vec<i32> = walk.tasks.iter().map(|t| t.pid).collect();
        assert_eq!(pids, vec![0, 1, 7]);
        let why = walk.broken.unwrap();
        assert!(
            why.contains("0xf0") && why.contains("recovered 1 more"),
            "{why}"
        );
    }

    #[test]
    fn a_wrong_banner_or_missing_symbols_are_named() {
        let img = system(None).lime();
        let mem = LimeMemory::open(img.as_slice()).unwrap();
        let syms = Symbols::parse(&fixture::kallsyms());
        let isf = fixture::isf();
        let e =
            LinuxKernel::locate(&mem, &syms, Types::new(&isf), "Linux version 9\n").unwrap_err();
        assert!(e.to_string().contains("swapper/0"), "{e}");
        let e =
            LinuxKernel::locate(&mem, &Symbols::default(), Types::new(&isf), BANNER).unwrap_err();
        assert!(e.to_string().contains("init_task"), "{e}");
        let empty = serde_json::json!({});
        let e = LinuxKernel::locate(&mem, &syms, Types::new(&empty), BANNER).unwrap_err();
        assert!(e.to_string().contains("task_struct.tasks"), "{e}");
    }
}
