use super::*;
use std::process::{Command, Stdio};

/// One parsed header: (name, mode, nlink, mtime, filesize, rdevmajor, rdevminor, ino, data).
#[derive(Debug)]
struct Parsed {
    name: String,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    rdev: (u32, u32),
    data: Vec<u8>,
}

/// A strict reader of what we write: checks magic, alignment and padding bytes.
fn parse(archive: &[u8]) -> Vec<Parsed> {
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        assert_eq!(at % 4, 0, "header at {at} not 4-aligned");
        assert_eq!(&archive[at..at + 6], MAGIC, "magic at {at}");
        let f = |i: usize| {
            let s = std::str::from_utf8(&archive[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
            u32::from_str_radix(s, 16).unwrap()
        };
        let (ino, mode, uid, gid, nlink, mtime, size) = (f(0), f(1), f(2), f(3), f(4), f(5), f(6));
        assert_eq!((uid, gid, f(7), f(8), f(12)), (0, 0, 0, 0, 0));
        let namesize = f(11) as usize;
        let name_start = at + HEADER_LEN;
        let name = &archive[name_start..name_start + namesize];
        assert_eq!(name.last(), Some(&0), "name NUL-terminated");
        let name = String::from_utf8(name[..namesize - 1].to_vec()).unwrap();
        let data_start = (name_start + namesize).next_multiple_of(4);
        assert!(archive[name_start + namesize..data_start]
            .iter()
            .all(|&b| b == 0));
        let data_end = data_start + size as usize;
        let next = data_end.next_multiple_of(4);
        assert!(archive[data_end..next].iter().all(|&b| b == 0));
        let entry = Parsed {
            name,
            ino,
            mode,
            nlink,
            mtime,
            rdev: (f(9), f(10)),
            data: archive[data_start..data_end].to_vec(),
        };
        at = next;
        if entry.name == TRAILER {
            assert_eq!(at, archive.len(), "bytes after the trailer");
            out.push(entry);
            return out;
        }
        out.push(entry);
    }
}

fn sample() -> Tree {
    let mut t = Tree::new();
    t.add_file("init", 0o755, b"#!init".to_vec()).unwrap();
    t.add_file("etc/empty", 0o644, Vec::new()).unwrap();
    t.add_file("etc/one", 0o600, b"1".to_vec()).unwrap();
    t.add_file("etc/four", 0o644, b"four".to_vec()).unwrap();
    t.add_dir("tmp", 0o1777).unwrap();
    t.add_symlink("sbin", "bin").unwrap();
    t.add_symlink("lib64", "/lib/x86_64-linux-gnu").unwrap();
    t.add_file("bin/vestige", 0o755, vec![0xAB; 4097]).unwrap();
    t.add_char_device("dev/console", 0o600, 5, 1).unwrap();
    // Names around the separator: '-' (0x2d) and '.' (0x2e) sort before '/' (0x2f).
    t.add_file("a/x", 0o644, b"x".to_vec()).unwrap();
    t.add_file("a-b", 0o644, b"y".to_vec()).unwrap();
    t.add_file("a.b/z", 0o644, b"z".to_vec()).unwrap();
    t
}

fn bytes(t: &Tree, mtime: u64) -> Vec<u8> {
    let mut v = Vec::new();
    let n = t.write(&mut v, mtime).unwrap();
    assert_eq!(n, v.len() as u64);
    v
}

#[test]
fn golden_single_file() {
    let mut t = Tree::new();
    t.add_file("ab", 0o644, b"xyz".to_vec()).unwrap();
    let v = bytes(&t, 0x5F5E_1000);
    let expected = [
        "070701", "00000001", // ino
        "000081A4", // S_IFREG | 0644
        "00000000", "00000000", "00000001", // nlink
        "5F5E1000", // mtime
        "00000003", // filesize
        "00000000", "00000000", "00000000", "00000000", "00000003", // namesize "ab\0"
        "00000000",
    ]
    .concat();
    assert_eq!(&v[..HEADER_LEN], expected.as_bytes());
    // 110 + 3 = 113 → padded to 116; data 3 → padded to 4.
    assert_eq!(&v[HEADER_LEN..116], b"ab\0\0\0\0");
    assert_eq!(&v[116..120], b"xyz\0");
    let trailer = &v[120..];
    assert_eq!(trailer.len(), (HEADER_LEN + 11).next_multiple_of(4));
    assert!(trailer[HEADER_LEN..].starts_with(b"TRAILER!!!\0"));
}

#[test]
fn sorted_sequential_inodes_fixed_mtime_and_padding() {
    let v = bytes(&sample(), 1_700_000_000);
    let entries = parse(&v);
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names[..names.len() - 1].to_vec();
    sorted.sort_unstable();
    assert_eq!(&names[..names.len() - 1], &sorted[..]);
    assert_eq!(names.last(), Some(&TRAILER));
    // Parents come before children even with '-' and '.' around the separator.
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("a") < pos("a/x") && pos("a.b") < pos("a.b/z") && pos("etc") < pos("etc/one"));
    for (i, e) in entries[..entries.len() - 1].iter().enumerate() {
        assert_eq!(e.ino as usize, i + 1, "{}", e.name);
        assert_eq!(e.mtime, 1_700_000_000, "{}", e.name);
        let expected_nlink = if e.mode & 0o170_000 == S_IFDIR { 2 } else { 1 };
        assert_eq!(e.nlink, expected_nlink, "{}", e.name);
    }
    let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
    assert_eq!(get("tmp").mode, S_IFDIR | 0o1777);
    assert_eq!(get("bin").mode, S_IFDIR | 0o755, "implicit parent");
    assert_eq!(get("sbin").mode, S_IFLNK | 0o777);
    assert_eq!(get("sbin").data, b"bin");
    assert_eq!(get("dev/console").mode, S_IFCHR | 0o600);
    assert_eq!(get("dev/console").rdev, (5, 1));
    assert_eq!(get("etc/empty").data, b"");
    assert_eq!(get("bin/vestige").data.len(), 4097);
}

