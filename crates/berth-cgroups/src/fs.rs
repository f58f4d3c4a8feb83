//! The cgroupfs manager (`FsManager`) behind `CgroupManager` for all three modes: directory
//! creation and removal, task placement, resource writes, freezer, pids and stats.

use crate::error::{io_err, read, read_opt, write, CgroupError, Result};
use crate::resources::{
    blkio_weight_to_io_weight, shares_to_weight, swap_to_v2, v2_limit, Resources,
};
use crate::stats::{self, Stats};
use crate::{CgroupManager, CgroupMode, FreezerState};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Key of the cgroup2 directory in `paths()`: "" on a pure v2 host, "unified" on a hybrid one.
pub(crate) const V2_KEY: &str = "";
pub(crate) const HYBRID_V2_KEY: &str = "unified";

/// A container cgroup: one directory per v1 hierarchy (keyed by controller) and/or a cgroup2 one.
#[derive(Debug, Clone)]
pub(crate) struct FsManager {
    pub(crate) mode: CgroupMode,
    pub(crate) paths: BTreeMap<String, PathBuf>,
}

fn unsupported(what: impl Into<String>, reason: impl Into<String>) -> CgroupError {
    CgroupError::Unsupported {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Is `dir` the root of its cgroup hierarchy? A mount point, a v1 root (only roots have
/// cgroup.sane_behavior), or a v2 root (cgroup.controllers but no cgroup.events).
fn is_hierarchy_root(dir: &Path) -> bool {
    if dir.join("cgroup.sane_behavior").exists() {
        return true;
    }
    if dir.join("cgroup.controllers").exists() && !dir.join("cgroup.events").exists() {
        return true;
    }
    match (dir.metadata(), dir.parent().map(Path::metadata)) {
        (Ok(m), Some(Ok(p))) => m.dev() != p.dev(),
        _ => true,
    }
}

/// The root of the hierarchy `dir` is (or will be) in: climb from the deepest existing
/// ancestor while the parent is still a cgroup directory.
fn hierarchy_root(dir: &Path) -> PathBuf {
    let mut cur = dir;
    while !cur.exists() {
        match cur.parent() {
            Some(p) => cur = p,
            None => return dir.to_path_buf(),
        }
    }
    loop {
        if is_hierarchy_root(cur) {
            return cur.to_path_buf();
        }
        match cur.parent() {
            Some(p) if p.join("cgroup.procs").exists() => cur = p,
            _ => return cur.to_path_buf(),
        }
    }
}

/// Directories from just below the hierarchy root down to `dir`.
fn levels(dir: &Path) -> Vec<PathBuf> {
    let root = hierarchy_root(dir);
    let mut out = Vec::new();
    let mut cur = root.clone();
    if let Ok(rest) = dir.strip_prefix(&root) {
        for c in rest.components() {
            cur.push(c);
            out.push(cur.clone());
        }
    }
    out
}

fn mkdir(dir: &Path) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err("mkdir", dir)(e)),
    }
}

/// v1 cpuset: a new cgroup starts with empty cpuset.cpus/mems, and tasks cannot join it until
/// they are set, so copy them from the parent.
fn copy_cpuset_from_parent(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = read(&dir.join(f))?;
        if !mine.trim().is_empty() {
            continue;
        }
        let theirs = read(&parent.join(f))?;
        if !theirs.trim().is_empty() {
            write(&dir.join(f), theirs.trim())?;
        }
    }
    Ok(())
}

/// v2: enable every controller `dir` has in its cgroup.subtree_control (all at once, else one
/// by one ignoring refusals, as runc does).
fn enable_controllers(dir: &Path) -> Result<()> {
    let Some(avail) = read_opt(&dir.join("cgroup.controllers"))? else {
        return Ok(());
    };
    let ctrls: Vec<&str> = avail.split_whitespace().collect();
    if ctrls.is_empty() {
        return Ok(());
    }
    let sc = dir.join("cgroup.subtree_control");
    let all = ctrls
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    if write(&sc, &all).is_err() {
        for c in ctrls {
            let _ = write(&sc, &format!("+{c}"));
        }
    }
    Ok(())
}

fn rmdir(dir: &Path) -> io::Result<()> {
    std::fs::remove_dir(dir)
}

/// Removes `dir` and its sub-cgroups (children first), retrying on EBUSY while exiting tasks
/// leave. A missing directory is fine.
fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    remove_tree(&e.path())?;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    }
    let mut delay = Duration::from_millis(10);
    for attempt in 0.. {
        match rmdir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 6 => {
                sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(io_err("rmdir", dir)(e)),
        }
    }
    Ok(())
}

/// Removes now-empty ancestors of `dir` below `root` ("/berth" of "/berth/<id>").
fn remove_empty_ancestors(dir: &Path, root: &Path) -> Result<()> {
    let mut cur = dir.parent();
    while let Some(p) = cur {
        if p == root || !p.starts_with(root) {
            break;
        }
        match rmdir(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOTEMPTY) | Some(libc::EBUSY) | Some(libc::EEXIST)
                ) =>
            {
                break
            }
            Err(e) => return Err(io_err("rmdir", p)(e)),
        }
        cur = p.parent();
    }
    Ok(())
}

