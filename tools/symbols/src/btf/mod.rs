//! BPF Type Format (BTF): the compact C type description the kernel exports at
//! `/sys/kernel/btf/vmlinux`.
//!
//! Layout (kernel `Documentation/bpf/btf.rst`, section 2 "BTF Type and String Encoding"):
//! a 24-byte `btf_header` (magic `0xEB9F`, version 1, flags, `hdr_len`, then the type and
//! string sections as offset/length pairs relative to the end of the header), a type
//! section of variable-length `btf_type` records whose implicit ids count up from 1
//! (id 0 is `void`), and a section of NUL-terminated names.
//!
//! The blob comes from evidence, so [`Btf::parse`] trusts nothing: every section and
//! record is bounds-checked before it is read, vectors grow only by records actually
//! present, and every type id a record refers to is checked to exist. Cycles among valid
//! ids (a typedef naming itself, a pointer to itself) are legal here and left to the
//! consumers, which bound their walks (see [`crate::isf`]).
//!
//! ```
//! let btf = vestige_symbols::btf::Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0,
//!     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
//! assert_eq!(btf.type_count(), 1); // just void
//! ```

mod parse;

#[cfg(test)]
pub(crate) mod builder;
#[cfg(test)]
pub(crate) mod tests;

/// A BTF type id: the 1-based position of a record in the type section; 0 is `void`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypeId(pub u32);

impl TypeId {
    /// The implicit `void` type.
    pub const VOID: TypeId = TypeId(0);
}

impl std::fmt::Display for TypeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Byte order of the blob, told by how the magic reads; every field uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Magic bytes `9f eb`.
    Little,
    /// Magic bytes `eb 9f`.
    Big,
}

/// `BTF_INT_*` encoding bits of an `INT` record, kept raw (unknown bits are not dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntEncoding(pub u8);

impl IntEncoding {
    /// `BTF_INT_SIGNED`.
    pub fn is_signed(self) -> bool {
        self.0 & 1 != 0
    }
    /// `BTF_INT_CHAR`: only a pretty-printing hint; pahole rarely sets it.
    pub fn is_char(self) -> bool {
        self.0 & 2 != 0
    }
    /// `BTF_INT_BOOL`.
    pub fn is_bool(self) -> bool {
        self.0 & 4 != 0
    }
}

/// One struct or union member (`btf_member`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// Empty for an anonymous member (an unnamed struct or union inside).
    pub name: &'a str,
    pub type_id: TypeId,
    /// Offset from the start of the enclosing type, in bits.
    pub bit_offset: u32,
    /// Bitfield width from a `kind_flag` record (bits 24..31 of the offset word); 0 when
    /// the record has no `kind_flag` or the member is not a bitfield. Without `kind_flag`
    /// a bitfield is told by its `INT` type's `bits`/`offset` instead.
    pub bitfield_bits: u8,
}

/// A struct or union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composite<'a> {
    /// Empty for an anonymous type.
    pub name: &'a str,
    pub size_bytes: u32,
    pub members: Vec<Member<'a>>,
}

/// An enumerator's value: `ENUM`/`ENUM64` say by `kind_flag` whether they are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnumValue {
    Signed(i64),
    Unsigned(u64),
}

/// One enumerator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enumerator<'a> {
    pub name: &'a str,
    pub value: EnumValue,
}

/// A function parameter (`btf_param`); a last one with type 0 marks varargs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    pub type_id: TypeId,
}

/// A variable placed in a data section (`btf_var_secinfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionVar {
    /// The `VAR` record.
    pub type_id: TypeId,
    /// Offset in the section, in bytes.
    pub offset: u32,
    pub size_bytes: u32,
}

