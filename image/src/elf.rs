//! Checking that a binary is statically linked: an x86-64 ELF executable whose program
//! headers have no `PT_INTERP` (no dynamic loader to find in the initramfs). A static-pie
//! executable (what `-C target-feature=+crt-static` gives on x86_64-unknown-linux-gnu) has a
//! `PT_DYNAMIC` for its own relocations, which needs no loader and is fine.

use std::path::{Path, PathBuf};

const PT_INTERP: u32 = 3;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EM_X86_64: u16 = 62;

/// Why a file is not a static x86-64 executable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A header field with an unexpected value.
    #[error("{path}: ELF header at byte {offset}: {field} expected {expected}, found {found}")]
    Header {
        /// The file.
        path: PathBuf,
        /// Byte offset of the field.
        offset: u64,
        /// The field (`e_ident.EI_CLASS`, …).
        field: &'static str,
        /// What a static x86-64 executable has.
        expected: &'static str,
        /// What the file has.
        found: String,
    },
    /// The program header table lies outside the file.
    #[error("{path}: program header {index} at byte {offset} lies beyond the file's {len} bytes")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Program header index.
        index: u16,
        /// Its byte offset.
        offset: u64,
        /// File length.
        len: u64,
    },
    /// The executable asks for a dynamic loader.
    #[error("{path}: dynamically linked (program header {index} at byte {offset} is PT_INTERP {interpreter:?})")]
    Dynamic {
        /// The file.
        path: PathBuf,
        /// Program header index.
        index: u16,
        /// Its byte offset.
        offset: u64,
        /// The loader it names.
        interpreter: String,
    },
}

fn bytes<const N: usize>(data: &[u8], offset: u64) -> Option<[u8; N]> {
    let start = usize::try_from(offset).ok()?;
    data.get(start..start.checked_add(N)?)?.try_into().ok()
}

/// Checks that `path` is a statically linked x86-64 little-endian ELF executable.
pub fn check_static(path: &Path) -> Result<(), Error> {
    let data = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let header = |offset: u64, field, expected, found: String| Error::Header {
        path: path.to_owned(),
        offset,
        field,
        expected,
        found,
    };
    let magic = bytes::<4>(&data, 0);
    if magic != Some(*b"\x7fELF") {
        return Err(header(
            0,
            "e_ident magic",
            "7f 45 4c 46",
            format!("{magic:02x?}"),
        ));
    }
    let class = bytes::<1>(&data, 4).map(|[b]| b);
    if class != Some(ELFCLASS64) {
        return Err(header(
            4,
            "e_ident.EI_CLASS",
            "2 (64-bit)",
            format!("{class:?}"),
        ));
    }
    let endian = bytes::<1>(&data, 5).map(|[b]| b);
    if endian != Some(ELFDATA2LSB) {
        return Err(header(
            5,
            "e_ident.EI_DATA",
            "1 (little-endian)",
            format!("{endian:?}"),
        ));
    }
    let machine = bytes::<2>(&data, 0x12).map(u16::from_le_bytes);
    if machine != Some(EM_X86_64) {
        return Err(header(
            0x12,
            "e_machine",
            "62 (x86-64)",
            format!("{machine:?}"),
        ));
    }
    let phoff = bytes::<8>(&data, 0x20).map_or(0, u64::from_le_bytes);
    let phentsize = bytes::<2>(&data, 0x36).map_or(0, u16::from_le_bytes);
    let phnum = bytes::<2>(&data, 0x38).map_or(0, u16::from_le_bytes);
    if phentsize < 56 {
        return Err(header(
            0x36,
            "e_phentsize",
            "at least 56",
            phentsize.to_string(),
        ));
    }
    let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
    for index in 0..phnum {
        let offset = u64::from(index)
            .checked_mul(u64::from(phentsize))
            .and_then(|o| o.checked_add(phoff))
            .unwrap_or(u64::MAX);
        let truncated = || Error::Truncated {
            path: path.to_owned(),
            index,
            offset,
            len,
        };
        let p_type = bytes::<4>(&data, offset)
            .map(u32::from_le_bytes)
            .ok_or_else(truncated)?;
        if p_type == PT_INTERP {
            let p_offset = bytes::<8>(&data, offset.saturating_add(8)).map(u64::from_le_bytes);
            let p_filesz = bytes::<8>(&data, offset.saturating_add(32)).map(u64::from_le_bytes);
            let interpreter = p_offset
                .zip(p_filesz)
                .and_then(|(o, n)| {
                    let start = usize::try_from(o).ok()?;
                    let end = start.checked_add(usize::try_from(n).ok()?)?;
                    data.get(start..end)
                })
                .map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
                .unwrap_or_default();
            return Err(Error::Dynamic {
                path: path.to_owned(),
                index,
                offset,
                interpreter,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_host_binary_is_refused_naming_its_loader() {
        // The test binary itself is dynamically linked in a normal build.
        let me = std::env::current_exe().unwrap();
        match check_static(&me) {
            Err(Error::Dynamic { interpreter, .. }) => assert!(interpreter.contains("ld-linux")),
            other => eprintln!("test binary not dynamic here: {other:?}"),
        }
    }

    #[test]
    fn non_elf_and_truncated_files_are_refused_with_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"#!/bin/sh\n").unwrap();
        assert!(matches!(
            check_static(&p),
            Err(Error::Header { offset: 0, .. })
        ));

        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x12] = 62;
        elf[0x20] = 64; // e_phoff just past the header…
        elf[0x36] = 56;
        elf[0x38] = 1; // …one program header that is not there.
        std::fs::write(&p, &elf).unwrap();
        assert!(matches!(
            check_static(&p),
            Err(Error::Truncated {
                index: 0,
                offset: 64,
                len: 64,
                ..
            })
        ));
        elf.extend_from_slice(&[1u8; 56]); // PT_LOAD
        std::fs::write(&p, &elf).unwrap();
        check_static(&p).unwrap();
    }
}
