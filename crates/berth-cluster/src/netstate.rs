//! The cluster's networking as the master decides it and every agent applies it: overlay
//! networks (subnet, VNI), each node's slice index, each service's virtual IPs, and the
//! tasks that take traffic. [`NetState`] is computed from the master's state after every
//! change and sent to every agent when it differs; an agent turns it into its VXLAN devices,
//! its nftables mesh table and its DNS records (`agent::apply_net`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Network, Node, PortConfig, Service, Task, TaskState, VirtualIp};

/// The routing mesh's network, made with the swarm.
pub const INGRESS: &str = "ingress";
pub const INGRESS_SUBNET: &str = "10.255.0.0/16";
/// VNIs: ingress 4096, user networks from 4097.
pub const INGRESS_VNI: u32 = 4096;

/// The routing mesh's network, as a new swarm gets it.
pub fn ingress_network(now: i64) -> Result<Network> {
    Ok(Network {
        id: crate::random_id(25)?,
        name: INGRESS.into(),
        created_at: now,
        updated_at: now,
        version: 1,
        subnet: INGRESS_SUBNET.into(),
        vni: INGRESS_VNI,
        ingress: true,
        ..Default::default()
    })
}

/// One node as the overlays see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetNode {
    pub id: String,
    /// Its underlay address.
    pub addr: String,
    pub index: u32,
}

/// A task that takes traffic: running, healthy when it has a check, wanted running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub task_id: String,
    pub slot: u64,
    pub node_id: String,
    /// Network name → IPv4.
    pub addrs: BTreeMap<String, String>,
}

/// A service's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub service_id: String,
    pub name: String,
    pub dnsrr: bool,
    /// Network name → its virtual IP (VIP mode).
    pub vips: BTreeMap<String, String>,
    /// Ports published through the mesh.
    pub ports: Vec<PortConfig>,
    /// The networks (names) the service is on.
    pub networks: Vec<String>,
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NetState {
    pub networks: Vec<Network>,
    pub nodes: Vec<NetNode>,
    pub services: Vec<Endpoints>,
}

/// Whether a task takes traffic.
pub fn serving(t: &Task) -> bool {
    t.desired_state == TaskState::Running
        && t.status.state == TaskState::Running
        && t.healthy != Some(false)
        && (t.spec.health.is_none() || t.healthy == Some(true))
        && !t.addrs.is_empty()
}

/// The state every agent gets.
pub fn compute<'a>(
    networks: impl Iterator<Item = &'a Network>,
    nodes: impl Iterator<Item = &'a Node>,
    services: impl Iterator<Item = (&'a Service, Vec<&'a Task>)>,
) -> NetState {
    let networks: Vec<Network> = networks.cloned().collect();
    let names: BTreeMap<&str, &str> = networks
        .iter()
        .map(|n| (n.id.as_str(), n.name.as_str()))
        .collect();
    let mut out = NetState {
        nodes: nodes
            .filter(|n| n.net_index > 0)
            .map(|n| NetNode {
                id: n.id.clone(),
                addr: n.addr.clone(),
                index: n.net_index,
            })
            .collect(),
        ..Default::default()
    };
    for (s, tasks) in services {
        if s.networks.is_empty() {
            continue;
        }
        let mut backends: Vec<Backend> = tasks
            .into_iter()
            .filter(|t| serving(t))
            .map(|t| Backend {
                task_id: t.id.clone(),
                slot: t.slot,
                node_id: t.node_id.clone(),
                addrs: t.addrs.clone(),
            })
            .collect();
        backends.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        out.services.push(Endpoints {
            service_id: s.id.clone(),
            name: s.spec.name.clone(),
            dnsrr: s.spec.dnsrr(),
            vips: s
                .vips
                .iter()
                .filter_map(|v| {
                    names
                        .get(v.network_id.as_str())
                        .map(|n| (n.to_string(), v.addr.clone()))
                })
                .collect(),
            ports: s.spec.ingress_ports().cloned().collect(),
            networks: s.networks.clone(),
            backends,
        });
    }
    out.networks = networks;
    out
}

fn parse_subnet(s: &str) -> Option<(u32, u8)> {
    let (a, p) = s.split_once('/')?;
    let a: std::net::Ipv4Addr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    (p <= 32).then_some((u32::from(a), p))
}

