//! `vestige symbols`: a Volatility 3 symbol table (ISF JSON) for the kernel of a memory
//! item, made from the BTF and kallsyms captured with the memory, so `vol -s DIR -f
//! memory.lime linux.pslist` works without debug packages or dwarf2json.

use crate::cmd_analyze::require_verified;
use crate::exit::Exit;
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use vestige_evidence::fsutil::{read_capped, sha256_hex};
use vestige_evidence::outdir::SafeOutDir;
use vestige_symbols::{generate_isf, KernelIdentity};

/// BTF of a large kernel is ~10 MiB and kallsyms a few MiB; more is not a kernel's.
const MAX_INPUT_BYTES: u64 = 256 << 20;

#[derive(Debug, Args)]
pub struct SymbolsArgs {
    /// A memory item (from `vestige acquire memory`) holding kernel.btf, kernel.kallsyms
    /// and kernel.version. It is verified first.
    #[arg(long)]
    pub item: PathBuf,
    /// The directory to write `<release>.json` into (give Volatility its parent with -s,
    /// or this directory itself).
    #[arg(long)]
    pub out: PathBuf,
    /// Use an item that does not verify (the ISF then says nothing trustworthy).
    #[arg(long)]
    pub no_verify: bool,
}

/// The kernel identity a memory item captured: BTF, kallsyms and the banner.
pub struct CapturedKernel {
    pub btf: Vec<u8>,
    pub kallsyms: String,
    pub identity: KernelIdentity,
}

impl CapturedKernel {
    /// Reads kernel.btf, kernel.kallsyms and kernel.version of `item` (not verified here).
    pub fn read(item: &Path) -> Result<Self> {
        let read = |name: &str| {
            let p = item.join(name);
            read_capped(&p, MAX_INPUT_BYTES).with_context(|| format!("reading {}", p.display()))
        };
        let btf = read("kernel.btf")?;
        let kallsyms = String::from_utf8_lossy(&read("kernel.kallsyms")?).into_owned();
        let banner = String::from_utf8_lossy(&read("kernel.version")?).into_owned();
        let release = banner
            .strip_prefix("Linux version ")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_default()
            .to_string();
        let identity = KernelIdentity { banner, release };
        identity.check()?;
        Ok(CapturedKernel {
            btf,
            kallsyms,
            identity,
        })
    }

    /// The Volatility 3 symbol table of this kernel.
    pub fn isf(&self) -> Result<serde_json::Value> {
        Ok(generate_isf(&self.btf, &self.kallsyms, &self.identity)?)
    }
}

pub fn run(a: &SymbolsArgs) -> Result<Exit> {
    if !a.no_verify {
        require_verified(&a.item)?;
    }
    let k = CapturedKernel::read(&a.item)?;
    let isf = k.isf()?;
    let (btf, identity) = (&k.btf, &k.identity);
    let json = serde_json::to_vec(&isf)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    // The release comes from the captured banner (evidence): it may hold `/`, `..` or
    // escape sequences, so it names the file only through SafeOutDir.
    let out = SafeOutDir::open(&a.out)?;
    let mut created = out.create_file(&[format!("{}.json", identity.release).as_bytes()])?;
    let path = a.out.join(&created.relative_path);
    created
        .file
        .write_all(&json)
        .and_then(|()| created.file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{}",
        serde_json::json!({
            "isf": path.display().to_string(),
            "sha256": sha256_hex(&json),
            "release": identity.release,
            "btf_sha256": sha256_hex(btf),
        })
    );
    eprintln!("wrote {} ({} bytes)", path.display(), json.len());
    Ok(Exit::Ok)
}
