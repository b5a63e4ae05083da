//! `vestige image info`: what an image file is, by its content.

use crate::exit::Exit;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use vestige_formats::ImageInfo;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Format, virtual size, files, backing chain, snapshots and stored hashes of an
    /// image (E01, qcow2, VMDK, VHD, VHDX, VDI, raw or split raw, or a Vestige item),
    /// recognised by content. Opened read-only.
    Info(InfoArgs),
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The image (any file of a split set or EWF segment set; an item directory).
    pub image: PathBuf,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: ImageCommand) -> Result<Exit> {
    match cmd {
        ImageCommand::Info(a) => info(&a),
    }
}

fn info(a: &InfoArgs) -> Result<Exit> {
    let image = vestige_formats::open(&a.image)?;
    let info = image.info();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_info(&info, 0);
    }
    Ok(Exit::Ok)
}

/// The human-readable form; a backing image is indented under its child. Every string
/// from the image is escaped (file names and metadata are evidence).
fn print_info(i: &ImageInfo, depth: usize) {
    let pad = "  ".repeat(depth);
    let safe = |s: &str| vestige_evidence::text::display_safe(s.as_bytes());
    println!(
        "{pad}format: {}{}",
        safe(&i.format),
        i.variant
            .as_deref()
            .map(|v| format!(" ({})", safe(v)))
            .unwrap_or_default()
    );
    println!("{pad}virtual size: {} bytes", i.virtual_size_bytes);
    for f in &i.files {
        println!("{pad}file: {}", safe(&f.to_string_lossy()));
    }
    for (alg, h) in &i.stored_hashes {
        println!("{pad}stored {}: {}", safe(alg), safe(h));
    }
    for s in &i.snapshots {
        println!(
            "{pad}snapshot {}: {} ({} bytes{})",
            safe(&s.id),
            safe(&s.name),
            s.virtual_size_bytes,
            s.taken_utc
                .as_deref()
                .map(|t| format!(", taken {}", safe(t)))
                .unwrap_or_default()
        );
    }
    for n in &i.notes {
        println!("{pad}note: {}", safe(n));
    }
    if let Some(b) = &i.backing {
        println!("{pad}backing image:");
        print_info(b, depth + 1);
    }
}
