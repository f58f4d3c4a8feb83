//! Discovery: parsing /proc/self/mountinfo and /proc/self/cgroup, mode detection, and the
//! hierarchy layout (which directories hold which controllers).

use crate::error::{CgroupError, Result};
use crate::CgroupMode;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// v1 controller names the kernel knows; anything else in a v1 hierarchy name is a named hierarchy.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1: controllers ("cpu", "name=systemd"); v2: empty.
    pub controllers: Vec<String>,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The cgroup path the mount shows as its root (4th mountinfo field), "/" normally.
    pub root: String,
}

/// All cgroup mounts of a host: the v1 hierarchies and the cgroup2 mount if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub v1: Vec<Hierarchy>,
    pub v2: Option<Hierarchy>,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/self/mountinfo text into the cgroup mounts it lists (first mount of each
/// v1 controller set wins; the cgroup2 mount at /sys/fs/cgroup, else the first one, is `v2`).
pub fn parse_mountinfo(text: &str) -> Layout {
    let mut layout = Layout::default();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let root = unescape(pre[3]);
        let mountpoint = PathBuf::from(unescape(pre[4]));
        match post[0] {
            "cgroup" => {
                let controllers: Vec<String> = post[2]
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                    .map(str::to_string)
                    .collect();
                if controllers.is_empty() || layout.v1.iter().any(|h| h.controllers == controllers)
                {
                    continue;
                }
                layout.v1.push(Hierarchy {
                    controllers,
                    mountpoint,
                    root,
                });
            }
            "cgroup2" => {
                let better = match &layout.v2 {
                    None => true,
                    Some(h) => {
                        h.mountpoint != Path::new("/sys/fs/cgroup")
                            && mountpoint == Path::new("/sys/fs/cgroup")
                    }
                };
                if better {
                    layout.v2 = Some(Hierarchy {
                        controllers: Vec::new(),
                        mountpoint,
                        root,
                    });
                }
            }
            _ => {}
        }
    }
    layout
}

/// The cgroup mode a layout means: cgroup2 on /sys/fs/cgroup (or no v1 at all) is V2, v1 plus a
/// cgroup2 mount elsewhere is Hybrid, v1 alone is V1.
pub fn mode_of(layout: &Layout) -> Option<CgroupMode> {
    match (&layout.v2, layout.v1.is_empty()) {
        (Some(h), _) if h.mountpoint == Path::new("/sys/fs/cgroup") => Some(CgroupMode::V2),
        (Some(_), true) => Some(CgroupMode::V2),
        (Some(_), false) => Some(CgroupMode::Hybrid),
        (None, false) => Some(CgroupMode::V1),
        (None, true) => None,
    }
}

/// Parses /proc/<pid>/cgroup text: controller (or "name=x", or "" for v2) -> cgroup path.
pub fn parse_proc_cgroup(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            out.insert(String::new(), path.to_string());
        } else {
            for c in ctrls.split(',') {
                out.insert(c.to_string(), path.to_string());
            }
        }
    }
    out
}

/// The layout of a recorded (or unusual) root: each directory under `root` is a v1 hierarchy
/// named by its controllers ("cpu,cpuacct"; "systemd" -> "name=systemd"); `unified` is the
/// cgroup2 mount. Symlinks (like cpu -> cpu,cpuacct) are skipped. For V2, `root` itself is the mount.
pub fn layout_from_dir(root: &Path, mode: CgroupMode) -> Result<Layout> {
    let mut layout = Layout::default();
    if mode == CgroupMode::V2 {
        layout.v2 = Some(Hierarchy {
            controllers: Vec::new(),
            mountpoint: root.to_path_buf(),
            root: "/".into(),
        });
        return Ok(layout);
    }
    let rd = std::fs::read_dir(root).map_err(crate::error::io_err("read directory", root))?;
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(crate::error::io_err("read directory", root))?;
        let ft = e
            .file_type()
            .map_err(crate::error::io_err("stat", &e.path()))?;
        if !ft.is_dir() {
            continue;
        }
        if let Some(n) = e.file_name().to_str() {
            names.push(n.to_string());
        }
    }
    names.sort();
    for n in names {
        let mountpoint = root.join(&n);
        if n == "unified" {
            if mode == CgroupMode::Hybrid {
                layout.v2 = Some(Hierarchy {
                    controllers: Vec::new(),
                    mountpoint,
                    root: "/".into(),
                });
            }
            continue;
        }
        let controllers = n
            .split(',')
            .map(|c| {
                if V1_CONTROLLERS.contains(&c) || c.starts_with("name=") {
                    c.to_string()
                } else {
                    format!("name={c}")
                }
            })
            .collect();
        layout.v1.push(Hierarchy {
            controllers,
            mountpoint,
            root: "/".into(),
        });
    }
    if layout.v1.is_empty() {
        return Err(CgroupError::NoHierarchy(format!(
            "no v1 hierarchy directory under {}",
            root.display()
        )));
    }
    Ok(layout)
}