fn collect_procs(dir: &Path, out: &mut BTreeSet<i32>) -> Result<()> {
    let f = dir.join("cgroup.procs");
    let text = read(&f)?;
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let pid = l.parse().map_err(|_| CgroupError::Parse {
            path: f.clone(),
            content: l.to_string(),
            reason: "not a pid",
        })?;
        out.insert(pid);
    }
    let rd = std::fs::read_dir(dir).map_err(io_err("read directory", dir))?;
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            match collect_procs(&e.path(), out) {
                // A sub-cgroup removed while we walk is fine.
                Err(e) if e.is_errno(libc::ENOENT) => {}
                r => r?,
            }
        }
    }
    Ok(())
}

/// Refuses unified keys that are not plain file names.
pub(crate) fn check_unified_key(key: &str) -> Result<()> {
    if key.is_empty() || key.contains('/') || key.contains("..") || key.contains('\0') || key == "."
    {
        return Err(CgroupError::InvalidKey(key.to_string()));
    }
    Ok(())
}

const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

impl FsManager {
    fn dir(&self, key: &str) -> Option<&Path> {
        self.paths.get(key).map(PathBuf::as_path)
    }

    fn need(&self, key: &str, what: &str) -> Result<&Path> {
        self.dir(key)
            .ok_or_else(|| unsupported(what, format!("no {key} cgroup hierarchy is mounted")))
    }

    /// The cgroup2 directory (pure v2, or the unified one on hybrid hosts).
    fn v2_dir(&self) -> Option<&Path> {
        match self.mode {
            CgroupMode::V2 => self.dir(V2_KEY),
            CgroupMode::Hybrid => self.dir(HYBRID_V2_KEY),
            CgroupMode::V1 => None,
        }
    }

    /// Distinct v1 directories with whether they hold cpuset.
    fn v1_dirs(&self) -> Vec<(&Path, bool)> {
        let mut out: Vec<(&Path, bool)> = Vec::new();
        if self.mode == CgroupMode::V2 {
            return out;
        }
        for (k, d) in &self.paths {
            if k == HYBRID_V2_KEY || k == V2_KEY {
                continue;
            }
            match out.iter_mut().find(|(p, _)| *p == d.as_path()) {
                Some(e) => e.1 |= k == "cpuset",
                None => out.push((d, k == "cpuset")),
            }
        }
        out
    }

