//! `berth-runc spec`: the default bundle config.json, byte for byte what `runc spec` (1.1.5) writes, and its `--rootless` variant.
//!
//! The document is a typed struct whose field order is the runtime-spec Go
//! structs' order, so the file written matches runc's output exactly (Go's
//! `json.MarshalIndent(spec, "", "\t")`: tab indentation, no trailing
//! newline). `default_spec` returns the same document as a `serde_json::Value`
//! for callers that want to inspect or edit it.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

/// The file `spec` writes inside the bundle.
const CONFIG_FILE: &str = "config.json";

/// runc's message (verbatim) when the bundle already has a config.json.
const EXISTS_MESSAGE: &str = "File config.json exists. Remove it first";

/// The capabilities runc gives a container by default, in every set but inheritable.
const DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    oci_version: &'static str,
    process: Process,
    root: Root,
    hostname: &'static str,
    mounts: Vec<Mount>,
    linux: Linux,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Process {
    terminal: bool,
    user: User,
    args: Vec<&'static str>,
    env: Vec<&'static str>,
    cwd: &'static str,
    capabilities: Capabilities,
    rlimits: Vec<Rlimit>,
    no_new_privileges: bool,
}

#[derive(Serialize)]
struct User {
    uid: u32,
    gid: u32,
}

#[derive(Serialize)]
struct Capabilities {
    bounding: &'static [&'static str],
    effective: &'static [&'static str],
    permitted: &'static [&'static str],
    ambient: &'static [&'static str],
}

#[derive(Serialize)]
struct Rlimit {
    #[serde(rename = "type")]
    kind: &'static str,
    hard: u64,
    soft: u64,
}

#[derive(Serialize)]
struct Root {
    path: &'static str,
    readonly: bool,
}

