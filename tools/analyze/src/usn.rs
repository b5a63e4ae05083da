//! The NTFS change journal (`$Extend/$UsnJrnl:$J`) in the super-timeline: every V2/V3
//! record as an event, with its reasons (`FILE_CREATE`, `DATA_EXTEND`, `RENAME_NEW_NAME`,
//! `FILE_DELETE` …). The journal outlives the files it names: it shows what was
//! created, renamed and deleted even after the MFT entries were reused.

use crate::collected::Collected;
use crate::event::{Event, Evidence};
use crate::text::display_safe;
use serde::Serialize;
use std::collections::HashMap;
use vestige_fs::ntfs::Ntfs;
use vestige_fs::FsError;

/// Journal records turned into events (the rest are counted).
pub const MAX_USN_EVENTS: u64 = 2_000_000;

/// What the journal scan saw, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UsnSummary {
    /// `$J`'s logical size.
    pub stream_bytes: u64,
    /// Bytes never stored (the sparse head the journal has discarded).
    pub sparse_bytes: u64,
    /// Records parsed.
    pub records: u64,
    /// Records beyond [`MAX_USN_EVENTS`], not in the timeline.
    pub records_not_in_timeline: u64,
    /// Bytes skipped as damaged.
    pub skipped_bytes: u64,
}

/// The journal of `ntfs` as events of volume `volume`; `None` when the volume keeps no
/// journal.
pub fn collect(ntfs: &Ntfs<'_>, volume: &str) -> Option<(UsnSummary, Collected)> {
    let mut out = Collected::default();
    let mut parents: HashMap<(u64, u16), Option<String>> = HashMap::new();
    let mut taken = 0u64;
    let base = Evidence {
        volume: volume.to_string(),
        path: Some("/$Extend/$UsnJrnl:$J".to_string()),
        ..Evidence::default()
    };
    let scan = ntfs.usn_journal(|r| {
        if taken >= MAX_USN_EVENTS {
            return;
        }
        taken += 1;
        let parent = parents
            .entry(r.parent_ref)
            .or_insert_with(|| {
                ntfs.path_of(r.parent_ref.0, r.parent_ref.1)
                    .map(|p| display_safe(&p))
            })
            .clone();
        let name = display_safe(&r.name);
        let reasons = r.reason_names.join("|");
        let shown = match &parent {
            Some(p) if p == "/" => format!("/{name}"),
            Some(p) => format!("{p}/{name}"),
            None => format!(
                "(parent entry {}-{})/{name}",
                r.parent_ref.0, r.parent_ref.1
            ),
        };
        let mut evidence = base.at_offset(r.offset);
        evidence.inode = Some(r.file_ref.0);
        evidence.record = u64::try_from(r.usn).ok();
        out.events.push(
            Event::new(
                r.time,
                "usnjrnl",
                "usn_change",
                format!("{shown}: {reasons}"),
                evidence,
            )
            .field("reasons", reasons.clone())
            .field("file_ref", format!("{}-{}", r.file_ref.0, r.file_ref.1))
            .field(
                "parent_ref",
                format!("{}-{}", r.parent_ref.0, r.parent_ref.1),
            )
            .field("name", name)
            .time_note("parent path resolved through the MFT at analysis time"),
        );
    });
    let scan = match scan {
        Ok(s) => s,
        Err(FsError::NotFound { .. }) => return None,
        Err(e) => {
            out.problem(format!("{volume}: change journal: {e}"));
            return Some((UsnSummary::default(), out));
        }
    };
    for (offset, what) in &scan.problems {
        out.problem(format!("{volume}: $UsnJrnl:$J offset {offset}: {what}"));
    }
    if scan.problems_dropped > 0 {
        out.problem(format!(
            "{volume}: $UsnJrnl:$J: {} more problems not listed",
            scan.problems_dropped
        ));
    }
    Some((
        UsnSummary {
            stream_bytes: scan.stream_size,
            sparse_bytes: scan.sparse_bytes,
            records: scan.records,
            records_not_in_timeline: scan.records.saturating_sub(taken),
            skipped_bytes: scan.skipped_bytes,
        },
        out,
    ))
}
