//! Snapshotter: committed read-only layer dirs and writable snapshots under one root, handed out as mount descriptions (overlayfs, or full copies where overlay is unavailable).
//!
//! Layout under the root:
//! - `kind`: `overlay` or `copy`, fixed when the root is first opened;
//! - `snapshots/<n>/fs` (and `work` for an active overlay snapshot), `snapshots/<n>/meta.json`
//!   (key, parent, kind), both in place before the snapshot becomes visible;
//! - `keys/<key>`: a symlink to `<n>`, created last with `symlink(2)` so that exactly one of
//!   several concurrent writers of a key wins; the losers discard their work;
//! - `tmp/<pid>-*`: staging dirs, renamed into `snapshots/` when complete (left-overs of dead
//!   processes are removed on open).
//!
//! Short numeric dir names keep overlay's `lowerdir=` option short; chains too long for one
//! page of mount data are mounted by [`mount_all`] with the new mount API (`lowerdir+`).
//! Knows nothing of images or containers.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layer::WhiteoutMode;

/// Longest accepted snapshot key, in bytes.
const MAX_KEY_LEN: usize = 200;
/// Longest parent chain followed (overlay itself stacks at most 500 layers).
const MAX_CHAIN: usize = 1000;
/// Mount data is limited to one page, including its NUL.
const MOUNT_DATA_MAX: usize = 4095;

/// Errors of the snapshotter; each names the key or path that failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("invalid snapshot key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("snapshot {key} not found")]
    NotFound { key: String },
    #[error("snapshot {key} already exists")]
    AlreadyExists { key: String },
    #[error("snapshot {key} is active, not committed")]
    NotCommitted { key: String },
    #[error("snapshot {key} is the parent of snapshot {child}")]
    HasChild { key: String, child: String },
    #[error("filling snapshot {key}: {message}")]
    Fill { key: String, message: String },
    #[error("snapshot root {root} holds {stored} snapshots, not {requested}")]
    KindMismatch {
        root: PathBuf,
        stored: Kind,
        requested: Kind,
    },
    #[error("snapshot root {root} cannot hold overlay snapshots: {reason}")]
    InvalidRoot { root: PathBuf, reason: &'static str },
    #[error("snapshot metadata {path}: {message}")]
    Metadata { path: PathBuf, message: String },
    #[error("snapshot {key}: the parent chain is longer than {MAX_CHAIN} or loops")]
    Chain { key: String },
    #[error("mounting {typ} on {target}: {source}")]
    Mount {
        typ: String,
        target: PathBuf,
        source: io::Error,
    },
    #[error("unmounting {target}: {source}")]
    Unmount { target: PathBuf, source: io::Error },
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> SnapshotError + 'p {
    move |source| SnapshotError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One mount: `mount -t typ source target -o options`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub typ: String,
    pub source: String,
    pub options: Vec<String>,
}

/// How snapshots are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One directory per layer holding only that layer, stacked with overlayfs.
    Overlay,
    /// Each snapshot is a full copy of its parent plus its own changes.
    Copy,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Overlay => "overlay",
            Kind::Copy => "copy",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a snapshot is writable (for a container) or committed (read-only, a layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    Active,
    Committed,
}

/// One snapshot as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub key: String,
    pub kind: SnapshotKind,
    pub parent: Option<String>,
    /// Disk usage of the snapshot's own directory in bytes (hard links counted once).
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    key: String,
    parent: Option<String>,
    kind: SnapshotKind,
    /// Seconds since the epoch.
    created: u64,
}

/// Snapshots under one root directory.
#[derive(Debug)]
pub struct Snapshotter {
    root: PathBuf,
    kind: Kind,
}

