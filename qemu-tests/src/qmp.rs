//! A small QMP client: drives a running QEMU over its monitor socket (`-qmp unix:…`), to
//! hot-plug a disk into a booted appliance, say.
//!
//! QMP speaks one JSON object per line: a greeting (`{"QMP": …}`), then per command one
//! reply (`{"return": …}` or `{"error": {"class": …, "desc": …}}`), with asynchronous events
//! (`{"timestamp": …, "event": …}`) interleaved. The harness builds its few commands as
//! text and tells replies from events by their first key, so it needs no JSON library.
//!
//! ```no_run
//! use std::time::Duration;
//! use vestige_qemu_tests::qmp::{json_string, Qmp};
//!
//! # fn main() -> Result<(), vestige_qemu_tests::HarnessError> {
//! let mut qmp = Qmp::connect("/tmp/vm/qmp.sock".as_ref(), Duration::from_secs(10))?;
//! qmp.execute(
//!     "blockdev-add",
//!     &format!(
//!         r#"{{"driver":"raw","node-name":"hp0","read-only":false,"file":{{"driver":"file","filename":{}}}}}"#,
//!         json_string("/tmp/vm/target.raw")
//!     ),
//! )?;
//! qmp.execute(
//!     "device_add",
//!     r#"{"driver":"virtio-blk-pci","id":"hotplug0","drive":"hp0","bus":"pci.0"}"#,
//! )?;
//! # Ok(()) }
//! ```

use crate::HarnessError;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// How long one reply may take before the client gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Between connection attempts while QEMU creates its socket.
const CONNECT_RETRY: Duration = Duration::from_millis(100);
/// The tool name in [`HarnessError::UnexpectedOutput`].
const TOOL: &str = "QMP";

/// A connection to QEMU's QMP server, in command mode (`qmp_capabilities` sent).
#[derive(Debug)]
pub struct Qmp {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: Vec<String>,
}

impl Qmp {
    /// Connects to the QMP server on `socket`, retrying for `timeout` while QEMU starts,
    /// reads the greeting and enters command mode.
    ///
    /// # Errors
    /// [`HarnessError::Io`] when the socket does not accept a connection in time or fails;
    /// [`HarnessError::UnexpectedOutput`] when QEMU's greeting or reply is not QMP's.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp, HarnessError> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => thread::sleep(CONNECT_RETRY),
                Err(e) => return Err(HarnessError::io("connecting to QMP at", socket)(e)),
            }
        };
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(HarnessError::io("setting a read timeout on", socket))?;
        let writer = stream
            .try_clone()
            .map_err(HarnessError::io("cloning the QMP connection", socket))?;
        let mut qmp = Qmp {
            socket: socket.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        let greeting = qmp.read_line()?;
        if !greeting.starts_with("{\"QMP\"") {
            return Err(HarnessError::UnexpectedOutput {
                tool: TOOL,
                problem: format!("greeting is not QMP's: {greeting}"),
            });
        }
        qmp.execute("qmp_capabilities", "{}")?;
        Ok(qmp)
    }

    /// Runs `command` with `arguments` (a JSON object, as text) and returns the reply line
    /// (`{"return": …}`). Events that arrive meanwhile are kept (see [`Qmp::events`]).
    ///
    /// # Errors
    /// [`HarnessError::UnexpectedOutput`] quoting QEMU's `{"error": …}` reply, naming the
    /// command; [`HarnessError::Io`] when the socket fails or no reply comes in time.
    pub fn execute(&mut self, command: &str, arguments: &str) -> Result<String, HarnessError> {
        let request = format!(
            "{{\"execute\":{},\"arguments\":{arguments}}}\n",
            json_string(command)
        );
        self.writer
            .write_all(request.as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(HarnessError::io("writing to QMP at", &self.socket))?;
        loop {
            let line = self.read_line()?;
            if line.starts_with("{\"return\"") {
                return Ok(line);
            }
            if line.starts_with("{\"error\"") {
                return Err(HarnessError::UnexpectedOutput {
                    tool: TOOL,
                    problem: format!("{command} {arguments} failed: {line}"),
                });
            }
            // An event (or anything else that is not this command's reply).
            self.events.push(line);
        }
    }

    /// The asynchronous events received so far (DEVICE_ADDED, …), one JSON line each.
    #[must_use]
    pub fn events(&self) -> &[String] {
        &self.events
    }

    fn read_line(&mut self) -> Result<String, HarnessError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(HarnessError::io("reading from QMP at", &self.socket))?;
        if n == 0 {
            return Err(HarnessError::UnexpectedOutput {
                tool: TOOL,
                problem: format!("{} closed (QEMU ended?)", self.socket.display()),
            });
        }
        Ok(line.trim().to_string())
    }
}

/// `s` as a JSON string literal, quotes included (for file names in QMP arguments).
#[must_use]
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("/tmp/a b.raw"), "\"/tmp/a b.raw\"");
        assert_eq!(json_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
