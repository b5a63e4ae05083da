//! The ISF `symbols` table: kallsyms addresses moved back to link time, a type where one is
//! known, and `linux_banner` with the exact bytes Volatility scans memory for.
//!
//! **Addresses.** ISF holds link-time addresses, as dwarf2json copies them from vmlinux or
//! System.map. Volatility adds the KASLR shift itself: `LinuxIntelVMCOREINFOStacker`
//! (`automagic/linux.py`, stack_order 34, tried first) takes VMCOREINFO's `KERNELOFFSET`
//! as `kernel_virtual_offset`, and `LinuxIntelStacker.find_aslr` derives the shift as
//! `init_task.files - init_files` from the ISF. Runtime addresses would be shifted twice
//! by the first and would tie the ISF to one boot. kallsyms prints runtime addresses, so
//! the kernel offset (`kaslr_offset()` = runtime `_text` - link `_text`) is subtracted
//! from every symbol of the kernel image: from runtime `_text` up to the module area at
//! `0xffffffffc0000000`. Per-CPU offsets (small absolute values) and anything below
//! `_text` are not relocated by the kernel and are kept. Module symbols are dropped: an
//! ISF describes vmlinux only. Checked on Debian's 6.1.0-48-amd64 under QEMU: VMCOREINFO's
//! `KERNELOFFSET` equalled runtime `_text` - [`X86_64_LINK_TEXT`], the ISFs of two boots
//! with different offsets were identical, and `vol linux.pslist` listed the tasks.
//!
//! **Banner.** Volatility picks an ISF by `symbols.linux_banner.constant_data`
//! (`automagic/symbol_cache.py`, `LinuxIdentifier.get_identifier`) and scans memory for
//! those bytes verbatim. dwarf2json stores the whole `linux_banner` array, NUL included
//! (`readELFSymbol` copies the symbol's size), so the bytes are `/proc/version` (built
//! from the same `UTS_*` strings, `init/version-timestamp.c`) plus a NUL.

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::types::Converter;
use super::{BuildReport, Relocation};
use crate::btf::BtfType;
use crate::kallsyms::{KernelSymbol, SymbolList};
use crate::{KernelIdentity, SymbolsError};

/// x86-64 `__START_KERNEL_map`: the kernel image mapping starts here.
const KERNEL_MAP_START: u64 = 0xffff_ffff_8000_0000;
/// x86-64 link address of `_text`: `__START_KERNEL_map` + `CONFIG_PHYSICAL_START`
/// (16 MiB, the default and Debian's).
pub const X86_64_LINK_TEXT: u64 = 0xffff_ffff_8100_0000;
/// x86-64 `MODULES_VADDR`: the image mapping (`KERNEL_IMAGE_SIZE`, 1 GiB) ends here.
const MODULES_START: u64 = 0xffff_ffff_c000_0000;

/// Symbols Volatility's Linux stackers need to find and translate the kernel:
/// `linux_banner` to pick the ISF, `init_task`/`init_mm`/`init_files` in `find_aslr`.
const STACKER_SYMBOLS: [&str; 4] = ["linux_banner", "init_task", "init_mm", "init_files"];
/// One of these gives the page tables (`LinuxIntelStacker.stack`).
const PAGE_TABLE_SYMBOLS: [&str; 3] = ["init_top_pgt", "init_level4_pgt", "swapper_pg_dir"];

