//! Loaded kernel modules (/proc/modules) and the kernel taint mask
//! (/proc/sys/kernel/tainted).
//!
//! A loaded module is where a kernel rootkit lives; a module that hides itself from
//! /proc/modules may still taint the kernel (`O` out-of-tree, `E` unsigned), so the two are
//! read together. Load addresses read as 0 unless the reader may see kernel pointers
//! (`kptr_restrict`), which is why [`KernelModule::address`] is optional in meaning.

use crate::table::{
    cap, dec, fields_and_rest, hex, parse_lines, ParseError, Parsed, MAX_STRING_BYTES,
};
use serde::{Deserialize, Serialize};

/// One line of /proc/modules.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct KernelModule {
    /// Module name.
    pub name: String,
    /// Size of the module's memory, bytes.
    pub size_bytes: u64,
    /// Reference count; `None` when the kernel prints `-` (no module unloading).
    pub ref_count: Option<u32>,
    /// Modules that depend on this one.
    pub used_by: Vec<String>,
    /// `Live`, `Loading` or `Unloading`.
    pub state: String,
    /// Load address; `Some(0)` when hidden by `kptr_restrict`.
    pub address: Option<u64>,
    /// The module's own taint letters, e.g. `OE`, without parentheses.
    pub taint: Option<String>,
}

/// Parses /proc/modules (`name size refcount used_by state address [(taint)]`, no header).
pub fn parse_modules(text: &str) -> Parsed<KernelModule> {
    parse_lines(text, 0, |n, line| {
        let (f, rest) = fields_and_rest(n, line, 5)?;
        let field = |i: usize| f.get(i).copied().unwrap_or_default();
        let ref_count = match field(2) {
            "-" => None,
            other => Some(dec(n, "refcount", other)?),
        };
        let used_by = match field(3) {
            "-" => Vec::new(),
            list => list
                .split(',')
                .filter(|s| !s.is_empty())
                .take(MAX_USED_BY)
                .map(|s| cap(s, MAX_STRING_BYTES))
                .collect(),
        };
        let mut tail = rest.split_whitespace();
        let address = match tail.next() {
            None => None,
            Some(a) => {
                let digits = a
                    .strip_prefix("0x")
                    .ok_or_else(|| ParseError::field(n, "address", "0x-prefixed hex", a))?;
                Some(hex(n, "address", digits)?)
            }
        };
        let taint = match tail.next() {
            None => None,
            Some(t) => Some(
                t.strip_prefix('(')
                    .and_then(|t| t.strip_suffix(')'))
                    .map(|t| cap(t, MAX_STRING_BYTES))
                    .ok_or_else(|| ParseError::field(n, "taint", "(LETTERS)", t))?,
            ),
        };
        Ok(Some(KernelModule {
            name: cap(field(0), MAX_STRING_BYTES),
            size_bytes: dec(n, "size", field(1))?,
            ref_count,
            used_by,
            state: cap(field(4), MAX_STRING_BYTES),
            address,
            taint,
        }))
    })
}

/// Most dependants kept per module (a genuine kernel has a few dozen at most).
const MAX_USED_BY: usize = 1024;

/// One set taint bit.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TaintFlag {
    /// Bit number.
    pub bit: u8,
    /// The letter the kernel prints in oops reports and `(…)` after module names.
    pub letter: char,
    /// What it means.
    pub description: String,
}

/// The decoded kernel taint mask.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// The raw mask from /proc/sys/kernel/tainted.
    pub value: u64,
    /// Known bits that are set.
    pub flags: Vec<TaintFlag>,
    /// Set bits this crate has no name for, kept so nothing is dropped.
    pub unknown_bits: u64,
}

