//! Ed25519 keys and signatures in OpenBSD signify's file formats.
//!
//! Vestige signs an item's checksum list the way OpenBSD signs its release sets, so an
//! examiner can check evidence with nothing but stock tools:
//!
//! * `signify -C -p key.pub -x SHA256.sig` checks an [`embed`]ded, signed
//!   [checksum list](format_checksum_list) and every file it names;
//! * `signify -V` checks detached [`Signature`]s, and keys move freely between Vestige and
//!   `signify -G`;
//! * `minisign -V` checks a [`minisign_signature`] (minisign's legacy, non-prehashed
//!   format) with the very same `.pub` file.
//!
//! # File layout (signify(1), `signify.c`)
//!
//! Every file is two lines, `untrusted comment: <text>\n` and the base64 of a binary blob
//! followed by `\n`. All blobs open with the algorithm `"Ed"`:
//!
//! | file        | blob                                                              | bytes |
//! |-------------|-------------------------------------------------------------------|-------|
//! | public key  | `"Ed"` keynum\[8\] pubkey\[32\]                                   | 42    |
//! | secret key  | `"Ed"` `"BK"` rounds(u32 BE) salt\[16\] checksum\[8\] keynum\[8\] seckey\[64\] | 104 |
//! | signature   | `"Ed"` keynum\[8\] sig\[64\]                                      | 74    |
//!
//! The secret `seckey` is NaCl's `seed || pubkey`, XORed with
//! `bcrypt_pbkdf(passphrase, salt, rounds)` when `rounds` is not 0; `checksum` is the first
//! 8 bytes of SHA-512 over the plain `seckey`, which is how a wrong passphrase shows.
//! An embedded signature (`signify -S -e`) is the two signature lines directly followed
//! by the signed message.
//!
//! Parsers here take hostile input: every length is checked before use, comments are
//! bounded (at most [`COMMENT_MAX_BYTES`], not empty, no control bytes), and anything
//! after the base64 line of a detached file is rejected. Detached files may lack the
//! final newline (signify insists on it, pasted keys often lack it); an embedded
//! signature needs it, as it marks where the message starts.
//!
//! ```
//! use vestige_evidence::signify::{PublicKey, SecretKey, Signature};
//! # fn main() -> Result<(), vestige_evidence::signify::SignifyError> {
//! let secret = SecretKey::generate()?;
//! let public = PublicKey::parse(&secret.public_key().to_file_string("case 42 public key"))?;
//! let sig_file = secret.sign(b"evidence").to_file_string("verify with case42.pub");
//! public.verify(b"evidence", &Signature::parse(&sig_file)?)?;
//! assert!(public.verify(b"tampered", &Signature::parse(&sig_file)?).is_err());
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use sha2::{Digest as _, Sha256, Sha512};
use zeroize::Zeroizing;

/// Prefix of [`PublicKey::fingerprint`]: the hash that follows is SHA-256.
pub const FINGERPRINT_PREFIX: &str = "SHA256:";

/// The first line of every signify file starts with this.
pub const COMMENT_HEADER: &str = "untrusted comment: ";

/// Longest untrusted comment accepted when parsing, in bytes: signify's `COMMENTMAXLEN`
/// (1024) counts the terminating NUL.
pub const COMMENT_MAX_BYTES: usize = 1023;

/// Longest untrusted comment written, in bytes: minisign reads the comment line with a
/// 1024-byte `fgets` buffer that must also hold the header, the newline and the NUL.
pub const WRITTEN_COMMENT_MAX_BYTES: usize = 1003;

/// Longest minisign trusted comment written, in bytes (minisign's 8192-byte buffer less
/// `"trusted comment: "`, newline and NUL).
pub const MINISIGN_TRUSTED_COMMENT_MAX_BYTES: usize = 8173;

/// bcrypt_pbkdf rounds signify uses for a passphrase-protected key.
pub const SIGNIFY_KDF_ROUNDS: u32 = 42;

/// Most bcrypt_pbkdf rounds a secret key may ask for. Signify writes 0 or 42; the cap
/// keeps a damaged or hostile key file from pinning a CPU for hours.
pub const MAX_KDF_ROUNDS: u32 = 1000;

/// Longest passphrase signify can read (`readpassphrase` into a 1024-byte buffer), bytes.
pub const PASSPHRASE_MAX_BYTES: usize = 1023;

/// Longest file name accepted in a checksum list, in bytes (Linux `NAME_MAX`).
pub const CHECKSUM_NAME_MAX_BYTES: usize = 255;

/// Written when a comment is empty after cleaning: signify rejects an empty comment.
const FALLBACK_COMMENT: &str = "vestige";

const PKALG: [u8; 2] = *b"Ed";
const KDFALG: [u8; 2] = *b"BK";
const TRUSTED_COMMENT_HEADER: &str = "trusted comment: ";

const PUBLIC_KEY_BLOB_BYTES: usize = 42;
const SECRET_KEY_BLOB_BYTES: usize = 104;
const SIGNATURE_BLOB_BYTES: usize = 74;

/// Which signify structure an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A `.pub` file.
    PublicKey,
    /// A `.sec` file.
    SecretKey,
    /// A detached `.sig` file.
    Signature,
    /// A `.sig` file with the message embedded after it (`signify -S -e`, `-C`).
    EmbeddedSignature,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PublicKey => "public key",
            Self::SecretKey => "secret key",
            Self::Signature => "signature",
            Self::EmbeddedSignature => "embedded signature",
        })
    }
}