impl Snapshotter {
    /// Open (creating) a snapshot root. `None` uses the kind the root was created with or,
    /// for a new root, probes an overlay mount under it and falls back to [`Kind::Copy`].
    pub fn open(root: &Path, kind: Option<Kind>) -> Result<Snapshotter, SnapshotError> {
        for dir in [
            root.to_path_buf(),
            root.join("snapshots"),
            root.join("keys"),
            root.join("tmp"),
        ] {
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        }
        let root = fs::canonicalize(root).map_err(io_err("resolving", root))?;
        clean_stale(&root.join("tmp"));
        let kind_file = root.join("kind");
        let kind = match (read_kind(&kind_file)?, kind) {
            (Some(stored), Some(requested)) if stored != requested => {
                return Err(SnapshotError::KindMismatch {
                    root,
                    stored,
                    requested,
                })
            }
            (Some(stored), _) => stored,
            (None, requested) => {
                let chosen = match requested {
                    Some(k) => k,
                    None if probe_overlay(&root) => Kind::Overlay,
                    None => Kind::Copy,
                };
                let stored = write_kind(&root, &kind_file, chosen)?;
                if stored != chosen && requested.is_some() {
                    return Err(SnapshotError::KindMismatch {
                        root,
                        stored,
                        requested: chosen,
                    });
                }
                stored
            }
        };
        if kind == Kind::Overlay {
            let bytes = root.as_os_str().as_bytes();
            if bytes.iter().any(|b| matches!(b, b',' | b':' | b'\\')) {
                return Err(SnapshotError::InvalidRoot {
                    root,
                    reason: "its path contains ',', ':' or '\\'",
                });
            }
        }
        Ok(Snapshotter { root, kind })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The root directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How layers must be unpacked into [`Snapshotter::commit`]'s directory.
    pub fn whiteout_mode(&self) -> WhiteoutMode {
        match self.kind {
            Kind::Overlay => WhiteoutMode::Overlay,
            Kind::Copy => WhiteoutMode::Apply,
        }
    }

    /// Whether `key` exists and is committed.
    pub fn committed(&self, key: &str) -> bool {
        matches!(self.lookup(key), Ok(Some((_, m))) if m.kind == SnapshotKind::Committed)
    }

    /// Create the committed, read-only snapshot `key`: `parent` plus what `fill` writes into
    /// the directory it is given. Overlay: the directory is empty (this layer only); copy: it
    /// starts as a full copy of the parent. `fill` runs in a staging dir renamed into place on
    /// success and removed on failure. If `key` is already committed (before or while we fill),
    /// our work is discarded and the call succeeds.
    pub fn commit<F, E>(
        &self,
        key: &str,
        parent: Option<&str>,
        fill: F,
    ) -> Result<(), SnapshotError>
    where
        F: FnOnce(&Path) -> Result<(), E>,
        E: std::fmt::Display,
    {
        check_key(key)?;
        if let Some((_, m)) = self.lookup(key)? {
            return match m.kind {
                SnapshotKind::Committed => Ok(()),
                SnapshotKind::Active => Err(SnapshotError::AlreadyExists { key: key.into() }),
            };
        }
        let parent_dir = self.committed_parent(parent)?;
        let staging = self.staging()?;
        let fs_dir = staging.path().join("fs");
        match (self.kind, &parent_dir) {
            (Kind::Copy, Some(pdir)) => copy_tree(&pdir.join("fs"), &fs_dir)?,
            _ => make_dir(&fs_dir, 0o755)?,
        }
        fill(&fs_dir).map_err(|e| SnapshotError::Fill {
            key: key.into(),
            message: e.to_string(),
        })?;
        self.write_meta(staging.path(), key, parent, SnapshotKind::Committed)?;
        if self.publish(staging, key)? {
            return Ok(());
        }
        match self.lookup(key)? {
            Some((_, m)) if m.kind == SnapshotKind::Committed => Ok(()),
            _ => Err(SnapshotError::AlreadyExists { key: key.into() }),
        }
    }

    /// Create the active (writable) snapshot `id` over the committed `parent` and return how
    /// to mount it. Overlay: an upper and work dir over the parent's chain of layer dirs,
    /// shared read-only with every other user of them; copy: a full copy of the parent.
    pub fn prepare(&self, id: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        check_key(id)?;
        if self.lookup(id)?.is_some() {
            return Err(SnapshotError::AlreadyExists { key: id.into() });
        }
        let parent_dir = self.committed_parent(parent)?;
        let staging = self.staging()?;
        let fs_dir = staging.path().join("fs");
        match (self.kind, &parent_dir) {
            (Kind::Copy, Some(pdir)) => copy_tree(&pdir.join("fs"), &fs_dir)?,
            (Kind::Overlay, Some(pdir)) => {
                make_dir(&fs_dir, 0o755)?;
                make_dir(&staging.path().join("work"), 0o700)?;
                // The merged root takes its owner and mode from the upper dir: use the image's.
                copy_root_attrs(&pdir.join("fs"), &fs_dir)?;
            }
            (Kind::Overlay, None) => {
                make_dir(&fs_dir, 0o755)?;
                make_dir(&staging.path().join("work"), 0o700)?;
            }
            (Kind::Copy, None) => make_dir(&fs_dir, 0o755)?,
        }
        self.write_meta(staging.path(), id, parent, SnapshotKind::Active)?;
        if !self.publish(staging, id)? {
            return Err(SnapshotError::AlreadyExists { key: id.into() });
        }
        self.mounts(id)
    }

    /// How to mount snapshot `id`: writable for an active one, read-only for a committed one.
    pub fn mounts(&self, id: &str) -> Result<Vec<Mount>, SnapshotError> {
        let (dir, meta) = self
            .lookup(id)?
            .ok_or_else(|| SnapshotError::NotFound { key: id.into() })?;
        let fs_dir = dir.join("fs");
        let mount = match (self.kind, meta.kind) {
            (Kind::Overlay, SnapshotKind::Active) => match &meta.parent {
                None => bind(&fs_dir, false),
                Some(parent) => Mount {
                    typ: "overlay".into(),
                    source: "overlay".into(),
                    options: vec![
                        format!("lowerdir={}", join_lowers(&self.chain(parent)?)),
                        format!("upperdir={}", fs_dir.display()),
                        format!("workdir={}", dir.join("work").display()),
                    ],
                },
            },
            (Kind::Overlay, SnapshotKind::Committed) => {
                let lowers = self.chain(id)?;
                if lowers.len() == 1 {
                    bind(&fs_dir, true)
                } else {
                    Mount {
                        typ: "overlay".into(),
                        source: "overlay".into(),
                        options: vec![format!("lowerdir={}", join_lowers(&lowers))],
                    }
                }
            }
            (Kind::Copy, SnapshotKind::Active) => bind(&fs_dir, false),
            (Kind::Copy, SnapshotKind::Committed) => bind(&fs_dir, true),
        };
        Ok(vec![mount])
    }

    /// Remove a snapshot: an active one, or a committed one no other snapshot depends on.
    /// Unmount it first.
    pub fn remove(&self, id: &str) -> Result<(), SnapshotError> {
        let (dir, meta) = self
            .lookup(id)?
            .ok_or_else(|| SnapshotError::NotFound { key: id.into() })?;
        if meta.kind == SnapshotKind::Committed {
            for (_, other) in self.all()? {
                if other.parent.as_deref() == Some(id) {
                    return Err(SnapshotError::HasChild {
                        key: id.into(),
                        child: other.key,
                    });
                }
            }
        }
        let link = self.root.join("keys").join(id);
        match fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SnapshotError::NotFound { key: id.into() })
            }
            Err(e) => return Err(io_err("removing", &link)(e)),
        }
        // Move it out of snapshots/ first so a half-removed tree is never found by id.
        let trash = self.root.join("tmp").join(format!(
            "{}-removed-{}",
            std::process::id(),
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let victim = match fs::rename(&dir, &trash) {
            Ok(()) => trash,
            Err(_) => dir,
        };
        fs::remove_dir_all(&victim).map_err(io_err("removing", &victim))
    }

    /// Every snapshot, sorted by key.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let mut out = Vec::new();
        for (dir, meta) in self.all()? {
            let size = disk_usage(&dir.join("fs"))?;
            out.push(SnapshotInfo {
                key: meta.key,
                kind: meta.kind,
                parent: meta.parent,
                size,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Disk usage in bytes of the snapshot's own directory (for overlay, its layer only).
    pub fn usage(&self, key: &str) -> Result<u64, SnapshotError> {
        let (dir, _) = self
            .lookup(key)?
            .ok_or_else(|| SnapshotError::NotFound { key: key.into() })?;
        disk_usage(&dir.join("fs"))
    }

    /// The directories a mount of `key` stacks, top first: for a committed snapshot its own
    /// dir and its ancestors', for an active one its parent's chain (without its upper dir).
    pub fn lower_dirs(&self, key: &str) -> Result<Vec<PathBuf>, SnapshotError> {
        let (_, meta) = self
            .lookup(key)?
            .ok_or_else(|| SnapshotError::NotFound { key: key.into() })?;
        match (meta.kind, meta.parent) {
            (SnapshotKind::Committed, _) => self.chain(key),
            (SnapshotKind::Active, Some(parent)) => self.chain(&parent),
            (SnapshotKind::Active, None) => Ok(Vec::new()),
        }
    }

    // -----------------------------------------------------------------------------------------

    fn lookup(&self, key: &str) -> Result<Option<(PathBuf, Meta)>, SnapshotError> {
        check_key(key)?;
        let link = self.root.join("keys").join(key);
        let target = match fs::read_link(&link) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &link)(e)),
        };
        let id = target
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| SnapshotError::Metadata {
                path: link.clone(),
                message: format!(
                    "points to {} instead of a snapshot number",
                    target.display()
                ),
            })?;
        let dir = self.root.join("snapshots").join(id.to_string());
        match read_meta(&dir)? {
            // Removed between the two reads.
            None => Ok(None),
            Some(meta) => Ok(Some((dir, meta))),
        }
    }

    fn all(&self) -> Result<Vec<(PathBuf, Meta)>, SnapshotError> {
        let keys = self.root.join("keys");
        let mut out = Vec::new();
        for entry in fs::read_dir(&keys).map_err(io_err("reading", &keys))? {
            let entry = entry.map_err(io_err("reading", &keys))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if check_key(&name).is_err() {
                continue;
            }
            if let Some(found) = self.lookup(&name)? {
                out.push(found);
            }
        }
        Ok(out)
    }

    fn committed_parent(&self, parent: Option<&str>) -> Result<Option<PathBuf>, SnapshotError> {
        let Some(parent) = parent else {
            return Ok(None);
        };
        let (dir, meta) = self
            .lookup(parent)?
            .ok_or_else(|| SnapshotError::NotFound { key: parent.into() })?;
        if meta.kind != SnapshotKind::Committed {
            return Err(SnapshotError::NotCommitted { key: parent.into() });
        }
        Ok(Some(dir))
    }

    /// The fs dirs of `key` and its ancestors, top first.
    fn chain(&self, key: &str) -> Result<Vec<PathBuf>, SnapshotError> {
        let mut out = Vec::new();
        let mut cur = Some(key.to_string());
        while let Some(k) = cur {
            if out.len() >= MAX_CHAIN {
                return Err(SnapshotError::Chain { key: key.into() });
            }
            let (dir, meta) = self.lookup(&k)?.ok_or(SnapshotError::NotFound { key: k })?;
            out.push(dir.join("fs"));
            cur = meta.parent;
        }
        Ok(out)
    }

    fn staging(&self) -> Result<tempfile::TempDir, SnapshotError> {
        let tmp = self.root.join("tmp");
        tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .tempdir_in(&tmp)
            .map_err(io_err("creating a staging dir in", &tmp))
    }

    fn write_meta(
        &self,
        dir: &Path,
        key: &str,
        parent: Option<&str>,
        kind: SnapshotKind,
    ) -> Result<(), SnapshotError> {
        let meta = Meta {
            key: key.into(),
            parent: parent.map(str::to_owned),
            kind,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let path = dir.join("meta.json");
        let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| SnapshotError::Metadata {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut f = fs::File::create(&path).map_err(io_err("creating", &path))?;
        f.write_all(&bytes).map_err(io_err("writing", &path))?;
        f.sync_all().map_err(io_err("syncing", &path))
    }

    /// Move a complete staging dir to `snapshots/<n>` and create `keys/<key>` pointing to it.
    /// Returns false (and discards the dir) when another writer created `key` first.
    fn publish(&self, staging: tempfile::TempDir, key: &str) -> Result<bool, SnapshotError> {
        let snapshots = self.root.join("snapshots");
        let mut n = next_id(&snapshots)?;
        let dir = loop {
            let dir = snapshots.join(n.to_string());
            match rename_noreplace(staging.path(), &dir) {
                Ok(()) => break dir,
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) =>
                {
                    n += 1
                }
                Err(e) => return Err(io_err("moving a staging dir to", &dir)(e)),
            }
        };
        // The staging path no longer exists: nothing for the guard to clean.
        let _ = staging.keep();
        let link = self.root.join("keys").join(key);
        match std::os::unix::fs::symlink(n.to_string(), &link) {
            Ok(()) => Ok(true),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Ok(false)
                } else {
                    Err(io_err("creating", &link)(e))
                }
            }
        }
    }
}

