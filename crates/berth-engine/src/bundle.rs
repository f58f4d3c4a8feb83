//! Bundles from images: every layer unpacked once into a committed snapshot keyed by its chain
//! id, an active snapshot per container mounted at `DIR/rootfs`, and `DIR/config.json` made from
//! the image config (the same base as `runc spec`, with Docker's capabilities and masked paths).
//!
//! This is the engine's first piece; the daemonless `berth` CLI uses it until berthd exists
//! (issue 4). The mapping from image config to runtime spec is the pure [`runtime_spec`].

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};

use berth_image::images::ImageStore;
use berth_image::layer::{self, UnpackOptions};
use berth_image::snapshot::{self, Snapshotter};
use berth_image::store::Digest;
use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};

/// Any error of the image store, unpacker or snapshotter, kept as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong while making a bundle, with the image, layer, path or user at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image {image}: {source}")]
    Image {
        image: String,
        #[source]
        source: BoxError,
    },
    #[error("image {image}: {layers} layers but {diff_ids} diff ids in its config")]
    LayerCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("image {image}: invalid layer digest {digest}")]
    LayerDigest { image: String, digest: String },
    #[error("unpack layer {digest}: {source}")]
    Unpack {
        digest: String,
        #[source]
        source: BoxError,
    },
    #[error("layer {digest}: diff id is {actual}, the image config says {expected}")]
    DiffIdMismatch {
        digest: String,
        expected: String,
        actual: String,
    },
    #[error("snapshot {key}: {source}")]
    Snapshot {
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("invalid user {0:?}")]
    InvalidUser(String),
    #[error("the working directory {0:?} is invalid: it needs to be an absolute path")]
    RelativeWorkdir(String),
    #[error("invalid environment variable {0:?}: the name is empty")]
    InvalidEnv(String),
    #[error("no command specified for image {0}")]
    NoCommand(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What `berth run` asks for on top of the image config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The command (`IMAGE CMD...`); empty keeps the image's Cmd.
    pub cmd: Vec<String>,
    /// `--entrypoint`: `Some([])` or `Some([""])` clears the image's Entrypoint; any override
    /// also drops the image's Cmd, like Docker.
    pub entrypoint: Option<Vec<String>>,
    /// `-e KEY=VALUE`, applied after the image's Env.
    pub env: Vec<String>,
    /// `-w DIR`: absolute.
    pub workdir: Option<String>,
    /// `-u USER[:GROUP]`, names or ids, resolved through the image's /etc/passwd and /etc/group.
    pub user: Option<String>,
    /// `--hostname`; the first 12 characters of the container id when unset.
    pub hostname: Option<String>,
    /// `-t`: the process gets a terminal.
    pub terminal: bool,
    /// `--name`, recorded as the `berth.name` annotation.
    pub name: Option<String>,
}

/// The PATH a container gets when its image sets none (Docker's).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities Docker gives a container by default.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's masked paths.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The most of /etc/passwd or /etc/group read from an image.
const MAX_ID_FILE: u64 = 4 << 20;

/// A container's bundle: its rootfs is mounted from an active snapshot until [`Bundle::cleanup`].
pub struct Bundle<'a> {
    snapshots: &'a Snapshotter,
    id: String,
    dir: PathBuf,
    rootfs: PathBuf,
    mounted: bool,
    active: bool,
}

impl Bundle<'_> {
    /// The container id (64 hex digits); also the key of its active snapshot.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bundle directory (holds config.json and rootfs/).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// Unmounts the rootfs and removes the active snapshot; idempotent. The bundle directory
    /// itself belongs to the caller.
    pub fn cleanup(&mut self) -> Result<()> {
        if self.mounted {
            snapshot::unmount(&self.rootfs).map_err(|e| Error::Snapshot {
                key: self.id.clone(),
                source: e.into(),
            })?;
            self.mounted = false;
        }
        if self.active {
            self.snapshots
                .remove(&self.id)
                .map_err(|e| Error::Snapshot {
                    key: self.id.clone(),
                    source: e.into(),
                })?;
            self.active = false;
        }
        Ok(())
    }
}

impl Bundle<'_> {
    /// Keeps the rootfs mounted and the snapshot after the bundle is dropped: the container
    /// now owns them, and [`teardown`] takes them down.
    pub fn persist(mut self) {
        self.mounted = false;
        self.active = false;
    }
}