/// Everything that can go wrong reading, writing or checking signify files.
#[derive(Debug, thiserror::Error)]
pub enum SignifyError {
    /// The file does not start with `"untrusted comment: "`.
    #[error("{what}: first line starts with \"{found}\", expected \"untrusted comment: \"")]
    MissingCommentHeader {
        /// The structure being parsed.
        what: FileKind,
        /// The first bytes of the input (ASCII-escaped).
        found: String,
    },
    /// Nothing follows `"untrusted comment: "`; signify rejects such files.
    #[error("{what}: untrusted comment is empty")]
    EmptyComment {
        /// The structure being parsed.
        what: FileKind,
    },
    /// No newline ends the comment within [`COMMENT_MAX_BYTES`].
    #[error("{what}: untrusted comment is longer than {max} bytes (no newline found)")]
    CommentTooLong {
        /// The structure being parsed.
        what: FileKind,
        /// The limit, [`COMMENT_MAX_BYTES`].
        max: usize,
    },
    /// A line ends without its newline.
    #[error("{what}: {field} at byte {offset} is not terminated by a newline")]
    MissingNewline {
        /// The structure being parsed.
        what: FileKind,
        /// Which line.
        field: &'static str,
        /// Absolute byte offset where the line starts.
        offset: usize,
    },
    /// The comment holds a control byte (carriage return, escape, ...).
    #[error("{what}: untrusted comment has control byte 0x{found:02x} at byte {offset}")]
    CommentControl {
        /// The structure being parsed.
        what: FileKind,
        /// Absolute byte offset of the control byte.
        offset: usize,
        /// The byte.
        found: u8,
    },
    /// The base64 line has the wrong length for this structure.
    #[error("{what}: base64 line at byte {offset} is {found} characters, expected {expected}")]
    Base64Length {
        /// The structure being parsed.
        what: FileKind,
        /// Absolute byte offset of the base64 line.
        offset: usize,
        /// Expected number of characters.
        expected: usize,
        /// Characters found.
        found: usize,
    },
    /// The base64 line is not valid (padded, standard alphabet) base64.
    #[error("{what}: base64 line at byte {offset} does not decode")]
    Base64 {
        /// The structure being parsed.
        what: FileKind,
        /// Absolute byte offset of the base64 line.
        offset: usize,
        /// The decoder's complaint (its offset is within the line).
        #[source]
        source: base64::DecodeError,
    },
    /// The decoded blob has the wrong length.
    #[error("{what}: blob is {found} bytes, expected {expected}")]
    BlobLength {
        /// The structure being parsed.
        what: FileKind,
        /// Expected bytes.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// The blob ends inside a field (a guard: blob lengths are checked first).
    #[error("{what}: blob ends inside {field}, which needs {expected} bytes, {found} left")]
    BlobTruncated {
        /// The structure being parsed.
        what: FileKind,
        /// The field.
        field: &'static str,
        /// Bytes the field needs.
        expected: usize,
        /// Bytes left.
        found: usize,
    },
    /// The blob's algorithm is not `"Ed"`.
    #[error("{what}: algorithm is \"{found}\", expected \"Ed\"")]
    Algorithm {
        /// The structure being parsed.
        what: FileKind,
        /// The two algorithm bytes (ASCII-escaped).
        found: String,
    },
    /// The secret key's KDF is not `"BK"` (bcrypt_pbkdf).
    #[error("secret key: KDF algorithm is \"{found}\", expected \"BK\"")]
    KdfAlgorithm {
        /// The two KDF bytes (ASCII-escaped).
        found: String,
    },
    /// The secret key asks for more than [`MAX_KDF_ROUNDS`] rounds.
    #[error("secret key: KDF rounds is {found}, at most {max} accepted")]
    KdfRounds {
        /// Rounds in the file.
        found: u32,
        /// [`MAX_KDF_ROUNDS`].
        max: u32,
    },
    /// Something follows the base64 line.
    #[error("{what}: {found} unexpected bytes after the base64 line, at byte {offset}")]
    TrailingData {
        /// The structure being parsed.
        what: FileKind,
        /// Absolute byte offset of the first extra byte.
        offset: usize,
        /// How many extra bytes.
        found: usize,
    },
    /// The secret key is passphrase-protected and no passphrase was given.
    #[error("secret key: encrypted with a passphrase ({rounds} bcrypt_pbkdf rounds), none given")]
    NeedsPassphrase {
        /// KDF rounds in the file.
        rounds: u32,
    },
    /// The secret key's checksum does not match after decryption: wrong passphrase.
    #[error("secret key: checksum mismatch after decryption, wrong passphrase")]
    WrongPassphrase,
    /// An unencrypted secret key's checksum does not match: the file is damaged.
    #[error("secret key: checksum is {stored}, expected {computed} (unencrypted key is damaged)")]
    ChecksumMismatch {
        /// Stored checksum, hex.
        stored: String,
        /// SHA-512 prefix of the key, hex.
        computed: String,
    },
    /// The public half of `seckey` does not belong to its seed.
    #[error("secret key: public half of the key does not match its seed (ring: {reason})")]
    PublicHalfMismatch {
        /// ring's complaint (ring is built without `std`, so its error is kept as text).
        reason: String,
    },
    /// A passphrase signify could not type or read back.
    #[error("passphrase {reason}")]
    PassphraseRejected {
        /// Why, e.g. "is empty".
        reason: &'static str,
    },
    /// bcrypt_pbkdf refused its parameters.
    #[error("secret key: bcrypt_pbkdf with {rounds} rounds failed")]
    Kdf {
        /// Rounds asked for.
        rounds: u32,
        /// The KDF's complaint.
        #[source]
        source: bcrypt_pbkdf::Error,
    },
    /// The system random number generator failed.
    #[error("system random number generator failed while making {what}")]
    Random {
        /// What was being made.
        what: &'static str,
    },
    /// ring refused a freshly generated seed.
    #[error("generated Ed25519 seed rejected (ring: {reason})")]
    Generate {
        /// ring's complaint, as text.
        reason: String,
    },
    /// The signature was made by another key.
    #[error("signature was made by key {signature}, but the public key is {key}")]
    KeyNumMismatch {
        /// Keynum of the public key.
        key: KeyNum,
        /// Keynum in the signature.
        signature: KeyNum,
    },
    /// The Ed25519 signature does not verify over the message.
    #[error(
        "Ed25519 signature by key {keynum} does not verify over the {message_bytes}-byte message"
    )]
    BadSignature {
        /// Keynum of the key and signature.
        keynum: KeyNum,
        /// Length of the message checked.
        message_bytes: usize,
    },
    /// A line of a checksum list is invalid.
    #[error("line {line} of checksum list: {problem}")]
    ChecksumList {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: ChecksumProblem,
    },
    /// A checksum list has no entries.
    #[error("checksum list: no entries")]
    EmptyChecksumList,
    /// A [`ChecksumLine`] built in code is invalid.
    #[error("checksum entry for {name:?}: {problem}")]
    ChecksumEntry {
        /// The entry's name, as given.
        name: String,
        /// What is wrong.
        problem: ChecksumProblem,
    },
}