#[derive(Serialize)]
struct Mount {
    destination: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    options: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Linux {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    uid_mappings: Vec<IdMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gid_mappings: Vec<IdMapping>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources>,
    namespaces: Vec<Namespace>,
    masked_paths: Vec<&'static str>,
    readonly_paths: Vec<&'static str>,
}

#[derive(Serialize)]
struct IdMapping {
    #[serde(rename = "containerID")]
    container_id: u32,
    #[serde(rename = "hostID")]
    host_id: u32,
    size: u32,
}

#[derive(Serialize)]
struct Resources {
    devices: Vec<DeviceRule>,
}

#[derive(Serialize)]
struct DeviceRule {
    allow: bool,
    access: &'static str,
}

#[derive(Serialize)]
struct Namespace {
    #[serde(rename = "type")]
    kind: &'static str,
}

fn mount(
    destination: &'static str,
    kind: &'static str,
    source: &'static str,
    options: &[&'static str],
) -> Mount {
    Mount {
        destination,
        kind,
        source,
        options: options.to_vec(),
    }
}

/// runc's `specconv.Example()`, then `specconv.ToRootless()` when `rootless`
/// holds the host (euid, egid) to map to root in the container.
fn runc_spec(rootless: Option<(u32, u32)>) -> Spec {
    let mut spec = Spec {
        oci_version: "1.0.2-dev",
        process: Process {
            terminal: true,
            user: User { uid: 0, gid: 0 },
            args: vec!["sh"],
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            cwd: "/",
            capabilities: Capabilities {
                bounding: DEFAULT_CAPS,
                effective: DEFAULT_CAPS,
                permitted: DEFAULT_CAPS,
                ambient: DEFAULT_CAPS,
            },
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE",
                hard: 1024,
                soft: 1024,
            }],
            no_new_privileges: true,
        },
        root: Root {
            path: "rootfs",
            readonly: true,
        },
        hostname: "runc",
        mounts: vec![
            mount("/proc", "proc", "proc", &[]),
            mount(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
            mount(
                "/dev/pts",
                "devpts",
                "devpts",
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            ),
            mount(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            ),
            mount(
                "/dev/mqueue",
                "mqueue",
                "mqueue",
                &["nosuid", "noexec", "nodev"],
            ),
            mount(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", "ro"],
            ),
            mount(
                "/sys/fs/cgroup",
                "cgroup",
                "cgroup",
                &["nosuid", "noexec", "nodev", "relatime", "ro"],
            ),
        ],
        linux: Linux {
            uid_mappings: Vec::new(),
            gid_mappings: Vec::new(),
            resources: Some(Resources {
                devices: vec![DeviceRule {
                    allow: false,
                    access: "rwm",
                }],
            }),
            namespaces: ["pid", "network", "ipc", "uts", "mount"]
                .into_iter()
                .map(|kind| Namespace { kind })
                .collect(),
            masked_paths: vec![
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            readonly_paths: vec![
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    };
    if let Some((uid, gid)) = rootless {
        to_rootless(&mut spec, uid, gid);
    }
    spec
}

/// runc's `specconv.ToRootless`: no network namespace, a user namespace that
/// maps the caller to root, /sys bind-mounted instead of a new sysfs, no
/// uid=/gid= mount options, no cgroup resources.
fn to_rootless(spec: &mut Spec, uid: u32, gid: u32) {
    spec.linux
        .namespaces
        .retain(|ns| ns.kind != "network" && ns.kind != "user");
    spec.linux.namespaces.push(Namespace { kind: "user" });
    let map = |host_id| IdMapping {
        container_id: 0,
        host_id,
        size: 1,
    };
    spec.linux.uid_mappings = vec![map(uid)];
    spec.linux.gid_mappings = vec![map(gid)];
    for m in &mut spec.mounts {
        if m.destination == "/sys" {
            *m = mount(
                "/sys",
                "none",
                "/sys",
                &["rbind", "nosuid", "noexec", "nodev", "ro"],
            );
        } else {
            m.options
                .retain(|o| !o.starts_with("gid=") && !o.starts_with("uid="));
        }
    }
    spec.linux.resources = None;
}

fn caller_ids(rootless: bool) -> Option<(u32, u32)> {
    rootless.then(|| {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    })
}

/// runc's text: tab-indented, `": "` after keys, no trailing newline.
///
/// Go also escapes `<`, `>` and `&` as `\u003c`…; the default spec has none.
fn render(spec: &Spec) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(3 * 1024);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    spec.serialize(&mut ser)
        .map_err(|e| format!("serialize default spec: {e}"))?;
    Ok(out)
}

/// The config.json `runc spec` writes (`runc spec --rootless` when
/// `rootless`, mapping the caller's effective uid and gid to root), for
/// callers that inspect or edit it; `spec` itself writes with [`write_spec`].
#[cfg_attr(not(test), allow(dead_code))]
pub fn default_spec(rootless: bool) -> Value {
    // A struct of strings, numbers and lists always converts to a Value.
    serde_json::to_value(runc_spec(caller_ids(rootless)))
        .expect("the default spec is plain data and always converts to json")
}

/// Writes the default spec to `bundle/config.json` exactly as runc does.
///
/// Refuses, with runc's message, when the file already exists (even as a
/// dangling symlink), and leaves nothing behind when writing fails.
pub fn write_spec(bundle: &Path, rootless: bool) -> Result<(), String> {
    let text = render(&runc_spec(caller_ids(rootless)))?;
    let path = bundle.join(CONFIG_FILE);
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(EXISTS_MESSAGE.to_string()),
        Err(e) => return Err(format!("create {}: {e}", path.display())),
    };
    if let Err(e) = file.write_all(&text).and_then(|()| file.flush()) {
        drop(file);
        // Best effort: the write error is what the caller needs to see.
        let _ = fs::remove_file(&path);
        return Err(format!("write {}: {e}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const RUNC_SPEC: &str = include_str!("../testdata/runc-1.1.5-spec.json");
    const RUNC_SPEC_ROOTLESS_UID0: &str =
        include_str!("../testdata/runc-1.1.5-spec-rootless-uid0.json");

    fn text(spec: &Spec) -> String {
        String::from_utf8(render(spec).unwrap()).unwrap()
    }

    #[test]
    fn renders_runc_spec_byte_for_byte() {
        assert_eq!(text(&runc_spec(None)), RUNC_SPEC);
    }

    #[test]
    fn renders_runc_rootless_spec_byte_for_byte() {
        assert_eq!(text(&runc_spec(Some((0, 0)))), RUNC_SPEC_ROOTLESS_UID0);
    }

    #[test]
    fn default_spec_value_matches_runc() {
        let expected: Value = serde_json::from_str(RUNC_SPEC).unwrap();
        assert_eq!(default_spec(false), expected);
    }

    #[test]
    fn rootless_maps_the_callers_effective_ids() {
        let spec = default_spec(true);
        let euid = u64::from(nix::unistd::geteuid().as_raw());
        let egid = u64::from(nix::unistd::getegid().as_raw());
        assert_eq!(spec["linux"]["uidMappings"][0]["hostID"], euid);
        assert_eq!(spec["linux"]["uidMappings"][0]["containerID"], 0);
        assert_eq!(spec["linux"]["uidMappings"][0]["size"], 1);
        assert_eq!(spec["linux"]["gidMappings"][0]["hostID"], egid);
        let namespaces: Vec<&str> = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ns| ns["type"].as_str().unwrap())
            .collect();
        assert_eq!(namespaces, ["pid", "ipc", "uts", "mount", "user"]);
        assert!(spec["linux"].get("resources").is_none());
    }

    #[test]
    fn write_spec_writes_runc_text() {
        let dir = tempfile::tempdir().unwrap();
        write_spec(dir.path(), false).unwrap();
        let written = fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert_eq!(written, RUNC_SPEC);
    }

    #[test]
    fn write_spec_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, "{}").unwrap();
        let err = write_spec(dir.path(), false).unwrap_err();
        assert_eq!(err, "File config.json exists. Remove it first");
        assert_eq!(fs::read_to_string(&path).unwrap(), "{}");
    }

    #[test]
    fn write_spec_refuses_a_dangling_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).unwrap();
        let err = write_spec(dir.path(), false).unwrap_err();
        assert_eq!(err, "File config.json exists. Remove it first");
        assert!(!dir.path().join("elsewhere").exists());
    }

    #[test]
    fn write_spec_names_a_missing_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("missing");
        let err = write_spec(&bundle, false).unwrap_err();
        assert!(err.starts_with("create "), "{err}");
        assert!(err.contains("missing/config.json"), "{err}");
    }

    /// Against the installed runc when it is a 1.1 release, whose output the
    /// fixtures pin (later releases write a newer ociVersion).
    #[test]
    fn matches_installed_runc_1_1() {
        let version = Command::new("runc").arg("--version").output();
        match version {
            Ok(out) if String::from_utf8_lossy(&out.stdout).starts_with("runc version 1.1.") => {}
            _ => return,
        }
        for rootless in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut cmd = Command::new("runc");
            cmd.arg("spec").arg("--bundle").arg(dir.path());
            if rootless {
                cmd.arg("--rootless");
            }
            match cmd.output() {
                Ok(out) if out.status.success() => {}
                _ => return,
            }
            let theirs = fs::read_to_string(dir.path().join("config.json")).unwrap();
            let ours = text(&runc_spec(caller_ids(rootless)));
            assert_eq!(ours, theirs, "rootless={rootless}");
        }
    }
}
