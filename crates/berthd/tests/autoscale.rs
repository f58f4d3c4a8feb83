//! CPU autoscaling end to end on a two-node swarm (netns nodes, tag 79): `berth service
//! autoscale` sets the policy as labels the docker CLI shows, bad input is refused naming
//! what is wrong, a CPU-burning load raises the replicas to the maximum and its end brings
//! them back to the minimum after the window, and each decision is a `service` `scale`
//! event with its reason.
//!
//! The load: the replicas spin while a file exists in a host directory bind-mounted into
//! every one of them (all nodes share the host's filesystem). Each replica is held to a
//! quarter of a CPU (`--limit-cpu`), so even at the maximum the test burns less than one of
//! the machine's CPUs, and only until the maximum is reached.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::swarm::{wait_running, Net};
use support::{run_cmd, skip_reason, Daemon, Out};

/// `berth`, built beside berthd (a test of another package cannot name it; it is built
/// once here, a no-op when it is up to date).
fn berth_bin() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Daemon::berthd_bin().parent()?.to_path_buf();
            let target = dir.parent()?.to_path_buf();
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-q", "-p", "berth", "--bin", "berth"]);
            if dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            cmd.env("CARGO_TARGET_DIR", &target);
            let out = run_cmd(&mut cmd, Duration::from_secs(600));
            if !out.ok() {
                eprintln!("cannot build berth: {out}");
                return None;
            }
            Some(dir.join("berth")).filter(|p| p.is_file())
        })
        .clone()
}

fn berth(d: &Daemon, args: &[&str]) -> Out {
    let bin = berth_bin().expect("berth binary");
    let mut c = Command::new(bin);
    c.arg("-H")
        .arg(format!("unix://{}", d.socket.display()))
        .args(args);
    run_cmd(&mut c, Duration::from_secs(60))
}

/// Polls every second (each look runs the docker CLI) until `f` gives a value.
fn poll_slow<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn replicas(m: &Daemon) -> u64 {
    m.docker_ok(&[
        "service",
        "inspect",
        "burn",
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
    ])
    .parse()
    .unwrap_or(0)
}

fn version(m: &Daemon) -> String {
    m.docker_ok(&[
        "service",
        "inspect",
        "burn",
        "--format",
        "{{.Version.Index}}",
    ])
}

fn labels(m: &Daemon) -> serde_json::Map<String, Value> {
    let j = m.docker_ok(&[
        "service",
        "inspect",
        "burn",
        "--format",
        "{{json .Spec.Labels}}",
    ]);
    match serde_json::from_str::<Value>(&j) {
        Ok(Value::Object(o)) => o,
        _ => Default::default(),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The scale events of `burn` between `since` and now, as (old, new, reason).
fn scale_events(m: &Daemon, since: u64) -> Vec<(u64, u64, String)> {
    let out = m.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &(unix_now() + 1).to_string(),
        "--filter",
        "type=service",
        "--format",
        "{{json .}}",
    ]);
    let mut evs = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let e: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(
            e["Type"], "service",
            "--filter type=service let through {line}"
        );
        if e["Action"] != "scale" || e["Actor"]["Attributes"]["name"] != "burn" {
            continue;
        }
        let a = &e["Actor"]["Attributes"];
        let n = |k: &str| a[k].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        evs.push((
            n("replicas.old"),
            n("replicas.new"),
            a["reason"].as_str().unwrap_or_default().to_string(),
        ));
    }
    evs
}

