//! SSH: the server's settings that decide who gets in (`/etc/ssh/sshd_config` and
//! `sshd_config.d/*.conf`), and every `authorized_keys` file of root and of the home
//! directories in passwd.
//!
//! Rule raised here:
//! - `linux.ssh_authorized_key` (Info; Medium for root's keys, keys with a `command=`
//!   option, keys without a comment, or a comment `user@host` naming a host other than
//!   this one): one finding per key, so the examiner sees every way in. An added key is
//!   the quietest persistence there is: it survives password changes. False positives: the
//!   administrators' own keys (their comments usually name their workstations, which makes
//!   them Medium too; the fingerprint lets the examiner match them against known keys).

use super::accounts::User;
use super::{fields, join, lines, list, mtime_event, read, safe, trim, CONFIG_CAP};
use crate::collected::Collected;
use crate::event::Evidence;
use crate::files::Files;
use crate::findings::{Finding, Severity};
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// SSH server settings and authorized keys.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ssh {
    /// `PermitRootLogin`, `PasswordAuthentication`, `Port`, `AuthorizedKeysFile`,
    /// `PermitEmptyPasswords`, `PubkeyAuthentication`, `ListenAddress` as set (unset ones
    /// take OpenSSH's defaults).
    pub sshd_settings: Vec<Setting>,
    /// Every key of every `authorized_keys` file found.
    pub authorized_keys: Vec<AuthorizedKey>,
}

/// One sshd_config keyword.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// Keyword as written.
    pub keyword: String,
    /// Its value.
    pub value: String,
    /// File and line.
    pub source: Evidence,
}

/// One line of an `authorized_keys` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizedKey {
    /// Whose file it is.
    pub user: String,
    /// `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256` …
    pub key_type: String,
    /// The comment (often `user@host` of where the key was made).
    pub comment: String,
    /// Options before the key (`command="…"`, `from="…"`, `no-pty` …).
    pub options: String,
    /// `SHA256:…` as `ssh-keygen -lf` prints it, or why it could not be computed.
    pub fingerprint: String,
    /// File and line.
    pub source: Evidence,
}

const KEYWORDS: &[&str] = &[
    "permitrootlogin",
    "passwordauthentication",
    "port",
    "authorizedkeysfile",
    "permitemptypasswords",
    "pubkeyauthentication",
    "listenaddress",
];

pub(crate) fn collect(
    files: &Files<'_>,
    users: &[User],
    hostname: Option<&str>,
    out: &mut Collected,
) -> Ssh {
    let mut ssh = Ssh::default();
    let mut configs = vec![b"/etc/ssh/sshd_config".to_vec()];
    for e in list(files, "/etc/ssh/sshd_config.d", out) {
        configs.push(join("/etc/ssh/sshd_config.d", &e.name));
    }
    for p in configs {
        let Some(data) = read(files, &p, CONFIG_CAP, out) else {
            continue;
        };
        for l in lines(&data.bytes) {
            let mut f = fields(l.text);
            let Some(key) = f.next() else { continue };
            let lower = String::from_utf8_lossy(key).to_ascii_lowercase();
            if KEYWORDS.contains(&lower.as_str()) && ssh.sshd_settings.len() < 1000 {
                let value: Vec<&[u8]> = f.collect();
                ssh.sshd_settings.push(Setting {
                    keyword: safe(key),
                    value: safe(&value.join(&b' ')),
                    source: data.evidence.at_line(l.no, l.offset),
                });
            }
        }
    }
    // Root first, then every home in passwd, each directory once.
    let mut homes: Vec<(String, Vec<u8>, bool)> = vec![("root".into(), b"/root".to_vec(), true)];
    for u in users {
        if u.home_raw.is_empty() || homes.iter().any(|(_, h, _)| *h == u.home_raw) {
            continue;
        }
        homes.push((u.name.clone(), u.home_raw.clone(), u.uid == "0"));
        if homes.len() > super::MAX_ITEMS {
            break;
        }
    }
    for (user, home, is_root) in homes {
        let home = String::from_utf8_lossy(&home).into_owned();
        for name in ["authorized_keys", "authorized_keys2"] {
            let path = join(&format!("{home}/.ssh"), name.as_bytes());
            let Some(data) = read(files, &path, CONFIG_CAP, out) else {
                continue;
            };
            out.events.extend(mtime_event(
                &data,
                "ssh_key_file_modified",
                "SSH authorized_keys",
            ));
            for l in lines(&data.bytes) {
                let Some(key) = parse_key_line(l.text) else {
                    continue;
                };
                let key = AuthorizedKey {
                    user: user.clone(),
                    source: data.evidence.at_line(l.no, l.offset),
                    ..key
                };
                judge(&key, is_root, hostname, out);
                if ssh.authorized_keys.len() < super::MAX_ITEMS {
                    ssh.authorized_keys.push(key);
                }
            }
        }
    }
    ssh
}

