//! The program headers of an ELF64 core file: /proc/kcore, or a hypervisor's memory dump
//! (QEMU `dump-guest-memory`, `virsh dump --memory-only`).
//!
//! Only what memory acquisition needs is read: the PT_LOAD segments, each a run of memory
//! at a virtual and a physical address stored at a file offset. The file is untrusted (a
//! dump handed over by someone else): the header table must lie inside the file, the count
//! is bounded by it, and a segment whose data runs past the end of the file is refused.

use std::io;
use vestige_evidence::read_at::ReadAt;

/// `p_type` of a loadable segment.
const PT_LOAD: u32 = 1;
/// `e_type` of a core file.
const ET_CORE: u16 = 4;
/// `e_phnum` saying the real count is in section header 0's `sh_info`.
const PN_XNUM: u16 = 0xffff;
/// `p_paddr` of kcore segments with no physical address (vmalloc, modules).
pub const NO_PHYSICAL_ADDRESS: u64 = u64::MAX;

/// One PT_LOAD segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// Where its bytes are in the file.
    pub file_offset: u64,
    /// Its virtual address (kcore: the kernel's mapping).
    pub virtual_address: u64,
    /// Its physical address, or [`NO_PHYSICAL_ADDRESS`].
    pub physical_address: u64,
    /// Bytes stored in the file.
    pub file_bytes: u64,
}

/// An ELF file that is not a usable core.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Reading failed.
    #[error("{what} at byte {offset}: cannot read")]
    Read {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A header field has a value this reader refuses.
    #[error("ELF {field} at byte {offset} is {found}, expected {expected}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Its offset in the file.
        offset: u64,
        /// The value found.
        found: String,
        /// What is accepted.
        expected: &'static str,
    },
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Whether the first bytes are an ELF64 little-endian core header.
#[must_use]
pub fn is_elf64_core(head: &[u8]) -> bool {
    head.get(..4) == Some(b"\x7fELF")
        && head.get(4) == Some(&2)
        && head.get(5) == Some(&1)
        && le_u16(head, 16) == ET_CORE
}

