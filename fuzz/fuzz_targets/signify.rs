//! Every signify parser on the same input: `PublicKey::parse`, `Signature::parse`,
//! `SecretKey::is_encrypted_file` / `SecretKey::parse`, `parse_embedded`.
//!
//! Invariants: what parses re-encodes and re-parses to the same value; when the comment is
//! already in the form writers produce (`clean_comment` leaves it alone) and the file ends in
//! a newline, re-encoding gives back the input byte for byte (the base64 is canonical, so
//! signatures and keys are not malleable); `is_encrypted_file` agrees with what `parse`
//! without a passphrase says; a secret key that parses signs what its public half verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_evidence::signify::{
    clean_comment, embed, parse_embedded, PublicKey, SecretKey, Signature, SignifyError,
    COMMENT_HEADER, FINGERPRINT_PREFIX,
};

/// Most KDF rounds tried with a passphrase: bcrypt_pbkdf costs milliseconds per round.
const MAX_ROUNDS_TRIED: u32 = 2;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    // The comment as the parsers see it (they return Ok only when it is there).
    let comment = text
        .strip_prefix(COMMENT_HEADER)
        .and_then(|rest| rest.split_once('\n'))
        .map(|(c, _)| c);
    let canonical = comment.is_some_and(|c| clean_comment(c) == c);

    if let Ok(pk) = PublicKey::parse(text) {
        let comment = comment.expect("a parsed file has a comment");
        let again = pk.to_file_string(comment);
        assert_eq!(PublicKey::parse(&again).ok(), Some(pk.clone()));
        if canonical && text.ends_with('\n') {
            assert_eq!(again, text, "public key re-encodes differently");
        }
        let fp = pk.fingerprint();
        let hex = fp
            .strip_prefix(FINGERPRINT_PREFIX)
            .expect("fingerprint prefix");
        assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    if let Ok(sig) = Signature::parse(text) {
        let comment = comment.expect("a parsed file has a comment");
        let again = sig.to_file_string(comment);
        assert_eq!(Signature::parse(&again).ok(), Some(sig.clone()));
        if canonical && text.ends_with('\n') {
            assert_eq!(again, text, "signature re-encodes differently");
        }
    }

    let encrypted = SecretKey::is_encrypted_file(text);
    match SecretKey::parse(text, None) {
        Ok(sk) => {
            assert_eq!(encrypted.ok(), Some(false));
            let pk = sk.public_key();
            assert_eq!(pk.keynum, sk.keynum());
            let sig = sk.sign(data);
            pk.verify(data, &sig).expect("own signature verifies");
            let comment = comment.expect("a parsed file has a comment");
            let again = sk.to_file_string(comment, None).expect("plain key encodes");
            let back = SecretKey::parse(&again, None).expect("own key parses");
            assert_eq!(back.public_key(), pk);
        }
        Err(SignifyError::NeedsPassphrase { rounds }) => {
            assert_eq!(encrypted.ok(), Some(true));
            assert!(rounds > 0);
            if rounds <= MAX_ROUNDS_TRIED {
                if let Ok(sk) = SecretKey::parse(text, Some(b"fuzz")) {
                    let sig = sk.sign(b"m");
                    sk.public_key()
                        .verify(b"m", &sig)
                        .expect("own signature verifies");
                }
            }
        }
        Err(_) => {
            // Framing errors are the same for both; past them only parse can fail.
            if encrypted.is_err() {
                assert!(SecretKey::parse(text, Some(b"fuzz")).is_err());
            }
        }
    }

    if let Ok((sig, message)) = parse_embedded(data) {
        let comment_bytes = data
            .strip_prefix(COMMENT_HEADER.as_bytes())
            .and_then(|rest| rest.split(|&b| b == b'\n').next())
            .expect("a parsed file has a comment");
        let comment = String::from_utf8_lossy(comment_bytes);
        let again = embed(&sig, &comment, message);
        let (sig2, message2) = parse_embedded(&again).expect("re-embedded parses");
        assert_eq!(sig2, sig);
        assert_eq!(message2, message);
        if std::str::from_utf8(comment_bytes).is_ok_and(|c| clean_comment(c) == c) {
            assert_eq!(again, data, "embedded signature re-encodes differently");
        }
        // The detached form of the same two lines parses to the same signature.
        let detached = &data[..data.len() - message.len()];
        if let Ok(text) = std::str::from_utf8(detached) {
            assert_eq!(Signature::parse(text).ok(), Some(sig));
        }
    }
});
