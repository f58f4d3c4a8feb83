//! The engine: one per daemon, shared by every request thread (`Engine` is `Send + Sync`;
//! methods block, so async callers run them on blocking threads).

use std::path::PathBuf;

use crate::error::Result;
use crate::model::*;

/// Where the engine keeps its state and which binaries it runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `--data-root` (default /var/lib/berth): the database, images, snapshots, containers,
    /// volumes.
    pub data_root: PathBuf,
    /// `--exec-root` (default /run/berth): the runtime's state.
    pub exec_root: PathBuf,
    /// The runc-compatible runtime (default: `berth-runc` beside the daemon, else on PATH).
    pub runtime: PathBuf,
    /// The shim binary (default: `berth-shim` beside the daemon, else on PATH).
    pub shim: PathBuf,
    /// Networks: the default bridge and where the CNI plugins are.
    pub network: NetConfig,
}

/// The daemon's network settings (`berthd --bridge`, `--bip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The Linux bridge of the default `bridge` network (`--bridge`, default `berth0`).
    /// `None` (`--bridge none`): no default bridge; containers of the default network mode
    /// get a network namespace with only a loopback, as with dockerd `--bridge none`.
    pub bridge: Option<String>,
    /// `--bip`: the default bridge's gateway and subnet (`172.17.0.1/16`). Unset: the first of
    /// Docker's address pools that no host route overlaps, chosen once and kept.
    pub bip: Option<String>,
    /// Where the CNI plugins are; empty: `/usr/lib/cni`, then `/opt/cni/bin`.
    pub cni_plugin_dirs: Vec<PathBuf>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            bridge: Some(berth_net::DEFAULT_BRIDGE_DEVICE.to_string()),
            bip: None,
            cni_plugin_dirs: Vec::new(),
        }
    }
}

impl NetConfig {
    /// No default bridge (`--bridge none`).
    pub fn no_bridge() -> Self {
        NetConfig {
            bridge: None,
            ..NetConfig::default()
        }
    }
}

/// The single-host engine; cheap to clone (shared state).
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: std::sync::Arc<Inner>,
}

/// A registered wait: `wait` on it blocks until the condition holds.
pub struct Waiter {
    pub(crate) rx: std::sync::mpsc::Receiver<WaitResult>,
}

impl Waiter {
    /// Blocks until the condition holds.
    pub fn wait(self) -> WaitResult {
        self.rx.recv().unwrap_or(WaitResult {
            exit_code: -1,
            error: Some("the engine is shutting down".into()),
        })
    }
}

/// A subscription to events: the past ones asked for, then live ones.
pub struct Events {
    pub past: Vec<Event>,
    pub live: std::sync::mpsc::Receiver<Event>,
}

/// Summary for `GET /info` and `/system/df`.
#[derive(Debug, Clone, Default)]
pub struct Info {
    pub counts: Counts,
    pub data_root: PathBuf,
    pub storage_driver: String,
    pub kernel_version: String,
    pub operating_system: String,
    pub os_type: String,
    pub architecture: String,
    pub ncpu: usize,
    pub mem_total: u64,
    pub hostname: String,
    /// `1` (v1 or hybrid) or `2`.
    pub cgroup_version: String,
    pub runtime: PathBuf,
    pub id: String,
}

/// `stat` of a path in a container (`HEAD /containers/{id}/archive`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits: permission bits, plus 1<<31 for a directory, 1<<27 for a
    /// symlink.
    pub mode: u32,
    /// RFC 3339.
    pub mtime: String,
    pub link_target: String,
}

/// `commit`.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `repo[:tag]`, if any.
    pub reference: Option<String>,
    pub comment: String,
    pub author: String,
    /// Dockerfile-like `CMD ...`, `ENV ...` lines.
    pub changes: Vec<String>,
    pub pause: bool,
}

/// An image as `images` and `image inspect` show it.
pub use berth_image::images::{HistoryEntry, ImageRecord};
/// An image reference (`docker.io/library/busybox:latest`), as image records carry them.
pub use berth_image::Reference;

/// What an image removal did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRemoved {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
}

use crate::inner::Inner;

