//! Opt-in Prometheus metrics (`--metrics-addr IP:PORT`, dockerd's flag): plain HTTP, `GET
//! /metrics` in the text exposition format 0.0.4, anything else 404. Each scrape takes a
//! fresh snapshot (containers by state, per-container CPU, memory and network counters, and
//! on a swarm manager its tasks, nodes, scheduler and reconcile figures) on a blocking
//! thread, then renders it with pure functions.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use berth_cluster::model::{NodeState, TaskState};
use berth_cluster::Cluster;
use berth_engine::{Engine, ErrorKind, NetStats, Stats, Status};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every container state, in the order they are rendered.
pub const CONTAINER_STATES: [Status; 7] = [
    Status::Created,
    Status::Running,
    Status::Paused,
    Status::Restarting,
    Status::Removing,
    Status::Exited,
    Status::Dead,
];

/// Every task state, in Swarm's order.
pub const TASK_STATES: [TaskState; 14] = [
    TaskState::New,
    TaskState::Pending,
    TaskState::Assigned,
    TaskState::Accepted,
    TaskState::Preparing,
    TaskState::Ready,
    TaskState::Starting,
    TaskState::Running,
    TaskState::Complete,
    TaskState::Shutdown,
    TaskState::Failed,
    TaskState::Rejected,
    TaskState::Remove,
    TaskState::Orphaned,
];

/// Every node state.
pub const NODE_STATES: [NodeState; 4] = [
    NodeState::Unknown,
    NodeState::Down,
    NodeState::Ready,
    NodeState::Disconnected,
];

/// One running container's figures.
#[derive(Debug, Clone, Default)]
pub struct ContainerSample {
    pub id: String,
    pub name: String,
    /// Whether it has a memory limit of its own (else `stats.memory_limit` is the host's
    /// memory and is not rendered).
    pub memory_limited: bool,
    pub stats: Stats,
}

/// A swarm manager's figures.
#[derive(Debug, Clone, Default)]
pub struct SwarmSample {
    /// Each task's current state.
    pub tasks: Vec<TaskState>,
    /// Each node's state.
    pub nodes: Vec<NodeState>,
    pub placed: u64,
    pub place_nanos: u64,
    pub reconciles: u64,
    pub reconcile_nanos: u64,
}

/// What one scrape renders.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Each container's state.
    pub states: Vec<Status>,
    /// The running (and paused) containers' figures.
    pub containers: Vec<ContainerSample>,
    /// Set when this node is the swarm's manager.
    pub swarm: Option<SwarmSample>,
}

/// A label value in the exposition format: `\`, `"` and newline escaped.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text: `\` and newline escaped.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Nanoseconds as exact decimal seconds.
pub fn seconds(nanos: u64) -> String {
    format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
}

/// `{a="x",b="y"}`, or nothing without labels.
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, pairs: &[(&str, &str)], value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{} {value}", labels(pairs));
}

/// One gauge per state of `all`, counting how many of `have` are in it (0 for none).
fn state_gauge<S: Copy + PartialEq>(
    out: &mut String,
    name: &str,
    help: &str,
    all: &[S],
    have: &[S],
    word: impl Fn(S) -> &'static str,
) {
    family(out, name, "gauge", help);
    for &s in all {
        let n = have.iter().filter(|&&h| h == s).count();
        sample(out, name, &[("state", word(s))], n);
    }
}

/// One network counter per container and interface.
fn net_family(
    out: &mut String,
    containers: &[ContainerSample],
    name: &str,
    help: &str,
    get: impl Fn(&NetStats) -> u64,
) {
    family(out, name, "counter", help);
    for c in containers {
        for (iface, n) in &c.stats.networks {
            sample(
                out,
                name,
                &[("id", &c.id), ("name", &c.name), ("interface", iface)],
                get(n),
            );
        }
    }
}

