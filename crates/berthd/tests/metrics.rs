//! berthd's Prometheus metrics (`--metrics-addr`), scraped with a plain HTTP/1.0 GET: the
//! containers by state, a running container's CPU and memory series, and, once the daemon
//! is a swarm manager, its nodes, tasks, scheduler and reconcile figures.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use support::{poll, run_cmd, Daemon, Peer};

/// The host's `ip_forward`, which the bridge plugin turns on, restored on drop.
struct IpForward(String);

impl IpForward {
    fn save() -> IpForward {
        IpForward(std::fs::read_to_string(IP_FORWARD).unwrap_or_default())
    }
}

impl Drop for IpForward {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = std::fs::write(IP_FORWARD, &self.0);
        }
    }
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// One scrape.
struct Scrape {
    status: u16,
    head: String,
    body: String,
}

/// `METHOD PATH HTTP/1.0` to 127.0.0.1:port, read until the server closes.
fn request(port: u16, method: &str, path: &str) -> Scrape {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    Scrape {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn metrics(port: u16) -> String {
    let s = request(port, "GET", "/metrics");
    assert_eq!(s.status, 200, "{}\n{}", s.head, s.body);
    assert!(
        s.head
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        s.head
    );
    s.body
}

/// The value of the series `series` (name and labels exactly as rendered).
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{series}: {v:?}")))
}

#[track_caller]
fn must(body: &str, series: &str) -> f64 {
    value(body, series).unwrap_or_else(|| panic!("no {series} in:\n{body}"))
}

#[test]
fn a_bad_metrics_addr_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, "{}").unwrap();
    let o = run_cmd(
        Command::new(Daemon::berthd_bin())
            .arg("--config-file")
            .arg(&cfg)
            .args(["--metrics-addr", "localhost"]),
        Duration::from_secs(30),
    );
    assert_eq!(o.code, Some(1), "{o}");
    assert!(
        o.stderr.contains("invalid --metrics-addr \"localhost\""),
        "{o}"
    );
}

