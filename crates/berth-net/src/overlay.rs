//! Overlay networks: one subnet spanning the nodes of a cluster, carried between them by
//! VXLAN (routed, as flannel's vxlan backend does, not a flat L2 domain):
//!
//! - the network's subnet is cut into equal slices; slice 0 holds the services' virtual IPs,
//!   slice `i` (the node's index in the cluster) the addresses of that node's containers,
//!   which sit on a local bridge with the slice as its subnet;
//! - each node has one VXLAN device per network (`bvx<VNI>`, UDP 4789, no learning) whose
//!   address is its slice's network address and whose MAC is derived from (VNI, index);
//! - for every other node `j`: a route to slice `j` via slice `j`'s network address, onlink on
//!   the VXLAN device, a permanent neighbour entry for that address with `j`'s MAC, and a
//!   forwarding entry sending that MAC to `j`'s underlay address.
//!
//! Nothing is flooded or learnt; the cluster tells every node where every other one is. Works
//! across routed underlays (unlike plain routes between node subnets, which need the nodes
//! on one L2 segment). The devices are made with `ip`/`bridge` (iproute2), every change
//! checked, stale entries removed.

use std::net::Ipv4Addr;
use std::process::Command;

use serde_json::Value;

use crate::error::{NetError, Result};
use crate::subnet::Subnet;

/// The VXLAN UDP port (IANA's).
pub const VXLAN_PORT: u16 = 4789;
/// The MTU of an overlay's bridge and containers: 1500 less VXLAN's 50 bytes.
pub const OVERLAY_MTU: u32 = 1450;

/// A node of the overlay: its index (its slice) and its underlay address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlayPeer {
    pub index: u32,
    pub addr: Ipv4Addr,
}

/// The prefix length of a network's slices: /24 for a /16 or larger, else 6 bits more
/// (64 slices), at most /28.
pub fn slice_prefix(subnet: Subnet) -> u8 {
    if subnet.prefix() <= 16 {
        24
    } else {
        (subnet.prefix() + 6).min(28)
    }
}

/// How many nodes a network has room for (slice 0 is the VIPs').
pub fn node_capacity(subnet: Subnet) -> u32 {
    let bits = (slice_prefix(subnet) - subnet.prefix()).min(16) as u32;
    (1u32 << bits) - 1
}

/// Slice `index` of `subnet`.
pub fn slice(subnet: Subnet, index: u32) -> Result<Subnet> {
    let p = slice_prefix(subnet);
    if subnet.prefix() > 26 {
        return Err(NetError::InvalidNetwork {
            network: subnet.to_string(),
            reason: "an overlay network needs a /26 or larger subnet".into(),
        });
    }
    if index > node_capacity(subnet) {
        return Err(NetError::InvalidNetwork {
            network: subnet.to_string(),
            reason: format!(
                "no room for node {index}: it has slices for {} nodes",
                node_capacity(subnet)
            ),
        });
    }
    let base = u32::from(subnet.network()) + (index << (32 - p as u32));
    Subnet::new(Ipv4Addr::from(base), p)
}

/// The `n`-th virtual IP of `subnet` (0-based), from slice 0 (past its network, gateway-like
/// first address).
pub fn vip(subnet: Subnet, n: u32) -> Result<Ipv4Addr> {
    let s = slice(subnet, 0)?;
    let room = (1u32 << (32 - s.prefix() as u32)) - 3;
    if n >= room {
        return Err(NetError::PoolExhausted {
            network: subnet.to_string(),
        });
    }
    Ok(Ipv4Addr::from(u32::from(s.network()) + 2 + n))
}

/// The VXLAN device of network `vni`.
pub fn vxlan_device(vni: u32) -> String {
    format!("bvx{vni}")
}

