//! Talking to the examiner: the console, and a copy of everything said, for the case.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The console writer; clones share one transcript.
#[derive(Debug, Clone)]
pub struct Console {
    transcript: Arc<Mutex<Vec<String>>>,
    start: Instant,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    /// A console whose clock starts now (boot-relative times in the transcript).
    pub fn new() -> Self {
        Console {
            transcript: Arc::new(Mutex::new(Vec::new())),
            start: Instant::now(),
        }
    }

    fn emit(&self, line: String) {
        let stamped = format!("[{:8.3}] {line}", self.start.elapsed().as_secs_f64());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{stamped}");
        let _ = out.flush();
        self.transcript
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(stamped);
    }

    /// A line from init: "vestige-init: …".
    pub fn log(&self, msg: &str) {
        self.emit(format!("vestige-init: {msg}"));
    }

    /// A warning, in red on the console.
    pub fn warn(&self, msg: &str) {
        self.emit(format!("\x1b[1;31mvestige-init: WARNING: {msg}\x1b[0m"));
    }

    /// A line of a child's output, passed through.
    pub fn child(&self, line: &str) {
        self.emit(line.to_string());
    }

    /// Everything said so far, one line each, escape sequences removed (for console.log).
    pub fn transcript(&self) -> String {
        let lines = self.transcript.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = String::new();
        for l in lines.iter() {
            s.push_str(&strip_escapes(l));
            s.push('\n');
        }
        s
    }
}

/// Removes ANSI escape sequences.
pub fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}
