//! The client and the wire types against the real peer: a private dockerd (its own socket,
//! data root, exec root and pidfile under a short /tmp dir), driven only through
//! `berth_api::Client`: ping and negotiation, version, info, image import with a chunked
//! tar body, create, attach (101 upgrade) before start, wait, framed output, logs, inspect,
//! ps with filters, exec, top, stats, volumes, system df, events up to `die`, removal.
//!
//! Needs root and `dockerd` (Debian docker.io, default runc runtime); skips with a message
//! otherwise. [`Dockerd`]'s `Drop` takes everything down even when a check fails: the
//! containers, the daemon, its containerd and shims, mounts under the tempdir, the cgroups
//! of the test's containers and the parent `docker` cgroups the daemon created.

// berth-runc's test support names berth-runc's binary with `env!`, which only that crate's
// tests define; this crate needs only its busybox rootfs, so that one name is shadowed.
macro_rules! env {
    ("CARGO_BIN_EXE_berth-runc") => {
        "/nonexistent/berth-runc"
    };
    ($name:literal) => {
        ::std::env!($name)
    };
}

#[path = "../../berth-runc/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use berth_api::client::{with_query, Request};
use berth_api::stream::{FrameReader, RAW_STREAM};
use berth_api::types::*;
use berth_api::version::VersionError;
use berth_api::{ApiVersion, Client, Filters};
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

