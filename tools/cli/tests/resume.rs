//! `vestige acquire disk --resume`: an acquisition killed, interrupted or stopped by a full
//! evidence medium is taken up again from its resume journal, and the finished image is
//! byte for byte the one an uninterrupted run writes. A damaged kept frame or a torn
//! journal line costs only re-reading; another source, a complete item or a missing one
//! is refused and leaves the item as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;

const MIB: u64 = 1 << 20;
/// The test source: incompressible bytes, then zeros (frames of very different sizes).
const RANDOM_MIB: u64 = 48;
const ZERO_MIB: u64 = 16;
/// Slow on purpose (zstd level 19 on random data, one thread), with a durable point every
/// 2 MiB: long enough to be stopped part way, journaled often.
const SLOW: &[&str] = &[
    "--chunk-mib",
    "1",
    "--sync-every-mib",
    "2",
    "--level",
    "19",
    "--threads",
    "1",
];
/// The settings that decide the image's bytes (the reference run uses only these).
const SAME_IMAGE: &[&str] = &["--chunk-mib", "1", "--level", "19"];

/// `random_mib` MiB of pseudo-random bytes from `seed`, then `zero_mib` MiB of zeros.
fn source_bytes(random_mib: u64, zero_mib: u64, seed: u64) -> Vec<u8> {
    let mut data = pseudo_random(random_mib * MIB, seed);
    data.resize(usize::try_from((random_mib + zero_mib) * MIB).unwrap(), 0);
    data
}

/// A temporary directory holding a key, a case and a source file.
struct Setup {
    /// The small medium the case is on, if any; unmounted before `t` goes.
    mounted: Option<Mount>,
    t: tempfile::TempDir,
    sec: PathBuf,
    public: PathBuf,
    case: PathBuf,
    src: PathBuf,
    src_sha: String,
}

/// A key, the source `data` and a case, this one on a fresh tmpfs of `medium_mib` MiB
/// if given.
fn setup_with(data: &[u8], medium_mib: Option<u64>) -> Setup {
    let t = tempfile::tempdir().unwrap();
    let (sec, public) = new_key(t.path(), "k");
    let src = t.path().join("src.raw");
    std::fs::write(&src, data).unwrap();
    let src_sha = sha256_file(&src);
    let mounted = medium_mib.map(|mib| {
        let medium = t.path().join("medium");
        std::fs::create_dir(&medium).unwrap();
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&medium));
        Mount(medium)
    });
    let case = new_case(mounted.as_ref().map_or(t.path(), |m| &m.0), "case");
    Setup {
        mounted,
        t,
        sec,
        public,
        case,
        src,
        src_sha,
    }
}

/// The test source (RANDOM_MIB of pseudo-random bytes then ZERO_MIB of zeros).
fn setup() -> Setup {
    setup_with(
        &source_bytes(RANDOM_MIB, ZERO_MIB, 0x9e37_79b9_7f4a_7c15),
        None,
    )
}

/// Starts a slow acquisition of the test source to item `disk` and returns once its
/// journal has `lines` complete lines, for the caller to stop it.
fn start_slow(lines: usize) -> (Setup, PathBuf, Child) {
    let s = setup();
    let item = s.case.join("disk");
    let mut child = spawn(&s, "disk", SLOW);
    wait_for_journal(&mut child, &item, lines);
    (s, item, child)
}

/// SHA-256 and size of the image an uninterrupted run makes of the test source with
/// SAME_IMAGE: acquired once, shared by every test.
fn reference_image() -> &'static (String, u64) {
    static REF: OnceLock<(String, u64)> = OnceLock::new();
    REF.get_or_init(|| {
        let s = setup();
        succeeded(
            &acquire(&s.src, &s.case, "ref", &s.sec, SAME_IMAGE),
            "reference acquisition",
        );
        let item = s.case.join("ref");
        assert_eq!(manifest(&item)["hashes"]["sha256"], s.src_sha.as_str());
        assert!(!item.join("resume.journal").exists());
        let image = item.join("image.zst");
        (
            sha256_file(&image),
            std::fs::metadata(&image).unwrap().len(),
        )
    })
}

/// Asserts `item`'s image.zst is the uninterrupted run's image.
fn assert_same_as_reference(item: &Path) {
    let (sha, len) = reference_image();
    let image = item.join("image.zst");
    let got_len = std::fs::metadata(&image).unwrap().len();
    assert_eq!(
        (sha256_file(&image), got_len),
        (sha.clone(), *len),
        "{} differs from the image of an uninterrupted run (sha256, size)",
        image.display()
    );
}

