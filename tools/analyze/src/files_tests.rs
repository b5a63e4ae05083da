#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::test_support::{ext4_of, put, with_ext4};

#[test]
fn paths_resolve_through_links_inside_the_image_only() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    put(r, "etc/hostname", b"suspect\n");
    put(r, "usr/share/zoneinfo/Europe/Berlin", b"TZif");
    std::os::unix::fs::symlink(
        "../usr/share/zoneinfo/Europe/Berlin",
        r.join("etc/localtime"),
    )
    .unwrap();
    // An absolute link must restart at the image's root, never the host's.
    std::os::unix::fs::symlink("/etc/hostname", r.join("abs")).unwrap();
    std::os::unix::fs::symlink("loop-b", r.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", r.join("loop-b")).unwrap();
    let Some(img) = ext4_of(r, 8) else { return };
    with_ext4(&img, |files| {
        let f = files.read(b"/etc/hostname", 1024).unwrap().unwrap();
        assert_eq!(f.bytes, b"suspect\n");
        assert!(!f.truncated);
        assert_eq!(f.evidence.path.as_deref(), Some("/etc/hostname"));
        assert_eq!(
            files.read(b"/abs", 1024).unwrap().unwrap().bytes,
            b"suspect\n"
        );
        assert_eq!(
            files.read(b"etc/localtime", 2).unwrap().unwrap().bytes,
            b"TZ"
        );
        assert!(files.read(b"etc/localtime", 2).unwrap().unwrap().truncated);
        assert_eq!(
            files.read_link(b"/etc/localtime").unwrap().unwrap(),
            b"../usr/share/zoneinfo/Europe/Berlin"
        );
        assert!(files.read_link(b"/etc/hostname").unwrap().is_none());
        assert!(files.read(b"/etc/missing", 10).unwrap().is_none());
        assert!(files.read(b"/etc/hostname/x", 10).unwrap().is_none());
        assert!(files.read(b"/etc", 10).unwrap().is_none());
        assert!(files.resolve(b"/loop-a").is_err());
        let names: Vec<Vec<u8>> = files
            .list(b"/etc")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(names.contains(&b"hostname".to_vec()));
        assert!(files.list(b"/nowhere").unwrap().is_empty());
    });
}
