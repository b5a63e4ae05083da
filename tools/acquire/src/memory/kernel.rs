//! The running kernel's identity, captured with its memory so the image can be analysed
//! without hunting for symbols: the banner (/proc/version, the `linux_banner` string that
//! analysis tools search memory for), /proc/kallsyms with real addresses, the kernel's BTF
//! (types), System.map where present, /proc/iomem, /proc/modules and the command line.
//!
//! kallsyms shows real addresses only to CAP_SYSLOG and only while kptr_restrict < 2. When
//! it is 2, it is lowered to 1 for the read and put back at once, whatever happens; both
//! steps are recorded.

use vestige_evidence::manifest::KernelCapture;

/// Prefix of the item's files that hold the capture (`kernel.kallsyms`, …): item files are
/// flat, as signify's checksum lists name plain files.
pub const KERNEL_FILE_PREFIX: &str = "kernel.";

/// What was captured: the record for the manifest and the files, (name in the item, bytes).
#[derive(Debug, Default)]
pub struct Captured {
    /// The manifest's record.
    pub record: KernelCapture,
    /// (path relative to the item, contents).
    pub files: Vec<(String, Vec<u8>)>,
}

/// Where the kernel's files are; tests point it at a fake tree.
#[derive(Debug, Clone)]
pub struct KernelPaths {
    /// /proc.
    pub proc_root: std::path::PathBuf,
    /// /sys.
    pub sys_root: std::path::PathBuf,
    /// /boot.
    pub boot_root: std::path::PathBuf,
}

impl Default for KernelPaths {
    fn default() -> Self {
        KernelPaths {
            proc_root: "/proc".into(),
            sys_root: "/sys".into(),
            boot_root: "/boot".into(),
        }
    }
}

/// Caps what is read from any one file (BTF of a large kernel is ~10 MiB).
const MAX_FILE_BYTES: u64 = 256 << 20;

fn read_capped(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut v = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut v)?;
    Ok(v)
}

/// Whether kallsyms text shows real addresses (not all zeros).
#[must_use]
pub fn kallsyms_has_addresses(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n')
        .take(1000)
        .filter_map(|l| l.split(|&b| b == b' ').next())
        .any(|a| !a.is_empty() && a.iter().any(|&c| c != b'0'))
}

/// Captures the identity of the running kernel. Never fails: what cannot be read is listed
/// in `record.problems`.
#[must_use]
pub fn capture(paths: &KernelPaths) -> Captured {
    let mut c = Captured::default();
    let proc_ = &paths.proc_root;
    let add = |c: &mut Captured, name: &str, path: std::path::PathBuf| match read_capped(&path) {
        Ok(bytes) => {
            let rel = format!("{KERNEL_FILE_PREFIX}{name}");
            c.record.files.push(rel.clone());
            c.files.push((rel, bytes));
        }
        Err(e) => c
            .record
            .problems
            .push(format!("{}: cannot read: {e}", path.display())),
    };
    match std::fs::read_to_string(proc_.join("version")) {
        Ok(b) => c.record.banner = b,
        Err(e) => c.record.problems.push(format!(
            "{}: cannot read: {e}",
            proc_.join("version").display()
        )),
    }
    add(&mut c, "version", proc_.join("version"));
    add(&mut c, "cmdline", proc_.join("cmdline"));
    add(&mut c, "iomem", proc_.join("iomem"));
    add(&mut c, "modules", proc_.join("modules"));
    add(&mut c, "btf", paths.sys_root.join("kernel/btf/vmlinux"));
    capture_kallsyms(&mut c, paths);
    let release = std::fs::read_to_string(proc_.join("sys/kernel/osrelease"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let map = paths.boot_root.join(format!("System.map-{release}"));
    if !release.is_empty() && map.is_file() {
        add(&mut c, "System.map", map);
    }
    c
}

/// Reads kallsyms, lowering kptr_restrict from 2 to 1 for the read if needed.
fn capture_kallsyms(c: &mut Captured, paths: &KernelPaths) {
    let knob = paths.proc_root.join("sys/kernel/kptr_restrict");
    let before = std::fs::read_to_string(&knob).map(|s| s.trim().to_string());
    let mut lowered = false;
    match &before {
        Ok(v) if v == "2" => match std::fs::write(&knob, "1") {
            Ok(()) => lowered = true,
            Err(e) => c.record.problems.push(format!(
                "kptr_restrict is 2 and cannot be lowered ({e}): kallsyms addresses are hidden"
            )),
        },
        Ok(_) => {}
        Err(e) => c
            .record
            .problems
            .push(format!("{}: cannot read: {e}", knob.display())),
    }
    let kallsyms = read_capped(&paths.proc_root.join("kallsyms"));
    if lowered {
        // Restore before anything else can fail.
        if let Err(e) = std::fs::write(&knob, "2") {
            c.record
                .problems
                .push(format!("kptr_restrict could not be restored to 2: {e}"));
        }
    }
    c.record.kptr_restrict = Some(match (&before, lowered) {
        (Ok(v), true) => format!("{v} (lowered to 1 for the capture, restored)"),
        (Ok(v), false) => v.clone(),
        (Err(_), _) => "unknown".to_string(),
    });
    match kallsyms {
        Ok(bytes) => {
            c.record.kallsyms_addresses = kallsyms_has_addresses(&bytes);
            if !c.record.kallsyms_addresses {
                c.record.problems.push(
                    "kallsyms shows every address as 0 (CAP_SYSLOG or kptr_restrict)".to_string(),
                );
            }
            let rel = format!("{KERNEL_FILE_PREFIX}kallsyms");
            c.record.files.push(rel.clone());
            c.files.push((rel, bytes));
        }
        Err(e) => c
            .record
            .problems
            .push(format!("/proc/kallsyms: cannot read: {e}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lowers_and_restores_kptr_restrict() {
        let t = tempfile::tempdir().unwrap();
        let proc_ = t.path().join("proc");
        std::fs::create_dir_all(proc_.join("sys/kernel")).unwrap();
        std::fs::write(proc_.join("sys/kernel/kptr_restrict"), "2\n").unwrap();
        std::fs::write(proc_.join("sys/kernel/osrelease"), "6.1.0-test\n").unwrap();
        std::fs::write(proc_.join("version"), "Linux version 6.1.0-test\n").unwrap();
        std::fs::write(
            proc_.join("kallsyms"),
            "ffffffff81000000 T _text\nffffffff82000000 D init_task\n",
        )
        .unwrap();
        let c = capture(&KernelPaths {
            proc_root: proc_.clone(),
            sys_root: t.path().join("sys"),
            boot_root: t.path().join("boot"),
        });
        assert_eq!(c.record.banner, "Linux version 6.1.0-test\n");
        assert!(c.record.kallsyms_addresses);
        assert_eq!(
            std::fs::read_to_string(proc_.join("sys/kernel/kptr_restrict")).unwrap(),
            "2"
        );
        assert!(c.record.kptr_restrict.unwrap().contains("restored"));
        // BTF, iomem, modules, cmdline are missing here: each is named.
        assert!(c.record.problems.iter().any(|p| p.contains("btf")));
        assert!(c.files.iter().any(|(n, _)| n == "kernel.kallsyms"));
    }

    #[test]
    fn zero_addresses_are_noticed() {
        assert!(!kallsyms_has_addresses(
            b"0000000000000000 T _text\n0000000000000000 t x\n"
        ));
        assert!(kallsyms_has_addresses(b"ffffffff81000000 T _text\n"));
        assert!(!kallsyms_has_addresses(b""));
    }
}