/// The whole exposition text of a snapshot.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::new();
    state_gauge(
        &mut out,
        "berth_containers",
        "Containers by state.",
        &CONTAINER_STATES,
        &snap.states,
        Status::as_str,
    );

    let cs = &snap.containers;
    let name = "berth_container_cpu_seconds_total";
    family(&mut out, name, "counter", "CPU time used by the container.");
    for c in cs {
        let l = [("id", c.id.as_str()), ("name", c.name.as_str())];
        sample(&mut out, name, &l, seconds(c.stats.cpu_total));
    }
    let name = "berth_container_memory_usage_bytes";
    family(&mut out, name, "gauge", "Memory used by the container.");
    for c in cs {
        let l = [("id", c.id.as_str()), ("name", c.name.as_str())];
        sample(&mut out, name, &l, c.stats.memory_usage);
    }
    let name = "berth_container_memory_limit_bytes";
    family(
        &mut out,
        name,
        "gauge",
        "Memory limit of the container (only containers with one).",
    );
    for c in cs.iter().filter(|c| c.memory_limited) {
        let l = [("id", c.id.as_str()), ("name", c.name.as_str())];
        sample(&mut out, name, &l, c.stats.memory_limit);
    }
    net_family(
        &mut out,
        cs,
        "berth_container_network_receive_bytes_total",
        "Bytes received on the container's interface.",
        |n| n.rx_bytes,
    );
    net_family(
        &mut out,
        cs,
        "berth_container_network_transmit_bytes_total",
        "Bytes sent on the container's interface.",
        |n| n.tx_bytes,
    );
    net_family(
        &mut out,
        cs,
        "berth_container_network_receive_packets_total",
        "Packets received on the container's interface.",
        |n| n.rx_packets,
    );
    net_family(
        &mut out,
        cs,
        "berth_container_network_transmit_packets_total",
        "Packets sent on the container's interface.",
        |n| n.tx_packets,
    );

    render_swarm(&mut out, snap.swarm.as_ref());
    out
}

/// The swarm's families: `berth_swarm_manager` always, the rest only on the manager.
fn render_swarm(out: &mut String, swarm: Option<&SwarmSample>) {
    let name = "berth_swarm_manager";
    family(
        out,
        name,
        "gauge",
        "1 when this node is the swarm's manager, else 0.",
    );
    sample(out, name, &[], u8::from(swarm.is_some()));
    let Some(sw) = swarm else {
        return;
    };
    state_gauge(
        out,
        "berth_swarm_tasks",
        "The swarm's tasks by current state.",
        &TASK_STATES,
        &sw.tasks,
        TaskState::as_str,
    );
    state_gauge(
        out,
        "berth_swarm_nodes",
        "The swarm's nodes by state.",
        &NODE_STATES,
        &sw.nodes,
        NodeState::as_str,
    );
    let counters = [
        (
            "berth_scheduler_tasks_placed_total",
            "Tasks the scheduler placed on a node.",
            sw.placed.to_string(),
        ),
        (
            "berth_scheduler_placement_seconds_total",
            "Time the scheduler spent placing tasks.",
            seconds(sw.place_nanos),
        ),
        (
            "berth_reconcile_passes_total",
            "Reconcile passes the manager made.",
            sw.reconciles.to_string(),
        ),
        (
            "berth_reconcile_seconds_total",
            "Time the manager spent in reconcile passes.",
            seconds(sw.reconcile_nanos),
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        sample(out, name, &[], value);
    }
}

/// `/proc/PID/net/dev`: each interface's counters but the loopback's (as `docker stats`).
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetStats> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((iface, fields)) = line.split_once(':') else {
            continue;
        };
        let iface = iface.trim();
        let f: Vec<u64> = fields
            .split_whitespace()
            .map_while(|v| v.parse().ok())
            .collect();
        if iface.is_empty() || iface == "lo" || f.len() < 16 {
            continue;
        }
        out.insert(
            iface.to_string(),
            NetStats {
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            },
        );
    }
    out
}

/// The interface counters of `pid`'s network namespace, if it is still the one at
/// `sandbox_key` (read first, checked after: a pid reused since the list is never read as
/// the container's).
fn netns_counters(pid: i32, sandbox_key: &str) -> BTreeMap<String, NetStats> {
    use std::os::unix::fs::MetadataExt;
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return BTreeMap::new();
    };
    let same = match (
        std::fs::metadata(format!("/proc/{pid}/ns/net")),
        std::fs::metadata(sandbox_key),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if same {
        parse_net_dev(&text)
    } else {
        BTreeMap::new()
    }
}