/// What is wrong with one checksum list entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumProblem {
    /// The last line lacks its newline.
    #[error("no newline at the end of the line")]
    MissingNewline,
    /// Not `ALGORITHM (name) = hex`.
    #[error("not of the form \"ALGORITHM (name) = hex\"")]
    Malformed,
    /// Neither SHA256 nor SHA512.
    #[error("algorithm is \"{found}\", expected \"SHA256\" or \"SHA512\"")]
    UnknownAlgorithm {
        /// The algorithm field (ASCII-escaped).
        found: String,
    },
    /// The digest has the wrong number of hex digits.
    #[error("{algorithm} digest is {found} characters, expected {expected}")]
    DigestLength {
        /// The algorithm.
        algorithm: String,
        /// Hex digits expected.
        expected: usize,
        /// Characters found.
        found: usize,
    },
    /// The digest has something other than a lowercase hex digit.
    #[error("digest has {found:?} at character {index}, expected lowercase hex")]
    DigestCharacter {
        /// 0-based character index in the digest.
        index: usize,
        /// The character.
        found: char,
    },
    /// The name is empty.
    #[error("file name is empty")]
    EmptyName,
    /// The name is `.` or `..`.
    #[error("file name is {found:?}, which names a directory")]
    DotName {
        /// The name.
        found: String,
    },
    /// The name is longer than [`CHECKSUM_NAME_MAX_BYTES`].
    #[error("file name is {found} bytes, at most {max} accepted")]
    NameTooLong {
        /// Bytes found.
        found: usize,
        /// [`CHECKSUM_NAME_MAX_BYTES`].
        max: usize,
    },
    /// The name holds a path separator, control or other forbidden character.
    #[error("file name has {found:?} at byte {offset}; only plain file names are accepted")]
    NameCharacter {
        /// Byte offset within the name.
        offset: usize,
        /// The character.
        found: char,
    },
    /// The name was already listed.
    #[error("file name already listed on line {first_line}")]
    DuplicateName {
        /// The line of the first entry.
        first_line: usize,
    },
}

/// A signify key number: 8 random bytes tying signatures to their key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyNum(pub [u8; 8]);

impl fmt::Display for KeyNum {
    /// 16 lowercase hex digits, in file byte order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// An Ed25519 public key with its signify keynum (a `.pub` file; minisign reads the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The key number signatures must carry.
    pub keynum: KeyNum,
    /// The Ed25519 public key.
    pub key: [u8; 32],
}

impl PublicKey {
    /// Parses a whole `.pub` file.
    ///
    /// # Errors
    /// Any framing, base64, length or algorithm error, naming [`FileKind::PublicKey`].
    pub fn parse(text: &str) -> Result<Self, SignifyError> {
        let what = FileKind::PublicKey;
        let blob = parse_whole_file(text.as_bytes(), what, PUBLIC_KEY_BLOB_BYTES)?;
        let mut fields = Fields::new(what, &blob);
        fields.algorithm()?;
        Ok(Self {
            keynum: KeyNum(fields.array("keynum")?),
            key: fields.array("pubkey")?,
        })
    }

