//! Decoding of the header, sections and type records; see the module docs of [`super`].

use super::{
    Btf, BtfError, BtfType, Composite, Endian, EnumValue, Enumerator, IntEncoding, Member, Param,
    SectionVar, TypeId,
};

/// `sizeof(struct btf_header)` for version 1; `hdr_len` may be larger (later fields).
const HEADER_BYTES: usize = 24;
/// `sizeof(struct btf_type)`: name_off, info, size/type.
const RECORD_BYTES: usize = 12;

// BTF_KIND_* (include/uapi/linux/btf.h).
const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

/// Fixed-width reads in the blob's byte order; `None` past the end.
#[derive(Clone, Copy)]
struct Reader<'a> {
    data: &'a [u8],
    endian: Endian,
}

impl Reader<'_> {
    fn u32_at(self, pos: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.data.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(bytes),
            Endian::Big => u32::from_be_bytes(bytes),
        })
    }
}

/// The string section: names are NUL-terminated UTF-8 at byte offsets into it.
#[derive(Clone, Copy)]
struct Strings<'a>(&'a [u8]);

impl<'a> Strings<'a> {
    /// The name at `offset`; offset 0 is always the empty name.
    fn get(self, offset: u32) -> Result<&'a str, &'static str> {
        if offset == 0 {
            return Ok("");
        }
        let start = usize::try_from(offset).map_err(|_| "is past the string section")?;
        let tail = self.0.get(start..).ok_or("is past the string section")?;
        let len = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or("runs off the string section without a NUL")?;
        let bytes = tail.get(..len).ok_or("runs off the string section")?;
        std::str::from_utf8(bytes).map_err(|_| "is not UTF-8")
    }
}

/// A section as an absolute start offset and its bytes, bounds-checked.
fn section<'a>(
    data: &'a [u8],
    name: &'static str,
    header_len: u32,
    offset: u32,
    len: u32,
) -> Result<(usize, &'a [u8]), BtfError> {
    let start = u64::from(header_len) + u64::from(offset);
    let end = start + u64::from(len);
    let out_of_bounds = || BtfError::SectionOutOfBounds {
        section: name,
        start,
        end,
        data_len: data.len(),
    };
    let start_usize = usize::try_from(start).map_err(|_| out_of_bounds())?;
    let end_usize = usize::try_from(end).map_err(|_| out_of_bounds())?;
    let bytes = data.get(start_usize..end_usize).ok_or_else(out_of_bounds)?;
    Ok((start_usize, bytes))
}

