//! The engine's shared state and container lifecycle: the database, the image and snapshot
//! stores, one entry per container with its lock, waiters and pending attaches, the monitor
//! thread that sees each exit (restart policies, `--rm`), and recovery after a restart.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use berth_image::images::ImageStore;
use berth_image::snapshot::Snapshotter;
use berth_shim::protocol::{AttachRequest, ExitInfo};
use berth_shim::{Shim, ShimOpts};

use crate::db::Db;
use crate::engine::{EngineConfig, Waiter};
use crate::error::{io_err, Error, Result};
use crate::events::EventBus;
use crate::model::*;
use crate::{bundle, names, now_rfc3339, spec};

/// An unset time, as Docker writes it.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub(crate) struct Inner {
    pub cfg: EngineConfig,
    pub db: Mutex<Db>,
    pub images: ImageStore,
    pub snapshots: Snapshotter,
    pub ctrs: Mutex<BTreeMap<String, Arc<Ctr>>>,
    pub execs: Mutex<HashMap<String, Exec>>,
    pub events: EventBus,
    /// Serialises name and volume reservations.
    pub names: Mutex<()>,
    /// Pays the cgroup attach lock's grace period ahead of each start (None where this
    /// process's cgroup cannot be written).
    pub warm: Option<berth_cgroups::AttachWarmer>,
    /// Networks, addresses, published ports and names.
    pub nets: Arc<crate::net::Nets>,
}

/// How long the cgroup attach path is kept warm after a create or a start begins: long enough
/// for the runtime to reach its `cgroup.procs` writes.
const WARM_WINDOW: std::time::Duration = std::time::Duration::from_millis(150);

/// One container: its record and what waits on it.
pub(crate) struct Ctr {
    pub id: String,
    pub rec: Mutex<Container>,
    /// Notified on every state change.
    pub cv: Condvar,
    /// Serialises start, stop, restart, pause and remove.
    pub op: Mutex<()>,
    pub waiters: Mutex<Vec<(WaitCondition, mpsc::Sender<WaitResult>)>>,
    /// Attaches made while the container was not running: joined to the shim at start.
    pub pending: Mutex<Vec<(UnixStream, AttachOptions)>>,
    pub shim: Mutex<Option<Shim>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ctr {
    pub fn get(&self) -> Container {
        lock(&self.rec).clone()
    }

    pub fn dir(inner: &Inner, id: &str) -> PathBuf {
        inner.cfg.data_root.join("containers").join(&id[..12])
    }

    pub fn shim(&self) -> Option<Shim> {
        lock(&self.shim).clone()
    }
}

impl Inner {
    pub fn open(cfg: EngineConfig) -> Result<Arc<Inner>> {
        for d in [
            cfg.data_root.clone(),
            cfg.data_root.join("containers"),
            cfg.data_root.join("volumes"),
            cfg.data_root.join("tmp"),
            cfg.exec_root.clone(),
        ] {
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let db = Db::open(&cfg.data_root.join("berth.db"))?;
        let nets = Arc::new(crate::net::Nets::open(&cfg.data_root, &cfg.network, &db)?);
        let images = ImageStore::open(&cfg.data_root).map_err(|e| Error::Image {
            what: format!("open image store {}", cfg.data_root.display()),
            source: e.into(),
        })?;
        let snapshots = Snapshotter::open(&cfg.data_root.join("snapshots"), None).map_err(|e| {
            Error::Image {
                what: "open snapshotter".into(),
                source: e.into(),
            }
        })?;
        let inner = Arc::new(Inner {
            cfg,
            db: Mutex::new(db),
            images,
            snapshots,
            ctrs: Mutex::new(BTreeMap::new()),
            execs: Mutex::new(HashMap::new()),
            events: EventBus::new(),
            names: Mutex::new(()),
            warm: berth_cgroups::AttachWarmer::start().ok(),
            nets,
        });
        inner.recover()?;
        Ok(inner)
    }

    /// A start is coming: have the cgroup attach lock writer-favoured by the time the runtime
    /// moves the container's init into its cgroups.
    pub fn warm_cgroups(&self) {
        if let Some(w) = &self.warm {
            w.poke(WARM_WINDOW);
        }
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.cfg.exec_root.join("runtime")
    }

    /// Finds every container again: those whose shim answers are watched again; those whose
    /// shim is gone get the exit it recorded (or 255); directories no row names (a create or
    /// rm cut short) are taken down.
    fn recover(self: &Arc<Inner>) -> Result<()> {
        let rows: Vec<(String, Container)> = lock(&self.db).containers()?;
        let mut known = std::collections::HashSet::new();
        for (id, c) in rows {
            known.insert(id[..12.min(id.len())].to_string());
            let ctr = Arc::new(Ctr {
                id: id.clone(),
                rec: Mutex::new(c),
                cv: Condvar::new(),
                op: Mutex::new(()),
                waiters: Mutex::new(Vec::new()),
                pending: Mutex::new(Vec::new()),
                shim: Mutex::new(None),
            });
            lock(&self.ctrs).insert(id.clone(), ctr.clone());
            let state_dir = Ctr::dir(self, &id).join("shim");
            let status = lock(&ctr.rec).state.status;
            match status {
                Status::Running | Status::Paused | Status::Restarting => {
                    match Shim::connect(&state_dir).and_then(|s| s.state().map(|st| (s, st))) {
                        Ok((shim, st)) if st.exit.is_none() => {
                            *lock(&ctr.shim) = Some(shim.clone());
                            {
                                let mut r = lock(&ctr.rec);
                                r.state.pid = st.pid;
                            }
                            self.net_readopt(&ctr, st.pid);
                            self.spawn_monitor(ctr.clone(), shim);
                            self.spawn_health(ctr.clone());
                        }
                        Ok((shim, st)) => {
                            let exit = st.exit.unwrap_or(ExitInfo {
                                exit_code: 255,
                                exited_at: now_rfc3339(),
                                oom_killed: false,
                            });
                            let _ = shim.delete(true);
                            self.record_exit(&ctr, &exit);
                            self.after_exit(ctr.clone(), exit);
                        }
                        Err(_) => {
                            let exit = read_exit(&state_dir).unwrap_or(ExitInfo {
                                exit_code: 255,
                                exited_at: now_rfc3339(),
                                oom_killed: false,
                            });
                            self.runtime_delete(&id);
                            self.record_exit(&ctr, &exit);
                            self.after_exit(ctr.clone(), exit);
                        }
                    }
                }
                Status::Removing => {
                    // An rm cut short: finish it.
                    let _ = self.remove_now(&ctr, false, false);
                }
                _ => {}
            }
        }
        self.net_sweep();
        // Directories without a row: a create cut short.
        let dir = self.cfg.data_root.join("containers");
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !known.contains(&name) {
                    let path = e.path();
                    let rootfs = path.join("rootfs");
                    // The snapshot key is the full id, recorded beside the rootfs.
                    if let Ok(id) = fs::read_to_string(path.join("id")) {
                        let _ = bundle::teardown(&self.snapshots, id.trim(), &rootfs);
                    } else if bundle::is_mountpoint(&rootfs) {
                        let _ = berth_image::snapshot::unmount(&rootfs);
                    }
                    if !bundle::is_mountpoint(&rootfs) {
                        let _ = fs::remove_dir_all(&path);
                    }
                }
            }
        }
        Ok(())
    }

