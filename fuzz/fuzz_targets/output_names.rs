//! `outdir::safe_component` and `text::html_escape` (names and strings from evidence made
//! safe for the output directory and the HTML report).
//!
//! Input: one selector byte, then a name. The target checks the name, the two pieces of it
//! split at a point the selector picks, and two long names (the name repeated past 255
//! bytes, and the same with its last byte changed) that share everything but their end.
//!
//! Invariants of `safe_component`: never empty, never `.` or `..`, at most 255 bytes,
//! printable ASCII only (so no `/`, NUL or escape sequence), no leading `-`; an unshortened
//! component decodes back to its name (`\xNN` escapes, `\(empty)` for the empty name); two
//! different names give different components; the same name always gives the same one.
//!
//! Invariants of `html_escape`: no raw `<`, `>`, `"`, `'`, control character or bidi
//! override in the output, every `&` starts one of the five entities it writes; after
//! `display_safe` the output is ASCII and unescaping the entities gives `display_safe`'s
//! text back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_evidence::outdir::{
    is_safe_component, original_name, safe_component, NAME_MAX_BYTES, SHORTENED_MARK,
};
use vestige_evidence::text::{display_safe, html_escape};

const ENTITIES: [(&str, char); 5] = [
    ("&amp;", '&'),
    ("&lt;", '<'),
    ("&gt;", '>'),
    ("&quot;", '"'),
    ("&#x27;", '\''),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, name)) = data.split_first() else {
        return;
    };
    let split = usize::from(selector) % (name.len() + 1);
    let (head, tail) = name.split_at(split);
    let mut long = Vec::new();
    if !name.is_empty() {
        while long.len() < 256 + usize::from(selector) {
            long.extend_from_slice(name);
        }
    }
    let mut long_changed = long.clone();
    if let Some(last) = long_changed.last_mut() {
        *last = last.wrapping_add(1);
    }
    let names: [&[u8]; 5] = [name, head, tail, &long, &long_changed];

    let components: Vec<String> = names.iter().map(|n| check_component(n)).collect();
    for (i, a) in names.iter().enumerate() {
        for (j, b) in names.iter().enumerate().skip(i + 1) {
            if a != b {
                assert_ne!(
                    components[i], components[j],
                    "{a:?} and {b:?} give the same component"
                );
            }
        }
    }

    check_html(&String::from_utf8_lossy(name));
    if let Ok(text) = std::str::from_utf8(name) {
        check_html(text);
    }
    let shown = display_safe(name);
    let escaped = check_html(&shown);
    assert!(escaped.is_ascii());
    assert_eq!(unescape_entities(&escaped), shown);
});

/// Checks one component and returns it.
fn check_component(name: &[u8]) -> String {
    let component = safe_component(name);
    assert!(is_safe_component(&component), "unsafe component {component:?}");
    assert_eq!(component, safe_component(name), "not deterministic");
    if let Some(decoded) = original_name(&component) {
        assert_eq!(decoded, name, "{component:?} does not decode to its name");
    } else {
        // Shortened: whole escapes up to 221 bytes (so at least 218), the mark, 32 hex
        // digits; only a name of 64 bytes or more can escape to more than 255.
        assert!(name.len() > NAME_MAX_BYTES / 4, "{name:?} shortened");
        assert!(
            component.len() >= NAME_MAX_BYTES - 3,
            "{component:?} cut short"
        );
        let (prefix, hash) = component.split_at(component.len() - 32);
        assert!(prefix.ends_with(SHORTENED_MARK), "{component:?}");
        assert!(hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert!(original_name(&prefix[..prefix.len() - SHORTENED_MARK.len()]).is_some());
    }
    component
}

/// Checks `html_escape(text)` and returns it.
fn check_html(text: &str) -> String {
    let out = html_escape(text);
    assert!(
        !out.contains(['<', '>', '"', '\'']),
        "raw markup in {out:?}"
    );
    assert!(
        !out.chars().any(char::is_control),
        "control char in {out:?}"
    );
    assert!(
        !out.contains([
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}'
        ]),
        "bidi control in {out:?}"
    );
    for (at, _) in out.match_indices('&') {
        let rest = &out[at..];
        assert!(
            ENTITIES.iter().any(|(entity, _)| rest.starts_with(entity)),
            "bare & in {out:?}"
        );
    }
    out
}

/// The inverse of the entity escaping (controls excluded: `display_safe` leaves none).
fn unescape_entities(escaped: &str) -> String {
    let mut out = String::new();
    let mut rest = escaped;
    'outer: while let Some(c) = rest.chars().next() {
        if c == '&' {
            for (entity, plain) in ENTITIES {
                if let Some(after) = rest.strip_prefix(entity) {
                    out.push(plain);
                    rest = after;
                    continue 'outer;
                }
            }
            panic!("unknown entity at {rest:?}");
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}
