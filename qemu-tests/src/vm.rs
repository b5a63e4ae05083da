//! Booting the appliance under QEMU with the serial console captured.
//!
//! The console (ttyS0) goes to QEMU's stdout; a reader thread stamps each line with the
//! time since QEMU started (so boot and acquisition times can be read off it) and copies
//! the raw bytes to a log file as they arrive, so a hung boot still leaves its log.
//!
//! [`Boot::run_scripted`] also opens a QMP socket and runs a script beside the guest: it
//! watches the console as it arrives ([`Live::wait_for_line`]) and drives QEMU over QMP
//! ([`crate::qmp`]), to hot-plug a disk once the appliance is up, say.
//! [`Boot::run_interactive`] also pipes QEMU's stdin (the guest's ttyS0 under
//! `-serial stdio`) to the script, which types on the console with [`Live::send_line`].
//!
//! [`CustomBoot`] runs a QEMU command line of the caller's own (firmware, a CD-ROM, no
//! `-kernel`) the same way.

use crate::HarnessError;
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
    /// virtio-blk as a PCI device with the id `unplugN` (N: the drive's index in
    /// [`Boot::drives`]), so a test can remove it mid-run with QMP `device_del`, as a
    /// disk pulled from a running machine. The guest names it vdX.
    VirtioUnpluggable,
    /// A SATA disk on an AHCI controller (`-device ahci` + `ide-hd`): the guest names it
    /// sdX. IDE/AHCI disks cannot be attached read-only, so only the guest's write-block
    /// (BLKROSET) protects them.
    Ahci,
    /// An NVMe controller with one namespace (`-device nvme,serial=…`): the guest names it
    /// nvmeNn1, controllers numbered in order. `readonly=on` works here.
    Nvme,
    /// A SCSI disk on a virtio-scsi controller (`-device virtio-scsi-pci` + `scsi-hd`): the
    /// guest names it sdX. `readonly=on` works here (the disk reports write protect).
    VirtioScsi,
    /// A disk on the PC machine's PIIX IDE controller (`ide-hd` on ide.0/ide.1, master then
    /// slave): the guest's ata_piix names it sdX. Like AHCI, QEMU cannot attach it read-only.
    Ide,
    /// A USB mass-storage device on an xHCI controller (`-device qemu-xhci` +
    /// `usb-storage`): the guest names it sdX. `readonly=on` works here.
    UsbStorage,
}