#[test]
fn autoscale_on_cpu_load() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping autoscale_on_cpu_load: {why}");
        return;
    }
    for tool in ["nsenter", "unshare", "ip"] {
        if support::which(tool).is_none() {
            eprintln!("skipping autoscale_on_cpu_load: {tool} missing");
            return;
        }
    }
    if berth_bin().is_none() {
        eprintln!("skipping autoscale_on_cpu_load: no berth binary");
        return;
    }
    let net = Net::new(79, 2);
    let nodes = net.start_nodes("autoscale", &[]);
    net.form_swarm(&nodes);
    let m = &nodes[0];
    let ctl = m.work.join("ctl");
    std::fs::create_dir_all(&ctl).expect("control dir");
    let burn = ctl.join("burn");

    m.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "burn",
        "--replicas",
        "1",
        "--limit-cpu",
        "0.25",
        "--stop-grace-period",
        "1s",
        "--mount",
        &format!("type=bind,src={},dst=/ctl", ctl.display()),
        "busybox",
        "sh",
        "-c",
        "while true; do while [ -e /ctl/burn ]; do :; done; sleep 1; done",
    ]);
    wait_running(m, "burn", 1, "created");

    // ---- bad input: refused, naming what is wrong, and nothing changes ------------------
    let v0 = version(m);
    let refused = |args: &[&str], want: &[&str]| {
        let o = berth(m, args);
        assert!(!o.ok() && o.code.is_some(), "expected a refusal: {o}");
        for w in want {
            assert!(o.stderr.contains(w), "{w:?} not in: {o}");
        }
    };
    // Policies the daemon refuses by label, and flags the CLI itself refuses (missing ones,
    // junk numbers, --off with a policy): each is `berth service autoscale` + these words.
    let cases: [(&str, &[&str]); 8] = [
        (
            "burn --min 3 --max 2 --cpu-percent 10",
            &[
                "berth.autoscale.min=3 and berth.autoscale.max=2",
                "minimum is above the maximum",
            ],
        ),
        (
            "burn --min 0 --max 2 --cpu-percent 10",
            &["invalid label berth.autoscale.min=\"0\""],
        ),
        (
            "burn --min 1 --max 2 --cpu-percent 0",
            &["invalid label berth.autoscale.cpu=\"0\""],
        ),
        (
            "burn --min 1 --max 2 --cpu-percent 10 --window 5x",
            &["invalid label berth.autoscale.window=\"5x\""],
        ),
        (
            "nope --min 1 --max 2 --cpu-percent 10",
            &["service nope not found"],
        ),
        ("burn --min 1", &["--max", "--cpu-percent"]),
        ("burn --min x --max 2 --cpu-percent 10", &["--min"]),
        ("burn --off --min 1", &["--off"]),
    ];
    for (words, want) in cases {
        let mut args = vec!["service", "autoscale"];
        args.extend(words.split(' '));
        refused(&args, want);
    }
    // The docker CLI meets the same checks.
    let o = m.docker_fails(&[
        "service",
        "update",
        "--label-add",
        "berth.autoscale.min=1",
        "--label-add",
        "berth.autoscale.max=2",
        "--label-add",
        "berth.autoscale.cpu=lots",
        "burn",
    ]);
    assert!(
        o.stderr
            .contains("invalid label berth.autoscale.cpu=\"lots\""),
        "{o}"
    );
    let o = m.docker_fails(&[
        "service",
        "update",
        "--label-add",
        "berth.autoscale.max=2",
        "burn",
    ]);
    assert!(
        o.stderr.contains("label berth.autoscale.min is missing"),
        "{o}"
    );
    let o = m.docker_fails(&[
        "service",
        "create",
        "--name",
        "everywhere",
        "--mode",
        "global",
        "--label",
        "berth.autoscale.min=1",
        "--label",
        "berth.autoscale.max=2",
        "--label",
        "berth.autoscale.cpu=50",
        "busybox",
        "sleep",
        "100",
    ]);
    assert!(o.stderr.contains("need a replicated service"), "{o}");
    assert_eq!(version(m), v0, "a refused change changed the service");
    assert!(labels(m).keys().all(|k| !k.starts_with("berth.autoscale.")));
    assert_eq!(m.docker_ok(&["service", "ls", "-q"]).lines().count(), 1);

    // ---- the policy, as labels the docker CLI shows ------------------------------------
    let o = berth(
        m,
        &[
            "service",
            "autoscale",
            "burn",
            "--min",
            "1",
            "--max",
            "3",
            "--cpu-percent",
            "10",
            "--window",
            "6s",
        ],
    );
    assert!(o.ok(), "{o}");
    assert_eq!(o.out(), "burn");
    let l = labels(m);
    for (k, v) in [
        ("berth.autoscale.min", "1"),
        ("berth.autoscale.max", "3"),
        ("berth.autoscale.cpu", "10"),
        ("berth.autoscale.window", "6s"),
    ] {
        assert_eq!(l.get(k).and_then(Value::as_str), Some(v), "{k}: {l:?}");
    }
    let ls = berth(m, &["service", "ls"]);
    assert!(ls.ok(), "{ls}");
    assert!(
        ls.stdout.contains("burn") && ls.stdout.contains("(autoscale 1-3 at 10% cpu)"),
        "{ls}"
    );

    // ---- load: up to the maximum ------------------------------------------------------
    let since = unix_now().saturating_sub(1);
    std::fs::write(&burn, b"").expect("start the load");
    let t = Instant::now();
    let up = poll_slow(Duration::from_secs(120), || {
        (replicas(m) == 3).then_some(())
    });
    if up.is_none() {
        let _ = std::fs::remove_file(&burn);
        panic!(
            "no scale-up to 3 under load; events: {:?}\n{}",
            scale_events(m, since),
            m.log_tail(40)
        );
    }
    eprintln!("load: 3 replicas wanted {:?} after it started", t.elapsed());
    // The new replicas run (on both nodes) while the load lasts, then it ends.
    let by = wait_running(m, "burn", 3, "scaled up");
    let _ = std::fs::remove_file(&burn);
    let t = Instant::now();
    assert_eq!(by.len(), 2, "replicas on both nodes: {by:?}");

    // ---- load gone: back to the minimum after the window -------------------------------
    let down = poll_slow(Duration::from_secs(120), || {
        (replicas(m) == 1).then_some(())
    });
    assert!(
        down.is_some(),
        "no scale-down to 1 without load; events: {:?}\n{}",
        scale_events(m, since),
        m.log_tail(40)
    );
    eprintln!(
        "idle: 1 replica wanted {:?} after the load ended",
        t.elapsed()
    );
    wait_running(m, "burn", 1, "scaled down");

    // ---- every decision is an event with its reason ------------------------------------
    let evs = scale_events(m, since);
    eprintln!("scale events: {evs:#?}");
    assert!(
        evs.iter().any(|(old, new, _)| new > old && *new == 3),
        "no scale-up event to 3: {evs:?}"
    );
    assert!(
        evs.iter().any(|(old, new, _)| new < old),
        "no scale-down event: {evs:?}"
    );
    assert_eq!(evs.last().map(|e| e.1), Some(1), "{evs:?}");
    for (old, new, reason) in &evs {
        assert_ne!(old, new, "{evs:?}");
        assert!(
            reason.starts_with("average cpu ")
                && reason.contains("of target 10%")
                && reason.contains("desired ceil("),
            "{reason}"
        );
    }
    let log = m.log_tail(400);
    assert!(
        log.contains("autoscale: service burn scaled from")
            && log.contains("replicas: average cpu"),
        "decisions are logged: {log}"
    );

    // ---- off: the labels go, the replicas stay ----------------------------------------
    let o = berth(m, &["service", "autoscale", "burn", "--off"]);
    assert!(o.ok(), "{o}");
    assert!(
        labels(m).keys().all(|k| !k.starts_with("berth.autoscale.")),
        "{:?}",
        labels(m)
    );
    assert_eq!(replicas(m), 1);

    m.docker_ok(&["service", "rm", "burn"]);
    let gone = poll_slow(Duration::from_secs(60), || {
        nodes
            .iter()
            .all(|n| support::swarm::task_containers(n, "burn") == 0)
            .then_some(())
    });
    assert!(gone.is_some(), "task containers left after service rm");
    for n in &nodes[1..] {
        n.docker_ok(&["swarm", "leave"]);
    }
    m.docker_ok(&["swarm", "leave", "--force"]);
    drop(nodes);
    drop(net);
    assert!(!Path::new(&burn).exists());
}
