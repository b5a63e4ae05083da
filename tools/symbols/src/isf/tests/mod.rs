use serde_json::{json, Value};

use super::*;
use crate::btf::builder::{Builder, BOOL, SIGNED};

mod symbols;

const BANNER: &str = "Linux version 6.1.0-48-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP PREEMPT_DYNAMIC Debian 6.1.170-1\n";

fn identity() -> KernelIdentity {
    KernelIdentity {
        banner: BANNER.into(),
        release: "6.1.0-48-amd64".into(),
    }
}

/// kallsyms of a kernel slid by 0x2e00000 (a typical KASLR offset).
const KALLSYMS: &str = "\
ffffffff83e00000 T _text
ffffffff84e00100 R linux_banner
ffffffff85000000 D init_task
ffffffff85010000 D init_mm
ffffffff85020000 d init_files
ffffffff84c00000 D init_top_pgt
0000000000020000 D runqueues
ffffffff85030000 d tk_core
ffffffff83e01000 t helper
ffffffff83e02000 T helper
ffffffff83e03000 t helper
ffffffffc0201000 t ftrace_trampoline\t[__builtin__ftrace]
";

/// A miniature kernel: the types the stackers and linux.pslist touch, plus one of each
/// shape the converter handles.
pub(crate) fn kernel_btf() -> Vec<u8> {
    let mut b = Builder::new();
    let int = b.int("int", 4, SIGNED, 0, 32);
    let uint = b.int("unsigned int", 4, 0, 0, 32);
    let char_ = b.int("char", 1, SIGNED, 0, 8);
    let ulong = b.int("long unsigned int", 8, 0, 0, 64);
    b.int("_Bool", 1, BOOL, 0, 8);
    b.float("double", 8);
    let pid_t = b.typedef("pid_t", int);
    let kernel_pid_t = b.typedef("__kernel_pid_t", pid_t);
    let list_head = b.next_id();
    b.struct_(
        "list_head",
        16,
        &[("next", list_head + 1, 0), ("prev", list_head + 1, 64)],
    );
    let list_ptr = b.ptr(list_head);
    let comm = b.array(char_, int, 16);
    let mm = b.fwd("mm_struct", false);
    let mm_ptr = b.ptr(mm);
    let anon_union = b.union_("", 8, &[("mm", mm_ptr, 0), ("raw", ulong, 0)]);
    let flags = b.enum32(
        "task_flags",
        4,
        false,
        &[("TF_A", 1), ("TF_HIGH", i32::MIN)],
    );
    let packed = b.enum32("", 1, false, &[("P0", 0)]);
    let uchar = b.int("unsigned char", 1, 0, 0, 8);
    let volatile_long = b.modifier(9, "", ulong);
    let const_tagged = b.modifier(10, "", list_ptr);
    let tagged = b.modifier(18, "rcu", const_tagged);
    let task = b.next_id() + 3;
    let task_ptr = b.ptr(task);
    let proto = b.func_proto(int, &[("t", task_ptr)]);
    let fn_ptr = b.ptr(proto);
    assert_eq!(b.next_id(), task);
    b.composite(
        false,
        "task_struct",
        96,
        true,
        &[
            ("__state", volatile_long, 0, 0),
            ("pid", kernel_pid_t, 64, 0),
            ("tgid", pid_t, 96, 0),
            ("tasks", list_head, 128, 0),
            ("", anon_union, 256, 0),
            ("comm", comm, 320, 0),
            ("in_execve", uint, 448, 1),
            ("in_iowait", uint, 449, 1),
            ("kind", flags, 450, 3),
            ("packed", packed, 456, 0),
            ("real_parent", task_ptr, 512, 0),
            ("exit", fn_ptr, 576, 0),
            ("rcu_list", tagged, 640, 0),
            ("", uint, 704, 5), // unnamed padding bitfield: not a field
        ],
    );
    // Pre-kind_flag bitfields: the INT says how many bits and where.
    let three_bits = b.int("unsigned int", 4, 0, 2, 3);
    b.struct_("old_bits", 4, &[("lo", three_bits, 8), ("whole", uint, 0)]);
    let runqueue = b.struct_("rq", 16, &[("cpu", int, 0)]);
    let var = b.var("runqueues", runqueue);
    b.datasec(".data..percpu", 16, &[(var, 0x20000, 16)]);
    let tk = b.struct_("timekeeper", 8, &[("xtime_sec", ulong, 0)]);
    b.struct_("", 16, &[("seq", uint, 0), ("timekeeper", tk, 64)]);
    let atomic = b.struct_("", 4, &[("counter", int, 0)]);
    b.typedef("atomic_t", atomic);
    b.struct_("files_struct", 8, &[("count", atomic, 0)]);
    b.decl_tag("kfunc", task, -1);
    let _ = uchar;
    // Typedefs of named structs are aliases; so is the second typedef of one
    // (deduplicated) empty anonymous struct.
    let spinlock = b.struct_("spinlock", 4, &[("val", uint, 0)]);
    let spinlock_t = b.typedef("spinlock_t", spinlock);
    let empty = b.struct_("", 0, &[]);
    let map_p = b.typedef("lockdep_map_p", empty);
    let tracker = b.typedef("netdevice_tracker", empty);
    let clash = b.typedef("spinlock", spinlock); // same name as the tag: no alias
    b.struct_(
        "net_device",
        8,
        &[
            ("lock", spinlock_t, 0),
            ("map", map_p, 32),
            ("tracker", tracker, 32),
            ("raw", clash, 32),
        ],
    );
    b.finish()
}

