//! `vestige_formats::volumes` over arbitrary bytes as a disk: the layout (MBR with its EBR
//! chain, GPT primary and backup, LVM2 labels and metadata), then every volume opened and
//! read a little.
//!
//! Invariants: `read_layout` never fails on an in-memory disk (table problems are
//! warnings); slots are sorted by start, each `end = start + length - 1`; the unallocated
//! slots and the partitions never overlap one another; a sector size is 512 or 4096; every
//! slot opens as a volume of exactly its length in bytes, and a read of it either gives
//! exactly `min(len, size - offset)` bytes (equal to the disk's bytes there) or fails
//! with a message; every LV either opens (size = its extents × extent size) and reads the
//! same way, or fails with a `FormatError`; the layout serialises to JSON. No panic, hang
//! or allocation beyond the caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use vestige_formats::volumes::{self, SlotKind};
use vestige_formats::ReadAt;

/// Bytes of each read.
const READ_BYTES: usize = 8 * 1024;
/// Volumes and LVs read per input.
const OPENED: usize = 64;

fuzz_target!(|data: &[u8]| {
    // The input itself is the disk (a `&[u8]` reads as one; no copy).
    let disk: &[u8] = data;
    let layout =
        volumes::read_layout(&disk, Path::new("fuzz.img")).expect("an in-memory disk reads");
    assert!(layout.sector_size == 512 || layout.sector_size == 4096);
    assert_eq!(layout.disk_size_bytes, disk.len() as u64);
    let mut covered: Vec<(u64, u64)> = Vec::new();
    for pair in layout.slots.windows(2) {
        assert!(pair[0].start_sector <= pair[1].start_sector, "slots sorted");
    }
    for s in &layout.slots {
        assert!(s.length_sectors > 0);
        assert_eq!(s.end_sector, s.start_sector + s.length_sectors - 1);
        if s.kind == SlotKind::Unallocated {
            covered.push((s.start_sector, s.end_sector));
        }
    }
    // Gaps never overlap partitions or each other.
    for s in layout.slots.iter().filter(|s| s.kind == SlotKind::Partition) {
        for &(a, b) in &covered {
            assert!(s.end_sector < a || s.start_sector > b, "gap over a partition");
        }
    }
    for (i, _) in layout.slots.iter().enumerate().take(OPENED) {
        let Ok(v) = layout.open_volume(&disk, i) else {
            continue;
        };
        let (start, len) = layout.slot_bytes(i).expect("opened, so its range is valid");
        assert_eq!(v.size(), len);
        for off in [0, len / 2, len.saturating_sub(100), len, u64::MAX - 7] {
            check_read(&v, off, Some((disk, start)));
        }
    }
    let mut opened = 0;
    for (g, vg) in layout.volume_groups.iter().enumerate() {
        for (l, lv) in vg.lvs.iter().enumerate() {
            opened += 1;
            if opened > OPENED {
                break;
            }
            match layout.open_lv(&disk, g, l) {
                Ok(r) => {
                    assert_eq!(r.size(), lv.size_bytes);
                    let size = r.size();
                    for off in [0, size / 3, size.saturating_sub(5000), size] {
                        check_read(&r, off, None);
                    }
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
    serde_json::to_string(&layout).expect("the layout serialises");
});

/// A read gives exactly what is left (up to the buffer), matching the disk's bytes for a
/// slice of it, or an error with a message.
fn check_read(r: &dyn ReadAt, off: u64, slice_of: Option<(&[u8], u64)>) {
    let mut buf = vec![0u8; READ_BYTES];
    match r.read_at(&mut buf, off) {
        Ok(n) => {
            let want = r.size().saturating_sub(off).min(READ_BYTES as u64);
            assert_eq!(n as u64, want, "read at {off} of {}", r.size());
            if let Some((disk, start)) = slice_of {
                if n > 0 {
                    let at = usize::try_from(start + off).expect("inside the disk");
                    assert_eq!(&buf[..n], &disk[at..at + n]);
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
