//! Mounts from /proc/PID/mountinfo (`Documentation/filesystems/proc.rst`, 3.5).
//!
//! Mounts show where evidence may hide (a tmpfs over /var/log, a bind mount over a binary,
//! a FUSE file system) and none of it survives power-off. mountinfo is per mount namespace;
//! the collector reads its own (`/proc/self/mountinfo`).

use crate::table::{cap, dec, fields, parse_lines, ParseError, Parsed, MAX_STRING_BYTES};
use serde::{Deserialize, Serialize};

/// One mount.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Unique id of the mount (may be reused after unmount).
    pub mount_id: u32,
    /// Id of the parent mount (itself for the namespace root).
    pub parent_id: u32,
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Directory of the file system that forms the root of this mount (≠ `/` for binds).
    pub root: String,
    /// Mount point relative to the process's root, octal escapes decoded.
    pub mount_point: String,
    /// Per-mount options (`rw,nosuid,…`).
    pub mount_options: String,
    /// Optional fields such as `shared:1` or `master:2`.
    pub optional_fields: Vec<String>,
    /// File system type (`ext4`, `fuse.sshfs`, …).
    pub fs_type: String,
    /// Source (device or pseudo name), octal escapes decoded.
    pub source: String,
    /// Per-superblock options.
    pub super_options: String,
}

/// Most optional fields kept per line (genuine lines have at most a handful).
const MAX_OPTIONAL_FIELDS: usize = 64;

/// Decodes the kernel's `\ooo` escapes (`mangle()` in fs/proc_namespace.c escapes space,
/// tab, newline and backslash); other backslashes are kept as is. Bytes that are not UTF-8
/// after decoding are replaced (lossy), as paths are shown, not opened.
pub fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            let digits = bytes.get(i.saturating_add(1)..i.saturating_add(4));
            if let Some(value) = digits.and_then(octal_byte) {
                out.push(value);
                i = i.saturating_add(4);
                continue;
            }
        }
        out.push(b);
        i = i.saturating_add(1);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Three octal digits as one byte (`None` if not octal or above 0o377).
fn octal_byte(digits: &[u8]) -> Option<u8> {
    let mut value = 0u16;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u16::from(d - b'0'))?;
    }
    u8::try_from(value).ok()
}

/// Parses mountinfo (`id parent major:minor root mount_point options [optional…] -
/// fstype source super_options`, no header).
pub fn parse_mountinfo(text: &str) -> Parsed<Mount> {
    parse_lines(text, 0, |n, line| {
        let f = fields(n, line, 6)?;
        let field = |i: usize| f.get(i).copied().unwrap_or_default();
        let (major, minor) = field(2)
            .split_once(':')
            .ok_or_else(|| ParseError::field(n, "major:minor", "MAJOR:MINOR", field(2)))?;
        let mut rest = line.split_whitespace().skip(6);
        let mut optional_fields = Vec::new();
        let mut separator = false;
        for item in rest.by_ref() {
            if item == "-" {
                separator = true;
                break;
            }
            if optional_fields.len() < MAX_OPTIONAL_FIELDS {
                optional_fields.push(cap(item, MAX_STRING_BYTES));
            }
        }
        if !separator {
            return Err(ParseError::field(
                n,
                "separator",
                "\"-\" after the optional fields",
                line,
            ));
        }
        let fs_type = rest
            .next()
            .ok_or_else(|| ParseError::field(n, "fstype", "file system type after \"-\"", line))?;
        // The kernel prints "none" for an empty source and omits nothing else, but a
        // missing super-options field is tolerated as empty.
        let source = rest.next().unwrap_or_default();
        let super_options = rest.next().unwrap_or_default();
        Ok(Some(Mount {
            mount_id: dec(n, "mount_id", field(0))?,
            parent_id: dec(n, "parent_id", field(1))?,
            major: dec(n, "major", major)?,
            minor: dec(n, "minor", minor)?,
            root: cap(&unescape_octal(field(3)), MAX_STRING_BYTES),
            mount_point: cap(&unescape_octal(field(4)), MAX_STRING_BYTES),
            mount_options: cap(field(5), MAX_STRING_BYTES),
            optional_fields,
            fs_type: cap(&unescape_octal(fs_type), MAX_STRING_BYTES),
            source: cap(&unescape_octal(source), MAX_STRING_BYTES),
            super_options: cap(super_options, MAX_STRING_BYTES),
        }))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = r"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
22 27 0:21 / /proc rw,relatime - proc proc rw
99 27 8:1 / /media/usb\040stick rw shared:5 master:2 - vfat /dev/sdb1 rw,fmask=0022
100 27 8:1 / /x rw shared:5
101 27 8x1 / /x rw - ext4 /dev/a rw
";
        let p = parse_mountinfo(text);
        assert_eq!(p.items.len(), 3);
        assert_eq!(p.errors.len(), 2);
        let m = &p.items[0];
        assert_eq!((m.mount_id, m.parent_id, m.major, m.minor), (36, 35, 98, 0));
        assert_eq!(
            (m.root.as_str(), m.mount_point.as_str()),
            ("/mnt1", "/mnt2")
        );
        assert_eq!(m.optional_fields, ["master:1"]);
        assert_eq!(
            (m.fs_type.as_str(), m.source.as_str()),
            ("ext3", "/dev/root")
        );
        assert_eq!(m.super_options, "rw,errors=continue");
        assert_eq!(p.items[1].optional_fields, Vec::<String>::new());
        assert_eq!(p.items[2].mount_point, "/media/usb stick");
        assert_eq!(p.items[2].optional_fields, ["shared:5", "master:2"]);
        assert!(matches!(p.errors[1], ParseError::Field { line: 5, .. }));
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_octal(r"a\040b\011c\012d\134e"), "a b\tc\nd\\e");
        assert_eq!(unescape_octal(r"\777\0"), r"\777\0");
        assert_eq!(unescape_octal(r"x\"), r"x\");
        assert_eq!(unescape_octal(r"\377"), "\u{FFFD}");
    }
}
