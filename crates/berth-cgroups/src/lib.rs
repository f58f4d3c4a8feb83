//! berth-cgroups: cgroup v1, hybrid and v2 drivers for Berth containers (public API and constructors).
//!
//! Build a [`CgroupManager`] with [`manager`] (host discovery), [`manager_at`] (an explicit
//! root, e.g. a recorded tree in tests) or [`manager_from_paths`] (paths saved in a state file).

mod devicefilter;
mod error;
mod fs;
mod mounts;
mod resources;
mod stats;
#[cfg(test)]
mod testutil;
mod warm;

pub use devicefilter::{attach as attach_device_filter, device_filter_program, BpfInsn};
pub use error::CgroupError;
pub use mounts::{mode_of, parse_mountinfo, parse_proc_cgroup, Hierarchy, Layout};
pub use resources::{
    blkio_weight_to_io_weight, shares_to_weight, CpuResources, DeviceKind, DeviceRule,
    MemoryResources, Resources,
};
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, HugetlbStats, MemoryEntry, MemoryEventCount,
    MemoryStats, PidsStats, Stats, Throttling,
};
pub use warm::{own_procs_file, touch as touch_attach, AttachWarmer};

use fs::FsManager;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How cgroups are mounted on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CgroupMode {
    /// Only v1 hierarchies.
    V1,
    /// v1 hierarchies for the controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified).
    Hybrid,
    /// A single cgroup2 tree at /sys/fs/cgroup.
    V2,
}

/// Freezer state of a container cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FreezerState {
    Thawed,
    Frozen,
}

/// Operations on one container's cgroup, whatever the host's mode.
pub trait CgroupManager {
    /// Makes the directories in every hierarchy (mkdir -p). v1 cpuset levels get cpuset.cpus/mems
    /// from their parent when empty; v2 ancestors get their controllers enabled in
    /// cgroup.subtree_control.
    fn create(&self) -> Result<(), CgroupError>;
    /// Moves process `pid` into the cgroup (cgroup.procs in every hierarchy).
    fn add_task(&self, pid: i32) -> Result<(), CgroupError>;
    /// Applies resource settings; fails naming the file and value the kernel refused.
    fn set(&self, res: &Resources) -> Result<(), CgroupError>;
    /// Freezes or thaws, waiting until the kernel reports the state.
    fn freeze(&self, state: FreezerState) -> Result<(), CgroupError>;
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    /// All processes in the cgroup and its sub-cgroups, sorted.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    fn stats(&self) -> Result<Stats, CgroupError>;
    /// Removes the cgroup directories (children first; missing is fine), then ancestors below
    /// the hierarchy root that are now empty ("/berth" of "/berth/<id>").
    fn destroy(&self) -> Result<(), CgroupError>;
    /// Controller -> directory. v1 keys are controllers ("memory", "name=systemd"); the cgroup2
    /// directory is keyed "" on v2 hosts and "unified" on hybrid ones.
    fn paths(&self) -> BTreeMap<String, PathBuf>;
    fn mode(&self) -> CgroupMode;
}

const PROC_MOUNTINFO: &str = "/proc/self/mountinfo";
const PROC_CGROUP: &str = "/proc/self/cgroup";
const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

fn host_layout() -> Result<Layout, CgroupError> {
    let text = error::read(Path::new(PROC_MOUNTINFO))?;
    Ok(parse_mountinfo(&text))
}

/// The host's cgroup mode, from /proc/self/mountinfo.
pub fn detect_mode() -> Result<CgroupMode, CgroupError> {
    mode_of(&host_layout()?)
        .ok_or_else(|| CgroupError::NoHierarchy(format!("{PROC_MOUNTINFO} lists no cgroup mount")))
}

/// A manager for an OCI `cgroupsPath` on this host: absolute paths are from each hierarchy's
/// root; relative ones are relative to this process's own cgroup (from /proc/self/cgroup).
pub fn manager(cgroups_path: &str) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let layout = host_layout()?;
    let mode = mode_of(&layout).ok_or_else(|| {
        CgroupError::NoHierarchy(format!("{PROC_MOUNTINFO} lists no cgroup mount"))
    })?;
    Ok(Box::new(build(mode, &layout, cgroups_path, None)?))
}

/// Like [`manager`] with an explicit root and mode. When `root` is /sys/fs/cgroup the hierarchies
/// come from /proc/self/mountinfo; otherwise from the directories under `root` (each a v1
/// hierarchy named by its controllers, "unified" the cgroup2 one on Hybrid; `root` itself for V2).
pub fn manager_at(
    root: &Path,
    mode: CgroupMode,
    cgroups_path: &str,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let layout = if root == Path::new(DEFAULT_ROOT) {
        host_layout()?
    } else {
        mounts::layout_from_dir(root, mode)?
    };
    Ok(Box::new(build(mode, &layout, cgroups_path, None)?))
}

/// Reopens a manager from paths recorded earlier with [`CgroupManager::paths`].
pub fn manager_from_paths(
    mode: CgroupMode,
    paths: &BTreeMap<String, PathBuf>,
) -> Box<dyn CgroupManager> {
    Box::new(FsManager {
        mode,
        paths: paths.clone(),
    })
}

/// Resolves `cgroups_path` in every hierarchy of `layout`. `proc_self_cgroup` is the text of
/// /proc/self/cgroup (read from the host when `None` and the path is relative).
pub(crate) fn build(
    mode: CgroupMode,
    layout: &Layout,
    cgroups_path: &str,
    proc_self_cgroup: Option<&str>,
) -> Result<FsManager, CgroupError> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: cgroups_path.to_string(),
        reason,
    };
    if cgroups_path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    let relative = !cgroups_path.starts_with('/');
    if mounts::components(cgroups_path).is_empty() {
        return Err(invalid("names no cgroup below the hierarchy root"));
    }
    let own = if relative {
        let text = match proc_self_cgroup {
            Some(t) => t.to_string(),
            None => error::read(Path::new(PROC_CGROUP))?,
        };
        parse_proc_cgroup(&text)
    } else {
        BTreeMap::new()
    };
    let no_v2 = || CgroupError::NoHierarchy("no cgroup2 mount".into());
    let mut paths = BTreeMap::new();
    if mode == CgroupMode::V2 {
        let h = layout.v2.as_ref().ok_or_else(no_v2)?;
        let own = own.get("").map(String::as_str);
        paths.insert(
            fs::V2_KEY.to_string(),
            mounts::resolve(h, own, cgroups_path),
        );
    } else {
        if layout.v1.is_empty() {
            return Err(CgroupError::NoHierarchy(
                "no cgroup v1 hierarchy mounted".into(),
            ));
        }
        for h in &layout.v1 {
            let mine = h
                .controllers
                .iter()
                .find_map(|c| own.get(c))
                .map(String::as_str);
            let dir = mounts::resolve(h, mine, cgroups_path);
            for c in &h.controllers {
                paths.insert(c.clone(), dir.clone());
            }
        }
        if mode == CgroupMode::Hybrid {
            let h = layout.v2.as_ref().ok_or_else(no_v2)?;
            let own = own.get("").map(String::as_str);
            paths.insert(
                fs::HYBRID_V2_KEY.to_string(),
                mounts::resolve(h, own, cgroups_path),
            );
        }
    }
    Ok(FsManager { mode, paths })
}
