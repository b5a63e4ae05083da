//! `vestige capture net`: packets of one interface into a signed pcapng item.

use crate::cmd_acquire::{open_item, ItemArgs};
use crate::exit::Exit;
use crate::signals;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::time::Duration;
use vestige_acquire::net::{capture_net, NetRequest, CAPTURE_FILE};
use vestige_evidence::manifest::Status;

#[derive(Debug, Subcommand)]
pub enum CaptureCommand {
    /// Capture packets of an interface (AF_PACKET, no libpcap) into a pcapng item.
    Net(NetArgs),
}

#[derive(Debug, Args)]
pub struct NetArgs {
    /// The interface, e.g. eth0.
    #[arg(long)]
    pub iface: String,
    #[command(flatten)]
    pub item: ItemArgs,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Stop after this many packets.
    #[arg(long)]
    pub count: Option<u64>,
    /// Bytes kept of each packet.
    #[arg(long, default_value_t = 65535, value_parser = clap::value_parser!(u32).range(64..=262_144))]
    pub snap_len: u32,
}

pub fn run(cmd: CaptureCommand) -> Result<Exit> {
    match cmd {
        CaptureCommand::Net(a) => net(&a),
    }
}

fn net(a: &NetArgs) -> Result<Exit> {
    if a.duration.is_none() && a.count.is_none() {
        bail!("give --duration SECONDS or --count PACKETS (or both): a capture must end by itself");
    }
    let setup = open_item(&a.item)?;
    signals::catch_interrupts();
    eprintln!("capturing on {} …", a.iface);
    let outcome = capture_net(
        &NetRequest {
            ctx: setup.context(&a.item),
            interface: &a.iface,
            duration: a.duration.map(Duration::from_secs),
            count: a.count,
            snap_len: a.snap_len,
        },
        &signals::CANCEL,
    )?;
    let m = &outcome.manifest;
    let c = m.capture.clone().unwrap_or_default();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "item": outcome.item_dir.display().to_string(),
            "file": CAPTURE_FILE,
            "packets": c.packets,
            "wire_bytes": c.wire_bytes,
            "stop_reason": c.stop_reason,
            "sha256": m.hashes.sha256,
            "status": m.status,
            "key_fingerprint": setup.key.public_key().fingerprint(),
            "public_key": setup.public_key_file,
        }))
        .unwrap_or_default()
    );
    eprintln!("captured {} packets ({})", c.packets, c.stop_reason);
    Ok(match m.status {
        Status::Complete => Exit::Ok,
        Status::Incomplete => Exit::Incomplete,
    })
}
