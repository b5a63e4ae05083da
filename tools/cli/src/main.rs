//! `vestige`: the command line of the Vestige forensic appliance.
//!
//! Thin by design: it parses arguments, wires the libraries together and talks to the
//! examiner. Results for scripts go to stdout (JSON with `--json`), messages to stderr.

mod cmd_acquire;
mod cmd_analyze;
mod cmd_capture;
mod cmd_case;
mod cmd_collect;
mod cmd_export;
mod cmd_export_e01;
mod cmd_fs;
mod cmd_image;
mod cmd_key;
mod cmd_symbols;
mod cmd_timeline;
mod cmd_verify;
mod cmd_volumes;
mod exit;
mod keys;
mod progress;
mod signals;

use clap::{Parser, Subcommand};
use exit::Exit;

/// Vestige: forensic acquisition and verification with evidence any examiner can check.
#[derive(Debug, Parser)]
#[command(name = "vestige", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Signing keys (signify/minisign-compatible Ed25519).
    #[command(subcommand)]
    Key(cmd_key::KeyCommand),
    /// Cases: case.json and the chain-of-custody log.
    #[command(subcommand)]
    Case(cmd_case::CaseCommand),
    /// Acquire evidence into a case.
    #[command(subcommand)]
    Acquire(cmd_acquire::AcquireCommand),
    /// Analyse a whole case into a report (`vestige analyze CASE`), or one item
    /// (`vestige analyze pcap|pslist|sockstat`).
    Analyze(cmd_analyze::AnalyzeArgs),
    /// Filter a case's super-timeline (CASE/report/timeline.jsonl) by time and text.
    Timeline(cmd_timeline::TimelineArgs),
    /// Capture network traffic into a case.
    #[command(subcommand)]
    Capture(cmd_capture::CaptureCommand),
    /// Collect volatile state of this running system into a case.
    #[command(subcommand)]
    Collect(cmd_collect::CollectCommand),
    /// Make a Volatility 3 symbol table (ISF) from a memory item's captured BTF and kallsyms.
    Symbols(cmd_symbols::SymbolsArgs),
    /// Verify a case or an evidence item: signature, file hashes, every chunk, source hash.
    Verify(cmd_verify::VerifyArgs),
    /// Export evidence to other formats.
    #[command(subcommand)]
    Export(cmd_export::ExportCommand),
    /// Disk images handed to the examiner (E01, qcow2, VMDK, VHD, VHDX, VDI, raw).
    #[command(subcommand)]
    Image(cmd_image::ImageCommand),
    /// Partition table (MBR, GPT) and LVM volume groups of an image, like mmls.
    Volumes(cmd_volumes::VolumesArgs),
    /// List a directory of an image's file system like fls (deleted entries marked `*`).
    Ls(cmd_fs::LsArgs),
    /// A TSK 3.x bodyfile of every file system of an image (deleted entries included).
    Bodyfile(cmd_fs::BodyfileArgs),
    /// What each file system of an image is, and its notes (features, times, journal
    /// replay), like fsstat.
    Fsstat(cmd_fs::FsstatArgs),
    /// A file's content (by path or inode) to stdout or a new file, with its SHA-256.
    Cat(cmd_fs::CatArgs),
    /// Copy files or directories out of an image into a directory, safely, with a
    /// sidecar JSON of their metadata and hashes.
    Extract(cmd_fs::ExtractArgs),
    /// The NTFS change journal ($UsnJrnl:$J): every record, its reasons and the path of
    /// its parent (resolved through the MFT at analysis time).
    Usnjrnl(cmd_fs::UsnArgs),
    /// The ext3/4 journal block by block: the live log a replay reads, and older
    /// transactions still in it (earlier copies of inode tables and directories), like
    /// jls.
    Journal(cmd_fs::JournalArgs),
}

fn main() -> std::process::ExitCode {
    signals::quiet_broken_pipe();
    let filter = tracing_subscriber::EnvFilter::try_from_env("VESTIGE_LOG")
        // The evtx crate logs its own progress at info: only its warnings are ours to show.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,evtx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Key(c) => cmd_key::run(c),
        Command::Case(c) => cmd_case::run(c),
        Command::Acquire(c) => cmd_acquire::run(c),
        Command::Analyze(c) => cmd_analyze::run(c),
        Command::Timeline(a) => cmd_timeline::run(&a),
        Command::Capture(c) => cmd_capture::run(c),
        Command::Collect(c) => cmd_collect::run(c),
        Command::Symbols(a) => cmd_symbols::run(&a),
        Command::Verify(a) => cmd_verify::run(&a),
        Command::Export(c) => cmd_export::run(c),
        Command::Image(c) => cmd_image::run(c),
        Command::Volumes(a) => cmd_volumes::run(&a),
        Command::Ls(a) => cmd_fs::ls(&a),
        Command::Bodyfile(a) => cmd_fs::bodyfile(&a),
        Command::Fsstat(a) => cmd_fs::fsstat(&a),
        Command::Cat(a) => cmd_fs::cat(&a),
        Command::Extract(a) => cmd_fs::extract(&a),
        Command::Usnjrnl(a) => cmd_fs::usnjrnl(&a),
        Command::Journal(a) => cmd_fs::journal(&a),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("vestige: error: {e:#}");
            Exit::Failed.into()
        }
    }
}
