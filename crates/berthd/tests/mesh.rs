//! The routing mesh and service discovery on three nodes of this machine (network
//! namespaces on the test bridge `bcl78`, a berthd in each, the real docker CLI): a published
//! port answers on every node and spreads over replicas on all of them, only healthy running
//! replicas get connections, killing or scaling down a replica drops no more than what was in
//! flight, services on an overlay network reach each other by name across nodes, bad input
//! is refused, and leaving the swarm leaves nothing behind.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::swarm::{running_by_node, sh, wait_running, Net};
use support::{poll, skip_reason, Daemon};

const TAG: u8 = 78;

/// A static site whose page is the container's hostname (its short id).
const SITE: &str = "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www";

/// One HTTP/1.0 GET of `/` on `addr` (a new connection each time): the body, or why not.
fn fetch(addr: &str) -> Result<String, String> {
    let sa: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let (head, body) = buf
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr}: no HTTP answer: {buf:?}"))?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(format!("{addr}: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.trim().to_string())
}

/// `curl` run inside a node's namespace: the body, or None.
fn curl_in(ns: &str, url: &str) -> Option<String> {
    let o = sh(&["ip", "netns", "exec", ns, "curl", "-s", "-m", "5", url]);
    o.ok().then(|| o.out().to_string())
}

/// Fetches from `get` until every one of `want` has answered (at most 300 tries in 30 s);
/// every answer must be one of them.
fn answers_from_all(what: &str, want: &BTreeSet<String>, mut get: impl FnMut() -> Option<String>) {
    let mut seen = BTreeMap::<String, usize>::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for _ in 0..300 {
        if std::time::Instant::now() > deadline {
            break;
        }
        if let Some(b) = get() {
            assert!(
                want.contains(&b),
                "{what}: answer {b:?} is none of {want:?}"
            );
            *seen.entry(b).or_default() += 1;
        }
        if seen.len() == want.len() {
            eprintln!("{what}: {seen:?}");
            return;
        }
    }
    panic!("{what}: only {seen:?} of {want:?} answered");
}

/// Clients fetching from `addr` in a loop on `n` threads, each one connection at a time.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stats: Arc<Mutex<Stats>>,
}

#[derive(Default, Debug)]
struct Stats {
    ok: usize,
    failed: Vec<String>,
    /// Answers in the order they came.
    bodies: Vec<String>,
}

impl Load {
    fn start(addr: &str, n: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let threads = (0..n)
            .map(|_| {
                let (stop, stats, addr) = (stop.clone(), stats.clone(), addr.to_string());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let r = fetch(&addr);
                        let mut s = stats.lock().unwrap();
                        match r {
                            Ok(b) => {
                                s.ok += 1;
                                s.bodies.push(b);
                            }
                            Err(e) => s.failed.push(e),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads,
            stats,
        }
    }

    fn ok(&self) -> usize {
        self.stats.lock().unwrap().ok
    }

    fn finish(self) -> Stats {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.stats.lock().unwrap())
    }
}

/// Lets `load` make at least `more` more requests.
fn wait_requests(load: &Load, more: usize) {
    let want = load.ok() + more;
    poll(Duration::from_secs(60), || {
        (load.ok() >= want).then_some(())
    })
    .unwrap_or_else(|| panic!("the load made fewer than {more} requests in 60 s"));
}

/// The hostnames (short container ids) of `service`'s running task containers, by node index.
fn replicas(nodes: &[Daemon], service: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (i, d) in nodes.iter().enumerate() {
        for id in d
            .docker_ok(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.swarm.service.name={service}"),
            ])
            .lines()
        {
            out.insert(id.trim().to_string(), i);
        }
    }
    out
}

/// (task id, container name, container id, address on `network`) of `service`'s running
/// tasks on every node.
fn task_endpoints(
    nodes: &[Daemon],
    service: &str,
    network: &str,
) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for d in nodes {
        let ps = d.docker_ok(&[
            "ps",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
            "--format",
            "{{.ID}} {{.Names}} {{.Label \"com.docker.swarm.task.id\"}}",
        ]);
        for l in ps.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            let ip = d.inspect(
                w[0],
                &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
            );
            out.push((w[2].into(), w[1].into(), w[0].into(), ip));
        }
    }
    out
}

