//! A small exFAT writer for tests: populates a volume made by `mkfs.exfat` (exfatprogs)
//! with files, directories, fragmented and contiguous data and deleted entry sets, the way
//! the specification lays them out (there is no mtools for exFAT, and tests do not mount).
//! Its output is checked by `fsck.exfat -n` before TSK and our reader look at it.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use super::entries::{set_checksum, Entry};

/// A directory: its clusters in order.
#[derive(Debug, Clone)]
pub(crate) struct Dir {
    pub clusters: Vec<u32>,
}

/// A written file or directory: where its entry set is and what it holds.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    /// Byte offsets of the set's slots.
    pub slots: Vec<usize>,
    pub clusters: Vec<u32>,
    pub chained: bool,
}

/// Times written into every entry set: 2024-05-17 13:45:22 local, 1.23 s past for
/// creation, with `offset` as every UTC offset byte.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    pub offset: u8,
}

#[derive(Debug)]
pub(crate) struct Writer {
    pub img: Vec<u8>,
    cluster_bytes: usize,
    fat_at: usize,
    heap_at: usize,
    cluster_count: u32,
    bitmap_at: usize,
    pub root: Dir,
}

impl Writer {
    pub fn new(img: Vec<u8>) -> Self {
        let le32 = |at: usize| u32::from_le_bytes(img[at..at + 4].try_into().unwrap());
        let bps = 1usize << img[108];
        let cluster_bytes = bps << img[109];
        let fat_at = le32(80) as usize * bps;
        let heap_at = le32(88) as usize * bps;
        let cluster_count = le32(92);
        let root_cluster = le32(96);
        let mut w = Self {
            img,
            cluster_bytes,
            fat_at,
            heap_at,
            cluster_count,
            bitmap_at: 0,
            root: Dir {
                clusters: vec![root_cluster],
            },
        };
        // The root's chain, then its bitmap entry.
        let mut c = root_cluster;
        loop {
            let n = w.fat(c);
            if !(2..=cluster_count + 1).contains(&n) {
                break;
            }
            w.root.clusters.push(n);
            c = n;
        }
        let root_at = w.cluster_at(root_cluster);
        for slot in 0..cluster_bytes / 32 {
            let e = root_at + slot * 32;
            if w.img[e] == 0x81 {
                let first = u32::from_le_bytes(w.img[e + 20..e + 24].try_into().unwrap());
                w.bitmap_at = w.cluster_at(first);
            }
        }
        assert!(w.bitmap_at != 0, "no bitmap in the root directory");
        w
    }

