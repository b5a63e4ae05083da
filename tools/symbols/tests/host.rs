//! The ISF of the machine running the tests, from its own `/sys/kernel/btf/vmlinux` and
//! `/proc/kallsyms`: the types a real kernel has, at a real size, then checked against
//! Volatility's schema by `validate_isf.py`.
//!
//! Skips (passes with a note on stderr) when the files are missing or kallsyms is hidden.
//! The ISF is written to `$VESTIGE_HOST_ISF` or `/tmp/host-isf.json` for a manual
//! `vol -s DIR isfinfo --validate`. Python: `$VESTIGE_PYTHON` or `python3`; with
//! `VESTIGE_REQUIRE_TOOLS=1` a missing python, jsonschema or volatility3 fails the test.
// serde_json's `value["key"]` gives Null for a missing key; it never panics.
#![allow(clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use base64::Engine as _;
use serde_json::Value;
use vestige_symbols::isf::{build, IsfOptions};
use vestige_symbols::{KernelIdentity, SymbolsError};

fn require_tools() -> bool {
    std::env::var_os("VESTIGE_REQUIRE_TOOLS").is_some_and(|v| v == "1")
}

/// Runs the schema check on `path`: `Some(())` when it ran and passed, `None` when the
/// tools are missing (and not required). Panics when the ISF is invalid.
fn validate_with_volatility_schema(path: &Path) -> Option<()> {
    let python = std::env::var("VESTIGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_isf.py");
    let out = match Command::new(&python).arg(&script).arg(path).output() {
        Ok(out) => out,
        Err(e) => {
            assert!(!require_tools(), "{python}: {e}");
            eprintln!("note: schema check skipped, {python}: {e}");
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Some(()),
        Some(77) => {
            assert!(!require_tools(), "schema check tools missing: {stderr}");
            eprintln!("note: schema check skipped: {stderr}");
            None
        }
        _ => panic!("{} fails Volatility's schema: {stderr}", path.display()),
    }
}

struct HostInputs {
    btf: Vec<u8>,
    kallsyms: String,
    identity: KernelIdentity,
}

fn host_inputs() -> Option<HostInputs> {
    let read = |p: &str| {
        std::fs::read(p)
            .map_err(|e| eprintln!("note: host test skipped, {p}: {e}"))
            .ok()
    };
    let btf = read("/sys/kernel/btf/vmlinux")?;
    let kallsyms = String::from_utf8(read("/proc/kallsyms")?).ok()?;
    let banner = String::from_utf8(read("/proc/version")?).ok()?;
    let release = String::from_utf8(read("/proc/sys/kernel/osrelease")?).ok()?;
    Some(HostInputs {
        btf,
        kallsyms,
        identity: KernelIdentity {
            banner,
            release: release.trim_end().to_owned(),
        },
    })
}

fn offset(isf: &Value, ty: &str, field: &str) -> u64 {
    isf["user_types"][ty]["fields"][field]["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("{ty}.{field} missing"))
}

#[test]
fn host_kernel_isf() {
    let Some(host) = host_inputs() else { return };
    let started = Instant::now();
    let strict = build(
        &host.btf,
        &host.kallsyms,
        &host.identity,
        &IsfOptions::default(),
    );
    let isf = match strict {
        Ok(isf) => isf,
        Err(SymbolsError::AddressesHidden) => {
            eprintln!("note: host test skipped, kallsyms addresses hidden (kptr_restrict)");
            return;
        }
        Err(SymbolsError::MissingSymbols { names }) => {
            // A kernel without CONFIG_KALLSYMS_ALL lists only functions: the types are
            // still worth checking, the stacker symbols cannot be.
            eprintln!("note: this kernel's kallsyms lacks {names:?} (no CONFIG_KALLSYMS_ALL); checking types only");
            let lenient = IsfOptions {
                require_stacker_symbols: false,
                ..IsfOptions::default()
            };
            build(&host.btf, &host.kallsyms, &host.identity, &lenient).expect("lenient build")
        }
        Err(e) => panic!("host ISF: {e}"),
    };
    let elapsed = started.elapsed();
    let report = &isf.report;
    eprintln!(
        "host ISF in {elapsed:?}: {} base types, {} user types, {} enums, {} symbols ({} typed), \
         kernel offset {:#x}, {} members and {} kallsyms lines skipped",
        report.base_types,
        report.user_types,
        report.enums,
        report.symbols,
        report.typed_symbols,
        report.kernel_offset,
        report.skipped_members.len(),
        report.skipped_lines.len()
    );
    assert!(
        report.skipped_members.is_empty(),
        "{:?}",
        report.skipped_members.first()
    );
    assert!(
        report.skipped_lines.is_empty(),
        "{:?}",
        report.skipped_lines.first()
    );
    let json = &isf.json;

    let task = &json["user_types"]["task_struct"];
    let size = task["size"].as_u64().expect("task_struct size");
    assert!((1024..=65536).contains(&size), "task_struct size {size}");
    for field in ["pid", "tgid", "comm", "tasks", "mm", "real_parent"] {
        assert!(offset(json, "task_struct", field) < size, "{field}");
    }
    assert_eq!(
        offset(json, "task_struct", "tgid"),
        offset(json, "task_struct", "pid") + 4
    );
    assert_eq!(task["fields"]["comm"]["type"]["count"], 16);
    assert_eq!(task["fields"]["comm"]["type"]["subtype"]["name"], "char");
    assert_eq!(
        task["fields"]["real_parent"]["type"]["subtype"]["name"],
        "task_struct"
    );
    assert_eq!(task["fields"]["mm"]["type"]["subtype"]["name"], "mm_struct");
    assert_eq!(offset(json, "list_head", "prev"), 8);
    assert_eq!(json["base_types"]["pointer"]["size"], 8);
    // Every type class Volatility's Linux table binds (symbols/linux/__init__.py).
    for ty in [
        "file",
        "list_head",
        "hlist_head",
        "mm_struct",
        "super_block",
        "task_struct",
        "vm_area_struct",
        "qstr",
        "dentry",
        "fs_struct",
        "files_struct",
        "kobject",
        "cred",
        "inode",
        "idr",
        "address_space",
        "page",
        "vfsmount",
        "net",
        "socket",
        "sock",
        "inet_sock",
        "unix_sock",
    ] {
        assert!(
            json["user_types"].get(ty).is_some(),
            "user type {ty} missing"
        );
    }
    assert_eq!(
        json["symbols"]["_text"]["address"],
        0xffff_ffff_8100_0000u64
    );

    if let Some(banner) = json["symbols"].get("linux_banner") {
        let data = base64::engine::general_purpose::STANDARD
            .decode(banner["constant_data"].as_str().expect("constant_data"))
            .expect("base64");
        assert_eq!(data, format!("{}\0", host.identity.banner).into_bytes());
        assert_eq!(json["symbols"]["init_task"]["type"]["name"], "task_struct");
    }

    let path = std::env::var("VESTIGE_HOST_ISF").unwrap_or_else(|_| "/tmp/host-isf.json".into());
    let text = serde_json::to_string(json).expect("serialises");
    std::fs::write(&path, text).expect("ISF written");
    if validate_with_volatility_schema(Path::new(&path)).is_some() {
        eprintln!("{path} is valid against Volatility's ISF schema");
    }
}
