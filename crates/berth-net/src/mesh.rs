//! The routing mesh and the services' virtual IPs, in the kernel: one nftables table
//! (`ip berth_mesh`) per node, rewritten whole in one transaction whenever the cluster's
//! endpoints change (`nft -f`: the old table and the new one never coexist, and a packet sees
//! one or the other).
//!
//! - A virtual IP: new connections to it (any port) are DNATed to one of the service's
//!   backends, chosen by `numgen random` over a map, keeping the port.
//! - A published port: new connections to any local address of the node on that port go to
//!   a backend's target port the same way, whichever node the backend is on.
//! - Both mark the connection, and marked connections are masqueraded on their way out, so
//!   the reply comes back through the node that translated (a backend on another node, or on
//!   the client's own bridge).
//! - Traffic from an overlay's containers to outside the overlay is masqueraded (the local
//!   bridges of overlays do not masquerade themselves).
//!
//! Only new connections are balanced: conntrack keeps an established one on its backend, so
//! taking a backend out of the map never breaks the connections it is serving. A service with
//! no backend rejects (TCP reset, ICMP unreachable for UDP) instead of black-holing.
//!
//! A backend that dies before the cluster knows (`docker kill`, a crash) answers the SYNs the
//! mesh still sends it with a reset (its namespace outlives its processes for a moment). The
//! first such refusal of a mesh connection is dropped (a reset answering a SYN: sequence 0,
//! the connection never established), so the client's TCP sends its SYN again a second later;
//! by then every node has taken the backend out and [`forget_unanswered`] has dropped the
//! connection's conntrack entry, so the retry is balanced anew onto a live replica. A second
//! refusal of the same connection passes: a replica that is up but does not listen is refused
//! a second later, not hidden.
//!
//! Measured against a userspace proxy in `bench/mesh.sh` (see ARCHITECTURE.md).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::error::{NetError, Result};
use crate::ports::Protocol;
use crate::subnet::Subnet;

/// The table's name (family `ip`).
pub const MESH_TABLE: &str = "berth_mesh";
/// The conntrack mark of translated connections.
pub const MESH_MARK: u32 = 0x6d65_7368;
/// The mark of a mesh connection whose first refusal was dropped.
const REFUSED_ONCE: u32 = MESH_MARK | 1;

/// Drops the first refusal (a reset answering the SYN) of a mesh connection, on its way to
/// a client elsewhere (forward) or on this node (input).
const FIRST_REFUSAL: &str = "ct direction reply ct status ! assured tcp flags & (fin | syn | rst | ack) == rst | ack tcp sequence 0";

/// A port published on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshPort {
    pub protocol: Protocol,
    pub published: u16,
    pub target: u16,
}

/// One service as the mesh sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeshService {
    /// A short id safe in a chain name (`[a-z0-9]`).
    pub id: String,
    pub vips: Vec<Ipv4Addr>,
    pub ports: Vec<MeshPort>,
    /// The healthy, running replicas' addresses.
    pub backends: Vec<Ipv4Addr>,
}

/// Everything the node's table holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeshRules {
    pub services: Vec<MeshService>,
    /// The overlays' subnets whose outbound traffic is masqueraded.
    pub masquerade: Vec<Subnet>,
}

fn chain_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect::<String>()
        .to_ascii_lowercase()
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// What a service with no backend does: TCP gets a reset, anything else ICMP unreachable.
const REJECT: &str = "meta l4proto tcp reject with tcp reset\n    reject";

impl MeshRules {
    /// The `nft -f` script: creates the table if missing, deletes it and makes it anew.
    pub fn render(&self) -> String {
        let mut jumps = String::new();
        let mut chains = String::new();
        for s in &self.services {
            let id = chain_id(&s.id);
            let n = s.backends.len();
            if !s.vips.is_empty() {
                for v in &s.vips {
                    let _ = writeln!(jumps, "    ip daddr {v} jump vip_{id}");
                }
                let map: Vec<String> = s
                    .backends
                    .iter()
                    .enumerate()
                    .map(|(i, b)| format!("{i} : {b}"))
                    .collect();
                balanced_chain(
                    &mut chains,
                    &format!("vip_{id}"),
                    n,
                    &format!("dnat to numgen random mod {n} map {{ {} }}", map.join(", ")),
                );
            }
            for p in &s.ports {
                let pr = proto(p.protocol);
                let name = format!("pub_{id}_{pr}_{}", p.published);
                let _ = writeln!(
                    jumps,
                    "    fib daddr type local {pr} dport {} jump {name}",
                    p.published
                );
                let map: Vec<String> = s
                    .backends
                    .iter()
                    .enumerate()
                    .map(|(i, b)| format!("{i} : {b} . {}", p.target))
                    .collect();
                balanced_chain(
                    &mut chains,
                    &name,
                    n,
                    &format!(
                        "meta l4proto {pr} dnat ip to numgen random mod {n} map {{ {} }}",
                        map.join(", ")
                    ),
                );
            }
        }
        let mut masq = String::new();
        for m in &self.masquerade {
            let _ = writeln!(masq, "    ip saddr {m} ip daddr != {m} masquerade");
        }
        let mut filter = String::new();
        for (name, hook) in [("mesh_forward", "forward"), ("mesh_input", "input")] {
            let _ = writeln!(
                filter,
                "  chain {name} {{\n    type filter hook {hook} priority filter; policy accept;\n    ct mark {MESH_MARK:#x} {FIRST_REFUSAL} ct mark set {REFUSED_ONCE:#x} drop"
            );
            if hook == "input" {
                // route_localnet is on for the overlays' devices (127.0.0.1 clients of
                // published ports): nothing from outside may open a connection to loopback.
                let _ = writeln!(
                    filter,
                    "    iifname != \"lo\" ip daddr 127.0.0.0/8 ct state != {{ established, related }} drop"
                );
            }
            let _ = writeln!(filter, "  }}");
        }
        format!(
            "table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n  chain prerouting {{\n    type nat hook prerouting priority -100; policy accept;\n{jumps}  }}\n  chain output {{\n    type nat hook output priority -100; policy accept;\n{jumps}  }}\n  chain postrouting {{\n    type nat hook postrouting priority 100; policy accept;\n    ct mark {MESH_MARK:#x} masquerade\n{masq}  }}\n{filter}{chains}}}\n",
            t = MESH_TABLE
        )
    }

