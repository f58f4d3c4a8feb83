//! Highly available masters: three berthd managers keep the swarm's state in a three-member
//! etcd cluster (etcd-server from Debian, one member in each node's network namespace), one
//! of them leads, and when the leader's node dies another takes over and finishes what the
//! dead one had started, with no desired state lost and no task started twice. Driven by the
//! real docker CLI, which talks to whichever manager it likes: the others hand its calls to
//! the leader.

mod support;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::swarm::{running_by_node, sh, task_containers, Net};
use support::{poll, skip_reason, Daemon};

const TAG: u8 = 80;

/// One etcd member per node namespace, on the node's address; killed and removed on drop.
struct Etcd {
    members: Vec<Option<Child>>,
    dirs: Vec<PathBuf>,
    addrs: Vec<String>,
    namespaces: Vec<String>,
}

impl Etcd {
    fn start(net: &Net) -> Etcd {
        let addrs: Vec<String> = (0..net.nodes.len()).map(|i| net.addr(i)).collect();
        let cluster: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("m{}=http://{a}:2380", i + 1))
            .collect();
        let mut e = Etcd {
            members: Vec::new(),
            dirs: Vec::new(),
            addrs,
            namespaces: net.nodes.iter().map(|n| n.0.clone()).collect(),
        };
        for i in 0..e.addrs.len() {
            let dir = tempfile::Builder::new()
                .prefix("berth-ha-etcd-")
                .tempdir_in("/tmp")
                .expect("etcd dir")
                .keep();
            e.dirs.push(dir);
            e.members.push(None);
            e.launch(i, &cluster.join(","));
        }
        for i in 0..e.addrs.len() {
            e.wait_healthy(i);
        }
        e
    }

    fn launch(&mut self, i: usize, cluster: &str) {
        let a = &self.addrs[i];
        let log = std::fs::File::create(self.dirs[i].join("etcd.log")).expect("etcd log");
        let mut cmd = Command::new("nsenter");
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent: etcd
        // is killed if the test's thread dies, so even a test killed outright leaves none.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .arg(format!("--net=/run/netns/{}", self.namespaces[i]))
            .arg("etcd")
            .args(["--name", &format!("m{}", i + 1)])
            .arg("--data-dir")
            .arg(self.dirs[i].join("data"))
            .args(["--listen-client-urls", &format!("http://{a}:2379")])
            .args(["--advertise-client-urls", &format!("http://{a}:2379")])
            .args(["--listen-peer-urls", &format!("http://{a}:2380")])
            .args(["--initial-advertise-peer-urls", &format!("http://{a}:2380")])
            .args(["--initial-cluster", cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "berth-ha-test"])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i] = Some(child);
    }

    fn relaunch(&mut self, i: usize) {
        let cluster: Vec<String> = self
            .addrs
            .iter()
            .enumerate()
            .map(|(j, a)| format!("m{}=http://{a}:2380", j + 1))
            .collect();
        self.launch(i, &cluster.join(","));
        self.wait_healthy(i);
    }

    fn wait_healthy(&self, i: usize) {
        let url = format!("http://{}:2379/health", self.addrs[i]);
        let ns = format!("--net=/run/netns/{}", self.namespaces[i]);
        poll(Duration::from_secs(30), || {
            let o = sh(&["nsenter", &ns, "curl", "-s", "-m", "2", &url]);
            o.out().contains("\"health\":\"true\"").then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "etcd member {} not healthy; log:\n{}",
                i + 1,
                std::fs::read_to_string(self.dirs[i].join("etcd.log")).unwrap_or_default()
            )
        });
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self, prefix: &str) -> String {
        let hosts: Vec<String> = self.addrs.iter().map(|a| format!("{a}:2379")).collect();
        format!("etcd://{}/{prefix}", hosts.join(","))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// `HOSTNAME MANAGER-STATUS` lines of `docker node ls`, as one string.
fn managers(d: &Daemon) -> String {
    d.docker_ok(&[
        "node",
        "ls",
        "--format",
        "{{.Hostname}} {{.Status}} {{.ManagerStatus}}",
    ])
}

/// The hostname shown as Leader.
fn leader(d: &Daemon) -> Option<String> {
    let o = d.docker(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"]);
    o.out()
        .lines()
        .find(|l| l.ends_with(" Leader"))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

fn is_manager(d: &Daemon) -> bool {
    d.docker_ok(&["info", "--format", "{{.Swarm.ControlAvailable}}"]) == "true"
}

/// Ids of `service`'s tasks wanted and seen running.
fn running_ids(d: &Daemon, service: &str) -> BTreeSet<String> {
    d.docker_ok(&[
        "service",
        "ps",
        service,
        "-q",
        "--no-trunc",
        "--filter",
        "desired-state=running",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn three_masters_on_etcd() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping three_masters_on_etcd: {why}");
        return;
    }
    for tool in ["nsenter", "unshare", "ip", "etcd", "curl"] {
        if support::which(tool).is_none() {
            eprintln!("skipping three_masters_on_etcd: {tool} missing");
            return;
        }
    }
    let net = Net::new(TAG, 3);
    let mut etcd = Etcd::start(&net);
    let store = etcd.url("hatest");
    let mut nodes = net.start_nodes("ha", &["--store".to_string(), store.clone()]);
    let addr = |i: usize| net.addr(i);
    let master = format!("{}:2377", addr(0));

    // ---- three managers: node1 makes the swarm in etcd, node2 joins as a manager -------
    let init = nodes[0].docker_ok(&["swarm", "init", "--advertise-addr", &addr(0)]);
    assert!(init.contains("is now a manager"), "{init}");
    let mtoken = nodes[0].docker_ok(&["swarm", "join-token", "-q", "manager"]);
    let wtoken = nodes[0].docker_ok(&["swarm", "join-token", "-q", "worker"]);
    // A second swarm in the same store is refused, and the node stays out.
    let o = nodes[2].docker_fails(&["swarm", "init", "--advertise-addr", &addr(2)]);
    assert!(o.to_string().contains("already holds swarm"), "{o}");
    assert_eq!(
        nodes[2].docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]),
        "inactive"
    );
    let o = nodes[1].docker_ok(&["swarm", "join", "--token", &mtoken, &master]);
    assert!(o.contains("as a manager"), "{o}");
    // node3 joins through node2, which does not lead: it is sent on to the leader.
    let via_follower = format!("{}:2377", addr(1));
    let o = nodes[2].docker_ok(&["swarm", "join", "--token", &wtoken, &via_follower]);
    assert!(o.contains("as a worker"), "{o}");
    // node2 does not lead: the CLI's calls there go to the leader.
    let ls = poll(Duration::from_secs(20), || {
        let ls = nodes[1].docker(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
        (ls.ok() && ls.out().matches("Ready").count() == 3).then(|| managers(&nodes[1]))
    })
    .unwrap_or_else(|| panic!("nodes not ready: {}", nodes[1].docker(&["node", "ls"])));
    assert!(ls.contains("node1 Ready Leader"), "{ls}");
    assert!(ls.contains("node2 Ready Reachable"), "{ls}");
    assert!(
        ls.lines().any(|l| l.trim_end() == "node3 Ready"),
        "node3 is a worker: {ls}"
    );
    assert!(is_manager(&nodes[1]));
    assert!(!is_manager(&nodes[2]));

    // ---- promote and demote, through a follower ----------------------------------------
    nodes[1].docker_ok(&["node", "promote", "node3"]);
    poll(Duration::from_secs(20), || {
        (is_manager(&nodes[2]) && managers(&nodes[0]).contains("node3 Ready Reachable"))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("node3 not a manager: {}", managers(&nodes[0])));
    // Its own API now answers manager calls (through the leader).
    assert!(nodes[2].docker_ok(&["node", "ls"]).contains("node1"));
    nodes[0].docker_ok(&["node", "demote", "node3"]);
    poll(Duration::from_secs(20), || {
        (!is_manager(&nodes[2])).then_some(())
    })
    .expect("node3 demoted");
    let o = nodes[2].docker_fails(&["node", "ls"]);
    assert!(o.to_string().contains("not a swarm manager"), "{o}");
    nodes[0].docker_ok(&["node", "promote", "node3"]);
    poll(Duration::from_secs(20), || {
        is_manager(&nodes[2]).then_some(())
    })
    .expect("node3 promoted again");

    // ---- a service on node2 and node3 ------------------------------------------------
    for n in ["node2", "node3"] {
        nodes[1].docker_ok(&["node", "update", "--label-add", "zone=b", n]);
    }
    nodes[2].docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "--constraint",
        "node.labels.zone==b",
        "--stop-grace-period",
        "1s",
        "busybox",
        "sleep",
        "100000",
    ]);
    let before = poll(Duration::from_secs(30), || {
        let ids = running_ids(&nodes[0], "web");
        let by = running_by_node(&nodes[0], "web");
        (by.values().sum::<usize>() == 2).then_some(ids)
    })
    .unwrap_or_else(|| {
        panic!(
            "web not running: {}",
            nodes[0].docker(&["service", "ps", "web"])
        )
    });
    assert_eq!(leader(&nodes[1]).as_deref(), Some("node1"));

    // ---- the leader's node dies right after a scale was asked of it ---------------------
    nodes[0].docker_ok(&["service", "scale", "-d", "web=6"]);
    let killed = Instant::now();
    nodes[0].kill_all();
    etcd.kill(0);
    let by = poll(Duration::from_secs(60), || {
        let o = nodes[1].docker(&[
            "service",
            "ps",
            "web",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ]);
        if !o.ok() {
            return None;
        }
        let by = running_by_node(&nodes[1], "web");
        (by.values().sum::<usize>() == 6).then_some(by)
    })
    .unwrap_or_else(|| {
        panic!(
            "the scale was not finished after the leader died: {}\nnode2 log:\n{}\nnode3 log:\n{}",
            nodes[1].docker(&["service", "ps", "web"]),
            nodes[1].log_notable(40),
            nodes[2].log_notable(40)
        )
    });
    eprintln!(
        "leader killed: the scale finished {:?} later by the new leader: {by:?}",
        killed.elapsed()
    );
    let new_leader = leader(&nodes[1]).expect("a new leader");
    assert!(
        new_leader == "node2" || new_leader == "node3",
        "{new_leader}"
    );
    // No desired state lost; the tasks that ran before still run; none started twice.
    assert_eq!(
        nodes[2].docker_ok(&[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.Spec.Mode.Replicated.Replicas}}"
        ]),
        "6"
    );
    let after = running_ids(&nodes[1], "web");
    assert!(
        before.is_subset(&after),
        "before {before:?}, after {after:?}"
    );
    assert_eq!(after.len(), 6, "{after:?}");
    assert_eq!(
        task_containers(&nodes[1], "web") + task_containers(&nodes[2], "web"),
        6
    );
    assert!(nodes[1]
        .docker_ok(&["node", "inspect", "node2", "--format", "{{.Spec.Labels}}"])
        .contains("zone:b"));
    poll(Duration::from_secs(20), || {
        managers(&nodes[1])
            .contains("node1 Down Unreachable")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("node1 not unreachable: {}", managers(&nodes[1])));

    // ---- the dead node comes back and follows -----------------------------------------
    etcd.relaunch(0);
    nodes[0].launch();
    poll(Duration::from_secs(30), || {
        managers(&nodes[2])
            .contains("node1 Ready Reachable")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("node1 not back: {}", managers(&nodes[2])));
    assert_eq!(leader(&nodes[0]).as_deref(), Some(new_leader.as_str()));
    assert_eq!(running_ids(&nodes[0], "web"), after);

    // ---- clean up -------------------------------------------------------------------
    nodes[0].docker_ok(&["service", "rm", "web"]);
    poll(Duration::from_secs(30), || {
        (task_containers(&nodes[1], "web") + task_containers(&nodes[2], "web") == 0).then_some(())
    })
    .expect("web's containers removed");
    for n in nodes.iter_mut() {
        n.docker_ok(&["swarm", "leave", "--force"]);
    }
    drop(nodes);
    drop(etcd);
}
