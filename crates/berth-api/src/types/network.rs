//! Network bodies: the network resource of `GET /networks` and `GET /networks/{id}`, create,
//! connect, disconnect and prune.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{EndpointSettings, StringMap};

wire! {
    /// One address pool of a network: `{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.1"}`;
    /// empty fields are left out, as dockerd writes them.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct IpamConfig {
        #[serde(skip_serializing_if = "String::is_empty")]
        pub subnet: String,
        #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
        pub ip_range: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub gateway: String,
        /// `--aux-address`: names to addresses the IPAM driver must not hand out.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub auxiliary_addresses: Option<StringMap>,
    }
}

wire! {
    /// `IPAM` of a network and of a create body: the driver (`default`), its options and the
    /// pools.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Ipam {
        pub driver: String,
        pub options: StringMap,
        pub config: Vec<IpamConfig>,
    }
}

wire! {
    /// `ConfigFrom`: the config-only network a network takes its configuration from.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ConfigReference {
        pub network: String,
    }
}

wire! {
    /// A container on a network, as network inspect lists it (`IPv4Address` is `IP/prefix`).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NetworkContainer {
        pub name: String,
        #[serde(rename = "EndpointID")]
        pub endpoint_id: String,
        pub mac_address: String,
        #[serde(rename = "IPv4Address")]
        pub ipv4_address: String,
        #[serde(rename = "IPv6Address")]
        pub ipv6_address: String,
    }
}

wire! {
    /// A network as `GET /networks` and `GET /networks/{id}` return it. The objects
    /// (`IPAM.Options`, `Containers`, `Options`, `Labels`) are never `null`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NetworkResource {
        pub name: String,
        pub id: String,
        /// RFC 3339 with nanoseconds.
        pub created: String,
        /// `local` (or `swarm`, `global`).
        pub scope: String,
        /// `bridge`, `host`, `null`.
        pub driver: String,
        #[serde(rename = "EnableIPv6")]
        pub enable_ipv6: bool,
        #[serde(rename = "IPAM")]
        pub ipam: Ipam,
        pub internal: bool,
        pub attachable: bool,
        pub ingress: bool,
        pub config_from: ConfigReference,
        pub config_only: bool,
        /// Container id → its endpoint on the network.
        pub containers: BTreeMap<String, NetworkContainer>,
        pub options: StringMap,
        pub labels: StringMap,
    }
}

wire! {
    /// `POST /networks/create`. The docker CLI sends `CheckDuplicate` up to API 1.43 and
    /// `EnableIPv6` only when `--ipv6` is given on API 1.48 and later.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NetworkCreateRequest {
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub check_duplicate: Option<bool>,
        pub driver: String,
        pub scope: String,
        pub internal: bool,
        pub attachable: bool,
        pub ingress: bool,
        #[serde(rename = "EnableIPv6", skip_serializing_if = "Option::is_none")]
        pub enable_ipv6: Option<bool>,
        #[serde(rename = "IPAM")]
        pub ipam: Option<Ipam>,
        pub config_only: bool,
        pub config_from: Option<ConfigReference>,
        pub options: Option<StringMap>,
        pub labels: Option<StringMap>,
    }
}

wire! {
    /// `201 {"Id": "...", "Warning": ""}`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NetworkCreateResponse {
        pub id: String,
        pub warning: String,
    }
}

wire! {
    /// `POST /networks/{id}/connect`: the container (name or id) and its options on the
    /// network (`Aliases`, `IPAMConfig.IPv4Address`).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NetworkConnectRequest {
        pub container: String,
        pub endpoint_config: Option<EndpointSettings>,
    }
}

wire! {
    /// `POST /networks/{id}/disconnect`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NetworkDisconnectRequest {
        pub container: String,
        pub force: bool,
    }
}

wire! {
    /// `POST /networks/prune`: the names of the networks removed.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NetworksPruneResponse {
        pub networks_deleted: Option<Vec<String>>,
    }
}
