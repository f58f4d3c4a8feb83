//! Engine containers and exec sessions to Docker's JSON: `ps` lines ([`summary`]), inspect
//! ([`inspect`]) and exec inspect ([`exec_inspect`]). Objects clients index into
//! (`NetworkSettings.Ports`, `Networks`, `Labels`, `Mounts`) are never `null`.

use std::collections::BTreeMap;

use berth_api::types::{
    self as wire, status_text, ContainerConfig, ContainerInspect, ContainerState, ContainerSummary,
    Empty, EndpointSettings, ExecInspect, ExecProcessConfig, GraphDriver, HealthConfig, HostConfig,
    LogConfig, NetworkSettings, Port, PortMap, StatusInput, StrSlice, SummaryHostConfig,
    SummaryNetworkSettings,
};
use berth_engine::{Container, Exec, MountKind, Status};

use crate::time::{rfc3339_to_unix, since};

/// The network mode as Docker reports it: `default` and empty are `bridge`.
pub fn network_mode(mode: &str) -> String {
    match mode {
        "" | "default" => "bridge".to_string(),
        m => m.to_string(),
    }
}

/// The networks a container is attached to, as `NetworkSettings.Networks`; always an object.
pub fn networks(c: &Container) -> BTreeMap<String, EndpointSettings> {
    c.networks
        .iter()
        .map(|(name, ep)| (name.clone(), crate::convert::network::endpoint(ep)))
        .collect()
}

fn split_port(p: &str) -> (u16, String) {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    (num.parse().unwrap_or(0), proto.to_string())
}

/// `ps`'s `Ports`: while the container runs, one entry per exposed port, or per host
/// binding of a published one (host ports as they were picked); nothing otherwise.
pub fn summary_ports(c: &Container) -> Vec<Port> {
    let mut ports = Vec::new();
    for (p, bs) in &c.ports {
        let (private_port, proto) = split_port(p);
        if bs.is_empty() {
            ports.push(Port {
                ip: None,
                private_port,
                public_port: None,
                r#type: proto,
            });
            continue;
        }
        for b in bs {
            ports.push(Port {
                ip: Some(b.host_ip.clone()),
                private_port,
                public_port: b.host_port.parse().ok(),
                r#type: proto.clone(),
            });
        }
    }
    ports
}

/// Inspect's `NetworkSettings.Ports`, which `docker port` reads: while the container runs,
/// exposed ports map to `null` and published ones to the host bindings made; empty otherwise.
pub fn port_map(c: &Container) -> PortMap {
    c.ports
        .iter()
        .map(|(p, bs)| {
            let bindings = (!bs.is_empty()).then(|| {
                bs.iter()
                    .map(|b| wire::PortBinding {
                        host_ip: b.host_ip.clone(),
                        host_port: b.host_port.clone(),
                    })
                    .collect()
            });
            (p.clone(), bindings)
        })
        .collect()
}

/// Mounts as inspect and ps show them.
pub fn mount_points(c: &Container) -> Vec<wire::MountPoint> {
    c.mounts
        .iter()
        .map(|m| wire::MountPoint {
            r#type: m.kind.as_str().to_string(),
            name: m.name.clone(),
            source: m.source.clone(),
            destination: m.destination.clone(),
            driver: if m.kind == MountKind::Volume {
                "local".into()
            } else {
                String::new()
            },
            mode: if m.read_only {
                "ro".into()
            } else {
                String::new()
            },
            rw: !m.read_only,
            propagation: m.propagation.clone(),
        })
        .collect()
}

/// `docker ps`'s STATUS.
pub fn status(c: &Container) -> String {
    let s = &c.state;
    let input = match s.status {
        Status::Created => StatusInput::Created,
        Status::Running | Status::Paused => StatusInput::Running {
            since: since(&s.started_at),
            paused: s.status == Status::Paused,
            health: s.health.as_ref().map(|h| h.status.as_str()),
        },
        Status::Restarting => StatusInput::Restarting {
            exit_code: s.exit_code.into(),
            since: since(&s.finished_at),
        },
        Status::Exited => StatusInput::Exited {
            exit_code: s.exit_code.into(),
            since: since(&s.finished_at),
        },
        Status::Removing => StatusInput::Removing,
        Status::Dead => StatusInput::Dead,
    };
    status_text(input)
}

