//! Service verbs of swarm mode: `ls` (docker's), and `autoscale` (Berth's own: CPU
//! autoscaling of a replicated service, kept in its `berth.autoscale.*` labels so the
//! docker CLI shows it and the manager acts on it).

use berth_api::client::{encode_component, with_query};
use berth_api::{Client, Filters};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::format::{self, Format};
use crate::{Failure, Result};

/// The labels `autoscale` sets (berth-cluster's `autoscale` module reads them).
const LABEL_PREFIX: &str = "berth.autoscale.";

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// List services
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Scale a replicated service between a minimum and a maximum on its replicas' average
    /// CPU usage (Berth's own verb)
    Autoscale(AutoscaleArgs),
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    quiet: bool,
    /// Filter output based on conditions provided (id, label, mode, name)
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct AutoscaleArgs {
    /// Fewest replicas (at least 1)
    #[arg(long, value_name = "N", required_unless_present = "off")]
    min: Option<u64>,
    /// Most replicas
    #[arg(long, value_name = "M", required_unless_present = "off")]
    max: Option<u64>,
    /// Target CPU usage per replica, in percent of one CPU, averaged over the replicas
    #[arg(
        long = "cpu-percent",
        value_name = "P",
        required_unless_present = "off"
    )]
    cpu_percent: Option<f64>,
    /// How long the load must stay low before a scale-down (e.g. 30s, 5m; default 5m)
    #[arg(long, value_name = "DURATION")]
    window: Option<String>,
    /// Stop autoscaling (the replicas stay as they are)
    #[arg(long, conflicts_with_all = ["min", "max", "cpu_percent", "window"])]
    off: bool,
    /// The service (name or ID)
    service: String,
}

pub fn run(c: &Client, cmd: ServiceCommand) -> Result<()> {
    match cmd {
        ServiceCommand::Ls(a) => ls(c, &a),
        ServiceCommand::Autoscale(a) => autoscale(c, &a),
    }
}

/// The `berth.autoscale.*` labels for these flags; empty for `--off`.
fn autoscale_labels(a: &AutoscaleArgs) -> Vec<(String, String)> {
    let (Some(min), Some(max), Some(cpu)) = (a.min, a.max, a.cpu_percent) else {
        return Vec::new();
    };
    let mut l = vec![
        (format!("{LABEL_PREFIX}min"), min.to_string()),
        (format!("{LABEL_PREFIX}max"), max.to_string()),
        (format!("{LABEL_PREFIX}cpu"), cpu.to_string()),
    ];
    if let Some(w) = &a.window {
        l.push((format!("{LABEL_PREFIX}window"), w.clone()));
    }
    l
}

