//! `vestige volumes`: the partition table and LVM volume groups of an image, like `mmls`.

use crate::exit::Exit;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use vestige_evidence::text::display_safe;
use vestige_formats::volumes::{self, Layout, SlotKind, VolumeGroup};

#[derive(Debug, Args)]
pub struct VolumesArgs {
    /// The image (any format `vestige image info` reads: raw, E01, qcow2, VMDK, …).
    pub image: PathBuf,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &VolumesArgs) -> Result<Exit> {
    let image = vestige_formats::open(&a.image)?;
    let layout = volumes::read_layout(&*image, &a.image)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&layout)?);
    } else {
        print_layout(&layout);
    }
    Ok(Exit::Ok)
}

/// Evidence strings (GPT names, LVM names, warnings quoting them) are escaped.
fn safe(s: &str) -> String {
    display_safe(s.as_bytes())
}

fn print_layout(l: &Layout) {
    let scheme = match l.scheme {
        volumes::Scheme::Mbr => "DOS/MBR partition table",
        volumes::Scheme::Gpt => "GUID partition table (GPT)",
        volumes::Scheme::None => "no partition table",
    };
    println!("scheme: {scheme}");
    println!("sector size: {} bytes", l.sector_size);
    println!("disk size: {} bytes", l.disk_size_bytes);
    for w in &l.warnings {
        println!("warning: {}", safe(&w.to_string()));
    }
    println!();
    println!("      Slot      Start        End          Length       Description");
    for (i, s) in l.slots.iter().enumerate() {
        let slot = match (s.kind, s.table, s.entry) {
            (SlotKind::Meta, _, _) => "Meta".to_string(),
            (SlotKind::Unallocated, _, _) => "-------".to_string(),
            (SlotKind::Partition, Some(t), Some(e)) => format!("{t:03}:{e:03}"),
            (SlotKind::Partition, None, Some(e)) => format!("{e:03}"),
            (SlotKind::Partition, _, None) => "?".to_string(),
        };
        let mut desc = safe(&s.description);
        if let Some(p) = &s.partition {
            if p.name.as_deref().is_some_and(|n| !n.is_empty()) {
                desc = format!("{desc} [{}]", safe(&p.type_name));
            }
        }
        println!(
            "{i:03}:  {slot:<9} {:010}   {:010}   {:010}   {desc}",
            s.start_sector, s.end_sector, s.length_sectors
        );
    }
    for pv in &l.physical_volumes {
        println!();
        println!(
            "LVM PV {} at byte {} ({} bytes){}",
            safe(&pv.uuid),
            pv.start_bytes,
            pv.size_bytes,
            pv.vg_name
                .as_deref()
                .map(|v| format!(", VG {}", safe(v)))
                .unwrap_or_default()
        );
    }
    for vg in &l.volume_groups {
        print_vg(vg);
    }
}

fn print_vg(vg: &VolumeGroup) {
    println!();
    println!(
        "volume group {} (id {}, seqno {}, extent {} sectors)",
        safe(&vg.name),
        safe(&vg.id),
        vg.seqno,
        vg.extent_size_sectors
    );
    for p in &vg.pvs {
        let at = p
            .found_at
            .map(|(s, _)| format!("at byte {s}"))
            .unwrap_or_else(|| "MISSING from this image".to_string());
        println!(
            "  PV {} ({}): {} extents from sector {}, {at}",
            safe(&p.name),
            safe(&p.id),
            p.pe_count,
            p.pe_start_sectors
        );
    }
    for lv in &vg.lvs {
        println!(
            "  LV {}: {} bytes, {} segment(s){}",
            safe(&lv.name),
            lv.size_bytes,
            lv.segments.len(),
            if lv.is_readable() {
                ""
            } else {
                " (not readable here)"
            }
        );
        for s in &lv.segments {
            let stripes: Vec<String> = s
                .stripes
                .iter()
                .map(|st| format!("{}@{}", safe(&st.pv), st.start_extent))
                .collect();
            let chunk = s
                .stripe_size_sectors
                .filter(|_| s.stripes.len() > 1)
                .map(|c| format!(", stripe {c} sectors"))
                .unwrap_or_default();
            println!(
                "    extents {}+{} {}{chunk}: {}",
                s.start_extent,
                s.extent_count,
                safe(&s.seg_type),
                stripes.join(" ")
            );
            if let Some(n) = &s.note {
                println!("      note: {}", safe(n));
            }
        }
    }
}