/// `Command` of a ps line: the path and arguments joined by spaces.
pub fn command(c: &Container) -> String {
    std::iter::once(c.path.as_str())
        .chain(c.args.iter().map(String::as_str))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line of `GET /containers/json`.
pub fn summary(c: &Container, size_rw: Option<u64>) -> ContainerSummary {
    ContainerSummary {
        id: c.id.clone(),
        names: vec![format!("/{}", c.name)],
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        command: command(c),
        created: rfc3339_to_unix(&c.created),
        ports: summary_ports(c),
        size_rw: size_rw.map(|s| s as i64),
        size_root_fs: None,
        labels: c.config.labels.clone(),
        state: c.state.status.as_str().to_string(),
        status: status(c),
        host_config: SummaryHostConfig {
            network_mode: network_mode(&c.spec.network_mode),
            annotations: None,
        },
        network_settings: SummaryNetworkSettings {
            networks: networks(c),
        },
        mounts: mount_points(c),
    }
}

fn opt_vec(v: &[String]) -> Option<Vec<String>> {
    if v.is_empty() {
        None
    } else {
        Some(v.to_vec())
    }
}

fn set_of(v: &[String]) -> Option<BTreeMap<String, Empty>> {
    if v.is_empty() {
        None
    } else {
        Some(v.iter().map(|k| (k.clone(), Empty {})).collect())
    }
}

/// Inspect's `Config`: the effective configuration plus what only the spec knows.
pub fn config(c: &Container) -> ContainerConfig {
    let e = &c.config;
    let s = &c.spec;
    ContainerConfig {
        hostname: e.hostname.clone(),
        domainname: e.domainname.clone(),
        user: e.user.clone(),
        attach_stdin: s.attach_stdin,
        attach_stdout: s.attach_stdout,
        attach_stderr: s.attach_stderr,
        exposed_ports: set_of(&e.exposed_ports),
        tty: s.tty,
        open_stdin: s.open_stdin,
        stdin_once: s.stdin_once,
        env: Some(e.env.clone()),
        cmd: if e.cmd.is_empty() {
            None
        } else {
            Some(StrSlice(e.cmd.clone()))
        },
        healthcheck: e.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: h.interval,
            timeout: h.timeout,
            start_period: h.start_period,
            start_interval: 0,
            retries: h.retries,
        }),
        args_escaped: false,
        image: c.image.clone(),
        volumes: set_of(&e.volumes),
        working_dir: e.workdir.clone(),
        entrypoint: if e.entrypoint.is_empty() {
            None
        } else {
            Some(StrSlice(e.entrypoint.clone()))
        },
        network_disabled: false,
        mac_address: None,
        on_build: None,
        labels: Some(e.labels.clone()),
        stop_signal: e.stop_signal.clone(),
        stop_timeout: s.stop_timeout,
        shell: None,
    }
}

