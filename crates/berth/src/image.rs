//! Image verbs: ls, inspect, history, tag, rm, prune, import, load, save, and Berth's own
//! `bootstrap` (busybox from the host, debian by debootstrap) through the daemon.

use std::collections::HashSet;
use std::fs;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};

use berth_api::client::{encode_component, with_query, Request, Response};
use berth_api::types::{
    HistoryItem, ImageDeleteResponseItem, ImageSummary, ImagesPruneResponse, JsonMessage,
};
use berth_api::{Client, Filters};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::container::{body_to_output, confirm, print_inspect};
use crate::format::{self, ellipsis, human_since, human_size, short_id, Format};
use crate::progress::{Bar, Counting};
use crate::{client_message, Failure, Result};

#[derive(Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
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
    /// Build a base image without a registry: busybox (from the host) or debian[:SUITE]
    Bootstrap(BootstrapArgs),
}

#[derive(Args)]
pub struct LsArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only images of this repository[:tag]
    reference: Option<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    name: String,
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
    /// Do not delete untagged parents
    #[arg(long)]
    no_prune: bool,
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
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

#[derive(Args)]
pub struct ImportArgs {
    /// A rootfs tarball, or - for STDIN
    file: String,
    /// The reference to tag the image with
    reference: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Suppress the progress output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file (or an OCI layout directory), instead of STDIN
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
    /// docker (the archive the daemon writes), or oci to unpack it as an OCI layout directory
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

pub fn run(c: &Client, command: ImageCommand) -> Result<()> {
    match command {
        ImageCommand::Ls(a) => ls(c, &a),
        ImageCommand::Inspect(a) => inspect(c, &a),
        ImageCommand::History(a) => history(c, &a),
        ImageCommand::Tag(a) => tag(c, &a),
        ImageCommand::Rm(a) => rm(c, &a),
        ImageCommand::Prune(a) => prune(c, &a),
        ImageCommand::Import(a) => import(c, &a),
        ImageCommand::Load(a) => load(c, &a),
        ImageCommand::Save(a) => save(c, &a),
        ImageCommand::Bootstrap(a) => bootstrap(c, &a),
    }
}

fn ipath(name: &str, what: &str) -> String {
    format!("/images/{}/{what}", encode_component(name))
}

/// `repo:tag` split, keeping a registry's port (`localhost:5000/a` has no tag).
fn split_ref(r: &str) -> (String, String) {
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (r.to_string(), "latest".to_string()),
    }
}

fn ls_title(f: &str) -> String {
    match f {
        "Repository" => "REPOSITORY",
        "Tag" => "TAG",
        "ID" => "IMAGE ID",
        "Digest" => "DIGEST",
        "CreatedSince" => "CREATED",
        "CreatedAt" => "CREATED AT",
        "Size" => "SIZE",
        "SharedSize" => "SHARED SIZE",
        "UniqueSize" => "UNIQUE SIZE",
        "VirtualSize" => "VIRTUAL SIZE",
        "Containers" => "CONTAINERS",
        other => return other.to_uppercase(),
    }
    .to_string()
}

pub fn ls(c: &Client, a: &LsArgs) -> Result<()> {
    let mut filters = Filters::new();
    for f in &a.filter {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            Failure::new(format!("bad format of filter (expected name=value): {f}"))
        })?;
        filters.add(k, v);
    }
    if let Some(r) = &a.reference {
        filters.add("reference", r);
    }
    let mut q: Vec<(&str, String)> = Vec::new();
    if a.all {
        q.push(("all", "1".into()));
    }
    if !filters.is_empty() {
        q.push(("filters", filters.to_json()));
    }
    let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let images: Vec<ImageSummary> = c.get(&with_query("/images/json", &pairs))?;
    let id_of = |i: &ImageSummary| {
        if a.no_trunc {
            i.id.clone()
        } else {
            short_id(&i.id)
        }
    };
    if a.quiet {
        let mut seen = HashSet::new();
        let mut out = String::new();
        for i in &images {
            if seen.insert(i.id.clone()) {
                out.push_str(&id_of(i));
                out.push('\n');
            }
        }
        format::print(&out);
        return Ok(());
    }
    let mut items = Vec::new();
    for i in &images {
        let tags: Vec<(String, String)> =
            if i.repo_tags.is_empty() || i.repo_tags.iter().all(|t| t == "<none>:<none>") {
                vec![("<none>".into(), "<none>".into())]
            } else {
                i.repo_tags.iter().map(|t| split_ref(t)).collect()
            };
        let digest = i
            .repo_digests
            .first()
            .and_then(|d| d.split_once('@').map(|(_, d)| d.to_string()))
            .unwrap_or_else(|| "<none>".into());
        for (repo, tag) in tags {
            let size = human_size(i.size as f64);
            items.push(json!({
                "Containers": if i.containers < 0 { "N/A".to_string() } else { i.containers.to_string() },
                "CreatedAt": format::go_time(i.created),
                "CreatedSince": human_since(i.created),
                "Digest": digest,
                "ID": id_of(i),
                "Repository": repo,
                "SharedSize": if i.shared_size < 0 { "N/A".to_string() } else { human_size(i.shared_size as f64) },
                "Size": size,
                "Tag": tag,
                "UniqueSize": if i.shared_size < 0 { "N/A".to_string() } else { human_size((i.size - i.shared_size) as f64) },
                "VirtualSize": size,
            }));
        }
    }
    let default = if a.digests {
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let text = format::render(
        &items,
        &Format::parse(a.format.as_deref()),
        default,
        &ls_title,
    )?;
    format::print(&text);
    Ok(())
}

