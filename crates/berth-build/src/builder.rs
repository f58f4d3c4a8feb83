//! The build driver: runs a parsed Dockerfile stage by stage, one image per step (as
//! dockerd's classic builder does), with a cache keyed on the parent image and the step.
//!
//! Metadata steps (ENV, LABEL, CMD, ...) write a new config over the same layers without a
//! container. Filesystem steps (RUN, COPY, ADD, WORKDIR creating a directory) go through a
//! [`Backend`] container: the engine creates it from the current image, the builder copies
//! files in or runs the command, and the container's changes become the step's layer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use berth_image::{Digest, ImageStore, Reference};
use oci_spec::image::Descriptor;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::context::Context;
use crate::copy::{self, Attrs, CopyError, Source, TarWriter};
use crate::dockerfile::{self, Command, Health, Heredoc, Instruction, ShellOrExec};
use crate::shell::Lexer;
use crate::BuildError;

/// Build args Docker passes to RUN without an `ARG` and leaves out of the cache key.
pub const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The PATH a base image without one gets, as dockerd sets it.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `docker build` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// The Dockerfile's path in the context; `Dockerfile` when empty.
    pub dockerfile: String,
    /// `-t`, each `name[:tag]`.
    pub tags: Vec<String>,
    /// `--build-arg K=V` (`None`: `--build-arg K` with K unset in the client's env).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--label`, added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--target`: the stage to stop at.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--network` for RUN steps (`default`, `none`, `host`, a network name).
    pub network: Option<String>,
}

/// A line of build output, as `POST /build` streams it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Text for the terminal (`{"stream": ...}`).
    Stream(String),
    /// The id of the image built (`{"aux": {"ID": ...}}`).
    Built(Digest),
}

/// What a RUN container runs.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// The command (no entrypoint: the image's is not used).
    pub argv: Vec<String>,
    /// `K=V` added over the image's env (build args in scope).
    pub env: Vec<String>,
    /// `--network`.
    pub network: Option<String>,
}

/// The engine side of a build: containers and the cache.
pub trait Backend {
    /// The image store steps write their images to.
    fn images(&self) -> &ImageStore;
    /// A container of image `image` (an id) with its root filesystem mounted, not started.
    fn create(&self, image: &Digest, run: &RunSpec) -> Result<String, BuildError>;
    /// The host path of `path` inside the container's root, symlinks resolved inside that root;
    /// `None` when it does not exist.
    fn resolve(&self, ctr: &str, path: &str) -> Result<Option<PathBuf>, BuildError>;
    /// Extract a tar into directory `dir` (which exists) of the container.
    fn put(&self, ctr: &str, dir: &str, tar: &mut dyn std::io::Read) -> Result<(), BuildError>;
    /// Start the container, stream its output, and return its exit code once it exits.
    fn run(&self, ctr: &str, out: &mut dyn FnMut(&[u8])) -> Result<i64, BuildError>;
    /// The container's changes as a layer in the content store: its descriptor and diff id.
    fn diff(&self, ctr: &str) -> Result<(Descriptor, Digest), BuildError>;
    /// Remove the container (and its snapshot); errors are the backend's to log.
    fn remove(&self, ctr: &str);
    /// The image id cached for a step key (the builder checks that the image still exists).
    fn cache_get(&self, key: &str) -> Option<Digest>;
    /// Remember the image a step produced.
    fn cache_put(&self, key: &str, image: &Digest);
    /// A remembered value (the content hash of a COPY's sources in a context of a given
    /// digest), so an unchanged context need not be unpacked and read again.
    fn memo_get(&self, key: &str) -> Option<String>;
    fn memo_put(&self, key: &str, value: &str);
}

/// Where a stage is: the image of its last step and how the next steps see it.
struct State {
    id: Digest,
    manifest: Digest,
    /// The full image config (Docker's JSON, with Healthcheck, OnBuild, Shell).
    config: Value,
    layers: Vec<Descriptor>,
    /// ARGs declared in this stage and their values.
    args: BTreeMap<String, Option<String>>,
    /// Whether CMD was set in this stage (ENTRYPOINT clears an inherited CMD).
    cmd_set: bool,
}

struct Built {
    name: Option<String>,
    id: Digest,
}

