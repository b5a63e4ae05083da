//! Choosing the kernel modules the appliance carries: a fixed list of wanted drivers plus
//! everything they need (hard dependencies from `modules.dep`, soft dependencies from
//! `modules.softdep`, resolved through `modules.alias` when they name an alias such as
//! `crypto-crc32c`). Wanted modules built into the kernel (`modules.builtin`) are skipped.
//!
//! The `.ko` files are copied byte for byte: Debian signs its modules by appending the
//! signature to the file, and a Secure Boot kernel in lockdown loads only signed modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A wanted module: its name and whether its absence (neither a module nor built in) is an
/// error.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// Module name (`-` and `_` are the same to the kernel).
    pub name: &'static str,
    /// Whether the build fails when the kernel has no such module or built-in.
    pub required: bool,
}

const fn req(name: &'static str) -> Wanted {
    Wanted {
        name,
        required: true,
    }
}

const fn opt(name: &'static str) -> Wanted {
    Wanted {
        name,
        required: false,
    }
}

/// The drivers the appliance may need, by purpose.
pub const WANTED: &[Wanted] = &[
    // Disks of helper VMs: QEMU/KVM, Hyper-V, VMware (pvscsi, LSI Logic SPI).
    req("virtio_pci"),
    req("virtio_blk"),
    req("virtio_scsi"),
    req("hv_storvsc"),
    req("vmw_pvscsi"),
    req("mptspi"),
    // Disks of physical machines and emulated controllers.
    req("sd_mod"),
    opt("sr_mod"),
    req("nvme"),
    req("ahci"),
    req("ata_piix"),
    // USB sticks and USB disks (the evidence medium, and targets on USB).
    req("usb_storage"),
    req("uas"),
    req("xhci_pci"),
    req("ehci_pci"),
    opt("ohci_pci"),
    opt("uhci_hcd"),
    // File systems of the evidence medium, and their code pages.
    req("ext4"),
    req("vfat"),
    req("exfat"),
    req("nls_cp437"),
    req("nls_iso8859_1"),
    req("nls_utf8"),
    // Console input: PS/2, USB and Hyper-V keyboards.
    opt("atkbd"),
    req("usbhid"),
    req("hid_generic"),
    opt("hyperv_keyboard"),
];

/// Errors reading module metadata or resolving the wanted set.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A metadata file could not be read.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `modules.dep` line without the `path:` prefix.
    #[error("{path}:{line}: expected `kernel/…/name.ko: deps…`, found {found:?}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line.
        found: String,
    },
    /// A required module that is neither a module nor built in.
    #[error("module {name} is neither in {dep} nor in modules.builtin")]
    NotFound {
        /// The module name.
        name: String,
        /// The `modules.dep` consulted.
        dep: PathBuf,
    },
    /// A dependency named in `modules.dep` that has no line of its own.
    #[error("{dep}: {module} depends on {missing}, which has no entry")]
    DanglingDependency {
        /// The `modules.dep` consulted.
        dep: PathBuf,
        /// The depending module's path.
        module: String,
        /// The missing dependency's path.
        missing: String,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// The kernel's module name of a `.ko` path (`kernel/drivers/usb/storage/usb-storage.ko` →
/// `usb_storage`).
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file
        .strip_suffix(".ko")
        .or_else(|| file.split_once(".ko.").map(|(s, _)| s))
        .unwrap_or(file);
    normalize(stem)
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The metadata `depmod` wrote for the full module tree of one kernel.
#[derive(Debug, Default)]
pub struct Index {
    /// `modules.dep`'s path, for errors.
    pub dep_path: PathBuf,
    /// Module name → (relative path, dependency paths).
    by_name: BTreeMap<String, (String, Vec<String>)>,
    /// Path → module name.
    name_of_path: BTreeMap<String, String>,
    /// Module name → soft dependencies (pre and post).
    softdeps: BTreeMap<String, Vec<String>>,
    /// Exact (non-glob) alias → module names.
    aliases: BTreeMap<String, Vec<String>>,
    /// Names of built-in modules.
    builtin: BTreeSet<String>,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

impl Index {
    /// Reads `modules.dep`, `modules.softdep`, `modules.alias` and `modules.builtin` from
    /// `dir` (`lib/modules/KVER` after `depmod`).
    pub fn load(dir: &Path) -> Result<Self> {
        let dep_path = dir.join("modules.dep");
        let mut index = Self {
            dep_path: dep_path.clone(),
            ..Self::default()
        };
        for (i, line) in read(&dep_path)?.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((module, deps)) = line.split_once(':') else {
                return Err(Error::Syntax {
                    path: dep_path,
                    line: i.saturating_add(1),
                    found: line.to_owned(),
                });
            };
            let name = module_name(module);
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            index.name_of_path.insert(module.to_owned(), name.clone());
            index.by_name.insert(name, (module.to_owned(), deps));
        }
        // "softdep ext4 pre: crypto-crc32c post: …"
        for line in read(&dir.join("modules.softdep"))?.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next() else { continue };
            let deps = words
                .filter(|w| !w.ends_with(':'))
                .map(str::to_owned)
                .collect::<Vec<_>>();
            index
                .softdeps
                .entry(normalize(module))
                .or_default()
                .extend(deps);
        }
        // "alias crc32c crc32c_generic"; glob aliases (device ids) are not needed here.
        for line in read(&dir.join("modules.alias"))?.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(alias), Some(module)) =
                (words.next(), words.next(), words.next())
            {
                if !alias.contains(['*', '?', '[']) {
                    index
                        .aliases
                        .entry(alias.to_owned())
                        .or_default()
                        .push(normalize(module));
                }
            }
        }
        index.builtin = read(&dir.join("modules.builtin"))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(module_name)
            .collect();
        Ok(index)
    }

    /// Whether `name` is built into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// Resolves the wanted modules to the set of `.ko` paths to ship (relative to
    /// `lib/modules/KVER`), following hard and soft dependencies.
    pub fn resolve(&self, wanted: &[Wanted]) -> Result<Selection> {
        let mut selection = Selection::default();
        let mut queue: Vec<String> = Vec::new();
        for w in wanted {
            let name = normalize(w.name);
            if self.by_name.contains_key(&name) {
                queue.push(name);
            } else if self.is_builtin(&name) {
                selection.builtin.push(name);
            } else if w.required {
                return Err(Error::NotFound {
                    name,
                    dep: self.dep_path.clone(),
                });
            } else {
                selection.absent.push(name);
            }
        }
        while let Some(name) = queue.pop() {
            let Some((path, deps)) = self.by_name.get(&name) else {
                continue;
            };
            if !selection.paths.insert(path.clone()) {
                continue;
            }
            for dep in deps {
                let dep_name =
                    self.name_of_path
                        .get(dep)
                        .ok_or_else(|| Error::DanglingDependency {
                            dep: self.dep_path.clone(),
                            module: path.clone(),
                            missing: dep.clone(),
                        })?;
                queue.push(dep_name.clone());
            }
            for soft in self.softdeps.get(&name).into_iter().flatten() {
                let soft_name = normalize(soft);
                if self.by_name.contains_key(&soft_name) {
                    queue.push(soft_name);
                } else if let Some(targets) = self.aliases.get(soft.as_str()) {
                    queue.extend(targets.iter().cloned());
                }
                // A soft dependency that is built in or absent needs nothing shipped.
            }
        }
        Ok(selection)
    }
}

