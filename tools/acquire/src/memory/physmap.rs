//! Where each physical address of the memory being acquired is stored in the source file:
//! /proc/kcore (at an ELF segment's offset), /dev/mem (at the address itself), a hypervisor's
//! ELF dump (at its segment's offset) or a raw dump (at the address).

use super::elf_core::{LoadSegment, NO_PHYSICAL_ADDRESS};

/// A run of physical memory stored contiguously in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// First physical address.
    pub phys: u64,
    /// Bytes.
    pub length_bytes: u64,
    /// Offset of `phys` in the source file.
    pub file_offset: u64,
}

impl Piece {
    fn end(&self) -> u64 {
        self.phys.saturating_add(self.length_bytes)
    }
}

/// Physical memory → source file offsets: pieces ascending and disjoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhysMap {
    pieces: Vec<Piece>,
}

/// Pieces that cannot form a map.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapError {
    /// Two pieces claim the same physical address.
    #[error("physical memory at {at:#x} is stored twice (segments overlap)")]
    Overlap {
        /// The first address claimed twice.
        at: u64,
    },
    /// A piece ends past the top of the address space, or its file offset overflows.
    #[error("memory segment at {phys:#x} ({length_bytes} bytes) overflows the address space")]
    Overflow {
        /// Its physical start.
        phys: u64,
        /// Its length.
        length_bytes: u64,
    },
    /// Nothing to acquire.
    #[error("no physical memory to acquire")]
    Empty,
}

impl PhysMap {
    /// A map from pieces in any order; empty pieces are dropped.
    pub fn new(mut pieces: Vec<Piece>) -> Result<Self, MapError> {
        pieces.retain(|p| p.length_bytes > 0);
        for p in &pieces {
            if p.phys.checked_add(p.length_bytes).is_none()
                || p.file_offset.checked_add(p.length_bytes).is_none()
            {
                return Err(MapError::Overflow {
                    phys: p.phys,
                    length_bytes: p.length_bytes,
                });
            }
        }
        pieces.sort_by_key(|p| p.phys);
        for w in pieces.windows(2) {
            if let [a, b] = w {
                if b.phys < a.end() {
                    return Err(MapError::Overlap { at: b.phys });
                }
            }
        }
        if pieces.is_empty() {
            return Err(MapError::Empty);
        }
        Ok(PhysMap { pieces })
    }

    /// /dev/mem, /dev/crash or a raw dump: each address is stored at its own offset.
    pub fn identity(ranges: &[(u64, u64)]) -> Result<Self, MapError> {
        Self::new(
            ranges
                .iter()
                .map(|&(phys, length_bytes)| Piece {
                    phys,
                    length_bytes,
                    file_offset: phys,
                })
                .collect(),
        )
    }

    /// A hypervisor's ELF dump: every PT_LOAD segment with a physical address.
    pub fn from_elf_core(segments: &[LoadSegment]) -> Result<Self, MapError> {
        Self::new(
            segments
                .iter()
                .filter(|s| s.physical_address != NO_PHYSICAL_ADDRESS)
                .map(|s| Piece {
                    phys: s.physical_address,
                    length_bytes: s.file_bytes,
                    file_offset: s.file_offset,
                })
                .collect(),
        )
    }

