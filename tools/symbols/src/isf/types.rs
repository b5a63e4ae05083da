//! BTF types to ISF `base_types`, `enums`, `user_types` and type descriptors.
//!
//! The ISF shapes follow what dwarf2json emits (`main.go`: `typeName`, `addStruct`,
//! `newBasetype`) and what Volatility's `intermed.py` (`Version8Format`, format 6.2.0)
//! reads: qualifiers and typedefs vanish into their target (typedefs of structs also
//! get user types of their own: see the private `names` module); pointers and arrays
//! nest a `subtype`; aggregates and enums are referenced by name; functions are
//! `{"kind": "function"}`; a bitfield wraps its integer or enum type with `bit_position`
//! and `bit_length`; an anonymous struct or union member is a field
//! `unnamed_field_<n>` with `"anonymous": true`, which Volatility flattens into its parent.
//!
//! Walks through typedefs, qualifiers, pointers and arrays stop after [`MAX_DEPTH`] links:
//! hostile BTF can loop (a typedef naming itself), real kernels need a handful.
//!
//! Known differences from dwarf2json on the same kernel (Debian 6.1, compared field by
//! field): members declared with a typedef of a named struct refer to the struct's tag;
//! BTF flattens multi-dimensional arrays (`u32 a[6][18]` is one array of 108);
//! where two different structs share a tag the first wins here, the last in dwarf2json;
//! `char` is unsigned because pahole drops its signedness.

use serde_json::{json, Map, Value};

use super::names::Names;
use crate::btf::{Btf, BtfType, Composite, EnumValue, IntEncoding, TypeId};

/// Longest chain of typedef/qualifier/pointer/array links followed for one type.
pub const MAX_DEPTH: usize = 64;