pub fn inspect(c: &Client, a: &InspectArgs) -> Result<()> {
    let mut docs = Vec::new();
    let mut failed = false;
    for n in &a.names {
        match c.get::<Value>(&ipath(n, "json")) {
            Ok(v) => docs.push(v),
            Err(e) => {
                eprintln!("berth: {}", client_message(&e));
                failed = true;
            }
        }
    }
    print_inspect(&docs, a.format.as_deref())?;
    if failed {
        return Err(Failure::new(""));
    }
    Ok(())
}

fn history_title(f: &str) -> String {
    match f {
        "ID" => "IMAGE",
        "CreatedSince" => "CREATED",
        "CreatedAt" => "CREATED AT",
        "CreatedBy" => "CREATED BY",
        "Size" => "SIZE",
        "Comment" => "COMMENT",
        other => return other.to_uppercase(),
    }
    .to_string()
}

pub fn history(c: &Client, a: &HistoryArgs) -> Result<()> {
    let items: Vec<HistoryItem> = c.get(&ipath(&a.name, "history"))?;
    let id_of = |h: &HistoryItem| {
        if h.id == "<missing>" || a.no_trunc {
            h.id.clone()
        } else {
            short_id(&h.id)
        }
    };
    if a.quiet {
        let mut out = String::new();
        for h in &items {
            out.push_str(&id_of(h));
            out.push('\n');
        }
        format::print(&out);
        return Ok(());
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|h| {
            let by = if a.no_trunc {
                h.created_by.clone()
            } else {
                ellipsis(&h.created_by, 45)
            };
            json!({
                "ID": id_of(h),
                "CreatedSince": if a.human { human_since(h.created) } else { format::go_time(h.created) },
                "CreatedAt": format::go_time(h.created),
                "CreatedBy": by,
                "Size": if a.human { human_size(h.size as f64) } else { h.size.to_string() },
                "Comment": h.comment,
            })
        })
        .collect();
    let text = format::render(
        &rows,
        &Format::parse(a.format.as_deref()),
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &history_title,
    )?;
    format::print(&text);
    Ok(())
}

pub fn tag(c: &Client, a: &TagArgs) -> Result<()> {
    let (repo, tag) = split_ref(&a.target);
    c.post_empty(&with_query(
        &ipath(&a.source, "tag"),
        &[("repo", &repo), ("tag", &tag)],
    ))?;
    Ok(())
}

fn print_deleted(items: &[ImageDeleteResponseItem], lower: bool) {
    for it in items {
        // Tolerate a daemon that puts the word in the value (`"Untagged": "deleted: sha256:..."`).
        let mut lines = Vec::new();
        for v in it.untagged.iter().chain(&it.deleted) {
            let (deleted, value) = if let Some(d) = v.strip_prefix("deleted: ") {
                (true, d)
            } else if let Some(u) = v.strip_prefix("untagged: ") {
                (false, u)
            } else {
                (it.deleted.as_ref() == Some(v), v.as_str())
            };
            lines.push((deleted, value.to_string()));
        }
        for (deleted, value) in lines {
            let word = match (deleted, lower) {
                (true, true) => "deleted",
                (true, false) => "Deleted",
                (false, true) => "untagged",
                (false, false) => "Untagged",
            };
            outln!("{word}: {value}");
        }
    }
}