/// Starts `acquire disk` of the setup's source in the background.
fn spawn(s: &Setup, item: &str, extra: &[&str]) -> Child {
    spawn_acquire(&s.src, &s.case, item, &s.sec, extra)
}

/// Asserts the run succeeded.
fn succeeded(o: &Output, what: &str) {
    let (rc, err) = code(o);
    assert_eq!(rc, 0, "{what} failed: {err}");
}

/// Asserts the run was refused: failed, and not with the exit code 3 of an item sealed
/// incomplete. Returns its stderr.
fn refused(o: &Output, what: &str) -> String {
    let (rc, err) = code(o);
    assert!(rc != 0 && rc != 3, "{what} ({rc}): {err}");
    err
}

/// Complete (newline-terminated) lines in the item's resume journal.
fn journal_lines(item: &Path) -> usize {
    std::fs::read(item.join("resume.journal"))
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

/// Waits until the journal has `lines` complete lines; fails if the child ends first.
fn wait_for_journal(child: &mut Child, item: &Path, lines: usize) {
    loop {
        if journal_lines(item) >= lines {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the acquisition ended ({status}) before its resume journal had {lines} lines \
                 ({} now): the source is too small or the machine too fast to stop it part way; \
                 make RANDOM_MIB larger",
                journal_lines(item)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// SIGKILL, as a power loss or a killed VM would stop it.
fn kill(mut child: Child) -> Output {
    child.kill().unwrap();
    child.wait_with_output().unwrap()
}

/// SIGINT, as Ctrl-C would stop it: the item is sealed incomplete (exit 3).
fn interrupted(child: Child) {
    let (rc, err) = code(&interrupt(child));
    assert_eq!(rc, 3, "{err}");
}

/// Every journaled frame ({c,d,x,b}) of the complete entry lines, in order.
fn journal_frames(item: &Path) -> Vec<Value> {
    let bytes = std::fs::read(item.join("resume.journal")).unwrap();
    bytes
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .skip(1)
        .flat_map(|l| {
            let v: Value = serde_json::from_slice(l).unwrap();
            v["frames"].as_array().unwrap().clone()
        })
        .collect()
}

/// Name → SHA-256 of every file in `dir` (recursively).
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().display().to_string(),
                sha256_file(&p),
            )
        })
        .collect()
}

/// The item verifies as complete.
fn assert_verified(item: &Path, public: &Path) {
    let (rc, r) = verify_json(item, public);
    assert_eq!(rc, 0, "{r}");
    assert_eq!(r["items"][0]["verdict"], "verified", "{r}");
}

/// `acquire disk --resume` of the setup's source to `item_name`.
fn resume(s: &Setup, item_name: &str) -> Output {
    acquire(&s.src, &s.case, item_name, &s.sec, &["--resume"])
}

/// Resumes `item` (no settings: they come from the journal) and checks it ends complete,
/// hashing to the source, with no journal or seal reserve left. Returns the manifest.
fn resume_to_complete(s: &Setup, item_name: &str) -> Value {
    succeeded(&resume(s, item_name), "resume");
    let item = s.case.join(item_name);
    let m = manifest(&item);
    assert_eq!(m["status"], "complete", "{m}");
    assert_eq!(m["hashes"]["sha256"], s.src_sha.as_str());
    assert_eq!(
        m["acquisition"]["bytes_acquired"],
        std::fs::metadata(&s.src).unwrap().len()
    );
    for left in ["resume.journal", "resume.journal.new", ".seal-reserve"] {
        assert!(
            !item.join(left).exists(),
            "{left} left in the complete item"
        );
    }
    m
}

/// [`resume_to_complete`] of an acquisition started with SLOW, whose settings the
/// resume takes from the journal.
fn resume_slow_to_complete(s: &Setup, item_name: &str) -> Value {
    let m = resume_to_complete(s, item_name);
    assert_eq!(
        m["acquisition"]["chunk_size_bytes"], MIB,
        "from the journal"
    );
    assert_eq!(m["acquisition"]["zstd_level"], 19, "from the journal");
    m
}

/// An item sealed incomplete: the SHA-256 of its manifest and the bytes it holds.
struct Sealed {
    manifest_sha: String,
    acquired: u64,
}

impl Sealed {
    /// The seal of `item`, which must be incomplete.
    fn of(item: &Path) -> Sealed {
        let m = manifest(item);
        assert_eq!(m["status"], "incomplete", "{m}");
        Sealed {
            manifest_sha: sha256_file(&item.join("manifest.json")),
            acquired: m["acquisition"]["bytes_acquired"].as_u64().unwrap(),
        }
    }