    fn cluster_at(&self, c: u32) -> usize {
        self.heap_at + (c as usize - 2) * self.cluster_bytes
    }
    fn fat(&self, c: u32) -> u32 {
        let at = self.fat_at + c as usize * 4;
        u32::from_le_bytes(self.img[at..at + 4].try_into().unwrap())
    }
    fn set_fat(&mut self, c: u32, v: u32) {
        let at = self.fat_at + c as usize * 4;
        self.img[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn used(&self, c: u32) -> bool {
        let i = (c - 2) as usize;
        self.img[self.bitmap_at + i / 8] & (1 << (i % 8)) != 0
    }
    fn set_used(&mut self, c: u32, on: bool) {
        let i = (c - 2) as usize;
        let b = &mut self.img[self.bitmap_at + i / 8];
        if on {
            *b |= 1 << (i % 8);
        } else {
            *b &= !(1 << (i % 8));
        }
    }

    /// `n` free clusters: contiguous, or every other free one (fragmented).
    pub fn alloc(&mut self, n: usize, fragmented: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let mut c = 2;
        while out.len() < n {
            assert!(c <= self.cluster_count + 1, "volume full");
            if self.used(c) {
                if !fragmented {
                    out.clear();
                }
            } else {
                out.push(c);
                if fragmented {
                    c += 1; // skip one
                }
            }
            c += 1;
        }
        for &c in &out {
            self.set_used(c, true);
        }
        out
    }

    fn chain(&mut self, clusters: &[u32]) {
        for (i, &c) in clusters.iter().enumerate() {
            let next = clusters.get(i + 1).copied().unwrap_or(0xffff_ffff);
            self.set_fat(c, next);
        }
    }

    fn write(&mut self, clusters: &[u32], data: &[u8]) {
        for (i, &c) in clusters.iter().enumerate() {
            let at = self.cluster_at(c);
            let start = i * self.cluster_bytes;
            let end = (start + self.cluster_bytes).min(data.len());
            let dst = &mut self.img[at..at + self.cluster_bytes];
            dst.fill(0);
            if start < end {
                dst[..end - start].copy_from_slice(&data[start..end]);
            }
        }
    }

    /// `n` free slots in a row at the end of `dir`'s entries.
    fn slots(&self, dir: &Dir, n: usize) -> Vec<usize> {
        let per = self.cluster_bytes / 32;
        let all: Vec<usize> = dir
            .clusters
            .iter()
            .flat_map(|&c| {
                let at = self.cluster_at(c);
                (0..per).map(move |i| at + i * 32)
            })
            .collect();
        let first_free = all
            .iter()
            .position(|&o| self.img[o] == 0)
            .expect("directory full");
        assert!(first_free + n <= all.len(), "directory full");
        all[first_free..first_free + n].to_vec()
    }

    /// Writes an entry set for `name` in `dir`.
    #[allow(clippy::too_many_arguments)]
    fn entry_set(
        &mut self,
        dir: &Dir,
        name: &str,
        attributes: u16,
        first: u32,
        size: u64,
        no_fat_chain: bool,
        stamp: Stamp,
    ) -> Vec<usize> {
        let units: Vec<u16> = name.encode_utf16().collect();
        let names = units.len().div_ceil(15);
        let mut set = Vec::new();
        let mut f = [0u8; 32];
        f[0] = 0x85;
        f[1] = (1 + names) as u8;
        f[4..6].copy_from_slice(&attributes.to_le_bytes());
        let date: u32 = ((2024 - 1980) << 9) | (5 << 5) | 17;
        let time: u32 = (13 << 11) | (45 << 5) | 11;
        let ts = (date << 16) | time;
        for at in [8, 12, 16] {
            f[at..at + 4].copy_from_slice(&ts.to_le_bytes());
        }
        f[20] = 123;
        f[21] = 45;
        f[22] = stamp.offset;
        f[23] = stamp.offset;
        f[24] = stamp.offset;
        set.push(Entry(f));
        let mut s = [0u8; 32];
        s[0] = 0xc0;
        s[1] = 0x01 | if no_fat_chain { 0x02 } else { 0 };
        s[3] = units.len() as u8;
        let hash = units.iter().fold(0u16, |h, &u| {
            let up = char::from_u32(u32::from(u))
                .map(|c| {
                    let mut up = c.to_uppercase();
                    match (up.next(), up.next()) {
                        (Some(x), None) if (x as u32) < 0x10000 => x as u16,
                        _ => u,
                    }
                })
                .unwrap_or(u);
            up.to_le_bytes()
                .iter()
                .fold(h, |h, &b| h.rotate_right(1).wrapping_add(u16::from(b)))
        });
        s[4..6].copy_from_slice(&hash.to_le_bytes());
        s[8..16].copy_from_slice(&size.to_le_bytes());
        s[20..24].copy_from_slice(&first.to_le_bytes());
        s[24..32].copy_from_slice(&size.to_le_bytes());
        set.push(Entry(s));
        for chunk in units.chunks(15) {
            let mut n = [0u8; 32];
            n[0] = 0xc1;
            for (i, u) in chunk.iter().enumerate() {
                n[2 + 2 * i..4 + 2 * i].copy_from_slice(&u.to_le_bytes());
            }
            set.push(Entry(n));
        }
        let sum = set_checksum(&set);
        set[0].0[2..4].copy_from_slice(&sum.to_le_bytes());
        let slots = self.slots(dir, set.len());
        for (e, &at) in set.iter().zip(&slots) {
            self.img[at..at + 32].copy_from_slice(&e.0);
        }
        slots
    }

    /// A file with `data`: contiguous (NoFatChain) or fragmented (a FAT chain).
    pub fn file(
        &mut self,
        dir: &Dir,
        name: &str,
        data: &[u8],
        fragmented: bool,
        stamp: Stamp,
    ) -> Written {
        let n = data.len().div_ceil(self.cluster_bytes);
        let clusters = self.alloc(n, fragmented);
        self.write(&clusters, data);
        if fragmented {
            self.chain(&clusters);
        }
        let first = clusters.first().copied().unwrap_or(0);
        let no_fat_chain = !fragmented && !data.is_empty();
        let slots = self.entry_set(
            dir,
            name,
            0x20,
            first,
            data.len() as u64,
            no_fat_chain,
            stamp,
        );
        Written {
            slots,
            clusters,
            chained: fragmented,
        }
    }

    /// A directory of `n` clusters (a FAT chain when more than one).
    pub fn dir(&mut self, parent: &Dir, name: &str, n: usize, stamp: Stamp) -> (Dir, Written) {
        let clusters = self.alloc(n, false);
        self.write(&clusters, &[]);
        let chained = n > 1;
        if chained {
            self.chain(&clusters);
        }
        let size = (n * self.cluster_bytes) as u64;
        let slots = self.entry_set(parent, name, 0x10, clusters[0], size, !chained, stamp);
        (
            Dir {
                clusters: clusters.clone(),
            },
            Written {
                slots,
                clusters,
                chained,
            },
        )
    }

    /// Deletes: InUse bits cleared, clusters freed in the bitmap (and the FAT).
    pub fn delete(&mut self, w: &Written) {
        for &at in &w.slots {
            self.img[at] &= 0x7f;
        }
        for &c in &w.clusters {
            self.set_used(c, false);
            if w.chained {
                self.set_fat(c, 0);
            }
        }
    }

    /// Sets attribute bits on a written entry set (and fixes its checksum).
    pub fn set_attributes(&mut self, w: &Written, attributes: u16) {
        let at = w.slots[0];
        self.img[at + 4..at + 6].copy_from_slice(&attributes.to_le_bytes());
        let set: Vec<Entry> = w
            .slots
            .iter()
            .map(|&o| Entry(self.img[o..o + 32].try_into().unwrap()))
            .collect();
        let sum = set_checksum(&set);
        self.img[at + 2..at + 4].copy_from_slice(&sum.to_le_bytes());
    }
}
