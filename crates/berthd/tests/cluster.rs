//! A three-node cluster on this machine, driven by the real docker CLI: each node is a
//! berthd in its own network namespace (a veth pair on a test bridge, its own address and
//! hostname), with its own socket, data root and exec root. node1 is the manager.

mod support;

use std::time::{Duration, Instant};

use support::swarm::{running_by_node, sh, task_containers, wait_running, Net};
use support::{poll, skip_reason, Daemon};

#[test]
fn three_node_swarm() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping three_node_swarm: {why}");
        return;
    }
    for tool in ["nsenter", "unshare", "ip"] {
        if support::which(tool).is_none() {
            eprintln!("skipping three_node_swarm: {tool} missing");
            return;
        }
    }
    let net = Net::new(77, 3);
    let mut nodes = net.start_nodes("cluster", &[]);
    for d in &nodes {
        d.docker_ok(&["tag", "busybox:latest", "busybox:v2"]);
        d.docker_ok(&["tag", "busybox:latest", "busybox:v3"]);
    }
    let addr = |i: usize| net.nodes[i].2.clone();

    // ---- forming the cluster ------------------------------------------------------
    let init = nodes[0].docker_ok(&["swarm", "init", "--advertise-addr", &addr(0)]);
    assert!(init.contains("is now a manager"), "{init}");
    assert!(init.contains(&format!("{}:2377", addr(0))), "{init}");
    let token = nodes[0].docker_ok(&["swarm", "join-token", "-q", "worker"]);
    assert!(token.starts_with("SWMTKN-1-"), "{token}");
    let mtoken = nodes[0].docker_ok(&["swarm", "join-token", "-q", "manager"]);
    assert_ne!(token, mtoken);
    let master = format!("{}:2377", addr(0));
    // A wrong token is refused and logged; the node stays out.
    let bad = format!("{}-nope", &token[..token.len() - 5]);
    let o = nodes[1].docker_fails(&["swarm", "join", "--token", &bad, &master]);
    assert!(o.to_string().contains("join token"), "{o}");
    assert!(nodes[0].log_tail(200).contains("invalid join token"));
    assert!(nodes[1]
        .docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .contains("inactive"));
    for n in &nodes[1..] {
        let o = n.docker_ok(&["swarm", "join", "--token", &token, &master]);
        assert!(o.contains("This node joined a swarm as a worker"), "{o}");
    }
    // Managers-only calls on a worker.
    let o = nodes[1].docker_fails(&["node", "ls"]);
    assert!(o.to_string().contains("not a swarm manager"), "{o}");
    let (first, others) = nodes.split_at_mut(1);
    let m = &first[0];
    poll(Duration::from_secs(20), || {
        let ls = m.docker_ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
        (ls.matches("Ready").count() == 3).then_some(())
    })
    .unwrap_or_else(|| panic!("nodes not ready: {}", m.docker(&["node", "ls"])));
    let ls = m.docker_ok(&["node", "ls"]);
    assert!(
        ls.contains("Leader") && ls.contains("node1") && ls.contains("node3"),
        "{ls}"
    );
    assert_eq!(
        m.docker_ok(&[
            "node",
            "inspect",
            "node2",
            "--format",
            "{{.Spec.Role}} {{.Status.Addr}}"
        ]),
        format!("worker {}", addr(1))
    );

    // ---- bad input: a clear error and nothing made ------------------------------------
    let o = m.docker_fails(&["service", "create", "--name", "x", "busybox:nope"]);
    assert!(o.to_string().contains("No such image"), "{o}");
    let o = m.docker_fails(&[
        "service",
        "create",
        "--name",
        "x",
        "--constraint",
        "node.color==red",
        "busybox",
    ]);
    assert!(o.to_string().contains("unknown key"), "{o}");
    let o = m.docker_fails(&["service", "create", "--name", "bad_name!", "busybox"]);
    assert!(o.to_string().contains("name must be valid"), "{o}");
    assert_eq!(m.docker_ok(&["service", "ls", "-q"]), "");

    // ---- spread, scale --------------------------------------------------------------
    let common = ["--stop-grace-period", "1s", "--restart-delay", "1s"];
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "6",
    ];
    args.extend(common);
    args.extend(["busybox", "sleep", "1000"]);
    m.docker_ok(&args);
    let o = m.docker_fails(&["service", "create", "--name", "web", "busybox"]);
    assert!(o.to_string().contains("already exists"), "{o}");
    let by = wait_running(m, "web", 6, "create 6");
    assert_eq!(
        by.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "{by:?}"
    );
    assert_eq!(task_containers(&others[1], "web"), 2);
    m.docker_ok(&["service", "scale", "-d", "web=12"]);
    let by = wait_running(m, "web", 12, "scale 12");
    assert_eq!(
        by.values().copied().collect::<Vec<_>>(),
        vec![4, 4, 4],
        "{by:?}"
    );
    m.docker_ok(&["service", "scale", "-d", "web=2"]);
    wait_running(m, "web", 2, "scale 2");
    poll(Duration::from_secs(30), || {
        (first
            .iter()
            .chain(others.iter())
            .map(|n| task_containers(n, "web"))
            .sum::<usize>()
            == 2)
            .then_some(())
    })
    .expect("scale-down leaves 2 containers");
    m.docker_ok(&["service", "scale", "-d", "web=6"]);
    wait_running(m, "web", 6, "scale 6");

    // ---- an impossible constraint waits with the reason ----------------------------------
    m.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "nowhere",
        "--constraint",
        "node.labels.zone==mars",
        "busybox",
        "sleep",
        "1000",
    ]);
    let err = poll(Duration::from_secs(20), || {
        let e = m.docker_ok(&[
            "service",
            "ps",
            "nowhere",
            "--no-trunc",
            "--format",
            "{{.CurrentState}}|{{.Error}}",
        ]);
        e.contains("no suitable node").then_some(e)
    })
    .expect("pending task with its reason");
    assert!(
        err.contains("Pending") && err.contains("scheduling constraints not satisfied on 3 nodes"),
        "{err}"
    );
    m.docker_ok(&["node", "update", "--label-add", "zone=mars", "node3"]);
    let by = wait_running(m, "nowhere", 1, "label added");
    assert_eq!(by.keys().collect::<Vec<_>>(), vec!["node3"]);
    m.docker_ok(&["service", "rm", "nowhere"]);
    m.docker_ok(&["node", "update", "--label-rm", "zone", "node3"]);

    // ---- a lost node: its tasks come back elsewhere -----------------------------------
    let lost = Instant::now();
    others[1].kill_all();
    poll(Duration::from_secs(40), || {
        let by = running_by_node(m, "web");
        (by.values().sum::<usize>() == 6 && !by.contains_key("node3")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "node3's tasks not replaced: {}",
            m.docker(&["service", "ps", "web"])
        )
    });
    eprintln!(
        "node3 lost: replacements running after {:?}",
        lost.elapsed()
    );
    assert!(m
        .docker_ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
        .contains("node3 Down"));
    others[1].launch();
    poll(Duration::from_secs(20), || {
        m.docker_ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
            .contains("node3 Ready")
            .then_some(())
    })
    .expect("node3 back");
    assert_eq!(task_containers(&others[1], "web"), 0);

    // ---- a partition: no duplicate stays up once it heals ----------------------------
    let before = task_containers(&others[0], "web");
    assert!(before > 0);
    net.cut(1, false);
    poll(Duration::from_secs(30), || {
        let by = running_by_node(m, "web");
        (by.values().sum::<usize>() == 6 && !by.contains_key("node2")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "partitioned node2's tasks not replaced: {}",
            m.docker(&["service", "ps", "web"])
        )
    });
    // The cut-off node keeps running its containers while it cannot reach the manager.
    assert_eq!(task_containers(&others[0], "web"), before);
    net.cut(1, true);
    poll(Duration::from_secs(40), || {
        (task_containers(&others[0], "web") == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("node2 kept its stale tasks: {}", others[0].docker(&["ps"])));
    assert_eq!(
        first
            .iter()
            .chain(others.iter())
            .map(|n| task_containers(n, "web"))
            .sum::<usize>(),
        6
    );

    // ---- drain ----------------------------------------------------------------------
    m.docker_ok(&["node", "update", "--availability", "drain", "node1"]);
    poll(Duration::from_secs(40), || {
        let by = running_by_node(m, "web");
        (by.values().sum::<usize>() == 6
            && !by.contains_key("node1")
            && task_containers(m, "web") == 0)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("drain: {}", m.docker(&["service", "ps", "web"])));
    m.docker_ok(&["node", "update", "--availability", "active", "node1"]);
    assert!(m
        .docker_ok(&[
            "node",
            "inspect",
            "node1",
            "--format",
            "{{.Spec.Availability}}"
        ])
        .contains("active"));

    // ---- rolling update, then a failing one rolled back ------------------------------------
    m.docker_ok(&[
        "service",
        "update",
        "--image",
        "busybox:v2",
        "--update-parallelism",
        "2",
        "--update-delay",
        "1s",
        "web",
    ]);
    let imgs = m.docker_ok(&[
        "service",
        "ps",
        "web",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Image}} {{.CurrentState}}",
    ]);
    assert_eq!(
        imgs.lines()
            .filter(|l| l.starts_with("busybox:v2 Running"))
            .count(),
        6,
        "{imgs}"
    );
    assert_eq!(
        m.docker_ok(&[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.UpdateStatus.State}}"
        ]),
        "completed"
    );
    let o = m.docker(&[
        "service",
        "update",
        "--image",
        "busybox:v3",
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--update-failure-action",
        "rollback",
        "web",
    ]);
    eprintln!("failing update: {o}");
    poll(Duration::from_secs(60), || {
        (m.docker_ok(&[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.UpdateStatus.State}}",
        ]) == "rollback_completed")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no rollback: {}",
            m.docker(&["service", "inspect", "web", "--pretty"])
        )
    });
    assert_eq!(
        m.docker_ok(&[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}"
        ]),
        "busybox:v2"
    );
    wait_running(m, "web", 6, "after rollback");

    // ---- logs from every node, global mode, restart attempts -------------------------------
    m.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "talk",
        "--replicas",
        "3",
        "--stop-grace-period",
        "1s",
        "busybox",
        "sh",
        "-c",
        "echo oops >&2; sleep 0.2; echo hello-$(hostname); echo bye; sleep 1000",
    ]);
    wait_running(m, "talk", 3, "talk");
    let logs = poll(Duration::from_secs(20), || {
        let o = m.docker(&["service", "logs", "talk"]);
        (o.out().matches("hello-").count() == 3 && o.to_string().matches("oops").count() == 3)
            .then_some(o)
    })
    .unwrap_or_else(|| panic!("service logs: {}", m.docker(&["service", "logs", "talk"])));
    for n in ["node1", "node2", "node3"] {
        assert!(
            logs.out().lines().any(|l| l.starts_with("talk.")
                && l.contains(&format!("@{n}"))
                && l.contains("| hello-")),
            "{logs}"
        );
    }
    let tail = m.docker_ok(&["service", "logs", "--tail", "1", "--raw", "talk"]);
    assert_eq!(
        tail.matches("bye").count(),
        3,
        "--tail 1: the last line of each task: {tail}"
    );
    assert!(
        !tail.contains("hello-"),
        "--tail 1: the last line of each task: {tail}"
    );
    m.docker_ok(&["service", "rm", "talk"]);
    m.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "everywhere",
        "--mode",
        "global",
        "--stop-grace-period",
        "1s",
        "busybox",
        "sleep",
        "1000",
    ]);
    let by = wait_running(m, "everywhere", 3, "global");
    assert_eq!(
        by.values().copied().collect::<Vec<_>>(),
        vec![1, 1, 1],
        "{by:?}"
    );
    assert!(m
        .docker_ok(&[
            "service",
            "ls",
            "--format",
            "{{.Name}} {{.Mode}} {{.Replicas}}"
        ])
        .contains("everywhere global 3/3"));
    m.docker_ok(&["service", "rm", "everywhere"]);
    m.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "flaky",
        "--restart-condition",
        "on-failure",
        "--restart-max-attempts",
        "2",
        "--restart-delay",
        "500ms",
        "busybox",
        "false",
    ]);
    poll(Duration::from_secs(40), || {
        let st = m.docker_ok(&["service", "ps", "flaky", "--format", "{{.CurrentState}}"]);
        (st.lines().filter(|l| l.starts_with("Failed")).count() == 3).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "restart attempts: {}",
            m.docker(&["service", "ps", "flaky"])
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    let ps = m.docker_ok(&[
        "service",
        "ps",
        "flaky",
        "--format",
        "{{.CurrentState}}|{{.Error}}",
    ]);
    assert_eq!(ps.lines().count(), 3, "no fourth attempt: {ps}");
    assert!(ps.contains("task: non-zero exit (1)"), "{ps}");
    m.docker_ok(&["service", "rm", "flaky"]);

    // ---- published ports, env, limits, mounts --------------------------------------------
    m.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "pub",
        "--replicas",
        "2",
        "--stop-grace-period",
        "1s",
        "-p",
        "mode=host,published=8081,target=80",
        "-e",
        "GREETING=hi",
        "--limit-memory",
        "64M",
        "--mount",
        "type=volume,src=pubdata,dst=/data",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www; echo $GREETING-$(hostname) > /www/index.html; exec httpd -f -p 80 -h /www",
    ]);
    let by = wait_running(m, "pub", 2, "pub");
    assert_eq!(
        by.values().copied().collect::<Vec<_>>(),
        vec![1, 1],
        "{by:?}"
    );
    let all: Vec<&Daemon> = first.iter().chain(others.iter()).collect();
    let mut answered = 0;
    for (i, d) in all.iter().enumerate() {
        if task_containers(d, "pub") == 0 {
            continue;
        }
        let url = format!("http://{}:8081/", addr(i));
        let body = poll(Duration::from_secs(20), || {
            let o = sh(&["curl", "-s", "--max-time", "2", &url]);
            o.out().starts_with("hi-").then(|| o.out().to_string())
        })
        .unwrap_or_else(|| panic!("nothing answers on {url}"));
        assert!(body.starts_with("hi-"), "{body}");
        let id = d.docker_ok(&[
            "ps",
            "-q",
            "--filter",
            "label=com.docker.swarm.service.name=pub",
        ]);
        let seen = d.docker_ok(&[
            "inspect",
            &id,
            "--format",
            "{{.HostConfig.Memory}} {{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}",
        ]);
        assert_eq!(seen, "67108864 pubdata:/data");
        answered += 1;
    }
    assert_eq!(answered, 2);
    // A third and fourth task: one node left with the port free, then none.
    m.docker_ok(&["service", "scale", "-d", "pub=4"]);
    wait_running(m, "pub", 3, "pub 3 of 4");
    let err = poll(Duration::from_secs(20), || {
        let e = m.docker_ok(&[
            "service",
            "ps",
            "pub",
            "--no-trunc",
            "--format",
            "{{.Error}}",
        ]);
        e.contains("no suitable node").then_some(e)
    })
    .expect("the fourth task waits for a free port");
    assert!(
        err.contains("host-mode port already in use on 3 nodes"),
        "{err}"
    );
    m.docker_ok(&["service", "rm", "pub"]);

    // ---- the master restarts mid-update; running tasks are not restarted -----------------
    let mut dbargs = vec!["service", "create", "-d", "--name", "db", "--replicas", "3"];
    dbargs.extend(common);
    dbargs.extend(["busybox", "sleep", "1000"]);
    m.docker_ok(&dbargs);
    wait_running(m, "db", 3, "db");
    let db_ids = |m: &Daemon| {
        let mut v: Vec<String> = m
            .docker_ok(&[
                "service",
                "ps",
                "db",
                "-q",
                "--filter",
                "desired-state=running",
            ])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let before = db_ids(&first[0]);
    first[0].docker_ok(&[
        "service",
        "update",
        "-d",
        "--image",
        "busybox:latest",
        "--update-delay",
        "2s",
        "--update-order",
        "start-first",
        "web",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    first[0].kill9();
    first[0].launch();
    let m = &first[0];
    poll(Duration::from_secs(90), || {
        (m.docker_ok(&[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.UpdateStatus.State}}",
        ]) == "completed")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "update did not finish after the restart: {}",
            m.docker(&["service", "ps", "web"])
        )
    });
    let imgs = m.docker_ok(&[
        "service",
        "ps",
        "web",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Image}}",
    ]);
    assert_eq!(
        imgs.lines().filter(|l| *l == "busybox:latest").count(),
        6,
        "{imgs}"
    );
    assert_eq!(
        db_ids(m),
        before,
        "db's tasks were restarted by the master's restart"
    );
    // A manual rollback goes back to the spec before the last update.
    m.docker_ok(&["service", "rollback", "-d", "web"]);
    poll(Duration::from_secs(60), || {
        let st = m.docker_ok(&[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.UpdateStatus.State}} {{.Spec.TaskTemplate.ContainerSpec.Image}}",
        ]);
        (st == "rollback_completed busybox:v2").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "manual rollback: {}",
            m.docker(&["service", "inspect", "--pretty", "web"])
        )
    });
    wait_running(m, "web", 6, "manual rollback");

    // ---- leave ------------------------------------------------------------------------
    for n in others.iter() {
        n.docker_ok(&["swarm", "leave"]);
        assert_eq!(task_containers(n, "web"), 0);
    }
    let o = m.docker_fails(&["swarm", "leave"]);
    assert!(o.to_string().contains("--force"), "{o}");
    m.docker_ok(&["swarm", "leave", "--force"]);
    assert_eq!(m.docker_ok(&["ps", "-aq"]), "");
    drop(nodes);
    drop(net);
}
