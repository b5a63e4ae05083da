//! Hotplug without udev: the kernel's uevent netlink socket.
//!
//! Every device the kernel adds is announced as "ACTION@DEVPATH\0KEY=VALUE\0…". A block
//! device is write-protected the moment its message arrives (devtmpfs has already made its
//! node); a device that needs a driver carries MODALIAS, and the module is loaded.

use crate::blocks::{self, Protection};
use crate::console::Console;
use crate::modules::ModuleDb;
use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared state: what has been protected, and the module database.
#[derive(Debug, Default)]
pub struct Devices {
    /// Device name → protection outcome.
    pub protection: Mutex<BTreeMap<String, Protection>>,
    /// When the last uevent arrived (for settling).
    pub last_event: Mutex<Option<Instant>>,
}

impl Devices {
    /// Protects `name` unless already done; reports an unprotected device on the console.
    pub fn protect(&self, name: &str, console: &Console) {
        let mut map = self.protection.lock().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(name) {
            return;
        }
        let p = blocks::protect(name);
        if let Protection::Unprotected(why) = &p {
            console.warn(&format!("{name}: NOT write-protected: {why}"));
        }
        map.insert(name.to_string(), p);
    }

    /// The protection outcome of `name`.
    pub fn get(&self, name: &str) -> Option<Protection> {
        self.protection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Forgets `name` (after the evidence medium is made writable on purpose).
    pub fn set(&self, name: &str, p: Protection) {
        self.protection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), p);
    }
}

/// Opens the uevent socket. Opened before coldplug so no event is missed between the scan
/// and the listener starting.
pub fn open() -> nix::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )?;
    // Group 1: the kernel's own uevents.
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1))?;
    Ok(fd)
}

/// Parses one uevent message into its key/value pairs (the ACTION@DEVPATH header is skipped;
/// ACTION and DEVPATH are repeated as keys).
pub fn parse(msg: &[u8]) -> BTreeMap<String, String> {
    msg.split(|&b| b == 0)
        .skip(1)
        .filter_map(|kv| {
            let s = std::str::from_utf8(kv).ok()?;
            let (k, v) = s.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Runs the listener forever on its own thread.
pub fn spawn(fd: OwnedFd, devices: Arc<Devices>, modules: Arc<Mutex<ModuleDb>>, console: Console) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    console.warn(&format!(
                        "uevent socket failed: {e}; hotplugged disks are no longer protected"
                    ));
                    return;
                }
            };
            *devices.last_event.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            let ev = parse(buf.get(..n).unwrap_or_default());
            if ev.get("ACTION").map(String::as_str) != Some("add") {
                continue;
            }
            if ev.get("SUBSYSTEM").map(String::as_str) == Some("block") {
                if let Some(name) = ev.get("DEVNAME") {
                    devices.protect(name, &console);
                    if devices.get(name) == Some(Protection::ReadOnly) {
                        console.log(&format!("block device {name} appeared; write-protected"));
                    } else {
                        console.log(&format!(
                            "block device {name} appeared; NOT write-protected"
                        ));
                    }
                }
            }
            if let Some(alias) = ev.get("MODALIAS") {
                let mut db = modules.lock().unwrap_or_else(|p| p.into_inner());
                let mut errors = Vec::new();
                for m in db.modules_for(alias) {
                    for loaded in db.load(&m, &mut errors) {
                        console.log(&format!("loaded module {loaded}"));
                    }
                }
                for e in errors {
                    console.warn(&e);
                }
            }
        }
    });
}

/// Waits until no uevent has arrived for `quiet`, at most `max`.
pub fn settle(devices: &Devices, quiet: Duration, max: Duration) {
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let last = *devices.last_event.lock().unwrap_or_else(|p| p.into_inner());
        let idle = last.map_or(start.elapsed(), |t| t.elapsed());
        if idle >= quiet || start.elapsed() >= max {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_kernel_uevent() {
        let msg = b"add@/devices/pci0000:00/0000:00:04.0/virtio1/block/vda\0ACTION=add\0DEVPATH=/devices/x\0SUBSYSTEM=block\0DEVNAME=vda\0DEVTYPE=disk\0SEQNUM=1234\0";
        let ev = parse(msg);
        assert_eq!(ev["ACTION"], "add");
        assert_eq!(ev["DEVNAME"], "vda");
        assert_eq!(ev.len(), 6);
        assert!(parse(b"garbage\xff\0no-equals\0").is_empty());
    }
}