/// The PT_LOAD segments of an ELF64 little-endian core file, in file order.
///
/// `check_extent`: refuse a segment whose data runs past the end of the file (a dump);
/// /proc/kcore reports a size that is not the extent of its data, so it passes false.
pub fn load_segments(file: &dyn ReadAt, check_extent: bool) -> Result<Vec<LoadSegment>, ElfError> {
    let mut h = [0u8; 64];
    file.read_exact_at(&mut h, 0)
        .map_err(|source| ElfError::Read {
            what: "ELF header",
            offset: 0,
            source,
        })?;
    let field = |field, offset, found: String, expected| ElfError::Field {
        field,
        offset,
        found,
        expected,
    };
    if h.get(..4) != Some(b"\x7fELF") {
        return Err(field(
            "magic",
            0,
            format!("{:02x?}", h.get(..4).unwrap_or_default()),
            "7f 45 4c 46",
        ));
    }
    if h.get(4) != Some(&2) || h.get(5) != Some(&1) {
        return Err(field(
            "class/data",
            4,
            format!("{:?}/{:?}", h.get(4), h.get(5)),
            "ELFCLASS64 / ELFDATA2LSB",
        ));
    }
    let e_type = le_u16(&h, 16);
    if e_type != ET_CORE {
        return Err(field("e_type", 16, e_type.to_string(), "4 (ET_CORE)"));
    }
    let phoff = le_u64(&h, 32);
    let shoff = le_u64(&h, 40);
    let phentsize = le_u16(&h, 54);
    if phentsize != 56 {
        return Err(field("e_phentsize", 54, phentsize.to_string(), "56"));
    }
    let mut phnum = u64::from(le_u16(&h, 56));
    if phnum == u64::from(PN_XNUM) {
        // The real count is sh_info of section header 0.
        let mut sh = [0u8; 64];
        file.read_exact_at(&mut sh, shoff)
            .map_err(|source| ElfError::Read {
                what: "section header 0 (e_phnum is PN_XNUM)",
                offset: shoff,
                source,
            })?;
        phnum = u64::from(le_u32(&sh, 44));
    }
    let table_bytes = phnum * 56;
    let size = file.size();
    if phoff.checked_add(table_bytes).is_none_or(|end| end > size) {
        return Err(field(
            "e_phoff/e_phnum",
            32,
            format!("{phnum} headers at {phoff}"),
            "a program header table inside the file",
        ));
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 56];
    for i in 0..phnum {
        let at = phoff + i * 56;
        file.read_exact_at(&mut buf, at)
            .map_err(|source| ElfError::Read {
                what: "program header",
                offset: at,
                source,
            })?;
        if le_u32(&buf, 0) != PT_LOAD {
            continue;
        }
        let seg = LoadSegment {
            file_offset: le_u64(&buf, 8),
            virtual_address: le_u64(&buf, 16),
            physical_address: le_u64(&buf, 24),
            file_bytes: le_u64(&buf, 32),
        };
        if check_extent
            && seg
                .file_offset
                .checked_add(seg.file_bytes)
                .is_none_or(|end| end > size)
        {
            return Err(field(
                "p_offset/p_filesz",
                at + 8,
                format!("{} bytes at {}", seg.file_bytes, seg.file_offset),
                "segment data inside the file",
            ));
        }
        out.push(seg);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;

    /// An ELF64 core with the given (paddr, data) PT_LOAD segments (and one PT_NOTE).
    pub(crate) fn core(segments: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let phnum = segments.len() + 1;
        let mut f = vec![0u8; 64 + 56 * phnum];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&4u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&u16::try_from(phnum).unwrap().to_le_bytes());
        // PT_NOTE first, as QEMU writes it.
        f[64..68].copy_from_slice(&4u32.to_le_bytes());
        for (i, (paddr, data)) in segments.iter().enumerate() {
            let at = 64 + 56 * (i + 1);
            let off = f.len() as u64;
            f[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
            f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            f[at + 16..at + 24].copy_from_slice(&(0xffff_8880_0000_0000 + paddr).to_le_bytes());
            f[at + 24..at + 32].copy_from_slice(&paddr.to_le_bytes());
            f[at + 32..at + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            f[at + 40..at + 48].copy_from_slice(&(data.len() as u64).to_le_bytes());
            f.extend_from_slice(data);
        }
        f
    }

    #[test]
    fn reads_load_segments() {
        let f = core(&[(0, vec![1; 4096]), (0x100000, vec![2; 8192])]);
        let segs = load_segments(&f.as_slice(), true).unwrap();
        assert!(is_elf64_core(&f));
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1].physical_address, 0x100000);
        assert_eq!(segs[1].file_bytes, 8192);
        assert_eq!(segs[1].file_offset, 64 + 56 * 3 + 4096);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let f = core(&[(0, vec![1; 4096])]);
        // Truncated data.
        assert!(matches!(
            load_segments(&&f[..f.len() - 1], true),
            Err(ElfError::Field {
                field: "p_offset/p_filesz",
                ..
            })
        ));
        assert!(load_segments(&&f[..f.len() - 1], false).is_ok());
        // A huge header count.
        let mut g = f.clone();
        g[56..58].copy_from_slice(&0xfffeu16.to_le_bytes());
        assert!(matches!(
            load_segments(&g.as_slice(), true),
            Err(ElfError::Field {
                field: "e_phoff/e_phnum",
                ..
            })
        ));
        // Not a core.
        let mut g = f.clone();
        g[16] = 2;
        assert!(load_segments(&g.as_slice(), true).is_err());
        assert!(!is_elf64_core(&g));
        for cut in [0, 3, 63, 100] {
            assert!(load_segments(&&f[..cut], true).is_err());
        }
    }
}
