//! A swarm of berthd nodes on this machine for multi-node tests: each node a network
//! namespace on a test bridge (a veth pair, its own address), berthd run in it with its own
//! hostname; and the polling helpers that read a service's tasks through the docker CLI.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{poll, run_cmd, Daemon, Out};

pub fn sh(args: &[&str]) -> Out {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]);
    run_cmd(&mut c, Duration::from_secs(30))
}

pub fn must(args: &[&str]) {
    let o = sh(args);
    assert!(o.ok(), "{args:?}: {o}");
}

/// The test network: a bridge and one namespace per node, removed on drop.
pub struct Net {
    pub bridge: String,
    pub nodes: Vec<(String, String, String)>, // (netns, host veth, address)
}

impl Net {
    pub fn new(tag: u8, n: usize) -> Net {
        let bridge = format!("bcl{tag}");
        let _ = sh(&["ip", "link", "del", &bridge]);
        must(&["ip", "link", "add", &bridge, "type", "bridge"]);
        must(&[
            "ip",
            "addr",
            "add",
            &format!("10.231.{tag}.1/24"),
            "dev",
            &bridge,
        ]);
        must(&["ip", "link", "set", &bridge, "up"]);
        let mut net = Net {
            bridge,
            nodes: Vec::new(),
        };
        for i in 1..=n {
            let ns = format!("bcl{tag}n{i}");
            let host = format!("bcl{tag}h{i}");
            let addr = format!("10.231.{tag}.{}", 10 + i);
            let _ = sh(&["ip", "netns", "del", &ns]);
            must(&["ip", "netns", "add", &ns]);
            net.nodes.push((ns.clone(), host.clone(), addr.clone()));
            must(&[
                "ip", "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            must(&["ip", "link", "set", &host, "master", &net.bridge, "up"]);
            must(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            must(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &format!("10.231.{tag}.1"),
            ]);
        }
        net
    }

    /// The prefix that runs berthd in node `i`'s namespace with hostname `node{i}`.
    pub fn prefix(&self, i: usize) -> Vec<String> {
        let ns = &self.nodes[i].0;
        vec![
            "nsenter".into(),
            format!("--net=/run/netns/{ns}"),
            "unshare".into(),
            "--uts".into(),
            "sh".into(),
            "-c".into(),
            format!("hostname node{}; exec \"$0\" \"$@\"", i + 1),
        ]
    }

    pub fn cut(&self, i: usize, up: bool) {
        must(&[
            "ip",
            "link",
            "set",
            &self.nodes[i].1,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (ns, host, _) in &self.nodes {
            let _ = sh(&["ip", "link", "del", host]);
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        let _ = sh(&["ip", "link", "del", &self.bridge]);
    }
}

/// Tasks of `service` wanted running and running, by node hostname.
pub fn running_by_node(m: &Daemon, service: &str) -> BTreeMap<String, usize> {
    let out = m.docker(&[
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}} {{.CurrentState}}",
    ]);
    let mut by = BTreeMap::new();
    for l in out.out().lines() {
        let mut w = l.split_whitespace();
        if let (Some(node), Some("Running")) = (w.next(), w.next()) {
            *by.entry(node.to_string()).or_default() += 1;
        }
    }
    by
}

pub fn wait_running(
    m: &Daemon,
    service: &str,
    total: usize,
    what: &str,
) -> BTreeMap<String, usize> {
    let t = Instant::now();
    let r = poll(Duration::from_secs(60), || {
        let by = running_by_node(m, service);
        (by.values().sum::<usize>() == total).then_some(by)
    });
    let by = r.unwrap_or_else(|| {
        panic!(
            "{what}: {total} tasks of {service} not running; ps:\n{}\nlog:\n{}",
            m.docker(&["service", "ps", service]),
            m.log_tail(40)
        )
    });
    eprintln!("{what}: {total} running after {:?}: {by:?}", t.elapsed());
    by
}

/// Task containers running on a node (`docker ps` of that node's own engine).
pub fn task_containers(d: &Daemon, service: &str) -> usize {
    d.docker_ok(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ])
    .lines()
    .count()
}

impl Net {
    /// Node `i`'s underlay address.
    pub fn addr(&self, i: usize) -> String {
        self.nodes[i].2.clone()
    }

    /// A berthd in each node's namespace (named `{test}-node{i}`), its default bridge
    /// `bclbr` on 10.240.{i}.1/24 inside that namespace, busybox imported, and `extra`
    /// flags appended (`--metrics-addr ...`, `--store ...`).
    pub fn start_nodes(&self, test: &str, extra: &[String]) -> Vec<Daemon> {
        (0..self.nodes.len())
            .map(|i| {
                let mut args: Vec<String> = [
                    "--bridge",
                    "bclbr",
                    "--bip",
                    &format!("10.240.{}.1/24", i + 1),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                args.extend(extra.iter().cloned());
                let d =
                    Daemon::start_wrapped(&format!("{test}-node{}", i + 1), &self.prefix(i), &args);
                d.import_busybox();
                d
            })
            .collect()
    }

    /// `swarm init` on node 0, every other node joined as a worker, all Ready; returns the
    /// worker join token.
    pub fn form_swarm(&self, nodes: &[Daemon]) -> String {
        let m = &nodes[0];
        m.docker_ok(&["swarm", "init", "--advertise-addr", &self.addr(0)]);
        let token = m.docker_ok(&["swarm", "join-token", "-q", "worker"]);
        let master = format!("{}:2377", self.addr(0));
        for n in &nodes[1..] {
            n.docker_ok(&["swarm", "join", "--token", &token, &master]);
        }
        poll(Duration::from_secs(20), || {
            let ls = m.docker_ok(&["node", "ls", "--format", "{{.Status}}"]);
            (ls.matches("Ready").count() == nodes.len()).then_some(())
        })
        .unwrap_or_else(|| panic!("nodes not ready: {}", m.docker(&["node", "ls"])));
        token
    }
}
