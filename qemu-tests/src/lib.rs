//! Harness for boot tests of the Vestige appliance under QEMU.
//!
//! The tests in `tests/` generate disks with the real tools ([`disk`]: sgdisk, mkfs.ext4),
//! boot the built appliance (`cargo xtask appliance`: kernel + initramfs, found by
//! [`appliance`]) with a scripted kernel command line and the serial console captured
//! ([`vm`]), and read the case back from the evidence disk without mounting it
//! ([`evidence`]: debugfs), so the host never writes to what the appliance wrote.
//!
//! ```no_run
//! use std::time::Duration;
//! use vestige_qemu_tests::{appliance::Appliance, disk, vm};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Appliance::find()?;
//! let dir = std::path::Path::new("/tmp/boot");
//! let target = disk::make_target(dir, "target.raw", 64, &disk::write_sample_files(dir)?)?;
//! let evidence = disk::make_evidence_disk(dir, "evidence.raw", 512)?;
//! let outcome = vm::Boot {
//!     kernel: app.kernel.clone(),
//!     initrd: app.initrd.clone(),
//!     cmdline: "console=ttyS0 panic=-1 vestige.run=acquire vestige.targets=all vestige.case=C-1".into(),
//!     drives: vec![
//!         vm::Drive { path: target, bus: vm::Bus::Virtio, read_only: true, blkdebug: None },
//!         vm::Drive { path: evidence.path.clone(), bus: vm::Bus::Virtio, read_only: false, blkdebug: None },
//!     ],
//!     memory_mib: 1024,
//!     cpus: 2,
//!     timeout: Duration::from_secs(300),
//!     accel: vm::Accel::detect(),
//! }
//! .run(&dir.join("console.log"))?;
//! assert!(outcome.powered_off());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod appliance;
pub mod disk;
pub mod evidence;
pub mod files;
pub mod qmp;
pub mod suspect;
pub mod uefi;
pub mod vm;

mod command;
mod error;

pub use error::HarnessError;
