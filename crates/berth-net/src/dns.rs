//! The embedded DNS of user-defined networks: a registry of container names per network, the
//! resolver that answers from it, forwarding of other names to the host's resolvers, and a
//! UDP + TCP server per network (std threads) listening on the network's gateway address.
//!
//! Docker's embedded DNS listens on 127.0.0.11 inside every container's namespace. Berth-net
//! never enters a namespace, so the server listens on the host, on the gateway address of the
//! network (port 53), and containers of that network get `nameserver <gateway>` in their
//! resolv.conf ([`container_resolv_conf`]). Only queries whose source lies in the allowed
//! subnets (the network's own) are answered; others are dropped. Since the forwarder runs in
//! the host's namespace, loopback resolvers of the host (127.0.0.53) work as upstreams too.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::error::{NetError, Result};
use crate::subnet::Subnet;

/// The TTL of answers about containers (Docker's).
pub const TTL: u32 = 600;
/// How long one upstream gets to answer a forwarded query.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// At most this many forwarded queries in flight per server; more get SERVFAIL.
const MAX_INFLIGHT: usize = 64;
/// How often the server threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
struct Entry {
    container_id: String,
    /// Lowercased names (container name and aliases).
    names: Vec<String>,
    ip: Ipv4Addr,
}

/// Names of containers per network, shared between the engine (which adds and removes) and
/// the DNS servers (which read). Cheap to clone: clones share the same table. Names are
/// case-insensitive; several containers may hold one alias (all their addresses are
/// answered).
#[derive(Debug, Clone, Default)]
pub struct DnsRegistry {
    inner: Arc<RwLock<HashMap<String, Vec<Entry>>>>,
    /// Turns the answers of names with several addresses (round robin, as Docker's DNS
    /// shuffles them: clients that take the first address spread over all of them).
    turn: Arc<AtomicUsize>,
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publish `container_id` on `network` under `names` (its name, aliases, short id...) at
    /// `ip`. Replaces what the container had on that network.
    pub fn add(&self, network: &str, container_id: &str, names: &[&str], ip: Ipv4Addr) {
        let entry = Entry {
            container_id: container_id.to_string(),
            names: names
                .iter()
                .map(|n| normalize(n))
                .filter(|n| !n.is_empty())
                .collect(),
            ip,
        };
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let list = t.entry(network.to_string()).or_default();
        list.retain(|e| e.container_id != container_id);
        list.push(entry);
    }

    /// Replaces every record of `network` whose key starts with `prefix` by `records` (names
    /// and an address each): the cluster's service and task names.
    pub fn set_records(&self, network: &str, prefix: &str, records: &[(Vec<String>, Ipv4Addr)]) {
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let list = t.entry(network.to_string()).or_default();
        list.retain(|e| !e.container_id.starts_with(prefix));
        for (i, (names, ip)) in records.iter().enumerate() {
            list.push(Entry {
                container_id: format!("{prefix}{i}"),
                names: names
                    .iter()
                    .map(|n| normalize(n))
                    .filter(|n| !n.is_empty())
                    .collect(),
                ip: *ip,
            });
        }
        if list.is_empty() {
            t.remove(network);
        }
    }

    /// Withdraw a container's names from a network.
    pub fn remove(&self, network: &str, container_id: &str) {
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = t.get_mut(network) {
            list.retain(|e| e.container_id != container_id);
            if list.is_empty() {
                t.remove(network);
            }
        }
    }

    /// Forget a whole network.
    pub fn remove_network(&self, network: &str) {
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        t.remove(network);
    }

    /// The addresses of `name` on `network` (also as `name.<network>`), case-insensitive,
    /// with or without a trailing dot.
    pub fn lookup(&self, network: &str, name: &str) -> Vec<Ipv4Addr> {
        let mut name = normalize(name);
        let suffix = format!(".{}", network.to_ascii_lowercase());
        if let Some(stripped) = name.strip_suffix(&suffix) {
            name = stripped.to_string();
        }
        let t = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Ipv4Addr> = t
            .get(network)
            .map(|l| {
                l.iter()
                    .filter(|e| e.names.contains(&name))
                    .map(|e| e.ip)
                    .collect()
            })
            .unwrap_or_default();
        out.dedup();
        if out.len() > 1 {
            let n = self.turn.fetch_add(1, Ordering::Relaxed) % out.len();
            out.rotate_left(n);
        }
        out
    }

    /// The first name of the container holding `ip` on `network` (for PTR queries).
    pub fn reverse(&self, network: &str, ip: Ipv4Addr) -> Option<String> {
        let t = self.inner.read().unwrap_or_else(|p| p.into_inner());
        t.get(network)?
            .iter()
            .find(|e| e.ip == ip)
            .and_then(|e| e.names.first().cloned())
    }
}

