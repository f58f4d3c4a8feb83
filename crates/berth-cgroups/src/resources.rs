//! Berth's own resource settings (`Resources` and friends) and the value conversions shared by drivers.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Resource settings for a container cgroup. Every field is optional: `None` (or an empty list
/// or map) leaves the kernel's current value alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Resources {
    pub memory: MemoryResources,
    pub cpu: CpuResources,
    /// `<= 0` means unlimited ("max").
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub blkio_leaf_weight: Option<u16>,
    /// Applied in order (later rules override earlier ones).
    pub devices: Vec<DeviceRule>,
    /// cgroup v2 file name -> raw value, written verbatim.
    pub unified: BTreeMap<String, String>,
}

/// Memory settings, in bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct MemoryResources {
    /// -1 is unlimited.
    pub limit: Option<i64>,
    /// Soft limit (v1 `memory.soft_limit_in_bytes`, v2 `memory.low`).
    pub reservation: Option<i64>,
    /// OCI semantics: memory + swap total; -1 unlimited.
    pub swap: Option<i64>,
    pub swappiness: Option<u64>,
    pub disable_oom_killer: Option<bool>,
}

/// CPU and cpuset settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct CpuResources {
    pub shares: Option<u64>,
    /// Microseconds per period; -1 (or any value <= 0) is unlimited.
    pub quota: Option<i64>,
    pub period: Option<u64>,
    pub realtime_runtime: Option<i64>,
    pub realtime_period: Option<u64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
    pub idle: Option<i64>,
}

/// Which devices a rule is about.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum DeviceKind {
    All,
    Char,
    Block,
}

/// One device cgroup rule, like an entry of the OCI `linux.resources.devices` list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    /// `None` = any (`*`).
    pub major: Option<i64>,
    /// `None` = any (`*`).
    pub minor: Option<i64>,
    /// Subset of "rwm"; empty means "rwm".
    pub access: String,
}

impl DeviceRule {
    /// The access string with the empty default expanded.
    pub(crate) fn access_or_all(&self) -> &str {
        if self.access.is_empty() {
            "rwm"
        } else {
            &self.access
        }
    }

    /// The line the v1 devices controller takes, e.g. "c 1:3 rwm" or "a *:* rwm".
    pub fn v1_line(&self) -> String {
        let t = match self.kind {
            DeviceKind::All => 'a',
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let num = |n: Option<i64>| match n {
            Some(n) if n >= 0 => n.to_string(),
            _ => "*".to_string(),
        };
        format!(
            "{t} {}:{} {}",
            num(self.major),
            num(self.minor),
            self.access_or_all()
        )
    }
}

/// cgroup v1 `cpu.shares` to cgroup v2 `cpu.weight`, as runc converts it
/// (`1 + ((shares - 2) * 9999) / 262142`, shares clamped to 2..=262144; 0 = unset).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// cgroup v1 `blkio.weight` to cgroup v2 `io.weight`, as runc converts it
/// (`1 + (weight - 10) * 9999 / 990`, weight clamped to 10..=1000; 0 = unset).
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// OCI memory.swap (memory+swap) to the v2 `memory.swap.max` value, as runc does.
/// `Ok(None)` = leave alone; `Ok(Some(-1))` = "max".
pub(crate) fn swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>, String> {
    let swap = swap.unwrap_or(0);
    let limit = limit.unwrap_or(0);
    if limit == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(None);
    }
    if swap == -1 {
        return Ok(Some(-1));
    }
    if limit == 0 || limit == -1 {
        return Err("unable to set swap limit without memory limit".into());
    }
    if limit < 0 {
        return Err(format!("invalid memory limit {limit}"));
    }
    if swap < limit {
        return Err(format!(
            "memory+swap limit {swap} should be >= memory limit {limit}"
        ));
    }
    Ok(Some(swap - limit))
}

/// A limit as a cgroup v2 value: negative = "max".
pub(crate) fn v2_limit(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_matches_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10000);
    }

    #[test]
    fn blkio_weight_to_io_weight_matches_runc() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10000);
        assert_eq!(blkio_weight_to_io_weight(5), 1);
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_to_v2(None, None), Ok(None));
        assert_eq!(swap_to_v2(None, Some(-1)), Ok(Some(-1)));
        assert_eq!(swap_to_v2(Some(-1), Some(100)), Ok(Some(-1)));
        assert_eq!(swap_to_v2(Some(300), Some(100)), Ok(Some(200)));
        assert_eq!(swap_to_v2(Some(100), Some(100)), Ok(Some(0)));
        assert!(swap_to_v2(Some(50), Some(100)).is_err());
        assert!(swap_to_v2(Some(50), None).is_err());
    }

    #[test]
    fn v1_device_lines() {
        let r = |kind, major, minor, access: &str| DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access: access.into(),
        };
        assert_eq!(
            r(DeviceKind::Char, Some(1), Some(3), "").v1_line(),
            "c 1:3 rwm"
        );
        assert_eq!(r(DeviceKind::Block, None, None, "m").v1_line(), "b *:* m");
        assert_eq!(r(DeviceKind::All, None, None, "").v1_line(), "a *:* rwm");
        assert_eq!(
            r(DeviceKind::Char, Some(136), None, "rw").v1_line(),
            "c 136:* rw"
        );
    }
}
