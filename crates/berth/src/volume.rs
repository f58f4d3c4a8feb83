//! Volume verbs: create, ls, inspect, rm, prune.

use std::collections::BTreeMap;

use berth_api::client::{encode_component, with_query};
use berth_api::types::{Volume, VolumeCreateRequest, VolumeListResponse, VolumesPruneResponse};
use berth_api::{Client, Filters};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::container::{confirm, print_inspect};
use crate::format::{self, human_size, Format};
use crate::{client_message, Failure, Result};

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Set driver specific options
    #[arg(short, long = "opt")]
    opt: Vec<String>,
    /// Set metadata for a volume
    #[arg(long = "label")]
    label: Vec<String>,
    name: Option<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
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
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values
    #[arg(long = "filter")]
    filter: Vec<String>,
}

pub fn run(c: &Client, cmd: VolumeCommand) -> Result<()> {
    match cmd {
        VolumeCommand::Create(a) => create(c, &a),
        VolumeCommand::Ls(a) => ls(c, &a),
        VolumeCommand::Inspect(a) => inspect(c, &a),
        VolumeCommand::Rm(a) => rm(c, &a),
        VolumeCommand::Prune(a) => prune(c, &a),
    }
}

fn key_values(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn filters(flags: &[String]) -> Result<Filters> {
    let mut f = Filters::new();
    for flag in flags {
        let (k, v) = flag.split_once('=').ok_or_else(|| {
            Failure::new(format!(
                "bad format of filter (expected name=value): {flag}"
            ))
        })?;
        f.add(k, v);
    }
    Ok(f)
}

fn create(c: &Client, a: &CreateArgs) -> Result<()> {
    let body = VolumeCreateRequest {
        name: a.name.clone().unwrap_or_default(),
        driver: a.driver.clone(),
        driver_opts: Some(key_values(&a.opt)),
        labels: Some(key_values(&a.label)),
    };
    let v: Volume = c.post("/volumes/create", &body)?;
    outln!("{}", v.name);
    Ok(())
}

fn ls(c: &Client, a: &LsArgs) -> Result<()> {
    let f = filters(&a.filter)?;
    let path = if f.is_empty() {
        "/volumes".to_string()
    } else {
        with_query("/volumes", &[("filters", &f.to_json())])
    };
    let list: VolumeListResponse = c.get(&path)?;
    for w in &list.warnings {
        eprintln!("WARNING: {w}");
    }
    if a.quiet {
        let mut out = String::new();
        for v in &list.volumes {
            out.push_str(&v.name);
            out.push('\n');
        }
        format::print(&out);
        return Ok(());
    }
    let items: Vec<Value> = list
        .volumes
        .iter()
        .map(|v| {
            json!({
                "Driver": v.driver,
                "Name": v.name,
                "Mountpoint": v.mountpoint,
                "Scope": v.scope,
                "CreatedAt": v.created_at,
                "Labels": v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                "Size": v.usage_data.as_ref().filter(|u| u.size >= 0).map(|u| human_size(u.size as f64)).unwrap_or_else(|| "N/A".into()),
            })
        })
        .collect();
    let title = |f: &str| match f {
        "Name" => "VOLUME NAME".to_string(),
        other => other.to_uppercase(),
    };
    let text = format::render(
        &items,
        &Format::parse(a.format.as_deref()),
        "{{.Driver}}\t{{.Name}}",
        &title,
    )?;
    format::print(&text);
    Ok(())
}

fn inspect(c: &Client, a: &InspectArgs) -> Result<()> {
    let mut docs = Vec::new();
    let mut failed = false;
    for n in &a.names {
        match c.get::<Value>(&format!("/volumes/{}", encode_component(n))) {
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

fn rm(c: &Client, a: &RmArgs) -> Result<()> {
    let mut failed = false;
    for n in &a.names {
        let mut path = format!("/volumes/{}", encode_component(n));
        if a.force {
            path.push_str("?force=1");
        }
        match c.delete(&path) {
            Ok(_) => outln!("{n}"),
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

fn prune(c: &Client, a: &PruneArgs) -> Result<()> {
    if !a.force
        && !confirm("This will remove anonymous local volumes not used by at least one container.")
    {
        return Ok(());
    }
    let mut f = filters(&a.filter)?;
    if a.all {
        f.add("all", "true");
    }
    let r: VolumesPruneResponse =
        c.post(&crate::format::prune_path("/volumes/prune", &f), &json!({}))?;
    crate::format::print_pruned(
        "Deleted Volumes:",
        &r.volumes_deleted.unwrap_or_default(),
        r.space_reclaimed as u64,
    );
    Ok(())
}
