//! The little of the PE/COFF format (PE32+, UEFI images) a UKI needs: read the section table
//! of systemd's stub and append sections after its last one, page-aligned, the way ukify
//! lays them out. Our own code, so the result depends only on the inputs (objcopy's PE
//! writer changes fields between binutils versions).
//!
//! Reference: Microsoft "PE Format" (COFF file header, optional header PE32+, section table).

use std::fmt;

/// Offset of `e_lfanew` (the PE header's file offset) in the DOS header.
const E_LFANEW_OFFSET: usize = 0x3c;
/// "PE\0\0".
const PE_SIGNATURE: [u8; 4] = *b"PE\0\0";
/// Size of the COFF file header after the signature.
const COFF_HEADER_BYTES: usize = 20;
/// Optional-header magic of PE32+.
const PE32_PLUS_MAGIC: u16 = 0x20b;
/// Size of one section header.
const SECTION_HEADER_BYTES: usize = 40;
/// New sections start on a 4 KiB boundary in memory (the stub maps the kernel from there).
const NEW_SECTION_ALIGNMENT: u32 = 4096;
/// IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ.
pub const DATA_SECTION_FLAGS: u32 = 0x0000_0040 | 0x4000_0000;

/// Errors of this module; each names the structure field and its byte offset in the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The file ends before a structure.
    #[error("PE image: {field} at byte {offset} is past the end of the file ({len} bytes)")]
    Truncated {
        /// The structure field.
        field: &'static str,
        /// Its byte offset.
        offset: usize,
        /// File length.
        len: usize,
    },
    /// A field with an unexpected value.
    #[error("PE image: {field} at byte {offset}: expected {expected}, found {found}")]
    Bad {
        /// The structure field.
        field: &'static str,
        /// Its byte offset.
        offset: usize,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// The header area has no room for more section headers.
    #[error(
        "PE image: no room for {wanted} more section headers (the table ends at byte \
         {table_end}, SizeOfHeaders is {size_of_headers})"
    )]
    NoRoom {
        /// Section headers to add.
        wanted: usize,
        /// End of the current section table.
        table_end: usize,
        /// The header area's size.
        size_of_headers: usize,
    },
    /// A section name longer than 8 bytes, or a section too large for 32-bit fields.
    #[error("PE image: section {name:?} ({bytes} bytes) cannot be added: {why}")]
    BadSection {
        /// The section name.
        name: String,
        /// Its size.
        bytes: usize,
        /// Why.
        why: &'static str,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Name (up to 8 bytes, NUL padding removed).
    pub name: String,
    /// Size in memory.
    pub virtual_size: u32,
    /// RVA.
    pub virtual_address: u32,
    /// Size in the file (multiple of FileAlignment).
    pub size_of_raw_data: u32,
    /// File offset of the data.
    pub pointer_to_raw_data: u32,
    /// Characteristics flags, raw.
    pub characteristics: u32,
    /// File offset of this header.
    pub header_offset: usize,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rva {:#x} size {:#x} file {:#x}",
            self.name, self.virtual_address, self.virtual_size, self.pointer_to_raw_data
        )
    }
}

/// The parsed headers of a PE32+ image.
#[derive(Debug, Clone)]
pub struct Headers {
    /// File offset of the optional header.
    pub optional_offset: usize,
    /// File offset of the section table.
    pub table_offset: usize,
    /// SectionAlignment.
    pub section_alignment: u32,
    /// FileAlignment.
    pub file_alignment: u32,
    /// SizeOfImage.
    pub size_of_image: u32,
    /// SizeOfHeaders.
    pub size_of_headers: u32,
    /// The sections in table order.
    pub sections: Vec<Section>,
}

