//! A swarm node's networking beyond the engine's own networks, as berth-cluster's agent
//! applies it: overlay devices (VXLAN, one slice of a subnet per node), the routing mesh's
//! nftables table, and the host switches they need. berth-net does the work; the engine is
//! the layer the cluster goes through for all networking, so it is offered from here.

pub use berth_net::{
    allow_localnet, enable_ip_forward, forget_unanswered, host_routes, link_exists,
    overlay_devices, remove_mesh, remove_overlay, slice, validate_network_name, MeshPort,
    MeshRules, MeshService, NetError, OverlayPeer, OverlayPlan, Protocol, Subnet,
};