#[test]
fn output_does_not_depend_on_insertion_order() {
    let mut a = Tree::new();
    let mut b = Tree::new();
    let items = [("z/1", "1"), ("a/2", "22"), ("m", "333"), ("a/1/x", "4444")];
    for (n, d) in items {
        a.add_file(n, 0o644, d.as_bytes().to_vec()).unwrap();
    }
    for (n, d) in items.iter().rev() {
        b.add_file(n, 0o644, d.as_bytes().to_vec()).unwrap();
    }
    assert_eq!(bytes(&a, 7), bytes(&b, 7));
    assert_ne!(bytes(&a, 7), bytes(&a, 8));
}

#[test]
fn hostile_names_are_refused() {
    let mut t = Tree::new();
    for name in [
        "",
        "/etc/passwd",
        "../escape",
        "a/../../b",
        "a/./b",
        "a//b",
        "a/",
        "nul\0byte",
        TRAILER,
    ] {
        let err = t.add_file(name, 0o644, Vec::new()).unwrap_err();
        assert!(matches!(err, Error::BadName { .. }), "{name:?}: {err}");
    }
    t.add_file("f", 0o644, Vec::new()).unwrap();
    assert!(matches!(
        t.add_file("f", 0o644, Vec::new()),
        Err(Error::Duplicate { .. })
    ));
    assert!(matches!(
        t.add_file("f/child", 0o644, Vec::new()),
        Err(Error::ParentNotDirectory { .. })
    ));
    assert!(matches!(
        t.add_file("g", 0o100_644, Vec::new()),
        Err(Error::BadMode {
            mode: 0o100_644,
            ..
        })
    ));
    assert!(matches!(
        t.add_dir("f", 0o755),
        Err(Error::Duplicate { .. })
    ));
    assert!(matches!(t.add_symlink("l", ""), Err(Error::BadName { .. })));
    // Adding an existing directory again only changes its mode.
    t.add_dir("d/e", 0o755).unwrap();
    t.add_dir("d", 0o700).unwrap();
    assert_eq!(t.len(), 3); // f, d, d/e
}

#[test]
fn mtime_beyond_32_bits_is_an_error_naming_the_field() {
    let mut t = Tree::new();
    t.add_file("f", 0o644, Vec::new()).unwrap();
    let err = t.write(Vec::new(), 1 << 32).unwrap_err();
    assert!(
        matches!(err, Error::FieldTooLarge { field: "mtime", value, .. } if value == 1 << 32),
        "{err}"
    );
}

