//! `berth image ...`: ls, inspect, history, tag, rm, prune, import, load, save, bootstrap over
//! the image store under the state root.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_image::images::{ImageRecord, ImageStore};
use berth_image::snapshot::Snapshotter;
use berth_image::{archive, bootstrap, Digest, Reference};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::progress::Bar;
use crate::{Failure, Result};

/// The stores of a state root: images (with their content store) and snapshots.
pub struct Stores {
    pub root: PathBuf,
    pub images: ImageStore,
    pub snapshots: Snapshotter,
}

impl Stores {
    pub fn open(root: &Path) -> Result<Stores> {
        fs::create_dir_all(root).map_err(|e| Failure::new(format!("{}: {e}", root.display())))?;
        Ok(Stores {
            root: root.to_path_buf(),
            images: ImageStore::open(root)?,
            snapshots: Snapshotter::open(&root.join("snapshots"), None)?,
        })
    }

    /// Where temporary files of long operations go (same filesystem as the store).
    fn work_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET that refers to SOURCE
    Tag(TagArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Build a base image without a registry: busybox (from the host) or debian:SUITE
    Bootstrap(BootstrapArgs),
}

#[derive(Args)]
pub struct LsArgs {
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Format output: "table", "json", or a Go-like template ("{{.Repository}}:{{.Tag}}")
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct HistoryArgs {
    name: String,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
}

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(Args)]
pub struct RmArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// A rootfs tarball, or - for STDIN
    file: String,
    /// The reference to tag the image with
    reference: Option<String>,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, WORKDIR, USER,
    /// EXPOSE, VOLUME, LABEL)
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Suppress the progress output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file (a directory with --format oci), instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// docker-archive (default), or oci for an OCI image layout directory
    #[arg(long, default_value = "docker")]
    format: String,
    /// Suppress the progress output
    #[arg(short, long)]
    quiet: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct BootstrapArgs {
    /// busybox, or debian[:SUITE] (bookworm by default)
    what: String,
    /// Name and tag of the image (default busybox:latest, debian:SUITE)
    #[arg(short, long)]
    tag: Option<String>,
    /// Suppress the progress output
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(root: &Path, command: ImageCommand) -> Result<()> {
    let stores = Stores::open(root)?;
    match command {
        ImageCommand::Ls(a) => ls(&stores, &a),
        ImageCommand::Inspect(a) => inspect(&stores, &a),
        ImageCommand::History(a) => history(&stores, &a),
        ImageCommand::Tag(a) => {
            let record = stores.images.resolve(&a.source)?;
            let target = Reference::parse(&a.target)?;
            stores.images.tag(&target, &record.manifest_digest)?;
            Ok(())
        }
        ImageCommand::Rm(a) => rm(&stores, &a),
        ImageCommand::Prune(a) => prune(&stores, &a),
        ImageCommand::Import(a) => import(&stores, &a),
        ImageCommand::Load(a) => load(&stores, &a),
        ImageCommand::Save(a) => save(&stores, &a),
        ImageCommand::Bootstrap(a) => bootstrap_image(&stores, &a),
    }
}

/// One row of `image ls`: an image under one of its tags (or `<none>`).
struct Row<'a> {
    repository: String,
    tag: String,
    record: &'a ImageRecord,
}

fn ls(stores: &Stores, a: &LsArgs) -> Result<()> {
    let records = stores.images.list()?;
    let mut rows = Vec::new();
    for r in &records {
        if r.repo_tags.is_empty() {
            rows.push(Row {
                repository: "<none>".into(),
                tag: "<none>".into(),
                record: r,
            });
        }
        for t in &r.repo_tags {
            rows.push(Row {
                repository: t.familiar_repository(),
                tag: t.tag_or_default().to_string(),
                record: r,
            });
        }
    }
    let id_of = |r: &ImageRecord| {
        if a.no_trunc {
            r.id.to_string()
        } else {
            r.id.hex()[..12].to_string()
        }
    };
    let mut out = io::stdout().lock();
    if a.quiet {
        let mut seen = HashSet::new();
        for row in &rows {
            if seen.insert(row.record.id.clone()) {
                let _ = writeln!(out, "{}", id_of(row.record));
            }
        }
        return Ok(());
    }
    let fields = |row: &Row| -> BTreeMap<&'static str, String> {
        let size = human_size(row.record.size);
        BTreeMap::from([
            ("Containers", "N/A".to_string()),
            ("CreatedAt", row.record.created.clone()),
            ("CreatedSince", human_since(&row.record.created)),
            ("Digest", "<none>".to_string()),
            ("ID", id_of(row.record)),
            ("Repository", row.repository.clone()),
            ("SharedSize", "N/A".to_string()),
            ("Size", size.clone()),
            ("Tag", row.tag.clone()),
            ("UniqueSize", "N/A".to_string()),
            ("VirtualSize", size),
        ])
    };
    match a.format.as_deref() {
        None | Some("table") => {
            let mut table = vec![[
                "REPOSITORY".to_string(),
                "TAG".into(),
                "IMAGE ID".into(),
                "CREATED".into(),
                "SIZE".into(),
            ]];
            for row in &rows {
                let f = fields(row);
                table.push([
                    f["Repository"].clone(),
                    f["Tag"].clone(),
                    f["ID"].clone(),
                    f["CreatedSince"].clone(),
                    f["Size"].clone(),
                ]);
            }
            let widths: Vec<usize> = (0..5)
                .map(|i| {
                    table
                        .iter()
                        .map(|r| r[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for r in &table {
                let mut line = String::new();
                for (i, cell) in r.iter().enumerate() {
                    if i < 4 {
                        line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
                    } else {
                        line.push_str(cell);
                    }
                }
                let _ = writeln!(out, "{}", line.trim_end());
            }
        }
        Some("json") | Some("{{json .}}") => {
            for row in &rows {
                let _ = writeln!(out, "{}", json!(fields(row)));
            }
        }
        Some(template) => {
            for row in &rows {
                let f = fields(row);
                let mut line = template.replace("\\t", "\t");
                for (k, v) in &f {
                    line = line.replace(&format!("{{{{.{k}}}}}"), v);
                }
                line = line.replace("{{json .}}", &json!(f).to_string());
                let _ = writeln!(out, "{line}");
            }
        }
    }
    Ok(())
}

/// `docker image inspect`'s document for one image.
fn inspect_json(r: &ImageRecord) -> Value {
    let cfg = &r.config;
    let mut config = json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": null,
    });
    if let Some(c) = cfg.config() {
        if let Ok(Value::Object(m)) = serde_json::to_value(c) {
            for (k, v) in m {
                config[k] = v;
            }
        }
    }
    let container_config = json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": null,
    });
    json!({
        "Id": r.id.to_string(),
        "RepoTags": r.repo_tags.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
        "RepoDigests": [],
        "Parent": "",
        "Comment": "",
        "Created": r.created,
        "ContainerConfig": container_config,
        "DockerVersion": "",
        "Author": cfg.author().clone().unwrap_or_default(),
        "Config": config,
        "Architecture": cfg.architecture().to_string(),
        "Os": cfg.os().to_string(),
        "Size": r.size,
        "VirtualSize": r.size,
        "GraphDriver": { "Data": null, "Name": "overlay2" },
        "RootFS": { "Type": "layers", "Layers": r.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>() },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
        "Descriptor": { "digest": r.manifest_digest.to_string() },
    })
}

