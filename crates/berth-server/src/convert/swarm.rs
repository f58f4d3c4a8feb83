//! Swarm-mode wire types ↔ berth-cluster's model.

use std::collections::BTreeMap;

use berth_api::types::swarm as w;
use berth_cluster::model as m;

use crate::error::ApiError;
use crate::time::format_rfc3339_nanos as ts;

pub fn version(v: u64) -> w::Version {
    w::Version { index: v }
}

pub fn swarm(s: &m::SwarmInfo) -> w::Swarm {
    w::Swarm {
        id: s.id.clone(),
        version: version(s.version),
        created_at: ts(s.created_at),
        updated_at: ts(s.updated_at),
        spec: serde_json::json!({
            "Name": "default",
            "Labels": {},
            "Orchestration": {"TaskHistoryRetentionLimit": 5},
            "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0, "LogEntriesForSlowFollowers": 500, "ElectionTick": 10, "HeartbeatTick": 1},
            "Dispatcher": {"HeartbeatPeriod": s.heartbeat_period},
            "CAConfig": {"NodeCertExpiry": 7776000000000000i64},
            "TaskDefaults": {},
            "EncryptionConfig": {"AutoLockManagers": false}
        }),
        tls_info: w::TlsInfo {
            trust_root: s.ca_cert_pem.clone(),
            ..Default::default()
        },
        root_rotation_in_progress: false,
        default_addr_pool: vec!["10.0.0.0/8".into()],
        subnet_size: 24,
        data_path_port: 4789,
        join_tokens: w::JoinTokens {
            worker: s.worker_token.clone(),
            manager: s.manager_token.clone(),
        },
    }
}

pub fn node(n: &m::Node) -> w::Node {
    w::Node {
        id: n.id.clone(),
        version: version(n.version),
        created_at: ts(n.created_at),
        updated_at: ts(n.updated_at),
        spec: w::NodeSpec {
            name: n.spec.name.clone(),
            labels: n.spec.labels.clone(),
            role: match n.spec.role {
                m::Role::Manager => "manager".into(),
                m::Role::Worker => "worker".into(),
            },
            availability: n.spec.availability.as_str().into(),
        },
        description: w::NodeDescription {
            hostname: n.description.hostname.clone(),
            platform: w::Platform {
                architecture: n.description.arch.clone(),
                os: n.description.os.clone(),
            },
            resources: w::Resources {
                nano_cpus: n.description.nano_cpus,
                memory_bytes: n.description.memory_bytes,
            },
            engine: w::EngineDescription {
                engine_version: n.description.engine_version.clone(),
                labels: None,
                plugins: vec![
                    serde_json::json!({"Type": "Log", "Name": "json-file"}),
                    serde_json::json!({"Type": "Network", "Name": "bridge"}),
                    serde_json::json!({"Type": "Volume", "Name": "local"}),
                ],
            },
            tls_info: w::TlsInfo::default(),
        },
        status: w::NodeStatus {
            state: n.state.as_str().into(),
            message: n.message.clone(),
            addr: n.addr.clone(),
        },
        manager_status: n.manager_addr.as_ref().map(|a| w::ManagerStatus {
            leader: n.leader,
            reachability: if n.state == m::NodeState::Down {
                "unreachable"
            } else {
                "reachable"
            }
            .into(),
            addr: a.clone(),
        }),
    }
}

pub fn node_spec(s: &w::NodeSpec) -> Result<m::NodeSpec, ApiError> {
    Ok(m::NodeSpec {
        name: s.name.clone(),
        labels: s.labels.clone(),
        role: match s.role.as_str() {
            "manager" => m::Role::Manager,
            "worker" | "" => m::Role::Worker,
            r => {
                return Err(ApiError::bad_request(format!(
                    "invalid role {r:?}: manager or worker"
                )))
            }
        },
        availability: if s.availability.is_empty() {
            m::Availability::Active
        } else {
            m::Availability::parse(&s.availability).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid availability {:?}: active, pause or drain",
                    s.availability
                ))
            })?
        },
    })
}

fn update_config(u: &Option<w::UpdateConfig>, field: &str) -> Result<m::UpdateConfig, ApiError> {
    let d = m::UpdateConfig::default();
    let Some(u) = u else { return Ok(d) };
    Ok(m::UpdateConfig {
        parallelism: u.parallelism,
        delay: u.delay,
        failure_action: match u.failure_action.as_str() {
            "" | "pause" => m::FailureAction::Pause,
            "continue" => m::FailureAction::Continue,
            "rollback" => m::FailureAction::Rollback,
            a => {
                return Err(ApiError::bad_request(format!(
                    "{field}.FailureAction: invalid value {a:?} (pause, continue or rollback)"
                )))
            }
        },
        monitor: if u.monitor > 0 { u.monitor } else { d.monitor },
        max_failure_ratio: u.max_failure_ratio,
        order: match u.order.as_str() {
            "" | "stop-first" => m::UpdateOrder::StopFirst,
            "start-first" => m::UpdateOrder::StartFirst,
            o => {
                return Err(ApiError::bad_request(format!(
                    "{field}.Order: invalid value {o:?} (stop-first or start-first)"
                )))
            }
        },
    })
}