const IMAGE: &str = "bb:test";
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn client_and_types_against_dockerd() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping dockerd test: needs root");
        return;
    }
    if !on_path("dockerd") {
        eprintln!("skipping dockerd test: `dockerd` is not installed (scripts/deps.sh)");
        return;
    }
    let started = Instant::now();
    let d = Dockerd::start();
    let mut c = Client::new(&d.host).unwrap().with_timeout(TIMEOUT);

    // 1. Ping: the headers the CLI negotiates with, then speak min(ours, theirs).
    let ping = c.ping().unwrap();
    assert_eq!(ping.api_version.as_deref(), Some("1.41"), "{ping:?}");
    assert_eq!(ping.os_type.as_deref(), Some("linux"));
    // `Swarm` came with dockerd 24; 20.10 does not send it.
    assert!(
        matches!(ping.swarm.as_deref(), None | Some("inactive")),
        "{ping:?}"
    );
    let resp = c.request(Request::new("GET", "/_ping")).unwrap();
    assert!(
        resp.header("Cache-Control")
            .unwrap_or_default()
            .contains("no-cache"),
        "{:?}",
        resp.headers
    );
    assert_eq!(resp.bytes().unwrap(), b"OK");
    c.negotiate().unwrap();
    assert_eq!(c.version(), Some(ApiVersion::new(1, 41)));

    // 2. Version, and dockerd's "too new" message is ours word for word.
    let v: VersionResponse = c.get("/version").unwrap();
    assert_eq!(v.api_version, "1.41");
    assert_eq!(v.os, "linux");
    assert!(!v.min_api_version.is_empty() && !v.kernel_version.is_empty());
    assert!(v.components.iter().any(|c| c.name == "Engine"), "{v:?}");
    let future = Client::new(&d.host)
        .unwrap()
        .with_version(ApiVersion::new(1, 99));
    let err = future.get::<Value>("/version").unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    let ours = VersionError::TooNew {
        requested: "1.99".into(),
        max: "1.41".into(),
    };
    assert_eq!(err.api_error().unwrap().message, ours.to_string());

    // 3. Info.
    let info: SystemInfo = c.get("/info").unwrap();
    assert_eq!(info.driver, "vfs");
    assert_eq!(Path::new(&info.docker_root_dir), d.path().join("data"));
    assert_eq!(info.os_type, "linux");
    assert!(info.ncpu > 0 && info.mem_total > 0, "{info:?}");
    assert_eq!(info.swarm.local_node_state, "inactive");
    assert!(info.runtimes.contains_key("runc"), "{:?}", info.runtimes);

    // 4. Import the busybox rootfs, streamed as a chunked body.
    let rootfs = support::busybox_rootfs();
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tar");
    let body = tar.stdout.take().expect("tar stdout");
    let resp = c
        .request(
            Request::new(
                "POST",
                &with_query(
                    "/images/create",
                    &[("fromSrc", "-"), ("repo", "bb"), ("tag", "test")],
                ),
            )
            .reader("application/x-tar", body),
        )
        .unwrap();
    let msgs: Vec<JsonMessage> = resp.json_lines().collect::<Result<_, _>>().unwrap();
    assert!(tar.wait().unwrap().success());
    assert!(msgs.iter().all(|m| m.error_message().is_none()), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m
            .status
            .as_deref()
            .is_some_and(|s| s.starts_with("sha256:"))),
        "{msgs:?}"
    );
    let img: ImageInspect = c.get(&format!("/images/{IMAGE}/json")).unwrap();
    assert_eq!(img.repo_tags, [IMAGE]);
    assert_eq!(img.root_fs.layers.len(), 1);
    assert!(
        img.container_config.is_some(),
        "API 1.41 keeps ContainerConfig"
    );
    let hist: Vec<HistoryItem> = c.get(&format!("/images/{IMAGE}/history")).unwrap();
    assert_eq!(hist[0].comment, "Imported from -");
    let images: Vec<ImageSummary> = c.get("/images/json").unwrap();
    assert!(images
        .iter()
        .any(|i| i.id == img.id && i.repo_tags == [IMAGE]));

    // 5. Events, subscribed before anything happens to the container.
    let mut filters = Filters::new();
    filters.add("type", "container");
    let events = c
        .request(Request::new(
            "GET",
            &with_query("/events", &[("filters", &filters.to_json())]),
        ))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for e in events.json_lines::<EventMessage>() {
            if tx.send(e).is_err() {
                break;
            }
        }
    });

    // 6. Create (a body like the CLI's), attach before start, wait, start.
    let name = format!("berth-api-{}", std::process::id());
    let req = ContainerCreateRequest {
        config: ContainerConfig {
            image: IMAGE.into(),
            cmd: Some(StrSlice::new([
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ])),
            env: Some(vec!["A=1".into()]),
            attach_stdout: true,
            attach_stderr: true,
            labels: Some([("berth.test".to_string(), "api".to_string())].into()),
            ..Default::default()
        },
        host_config: Some(HostConfig {
            network_mode: "none".into(),
            resources: Resources {
                memory: 64 << 20,
                pids_limit: Some(50),
                ..Default::default()
            },
            ..Default::default()
        }),
        networking_config: None,
    };
    let created: ContainerCreateResponse = c
        .post(&with_query("/containers/create", &[("name", &name)]), &req)
        .unwrap();
    let id = created.id.clone();
    d.track(&id);
    assert_eq!(id.len(), 64, "{created:?}");

    let up = c
        .upgrade(Request::new(
            "POST",
            &format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1"),
        ))
        .unwrap();
    assert_eq!(up.status, 101);
    assert_eq!(up.header("Content-Type"), Some(RAW_STREAM));
    let attached = thread::spawn(move || FrameReader::new(up).collect());
    let wait = c
        .request(Request::new(
            "POST",
            &format!("/containers/{id}/wait?condition=next-exit"),
        ))
        .unwrap();
    assert_eq!(
        c.post_empty(&format!("/containers/{id}/start")).unwrap(),
        204
    );
    let waited: ContainerWaitResponse = wait.json().unwrap();
    assert_eq!(waited.status_code, 3, "{waited:?}");
    let (out, err) = attached.join().unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&out), "out\n");
    assert_eq!(String::from_utf8_lossy(&err), "err\n");

    // 7. Logs, framed the same way.
    let (out, err) = c
        .request(Request::new(
            "GET",
            &format!("/containers/{id}/logs?stdout=1&stderr=1"),
        ))
        .unwrap()
        .frames()
        .collect()
        .unwrap();
    assert_eq!(
        (out.as_slice(), err.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );

    // 8. Inspect, parsed and written back with objects where clients need them.
    let ins: ContainerInspect = c.get(&format!("/containers/{name}/json")).unwrap();
    assert_eq!(ins.id, id);
    assert_eq!(ins.name, format!("/{name}"));
    assert_eq!(ins.state.status, "exited");
    assert_eq!(ins.state.exit_code, 3);
    assert!(!ins.state.running && !ins.state.oom_killed);
    assert_eq!(ins.path, "sh");
    assert_eq!(ins.args, ["-c", "echo out; echo err >&2; exit 3"]);
    assert!(ins
        .config
        .env
        .as_ref()
        .unwrap()
        .contains(&"A=1".to_string()));
    assert_eq!(ins.config.labels.as_ref().unwrap()["berth.test"], "api");
    assert_eq!(ins.host_config.resources.memory, 64 << 20);
    assert_eq!(ins.host_config.resources.pids_limit, Some(50));
    assert_eq!(ins.host_config.network_mode, "none");
    assert!(ins.network_settings.networks.contains_key("none"));
    assert!(ins.log_path.ends_with("-json.log"), "{}", ins.log_path);
    let back = serde_json::to_value(&ins).unwrap();
    assert!(back["NetworkSettings"]["Ports"].is_object());
    assert!(back["NetworkSettings"]["Networks"].is_object());

    // 9. ps with a name filter.
    let mut f = Filters::new();
    f.add("name", &name);
    let ps: Vec<ContainerSummary> = c
        .get(&with_query(
            "/containers/json",
            &[("all", "1"), ("filters", &f.to_json())],
        ))
        .unwrap();
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].names, [format!("/{name}")]);
    assert_eq!(ps[0].state, "exited");
    assert!(ps[0].status.starts_with("Exited (3) "), "{}", ps[0].status);
    assert_eq!(ps[0].labels["berth.test"], "api");

    // 10. Events up to `die`, with the legacy fields.
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    let die = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no die event ({e}); saw {seen:?}"))
            .unwrap();
        if e.actor.id != id {
            continue;
        }
        seen.push(e.action.clone());
        if e.action == "die" {
            break e;
        }
    };
    assert!(
        seen.starts_with(&[
            "create".to_string(),
            "attach".to_string(),
            "start".to_string()
        ]),
        "{seen:?}"
    );
    assert_eq!(die.r#type, "container");
    assert_eq!(die.actor.attributes["exitCode"], "3");
    assert_eq!(die.actor.attributes["name"], name);
    assert_eq!(
        (die.status.as_str(), die.id.as_str(), die.from.as_str()),
        ("die", id.as_str(), IMAGE)
    );
    assert_eq!(die.scope, "local");
    assert!(die.time_nano / 1_000_000_000 == die.time, "{die:?}");

    // 11. Exec, top and stats in a running container.
    let req2 = ContainerCreateRequest {
        config: ContainerConfig {
            image: IMAGE.into(),
            cmd: Some(StrSlice::new(["sleep", "100"])),
            ..Default::default()
        },
        host_config: Some(HostConfig {
            network_mode: "none".into(),
            ..Default::default()
        }),
        networking_config: None,
    };
    let c2: ContainerCreateResponse = c.post("/containers/create", &req2).unwrap();
    d.track(&c2.id);
    c.post_empty(&format!("/containers/{}/start", c2.id))
        .unwrap();
    let exec: IdResponse = c
        .post(
            &format!("/containers/{}/exec", c2.id),
            &ExecCreateRequest {
                attach_stdout: true,
                attach_stderr: true,
                cmd: Some(StrSlice::new([
                    "sh",
                    "-c",
                    "echo hi; echo oops >&2; exit 5",
                ])),
                ..Default::default()
            },
        )
        .unwrap();
    let up = c
        .upgrade(
            Request::new("POST", &format!("/exec/{}/start", exec.id))
                .json(&ExecStartRequest::default())
                .unwrap(),
        )
        .unwrap();
    let (out, err) = FrameReader::new(up).collect().unwrap();
    assert_eq!(
        (out.as_slice(), err.as_slice()),
        (&b"hi\n"[..], &b"oops\n"[..])
    );
    let ei: ExecInspect = c.get(&format!("/exec/{}/json", exec.id)).unwrap();
    assert_eq!(ei.exit_code, Some(5), "{ei:?}");
    assert!(!ei.running);
    assert_eq!(ei.container_id, c2.id);
    assert_eq!(ei.process_config.entrypoint, "sh");
    let top: ContainerTopResponse = c.get(&format!("/containers/{}/top", c2.id)).unwrap();
    let cmd_col = top.titles.iter().position(|t| t == "CMD").unwrap();
    assert!(
        top.processes.iter().any(|p| p[cmd_col] == "sleep 100"),
        "{top:?}"
    );
    let stats: StatsResponse = c
        .get(&format!("/containers/{}/stats?stream=0", c2.id))
        .unwrap();
    assert_eq!(stats.id, c2.id);
    assert!(stats.pids_stats.current >= 1, "{stats:?}");
    assert!(stats.cpu_stats.cpu_usage.total_usage > 0, "{stats:?}");
    assert!(stats.memory_stats.usage > 0, "{stats:?}");
    assert_eq!(
        c.post_empty(&format!("/containers/{}/kill", c2.id))
            .unwrap(),
        204
    );
    assert_eq!(
        c.delete(&format!("/containers/{}?force=1", c2.id)).unwrap(),
        204
    );

    // 12. Volumes and system df.
    let vol: Volume = c
        .post(
            "/volumes/create",
            &VolumeCreateRequest {
                name: "berth-api-vol".into(),
                labels: Some([("k".to_string(), "v".to_string())].into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (vol.name.as_str(), vol.driver.as_str()),
        ("berth-api-vol", "local")
    );
    let vols: VolumeListResponse = c.get("/volumes").unwrap();
    assert!(vols
        .volumes
        .iter()
        .any(|v| v.name == "berth-api-vol" && v.labels["k"] == "v"));
    let df: SystemDfResponse = c.get("/system/df").unwrap();
    assert!(df.images.iter().any(|i| i.id == img.id), "{df:?}");
    assert!(df.containers.iter().any(|x| x.id == id));
    assert_eq!(c.delete("/volumes/berth-api-vol").unwrap(), 204);

    // 13. Remove; then Docker's 404 in Docker's words.
    assert_eq!(c.delete(&format!("/containers/{id}?v=1")).unwrap(), 204);
    let err = c
        .get::<ContainerInspect>(&format!("/containers/{id}/json"))
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(
        err.api_error().unwrap().message,
        format!("No such container: {id}")
    );
    let removed: Vec<ImageDeleteResponseItem> = c.delete_json(&format!("/images/{IMAGE}")).unwrap();
    assert!(
        removed.iter().any(|r| r.untagged.as_deref() == Some(IMAGE)),
        "{removed:?}"
    );
    assert!(removed
        .iter()
        .any(|r| r.deleted.as_deref() == Some(img.id.as_str())));

    eprintln!("dockerd client test took {:.1?}", started.elapsed());
}

/// A private dockerd with everything under one short tempdir; taken down on drop.
struct Dockerd {
    dir: TempDir,
    child: Child,
    host: String,
    /// Parent `docker` cgroup dirs that existed before the daemon started.
    cgroup_parents_before: BTreeSet<PathBuf>,
    /// Containers the test created, for cleanup of their cgroups.
    ids: Mutex<Vec<String>>,
}

impl Dockerd {
    fn start() -> Dockerd {
        // Short: containerd's sockets live under the exec root (108-byte limit).
        let dir = tempfile::Builder::new()
            .prefix("ba")
            .tempdir_in("/tmp")
            .expect("create dockerd tempdir under /tmp");
        let d = dir.path();
        let log = fs::File::create(d.join("dockerd.log")).expect("create dockerd.log");
        let log2 = log.try_clone().expect("dup dockerd.log");
        let cgroup_parents_before = cgroup_parents();
        let mut cmd = Command::new("dockerd");
        cmd.arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
            ])
            .args(["--storage-driver", "vfs"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let mut daemon = Dockerd {
            host: format!("unix://{}", d.join("docker.sock").display()),
            dir,
            child,
            cgroup_parents_before,
            ids: Mutex::new(Vec::new()),
        };
        daemon.wait_ready();
        daemon
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn client(&self) -> Client {
        Client::new(&self.host)
            .expect("parse host")
            .with_timeout(Duration::from_secs(20))
    }

    fn track(&self, id: &str) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.push(id.to_string());
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dockerd exited early ({status})\n{}", self.log_tail(40));
            }
            if self.client().ping().is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!("dockerd did not answer /_ping\n{}", self.log_tail(40));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(self.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        format!("--- last {n} lines of dockerd.log ---\n{tail}")
    }

    /// Takes everything down; never panics.
    fn shutdown(&mut self) {
        let d = self.path().to_path_buf();
        let mut ids: Vec<String> = self.ids.lock().map(|i| i.clone()).unwrap_or_default();
        if matches!(self.child.try_wait(), Ok(None)) {
            let c = self.client();
            if let Ok(list) = c.get::<Vec<ContainerSummary>>("/containers/json?all=1") {
                for s in list {
                    if let Err(e) = c.delete(&format!("/containers/{}?force=1&v=1", s.id)) {
                        eprintln!("cleanup: remove {}: {e}", s.id);
                    }
                    ids.push(s.id);
                }
            }
            let pid = Pid::from_raw(self.child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            if wait_bounded(&mut self.child, Duration::from_secs(20)).is_none() {
                eprintln!("cleanup: dockerd did not exit on SIGTERM; killing it");
                let _ = kill(pid, Signal::SIGKILL);
                let _ = self.child.wait();
            }
        }
        // Whatever the daemon failed to remove: the containers' processes...
        for id in &ids {
            for dir in container_cgroups(id) {
                let _ = fs::write(dir.join("freezer.state"), "THAWED");
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for p in procs.split_whitespace().filter_map(|p| p.parse().ok()) {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
            }
        }
        // ... containerd, shims and anything else started with our paths...
        let needle = format!("{}/", d.display());
        for _ in 0..50 {
            let pids = pids_mentioning(&needle);
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = kill(p, Signal::SIGKILL);
            }
            thread::sleep(Duration::from_millis(100));
        }
        // ... mounts under the tempdir, deepest first...
        for _ in 0..3 {
            let mut mounts = mounts_under(&d);
            if mounts.is_empty() {
                break;
            }
            mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
            for m in mounts {
                if let Err(e) = umount2(&m, MntFlags::MNT_DETACH) {
                    eprintln!("cleanup: umount {}: {e}", m.display());
                }
            }
        }
        // ... and cgroups: the containers' own, then parents the daemon created.
        for id in &ids {
            for dir in container_cgroups(id) {
                let _ = fs::remove_dir(dir);
            }
        }
        for parent in cgroup_parents() {
            if !self.cgroup_parents_before.contains(&parent) {
                let _ = fs::remove_dir(&parent);
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.shutdown();
        if let Err(e) = fs::remove_dir_all(self.path()) {
            eprintln!("cleanup: remove {}: {e}", self.path().display());
        }
    }
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// `/sys/fs/cgroup/*/docker` (v1, hybrid) and `/sys/fs/cgroup/docker` (v2) that exist now.
fn cgroup_parents() -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let base = Path::new("/sys/fs/cgroup");
    if base.join("docker").is_dir() {
        found.insert(base.join("docker"));
    }
    for e in fs::read_dir(base).into_iter().flatten().flatten() {
        let p = e.path().join("docker");
        if p.is_dir() {
            found.insert(p);
        }
    }
    found
}

fn container_cgroups(id: &str) -> Vec<PathBuf> {
    cgroup_parents()
        .into_iter()
        .map(|p| p.join(id))
        .filter(|p| p.is_dir())
        .collect()
}

/// Processes (other than this one) whose command line mentions `needle`.
fn pids_mentioning(needle: &str) -> Vec<Pid> {
    let me = std::process::id();
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let mut raw = Vec::new();
        let Ok(mut f) = fs::File::open(e.path().join("cmdline")) else {
            continue;
        };
        if f.read_to_end(&mut raw).is_err() {
            continue;
        }
        if String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .contains(needle)
        {
            pids.push(Pid::from_raw(pid as i32));
        }
    }
    pids
}

/// Mount points at or below `dir` (mountinfo's octal escapes undone).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
