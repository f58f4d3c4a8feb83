//! Image formats in and out of the store: `docker save` archives (dockerd ≥25 OCI shape and the
//! legacy dockerd 20.10 shape) for load and save, OCI image layouts (tar or directory), and
//! rootfs tarballs for import. Layers may be tar, tar+gzip or tar+zstd.
//!
//! Loading extracts the archive into a temp dir under the store root (same filesystem, entries
//! with `..` or absolute names refused), verifies every blob and every layer's diff_id against
//! the image config, and only then moves blobs into the store and tags: a refused archive
//! changes nothing.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;

use oci_spec::image::{
    Arch, Config, Descriptor, History, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
    Os, RootFs, ANNOTATION_REF_NAME,
};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::images::{
    parse_config, parse_manifest, rfc3339, ImageError, ImageRecord, ImageStore, DOCKER_MANIFEST,
};
use crate::reference::{Reference, ReferenceError};
use crate::store::{digest_reader, ContentStore, Digest, HashingWriter, StoreError};
use crate::{report, ProgressFn};

/// Annotation containerd and dockerd put the full image name in.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// Media type of a Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const OCI_LAYOUT_VERSION: &str = "1.0.0";
/// JSON documents in an archive larger than this are refused.
const MAX_JSON: u64 = 64 << 20;
const MAX_LINK_HOPS: usize = 40;
const COPY_BUF: usize = 256 * 1024;
const PROGRESS_STEP: u64 = 4 << 20;

/// Errors of loading, saving and importing images.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("refusing archive entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: &'static str },
    #[error("archive has no {0}")]
    Missing(String),
    #[error("invalid {what}: {reason}")]
    Format { what: String, reason: String },
    #[error("layer {layer} does not match the image config: its diff_id is {actual}, the config expects {expected}")]
    DiffIdMismatch {
        layer: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {path} does not match its descriptor: expected {expected} ({expected_size} bytes), got {actual} ({actual_size} bytes)")]
    BlobMismatch {
        path: String,
        expected: Digest,
        expected_size: u64,
        actual: Digest,
        actual_size: u64,
    },
    #[error("image index {index} has no manifest for {platform} (it has: {available})")]
    NoPlatform {
        index: Digest,
        platform: String,
        available: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ArchiveError + 'a {
    move |source| ArchiveError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn format_err(what: impl Into<String>, reason: impl ToString) -> ArchiveError {
    ArchiveError::Format {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// An image that was loaded or imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The image id: the config digest.
    pub id: Digest,
    pub manifest_digest: Digest,
    /// Tags set by the load.
    pub tags: Vec<Reference>,
    /// An OCI `org.opencontainers.image.ref.name` that is not a full reference (e.g. `latest`
    /// written by `skopeo copy ... oci:DIR:latest`): the image is loaded untagged and the caller
    /// may tag it.
    pub ref_name: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Compression

/// Compression of a layer or archive stream, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detect from the first bytes of a stream.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn layer_media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }
}

/// A stream after [`sniff`]: the bytes read to detect the compression, then the rest.
pub type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Read the first bytes of a stream to detect its compression; returns a reader that still
/// yields the whole stream.
pub fn sniff<R: Read>(mut r: R) -> io::Result<(Compression, Sniffed<R>)> {
    let mut head = Vec::with_capacity(4);
    let mut buf = [0u8; 4];
    while head.len() < 4 {
        match r.read(&mut buf[..4 - head.len()]) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok((Compression::detect(&head), io::Cursor::new(head).chain(r)))
}

/// A reader yielding the uncompressed stream, whatever the compression.
pub fn decompress<'a, R: Read + 'a>(r: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let (c, r) = sniff(r)?;
    let out: Box<dyn Read + 'a> = match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
    };
    Ok((c, out))
}

/// The Go architecture name of this host, as image configs and platforms spell it.
pub fn host_arch() -> Arch {
    let go = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Arch::from(go)
}

/// A reader that hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// A reader that counts bytes into a shared cell.
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Copy `r` to `w` with a large buffer, reporting progress every few MB.
fn copy_with_progress(
    r: &mut dyn Read,
    w: &mut dyn Write,
    progress: &mut ProgressFn<'_>,
    action: &'static str,
    item: &str,
    total: Option<u64>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUF];
    let mut done = 0u64;
    let mut next_report = PROGRESS_STEP;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        done += n as u64;
        if done >= next_report {
            report(progress, action, item, done, total);
            next_report = done + PROGRESS_STEP;
        }
    }
    Ok(done)
}

// ---------------------------------------------------------------------------------------------
// Archive sources: an extracted tar or a directory

/// Normalise a path inside an archive: no `..`, not absolute; `.` and empty parts dropped.
fn normalize(name: &str) -> std::result::Result<String, &'static str> {
    if name.starts_with('/') {
        return Err("absolute path");
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("path contains '..'"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Resolve a link target relative to the directory of the link; `None` if it leaves the root.
fn link_target(link: &str, target: &str, relative_to_link: bool) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = if relative_to_link {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    } else {
        Vec::new()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Files of an archive, by normalised path.
struct Source {
    root: PathBuf,
    /// Digest and size of files (hashed during extraction, or on first use for directories).
    files: HashMap<String, (Digest, u64)>,
    /// Symlinks and hard links of an extracted tar: path → target (`None`: leaves the archive).
    links: HashMap<String, Option<String>>,
    /// Whether the files are an extraction of ours that may be moved into the store.
    extracted: bool,
    _tmp: Option<tempfile::TempDir>,
}

impl Source {
    fn dir(root: &Path) -> Source {
        Source {
            root: root.to_path_buf(),
            files: HashMap::new(),
            links: HashMap::new(),
            extracted: false,
            _tmp: None,
        }
    }

    fn has(&self, name: &str) -> bool {
        self.resolve(name).is_ok()
    }

    /// The file an archive path names, after following links inside the archive.
    fn resolve(&self, name: &str) -> Result<String> {
        let unsafe_entry = |reason| ArchiveError::UnsafeEntry {
            entry: name.to_string(),
            reason,
        };
        let mut cur = normalize(name).map_err(unsafe_entry)?;
        if !self.extracted {
            return if self.root.join(&cur).is_file() {
                Ok(cur)
            } else {
                Err(ArchiveError::Missing(name.to_string()))
            };
        }
        for _ in 0..MAX_LINK_HOPS {
            if self.files.contains_key(&cur) {
                return Ok(cur);
            }
            // The longest prefix of `cur` that is a link.
            let parts: Vec<&str> = cur.split('/').collect();
            let mut next = None;
            for i in (1..=parts.len()).rev() {
                let prefix = parts[..i].join("/");
                if let Some(target) = self.links.get(&prefix) {
                    let target = target
                        .as_ref()
                        .ok_or_else(|| unsafe_entry("link points outside the archive"))?;
                    let mut n = target.clone();
                    for rest in &parts[i..] {
                        n.push('/');
                        n.push_str(rest);
                    }
                    next = Some(n);
                    break;
                }
            }
            match next {
                Some(n) => cur = n,
                None => return Err(ArchiveError::Missing(name.to_string())),
            }
        }
        Err(unsafe_entry("too many levels of links"))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn open(&self, rel: &str) -> Result<File> {
        let p = self.path(rel);
        File::open(&p).map_err(io_err("open", &p))
    }

    /// Digest and size of a resolved file.
    fn digest(&mut self, rel: &str) -> Result<(Digest, u64)> {
        if let Some(d) = self.files.get(rel) {
            return Ok(d.clone());
        }
        let p = self.path(rel);
        let d = digest_reader(self.open(rel)?).map_err(io_err("read", &p))?;
        self.files.insert(rel.to_string(), d.clone());
        Ok(d)
    }

    /// Read a small JSON document.
    fn read_json(&self, rel: &str) -> Result<Vec<u8>> {
        let f = self.open(rel)?;
        let mut out = Vec::new();
        f.take(MAX_JSON + 1)
            .read_to_end(&mut out)
            .map_err(io_err("read", &self.path(rel)))?;
        if out.len() as u64 > MAX_JSON {
            return Err(format_err(rel, "document too large"));
        }
        Ok(out)
    }

    /// Read a blob named by a descriptor, checking digest and size.
    fn blob_for(&mut self, desc: &Descriptor) -> Result<(String, Vec<u8>)> {
        let d = Digest::from_oci(desc.digest())?;
        let rel = self.blob_rel(&d, desc.size())?;
        let bytes = self.read_json(&rel)?;
        Ok((rel, bytes))
    }

    /// The path of the blob with this digest and size, verified.
    fn blob_rel(&mut self, d: &Digest, size: u64) -> Result<String> {
        let rel = self.resolve(&format!("blobs/sha256/{}", d.hex()))?;
        let (actual, actual_size) = self.digest(&rel)?;
        if actual != *d || actual_size != size {
            return Err(ArchiveError::BlobMismatch {
                path: rel,
                expected: d.clone(),
                expected_size: size,
                actual,
                actual_size,
            });
        }
        Ok(rel)
    }

    /// Put a verified file into the store: moved if ours, copied and verified otherwise.
    fn ingest(&self, rel: &str, d: &Digest, store: &ContentStore) -> Result<()> {
        if store.exists(d) {
            return Ok(());
        }
        if self.extracted {
            store.adopt_file(&self.path(rel), d)?;
        } else {
            store.put_reader(self.open(rel)?, Some(d))?;
        }
        Ok(())
    }
}

/// Extract a tar (optionally gzip or zstd compressed) into a temp dir under the store root.
fn extract(
    reader: impl Read,
    store: &ContentStore,
    progress: &mut ProgressFn<'_>,
) -> Result<Source> {
    let tmp = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(store.ingest_dir())
        .map_err(io_err("create temp dir in", store.ingest_dir()))?;
    let root = tmp.path().to_path_buf();
    let count = Rc::new(Cell::new(0u64));
    let counting = CountingReader {
        inner: reader,
        count: count.clone(),
    };
    let (_, stream) = decompress(counting).map_err(io_err("read archive", &root))?;
    let mut archive = tar::Archive::new(stream);
    let mut files = HashMap::new();
    let mut links = HashMap::new();
    let entries = archive
        .entries()
        .map_err(|e| format_err("archive", format!("not a tar archive: {e}")))?;
    let mut buf = vec![0u8; COPY_BUF];
    let mut next_report = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| format_err("archive", format!("bad tar entry: {e}")))?;
        let raw = entry.path_bytes();
        let name = std::str::from_utf8(&raw)
            .map_err(|_| ArchiveError::UnsafeEntry {
                entry: String::from_utf8_lossy(&raw).into_owned(),
                reason: "name is not utf-8",
            })?
            .to_string();
        let rel = normalize(&name).map_err(|reason| ArchiveError::UnsafeEntry {
            entry: name.clone(),
            reason,
        })?;
        if rel.is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                let p = root.join(&rel);
                fs::create_dir_all(&p).map_err(io_err("create directory", &p))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                links.remove(&rel);
                let p = root.join(&rel);
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
                }
                let f = File::create(&p).map_err(io_err("create", &p))?;
                let mut w = HashingWriter::new(io::BufWriter::with_capacity(COPY_BUF, f));
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(format_err("archive", format!("{name}: {e}"))),
                    };
                    w.write_all(&buf[..n]).map_err(io_err("write", &p))?;
                    if count.get() >= next_report {
                        report(progress, "reading archive", &name, count.get(), None);
                        next_report = count.get() + PROGRESS_STEP;
                    }
                }
                let (bw, digest, size) = w.finish();
                bw.into_inner()
                    .map_err(|e| io_err("write", &p)(e.into_error()))?;
                files.insert(rel, (digest, size));
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let resolved = link_target(&rel, &target, kind == tar::EntryType::Symlink);
                files.remove(&rel);
                links.insert(rel, resolved);
            }
            // Devices, fifos and the like have no business in an image archive.
            _ => {}
        }
    }
    report(
        progress,
        "reading archive",
        "",
        count.get(),
        Some(count.get()),
    );
    Ok(Source {
        root,
        files,
        links,
        extracted: true,
        _tmp: Some(tmp),
    })
}

