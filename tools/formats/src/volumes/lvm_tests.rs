//! LVM2 volume groups made by the real `lvm` tools on loop devices (activation off, so no
//! device-mapper is needed): the PVs, VG and LVs we read must agree with `pvs` and `lvs`,
//! our LV byte → disk byte mapping with the PE ranges `lvs` reports, and data written at
//! the disk bytes those tools imply must read back through our LV readers.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use super::tables_tests::sfdisk;
use super::{read_layout, Layout, Scheme};
use crate::test_support::{have, source_chunks};
use crate::ReadAt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const NO_DM: &str = "global{activation=0} devices{obtain_device_list_from_udev=0}";
const MIB: u64 = 1 << 20;

fn required() -> bool {
    std::env::var("VESTIGE_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// A loop device, detached when dropped.
pub(super) struct Loop {
    pub(super) path: String,
}

impl Loop {
    /// `losetup --find --show [args] img`; `None` (test skipped) when that is impossible
    /// here (not root, no loop devices), unless `VESTIGE_REQUIRE_TOOLS=1`.
    pub(super) fn attach(img: &Path, args: &[&str]) -> Option<Self> {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .args(args)
            .arg(img)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self {
                path: String::from_utf8_lossy(&o.stdout).trim().to_string(),
            }),
            other => {
                assert!(!required(), "losetup is required but failed: {other:?}");
                eprintln!("skipping: cannot attach a loop device: {other:?}");
                None
            }
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.path]).status();
    }
}

/// A VG removed (metadata and labels wiped) when dropped, before its loops detach.
struct Vg {
    name: String,
    pvs: Vec<String>,
}

impl Drop for Vg {
    fn drop(&mut self) {
        let _ = lvm(&["vgremove", "-f", &self.name]);
        for p in &self.pvs {
            let _ = lvm(&["pvremove", "-ff", "-y", p]);
        }
    }
}

/// Runs an lvm command with activation off; returns stdout.
fn lvm(args: &[&str]) -> String {
    let (cmd, rest) = args.split_first().unwrap();
    crate::test_support::run(Command::new(cmd).args(["--config", NO_DM]).args(rest))
}

/// `lvs`/`pvs` with `fields` of `targets`, one `;`-separated line each, sizes in bytes.
fn lvm_report(cmd: &str, fields: &str, targets: &[&str]) -> String {
    let mut args = vec![
        cmd,
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "--separator",
        ";",
        "-o",
        fields,
    ];
    args.extend_from_slice(targets);
    lvm(&args)
}

/// One segment as `lvs` reports it: LV, first LV extent, extents, stripe size in bytes,
/// and the PE ranges (device, first PE) of its stripes.
#[derive(Debug)]
struct ToolSeg {
    lv: String,
    start_pe: u64,
    extents: u64,
    stripe_bytes: u64,
    ranges: Vec<(String, u64)>,
}

fn tool_segments(vg: &str) -> Vec<ToolSeg> {
    let out = lvm_report(
        "lvs",
        "lv_name,seg_start_pe,seg_size_pe,stripe_size,seg_pe_ranges",
        &[vg],
    );
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.trim().split(';').collect();
            let ranges = f[4]
                .split_whitespace()
                .map(|r| {
                    let (dev, pe) = r.rsplit_once(':').unwrap();
                    (
                        dev.to_string(),
                        pe.split('-').next().unwrap().parse().unwrap(),
                    )
                })
                .collect();
            ToolSeg {
                lv: f[0].to_string(),
                start_pe: f[1].parse().unwrap(),
                extents: f[2].parse().unwrap(),
                stripe_bytes: f[3].parse().unwrap(),
                ranges,
            }
        })
        .collect()
}

/// The disk byte of LV byte `pos` as the tools' report implies it (LVM's striping rule).
fn tool_map(seg: &ToolSeg, ext: u64, pv_base: &BTreeMap<String, u64>, pos_in_seg: u64) -> u64 {
    let n = seg.ranges.len() as u64;
    let (chunk, stripe, row, within) = if n == 1 {
        (0, 0, 0, pos_in_seg)
    } else {
        let k = pos_in_seg / seg.stripe_bytes;
        (
            seg.stripe_bytes,
            k % n,
            k / n,
            pos_in_seg % seg.stripe_bytes,
        )
    };
    let (dev, pe) = &seg.ranges[stripe as usize];
    pv_base[dev] + pe * ext + row * chunk + within
}

