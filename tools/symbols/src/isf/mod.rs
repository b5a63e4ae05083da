//! Volatility 3 Intermediate Symbol Format (ISF) for a Linux kernel, built from BTF types
//! and kallsyms addresses instead of dwarf2json's DWARF + System.map.
//!
//! The output is format 6.2.0, what dwarf2json 0.9 emits (`FORMAT_VERSION` in its
//! `main.go`) and the newest schema whose `producer` is optional; it validates against
//! `volatility3/schemas/schema-6.2.0.json`. Top level: `metadata` (format, producer, and
//! `linux.symbols`/`linux.types` naming the inputs with their SHA-256), `base_types`,
//! `user_types`, `enums`, `symbols`. See [`types`] for type shapes and
//! [`symbols`] for addresses and the banner.
//!
//! A member or type that cannot be described (hostile BTF) is left out and listed in
//! [`BuildReport::skipped_members`]; a bad kallsyms line in
//! [`BuildReport::skipped_lines`]. What Volatility cannot do without (`_text`, the
//! stacker symbols) is an error.

mod names;
pub mod symbols;
pub mod types;

// serde_json's `value["key"]` gives Null for a missing key; it never panics.
#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::btf::{Btf, Endian};
use crate::kallsyms::{self, KallsymsError};
use crate::{KernelIdentity, SymbolsError};
pub use types::TypeError;

/// The ISF format version written.
pub const FORMAT_VERSION: &str = "6.2.0";
/// `metadata.producer.name`. Not "dwarf2json", so Volatility's dwarf2json version checks
/// (`verify_table_versions` in linux.kmsg and linux.hidden_modules) leave it alone.
pub const PRODUCER_NAME: &str = "vestige-symbols";

/// How kallsyms addresses become link-time addresses (see [`symbols`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relocation {
    /// x86-64 kernel: the kernel offset is runtime `_text` minus
    /// [`symbols::X86_64_LINK_TEXT`]; 0 when `_text` is at or below it.
    X86_64Text,
    /// The kernel offset is known, e.g. VMCOREINFO `KERNELOFFSET`.
    KernelOffset(u64),
    /// The addresses are link-time already (a System.map).
    None,
}

/// Choices for [`build`]; the default suits a live x86-64 kernel's kallsyms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsfOptions {
    pub relocation: Relocation,
    /// Refuse to build an ISF without the symbols Volatility needs to find the kernel
    /// ([`SymbolsError::MissingSymbols`]): such an ISF is picked by its banner and then
    /// fails obscurely. Off, they are listed in [`BuildReport::missing_symbols`].
    pub require_stacker_symbols: bool,
}

impl Default for IsfOptions {
    fn default() -> Self {
        IsfOptions {
            relocation: Relocation::X86_64Text,
            require_stacker_symbols: true,
        }
    }
}

/// What a build did besides the JSON: counts, the kernel offset used, what was left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// Runtime address of `_text` in the symbol list.
    pub runtime_text: u64,
    /// Subtracted from kernel-image symbols to get link-time addresses.
    pub kernel_offset: u64,
    pub base_types: usize,
    pub user_types: usize,
    pub enums: usize,
    pub symbols: usize,
    /// Symbols with a real type (per-CPU from BTF, or a known global); others are `void`.
    pub typed_symbols: usize,
    /// Symbols of loaded modules, which a vmlinux ISF does not hold.
    pub module_symbols_ignored: usize,
    /// Stacker symbols absent from the list (only when not required).
    pub missing_symbols: Vec<&'static str>,
    pub skipped_members: Vec<TypeError>,
    pub skipped_lines: Vec<KallsymsError>,
}

/// An ISF and its report.
#[derive(Debug, Clone)]
pub struct Isf {
    pub json: Value,
    pub report: BuildReport,
}

/// Builds the ISF from a raw BTF blob, kallsyms (or System.map) text and the banner.
pub fn build(
    btf_bytes: &[u8],
    kallsyms_text: &str,
    identity: &KernelIdentity,
    options: &IsfOptions,
) -> Result<Isf, SymbolsError> {
    identity.check()?;
    let btf = Btf::parse(btf_bytes).map_err(SymbolsError::Btf)?;
    let endian = match btf.endian() {
        Endian::Little => "little",
        Endian::Big => "big",
    };
    let names = names::Names::new(&btf);
    let conv = types::Converter {
        btf: &btf,
        names: &names,
    };
    let mut report = BuildReport::default();
    let base_types = conv.base_types(endian);
    let enums = conv.enums(&base_types);
    let user_types = conv.user_types(&mut report.skipped_members);

    let list = kallsyms::parse(kallsyms_text);
    let symbols = symbols::build(
        &list,
        &conv,
        &user_types,
        &base_types,
        identity,
        options.relocation,
        &mut report,
    )?;
    report.skipped_lines = list.skipped;
    if options.require_stacker_symbols && !report.missing_symbols.is_empty() {
        return Err(SymbolsError::MissingSymbols {
            names: report.missing_symbols,
        });
    }
    report.base_types = base_types.len();
    report.user_types = user_types.len();
    report.enums = enums.len();
    if !report.skipped_members.is_empty() || !report.skipped_lines.is_empty() {
        tracing::warn!(
            members = report.skipped_members.len(),
            lines = report.skipped_lines.len(),
            "ISF built with parts left out"
        );
    }

    let source = |name: &str, kind: Option<&str>, bytes: &[u8]| {
        let mut item = json!({
            "name": name,
            "hash_type": "sha256",
            "hash_value": hex::encode(Sha256::digest(bytes)),
        });
        // The schema allows only dwarf|symtab|system-map; BTF is none of them.
        if let (Some(kind), Some(map)) = (kind, item.as_object_mut()) {
            map.insert("kind".into(), json!(kind));
        }
        item
    };
    let json = json!({
        "metadata": {
            "format": FORMAT_VERSION,
            "producer": {"name": PRODUCER_NAME, "version": env!("CARGO_PKG_VERSION")},
            "linux": {
                "symbols": [source("kallsyms", Some("system-map"), kallsyms_text.as_bytes())],
                "types": [source("btf", None, btf_bytes)],
            },
        },
        "base_types": base_types,
        "user_types": user_types,
        "enums": enums,
        "symbols": symbols,
    });
    Ok(Isf { json, report })
}
