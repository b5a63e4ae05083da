//! `btf::Btf::parse` and, when it accepts the bytes, `isf::build` over them (vestige-symbols).
//!
//! Invariants when the blob parses: there are no more types than 12-byte records fit in
//! it, record offsets rise inside the blob, and every type id a record names exists. The
//! ISF then always builds (with a fixed, complete kallsyms and banner nothing else can
//! fail), nothing is followed forever (typedef/pointer cycles are cut), and what
//! Volatility dereferences exists: the `void` and `pointer` base types, every enum's base
//! type, the user type of every anonymous member.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_symbols::btf::{Btf, TypeId};
use vestige_symbols::isf::{build, IsfOptions};
use vestige_symbols::KernelIdentity;

const KALLSYMS: &str = "ffffffff83e00000 T _text\nffffffff84e00100 R linux_banner\n\
ffffffff85000000 D init_task\nffffffff85010000 D init_mm\nffffffff85020000 d init_files\n\
ffffffff84c00000 D init_top_pgt\n0000000000020000 D runqueues\nffffffff85030000 d tk_core\n";

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data) else {
        return;
    };
    assert!(btf.type_count() <= data.len() / 12 + 1);
    let mut last_offset = 0;
    for (id, ty) in btf.iter().skip(1) {
        let offset = btf.record_offset(id).expect("every type has an offset");
        assert!(offset > last_offset || id == TypeId(1));
        assert!(offset + 12 <= data.len());
        last_offset = offset;
        ty.for_each_reference(|target| assert!(btf.get(target).is_some(), "{id} -> {target}"));
    }

    let identity = KernelIdentity {
        banner: "Linux version 6.1.0-48-amd64 (fuzz@vestige) #1\n".into(),
        release: "6.1.0-48-amd64".into(),
    };
    let isf = build(data, KALLSYMS, &identity, &IsfOptions::default()).expect("parsed BTF builds");
    let json = &isf.json;
    let base_types = json["base_types"].as_object().expect("base_types");
    let user_types = json["user_types"].as_object().expect("user_types");
    assert!(base_types.contains_key("void") && base_types.contains_key("pointer"));
    for (name, e) in json["enums"].as_object().expect("enums") {
        let base = e["base"].as_str().expect("enum base");
        assert!(base_types.contains_key(base), "enum {name}: base {base}");
    }
    for (name, ut) in user_types {
        for (field, f) in ut["fields"].as_object().expect("fields") {
            if f.get("anonymous").is_some() {
                let inner = f["type"]["name"].as_str().expect("anonymous type name");
                assert!(user_types.contains_key(inner), "{name}.{field}: {inner}");
            }
        }
    }
    assert_eq!(
        json["symbols"]["_text"]["address"],
        0xffff_ffff_8100_0000u64
    );
    assert!(!json.to_string().is_empty());
});