/// What the resolver makes of one query.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Send this reply.
    Reply(Message),
    /// Not ours: forward the query as it came.
    Forward,
}

fn reply_to(req: &Message, code: ResponseCode) -> Message {
    let mut m = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    m.metadata = Metadata::response_from_request(&req.metadata);
    m.metadata.response_code = code;
    m.metadata.recursion_available = true;
    m.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m
}

fn ptr_ip(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse::<u8>())
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    match parts[..] {
        [d, c, b, a] => Some(Ipv4Addr::new(a, b, c, d)),
        _ => None,
    }
}

/// Answer `req` for `network` from the registry, or say it must be forwarded (`forward`
/// false: internal networks, which have no way out, get SERVFAIL instead).
pub(crate) fn resolve(
    registry: &DnsRegistry,
    network: &str,
    forward: bool,
    req: &Message,
) -> Decision {
    if req.metadata.message_type != MessageType::Query {
        return Decision::Reply(reply_to(req, ResponseCode::FormErr));
    }
    if req.metadata.op_code != OpCode::Query {
        return Decision::Reply(reply_to(req, ResponseCode::NotImp));
    }
    let [q] = &req.queries[..] else {
        return Decision::Reply(reply_to(req, ResponseCode::FormErr));
    };
    let qname = normalize(&q.name().to_ascii());
    let qtype = q.query_type();
    if qtype == RecordType::PTR {
        if let Some(name) = ptr_ip(&qname).and_then(|ip| registry.reverse(network, ip)) {
            let mut m = reply_to(req, ResponseCode::NoError);
            m.metadata.authoritative = true;
            if let Ok(target) = Name::from_ascii(format!("{name}.")) {
                m.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::PTR(PTR(target)),
                ));
            }
            return Decision::Reply(m);
        }
    } else {
        let ips = registry.lookup(network, &qname);
        if !ips.is_empty() {
            let mut m = reply_to(req, ResponseCode::NoError);
            m.metadata.authoritative = true;
            if matches!(qtype, RecordType::A | RecordType::ANY) {
                for ip in ips {
                    m.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
                }
            }
            // Other types of a known name (AAAA, MX...): no data, which is NOERROR.
            return Decision::Reply(m);
        }
    }
    if forward {
        Decision::Forward
    } else {
        Decision::Reply(reply_to(req, ResponseCode::ServFail))
    }
}

/// The parts of a resolv.conf that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// Parse resolv.conf text (`nameserver`, `search`/`domain`, `options`; comments with `#`
/// or `;`).
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut rc = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => {
                // `fe80::1%eth0` has a zone the std parser does not take: skip those.
                if let Some(Ok(ip)) = f.next().map(str::parse::<IpAddr>) {
                    rc.nameservers.push(ip);
                }
            }
            Some("search") | Some("domain") => rc.search = f.map(str::to_string).collect(),
            Some("options") => rc.options.extend(f.map(str::to_string)),
            _ => {}
        }
    }
    rc
}

/// The host's resolvers (`/etc/resolv.conf`) as upstreams on port 53.
pub fn host_upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|t| {
            parse_resolv_conf(&t)
                .nameservers
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 53))
                .collect()
        })
        .unwrap_or_default()
}

/// A container's resolv.conf on a network with embedded DNS: the gateway as the only
/// nameserver, the host's search domains and options, and `ndots:0` (as Docker writes).
pub fn container_resolv_conf(gateway: Ipv4Addr, host: &ResolvConf) -> String {
    let mut s = format!("nameserver {gateway}\n");
    if !host.search.is_empty() {
        s.push_str(&format!("search {}\n", host.search.join(" ")));
    }
    let mut opts: Vec<&str> = host
        .options
        .iter()
        .map(String::as_str)
        .filter(|o| !o.starts_with("ndots:"))
        .collect();
    opts.push("ndots:0");
    s.push_str(&format!("options {}\n", opts.join(" ")));
    s
}

/// How to run one network's DNS server.
#[derive(Debug, Clone)]
pub struct DnsServerConfig {
    /// The network whose names are answered.
    pub network: String,
    /// Where to listen: `<gateway>:53` in production; any address (port 0 picks one) in tests.
    pub listen: SocketAddr,
    /// Only clients in these subnets are answered (the network's subnet); empty allows all.
    pub allowed: Vec<Subnet>,
    /// Where other names go, tried in order ([`host_upstreams`]). Empty (or an internal
    /// network) means SERVFAIL for them.
    pub upstreams: Vec<SocketAddr>,
    /// Also serve DNS over TCP on the same address.
    pub tcp: bool,
}