/// Cleans a cgroup path into its components: no "", ".", and ".." never climbs above the start.
pub(crate) fn components(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The directory of `cgroups_path` in hierarchy `h`. Absolute paths are from the hierarchy's
/// root; relative ones from `own` (this process's cgroup in that hierarchy, from
/// /proc/self/cgroup), made relative to the mount's root as runc does.
pub(crate) fn resolve(h: &Hierarchy, own: Option<&str>, cgroups_path: &str) -> PathBuf {
    let mut dir = h.mountpoint.clone();
    if !cgroups_path.starts_with('/') {
        if let Some(own) = own {
            let rel = match own.strip_prefix(h.root.as_str()) {
                Some(r) if h.root != "/" && (r.is_empty() || r.starts_with('/')) => r,
                _ => own,
            };
            for c in components(rel) {
                dir.push(c);
            }
        }
    }
    for c in components(cgroups_path) {
        dir.push(c);
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const HYBRID_MOUNTINFO: &str = "\
22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const V1_MOUNTINFO: &str = "\
25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,net_cls,net_prio
37 30 0:33 /docker/abc /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,pids
";

    const V2_MOUNTINFO: &str = "\
24 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
27 23 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
40 24 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn hybrid_mountinfo() {
        let l = parse_mountinfo(HYBRID_MOUNTINFO);
        assert_eq!(mode_of(&l), Some(CgroupMode::Hybrid));
        let names: Vec<String> = l.v1.iter().map(|h| h.controllers.join(",")).collect();
        assert_eq!(
            names,
            [
                "cpu",
                "cpuacct",
                "cpuset",
                "memory",
                "devices",
                "freezer",
                "blkio",
                "pids",
                "name=systemd"
            ]
        );
        assert_eq!(
            l.v2.map(|h| h.mountpoint),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn v1_mountinfo() {
        let l = parse_mountinfo(V1_MOUNTINFO);
        assert_eq!(mode_of(&l), Some(CgroupMode::V1));
        assert_eq!(l.v1.len(), 5);
        assert_eq!(l.v1[0].controllers, ["name=systemd"]);
        assert_eq!(l.v1[1].controllers, ["cpu", "cpuacct"]);
        assert_eq!(l.v1[1].mountpoint, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(l.v1[4].root, "/docker/abc");
        assert!(l.v2.is_none());
    }

    #[test]
    fn v2_mountinfo() {
        let l = parse_mountinfo(V2_MOUNTINFO);
        assert_eq!(mode_of(&l), Some(CgroupMode::V2));
        assert!(l.v1.is_empty());
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
        assert_eq!(mode_of(&parse_mountinfo("")), None);
    }

    #[test]
    fn proc_cgroup_and_relative_resolution() {
        let text = "9:name=systemd:/user.slice\n4:memory:/process_api/f82c\n2:cpu,cpuacct:/a\n0::/init.scope\n";
        let own = parse_proc_cgroup(text);
        assert_eq!(
            own.get("memory").map(String::as_str),
            Some("/process_api/f82c")
        );
        assert_eq!(own.get("cpuacct").map(String::as_str), Some("/a"));
        assert_eq!(
            own.get("name=systemd").map(String::as_str),
            Some("/user.slice")
        );
        assert_eq!(own.get("").map(String::as_str), Some("/init.scope"));

        let h = Hierarchy {
            controllers: vec!["memory".into()],
            mountpoint: "/sys/fs/cgroup/memory".into(),
            root: "/".into(),
        };
        assert_eq!(
            resolve(&h, own.get("memory").map(String::as_str), "berth/x"),
            Path::new("/sys/fs/cgroup/memory/process_api/f82c/berth/x")
        );
        assert_eq!(
            resolve(&h, Some("/process_api/f82c"), "/berth/../../x/./y"),
            Path::new("/sys/fs/cgroup/memory/x/y")
        );
        let nested = Hierarchy {
            root: "/docker/abc".into(),
            ..h
        };
        assert_eq!(
            resolve(&nested, Some("/docker/abc/sub"), "c1"),
            Path::new("/sys/fs/cgroup/memory/sub/c1")
        );
    }
}