fn bytes<const N: usize>(data: &[u8], offset: usize, field: &'static str) -> Result<[u8; N]> {
    offset
        .checked_add(N)
        .and_then(|end| data.get(offset..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(Error::Truncated {
            field,
            offset,
            len: data.len(),
        })
}

fn u16_at(data: &[u8], offset: usize, field: &'static str) -> Result<u16> {
    bytes::<2>(data, offset, field).map(u16::from_le_bytes)
}

fn u32_at(data: &[u8], offset: usize, field: &'static str) -> Result<u32> {
    bytes::<4>(data, offset, field).map(u32::from_le_bytes)
}

fn put_u16(data: &mut [u8], offset: usize, value: u16, field: &'static str) -> Result<()> {
    put(data, offset, &value.to_le_bytes(), field)
}

fn put_u32(data: &mut [u8], offset: usize, value: u32, field: &'static str) -> Result<()> {
    put(data, offset, &value.to_le_bytes(), field)
}

fn put(data: &mut [u8], offset: usize, value: &[u8], field: &'static str) -> Result<()> {
    let len = data.len();
    offset
        .checked_add(value.len())
        .and_then(|end| data.get_mut(offset..end))
        .ok_or(Error::Truncated { field, offset, len })?
        .copy_from_slice(value);
    Ok(())
}

fn to_usize(v: u32) -> usize {
    // usize is at least 32 bits on every target this builds for.
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// `v` rounded up to a multiple of `align` (a power of two, or any non-zero value).
fn align_up(v: u64, align: u64) -> u64 {
    let align = align.max(1);
    v.div_ceil(align).saturating_mul(align)
}

/// Parses the DOS stub, COFF header, PE32+ optional header and section table.
///
/// # Errors
/// [`Error::Truncated`] or [`Error::Bad`] naming the field and its offset.
pub fn parse(data: &[u8]) -> Result<Headers> {
    let mz = bytes::<2>(data, 0, "DOS e_magic")?;
    if mz != *b"MZ" {
        return Err(Error::Bad {
            field: "DOS e_magic",
            offset: 0,
            expected: "\"MZ\"",
            found: format!("{mz:02x?}"),
        });
    }
    let pe = to_usize(u32_at(data, E_LFANEW_OFFSET, "DOS e_lfanew")?);
    let sig = bytes::<4>(data, pe, "PE signature")?;
    if sig != PE_SIGNATURE {
        return Err(Error::Bad {
            field: "PE signature",
            offset: pe,
            expected: "\"PE\\0\\0\"",
            found: format!("{sig:02x?}"),
        });
    }
    let coff = pe.saturating_add(4);
    let count = usize::from(u16_at(
        data,
        coff.saturating_add(2),
        "COFF NumberOfSections",
    )?);
    let optional_size = usize::from(u16_at(
        data,
        coff.saturating_add(16),
        "COFF SizeOfOptionalHeader",
    )?);
    let optional_offset = coff.saturating_add(COFF_HEADER_BYTES);
    let magic = u16_at(data, optional_offset, "optional header Magic")?;
    if magic != PE32_PLUS_MAGIC {
        return Err(Error::Bad {
            field: "optional header Magic",
            offset: optional_offset,
            expected: "0x20b (PE32+)",
            found: format!("{magic:#x}"),
        });
    }
    let field = |rel: usize, name| u32_at(data, optional_offset.saturating_add(rel), name);
    let section_alignment = field(32, "SectionAlignment")?;
    let file_alignment = field(36, "FileAlignment")?;
    let size_of_image = field(56, "SizeOfImage")?;
    let size_of_headers = field(60, "SizeOfHeaders")?;
    for (value, name, offset) in [
        (section_alignment, "SectionAlignment", 32),
        (file_alignment, "FileAlignment", 36),
    ] {
        if value == 0 || !value.is_power_of_two() {
            return Err(Error::Bad {
                field: name,
                offset: optional_offset.saturating_add(offset),
                expected: "a power of two",
                found: value.to_string(),
            });
        }
    }
    let table_offset = optional_offset.saturating_add(optional_size);
    let mut sections = Vec::with_capacity(count);
    for i in 0..count {
        let at = table_offset.saturating_add(i.saturating_mul(SECTION_HEADER_BYTES));
        let raw_name = bytes::<8>(data, at, "section Name")?;
        let name_len = raw_name.iter().position(|&b| b == 0).unwrap_or(8);
        sections.push(Section {
            name: String::from_utf8_lossy(raw_name.get(..name_len).unwrap_or_default())
                .into_owned(),
            virtual_size: u32_at(data, at.saturating_add(8), "section VirtualSize")?,
            virtual_address: u32_at(data, at.saturating_add(12), "section VirtualAddress")?,
            size_of_raw_data: u32_at(data, at.saturating_add(16), "section SizeOfRawData")?,
            pointer_to_raw_data: u32_at(data, at.saturating_add(20), "section PointerToRawData")?,
            characteristics: u32_at(data, at.saturating_add(36), "section Characteristics")?,
            header_offset: at,
        });
    }
    Ok(Headers {
        optional_offset,
        table_offset,
        section_alignment,
        file_alignment,
        size_of_image,
        size_of_headers,
        sections,
    })
}

/// A section to append.
#[derive(Debug, Clone, Copy)]
pub struct NewSection<'a> {
    /// Name, at most 8 bytes (`.linux`, `.initrd`, `.cmdline`, `.osrel`).
    pub name: &'a str,
    /// Contents.
    pub data: &'a [u8],
}

/// Returns `image` with `new` appended as initialized read-only data sections, in order,
/// each starting on a 4 KiB boundary in memory after the image's last section and on a
/// FileAlignment boundary in the file. Updates NumberOfSections, SizeOfInitializedData,
/// SizeOfImage, and zeroes CheckSum (UEFI does not check it; signing tools recompute it).
/// Bytes after the last section's raw data in `image` (there are none in systemd's stub)
/// are dropped.
///
/// # Errors
/// When `image` is not PE32+, its header area has no room for the new headers, or a section
/// does not fit the format's 32-bit fields.
pub fn append_sections(image: &[u8], new: &[NewSection<'_>]) -> Result<Vec<u8>> {
    let headers = parse(image)?;
    let count = headers.sections.len();
    let table_end = headers.table_offset.saturating_add(
        count
            .saturating_add(new.len())
            .saturating_mul(SECTION_HEADER_BYTES),
    );
    let size_of_headers = to_usize(headers.size_of_headers);
    if table_end > size_of_headers {
        return Err(Error::NoRoom {
            wanted: new.len(),
            table_end: headers
                .table_offset
                .saturating_add(count.saturating_mul(SECTION_HEADER_BYTES)),
            size_of_headers,
        });
    }
    // The header gap must really be free: nothing of the image may live there.
    let first_raw = headers
        .sections
        .iter()
        .map(|s| to_usize(s.pointer_to_raw_data))
        .filter(|&p| p != 0)
        .min()
        .unwrap_or(size_of_headers);
    if table_end > first_raw {
        return Err(Error::NoRoom {
            wanted: new.len(),
            table_end,
            size_of_headers: first_raw,
        });
    }
    let file_end = headers
        .sections
        .iter()
        .map(|s| u64::from(s.pointer_to_raw_data).saturating_add(u64::from(s.size_of_raw_data)))
        .max()
        .unwrap_or(u64::from(headers.size_of_headers));
    let mem_end = headers
        .sections
        .iter()
        .map(|s| {
            u64::from(s.virtual_address)
                .saturating_add(u64::from(s.virtual_size.max(s.size_of_raw_data)))
        })
        .max()
        .unwrap_or(0)
        .max(u64::from(headers.size_of_image));
    let file_align = u64::from(headers.file_alignment);
    let mem_align = u64::from(NEW_SECTION_ALIGNMENT.max(headers.section_alignment));

    let mut out = image
        .get(..to_usize(u32::try_from(file_end).unwrap_or(u32::MAX)))
        .ok_or(Error::Truncated {
            field: "last section's raw data",
            offset: to_usize(u32::try_from(file_end).unwrap_or(u32::MAX)),
            len: image.len(),
        })?
        .to_vec();
    let mut file_pos = align_up(file_end, file_align);
    let mut mem_pos = align_up(mem_end, mem_align);
    let mut added_data: u64 = 0;
    for (i, s) in new.iter().enumerate() {
        let bad = |why| Error::BadSection {
            name: s.name.to_owned(),
            bytes: s.data.len(),
            why,
        };
        if s.name.len() > 8 || s.name.is_empty() {
            return Err(bad("the name must be 1 to 8 bytes"));
        }
        let len = u64::try_from(s.data.len()).map_err(|_| bad("too large"))?;
        let raw = align_up(len, file_align);
        let fits = |v: u64| u32::try_from(v).map_err(|_| bad("past 4 GiB"));
        let mut header = [0u8; SECTION_HEADER_BYTES];
        let mut name = [0u8; 8];
        for (d, b) in name.iter_mut().zip(s.name.bytes()) {
            *d = b;
        }
        put(&mut header, 0, &name, "section Name")?;
        put_u32(&mut header, 8, fits(len)?, "section VirtualSize")?;
        put_u32(&mut header, 12, fits(mem_pos)?, "section VirtualAddress")?;
        put_u32(&mut header, 16, fits(raw)?, "section SizeOfRawData")?;
        put_u32(&mut header, 20, fits(file_pos)?, "section PointerToRawData")?;
        put_u32(
            &mut header,
            36,
            DATA_SECTION_FLAGS,
            "section Characteristics",
        )?;
        let at = headers
            .table_offset
            .saturating_add(count.saturating_add(i).saturating_mul(SECTION_HEADER_BYTES));
        put(&mut out, at, &header, "section header")?;

        out.resize(to_usize(fits(file_pos)?), 0);
        out.extend_from_slice(s.data);
        file_pos = file_pos.saturating_add(raw);
        out.resize(to_usize(fits(file_pos)?), 0);
        mem_pos = align_up(mem_pos.saturating_add(len), mem_align);
        added_data = added_data.saturating_add(raw);
    }
    let opt = headers.optional_offset;
    let total = u16::try_from(count.saturating_add(new.len())).map_err(|_| Error::BadSection {
        name: String::new(),
        bytes: 0,
        why: "more than 65535 sections",
    })?;
    // NumberOfSections sits 2 bytes into the COFF header, which ends where `opt` begins.
    put_u16(
        &mut out,
        opt.saturating_sub(COFF_HEADER_BYTES).saturating_add(2),
        total,
        "COFF NumberOfSections",
    )?;
    let old_init = u32_at(&out, opt.saturating_add(8), "SizeOfInitializedData")?;
    let new_init = u64::from(old_init).saturating_add(added_data);
    put_u32(
        &mut out,
        opt.saturating_add(8),
        u32::try_from(new_init).unwrap_or(u32::MAX),
        "SizeOfInitializedData",
    )?;
    let size_of_image = u32::try_from(mem_pos).map_err(|_| Error::BadSection {
        name: String::new(),
        bytes: 0,
        why: "image larger than 4 GiB",
    })?;
    put_u32(
        &mut out,
        opt.saturating_add(56),
        size_of_image,
        "SizeOfImage",
    )?;
    put_u32(&mut out, opt.saturating_add(64), 0, "CheckSum")?;
    Ok(out)
}

/// The contents of section `name` (VirtualSize bytes, or SizeOfRawData when smaller).
///
/// # Errors
/// When `image` does not parse; `Ok(None)` when it has no such section.
pub fn section_data<'a>(image: &'a [u8], name: &str) -> Result<Option<&'a [u8]>> {
    let headers = parse(image)?;
    let Some(s) = headers.sections.iter().find(|s| s.name == name) else {
        return Ok(None);
    };
    let start = to_usize(s.pointer_to_raw_data);
    let len = to_usize(s.virtual_size.min(s.size_of_raw_data));
    start
        .checked_add(len)
        .and_then(|end| image.get(start..end))
        .map(Some)
        .ok_or(Error::Truncated {
            field: "section data",
            offset: start,
            len: image.len(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A minimal PE32+ with one section, laid out like systemd's stub (headers 0x400,
    /// alignments 0x200).
    fn tiny() -> Vec<u8> {
        let mut f = vec![0u8; 0x600];
        f[0..2].copy_from_slice(b"MZ");
        f[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        f[0x80..0x84].copy_from_slice(b"PE\0\0");
        f[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        f[0x86..0x88].copy_from_slice(&1u16.to_le_bytes());
        f[0x94..0x96].copy_from_slice(&240u16.to_le_bytes());
        let opt = 0x98;
        f[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        f[opt + 32..opt + 36].copy_from_slice(&0x200u32.to_le_bytes());
        f[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes());
        f[opt + 56..opt + 60].copy_from_slice(&0x1200u32.to_le_bytes());
        f[opt + 60..opt + 64].copy_from_slice(&0x400u32.to_le_bytes());
        let sec = opt + 240;
        f[sec..sec + 5].copy_from_slice(b".text");
        f[sec + 8..sec + 12].copy_from_slice(&0x10u32.to_le_bytes());
        f[sec + 12..sec + 16].copy_from_slice(&0x1000u32.to_le_bytes());
        f[sec + 16..sec + 20].copy_from_slice(&0x200u32.to_le_bytes());
        f[sec + 20..sec + 24].copy_from_slice(&0x400u32.to_le_bytes());
        f
    }

    #[test]
    fn appended_sections_read_back_aligned() {
        let out = append_sections(
            &tiny(),
            &[
                NewSection {
                    name: ".cmdline",
                    data: b"console=ttyS0",
                },
                NewSection {
                    name: ".linux",
                    data: &[0xab; 5000],
                },
            ],
        )
        .unwrap();
        let h = parse(&out).unwrap();
        assert_eq!(h.sections.len(), 3);
        let cmd = &h.sections[1];
        assert_eq!(cmd.name, ".cmdline");
        assert_eq!(cmd.virtual_address, 0x2000);
        assert_eq!(cmd.pointer_to_raw_data, 0x600);
        assert_eq!(cmd.virtual_size, 13);
        let linux = &h.sections[2];
        assert_eq!(linux.virtual_address, 0x3000);
        assert_eq!(linux.pointer_to_raw_data, 0x800);
        assert_eq!(linux.size_of_raw_data, 0x1400);
        assert_eq!(h.size_of_image, 0x5000);
        assert_eq!(out.len(), 0x800 + 0x1400);
        assert_eq!(
            section_data(&out, ".cmdline").unwrap(),
            Some(&b"console=ttyS0"[..])
        );
        assert_eq!(section_data(&out, ".linux").unwrap().unwrap().len(), 5000);
    }

    #[test]
    fn errors_name_field_and_offset() {
        let mut f = tiny();
        f[0x98] = 0x0b;
        f[0x99] = 0x01;
        let err = parse(&f).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Bad {
                    field: "optional header Magic",
                    offset: 0x98,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse(&tiny()[..0x100]).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
        // No room: headers end right after the one section header.
        let mut f = tiny();
        f[0x98 + 60..0x98 + 64].copy_from_slice(&0x1b0u32.to_le_bytes());
        let err = append_sections(
            &f,
            &[NewSection {
                name: ".x",
                data: b"1",
            }],
        )
        .unwrap_err();
        assert!(matches!(err, Error::NoRoom { .. }), "{err}");
    }
}
