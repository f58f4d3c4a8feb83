//! `POST /containers/create` and `POST /containers/{id}/exec` bodies to the engine's
//! [`ContainerSpec`] and [`ExecSpec`]: binds and mounts, security options, restart policy,
//! log rotation sizes, ports, limits.

use std::collections::BTreeMap;

use berth_api::types::{ContainerCreateRequest, ExecCreateRequest, HostConfig, Mount};
use berth_engine::ContainerSpec;
use berth_engine::{
    ExecSpec, Healthcheck, MountKind, MountSpec, PortBinding, Resources, RestartKind,
    RestartPolicy, Ulimit,
};

use crate::error::ApiError;

/// Parses a JSON body, naming the field that failed (`HostConfig.Memory: invalid type...`).
pub fn parse_body<T: serde::de::DeserializeOwned + Default>(
    what: &str,
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("invalid {what} body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid {what} body: {path}: {inner}"))
        }
    })
}

/// The create body. Serde cannot say which field of a flattened struct failed (the top-level
/// `Config` fields and `HostConfig`'s limits are flattened), so on failure the parts are
/// parsed again on their own to name the field.
pub fn create_body(body: &[u8]) -> Result<ContainerCreateRequest, ApiError> {
    let err = match parse_body::<ContainerCreateRequest>("create", body) {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(err);
    };
    let named = |prefix: &str, e: serde_path_to_error::Error<serde_json::Error>| {
        let path = e.path().to_string();
        ApiError::bad_request(format!(
            "invalid create body: {prefix}{path}: {}",
            e.into_inner()
        ))
    };
    if let Err(e) =
        serde_path_to_error::deserialize::<_, berth_api::types::ContainerConfig>(value.clone())
    {
        return Err(named("", e));
    }
    if let Some(h) = value.get("HostConfig").filter(|h| !h.is_null()) {
        if let Err(e) =
            serde_path_to_error::deserialize::<_, berth_api::types::Resources>(h.clone())
        {
            return Err(named("HostConfig.", e));
        }
    }
    Err(err)
}

/// Docker's port key: `80` → `80/tcp`, `53/udp` stays.
pub fn normalize_port(p: &str) -> String {
    if p.contains('/') {
        p.to_string()
    } else {
        format!("{p}/tcp")
    }
}

/// go-units `RAMInBytes`: `10m`, `1.5g`, `512k`, `100`, `64MiB` (binary multiples).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or(unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    if n < 0.0 || !n.is_finite() {
        return None;
    }
    Some((n * mult as f64) as u64)
}

/// One `HostConfig.Binds` entry: `src:dst[:opts]`; a `src` without `/` is a named volume.
pub fn parse_bind(spec: &str) -> Result<MountSpec, ApiError> {
    let bad =
        |why: &str| ApiError::bad_request(format!("invalid volume specification: '{spec}': {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        [_] => return Err(bad("expected source:destination")),
        _ => return Err(bad("too many colons")),
    };
    if src.is_empty() {
        return Err(bad("empty source"));
    }
    if !dst.starts_with('/') {
        return Err(bad(&format!(
            "invalid mount path: '{dst}' mount path must be absolute"
        )));
    }
    let kind = if src.starts_with('/') {
        MountKind::Bind
    } else {
        MountKind::Volume
    };
    let mut m = MountSpec {
        kind,
        source: src.to_string(),
        target: dst.to_string(),
        ..MountSpec::default()
    };
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => m.read_only = true,
            "rw" => m.read_only = false,
            "z" | "Z" | "nocopy" | "consistent" | "cached" | "delegated" => {}
            "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => {
                m.propagation = Some(opt.to_string())
            }
            other => return Err(bad(&format!("unknown option {other:?}"))),
        }
    }
    Ok(m)
}

