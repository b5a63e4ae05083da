//! Unit tests of the parent module.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

/// A fixed key, so failures reproduce.
fn fixed_key() -> SecretKey {
    let seed = [7u8; 32];
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let mut public = [0u8; 32];
    public.copy_from_slice(pair.public_key().as_ref());
    SecretKey {
        keynum: KeyNum(*b"\x01\x23\x45\x67\x89\xab\xcd\xef"),
        seed: Zeroizing::new(seed),
        public,
        pair,
    }
}

/// A signify file around an arbitrary blob.
fn file_with_blob(blob: &[u8]) -> String {
    format!("{COMMENT_HEADER}test\n{}\n", BASE64.encode(blob))
}

fn decode_blob(text: &str) -> Vec<u8> {
    BASE64.decode(text.lines().nth(1).unwrap()).unwrap()
}

#[test]
fn keynum_displays_as_lowercase_hex() {
    assert_eq!(fixed_key().keynum().to_string(), "0123456789abcdef");
}

#[test]
fn public_key_round_trip_and_fingerprint() {
    let public = fixed_key().public_key();
    let text = public.to_file_string("vestige public key");
    assert!(text.starts_with("untrusted comment: vestige public key\n"));
    assert_eq!(text.lines().nth(1).unwrap().len(), 56);
    assert_eq!(PublicKey::parse(&text).unwrap(), public);
    // The final newline is optional, nothing else may follow.
    assert_eq!(PublicKey::parse(text.trim_end()).unwrap(), public);
    let fingerprint = public.fingerprint();
    assert_eq!(
        fingerprint,
        format!("SHA256:{}", hex::encode(Sha256::digest(public.key)))
    );
    assert_eq!(fingerprint.len(), FINGERPRINT_PREFIX.len() + 64);
}

#[test]
fn unencrypted_secret_key_round_trip() {
    let key = SecretKey::generate().unwrap();
    let text = key.to_file_string("vestige secret key", None).unwrap();
    assert!(!SecretKey::is_encrypted_file(&text).unwrap());
    let blob = decode_blob(&text);
    assert_eq!(&blob[2..4], b"BK");
    assert_eq!(&blob[4..8], &[0, 0, 0, 0]);
    let parsed = SecretKey::parse(&text, None).unwrap();
    assert_eq!(parsed.keynum(), key.keynum());
    assert_eq!(parsed.public_key(), key.public_key());
    // Ed25519 is deterministic: same key, same signature.
    assert_eq!(parsed.sign(b"m"), key.sign(b"m"));
    // A passphrase for an unencrypted key is ignored, as by signify.
    assert!(SecretKey::parse(&text, Some(b"ignored")).is_ok());
}

#[test]
fn encrypted_secret_key_round_trip_and_wrong_passphrase() {
    let key = fixed_key();
    let text = key.to_file_string("enc", Some(b"correct horse")).unwrap();
    assert!(SecretKey::is_encrypted_file(&text).unwrap());
    let blob = decode_blob(&text);
    assert_eq!(&blob[4..8], &SIGNIFY_KDF_ROUNDS.to_be_bytes());
    let parsed = SecretKey::parse(&text, Some(b"correct horse")).unwrap();
    assert_eq!(parsed.public_key(), key.public_key());
    assert_eq!(parsed.sign(b"m"), key.sign(b"m"));

    assert!(matches!(
        SecretKey::parse(&text, Some(b"wrong horse")),
        Err(SignifyError::WrongPassphrase)
    ));
    assert!(matches!(
        SecretKey::parse(&text, None),
        Err(SignifyError::NeedsPassphrase { rounds: 42 })
    ));
    assert!(matches!(
        SecretKey::parse(&text, Some(b"")),
        Err(SignifyError::PassphraseRejected { .. })
    ));
}

#[test]
fn salt_is_fresh_each_time() {
    let key = fixed_key();
    let a = decode_blob(&key.to_file_string_with_rounds("a", Some(b"p"), 1).unwrap());
    let b = decode_blob(&key.to_file_string_with_rounds("a", Some(b"p"), 1).unwrap());
    assert_ne!(a[8..24], b[8..24]);
    assert_ne!(a[40..], b[40..]);
}

