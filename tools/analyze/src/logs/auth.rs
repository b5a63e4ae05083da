//! What an authentication message says: sshd logins and failures, sudo, su, account
//! changes (useradd, usermod, userdel, groupadd, passwd, chpasswd), logind sessions, cron
//! sessions, systemd service starts. The same parser reads syslog lines and journal
//! entries (program = `SYSLOG_IDENTIFIER`), so both give the same kinds.

use crate::text::display_safe;

/// An authentication event read from one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    /// The event kind (`ssh_login`, `ssh_login_failed`, `sudo_command` …).
    pub kind: &'static str,
    /// Named values, display-safe.
    pub fields: Vec<(&'static str, String)>,
}

impl AuthEvent {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            fields: Vec::new(),
        }
    }

    fn with(mut self, key: &'static str, value: &str) -> Self {
        if !value.is_empty() {
            self.fields.push((key, display_safe(value.as_bytes())));
        }
        self
    }

    /// The value of field `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The word after `marker` in `s` (up to a space, `,` or `;`).
fn word_after<'a>(s: &'a str, marker: &str) -> Option<&'a str> {
    let i = s.find(marker)?;
    let rest = s.get(i + marker.len()..)?;
    let end = rest.find([' ', ',', ';']).unwrap_or(rest.len());
    rest.get(..end)
}

/// `user from ADDRESS port PORT` tails of sshd messages.
fn from_port(ev: AuthEvent, s: &str) -> AuthEvent {
    let ev = match word_after(s, " from ") {
        Some(a) => ev.with("address", a),
        None => ev,
    };
    match word_after(s, " port ") {
        Some(p) => ev.with("port", p),
        None => ev,
    }
}

/// Classifies one message of `program`; `None` when it is none of the kinds above.
#[must_use]
pub fn classify(program: &[u8], message: &[u8]) -> Option<AuthEvent> {
    let program = String::from_utf8_lossy(program);
    let msg = String::from_utf8_lossy(message);
    let msg = msg.trim();
    match program.as_ref() {
        // OpenSSH 9.8 logs from sshd-session.
        "sshd" | "sshd-session" => sshd(msg),
        "sudo" => sudo(msg),
        "su" => su(msg),
        "useradd" | "groupadd" | "usermod" | "userdel" | "groupdel" | "groupmod" | "gpasswd"
        | "passwd" | "chpasswd" | "newusers" | "adduser" => accounts(msg),
        "systemd-logind" => logind(msg),
        "CRON" | "cron" | "crond" => cron(msg),
        "systemd" => systemd(msg),
        "login" => login(msg),
        _ => None,
    }
}

fn sshd(msg: &str) -> Option<AuthEvent> {
    if let Some(rest) = msg.strip_prefix("Accepted ") {
        // Accepted publickey for alice from 1.2.3.4 port 5 ssh2: ED25519 SHA256:xyz
        let method = rest.split(' ').next().unwrap_or("");
        let ev = AuthEvent::new("ssh_login")
            .with("method", method)
            .with("user", word_after(rest, " for ").unwrap_or(""));
        let mut ev = from_port(ev, rest);
        if let Some((_, key)) = rest.split_once(": ") {
            let mut parts = key.split(' ');
            ev = ev.with("key_type", parts.next().unwrap_or(""));
            ev = ev.with("key_fingerprint", parts.next().unwrap_or(""));
        }
        return Some(ev);
    }
    if let Some(rest) = msg.strip_prefix("Failed ") {
        // Failed password for [invalid user ]root from 1.2.3.4 port 5 ssh2
        let method = rest.split(' ').next().unwrap_or("");
        let invalid = rest.contains(" for invalid user ");
        let user = if invalid {
            word_after(rest, " for invalid user ")
        } else {
            word_after(rest, " for ")
        };
        let ev = AuthEvent::new("ssh_login_failed")
            .with("method", method)
            .with("user", user.unwrap_or(""))
            .with(
                "reason",
                if invalid {
                    "invalid user"
                } else {
                    "bad credentials"
                },
            );
        return Some(from_port(ev, rest));
    }
    if let Some(rest) = msg.strip_prefix("Invalid user ") {
        let user = rest.split(' ').next().unwrap_or("");
        let ev = AuthEvent::new("ssh_login_failed")
            .with("user", user)
            .with("reason", "invalid user");
        return Some(from_port(ev, rest));
    }
    if msg.contains("authentication failure;") {
        // pam_unix(sshd:auth): authentication failure; ... rhost=1.2.3.4  user=root
        return Some(
            AuthEvent::new("ssh_login_failed")
                .with("reason", "pam authentication failure")
                .with("address", word_after(msg, "rhost=").unwrap_or(""))
                .with("user", word_after(msg, " user=").unwrap_or("")),
        );
    }
    if let Some(rest) = msg.strip_prefix("Disconnected from user ") {
        // Disconnected from user alice 1.2.3.4 port 22
        let mut parts = rest.split(' ');
        let user = parts.next().unwrap_or("");
        let address = parts.next().unwrap_or("");
        return Some(
            AuthEvent::new("session_closed")
                .with("user", user)
                .with("address", address)
                .with("port", word_after(rest, " port ").unwrap_or("")),
        );
    }
    None
}