/// One `HostConfig.Mounts` entry (`--mount`).
pub fn convert_mount(mount: &Mount) -> Result<MountSpec, ApiError> {
    let bad = |why: String| {
        ApiError::bad_request(format!(
            "invalid mount config for type {:?}: {why}",
            mount.r#type
        ))
    };
    if !mount.target.starts_with('/') {
        return Err(bad(format!(
            "invalid mount path: '{}' mount path must be absolute",
            mount.target
        )));
    }
    let kind = match mount.r#type.as_str() {
        "bind" => MountKind::Bind,
        "volume" => MountKind::Volume,
        "tmpfs" => MountKind::Tmpfs,
        other => return Err(bad(format!("mount type {other:?} is not supported"))),
    };
    match kind {
        MountKind::Bind if !mount.source.starts_with('/') => {
            return Err(bad(format!(
                "invalid mount path: '{}' mount path must be absolute",
                mount.source
            )))
        }
        MountKind::Tmpfs if !mount.source.is_empty() => {
            return Err(bad("source must not be specified".into()))
        }
        _ => {}
    }
    let propagation = mount
        .bind_options
        .as_ref()
        .map(|b| b.propagation.clone())
        .filter(|p| !p.is_empty());
    let (tmpfs_size, tmpfs_mode) = match &mount.tmpfs_options {
        Some(t) => (
            Some(t.size_bytes).filter(|s| *s > 0),
            Some(t.mode).filter(|m| *m != 0),
        ),
        None => (None, None),
    };
    Ok(MountSpec {
        kind,
        source: mount.source.clone(),
        target: mount.target.clone(),
        read_only: mount.read_only,
        propagation,
        tmpfs_size,
        tmpfs_mode,
    })
}

/// The security options Berth knows: `(no_new_privileges, seccomp_profile)`.
pub fn parse_security_opts(opts: &[String]) -> Result<(bool, Option<String>), ApiError> {
    let mut nnp = false;
    let mut seccomp = None;
    for opt in opts {
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("no-new-privileges", None) => nnp = true,
            ("no-new-privileges", Some(v)) => {
                nnp = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "invalid --security-opt {opt:?}: no-new-privileges takes true or false"
                        )))
                    }
                }
            }
            ("seccomp", Some("unconfined")) => seccomp = Some("unconfined".to_string()),
            ("seccomp", Some("builtin" | "default" | "")) => seccomp = None,
            ("seccomp", Some(profile)) => {
                let profile = profile.trim();
                if serde_json::from_str::<serde_json::Value>(profile).is_err() {
                    return Err(ApiError::bad_request(format!(
                        "invalid --security-opt seccomp: the profile is not JSON (the client sends the file's contents): {}",
                        truncate(profile, 60)
                    )));
                }
                seccomp = Some(profile.to_string());
            }
            // SELinux and AppArmor labels do not apply on Berth's hosts; accepted and ignored.
            ("label" | "apparmor" | "systempaths" | "writable-cgroups", _) => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid --security-opt: {:?}",
                    truncate(opt, 60)
                )))
            }
        }
    }
    Ok((nnp, seccomp))
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// `RestartPolicy` (with `AutoRemove`, which refuses any policy but `no`).
pub fn convert_restart_policy(
    p: &berth_api::types::RestartPolicy,
    auto_remove: bool,
) -> Result<RestartPolicy, ApiError> {
    let kind = RestartKind::parse(&p.name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid restart policy: unknown policy '{}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'",
            p.name
        ))
    })?;
    if p.maximum_retry_count < 0 {
        return Err(ApiError::bad_request(
            "invalid restart policy: maximum retry count cannot be negative",
        ));
    }
    if p.maximum_retry_count > 0 && kind != RestartKind::OnFailure {
        return Err(ApiError::bad_request(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ));
    }
    if auto_remove && kind != RestartKind::No {
        return Err(ApiError::bad_request(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    Ok(RestartPolicy {
        kind,
        max_retries: u32::try_from(p.maximum_retry_count).unwrap_or(u32::MAX),
    })
}

/// `LogConfig`: json-file with `max-size` and `max-file`.
pub fn convert_log_config(
    lc: &berth_api::types::LogConfig,
) -> Result<(Option<u64>, Option<u32>), ApiError> {
    match lc.r#type.as_str() {
        "" | "json-file" | "local" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "logging driver {other:?} is not supported; berthd writes json-file logs"
            )))
        }
    }
    let mut size = None;
    let mut files = None;
    for (k, v) in lc.config.iter().flatten() {
        match k.as_str() {
            "max-size" => {
                if v == "-1" {
                    continue;
                }
                size = Some(parse_size(v).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid log opt max-size {v:?}: not a size like 10m"
                    ))
                })?);
            }
            "max-file" => {
                let n: u32 = v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid log opt max-file {v:?}: must be a number of at least 1"
                    ))
                })?;
                files = Some(n);
            }
            "compress" | "labels" | "labels-regex" | "env" | "env-regex" | "tag" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown log opt '{other}' for json-file log driver"
                )))
            }
        }
    }
    if files.is_some_and(|n| n > 1) && size.is_none() {
        return Err(ApiError::bad_request(
            "invalid log opt max-file: it needs max-size to be set",
        ));
    }
    Ok((size, files))
}

