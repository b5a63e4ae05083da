//! Early write-back of the image as it is written.
//!
//! Linux keeps written pages dirty until a background threshold (10 % of memory by default,
//! gigabytes on an examiner's workstation) or an fsync. Left alone, the final fsync of an
//! acquisition would write the whole image at once, after the source is done. Starting
//! write-back of each finished stretch overlaps it with the imaging and leaves the final
//! fsync little to do.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Starts asynchronous write-back of `len` bytes at `offset` (sync_file_range with
/// SYNC_FILE_RANGE_WRITE). It does not wait and promises no durability: the fsync at the end
/// of the acquisition does that.
pub fn start(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let offset = libc::off64_t::try_from(offset)
        .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    let len =
        libc::off64_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // SAFETY: sync_file_range takes a descriptor and three integers and touches no memory of
    // ours; the descriptor is open for the lifetime of `file`, which outlives the call.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