fn overlaps(a: &str, b: &str) -> bool {
    match (parse_subnet(a), parse_subnet(b)) {
        (Some((x, p)), Some((y, q))) => {
            let m = |l: u8| {
                if l == 0 {
                    0
                } else {
                    u32::MAX << (32 - l as u32)
                }
            };
            let l = p.min(q);
            x & m(l) == y & m(l)
        }
        _ => false,
    }
}

/// A subnet for a new overlay: `wanted` if given and free, else the first free /16 of
/// 10.200.0.0 … 10.254.0.0. A subnet must be a /26 or larger, for per-node slices.
pub fn allocate_subnet(taken: &[&Network], wanted: Option<&str>) -> Result<String> {
    if let Some(w) = wanted.filter(|w| !w.is_empty()) {
        let (addr, p) = parse_subnet(w).ok_or_else(|| {
            Error::InvalidArgument(format!("invalid subnet {w:?}: CIDR expected"))
        })?;
        if p > 26 {
            return Err(Error::InvalidArgument(format!(
                "subnet {w} is too small for an overlay network: each node needs a slice; use a /26 or larger"
            )));
        }
        let m = if p == 0 {
            0
        } else {
            u32::MAX << (32 - p as u32)
        };
        let norm = format!("{}/{p}", std::net::Ipv4Addr::from(addr & m));
        if let Some(n) = taken.iter().find(|n| overlaps(&n.subnet, &norm)) {
            return Err(Error::Conflict(format!(
                "subnet {norm} overlaps network {} ({})",
                n.name, n.subnet
            )));
        }
        return Ok(norm);
    }
    for b in 200..=254u32 {
        let s = format!("10.{b}.0.0/16");
        if !taken.iter().any(|n| overlaps(&n.subnet, &s)) {
            return Ok(s);
        }
    }
    Err(Error::Unavailable(
        "no free overlay subnet in 10.200.0.0-10.254.255.255: give one with --subnet".into(),
    ))
}

pub fn allocate_vni(taken: &[&Network]) -> u32 {
    let used: BTreeSet<u32> = taken.iter().map(|n| n.vni).collect();
    (INGRESS_VNI + 1..).find(|v| !used.contains(v)).unwrap_or(0)
}

/// The smallest index ≥ 1 no node has.
pub fn allocate_index<'a>(nodes: impl Iterator<Item = &'a Node>) -> u32 {
    let used: BTreeSet<u32> = nodes.map(|n| n.net_index).collect();
    (1..).find(|i| !used.contains(i)).unwrap_or(1)
}

/// The `n`-th address of a network's VIP slice (slice 0, from its third address).
pub fn vip_addr(subnet: &str, n: u32) -> Result<String> {
    let (addr, p) = parse_subnet(subnet)
        .ok_or_else(|| Error::Internal(format!("bad network subnet {subnet}")))?;
    let slice = if p <= 16 { 24 } else { (p + 6).min(28) };
    let room = (1u32 << (32 - slice as u32)) - 3;
    if n >= room {
        return Err(Error::Unavailable(format!(
            "network {subnet} has no virtual IP left"
        )));
    }
    let m = if p == 0 {
        0
    } else {
        u32::MAX << (32 - p as u32)
    };
    Ok(std::net::Ipv4Addr::from((addr & m) + 2 + n).to_string())
}

/// The range Swarm takes published ports from when a service publishes one through the mesh
/// without choosing it (`-p 80`).
pub const PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Gives `svc`'s mesh ports without a published port one from [`PORT_RANGE`], and refuses a
/// published port another service has already: a mesh port answers on every node, so it
/// clashes with the same port of any other service, mesh or host mode (which the mesh would
/// take on every node). `others` are the other services.
pub fn assign_ports(svc: &mut Service, others: &[&Service]) -> Result<()> {
    if svc.spec.dnsrr() && svc.spec.ports.iter().any(|p| p.mode != "host") {
        return Err(Error::InvalidArgument(
            "port published with ingress mode can't be used with dnsrr mode".into(),
        ));
    }
    let used_by = |port: u16, proto: &str, mesh_only: bool| {
        others.iter().find(|o| {
            o.spec.ports.iter().any(|q| {
                q.published == port && q.protocol == proto && (!mesh_only || q.mode != "host")
            })
        })
    };
    for i in 0..svc.spec.ports.len() {
        let p = &svc.spec.ports[i];
        if p.mode == "host" || p.published != 0 {
            continue;
        }
        let proto = p.protocol.clone();
        let mine: BTreeSet<u16> = svc
            .spec
            .ports
            .iter()
            .filter(|q| q.protocol == proto)
            .map(|q| q.published)
            .collect();
        let free = PORT_RANGE
            .clone()
            .find(|c| !mine.contains(c) && used_by(*c, &proto, false).is_none())
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "no free port left in {}-{} to publish {}/{proto} on",
                    PORT_RANGE.start(),
                    PORT_RANGE.end(),
                    svc.spec.ports[i].target
                ))
            })?;
        svc.spec.ports[i].published = free;
    }
    for p in svc.spec.ports.iter().filter(|p| p.published != 0) {
        let mesh = p.mode != "host";
        if let Some(o) = used_by(p.published, &p.protocol, !mesh) {
            return Err(Error::Conflict(format!(
                "port {}/{} is already in use by service {}{}",
                p.published,
                p.protocol,
                o.spec.name,
                if mesh {
                    ""
                } else {
                    " through the routing mesh, on every node"
                }
            )));
        }
    }
    Ok(())
}

