//! Shared bodies of the `fs_*` fuzz targets (not part of the API; hidden from docs).
//!
//! The invariants every reader keeps on hostile input: an error says what (an `Invalid`
//! names its field); an opened file system walks to the end (bounded); every file it finds
//! can be opened and read without a panic; a read returns at most the bytes asked and
//! nothing past the file's size; a reader error carries a message.

use crate::{walk, FileSystem, FsError, ReadAt};

/// Bytes read of each file, at each offset read.
pub const READ_BYTES: usize = 64 * 1024;

/// How [`exercise`] checks the reads of each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// At its start: at most the bytes asked, nothing past its size ([`read_within`]).
    Within,
    /// At its start and near its end: exactly `min(asked, size - offset)` bytes, the same
    /// bytes when read again ([`read_exactly`]).
    Exact,
}

/// An error carries a message; an `Invalid` names its field.
///
/// # Panics
/// When it does not (that is the point).
pub fn check_error(e: &FsError) {
    assert!(!e.to_string().is_empty());
    if let FsError::Invalid { field, .. } = e {
        assert!(!field.is_empty());
    }
}

/// A read of `r` at `at` returns at most `buf.len()` bytes and none past the size, or an
/// error with a message.
///
/// # Panics
/// When it does not.
pub fn read_within(r: &dyn ReadAt, buf: &mut [u8], at: u64) {
    let size = r.size();
    match r.read_at(buf, at) {
        Ok(n) => {
            assert!(n <= buf.len());
            assert!(
                n as u64 <= size.saturating_sub(at),
                "read {n} at {at} of {size}"
            );
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A read of `r` at `at` returns exactly `min(buf.len(), size - at)` bytes, and the same
/// bytes again when repeated; or an error with a message.
///
/// # Panics
/// When it does not.
pub fn read_exactly(r: &dyn ReadAt, buf: &mut [u8], at: u64) {
    let size = r.size();
    let want = usize::try_from(size.saturating_sub(at)).map_or(buf.len(), |n| n.min(buf.len()));
    match r.read_at(buf, at) {
        Ok(n) => {
            assert_eq!(n, want, "read at {at} of {size}");
            let first = buf.get(..n).expect("n <= buf.len()").to_vec();
            let again = r.read_at(buf, at).expect("a read that worked works again");
            assert_eq!(again, n);
            assert_eq!(first, buf.get(..n).expect("n <= buf.len()"));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Walks `fs` (whose `info().kind` starts with `kind`) to the end and opens and reads every
/// file and link it finds, as `reads` says; then writes its bodyfile. Each file's metadata
/// is its entry's inode, with permission bits only.
///
/// # Panics
/// When an invariant does not hold (that is the point).
pub fn exercise(fs: &dyn FileSystem, kind: &str, reads: Reads) {
    let info = fs.info();
    assert!(info.kind.starts_with(kind), "{} is not {kind}", info.kind);
    let mut buf = vec![0u8; READ_BYTES];
    let problems = walk::walk(fs, |f| {
        if let Ok(m) = &f.metadata {
            assert_eq!(m.inode, f.entry.inode);
            assert!(m.mode <= 0o7777);
        }
        match fs.open(f.entry.inode, None) {
            Ok(r) => {
                let size = r.size();
                match reads {
                    Reads::Within => read_within(&*r, &mut buf, 0),
                    Reads::Exact => {
                        read_exactly(&*r, &mut buf, 0);
                        read_exactly(
                            &*r,
                            &mut buf,
                            size.saturating_sub(READ_BYTES as u64 / 2 + 3),
                        );
                    }
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
