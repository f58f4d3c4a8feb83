//! The flags of `run` and `create` and their translation into a `POST /containers/create`
//! body, as the docker CLI builds it.

use std::collections::BTreeMap;
use std::fs;

use berth_api::types::{
    BindOptions, ContainerConfig, ContainerCreateRequest, Empty, EndpointSettings, HealthConfig,
    HostConfig, Mount, NetworkingConfig, PortBinding, PortMap, RestartPolicy, StrSlice,
    TmpfsOptions, VolumeOptions,
};
use clap::Args;

use crate::format::{duration_nanos, ram_in_bytes};
use crate::{Failure, Result};

#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateOpts {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount a tmpfs directory (PATH[:OPTIONS])
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Bind mount a volume (SRC:DST[:OPTS] or DST)
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container (type=bind,source=,target=,readonly)
    #[arg(long)]
    pub mount: Vec<String>,
    /// Publish a container's port(s) to the host ([IP:]HOSTPORT:PORT[/PROTO])
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Memory limit (512m, 1g)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Restart policy to apply when a container exits (no, always, on-failure[:N], unless-stopped)
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Ulimit options
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
}

/// The image, command and flags of a container, as a create body.
pub fn create_body(
    o: &CreateOpts,
    image: &str,
    command: &[String],
) -> Result<ContainerCreateRequest> {
    let mut env = Vec::new();
    for file in &o.env_file {
        let text =
            fs::read_to_string(file).map_err(|e| Failure::new(format!("open {file}: {e}")))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            env.extend(env_entry(line));
        }
    }
    for e in &o.env {
        env.extend(env_entry(e));
    }
    let mut labels = BTreeMap::new();
    for l in &o.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }

    let attach_all = o.attach.is_empty();
    let attach = |s: &str| attach_all || o.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
    let mut config = ContainerConfig {
        image: image.to_string(),
        hostname: o.hostname.clone().unwrap_or_default(),
        user: o.user.clone().unwrap_or_default(),
        working_dir: o.workdir.clone().unwrap_or_default(),
        tty: o.tty,
        open_stdin: o.interactive,
        stdin_once: o.interactive,
        attach_stdin: o.interactive && (attach_all || attach("stdin")),
        attach_stdout: attach("stdout"),
        attach_stderr: attach("stderr"),
        env: Some(env),
        cmd: (!command.is_empty()).then(|| StrSlice(command.to_vec())),
        entrypoint: o.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                StrSlice(vec![String::new()])
            } else {
                StrSlice(vec![e.clone()])
            }
        }),
        labels: Some(labels),
        stop_signal: o.stop_signal.clone(),
        stop_timeout: o.stop_timeout,
        ..Default::default()
    };

    let mut host = HostConfig {
        auto_remove: o.rm,
        readonly_rootfs: o.read_only,
        privileged: o.privileged,
        init: o.init.then_some(true),
        network_mode: o.network.clone().unwrap_or_else(|| "default".into()),
        restart_policy: restart_policy(&o.restart)?,
        ..Default::default()
    };
    if o.rm && !matches!(host.restart_policy.name.as_str(), "" | "no") {
        return Err(Failure::new(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    if o.tty {
        if let Some((h, w)) = crate::stdio::terminal_size() {
            host.console_size = [h as u64, w as u64];
        }
    }
    if !o.cap_add.is_empty() {
        host.cap_add = Some(StrSlice(o.cap_add.clone()));
    }
    if !o.cap_drop.is_empty() {
        host.cap_drop = Some(StrSlice(o.cap_drop.clone()));
    }
    if !o.security_opt.is_empty() {
        host.security_opt = Some(o.security_opt.clone());
    }
    if !o.add_host.is_empty() {
        host.extra_hosts = Some(o.add_host.clone());
    }
    if !o.dns.is_empty() {
        host.dns = Some(o.dns.clone());
    }
    if let Some(m) = &o.memory {
        host.resources.memory = ram_in_bytes(m)?;
    }
    if let Some(c) = o.cpus {
        if c < 0.0 {
            return Err(Failure::new(format!(
                "invalid --cpus {c}: must be positive"
            )));
        }
        host.resources.nano_cpus = (c * 1e9) as i64;
    }
    host.resources.pids_limit = o.pids_limit;
    if !o.ulimit.is_empty() {
        let mut ulimits = Vec::new();
        for u in &o.ulimit {
            ulimits.push(parse_ulimit(u)?);
        }
        host.resources.ulimits = Some(ulimits);
    }

    // Volumes: `-v SRC:DST[:OPTS]` go to Binds, `-v DST` is an anonymous volume.
    let mut binds = Vec::new();
    let mut volumes = BTreeMap::new();
    for v in &o.volume {
        let parts: Vec<&str> = v.split(':').collect();
        match parts.as_slice() {
            [dst] if dst.starts_with('/') => {
                volumes.insert(dst.to_string(), Empty {});
            }
            [src, dst, ..] if !src.is_empty() && dst.starts_with('/') => binds.push(v.clone()),
            _ => return Err(Failure::new(format!("invalid volume specification: {v:?}"))),
        }
    }
    if !binds.is_empty() {
        host.binds = Some(binds);
    }
    if !volumes.is_empty() {
        config.volumes = Some(volumes);
    }
    if !o.mount.is_empty() {
        let mut mounts = Vec::new();
        for m in &o.mount {
            mounts.push(parse_mount(m)?);
        }
        host.mounts = Some(mounts);
    }
    if !o.tmpfs.is_empty() {
        let mut t = BTreeMap::new();
        for spec in &o.tmpfs {
            let (path, opts) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
            t.insert(path.to_string(), opts.to_string());
        }
        host.tmpfs = Some(t);
    }

    // Ports.
    let mut exposed = BTreeMap::new();
    let mut bindings: PortMap = BTreeMap::new();
    for p in &o.expose {
        exposed.insert(port_key(p), Empty {});
    }
    for p in &o.publish {
        let (key, binding) = parse_publish(p)?;
        exposed.insert(key.clone(), Empty {});
        bindings
            .entry(key)
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(binding);
    }
    if !exposed.is_empty() {
        config.exposed_ports = Some(exposed);
    }
    if !bindings.is_empty() {
        host.port_bindings = Some(bindings);
    }

    // Health check.
    if o.no_healthcheck {
        config.healthcheck = Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
    } else if o.health_cmd.is_some()
        || o.health_interval.is_some()
        || o.health_timeout.is_some()
        || o.health_retries.is_some()
        || o.health_start_period.is_some()
    {
        let nanos = |flag: &str, v: &Option<String>| -> Result<i64> {
            v.as_deref()
                .map(|s| duration_nanos(flag, s))
                .unwrap_or(Ok(0))
        };
        config.healthcheck = Some(HealthConfig {
            test: o
                .health_cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_string(), c.clone()]),
            interval: nanos("--health-interval", &o.health_interval)?,
            timeout: nanos("--health-timeout", &o.health_timeout)?,
            start_period: nanos("--health-start-period", &o.health_start_period)?,
            retries: o.health_retries.unwrap_or(0),
            ..Default::default()
        });
    }

    let networking_config = o.network.as_ref().and_then(|n| {
        (!matches!(n.as_str(), "default" | "bridge" | "host" | "none")).then(|| NetworkingConfig {
            endpoints_config: Some(BTreeMap::from([(n.clone(), EndpointSettings::default())])),
        })
    });
    Ok(ContainerCreateRequest {
        config,
        host_config: Some(host),
        networking_config,
    })
}

