//! Real-network tests of berth-net (root): CNI attach/detach into `ip netns` namespaces,
//! pings, published ports, internal networks, cleanup of veths, rules and leases, and the
//! embedded DNS answering a real resolver. Every test cleans up through Drop guards.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_net::{
    check_conflicts, Attachment, Cni, DnsRegistry, DnsServer, DnsServerConfig, NetnsHandle,
    NetworkConfig, PortAllocator, PortMapping, PortRequest, Protocol, Subnet,
};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

// ---------------------------------------------------------------- helpers

/// Run a command, returning (success, stdout + stderr).
fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    match Command::new(cmd).args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("{cmd}: {e}")),
    }
}

fn iptables_save() -> String {
    let mut all = run("iptables-save", &[]).1;
    all.push_str(&run("iptables-save", &["-t", "nat"]).1);
    all
}

/// The fixed name of test `n`'s network, bridge and namespace (fixed, so a run cut short is
/// cleaned up by the next one).
fn tag(n: u32) -> String {
    format!("bntest{n}")
}

/// Delete the iptables rules of `table` whose text contains `needle`, then the chains they
/// lived in when those are custom chains left empty. Test hygiene only: it removes what the
/// plugins (1.1.1) are known to leave (see the callers).
fn remove_rules_matching(table: &str, needle: &str) {
    let dump = run("iptables-save", &["-t", table]).1;
    let mut chains = Vec::new();
    for line in dump
        .lines()
        .filter(|l| l.starts_with("-A ") && l.contains(needle))
    {
        let chain = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let del = format!("iptables -t {table} -D {}", &line[3..]);
        let _ = run("sh", &["-c", &del]);
        if chain.starts_with("CNI-") && !chain.starts_with("CNI-ISOLATION") {
            chains.push(chain);
        }
    }
    for c in chains {
        let _ = run("iptables", &["-t", table, "-F", &c]);
        let _ = run("iptables", &["-t", table, "-X", &c]);
    }
}

/// A named network namespace made with `ip netns add`, deleted (with any process we started
/// in it) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: String) -> Self {
        let _ = run("ip", &["netns", "del", &name]);
        let (ok, out) = run("ip", &["netns", "add", &name]);
        assert!(ok, "ip netns add {name}: {out}");
        Netns { name }
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
    fn exec(&self, args: &[&str]) -> (bool, String) {
        let mut a = vec!["netns", "exec", &self.name];
        a.extend_from_slice(args);
        run("ip", &a)
    }
    fn spawn(&self, args: &[&str]) -> Spawned {
        let mut a = vec!["netns", "exec", &self.name];
        a.extend_from_slice(args);
        Spawned(
            Command::new("ip")
                .args(&a)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn ip netns exec"),
        )
    }
    fn kill_processes(&self) {
        let (_, pids) = run("ip", &["netns", "pids", &self.name]);
        for pid in pids.split_whitespace() {
            let _ = run("kill", &["-9", pid]);
        }
    }
}