fn inspect(stores: &Stores, a: &InspectArgs) -> Result<()> {
    let mut docs = Vec::new();
    let mut failed = None;
    for name in &a.names {
        match stores.images.resolve(name) {
            Ok(r) => docs.push(inspect_json(&r)),
            Err(e) => failed = Some(Failure::from(e)),
        }
    }
    let text = serde_json::to_string_pretty(&Value::Array(docs)).unwrap_or_default();
    outln!("{text}");
    match failed {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn history(stores: &Stores, a: &HistoryArgs) -> Result<()> {
    let record = stores.images.resolve(&a.name)?;
    let entries = stores.images.history(&a.name)?;
    let mut out = io::stdout().lock();
    if a.quiet {
        let _ = writeln!(out, "{}", short_id(&record.id, a.no_trunc));
        return Ok(());
    }
    let mut rows = vec![[
        "IMAGE".to_string(),
        "CREATED".into(),
        "CREATED BY".into(),
        "SIZE".into(),
        "COMMENT".into(),
    ]];
    for h in &entries {
        let image = match &h.id {
            Some(id) => short_id(id, a.no_trunc),
            None => "<missing>".to_string(),
        };
        let mut created_by = h.created_by.clone();
        if !a.no_trunc && created_by.chars().count() > 45 {
            created_by = created_by.chars().take(44).collect::<String>() + "…";
        }
        rows.push([
            image,
            h.created
                .as_deref()
                .map(human_since)
                .unwrap_or_else(|| "N/A".into()),
            created_by,
            human_size(h.size),
            h.comment.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    Ok(())
}

fn short_id(id: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.hex()[..12].to_string()
    }
}

fn rm(stores: &Stores, a: &RmArgs) -> Result<()> {
    let mut failed = None;
    for name in &a.names {
        match stores.images.remove(name, a.force, &|_| false) {
            Ok(removed) => {
                for t in &removed.untagged {
                    outln!("Untagged: {}", t.familiar());
                }
                for d in &removed.deleted {
                    outln!("Deleted: {d}");
                }
            }
            Err(e) => {
                let f = Failure::from(e);
                eprintln!("berth: {}", f.message);
                failed = Some(f);
            }
        }
    }
    if failed.is_some() {
        remove_unused_snapshots(stores);
        return Err(Failure {
            message: "some images could not be removed".into(),
            code: 1,
        });
    }
    remove_unused_snapshots(stores);
    Ok(())
}

/// Removes committed snapshots whose chain id no image has any more (best effort: one in use
/// by a running container stays).
fn remove_unused_snapshots(stores: &Stores) -> u64 {
    let Ok(records) = stores.images.list() else {
        return 0;
    };
    let mut keep = HashSet::new();
    for r in &records {
        for c in r.chain_ids() {
            keep.insert(c.to_string());
        }
    }
    let mut removed = 0;
    if let Ok(snaps) = stores.snapshots.list() {
        for s in snaps {
            let key = s.key.to_string();
            if key.starts_with("sha256:")
                && !keep.contains(&key)
                && stores.snapshots.remove(&key).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

fn prune(stores: &Stores, a: &PruneArgs) -> Result<()> {
    if !a.force {
        let what = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        let _ = io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let mut reclaimed = 0u64;
    let mut deleted = Vec::new();
    for r in stores.images.list()? {
        // Without a daemon no container outlives `berth run`: every image is unused.
        if r.repo_tags.is_empty() || a.all {
            let removed = stores.images.remove(&r.id.to_string(), true, &|_| false)?;
            for t in &removed.untagged {
                deleted.push(format!("untagged: {}", t.familiar()));
            }
            for d in &removed.deleted {
                deleted.push(format!("deleted: {d}"));
            }
        }
    }
    let gc = stores.images.gc(&|_: &Digest| false)?;
    reclaimed += gc.bytes_freed;
    remove_unused_snapshots(stores);
    if !deleted.is_empty() {
        outln!("Deleted Images:");
        for d in &deleted {
            outln!("{d}");
        }
        outln!();
    }
    outln!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(())
}

fn import(stores: &Stores, a: &ImportArgs) -> Result<()> {
    let reference = a.reference.as_deref().map(Reference::parse).transpose()?;
    let mut changes = archive::ImportChanges::parse(&a.change)?;
    changes.message = a.message.clone();
    let bar = Bar::new(a.quiet);
    let mut cb = bar.callback();
    let imported = if a.file == "-" {
        archive::import_with_progress(
            io::stdin().lock(),
            &stores.images,
            reference.as_ref(),
            &changes,
            Some(&mut cb),
        )?
    } else {
        let file = fs::File::open(&a.file).map_err(|e| Failure::new(format!("{}: {e}", a.file)))?;
        let total = file.metadata().map(|m| m.len()).ok();
        let reader = CountingReader::new(file, total, &mut cb, "importing");
        archive::import_with_progress(reader, &stores.images, reference.as_ref(), &changes, None)?
    };
    drop(cb);
    bar.finish();
    outln!("{}", imported.id);
    Ok(())
}

fn load(stores: &Stores, a: &LoadArgs) -> Result<()> {
    let bar = Bar::new(a.quiet);
    let mut cb = bar.callback();
    let loaded = match &a.input {
        // An OCI image layout directory (what `save --format oci` writes) loads as well.
        Some(path) if path.is_dir() => {
            archive::load_oci_layout(path, &stores.images, Some(&mut cb))?
        }
        Some(path) => {
            let file = fs::File::open(path)
                .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
            archive::load(file, &stores.images, Some(&mut cb))?
        }
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                return Err(Failure::new(
                    "requested load from stdin, but stdin is empty",
                ));
            }
            archive::load(stdin.lock(), &stores.images, Some(&mut cb))?
        }
    };
    drop(cb);
    bar.finish();
    for image in &loaded {
        if image.tags.is_empty() {
            outln!("Loaded image ID: {}", image.id);
        }
        for t in &image.tags {
            outln!("Loaded image: {}", t.familiar());
        }
    }
    Ok(())
}

fn save(stores: &Stores, a: &SaveArgs) -> Result<()> {
    let bar = Bar::new(a.quiet);
    let mut cb = bar.callback();
    let names: Vec<&str> = a.names.iter().map(String::as_str).collect();
    match a.format.as_str() {
        "oci" => {
            let dir = a
                .output
                .as_ref()
                .ok_or_else(|| Failure::new("--format oci needs -o DIR"))?;
            archive::save_oci_layout(&names, &stores.images, dir, Some(&mut cb))?;
        }
        "docker" | "docker-archive" => match &a.output {
            Some(path) => {
                let tmp = path.with_extension("berth-partial");
                let file = fs::File::create(&tmp)
                    .map_err(|e| Failure::new(format!("{}: {e}", tmp.display())))?;
                let mut w = io::BufWriter::with_capacity(1 << 20, file);
                let result = archive::save(&names, &stores.images, &mut w, Some(&mut cb))
                    .map_err(Failure::from)
                    .and_then(|_| {
                        w.flush()
                            .map_err(|e| Failure::new(format!("{}: {e}", tmp.display())))
                    });
                drop(w);
                if let Err(e) = result {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
                fs::rename(&tmp, path)
                    .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
            }
            None => {
                let stdout = io::stdout();
                if stdout.is_terminal() {
                    return Err(Failure::new(
                        "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                    ));
                }
                let mut w = io::BufWriter::with_capacity(1 << 20, stdout.lock());
                archive::save(&names, &stores.images, &mut w, Some(&mut cb))?;
                w.flush()
                    .map_err(|e| Failure::new(format!("stdout: {e}")))?;
            }
        },
        other => {
            return Err(Failure::new(format!(
                "unknown format {other:?}: docker or oci"
            )))
        }
    }
    drop(cb);
    bar.finish();
    Ok(())
}

fn bootstrap_image(stores: &Stores, a: &BootstrapArgs) -> Result<()> {
    let (kind, suite) = match a.what.split_once(':') {
        Some((k, s)) => (k, Some(s)),
        None => (a.what.as_str(), None),
    };
    let bar = Bar::new(a.quiet);
    let mut cb = bar.callback();
    let work = stores.work_dir();
    let imported = match kind {
        "busybox" => {
            if suite.is_some_and(|s| s != "latest") {
                return Err(Failure::new(format!(
                    "busybox comes from the host's busybox-static: no version {:?}",
                    suite.unwrap_or_default()
                )));
            }
            let reference = Reference::parse(a.tag.as_deref().unwrap_or("busybox:latest"))?;
            bootstrap::busybox(&stores.images, &reference, &work, Some(&mut cb))?
        }
        "debian" => {
            let suite = suite.unwrap_or("bookworm");
            let default = format!("debian:{suite}");
            let reference = Reference::parse(a.tag.as_deref().unwrap_or(&default))?;
            bootstrap::debian(&stores.images, &reference, suite, &work, Some(&mut cb))?
        }
        other => {
            return Err(Failure::new(format!(
                "cannot bootstrap {other:?}: busybox or debian[:SUITE]"
            )))
        }
    };
    drop(cb);
    bar.finish();
    outln!("{}", imported.id);
    Ok(())
}

/// A reader that reports the bytes read so far to a progress callback.
struct CountingReader<'a, R> {
    inner: R,
    read: u64,
    total: Option<u64>,
    cb: &'a mut dyn FnMut(berth_image::Progress),
    action: &'static str,
}

impl<'a, R> CountingReader<'a, R> {
    fn new(
        inner: R,
        total: Option<u64>,
        cb: &'a mut dyn FnMut(berth_image::Progress),
        action: &'static str,
    ) -> Self {
        CountingReader {
            inner,
            read: 0,
            total,
            cb,
            action,
        }
    }
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.cb)(berth_image::Progress {
            action: self.action,
            item: String::new(),
            current: self.read,
            total: self.total,
        });
        Ok(n)
    }
}

/// Docker's `units.HumanSize`: decimal units, 3 significant digits ("4.26MB", "124MB").
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < units.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    let digits = if size >= 100.0 {
        0
    } else if size >= 10.0 {
        1
    } else {
        2
    };
    let mut text = format!("{size:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", units[i])
}

/// "2 hours ago" for an RFC 3339 time, like docker's `units.HumanDuration`.
pub fn human_since(rfc3339: &str) -> String {
    let Some(then) = parse_rfc3339(rfc3339) else {
        return "N/A".into();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let s = (now - then).max(0);
    let text = match s {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_string(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s if s < 7 * 24 * 3600 * 2 => format!("{} days", s / 86400),
        s if s < 30 * 24 * 3600 * 3 => format!("{} weeks", s / (7 * 86400)),
        s if s < 365 * 24 * 3600 * 2 => format!("{} months", s / (30 * 86400)),
        s => format!("{} years", s / (365 * 86400)),
    };
    format!("{text} ago")
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut t = days * 86400 + h * 3600 + mi * 60 + se;
    let rest = &s[19..];
    let tz = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(sign) = tz.chars().next().filter(|c| *c == '+' || *c == '-') {
        let oh: i64 = tz.get(1..3)?.parse().ok()?;
        let om: i64 = tz.get(4..6)?.parse().ok()?;
        let off = oh * 3600 + om * 60;
        t -= if sign == '+' { off } else { -off };
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(124_300_000), "124MB");
        assert_eq!(human_size(1_500), "1.5kB");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00Z"), Some(946_684_800));
        assert_eq!(
            parse_rfc3339("2000-01-01T01:00:00.123+01:00"),
            Some(946_684_800)
        );
    }
}
