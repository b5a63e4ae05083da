//! Interoperability of `vestige_evidence::signify` with the stock tools: OpenBSD
//! `signify` (Debian's `signify-openbsd`) and `minisign`.
//!
//! A missing tool makes a test print a note and pass, unless `VESTIGE_REQUIRE_TOOLS=1`
//! (set in CI), where it fails. Passphrase tests drive signify through a pseudo-terminal
//! with python3's `pty` module, because signify reads passphrases from /dev/tty.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest as _;

use vestige_evidence::signify::{
    embed, format_checksum_list, minisign_signature, parse_checksum_list, parse_embedded,
    ChecksumLine, PublicKey, SecretKey, Signature, SignifyError,
};

const SIGNIFY: &str = "signify-openbsd";
const MINISIGN: &str = "minisign";
const PYTHON: &str = "python3";

/// Runs a command on a pseudo-terminal, answering every `passphrase:` prompt (including
/// `confirm passphrase:`) with argv[1]; prints the terminal output and exits with the
/// command's status. Gives up after 60 seconds.
const PTY_DRIVER: &str = r#"
import os, pty, select, signal, sys, time
passphrase = sys.argv[1].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
out = b""
answered = 0
deadline = time.monotonic() + 60
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        os.kill(pid, signal.SIGKILL)
        sys.stderr.write("pty driver: timed out\n")
        break
    ready, _, _ = select.select([fd], [], [], left)
    if not ready:
        continue
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    while out.count(b"passphrase:") > answered:
        os.write(fd, passphrase + b"\n")
        answered += 1
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// The tool's path, or `None` (after a note) when it is missing and not required.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        if std::env::var("VESTIGE_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{name} is not installed and VESTIGE_REQUIRE_TOOLS=1");
        }
        eprintln!("note: {name} is not installed; skipping this stock-tool test");
    }
    found
}

