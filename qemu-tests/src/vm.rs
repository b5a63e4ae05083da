//! Booting the appliance under QEMU with the serial console captured.
//!
//! The console (ttyS0) goes to QEMU's stdout; a reader thread stamps each line with the
//! time since QEMU started (so boot and acquisition times can be read off it) and copies
//! the raw bytes to a log file as they arrive, so a hung boot still leaves its log.

use crate::HarnessError;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// How often a running QEMU is polled for its exit.
const POLL: Duration = Duration::from_millis(100);
/// The kernel's first console line.
const KERNEL_BANNER: &str = "Linux version";
/// Under KVM, a kernel that has not printed [`KERNEL_BANNER`] by then is stuck: some nested
/// hypervisors let /dev/kvm open and run the BIOS, then hang the kernel. TCG gets there in
/// about a second.
const KVM_BANNER_DEADLINE: Duration = Duration::from_secs(20);

/// Which accelerator runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation (`-accel kvm -cpu host`).
    Kvm,
    /// QEMU's emulator (`-accel tcg`): slower, works everywhere.
    Tcg,
}

impl Accel {
    /// `$VESTIGE_QEMU_ACCEL` (`kvm` or `tcg`) when set, else KVM when /dev/kvm opens for
    /// reading and writing, else TCG. A KVM that opens but cannot run the kernel is caught
    /// by [`Boot::run`], which falls back to TCG.
    #[must_use]
    pub fn detect() -> Accel {
        match std::env::var("VESTIGE_QEMU_ACCEL").as_deref() {
            Ok("tcg") => return Accel::Tcg,
            Ok("kvm") => return Accel::Kvm,
            _ => {}
        }
        let kvm_usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if kvm_usable {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => &["-accel", "tcg"],
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// The bus a disk is attached on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// virtio-blk (`if=virtio`): the guest names it vdX. QEMU's `readonly=on` works here.
    Virtio,
    /// A SATA disk on an AHCI controller (`-device ahci` + `ide-hd`): the guest names it
    /// sdX. IDE/AHCI disks cannot be attached read-only, so only the guest's write-block
    /// (BLKROSET) protects them.
    Ahci,
}

/// One disk of the VM.
#[derive(Debug, Clone)]
pub struct Drive {
    /// The raw image file.
    pub path: PathBuf,
    /// How it is attached.
    pub bus: Bus,
    /// Attach read-only at the hypervisor (`readonly=on`; virtio only).
    pub read_only: bool,
}

/// A boot of the appliance.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The kernel.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The kernel command line (`-append`).
    pub cmdline: String,
    /// The disks, in order (virtio disks are named vda, vdb, … in this order).
    pub drives: Vec<Drive>,
    /// Guest memory.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// QEMU is killed when it has not exited after this long.
    pub timeout: Duration,
    /// The accelerator to try first.
    pub accel: Accel,
}

/// One line of the serial console.
#[derive(Debug, Clone)]
pub struct ConsoleLine {
    /// When it arrived, since QEMU was started.
    pub at: Duration,
    /// The text, without the line ending.
    pub text: String,
}

/// How QEMU ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// QEMU exited by itself (guest power off, or a reboot under `-no-reboot`).
    Exited(ExitStatus),
    /// It ran past the timeout and was killed.
    TimedOut,
    /// Under KVM the kernel printed no banner in time; QEMU was killed (see [`Boot::run`]).
    KvmStalled,
}

/// The result of a boot.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How QEMU ended.
    pub ending: Ending,
    /// The accelerator that ran the guest.
    pub accel: Accel,
    /// Why KVM was abandoned for TCG, when it was.
    pub kvm_fallback: Option<String>,
    /// The serial console, line by line.
    pub console: Vec<ConsoleLine>,
    /// QEMU's own messages.
    pub qemu_stderr: String,
    /// From QEMU's start to its end.
    pub elapsed: Duration,
}

impl Outcome {
    /// The first console line containing `needle`.
    #[must_use]
    pub fn line_containing(&self, needle: &str) -> Option<&ConsoleLine> {
        self.console.iter().find(|l| l.text.contains(needle))
    }

    /// QEMU exited by itself with status 0 and the kernel said it powers down (a panic or
    /// reboot also ends QEMU under `-no-reboot`, but says "Restarting").
    #[must_use]
    pub fn powered_off(&self) -> bool {
        matches!(self.ending, Ending::Exited(s) if s.success())
            && self.line_containing("reboot: Power down").is_some()
    }

    /// The last `n` console lines, for failure messages.
    #[must_use]
    pub fn tail(&self, n: usize) -> String {
        let skip = self.console.len().saturating_sub(n);
        let mut s = String::new();
        for l in self.console.iter().skip(skip) {
            s.push_str(&format!("[{:8.3}] {}\n", l.at.as_secs_f64(), l.text));
        }
        s
    }
}

