//! `NetworkConfig` (a Docker-like bridge network), its validation, overlap checks, and the
//! CNI conflist (bridge + host-local, portmap, firewall) that realises it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{NetError, Result};
use crate::subnet::Subnet;

/// The name of Docker's default network.
pub const DEFAULT_BRIDGE_NETWORK: &str = "bridge";
/// The Linux bridge of the default network (Docker's is `docker0`).
pub const DEFAULT_BRIDGE_DEVICE: &str = "berth0";
/// The CNI spec version of every conflist this crate writes.
pub const CNI_VERSION: &str = "1.0.0";

/// A bridge network as `docker network create` describes it. Serialisable, so the engine
/// can keep it in its metadata store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The network's name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`); also the CNI network name.
    pub name: String,
    /// The network's id (64 hex digits, as Docker's).
    pub id: String,
    /// Always `bridge` for now.
    pub driver: String,
    /// The subnet containers get their addresses from.
    pub subnet: Subnet,
    /// The bridge's address: containers' default route, and where the embedded DNS listens.
    pub gateway: Ipv4Addr,
    /// `--internal`: no masquerade and no default route, so no way out of the network.
    pub internal: bool,
    /// `--label` pairs.
    pub labels: BTreeMap<String, String>,
    /// The Linux bridge device (`berth0` or `br-<id[..12]>`); at most 15 bytes.
    pub bridge: String,
    /// This node's piece of an overlay network ([`crate::OverlayPlan`]): the subnet is the
    /// node's slice, the MTU leaves room for VXLAN, and the bridge does not masquerade (the
    /// mesh table masquerades only what leaves the whole overlay).
    #[serde(default)]
    pub overlay: bool,
    /// The whole overlay network this piece belongs to: containers route it through their
    /// gateway (this node), so traffic to other nodes' slices and to the virtual IPs (slice 0)
    /// leaves by this interface even when the default route is another network's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_subnet: Option<Subnet>,
    /// Set on a copy for an attachment that is not the container's first network: no default
    /// route through it (one default route per container; the CNI bridge plugin would add a
    /// second as an ECMP route). Never stored.
    #[serde(skip)]
    pub secondary: bool,
}

impl NetworkConfig {
    /// A bridge network with Docker's defaults: the gateway is the subnet's first host (unless
    /// given), the bridge device is named after the network ([`bridge_device_name`]).
    /// Validates everything ([`NetworkConfig::validate`]).
    pub fn new(
        name: &str,
        id: &str,
        subnet: Subnet,
        gateway: Option<Ipv4Addr>,
        internal: bool,
    ) -> Result<Self> {
        let cfg = NetworkConfig {
            name: name.to_string(),
            id: id.to_string(),
            driver: "bridge".to_string(),
            subnet,
            gateway: gateway.unwrap_or_else(|| subnet.first_host()),
            internal,
            labels: BTreeMap::new(),
            bridge: bridge_device_name(name, id),
            overlay: false,
            overlay_subnet: None,
            secondary: false,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check the name, id, driver, bridge device, subnet and gateway.
    pub fn validate(&self) -> Result<()> {
        validate_network_name(&self.name)?;
        let bad = |reason: String| NetError::InvalidNetwork {
            network: self.name.clone(),
            reason,
        };
        if self.id.is_empty() || !self.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad(format!("id {:?} is not alphanumeric", self.id)));
        }
        if self.driver != "bridge" {
            return Err(bad(format!(
                "driver {:?} is not supported (only bridge)",
                self.driver
            )));
        }
        validate_ifname("bridge name", &self.bridge)?;
        validate_gateway(&self.name, self.subnet, self.gateway)
    }