fn sudo(msg: &str) -> Option<AuthEvent> {
    // alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id
    let (user, rest) = msg.split_once(" : ")?;
    let failed = rest.contains("incorrect password attempt")
        || rest.contains("NOT in sudoers")
        || rest.contains("command not allowed");
    let mut ev = if failed {
        AuthEvent::new("sudo_failed")
    } else if rest.contains("COMMAND=") {
        AuthEvent::new("sudo_command")
    } else {
        return None;
    };
    ev = ev.with("user", user.trim());
    for part in rest.split(" ; ") {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("TTY=") {
            ev = ev.with("tty", v);
        } else if let Some(v) = part.strip_prefix("PWD=") {
            ev = ev.with("pwd", v);
        } else if let Some(v) = part.strip_prefix("USER=") {
            ev = ev.with("target_user", v);
        } else if let Some(v) = part.strip_prefix("COMMAND=") {
            ev = ev.with("command", v);
        }
    }
    Some(ev)
}

fn su(msg: &str) -> Option<AuthEvent> {
    // (to root) alice on pts/0 | FAILED SU (to root) alice on pts/0 | + pts/0 alice:root
    let (kind, rest) = if let Some(r) = msg.strip_prefix("FAILED SU (to ") {
        ("su_failed", r)
    } else if let Some(r) = msg.strip_prefix("(to ") {
        ("su", r)
    } else if let Some(r) = msg.strip_prefix("Successful su for ") {
        // BusyBox/shadow: Successful su for root by alice
        let (target, user) = r.split_once(" by ")?;
        return Some(
            AuthEvent::new("su")
                .with("target_user", target)
                .with("user", user),
        );
    } else {
        return None;
    };
    let (target, rest) = rest.split_once(") ")?;
    let mut parts = rest.split(" on ");
    Some(
        AuthEvent::new(kind)
            .with("target_user", target)
            .with("user", parts.next().unwrap_or(""))
            .with("tty", parts.next().unwrap_or("")),
    )
}

/// `'name'` or `name` after `marker`.
fn quoted_after<'a>(s: &'a str, marker: &str) -> Option<&'a str> {
    let i = s.find(marker)?;
    let rest = s.get(i + marker.len()..)?;
    if let Some(r) = rest.strip_prefix('\'') {
        return r.split('\'').next();
    }
    word_after(s, marker)
}