/// Why a type or member was left out of the ISF; the rest of the ISF is still built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("BTF type {type_id}: chain of more than {MAX_DEPTH} type links (a cycle?)")]
    TooDeep { type_id: u32 },
    #[error("BTF type {type_id}: a {kind} record is not a data type")]
    NotAType { type_id: u32, kind: &'static str },
    #[error("BTF type {type_id}: bitfield of a {kind}, expected an integer or enum")]
    BadBitfield { type_id: u32, kind: &'static str },
    #[error("BTF type {type_id}, member {member:?}")]
    Member {
        type_id: u32,
        member: String,
        #[source]
        source: Box<TypeError>,
    },
}

/// Converts types of one BTF blob; see the module docs.
#[derive(Debug)]
pub(crate) struct Converter<'b, 'a> {
    pub(crate) btf: &'b Btf<'a>,
    pub(crate) names: &'b Names<'a>,
}

fn base(name: &str) -> Value {
    json!({"kind": "base", "name": name})
}

impl Converter<'_, '_> {
    fn name(&self, id: TypeId) -> &str {
        // Every kind that is described by name has one (see `Names::new`).
        self.names.get(id).unwrap_or("void")
    }

    /// The ISF type descriptor of `id`.
    pub(crate) fn describe(&self, id: TypeId) -> Result<Value, TypeError> {
        self.describe_at(id, 0)
    }

    fn describe_at(&self, id: TypeId, depth: usize) -> Result<Value, TypeError> {
        let (id, ty, depth) = self.strip_at(id, depth)?;
        let next = depth.saturating_add(1);
        Ok(match ty {
            BtfType::Void => base("void"),
            BtfType::Int { .. } | BtfType::Float { .. } => base(self.name(id)),
            BtfType::Ptr { target } => {
                json!({"kind": "pointer", "subtype": self.describe_at(*target, next)?})
            }
            BtfType::Array { element, count, .. } => json!({
                "kind": "array",
                "count": count,
                "subtype": self.describe_at(*element, next)?,
            }),
            BtfType::Struct(_) => json!({"kind": "struct", "name": self.name(id)}),
            BtfType::Union(_) => json!({"kind": "union", "name": self.name(id)}),
            BtfType::Fwd { is_union, .. } => json!({
                "kind": if *is_union { "union" } else { "struct" },
                "name": self.name(id),
            }),
            BtfType::Enum { .. } => json!({"kind": "enum", "name": self.name(id)}),
            BtfType::Func { .. } | BtfType::FuncProto { .. } => json!({"kind": "function"}),
            other => {
                return Err(TypeError::NotAType {
                    type_id: id.0,
                    kind: other.kind_name(),
                })
            }
        })
    }

    /// Follows typedefs and qualifiers (volatile, const, restrict, type tags) to the type
    /// they name.
    pub(crate) fn strip(&self, id: TypeId) -> Result<(TypeId, &BtfType<'_>), TypeError> {
        self.strip_at(id, 0).map(|(id, ty, _)| (id, ty))
    }

    fn strip_at(
        &self,
        mut id: TypeId,
        mut depth: usize,
    ) -> Result<(TypeId, &BtfType<'_>, usize), TypeError> {
        loop {
            if depth > MAX_DEPTH {
                return Err(TypeError::TooDeep { type_id: id.0 });
            }
            // The parser checked every reference, so `get` only fails on a bug.
            let ty = self.btf.get(id).ok_or(TypeError::NotAType {
                type_id: id.0,
                kind: "missing",
            })?;
            match ty {
                BtfType::Typedef { target, .. }
                | BtfType::Volatile { target }
                | BtfType::Const { target }
                | BtfType::Restrict { target }
                | BtfType::TypeTag { target, .. } => {
                    id = *target;
                    depth = depth.saturating_add(1);
                }
                _ => return Ok((id, ty, depth)),
            }
        }
    }

    /// `base_types`: `void`, `pointer` and every named INT and FLOAT (the first of a name
    /// wins). `pointer` takes the size of `long` (LP64 and ILP32 alike); BTF itself never
    /// says how wide a pointer is.
    pub(crate) fn base_types(&self, endian: &str) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert(
            "void".into(),
            json!({"kind": "void", "size": 0, "signed": false, "endian": endian}),
        );
        let mut pointer_size = 8;
        for (id, ty) in self.btf.iter() {
            let (name, kind, size, signed) = match ty {
                BtfType::Int {
                    size_bytes,
                    encoding,
                    ..
                } => {
                    let name = self.name(id);
                    if matches!(name, "long unsigned int" | "long int")
                        && matches!(size_bytes, 4 | 8)
                    {
                        pointer_size = *size_bytes;
                    }
                    (
                        name,
                        int_kind(name, *encoding),
                        size_bytes,
                        encoding.is_signed(),
                    )
                }
                // dwarf2json marks floats signed (`newBasetype`).
                BtfType::Float { size_bytes, .. } => (self.name(id), "float", size_bytes, true),
                _ => continue,
            };
            if !out.contains_key(name) {
                out.insert(
                    name.to_owned(),
                    json!({"kind": kind, "size": size, "signed": signed, "endian": endian}),
                );
            }
        }
        out.insert(
            "pointer".into(),
            json!({"kind": "int", "size": pointer_size, "signed": false, "endian": endian}),
        );
        out
    }

    /// `enums`: constants by name (the first of a name wins) over the base type dwarf2json
    /// would pick: the first `int` base type, by name, of the enum's size whose
    /// signedness matches (signed when any value is negative).
    pub(crate) fn enums(&self, base_types: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (id, ty) in self.btf.iter() {
            let BtfType::Enum {
                size_bytes, values, ..
            } = ty
            else {
                continue;
            };
            let mut constants = Map::new();
            let mut negative = false;
            for v in values {
                let number = match v.value {
                    EnumValue::Signed(n) => {
                        negative |= n < 0;
                        Value::from(n)
                    }
                    EnumValue::Unsigned(n) => Value::from(n),
                };
                constants.entry(v.name).or_insert(number);
            }
            let pick = |kind: &str, signed: Option<bool>| {
                base_types.iter().find(|(name, b)| {
                    name.as_str() != "pointer"
                        && b.get("kind") == Some(&json!(kind))
                        && b.get("size") == Some(&json!(size_bytes))
                        && signed.is_none_or(|s| b.get("signed") == Some(&json!(s)))
                })
            };
            // dwarf2json stops at `int` and falls back to "void", which Volatility cannot
            // read; a packed 1-byte enum is better served by `unsigned char`.
            let base = pick("int", Some(negative))
                .or_else(|| pick("int", None))
                .or_else(|| pick("char", Some(negative)))
                .or_else(|| pick("char", None))
                .map_or("void", |(name, _)| name.as_str());
            out.insert(
                self.name(id).to_owned(),
                json!({"size": size_bytes, "base": base, "constants": constants}),
            );
        }
        out
    }

    /// `user_types`: every struct and union (the first of a name wins), then every typedef
    /// alias (see the `names` module) with its target's layout. Members that cannot be
    /// described are left out and reported in `skipped`.
    pub(crate) fn user_types(&self, skipped: &mut Vec<TypeError>) -> Map<String, Value> {
        let mut out = Map::new();
        for (id, _) in self.btf.iter() {
            let name = self.name(id);
            if !out.contains_key(name) {
                if let Some(entry) = self.user_type(id, skipped) {
                    out.insert(name.to_owned(), entry);
                }
            }
        }
        for (typedef, alias) in self.names.aliases() {
            let Ok((target, _)) = self.strip(typedef) else {
                continue;
            };
            // Members were reported with the target already.
            if let Some(entry) = self.user_type(target, &mut Vec::new()) {
                out.entry(alias).or_insert(entry);
            }
        }
        out
    }

    /// The user type entry of struct or union `id`; `None` for other kinds.
    fn user_type(&self, id: TypeId, skipped: &mut Vec<TypeError>) -> Option<Value> {
        let (kind, composite) = match self.btf.get(id)? {
            BtfType::Struct(c) => ("struct", c),
            BtfType::Union(c) => ("union", c),
            _ => return None,
        };
        let fields = self.fields(id, composite, skipped);
        Some(json!({"kind": kind, "size": composite.size_bytes, "fields": fields}))
    }

    fn fields(
        &self,
        id: TypeId,
        composite: &Composite<'_>,
        skipped: &mut Vec<TypeError>,
    ) -> Map<String, Value> {
        let mut fields = Map::new();
        let mut anonymous = 0u32;
        for member in &composite.members {
            let field = match self.field(member) {
                Ok(Some(field)) => field,
                Ok(None) => continue,
                Err(source) => {
                    skipped.push(TypeError::Member {
                        type_id: id.0,
                        member: member.name.to_owned(),
                        source: Box::new(source),
                    });
                    continue;
                }
            };
            let name = if member.name.is_empty() {
                let name = format!("unnamed_field_{anonymous:x}");
                anonymous = anonymous.saturating_add(1);
                name
            } else {
                member.name.to_owned()
            };
            fields.entry(name).or_insert(field);
        }
        fields
    }

    /// One member's field entry; `None` for an unnamed member that is not a struct or
    /// union (padding), which C never lets code name.
    fn field(&self, member: &crate::btf::Member<'_>) -> Result<Option<Value>, TypeError> {
        let (stripped_id, stripped) = self.strip(member.type_id)?;
        let anonymous = member.name.is_empty();
        if anonymous && !matches!(stripped, BtfType::Struct(_) | BtfType::Union(_)) {
            return Ok(None);
        }
        // A bitfield: declared in a kind_flag record, or (older BTF) an INT whose value
        // does not fill its storage.
        let bitfield = match (member.bitfield_bits, stripped) {
            (
                0,
                BtfType::Int {
                    size_bytes,
                    bit_offset,
                    bits,
                    ..
                },
            ) if *bits > 0
                && (u64::from(*bits) != u64::from(*size_bytes) * 8 || *bit_offset != 0) =>
            {
                Some((
                    *bits,
                    member.bit_offset.saturating_add(u32::from(*bit_offset)),
                ))
            }
            (0, _) => None,
            (bits, _) => Some((bits, member.bit_offset)),
        };
        if let Some((bits, bit_offset)) = bitfield {
            let inner = match stripped {
                BtfType::Int { .. } => base(self.name(stripped_id)),
                BtfType::Enum { .. } => json!({"kind": "enum", "name": self.name(stripped_id)}),
                other => {
                    return Err(TypeError::BadBitfield {
                        type_id: stripped_id.0,
                        kind: other.kind_name(),
                    })
                }
            };
            // Byte-granular like dwarf2json: Volatility reads the storage type at
            // `offset` and takes `bit_length` bits from `bit_position` up. BTF counts
            // bits in memory order, which is that only on little-endian kernels.
            return Ok(Some(json!({
                "offset": bit_offset / 8,
                "type": {
                    "kind": "bitfield",
                    "bit_position": bit_offset % 8,
                    "bit_length": bits,
                    "type": inner,
                },
            })));
        }
        let mut field = json!({
            "offset": member.bit_offset / 8,
            "type": self.describe(member.type_id)?,
        });
        if anonymous {
            if let Some(map) = field.as_object_mut() {
                map.insert("anonymous".into(), Value::Bool(true));
            }
        }
        Ok(Some(field))
    }
}

/// The ISF kind of an INT: `bool` and `char` as dwarf2json tells them from DWARF
/// encodings; BTF's CHAR bit is rarely set, so the C names count too.
fn int_kind(name: &str, encoding: IntEncoding) -> &'static str {
    if encoding.is_bool() {
        "bool"
    } else if encoding.is_char() || matches!(name, "char" | "signed char" | "unsigned char") {
        "char"
    } else {
        "int"
    }
}