fn non_empty(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

fn resources(h: &HostConfig) -> Resources {
    let r = &h.resources;
    Resources {
        memory: r.memory,
        memory_reservation: r.memory_reservation,
        memory_swap: r.memory_swap,
        nano_cpus: r.nano_cpus,
        cpu_shares: r.cpu_shares,
        cpu_quota: r.cpu_quota,
        cpu_period: r.cpu_period,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        pids_limit: r.pids_limit,
        blkio_weight: r.blkio_weight,
    }
}

/// The create body (and `?name=`) as the engine's spec.
pub fn container_spec(
    name: Option<String>,
    req: &ContainerCreateRequest,
) -> Result<ContainerSpec, ApiError> {
    let c = &req.config;
    let default_host = HostConfig::default();
    let h = req.host_config.as_ref().unwrap_or(&default_host);
    if c.image.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid create body: Image: no image given",
        ));
    }
    let cmd = c
        .cmd
        .as_ref()
        .map(|s| s.as_slice().to_vec())
        .filter(|v| !v.is_empty());
    let entrypoint = match c.entrypoint.as_ref().map(|s| s.as_slice()) {
        None | Some([]) => None,
        Some([only]) if only.is_empty() => Some(Vec::new()),
        Some(v) => Some(v.to_vec()),
    };
    let healthcheck = c.healthcheck.as_ref().and_then(|hc| {
        let test = hc.test.clone().unwrap_or_default();
        let unset = test.is_empty()
            && hc.interval == 0
            && hc.timeout == 0
            && hc.start_period == 0
            && hc.retries == 0;
        (!unset).then_some(Healthcheck {
            test,
            interval: hc.interval,
            timeout: hc.timeout,
            start_period: hc.start_period,
            retries: hc.retries,
        })
    });
    for (what, v) in [
        ("Interval", c.healthcheck.as_ref().map_or(0, |h| h.interval)),
        ("Timeout", c.healthcheck.as_ref().map_or(0, |h| h.timeout)),
        (
            "StartPeriod",
            c.healthcheck.as_ref().map_or(0, |h| h.start_period),
        ),
        ("Retries", c.healthcheck.as_ref().map_or(0, |h| h.retries)),
    ] {
        if v < 0 {
            return Err(ApiError::bad_request(format!(
                "invalid create body: Healthcheck.{what}: must not be negative"
            )));
        }
    }

    let mut mounts = Vec::new();
    for b in h.binds.iter().flatten() {
        mounts.push(parse_bind(b)?);
    }
    for m in h.mounts.iter().flatten() {
        mounts.push(convert_mount(m)?);
    }
    let (no_new_privileges, seccomp_profile) =
        parse_security_opts(h.security_opt.as_deref().unwrap_or(&[]))?;
    let restart_policy = convert_restart_policy(&h.restart_policy, h.auto_remove)?;
    let (log_max_size, log_max_file) = convert_log_config(&h.log_config)?;

    let mut port_bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for (port, bindings) in h.port_bindings.iter().flatten() {
        let list = port_bindings.entry(normalize_port(port)).or_default();
        for b in bindings.iter().flatten() {
            list.push(PortBinding {
                host_ip: b.host_ip.clone(),
                host_port: b.host_port.clone(),
            });
        }
    }
    let mut exposed_ports: Vec<String> = c
        .exposed_ports
        .iter()
        .flatten()
        .map(|(p, _)| normalize_port(p))
        .collect();
    for p in port_bindings.keys() {
        if !exposed_ports.contains(p) {
            exposed_ports.push(p.clone());
        }
    }
    exposed_ports.sort();

    if h.resources.memory < 0 {
        return Err(ApiError::bad_request(
            "invalid create body: HostConfig.Memory: must not be negative",
        ));
    }
    if h.resources.memory > 0 && h.resources.memory < 6 * 1024 * 1024 {
        return Err(ApiError::bad_request(
            "Minimum memory limit allowed is 6MB".to_ascii_lowercase(),
        ));
    }
    if h.resources.nano_cpus < 0 {
        return Err(ApiError::bad_request(
            "invalid create body: HostConfig.NanoCpus: must not be negative",
        ));
    }
    if h.resources.nano_cpus > 0 && (h.resources.cpu_quota > 0 || h.resources.cpu_period > 0) {
        return Err(ApiError::bad_request(
            "conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }

    Ok(ContainerSpec {
        name,
        image: c.image.clone(),
        cmd,
        entrypoint,
        env: c.env.clone().unwrap_or_default(),
        workdir: non_empty(&c.working_dir),
        user: non_empty(&c.user),
        hostname: non_empty(&c.hostname),
        domainname: non_empty(&c.domainname),
        labels: c.labels.clone().unwrap_or_default(),
        tty: c.tty,
        open_stdin: c.open_stdin,
        stdin_once: c.stdin_once,
        attach_stdin: c.attach_stdin,
        attach_stdout: c.attach_stdout,
        attach_stderr: c.attach_stderr,
        init: h.init.unwrap_or(false),
        read_only: h.readonly_rootfs,
        tmpfs: h.tmpfs.clone().unwrap_or_default(),
        mounts,
        resources: resources(h),
        cap_add: h.cap_add.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
        cap_drop: h.cap_drop.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
        privileged: h.privileged,
        no_new_privileges,
        seccomp_profile,
        restart_policy,
        healthcheck,
        stop_signal: c.stop_signal.clone().filter(|s| !s.is_empty()),
        stop_timeout: c.stop_timeout,
        auto_remove: h.auto_remove,
        log_max_size,
        log_max_file,
        network_mode: h.network_mode.clone(),
        endpoints: req
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref())
            .into_iter()
            .flatten()
            .map(|(name, ep)| (name.clone(), crate::convert::network::endpoint_spec(ep)))
            .collect(),
        exposed_ports,
        port_bindings,
        publish_all: h.publish_all_ports,
        extra_hosts: h.extra_hosts.clone().unwrap_or_default(),
        dns: h.dns.clone().unwrap_or_default(),
        dns_search: h.dns_search.clone().unwrap_or_default(),
        dns_options: h.dns_options.clone().unwrap_or_default(),
        ulimits: h
            .resources
            .ulimits
            .iter()
            .flatten()
            .map(|u| Ulimit {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        volumes: c.volumes.iter().flatten().map(|(v, _)| v.clone()).collect(),
        oom_score_adj: h.oom_score_adj,
        sysctls: h.sysctls.clone().unwrap_or_default(),
        shm_size: h.shm_size,
        group_add: h.group_add.clone().unwrap_or_default(),
        console_size: [
            h.console_size[0].min(u16::MAX as u64) as u16,
            h.console_size[1].min(u16::MAX as u64) as u16,
        ],
    })
}

/// The exec create body as the engine's spec.
pub fn exec_spec(req: &ExecCreateRequest) -> Result<ExecSpec, ApiError> {
    let cmd = req.cmd.as_ref().map(|c| c.0.clone()).unwrap_or_default();
    if cmd.is_empty() {
        return Err(ApiError::bad_request(
            "invalid exec body: Cmd: no exec command specified",
        ));
    }
    Ok(ExecSpec {
        cmd,
        env: req.env.clone().unwrap_or_default(),
        workdir: non_empty(&req.working_dir),
        user: non_empty(&req.user),
        tty: req.tty,
        attach_stdin: req.attach_stdin,
        attach_stdout: req.attach_stdout,
        attach_stderr: req.attach_stderr,
        privileged: req.privileged,
        console_size: req
            .console_size
            .map(|[h, w]| [h.min(u16::MAX as u64) as u16, w.min(u16::MAX as u64) as u16])
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(body: &str) -> Result<ContainerSpec, ApiError> {
        let req = create_body(body.as_bytes())?;
        container_spec(Some("web".into()), &req)
    }

    #[test]
    fn a_docker_run_body_maps_to_a_spec() {
        let s = spec(
            r#"{"Image":"busybox","Cmd":["sh","-c","echo hi"],"Entrypoint":null,"Env":["A=1"],
            "WorkingDir":"/srv","User":"1000:1000","Hostname":"h","Labels":{"tier":"web"},
            "Tty":true,"OpenStdin":true,"StdinOnce":true,"AttachStdin":true,"AttachStdout":true,
            "ExposedPorts":{"80/tcp":{}},"Volumes":{"/data":{}},"StopSignal":"SIGINT","StopTimeout":3,
            "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Timeout":null,"Retries":2},
            "HostConfig":{"Binds":["vol:/data","/host:/ctr:ro,rshared"],"Memory":67108864,
              "MemorySwap":-1,"NanoCpus":500000000,"PidsLimit":100,"CapAdd":["NET_ADMIN"],"CapDrop":"MKNOD",
              "SecurityOpt":["no-new-privileges:true","seccomp=unconfined"],
              "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},
              "LogConfig":{"Type":"json-file","Config":{"max-size":"10m","max-file":"3"}},
              "NetworkMode":"bridge","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}],"53/udp":null},
              "Ulimits":[{"Name":"nofile","Soft":1024,"Hard":2048}],"Init":true,"ReadonlyRootfs":true,
              "Tmpfs":{"/run":"rw,size=64m"},"OomScoreAdj":100,"Sysctls":{"net.ipv4.ip_forward":"1"},
              "ShmSize":67108864,"GroupAdd":["audio"],
              "Mounts":[{"Type":"tmpfs","Target":"/scratch","TmpfsOptions":{"SizeBytes":1024,"Mode":448}}]}}"#,
        )
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("web"));
        assert_eq!(s.image, "busybox");
        assert_eq!(
            s.cmd,
            Some(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(s.entrypoint, None);
        assert_eq!(s.env, vec!["A=1"]);
        assert_eq!(s.workdir.as_deref(), Some("/srv"));
        assert_eq!(s.user.as_deref(), Some("1000:1000"));
        assert_eq!(s.hostname.as_deref(), Some("h"));
        assert_eq!(s.domainname, None);
        assert_eq!(s.labels.get("tier").map(String::as_str), Some("web"));
        assert!(s.tty && s.open_stdin && s.stdin_once && s.attach_stdin && s.attach_stdout);
        assert!(!s.attach_stderr);
        assert_eq!(s.exposed_ports, vec!["53/udp", "80/tcp"]);
        assert_eq!(s.volumes, vec!["/data"]);
        assert_eq!(s.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(s.stop_timeout, Some(3));
        let hc = s.healthcheck.unwrap();
        assert_eq!(hc.test, vec!["CMD-SHELL", "true"]);
        assert_eq!((hc.interval, hc.timeout, hc.retries), (1_000_000_000, 0, 2));
        assert_eq!(s.mounts.len(), 3);
        assert_eq!(s.mounts[0].kind, MountKind::Volume);
        assert_eq!(s.mounts[0].source, "vol");
        assert_eq!(s.mounts[1].kind, MountKind::Bind);
        assert!(s.mounts[1].read_only);
        assert_eq!(s.mounts[1].propagation.as_deref(), Some("rshared"));
        assert_eq!(s.mounts[2].kind, MountKind::Tmpfs);
        assert_eq!(s.mounts[2].tmpfs_size, Some(1024));
        assert_eq!(s.mounts[2].tmpfs_mode, Some(0o700));
        assert_eq!(s.resources.memory, 64 << 20);
        assert_eq!(s.resources.memory_swap, -1);
        assert_eq!(s.resources.nano_cpus, 500_000_000);
        assert_eq!(s.resources.pids_limit, Some(100));
        assert_eq!(s.cap_add, vec!["NET_ADMIN"]);
        assert_eq!(s.cap_drop, vec!["MKNOD"]);
        assert!(s.no_new_privileges);
        assert_eq!(s.seccomp_profile.as_deref(), Some("unconfined"));
        assert_eq!(s.restart_policy.kind, RestartKind::OnFailure);
        assert_eq!(s.restart_policy.max_retries, 3);
        assert_eq!(s.log_max_size, Some(10 << 20));
        assert_eq!(s.log_max_file, Some(3));
        assert_eq!(s.network_mode, "bridge");
        assert_eq!(s.port_bindings["80/tcp"][0].host_port, "8080");
        assert!(s.port_bindings["53/udp"].is_empty());
        assert_eq!(s.ulimits[0].name, "nofile");
        assert_eq!((s.ulimits[0].soft, s.ulimits[0].hard), (1024, 2048));
        assert!(s.init && s.read_only);
        assert_eq!(s.tmpfs["/run"], "rw,size=64m");
        assert_eq!(s.oom_score_adj, 100);
        assert_eq!(s.sysctls["net.ipv4.ip_forward"], "1");
        assert_eq!(s.shm_size, 64 << 20);
        assert_eq!(s.group_add, vec!["audio"]);
    }

    #[test]
    fn entrypoint_empty_string_clears() {
        let s = spec(r#"{"Image":"busybox","Entrypoint":[""],"Cmd":[]}"#).unwrap();
        assert_eq!(s.entrypoint, Some(vec![]));
        assert_eq!(s.cmd, None);
        let s = spec(r#"{"Image":"busybox","Entrypoint":"/bin/sh -c"}"#).unwrap();
        assert_eq!(s.entrypoint, Some(vec!["/bin/sh -c".to_string()]));
        let s = spec(r#"{"Image":"busybox","HostConfig":null}"#).unwrap();
        assert!(s.mounts.is_empty());
        assert_eq!(s.restart_policy.kind, RestartKind::No);
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let e = spec(r#"{"Image":"busybox","HostConfig":{"Memory":"lots"}}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.message.contains("HostConfig.Memory"), "{}", e.message);
        let e = spec(r#"{"Image":"busybox","Env":"A=1"}"#).unwrap_err();
        assert!(e.message.contains("Env"), "{}", e.message);
        let e = spec("{not json").unwrap_err();
        assert!(
            e.message.starts_with("invalid create body"),
            "{}",
            e.message
        );
        assert!(spec(r#"{"Cmd":["x"]}"#)
            .unwrap_err()
            .message
            .contains("Image"));
    }

    #[test]
    fn binds() {
        let m = parse_bind("/a:/b").unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.target.as_str(), m.read_only),
            (MountKind::Bind, "/a", "/b", false)
        );
        let m = parse_bind("data:/var/lib/data:ro").unwrap();
        assert_eq!(m.kind, MountKind::Volume);
        assert!(m.read_only);
        let m = parse_bind("/a:/b:rw,z").unwrap();
        assert!(!m.read_only);
        for bad in ["/a", "/a:b", ":/b", "/a:/b:bogus", "/a:/b:ro:x"] {
            let e = parse_bind(bad).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert!(
                e.message.starts_with("invalid volume specification"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn security_opts() {
        assert_eq!(parse_security_opts(&[]).unwrap(), (false, None));
        assert_eq!(
            parse_security_opts(&["no-new-privileges".into()]).unwrap(),
            (true, None)
        );
        assert_eq!(
            parse_security_opts(&["no-new-privileges:true".into()]).unwrap(),
            (true, None)
        );
        assert_eq!(
            parse_security_opts(&["no-new-privileges=false".into()]).unwrap(),
            (false, None)
        );
        assert_eq!(
            parse_security_opts(&["seccomp=unconfined".into()]).unwrap(),
            (false, Some("unconfined".into()))
        );
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#;
        assert_eq!(
            parse_security_opts(&[format!("seccomp={json}")]).unwrap(),
            (false, Some(json.into()))
        );
        assert!(parse_security_opts(&["label=disable".into()]).is_ok());
        assert!(parse_security_opts(&["seccomp=/etc/profile.json".into()]).is_err());
        assert!(parse_security_opts(&["bogus".into()]).is_err());
        assert!(parse_security_opts(&["no-new-privileges:maybe".into()]).is_err());
    }

    #[test]
    fn restart_policies() {
        let p = |name: &str, n: i64| berth_api::types::RestartPolicy {
            name: name.into(),
            maximum_retry_count: n,
        };
        assert_eq!(
            convert_restart_policy(&p("", 0), true).unwrap().kind,
            RestartKind::No
        );
        assert_eq!(
            convert_restart_policy(&p("always", 0), false).unwrap().kind,
            RestartKind::Always
        );
        assert_eq!(
            convert_restart_policy(&p("unless-stopped", 0), false)
                .unwrap()
                .kind,
            RestartKind::UnlessStopped
        );
        let e = convert_restart_policy(&p("sometimes", 0), false).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.message.contains("sometimes"));
        assert!(convert_restart_policy(&p("always", 3), false).is_err());
        assert!(convert_restart_policy(&p("on-failure", -1), false).is_err());
        assert!(convert_restart_policy(&p("always", 0), true).is_err());
    }

    #[test]
    fn log_config_sizes() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("10mb"), Some(10 << 20));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("10x"), None);
        let lc = |pairs: &[(&str, &str)]| berth_api::types::LogConfig {
            r#type: "json-file".into(),
            config: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        };
        assert_eq!(convert_log_config(&lc(&[])).unwrap(), (None, None));
        assert_eq!(
            convert_log_config(&lc(&[("max-size", "1k"), ("max-file", "2")])).unwrap(),
            (Some(1024), Some(2))
        );
        assert!(convert_log_config(&lc(&[("max-size", "big")])).is_err());
        assert!(convert_log_config(&lc(&[("max-file", "0")])).is_err());
        assert!(convert_log_config(&lc(&[("max-file", "3")])).is_err());
        assert!(convert_log_config(&lc(&[("bogus", "1")])).is_err());
        let syslog = berth_api::types::LogConfig {
            r#type: "syslog".into(),
            config: None,
        };
        assert!(convert_log_config(&syslog).is_err());
    }

    #[test]
    fn exec_bodies() {
        let req: ExecCreateRequest = parse_body(
            "exec",
            br#"{"AttachStdout":true,"Tty":false,"Cmd":["ls","-l"],"Env":null,"WorkingDir":"/tmp","User":""}"#,
        )
        .unwrap();
        let s = exec_spec(&req).unwrap();
        assert_eq!(s.cmd, vec!["ls", "-l"]);
        assert_eq!(s.workdir.as_deref(), Some("/tmp"));
        assert_eq!(s.user, None);
        assert!(s.attach_stdout && !s.attach_stdin);
        let empty: ExecCreateRequest = parse_body("exec", b"{}").unwrap();
        assert_eq!(exec_spec(&empty).unwrap_err().status.as_u16(), 400);
    }
}