/// Unmounts a persisted bundle's rootfs (if mounted) and removes its active snapshot.
pub fn teardown(snapshots: &Snapshotter, id: &str, rootfs: &Path) -> Result<()> {
    let snap_err = |e: snapshot::SnapshotError| Error::Snapshot {
        key: id.to_string(),
        source: e.into(),
    };
    if is_mountpoint(rootfs) {
        snapshot::unmount(rootfs).map_err(snap_err)?;
    }
    if snapshots.mounts(id).is_ok() {
        snapshots.remove(id).map_err(snap_err)?;
    }
    Ok(())
}

/// Whether `path` is a mount point (its device differs from its parent's, or mountinfo
/// lists it).
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    let want = canon.to_string_lossy();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .map(|mp| mp.replace("\\040", " ") == want)
            .unwrap_or(false)
    })
}

impl Drop for Bundle<'_> {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

/// Makes the bundle of a new container from `image` in `dir` (created if missing): unpacks the
/// image's layers that no snapshot holds yet, prepares and mounts the container's snapshot at
/// `dir/rootfs`, writes `dir/config.json`.
pub fn create_bundle<'a>(
    images: &ImageStore,
    snapshots: &'a Snapshotter,
    image: &str,
    opts: &RunOptions,
    dir: &Path,
) -> Result<Bundle<'a>> {
    let id = random_id().map_err(|source| Error::Io {
        path: PathBuf::from("/dev/urandom"),
        source,
    })?;
    create_bundle_with_id(images, snapshots, image, opts, dir, &id)
}

/// [`create_bundle`] for a container whose id (64 hex digits, the key of its active
/// snapshot) the caller chose.
pub fn create_bundle_with_id<'a>(
    images: &ImageStore,
    snapshots: &'a Snapshotter,
    image: &str,
    opts: &RunOptions,
    dir: &Path,
    id: &str,
) -> Result<Bundle<'a>> {
    let image_err = |e: BoxError| Error::Image {
        image: image.to_string(),
        source: e,
    };
    let record = images.resolve(image).map_err(|e| image_err(e.into()))?;
    let (bundle, spec) = prepare_bundle(images, snapshots, image, &record, opts, dir, id)?;
    let config = dir.join("config.json");
    let text = serde_json::to_vec_pretty(&spec).map_err(|e| Error::Io {
        path: config.clone(),
        source: e.into(),
    })?;
    fs::write(&config, text).map_err(|source| Error::Io {
        path: config.clone(),
        source,
    })?;
    Ok(bundle)
}

/// The work of [`create_bundle_with_id`] for an image the caller already resolved to
/// `record`: the rootfs is mounted, and the runtime spec is returned for the caller to
/// finish and write as `dir/config.json`.
pub fn prepare_bundle<'a>(
    images: &ImageStore,
    snapshots: &'a Snapshotter,
    image: &str,
    record: &berth_image::images::ImageRecord,
    opts: &RunOptions,
    dir: &Path,
    id: &str,
) -> Result<(Bundle<'a>, Value)> {
    let top = unpack_layers(images, snapshots, image, record)?;
    let id = id.to_string();
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(&rootfs).map_err(|source| Error::Io {
        path: rootfs.clone(),
        source,
    })?;
    let mut bundle = Bundle {
        snapshots,
        id: id.clone(),
        dir: dir.to_path_buf(),
        rootfs: rootfs.clone(),
        mounted: false,
        active: false,
    };
    let snap_err = |e: BoxError| Error::Snapshot {
        key: id.clone(),
        source: e,
    };
    let mounts = snapshots
        .prepare(&id, top.as_deref())
        .map_err(|e| snap_err(e.into()))?;
    bundle.active = true;
    snapshot::mount_all(&mounts, &rootfs).map_err(|e| snap_err(e.into()))?;
    bundle.mounted = true;

    let passwd = read_in_root(&rootfs, "etc/passwd")?;
    let group = read_in_root(&rootfs, "etc/group")?;
    let mut opts = opts.clone();
    if opts.hostname.is_none() {
        opts.hostname = Some(id[..12].to_string());
    }
    let mut spec = runtime_spec(&record.config, &opts, &passwd, &group)?;
    let annotations = &mut spec["annotations"];
    annotations["berth.image"] = json!(image);
    annotations["berth.image.id"] = json!(record.id.to_string());
    if let Some(name) = &opts.name {
        annotations["berth.name"] = json!(name);
    }
    Ok((bundle, spec))
}

