//! Volatility 3 symbol tables for a Linux kernel without debug packages.
//!
//! Volatility needs an ISF (Intermediate Symbol Format) JSON describing the kernel's types
//! and symbol addresses; the usual recipe runs dwarf2json over a vmlinux with DWARF, which
//! stock distribution kernels do not ship. Every modern kernel does carry its types as BTF
//! (`/sys/kernel/btf/vmlinux`) and its symbols in `/proc/kallsyms`, so this crate builds
//! the ISF from those, at acquisition time, on the examined machine:
//!
//! * [`btf`] — parses raw BTF, every kind, bounds-checked (the blob is evidence);
//! * [`kallsyms`] — parses `/proc/kallsyms` and System.map text;
//! * [`isf`] — builds the ISF: types as dwarf2json shapes them, link-time addresses, and
//!   the `linux_banner` bytes Volatility identifies the kernel by.
//!
//! The result goes in a symbol directory: `vol -s SYMDIR -f memory.lime linux.pslist`.
//! This crate never prints and never touches files; it returns values and `tracing`
//! events.
//!
//! ```
//! use vestige_symbols::{generate_isf, KernelIdentity};
//! // An empty BTF blob (header and the empty name), and the symbols Volatility needs.
//! let btf = [0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
//! let kallsyms = "ffffffff81000000 T _text\nffffffff82000000 R linux_banner\n\
//!     ffffffff82100000 D init_task\nffffffff82200000 D init_mm\n\
//!     ffffffff82300000 D init_files\nffffffff82400000 D init_top_pgt\n";
//! let identity = KernelIdentity {
//!     banner: "Linux version 6.1.0-48-amd64 (debian-kernel@lists.debian.org) #1\n".into(),
//!     release: "6.1.0-48-amd64".into(),
//! };
//! let isf = generate_isf(&btf, kallsyms, &identity).unwrap();
//! assert_eq!(isf["symbols"]["init_task"]["address"], 0xffff_ffff_8210_0000u64);
//! ```
#![forbid(unsafe_code)]

pub mod btf;
pub mod isf;
pub mod kallsyms;

/// Which kernel the ISF is for, as the running kernel tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelIdentity {
    /// The exact content of `/proc/version`, trailing `"\n"` included: the same bytes as
    /// the kernel's `linux_banner` (less its NUL), which Volatility searches memory for.
    pub banner: String,
    /// `uname -r`; Volatility's VMCOREINFO stacker matches the banner prefix
    /// `"Linux version <release> ("` against VMCOREINFO's `OSRELEASE`.
    pub release: String,
}

impl KernelIdentity {
    /// Checks the banner has the shape of `linux_banner` for this release; a wrong banner
    /// would give an ISF Volatility never selects.
    pub fn check(&self) -> Result<(), SymbolsError> {
        let prefix = format!("Linux version {} (", self.release);
        let reason = if self.release.is_empty() || self.release.contains(char::is_whitespace) {
            "release is empty or has white space"
        } else if !self.banner.starts_with(&prefix) {
            "banner does not start with \"Linux version <release> (\""
        } else if !self.banner.ends_with('\n') {
            "banner lacks the trailing newline that /proc/version and linux_banner have"
        } else if self.banner.contains('\0') {
            "banner contains a NUL byte"
        } else {
            return Ok(());
        };
        Err(SymbolsError::BadIdentity {
            reason,
            banner: self.banner.chars().take(120).collect(),
        })
    }
}

/// Why no ISF was built.
#[derive(Debug, thiserror::Error)]
pub enum SymbolsError {
    #[error("parsing the kernel BTF")]
    Btf(#[source] btf::BtfError),
    #[error("kernel identity: {reason} (banner {banner:?})")]
    BadIdentity {
        reason: &'static str,
        /// The first 120 characters.
        banner: String,
    },
    #[error("kallsyms: every address is 0; read it as root with kernel.kptr_restrict=0")]
    AddressesHidden,
    #[error("kallsyms: no kernel symbol _text, needed to tell the KASLR offset")]
    NoText,
    #[error("kallsyms: _text at {text:#x} is outside the x86-64 kernel image mapping; give the kernel offset explicitly")]
    UnsupportedText { text: u64 },
    #[error("kallsyms lacks {names:?}, which Volatility needs to find the kernel (kernel built without CONFIG_KALLSYMS_ALL? use its System.map)")]
    MissingSymbols { names: Vec<&'static str> },
}

/// Builds the ISF for the running x86-64 kernel: `btf` from `/sys/kernel/btf/vmlinux`,
/// `kallsyms` from `/proc/kallsyms` (read with real addresses), `identity` from
/// `/proc/version` and `uname -r`. Addresses are turned back to link time (see
/// [`isf::symbols`]); use [`isf::build`] for other choices and the build report.
pub fn generate_isf(
    btf: &[u8],
    kallsyms: &str,
    identity: &KernelIdentity,
) -> Result<serde_json::Value, SymbolsError> {
    isf::build(btf, kallsyms, identity, &isf::IsfOptions::default()).map(|isf| isf.json)
}