fn check_key(key: &str) -> Result<(), SnapshotError> {
    let reason = if key.is_empty() {
        "it is empty"
    } else if key.len() > MAX_KEY_LEN {
        "it is longer than 200 bytes"
    } else if key.contains('/') || key.contains('\0') {
        "it contains '/' or NUL"
    } else if key.starts_with('.') {
        "it starts with '.'"
    } else {
        return Ok(());
    };
    Err(SnapshotError::InvalidKey {
        key: key.into(),
        reason,
    })
}

fn bind(dir: &Path, ro: bool) -> Mount {
    Mount {
        typ: "bind".into(),
        source: dir.display().to_string(),
        options: vec!["rbind".into(), if ro { "ro" } else { "rw" }.into()],
    }
}

fn join_lowers(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn make_dir(path: &Path, mode: u32) -> Result<(), SnapshotError> {
    fs::create_dir(path).map_err(io_err("creating", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err("setting the mode of", path))
}

fn copy_root_attrs(from: &Path, to: &Path) -> Result<(), SnapshotError> {
    let md = fs::symlink_metadata(from).map_err(io_err("inspecting", from))?;
    std::os::unix::fs::lchown(to, Some(md.uid()), Some(md.gid()))
        .map_err(io_err("setting the owner of", to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(io_err("setting the mode of", to))
}

fn read_meta(dir: &Path) -> Result<Option<Meta>, SnapshotError> {
    let path = dir.join("meta.json");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading", &path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SnapshotError::Metadata {
            path,
            message: e.to_string(),
        })
}

fn read_kind(path: &Path) -> Result<Option<Kind>, SnapshotError> {
    match fs::read_to_string(path) {
        Ok(s) => match s.trim() {
            "overlay" => Ok(Some(Kind::Overlay)),
            "copy" => Ok(Some(Kind::Copy)),
            other => Err(SnapshotError::Metadata {
                path: path.to_path_buf(),
                message: format!("unknown snapshot kind {other:?}"),
            }),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("reading", path)(e)),
    }
}

/// Record the kind of a new root; if another process recorded one first, return that.
fn write_kind(root: &Path, kind_file: &Path, kind: Kind) -> Result<Kind, SnapshotError> {
    let tmp = root
        .join("tmp")
        .join(format!("{}-kind", std::process::id()));
    fs::write(&tmp, format!("{kind}\n")).map_err(io_err("writing", &tmp))?;
    let linked = fs::hard_link(&tmp, kind_file);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(kind),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_kind(kind_file)?.ok_or_else(|| SnapshotError::Metadata {
                path: kind_file.to_path_buf(),
                message: "vanished while being read".into(),
            })
        }
        Err(e) => Err(io_err("creating", kind_file)(e)),
    }
}

