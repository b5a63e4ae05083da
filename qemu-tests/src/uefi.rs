//! Support for the UEFI boot tests: finding a GPT partition in an image, copying it out,
//! reading an exFAT evidence partition without mounting it, and running host commands.
//!
//! Test support: it trusts the images the tests built and panics with a message when they
//! are not what it expects, which is how a test reports the failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::Command;

use crate::disk::SECTOR_BYTES;
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Byte offset and length of the GPT partition named `name` (UEFI spec §5.3: header at
/// LBA 1, entries from PartitionEntryLBA, name UTF-16LE at byte 56 of an entry).
pub fn gpt_partition(disk: &[u8], name: &str) -> Option<(u64, u64)> {
    let sector = usize::try_from(SECTOR_BYTES).ok()?;
    let header = disk.get(sector..sector * 2)?;
    if header.get(..8)? != b"EFI PART" {
        return None;
    }
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let entries_lba = usize::try_from(le64(header, 72)).ok()?;
    let count = usize::try_from(le32(header, 80)).ok()?;
    let size = usize::try_from(le32(header, 84)).ok()?;
    (0..count).find_map(|i| {
        let at = entries_lba * sector + i * size;
        let e = disk.get(at..at + size)?;
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        (String::from_utf16_lossy(&units) == name).then(|| {
            let (first, last) = (le64(e, 32), le64(e, 40));
            (first * SECTOR_BYTES, (last - first + 1) * SECTOR_BYTES)
        })
    })
}

pub fn tail(console: &str, n: usize) -> String {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Copies `len` bytes at `offset` of `from` into a new file `to` (sparse where zero).
pub fn copy_range(from: &Path, offset: u64, len: u64, to: &Path) {
    use std::os::unix::fs::FileExt;
    let src = std::fs::File::open(from).unwrap();
    let dst = std::fs::File::create(to).unwrap();
    dst.set_len(len).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = usize::try_from((len - done).min(1 << 20)).unwrap();
        src.read_exact_at(&mut buf[..n], offset + done).unwrap();
        if buf[..n].iter().any(|&b| b != 0) {
            dst.write_all_at(&buf[..n], done).unwrap();
        }
        done += n as u64;
    }
}

/// A minimal read-only exFAT reader (Microsoft exFAT specification §3.1 boot sector, §4 FAT,
/// §7.4 file, §7.6 stream extension, §7.7 file name entries): enough to copy the case the
/// appliance wrote out of the image. Test code: it trusts the file system it reads.
pub mod exfat {
    use std::fs::File;
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    struct Volume {
        file: File,
        sector_shift: u32,
        cluster_shift: u32,
        fat_offset: u64,
        heap_offset: u64,
    }

    impl Volume {
        fn cluster_bytes(&self) -> u64 {
            1 << (self.sector_shift + self.cluster_shift)
        }

        fn read(&self, at: u64, len: usize) -> Vec<u8> {
            let mut b = vec![0u8; len];
            self.file.read_exact_at(&mut b, at).unwrap();
            b
        }

        fn next(&self, cluster: u32) -> u32 {
            let b = self.read(self.fat_offset + u64::from(cluster) * 4, 4);
            u32::from_le_bytes(b.try_into().unwrap())
        }

        /// `len` bytes from `first`, contiguous or following the FAT chain.
        fn data(&self, first: u32, len: u64, no_fat_chain: bool) -> Vec<u8> {
            let mut out = Vec::new();
            let mut cluster = first;
            let cb = self.cluster_bytes();
            while (out.len() as u64) < len && (2..0xFFFF_FFF7).contains(&cluster) {
                let at = self.heap_offset + u64::from(cluster - 2) * cb;
                let want = usize::try_from((len - out.len() as u64).min(cb)).unwrap();
                out.extend(self.read(at, want));
                cluster = if no_fat_chain {
                    cluster + 1
                } else {
                    self.next(cluster)
                };
            }
            assert_eq!(out.len() as u64, len, "exFAT: short cluster chain");
            out
        }

        fn extract_dir(&self, dir: &[u8], out: &Path) {
            std::fs::create_dir_all(out).unwrap();
            let entries: Vec<&[u8]> = dir.chunks_exact(32).collect();
            let mut i = 0;
            while i < entries.len() {
                let e = entries[i];
                if e[0] == 0 {
                    break;
                }
                if e[0] != 0x85 {
                    i += 1;
                    continue;
                }
                let secondary = usize::from(e[1]);
                let is_dir = u16::from_le_bytes([e[4], e[5]]) & 0x10 != 0;
                let stream = entries[i + 1];
                assert_eq!(
                    stream[0], 0xC0,
                    "exFAT: file entry without a stream extension"
                );
                let no_fat_chain = stream[1] & 0x02 != 0;
                let name_len = usize::from(stream[3]);
                let first = u32::from_le_bytes(stream[20..24].try_into().unwrap());
                let len = u64::from_le_bytes(stream[24..32].try_into().unwrap());
                let units: Vec<u16> = entries[i + 2..=i + secondary]
                    .iter()
                    .filter(|n| n[0] == 0xC1)
                    .flat_map(|n| n[2..32].chunks_exact(2))
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .take(name_len)
                    .collect();
                let name = String::from_utf16(&units).unwrap();
                assert!(!name.contains('/') && name != ".." && name != ".");
                let data = self.data(first, len, no_fat_chain);
                if is_dir {
                    self.extract_dir(&data, &out.join(&name));
                } else {
                    std::fs::write(out.join(&name), data).unwrap();
                }
                i += 1 + secondary;
            }
        }
    }

    /// Copies every file of the exFAT volume `image` into `out`. Panics when the volume was
    /// not unmounted cleanly (VolumeDirty set) or is not exFAT.
    pub fn extract(image: &Path, out: &Path) {
        let file = File::open(image).unwrap();
        let mut boot = vec![0u8; 512];
        file.read_exact_at(&mut boot, 0).unwrap();
        assert_eq!(&boot[3..11], b"EXFAT   ", "not an exFAT volume");
        let flags = u16::from_le_bytes([boot[106], boot[107]]);
        assert_eq!(flags & 0x02, 0, "exFAT VolumeDirty: not unmounted cleanly");
        let le32 = |at: usize| u32::from_le_bytes(boot[at..at + 4].try_into().unwrap());
        let sector_shift = u32::from(boot[108]);
        let v = Volume {
            sector_shift,
            cluster_shift: u32::from(boot[109]),
            fat_offset: u64::from(le32(80)) << sector_shift,
            heap_offset: u64::from(le32(88)) << sector_shift,
            file,
        };
        // The root directory has no stream extension: read its chain to the end.
        let mut root = Vec::new();
        let mut cluster = le32(96);
        while (2..0xFFFF_FFF7).contains(&cluster) {
            let cb = v.cluster_bytes();
            root.extend(v.read(
                v.heap_offset + u64::from(cluster - 2) * cb,
                usize::try_from(cb).unwrap(),
            ));
            cluster = v.next(cluster);
        }
        v.extract_dir(&root, out);
    }
}

/// Copies the exFAT evidence partition (`len` bytes at `offset` of `usb`) out of a boot
/// stick, checks it with stock `fsck.exfat -n`, and extracts its files into `dir/extracted`,
/// which is returned. Nothing is mounted.
pub fn extract_exfat_evidence(usb: &Path, offset: u64, len: u64, dir: &Path) -> std::path::PathBuf {
    let volume = dir.join("evidence.exfat");
    copy_range(usb, offset, len, &volume);
    let fsck = Command::new("fsck.exfat")
        .arg("-n")
        .arg(&volume)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "fsck.exfat -n on the evidence partition: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let out = dir.join("extracted");
    exfat::extract(&volume, &out);
    out
}

/// Where a boot stick's partitions are: byte offsets of the ESP and of the evidence
/// partition, and the evidence partition's length.
#[derive(Debug, Clone, Copy)]
pub struct StickLayout {
    /// Offset of the EFI system partition.
    pub esp_at: u64,
    /// Offset of the VESTIGE-EVIDENCE partition.
    pub evidence_at: u64,
    /// Length of the VESTIGE-EVIDENCE partition.
    pub evidence_bytes: u64,
}

/// Makes a sparse copy of the stick image `from` at `to` (tests rewrite the copy, never the
/// built image) and finds its partitions in the GPT.
pub fn copy_stick(from: &Path, to: &Path) -> StickLayout {
    use std::io::Read;
    run(Command::new("cp").arg("--sparse=always").arg(from).arg(to));
    let mut head = vec![0u8; 64 * 1024];
    std::fs::File::open(to)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    let (esp_at, _) = gpt_partition(&head, "EFI system partition").expect("no ESP in the GPT");
    let (evidence_at, evidence_bytes) = gpt_partition(&head, crate::disk::EVIDENCE_PARTITION_NAME)
        .expect("no VESTIGE-EVIDENCE partition");
    StickLayout {
        esp_at,
        evidence_at,
        evidence_bytes,
    }
}
