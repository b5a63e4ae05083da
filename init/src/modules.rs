//! Kernel modules by modalias, as udev would load them, without udev.
//!
//! Devices announce what driver they need in sysfs `modalias` files (and in uevents);
//! modules.alias maps glob patterns over those strings to module names, modules.dep lists
//! each module's dependencies (load order: dependencies first), modules.softdep names
//! `pre:` modules (crc32c for ext4, say). Everything comes from depmod's output for the
//! module subset packed into the initramfs.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Shell-style glob match with `*`, `?` and `[...]` classes, as modules.alias uses.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with single-star backtracking: linear memory, no recursion.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let tc = t.get(ti).copied().unwrap_or_default();
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some('[') => {
                if let Some((matched, next)) = class_match(&p, pi, tc) {
                    if matched {
                        pi = next;
                        ti += 1;
                        continue;
                    }
                } else if tc == '[' {
                    pi += 1;
                    ti += 1;
                    continue;
                }
            }
            Some(&c) if c == tc => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

/// Matches `c` against the class starting at `p[start] == '['`; returns (matched, index after
/// the class), or None when the class is unterminated (then '[' is literal).
fn class_match(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let cur = *p.get(i)?;
        if cur == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            let end = *p.get(i + 2)?;
            if cur <= c && c <= end {
                matched = true;
            }
            i += 3;
        } else {
            if cur == c {
                matched = true;
            }
            i += 1;
        }
    }
}

/// The module database of one kernel.
#[derive(Debug, Default)]
pub struct ModuleDb {
    dir: PathBuf,
    aliases: Vec<(String, String)>,
    deps: BTreeMap<String, (String, Vec<String>)>,
    softdeps: BTreeMap<String, Vec<String>>,
    loaded: BTreeSet<String>,
    /// Module parameters from the kernel command line (`usb-storage.delay_use=0`), as
    /// modprobe passes them: module name → "param=value param=value".
    params: BTreeMap<String, String>,
}

/// Module parameters on a kernel command line: `MODULE.PARAM=VALUE` words, grouped by module
/// ('-' and '_' alike in the module name). Parameters of the appliance itself (`vestige.`)
/// are not module parameters.
pub fn cmdline_module_params(line: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for word in crate::cmdline::words(line) {
        let Some((key, _)) = word.split_once('=') else {
            continue;
        };
        let Some((module, _)) = key.split_once('.') else {
            continue;
        };
        if module.is_empty() || module == "vestige" || word.contains(char::is_control) {
            continue;
        }
        let module = module.replace('-', "_");
        let Some(param) = word.get(module.len() + 1..) else {
            continue;
        };
        // The kernel's parser takes `param="a b"`; the quotes were consumed by words().
        let param = match param.split_once('=') {
            Some((k, v)) if v.contains(char::is_whitespace) => format!("{k}=\"{v}\""),
            _ => param.to_string(),
        };
        let entry = out.entry(module).or_default();
        if !entry.is_empty() {
            entry.push(' ');
        }
        entry.push_str(&param);
    }
    out
}

/// A module's name from its path: "kernel/fs/ext4/ext4.ko" → "ext4"; '-' and '_' are one.
fn name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