    /// The `.pub` file text. `comment` is cleaned as described at [`clean_comment`].
    pub fn to_file_string(&self, comment: &str) -> String {
        let mut blob = Vec::with_capacity(PUBLIC_KEY_BLOB_BYTES);
        blob.extend_from_slice(&PKALG);
        blob.extend_from_slice(&self.keynum.0);
        blob.extend_from_slice(&self.key);
        frame(comment, &blob)
    }

    /// `"SHA256:"` followed by 64 lowercase hex digits of SHA-256 over the 32-byte key.
    pub fn fingerprint(&self) -> String {
        format!(
            "{FINGERPRINT_PREFIX}{}",
            hex::encode(Sha256::digest(self.key))
        )
    }

    /// Checks `sig` over `message`, as `signify -V` does.
    ///
    /// # Errors
    /// [`SignifyError::KeyNumMismatch`] if the signature names another key,
    /// [`SignifyError::BadSignature`] if the Ed25519 check fails.
    pub fn verify(&self, message: &[u8], sig: &Signature) -> Result<(), SignifyError> {
        if sig.keynum != self.keynum {
            return Err(SignifyError::KeyNumMismatch {
                key: self.keynum,
                signature: sig.keynum,
            });
        }
        UnparsedPublicKey::new(&ED25519, &self.key)
            .verify(message, &sig.sig)
            .map_err(|_| SignifyError::BadSignature {
                keynum: self.keynum,
                message_bytes: message.len(),
            })
    }
}

/// An Ed25519 secret key with its keynum.
///
/// The seed is zeroed on drop and never printed by `Debug`. (ring's key pair, kept to
/// sign without a fallible rebuild, holds its expanded scalar without zeroizing it; that
/// is a ring limitation.)
pub struct SecretKey {
    keynum: KeyNum,
    seed: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("keynum", &format_args!("{}", self.keynum))
            .field("public", &format_args!("{}", hex::encode(self.public)))
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A fresh key pair and keynum from the system random number generator.
    ///
    /// # Errors
    /// [`SignifyError::Random`] if the generator fails.
    pub fn generate() -> Result<Self, SignifyError> {
        let rng = SystemRandom::new();
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill(seed.as_mut())
            .map_err(|_| SignifyError::Random { what: "a key seed" })?;
        let mut keynum = [0u8; 8];
        rng.fill(&mut keynum)
            .map_err(|_| SignifyError::Random { what: "a keynum" })?;
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).map_err(|rejected| {
            SignifyError::Generate {
                reason: rejected.to_string(),
            }
        })?;
        let mut public = [0u8; 32];
        copy_fixed(&mut public, pair.public_key().as_ref());
        Ok(Self {
            keynum: KeyNum(keynum),
            seed,
            public,
            pair,
        })
    }

    /// Parses a whole `.sec` file, decrypting it with `passphrase` if it is encrypted.
    ///
    /// A passphrase given for an unencrypted key (0 rounds) is ignored, as signify does.
    ///
    /// # Errors
    /// Framing and field errors naming [`FileKind::SecretKey`];
    /// [`SignifyError::NeedsPassphrase`] for an encrypted key and `None`;
    /// [`SignifyError::WrongPassphrase`] when the checksum fails after decryption;
    /// [`SignifyError::ChecksumMismatch`] for a damaged unencrypted key;
    /// [`SignifyError::PublicHalfMismatch`] when the stored public half is not the seed's.
    pub fn parse(text: &str, passphrase: Option<&[u8]>) -> Result<Self, SignifyError> {
        let what = FileKind::SecretKey;
        let blob = parse_whole_file(text.as_bytes(), what, SECRET_KEY_BLOB_BYTES)?;
        let header = SecretHeader::read(&blob)?;

        let mut xorkey = Zeroizing::new([0u8; 64]);
        if header.rounds != 0 {
            let passphrase = passphrase.ok_or(SignifyError::NeedsPassphrase {
                rounds: header.rounds,
            })?;
            if passphrase.is_empty() {
                return Err(SignifyError::PassphraseRejected { reason: "is empty" });
            }
            bcrypt_pbkdf::bcrypt_pbkdf(passphrase, &header.salt, header.rounds, xorkey.as_mut())
                .map_err(|source| SignifyError::Kdf {
                    rounds: header.rounds,
                    source,
                })?;
        }
        let mut seckey = Zeroizing::new([0u8; 64]);
        for ((plain, stored), xor) in seckey.iter_mut().zip(header.seckey).zip(xorkey.iter()) {
            *plain = stored ^ xor;
        }
        // The checksum is stored in clear in the file; the digest need not be zeroized.
        let digest = Sha512::digest(seckey.as_ref());
        let computed = digest.get(..8).unwrap_or_default();
        if computed != header.checksum.as_slice() {
            if header.rounds != 0 {
                return Err(SignifyError::WrongPassphrase);
            }
            return Err(SignifyError::ChecksumMismatch {
                stored: hex::encode(header.checksum),
                computed: hex::encode(computed),
            });
        }

        let mut seed = Zeroizing::new([0u8; 32]);
        let mut public = [0u8; 32];
        let (seed_half, public_half) = seckey.split_at(32);
        copy_fixed(seed.as_mut(), seed_half);
        copy_fixed(&mut public, public_half);
        let pair = Ed25519KeyPair::from_seed_and_public_key(seed.as_ref(), &public).map_err(
            |rejected| SignifyError::PublicHalfMismatch {
                reason: rejected.to_string(),
            },
        )?;
        Ok(Self {
            keynum: header.keynum,
            seed,
            public,
            pair,
        })
    }

    /// Whether a `.sec` file is passphrase-protected (its KDF rounds are not 0), without
    /// decrypting it.
    ///
    /// # Errors
    /// The framing and field errors of [`SecretKey::parse`].
    pub fn is_encrypted_file(text: &str) -> Result<bool, SignifyError> {
        let blob = parse_whole_file(text.as_bytes(), FileKind::SecretKey, SECRET_KEY_BLOB_BYTES)?;
        Ok(SecretHeader::read(&blob)?.rounds != 0)
    }

    /// The `.sec` file text, with a fresh random salt; encrypted with
    /// [`SIGNIFY_KDF_ROUNDS`] bcrypt_pbkdf rounds when a passphrase is given, plain (0
    /// rounds) otherwise. `comment` is cleaned as described at [`clean_comment`].
    ///
    /// # Errors
    /// [`SignifyError::PassphraseRejected`] for a passphrase signify could not read back
    /// (empty, longer than [`PASSPHRASE_MAX_BYTES`], holding NUL, CR or LF);
    /// [`SignifyError::Random`] if the salt cannot be drawn.
    pub fn to_file_string(
        &self,
        comment: &str,
        passphrase: Option<&[u8]>,
    ) -> Result<String, SignifyError> {
        let rounds = if passphrase.is_some() {
            SIGNIFY_KDF_ROUNDS
        } else {
            0
        };
        self.to_file_string_with_rounds(comment, passphrase, rounds)
    }

    fn to_file_string_with_rounds(
        &self,
        comment: &str,
        passphrase: Option<&[u8]>,
        rounds: u32,
    ) -> Result<String, SignifyError> {
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| SignifyError::Random { what: "a KDF salt" })?;

        let mut seckey = Zeroizing::new([0u8; 64]);
        let (seed_half, public_half) = seckey.split_at_mut(32);
        copy_fixed(seed_half, self.seed.as_ref());
        copy_fixed(public_half, &self.public);
        let digest = Sha512::digest(seckey.as_ref());

        let mut xorkey = Zeroizing::new([0u8; 64]);
        let rounds = match passphrase {
            Some(passphrase) => {
                check_passphrase(passphrase)?;
                bcrypt_pbkdf::bcrypt_pbkdf(passphrase, &salt, rounds, xorkey.as_mut())
                    .map_err(|source| SignifyError::Kdf { rounds, source })?;
                rounds
            }
            None => 0,
        };

        let mut blob = Zeroizing::new(Vec::with_capacity(SECRET_KEY_BLOB_BYTES));
        blob.extend_from_slice(&PKALG);
        blob.extend_from_slice(&KDFALG);
        blob.extend_from_slice(&rounds.to_be_bytes());
        blob.extend_from_slice(&salt);
        blob.extend_from_slice(digest.get(..8).unwrap_or_default());
        blob.extend_from_slice(&self.keynum.0);
        blob.extend(
            seckey
                .iter()
                .zip(xorkey.iter())
                .map(|(plain, xor)| plain ^ xor),
        );
        Ok(frame(comment, &blob))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            keynum: self.keynum,
            key: self.public,
        }
    }

    /// The key number.
    pub fn keynum(&self) -> KeyNum {
        self.keynum
    }

    /// Signs `message` (pure Ed25519, as `signify -S`).
    pub fn sign(&self, message: &[u8]) -> Signature {
        let mut sig = [0u8; 64];
        copy_fixed(&mut sig, self.pair.sign(message).as_ref());
        Signature {
            keynum: self.keynum,
            sig,
        }
    }
}

