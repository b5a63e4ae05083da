//! Tests of [`super`]: hostile names, planted and swapped symlinks, refusal to overwrite.

use super::{
    is_safe_component, original_name, safe_component, EntryKind, OutDirError, SafeOutDir,
    NAME_MAX_BYTES, SHORTENED_MARK,
};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

/// The invariants every component must hold, as the fuzz target checks them.
fn assert_safe(component: &str) {
    assert!(
        is_safe_component(component),
        "unsafe component {component:?}"
    );
}

fn hostile_names() -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = [
        &b"../../etc/passwd"[..],
        b"/abs",
        b"a/b",
        b"a\\b",
        b"..",
        b".",
        b"...",
        b"",
        b"\x1b]0;pwn\x07",
        b"\x1b[2J\x1b[H",
        b"nul\x00byte",
        b"\x00",
        b"\xff\xfe\xc3\x28",
        b"caf\xc3\xa9",
        b"-rf",
        b"--help",
        b"a-b",
        b"\\x2e",
        b"\\(empty)",
        b"\\#",
        b" ",
        b"\n",
    ]
    .iter()
    .map(|n| n.to_vec())
    .collect();
    // Every single byte, and the special names' look-alikes.
    names.extend((0..=255u8).map(|b| vec![b]));
    names.extend((0..=255u8).map(|b| vec![b'.', b]));
    // Long names: all printable, all escaped, around the limit, sharing long prefixes.
    for len in [250, 254, 255, 256, 300, 1000, 4096] {
        names.push(vec![b'a'; len]);
        names.push(vec![0xff; len]);
    }
    for last in 0..=255u8 {
        let mut n = vec![b'a'; 255];
        n.push(last);
        names.push(n);
        let mut n = vec![0x1b; 300];
        n.push(last);
        names.push(n);
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn safe_component_keeps_plain_names() {
    for name in [
        "report.html",
        "a b.txt",
        "Makefile",
        "x.tar.gz",
        ".bashrc",
        "...",
    ] {
        assert_eq!(safe_component(name.as_bytes()), name);
    }
}

/// Asserts each name gives its component.
fn assert_components(cases: &[(&[u8], &str)]) {
    for &(name, component) in cases {
        assert_eq!(safe_component(name), component, "{name:?}");
    }
}

#[test]
fn safe_component_escapes_separators_and_traversal() {
    assert_components(&[
        (b"../../etc/passwd", "..\\x2f..\\x2fetc\\x2fpasswd"),
        (b"/abs", "\\x2fabs"),
        (b"a/b", "a\\x2fb"),
        (b"a\\b", "a\\x5cb"),
    ]);
}

#[test]
fn safe_component_maps_special_names_to_escaped_forms() {
    assert_components(&[
        (b".", "\\x2e"),
        (b"..", "\\x2e\\x2e"),
        (b"", "\\(empty)"),
        (b"-rf", "\\x2drf"),
        (b"a-b", "a-b"),
    ]);
}

#[test]
fn safe_component_escapes_terminal_sequences_nul_and_invalid_utf8() {
    assert_components(&[
        (b"\x1b]0;pwn\x07", "\\x1b]0;pwn\\x07"),
        (b"nul\x00byte", "nul\\x00byte"),
        (b"\xff\xfe\xc3\x28", "\\xff\\xfe\\xc3("),
        (b"caf\xc3\xa9", "caf\\xc3\\xa9"),
    ]);
}

#[test]
fn safe_component_shortens_long_names_with_a_hash() {
    // 255 bytes fit, 256 do not.
    let fits = vec![b'a'; 255];
    assert_eq!(safe_component(&fits).as_bytes(), &fits[..]);
    let long = safe_component(&[b'a'; 300]);
    assert_eq!(long.len(), NAME_MAX_BYTES);
    assert_eq!(long.get(..221), Some("a".repeat(221).as_str()));
    assert_eq!(long.get(221..223), Some(SHORTENED_MARK));
    assert!(long
        .get(223..)
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit())));
    // Escapes are never cut: 55 whole `\xff` escapes, then the suffix.
    let escaped = safe_component(&[0xff; 300]);
    assert_eq!(escaped.get(..220), Some("\\xff".repeat(55).as_str()));
    assert_eq!(escaped.get(220..222), Some(SHORTENED_MARK));
    assert_eq!(escaped.len(), 254);
    assert_safe(&long);
    assert_safe(&escaped);
}

