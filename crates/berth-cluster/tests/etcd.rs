//! The master's store on a real etcd: each test starts its own `/usr/bin/etcd` (a temporary
//! data directory, free ports) and kills it when done, failed or not.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth_cluster::model::{Node, Service, ServiceSpec, Task, TaskState, TaskStatus, TaskTemplate};
use berth_cluster::store::{Batch, Store};
use berth_cluster::Error;

const ETCD: &str = "/usr/bin/etcd";

/// One etcd server, for one test.
struct Etcd {
    child: Child,
    dir: tempfile::TempDir,
    client_port: u16,
    url: String,
}

impl Etcd {
    fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (client_port, peer_port) = {
            // Both held at once so that they differ; freed just before etcd binds them.
            let a = TcpListener::bind("127.0.0.1:0").unwrap();
            let b = TcpListener::bind("127.0.0.1:0").unwrap();
            (
                a.local_addr().unwrap().port(),
                b.local_addr().unwrap().port(),
            )
        };
        let url = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let mut cmd = Command::new(ETCD);
        cmd.arg("--name")
            .arg("test")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &url])
            .args(["--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--initial-cluster-token",
                &format!("berth-test-{peer_port}"),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent: the
        // closure only asks the kernel to kill etcd if the thread that started it dies, so that
        // even a test process killed outright leaves no etcd behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start /usr/bin/etcd");
        // Made before the wait, so that a failed wait still kills etcd.
        let mut etcd = Etcd {
            child,
            dir,
            client_port,
            url,
        };
        etcd.wait_healthy();
        etcd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// Until `/health` says `"health":"true"` (etcd has a raft leader), 30 s at most.
    fn wait_healthy(&mut self) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("etcd exited ({status}):\n{}", self.log());
            }
            if self.healthy() {
                return;
            }
            if Instant::now() > until {
                panic!("etcd not healthy in 30 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.contains("\"health\":\"true\"")
    }

    fn endpoints(&self) -> Vec<String> {
        vec![self.url.clone()]
    }

    fn store(&self, prefix: &str) -> Store {
        Store::open_etcd(&self.endpoints(), prefix).unwrap()
    }

    /// Revokes a lease from outside, as an operator (or another client) would.
    fn revoke(&self, lease: i64) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = etcd_client::Client::connect(self.endpoints(), None)
                .await
                .unwrap();
            c.lease_revoke(lease).await.unwrap();
        });
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        // The data directory goes with `dir`.
    }
}

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        addr: format!("10.0.0.{}", id.len()),
        ..Default::default()
    }
}