#[test]
fn unusable_passphrases_are_refused_when_writing() {
    let key = fixed_key();
    let long = vec![b'a'; PASSPHRASE_MAX_BYTES + 1];
    for bad in [&b""[..], b"a\nb", b"a\0b", b"a\rb", &long] {
        assert!(matches!(
            key.to_file_string("c", Some(bad)),
            Err(SignifyError::PassphraseRejected { .. })
        ));
    }
}

#[test]
fn secret_key_debug_hides_the_seed() {
    let key = fixed_key();
    let debug = format!("{key:?}");
    assert!(debug.contains("0123456789abcdef"));
    assert!(!debug.contains(&hex::encode([7u8; 32])));
    assert!(!debug.contains("7, 7, 7"));
}

#[test]
fn signature_round_trip_and_tampering() {
    let key = fixed_key();
    let public = key.public_key();
    let sig = key.sign(b"message");
    let text = sig.to_file_string("verify with key.pub");
    let parsed = Signature::parse(&text).unwrap();
    assert_eq!(parsed, sig);
    public.verify(b"message", &parsed).unwrap();

    assert!(matches!(
        public.verify(b"messagf", &parsed),
        Err(SignifyError::BadSignature {
            message_bytes: 7,
            ..
        })
    ));
    let mut flipped = parsed.clone();
    flipped.sig[10] ^= 1;
    assert!(matches!(
        public.verify(b"message", &flipped),
        Err(SignifyError::BadSignature { .. })
    ));
}

#[test]
fn keynum_mismatch_names_both_keys() {
    let key = fixed_key();
    let mut public = key.public_key();
    public.keynum = KeyNum([0xff; 8]);
    let err = public.verify(b"m", &key.sign(b"m")).unwrap_err();
    assert!(matches!(
        err,
        SignifyError::KeyNumMismatch { key: k, signature } if k == KeyNum([0xff; 8]) && signature == key.keynum()
    ));
    let text = err.to_string();
    assert!(text.contains("ffffffffffffffff") && text.contains("0123456789abcdef"));
}

#[test]
fn embedded_round_trip() {
    let key = fixed_key();
    let message = b"SHA256 (a) = 00\n";
    let sig = key.sign(message);
    let bytes = embed(&sig, "verify with key.pub", message);
    let (parsed, body) = parse_embedded(&bytes).unwrap();
    assert_eq!(parsed, sig);
    assert_eq!(body, message);
    key.public_key().verify(body, &parsed).unwrap();

    let no_message = embed(&sig, "c", b"");
    assert!(parse_embedded(&no_message).unwrap().1.is_empty());
    // Without the newline after the base64 line the message boundary is unknown.
    let unterminated = sig.to_file_string("c");
    assert!(matches!(
        parse_embedded(unterminated.trim_end().as_bytes()),
        Err(SignifyError::MissingNewline {
            what: FileKind::EmbeddedSignature,
            ..
        })
    ));
    // A detached parser rejects the embedded message as trailing data.
    let text = String::from_utf8(bytes).unwrap();
    assert!(matches!(
        Signature::parse(&text),
        Err(SignifyError::TrailingData { found: 16, .. })
    ));
}

#[test]
fn comments_are_cleaned_when_writing() {
    let public = fixed_key().public_key();
    let text = public.to_file_string("two\nlines\r\u{1b}[31m");
    assert!(text.starts_with("untrusted comment: two lines  [31m\n"));
    assert_eq!(PublicKey::parse(&text).unwrap(), public);

    let empty = public.to_file_string("");
    assert!(empty.starts_with("untrusted comment: vestige\n"));

    let long = "é".repeat(2000);
    let text = public.to_file_string(&long);
    let comment = text
        .lines()
        .next()
        .unwrap()
        .strip_prefix(COMMENT_HEADER)
        .unwrap();
    assert!(comment.len() <= WRITTEN_COMMENT_MAX_BYTES);
    assert_eq!(comment.len(), WRITTEN_COMMENT_MAX_BYTES - 1); // 2-byte chars, odd limit
    assert_eq!(PublicKey::parse(&text).unwrap(), public);
}

