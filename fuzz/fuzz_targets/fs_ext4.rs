//! `vestige_fs::ext4::Ext4` over arbitrary bytes taken as the volume.
//!
//! Invariants: opening never panics and fails with an error that says what (an `Invalid`
//! names its field); an opened file system walks to the end (bounded: extent trees by
//! depth and a visited set, block maps by a visited set, directory loops, entry caps, the
//! orphan scan) and every file, directory and link it finds can be opened and read
//! without a panic; a read returns exactly `min(asked, size - offset)` bytes (0 at the
//! end) or an error with a message; reading the same range twice gives the same bytes.
//!
//! Seeds (`fuzz/seeds/fs_ext4/`, 64 KiB each): a tree `a`, `d/b`, `c` (5000 bytes, then
//! deleted with `debugfs -w -R "rm /c"`), `l -> a`, `ll -> x*80`, copied in with
//! `mkfs.<t> -F -q -b 1024 -N 32 -m 0 … -d TREE` as ext4 (`-O ^has_journal,^resize_inode`),
//! ext4 inline_data (`… ,inline_data -I 256`), ext4 64bit+meta_bg, ext2 (`-I 128`) and ext3
//! (`-J size=1` on 3 MiB, truncated to its first 64 KiB).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_fs::ext4::{probe, Ext4};
use vestige_fs::{walk, FileSystem, FsError, ReadAt};

/// Bytes read of each file, at its start and at its end.
const READ_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let vol: &dyn ReadAt = &data;
    let _ = probe(vol);
    match Ext4::open(vol, "fuzz") {
        Ok(fs) => check(&fs),
        Err(e) => check_error(&e),
    }
});

fn check_error(e: &FsError) {
    assert!(!e.to_string().is_empty());
    if let FsError::Invalid { field, .. } = e {
        assert!(!field.is_empty());
    }
}

fn read_exactly(r: &dyn ReadAt, buf: &mut [u8], at: u64) {
    let size = r.size();
    let want = usize::try_from(size.saturating_sub(at)).map_or(buf.len(), |n| n.min(buf.len()));
    match r.read_at(buf, at) {
        Ok(n) => {
            assert_eq!(n, want, "read at {at} of {size}");
            let first = buf[..n].to_vec();
            let again = r.read_at(buf, at).expect("a read that worked works again");
            assert_eq!(again, n);
            assert_eq!(first, buf[..n]);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fn check(fs: &Ext4<'_>) {
    let info = fs.info();
    assert!(info.kind.starts_with("ext"));
    let mut buf = vec![0u8; READ_BYTES];
    let problems = walk::walk(fs, |f| {
        if let Ok(m) = &f.metadata {
            assert_eq!(m.inode, f.entry.inode);
            assert!(m.mode <= 0o7777);
        }
        match fs.open(f.entry.inode, None) {
            Ok(r) => {
                let size = r.size();
                read_exactly(&*r, &mut buf, 0);
                read_exactly(
                    &*r,
                    &mut buf,
                    size.saturating_sub(READ_BYTES as u64 / 2 + 3),
                );
                assert!(matches!(r.read_at(&mut buf, size), Ok(0)));
            }
            Err(e) => check_error(&e),
        }
        if let Err(e) = fs.read_link(f.entry.inode) {
            check_error(&e);
        }
    });
    for p in problems {
        assert!(!p.what.is_empty());
    }
    let _ = walk::bodyfile(fs, "/");
}