/// The outcome of [`Index::resolve`].
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// `.ko` paths to ship, relative to `lib/modules/KVER`, sorted.
    pub paths: BTreeSet<String>,
    /// Wanted modules that are built into the kernel.
    pub builtin: Vec<String>,
    /// Optional wanted modules this kernel does not have at all.
    pub absent: Vec<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture() -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("modules.dep"),
            "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n\
             kernel/lib/crc16.ko:\n\
             kernel/fs/jbd2/jbd2.ko:\n\
             kernel/arch/x86/crypto/crc32c-intel.ko:\n\
             kernel/crypto/crc32c_generic.ko:\n\
             kernel/drivers/usb/storage/usb-storage.ko:\n\
             kernel/unrelated.ko:\n",
        )
        .unwrap();
        std::fs::write(
            d.join("modules.softdep"),
            "# Soft dependencies extracted from modules themselves.\n\
             softdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c\n",
        )
        .unwrap();
        std::fs::write(
            d.join("modules.alias"),
            "alias crypto-crc32c crc32c_intel\nalias crypto-crc32c crc32c_generic\n\
             alias usb:v*p*d* usb_storage\n",
        )
        .unwrap();
        std::fs::write(
            d.join("modules.builtin"),
            "kernel/drivers/input/keyboard/atkbd.ko\n",
        )
        .unwrap();
        let index = Index::load(d).unwrap();
        (dir, index)
    }

    #[test]
    fn names_follow_the_kernel_convention() {
        assert_eq!(module_name("kernel/a/usb-storage.ko"), "usb_storage");
        assert_eq!(module_name("kernel/a/x.ko.xz"), "x");
    }

    #[test]
    fn closure_follows_hard_and_soft_dependencies_through_aliases() {
        let (_dir, index) = fixture();
        let sel = index
            .resolve(&[req("ext4"), req("usb-storage"), opt("atkbd"), opt("nope")])
            .unwrap();
        let paths: Vec<&str> = sel.paths.iter().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "kernel/arch/x86/crypto/crc32c-intel.ko",
                "kernel/crypto/crc32c_generic.ko",
                "kernel/drivers/usb/storage/usb-storage.ko",
                "kernel/fs/ext4/ext4.ko",
                "kernel/fs/jbd2/jbd2.ko",
                "kernel/lib/crc16.ko",
            ]
        );
        assert_eq!(sel.builtin, ["atkbd"]);
        assert_eq!(sel.absent, ["nope"]);
    }

    #[test]
    fn a_missing_required_module_is_an_error_naming_it() {
        let (_dir, index) = fixture();
        let err = index.resolve(&[req("zfs")]).unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { name, .. } if name == "zfs"),
            "{err}"
        );
    }
}
