//! vestige-image: builds the Vestige appliance from pinned Debian packages and the
//! statically linked Vestige binaries, reproducibly.
//!
//! It builds the direct-boot pair (QEMU `-kernel`/`-initrd`, PXE), then from it the UEFI
//! outputs ([`uefi`]: a UKI assembled by [`pe`], a GPT USB image whose exFAT evidence
//! partition gets a fixed serial from [`exfat`], a hybrid ISO) and the Secure Boot USB image
//! ([`secure_boot`]: Debian's signed shim → grub → kernel):
//!
//! 1. [`lock`] reads `image/packages.lock`: Debian packages pinned by version and SHA-256.
//! 2. [`debian`] fetches them with `apt-get download` into a cache, checks the digest and
//!    unpacks them with `dpkg-deb -x`.
//! 3. [`modules`] picks the drivers the appliance may need and their dependencies from the
//!    kernel's `modules.dep`/`modules.softdep`; depmod indexes the subset.
//! 4. [`elf`] checks that `vestige` and `vestige-init` are static executables.
//! 5. [`cpio`] writes the initramfs as a newc archive with sorted names, fixed mtimes and
//!    owners; [`direct_boot`] compresses it with single-threaded zstd and writes
//!    `vmlinuz`, `initramfs.img` and `build-info.json`.
//!
//! The driver is `cargo xtask appliance` (tools/xtask/src/appliance.rs), which builds the
//! static binaries and calls [`direct_boot::build`]:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let outputs = vestige_image::direct_boot::build(&vestige_image::direct_boot::Config {
//!     lock_path: "image/packages.lock".into(),
//!     cache_dir: "target/appliance-cache".into(),
//!     staging_dir: "target/appliance-cache/staging".into(),
//!     out_dir: "target/appliance".into(),
//!     vestige: "target/static/x86_64-unknown-linux-gnu/release/vestige".into(),
//!     init: "target/static/x86_64-unknown-linux-gnu/release/vestige-init".into(),
//!     source_date_epoch: 0,
//!     vestige_commit: None,
//!     tree_modified: false,
//! })?;
//! println!("{}", outputs.initramfs.display());
//! # Ok(())
//! # }
//! ```
//!
//! The library never prints; errors name the file and, for formats, the offset or line.

#![forbid(unsafe_code)]

pub mod cpio;
pub mod debian;
pub mod direct_boot;
pub mod elf;
pub mod exfat;
pub mod lock;
pub mod modules;
pub mod pe;
pub mod secure_boot;
pub mod uefi;
