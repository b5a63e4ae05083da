//! MFT entries (FILE records): the update sequence (fixup) check and the attributes they
//! hold, resident and non-resident. Every field is read with `get()` from the record's
//! own bytes, so a hostile record can only produce an error.

use crate::FsError;

/// `$STANDARD_INFORMATION`.
pub const ATTR_STANDARD_INFORMATION: u32 = 0x10;
/// `$ATTRIBUTE_LIST`.
pub const ATTR_ATTRIBUTE_LIST: u32 = 0x20;
/// `$FILE_NAME`.
pub const ATTR_FILE_NAME: u32 = 0x30;
/// `$VOLUME_NAME`.
pub const ATTR_VOLUME_NAME: u32 = 0x60;
/// `$DATA`.
pub const ATTR_DATA: u32 = 0x80;
/// `$INDEX_ROOT`.
pub const ATTR_INDEX_ROOT: u32 = 0x90;
/// `$REPARSE_POINT`.
pub const ATTR_REPARSE_POINT: u32 = 0xC0;
/// `IO_REPARSE_TAG_MOUNT_POINT` (a junction or volume mount point).
pub const IO_REPARSE_TAG_MOUNT_POINT: u32 = 0xA000_0003;
/// `IO_REPARSE_TAG_SYMLINK`.
pub const IO_REPARSE_TAG_SYMLINK: u32 = 0xA000_000C;
/// The end marker of a record's attributes.
const ATTR_END: u32 = 0xFFFF_FFFF;
/// Bytes of one fixup stride (NTFS uses 512 whatever the sector size).
const FIXUP_STRIDE: usize = 512;
/// At most this many attributes in one record (a 64 KiB record holds ~2,700 of the
/// smallest); the walk stops there.
const MAX_ATTRS_PER_RECORD: usize = 4096;

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([*s.first()?, *s.get(1)?]))
}

pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(s))
}

pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

/// UTF-16LE to UTF-8, unpaired surrogates as U+FFFD.
pub fn utf16(b: &[u8]) -> String {
    let units = b.chunks_exact(2).map(|c| {
        u16::from_le_bytes([
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
        ])
    });
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// What a FILE record's header says.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Sequence number (incremented each time the entry is reused).
    pub seq: u16,
    /// Hard links.
    pub links: u16,
    /// Flags: 0x01 in use, 0x02 directory.
    pub flags: u16,
    /// The base record's reference (0 for a base record).
    pub base_ref: u64,
    /// Offset of the first attribute.
    pub attrs_offset: usize,
    /// Bytes in use.
    pub used: usize,
}

/// Applies the update sequence to `rec` (one MFT entry read from the volume at
/// `offset`) and returns its header. `Ok(None)`: not a FILE record (never used: zeros).
pub fn fixup(rec: &mut [u8], volume: &str, offset: u64) -> Result<Option<Header>, FsError> {
    let magic = rec.get(0..4).unwrap_or(&[]);
    if magic != b"FILE" {
        if magic == b"BAAD" {
            return Err(FsError::invalid(
                volume,
                offset,
                "ntfs MFT entry.magic",
                "BAAD: the entry was marked damaged by chkdsk",
            ));
        }
        return Ok(None);
    }
    let bad = |field: &'static str, reason: String| FsError::invalid(volume, offset, field, reason);
    let usa_offset = usize::from(u16_at(rec, 4).unwrap_or(0));
    let usa_count = usize::from(u16_at(rec, 6).unwrap_or(0));
    let strides = rec.len() / FIXUP_STRIDE;
    if usa_count != strides + 1 {
        return Err(bad(
            "ntfs MFT entry.usa_count",
            format!(
                "{usa_count}, expected {} for a {}-byte entry",
                strides + 1,
                rec.len()
            ),
        ));
    }
    let usa_end = usa_offset
        .checked_add(usa_count * 2)
        .filter(|&e| usa_offset >= 0x28 && e <= FIXUP_STRIDE - 2)
        .ok_or_else(|| {
            bad(
                "ntfs MFT entry.usa_offset",
                format!("{usa_offset} is outside the first sector"),
            )
        })?;
    let usa: Vec<u8> = rec.get(usa_offset..usa_end).unwrap_or(&[]).to_vec();
    let check = u16_at(&usa, 0).unwrap_or(0);
    for i in 0..strides {
        let at = (i + 1) * FIXUP_STRIDE - 2;
        let found = u16_at(rec, at).unwrap_or(0);
        if found != check {
            return Err(bad(
                "ntfs MFT entry.update_sequence",
                format!("sector {i} ends in {found:#06x}, expected {check:#06x} (torn or damaged write)"),
            ));
        }
        if let (Some(dst), Some(src)) = (rec.get_mut(at..at + 2), usa.get((i + 1) * 2..(i + 2) * 2))
        {
            dst.copy_from_slice(src);
        }
    }
    let attrs_offset = usize::from(u16_at(rec, 20).unwrap_or(0));
    let used = usize::try_from(u32_at(rec, 24).unwrap_or(0)).unwrap_or(usize::MAX);
    if used > rec.len() || attrs_offset < 0x18 || attrs_offset >= used {
        return Err(bad(
            "ntfs MFT entry.bytes_in_use",
            format!(
                "first attribute at {attrs_offset}, {used} bytes in use of {}",
                rec.len()
            ),
        ));
    }
    Ok(Some(Header {
        seq: u16_at(rec, 16).unwrap_or(0),
        links: u16_at(rec, 18).unwrap_or(0),
        flags: u16_at(rec, 22).unwrap_or(0),
        base_ref: u64_at(rec, 32).unwrap_or(0),
        attrs_offset,
        used,
    }))
}