/// The C type of a global BTF does not describe (BTF keeps only per-CPU variables).
#[derive(Debug, Clone, Copy)]
enum Known {
    Struct(&'static str),
    PointerToStruct(&'static str),
    Base(&'static str),
    PointerToBase(&'static str),
    ArrayOfStruct(&'static str, u32),
    ArrayOfPointerToStruct(&'static str, u32),
    /// A variable of an anonymous struct type, found by its member names.
    AnonymousStruct(&'static [&'static str]),
}

/// Globals that Volatility's Linux plugins read with `object_from_symbol` (which needs the
/// symbol's type), typed as declared in Linux 6.1 (the same in nearby versions).
const KNOWN: &[(&str, Known)] = &[
    ("init_task", Known::Struct("task_struct")),
    ("init_mm", Known::Struct("mm_struct")),
    ("init_files", Known::Struct("files_struct")),
    ("net_namespace_list", Known::Struct("list_head")),
    ("socket_file_ops", Known::Struct("file_operations")),
    (
        "sockfs_dentry_operations",
        Known::Struct("dentry_operations"),
    ),
    ("modules", Known::Struct("list_head")),
    ("module_kset", Known::PointerToStruct("kset")),
    ("mod_tree", Known::Struct("mod_tree_root")),
    ("prb", Known::PointerToStruct("printk_ringbuffer")),
    ("log_buf", Known::PointerToBase("char")),
    ("log_buf_len", Known::Base("unsigned int")),
    ("cap_last_cap", Known::Base("int")),
    ("vmemmap_base", Known::Base("long unsigned int")),
    ("mem_map", Known::PointerToStruct("page")),
    (
        "keyboard_notifier_list",
        Known::Struct("atomic_notifier_head"),
    ),
    ("tty_drivers", Known::Struct("list_head")),
    ("prog_idr", Known::Struct("idr")),
    ("ftrace_ops_list", Known::PointerToStruct("ftrace_ops")),
    ("ftrace_list_end", Known::Struct("ftrace_ops")),
    ("bpf_kallsyms", Known::Struct("list_head")),
    ("ftrace_mod_maps", Known::Struct("list_head")),
    ("num_registered_fb", Known::Base("int")),
    (
        "registered_fb",
        Known::ArrayOfPointerToStruct("fb_info", 32),
    ),
    ("idt_table", Known::ArrayOfStruct("gate_desc", 256)),
    ("kallsyms_num_syms", Known::Base("unsigned int")),
    // kernel/time/timekeeping.c: static struct { seqcount_raw_spinlock_t seq; struct
    // timekeeper timekeeper; } tk_core; gives process creation times.
    ("tk_core", Known::AnonymousStruct(&["seq", "timekeeper"])),
];

/// The `symbols` table; fills the symbol fields of `report`.
pub(crate) fn build(
    list: &SymbolList<'_>,
    conv: &Converter<'_, '_>,
    user_types: &Map<String, Value>,
    base_types: &Map<String, Value>,
    identity: &KernelIdentity,
    relocation: Relocation,
    report: &mut BuildReport,
) -> Result<Map<String, Value>, SymbolsError> {
    let kernel: Vec<&KernelSymbol<'_>> =
        list.symbols.iter().filter(|s| s.module.is_none()).collect();
    report.module_symbols_ignored = list.symbols.len().saturating_sub(kernel.len());
    if !kernel.is_empty() && kernel.iter().all(|s| s.address == 0) {
        return Err(SymbolsError::AddressesHidden);
    }
    let text = kernel
        .iter()
        .find(|s| s.name == "_text")
        .map(|s| s.address)
        .ok_or(SymbolsError::NoText)?;
    let offset = kernel_offset(text, relocation)?;
    report.runtime_text = text;
    report.kernel_offset = offset;

    // Global beats local, else the first line wins (static names repeat across files).
    let mut chosen: HashMap<&str, &KernelSymbol<'_>> = HashMap::with_capacity(kernel.len());
    for s in kernel {
        let keep_old = chosen
            .get(s.name)
            .is_some_and(|old| old.is_global() || !s.is_global());
        if !keep_old {
            chosen.insert(s.name, s);
        }
    }

    let per_cpu = per_cpu_types(conv);
    let per_cpu_start = chosen.get("__per_cpu_start").map(|s| s.address);
    let mut out = Map::new();
    for (name, s) in &chosen {
        let address = if (text..MODULES_START).contains(&s.address) {
            s.address.checked_sub(offset).unwrap_or(s.address)
        } else {
            s.address
        };
        // Static names repeat: a per-CPU variable's type fits only the symbol at its
        // offset, absolute (x86-64 up to 6.14) or from `__per_cpu_start`.
        let ty = per_cpu
            .get(*name)
            .filter(|(var_offset, _)| {
                s.address == *var_offset
                    || per_cpu_start.and_then(|start| s.address.checked_sub(start))
                        == Some(*var_offset)
            })
            .map(|(_, desc)| desc.clone())
            .or_else(|| known_type(name, conv, user_types, base_types));
        if ty.is_some() {
            report.typed_symbols = report.typed_symbols.saturating_add(1);
        }
        // dwarf2json gives symbols it knows no type for `void`.
        let ty = ty.unwrap_or_else(|| json!({"kind": "base", "name": "void"}));
        out.insert((*name).to_owned(), json!({"address": address, "type": ty}));
    }

    if let Some(Value::Object(banner)) = out.get_mut("linux_banner") {
        let mut bytes = identity.banner.as_bytes().to_vec();
        bytes.push(0);
        let count = bytes.len();
        banner.insert(
            "constant_data".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes)),
        );
        banner.insert(
            "type".into(),
            json!({"kind": "array", "count": count, "subtype": {"kind": "base", "name": "char"}}),
        );
    }

    report.missing_symbols = STACKER_SYMBOLS
        .iter()
        .filter(|n| !out.contains_key(**n))
        .copied()
        .collect();
    if !PAGE_TABLE_SYMBOLS.iter().any(|n| out.contains_key(*n)) {
        report.missing_symbols.push("init_top_pgt");
    }
    report.symbols = out.len();
    Ok(out)
}

/// The KASLR slide to subtract, per `relocation`; see the module docs.
fn kernel_offset(text: u64, relocation: Relocation) -> Result<u64, SymbolsError> {
    match relocation {
        Relocation::None => Ok(0),
        Relocation::KernelOffset(offset) => Ok(offset),
        Relocation::X86_64Text => match text {
            X86_64_LINK_TEXT..MODULES_START => Ok(text - X86_64_LINK_TEXT),
            // Linked lower than the default (smaller CONFIG_PHYSICAL_START); KASLR only
            // moves the kernel up from its link address, so this is not relocated.
            KERNEL_MAP_START..X86_64_LINK_TEXT => Ok(0),
            _ => Err(SymbolsError::UnsupportedText { text }),
        },
    }
}

/// The variables BTF does describe: `VAR`s placed in the `.data..percpu` `DATASEC`, by
/// name, with their offset in that section and their type.
fn per_cpu_types<'a>(conv: &Converter<'_, 'a>) -> HashMap<&'a str, (u64, Value)> {
    let mut out = HashMap::new();
    for (_, ty) in conv.btf.iter() {
        let BtfType::Datasec {
            name: ".data..percpu",
            vars,
            ..
        } = ty
        else {
            continue;
        };
        for v in vars {
            if let Some(BtfType::Var { name, target, .. }) = conv.btf.get(v.type_id) {
                if let Ok(desc) = conv.describe(*target) {
                    out.entry(*name).or_insert((u64::from(v.offset), desc));
                }
            }
        }
    }
    out
}

/// The type of a [`KNOWN`] global, if the types it names exist in this kernel.
fn known_type(
    name: &str,
    conv: &Converter<'_, '_>,
    user_types: &Map<String, Value>,
    base_types: &Map<String, Value>,
) -> Option<Value> {
    let (_, known) = KNOWN.iter().find(|(n, _)| *n == name)?;
    let user = |s: &str| {
        let kind = user_types.get(s)?.get("kind")?.as_str()?;
        Some(json!({"kind": kind, "name": s}))
    };
    let base = |b: &str| {
        base_types
            .contains_key(b)
            .then(|| json!({"kind": "base", "name": b}))
    };
    let pointer = |subtype: Value| json!({"kind": "pointer", "subtype": subtype});
    let array =
        |subtype: Value, count: u32| json!({"kind": "array", "count": count, "subtype": subtype});
    match *known {
        Known::Struct(s) => user(s),
        Known::PointerToStruct(s) => user(s).map(pointer),
        Known::Base(b) => base(b),
        Known::PointerToBase(b) => base(b).map(pointer),
        Known::ArrayOfStruct(s, n) => user(s).map(|t| array(t, n)),
        Known::ArrayOfPointerToStruct(s, n) => user(s).map(|t| array(pointer(t), n)),
        Known::AnonymousStruct(members) => anonymous_struct(conv, members),
    }
}

/// The one anonymous struct whose members are exactly `members`, in order.
fn anonymous_struct(conv: &Converter<'_, '_>, members: &[&str]) -> Option<Value> {
    let mut found = conv.btf.iter().filter_map(|(id, ty)| match ty {
        BtfType::Struct(c)
            if c.name.is_empty()
                && c.members.iter().map(|m| m.name).eq(members.iter().copied()) =>
        {
            Some(id)
        }
        _ => None,
    });
    let id = found.next()?;
    if found.next().is_some() {
        return None; // ambiguous: better no type than a wrong one
    }
    conv.describe(id).ok()
}
