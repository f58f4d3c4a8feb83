//! The one place that reaps children: a thread blocked in `waitpid(-1)`. The shim is a child
//! subreaper, so the container's init and exec processes become its children; the runtime
//! commands it runs are children too. Everyone waits through [`Reaper::wait`], never through
//! `Child::wait`, so no exit status is stolen from its owner.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

#[derive(Default)]
struct Inner {
    /// Exit codes of reaped children not yet claimed (128 + signal for a signal).
    exited: HashMap<i32, i32>,
    /// Bumped at each spawn, so the thread knows to call waitpid again after ECHILD.
    spawned: u64,
}

#[derive(Clone, Default)]
pub struct Reaper {
    inner: Arc<(Mutex<Inner>, Condvar)>,
}

impl Reaper {
    /// Starts the reaping thread.
    pub fn start() -> std::io::Result<Reaper> {
        let r = Reaper::default();
        let me = r.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .stack_size(64 * 1024)
            .spawn(move || me.run())?;
        Ok(r)
    }

    fn run(&self) {
        let (mu, cv) = &*self.inner;
        loop {
            let seen = mu.lock().map(|g| g.spawned).unwrap_or(0);
            match waitpid(Pid::from_raw(-1), None) {
                Ok(WaitStatus::Exited(pid, code)) => self.record(pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.record(pid.as_raw(), 128 + sig as i32)
                }
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => {
                    // No children: sleep until one is spawned (or adopted: check now and then).
                    let Ok(g) = mu.lock() else { return };
                    if g.spawned == seen {
                        let _ = cv.wait_timeout(g, Duration::from_millis(200));
                    }
                }
            }
        }
    }

    fn record(&self, pid: i32, code: i32) {
        let (mu, cv) = &*self.inner;
        if let Ok(mut g) = mu.lock() {
            g.exited.insert(pid, code);
            cv.notify_all();
        }
    }

    /// Spawns `cmd`; its status is then collected with [`Reaper::wait`].
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<Child> {
        let (mu, cv) = &*self.inner;
        let child = cmd.spawn()?;
        if let Ok(mut g) = mu.lock() {
            g.spawned += 1;
            cv.notify_all();
        }
        Ok(child)
    }

    /// Tells the thread a child may have appeared that it did not spawn (an adopted one).
    pub fn adopted(&self) {
        let (mu, cv) = &*self.inner;
        if let Ok(mut g) = mu.lock() {
            g.spawned += 1;
            cv.notify_all();
        }
    }

    /// Blocks until child `pid` has been reaped; returns its exit code.
    pub fn wait(&self, pid: i32) -> i32 {
        let (mu, cv) = &*self.inner;
        let Ok(mut g) = mu.lock() else { return -1 };
        let mut missing = 0;
        loop {
            if let Some(code) = g.exited.remove(&pid) {
                return code;
            }
            g = match cv.wait_timeout(g, Duration::from_secs(1)) {
                Ok((g, _)) => g,
                Err(_) => return -1,
            };
            if g.exited.contains_key(&pid) {
                continue;
            }
            // A pid that is gone without having been recorded (not our child) would block
            // forever: report it as lost, after one more round in case the reaper thread is
            // between waitpid and record.
            if is_child_or_alive(pid) {
                missing = 0;
            } else {
                missing += 1;
                if missing > 1 {
                    return -1;
                }
            }
        }
    }
}

fn is_child_or_alive(pid: i32) -> bool {
    // A zombie is still "alive" here: the reaper thread will collect it.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