/// Remove staging dirs left by processes that no longer exist.
fn clean_stale(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
        if !alive {
            let path = entry.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

/// Try an overlay mount (with a whiteout in the lower dir) in a staging dir under `root`.
fn probe_overlay(root: &Path) -> bool {
    let Ok(dir) = tempfile::Builder::new()
        .prefix(&format!("{}-probe-", std::process::id()))
        .tempdir_in(root.join("tmp"))
    else {
        return false;
    };
    let p = dir.path();
    for d in ["l1", "l2", "u", "w", "m"] {
        if fs::create_dir(p.join(d)).is_err() {
            return false;
        }
    }
    let mount = Mount {
        typ: "overlay".into(),
        source: "overlay".into(),
        options: vec![
            format!(
                "lowerdir={}:{}",
                p.join("l1").display(),
                p.join("l2").display()
            ),
            format!("upperdir={}", p.join("u").display()),
            format!("workdir={}", p.join("w").display()),
        ],
    };
    let target = p.join("m");
    if mount_all(std::slice::from_ref(&mount), &target).is_err() {
        return false;
    }
    unmount(&target).is_ok()
}

fn next_id(snapshots: &Path) -> Result<u64, SnapshotError> {
    let mut max = 0;
    for entry in fs::read_dir(snapshots).map_err(io_err("reading", snapshots))? {
        let entry = entry.map_err(io_err("reading", snapshots))?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
        {
            max = max.max(n);
        }
    }
    Ok(max + 1)
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (f, t) = (cpath(from)?, cpath(to)?);
    // SAFETY: renameat2 with valid NUL-terminated paths relative to the cwd.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Disk usage (allocated blocks) of a tree, hard links counted once, not leaving its filesystem.
fn disk_usage(dir: &Path) -> Result<u64, SnapshotError> {
    let root = fs::symlink_metadata(dir).map_err(io_err("inspecting", dir))?;
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(io_err("reading", &d))? {
            let entry = entry.map_err(io_err("reading", &d))?;
            let path = entry.path();
            let md = fs::symlink_metadata(&path).map_err(io_err("inspecting", &path))?;
            if md.dev() != root.dev() {
                continue;
            }
            if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
                continue;
            }
            total += md.blocks() * 512;
            if md.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(total + root.blocks() * 512)
}

// ---------------------------------------------------------------------------------------------
// Copying (cp -a): modes, owners, times, xattrs, hard links, devices; symlinks never followed.

fn copy_tree(src: &Path, dst: &Path) -> Result<(), SnapshotError> {
    let mut links = HashMap::new();
    copy_entry(src, dst, &mut links)
}

fn copy_entry(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), SnapshotError> {
    let md = fs::symlink_metadata(src).map_err(io_err("inspecting", src))?;
    let ft = md.file_type();
    if !ft.is_dir() && md.nlink() > 1 {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            return fs::hard_link(first, dst).map_err(io_err("linking", dst));
        }
    }
    if ft.is_dir() {
        fs::create_dir(dst).map_err(io_err("creating", dst))?;
        for entry in fs::read_dir(src).map_err(io_err("reading", src))? {
            let entry = entry.map_err(io_err("reading", src))?;
            copy_entry(&entry.path(), &dst.join(entry.file_name()), links)?;
        }
    } else if ft.is_file() {
        fs::copy(src, dst).map_err(io_err("copying to", dst))?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(io_err("reading", src))?;
        std::os::unix::fs::symlink(&target, dst).map_err(io_err("creating", dst))?;
    } else {
        // Devices, fifos and sockets.
        let c = cpath(dst).map_err(io_err("creating", dst))?;
        // SAFETY: mknod with a valid NUL-terminated path; the type bits come from lstat.
        if unsafe {
            libc::mknod(
                c.as_ptr(),
                md.mode() as libc::mode_t,
                md.rdev() as libc::dev_t,
            )
        } != 0
        {
            return Err(io_err("creating", dst)(io::Error::last_os_error()));
        }
    }
    std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))
        .map_err(io_err("setting the owner of", dst))?;
    copy_xattrs(src, dst, ft.is_symlink())?;
    if !ft.is_symlink() {
        // After chown, which clears setuid bits.
        fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))
            .map_err(io_err("setting the mode of", dst))?;
    }
    set_times(dst, &md)?;
    if !ft.is_dir() && md.nlink() > 1 {
        links.insert((md.dev(), md.ino()), dst.to_path_buf());
    }
    Ok(())
}

