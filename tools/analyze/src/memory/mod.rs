//! Memory analysis of our own, to cross-check Volatility: a LiME image read by physical
//! address, the Linux task list walked with the kernel's own symbols and types (the
//! kallsyms, BTF and banner captured with the memory by `acquire memory`), and the
//! sockets each process holds open.
//!
//! Kernel addresses in the image (`__START_KERNEL_map` + physical base) and the direct
//! map (`page_offset_base` + physical address) are translated by arithmetic: task, file
//! and socket structures are slab objects in the direct map, `init_task` is in the image.
//! Anything else (vmalloc'd descriptor tables, module data) goes through the kernel's
//! own page tables, which are trusted only after they agree with the arithmetic on
//! `init_task`. Every pointer read from the image is untrusted: a translation that leads
//! nowhere, a list that does not return to its head within a bound, or a cycle ends the
//! walk with an error naming the address.

#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
pub mod isf;
pub mod linux;
pub mod physical;
pub mod sockets;

pub use isf::{Symbols, Types};
pub use linux::{LinuxKernel, PageTables, Task, TaskWalk};
pub use physical::{LimeMemory, MemoryError};
pub use sockets::{MemorySocket, SocketScan, SocketWalker};