    /// The CNI conflist (JSON, cniVersion 1.0.0) for this network:
    /// - `bridge` with `isGateway` (the bridge holds the gateway address), `hairpinMode`, and
    ///   for non-internal networks `isDefaultGateway` (default route in the container) and
    ///   `ipMasq` (masquerade of outbound traffic); the `ips` capability takes `--ip`;
    ///   IPAM is `host-local` over the subnet with leases in `<state_dir>/ipam/<network>/`;
    /// - `portmap` (capability `portMappings`, `snat` so published ports answer on
    ///   127.0.0.1 and hairpin), left out of internal networks, which publish nothing;
    /// - `firewall` (iptables backend) accepting the container's traffic in `CNI-FORWARD`,
    ///   with `ingressPolicy: same-bridge` so that, as with Docker, two networks cannot reach
    ///   each other.
    ///
    /// An overlay piece ([`NetworkConfig::overlay`]) has MTU [`crate::OVERLAY_MTU`], no
    /// masquerade, and a route to the whole overlay subnet through the gateway; a
    /// [`NetworkConfig::secondary`] attachment no default route.
    pub fn conflist(&self, state_dir: &Path) -> Value {
        let mut ipam = json!({
            "type": "host-local",
            "ranges": [[{
                "subnet": self.subnet.to_string(),
                "gateway": self.gateway.to_string(),
            }]],
            "dataDir": state_dir.join("ipam").to_string_lossy(),
        });
        if let Some(whole) = self.overlay_subnet.filter(|w| *w != self.subnet) {
            ipam["routes"] = json!([{ "dst": whole.to_string() }]);
        }
        let bridge = json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "isDefaultGateway": !self.internal && !self.secondary,
            "ipMasq": !self.internal && !self.overlay,
            "hairpinMode": true,
            "capabilities": {"ips": true},
            "ipam": ipam,
        });
        let mut bridge = bridge;
        if self.overlay {
            bridge["mtu"] = json!(crate::OVERLAY_MTU);
        }
        let mut plugins = vec![bridge];
        if !self.internal {
            plugins.push(json!({
                "type": "portmap",
                "capabilities": {"portMappings": true},
                "snat": true,
            }));
        }
        plugins.push(json!({
            "type": "firewall",
            "backend": "iptables",
            "ingressPolicy": "same-bridge",
        }));
        json!({
            "cniVersion": CNI_VERSION,
            "name": self.name,
            "plugins": plugins,
        })
    }
}

/// Docker's bridge device names: `berth0` for the default `bridge` network, `br-<id[..12]>`
/// for every other one.
pub fn bridge_device_name(name: &str, id: &str) -> String {
    if name == DEFAULT_BRIDGE_NETWORK {
        DEFAULT_BRIDGE_DEVICE.to_string()
    } else {
        let short: String = id.chars().take(12).collect();
        format!("br-{short}")
    }
}

/// Docker's rule for network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_network_name(name: &str) -> Result<()> {
    validate_docker_name("network name", name)
}

