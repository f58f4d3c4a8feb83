//! The engine's container lifecycle with real containers: attach before start, output and
//! exit code, logs from the file once the shim is gone, exec, stop with a timeout, pause,
//! a reopened engine finding a running container again, and removal leaving no mount,
//! cgroup or directory behind.
//!
//! Needs root, /usr/bin/busybox and the workspace's debug `berth-runc` and `berth-shim`
//! (built by `cargo test --workspace`); skips with a message otherwise.

use std::io::Read;
use std::path::{Path, PathBuf};

use berth_engine::*;

struct Env {
    data: tempfile::TempDir,
    exec: tempfile::TempDir,
    bins: PathBuf,
}

impl Env {
    fn new() -> Option<Env> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping engine lifecycle test: needs root");
            return None;
        }
        if !Path::new("/usr/bin/busybox").is_file() {
            eprintln!("skipping engine lifecycle test: /usr/bin/busybox missing");
            return None;
        }
        let exe = std::env::current_exe().ok()?;
        let bins = exe.parent()?.parent()?.to_path_buf();
        for b in ["berth-runc", "berth-shim"] {
            if !bins.join(b).is_file() {
                eprintln!(
                    "skipping engine lifecycle test: {b} not built in {}",
                    bins.display()
                );
                return None;
            }
        }
        Some(Env {
            data: tempfile::Builder::new()
                .prefix("berth-engine-")
                .tempdir_in("/var/tmp")
                .ok()?,
            exec: tempfile::Builder::new()
                .prefix("be-")
                .tempdir_in("/run")
                .ok()?,
            bins,
        })
    }

    fn engine(&self) -> Engine {
        Engine::open(EngineConfig {
            data_root: self.data.path().to_path_buf(),
            exec_root: self.exec.path().to_path_buf(),
            runtime: self.bins.join("berth-runc"),
            shim: self.bins.join("berth-shim"),
            network: berth_engine::NetConfig::no_bridge(),
        })
        .expect("open engine")
    }
}

fn spec(cmd: &[&str]) -> ContainerSpec {
    ContainerSpec {
        image: "busybox".into(),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

fn read_all(mut s: Stream) -> (String, String) {
    let mut raw = Vec::new();
    s.conn.read_to_end(&mut raw).expect("read stream");
    let (o, e) = demux(&raw[..]).expect("demux");
    (
        String::from_utf8_lossy(&o).into_owned(),
        String::from_utf8_lossy(&e).into_owned(),
    )
}

fn mounts_under(p: &Path) -> usize {
    let want = p.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&want))
        .count()
}