    /// By full id, name, or unique id prefix.
    pub fn find(&self, name: &str) -> Result<Arc<Ctr>> {
        let name = name.strip_prefix('/').unwrap_or(name);
        let ctrs = lock(&self.ctrs);
        if let Some(c) = ctrs.get(name) {
            return Ok(c.clone());
        }
        for c in ctrs.values() {
            if lock(&c.rec).name == name {
                return Ok(c.clone());
            }
        }
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<&Arc<Ctr>> =
                ctrs.values().filter(|c| c.id.starts_with(name)).collect();
            match matches.len() {
                1 => return Ok(matches[0].clone()),
                0 => {}
                _ => {
                    return Err(Error::Invalid(format!(
                        "multiple IDs found with provided prefix: {name}"
                    )))
                }
            }
        }
        Err(Error::NoSuchContainer(name.to_string()))
    }

    pub fn save(&self, ctr: &Ctr) -> Result<()> {
        let rec = lock(&ctr.rec).clone();
        lock(&self.db).put_container(&rec.id, &rec.name, &rec)
    }

    /// `save` that only logs: used where the state change already happened.
    pub fn save_quiet(&self, ctr: &Ctr) {
        if let Err(e) = self.save(ctr) {
            eprintln!("berth-engine: save container {}: {e}", ctr.id);
        }
    }

    pub fn event(&self, kind: &str, action: &str, c: &Container, extra: &[(&str, String)]) {
        let mut attrs: BTreeMap<String, String> = c.config.labels.clone();
        attrs.insert("name".into(), c.name.clone());
        attrs.insert("image".into(), c.image.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.publish(kind, action, &c.id, attrs);
    }

    // ---- create ----------------------------------------------------------------------------

    pub fn create(self: &Arc<Inner>, mut spec: ContainerSpec) -> Result<(String, Vec<String>)> {
        spec::validate(&spec)?;
        let plan = self.plan_networks(&spec)?;
        // `docker run` starts what it creates: the warm-up overlaps the rest of the create.
        self.warm_cgroups();
        let record = self
            .images
            .resolve(&spec.image)
            .map_err(|_| Error::NoSuchImage(spec.image.clone()))?;
        let warnings = plan.warnings.clone();

        // Reserve the id and the name.
        let _names = lock(&self.names);
        let id = loop {
            let id = bundle::random_id().map_err(io_err("/dev/urandom"))?;
            let short = &id[..12];
            if !lock(&self.ctrs).keys().any(|k| k.starts_with(short))
                && !self.cfg.data_root.join("containers").join(short).exists()
            {
                break id;
            }
        };
        let name = match spec.name.clone() {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(&n).to_string();
                if let Some(other) = lock(&self.ctrs).values().find(|c| lock(&c.rec).name == n) {
                    return Err(Error::Conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        other.id
                    )));
                }
                n
            }
            None => loop {
                let n = names::random_name();
                if !lock(&self.ctrs).values().any(|c| lock(&c.rec).name == n) {
                    break n;
                }
            },
        };
        spec.name = Some(name.clone());

        let dir = Ctr::dir(self, &id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut undo = Undo {
            inner: self,
            dir: dir.clone(),
            volumes: Vec::new(),
        };
        fs::write(dir.join("id"), &id).map_err(io_err(dir.join("id")))?;

        let hostname = spec
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| id[..12].to_string());
        let opts = spec::run_options(&spec, &hostname);
        let (b, mut config) = bundle::prepare_bundle(
            &self.images,
            &self.snapshots,
            &spec.image,
            &record,
            &opts,
            &dir,
            &id,
        )?;
        let rootfs = b.rootfs().to_path_buf();
        let mut effective = spec::effective_config(&record.config, &spec, &hostname);
        // HEALTHCHECK is Docker's, not OCI's: read it from the config blob itself.
        let image_health = spec::image_healthcheck(&record.docker_config["Healthcheck"]);
        effective.healthcheck = spec::merge_healthcheck(effective.healthcheck, image_health);

        // Mounts: volumes (named, anonymous, the image's), binds, tmpfs.
        let (resolved, points) = self.resolve_mounts(&spec, &effective, &rootfs, &mut undo)?;
        let extra_hosts =
            crate::net::parse_extra_hosts(&spec.extra_hosts, plan.host_gateway.as_deref())?;
        let etc = write_etc_files(
            &dir,
            &hostname,
            spec.domainname.as_deref(),
            &extra_hosts,
            crate::net::resolv_text(&spec, &plan.mode, plan.dns_gateway.as_deref()),
        )?;
        let config_path = dir.join("config.json");
        let cgroups_path = format!("/berth/{id}");
        spec::apply(
            &mut config,
            &spec,
            &spec::ApplyContext {
                cgroups_path: &cgroups_path,
                mounts: &resolved,
                etc_files: &etc,
            },
        )?;
        let path = config["process"]["args"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let args: Vec<String> = config["process"]["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .skip(1)
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let text = serde_json::to_vec_pretty(&config)
            .map_err(|e| Error::Internal(format!("{}: {e}", config_path.display())))?;
        fs::write(&config_path, text).map_err(io_err(&config_path))?;

        let mut graph = BTreeMap::new();
        graph.insert("MergedDir".into(), rootfs.display().to_string());
        if let Some(upper) = self.upper_dir(&id) {
            graph.insert("UpperDir".into(), upper.display().to_string());
            if let Some(parent) = upper.parent() {
                graph.insert("WorkDir".into(), parent.join("work").display().to_string());
            }
        }
        if let Ok(lowers) = self.snapshots.lower_dirs(&id) {
            graph.insert(
                "LowerDir".into(),
                lowers
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            );
        }
        let c = Container {
            id: id.clone(),
            name: name.clone(),
            created: now_rfc3339(),
            image: spec.image.clone(),
            image_id: record.id.to_string(),
            config: effective,
            spec,
            path,
            args,
            state: State {
                status: Status::Created,
                started_at: ZERO_TIME.into(),
                finished_at: ZERO_TIME.into(),
                ..Default::default()
            },
            mounts: points,
            rootfs: rootfs.display().to_string(),
            log_path: dir
                .join("shim")
                .join(berth_shim::protocol::LOG_FILE)
                .display()
                .to_string(),
            hostname_path: dir.join("hostname").display().to_string(),
            hosts_path: dir.join("hosts").display().to_string(),
            resolv_conf_path: dir.join("resolv.conf").display().to_string(),
            graph,
            networks: plan.networks,
            ..Default::default()
        };
        lock(&self.db).put_container(&id, &name, &c)?;
        // From here on the container owns its rootfs and volumes.
        b.persist();
        undo.disarm();
        let ctr = Arc::new(Ctr {
            id: id.clone(),
            rec: Mutex::new(c.clone()),
            cv: Condvar::new(),
            op: Mutex::new(()),
            waiters: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
            shim: Mutex::new(None),
        });
        lock(&self.ctrs).insert(id.clone(), ctr);
        self.event("container", "create", &c, &[]);
        Ok((id, warnings))
    }

    fn resolve_mounts(
        &self,
        spec: &ContainerSpec,
        effective: &EffectiveConfig,
        rootfs: &Path,
        undo: &mut Undo<'_>,
    ) -> Result<(Vec<spec::ResolvedMount>, Vec<MountPoint>)> {
        let mut resolved = Vec::new();
        let mut points = Vec::new();
        let mut wanted: Vec<MountSpec> = spec.mounts.clone();
        // The image's and the body's anonymous volumes, unless a mount covers them.
        for v in &effective.volumes {
            let t = v.trim_end_matches('/');
            if !wanted.iter().any(|m| m.target.trim_end_matches('/') == t)
                && !spec.tmpfs.contains_key(v)
            {
                wanted.push(MountSpec {
                    kind: MountKind::Volume,
                    target: v.clone(),
                    ..Default::default()
                });
            }
        }
        for m in wanted {
            let propagation = m.propagation.clone().unwrap_or_else(|| "rprivate".into());
            match m.kind {
                MountKind::Bind => {
                    let src = Path::new(&m.source);
                    if !src.exists() {
                        // `-v /host:/ctr` makes the host directory, as Docker does.
                        fs::create_dir_all(src).map_err(|e| {
                            Error::Invalid(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {} ({e})",
                                m.source
                            ))
                        })?;
                    }
                    resolved.push(spec::ResolvedMount {
                        kind: MountKind::Bind,
                        source: m.source.clone(),
                        destination: m.target.clone(),
                        read_only: m.read_only,
                        propagation: propagation.clone(),
                        options: vec![],
                    });
                    points.push(MountPoint {
                        kind: MountKind::Bind,
                        name: String::new(),
                        source: m.source.clone(),
                        destination: m.target.clone(),
                        read_only: m.read_only,
                        propagation,
                    });
                }
                MountKind::Volume => {
                    let anonymous = m.source.is_empty();
                    let (vol, created) =
                        self.ensure_volume((!anonymous).then_some(m.source.as_str()), anonymous)?;
                    if created {
                        undo.volumes.push(vol.name.clone());
                        // A new volume starts with what the image has at its path.
                        copy_up(rootfs, &m.target, Path::new(&vol.mountpoint));
                    }
                    resolved.push(spec::ResolvedMount {
                        kind: MountKind::Volume,
                        source: vol.mountpoint.clone(),
                        destination: m.target.clone(),
                        read_only: m.read_only,
                        propagation: propagation.clone(),
                        options: vec![],
                    });
                    points.push(MountPoint {
                        kind: MountKind::Volume,
                        name: vol.name.clone(),
                        source: vol.mountpoint.clone(),
                        destination: m.target.clone(),
                        read_only: m.read_only,
                        propagation: String::new(),
                    });
                }
                MountKind::Tmpfs => {
                    let mut options = Vec::new();
                    if let Some(s) = m.tmpfs_size.filter(|s| *s > 0) {
                        options.push(format!("size={s}"));
                    }
                    if let Some(mode) = m.tmpfs_mode.filter(|m| *m != 0) {
                        options.push(format!("mode={mode:o}"));
                    }
                    resolved.push(spec::ResolvedMount {
                        kind: MountKind::Tmpfs,
                        source: "tmpfs".into(),
                        destination: m.target.clone(),
                        read_only: m.read_only,
                        propagation: String::new(),
                        options,
                    });
                    points.push(MountPoint {
                        kind: MountKind::Tmpfs,
                        name: String::new(),
                        source: String::new(),
                        destination: m.target.clone(),
                        read_only: m.read_only,
                        propagation: String::new(),
                    });
                }
            }
        }
        Ok((resolved, points))
    }

    // ---- start -------------------------------------------------------------------------

    pub fn start(self: &Arc<Inner>, name: &str) -> Result<()> {
        let ctr = self.find(name)?;
        let _op = lock(&ctr.op);
        self.start_locked(&ctr)
    }

    pub(crate) fn start_locked(self: &Arc<Inner>, ctr: &Arc<Ctr>) -> Result<()> {
        let c = ctr.get();
        match c.state.status {
            Status::Running | Status::Restarting => {
                return Err(Error::NotModified(format!(
                    "container {} is already running",
                    c.id
                )))
            }
            Status::Paused => {
                return Err(Error::Conflict(
                    "cannot start a paused container, try unpause instead".into(),
                ))
            }
            Status::Removing | Status::Dead => {
                return Err(Error::Conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    c.id
                )))
            }
            _ => {}
        }
        if !self.shim_gone(ctr) {
            return Err(Error::Internal(format!(
                "container {}: the shim of its last run did not go away",
                c.id
            )));
        }
        self.warm_cgroups();
        let dir = Ctr::dir(self, &c.id);
        let state_dir = dir.join("shim");
        let _ = fs::remove_file(state_dir.join(berth_shim::protocol::EXIT_FILE));
        // A runtime container left by an earlier run would clash with the new one.
        self.runtime_delete(&c.id);
        let mut opts = ShimOpts::new(
            c.id.clone(),
            &dir,
            &self.cfg.runtime,
            self.runtime_root(),
            &state_dir,
        );
        opts.tty = c.spec.tty;
        opts.stdin = c.spec.open_stdin;
        opts.log_max_size = c.spec.log_max_size;
        opts.log_max_file = c.spec.log_max_file.unwrap_or(1).max(1);
        opts.start = false;
        opts.shim_binary = Some(self.cfg.shim.clone());
        let shim = match Shim::start(&opts) {
            Ok(s) => s,
            Err(e) => {
                let msg = e.to_string();
                let code = if msg.contains("not found") || msg.contains("No such file") {
                    127
                } else if msg.contains("ermission denied") {
                    126
                } else {
                    128
                };
                {
                    let mut r = lock(&ctr.rec);
                    r.state.error = msg.clone();
                    r.state.exit_code = code;
                    // Docker keeps a container that never ran as created.
                    if r.state.status != Status::Created {
                        r.state.status = Status::Exited;
                    }
                }
                self.save_quiet(ctr);
                self.start_failed(ctr, code, &msg);
                return Err(Error::Shim {
                    id: c.id.clone(),
                    source: e,
                });
            }
        };
        // The runtime made the network namespace: addresses and ports before the process runs.
        let pid = shim.state().map(|s| s.pid).unwrap_or(0);
        if let Err(e) = self.net_up(ctr, pid) {
            let _ = shim.delete(true);
            {
                let mut r = lock(&ctr.rec);
                r.state.error = e.to_string();
                r.state.exit_code = 128;
            }
            self.save_quiet(ctr);
            self.start_failed(ctr, 128, &e.to_string());
            return Err(e);
        }
        // Join the attaches made before the start, then let the process run.
        let pending: Vec<(UnixStream, AttachOptions)> = lock(&ctr.pending).drain(..).collect();
        for (client, o) in pending {
            match shim.attach(AttachRequest {
                stdin: o.stdin,
                stdout: o.stdout,
                stderr: o.stderr,
                logs: false,
            }) {
                Ok(conn) => splice(client, conn),
                Err(e) => eprintln!("berth-engine: attach {}: {e}", c.id),
            }
        }
        let [h, w] = c.spec.console_size;
        if c.spec.tty && h > 0 && w > 0 {
            // The size the client asked for, before the process can read it.
            let _ = shim.resize(h, w);
        }
        if let Err(e) = shim.start_container() {
            let _ = shim.delete(true);
            self.net_down(ctr);
            {
                let mut r = lock(&ctr.rec);
                r.state.error = e.to_string();
                r.state.exit_code = 128;
            }
            self.save_quiet(ctr);
            self.start_failed(ctr, 128, &e.to_string());
            return Err(Error::Shim {
                id: c.id.clone(),
                source: e,
            });
        }
        let pid = shim.state().map(|s| s.pid).unwrap_or(0);
        {
            let mut r = lock(&ctr.rec);
            r.state.status = Status::Running;
            r.state.pid = pid;
            r.state.exit_code = 0;
            r.state.error.clear();
            r.state.oom_killed = false;
            r.state.started_at = now_rfc3339();
            r.state.finished_at = ZERO_TIME.into();
            r.manually_stopped = false;
            if r.config
                .healthcheck
                .as_ref()
                .is_some_and(|h| !h.test.is_empty() && h.test[0] != "NONE")
            {
                r.state.health = Some(Health::default());
            }
        }
        *lock(&ctr.shim) = Some(shim.clone());
        self.save_quiet(ctr);
        ctr.cv.notify_all();
        self.event("container", "start", &ctr.get(), &[]);
        self.spawn_monitor(ctr.clone(), shim);
        self.spawn_health(ctr.clone());
        Ok(())
    }

    /// A start that failed: waiters hear it, attaches end, and a `--rm` container goes (the
    /// caller holds the op lock).
    fn start_failed(&self, ctr: &Ctr, code: i32, msg: &str) {
        lock(&ctr.pending).clear();
        let result = WaitResult {
            exit_code: code,
            error: Some(msg.to_string()),
        };
        let auto_remove = ctr.get().spec.auto_remove;
        lock(&ctr.waiters).retain(|(cond, tx)| {
            if *cond == WaitCondition::Removed && auto_remove {
                // remove_now answers these.
                return true;
            }
            let _ = tx.send(result.clone());
            false
        });
        if auto_remove {
            if let Err(e) = self.remove_now(ctr, true, true) {
                eprintln!("berth-engine: auto-remove {}: {e}", ctr.id);
            }
        }
    }

    fn spawn_monitor(self: &Arc<Inner>, ctr: Arc<Ctr>, shim: Shim) {
        let inner = self.clone();
        std::thread::spawn(move || {
            let exit = shim.wait().unwrap_or_else(|_| {
                read_exit(shim.state_dir()).unwrap_or(ExitInfo {
                    exit_code: 255,
                    exited_at: now_rfc3339(),
                    oom_killed: false,
                })
            });
            // Waiters hear of the exit first; the runtime's state and the container's
            // cgroups then go with the shim (start and rm wait for that: `shim_gone`).
            inner.record_exit(&ctr, &exit);
            let _ = shim.delete(true);
            {
                let _r = lock(&ctr.rec);
                *lock(&ctr.shim) = None;
            }
            ctr.cv.notify_all();
            inner.after_exit(ctr, exit);
        });
    }

    /// Waits until the shim of the last run has gone (the monitor deletes it after the
    /// exit is recorded): a new shim in the same state directory must not meet the old one.
    fn shim_gone(&self, ctr: &Ctr) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut r = lock(&ctr.rec);
        while lock(&ctr.shim).is_some() && !r.state.running() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            r = ctr
                .cv
                .wait_timeout(r, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }

    pub(crate) fn record_exit(&self, ctr: &Ctr, exit: &ExitInfo) {
        // The run's addresses and ports go back before anyone hears of the exit.
        self.net_down(ctr);
        {
            let mut r = lock(&ctr.rec);
            if r.state.status != Status::Removing {
                r.state.status = Status::Exited;
            }
            r.state.pid = 0;
            r.state.exit_code = exit.exit_code;
            r.state.oom_killed = exit.oom_killed;
            r.state.finished_at = exit.exited_at.clone();
            if let Some(h) = r.state.health.as_mut() {
                if h.status == HealthStatus::Starting {
                    h.status = HealthStatus::Unhealthy;
                }
            }
        }
        self.save_quiet(ctr);
        let c = ctr.get();
        if exit.oom_killed {
            self.event("container", "oom", &c, &[]);
        }
        self.event(
            "container",
            "die",
            &c,
            &[("exitCode", exit.exit_code.to_string())],
        );
        ctr.cv.notify_all();
        let result = WaitResult {
            exit_code: exit.exit_code,
            error: None,
        };
        lock(&ctr.waiters).retain(|(cond, tx)| {
            if matches!(cond, WaitCondition::NotRunning | WaitCondition::NextExit) {
                let _ = tx.send(result.clone());
                false
            } else {
                true
            }
        });
    }

    /// `--rm` and restart policies, once an exit is recorded.
    fn after_exit(self: &Arc<Inner>, ctr: Arc<Ctr>, exit: ExitInfo) {
        let c = ctr.get();
        if c.state.status == Status::Removing {
            return;
        }
        if c.spec.auto_remove {
            let inner = self.clone();
            std::thread::spawn(move || {
                let _op = lock(&ctr.op);
                if let Err(e) = inner.remove_now(&ctr, true, true) {
                    eprintln!("berth-engine: auto-remove {}: {e}", ctr.id);
                }
            });
            return;
        }
        let p = &c.spec.restart_policy;
        let restart = !c.manually_stopped
            && match p.kind {
                RestartKind::No => false,
                RestartKind::Always | RestartKind::UnlessStopped => true,
                RestartKind::OnFailure => {
                    exit.exit_code != 0 && (p.max_retries == 0 || c.restart_count < p.max_retries)
                }
            };
        if !restart {
            return;
        }
        // Back-off: 100 ms doubling per restart, reset after 10 s of running, at most 1 min.
        let ran_long = crate::parse_time(&c.state.finished_at)
            .zip(crate::parse_time(&c.state.started_at))
            .is_some_and(|(f, s)| f - s >= 10_000_000_000);
        let delay = if ran_long {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(100u64 << c.restart_count.min(9)).min(Duration::from_secs(60))
        };
        {
            let mut r = lock(&ctr.rec);
            r.state.status = Status::Restarting;
        }
        self.save_quiet(&ctr);
        let inner = self.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + delay;
            let mut r = lock(&ctr.rec);
            // `stop` or `rm` during the back-off cancels the restart.
            while Instant::now() < deadline && r.state.status == Status::Restarting {
                let left = deadline.saturating_duration_since(Instant::now());
                r = ctr
                    .cv
                    .wait_timeout(r, left)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            if r.state.status != Status::Restarting || r.manually_stopped {
                return;
            }
            r.state.status = Status::Exited;
            r.restart_count += 1;
            drop(r);
            let _op = lock(&ctr.op);
            if ctr.get().state.status != Status::Exited || ctr.get().manually_stopped {
                return;
            }
            if let Err(e) = inner.start_locked(&ctr) {
                eprintln!("berth-engine: restart {}: {e}", ctr.id);
            }
        });
    }

    // ---- stop, kill, pause ---------------------------------------------------------

    pub fn stop(&self, name: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let ctr = self.find(name)?;
        let _op = lock(&ctr.op);
        self.stop_locked(&ctr, timeout, signal)
    }

    pub(crate) fn stop_locked(
        &self,
        ctr: &Ctr,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let c = ctr.get();
        if c.state.status == Status::Restarting {
            let mut r = lock(&ctr.rec);
            r.manually_stopped = true;
            r.state.status = Status::Exited;
            drop(r);
            ctr.cv.notify_all();
            self.save_quiet(ctr);
            return Ok(());
        }
        if !c.state.running() {
            return Err(Error::NotModified(format!(
                "container {} is not running",
                c.id
            )));
        }
        lock(&ctr.rec).manually_stopped = true;
        self.save_quiet(ctr);
        let sig = spec::parse_signal(
            signal
                .or(c.config.stop_signal.as_deref())
                .unwrap_or("SIGTERM"),
        )?;
        let timeout = timeout.or(c.spec.stop_timeout).unwrap_or(10);
        let shim = ctr.shim();
        if let Some(shim) = &shim {
            if c.state.status == Status::Paused {
                // A frozen process cannot act on the signal: thaw it after sending.
                let _ = shim.kill(sig, false);
                let _ = self.runtime(&["resume", &c.id]);
            } else {
                let _ = shim.kill(sig, false);
            }
            self.event("container", "kill", &c, &[("signal", sig.to_string())]);
        }
        let stopped = timeout >= 0 && self.wait_stopped(ctr, Duration::from_secs(timeout as u64));
        if !stopped {
            if let Some(shim) = &shim {
                let _ = shim.kill(libc::SIGKILL, true);
                self.event(
                    "container",
                    "kill",
                    &c,
                    &[("signal", libc::SIGKILL.to_string())],
                );
            }
            if !self.wait_stopped(ctr, Duration::from_secs(30)) {
                return Err(Error::Internal(format!(
                    "container {} did not exit after SIGKILL",
                    c.id
                )));
            }
        }
        self.event("container", "stop", &ctr.get(), &[]);
        Ok(())
    }

    /// Waits until the monitor has recorded the exit.
    fn wait_stopped(&self, ctr: &Ctr, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut r = lock(&ctr.rec);
        while r.state.running() && r.state.status != Status::Restarting {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            r = ctr
                .cv
                .wait_timeout(r, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }

    pub fn kill(&self, name: &str, signal: Option<&str>) -> Result<()> {
        let ctr = self.find(name)?;
        let c = ctr.get();
        let sig = spec::parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL"))?;
        let shim = match ctr.shim() {
            Some(s) if c.state.running() => s,
            _ => {
                return Err(Error::Conflict(format!(
                    "Cannot kill container: {name}: Container {} is not running",
                    c.id
                )))
            }
        };
        if matches!(
            sig,
            libc::SIGKILL | libc::SIGTERM | libc::SIGINT | libc::SIGQUIT
        ) {
            lock(&ctr.rec).manually_stopped = true;
            self.save_quiet(&ctr);
        }
        shim.kill(sig, sig == libc::SIGKILL)
            .map_err(|e| Error::Shim {
                id: c.id.clone(),
                source: e,
            })?;
        self.event("container", "kill", &c, &[("signal", sig.to_string())]);
        Ok(())
    }

    pub fn restart(self: &Arc<Inner>, name: &str, timeout: Option<i64>) -> Result<()> {
        let ctr = self.find(name)?;
        let _op = lock(&ctr.op);
        match self.stop_locked(&ctr, timeout, None) {
            Ok(()) | Err(Error::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start_locked(&ctr)?;
        self.event("container", "restart", &ctr.get(), &[]);
        Ok(())
    }

    pub fn pause(&self, name: &str, pause: bool) -> Result<()> {
        let ctr = self.find(name)?;
        let _op = lock(&ctr.op);
        let c = ctr.get();
        match (pause, c.state.status) {
            (true, Status::Running) | (false, Status::Paused) => {}
            (true, Status::Paused) => {
                return Err(Error::Conflict(format!(
                    "Container {} is already paused",
                    c.id
                )))
            }
            (false, _) => return Err(Error::Conflict(format!("Container {} is not paused", c.id))),
            (true, _) => {
                return Err(Error::Conflict(format!(
                    "Container {} is not running",
                    c.id
                )))
            }
        }
        self.runtime(&[if pause { "pause" } else { "resume" }, &c.id])?;
        lock(&ctr.rec).state.status = if pause {
            Status::Paused
        } else {
            Status::Running
        };
        self.save(&ctr)?;
        self.event(
            "container",
            if pause { "pause" } else { "unpause" },
            &c,
            &[],
        );
        Ok(())
    }

    /// Runs the runtime with its root; its stderr becomes the error.
    pub fn runtime(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.cfg.runtime)
            .arg("--root")
            .arg(self.runtime_root())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io_err(&self.cfg.runtime))?;
        if !out.status.success() {
            return Err(Error::Internal(format!(
                "{} {}: {}",
                self.cfg.runtime.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn runtime_delete(&self, id: &str) {
        if self.runtime_root().join(id).exists() {
            let _ = self.runtime(&["delete", "--force", id]);
        }
    }

    // ---- remove, rename, wait ------------------------------------------------------

    pub fn remove(&self, name: &str, force: bool, volumes: bool) -> Result<()> {
        let ctr = self.find(name)?;
        let _op = lock(&ctr.op);
        let c = ctr.get();
        if c.state.running() {
            if !force {
                let what = if c.state.status == Status::Paused {
                    "paused"
                } else {
                    "running"
                };
                return Err(Error::Conflict(format!(
                    "You cannot remove a {what} container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            {
                let mut r = lock(&ctr.rec);
                r.manually_stopped = true;
            }
            if let Some(shim) = ctr.shim() {
                if c.state.status == Status::Paused {
                    let _ = shim.kill(libc::SIGKILL, true);
                    let _ = self.runtime(&["resume", &c.id]);
                }
                let _ = shim.kill(libc::SIGKILL, true);
            }
            if c.state.status == Status::Restarting {
                lock(&ctr.rec).state.status = Status::Exited;
                ctr.cv.notify_all();
            }
            if !self.wait_stopped(&ctr, Duration::from_secs(30)) {
                return Err(Error::Internal(format!(
                    "container {} did not exit after SIGKILL",
                    c.id
                )));
            }
        }
        self.remove_now(&ctr, volumes, false)
    }

    /// Takes a stopped container down: runtime state, rootfs, snapshot, files, row.
    ///
    /// Removes a container whose shim has stopped or is stopping. With `answer_first` (`--rm`,
    /// where `docker run` waits for the removal), the row goes and waiters hear of it before
    /// the rootfs is unmounted and the directory removed: a crash in between leaves a directory
    /// without a row, which `open` takes down. Otherwise (`rm`) a failed unmount keeps the row.
    pub(crate) fn remove_now(&self, ctr: &Ctr, volumes: bool, answer_first: bool) -> Result<()> {
        {
            let mut r = lock(&ctr.rec);
            if r.state.status == Status::Removing && !lock(&self.ctrs).contains_key(&ctr.id) {
                return Ok(());
            }
            r.state.status = Status::Removing;
        }
        self.save_quiet(ctr);
        let c = ctr.get();
        // A monitor deleting the shim of the last run finishes first.
        self.shim_gone(ctr);
        if let Some(shim) = lock(&ctr.shim).take() {
            let _ = shim.delete(true);
        }
        self.runtime_delete(&c.id);
        let dir = Ctr::dir(self, &c.id);
        if answer_first {
            self.forget(ctr, &c, volumes)?;
            if let Err(e) = self.take_down(&c.id, &dir) {
                eprintln!(
                    "berth-engine: remove {}: {e} (left for the next start)",
                    c.id
                );
            }
            return Ok(());
        }
        self.take_down(&c.id, &dir)?;
        self.forget(ctr, &c, volumes)
    }

    /// Unmounts a removed container's rootfs, drops its snapshot and removes its directory.
    fn take_down(&self, id: &str, dir: &Path) -> Result<()> {
        bundle::teardown(&self.snapshots, id, &dir.join("rootfs"))?;
        fs::remove_dir_all(dir).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(Error::Io {
                    path: dir.to_path_buf(),
                    source: e,
                })
            }
        })
    }

    /// The row, the in-memory entry and (with `volumes`) its anonymous volumes go; then the
    /// `destroy` event and the waiters.
    fn forget(&self, ctr: &Ctr, c: &Container, volumes: bool) -> Result<()> {
        lock(&self.db).delete_container(&c.id)?;
        lock(&self.ctrs).remove(&c.id);
        lock(&self.execs).retain(|_, e| e.container_id != c.id);
        // Attaches that never saw a start end now.
        lock(&ctr.pending).clear();
        if volumes {
            for m in &c.mounts {
                if m.kind != MountKind::Volume {
                    continue;
                }
                // The database lock is released before the removal takes it again.
                let anonymous = lock(&self.db)
                    .get_volume::<Volume>(&m.name)
                    .ok()
                    .flatten()
                    .is_some_and(|v| v.anonymous);
                if anonymous && self.volume_users(&m.name).is_empty() {
                    let _ = self.volume_remove_unlocked(&m.name);
                }
            }
        }
        self.event("container", "destroy", c, &[]);
        let result = WaitResult {
            exit_code: c.state.exit_code,
            error: None,
        };
        for (_, tx) in lock(&ctr.waiters).drain(..) {
            let _ = tx.send(result.clone());
        }
        Ok(())
    }

    pub fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if !spec::valid_name(new_name) {
            return Err(Error::Invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let ctr = self.find(name)?;
        let _names = lock(&self.names);
        if let Some(other) = lock(&self.ctrs)
            .values()
            .find(|c| lock(&c.rec).name == new_name)
        {
            if other.id == ctr.id {
                return Err(Error::Invalid(
                    "Renaming a container with the same name as its current name".into(),
                ));
            }
            return Err(Error::Conflict(format!(
                "Error when allocating new name: Conflict. The container name \"/{new_name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        let old = {
            let mut r = lock(&ctr.rec);
            std::mem::replace(&mut r.name, new_name.to_string())
        };
        if let Err(e) = self.save(&ctr) {
            lock(&ctr.rec).name = old;
            return Err(e);
        }
        self.event(
            "container",
            "rename",
            &ctr.get(),
            &[("oldName", format!("/{old}"))],
        );
        Ok(())
    }

    pub fn wait(&self, name: &str, condition: WaitCondition) -> Result<Waiter> {
        let ctr = self.find(name)?;
        let (tx, rx) = mpsc::channel();
        let c = ctr.get();
        match condition {
            WaitCondition::NotRunning if !c.state.running() => {
                let _ = tx.send(WaitResult {
                    exit_code: c.state.exit_code,
                    error: None,
                });
            }
            _ => lock(&ctr.waiters).push((condition, tx)),
        }
        Ok(Waiter { rx })
    }

    /// A stream for a container that has not started: joined to the shim at start.
    pub fn attach_pending(&self, ctr: &Ctr, opts: AttachOptions) -> Result<UnixStream> {
        let (ours, theirs) = UnixStream::pair().map_err(io_err("socketpair"))?;
        lock(&ctr.pending).push((theirs, opts));
        Ok(ours)
    }
}

/// Copies one way and half-closes: client → shim carries stdin, shim → client the output.
pub(crate) fn splice(client: UnixStream, shim: UnixStream) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), shim.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut from = c2;
        let mut to = s2;
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let mut from = shim;
        let mut to = client;
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

pub(crate) fn read_exit(state_dir: &Path) -> Option<ExitInfo> {
    let text = fs::read(state_dir.join(berth_shim::protocol::EXIT_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` for the container, in its dir.
fn write_etc_files(
    dir: &Path,
    hostname: &str,
    domainname: Option<&str>,
    extra_hosts: &[(String, String)],
    resolv: String,
) -> Result<Vec<(String, String)>> {
    // The container's own address goes in at start, once it has one.
    let hosts = crate::net::hosts_text(hostname, domainname, None, extra_hosts);
    let mut out = Vec::new();
    for (file, text, dst) in [
        ("hostname", format!("{hostname}\n"), "/etc/hostname"),
        ("hosts", hosts, "/etc/hosts"),
        ("resolv.conf", resolv, "/etc/resolv.conf"),
    ] {
        let p = dir.join(file);
        fs::write(&p, text).map_err(io_err(&p))?;
        out.push((p.display().to_string(), dst.to_string()));
    }
    Ok(out)
}

/// Copies what the image has at `target` into a new, empty volume (best effort).
fn copy_up(rootfs: &Path, target: &str, volume: &Path) {
    let src = rootfs.join(target.trim_start_matches('/'));
    let Ok(meta) = fs::symlink_metadata(&src) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(volume)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// What a failed create takes down.
struct Undo<'a> {
    inner: &'a Inner,
    dir: PathBuf,
    volumes: Vec<String>,
}

impl Undo<'_> {
    fn disarm(&mut self) {
        self.volumes.clear();
        self.dir = PathBuf::new();
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        for v in &self.volumes {
            let _ = self.inner.volume_remove_unlocked(v);
        }
        if !self.dir.as_os_str().is_empty() {
            // The bundle (dropped before this) has unmounted the rootfs.
            if !bundle::is_mountpoint(&self.dir.join("rootfs")) {
                let _ = fs::remove_dir_all(&self.dir);
            }
        }
    }
}