pub fn rm(c: &Client, a: &RmArgs) -> Result<()> {
    let mut failed = false;
    for n in &a.names {
        let mut q = Vec::new();
        if a.force {
            q.push(("force", "1"));
        }
        if a.no_prune {
            q.push(("noprune", "1"));
        }
        let path = with_query(&format!("/images/{}", encode_component(n)), &q);
        match c.delete_json::<Vec<ImageDeleteResponseItem>>(&path) {
            Ok(items) => print_deleted(&items, false),
            Err(e) => {
                eprintln!("berth: {}", client_message(&e));
                failed = true;
            }
        }
    }
    if failed {
        return Err(Failure::new(""));
    }
    Ok(())
}

pub fn prune(c: &Client, a: &PruneArgs) -> Result<()> {
    let what = if a.all {
        "This will remove all images without at least one container associated to them."
    } else {
        "This will remove all dangling images."
    };
    if !a.force && !confirm(what) {
        return Ok(());
    }
    let mut filters = Filters::new();
    for f in &a.filter {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            Failure::new(format!("bad format of filter (expected name=value): {f}"))
        })?;
        filters.add(k, v);
    }
    if a.all {
        filters.add("dangling", "false");
    }
    let path = if filters.is_empty() {
        "/images/prune".to_string()
    } else {
        with_query("/images/prune", &[("filters", &filters.to_json())])
    };
    let r: ImagesPruneResponse = c.post(&path, &json!({}))?;
    let deleted = r.images_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        outln!("Deleted Images:");
        print_deleted(&deleted, true);
        outln!();
    }
    outln!(
        "Total reclaimed space: {}",
        human_size(r.space_reclaimed as f64)
    );
    Ok(())
}

/// Reads the JSON lines of load, import and bootstrap: `stream` text goes to `on_stream`,
/// an error ends it, and the last `aux.ID` or `status` is returned.
fn read_messages(
    resp: Response,
    mut on_stream: impl FnMut(&str),
) -> Result<(Option<String>, Option<String>)> {
    let (mut id, mut status) = (None, None);
    for m in resp.json_lines::<JsonMessage>() {
        let m = m?;
        if let Some(e) = m.error_message() {
            return Err(Failure::new(e));
        }
        if let Some(s) = &m.stream {
            on_stream(s);
        }
        if let Some(aux) = &m.aux {
            if let Some(i) = aux.get("ID").and_then(Value::as_str) {
                id = Some(i.to_string());
            }
        }
        if let Some(s) = m.status {
            status = Some(s);
        }
    }
    Ok((id, status))
}

pub fn import(c: &Client, a: &ImportArgs) -> Result<()> {
    let mut q: Vec<(&str, String)> = vec![("fromSrc", "-".into())];
    if let Some(r) = &a.reference {
        let (repo, tag) = split_ref(r);
        q.push(("repo", repo));
        q.push(("tag", tag));
    }
    if let Some(m) = &a.message {
        q.push(("message", m.clone()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (body, total): (Box<dyn Read + Send>, Option<u64>) = if a.file == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let f =
            fs::File::open(&a.file).map_err(|e| Failure::new(format!("open {}: {e}", a.file)))?;
        let len = f.metadata().map(|m| m.len()).ok();
        (Box::new(f), len)
    };
    let bar = Bar::new(a.quiet, total, "importing");
    let body = Counting {
        inner: body,
        bar: bar.clone(),
    };
    let resp = c.request(
        Request::new("POST", &with_query("/images/create", &pairs))
            .reader("application/x-tar", body),
    )?;
    let (id, status) = read_messages(resp, |_| {})?;
    bar.finish();
    match id.or(status) {
        Some(id) => outln!("{}", id.trim()),
        None => return Err(Failure::new("import: the daemon reported no image id")),
    }
    Ok(())
}

/// A tar of a directory, streamed from a thread (an OCI layout directory to load).
fn tar_dir(dir: &Path) -> Result<Box<dyn Read + Send>> {
    let (reader, writer) = pipe()?;
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let mut b = tar::Builder::new(writer);
        b.follow_symlinks(false);
        if let Err(e) = b.append_dir_all(".", &dir).and_then(|_| b.finish()) {
            eprintln!("berth: archive {}: {e}", dir.display());
        }
    });
    Ok(Box::new(reader))
}

/// An anonymous pipe as a reader and a writer.
fn pipe() -> Result<(fs::File, fs::File)> {
    let (r, w) = nix::unistd::pipe().map_err(|e| Failure::new(format!("pipe: {e}")))?;
    Ok((fs::File::from(r), fs::File::from(w)))
}

