//! The line-oriented tables of /proc and the errors their parsers report.
//!
//! Every file under /proc is produced by the kernel of the system under examination, which
//! may be compromised (a rootkit can hook `seq_show` and print anything), so the parsers
//! treat the text as hostile: lines and strings are capped, numbers are checked, and a bad
//! line becomes a [`ParseError`] naming its line while the rest of the table is kept.

/// Most lines any parser looks at; the rest of a table is reported as
/// [`ParseError::TooManyLines`] rather than read (bounds time and memory on hostile input).
pub const MAX_LINES: usize = 1_000_000;

/// Longest string kept from one field (paths, names, command-line arguments), in bytes.
/// Linux paths are at most 4096 bytes (PATH_MAX), so nothing genuine is cut.
pub const MAX_STRING_BYTES: usize = 4096;

/// Longest excerpt of offending input quoted in a [`ParseError`], in characters.
pub const FOUND_MAX_CHARS: usize = 64;

/// Why a line, field or record could not be parsed. Line numbers count from 1 and include
/// header lines, so they match `sed -n Np` on the same text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A field is present but not what the format says.
    #[error("line {line}: {field}: expected {expected}, found {found:?}")]
    Field {
        /// 1-based line number.
        line: usize,
        /// Name of the field in the kernel's format (e.g. `local_address`).
        field: &'static str,
        /// What the format requires.
        expected: &'static str,
        /// The offending text, cut to [`FOUND_MAX_CHARS`].
        found: String,
    },
    /// A line ends before its last required field.
    #[error("line {line}: expected at least {expected} fields, found {found}")]
    TooFewFields {
        /// 1-based line number.
        line: usize,
        /// Fields the format requires.
        expected: usize,
        /// Fields present.
        found: usize,
    },
    /// A key the format always has (e.g. `btime` in /proc/stat) is absent.
    #[error("{field}: missing")]
    Missing {
        /// Name of the absent key or field.
        field: &'static str,
    },
    /// The table has more than [`MAX_LINES`] lines; the rest was not parsed.
    #[error("stopped after {limit} lines; the rest was not parsed")]
    TooManyLines {
        /// The cap that was reached.
        limit: usize,
    },
    /// A binary file of fixed-size records ends inside a record.
    #[error("byte {offset}: {found} trailing bytes are not a whole {expected}-byte record")]
    TruncatedRecord {
        /// Offset of the partial record.
        offset: usize,
        /// Record size.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
}

impl ParseError {
    /// A [`ParseError::Field`] quoting at most [`FOUND_MAX_CHARS`] of `found`.
    pub(crate) fn field(
        line: usize,
        field: &'static str,
        expected: &'static str,
        found: &str,
    ) -> Self {
        ParseError::Field {
            line,
            field,
            expected,
            found: found.chars().take(FOUND_MAX_CHARS).collect(),
        }
    }
}

