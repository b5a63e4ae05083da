//! `/proc/kallsyms` and `System.map`: one symbol a line, `ADDRESS TYPE NAME`, where
//! kallsyms may add a tab and `[module]` for symbols of loaded modules (kernel
//! `kernel/kallsyms.c`, `s_show`: `"%px %c %s\t[%s]\n"`).
//!
//! A bad line does not spoil the rest: it is kept in [`SymbolList::skipped`] with its line
//! number, and parsing goes on (kallsyms text comes from the examined machine).
//!
//! ```
//! let list = vestige_symbols::kallsyms::parse("ffffffff81000000 T _text\nbogus\n");
//! assert_eq!(list.symbols.len(), 1);
//! assert_eq!(list.skipped.len(), 1);
//! ```

/// Longest field text an error quotes, in characters.
const QUOTE_CHARS: usize = 64;

/// One symbol line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSymbol<'a> {
    /// The address as printed: runtime (KASLR-shifted) in kallsyms, link-time in System.map.
    pub address: u64,
    /// nm-style type letter: upper case global, lower case local (`T`/`t` text, `D`/`d`
    /// data, `B`/`b` bss, `R`/`r` read-only, `A` absolute...).
    pub type_letter: char,
    pub name: &'a str,
    /// The module in brackets (kallsyms only); `None` for the kernel image itself.
    pub module: Option<&'a str>,
}

impl KernelSymbol<'_> {
    /// Upper-case type letters mark global symbols.
    pub fn is_global(&self) -> bool {
        self.type_letter.is_ascii_uppercase()
    }
}

/// A parsed symbol list: the good lines and why the others were skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolList<'a> {
    pub symbols: Vec<KernelSymbol<'a>>,
    pub skipped: Vec<KallsymsError>,
}

/// Why one line was skipped; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KallsymsError {
    #[error("symbol line {line}: {found} fields, expected 3 (or 4 with a [module])")]
    FieldCount { line: usize, found: usize },
    #[error("symbol line {line}: {field} {found:?} is not {expected}")]
    BadField {
        line: usize,
        field: &'static str,
        found: String,
        expected: &'static str,
    },
}

/// Parses kallsyms or System.map text. Blank lines are ignored.
pub fn parse(text: &str) -> SymbolList<'_> {
    let mut list = SymbolList::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index.saturating_add(1);
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(raw, line) {
            Ok(symbol) => list.symbols.push(symbol),
            Err(e) => list.skipped.push(e),
        }
    }
    list
}

fn parse_line(raw: &str, line: usize) -> Result<KernelSymbol<'_>, KallsymsError> {
    let mut fields = raw.split_whitespace();
    let (Some(address), Some(letter), Some(name)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(KallsymsError::FieldCount {
            line,
            found: raw.split_whitespace().count(),
        });
    };
    let module = fields.next();
    if fields.next().is_some() {
        return Err(KallsymsError::FieldCount {
            line,
            found: raw.split_whitespace().count(),
        });
    }
    let bad = |field, found: &str, expected| KallsymsError::BadField {
        line,
        field,
        found: found.chars().take(QUOTE_CHARS).collect(),
        expected,
    };
    let address_ok =
        (1..=16).contains(&address.len()) && address.bytes().all(|b| b.is_ascii_hexdigit());
    let address = address_ok
        .then(|| u64::from_str_radix(address, 16).ok())
        .flatten()
        .ok_or_else(|| bad("address", address, "1 to 16 hex digits"))?;
    let mut letters = letter.chars();
    let type_letter = match (letters.next(), letters.next()) {
        (Some(c), None) if c.is_ascii_graphic() => c,
        _ => return Err(bad("type", letter, "one letter")),
    };
    let module = match module {
        None => None,
        Some(m) => Some(
            m.strip_prefix('[')
                .and_then(|m| m.strip_suffix(']'))
                .ok_or_else(|| bad("module", m, "[name]"))?,
        ),
    };
    Ok(KernelSymbol {
        address,
        type_letter,
        name,
        module,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_and_module_lines() {
        let list = parse(
            "ffffffff81000000 T _text\n\
             0000000000000000 A fixed_percpu_data\n\
             ffffffffc0201000 t ftrace_trampoline\t[__builtin__ftrace]\n\n",
        );
        assert!(list.skipped.is_empty());
        assert_eq!(
            list.symbols,
            [
                KernelSymbol {
                    address: 0xffff_ffff_8100_0000,
                    type_letter: 'T',
                    name: "_text",
                    module: None
                },
                KernelSymbol {
                    address: 0,
                    type_letter: 'A',
                    name: "fixed_percpu_data",
                    module: None
                },
                KernelSymbol {
                    address: 0xffff_ffff_c020_1000,
                    type_letter: 't',
                    name: "ftrace_trampoline",
                    module: Some("__builtin__ftrace")
                },
            ]
        );
        assert!(list.symbols.first().is_some_and(KernelSymbol::is_global));
    }

    #[test]
    fn bad_lines_are_skipped_with_their_number() {
        let list = parse(
            "zzzz T a\n\
             ffffffff81000000 TT b\n\
             ffffffff81000000 T c d\n\
             ffffffff81000000\n\
             11112222333344445 T too_long\n\
             ffffffff81000000 T ok\n",
        );
        assert_eq!(list.symbols.len(), 1);
        assert_eq!(
            list.skipped,
            [
                KallsymsError::BadField {
                    line: 1,
                    field: "address",
                    found: "zzzz".into(),
                    expected: "1 to 16 hex digits"
                },
                KallsymsError::BadField {
                    line: 2,
                    field: "type",
                    found: "TT".into(),
                    expected: "one letter"
                },
                KallsymsError::BadField {
                    line: 3,
                    field: "module",
                    found: "d".into(),
                    expected: "[name]"
                },
                KallsymsError::FieldCount { line: 4, found: 1 },
                KallsymsError::BadField {
                    line: 5,
                    field: "address",
                    found: "11112222333344445".into(),
                    expected: "1 to 16 hex digits"
                },
            ]
        );
    }

    #[test]
    fn error_quotes_are_bounded() {
        let long = "x".repeat(10_000);
        let text = format!("{long} T a\n");
        let list = parse(&text);
        let Some(KallsymsError::BadField { found, .. }) = list.skipped.first() else {
            panic!("one bad field expected");
        };
        assert_eq!(found.len(), QUOTE_CHARS);
    }
}
