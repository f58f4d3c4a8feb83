//! Networks: the built-in `bridge`, `host` and `none`, user bridge networks through
//! berth-net (CNI), published ports, and the names on each user network.
//!
//! A container's network namespace is made by the runtime (config.json asks for a new one);
//! once the runtime has created the container, the engine opens `/proc/<init>/ns/net` (a
//! [`NetnsHandle`], held until every detach is done) and the CNI plugins enter it. The engine
//! itself never enters or creates a namespace.
//!
//! - Addresses and published ports belong to a run: they are taken in `start` (after the
//!   runtime's create, before the process runs) and given back when the run ends. The CNI
//!   DEL of an ended run happens on a thread of its own, so `wait` and `--rm` do not pay for
//!   it; a start that wants a port, an address or an interface of a run still being taken
//!   down waits for that DEL.
//! - What survives a restart of the daemon: networks (a `networks` table), port reservations
//!   (`network/ports.json`), host-local's leases and the CNI cache (under `network/cni/`).
//!   On open, running containers get their namespace handle and names back; the attachments
//!   and ports of containers that are gone are released.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use berth_net::{
    allocate_subnet, check_conflicts, host_routes, Cni, DnsRegistry, DnsServer, DnsServerConfig,
    NetError, NetnsHandle, NetworkConfig, PortAllocator, PortMapping, PortRequest, Protocol,
    Subnet,
};
use serde::{Deserialize, Serialize};

use crate::engine::NetConfig;
use crate::error::{io_err, Error, Result};
use crate::inner::{lock, Ctr, Inner};
use crate::model::*;
use crate::{bundle, now_rfc3339};

/// How long a start waits for the take-down of an ended run that holds what it needs.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// A network's row: what inspect shows, and for bridge networks the CNI side of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetRec {
    pub net: Network,
    pub cfg: Option<NetworkConfig>,
}

impl NetRec {
    fn is_user(&self) -> bool {
        !self.net.builtin
    }
}

/// The engine's network state.
pub(crate) struct Nets {
    pub cni: Cni,
    ports_path: PathBuf,
    /// Networks by id.
    table: Mutex<BTreeMap<String, NetRec>>,
    /// Create and remove take it for writing; attaches for reading, so a network cannot go
    /// while a container joins it.
    topo: RwLock<()>,
    ports: Mutex<PortAllocator>,
    /// Containers whose ended run is being taken down (CNI DEL running), and its signal.
    draining: Mutex<HashSet<String>>,
    drained: Condvar,
    /// Take-down threads not yet finished (their last step, the prune of idle chains, comes
    /// after the container leaves `draining`), and its signal.
    takedowns: Mutex<usize>,
    takedowns_done: Condvar,
    dns: DnsRegistry,
    servers: Mutex<HashMap<String, DnsServer>>,
    /// Each running container's namespace, by container id.
    sandboxes: Mutex<HashMap<String, Arc<NetnsHandle>>>,
}

fn net_err(e: NetError) -> Error {
    match e {
        NetError::Overlap { .. } | NetError::PortAllocated { .. } | NetError::PortBusy { .. } => {
            Error::Conflict(e.to_string())
        }
        NetError::InvalidName { .. }
        | NetError::InvalidAddress { .. }
        | NetError::InvalidNetwork { .. }
        | NetError::InvalidPort { .. }
        | NetError::PoolExhausted { .. } => Error::Invalid(e.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

/// `default` and empty are the default bridge (or `none` without one).
fn mode_name(mode: &str, has_bridge: bool) -> &str {
    match mode {
        "" | "default" if has_bridge => "bridge",
        "" | "default" => "none",
        m => m,
    }
}

/// One `-p` binding as requests: a host port range (`8000-8010`) is tried port by port.
struct PortWish {
    host_ip: Ipv4Addr,
    /// Inclusive; (0, 0) means an ephemeral port.
    range: (u16, u16),
    container_port: u16,
    protocol: Protocol,
    key: String,
}

fn parse_port_key(key: &str) -> Result<(u16, Protocol)> {
    let (num, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let port: u16 = num
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::Invalid(format!("invalid container port {key:?}")))?;
    let proto: Protocol = proto.parse().map_err(net_err)?;
    Ok((port, proto))
}

fn parse_host_port(key: &str, s: &str) -> Result<(u16, u16)> {
    let bad = || Error::Invalid(format!("invalid host port {s:?} for {key}"));
    let s = s.trim();
    if s.is_empty() {
        return Ok((0, 0));
    }
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// What a container asks to publish: `-p` bindings, and with `-P` every exposed port not
/// bound otherwise on an ephemeral host port.
fn port_wishes(c: &Container) -> Result<Vec<PortWish>> {
    let mut out = Vec::new();
    for (key, bindings) in &c.spec.port_bindings {
        let (container_port, protocol) = parse_port_key(key)?;
        for b in bindings {
            let host_ip: Ipv4Addr = if b.host_ip.is_empty() {
                Ipv4Addr::UNSPECIFIED
            } else {
                b.host_ip.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "invalid host IP {:?} for {key}: only IPv4 addresses can be published",
                        b.host_ip
                    ))
                })?
            };
            out.push(PortWish {
                host_ip,
                range: parse_host_port(key, &b.host_port)?,
                container_port,
                protocol,
                key: key.clone(),
            });
        }
    }
    if c.spec.publish_all {
        let mut exposed: Vec<&String> = c
            .config
            .exposed_ports
            .iter()
            .chain(c.spec.exposed_ports.iter())
            .collect();
        exposed.sort();
        exposed.dedup();
        for key in exposed {
            if c.spec.port_bindings.get(key).is_some_and(|b| !b.is_empty()) {
                continue;
            }
            let (container_port, protocol) = parse_port_key(key)?;
            out.push(PortWish {
                host_ip: Ipv4Addr::UNSPECIFIED,
                range: (0, 0),
                container_port,
                protocol,
                key: key.clone(),
            });
        }
    }
    Ok(out)
}

impl Nets {
    pub fn open(data_root: &Path, cfg: &NetConfig, db: &crate::db::Db) -> Result<Nets> {
        let dir = data_root.join("network");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let state = dir.join("cni");
        let cni = if cfg.cni_plugin_dirs.is_empty() {
            Cni::new(&state)
        } else {
            Cni::with_plugin_dirs(&state, cfg.cni_plugin_dirs.clone())
        };
        let ports_path = dir.join("ports.json");
        let ports = PortAllocator::load(&ports_path).map_err(net_err)?;
        let mut table = BTreeMap::new();
        for (id, rec) in db.networks::<NetRec>()? {
            table.insert(id, rec);
        }
        let nets = Nets {
            cni,
            ports_path,
            table: Mutex::new(table),
            topo: RwLock::new(()),
            ports: Mutex::new(ports),
            draining: Mutex::new(HashSet::new()),
            drained: Condvar::new(),
            takedowns: Mutex::new(0),
            takedowns_done: Condvar::new(),
            dns: DnsRegistry::new(),
            servers: Mutex::new(HashMap::new()),
            sandboxes: Mutex::new(HashMap::new()),
        };
        nets.builtins(cfg, db)?;
        Ok(nets)
    }