/// Inspect's `HostConfig`, from the spec.
pub fn host_config(c: &Container) -> HostConfig {
    let s = &c.spec;
    let binds: Vec<String> = s
        .mounts
        .iter()
        .filter(|m| m.kind != MountKind::Tmpfs)
        .map(|m| {
            let mut opts = Vec::new();
            if m.read_only {
                opts.push("ro".to_string());
            }
            if let Some(p) = &m.propagation {
                opts.push(p.clone());
            }
            if opts.is_empty() {
                format!("{}:{}", m.source, m.target)
            } else {
                format!("{}:{}:{}", m.source, m.target, opts.join(","))
            }
        })
        .filter(|b| !b.starts_with(':'))
        .collect();
    let mut log_opts = BTreeMap::new();
    if let Some(size) = s.log_max_size {
        log_opts.insert("max-size".to_string(), size.to_string());
    }
    if let Some(n) = s.log_max_file {
        log_opts.insert("max-file".to_string(), n.to_string());
    }
    let mut security_opt = Vec::new();
    if s.no_new_privileges {
        security_opt.push("no-new-privileges".to_string());
    }
    if let Some(p) = &s.seccomp_profile {
        security_opt.push(format!("seccomp={p}"));
    }
    let r = &s.resources;
    HostConfig {
        binds: opt_vec(&binds),
        log_config: LogConfig {
            r#type: "json-file".into(),
            config: Some(log_opts),
        },
        network_mode: network_mode(&s.network_mode),
        port_bindings: Some(
            s.port_bindings
                .iter()
                .map(|(p, bs)| {
                    (
                        p.clone(),
                        Some(
                            bs.iter()
                                .map(|b| wire::PortBinding {
                                    host_ip: b.host_ip.clone(),
                                    host_port: b.host_port.clone(),
                                })
                                .collect(),
                        ),
                    )
                })
                .collect(),
        ),
        restart_policy: wire::RestartPolicy {
            name: s.restart_policy.kind.as_str().to_string(),
            maximum_retry_count: s.restart_policy.max_retries.into(),
        },
        auto_remove: s.auto_remove,
        cap_add: (!s.cap_add.is_empty()).then(|| StrSlice(s.cap_add.clone())),
        cap_drop: (!s.cap_drop.is_empty()).then(|| StrSlice(s.cap_drop.clone())),
        cgroupns_mode: "private".into(),
        group_add: opt_vec(&s.group_add),
        ipc_mode: "private".into(),
        oom_score_adj: s.oom_score_adj,
        privileged: s.privileged,
        readonly_rootfs: s.read_only,
        security_opt: opt_vec(&security_opt),
        tmpfs: (!s.tmpfs.is_empty()).then(|| s.tmpfs.clone()),
        shm_size: if s.shm_size > 0 { s.shm_size } else { 64 << 20 },
        sysctls: (!s.sysctls.is_empty()).then(|| s.sysctls.clone()),
        runtime: "runc".into(),
        isolation: String::new(),
        init: s.init.then_some(true),
        resources: wire::Resources {
            cpu_shares: r.cpu_shares,
            memory: r.memory,
            nano_cpus: r.nano_cpus,
            blkio_weight: r.blkio_weight,
            cpu_period: r.cpu_period,
            cpu_quota: r.cpu_quota,
            cpuset_cpus: r.cpuset_cpus.clone(),
            cpuset_mems: r.cpuset_mems.clone(),
            memory_reservation: r.memory_reservation,
            memory_swap: r.memory_swap,
            pids_limit: r.pids_limit,
            ulimits: Some(
                s.ulimits
                    .iter()
                    .map(|u| wire::Ulimit {
                        name: u.name.clone(),
                        soft: u.soft,
                        hard: u.hard,
                    })
                    .collect(),
            ),
            ..wire::Resources::default()
        },
        ..HostConfig::default()
    }
}

/// Inspect's `State`.
pub fn state(c: &Container) -> ContainerState {
    let s = &c.state;
    ContainerState {
        status: s.status.as_str().to_string(),
        running: s.running() && s.status != Status::Restarting,
        paused: s.status == Status::Paused,
        restarting: s.status == Status::Restarting,
        oom_killed: s.oom_killed,
        dead: s.status == Status::Dead,
        pid: s.pid.into(),
        exit_code: s.exit_code.into(),
        error: s.error.clone(),
        started_at: zero_time(&s.started_at),
        finished_at: zero_time(&s.finished_at),
        health: s.health.as_ref().map(|h| wire::Health {
            status: h.status.as_str().to_string(),
            failing_streak: h.failing_streak,
            log: h
                .log
                .iter()
                .map(|l| wire::HealthcheckResult {
                    start: l.start.clone(),
                    end: l.end.clone(),
                    exit_code: l.exit_code,
                    output: l.output.clone(),
                })
                .collect(),
        }),
    }
}

fn zero_time(s: &str) -> String {
    if s.is_empty() {
        "0001-01-01T00:00:00Z".into()
    } else {
        s.to_string()
    }
}

/// `GET /containers/{id}/json`.
pub fn inspect(c: &Container, size_rw: Option<u64>) -> ContainerInspect {
    ContainerInspect {
        id: c.id.clone(),
        created: c.created.clone(),
        path: c.path.clone(),
        args: c.args.clone(),
        state: state(c),
        image: c.image_id.clone(),
        resolv_conf_path: c.resolv_conf_path.clone(),
        hostname_path: c.hostname_path.clone(),
        hosts_path: c.hosts_path.clone(),
        log_path: c.log_path.clone(),
        name: format!("/{}", c.name),
        restart_count: c.restart_count.into(),
        driver: "overlay2".into(),
        platform: "linux".into(),
        mount_label: String::new(),
        process_label: String::new(),
        app_armor_profile: String::new(),
        exec_ids: opt_vec(&c.exec_ids),
        host_config: host_config(c),
        graph_driver: GraphDriver {
            data: Some(c.graph.clone()),
            name: "overlay2".into(),
        },
        size_rw: size_rw.map(|s| s as i64),
        size_root_fs: None,
        mounts: mount_points(c),
        config: config(c),
        network_settings: network_settings(c),
    }
}