/// `KEY=VALUE` as is; `KEY` alone takes its value from this environment, or is dropped.
fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

fn restart_policy(s: &str) -> Result<RestartPolicy> {
    let (name, count) = s.split_once(':').unwrap_or((s, ""));
    let maximum_retry_count = if count.is_empty() {
        0
    } else {
        count
            .parse()
            .map_err(|_| Failure::new(format!("invalid restart policy {s:?}: bad retry count")))?
    };
    match name {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => Ok(RestartPolicy {
            name: if name.is_empty() {
                "no".into()
            } else {
                name.into()
            },
            maximum_retry_count,
        }),
        _ => Err(Failure::new(format!(
            "invalid restart policy {s:?}: no, always, unless-stopped or on-failure[:N]"
        ))),
    }
}

fn port_key(p: &str) -> String {
    if p.contains('/') {
        p.to_string()
    } else {
        format!("{p}/tcp")
    }
}

/// `[IP:][HOSTPORT:]PORT[/PROTO]`.
fn parse_publish(p: &str) -> Result<(String, PortBinding)> {
    let (spec, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (ip, host_port, port) = match parts.as_slice() {
        [port] => ("", "", *port),
        [port, host] => ("", *host, *port),
        [port, host, ip] => (*ip, *host, *port),
        _ => return Err(Failure::new(format!("invalid port specification: {p:?}"))),
    };
    if port.parse::<u16>().is_err() {
        return Err(Failure::new(format!("invalid containerPort: {port}")));
    }
    if !host_port.is_empty() && host_port.parse::<u16>().is_err() {
        return Err(Failure::new(format!("invalid hostPort: {host_port}")));
    }
    Ok((
        format!("{port}/{proto}"),
        PortBinding {
            host_ip: ip.trim_matches(|c| c == '[' || c == ']').to_string(),
            host_port: host_port.to_string(),
        },
    ))
}

/// `--mount type=bind,source=/a,target=/b,readonly`.
fn parse_mount(spec: &str) -> Result<Mount> {
    let mut m = Mount {
        r#type: "volume".into(),
        ..Default::default()
    };
    let bad = |why: &str| Failure::new(format!("invalid argument {spec:?} for --mount: {why}"));
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k.to_ascii_lowercase().as_str() {
            "type" => m.r#type = v.to_string(),
            "source" | "src" => m.source = v.to_string(),
            "target" | "destination" | "dst" => m.target = v.to_string(),
            "readonly" | "ro" => {
                m.read_only = matches!(v, "" | "1" | "true");
            }
            "bind-propagation" => {
                m.bind_options
                    .get_or_insert_with(BindOptions::default)
                    .propagation = v.to_string()
            }
            "volume-nocopy" => {
                m.volume_options
                    .get_or_insert_with(VolumeOptions::default)
                    .no_copy = matches!(v, "" | "1" | "true")
            }
            "tmpfs-size" => {
                m.tmpfs_options
                    .get_or_insert_with(TmpfsOptions::default)
                    .size_bytes = ram_in_bytes(v)?
            }
            "tmpfs-mode" => {
                m.tmpfs_options
                    .get_or_insert_with(TmpfsOptions::default)
                    .mode = u32::from_str_radix(v, 8).map_err(|_| bad("bad tmpfs-mode"))?
            }
            "consistency" => m.consistency = v.to_string(),
            _ => return Err(bad(&format!("unknown option {k:?}"))),
        }
    }
    if m.target.is_empty() {
        return Err(bad("target is required"));
    }
    Ok(m)
}

