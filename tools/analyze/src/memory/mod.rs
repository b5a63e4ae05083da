//! Memory analysis of our own, to cross-check Volatility: a LiME image read by physical
//! address, and the Linux task list walked with the kernel's own symbols and types (the
//! kallsyms, BTF and banner captured with the memory by `acquire memory`).
//!
//! Only two kinds of kernel address are translated, and neither needs the page tables:
//! the kernel image (`__START_KERNEL_map` + physical base) and the direct map
//! (`page_offset_base` + physical address). Task structures are slab objects in the
//! direct map; `init_task` is in the image. Every pointer read from the image is
//! untrusted: a translation that leaves the image, a list that does not return to its
//! head within a bound, or a cycle ends the walk with an error naming the address.

pub mod linux;
pub mod physical;

pub use linux::{LinuxKernel, Task, TaskWalk};
pub use physical::{LimeMemory, MemoryError};