/// One BTF type record, decoded; names borrow from the string section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfType<'a> {
    /// Id 0: never stored in the blob.
    Void,
    Int {
        name: &'a str,
        size_bytes: u32,
        encoding: IntEncoding,
        /// Bit offset of the value inside the storage (old-style bitfields).
        bit_offset: u8,
        bits: u8,
    },
    Ptr {
        target: TypeId,
    },
    Array {
        element: TypeId,
        index: TypeId,
        count: u32,
    },
    Struct(Composite<'a>),
    Union(Composite<'a>),
    Enum {
        name: &'a str,
        size_bytes: u32,
        /// `kind_flag`: the values are signed.
        signed: bool,
        values: Vec<Enumerator<'a>>,
    },
    /// A forward declaration: `struct foo;` or, with `is_union`, `union foo;`.
    Fwd {
        name: &'a str,
        is_union: bool,
    },
    Typedef {
        name: &'a str,
        target: TypeId,
    },
    Volatile {
        target: TypeId,
    },
    Const {
        target: TypeId,
    },
    Restrict {
        target: TypeId,
    },
    Func {
        name: &'a str,
        proto: TypeId,
        /// `vlen` of a FUNC: 0 static, 1 global, 2 extern.
        linkage: u16,
    },
    FuncProto {
        return_type: TypeId,
        params: Vec<Param<'a>>,
    },
    Var {
        name: &'a str,
        target: TypeId,
        /// 0 static, 1 global, 2 extern.
        linkage: u32,
    },
    Datasec {
        name: &'a str,
        size_bytes: u32,
        vars: Vec<SectionVar>,
    },
    Float {
        name: &'a str,
        size_bytes: u32,
    },
    DeclTag {
        name: &'a str,
        target: TypeId,
        /// -1 tags the target itself, else a member or parameter index.
        component_index: i32,
    },
    TypeTag {
        name: &'a str,
        target: TypeId,
    },
}

impl BtfType<'_> {
    /// The spec's name for the record's kind (`BTF_KIND_*` without the prefix).
    pub fn kind_name(&self) -> &'static str {
        match self {
            BtfType::Void => "VOID",
            BtfType::Int { .. } => "INT",
            BtfType::Ptr { .. } => "PTR",
            BtfType::Array { .. } => "ARRAY",
            BtfType::Struct(_) => "STRUCT",
            BtfType::Union(_) => "UNION",
            BtfType::Enum { .. } => "ENUM",
            BtfType::Fwd { .. } => "FWD",
            BtfType::Typedef { .. } => "TYPEDEF",
            BtfType::Volatile { .. } => "VOLATILE",
            BtfType::Const { .. } => "CONST",
            BtfType::Restrict { .. } => "RESTRICT",
            BtfType::Func { .. } => "FUNC",
            BtfType::FuncProto { .. } => "FUNC_PROTO",
            BtfType::Var { .. } => "VAR",
            BtfType::Datasec { .. } => "DATASEC",
            BtfType::Float { .. } => "FLOAT",
            BtfType::DeclTag { .. } => "DECL_TAG",
            BtfType::TypeTag { .. } => "TYPE_TAG",
        }
    }

    /// Calls `f` with every type id this record refers to.
    pub fn for_each_reference(&self, mut f: impl FnMut(TypeId)) {
        match self {
            BtfType::Void
            | BtfType::Int { .. }
            | BtfType::Enum { .. }
            | BtfType::Fwd { .. }
            | BtfType::Float { .. } => {}
            BtfType::Ptr { target }
            | BtfType::Typedef { target, .. }
            | BtfType::Volatile { target }
            | BtfType::Const { target }
            | BtfType::Restrict { target }
            | BtfType::Var { target, .. }
            | BtfType::DeclTag { target, .. }
            | BtfType::TypeTag { target, .. } => f(*target),
            BtfType::Func { proto, .. } => f(*proto),
            BtfType::Array { element, index, .. } => {
                f(*element);
                f(*index);
            }
            BtfType::Struct(c) | BtfType::Union(c) => c.members.iter().for_each(|m| f(m.type_id)),
            BtfType::FuncProto {
                return_type,
                params,
            } => {
                f(*return_type);
                params.iter().for_each(|p| f(p.type_id));
            }
            BtfType::Datasec { vars, .. } => vars.iter().for_each(|v| f(v.type_id)),
        }
    }
}

/// A parsed BTF blob.
#[derive(Debug, Clone)]
pub struct Btf<'a> {
    endian: Endian,
    /// `types[n]` is type id `n`; `types[0]` is [`BtfType::Void`].
    types: Vec<BtfType<'a>>,
    /// Absolute byte offset of each record in the blob (0 for void), for error messages.
    record_offsets: Vec<usize>,
}

impl<'a> Btf<'a> {
    /// Parses a complete (base, not split) BTF blob. Errors name the absolute byte offset
    /// and, inside the type section, the type id.
    pub fn parse(data: &'a [u8]) -> Result<Btf<'a>, BtfError> {
        parse::parse(data)
    }

    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// Number of type ids, counting `void`.
    pub fn type_count(&self) -> usize {
        self.types.len()
    }

    /// The record of `id`, if it exists.
    pub fn get(&self, id: TypeId) -> Option<&BtfType<'a>> {
        self.types.get(usize::try_from(id.0).ok()?)
    }

    /// Absolute byte offset of the record of `id` in the blob (0 for void).
    pub fn record_offset(&self, id: TypeId) -> Option<usize> {
        self.record_offsets
            .get(usize::try_from(id.0).ok()?)
            .copied()
    }

    /// Every type with its id, `void` first.
    pub fn iter(&self) -> impl Iterator<Item = (TypeId, &BtfType<'a>)> {
        // Ids fit u32: the parser refuses more types than that.
        (0u32..).map(TypeId).zip(self.types.iter())
    }
}

/// Why a BTF blob was refused. Offsets are absolute bytes from the start of the blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    #[error("BTF header at byte 0: blob has {len} bytes, a header needs {needed}")]
    TooShort { len: usize, needed: usize },
    #[error("BTF header at byte 0: bad magic {found:02x?}, expected [9f, eb] or [eb, 9f]")]
    BadMagic { found: [u8; 2] },
    #[error("BTF header at byte 2: version {found}, expected 1")]
    BadVersion { found: u8 },
    #[error("BTF header at byte 4: hdr_len {found} outside 24..={data_len}")]
    BadHeaderLength { found: u32, data_len: usize },
    #[error("BTF {section} section: bytes {start}..{end} exceed the {data_len}-byte blob")]
    SectionOutOfBounds {
        section: &'static str,
        start: u64,
        end: u64,
        data_len: usize,
    },
    #[error("BTF string section at byte {offset}: first byte {found:#04x}, expected NUL")]
    StringSectionStart { offset: usize, found: u8 },
    #[error("BTF type {type_id} at byte {offset}: {needed} bytes needed, {available} left")]
    Truncated {
        type_id: u32,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("BTF type {type_id} at byte {offset}: unknown kind {kind}")]
    UnknownKind {
        type_id: u32,
        offset: usize,
        kind: u8,
    },
    #[error("BTF type {type_id} at byte {offset}: name offset {name_offset} {reason}")]
    BadName {
        type_id: u32,
        offset: usize,
        name_offset: u32,
        reason: &'static str,
    },
    #[error("BTF type {type_id} at byte {offset}: refers to type {target}, last type is {last}")]
    DanglingReference {
        type_id: u32,
        offset: usize,
        target: u32,
        last: u32,
    },
    #[error("BTF type section at byte {offset}: more than u32::MAX types")]
    TooManyTypes { offset: usize },
}
