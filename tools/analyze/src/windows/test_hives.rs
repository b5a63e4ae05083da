//! Hives for the tests, written by hivex (`hivexregedit --merge`, Debian package
//! libwin-hivex-perl) into a copy of hivex's own `images/minimal` hive, and read back by
//! hivex's Python bindings (python3-hivex) as the oracle (`tests/data/regf/oracle.py`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::test_support::{have_tools, run};
use std::fmt::Write as _;

/// hivex's empty hive (a root key and its sk), from the hivex repository.
pub(crate) const MINIMAL: &[u8] = include_bytes!("../../tests/data/regf/minimal");
/// A hive Windows XP wrote into `minimal` (names with NUL, umlauts, symbols).
pub(crate) const SPECIAL: &[u8] = include_bytes!("../../tests/data/regf/special");
/// The oracle script.
pub(crate) const ORACLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/regf/oracle.py");

/// Whether hivexregedit and the Python bindings are here (else the test is skipped).
pub(crate) fn have_hivex() -> bool {
    have_tools(&["hivexregedit", "/usr/bin/python3"])
        && (std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import hivex"])
            .status()
            .is_ok_and(|s| s.success())
            || {
                assert!(
                    !crate::test_support::tools_required(),
                    "python3-hivex missing"
                );
                eprintln!("skipped: python3-hivex missing");
                false
            })
}

/// `.reg` text for `sections` (key path below the hive root, value lines), with every
/// missing parent key added before its child, as hivexregedit needs.
pub(crate) fn reg_text(prefix: &str, sections: &[(&str, &str)]) -> String {
    let mut out = String::from("Windows Registry Editor Version 5.00\n\n");
    let mut made: Vec<String> = Vec::new();
    for (path, values) in sections {
        let parts: Vec<&str> = path.split('\\').collect();
        for i in 1..parts.len() {
            let parent = parts[..i].join("\\");
            if !made.iter().any(|m| m.eq_ignore_ascii_case(&parent)) {
                writeln!(out, "[{prefix}\\{parent}]\n").unwrap();
                made.push(parent);
            }
        }
        writeln!(out, "[{prefix}\\{path}]\n{values}\n").unwrap();
        made.push((*path).to_string());
    }
    out
}

/// A hive made by hivexregedit from `sections` (see [`reg_text`]).
pub(crate) fn build_hive(sections: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let hive = dir.path().join("hive");
    let reg = dir.path().join("in.reg");
    std::fs::write(&hive, MINIMAL).unwrap();
    std::fs::write(&reg, reg_text("HKEY_LOCAL_MACHINE\\X", sections)).unwrap();
    run(
        "hivexregedit",
        &[
            "--merge",
            "--prefix",
            "HKEY_LOCAL_MACHINE\\X",
            hive.to_str().unwrap(),
            reg.to_str().unwrap(),
        ],
    );
    std::fs::read(&hive).unwrap()
}

/// The oracle's listing of `hive`.
pub(crate) fn oracle(hive: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hive");
    std::fs::write(&p, hive).unwrap();
    String::from_utf8(run("/usr/bin/python3", &[ORACLE, p.to_str().unwrap()])).unwrap()
}