/// A signify signature: the signer's keynum and a pure Ed25519 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Keynum of the signing key.
    pub keynum: KeyNum,
    /// The Ed25519 signature.
    pub sig: [u8; 64],
}

impl Signature {
    /// Parses a whole detached `.sig` file.
    ///
    /// # Errors
    /// Any framing, base64, length or algorithm error, naming [`FileKind::Signature`].
    pub fn parse(text: &str) -> Result<Self, SignifyError> {
        let what = FileKind::Signature;
        let blob = parse_whole_file(text.as_bytes(), what, SIGNATURE_BLOB_BYTES)?;
        Self::from_blob(what, &blob)
    }

    /// The `.sig` file text. `comment` is cleaned as described at [`clean_comment`];
    /// signify writes `verify with <name>.pub`, which `signify -V`/`-C` use to find the key
    /// in /etc/signify when no `-p` is given.
    pub fn to_file_string(&self, comment: &str) -> String {
        frame(comment, &self.blob())
    }

    fn blob(&self) -> Vec<u8> {
        let mut blob = Vec::with_capacity(SIGNATURE_BLOB_BYTES);
        blob.extend_from_slice(&PKALG);
        blob.extend_from_slice(&self.keynum.0);
        blob.extend_from_slice(&self.sig);
        blob
    }

    fn from_blob(what: FileKind, blob: &[u8]) -> Result<Self, SignifyError> {
        let mut fields = Fields::new(what, blob);
        fields.algorithm()?;
        Ok(Self {
            keynum: KeyNum(fields.array("keynum")?),
            sig: fields.array("sig")?,
        })
    }
}