fn accounts(msg: &str) -> Option<AuthEvent> {
    if msg.starts_with("new user: ") {
        // new user: name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0
        return Some(
            AuthEvent::new("user_added")
                .with("user", word_after(msg, "name=").unwrap_or(""))
                .with("uid", word_after(msg, "UID=").unwrap_or(""))
                .with("gid", word_after(msg, "GID=").unwrap_or(""))
                .with("home", word_after(msg, "home=").unwrap_or(""))
                .with("shell", word_after(msg, "shell=").unwrap_or("")),
        );
    }
    if msg.starts_with("new group: ") || msg.starts_with("group added to ") {
        return Some(
            AuthEvent::new("group_added")
                .with("group", word_after(msg, "name=").unwrap_or(""))
                .with("gid", word_after(msg, "GID=").unwrap_or("")),
        );
    }
    if msg.starts_with("delete user ") {
        return Some(
            AuthEvent::new("user_deleted").with("user", quoted_after(msg, "delete user ")?),
        );
    }
    if msg.contains("password changed for ") {
        // pam_unix(passwd:chauthtok): password changed for bob
        return Some(AuthEvent::new("password_changed").with(
            "user",
            word_after(msg, "password changed for ").unwrap_or(""),
        ));
    }
    if let Some(r) = msg.strip_prefix("add '") {
        // add 'bob' to group 'sudo'
        let user = r.split('\'').next().unwrap_or("");
        return Some(
            AuthEvent::new("user_modified")
                .with("user", user)
                .with("change", "added to group")
                .with("group", quoted_after(msg, " to group ").unwrap_or("")),
        );
    }
    if msg.starts_with("change user ")
        || msg.starts_with("lock user ")
        || msg.starts_with("unlock user ")
    {
        let marker = msg.split(' ').take(2).collect::<Vec<_>>().join(" ") + " ";
        return Some(
            AuthEvent::new("user_modified")
                .with("user", quoted_after(msg, &marker).unwrap_or(""))
                .with("change", msg),
        );
    }
    None
}

fn logind(msg: &str) -> Option<AuthEvent> {
    // New session 3 of user alice.
    let rest = msg.strip_prefix("New session ")?;
    let (session, user) = rest.split_once(" of user ")?;
    Some(
        AuthEvent::new("session_opened")
            .with("session", session)
            .with("user", user.trim_end_matches('.')),
    )
}

fn cron(msg: &str) -> Option<AuthEvent> {
    if msg.contains("(cron:session): session opened for user ") {
        let user = word_after(msg, "session opened for user ").unwrap_or("");
        let user = user.split('(').next().unwrap_or(user);
        return Some(AuthEvent::new("cron_session").with("user", user));
    }
    // (root) CMD (command)
    if let Some(r) = msg.strip_prefix('(') {
        let (user, rest) = r.split_once(") CMD (")?;
        let cmd = rest.strip_suffix(')').unwrap_or(rest);
        return Some(
            AuthEvent::new("cron_command")
                .with("user", user)
                .with("command", cmd),
        );
    }
    None
}

fn systemd(msg: &str) -> Option<AuthEvent> {
    // "Started Foo." (older) or "Started foo.service - Foo." (v249+). "Starting …" is
    // the same service a moment before: not kept, to give one event per start.
    let rest = msg.strip_prefix("Started ")?;
    let unit = rest
        .split(" - ")
        .next()
        .unwrap_or(rest)
        .trim_end_matches('.');
    Some(AuthEvent::new("service_started").with("unit", unit))
}

fn login(msg: &str) -> Option<AuthEvent> {
    if let Some(r) = msg.strip_prefix("FAILED LOGIN ") {
        return Some(
            AuthEvent::new("login_failed")
                .with(
                    "tty",
                    word_after(r, " ON ")
                        .or_else(|| word_after(r, "on '"))
                        .unwrap_or(""),
                )
                .with(
                    "user",
                    word_after(r, " FOR ").unwrap_or("").trim_matches('\''),
                ),
        );
    }
    if msg.starts_with("ROOT LOGIN ") {
        return Some(
            AuthEvent::new("console_login")
                .with("user", "root")
                .with("tty", word_after(msg, " ON ").unwrap_or("")),
        );
    }
    None
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]
mod tests {
    use super::*;

    fn c(p: &str, m: &str) -> AuthEvent {
        classify(p.as_bytes(), m.as_bytes()).unwrap_or_else(|| panic!("{p}: {m}"))
    }