impl Engine {
    /// Opens the engine's state (creating it on first use) and finds again every container
    /// a previous daemon left running.
    pub fn open(cfg: EngineConfig) -> Result<Engine> {
        Ok(Engine {
            inner: Inner::open(cfg)?,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    /// Before the daemon exits: waits (boundedly) for the network take-downs of runs that
    /// have just ended, which run on their own threads, so that no veth, rule or port is
    /// left for the next daemon's sweep.
    pub fn quiesce(&self) {
        self.inner.nets.quiesce();
    }

    // ---- networks ----------------------------------------------------------------------
    /// `docker network create`: returns the new network's id. Conflict when the name is
    /// taken or the subnet overlaps another network's; InvalidArgument for a bad subnet,
    /// gateway, driver or option.
    pub fn network_create(&self, spec: NetworkSpec) -> Result<String> {
        self.inner.network_create(spec)
    }
    /// Every network (with the containers on it), sorted by name.
    pub fn networks(&self) -> Result<Vec<Network>> {
        self.inner.networks()
    }
    /// By name, id or unique id prefix; `Error::NoSuchNetwork` otherwise.
    pub fn network_inspect(&self, name: &str) -> Result<Network> {
        self.inner.network_inspect(name)
    }
    /// Conflict while containers are connected or for the built-in networks.
    pub fn network_remove(&self, name: &str) -> Result<()> {
        self.inner.network_remove(name)
    }
    /// Connects a container (running or not) to a network. Conflict when it is already on
    /// it, or on `host`/`none`.
    pub fn network_connect(&self, network: &str, container: &str, ep: EndpointSpec) -> Result<()> {
        self.inner.network_connect(network, container, ep)
    }
    /// Disconnects a container from a network; a running one loses the interface at once.
    pub fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        self.inner.network_disconnect(network, container, force)
    }
    /// Removes every user network no container is connected to; returns their names.
    /// The cluster's service and task names on an overlay network, replacing earlier ones.
    pub fn network_service_records(
        &self,
        network: &str,
        records: &[(Vec<String>, std::net::Ipv4Addr)],
    ) {
        self.inner.network_service_records(network, records)
    }
    pub fn network_prune(&self) -> Result<Vec<String>> {
        self.inner.network_prune()
    }

    // ---- containers --------------------------------------------------------------------
    /// Creates a container; returns its id and warnings.
    pub fn create(&self, spec: ContainerSpec) -> Result<(String, Vec<String>)> {
        self.inner.create(spec)
    }
    /// `Error::NotModified` when already running.
    pub fn start(&self, name: &str) -> Result<()> {
        self.inner.start(name)
    }
    /// Sends the stop signal, then SIGKILL after `timeout` seconds (default: the container's
    /// stop timeout, else 10). `Error::NotModified` when not running.
    pub fn stop(&self, name: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        self.inner.stop(name, timeout, signal)
    }
    /// Signal by name (`KILL`, `SIGKILL`) or number; default SIGKILL. Conflict when not
    /// running.
    pub fn kill(&self, name: &str, signal: Option<&str>) -> Result<()> {
        self.inner.kill(name, signal)
    }
    pub fn restart(&self, name: &str, timeout: Option<i64>) -> Result<()> {
        self.inner.restart(name, timeout)
    }
    pub fn pause(&self, name: &str) -> Result<()> {
        self.inner.pause(name, true)
    }
    pub fn unpause(&self, name: &str) -> Result<()> {
        self.inner.pause(name, false)
    }
    /// Conflict when running and not `force`; `volumes` removes its anonymous volumes.
    pub fn remove(&self, name: &str, force: bool, volumes: bool) -> Result<()> {
        self.inner.remove(name, force, volumes)
    }
    pub fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        self.inner.rename(name, new_name)
    }
    /// Registers a wait (before `start` for `NextExit`); the returned [`Waiter`] blocks.
    pub fn wait(&self, name: &str, condition: WaitCondition) -> Result<Waiter> {
        self.inner.wait(name, condition)
    }
    /// By id, unique id prefix or name.
    pub fn inspect(&self, name: &str) -> Result<Container> {
        Ok(self.inner.find(name)?.get())
    }
    /// Every container, newest first.
    pub fn list(&self) -> Result<Vec<Container>> {
        let ctrs: Vec<_> = crate::inner::lock(&self.inner.ctrs)
            .values()
            .cloned()
            .collect();
        let mut out: Vec<Container> = ctrs.iter().map(|c| c.get()).collect();
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out)
    }
    pub fn logs(&self, name: &str, opts: LogsOptions) -> Result<Stream> {
        self.inner.logs(name, opts)
    }
    pub fn attach(&self, name: &str, opts: AttachOptions) -> Result<Stream> {
        self.inner.attach(name, opts)
    }
    pub fn resize(&self, name: &str, height: u16, width: u16) -> Result<()> {
        self.inner.resize(name, height, width)
    }
    /// `ps_args` default `-ef`.
    pub fn top(&self, name: &str, ps_args: Option<&str>) -> Result<Top> {
        self.inner.top(name, ps_args)
    }
    pub fn stats(&self, name: &str) -> Result<Stats> {
        self.inner.stats(name)
    }
    pub fn changes(&self, name: &str) -> Result<Vec<Change>> {
        self.inner.changes(name)
    }
    /// The container's filesystem as a tar stream.
    pub fn export(&self, name: &str) -> Result<Box<dyn std::io::Read + Send>> {
        self.inner.export(name)
    }
    pub fn archive_stat(&self, name: &str, path: &str) -> Result<PathStat> {
        self.inner.archive_stat(name, path)
    }
    /// A tar of `path` (a file or a directory, named by its base name).
    pub fn archive_get(
        &self,
        name: &str,
        path: &str,
    ) -> Result<(PathStat, Box<dyn std::io::Read + Send>)> {
        self.inner.archive_get(name, path)
    }
    /// Extracts `tar` into the directory `path` of the container.
    pub fn archive_put(
        &self,
        name: &str,
        path: &str,
        tar: &mut dyn std::io::Read,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<()> {
        self.inner
            .archive_put(name, path, tar, no_overwrite_dir_non_dir)
    }
    /// Returns the new image id.
    pub fn commit(&self, name: &str, opts: CommitOptions) -> Result<String> {
        self.inner.commit(name, opts)
    }
    pub fn prune_containers(&self) -> Result<Pruned> {
        let mut out = Pruned::default();
        for c in self.list()? {
            if matches!(
                c.state.status,
                Status::Exited | Status::Created | Status::Dead
            ) {
                let size = self.inner.snapshots.usage(&c.id).unwrap_or(0);
                if self.inner.remove(&c.id, false, false).is_ok() {
                    out.deleted.push(c.id);
                    out.space_reclaimed += size;
                }
            }
        }
        Ok(out)
    }

    // ---- exec --------------------------------------------------------------------------
    pub fn exec_create(&self, container: &str, spec: ExecSpec) -> Result<String> {
        self.inner.exec_create(container, spec)
    }
    /// `None` when detached.
    pub fn exec_start(&self, exec_id: &str, detach: bool) -> Result<Option<Stream>> {
        self.inner.exec_start(exec_id, detach)
    }
    pub fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        self.inner.exec_resize(exec_id, height, width)
    }
    pub fn exec_inspect(&self, exec_id: &str) -> Result<Exec> {
        self.inner.exec_inspect(exec_id)
    }

