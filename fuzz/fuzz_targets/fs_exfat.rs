//! `vestige_fs::exfat::ExFat` over arbitrary bytes taken as the volume.
//!
//! Invariants: opening never panics and fails with an error that says what; an opened
//! file system walks to the end (bounded: cluster-chain cycles, directory loops, entry-set
//! caps) and every file and directory it finds can be opened and read without a panic;
//! a read returns at most the bytes asked and never past the file's size; every reader
//! error carries a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_fs::exfat::{probe, ExFat};
use vestige_fs::{walk, FileSystem, FsError, ReadAt};

/// Bytes read of each file.
const READ_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let vol: &dyn ReadAt = &data;
    let _ = probe(vol);
    match ExFat::open(vol, "fuzz") {
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

fn check(fs: &ExFat<'_>) {
    let info = fs.info();
    assert_eq!(info.kind, "exfat");
    let mut buf = vec![0u8; READ_BYTES];
    let problems = walk::walk(fs, |f| {
        if let Ok(m) = &f.metadata {
            assert_eq!(m.inode, f.entry.inode);
        }
        match fs.open(f.entry.inode, None) {
            Ok(r) => {
                let size = r.size();
                match r.read_at(&mut buf, 0) {
                    Ok(n) => assert!(n as u64 <= size && n <= buf.len()),
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
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
