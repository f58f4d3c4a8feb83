//! System verbs: version, info, events, `system df`, `system prune`.

use berth_api::client::{with_query, Request};
use berth_api::types::{
    ContainersPruneResponse, EventMessage, ImagesPruneResponse, SystemDfResponse, SystemInfo,
    VersionResponse, VolumesPruneResponse,
};
use berth_api::{Client, Filters};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::container::confirm;
use crate::daemon::{self, HostChoice};
use crate::format::{self, human_size, Template};
use crate::{Failure, Result};

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
    /// Remove unused data
    Prune(PruneArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Get real time events from the server
    Events(EventsArgs),
}

#[derive(Args)]
pub struct VersionArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct InfoArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct DfArgs {
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    volumes: bool,
}

#[derive(Args)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

pub fn run(c: &Client, cmd: SystemCommand) -> Result<()> {
    match cmd {
        SystemCommand::Df(a) => df(c, &a),
        SystemCommand::Prune(a) => prune(c, &a),
        SystemCommand::Info(a) => info(c, &a),
        SystemCommand::Events(a) => events(c, &a),
    }
}

pub fn version(host: &HostChoice, a: &VersionArgs) -> Result<u8> {
    let client_part = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": berth_api::version::MAX_API,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
    });
    let server = daemon::connect(host).and_then(|c| {
        let v: VersionResponse = c.get("/version")?;
        Ok((c, v))
    });
    let doc = match &server {
        Ok((_, v)) => json!({"Client": client_part, "Server": v}),
        Err(_) => json!({"Client": client_part, "Server": null}),
    };
    if let Some(f) = &a.format {
        let text = Template::parse(f)?.render(&doc)?;
        outln!("{text}");
    } else {
        let negotiated = server
            .as_ref()
            .ok()
            .and_then(|(c, _)| c.version())
            .map(|v| v.to_string())
            .unwrap_or_else(|| berth_api::version::MAX_API.to_string());
        outln!("Client:");
        outln!(" Version:           {}", env!("CARGO_PKG_VERSION"));
        outln!(" API version:       {negotiated}");
        outln!(" OS/Arch:           {}/{}", std::env::consts::OS, go_arch());
        outln!(" Context:           {}", host.host);
        if let Ok((_, v)) = &server {
            outln!();
            outln!("Server:");
            outln!(" Engine:");
            outln!("  Version:          {}", v.version);
            outln!(
                "  API version:      {} (minimum version {})",
                v.api_version,
                v.min_api_version
            );
            outln!("  Git commit:       {}", v.git_commit);
            outln!("  OS/Arch:          {}/{}", v.os, v.arch);
            outln!("  Kernel Version:   {}", v.kernel_version);
            for comp in &v.components {
                if comp.name != "Engine" {
                    outln!(" {}:", comp.name);
                    outln!("  Version:          {}", comp.version);
                }
            }
        }
    }
    match server {
        Ok(_) => Ok(0),
        Err(e) => Err(e),
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn info(c: &Client, a: &InfoArgs) -> Result<()> {
    if let Some(f) = &a.format {
        let v: Value = c.get("/info")?;
        outln!("{}", Template::parse(f)?.render(&v)?);
        return Ok(());
    }
    let i: SystemInfo = c.get("/info")?;
    outln!("Server:");
    outln!(" Containers: {}", i.containers);
    outln!("  Running: {}", i.containers_running);
    outln!("  Paused: {}", i.containers_paused);
    outln!("  Stopped: {}", i.containers_stopped);
    outln!(" Images: {}", i.images);
    outln!(" Server Version: {}", i.server_version);
    outln!(" Storage Driver: {}", i.driver);
    outln!(" Logging Driver: {}", i.logging_driver);
    outln!(" Cgroup Driver: {}", i.cgroup_driver);
    outln!(" Cgroup Version: {}", i.cgroup_version);
    outln!(
        " Runtimes: {}",
        i.runtimes.keys().cloned().collect::<Vec<_>>().join(" ")
    );
    outln!(" Default Runtime: {}", i.default_runtime);
    outln!(" Kernel Version: {}", i.kernel_version);
    outln!(" Operating System: {}", i.operating_system);
    outln!(" OSType: {}", i.os_type);
    outln!(" Architecture: {}", i.architecture);
    outln!(" CPUs: {}", i.ncpu);
    outln!(" Total Memory: {}", format::bytes_size(i.mem_total as f64));
    outln!(" Name: {}", i.name);
    outln!(" ID: {}", i.id);
    outln!(" Docker Root Dir: {}", i.docker_root_dir);
    outln!(" Debug Mode: {}", i.debug);
    for w in i.warnings.iter().flatten() {
        eprintln!("{w}");
    }
    Ok(())
}

pub fn df(c: &Client, a: &DfArgs) -> Result<()> {
    let d: SystemDfResponse = c.get("/system/df")?;
    // The docker CLI's arithmetic (cli/command/formatter/disk_usage.go).
    let images_active = d.images.iter().filter(|i| i.containers > 0).count();
    let images_size = d.layers_size;
    let used: i64 = d
        .images
        .iter()
        .filter(|i| i.containers != 0 && i.shared_size != -1)
        .map(|i| i.virtual_size.unwrap_or(i.size) - i.shared_size)
        .sum();
    let unused_images = images_size - used;
    let running = |s: &str| matches!(s, "running" | "paused" | "restarting");
    let c_active = d.containers.iter().filter(|c| running(&c.state)).count();
    let c_size: i64 = d.containers.iter().filter_map(|c| c.size_rw).sum();
    let c_reclaim: i64 = d
        .containers
        .iter()
        .filter(|c| !running(&c.state))
        .filter_map(|c| c.size_rw)
        .sum();
    let vsize =
        |v: &berth_api::types::Volume| v.usage_data.as_ref().map(|u| u.size.max(0)).unwrap_or(0);
    let v_active = d
        .volumes
        .iter()
        .filter(|v| v.usage_data.as_ref().is_some_and(|u| u.ref_count > 0))
        .count();
    let v_size: i64 = d.volumes.iter().map(vsize).sum();
    let v_reclaim: i64 = d
        .volumes
        .iter()
        .filter(|v| v.usage_data.as_ref().is_none_or(|u| u.ref_count <= 0))
        .map(vsize)
        .sum();
    let b_size: i64 = d.build_cache.iter().map(|b| b.size).sum();
    let b_reclaim: i64 = d
        .build_cache
        .iter()
        .filter(|b| !b.in_use)
        .map(|b| b.size)
        .sum();
    let pct = |r: i64, t: i64| {
        if t > 0 {
            format!("{} ({}%)", size4(r), r * 100 / t)
        } else {
            size4(r)
        }
    };
    let rows = [
        (
            "Images",
            d.images.len(),
            images_active,
            images_size,
            pct(unused_images.max(0), images_size),
        ),
        (
            "Containers",
            d.containers.len(),
            c_active,
            c_size,
            pct(c_reclaim, c_size),
        ),
        (
            "Local Volumes",
            d.volumes.len(),
            v_active,
            v_size,
            pct(v_reclaim, v_size),
        ),
        (
            "Build Cache",
            d.build_cache.len(),
            0,
            b_size,
            human_size(b_reclaim as f64),
        ),
    ];
    let items: Vec<Value> = rows
        .iter()
        .map(|(t, total, active, size, reclaim)| {
            json!({
                "Type": t, "TotalCount": total.to_string(), "Active": active.to_string(),
                "Size": size4(*size), "Reclaimable": reclaim,
            })
        })
        .collect();
    let title = |f: &str| match f {
        "TotalCount" => "TOTAL".to_string(),
        other => other.to_uppercase(),
    };
    let text = format::render(
        &items,
        &format::Format::parse(a.format.as_deref()),
        "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        &title,
    )?;
    format::print(&text);
    Ok(())
}

/// go-units' `HumanSize` (four significant digits), which `system df` uses.
fn size4(bytes: i64) -> String {
    format::human_size_digits(bytes.max(0) as f64, 4)
}

pub fn prune(c: &Client, a: &PruneArgs) -> Result<()> {
    if !a.force {
        let mut what = String::from("This will remove:\n  - all stopped containers\n");
        if a.volumes {
            what.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        what.push_str(if a.all {
            "  - all images without at least one container associated to them\n"
        } else {
            "  - all dangling images\n"
        });
        if !confirm(what.trim_end()) {
            return Ok(());
        }
    }
    let mut reclaimed = 0u64;
    let r: ContainersPruneResponse = c.post("/containers/prune", &json!({}))?;
    reclaimed += r.space_reclaimed;
    let containers = r.containers_deleted.unwrap_or_default();
    if !containers.is_empty() {
        outln!("Deleted Containers:");
        for d in &containers {
            outln!("{d}");
        }
        outln!();
    }
    if a.volumes {
        let r: VolumesPruneResponse = c.post("/volumes/prune", &json!({}))?;
        reclaimed += r.space_reclaimed;
        let vols = r.volumes_deleted.unwrap_or_default();
        if !vols.is_empty() {
            outln!("Deleted Volumes:");
            for d in &vols {
                outln!("{d}");
            }
            outln!();
        }
    }
    let path = if a.all {
        let mut f = Filters::new();
        f.add("dangling", "false");
        with_query("/images/prune", &[("filters", &f.to_json())])
    } else {
        "/images/prune".to_string()
    };
    let r: ImagesPruneResponse = c.post(&path, &json!({}))?;
    reclaimed += r.space_reclaimed;
    let images = r.images_deleted.unwrap_or_default();
    if !images.is_empty() {
        outln!("Deleted Images:");
        for it in &images {
            if let Some(u) = &it.untagged {
                outln!("untagged: {u}");
            }
            if let Some(d) = &it.deleted {
                outln!("deleted: {d}");
            }
        }
        outln!();
    }
    outln!("Total reclaimed space: {}", human_size(reclaimed as f64));
    Ok(())
}

/// `2024-01-02T03:04:05.123456789Z`.
fn rfc3339_nano(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let t = format::go_time(secs);
    // "YYYY-MM-DD HH:MM:SS +0000 UTC" → RFC 3339.
    let date = t.get(0..10).unwrap_or("");
    let time = t.get(11..19).unwrap_or("");
    let mut f = format!("{frac:09}");
    while f.ends_with('0') {
        f.pop();
    }
    if f.is_empty() {
        format!("{date}T{time}Z")
    } else {
        format!("{date}T{time}.{f}Z")
    }
}

pub fn events(c: &Client, a: &EventsArgs) -> Result<()> {
    let mut f = Filters::new();
    for flag in &a.filter {
        let (k, v) = flag.split_once('=').ok_or_else(|| {
            Failure::new(format!(
                "bad format of filter (expected name=value): {flag}"
            ))
        })?;
        f.add(k, v);
    }
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(s) = &a.since {
        q.push(("since", format::api_time(s)?));
    }
    if let Some(u) = &a.until {
        q.push(("until", format::api_time(u)?));
    }
    if !f.is_empty() {
        q.push(("filters", f.to_json()));
    }
    let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = c.request(Request::new("GET", &with_query("/events", &pairs)))?;
    let tpl = match a.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(t) => Some(Template::parse(t)?),
    };
    for line in resp.json_lines::<Value>() {
        let v = line?;
        let text = match &tpl {
            Some(t) => t.render(&v)?,
            None => {
                let e: EventMessage = serde_json::from_value(v).unwrap_or_default();
                let nanos = if e.time_nano > 0 {
                    e.time_nano
                } else {
                    e.time * 1_000_000_000
                };
                let attrs = e
                    .actor
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut s = format!(
                    "{} {} {} {}",
                    rfc3339_nano(nanos),
                    e.r#type,
                    e.action,
                    e.actor.id
                );
                if !attrs.is_empty() {
                    s.push_str(&format!(" ({attrs})"));
                }
                s
            }
        };
        let mut out = std::io::stdout().lock();
        use std::io::Write as _;
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_times() {
        assert_eq!(
            super::rfc3339_nano(946_684_800_123_000_000),
            "2000-01-01T00:00:00.123Z"
        );
        assert_eq!(
            super::rfc3339_nano(946_684_800_000_000_000),
            "2000-01-01T00:00:00Z"
        );
    }
}