/// The spec with its autoscaling labels replaced by `labels`; `None` when nothing changes.
fn with_labels(spec: &Value, labels: &[(String, String)]) -> Option<Value> {
    let mut spec = spec.clone();
    let old: Map<String, Value> = spec
        .get("Labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut new: Map<String, Value> = old
        .iter()
        .filter(|(k, _)| !k.starts_with(LABEL_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in labels {
        new.insert(k.clone(), Value::String(v.clone()));
    }
    if new == old {
        return None;
    }
    spec["Labels"] = Value::Object(new);
    Some(spec)
}

/// Reads the service, replaces its autoscaling labels and updates it at the version read;
/// the manager's own autoscaler may change the version meanwhile (a scale), so a stale
/// version is read again, a few times.
fn autoscale(c: &Client, a: &AutoscaleArgs) -> Result<()> {
    let labels = autoscale_labels(a);
    let path = format!("/services/{}", encode_component(&a.service));
    let mut tries = 0;
    loop {
        tries += 1;
        let svc: Value = c.get(&path)?;
        let id = svc["ID"].as_str().unwrap_or_default().to_string();
        let version = svc["Version"]["Index"].as_u64().unwrap_or_default();
        let Some(spec) = with_labels(&svc["Spec"], &labels) else {
            outln!("{}", a.service);
            return Ok(());
        };
        let update = with_query(
            &format!("/services/{}/update", encode_component(&id)),
            &[("version", &version.to_string())],
        );
        match c.post::<_, Value>(&update, &spec) {
            Ok(resp) => {
                for w in resp["Warnings"].as_array().into_iter().flatten() {
                    eprintln!("{}", w.as_str().unwrap_or_default());
                }
                outln!("{}", a.service);
                return Ok(());
            }
            Err(e) if e.status() == Some(409) && tries < 5 => continue,
            Err(e) => return Err(e.into()),
        }
    }
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

/// `REPLICAS` as docker shows it (`running/desired`), with the autoscaling range when
/// the service has one.
fn replicas(svc: &Value) -> String {
    let st = &svc["ServiceStatus"];
    let mut s = format!(
        "{}/{}",
        st["RunningTasks"].as_u64().unwrap_or(0),
        st["DesiredTasks"].as_u64().unwrap_or(0)
    );
    let l = &svc["Spec"]["Labels"];
    let get = |k: &str| l[format!("{LABEL_PREFIX}{k}")].as_str().map(str::to_string);
    if let (Some(min), Some(max), Some(cpu)) = (get("min"), get("max"), get("cpu")) {
        s.push_str(&format!(
            " (autoscale {min}-{max} at {}% cpu)",
            cpu.trim_end_matches('%')
        ));
    }
    s
}

fn ports(svc: &Value) -> String {
    svc["Endpoint"]["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["PublishedPort"].as_u64().unwrap_or(0) != 0)
        .map(|p| {
            format!(
                "*:{}->{}/{}",
                p["PublishedPort"],
                p["TargetPort"],
                p["Protocol"].as_str().unwrap_or("tcp")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ls(c: &Client, a: &LsArgs) -> Result<()> {
    let f = filters(&a.filter)?;
    let mut q = vec![("status", "true".to_string())];
    if !f.is_empty() {
        q.push(("filters", f.to_json()));
    }
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut list: Vec<Value> = c.get(&with_query("/services", &q))?;
    list.sort_by(|x, y| x["Spec"]["Name"].as_str().cmp(&y["Spec"]["Name"].as_str()));
    let id = |s: &Value| s["ID"].as_str().unwrap_or_default().to_string();
    if a.quiet {
        let mut out = String::new();
        for s in &list {
            out.push_str(&id(s));
            out.push('\n');
        }
        format::print(&out);
        return Ok(());
    }
    let items: Vec<Value> = list
        .iter()
        .map(|s| {
            let image = s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
                .as_str()
                .unwrap_or_default();
            json!({
                "ID": id(s).chars().take(12).collect::<String>(),
                "Name": s["Spec"]["Name"],
                "Mode": if s["Spec"]["Mode"].get("Global").is_some() { "global" } else { "replicated" },
                "Replicas": replicas(s),
                // Docker drops the digest pin.
                "Image": image.split('@').next().unwrap_or(image),
                "Ports": ports(s),
            })
        })
        .collect();
    let text = format::render(
        &items,
        &Format::parse(a.format.as_deref()),
        "{{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}",
        &|f: &str| f.to_uppercase(),
    )?;
    format::print(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(
        min: Option<u64>,
        max: Option<u64>,
        cpu: Option<f64>,
        w: Option<&str>,
    ) -> AutoscaleArgs {
        AutoscaleArgs {
            min,
            max,
            cpu_percent: cpu,
            window: w.map(str::to_string),
            off: min.is_none(),
            service: "web".into(),
        }
    }

    #[test]
    fn labels_replace_only_the_autoscaling_ones() {
        let spec = json!({"Name": "web", "Labels": {"team": "a", "berth.autoscale.window": "1m"}});
        let on = with_labels(
            &spec,
            &autoscale_labels(&args(Some(1), Some(4), Some(12.5), None)),
        )
        .unwrap();
        assert_eq!(
            on["Labels"],
            json!({"team": "a", "berth.autoscale.min": "1", "berth.autoscale.max": "4", "berth.autoscale.cpu": "12.5"})
        );
        assert_eq!(on["Name"], "web");
        // The same again changes nothing; off drops them all.
        assert_eq!(
            with_labels(
                &on,
                &autoscale_labels(&args(Some(1), Some(4), Some(12.5), None))
            ),
            None
        );
        let off = with_labels(&on, &autoscale_labels(&args(None, None, None, None))).unwrap();
        assert_eq!(off["Labels"], json!({"team": "a"}));
        assert_eq!(with_labels(&off, &[]), None);
        // A spec without labels gets them.
        let w = with_labels(
            &json!({"Name": "web", "Labels": null}),
            &autoscale_labels(&args(Some(2), Some(3), Some(50.0), Some("30s"))),
        )
        .unwrap();
        assert_eq!(w["Labels"]["berth.autoscale.window"], "30s");
        assert_eq!(w["Labels"]["berth.autoscale.cpu"], "50");
    }

    #[test]
    fn replicas_column() {
        let s = json!({
            "ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 3},
            "Spec": {"Labels": {"berth.autoscale.min": "1", "berth.autoscale.max": "4", "berth.autoscale.cpu": "50"}}
        });
        assert_eq!(replicas(&s), "2/3 (autoscale 1-4 at 50% cpu)");
        let s = json!({"ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 1}, "Spec": {}});
        assert_eq!(replicas(&s), "1/1");
    }
}