/// What a tolerant table parser returns: the rows it understood and, for each line it did
/// not, an error naming that line. Partial success is data, not failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<T> {
    /// Parsed rows, in file order.
    pub items: Vec<T>,
    /// One error per rejected line (and one if the table was cut at [`MAX_LINES`]).
    pub errors: Vec<ParseError>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Parsed {
            items: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// Runs `row` over each non-blank line after `header_lines` header lines, at most
/// [`MAX_LINES`] lines in all. `row` gets the 1-based line number; `Ok(None)` skips a line.
pub(crate) fn parse_lines<T>(
    text: &str,
    header_lines: usize,
    mut row: impl FnMut(usize, &str) -> Result<Option<T>, ParseError>,
) -> Parsed<T> {
    let mut out = Parsed::default();
    for (index, line) in text.lines().enumerate() {
        if index >= MAX_LINES {
            out.errors
                .push(ParseError::TooManyLines { limit: MAX_LINES });
            break;
        }
        if index < header_lines || line.trim().is_empty() {
            continue;
        }
        let number = index.saturating_add(1);
        match row(number, line) {
            Ok(Some(item)) => out.items.push(item),
            Ok(None) => {}
            Err(e) => out.errors.push(e),
        }
    }
    out
}

/// The first `n` whitespace-separated fields of `line`, or [`ParseError::TooFewFields`].
pub(crate) fn fields(line_no: usize, line: &str, n: usize) -> Result<Vec<&str>, ParseError> {
    let found: Vec<&str> = line.split_whitespace().take(n).collect();
    if found.len() < n {
        return Err(ParseError::TooFewFields {
            line: line_no,
            expected: n,
            found: found.len(),
        });
    }
    Ok(found)
}

/// Splits off `n` whitespace-separated fields and returns them with the remainder of the
/// line after the single space that separates it (for a trailing free-text column such as a
/// socket path, which may itself contain spaces). The remainder is empty when absent.
pub(crate) fn fields_and_rest(
    line_no: usize,
    line: &str,
    n: usize,
) -> Result<(Vec<&str>, &str), ParseError> {
    let mut out = Vec::with_capacity(n);
    let mut rest = line;
    while out.len() < n {
        rest = rest.trim_start_matches([' ', '\t']);
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        let (field, tail) = rest.split_at(end);
        if field.is_empty() {
            return Err(ParseError::TooFewFields {
                line: line_no,
                expected: n,
                found: out.len(),
            });
        }
        out.push(field);
        rest = tail;
    }
    let rest = rest
        .strip_prefix(' ')
        .or_else(|| rest.strip_prefix('\t'))
        .unwrap_or(rest);
    Ok((out, rest))
}

/// A hexadecimal field (no `0x` prefix) as `T`.
pub(crate) fn hex<T: TryFrom<u64>>(
    line: usize,
    field: &'static str,
    text: &str,
) -> Result<T, ParseError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseError::field(line, field, "hexadecimal number", text));
    }
    u64::from_str_radix(text, 16)
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| ParseError::field(line, field, "hexadecimal number in range", text))
}

/// A decimal field as `T` (digits only, optionally a leading `-` for signed `T`).
pub(crate) fn dec<T: std::str::FromStr>(
    line: usize,
    field: &'static str,
    text: &str,
) -> Result<T, ParseError> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::field(line, field, "decimal number", text));
    }
    text.parse()
        .map_err(|_| ParseError::field(line, field, "decimal number in range", text))
}

/// `text` cut to at most `max_bytes` at a character boundary.
pub(crate) fn cap(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.get(..end).unwrap_or_default().to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_rest_keeps_spaces_in_the_rest() {
        let (f, rest) = fields_and_rest(1, "a  b\tc /path with space", 3).unwrap();
        assert_eq!(f, ["a", "b", "c"]);
        assert_eq!(rest, "/path with space");
        let (_, rest) = fields_and_rest(1, "a b c", 3).unwrap();
        assert_eq!(rest, "");
        assert_eq!(
            fields_and_rest(4, "a b", 3),
            Err(ParseError::TooFewFields {
                line: 4,
                expected: 3,
                found: 2
            })
        );
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(hex::<u16>(1, "port", "1F90"), Ok(8080));
        assert!(hex::<u8>(1, "st", "100").is_err());
        assert!(hex::<u32>(1, "x", "+1").is_err());
        assert!(hex::<u32>(1, "x", "").is_err());
        assert_eq!(dec::<i64>(1, "x", "-5"), Ok(-5));
        assert!(dec::<u32>(1, "x", "-5").is_err());
        assert!(dec::<u32>(1, "x", "99999999999").is_err());
    }

    #[test]
    fn cap_respects_char_boundaries() {
        assert_eq!(cap("héllo", 2), "h");
        assert_eq!(cap("abc", 10), "abc");
    }

    #[test]
    fn parse_lines_numbers_from_one_and_skips_header() {
        let p = parse_lines("head\n1\n\nx\n3", 1, |n, l| {
            l.parse::<u32>()
                .map(Some)
                .map_err(|_| ParseError::field(n, "v", "number", l))
        });
        assert_eq!(p.items, [1, 3]);
        assert_eq!(p.errors, [ParseError::field(4, "v", "number", "x")]);
    }
}