/// Where an attribute's value is.
#[derive(Debug, Clone)]
pub enum Body {
    /// In the record.
    Resident(Vec<u8>),
    /// In clusters.
    NonResident {
        /// First VCN this extent maps.
        start_vcn: u64,
        /// The encoded runlist.
        runlist: Vec<u8>,
        /// log2 of clusters per compression unit (0: not compressed).
        compression_unit: u8,
        /// Bytes of the value.
        real_size: u64,
        /// Bytes written (the rest reads as zeros).
        initialized_size: u64,
        /// Byte offset of the runlist in the volume (for errors).
        runlist_offset: u64,
    },
}

/// One attribute.
#[derive(Debug, Clone)]
pub struct Attr {
    /// Type code.
    pub kind: u32,
    /// Name (empty: unnamed).
    pub name: String,
    /// Flags (0x0001 compressed, 0x4000 encrypted, 0x8000 sparse).
    pub flags: u16,
    /// Attribute id.
    pub id: u16,
    /// Its value.
    pub body: Body,
    /// Byte offset of the attribute in the volume.
    pub offset: u64,
}

impl Attr {
    /// The value's size in bytes.
    pub fn size(&self) -> u64 {
        match &self.body {
            Body::Resident(v) => v.len() as u64,
            Body::NonResident { real_size, .. } => *real_size,
        }
    }
}

/// The attributes of a fixed-up record read at `offset`.
pub fn attributes(rec: &[u8], h: &Header, volume: &str, offset: u64) -> Result<Vec<Attr>, FsError> {
    let mut out = Vec::new();
    let mut at = h.attrs_offset;
    let end = h.used.min(rec.len());
    while out.len() < MAX_ATTRS_PER_RECORD {
        let abs = offset.saturating_add(at as u64);
        let bad =
            |field: &'static str, reason: String| FsError::invalid(volume, abs, field, reason);
        let kind = u32_at(rec, at)
            .ok_or_else(|| bad("ntfs attribute.type", "past the end of the entry".into()))?;
        if kind == ATTR_END {
            break;
        }
        let len = usize::try_from(u32_at(rec, at + 4).unwrap_or(0)).unwrap_or(usize::MAX);
        let attr_end = at
            .checked_add(len)
            .filter(|&e| len >= 0x18 && len % 8 == 0 && e <= end)
            .ok_or_else(|| {
                bad(
                    "ntfs attribute.length",
                    format!("{len} bytes at {at} of an entry using {end}"),
                )
            })?;
        let a = rec.get(at..attr_end).unwrap_or(&[]);
        let non_resident = a.get(8).copied().unwrap_or(0) != 0;
        let name_len = usize::from(a.get(9).copied().unwrap_or(0));
        let name_off = usize::from(u16_at(a, 10).unwrap_or(0));
        let name = a
            .get(name_off..name_off + name_len * 2)
            .map(utf16)
            .ok_or_else(|| bad("ntfs attribute.name_offset", format!("name of {name_len} characters at {name_off} past the attribute's {len} bytes")))?;
        let flags = u16_at(a, 12).unwrap_or(0);
        let id = u16_at(a, 14).unwrap_or(0);
        let body = if non_resident {
            let start_vcn = u64_at(a, 16).unwrap_or(0);
            let rl_off = usize::from(u16_at(a, 32).unwrap_or(0));
            let runlist = a
                .get(rl_off..)
                .filter(|_| rl_off >= 0x40)
                .ok_or_else(|| {
                    bad(
                        "ntfs attribute.runlist_offset",
                        format!("{rl_off} outside the attribute's {len} bytes"),
                    )
                })?
                .to_vec();
            let compression_unit = u8::try_from(u16_at(a, 34).unwrap_or(0)).unwrap_or(u8::MAX);
            let real_size = u64_at(a, 48).unwrap_or(0);
            let initialized_size = u64_at(a, 56).unwrap_or(0).min(real_size);
            Body::NonResident {
                start_vcn,
                runlist,
                compression_unit,
                real_size,
                initialized_size,
                runlist_offset: abs.saturating_add(rl_off as u64),
            }
        } else {
            let vlen = usize::try_from(u32_at(a, 16).unwrap_or(0)).unwrap_or(usize::MAX);
            let voff = usize::from(u16_at(a, 20).unwrap_or(0));
            let v = voff
                .checked_add(vlen)
                .and_then(|e| a.get(voff..e))
                .ok_or_else(|| {
                    bad(
                        "ntfs attribute.value_length",
                        format!("{vlen} bytes at {voff} past the attribute's {len} bytes"),
                    )
                })?;
            Body::Resident(v.to_vec())
        };
        out.push(Attr {
            kind,
            name,
            flags,
            id,
            body,
            offset: abs,
        });
        at = attr_end;
    }
    Ok(out)
}

