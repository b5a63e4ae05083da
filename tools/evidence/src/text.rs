//! Text from evidence, made safe to show in a terminal, a file name or an HTML report.
//!
//! Every string that comes from evidence (a file name, a process name in memory, an HTTP
//! path in a capture) is untrusted: it may hold terminal escape sequences, bytes that are
//! not UTF-8, Unicode that reorders a line, or markup. The rule for every writer is:
//!
//! 1. bytes from evidence go through [`display_safe`] first (printable ASCII, `\xNN` for
//!    everything else), which is enough for a terminal, a log line or JSON;
//! 2. text put into the HTML report then also goes through [`html_escape`].
//!
//! File names made from evidence go through [`crate::outdir::safe_component`], which
//! escapes the same way plus `/` and the special names.
//!
//! ```
//! use vestige_evidence::text::{display_safe, html_escape};
//! let name = b"<script>\x1b[2J\xff";
//! let shown = display_safe(name);
//! assert_eq!(shown, "<script>\\x1b[2J\\xff");
//! assert_eq!(html_escape(&shown), "&lt;script&gt;\\x1b[2J\\xff");
//! ```

use std::fmt::Write as _;

/// Makes bytes from evidence (a capture, a process name in memory) safe to print:
/// printable ASCII stays, everything else (and the backslash, so the escaping is
/// unambiguous) becomes `\xNN` (two lowercase hex digits). Hostile evidence can then not
/// move the cursor, clear the screen or forge lines in a terminal or report.
///
/// The mapping is injective: `\` never appears except as the start of an escape, so the
/// original bytes can always be read back.
#[must_use]
pub fn display_safe(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        push_byte_escaped(&mut out, b, false);
    }
    out
}

/// Whether `b` is printable ASCII that [`display_safe`] keeps as it is (not `\`).
#[must_use]
pub(crate) fn is_kept_byte(b: u8) -> bool {
    (0x20..0x7F).contains(&b) && b != b'\\'
}

/// Appends `b` as [`display_safe`] writes it, or always as `\xNN` when `force_escape`.
pub(crate) fn push_byte_escaped(out: &mut String, b: u8, force_escape: bool) {
    if is_kept_byte(b) && !force_escape {
        out.push(char::from(b));
    } else {
        // Writing to a String cannot fail.
        let _ = write!(out, "\\x{b:02x}");
    }
}

/// Escapes text for the HTML report, in element content or in a quoted attribute value
/// (`"…"` or `'…'`). Never use it for script, style, URL or unquoted attribute contexts:
/// the report puts evidence only in text and quoted attributes.
///
/// * `&` `<` `>` `"` `'` become `&amp;` `&lt;` `&gt;` `&quot;` `&#x27;`;
/// * control characters (C0 including tab and newline, DEL, C1) and the Unicode
///   formatting characters that reorder or hide text (bidirectional overrides and
///   isolates, the marks U+200E/U+200F/U+061C, the line and paragraph separators
///   U+2028/U+2029, zero-width characters and U+FEFF) become the visible text
///   `\u{XXXX}`; they are never written raw, and never as numeric character references,
///   which HTML maps to other characters or treats as parse errors.
///
/// Evidence strings are always passed through [`display_safe`] first, so only printable
/// ASCII reaches this function and the second rule is a second line of defence. Unlike
/// `display_safe` this function is not injective on its own (the text `\u{1b}` and the
/// character U+001B give the same output); it only guarantees that the output is inert.
#[must_use]
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c if c.is_control() || is_hidden_format_char(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Unicode characters (category Cf and the separators Zl/Zp) that change how the text
/// around them is ordered or broken, or are invisible: a name holding U+202E shows its
/// end first ("Trojan Source").
fn is_hidden_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

#[cfg(test)]
mod tests {
    use super::{display_safe, html_escape};

    #[test]
    fn display_safe_escapes_controls_and_backslash() {
        assert_eq!(
            display_safe(b"a\x1b]0;x\x07\\\xff~"),
            "a\\x1b]0;x\\x07\\x5c\\xff~"
        );
    }

    #[test]
    fn html_escape_neutralises_script() {
        assert_eq!(
            html_escape("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
    }

    #[test]
    fn html_escape_quotes_and_ampersand() {
        assert_eq!(html_escape(r#"a"b'c&d"#), "a&quot;b&#x27;c&amp;d");
        // An attribute break-out attempt stays inside the value.
        assert_eq!(
            html_escape(r#"" onmouseover="alert(1)"#),
            "&quot; onmouseover=&quot;alert(1)"
        );
        // Already escaped text is escaped again, not passed through.
        assert_eq!(html_escape("&lt;"), "&amp;lt;");
    }

    #[test]
    fn html_escape_makes_controls_and_bidi_visible() {
        assert_eq!(
            html_escape("a\u{1b}]0;pwn\u{7}\n\u{85}\u{202e}b"),
            "a\\u{001b}]0;pwn\\u{0007}\\u{000a}\\u{0085}\\u{202e}b"
        );
        // Other non-ASCII text is kept (it is only reached if a caller skipped
        // display_safe, and it is inert in HTML).
        assert_eq!(html_escape("café"), "café");
    }

    #[test]
    fn display_safe_then_html_escape_of_invalid_utf8_is_inert_ascii() {
        let hostile = b"\xff\xfe<img src=x onerror=alert(1)>\xc3\x28\"'\x00\x1b[31m";
        let out = html_escape(&display_safe(hostile));
        assert_eq!(
            out,
            "\\xff\\xfe&lt;img src=x onerror=alert(1)&gt;\\xc3(&quot;&#x27;\\x00\\x1b[31m"
        );
        assert!(out.is_ascii());
        assert!(!out.contains(['<', '>', '"', '\'']));
        assert!(!out.chars().any(char::is_control));
    }
}