fn service(id: &str, name: &str) -> Service {
    Service {
        id: id.into(),
        spec: ServiceSpec {
            name: name.into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn task(id: &str, service_id: &str, slot: u64) -> Task {
    // Through JSON, so that fields added later (with their serde defaults) need no change here.
    serde_json::from_value(serde_json::json!({
        "id": id,
        "version": 1,
        "created_at": 1,
        "updated_at": 1,
        "service_id": service_id,
        "service_name": "web",
        "slot": slot,
        "node_id": "n1",
        "spec": TaskTemplate::default(),
        "task_version": 1,
        "desired_state": TaskState::Running,
        "status": TaskStatus::new(TaskState::Running, "started", 1),
        "attempt": 0,
        "healthy": null,
        "restart_at": 0,
    }))
    .unwrap()
}

fn sorted<T: Clone, K: Ord>(v: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort_by_key(key);
    v
}

#[test]
fn batches_commit_load_and_delete() {
    let etcd = Etcd::start();
    let mut s = etcd.store("/berth/");
    assert!(s.is_etcd());
    assert_eq!(s.get("swarm").unwrap(), None);
    assert!(s.load().unwrap().nodes.is_empty());

    let nodes = vec![node("n1"), node("n22")];
    let services = vec![service("s1", "web"), service("s2", "db")];
    let tasks = vec![
        task("t1", "s1", 1),
        task("t2", "s1", 2),
        task("t3", "s2", 1),
    ];
    s.commit(&Batch {
        kv: vec![
            ("swarm".into(), "{\"id\":\"x\"}".into()),
            ("peer:fp1".into(), "n1".into()),
            ("peer:fp2".into(), "n22".into()),
            ("peer:fp3".into(), "n1".into()),
        ],
        nodes: nodes.clone(),
        services: services.clone(),
        tasks: tasks.clone(),
        ..Default::default()
    })
    .unwrap();
    s.put_kv("ca_key", "PEM").unwrap();

    // A second client (another master, or this one restarted) reads the same.
    let other = etcd.store("/berth");
    for st in [&s, &other] {
        let l = st.load().unwrap();
        assert_eq!(sorted(&l.nodes, |n| n.id.clone()), nodes);
        assert_eq!(sorted(&l.services, |x| x.id.clone()), services);
        assert_eq!(sorted(&l.tasks, |t| t.id.clone()), tasks);
        assert_eq!(st.get("swarm").unwrap().as_deref(), Some("{\"id\":\"x\"}"));
        assert_eq!(st.get("ca_key").unwrap().as_deref(), Some("PEM"));
        assert_eq!(st.get("peer").unwrap(), None);
    }
    let peers = sorted(&s.peers().unwrap(), |p| p.0.clone());
    assert_eq!(
        peers,
        vec![
            ("fp1".to_string(), "n1".to_string()),
            ("fp2".into(), "n22".into()),
            ("fp3".into(), "n1".into())
        ]
    );
    // Another prefix is another store.
    let elsewhere = etcd.store("/other/");
    assert!(elsewhere.load().unwrap().tasks.is_empty());
    assert_eq!(elsewhere.get("swarm").unwrap(), None);

    s.delete_peer("n1").unwrap();
    assert_eq!(
        other.peers().unwrap(),
        vec![("fp2".to_string(), "n22".to_string())]
    );

    // Updates and deletes in one batch; a key put and deleted in one batch ends deleted,
    // like SQLite, which deletes after it puts.
    let mut t2 = tasks[1].clone();
    t2.desired_state = TaskState::Shutdown;
    t2.version = 2;
    s.commit(&Batch {
        tasks: vec![t2.clone(), tasks[2].clone()],
        tasks_deleted: vec!["t1".into(), "t3".into()],
        services_deleted: vec!["s2".into()],
        nodes_deleted: vec!["n22".into()],
        ..Default::default()
    })
    .unwrap();
    let l = other.load().unwrap();
    assert_eq!(l.tasks, vec![t2]);
    assert_eq!(l.services, vec![services[0].clone()]);
    assert_eq!(l.nodes, vec![nodes[0].clone()]);
    // An empty batch writes nothing and needs no round trip.
    s.commit(&Batch::default()).unwrap();
}

#[test]
fn a_batch_of_300_tasks_commits_and_loads() {
    let etcd = Etcd::start();
    let mut s = etcd.store("/berth/");
    let tasks: Vec<Task> = (0..300)
        .map(|i| task(&format!("t{i:03}"), "s1", i + 1))
        .collect();
    s.commit(&Batch {
        services: vec![service("s1", "web")],
        tasks: tasks.clone(),
        ..Default::default()
    })
    .unwrap();
    let l = etcd.store("/berth/").load().unwrap();
    assert_eq!(sorted(&l.tasks, |t| t.id.clone()), tasks);

    // Half updated, half deleted, in one batch of 300 operations.
    let updated: Vec<Task> = tasks[..150]
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.version = 7;
            t
        })
        .collect();
    s.commit(&Batch {
        tasks: updated.clone(),
        tasks_deleted: tasks[150..].iter().map(|t| t.id.clone()).collect(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(sorted(&s.load().unwrap().tasks, |t| t.id.clone()), updated);

    // More bytes than etcd takes in one request (1.5 MiB): split by size too.
    let big: Vec<Service> = (0..8)
        .map(|i| {
            let mut svc = service(&format!("big{i}"), "big");
            svc.spec
                .labels
                .insert("blob".into(), "x".repeat(300 * 1024));
            svc
        })
        .collect();
    s.commit(&Batch {
        services: big.clone(),
        ..Default::default()
    })
    .unwrap();
    let l = s.load().unwrap();
    assert_eq!(l.services.len(), 9);
    assert_eq!(sorted(&l.services, |x| x.id.clone())[..8].to_vec(), big);
}

#[test]
fn two_campaigners_one_leader_and_a_fenced_stale_store() {
    let etcd = Etcd::start();
    let mut a = etcd.store("/berth/");
    let b = etcd.store("/berth/");
    assert_eq!(a.leader("masters").unwrap(), None);
    assert_eq!(a.fence(), None);

    let la = a.campaign("masters", "10.0.0.1:4243", 2).unwrap();
    assert!(!la.is_lost());
    assert_eq!(a.fence(), Some(la.fence()));
    assert_eq!(
        b.leader("masters").unwrap().as_deref(),
        Some("10.0.0.1:4243")
    );

    // The second candidate is not elected while the first leads, and gives up when told.
    let t0 = Instant::now();
    assert!(b
        .campaign_timeout("masters", "10.0.0.2:4243", 2, Duration::from_millis(1500))
        .unwrap()
        .is_none());
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    // ... longer than a TTL: the leader's keep-alive holds.
    assert!(!la.is_lost());
    assert_eq!(
        a.leader("masters").unwrap().as_deref(),
        Some("10.0.0.1:4243")
    );

    // The leader writes, fenced.
    a.commit(&Batch {
        nodes: vec![node("n1")],
        ..Default::default()
    })
    .unwrap();

    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let lb = b.campaign("masters", "10.0.0.2:4243", 2);
        tx.send(()).unwrap();
        (b, lb)
    });
    assert!(rx.recv_timeout(Duration::from_millis(1000)).is_err());

    let resigned = Instant::now();
    la.resign().unwrap();
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the second candidate elected within 5 s of the resignation");
    eprintln!("elected {:?} after the resignation", resigned.elapsed());
    let (mut b, lb) = waiter.join().unwrap();
    let lb = lb.unwrap();
    assert_eq!(
        a.leader("masters").unwrap().as_deref(),
        Some("10.0.0.2:4243")
    );
    assert_eq!(b.fence(), Some(lb.fence()));
    assert_ne!(a.fence(), b.fence());

    // The deposed master's store is still fenced by its old term: refused, nothing written,
    // in a batch of one txn and in one of several.
    for n in [1, 200] {
        let err = a
            .commit(&Batch {
                tasks: (0..n)
                    .map(|i| task(&format!("stale{i}"), "s1", i))
                    .collect(),
                nodes_deleted: vec!["n1".into()],
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(err, Error::NotLeader(_)), "{err}");
        assert!(err.to_string().contains("lost the leadership"), "{err}");
    }
    assert!(matches!(
        a.delete_peer("n1").unwrap_err(),
        Error::NotLeader(_)
    ));
    assert!(matches!(
        a.put_kv("swarm", "stale").unwrap_err(),
        Error::NotLeader(_)
    ));
    let l = b.load().unwrap();
    assert!(l.tasks.is_empty());
    assert_eq!(l.nodes, vec![node("n1")]);
    assert_eq!(b.get("swarm").unwrap(), None);

    // The new leader writes, a batch of several txns too.
    b.commit(&Batch {
        tasks: (0..200).map(|i| task(&format!("t{i}"), "s1", i)).collect(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(a.load().unwrap().tasks.len(), 200);

    // Dropping the leadership resigns it: nobody leads.
    drop(lb);
    assert_eq!(a.leader("masters").unwrap(), None);
    assert!(matches!(
        b.put_kv("swarm", "x").unwrap_err(),
        Error::NotLeader(_)
    ));
    // Unbound by hand, a store writes unfenced again.
    b.set_fence(None).unwrap();
    b.put_kv("swarm", "x").unwrap();
}

#[test]
fn a_revoked_lease_deposes_the_leader() {
    let etcd = Etcd::start();
    let mut a = etcd.store("/berth/");
    let b = etcd.store("/berth/");
    let la = a.campaign("masters", "a", 2).unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let lb = b.campaign("masters", "b", 2);
        tx.send(()).unwrap();
        (b, lb)
    });
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());

    let revoked = Instant::now();
    etcd.revoke(la.lease_id());
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the second candidate elected within 5 s of the revocation");
    let (mut b, lb) = waiter.join().unwrap();
    let lb = lb.unwrap();
    assert!(
        la.wait_lost(Duration::from_secs(3)),
        "the first leader notices within a TTL"
    );
    eprintln!(
        "lost after {:?}: {}",
        revoked.elapsed(),
        la.lost_reason().unwrap()
    );
    assert_eq!(b.leader("masters").unwrap().as_deref(), Some("b"));

    let err = a.put_kv("swarm", "stale").unwrap_err();
    assert!(matches!(err, Error::NotLeader(_)), "{err}");
    assert_eq!(b.get("swarm").unwrap(), None);
    b.put_kv("swarm", "fresh").unwrap();
    assert_eq!(a.get("swarm").unwrap().as_deref(), Some("fresh"));
    // Dropping a lost leadership is quiet (its lease is gone already).
    drop(la);
    assert!(!lb.is_lost());

    // A campaign in a loop, the way a master's thread waits for its turn and stops when told.
    let c = etcd.store("/berth/");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut tries = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tries += 1;
        let got = c
            .campaign_timeout("masters", "c", 2, Duration::from_millis(300))
            .unwrap();
        assert!(got.is_none());
        if tries == 3 {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    // Its withdrawn candidacies left nothing in the queue: b resigns, nobody leads.
    lb.resign().unwrap();
    assert_eq!(c.leader("masters").unwrap(), None);
}

#[test]
fn a_dead_etcd_is_noticed_in_time() {
    let mut etcd = Etcd::start();
    let mut a = etcd.store("/berth/");
    let la = a.campaign("masters", "a", 2).unwrap();
    etcd.kill();

    let t0 = Instant::now();
    let err = a.put_kv("swarm", "x").unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(7), "{:?}", t0.elapsed());
    let msg = err.to_string();
    assert!(msg.contains(&format!("etcd at {}", etcd.url)), "{msg}");
    // No keep-alive gets through for a TTL: lost.
    assert!(la.wait_lost(Duration::from_secs(5)));
    eprintln!("{msg}; lost: {}", la.lost_reason().unwrap());
    // Dropping it with etcd gone takes at most one call's limit (the revocation), quietly.
    let t0 = Instant::now();
    drop(la);
    assert!(t0.elapsed() < Duration::from_secs(7), "{:?}", t0.elapsed());
}

#[test]
fn an_unreachable_etcd_fails_to_open_naming_it() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let eps = vec![
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port + 1),
    ];
    let t0 = Instant::now();
    let err = match Store::open_etcd(&eps, "/berth/") {
        Ok(_) => panic!("opened an etcd that is not there"),
        Err(e) => e,
    };
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    let msg = err.to_string();
    assert!(msg.contains(&format!("etcd at {}", eps.join(","))), "{msg}");
    assert!(Store::open_etcd(&[], "/berth/").is_err());
}

#[test]
fn sqlite_has_no_election() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("state.db")).unwrap();
    assert!(!s.is_etcd());
    assert!(s.campaign("masters", "a", 2).is_err());
    assert!(s.leader("masters").is_err());
    assert_eq!(s.fence(), None);
    let mut c = s.try_clone().unwrap();
    c.put_kv("swarm", "{}").unwrap();
    assert_eq!(s.get("swarm").unwrap().as_deref(), Some("{}"));
}