struct Built {
    _dir: tempfile::TempDir,
    img: PathBuf,
    segs: Vec<ToolSeg>,
    /// Disk byte of each PV device's first extent.
    pv_base: BTreeMap<String, u64>,
    ext: u64,
    vg: String,
}

/// A 48 MiB disk: two 20 MiB partitions, each a PV of one VG (extent 1 MiB) holding a
/// linear LV, a 2-stripe LV (64 KiB chunks) and an LV of two segments on both PVs. The
/// returned image is a copy taken before the VG is removed.
fn build(tag: &str) -> Option<Built> {
    if !["sfdisk", "losetup", "pvcreate", "lvs"]
        .iter()
        .all(|t| have(t))
    {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lvm.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(48 * MIB)
        .unwrap();
    sfdisk(
        &img,
        "label: dos\nstart=2048,size=40960,type=8e\nstart=43008,size=40960,type=8e\n",
    );
    let starts = [2048 * 512u64, 43008 * 512];
    let loops: Vec<Loop> = starts
        .iter()
        .map(|s| {
            Loop::attach(
                &img,
                &[
                    "--offset",
                    &s.to_string(),
                    "--sizelimit",
                    &(20 * MIB).to_string(),
                ],
            )
        })
        .collect::<Option<_>>()?;
    let devs: Vec<String> = loops.iter().map(|l| l.path.clone()).collect();
    let vg = format!("vestige_{tag}_{}", std::process::id());
    lvm(&["pvcreate", "-y", &devs[0], &devs[1]]);
    let guard = Vg {
        name: vg.clone(),
        pvs: devs.clone(),
    };
    lvm(&["vgcreate", "-s", "1m", &vg, &devs[0], &devs[1]]);
    lvm(&[
        "lvcreate", "-an", "-Zn", "-y", "-L", "3m", "-n", "linear", &vg, &devs[0],
    ]);
    lvm(&[
        "lvcreate", "-an", "-Zn", "-y", "-i2", "-I64k", "-L", "4m", "-n", "striped", &vg,
    ]);
    lvm(&[
        "lvcreate", "-an", "-Zn", "-y", "-L", "2m", "-n", "two", &vg, &devs[1],
    ]);
    lvm(&["lvextend", "-L", "5m", &format!("{vg}/two"), &devs[0]]);
    let segs = tool_segments(&vg);
    let mut pv_base = BTreeMap::new();
    for line in lvm_report("pvs", "pv_name,pe_start", &[&devs[0], &devs[1]]).lines() {
        let f: Vec<&str> = line.trim().split(';').collect();
        let i = devs.iter().position(|d| d == f[0]).unwrap();
        pv_base.insert(f[0].to_string(), starts[i] + f[1].parse::<u64>().unwrap());
    }
    let copy = dir.path().join("copy.img");
    std::fs::copy(&img, &copy).unwrap();
    drop(guard);
    drop(loops);
    Some(Built {
        _dir: dir,
        img: copy,
        segs,
        pv_base,
        ext: MIB,
        vg,
    })
}

fn lv_index(layout: &Layout, name: &str) -> usize {
    layout.volume_groups[0]
        .lvs
        .iter()
        .position(|l| l.name == name)
        .unwrap()
}

#[test]
fn lvm_linear_striped_and_two_segment_lvs_map_as_lvs_reports() {
    let Some(b) = build("map") else {
        return;
    };
    let mut data = std::fs::read(&b.img).unwrap();
    let layout = read_layout(&data, &b.img).unwrap();
    assert_eq!(layout.scheme, Scheme::Mbr);
    assert!(layout.warnings.is_empty(), "{:?}", layout.warnings);
    assert_eq!(layout.physical_volumes.len(), 2);
    assert_eq!(layout.volume_groups.len(), 1);
    let vg = &layout.volume_groups[0];
    assert_eq!(vg.name, b.vg);
    assert_eq!(vg.extent_size_sectors * 512, b.ext);
    assert!(vg.missing_pvs.is_empty());
    let mut names: Vec<&str> = vg.lvs.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["linear", "striped", "two"]);
    let two = &vg.lvs[lv_index(&layout, "two")];
    assert_eq!(two.segments.len(), 2);
    let striped = &vg.lvs[lv_index(&layout, "striped")];
    assert_eq!(striped.segments[0].stripes.len(), 2);
    assert_eq!(striped.segments[0].stripe_size_sectors, Some(128));

    // Our mapping agrees with the tools' at every 4 KiB of every LV.
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (n, lv) in vg.lvs.iter().enumerate() {
        let r = layout.open_lv(&data, 0, n).unwrap();
        assert_eq!(r.size(), lv.size_bytes);
        let segs: Vec<&ToolSeg> = b.segs.iter().filter(|s| s.lv == lv.name).collect();
        let total: u64 = segs.iter().map(|s| s.extents * b.ext).sum();
        assert_eq!(total, lv.size_bytes, "{}", lv.name);
        for s in &segs {
            for pos in (0..s.extents * b.ext).step_by(4096) {
                let lv_pos = s.start_pe * b.ext + pos;
                assert_eq!(
                    r.disk_offset(lv_pos).unwrap(),
                    tool_map(s, b.ext, &b.pv_base, pos),
                    "{} byte {lv_pos}",
                    lv.name
                );
            }
        }
        expected.insert(
            lv.name.clone(),
            source_chunks(usize::try_from(total).unwrap(), n as u64 + 11, 4096, |_| {
                false
            }),
        );
    }
    // Known data written where the tools say each LV byte lives reads back through us.
    for s in &b.segs {
        let want = &expected[&s.lv];
        for pos in (0..s.extents * b.ext).step_by(512) {
            let lv_pos = usize::try_from(s.start_pe * b.ext + pos).unwrap();
            let at = usize::try_from(tool_map(s, b.ext, &b.pv_base, pos)).unwrap();
            data[at..at + 512].copy_from_slice(&want[lv_pos..lv_pos + 512]);
        }
    }
    let layout = read_layout(&data, &b.img).unwrap();
    for (n, lv) in layout.volume_groups[0].lvs.iter().enumerate() {
        let r = layout.open_lv(&data, 0, n).unwrap();
        let want = &expected[&lv.name];
        assert!(
            crate::test_support::read_all(&r, 100_003) == *want,
            "{}",
            lv.name
        );
        crate::test_support::check_random_reads_with(&r, want, 100, 300_000, 20);
    }
}