#[test]
fn host_file_is_copied_byte_for_byte_and_a_changed_size_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("m.ko");
    let content: Vec<u8> = (0..10_007u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&host, &content).unwrap();
    let mut t = Tree::new();
    t.add_host_file("lib/m.ko", 0o644, &host).unwrap();
    let entries = parse(&bytes(&t, 0));
    assert_eq!(
        entries.iter().find(|e| e.name == "lib/m.ko").unwrap().data,
        content
    );

    std::fs::write(&host, &content[..10]).unwrap();
    let err = t.write(Vec::new(), 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeChanged {
                expected: 10_007,
                found: 10,
                ..
            }
        ),
        "{err}"
    );
    std::fs::write(&host, [content.as_slice(), b"more"].concat()).unwrap();
    let err = t.write(Vec::new(), 0).unwrap_err();
    assert!(matches!(
        err,
        Error::SizeChanged {
            expected: 10_007,
            found: 10_008,
            ..
        }
    ));
}

fn have_cpio() -> bool {
    let ok = Command::new("cpio")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("VESTIGE_REQUIRE_TOOLS").is_none(),
            "cpio is required (apt-get install cpio)"
        );
        eprintln!("skipping: cpio not installed");
    }
    ok
}

fn run_cpio(args: &[&str], dir: &Path, archive: &[u8]) -> (String, String) {
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "cpio {args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// A long path: 16 components of 200 bytes (3,215 bytes with separators, under PATH_MAX).
fn long_path() -> String {
    (0..16)
        .map(|i| {
            format!("{i:x}")
                .repeat(200)
                .chars()
                .take(200)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn gnu_cpio_lists_what_we_wrote() {
    if !have_cpio() {
        return;
    }
    let mut t = sample();
    t.add_file(&long_path(), 0o644, b"deep".to_vec()).unwrap();
    t.add_file("sp ace/ünï cödé", 0o644, b"u".to_vec()).unwrap();
    let v = bytes(&t, 1_600_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (stdout, stderr) = run_cpio(&["-i", "-t", "--quiet"], dir.path(), &v);
    let listed: Vec<&str> = stdout.lines().collect();
    let ours: Vec<String> = parse(&v).into_iter().map(|e| e.name).collect();
    assert_eq!(listed, ours[..ours.len() - 1].to_vec(), "stderr: {stderr}");
}

#[test]
fn gnu_cpio_extracts_what_we_wrote() {
    if !have_cpio() {
        return;
    }
    let mut t = Tree::new();
    t.add_file("init", 0o755, b"#!init\n".to_vec()).unwrap();
    t.add_file("etc/empty", 0o644, Vec::new()).unwrap();
    t.add_file("etc/three", 0o640, b"abc".to_vec()).unwrap();
    t.add_dir("tmp", 0o1777).unwrap();
    t.add_dir("proc", 0o555).unwrap();
    t.add_symlink("bin/sh", "vestige").unwrap();
    t.add_file("bin/vestige", 0o755, vec![0x5A; 65_537])
        .unwrap();
    t.add_file(&long_path(), 0o600, b"deep".to_vec()).unwrap();
    let v = bytes(&t, 1_600_000_000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    run_cpio(
        &["-i", "-d", "-m", "--no-absolute-filenames", "--quiet"],
        &root,
        &v,
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(std::fs::read(root.join("init")).unwrap(), b"#!init\n");
    assert_eq!(meta("init").permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta("init").mtime(), 1_600_000_000);
    assert_eq!(meta("etc/empty").len(), 0);
    assert_eq!(std::fs::read(root.join("etc/three")).unwrap(), b"abc");
    assert_eq!(meta("etc/three").permissions().mode() & 0o7777, 0o640);
    assert!(meta("tmp").is_dir());
    assert!(meta("bin/sh").file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("vestige")
    );
    assert_eq!(
        std::fs::read(root.join("bin/vestige")).unwrap(),
        vec![0x5A; 65_537]
    );
    assert_eq!(std::fs::read(root.join(long_path())).unwrap(), b"deep");
    // GNU cpio applies directory modes after extracting their contents.
    assert_eq!(meta("tmp").permissions().mode() & 0o7777, 0o1777);
}
