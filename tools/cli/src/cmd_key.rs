//! `vestige key generate`.

use crate::exit::Exit;
use crate::keys::{passphrase, write_new_mode};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use vestige_evidence::signify::SecretKey;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate an Ed25519 key pair in signify's formats: PREFIX.pub and PREFIX.sec (0600).
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output prefix: writes PREFIX.pub and PREFIX.sec (neither may exist).
    pub prefix: PathBuf,
    /// Encrypt the secret key with a passphrase (bcrypt_pbkdf, as signify does).
    #[arg(long)]
    pub passphrase: bool,
    /// Read the passphrase from this file instead of the terminal (implies --passphrase).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Comment for the key files.
    #[arg(long, default_value = "vestige key")]
    pub comment: String,
}

pub fn run(cmd: KeyCommand) -> Result<Exit> {
    match cmd {
        KeyCommand::Generate(a) => generate(&a),
    }
}

fn generate(a: &GenerateArgs) -> Result<Exit> {
    let key = SecretKey::generate()?;
    let pass = if a.passphrase || a.passphrase_file.is_some() {
        Some(passphrase(
            a.passphrase_file.as_deref(),
            "passphrase: ",
            true,
        )?)
    } else {
        None
    };
    let pk = key.public_key();
    let mut pub_path = a.prefix.clone().into_os_string();
    pub_path.push(".pub");
    let mut sec_path = a.prefix.clone().into_os_string();
    sec_path.push(".sec");
    let sec_text = key.to_file_string(
        &format!("{} secret key", a.comment),
        pass.as_ref().map(|p| p.as_bytes()),
    )?;
    write_new_mode(sec_path.as_ref(), sec_text.as_bytes(), 0o600)?;
    write_new_mode(
        pub_path.as_ref(),
        pk.to_file_string(&format!("{} public key", a.comment))
            .as_bytes(),
        0o644,
    )?;
    eprintln!("public key: {}", PathBuf::from(&pub_path).display());
    eprintln!(
        "secret key: {} (mode 0600{})",
        PathBuf::from(&sec_path).display(),
        if pass.is_some() {
            ", passphrase-protected"
        } else {
            ", not encrypted"
        }
    );
    println!("keynum {}", pk.keynum);
    println!("fingerprint {}", pk.fingerprint());
    Ok(Exit::Ok)
}
