//! `vestige-init`: PID 1 of the Vestige appliance.
//!
//! Boot order, each step before the next:
//! 1. mount /proc, /sys, /dev (devtmpfs), /run, /tmp;
//! 2. open the kernel's uevent socket, then write-protect (BLKROSET) every block device
//!    already present — nothing has read them yet, and none is ever mounted;
//! 3. load drivers by modalias (coldplug), while the uevent listener write-protects every
//!    disk the new drivers find, and loads drivers for hotplugged devices;
//! 4. find the evidence medium (GPT partition VESTIGE-EVIDENCE, or a file system labelled
//!    VESTIGE), make only it writable, mount it;
//! 5. run unattended (`vestige.run=acquire …`) or the console menu;
//! 6. sync, unmount, power off. PID 1 never exits.

mod blocks;
mod cmdline;
mod console;
mod menu;
mod modules;
mod session;
mod system;
mod uevent;

use console::Console;
use modules::ModuleDb;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uevent::Devices;

/// File systems the evidence medium may use; they have no modalias, so load them by name.
const EVIDENCE_FS_MODULES: &[&str] = &[
    "ext4",
    "vfat",
    "exfat",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_utf8",
];

fn main() {
    let console = Console::new();
    if std::process::id() != 1 {
        eprintln!("vestige-init is the appliance's PID 1; it is not meant to be run by hand");
        std::process::exit(2);
    }
    for e in system::mount_pseudo() {
        console.warn(&e);
    }
    console.log(&format!(
        "Vestige appliance {} starting",
        env!("CARGO_PKG_VERSION")
    ));
    let devices = Arc::new(Devices::default());
    let socket = uevent::open();
    for name in blocks::all_names() {
        devices.protect(&name, &console);
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let db = Arc::new(Mutex::new(ModuleDb::open(
        &PathBuf::from("/lib/modules").join(kernel.trim()),
    )));
    match socket {
        Ok(fd) => uevent::spawn(fd, Arc::clone(&devices), Arc::clone(&db), console.clone()),
        Err(e) => console.warn(&format!(
            "no uevent socket ({e}): disks that appear later are protected only by the rescan"
        )),
    }
    coldplug(&console, &devices, &db);
    console.log("ready");

    let params =
        cmdline::vestige_params(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    let plan = cmdline::Plan::from_params(&params);
    if plan.unattended && plan.wait_seconds > 0 {
        // Before the evidence search: the late disk may be the evidence stick itself.
        console.log(&format!(
            "waiting {} s for late disks (vestige.wait)",
            plan.wait_seconds
        ));
        std::thread::sleep(Duration::from_secs(plan.wait_seconds));
        // The uevent listener protected whatever arrived; the rescan covers a lost event.
        for name in blocks::all_names() {
            devices.protect(&name, &console);
        }
    }
    let evidence = match session::open_evidence(&console, &devices) {
        Ok(e) => Some(e),
        Err(e) => {
            console.warn(&format!("{e}; refusing to acquire"));
            None
        }
    };
    let reboot = if plan.unattended {
        unattended(&console, &devices, &plan, evidence.as_ref());
        if plan.power_off_after {
            false
        } else {
            menu::run(&console, &devices, &plan, evidence.as_ref())
        }
    } else {
        menu::run(&console, &devices, &plan, evidence.as_ref())
    };
    console.log(if reboot { "reboot" } else { "power off" });
    if let (Some(_), Some(case)) = (&evidence, &plan.case_id) {
        let dir = PathBuf::from(session::EVIDENCE_MOUNT).join(case);
        if dir.is_dir() {
            session::save_console(&console, &dir);
        }
    }
    system::power_off(evidence.as_ref().map(|_| session::EVIDENCE_MOUNT), reboot);
}

/// Loads drivers for every device present, in rounds: a bus driver (virtio_pci) makes new
/// devices (virtio disks) appear, whose drivers the next round loads.
fn coldplug(console: &Console, devices: &Devices, db: &Mutex<ModuleDb>) {
    let mut errors = Vec::new();
    for round in 0..4 {
        let mut loaded = Vec::new();
        {
            let mut db = db.lock().unwrap_or_else(|p| p.into_inner());
            for alias in modules::sysfs_modaliases() {
                for m in db.modules_for(&alias) {
                    loaded.extend(db.load(&m, &mut errors));
                }
            }
            if round == 0 {
                // Storage drivers first, so the kernel probes disks while these load.
                for m in EVIDENCE_FS_MODULES {
                    db.load(m, &mut errors);
                }
            }
        }
        if loaded.is_empty() {
            // Nothing new to wait for: the previous round's settle already saw every device.
            break;
        }
        console.log(&format!("loaded modules: {}", loaded.join(" ")));
        uevent::settle(devices, quiet_window(), Duration::from_secs(10));
    }
    // Drivers the uevent listener loaded meanwhile (usb-storage, then sd_mod for its disk)
    // may still be probing: wait until the kernel has been quiet once more (at once when it
    // has been).
    uevent::settle(devices, quiet_window(), Duration::from_secs(10));
    for e in errors {
        console.warn(&e);
    }
    // Anything the listener could have missed is protected now, before any use.
    for name in blocks::all_names() {
        devices.protect(&name, console);
    }
}

/// How long without a uevent means the devices have settled. usb-storage waits `delay_use`
/// (1 s by default) after binding a stick before it scans it, so while a USB mass-storage
/// interface is bound the window covers that delay.
fn quiet_window() -> Duration {
    let usb_storage_bound = ["usb-storage", "uas"].iter().any(|driver| {
        std::fs::read_dir(format!("/sys/bus/usb/drivers/{driver}")).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains(':'))
        })
    });
    Duration::from_millis(if usb_storage_bound { 1500 } else { 400 })
}

