//! `vestige collect live`: the volatile state of this system as a signed evidence item.

use crate::cmd_acquire::{open_item, ItemArgs};
use crate::exit::Exit;
use anyhow::Result;
use clap::{Args, Subcommand};
use vestige_acquire::live_item::{collect_live, LiveRequest, SUMMARY_FILE};

#[derive(Debug, Subcommand)]
pub enum CollectCommand {
    /// Processes, connections and listening ports, routes, neighbours, interfaces, kernel
    /// modules, mounts, logins and clocks of this running system, read from /proc and /sys
    /// (no program of the system is run), with copies of running binaries whose file was
    /// deleted.
    Live(LiveArgs),
}

#[derive(Debug, Args)]
pub struct LiveArgs {
    #[command(flatten)]
    pub item: ItemArgs,
    /// Also record each process's environment (it may hold credentials).
    #[arg(long)]
    pub environment: bool,
}

pub fn run(cmd: CollectCommand) -> Result<Exit> {
    match cmd {
        CollectCommand::Live(a) => live(&a),
    }
}

fn live(a: &LiveArgs) -> Result<Exit> {
    let setup = open_item(&a.item)?;
    let outcome = collect_live(&LiveRequest {
        ctx: setup.context(&a.item),
        include_environment: a.environment,
    })?;
    let s = &outcome.snapshot;
    let listening = s
        .sockets
        .iter()
        .filter(|x| x.state == "LISTEN" || (x.protocol.starts_with("udp") && x.remote_port == 0))
        .count();
    let summary = serde_json::json!({
        "item": outcome.item_dir.display().to_string(),
        "processes": s.processes.len(),
        "sockets": s.sockets.len(),
        "listening": listening,
        "unix_sockets": s.unix_sockets.len(),
        "modules": s.modules.len(),
        "deleted_executables": s.processes.iter().filter(|p| p.exe_deleted).count(),
        "recovered_binaries": s.recovered.iter().map(|r| &r.file_name).collect::<Vec<_>>(),
        "collect_errors": s.errors.len(),
        "live_json_sha256": outcome.manifest.hashes.sha256,
        "key_fingerprint": setup.key.public_key().fingerprint(),
        "public_key": setup.public_key_file,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    eprintln!(
        "collected {} processes, {} sockets; readable summary in {}",
        s.processes.len(),
        s.sockets.len(),
        outcome.item_dir.join(SUMMARY_FILE).display()
    );
    Ok(Exit::Ok)
}