pub(super) fn parse(data: &[u8]) -> Result<Btf<'_>, BtfError> {
    if data.len() < HEADER_BYTES {
        return Err(BtfError::TooShort {
            len: data.len(),
            needed: HEADER_BYTES,
        });
    }
    let endian = match data.get(..2) {
        Some([0x9f, 0xeb]) => Endian::Little,
        Some([0xeb, 0x9f]) => Endian::Big,
        Some(&[a, b]) => return Err(BtfError::BadMagic { found: [a, b] }),
        _ => {
            return Err(BtfError::TooShort {
                len: data.len(),
                needed: HEADER_BYTES,
            })
        }
    };
    let version = data.get(2).copied().unwrap_or_default();
    if version != 1 {
        return Err(BtfError::BadVersion { found: version });
    }
    let r = Reader { data, endian };
    // The length was checked above, so these reads succeed; default keeps clippy quiet.
    let field = |pos| r.u32_at(pos).unwrap_or_default();
    let header_len = field(4);
    let header_fits =
        usize::try_from(header_len).is_ok_and(|h| (HEADER_BYTES..=data.len()).contains(&h));
    if !header_fits {
        return Err(BtfError::BadHeaderLength {
            found: header_len,
            data_len: data.len(),
        });
    }
    let (types_start, type_bytes) = section(data, "type", header_len, field(8), field(12))?;
    let (strings_start, string_bytes) = section(data, "string", header_len, field(16), field(20))?;
    if let Some(&first) = string_bytes.first() {
        if first != 0 {
            return Err(BtfError::StringSectionStart {
                offset: strings_start,
                found: first,
            });
        }
    }
    let strings = Strings(string_bytes);

    let mut types = vec![BtfType::Void];
    let mut record_offsets = vec![0];
    let mut pos = 0usize;
    while pos < type_bytes.len() {
        let offset = types_start.saturating_add(pos);
        let type_id = u32::try_from(types.len()).map_err(|_| BtfError::TooManyTypes { offset })?;
        let record = type_bytes.get(pos..).unwrap_or_default();
        let (ty, len) = parse_record(
            Reader {
                data: record,
                endian,
            },
            strings,
            type_id,
            offset,
        )?;
        types.push(ty);
        record_offsets.push(offset);
        pos = pos.saturating_add(len);
    }

    let last = u32::try_from(types.len().saturating_sub(1)).unwrap_or(u32::MAX);
    for (id, ty) in (0u32..).zip(types.iter()) {
        let mut dangling = None;
        ty.for_each_reference(|target| {
            if target.0 > last && dangling.is_none() {
                dangling = Some(target.0);
            }
        });
        if let Some(target) = dangling {
            let offset = usize::try_from(id)
                .ok()
                .and_then(|i| record_offsets.get(i).copied())
                .unwrap_or_default();
            return Err(BtfError::DanglingReference {
                type_id: id,
                offset,
                target,
                last,
            });
        }
    }
    Ok(Btf {
        endian,
        types,
        record_offsets,
    })
}

/// Bytes that follow the 12-byte record for `kind` with `vlen` entries.
fn trailer_bytes(kind: u8, vlen: usize) -> Option<usize> {
    Some(match kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
        KIND_ARRAY => 12,
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => vlen * 12,
        KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
        KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
        | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
        _ => return None,
    })
}