fn update_config_out(u: &m::UpdateConfig) -> w::UpdateConfig {
    w::UpdateConfig {
        parallelism: u.parallelism,
        delay: u.delay,
        failure_action: match u.failure_action {
            m::FailureAction::Pause => "pause",
            m::FailureAction::Continue => "continue",
            m::FailureAction::Rollback => "rollback",
        }
        .into(),
        monitor: u.monitor,
        max_failure_ratio: u.max_failure_ratio,
        order: match u.order {
            m::UpdateOrder::StopFirst => "stop-first",
            m::UpdateOrder::StartFirst => "start-first",
        }
        .into(),
    }
}

fn resources(r: &Option<w::Resources>) -> m::Resources {
    r.map(|r| m::Resources {
        nano_cpus: r.nano_cpus,
        memory_bytes: r.memory_bytes,
    })
    .unwrap_or_default()
}

fn resources_out(r: m::Resources) -> Option<w::Resources> {
    (r != m::Resources::default()).then_some(w::Resources {
        nano_cpus: r.nano_cpus,
        memory_bytes: r.memory_bytes,
    })
}

/// The wire ServiceSpec the CLI sent → the cluster's, or a 400 naming the field.
pub fn service_spec(s: &w::ServiceSpec) -> Result<m::ServiceSpec, ApiError> {
    let c = &s.task_template.container_spec;
    if !c.secrets.is_empty() || !c.configs.is_empty() {
        return Err(ApiError::bad_request(
            "secrets and configs are not supported by Berth yet",
        ));
    }
    if s.mode.replicated_job.is_some() || s.mode.global_job.is_some() {
        return Err(ApiError::bad_request(
            "job modes (replicated-job, global-job) are not supported by Berth yet",
        ));
    }
    let mode = if s.mode.global.is_some() {
        m::Mode::Global
    } else {
        let r = s
            .mode
            .replicated
            .as_ref()
            .and_then(|r| r.replicas)
            .unwrap_or(1);
        if r < 0 {
            return Err(ApiError::bad_request(format!(
                "invalid replicas value {r}: it must be zero or more"
            )));
        }
        m::Mode::Replicated { replicas: r as u64 }
    };
    let rp = s.task_template.restart_policy.clone().unwrap_or_default();
    let dflt = m::RestartPolicy::default();
    let restart = m::RestartPolicy {
        condition: if rp.condition.is_empty() {
            dflt.condition
        } else {
            m::RestartCondition::parse(&rp.condition).ok_or_else(|| {
                ApiError::bad_request(format!("TaskTemplate.RestartPolicy.Condition: invalid value {:?} (none, on-failure or any)", rp.condition))
            })?
        },
        delay: rp.delay.unwrap_or(dflt.delay),
        max_attempts: rp.max_attempts.unwrap_or(0),
        window: rp.window.unwrap_or(0),
    };
    let mut spread = Vec::new();
    let mut binpack = false;
    for p in &s.task_template.placement.preferences {
        spread.push(p.spread.spread_descriptor.clone());
    }
    if s.labels.get("berth.placement").map(String::as_str) == Some("binpack") {
        binpack = true;
    }
    let ports = s
        .endpoint_spec
        .ports
        .iter()
        .map(|p| {
            Ok(m::PortConfig {
                protocol: if p.protocol.is_empty() {
                    "tcp".into()
                } else {
                    p.protocol.clone()
                },
                target: u16::try_from(p.target_port).map_err(|_| {
                    ApiError::bad_request(format!("invalid target port {}", p.target_port))
                })?,
                published: u16::try_from(p.published_port).map_err(|_| {
                    ApiError::bad_request(format!("invalid published port {}", p.published_port))
                })?,
                mode: if p.publish_mode.is_empty() {
                    "ingress".into()
                } else {
                    p.publish_mode.clone()
                },
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let mut networks = Vec::new();
    for n in &s.task_template.networks {
        let target = n
            .get("Target")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request("invalid TaskTemplate.Networks entry: Target is needed")
            })?;
        networks.push(target.to_string());
    }
    let endpoint_mode = s.endpoint_spec.mode.clone();
    Ok(m::ServiceSpec {
        networks,
        endpoint_mode,
        name: s.name.clone(),
        labels: s.labels.clone(),
        mode,
        task: m::TaskTemplate {
            image: c.image.clone(),
            command: c.command.clone(),
            args: c.args.clone(),
            env: c.env.clone(),
            dir: c.dir.clone(),
            user: c.user.clone(),
            hostname: c.hostname.clone(),
            labels: c.labels.clone().unwrap_or_default(),
            mounts: c
                .mounts
                .iter()
                .map(|x| m::Mount {
                    kind: if x.kind.is_empty() {
                        "volume".into()
                    } else {
                        x.kind.clone()
                    },
                    source: x.source.clone(),
                    target: x.target.clone(),
                    read_only: x.read_only,
                })
                .collect(),
            health: c
                .healthcheck
                .as_ref()
                .filter(|h| !h.test.is_empty())
                .map(|h| m::Health {
                    test: h.test.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    retries: h.retries,
                    start_period: h.start_period,
                }),
            stop_signal: c.stop_signal.clone(),
            stop_grace_period: c.stop_grace_period.unwrap_or(0),
            init: c.init.unwrap_or(false),
            tty: c.tty,
            read_only: c.read_only,
            limits: resources(&s.task_template.resources.limits),
            reservations: resources(&s.task_template.resources.reservations),
            restart,
            placement: m::Placement {
                constraints: s.task_template.placement.constraints.clone(),
                spread,
                binpack,
            },
            force_update: s.task_template.force_update,
        },
        update: update_config(&s.update_config, "UpdateConfig")?,
        rollback: update_config(&s.rollback_config, "RollbackConfig")?,
        ports,
    })
}

fn task_spec_out(t: &m::TaskTemplate) -> w::TaskSpec {
    w::TaskSpec {
        container_spec: w::ContainerSpec {
            image: t.image.clone(),
            labels: (!t.labels.is_empty()).then(|| t.labels.clone()),
            command: t.command.clone(),
            args: t.args.clone(),
            hostname: t.hostname.clone(),
            env: t.env.clone(),
            dir: t.dir.clone(),
            user: t.user.clone(),
            tty: t.tty,
            read_only: t.read_only,
            mounts: t
                .mounts
                .iter()
                .map(|x| w::Mount {
                    kind: x.kind.clone(),
                    source: x.source.clone(),
                    target: x.target.clone(),
                    read_only: x.read_only,
                })
                .collect(),
            stop_signal: t.stop_signal.clone(),
            stop_grace_period: (t.stop_grace_period > 0).then_some(t.stop_grace_period),
            healthcheck: t.health.as_ref().map(|h| w::HealthConfig {
                test: h.test.clone(),
                interval: h.interval,
                timeout: h.timeout,
                start_period: h.start_period,
                retries: h.retries,
            }),
            init: t.init.then_some(true),
            isolation: "default".into(),
            secrets: Vec::new(),
            configs: Vec::new(),
        },
        resources: w::ResourceRequirements {
            limits: resources_out(t.limits),
            reservations: resources_out(t.reservations),
        },
        restart_policy: Some(w::RestartPolicy {
            condition: t.restart.condition.as_str().into(),
            delay: Some(t.restart.delay),
            max_attempts: Some(t.restart.max_attempts),
            window: (t.restart.window > 0).then_some(t.restart.window),
        }),
        placement: w::Placement {
            constraints: t.placement.constraints.clone(),
            preferences: t
                .placement
                .spread
                .iter()
                .map(|d| w::PlacementPreference {
                    spread: w::SpreadOver {
                        spread_descriptor: d.clone(),
                    },
                })
                .collect(),
            platforms: Vec::new(),
        },
        networks: Vec::new(),
        force_update: t.force_update,
        runtime: "container".into(),
    }
}

pub fn service_spec_out(s: &m::ServiceSpec) -> w::ServiceSpec {
    let mut task_template = task_spec_out(&s.task);
    task_template.networks = s
        .networks
        .iter()
        .map(|n| serde_json::json!({ "Target": n }))
        .collect();
    w::ServiceSpec {
        name: s.name.clone(),
        labels: s.labels.clone(),
        task_template,
        mode: match s.mode {
            m::Mode::Replicated { replicas } => w::ServiceMode {
                replicated: Some(w::Replicated {
                    replicas: Some(replicas as i64),
                }),
                ..Default::default()
            },
            m::Mode::Global => w::ServiceMode {
                global: Some(serde_json::json!({})),
                ..Default::default()
            },
        },
        update_config: Some(update_config_out(&s.update)),
        rollback_config: Some(update_config_out(&s.rollback)),
        endpoint_spec: endpoint_spec(s),
    }
}

fn endpoint_spec(s: &m::ServiceSpec) -> w::EndpointSpec {
    w::EndpointSpec {
        mode: if s.dnsrr() { "dnsrr" } else { "vip" }.into(),
        ports: s
            .ports
            .iter()
            .map(|p| w::PortConfig {
                name: String::new(),
                protocol: p.protocol.clone(),
                target_port: p.target as u32,
                published_port: p.published as u32,
                publish_mode: p.mode.clone(),
            })
            .collect(),
    }
}

/// `status`: `ServiceStatus` from the service's tasks (`GET /services?status=true`).
pub fn service(s: &m::Service, tasks: Option<&[&m::Task]>) -> w::Service {
    let status = tasks.map(|ts| {
        let running = ts
            .iter()
            .filter(|t| {
                t.desired_state == m::TaskState::Running && t.status.state == m::TaskState::Running
            })
            .count() as u64;
        let desired = match s.spec.mode {
            m::Mode::Replicated { replicas } => replicas,
            m::Mode::Global => ts
                .iter()
                .filter(|t| t.desired_state == m::TaskState::Running)
                .count() as u64,
        };
        w::ServiceStatus {
            running_tasks: running,
            desired_tasks: desired,
            completed_tasks: 0,
        }
    });
    w::Service {
        id: s.id.clone(),
        version: version(s.version),
        created_at: ts(s.created_at),
        updated_at: ts(s.updated_at),
        spec: service_spec_out(&s.spec),
        previous_spec: s.previous_spec.as_ref().map(service_spec_out),
        endpoint: w::Endpoint {
            spec: endpoint_spec(&s.spec),
            ports: endpoint_spec(&s.spec).ports,
            virtual_ips: s
                .vips
                .iter()
                .map(|v| w::VirtualIp {
                    network_id: v.network_id.clone(),
                    addr: format!("{}/32", v.addr),
                })
                .collect(),
        },
        update_status: s.update_status.as_ref().map(|u| w::UpdateStatus {
            state: u.state.as_str().into(),
            started_at: ts(u.started_at),
            completed_at: if u.completed_at > 0 {
                ts(u.completed_at)
            } else {
                String::new()
            },
            message: u.message.clone(),
        }),
        service_status: status,
    }
}

pub fn task(t: &m::Task) -> w::Task {
    let mut labels = BTreeMap::new();
    labels.insert("com.docker.swarm.task.name".to_string(), t.container_name());
    w::Task {
        id: t.id.clone(),
        version: version(t.version),
        created_at: ts(t.created_at),
        updated_at: ts(t.updated_at),
        labels: BTreeMap::new(),
        spec: task_spec_out(&t.spec),
        service_id: t.service_id.clone(),
        slot: t.slot,
        node_id: t.node_id.clone(),
        status: w::TaskStatus {
            timestamp: ts(t.status.timestamp),
            state: t.status.state.as_str().into(),
            message: t.status.message.clone(),
            err: t.status.err.clone(),
            container_status: (!t.status.container_id.is_empty()).then(|| w::ContainerStatus {
                container_id: t.status.container_id.clone(),
                pid: t.status.pid,
                exit_code: t.status.exit_code,
            }),
            port_status: serde_json::json!({}),
        },
        desired_state: t.desired_state.as_str().into(),
    }
}

/// The `Swarm` section of `GET /info`.
pub fn swarm_info(s: &berth_cluster::SwarmStatus) -> berth_api::types::SwarmInfo {
    use berth_cluster::LocalState;
    if s.state == LocalState::Inactive {
        return berth_api::types::SwarmInfo {
            local_node_state: "inactive".into(),
            ..Default::default()
        };
    }
    berth_api::types::SwarmInfo {
        node_id: s.node_id.clone(),
        node_addr: s.node_addr.clone(),
        local_node_state: "active".into(),
        control_available: s.manager,
        error: String::new(),
        remote_managers: Some(
            s.remote_managers
                .iter()
                .map(|(id, addr)| serde_json::json!({"NodeID": id, "Addr": addr}))
                .collect(),
        ),
        nodes: s.manager.then_some(s.nodes as i64),
        managers: s.manager.then_some(s.managers as i64),
        cluster: s.swarm.as_ref().map(|sw| {
            let w = swarm(sw);
            serde_json::json!({
                "ID": w.id, "Version": w.version, "CreatedAt": w.created_at, "UpdatedAt": w.updated_at,
                "Spec": w.spec, "TLSInfo": w.tls_info, "RootRotationInProgress": false,
                "DefaultAddrPool": w.default_addr_pool, "SubnetSize": w.subnet_size, "DataPathPort": w.data_path_port
            })
        }),
    }
}
