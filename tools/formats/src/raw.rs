//! Raw images: one file, or a split raw set (`disk.001`, `disk.002`, … or `disk.aa`,
//! `disk.ab`, …) read as one disk.
//!
//! Raw has no header, so a split set is recognised by its names: given any segment, the
//! set is every sibling with the same stem and the following names in sequence, from the
//! first (`000`/`001`, `aa`) up to the first name missing. A gap is therefore the end of
//! the set, and the info notes how many segments were found.

use crate::{FormatError, Image, ImageInfo, ReadAt};
use std::io;
use std::path::{Path, PathBuf};
use vestige_evidence::read_at::FileReader;

/// More segments than this is not a split set we will read (`split -a 3` gives 17,576).
const MAX_SEGMENTS: usize = 100_000;

/// A raw image, possibly in several segments.
#[derive(Debug)]
pub struct Raw {
    segments: Vec<FileReader>,
    /// Start offset of each segment in the disk, ascending.
    starts: Vec<u64>,
    size: u64,
    files: Vec<PathBuf>,
    split: Option<&'static str>,
}

/// How a split set names its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    /// `.000`/`.001`, `.002`, … with this many digits.
    Numeric { digits: usize, first: u32 },
    /// `.aa`, `.ab`, … with this many letters.
    Alphabetic { letters: usize },
}

/// The stem and naming of a segment name, if it looks like part of a split set.
fn split_naming(path: &Path) -> Option<(String, Naming)> {
    let name = path.file_name()?.to_str()?;
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.is_empty() {
        return None;
    }
    if ext.len() >= 3 && ext.bytes().all(|b| b.is_ascii_digit()) {
        return Some((
            stem.to_string(),
            Naming::Numeric {
                digits: ext.len(),
                first: if ext.bytes().all(|b| b == b'0') { 0 } else { 1 },
            },
        ));
    }
    // `split`'s default suffixes: `aa`, `ab`, … (exactly two lower-case letters, so that
    // `disk.raw` or `disk.img` are not taken for segments).
    if ext.len() == 2 && ext.bytes().all(|b| b.is_ascii_lowercase()) {
        return Some((stem.to_string(), Naming::Alphabetic { letters: ext.len() }));
    }
    None
}

/// The `index`-th name of a set (0-based), or None past the naming's range.
fn segment_name(stem: &str, naming: Naming, index: usize) -> Option<String> {
    match naming {
        Naming::Numeric { digits, first } => {
            let n = u64::try_from(index).ok()? + u64::from(first);
            let s = format!("{n:0digits$}");
            (s.len() == digits).then(|| format!("{stem}.{s}"))
        }
        Naming::Alphabetic { letters } => {
            let mut n = index;
            let mut out = vec![b'a'; letters];
            for slot in out.iter_mut().rev() {
                *slot = b'a' + u8::try_from(n % 26).ok()?;
                n /= 26;
            }
            (n == 0).then(|| format!("{stem}.{}", String::from_utf8_lossy(&out)))
        }
    }
}

impl Raw {
    /// Opens `path` as one raw file, whatever its name (a backing file QEMU is told is
    /// raw is that one file).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open_single(path: &Path) -> Result<Self, FormatError> {
        let one = FileReader::open(path).map_err(FormatError::io(path, "open it"))?;
        let size = one.size();
        Ok(Self {
            segments: vec![one],
            starts: vec![0],
            size,
            files: vec![path.to_path_buf()],
            split: None,
        })
    }

    /// Opens `path` as a raw image; a name like `disk.001` or `disk.aa` opens the whole
    /// split set it belongs to (starting from its first segment).
    ///
    /// # Errors
    /// A segment cannot be opened, or `path` is not in the set found.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let io_err = |file: &Path, what: &str| {
            let file = file.to_path_buf();
            let what = what.to_string();
            move |source| FormatError::Io { file, what, source }
        };
        let Some((stem, naming)) = split_naming(path) else {
            return Self::open_single(path);
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut files = Vec::new();
        for index in 0..MAX_SEGMENTS {
            let Some(name) = segment_name(&stem, naming, index) else {
                break;
            };
            let candidate = dir.join(name);
            if !candidate.is_file() {
                break;
            }
            files.push(candidate);
        }
        let given = std::fs::canonicalize(path).map_err(io_err(path, "resolve the path"))?;
        let in_set = files
            .iter()
            .any(|f| std::fs::canonicalize(f).is_ok_and(|c| c == given));
        if !in_set {
            // `disk.002` whose `disk.001` is missing, or a name that only looks split.
            return Self::open_single(path);
        }
        let mut segments = Vec::with_capacity(files.len());
        let mut starts = Vec::with_capacity(files.len());
        let mut size = 0u64;
        for f in &files {
            let seg = FileReader::open(f).map_err(io_err(f, "open the segment"))?;
            starts.push(size);
            size = size.checked_add(seg.size()).ok_or_else(|| {
                FormatError::invalid(f, 0, "split raw size", "segments sum past 2^64 bytes")
            })?;
            segments.push(seg);
        }
        Ok(Self {
            segments,
            starts,
            size,
            files,
            split: Some(match naming {
                Naming::Numeric { .. } => "split (numbered segments)",
                Naming::Alphabetic { .. } => "split (lettered segments)",
            }),
        })
    }
}