    #[test]
    fn sshd_lines() {
        let e = c(
            "sshd",
            "Accepted publickey for alice from 192.0.2.7 port 41234 ssh2: ED25519 SHA256:AbCdEf",
        );
        assert_eq!(e.kind, "ssh_login");
        assert_eq!(e.get("user"), Some("alice"));
        assert_eq!(e.get("address"), Some("192.0.2.7"));
        assert_eq!(e.get("port"), Some("41234"));
        assert_eq!(e.get("method"), Some("publickey"));
        assert_eq!(e.get("key_fingerprint"), Some("SHA256:AbCdEf"));
        let e = c(
            "sshd",
            "Failed password for invalid user admin from 2001:db8::1 port 22 ssh2",
        );
        assert_eq!(e.kind, "ssh_login_failed");
        assert_eq!(e.get("user"), Some("admin"));
        assert_eq!(e.get("address"), Some("2001:db8::1"));
        let e = c("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root");
        assert_eq!(e.get("address"), Some("203.0.113.9"));
        assert_eq!(e.get("user"), Some("root"));
        assert_eq!(
            c("sshd", "Invalid user x from 1.2.3.4 port 5").get("reason"),
            Some("invalid user")
        );
        assert_eq!(
            c(
                "sshd-session",
                "Disconnected from user alice 1.2.3.4 port 22"
            )
            .kind,
            "session_closed"
        );
        assert!(classify(b"sshd", b"Connection closed by 1.2.3.4 port 5 [preauth]").is_none());
    }

    #[test]
    fn other_programs() {
        let e = c("sudo", "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/journalctl --vacuum-time=1s");
        assert_eq!(e.kind, "sudo_command");
        assert_eq!(e.get("user"), Some("alice"));
        assert_eq!(e.get("target_user"), Some("root"));
        assert_eq!(
            e.get("command"),
            Some("/usr/bin/journalctl --vacuum-time=1s")
        );
        assert_eq!(c("sudo", "alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh").kind, "sudo_failed");
        let e = c("useradd", "new user: name=backup2, UID=0, GID=0, home=/var/tmp/.b, shell=/bin/bash, from=/dev/pts/0");
        assert_eq!((e.kind, e.get("uid")), ("user_added", Some("0")));
        assert_eq!(
            c("groupadd", "new group: name=bob, GID=1001").get("group"),
            Some("bob")
        );
        assert_eq!(
            c("usermod", "add 'bob' to group 'sudo'").get("group"),
            Some("sudo")
        );
        assert_eq!(c("userdel", "delete user 'bob'").get("user"), Some("bob"));
        assert_eq!(
            c(
                "passwd",
                "pam_unix(passwd:chauthtok): password changed for bob"
            )
            .kind,
            "password_changed"
        );
        assert_eq!(
            c("su", "(to root) alice on pts/1").get("target_user"),
            Some("root")
        );
        assert_eq!(
            c("su", "FAILED SU (to root) alice on pts/1").kind,
            "su_failed"
        );
        assert_eq!(
            c("systemd-logind", "New session 3 of user alice.").get("user"),
            Some("alice")
        );
        assert_eq!(
            c(
                "CRON",
                "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"
            )
            .get("user"),
            Some("root")
        );
        assert_eq!(
            c("CRON", "(root) CMD (/tmp/.x/update.sh >/dev/null 2>&1)").get("command"),
            Some("/tmp/.x/update.sh >/dev/null 2>&1")
        );
        assert_eq!(
            c(
                "systemd",
                "Started ssh.service - OpenBSD Secure Shell server."
            )
            .get("unit"),
            Some("ssh.service")
        );
        assert!(classify(b"systemd", b"Starting ssh.service").is_none());
        // Hostile bytes stay display-safe.
        let e = c(
            "sudo",
            "ev\u{1b}[31mil : TTY=x ; PWD=/ ; USER=root ; COMMAND=/bin/<script>",
        );
        assert!(e
            .fields
            .iter()
            .all(|(_, v)| v.bytes().all(|b| (0x20..0x7f).contains(&b))));
        assert!(classify(b"sudo", b"\xff\xfe : \xff").is_none());
    }
}