fn set_times(dst: &Path, md: &fs::Metadata) -> Result<(), SnapshotError> {
    let c = cpath(dst).map_err(io_err("setting the times of", dst))?;
    let times = [
        libc::timespec {
            tv_sec: md.atime() as libc::time_t,
            tv_nsec: md.atime_nsec() as libc::c_long,
        },
        libc::timespec {
            tv_sec: md.mtime() as libc::time_t,
            tv_nsec: md.mtime_nsec() as libc::c_long,
        },
    ];
    // SAFETY: utimensat with a valid path and a 2-element timespec array, not following symlinks.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(io_err("setting the times of", dst)(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn copy_xattrs(src: &Path, dst: &Path, symlink: bool) -> Result<(), SnapshotError> {
    let s = cpath(src).map_err(io_err("listing xattrs of", src))?;
    let d = cpath(dst).map_err(io_err("setting xattrs of", dst))?;
    let names = match list_xattrs(&s) {
        Ok(n) => n,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP)) => return Ok(()),
        Err(e) => return Err(io_err("listing xattrs of", src)(e)),
    };
    for name in names {
        if symlink && name.to_bytes().starts_with(b"user.") {
            continue;
        }
        let value = match get_xattr(&s, &name) {
            Ok(v) => v,
            // Removed meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
            Err(e) => return Err(io_err("reading xattrs of", src)(e)),
        };
        // SAFETY: lsetxattr with valid NUL-terminated path and name and a value slice.
        let rc = unsafe {
            libc::lsetxattr(
                d.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(SnapshotError::Io {
                op: "setting an xattr on",
                path: dst.to_path_buf(),
                source: io::Error::new(e.kind(), format!("{}: {e}", name.to_string_lossy())),
            });
        }
    }
    Ok(())
}

