//! berth-net: Berth's bridge networks: CNI invocation, IPAM and port state, embedded DNS.
//!
//! - [`NetworkConfig`] describes a Docker-like bridge network and turns into a CNI conflist
//!   (bridge + host-local, portmap, firewall); [`allocate_subnet`], [`check_conflicts`] and
//!   the validators are pure functions.
//! - [`Cni`] runs the conflist through the plugins (CNI 1.0) to [`Cni::attach`] and
//!   [`Cni::detach`] a container's network namespace, which it is given as a path and never
//!   enters; it keeps each ADD result under its state dir for DEL and CHECK.
//! - [`PortAllocator`] holds the published host ports (serde state).
//! - [`DnsRegistry`] and [`DnsServer`] answer container names on each user network.
//!
//! No Berth dependencies, no async runtime: every call blocks, the DNS server runs on std
//! threads.
//!
//! How an engine uses it (as root):
//!
//! ```no_run
//! use berth_net::*;
//! # fn main() -> Result<()> {
//! let cni = Cni::new("/var/lib/berth/net");
//! let existing: Vec<NetworkConfig> = Vec::new(); // from the engine's metadata
//! // `docker network create app` without --subnet:
//! let mut taken: Vec<Subnet> = existing.iter().map(|n| n.subnet).collect();
//! taken.extend(host_routes());
//! let subnet = allocate_subnet("app", &taken)?;
//! let net = NetworkConfig::new("app", "0123456789abcdef0123", subnet, None, false)?;
//! check_conflicts(&net, &existing)?;
//! // `docker run --network app -p 8080:80 --name web`, container created, not started:
//! let mut ports = PortAllocator::load("/var/lib/berth/net/ports.json".as_ref())?;
//! let mapped = ports.reserve("cid", &[PortRequest::new(8080, 80, Protocol::Tcp)])?;
//! ports.save("/var/lib/berth/net/ports.json".as_ref())?;
//! let netns = NetnsHandle::open("/proc/4242/ns/net".as_ref())?; // keep until detach
//! cni.loopback_up(&netns.path(), "cid")?;
//! let att = cni.attach(&netns.path(), "cid", "eth0", &net, None, &mapped)?;
//! // Names on the network; one DNS server per user network, once its bridge exists:
//! let registry = DnsRegistry::new();
//! registry.add("app", "cid", &["web", "cid"], att.ip);
//! let dns = DnsServer::start(DnsServerConfig::for_network(&net), registry.clone())?;
//! let resolv = container_resolv_conf(net.gateway, &ResolvConf::default());
//! // ... the container runs, exits ...
//! registry.remove("app", "cid");
//! cni.detach(Some(&netns.path()), "cid", "eth0", &net)?;
//! ports.release("cid");
//! // `docker network rm app`:
//! dns.stop();
//! cni.remove_network(&net)?;
//! # let _ = resolv; Ok(()) }
//! ```

mod cni;
mod config;
mod dns;
mod error;
mod mesh;
mod network;
mod overlay;
mod ports;
mod rules;
mod subnet;

pub use cni::{CniCommand, Plugins, RuntimeArgs, DEFAULT_PLUGIN_DIRS};
pub use config::{
    bridge_device_name, check_conflicts, validate_container_id, validate_docker_name,
    validate_gateway, validate_ifname, validate_network_name, validate_static_ip, NetworkConfig,
    CNI_VERSION, DEFAULT_BRIDGE_DEVICE, DEFAULT_BRIDGE_NETWORK,
};
pub use dns::{
    container_resolv_conf, host_upstreams, parse_resolv_conf, DnsRegistry, DnsServer,
    DnsServerConfig, ResolvConf, TTL as DNS_TTL,
};
pub use error::{NetError, Result};
pub use mesh::{
    forget_unanswered, remove_mesh, MeshPort, MeshRules, MeshService, MESH_MARK, MESH_TABLE,
};
pub use network::{
    delete_link, device_ipv4, enable_ip_forward, link_exists, links, Attachment, Cni, NetnsHandle,
};
pub use overlay::{
    allow_localnet, node_capacity, overlay_devices, remove_overlay, slice, slice_prefix, vip,
    vtep_mac, vxlan_device, OverlayPeer, OverlayPlan, PeerEntry, OVERLAY_MTU, VXLAN_PORT,
};
pub use ports::{
    ephemeral_range, host_port_free, PortAllocator, PortMapping, PortRequest, Protocol, Reservation,
};
pub use rules::{prune_idle_chains, remove_bridge_rules, Pruned};
pub use subnet::{
    allocate_subnet, default_pools, host_routes, parse_proc_net_route, Subnet,
    DEFAULT_BRIDGE_SUBNET,
};
