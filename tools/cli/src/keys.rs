//! Finding, loading and storing signing keys.
//!
//! Public keys of a case live in `<case>/keys/<keynum>.pub`, where `vestige verify` finds
//! them by the key number in the signature. A secret key never goes into the case: evidence
//! media travel, and a secret next to the evidence could re-sign altered evidence. Without
//! `--key`, `acquire` uses a per-case key whose secret stays on the acquiring machine in
//! `$VESTIGE_KEY_DIR` (default `~/.local/state/vestige/keys`), mode 0600.

use anyhow::{bail, Context, Result};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use vestige_evidence::fsutil::read_capped;
use vestige_evidence::signify::{PublicKey, SecretKey};
use vestige_evidence::verify::CASE_KEYS_DIR;
use zeroize::Zeroizing;

/// Reads a passphrase: from `file` when given (first line), else `$VESTIGE_PASSPHRASE`,
/// else asked on the terminal (twice when `confirm`).
pub fn passphrase(file: Option<&Path>, prompt: &str, confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(f) = file {
        let bytes = Zeroizing::new(
            read_capped(f, 4096)
                .with_context(|| format!("reading passphrase file {}", f.display()))?,
        );
        let text = std::str::from_utf8(&bytes).context("passphrase file is not UTF-8")?;
        return Ok(Zeroizing::new(
            text.lines().next().unwrap_or("").to_string(),
        ));
    }
    if let Ok(p) = std::env::var("VESTIGE_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(prompt).context("reading the passphrase from the terminal")?,
    );
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("again: ")?);
        if *first != *again {
            bail!("the passphrases differ");
        }
    }
    Ok(first)
}

/// Loads a signify secret key, asking for its passphrase when it is encrypted.
pub fn load_secret(path: &Path, passphrase_file: Option<&Path>) -> Result<SecretKey> {
    let bytes = Zeroizing::new(
        read_capped(path, 4096)
            .with_context(|| format!("reading secret key {}", path.display()))?,
    );
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("{} is not a signify secret key (not UTF-8)", path.display()))?;
    let encrypted = SecretKey::is_encrypted_file(text)
        .with_context(|| format!("reading secret key {}", path.display()))?;
    let key = if encrypted {
        let p = passphrase(
            passphrase_file,
            &format!("passphrase for {}: ", path.display()),
            false,
        )?;
        SecretKey::parse(text, Some(p.as_bytes()))
    } else {
        SecretKey::parse(text, None)
    };
    key.with_context(|| format!("reading secret key {}", path.display()))
}

/// Writes a file that must not exist yet, with `mode`.
pub fn write_new_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Saves `pk` as `<case>/keys/<keynum>.pub` unless an identical file is there; returns the
/// path relative to the case directory.
pub fn publish_in_case(case_dir: &Path, pk: &PublicKey) -> Result<String> {
    let dir = case_dir.join(CASE_KEYS_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = format!("{}.pub", pk.keynum);
    let path = dir.join(&name);
    let text = pk.to_file_string(&format!("vestige public key {}", pk.fingerprint()));
    match read_capped(&path, 4096) {
        Ok(existing) => {
            let same = std::str::from_utf8(&existing)
                .ok()
                .and_then(|t| PublicKey::parse(t).ok())
                .as_ref()
                == Some(pk);
            if !same {
                bail!("{} exists and holds a different key", path.display());
            }
        }
        Err(_) => write_new_mode(&path, text.as_bytes(), 0o644)?,
    }
    Ok(format!("{CASE_KEYS_DIR}/{name}"))
}

/// The directory for per-case secret keys.
fn key_store() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("VESTIGE_KEY_DIR") {
        return Ok(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .context("neither VESTIGE_KEY_DIR, XDG_STATE_HOME nor HOME is set: pass --key")?;
    Ok(base.join("vestige/keys"))
}

/// The per-case key: an existing one whose public half is in the case and whose secret is
/// in the key store, or a new one. Returns the key and whether it was just made.
pub fn per_case_key(case_dir: &Path, case_id: &str) -> Result<(SecretKey, bool)> {
    let store = key_store()?;
    if let Ok(entries) = std::fs::read_dir(case_dir.join(CASE_KEYS_DIR)) {
        let mut pubs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        pubs.sort();
        for p in pubs {
            let Some(stem) = p.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let sec = store.join(format!("{stem}.sec"));
            if sec.exists() {
                let key = load_secret(&sec, None)?;
                if key.keynum().to_string() == stem {
                    return Ok((key, false));
                }
            }
        }
    }
    let key = SecretKey::generate().context("generating a per-case key")?;
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let sec = store.join(format!("{}.sec", key.keynum()));
    let text = key.to_file_string(
        &format!("vestige per-case secret key for case {case_id}"),
        None,
    )?;
    write_new_mode(&sec, text.as_bytes(), 0o600)?;
    Ok((key, true))
}