#[test]
fn long_names_sharing_a_255_byte_prefix_stay_distinct() {
    let mut one = vec![b'p'; 255];
    one.push(b'1');
    let mut two = vec![b'p'; 255];
    two.push(b'2');
    let (a, b) = (safe_component(&one), safe_component(&two));
    assert_ne!(a, b);
    assert_eq!(a.get(..221), b.get(..221));
    // Deterministic: the same name always gives the same component.
    assert_eq!(a, safe_component(&one));
}

#[test]
fn safe_component_is_safe_and_injective_on_hostile_names() {
    let names = hostile_names();
    let mut seen: HashMap<String, &[u8]> = HashMap::new();
    for name in &names {
        let component = safe_component(name);
        assert_safe(&component);
        if let Some(back) = original_name(&component) {
            assert_eq!(&back, name, "{component:?} does not decode to its name");
        }
        if let Some(other) = seen.insert(component.clone(), name) {
            panic!("{other:?} and {name:?} both give {component:?}");
        }
    }
    assert_eq!(seen.len(), names.len());
}

#[test]
fn safe_component_is_injective_on_all_two_byte_names() {
    let mut seen = std::collections::HashSet::new();
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            let component = safe_component(&[a, b]);
            assert_safe(&component);
            assert!(seen.insert(component), "collision at {a:#x} {b:#x}");
        }
    }
}

/// A temporary root holding `out/` (the output directory) and `outside/` (what an attacker
/// would like to write to).
fn sandbox() -> (tempfile::TempDir, SafeOutDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::create_dir(tmp.path().join("outside")).expect("outside");
    let out = SafeOutDir::open_or_create(&tmp.path().join("out")).expect("open out");
    (tmp, out)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn create_file_nests_inside_the_output_directory() {
    let (tmp, out) = sandbox();
    let mut created = out.create_file(&[&b"etc"[..], b"passwd"]).expect("create");
    created.file.write_all(b"data").expect("write");
    assert_eq!(created.relative_path, "etc/passwd");
    assert_eq!(
        fs::read(tmp.path().join("out/etc/passwd")).expect("read"),
        b"data"
    );
    // Never executable, whatever the umask.
    let mode = fs::metadata(tmp.path().join("out/etc/passwd"))
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0, "mode {mode:o}");
    // The directory is reused for a sibling.
    let sibling = out.create_file(&["etc", "shadow"]).expect("sibling");
    assert_eq!(sibling.relative_path, "etc/shadow");
    assert_eq!(out.create_dir(&["etc"]).expect("dir again"), "etc");
}

#[test]
fn traversal_names_stay_inside_the_output_directory() {
    let (tmp, out) = sandbox();
    let created = out
        .create_file(&[&b".."[..], b"..", b"outside", b"passwd"])
        .expect("create");
    assert_eq!(
        created.relative_path,
        "\\x2e\\x2e/\\x2e\\x2e/outside/passwd"
    );
    let created = out.create_file(&[&b"../../outside/x"[..]]).expect("create");
    assert_eq!(created.relative_path, "..\\x2f..\\x2foutside\\x2fx");
    let created = out.create_file(&[&b"/abs"[..], b"."]).expect("create");
    assert_eq!(created.relative_path, "\\x2fabs/\\x2e");
    let created = out
        .create_file(&[&b""[..], b"\x1b]0;pwn\x07", b"\xff\x00"])
        .expect("create");
    assert_eq!(
        created.relative_path,
        "\\(empty)/\\x1b]0;pwn\\x07/\\xff\\x00"
    );
    assert!(tmp
        .path()
        .join("out")
        .join(&created.relative_path)
        .is_file());
    // Nothing appeared anywhere but in out/.
    assert_eq!(entries(tmp.path()), ["out", "outside"]);
    assert!(entries(&tmp.path().join("outside")).is_empty());
}