    /// `host`, `none` and (unless `--bridge none`) `bridge`, made once and kept; the default
    /// bridge follows `--bridge` and `--bip` when they change.
    fn builtins(&self, cfg: &NetConfig, db: &crate::db::Db) -> Result<()> {
        let mut table = lock(&self.table);
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if table.values().any(|r| r.net.name == name) {
                continue;
            }
            let rec = NetRec {
                net: Network {
                    id: bundle::random_id().map_err(io_err("/dev/urandom"))?,
                    name: name.into(),
                    driver: driver.into(),
                    created: now_rfc3339(),
                    builtin: true,
                    ..Default::default()
                },
                cfg: None,
            };
            db.put_network(&rec.net.id, name, &rec)?;
            table.insert(rec.net.id.clone(), rec);
        }
        let old = table
            .values()
            .find(|r| r.net.name == berth_net::DEFAULT_BRIDGE_NETWORK)
            .cloned();
        let Some(device) = cfg.bridge.clone() else {
            if let Some(old) = old {
                db.delete_network(&old.net.id)?;
                table.remove(&old.net.id);
            }
            return Ok(());
        };
        let wanted: Option<(Subnet, Ipv4Addr)> = match &cfg.bip {
            Some(bip) => {
                let (ip, _) = bip.split_once('/').ok_or_else(|| {
                    Error::Invalid(format!("invalid --bip {bip:?}: use ADDRESS/PREFIX"))
                })?;
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| Error::Invalid(format!("invalid --bip {bip:?}")))?;
                let subnet: Subnet = bip.parse().map_err(net_err)?;
                Some((subnet, ip))
            }
            // A bridge device already on the host keeps its address, as docker0 does for
            // dockerd (the CNI bridge plugin refuses to give it a second one).
            None => match berth_net::device_ipv4(&device).map_err(net_err)? {
                Some((ip, prefix)) => Some((Subnet::new(ip, prefix).map_err(net_err)?, ip)),
                None => None,
            },
        };
        if let Some(old) = &old {
            let same_device = old.cfg.as_ref().is_some_and(|c| c.bridge == device);
            let same_addr = match (&wanted, &old.cfg) {
                (None, _) => true,
                (Some((s, g)), Some(c)) => c.subnet == *s && c.gateway == *g,
                _ => false,
            };
            if same_device && same_addr {
                return Ok(());
            }
        }
        let others: Vec<NetworkConfig> = table
            .values()
            .filter(|r| r.net.name != berth_net::DEFAULT_BRIDGE_NETWORK)
            .filter_map(|r| r.cfg.clone())
            .collect();
        let (subnet, gateway) = match wanted {
            Some((s, g)) => (s, Some(g)),
            None => {
                let mut taken: Vec<Subnet> = others.iter().map(|c| c.subnet).collect();
                taken.extend(host_routes());
                (
                    allocate_subnet(berth_net::DEFAULT_BRIDGE_NETWORK, &taken).map_err(net_err)?,
                    None,
                )
            }
        };
        let id = match &old {
            Some(o) => o.net.id.clone(),
            None => bundle::random_id().map_err(io_err("/dev/urandom"))?,
        };
        let mut nc = NetworkConfig::new(
            berth_net::DEFAULT_BRIDGE_NETWORK,
            &id,
            subnet,
            gateway,
            false,
        )
        .map_err(net_err)?;
        nc.bridge = device.clone();
        nc.validate().map_err(net_err)?;
        check_conflicts(&nc, &others).map_err(net_err)?;
        if let Some(o) = old.as_ref().and_then(|o| o.cfg.as_ref()) {
            // The old bridge goes with its leases, unless something is still on it.
            if self.cni.attachments(&o.name).map_err(net_err)?.is_empty() {
                self.cni.remove_network(o).map_err(net_err)?;
            }
        }
        let mut options = BTreeMap::new();
        for (k, v) in [
            ("com.docker.network.bridge.default_bridge", "true"),
            ("com.docker.network.bridge.enable_icc", "true"),
            ("com.docker.network.bridge.enable_ip_masquerade", "true"),
            ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
            ("com.docker.network.driver.mtu", "1500"),
        ] {
            options.insert(k.to_string(), v.to_string());
        }
        options.insert("com.docker.network.bridge.name".into(), device);
        let rec = NetRec {
            net: Network {
                id: id.clone(),
                name: berth_net::DEFAULT_BRIDGE_NETWORK.into(),
                driver: "bridge".into(),
                created: old
                    .as_ref()
                    .map(|o| o.net.created.clone())
                    .unwrap_or_else(now_rfc3339),
                subnet: nc.subnet.to_string(),
                gateway: nc.gateway.to_string(),
                builtin: true,
                options,
                ..Default::default()
            },
            cfg: Some(nc),
        };
        db.put_network(&id, &rec.net.name, &rec)?;
        table.insert(id, rec);
        Ok(())
    }

    fn has_bridge(&self) -> bool {
        lock(&self.table)
            .values()
            .any(|r| r.net.name == berth_net::DEFAULT_BRIDGE_NETWORK)
    }

    /// By exact name, full id, then unique id prefix.
    fn find(&self, name: &str) -> Result<NetRec> {
        let table = lock(&self.table);
        if let Some(r) = table.values().find(|r| r.net.name == name) {
            return Ok(r.clone());
        }
        if let Some(r) = table.get(name) {
            return Ok(r.clone());
        }
        let hits: Vec<&NetRec> = if name.is_empty() {
            Vec::new()
        } else {
            table
                .values()
                .filter(|r| r.net.id.starts_with(name))
                .collect()
        };
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NoSuchNetwork(name.to_string())),
            _ => Err(Error::Invalid(format!(
                "network {name} is ambiguous ({} matches found based on ID prefix)",
                hits.len()
            ))),
        }
    }

    fn save_ports(&self, ports: &PortAllocator) {
        if let Err(e) = ports.save(&self.ports_path) {
            eprintln!("berth-engine: save {}: {e}", self.ports_path.display());
        }
    }

    /// Once no container is attached to any network (the CNI cache is empty: containers on
    /// no network do not count) and no take-down runs, the firewall plugin's isolation rules
    /// of the bridges and the plugins' shared iptables chains go (the plugins make them
    /// again on the next attach). `topo` must be held for writing, so that no attach runs
    /// meanwhile.
    fn prune_if_idle_locked(&self) {
        if !lock(&self.draining).is_empty() || self.cni.any_attachment().unwrap_or(true) {
            return;
        }
        let bridges: Vec<String> = lock(&self.table)
            .values()
            .filter_map(|r| r.cfg.as_ref().map(|c| c.bridge.clone()))
            .collect();
        let bridges: Vec<&str> = bridges.iter().map(String::as_str).collect();
        if let Err(e) = berth_net::remove_bridge_rules(&bridges) {
            eprintln!("berth-engine: removing the isolation rules of idle bridges: {e}");
        }
        if let Err(e) = berth_net::prune_idle_chains() {
            eprintln!("berth-engine: taking away the idle CNI chains: {e}");
        }
    }

    fn prune_if_idle(&self) {
        let _topo = self.topo.write().unwrap_or_else(|p| p.into_inner());
        self.prune_if_idle_locked();
    }

    /// Waits (at most [`DRAIN_WAIT`]) while `busy` holds of the take-downs still running.
    fn wait_while(&self, busy: impl Fn(&HashSet<String>) -> bool) {
        let deadline = Instant::now() + DRAIN_WAIT;
        let mut d = lock(&self.draining);
        while busy(&d) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            d = self
                .drained
                .wait_timeout(d, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Waits until the ended run of `id` is taken down.
    fn wait_drained(&self, id: &str) {
        self.wait_while(|d| d.contains(id));
    }

    /// Waits until no ended run is being taken down (a port or address asked for may be one
    /// of theirs); false when there was none to wait for.
    fn wait_all_drained(&self) -> bool {
        if lock(&self.draining).is_empty() {
            return false;
        }
        self.wait_while(|d| !d.is_empty());
        true
    }

    /// Before the daemon exits: waits (at most [`DRAIN_WAIT`]) until every take-down thread
    /// has finished, its prune of idle chains included.
    pub(crate) fn quiesce(&self) {
        let deadline = Instant::now() + DRAIN_WAIT;
        let mut n = lock(&self.takedowns);
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            n = self
                .takedowns_done
                .wait_timeout(n, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Reserves a container's ports, all or nothing; a range takes its first free port.
    fn reserve(&self, owner: &str, wishes: &[PortWish]) -> Result<Vec<(String, PortMapping)>> {
        let mut ports = lock(&self.ports);
        let mut out = Vec::new();
        for w in wishes {
            let mut last = None;
            let got = if w.range == (0, 0) {
                ports
                    .reserve(
                        owner,
                        &[PortRequest {
                            host_ip: w.host_ip,
                            host_port: 0,
                            container_port: w.container_port,
                            protocol: w.protocol,
                        }],
                    )
                    .map_err(|e| last = Some(e))
                    .ok()
            } else {
                (w.range.0..=w.range.1).find_map(|p| {
                    ports
                        .reserve(
                            owner,
                            &[PortRequest {
                                host_ip: w.host_ip,
                                host_port: p,
                                container_port: w.container_port,
                                protocol: w.protocol,
                            }],
                        )
                        .map_err(|e| last = Some(e))
                        .ok()
                })
            };
            match got.and_then(|m| m.into_iter().next()) {
                Some(m) => out.push((w.key.clone(), m)),
                None => {
                    ports.release(owner);
                    return Err(last.map(net_err).unwrap_or_else(|| {
                        Error::Internal(format!("no host port for {}", w.key))
                    }));
                }
            }
        }
        self.save_ports(&ports);
        Ok(out)
    }

    /// Starts the DNS server of a user network if it is not running (its gateway exists
    /// once the first container is attached).
    fn ensure_dns(&self, cfg: &NetworkConfig) {
        let mut servers = lock(&self.servers);
        if servers.contains_key(&cfg.name) {
            return;
        }
        match DnsServer::start(DnsServerConfig::for_network(cfg), self.dns.clone()) {
            Ok(s) => {
                servers.insert(cfg.name.clone(), s);
            }
            Err(e) => eprintln!("berth-engine: network {}: {e}", cfg.name),
        }
    }

    /// The cluster's names on an overlay network (services, their tasks), replacing the
    /// ones set before; the network's DNS server starts if it was not running.
    pub fn set_service_records(
        &self,
        network: &str,
        records: &[(Vec<String>, std::net::Ipv4Addr)],
    ) {
        self.dns.set_records(network, "svc:", records);
        let cfg = lock(&self.table)
            .values()
            .find(|r| r.net.name == network)
            .and_then(|r| r.cfg.clone());
        if let Some(cfg) = cfg {
            if berth_net::link_exists(&cfg.bridge) {
                self.ensure_dns(&cfg);
            }
        }
    }

    fn stop_dns(&self, name: &str) {
        if let Some(s) = lock(&self.servers).remove(name) {
            s.stop();
        }
        self.dns.remove_network(name);
    }
}

/// A container's `/etc/hosts`: localhost, its own address (127.0.1.1 without one) and
/// `--add-host` lines.
pub(crate) fn hosts_text(
    hostname: &str,
    domainname: Option<&str>,
    ip: Option<&str>,
    extra: &[(String, String)],
) -> String {
    let fqdn = match domainname.filter(|d| !d.is_empty()) {
        Some(d) => format!("{hostname}.{d} {hostname}"),
        None => hostname.to_string(),
    };
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, addr) in extra {
        s.push_str(&format!("{addr}\t{name}\n"));
    }
    s.push_str(&format!("{}\t{fqdn}\n", ip.unwrap_or("127.0.1.1")));
    s
}

/// `--add-host NAME:IP` (or `NAME=IP`) as (name, address); `host-gateway` is the default
/// bridge's gateway.
pub(crate) fn parse_extra_hosts(
    lines: &[String],
    host_gateway: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for l in lines {
        let (name, addr) = l
            .split_once('=')
            .or_else(|| l.split_once(':'))
            .ok_or_else(|| Error::Invalid(format!("invalid extra host {l:?}: use NAME:IP")))?;
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr = if addr == "host-gateway" {
            host_gateway
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "invalid extra host {l:?}: host-gateway needs the default bridge"
                    ))
                })?
                .to_string()
        } else {
            addr.parse::<std::net::IpAddr>()
                .map_err(|_| Error::Invalid(format!("invalid IP address in extra host {l:?}")))?
                .to_string()
        };
        if name.is_empty() {
            return Err(Error::Invalid(format!("invalid extra host {l:?}: no name")));
        }
        out.push((name.to_string(), addr));
    }
    Ok(out)
}

