use super::builder::{Builder, BOOL, SIGNED};
use super::*;

/// One record of every kind, in id order 1..=21.
pub(crate) fn every_kind(b: &mut Builder) {
    let int = b.int("int", 4, SIGNED, 0, 32); // 1
    let ptr = b.ptr(int); // 2
    let arr = b.array(int, int, 16); // 3
    b.composite(false, "s", 8, true, &[("a", int, 0, 3), ("", 6, 32, 0)]); // 4
    b.union_("u", 4, &[("x", int, 0), ("p", ptr, 0)]); // 5
    b.struct_("", 4, &[("inner", int, 0)]); // 6: anonymous
    b.enum32("e", 4, true, &[("NEG", -1), ("ONE", 1)]); // 7
    b.fwd("later", true); // 8
    b.typedef("int_t", int); // 9
    b.modifier(9, "", int); // 10 volatile
    b.modifier(10, "", 9); // 11 const
    b.modifier(11, "", ptr); // 12 restrict
    let proto = b.func_proto(int, &[("x", int), ("", 0)]); // 13
    b.func("f", proto); // 14
    let var = b.var("v", arr); // 15
    b.datasec(".data..percpu", 64, &[(var, 0, 64)]); // 16
    b.float("double", 8); // 17
    b.decl_tag("tag", 4, -1); // 18
    b.modifier(18, "user", ptr); // 19 type tag
    b.enum64("e64", 8, false, &[("BIG", u64::MAX)]); // 20
    b.int("_Bool", 1, BOOL, 0, 8); // 21
}

#[test]
fn parses_every_kind() {
    let mut b = Builder::new();
    every_kind(&mut b);
    let blob = b.finish();
    let btf = Btf::parse(&blob).expect("valid blob");
    assert_eq!(btf.type_count(), 22);
    assert_eq!(btf.endian(), Endian::Little);
    let kinds: Vec<_> = btf.iter().map(|(_, t)| t.kind_name()).collect();
    assert_eq!(
        kinds,
        [
            "VOID",
            "INT",
            "PTR",
            "ARRAY",
            "STRUCT",
            "UNION",
            "STRUCT",
            "ENUM",
            "FWD",
            "TYPEDEF",
            "VOLATILE",
            "CONST",
            "RESTRICT",
            "FUNC_PROTO",
            "FUNC",
            "VAR",
            "DATASEC",
            "FLOAT",
            "DECL_TAG",
            "TYPE_TAG",
            "ENUM",
            "INT"
        ]
    );
    let Some(BtfType::Struct(s)) = btf.get(TypeId(4)) else {
        panic!("struct expected");
    };
    assert_eq!(s.name, "s");
    assert_eq!(s.members.len(), 2);
    assert_eq!(
        s.members.first().map(|m| (m.bit_offset, m.bitfield_bits)),
        Some((0, 3))
    );
    assert_eq!(
        s.members.get(1).map(|m| (m.name, m.bit_offset)),
        Some(("", 32))
    );
    let Some(BtfType::Enum { values, signed, .. }) = btf.get(TypeId(7)) else {
        panic!("enum expected");
    };
    assert!(signed);
    assert_eq!(values.first().map(|v| v.value), Some(EnumValue::Signed(-1)));
    let Some(BtfType::Enum { values, .. }) = btf.get(TypeId(20)) else {
        panic!("enum64 expected");
    };
    assert_eq!(
        values.first().map(|v| v.value),
        Some(EnumValue::Unsigned(u64::MAX))
    );
    assert_eq!(
        btf.get(TypeId(8)),
        Some(&BtfType::Fwd {
            name: "later",
            is_union: true
        })
    );
    assert_eq!(
        btf.get(TypeId(18)),
        Some(&BtfType::DeclTag {
            name: "tag",
            target: TypeId(4),
            component_index: -1
        })
    );
    let Some(BtfType::Int { encoding, .. }) = btf.get(TypeId(21)) else {
        panic!("int expected");
    };
    assert!(encoding.is_bool() && !encoding.is_signed());
    assert_eq!(btf.record_offset(TypeId(1)), Some(24));
    assert_eq!(btf.get(TypeId(22)), None);
}