    /// /proc/kcore: System RAM (`ram`, from /proc/iomem) intersected with the segments that
    /// carry a physical address (the direct map and the kernel text, which overlap: the
    /// first segment found covers an address). Returns the map and the RAM no segment
    /// covers, which is never acquired and must be reported.
    pub fn from_kcore(
        segments: &[LoadSegment],
        ram: &[(u64, u64)],
    ) -> Result<(Self, Vec<(u64, u64)>), MapError> {
        let mut candidates: Vec<Piece> = segments
            .iter()
            .filter(|s| s.physical_address != NO_PHYSICAL_ADDRESS && s.file_bytes > 0)
            .filter_map(|s| {
                s.physical_address.checked_add(s.file_bytes)?;
                s.file_offset.checked_add(s.file_bytes)?;
                Some(Piece {
                    phys: s.physical_address,
                    length_bytes: s.file_bytes,
                    file_offset: s.file_offset,
                })
            })
            .collect();
        candidates.sort_by_key(|p| (p.phys, std::cmp::Reverse(p.length_bytes)));
        let mut pieces = Vec::new();
        let mut missing = Vec::new();
        for &(start, length) in ram {
            let end = start.saturating_add(length);
            let mut pos = start;
            // Each step advances pos to a segment's end or start, so the loop is bounded
            // by twice the number of segments.
            while pos < end {
                let covering = candidates
                    .iter()
                    .filter(|c| c.phys <= pos && pos < c.end())
                    .max_by_key(|c| c.end());
                match covering {
                    Some(c) => {
                        let take = c.end().min(end) - pos;
                        pieces.push(Piece {
                            phys: pos,
                            length_bytes: take,
                            file_offset: c.file_offset + (pos - c.phys),
                        });
                        pos += take;
                    }
                    None => {
                        let next = candidates
                            .iter()
                            .map(|c| c.phys)
                            .filter(|&p| p > pos)
                            .min()
                            .unwrap_or(end)
                            .min(end);
                        missing.push((pos, next - pos));
                        pos = next;
                    }
                }
            }
        }
        Ok((Self::new(pieces)?, missing))
    }

    /// The pieces, ascending.
    #[must_use]
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The physically contiguous spans (start, length): the LiME ranges.
    #[must_use]
    pub fn spans(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for p in &self.pieces {
            match out.last_mut() {
                Some((s, l)) if *s + *l == p.phys => *l += p.length_bytes,
                _ => out.push((p.phys, p.length_bytes)),
            }
        }
        out
    }

    /// The piece holding physical address `phys`.
    #[must_use]
    pub fn piece_at(&self, phys: u64) -> Option<&Piece> {
        let i = self.pieces.partition_point(|p| p.end() <= phys);
        self.pieces.get(i).filter(|p| p.phys <= phys)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn seg(paddr: u64, len: u64, off: u64) -> LoadSegment {
        LoadSegment {
            file_offset: off,
            virtual_address: 0xffff_8880_0000_0000u64.wrapping_add(paddr),
            physical_address: paddr,
            file_bytes: len,
        }
    }

    #[test]
    fn kcore_direct_map_and_text_overlap_once() {
        let segments = [
            // Kernel text: inside RAM, a different file offset.
            seg(0x100_0000, 0x200_0000, 0x7fff_0000_0000),
            // vmalloc: no physical address.
            LoadSegment {
                physical_address: NO_PHYSICAL_ADDRESS,
                ..seg(0, 0x1000, 0x1000)
            },
            // The direct map of low RAM and of the big range.
            seg(0x1000, 0x9e000, 0x8000_0000_1000),
            seg(0x10_0000, 0x3ff0_0000, 0x8000_0010_0000),
        ];
        let ram = [(0x1000, 0x9f000), (0x10_0000, 0x3ff0_0000)];
        let (map, missing) = PhysMap::from_kcore(&segments, &ram).unwrap();
        // The last page of low RAM has no segment: reported, not invented.
        assert_eq!(missing, vec![(0x9f000, 0x1000)]);
        assert_eq!(
            map.spans(),
            vec![(0x1000, 0x9e000), (0x10_0000, 0x3ff0_0000)]
        );
        let p = map.piece_at(0x180_0000).unwrap();
        assert_eq!(p.file_offset + (0x180_0000 - p.phys), 0x8000_0180_0000);
        assert!(map.piece_at(0x9f000).is_none());
        assert!(map.piece_at(0x5000_0000).is_none());
    }

    #[test]
    fn overlapping_dump_segments_are_refused() {
        assert_eq!(
            PhysMap::from_elf_core(&[seg(0, 0x2000, 0), seg(0x1000, 0x1000, 0x2000)]),
            Err(MapError::Overlap { at: 0x1000 })
        );
        assert_eq!(PhysMap::from_elf_core(&[]), Err(MapError::Empty));
        assert!(matches!(
            PhysMap::identity(&[(u64::MAX - 1, 5)]),
            Err(MapError::Overflow { .. })
        ));
    }
}
