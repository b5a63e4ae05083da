//! Text from evidence, made safe to show.

/// Makes bytes from evidence (a capture, a process name in memory) safe to print:
/// printable ASCII stays, everything else (and the backslash, so the escaping is
/// unambiguous) becomes `\xNN`. Hostile evidence can then not move the cursor, clear the
/// screen or forge lines in a terminal or report.
#[must_use]
pub fn display_safe(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7F).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn display_safe_escapes_controls_and_backslash() {
        assert_eq!(
            super::display_safe(b"a\x1b]0;x\x07\\\xff~"),
            "a\\x1b]0;x\\x07\\x5c\\xff~"
        );
    }
}