    // ---- images ------------------------------------------------------------------------
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        self.inner.images()
    }
    pub fn image_inspect(&self, name: &str) -> Result<ImageRecord> {
        self.inner.image_inspect(name)
    }
    pub fn image_history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        self.inner.image_history(name)
    }
    /// `repo` like `docker.io/library/x` or `x`; `tag` empty means `latest`.
    pub fn image_tag(&self, name: &str, repo: &str, tag: &str) -> Result<()> {
        self.inner.image_tag(name, repo, tag)
    }
    pub fn image_remove(&self, name: &str, force: bool) -> Result<ImageRemoved> {
        self.inner.image_remove(name, force)
    }
    /// Untagged images not used by any container (all unused with `all`).
    pub fn image_prune(&self, all: bool) -> Result<Pruned> {
        self.inner.image_prune(all)
    }
    /// Loads a `docker save` archive or an OCI layout tar; returns `Loaded image: …` lines.
    pub fn image_load(&self, tar: &mut dyn std::io::Read) -> Result<Vec<String>> {
        self.inner.image_load(tar)
    }
    pub fn image_save(&self, names: &[String], out: &mut dyn std::io::Write) -> Result<()> {
        self.inner.image_save(names, out)
    }
    /// Imports a rootfs tarball; returns the image id.
    pub fn image_import(
        &self,
        tar: &mut dyn std::io::Read,
        reference: Option<&str>,
        changes: &[String],
    ) -> Result<String> {
        self.inner.image_import(tar, reference, changes)
    }
    /// `busybox` or `debian:SUITE`; returns the image id.
    pub fn image_bootstrap(&self, what: &str) -> Result<String> {
        self.inner.image_bootstrap(what)
    }

    // ---- volumes -----------------------------------------------------------------------
    /// `name` None: an anonymous volume with a random name.
    pub fn volume_create(
        &self,
        name: Option<&str>,
        labels: std::collections::BTreeMap<String, String>,
        options: std::collections::BTreeMap<String, String>,
    ) -> Result<Volume> {
        let _n = crate::inner::lock(&self.inner.names);
        self.inner
            .volume_create_inner(name, labels, options, name.is_none())
    }
    pub fn volumes(&self) -> Result<Vec<Volume>> {
        self.inner.volumes()
    }
    pub fn volume_inspect(&self, name: &str) -> Result<Volume> {
        self.inner.volume_inspect(name)
    }
    /// Conflict when a container uses it (unless `force`, which still refuses a running one).
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        self.inner.volume_remove(name, force)
    }
    /// Unused anonymous volumes (all unused with `all`).
    pub fn volume_prune(&self, all: bool) -> Result<Pruned> {
        self.inner.volume_prune(all)
    }
    pub fn volume_usage(&self) -> Result<Vec<VolumeUsage>> {
        self.inner.volume_usage()
    }

    // ---- system ------------------------------------------------------------------------
    pub fn info(&self) -> Result<Info> {
        self.inner.info()
    }
    /// Size of each container's writable layer.
    pub fn container_usage(&self) -> Result<Vec<ContainerUsage>> {
        self.inner.container_usage()
    }
    /// Past events at or after `since` (Unix nanoseconds, 0 none) and a live feed.
    pub fn events(&self, since: i64) -> Events {
        let (past, live) = self.inner.events.subscribe(since);
        Events { past, live }
    }

    /// Publishes an event of another layer on this engine's bus (the cluster's `service`
    /// events on a manager), so `docker events` shows it beside the engine's own.
    pub fn publish_event(
        &self,
        kind: &str,
        action: &str,
        id: &str,
        attributes: std::collections::BTreeMap<String, String>,
    ) {
        self.inner.events.publish(kind, action, id, attributes);
    }
}
