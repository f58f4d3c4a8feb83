//! Simulated nodes for `bench/cluster.sh`: joins N agents to a master with a worker token;
//! each holds a real session (mutual TLS, heartbeats, long polls), accepts its tasks and
//! reports them running at once, without starting containers. Prints, once `--expect`
//! tasks run: the time from the first assignment seen to the last, and the rate.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_cluster::agent::{self, Membership};
use berth_cluster::ca;
use berth_cluster::model::{NodeDescription, TaskState};
use berth_cluster::proto::{Client, SessionRequest, SessionResponse, TaskReport};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Simulated swarm nodes that accept and report tasks without containers")]
struct Args {
    /// The master's address, HOST:PORT.
    #[arg(long)]
    master: String,
    /// A worker join token.
    #[arg(long)]
    token: String,
    /// How many nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Stop once this many tasks have been assigned and reported running.
    #[arg(long, default_value_t = 0)]
    expect: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Each node's CPUs and memory (GiB).
    #[arg(long, default_value_t = 2)]
    cpus: i64,
    #[arg(long, default_value_t = 4)]
    memory_gib: i64,
}

struct Counters {
    running: AtomicU64,
    first: std::sync::Mutex<Option<Instant>>,
    last: std::sync::Mutex<Option<Instant>>,
}

async fn node(i: usize, args: Arc<Args>, c: Arc<Counters>, joined: Arc<AtomicU64>) {
    let desc = NodeDescription {
        hostname: format!("sim{i:04}"),
        nano_cpus: args.cpus * 1_000_000_000,
        memory_bytes: args.memory_gib << 30,
        engine_version: "sim".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
    };
    let m: Membership = loop {
        match agent::join(
            &args.master,
            &args.token,
            desc.clone(),
            &format!("10.255.{}.{}", i / 250, i % 250 + 1),
            "0.0.0.0:1",
        )
        .await
        {
            Ok(m) => break m,
            Err(e) => {
                eprintln!("sim{i:04}: join: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    joined.fetch_add(1, Ordering::Relaxed);
    let client = Client::new(
        &args.master,
        ca::client_config(&m.ca_pem, &m.cert).expect("client config"),
    );
    let mut since = 0;
    // Simulated nodes have no overlays: they take the networking once and ignore it.
    let mut net_since = 0;
    let mut reports: Vec<TaskReport> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let req = SessionRequest {
            description: desc.clone(),
            reports: std::mem::take(&mut reports),
            since,
            net_since,
            role: None,
            usage: Vec::new(),
        };
        let resp: SessionResponse =
            match client.call("/session", &req, Duration::from_secs(30)).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sim{i:04}: session: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
        since = resp.version;
        net_since = resp.net_version;
        for t in resp.tasks.unwrap_or_default() {
            if t.desired_state == TaskState::Running && seen.insert(t.id.clone()) {
                let now = Instant::now();
                c.first.lock().unwrap().get_or_insert(now);
                *c.last.lock().unwrap() = Some(now);
                c.running.fetch_add(1, Ordering::Relaxed);
                reports.push(TaskReport {
                    id: t.id.clone(),
                    state: TaskState::Running,
                    message: "started".into(),
                    err: String::new(),
                    container_id: String::new(),
                    pid: 0,
                    exit_code: 0,
                    healthy: None,
                    addrs: Default::default(),
                });
            }
        }
    }
}

fn main() {
    let args = Arc::new(Args::parse());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let c = Arc::new(Counters {
            running: AtomicU64::new(0),
            first: Default::default(),
            last: Default::default(),
        });
        let joined = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        for i in 0..args.nodes {
            tokio::spawn(node(i, args.clone(), c.clone(), joined.clone()));
        }
        while (joined.load(Ordering::Relaxed) as usize) < args.nodes {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if started.elapsed() > Duration::from_secs(args.timeout) {
                eprintln!(
                    "only {} of {} nodes joined",
                    joined.load(Ordering::Relaxed),
                    args.nodes
                );
                std::process::exit(1);
            }
        }
        println!(
            "joined {} nodes in {:.2} s",
            args.nodes,
            started.elapsed().as_secs_f64()
        );
        if args.expect == 0 {
            std::future::pending::<()>().await;
        }
        while c.running.load(Ordering::Relaxed) < args.expect {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if started.elapsed() > Duration::from_secs(args.timeout) {
                eprintln!(
                    "only {} of {} tasks arrived",
                    c.running.load(Ordering::Relaxed),
                    args.expect
                );
                std::process::exit(1);
            }
        }
        let done_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let first = c.first.lock().unwrap().unwrap();
        let last = c.last.lock().unwrap().unwrap();
        let span = last.duration_since(first).as_secs_f64();
        println!(
            "tasks {} first-to-last {:.3} s rate {:.0} tasks/s done_at_ms {done_at}",
            args.expect,
            span,
            args.expect as f64 / span.max(1e-9)
        );
        // Let the last reports reach the master.
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
}
