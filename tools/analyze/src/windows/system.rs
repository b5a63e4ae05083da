//! The SYSTEM hive: current control set, computer name, time zone, services, USB devices,
//! TCP/IP interfaces, last shutdown.

use super::regf::{filetime, Hive, Key};
use super::{key_event, key_evidence, safe, time_text, value_text, WindowsProfile};
use crate::collected::Collected;
use crate::event::{Event, Evidence};
use serde::Serialize;

/// Services read at most.
pub const MAX_SERVICES: usize = 4096;
/// USB devices read at most (per enumerator).
pub const MAX_USB: usize = 1024;

/// A service (`Services\<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Service {
    /// Key name.
    pub name: String,
    /// `DisplayName`.
    pub display_name: Option<String>,
    /// `ImagePath`.
    pub image_path: Option<String>,
    /// `Start` (0 boot, 1 system, 2 automatic, 3 manual, 4 disabled).
    pub start: Option<u64>,
    /// `Type` (1 kernel driver, 2 file system driver, 0x10 own process, 0x20 shared).
    pub service_type: Option<u64>,
    /// The key's last-written time.
    pub key_last_written: Option<String>,
    /// Where: the key's cell.
    pub evidence: Evidence,
}

/// A USB device seen by the Plug and Play manager.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsbDevice {
    /// `USBSTOR` or `USB`.
    pub enumerator: String,
    /// `Ven_…` / `VID_…`.
    pub vendor: String,
    /// `Prod_…` / `PID_…`.
    pub product: String,
    /// `Rev_…`, when given.
    pub revision: Option<String>,
    /// The instance key name (the device's serial number, or a generated id when its
    /// second character is `&`).
    pub serial: String,
    /// `FriendlyName`.
    pub friendly_name: Option<String>,
    /// The instance key's last-written time.
    pub key_last_written: Option<String>,
    /// Where.
    pub evidence: Evidence,
}

/// A TCP/IP interface (`Tcpip\Parameters\Interfaces\{GUID}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetInterface {
    /// The interface GUID.
    pub guid: String,
    /// `EnableDHCP`.
    pub dhcp: bool,
    /// Static `IPAddress` or `DhcpIPAddress`.
    pub addresses: Vec<String>,
    /// `SubnetMask` / `DhcpSubnetMask`.
    pub subnet_masks: Vec<String>,
    /// `DefaultGateway` / `DhcpDefaultGateway`.
    pub gateways: Vec<String>,
    /// `DhcpServer`.
    pub dhcp_server: Option<String>,
    /// `NameServer` / `DhcpNameServer`.
    pub name_servers: Option<String>,
    /// `Domain` / `DhcpDomain`.
    pub domain: Option<String>,
    /// `LeaseObtainedTime`.
    pub lease_obtained: Option<String>,
    /// Where.
    pub evidence: Evidence,
}

/// Reads the SYSTEM hive into `profile` and events; returns the current control set's
/// name.
pub fn collect(
    h: &Hive<'_>,
    file: &Evidence,
    profile: &mut WindowsProfile,
    out: &mut Collected,
) -> Option<String> {
    let current = h
        .key("Select")
        .and_then(|k| k.value("Current"))
        .and_then(|v| v.number())
        .filter(|&n| n > 0 && n < 1000);
    let ccs = match current {
        Some(n) => format!("ControlSet{n:03}"),
        None => {
            out.problem(format!(
                "{}: no Select\\Current; using ControlSet001",
                file.describe()
            ));
            "ControlSet001".to_string()
        }
    };
    profile.current_control_set = Some(ccs.clone());
    let Some(cs) = h.key(&ccs) else {
        out.problem(format!("{}: control set {ccs} not found", file.describe()));
        return None;
    };
    profile.computer_name = cs
        .subkey("Control")
        .and_then(|k| k.subkey("ComputerName"))
        .and_then(|k| k.subkey("ComputerName"))
        .and_then(|k| value_text(&k, "ComputerName"));
    if let Some(tz) = h.key(&format!("{ccs}\\Control\\TimeZoneInformation")) {
        profile.time_zone =
            value_text(&tz, "TimeZoneKeyName").or_else(|| value_text(&tz, "StandardName"));
        profile.time_zone_bias_minutes = tz
            .value("Bias")
            .and_then(|v| v.number())
            .and_then(|n| u32::try_from(n).ok())
            .map(|n| i32::from_le_bytes(n.to_le_bytes()));
    }
    let win_path = format!("{ccs}\\Control\\Windows");
    if let Some(k) = h.key(&win_path) {
        if let Some(v) = k.value("ShutdownTime") {
            let t = v
                .data()
                .ok()
                .and_then(|d| <[u8; 8]>::try_from(d.as_slice()).ok())
                .and_then(|d| filetime(u64::from_le_bytes(d)));
            if let Some(t) = t {
                profile.last_shutdown = time_text(Some(t));
                out.events.push(
                    Event::new(
                        t,
                        "registry",
                        "shutdown",
                        "last shutdown (Control\\Windows\\ShutdownTime)".to_string(),
                        file.at_offset(v.file_offset()),
                    )
                    .field("key", safe(&win_path)),
                );
            }
        }
    }
    services(h, &ccs, file, profile, out);
    usb(h, &ccs, file, profile, out);
    interfaces(h, &ccs, file, profile, out);
    Some(ccs)
}