/// Inspect's `NetworkSettings`: the top-level addresses are those of the default `bridge`
/// network, as in Docker.
fn network_settings(c: &Container) -> NetworkSettings {
    let bridge = c
        .networks
        .get("bridge")
        .filter(|ep| !ep.ip_address.is_empty());
    NetworkSettings {
        sandbox_id: if c.sandbox_key.is_empty() {
            String::new()
        } else {
            c.id.clone()
        },
        sandbox_key: c.sandbox_key.clone(),
        ports: port_map(c),
        endpoint_id: bridge.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
        gateway: bridge.map(|e| e.gateway.clone()).unwrap_or_default(),
        ip_address: bridge.map(|e| e.ip_address.clone()).unwrap_or_default(),
        ip_prefix_len: bridge.map(|e| i64::from(e.ip_prefix_len)).unwrap_or(0),
        mac_address: bridge.map(|e| e.mac_address.clone()).unwrap_or_default(),
        networks: networks(c),
        ..NetworkSettings::default()
    }
}

/// `GET /exec/{id}/json`.
pub fn exec_inspect(e: &Exec) -> ExecInspect {
    let (entrypoint, arguments) = match e.spec.cmd.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => (String::new(), Vec::new()),
    };
    ExecInspect {
        id: e.id.clone(),
        running: e.running,
        exit_code: e.exit_code.map(i64::from),
        process_config: ExecProcessConfig {
            tty: e.spec.tty,
            entrypoint,
            arguments,
            privileged: e.spec.privileged,
            user: e.spec.user.clone().unwrap_or_default(),
        },
        open_stdin: e.spec.attach_stdin,
        open_stderr: e.spec.attach_stderr,
        open_stdout: e.spec.attach_stdout,
        can_remove: false,
        container_id: e.container_id.clone(),
        detach_keys: String::new(),
        pid: e.pid.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::{
        ContainerSpec, EffectiveConfig, Endpoint, Health, HealthStatus, MountPoint, PortBinding,
        State,
    };

    pub(crate) fn sample() -> Container {
        let mut spec = ContainerSpec {
            image: "busybox".into(),
            exposed_ports: vec!["80/tcp".into(), "53/udp".into()],
            ..ContainerSpec::default()
        };
        spec.port_bindings.insert(
            "80/tcp".into(),
            vec![PortBinding {
                host_ip: String::new(),
                host_port: "8080".into(),
            }],
        );
        Container {
            id: "a".repeat(64),
            name: "web".into(),
            created: "2024-05-01T10:00:00.000000001Z".into(),
            image: "busybox".into(),
            image_id: format!("sha256:{}", "b".repeat(64)),
            spec,
            config: EffectiveConfig {
                cmd: vec!["sh".into()],
                ..EffectiveConfig::default()
            },
            path: "sh".into(),
            args: vec!["-c".into(), "sleep 1".into()],
            state: State {
                status: Status::Running,
                pid: 42,
                started_at: "2024-05-01T10:00:01Z".into(),
                health: Some(Health {
                    status: HealthStatus::Healthy,
                    ..Health::default()
                }),
                ..State::default()
            },
            mounts: vec![MountPoint {
                kind: MountKind::Volume,
                name: "data".into(),
                source: "/var/lib/berth/volumes/data/_data".into(),
                destination: "/data".into(),
                read_only: false,
                propagation: String::new(),
            }],
            networks: [(
                "bridge".to_string(),
                Endpoint {
                    network_id: "n".repeat(64),
                    endpoint_id: "e".repeat(64),
                    ifname: "eth0".into(),
                    ip_address: "10.88.0.2".into(),
                    ip_prefix_len: 16,
                    gateway: "10.88.0.1".into(),
                    mac_address: "02:42:0a:58:00:02".into(),
                    ..Endpoint::default()
                },
            )]
            .into(),
            ports: [
                (
                    "80/tcp".to_string(),
                    vec![PortBinding {
                        host_ip: "0.0.0.0".into(),
                        host_port: "8080".into(),
                    }],
                ),
                ("53/udp".to_string(), Vec::new()),
            ]
            .into(),
            sandbox_key: "/proc/42/ns/net".into(),
            ..Container::default()
        }
    }

    #[test]
    fn summary_has_docker_shapes() {
        let c = sample();
        let s = summary(&c, None);
        assert_eq!(s.names, vec!["/web"]);
        assert_eq!(s.command, "sh -c sleep 1");
        assert_eq!(s.created, 1714557600);
        assert_eq!(s.state, "running");
        assert!(
            s.status.starts_with("Up ") && s.status.ends_with("(healthy)"),
            "{}",
            s.status
        );
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["NetworkSettings"]["Networks"].is_object());
        assert!(json["Labels"].is_object());
        assert!(json["Mounts"].is_array());
        assert_eq!(json["HostConfig"]["NetworkMode"], "bridge");
        assert_eq!(json["Mounts"][0]["Name"], "data");
        let ports = json["Ports"].as_array().unwrap();
        assert_eq!(ports.len(), 2);
        assert!(ports
            .iter()
            .any(|p| p["PublicPort"] == 8080 && p["IP"] == "0.0.0.0"));
        assert!(ports
            .iter()
            .any(|p| p["PrivatePort"] == 53 && p["Type"] == "udp"));
    }

    #[test]
    fn inspect_never_has_null_objects_where_clients_index() {
        let mut c = sample();
        c.spec.exposed_ports.clear();
        c.spec.port_bindings.clear();
        c.ports.clear();
        c.state = State::default();
        let json = serde_json::to_value(inspect(&c, None)).unwrap();
        assert_eq!(json["Name"], "/web");
        assert!(json["NetworkSettings"]["Ports"].is_object());
        assert!(json["NetworkSettings"]["Networks"].is_object());
        assert!(json["NetworkSettings"]["Networks"]["bridge"]["NetworkID"].is_string());
        assert!(json["Config"]["Labels"].is_object());
        assert!(json["Mounts"].is_array());
        assert!(json["GraphDriver"]["Data"].is_object());
        assert_eq!(json["State"]["Status"], "created");
        assert_eq!(json["State"]["Running"], false);
        assert_eq!(json["State"]["StartedAt"], "0001-01-01T00:00:00Z");
        assert!(json["State"].get("Health").is_none());
        assert_eq!(json["HostConfig"]["RestartPolicy"]["Name"], "no");
        assert_eq!(json["HostConfig"]["LogConfig"]["Type"], "json-file");
        assert_eq!(json["Image"], format!("sha256:{}", "b".repeat(64)));
        assert_eq!(json["Config"]["Image"], "busybox");
    }

    #[test]
    fn inspect_ports_and_state() {
        let c = sample();
        let i = inspect(&c, None);
        assert_eq!(i.network_settings.ports["53/udp"], None);
        let b = i.network_settings.ports["80/tcp"].as_ref().unwrap();
        assert_eq!(b[0].host_port, "8080");
        assert_eq!(i.network_settings.ip_address, "10.88.0.2");
        assert_eq!(
            i.network_settings.networks["bridge"].network_id,
            "n".repeat(64)
        );
        assert_eq!(i.network_settings.networks["bridge"].ip_prefix_len, 16);
        assert!(i.state.running && !i.state.paused);
        assert_eq!(i.state.pid, 42);
        assert_eq!(i.state.health.as_ref().unwrap().status, "healthy");
        let json = serde_json::to_value(&i).unwrap();
        assert!(
            json["Config"]["ExposedPorts"].is_null() || json["Config"]["ExposedPorts"].is_object()
        );
    }

    #[test]
    fn exec_inspect_splits_the_command() {
        let e = Exec {
            id: "e1".into(),
            container_id: "c1".into(),
            spec: berth_engine::ExecSpec {
                cmd: vec!["ls".into(), "-l".into()],
                ..Default::default()
            },
            running: false,
            exit_code: Some(3),
            pid: 0,
        };
        let json = serde_json::to_value(exec_inspect(&e)).unwrap();
        assert_eq!(json["ExitCode"], 3);
        assert_eq!(json["ID"], "e1");
        assert_eq!(json["ProcessConfig"]["entrypoint"], "ls");
        assert_eq!(json["ProcessConfig"]["arguments"][0], "-l");
        let running = Exec {
            exit_code: None,
            running: true,
            ..e
        };
        assert!(serde_json::to_value(exec_inspect(&running)).unwrap()["ExitCode"].is_null());
    }
}