/// Makes sure each layer of `record` is a committed snapshot keyed by its chain id (unpacking
/// it from the content store the first time); returns the chain id of the top layer.
fn unpack_layers(
    images: &ImageStore,
    snapshots: &Snapshotter,
    image: &str,
    record: &berth_image::images::ImageRecord,
) -> Result<Option<String>> {
    let diff_ids = &record.diff_ids;
    if diff_ids.len() != record.layers.len() {
        return Err(Error::LayerCount {
            image: image.to_string(),
            layers: record.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let chain = record.chain_ids();
    let mut parent: Option<String> = None;
    for (i, desc) in record.layers.iter().enumerate() {
        let key = chain[i].to_string();
        if !snapshots.committed(&key) {
            let blob_digest = Digest::from_oci(desc.digest()).map_err(|_| Error::LayerDigest {
                image: image.to_string(),
                digest: desc.digest().to_string(),
            })?;
            let expected = diff_ids[i].clone();
            let whiteouts = snapshots.whiteout_mode();
            let digest_s = blob_digest.to_string();
            // Concurrent runs may unpack the same layer: the first commit wins, the others'
            // work is discarded (the snapshotter's contract).
            snapshots
                .commit(&key, parent.as_deref(), |dir| -> Result<(), BoxError> {
                    // Read the blob file as stored, without the store's verifying reader: the diff
                    // id (the digest of the uncompressed stream, which the content-addressed config
                    // names) is checked below before the snapshot is committed, and hashing once
                    // instead of twice is most of the unpack time.
                    let path = images.content().path(&blob_digest);
                    let blob = io::BufReader::with_capacity(
                        1 << 20,
                        fs::File::open(&path).map_err(|source| Error::Io { path, source })?,
                    );
                    let stats = layer::unpack(
                        blob,
                        dir,
                        &UnpackOptions {
                            whiteouts,
                            allow_devices: true,
                            max_bytes: layer::DEFAULT_MAX_BYTES,
                            same_owner: true,
                        },
                    )?;
                    if stats.diff_id != expected.as_str() {
                        return Err(Box::new(Error::DiffIdMismatch {
                            digest: digest_s.clone(),
                            expected: expected.to_string(),
                            actual: stats.diff_id.clone(),
                        }) as BoxError);
                    }
                    Ok(())
                })
                .map_err(|e| Error::Unpack {
                    digest: blob_digest.to_string(),
                    source: e.into(),
                })?;
        }
        parent = Some(key);
    }
    Ok(parent)
}

/// The OCI runtime spec of a container of an image with config `image`, options `opts`, and the
/// image's /etc/passwd and /etc/group text (empty when it has none).
pub fn runtime_spec(
    image: &ImageConfiguration,
    opts: &RunOptions,
    passwd: &str,
    group: &str,
) -> Result<Value> {
    let config = image.config().clone().unwrap_or_default();

    // Entrypoint + Cmd; an --entrypoint override drops the image's Cmd.
    let (entrypoint, image_cmd) = match &opts.entrypoint {
        Some(e) if e.is_empty() || e == &[String::new()] => (Vec::new(), Vec::new()),
        Some(e) => (e.clone(), Vec::new()),
        None => (
            config.entrypoint().clone().unwrap_or_default(),
            config.cmd().clone().unwrap_or_default(),
        ),
    };
    let cmd = if opts.cmd.is_empty() {
        image_cmd
    } else {
        opts.cmd.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::NoCommand(
            opts.name.clone().unwrap_or_else(|| "(unnamed)".into()),
        ));
    }

    let cwd = match opts.workdir.as_deref().filter(|w| !w.is_empty()) {
        Some(w) if !w.starts_with('/') => return Err(Error::RelativeWorkdir(w.to_string())),
        Some(w) => w.to_string(),
        None => match config.working_dir().as_deref().filter(|w| !w.is_empty()) {
            Some(w) if w.starts_with('/') => w.to_string(),
            Some(w) => format!("/{w}"),
            None => "/".to_string(),
        },
    };

    let user_spec = opts
        .user
        .as_deref()
        .or(config.user().as_deref())
        .unwrap_or("");
    let user = resolve_user(user_spec, passwd, group)?;
    let hostname = opts.hostname.clone().unwrap_or_else(|| "berth".into());

    // Env: PATH and HOSTNAME defaults, the image's, then the user's; later keys replace.
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |kv: &str| -> Result<()> {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if k.is_empty() {
            return Err(Error::InvalidEnv(kv.to_string()));
        }
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
        Ok(())
    };
    set(DEFAULT_PATH)?;
    set(&format!("HOSTNAME={hostname}"))?;
    for kv in config.env().iter().flatten() {
        set(kv)?;
    }
    for kv in &opts.env {
        set(kv)?;
    }
    if opts.terminal && !env.iter().any(|(k, _)| k == "TERM") {
        env.push(("TERM".into(), "xterm".into()));
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), user.home.clone()));
    }
    let env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.os".to_string(),
        image.os().to_string(),
    );
    annotations.insert(
        "org.opencontainers.image.architecture".to_string(),
        image.architecture().to_string(),
    );
    if let Some(created) = image.created() {
        annotations.insert("org.opencontainers.image.created".into(), created.clone());
    }
    if let Some(author) = image.author() {
        annotations.insert("org.opencontainers.image.author".into(), author.clone());
    }
    if let Some(ports) = config.exposed_ports().as_ref().filter(|p| !p.is_empty()) {
        let mut ports = ports.clone();
        ports.sort();
        annotations.insert(
            "org.opencontainers.image.exposedPorts".into(),
            ports.join(","),
        );
    }
    if let Some(sig) = config.stop_signal() {
        annotations.insert("org.opencontainers.image.stopSignal".into(), sig.clone());
    }
    if let Some(volumes) = config.volumes().as_ref().filter(|v| !v.is_empty()) {
        let mut volumes = volumes.clone();
        volumes.sort();
        annotations.insert("berth.volumes".into(), volumes.join(","));
    }
    // Labels last: they become annotations of their own name, but never replace ours.
    for (k, v) in config.labels().iter().flatten() {
        annotations.entry(k.clone()).or_insert_with(|| v.clone());
    }

    let mut user_json = json!({ "uid": user.uid, "gid": user.gid });
    if !user.additional_gids.is_empty() {
        user_json["additionalGids"] = json!(user.additional_gids);
    }
    Ok(json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": opts.terminal,
            "user": user_json,
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
            },
            "noNewPrivileges": false,
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": hostname,
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] },
        ],
        "annotations": annotations,
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" },
            ],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }))
}