impl ModuleDb {
    /// Loads modules.alias, modules.dep and modules.softdep from `dir`
    /// (/lib/modules/$(uname -r)); missing files give an empty database.
    pub fn open(dir: &Path) -> Self {
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let aliases = read("modules.alias")
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "alias").then_some(())?;
                Some((w.next()?.to_string(), w.next()?.replace('-', "_")))
            })
            .collect();
        let deps = read("modules.dep")
            .lines()
            .filter_map(|l| {
                let (module, rest) = l.split_once(':')?;
                let deps = rest.split_whitespace().map(name_of).collect();
                Some((name_of(module), (module.to_string(), deps)))
            })
            .collect();
        let softdeps = read("modules.softdep")
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "softdep").then_some(())?;
                let module = w.next()?.replace('-', "_");
                let mut pre = Vec::new();
                let mut in_pre = false;
                for word in w {
                    match word {
                        "pre:" => in_pre = true,
                        "post:" => in_pre = false,
                        // Kept as written: it may be an alias ("crypto-crc32c").
                        m if in_pre => pre.push(m.to_string()),
                        _ => {}
                    }
                }
                Some((module, pre))
            })
            .collect();
        let loaded = std::fs::read_to_string("/proc/modules")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        let params =
            cmdline_module_params(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
        ModuleDb {
            dir: dir.to_path_buf(),
            aliases,
            deps,
            softdeps,
            loaded,
            params,
        }
    }

    /// Modules whose alias pattern matches `modalias`.
    pub fn modules_for(&self, modalias: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .aliases
            .iter()
            .filter(|(pat, _)| glob_match(pat, modalias))
            .map(|(_, m)| m.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Loads `name` after its soft and hard dependencies. Returns the modules newly loaded;
    /// errors are collected as messages (a module that fails must not stop the boot).
    pub fn load(&mut self, name: &str, errors: &mut Vec<String>) -> Vec<String> {
        let mut done = Vec::new();
        self.load_inner(name, errors, &mut done, 0);
        done
    }

    fn load_inner(
        &mut self,
        raw: &str,
        errors: &mut Vec<String>,
        done: &mut Vec<String>,
        depth: usize,
    ) {
        // Module names treat '-' and '_' alike; aliases do not, so both forms are kept.
        let owned = raw.replace('-', "_");
        let name = owned.as_str();
        if depth > 32 || self.loaded.contains(name) {
            return;
        }
        // Mark first: dependency cycles in a hostile modules.dep cannot recurse forever.
        self.loaded.insert(name.to_string());
        for pre in self.softdeps.get(name).cloned().unwrap_or_default() {
            self.load_inner(&pre, errors, done, depth + 1);
        }
        let Some((path, deps)) = self.deps.get(name).cloned() else {
            // Not a module name: soft dependencies name aliases ("ext4 pre: crypto-crc32c"),
            // which resolve to the modules providing them. Otherwise it is built in, or not
            // in the initramfs: nothing to load.
            for provider in self.modules_for(raw) {
                if provider != name {
                    self.load_inner(&provider, errors, done, depth + 1);
                }
            }
            return;
        };
        // modules.dep lists dependencies nearest first; load the farthest first.
        for dep in deps.iter().rev() {
            self.load_inner(dep, errors, done, depth + 1);
        }
        let params = self.params.get(name).map(String::as_str).unwrap_or("");
        match insert(&self.dir.join(&path), params) {
            Ok(()) => done.push(name.to_string()),
            // EEXIST: already loaded; ENODEV: the hardware it drives is absent (crc32c_intel
            // on a CPU without SSE4.2), a provider that does not apply.
            Err(nix::Error::EEXIST | nix::Error::ENODEV) => {}
            Err(e) => errors.push(format!("{name}: finit_module failed: {e}")),
        }
    }
}

fn insert(path: &Path, params: &str) -> nix::Result<()> {
    let file = File::open(path)
        .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let params = CString::new(params).map_err(|_| nix::Error::EINVAL)?;
    nix::kmod::finit_module(&file, &params, nix::kmod::ModuleInitFlags::empty())
}

/// Every modalias currently in sysfs (devices present at boot: coldplug).
pub fn sysfs_modaliases() -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/devices")];
    let mut visited = 0usize;
    while let Some(dir) = stack.pop() {
        visited += 1;
        if visited > 200_000 {
            break; // sysfs is finite, but never loop on a symlink surprise
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if e.file_name() == "modalias" {
                if let Ok(a) = std::fs::read_to_string(e.path()) {
                    let a = a.trim();
                    if !a.is_empty() {
                        out.push(a.to_string());
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_modules_alias_uses_them() {
        assert!(glob_match(
            "pci:v00001AF4d00001001sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
        ));
        assert!(!glob_match(
            "pci:v00001AF4d00001001sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001000sv00001AF4sd00000002bc01sc00i00"
        ));
        assert!(glob_match(
            "virtio:d00000002v*",
            "virtio:d00000002v00001AF4"
        ));
        assert!(glob_match(
            "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
            "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"
        ));
        assert!(glob_match("acpi*:PNP0[Aa]0[38]:*", "acpi:PNP0A08:"));
        assert!(!glob_match("acpi*:PNP0[Aa]0[38]:*", "acpi:PNP0A05:"));
        assert!(glob_match("a[!b]c", "axc") && !glob_match("a[!b]c", "abc"));
        assert!(glob_match("*", "") && glob_match("", "") && !glob_match("", "x"));
        assert!(glob_match("[", "[") && !glob_match("x?", "x"));
    }

    #[test]
    fn module_parameters_come_from_the_command_line() {
        let p = cmdline_module_params(
            "console=ttyS0 usb-storage.delay_use=0 vestige.run=acquire usb_storage.quirks=1:2:u nvme.x=\"a b\" .bad=1",
        );
        assert_eq!(p["usb_storage"], "delay_use=0 quirks=1:2:u");
        assert_eq!(p["nvme"], "x=\"a b\"");
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn pathological_globs_finish() {
        let p = "*a*a*a*a*a*a*a*a*a*b";
        let t = "a".repeat(5000);
        assert!(!glob_match(p, &t));
    }

    #[test]
    fn database_orders_dependencies_and_survives_cycles() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("modules.alias"),
            "alias virtio:d00000002v* virtio_blk\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("modules.dep"),
            "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\nkernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n",
        )
        .unwrap();
        let mut db = ModuleDb::open(d.path());
        assert_eq!(
            db.modules_for("virtio:d00000002v00001AF4"),
            vec!["virtio_blk"]
        );
        let mut errors = Vec::new();
        db.load("a", &mut errors); // a cycle: must return
                                   // An alias as a soft dependency resolves to its provider (and never to itself).
        std::fs::write(
            d.path().join("modules.alias"),
            "alias crypto-crc32c crc32c_generic\nalias crypto-crc32c crypto-crc32c\n",
        )
        .unwrap();
        let db = ModuleDb::open(d.path());
        assert_eq!(
            db.modules_for("crypto-crc32c"),
            vec!["crc32c_generic", "crypto_crc32c"]
        );
        assert_eq!(name_of("kernel/fs/nls/nls-utf8.ko.xz"), "nls_utf8");
    }
}
