//! Keeps the kernel's cgroup attach path fast while containers are being started.
//!
//! Moving a process into a cgroup (a `cgroup.procs` write, in any hierarchy, v1 or v2) takes
//! the kernel's global threadgroup rwsem for writing. That lock is a per-cpu rwsem: its first
//! writer waits for an RCU grace period (5-15 ms on an idle host), after which writers stay
//! cheap for about one more grace period. A daemon that knows a container start is coming can
//! pay that wait ahead of time, off the critical path: [`AttachWarmer::poke`] makes a thread
//! write the daemon's own pid into the cgroup it is already in (a move that changes nothing)
//! every few milliseconds until the window asked for has passed, so the runtime's own
//! `cgroup.procs` writes find the lock in its writer-favoured state.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{self, CgroupError, Result};
use crate::mounts::{parse_mountinfo, parse_proc_cgroup, Layout};

/// Below one grace period, so the lock never falls back to its reader-favoured state.
const PERIOD: Duration = Duration::from_millis(4);

/// The `cgroup.procs` file of the cgroup a process is in, given the host's layout and the
/// process's /proc/PID/cgroup text: the cgroup2 one when there is one, else the first v1
/// hierarchy whose root contains the process's cgroup. `None` when no hierarchy shows it (a
/// cgroup namespace whose root is elsewhere).
pub fn own_procs_file(layout: &Layout, proc_cgroup: &str) -> Option<PathBuf> {
    let map = parse_proc_cgroup(proc_cgroup);
    let in_hierarchy = |mountpoint: &Path, root: &str, path: &str| -> Option<PathBuf> {
        let rel = if root == "/" {
            path.strip_prefix('/')?
        } else {
            let rest = path.strip_prefix(root)?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            rest.trim_start_matches('/')
        };
        if rel.split('/').any(|c| c == "..") {
            return None;
        }
        Some(mountpoint.join(rel).join("cgroup.procs"))
    };
    if let (Some(h), Some(path)) = (&layout.v2, map.get("")) {
        if let Some(p) = in_hierarchy(&h.mountpoint, &h.root, path) {
            return Some(p);
        }
    }
    layout.v1.iter().find_map(|h| {
        let path = map.get(h.controllers.first()?)?;
        in_hierarchy(&h.mountpoint, &h.root, path)
    })
}

/// Writes this process's pid into `procs` (its own cgroup): takes and releases the attach
/// lock without moving anything.
pub fn touch(procs: &Path) -> Result<()> {
    error::write(procs, &std::process::id().to_string())
}

#[derive(Default)]
struct State {
    until: Option<Instant>,
    stop: bool,
}

/// A thread that keeps the attach path warm for a while after each [`poke`](Self::poke).
pub struct AttachWarmer {
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl AttachWarmer {
    /// Finds this process's own cgroup and starts the (idle) thread.
    pub fn start() -> Result<AttachWarmer> {
        let mountinfo = error::read(Path::new("/proc/self/mountinfo"))?;
        let cgroup = error::read(Path::new("/proc/self/cgroup"))?;
        let procs = own_procs_file(&parse_mountinfo(&mountinfo), &cgroup).ok_or_else(|| {
            CgroupError::NoHierarchy("no mounted hierarchy shows this process's cgroup".into())
        })?;
        // Fails now, rather than silently in the thread, when the file cannot be written.
        touch(&procs)?;
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let me = shared.clone();
        std::thread::Builder::new()
            .name("cgroup-warm".into())
            .stack_size(64 * 1024)
            .spawn(move || run(&me, &procs))
            .map_err(|e| CgroupError::Io {
                op: "start warm-up thread for",
                path: PathBuf::from("/proc/self/cgroup"),
                source: e,
            })?;
        Ok(AttachWarmer { shared })
    }

    /// Keeps the attach path warm from now until `window` has passed (or longer, if an
    /// earlier poke asked for more).
    pub fn poke(&self, window: Duration) {
        let (mu, cv) = &*self.shared;
        let until = Instant::now() + window;
        let mut st = mu.lock().unwrap_or_else(|p| p.into_inner());
        if st.until.is_none_or(|u| u < until) {
            st.until = Some(until);
        }
        cv.notify_all();
    }
}

impl Drop for AttachWarmer {
    fn drop(&mut self) {
        let (mu, cv) = &*self.shared;
        mu.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        cv.notify_all();
    }
}

fn run(shared: &(Mutex<State>, Condvar), procs: &Path) {
    let (mu, cv) = shared;
    let mut st = mu.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if st.stop {
            return;
        }
        match st.until {
            Some(u) if Instant::now() < u => {
                drop(st);
                // The first touch of a burst is the one that waits for the grace period.
                let _ = touch(procs);
                st = mu.lock().unwrap_or_else(|p| p.into_inner());
                st = cv
                    .wait_timeout(st, PERIOD)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            _ => {
                st.until = None;
                st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::Hierarchy;

    fn h(ctrls: &[&str], mp: &str, root: &str) -> Hierarchy {
        Hierarchy {
            controllers: ctrls.iter().map(|s| s.to_string()).collect(),
            mountpoint: PathBuf::from(mp),
            root: root.into(),
        }
    }

    #[test]
    fn prefers_cgroup2_then_first_v1() {
        let layout = Layout {
            v1: vec![
                h(&["cpu", "cpuacct"], "/sys/fs/cgroup/cpu,cpuacct", "/"),
                h(&["pids"], "/sys/fs/cgroup/pids", "/"),
            ],
            v2: Some(h(&[], "/sys/fs/cgroup/unified", "/")),
        };
        let text = "5:pids:/system.slice/berthd.service\n\
                    4:cpu,cpuacct:/system.slice\n\
                    0::/system.slice/berthd.service\n";
        assert_eq!(
            own_procs_file(&layout, text),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/berthd.service/cgroup.procs"
            ))
        );
        let v1_only = Layout { v2: None, ..layout };
        assert_eq!(
            own_procs_file(&v1_only, text),
            Some(PathBuf::from(
                "/sys/fs/cgroup/cpu,cpuacct/system.slice/cgroup.procs"
            ))
        );
    }

    #[test]
    fn root_of_the_host_and_mount_roots() {
        let layout = Layout {
            v1: vec![],
            v2: Some(h(&[], "/sys/fs/cgroup", "/")),
        };
        assert_eq!(
            own_procs_file(&layout, "0::/\n"),
            Some(PathBuf::from("/sys/fs/cgroup/cgroup.procs"))
        );
        // A mount of a subtree (as in a container): paths are below its root.
        let sub = Layout {
            v1: vec![h(&["memory"], "/sys/fs/cgroup/memory", "/docker/abc")],
            v2: None,
        };
        assert_eq!(
            own_procs_file(&sub, "3:memory:/docker/abc/inner\n"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/inner/cgroup.procs"))
        );
        // Outside the mount's root, or a sibling with a shared prefix: not reachable.
        assert_eq!(own_procs_file(&sub, "3:memory:/docker/abcd\n"), None);
        assert_eq!(own_procs_file(&sub, "3:memory:/other\n"), None);
        assert_eq!(own_procs_file(&sub, "3:cpu:/docker/abc\n"), None);
    }
}