/// Signify's embedded layout (`signify -S -e`): the signature file's two lines directly
/// followed by `message`.
pub fn embed(sig: &Signature, comment: &str, message: &[u8]) -> Vec<u8> {
    let mut out = sig.to_file_string(comment).into_bytes();
    out.extend_from_slice(message);
    out
}

/// Splits an embedded signature file into the signature and the message after it.
/// The message is not checked; call [`PublicKey::verify`].
///
/// # Errors
/// Framing, base64, length or algorithm errors naming [`FileKind::EmbeddedSignature`];
/// [`SignifyError::MissingNewline`] if the base64 line is not newline-terminated.
pub fn parse_embedded(bytes: &[u8]) -> Result<(Signature, &[u8]), SignifyError> {
    let what = FileKind::EmbeddedSignature;
    let framed = parse_frame(bytes, what, SIGNATURE_BLOB_BYTES)?;
    if !framed.terminated {
        return Err(SignifyError::MissingNewline {
            what,
            field: "base64 line",
            offset: framed.base64_offset,
        });
    }
    Ok((Signature::from_blob(what, &framed.blob)?, framed.rest))
}

/// One line of a BSD-style checksum list: `ALGORITHM (name) = hex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumLine {
    /// `SHA256` or `SHA512`.
    pub algorithm: String,
    /// A plain file name (see [`validate_file_name`]).
    pub name: String,
    /// The digest in lowercase hex.
    pub hex: String,
}

impl ChecksumLine {
    /// A checked entry.
    ///
    /// # Errors
    /// [`SignifyError::ChecksumEntry`] with the same rules as [`parse_checksum_list`].
    pub fn new(algorithm: &str, name: &str, hex: &str) -> Result<Self, SignifyError> {
        check_entry(algorithm, name, hex).map_err(|problem| SignifyError::ChecksumEntry {
            name: name.to_owned(),
            problem,
        })?;
        Ok(Self {
            algorithm: algorithm.to_owned(),
            name: name.to_owned(),
            hex: hex.to_owned(),
        })
    }

    /// A checked SHA256 entry from a raw digest.
    ///
    /// # Errors
    /// [`SignifyError::ChecksumEntry`] if `name` is not a plain file name.
    pub fn sha256(name: &str, digest: &[u8; 32]) -> Result<Self, SignifyError> {
        Self::new("SHA256", name, &hex::encode(digest))
    }

    /// A checked SHA512 entry from a raw digest.
    ///
    /// # Errors
    /// [`SignifyError::ChecksumEntry`] if `name` is not a plain file name.
    pub fn sha512(name: &str, digest: &[u8; 64]) -> Result<Self, SignifyError> {
        Self::new("SHA512", name, &hex::encode(digest))
    }
}

/// The checksum list text, one `ALGORITHM (name) = hex\n` line per entry, in order.
///
/// Entries are written as given: build them with [`ChecksumLine::new`] (or take them from
/// [`parse_checksum_list`]) so that signify and this module can read the result back.
pub fn format_checksum_list(lines: &[ChecksumLine]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&format!(
            "{} ({}) = {}\n",
            line.algorithm, line.name, line.hex
        ));
    }
    out
}

/// Parses a checksum list strictly.
///
/// Every line must be `SHA256 (name) = <64 lowercase hex>` or
/// `SHA512 (name) = <128 lowercase hex>`, newline-terminated, with a plain file name (see
/// [`validate_file_name`]) listed once. An empty list is an error: a signed list that
/// checks nothing proves nothing.
///
/// # Errors
/// [`SignifyError::ChecksumList`] with the 1-based line number and the problem;
/// [`SignifyError::EmptyChecksumList`].
pub fn parse_checksum_list(text: &str) -> Result<Vec<ChecksumLine>, SignifyError> {
    let mut entries = Vec::new();
    let mut first_line_of: HashMap<&str, usize> = HashMap::new();
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let line = index.saturating_add(1);
        let fail = |problem| SignifyError::ChecksumList { line, problem };
        let body = raw
            .strip_suffix('\n')
            .ok_or_else(|| fail(ChecksumProblem::MissingNewline))?;
        let (algorithm, rest) = body
            .split_once(" (")
            .ok_or_else(|| fail(ChecksumProblem::Malformed))?;
        let (name, hex) = rest
            .rsplit_once(") = ")
            .ok_or_else(|| fail(ChecksumProblem::Malformed))?;
        check_entry(algorithm, name, hex).map_err(fail)?;
        if let Some(&first_line) = first_line_of.get(name) {
            return Err(fail(ChecksumProblem::DuplicateName { first_line }));
        }
        first_line_of.insert(name, line);
        entries.push(ChecksumLine {
            algorithm: algorithm.to_owned(),
            name: name.to_owned(),
            hex: hex.to_owned(),
        });
    }
    if entries.is_empty() {
        return Err(SignifyError::EmptyChecksumList);
    }
    Ok(entries)
}

