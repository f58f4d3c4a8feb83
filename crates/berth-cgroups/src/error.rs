//! The crate's error type, `CgroupError`, and the small file helpers that produce it.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Everything this crate can fail with. Messages are lowercase and name the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// An I/O operation (read, mkdir, rmdir, open, ...) on a path failed.
    #[error("{op} {}: {}", path.display(), os_msg(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel (or the filesystem) refused a value written to a cgroup file.
    #[error("write {}: {} (value {value:?})", path.display(), os_msg(source))]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// A cgroup file held something we could not parse.
    #[error("parse {}: {reason}: {content:?}", path.display())]
    Parse {
        path: PathBuf,
        content: String,
        reason: &'static str,
    },
    /// The requested setting cannot be applied on this host or in this mode.
    #[error("{what}: {reason}")]
    Unsupported { what: String, reason: String },
    /// A `unified` key that would escape the cgroup directory.
    #[error("invalid unified key {0:?}: must be a plain file name")]
    InvalidKey(String),
    /// The cgroups path is unusable.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// No cgroup hierarchy could be found.
    #[error("no cgroup hierarchy found: {0}")]
    NoHierarchy(String),
    /// The freezer did not reach the requested state in time.
    #[error("freeze {}: {reason}", path.display())]
    Freeze { path: PathBuf, reason: String },
    /// A device rule cannot be expressed.
    #[error("device rule {index}: {reason}")]
    DeviceRule { index: usize, reason: String },
    /// A bpf(2) call failed.
    #[error("bpf {op} on {}: {}", path.display(), os_msg(source))]
    Bpf {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CgroupError {
    /// True when this is an errno of `code` (e.g. `libc::EINVAL`) from the kernel.
    pub fn is_errno(&self, code: i32) -> bool {
        match self {
            CgroupError::Io { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Bpf { source, .. } => source.raw_os_error() == Some(code),
            _ => false,
        }
    }
}

/// `io::Error` text without the " (os error N)" suffix std appends.
fn os_msg(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub(crate) type Result<T> = std::result::Result<T, CgroupError>;

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { op, path, source }
}

/// Reads a whole cgroup file.
pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(io_err("read", path))
}

/// Reads a cgroup file, `None` if it does not exist.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Writes a value to an existing cgroup file (never creates it), in one write(2).
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    let err = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(err)?;
    f.write_all(value.as_bytes()).map_err(err)
}

/// Parses one number; "max" (and an empty file) mean unlimited / unset as given by `max`.
pub(crate) fn parse_u64(path: &Path, text: &str, max: u64) -> Result<u64> {
    let t = text.trim();
    if t == "max" {
        return Ok(max);
    }
    t.parse::<u64>().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: text.to_string(),
        reason: "not a number",
    })
}

/// Reads an optional single-number file; `None` when the file is missing or empty.
pub(crate) fn read_u64_opt(path: &Path, max: u64) -> Result<Option<u64>> {
    match read_opt(path)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => parse_u64(path, &s, max).map(Some),
    }
}

/// Parses "key value" lines (memory.stat, cpu.stat, cgroup.events, ...).
pub(crate) fn flat_keyed(path: &Path, text: &str) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let v = parse_u64(path, v, u64::MAX).map_err(|_| CgroupError::Parse {
            path: path.to_path_buf(),
            content: line.to_string(),
            reason: "bad key value line",
        })?;
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_without_os_error_suffix() {
        let e = CgroupError::Write {
            path: "/sys/fs/cgroup/memory/berth/x/memory.limit_in_bytes".into(),
            value: "1".into(),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert_eq!(
            e.to_string(),
            "write /sys/fs/cgroup/memory/berth/x/memory.limit_in_bytes: Invalid argument (value \"1\")"
        );
        assert!(e.is_errno(libc::EINVAL));
    }

    #[test]
    fn odd_contents_do_not_panic() {
        let p = Path::new("/x");
        assert_eq!(parse_u64(p, "max\n", 7).ok(), Some(7));
        assert_eq!(parse_u64(p, " 12\n", 7).ok(), Some(12));
        assert!(parse_u64(p, "", 7).is_err());
        assert!(parse_u64(p, "-1", 7).is_err());
        let m = flat_keyed(p, "a 1\n\nb max\nc\n").ok();
        assert_eq!(m.as_ref().and_then(|m| m.get("a")), Some(&1));
        assert_eq!(m.as_ref().and_then(|m| m.get("b")), Some(&u64::MAX));
        assert!(flat_keyed(p, "a x\n").is_err());
    }

    #[test]
    fn write_never_creates() {
        let d = tempfile::tempdir().ok();
        let Some(d) = d else { return };
        let p = d.path().join("nope");
        let e = write(&p, "1").err();
        assert!(e.is_some_and(|e| e.is_errno(libc::ENOENT)));
        assert!(!p.exists());
    }
}