#[test]
fn metrics_of_containers_and_the_swarm() {
    if Peer::from_env() == Peer::Dockerd {
        eprintln!("skipping metrics_of_containers_and_the_swarm: berthd's own metrics");
        return;
    }
    let fwd = IpForward::save();
    let port = free_port();
    let args: Vec<String> = [
        "--bridge",
        "none",
        "--metrics-addr",
        &format!("127.0.0.1:{port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let Some(d) = Daemon::start_with("metrics", &args) else {
        return;
    };

    // Nothing yet: every state is there, at 0; not a manager.
    let body = metrics(port);
    for state in [
        "running",
        "paused",
        "restarting",
        "created",
        "exited",
        "dead",
    ] {
        assert_eq!(
            must(&body, &format!("berth_containers{{state=\"{state}\"}}")),
            0.0
        );
    }
    assert_eq!(must(&body, "berth_swarm_manager"), 0.0);
    assert!(!body.contains("berth_swarm_tasks{"), "{body}");
    for l in body.lines().filter(|l| l.starts_with('#')) {
        assert!(
            l.starts_with("# HELP berth_") || l.starts_with("# TYPE berth_"),
            "{l}"
        );
    }

    // Other paths and methods.
    let s = request(port, "GET", "/nope");
    assert_eq!(s.status, 404, "{}\n{}", s.head, s.body);
    let s = request(port, "GET", "/");
    assert_eq!(s.status, 404, "{}", s.head);
    let s = request(port, "POST", "/metrics");
    assert_eq!(s.status, 405, "{}", s.head);

    // A running container with a memory limit, one without, one only created.
    let loop_ = "while true; do sleep 1; done";
    let limited = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "metrics-limited",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        loop_,
    ]);
    let free = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "metrics-free",
        "busybox",
        "sh",
        "-c",
        loop_,
    ]);
    d.docker_ok(&["create", "--name", "metrics-created", "busybox", "true"]);
    for name in ["metrics-limited", "metrics-free"] {
        d.wait_for(name, "{{.State.Running}}", "true", Duration::from_secs(60));
    }
    let body = metrics(port);
    eprintln!("--- /metrics ---\n{body}");
    assert!(must(&body, r#"berth_containers{state="running"}"#) >= 2.0);
    assert!(must(&body, r#"berth_containers{state="created"}"#) >= 1.0);
    for (id, name) in [(&limited, "metrics-limited"), (&free, "metrics-free")] {
        assert_eq!(id.len(), 64, "{id}");
        let l = format!("{{id=\"{id}\",name=\"{name}\"}}");
        let cpu = must(&body, &format!("berth_container_cpu_seconds_total{l}"));
        assert!(cpu >= 0.0, "{cpu}");
        let mem = must(&body, &format!("berth_container_memory_usage_bytes{l}"));
        assert!(mem > 0.0, "{name}: memory {mem}");
    }
    let l = format!("{{id=\"{limited}\",name=\"metrics-limited\"}}");
    assert_eq!(
        must(&body, &format!("berth_container_memory_limit_bytes{l}")),
        (64u64 << 20) as f64
    );
    let l = format!("{{id=\"{free}\",name=\"metrics-free\"}}");
    assert_eq!(
        value(&body, &format!("berth_container_memory_limit_bytes{l}")),
        None,
        "no limit of its own, no limit series"
    );
    assert!(
        !body.contains("metrics-created\""),
        "a created container has no stats series:\n{body}"
    );
    // CPU time is a counter: it never goes back.
    let cpu = |b: &str| {
        must(
            b,
            &format!(
                "berth_container_cpu_seconds_total{{id=\"{limited}\",name=\"metrics-limited\"}}"
            ),
        )
    };
    let before = cpu(&body);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(cpu(&metrics(port)) >= before);

    // On a network of its own: its interface counters (not the loopback's).
    let net = format!("metrics{}", std::process::id());
    let subnet = format!("10.218.{}.0/24", std::process::id() % 250);
    d.docker_ok(&["network", "create", "--internal", "--subnet", &subnet, &net]);
    let on_net = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "metrics-net",
        "--network",
        &net,
        "busybox",
        "sh",
        "-c",
        loop_,
    ]);
    d.wait_for(
        "metrics-net",
        "{{.State.Running}}",
        "true",
        Duration::from_secs(60),
    );
    let gateway = subnet.replace(".0/24", ".1");
    // Some traffic out and back (the gateway answers ARP at least).
    let _ = d.docker(&[
        "exec",
        "metrics-net",
        "ping",
        "-c",
        "2",
        "-W",
        "1",
        &gateway,
    ]);
    let body = metrics(port);
    let l = format!("{{id=\"{on_net}\",name=\"metrics-net\",interface=\"eth0\"}}");
    for family in [
        "berth_container_network_receive_bytes_total",
        "berth_container_network_transmit_bytes_total",
        "berth_container_network_receive_packets_total",
        "berth_container_network_transmit_packets_total",
    ] {
        let v = must(&body, &format!("{family}{l}"));
        assert!(v > 0.0, "{family}{l} {v}");
    }
    assert!(!body.contains("interface=\"lo\""), "{body}");
    d.docker_ok(&["rm", "-f", "metrics-net"]);
    d.docker_ok(&["network", "rm", &net]);

    // A container removed: its series go.
    d.docker_ok(&["rm", "-f", "metrics-free"]);
    let body = metrics(port);
    assert!(!body.contains(&free), "{body}");

    // ---- swarm manager ------------------------------------------------------------------
    let swarm_port = free_port();
    let init = d.docker(&[
        "swarm",
        "init",
        "--listen-addr",
        &format!("127.0.0.1:{swarm_port}"),
        "--advertise-addr",
        "127.0.0.1",
    ]);
    assert!(init.ok(), "{init}\n{}", d.log_tail(30));
    let body = poll(Duration::from_secs(30), || {
        let b = metrics(port);
        (value(&b, "berth_swarm_manager") == Some(1.0)
            && value(&b, r#"berth_swarm_nodes{state="ready"}"#) == Some(1.0)
            && value(&b, "berth_reconcile_passes_total").unwrap_or(0.0) >= 1.0)
            .then_some(b)
    })
    .unwrap_or_else(|| panic!("never a ready manager:\n{}", metrics(port)));
    for state in [
        "new", "pending", "running", "complete", "shutdown", "failed",
    ] {
        assert_eq!(
            must(&body, &format!("berth_swarm_tasks{{state=\"{state}\"}}")),
            0.0
        );
    }
    d.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "metrics-svc",
        "--replicas",
        "2",
        "--stop-grace-period",
        "1s",
        "busybox",
        "sleep",
        "1000",
    ]);
    let body = poll(Duration::from_secs(60), || {
        let b = metrics(port);
        (value(&b, r#"berth_swarm_tasks{state="running"}"#) == Some(2.0)).then_some(b)
    })
    .unwrap_or_else(|| {
        panic!(
            "tasks never ran:\n{}\n{}",
            d.docker(&["service", "ps", "--no-trunc", "metrics-svc"]),
            metrics(port)
        )
    });
    eprintln!("--- /metrics (manager) ---\n{body}");
    assert!(must(&body, "berth_scheduler_tasks_placed_total") >= 2.0);
    assert!(must(&body, "berth_scheduler_placement_seconds_total") > 0.0);
    assert!(must(&body, "berth_reconcile_seconds_total") > 0.0);
    // The tasks' containers are containers of this node, with their series.
    assert!(must(&body, r#"berth_containers{state="running"}"#) >= 3.0);
    assert!(
        body.lines()
            .filter(|l| l.starts_with("berth_container_cpu_seconds_total{")
                && l.contains("name=\"metrics-svc."))
            .count()
            >= 2,
        "{body}"
    );

    d.docker_ok(&["service", "rm", "metrics-svc"]);
    let left = d.docker(&["swarm", "leave", "--force"]);
    assert!(left.ok(), "{left}");
    let body = poll(Duration::from_secs(30), || {
        let b = metrics(port);
        (value(&b, "berth_swarm_manager") == Some(0.0)).then_some(b)
    })
    .expect("not a manager after leaving");
    assert!(!body.contains("berth_swarm_tasks{"), "{body}");
    // The daemon's drop removes the containers and stops it; then ip_forward, which the
    // bridge plugin and the swarm's dataplane turn on, is put back.
    drop(d);
    drop(fwd);
}