/// Docker's rule for container names and aliases (the same as for networks), so they can be
/// DNS names on a network.
pub fn validate_docker_name(what: &'static str, name: &str) -> Result<()> {
    let bad = |reason: &str| NetError::InvalidName {
        what,
        value: name.to_string(),
        reason: reason.to_string(),
    };
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return Err(bad("it is empty")),
        Some(b) if !b.is_ascii_alphanumeric() => {
            return Err(bad("only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"))
        }
        _ => {}
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
        return Err(bad("only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
    }
    Ok(())
}

/// A Linux interface name: 1 to 15 bytes, no `/`, whitespace or `:`, not `.` or `..`.
pub fn validate_ifname(what: &'static str, name: &str) -> Result<()> {
    let bad = |reason: &str| NetError::InvalidName {
        what,
        value: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() || name.len() > 15 {
        return Err(bad("an interface name has 1 to 15 bytes"));
    }
    if name == "." || name == ".." || name.bytes().any(|b| b == b'/' || b == b':' || b <= b' ') {
        return Err(bad("an interface name has no '/', ':' or whitespace"));
    }
    Ok(())
}

/// A CNI container id: letters, digits, `_`, `.` and `-`, starting with a letter or digit
/// (the CNI spec's rule). It also names the attachment cache file, so it must not be a path.
pub fn validate_container_id(id: &str) -> Result<()> {
    validate_docker_name("container id", id)
}

/// The gateway must be a host address of the subnet (not its network or broadcast address).
pub fn validate_gateway(network: &str, subnet: Subnet, gateway: Ipv4Addr) -> Result<()> {
    if !subnet.contains(gateway) {
        return Err(NetError::InvalidNetwork {
            network: network.to_string(),
            reason: format!("gateway {gateway} is not in subnet {subnet}"),
        });
    }
    if !subnet.is_host(gateway) {
        return Err(NetError::InvalidNetwork {
            network: network.to_string(),
            reason: format!(
                "gateway {gateway} is the network or broadcast address of subnet {subnet}"
            ),
        });
    }
    if subnet.prefix() > 30 {
        return Err(NetError::InvalidNetwork {
            network: network.to_string(),
            reason: format!("subnet {subnet} is too small for a gateway and a container"),
        });
    }
    Ok(())
}

/// A `--ip` request: a host address of the network's subnet, other than the gateway.
pub fn validate_static_ip(network: &NetworkConfig, ip: Ipv4Addr) -> Result<()> {
    let bad = |reason: String| NetError::InvalidNetwork {
        network: network.name.clone(),
        reason,
    };
    if !network.subnet.is_host(ip) {
        return Err(bad(format!(
            "address {ip} is not a host address of subnet {}",
            network.subnet
        )));
    }
    if ip == network.gateway {
        return Err(bad(format!("address {ip} is the network's gateway")));
    }
    Ok(())
}

/// Refuse a new network whose name is taken, or whose bridge device or subnet is another
/// network's. The error names both networks and both subnets.
pub fn check_conflicts<'a>(
    new: &NetworkConfig,
    existing: impl IntoIterator<Item = &'a NetworkConfig>,
) -> Result<()> {
    for other in existing {
        if other.name == new.name {
            return Err(NetError::InvalidNetwork {
                network: new.name.clone(),
                reason: "a network with this name already exists".into(),
            });
        }
        if other.bridge == new.bridge {
            return Err(NetError::InvalidNetwork {
                network: new.name.clone(),
                reason: format!(
                    "bridge device {} is already used by network {:?}",
                    new.bridge, other.name
                ),
            });
        }
        if other.subnet.overlaps(&new.subnet) {
            return Err(NetError::Overlap {
                network: new.name.clone(),
                subnet: new.subnet.to_string(),
                other: other.name.clone(),
                other_subnet: other.subnet.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn net(name: &str, subnet: &str) -> NetworkConfig {
        NetworkConfig::new(name, ID, subnet.parse().unwrap(), None, false).unwrap()
    }

    #[test]
    fn names() {
        for ok in ["a", "web", "my-net_1.x", "0abc"] {
            validate_network_name(ok).unwrap();
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "é", "_x"] {
            assert!(validate_network_name(bad).is_err(), "{bad}");
        }
        let e = validate_network_name("a b").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid network name \"a b\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        );
        assert!(validate_ifname("ifname", "eth0").is_ok());
        assert!(validate_ifname("ifname", "a-very-long-name0").is_err());
        assert!(validate_ifname("ifname", "a/b").is_err());
        assert!(validate_container_id("../x").is_err());
    }

    #[test]
    fn bridge_names_like_docker() {
        assert_eq!(bridge_device_name("bridge", ID), "berth0");
        assert_eq!(bridge_device_name("web", ID), "br-0123456789ab");
        assert_eq!(net("web", "10.1.0.0/24").bridge, "br-0123456789ab");
    }

    #[test]
    fn gateway_rules() {
        let n = net("a", "10.1.2.0/24");
        assert_eq!(n.gateway, Ipv4Addr::new(10, 1, 2, 1));
        let s: Subnet = "10.1.2.0/24".parse().unwrap();
        let e = NetworkConfig::new("a", ID, s, Some(Ipv4Addr::new(10, 1, 3, 1)), false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "network \"a\": gateway 10.1.3.1 is not in subnet 10.1.2.0/24"
        );
        let e = NetworkConfig::new("a", ID, s, Some(Ipv4Addr::new(10, 1, 2, 255)), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("broadcast"), "{e}");
        assert!(NetworkConfig::new("a", ID, s, Some(Ipv4Addr::new(10, 1, 2, 0)), false).is_err());
        assert!(NetworkConfig::new("a", ID, "10.0.0.0/31".parse().unwrap(), None, false).is_err());
        assert!(NetworkConfig::new("a", "x/y", s, None, false).is_err());
        validate_static_ip(&n, Ipv4Addr::new(10, 1, 2, 9)).unwrap();
        assert!(validate_static_ip(&n, Ipv4Addr::new(10, 1, 2, 1)).is_err());
        assert!(validate_static_ip(&n, Ipv4Addr::new(10, 1, 9, 9)).is_err());
    }

    #[test]
    fn overlap_refused_naming_both() {
        let a = net("a", "10.1.0.0/16");
        let mut b = net("b", "10.1.2.0/24");
        b.bridge = "br-b".into();
        let e = check_conflicts(&b, [&a]).unwrap_err().to_string();
        assert_eq!(
            e,
            "network \"b\" subnet 10.1.2.0/24 overlaps network \"a\" subnet 10.1.0.0/16"
        );
        let mut c = net("c", "10.2.0.0/24");
        c.bridge = "br-c".into();
        check_conflicts(&c, [&a, &b]).unwrap();
        let mut dup = net("a", "10.3.0.0/24");
        dup.bridge = "br-d".into();
        assert!(check_conflicts(&dup, [&a])
            .unwrap_err()
            .to_string()
            .contains("already exists"));
        let samebr = net("e", "10.4.0.0/24");
        assert!(check_conflicts(&samebr, [&a])
            .unwrap_err()
            .to_string()
            .contains("bridge device"));
    }

    #[test]
    fn conflist_shape() {
        let n = net("web", "10.1.2.0/24");
        let c = n.conflist(Path::new("/st"));
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["name"], "web");
        let p = c["plugins"].as_array().unwrap();
        let types: Vec<&str> = p.iter().map(|x| x["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["bridge", "portmap", "firewall"]);
        assert_eq!(p[0]["bridge"], "br-0123456789ab");
        assert_eq!(p[0]["ipMasq"], true);
        let mut o = n.clone();
        o.overlay = true;
        o.overlay_subnet = Some("10.200.0.0/16".parse().unwrap());
        let c = o.conflist(Path::new("/s"));
        assert_eq!(c["plugins"][0]["ipMasq"], false);
        assert_eq!(c["plugins"][0]["mtu"], 1450);
        assert_eq!(c["plugins"][0]["isDefaultGateway"], true);
        assert_eq!(
            c["plugins"][0]["ipam"]["routes"],
            json!([{"dst": "10.200.0.0/16"}])
        );
        o.secondary = true;
        let c = o.conflist(Path::new("/s"));
        assert_eq!(c["plugins"][0]["isDefaultGateway"], false);
        assert_eq!(c["plugins"][0]["ipMasq"], false);
        assert_eq!(p[0]["isDefaultGateway"], true);
        assert_eq!(p[0]["hairpinMode"], true);
        assert_eq!(p[0]["capabilities"]["ips"], true);
        assert_eq!(p[0]["ipam"]["type"], "host-local");
        assert_eq!(p[0]["ipam"]["dataDir"], "/st/ipam");
        assert_eq!(p[0]["ipam"]["ranges"][0][0]["subnet"], "10.1.2.0/24");
        assert_eq!(p[0]["ipam"]["ranges"][0][0]["gateway"], "10.1.2.1");
        assert_eq!(p[1]["capabilities"]["portMappings"], true);
        assert_eq!(p[1]["snat"], true);
        assert_eq!(p[2]["backend"], "iptables");

        let mut i = n.clone();
        i.internal = true;
        let c = i.conflist(Path::new("/st"));
        let p = c["plugins"].as_array().unwrap();
        let types: Vec<&str> = p.iter().map(|x| x["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["bridge", "firewall"]);
        assert_eq!(p[0]["ipMasq"], false);
        assert_eq!(p[0]["isDefaultGateway"], false);
        assert_eq!(p[0]["isGateway"], true);
        assert!(p[0]["ipam"].get("routes").is_none());
    }

    #[test]
    fn serde_roundtrip() {
        let n = net("web", "10.1.2.0/24");
        let j = serde_json::to_string(&n).unwrap();
        let back: NetworkConfig = serde_json::from_str(&j).unwrap();
        assert_eq!(back, n);
    }
}
