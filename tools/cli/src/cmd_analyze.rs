//! `vestige analyze CASE`: the whole case — every item verified, every file system
//! walked, system artifacts, logs, event histories and binaries read, findings flagged —
//! into a report in the case (report.html, findings.json, timeline.jsonl/.csv, UCO).
//!
//! `vestige analyze pcap|pslist|sockstat`: one item at a time — what a packet capture
//! says, the processes and sockets of a memory item.

use crate::cmd_symbols::CapturedKernel;
use crate::exit::Exit;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use vestige_acquire::net::CAPTURE_FILE;
use vestige_analyze::memory::{LimeMemory, LinuxKernel, SocketWalker, Symbols, Types};
use vestige_analyze::pcap::{summarize, timeline_events, TrafficSummary};
use vestige_evidence::lime::MEMORY_FILE;
use vestige_evidence::read_at::FileReader;
use vestige_evidence::seekable::SeekableReader;
use vestige_evidence::verify::{verify_item, Verdict};

/// `vestige analyze CASE` or `vestige analyze <subcommand>`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AnalyzeArgs {
    #[command(subcommand)]
    pub command: Option<AnalyzeCommand>,
    #[command(flatten)]
    pub case: CaseArgs,
}

/// The whole case.
#[derive(Debug, Args)]
pub struct CaseArgs {
    /// The case directory: every item is verified, analysed, and the report written into
    /// CASE/report (or report-2 … when one exists).
    #[arg(required = true)]
    pub case: Option<PathBuf>,
    /// YARA rule file run over the files the triage looks at (repeatable).
    #[arg(long = "yara", value_name = "RULES")]
    pub yara: Vec<PathBuf>,
    /// Known-bad hash list: MD5/SHA-1/SHA-256 in hex, any layout (repeatable).
    #[arg(long = "hashes", value_name = "FILE")]
    pub hashes: Vec<PathBuf>,
    /// Threads for verification.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum AnalyzeCommand {
    /// Summarise a pcap or pcapng file, or the capture of a `capture net` item (verified
    /// first).
    Pcap(PcapArgs),
    /// List the processes in a memory item by walking the kernel's task list with the
    /// symbols captured with it (our own walker; cross-check with Volatility's pslist).
    Pslist(MemoryArgs),
    /// List the sockets each process in a memory item holds open (family, protocol,
    /// addresses, ports, state; unix paths), from its descriptor table (our own walker;
    /// cross-check with Volatility's sockstat).
    Sockstat(MemoryArgs),
}

