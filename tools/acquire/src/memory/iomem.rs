//! /proc/iomem: which physical address ranges are RAM.
//!
//! Lines look like `00100000-bffdffff : System RAM`, nested resources indented by two
//! spaces per level. Only top-level "System RAM" entries are memory the kernel manages; the
//! kernel code and data appear nested inside them. Without CAP_SYS_ADMIN the kernel prints
//! every address as zero, which is reported rather than taken as an empty map.

/// An iomem text that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IomemError {
    /// A System RAM line is malformed.
    #[error("/proc/iomem line {line}: {what}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// Every address reads zero: the caller lacks CAP_SYS_ADMIN.
    #[error("/proc/iomem shows every address as 0 (run as root: CAP_SYS_ADMIN is needed)")]
    Hidden,
    /// No System RAM at all.
    #[error("/proc/iomem lists no System RAM")]
    NoRam,
}

/// The top-level System RAM ranges as (start, length), ascending and merged where they touch.
pub fn system_ram(text: &str) -> Result<Vec<(u64, u64)>, IomemError> {
    let mut found: Vec<(usize, u64, u64, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate().take(1_000_000) {
        if line.starts_with(' ') {
            continue;
        }
        let Some((range, name)) = line.split_once(" : ") else {
            continue;
        };
        if name.trim() != "System RAM" {
            continue;
        }
        let bad = |what: &str| IomemError::Line {
            line: i + 1,
            what: format!("{what}: {line:?}"),
        };
        let (a, b) = range.split_once('-').ok_or_else(|| bad("no '-'"))?;
        let start = u64::from_str_radix(a.trim(), 16).map_err(|_| bad("bad start address"))?;
        let last = u64::from_str_radix(b.trim(), 16).map_err(|_| bad("bad end address"))?;
        found.push((i + 1, start, last, line));
    }
    if found.is_empty() {
        return Err(IomemError::NoRam);
    }
    if found.iter().all(|&(_, s, l, _)| s == 0 && l == 0) {
        return Err(IomemError::Hidden);
    }
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (line_no, start, last, line) in found {
        let bad = |what: &str| IomemError::Line {
            line: line_no,
            what: format!("{what}: {line:?}"),
        };
        if last < start {
            return Err(bad("end before start"));
        }
        let length = (last - start)
            .checked_add(1)
            .ok_or_else(|| bad("range covers the whole address space"))?;
        match out.last_mut() {
            Some((s, l)) if s.checked_add(*l) == Some(start) => *l += length,
            Some((s, l)) if start < s.saturating_add(*l) => {
                return Err(bad("overlaps or precedes the previous System RAM range"))
            }
            _ => out.push((start, length)),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const QEMU_PC: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000f0000-000fffff : System ROM
00100000-3ffdffff : System RAM
  01000000-01e02fff : Kernel code
  01e03000-0266dfff : Kernel rodata
3ffe0000-3fffffff : Reserved
100000000-13fffffff : System RAM
";

    #[test]
    fn top_level_system_ram_only() {
        assert_eq!(
            system_ram(QEMU_PC).unwrap(),
            vec![
                (0x1000, 0x9ec00),
                (0x100000, 0x3fee0000),
                (0x1_0000_0000, 0x4000_0000)
            ]
        );
    }

    #[test]
    fn hidden_addresses_and_garbage() {
        let hidden = "00000000-00000000 : System RAM\n00000000-00000000 : System RAM\n";
        assert_eq!(system_ram(hidden), Err(IomemError::Hidden));
        assert_eq!(system_ram(""), Err(IomemError::NoRam));
        assert!(system_ram("zz-10 : System RAM").is_err());
        assert!(system_ram("10-5 : System RAM").is_err());
        assert!(system_ram("0-ffffffffffffffff : System RAM").is_err());
        assert!(system_ram("1000-1fff : System RAM\n1000-1fff : System RAM").is_err());
        // Touching ranges merge.
        assert_eq!(
            system_ram("1000-1fff : System RAM\n2000-2fff : System RAM").unwrap(),
            vec![(0x1000, 0x2000)]
        );
    }
}
