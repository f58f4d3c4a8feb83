//! What an agent makes of the cluster's [`NetState`] on its node:
//! - each overlay network becomes a local engine network (driver `overlay`, the node's slice
//!   as its subnet, so containers attach to it like to any network) and a VXLAN device with
//!   a route, neighbour and forwarding entry per other node ([`berth_engine::dataplane::OverlayPlan`]);
//! - the services' virtual IPs and mesh-published ports become the node's nftables table
//!   ([`berth_engine::dataplane::MeshRules`]), with only serving tasks as backends;
//! - names go to each network's DNS: `SERVICE` (its VIP, or every task's address with
//!   dnsrr), `tasks.SERVICE` (every task), and per task `SLOT.SERVICE`, `TASKID.SERVICE`
//!   and its container name `SERVICE.SLOT.TASKID`.
//!
//! Applying is idempotent: the same state twice changes nothing on the host. It happens on
//! the dataplane's own thread ([`Dataplane::submit`] only hands the state over), so a slow
//! apply (many `ip` and `conntrack` runs) never holds up the agent's session, which is also
//! its heartbeat; a failed apply is tried again half a second later, or with a newer state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use berth_engine::dataplane::{
    MeshPort, MeshRules, MeshService, OverlayPeer, OverlayPlan, Protocol, Subnet,
};
use berth_engine::{Engine, NetworkSpec};

use crate::error::{Error, Result};
use crate::netstate::NetState;

/// The engine label naming the cluster network a local overlay piece belongs to.
pub const LABEL_NETWORK: &str = "com.docker.swarm.network.id";

pub struct Dataplane {
    shared: Arc<Shared>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    engine: Arc<Engine>,
    node_id: String,
    addr: Ipv4Addr,
    /// The backends of the last state applied.
    backends: Mutex<BTreeSet<Ipv4Addr>>,
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    /// The newest state not applied yet.
    next: Option<Arc<NetState>>,
    stop: bool,
}

/// How long a failed apply waits before it is tried again (unless a newer state comes).
const RETRY: Duration = Duration::from_millis(500);

