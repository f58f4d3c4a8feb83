//! berth-cluster: a master (state store, scheduler, controllers) and an agent on every node
//! that drives its local engine, so that a set of berthds runs services the way Swarm mode
//! does. berth-server maps the Swarm-mode API onto [`Cluster`]; the master-agent protocol
//! ([`proto`]) belongs to this crate alone.
//!
//! - [`model`]: nodes, services, tasks (the cluster's own types);
//! - [`store`]: the master's SQLite database;
//! - [`scheduler`]: filter and score;
//! - [`master`]: the state, the protocol server, the controllers;
//! - [`agent`]: the session with the master and the node's task containers;
//! - [`netstate`]: overlay networks, VIPs and the tasks that take traffic, as agents apply
//!   them (VXLAN, the nftables mesh, DNS);
//! - [`ca`]: the swarm's CA, node certificates and join tokens;
//! - [`autoscale`]: CPU autoscaling of replicated services (HPA's rule);
//! - [`cluster`]: what one berthd is in the swarm (inactive, manager, worker).

pub mod agent;
pub mod autoscale;
pub mod ca;
pub mod cluster;
pub mod dataplane;
pub mod error;
pub mod etcd;
pub mod master;
pub mod model;
pub mod netstate;
pub mod proto;
pub mod scheduler;
pub mod store;

pub use cluster::{Cluster, ClusterConfig, InitRequest, JoinRequest, LocalState, SwarmStatus};
pub use error::{Error, Result};
pub use master::Master;
pub use store::StoreConfig;

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A Swarm-style id: `len` characters of `[0-9a-z]`.
pub fn random_id(len: usize) -> Result<String> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut buf = [0u8; 64];
        fill_random(&mut buf)?;
        for b in buf {
            // 252 = 7 * 36: no bias.
            if b < 252 && out.len() < len {
                out.push(ALPHABET[(b % 36) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// Fills `buf` from the kernel's CSPRNG (getrandom(2); no file to open per id).
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: the pointer and length describe `rest`, which lives across the call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::Io(format!("getrandom: {e}")));
        }
        done += n as usize;
    }
    Ok(())
}

/// Checks a service spec before anything is made: its name, image, constraints,
/// preferences, ports and autoscaling labels.
pub fn validate_spec(spec: &model::ServiceSpec) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    let name = &spec.name;
    let ok_name = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok_name {
        return bad(format!("rpc error: code = InvalidArgument desc = name must be valid as a DNS name component: {name:?}"));
    }
    if spec.task.image.trim().is_empty() {
        return bad("rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided".into());
    }
    scheduler::parse_constraints(&spec.task.placement.constraints)
        .map_err(Error::InvalidArgument)?;
    for d in &spec.task.placement.spread {
        scheduler::validate_spread(d).map_err(Error::InvalidArgument)?;
    }
    let mut seen = std::collections::HashSet::new();
    for p in &spec.ports {
        if p.target == 0 {
            return bad(format!("invalid port config: target port missing in {p:?}"));
        }
        if !matches!(p.protocol.as_str(), "tcp" | "udp" | "sctp") {
            return bad(format!(
                "invalid protocol {:?} (tcp, udp or sctp)",
                p.protocol
            ));
        }
        if p.published != 0 && !seen.insert((p.published, p.protocol.clone())) {
            return bad(format!(
                "duplicate published port {}/{}",
                p.published, p.protocol
            ));
        }
    }
    let r = &spec.task;
    if r.limits.nano_cpus < 0
        || r.limits.memory_bytes < 0
        || r.reservations.nano_cpus < 0
        || r.reservations.memory_bytes < 0
    {
        return bad("resources must not be negative".into());
    }
    for m in &r.mounts {
        if m.target.is_empty() || !m.target.starts_with('/') {
            return bad(format!(
                "invalid mount target {:?}: it must be an absolute path",
                m.target
            ));
        }
        if !matches!(m.kind.as_str(), "volume" | "bind" | "tmpfs") {
            return bad(format!("invalid mount type {:?}", m.kind));
        }
        if m.kind == "bind" && !m.source.starts_with('/') {
            return bad(format!(
                "invalid bind mount source {:?}: it must be an absolute path",
                m.source
            ));
        }
    }
    if !matches!(spec.endpoint_mode.as_str(), "" | "vip" | "dnsrr") {
        return bad(format!(
            "invalid endpoint mode {:?}: vip or dnsrr",
            spec.endpoint_mode
        ));
    }
    if spec.dnsrr() && spec.ingress_ports().next().is_some() {
        return bad("port published with ingress mode can't be used with dnsrr mode".into());
    }
    autoscale::validate(spec)
}