/// Checks that `name` is a plain file name, safe to open relative to an evidence
/// directory: not empty, not `.` or `..`, at most [`CHECKSUM_NAME_MAX_BYTES`], and free of
/// `/`, `\` and `:` (path separators here or on Windows), `)` (signify's parser stops at
/// the first one) and control characters.
///
/// # Errors
/// The [`ChecksumProblem`] found.
pub fn validate_file_name(name: &str) -> Result<(), ChecksumProblem> {
    if name.is_empty() {
        return Err(ChecksumProblem::EmptyName);
    }
    if name == "." || name == ".." {
        return Err(ChecksumProblem::DotName {
            found: name.to_owned(),
        });
    }
    if name.len() > CHECKSUM_NAME_MAX_BYTES {
        return Err(ChecksumProblem::NameTooLong {
            found: name.len(),
            max: CHECKSUM_NAME_MAX_BYTES,
        });
    }
    if let Some((offset, found)) = name
        .char_indices()
        .find(|&(_, c)| c.is_control() || matches!(c, '/' | '\\' | ':' | ')'))
    {
        return Err(ChecksumProblem::NameCharacter { offset, found });
    }
    Ok(())
}

/// A minisign signature file (legacy `"Ed"` format, as `minisign -S -l`) over `message`,
/// checkable with `minisign -V -p key.pub` using [`PublicKey::to_file_string`]'s output.
///
/// Four newline-terminated lines: the untrusted comment, base64(`"Ed"` keynum sig), the
/// trusted comment and base64 of the global signature, Ed25519 over `sig || trusted
/// comment`. Comments are cleaned like [`clean_comment`], the trusted one up to
/// [`MINISIGN_TRUSTED_COMMENT_MAX_BYTES`] (and may be empty).
pub fn minisign_signature(
    sk: &SecretKey,
    message: &[u8],
    untrusted_comment: &str,
    trusted_comment: &str,
) -> String {
    let sig = sk.sign(message);
    let trusted = clean_text(trusted_comment, MINISIGN_TRUSTED_COMMENT_MAX_BYTES);
    let mut signed = Vec::with_capacity(sig.sig.len().saturating_add(trusted.len()));
    signed.extend_from_slice(&sig.sig);
    signed.extend_from_slice(trusted.as_bytes());
    let global = sk.pair.sign(&signed);
    format!(
        "{}{TRUSTED_COMMENT_HEADER}{trusted}\n{}\n",
        frame(untrusted_comment, &sig.blob()),
        BASE64.encode(global.as_ref()),
    )
}

/// How writers clean an untrusted comment: control characters (newlines included) become
/// spaces, the text is cut at a character boundary to [`WRITTEN_COMMENT_MAX_BYTES`], and
/// an empty result becomes `"vestige"` because signify rejects empty comments.
pub fn clean_comment(comment: &str) -> String {
    let cleaned = clean_text(comment, WRITTEN_COMMENT_MAX_BYTES);
    if cleaned.is_empty() {
        FALLBACK_COMMENT.to_owned()
    } else {
        cleaned
    }
}

fn clean_text(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len().saturating_add(c.len_utf8()) > max_bytes {
            break;
        }
        out.push(c);
    }
    out
}

fn check_passphrase(passphrase: &[u8]) -> Result<(), SignifyError> {
    let reason = if passphrase.is_empty() {
        "is empty"
    } else if passphrase.len() > PASSPHRASE_MAX_BYTES {
        "is longer than the 1023 bytes signify reads"
    } else if passphrase.iter().any(|b| matches!(b, 0 | b'\n' | b'\r')) {
        "holds a NUL, CR or LF byte, which signify cannot read"
    } else {
        return Ok(());
    };
    Err(SignifyError::PassphraseRejected { reason })
}