#[test]
fn lvm_with_a_pv_missing_names_it_and_reads_what_is_there() {
    let Some(b) = build("miss") else {
        return;
    };
    let mut data = std::fs::read(&b.img).unwrap();
    // Wipe the second PV's label (sector 1 of partition 2).
    let label = 43008 * 512 + 512;
    data[label..label + 512].fill(0);
    let layout = read_layout(&data, &b.img).unwrap();
    assert_eq!(layout.physical_volumes.len(), 1);
    let vg = &layout.volume_groups[0];
    assert_eq!(vg.missing_pvs, ["pv1"]);
    let w = layout
        .warnings
        .iter()
        .find(|w| w.field == "LVM physical_volumes")
        .unwrap();
    assert!(w.message.contains("pv1"), "{w}");
    // The linear LV (on pv0) reads; the striped one fails on its first pv1 chunk.
    let linear = layout
        .open_lv(&data, 0, lv_index(&layout, "linear"))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    assert_eq!(linear.read_at(&mut buf, 0).unwrap(), buf.len());
    let striped = layout
        .open_lv(&data, 0, lv_index(&layout, "striped"))
        .unwrap();
    assert_eq!(striped.read_at(&mut buf, 0).unwrap(), buf.len());
    let e = striped.read_at(&mut buf, 64 * 1024).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(e.to_string().contains("pv1"), "{e}");
}

#[test]
fn lvm_pv_cut_short_gives_an_error_past_its_end() {
    let Some(b) = build("cut") else {
        return;
    };
    let data = std::fs::read(&b.img).unwrap();
    // The image ends inside partition 2: PV 2's LV extents past the cut cannot be read.
    let cut = &data[..usize::try_from(43008 * 512 + 2 * MIB).unwrap()];
    let layout = read_layout(&cut, &b.img).unwrap();
    assert!(
        layout
            .warnings
            .iter()
            .any(|w| w.field == "partition extent"),
        "{:?}",
        layout.warnings
    );
    let two = layout.open_lv(&cut, 0, lv_index(&layout, "two")).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut errors = 0;
    for pos in (0..two.size()).step_by(64 * 1024) {
        if let Err(e) = two.read_at(&mut buf, pos) {
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
            errors += 1;
        }
    }
    assert!(errors > 0);
}