/// Runs a build; returns the final image's id.
pub fn build(
    backend: &dyn Backend,
    ctx: &Context,
    opts: &BuildOptions,
    out: &mut dyn FnMut(Message),
) -> Result<Digest, BuildError> {
    let name = if opts.dockerfile.is_empty() {
        "Dockerfile"
    } else {
        opts.dockerfile.as_str()
    };
    let text = ctx.dockerfile(name)?;
    let df = dockerfile::parse(&text)?;
    let lexer = Lexer { escape: df.escape };
    // Validate tags before doing any work.
    let tags = opts
        .tags
        .iter()
        .map(|t| {
            Reference::parse(t).map_err(|e| BuildError::Invalid(format!("invalid tag {t:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let last = match &opts.target {
        Some(t) if !t.is_empty() => df
            .stages
            .iter()
            .position(|s| {
                matches!(&s.from.cmd, Command::From { stage_name: Some(n), .. } if n.eq_ignore_ascii_case(t))
            })
            .ok_or_else(|| {
                BuildError::Invalid(format!("failed to reach build target {t} in Dockerfile"))
            })?,
        _ => df.stages.len().saturating_sub(1),
    };
    let extra_label_step = !opts.labels.is_empty();
    let total: usize = df.stages[..=last]
        .iter()
        .map(|s| 1 + s.instructions.len())
        .sum::<usize>()
        + extra_label_step as usize;

    let mut b = Builder {
        backend,
        ctx,
        opts,
        lexer,
        out,
        step: 0,
        total,
        used_args: BTreeSet::new(),
    };

    // ARGs before the first FROM: visible to FROM lines only.
    let mut meta: BTreeMap<String, String> = BTreeMap::new();
    for ins in &df.meta_args {
        if let Command::Arg(list) = &ins.cmd {
            for (k, default) in list {
                let v = match opts.build_args.get(k) {
                    Some(v) => {
                        b.used_args.insert(k.clone());
                        v.clone()
                    }
                    None => default
                        .as_ref()
                        .map(|d| b.expand(ins, d, &meta))
                        .transpose()?,
                };
                if let Some(v) = v {
                    meta.insert(k.clone(), v);
                } else {
                    meta.remove(k);
                }
            }
        }
    }

    let mut stages: Vec<Built> = Vec::new();
    let mut final_state = None;
    for (i, stage) in df.stages[..=last].iter().enumerate() {
        let mut st = b.from(&stage.from, &meta, &stages)?;
        for ins in &stage.instructions {
            b.header(ins);
            b.dispatch(ins, &mut st, &meta, &stages)?;
        }
        if i == last && extra_label_step {
            let labels: Vec<String> = opts
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={}", quote(v)))
                .collect();
            let text = format!("LABEL {}", labels.join(" "));
            b.step += 1;
            b.say(format!("Step {}/{} : {text}\n", b.step, b.total));
            let mut cfg = st.config.clone();
            for (k, v) in &opts.labels {
                cfg["config"]["Labels"][k] = json!(v);
            }
            b.meta_commit(&mut st, cfg, &format!("LABEL {}", labels.join(" ")))?;
        }
        let name = match &stage.from.cmd {
            Command::From { stage_name, .. } => stage_name.clone(),
            _ => None,
        };
        stages.push(Built {
            name,
            id: st.id.clone(),
        });
        final_state = Some(st);
    }
    let st =
        final_state.ok_or_else(|| BuildError::Invalid("no build stage in Dockerfile".into()))?;

    let unused: Vec<&String> = opts
        .build_args
        .keys()
        .filter(|k| !b.used_args.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        b.say(format!(
            "[Warning] One or more build-args [{}] were not consumed\n",
            names.join(" ")
        ));
    }
    (b.out)(Message::Built(st.id.clone()));
    b.say(format!("Successfully built {}\n", &st.id.hex()[..12]));
    for t in &tags {
        backend
            .images()
            .tag(t, &st.manifest)
            .map_err(|e| BuildError::Backend(format!("tagging {}: {e}", t.familiar())))?;
        b.say(format!("Successfully tagged {}\n", t.familiar()));
    }
    Ok(st.id)
}

struct Builder<'a> {
    backend: &'a dyn Backend,
    ctx: &'a Context,
    opts: &'a BuildOptions,
    lexer: Lexer,
    out: &'a mut dyn FnMut(Message),
    step: usize,
    total: usize,
    used_args: BTreeSet<String>,
}

/// The error of a step, pointing at its Dockerfile line.
fn step_err(ins: &Instruction, message: impl std::fmt::Display) -> BuildError {
    BuildError::Step {
        line: ins.line,
        instruction: keyword(ins).to_string(),
        message: message.to_string(),
    }
}

fn keyword(ins: &Instruction) -> &str {
    ins.original.split_whitespace().next().unwrap_or("")
}

fn quote(v: &str) -> String {
    if v.is_empty() || v.contains([' ', '"', '\'', '\\', '$', '\t']) {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let base = berth_image::images::rfc3339(d.as_secs());
    // `...Z` → `....nnnnnnnnnZ`, as dockerd writes it.
    match base.strip_suffix('Z') {
        Some(s) => format!("{s}.{:09}Z", d.subsec_nanos()),
        None => base,
    }
}

fn env_map(config: &Value) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(list) = config["config"]["Env"].as_array() {
        for e in list.iter().filter_map(|e| e.as_str()) {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            m.insert(k.to_string(), v.to_string());
        }
    }
    m
}

fn set_env(config: &mut Value, key: &str, value: &str) {
    let c = &mut config["config"];
    if !c["Env"].is_array() {
        c["Env"] = json!([]);
    }
    let list = c["Env"].as_array_mut().expect("Env is an array");
    let entry = json!(format!("{key}={value}"));
    match list.iter().position(|e| {
        e.as_str()
            .map(|s| s.split_once('=').map(|(k, _)| k).unwrap_or(s) == key)
            .unwrap_or(false)
    }) {
        Some(i) => list[i] = entry,
        None => list.push(entry),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

impl Builder<'_> {
    fn say(&mut self, text: String) {
        (self.out)(Message::Stream(text));
    }

    fn header(&mut self, ins: &Instruction) {
        self.step += 1;
        self.say(format!(
            "Step {}/{} : {}\n",
            self.step, self.total, ins.original
        ));
    }

    fn expand(
        &self,
        ins: &Instruction,
        word: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, BuildError> {
        self.lexer
            .process_word(word, vars)
            .map_err(|e| step_err(ins, e))
    }

    fn expand_words(
        &self,
        ins: &Instruction,
        text: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, BuildError> {
        self.lexer
            .process_words(text, vars)
            .map_err(|e| step_err(ins, e))
    }

    /// Variables for expansion in a stage: its ARGs, then its ENV over them.
    fn vars(st: &State) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = st
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        m.extend(env_map(&st.config));
        m
    }

    fn load(&self, id: &Digest) -> Result<State, BuildError> {
        let images = self.backend.images();
        let rec = images
            .resolve(id.as_str())
            .map_err(|e| BuildError::Backend(format!("image {id}: {e}")))?;
        let bytes = images
            .content()
            .read_blob(&rec.id)
            .map_err(|e| BuildError::Backend(format!("image config {}: {e}", rec.id)))?;
        let config: Value = serde_json::from_slice(&bytes)
            .map_err(|e| BuildError::Backend(format!("image config {}: {e}", rec.id)))?;
        Ok(State {
            id: rec.id,
            manifest: rec.manifest_digest,
            config,
            layers: rec.layers,
            args: BTreeMap::new(),
            cmd_set: false,
        })
    }

    /// The empty image `FROM scratch` starts from.
    fn scratch(&self) -> Result<State, BuildError> {
        let config = json!({
            "architecture": host_arch(),
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        let (manifest, id) = self
            .backend
            .images()
            .write_image(&config, Vec::new(), None)
            .map_err(|e| BuildError::Backend(format!("scratch image: {e}")))?;
        Ok(State {
            id,
            manifest,
            config,
            layers: Vec::new(),
            args: BTreeMap::new(),
            cmd_set: false,
        })
    }

    fn from(
        &mut self,
        ins: &Instruction,
        meta: &BTreeMap<String, String>,
        stages: &[Built],
    ) -> Result<State, BuildError> {
        self.header(ins);
        let Command::From {
            image, platform, ..
        } = &ins.cmd
        else {
            return Err(step_err(ins, "a stage must start with FROM"));
        };
        if let Some(p) = platform {
            self.say(format!(
                "[Warning] FROM --platform={p} is ignored: images are built for the host's platform\n"
            ));
        }
        let name = self.expand(ins, image, meta)?;
        if name.is_empty() {
            return Err(step_err(ins, "base name should not be blank"));
        }
        let mut st = if let Some(s) = stages.iter().rev().find(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        }) {
            self.load(&s.id)?
        } else if name.eq_ignore_ascii_case("scratch") {
            self.scratch()?
        } else {
            let rec = self.backend.images().resolve(&name).map_err(|_| {
                step_err(
                    ins,
                    format!(
                        "no such image: {name} (there is no registry to pull from: load, import or build it first)"
                    ),
                )
            })?;
            self.load(&rec.id)?
        };
        self.say(format!(" ---> {}\n", &st.id.hex()[..12]));
        // Like dockerd, steps see (and images built on this base keep) a default PATH.
        if !env_map(&st.config).contains_key("PATH") {
            let c = &mut st.config["config"];
            if !c.is_object() {
                *c = json!({});
            }
            let mut env = vec![json!(DEFAULT_PATH)];
            env.extend(c["Env"].as_array().cloned().unwrap_or_default());
            c["Env"] = json!(env);
        }
        // ONBUILD triggers of the base run now, and are not inherited.
        let triggers = strings(&st.config["config"]["OnBuild"]);
        if !triggers.is_empty() {
            self.say(format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
            let mut cfg = st.config.clone();
            cfg["config"]["OnBuild"] = Value::Null;
            st.config = cfg;
            for t in triggers {
                let parsed = dockerfile::parse(&format!("FROM scratch\n{t}\n")).map_err(|e| {
                    step_err(
                        ins,
                        format!("invalid ONBUILD trigger {t:?} of the base image: {e}"),
                    )
                })?;
                for tins in parsed.stages.iter().flat_map(|s| s.instructions.iter()) {
                    let mut tins = tins.clone();
                    tins.line = ins.line;
                    self.dispatch(&tins, &mut st, meta, stages)?;
                }
            }
        }
        Ok(st)
    }

    fn dispatch(
        &mut self,
        ins: &Instruction,
        st: &mut State,
        meta: &BTreeMap<String, String>,
        stages: &[Built],
    ) -> Result<(), BuildError> {
        let vars = Self::vars(st);
        let mut cfg = st.config.clone();
        let c = &mut cfg["config"];
        if !c.is_object() {
            *c = json!({});
        }
        let nop = |text: &str| text.to_string();
        match &ins.cmd {
            Command::From { .. } => Err(step_err(ins, "FROM inside a stage")),
            Command::Env(pairs) => {
                let mut shown = Vec::new();
                let mut vars = vars;
                for (k, v) in pairs {
                    let k = self.expand(ins, k, &vars)?;
                    let v = self.expand(ins, v, &vars)?;
                    if k.is_empty() {
                        return Err(step_err(ins, "ENV names can not be blank"));
                    }
                    set_env(&mut cfg, &k, &v);
                    shown.push(format!("{k}={v}"));
                    vars.insert(k, v);
                }
                self.meta_commit(st, cfg, &nop(&format!("ENV {}", shown.join(" "))))
            }
            Command::Arg(list) => {
                let mut shown = Vec::new();
                for (k, default) in list {
                    let value = match self.opts.build_args.get(k) {
                        Some(v) => {
                            self.used_args.insert(k.clone());
                            v.clone()
                        }
                        None => match default {
                            Some(d) => Some(self.expand(ins, d, &Self::vars(st))?),
                            // A meta ARG redeclared without a value takes the meta value.
                            None => meta.get(k).cloned(),
                        },
                    };
                    shown.push(match &value {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    });
                    st.args.insert(k.clone(), value);
                }
                let cfg = st.config.clone();
                self.meta_commit(st, cfg, &format!("ARG {}", shown.join(" ")))
            }
            Command::Label(pairs) => {
                if !c["Labels"].is_object() {
                    c["Labels"] = json!({});
                }
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(ins, k, &vars)?;
                    let v = self.expand(ins, v, &vars)?;
                    if k.is_empty() {
                        return Err(step_err(ins, "LABEL names can not be blank"));
                    }
                    shown.push(format!("{k}={}", quote(&v)));
                    cfg["config"]["Labels"][&k] = json!(v);
                }
                self.meta_commit(st, cfg, &format!("LABEL {}", shown.join(" ")))
            }
            Command::Maintainer(m) => {
                let m = self.expand(ins, m, &vars)?;
                cfg["author"] = json!(m);
                self.meta_commit(st, cfg, &format!("MAINTAINER {m}"))
            }
            Command::User(u) => {
                let u = self.expand(ins, u, &vars)?;
                c["User"] = json!(u);
                self.meta_commit(st, cfg, &format!("USER {u}"))
            }
            Command::StopSignal(s) => {
                let s = self.expand(ins, s, &vars)?;
                if !valid_signal(&s) {
                    return Err(step_err(ins, format!("Invalid signal: {s}")));
                }
                c["StopSignal"] = json!(s);
                self.meta_commit(st, cfg, &format!("STOPSIGNAL {s}"))
            }
            Command::Expose(words) => {
                let mut ports = Vec::new();
                for w in words {
                    for p in self.expand_words(ins, w, &vars)? {
                        ports.push(normalize_port(&p).map_err(|e| step_err(ins, e))?);
                    }
                }
                if !c["ExposedPorts"].is_object() {
                    c["ExposedPorts"] = json!({});
                }
                for p in &ports {
                    cfg["config"]["ExposedPorts"][p] = json!({});
                }
                self.meta_commit(st, cfg, &format!("EXPOSE {}", ports.join(" ")))
            }
            Command::Volume(list) => {
                let mut vols = Vec::new();
                for w in list {
                    let v = self.expand(ins, w, &vars)?;
                    if v.trim().is_empty() {
                        return Err(step_err(ins, "VOLUME specified can not be an empty string"));
                    }
                    vols.push(v);
                }
                if !c["Volumes"].is_object() {
                    c["Volumes"] = json!({});
                }
                for v in &vols {
                    cfg["config"]["Volumes"][v] = json!({});
                }
                self.meta_commit(st, cfg, &format!("VOLUME [{}]", vols.join(" ")))
            }
            Command::Shell(v) => {
                c["Shell"] = json!(v);
                self.meta_commit(st, cfg, &format!("SHELL {}", json!(v)))
            }
            Command::Cmd(form) => {
                let argv = self.argv(st, form);
                c["Cmd"] = json!(argv);
                st.cmd_set = true;
                let shown = json!(argv).to_string();
                self.meta_commit(st, cfg, &format!("CMD {shown}"))
            }
            Command::Entrypoint(form) => {
                let argv = self.argv(st, form);
                c["Entrypoint"] = json!(argv);
                if !st.cmd_set {
                    c["Cmd"] = Value::Null;
                }
                let shown = json!(argv).to_string();
                self.meta_commit(st, cfg, &format!("ENTRYPOINT {shown}"))
            }
            Command::Healthcheck(h) => {
                c["Healthcheck"] = health_json(h.as_ref());
                let text = ins
                    .original
                    .split_once(char::is_whitespace)
                    .map(|x| x.1)
                    .unwrap_or("")
                    .trim();
                self.meta_commit(st, cfg, &format!("HEALTHCHECK {text}"))
            }
            Command::Onbuild(trigger) => {
                let text = trigger.text_with_heredocs();
                if !c["OnBuild"].is_array() {
                    c["OnBuild"] = json!([]);
                }
                if let Some(a) = cfg["config"]["OnBuild"].as_array_mut() {
                    a.push(json!(text));
                }
                self.meta_commit(st, cfg, &format!("ONBUILD {text}"))
            }
            Command::Workdir(w) => {
                let w = self.expand(ins, w, &vars)?;
                let cur = c["WorkingDir"].as_str().unwrap_or("/").to_string();
                let abs = if w.starts_with('/') {
                    copy::clean_abs(&w)
                } else {
                    copy::clean_abs(&format!("{cur}/{w}"))
                };
                c["WorkingDir"] = json!(abs);
                self.workdir(ins, st, cfg, &abs)
            }
            Command::Run {
                cmd,
                heredocs,
                flags,
            } => self.run(ins, st, cmd, heredocs, flags),
            Command::Copy {
                srcs,
                dest,
                from,
                chown,
                chmod,
                heredocs,
                ..
            } => self.copy(
                ins,
                st,
                CopyArgs {
                    add: false,
                    srcs,
                    dest,
                    from: from.as_deref(),
                    chown: chown.as_deref(),
                    chmod: chmod.as_deref(),
                    heredocs,
                },
                &vars,
                stages,
            ),
            Command::Add {
                srcs,
                dest,
                chown,
                chmod,
                checksum,
                heredocs,
                ..
            } => {
                if checksum.is_some() {
                    return Err(step_err(
                        ins,
                        "ADD --checksum needs a URL source, and there is no network here",
                    ));
                }
                self.copy(
                    ins,
                    st,
                    CopyArgs {
                        add: true,
                        srcs,
                        dest,
                        from: None,
                        chown: chown.as_deref(),
                        chmod: chmod.as_deref(),
                        heredocs,
                    },
                    &vars,
                    stages,
                )
            }
        }
    }

    /// The argv of a shell- or exec-form command: the stage's SHELL (default `/bin/sh -c`)
    /// with the text, or the JSON array as is.
    fn argv(&self, st: &State, form: &ShellOrExec) -> Vec<String> {
        match form {
            ShellOrExec::Exec(v) => v.clone(),
            ShellOrExec::Shell(text) => {
                let mut v = self.shell(st);
                v.push(text.clone());
                v
            }
        }
    }

    fn shell(&self, st: &State) -> Vec<String> {
        let s = strings(&st.config["config"]["Shell"]);
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    /// A new image over the same layers with `config`; cached like every step so that an
    /// unchanged Dockerfile yields the same image ids.
    fn meta_commit(
        &mut self,
        st: &mut State,
        mut config: Value,
        text: &str,
    ) -> Result<(), BuildError> {
        let created_by = format!("/bin/sh -c #(nop)  {text}");
        let key = hash(&[
            st.id.as_str(),
            "meta",
            &created_by,
            &config["config"].to_string(),
        ]);
        if self.cached(st, &key)? {
            return Ok(());
        }
        push_history(&mut config, &created_by, true);
        let layers = st.layers.clone();
        self.commit(st, config, layers, &key)
    }

    /// Uses the cached image for `key` when there is one (and the build allows it).
    fn cached(&mut self, st: &mut State, key: &str) -> Result<bool, BuildError> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let Some(id) = self.backend.cache_get(key) else {
            return Ok(false);
        };
        let Ok(next) = self.load(&id) else {
            return Ok(false);
        };
        let args = std::mem::take(&mut st.args);
        let cmd_set = st.cmd_set;
        *st = next;
        st.args = args;
        st.cmd_set = cmd_set;
        self.say(" ---> Using cache\n".into());
        self.say(format!(" ---> {}\n", &st.id.hex()[..12]));
        Ok(true)
    }

    fn commit(
        &mut self,
        st: &mut State,
        mut config: Value,
        layers: Vec<Descriptor>,
        key: &str,
    ) -> Result<(), BuildError> {
        config["created"] = json!(now());
        let (manifest, id) = self
            .backend
            .images()
            .write_image(&config, layers.clone(), Some(&st.id))
            .map_err(|e| BuildError::Backend(format!("writing the step's image: {e}")))?;
        self.backend.cache_put(key, &id);
        self.say(format!(" ---> {}\n", &id.hex()[..12]));
        st.id = id;
        st.manifest = manifest;
        st.config = config;
        st.layers = layers;
        Ok(())
    }

    /// Commit a container's changes as the step's layer.
    fn commit_container(
        &mut self,
        st: &mut State,
        ctr: &str,
        mut config: Value,
        created_by: &str,
        key: &str,
    ) -> Result<(), BuildError> {
        let (desc, diff_id) = self.backend.diff(ctr)?;
        if !config["rootfs"].is_object() {
            config["rootfs"] = json!({"type": "layers", "diff_ids": []});
        }
        if !config["rootfs"]["diff_ids"].is_array() {
            config["rootfs"]["diff_ids"] = json!([]);
        }
        if let Some(a) = config["rootfs"]["diff_ids"].as_array_mut() {
            a.push(json!(diff_id.to_string()));
        }
        push_history(&mut config, created_by, false);
        let mut layers = st.layers.clone();
        layers.push(desc);
        self.commit(st, config, layers, key)
    }

    fn workdir(
        &mut self,
        ins: &Instruction,
        st: &mut State,
        cfg: Value,
        dir: &str,
    ) -> Result<(), BuildError> {
        let created_by = format!("/bin/sh -c #(nop) WORKDIR {dir}");
        let key = hash(&[
            st.id.as_str(),
            "workdir",
            &created_by,
            &cfg["config"].to_string(),
        ]);
        if self.cached(st, &key)? {
            return Ok(());
        }
        let ctr = self
            .backend
            .create(&st.id, &self.run_spec(st, vec!["true".into()]))?;
        let result = (|| {
            let exists = self.backend.resolve(&ctr, dir)?.is_some();
            if exists {
                let mut cfg = cfg.clone();
                push_history(&mut cfg, &created_by, true);
                let layers = st.layers.clone();
                return self.commit(st, cfg, layers, &key);
            }
            let (anchor, missing) = self.missing_dirs(&ctr, dir)?;
            let mut w = TarWriter::new(Vec::new());
            for m in &missing {
                w.dir(m, Attrs::default())
                    .map_err(|e| step_err(ins, format!("creating {dir}: {e}")))?;
            }
            let bytes = w
                .finish()
                .map_err(|e| step_err(ins, format!("creating {dir}: {e}")))?;
            self.backend.put(&ctr, &anchor, &mut &bytes[..])?;
            self.commit_container(st, &ctr, cfg.clone(), &created_by, &key)
        })();
        self.backend.remove(&ctr);
        result
    }

    /// The deepest existing directory above (or at) `path` in the container, and the
    /// directories to create below it, as paths relative to it, outermost first.
    fn missing_dirs(&self, ctr: &str, path: &str) -> Result<(String, Vec<String>), BuildError> {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        for k in (0..=comps.len()).rev() {
            let p = format!("/{}", comps[..k].join("/"));
            if let Some(host) = self.backend.resolve(ctr, &p)? {
                if !host.is_dir() {
                    return Err(BuildError::Invalid(format!(
                        "{p} is not a directory in the image"
                    )));
                }
                let missing = (k + 1..=comps.len())
                    .map(|j| comps[k..j].join("/"))
                    .collect();
                return Ok((p, missing));
            }
        }
        Ok(("/".into(), Vec::new()))
    }

    fn run_spec(&self, st: &State, argv: Vec<String>) -> RunSpec {
        let envs = env_map(&st.config);
        let mut env = Vec::new();
        for (k, v) in &st.args {
            if let Some(v) = v {
                if !envs.contains_key(k) {
                    env.push(format!("{k}={v}"));
                }
            }
        }
        for k in PREDEFINED_ARGS {
            if let Some(Some(v)) = self.opts.build_args.get(*k) {
                if !st.args.contains_key(*k) {
                    env.push(format!("{k}={v}"));
                }
            }
        }
        RunSpec {
            argv,
            env,
            network: self.opts.network.clone(),
        }
    }

    fn run(
        &mut self,
        ins: &Instruction,
        st: &mut State,
        cmd: &ShellOrExec,
        heredocs: &[Heredoc],
        flags: &[(String, String)],
    ) -> Result<(), BuildError> {
        if let Some((k, _)) = flags.iter().find(|(k, _)| k != "network") {
            return Err(step_err(
                ins,
                format!("RUN --{k} is not supported by this builder"),
            ));
        }
        let mut spec_net = self.opts.network.clone();
        if let Some((_, v)) = flags.iter().find(|(k, _)| k == "network") {
            spec_net = Some(match v.as_str() {
                "default" => "default".into(),
                "none" | "host" => v.clone(),
                other => return Err(step_err(ins, format!("unsupported RUN --network={other}"))),
            });
        }
        let argv = match (cmd, heredocs) {
            (ShellOrExec::Shell(text), [doc]) if is_bare_heredoc(text) => {
                let mut v = self.shell(st);
                v.push(doc.content.clone());
                v
            }
            (ShellOrExec::Shell(text), docs) if !docs.is_empty() => {
                // The shell reads the heredocs itself.
                let mut script = text.clone();
                for d in docs {
                    script.push('\n');
                    script.push_str(&d.content);
                    script.push_str(&d.name);
                }
                let mut v = self.shell(st);
                v.push(script);
                v
            }
            _ => self.argv(st, cmd),
        };
        let mut spec = self.run_spec(st, argv.clone());
        spec.network = spec_net;
        // docker shows the build args a RUN saw in front of its command.
        let mut args_env: Vec<String> = spec
            .env
            .iter()
            .filter(|e| {
                let k = e.split_once('=').map(|x| x.0).unwrap_or(e);
                !PREDEFINED_ARGS.contains(&k)
            })
            .cloned()
            .collect();
        args_env.sort();
        let shown = argv.join(" ");
        let created_by = if args_env.is_empty() {
            shown.clone()
        } else {
            format!("|{} {} {shown}", args_env.len(), args_env.join(" "))
        };
        let key = hash(&[
            st.id.as_str(),
            "run",
            &json!(argv).to_string(),
            &args_env.join("\n"),
            spec.network.as_deref().unwrap_or(""),
        ]);
        if self.cached(st, &key)? {
            return Ok(());
        }
        let ctr = self.backend.create(&st.id, &spec)?;
        self.say(format!(" ---> Running in {}\n", &ctr[..12.min(ctr.len())]));
        let result = (|| {
            let mut buf: Vec<u8> = Vec::new();
            let out = &mut *self.out;
            let code = self.backend.run(&ctr, &mut |bytes: &[u8]| {
                buf.extend_from_slice(bytes);
                // Whole lines as they come; the rest when the step ends.
                if let Some(i) = buf.iter().rposition(|b| *b == b'\n') {
                    let rest = buf.split_off(i + 1);
                    out(Message::Stream(String::from_utf8_lossy(&buf).into_owned()));
                    buf = rest;
                }
            })?;
            if !buf.is_empty() {
                (self.out)(Message::Stream(String::from_utf8_lossy(&buf).into_owned()));
            }
            if code != 0 {
                return Err(BuildError::RunFailed {
                    line: ins.line,
                    command: shown.clone(),
                    code,
                });
            }
            let cfg = st.config.clone();
            self.commit_container(st, &ctr, cfg, &created_by, &key)
        })();
        self.backend.remove(&ctr);
        if result.is_ok() {
            self.say(format!(
                "Removing intermediate container {}\n",
                &ctr[..12.min(ctr.len())]
            ));
        }
        result
    }
}

struct CopyArgs<'a> {
    add: bool,
    srcs: &'a [String],
    dest: &'a str,
    from: Option<&'a str>,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    heredocs: &'a [Heredoc],
}

impl Builder<'_> {
    fn copy(
        &mut self,
        ins: &Instruction,
        st: &mut State,
        a: CopyArgs<'_>,
        vars: &BTreeMap<String, String>,
        stages: &[Built],
    ) -> Result<(), BuildError> {
        let what = if a.add { "ADD" } else { "COPY" };
        let cerr = |e: CopyError| step_err(ins, format!("{what} failed: {e}"));
        let dest_raw = self.expand(ins, a.dest, vars)?;
        let workdir = st.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .to_string();
        let dir_form = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let dest = if dest_raw.starts_with('/') {
            copy::clean_abs(&dest_raw)
        } else {
            copy::clean_abs(&format!("{workdir}/{dest_raw}"))
        };
        let chmod = match a.chmod {
            Some(m) => {
                let m = self.expand(ins, m, vars)?;
                Some(
                    u32::from_str_radix(&m, 8)
                        .ok()
                        .filter(|v| *v <= 0o7777)
                        .ok_or_else(|| {
                            step_err(ins, format!("invalid --chmod={m}: not an octal mode"))
                        })?,
                )
            }
            None => None,
        };
        let chown = a.chown.map(|c| self.expand(ins, c, vars)).transpose()?;

        // Where the files come from: another stage or image (which never changes, so its id
        // and the paths are the cache key), or the context (whose content is hashed, once
        // per context digest and source list).
        let heredoc_names: BTreeSet<&str> = a.heredocs.iter().map(|h| h.name.as_str()).collect();
        let from_id: Option<Digest> = match a.from {
            Some(f) => {
                let f = self.expand(ins, f, vars)?;
                Some(
                    if let Some(s) = stages.iter().find(|s| {
                        s.name
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&f))
                    }) {
                        s.id.clone()
                    } else if let Some(s) = f.parse::<usize>().ok().and_then(|i| stages.get(i)) {
                        s.id.clone()
                    } else {
                        self.backend
                            .images()
                            .resolve(&f)
                            .map_err(|_| {
                                step_err(
                                    ins,
                                    format!("invalid from flag value {f}: no such stage or image"),
                                )
                            })?
                            .id
                    },
                )
            }
            None => None,
        };
        let mut srcs: Vec<String> = Vec::new();
        let mut docs: Vec<&Heredoc> = Vec::new();
        for s in a.srcs {
            if heredoc_names.contains(s.as_str()) {
                if let Some(h) = a.heredocs.iter().find(|h| &h.name == s) {
                    docs.push(h);
                }
                continue;
            }
            let s = self.expand(ins, s, vars)?;
            if a.add && (s.contains("://") || s.starts_with("git@")) {
                return Err(step_err(
                    ins,
                    format!("ADD from a URL ({s}) is not supported: this builder has no network access; download it into the build context and ADD it from there"),
                ));
            }
            srcs.push(s);
        }
        let ignore = if from_id.is_some() {
            None
        } else {
            self.ctx.ignore()
        };
        let find_all = |root: &Path| -> Result<Vec<(String, Vec<Source>)>, BuildError> {
            srcs.iter()
                .map(|s| {
                    copy::find_sources(root, s, ignore)
                        .map(|f| (s.clone(), f))
                        .map_err(cerr)
                })
                .collect()
        };
        let content = match &from_id {
            Some(id) => hash(&["from", id.as_str(), &srcs.join("\0")]),
            None if srcs.is_empty() => String::new(),
            None => {
                let memo = hash(&["sources", what, self.ctx.digest(), &srcs.join("\0")]);
                match self.backend.memo_get(&memo) {
                    Some(h) => h,
                    None => {
                        let root = self.ctx.root()?;
                        let all: Vec<Source> =
                            find_all(&root)?.into_iter().flat_map(|(_, v)| v).collect();
                        let h = copy::hash_sources(&all, ignore).map_err(cerr)?;
                        self.backend.memo_put(&memo, &h);
                        h
                    }
                }
            }
        };
        let mut doc_hash = String::new();
        for d in &docs {
            doc_hash.push_str(&hash(&[&d.name, &d.content, &d.expand.to_string()]));
        }
        let key = hash(&[
            st.id.as_str(),
            what,
            from_id.as_ref().map(|d| d.as_str()).unwrap_or(""),
            &content,
            &doc_hash,
            &dest,
            &dir_form.to_string(),
            chown.as_deref().unwrap_or(""),
            &format!("{chmod:?}"),
            &st.config["config"].to_string(),
        ]);
        if self.cached(st, &key)? {
            return Ok(());
        }
        let mut from_ctr: Option<String> = None;
        let root: PathBuf = match &from_id {
            Some(id) => {
                let ctr = self
                    .backend
                    .create(id, &self.run_spec(st, vec!["true".into()]))?;
                let root = self.backend.resolve(&ctr, "/");
                from_ctr = Some(ctr.clone());
                match root {
                    Ok(Some(r)) => r,
                    other => {
                        self.backend.remove(&ctr);
                        other?;
                        return Err(step_err(ins, "the source stage has no root filesystem"));
                    }
                }
            }
            None => self.ctx.root()?,
        };
        let result = (|| {
            let sources = find_all(&root)?;
            let count: usize = sources.iter().map(|(_, v)| v.len()).sum::<usize>() + docs.len();
            if count == 0 {
                return Err(cerr(CopyError::NoMatch));
            }
            let all: Vec<Source> = sources.iter().flat_map(|(_, v)| v.clone()).collect();
            let kind = if all.len() == 1 && all[0].is_dir {
                "dir"
            } else {
                "file"
            };
            let created_by = format!(
                "/bin/sh -c #(nop) {what} {kind}:{} in {dest} ",
                &hash(&[&content, &doc_hash])[..64]
            );
            let multi = count > 1;
            if multi && !dir_form {
                return Err(step_err(
                    ins,
                    format!("When using {what} with more than one source file, the destination must be a directory and end with a /"),
                ));
            }
            let ctr = self
                .backend
                .create(&st.id, &self.run_spec(st, vec!["true".into()]))?;
            let r = (|| {
                let owner = match &chown {
                    Some(spec) => Some(self.owner(ins, &ctr, spec)?),
                    None => None,
                };
                let attrs = Attrs { owner, mode: chmod };
                // Is the destination a directory?
                let dest_host = self.backend.resolve(&ctr, &dest)?;
                let dest_is_dir = dest_host.as_ref().is_some_and(|h| h.is_dir());
                let into_dir = dir_form
                    || multi
                    || dest_is_dir
                    || (all.len() == 1 && all[0].is_dir && docs.is_empty());
                let target_dir = if into_dir {
                    dest.clone()
                } else {
                    parent_of(&dest)
                };
                let (anchor, missing) = self
                    .missing_dirs(&ctr, &target_dir)
                    .map_err(|e| step_err(ins, e))?;
                let tmp = tempfile::tempfile_in(self.ctx.scratch())
                    .map_err(|e| step_err(ins, format!("scratch file: {e}")))?;
                let mut w = TarWriter::new(std::io::BufWriter::new(tmp));
                // New directories belong to the --chown owner, like the files.
                let dir_attrs = Attrs { owner, mode: None };
                for m in &missing {
                    w.dir(m, dir_attrs).map_err(|e| step_err(ins, e))?;
                }
                let below = |name: &str| -> String {
                    let base = missing.last().cloned().unwrap_or_default();
                    match (base.is_empty(), name.is_empty()) {
                        (true, _) => name.to_string(),
                        (false, true) => base,
                        (false, false) => format!("{base}/{name}"),
                    }
                };
                let mut archives: Vec<PathBuf> = Vec::new();
                for s in &all {
                    let name = if s.is_dir {
                        // A directory's contents go into the target.
                        below("")
                    } else if into_dir {
                        below(s.rel.rsplit('/').next().unwrap_or(&s.rel))
                    } else {
                        below(dest.rsplit('/').next().unwrap_or(""))
                    };
                    if a.add && !s.is_dir && copy::is_archive(&s.host) {
                        archives.push(s.host.clone());
                        continue;
                    }
                    w.source(s, &name, attrs, ignore).map_err(cerr)?;
                }
                for d in &docs {
                    let body = if d.expand {
                        Lexer::default()
                            .expand_keep_quotes(&d.content, vars)
                            .map_err(|e| step_err(ins, e))?
                    } else {
                        d.content.clone()
                    };
                    let name = if into_dir {
                        below(&d.name)
                    } else {
                        below(dest.rsplit('/').next().unwrap_or(""))
                    };
                    w.file(&name, body.as_bytes(), attrs)
                        .map_err(|e| step_err(ins, e))?;
                }
                let mut f = w
                    .finish()
                    .and_then(|b| b.into_inner().map_err(|e| e.into_error()))
                    .map_err(|e| step_err(ins, format!("scratch file: {e}")))?;
                f.flush().map_err(|e| step_err(ins, e))?;
                f.rewind().map_err(|e| step_err(ins, e))?;
                self.backend.put(&ctr, &anchor, &mut f)?;
                // ADD: local archives are unpacked into the target directory.
                for arch in archives {
                    let dir = if into_dir {
                        dest.clone()
                    } else {
                        target_dir.clone()
                    };
                    let mut f = fs::File::open(&arch).map_err(|e| step_err(ins, e))?;
                    self.backend
                        .put(&ctr, &dir, &mut f)
                        .map_err(|e| step_err(ins, format!("unpacking {}: {e}", arch.display())))?;
                }
                let cfg = st.config.clone();
                self.commit_container(st, &ctr, cfg, &created_by, &key)
            })();
            self.backend.remove(&ctr);
            r
        })();
        if let Some(c) = from_ctr {
            self.backend.remove(&c);
        }
        result
    }

    /// `--chown=user[:group]` as ids, names looked up in the image's /etc/passwd and group.
    fn owner(&self, ins: &Instruction, ctr: &str, spec: &str) -> Result<(u32, u32), BuildError> {
        let read = |p: &str| -> Result<String, BuildError> {
            Ok(match self.backend.resolve(ctr, p)? {
                Some(h) => fs::read_to_string(h).unwrap_or_default(),
                None => String::new(),
            })
        };
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let passwd = read("/etc/passwd")?;
        let lookup = |file: &str, name: &str| -> Option<(u32, u32)> {
            file.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 4 && f[0] == name)
                    .then(|| (f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0)))
            })
        };
        let (uid, primary) = match user.parse::<u32>() {
            Ok(u) => (u, lookup(&passwd, user).map(|x| x.1).unwrap_or(u)),
            Err(_) => lookup(&passwd, user).ok_or_else(|| {
                step_err(ins, format!("unable to convert uid/gid chown string to host mapping: no such user: {user}"))
            })?,
        };
        let gid = match group {
            None => {
                if user.parse::<u32>().is_ok() {
                    uid
                } else {
                    primary
                }
            }
            Some(g) => match g.parse::<u32>() {
                Ok(g) => g,
                Err(_) => {
                    let groups = read("/etc/group")?;
                    groups
                        .lines()
                        .find_map(|l| {
                            let f: Vec<&str> = l.split(':').collect();
                            (f.len() >= 3 && f[0] == g).then(|| f[2].parse().ok())?
                        })
                        .ok_or_else(|| {
                            step_err(ins, format!("unable to convert uid/gid chown string to host mapping: no such group: {g}"))
                        })?
                }
            },
        };
        Ok((uid, gid))
    }
}

