//! `image/packages.lock`: the Debian packages the appliance is built from, pinned by version
//! and by the SHA-256 of the `.deb`, with their source package and licence so the image's
//! provenance can be stated.
//!
//! The format is deb822 (the stanza format of Debian's own control files): `Field: value`
//! lines, one stanza per package, stanzas separated by blank lines, `#` comments.
//!
//! ```text
//! Package: linux-image-6.1.0-48-amd64
//! Version: 6.1.172-1
//! Architecture: amd64
//! SHA256: 22007ac243a5de6d53cbc5b43040b1389fa10860c4952a43d2786e09798cf1f8
//! Source: linux-signed-amd64 (6.1.172+1)
//! Role: kernel
//! Licence: GPL-2.0-only (Linux kernel)
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a pinned package is used for in the image.
pub const ROLE_KERNEL: &str = "kernel";

/// One pinned package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Binary package name (`linux-image-6.1.0-48-amd64`).
    pub name: String,
    /// Exact Debian version (`6.1.172-1`).
    pub version: String,
    /// Debian architecture (`amd64`).
    pub architecture: String,
    /// SHA-256 of the `.deb` file, lower-case hex.
    pub sha256: String,
    /// Source package, as `apt-cache show` prints it (`linux-signed-amd64 (6.1.172+1)`).
    pub source: String,
    /// Role in the image ([`ROLE_KERNEL`], …).
    pub role: String,
    /// Licence note.
    pub licence: String,
}

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lock {
    /// Packages in file order.
    pub packages: Vec<Package>,
}