/// Gives `svc` a VIP on each of its networks that lacks one (VIP mode), drops VIPs of
/// networks it left. `all` are the other services (their VIPs are taken).
pub fn assign_vips(
    svc: &mut Service,
    networks: &BTreeMap<String, Network>,
    others: &[&Service],
) -> Result<()> {
    let by_name: BTreeMap<&str, &Network> =
        networks.values().map(|n| (n.name.as_str(), n)).collect();
    let wanted: Vec<&Network> = svc
        .networks
        .iter()
        .filter_map(|n| by_name.get(n.as_str()).copied())
        .collect();
    if svc.spec.dnsrr() {
        svc.vips.clear();
        return Ok(());
    }
    svc.vips
        .retain(|v| wanted.iter().any(|n| n.id == v.network_id));
    for n in wanted {
        if svc.vips.iter().any(|v| v.network_id == n.id) {
            continue;
        }
        let used: BTreeSet<String> = others
            .iter()
            .flat_map(|s| s.vips.iter())
            .filter(|v| v.network_id == n.id)
            .map(|v| v.addr.clone())
            .collect();
        let mut i = 0;
        let addr = loop {
            let a = vip_addr(&n.subnet, i)?;
            if !used.contains(&a) {
                break a;
            }
            i += 1;
        };
        svc.vips.push(VirtualIp {
            network_id: n.id.clone(),
            addr,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn net(id: &str, name: &str, subnet: &str) -> Network {
        Network {
            id: id.into(),
            name: name.into(),
            subnet: subnet.into(),
            ..Default::default()
        }
    }

    #[test]
    fn subnets_vnis_indexes() {
        let a = net("a", "ingress", INGRESS_SUBNET);
        let b = net("b", "x", "10.200.0.0/16");
        assert_eq!(allocate_subnet(&[&a, &b], None).unwrap(), "10.201.0.0/16");
        assert_eq!(
            allocate_subnet(&[&a], Some("10.9.3.7/20")).unwrap(),
            "10.9.0.0/20"
        );
        assert!(allocate_subnet(&[&b], Some("10.200.5.0/24"))
            .unwrap_err()
            .to_string()
            .contains("overlaps network x"));
        assert!(allocate_subnet(&[], Some("10.1.1.0/28"))
            .unwrap_err()
            .to_string()
            .contains("too small"));
        let mut c = b.clone();
        c.vni = INGRESS_VNI + 1;
        assert_eq!(allocate_vni(&[&c]), INGRESS_VNI + 2);
        let nodes = [
            Node {
                net_index: 1,
                ..Default::default()
            },
            Node {
                net_index: 3,
                ..Default::default()
            },
        ];
        assert_eq!(allocate_index(nodes.iter()), 2);
        assert_eq!(vip_addr("10.200.0.0/16", 0).unwrap(), "10.200.0.2");
        assert_eq!(vip_addr("10.9.0.0/20", 1).unwrap(), "10.9.0.3");
        assert!(vip_addr("10.9.0.0/20", 61).is_err());
    }

    #[test]
    fn vips_are_unique_and_follow_networks() {
        let mut networks = BTreeMap::new();
        networks.insert("n1".to_string(), net("n1", "app", "10.200.0.0/16"));
        let other = Service {
            vips: vec![VirtualIp {
                network_id: "n1".into(),
                addr: "10.200.0.2".into(),
            }],
            ..Default::default()
        };
        let mut s = Service {
            networks: vec!["app".into()],
            ..Default::default()
        };
        assign_vips(&mut s, &networks, &[&other]).unwrap();
        assert_eq!(s.vips[0].addr, "10.200.0.3");
        s.networks.clear();
        assign_vips(&mut s, &networks, &[&other]).unwrap();
        assert!(s.vips.is_empty());
        s.networks = vec!["app".into()];
        s.spec.endpoint_mode = "dnsrr".into();
        assign_vips(&mut s, &networks, &[&other]).unwrap();
        assert!(s.vips.is_empty());
    }

    fn publishing(name: &str, ports: &[(u16, u16, &str)]) -> Service {
        let mut s = Service::default();
        s.spec.name = name.into();
        s.spec.ports = ports
            .iter()
            .map(|(published, target, mode)| PortConfig {
                protocol: "tcp".into(),
                target: *target,
                published: *published,
                mode: mode.to_string(),
            })
            .collect();
        s
    }

    #[test]
    fn mesh_ports_are_given_and_never_shared() {
        let web = publishing("web", &[(8080, 80, "ingress"), (30000, 81, "ingress")]);
        let db = publishing("db", &[(5432, 5432, "host")]);
        let mut s = publishing("api", &[(0, 80, "ingress"), (0, 81, "ingress")]);
        assign_ports(&mut s, &[&web, &db]).unwrap();
        let got: Vec<u16> = s.spec.ports.iter().map(|p| p.published).collect();
        assert_eq!(got, [30001, 30002]);
        let mut clash = publishing("x", &[(8080, 80, "ingress")]);
        let e = assign_ports(&mut clash, &[&web]).unwrap_err().to_string();
        assert!(
            e.contains("port 8080/tcp is already in use by service web"),
            "{e}"
        );
        // The mesh would take a host-mode port on every node, and the other way round.
        let mut clash = publishing("x", &[(5432, 5432, "ingress")]);
        assert!(assign_ports(&mut clash, &[&db]).is_err());
        let mut clash = publishing("x", &[(8080, 80, "host")]);
        let e = assign_ports(&mut clash, &[&web]).unwrap_err().to_string();
        assert!(e.contains("through the routing mesh"), "{e}");
        // Host mode on several nodes is the scheduler's business.
        let mut ok = publishing("y", &[(5432, 5432, "host")]);
        assign_ports(&mut ok, &[&db]).unwrap();
        let mut rr = publishing("rr", &[(0, 80, "ingress")]);
        rr.spec.endpoint_mode = "dnsrr".into();
        assert!(assign_ports(&mut rr, &[])
            .unwrap_err()
            .to_string()
            .contains("dnsrr"));
    }

    #[test]
    fn only_serving_tasks_are_backends() {
        let n = net("n1", "app", "10.200.0.0/16");
        let node = Node {
            id: "a".into(),
            addr: "192.0.2.1".into(),
            net_index: 1,
            ..Default::default()
        };
        let svc = Service {
            id: "s".into(),
            networks: vec!["app".into()],
            vips: vec![VirtualIp {
                network_id: "n1".into(),
                addr: "10.200.0.2".into(),
            }],
            ..Default::default()
        };
        let mut t = Task {
            id: "t1".into(),
            service_id: "s".into(),
            node_id: "a".into(),
            slot: 1,
            spec: TaskTemplate::default(),
            task_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus::new(TaskState::Running, "started", 0),
            version: 0,
            created_at: 0,
            updated_at: 0,
            service_name: "web".into(),
            attempt: 0,
            healthy: None,
            restart_at: 0,
            retire: Retire::Keep,
            replaces: String::new(),
            ports: vec![],
            networks: vec!["app".into()],
            addrs: [("app".to_string(), "10.200.1.2".to_string())].into(),
        };
        let mut stopping = t.clone();
        stopping.id = "t2".into();
        stopping.desired_state = TaskState::Shutdown;
        let mut unhealthy = t.clone();
        unhealthy.id = "t3".into();
        unhealthy.spec.health = Some(Health::default());
        unhealthy.healthy = Some(false);
        let mut starting = t.clone();
        starting.id = "t4".into();
        starting.status.state = TaskState::Starting;
        let st = compute(
            [&n].into_iter(),
            [&node].into_iter(),
            [(&svc, vec![&t, &stopping, &unhealthy, &starting])].into_iter(),
        );
        assert_eq!(st.services.len(), 1);
        let e = &st.services[0];
        assert_eq!(e.backends.len(), 1);
        assert_eq!(e.backends[0].task_id, "t1");
        assert_eq!(e.vips["app"], "10.200.0.2");
        assert_eq!(st.nodes[0].index, 1);
        t.addrs.clear();
        assert!(!serving(&t));
    }
}
