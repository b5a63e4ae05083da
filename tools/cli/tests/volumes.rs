//! `vestige volumes` on disks partitioned by sfdisk and sgdisk: the table it prints for an
//! MBR disk with logical partitions is `mmls`'s, row for row; a GPT disk converted to
//! qcow2 gives the same layout as its raw form (any image format works), and a hostile
//! partition name is printed escaped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{have, ok, vestige};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn sparse(dir: &Path, name: &str, mib: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
    p
}

/// The table rows (`NNN:  …`) of mmls-style output.
fn rows(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            l.len() > 5 && l.as_bytes()[..3].iter().all(u8::is_ascii_digit) && &l[3..6] == ":  "
        })
        .map(|l| l.trim_end().to_string())
        .collect()
}

#[test]
fn volumes_prints_the_mmls_table_of_an_mbr_disk_with_logicals() {
    if !have("sfdisk") || !have("mmls") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = sparse(t.path(), "mbr.img", 64);
    let mut child = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(&img)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"label: dos\nstart=2048,size=8192,type=83\nstart=10240,size=8192,type=7\n\
              start=20480,size=8192,type=82\nstart=30720,size=90000,type=5\n\
              start=32768,size=4096,type=83\nstart=38912,size=4096,type=83\n\
              start=45056,size=4096,type=c\n",
        )
        .unwrap();
    assert!(child.wait().unwrap().success());
    let ours = ok(vestige().arg("volumes").arg(&img));
    assert!(
        ours.starts_with("scheme: DOS/MBR partition table\nsector size: 512 bytes\n"),
        "{ours}"
    );
    let theirs = ok(Command::new("mmls").arg(&img));
    assert_eq!(rows(&ours), rows(&theirs));
    assert_eq!(rows(&ours).len(), 19);
}

#[test]
fn volumes_reads_a_gpt_through_qcow2_and_escapes_names() {
    if !have("sgdisk") || !have("qemu-img") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = sparse(t.path(), "gpt.img", 32);
    ok(Command::new("sgdisk")
        .args([
            "-n1:2048:+8M",
            "-t1:ef00",
            "-c1:EFI",
            "-n2:0:+4M",
            "-t2:8e00",
        ])
        .arg("-c2:evil\x1b[2Jname")
        .arg(&img));
    let qcow = t.path().join("gpt.qcow2");
    ok(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&img)
        .arg(&qcow));
    let raw: serde_json::Value =
        serde_json::from_str(&ok(vestige().args(["volumes", "--json"]).arg(&img))).unwrap();
    let q: serde_json::Value =
        serde_json::from_str(&ok(vestige().args(["volumes", "--json"]).arg(&qcow))).unwrap();
    assert_eq!(raw, q);
    assert_eq!(q["scheme"], "gpt");
    assert_eq!(q["warnings"].as_array().unwrap().len(), 0, "{q}");
    let parts: Vec<&serde_json::Value> = q["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "partition")
        .collect();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["start_sector"], 2048);
    assert_eq!(parts[0]["length_sectors"], 16384);
    assert_eq!(parts[0]["partition"]["type_name"], "EFI System");
    assert_eq!(parts[1]["partition"]["type_name"], "Linux LVM");
    let text = ok(vestige().arg("volumes").arg(&qcow));
    assert!(text.contains("evil\\x1b[2Jname [Linux LVM]"), "{text}");
    assert!(!text.contains('\x1b'));
}
