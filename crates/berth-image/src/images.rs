//! Image metadata store: which manifests are images, their tags (`refs.json`), lookup by
//! reference, id or digest, removal, history and garbage collection of unreferenced blobs.
//!
//! Layout under the root (shared with the [`ContentStore`]): `refs.json` (tags and image
//! records, replaced atomically by write-temp-and-rename), `refs.lock` (flock held while
//! `refs.json` is read-modified-written, so concurrent CLI invocations do not lose updates) and
//! `gc.lock` (held shared by writers between writing blobs and tagging them, exclusively by gc,
//! so gc never deletes the blobs of an image being loaded).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::reference::{is_full_hex_id, Reference, ReferenceError};
use crate::store::{sync_dir, ContentStore, Digest, StoreError};

const REFS_FILE: &str = "refs.json";
const REFS_LOCK: &str = "refs.lock";
const GC_LOCK: &str = "gc.lock";
const REFS_VERSION: u32 = 1;
/// Temp files in `ingest/` older than this are considered abandoned by gc.
const STALE_INGEST: Duration = Duration::from_secs(3600);

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("image id prefix {prefix} is ambiguous: it matches {count} images")]
    Ambiguous { prefix: String, count: usize },
    #[error("invalid manifest {digest}: {reason}")]
    InvalidManifest { digest: Digest, reason: String },
    #[error("invalid image config {digest}: {reason}")]
    InvalidConfig { digest: Digest, reason: String },
    #[error("cannot tag with {0}: a tag reference must not carry a digest")]
    DigestTag(Reference),
    #[error(
        "image {name} ({id}) is being used by a container: stop and remove it first, or force"
    )]
    InUse { name: String, id: Digest },
    #[error("image {name} is referenced by {count} tags: remove them by name, or force")]
    MultipleTags { name: String, count: usize },
    #[error("unable to delete {id} (cannot be forced) - image has dependent child images")]
    HasChildren { id: Digest },
    #[error("corrupt image records {path}: {reason}")]
    CorruptRefs { path: PathBuf, reason: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// OCI chain ids of a layer stack: `chain(0) = diff(0)`,
/// `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(prev) => {
                let mut h = Sha256::new();
                h.update(prev.as_str().as_bytes());
                h.update(b" ");
                h.update(diff.as_str().as_bytes());
                Digest::from_hasher(h)
            }
        };
        out.push(next);
    }
    out
}

/// Seconds since the epoch, now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 UTC time (`2024-05-01T12:00:00Z`) of seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// An flock held until dropped.
#[derive(Debug)]
struct Flock {
    _file: File,
}

/// Take an flock on `path` (created if missing). `None` when `nonblocking` and it is held.
fn flock(path: &Path, op: libc::c_int, nonblocking: bool) -> Result<Option<Flock>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("open lock file", path))?;
    let op = if nonblocking { op | libc::LOCK_NB } else { op };
    loop {
        // SAFETY: flock on a file descriptor owned by `file`, which outlives the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(Some(Flock { _file: file }));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if nonblocking => return Ok(None),
            _ => return Err(io_err("lock", path)(e)),
        }
    }
}

/// Held by a writer between storing an image's blobs and tagging it: gc waits for it.
#[derive(Debug)]
pub struct Lease {
    _lock: Flock,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Refs {
    version: u32,
    /// Manifest digest → record.
    images: BTreeMap<Digest, ImageEntry>,
    /// Full reference (`docker.io/library/busybox:latest`) → manifest digest.
    tags: BTreeMap<String, Digest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageEntry {
    /// Config digest: the image id.
    config: Digest,
    /// When the image was first recorded in this store, seconds since the epoch.
    created: u64,
    /// The image this one was built on, step by step (a build's intermediate images): its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<Digest>,
}

/// What an image is, as `image ls` and `image inspect` show it.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    /// The image id: the config digest.
    pub id: Digest,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// Layer descriptors, base first.
    pub layers: Vec<Descriptor>,
    /// Uncompressed layer digests from the config, base first.
    pub diff_ids: Vec<Digest>,
    /// Tags pointing at this image, sorted.
    pub repo_tags: Vec<Reference>,
    /// Bytes of the stored layer blobs plus config (compressed size for compressed layers).
    pub size: u64,
    /// Creation time from the config (RFC 3339), or when the store first recorded the image.
    pub created: String,
    /// When the store first recorded the image, seconds since the epoch.
    pub added: u64,
    /// The image a build made this one from (`docker inspect`'s `Parent`).
    pub parent: Option<Digest>,
    /// Whether another image names this one as its parent (an intermediate image, which
    /// `docker images` hides unless it is tagged).
    pub has_children: bool,
    /// The config blob's `config` object as stored, with the keys Docker adds to OCI's
    /// (`Healthcheck`, `OnBuild`, `Shell`); `Null` when it has none.
    pub docker_config: serde_json::Value,
}

impl ImageRecord {
    /// Chain ids of the layer stack (what snapshots are keyed by).
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(&self.diff_ids)
    }
}