fn list_xattrs(path: &CStr) -> io::Result<Vec<CString>> {
    loop {
        // SAFETY: llistxattr with a NULL buffer and size 0 only returns the needed size.
        let size = unsafe { libc::llistxattr(path.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size as usize];
        // SAFETY: llistxattr writes at most `buf.len()` bytes into `buf`.
        let got = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        buf.truncate(got as usize);
        return Ok(buf
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .filter_map(|n| CString::new(n).ok())
            .collect());
    }
}

fn get_xattr(path: &CStr, name: &CStr) -> io::Result<Vec<u8>> {
    loop {
        // SAFETY: lgetxattr with a NULL buffer and size 0 only returns the needed size.
        let size =
            unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; size as usize];
        // SAFETY: lgetxattr writes at most `buf.len()` bytes into `buf`.
        let got = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        buf.truncate(got as usize);
        return Ok(buf);
    }
}

// ---------------------------------------------------------------------------------------------
// Mounting (a helper for callers and tests; needs root).

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
const MOUNT_ATTR_NOEXEC: libc::c_uint = 0x8;

struct Parsed {
    flags: libc::c_ulong,
    bind: bool,
    data: Vec<String>,
}

fn parse_options(options: &[String]) -> Parsed {
    let mut p = Parsed {
        flags: 0,
        bind: false,
        data: Vec::new(),
    };
    for o in options {
        match o.as_str() {
            "rw" | "defaults" => {}
            "ro" => p.flags |= libc::MS_RDONLY,
            "bind" => p.bind = true,
            "rbind" => {
                p.bind = true;
                p.flags |= libc::MS_REC;
            }
            "nosuid" => p.flags |= libc::MS_NOSUID,
            "nodev" => p.flags |= libc::MS_NODEV,
            "noexec" => p.flags |= libc::MS_NOEXEC,
            "noatime" => p.flags |= libc::MS_NOATIME,
            "relatime" => p.flags |= libc::MS_RELATIME,
            _ => p.data.push(o.clone()),
        }
    }
    p
}