fn parse_ulimit(u: &str) -> Result<berth_api::types::Ulimit> {
    let bad = || Failure::new(format!("invalid ulimit {u:?}: NAME=SOFT[:HARD]"));
    let (name, vals) = u.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
    Ok(berth_api::types::Ulimit {
        name: name.to_string(),
        soft: soft.parse().map_err(|_| bad())?,
        hard: hard.parse().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_mounts_restart() {
        let (k, b) = parse_publish("127.0.0.1:8080:80").unwrap();
        assert_eq!(k, "80/tcp");
        assert_eq!(
            (b.host_ip.as_str(), b.host_port.as_str()),
            ("127.0.0.1", "8080")
        );
        let (k, b) = parse_publish("53/udp").unwrap();
        assert_eq!(k, "53/udp");
        assert_eq!(b.host_port, "");
        assert!(parse_publish("x:80").is_err());
        let m = parse_mount("type=bind,source=/a,target=/b,readonly").unwrap();
        assert_eq!((m.r#type.as_str(), m.read_only), ("bind", true));
        assert!(parse_mount("type=bind,source=/a").is_err());
        assert_eq!(
            restart_policy("on-failure:3").unwrap().maximum_retry_count,
            3
        );
        assert!(restart_policy("sometimes").is_err());
    }
}
