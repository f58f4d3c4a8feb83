//! Loading and checking an OCI config.json, and turning its resources into cgroup settings.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Spec};

use crate::error::{Result, RuntimeError};

/// Reads and parses `bundle/config.json`, naming the failing field on a parse error.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|source| RuntimeError::ReadConfig {
        path: path.clone(),
        source,
    })?;
    parse(&data).map_err(|msg| RuntimeError::InvalidConfig { path, msg })
}

/// Parses config.json bytes; the error names the JSON path of the offending field.
pub fn parse(data: &[u8]) -> std::result::Result<Spec, String> {
    // The plain parser is the fast path; only a failure pays for tracking the field path.
    if let Ok(spec) = serde_json::from_slice(data) {
        return Ok(spec);
    }
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })
}

fn field(field: &str, msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Field {
        field: field.to_string(),
        msg: msg.into(),
    }
}

/// The rootfs path of a spec, made absolute against the bundle.
pub fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| field("root", "must be set"))?;
    let p = root.path();
    if p.as_os_str().is_empty() {
        return Err(field("root.path", "must not be empty"));
    }
    Ok(if p.is_absolute() {
        p.clone()
    } else {
        bundle.join(p)
    })
}

/// Checks everything `create` relies on before anything is made on the host.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<()> {
    let rootfs = rootfs(spec, bundle)?;
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(field(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ))
        }
        Err(e) => return Err(field("root.path", format!("{}: {e}", rootfs.display()))),
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| field("process", "must be set"))?;
    validate_process(process)?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| field("linux", "must be set"))?;
    let mut seen = HashSet::new();
    let mut has_user = false;
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(field(
                &format!("linux.namespaces[{i}]"),
                format!("duplicate namespace type {}", ns.typ()),
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(field(
                    &format!("linux.namespaces[{i}].path"),
                    format!("{} is not absolute", p.display()),
                ));
            }
            if let Err(e) = std::fs::metadata(p) {
                return Err(field(
                    &format!("linux.namespaces[{i}].path"),
                    format!("{}: {e}", p.display()),
                ));
            }
        }
        if ns.typ() == LinuxNamespaceType::User {
            has_user = true;
        }
    }
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    let user_is_new = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if user_is_new && !has_maps {
        return Err(field(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    if has_maps && !has_user {
        return Err(field(
            "linux.uidMappings",
            "mappings are set but there is no user namespace",
        ));
    }
    if let Some(hn) = spec.hostname() {
        if !hn.is_empty() && !seen.contains(&LinuxNamespaceType::Uts) {
            return Err(field(
                "hostname",
                "setting a hostname needs a uts namespace",
            ));
        }
    }
    for (k, _) in linux.sysctl().iter().flatten() {
        if k.contains('/') && k.contains("..") || k.is_empty() {
            return Err(field("linux.sysctl", format!("invalid key {k:?}")));
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(field(
                &format!("mounts[{i}].destination"),
                format!("{} is not absolute", m.destination().display()),
            ));
        }
    }
    if let Some(seccomp) = linux.seccomp() {
        crate::seccomp::validate(seccomp)?;
    }
    if let Some(res) = linux.resources() {
        resources(res)?;
    }
    if let Some(hooks) = spec.hooks() {
        let all = [
            ("hooks.prestart", hooks.prestart()),
            ("hooks.createRuntime", hooks.create_runtime()),
            ("hooks.createContainer", hooks.create_container()),
            ("hooks.startContainer", hooks.start_container()),
            ("hooks.poststart", hooks.poststart()),
            ("hooks.poststop", hooks.poststop()),
        ];
        for (name, list) in all {
            for (i, h) in list.iter().flatten().enumerate() {
                if !h.path().is_absolute() {
                    return Err(field(
                        &format!("{name}[{i}].path"),
                        format!("{} is not absolute", h.path().display()),
                    ));
                }
                if let Some(t) = h.timeout() {
                    if t <= 0 {
                        return Err(field(&format!("{name}[{i}].timeout"), "must be positive"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Checks the process section (shared by create and exec).
pub fn validate_process(process: &oci_spec::runtime::Process) -> Result<()> {
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(field("process.args", "must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(field(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    for (i, e) in process.env().iter().flatten().enumerate() {
        if !e.contains('=') || e.starts_with('=') {
            return Err(field(
                &format!("process.env[{i}]"),
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
    }
    if let Some(caps) = process.capabilities() {
        crate::capabilities::from_spec(caps)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(field(
                "process.oomScoreAdj",
                format!("{adj} not in -1000..=1000"),
            ));
        }
    }
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        if rlimit_resource(r.typ()).is_none() {
            return Err(field(
                &format!("process.rlimits[{i}].type"),
                "unknown rlimit",
            ));
        }
        if r.soft() > r.hard() {
            return Err(field(
                &format!("process.rlimits[{i}]"),
                format!("soft {} is above hard {}", r.soft(), r.hard()),
            ));
        }
    }
    Ok(())
}

/// The setrlimit resource number for an OCI rlimit type.
pub fn rlimit_resource(t: oci_spec::runtime::PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    let name = serde_json::to_value(t).ok()?;
    Some(match name.as_str()? {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

/// Converts OCI resources into Berth's cgroup settings.
pub fn resources(r: &LinuxResources) -> Result<berth_cgroups::Resources> {
    use berth_cgroups::{DeviceKind, DeviceRule};
    let mut out = berth_cgroups::Resources::default();
    if let Some(m) = r.memory() {
        out.memory.limit = m.limit();
        out.memory.reservation = m.reservation();
        out.memory.swap = m.swap();
        out.memory.swappiness = m.swappiness();
        out.memory.disable_oom_killer = m.disable_oom_killer();
        if let (Some(l), Some(s)) = (m.limit(), m.swap()) {
            if l > 0 && s > 0 && s < l {
                return Err(field(
                    "linux.resources.memory.swap",
                    format!("{s} is below the memory limit {l} (swap counts memory plus swap)"),
                ));
            }
        }
        if let Some(sw) = m.swappiness() {
            if sw > 100 {
                return Err(field(
                    "linux.resources.memory.swappiness",
                    format!("{sw} is above 100"),
                ));
            }
        }
    }
    if let Some(c) = r.cpu() {
        out.cpu.shares = c.shares();
        out.cpu.quota = c.quota();
        out.cpu.period = c.period();
        out.cpu.realtime_runtime = c.realtime_runtime();
        out.cpu.realtime_period = c.realtime_period();
        out.cpu.cpus = c.cpus().clone().filter(|s| !s.is_empty());
        out.cpu.mems = c.mems().clone().filter(|s| !s.is_empty());
        out.cpu.idle = c.idle();
    }
    if let Some(p) = r.pids() {
        out.pids_limit = Some(p.limit());
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight() {
            if !(10..=1000).contains(&w) && w != 0 {
                return Err(field(
                    "linux.resources.blockIO.weight",
                    format!("{w} not in 10..=1000"),
                ));
            }
        }
        out.blkio_weight = b.weight().filter(|w| *w != 0);
        out.blkio_leaf_weight = b.leaf_weight().filter(|w| *w != 0);
    }
    for (i, d) in r.devices().iter().flatten().enumerate() {
        let kind = match d.typ() {
            None => DeviceKind::All,
            Some(t) => match t.as_str() {
                "a" => DeviceKind::All,
                "c" | "u" => DeviceKind::Char,
                "b" => DeviceKind::Block,
                other => {
                    return Err(field(
                        &format!("linux.resources.devices[{i}].type"),
                        format!("unsupported device type {other}"),
                    ))
                }
            },
        };
        let access = d.access().clone().unwrap_or_default();
        if access.chars().any(|c| !"rwm".contains(c)) {
            return Err(field(
                &format!("linux.resources.devices[{i}].access"),
                format!("{access:?} is not a subset of rwm"),
            ));
        }
        out.devices.push(DeviceRule {
            allow: d.allow(),
            kind,
            major: d.major(),
            minor: d.minor(),
            access,
        });
    }
    for (k, v) in r.unified().iter().flatten() {
        if k.contains('/') || k.starts_with('.') {
            return Err(field(
                "linux.resources.unified",
                format!("invalid key {k:?}"),
            ));
        }
        out.unified.insert(k.clone(), v.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_names_the_field() {
        let bad =
            br#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#;
        let err = parse(bad).unwrap_err();
        assert!(err.contains("linux.namespaces[1].type"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn broken_json_is_reported() {
        let err = parse(b"{\"ociVersion\": ").unwrap_err();
        assert!(err.contains("EOF"), "{err}");
    }

    fn spec_with(rootfs: &Path, extra: serde_json::Value) -> Spec {
        let mut v = serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": rootfs},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn validate_catches_bad_fields() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(validate(&spec_with(root, serde_json::json!({})), root).is_ok());
        let cases = [
            (serde_json::json!({"process": {"args": []}}), "process.args"),
            (
                serde_json::json!({"process": {"cwd": "rel"}}),
                "process.cwd",
            ),
            (
                serde_json::json!({"root": {"path": "/nonexistent-berth"}}),
                "root.path",
            ),
            (
                serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}}),
                "linux.namespaces[1]",
            ),
            (
                serde_json::json!({"linux": {"namespaces": [{"type": "user"}]}}),
                "linux.uidMappings",
            ),
            (serde_json::json!({"hostname": "x"}), "hostname"),
            (
                serde_json::json!({"linux": {"resources": {"memory": {"limit": 100, "swap": 50}}}}),
                "linux.resources.memory.swap",
            ),
            (
                serde_json::json!({"linux": {"resources": {"devices": [{"allow": true, "access": "rwx"}]}}}),
                "linux.resources.devices[0].access",
            ),
            (
                serde_json::json!({"process": {"env": ["NOEQUALS"]}}),
                "process.env[0]",
            ),
            (
                serde_json::json!({"mounts": [{"destination": "rel", "type": "tmpfs"}]}),
                "mounts[0].destination",
            ),
        ];
        for (extra, fieldname) in cases {
            let err = validate(&spec_with(root, extra.clone()), root)
                .unwrap_err()
                .to_string();
            assert!(err.contains(fieldname), "{extra}: {err}");
        }
    }

    #[test]
    fn resources_convert() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1048576, "swap": 2097152},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 10},
            "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
        }))
        .unwrap();
        let out = resources(&r).unwrap();
        assert_eq!(out.memory.limit, Some(1048576));
        assert_eq!(out.cpu.shares, Some(512));
        assert_eq!(out.cpu.cpus.as_deref(), Some("0"));
        assert_eq!(out.pids_limit, Some(10));
        assert_eq!(out.devices.len(), 2);
        assert!(!out.devices[0].allow);
        assert_eq!(out.devices[1].major, Some(1));
    }
}