fn sys_mount(
    source: Option<&CStr>,
    target: &CStr,
    typ: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let ptr = |c: Option<&CStr>| c.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: mount(2) with NUL-terminated strings or NULL pointers, as it accepts.
    let rc = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(typ),
            flags,
            ptr(data).cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Mount `mounts` in order at `target` (root only). On failure, what was mounted is unmounted.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), SnapshotError> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(source) = mount_one(m, target) {
            for _ in 0..i {
                let _ = unmount(target);
            }
            return Err(SnapshotError::Mount {
                typ: m.typ.clone(),
                target: target.to_path_buf(),
                source,
            });
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> io::Result<()> {
    let t = cpath(target)?;
    let src = CString::new(m.source.as_str())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let p = parse_options(&m.options);
    if m.typ == "bind" || p.bind {
        sys_mount(
            Some(&src),
            &t,
            None,
            libc::MS_BIND | (p.flags & libc::MS_REC),
            None,
        )?;
        let extra = p.flags & !libc::MS_REC;
        if extra != 0 {
            if let Err(e) = sys_mount(
                None,
                &t,
                None,
                libc::MS_BIND | libc::MS_REMOUNT | extra,
                None,
            ) {
                let _ = unmount(target);
                return Err(e);
            }
        }
        return Ok(());
    }
    let data = p.data.join(",");
    if data.len() > MOUNT_DATA_MAX && m.typ == "overlay" {
        return mount_fsconfig(m, &p, &t);
    }
    let typ =
        CString::new(m.typ.as_str()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let cdata = CString::new(data).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    sys_mount(Some(&src), &t, Some(&typ), p.flags, Some(&cdata))
}

/// Mount with fsopen/fsconfig/fsmount/move_mount: no page limit, each lower dir passed
/// with `lowerdir+`.
fn mount_fsconfig(m: &Mount, p: &Parsed, target: &CStr) -> io::Result<()> {
    let invalid = |e: std::ffi::NulError| io::Error::new(io::ErrorKind::InvalidInput, e);
    let typ = CString::new(m.typ.as_str()).map_err(invalid)?;
    // SAFETY: fsopen with a NUL-terminated filesystem name; the fd is checked and owned below.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, typ.as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by us alone.
    let fsfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let config = |cmd: libc::c_uint, key: Option<&CStr>, value: Option<&CStr>| -> io::Result<()> {
        let ptr = |c: Option<&CStr>| c.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: fsconfig on a valid fs context fd with NUL-terminated strings or NULL.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                cmd,
                ptr(key),
                ptr(value),
                0,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            let log = fs_log(&fsfd);
            if log.is_empty() {
                return Err(e);
            }
            return Err(io::Error::new(e.kind(), format!("{e}: {log}")));
        }
        Ok(())
    };
    for opt in &p.data {
        match opt.split_once('=') {
            Some(("lowerdir", dirs)) => {
                for dir in dirs.split(':') {
                    let v = CString::new(dir).map_err(invalid)?;
                    config(FSCONFIG_SET_STRING, Some(c"lowerdir+"), Some(&v))?;
                }
            }
            Some((k, v)) => {
                let (k, v) = (
                    CString::new(k).map_err(invalid)?,
                    CString::new(v).map_err(invalid)?,
                );
                config(FSCONFIG_SET_STRING, Some(&k), Some(&v))?;
            }
            None => {
                let k = CString::new(opt.as_str()).map_err(invalid)?;
                config(FSCONFIG_SET_FLAG, Some(&k), None)?;
            }
        }
    }
    config(FSCONFIG_CMD_CREATE, None, None)?;
    let mut attrs = 0;
    for (flag, attr) in [
        (libc::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    ] {
        if p.flags & flag != 0 {
            attrs |= attr;
        }
    }
    // SAFETY: fsmount on a valid, created fs context; the fd is checked and owned below.
    let mfd = unsafe { libc::syscall(libc::SYS_fsmount, fsfd.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if mfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by us alone.
    let mfd = unsafe { OwnedFd::from_raw_fd(mfd as i32) };
    // SAFETY: move_mount of a detached mount fd onto a NUL-terminated target path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mfd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The messages the kernel left in an fs context (for errors).
fn fs_log(fsfd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: read into a buffer of the given length from a valid fd.
        let n = unsafe { libc::read(fsfd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.push(
            String::from_utf8_lossy(&buf[..n as usize])
                .trim()
                .to_string(),
        );
    }
    out.join("; ")
}

/// Unmount `target` (and what is mounted below it); lazily if it is busy.
pub fn unmount(target: &Path) -> Result<(), SnapshotError> {
    let err = |source| SnapshotError::Unmount {
        target: target.to_path_buf(),
        source,
    };
    let t = cpath(target).map_err(err)?;
    // SAFETY: umount2 with a valid NUL-terminated path.
    if unsafe { libc::umount2(t.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EBUSY) {
        return Err(err(e));
    }
    // SAFETY: umount2 with a valid NUL-terminated path.
    if unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check_key("sha256:0123abcd").is_ok());
        assert!(check_key("container-1").is_ok());
        for bad in ["", ".", "..", ".hidden", "a/b", "a\0b"] {
            assert!(check_key(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_key(&"x".repeat(201)).is_err());
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = ["rbind", "ro", "nosuid", "lowerdir=a:b", "index=off"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = parse_options(&opts);
        assert!(p.bind);
        assert_eq!(p.flags, libc::MS_REC | libc::MS_RDONLY | libc::MS_NOSUID);
        assert_eq!(
            p.data,
            vec!["lowerdir=a:b".to_string(), "index=off".to_string()]
        );
    }

    #[test]
    fn copy_kind_commits_and_lists_without_root() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let s = Snapshotter::open(dir.path(), Some(Kind::Copy))?;
        assert_eq!(s.whiteout_mode(), WhiteoutMode::Apply);
        s.commit("base", None, |d| fs::write(d.join("a"), b"a"))?;
        s.commit("top", Some("base"), |d| {
            if !d.join("a").exists() {
                return Err("parent content missing".to_string());
            }
            fs::write(d.join("b"), b"b").map_err(|e| e.to_string())
        })?;
        assert!(s.committed("top"));
        let failed = s.commit("bad", Some("top"), |_| Err::<(), _>("nope"));
        assert!(matches!(failed, Err(SnapshotError::Fill { .. })));
        assert!(!s.committed("bad"));
        assert!(
            matches!(s.remove("base"), Err(SnapshotError::HasChild { ref child, .. }) if child == "top")
        );
        let keys: Vec<String> = s.list()?.into_iter().map(|i| i.key).collect();
        assert_eq!(keys, vec!["base".to_string(), "top".to_string()]);
        let reopened = Snapshotter::open(dir.path(), None)?;
        assert_eq!(reopened.kind(), Kind::Copy);
        assert!(matches!(
            Snapshotter::open(dir.path(), Some(Kind::Overlay)),
            Err(SnapshotError::KindMismatch { .. })
        ));
        Ok(())
    }
}