    fn all_dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = self.v1_dirs().into_iter().map(|(d, _)| d).collect();
        if let Some(d) = self.v2_dir() {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// The directory whose cgroup.procs tree lists the container's processes.
    fn main_dir(&self) -> Option<&Path> {
        if self.mode == CgroupMode::V2 {
            return self.v2_dir();
        }
        ["pids", "memory", "devices", "freezer", "cpu", "cpuacct"]
            .iter()
            .find_map(|k| self.dir(k))
            .or_else(|| self.v1_dirs().first().map(|(d, _)| *d))
    }

    fn set_v1(&self, r: &Resources) -> Result<()> {
        let m = &r.memory;
        if m.limit.is_some()
            || m.swap.is_some()
            || m.reservation.is_some()
            || m.swappiness.is_some()
            || m.disable_oom_killer.is_some()
        {
            let d = self.need("memory", "memory")?;
            set_memory_and_swap_v1(d, m.limit, m.swap)?;
            if let Some(v) = m.reservation {
                write(&d.join("memory.soft_limit_in_bytes"), &v.to_string())?;
            }
            if let Some(v) = m.swappiness {
                write(&d.join("memory.swappiness"), &v.to_string())?;
            }
            if let Some(v) = m.disable_oom_killer {
                write(&d.join("memory.oom_control"), if v { "1" } else { "0" })?;
            }
        }
        let c = &r.cpu;
        let nz_u = |v: Option<u64>| v.filter(|v| *v != 0);
        let nz_i = |v: Option<i64>| v.filter(|v| *v != 0);
        let (shares, quota, period) = (nz_u(c.shares), nz_i(c.quota), nz_u(c.period));
        let (rt_runtime, rt_period) = (nz_i(c.realtime_runtime), nz_u(c.realtime_period));
        if shares.is_some()
            || quota.is_some()
            || period.is_some()
            || rt_runtime.is_some()
            || rt_period.is_some()
            || c.idle.is_some()
        {
            let d = self.need("cpu", "cpu")?;
            if let Some(v) = shares {
                write(&d.join("cpu.shares"), &v.to_string())?;
            }
            let quota_file = d.join("cpu.cfs_quota_us");
            let quota_val = quota.map(|q| {
                if q < 0 {
                    "-1".to_string()
                } else {
                    q.to_string()
                }
            });
            let mut quota_done = false;
            if let Some(p) = period {
                let pf = d.join("cpu.cfs_period_us");
                if let Err(e) = write(&pf, &p.to_string()) {
                    // The new period may be invalid with the current quota; set quota first.
                    match &quota_val {
                        Some(q) if e.is_errno(libc::EINVAL) => {
                            write(&quota_file, q)?;
                            write(&pf, &p.to_string())?;
                            quota_done = true;
                        }
                        _ => return Err(e),
                    }
                }
            }
            if let (Some(q), false) = (&quota_val, quota_done) {
                write(&quota_file, q)?;
            }
            if let Some(v) = rt_period {
                write(&d.join("cpu.rt_period_us"), &v.to_string())?;
            }
            if let Some(v) = rt_runtime {
                write(&d.join("cpu.rt_runtime_us"), &v.to_string())?;
            }
            if let Some(v) = c.idle {
                write(&d.join("cpu.idle"), &v.to_string())?;
            }
        }
        self.set_cpuset(r, "cpuset")?;
        if let Some(v) = r.pids_limit {
            let d = self.need("pids", "pids limit")?;
            write(&d.join("pids.max"), &pids_value(v))?;
        }
        if let Some(w) = r.blkio_weight.filter(|w| *w != 0) {
            let d = self.need("blkio", "blkio weight")?;
            let f = ["blkio.weight", "blkio.bfq.weight"]
                .iter()
                .map(|f| d.join(f))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    unsupported(
                        "blkio weight",
                        format!(
                            "neither blkio.weight nor blkio.bfq.weight exists in {}",
                            d.display()
                        ),
                    )
                })?;
            write(&f, &w.to_string())?;
        }
        if let Some(w) = r.blkio_leaf_weight.filter(|w| *w != 0) {
            let d = self.need("blkio", "blkio leaf weight")?;
            let f = d.join("blkio.leaf_weight");
            if !f.exists() {
                return Err(unsupported(
                    "blkio leaf weight",
                    format!("{} does not exist", f.display()),
                ));
            }
            write(&f, &w.to_string())?;
        }
        if !r.devices.is_empty() {
            let d = self.need("devices", "devices")?;
            for rule in &r.devices {
                let f = d.join(if rule.allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                });
                write(&f, &rule.v1_line())?;
            }
        }
        if !r.unified.is_empty() {
            let Some(d) = self.v2_dir() else {
                return Err(unsupported("unified resources", "cgroup v2 is not mounted"));
            };
            for (k, v) in &r.unified {
                write(&d.join(k), v)?;
            }
        }
        Ok(())
    }

    fn set_cpuset(&self, r: &Resources, key: &str) -> Result<()> {
        let cpus = r.cpu.cpus.as_deref().filter(|s| !s.is_empty());
        let mems = r.cpu.mems.as_deref().filter(|s| !s.is_empty());
        if cpus.is_none() && mems.is_none() {
            return Ok(());
        }
        let d = self.need(key, "cpuset")?;
        if let Some(v) = cpus {
            write(&d.join("cpuset.cpus"), v)?;
        }
        if let Some(v) = mems {
            write(&d.join("cpuset.mems"), v)?;
        }
        Ok(())
    }

    fn set_v2(&self, r: &Resources) -> Result<()> {
        let d = self.need(V2_KEY, "cgroup v2")?;
        let m = &r.memory;
        let swap = swap_to_v2(m.swap, m.limit).map_err(|e| unsupported("memory swap", e))?;
        if let Some(s) = swap {
            let v = v2_limit(s);
            if let Err(e) = write(&d.join("memory.swap.max"), &v) {
                // Without swap accounting the file is missing; "max" and "0" are then moot.
                if !(e.is_errno(libc::ENOENT) && (v == "max" || v == "0")) {
                    return Err(e);
                }
            }
        }
        if let Some(l) = m.limit.filter(|l| *l != 0) {
            write(&d.join("memory.max"), &v2_limit(l))?;
        }
        if let Some(l) = m.reservation.filter(|l| *l != 0) {
            write(&d.join("memory.low"), &v2_limit(l))?;
        }
        let c = &r.cpu;
        if let Some(s) = c.shares.filter(|s| *s != 0) {
            write(&d.join("cpu.weight"), &shares_to_weight(s).to_string())?;
        }
        let quota = c.quota.unwrap_or(0);
        let period = c.period.unwrap_or(0);
        if quota != 0 || period != 0 {
            let mut v = if quota > 0 {
                quota.to_string()
            } else {
                "max".to_string()
            };
            if period != 0 {
                v = format!("{v} {period}");
            }
            write(&d.join("cpu.max"), &v)?;
        }
        if let Some(v) = c.idle {
            write(&d.join("cpu.idle"), &v.to_string())?;
        }
        if c.realtime_runtime.unwrap_or(0) != 0 || c.realtime_period.unwrap_or(0) != 0 {
            return Err(unsupported(
                "cpu realtime runtime/period",
                "not supported on cgroup v2",
            ));
        }
        self.set_cpuset(r, V2_KEY)?;
        if let Some(v) = r.pids_limit {
            write(&d.join("pids.max"), &pids_value(v))?;
        }
        if let Some(w) = r.blkio_weight.filter(|w| *w != 0) {
            let bfq = d.join("io.bfq.weight");
            if bfq.exists() {
                write(&bfq, &w.to_string())?;
            } else {
                write(
                    &d.join("io.weight"),
                    &blkio_weight_to_io_weight(w).to_string(),
                )?;
            }
        }
        if r.blkio_leaf_weight.unwrap_or(0) != 0 {
            return Err(unsupported(
                "blkio leaf weight",
                "not supported on cgroup v2",
            ));
        }
        if !r.devices.is_empty() {
            crate::devicefilter::attach(d, &r.devices)?;
        }
        for (k, v) in &r.unified {
            write(&d.join(k), v)?;
        }
        Ok(())
    }

    fn freeze_v1(&self, d: &Path, state: FreezerState) -> Result<()> {
        let f = d.join("freezer.state");
        if state == FreezerState::Thawed {
            return write(&f, "THAWED");
        }
        // As runc: write FROZEN until the kernel reports FROZEN, with an occasional
        // thaw-sleep-freeze cycle to let unfreezable tasks get out of the way.
        for i in 0..1000 {
            if i % 50 == 49 {
                let _ = write(&f, "THAWED");
                sleep(Duration::from_millis(10));
            }
            write(&f, "FROZEN")?;
            if i % 25 == 24 {
                sleep(Duration::from_micros(10));
            }
            let s = read(&f)?;
            match s.trim() {
                "FROZEN" => return Ok(()),
                "FREEZING" => continue,
                other => {
                    return Err(CgroupError::Freeze {
                        path: f.clone(),
                        reason: format!("unexpected state {other:?} after writing FROZEN"),
                    })
                }
            }
        }
        let _ = write(&f, "THAWED");
        Err(CgroupError::Freeze {
            path: f,
            reason: "still FREEZING after 1000 attempts, thawed again".into(),
        })
    }

    fn freeze_v2(&self, d: &Path, state: FreezerState) -> Result<()> {
        let want = state == FreezerState::Frozen;
        write(&d.join("cgroup.freeze"), if want { "1" } else { "0" })?;
        let start = Instant::now();
        loop {
            if v2_frozen(d)? == want {
                return Ok(());
            }
            if start.elapsed() > FREEZE_TIMEOUT {
                if want {
                    let _ = write(&d.join("cgroup.freeze"), "0");
                }
                return Err(CgroupError::Freeze {
                    path: d.join("cgroup.events"),
                    reason: format!("timed out waiting for \"frozen {}\"", u8::from(want)),
                });
            }
            sleep(Duration::from_millis(1));
        }
    }
}

