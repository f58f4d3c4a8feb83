//! Engine networks and endpoints to Docker's JSON: `GET /networks` entries ([`resource`]),
//! a container's `NetworkSettings.Networks` entries ([`endpoint`]), and the network bodies
//! of create and connect to the engine's specs.

use std::collections::BTreeMap;

use berth_api::types::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkContainer, NetworkCreateRequest,
    NetworkResource,
};
use berth_engine::{Endpoint, EndpointSpec, Network, NetworkSpec};

use crate::error::ApiError;

/// A network as `GET /networks` and `GET /networks/{id}` show it.
pub fn resource(n: &Network) -> NetworkResource {
    let config = if n.subnet.is_empty() {
        Vec::new()
    } else {
        vec![IpamConfig {
            subnet: n.subnet.clone(),
            gateway: n.gateway.clone(),
            ..IpamConfig::default()
        }]
    };
    NetworkResource {
        name: n.name.clone(),
        id: n.id.clone(),
        created: n.created.clone(),
        driver: n.driver.clone(),
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default".into(),
            options: BTreeMap::new(),
            config,
        },
        internal: n.internal,
        scope: if n.driver == "overlay" {
            "swarm"
        } else {
            "local"
        }
        .into(),
        containers: n
            .containers
            .iter()
            .map(|(id, m)| {
                (
                    id.clone(),
                    NetworkContainer {
                        name: m.name.clone(),
                        endpoint_id: m.endpoint_id.clone(),
                        mac_address: m.mac_address.clone(),
                        ipv4_address: m.ipv4_address.clone(),
                        ipv6_address: String::new(),
                    },
                )
            })
            .collect(),
        options: n.options.clone(),
        labels: n.labels.clone(),
        ..NetworkResource::default()
    }
}

/// A container's endpoint on one network, as inspect's `NetworkSettings.Networks` entry.
pub fn endpoint(ep: &Endpoint) -> EndpointSettings {
    let ip = ep.spec.ipv4_address.clone().unwrap_or_default();
    EndpointSettings {
        ipam_config: (!ip.is_empty()).then(|| EndpointIpamConfig {
            ipv4_address: ip,
            ..EndpointIpamConfig::default()
        }),
        aliases: (!ep.spec.aliases.is_empty()).then(|| ep.spec.aliases.clone()),
        mac_address: ep.mac_address.clone(),
        network_id: ep.network_id.clone(),
        endpoint_id: ep.endpoint_id.clone(),
        gateway: ep.gateway.clone(),
        ip_address: ep.ip_address.clone(),
        ip_prefix_len: i64::from(ep.ip_prefix_len),
        dns_names: (!ep.dns_names.is_empty()).then(|| ep.dns_names.clone()),
        ..EndpointSettings::default()
    }
}

/// What a client asks of an endpoint (create's `EndpointsConfig` entry, connect's
/// `EndpointConfig`).
pub fn endpoint_spec(s: &EndpointSettings) -> EndpointSpec {
    EndpointSpec {
        aliases: s.aliases.clone().unwrap_or_default(),
        ipv4_address: s
            .ipam_config
            .as_ref()
            .map(|c| c.ipv4_address.clone())
            .filter(|a| !a.is_empty()),
    }
}

/// `POST /networks/create` as the engine's spec. Only one IPv4 pool is supported.
pub fn create_spec(req: &NetworkCreateRequest) -> Result<NetworkSpec, ApiError> {
    if req.name.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid network create body: Name: a network needs a name",
        ));
    }
    let pools = req
        .ipam
        .as_ref()
        .map(|i| i.config.as_slice())
        .unwrap_or(&[]);
    if pools.len() > 1 {
        return Err(ApiError::bad_request(
            "invalid network create body: IPAM.Config: only one address pool per network is supported",
        ));
    }
    if let Some(d) = req.ipam.as_ref().map(|i| i.driver.as_str()) {
        if !d.is_empty() && d != "default" {
            return Err(ApiError::bad_request(format!(
                "invalid network create body: IPAM.Driver: unknown IPAM driver {d:?} (only \"default\")"
            )));
        }
    }
    let pool = pools.first();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    if pool.is_some_and(|p| {
        p.auxiliary_addresses
            .as_ref()
            .is_some_and(|a| !a.is_empty())
    }) {
        return Err(ApiError::bad_request(
            "invalid network create body: IPAM.Config.AuxiliaryAddresses: not supported",
        ));
    }
    Ok(NetworkSpec {
        name: req.name.clone(),
        driver: non_empty(&req.driver),
        subnet: pool.and_then(|p| non_empty(&p.subnet)),
        gateway: pool.and_then(|p| non_empty(&p.gateway)),
        ip_range: pool.and_then(|p| non_empty(&p.ip_range)),
        internal: req.internal,
        enable_ipv6: req.enable_ipv6.unwrap_or(false),
        labels: req.labels.clone().unwrap_or_default(),
        options: req.options.clone().unwrap_or_default(),
        overlay: None,
    })
}