    /// Replaces the node's table with this one, in one transaction.
    pub fn apply(&self) -> Result<()> {
        nft_script(&self.render())
    }
}

/// A chain that marks a new connection and sends it to one of `n` backends by `dnat`, or,
/// with no backend, rejects it.
fn balanced_chain(out: &mut String, name: &str, n: usize, dnat: &str) {
    let _ = writeln!(out, "  chain {name} {{");
    if n == 0 {
        let _ = writeln!(out, "    {REJECT}");
    } else {
        let _ = writeln!(out, "    ct mark set {MESH_MARK:#x}");
        let _ = writeln!(out, "    {dnat}");
    }
    let _ = writeln!(out, "  }}");
}

fn nft_script(script: &str) -> Result<()> {
    let command = "nft -f -".to_string();
    let err = |reason: String| NetError::Command {
        command: command.clone(),
        reason,
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    child
        .stdin
        .take()
        .ok_or_else(|| err("no stdin".into()))?
        .write_all(script.as_bytes())
        .map_err(|e| err(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

/// Removes the node's table (the node left the cluster).
pub fn remove_mesh() -> Result<()> {
    nft_script(&format!(
        "table ip {MESH_TABLE}\ndelete table ip {MESH_TABLE}\n"
    ))
}

/// Forgets the connections to `backend`, which has just left the mesh, that never got going:
/// TCP ones that got no answer (a SYN sent to a replica that died before the mesh learnt it)
/// or whose first refusal the mesh dropped, so the client's retried SYN is balanced anew
/// instead of following the old entry; and its UDP flows, so their next datagram goes to a
/// live replica. Established TCP connections stay (a replica taken out of rotation serves
/// them to the end). Best effort: needs the `conntrack` tool (conntrack-tools).
pub fn forget_unanswered(backend: Ipv4Addr) {
    let ip = backend.to_string();
    let mut calls: Vec<Vec<&str>> = ["SYN_SENT", "CLOSE"]
        .iter()
        .map(|st| vec!["-D", "-p", "tcp", "--reply-src", &ip, "--state", st])
        .collect();
    calls.push(vec!["-D", "-p", "udp", "--reply-src", &ip]);
    for args in calls {
        let _ = Command::new("conntrack")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vips_ports_and_masquerade() {
        let r = MeshRules {
            services: vec![
                MeshService {
                    id: "Abc-123".into(),
                    vips: vec!["10.200.0.2".parse().unwrap()],
                    ports: vec![MeshPort {
                        protocol: Protocol::Tcp,
                        published: 8080,
                        target: 80,
                    }],
                    backends: vec!["10.200.1.5".parse().unwrap(), "10.200.2.6".parse().unwrap()],
                },
                MeshService {
                    id: "empty".into(),
                    vips: vec![],
                    ports: vec![MeshPort {
                        protocol: Protocol::Udp,
                        published: 53,
                        target: 53,
                    }],
                    backends: vec![],
                },
            ],
            masquerade: vec!["10.200.0.0/16".parse().unwrap()],
        };
        let t = r.render();
        assert!(t.starts_with("table ip berth_mesh\ndelete table ip berth_mesh\n"));
        assert!(t.contains("ip daddr 10.200.0.2 jump vip_abc123"));
        assert!(t.contains("fib daddr type local tcp dport 8080 jump pub_abc123_tcp_8080"));
        assert!(t.contains("dnat to numgen random mod 2 map { 0 : 10.200.1.5, 1 : 10.200.2.6 }"));
        assert!(t.contains(
            "meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.200.1.5 . 80, 1 : 10.200.2.6 . 80 }"
        ));
        assert!(t.contains(
            "chain pub_empty_udp_53 {\n    meta l4proto tcp reject with tcp reset\n    reject\n  }"
        ));
        assert!(t.contains("ip saddr 10.200.0.0/16 ip daddr != 10.200.0.0/16 masquerade"));
        // The jumps are in both NAT hooks.
        assert_eq!(t.matches("jump vip_abc123").count(), 2);
        // First refusals of mesh connections are dropped, forwarded or local.
        assert_eq!(t.matches("ct mark set 0x6d657369 drop").count(), 2);
        assert!(t.contains("type filter hook forward priority filter"));
        assert!(t.contains("type filter hook input priority filter"));
        assert!(t.contains(
            "iifname != \"lo\" ip daddr 127.0.0.0/8 ct state != { established, related } drop"
        ));
    }

    #[test]
    fn chain_ids_are_safe() {
        assert_eq!(chain_id("x;drop table"), "xdroptable");
    }
}
