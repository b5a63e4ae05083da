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
use vestige_fs::fuzz_support::{check_error, exercise, Reads};
use vestige_fs::ReadAt;

fuzz_target!(|data: &[u8]| {
    let vol: &dyn ReadAt = &data;
    let _ = probe(vol);
    match Ext4::open(vol, "fuzz") {
        Ok(fs) => exercise(&fs, "ext", Reads::Exact),
        Err(e) => check_error(&e),
    }
});