#[test]
fn malformed_framing_is_rejected() {
    let good = fixed_key().public_key().to_file_string("c");
    let b64 = good.lines().nth(1).unwrap();

    let err = PublicKey::parse(&format!("untrusted comments: c\n{b64}\n")).unwrap_err();
    assert!(matches!(
        err,
        SignifyError::MissingCommentHeader {
            what: FileKind::PublicKey,
            ..
        }
    ));
    assert!(err.to_string().starts_with("public key: "));
    assert!(matches!(
        PublicKey::parse(""),
        Err(SignifyError::MissingCommentHeader { .. })
    ));
    assert!(matches!(
        PublicKey::parse(&format!("{COMMENT_HEADER}\n{b64}\n")),
        Err(SignifyError::EmptyComment { .. })
    ));
    assert!(matches!(
        PublicKey::parse(&format!("{COMMENT_HEADER}c")),
        Err(SignifyError::MissingNewline { offset: 0, .. })
    ));
    let max = "x".repeat(COMMENT_MAX_BYTES);
    assert!(PublicKey::parse(&format!("{COMMENT_HEADER}{max}\n{b64}\n")).is_ok());
    assert!(matches!(
        PublicKey::parse(&format!("{COMMENT_HEADER}{max}x\n{b64}\n")),
        Err(SignifyError::CommentTooLong { max: 1023, .. })
    ));
    assert!(matches!(
        PublicKey::parse(&format!("{COMMENT_HEADER}{max}{max}")),
        Err(SignifyError::CommentTooLong { .. })
    ));
    assert!(matches!(
        PublicKey::parse(&format!("{COMMENT_HEADER}ab\u{1b}\n{b64}\n")),
        Err(SignifyError::CommentControl {
            offset: 21,
            found: 0x1b,
            ..
        })
    ));
    // CRLF files show as a control byte in the comment.
    assert!(matches!(
        PublicKey::parse(&good.replace('\n', "\r\n")),
        Err(SignifyError::CommentControl { found: b'\r', .. })
    ));
    assert!(matches!(
        PublicKey::parse(&format!("{COMMENT_HEADER}c\n{b64}A\n")),
        Err(SignifyError::Base64Length {
            offset: 21,
            expected: 56,
            found: 57,
            ..
        })
    ));
    assert!(matches!(
        PublicKey::parse(&format!("{COMMENT_HEADER}c\n")),
        Err(SignifyError::Base64Length { found: 0, .. })
    ));
    let bad_char = format!("{}!{}", &b64[..10], &b64[11..]);
    let err = PublicKey::parse(&format!("{COMMENT_HEADER}c\n{bad_char}\n")).unwrap_err();
    assert!(matches!(err, SignifyError::Base64 { offset: 21, .. }));
    assert!(std::error::Error::source(&err).is_some());
    assert!(matches!(
        PublicKey::parse(&format!("{good}\n")),
        Err(SignifyError::TrailingData { found: 1, .. })
    ));
    assert!(matches!(
        PublicKey::parse(&format!("{good}untrusted comment: c\n")),
        Err(SignifyError::TrailingData { offset: 78, .. })
    ));
}

