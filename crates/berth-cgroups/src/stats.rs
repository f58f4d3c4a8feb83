//! `Stats`, shaped like the "data" object of runc's `events --stats`, and the readers that fill
//! it from v1 and v2 cgroup files.

use crate::error::{flat_keyed, parse_u64, read_opt, read_u64_opt, CgroupError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Resource usage of a container cgroup. JSON field names follow runc's `types.Stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time, in nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

/// CFS throttling counters; time in nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// One memory counter set; `limit` is u64::MAX when unlimited on v2.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// v2 memory.events counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MemoryEventCount {
    pub low: u64,
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// Memory + swap, as v1 reports it (v2 values are converted).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    pub event_count: MemoryEventCount,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct BlkioStats {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct HugetlbStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn read_list(path: &Path) -> Result<Vec<u64>> {
    let Some(s) = read_opt(path)? else {
        return Ok(Vec::new());
    };
    s.split_whitespace()
        .map(|v| parse_u64(path, v, u64::MAX))
        .collect()
}

fn read_map(path: &Path) -> Result<Option<BTreeMap<String, u64>>> {
    match read_opt(path)? {
        Some(s) => flat_keyed(path, &s).map(Some),
        None => Ok(None),
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// v1 cpu + cpuacct. Missing files are skipped (the controller may not be mounted).
pub(crate) fn v1_cpu(cpu: Option<&Path>, cpuacct: Option<&Path>, out: &mut CpuStats) -> Result<()> {
    if let Some(d) = cpuacct {
        let u = &mut out.usage;
        u.total = read_u64_opt(&d.join("cpuacct.usage"), u64::MAX)?.unwrap_or(0);
        u.percpu = read_list(&d.join("cpuacct.usage_percpu"))?;
        u.percpu_kernel = read_list(&d.join("cpuacct.usage_percpu_sys"))?;
        u.percpu_user = read_list(&d.join("cpuacct.usage_percpu_user"))?;
        if let Some(m) = read_map(&d.join("cpuacct.stat"))? {
            let ns = 1_000_000_000 / clock_ticks();
            u.user = m.get("user").copied().unwrap_or(0).saturating_mul(ns);
            u.kernel = m.get("system").copied().unwrap_or(0).saturating_mul(ns);
        }
    }
    if let Some(d) = cpu {
        if let Some(m) = read_map(&d.join("cpu.stat"))? {
            let t = &mut out.throttling;
            t.periods = m.get("nr_periods").copied().unwrap_or(0);
            t.throttled_periods = m.get("nr_throttled").copied().unwrap_or(0);
            t.throttled_time = m.get("throttled_time").copied().unwrap_or(0);
        }
    }
    Ok(())
}

fn v1_mem_entry(d: &Path, prefix: &str) -> Result<MemoryEntry> {
    let f = |name: &str| {
        if prefix.is_empty() {
            d.join(format!("memory.{name}"))
        } else {
            d.join(format!("memory.{prefix}.{name}"))
        }
    };
    Ok(MemoryEntry {
        limit: read_u64_opt(&f("limit_in_bytes"), u64::MAX)?.unwrap_or(0),
        usage: read_u64_opt(&f("usage_in_bytes"), u64::MAX)?.unwrap_or(0),
        max: read_u64_opt(&f("max_usage_in_bytes"), u64::MAX)?.unwrap_or(0),
        failcnt: read_u64_opt(&f("failcnt"), u64::MAX)?.unwrap_or(0),
    })
}

pub(crate) fn v1_memory(d: &Path, out: &mut MemoryStats) -> Result<()> {
    out.usage = v1_mem_entry(d, "")?;
    out.swap = v1_mem_entry(d, "memsw")?;
    out.kernel = v1_mem_entry(d, "kmem")?;
    out.kernel_tcp = v1_mem_entry(d, "kmem.tcp")?;
    if let Some(raw) = read_map(&d.join("memory.stat"))? {
        out.cache = raw.get("cache").copied().unwrap_or(0);
        out.raw = raw;
    }
    Ok(())
}

pub(crate) fn pids(d: &Path, out: &mut PidsStats) -> Result<()> {
    out.current = read_u64_opt(&d.join("pids.current"), 0)?.unwrap_or(0);
    out.limit = read_u64_opt(&d.join("pids.max"), 0)?.unwrap_or(0);
    Ok(())
}

/// Parses v1 blkio "8:0 Read 4096" lines ("Total ..." lines are skipped).
pub(crate) fn parse_blkio_v1(path: &Path, text: &str) -> Result<Vec<BlkioEntry>> {
    let bad = |line: &str| CgroupError::Parse {
        path: path.to_path_buf(),
        content: line.to_string(),
        reason: "bad blkio line",
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let (maj, min) = f[0].split_once(':').ok_or_else(|| bad(line))?;
        out.push(BlkioEntry {
            major: maj.parse().map_err(|_| bad(line))?,
            minor: min.parse().map_err(|_| bad(line))?,
            op: f[1].to_string(),
            value: f[2].parse().map_err(|_| bad(line))?,
        });
    }
    Ok(out)
}

pub(crate) fn v1_blkio(d: &Path, out: &mut BlkioStats) -> Result<()> {
    let first = |names: &[&str]| -> Result<Vec<BlkioEntry>> {
        for n in names {
            let p = d.join(n);
            if let Some(s) = read_opt(&p)? {
                return parse_blkio_v1(&p, &s);
            }
        }
        Ok(Vec::new())
    };
    out.io_service_bytes_recursive = first(&[
        "blkio.io_service_bytes_recursive",
        "blkio.bfq.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes_recursive",
    ])?;
    out.io_serviced_recursive = first(&[
        "blkio.io_serviced_recursive",
        "blkio.bfq.io_serviced_recursive",
        "blkio.throttle.io_serviced_recursive",
    ])?;
    Ok(())
}

pub(crate) fn v2_cpu(d: &Path, out: &mut CpuStats) -> Result<()> {
    let Some(m) = read_map(&d.join("cpu.stat"))? else {
        return Ok(());
    };
    let g = |k: &str| m.get(k).copied().unwrap_or(0);
    out.usage.total = g("usage_usec").saturating_mul(1000);
    out.usage.user = g("user_usec").saturating_mul(1000);
    out.usage.kernel = g("system_usec").saturating_mul(1000);
    out.throttling.periods = g("nr_periods");
    out.throttling.throttled_periods = g("nr_throttled");
    out.throttling.throttled_time = g("throttled_usec").saturating_mul(1000);
    Ok(())
}

pub(crate) fn v2_memory(d: &Path, out: &mut MemoryStats) -> Result<()> {
    out.usage = MemoryEntry {
        usage: read_u64_opt(&d.join("memory.current"), u64::MAX)?.unwrap_or(0),
        limit: read_u64_opt(&d.join("memory.max"), u64::MAX)?.unwrap_or(0),
        max: read_u64_opt(&d.join("memory.peak"), u64::MAX)?.unwrap_or(0),
        failcnt: 0,
    };
    if let Some(ev) = read_map(&d.join("memory.events"))? {
        let g = |k: &str| ev.get(k).copied().unwrap_or(0);
        out.usage.failcnt = g("max");
        out.event_count = MemoryEventCount {
            low: g("low"),
            high: g("high"),
            max: g("max"),
            oom: g("oom"),
            oom_kill: g("oom_kill"),
        };
    }
    // v1 reports swap as memory+swap; do the same for compatibility, as runc does.
    if let Some(su) = read_u64_opt(&d.join("memory.swap.current"), u64::MAX)? {
        let limit = read_u64_opt(&d.join("memory.swap.max"), u64::MAX)?.unwrap_or(u64::MAX);
        out.swap = MemoryEntry {
            usage: su.saturating_add(out.usage.usage),
            limit: if limit == u64::MAX {
                limit
            } else {
                limit.saturating_add(out.usage.limit)
            },
            max: read_u64_opt(&d.join("memory.swap.peak"), u64::MAX)?.unwrap_or(0),
            failcnt: read_map(&d.join("memory.swap.events"))?
                .and_then(|m| m.get("max").copied())
                .unwrap_or(0),
        };
    }
    if let Some(raw) = read_map(&d.join("memory.stat"))? {
        out.cache = raw.get("file").copied().unwrap_or(0);
        out.kernel.usage = raw.get("kernel").copied().unwrap_or(0);
        out.kernel_tcp.usage = raw.get("sock").copied().unwrap_or(0);
        out.raw = raw;
    }
    Ok(())
}

/// Parses v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0").
pub(crate) fn parse_io_stat(path: &Path, text: &str, out: &mut BlkioStats) -> Result<()> {
    let bad = |line: &str| CgroupError::Parse {
        path: path.to_path_buf(),
        content: line.to_string(),
        reason: "bad io.stat line",
    };
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(dev) = f.next() else { continue };
        let (maj, min) = dev.split_once(':').ok_or_else(|| bad(line))?;
        let major: u64 = maj.parse().map_err(|_| bad(line))?;
        let minor: u64 = min.parse().map_err(|_| bad(line))?;
        for kv in f {
            let (k, v) = kv.split_once('=').ok_or_else(|| bad(line))?;
            let (table, op) = match k {
                "rbytes" => (&mut out.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut out.io_service_bytes_recursive, "Write"),
                "rios" => (&mut out.io_serviced_recursive, "Read"),
                "wios" => (&mut out.io_serviced_recursive, "Write"),
                _ => continue,
            };
            table.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: v.parse().map_err(|_| bad(line))?,
            });
        }
    }
    Ok(())
}

