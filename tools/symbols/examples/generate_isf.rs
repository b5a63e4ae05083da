//! Writes an ISF from files, for trying the library on another kernel's inputs:
//!
//!     cargo run --release -p vestige-symbols --example generate_isf -- \
//!         BTF KALLSYMS_OR_SYSTEM_MAP BANNER_FILE RELEASE OUT.json
//!
//! BTF is a raw blob (`/sys/kernel/btf/vmlinux`, or `objcopy -O binary --only-section=.BTF
//! vmlinux`); BANNER_FILE holds `/proc/version`'s bytes. Addresses are relocated as for
//! live kallsyms (a System.map, whose `_text` is at the link address, is kept as it is).
//! The report goes to stderr.

use std::process::ExitCode;

use vestige_symbols::isf::{build, IsfOptions};
use vestige_symbols::KernelIdentity;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [btf, kallsyms, banner, release, out] = args.as_slice() else {
        eprintln!("usage: generate_isf BTF KALLSYMS BANNER_FILE RELEASE OUT.json");
        return ExitCode::from(2);
    };
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let btf = std::fs::read(btf)?;
        let kallsyms = std::fs::read_to_string(kallsyms)?;
        let identity = KernelIdentity {
            banner: std::fs::read_to_string(banner)?,
            release: release.clone(),
        };
        let isf = build(&btf, &kallsyms, &identity, &IsfOptions::default())?;
        eprintln!(
            "{} user types, {} enums, {} symbols ({} typed), kernel offset {:#x}, {} members and {} lines skipped",
            isf.report.user_types,
            isf.report.enums,
            isf.report.symbols,
            isf.report.typed_symbols,
            isf.report.kernel_offset,
            isf.report.skipped_members.len(),
            isf.report.skipped_lines.len()
        );
        std::fs::write(out, serde_json::to_vec(&isf.json)?)?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                message = format!("{message}: {s}");
                source = s.source();
            }
            eprintln!("generate_isf: {message}");
            ExitCode::FAILURE
        }
    }
}
