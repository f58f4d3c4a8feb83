//! Two containers from one image through berth-engine's API: the image's layers are unpacked
//! once and shared read-only (same lower dir, same inode of /bin/busybox in both mounts), and
//! a write in one container is not seen in the other nor in the layer.
//!
//! Needs root (mounts) and /usr/bin/busybox (busybox-static); skips with a message otherwise.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_engine::{create_bundle, RunOptions};
use berth_image::images::ImageStore;
use berth_image::snapshot::{Kind, Snapshotter};
use berth_image::Reference;

#[test]
fn containers_share_lower_dirs() {
    if !is_root() {
        eprintln!("skipping shared layers test: needs root");
        return;
    }
    if !Path::new(berth_image::bootstrap::BUSYBOX).is_file() {
        eprintln!("skipping shared layers test: /usr/bin/busybox missing (busybox-static)");
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("berth-engine-test-")
        .tempdir_in("/var/tmp")
        .expect("state root");
    let images = ImageStore::open(root.path()).expect("image store");
    let snapshots = Snapshotter::open(&root.path().join("snapshots"), None).expect("snapshotter");
    let reference = Reference::parse("busybox:latest").expect("reference");
    berth_image::bootstrap::busybox(&images, &reference, &root.path().join("tmp"), None)
        .expect("bootstrap busybox");

    let opts = RunOptions {
        cmd: vec!["true".into()],
        ..Default::default()
    };
    let dir_a = root.path().join("a");
    let dir_b = root.path().join("b");
    let mut a = create_bundle(&images, &snapshots, "busybox", &opts, &dir_a).expect("bundle a");
    let mut b = create_bundle(&images, &snapshots, "busybox", &opts, &dir_b).expect("bundle b");
    assert_ne!(a.id(), b.id());

    // The layer was unpacked once: one committed snapshot, two active ones.
    let record = images.resolve("busybox").expect("resolve");
    let chain = record.chain_ids();
    let committed: Vec<_> = snapshots
        .list()
        .expect("list")
        .into_iter()
        .filter(|s| s.kind == berth_image::snapshot::SnapshotKind::Committed)
        .map(|s| s.key)
        .collect();
    assert_eq!(committed, vec![chain[0].to_string()]);

    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(dir_a.join("config.json")).expect("config.json"))
            .expect("config json");
    assert_eq!(config["process"]["args"], serde_json::json!(["true"]));
    assert_eq!(config["root"]["path"], "rootfs");

    let in_a = fs::metadata(a.rootfs().join("bin/busybox")).expect("busybox in a");
    let in_b = fs::metadata(b.rootfs().join("bin/busybox")).expect("busybox in b");
    if snapshots.kind() == Kind::Overlay {
        let lowers_a = snapshots.lower_dirs(a.id()).expect("lower dirs a");
        let lowers_b = snapshots.lower_dirs(b.id()).expect("lower dirs b");
        assert_eq!(
            lowers_a, lowers_b,
            "both containers stack the same layer dirs"
        );
        let lower = fs::metadata(lowers_a[0].join("bin/busybox")).expect("busybox in the layer");
        // overlayfs reports a lower file's own inode number when all layers are on one fs.
        assert_eq!(in_a.ino(), lower.ino(), "a sees the layer's inode");
        assert_eq!(in_b.ino(), lower.ino(), "b sees the layer's inode");
    } else {
        eprintln!("snapshotter fell back to copies: inode sharing not checked");
    }

    // A write in one container is seen neither in the other nor in the layer.
    fs::write(a.rootfs().join("etc/only-in-a"), "a").expect("write in a");
    fs::write(a.rootfs().join("etc/passwd"), "changed\n").expect("modify in a");
    assert!(!b.rootfs().join("etc/only-in-a").exists());
    assert_ne!(
        fs::read_to_string(b.rootfs().join("etc/passwd")).unwrap_or_default(),
        "changed\n"
    );
    for lower in snapshots.lower_dirs(b.id()).unwrap_or_default() {
        assert!(!lower.join("etc/only-in-a").exists());
    }

    // Cleanup unmounts and removes each active snapshot; the layer stays for the next one.
    a.cleanup().expect("cleanup a");
    b.cleanup().expect("cleanup b");
    assert!(!is_mount_point(&dir_a.join("rootfs")));
    let keys: Vec<_> = snapshots
        .list()
        .expect("list")
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert_eq!(keys, vec![chain[0].to_string()]);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn is_mount_point(p: &Path) -> bool {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = p.to_string_lossy();
    text.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}
