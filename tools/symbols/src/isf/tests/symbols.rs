//! The symbols table: relocation, types, the banner, and what is refused.

use base64::Engine as _;
use serde_json::json;

use super::{build, identity, isf, kernel_btf, Isf, IsfOptions, Relocation, BANNER, KALLSYMS};
use crate::{KernelIdentity, SymbolsError};

#[test]
fn symbols_are_link_time_and_typed() {
    let Isf { json, report } = isf();
    assert_eq!(report.kernel_offset, 0x2e0_0000);
    assert_eq!(report.module_symbols_ignored, 1);
    let sym = &json["symbols"];
    assert_eq!(sym["_text"]["address"], 0xffff_ffff_8100_0000u64);
    assert_eq!(
        sym["init_task"],
        json!({"address": 0xffff_ffff_8220_0000u64, "type": {"kind": "struct", "name": "task_struct"}})
    );
    assert_eq!(
        sym["init_files"]["type"],
        json!({"kind": "struct", "name": "files_struct"})
    );
    // mm_struct is only declared here: no type rather than a dangling one.
    assert_eq!(
        sym["init_mm"]["type"],
        json!({"kind": "base", "name": "void"})
    );
    assert_eq!(sym["init_top_pgt"]["address"], 0xffff_ffff_81e0_0000u64);
    // Per-CPU offsets are not relocated; their type comes from BTF's VAR, but only for
    // the symbol at the VAR's offset (static names repeat).
    let elsewhere = KALLSYMS.replace(
        "0000000000020000 D runqueues",
        "ffffffff85040000 d runqueues",
    );
    let other = build(
        &kernel_btf(),
        &elsewhere,
        &identity(),
        &IsfOptions::default(),
    )
    .expect("builds");
    assert_eq!(
        other.json["symbols"]["runqueues"]["type"],
        json!({"kind": "base", "name": "void"})
    );
    assert_eq!(
        sym["runqueues"],
        json!({"address": 0x20000, "type": {"kind": "struct", "name": "rq"}})
    );
    assert_eq!(sym["tk_core"]["type"]["kind"], "struct");
    assert!(sym["tk_core"]["type"]["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("unnamed_struct_")));
    // The global `helper` beats the locals before and after it.
    assert_eq!(sym["helper"]["address"], 0xffff_ffff_8100_2000u64);
    assert!(sym.get("ftrace_trampoline").is_none());
}

#[test]
fn banner_is_proc_version_plus_nul() {
    let json = isf().json;
    let banner = &json["symbols"]["linux_banner"];
    let data = base64::engine::general_purpose::STANDARD
        .decode(banner["constant_data"].as_str().expect("string"))
        .expect("base64");
    assert_eq!(data, format!("{BANNER}\0").into_bytes());
    assert_eq!(banner["type"]["count"], BANNER.len() + 1);
    assert_eq!(banner["address"], 0xffff_ffff_8200_0100u64);
}

#[test]
fn metadata_names_inputs() {
    let json = isf().json;
    let meta = &json["metadata"];
    assert_eq!(meta["format"], "6.2.0");
    assert_eq!(meta["producer"]["name"], "vestige-symbols");
    assert_eq!(meta["linux"]["symbols"][0]["kind"], "system-map");
    assert_eq!(
        meta["linux"]["types"][0]["hash_value"]
            .as_str()
            .map(str::len),
        Some(64)
    );
}

#[test]
fn relocation_choices() {
    let btf = kernel_btf();
    let as_is = IsfOptions {
        relocation: Relocation::None,
        ..IsfOptions::default()
    };
    let json = build(&btf, KALLSYMS, &identity(), &as_is)
        .expect("builds")
        .json;
    assert_eq!(
        json["symbols"]["_text"]["address"],
        0xffff_ffff_83e0_0000u64
    );
    let given = IsfOptions {
        relocation: Relocation::KernelOffset(0x1000),
        ..IsfOptions::default()
    };
    let json = build(&btf, KALLSYMS, &identity(), &given)
        .expect("builds")
        .json;
    assert_eq!(
        json["symbols"]["_text"]["address"],
        0xffff_ffff_83df_f000u64
    );
    let arm64 = KALLSYMS.replace("ffffffff83e00000 T _text", "ffff800008000000 T _text");
    assert!(matches!(
        build(&btf, &arm64, &identity(), &IsfOptions::default()),
        Err(SymbolsError::UnsupportedText {
            text: 0xffff_8000_0800_0000
        })
    ));
}

#[test]
fn missing_and_hidden_symbols_are_errors() {
    let btf = kernel_btf();
    let text_only = "ffffffff81000000 T _text\nffffffff81000100 T start_kernel\n";
    let err =
        build(&btf, text_only, &identity(), &IsfOptions::default()).expect_err("no data symbols");
    let SymbolsError::MissingSymbols { names } = err else {
        panic!("MissingSymbols expected, got {err}");
    };
    assert_eq!(
        names,
        [
            "linux_banner",
            "init_task",
            "init_mm",
            "init_files",
            "init_top_pgt"
        ]
    );
    let lenient = IsfOptions {
        require_stacker_symbols: false,
        ..IsfOptions::default()
    };
    let isf = build(&btf, text_only, &identity(), &lenient).expect("lenient build");
    assert_eq!(isf.report.missing_symbols.len(), 5);
    let hidden = "0000000000000000 T _text\n0000000000000000 D init_task\n";
    assert!(matches!(
        build(&btf, hidden, &identity(), &lenient),
        Err(SymbolsError::AddressesHidden)
    ));
    assert!(matches!(
        build(&btf, "", &identity(), &lenient),
        Err(SymbolsError::NoText)
    ));
}

#[test]
fn identity_is_checked() {
    let btf = kernel_btf();
    for (banner, release) in [
        (BANNER.trim_end(), "6.1.0-48-amd64"),
        (BANNER, "6.1.0-47-amd64"),
        (BANNER, ""),
        ("Linux version 6.1.0-48-amd64 (x)\0\n", "6.1.0-48-amd64"),
    ] {
        let identity = KernelIdentity {
            banner: banner.into(),
            release: release.into(),
        };
        assert!(
            matches!(
                build(&btf, KALLSYMS, &identity, &IsfOptions::default()),
                Err(SymbolsError::BadIdentity { .. })
            ),
            "{banner:?} / {release:?} accepted"
        );
    }
}
