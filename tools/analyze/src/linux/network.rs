//! How the machine is wired: ifupdown (`/etc/network/interfaces`, `interfaces.d/*`),
//! netplan (`/etc/netplan/*.yaml`), NetworkManager keyfiles
//! (`/etc/NetworkManager/system-connections/*`), resolvers (`/etc/resolv.conf`) and
//! `/etc/hosts`.
//!
//! Netplan YAML is read as text (no YAML parser): the lines are kept, and interface
//! names (keys under `ethernets:`, `wifis:`, `bonds:` …) and addresses seen are listed.
//! NetworkManager secrets (`psk`, `password`, `wep-key*`) are never copied: the profile
//! says "secret present".

use super::{
    fields, is_comment, join, lines, list, read, safe, trim, Fact, ProblemLog, CONFIG_CAP,
};
use crate::collected::Collected;
use crate::event::Evidence;
use crate::files::Files;
use serde::Serialize;
use std::net::IpAddr;

/// Network configuration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Network {
    /// ifupdown files.
    pub interfaces_files: Vec<ConfigFile>,
    /// Netplan files.
    pub netplan: Vec<ConfigFile>,
    /// NetworkManager connection profiles.
    pub networkmanager: Vec<NmConnection>,
    /// `nameserver` lines of `/etc/resolv.conf`.
    pub nameservers: Vec<Fact>,
    /// `search`/`domain` lines of `/etc/resolv.conf`.
    pub search_domains: Vec<Fact>,
    /// Entries of `/etc/hosts` (address and names).
    pub hosts: Vec<Fact>,
}

/// A configuration file read as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigFile {
    /// Interface names seen.
    pub interfaces: Vec<String>,
    /// Addresses seen (with their prefix length when written).
    pub addresses: Vec<String>,
    /// Its non-comment lines.
    pub lines: Vec<String>,
    /// The file.
    pub source: Evidence,
}

/// One NetworkManager keyfile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmConnection {
    /// `[connection] id`.
    pub id: Option<String>,
    /// `[connection] type`.
    pub kind: Option<String>,
    /// `[connection] interface-name`.
    pub interface_name: Option<String>,
    /// `[wifi] ssid`.
    pub ssid: Option<String>,
    /// `[ipv4] method`.
    pub ipv4_method: Option<String>,
    /// `[ipv4]`/`[ipv6]` `address1`, `address2` …
    pub addresses: Vec<String>,
    /// `[ipv4]`/`[ipv6]` `dns`.
    pub dns: Vec<String>,
    /// `secret present` when the file stores a password or key (never copied).
    pub secrets: Option<String>,
    /// The file.
    pub source: Evidence,
}

/// Lines kept per configuration file.
const MAX_LINES: usize = 500;

pub(crate) fn collect(files: &Files<'_>, out: &mut Collected) -> Network {
    let mut n = Network::default();
    let mut ifupdown = vec![b"/etc/network/interfaces".to_vec()];
    for e in list(files, "/etc/network/interfaces.d", out) {
        ifupdown.push(join("/etc/network/interfaces.d", &e.name));
    }
    for p in ifupdown {
        if let Some(data) = read(files, &p, CONFIG_CAP, out) {
            n.interfaces_files
                .push(parse_interfaces(&data.bytes, data.evidence));
        }
    }
    for e in list(files, "/etc/netplan", out) {
        if !(e.name.ends_with(b".yaml") || e.name.ends_with(b".yml")) {
            continue;
        }
        let p = join("/etc/netplan", &e.name);
        if let Some(data) = read(files, &p, CONFIG_CAP, out) {
            n.netplan.push(parse_netplan(&data.bytes, data.evidence));
        }
    }
    let nm = "/etc/NetworkManager/system-connections";
    for e in list(files, nm, out) {
        let p = join(nm, &e.name);
        if let Some(data) = read(files, &p, CONFIG_CAP, out) {
            n.networkmanager
                .push(parse_keyfile(&data.bytes, data.evidence));
        }
    }
    if let Some(data) = read(files, b"/etc/resolv.conf", CONFIG_CAP, out) {
        for l in lines(&data.bytes) {
            let mut f = fields(l.text);
            let (key, rest) = (f.next(), f.collect::<Vec<_>>().join(&b' '));
            let fact = Fact {
                value: safe(&rest),
                source: data.evidence.at_line(l.no, l.offset),
            };
            match key {
                Some(b"nameserver") if n.nameservers.len() < 100 => n.nameservers.push(fact),
                Some(b"search" | b"domain") if n.search_domains.len() < 100 => {
                    n.search_domains.push(fact);
                }
                _ => {}
            }
        }
    }
    if let Some(data) = read(files, b"/etc/hosts", CONFIG_CAP, out) {
        let mut log = ProblemLog::new(&data.evidence, out);
        for l in lines(&data.bytes) {
            let t = trim(l.text);
            if is_comment(t) {
                continue;
            }
            let t = t.split(|&b| b == b'#').next().unwrap_or_default();
            let f: Vec<&[u8]> = fields(t).collect();
            let valid = f.len() >= 2 && f.first().is_some_and(|a| ip(a).is_some());
            if !valid {
                log.line(l.no, "not a hosts entry (address and names)");
                continue;
            }
            if n.hosts.len() < super::MAX_ITEMS {
                n.hosts.push(Fact {
                    value: safe(&f.join(&b' ')),
                    source: data.evidence.at_line(l.no, l.offset),
                });
            }
        }
    }
    n
}