fn v2_frozen(d: &Path) -> Result<bool> {
    let p = d.join("cgroup.events");
    let ev = crate::error::flat_keyed(&p, &read(&p)?)?;
    Ok(ev.get("frozen").copied().unwrap_or(0) == 1)
}

fn pids_value(v: i64) -> String {
    if v <= 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// v1 memory limit and memory+swap limit, ordered so memsw stays >= limit throughout.
fn set_memory_and_swap_v1(d: &Path, limit: Option<i64>, swap: Option<i64>) -> Result<()> {
    let lim_f = d.join("memory.limit_in_bytes");
    let sw_f = d.join("memory.memsw.limit_in_bytes");
    let mut swap = swap;
    if limit == Some(-1) && swap.is_none() {
        swap = Some(-1);
    }
    if !sw_f.exists() {
        swap = match swap {
            None | Some(-1) => None,
            Some(s) if Some(s) == limit => None,
            Some(s) => {
                return Err(unsupported(
                    format!("memory swap {s}"),
                    format!(
                        "{} does not exist (swap accounting is disabled)",
                        sw_f.display()
                    ),
                ))
            }
        };
    }
    match (limit, swap) {
        (None, None) => Ok(()),
        (Some(l), None) => write(&lim_f, &l.to_string()),
        (None, Some(s)) => write(&sw_f, &s.to_string()),
        (Some(l), Some(s)) => {
            let current = crate::error::read_u64_opt(&lim_f, u64::MAX)?.unwrap_or(u64::MAX);
            let swap_first = s < 0 || current <= s as u64;
            let (a, b) = if swap_first {
                ((&sw_f, s), (&lim_f, l))
            } else {
                ((&lim_f, l), (&sw_f, s))
            };
            match write(a.0, &a.1.to_string()) {
                Ok(()) => write(b.0, &b.1.to_string()),
                // runc retries the other order when the kernel refuses the first write.
                Err(e) if e.is_errno(libc::EINVAL) => {
                    write(b.0, &b.1.to_string())?;
                    write(a.0, &a.1.to_string())
                }
                Err(e) => Err(e),
            }
        }
    }
}

impl CgroupManager for FsManager {
    fn create(&self) -> Result<()> {
        for (dir, cpuset) in self.v1_dirs() {
            // Another container's delete may remove an empty shared parent (`berth/`)
            // between our mkdir of it and of the child: make the chain again.
            let mut attempts = 0;
            'chain: loop {
                for l in levels(dir) {
                    match mkdir(&l) {
                        Err(CgroupError::Io { ref source, .. })
                            if source.kind() == io::ErrorKind::NotFound && attempts < 10 =>
                        {
                            attempts += 1;
                            continue 'chain;
                        }
                        r => r?,
                    }
                    if cpuset {
                        copy_cpuset_from_parent(&l)?;
                    }
                }
                break;
            }
        }
        if let Some(dir) = self.v2_dir() {
            let enable = self.mode == CgroupMode::V2;
            let mut attempts = 0;
            'chain2: loop {
                for l in levels(dir) {
                    if enable {
                        if let Some(p) = l.parent() {
                            enable_controllers(p)?;
                        }
                    }
                    match mkdir(&l) {
                        Err(CgroupError::Io { ref source, .. })
                            if source.kind() == io::ErrorKind::NotFound && attempts < 10 =>
                        {
                            attempts += 1;
                            continue 'chain2;
                        }
                        r => r?,
                    }
                }
                break;
            }
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        for d in self.all_dirs() {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn set(&self, res: &Resources) -> Result<()> {
        for k in res.unified.keys() {
            check_unified_key(k)?;
        }
        match self.mode {
            CgroupMode::V2 => self.set_v2(res),
            CgroupMode::V1 | CgroupMode::Hybrid => self.set_v1(res),
        }
    }

    fn freeze(&self, state: FreezerState) -> Result<()> {
        match self.mode {
            CgroupMode::V2 => self.freeze_v2(self.need(V2_KEY, "freezer")?, state),
            _ => self.freeze_v1(self.need("freezer", "freezer")?, state),
        }
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        if self.mode == CgroupMode::V2 {
            let d = self.need(V2_KEY, "freezer")?;
            return Ok(if v2_frozen(d)? {
                FreezerState::Frozen
            } else {
                FreezerState::Thawed
            });
        }
        let f = self.need("freezer", "freezer")?.join("freezer.state");
        // FREEZING is transient; give the kernel a moment to settle, as runc does.
        for _ in 0..100 {
            let s = read(&f)?;
            match s.trim() {
                "FROZEN" => return Ok(FreezerState::Frozen),
                "THAWED" => return Ok(FreezerState::Thawed),
                "FREEZING" => sleep(Duration::from_millis(1)),
                _ => {
                    return Err(CgroupError::Parse {
                        path: f,
                        content: s,
                        reason: "unknown freezer state",
                    })
                }
            }
        }
        Ok(FreezerState::Thawed)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let d = self
            .main_dir()
            .ok_or_else(|| unsupported("pids", "no cgroup directory"))?;
        let mut out = BTreeSet::new();
        collect_procs(d, &mut out)?;
        Ok(out.into_iter().collect())
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        let main = self
            .main_dir()
            .ok_or_else(|| unsupported("stats", "no cgroup directory"))?;
        std::fs::metadata(main).map_err(io_err("stat", main))?;
        if self.mode == CgroupMode::V2 {
            stats::v2_cpu(main, &mut s.cpu)?;
            stats::v2_memory(main, &mut s.memory)?;
            stats::pids(main, &mut s.pids)?;
            stats::v2_io(main, &mut s.blkio)?;
            stats::hugetlb(main, true, &mut s.hugetlb)?;
            return Ok(s);
        }
        stats::v1_cpu(self.dir("cpu"), self.dir("cpuacct"), &mut s.cpu)?;
        if let Some(d) = self.dir("memory") {
            stats::v1_memory(d, &mut s.memory)?;
        }
        if let Some(d) = self.dir("pids") {
            stats::pids(d, &mut s.pids)?;
        }
        if let Some(d) = self.dir("blkio") {
            stats::v1_blkio(d, &mut s.blkio)?;
        }
        if let Some(d) = self.dir("hugetlb") {
            stats::hugetlb(d, false, &mut s.hugetlb)?;
        }
        Ok(s)
    }

    fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for d in self.all_dirs() {
            let root = hierarchy_root(d);
            if d == root {
                // Never remove a hierarchy root (or anything above it).
                continue;
            }
            let r = remove_tree(d).and_then(|()| remove_empty_ancestors(d, &root));
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn paths(&self) -> BTreeMap<String, PathBuf> {
        self.paths.clone()
    }

    fn mode(&self) -> CgroupMode {
        self.mode
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::mounts::layout_from_dir;
    use crate::resources::{DeviceKind, DeviceRule};
    use crate::testutil::*;
    use crate::{build, manager_at, manager_from_paths};

    const MIB64: i64 = 64 << 20;

    fn hybrid(root: &Path, path: &str) -> FsManager {
        let layout = layout_from_dir(root, CgroupMode::Hybrid).unwrap();
        build(CgroupMode::Hybrid, &layout, path, Some("0::/\n")).unwrap()
    }

    #[test]
    fn hybrid_paths_and_add_task() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        hybrid_tree(r, "berth/x");
        let m = hybrid(r, "/berth/x");
        let p = m.paths();
        assert_eq!(p.get("memory"), Some(&r.join("memory/berth/x")));
        assert_eq!(p.get("name=systemd"), Some(&r.join("systemd/berth/x")));
        assert_eq!(p.get("unified"), Some(&r.join("unified/berth/x")));
        assert_eq!(p.len(), 10);
        m.add_task(4242).unwrap();
        for h in V1_HIERARCHIES.iter().chain(&["unified"]) {
            assert_eq!(get(r.join(h).join("berth/x/cgroup.procs")), "4242", "{h}");
        }
        let again = manager_from_paths(CgroupMode::Hybrid, &p);
        assert_eq!(again.paths(), p);
        assert_eq!(again.mode(), CgroupMode::Hybrid);
    }

    #[test]
    fn relative_paths_resolve_against_own_cgroup() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        hybrid_tree(r, "");
        let own =
            "9:name=systemd:/user.slice\n4:memory:/process_api/f82c\n1:cpu:/\n0::/init.scope\n";
        let layout = layout_from_dir(r, CgroupMode::Hybrid).unwrap();
        let m = build(CgroupMode::Hybrid, &layout, "berth/x", Some(own)).unwrap();
        let p = m.paths;
        assert_eq!(p["memory"], r.join("memory/process_api/f82c/berth/x"));
        assert_eq!(p["cpu"], r.join("cpu/berth/x"));
        assert_eq!(p["name=systemd"], r.join("systemd/user.slice/berth/x"));
        assert_eq!(p["unified"], r.join("unified/init.scope/berth/x"));
        // Unknown controller in /proc/self/cgroup: relative to the root.
        assert_eq!(p["pids"], r.join("pids/berth/x"));
        assert!(build(CgroupMode::Hybrid, &layout, "/", Some(own)).is_err());
        assert!(build(CgroupMode::Hybrid, &layout, "..", Some(own)).is_err());
    }

    #[test]
    fn v1_create_copies_cpuset_from_parent() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        hybrid_tree(r, "");
        // What the kernel shows right after mkdir: empty cpuset files.
        put(&r.join("cpuset/berth"), &v1_cgroup_files("cpuset"));
        put(&r.join("cpuset/berth/x"), &v1_cgroup_files("cpuset"));
        let m = manager_at(r, CgroupMode::Hybrid, "/berth/x").unwrap();
        m.create().unwrap();
        assert_eq!(get(r.join("cpuset/berth/cpuset.cpus")), "0-1");
        assert_eq!(get(r.join("cpuset/berth/cpuset.mems")), "0");
        assert_eq!(get(r.join("cpuset/berth/x/cpuset.cpus")), "0-1");
        assert_eq!(get(r.join("cpuset/berth/x/cpuset.mems")), "0");
        for h in ["memory", "systemd", "unified", "pids"] {
            assert!(r.join(h).join("berth/x").is_dir(), "{h}");
        }
        // An already set cpuset is kept.
        std::fs::write(r.join("cpuset/berth/x/cpuset.cpus"), "1\n").unwrap();
        m.create().unwrap();
        assert_eq!(get(r.join("cpuset/berth/x/cpuset.cpus")), "1\n");
    }

    #[test]
    fn v1_set_writes_the_right_files() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        hybrid_tree(r, "berth/x");
        let m = hybrid(r, "/berth/x");
        let mut res = Resources::default();
        res.memory.limit = Some(MIB64);
        res.memory.swap = Some(2 * MIB64);
        res.memory.reservation = Some(MIB64 / 2);
        res.memory.swappiness = Some(10);
        res.memory.disable_oom_killer = Some(true);
        res.cpu.shares = Some(512);
        res.cpu.quota = Some(50_000);
        res.cpu.period = Some(100_000);
        res.cpu.cpus = Some("0".into());
        res.cpu.mems = Some("0".into());
        res.pids_limit = Some(20);
        res.blkio_weight = Some(300);
        res.devices = vec![
            DeviceRule {
                allow: false,
                kind: DeviceKind::All,
                major: None,
                minor: None,
                access: "rwm".into(),
            },
            DeviceRule {
                allow: true,
                kind: DeviceKind::Char,
                major: Some(1),
                minor: Some(3),
                access: String::new(),
            },
        ];
        m.set(&res).unwrap();
        let f = |h: &str, n: &str| get(r.join(h).join("berth/x").join(n));
        assert_eq!(f("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(f("memory", "memory.memsw.limit_in_bytes"), "134217728");
        assert_eq!(f("memory", "memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(f("memory", "memory.swappiness"), "10");
        assert_eq!(f("memory", "memory.oom_control"), "1");
        assert_eq!(f("cpu", "cpu.shares"), "512");
        assert_eq!(f("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(f("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(f("cpu", "cpu.rt_runtime_us"), "0\n", "untouched");
        assert_eq!(f("cpuset", "cpuset.cpus"), "0");
        assert_eq!(f("cpuset", "cpuset.mems"), "0");
        assert_eq!(f("pids", "pids.max"), "20");
        assert_eq!(f("blkio", "blkio.bfq.weight"), "300");
        assert_eq!(f("devices", "devices.deny"), "a *:* rwm");
        assert_eq!(f("devices", "devices.allow"), "c 1:3 rwm");

        let mut res = Resources::default();
        res.pids_limit = Some(0);
        res.cpu.quota = Some(-1);
        m.set(&res).unwrap();
        assert_eq!(f("pids", "pids.max"), "max");
        assert_eq!(f("cpu", "cpu.cfs_quota_us"), "-1");
    }

    #[test]
    fn v1_swap_without_accounting() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        hybrid_tree(r, "berth/x");
        std::fs::remove_file(r.join("memory/berth/x/memory.memsw.limit_in_bytes")).unwrap();
        let m = hybrid(r, "/berth/x");
        let mut res = Resources::default();
        res.memory.limit = Some(MIB64);
        res.memory.swap = Some(MIB64);
        m.set(&res).unwrap();
        res.memory.swap = Some(-1);
        m.set(&res).unwrap();
        assert_eq!(
            get(r.join("memory/berth/x/memory.limit_in_bytes")),
            "67108864"
        );
        res.memory.swap = Some(2 * MIB64);
        let e = m.set(&res).unwrap_err().to_string();
        assert!(
            e.contains("memory.memsw.limit_in_bytes does not exist"),
            "{e}"
        );
    }

    #[test]
    fn refused_writes_name_file_and_value() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        hybrid_tree(r, "berth/x");
        std::fs::remove_file(r.join("cpu/berth/x/cpu.idle")).unwrap();
        let m = hybrid(r, "/berth/x");
        let mut res = Resources::default();
        res.cpu.idle = Some(1);
        let e = m.set(&res).unwrap_err().to_string();
        let want = format!(
            "write {}: No such file or directory (value \"1\")",
            r.join("cpu/berth/x/cpu.idle").display()
        );
        assert_eq!(e, want);
    }

    #[test]
    fn v1_unified_goes_to_the_unified_dir_and_bad_keys_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        hybrid_tree(r, "berth/x");
        put(&r.join("unified/berth/x"), &[("hugetlb.2MB.max", "max\n")]);
        let m = hybrid(r, "/berth/x");
        let mut res = Resources::default();
        res.unified
            .insert("hugetlb.2MB.max".into(), "2097152".into());
        m.set(&res).unwrap();
        assert_eq!(get(r.join("unified/berth/x/hugetlb.2MB.max")), "2097152");
        for bad in ["../cgroup.procs", "a/b", "..", "", "."] {
            let mut res = Resources::default();
            res.pids_limit = Some(5);
            res.unified.insert(bad.into(), "1".into());
            let e = m.set(&res).unwrap_err();
            assert!(matches!(e, CgroupError::InvalidKey(_)), "{bad}: {e}");
        }
        assert_eq!(
            get(r.join("pids/berth/x/pids.max")),
            "max\n",
            "nothing written"
        );
    }

    #[test]
    fn v2_create_enables_controllers_in_ancestors() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        v2_tree(r, "");
        // The kernel shows a new child's controllers = its parent's subtree_control.
        put(
            &r.join("berth"),
            &[
                ("cgroup.controllers", "cpu memory pids\n"),
                ("cgroup.subtree_control", ""),
                ("cgroup.events", "populated 0\nfrozen 0\n"),
                ("cgroup.procs", ""),
            ],
        );
        let m = manager_at(r, CgroupMode::V2, "/berth/x").unwrap();
        assert_eq!(m.paths().get(""), Some(&r.join("berth/x")));
        m.create().unwrap();
        assert_eq!(
            get(r.join("cgroup.subtree_control")),
            "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc"
        );
        assert_eq!(
            get(r.join("berth/cgroup.subtree_control")),
            "+cpu +memory +pids"
        );
        assert!(r.join("berth/x").is_dir());
        assert!(!r.join("berth/x/cgroup.subtree_control").exists());
    }

    #[test]
    fn v2_set_writes_the_right_files() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let d = v2_tree(r, "berth/x");
        let m = manager_at(r, CgroupMode::V2, "/berth/x").unwrap();
        let mut res = Resources::default();
        res.memory.limit = Some(MIB64);
        res.memory.swap = Some(3 * MIB64);
        res.memory.reservation = Some(MIB64 / 2);
        res.memory.swappiness = Some(10); // no v2 equivalent: ignored
        res.cpu.shares = Some(512);
        res.cpu.quota = Some(50_000);
        res.cpu.period = Some(100_000);
        res.cpu.idle = Some(1);
        res.cpu.cpus = Some("0-1".into());
        res.cpu.mems = Some("0".into());
        res.pids_limit = Some(-1);
        res.blkio_weight = Some(500);
        res.unified.insert("memory.high".into(), "50331648".into());
        m.set(&res).unwrap();
        let f = |n: &str| get(d.join(n));
        assert_eq!(f("memory.max"), "67108864");
        assert_eq!(f("memory.swap.max"), "134217728");
        assert_eq!(f("memory.low"), "33554432");
        assert_eq!(f("memory.high"), "50331648");
        assert_eq!(f("cpu.weight"), "20");
        assert_eq!(f("cpu.max"), "50000 100000");
        assert_eq!(f("cpu.idle"), "1");
        assert_eq!(f("cpuset.cpus"), "0-1");
        assert_eq!(f("cpuset.mems"), "0");
        assert_eq!(f("pids.max"), "max");
        assert_eq!(f("io.weight"), "4950");

        let mut res = Resources::default();
        res.memory.limit = Some(-1);
        res.cpu.quota = Some(-1);
        res.cpu.period = Some(50_000);
        m.set(&res).unwrap();
        assert_eq!(f("memory.max"), "max");
        assert_eq!(f("memory.swap.max"), "max");
        assert_eq!(f("cpu.max"), "max 50000");

        // bfq present: the weight goes there unconverted.
        put(&d, &[("io.bfq.weight", "default 100\n")]);
        let mut res = Resources::default();
        res.blkio_weight = Some(500);
        m.set(&res).unwrap();
        assert_eq!(f("io.bfq.weight"), "500");

        let mut res = Resources::default();
        res.cpu.realtime_runtime = Some(1000);
        assert!(matches!(m.set(&res), Err(CgroupError::Unsupported { .. })));
        let mut res = Resources::default();
        res.memory.swap = Some(1);
        res.memory.limit = Some(MIB64);
        assert!(m.set(&res).is_err());
        let mut res = Resources::default();
        res.unified.insert("../../cgroup.procs".into(), "1".into());
        assert!(matches!(m.set(&res), Err(CgroupError::InvalidKey(_))));
    }

    #[test]
    fn v2_swap_without_accounting_is_ignored_for_max() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let d = v2_tree(r, "c");
        std::fs::remove_file(d.join("memory.swap.max")).unwrap();
        let m = manager_at(r, CgroupMode::V2, "/c").unwrap();
        let mut res = Resources::default();
        res.memory.limit = Some(-1);
        m.set(&res).unwrap();
        res.memory.limit = Some(MIB64);
        res.memory.swap = Some(2 * MIB64);
        assert!(m.set(&res).is_err());
    }

    #[test]
    fn freezer_v1_and_v2() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        hybrid_tree(r, "berth/x");
        let m = hybrid(r, "/berth/x");
        assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
        // The recorded file keeps what we write, as a kernel that froze at once would show.
        m.freeze(FreezerState::Frozen).unwrap();
        assert_eq!(get(r.join("freezer/berth/x/freezer.state")), "FROZEN");
        assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
        m.freeze(FreezerState::Thawed).unwrap();
        assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
        std::fs::write(r.join("freezer/berth/x/freezer.state"), "weird\n").unwrap();
        assert!(m.freezer_state().is_err());

        let t2 = tempfile::tempdir().unwrap();
        let d = v2_tree(t2.path(), "c");
        std::fs::write(d.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        let m = manager_at(t2.path(), CgroupMode::V2, "/c").unwrap();
        m.freeze(FreezerState::Frozen).unwrap();
        assert_eq!(get(d.join("cgroup.freeze")), "1");
        assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    }

    #[test]
    fn pids_are_collected_recursively() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let d = v2_tree(r, "c");
        std::fs::write(d.join("cgroup.procs"), "34\n12\n").unwrap();
        put(&d.join("sub"), &[("cgroup.procs", "56\n12\n")]);
        let m = manager_at(r, CgroupMode::V2, "/c").unwrap();
        assert_eq!(m.pids().unwrap(), vec![12, 34, 56]);
        std::fs::write(d.join("cgroup.procs"), "x\n").unwrap();
        assert!(m.pids().unwrap_err().to_string().contains("cgroup.procs"));
    }

    #[test]
    fn destroy_of_missing_dirs_is_fine_and_roots_are_never_removed() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        hybrid_tree(r, "");
        let m = hybrid(r, "/gone/x");
        m.destroy().unwrap();
        let mut paths = BTreeMap::new();
        paths.insert("memory".to_string(), r.join("memory"));
        manager_from_paths(CgroupMode::V1, &paths)
            .destroy()
            .unwrap();
        assert!(r.join("memory/cgroup.procs").exists());
    }

    #[test]
    fn stats_v1_from_recorded_files() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        hybrid_tree(r, "berth/x");
        let s = hybrid(r, "/berth/x").stats().unwrap();
        assert_eq!(s.cpu.usage.total, 2_041_234_567);
        assert_eq!(s.cpu.usage.percpu, vec![1_041_234_567, 1_000_000_000]);
        assert_eq!(s.cpu.usage.percpu_kernel, vec![41_234_567, 0]);
        let tick = 1_000_000_000 / crate::stats::tests::clk();
        assert_eq!(s.cpu.usage.user, 150 * tick);
        assert_eq!(s.cpu.usage.kernel, 12 * tick);
        assert_eq!(s.cpu.throttling.periods, 120);
        assert_eq!(s.cpu.throttling.throttled_periods, 7);
        assert_eq!(s.cpu.throttling.throttled_time, 81_234_567);
        assert_eq!(s.memory.usage.usage, 1_339_392);
        assert_eq!(s.memory.usage.max, 2_129_920);
        assert_eq!(s.memory.usage.limit, 9_223_372_036_854_771_712);
        assert_eq!(s.memory.kernel.usage, 311_296);
        assert_eq!(s.memory.cache, 1_081_344);
        assert_eq!(s.memory.raw.get("total_rss"), Some(&258_048));
        assert_eq!(s.pids.current, 3);
        assert_eq!(s.pids.limit, 0);
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 6);
        assert_eq!(s.blkio.io_service_bytes_recursive[1].op, "Write");
        assert_eq!(s.blkio.io_service_bytes_recursive[1].value, 8192);
        assert_eq!(s.blkio.io_serviced_recursive.len(), 3);
    }

    #[test]
    fn stats_v2_from_recorded_files() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        v2_tree(r, "c");
        let s = manager_at(r, CgroupMode::V2, "/c")
            .unwrap()
            .stats()
            .unwrap();
        assert_eq!(s.cpu.usage.total, 2_041_234_000);
        assert_eq!(s.cpu.usage.user, 1_500_000_000);
        assert_eq!(s.cpu.usage.kernel, 541_234_000);
        assert_eq!(s.cpu.throttling.throttled_time, 81_234_000);
        assert_eq!(s.memory.usage.usage, 7_028_736);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(s.memory.usage.max, 9_244_672);
        assert_eq!(s.memory.usage.failcnt, 3);
        assert_eq!(s.memory.event_count.oom_kill, 1);
        assert_eq!(s.memory.swap.usage, 7_028_736);
        assert_eq!(s.memory.swap.limit, u64::MAX);
        assert_eq!(s.memory.cache, 4_096_000);
        assert_eq!(s.memory.raw.get("anon"), Some(&2_846_720));
        assert_eq!(s.pids.current, 4);
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 4);
        assert_eq!(s.blkio.io_serviced_recursive[1].value, 2);
        assert_eq!(s.blkio.io_service_bytes_recursive[3].major, 259);
        assert!(s.hugetlb.contains_key("2MB"));
        // A removed cgroup is an error naming the directory, not zeros.
        let e = manager_at(r, CgroupMode::V2, "/gone")
            .unwrap()
            .stats()
            .unwrap_err();
        assert!(e.to_string().contains("gone"), "{e}");
    }
}