/// Taint bits per the kernel's Documentation/admin-guide/tainted-kernels.rst.
const TAINT_BITS: [(u8, char, &str); 20] = [
    (0, 'P', "proprietary module was loaded"),
    (1, 'F', "module was force loaded"),
    (2, 'S', "kernel running on an out of specification system"),
    (3, 'R', "module was force unloaded"),
    (4, 'M', "processor reported a Machine Check Exception"),
    (5, 'B', "bad page referenced or some unexpected page flags"),
    (6, 'U', "taint requested by userspace application"),
    (
        7,
        'D',
        "kernel died recently, i.e. there was an OOPS or BUG",
    ),
    (8, 'A', "ACPI table overridden by user"),
    (9, 'W', "kernel issued warning"),
    (10, 'C', "staging driver was loaded"),
    (11, 'I', "workaround for bug in platform firmware applied"),
    (12, 'O', "externally-built (out-of-tree) module was loaded"),
    (13, 'E', "unsigned module was loaded"),
    (14, 'L', "soft lockup occurred"),
    (15, 'K', "kernel has been live patched"),
    (16, 'X', "auxiliary taint, defined for and used by distros"),
    (
        17,
        'T',
        "kernel was built with the struct randomization plugin",
    ),
    (18, 'N', "an in-kernel test has been run"),
    // Added in Linux 6.15.
    (
        19,
        'J',
        "userspace used a mutating debug operation in fwctl",
    ),
];

/// Decodes a taint mask into its flags.
pub fn decode_taint(value: u64) -> Taint {
    let mut known = 0u64;
    let mut flags = Vec::new();
    for (bit, letter, description) in TAINT_BITS {
        let mask = 1u64.checked_shl(u32::from(bit)).unwrap_or(0);
        known |= mask;
        if value & mask != 0 {
            flags.push(TaintFlag {
                bit,
                letter,
                description: description.to_string(),
            });
        }
    }
    Taint {
        value,
        flags,
        unknown_bits: value & !known,
    }
}

/// Parses /proc/sys/kernel/tainted (one decimal number and a newline).
pub fn parse_tainted(text: &str) -> Result<Taint, ParseError> {
    dec(1, "tainted", text.trim()).map(decode_taint)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn module_lines() {
        let text = "nf_tables 356352 0 - Live 0x0000000000000000
kvm_intel 372736 0 - Live 0xffffffffc0a00000 (OE)
kvm 1142784 1 kvm_intel, Live 0xffffffffc0800000
builtin_like 16384 - - Live 0x0000000000000000
broken 12x 0 - Live 0x0
broken2 12 0 - Live 0x0 OE
";
        let p = parse_modules(text);
        assert_eq!(p.items.len(), 4);
        assert_eq!(p.errors.len(), 2);
        assert_eq!(p.items[0].address, Some(0));
        assert_eq!(p.items[0].used_by, Vec::<String>::new());
        assert_eq!(p.items[1].taint.as_deref(), Some("OE"));
        assert_eq!(p.items[1].address, Some(0xffff_ffff_c0a0_0000));
        assert_eq!(p.items[2].used_by, ["kvm_intel"]);
        assert_eq!(p.items[2].ref_count, Some(1));
        assert_eq!(p.items[3].ref_count, None);
        assert!(matches!(
            p.errors[0],
            ParseError::Field {
                line: 5,
                field: "size",
                ..
            }
        ));
        assert!(matches!(
            p.errors[1],
            ParseError::Field {
                line: 6,
                field: "taint",
                ..
            }
        ));
    }

    #[test]
    fn taint_letters() {
        let t = parse_tainted("12289\n").unwrap(); // P + O + E
        let letters: String = t.flags.iter().map(|f| f.letter).collect();
        assert_eq!(letters, "POE");
        assert_eq!(t.unknown_bits, 0);
        let t = decode_taint(1 << 40 | 1 << 9);
        assert_eq!(t.flags.len(), 1);
        assert_eq!(t.flags[0].letter, 'W');
        assert_eq!(t.unknown_bits, 1 << 40);
        assert!(parse_tainted("-1").is_err());
        assert_eq!(parse_tainted("0").unwrap().flags, []);
    }
}