/// An IP address, optionally with `/prefix`.
fn ip(word: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(word).ok()?;
    let s = s.trim_matches(|c| matches!(c, '"' | '\'' | ',' | '[' | ']'));
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    addr.parse::<IpAddr>().ok()?;
    if let Some(p) = prefix {
        p.parse::<u8>().ok().filter(|&p| p <= 128)?;
    }
    Some(s.to_string())
}

/// The addresses among the words of `line` (split at white space, commas, brackets).
fn addresses_in(line: &[u8]) -> impl Iterator<Item = String> + '_ {
    line.split(|&b| b.is_ascii_whitespace() || matches!(b, b',' | b'[' | b']' | b';' | b'='))
        .filter_map(ip)
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) && list.len() < 1000 {
        list.push(item);
    }
}

/// An ifupdown interfaces(5) file.
#[must_use]
pub fn parse_interfaces(bytes: &[u8], source: Evidence) -> ConfigFile {
    let mut c = ConfigFile {
        source,
        ..ConfigFile::default()
    };
    for l in lines(bytes) {
        let t = trim(l.text);
        if is_comment(t) {
            continue;
        }
        let f: Vec<&[u8]> = fields(t).take(3).collect();
        match f.as_slice() {
            [b"iface" | b"auto" | b"allow-hotplug", name, ..] => {
                push_unique(&mut c.interfaces, safe(name));
            }
            [b"address" | b"gateway" | b"dns-nameservers", ..] => {
                for a in addresses_in(t) {
                    push_unique(&mut c.addresses, a);
                }
            }
            _ => {}
        }
        if c.lines.len() < MAX_LINES {
            c.lines.push(safe(t));
        }
    }
    c
}

/// A netplan YAML file, read as text.
#[must_use]
pub fn parse_netplan(bytes: &[u8], source: Evidence) -> ConfigFile {
    const SECTIONS: &[&[u8]] = &[
        b"ethernets:",
        b"wifis:",
        b"bonds:",
        b"bridges:",
        b"vlans:",
        b"tunnels:",
        b"modems:",
        b"vrfs:",
    ];
    let mut c = ConfigFile {
        source,
        ..ConfigFile::default()
    };
    // The indentation of the section header being read, and of its children.
    let mut section: Option<(usize, Option<usize>)> = None;
    for l in lines(bytes) {
        let t = trim(l.text);
        if is_comment(t) {
            continue;
        }
        let indent = l.text.iter().take_while(|&&b| b == b' ').count();
        if let Some((sec_indent, child)) = section {
            if indent <= sec_indent {
                section = None;
            } else if t.ends_with(b":") && child.is_none_or(|ci| ci == indent) {
                section = Some((sec_indent, Some(indent)));
                let name = t.get(..t.len().saturating_sub(1)).unwrap_or_default();
                let name = super::identity::unquote(name);
                push_unique(&mut c.interfaces, safe(name));
            }
        }
        if SECTIONS.contains(&t) {
            section = Some((indent, None));
        }
        for a in addresses_in(t) {
            push_unique(&mut c.addresses, a);
        }
        if c.lines.len() < MAX_LINES {
            c.lines.push(safe(l.text));
        }
    }
    c
}

/// A NetworkManager keyfile (nm-settings-keyfile(5), an ini file).
#[must_use]
pub fn parse_keyfile(bytes: &[u8], source: Evidence) -> NmConnection {
    let mut c = NmConnection {
        source,
        ..NmConnection::default()
    };
    let mut group: &[u8] = b"";
    for l in lines(bytes) {
        let t = trim(l.text);
        if t.is_empty() || t.first() == Some(&b'#') || t.first() == Some(&b';') {
            continue;
        }
        if t.first() == Some(&b'[') && t.last() == Some(&b']') {
            group = t.get(1..t.len().saturating_sub(1)).unwrap_or_default();
            continue;
        }
        let Some(eq) = t.iter().position(|&b| b == b'=') else {
            continue;
        };
        let key = trim(t.get(..eq).unwrap_or_default());
        let value = trim(t.get(eq + 1..).unwrap_or_default());
        let secret = key.ends_with(b"psk")
            || key.ends_with(b"password")
            || key.starts_with(b"wep-key")
            || key == b"private-key"
            || key == b"preshared-key";
        if secret {
            if !value.is_empty() {
                c.secrets = Some("secret present".into());
            }
            continue;
        }
        let v = Some(safe(value));
        match (group, key) {
            (b"connection", b"id") => c.id = v,
            (b"connection", b"type") => c.kind = v,
            (b"connection", b"interface-name") => c.interface_name = v,
            (b"wifi" | b"802-11-wireless", b"ssid") => c.ssid = v,
            (b"ipv4", b"method") => c.ipv4_method = v,
            (b"ipv4" | b"ipv6", k) if k.starts_with(b"address") => {
                push_unique(&mut c.addresses, safe(value));
            }
            (b"ipv4" | b"ipv6", b"dns") => {
                for a in addresses_in(value) {
                    push_unique(&mut c.dns, a);
                }
            }
            _ => {}
        }
    }
    c
}