fn services(
    h: &Hive<'_>,
    ccs: &str,
    file: &Evidence,
    profile: &mut WindowsProfile,
    out: &mut Collected,
) {
    let Some(sk) = h.key(&format!("{ccs}\\Services")) else {
        return;
    };
    for k in sk.subkeys().into_iter().take(MAX_SERVICES) {
        let k = match k {
            Ok(k) => k,
            Err(e) => {
                out.problem(format!("{}: {e}", file.describe()));
                continue;
            }
        };
        let name = safe(&k.name);
        let path = format!("{ccs}\\Services\\{}", k.name);
        let s = Service {
            display_name: value_text(&k, "DisplayName"),
            image_path: value_text(&k, "ImagePath"),
            start: k.value("Start").and_then(|v| v.number()),
            service_type: k.value("Type").and_then(|v| v.number()),
            key_last_written: time_text(k.last_written()),
            evidence: key_evidence(file, &k),
            name,
        };
        if let Some(e) = key_event(
            file,
            &k,
            &path,
            "service_key_written",
            &format!("service {}", s.name),
        ) {
            let e = e.field("service", s.name.clone());
            out.events.push(match &s.image_path {
                Some(p) => e.field("image_path", p.clone()),
                None => e,
            });
        }
        profile.services.push(s);
    }
}

fn usb(
    h: &Hive<'_>,
    ccs: &str,
    file: &Evidence,
    profile: &mut WindowsProfile,
    out: &mut Collected,
) {
    for enumerator in ["USBSTOR", "USB"] {
        let base = format!("{ccs}\\Enum\\{enumerator}");
        let Some(ek) = h.key(&base) else { continue };
        let mut n = 0usize;
        for class in ek.subkeys().into_iter().flatten() {
            // USBSTOR: Disk&Ven_X&Prod_Y&Rev_Z; USB: VID_046D&PID_C52B.
            let mut vendor = String::new();
            let mut product = String::new();
            let mut revision = None;
            for part in class.name.split('&') {
                let lower = part.to_ascii_lowercase();
                if lower.starts_with("ven_") || lower.starts_with("vid_") {
                    vendor = safe(part.get(4..).unwrap_or_default());
                } else if lower.starts_with("prod_") {
                    product = safe(part.get(5..).unwrap_or_default());
                } else if lower.starts_with("pid_") {
                    product = safe(part.get(4..).unwrap_or_default());
                } else if lower.starts_with("rev_") {
                    revision = Some(safe(part.get(4..).unwrap_or_default()));
                }
            }
            for inst in class.subkeys().into_iter().flatten() {
                if n >= MAX_USB {
                    out.problem(format!(
                        "{}: more than {MAX_USB} {enumerator} devices; rest not read",
                        file.describe()
                    ));
                    break;
                }
                n += 1;
                let d = UsbDevice {
                    enumerator: enumerator.to_string(),
                    vendor: vendor.clone(),
                    product: product.clone(),
                    revision: revision.clone(),
                    serial: safe(&inst.name),
                    friendly_name: value_text(&inst, "FriendlyName"),
                    key_last_written: time_text(inst.last_written()),
                    evidence: key_evidence(file, &inst),
                };
                let path = format!("{base}\\{}\\{}", class.name, inst.name);
                let what = format!("USB device {} {} serial {}", d.vendor, d.product, d.serial);
                if let Some(e) = key_event(file, &inst, &path, "usb_device", &what) {
                    out.events.push(e.field("serial", d.serial.clone()));
                }
                profile.usb_devices.push(d);
            }
        }
    }
}

fn list(k: &Key<'_, '_>, name: &str) -> Vec<String> {
    k.value(name)
        .and_then(|v| v.strings())
        .map(|v| {
            v.iter()
                .filter(|s| !s.is_empty() && *s != "0.0.0.0")
                .map(|s| safe(s))
                .collect()
        })
        .unwrap_or_default()
}

fn interfaces(
    h: &Hive<'_>,
    ccs: &str,
    file: &Evidence,
    profile: &mut WindowsProfile,
    out: &mut Collected,
) {
    let Some(ik) = h.key(&format!("{ccs}\\Services\\Tcpip\\Parameters\\Interfaces")) else {
        return;
    };
    for k in ik.subkeys().into_iter().flatten().take(MAX_USB) {
        let dhcp = k.value("EnableDHCP").and_then(|v| v.number()) == Some(1);
        let pick = |stat: &str, dyn_: &str| {
            let s = list(&k, if dhcp { dyn_ } else { stat });
            if s.is_empty() {
                list(&k, if dhcp { stat } else { dyn_ })
            } else {
                s
            }
        };
        let i = NetInterface {
            guid: safe(&k.name),
            dhcp,
            addresses: pick("IPAddress", "DhcpIPAddress"),
            subnet_masks: pick("SubnetMask", "DhcpSubnetMask"),
            gateways: pick("DefaultGateway", "DhcpDefaultGateway"),
            dhcp_server: value_text(&k, "DhcpServer"),
            name_servers: value_text(&k, "NameServer")
                .filter(|s| !s.is_empty())
                .or_else(|| value_text(&k, "DhcpNameServer")),
            domain: value_text(&k, "Domain")
                .filter(|s| !s.is_empty())
                .or_else(|| value_text(&k, "DhcpDomain")),
            lease_obtained: k
                .value("LeaseObtainedTime")
                .and_then(|v| v.number())
                .and_then(|n| i64::try_from(n).ok())
                .filter(|&n| n > 0)
                .map(|secs| crate::event::utc_text(crate::event::Timestamp { secs, nanos: 0 })),
            evidence: key_evidence(file, &k),
        };
        if !i.addresses.is_empty() {
            let path = format!("{ccs}\\Services\\Tcpip\\Parameters\\Interfaces\\{}", k.name);
            let what = format!(
                "network interface {} address {}",
                i.guid,
                i.addresses.join(", ")
            );
            if let Some(e) = key_event(file, &k, &path, "network_interface", &what) {
                out.events.push(e.field("address", i.addresses.join(", ")));
            }
        }
        profile.network_interfaces.push(i);
    }
}