#[test]
fn wrong_blob_lengths_and_algorithms_are_rejected() {
    // 41 bytes encode to 56 characters too, with one '=' less of data.
    let short = file_with_blob(&[b'E'; 41]);
    assert_eq!(short.lines().nth(1).unwrap().len(), 56);
    assert!(matches!(
        PublicKey::parse(&short),
        Err(SignifyError::BlobLength {
            expected: 42,
            found: 41,
            ..
        })
    ));
    let mut blob = [0u8; 42];
    blob[..2].copy_from_slice(b"ED");
    let err = PublicKey::parse(&file_with_blob(&blob)).unwrap_err();
    assert!(matches!(
        err,
        SignifyError::Algorithm {
            what: FileKind::PublicKey,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "public key: algorithm is \"ED\", expected \"Ed\""
    );
    let mut sig = [0u8; 74];
    sig[..2].copy_from_slice(b"\x00\xff");
    let err = Signature::parse(&file_with_blob(&sig)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "signature: algorithm is \"\\x00\\xff\", expected \"Ed\""
    );
    // A public key where a signature belongs fails on length, not silently.
    let public = fixed_key().public_key().to_file_string("c");
    assert!(matches!(
        Signature::parse(&public),
        Err(SignifyError::Base64Length {
            expected: 100,
            found: 56,
            ..
        })
    ));
}

/// Rebuilds a secret key blob around `seckey` with a valid checksum, 0 rounds.
fn secret_blob(seckey: &[u8; 64]) -> Vec<u8> {
    let mut blob = Vec::new();
    blob.extend_from_slice(b"EdBK");
    blob.extend_from_slice(&0u32.to_be_bytes());
    blob.extend_from_slice(&[0u8; 16]);
    blob.extend_from_slice(&Sha512::digest(seckey)[..8]);
    blob.extend_from_slice(&[1u8; 8]);
    blob.extend_from_slice(seckey);
    blob
}

#[test]
fn malformed_secret_keys_are_rejected() {
    let key = fixed_key();
    let good = decode_blob(&key.to_file_string("c", None).unwrap());

    let mut kdf = good.clone();
    kdf[2..4].copy_from_slice(b"SC");
    let err = SecretKey::parse(&file_with_blob(&kdf), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret key: KDF algorithm is \"SC\", expected \"BK\""
    );

    let mut rounds = good.clone();
    rounds[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        SecretKey::parse(&file_with_blob(&rounds), Some(b"p")),
        Err(SignifyError::KdfRounds {
            found: u32::MAX,
            max: MAX_KDF_ROUNDS
        })
    ));
    assert!(SecretKey::is_encrypted_file(&file_with_blob(&rounds)).is_err());

    let mut damaged = good.clone();
    damaged[50] ^= 1;
    assert!(matches!(
        SecretKey::parse(&file_with_blob(&damaged), None),
        Err(SignifyError::ChecksumMismatch { .. })
    ));

    // Valid checksum, but the public half belongs to another seed.
    let mut seckey = [0u8; 64];
    seckey[..32].copy_from_slice(&[7u8; 32]);
    seckey[32..].copy_from_slice(&[9u8; 32]);
    assert!(matches!(
        SecretKey::parse(&file_with_blob(&secret_blob(&seckey)), None),
        Err(SignifyError::PublicHalfMismatch { .. })
    ));
    // And with the right public half it is accepted.
    seckey[32..].copy_from_slice(&key.public);
    let parsed = SecretKey::parse(&file_with_blob(&secret_blob(&seckey)), None).unwrap();
    assert_eq!(parsed.public_key().key, key.public);

    let mut alg = good.clone();
    alg[0] = b'X';
    assert!(matches!(
        SecretKey::parse(&file_with_blob(&alg), None),
        Err(SignifyError::Algorithm {
            what: FileKind::SecretKey,
            ..
        })
    ));
    assert!(matches!(
        SecretKey::parse(&file_with_blob(&good[..100]), None),
        Err(SignifyError::Base64Length { expected: 140, .. })
    ));
}

fn sha256_line(name: &str) -> String {
    format!("SHA256 ({name}) = {}\n", "ab".repeat(32))
}

#[test]
fn checksum_list_round_trip() {
    let lines = vec![
        ChecksumLine::sha256("image.vzst", &[0xab; 32]).unwrap(),
        ChecksumLine::sha512("manifest.json", &[0x01; 64]).unwrap(),
        ChecksumLine::new("SHA256", "with space (1", &"0".repeat(64)).unwrap(),
    ];
    let text = format_checksum_list(&lines);
    assert!(text.starts_with(&sha256_line("image.vzst")));
    assert_eq!(parse_checksum_list(&text).unwrap(), lines);
}

fn list_error(text: &str) -> (usize, ChecksumProblem) {
    match parse_checksum_list(text) {
        Err(SignifyError::ChecksumList { line, problem }) => (line, problem),
        other => panic!("expected a checksum list error, got {other:?}"),
    }
}

#[test]
fn checksum_names_must_be_plain_file_names() {
    let ok = sha256_line("ok");
    for (name, expected) in [
        (
            "../x",
            ChecksumProblem::NameCharacter {
                offset: 2,
                found: '/',
            },
        ),
        (
            "a/b",
            ChecksumProblem::NameCharacter {
                offset: 1,
                found: '/',
            },
        ),
        (
            "/etc",
            ChecksumProblem::NameCharacter {
                offset: 0,
                found: '/',
            },
        ),
        (
            "x\u{1b}",
            ChecksumProblem::NameCharacter {
                offset: 1,
                found: '\u{1b}',
            },
        ),
        (
            "a\\b",
            ChecksumProblem::NameCharacter {
                offset: 1,
                found: '\\',
            },
        ),
        (
            "C:x",
            ChecksumProblem::NameCharacter {
                offset: 1,
                found: ':',
            },
        ),
        (
            "a)b",
            ChecksumProblem::NameCharacter {
                offset: 1,
                found: ')',
            },
        ),
        ("", ChecksumProblem::EmptyName),
        (".", ChecksumProblem::DotName { found: ".".into() }),
        ("..", ChecksumProblem::DotName { found: "..".into() }),
    ] {
        let text = format!("{ok}{}", sha256_line(name));
        assert_eq!(list_error(&text), (2, expected.clone()), "name {name:?}");
        assert!(matches!(
            ChecksumLine::sha256(name, &[0; 32]),
            Err(SignifyError::ChecksumEntry { problem, .. }) if problem == expected
        ));
    }
    let long = "n".repeat(CHECKSUM_NAME_MAX_BYTES + 1);
    assert_eq!(
        list_error(&sha256_line(&long)),
        (
            1,
            ChecksumProblem::NameTooLong {
                found: 256,
                max: 255
            }
        )
    );
    assert!(validate_file_name(&"n".repeat(CHECKSUM_NAME_MAX_BYTES)).is_ok());
    assert!(validate_file_name("..x").is_ok());
}

#[test]
fn malformed_checksum_lists_are_rejected() {
    let ok = sha256_line("a");
    assert!(matches!(
        parse_checksum_list(""),
        Err(SignifyError::EmptyChecksumList)
    ));
    assert_eq!(
        list_error(&format!("{ok}{}", ok.trim_end())),
        (2, ChecksumProblem::MissingNewline)
    );
    assert_eq!(
        list_error(&format!("{ok}\n")),
        (2, ChecksumProblem::Malformed)
    );
    assert_eq!(
        list_error("SHA256 a = 00\n"),
        (1, ChecksumProblem::Malformed)
    );
    assert_eq!(
        list_error("SHA256 (a) 00\n"),
        (1, ChecksumProblem::Malformed)
    );
    assert_eq!(
        list_error(&ok.replace("SHA256", "MD5")),
        (
            1,
            ChecksumProblem::UnknownAlgorithm {
                found: "MD5".into()
            }
        )
    );
    assert_eq!(
        list_error(&ok.replace("SHA256", "sha256")),
        (
            1,
            ChecksumProblem::UnknownAlgorithm {
                found: "sha256".into()
            }
        )
    );
    assert_eq!(
        list_error(&format!("SHA256 (a) = {}\n", "ab".repeat(31))),
        (
            1,
            ChecksumProblem::DigestLength {
                algorithm: "SHA256".into(),
                expected: 64,
                found: 62
            }
        )
    );
    assert_eq!(
        list_error(&format!("SHA512 (a) = {}\n", "ab".repeat(32))),
        (
            1,
            ChecksumProblem::DigestLength {
                algorithm: "SHA512".into(),
                expected: 128,
                found: 64
            }
        )
    );
    assert_eq!(
        list_error(&format!("SHA256 (a) = AB{}\n", "ab".repeat(31))),
        (
            1,
            ChecksumProblem::DigestCharacter {
                index: 0,
                found: 'A'
            }
        )
    );
    assert_eq!(
        list_error(&format!("{ok}{}", ok.replace('\n', "\r\n"))),
        (
            2,
            ChecksumProblem::DigestCharacter {
                index: 64,
                found: '\r'
            }
        )
    );
    assert_eq!(
        list_error(&format!("{ok}{}{ok}", sha256_line("b"))),
        (3, ChecksumProblem::DuplicateName { first_line: 1 })
    );
    let err = parse_checksum_list(&format!("{ok}{}", sha256_line("../x"))).unwrap_err();
    assert!(
        err.to_string().starts_with("line 2 of checksum list: "),
        "{err}"
    );
}

#[test]
fn minisign_signature_layout() {
    let key = fixed_key();
    let text = minisign_signature(&key, b"msg", "untrusted\nnote", "case 42\tfile");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0], "untrusted comment: untrusted note\n");
    assert_eq!(lines[2], "trusted comment: case 42 file\n");
    let sig = Signature::parse(&format!("{}{}", lines[0], lines[1])).unwrap();
    key.public_key().verify(b"msg", &sig).unwrap();
    let global = BASE64.decode(lines[3].trim_end()).unwrap();
    let mut signed = sig.sig.to_vec();
    signed.extend_from_slice(b"case 42 file");
    UnparsedPublicKey::new(&ED25519, &key.public)
        .verify(&signed, &global)
        .unwrap();
}