/// A user resolved through an image's /etc/passwd and /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Resolves `USER[:GROUP]` (names or numeric ids) like Docker: a name must be in `passwd`
/// (else [`Error::UnknownUser`]); a numeric uid not in it gets gid 0; a group name must be in
/// `group`; without an explicit group, the groups listing the user by name are supplementary.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<ExecUser> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let mut user = ExecUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".into(),
    };
    let mut matched_name: Option<String> = None;
    let by_name = |name: &str| entries.iter().find(|f| f[0] == name);
    let entry = if user_part.is_empty() {
        // Docker's default user is root, with root's entry when the image has one.
        entries.iter().find(|f| f[2] == "0")
    } else if let Ok(uid) = user_part.parse::<u32>() {
        user.uid = uid;
        entries
            .iter()
            .find(|f| f[2].parse::<u32>().ok() == Some(uid))
    } else {
        if user_part.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(Error::InvalidUser(spec.to_string()));
        }
        Some(by_name(user_part).ok_or_else(|| Error::UnknownUser(user_part.to_string()))?)
    };
    if let Some(f) = entry {
        user.uid = f[2]
            .parse()
            .map_err(|_| Error::InvalidUser(spec.to_string()))?;
        user.gid = f[3]
            .parse()
            .map_err(|_| Error::InvalidUser(spec.to_string()))?;
        if let Some(home) = f.get(5).filter(|h| !h.is_empty()) {
            user.home = home.to_string();
        }
        matched_name = Some(f[0].to_string());
    }

    let groups: Vec<Vec<&str>> = group
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 3)
        .collect();
    match group_part {
        Some("") => return Err(Error::InvalidUser(spec.to_string())),
        Some(g) => {
            user.gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => groups
                    .iter()
                    .find(|f| f[0] == g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| Error::UnknownGroup(g.to_string()))?,
            };
        }
        None => {
            if let Some(name) = &matched_name {
                for f in &groups {
                    let members = f.get(3).copied().unwrap_or("");
                    if members.split(',').any(|m| m.trim() == name) {
                        if let Ok(gid) = f[2].parse::<u32>() {
                            if !user.additional_gids.contains(&gid) {
                                user.additional_gids.push(gid);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(user)
}

/// Reads `rel` (like `etc/passwd`) inside `root` without following a symlink out of it
/// (`openat2` with `RESOLVE_IN_ROOT`); a missing file reads as empty.
pub(crate) fn read_in_root(root: &Path, rel: &str) -> Result<String> {
    let path = root.join(rel);
    let file = match open_in_root(root, rel, libc::O_RDONLY) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(source) => return Err(Error::Io { path, source }),
    };
    let mut text = Vec::new();
    file.take(MAX_ID_FILE)
        .read_to_end(&mut text)
        .map_err(|source| Error::Io { path, source })?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// Opens `rel` inside `root` with `flags` (plus `O_CLOEXEC`), resolving every component as
/// if `root` were `/` (`openat2` with `RESOLVE_IN_ROOT`): a symlink never leads out of it.
pub fn open_in_root(root: &Path, rel: &str, flags: i32) -> io::Result<fs::File> {
    let root_c = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let rel = rel.trim_start_matches('/');
    let rel_c = CString::new(if rel.is_empty() { "." } else { rel })
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: root_c is a valid NUL-terminated path; the returned fd is checked.
    let dirfd = unsafe {
        libc::open(
            root_c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dirfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dirfd was just opened and is owned by nobody else.
    let dir = unsafe { fs::File::from_raw_fd(dirfd) };
    // SAFETY: open_how is plain old data; all zeroes is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads `how` (a valid open_how of the size passed) and rel_c (a valid
    // C string); dirfd stays open for the call through `dir`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            rel_c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    drop(dir);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new file descriptor returned by openat2, owned here.
    Ok(unsafe { fs::File::from_raw_fd(fd as i32) })
}

/// A new container id: 32 random bytes in hex.
pub(crate) fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\napp:x:1000:\n\
        audio:x:29:app,other\nvideo:x:44:other,app\nstaff:x:50:\n";

    fn image(config: Value) -> ImageConfiguration {
        serde_json::from_value(json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": [] },
        }))
        .expect("image config")
    }

    fn spec(config: Value, opts: RunOptions) -> Value {
        runtime_spec(&image(config), &opts, PASSWD, GROUP).expect("spec")
    }

    #[test]
    fn entrypoint_and_cmd() {
        let cfg = json!({ "Entrypoint": ["/init"], "Cmd": ["serve", "-v"] });
        let s = spec(cfg.clone(), RunOptions::default());
        assert_eq!(s["process"]["args"], json!(["/init", "serve", "-v"]));
        let s = spec(
            cfg.clone(),
            RunOptions {
                cmd: vec!["echo".into(), "hi".into()],
                ..Default::default()
            },
        );
        assert_eq!(s["process"]["args"], json!(["/init", "echo", "hi"]));
        // --entrypoint drops the image's Cmd.
        let s = spec(
            cfg.clone(),
            RunOptions {
                entrypoint: Some(vec!["sh".into()]),
                ..Default::default()
            },
        );
        assert_eq!(s["process"]["args"], json!(["sh"]));
        let s = spec(
            cfg.clone(),
            RunOptions {
                entrypoint: Some(vec![String::new()]),
                cmd: vec!["ls".into()],
                ..Default::default()
            },
        );
        assert_eq!(s["process"]["args"], json!(["ls"]));
        let err =
            runtime_spec(&image(json!({})), &RunOptions::default(), PASSWD, GROUP).unwrap_err();
        assert!(matches!(err, Error::NoCommand(_)), "{err}");
    }

    #[test]
    fn env_order_and_overrides() {
        let s = spec(
            json!({ "Cmd": ["sh"], "Env": ["PATH=/bin", "A=1", "B=2"] }),
            RunOptions {
                env: vec!["B=3".into(), "C=4".into()],
                hostname: Some("box".into()),
                terminal: true,
                ..Default::default()
            },
        );
        assert_eq!(
            s["process"]["env"],
            json!([
                "PATH=/bin",
                "HOSTNAME=box",
                "A=1",
                "B=3",
                "C=4",
                "TERM=xterm",
                "HOME=/root"
            ])
        );
        assert_eq!(s["process"]["terminal"], json!(true));
        assert_eq!(s["hostname"], json!("box"));
        let s = spec(json!({ "Cmd": ["sh"] }), RunOptions::default());
        assert_eq!(s["process"]["env"][0], json!(DEFAULT_PATH));
        assert_eq!(s["process"]["terminal"], json!(false));
    }

    #[test]
    fn working_dir() {
        let s = spec(json!({ "Cmd": ["sh"] }), RunOptions::default());
        assert_eq!(s["process"]["cwd"], json!("/"));
        let s = spec(
            json!({ "Cmd": ["sh"], "WorkingDir": "/srv" }),
            RunOptions::default(),
        );
        assert_eq!(s["process"]["cwd"], json!("/srv"));
        let s = spec(
            json!({ "Cmd": ["sh"], "WorkingDir": "/srv" }),
            RunOptions {
                workdir: Some("/tmp".into()),
                ..Default::default()
            },
        );
        assert_eq!(s["process"]["cwd"], json!("/tmp"));
        let err = runtime_spec(
            &image(json!({ "Cmd": ["sh"] })),
            &RunOptions {
                workdir: Some("tmp".into()),
                ..Default::default()
            },
            PASSWD,
            GROUP,
        )
        .unwrap_err();
        assert!(matches!(err, Error::RelativeWorkdir(_)), "{err}");
    }

    #[test]
    fn users_and_groups() {
        let r = |u: &str| resolve_user(u, PASSWD, GROUP);
        assert_eq!(
            r("").unwrap(),
            ExecUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                home: "/root".into()
            }
        );
        let app = r("app").unwrap();
        assert_eq!((app.uid, app.gid), (1000, 1000));
        assert_eq!(app.additional_gids, vec![29, 44]);
        assert_eq!(app.home, "/home/app");
        // An explicit group replaces the primary one and drops supplementary groups.
        let app = r("app:staff").unwrap();
        assert_eq!((app.uid, app.gid), (1000, 50));
        assert!(app.additional_gids.is_empty());
        assert_eq!(r("1000:7").map(|u| (u.uid, u.gid)).unwrap(), (1000, 7));
        assert_eq!(r("nobody").map(|u| (u.uid, u.gid)).unwrap(), (65534, 65534));
        // A numeric uid the image does not know gets gid 0.
        assert_eq!(r("4242").map(|u| (u.uid, u.gid)).unwrap(), (4242, 0));
        let err = r("ghost").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        let err = r("app:ghosts").unwrap_err();
        assert!(err.to_string().contains("ghosts"), "{err}");
        // The image's User applies when the options set none.
        let s = spec(
            json!({ "Cmd": ["sh"], "User": "app" }),
            RunOptions::default(),
        );
        assert_eq!(
            s["process"]["user"],
            json!({ "uid": 1000, "gid": 1000, "additionalGids": [29, 44] })
        );
        // No /etc/passwd: only numeric users work.
        assert!(resolve_user("app", "", "").is_err());
        assert_eq!(
            resolve_user("7:8", "", "").map(|u| (u.uid, u.gid)).unwrap(),
            (7, 8)
        );
    }

    #[test]
    fn annotations_and_defaults() {
        let s = spec(
            json!({
                "Cmd": ["sh"],
                "ExposedPorts": { "80/tcp": {}, "443/tcp": {} },
                "Volumes": { "/data": {} },
                "Labels": { "maintainer": "me", "org.opencontainers.image.os": "evil" },
                "StopSignal": "SIGQUIT",
            }),
            RunOptions::default(),
        );
        let a = &s["annotations"];
        assert_eq!(
            a["org.opencontainers.image.exposedPorts"],
            json!("443/tcp,80/tcp")
        );
        assert_eq!(a["org.opencontainers.image.stopSignal"], json!("SIGQUIT"));
        assert_eq!(a["berth.volumes"], json!("/data"));
        assert_eq!(a["maintainer"], json!("me"));
        assert_eq!(a["org.opencontainers.image.os"], json!("linux"));
        assert_eq!(s["root"], json!({ "path": "rootfs", "readonly": false }));
        let caps = s["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), 14);
        assert!(caps.contains(&json!("CAP_NET_RAW")));
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "network", "ipc", "uts", "mount"]);
        let mounts: Vec<&str> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            mounts,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
    }
}