/// Errors reading a lock file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or written.
    #[error("{path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line that is neither `Field: value`, a comment nor blank.
    #[error("{path}:{line}: expected `Field: value`, found {found:?}")]
    Syntax {
        /// The lock file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line.
        found: String,
    },
    /// A stanza without a required field.
    #[error("{path}:{line}: stanza lacks the field {field}")]
    Missing {
        /// The lock file.
        path: PathBuf,
        /// Line where the stanza starts.
        line: usize,
        /// The missing field.
        field: &'static str,
    },
    /// A field given twice in one stanza, or an unknown field.
    #[error("{path}:{line}: field {field:?} {reason}")]
    BadField {
        /// The lock file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The field.
        field: String,
        /// `given twice` or `unknown`.
        reason: &'static str,
    },
    /// A SHA256 value that is not 64 hex digits.
    #[error("{path}:{line}: SHA256 must be 64 lower-case hex digits, found {found:?}")]
    BadDigest {
        /// The lock file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The value.
        found: String,
    },
    /// No stanza has the role asked for.
    #[error("{path}: no package with Role: {role}")]
    NoRole {
        /// The lock file.
        path: PathBuf,
        /// The role.
        role: String,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

const FIELDS: [&str; 7] = [
    "Package",
    "Version",
    "Architecture",
    "SHA256",
    "Source",
    "Role",
    "Licence",
];

impl Lock {
    /// Reads and parses a lock file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses lock-file text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut packages = Vec::new();
        let mut stanza: Vec<(usize, &str, &str)> = Vec::new();
        for (index, raw) in text.lines().chain(std::iter::once("")).enumerate() {
            let line = index.saturating_add(1);
            let trimmed = raw.trim();
            if trimmed.starts_with('#') {
                continue;
            }
            if trimmed.is_empty() {
                if !stanza.is_empty() {
                    packages.push(package(&stanza, path)?);
                    stanza.clear();
                }
                continue;
            }
            let Some((field, value)) = trimmed.split_once(':') else {
                return Err(Error::Syntax {
                    path: path.to_owned(),
                    line,
                    found: raw.to_owned(),
                });
            };
            let field = field.trim();
            let bad = |reason| Error::BadField {
                path: path.to_owned(),
                line,
                field: field.to_owned(),
                reason,
            };
            if !FIELDS.contains(&field) {
                return Err(bad("unknown"));
            }
            if stanza.iter().any(|(_, f, _)| *f == field) {
                return Err(bad("given twice"));
            }
            stanza.push((line, field, value.trim()));
        }
        Ok(Self { packages })
    }

    /// The package with `role`.
    pub fn by_role(&self, role: &str, path: &Path) -> Result<&Package> {
        self.packages
            .iter()
            .find(|p| p.role == role)
            .ok_or_else(|| Error::NoRole {
                path: path.to_owned(),
                role: role.to_owned(),
            })
    }

    /// The file text, header comment included.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Debian packages the Vestige appliance is built from (deb822 stanzas).\n\
             # Pinned by version and by the SHA-256 of the .deb; fetched with apt-get download.\n\
             # Update to the archive's current candidates: cargo xtask appliance --update-lock\n",
        );
        for p in &self.packages {
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                "\nPackage: {}\nVersion: {}\nArchitecture: {}\nSHA256: {}\nSource: {}\n\
                 Role: {}\nLicence: {}\n",
                p.name, p.version, p.architecture, p.sha256, p.source, p.role, p.licence
            );
        }
        out
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.render()).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// Whether `s` is 64 lower-case hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn package(stanza: &[(usize, &str, &str)], path: &Path) -> Result<Package> {
    let start = stanza.first().map_or(0, |(line, _, _)| *line);
    let get = |field: &'static str| {
        stanza
            .iter()
            .find(|(_, f, _)| *f == field)
            .map(|(line, _, v)| (*line, (*v).to_owned()))
            .ok_or_else(|| Error::Missing {
                path: path.to_owned(),
                line: start,
                field,
            })
    };
    let (sha_line, sha256) = get("SHA256")?;
    if !is_sha256_hex(&sha256) {
        return Err(Error::BadDigest {
            path: path.to_owned(),
            line: sha_line,
            found: sha256,
        });
    }
    Ok(Package {
        name: get("Package")?.1,
        version: get("Version")?.1,
        architecture: get("Architecture")?.1,
        sha256,
        source: get("Source")?.1,
        role: get("Role")?.1,
        licence: get("Licence")?.1,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        Lock {
            packages: vec![Package {
                name: "linux-image-6.1.0-48-amd64".into(),
                version: "6.1.172-1".into(),
                architecture: "amd64".into(),
                sha256: "22007ac243a5de6d53cbc5b43040b1389fa10860c4952a43d2786e09798cf1f8".into(),
                source: "linux-signed-amd64 (6.1.172+1)".into(),
                role: ROLE_KERNEL.into(),
                licence: "GPL-2.0-only (Linux kernel)".into(),
            }],
        }
    }

    #[test]
    fn render_then_parse_round_trips() {
        let lock = sample();
        let text = lock.render();
        assert_eq!(Lock::parse(&text, Path::new("x.lock")).unwrap(), lock);
        let kernel = lock.by_role(ROLE_KERNEL, Path::new("x")).unwrap();
        assert_eq!(kernel.version, "6.1.172-1");
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let p = Path::new("packages.lock");
        let text = sample().render();
        let bad = text.replace("SHA256: 2200", "SHA256: XX00");
        let err = Lock::parse(&bad, p).unwrap_err();
        assert!(matches!(err, Error::BadDigest { line: 8, .. }), "{err}");

        let missing = text.replace("Role: kernel\n", "");
        let err = Lock::parse(&missing, p).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Missing {
                    field: "Role",
                    line: 5,
                    ..
                }
            ),
            "{err}"
        );

        let twice = text.replace("Role: kernel\n", "Role: kernel\nRole: kernel\n");
        let err = Lock::parse(&twice, p).unwrap_err();
        assert!(matches!(err, Error::BadField { line: 11, .. }), "{err}");

        let syntax = format!("{text}\ngarbage\n");
        let err = Lock::parse(&syntax, p).unwrap_err();
        assert!(matches!(err, Error::Syntax { line: 13, .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "packages.lock:13: expected `Field: value`, found \"garbage\""
        );
    }
}
