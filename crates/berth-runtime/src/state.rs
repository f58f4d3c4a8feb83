//! The state directory of a container: what survives between runtime invocations.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io, Result, RuntimeError};

/// The OCI status of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime records about a container in `<root>/<id>/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Host pid of the container's init process.
    pub pid: i32,
    /// Start time of that pid (field 22 of /proc/PID/stat), to detect pid reuse.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub cgroup_mode: String,
    pub cgroup_paths: BTreeMap<String, PathBuf>,
    /// The config the container was created with (resources updated by `update`).
    pub config: oci_spec::runtime::Spec,
}

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// Checks a container id the way runc does: letters, digits and `_ + - .`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(RuntimeError::InvalidId(id.into(), "must not be empty"));
    }
    if id == "." || id == ".." {
        return Err(RuntimeError::InvalidId(id.into(), "must not be . or .."));
    }
    if id.contains('/') {
        return Err(RuntimeError::InvalidId(
            id.into(),
            "must not contain a slash",
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
    {
        return Err(RuntimeError::InvalidId(
            id.into(),
            "only letters, digits, '_', '+', '-' and '.' are allowed",
        ));
    }
    if id.len() > 1024 {
        return Err(RuntimeError::InvalidId(id.into(), "too long"));
    }
    Ok(())
}

impl State {
    pub fn dir(root: &Path, id: &str) -> PathBuf {
        root.join(id)
    }

    /// Loads the state of container `id` under `root`.
    pub fn load(root: &Path, id: &str) -> Result<State> {
        validate_id(id)?;
        let path = Self::dir(root, id).join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => return Err(io("read", &path)(e)),
        };
        serde_json::from_slice(&data).map_err(|e| RuntimeError::BadState {
            id: id.to_string(),
            msg: format!("{}: {e}", path.display()),
        })
    }

    /// Writes the state atomically (temp file then rename).
    pub fn save(&self, root: &Path) -> Result<()> {
        let dir = Self::dir(root, &self.id);
        let tmp = dir.join(".state.json.tmp");
        let data = serde_json::to_vec(self).map_err(|e| RuntimeError::Other(e.to_string()))?;
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&data).map_err(io("write", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, dir.join(STATE_FILE)).map_err(io("rename", &tmp))
    }

    /// Works out the current status from the live system.
    pub fn status(&self, root: &Path) -> Status {
        if !pid_alive(self.pid, self.pid_start) {
            return Status::Stopped;
        }
        if let Ok(mode) = parse_mode(&self.cgroup_mode) {
            let cg = berth_cgroups::manager_from_paths(mode, &self.cgroup_paths);
            if let Ok(berth_cgroups::FreezerState::Frozen) = cg.freezer_state() {
                return Status::Paused;
            }
        }
        if Self::dir(root, &self.id).join(EXEC_FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// The cgroup manager recorded for this container.
    pub fn cgroup(&self) -> Result<Box<dyn berth_cgroups::CgroupManager>> {
        Ok(berth_cgroups::manager_from_paths(
            parse_mode(&self.cgroup_mode)?,
            &self.cgroup_paths,
        ))
    }

    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.config
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The OCI state object as runtimes print it and hooks receive it (runc's field order).
    pub fn oci_json(&self, status: Status) -> serde_json::Value {
        serde_json::to_value(self.oci_state(status)).unwrap_or_default()
    }

    /// The OCI state as a struct, for printing with runc's field order.
    pub fn oci_state(&self, status: Status) -> OciState {
        let ann = self.annotations();
        OciState {
            oci_version: "1.2.0".into(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.to_string(),
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: if ann.is_empty() { None } else { Some(ann) },
        }
    }
}

/// The state object of the OCI runtime spec, with the extra fields runc prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

pub fn mode_name(m: berth_cgroups::CgroupMode) -> &'static str {
    match m {
        berth_cgroups::CgroupMode::V1 => "v1",
        berth_cgroups::CgroupMode::Hybrid => "hybrid",
        berth_cgroups::CgroupMode::V2 => "v2",
    }
}

pub fn parse_mode(s: &str) -> Result<berth_cgroups::CgroupMode> {
    Ok(match s {
        "v1" => berth_cgroups::CgroupMode::V1,
        "hybrid" => berth_cgroups::CgroupMode::Hybrid,
        "v2" => berth_cgroups::CgroupMode::V2,
        other => {
            return Err(RuntimeError::Other(format!(
                "unknown cgroup mode {other:?} in state"
            )))
        }
    })
}

/// Reads (start time, state char) of a pid from /proc.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let data = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &data[data.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // rest starts at field 3; starttime is field 22 → index 19 after state.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// True when `pid` is a live (non-zombie) process that started at `start`.
pub fn pid_alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Some((s, st)) => s == start && st != 'Z' && st != 'X',
        None => false,
    }
}

/// Ids of all containers under root, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io("read dir", root)(e)),
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// RFC 3339 UTC timestamp with nanoseconds, as runc prints `created`.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a\0b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339(1_700_000_000, 5),
            "2023-11-14T22:13:20.000000005Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400, 0),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn own_stat() {
        let (start, st) = proc_stat(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(st == 'R' || st == 'S');
        assert!(pid_alive(std::process::id() as i32, start));
        assert!(!pid_alive(std::process::id() as i32, start + 1));
    }
}