impl ReadAt for Raw {
    fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
        if offset_bytes >= self.size || buf.is_empty() {
            return Ok(0);
        }
        // The segment holding the offset: the last one starting at or before it.
        let i = self
            .starts
            .partition_point(|&s| s <= offset_bytes)
            .saturating_sub(1);
        let mut done = 0usize;
        for (seg, &start) in self.segments.iter().zip(&self.starts).skip(i) {
            let Some(rest) = buf.get_mut(done..) else {
                break;
            };
            if rest.is_empty() {
                break;
            }
            let at = offset_bytes + done as u64 - start;
            if at >= seg.size() {
                continue;
            }
            seg.read_exact_at(
                rest.get_mut(
                    ..usize::try_from((seg.size() - at).min(rest.len() as u64)).unwrap_or(0),
                )
                .unwrap_or_default(),
                at,
            )?;
            done += usize::try_from((seg.size() - at).min(rest.len() as u64)).unwrap_or(0);
        }
        Ok(done)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl Image for Raw {
    fn info(&self) -> ImageInfo {
        let mut notes = Vec::new();
        if self.files.len() > 1 || self.split.is_some() {
            notes.push(format!(
                "{} segment(s), read in name order; a set ends at the first missing name",
                self.files.len()
            ));
        }
        ImageInfo {
            format: "raw".to_string(),
            variant: self.split.map(str::to_string),
            virtual_size_bytes: self.size,
            files: self.files.clone(),
            notes,
            ..ImageInfo::default()
        }
    }
}

/// Opens `path` as raw (see [`crate::open_in_chain`] for `chain`).
pub(crate) fn open_boxed(path: &Path, _chain: &[PathBuf]) -> Result<Box<dyn Image>, FormatError> {
    Ok(Box::new(Raw::open(path)?))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        let mut x = 0x1234_5678_9abc_def1u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn names_in_sequence() {
        let n = Naming::Numeric {
            digits: 3,
            first: 1,
        };
        assert_eq!(segment_name("d", n, 0).unwrap(), "d.001");
        assert_eq!(segment_name("d", n, 998).unwrap(), "d.999");
        assert!(segment_name("d", n, 999).is_none());
        let a = Naming::Alphabetic { letters: 2 };
        assert_eq!(segment_name("d", a, 0).unwrap(), "d.aa");
        assert_eq!(segment_name("d", a, 27).unwrap(), "d.bb");
        assert!(segment_name("d", a, 26 * 26).is_none());
        assert!(split_naming(Path::new("disk.raw")).is_none());
        assert!(split_naming(Path::new("disk.E01")).is_none());
    }

    #[test]
    fn split_sets_read_as_one_disk_with_split_1() {
        let t = tempfile::tempdir().unwrap();
        let src = data(1_000_003);
        std::fs::write(t.path().join("whole.raw"), &src).unwrap();
        // The real tool: split -b 300000 -d -a 3 --numeric-suffixes=1, and split's default.
        let ok = std::process::Command::new("split")
            .args([
                "-b",
                "300000",
                "-a",
                "3",
                "--numeric-suffixes=1",
                "whole.raw",
                "num.",
            ])
            .current_dir(t.path())
            .status()
            .is_ok_and(|s| s.success())
            && std::process::Command::new("split")
                .args(["-b", "262144", "whole.raw", "let."])
                .current_dir(t.path())
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "split failed");
        // `split` names `num.001`: stem `num`; `let.aa`: stem `let`.
        for (given, count) in [("num.002", 4), ("let.ab", 4), ("whole.raw", 1)] {
            let r = Raw::open(&t.path().join(given)).unwrap();
            assert_eq!(r.size(), src.len() as u64, "{given}");
            assert_eq!(r.info().files.len(), count, "{given}");
            let mut all = vec![0u8; src.len()];
            r.read_exact_at(&mut all, 0).unwrap();
            assert_eq!(all, src, "{given}");
            // Reads across segment boundaries, unaligned, and at the end.
            for (off, len) in [(299_990u64, 20usize), (262_000, 600_000), (999_999, 100)] {
                let mut b = vec![0u8; len];
                let n = r.read_at(&mut b, off).unwrap();
                let want = &src[off as usize..(off as usize + len).min(src.len())];
                assert_eq!(&b[..n], want, "{given} at {off}");
            }
            assert_eq!(r.read_at(&mut [0u8; 4], src.len() as u64).unwrap(), 0);
        }
    }
}