fn net_err(e: berth_engine::dataplane::NetError) -> Error {
    Error::Internal(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The mesh table for `net` as seen from any node (it is the same on every node).
pub fn mesh_rules(net: &NetState) -> MeshRules {
    let ingress: BTreeSet<&str> = net
        .networks
        .iter()
        .filter(|n| n.ingress)
        .map(|n| n.name.as_str())
        .collect();
    let mut rules = MeshRules {
        masquerade: net
            .networks
            .iter()
            .filter(|n| !n.internal)
            .filter_map(|n| n.subnet.parse().ok())
            .collect(),
        ..Default::default()
    };
    for e in &net.services {
        for (i, n) in e.networks.iter().enumerate() {
            let backends: Vec<Ipv4Addr> = e
                .backends
                .iter()
                .filter_map(|b| b.addrs.get(n))
                .filter_map(|a| a.parse().ok())
                .collect();
            let vips: Vec<Ipv4Addr> = if e.dnsrr {
                Vec::new()
            } else {
                e.vips
                    .get(n)
                    .and_then(|v| v.parse().ok())
                    .into_iter()
                    .collect()
            };
            let ports: Vec<MeshPort> = if ingress.contains(n.as_str()) {
                e.ports
                    .iter()
                    .map(|p| MeshPort {
                        protocol: match p.protocol.as_str() {
                            "udp" => Protocol::Udp,
                            "sctp" => Protocol::Sctp,
                            _ => Protocol::Tcp,
                        },
                        published: p.published,
                        target: p.target,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            if vips.is_empty() && ports.is_empty() {
                continue;
            }
            rules.services.push(MeshService {
                id: format!("{}{i}", &e.service_id[..e.service_id.len().min(12)]),
                vips,
                ports,
                backends,
            });
        }
    }
    rules
}

/// The DNS records of network `network`: (names, address) pairs.
pub fn dns_records(net: &NetState, network: &str) -> Vec<(Vec<String>, Ipv4Addr)> {
    let mut out = Vec::new();
    for e in net
        .services
        .iter()
        .filter(|e| e.networks.iter().any(|n| n == network))
    {
        let addrs: Vec<(&crate::netstate::Backend, Ipv4Addr)> = e
            .backends
            .iter()
            .filter_map(|b| {
                b.addrs
                    .get(network)
                    .and_then(|a| a.parse().ok())
                    .map(|a| (b, a))
            })
            .collect();
        if e.dnsrr {
            for (_, a) in &addrs {
                out.push((vec![e.name.clone()], *a));
            }
        } else if let Some(v) = e.vips.get(network).and_then(|v| v.parse().ok()) {
            out.push((vec![e.name.clone()], v));
        }
        for (b, a) in &addrs {
            let mut names = vec![
                format!("tasks.{}", e.name),
                format!("{}.{}", b.task_id, e.name),
                format!("{}.{}.{}", e.name, b.slot, b.task_id),
            ];
            if b.slot > 0 {
                names.push(format!("{}.{}", b.slot, e.name));
            }
            out.push((names, *a));
        }
    }
    out
}

/// Refuses an overlay subnet that overlaps a local bridge network or a route of this node
/// (other than the swarm's own, in `swarm`): its containers could not be told apart from
/// them. Checked on the manager when a network is made with `--subnet`; another node whose
/// networks clash refuses its piece and logs why.
pub fn check_local_subnet(
    engine: &Engine,
    swarm: &[crate::model::Network],
    subnet: &str,
) -> Result<()> {
    let Ok(want) = subnet.parse::<Subnet>() else {
        // The master says what is wrong with it.
        return Ok(());
    };
    let locals = engine
        .networks()
        .map_err(|e| Error::Internal(e.to_string()))?;
    for n in locals.iter().filter(|n| n.driver == "bridge") {
        if let Ok(s) = n.subnet.parse::<Subnet>() {
            if s.overlaps(&want) {
                return Err(Error::Conflict(format!(
                    "subnet {want} overlaps local network {} ({s}) on this node",
                    n.name
                )));
            }
        }
    }
    let ours: Vec<Subnet> = swarm.iter().filter_map(|n| n.subnet.parse().ok()).collect();
    for r in berth_engine::dataplane::host_routes() {
        if r.overlaps(&want) && !ours.iter().any(|s| s.overlaps(&r)) {
            return Err(Error::Conflict(format!(
                "subnet {want} overlaps the route to {r} on this node"
            )));
        }
    }
    Ok(())
}

impl Dataplane {
    pub fn new(engine: Arc<Engine>, node_id: &str, advertise: &str) -> Result<Dataplane> {
        let host = advertise
            .rsplit_once(':')
            .filter(|(h, _)| h.parse::<Ipv4Addr>().is_ok())
            .map(|(h, _)| h)
            .unwrap_or(advertise);
        let addr = host.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "overlay networks need an IPv4 advertise address, not {advertise:?}"
            ))
        })?;
        Ok(Dataplane {
            shared: Arc::new(Shared {
                engine,
                node_id: node_id.to_string(),
                addr,
                backends: Mutex::new(BTreeSet::new()),
                queue: Mutex::new(Queue::default()),
                wake: Condvar::new(),
            }),
            worker: Mutex::new(None),
        })
    }

    /// Hands `net` to the dataplane's thread, which applies it (replacing any state not
    /// applied yet) and keeps trying until it succeeds or a newer one comes.
    pub fn submit(&self, net: Arc<NetState>) {
        {
            let mut q = lock(&self.shared.queue);
            if q.stop {
                return;
            }
            q.next = Some(net);
        }
        self.shared.wake.notify_all();
        let mut w = lock(&self.worker);
        if w.is_none() {
            let shared = self.shared.clone();
            *w = Some(std::thread::spawn(move || shared.run()));
        }
    }

    /// Makes the node match `net` now, on the caller's thread.
    pub fn apply(&self, net: &NetState) -> Result<()> {
        self.shared.apply(net)
    }

    /// The node left the cluster: the thread stops (after the apply in progress), and the
    /// mesh table, VXLAN devices and overlay networks go.
    pub fn clear(&self) {
        lock(&self.shared.queue).stop = true;
        self.shared.wake.notify_all();
        if let Some(w) = lock(&self.worker).take() {
            let _ = w.join();
        }
        let _ = berth_engine::dataplane::remove_mesh();
        for v in berth_engine::dataplane::overlay_devices() {
            let _ = berth_engine::dataplane::remove_overlay(v);
        }
        if let Ok(nets) = self.shared.engine.networks() {
            for n in nets.into_iter().filter(|n| n.driver == "overlay") {
                let _ = self.shared.engine.network_remove(&n.id);
            }
        }
    }
}

impl Shared {
    /// The dataplane's thread: the newest state submitted, applied until it holds.
    fn run(&self) {
        let mut q = lock(&self.queue);
        loop {
            if q.stop {
                return;
            }
            let Some(net) = q.next.take() else {
                q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            drop(q);
            let r = self.apply(&net);
            q = lock(&self.queue);
            if let Err(e) = r {
                tracing::warn!("agent: networking: {e}");
                if q.next.is_none() {
                    q.next = Some(net);
                    q = self
                        .wake
                        .wait_timeout(q, RETRY)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            }
        }
    }

    /// Makes the node match `net`.
    fn apply(&self, net: &NetState) -> Result<()> {
        let me = net.nodes.iter().find(|n| n.id == self.node_id);
        let peers: Vec<OverlayPeer> = net
            .nodes
            .iter()
            .filter_map(|n| {
                Some(OverlayPeer {
                    index: n.index,
                    addr: n.addr.parse().ok()?,
                })
            })
            .collect();
        let locals: BTreeMap<String, berth_engine::Network> = self
            .engine
            .networks()
            .map_err(|e| Error::Internal(e.to_string()))?
            .into_iter()
            .filter(|n| n.driver == "overlay")
            .map(|n| (n.name.clone(), n))
            .collect();
        let mut first_err = None;
        if !net.networks.is_empty() {
            // The node forwards mesh and overlay traffic even with no container of its own
            // (whose first bridge would have turned forwarding on).
            if let Err(e) = berth_engine::dataplane::enable_ip_forward() {
                first_err.get_or_insert(net_err(e));
            }
        }
        if let Some(me) = me {
            for n in &net.networks {
                let r = (|| -> Result<()> {
                    let subnet: Subnet = n.subnet.parse().map_err(net_err)?;
                    let slice =
                        berth_engine::dataplane::slice(subnet, me.index).map_err(net_err)?;
                    let stale = locals.get(&n.name).filter(|l| {
                        l.labels.get(LABEL_NETWORK) != Some(&n.id) || l.subnet != slice.to_string()
                    });
                    if let Some(l) = stale {
                        // The network was made anew (or this node's slice moved).
                        self.engine
                            .network_remove(&l.id)
                            .map_err(|e| Error::Internal(e.to_string()))?;
                    }
                    if !locals.contains_key(&n.name) || stale.is_some() {
                        let mut labels = n.labels.clone();
                        labels.insert(LABEL_NETWORK.into(), n.id.clone());
                        self.engine
                            .network_create(NetworkSpec {
                                name: n.name.clone(),
                                driver: Some("overlay".into()),
                                subnet: Some(slice.to_string()),
                                internal: n.internal,
                                labels,
                                overlay: Some(subnet.to_string()),
                                ..Default::default()
                            })
                            .map_err(|e| Error::Internal(format!("network {}: {e}", n.name)))?;
                    }
                    OverlayPlan {
                        vni: n.vni,
                        subnet,
                        local: OverlayPeer {
                            index: me.index,
                            addr: self.addr,
                        },
                        peers: peers.clone(),
                    }
                    .apply()
                    .map_err(net_err)
                })();
                if let Err(e) = r {
                    tracing::warn!("agent: overlay network {}: {e}", n.name);
                    first_err.get_or_insert(e);
                }
            }
        }
        // The overlays' local bridges (made at their first container) let the mesh's
        // 127.0.0.1 clients through, as the VXLAN devices do.
        if let Ok(nets) = self.engine.networks() {
            for l in nets.iter().filter(|l| l.driver == "overlay") {
                if let Some(b) = l.options.get("com.docker.network.bridge.name") {
                    if berth_engine::dataplane::link_exists(b) {
                        if let Err(e) = berth_engine::dataplane::allow_localnet(b) {
                            tracing::warn!("agent: overlay network {}: {e}", l.name);
                        }
                    }
                }
            }
        }
        // Networks the cluster no longer has.
        let wanted: BTreeSet<&str> = net.networks.iter().map(|n| n.name.as_str()).collect();
        for (name, l) in &locals {
            if !wanted.contains(name.as_str()) && l.containers.is_empty() {
                let _ = self.engine.network_remove(&l.id);
            }
        }
        let vnis: BTreeSet<u32> = net.networks.iter().map(|n| n.vni).collect();
        for v in berth_engine::dataplane::overlay_devices() {
            if !vnis.contains(&v) {
                let _ = berth_engine::dataplane::remove_overlay(v);
            }
        }
        // The mesh, then the names.
        let rules = mesh_rules(net);
        rules.apply().map_err(net_err)?;
        for n in &net.networks {
            self.engine
                .network_service_records(&n.name, &dns_records(net, &n.name));
        }
        let now: BTreeSet<Ipv4Addr> = rules
            .services
            .iter()
            .flat_map(|s| s.backends.iter().copied())
            .collect();
        let gone: Vec<Ipv4Addr> = lock(&self.backends).difference(&now).copied().collect();
        for b in gone {
            berth_engine::dataplane::forget_unanswered(b);
        }
        *lock(&self.backends) = now;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Network, PortConfig};
    use crate::netstate::{Backend, Endpoints, NetNode};

    fn state() -> NetState {
        NetState {
            networks: vec![
                Network {
                    id: "i".into(),
                    name: "ingress".into(),
                    subnet: "10.255.0.0/16".into(),
                    vni: 4096,
                    ingress: true,
                    ..Default::default()
                },
                Network {
                    id: "a".into(),
                    name: "app".into(),
                    subnet: "10.200.0.0/16".into(),
                    vni: 4097,
                    ..Default::default()
                },
            ],
            nodes: vec![NetNode {
                id: "n1".into(),
                addr: "192.0.2.1".into(),
                index: 1,
            }],
            services: vec![Endpoints {
                service_id: "svc0123456789abc".into(),
                name: "web".into(),
                dnsrr: false,
                vips: [
                    ("app".to_string(), "10.200.0.2".to_string()),
                    ("ingress".to_string(), "10.255.0.2".to_string()),
                ]
                .into(),
                ports: vec![PortConfig {
                    protocol: "tcp".into(),
                    target: 80,
                    published: 8080,
                    mode: "ingress".into(),
                }],
                networks: vec!["app".into(), "ingress".into()],
                backends: vec![Backend {
                    task_id: "t1".into(),
                    slot: 2,
                    node_id: "n1".into(),
                    addrs: [
                        ("app".to_string(), "10.200.1.2".to_string()),
                        ("ingress".to_string(), "10.255.1.2".to_string()),
                    ]
                    .into(),
                }],
            }],
        }
    }

    #[test]
    fn the_mesh_publishes_on_ingress_and_balances_vips() {
        let r = mesh_rules(&state());
        assert_eq!(r.services.len(), 2);
        let app = &r.services[0];
        assert_eq!(app.vips, vec!["10.200.0.2".parse::<Ipv4Addr>().unwrap()]);
        assert!(app.ports.is_empty());
        assert_eq!(
            app.backends,
            vec!["10.200.1.2".parse::<Ipv4Addr>().unwrap()]
        );
        let ing = &r.services[1];
        assert_eq!(ing.ports[0].published, 8080);
        assert_eq!(
            ing.backends,
            vec!["10.255.1.2".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(r.masquerade.len(), 2);
    }

    #[test]
    fn names_of_services_and_tasks() {
        let mut st = state();
        let rec = dns_records(&st, "app");
        assert_eq!(
            rec[0],
            (vec!["web".to_string()], "10.200.0.2".parse().unwrap())
        );
        assert!(rec[1].0.contains(&"tasks.web".to_string()));
        assert!(rec[1].0.contains(&"2.web".to_string()));
        assert!(rec[1].0.contains(&"t1.web".to_string()));
        assert!(rec[1].0.contains(&"web.2.t1".to_string()));
        assert_eq!(rec[1].1, "10.200.1.2".parse::<Ipv4Addr>().unwrap());
        st.services[0].dnsrr = true;
        let rec = dns_records(&st, "app");
        assert_eq!(
            rec[0],
            (vec!["web".to_string()], "10.200.1.2".parse().unwrap())
        );
    }
}
