//! Integration test on the real host (hybrid here): create, set, add a task, freeze, stats, destroy.
//! Needs root; skips with a message otherwise.

#![allow(clippy::field_reassign_with_default)]

use berth_cgroups::{manager, CgroupManager, CgroupMode, FreezerState, Resources};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child and destroys the cgroup even when an assertion fails.
struct Guard {
    child: Option<Child>,
    mgr: Box<dyn CgroupManager>,
}

impl Guard {
    fn kill_child(&mut self) {
        // A frozen task cannot die until thawed.
        let _ = self.mgr.freeze(FreezerState::Thawed);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill_child();
        if let Err(e) = self.mgr.destroy() {
            eprintln!("cleanup: {e}");
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn lifecycle_on_this_host() {
    if !is_root() {
        println!("skipping lifecycle_on_this_host: needs root");
        return;
    }
    let top = format!("berth-cgtest-{}", std::process::id());
    let path = format!("/{top}/x");
    let mgr = manager(&path).unwrap();
    let mode = mgr.mode();
    assert_eq!(berth_cgroups::detect_mode().unwrap(), mode);
    let paths = mgr.paths();
    println!("mode {mode:?}, paths {paths:#?}");
    let mut g = Guard { child: None, mgr };

    g.mgr.create().unwrap();
    for d in paths.values() {
        assert!(d.is_dir(), "{} not created", d.display());
    }

    let mut res = Resources::default();
    res.memory.limit = Some(64 << 20);
    res.pids_limit = Some(20);
    res.cpu.shares = Some(512);
    res.cpu.cpus = Some("0".into());
    g.mgr.set(&res).unwrap();

    // The shell waits for a line, then execs sleep: the exec happens inside the cgroup,
    // so its memory is charged there.
    let mut child = Command::new("sh")
        .args(["-c", "read x; exec sleep 30"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let stdin = child.stdin.take();
    g.child = Some(child);
    g.mgr.add_task(pid).unwrap();
    if let Some(mut s) = stdin {
        s.write_all(b"go\n").unwrap();
    }
    let start = Instant::now();
    while read(Path::new(&format!("/proc/{pid}/comm"))).trim() != "sleep" {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "child never exec'd sleep"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let file = |key: &str, name: &str| -> PathBuf { paths[key].join(name) };
    match mode {
        CgroupMode::V2 => {
            assert_eq!(read(&file("", "memory.max")).trim(), "67108864");
            assert_eq!(read(&file("", "pids.max")).trim(), "20");
            assert_eq!(read(&file("", "cpu.weight")).trim(), "20");
            assert_eq!(read(&file("", "cpuset.cpus")).trim(), "0");
        }
        _ => {
            assert_eq!(
                read(&file("memory", "memory.limit_in_bytes")).trim(),
                "67108864"
            );
            assert_eq!(read(&file("pids", "pids.max")).trim(), "20");
            assert_eq!(read(&file("cpu", "cpu.shares")).trim(), "512");
            assert_eq!(read(&file("cpuset", "cpuset.cpus")).trim(), "0");
            let procs = read(&file("memory", "cgroup.procs"));
            assert!(
                procs.lines().any(|l| l.trim() == pid.to_string()),
                "{procs}"
            );
        }
    }
    if mode == CgroupMode::Hybrid {
        let procs = read(&file("unified", "cgroup.procs"));
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "unified: {procs}"
        );
    }
    let own = read(Path::new(&format!("/proc/{pid}/cgroup")));
    assert!(own.contains(&path), "{own}");
    assert!(g.mgr.pids().unwrap().contains(&pid));

    g.mgr.freeze(FreezerState::Frozen).unwrap();
    assert_eq!(g.mgr.freezer_state().unwrap(), FreezerState::Frozen);
    if mode != CgroupMode::V2 {
        assert_eq!(read(&file("freezer", "freezer.state")).trim(), "FROZEN");
    }
    g.mgr.freeze(FreezerState::Thawed).unwrap();
    assert_eq!(g.mgr.freezer_state().unwrap(), FreezerState::Thawed);
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    assert!(status.contains("State:\tS"), "{status}");

    let stats = g.mgr.stats().unwrap();
    println!("{stats:?}");
    assert!(stats.memory.usage.usage > 0, "memory usage 0");
    assert!(stats.pids.current >= 1, "pids current 0");
    assert_eq!(stats.pids.limit, 20);
    assert_eq!(stats.memory.usage.limit, 64 << 20);

    if mode != CgroupMode::V2 && file("memory", "memory.memsw.limit_in_bytes").exists() {
        // Raising then lowering limit and memory+swap together: writes must be ordered.
        for (limit, swap) in [(128i64 << 20, 256i64 << 20), (32 << 20, 48 << 20)] {
            let mut r = Resources::default();
            r.memory.limit = Some(limit);
            r.memory.swap = Some(swap);
            g.mgr.set(&r).unwrap();
            let got = |n| read(&file("memory", n)).trim().parse::<i64>().unwrap();
            assert_eq!(got("memory.limit_in_bytes"), limit);
            assert_eq!(got("memory.memsw.limit_in_bytes"), swap);
        }
    }

    // Refused values name the file and value.
    let mut bad = Resources::default();
    bad.cpu.cpus = Some("4096".into());
    let e = g.mgr.set(&bad).unwrap_err().to_string();
    assert!(e.contains("cpuset.cpus") && e.contains("4096"), "{e}");

    g.kill_child();
    g.mgr.destroy().unwrap();
    for d in paths.values() {
        assert!(!d.exists(), "{} left behind", d.display());
        let parent = d.parent().unwrap();
        assert!(parent.ends_with(&top));
        assert!(!parent.exists(), "{} left behind", parent.display());
    }
    // Idempotent.
    g.mgr.destroy().unwrap();
}

#[test]
fn attach_warm_up_moves_nothing() {
    if !is_root() {
        return;
    }
    let before = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let procs = berth_cgroups::own_procs_file(
        &berth_cgroups::parse_mountinfo(
            &std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo"),
        ),
        &before,
    )
    .expect("this process's cgroup is visible");
    let pid = std::process::id().to_string();
    let listed = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .expect("read cgroup.procs")
            .lines()
            .any(|l| l == pid)
    };
    assert!(listed(&procs), "{} lists this process", procs.display());
    let w = berth_cgroups::AttachWarmer::start().expect("start warm-up");
    w.poke(std::time::Duration::from_millis(30));
    std::thread::sleep(std::time::Duration::from_millis(60));
    drop(w);
    assert!(listed(&procs), "still in {}", procs.display());
    assert_eq!(
        std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup"),
        before
    );
}