/// `nslookup NAME` in container `c` on node `d`: the addresses answered, in their order.
fn lookup_list(d: &Daemon, c: &str, name: &str) -> Vec<String> {
    let o = d.docker(&["exec", c, "nslookup", name]);
    // Past the server's own lines: "Name: x" / "Address: a.b.c.d".
    o.stdout
        .split("Name:")
        .skip(1)
        .flat_map(|part| part.lines())
        .filter_map(|l| l.trim().strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .collect()
}

fn lookup(d: &Daemon, c: &str, name: &str) -> BTreeSet<String> {
    lookup_list(d, c, name).into_iter().collect()
}

/// An HTTP GET by name from inside container `c` on node `d` (busybox nc resolves names,
/// its wget does not): the page, or None.
fn get_by_name(d: &Daemon, c: &str, name: &str) -> Option<String> {
    let o = d.docker(&[
        "exec",
        c,
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {name} 80"),
    ]);
    let text = o.stdout.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n")?;
    (o.ok() && head.contains(" 200 ")).then(|| body.trim().to_string())
}

/// What a node namespace holds of the mesh and the overlays.
fn dataplane_left(ns: &str) -> Vec<String> {
    let mut left = Vec::new();
    let links = sh(&["ip", "-n", ns, "-o", "link", "show"]);
    for l in links.out().lines() {
        let name = l.split(':').nth(1).unwrap_or("").trim();
        if name.starts_with("bvx") || name.starts_with("br-") || name.starts_with("veth") {
            left.push(format!("link {name}"));
        }
    }
    let tables = sh(&["ip", "netns", "exec", ns, "nft", "list", "tables"]);
    if tables.out().contains("berth_mesh") {
        left.push("nft table berth_mesh".into());
    }
    left
}

#[test]
fn mesh_three_nodes() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping mesh_three_nodes: {why}");
        return;
    }
    for tool in ["nsenter", "unshare", "ip", "nft", "curl"] {
        if support::which(tool).is_none() {
            eprintln!("skipping mesh_three_nodes: {tool} missing (scripts/deps.sh)");
            return;
        }
    }
    let forward_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let net = Net::new(TAG, 3);
    let nodes = net.start_nodes("mesh", &[]);
    let m = &nodes[0];
    let at = |i: usize, port: u16| format!("{}:{port}", net.addr(i));

    // ---- an overlay network needs a swarm --------------------------------------------------
    let o = m.docker_fails(&["network", "create", "-d", "overlay", "early"]);
    assert!(o.to_string().contains("docker swarm init"), "{o}");
    assert!(!m.docker_ok(&["network", "ls"]).contains("early"));
    net.form_swarm(&nodes);
    let ls = m.docker_ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert!(ls.contains("ingress overlay swarm"), "{ls}");

    // ---- the routing mesh: every node answers, every replica serves -------------------------
    // One replica first: the two nodes without a container of their own forward to it.
    m.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "1",
        "-p",
        "8080:80",
        "--stop-grace-period",
        "1s",
        "busybox",
        "sh",
        "-c",
        SITE,
    ]);
    wait_running(m, "web", 1, "web");
    let one: BTreeSet<String> = replicas(&nodes, "web").into_keys().collect();
    for i in 0..3 {
        let addr = at(i, 8080);
        answers_from_all(&format!("host -> {addr}, one replica"), &one, || {
            fetch(&addr).ok()
        });
    }
    m.docker_ok(&["service", "scale", "-d", "web=3"]);
    let by = wait_running(m, "web", 3, "web");
    assert_eq!(by.len(), 3, "one replica per node: {by:?}");
    let web: BTreeSet<String> = replicas(&nodes, "web").into_keys().collect();
    assert_eq!(web.len(), 3, "{web:?}");
    for i in 0..3 {
        let addr = at(i, 8080);
        answers_from_all(&format!("host -> {addr}"), &web, || fetch(&addr).ok());
    }
    // From inside the nodes: their own address, another node's, and 127.0.0.1.
    for (i, (ns, _, _)) in net.nodes.iter().enumerate() {
        for url in [
            format!("http://{}/", at(i, 8080)),
            format!("http://{}/", at((i + 1) % 3, 8080)),
            "http://127.0.0.1:8080/".to_string(),
        ] {
            answers_from_all(&format!("node{} -> {url}", i + 1), &web, || {
                curl_in(ns, &url)
            });
        }
    }
    // From a plain container on a node's default bridge.
    let o = nodes[1].docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!(
            "for i in 1 2 3 4 5 6; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {} 8080 | tail -n 1; done",
            net.addr(0)
        ),
    ]);
    let got: Vec<&str> = o.lines().map(str::trim).collect();
    assert_eq!(got.len(), 6, "{o}");
    assert!(got.iter().all(|b| web.contains(*b)), "{got:?} vs {web:?}");

    // ---- killing a replica: only what was in flight may fail --------------------------------
    // Three clients, one connection at a time each: when the replica dies, each client has at
    // most one connection with it (being served, or handshaken and waiting in its accept
    // queue), and only those may fail. Its listening socket is gone before its processes'
    // connections are reset, so a client's next connection to it is refused: the mesh drops
    // that first refusal, the client's TCP sends the SYN again a second later, and by then the
    // replica has left every node's table, so the retry reaches a live replica.
    let victim = replicas(&nodes, "web")
        .into_iter()
        .find(|(_, n)| *n == 2)
        .map(|(id, _)| id)
        .expect("a web replica on node3");
    let load = Load::start(&at(0, 8080), 3);
    wait_requests(&load, 100);
    nodes[2].docker_ok(&["kill", &victim]);
    poll(Duration::from_secs(60), || {
        let now = replicas(&nodes, "web");
        (now.len() == 3 && !now.contains_key(&victim)).then_some(())
    })
    .expect("the killed replica replaced");
    wait_running(m, "web", 3, "web after the kill");
    wait_requests(&load, 300);
    let st = load.finish();
    eprintln!("kill: {} ok, failed: {:?}", st.ok, st.failed);
    assert!(
        st.failed.len() <= 3,
        "more failures than connections in flight: {:?}",
        st.failed
    );
    let web: BTreeSet<String> = replicas(&nodes, "web").into_keys().collect();
    answers_from_all("after the kill", &web, || fetch(&at(1, 8080)).ok());

    // ---- scaling down: replicas leave the rotation before they stop -------------------------
    let load = Load::start(&at(1, 8080), 3);
    wait_requests(&load, 100);
    m.docker_ok(&["service", "scale", "-d", "web=1"]);
    wait_running(m, "web", 1, "web scaled down");
    poll(Duration::from_secs(30), || {
        (replicas(&nodes, "web").len() == 1).then_some(())
    })
    .expect("two web containers stopped");
    wait_requests(&load, 200);
    let st = load.finish();
    eprintln!("scale down: {} ok, failed: {:?}", st.ok, st.failed);
    assert!(
        st.failed.is_empty(),
        "scale-down failed requests: {:?}",
        st.failed
    );
    let left: BTreeSet<String> = replicas(&nodes, "web").into_keys().collect();
    let tail: BTreeSet<&String> = st.bodies[st.bodies.len() - 100..].iter().collect();
    assert!(
        tail.iter().all(|b| left.contains(*b)),
        "stopped replicas still answered at the end: {tail:?} vs {left:?}"
    );
    m.docker_ok(&["service", "rm", "web"]);

    // ---- health: no traffic before healthy, none once unhealthy -------------------------------
    // A replica serves "notready-HOST" until it becomes ready ("ready-HOST" and the file the
    // health check looks for). The start period forgives the failing checks before that.
    let site = "mkdir -p /www; echo notready-$(hostname) > /www/index.html; \
                (sleep 3; echo ready-$(hostname) > /www/new; mv /www/new /www/index.html; \
                touch /www/ready) & exec httpd -f -p 80 -h /www";
    m.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "hw",
        "--replicas",
        "1",
        "-p",
        "8081:80",
        "--health-cmd",
        "test -f /www/ready",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--health-start-period",
        "60s",
        "--stop-grace-period",
        "1s",
        "busybox",
        "sh",
        "-c",
        site,
    ]);
    wait_running(m, "hw", 1, "hw");
    // A published port answers on every node: no other service may have it.
    let o = m.docker_fails(&[
        "service", "create", "--name", "clash", "-p", "8081:80", "busybox",
    ]);
    assert!(
        o.to_string()
            .contains("port 8081/tcp is already in use by service hw"),
        "{o}"
    );
    // Running is the master's word; the nodes' tables follow a moment later.
    poll(Duration::from_secs(20), || fetch(&at(2, 8081)).ok()).expect("node3 answers on 8081");
    let load = Load::start(&at(2, 8081), 2);
    wait_requests(&load, 50);
    m.docker_ok(&["service", "scale", "-d", "hw=3"]);
    wait_running(m, "hw", 3, "hw scaled up");
    let hw = replicas(&nodes, "hw");
    let ready: BTreeSet<String> = hw.keys().map(|h| format!("ready-{h}")).collect();
    poll(Duration::from_secs(30), || {
        let st = load.stats.lock().unwrap();
        let seen: BTreeSet<&String> = st.bodies.iter().collect();
        ready.iter().all(|r| seen.contains(r)).then_some(())
    })
    .expect("every healthy replica gets connections");
    // One replica falls sick: it answers "sick-HOST" until its check fails, then leaves the
    // rotation, and is killed a moment later. Once node3 (where the clients connect) has it
    // out of its table, only connections already made may still reach it: at most one per
    // client.
    let (sick, sick_node) = hw.iter().find(|(_, n)| **n == 1).expect("hw on node2");
    let sick_ip = nodes[*sick_node].inspect(
        sick,
        "{{(index .NetworkSettings.Networks \"ingress\").IPAddress}}",
    );
    let entry = format!("{sick_ip} . 80");
    let table = || {
        sh(&[
            "ip",
            "netns",
            "exec",
            &net.nodes[2].0,
            "nft",
            "list",
            "table",
            "ip",
            "berth_mesh",
        ])
        .stdout
    };
    assert!(
        table().contains(&entry),
        "{entry} not in node3's mesh: {}",
        table()
    );
    nodes[*sick_node].docker_ok(&[
        "exec",
        sick,
        "sh",
        "-c",
        "echo sick-$(hostname) > /www/new; mv /www/new /www/index.html; rm /www/ready",
    ]);
    poll(Duration::from_secs(30), || {
        (!table().contains(&entry)).then_some(())
    })
    .expect("the unhealthy replica left node3's table");
    let out_of_rotation = load.stats.lock().unwrap().bodies.len();
    poll(Duration::from_secs(60), || {
        let now = replicas(&nodes, "hw");
        (now.len() == 3 && !now.contains_key(sick)).then_some(())
    })
    .expect("the unhealthy replica replaced");
    wait_running(m, "hw", 3, "hw after the sick one");
    wait_requests(&load, 200);
    let st = load.finish();
    eprintln!(
        "health: {} ok, failed: {:?}, answers: {:?}",
        st.ok,
        st.failed,
        st.bodies.iter().collect::<BTreeSet<_>>()
    );
    assert!(
        st.failed.is_empty(),
        "{} failed requests: {:?}",
        st.failed.len(),
        &st.failed[..st.failed.len().min(5)]
    );
    assert!(
        !st.bodies.iter().any(|b| b.starts_with("notready-")),
        "a replica got a connection before it was healthy"
    );
    let sick_body = format!("sick-{sick}");
    let late = st.bodies[out_of_rotation..]
        .iter()
        .filter(|b| **b == sick_body)
        .count();
    assert!(
        late <= 2,
        "the unhealthy replica answered {late} connections after it left the rotation"
    );
    m.docker_ok(&["service", "rm", "hw"]);

    // ---- service discovery on an overlay network ----------------------------------------------
    m.docker_ok(&["network", "create", "-d", "overlay", "app"]);
    let ls = m.docker_ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert!(ls.contains("app overlay swarm"), "{ls}");
    for (name, mode) in [("api", "vip"), ("rr", "dnsrr")] {
        m.docker_ok(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--replicas",
            "3",
            "--network",
            "app",
            "--endpoint-mode",
            mode,
            "--stop-grace-period",
            "1s",
            "busybox",
            "sh",
            "-c",
            SITE,
        ]);
    }
    m.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "client",
        "--network",
        "app",
        "--constraint",
        "node.hostname==node1",
        "--stop-grace-period",
        "1s",
        "busybox",
        "sleep",
        "1000",
    ]);
    for s in ["api", "rr"] {
        let by = wait_running(m, s, 3, s);
        assert_eq!(
            by.len(),
            3,
            "{s} on every node:\n{}\n{}",
            m.docker(&["service", "ps", "--no-trunc", s]),
            m.log_tail(80)
        );
    }
    wait_running(m, "client", 1, "client");
    let client = replicas(&nodes, "client")
        .into_keys()
        .next()
        .expect("the client container");
    let vip = m.docker_ok(&[
        "service",
        "inspect",
        "api",
        "--format",
        "{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}",
    ]);
    let vip = vip.trim_end_matches("/32").to_string();
    assert!(vip.starts_with("10.200.0."), "api's VIP {vip}");
    let api = task_endpoints(&nodes, "api", "app");
    let rr = task_endpoints(&nodes, "rr", "app");
    // The names answer once the tasks are in the node's records.
    poll(Duration::from_secs(20), || {
        (lookup(m, &client, "tasks.rr").len() == 3).then_some(())
    })
    .expect("tasks.rr answers its three tasks");
    assert_eq!(lookup(m, &client, "api"), BTreeSet::from([vip.clone()]));
    let api_ips: BTreeSet<String> = api.iter().map(|t| t.3.clone()).collect();
    assert_eq!(lookup(m, &client, "tasks.api"), api_ips);
    let rr_ips: BTreeSet<String> = rr.iter().map(|t| t.3.clone()).collect();
    assert_eq!(lookup(m, &client, "rr"), rr_ips, "dnsrr answers every task");
    // The VIP balances over replicas on all three nodes (so overlay traffic crosses nodes).
    let api_hosts: BTreeSet<String> = api.iter().map(|t| t.2.clone()).collect();
    answers_from_all("client -> api (VIP)", &api_hosts, || {
        get_by_name(m, &client, "api")
    });
    // dnsrr: the answers come in turns (each address first in its turn; glibc's
    // getaddrinfo then sorts them by prefix, so clients that resolve that way prefer their
    // own node's task), and every task answers on its own address, across nodes.
    let firsts: BTreeSet<String> = (0..6)
        .filter_map(|_| lookup_list(m, &client, "rr").first().cloned())
        .collect();
    assert_eq!(firsts, rr_ips, "rr's answers in turns");
    for (_, _, cid, ip) in &rr {
        assert_eq!(
            get_by_name(m, &client, ip).as_deref(),
            Some(cid.as_str()),
            "rr task at {ip}"
        );
    }
    // A task by TASKID.SERVICE and by its container name, wherever it runs.
    for (task, cname, cid, _) in &api {
        assert_eq!(
            get_by_name(m, &client, &format!("{task}.api")).as_deref(),
            Some(cid.as_str()),
            "{task}.api"
        );
        assert_eq!(
            get_by_name(m, &client, cname).as_deref(),
            Some(cid.as_str()),
            "{cname}"
        );
    }

    // ---- bad input: a clear error, nothing changed --------------------------------------------
    let services = m.docker_ok(&["service", "ls", "--format", "{{.Name}}"]);
    let networks = m.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    let o = m.docker_fails(&[
        "service",
        "create",
        "--name",
        "bad",
        "--endpoint-mode",
        "dnsrr",
        "-p",
        "9000:80",
        "busybox",
    ]);
    assert!(
        o.to_string().contains("can't be used with dnsrr mode"),
        "{o}"
    );
    let o = m.docker_fails(&[
        "service",
        "create",
        "--name",
        "bad",
        "--network",
        "nope",
        "busybox",
    ]);
    assert!(o.to_string().contains("network nope not found"), "{o}");
    let o = m.docker_fails(&[
        "service",
        "create",
        "--name",
        "bad",
        "--network",
        "bridge",
        "busybox",
    ]);
    assert!(
        o.to_string()
            .contains("not found among the swarm's networks"),
        "{o}"
    );
    let o = m.docker_fails(&["network", "rm", "app"]);
    assert!(o.to_string().contains("in use by service"), "{o}");
    // Overlay subnets refused: too small for a slice per node, or clashing with the
    // ingress network or with a network of the manager's own.
    for (subnet, name, want) in [
        ("10.9.9.0/28", "small", "too small"),
        ("10.255.7.0/24", "clash", "overlaps network ingress"),
        ("10.240.0.0/16", "local", "overlaps local network bridge"),
    ] {
        let o = m.docker_fails(&[
            "network", "create", "-d", "overlay", "--subnet", subnet, name,
        ]);
        assert!(o.to_string().contains(want), "{name}: {o}");
    }
    let o = nodes[1].docker_fails(&["network", "create", "-d", "overlay", "fromworker"]);
    assert!(o.to_string().contains("not a swarm manager"), "{o}");
    let o = nodes[1].docker_fails(&["network", "rm", "app"]);
    assert!(
        o.to_string()
            .contains("remove the network on a swarm manager"),
        "{o}"
    );
    assert_eq!(
        m.docker_ok(&["service", "ls", "--format", "{{.Name}}"]),
        services
    );
    assert_eq!(
        m.docker_ok(&["network", "ls", "--format", "{{.Name}}"]),
        networks
    );
    assert_eq!(running_by_node(m, "api").values().sum::<usize>(), 3);
    // `-p 80` takes a published port from Swarm's range.
    m.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "auto",
        "--replicas",
        "0",
        "-p",
        "80",
        "busybox",
    ]);
    let port = m.docker_ok(&[
        "service",
        "inspect",
        "auto",
        "--format",
        "{{range .Endpoint.Ports}}{{.PublishedPort}}{{end}}",
    ]);
    assert!(
        port.parse::<u16>()
            .is_ok_and(|p| (30000..=32767).contains(&p)),
        "published port {port:?}"
    );
    m.docker_ok(&["service", "rm", "auto"]);

    // ---- leaving: nothing of the mesh or the overlays stays -----------------------------------
    for s in ["api", "rr", "client"] {
        m.docker_ok(&["service", "rm", s]);
    }
    m.docker_ok(&["network", "rm", "app"]);
    for n in &nodes[1..] {
        n.docker_ok(&["swarm", "leave"]);
    }
    m.docker_ok(&["swarm", "leave", "--force"]);
    for (ns, _, _) in &net.nodes {
        let left = poll(Duration::from_secs(20), || {
            let left = dataplane_left(ns);
            left.is_empty().then_some(())
        });
        assert!(left.is_some(), "{ns} keeps {:?}", dataplane_left(ns));
    }
    let dirs: Vec<String> = nodes
        .iter()
        .map(|d| d.dir.to_string_lossy().into_owned())
        .collect();
    drop(nodes);
    drop(net);
    let links = sh(&["ip", "-o", "link", "show"]);
    for l in links.out().lines() {
        let name = l.split(':').nth(1).unwrap_or("").trim();
        assert!(
            !name.starts_with("bvx") && !name.starts_with(&format!("bcl{TAG}")),
            "host keeps {name}"
        );
    }
    let netns = sh(&["ip", "netns", "list"]);
    assert!(!netns.out().contains(&format!("bcl{TAG}")), "{netns}");
    let tables = sh(&["nft", "list", "tables"]);
    assert!(!tables.out().contains("berth_mesh"), "{tables}");
    let rules = sh(&["iptables-save"]);
    for needle in [format!("10.231.{TAG}."), format!("bcl{TAG}")] {
        assert!(
            !rules.out().contains(&needle),
            "host iptables mention {needle}"
        );
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for d in &dirs {
        assert!(!mounts.contains(d.as_str()), "mounts left under {d}");
        let ps = sh(&["ps", "-eo", "args"]);
        assert!(!ps.out().contains(d.as_str()), "processes left of {d}");
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward_before,
        "the host's ip_forward changed"
    );
}