/// Takes a snapshot: the engine's containers and their stats, and the swarm's figures when
/// this node is its manager. Blocking: run it on a blocking thread.
pub fn snapshot(engine: &Engine, cluster: &Cluster) -> Snapshot {
    let mut snap = Snapshot::default();
    let list = match engine.list() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("metrics: listing containers: {e}");
            Vec::new()
        }
    };
    for c in &list {
        snap.states.push(c.state.status);
        if !matches!(c.state.status, Status::Running | Status::Paused) {
            continue;
        }
        match engine.stats(&c.id) {
            // A container that stopped since the list has no cgroup figures (its memory
            // limit, always set while it runs, is 0): skipped like one that is gone.
            Ok(stats) if stats.memory_limit == 0 => {}
            Ok(mut stats) => {
                if stats.networks.is_empty() && !c.sandbox_key.is_empty() && c.state.pid > 0 {
                    // The engine has no interface counters yet: the kernel's, as seen from
                    // the container's own network namespace.
                    stats.networks = netns_counters(c.state.pid, &c.sandbox_key);
                }
                snap.containers.push(ContainerSample {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    memory_limited: c.spec.resources.memory > 0,
                    stats,
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => tracing::debug!("metrics: stats of {}: {e}", c.id),
        }
    }
    if let Ok(master) = cluster.master() {
        snap.swarm = Some(SwarmSample {
            tasks: master.tasks().iter().map(|t| t.status.state).collect(),
            nodes: master.nodes().iter().map(|n| n.state).collect(),
            placed: master.placed.load(Ordering::Relaxed),
            place_nanos: master.place_nanos.load(Ordering::Relaxed),
            reconciles: master.reconciles.load(Ordering::Relaxed),
            reconcile_nanos: master.reconcile_nanos.load(Ordering::Relaxed),
        });
    }
    snap
}

/// Whether the shutdown signal has been given.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            // The sender is gone: nobody can stop us any more; run on.
            std::future::pending::<()>().await;
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `GET /metrics`; 404 for any other path, 405 for another method.
async fn handle<B>(
    engine: Arc<Engine>,
    cluster: Arc<Cluster>,
    req: Request<B>,
) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match tokio::task::spawn_blocking(move || snapshot(&engine, &cluster)).await {
        Ok(snap) => {
            let mut r = text(StatusCode::OK, "");
            *r.body_mut() = Full::new(Bytes::from(render(&snap)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(CONTENT_TYPE),
            );
            r
        }
        Err(e) => {
            tracing::warn!("metrics: taking a snapshot: {e}");
            text(StatusCode::INTERNAL_SERVER_ERROR, "snapshot failed\n")
        }
    }
}

/// Serves the metrics on `listener` (plain HTTP/1.1) until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    cluster: Arc<Cluster>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let engine = Arc::clone(&engine);
                    let cluster = Arc::clone(&cluster);
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let engine = Arc::clone(&engine);
                            let cluster = Arc::clone(&cluster);
                            async move { Ok::<_, Infallible>(handle(engine, cluster, req).await) }
                        });
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await
                        {
                            tracing::debug!("metrics connection from {peer} ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("metrics: accepting: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `series` (name and labels as rendered).
    fn value<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    /// Checks the text is well formed: every sample's family has one HELP then one TYPE
    /// before its samples, and a family's lines are together.
    fn check_format(text: &str) {
        assert!(text.ends_with('\n'));
        let mut seen: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut lines = text.lines().peekable();
        while let Some(l) = lines.next() {
            if let Some(rest) = l.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(!seen.contains(&name), "{name} twice");
                let ty = lines.next().expect("TYPE after HELP");
                let kind = ty
                    .strip_prefix(&format!("# TYPE {name} "))
                    .unwrap_or_else(|| panic!("TYPE of {name}: {ty:?}"));
                assert!(kind == "gauge" || kind == "counter", "{ty}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "counter {name}");
                }
                seen.push(name.clone());
                current = name;
                continue;
            }
            assert!(!l.starts_with('#'), "{l}");
            let series = l.rsplit_once(' ').expect("name value").0;
            let name = series.split('{').next().unwrap();
            assert_eq!(name, current, "{l}: sample outside its family");
            assert!(name.starts_with("berth_"), "{name}");
            let v = l.rsplit_once(' ').unwrap().1;
            assert!(v.parse::<f64>().is_ok(), "{l}: value");
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("plain-name_1.2"), "plain-name_1.2");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
        assert_eq!(
            labels(&[("name", "we\"ird"), ("interface", "eth0")]),
            r#"{name="we\"ird",interface="eth0"}"#
        );
        assert_eq!(seconds(0), "0.000000000");
        assert_eq!(seconds(1_500_000_000), "1.500000000");
        assert_eq!(seconds(12_000_000_007), "12.000000007");
    }

    #[test]
    fn net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    5226      46    1    2    0     0          0         0      936      12    3    4    0     0       0          0
";
        let n = parse_net_dev(text);
        assert_eq!(n.keys().collect::<Vec<_>>(), vec!["eth0"]);
        assert_eq!(
            n["eth0"],
            NetStats {
                rx_bytes: 5226,
                rx_packets: 46,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 936,
                tx_packets: 12,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
        assert!(parse_net_dev("").is_empty());
        assert!(parse_net_dev("a\nb\n  eth0: 1 2 3\n").is_empty());
    }

    #[test]
    fn every_state_is_present() {
        let t = render(&Snapshot::default());
        check_format(&t);
        for s in [
            "running",
            "paused",
            "restarting",
            "created",
            "exited",
            "dead",
            "removing",
        ] {
            assert_eq!(
                value(&t, &format!("berth_containers{{state=\"{s}\"}}")),
                Some("0"),
                "{s}\n{t}"
            );
        }
        assert_eq!(value(&t, "berth_swarm_manager"), Some("0"));
        assert!(!t.contains("berth_swarm_tasks"), "{t}");
        assert!(!t.contains("berth_reconcile"), "{t}");

        let t = render(&Snapshot {
            states: vec![Status::Running, Status::Exited, Status::Running],
            ..Default::default()
        });
        assert_eq!(value(&t, r#"berth_containers{state="running"}"#), Some("2"));
        assert_eq!(value(&t, r#"berth_containers{state="exited"}"#), Some("1"));
        assert_eq!(value(&t, r#"berth_containers{state="dead"}"#), Some("0"));
    }

    #[test]
    fn a_containers_lines() {
        let mut networks = std::collections::BTreeMap::new();
        networks.insert(
            "eth0".to_string(),
            NetStats {
                rx_bytes: 1000,
                tx_bytes: 2000,
                rx_packets: 10,
                tx_packets: 20,
                ..Default::default()
            },
        );
        let web = ContainerSample {
            id: "4f2c".into(),
            name: "web".into(),
            memory_limited: true,
            stats: Stats {
                cpu_total: 2_250_000_000,
                memory_usage: 4096,
                memory_limit: 1 << 20,
                networks,
                ..Default::default()
            },
        };
        let db = ContainerSample {
            id: "77aa".into(),
            name: "db".into(),
            memory_limited: false,
            stats: Stats {
                cpu_total: 5,
                memory_usage: 8192,
                memory_limit: 1 << 34,
                ..Default::default()
            },
        };
        let t = render(&Snapshot {
            states: vec![Status::Running, Status::Running],
            containers: vec![web, db],
            swarm: None,
        });
        check_format(&t);
        let w = r#"{id="4f2c",name="web"}"#;
        let wi = r#"{id="4f2c",name="web",interface="eth0"}"#;
        let get = |name: &str, l: &str| value(&t, &format!("{name}{l}"));
        assert_eq!(
            get("berth_container_cpu_seconds_total", w),
            Some("2.250000000")
        );
        assert_eq!(get("berth_container_memory_usage_bytes", w), Some("4096"));
        assert_eq!(
            get("berth_container_memory_limit_bytes", w),
            Some("1048576")
        );
        assert_eq!(
            get("berth_container_network_receive_bytes_total", wi),
            Some("1000")
        );
        assert_eq!(
            get("berth_container_network_transmit_bytes_total", wi),
            Some("2000")
        );
        assert_eq!(
            get("berth_container_network_receive_packets_total", wi),
            Some("10")
        );
        assert_eq!(
            get("berth_container_network_transmit_packets_total", wi),
            Some("20")
        );
        let d = r#"{id="77aa",name="db"}"#;
        assert_eq!(
            get("berth_container_cpu_seconds_total", d),
            Some("0.000000005")
        );
        assert_eq!(get("berth_container_memory_usage_bytes", d), Some("8192"));
        // No limit of its own: the host's memory is not a limit.
        assert_eq!(get("berth_container_memory_limit_bytes", d), None);
        assert!(!t.contains(r#"id="77aa",name="db",interface"#), "{t}");
    }

    #[test]
    fn a_managers_lines() {
        let t = render(&Snapshot {
            swarm: Some(SwarmSample {
                tasks: vec![TaskState::Running, TaskState::Running, TaskState::Failed],
                nodes: vec![NodeState::Ready, NodeState::Down],
                placed: 3,
                place_nanos: 1_000_000,
                reconciles: 40,
                reconcile_nanos: 2_000_000_000,
            }),
            ..Default::default()
        });
        check_format(&t);
        assert_eq!(value(&t, "berth_swarm_manager"), Some("1"));
        for s in TASK_STATES {
            let want = match s {
                TaskState::Running => "2",
                TaskState::Failed => "1",
                _ => "0",
            };
            let series = format!("berth_swarm_tasks{{state=\"{}\"}}", s.as_str());
            assert_eq!(value(&t, &series), Some(want), "{series}");
        }
        assert_eq!(
            value(&t, r#"berth_swarm_tasks{state="running"}"#),
            Some("2")
        );
        assert_eq!(value(&t, r#"berth_swarm_nodes{state="ready"}"#), Some("1"));
        assert_eq!(value(&t, r#"berth_swarm_nodes{state="down"}"#), Some("1"));
        assert_eq!(
            value(&t, r#"berth_swarm_nodes{state="unknown"}"#),
            Some("0")
        );
        assert_eq!(value(&t, "berth_scheduler_tasks_placed_total"), Some("3"));
        assert_eq!(
            value(&t, "berth_scheduler_placement_seconds_total"),
            Some("0.001000000")
        );
        assert_eq!(value(&t, "berth_reconcile_passes_total"), Some("40"));
        assert_eq!(
            value(&t, "berth_reconcile_seconds_total"),
            Some("2.000000000")
        );
    }

    #[test]
    fn state_lists_are_complete() {
        // A state added to the models breaks these exhaustive matches: add it to its list.
        for s in CONTAINER_STATES {
            match s {
                Status::Created
                | Status::Running
                | Status::Paused
                | Status::Restarting
                | Status::Removing
                | Status::Exited
                | Status::Dead => {}
            }
        }
        for s in NODE_STATES {
            match s {
                NodeState::Unknown
                | NodeState::Down
                | NodeState::Ready
                | NodeState::Disconnected => {}
            }
        }
        for s in TASK_STATES {
            match s {
                TaskState::New
                | TaskState::Pending
                | TaskState::Assigned
                | TaskState::Accepted
                | TaskState::Preparing
                | TaskState::Ready
                | TaskState::Starting
                | TaskState::Running
                | TaskState::Complete
                | TaskState::Shutdown
                | TaskState::Failed
                | TaskState::Rejected
                | TaskState::Remove
                | TaskState::Orphaned => {}
            }
        }
        // No state twice, so each variant above is in its list once.
        fn distinct(words: Vec<&str>) {
            let mut sorted = words.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), words.len(), "{words:?}");
        }
        distinct(CONTAINER_STATES.iter().map(|s| s.as_str()).collect());
        distinct(NODE_STATES.iter().map(|s| s.as_str()).collect());
        distinct(TASK_STATES.iter().map(|s| s.as_str()).collect());
    }
}