#[test]
fn planted_symlink_file_is_not_followed() {
    let (tmp, out) = sandbox();
    let target = tmp.path().join("outside/target");
    fs::write(&target, b"original").expect("target");
    symlink(&target, tmp.path().join("out/evil")).expect("symlink");
    // A dangling symlink must not be followed to create its target either.
    let absent = tmp.path().join("outside/absent");
    symlink(&absent, tmp.path().join("out/dangling")).expect("symlink");

    for name in ["evil", "dangling"] {
        let err = out.create_file(&[name]).expect_err("symlink followed");
        assert!(
            matches!(
                &err,
                OutDirError::AlreadyExists { path, found: EntryKind::Symlink }
                    if path.ends_with(format!("out/{name}"))
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
    assert_eq!(fs::read(&target).expect("read"), b"original");
    assert!(!absent.exists() && absent.symlink_metadata().is_err());
}

#[test]
fn symlinked_intermediate_directory_is_refused() {
    let (tmp, out) = sandbox();
    symlink(tmp.path().join("outside"), tmp.path().join("out/sub")).expect("symlink");
    let err = out
        .create_file(&["sub", "x"])
        .expect_err("symlinked directory followed");
    assert!(
        matches!(
            &err,
            OutDirError::NotADirectory { path, found: EntryKind::Symlink }
                if *path == tmp.path().join("out/sub")
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("out/sub") && message.contains("expected a directory"),
        "{message}"
    );
    assert!(out.create_dir(&["sub", "deeper"]).is_err());
    assert!(entries(&tmp.path().join("outside")).is_empty());
}

#[test]
fn directory_swapped_for_a_symlink_during_the_run_is_refused() {
    let (tmp, out) = sandbox();
    out.create_file(&["sub", "first"]).expect("first");
    // The attacker (or a racing process) replaces out/sub by a symlink.
    fs::rename(tmp.path().join("out/sub"), tmp.path().join("moved")).expect("rename");
    symlink(tmp.path().join("outside"), tmp.path().join("out/sub")).expect("symlink");
    let err = out.create_file(&["sub", "second"]).expect_err("followed");
    assert!(
        matches!(
            err,
            OutDirError::NotADirectory {
                found: EntryKind::Symlink,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(entries(&tmp.path().join("outside")).is_empty());
}

#[test]
fn output_directory_swapped_for_a_symlink_after_open_is_not_followed() {
    let (tmp, out) = sandbox();
    fs::rename(tmp.path().join("out"), tmp.path().join("moved")).expect("rename");
    symlink(tmp.path().join("outside"), tmp.path().join("out")).expect("symlink");
    let created = out.create_file(&["f"]).expect("create");
    assert_eq!(created.relative_path, "f");
    // The file went into the directory that was opened, wherever it is now.
    assert!(tmp.path().join("moved/f").is_file());
    assert!(entries(&tmp.path().join("outside")).is_empty());
}

#[test]
fn existing_file_is_never_overwritten() {
    let (tmp, out) = sandbox();
    let mut first = out.create_file(&["a"]).expect("first");
    first.file.write_all(b"first").expect("write");
    let err = out.create_file(&["a"]).expect_err("overwritten");
    assert!(
        matches!(
            &err,
            OutDirError::AlreadyExists { found: EntryKind::RegularFile, path }
                if *path == tmp.path().join("out/a")
        ),
        "{err:?}"
    );
    assert_eq!(fs::read(tmp.path().join("out/a")).expect("read"), b"first");
    // A directory in the file's place, and a file in a directory's place.
    out.create_dir(&["d"]).expect("dir");
    assert!(matches!(
        out.create_file(&["d"]),
        Err(OutDirError::AlreadyExists {
            found: EntryKind::Directory,
            ..
        })
    ));
    assert!(matches!(
        out.create_file(&["a", "b"]),
        Err(OutDirError::NotADirectory {
            found: EntryKind::RegularFile,
            ..
        })
    ));
}

#[test]
fn output_directory_must_be_a_real_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let real = tmp.path().join("real");
    fs::create_dir(&real).expect("real");
    let link = tmp.path().join("link");
    symlink(&real, &link).expect("symlink");
    let err = SafeOutDir::open(&link).expect_err("symlink opened");
    assert!(matches!(&err, OutDirError::OpenDir { path, .. } if *path == link));
    assert!(SafeOutDir::open_or_create(&link).is_err());
    assert!(SafeOutDir::open(&tmp.path().join("missing")).is_err());
    let file = tmp.path().join("file");
    fs::write(&file, b"").expect("file");
    assert!(SafeOutDir::open(&file).is_err());
    let out = SafeOutDir::open(&real).expect("real dir");
    assert_eq!(out.path(), real);
    assert!(matches!(
        out.create_file::<&str>(&[]),
        Err(OutDirError::NoComponents { .. })
    ));
}