impl DnsServerConfig {
    /// The production setup for a network: `<gateway>:53`, its subnet allowed, the host's
    /// resolvers as upstreams unless the network is internal, TCP on.
    pub fn for_network(network: &crate::NetworkConfig) -> Self {
        DnsServerConfig {
            network: network.name.clone(),
            listen: SocketAddr::new(IpAddr::V4(network.gateway), 53),
            allowed: vec![network.subnet],
            upstreams: if network.internal {
                Vec::new()
            } else {
                host_upstreams()
            },
            tcp: true,
        }
    }
}

struct Shared {
    cfg: DnsServerConfig,
    registry: DnsRegistry,
    stop: AtomicBool,
    inflight: AtomicUsize,
}

impl Shared {
    fn allowed(&self, peer: &SocketAddr) -> bool {
        if self.cfg.allowed.is_empty() {
            return true;
        }
        match peer.ip() {
            IpAddr::V4(ip) => self.cfg.allowed.iter().any(|s| s.contains(ip)),
            IpAddr::V6(ip) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| self.cfg.allowed.iter().any(|s| s.contains(ip))),
        }
    }

    fn upstreams(&self) -> impl Iterator<Item = &SocketAddr> {
        let own = self.cfg.listen;
        self.cfg.upstreams.iter().filter(move |u| **u != own)
    }

    /// Handle one query: `Some(reply bytes)` now, or `None` when it must be forwarded.
    fn handle(&self, query: &[u8], max_len: usize) -> Option<Vec<u8>> {
        let Ok(req) = Message::from_vec(query) else {
            // Not DNS, or too broken to answer with the same id: drop it.
            return Some(Vec::new());
        };
        let forward = self.upstreams().next().is_some();
        match resolve(&self.registry, &self.cfg.network, forward, &req) {
            Decision::Reply(m) => {
                let bytes = m.to_vec().unwrap_or_default();
                if bytes.len() > max_len {
                    return Some(m.truncate().to_vec().unwrap_or_default());
                }
                Some(bytes)
            }
            Decision::Forward => None,
        }
    }

    fn servfail(query: &[u8]) -> Vec<u8> {
        Message::from_vec(query)
            .ok()
            .and_then(|req| reply_to(&req, ResponseCode::ServFail).to_vec().ok())
            .unwrap_or_default()
    }

    fn forward_udp(&self, query: &[u8]) -> Vec<u8> {
        let id = query.get(..2).map(|b| [b[0], b[1]]);
        for up in self.upstreams() {
            let bind: SocketAddr = match up {
                SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let Ok(sock) = UdpSocket::bind(bind) else {
                continue;
            };
            if sock.set_read_timeout(Some(UPSTREAM_TIMEOUT)).is_err()
                || sock.connect(up).is_err()
                || sock.send(query).is_err()
            {
                continue;
            }
            let mut buf = vec![0u8; 65535];
            // A connected socket only hears from the upstream; skip replies to other ids.
            while let Ok(n) = sock.recv(&mut buf) {
                if n >= 2 && Some([buf[0], buf[1]]) == id {
                    buf.truncate(n);
                    return buf;
                }
            }
        }
        Self::servfail(query)
    }

    fn forward_tcp(&self, query: &[u8]) -> Vec<u8> {
        for up in self.upstreams() {
            let Ok(mut s) = TcpStream::connect_timeout(up, UPSTREAM_TIMEOUT) else {
                continue;
            };
            let _ = s.set_read_timeout(Some(UPSTREAM_TIMEOUT));
            let _ = s.set_write_timeout(Some(UPSTREAM_TIMEOUT));
            if let Ok(reply) = write_frame(&mut s, query).and_then(|()| read_frame(&mut s)) {
                return reply;
            }
        }
        Self::servfail(query)
    }
}

fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_frame(s: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "dns message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)
}

/// One network's running DNS server: a UDP thread, and a TCP thread when asked. Stops on
/// [`DnsServer::stop`] or when dropped.
pub struct DnsServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("network", &self.shared.cfg.network)
            .field("addr", &self.addr)
            .finish()
    }
}