/// A swarm's overlay network as a manager shows it.
pub fn cluster_resource(n: &berth_cluster::model::Network) -> NetworkResource {
    let mut options = BTreeMap::new();
    options.insert(
        "com.docker.network.driver.overlay.vxlanid_list".to_string(),
        n.vni.to_string(),
    );
    NetworkResource {
        name: n.name.clone(),
        id: n.id.clone(),
        created: crate::time::format_rfc3339_nanos(n.created_at),
        scope: "swarm".into(),
        driver: "overlay".into(),
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default".into(),
            options: BTreeMap::new(),
            config: vec![IpamConfig {
                subnet: n.subnet.clone(),
                ..IpamConfig::default()
            }],
        },
        internal: n.internal,
        attachable: n.attachable,
        ingress: n.ingress,
        options,
        labels: n.labels.clone(),
        ..NetworkResource::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::NetworkMember;

    #[test]
    fn a_network_has_its_pool_and_members_and_no_null_objects() {
        let mut n = Network {
            id: "a".repeat(64),
            name: "front".into(),
            driver: "bridge".into(),
            created: "2026-12-02T10:00:00.000000001Z".into(),
            subnet: "10.9.0.0/24".into(),
            gateway: "10.9.0.1".into(),
            ..Network::default()
        };
        n.containers.insert(
            "c".repeat(64),
            NetworkMember {
                name: "web".into(),
                endpoint_id: "e".repeat(64),
                mac_address: "02:42:0a:09:00:02".into(),
                ipv4_address: "10.9.0.2/24".into(),
            },
        );
        let j = serde_json::to_value(resource(&n)).unwrap();
        assert_eq!(j["IPAM"]["Config"][0]["Subnet"], "10.9.0.0/24");
        assert_eq!(j["IPAM"]["Config"][0]["Gateway"], "10.9.0.1");
        assert!(j["IPAM"]["Config"][0].get("IPRange").is_none());
        assert!(j["IPAM"]["Options"].is_object());
        assert!(j["Options"].is_object() && j["Labels"].is_object());
        assert_eq!(j["Scope"], "local");
        let m = &j["Containers"]["c".repeat(64)];
        assert_eq!(m["Name"], "web");
        assert_eq!(m["IPv4Address"], "10.9.0.2/24");
        let none = Network {
            name: "none".into(),
            driver: "null".into(),
            ..Network::default()
        };
        let j = serde_json::to_value(resource(&none)).unwrap();
        assert_eq!(j["IPAM"]["Config"], serde_json::json!([]));
    }

    #[test]
    fn create_bodies_from_the_cli() {
        let body: NetworkCreateRequest = serde_json::from_str(
            r#"{"Name":"front","CheckDuplicate":true,"Driver":"bridge","Scope":"","EnableIPv6":false,
                "IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.9.0.0/24","Gateway":"10.9.0.1"}]},
                "Internal":true,"Attachable":false,"Ingress":false,"ConfigOnly":false,
                "ConfigFrom":null,"Options":{},"Labels":{"team":"a"}}"#,
        )
        .unwrap();
        let s = create_spec(&body).unwrap();
        assert_eq!(s.subnet.as_deref(), Some("10.9.0.0/24"));
        assert_eq!(s.gateway.as_deref(), Some("10.9.0.1"));
        assert!(s.internal);
        assert_eq!(s.labels["team"], "a");
        let two: NetworkCreateRequest = serde_json::from_str(
            r#"{"Name":"x","IPAM":{"Config":[{"Subnet":"10.1.0.0/24"},{"Subnet":"10.2.0.0/24"}]}}"#,
        )
        .unwrap();
        assert!(create_spec(&two)
            .unwrap_err()
            .to_string()
            .contains("IPAM.Config"));
        let nameless: NetworkCreateRequest =
            serde_json::from_str(r#"{"Driver":"bridge"}"#).unwrap();
        assert!(create_spec(&nameless)
            .unwrap_err()
            .to_string()
            .contains("Name"));
    }

    #[test]
    fn endpoint_settings_round_trip() {
        let s: EndpointSettings = serde_json::from_str(
            r#"{"IPAMConfig":{"IPv4Address":"10.9.0.9"},"Aliases":["db"],"Links":null}"#,
        )
        .unwrap();
        let spec = endpoint_spec(&s);
        assert_eq!(spec.ipv4_address.as_deref(), Some("10.9.0.9"));
        assert_eq!(spec.aliases, vec!["db".to_string()]);
        let ep = Endpoint {
            network_id: "n".repeat(64),
            spec,
            ip_address: "10.9.0.9".into(),
            ip_prefix_len: 24,
            ..Endpoint::default()
        };
        let j = serde_json::to_value(endpoint(&ep)).unwrap();
        assert_eq!(j["IPAMConfig"]["IPv4Address"], "10.9.0.9");
        assert_eq!(j["IPPrefixLen"], 24);
        assert_eq!(j["Aliases"][0], "db");
    }
}