/// `vestige.run=acquire`: acquire the chosen disks into the case, verify, save the log.
fn unattended(
    console: &Console,
    devices: &Devices,
    plan: &cmdline::Plan,
    evidence: Option<&session::Evidence>,
) {
    let Some(evidence) = evidence else {
        console.warn("unattended acquisition refused: no evidence medium");
        return;
    };
    let case_id = plan
        .case_id
        .clone()
        .unwrap_or_else(|| "VESTIGE".to_string());
    let examiner = plan
        .examiner
        .clone()
        .unwrap_or_else(|| "unattended appliance".to_string());
    let all = session::targets(Some(evidence));
    let chosen: Vec<_> = match &plan.targets {
        None => all,
        Some(names) => {
            for n in names {
                if n == &evidence.disk {
                    console.warn(&format!("{n} is the evidence medium; it is never a target"));
                } else if !all.iter().any(|d| &d.name == n) {
                    console.warn(&format!("target {n} not found"));
                }
            }
            all.into_iter()
                .filter(|d| names.contains(&d.name))
                .collect()
        }
    };
    if chosen.is_empty() {
        console.warn("no target disks to acquire");
        return;
    }
    // Refuse before anything is written, the case directory included (disks whose
    // interrupted acquisition will be resumed need only their remaining bytes: the CLI
    // checks those).
    let case_dir = std::path::Path::new(session::EVIDENCE_MOUNT).join(&case_id);
    if !plan.acquire.skip_space_check {
        if let Err(e) = session::check_space(
            &session::fresh_disks(&case_dir, &chosen, &plan.acquire),
            &plan.acquire,
        ) {
            console.warn(&e);
            return;
        }
    }
    let case = match session::open_case(console, &case_id, &examiner) {
        Ok(c) => c,
        Err(e) => {
            console.warn(&e);
            return;
        }
    };
    let outcomes = session::acquire(
        console,
        devices,
        &case,
        &chosen,
        &plan.hypervisor_read_only,
        &plan.acquire,
    );
    console.log(&outcomes.summary());
    if !outcomes.acquired.is_empty() || !outcomes.incomplete.is_empty() {
        session::vestige(console, &["verify", &case.to_string_lossy()]);
    }
    session::save_console(console, &case);
}