    /// Asserts `m` was resumed once, from this seal: it names the manifest it supersedes
    /// and went on from the last byte sealed (nothing written was read twice).
    fn assert_superseded_by(&self, m: &Value) {
        let resumes = m["acquisition"]["resumes"].as_array().unwrap();
        assert_eq!(resumes.len(), 1, "{m}");
        let r = &resumes[0];
        assert_eq!(
            r["superseded_manifest_sha256"],
            self.manifest_sha.as_str(),
            "{r}"
        );
        assert_eq!(r["resumed_at_byte"], self.acquired, "{r}");
    }
}

/// The resumed item is the uninterrupted run's image, and verifies as complete.
fn assert_resumed_image(s: &Setup, item: &Path) {
    assert_same_as_reference(item);
    assert_verified(item, &s.public);
}

#[test]
fn killed_acquisition_resumes_to_the_uninterrupted_image() {
    let (s, item, child) = start_slow(3);
    let o = kill(child);
    assert!(!o.status.success());
    assert!(item.join("image.zst").exists());
    assert!(item.join("resume.journal").exists());
    assert!(
        !item.join("manifest.json").exists(),
        "a killed run has no manifest"
    );
    let journaled = journal_frames(&item).len() as u64;
    assert!(journaled >= 4, "{journaled} frames journaled");

    let m = resume_slow_to_complete(&s, "disk");
    let resumes = m["acquisition"]["resumes"].as_array().unwrap();
    assert_eq!(resumes.len(), 1, "{m}");
    let r = &resumes[0];
    let verified = r["verified_chunks"].as_u64().unwrap();
    assert!(verified >= 2, "{r}");
    assert_eq!(verified, journaled, "every journaled frame was sound: {r}");
    assert_eq!(r["journaled_chunks"], journaled);
    assert_eq!(r["resumed_at_byte"], verified * MIB);
    assert!(r["discarded"].is_null(), "{r}");
    assert!(r["superseded_manifest_sha256"].is_null(), "{r}");
    assert_eq!(
        r["source_chunks_rechecked"],
        serde_json::json!([0, verified - 1])
    );
    assert!(r["resumed_utc"].as_str().is_some_and(|t| !t.is_empty()));

    assert_resumed_image(&s, &item);
    assert_eq!(sha256_file(&s.src), s.src_sha, "the source changed");
}

#[test]
fn ctrl_c_then_resume_supersedes_the_incomplete_seal() {
    let (s, item, child) = start_slow(2);
    interrupted(child);
    let sealed = Sealed::of(&item);
    let m = manifest(&item);
    let reason = m["incomplete_reason"].as_str().unwrap();
    assert!(
        reason.contains("resume with: vestige acquire disk") && reason.contains("--resume"),
        "{reason}"
    );
    assert!(item.join("resume.journal").exists());
    assert_verified_incomplete(&item, &s.public);

    let m = resume_slow_to_complete(&s, "disk");
    // Ctrl-C journals everything written, so nothing is read twice.
    sealed.assert_superseded_by(&m);

    // The custody log: the incomplete seal, then the complete one naming what it replaced.
    let old_manifest = &sealed.manifest_sha;
    let log = std::fs::read_to_string(s.case.join("custody.jsonl")).unwrap();
    let acquisitions: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["action"] == "acquire-disk")
        .collect();
    assert_eq!(acquisitions.len(), 2, "{log}");
    assert_eq!(
        acquisitions[0]["hashes"]["manifest.json sha256"],
        old_manifest.as_str()
    );
    assert_eq!(acquisitions[0]["details"]["status"], "incomplete");
    assert_eq!(acquisitions[1]["details"]["status"], "complete");
    assert!(
        acquisitions[1]["hashes"]
            .to_string()
            .contains(old_manifest.as_str()),
        "the resumed run's custody entry does not name the superseded manifest: {}",
        acquisitions[1]
    );
    assert_eq!(
        acquisitions[1]["hashes"]["manifest.json sha256"],
        sha256_file(&item.join("manifest.json")).as_str()
    );

    assert_resumed_image(&s, &item);
    // The whole case: item and custody chain.
    let v = out(vestige().arg("verify").arg(&s.case));
    assert_eq!(code(&v).0, 0, "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn resume_refuses_another_source_and_leaves_the_item_untouched() {
    let (s, item, child) = start_slow(2);
    interrupted(child);
    let kept = journal_frames(&item).len() as u64;
    assert!(kept >= 2, "{kept}");
    let before = snapshot(&item);
    let custody_before = sha256_file(&s.case.join("custody.jsonl"));
    let original = std::fs::read(&s.src).unwrap();

    // Resumes from a source of bytes `other` and returns the error.
    let resume_from = |name: &str, other: &[u8]| {
        let src = s.t.path().join(name);
        std::fs::write(&src, other).unwrap();
        let o = acquire(&src, &s.case, "disk", &s.sec, &["--resume"]);
        let err = refused(&o, &format!("resumed from {name}"));
        assert_eq!(snapshot(&item), before, "a refused resume changed the item");
        assert_eq!(sha256_file(&s.case.join("custody.jsonl")), custody_before);
        err
    };

    // Same size, one byte changed inside the first chunk.
    let mut other = original.clone();
    other[300_000] ^= 0x40;
    let err = resume_from("first.raw", &other);
    assert!(err.contains("chunk 0"), "{err}");

    // Same size, one byte changed inside the last kept chunk.
    let mut other = original.clone();
    let last = kept - 1;
    other[usize::try_from(last * MIB + 1234).unwrap()] ^= 0x40;
    let err = resume_from("last.raw", &other);
    assert!(err.contains(&format!("chunk {last}")), "{err}");

    // Another size: the same bytes and one more MiB.
    let mut other = original;
    other.resize(other.len() + (1 << 20), 0);
    let err = resume_from("bigger.raw", &other);
    assert!(err.contains("size"), "{err}");

    assert_eq!(sha256_file(&s.src), s.src_sha);
}