pub(crate) fn v2_io(d: &Path, out: &mut BlkioStats) -> Result<()> {
    let p = d.join("io.stat");
    if let Some(s) = read_opt(&p)? {
        parse_io_stat(&p, &s, out)?;
    }
    Ok(())
}

/// hugetlb.<size>.usage_in_bytes (v1) or hugetlb.<size>.current (v2) for each page size present.
pub(crate) fn hugetlb(d: &Path, v2: bool, out: &mut BTreeMap<String, HugetlbStats>) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(d) else {
        return Ok(());
    };
    let (usage_sfx, max_sfx) = if v2 {
        (".current", ".max")
    } else {
        (".usage_in_bytes", ".max_usage_in_bytes")
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|r| r.strip_suffix(usage_sfx))
        else {
            continue;
        };
        if size.contains('.') {
            continue;
        }
        let usage = read_u64_opt(&e.path(), u64::MAX)?.unwrap_or(0);
        let (max, failcnt) = if v2 {
            let ev = read_map(&d.join(format!("hugetlb.{size}.events")))?;
            (0, ev.and_then(|m| m.get("max").copied()).unwrap_or(0))
        } else {
            (
                read_u64_opt(&d.join(format!("hugetlb.{size}{max_sfx}")), u64::MAX)?.unwrap_or(0),
                read_u64_opt(&d.join(format!("hugetlb.{size}.failcnt")), u64::MAX)?.unwrap_or(0),
            )
        };
        out.insert(
            size.to_string(),
            HugetlbStats {
                usage,
                max,
                failcnt,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn clk() -> u64 {
        clock_ticks()
    }

    #[test]
    fn json_field_names_follow_runc() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5;
        s.cpu.usage.percpu = vec![2, 3];
        s.cpu.throttling.throttled_periods = 1;
        s.cpu.throttling.throttled_time = 2;
        s.memory.usage.usage = 1;
        s.memory.raw.insert("cache".into(), 7);
        s.pids.current = 1;
        s.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 1,
        });
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cpu"]["usage"]["total"], 5);
        assert_eq!(v["cpu"]["usage"]["percpu"][1], 3);
        assert_eq!(v["cpu"]["usage"]["kernel"], 0);
        assert!(v["cpu"]["usage"].get("percpu_kernel").is_none());
        assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 1);
        assert_eq!(v["cpu"]["throttling"]["throttledTime"], 2);
        assert_eq!(v["memory"]["usage"]["usage"], 1);
        assert_eq!(v["memory"]["usage"]["limit"], 0);
        assert_eq!(v["memory"]["kernelTCP"]["failcnt"], 0);
        assert_eq!(v["memory"]["raw"]["cache"], 7);
        assert_eq!(v["pids"]["current"], 1);
        assert!(v["pids"].get("limit").is_none());
        assert_eq!(v["blkio"]["ioServiceBytesRecursive"][0]["op"], "Read");
        assert!(v["hugetlb"].as_object().unwrap().is_empty());
    }

    #[test]
    fn odd_files_do_not_panic() {
        let p = Path::new("/x/io.stat");
        let mut b = BlkioStats::default();
        parse_io_stat(p, "\n8:0 rbytes=1 newkey=5\n", &mut b).unwrap();
        assert_eq!(b.io_service_bytes_recursive.len(), 1);
        assert!(parse_io_stat(p, "8-0 rbytes=1\n", &mut b).is_err());
        assert!(parse_io_stat(p, "8:0 rbytes\n", &mut b).is_err());
        let e = parse_blkio_v1(p, "8:0 Read x\n").unwrap_err().to_string();
        assert!(e.starts_with("parse /x/io.stat: bad blkio line"), "{e}");
        assert!(parse_blkio_v1(p, "Total 5\n\n").unwrap().is_empty());
    }
}