/// One disk of the VM.
#[derive(Debug, Clone)]
pub struct Drive {
    /// The raw image file.
    pub path: PathBuf,
    /// How it is attached.
    pub bus: Bus,
    /// Attach read-only at the hypervisor (`readonly=on`; every bus but AHCI and IDE).
    pub read_only: bool,
    /// Read the image through QEMU's blkdebug driver with the rules in this file
    /// (`file=blkdebug:RULES:IMAGE`): `[inject-error]` sections make chosen sectors
    /// fail like a bad disk.
    pub blkdebug: Option<PathBuf>,
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
        self.command_with_qmp(accel, None)
    }

    /// The QEMU command line for `accel`, with a QMP server on the unix socket `qmp` when
    /// given (`-qmp unix:PATH,server=on,wait=off`: QEMU does not wait for a client).
    #[must_use]
    pub fn command_with_qmp(&self, accel: Accel, qmp: Option<&Path>) -> Command {
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
        if let Some(socket) = qmp {
            c.arg("-qmp")
                .arg(format!("unix:{},server=on,wait=off", qemu_escape(socket)));
        }
        let mut ahci_port = 0u32;
        let mut ide_unit = 0u32;
        let mut scsi_controller = false;
        let mut xhci_controller = false;
        for (i, d) in self.drives.iter().enumerate() {
            let file = match &d.blkdebug {
                Some(rules) => format!("blkdebug:{}:{}", qemu_escape(rules), qemu_escape(&d.path)),
                None => qemu_escape(&d.path),
            };
            let ro = if d.read_only { ",readonly=on" } else { "" };
            match d.bus {
                Bus::Virtio => {
                    c.arg("-drive")
                        .arg(format!("file={file},format=raw,if=virtio{ro}"));
                }
                Bus::VirtioUnpluggable => {
                    c.arg("-drive")
                        .arg(format!("if=none,id=disk{i},file={file},format=raw{ro}"));
                    c.arg("-device")
                        .arg(format!("virtio-blk-pci,drive=disk{i},id=unplug{i}"));
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
                Bus::Nvme => {
                    c.arg("-drive")
                        .arg(format!("if=none,id=disk{i},file={file},format=raw{ro}"));
                    c.arg("-device")
                        .arg(format!("nvme,serial=VESTIGE{i},drive=disk{i}"));
                }
                Bus::Ide => {
                    c.arg("-drive")
                        .arg(format!("if=none,id=disk{i},file={file},format=raw{ro}"));
                    c.arg("-device").arg(format!(
                        "ide-hd,drive=disk{i},bus=ide.{},unit={}",
                        ide_unit / 2,
                        ide_unit % 2
                    ));
                    ide_unit += 1;
                }
                Bus::UsbStorage => {
                    if !xhci_controller {
                        c.args(["-device", "qemu-xhci,id=xhci"]);
                        xhci_controller = true;
                    }
                    c.arg("-drive")
                        .arg(format!("if=none,id=disk{i},file={file},format=raw{ro}"));
                    c.arg("-device").arg(format!(
                        "usb-storage,drive=disk{i},bus=xhci.0,serial=VESTIGEUSB{i}"
                    ));
                }
                Bus::VirtioScsi => {
                    if !scsi_controller {
                        c.args(["-device", "virtio-scsi-pci,id=scsi0"]);
                        scsi_controller = true;
                    }
                    c.arg("-drive")
                        .arg(format!("if=none,id=disk{i},file={file},format=raw{ro}"));
                    c.arg("-device")
                        .arg(format!("scsi-hd,drive=disk{i},bus=scsi0.0"));
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
        self.run_scripted(console_log, None, |_| ())
            .map(|(outcome, ())| outcome)
    }

    /// Like [`Boot::run`], with `script` running on its own thread while the guest does:
    /// it sees the console as it arrives and, when `qmp_socket` is given, can drive QEMU
    /// over QMP on that unix socket (made by QEMU; a stale file there is removed first).
    /// QEMU's exit or the timeout still ends the boot whatever the script does; the boot's
    /// outcome is returned after the script has returned too, with what it returned.
    ///
    /// When the boot falls back from KVM to TCG, the script runs again for the second boot
    /// (its first run sees the console close early).
    ///
    /// # Errors
    /// As [`Boot::run`]. A panic in the script is resumed once QEMU has ended.
    pub fn run_scripted<T, F>(
        &self,
        console_log: &Path,
        qmp_socket: Option<&Path>,
        script: F,
    ) -> Result<(Outcome, T), HarnessError>
    where
        F: FnMut(&Live) -> T + Send,
        T: Send,
    {
        let run = Run {
            accel: self.accel,
            timeout: self.timeout,
            console_log,
            qmp_socket,
            console_input: false,
        };
        run.with_fallback(&|accel, qmp| self.command_with_qmp(accel, qmp), script)
    }

    /// Like [`Boot::run_scripted`], with QEMU's stdin piped so that the script can type on
    /// the serial console ([`Live::send_line`]). (Other runs give QEMU no stdin at all.)
    ///
    /// # Errors
    /// As [`Boot::run`].
    pub fn run_interactive<T, F>(
        &self,
        console_log: &Path,
        qmp_socket: Option<&Path>,
        script: F,
    ) -> Result<(Outcome, T), HarnessError>
    where
        F: FnMut(&Live) -> T + Send,
        T: Send,
    {
        let run = Run {
            accel: self.accel,
            timeout: self.timeout,
            console_log,
            qmp_socket,
            console_input: true,
        };
        run.with_fallback(&|accel, qmp| self.command_with_qmp(accel, qmp), script)
    }
}

/// A boot from a QEMU command line of the caller's own: firmware (`-drive if=pflash,…`), a
/// CD-ROM, no `-kernel`. Run like a [`Boot`]: console capture, script, QMP, KVM fallback.
#[derive(Debug, Clone)]
pub struct CustomBoot {
    /// QEMU's arguments after the accelerator's (`-accel …`, which come first). They must
    /// send the console to stdout (`-serial stdio`); `-qmp` is added when a script asks.
    pub args: Vec<OsString>,
    /// QEMU is killed when it has not exited after this long.
    pub timeout: Duration,
    /// The accelerator to try first.
    pub accel: Accel,
}

impl CustomBoot {
    /// The QEMU command line for `accel`, with a QMP server on `qmp` when given.
    #[must_use]
    pub fn command_with_qmp(&self, accel: Accel, qmp: Option<&Path>) -> Command {
        let mut c = Command::new(QEMU);
        c.args(accel.args()).args(&self.args);
        if let Some(socket) = qmp {
            c.arg("-qmp")
                .arg(format!("unix:{},server=on,wait=off", qemu_escape(socket)));
        }
        c
    }

    /// As [`Boot::run_scripted`], and with QEMU's stdin piped to the script
    /// ([`Live::send_line`]) when `console_input`.
    ///
    /// # Errors
    /// As [`Boot::run`].
    pub fn run_scripted<T, F>(
        &self,
        console_log: &Path,
        qmp_socket: Option<&Path>,
        console_input: bool,
        script: F,
    ) -> Result<(Outcome, T), HarnessError>
    where
        F: FnMut(&Live) -> T + Send,
        T: Send,
    {
        let run = Run {
            accel: self.accel,
            timeout: self.timeout,
            console_log,
            qmp_socket,
            console_input,
        };
        run.with_fallback(&|accel, qmp| self.command_with_qmp(accel, qmp), script)
    }
}

/// How one scripted run goes, whatever builds its command line.
#[derive(Debug, Clone, Copy)]
struct Run<'a> {
    accel: Accel,
    timeout: Duration,
    console_log: &'a Path,
    qmp_socket: Option<&'a Path>,
    console_input: bool,
}

/// Builds QEMU's command line for an accelerator and an optional QMP socket.
type MakeCommand<'c> = dyn Fn(Accel, Option<&Path>) -> Command + Sync + 'c;

impl Run<'_> {
    /// Runs with [`Run::accel`]; when KVM fails to start or stalls before the kernel
    /// banner, runs again with TCG (the script too).
    fn with_fallback<T, F>(
        &self,
        make: &MakeCommand<'_>,
        mut script: F,
    ) -> Result<(Outcome, T), HarnessError>
    where
        F: FnMut(&Live) -> T + Send,
        T: Send,
    {
        let first = self.once(self.accel, make, &mut script)?;
        if first.0.accel != Accel::Kvm || first.0.line_containing(KERNEL_BANNER).is_some() {
            return Ok(first);
        }
        let why = match first.0.ending {
            Ending::KvmStalled => format!(
                "no \"{KERNEL_BANNER}\" on the console within {} s under KVM",
                KVM_BANNER_DEADLINE.as_secs()
            ),
            Ending::Exited(s) if !s.success() => {
                format!("QEMU with KVM exited {s}: {}", first.0.qemu_stderr.trim())
            }
            // The kernel ran (or the guest ended without a banner): keep what happened.
            Ending::Exited(_) | Ending::TimedOut => return Ok(first),
        };
        let mut second = self.once(Accel::Tcg, make, &mut script)?;
        second.0.kvm_fallback = Some(why);
        Ok(second)
    }

    fn once<T, F>(
        &self,
        accel: Accel,
        make: &MakeCommand<'_>,
        script: &mut F,
    ) -> Result<(Outcome, T), HarnessError>
    where
        F: FnMut(&Live) -> T + Send,
        T: Send,
    {
        let (console_log, qmp_socket) = (self.console_log, self.qmp_socket);
        let mut log =
            File::create(console_log).map_err(HarnessError::io("creating", console_log))?;
        if let Some(socket) = qmp_socket {
            // Only a leftover of an earlier boot; QEMU refuses to bind over it.
            match std::fs::remove_file(socket) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(HarnessError::Io {
                        what: "removing the stale QMP socket",
                        path: socket.to_path_buf(),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        let mut cmd = make(accel, qmp_socket);
        cmd.stdin(if self.console_input {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn {
            program: QEMU.to_string(),
            source,
        })?;
        let stdout = child.stdout.take();
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let log_path = console_log.to_path_buf();
        let banner_seen = Arc::new(AtomicBool::new(false));
        let banner_flag = Arc::clone(&banner_seen);
        let shared = Arc::new(SharedConsole::default());
        let reader_console = Arc::clone(&shared);
        let console_reader = thread::spawn(move || -> Result<(), HarnessError> {
            // However the reader ends, waiters learn that no more lines come.
            let _close = CloseOnDrop(&reader_console, start);
            let Some(out) = stdout else {
                return Ok(());
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
                reader_console.push(ConsoleLine {
                    at,
                    text: text.trim_end_matches(['\r', '\n']).to_string(),
                });
            }
            Ok(())
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
        let live = Live {
            console: Arc::clone(&shared),
            qmp_socket: qmp_socket.map(Path::to_path_buf),
            accel,
            start,
            stdin: stdin.map(Mutex::new),
        };

        let deadline = start + self.timeout;
        let (ending, script_result) = thread::scope(|scope| {
            let script_thread = scope.spawn(|| script(&live));
            let ending = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(Ending::Exited(status)),
                    Ok(None)
                        if accel == Accel::Kvm
                            && start.elapsed() >= KVM_BANNER_DEADLINE
                            && !banner_seen.load(Ordering::Relaxed) =>
                    {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Ok(Ending::KvmStalled);
                    }
                    Ok(None) if Instant::now() >= deadline => {
                        // Our own child, by its handle: nothing else is touched.
                        let _ = child.kill();
                        let _ = child.wait();
                        break Ok(Ending::TimedOut);
                    }
                    Ok(None) => thread::sleep(POLL),
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Err(HarnessError::Spawn {
                            program: QEMU.to_string(),
                            source: e,
                        });
                    }
                }
            };
            // QEMU is gone: its stdout closes, the reader ends and wakes any waiting script.
            (ending, script_thread.join())
        });
        let elapsed = start.elapsed();
        let reader_result = console_reader.join();
        let qemu_stderr = stderr_reader.join().unwrap_or_default();
        let script_result = match script_result {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let ending = ending?;
        reader_result.unwrap_or(Ok(()))?;
        let console = std::mem::take(&mut shared.lock().lines);
        Ok((
            Outcome {
                ending,
                accel,
                kvm_fallback: None,
                console,
                qemu_stderr,
                elapsed,
            },
            script_result,
        ))
    }
}

/// The console as it arrives, shared by the reader thread and a script.
#[derive(Debug, Default)]
struct SharedConsole {
    state: Mutex<ConsoleState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct ConsoleState {
    lines: Vec<ConsoleLine>,
    /// The start of a userspace line that a kernel message cut in two (see
    /// [`ConsoleState::push_raw`]): it is joined to the line's rest when that arrives.
    cut: Option<String>,
    /// QEMU's stdout has closed: no more lines.
    closed: bool,
}

impl ConsoleState {
    /// Adds one raw console line, taking kernel messages out of userspace lines.
    ///
    /// The kernel writes a message to the serial console in one piece, under the port
    /// lock, while a process's tty output goes out in chunks: a kernel message can land in
    /// the middle of a userspace line, as in
    /// `vesti[    6.858747] EXT4-fs warning …` followed by `ge-init: power off`. The
    /// kernel message becomes its own line and the userspace line is made whole again, so
    /// a search for "vestige-init: power off" finds it. Kernel messages are recognised by
    /// printk's time stamp (`[` seconds `.` six digits `]`); the appliance's own stamp has
    /// three digits. The console log file keeps the raw bytes.
    fn push_raw(&mut self, at: Duration, text: String) {
        let stamp = kernel_stamp_in(&text);
        // The stamp starts at a '[' byte: a character boundary.
        if let Some((user, kernel)) = stamp
            .filter(|&p| p > 0)
            .and_then(|p| text.split_at_checked(p))
        {
            self.cut.get_or_insert_with(String::new).push_str(user);
            self.lines.push(ConsoleLine {
                at,
                text: kernel.to_string(),
            });
        } else if stamp == Some(0) || self.cut.is_none() {
            self.lines.push(ConsoleLine { at, text });
        } else {
            let mut whole = self.cut.take().unwrap_or_default();
            whole.push_str(&text);
            self.lines.push(ConsoleLine { at, text: whole });
        }
    }

    /// Ends the console: a cut line whose rest never came is kept as it is.
    fn close(&mut self, at: Duration) {
        if let Some(text) = self.cut.take() {
            self.lines.push(ConsoleLine { at, text });
        }
        self.closed = true;
    }
}

/// Where the first printk time stamp (`[`, spaces, digits, `.`, six digits, `]`) in `text`
/// starts.
fn kernel_stamp_in(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    (0..b.len()).find(|&i| {
        if b.get(i) != Some(&b'[') {
            return false;
        }
        let mut j = i + 1;
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
        let int = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j == int || b.get(j) != Some(&b'.') {
            return false;
        }
        let frac = j + 1;
        b.get(frac..frac + 6)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            && b.get(frac + 6) == Some(&b']')
    })
}

impl SharedConsole {
    fn lock(&self) -> MutexGuard<'_, ConsoleState> {
        // A panicking script cannot leave the lines half-written: push is one call.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, line: ConsoleLine) {
        self.lock().push_raw(line.at, line.text);
        self.changed.notify_all();
    }

    fn close(&self, at: Duration) {
        self.lock().close(at);
        self.changed.notify_all();
    }
}

/// Closes the shared console when the reader thread ends, even by an error.
struct CloseOnDrop<'a>(&'a SharedConsole, Instant);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close(self.1.elapsed());
    }
}

/// A boot in progress, as [`Boot::run_scripted`]'s script sees it.
#[derive(Debug)]
pub struct Live {
    console: Arc<SharedConsole>,
    qmp_socket: Option<PathBuf>,
    accel: Accel,
    start: Instant,
    /// QEMU's stdin (the serial console's input), when the run pipes it.
    stdin: Option<Mutex<ChildStdin>>,
}

impl Live {
    /// Waits until a console line containing `needle` has arrived (returning at once when
    /// one already has) and returns it; None when QEMU ended or `timeout` passed first.
    #[must_use]
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<ConsoleLine> {
        self.wait_for_line_from(needle, 0, timeout)
    }

    /// Like [`Live::wait_for_line`], looking only at the lines from index `from` on (see
    /// [`Live::line_count`]): what arrived after the script typed something, say.
    #[must_use]
    pub fn wait_for_line_from(
        &self,
        needle: &str,
        from: usize,
        timeout: Duration,
    ) -> Option<ConsoleLine> {
        let deadline = Instant::now() + timeout;
        let mut state = self.console.lock();
        loop {
            if let Some(l) = state
                .lines
                .iter()
                .skip(from)
                .find(|l| l.text.contains(needle))
            {
                return Some(l.clone());
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = self
                .console
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// How many console lines have arrived so far.
    #[must_use]
    pub fn line_count(&self) -> usize {
        self.console.lock().lines.len()
    }

    /// The console lines from index `from` on, so far.
    #[must_use]
    pub fn lines_from(&self, from: usize) -> Vec<ConsoleLine> {
        self.console
            .lock()
            .lines
            .iter()
            .skip(from)
            .cloned()
            .collect()
    }

    /// Types `text` and a newline on the serial console (QEMU's stdin under
    /// `-serial stdio`): a line for the guest's canonical-mode tty.
    ///
    /// # Errors
    /// When the run does not pipe stdin ([`Boot::run_interactive`],
    /// [`CustomBoot::run_scripted`] with `console_input`), or QEMU is gone.
    pub fn send_line(&self, text: &str) -> std::io::Result<()> {
        let Some(stdin) = &self.stdin else {
            return Err(std::io::Error::other(
                "this run gives QEMU no stdin: use Boot::run_interactive",
            ));
        };
        let mut stdin = stdin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stdin.write_all(text.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()
    }

    /// Whether QEMU's console has closed (QEMU ended).
    #[must_use]
    pub fn ended(&self) -> bool {
        self.console.lock().closed
    }

    /// The QMP socket given to [`Boot::run_scripted`].
    #[must_use]
    pub fn qmp_socket(&self) -> Option<&Path> {
        self.qmp_socket.as_deref()
    }

    /// The accelerator of this boot.
    #[must_use]
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// Time since QEMU was started (comparable with [`ConsoleLine::at`]).
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A path as a QEMU option value: commas doubled.
fn qemu_escape(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn texts(raw: &[&str]) -> Vec<String> {
        let mut state = ConsoleState::default();
        for (i, t) in raw.iter().enumerate() {
            state.push_raw(Duration::from_millis(i as u64), (*t).to_string());
        }
        state.close(Duration::from_secs(9));
        state.lines.into_iter().map(|l| l.text).collect()
    }

    /// The console of a CI run, where an ext4 warning landed inside init's last line.
    #[test]
    fn a_kernel_message_inside_a_userspace_line_is_taken_out() {
        let got = texts(&[
            "[   4.642] vestige-init: acquired: none; incomplete: none; failed: vdb",
            "[   4.643] vesti[    6.858747] EXT4-fs warning (device vda1): I/O error 10)",
            "[    6.858800] Aborting journal on device vda1-8.",
            "ge-init: power off",
            "[    6.884312] reboot: Power down",
        ]);
        assert_eq!(
            got,
            [
                "[   4.642] vestige-init: acquired: none; incomplete: none; failed: vdb",
                "[    6.858747] EXT4-fs warning (device vda1): I/O error 10)",
                "[    6.858800] Aborting journal on device vda1-8.",
                "[   4.643] vestige-init: power off",
                "[    6.884312] reboot: Power down",
            ]
        );
    }

    #[test]
    fn plain_lines_and_look_alike_stamps_are_left_alone() {
        let raw = [
            "[    0.000000] Linux version 6.1.0",
            "[   1.951] vestige-init: ready",
            "a [1.5] bracket, [ 12.34567] five digits, [x.123456] no digits",
        ];
        assert_eq!(texts(&raw), raw);
        // A cut line whose rest never came is kept.
        assert_eq!(
            texts(&["[   4.643] vesti[    6.858747] EXT4-fs warning"]),
            ["[    6.858747] EXT4-fs warning", "[   4.643] vesti"]
        );
    }

    #[test]
    fn command_attaches_nvme_and_virtio_scsi_and_opens_qmp() {
        let d = |path: &str, bus, read_only| Drive {
            path: path.into(),
            bus,
            read_only,
            blkdebug: None,
        };
        let boot = Boot {
            kernel: "/k".into(),
            initrd: "/i".into(),
            cmdline: "console=ttyS0".into(),
            drives: vec![
                d("/d/n.raw", Bus::Nvme, false),
                d("/d/s,1.raw", Bus::VirtioScsi, true),
                d("/d/s2.raw", Bus::VirtioScsi, false),
            ],
            memory_mib: 256,
            cpus: 1,
            timeout: Duration::from_secs(1),
            accel: Accel::Tcg,
        };
        let joined = |c: Command| {
            c.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let plain = joined(boot.command(Accel::Tcg));
        assert!(!plain.contains("-qmp"), "{plain}");
        let args = joined(boot.command_with_qmp(Accel::Tcg, Some(Path::new("/t/q,1.sock"))));
        assert!(
            args.contains("-qmp unix:/t/q,,1.sock,server=on,wait=off"),
            "{args}"
        );
        assert!(
            args.contains(
                "-drive if=none,id=disk0,file=/d/n.raw,format=raw \
                 -device nvme,serial=VESTIGE0,drive=disk0"
            ),
            "{args}"
        );
        // One controller for both SCSI disks.
        assert_eq!(args.matches("virtio-scsi-pci").count(), 1, "{args}");
        assert!(
            args.contains(
                "-device virtio-scsi-pci,id=scsi0 \
                 -drive if=none,id=disk1,file=/d/s,,1.raw,format=raw,readonly=on \
                 -device scsi-hd,drive=disk1,bus=scsi0.0 \
                 -drive if=none,id=disk2,file=/d/s2.raw,format=raw \
                 -device scsi-hd,drive=disk2,bus=scsi0.0"
            ),
            "{args}"
        );
    }

    #[test]
    fn a_script_sees_the_console_close_when_the_guest_cannot_start() {
        if !crate::appliance::missing_tools(&[QEMU]).is_empty() {
            return;
        }
        let t = std::env::temp_dir().join(format!("vestige-vm-test-{}", std::process::id()));
        std::fs::create_dir_all(&t).unwrap();
        let junk = t.join("not-a-kernel");
        std::fs::write(&junk, b"junk").unwrap();
        let boot = Boot {
            kernel: junk.clone(),
            initrd: junk,
            cmdline: "console=ttyS0".into(),
            drives: Vec::new(),
            memory_mib: 128,
            cpus: 1,
            timeout: Duration::from_secs(60),
            accel: Accel::Tcg,
        };
        let socket = t.join("qmp.sock");
        let (o, seen) = boot
            .run_scripted(&t.join("console.log"), Some(&socket), |live| {
                (
                    live.qmp_socket().map(Path::to_path_buf),
                    live.wait_for_line("never printed", Duration::from_secs(50)),
                    live.ended(),
                )
            })
            .unwrap();
        let _ = std::fs::remove_dir_all(&t);
        assert!(
            matches!(o.ending, Ending::Exited(s) if !s.success()),
            "{o:?}"
        );
        assert_eq!(seen.0.as_deref(), Some(socket.as_path()));
        assert!(seen.1.is_none() && seen.2, "{seen:?}");
        // Waiting ended with QEMU, not with the 50 s wait.
        assert!(o.elapsed < Duration::from_secs(30), "{o:?}");
    }
}