#[test]
fn a_first_state_is_written_once_and_can_be_taken_back() {
    let etcd = Etcd::start();
    let mut a = etcd.store("/one/");
    let mut b = etcd.store("/one/");
    let other = etcd.store("/two/");
    let first = |id: &str| Batch {
        kv: vec![("swarm".into(), format!("{{\"id\":\"{id}\"}}"))],
        nodes: vec![node(id)],
        ..Default::default()
    };
    assert!(a.commit_if_absent(&first("n1"), "swarm").unwrap());
    // The second writer finds the key and writes nothing.
    assert!(!b.commit_if_absent(&first("n2"), "swarm").unwrap());
    assert_eq!(b.get("swarm").unwrap().as_deref(), Some("{\"id\":\"n1\"}"));
    assert_eq!(b.load().unwrap().nodes, vec![node("n1")]);
    // Taking it back empties the prefix and no other.
    let mut o = other;
    o.put_kv("swarm", "other").unwrap();
    a.delete_all().unwrap();
    assert_eq!(b.get("swarm").unwrap(), None);
    assert!(b.load().unwrap().nodes.is_empty());
    assert_eq!(o.get("swarm").unwrap().as_deref(), Some("other"));
    assert!(b.commit_if_absent(&first("n2"), "swarm").unwrap());
}
