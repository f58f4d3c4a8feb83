//! `berth-runc features`: the runtime-spec features document (the shape `runc features` prints) saying what this runtime supports.
//!
//! Capabilities and the seccomp vocabulary come from berth-runtime, which
//! owns them; the lists here are the ones this crate decides (spec versions,
//! hooks, mount options, namespaces) and the features Berth does not have.

use serde_json::{json, Map, Value};

/// Oldest runtime-spec version whose config.json berth-runc accepts.
const OCI_VERSION_MIN: &str = "1.0.0";
/// Newest runtime-spec version berth-runc implements.
const OCI_VERSION_MAX: &str = "1.2.0";

/// The runtime-spec 1.2 hooks, in the order they run.
const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Mount options accepted in config.json mounts: runc's set (mount(2) flags,
/// their recursive `r` forms, propagation, `tmpcopyup`), sorted.
const MOUNT_OPTIONS: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// Namespaces a container can have (runtime-spec names).
const NAMESPACES: &[&str] = &[
    "cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time",
];

/// Owned strings from any list of string-likes (static slices or vectors).
fn strings<I>(items: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    items.into_iter().map(|s| s.as_ref().to_string()).collect()
}

fn annotations() -> Map<String, Value> {
    let mut annotations = Map::new();
    annotations.insert(
        "org.berth.version".to_string(),
        Value::from(env!("CARGO_PKG_VERSION")),
    );
    // Absent when the linked libseccomp cannot say (it always can from 2.3.3).
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        annotations.insert(
            "io.github.seccomp.libseccomp.version".to_string(),
            Value::from(format!("{}.{}.{}", v.major, v.minor, v.micro)),
        );
    }
    annotations
}

/// The features document `berth-runc features` prints.
pub fn features() -> Value {
    use berth_runtime::{capabilities, seccomp};

    let flags = strings(seccomp::supported_flags());
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": strings(capabilities::known_names()),
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
            },
            "seccomp": {
                "enabled": true,
                "actions": strings(seccomp::supported_actions()),
                "operators": strings(seccomp::supported_operators()),
                "archs": strings(seccomp::supported_archs()),
                "knownFlags": flags.clone(),
                "supportedFlags": flags,
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } },
        },
        "annotations": annotations(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNC_FEATURES: &str = include_str!("../testdata/runc-1.1.5-features.json");

    fn string_list(v: &Value) -> Vec<&str> {
        v.as_array()
            .unwrap_or_else(|| panic!("not a list: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")))
            .collect()
    }

    #[test]
    fn has_every_key_runc_prints() {
        let runc: Value = serde_json::from_str(RUNC_FEATURES).unwrap();
        let ours = features();
        for key in runc.as_object().unwrap().keys() {
            assert!(ours.get(key).is_some(), "missing {key}");
        }
        for (key, value) in runc["linux"].as_object().unwrap() {
            let mine = &ours["linux"][key];
            assert!(!mine.is_null(), "missing linux.{key}");
            if let Some(fields) = value.as_object() {
                for field in fields.keys() {
                    assert!(mine.get(field).is_some(), "missing linux.{key}.{field}");
                }
            }
        }
    }

    #[test]
    fn versions_hooks_and_mount_options() {
        let f = features();
        assert_eq!(f["ociVersionMin"], "1.0.0");
        assert_eq!(f["ociVersionMax"], "1.2.0");
        assert_eq!(
            string_list(&f["hooks"]),
            [
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop"
            ]
        );
        let runc: Value = serde_json::from_str(RUNC_FEATURES).unwrap();
        assert_eq!(f["mountOptions"], runc["mountOptions"]);
    }

    #[test]
    fn namespaces_include_time() {
        let f = features();
        assert_eq!(
            string_list(&f["linux"]["namespaces"]),
            ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"]
        );
    }

    #[test]
    fn capabilities_are_cap_names() {
        let f = features();
        let caps = string_list(&f["linux"]["capabilities"]);
        assert!(caps.contains(&"CAP_SYS_ADMIN"), "{caps:?}");
        assert!(caps.iter().all(|c| c.starts_with("CAP_")), "{caps:?}");
    }

    #[test]
    fn cgroup_and_security_modules() {
        let f = features();
        let linux = &f["linux"];
        assert_eq!(
            linux["cgroup"],
            json!({"v1": true, "v2": true, "systemd": false, "systemdUser": false})
        );
        assert_eq!(linux["apparmor"], json!({"enabled": false}));
        assert_eq!(linux["selinux"], json!({"enabled": false}));
        assert_eq!(linux["intelRdt"], json!({"enabled": false}));
        assert_eq!(
            linux["mountExtensions"],
            json!({"idmap": {"enabled": false}})
        );
    }

    #[test]
    fn seccomp_lists_are_scmp_names() {
        let f = features();
        let seccomp = &f["linux"]["seccomp"];
        assert_eq!(seccomp["enabled"], true);
        for (key, prefix) in [
            ("actions", "SCMP_ACT_"),
            ("operators", "SCMP_CMP_"),
            ("archs", "SCMP_ARCH_"),
        ] {
            let list = string_list(&seccomp[key]);
            assert!(!list.is_empty(), "seccomp.{key} is empty");
            assert!(
                list.iter().all(|s| s.starts_with(prefix)),
                "seccomp.{key}: {list:?}"
            );
        }
        assert!(string_list(&seccomp["actions"]).contains(&"SCMP_ACT_ALLOW"));
        assert_eq!(seccomp["knownFlags"], seccomp["supportedFlags"]);
        let flags = string_list(&seccomp["supportedFlags"]);
        assert!(
            flags.iter().all(|s| s.starts_with("SECCOMP_FILTER_FLAG_")),
            "{flags:?}"
        );
    }

    #[test]
    fn annotations_name_versions() {
        let f = features();
        let annotations = &f["annotations"];
        assert_eq!(annotations["org.berth.version"], env!("CARGO_PKG_VERSION"));
        let libseccomp = annotations["io.github.seccomp.libseccomp.version"]
            .as_str()
            .unwrap();
        assert_eq!(libseccomp.split('.').count(), 3, "{libseccomp}");
    }
}