#[test]
fn damaged_chunk_in_the_kept_part_is_read_again() {
    let (s, item, child) = start_slow(4);
    kill(child);
    assert!(!item.join("manifest.json").exists());
    let frames = journal_frames(&item);
    assert!(frames.len() >= 6, "{}", frames.len());
    // One byte in the middle of frame 1 (frames are laid out in order from byte 0).
    let c = |i: usize| frames[i]["c"].as_u64().unwrap();
    let at = c(0) + c(1) / 2;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(item.join("image.zst"))
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x10;
        f.write_all_at(&b, at).unwrap();
    }

    let m = resume_slow_to_complete(&s, "disk");
    let r = &m["acquisition"]["resumes"][0];
    assert_eq!(r["journaled_chunks"], frames.len() as u64, "{r}");
    assert_eq!(r["verified_chunks"], 1, "{r}");
    assert_eq!(r["resumed_at_byte"], MIB, "{r}");
    assert_eq!(r["source_chunks_rechecked"], serde_json::json!([0]), "{r}");
    let discarded = r["discarded"].as_str().unwrap_or_else(|| panic!("{r}"));
    assert!(discarded.contains("chunk 1 "), "{discarded}");
    assert_resumed_image(&s, &item);
}

#[test]
fn torn_journal_tail_is_ignored() {
    let (s, item, child) = start_slow(3);
    kill(child);
    let journaled = journal_frames(&item).len() as u64;
    {
        use std::io::Write;
        let mut j = std::fs::OpenOptions::new()
            .append(true)
            .open(item.join("resume.journal"))
            .unwrap();
        j.write_all(br#"{"chunks":9999,"bytes_acquired":10485760,"image_bytes":10"#)
            .unwrap();
    }
    let m = resume_slow_to_complete(&s, "disk");
    let r = &m["acquisition"]["resumes"][0];
    assert_eq!(r["journaled_chunks"], journaled, "{r}");
    assert_eq!(r["verified_chunks"], journaled, "{r}");
    assert_resumed_image(&s, &item);
}

#[test]
fn resume_of_a_complete_or_missing_item_is_refused() {
    let s = setup_with(&source_bytes(3, 2, 7), None);
    let o = acquire(&s.src, &s.case, "done", &s.sec, &["--chunk-mib", "1"]);
    succeeded(&o, "acquisition");
    let item = s.case.join("done");
    assert!(!item.join("resume.journal").exists());
    let before = snapshot(&item);
    let log = s.case.join("custody.jsonl");
    let log_before = sha256_file(&log);

    let err = refused(&resume(&s, "done"), "resumed a complete item");
    assert!(err.contains("complete"), "{err}");
    assert_eq!(snapshot(&item), before);
    assert_eq!(sha256_file(&log), log_before);
    assert_verified(&item, &s.public);

    let err = refused(&resume(&s, "never"), "resumed a missing item");
    assert!(err.contains("no such item"), "{err}");
    assert!(!s.case.join("never").exists());
}

/// For the tests of a full evidence medium (root only: they mount a tmpfs): a 48 MiB
/// pseudo-random source and a case on a 24 MiB tmpfs. `None` when not root.
fn small_medium() -> Option<Setup> {
    root().then(|| setup_with(&source_bytes(48, 0, 0xf011), Some(24)))
}

/// Acquires the source onto a medium too small for it (--skip-space-check): the item ends
/// incomplete, sealed, with the missing range and how to resume named. Returns the seal.
fn fill_up(s: &Setup) -> Sealed {
    let item = s.case.join("disk");
    let size = std::fs::metadata(&s.src).unwrap().len();
    let o = acquire(&s.src, &s.case, "disk", &s.sec, &["--skip-space-check"]);
    let (rc, err) = code(&o);
    assert_eq!(rc, 3, "{err}");
    let sealed = Sealed::of(&item);
    let acquired = sealed.acquired;
    assert!(acquired > 0 && acquired < size, "{acquired}");
    let man = manifest(&item);
    let reason = man["incomplete_reason"].as_str().unwrap();
    assert!(
        reason.contains("missing")
            && reason.contains("No space left on device")
            && reason.contains(&format!("{acquired}..{size}"))
            && reason.contains("--resume"),
        "{reason}"
    );
    assert!(item.join("SHA256.sig").exists());
    assert_verified_incomplete(&item, &s.public);
    sealed
}

#[test]
fn evidence_medium_full_midway_then_resumed() {
    let Some(s) = small_medium() else {
        return;
    };
    let item = s.case.join("disk");

    // Checked before anything is created.
    let o = acquire(&s.src, &s.case, "disk", &s.sec, &[]);
    let err = refused(&o, "started on a medium too small");
    assert!(
        err.contains("needed") && err.contains("bytes free"),
        "{err}"
    );
    assert!(
        !item.exists(),
        "a refused acquisition left {}",
        item.display()
    );

    // Forced: the medium fills up, the item is sealed incomplete from the reserve.
    let sealed = fill_up(&s);

    // A larger medium (the same one grown): resume finishes it.
    let medium = &s.mounted.as_ref().unwrap().0;
    ok(Command::new("mount")
        .args(["-o", "remount,size=128m"])
        .arg(medium));
    let m = resume_to_complete(&s, "disk");
    sealed.assert_superseded_by(&m);
    assert_verified(&item, &s.public);

    // The same image as an uninterrupted run elsewhere with the same settings.
    let elsewhere = new_case(s.t.path(), "elsewhere");
    succeeded(
        &acquire(&s.src, &elsewhere, "ref", &s.sec, &[]),
        "acquisition elsewhere",
    );
    assert_eq!(
        sha256_file(&item.join("image.zst")),
        sha256_file(&elsewhere.join("ref/image.zst")),
        "the resumed image differs from an uninterrupted run's"
    );
}

/// A resume refused because the medium is still too small must leave the incomplete item
/// as it was: sealed, verifiable, resumable later.
#[test]
fn resume_refused_for_space_leaves_the_item_sealed() {
    let Some(s) = small_medium() else {
        return;
    };
    let item = s.case.join("disk");
    fill_up(&s);
    let before = snapshot(&item);
    let err = refused(&resume(&s, "disk"), "resumed on a full medium");
    assert!(err.contains("needed"), "{err}");
    assert_eq!(snapshot(&item), before, "a refused resume changed the item");
    assert_verified_incomplete(&item, &s.public);
}

/// `--format e01`: an acquisition stopped by Ctrl-C is sealed without an E01 (it would
/// claim a whole disk), and the resume that completes it writes one that libewf verifies,
/// with the source's MD5 (forced on by --format e01 and kept in the journal).
#[test]
fn an_e01_acquisition_gets_its_e01_when_the_resume_completes_it() {
    if !have("ewfverify") {
        return;
    }
    let s = setup();
    let item = s.case.join("disk");
    let mut child = spawn(&s, "disk", &[SLOW, &["--format", "e01"]].concat());
    wait_for_journal(&mut child, &item, 2);
    let o = interrupt(child);
    let (rc, err) = code(&o);
    assert_eq!(rc, 3, "{err}");
    assert!(err.contains("no E01 was written"), "{err}");
    assert!(!item.join("image.E01").exists());

    let o = acquire(
        &s.src,
        &s.case,
        "disk",
        &s.sec,
        &["--resume", "--format", "e01"],
    );
    succeeded(&o, "resume with --format e01");
    let m = manifest(&item);
    assert_eq!(m["status"], "complete", "{m}");
    let md5 = m["hashes"]["md5"]
        .as_str()
        .expect("MD5 computed for the E01")
        .to_string();
    let v = Command::new("ewfverify")
        .arg("-q")
        .arg(item.join("image.E01"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success() && text.contains(&md5), "{text}");
    assert_verified(&item, &s.public);
}