pub fn load(c: &Client, a: &LoadArgs) -> Result<()> {
    let (body, total): (Box<dyn Read + Send>, Option<u64>) = match &a.input {
        Some(p) if p.is_dir() => (tar_dir(p)?, None),
        Some(p) => {
            let f = fs::File::open(p)
                .map_err(|e| Failure::new(format!("open {}: {e}", p.display())))?;
            let len = f.metadata().map(|m| m.len()).ok();
            (Box::new(f), len)
        }
        None => {
            if io::stdin().is_terminal() {
                return Err(Failure::new(
                    "requested load from stdin, but stdin is empty",
                ));
            }
            (Box::new(io::stdin()), None)
        }
    };
    let bar = Bar::new(a.quiet, total, "loading");
    let body = Counting {
        inner: body,
        bar: bar.clone(),
    };
    let resp =
        c.request(Request::new("POST", "/images/load?quiet=1").reader("application/x-tar", body))?;
    let mut lines = Vec::new();
    read_messages(resp, |s| lines.push(s.to_string()))?;
    bar.finish();
    if !a.quiet {
        for l in lines {
            format::print(&l);
        }
    }
    Ok(())
}

pub fn save(c: &Client, a: &SaveArgs) -> Result<()> {
    let pairs: Vec<(&str, &str)> = a.names.iter().map(|n| ("names", n.as_str())).collect();
    let resp = c.request(Request::new("GET", &with_query("/images/get", &pairs)))?;
    let bar = Bar::new(a.quiet, None, "saving");
    let body = Counting {
        inner: resp,
        bar: bar.clone(),
    };
    match a.format.as_str() {
        "docker" | "docker-archive" => body_to_output(body, a.output.as_deref(), "save"),
        "oci" => {
            let dir = a
                .output
                .as_ref()
                .ok_or_else(|| Failure::new("--format oci needs -o DIR"))?;
            fs::create_dir_all(dir)
                .map_err(|e| Failure::new(format!("create {}: {e}", dir.display())))?;
            let mut archive = tar::Archive::new(body);
            archive
                .unpack(dir)
                .map_err(|e| Failure::new(format!("extract into {}: {e}", dir.display())))?;
            if !dir.join("index.json").is_file() || !dir.join("oci-layout").is_file() {
                return Err(Failure::new(format!(
                    "the daemon's archive is not an OCI image layout (no index.json or \
                     oci-layout in {})",
                    dir.display()
                )));
            }
            Ok(())
        }
        other => Err(Failure::new(format!(
            "unknown format {other:?}: docker or oci"
        ))),
    }
}

/// The name `bootstrap` gives an image by default: `busybox:latest`, `debian:SUITE`.
fn bootstrap_default_name(what: &str) -> String {
    match what.split_once(':') {
        Some((k, s)) => format!("{k}:{s}"),
        None if what == "debian" => "debian:bookworm".to_string(),
        None => format!("{what}:latest"),
    }
}

pub fn bootstrap(c: &Client, a: &BootstrapArgs) -> Result<()> {
    let default = bootstrap_default_name(&a.what);
    // With -t the image goes by that name only, unless the default name was already taken.
    let default_existed = a.tag.is_some() && c.get::<Value>(&ipath(&default, "json")).is_ok();
    let bar = Bar::new(a.quiet, None, &format!("bootstrapping {}", a.what));
    let resp = c.request(Request::new(
        "POST",
        &with_query("/berth/images/bootstrap", &[("name", &a.what)]),
    ))?;
    let (id, _) = read_messages(resp, |s| bar.message(s))?;
    bar.finish();
    let id =
        id.ok_or_else(|| Failure::new(format!("bootstrap {}: no image id in the answer", a.what)))?;
    if let Some(t) = &a.tag {
        let (repo, tag) = split_ref(t);
        c.post_empty(&with_query(
            &ipath(&id, "tag"),
            &[("repo", &repo), ("tag", &tag)],
        ))?;
        let (drepo, dtag) = split_ref(&default);
        if !default_existed && (drepo.as_str(), dtag.as_str()) != (repo.as_str(), tag.as_str()) {
            let _ = c.delete(&format!("/images/{}", encode_component(&default)));
        }
    }
    outln!("{id}");
    Ok(())
}

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short, long = "tag")]
    tag: Vec<String>,
    /// Name of the Dockerfile (default: 'PATH/Dockerfile')
    #[arg(short, long)]
    file: Option<PathBuf>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Set metadata for an image (KEY=VALUE)
    #[arg(long)]
    label: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long)]
    network: Option<String>,
    /// Accepted for docker's sake: Berth builds for the host's platform only
    #[arg(long)]
    platform: Option<String>,
    /// Build context: a directory
    path: PathBuf,
}