/// A process started in a namespace, killed and reaped on drop.
struct Spawned(std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_processes();
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// A test network with its own state dir and bridge; on drop every attachment made through
/// it is detached and the network removed.
struct TestNet {
    cni: Cni,
    net: NetworkConfig,
    attached: Vec<(PathBuf, String)>,
    _state: tempfile::TempDir,
}

/// Test networks alive in this process, and what the host had before the first one: the
/// plugins' shared chains (CNI-FORWARD, CNI-HOSTPORT-*, ...) and `ip_forward`. When the last
/// network goes, what the tests brought is taken away again, under the lock, so a network
/// being made waits for that.
struct Host {
    live: usize,
    before: Option<(bool, String)>,
}

static HOST: std::sync::Mutex<Host> = std::sync::Mutex::new(Host {
    live: 0,
    before: None,
});

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

fn cni_chains_present() -> bool {
    ["filter", "nat"]
        .iter()
        .any(|t| run("iptables-save", &["-t", t]).1.contains(":CNI-"))
}

/// Takes the plugins' shared chains away with the library's own prune, which must find them
/// idle once every test network has gone; whatever is left after it (a failed test's
/// rules) is removed by hand so that the machine is clean either way.
fn remove_cni_chains() {
    let pruned = berth_net::prune_idle_chains();
    if cni_chains_present() {
        eprintln!("prune_idle_chains left CNI chains behind ({pruned:?}): removing them by hand");
    } else {
        return;
    }
    for table in ["filter", "nat"] {
        let dump = run("iptables-save", &["-t", table]).1;
        for line in dump.lines().filter(|l| l.starts_with("-A ")) {
            let chain = line.split_whitespace().nth(1).unwrap_or_default();
            if !chain.starts_with("CNI-") && line.contains("-j CNI-") {
                let _ = run(
                    "sh",
                    &["-c", &format!("iptables -t {table} -D {}", &line[3..])],
                );
            }
        }
        let chains: Vec<String> = dump
            .lines()
            .filter_map(|l| l.strip_prefix(":CNI-"))
            .filter_map(|l| l.split_whitespace().next())
            .map(|c| format!("CNI-{c}"))
            .collect();
        for c in &chains {
            let _ = run("iptables", &["-t", table, "-F", c]);
        }
        for c in &chains {
            let _ = run("iptables", &["-t", table, "-X", c]);
        }
    }
}

impl TestNet {
    fn new(n: u32, internal: bool) -> Self {
        {
            let mut h = HOST.lock().unwrap_or_else(|p| p.into_inner());
            if h.live == 0 {
                h.before = Some((
                    cni_chains_present(),
                    std::fs::read_to_string(IP_FORWARD).unwrap_or_default(),
                ));
            }
            h.live += 1;
        }
        let state = tempfile::tempdir().expect("tempdir");
        let subnet: Subnet = format!("10.231.{n}.0/24").parse().expect("subnet");
        let id = format!("{:08x}{:056x}", std::process::id(), n);
        let mut net = NetworkConfig::new(&tag(n), &id, subnet, None, internal).expect("config");
        net.bridge = tag(n);
        let _ = berth_net::delete_link(&net.bridge);
        TestNet {
            cni: Cni::new(state.path()),
            net,
            attached: Vec::new(),
            _state: state,
        }
    }

    fn attach(
        &mut self,
        netns: &Path,
        cid: &str,
        ip: Option<Ipv4Addr>,
        ports: &[PortMapping],
    ) -> Attachment {
        self.attached.push((netns.to_path_buf(), cid.to_string()));
        self.cni
            .attach(netns, cid, "eth0", &self.net, ip, ports)
            .unwrap_or_else(|e| panic!("attach {cid}: {e}"))
    }

    fn detach(&mut self, netns: Option<&Path>, cid: &str) {
        self.cni
            .detach(netns, cid, "eth0", &self.net)
            .unwrap_or_else(|e| panic!("detach {cid}: {e}"));
        self.attached.retain(|(_, c)| c != cid);
    }

    /// Lease files of host-local (named by IP) left in the network's IPAM dir.
    fn leases(&self) -> Vec<String> {
        std::fs::read_dir(self.cni.ipam_dir(&self.net.name))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<Ipv4Addr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn veths(&self) -> String {
        run("ip", &["-o", "link", "show", "master", &self.net.bridge]).1
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for (ns, cid) in std::mem::take(&mut self.attached) {
            let _ = self.cni.detach(Some(&ns), &cid, "eth0", &self.net);
        }
        let _ = self.cni.remove_network(&self.net);
        let _ = berth_net::delete_link(&self.net.bridge);
        // The firewall plugin's ingressPolicy rules name the bridge and are never removed by
        // it (it cannot know the bridge's last container has gone); inert once the bridge is.
        remove_rules_matching("filter", &format!("-i {} ", self.net.bridge));
        remove_rules_matching("filter", &format!("-o {} ", self.net.bridge));
        let mut h = HOST.lock().unwrap_or_else(|p| p.into_inner());
        h.live -= 1;
        if h.live == 0 {
            if let Some((had_chains, forward)) = h.before.take() {
                if !had_chains {
                    remove_cni_chains();
                }
                if !forward.is_empty() {
                    let _ = std::fs::write(IP_FORWARD, forward);
                }
            }
        }
    }
}

fn wait_connect(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(3)))?;
                let mut buf = String::new();
                s.read_to_string(&mut buf)?;
                Ok(buf)
            });
        match attempt {
            Ok(s) if !s.is_empty() => return s,
            _ if Instant::now() > deadline => panic!("no answer on {addr}: {attempt:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn dns_query(name: &str, t: RecordType) -> Message {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), t));
    m
}

fn udp_ask(server: SocketAddr, name: &str) -> Option<Message> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.send_to(&dns_query(name, RecordType::A).to_vec().ok()?, server)
        .ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

fn tcp_ask(server: SocketAddr, name: &str) -> Message {
    let mut s = TcpStream::connect(server).expect("tcp connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let q = dns_query(name, RecordType::A).to_vec().expect("encode");
    let mut out = (q.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&q);
    s.write_all(&out).expect("write");
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("read len");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("read msg");
    Message::from_vec(&buf).expect("decode")
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn attach_ping_publish_dns_detach() {
    let ns = Netns::new(tag(1));
    let handle = NetnsHandle::open(&ns.path()).expect("open netns");
    let mut tn = TestNet::new(1, false);
    let cid = format!("{}c1", tag(1));
    tn.cni
        .loopback_up(&handle.path(), &cid)
        .expect("loopback up");
    let (ok, lo) = ns.exec(&["ip", "-4", "addr", "show", "lo"]);
    assert!(ok && lo.contains("127.0.0.1/8"), "{lo}");

    let mut ports = PortAllocator::new();
    let published = ports
        .reserve(&cid, &[PortRequest::new(0, 8080, Protocol::Tcp)])
        .expect("reserve");
    let host_port = published[0].host_port;
    let att = tn.attach(&handle.path(), &cid, None, &published);
    assert!(tn.net.subnet.contains(att.ip), "{att:?}");
    assert_eq!(att.prefix, 24);
    assert_eq!(att.gateway, Some(tn.net.gateway));
    assert_eq!(att.mac.len(), 17, "{att:?}");
    assert_eq!(
        tn.cni
            .attachment(&tn.net.name, &cid, "eth0")
            .expect("cache"),
        Some(att.clone())
    );

    // The interface and address inside, the default route through the gateway.
    let (ok, addr) = ns.exec(&["ip", "-4", "addr", "show", "eth0"]);
    assert!(ok && addr.contains(&format!("{}/24", att.ip)), "{addr}");
    let (_, routes) = ns.exec(&["ip", "route"]);
    assert!(
        routes.contains(&format!("default via {}", tn.net.gateway)),
        "{routes}"
    );
    let gw = tn.net.gateway.to_string();
    let (ok, out) = ns.exec(&["busybox", "ping", "-c", "1", "-W", "3", &gw]);
    assert!(ok, "ping {gw}: {out}");
    tn.cni
        .check(&handle.path(), &cid, "eth0", &tn.net)
        .expect("check");

    // A listener in the namespace answers on the published host port.
    let _listener = ns.spawn(&[
        "busybox",
        "sh",
        "-c",
        "while true; do echo hello-from-ns | busybox nc -l -p 8080; done",
    ]);
    let got = wait_connect(SocketAddr::from((Ipv4Addr::LOCALHOST, host_port)));
    assert_eq!(got.trim(), "hello-from-ns");
    let got = wait_connect(SocketAddr::from((tn.net.gateway, host_port)));
    assert_eq!(got.trim(), "hello-from-ns");
    let rules = iptables_save();
    assert!(rules.contains(&cid), "no rule names {cid}:\n{rules}");

    // The embedded DNS on the gateway answers a real resolver in the namespace.
    let registry = DnsRegistry::new();
    registry.add(&tn.net.name, &cid, &["web", "Frontend"], att.ip);
    let mut cfg = DnsServerConfig::for_network(&tn.net);
    cfg.upstreams.clear();
    let dns = DnsServer::start(cfg, registry.clone()).expect("dns start");
    let (ok, out) = ns.exec(&["busybox", "nslookup", "FRONTEND", &gw]);
    assert!(ok && out.contains(&att.ip.to_string()), "nslookup: {out}");
    // Queries from outside the network's subnet are not answered.
    assert!(udp_ask(dns.local_addr(), "web").is_none());
    dns.stop();

    // Detach: no veth, no rule, no lease left; the bridge goes with the network.
    assert_eq!(tn.leases(), vec![att.ip.to_string()]);
    tn.detach(Some(&handle.path()), &cid);
    assert_eq!(ports.release(&cid), published);
    assert!(tn.veths().trim().is_empty(), "veth left: {}", tn.veths());
    let (present, _) = ns.exec(&["ip", "link", "show", "eth0"]);
    assert!(!present, "eth0 left in the namespace");
    let rules = iptables_save();
    assert!(!rules.contains(&cid), "rules left for {cid}:\n{rules}");
    assert!(tn.leases().is_empty(), "leases left: {:?}", tn.leases());
    assert!(tn.cni.attachments(&tn.net.name).expect("list").is_empty());
    // Detaching twice is fine.
    tn.detach(Some(&handle.path()), &cid);
    tn.cni.remove_network(&tn.net).expect("remove network");
    assert!(!Path::new("/sys/class/net").join(&tn.net.bridge).exists());
}

#[test]
fn two_containers_static_ip_and_overlap() {
    let a = Netns::new(tag(2));
    let b = Netns::new(format!("{}b", tag(2)));
    let mut tn = TestNet::new(2, false);
    let want = Ipv4Addr::new(10, 231, 2, 50);
    let att_a = tn.attach(&a.path(), &format!("{}a", tag(2)), Some(want), &[]);
    assert_eq!(att_a.ip, want);
    let att_b = tn.attach(&b.path(), &format!("{}b", tag(2)), None, &[]);
    assert_ne!(att_b.ip, want);
    let (ok, out) = b.exec(&["busybox", "ping", "-c", "1", "-W", "3", &want.to_string()]);
    assert!(ok, "b cannot reach a: {out}");

    // The same static address again is refused by host-local, and nothing is left behind.
    let c = Netns::new(format!("{}c", tag(2)));
    let e = tn
        .cni
        .attach(
            &c.path(),
            &format!("{}c", tag(2)),
            "eth0",
            &tn.net,
            Some(want),
            &[],
        )
        .expect_err("duplicate ip");
    assert!(e.to_string().contains("cni plugin bridge ADD"), "{e}");
    assert_eq!(tn.leases().len(), 2, "{:?}", tn.leases());
    let (present, _) = c.exec(&["ip", "link", "show", "eth0"]);
    assert!(!present, "eth0 left after a failed attach");

    // A network overlapping this one is refused, naming both.
    let mut other = NetworkConfig::new(
        "other",
        "feedfacefeedface",
        "10.231.0.0/16".parse().expect("subnet"),
        None,
        false,
    )
    .expect("config");
    other.bridge = "br-other-t".into();
    let e = check_conflicts(&other, [&tn.net]).expect_err("overlap");
    assert_eq!(
        e.to_string(),
        format!(
            "network \"other\" subnet 10.231.0.0/16 overlaps network \"{}\" subnet 10.231.2.0/24",
            tn.net.name
        )
    );
    // remove_network refuses while containers are attached.
    assert!(tn.cni.remove_network(&tn.net).is_err());
}

#[test]
fn internal_network_has_no_way_out() {
    let ns = Netns::new(tag(3));
    let mut tn = TestNet::new(3, true);
    let cid = format!("{}c", tag(3));
    let e = tn
        .cni
        .attach(
            &ns.path(),
            &cid,
            "eth0",
            &tn.net,
            None,
            &[PortMapping {
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: 18080,
                container_port: 80,
                protocol: Protocol::Tcp,
            }],
        )
        .expect_err("ports on internal");
    assert!(e.to_string().contains("internal"), "{e}");
    let att = tn.attach(&ns.path(), &cid, None, &[]);
    let (_, routes) = ns.exec(&["ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    let gw = tn.net.gateway.to_string();
    let (ok, out) = ns.exec(&["busybox", "ping", "-c", "1", "-W", "3", &gw]);
    assert!(ok, "ping {gw}: {out}");
    let (ok, _) = ns.exec(&["busybox", "ping", "-c", "1", "-W", "1", "192.0.2.1"]);
    assert!(!ok, "an internal network reached beyond its subnet");
    let nat = run("iptables-save", &["-t", "nat"]).1;
    assert!(
        !nat.contains(&cid),
        "nat rules for an internal network:\n{nat}"
    );
    assert!(tn.net.subnet.contains(att.ip));
    tn.detach(Some(&ns.path()), &cid);
    assert!(tn.leases().is_empty());
}

#[test]
fn detach_after_the_namespace_is_gone() {
    let mut tn = TestNet::new(4, false);
    // Held handle: the namespace outlives `ip netns del`, DEL undoes everything.
    let cid = format!("{}h", tag(4));
    let ns = Netns::new(tag(4));
    let handle = NetnsHandle::open(&ns.path()).expect("open netns");
    tn.attach(&handle.path(), &cid, None, &[]);
    drop(ns);
    tn.detach(Some(&handle.path()), &cid);
    drop(handle);
    let rules = iptables_save();
    assert!(!rules.contains(&cid), "rules left for {cid}:\n{rules}");
    assert!(tn.leases().is_empty(), "{:?}", tn.leases());

    // No handle: the path is gone; DEL still succeeds and frees the lease and the veth.
    let cid2 = format!("{}g", tag(4));
    let ns2 = Netns::new(format!("{}g", tag(4)));
    let path = ns2.path();
    tn.attach(&path, &cid2, None, &[]);
    drop(ns2);
    tn.detach(Some(&path), &cid2);
    assert!(tn.leases().is_empty(), "{:?}", tn.leases());
    assert!(tn.veths().trim().is_empty(), "veth left: {}", tn.veths());
    assert!(tn.cni.attachments(&tn.net.name).expect("list").is_empty());
    // What bridge 1.1.1 cannot undo without the namespace: its masquerade chain for the
    // container, which is why the engine holds a NetnsHandle. Only that may be left.
    let left: Vec<String> = iptables_save()
        .lines()
        .filter(|l| l.contains(&cid2))
        .map(str::to_string)
        .collect();
    assert!(
        left.iter()
            .all(|l| l.contains("MASQUERADE") || l.contains("-j CNI-") || l.contains("ACCEPT")),
        "{left:?}"
    );
    remove_rules_matching("nat", &format!("id: \\\"{cid2}\\\""));
    assert!(!iptables_save().contains(&cid2));
}

#[test]
fn second_container_on_a_published_port_is_refused() {
    let mut ports = PortAllocator::new();
    let first = ports
        .reserve("c1", &[PortRequest::new(0, 80, Protocol::Tcp)])
        .expect("ephemeral");
    let port = first[0].host_port;
    let e = ports
        .reserve("c2", &[PortRequest::new(port, 80, Protocol::Tcp)])
        .expect_err("conflict");
    assert_eq!(
        e.to_string(),
        format!("Bind for 0.0.0.0:{port} failed: port is already allocated")
    );
    // It survives a restart (the JSON state file).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ports.json");
    ports.save(&file).expect("save");
    let mut again = PortAllocator::load(&file).expect("load");
    assert!(again
        .reserve("c2", &[PortRequest::new(port, 80, Protocol::Tcp)])
        .is_err());
    again.release("c1");
    again
        .reserve("c2", &[PortRequest::new(port, 80, Protocol::Tcp)])
        .expect("free again");
}

#[test]
fn dns_server_answers_forwards_and_filters() {
    // An "upstream" that knows one name, standing in for the host's resolver.
    let up_registry = DnsRegistry::new();
    up_registry.add("up", "x", &["example.test"], Ipv4Addr::new(192, 0, 2, 77));
    let upstream = DnsServer::start(
        DnsServerConfig {
            network: "up".into(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            allowed: vec![],
            upstreams: vec![],
            tcp: true,
        },
        up_registry,
    )
    .expect("upstream");

    let registry = DnsRegistry::new();
    let server = DnsServer::start(
        DnsServerConfig {
            network: "app".into(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            allowed: vec!["127.0.0.0/8".parse().expect("subnet")],
            upstreams: vec![upstream.local_addr()],
            tcp: true,
        },
        registry.clone(),
    )
    .expect("server");
    let addr = server.local_addr();
    registry.add("app", "c1", &["db"], Ipv4Addr::new(10, 9, 0, 5));

    let m = udp_ask(addr, "DB.").expect("udp answer");
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), vec![Ipv4Addr::new(10, 9, 0, 5)]);
    assert_eq!(
        a_records(&tcp_ask(addr, "db.")),
        vec![Ipv4Addr::new(10, 9, 0, 5)]
    );

    // Other names go to the upstream, over UDP and TCP.
    let m = udp_ask(addr, "example.test.").expect("forwarded");
    assert_eq!(a_records(&m), vec![Ipv4Addr::new(192, 0, 2, 77)]);
    assert_eq!(
        a_records(&tcp_ask(addr, "example.test.")),
        vec![Ipv4Addr::new(192, 0, 2, 77)]
    );

    // A removed container is gone at once; the upstream does not know it: SERVFAIL.
    registry.remove("app", "c1");
    let m = udp_ask(addr, "db.").expect("answer");
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(a_records(&m).is_empty());

    // A server that only allows another subnet does not answer 127.0.0.1.
    let filtered = DnsServer::start(
        DnsServerConfig {
            network: "app".into(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            allowed: vec!["10.0.0.0/8".parse().expect("subnet")],
            upstreams: vec![],
            tcp: false,
        },
        registry,
    )
    .expect("filtered");
    assert!(udp_ask(filtered.local_addr(), "db.").is_none());

    // Stopping frees the port.
    server.stop();
    assert!(udp_ask(addr, "db.").is_none());
    UdpSocket::bind(addr).expect("port free after stop");
}

#[test]
fn two_networks_cannot_reach_each_other() {
    let a = Netns::new(tag(5));
    let b = Netns::new(tag(6));
    let mut na = TestNet::new(5, false);
    let mut nb = TestNet::new(6, false);
    let att_a = na.attach(&a.path(), &format!("{}c", tag(5)), None, &[]);
    nb.attach(&b.path(), &format!("{}c", tag(6)), None, &[]);
    let gw = nb.net.gateway.to_string();
    let (ok, out) = b.exec(&["busybox", "ping", "-c", "1", "-W", "3", &gw]);
    assert!(ok, "ping own gateway {gw}: {out}");
    let (ok, _) = b.exec(&[
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        &att_a.ip.to_string(),
    ]);
    assert!(
        !ok,
        "network {} reached a container of {}",
        nb.net.name, na.net.name
    );
}
