//! Checks the integration-test helpers themselves: the bundles they build and the berth-runc command they prepare. No container is run, so no root is needed.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};
use support::{unique_id, Bundle, Runc, BUSYBOX};

#[test]
fn busybox_bundle_has_a_runnable_rootfs() {
    let bundle = Bundle::busybox(&["echo", "hi"]);
    let rootfs = bundle.rootfs();

    let busybox = fs::symlink_metadata(rootfs.join("bin/busybox")).unwrap();
    assert!(
        busybox.is_file(),
        "bin/busybox must be the binary, not a link"
    );
    assert_eq!(busybox.len(), fs::metadata(BUSYBOX).unwrap().len());
    assert_eq!(busybox.permissions().mode() & 0o777, 0o755);

    for applet in ["sh", "true", "echo", "id", "hostname", "sleep", "cat"] {
        let link = rootfs.join("bin").join(applet);
        assert_eq!(
            fs::read_link(&link).unwrap().to_str(),
            Some("busybox"),
            "{applet}"
        );
    }

    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    assert!(passwd.contains("\nnobody:x:65534:65534:"), "{passwd}");
    let group = fs::read_to_string(rootfs.join("etc/group")).unwrap();
    assert!(group.contains("root:x:0:") && group.contains("nobody:x:65534:"));

    for dir in ["proc", "sys", "dev"] {
        let path = rootfs.join(dir);
        assert!(path.is_dir(), "{dir}");
        assert_eq!(fs::read_dir(&path).unwrap().count(), 0, "{dir} is empty");
    }
    let tmp = fs::metadata(rootfs.join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
}

#[test]
fn busybox_bundle_config_is_runc_spec_with_args() {
    let bundle = Bundle::busybox(&["/bin/true"]);
    let config = bundle.config();
    assert_eq!(config["process"]["args"], json!(["/bin/true"]));
    assert_eq!(config["process"]["terminal"], json!(false));

    let mut runc: Value =
        serde_json::from_str(include_str!("../testdata/runc-1.1.5-spec.json")).unwrap();
    runc["process"]["args"] = json!(["/bin/true"]);
    runc["process"]["terminal"] = json!(false);
    assert_eq!(config, runc);
}

#[test]
fn bundles_are_independent_copies() {
    let a = Bundle::busybox(&["sh"]);
    let b = Bundle::busybox(&["sh"]);
    assert_ne!(a.path(), b.path());
    fs::write(a.rootfs().join("tmp/marker"), "a").unwrap();
    assert!(!b.rootfs().join("tmp/marker").exists());
    assert!(!support::busybox_rootfs().join("tmp/marker").exists());
}

#[test]
fn config_mut_edits_config_json() {
    let bundle = Bundle::busybox(&["sh"]);
    bundle.config_mut(|c| c["hostname"] = json!("box"));
    assert_eq!(bundle.config()["hostname"], "box");
    assert_eq!(bundle.config()["process"]["args"], json!(["sh"]));
}

#[test]
fn unique_ids_differ() {
    let a = unique_id("t");
    let b = unique_id("t");
    assert_ne!(a, b);
    assert!(a.starts_with("t-"));
}

#[test]
fn runc_commands_carry_their_own_root() {
    let runc = Runc::new();
    let cmd = runc.cmd(["state", "x"]);
    let args: Vec<_> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(args[0], "--root");
    assert_eq!(args[1], runc.root().to_string_lossy());
    assert_eq!(&args[2..], ["state", "x"]);
    assert!(runc.root().is_dir());
    assert!(runc.containers().is_empty());
}