#[test]
fn big_endian_blob_parses_the_same() {
    let mut le = Builder::new();
    let mut be = Builder::big_endian();
    every_kind(&mut le);
    every_kind(&mut be);
    let (le_blob, be_blob) = (le.finish(), be.finish());
    let a = Btf::parse(&le_blob).expect("little");
    let b = Btf::parse(&be_blob).expect("big");
    assert_eq!(b.endian(), Endian::Big);
    assert!(a.iter().map(|(_, t)| t).eq(b.iter().map(|(_, t)| t)));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let mut b = Builder::new();
    every_kind(&mut b);
    let blob = b.finish();
    for len in 0..blob.len() {
        let cut = blob.get(..len).expect("in range");
        assert!(Btf::parse(cut).is_err(), "parsed a blob cut to {len} bytes");
    }
}

#[test]
fn header_errors_name_the_field() {
    let mut blob = Builder::new().finish();
    assert_eq!(
        Btf::parse(blob.get(..10).expect("short")).err(),
        Some(BtfError::TooShort {
            len: 10,
            needed: 24
        })
    );
    blob.splice(0..2, [0x12, 0x34]);
    assert_eq!(
        Btf::parse(&blob).err(),
        Some(BtfError::BadMagic {
            found: [0x12, 0x34]
        })
    );
    blob.splice(0..3, [0x9f, 0xeb, 2]);
    assert_eq!(
        Btf::parse(&blob).err(),
        Some(BtfError::BadVersion { found: 2 })
    );
    blob.splice(2..8, [1, 0, 200, 0, 0, 0]);
    assert_eq!(
        Btf::parse(&blob).err(),
        Some(BtfError::BadHeaderLength {
            found: 200,
            data_len: 25
        })
    );
}

#[test]
fn section_past_the_end_is_refused() {
    let mut blob = Builder::new().finish();
    // str_len (bytes 20..24) = 1000.
    blob.splice(20..24, 1000u32.to_le_bytes());
    assert_eq!(
        Btf::parse(&blob).err(),
        Some(BtfError::SectionOutOfBounds {
            section: "string",
            start: 24,
            end: 1024,
            data_len: 25
        })
    );
}

#[test]
fn dangling_reference_names_the_record() {
    let mut b = Builder::new();
    b.ptr(7);
    let blob = b.finish();
    assert_eq!(
        Btf::parse(&blob).err(),
        Some(BtfError::DanglingReference {
            type_id: 1,
            offset: 24,
            target: 7,
            last: 1
        })
    );
}

#[test]
fn unknown_kind_and_bad_names_are_errors() {
    let mut b = Builder::new();
    b.record("x", 25, 0, false, 0);
    assert!(matches!(
        Btf::parse(&b.finish()),
        Err(BtfError::UnknownKind {
            type_id: 1,
            offset: 24,
            kind: 25
        })
    ));
    let mut b = Builder::new();
    b.int("int", 4, SIGNED, 0, 32);
    let mut blob = b.finish();
    // name_off of type 1 (bytes 24..28) points past the 5-byte string section.
    blob.splice(24..28, 99u32.to_le_bytes());
    assert!(matches!(
        Btf::parse(&blob),
        Err(BtfError::BadName {
            type_id: 1,
            name_offset: 99,
            ..
        })
    ));
    // A name without its NUL: drop the section's last byte.
    let mut b = Builder::new();
    b.int("int", 4, SIGNED, 0, 32);
    let mut blob = b.finish();
    blob.pop();
    blob.splice(20..24, 4u32.to_le_bytes());
    assert!(matches!(
        Btf::parse(&blob),
        Err(BtfError::BadName {
            reason: "runs off the string section without a NUL",
            ..
        })
    ));
}

#[test]
fn self_referencing_types_parse() {
    // Cycles are valid BTF as far as ids go; walkers must bound them (see isf tests).
    let mut b = Builder::new();
    b.typedef("loop", 1);
    b.ptr(2);
    let blob = b.finish();
    let btf = Btf::parse(&blob).expect("cycles are not a parse error");
    assert_eq!(btf.type_count(), 3);
}