fn is_bare_heredoc(text: &str) -> bool {
    let t = text.trim();
    t.starts_with("<<") && !t.contains(char::is_whitespace)
}

fn parent_of(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].to_string(),
    }
}

fn push_history(config: &mut Value, created_by: &str, empty: bool) {
    if !config["history"].is_array() {
        config["history"] = json!([]);
    }
    let mut h = json!({"created": now(), "created_by": created_by});
    if empty {
        h["empty_layer"] = json!(true);
    }
    if let Some(a) = config["history"].as_array_mut() {
        a.push(h);
    }
}

fn health_json(h: Option<&Health>) -> Value {
    let Some(h) = h else {
        return json!({"Test": ["NONE"]});
    };
    let test = match &h.test {
        ShellOrExec::Shell(s) => json!(["CMD-SHELL", s]),
        ShellOrExec::Exec(v) => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v.iter().cloned());
            json!(t)
        }
    };
    let mut out = json!({"Test": test});
    for (k, d) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if let Some(d) = d {
            if !d.is_zero() {
                out[k] = json!(d.as_nanos() as u64);
            }
        }
    }
    if let Some(r) = h.retries {
        if r != 0 {
            out["Retries"] = json!(r);
        }
    }
    out
}

/// `80` → `80/tcp`; `53/udp` stays; ranges `8000-8002` expand; anything else is refused.
fn normalize_port(p: &str) -> Result<String, String> {
    let (port, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let ok = |s: &str| s.parse::<u16>().ok().filter(|v| *v > 0);
    match port.split_once('-') {
        Some((a, b)) => match (ok(a), ok(b)) {
            (Some(x), Some(y)) if x <= y => Ok(format!("{x}-{y}/{proto}")),
            _ => Err(format!("invalid range format for --expose: {p}")),
        },
        None => ok(port)
            .map(|v| format!("{v}/{proto}"))
            .ok_or_else(|| format!("invalid containerPort: {port}")),
    }
}

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    NAMES.contains(&name)
        || name
            .strip_prefix("RTMIN")
            .or_else(|| name.strip_prefix("RTMAX"))
            .is_some_and(|r| r.is_empty() || r.trim_start_matches(['+', '-']).parse::<u8>().is_ok())
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_normalize() {
        assert_eq!(normalize_port("80").unwrap(), "80/tcp");
        assert_eq!(normalize_port("53/UDP").unwrap(), "53/udp");
        assert_eq!(normalize_port("8000-8002").unwrap(), "8000-8002/tcp");
        assert!(normalize_port("http").is_err());
        assert!(normalize_port("80/foo").is_err());
        assert!(normalize_port("0").is_err());
    }

    #[test]
    fn signals_validate() {
        assert!(valid_signal("SIGTERM"));
        assert!(valid_signal("KILL"));
        assert!(valid_signal("9"));
        assert!(valid_signal("SIGRTMIN+3"));
        assert!(!valid_signal("SIGFOO"));
        assert!(!valid_signal("0"));
    }

    #[test]
    fn env_is_replaced_in_place() {
        let mut c = json!({"config": {"Env": ["PATH=/bin", "A=1"]}});
        set_env(&mut c, "A", "2");
        set_env(&mut c, "B", "x y");
        assert_eq!(c["config"]["Env"], json!(["PATH=/bin", "A=2", "B=x y"]));
        assert_eq!(env_map(&c)["B"], "x y");
    }

    #[test]
    fn healthcheck_is_dockers_json() {
        let h = Health {
            test: ShellOrExec::Shell("true".into()),
            interval: Some(std::time::Duration::from_secs(5)),
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: Some(3),
        };
        assert_eq!(
            health_json(Some(&h)),
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64, "Retries": 3})
        );
        assert_eq!(health_json(None), json!({"Test": ["NONE"]}));
    }

    #[test]
    fn bare_heredocs_are_recognised() {
        assert!(is_bare_heredoc("<<EOF"));
        assert!(is_bare_heredoc(" <<-'EOF' "));
        assert!(!is_bare_heredoc("cat <<EOF > /x"));
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
    }
}