// ---------------------------------------------------------------------------------------------
// Load

/// An image checked and ready to be committed to the store.
struct Plan {
    manifest_digest: Digest,
    manifest_bytes: Vec<u8>,
    config_digest: Digest,
    /// Archive path and digest of the config and each layer.
    blobs: Vec<(String, Digest)>,
    tags: Vec<Reference>,
    ref_name: Option<String>,
}

/// A verified layer.
struct CheckedLayer {
    rel: String,
    digest: Digest,
    size: u64,
    compression: Compression,
}

/// Load a `docker save` archive (dockerd ≥25 OCI shape with manifest.json, or the legacy
/// dockerd 20.10 shape) or an OCI image layout tar. Nothing is stored or tagged unless every
/// image in the archive verifies.
pub fn load(
    reader: impl Read,
    store: &ImageStore,
    mut progress: ProgressFn<'_>,
) -> Result<Vec<LoadedImage>> {
    let src = extract(reader, store.content(), &mut progress)?;
    load_source(src, store, &mut progress)
}

/// Load an OCI image layout directory (`skopeo copy ... oci:DIR:tag`, umoci).
pub fn load_oci_layout(
    dir: &Path,
    store: &ImageStore,
    mut progress: ProgressFn<'_>,
) -> Result<Vec<LoadedImage>> {
    let src = Source::dir(dir);
    if !src.has("index.json") {
        return Err(ArchiveError::Missing(
            dir.join("index.json").display().to_string(),
        ));
    }
    load_source(src, store, &mut progress)
}

fn load_source(
    mut src: Source,
    store: &ImageStore,
    progress: &mut ProgressFn<'_>,
) -> Result<Vec<LoadedImage>> {
    let plans = if src.has("manifest.json") {
        plan_docker_archive(&mut src, progress)?
    } else if src.has("index.json") {
        check_oci_layout(&src)?;
        plan_oci_layout(&mut src, progress)?
    } else {
        return Err(format_err(
            "archive",
            "neither manifest.json (docker save) nor index.json (oci layout) found",
        ));
    };
    commit(&src, store, plans, progress)
}