/// Decodes one record at the start of `r.data`; returns it and its length in bytes.
fn parse_record<'a>(
    r: Reader<'_>,
    strings: Strings<'a>,
    type_id: u32,
    offset: usize,
) -> Result<(BtfType<'a>, usize), BtfError> {
    let available = r.data.len();
    let truncated = |needed| BtfError::Truncated {
        type_id,
        offset,
        needed,
        available,
    };
    let (Some(name_off), Some(info), Some(size_or_type)) = (r.u32_at(0), r.u32_at(4), r.u32_at(8))
    else {
        return Err(truncated(RECORD_BYTES));
    };
    let kind = u8::try_from((info >> 24) & 0x1f).unwrap_or(u8::MAX);
    let vlen_u16 = u16::try_from(info & 0xffff).unwrap_or(u16::MAX);
    let vlen = usize::from(vlen_u16);
    let kind_flag = info >> 31 == 1;
    let trailer = trailer_bytes(kind, vlen).ok_or(BtfError::UnknownKind {
        type_id,
        offset,
        kind,
    })?;
    let len = RECORD_BYTES + trailer;
    if len > available {
        return Err(truncated(len));
    }
    let name_of = |name_offset: u32| {
        strings
            .get(name_offset)
            .map_err(|reason| BtfError::BadName {
                type_id,
                offset,
                name_offset,
                reason,
            })
    };
    // Trailer word `i` (0-based) after the fixed record; in bounds as `len` was checked.
    let word = |i: usize| r.u32_at(RECORD_BYTES + 4 * i).unwrap_or_default();
    let name = name_of(name_off)?;
    let target = TypeId(size_or_type);
    let ty = match kind {
        KIND_INT => {
            let bits = word(0);
            BtfType::Int {
                name,
                size_bytes: size_or_type,
                encoding: IntEncoding(byte((bits >> 24) & 0x0f)),
                bit_offset: byte(bits >> 16),
                bits: byte(bits),
            }
        }
        KIND_PTR => BtfType::Ptr { target },
        KIND_ARRAY => BtfType::Array {
            element: TypeId(word(0)),
            index: TypeId(word(1)),
            count: word(2),
        },
        KIND_STRUCT | KIND_UNION => {
            let mut members = Vec::with_capacity(vlen);
            for i in 0..vlen {
                let raw_offset = word(3 * i + 2);
                let (bit_offset, bitfield_bits) = if kind_flag {
                    (raw_offset & 0x00ff_ffff, byte(raw_offset >> 24))
                } else {
                    (raw_offset, 0)
                };
                members.push(Member {
                    name: name_of(word(3 * i))?,
                    type_id: TypeId(word(3 * i + 1)),
                    bit_offset,
                    bitfield_bits,
                });
            }
            let composite = Composite {
                name,
                size_bytes: size_or_type,
                members,
            };
            if kind == KIND_STRUCT {
                BtfType::Struct(composite)
            } else {
                BtfType::Union(composite)
            }
        }
        KIND_ENUM | KIND_ENUM64 => {
            let mut values = Vec::with_capacity(vlen);
            for i in 0..vlen {
                let value = if kind == KIND_ENUM {
                    let raw = word(2 * i + 1);
                    if kind_flag {
                        EnumValue::Signed(i64::from(i32::from_ne_bytes(raw.to_ne_bytes())))
                    } else {
                        EnumValue::Unsigned(u64::from(raw))
                    }
                } else {
                    let raw = u64::from(word(3 * i + 1)) | (u64::from(word(3 * i + 2)) << 32);
                    if kind_flag {
                        EnumValue::Signed(i64::from_ne_bytes(raw.to_ne_bytes()))
                    } else {
                        EnumValue::Unsigned(raw)
                    }
                };
                let stride = if kind == KIND_ENUM { 2 } else { 3 };
                values.push(Enumerator {
                    name: name_of(word(stride * i))?,
                    value,
                });
            }
            BtfType::Enum {
                name,
                size_bytes: size_or_type,
                signed: kind_flag,
                values,
            }
        }
        KIND_FWD => BtfType::Fwd {
            name,
            is_union: kind_flag,
        },
        KIND_TYPEDEF => BtfType::Typedef { name, target },
        KIND_VOLATILE => BtfType::Volatile { target },
        KIND_CONST => BtfType::Const { target },
        KIND_RESTRICT => BtfType::Restrict { target },
        KIND_FUNC => BtfType::Func {
            name,
            proto: target,
            linkage: vlen_u16,
        },
        KIND_FUNC_PROTO => {
            let mut params = Vec::with_capacity(vlen);
            for i in 0..vlen {
                params.push(Param {
                    name: name_of(word(2 * i))?,
                    type_id: TypeId(word(2 * i + 1)),
                });
            }
            BtfType::FuncProto {
                return_type: target,
                params,
            }
        }
        KIND_VAR => BtfType::Var {
            name,
            target,
            linkage: word(0),
        },
        KIND_DATASEC => BtfType::Datasec {
            name,
            size_bytes: size_or_type,
            vars: (0..vlen)
                .map(|i| SectionVar {
                    type_id: TypeId(word(3 * i)),
                    offset: word(3 * i + 1),
                    size_bytes: word(3 * i + 2),
                })
                .collect(),
        },
        KIND_FLOAT => BtfType::Float {
            name,
            size_bytes: size_or_type,
        },
        KIND_DECL_TAG => BtfType::DeclTag {
            name,
            target,
            component_index: i32::from_ne_bytes(word(0).to_ne_bytes()),
        },
        KIND_TYPE_TAG => BtfType::TypeTag { name, target },
        _ => {
            return Err(BtfError::UnknownKind {
                type_id,
                offset,
                kind,
            })
        }
    };
    Ok((ty, len))
}

/// The low byte of `v` (the masking is the point: BTF packs fields into words).
fn byte(v: u32) -> u8 {
    v.to_le_bytes()[0]
}
