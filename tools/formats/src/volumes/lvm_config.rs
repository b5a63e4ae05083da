//! A bounded parser of LVM2's metadata text ("config" language, lib/config/config.c):
//!
//! ```text
//! vg0 {                      # a section
//!     extent_size = 8192     # integers
//!     status = ["READ", "WRITE"]   # lists of strings and integers
//!     physical_volumes { pv0 { id = "…" } }
//! }
//! ```
//!
//! Sections nest at most [`MAX_DEPTH`] deep, at most [`MAX_NODES`] values are kept, and
//! strings are bounded by the text (itself capped by the caller). Errors name the byte
//! offset in the text.

/// Nesting deeper than this is refused (real metadata nests 5 deep).
pub(crate) const MAX_DEPTH: usize = 32;
/// Values (settings, sections, list items) kept at most.
pub(crate) const MAX_NODES: usize = 1 << 20;

/// A value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Section(Section),
}

/// A section: its settings and subsections, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Section {
    pub(crate) items: Vec<(String, Value)>,
}

impl Section {
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.items.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
    pub(crate) fn list(&self, key: &str) -> Option<&[Value]> {
        match self.get(key) {
            Some(Value::List(l)) => Some(l),
            _ => None,
        }
    }
    pub(crate) fn section(&self, key: &str) -> Option<&Section> {
        match self.get(key) {
            Some(Value::Section(s)) => Some(s),
            _ => None,
        }
    }
    /// The subsections, with their names.
    pub(crate) fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.items.iter().filter_map(|(k, v)| match v {
            Value::Section(s) => Some((k.as_str(), s)),
            _ => None,
        })
    }
}

/// A parse error: the byte offset in the text and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub(crate) offset: usize,
    pub(crate) reason: String,
}

/// Parses the whole text as the top-level section.
pub(crate) fn parse(text: &[u8]) -> Result<Section, ParseError> {
    let mut p = Parser {
        s: text,
        pos: 0,
        nodes: 0,
    };
    let top = p.section_body(0)?;
    p.skip_space();
    if p.pos < p.s.len() {
        return Err(p.err("expected a setting or the end of the text"));
    }
    Ok(top)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    nodes: usize,
}

impl Parser<'_> {
    fn err(&self, reason: impl Into<String>) -> ParseError {
        ParseError {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Skips blanks, comments and NULs (the text is NUL-terminated in the area).
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'#' {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.pos += 1;
                }
            } else if c.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn count(&mut self) -> Result<(), ParseError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.err(format!("more than {MAX_NODES} values")));
        }
        Ok(())
    }

    /// Settings and sections until `}` (depth > 0) or the end / a NUL (depth 0).
    fn section_body(&mut self, depth: usize) -> Result<Section, ParseError> {
        let mut sec = Section::default();
        loop {
            self.skip_space();
            match self.peek() {
                None | Some(0) if depth == 0 => {
                    self.pos = self.s.len();
                    return Ok(sec);
                }
                None | Some(0) => return Err(self.err("the text ends inside a section")),
                Some(b'}') if depth > 0 => {
                    self.pos += 1;
                    return Ok(sec);
                }
                _ => {}
            }
            let key = self.ident()?;
            self.count()?;
            self.skip_space();
            match self.peek() {
                Some(b'{') => {
                    if depth + 1 > MAX_DEPTH {
                        return Err(self.err(format!("sections nested deeper than {MAX_DEPTH}")));
                    }
                    self.pos += 1;
                    let inner = self.section_body(depth + 1)?;
                    sec.items.push((key, Value::Section(inner)));
                }
                Some(b'=') => {
                    self.pos += 1;
                    self.skip_space();
                    let v = if self.peek() == Some(b'[') {
                        self.pos += 1;
                        self.list()?
                    } else {
                        self.scalar()?
                    };
                    sec.items.push((key, v));
                }
                _ => return Err(self.err(format!("expected '=' or '{{' after {key:?}"))),
            }
        }
    }

    fn ident(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"_.-+/".contains(&c))
        {
            self.pos += 1;
        }
        let name = self.s.get(start..self.pos).unwrap_or_default();
        if name.is_empty() {
            return Err(self.err("expected a name"));
        }
        Ok(String::from_utf8_lossy(name).into_owned())
    }

    /// The items of a list after its `[`, up to `]`.
    fn list(&mut self) -> Result<Value, ParseError> {
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::List(items));
            }
            items.push(self.scalar()?);
            self.count()?;
            self.skip_space();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {}
                _ => return Err(self.err("expected ',' or ']' in a list")),
            }
        }
    }

    fn scalar(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err(self.err("the text ends inside a string")),
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(Value::Str(String::from_utf8_lossy(&out).into_owned()));
                        }
                        Some(b'\\') => {
                            self.pos += 1;
                            if let Some(c) = self.peek() {
                                out.push(c);
                                self.pos += 1;
                            }
                        }
                        Some(c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(c) if c == b'-' || c == b'+' || c.is_ascii_digit() => {
                let start = self.pos;
                self.pos += 1;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || c == b'.' || c == b'e' || c == b'E')
                {
                    self.pos += 1;
                }
                let text = String::from_utf8_lossy(self.s.get(start..self.pos).unwrap_or_default())
                    .into_owned();
                if let Ok(i) = text.parse::<i64>() {
                    Ok(Value::Int(i))
                } else if let Ok(f) = text.parse::<f64>() {
                    Ok(Value::Float(f))
                } else {
                    self.pos = start;
                    Err(self.err(format!("{text:?} is not a number")))
                }
            }
            _ => Err(self.err("expected a string, a number or a list")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_sections_lists_and_comments() {
        let t =
            b"vg { id = \"a\\\"b\" # c\n n = -3 l = [\"x\", 1 ] s { } }\ncontents = \"T\"\n\0\0";
        let top = parse(t).unwrap();
        let vg = top.section("vg").unwrap();
        assert_eq!(vg.str("id"), Some("a\"b"));
        assert_eq!(vg.int("n"), Some(-3));
        assert_eq!(vg.list("l").unwrap().len(), 2);
        assert!(vg.section("s").is_some());
        assert_eq!(top.str("contents"), Some("T"));
    }

    #[test]
    fn deep_nesting_and_junk_are_refused_with_an_offset() {
        let deep = "a{".repeat(100_000);
        let e = parse(deep.as_bytes()).unwrap_err();
        assert!(e.reason.contains("deeper"), "{e:?}");
        assert_eq!(e.offset, 2 * (MAX_DEPTH + 1) - 1);
        let e = parse(b"vg { x = = }").unwrap_err();
        assert_eq!(e.offset, 9);
        assert!(parse(b"vg { x = \"unterminated").is_err());
        assert!(parse(b"vg { x = [1, 2").is_err());
    }
}