impl DnsServer {
    /// Bind the sockets and start the threads. Fails (naming the network and address) when
    /// the address cannot be bound: before the bridge holding the gateway exists (the bridge
    /// plugin makes it, with the gateway address, on the network's first attach, and it stays
    /// until [`crate::Cni::remove_network`]), or when another server on the host holds port 53
    /// on all addresses.
    pub fn start(cfg: DnsServerConfig, registry: DnsRegistry) -> Result<Self> {
        let err = |source: io::Error| NetError::Dns {
            network: cfg.network.clone(),
            addr: cfg.listen.to_string(),
            source,
        };
        let udp = UdpSocket::bind(cfg.listen).map_err(err)?;
        udp.set_read_timeout(Some(POLL)).map_err(err)?;
        let addr = udp.local_addr().map_err(err)?;
        let tcp = if cfg.tcp {
            // Same port as UDP, also when the port was picked by the kernel.
            let l = TcpListener::bind(addr).map_err(err)?;
            l.set_nonblocking(true).map_err(err)?;
            Some(l)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            cfg,
            registry,
            stop: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
        });
        let mut threads = Vec::new();
        let spawn_err = |source: io::Error| NetError::Dns {
            network: shared.cfg.network.clone(),
            addr: addr.to_string(),
            source,
        };
        let s = Arc::clone(&shared);
        threads.push(
            std::thread::Builder::new()
                .name(format!("dns-udp-{}", shared.cfg.network))
                .spawn(move || udp_loop(s, udp))
                .map_err(spawn_err)?,
        );
        if let Some(l) = tcp {
            let s = Arc::clone(&shared);
            let t = std::thread::Builder::new()
                .name(format!("dns-tcp-{}", shared.cfg.network))
                .spawn(move || tcp_loop(s, l));
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let server = DnsServer {
                        shared: Arc::clone(&shared),
                        addr,
                        threads,
                    };
                    drop(server);
                    return Err(spawn_err(e));
                }
            }
        }
        Ok(DnsServer {
            shared,
            addr,
            threads,
        })
    }

    /// The address bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The network served.
    pub fn network(&self) -> &str {
        &self.shared.cfg.network
    }

    /// Stop the threads and close the sockets (within about 100 ms).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn udp_loop(shared: Arc<Shared>, sock: UdpSocket) {
    let mut buf = vec![0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // ICMP errors from earlier replies (ECONNREFUSED) and the like: keep serving.
            Err(_) => continue,
        };
        if !shared.allowed(&peer) {
            continue;
        }
        let query = buf[..n].to_vec();
        match shared.handle(&query, 512.max(edns_payload(&query))) {
            Some(reply) => {
                if !reply.is_empty() {
                    let _ = sock.send_to(&reply, peer);
                }
            }
            None => {
                let Ok(out) = sock.try_clone() else { continue };
                if shared.inflight.fetch_add(1, Ordering::SeqCst) >= MAX_INFLIGHT {
                    shared.inflight.fetch_sub(1, Ordering::SeqCst);
                    let _ = out.send_to(&Shared::servfail(&query), peer);
                    continue;
                }
                let s = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("dns-forward".into())
                    .spawn(move || {
                        let reply = s.forward_udp(&query);
                        let _ = out.send_to(&reply, peer);
                        s.inflight.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    shared.inflight.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
}

fn edns_payload(query: &[u8]) -> usize {
    Message::from_vec(query)
        .ok()
        .and_then(|m| m.edns.map(|e| usize::from(e.max_payload())))
        .unwrap_or(512)
}

fn tcp_loop(shared: Arc<Shared>, listener: TcpListener) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if !shared.allowed(&peer) {
                    continue;
                }
                if shared.inflight.fetch_add(1, Ordering::SeqCst) >= MAX_INFLIGHT {
                    shared.inflight.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let s = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("dns-tcp-conn".into())
                    .spawn(move || {
                        tcp_conn(&s, stream);
                        s.inflight.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    shared.inflight.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL / 2),
            Err(_) => std::thread::sleep(POLL / 2),
        }
    }
}

fn tcp_conn(shared: &Shared, mut stream: TcpStream) {
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .is_err()
    {
        return;
    }
    // Several queries may come over one connection (RFC 7766).
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok(query) = read_frame(&mut stream) else {
            return;
        };
        let reply = match shared.handle(&query, usize::from(u16::MAX)) {
            Some(r) => r,
            None => shared.forward_tcp(&query),
        };
        if reply.is_empty() || write_frame(&mut stream, &reply).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m
    }

    fn answers(d: Decision) -> (ResponseCode, Vec<String>) {
        match d {
            Decision::Reply(m) => (
                m.metadata.response_code,
                m.answers
                    .iter()
                    .map(|r| match &r.data {
                        RData::A(a) => a.0.to_string(),
                        RData::PTR(p) => p.0.to_ascii(),
                        other => format!("{other:?}"),
                    })
                    .collect(),
            ),
            Decision::Forward => (ResponseCode::Refused, vec!["forward".into()]),
        }
    }

    #[test]
    fn registry_case_insensitive_aliases_and_networks() {
        let r = DnsRegistry::new();
        r.add(
            "app",
            "c1",
            &["Web", "frontend"],
            Ipv4Addr::new(10, 1, 0, 2),
        );
        r.add("app", "c2", &["db", "frontend"], Ipv4Addr::new(10, 1, 0, 3));
        r.add("other", "c3", &["web"], Ipv4Addr::new(10, 2, 0, 2));
        assert_eq!(r.lookup("app", "WEB."), vec![Ipv4Addr::new(10, 1, 0, 2)]);
        assert_eq!(r.lookup("app", "web.app"), vec![Ipv4Addr::new(10, 1, 0, 2)]);
        assert_eq!(r.lookup("app", "frontend").len(), 2);
        // Several addresses come in turns: each one first in its turn.
        let firsts: std::collections::BTreeSet<Ipv4Addr> =
            (0..2).map(|_| r.lookup("app", "frontend")[0]).collect();
        assert_eq!(firsts.len(), 2);
        assert_eq!(r.lookup("other", "web"), vec![Ipv4Addr::new(10, 2, 0, 2)]);
        assert!(r.lookup("other", "db").is_empty());
        // Re-adding replaces; removing withdraws.
        r.add("app", "c1", &["web"], Ipv4Addr::new(10, 1, 0, 9));
        assert_eq!(r.lookup("app", "web"), vec![Ipv4Addr::new(10, 1, 0, 9)]);
        assert_eq!(
            r.lookup("app", "frontend"),
            vec![Ipv4Addr::new(10, 1, 0, 3)]
        );
        r.remove("app", "c1");
        assert!(r.lookup("app", "web").is_empty());
        assert_eq!(
            r.reverse("app", Ipv4Addr::new(10, 1, 0, 3)).as_deref(),
            Some("db")
        );
        r.remove_network("app");
        assert!(r.lookup("app", "db").is_empty());
    }

    #[test]
    fn resolver_answers_forwards_and_refuses() {
        let r = DnsRegistry::new();
        r.add("app", "c1", &["web"], Ipv4Addr::new(10, 1, 0, 2));
        let (code, a) = answers(resolve(&r, "app", true, &query("WeB.", RecordType::A)));
        assert_eq!(
            (code, a),
            (ResponseCode::NoError, vec!["10.1.0.2".to_string()])
        );
        // Known name, other type: NOERROR without data.
        let (code, a) = answers(resolve(&r, "app", true, &query("web.", RecordType::AAAA)));
        assert_eq!((code, a.len()), (ResponseCode::NoError, 0));
        // Unknown: forwarded, or SERVFAIL without upstreams.
        let (_, a) = answers(resolve(
            &r,
            "app",
            true,
            &query("example.com.", RecordType::A),
        ));
        assert_eq!(a, ["forward"]);
        let (code, _) = answers(resolve(
            &r,
            "app",
            false,
            &query("example.com.", RecordType::A),
        ));
        assert_eq!(code, ResponseCode::ServFail);
        // Names on another network are not visible.
        let (_, a) = answers(resolve(&r, "other", true, &query("web.", RecordType::A)));
        assert_eq!(a, ["forward"]);
        // Reverse lookups of container addresses.
        let (code, a) = answers(resolve(
            &r,
            "app",
            true,
            &query("2.0.1.10.in-addr.arpa.", RecordType::PTR),
        ));
        assert_eq!((code, a), (ResponseCode::NoError, vec!["web.".to_string()]));
        // Replies keep the id, the question and RD.
        let Decision::Reply(m) = resolve(&r, "app", true, &query("web.", RecordType::A)) else {
            panic!("not a reply")
        };
        assert_eq!(m.metadata.id, 4242);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        // A response is not a query.
        let mut resp = query("web.", RecordType::A);
        resp.metadata.message_type = MessageType::Response;
        let (code, _) = answers(resolve(&r, "app", true, &resp));
        assert_eq!(code, ResponseCode::FormErr);
    }

    #[test]
    fn resolv_conf() {
        let rc = parse_resolv_conf(
            "# c\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver ::1\nsearch a.example b.example\noptions ndots:2 edns0 ; x\n",
        );
        assert_eq!(
            rc.nameservers,
            vec![
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(rc.search, ["a.example", "b.example"]);
        assert_eq!(
            container_resolv_conf(Ipv4Addr::new(10, 1, 0, 1), &rc),
            "nameserver 10.1.0.1\nsearch a.example b.example\noptions edns0 ndots:0\n"
        );
    }
}
