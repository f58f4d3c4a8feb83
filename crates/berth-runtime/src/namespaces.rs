//! Namespaces of a container: which are new, which are joined by path, and in what order.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{io, sys, Result};

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The name of a namespace under /proc/PID/ns.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Join order: user first (it grants the rights for the rest), mount last (it changes root).
const ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

/// The namespace plan of a container.
pub struct Plan {
    /// Namespaces to create, as one unshare() mask.
    pub new: CloneFlags,
    /// Namespaces to join, opened in join order.
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
    pub types: Vec<LinuxNamespaceType>,
}

impl Plan {
    fn empty() -> Plan {
        Plan {
            new: CloneFlags::empty(),
            join: vec![],
            types: vec![],
        }
    }

    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let mut plan = Plan::empty();
        let nss = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for t in ORDER {
            if let Some(ns) = nss.iter().find(|n| n.typ() == t) {
                plan.types.push(t);
                match ns.path() {
                    Some(p) => {
                        let f = std::fs::File::open(p).map_err(io("open namespace", p))?;
                        plan.join.push((t, f.into()));
                    }
                    None => plan.new |= flag(t),
                }
            }
        }
        Ok(plan)
    }

    /// The namespaces of a running process, for exec: every one that differs from ours.
    pub fn of_pid(pid: i32, types: &[LinuxNamespaceType]) -> Result<Plan> {
        let mut plan = Plan::empty();
        for t in ORDER {
            if !types.contains(&t) {
                continue;
            }
            let theirs = PathBuf::from(format!("/proc/{pid}/ns/{}", proc_name(t)));
            let ours = PathBuf::from(format!("/proc/self/ns/{}", proc_name(t)));
            let same = match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
                (Ok(a), Ok(b)) => {
                    use std::os::unix::fs::MetadataExt;
                    a.ino() == b.ino() && a.dev() == b.dev()
                }
                _ => false,
            };
            if same {
                continue;
            }
            let f = std::fs::File::open(&theirs).map_err(io("open namespace", &theirs))?;
            plan.types.push(t);
            plan.join.push((t, f.into()));
        }
        Ok(plan)
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.types.contains(&t)
    }

    pub fn is_new(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(flag(t))
    }

    /// setns() into every joined namespace, in order.
    pub fn join_all(&self) -> Result<()> {
        for (t, fd) in &self.join {
            nix::sched::setns(fd.as_fd(), flag(*t))
                .map_err(sys(format!("join {} namespace", proc_name(*t))))?;
        }
        Ok(())
    }
}
