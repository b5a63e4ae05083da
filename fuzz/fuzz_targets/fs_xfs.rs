//! `vestige_fs::xfs::Xfs` over arbitrary bytes taken as the volume.
//!
//! Invariants: opening never panics and fails with an error that says what (an `Invalid`
//! names its field); an opened file system walks to the end (bounded: bmbt by level and a
//! visited set, directories by an entry cap, the walk's own loop checks) and every file,
//! directory and link it finds can be opened and read without a panic; a read returns
//! exactly `min(asked, size - offset)` bytes (0 at the end) or an error with a message;
//! reading the same range twice gives the same bytes.
//!
//! Seeds (`fuzz/seeds/fs_xfs/`, the first 64 KiB of 300 MiB images made by
//! `mkfs.xfs -p PROTOFILE`): `v5_bigtime_1k.img` (`-b size=1024 -m bigtime=1`: a block
//! root directory of 25 names, a file `a`, symlinks `l -> a` (inline) and `ll -> x*600`
//! (remote), a directory `d` in AG 1, cut off); `v4_512.img` (`-m crc=0 -b size=512
//! -i size=256`: shortform root, `a`, `l -> a`, `d/b` in AG 1, cut off).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_fs::fuzz_support::{check_error, exercise, Reads};
use vestige_fs::xfs::{probe, Xfs};
use vestige_fs::ReadAt;

fuzz_target!(|data: &[u8]| {
    let vol: &dyn ReadAt = &data;
    let _ = probe(vol);
    match Xfs::open(vol, "fuzz") {
        Ok(fs) => exercise(&fs, "xfs", Reads::Exact),
        Err(e) => check_error(&e),
    }
});