#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// A memory item (from `vestige acquire memory`), verified first.
    pub item: PathBuf,
    /// The item holding kernel.kallsyms/btf/version, when the memory item has none (a
    /// hypervisor dump converted with --from): a live acquisition from the same boot.
    #[arg(long, value_name = "ITEM")]
    pub kernel_from: Option<PathBuf>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Analyse items that do not verify (the result then proves nothing).
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Args)]
pub struct PcapArgs {
    /// A .pcap/.pcapng file, or an item directory holding capture.pcapng.
    pub input: PathBuf,
    /// Print the whole summary and the timeline events as JSON.
    #[arg(long)]
    pub json: bool,
    /// Rows shown per table in the text output.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

pub fn run(args: AnalyzeArgs) -> Result<Exit> {
    match args.command {
        Some(AnalyzeCommand::Pcap(a)) => pcap(&a),
        Some(AnalyzeCommand::Pslist(a)) => pslist(&a),
        Some(AnalyzeCommand::Sockstat(a)) => sockstat(&a),
        None => case(&args.case),
    }
}

fn case(a: &CaseArgs) -> Result<Exit> {
    let Some(dir) = &a.case else {
        bail!("give a case directory or a subcommand (see --help)");
    };
    let opts = vestige_analyze::case::Options {
        threads: crate::cmd_verify::threads(a.threads),
        triage: vestige_analyze::binaries::TriageOptions {
            yara_rules: a.yara.clone(),
            hash_lists: a.hashes.clone(),
        },
    };
    let start = std::time::Instant::now();
    let analysis = vestige_analyze::case::analyze_case(dir, &opts, &|step: &str| {
        eprintln!("[{:>6.1}s] {step}", start.elapsed().as_secs_f64());
    })
    .with_context(|| format!("analysing {}", dir.display()))?;
    let (out, files) = vestige_analyze::output::write_report(dir, &analysis)?;
    let r = &analysis.report;
    for f in r.findings.iter().take(30) {
        println!(
            "{:<6} {:<34} {}",
            format!("{:?}", f.severity).to_uppercase(),
            f.rule,
            f.title
        );
    }
    if r.findings.len() > 30 {
        println!("… {} more findings in the report", r.findings.len() - 30);
    }
    for p in &r.problems {
        eprintln!("warning: {p}");
    }
    eprintln!(
        "{} findings, {} timeline events, {} problems, in {:.1} s",
        r.findings.len(),
        analysis.events.len(),
        r.problems.len(),
        start.elapsed().as_secs_f64()
    );
    for (name, sha) in &files {
        eprintln!("  {name}  SHA-256 {sha}");
    }
    println!("report: {}", out.join("report.html").display());
    let failed = r.items.iter().any(|i| i.verification.starts_with("FAILED"));
    Ok(if failed || !r.custody.chain_ok {
        Exit::Failed
    } else if r.problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

/// Refuses an item that does not verify: analysis of unverified evidence proves nothing.
pub fn require_verified(input: &Path) -> Result<()> {
    let report = verify_item(input, None, 2, None);
    if !matches!(
        report.verdict,
        Verdict::Verified | Verdict::VerifiedIncomplete
    ) {
        bail!(
            "{} does not verify ({}); refusing to use it",
            input.display(),
            report.problems.join("; ")
        );
    }
    Ok(())
}

/// The file to read: an item's capture after it verifies, or the file given.
fn capture_path(input: &Path) -> Result<PathBuf> {
    if !input.is_dir() {
        return Ok(input.to_path_buf());
    }
    require_verified(input)?;
    Ok(input.join(CAPTURE_FILE))
}

/// A memory item's image with its kernel located, and the symbols that located it.
struct OpenMemory {
    mem: LimeMemory<SeekableReader<FileReader>>,
    kernel: LinuxKernel,
    isf: serde_json::Value,
    symbols: Symbols,
}

impl OpenMemory {
    /// Verifies the item (and the kernel item) unless told not to, then locates the
    /// kernel in its image.
    fn open(a: &MemoryArgs) -> Result<Self> {
        let kernel_item = a.kernel_from.as_deref().unwrap_or(&a.item);
        if !a.no_verify {
            require_verified(&a.item)?;
            if kernel_item != a.item.as_path() {
                require_verified(kernel_item)?;
            }
        }
        let k = CapturedKernel::read(kernel_item)?;
        let isf = k.isf()?;
        let symbols = Symbols::parse(&k.kallsyms);
        let image = a.item.join(MEMORY_FILE);
        let file =
            FileReader::open(&image).with_context(|| format!("opening {}", image.display()))?;
        let lime =
            SeekableReader::open(file).with_context(|| format!("reading {}", image.display()))?;
        let mem = LimeMemory::open(lime)?;
        let kernel = LinuxKernel::locate(&mem, &symbols, Types::new(&isf), &k.identity.banner)?;
        eprintln!(
            "kernel image at physical {:#x}, direct map at {:#x}, page tables: {}",
            kernel.phys_base,
            kernel.page_offset_base,
            match &kernel.page_tables {
                Ok(pt) => format!("{}-level at physical {:#x}", pt.levels, pt.top),
                Err(why) => format!("not used ({why})"),
            }
        );
        Ok(OpenMemory {
            mem,
            kernel,
            isf,
            symbols,
        })
    }

    /// Where the kernel was found, for JSON output.
    fn located(&self) -> serde_json::Map<String, serde_json::Value> {
        let k = &self.kernel;
        let mut m = serde_json::Map::new();
        m.insert("phys_base".into(), format!("{:#x}", k.phys_base).into());
        m.insert(
            "page_offset_base".into(),
            format!("{:#x}", k.page_offset_base).into(),
        );
        m.insert(
            "page_tables".into(),
            match &k.page_tables {
                Ok(pt) => serde_json::json!({"top": format!("{:#x}", pt.top), "levels": pt.levels}),
                Err(why) => serde_json::json!({"unused": why}),
            },
        );
        m
    }
}

/// The exit status of a memory listing: partial results are [`Exit::Incomplete`].
fn partial(broken: Option<&String>, problems: &[String]) -> Exit {
    if let Some(b) = broken {
        eprintln!("warning: {b} (a smeared live image?); the list is partial");
    }
    for p in problems {
        eprintln!("warning: {p}");
    }
    if broken.is_some() || !problems.is_empty() {
        Exit::Incomplete
    } else {
        Exit::Ok
    }
}

fn pslist(a: &MemoryArgs) -> Result<Exit> {
    let m = OpenMemory::open(a)?;
    let walk = m.kernel.tasks(&m.mem)?;
    let tasks = &walk.tasks;
    if a.json {
        let mut out = m.located();
        out.insert("tasks".into(), serde_json::to_value(tasks)?);
        out.insert("broken".into(), serde_json::to_value(&walk.broken)?);
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{:>8} {:>8} {:>8} {:>6}  COMM",
            "PID", "TGID", "PPID", "UID"
        );
        for t in tasks {
            println!(
                "{:>8} {:>8} {:>8} {:>6}  {}",
                t.pid,
                t.tgid,
                t.ppid,
                t.uid.map_or("-".to_string(), |u| u.to_string()),
                t.comm
            );
        }
    }
    eprintln!("{} tasks", tasks.len());
    Ok(partial(walk.broken.as_ref(), &[]))
}

fn sockstat(a: &MemoryArgs) -> Result<Exit> {
    let m = OpenMemory::open(a)?;
    let walk = m.kernel.tasks(&m.mem)?;
    let scan =
        SocketWalker::new(Types::new(&m.isf), &m.symbols)?.scan(&m.kernel, &m.mem, &walk.tasks);
    if a.json {
        let mut out = m.located();
        out.insert("sockets".into(), serde_json::to_value(&scan.sockets)?);
        out.insert("problems".into(), serde_json::to_value(&scan.problems)?);
        out.insert(
            "task_list_broken".into(),
            serde_json::to_value(&walk.broken)?,
        );
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let endpoint = |addr: &Option<String>, port: Option<u16>| match (addr, port) {
            (Some(a), Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
            (Some(a), Some(p)) => format!("{a}:{p}"),
            (Some(a), None) => a.clone(),
            (None, _) => "-".to_string(),
        };
        println!(
            "{:>8} {:>5} {:<9} {:<9} {:<5} {:<12} {:<28} {:<28} {:>9}  COMM",
            "PID", "FD", "FAMILY", "TYPE", "PROTO", "STATE", "LOCAL", "REMOTE", "INODE"
        );
        for s in &scan.sockets {
            println!(
                "{:>8} {:>5} {:<9} {:<9} {:<5} {:<12} {:<28} {:<28} {:>9}  {}",
                s.pid,
                s.fd,
                s.family,
                s.kind,
                s.protocol,
                s.state,
                endpoint(&s.local_address, s.local_port),
                endpoint(&s.remote_address, s.remote_port),
                s.inode.map_or("-".to_string(), |i| i.to_string()),
                s.comm
            );
        }
    }
    eprintln!(
        "{} sockets in {} processes",
        scan.sockets.len(),
        walk.tasks.len()
    );
    Ok(partial(walk.broken.as_ref(), &scan.problems))
}

fn pcap(a: &PcapArgs) -> Result<Exit> {
    let path = capture_path(&a.input)?;
    let reader = FileReader::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let s = summarize(&reader, &path.display().to_string())?;
    if a.json {
        let out = serde_json::json!({ "summary": s, "timeline": timeline_events(&s) });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", text(&s, a.top));
    }
    for e in &s.errors {
        eprintln!("warning: {e}");
    }
    Ok(if s.errors.is_empty() {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

fn when(t: Option<&vestige_analyze::pcap::CaptureTime>) -> &str {
    t.map_or("-", |t| t.utc.as_str())
}

/// The readable report. Every string from the capture is already display-safe.
fn text(s: &TrafficSummary, top: usize) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: {:?}, {} packets ({} bytes on the wire), {} undecodable; {} .. {}",
        s.source,
        s.format,
        s.packets,
        s.original_bytes,
        s.undecodable_packets,
        when(s.first.as_ref()),
        when(s.last.as_ref())
    );
    let _ = writeln!(o, "\nConversations ({}):", s.conversations.len());
    for c in s.conversations.iter().take(top) {
        let _ = writeln!(
            o,
            "  {:<5} {:>22} <-> {:<22} {:>6} pkts {:>10} bytes  from {}",
            c.protocol_name,
            c.a.to_string(),
            c.b.to_string(),
            c.packets_a_to_b + c.packets_b_to_a,
            c.bytes_a_to_b + c.bytes_b_to_a,
            when(c.first.as_ref())
        );
    }
    let _ = writeln!(o, "\nDNS ({}):", s.dns.len());
    for d in s.dns.iter().take(top) {
        let _ = writeln!(
            o,
            "  {} {} {:<5} {} {} -> {}",
            when(d.time.as_ref()),
            if d.is_response { "answer" } else { "query " },
            d.qtype_name,
            d.query_name,
            d.client,
            d.server
        );
    }
    let _ = writeln!(o, "\nTLS server names ({}):", s.tls_client_hellos.len());
    for t in s.tls_client_hellos.iter().take(top) {
        let _ = writeln!(
            o,
            "  {} {} {} -> {}",
            when(t.time.as_ref()),
            t.server_name.as_deref().unwrap_or("(no SNI)"),
            t.client,
            t.server
        );
    }
    let _ = writeln!(o, "\nHTTP requests ({}):", s.http_requests.len());
    for h in s.http_requests.iter().take(top) {
        let _ = writeln!(
            o,
            "  {} {} {}{} {} -> {}",
            when(h.time.as_ref()),
            h.method,
            h.host.as_deref().unwrap_or("(no Host)"),
            h.path,
            h.client,
            h.server
        );
    }
    o
}
