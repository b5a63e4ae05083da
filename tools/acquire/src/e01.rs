//! `acquire disk --format e01`: an EnCase 6 style E01 segment set inside the item, for
//! labs whose tools take E01 as the evidence of record.
//!
//! The E01 is written from the finished image.zst, not from a second read of the source:
//! the source is read once, and the E01 is derived from bytes already hashed. Its MD5 and
//! SHA-1 (the only hashes EWF1 has room for) must equal those the acquisition computed
//! from the source, or the E01 is removed and the item is sealed without it. Its segments
//! are listed in the manifest and signed like every other output file. Unreadable sectors
//! (zero-filled in the image) go into its error2 section, as ewfacquire records them.

use std::path::{Path, PathBuf};
use vestige_evidence::manifest::{ByteRange, CaseRef, SourceIdentity};
use vestige_formats::ewf_write::{EwfMetadata, EwfOptions, EwfWriter};
use vestige_formats::stream::{default_threads, for_each_block, BLOCK_BYTES};
use vestige_formats::FormatError;

/// The first segment's name in the item; later ones are image.E02 …
pub const E01_FILE: &str = "image.E01";

/// What goes into the E01's header besides the bytes.
#[derive(Debug, Clone)]
pub struct E01Request<'a> {
    /// The case id, examiner, item name and notes.
    pub case: &'a vestige_evidence::manifest::CaseRef,
    /// The source's identity (model, serial, path).
    pub source: &'a SourceIdentity,
    /// When the acquisition started (UTC, RFC 3339).
    pub started_utc: &'a str,
    /// Zero-filled ranges of the image.
    pub unreadable: &'a [ByteRange],
    /// The source's MD5 and SHA-1, as the acquisition computed them.
    pub md5: &'a str,
    /// See `md5`.
    pub sha1: &'a str,
    /// Tool version for the header.
    pub tool_version: &'a str,
}

/// Writes `item_dir/image.E01…` from the container `image` and checks its hashes.
/// Returns the segment paths. On any error the segments written are removed.
///
/// # Errors
/// A write or read error, or hashes that differ from the acquisition's.
pub fn write_from_image(
    item_dir: &Path,
    image: &Path,
    req: &E01Request<'_>,
) -> Result<Vec<PathBuf>, String> {
    let first = item_dir.join(E01_FILE);
    let result = write(&first, image, req);
    if result.is_err() {
        vestige_formats::ewf_write::remove_segment_set(&first);
    }
    result
}

/// The E01 header of an acquisition: case number, examiner and notes from the case, the
/// item as evidence number, the source's vendor, model, path and serial, and when it
/// started (RFC 3339; the epoch if unparsable, the manifest keeping the real string).
#[must_use]
pub fn ewf_metadata(
    case: &CaseRef,
    source: &SourceIdentity,
    started_utc: &str,
    tool_version: &str,
) -> EwfMetadata {
    let model = [source.vendor.as_deref(), source.model.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    EwfMetadata {
        case_number: case.case_id.clone(),
        evidence_number: case.item.clone(),
        description: format!("{model} {}", source.path).trim().to_string(),
        examiner_name: case.examiner.clone(),
        notes: case.notes.clone().unwrap_or_default(),
        acquisition_date_unix: time::OffsetDateTime::parse(
            started_utc,
            &time::format_description::well_known::Rfc3339,
        )
        .map_or(0, time::OffsetDateTime::unix_timestamp),
        system_date_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
        acquiry_software: "vestige".to_string(),
        acquiry_software_version: tool_version.to_string(),
        acquiry_os: std::env::consts::OS.to_string(),
        model,
        serial_number: source.serial.clone().unwrap_or_default(),
    }
}

/// Records the zero-filled byte ranges of an image as unreadable sectors (error2), each
/// widened to whole sectors of `sector_bytes`.
///
/// # Errors
/// A range the writer refuses (outside the media, past EWF1's 32-bit sector numbers).
pub fn mark_unreadable(
    writer: &mut EwfWriter,
    ranges: &[ByteRange],
    sector_bytes: u32,
) -> Result<(), FormatError> {
    let sector = u64::from(sector_bytes.max(1));
    for r in ranges {
        let start = r.offset_bytes / sector;
        let end = r
            .offset_bytes
            .saturating_add(r.length_bytes)
            .div_ceil(sector);
        writer.mark_unreadable(start, end.saturating_sub(start))?;
    }
    Ok(())
}

fn write(first: &Path, image: &Path, req: &E01Request<'_>) -> Result<Vec<PathBuf>, String> {
    let reader = vestige_formats::container::Container::open(image).map_err(|e| e.to_string())?;
    let size = vestige_formats::ReadAt::size(&reader);
    let meta = ewf_metadata(req.case, req.source, req.started_utc, req.tool_version);
    let sector_bytes = req.source.logical_sector_size.unwrap_or(512);
    let options = EwfOptions {
        bytes_per_sector: if matches!(sector_bytes, 512 | 1024 | 2048 | 4096) {
            sector_bytes
        } else {
            512
        },
        ..EwfOptions::default()
    };
    let mut writer = EwfWriter::create(first, size, &meta, &options).map_err(|e| e.to_string())?;
    mark_unreadable(&mut writer, req.unreadable, options.bytes_per_sector)
        .map_err(|e| e.to_string())?;
    for_each_block(&reader, BLOCK_BYTES, default_threads(), |_, block| {
        writer.write(&block).map_err(FormatError::into_io)
    })
    .map_err(|e| format!("reading {}: {e}", image.display()))?;
    let summary = writer.finish().map_err(|e| e.to_string())?;
    for (name, want, got) in [
        ("MD5", req.md5, &summary.md5),
        ("SHA-1", req.sha1, &summary.sha1),
    ] {
        if !want.eq_ignore_ascii_case(got) {
            return Err(format!(
                "the E01's {name} {got} differs from the source's {want}: the E01 was removed"
            ));
        }
    }
    Ok(summary.segments)
}