fn judge(key: &AuthorizedKey, is_root: bool, hostname: Option<&str>, out: &mut Collected) {
    let mut why = Vec::new();
    if is_root {
        why.push("it opens the root account".to_string());
    }
    if key.options.contains("command=") {
        why.push("it forces a command (command=)".to_string());
    }
    if key.comment.is_empty() {
        why.push("it has no comment".to_string());
    } else if let Some((_, host)) = key.comment.rsplit_once('@') {
        let other = match hostname {
            Some(h) => !host.eq_ignore_ascii_case(h),
            None => true,
        };
        if other {
            why.push(format!("its comment names another host ({host})"));
        }
    }
    let severity = if why.is_empty() {
        Severity::Info
    } else {
        Severity::Medium
    };
    let because = if why.is_empty() {
        String::new()
    } else {
        format!(" Worth a look: {}.", why.join("; "))
    };
    out.findings.push(Finding::new(
        "linux.ssh_authorized_key",
        severity,
        format!(
            "SSH key {} {} can log in as {}",
            key.key_type, key.comment, key.user
        ),
        format!(
            "{} key {} (comment `{}`{}) in {}'s authorized_keys logs in without a \
             password.{because}",
            key.key_type,
            key.fingerprint,
            key.comment,
            if key.options.is_empty() {
                String::new()
            } else {
                format!(", options `{}`", key.options)
            },
            key.user
        ),
        vec![key.source.clone()],
    ));
}

/// Whether `word` names a public key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`,
/// `sk-ssh-ed25519@openssh.com`, `ssh-rsa-cert-v01@openssh.com` …).
fn is_key_type(word: &[u8]) -> bool {
    word.starts_with(b"ssh-") || word.starts_with(b"ecdsa-") || word.starts_with(b"sk-")
}

/// One `authorized_keys` line (user and source left empty), or `None` for comments and
/// blank lines. Follows sshd(8) "AUTHORIZED_KEYS FILE FORMAT": options, key type,
/// base64 key, comment.
#[must_use]
pub fn parse_key_line(line: &[u8]) -> Option<AuthorizedKey> {
    let t = trim(line);
    if t.is_empty() || t.first() == Some(&b'#') {
        return None;
    }
    let (options, rest) = if fields(t).next().is_some_and(is_key_type) {
        (&b""[..], t)
    } else {
        // Options run to the first unquoted white space.
        let mut quoted = false;
        let mut end = t.len();
        for (i, &b) in t.iter().enumerate() {
            if b == b'"' {
                quoted = !quoted;
            } else if b.is_ascii_whitespace() && !quoted {
                end = i;
                break;
            }
        }
        (t.get(..end)?, trim(t.get(end..)?))
    };
    let mut parts = rest.splitn(3, u8::is_ascii_whitespace);
    let key_type = parts.next().unwrap_or_default();
    let blob = parts.next().unwrap_or_default();
    let comment = trim(parts.next().unwrap_or_default());
    Some(AuthorizedKey {
        user: String::new(),
        key_type: safe(key_type),
        comment: safe(comment),
        options: safe(options),
        fingerprint: fingerprint(blob),
        source: Evidence::default(),
    })
}

/// `SHA256:` + unpadded base64 of the SHA-256 of the decoded key, as `ssh-keygen -lf`.
#[must_use]
pub fn fingerprint(blob_base64: &[u8]) -> String {
    match base64::engine::general_purpose::STANDARD.decode(blob_base64) {
        Ok(blob) if !blob.is_empty() => format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(&blob))
        ),
        Ok(_) => "(no key)".into(),
        Err(e) => format!("(key not valid base64: {e})"),
    }
}