/// Runs `program args` in `dir` with stdin closed.
fn run<I, S>(dir: &Path, program: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_failure(output: &Output, what: &str) {
    assert!(
        !output.status.success(),
        "{what} unexpectedly succeeded:\nstdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// Writes our key pair as `key.sec` (unencrypted) and `key.pub` in `dir`.
fn write_our_keys(dir: &Path) -> SecretKey {
    let secret = SecretKey::generate().unwrap();
    fs::write(
        dir.join("key.sec"),
        secret.to_file_string("vestige secret key", None).unwrap(),
    )
    .unwrap();
    fs::write(
        dir.join("key.pub"),
        secret.public_key().to_file_string("vestige public key"),
    )
    .unwrap();
    secret
}

#[test]
fn signify_signs_with_our_keys() {
    let Some(signify) = tool(SIGNIFY) else { return };
    let dir = tempfile::tempdir().unwrap();
    let secret = write_our_keys(dir.path());
    fs::write(dir.path().join("msg"), b"evidence bytes\n").unwrap();

    let sign = run(
        dir.path(),
        &signify,
        ["-S", "-s", "key.sec", "-m", "msg", "-x", "msg.sig"],
    );
    assert_success(&sign, "signify -S with our secret key");
    let verify = run(
        dir.path(),
        &signify,
        ["-V", "-p", "key.pub", "-m", "msg", "-x", "msg.sig"],
    );
    assert_success(&verify, "signify -V with our public key");

    // signify's signature is what we would have made (Ed25519 is deterministic).
    let sig = Signature::parse(&fs::read_to_string(dir.path().join("msg.sig")).unwrap()).unwrap();
    assert_eq!(sig, secret.sign(b"evidence bytes\n"));
    secret
        .public_key()
        .verify(b"evidence bytes\n", &sig)
        .unwrap();
}

#[test]
fn signify_verifies_our_signatures() {
    let Some(signify) = tool(SIGNIFY) else { return };
    let dir = tempfile::tempdir().unwrap();
    let secret = write_our_keys(dir.path());
    let message = b"\x00binary\xffmessage";
    fs::write(dir.path().join("msg"), message).unwrap();
    fs::write(
        dir.path().join("msg.sig"),
        secret.sign(message).to_file_string("verify with key.pub"),
    )
    .unwrap();

    let args = ["-V", "-p", "key.pub", "-m", "msg", "-x", "msg.sig"];
    assert_success(
        &run(dir.path(), &signify, args),
        "signify -V of our signature",
    );

    fs::write(dir.path().join("msg"), b"\x00binary\xffmessagf").unwrap();
    assert_failure(
        &run(dir.path(), &signify, args),
        "signify -V of a tampered message",
    );

    // A signature by another key fails on the keynum.
    let other = SecretKey::generate().unwrap();
    fs::write(
        dir.path().join("msg.sig"),
        other.sign(message).to_file_string("verify with other.pub"),
    )
    .unwrap();
    fs::write(dir.path().join("msg"), message).unwrap();
    assert_failure(
        &run(dir.path(), &signify, args),
        "signify -V with the wrong key",
    );
}

#[test]
fn signify_checks_our_embedded_checksum_list() {
    let Some(signify) = tool(SIGNIFY) else { return };
    let dir = tempfile::tempdir().unwrap();
    let secret = write_our_keys(dir.path());

    let files: [(&str, &[u8]); 3] = [
        ("image.vzst", b"compressed image bytes"),
        ("manifest.json", b"{\"case\":42}\n"),
        ("name with spaces (1.log", b""),
    ];
    let mut lines = Vec::new();
    for (name, data) in files {
        fs::write(dir.path().join(name), data).unwrap();
        let digest: [u8; 32] = sha2::Sha256::digest(data).into();
        lines.push(ChecksumLine::sha256(name, &digest).unwrap());
    }
    let list = format_checksum_list(&lines);
    assert_eq!(parse_checksum_list(&list).unwrap(), lines);
    let sig = secret.sign(list.as_bytes());
    fs::write(
        dir.path().join("SHA256.sig"),
        embed(&sig, "verify with key.pub", list.as_bytes()),
    )
    .unwrap();

    let check = ["-C", "-p", "key.pub", "-x", "SHA256.sig"];
    let output = run(dir.path(), &signify, check);
    assert_success(&output, "signify -C of our embedded checksum list");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for (name, _) in files {
        assert!(stdout.contains(&format!("{name}: OK")), "{stdout}");
    }

    fs::write(dir.path().join("manifest.json"), b"{\"case\":43}\n").unwrap();
    let output = run(dir.path(), &signify, check);
    assert_failure(&output, "signify -C with a tampered file");
    assert!(String::from_utf8_lossy(&output.stderr).contains("manifest.json: FAIL"));

    // A checksum list changed after signing fails on the signature.
    fs::write(dir.path().join("manifest.json"), b"{\"case\":42}\n").unwrap();
    assert_success(
        &run(dir.path(), &signify, check),
        "signify -C after restoring",
    );
    let forged_list = list.replace("image.vzst", "image.vzsu");
    fs::write(
        dir.path().join("SHA256.sig"),
        embed(&sig, "verify with key.pub", forged_list.as_bytes()),
    )
    .unwrap();
    assert_failure(
        &run(dir.path(), &signify, check),
        "signify -C of a forged list",
    );

    // And signify's own embedded signature (-S -e) is read back by us.
    fs::write(dir.path().join("list"), &list).unwrap();
    let sign = run(
        dir.path(),
        &signify,
        ["-S", "-e", "-s", "key.sec", "-m", "list", "-x", "list.sig"],
    );
    assert_success(&sign, "signify -S -e");
    let bytes = fs::read(dir.path().join("list.sig")).unwrap();
    let (their_sig, message) = parse_embedded(&bytes).unwrap();
    assert_eq!(message, list.as_bytes());
    secret.public_key().verify(message, &their_sig).unwrap();
}

#[test]
fn we_read_keys_and_signatures_made_by_signify() {
    let Some(signify) = tool(SIGNIFY) else { return };
    let dir = tempfile::tempdir().unwrap();
    let generate = run(
        dir.path(),
        &signify,
        [
            "-G",
            "-n",
            "-c",
            "stock",
            "-p",
            "stock.pub",
            "-s",
            "stock.sec",
        ],
    );
    assert_success(&generate, "signify -G -n");
    let sec_text = fs::read_to_string(dir.path().join("stock.sec")).unwrap();
    let pub_text = fs::read_to_string(dir.path().join("stock.pub")).unwrap();
    assert!(!SecretKey::is_encrypted_file(&sec_text).unwrap());
    let secret = SecretKey::parse(&sec_text, None).unwrap();
    let public = PublicKey::parse(&pub_text).unwrap();
    assert_eq!(secret.public_key(), public);

    fs::write(dir.path().join("msg"), b"signed by stock signify").unwrap();
    let sign = run(
        dir.path(),
        &signify,
        ["-S", "-s", "stock.sec", "-m", "msg", "-x", "msg.sig"],
    );
    assert_success(&sign, "signify -S");
    let sig = Signature::parse(&fs::read_to_string(dir.path().join("msg.sig")).unwrap()).unwrap();
    public.verify(b"signed by stock signify", &sig).unwrap();
    assert!(matches!(
        public.verify(b"signed by stock signifY", &sig),
        Err(SignifyError::BadSignature { .. })
    ));

    // Our signature with their parsed key, checked by signify with their .pub file.
    fs::write(
        dir.path().join("ours.sig"),
        secret
            .sign(b"signed by stock signify")
            .to_file_string("verify with stock.pub"),
    )
    .unwrap();
    let verify = run(
        dir.path(),
        &signify,
        ["-V", "-p", "stock.pub", "-m", "msg", "-x", "ours.sig"],
    );
    assert_success(&verify, "signify -V of our signature with signify's key");
}

#[test]
fn signify_key_verifies_with_stock_minisign() {
    let Some(minisign) = tool(MINISIGN) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let secret = write_our_keys(dir.path());
    let message = b"evidence for minisign\n";
    fs::write(dir.path().join("msg"), message).unwrap();
    let minisig = minisign_signature(
        &secret,
        message,
        "signature from vestige",
        "case 42 item 1 timestamp:2024-01-01T00:00:00Z",
    );
    fs::write(dir.path().join("msg.minisig"), &minisig).unwrap();

    let args = ["-V", "-p", "key.pub", "-m", "msg", "-x", "msg.minisig"];
    let output = run(dir.path(), &minisign, args);
    assert_success(&output, "minisign -V of our signature");
    assert!(String::from_utf8_lossy(&output.stdout).contains("case 42 item 1"));

    // The trusted comment is covered by the global signature.
    let forged = minisig.replace("case 42 item 1", "case 43 item 1");
    fs::write(dir.path().join("msg.minisig"), forged).unwrap();
    assert_failure(
        &run(dir.path(), &minisign, args),
        "minisign -V of a forged trusted comment",
    );

    fs::write(dir.path().join("msg.minisig"), &minisig).unwrap();
    fs::write(dir.path().join("msg"), b"evidence for minisign!\n").unwrap();
    assert_failure(
        &run(dir.path(), &minisign, args),
        "minisign -V of a tampered message",
    );
}

/// Runs `signify args` in `dir` on a pseudo-terminal answering prompts with `passphrase`.
fn run_with_passphrase(
    dir: &Path,
    python: &Path,
    passphrase: &str,
    signify: &Path,
    args: &[&str],
) -> Output {
    let mut command = Command::new(python);
    command
        .arg("-c")
        .arg(PTY_DRIVER)
        .arg(passphrase)
        .arg(signify)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    command.output().unwrap()
}

#[test]
fn signify_encrypted_keys_through_a_pty() {
    let Some(signify) = tool(SIGNIFY) else { return };
    let Some(python) = tool(PYTHON) else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // signify -G with a passphrase; we decrypt it.
    let generate = run_with_passphrase(
        d,
        &python,
        "stock pass",
        &signify,
        &["-G", "-c", "enc", "-p", "enc.pub", "-s", "enc.sec"],
    );
    assert_success(&generate, "signify -G with a passphrase");
    let sec_text = fs::read_to_string(d.join("enc.sec")).unwrap();
    assert!(SecretKey::is_encrypted_file(&sec_text).unwrap());
    let public = PublicKey::parse(&fs::read_to_string(d.join("enc.pub")).unwrap()).unwrap();
    let secret = SecretKey::parse(&sec_text, Some(b"stock pass")).unwrap();
    assert_eq!(secret.public_key(), public);
    assert!(matches!(
        SecretKey::parse(&sec_text, Some(b"stock pasS")),
        Err(SignifyError::WrongPassphrase)
    ));
    assert!(matches!(
        SecretKey::parse(&sec_text, None),
        Err(SignifyError::NeedsPassphrase { rounds: 42 })
    ));

    // Our encrypted key; signify -S decrypts it with the passphrase.
    let ours = SecretKey::generate().unwrap();
    fs::write(
        d.join("ours.sec"),
        ours.to_file_string("vestige secret key", Some(b"our pass"))
            .unwrap(),
    )
    .unwrap();
    fs::write(
        d.join("ours.pub"),
        ours.public_key().to_file_string("vestige public key"),
    )
    .unwrap();
    fs::write(d.join("msg"), b"signed through a pty").unwrap();
    let sign = run_with_passphrase(
        d,
        &python,
        "our pass",
        &signify,
        &["-S", "-s", "ours.sec", "-m", "msg", "-x", "msg.sig"],
    );
    assert_success(&sign, "signify -S with our encrypted key");
    let sig = Signature::parse(&fs::read_to_string(d.join("msg.sig")).unwrap()).unwrap();
    ours.public_key()
        .verify(b"signed through a pty", &sig)
        .unwrap();
    assert_success(
        &run(
            d,
            &signify,
            ["-V", "-p", "ours.pub", "-m", "msg", "-x", "msg.sig"],
        ),
        "signify -V after signing with our encrypted key",
    );

    // The wrong passphrase makes signify fail the same checksum we check.
    fs::remove_file(d.join("msg.sig")).unwrap();
    let wrong = run_with_passphrase(
        d,
        &python,
        "not our pass",
        &signify,
        &["-S", "-s", "ours.sec", "-m", "msg", "-x", "msg.sig"],
    );
    assert_failure(&wrong, "signify -S with the wrong passphrase");
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("incorrect passphrase"));
    assert!(!d.join("msg.sig").exists());
}
