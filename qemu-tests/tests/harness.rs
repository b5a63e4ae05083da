//! The harness itself, without the appliance: disks made by the real tools read back as
//! the boot tests read them, and QEMU's failures reported rather than hung on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;
use std::time::Duration;
use vestige_qemu_tests::appliance::{missing_tools, tools_required};
use vestige_qemu_tests::disk;
use vestige_qemu_tests::evidence::{ext4_state, extract_ext4};
use vestige_qemu_tests::vm::{self, Accel, Boot, Bus, Drive, Ending};

fn have(tools: &[&str]) -> bool {
    let missing = missing_tools(tools);
    if missing.is_empty() {
        return true;
    }
    assert!(
        !tools_required(),
        "VESTIGE_REQUIRE_TOOLS=1: missing {}",
        missing.join(", ")
    );
    eprintln!("note: skipping: missing {}", missing.join(", "));
    false
}

fn stdout(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn evidence_disk_has_named_partition_and_reads_back_without_mounting() {
    if !have(&["sgdisk", "mkfs.ext4", "debugfs", "dumpe2fs"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let ev = disk::make_evidence_disk(t.path(), "evidence.raw", 64).unwrap();
    assert_eq!(std::fs::metadata(&ev.path).unwrap().len(), 64 << 20);
    let info = stdout(Command::new("sgdisk").args(["-i", "1"]).arg(&ev.path));
    assert!(
        info.contains("Partition name: 'VESTIGE-EVIDENCE'"),
        "{info}"
    );
    assert!(info.contains("First sector: 2048 "), "{info}");
    assert_eq!(ev.partition_offset_bytes, 2048 * 512);

    let state = ext4_state(&ev.path, ev.partition_offset_bytes).unwrap();
    assert!(state.clean && !state.needs_recovery, "{state:?}");

    // What the appliance would write, put there with debugfs -w, comes back by rdump.
    let src = t.path().join("manifest.json");
    std::fs::write(&src, b"{\"x\":1}\n").unwrap();
    let spec = format!("{}?offset={}", ev.path.display(), ev.partition_offset_bytes);
    let script = t.path().join("cmds");
    std::fs::write(
        &script,
        format!(
            "mkdir C-1\nmkdir C-1/vda\nwrite {} C-1/vda/manifest.json\n",
            src.display()
        ),
    )
    .unwrap();
    stdout(
        Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(&spec),
    );
    let out = t.path().join("out");
    extract_ext4(&ev.path, ev.partition_offset_bytes, &out).unwrap();
    assert_eq!(
        std::fs::read(out.join("C-1/vda/manifest.json")).unwrap(),
        b"{\"x\":1}\n"
    );
}

#[test]
fn target_disk_is_gpt_ext4_with_files_and_deterministic_tail() {
    if !have(&["sgdisk", "mkfs.ext4", "debugfs", "dumpe2fs"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let files = disk::write_sample_files(t.path()).unwrap();
    let target = disk::make_target(t.path(), "target.raw", 64, &files).unwrap();
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 64 << 20);
    let info = stdout(Command::new("sgdisk").args(["-i", "1"]).arg(&target));
    assert!(info.contains("Partition name: 'suspect-root'"), "{info}");
    let out = t.path().join("out");
    extract_ext4(&target, 2048 * 512, &out).unwrap();
    assert_eq!(
        std::fs::read(out.join("etc/hostname")).unwrap(),
        b"suspect\n"
    );
    assert_eq!(
        disk::sha256_file(&out.join("var/lib/blob.bin")).unwrap(),
        disk::sha256_file(&files.join("var/lib/blob.bin")).unwrap()
    );
    // Hashing twice gives the same digest (the harness never touches the file).
    assert_eq!(
        disk::sha256_file(&target).unwrap(),
        disk::sha256_file(&target).unwrap()
    );
}

#[test]
fn qemu_command_attaches_virtio_read_only_and_ahci_disks() {
    let boot = Boot {
        kernel: "/k".into(),
        initrd: "/i".into(),
        cmdline: "console=ttyS0 vestige.examiner=\"A B\"".into(),
        drives: vec![
            Drive {
                path: "/d/t,1.raw".into(),
                bus: Bus::Virtio,
                read_only: true,
                blkdebug: None,
            },
            Drive {
                path: "/d/s.raw".into(),
                bus: Bus::Ahci,
                read_only: false,
                blkdebug: None,
            },
            Drive {
                path: "/d/e.raw".into(),
                bus: Bus::Virtio,
                read_only: false,
                blkdebug: None,
            },
        ],
        memory_mib: 1024,
        cpus: 2,
        timeout: Duration::from_secs(1),
        accel: Accel::Tcg,
    };
    let cmd = boot.command(Accel::Tcg);
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let joined = args.join(" ");
    assert!(
        joined.contains("-drive file=/d/t,,1.raw,format=raw,if=virtio,readonly=on"),
        "{joined}"
    );
    assert!(joined.contains("-device ahci,id=ahci0 -drive if=none,id=disk1,file=/d/s.raw,format=raw -device ide-hd,drive=disk1,bus=ahci0.0"), "{joined}");
    assert!(
        joined.ends_with("-drive file=/d/e.raw,format=raw,if=virtio"),
        "{joined}"
    );
    // The command line is one argument, quotes and all.
    assert!(args
        .iter()
        .any(|a| a == "console=ttyS0 vestige.examiner=\"A B\""));
}

#[test]
fn qemu_failing_to_load_a_kernel_is_reported_not_hung() {
    if !have(&[vm::QEMU]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let junk = t.path().join("not-a-kernel");
    std::fs::write(&junk, b"junk").unwrap();
    let boot = Boot {
        kernel: junk.clone(),
        initrd: junk,
        cmdline: "console=ttyS0".into(),
        drives: Vec::new(),
        memory_mib: 128,
        cpus: 1,
        timeout: Duration::from_secs(60),
        accel: Accel::Tcg,
    };
    let o = boot.run(&t.path().join("console.log")).unwrap();
    assert!(
        matches!(o.ending, Ending::Exited(s) if !s.success()),
        "{o:?}"
    );
    assert!(!o.powered_off());
    assert!(!o.qemu_stderr.is_empty());
}
