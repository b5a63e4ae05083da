//! PID 1 chores: pseudo file systems, reaping, and a clean power-off.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Mounts /proc, /sys, /dev (devtmpfs), /run and /tmp (tmpfs). Errors are returned as
/// messages; the boot goes on (a kernel may have mounted devtmpfs itself).
pub fn mount_pseudo() -> Vec<String> {
    let mut errors = Vec::new();
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for (src, target, fstype, flags, data) in [
        ("proc", "/proc", "proc", nosuid, None),
        ("sysfs", "/sys", "sysfs", nosuid, None),
        // The kernel's lockdown state (recorded in every manifest) lives here.
        (
            "securityfs",
            "/sys/kernel/security",
            "securityfs",
            nosuid,
            None,
        ),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        ),
        (
            "tmpfs",
            "/tmp",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        ),
    ] {
        let _ = std::fs::create_dir_all(target);
        match mount(Some(src), target, Some(fstype), flags, data) {
            Ok(()) | Err(nix::Error::EBUSY) => {}
            Err(e) => errors.push(format!("mount {fstype} on {target}: {e}")),
        }
    }
    errors
}

/// Reaps any exited child that nobody waits for (orphans re-parented to PID 1).
pub fn reap_orphans() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Mounts the evidence partition writable, trying the file systems the appliance carries.
pub fn mount_evidence(dev: &str, target: &str) -> Result<&'static str, String> {
    let _ = std::fs::create_dir_all(target);
    let mut tried = Vec::new();
    for fstype in ["ext4", "exfat", "vfat"] {
        // FAT's default iocharset (ascii) is not in the initramfs; UTF-8 names are right
        // for evidence anyway.
        let data = (fstype != "ext4").then_some("uid=0,gid=0,errors=remount-ro,iocharset=utf8");
        match mount(
            Some(format!("/dev/{dev}").as_str()),
            target,
            Some(fstype),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            data,
        ) {
            Ok(()) => return Ok(fstype),
            Err(e) => tried.push(format!("{fstype}: {e}")),
        }
    }
    Err(format!("cannot mount /dev/{dev} ({})", tried.join(", ")))
}

/// Syncs, unmounts the evidence medium and powers off (or reboots). Never returns: if the
/// kernel refuses, PID 1 waits forever rather than exit (which would panic the kernel).
pub fn power_off(evidence_mount: Option<&str>, reboot_instead: bool) -> ! {
    nix::unistd::sync();
    if let Some(m) = evidence_mount {
        let _ = umount2(m, MntFlags::empty());
    }
    nix::unistd::sync();
    let mode = if reboot_instead {
        RebootMode::RB_AUTOBOOT
    } else {
        RebootMode::RB_POWER_OFF
    };
    let _ = reboot(mode);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