fn isf() -> Isf {
    build(&kernel_btf(), KALLSYMS, &identity(), &IsfOptions::default()).expect("builds")
}

fn field<'v>(isf: &'v Value, ty: &str, name: &str) -> &'v Value {
    &isf["user_types"][ty]["fields"][name]
}

#[test]
fn task_struct_fields_have_dwarf2json_shapes() {
    let Isf { json, report } = isf();
    assert!(
        report.skipped_members.is_empty(),
        "{:?}",
        report.skipped_members
    );
    let task = &json["user_types"]["task_struct"];
    assert_eq!(task["kind"], "struct");
    assert_eq!(task["size"], 96);
    // Typedef chains and qualifiers vanish into the base type.
    assert_eq!(
        field(&json, "task_struct", "pid"),
        &json!({"offset": 8, "type": {"kind": "base", "name": "int"}})
    );
    assert_eq!(field(&json, "task_struct", "tgid")["offset"], 12);
    assert_eq!(
        field(&json, "task_struct", "__state")["type"],
        json!({"kind": "base", "name": "long unsigned int"})
    );
    assert_eq!(
        field(&json, "task_struct", "tasks")["type"],
        json!({"kind": "struct", "name": "list_head"})
    );
    assert_eq!(
        field(&json, "task_struct", "comm"),
        &json!({"offset": 40, "type": {"kind": "array", "count": 16, "subtype": {"kind": "base", "name": "char"}}})
    );
    assert_eq!(
        field(&json, "task_struct", "real_parent")["type"],
        json!({"kind": "pointer", "subtype": {"kind": "struct", "name": "task_struct"}})
    );
    assert_eq!(
        field(&json, "task_struct", "exit")["type"],
        json!({"kind": "pointer", "subtype": {"kind": "function"}})
    );
    // const + type tag stripped.
    assert_eq!(
        field(&json, "task_struct", "rcu_list")["type"],
        json!({"kind": "pointer", "subtype": {"kind": "struct", "name": "list_head"}})
    );
    let fields = task["fields"].as_object().expect("fields");
    assert_eq!(fields.len(), 13, "{:?}", fields.keys().collect::<Vec<_>>());
}

#[test]
fn bitfields_are_byte_granular_like_dwarf2json() {
    let json = isf().json;
    let bit = |pos: u32, len: u32, inner: Value| json!({"kind": "bitfield", "bit_position": pos, "bit_length": len, "type": inner});
    let uint = json!({"kind": "base", "name": "unsigned int"});
    assert_eq!(
        field(&json, "task_struct", "in_execve"),
        &json!({"offset": 56, "type": bit(0, 1, uint.clone())})
    );
    assert_eq!(
        field(&json, "task_struct", "in_iowait"),
        &json!({"offset": 56, "type": bit(1, 1, uint.clone())})
    );
    assert_eq!(
        field(&json, "task_struct", "kind"),
        &json!({"offset": 56, "type": bit(2, 3, json!({"kind": "enum", "name": "task_flags"}))})
    );
    // Old style: member at bit 8, INT offset 2 → bit 10 = byte 1, bit 2.
    assert_eq!(
        field(&json, "old_bits", "lo"),
        &json!({"offset": 1, "type": bit(2, 3, uint)})
    );
    assert_eq!(field(&json, "old_bits", "whole")["type"]["kind"], "base");
}

#[test]
fn anonymous_members_and_typedef_named_structs() {
    let json = isf().json;
    let anon = field(&json, "task_struct", "unnamed_field_0");
    assert_eq!(anon["anonymous"], true);
    assert_eq!(anon["offset"], 32);
    let union_name = anon["type"]["name"].as_str().expect("name");
    assert_eq!(anon["type"]["kind"], "union");
    assert!(union_name.starts_with("unnamed_union_"), "{union_name}");
    let union = &json["user_types"][union_name];
    assert_eq!(union["kind"], "union");
    assert_eq!(
        union["fields"]["mm"]["type"]["subtype"],
        json!({"kind": "struct", "name": "mm_struct"})
    );
    // typedef struct { int counter; } atomic_t;
    assert_eq!(
        json["user_types"]["atomic_t"]["fields"]["counter"]["offset"],
        0
    );
    assert_eq!(
        field(&json, "files_struct", "count")["type"],
        json!({"kind": "struct", "name": "atomic_t"})
    );
}