fn check_entry(algorithm: &str, name: &str, hex: &str) -> Result<(), ChecksumProblem> {
    let expected = match algorithm {
        "SHA256" => 64,
        "SHA512" => 128,
        other => {
            return Err(ChecksumProblem::UnknownAlgorithm {
                found: other.escape_default().to_string(),
            })
        }
    };
    validate_file_name(name)?;
    if let Some((index, found)) = hex
        .chars()
        .enumerate()
        .find(|&(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
    {
        return Err(ChecksumProblem::DigestCharacter { index, found });
    }
    if hex.len() != expected {
        return Err(ChecksumProblem::DigestLength {
            algorithm: algorithm.to_owned(),
            expected,
            found: hex.len(),
        });
    }
    Ok(())
}

/// Copies `src` into `dst` element by element; used only where ring's API fixes the
/// length (a 32-byte public key, a 64-byte signature), so no panic path is needed.
fn copy_fixed(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// `untrusted comment: <cleaned comment>\n<base64(blob)>\n`.
fn frame(comment: &str, blob: &[u8]) -> String {
    let encoded = Zeroizing::new(BASE64.encode(blob));
    format!(
        "{COMMENT_HEADER}{}\n{}\n",
        clean_comment(comment),
        encoded.as_str()
    )
}

/// The two lines of a signify file and what follows them.
struct Framed<'a> {
    blob: Zeroizing<Vec<u8>>,
    base64_offset: usize,
    /// Whether a newline ended the base64 line.
    terminated: bool,
    rest: &'a [u8],
    rest_offset: usize,
}

/// Splits off the comment line and decodes the base64 line into a `blob_bytes` blob.
fn parse_frame(
    bytes: &[u8],
    what: FileKind,
    blob_bytes: usize,
) -> Result<Framed<'_>, SignifyError> {
    let header = COMMENT_HEADER.as_bytes();
    let after_header =
        bytes
            .strip_prefix(header)
            .ok_or_else(|| SignifyError::MissingCommentHeader {
                what,
                found: escape(bytes.get(..header.len()).unwrap_or(bytes)),
            })?;
    // Bound the newline search: a comment longer than signify accepts is an error anyway.
    let window = after_header
        .get(..COMMENT_MAX_BYTES.saturating_add(1))
        .unwrap_or(after_header);
    let comment_bytes = match window.iter().position(|&b| b == b'\n') {
        Some(position) => position,
        None if after_header.len() > COMMENT_MAX_BYTES => {
            return Err(SignifyError::CommentTooLong {
                what,
                max: COMMENT_MAX_BYTES,
            })
        }
        None => {
            return Err(SignifyError::MissingNewline {
                what,
                field: "untrusted comment line",
                offset: 0,
            })
        }
    };
    let (comment, after_comment) = after_header.split_at(comment_bytes);
    if comment.is_empty() {
        return Err(SignifyError::EmptyComment { what });
    }
    if let Some((index, &found)) = comment
        .iter()
        .enumerate()
        .find(|&(_, &b)| b < 0x20 || b == 0x7f)
    {
        return Err(SignifyError::CommentControl {
            what,
            offset: header.len().saturating_add(index),
            found,
        });
    }
    let base64_offset = header.len().saturating_add(comment_bytes).saturating_add(1);
    let body = after_comment.get(1..).unwrap_or_default();
    let (line, rest, terminated) = match body.iter().position(|&b| b == b'\n') {
        Some(position) => {
            let (line, newline_and_rest) = body.split_at(position);
            (line, newline_and_rest.get(1..).unwrap_or_default(), true)
        }
        None => (body, &[][..], false),
    };
    let expected = blob_bytes.div_ceil(3).saturating_mul(4);
    if line.len() != expected {
        return Err(SignifyError::Base64Length {
            what,
            offset: base64_offset,
            expected,
            found: line.len(),
        });
    }
    let blob = Zeroizing::new(BASE64.decode(line).map_err(|source| SignifyError::Base64 {
        what,
        offset: base64_offset,
        source,
    })?);
    if blob.len() != blob_bytes {
        return Err(SignifyError::BlobLength {
            what,
            expected: blob_bytes,
            found: blob.len(),
        });
    }
    let rest_offset = base64_offset
        .saturating_add(line.len())
        .saturating_add(usize::from(terminated));
    Ok(Framed {
        blob,
        base64_offset,
        terminated,
        rest,
        rest_offset,
    })
}

/// A detached file: the two lines and nothing else (the final newline may be missing).
fn parse_whole_file(
    bytes: &[u8],
    what: FileKind,
    blob_bytes: usize,
) -> Result<Zeroizing<Vec<u8>>, SignifyError> {
    let framed = parse_frame(bytes, what, blob_bytes)?;
    if !framed.rest.is_empty() {
        return Err(SignifyError::TrailingData {
            what,
            offset: framed.rest_offset,
            found: framed.rest.len(),
        });
    }
    Ok(framed.blob)
}

/// Reads fixed-size fields off a blob in order.
struct Fields<'a> {
    what: FileKind,
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(what: FileKind, blob: &'a [u8]) -> Self {
        Self { what, rest: blob }
    }

    /// The next `bytes` bytes. Blob lengths are checked before fields are read, so the
    /// error is a guard, not an expected outcome.
    fn take(&mut self, field: &'static str, bytes: usize) -> Result<&'a [u8], SignifyError> {
        let (head, tail) =
            self.rest
                .split_at_checked(bytes)
                .ok_or(SignifyError::BlobTruncated {
                    what: self.what,
                    field,
                    expected: bytes,
                    found: self.rest.len(),
                })?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SignifyError> {
        let mut out = [0u8; N];
        copy_fixed(&mut out, self.take(field, N)?);
        Ok(out)
    }

    fn algorithm(&mut self) -> Result<(), SignifyError> {
        let found = self.take("pkalg", PKALG.len())?;
        if found != PKALG {
            return Err(SignifyError::Algorithm {
                what: self.what,
                found: escape(found),
            });
        }
        Ok(())
    }
}

/// The secret key blob's fields, still encrypted.
struct SecretHeader<'a> {
    rounds: u32,
    salt: [u8; 16],
    checksum: [u8; 8],
    keynum: KeyNum,
    seckey: &'a [u8],
}

impl<'a> SecretHeader<'a> {
    fn read(blob: &'a [u8]) -> Result<Self, SignifyError> {
        let mut fields = Fields::new(FileKind::SecretKey, blob);
        fields.algorithm()?;
        let kdfalg = fields.take("kdfalg", KDFALG.len())?;
        if kdfalg != KDFALG {
            return Err(SignifyError::KdfAlgorithm {
                found: escape(kdfalg),
            });
        }
        let rounds = u32::from_be_bytes(fields.array("kdfrounds")?);
        if rounds > MAX_KDF_ROUNDS {
            return Err(SignifyError::KdfRounds {
                found: rounds,
                max: MAX_KDF_ROUNDS,
            });
        }
        Ok(Self {
            rounds,
            salt: fields.array("salt")?,
            checksum: fields.array("checksum")?,
            keynum: KeyNum(fields.array("keynum")?),
            seckey: fields.take("seckey", 64)?,
        })
    }
}

#[cfg(test)]
mod tests;