#[test]
fn lifecycle_of_real_containers() {
    let Some(env) = Env::new() else { return };
    let engine = env.engine();
    engine
        .image_bootstrap("busybox")
        .expect("bootstrap busybox");

    // Attach and wait before start, as `docker run` does.
    let (id, _) = engine
        .create(spec(&["sh", "-c", "echo out; echo err >&2; exit 3"]))
        .expect("create");
    let stream = engine
        .attach(
            &id,
            AttachOptions {
                stdout: true,
                stderr: true,
                stream: true,
                ..Default::default()
            },
        )
        .expect("attach");
    let waiter = engine.wait(&id, WaitCondition::NextExit).expect("wait");
    engine.start(&id).expect("start");
    assert_eq!(read_all(stream), ("out\n".to_string(), "err\n".to_string()));
    assert_eq!(waiter.wait().exit_code, 3);
    let c = engine.inspect(&id).expect("inspect");
    assert_eq!(c.state.status, Status::Exited);
    assert_eq!(c.state.exit_code, 3);
    // Logs once the shim has gone come from the json-file.
    let logs = engine
        .logs(
            &id,
            LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        )
        .expect("logs");
    assert_eq!(read_all(logs), ("out\n".to_string(), "err\n".to_string()));
    // A second start runs it again and appends to the log.
    let w = engine.wait(&id, WaitCondition::NextExit).expect("wait");
    engine.start(&id).expect("start again");
    assert_eq!(w.wait().exit_code, 3);
    let logs = engine
        .logs(
            &id,
            LogsOptions {
                stdout: true,
                ..Default::default()
            },
        )
        .expect("logs");
    assert_eq!(read_all(logs).0, "out\nout\n");

    // A long-running one: exec, pause, stop after the timeout (sh as pid 1 ignores TERM).
    let mut s = spec(&["sh", "-c", "while true; do sleep 1; done"]);
    s.name = Some("sleeper".into());
    let (long, _) = engine.create(s).expect("create sleeper");
    assert!(matches!(
        engine.create(ContainerSpec {
            name: Some("sleeper".into()),
            ..spec(&["true"])
        }),
        Err(Error::Conflict(_))
    ));
    engine.start("sleeper").expect("start sleeper");
    assert!(matches!(
        engine.start("sleeper"),
        Err(Error::NotModified(_))
    ));
    let exec = engine
        .exec_create(
            "sleeper",
            ExecSpec {
                cmd: vec!["sh".into(), "-c".into(), "hostname; exit 5".into()],
                attach_stdout: true,
                ..Default::default()
            },
        )
        .expect("exec create");
    let out = engine
        .exec_start(&exec, false)
        .expect("exec start")
        .expect("stream");
    assert_eq!(read_all(out).0, format!("{}\n", &long[..12]));
    let mut code = None;
    for _ in 0..200 {
        let e = engine.exec_inspect(&exec).expect("exec inspect");
        if !e.running {
            code = e.exit_code;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(code, Some(5));
    let top = engine.top("sleeper", None).expect("top");
    assert!(top
        .processes
        .iter()
        .any(|p| p.last().is_some_and(|c| c.contains("while true"))));
    let st = engine.stats("sleeper").expect("stats");
    assert!(st.pids >= 1 && st.memory_usage > 0, "{st:?}");
    engine.pause("sleeper").expect("pause");
    assert_eq!(
        engine.inspect("sleeper").unwrap().state.status,
        Status::Paused
    );
    engine.unpause("sleeper").expect("unpause");
    assert!(matches!(
        engine.remove("sleeper", false, false),
        Err(Error::Conflict(_))
    ));

    // A new engine on the same state finds the running container again.
    let pid = engine.inspect("sleeper").unwrap().state.pid;
    drop(engine);
    let engine = env.engine();
    let c = engine.inspect("sleeper").expect("inspect after reopen");
    assert_eq!(c.state.status, Status::Running);
    assert_eq!(c.state.pid, pid);
    engine.stop("sleeper", Some(1), None).expect("stop");
    let c = engine.inspect("sleeper").unwrap();
    assert_eq!(c.state.status, Status::Exited);
    assert_eq!(c.state.exit_code, 137);
    assert!(matches!(
        engine.stop("sleeper", Some(1), None),
        Err(Error::NotModified(_))
    ));

    for id in [&id, &long] {
        engine.remove(id, false, true).expect("remove");
        assert!(matches!(engine.inspect(id), Err(Error::NoSuchContainer(_))));
        assert!(!Path::new(&format!("/sys/fs/cgroup/memory/berth/{id}")).exists());
    }
    assert_eq!(mounts_under(env.data.path()), 0);
    assert!(std::fs::read_dir(env.data.path().join("containers"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn filesystem_copy_diff_export_commit() {
    let Some(env) = Env::new() else { return };
    let engine = env.engine();
    engine
        .image_bootstrap("busybox")
        .expect("bootstrap busybox");
    let (id, _) = engine
        .create(spec(&[
            "sh",
            "-c",
            "echo new > /tmp/made; rm /etc/group; ln -s /etc /tmp/esc",
        ]))
        .expect("create");
    let w = engine.wait(&id, WaitCondition::NextExit).expect("wait");
    engine.start(&id).expect("start");
    assert_eq!(w.wait().exit_code, 0);

    let changes = engine.changes(&id).expect("changes");
    let find = |p: &str| changes.iter().find(|c| c.path == p).map(|c| c.kind);
    assert_eq!(find("/tmp/made"), Some(ChangeKind::Added));
    assert_eq!(find("/etc/group"), Some(ChangeKind::Deleted));
    assert_eq!(find("/tmp"), Some(ChangeKind::Modified));

    // cp out: a file by its base name; a symlink is resolved inside the rootfs.
    let (stat, mut tar) = engine.archive_get(&id, "/tmp/made").expect("archive get");
    assert_eq!(stat.name, "made");
    let mut raw = Vec::new();
    tar.read_to_end(&mut raw).expect("read tar");
    let mut a = tar::Archive::new(&raw[..]);
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, vec!["made"]);
    // /etc/hostname is bound from the container's dir: cp reads what the container sees.
    let (_, mut tar) = engine
        .archive_get(&id, "/etc/hostname")
        .expect("cp /etc/hostname");
    let mut raw = Vec::new();
    tar.read_to_end(&mut raw).expect("read tar");
    let mut a = tar::Archive::new(&raw[..]);
    let mut text = String::new();
    a.entries()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, format!("{}\n", &id[..12]));
    let st = engine
        .archive_stat(&id, "/tmp/esc/passwd")
        .expect("stat through link");
    assert_eq!(st.name, "passwd");
    assert!(matches!(
        engine.archive_stat(&id, "/nope"),
        Err(Error::NoSuchContainerPath(_))
    ));

    // cp in.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, "in.txt", &b"hi\n"[..]).unwrap();
    let data = b.into_inner().unwrap();
    engine
        .archive_put(&id, "/tmp", &mut &data[..], false)
        .expect("archive put");
    assert_eq!(
        std::fs::read_to_string(Path::new(&engine.inspect(&id).unwrap().rootfs).join("tmp/in.txt"))
            .unwrap(),
        "hi\n"
    );

    // export: the whole tree.
    let mut raw = Vec::new();
    engine
        .export(&id)
        .expect("export")
        .read_to_end(&mut raw)
        .unwrap();
    let mut a = tar::Archive::new(&raw[..]);
    assert!(a
        .entries()
        .unwrap()
        .any(|e| e.unwrap().path().unwrap().display().to_string() == "bin/busybox"));

    // commit, then a container of the new image sees the change.
    let image = engine
        .commit(
            &id,
            CommitOptions {
                reference: Some("committed:1".into()),
                changes: vec!["CMD cat /tmp/made".into()],
                ..Default::default()
            },
        )
        .expect("commit");
    assert!(image.starts_with("sha256:"));
    let (c2, _) = engine
        .create(ContainerSpec {
            image: "committed:1".into(),
            ..Default::default()
        })
        .expect("create from commit");
    let s = engine
        .attach(
            &c2,
            AttachOptions {
                stdout: true,
                stderr: true,
                stream: true,
                ..Default::default()
            },
        )
        .unwrap();
    engine.start(&c2).unwrap();
    assert_eq!(read_all(s).0, "new\n");
    engine.wait(&c2, WaitCondition::NotRunning).unwrap().wait();
    for c in [&id, &c2] {
        engine.remove(c, true, true).expect("remove");
    }
    engine.image_remove("committed:1", false).expect("rmi");
    assert_eq!(mounts_under(env.data.path()), 0);
}

/// A create or rm cut short by a crash: reopening the engine leaves nothing half-made that a
/// listing shows or that holds the name.
#[test]
fn interrupted_create_and_remove_leave_nothing() {
    let Some(env) = Env::new() else { return };
    let engine = env.engine();
    engine
        .image_bootstrap("busybox")
        .expect("bootstrap busybox");
    let mut s = spec(&["true"]);
    s.name = Some("halfmade".into());
    let (made, _) = engine.create(s.clone()).expect("create");
    let mut s2 = spec(&["true"]);
    s2.name = Some("halfgone".into());
    let (gone, _) = engine.create(s2.clone()).expect("create");
    drop(engine);

    // Crash after the disk work of a create, before its row: drop the row behind its back.
    // Crash in the middle of an rm: the row says "removing".
    let db = rusqlite::Connection::open(env.data.path().join("berth.db")).unwrap();
    db.execute("DELETE FROM containers WHERE id = ?1", [&made])
        .unwrap();
    let data: String = db
        .query_row("SELECT data FROM containers WHERE id = ?1", [&gone], |r| {
            r.get(0)
        })
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&data).unwrap();
    v["state"]["status"] = serde_json::json!("removing");
    db.execute(
        "UPDATE containers SET data = ?1 WHERE id = ?2",
        rusqlite::params![v.to_string(), gone],
    )
    .unwrap();
    drop(db);

    let engine = env.engine();
    assert!(engine.list().unwrap().is_empty(), "{:?}", engine.list());
    assert_eq!(mounts_under(env.data.path()), 0);
    assert!(std::fs::read_dir(env.data.path().join("containers"))
        .unwrap()
        .next()
        .is_none());
    // Both names are free again.
    let (a, _) = engine.create(s).expect("name halfmade is free");
    let (b, _) = engine.create(s2).expect("name halfgone is free");
    engine.remove(&a, false, false).unwrap();
    engine.remove(&b, false, false).unwrap();
    assert_eq!(mounts_under(env.data.path()), 0);
}

/// `--init`: the process is not pid 1, and a SIGTERM it does not ignore ends it at once (the
/// init forwards it) with 128 + 15.
#[test]
fn init_forwards_signals_and_reaps() {
    let Some(env) = Env::new() else { return };
    let engine = env.engine();
    engine
        .image_bootstrap("busybox")
        .expect("bootstrap busybox");
    let mut s = spec(&["sh", "-c", "echo $$; sleep 1000 & wait"]);
    s.init = true;
    let (id, _) = engine.create(s).expect("create");
    engine.start(&id).expect("start");
    let mut procs = 0;
    for _ in 0..500 {
        procs = engine.top(&id, None).expect("top").processes.len();
        if procs >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(procs, 3, "the init, sh and sleep");
    engine.stop(&id, Some(30), None).expect("stop");
    let c = engine.inspect(&id).unwrap();
    assert_eq!(c.state.exit_code, 143, "sh gets SIGTERM through the init");
    let logs = engine
        .logs(
            &id,
            LogsOptions {
                stdout: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        read_all(logs).0,
        "2\n",
        "the process is pid 2 under the init"
    );
    engine.remove(&id, false, false).unwrap();
}