#[test]
fn typedefs_of_structs_are_aliases_but_members_use_tags() {
    let json = isf().json;
    let ty = |f: &str| field(&json, "net_device", f)["type"].clone();
    assert_eq!(ty("lock"), json!({"kind": "struct", "name": "spinlock"}));
    assert_eq!(ty("raw"), json!({"kind": "struct", "name": "spinlock"}));
    // The anonymous struct is named after its first typedef.
    assert_eq!(
        ty("map"),
        json!({"kind": "struct", "name": "lockdep_map_p"})
    );
    assert_eq!(
        ty("tracker"),
        json!({"kind": "struct", "name": "lockdep_map_p"})
    );
    let user = &json["user_types"];
    assert_eq!(user["spinlock_t"], user["spinlock"]);
    assert_eq!(user["netdevice_tracker"], user["lockdep_map_p"]);
    assert_eq!(user["netdevice_tracker"]["size"], 0);
}

#[test]
fn base_types_and_enums() {
    let json = isf().json;
    let base = &json["base_types"];
    assert_eq!(
        base["pointer"],
        json!({"kind": "int", "size": 8, "signed": false, "endian": "little"})
    );
    assert_eq!(
        base["void"],
        json!({"kind": "void", "size": 0, "signed": false, "endian": "little"})
    );
    assert_eq!(
        base["char"],
        json!({"kind": "char", "size": 1, "signed": true, "endian": "little"})
    );
    assert_eq!(base["unsigned char"]["kind"], "char");
    assert_eq!(base["_Bool"]["kind"], "bool");
    assert_eq!(
        base["double"],
        json!({"kind": "float", "size": 8, "signed": true, "endian": "little"})
    );
    // The first "unsigned int" (32 bits) wins over the 3-bit carrier.
    assert_eq!(base["unsigned int"]["size"], 4);
    let flags = &json["enums"]["task_flags"];
    assert_eq!(flags["base"], "unsigned int");
    assert_eq!(flags["constants"]["TF_HIGH"], 0x8000_0000u64);
    let packed = json["enums"]
        .as_object()
        .and_then(|e| e.iter().find(|(k, _)| k.starts_with("unnamed_enum_")))
        .map(|(_, v)| v.clone())
        .expect("anonymous enum");
    assert_eq!(packed["base"], "unsigned char");
}

#[test]
fn cycles_and_non_types_are_skipped_not_followed_forever() {
    let mut b = Builder::new();
    let int = b.int("int", 4, SIGNED, 0, 32);
    let loop_id = b.next_id();
    b.typedef("loop", loop_id); // typedef naming itself
    let ptr_id = b.next_id();
    b.ptr(ptr_id); // pointer to itself
    let arr_id = b.next_id();
    b.array(arr_id, int, 2); // array of itself
    let var = b.var("v", int);
    b.composite(
        false,
        "victim",
        16,
        true,
        &[
            ("a", loop_id, 0, 0),
            ("b", ptr_id, 0, 0),
            ("c", arr_id, 0, 0),
            ("d", var, 0, 0),
            ("e", int, 0, 0),
            ("f", ptr_id, 32, 4),
        ],
    );
    let isf = build(&b.finish(), KALLSYMS, &identity(), &IsfOptions::default()).expect("builds");
    let fields = isf.json["user_types"]["victim"]["fields"]
        .as_object()
        .expect("fields")
        .clone();
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["e"]);
    let reasons: Vec<String> = isf
        .report
        .skipped_members
        .iter()
        .map(|e| {
            let TypeError::Member { source, .. } = e else {
                panic!("member error expected")
            };
            source.to_string()
        })
        .collect();
    assert_eq!(reasons.len(), 5);
    assert!(
        reasons
            .first()
            .is_some_and(|r| r.contains("chain of more than 64")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .get(3)
            .is_some_and(|r| r.contains("VAR record is not a data type")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .get(4)
            .is_some_and(|r| r.contains("bitfield of a PTR")),
        "{reasons:?}"
    );
}

#[test]
fn truncated_btf_never_panics() {
    let blob = kernel_btf();
    for len in 0..blob.len() {
        let cut = blob.get(..len).expect("in range");
        assert!(
            build(cut, KALLSYMS, &identity(), &IsfOptions::default()).is_err(),
            "cut at {len}"
        );
    }
}

#[test]
fn big_endian_btf_says_so() {
    let mut b = Builder::big_endian();
    b.int("int", 4, SIGNED, 0, 32);
    let isf = build(&b.finish(), KALLSYMS, &identity(), &IsfOptions::default()).expect("builds");
    assert_eq!(isf.json["base_types"]["int"]["endian"], "big");
}

/// Writes the fuzz seeds: `cargo test -p vestige-symbols -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes fuzz/seeds/btf in the source tree"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/btf");
    std::fs::create_dir_all(&dir).expect("seed dir");
    let mut every = Builder::new();
    crate::btf::tests::every_kind(&mut every);
    let mut big = Builder::big_endian();
    crate::btf::tests::every_kind(&mut big);
    for (name, blob) in [
        ("kernel.btf", kernel_btf()),
        ("every-kind.btf", every.finish()),
        ("every-kind-be.btf", big.finish()),
    ] {
        std::fs::write(dir.join(name), blob).expect("seed written");
    }
}
