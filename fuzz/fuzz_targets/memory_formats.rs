//! Memory dump formats from untrusted hands: a LiME file, an ELF core (a hypervisor's dump
//! or a copy of /proc/kcore), /proc/iomem text and a VMware state file (.vmss/.vmsn),
//! through the parsers and the LiME stream built on them; and a LiME image walked as a
//! Linux kernel (banner search, task list, open sockets). The first byte picks the format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vestige_acquire::memory::{elf_core, iomem, physmap::PhysMap, stream::LimeStream, vmware};
use vestige_evidence::lime;
use vestige_analyze::memory::{fixture, LimeMemory, LinuxKernel, SocketWalker, Symbols, Types};
use vestige_evidence::read_at::ReadAt;

/// Reads the whole stream in odd-sized steps; at most 1 MiB so a huge claimed range
/// (whose bytes come from the short input, zero-filled) cannot make the run slow.
fn drain(s: &dyn ReadAt) {
    let mut buf = vec![0u8; 4099];
    let mut off = 0u64;
    while off < s.size().min(1 << 20) {
        match s.read_at(&mut buf, off) {
            Ok(0) | Err(_) => break,
            Ok(n) => off += n as u64,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => {
            if let Ok(ranges) = lime::read_ranges(&body) {
                let mut prev_end = 0u64;
                for r in &ranges {
                    assert!(r.length_bytes > 0 && r.start >= prev_end);
                    assert!(r.data_offset + r.length_bytes <= body.len() as u64);
                    prev_end = r.end();
                }
                // Laying the ranges out again gives the same file offsets.
                let spans: Vec<(u64, u64)> =
                    ranges.iter().map(|r| (r.start, r.length_bytes)).collect();
                let laid = lime::layout(&spans).expect("a parsed LiME file lays out");
                assert_eq!(laid, ranges);
            }
        }
        1 => {
            for check in [true, false] {
                if let Ok(segs) = elf_core::load_segments(&body, check) {
                    if check {
                        for s in &segs {
                            assert!(s.file_offset + s.file_bytes <= body.len() as u64);
                        }
                    }
                    if let Ok(map) = PhysMap::from_elf_core(&segs) {
                        if let Ok(stream) = LimeStream::new(&body, map) {
                            drain(&stream);
                        }
                    }
                    let ram = [(0u64, 1u64 << 20), (1 << 32, 1 << 20)];
                    if let Ok((map, missing)) = PhysMap::from_kcore(&segs, &ram) {
                        let covered: u64 = map.pieces().iter().map(|p| p.length_bytes).sum();
                        let gaps: u64 = missing.iter().map(|m| m.1).sum();
                        assert_eq!(covered + gaps, 2 << 20, "kcore map loses or invents RAM");
                    }
                }
            }
        }
        3 => {
            // The kernel of the analysis crate's fixture (its sparse image is the seed),
            // built once, not per input.
            static KERNEL: OnceLock<(serde_json::Value, Symbols)> = OnceLock::new();
            let (isf, symbols) =
                KERNEL.get_or_init(|| (fixture::isf(), Symbols::parse(&fixture::kallsyms())));
            if let Ok(mem) = LimeMemory::open(body) {
                if let Ok(kernel) = LinuxKernel::locate(&mem, symbols, Types::new(isf), fixture::BANNER) {
                    if let Ok(walk) = kernel.tasks(&mem) {
                        assert!(!walk.tasks.is_empty(), "init_task is always listed");
                        for t in &walk.tasks {
                            assert!(!t.comm.chars().any(char::is_control));
                        }
                        let sockets = SocketWalker::new(Types::new(isf), symbols)
                            .expect("the fixture's types are complete")
                            .scan(&kernel, &mem, &walk.tasks);
                        for s in &sockets.sockets {
                            let text = format!("{:?}{:?}", s.local_address, s.comm);
                            assert!(!text.chars().any(char::is_control), "{text}");
                        }
                    }
                }
            }
        }
        4 => {
            if let Ok(state) = vmware::parse(&body) {
                let len = body.len() as u64;
                assert!(state.regions.len() <= vmware::MAX_REGIONS);
                assert!(state.memory_tags <= vmware::MAX_TAGS);
                if let Some(b) = state.memory_block {
                    assert!(b.data_offset + b.stored_bytes <= len, "block past the end");
                }
                let _ = state.describe();
                // The body as its own .vmem, and as the file holding a "Memory" block:
                // every piece inside the memory it was mapped into.
                for memory in [
                    vmware::MemoryFile::Separate { size_bytes: len },
                    vmware::MemoryFile::Embedded,
                ] {
                    if let Ok(map) = state.phys_map(memory) {
                        let (lo, hi) = match (memory, state.memory_block) {
                            (vmware::MemoryFile::Embedded, Some(b)) => {
                                (b.data_offset, b.data_offset + b.stored_bytes)
                            }
                            _ => (0, len),
                        };
                        for p in map.pieces() {
                            assert!(p.file_offset >= lo && p.file_offset + p.length_bytes <= hi);
                        }
                        if let Ok(stream) = LimeStream::new(&body, map) {
                            drain(&stream);
                        }
                    }
                }
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(body) {
                if let Ok(ram) = iomem::system_ram(text) {
                    for w in ram.windows(2) {
                        assert!(w[0].0 + w[0].1 < w[1].0, "ranges not merged and ascending");
                    }
                }
            }
        }
    }
});