/// A `$FILE_NAME` value.
#[derive(Debug, Clone)]
pub struct FileName {
    /// Parent directory: entry number.
    pub parent: u64,
    /// Parent directory: sequence number.
    pub parent_seq: u16,
    /// Created, modified, MFT changed, accessed (FILETIME).
    pub times: [u64; 4],
    /// 0 POSIX, 1 Win32, 2 DOS, 3 Win32 and DOS.
    pub namespace: u8,
    /// The name.
    pub name: String,
}

/// Parses a `$FILE_NAME` value (`None` when too short for its name).
pub fn file_name(v: &[u8]) -> Option<FileName> {
    let parent_ref = u64_at(v, 0)?;
    let len = usize::from(*v.get(64)?);
    let namespace = *v.get(65)?;
    let name = utf16(v.get(66..66 + len * 2)?);
    Some(FileName {
        parent: parent_ref & 0xFFFF_FFFF_FFFF,
        parent_seq: u16::try_from(parent_ref >> 48).unwrap_or(0),
        times: [
            u64_at(v, 8)?,
            u64_at(v, 16)?,
            u64_at(v, 24)?,
            u64_at(v, 32)?,
        ],
        namespace,
        name,
    })
}

/// A `$REPARSE_POINT` value (`REPARSE_DATA_BUFFER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reparse {
    /// The tag (`IO_REPARSE_TAG_*`).
    pub tag: u32,
    /// For symbolic links and mount points: the substitute name (what the I/O manager
    /// follows, e.g. `\??\C:\target`).
    pub substitute: Option<String>,
    /// For symbolic links and mount points: the print name (what is shown to users).
    pub print: Option<String>,
    /// A symbolic link's `SYMLINK_FLAG_RELATIVE`.
    pub relative: bool,
}

/// The name of a well-known reparse tag.
pub fn reparse_tag_name(tag: u32) -> &'static str {
    match tag {
        IO_REPARSE_TAG_MOUNT_POINT => "MOUNT_POINT",
        IO_REPARSE_TAG_SYMLINK => "SYMLINK",
        0x8000_0007 => "SIS",
        0x8000_0008 => "WIM",
        0x8000_0009 => "CSV",
        0x8000_000A => "DFS",
        0x8000_0012 => "DFSR",
        0x8000_0013 => "DEDUP",
        0x8000_0014 => "NFS",
        0x8000_0017 => "WOF",
        0x8000_0018 => "WCI",
        0x8000_001B => "APPEXECLINK",
        0x8000_001E => "STORAGE_SYNC",
        0x8000_0023 => "AF_UNIX",
        0x8000_0024 => "LX_FIFO",
        0x8000_0025 => "LX_CHR",
        0x8000_0026 => "LX_BLK",
        0xA000_0019 => "GLOBAL_REPARSE",
        0xA000_001D => "LX_SYMLINK",
        0xA000_0027 => "WCI_LINK",
        t if t & 0xFFFF_0FFF == 0x9000_001A => "CLOUD",
        _ => "unknown",
    }
}

/// Parses a `REPARSE_DATA_BUFFER` (`None` when shorter than its header). The names of a
/// symbolic link or mount point are read only where they lie inside the buffer.
pub fn reparse(v: &[u8]) -> Option<Reparse> {
    let tag = u32_at(v, 0)?;
    let data_len = usize::from(u16_at(v, 4)?);
    let data = v.get(8..8usize.checked_add(data_len)?.min(v.len()))?;
    let mut r = Reparse {
        tag,
        substitute: None,
        print: None,
        relative: false,
    };
    let path_at: usize = match tag {
        IO_REPARSE_TAG_SYMLINK => {
            r.relative = u32_at(data, 8).is_some_and(|f| f & 1 != 0);
            12
        }
        IO_REPARSE_TAG_MOUNT_POINT => 8,
        _ => return Some(r),
    };
    let name = |off_at: usize| {
        let off = usize::from(u16_at(data, off_at)?);
        let len = usize::from(u16_at(data, off_at + 2)?);
        let from = path_at.checked_add(off)?;
        data.get(from..from.checked_add(len)?).map(utf16)
    };
    r.substitute = name(0);
    r.print = name(4);
    Some(r)
}