/// The container's `/etc/resolv.conf`: `--dns` servers if given; on a user network its
/// gateway (the embedded DNS); on `host` the host's file as it is; otherwise the host's
/// without loopback resolvers (unreachable from another namespace), Google's if none is left,
/// as Docker does.
pub(crate) fn resolv_text(spec: &ContainerSpec, mode: &str, dns_gateway: Option<&str>) -> String {
    let host_text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host = berth_net::parse_resolv_conf(&host_text);
    let search = if spec.dns_search.is_empty() {
        host.search.clone()
    } else {
        spec.dns_search.clone()
    };
    let options = if spec.dns_options.is_empty() {
        host.options.clone()
    } else {
        spec.dns_options.clone()
    };
    let tail = |s: &mut String| {
        if !search.is_empty() && search != ["."] {
            s.push_str(&format!("search {}\n", search.join(" ")));
        }
        if !options.is_empty() {
            s.push_str(&format!("options {}\n", options.join(" ")));
        }
    };
    if !spec.dns.is_empty() {
        let mut s = String::new();
        for ns in &spec.dns {
            s.push_str(&format!("nameserver {ns}\n"));
        }
        tail(&mut s);
        return s;
    }
    if mode == "host" {
        return host_text;
    }
    if let Some(gw) = dns_gateway.and_then(|g| g.parse::<Ipv4Addr>().ok()) {
        let rc = berth_net::ResolvConf {
            nameservers: Vec::new(),
            search,
            options,
        };
        return berth_net::container_resolv_conf(gw, &rc);
    }
    let mut s = String::new();
    let mut any = false;
    for ns in &host.nameservers {
        if ns.is_loopback() {
            continue;
        }
        any = true;
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !any {
        s.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    tail(&mut s);
    s
}

/// What the create of a container needs to know of its networks.
pub(crate) struct NetPlan {
    /// `Container.networks` as created (no addresses).
    pub networks: BTreeMap<String, Endpoint>,
    /// `host`, `none`, `bridge` or the user network's name.
    pub mode: String,
    /// A user network's gateway: the container's nameserver.
    pub dns_gateway: Option<String>,
    /// The default bridge's gateway, for `--add-host x:host-gateway`.
    pub host_gateway: Option<String>,
    pub warnings: Vec<String>,
}

impl Inner {
    /// Checks a create's network mode and endpoints, and what the container starts with.
    pub(crate) fn plan_networks(&self, spec: &ContainerSpec) -> Result<NetPlan> {
        let nets = &self.nets;
        let mode = mode_name(&spec.network_mode, nets.has_bridge()).to_string();
        if let Some(other) = mode.strip_prefix("container:") {
            return Err(Error::Invalid(format!(
                "network mode container:{other} is not supported; connect both containers to one user network instead"
            )));
        }
        let primary = nets.find(&mode)?;
        let mut warnings = Vec::new();
        let host_gateway = nets
            .find(berth_net::DEFAULT_BRIDGE_NETWORK)
            .ok()
            .map(|r| r.net.gateway);
        let mut networks = BTreeMap::new();
        let mut ep_primary = EndpointSpec::default();
        for (key, ep) in &spec.endpoints {
            let target = mode_name(key, nets.has_bridge());
            let rec = nets.find(target)?;
            if rec.net.id == primary.net.id {
                ep_primary = ep.clone();
                continue;
            }
            // A swarm task joins all of its overlay networks at once (its first one is the
            // network mode).
            if rec.net.driver == "overlay" && primary.net.driver == "overlay" {
                if ep.ipv4_address.as_deref().is_some_and(|s| !s.is_empty())
                    || !ep.aliases.is_empty()
                {
                    return Err(Error::Invalid(format!(
                        "network {}: addresses and aliases of overlay endpoints come from the swarm",
                        rec.net.name
                    )));
                }
                networks.insert(
                    rec.net.name.clone(),
                    Endpoint {
                        network_id: rec.net.id.clone(),
                        spec: ep.clone(),
                        ..Default::default()
                    },
                );
                continue;
            }
            return Err(Error::Invalid(format!(
                "container cannot be connected to network {} and {} at create: connect it to more networks with docker network connect",
                primary.net.name, rec.net.name
            )));
        }
        if !primary.is_user() {
            if ep_primary
                .ipv4_address
                .as_deref()
                .is_some_and(|s| !s.is_empty())
            {
                return Err(Error::Invalid(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
            if !ep_primary.aliases.is_empty() {
                return Err(Error::Invalid(
                    "network-scoped alias is supported only for containers in user defined networks"
                        .into(),
                ));
            }
        }
        if let Some(ip) = ep_primary.ipv4_address.as_deref().filter(|s| !s.is_empty()) {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid IPv4 address {ip:?}")))?;
            if let Some(cfg) = &primary.cfg {
                berth_net::validate_static_ip(cfg, ip).map_err(net_err)?;
            }
        }
        for a in &ep_primary.aliases {
            if a.is_empty() || a.len() > 253 || a.contains(char::is_whitespace) {
                return Err(Error::Invalid(format!("invalid network alias {a:?}")));
            }
        }
        let wishes = port_wishes(&Container {
            spec: spec.clone(),
            ..Default::default()
        })?;
        if !wishes.is_empty() {
            match primary.net.driver.as_str() {
                "host" => warnings
                    .push("Published ports are discarded when using host network mode".to_string()),
                "null" => {}
                _ if primary.net.internal => {}
                _ => {}
            }
        }
        parse_extra_hosts(&spec.extra_hosts, host_gateway.as_deref())?;
        networks.insert(
            primary.net.name.clone(),
            Endpoint {
                network_id: primary.net.id.clone(),
                spec: ep_primary,
                ..Default::default()
            },
        );
        let dns_gateway = if primary.is_user() {
            Some(primary.net.gateway.clone())
        } else {
            None
        };
        Ok(NetPlan {
            networks,
            mode: primary.net.name.clone(),
            dns_gateway,
            host_gateway,
            warnings,
        })
    }

    /// The container's networks in interface order: the one it was created on first.
    fn ordered_networks(&self, c: &Container) -> Vec<String> {
        let first = mode_name(&c.spec.network_mode, self.nets.has_bridge());
        let first = self
            .nets
            .find(first)
            .map(|r| r.net.name)
            .unwrap_or_else(|_| first.to_string());
        let mut out: Vec<String> = Vec::new();
        if c.networks.contains_key(&first) {
            out.push(first.clone());
        }
        out.extend(c.networks.keys().filter(|k| **k != first).cloned());
        out
    }

    /// Takes the container's addresses and ports: called by `start` once the runtime has
    /// created the init `pid` (its namespace exists) and before the process runs. On failure
    /// nothing is left attached.
    pub(crate) fn net_up(&self, ctr: &Ctr, pid: i32) -> Result<()> {
        let r = self.attach_run(ctr, pid);
        if r.is_err() {
            // A failed ADD's DEL may leave the plugins' shared chains behind.
            self.nets.prune_if_idle();
        }
        r
    }

    fn attach_run(&self, ctr: &Ctr, pid: i32) -> Result<()> {
        let nets = &self.nets;
        let c = ctr.get();
        let order = self.ordered_networks(&c);
        let recs: Vec<NetRec> = order.iter().map(|n| nets.find(n)).collect::<Result<_>>()?;
        if recs.iter().any(|r| r.net.driver == "host") {
            return Ok(());
        }
        nets.wait_drained(&c.id);
        let _topo = nets.topo.read().unwrap_or_else(|p| p.into_inner());
        let handle = Arc::new(
            NetnsHandle::open(Path::new(&format!("/proc/{pid}/ns/net"))).map_err(net_err)?,
        );
        let path = handle.path();
        nets.cni.loopback_up(&path, &c.id).map_err(net_err)?;
        let bridges: Vec<&NetRec> = recs.iter().filter(|r| r.cfg.is_some()).collect();
        // Ports go through the first network with a way out.
        let publish_on = bridges.iter().position(|r| !r.net.internal);
        let wishes = if publish_on.is_some() {
            port_wishes(&c)?
        } else {
            Vec::new()
        };
        let mut mapped: Vec<(String, PortMapping)> = Vec::new();
        if !wishes.is_empty() {
            mapped = loop {
                match nets.reserve(&c.id, &wishes) {
                    Ok(m) => break m,
                    Err(Error::Conflict(_)) if nets.wait_all_drained() => continue,
                    Err(e) => return Err(e),
                }
            };
        }
        let mut done: Vec<(NetworkConfig, String)> = Vec::new();
        let mut endpoints: Vec<(String, Endpoint)> = Vec::new();
        let undo = |done: &[(NetworkConfig, String)]| {
            for (cfg, ifname) in done {
                if let Err(e) = nets.cni.detach(Some(&path), &c.id, ifname, cfg) {
                    eprintln!("berth-engine: detach {} from {}: {e}", c.id, cfg.name);
                }
                nets.dns.remove(&cfg.name, &c.id);
            }
            if !mapped.is_empty() {
                let mut ports = lock(&nets.ports);
                ports.release(&c.id);
                nets.save_ports(&ports);
            }
        };
        for (i, rec) in bridges.iter().enumerate() {
            let Some(cfg) = rec.cfg.as_ref() else {
                continue;
            };
            // One default route: a second overlay only routes its own subnet.
            let secondary;
            let cfg = if i > 0 && cfg.overlay {
                let mut c = cfg.clone();
                c.secondary = true;
                secondary = c;
                &secondary
            } else {
                cfg
            };
            let ifname = format!("eth{i}");
            let mut ep = c.networks.get(&rec.net.name).cloned().unwrap_or_default();
            let static_ip = match ep.spec.ipv4_address.as_deref().filter(|s| !s.is_empty()) {
                Some(s) => match s.parse::<Ipv4Addr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        undo(&done);
                        return Err(Error::Invalid(format!("invalid IPv4 address {s:?}")));
                    }
                },
                None => None,
            };
            let ports: Vec<PortMapping> = if publish_on == Some(i) {
                mapped.iter().map(|(_, m)| *m).collect()
            } else {
                Vec::new()
            };
            let att = loop {
                match nets
                    .cni
                    .attach(&path, &c.id, &ifname, cfg, static_ip, &ports)
                {
                    Ok(a) => break Ok(a),
                    Err(e) if static_ip.is_some() && nets.wait_all_drained() => {
                        let _ = e;
                        continue;
                    }
                    Err(e) => break Err(e),
                }
            };
            let att = match att {
                Ok(a) => a,
                Err(e) => {
                    undo(&done);
                    return Err(Error::Internal(format!(
                        "failed to connect container {} to network {}: {}",
                        &c.id[..12],
                        rec.net.name,
                        e
                    )));
                }
            };
            done.push((cfg.clone(), ifname.clone()));
            ep.network_id = rec.net.id.clone();
            ep.endpoint_id = bundle::random_id().unwrap_or_default();
            ep.ifname = ifname;
            ep.ip_address = att.ip.to_string();
            ep.ip_prefix_len = att.prefix;
            ep.gateway = att.gateway.map(|g| g.to_string()).unwrap_or_default();
            ep.mac_address = att.mac.clone();
            ep.dns_names = Vec::new();
            if rec.is_user() {
                let mut names = vec![c.name.clone()];
                names.extend(ep.spec.aliases.iter().cloned());
                names.push(c.id[..12].to_string());
                names.dedup();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                nets.dns.add(&rec.net.name, &c.id, &refs, att.ip);
                nets.ensure_dns(cfg);
                ep.dns_names = names;
            }
            endpoints.push((rec.net.name.clone(), ep));
        }
        let first_ip = endpoints.first().map(|(_, e)| e.ip_address.clone());
        {
            let mut r = lock(&ctr.rec);
            for (name, ep) in endpoints {
                r.networks.insert(name, ep);
            }
            r.ports.clear();
            for key in c
                .config
                .exposed_ports
                .iter()
                .chain(c.spec.exposed_ports.iter())
                .chain(c.spec.port_bindings.keys())
            {
                r.ports.entry(key.clone()).or_default();
            }
            for (key, m) in &mapped {
                r.ports.entry(key.clone()).or_default().push(PortBinding {
                    host_ip: m.host_ip.to_string(),
                    host_port: m.host_port.to_string(),
                });
            }
            r.sandbox_key = handle.source().display().to_string();
        }
        lock(&nets.sandboxes).insert(c.id.clone(), handle);
        if let Some(ip) = first_ip {
            let host_gateway = nets
                .find(berth_net::DEFAULT_BRIDGE_NETWORK)
                .ok()
                .map(|r| r.net.gateway);
            let extra = parse_extra_hosts(&c.spec.extra_hosts, host_gateway.as_deref())?;
            let text = hosts_text(
                &c.config.hostname,
                Some(c.config.domainname.as_str()),
                Some(&ip),
                &extra,
            );
            let p = PathBuf::from(&c.hosts_path);
            std::fs::write(&p, text).map_err(io_err(&p))?;
        }
        Ok(())
    }

    /// Gives back what a run held: called when a run ends (and by a start that failed after
    /// `net_up`). Names go at once; the CNI DEL and the ports go on a thread of their own.
    pub(crate) fn net_down(&self, ctr: &Ctr) {
        let nets = &self.nets;
        let handle = lock(&nets.sandboxes).remove(&ctr.id);
        let mut gone: Vec<(String, String)> = Vec::new();
        {
            let mut r = lock(&ctr.rec);
            for (name, ep) in r.networks.iter_mut() {
                if !ep.ifname.is_empty() {
                    gone.push((name.clone(), std::mem::take(&mut ep.ifname)));
                }
                ep.endpoint_id.clear();
                ep.ip_address.clear();
                ep.ip_prefix_len = 0;
                ep.gateway.clear();
                ep.mac_address.clear();
                ep.dns_names.clear();
            }
            r.ports.clear();
            r.sandbox_key.clear();
        }
        for (name, _) in &gone {
            nets.dns.remove(name, &ctr.id);
        }
        let has_ports = !lock(&nets.ports).owned_by(&ctr.id).is_empty();
        if gone.is_empty() && !has_ports {
            return;
        }
        let cfgs: Vec<(NetworkConfig, String)> = gone
            .into_iter()
            .filter_map(|(name, ifname)| {
                lock(&nets.table)
                    .values()
                    .find(|r| r.net.name == name)
                    .and_then(|r| r.cfg.clone())
                    .map(|c| (c, ifname))
            })
            .collect();
        lock(&nets.draining).insert(ctr.id.clone());
        *lock(&nets.takedowns) += 1;
        let id = ctr.id.clone();
        let nets = Arc::clone(nets);
        std::thread::spawn(move || {
            let path = handle.as_ref().map(|h| h.path());
            for (cfg, ifname) in &cfgs {
                if let Err(e) = nets.cni.detach(path.as_deref(), &id, ifname, cfg) {
                    eprintln!("berth-engine: detach {id} from {}: {e}", cfg.name);
                }
            }
            drop(handle);
            {
                let mut ports = lock(&nets.ports);
                ports.release(&id);
                nets.save_ports(&ports);
            }
            lock(&nets.draining).remove(&id);
            nets.drained.notify_all();
            nets.prune_if_idle();
            *lock(&nets.takedowns) -= 1;
            nets.takedowns_done.notify_all();
        });
    }

    /// After a daemon restart: a running container's namespace handle and names come back.
    pub(crate) fn net_readopt(&self, ctr: &Ctr, pid: i32) {
        let nets = &self.nets;
        let c = ctr.get();
        if c.sandbox_key.is_empty() {
            return;
        }
        match NetnsHandle::open(Path::new(&format!("/proc/{pid}/ns/net"))) {
            Ok(h) => {
                lock(&nets.sandboxes).insert(c.id.clone(), Arc::new(h));
            }
            Err(e) => eprintln!("berth-engine: {}: {e}", c.id),
        }
        for (name, ep) in &c.networks {
            let Ok(ip) = ep.ip_address.parse::<Ipv4Addr>() else {
                continue;
            };
            if ep.dns_names.is_empty() {
                continue;
            }
            let refs: Vec<&str> = ep.dns_names.iter().map(String::as_str).collect();
            nets.dns.add(name, &c.id, &refs, ip);
            if let Ok(rec) = nets.find(name) {
                if let Some(cfg) = &rec.cfg {
                    nets.ensure_dns(cfg);
                }
            }
        }
    }

    /// After a daemon restart, once every container is known: attachments and ports of runs
    /// that are over (a daemon killed during a take-down) are released.
    pub(crate) fn net_sweep(&self) {
        let nets = &self.nets;
        let running: HashSet<String> = lock(&self.ctrs)
            .values()
            .filter(|c| {
                let r = lock(&c.rec);
                r.state.running() && !r.sandbox_key.is_empty()
            })
            .map(|c| c.id.clone())
            .collect();
        let cfgs: Vec<NetworkConfig> = lock(&nets.table)
            .values()
            .filter_map(|r| r.cfg.clone())
            .collect();
        for cfg in &cfgs {
            let Ok(atts) = nets.cni.attachments(&cfg.name) else {
                continue;
            };
            for a in atts {
                if running.contains(&a.container_id) {
                    continue;
                }
                if let Err(e) = nets.cni.detach(None, &a.container_id, &a.ifname, cfg) {
                    eprintln!(
                        "berth-engine: detach {} from {}: {e}",
                        a.container_id, cfg.name
                    );
                }
            }
        }
        let mut ports = lock(&nets.ports);
        let owners: HashSet<String> = ports
            .reservations()
            .iter()
            .map(|r| r.owner.clone())
            .collect();
        let mut changed = false;
        for o in owners {
            if !running.contains(&o) {
                ports.release(&o);
                changed = true;
            }
        }
        if changed {
            nets.save_ports(&ports);
        }
        drop(ports);
        nets.prune_if_idle();
    }

    fn net_event(&self, action: &str, rec: &NetRec, container: Option<&str>) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), rec.net.name.clone());
        attrs.insert("type".to_string(), rec.net.driver.clone());
        if let Some(c) = container {
            attrs.insert("container".to_string(), c.to_string());
        }
        self.events.publish("network", action, &rec.net.id, attrs);
    }

    fn with_members(&self, rec: &NetRec) -> Network {
        let mut n = rec.net.clone();
        for ctr in lock(&self.ctrs).values() {
            let r = lock(&ctr.rec);
            if let Some(ep) = r.networks.get(&rec.net.name) {
                if ep.network_id != rec.net.id || ep.endpoint_id.is_empty() {
                    continue;
                }
                n.containers.insert(
                    r.id.clone(),
                    NetworkMember {
                        name: r.name.clone(),
                        endpoint_id: ep.endpoint_id.clone(),
                        mac_address: ep.mac_address.clone(),
                        ipv4_address: if ep.ip_address.is_empty() {
                            String::new()
                        } else {
                            format!("{}/{}", ep.ip_address, ep.ip_prefix_len)
                        },
                    },
                );
            }
        }
        n
    }

    /// Containers (running or not) that name the network.
    fn users_of(&self, rec: &NetRec) -> Vec<(String, bool)> {
        lock(&self.ctrs)
            .values()
            .filter_map(|ctr| {
                let r = lock(&ctr.rec);
                r.networks
                    .get(&rec.net.name)
                    .filter(|ep| ep.network_id == rec.net.id)
                    .map(|_| (r.id.clone(), r.state.running()))
            })
            .collect()
    }

    pub fn network_create(&self, spec: NetworkSpec) -> Result<String> {
        let nets = &self.nets;
        berth_net::validate_network_name(&spec.name).map_err(net_err)?;
        match spec.driver.as_deref().unwrap_or("bridge") {
            "" | "bridge" => {}
            "overlay" if spec.overlay.is_some() => {}
            "overlay" => {
                return Err(Error::Invalid(
                    "overlay networks are made on a swarm manager: this node is not one".into(),
                ))
            }
            "host" | "null" => {
                return Err(Error::Conflict(format!(
                    "only one instance of \"{}\" network is allowed",
                    spec.driver.as_deref().unwrap_or_default()
                )))
            }
            other => {
                return Err(Error::Invalid(format!(
                    "plugin \"{other}\" not found: berthd has only the bridge driver"
                )))
            }
        }
        if spec.enable_ipv6 {
            return Err(Error::Invalid(
                "IPv6 networks are not supported by berthd".into(),
            ));
        }
        for k in spec.options.keys() {
            if !matches!(
                k.as_str(),
                "com.docker.network.bridge.name" | "com.docker.network.driver.mtu"
            ) {
                return Err(Error::Invalid(format!(
                    "network option {k:?} is not supported (only com.docker.network.bridge.name)"
                )));
            }
        }
        let _topo = nets.topo.write().unwrap_or_else(|p| p.into_inner());
        let existing: Vec<NetRec> = lock(&nets.table).values().cloned().collect();
        if existing.iter().any(|r| r.net.name == spec.name) {
            return Err(Error::Conflict(format!(
                "network with name {} already exists",
                spec.name
            )));
        }
        let configs: Vec<NetworkConfig> = existing.iter().filter_map(|r| r.cfg.clone()).collect();
        let subnet: Subnet = match spec.subnet.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => s.parse().map_err(net_err)?,
            None => {
                let mut taken: Vec<Subnet> = configs.iter().map(|c| c.subnet).collect();
                taken.extend(host_routes());
                allocate_subnet(&spec.name, &taken).map_err(net_err)?
            }
        };
        if let Some(r) = spec.ip_range.as_deref().filter(|s| !s.is_empty()) {
            let range: Subnet = r.parse().map_err(net_err)?;
            if range != subnet {
                return Err(Error::Invalid(format!(
                    "--ip-range {r} is not supported: addresses come from the whole subnet {subnet}"
                )));
            }
        }
        let gateway: Option<Ipv4Addr> = match spec.gateway.as_deref().filter(|s| !s.is_empty()) {
            Some(g) => Some(
                g.parse()
                    .map_err(|_| Error::Invalid(format!("invalid gateway address {g:?}")))?,
            ),
            None => None,
        };
        if spec.subnet.as_deref().unwrap_or_default().is_empty() && gateway.is_some() {
            return Err(Error::Invalid(
                "a gateway needs a subnet: give --subnet too".into(),
            ));
        }
        let id = bundle::random_id().map_err(io_err("/dev/urandom"))?;
        let mut cfg =
            NetworkConfig::new(&spec.name, &id, subnet, gateway, spec.internal).map_err(net_err)?;
        if let Some(b) = spec.options.get("com.docker.network.bridge.name") {
            cfg.bridge = b.clone();
        }
        cfg.labels = spec.labels.clone();
        if let Some(whole) = spec.overlay.as_deref() {
            let whole: Subnet = whole.parse().map_err(net_err)?;
            if whole.prefix() > subnet.prefix() || !whole.contains(subnet.network()) {
                return Err(Error::Invalid(format!(
                    "overlay network {}: subnet {subnet} is not a piece of {whole}",
                    spec.name
                )));
            }
            cfg.overlay = true;
            cfg.overlay_subnet = Some(whole);
        }
        cfg.validate().map_err(net_err)?;
        check_conflicts(&cfg, &configs).map_err(|e| match e {
            NetError::Overlap { .. } => Error::Conflict(e.to_string()),
            other => net_err(other),
        })?;
        if berth_net::link_exists(&cfg.bridge) {
            return Err(Error::Conflict(format!(
                "bridge device {} already exists on the host",
                cfg.bridge
            )));
        }
        let mut options = spec.options.clone();
        options
            .entry("com.docker.network.bridge.name".into())
            .or_insert_with(|| cfg.bridge.clone());
        let rec = NetRec {
            net: Network {
                id: id.clone(),
                name: spec.name.clone(),
                driver: if spec.overlay.is_some() {
                    "overlay"
                } else {
                    "bridge"
                }
                .into(),
                created: now_rfc3339(),
                subnet: cfg.subnet.to_string(),
                gateway: cfg.gateway.to_string(),
                internal: spec.internal,
                labels: spec.labels,
                options,
                builtin: false,
                containers: BTreeMap::new(),
            },
            cfg: Some(cfg),
        };
        lock(&self.db).put_network(&id, &rec.net.name, &rec)?;
        lock(&nets.table).insert(id.clone(), rec.clone());
        self.net_event("create", &rec, None);
        Ok(id)
    }

    pub fn networks(&self) -> Result<Vec<Network>> {
        let recs: Vec<NetRec> = lock(&self.nets.table).values().cloned().collect();
        let mut out: Vec<Network> = recs.iter().map(|r| self.with_members(r)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn network_inspect(&self, name: &str) -> Result<Network> {
        let rec = self.nets.find(name)?;
        Ok(self.with_members(&rec))
    }

    pub fn network_remove(&self, name: &str) -> Result<()> {
        let rec = self.nets.find(name)?;
        self.remove_network_rec(&rec)
    }

    fn remove_network_rec(&self, rec: &NetRec) -> Result<()> {
        let nets = &self.nets;
        if rec.net.builtin {
            return Err(Error::Conflict(format!(
                "{} is a pre-defined network and cannot be removed",
                rec.net.name
            )));
        }
        let _topo = nets.topo.write().unwrap_or_else(|p| p.into_inner());
        let active: Vec<String> = self
            .users_of(rec)
            .into_iter()
            .filter(|(_, running)| *running)
            .map(|(id, _)| id)
            .collect();
        if !active.is_empty() {
            return Err(Error::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints ({} container(s), first {})",
                rec.net.name,
                rec.net.id,
                active.len(),
                &active[0][..12]
            )));
        }
        // Runs being taken down may still be attached.
        nets.wait_all_drained();
        nets.stop_dns(&rec.net.name);
        if let Some(cfg) = &rec.cfg {
            nets.cni.remove_network(cfg).map_err(net_err)?;
        }
        nets.prune_if_idle_locked();
        lock(&self.db).delete_network(&rec.net.id)?;
        lock(&nets.table).remove(&rec.net.id);
        self.net_event("destroy", rec, None);
        Ok(())
    }

    /// Names the cluster publishes on an overlay network ([`Nets::set_service_records`]).
    pub fn network_service_records(
        &self,
        network: &str,
        records: &[(Vec<String>, std::net::Ipv4Addr)],
    ) {
        self.nets.set_service_records(network, records);
    }

    pub fn network_prune(&self) -> Result<Vec<String>> {
        // A node's pieces of swarm networks belong to its agent.
        let recs: Vec<NetRec> = lock(&self.nets.table)
            .values()
            .filter(|r| r.is_user() && r.net.driver != "overlay")
            .cloned()
            .collect();
        let mut out = Vec::new();
        for rec in recs {
            if !self.users_of(&rec).is_empty() {
                continue;
            }
            self.remove_network_rec(&rec)?;
            out.push(rec.net.name.clone());
        }
        Ok(out)
    }

    pub fn network_connect(&self, network: &str, container: &str, ep: EndpointSpec) -> Result<()> {
        let nets = &self.nets;
        let rec = nets.find(network)?;
        let ctr = self.find(container)?;
        let _op = lock(&ctr.op);
        let c = ctr.get();
        if c.networks.keys().any(|n| n == "host" || n == "none") {
            return Err(Error::Conflict(format!(
                "container {} is on the {} network and cannot be connected to another",
                c.name,
                c.networks.keys().next().cloned().unwrap_or_default()
            )));
        }
        if rec.cfg.is_none() {
            return Err(Error::Conflict(format!(
                "container cannot be disconnected from its network and connected to {}",
                rec.net.name
            )));
        }
        if c.networks.contains_key(&rec.net.name) {
            return Err(Error::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                c.name, rec.net.name
            )));
        }
        if !rec.is_user() && (ep.ipv4_address.is_some() || !ep.aliases.is_empty()) {
            return Err(Error::Invalid(
                "user specified IP address and aliases are supported on user defined networks only"
                    .into(),
            ));
        }
        if let (Some(ip), Some(cfg)) = (
            ep.ipv4_address.as_deref().filter(|s| !s.is_empty()),
            &rec.cfg,
        ) {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid IPv4 address {ip:?}")))?;
            berth_net::validate_static_ip(cfg, ip).map_err(net_err)?;
        }
        let mut endpoint = Endpoint {
            network_id: rec.net.id.clone(),
            spec: ep,
            ..Default::default()
        };
        let running = c.state.status == Status::Running || c.state.status == Status::Paused;
        let handle = lock(&nets.sandboxes).get(&c.id).cloned();
        if let (true, Some(handle), Some(cfg)) = (running, handle, rec.cfg.as_ref()) {
            let _topo = nets.topo.read().unwrap_or_else(|p| p.into_inner());
            let used: HashSet<String> = c.networks.values().map(|e| e.ifname.clone()).collect();
            let ifname = (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !used.contains(n))
                .unwrap_or_default();
            let static_ip = endpoint
                .spec
                .ipv4_address
                .as_deref()
                .filter(|s| !s.is_empty())
                .and_then(|s| s.parse().ok());
            let att = nets
                .cni
                .attach(&handle.path(), &c.id, &ifname, cfg, static_ip, &[])
                .map_err(|e| {
                    Error::Internal(format!(
                        "failed to connect container {} to network {}: {e}",
                        c.name, rec.net.name
                    ))
                })?;
            endpoint.endpoint_id = bundle::random_id().unwrap_or_default();
            endpoint.ifname = ifname;
            endpoint.ip_address = att.ip.to_string();
            endpoint.ip_prefix_len = att.prefix;
            endpoint.gateway = att.gateway.map(|g| g.to_string()).unwrap_or_default();
            endpoint.mac_address = att.mac;
            if rec.is_user() {
                let mut names = vec![c.name.clone()];
                names.extend(endpoint.spec.aliases.iter().cloned());
                names.push(c.id[..12].to_string());
                names.dedup();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                nets.dns.add(&rec.net.name, &c.id, &refs, att.ip);
                nets.ensure_dns(cfg);
                endpoint.dns_names = names;
            }
        }
        lock(&ctr.rec)
            .networks
            .insert(rec.net.name.clone(), endpoint);
        self.save(&ctr)?;
        self.net_event("connect", &rec, Some(&c.id));
        Ok(())
    }

    pub fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        let nets = &self.nets;
        let rec = match nets.find(network) {
            Ok(r) => r,
            Err(Error::NoSuchNetwork(_)) if force => NetRec {
                net: Network {
                    name: network.to_string(),
                    ..Default::default()
                },
                cfg: None,
            },
            Err(e) => return Err(e),
        };
        let ctr = self.find(container)?;
        let _op = lock(&ctr.op);
        let c = ctr.get();
        let Some(ep) = c.networks.get(&rec.net.name).cloned() else {
            return Err(Error::Conflict(format!(
                "container {} is not connected to network {}",
                c.id, rec.net.name
            )));
        };
        if (rec.net.driver == "host" || rec.net.driver == "null") && c.state.running() {
            return Err(Error::Conflict(format!(
                "container cannot be disconnected from the {} network while it runs",
                rec.net.name
            )));
        }
        if !ep.ifname.is_empty() {
            let handle = lock(&nets.sandboxes).get(&c.id).cloned();
            if let Some(cfg) = &rec.cfg {
                nets.cni
                    .detach(
                        handle.as_ref().map(|h| h.path()).as_deref(),
                        &c.id,
                        &ep.ifname,
                        cfg,
                    )
                    .map_err(|e| {
                        Error::Internal(format!(
                            "failed to disconnect container {} from network {}: {e}",
                            c.name, rec.net.name
                        ))
                    })?;
            }
            nets.dns.remove(&rec.net.name, &c.id);
        }
        lock(&ctr.rec).networks.remove(&rec.net.name);
        self.save(&ctr)?;
        self.net_event("disconnect", &rec, Some(&c.id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_wishes_from_bindings_and_publish_all() {
        let mut c = Container::default();
        c.spec.port_bindings.insert(
            "80/tcp".into(),
            vec![PortBinding {
                host_ip: "127.0.0.1".into(),
                host_port: "8080".into(),
            }],
        );
        c.spec.port_bindings.insert(
            "53/udp".into(),
            vec![PortBinding {
                host_ip: String::new(),
                host_port: "5300-5310".into(),
            }],
        );
        c.config.exposed_ports = vec!["443/tcp".into(), "80/tcp".into()];
        c.spec.publish_all = true;
        let w = port_wishes(&c).unwrap();
        type Wish = (String, Ipv4Addr, (u16, u16), u16, Protocol);
        let got: Vec<Wish> = w
            .iter()
            .map(|w| {
                (
                    w.key.clone(),
                    w.host_ip,
                    w.range,
                    w.container_port,
                    w.protocol,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "53/udp".into(),
                    Ipv4Addr::UNSPECIFIED,
                    (5300, 5310),
                    53,
                    Protocol::Udp
                ),
                (
                    "80/tcp".into(),
                    Ipv4Addr::new(127, 0, 0, 1),
                    (8080, 8080),
                    80,
                    Protocol::Tcp
                ),
                (
                    "443/tcp".into(),
                    Ipv4Addr::UNSPECIFIED,
                    (0, 0),
                    443,
                    Protocol::Tcp
                ),
            ]
        );
    }

    #[test]
    fn bad_ports_are_named() {
        let mut c = Container::default();
        c.spec.port_bindings.insert(
            "80/tcp".into(),
            vec![PortBinding {
                host_ip: String::new(),
                host_port: "eighty".into(),
            }],
        );
        let e = port_wishes(&c).err().unwrap().to_string();
        assert_eq!(e, "invalid host port \"eighty\" for 80/tcp");
        let mut c = Container::default();
        c.spec.port_bindings.insert("http".into(), vec![]);
        assert_eq!(
            port_wishes(&c).err().unwrap().to_string(),
            "invalid container port \"http\""
        );
        let mut c = Container::default();
        c.spec.port_bindings.insert(
            "80".into(),
            vec![PortBinding {
                host_ip: "::1".into(),
                host_port: "80".into(),
            }],
        );
        assert!(port_wishes(&c)
            .err()
            .unwrap()
            .to_string()
            .contains("only IPv4"));
    }

    #[test]
    fn extra_hosts_and_hosts_file() {
        let l = vec![
            "db:10.0.0.5".to_string(),
            "gw=host-gateway".to_string(),
            "v6:[::1]".to_string(),
        ];
        let e = parse_extra_hosts(&l, Some("172.17.0.1")).unwrap();
        assert_eq!(
            e,
            vec![
                ("db".to_string(), "10.0.0.5".to_string()),
                ("gw".to_string(), "172.17.0.1".to_string()),
                ("v6".to_string(), "::1".to_string()),
            ]
        );
        assert!(parse_extra_hosts(&["x:nope".to_string()], None).is_err());
        assert!(parse_extra_hosts(&["x:host-gateway".to_string()], None).is_err());
        let t = hosts_text("web", Some("example.org"), Some("10.1.0.2"), &e[..1]);
        assert!(t.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(t.contains("10.0.0.5\tdb\n"));
        assert!(t.ends_with("10.1.0.2\tweb.example.org web\n"));
        assert!(hosts_text("h", None, None, &[]).ends_with("127.0.1.1\th\n"));
    }

    #[test]
    fn resolv_conf_choices() {
        let spec = ContainerSpec {
            dns: vec!["9.9.9.9".into()],
            dns_search: vec!["corp".into()],
            dns_options: vec!["ndots:2".into()],
            ..Default::default()
        };
        assert_eq!(
            resolv_text(&spec, "bridge", None),
            "nameserver 9.9.9.9\nsearch corp\noptions ndots:2\n"
        );
        let t = resolv_text(&ContainerSpec::default(), "app", Some("10.5.0.1"));
        assert!(t.starts_with("nameserver 10.5.0.1\n"), "{t}");
        assert!(t.contains("ndots:0"), "{t}");
        let t = resolv_text(&ContainerSpec::default(), "bridge", None);
        assert!(t.contains("nameserver "), "{t}");
        assert!(!t.contains("nameserver 127."), "{t}");
    }
}