/// The VTEP MAC of node `index` on network `vni` (locally administered, unicast).
pub fn vtep_mac(vni: u32, index: u32) -> String {
    let v = vni.to_be_bytes();
    let i = (index as u16).to_be_bytes();
    format!("02:b7:{:02x}:{:02x}:{:02x}:{:02x}", v[2], v[3], i[0], i[1])
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetError::Command {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NetError::Command {
            command,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json_list(program: &str, args: &[&str]) -> Result<Vec<Value>> {
    let out = run(program, args)?;
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(&out) {
        Ok(Value::Array(a)) => Ok(a),
        _ => Ok(Vec::new()),
    }
}

/// What one node must have for network `vni` over `subnet`: its own device and an entry set
/// per other peer (`peers` may include this node; it is skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayPlan {
    pub vni: u32,
    pub subnet: Subnet,
    pub local: OverlayPeer,
    pub peers: Vec<OverlayPeer>,
}

/// One route, neighbour and forwarding entry per remote node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    pub slice: Subnet,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub underlay: Ipv4Addr,
}

impl OverlayPlan {
    pub fn entries(&self) -> Result<Vec<PeerEntry>> {
        let mut out = Vec::new();
        for p in &self.peers {
            if p.index == self.local.index || p.addr == self.local.addr {
                continue;
            }
            let s = slice(self.subnet, p.index)?;
            out.push(PeerEntry {
                slice: s,
                gateway: s.network(),
                mac: vtep_mac(self.vni, p.index),
                underlay: p.addr,
            });
        }
        Ok(out)
    }

    /// Makes or corrects the VXLAN device and its entries; removes entries of nodes gone.
    pub fn apply(&self) -> Result<()> {
        let dev = vxlan_device(self.vni);
        let mac = vtep_mac(self.vni, self.local.index);
        let own = slice(self.subnet, self.local.index)?;
        let entries = self.entries()?;
        let local = self.local.addr.to_string();
        if crate::network::link_exists(&dev) {
            // A device made for another local address (the node re-joined elsewhere) is
            // remade.
            let info = json_list("ip", &["-d", "-j", "link", "show", "dev", &dev])?;
            let cur_local = info
                .first()
                .and_then(|l| l.pointer("/linkinfo/info_data/local"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if cur_local != local {
                run("ip", &["link", "del", &dev])?;
            }
        }
        if !crate::network::link_exists(&dev) {
            let vni = self.vni.to_string();
            let port = VXLAN_PORT.to_string();
            run(
                "ip",
                &[
                    "link",
                    "add",
                    &dev,
                    "type",
                    "vxlan",
                    "id",
                    &vni,
                    "local",
                    &local,
                    "dstport",
                    &port,
                    "nolearning",
                ],
            )?;
        }
        let mtu = OVERLAY_MTU.to_string();
        run(
            "ip",
            &["link", "set", "dev", &dev, "address", &mac, "mtu", &mtu],
        )?;
        let addr = format!("{}/32", own.network());
        run("ip", &["addr", "replace", &addr, "dev", &dev])?;
        run("ip", &["link", "set", "dev", &dev, "up"])?;
        // Host clients of published ports on 127.0.0.1 are sent out of this device.
        allow_localnet(&dev)?;

        // Routes.
        let routes = json_list("ip", &["-j", "route", "show", "dev", &dev])?;
        for r in &routes {
            let dst = r.get("dst").and_then(Value::as_str).unwrap_or_default();
            let keep = entries.iter().any(|e| e.slice.to_string() == dst);
            if !keep && !dst.is_empty() {
                let _ = run("ip", &["route", "del", dst, "dev", &dev]);
            }
        }
        for e in &entries {
            let dst = e.slice.to_string();
            let gw = e.gateway.to_string();
            run(
                "ip",
                &["route", "replace", &dst, "via", &gw, "dev", &dev, "onlink"],
            )?;
            run(
                "ip",
                &[
                    "neigh",
                    "replace",
                    &gw,
                    "lladdr",
                    &e.mac,
                    "dev",
                    &dev,
                    "nud",
                    "permanent",
                ],
            )?;
            let under = e.underlay.to_string();
            run(
                "bridge",
                &[
                    "fdb",
                    "replace",
                    &e.mac,
                    "dev",
                    &dev,
                    "dst",
                    &under,
                    "self",
                    "permanent",
                ],
            )?;
        }
        // Stale neighbours and forwarding entries.
        let neigh = json_list("ip", &["-j", "neigh", "show", "dev", &dev])?;
        for n in &neigh {
            let dst = n.get("dst").and_then(Value::as_str).unwrap_or_default();
            if !dst.is_empty() && !entries.iter().any(|e| e.gateway.to_string() == dst) {
                let _ = run("ip", &["neigh", "del", dst, "dev", &dev]);
            }
        }
        let fdb = json_list("bridge", &["-j", "fdb", "show", "dev", &dev])?;
        for f in &fdb {
            let m = f.get("mac").and_then(Value::as_str).unwrap_or_default();
            let dst = f.get("dst").and_then(Value::as_str).unwrap_or_default();
            if dst.is_empty() || m.is_empty() {
                continue;
            }
            if !entries
                .iter()
                .any(|e| e.mac == m && e.underlay.to_string() == dst)
            {
                let _ = run(
                    "bridge",
                    &["fdb", "del", m, "dev", &dev, "dst", dst, "self"],
                );
            }
        }
        Ok(())
    }
}

/// Lets connections from 127.0.0.1 (a client of a published port on the node itself) leave
/// by `dev` once the mesh has translated them (`route_localnet`): the VXLAN devices and the
/// overlays' local bridges. The mesh table drops what comes in from elsewhere for 127.0.0.0/8
/// ([`crate::MeshRules`]), so nothing reaches the node's loopback services this way.
pub fn allow_localnet(dev: &str) -> Result<()> {
    crate::config::validate_ifname("device name", dev)?;
    let p = std::path::PathBuf::from(format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet"));
    match std::fs::read_to_string(&p) {
        Ok(v) if v.trim() == "1" => Ok(()),
        _ => std::fs::write(&p, "1\n").map_err(crate::error::io_err("write", &p)),
    }
}

/// Removes network `vni`'s device (and with it its routes and entries).
pub fn remove_overlay(vni: u32) -> Result<()> {
    let dev = vxlan_device(vni);
    if crate::network::link_exists(&dev) {
        run("ip", &["link", "del", &dev])?;
    }
    Ok(())
}

/// The VXLAN devices on this host (`bvx<VNI>`), as VNIs.
pub fn overlay_devices() -> Vec<u32> {
    let mut out: Vec<u32> = crate::network::links()
        .iter()
        .filter_map(|n| n.strip_prefix("bvx").and_then(|v| v.parse().ok()))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> Subnet {
        t.parse().unwrap()
    }

    #[test]
    fn slices_and_vips() {
        let n = s("10.200.0.0/16");
        assert_eq!(slice(n, 0).unwrap(), s("10.200.0.0/24"));
        assert_eq!(slice(n, 3).unwrap(), s("10.200.3.0/24"));
        assert_eq!(node_capacity(n), 255);
        assert!(slice(n, 256).is_err());
        assert_eq!(
            vip(n, 0).unwrap(),
            "10.200.0.2".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(
            vip(n, 252).unwrap(),
            "10.200.0.254".parse::<Ipv4Addr>().unwrap()
        );
        assert!(vip(n, 253).is_err());
        let small = s("10.9.0.0/20");
        assert_eq!(slice_prefix(small), 26);
        assert_eq!(node_capacity(small), 63);
        assert_eq!(slice(small, 1).unwrap(), s("10.9.0.64/26"));
        assert!(slice(s("10.9.0.0/27"), 1).is_err());
    }

    #[test]
    fn macs_are_per_network_and_node() {
        assert_eq!(vtep_mac(4097, 3), "02:b7:10:01:00:03");
        assert_ne!(vtep_mac(4097, 3), vtep_mac(4098, 3));
    }

    #[test]
    fn plan_skips_the_local_node() {
        let plan = OverlayPlan {
            vni: 4097,
            subnet: s("10.200.0.0/16"),
            local: OverlayPeer {
                index: 1,
                addr: "192.0.2.1".parse().unwrap(),
            },
            peers: vec![
                OverlayPeer {
                    index: 1,
                    addr: "192.0.2.1".parse().unwrap(),
                },
                OverlayPeer {
                    index: 2,
                    addr: "192.0.2.2".parse().unwrap(),
                },
            ],
        };
        let e = plan.entries().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].slice, s("10.200.2.0/24"));
        assert_eq!(e[0].gateway, "10.200.2.0".parse::<Ipv4Addr>().unwrap());
        assert_eq!(e[0].mac, "02:b7:10:01:00:02");
        assert_eq!(e[0].underlay, "192.0.2.2".parse::<Ipv4Addr>().unwrap());
    }
}
