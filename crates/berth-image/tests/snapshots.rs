//! Snapshotter end to end: layers committed, containers prepared and mounted, lower dirs shared, writes kept apart, concurrent commits (mounting needs root).

use std::error::Error;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use berth_image::layer::{self, UnpackOptions};
use berth_image::snapshot::{self, Kind, SnapshotError, SnapshotKind, Snapshotter};
use tar::{EntryType, Header};

type Res = Result<(), Box<dyn Error>>;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: snapshot mount tests need root");
    }
    root
}

/// Unmounts its target when dropped, so a failing test leaves no mount behind.
struct Mounted(PathBuf);

impl Mounted {
    fn new(mounts: &[snapshot::Mount], target: &Path) -> Result<Self, SnapshotError> {
        snapshot::mount_all(mounts, target)?;
        Ok(Mounted(target.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = snapshot::unmount(&self.0) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// A tar of (path, content) entries: a path ending in '/' is a directory, `.wh.*` names are
/// whiteouts; `bin/tool` is setuid and gets a hard link `bin/tool-link`.
fn tar(entries: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = Header::new_gnu();
        if let Some(dir) = path.strip_suffix('/') {
            h.set_entry_type(EntryType::Directory);
            h.set_path(dir)?;
            h.set_mode(0o755);
            h.set_size(0);
        } else {
            h.set_entry_type(EntryType::Regular);
            h.set_path(path)?;
            h.set_mode(if path.ends_with("tool") {
                0o4755
            } else {
                0o644
            });
            h.set_size(data.len() as u64);
        }
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append(&h, *data)?;
    }
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Link);
    h.set_path("bin/tool-link")?;
    h.set_link_name("bin/tool")?;
    h.set_size(0);
    h.set_cksum();
    if entries.iter().any(|(p, _)| *p == "bin/tool") {
        b.append(&h, io::empty())?;
    }
    b.into_inner()
}

const L1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const L2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// Commit a layer from a tar the way the image code does: unpack into commit's directory.
fn commit_layer(
    s: &Snapshotter,
    key: &str,
    parent: Option<&str>,
    tar: &[u8],
) -> Result<(), SnapshotError> {
    let opts = UnpackOptions {
        whiteouts: s.whiteout_mode(),
        ..UnpackOptions::default()
    };
    s.commit(key, parent, |dir| {
        layer::unpack(tar, dir, &opts).map(|_| ())
    })
}

/// Two layers (the second deletes a file of the first and adds one), two containers on top,
/// both mounted: the merged view, isolation of writes, then removal.
fn two_containers(kind: Kind) -> Res {
    let root = tempfile::tempdir()?;
    let mnt = tempfile::tempdir()?;
    let s = Snapshotter::open(root.path(), Some(kind))?;
    assert_eq!(s.kind(), kind);

    let l1 = tar(&[
        ("etc/", b""),
        ("etc/hello", b"hello\n"),
        ("etc/gone", b"bye\n"),
        ("bin/", b""),
        ("bin/tool", b"#!/bin/true\n"),
    ])?;
    let l2 = tar(&[("etc/.wh.gone", b""), ("etc/new", b"new\n")])?;
    commit_layer(&s, L1, None, &l1)?;
    commit_layer(&s, L2, Some(L1), &l2)?;
    assert!(s.committed(L1) && s.committed(L2));
    // Committing again is a no-op that does not call fill.
    s.commit(L2, Some(L1), |_| {
        Err::<(), _>("fill called for a committed key")
    })?;

    let m1 = s.prepare("c1", Some(L2))?;
    let m2 = s.prepare("c2", Some(L2))?;
    assert!(matches!(
        s.prepare("c1", Some(L2)),
        Err(SnapshotError::AlreadyExists { .. })
    ));
    assert_eq!(s.mounts("c1")?, m1);
    assert!(!s.committed("c1"));
    let (t1, t2) = (mnt.path().join("c1"), mnt.path().join("c2"));
    fs::create_dir(&t1)?;
    fs::create_dir(&t2)?;
    let g1 = Mounted::new(&m1, &t1)?;
    let g2 = Mounted::new(&m2, &t2)?;

    for t in [&t1, &t2] {
        assert_eq!(fs::read(t.join("etc/hello"))?, b"hello\n");
        assert_eq!(fs::read(t.join("etc/new"))?, b"new\n");
        assert!(
            fs::symlink_metadata(t.join("etc/gone")).is_err(),
            "whiteout not applied"
        );
        let tool = fs::metadata(t.join("bin/tool"))?;
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(tool.ino(), fs::metadata(t.join("bin/tool-link"))?.ino());
    }

    let lowers = s.lower_dirs("c1")?;
    assert_eq!(lowers, s.lower_dirs("c2")?);
    assert_eq!(lowers, s.lower_dirs(L2)?);
    assert_eq!(lowers.len(), 2);
    if kind == Kind::Overlay {
        assert!(matches!(m1[0].typ.as_str(), "overlay"));
        // Both containers read the same file of the same lower dir: the layer is not copied.
        let lower = fs::metadata(lowers[1].join("etc/hello"))?;
        let (a, b) = (
            fs::metadata(t1.join("etc/hello"))?,
            fs::metadata(t2.join("etc/hello"))?,
        );
        assert_eq!(a.ino(), lower.ino(), "c1 does not see the lower file");
        assert_eq!(b.ino(), lower.ino(), "c2 does not see the lower file");
        assert!(lowers[0].starts_with(s.root()) && lowers[1].starts_with(s.root()));
    }

    // A write in one is not seen in the other, nor in the layers.
    fs::write(t1.join("etc/hello"), b"changed\n")?;
    fs::write(t1.join("only-c1"), b"c1\n")?;
    fs::remove_file(t1.join("etc/new"))?;
    assert_eq!(fs::read(t2.join("etc/hello"))?, b"hello\n");
    assert!(!t2.join("only-c1").exists());
    assert_eq!(fs::read(t2.join("etc/new"))?, b"new\n");
    if kind == Kind::Overlay {
        assert_eq!(fs::read(lowers[1].join("etc/hello"))?, b"hello\n");
        assert_eq!(fs::read(lowers[0].join("etc/new"))?, b"new\n");
    }
    assert!(s.usage("c1")? > 0);

    let list = s.list()?;
    let keys: Vec<(&str, SnapshotKind)> = list.iter().map(|i| (i.key.as_str(), i.kind)).collect();
    assert_eq!(
        keys,
        vec![
            ("c1", SnapshotKind::Active),
            ("c2", SnapshotKind::Active),
            (L1, SnapshotKind::Committed),
            (L2, SnapshotKind::Committed),
        ]
    );

    // A committed snapshot mounts read-only: overlay of its lower dirs, or a read-only bind.
    for (key, typ) in [
        (
            L2,
            if kind == Kind::Overlay {
                "overlay"
            } else {
                "bind"
            },
        ),
        (L1, "bind"),
    ] {
        let view = s.mounts(key)?;
        assert_eq!(view[0].typ, typ, "{key}");
        let t = mnt.path().join("view");
        fs::create_dir_all(&t)?;
        let _g = Mounted::new(&view, &t)?;
        assert_eq!(fs::read(t.join("etc/hello"))?, b"hello\n");
        assert_eq!(t.join("etc/new").exists(), key == L2);
        let err = fs::write(t.join("etc/hello"), b"x")
            .err()
            .and_then(|e| e.raw_os_error());
        assert_eq!(err, Some(libc::EROFS), "{key} is writable");
    }

    drop(g1);
    drop(g2);
    assert!(
        matches!(s.remove(L2), Err(SnapshotError::HasChild { ref child, .. }) if child == "c1" || child == "c2")
    );
    s.remove("c1")?;
    s.remove("c2")?;
    let err = s.remove(L1);
    assert!(matches!(err, Err(SnapshotError::HasChild { ref child, .. }) if child == L2));
    assert!(err
        .map_err(|e| e.to_string())
        .err()
        .is_some_and(|m| m.contains(L2)));
    s.remove(L2)?;
    s.remove(L1)?;
    assert!(s.list()?.is_empty());
    assert_eq!(fs::read_dir(s.root().join("snapshots"))?.count(), 0);
    Ok(())
}

#[test]
fn overlay_containers_share_lower_dirs() -> Res {
    if !is_root() {
        return Ok(());
    }
    two_containers(Kind::Overlay)
}

#[test]
fn copy_containers_are_isolated() -> Res {
    if !is_root() {
        return Ok(());
    }
    two_containers(Kind::Copy)
}

#[test]
fn probe_finds_overlay() -> Res {
    if !is_root() {
        return Ok(());
    }
    let root = tempfile::tempdir()?;
    let s = Snapshotter::open(root.path(), None)?;
    assert_eq!(s.kind(), Kind::Overlay);
    // The probe leaves nothing mounted or behind.
    assert_eq!(fs::read_dir(s.root().join("tmp"))?.count(), 0);
    Ok(())
}

#[test]
fn failed_fill_leaves_nothing() -> Res {
    if !is_root() {
        return Ok(());
    }
    let root = tempfile::tempdir()?;
    let s = Snapshotter::open(root.path(), Some(Kind::Overlay))?;
    let mut bad = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Link);
    h.set_path("shadow")?;
    h.set_link_name("/etc/shadow")?;
    h.set_size(0);
    h.set_cksum();
    bad.append(&h, io::empty())?;
    let bad = bad.into_inner()?;
    let err = commit_layer(&s, L1, None, &bad);
    assert!(
        matches!(err, Err(SnapshotError::Fill { ref key, ref message }) if key == L1 && message.contains("shadow")),
        "{err:?}"
    );
    assert!(!s.committed(L1));
    assert!(s.list()?.is_empty());
    assert_eq!(fs::read_dir(s.root().join("snapshots"))?.count(), 0);
    assert_eq!(fs::read_dir(s.root().join("tmp"))?.count(), 0);
    Ok(())
}

/// Many layers: the lowerdir option outgrows a page and is mounted with `lowerdir+`.
#[test]
fn long_chains_mount() -> Res {
    if !is_root() {
        return Ok(());
    }
    let root = tempfile::tempdir()?;
    let mnt = tempfile::tempdir()?;
    let s = Snapshotter::open(root.path(), Some(Kind::Overlay))?;
    let mut parent: Option<String> = None;
    for i in 0..150 {
        let key = format!("sha256:{i:064x}");
        s.commit(&key, parent.as_deref(), |d| {
            fs::write(d.join(format!("f{i}")), i.to_string())
        })?;
        parent = Some(key);
    }
    let mounts = s.prepare("c", parent.as_deref())?;
    let data: usize = mounts[0].options.iter().map(|o| o.len() + 1).sum();
    assert!(
        data > 4096,
        "the test needs a lowerdir longer than a page ({data})"
    );
    let _g = Mounted::new(&mounts, mnt.path())?;
    for i in [0, 75, 149] {
        assert_eq!(
            fs::read_to_string(mnt.path().join(format!("f{i}")))?,
            i.to_string()
        );
    }
    Ok(())
}

fn concurrent_commit(kind: Kind) -> Res {
    let root = tempfile::tempdir()?;
    let s = Arc::new(Snapshotter::open(root.path(), Some(kind))?);
    let barrier = Arc::new(Barrier::new(2));
    let layer = Arc::new(tar(&[("etc/", b""), ("etc/hello", b"hello\n")])?);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (s, barrier, layer) = (s.clone(), barrier.clone(), layer.clone());
            std::thread::spawn(move || {
                let opts = UnpackOptions {
                    whiteouts: s.whiteout_mode(),
                    ..UnpackOptions::default()
                };
                s.commit(L1, None, |dir| {
                    // Both threads are filling before either publishes.
                    barrier.wait();
                    layer::unpack(&layer[..], dir, &opts).map(|_| ())
                })
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "commit thread panicked")??;
    }
    assert!(s.committed(L1));
    let list = s.list()?;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].key, L1);
    assert_eq!(
        fs::read_dir(s.root().join("snapshots"))?.count(),
        1,
        "the loser's snapshot was kept"
    );
    assert_eq!(fs::read_dir(s.root().join("tmp"))?.count(), 0);
    let dirs = s.lower_dirs(L1)?;
    assert_eq!(fs::read(dirs[0].join("etc/hello"))?, b"hello\n");
    Ok(())
}

#[test]
fn concurrent_commits_leave_one_snapshot() -> Res {
    if !is_root() {
        return Ok(());
    }
    concurrent_commit(Kind::Overlay)?;
    concurrent_commit(Kind::Copy)
}