/// `berth build`: sends the context directory as a tar (the Dockerfile added under a private
/// name when it lies outside the context) and prints the steps as the daemon streams them.
pub fn build(c: &Client, a: &BuildArgs) -> Result<u8> {
    if !a.path.is_dir() {
        return Err(Failure::new(format!(
            "unable to prepare context: path {:?} not found",
            a.path.display().to_string()
        )));
    }
    if let Some(p) = &a.platform {
        eprintln!("berth: --platform {p} is ignored: images are built for the host's platform");
    }
    let mut dockerfile = String::from("Dockerfile");
    let mut extra: Option<Vec<u8>> = None;
    if let Some(f) = &a.file {
        let full = if f.is_absolute() {
            f.clone()
        } else {
            std::env::current_dir()
                .map(|d| d.join(f))
                .unwrap_or(f.clone())
        };
        let ctx = fs::canonicalize(&a.path).unwrap_or(a.path.clone());
        match fs::canonicalize(&full)
            .ok()
            .and_then(|p| p.strip_prefix(&ctx).ok().map(Path::to_path_buf))
        {
            Some(rel) => dockerfile = rel.display().to_string(),
            None => {
                let text = fs::read(&full).map_err(|e| {
                    Failure::new(format!("unable to read Dockerfile {}: {e}", full.display()))
                })?;
                dockerfile = ".berth-dockerfile".into();
                extra = Some(text);
            }
        }
    }
    let mut build_args = serde_json::Map::new();
    for kv in &a.build_arg {
        match kv.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), Value::String(v.to_string())),
            None => build_args.insert(
                kv.clone(),
                std::env::var(kv).map(Value::String).unwrap_or(Value::Null),
            ),
        };
    }
    let mut labels = serde_json::Map::new();
    for kv in &a.label {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        labels.insert(k.to_string(), Value::String(v.to_string()));
    }
    let build_args = Value::Object(build_args).to_string();
    let labels = Value::Object(labels).to_string();
    let mut q: Vec<(&str, &str)> = vec![
        ("dockerfile", dockerfile.as_str()),
        ("buildargs", build_args.as_str()),
        ("labels", labels.as_str()),
        ("rm", "1"),
        ("version", "1"),
    ];
    for t in &a.tag {
        q.push(("t", t.as_str()));
    }
    if let Some(t) = &a.target {
        q.push(("target", t.as_str()));
    }
    if a.no_cache {
        q.push(("nocache", "1"));
    }
    if a.quiet {
        q.push(("q", "1"));
    }
    if let Some(n) = &a.network {
        q.push(("networkmode", n.as_str()));
    }
    let body = tar_context(&a.path, extra)?;
    let resp = c.request(
        Request::new("POST", &with_query("/build", &q)).reader("application/x-tar", body),
    )?;
    let mut id = None;
    for m in resp.json_lines::<JsonMessage>() {
        let m = m?;
        if let Some(e) = m.error_message() {
            let code = m
                .error_detail
                .as_ref()
                .and_then(|d| d.code)
                .filter(|c| (1..=255).contains(c))
                .unwrap_or(1);
            return Err(Failure::new(e).code(code as u8));
        }
        if let Some(s) = m.stream.as_deref().filter(|_| !a.quiet) {
            out!("{s}");
        }
        if let Some(i) = m
            .aux
            .as_ref()
            .and_then(|a| a.get("ID"))
            .and_then(Value::as_str)
        {
            id = Some(i.to_string());
        }
    }
    if a.quiet {
        match id {
            Some(i) => outln!("{i}"),
            None => return Err(Failure::new("the daemon did not report the image it built")),
        }
    }
    Ok(0)
}

/// The context directory as a tar, streamed from a thread; `dockerfile` (a Dockerfile from
/// outside the context) is added as `.berth-dockerfile`.
fn tar_context(dir: &Path, dockerfile: Option<Vec<u8>>) -> Result<Box<dyn Read + Send>> {
    let (reader, writer) = pipe()?;
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let mut b = tar::Builder::new(writer);
        b.follow_symlinks(false);
        let mut r = b.append_dir_all(".", &dir);
        if let (Ok(()), Some(text)) = (&r, dockerfile) {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            r = b.append_data(&mut h, ".berth-dockerfile", &text[..]);
        }
        if let Err(e) = r.and_then(|_| b.finish()) {
            eprintln!("berth: archive {}: {e}", dir.display());
        }
    });
    Ok(Box::new(reader))
}