/// One line of `image history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The image id on the top entry, `None` below (docker prints `<missing>`).
    pub id: Option<Digest>,
    pub created: Option<String>,
    pub created_by: String,
    pub comment: String,
    pub empty_layer: bool,
    /// The layer this step produced, if any.
    pub layer: Option<Digest>,
    /// Stored size of that layer.
    pub size: u64,
}

/// What `remove` did, in docker's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub untagged: Vec<Reference>,
    /// Image ids whose records were deleted.
    pub deleted: Vec<Digest>,
}

/// What `gc` reclaimed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStats {
    pub blobs_removed: usize,
    pub bytes_freed: u64,
    pub temp_files_removed: usize,
}

/// Images and their tags over a content store.
#[derive(Debug, Clone)]
pub struct ImageStore {
    content: ContentStore,
    root: PathBuf,
}

impl ImageStore {
    /// Open (creating if needed) an image store rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<ImageStore> {
        let root = root.as_ref().to_path_buf();
        let content = ContentStore::open(&root)?;
        Ok(ImageStore { content, root })
    }

    /// The content store holding the blobs.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take a lease: hold it from before writing an image's blobs until it is tagged or
    /// registered, so a concurrent gc does not delete them. Never call [`ImageStore::gc`] while
    /// holding one: gc waits for every lease.
    pub fn lease(&self) -> Result<Lease> {
        let lock = flock(&self.root.join(GC_LOCK), libc::LOCK_SH, false)?;
        match lock {
            Some(l) => Ok(Lease { _lock: l }),
            None => Err(ImageError::Io {
                op: "lock",
                path: self.root.join(GC_LOCK),
                source: io::Error::from(io::ErrorKind::WouldBlock),
            }),
        }
    }

    /// Parse a stored manifest.
    pub fn manifest(&self, digest: &Digest) -> Result<ImageManifest> {
        let bytes = self.content.read_blob(digest)?;
        parse_manifest(digest, &bytes)
    }

    /// Parse a stored image config.
    pub fn config(&self, digest: &Digest) -> Result<ImageConfiguration> {
        let bytes = self.content.read_blob(digest)?;
        parse_config(digest, &bytes)
    }

    /// Record a stored manifest as an image (untagged if it has no tag yet). Its config and
    /// layers must be in the store. Returns the image id.
    pub fn register(&self, manifest: &Digest) -> Result<Digest> {
        let _lease = self.lease()?;
        let config = self.check_complete(manifest)?;
        self.update(|refs| {
            refs.images
                .entry(manifest.clone())
                .or_insert_with(|| ImageEntry {
                    config: config.clone(),
                    created: now_secs(),
                    parent: None,
                });
            Ok(())
        })?;
        Ok(config)
    }

    /// Point a tag at a stored manifest (registering the image). A tag that pointed elsewhere
    /// moves; the old image stays, untagged.
    pub fn tag(&self, reference: &Reference, manifest: &Digest) -> Result<()> {
        if reference.digest.is_some() {
            return Err(ImageError::DigestTag(reference.clone()));
        }
        let reference = reference.with_tag(reference.tag_or_default())?;
        // Keeps a concurrent `remove` from deleting the manifest between the check and the write.
        let _lease = self.lease()?;
        let config = self.check_complete(manifest)?;
        self.update(|refs| {
            refs.images
                .entry(manifest.clone())
                .or_insert_with(|| ImageEntry {
                    config: config.clone(),
                    created: now_secs(),
                    parent: None,
                });
            refs.tags.insert(reference.to_string(), manifest.clone());
            Ok(())
        })
    }

    /// Store a new image made of `config` (whose `rootfs.diff_ids` must match `layers`, whose
    /// blobs are already in the store) and record it, untagged, as a child of `parent`
    /// (a build step's image). Returns the manifest digest and the image id. The same config
    /// and layers give the same image.
    pub fn write_image(
        &self,
        config: &serde_json::Value,
        layers: Vec<Descriptor>,
        parent: Option<&Digest>,
    ) -> Result<(Digest, Digest)> {
        let _lease = self.lease()?;
        let config_bytes = serde_json::to_vec(config).map_err(|e| ImageError::InvalidConfig {
            digest: Digest::of_bytes(b""),
            reason: e.to_string(),
        })?;
        let config_digest = self.content.put_bytes(&config_bytes)?;
        let invalid = |e: oci_spec::OciSpecError| ImageError::InvalidConfig {
            digest: config_digest.clone(),
            reason: e.to_string(),
        };
        let manifest = oci_spec::image::ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(
                oci_spec::image::DescriptorBuilder::default()
                    .media_type(MediaType::ImageConfig)
                    .digest(config_digest.to_oci())
                    .size(config_bytes.len() as u64)
                    .build()
                    .map_err(invalid)?,
            )
            .layers(layers)
            .build()
            .map_err(invalid)?;
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| ImageError::InvalidConfig {
                digest: config_digest.clone(),
                reason: e.to_string(),
            })?;
        let manifest_digest = self.content.put_bytes(&manifest_bytes)?;
        let config = self.check_complete(&manifest_digest)?;
        self.update(|refs| {
            let e = refs
                .images
                .entry(manifest_digest.clone())
                .or_insert_with(|| ImageEntry {
                    config: config.clone(),
                    created: now_secs(),
                    parent: None,
                });
            if e.parent.is_none() {
                e.parent = parent.cloned().filter(|p| *p != config);
            }
            Ok(())
        })?;
        Ok((manifest_digest, config))
    }

    /// Remove a tag; the image stays (untagged). Returns the manifest it pointed at.
    pub fn untag(&self, reference: &Reference) -> Result<Digest> {
        let key = reference.to_string();
        self.update(|refs| {
            refs.tags
                .remove(&key)
                .ok_or_else(|| ImageError::NotFound(reference.familiar()))
        })
    }

    /// Find an image by reference (`busybox`, `busybox:1`, `repo@sha256:...`), by full or short
    /// image id (config digest, with or without `sha256:`), or by manifest digest.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        let refs = self.read_refs()?;
        let manifest = find(&refs, name)?;
        self.record(&refs, &manifest, &parents(&refs))
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let refs = self.read_refs()?;
        let parents = parents(&refs);
        let mut out = refs
            .images
            .keys()
            .map(|m| self.record(&refs, m, &parents))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| {
            b.created
                .cmp(&a.created)
                .then(b.added.cmp(&a.added))
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Remove an image like `docker rmi`: by tag, untag it, and delete the image when that was
    /// its last tag; by id or digest, delete it (all tags must go, which needs `force` when
    /// there are several). `in_use(image id)` says whether a container uses it: then removal
    /// is refused, or with `force` the tags go but the image stays.
    ///
    /// The manifest blob is deleted at once when no load is in progress; config and layers
    /// (possibly shared) are reclaimed by [`ImageStore::gc`].
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<Removed> {
        let mut deleted_manifests = Vec::new();
        let removed = self.update(|refs| {
            let manifest = find(refs, name)?;
            let id = refs
                .images
                .get(&manifest)
                .map(|e| e.config.clone())
                .ok_or_else(|| ImageError::NotFound(name.to_string()))?;
            let by_tag = Reference::parse(name)
                .ok()
                .filter(|r| r.digest.is_none())
                .map(|r| r.to_string())
                .filter(|k| refs.tags.contains_key(k));
            let tags: Vec<String> = refs
                .tags
                .iter()
                .filter(|(_, m)| **m == manifest)
                .map(|(k, _)| k.clone())
                .collect();
            let mut removed = Removed::default();
            let untag = |refs: &mut Refs, key: &str, removed: &mut Removed| {
                refs.tags.remove(key);
                if let Ok(r) = Reference::parse(key) {
                    removed.untagged.push(r);
                }
            };
            if let Some(key) = &by_tag {
                if tags.len() > 1 {
                    untag(refs, key, &mut removed);
                    return Ok(removed);
                }
            } else if tags.len() > 1 && !force {
                return Err(ImageError::MultipleTags {
                    name: name.to_string(),
                    count: tags.len(),
                });
            }
            if tags.is_empty() && refs.images.values().any(|e| e.parent.as_ref() == Some(&id)) {
                return Err(ImageError::HasChildren { id });
            }
            let used = in_use(&id);
            if used && !force {
                return Err(ImageError::InUse {
                    name: name.to_string(),
                    id,
                });
            }
            for key in &tags {
                untag(refs, key, &mut removed);
            }
            if !used {
                let mut parent = refs.images.remove(&manifest).and_then(|e| e.parent);
                removed.deleted.push(id);
                deleted_manifests.push(manifest);
                // Like `docker rmi`: the untagged intermediate images of a build go with the
                // last image made from them.
                while let Some(pid) = parent.take() {
                    let Some(pm) = refs
                        .images
                        .iter()
                        .find(|(_, e)| e.config == pid)
                        .map(|(m, _)| m.clone())
                    else {
                        break;
                    };
                    let tagged = refs.tags.values().any(|m| *m == pm);
                    let children = refs
                        .images
                        .values()
                        .any(|e| e.parent.as_ref() == Some(&pid));
                    if tagged || children || in_use(&pid) {
                        break;
                    }
                    parent = refs.images.remove(&pm).and_then(|e| e.parent);
                    removed.deleted.push(pid);
                    deleted_manifests.push(pm);
                }
            }
            Ok(removed)
        })?;
        if !deleted_manifests.is_empty() {
            // Only when no writer holds a lease: it may be re-adding this very manifest.
            if let Some(_gc) = flock(&self.root.join(GC_LOCK), libc::LOCK_EX, true)? {
                let refs = self.read_refs()?;
                for manifest in &deleted_manifests {
                    if !refs.images.contains_key(manifest) {
                        self.content.delete(manifest)?;
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Delete every blob no image references (manifest, config, layers) and `keep` does not
    /// protect (e.g. layers a snapshot still needs), and stale temp files. Waits for writers
    /// holding a lease.
    pub fn gc(&self, keep: &dyn Fn(&Digest) -> bool) -> Result<GcStats> {
        let _gc = flock(&self.root.join(GC_LOCK), libc::LOCK_EX, false)?;
        let _refs = flock(&self.root.join(REFS_LOCK), libc::LOCK_EX, false)?;
        let refs = self.read_refs()?;
        let mut live: HashSet<Digest> = HashSet::new();
        for manifest_digest in refs.images.keys() {
            live.insert(manifest_digest.clone());
            let manifest = match self.manifest(manifest_digest) {
                Ok(m) => m,
                // A record whose manifest is gone keeps nothing else alive.
                Err(ImageError::Store(StoreError::NotFound(_))) => continue,
                Err(e) => return Err(e),
            };
            for desc in std::iter::once(manifest.config()).chain(manifest.layers()) {
                live.insert(Digest::from_oci(desc.digest())?);
            }
        }
        let mut stats = GcStats::default();
        for blob in self.content.list()? {
            if live.contains(&blob) || keep(&blob) {
                continue;
            }
            let size = self.content.size(&blob).unwrap_or(0);
            if self.content.delete(&blob)? {
                stats.blobs_removed += 1;
                stats.bytes_freed += size;
            }
        }
        stats.temp_files_removed = self.content.clean_ingest(STALE_INGEST)?;
        Ok(stats)
    }

    /// The build steps of an image, newest first, with the layer each one produced.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        let rec = self.resolve(name)?;
        let mut layers = rec.layers.iter();
        let mut out = Vec::new();
        match rec.config.history() {
            Some(history) if !history.is_empty() => {
                for h in history {
                    let empty = h.empty_layer().unwrap_or(false);
                    let layer = if empty { None } else { layers.next() };
                    out.push(HistoryEntry {
                        id: None,
                        created: h.created().clone(),
                        created_by: h.created_by().clone().unwrap_or_default(),
                        comment: h.comment().clone().unwrap_or_default(),
                        empty_layer: empty,
                        layer: layer.and_then(|d| Digest::from_oci(d.digest()).ok()),
                        size: layer.map_or(0, |d| d.size()),
                    });
                }
            }
            _ => {
                for d in rec.layers.iter() {
                    out.push(HistoryEntry {
                        id: None,
                        created: rec.config.created().clone(),
                        created_by: String::new(),
                        comment: String::new(),
                        empty_layer: false,
                        layer: Digest::from_oci(d.digest()).ok(),
                        size: d.size(),
                    });
                }
            }
        }
        out.reverse();
        if let Some(top) = out.first_mut() {
            top.id = Some(rec.id.clone());
        }
        Ok(out)
    }

    /// Check that a manifest, its config and its layers are stored; returns the config digest.
    fn check_complete(&self, manifest: &Digest) -> Result<Digest> {
        let m = self.manifest(manifest)?;
        let config = Digest::from_oci(m.config().digest())?;
        for desc in std::iter::once(m.config()).chain(m.layers()) {
            let d = Digest::from_oci(desc.digest())?;
            if !self.content.exists(&d) {
                return Err(ImageError::InvalidManifest {
                    digest: manifest.clone(),
                    reason: format!("blob {d} is not in the store"),
                });
            }
        }
        Ok(config)
    }

    /// `parents`: the ids other images name as their parent ([`parents`]).
    fn record(
        &self,
        refs: &Refs,
        manifest_digest: &Digest,
        parents: &HashSet<Digest>,
    ) -> Result<ImageRecord> {
        let entry = refs
            .images
            .get(manifest_digest)
            .ok_or_else(|| ImageError::NotFound(manifest_digest.to_string()))?;
        let manifest = self.manifest(manifest_digest)?;
        let id = Digest::from_oci(manifest.config().digest())?;
        if id != entry.config {
            return Err(ImageError::InvalidManifest {
                digest: manifest_digest.clone(),
                reason: format!("config {id} differs from the recorded {}", entry.config),
            });
        }
        let config_bytes = self.content.read_blob(&id)?;
        let config = parse_config(&id, &config_bytes)?;
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|s| Digest::from_str(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ImageError::InvalidConfig {
                digest: id.clone(),
                reason: e.to_string(),
            })?;
        let mut repo_tags: Vec<Reference> = refs
            .tags
            .iter()
            .filter(|(_, m)| *m == manifest_digest)
            .filter_map(|(k, _)| Reference::parse(k).ok())
            .collect();
        repo_tags.sort();
        let layers = manifest.layers().clone();
        let size = layers.iter().map(|d| d.size()).sum::<u64>() + config_bytes.len() as u64;
        let created = config
            .created()
            .clone()
            .unwrap_or_else(|| rfc3339(entry.created));
        let has_children = parents.contains(&id);
        let docker_config = serde_json::from_slice::<serde_json::Value>(&config_bytes)
            .map(|mut v| v["config"].take())
            .unwrap_or(serde_json::Value::Null);
        Ok(ImageRecord {
            docker_config,
            id,
            manifest_digest: manifest_digest.clone(),
            manifest,
            config,
            layers,
            diff_ids,
            repo_tags,
            size,
            created,
            added: entry.created,
            parent: entry.parent.clone(),
            has_children,
        })
    }

    fn read_refs(&self) -> Result<Refs> {
        let path = self.root.join(REFS_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Refs {
                    version: REFS_VERSION,
                    ..Refs::default()
                })
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let refs: Refs = serde_json::from_slice(&bytes).map_err(|e| ImageError::CorruptRefs {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if refs.version != REFS_VERSION {
            return Err(ImageError::CorruptRefs {
                path,
                reason: format!("unsupported version {}", refs.version),
            });
        }
        Ok(refs)
    }

    /// Read-modify-write `refs.json` under the refs lock; written only if `f` succeeds.
    fn update<T>(&self, f: impl FnOnce(&mut Refs) -> Result<T>) -> Result<T> {
        let _lock = flock(&self.root.join(REFS_LOCK), libc::LOCK_EX, false)?;
        let mut refs = self.read_refs()?;
        let out = f(&mut refs)?;
        self.write_refs(&refs)?;
        Ok(out)
    }

    fn write_refs(&self, refs: &Refs) -> Result<()> {
        let path = self.root.join(REFS_FILE);
        let mut bytes = serde_json::to_vec_pretty(refs).map_err(|e| ImageError::CorruptRefs {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        let mut tmp = tempfile::Builder::new()
            .prefix(".refs-")
            .tempfile_in(&self.root)
            .map_err(io_err("create temp file in", &self.root))?;
        tmp.write_all(&bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(io_err("write", tmp.path()))?;
        tmp.persist(&path).map_err(|e| ImageError::Io {
            op: "replace",
            path: path.clone(),
            source: e.error,
        })?;
        sync_dir(&self.root)?;
        Ok(())
    }
}

/// Parse manifest bytes; only image manifests (OCI or Docker schema2) are accepted.
pub(crate) fn parse_manifest(digest: &Digest, bytes: &[u8]) -> Result<ImageManifest> {
    let m: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| ImageError::InvalidManifest {
            digest: digest.clone(),
            reason: e.to_string(),
        })?;
    if m.schema_version() != 2 {
        return Err(ImageError::InvalidManifest {
            digest: digest.clone(),
            reason: format!("unsupported schemaVersion {}", m.schema_version()),
        });
    }
    match m.media_type() {
        None | Some(MediaType::ImageManifest) => {}
        Some(MediaType::Other(t)) if t == DOCKER_MANIFEST => {}
        Some(other) => {
            return Err(ImageError::InvalidManifest {
                digest: digest.clone(),
                reason: format!("not an image manifest: media type {other}"),
            })
        }
    }
    Ok(m)
}

/// Parse image config bytes (OCI or Docker: both share the fields used here).
pub(crate) fn parse_config(digest: &Digest, bytes: &[u8]) -> Result<ImageConfiguration> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::InvalidConfig {
        digest: digest.clone(),
        reason: e.to_string(),
    })
}

/// Media type of a Docker schema2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Look a name up in the records; returns the manifest digest.
/// The image ids some image names as its parent.
fn parents(refs: &Refs) -> HashSet<Digest> {
    refs.images
        .values()
        .filter_map(|e| e.parent.clone())
        .collect()
}

fn find(refs: &Refs, name: &str) -> Result<Digest> {
    let not_found = || ImageError::NotFound(name.to_string());
    // A full id or digest.
    let full = Digest::from_str(name)
        .ok()
        .or_else(|| is_full_hex_id(name).then(|| Digest::from_hex(name).ok())?);
    if let Some(d) = full {
        if let Some(m) = by_config(refs, |c| *c == d) {
            return Ok(m);
        }
        if refs.images.contains_key(&d) {
            return Ok(d);
        }
        return Err(not_found());
    }
    // A reference.
    if let Ok(r) = Reference::parse(name) {
        if let Some(d) = &r.digest {
            let repo = r.repository();
            // The digest must be one of this repository's images.
            let tagged_in_repo = refs.tags.iter().any(|(k, m)| {
                m == d
                    && Reference::parse(k)
                        .map(|t| t.repository() == repo)
                        .unwrap_or(false)
            });
            if tagged_in_repo || refs.images.contains_key(d) {
                return Ok(d.clone());
            }
            return Err(not_found());
        }
        if let Some(m) = refs.tags.get(&r.to_string()) {
            return Ok(m.clone());
        }
    }
    // A short id.
    let prefix = name.strip_prefix("sha256:").unwrap_or(name);
    if !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        let ids: BTreeSet<&Digest> = refs
            .images
            .values()
            .map(|e| &e.config)
            .filter(|c| c.hex().starts_with(prefix))
            .collect();
        match ids.len() {
            0 => {}
            1 => {
                if let Some(m) = by_config(refs, |c| ids.contains(c)) {
                    return Ok(m);
                }
            }
            count => {
                return Err(ImageError::Ambiguous {
                    prefix: prefix.to_string(),
                    count,
                })
            }
        }
    }
    Err(not_found())
}

/// The manifest of the image whose config matches: a tagged one first, then the newest.
fn by_config(refs: &Refs, matches: impl Fn(&Digest) -> bool) -> Option<Digest> {
    let tagged: HashSet<&Digest> = refs.tags.values().collect();
    refs.images
        .iter()
        .filter(|(_, e)| matches(&e.config))
        .max_by_key(|(m, e)| (tagged.contains(m), e.created))
        .map(|(m, _)| m.clone())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use oci_spec::image::{
        Arch, ConfigBuilder, ImageConfigurationBuilder, ImageManifestBuilder, Os, RootFsBuilder,
    };

    /// Store a one-layer image whose layer is `layer` (an uncompressed tar or anything) and
    /// return its manifest digest.
    pub(crate) fn put_image(store: &ImageStore, layer: &[u8], cmd: &str) -> Digest {
        let c = store.content();
        let layer_d = c.put_bytes(layer).unwrap();
        let config = ImageConfigurationBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .created("2024-01-02T03:04:05Z".to_string())
            .config(
                ConfigBuilder::default()
                    .cmd(vec![cmd.to_string()])
                    .build()
                    .unwrap(),
            )
            .rootfs(
                RootFsBuilder::default()
                    .diff_ids(vec![layer_d.to_string()])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let config_bytes = serde_json::to_vec(&config).unwrap();
        let config_d = c.put_bytes(&config_bytes).unwrap();
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_bytes.len() as u64,
                config_d.to_oci(),
            ))
            .layers(vec![Descriptor::new(
                MediaType::ImageLayer,
                layer.len() as u64,
                layer_d.to_oci(),
            )])
            .build()
            .unwrap();
        c.put_bytes(&serde_json::to_vec(&manifest).unwrap())
            .unwrap()
    }

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let a = Digest::of_bytes(b"a");
        let b = Digest::of_bytes(b"b");
        let c = Digest::of_bytes(b"c");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a);
        let ab = Digest::of_bytes(format!("{a} {b}").as_bytes());
        assert_eq!(ids[1], ab);
        assert_eq!(ids[2], Digest::of_bytes(format!("{ab} {c}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn tag_resolve_list_untag() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let m = put_image(&store, b"layer-a", "sh");
        store.tag(&r("busybox"), &m).unwrap();
        store.tag(&r("user/app:1"), &m).unwrap();
        let rec = store.resolve("busybox").unwrap();
        assert_eq!(rec.manifest_digest, m);
        assert_eq!(rec.repo_tags, vec![r("busybox:latest"), r("user/app:1")]);
        assert_eq!(rec.created, "2024-01-02T03:04:05Z");
        assert_eq!(rec.layers.len(), 1);
        assert_eq!(rec.diff_ids, vec![Digest::of_bytes(b"layer-a")]);
        // By id (full, with and without prefix, short), by manifest digest, by repo@digest.
        let id = rec.id.clone();
        for name in [
            id.to_string(),
            id.hex().to_string(),
            id.short().to_string(),
            format!("sha256:{}", &id.hex()[..8]),
            m.to_string(),
            format!("busybox@{m}"),
            "docker.io/library/busybox:latest".to_string(),
        ] {
            assert_eq!(store.resolve(&name).unwrap().id, id, "{name}");
        }
        assert!(matches!(
            store.resolve("nothere"),
            Err(ImageError::NotFound(_))
        ));
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(store.untag(&r("user/app:1")).unwrap(), m);
        assert!(store.untag(&r("user/app:1")).is_err());
        assert_eq!(
            store.resolve(id.short()).unwrap().repo_tags,
            vec![r("busybox")]
        );
        // Digest references cannot be tags.
        assert!(matches!(
            store.tag(&r(&format!("busybox@{m}")), &m),
            Err(ImageError::DigestTag(_))
        ));
        // A manifest whose blobs are missing cannot be tagged.
        let missing = Digest::of_bytes(b"nope");
        assert!(store.tag(&r("x"), &missing).is_err());
    }

    #[test]
    fn ambiguous_short_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        for i in 0..40 {
            let m = put_image(&store, format!("l{i}").as_bytes(), "sh");
            ids.push(store.register(&m).unwrap());
        }
        // With 40 images two ids share a first hex digit.
        let first: Vec<char> = ids.iter().filter_map(|d| d.hex().chars().next()).collect();
        let dup = first
            .iter()
            .find(|c| first.iter().filter(|x| x == c).count() > 1)
            .unwrap();
        let err = store.resolve(&dup.to_string()).unwrap_err();
        assert!(matches!(err, ImageError::Ambiguous { .. }), "{err}");
        assert_eq!(store.list().unwrap().len(), 40);
    }

    #[test]
    fn remove_like_rmi() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let m = put_image(&store, b"layer-a", "sh");
        store.tag(&r("a"), &m).unwrap();
        store.tag(&r("b"), &m).unwrap();
        let id = store.resolve("a").unwrap().id;
        let unused = |_: &Digest| false;
        // By id with two tags: refused without force.
        assert!(matches!(
            store.remove(id.short(), false, &unused),
            Err(ImageError::MultipleTags { .. })
        ));
        // By tag with two tags: only untags.
        let rm = store.remove("a", false, &unused).unwrap();
        assert_eq!(rm.untagged, vec![r("a")]);
        assert!(rm.deleted.is_empty());
        // In use: refused, and force only untags.
        let used = |d: &Digest| *d == id;
        assert!(matches!(
            store.remove("b", false, &used),
            Err(ImageError::InUse { .. })
        ));
        let rm = store.remove("b", true, &used).unwrap();
        assert_eq!(rm.untagged, vec![r("b")]);
        assert!(rm.deleted.is_empty());
        assert!(store.resolve(id.short()).unwrap().repo_tags.is_empty());
        // Last: delete the image and its manifest blob.
        let rm = store.remove(id.as_str(), false, &unused).unwrap();
        assert_eq!(rm.deleted, vec![id.clone()]);
        assert!(store.list().unwrap().is_empty());
        assert!(!store.content().exists(&m));
        // gc reclaims config and layer.
        let st = store.gc(&|_| false).unwrap();
        assert_eq!(st.blobs_removed, 2);
        assert!(store.content().list().unwrap().is_empty());
    }

    #[test]
    fn build_steps_chain_as_children_and_go_with_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let base_m = put_image(&store, b"base", "sh");
        store.tag(&r("base"), &base_m).unwrap();
        let base = store.resolve("base").unwrap();
        // Two metadata steps over the base's layers, each a child of the one before.
        let step = |parent: &ImageRecord, n: u32| {
            let mut cfg: serde_json::Value =
                serde_json::from_slice(&store.content().read_blob(&parent.id).unwrap()).unwrap();
            cfg["config"]["Env"] = serde_json::json!([format!("STEP={n}")]);
            cfg["config"]["Healthcheck"] = serde_json::json!({"Test": ["NONE"]});
            let (_, id) = store
                .write_image(&cfg, parent.layers.clone(), Some(&parent.id))
                .unwrap();
            store.resolve(id.as_str()).unwrap()
        };
        let s1 = step(&base, 1);
        let s2 = step(&s1, 2);
        assert_eq!(s1.parent.as_ref(), Some(&base.id));
        assert_eq!(s2.parent.as_ref(), Some(&s1.id));
        assert!(store.resolve(s1.id.as_str()).unwrap().has_children && !s2.has_children);
        assert!(store.resolve("base").unwrap().has_children);
        // Docker's own keys survive in the stored config.
        assert_eq!(s2.docker_config["Healthcheck"]["Test"][0], "NONE");
        // The same config again is the same image.
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&store.content().read_blob(&s2.id).unwrap()).unwrap();
        cfg["x"] = serde_json::Value::Null;
        cfg.as_object_mut().unwrap().remove("x");
        let (_, again) = store
            .write_image(&cfg, s2.layers.clone(), Some(&s1.id))
            .unwrap();
        assert_eq!(again, s2.id);
        // An intermediate image with children cannot go on its own.
        assert!(matches!(
            store.remove(s1.id.as_str(), true, &|_| false),
            Err(ImageError::HasChildren { .. })
        ));
        // The last step goes with its untagged parents, up to the tagged base.
        store.tag(&r("built"), &s2.manifest_digest).unwrap();
        let rm = store.remove("built", false, &|_| false).unwrap();
        assert_eq!(rm.untagged, vec![r("built")]);
        assert_eq!(rm.deleted, vec![s2.id.clone(), s1.id.clone()]);
        let left: Vec<Digest> = store.list().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(left, vec![base.id.clone()]);
        assert!(!store.resolve("base").unwrap().has_children);
    }

    #[test]
    fn gc_keeps_referenced_and_protected_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let m = put_image(&store, b"layer-a", "sh");
        store.tag(&r("a"), &m).unwrap();
        let orphan = store.content().put_bytes(b"orphan").unwrap();
        let protected = store.content().put_bytes(b"snapshot layer").unwrap();
        let st = store.gc(&|d| *d == protected).unwrap();
        assert_eq!(st.blobs_removed, 1);
        assert_eq!(st.bytes_freed, 6);
        assert!(!store.content().exists(&orphan));
        assert!(store.content().exists(&protected));
        assert_eq!(store.content().list().unwrap().len(), 4);
        store.resolve("a").unwrap();
    }

    #[test]
    fn concurrent_taggers_do_not_lose_updates() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let m = put_image(&store, b"layer-a", "sh");
        std::thread::scope(|s| {
            for t in 0..4 {
                let store = store.clone();
                let m = &m;
                s.spawn(move || {
                    // A separate open per thread, like separate CLI processes.
                    let store = ImageStore::open(store.root()).unwrap();
                    for i in 0..10 {
                        store.tag(&r(&format!("t{t}:v{i}")), m).unwrap();
                    }
                });
            }
        });
        assert_eq!(store.resolve("t0:v0").unwrap().repo_tags.len(), 40);
    }

    #[test]
    fn history_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let m = put_image(&store, b"layer-a", "sh");
        store.tag(&r("a"), &m).unwrap();
        let h = store.history("a").unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].layer, Some(Digest::of_bytes(b"layer-a")));
        assert_eq!(h[0].id, Some(store.resolve("a").unwrap().id));
    }

    #[test]
    fn corrupt_refs_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        fs::write(dir.path().join(REFS_FILE), b"{not json").unwrap();
        let err = store.list().unwrap_err();
        assert!(err.to_string().contains("refs.json"), "{err}");
    }
}