fn check_oci_layout(src: &Source) -> Result<()> {
    if !src.has("oci-layout") {
        return Ok(());
    }
    #[derive(Deserialize)]
    struct Layout {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let rel = src.resolve("oci-layout")?;
    let l: Layout =
        serde_json::from_slice(&src.read_json(&rel)?).map_err(|e| format_err("oci-layout", e))?;
    if !l.version.starts_with("1.") {
        return Err(format_err(
            "oci-layout",
            format!("unsupported imageLayoutVersion {}", l.version),
        ));
    }
    Ok(())
}

/// Check a config and its layers; returns the config and the layers.
fn check_image(
    src: &mut Source,
    config_rel: &str,
    config_desc: Option<&Descriptor>,
    layers: &[(String, Option<&Descriptor>)],
    progress: &mut ProgressFn<'_>,
) -> Result<(Digest, ImageConfiguration, Vec<CheckedLayer>)> {
    let (config_digest, config_size) = src.digest(config_rel)?;
    if let Some(desc) = config_desc {
        let want = Digest::from_oci(desc.digest())?;
        if want != config_digest || desc.size() != config_size {
            return Err(ArchiveError::BlobMismatch {
                path: config_rel.to_string(),
                expected: want,
                expected_size: desc.size(),
                actual: config_digest,
                actual_size: config_size,
            });
        }
    }
    let config = parse_config(&config_digest, &src.read_json(config_rel)?)?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|s| Digest::from_str(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format_err(format!("image config {config_digest}"), e))?;
    if diff_ids.len() != layers.len() {
        return Err(format_err(
            format!("image config {config_digest}"),
            format!(
                "it lists {} diff_ids but the manifest has {} layers",
                diff_ids.len(),
                layers.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(layers.len());
    for ((rel, desc), expected) in layers.iter().zip(diff_ids) {
        let (digest, size) = src.digest(rel)?;
        if let Some(desc) = desc {
            let want = Digest::from_oci(desc.digest())?;
            if want != digest || desc.size() != size {
                return Err(ArchiveError::BlobMismatch {
                    path: rel.clone(),
                    expected: want,
                    expected_size: desc.size(),
                    actual: digest,
                    actual_size: size,
                });
            }
        }
        report(progress, "verifying layer", rel, 0, Some(size));
        let (compression, mut stream) =
            decompress(src.open(rel)?).map_err(io_err("read", &src.path(rel)))?;
        let actual = match compression {
            Compression::None => digest.clone(),
            _ => {
                let mut w = HashingWriter::new(io::sink());
                copy_with_progress(&mut stream, &mut w, progress, "verifying layer", rel, None)
                    .map_err(|e| format_err(format!("layer {rel}"), e))?;
                w.finish().1
            }
        };
        if actual != expected {
            return Err(ArchiveError::DiffIdMismatch {
                layer: rel.clone(),
                expected,
                actual,
            });
        }
        out.push(CheckedLayer {
            rel: rel.clone(),
            digest,
            size,
            compression,
        });
    }
    Ok((config_digest, config, out))
}

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

fn plan_docker_archive(src: &mut Source, progress: &mut ProgressFn<'_>) -> Result<Vec<Plan>> {
    let rel = src.resolve("manifest.json")?;
    let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(&src.read_json(&rel)?)
        .map_err(|e| format_err("manifest.json", e))?;
    if entries.is_empty() {
        return Err(format_err("manifest.json", "no images listed"));
    }
    // dockerd ≥25 also writes the OCI manifests; reuse them so manifest digests survive.
    // An index.json this loader cannot use is ignored: manifest.json is enough.
    let oci: Vec<(Digest, Vec<u8>, ImageManifest)> = if src.has("index.json") {
        oci_manifests(src)
            .unwrap_or_default()
            .into_iter()
            .map(|f| (f.digest, f.bytes, f.manifest))
            .collect()
    } else {
        Vec::new()
    };
    let mut plans: Vec<Plan> = Vec::new();
    for entry in entries {
        let config_rel = src.resolve(&entry.config)?;
        let (config_digest, config_size) = src.digest(&config_rel)?;
        let tags = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        // Prefer the archive's own OCI manifest for this config when all its blobs are there:
        // the manifest digest survives a save/load round trip even when manifest.json points at
        // decompressed copies of the layers.
        let existing = oci.iter().find(|(_, _, m)| {
            m.config().digest().as_ref() == config_digest.as_str()
                && m.layers().iter().all(|d| {
                    Digest::from_oci(d.digest())
                        .map(|d| src.has(&blob_path(&d)))
                        .unwrap_or(false)
                })
        });
        let (manifest_digest, manifest_bytes, checked) = match existing {
            Some((md, bytes, m)) => {
                let layers = m
                    .layers()
                    .iter()
                    .map(|d| {
                        Ok((
                            src.resolve(&blob_path(&Digest::from_oci(d.digest())?))?,
                            Some(d),
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let (_, _, checked) =
                    check_image(src, &config_rel, Some(m.config()), &layers, progress)?;
                (md.clone(), bytes.clone(), checked)
            }
            None => {
                let layers = entry
                    .layers
                    .iter()
                    .map(|l| Ok((src.resolve(l)?, None)))
                    .collect::<Result<Vec<_>>>()?;
                let (_, _, checked) = check_image(src, &config_rel, None, &layers, progress)?;
                let bytes = build_manifest(&config_digest, config_size, &checked)?;
                (Digest::of_bytes(&bytes), bytes, checked)
            }
        };
        let mut blobs = vec![(config_rel, config_digest.clone())];
        blobs.extend(checked.into_iter().map(|c| (c.rel, c.digest)));
        merge_plan(
            &mut plans,
            Plan {
                manifest_digest,
                manifest_bytes,
                config_digest,
                blobs,
                tags,
                ref_name: None,
            },
        );
    }
    Ok(plans)
}

fn merge_plan(plans: &mut Vec<Plan>, plan: Plan) {
    if let Some(p) = plans
        .iter_mut()
        .find(|p| p.manifest_digest == plan.manifest_digest)
    {
        for t in plan.tags {
            if !p.tags.contains(&t) {
                p.tags.push(t);
            }
        }
        if p.ref_name.is_none() {
            p.ref_name = plan.ref_name;
        }
    } else {
        plans.push(plan);
    }
}

/// An OCI manifest for a config and checked layers.
fn build_manifest(config: &Digest, config_size: u64, layers: &[CheckedLayer]) -> Result<Vec<u8>> {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageManifest.to_string(),
        "config": {
            "mediaType": MediaType::ImageConfig.to_string(),
            "digest": config.as_str(),
            "size": config_size,
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": l.compression.layer_media_type().to_string(),
            "digest": l.digest.as_str(),
            "size": l.size,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&manifest).map_err(|e| format_err("manifest", e))
}

/// An image manifest found through index.json.
struct FoundManifest {
    digest: Digest,
    bytes: Vec<u8>,
    manifest: ImageManifest,
    /// The index.json descriptor that led to it (its annotations name the image).
    top: Descriptor,
}

/// Image manifests an OCI layout's index.json names, with the index descriptor that led to each.
/// Multi-platform indexes are resolved to the linux manifest for this host's architecture;
/// other descriptors (attestations, artifacts) are skipped.
fn oci_manifests(src: &mut Source) -> Result<Vec<FoundManifest>> {
    let rel = src.resolve("index.json")?;
    let index: ImageIndex =
        serde_json::from_slice(&src.read_json(&rel)?).map_err(|e| format_err("index.json", e))?;
    let mut out = Vec::new();
    for desc in index.manifests() {
        if let Some((d, bytes, m)) = pick_manifest(src, desc, 0)? {
            out.push(FoundManifest {
                digest: d,
                bytes,
                manifest: m,
                top: desc.clone(),
            });
        }
    }
    Ok(out)
}

fn is_manifest(t: &MediaType) -> bool {
    matches!(t, MediaType::ImageManifest)
        || matches!(t, MediaType::Other(s) if s == DOCKER_MANIFEST)
}

fn is_index(t: &MediaType) -> bool {
    matches!(t, MediaType::ImageIndex)
        || matches!(t, MediaType::Other(s) if s == DOCKER_MANIFEST_LIST)
}

fn pick_manifest(
    src: &mut Source,
    desc: &Descriptor,
    depth: usize,
) -> Result<Option<(Digest, Vec<u8>, ImageManifest)>> {
    let digest = Digest::from_oci(desc.digest())?;
    if is_manifest(desc.media_type()) {
        let (_, bytes) = src.blob_for(desc)?;
        let m = parse_manifest(&digest, &bytes)?;
        return Ok(Some((digest, bytes, m)));
    }
    if !is_index(desc.media_type()) || depth > 4 {
        return Ok(None);
    }
    let (_, bytes) = src.blob_for(desc)?;
    let index: ImageIndex = serde_json::from_slice(&bytes)
        .map_err(|e| format_err(format!("image index {digest}"), e))?;
    let arch = host_arch();
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| is_manifest(d.media_type()) || is_index(d.media_type()))
        .collect();
    let chosen = candidates
        .iter()
        .find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| *p.os() == Os::Linux && *p.architecture() == arch)
        })
        .or_else(|| match candidates.as_slice() {
            [only] if only.platform().is_none() => Some(only),
            _ => None,
        });
    match chosen {
        Some(d) => pick_manifest(src, d, depth + 1),
        None => Err(ArchiveError::NoPlatform {
            index: digest,
            platform: format!("linux/{arch}"),
            available: candidates
                .iter()
                .filter_map(|d| d.platform().as_ref())
                .map(|p| format!("{}/{}", p.os(), p.architecture()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn plan_oci_layout(src: &mut Source, progress: &mut ProgressFn<'_>) -> Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for found in oci_manifests(src)? {
        let FoundManifest {
            digest: manifest_digest,
            bytes: manifest_bytes,
            manifest,
            top,
        } = found;
        let config_desc = manifest.config();
        let config_rel =
            src.blob_rel(&Digest::from_oci(config_desc.digest())?, config_desc.size())?;
        let layers = manifest
            .layers()
            .iter()
            .map(|d| {
                let rel = src.resolve(&format!(
                    "blobs/sha256/{}",
                    Digest::from_oci(d.digest())?.hex()
                ))?;
                Ok((rel, Some(d)))
            })
            .collect::<Result<Vec<_>>>()?;
        let (config_digest, _, checked) =
            check_image(src, &config_rel, Some(config_desc), &layers, progress)?;
        let annotations = top.annotations().clone().unwrap_or_default();
        let mut tags = Vec::new();
        let mut ref_name = None;
        if let Some(name) = annotations.get(ANNOTATION_IMAGE_NAME) {
            tags.push(Reference::parse(name)?);
        } else if let Some(name) = annotations.get(ANNOTATION_REF_NAME) {
            // A full reference is a tag; a bare tag like "latest" names no repository.
            match Reference::parse(name) {
                Ok(r) if name.contains('/') || name.contains(':') => {
                    if r.digest.is_none() {
                        tags.push(r);
                    }
                }
                _ => ref_name = Some(name.clone()),
            }
        }
        let mut blobs = vec![(config_rel, config_digest.clone())];
        blobs.extend(checked.into_iter().map(|c| (c.rel, c.digest)));
        merge_plan(
            &mut plans,
            Plan {
                manifest_digest,
                manifest_bytes,
                config_digest,
                blobs,
                tags,
                ref_name,
            },
        );
    }
    if plans.is_empty() {
        return Err(format_err("index.json", "it lists no image manifest"));
    }
    Ok(plans)
}

/// Move the verified blobs into the store and tag, under a lease so gc leaves them alone.
fn commit(
    src: &Source,
    store: &ImageStore,
    plans: Vec<Plan>,
    progress: &mut ProgressFn<'_>,
) -> Result<Vec<LoadedImage>> {
    let _lease = store.lease()?;
    let content = store.content();
    let mut out = Vec::new();
    for plan in plans {
        for (rel, d) in &plan.blobs {
            report(progress, "storing", d.as_str(), 0, None);
            src.ingest(rel, d, content)?;
        }
        let stored = content.put_bytes(&plan.manifest_bytes)?;
        debug_assert_eq!(stored, plan.manifest_digest);
        if plan.tags.is_empty() {
            store.register(&stored)?;
        }
        for t in &plan.tags {
            store.tag(t, &stored)?;
        }
        out.push(LoadedImage {
            id: plan.config_digest,
            manifest_digest: stored,
            tags: plan.tags,
            ref_name: plan.ref_name,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Save

/// An image to save and the tags to save it under.
struct Selected {
    rec: ImageRecord,
    tags: Vec<Reference>,
}

/// Resolve names like `docker save`: a tag saves that tag, an id or digest saves the image
/// untagged.
fn select(names: &[&str], store: &ImageStore) -> Result<Vec<Selected>> {
    let mut out: Vec<Selected> = Vec::new();
    for name in names {
        let rec = store.resolve(name)?;
        let tag = Reference::parse(name)
            .ok()
            .filter(|r| r.digest.is_none() && rec.repo_tags.contains(r));
        match out
            .iter_mut()
            .find(|s| s.rec.manifest_digest == rec.manifest_digest)
        {
            Some(s) => {
                if let Some(t) = tag {
                    if !s.tags.contains(&t) {
                        s.tags.push(t);
                    }
                }
            }
            None => out.push(Selected {
                rec,
                tags: tag.into_iter().collect(),
            }),
        }
    }
    Ok(out)
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Writes tar entries with fixed ownership and times, each path once.
struct TarOut<W: Write> {
    b: tar::Builder<W>,
    written: HashSet<String>,
}

impl<W: Write> TarOut<W> {
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h
    }

    fn err(path: &str) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
        move |source| ArchiveError::Io {
            op: "write archive entry",
            path: PathBuf::from(path),
            source,
        }
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        if self.written.insert(path.to_string()) {
            let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
            self.b
                .append_data(&mut h, path, io::empty())
                .map_err(Self::err(path))?;
        }
        Ok(())
    }

    fn bytes(&mut self, path: &str, data: &[u8]) -> Result<()> {
        if self.written.insert(path.to_string()) {
            let mut h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64);
            self.b
                .append_data(&mut h, path, data)
                .map_err(Self::err(path))?;
        }
        Ok(())
    }

    fn file(&mut self, path: &str, size: u64, r: impl Read) -> Result<()> {
        if self.written.insert(path.to_string()) {
            let mut h = Self::header(tar::EntryType::Regular, 0o644, size);
            self.b
                .append_data(&mut h, path, r)
                .map_err(Self::err(path))?;
        }
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        if self.written.insert(path.to_string()) {
            let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
            self.b
                .append_link(&mut h, path, target)
                .map_err(Self::err(path))?;
        }
        Ok(())
    }

    /// A stored blob, verified while it is copied.
    fn blob(&mut self, store: &ContentStore, d: &Digest) -> Result<()> {
        let path = blob_path(d);
        if self.written.contains(&path) {
            return Ok(());
        }
        let r = store.open_blob(d)?;
        let size = r.size();
        self.file(&path, size, r)
    }
}

/// Save images as a docker-archive tar that every `docker load` (dockerd 20.10 reads
/// manifest.json, dockerd ≥25 and skopeo also the OCI layout) accepts:
/// `oci-layout`, `index.json`, `blobs/sha256/…` (manifests, configs, layers as stored),
/// `manifest.json` whose paths point into `blobs/` with uncompressed layers (compressed layers
/// are also written decompressed, named by their diff_id), `repositories`, and legacy
/// `<v1 id>/{VERSION,json,layer.tar}` entries (layer.tar a symlink into `blobs/`).
pub fn save(
    names: &[&str],
    store: &ImageStore,
    writer: impl Write,
    mut progress: ProgressFn<'_>,
) -> Result<()> {
    let selected = select(names, store)?;
    let content = store.content();
    let mut out = TarOut {
        b: tar::Builder::new(writer),
        written: HashSet::new(),
    };
    out.bytes(
        "oci-layout",
        json!({ "imageLayoutVersion": OCI_LAYOUT_VERSION })
            .to_string()
            .as_bytes(),
    )?;
    out.dir("blobs/")?;
    out.dir("blobs/sha256/")?;

    let mut index_manifests = Vec::new();
    let mut docker_manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut legacy: Vec<(String, Option<String>, String)> = Vec::new();
    for sel in &selected {
        let rec = &sel.rec;
        out.blob(content, &rec.id)?;
        let mut uncompressed = Vec::with_capacity(rec.layers.len());
        for (desc, diff_id) in rec.layers.iter().zip(&rec.diff_ids) {
            let d = Digest::from_oci(desc.digest())?;
            report(
                &mut progress,
                "writing layer",
                d.as_str(),
                0,
                Some(desc.size()),
            );
            out.blob(content, &d)?;
            let (compression, _) =
                sniff(content.open_blob(&d)?).map_err(io_err("read blob", &content.path(&d)))?;
            if compression == Compression::None {
                if d != *diff_id {
                    return Err(format_err(
                        format!("image {}", rec.id),
                        format!("uncompressed layer {d} differs from its diff_id {diff_id}"),
                    ));
                }
            } else if !out.written.contains(&blob_path(diff_id)) {
                let tmp = decompress_to_temp(content, &d, diff_id, &mut progress)?;
                let size = tmp
                    .as_file()
                    .metadata()
                    .map_err(io_err("stat", tmp.path()))?
                    .len();
                let f = tmp.reopen().map_err(io_err("open", tmp.path()))?;
                out.file(&blob_path(diff_id), size, f)?;
            }
            uncompressed.push(diff_id.clone());
        }
        let manifest_bytes = content.read_blob(&rec.manifest_digest)?;
        out.bytes(&blob_path(&rec.manifest_digest), &manifest_bytes)?;

        // Legacy v1 layer directories, named by chain id.
        let mut parent: Option<String> = None;
        for (chain, diff) in crate::images::chain_ids(&uncompressed)
            .iter()
            .zip(&uncompressed)
        {
            let id = chain.hex().to_string();
            legacy.push((id.clone(), parent.clone(), blob_path(diff)));
            parent = Some(id);
        }
        let top = parent;

        let media_type = rec
            .manifest
            .media_type()
            .clone()
            .unwrap_or(MediaType::ImageManifest)
            .to_string();
        if sel.tags.is_empty() {
            index_manifests.push(json!({
                "mediaType": media_type,
                "digest": rec.manifest_digest.as_str(),
                "size": manifest_bytes.len(),
            }));
        }
        for t in &sel.tags {
            index_manifests.push(json!({
                "mediaType": media_type,
                "digest": rec.manifest_digest.as_str(),
                "size": manifest_bytes.len(),
                "annotations": {
                    ANNOTATION_IMAGE_NAME: t.to_string(),
                    ANNOTATION_REF_NAME: t.tag_or_default(),
                },
            }));
            if let Some(top) = &top {
                repositories
                    .entry(t.familiar_repository())
                    .or_default()
                    .insert(t.tag_or_default().to_string(), top.clone());
            }
        }
        let repo_tags: Option<Vec<String>> = if sel.tags.is_empty() {
            None
        } else {
            Some(sel.tags.iter().map(|t| t.familiar()).collect())
        };
        docker_manifest.push(json!({
            "Config": blob_path(&rec.id),
            "RepoTags": repo_tags,
            "Layers": uncompressed.iter().map(blob_path).collect::<Vec<_>>(),
        }));
    }

    for (id, parent, layer) in &legacy {
        out.dir(&format!("{id}/"))?;
        out.bytes(&format!("{id}/VERSION"), b"1.0")?;
        let mut v1 = json!({
            "id": id,
            "created": "1970-01-01T00:00:00Z",
            "os": "linux",
        });
        if let Some(p) = parent {
            v1["parent"] = json!(p);
        }
        out.bytes(&format!("{id}/json"), v1.to_string().as_bytes())?;
        out.symlink(&format!("{id}/layer.tar"), &format!("../{layer}"))?;
    }

    let index = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageIndex.to_string(),
        "manifests": index_manifests,
    });
    out.bytes("index.json", index.to_string().as_bytes())?;
    out.bytes(
        "manifest.json",
        serde_json::Value::Array(docker_manifest)
            .to_string()
            .as_bytes(),
    )?;
    if !repositories.is_empty() {
        let repos = serde_json::to_vec(&repositories).map_err(|e| format_err("repositories", e))?;
        out.bytes("repositories", &repos)?;
    }
    let mut w = out
        .b
        .into_inner()
        .map_err(TarOut::<io::Sink>::err("archive end"))?;
    w.flush().map_err(TarOut::<io::Sink>::err("archive end"))?;
    report(&mut progress, "saved", "", 1, Some(1));
    Ok(())
}

/// Decompress a stored layer into a temp file, checking it against its diff_id.
fn decompress_to_temp(
    content: &ContentStore,
    blob: &Digest,
    diff_id: &Digest,
    progress: &mut ProgressFn<'_>,
) -> Result<tempfile::NamedTempFile> {
    let tmp = content.temp_file()?;
    let f = tmp.reopen().map_err(io_err("open", tmp.path()))?;
    let mut w = HashingWriter::new(io::BufWriter::with_capacity(COPY_BUF, f));
    let mut r = content.open_blob(blob)?;
    {
        let (_, mut stream) =
            decompress(&mut r).map_err(io_err("read blob", &content.path(blob)))?;
        copy_with_progress(
            &mut stream,
            &mut w,
            progress,
            "decompressing layer",
            blob.as_str(),
            None,
        )
        .map_err(io_err("decompress layer", &content.path(blob)))?;
    }
    r.finish()?;
    let (bw, actual, _) = w.finish();
    let mut f = bw
        .into_inner()
        .map_err(|e| io_err("write", tmp.path())(e.into_error()))?;
    f.rewind().map_err(io_err("rewind", tmp.path()))?;
    if actual != *diff_id {
        return Err(ArchiveError::DiffIdMismatch {
            layer: blob.to_string(),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(tmp)
}

/// Docker schema2 media types and their OCI equivalents.
fn oci_media_type(t: &MediaType) -> MediaType {
    match t.as_ref() {
        DOCKER_MANIFEST => MediaType::ImageManifest,
        DOCKER_CONFIG => MediaType::ImageConfig,
        "application/vnd.docker.image.rootfs.diff.tar" => MediaType::ImageLayer,
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => MediaType::ImageLayerGzip,
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => MediaType::ImageLayerZstd,
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            MediaType::ImageLayerNonDistributableGzip
        }
        "application/vnd.docker.image.rootfs.foreign.diff.tar" => {
            MediaType::ImageLayerNonDistributable
        }
        _ => t.clone(),
    }
}

/// Save images into an OCI image layout directory (created if needed; an existing layout is
/// added to, replacing entries with the same `org.opencontainers.image.ref.name`). Docker
/// schema2 manifests are converted to OCI ones so OCI-only tools (umoci) accept them.
pub fn save_oci_layout(
    names: &[&str],
    store: &ImageStore,
    dir: &Path,
    mut progress: ProgressFn<'_>,
) -> Result<()> {
    let selected = select(names, store)?;
    let content = store.content();
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err("create directory", &blobs))?;
    let layout = dir.join("oci-layout");
    if !layout.exists() {
        write_atomic(
            dir,
            &layout,
            json!({ "imageLayoutVersion": OCI_LAYOUT_VERSION })
                .to_string()
                .as_bytes(),
        )?;
    }
    let index_path = dir.join("index.json");
    let mut manifests: Vec<Descriptor> = if index_path.exists() {
        let bytes = fs::read(&index_path).map_err(io_err("read", &index_path))?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| format_err(index_path.display().to_string(), e))?;
        index.manifests().clone()
    } else {
        Vec::new()
    };

    for sel in &selected {
        let rec = &sel.rec;
        copy_blob_to_dir(content, &rec.id, &blobs)?;
        for desc in &rec.layers {
            let d = Digest::from_oci(desc.digest())?;
            report(
                &mut progress,
                "writing layer",
                d.as_str(),
                0,
                Some(desc.size()),
            );
            copy_blob_to_dir(content, &d, &blobs)?;
        }
        let stored = content.read_blob(&rec.manifest_digest)?;
        let docker =
            matches!(rec.manifest.media_type(), Some(MediaType::Other(t)) if t == DOCKER_MANIFEST);
        let bytes = if docker {
            let mut m = rec.manifest.clone();
            m.set_media_type(Some(MediaType::ImageManifest));
            let mut config = m.config().clone();
            config.set_media_type(oci_media_type(config.media_type()));
            m.set_config(config);
            for l in m.layers_mut() {
                let t = oci_media_type(l.media_type());
                l.set_media_type(t);
            }
            serde_json::to_vec(&m).map_err(|e| format_err("manifest", e))?
        } else {
            stored
        };
        let manifest_digest = Digest::of_bytes(&bytes);
        let path = blobs.join(manifest_digest.hex());
        if !path.exists() {
            write_atomic(&blobs, &path, &bytes)?;
        }
        let base = Descriptor::new(
            MediaType::ImageManifest,
            bytes.len() as u64,
            manifest_digest.to_oci(),
        );
        if sel.tags.is_empty() {
            manifests.retain(|d| !(d.digest() == base.digest() && d.annotations().is_none()));
            manifests.push(base.clone());
        }
        for t in &sel.tags {
            let ref_name = t.tag_or_default().to_string();
            manifests.retain(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_REF_NAME))
                    != Some(&ref_name)
            });
            let mut d = base.clone();
            d.set_annotations(Some(
                [
                    (ANNOTATION_REF_NAME.to_string(), ref_name),
                    (ANNOTATION_IMAGE_NAME.to_string(), t.to_string()),
                ]
                .into_iter()
                .collect(),
            ));
            manifests.push(d);
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageIndex.to_string(),
        "manifests": manifests,
    });
    write_atomic(dir, &index_path, index.to_string().as_bytes())?;
    report(
        &mut progress,
        "saved",
        &dir.display().to_string(),
        1,
        Some(1),
    );
    Ok(())
}

/// Write a file through a temp file in `dir` and a rename.
fn write_atomic(dir: &Path, path: &Path, data: &[u8]) -> Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err("create temp file in", dir))?;
    tmp.write_all(data)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io_err("write", path))?;
    tmp.persist(path).map_err(|e| ArchiveError::Io {
        op: "rename into place",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Copy a stored blob into a layout's `blobs/sha256`, verified, unless present.
fn copy_blob_to_dir(content: &ContentStore, d: &Digest, blobs: &Path) -> Result<()> {
    let dest = blobs.join(d.hex());
    if dest.exists() {
        return Ok(());
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(blobs)
        .map_err(io_err("create temp file in", blobs))?;
    let mut r = content.open_blob(d)?;
    match io::copy(&mut r, &mut tmp) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(r
                .finish()
                .err()
                .map_or_else(|| io_err("copy blob to", &dest)(e), ArchiveError::Store))
        }
        Err(e) => return Err(io_err("copy blob to", &dest)(e)),
    }
    tmp.as_file().sync_all().map_err(io_err("sync", &dest))?;
    tmp.persist(&dest).map_err(|e| ArchiveError::Io {
        op: "rename into place",
        path: dest.clone(),
        source: e.error,
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Import

/// What `docker import --change` / `--message` can set on an imported image's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportChanges {
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=value` entries.
    pub env: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `80/tcp` style entries.
    pub exposed_ports: Option<Vec<String>>,
    pub volumes: Option<Vec<String>>,
    pub labels: Option<HashMap<String, String>>,
    pub stop_signal: Option<String>,
    /// History comment (`--message`).
    pub message: Option<String>,
}

impl ImportChanges {
    /// Parse `--change` instructions, applied in order.
    pub fn parse<S: AsRef<str>>(changes: &[S]) -> Result<ImportChanges> {
        let mut c = ImportChanges::default();
        for change in changes {
            c.apply(change.as_ref())?;
        }
        Ok(c)
    }

    /// Apply one Dockerfile-style instruction: CMD, ENTRYPOINT (JSON or shell form), ENV,
    /// EXPOSE, USER, VOLUME, WORKDIR, LABEL, STOPSIGNAL.
    pub fn apply(&mut self, change: &str) -> Result<()> {
        let bad = |reason: &str| format_err(format!("change {change:?}"), reason);
        let trimmed = change.trim();
        let (instr, rest) = trimmed
            .split_once(char::is_whitespace)
            .map(|(i, r)| (i, r.trim()))
            .unwrap_or((trimmed, ""));
        if rest.is_empty() {
            return Err(bad("missing arguments"));
        }
        let json_or_shell = |rest: &str| -> Result<Vec<String>> {
            if rest.starts_with('[') {
                serde_json::from_str(rest).map_err(|e| bad(&e.to_string()))
            } else {
                Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
            }
        };
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => self.cmd = Some(json_or_shell(rest)?),
            "ENTRYPOINT" => self.entrypoint = Some(json_or_shell(rest)?),
            "USER" => self.user = Some(rest.to_string()),
            "WORKDIR" => self.working_dir = Some(rest.to_string()),
            "STOPSIGNAL" => self.stop_signal = Some(rest.to_string()),
            "ENV" => {
                let env = self.env.get_or_insert_with(Vec::new);
                for (k, v) in key_values(rest).map_err(bad)? {
                    env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                    env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                let pairs = key_values(rest).map_err(bad)?;
                self.labels.get_or_insert_with(HashMap::new).extend(pairs);
            }
            "EXPOSE" => {
                let ports = self.exposed_ports.get_or_insert_with(Vec::new);
                for p in words(rest).map_err(bad)? {
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    if !ports.contains(&p) {
                        ports.push(p);
                    }
                }
            }
            "VOLUME" => {
                let vols = if rest.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(rest).map_err(|e| bad(&e.to_string()))?
                } else {
                    words(rest).map_err(bad)?
                };
                let all = self.volumes.get_or_insert_with(Vec::new);
                for v in vols {
                    if !all.contains(&v) {
                        all.push(v);
                    }
                }
            }
            _ => return Err(bad("unsupported instruction")),
        }
        Ok(())
    }

    /// The image config part, `None` when nothing is set.
    fn to_config(&self) -> Option<Config> {
        let mut c = Config::default();
        c.set_cmd(self.cmd.clone());
        c.set_entrypoint(self.entrypoint.clone());
        c.set_env(self.env.clone());
        c.set_working_dir(self.working_dir.clone());
        c.set_user(self.user.clone());
        c.set_exposed_ports(self.exposed_ports.clone());
        c.set_volumes(self.volumes.clone());
        c.set_labels(self.labels.clone());
        c.set_stop_signal(self.stop_signal.clone());
        (c != Config::default()).then_some(c)
    }
}

/// Split on whitespace, honouring double and single quotes and backslash escapes.
fn words(s: &str) -> std::result::Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote");
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `k=v k2="v 2"`, or the legacy `k v w` (one pair, value is the rest).
fn key_values(s: &str) -> std::result::Result<Vec<(String, String)>, &'static str> {
    let first = s.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = s
            .split_once(char::is_whitespace)
            .ok_or("expected key=value")?;
        let v = words(v)?.join(" ");
        return Ok(vec![(k.to_string(), v)]);
    }
    words(s)?
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or("expected key=value")
        })
        .collect()
}

/// What `import` produced.
pub type Imported = LoadedImage;

/// Import a rootfs tarball (plain, gzip or zstd) as a one-layer image like `docker import`:
/// linux on this host's architecture, no Cmd unless `changes` sets one. The layer is stored
/// as given; it must be a valid tar. Tagged with `reference` if given, else untagged.
pub fn import(
    reader: impl Read,
    store: &ImageStore,
    reference: Option<&Reference>,
    changes: &ImportChanges,
) -> Result<Imported> {
    import_with_progress(reader, store, reference, changes, None)
}

/// [`import`] with a progress callback (bytes read from `reader`).
pub fn import_with_progress(
    reader: impl Read,
    store: &ImageStore,
    reference: Option<&Reference>,
    changes: &ImportChanges,
    mut progress: ProgressFn<'_>,
) -> Result<Imported> {
    let content = store.content();
    let _lease = store.lease()?;

    // Stream into a temp file, hashing.
    let tmp = content.temp_file()?;
    let f = tmp.reopen().map_err(io_err("open", tmp.path()))?;
    let mut w = HashingWriter::new(io::BufWriter::with_capacity(COPY_BUF, f));
    let mut r = reader;
    copy_with_progress(&mut r, &mut w, &mut progress, "importing", "rootfs", None)
        .map_err(io_err("import into", tmp.path()))?;
    let (bw, blob, size) = w.finish();
    bw.into_inner()
        .map_err(|e| io_err("write", tmp.path())(e.into_error()))?;

    // Check it is a tar and compute the diff_id from the uncompressed stream.
    let f = tmp.reopen().map_err(io_err("open", tmp.path()))?;
    let (compression, stream) = decompress(f).map_err(io_err("read", tmp.path()))?;
    let mut hr = HashingReader {
        inner: stream,
        hasher: Sha256::new(),
        read: 0,
    };
    {
        let mut ar = tar::Archive::new(&mut hr);
        let entries = ar
            .entries()
            .map_err(|e| format_err("rootfs tarball", format!("not a tar archive: {e}")))?;
        for e in entries {
            e.map_err(|e| format_err("rootfs tarball", format!("not a tar archive: {e}")))?;
        }
    }
    io::copy(&mut hr, &mut io::sink()).map_err(|e| format_err("rootfs tarball", e))?;
    if hr.read == 0 {
        return Err(format_err("rootfs tarball", "it is empty"));
    }
    let diff_id = Digest::from_hasher(hr.hasher);
    content.commit(tmp, &blob)?;

    // Nanoseconds, as dockerd writes them: two imports of one tarball in the same second
    // are two images, not one.
    let now = {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = rfc3339(d.as_secs());
        format!("{}.{:09}Z", secs.trim_end_matches('Z'), d.subsec_nanos())
    };
    let mut history = History::default();
    history.set_created(Some(now.clone()));
    history.set_created_by(Some("berth image import".to_string()));
    history.set_comment(changes.message.clone());
    let mut rootfs = RootFs::default();
    rootfs.set_diff_ids(vec![diff_id.to_string()]);
    let mut image = ImageConfiguration::default();
    image.set_created(Some(now));
    image.set_architecture(host_arch());
    image.set_os(Os::Linux);
    image.set_config(changes.to_config());
    image.set_rootfs(rootfs);
    image.set_history(Some(vec![history]));
    let config_bytes = serde_json::to_vec(&image).map_err(|e| format_err("image config", e))?;
    let config_digest = content.put_bytes(&config_bytes)?;
    let layer = CheckedLayer {
        rel: String::new(),
        digest: blob,
        size,
        compression,
    };
    let manifest_bytes = build_manifest(&config_digest, config_bytes.len() as u64, &[layer])?;
    let manifest_digest = content.put_bytes(&manifest_bytes)?;
    let tags = match reference {
        Some(r) => {
            store.tag(r, &manifest_digest)?;
            vec![r.with_tag(r.tag_or_default())?]
        }
        None => {
            store.register(&manifest_digest)?;
            Vec::new()
        }
    };
    report(
        &mut progress,
        "imported",
        manifest_digest.as_str(),
        size,
        Some(size),
    );
    Ok(LoadedImage {
        id: config_digest,
        manifest_digest,
        tags,
        ref_name: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(data, 1).unwrap()
    }

    fn config_json(diff_ids: &[Digest], arch: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "container_config": {"Hostname": "x"},
            "docker_version": "20.10.24",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": diff_ids.iter().map(|_| json!({"created_by": "ADD"})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    /// An archive written entry by entry; names are written raw (even hostile ones).
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Tar {
            Tar(tar::Builder::new(Vec::new()))
        }
        fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }
        fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            self.0.append_link(&mut h, name, target).unwrap();
            self
        }
        fn finish(&mut self) -> Vec<u8> {
            let b = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
            b.into_inner().unwrap()
        }
    }

    /// A legacy (dockerd 20.10) archive of one image with the given layer blobs.
    fn legacy_archive(layers: &[Vec<u8>], diff_ids: &[Digest], tags: &[&str]) -> Vec<u8> {
        let config = config_json(diff_ids, "amd64");
        let config_d = Digest::of_bytes(&config);
        let mut t = Tar::new();
        let mut paths = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let id = Digest::of_bytes(format!("v1-{i}").as_bytes());
            t.file(&format!("{}/VERSION", id.hex()), b"1.0");
            t.file(&format!("{}/json", id.hex()), b"{}");
            t.file(&format!("{}/layer.tar", id.hex()), l);
            paths.push(format!("{}/layer.tar", id.hex()));
        }
        t.file(&format!("{}.json", config_d.hex()), &config);
        let manifest = json!([{"Config": format!("{}.json", config_d.hex()), "RepoTags": tags, "Layers": paths}]);
        t.file("manifest.json", manifest.to_string().as_bytes());
        t.file("repositories", b"{}");
        t.finish()
    }

    fn store() -> (tempfile::TempDir, ImageStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        (dir, s)
    }

    fn tar_names(data: &[u8]) -> HashMap<String, (tar::EntryType, Vec<u8>, String)> {
        let mut a = tar::Archive::new(Cursor::new(data));
        let mut out = HashMap::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(name, (kind, data, link));
        }
        out
    }

    #[test]
    fn compression_detection() {
        let t = layer_tar(&[("a", b"x")]);
        assert_eq!(Compression::detect(&t), Compression::None);
        assert_eq!(Compression::detect(&gzip(&t)), Compression::Gzip);
        assert_eq!(Compression::detect(&zstd(&t)), Compression::Zstd);
        for data in [t.clone(), gzip(&t), zstd(&t)] {
            let (_, mut r) = decompress(Cursor::new(data)).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, t);
        }
        // Short streams are fine.
        let (c, mut r) = sniff(Cursor::new(vec![1u8])).unwrap();
        assert_eq!(c, Compression::None);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, [1]);
    }

    #[test]
    fn load_legacy_archive_with_plain_gzip_and_zstd_layers() {
        let (_d, s) = store();
        let l1 = layer_tar(&[("bin/sh", b"shell")]);
        let l2 = layer_tar(&[("etc/hosts", b"127.0.0.1")]);
        let l3 = layer_tar(&[("etc/motd", b"hello")]);
        let diff_ids = [&l1, &l2, &l3].map(|l| Digest::of_bytes(l));
        let blobs = vec![l1.clone(), gzip(&l2), zstd(&l3)];
        let archive = legacy_archive(&blobs, &diff_ids, &["busybox:latest", "me/app:1"]);
        let mut events = 0;
        let mut cb = |_: crate::Progress| events += 1;
        let loaded = load(Cursor::new(archive), &s, Some(&mut cb)).unwrap();
        assert!(events > 0);
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].tags, vec![r("busybox"), r("me/app:1")]);
        let rec = s.resolve("busybox").unwrap();
        assert_eq!(rec.id, loaded[0].id);
        assert_eq!(rec.diff_ids, diff_ids);
        let types: Vec<MediaType> = rec.layers.iter().map(|l| l.media_type().clone()).collect();
        assert_eq!(
            types,
            vec![
                MediaType::ImageLayer,
                MediaType::ImageLayerGzip,
                MediaType::ImageLayerZstd
            ]
        );
        assert_eq!(rec.manifest.media_type(), &Some(MediaType::ImageManifest));
        assert_eq!(rec.manifest.config().media_type(), &MediaType::ImageConfig);
        // Layer blobs are stored as-is.
        for (desc, blob) in rec.layers.iter().zip(&blobs) {
            let d = Digest::from_oci(desc.digest()).unwrap();
            assert_eq!(s.content().read_blob(&d).unwrap(), *blob);
            assert_eq!(desc.size(), blob.len() as u64);
        }
        // The temp extraction is gone.
        assert_eq!(fs::read_dir(s.content().ingest_dir()).unwrap().count(), 0);
        // Loading again is idempotent.
        let again = load(
            Cursor::new(legacy_archive(&blobs, &diff_ids, &["busybox:latest"])),
            &s,
            None,
        )
        .unwrap();
        assert_eq!(again[0].manifest_digest, loaded[0].manifest_digest);
        assert_eq!(s.list().unwrap().len(), 1);
    }

    #[test]
    fn wrong_diff_id_is_refused_and_changes_nothing() {
        let (_d, s) = store();
        let l1 = layer_tar(&[("a", b"1")]);
        let l2 = layer_tar(&[("b", b"2")]);
        let wrong = Digest::of_bytes(b"not the layer");
        let archive = legacy_archive(
            &[l1.clone(), gzip(&l2)],
            &[Digest::of_bytes(&l1), wrong.clone()],
            &["bad:1"],
        );
        let err = load(Cursor::new(archive), &s, None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ArchiveError::DiffIdMismatch { .. }), "{msg}");
        assert!(msg.contains("layer.tar"), "{msg}");
        assert!(msg.contains(wrong.as_str()), "{msg}");
        assert!(msg.contains(Digest::of_bytes(&l2).as_str()), "{msg}");
        assert!(s.list().unwrap().is_empty());
        assert!(matches!(s.resolve("bad:1"), Err(ImageError::NotFound(_))));
        assert!(s.content().list().unwrap().is_empty());
        assert_eq!(fs::read_dir(s.content().ingest_dir()).unwrap().count(), 0);
        // Orphaned blobs (as a crashed load would leave) are removed by gc.
        s.content().put_bytes(&l1).unwrap();
        let st = s.gc(&|_| false).unwrap();
        assert_eq!(st.blobs_removed, 1);
        assert!(s.content().list().unwrap().is_empty());
    }

    #[test]
    fn unsafe_entries_are_refused() {
        for name in ["../evil", "/etc/evil", "a/../../evil"] {
            let (_d, s) = store();
            let archive = Tar::new().file(name, b"x").finish();
            let err = load(Cursor::new(archive), &s, None).unwrap_err();
            assert!(
                matches!(&err, ArchiveError::UnsafeEntry { entry, .. } if entry == name),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(name));
            assert!(s.content().list().unwrap().is_empty());
        }
        // A symlink leaving the archive, used by manifest.json.
        let (_d, s) = store();
        let archive = Tar::new()
            .symlink("x/layer.tar", "../../../etc/passwd")
            .file(
                "manifest.json",
                br#"[{"Config":"c.json","RepoTags":[],"Layers":["x/layer.tar"]}]"#,
            )
            .file("c.json", &config_json(&[Digest::of_bytes(b"")], "amd64"))
            .finish();
        let err = load(Cursor::new(archive), &s, None).unwrap_err();
        assert!(matches!(err, ArchiveError::UnsafeEntry { .. }), "{err}");
    }

    #[test]
    fn not_an_archive() {
        let (_d, s) = store();
        assert!(load(Cursor::new(b"hello".to_vec()), &s, None).is_err());
        let empty = Tar::new().file("x", b"y").finish();
        let err = load(Cursor::new(empty), &s, None).unwrap_err();
        assert!(err.to_string().contains("manifest.json"), "{err}");
    }

    /// A dockerd ≥25 shaped archive: OCI layout plus manifest.json into blobs/.
    fn dockerd25_archive(
        layer_blobs: &[Vec<u8>],
        diff_ids: &[Digest],
        manifest_type: &str,
    ) -> (Vec<u8>, Digest) {
        let config = config_json(diff_ids, "amd64");
        let config_d = Digest::of_bytes(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_d, "size": config.len()},
            "layers": layer_blobs.iter().map(|l| json!({
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": Digest::of_bytes(l), "size": l.len()})).collect::<Vec<_>>(),
        })
        .to_string();
        let manifest_d = Digest::of_bytes(manifest.as_bytes());
        let mut t = Tar::new();
        t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        t.file(&blob_path(&config_d), &config);
        t.file(&blob_path(&manifest_d), manifest.as_bytes());
        for l in layer_blobs {
            t.file(&blob_path(&Digest::of_bytes(l)), l);
        }
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": manifest_type, "digest": manifest_d, "size": manifest.len(),
              "annotations": {"io.containerd.image.name": "docker.io/library/web:2", "org.opencontainers.image.ref.name": "2"}}]});
        t.file("index.json", index.to_string().as_bytes());
        let mj = json!([{"Config": blob_path(&config_d), "RepoTags": ["web:2"],
            "Layers": layer_blobs.iter().map(|l| blob_path(&Digest::of_bytes(l))).collect::<Vec<_>>()}]);
        t.file("manifest.json", mj.to_string().as_bytes());
        (t.finish(), manifest_d)
    }

    #[test]
    fn load_dockerd25_archive_keeps_its_manifest() {
        let (_d, s) = store();
        let l1 = layer_tar(&[("a", b"1")]);
        let blobs = vec![gzip(&l1)];
        let (archive, manifest_d) =
            dockerd25_archive(&blobs, &[Digest::of_bytes(&l1)], DOCKER_MANIFEST);
        let loaded = load(Cursor::new(archive), &s, None).unwrap();
        assert_eq!(loaded[0].manifest_digest, manifest_d);
        assert_eq!(loaded[0].tags, vec![r("web:2")]);
        let rec = s.resolve("web:2").unwrap();
        assert_eq!(
            rec.manifest.media_type(),
            &Some(MediaType::Other(DOCKER_MANIFEST.into()))
        );
    }

    #[test]
    fn load_oci_layout_tar_with_multi_platform_index() {
        let (_d, s) = store();
        let mut t = Tar::new();
        t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        let mut descs = Vec::new();
        let mut want = None;
        for arch in ["arm64", host_arch().to_string().as_str(), "s390x"] {
            let layer = gzip(&layer_tar(&[("arch", arch.as_bytes())]));
            let diff = Digest::of_bytes(&layer_tar(&[("arch", arch.as_bytes())]));
            let config = config_json(&[diff], arch);
            let config_d = Digest::of_bytes(&config);
            let layer_d = Digest::of_bytes(&layer);
            let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_d, "size": layer.len()}]})
            .to_string();
            let md = Digest::of_bytes(m.as_bytes());
            // Only the host platform's blobs need to be present.
            if arch == host_arch().to_string() {
                t.file(&blob_path(&config_d), &config);
                t.file(&blob_path(&layer_d), &layer);
                t.file(&blob_path(&md), m.as_bytes());
                want = Some((md.clone(), config_d));
            }
            descs.push(
                json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
                "size": m.len(), "platform": {"architecture": arch, "os": "linux"}}),
            );
        }
        // An attestation-style entry is skipped.
        descs.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": Digest::of_bytes(b"att"), "size": 3, "platform": {"architecture": "unknown", "os": "unknown"}}));
        let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs}).to_string();
        let idx_d = Digest::of_bytes(idx.as_bytes());
        t.file(&blob_path(&idx_d), idx.as_bytes());
        let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": idx_d, "size": idx.len(), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
        t.file("index.json", top.to_string().as_bytes());
        let loaded = load(Cursor::new(t.finish()), &s, None).unwrap();
        let (md, cd) = want.unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].manifest_digest, md);
        assert_eq!(loaded[0].id, cd);
        assert!(loaded[0].tags.is_empty());
        assert_eq!(loaded[0].ref_name.as_deref(), Some("latest"));
        assert_eq!(s.list().unwrap().len(), 1);
        assert_eq!(
            s.resolve(cd.short()).unwrap().config.architecture(),
            &host_arch()
        );
    }

    #[test]
    fn index_without_host_platform_is_refused() {
        let (_d, s) = store();
        let mut t = Tar::new();
        let idx = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": Digest::of_bytes(b"m"), "size": 1, "platform": {"architecture": "riscv64", "os": "linux"}}]})
        .to_string();
        let idx_d = Digest::of_bytes(idx.as_bytes());
        t.file(&blob_path(&idx_d), idx.as_bytes());
        let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": idx_d, "size": idx.len()}]});
        t.file("index.json", top.to_string().as_bytes());
        let err = load(Cursor::new(t.finish()), &s, None).unwrap_err();
        assert!(matches!(err, ArchiveError::NoPlatform { .. }), "{err}");
        assert!(err.to_string().contains("linux/riscv64"), "{err}");
    }

    #[test]
    fn tampered_oci_blob_is_refused() {
        let (_d, s) = store();
        let l1 = layer_tar(&[("a", b"1")]);
        let (archive, _) = dockerd25_archive(
            std::slice::from_ref(&l1),
            &[Digest::of_bytes(&l1)],
            "application/vnd.oci.image.manifest.v1+json",
        );
        // Re-pack with a different blob under the layer's name and no manifest.json.
        let entries = tar_names(&archive);
        let mut t = Tar::new();
        for (name, (_, data, _)) in &entries {
            if name == "manifest.json" {
                continue;
            }
            if *name == blob_path(&Digest::of_bytes(&l1)) {
                t.file(name, b"tampered");
            } else {
                t.file(name, data);
            }
        }
        let err = load(Cursor::new(t.finish()), &s, None).unwrap_err();
        assert!(matches!(err, ArchiveError::BlobMismatch { .. }), "{err}");
        assert!(s.content().list().unwrap().is_empty());
    }

    #[test]
    fn save_writes_both_shapes_and_round_trips() {
        let (_d, s) = store();
        let l1 = layer_tar(&[("bin/sh", b"shell")]);
        let l2 = layer_tar(&[("etc/motd", b"hi")]);
        let diff_ids = [Digest::of_bytes(&l1), Digest::of_bytes(&l2)];
        let archive = legacy_archive(
            &[l1.clone(), zstd(&l2)],
            &diff_ids,
            &["busybox:latest", "me/app:1"],
        );
        let loaded = load(Cursor::new(archive), &s, None).unwrap();
        let rec = s.resolve("busybox").unwrap();

        let mut out = Vec::new();
        save(&["busybox", "me/app:1"], &s, &mut out, None).unwrap();
        let entries = tar_names(&out);
        // OCI layout parts.
        let layout: serde_json::Value = serde_json::from_slice(&entries["oci-layout"].1).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        let index: ImageIndex = serde_json::from_slice(&entries["index.json"].1).unwrap();
        assert_eq!(index.manifests().len(), 2);
        for d in index.manifests() {
            assert_eq!(d.digest().as_ref(), rec.manifest_digest.as_str());
            let a = d.annotations().as_ref().unwrap();
            assert!(
                a[ANNOTATION_IMAGE_NAME] == "docker.io/library/busybox:latest"
                    || a[ANNOTATION_IMAGE_NAME] == "docker.io/me/app:1"
            );
            assert!(a[ANNOTATION_REF_NAME] == "latest" || a[ANNOTATION_REF_NAME] == "1");
        }
        for d in std::iter::once(&rec.manifest_digest)
            .chain(std::iter::once(&rec.id))
            .chain(&diff_ids)
        {
            let (kind, data, _) = &entries[&blob_path(d)];
            assert_eq!(*kind, tar::EntryType::Regular);
            assert_eq!(Digest::of_bytes(data), *d);
        }
        // The stored zstd blob is there too, for the OCI manifest.
        let zstd_d = Digest::from_oci(rec.layers[1].digest()).unwrap();
        assert!(entries.contains_key(&blob_path(&zstd_d)));
        // manifest.json points into blobs/, uncompressed layers.
        let mj: serde_json::Value = serde_json::from_slice(&entries["manifest.json"].1).unwrap();
        assert_eq!(mj[0]["Config"], blob_path(&rec.id));
        assert_eq!(mj[0]["RepoTags"], json!(["busybox:latest", "me/app:1"]));
        assert_eq!(
            mj[0]["Layers"],
            json!([blob_path(&diff_ids[0]), blob_path(&diff_ids[1])])
        );
        // Legacy parts.
        let chain = crate::images::chain_ids(&diff_ids);
        let top = chain[1].hex();
        let repos: serde_json::Value = serde_json::from_slice(&entries["repositories"].1).unwrap();
        assert_eq!(repos["busybox"]["latest"], top);
        assert_eq!(repos["me/app"]["1"], top);
        assert_eq!(entries[&format!("{top}/VERSION")].1, b"1.0");
        let v1: serde_json::Value =
            serde_json::from_slice(&entries[&format!("{top}/json")].1).unwrap();
        assert_eq!(v1["parent"], chain[0].hex());
        let (kind, _, link) = &entries[&format!("{top}/layer.tar")];
        assert_eq!(*kind, tar::EntryType::Symlink);
        assert_eq!(*link, format!("../{}", blob_path(&diff_ids[1])));

        // Round trip into a fresh store: same image, same manifest, same tags.
        let (_d2, s2) = store();
        let again = load(Cursor::new(out), &s2, None).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, loaded[0].id);
        assert_eq!(again[0].manifest_digest, loaded[0].manifest_digest);
        let rec2 = s2.resolve("me/app:1").unwrap();
        assert_eq!(rec2.repo_tags, vec![r("busybox"), r("me/app:1")]);

        // Saved by id: untagged.
        let mut out = Vec::new();
        save(&[rec.id.short()], &s, &mut out, None).unwrap();
        let entries = tar_names(&out);
        let mj: serde_json::Value = serde_json::from_slice(&entries["manifest.json"].1).unwrap();
        assert!(mj[0]["RepoTags"].is_null());
        assert!(!entries.contains_key("repositories"));
        let (_d3, s3) = store();
        let again = load(Cursor::new(out), &s3, None).unwrap();
        assert!(again[0].tags.is_empty());
        assert_eq!(s3.list().unwrap()[0].id, rec.id);
    }

    #[test]
    fn save_unknown_image_fails() {
        let (_d, s) = store();
        let mut out = Vec::new();
        let err = save(&["nothere"], &s, &mut out, None).unwrap_err();
        assert!(err.to_string().contains("nothere"), "{err}");
    }

    #[test]
    fn oci_layout_directory_round_trip() {
        let (_d, s) = store();
        let l1 = layer_tar(&[("a", b"1")]);
        let blobs = vec![gzip(&l1)];
        let (archive, docker_md) =
            dockerd25_archive(&blobs, &[Digest::of_bytes(&l1)], DOCKER_MANIFEST);
        load(Cursor::new(archive), &s, None).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("layout");
        save_oci_layout(&["web:2"], &s, &dir, None).unwrap();
        let index: ImageIndex =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index.manifests().len(), 1);
        let desc = &index.manifests()[0];
        assert_eq!(desc.media_type(), &MediaType::ImageManifest);
        assert_eq!(
            desc.annotations().as_ref().unwrap()[ANNOTATION_REF_NAME],
            "2"
        );
        // Converted to an OCI manifest for OCI-only tools.
        let md = Digest::from_oci(desc.digest()).unwrap();
        assert_ne!(md, docker_md);
        let m: ImageManifest =
            serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(md.hex())).unwrap())
                .unwrap();
        assert_eq!(m.media_type(), &Some(MediaType::ImageManifest));
        assert_eq!(m.config().media_type(), &MediaType::ImageConfig);
        assert_eq!(m.layers()[0].media_type(), &MediaType::ImageLayerGzip);
        // Every blob is named by its digest.
        for e in fs::read_dir(dir.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let d = Digest::of_bytes(&fs::read(e.path()).unwrap());
            assert_eq!(d.hex(), e.file_name().to_str().unwrap());
        }
        // Saving again into the same layout replaces the entry with the same ref name.
        save_oci_layout(&["web:2"], &s, &dir, None).unwrap();
        let index: ImageIndex =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index.manifests().len(), 1);

        let (_d2, s2) = store();
        let loaded = load_oci_layout(&dir, &s2, None).unwrap();
        assert_eq!(loaded[0].manifest_digest, md);
        assert_eq!(loaded[0].tags, vec![r("web:2")]);
        assert_eq!(
            s2.resolve("web:2").unwrap().id,
            s.resolve("web:2").unwrap().id
        );
        // The source directory is left alone.
        assert!(dir.join("blobs/sha256").join(md.hex()).exists());
        assert!(load_oci_layout(out.path(), &s2, None).is_err());
    }

    #[test]
    fn import_rootfs_tarball() {
        let (_d, s) = store();
        let rootfs = layer_tar(&[
            ("bin/busybox", b"elf"),
            ("etc/passwd", b"root:x:0:0::/:/bin/sh\n"),
        ]);
        let changes = ImportChanges::parse(&[
            r#"CMD ["/bin/sh"]"#,
            "ENV A=1 B=\"two words\"",
            "EXPOSE 80 53/udp",
            "WORKDIR /app",
            "LABEL k=v",
        ])
        .unwrap();
        let got = import(Cursor::new(gzip(&rootfs)), &s, Some(&r("mine:1")), &changes).unwrap();
        assert_eq!(got.tags, vec![r("mine:1")]);
        let rec = s.resolve("mine:1").unwrap();
        assert_eq!(rec.diff_ids, vec![Digest::of_bytes(&rootfs)]);
        assert_eq!(rec.layers[0].media_type(), &MediaType::ImageLayerGzip);
        assert_eq!(rec.config.os(), &Os::Linux);
        assert_eq!(rec.config.architecture(), &host_arch());
        let c = rec.config.config().as_ref().unwrap();
        assert_eq!(c.cmd().as_deref(), Some(&["/bin/sh".to_string()][..]));
        assert_eq!(
            c.env().as_ref().unwrap(),
            &vec!["A=1".to_string(), "B=two words".to_string()]
        );
        let mut ports = c.exposed_ports().clone().unwrap();
        ports.sort();
        assert_eq!(ports, vec!["53/udp".to_string(), "80/tcp".to_string()]);
        assert_eq!(c.working_dir().as_deref(), Some("/app"));
        // Without changes: no Cmd, untagged.
        let plain = import(
            Cursor::new(rootfs.clone()),
            &s,
            None,
            &ImportChanges::default(),
        )
        .unwrap();
        assert!(plain.tags.is_empty());
        let rec = s.resolve(plain.id.as_str()).unwrap();
        assert!(rec.config.config().is_none());
        assert_eq!(rec.layers[0].media_type(), &MediaType::ImageLayer);
    }

    #[test]
    fn import_refuses_garbage_and_bad_changes() {
        let (_d, s) = store();
        let err = import(
            Cursor::new(vec![7u8; 1000]),
            &s,
            Some(&r("x")),
            &ImportChanges::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a tar archive"), "{err}");
        assert!(s.content().list().unwrap().is_empty());
        assert!(s.list().unwrap().is_empty());
        assert!(ImportChanges::parse(&["RUN rm -rf /"]).is_err());
        assert!(ImportChanges::parse(&["CMD"]).is_err());
        assert!(ImportChanges::parse(&["CMD [\"unterminated"]).is_err());
        let c = ImportChanges::parse(&["cmd echo hi", "ENV K some value"]).unwrap();
        assert_eq!(c.cmd.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.env.unwrap(), ["K=some value"]);
    }
}