impl Boot {
    /// The QEMU command line for `accel`.
    #[must_use]
    pub fn command(&self, accel: Accel) -> Command {
        let mut c = Command::new(QEMU);
        c.args(accel.args())
            .args(["-machine", "pc", "-m"])
            .arg(self.memory_mib.to_string())
            .arg("-smp")
            .arg(self.cpus.to_string())
            // No default NIC, CD-ROM, VGA or monitor: the VM has only the disks given.
            .args([
                "-nodefaults",
                "-nographic",
                "-serial",
                "stdio",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initrd)
            .arg("-append")
            .arg(&self.cmdline);
        let mut ahci_port = 0u32;
        for (i, d) in self.drives.iter().enumerate() {
            let file = qemu_escape(&d.path);
            let ro = if d.read_only { ",readonly=on" } else { "" };
            match d.bus {
                Bus::Virtio => {
                    c.arg("-drive")
                        .arg(format!("file={file},format=raw,if=virtio{ro}"));
                }
                Bus::Ahci => {
                    if ahci_port == 0 {
                        c.args(["-device", "ahci,id=ahci0"]);
                    }
                    c.arg("-drive")
                        .arg(format!("if=none,id=disk{i},file={file},format=raw{ro}"));
                    c.arg("-device")
                        .arg(format!("ide-hd,drive=disk{i},bus=ahci0.{ahci_port}"));
                    ahci_port += 1;
                }
            }
        }
        c
    }

    /// Boots, copies the console to `console_log`, and waits for QEMU to exit or the
    /// timeout. When KVM fails to start or stalls before the kernel banner, boots again
    /// with TCG (and says why in [`Outcome::kvm_fallback`]).
    ///
    /// # Errors
    /// When QEMU cannot be started or the log cannot be written. A guest that fails or hangs
    /// is not an error: see [`Outcome::ending`] and the console.
    pub fn run(&self, console_log: &Path) -> Result<Outcome, HarnessError> {
        let first = self.run_with(self.accel, console_log)?;
        if first.accel != Accel::Kvm || first.line_containing(KERNEL_BANNER).is_some() {
            return Ok(first);
        }
        let why = match first.ending {
            Ending::KvmStalled => format!(
                "no \"{KERNEL_BANNER}\" on the console within {} s under KVM",
                KVM_BANNER_DEADLINE.as_secs()
            ),
            Ending::Exited(s) if !s.success() => {
                format!("QEMU with KVM exited {s}: {}", first.qemu_stderr.trim())
            }
            // The kernel ran (or the guest ended without a banner): keep what happened.
            Ending::Exited(_) | Ending::TimedOut => return Ok(first),
        };
        let mut second = self.run_with(Accel::Tcg, console_log)?;
        second.kvm_fallback = Some(why);
        Ok(second)
    }

    fn run_with(&self, accel: Accel, console_log: &Path) -> Result<Outcome, HarnessError> {
        let mut log =
            File::create(console_log).map_err(HarnessError::io("creating", console_log))?;
        let mut cmd = self.command(accel);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn {
            program: QEMU.to_string(),
            source,
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let log_path = console_log.to_path_buf();
        let banner_seen = Arc::new(AtomicBool::new(false));
        let banner_flag = Arc::clone(&banner_seen);
        let console_reader = thread::spawn(move || -> Result<Vec<ConsoleLine>, HarnessError> {
            let mut lines = Vec::new();
            let Some(out) = stdout else {
                return Ok(lines);
            };
            let mut reader = BufReader::new(out);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                // A read error ends the console like EOF: QEMU is gone.
                let n = reader.read_until(b'\n', &mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                let at = start.elapsed();
                log.write_all(&buf)
                    .and_then(|()| log.flush())
                    .map_err(HarnessError::io("writing", &log_path))?;
                let text = String::from_utf8_lossy(&buf);
                if text.contains(KERNEL_BANNER) {
                    banner_flag.store(true, Ordering::Relaxed);
                }
                lines.push(ConsoleLine {
                    at,
                    text: text.trim_end_matches(['\r', '\n']).to_string(),
                });
            }
            Ok(lines)
        });
        let stderr_reader = thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut e) = stderr {
                // Lossy: QEMU's messages are for people.
                let mut bytes = Vec::new();
                let _ = e.read_to_end(&mut bytes);
                s = String::from_utf8_lossy(&bytes).into_owned();
            }
            s
        });

        let deadline = start + self.timeout;
        let ending = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ending::Exited(status),
                Ok(None)
                    if accel == Accel::Kvm
                        && start.elapsed() >= KVM_BANNER_DEADLINE
                        && !banner_seen.load(Ordering::Relaxed) =>
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Ending::KvmStalled;
                }
                Ok(None) if Instant::now() >= deadline => {
                    // Our own child, by its handle: nothing else is touched.
                    let _ = child.kill();
                    let _ = child.wait();
                    break Ending::TimedOut;
                }
                Ok(None) => thread::sleep(POLL),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HarnessError::Spawn {
                        program: QEMU.to_string(),
                        source: e,
                    });
                }
            }
        };
        let elapsed = start.elapsed();
        let console = console_reader.join().unwrap_or_else(|_| Ok(Vec::new()))?;
        let qemu_stderr = stderr_reader.join().unwrap_or_default();
        Ok(Outcome {
            ending,
            accel,
            kvm_fallback: None,
            console,
            qemu_stderr,
            elapsed,
        })
    }
}

/// A path as a QEMU option value: commas doubled.
fn qemu_escape(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}
