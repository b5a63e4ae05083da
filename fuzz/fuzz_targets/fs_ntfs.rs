//! `vestige_fs::ntfs::Ntfs` over arbitrary bytes (the input is the volume).
//!
//! Invariants: opening never panics and fails only with an error that names what; an
//! opened file system walks from the root (bounded: the walk's caps, the MFT scan capped by
//! the volume's size) without panicking; every file's metadata, default data and named
//! streams can be asked for and read in part, giving errors or bytes, never a panic or
//! hang; a read returns at most what was asked and nothing past the value's size; the
//! change journal (`$UsnJrnl:$J`) scans to the end or fails with an error.
//!
//! Seeds (`fuzz/seeds/fs_ntfs/`): `seed-c512.ntfs` and `seed-c4096.ntfs` are mkntfs images
//! (8 MiB, `-c 512`/`-c 4096 -s 512 -L SEED`, `small.txt` and `unicodé.txt` copied in with
//! ntfscp) compacted to the boot sector and MFT entries 0–15, 64 and 65 (placed in slots
//! 16–17, entry 0's `$DATA` rewritten to one run at cluster 1); the volume claims 64 KiB
//! but ends after the MFT. `boot-only.ntfs` is the boot sector alone. `seed-usn.ntfs` is
//! `seed-c512.ntfs` with slot 17 replaced by an ntfs-3g-made `$Extend/$UsnJrnl` whose `$J`
//! is resident (344 bytes: four V2/V3 records), so the change-journal scan is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_fs::fuzz_support::{check_error, read_within};
use vestige_fs::ntfs::Ntfs;
use vestige_fs::{walk, FileSystem};

/// Bytes read of each file and stream.
const READ_BYTES: usize = 8 * 1024;
/// Files read per input (keeps each run short).
const FILES_READ: usize = 64;

fuzz_target!(|data: &[u8]| {
    let vol = data;
    match Ntfs::open(&vol, "fuzz") {
        Ok(fs) => check(&fs),
        Err(e) => check_error(&e),
    }
});

fn check(fs: &Ntfs<'_>) {
    let info = fs.info();
    assert_eq!(info.kind, "ntfs");
    // The change journal, if any: records lie inside the stored data, every record's name
    // is within its length, and parents resolve (or not) without panicking.
    match fs.usn_journal(|r| {
        assert!(r.offset % 8 == 0);
        assert_eq!(r.name_utf16.is_empty(), r.name.is_empty());
        let _ = fs.path_of(r.parent_ref.0, r.parent_ref.1);
    }) {
        Ok(scan) => {
            assert!(scan.stored_bytes <= scan.stream_size);
            assert!(scan.skipped_bytes <= scan.stored_bytes);
        }
        Err(e) => check_error(&e),
    }
    let mut read = 0usize;
    let mut buf = vec![0u8; READ_BYTES];
    let _ = walk::walk(fs, |f| {
        let _ = walk::bodyfile_lines("/", f);
        let Ok(m) = &f.metadata else { return };
        if read >= FILES_READ {
            return;
        }
        read += 1;
        let mut streams: Vec<Option<String>> = vec![None];
        streams.extend(m.streams.iter().map(|s| Some(s.name.clone())));
        for s in streams {
            match fs.open(m.inode, s.as_deref()) {
                Ok(r) => {
                    let size = r.size();
                    for off in [0, size / 2, size.saturating_sub(100), size, u64::MAX - 10] {
                        read_within(&*r, &mut buf, off);
                    }
                }
                Err(e) => check_error(&e),
            }
        }
        if let Err(e) = fs.read_link(m.inode) {
            check_error(&e);
        }
    });
}
