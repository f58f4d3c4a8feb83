//! Autoscaling of replicated services on CPU, decided the way Kubernetes' HorizontalPodAutoscaler
//! decides. A service opts in with labels (so the docker CLI shows them):
//! `berth.autoscale.min`, `.max` (replicas), `.cpu` (the target: percent of one CPU per
//! replica, averaged) and `.window` (the scale-down stabilisation window, a Go duration;
//! 5m by default, as in Kubernetes).
//!
//! - Each agent reads the cumulative CPU time of its running task containers (the engine's
//!   stats, from the cgroup) every [`SAMPLE_PERIOD`] and sends each task's usage since the
//!   previous reading (CPU seconds per second: 1.0 is one whole CPU, as `docker stats`
//!   shows it) with its next heartbeat ([`Sampler`]); a container's first reading only sets
//!   its baseline.
//! - The master keeps the latest sample per task ([`Autoscaler::record`]) and, every
//!   [`SYNC_PERIOD`], evaluates each service with a policy ([`decide`]):
//!   replicas outside `[min, max]` are brought inside at once; otherwise
//!   `desired = ceil(n × average / target)` over the live tasks, nothing changes while the
//!   ratio is within [`TOLERANCE`] of 1, the result is clamped to `[min, max]`, a scale-up
//!   happens at once and a scale-down goes only to the highest recommendation made over the
//!   window (HPA's stabilisation). A policy seen for the first time (a new policy, a
//!   restarted master) starts its history with the current count, so nothing scales down
//!   before a whole window has passed.
//! - Tasks without a usable sample (starting, pending, just started, or with a sample older
//!   than [`STALE`]) are handled as HPA handles pods without metrics: they count as 0% when
//!   the sampled tasks say "up" and as exactly the target when they say "down"; if that
//!   brings the ratio within the tolerance or reverses the direction, nothing changes. With
//!   no sample at all there is no recommendation.
//! - A decision is an ordinary replicas change made by the master (stored, versioned), then
//!   logged and published as a `service` `scale` event with its reason
//!   ([`Autoscaler::announce`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use berth_engine::{Container, Engine};

use crate::error::{Error, Result};
use crate::model::{Mode, Service, ServiceSpec, Task, TaskState};
use crate::proto::TaskUsage;

pub const LABEL_MIN: &str = "berth.autoscale.min";
pub const LABEL_MAX: &str = "berth.autoscale.max";
pub const LABEL_CPU: &str = "berth.autoscale.cpu";
pub const LABEL_WINDOW: &str = "berth.autoscale.window";
/// Every autoscaling label starts with this.
pub const LABEL_PREFIX: &str = "berth.autoscale.";

const NS: i64 = 1_000_000_000;
/// Kubernetes' default scale-down stabilisation window.
pub const DEFAULT_WINDOW: i64 = 300 * NS;
/// No change while the usage ratio is within this of 1.0 (Kubernetes' default).
pub const TOLERANCE: f64 = 0.1;
/// How often an agent reads its task containers' CPU time.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(2);
/// How often the master evaluates the policies.
pub const SYNC_PERIOD: Duration = Duration::from_secs(3);
/// A sample older than this is no sample.
pub const STALE: Duration = Duration::from_secs(10);

/// A service's autoscaling policy, from its labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub min: u64,
    pub max: u64,
    /// Target usage per replica, in percent of one CPU (> 0).
    pub cpu_percent: f64,
    /// Scale-down stabilisation window, nanoseconds.
    pub window: i64,
}

impl Policy {
    /// The policy the labels describe; `None` without any `berth.autoscale.*` label. The
    /// error names the label that is wrong.
    pub fn from_labels(
        labels: &BTreeMap<String, String>,
    ) -> std::result::Result<Option<Policy>, String> {
        let ours: Vec<&String> = labels
            .keys()
            .filter(|k| k.starts_with(LABEL_PREFIX))
            .collect();
        if ours.is_empty() {
            return Ok(None);
        }
        for k in &ours {
            if ![LABEL_MIN, LABEL_MAX, LABEL_CPU, LABEL_WINDOW].contains(&k.as_str()) {
                return Err(format!(
                    "unknown label {k}: the autoscaling labels are {LABEL_MIN}, {LABEL_MAX}, {LABEL_CPU} and {LABEL_WINDOW}"
                ));
            }
        }
        let get = |k: &str| {
            labels.get(k).ok_or_else(|| {
                format!(
                    "label {k} is missing: {LABEL_MIN}, {LABEL_MAX} and {LABEL_CPU} go together"
                )
            })
        };
        let replicas = |k: &str| -> std::result::Result<u64, String> {
            let v = get(k)?;
            match v.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(format!(
                    "invalid label {k}={v:?}: a whole number of replicas, at least 1"
                )),
            }
        };
        let min = replicas(LABEL_MIN)?;
        let max = replicas(LABEL_MAX)?;
        if min > max {
            return Err(format!(
                "invalid labels {LABEL_MIN}={min} and {LABEL_MAX}={max}: the minimum is above the maximum"
            ));
        }
        let cpu = get(LABEL_CPU)?;
        let cpu_percent = cpu
            .strip_suffix('%')
            .unwrap_or(cpu)
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && *p > 0.0)
            .ok_or_else(|| {
                format!("invalid label {LABEL_CPU}={cpu:?}: a target in percent of one CPU per replica, above 0 (e.g. 50)")
            })?;
        let window = match labels.get(LABEL_WINDOW) {
            None => DEFAULT_WINDOW,
            Some(w) => parse_duration(w).ok_or_else(|| {
                format!("invalid label {LABEL_WINDOW}={w:?}: a duration such as 30s, 5m or 1m30s")
            })?,
        };
        Ok(Some(Policy {
            min,
            max,
            cpu_percent,
            window,
        }))
    }
}

/// Refuses a spec whose autoscaling labels are wrong, or set on a global service.
pub fn validate(spec: &ServiceSpec) -> Result<()> {
    let p = Policy::from_labels(&spec.labels).map_err(Error::InvalidArgument)?;
    if p.is_some() && spec.mode == Mode::Global {
        return Err(Error::InvalidArgument(format!(
            "the {LABEL_PREFIX}* labels need a replicated service: service {} is global",
            spec.name
        )));
    }
    Ok(())
}

/// A Go duration (`300ms`, `30s`, `5m`, `1h2m3.5s`, `0`) in nanoseconds; `None` for
/// anything else, negative ones included.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = after;
    }
    (total < i64::MAX as f64).then_some(total.round() as i64)
}

/// Nanoseconds as Go prints a duration: `5m0s`, `10s`, `1h0m0s`, `1.5s`, `300ms`.
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < NS {
        return if ns % 1_000_000 == 0 {
            format!("{}ms", ns / 1_000_000)
        } else {
            format!("{ns}ns")
        };
    }
    let h = ns / (3600 * NS);
    let m = ns / (60 * NS) % 60;
    let s = (ns % (60 * NS)) as f64 / 1e9;
    let s = format!("{s}s");
    if h > 0 {
        format!("{h}h{m}m{s}")
    } else if m > 0 {
        format!("{m}m{s}")
    } else {
        s
    }
}

/// What the samples of one service recommend, before the bounds and the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub desired: u64,
    /// Whether `desired` came from the formula (not from the tolerance or a reversal).
    pub computed: bool,
    pub reason: String,
}

/// Rounds a percentage to 0.1, the precision the decision and its reason share (so the
/// reason's arithmetic is exactly what was decided).
fn round1(p: f64) -> f64 {
    (p * 10.0).round() / 10.0
}

fn replicas_word(n: usize) -> &'static str {
    if n == 1 {
        "replica"
    } else {
        "replicas"
    }
}

/// HPA's computation over the live tasks: `samples` (each a fraction of one CPU) of the
/// tasks that have one, `missing` tasks without. `None` without any sample.
pub fn recommend(
    p: &Policy,
    current: u64,
    samples: &[f64],
    missing: usize,
) -> Option<Recommendation> {
    if samples.is_empty() {
        return None;
    }
    let target = p.cpu_percent;
    let sampled = round1(samples.iter().sum::<f64>() * 100.0 / samples.len() as f64);
    let up = sampled / target > 1.0;
    let (n, avg, note) = if missing == 0 {
        (samples.len(), sampled, String::new())
    } else {
        // Tasks without a sample hold the decision back: 0% when the others say up, the
        // target when they say down.
        let fill = if up { 0.0 } else { target };
        let n = samples.len() + missing;
        let avg = round1((sampled * samples.len() as f64 + fill * missing as f64) / n as f64);
        (
            n,
            avg,
            format!(" ({missing} without a sample counted as {fill}%)"),
        )
    };
    let ratio = avg / target;
    let head = format!(
        "average cpu {avg}% of target {target}% over {n} {}{note}",
        replicas_word(n)
    );
    let keep = |why: &str| Recommendation {
        desired: current,
        computed: false,
        reason: format!("{head}: {why}, desired {current}"),
    };
    if (ratio - 1.0).abs() <= TOLERANCE {
        return Some(keep(&format!(
            "within the {}% tolerance",
            (TOLERANCE * 100.0).round()
        )));
    }
    if missing > 0 && up != (ratio > 1.0) {
        return Some(keep("the tasks without a sample reverse the direction"));
    }
    // The small epsilon keeps float noise (3 × 33.3 / 33.3) from adding a replica.
    let desired = ((n as f64 * avg / target) - 1e-9).ceil().max(0.0) as u64;
    if missing > 0 && ((ratio < 1.0 && desired > current) || (ratio > 1.0 && desired < current)) {
        return Some(keep("the tasks without a sample reverse the direction"));
    }
    Some(Recommendation {
        desired,
        computed: true,
        reason: format!("{head}: desired ceil({n} x {avg}/{target}) = {desired}"),
    })
}

/// The recommendations made over the window, oldest first: `(time ns, replicas)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History(VecDeque<(i64, u64)>);

/// A change of a service's replicas and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub from: u64,
    pub to: u64,
    pub reason: String,
}

/// One evaluation of a service with policy `p` and `current` replicas: `usage` has one entry
/// per live task (its sample as a fraction of one CPU, or `None`), `history` the service's
/// past recommendations. `Some` only when the replicas must change.
pub fn decide(
    p: &Policy,
    current: u64,
    usage: &[Option<f64>],
    history: &mut History,
    now: i64,
) -> Option<Decision> {
    if current > p.max {
        return Some(Decision {
            from: current,
            to: p.max,
            reason: format!(
                "{current} {} above the maximum {}",
                replicas_word(current as usize),
                p.max
            ),
        });
    }
    if current < p.min {
        return Some(Decision {
            from: current,
            to: p.min,
            reason: format!(
                "{current} {} below the minimum {}",
                replicas_word(current as usize),
                p.min
            ),
        });
    }
    if history.0.is_empty() {
        // A policy seen for the first time: no scale-down before a whole window.
        history.0.push_back((now, current));
    }
    let samples: Vec<f64> = usage.iter().flatten().copied().collect();
    let missing = usage.len() - samples.len();
    let rec = recommend(p, current, &samples, missing)?;
    let bounded = rec.desired.clamp(p.min, p.max);
    let mut reason = rec.reason;
    if rec.computed {
        if rec.desired >= p.max {
            reason.push_str(&format!(", max {}", p.max));
        } else if rec.desired <= p.min {
            reason.push_str(&format!(", min {}", p.min));
        }
    }
    history.0.push_back((now, bounded));
    let cutoff = now - p.window;
    while history.0.len() > 1 && history.0.front().is_some_and(|(t, _)| *t < cutoff) {
        history.0.pop_front();
    }
    let to = if bounded > current {
        bounded
    } else {
        let highest = history.0.iter().map(|(_, r)| *r).max().unwrap_or(bounded);
        if highest > bounded && highest < current {
            reason.push_str(&format!(
                "; highest recommendation over the last {}: {highest}",
                format_duration(p.window)
            ));
        }
        highest.min(current)
    };
    (to != current).then_some(Decision {
        from: current,
        to,
        reason,
    })
}

/// Where the master's decisions are published (the manager's engine event bus).
pub trait EventSink: Send + Sync {
    fn publish(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>);
}

impl EventSink for Engine {
    fn publish(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        self.publish_event(kind, action, id, attributes);
    }
}

struct Sample {
    node: String,
    /// Fraction of one CPU.
    cpu: f64,
    at: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The master's side: the latest sample per task, each policy's history, the sync clock
/// and the event sink. Only in memory: samples come back within seconds after a restart,
/// and a fresh history only delays scale-downs.
#[derive(Default)]
pub struct Autoscaler {
    samples: Mutex<HashMap<String, Sample>>,
    histories: Mutex<HashMap<String, History>>,
    last: Mutex<Option<Instant>>,
    sink: Mutex<Option<Arc<dyn EventSink>>>,
}

impl Autoscaler {
    pub fn set_sink(&self, sink: Arc<dyn EventSink>) {
        *lock(&self.sink) = Some(sink);
    }

    /// Keeps the usage a node reported for its tasks.
    pub fn record(&self, node: &str, usage: &[TaskUsage]) {
        if usage.is_empty() {
            return;
        }
        let at = Instant::now();
        let mut samples = lock(&self.samples);
        for u in usage.iter().filter(|u| u.cpu.is_finite() && u.cpu >= 0.0) {
            samples.insert(
                u.id.clone(),
                Sample {
                    node: node.to_string(),
                    cpu: u.cpu,
                    at,
                },
            );
        }
    }

    /// True once per [`SYNC_PERIOD`] (the first call too).
    pub fn due(&self) -> bool {
        let mut last = lock(&self.last);
        if last.is_some_and(|t| t.elapsed() < SYNC_PERIOD) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Evaluates every service with a policy, given each service's tasks; returns the
    /// changes to make, by service id. Forgets the histories of services without a policy
    /// and stale samples.
    pub fn evaluate<'a>(
        &self,
        services: impl IntoIterator<Item = (&'a Service, Vec<&'a Task>)>,
        now: i64,
    ) -> Vec<(String, Decision)> {
        let mut samples = lock(&self.samples);
        samples.retain(|_, s| s.at.elapsed() <= STALE);
        let mut histories = lock(&self.histories);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (svc, tasks) in services {
            let Ok(Some(policy)) = Policy::from_labels(&svc.spec.labels) else {
                continue;
            };
            let Some(current) = svc.spec.replicas() else {
                continue;
            };
            seen.insert(svc.id.clone());
            let usage: Vec<Option<f64>> = tasks
                .iter()
                .filter(|t| t.live())
                .map(|t| {
                    samples
                        .get(&t.id)
                        .filter(|s| s.node == t.node_id && t.status.state == TaskState::Running)
                        .map(|s| s.cpu)
                })
                .collect();
            let h = histories.entry(svc.id.clone()).or_default();
            if let Some(d) = decide(&policy, current, &usage, h, now) {
                out.push((svc.id.clone(), d));
            }
        }
        histories.retain(|id, _| seen.contains(id));
        out
    }

    /// Logs a decision the master made and publishes it as a `service` `scale` event.
    pub fn announce(&self, id: &str, name: &str, d: &Decision) {
        tracing::info!(
            "autoscale: service {name} scaled from {} to {} replicas: {}",
            d.from,
            d.to,
            d.reason
        );
        let sink = lock(&self.sink).clone();
        if let Some(sink) = sink {
            let attributes = BTreeMap::from([
                ("name".to_string(), name.to_string()),
                ("replicas.old".to_string(), d.from.to_string()),
                ("replicas.new".to_string(), d.to.to_string()),
                ("reason".to_string(), d.reason.clone()),
            ]);
            sink.publish("service", "scale", id, attributes);
        }
    }
}

/// One reading of a task container's cumulative CPU time.
#[derive(Debug, Clone)]
pub struct Reading {
    pub task: String,
    pub container: String,
    pub cpu_ns: u64,
    pub at: Instant,
}

/// The agent's side: each running task container's previous reading, and when it last
/// sampled.
#[derive(Default)]
pub struct Sampler {
    last: Option<Instant>,
    /// Container id → (CPU ns, when).
    prev: HashMap<String, (u64, Instant)>,
}

impl Sampler {
    /// Every [`SAMPLE_PERIOD`]: reads the CPU time of each running task container
    /// (`containers`: task id → container) and returns the usage since the previous
    /// reading; an empty list between periods.
    pub fn sample_if_due(
        &mut self,
        engine: &Engine,
        containers: impl FnOnce() -> HashMap<String, Container>,
    ) -> Vec<TaskUsage> {
        if self.last.is_some_and(|t| t.elapsed() < SAMPLE_PERIOD) {
            return Vec::new();
        }
        self.last = Some(Instant::now());
        let readings = containers()
            .into_iter()
            .filter(|(_, c)| c.state.running())
            .filter_map(|(task, c)| {
                // A container that stopped meanwhile has no cgroup left: no reading.
                let s = engine.stats(&c.id).ok()?;
                Some(Reading {
                    task,
                    container: c.id,
                    cpu_ns: s.cpu_total,
                    at: Instant::now(),
                })
            })
            .collect();
        self.update(readings)
    }

    /// Usage since each container's previous reading (none for its first, or when its
    /// counter went back); forgets containers not read this time.
    pub fn update(&mut self, readings: Vec<Reading>) -> Vec<TaskUsage> {
        let mut out = Vec::new();
        let mut next = HashMap::with_capacity(readings.len());
        for r in readings {
            if let Some((ns, at)) = self.prev.get(&r.container) {
                let wall = r.at.saturating_duration_since(*at).as_nanos();
                if r.cpu_ns >= *ns && wall > 0 {
                    let cpu = (r.cpu_ns - ns) as f64 / wall as f64;
                    out.push(TaskUsage {
                        id: r.task,
                        cpu: (cpu * 10_000.0).round() / 10_000.0,
                    });
                }
            }
            next.insert(r.container, (r.cpu_ns, r.at));
        }
        self.prev = next;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskStatus;

    fn policy(min: u64, max: u64, cpu: f64, window_s: i64) -> Policy {
        Policy {
            min,
            max,
            cpu_percent: cpu,
            window: window_s * NS,
        }
    }

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn policy_from_labels() {
        assert_eq!(Policy::from_labels(&labels(&[("team", "web")])), Ok(None));
        let p = Policy::from_labels(&labels(&[
            (LABEL_MIN, "1"),
            (LABEL_MAX, "4"),
            (LABEL_CPU, "50%"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(p, policy(1, 4, 50.0, 300));
        let p = Policy::from_labels(&labels(&[
            (LABEL_MIN, "2"),
            (LABEL_MAX, "2"),
            (LABEL_CPU, "12.5"),
            (LABEL_WINDOW, "1m30s"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(p, policy(2, 2, 12.5, 90));
    }

    #[test]
    fn bad_labels_are_named() {
        let err = |kv: &[(&str, &str)]| Policy::from_labels(&labels(kv)).unwrap_err();
        let full = |k: &str, v: &str| {
            let mut l = vec![(LABEL_MIN, "1"), (LABEL_MAX, "4"), (LABEL_CPU, "50")];
            l.retain(|(x, _)| *x != k);
            l.push((k, v));
            Policy::from_labels(&labels(&l)).unwrap_err()
        };
        let e = full(LABEL_MIN, "0");
        assert!(e.contains("invalid label berth.autoscale.min=\"0\""), "{e}");
        let e = full(LABEL_MIN, "-1");
        assert!(e.contains("berth.autoscale.min"), "{e}");
        let e = full(LABEL_MAX, "many");
        assert!(
            e.contains("invalid label berth.autoscale.max=\"many\""),
            "{e}"
        );
        let e = full(LABEL_MIN, "5");
        assert!(
            e.contains("berth.autoscale.min=5 and berth.autoscale.max=4")
                && e.contains("minimum is above the maximum"),
            "{e}"
        );
        for bad in ["0", "-5", "abc", "nan", "inf", ""] {
            let e = full(LABEL_CPU, bad);
            assert!(
                e.contains("invalid label berth.autoscale.cpu"),
                "{bad}: {e}"
            );
        }
        for bad in ["5x", "-1s", "s", "10", "1.2.3s", ""] {
            let e = full(LABEL_WINDOW, bad);
            assert!(
                e.contains("invalid label berth.autoscale.window"),
                "{bad}: {e}"
            );
        }
        let e = err(&[(LABEL_MIN, "1"), (LABEL_CPU, "50")]);
        assert!(e.contains("label berth.autoscale.max is missing"), "{e}");
        let e = err(&[
            (LABEL_MIN, "1"),
            (LABEL_MAX, "2"),
            (LABEL_CPU, "50"),
            ("berth.autoscale.mem", "1"),
        ]);
        assert!(e.contains("unknown label berth.autoscale.mem"), "{e}");
    }

    #[test]
    fn global_services_are_refused() {
        let spec = ServiceSpec {
            name: "agents".into(),
            mode: Mode::Global,
            labels: labels(&[(LABEL_MIN, "1"), (LABEL_MAX, "4"), (LABEL_CPU, "50")]),
            ..Default::default()
        };
        let e = validate(&spec).unwrap_err().to_string();
        assert!(
            e.contains("need a replicated service") && e.contains("agents"),
            "{e}"
        );
        let spec = ServiceSpec {
            mode: Mode::Replicated { replicas: 2 },
            ..spec
        };
        validate(&spec).unwrap();
    }

    #[test]
    fn durations_as_go_has_them() {
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("30s"), Some(30 * NS));
        assert_eq!(parse_duration("5m"), Some(300 * NS));
        assert_eq!(parse_duration("1h2m3.5s"), Some(3723 * NS + NS / 2));
        assert_eq!(parse_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_duration("1.5m"), Some(90 * NS));
        assert_eq!(parse_duration("2us"), Some(2000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5 s"), None);
        assert_eq!(parse_duration("s5"), None);
        assert_eq!(format_duration(300 * NS), "5m0s");
        assert_eq!(format_duration(10 * NS), "10s");
        assert_eq!(format_duration(3723 * NS + NS / 2), "1h2m3.5s");
        assert_eq!(format_duration(300_000_000), "300ms");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn hpa_formula_and_tolerance() {
        let p = policy(1, 10, 50.0, 60);
        let r = recommend(&p, 2, &[0.96, 0.96], 0).unwrap();
        assert_eq!(r.desired, 4);
        assert_eq!(
            r.reason,
            "average cpu 96% of target 50% over 2 replicas: desired ceil(2 x 96/50) = 4"
        );
        // 0.1 around 1.0 changes nothing: 54% and 46% of a 50% target.
        let r = recommend(&p, 2, &[0.54, 0.54], 0).unwrap();
        assert_eq!((r.desired, r.computed), (2, false));
        assert!(
            r.reason.contains("within the 10% tolerance"),
            "{}",
            r.reason
        );
        assert_eq!(recommend(&p, 2, &[0.46, 0.46], 0).unwrap().desired, 2);
        // Just outside: 56% → ceil(2 × 1.12) = 3; 44% → ceil(2 × 0.88) = 2 (HPA's ceil).
        assert_eq!(recommend(&p, 2, &[0.56, 0.56], 0).unwrap().desired, 3);
        assert_eq!(
            recommend(&p, 4, &[0.2, 0.2, 0.2, 0.2], 0).unwrap().desired,
            2
        );
        assert_eq!(recommend(&p, 4, &[0.0; 4], 0).unwrap().desired, 0);
        // The reason's arithmetic is exact: no float noise adds a replica.
        let q = policy(1, 10, 33.3, 60);
        assert_eq!(recommend(&q, 3, &[0.666; 3], 0).unwrap().desired, 6);
        // No sample at all: no recommendation.
        assert_eq!(recommend(&p, 2, &[], 2), None);
    }

    #[test]
    fn tasks_without_a_sample_hold_back() {
        let p = policy(1, 10, 50.0, 60);
        // Just scaled 2 → 4: the new tasks count as 0%, (96+96+0+0)/4 = 48%: no change.
        let r = recommend(&p, 4, &[0.96, 0.96], 2).unwrap();
        assert_eq!(r.desired, 4);
        assert!(!r.computed);
        // Up still, but by less: (100+100+0)/3 = 66.7% → ceil(3 × 66.7/50) = 5.
        let r = recommend(&p, 3, &[1.0, 1.0], 1).unwrap();
        assert_eq!(r.desired, 5);
        assert_eq!(
            r.reason,
            "average cpu 66.7% of target 50% over 3 replicas (1 without a sample counted as 0%): desired ceil(3 x 66.7/50) = 5"
        );
        // Down: the missing ones count at the target: (0 + 50)/2 = 25% → 1.
        let r = recommend(&p, 2, &[0.0], 1).unwrap();
        assert_eq!(r.desired, 1);
        assert!(r.reason.contains("counted as 50%"), "{}", r.reason);
        // Down, but the missing ones at the target bring it within the tolerance.
        let r = recommend(&p, 10, &[0.3], 9).unwrap();
        assert_eq!(r.desired, 10);
    }

    #[test]
    fn bounds_and_clamping() {
        let p = policy(2, 4, 50.0, 60);
        let mut h = History::default();
        // Outside the bounds: back inside at once, with or without samples.
        let d = decide(&p, 6, &[None; 6], &mut h, 0).unwrap();
        assert_eq!((d.from, d.to), (6, 4));
        assert_eq!(d.reason, "6 replicas above the maximum 4");
        let d = decide(&p, 1, &[], &mut h, 0).unwrap();
        assert_eq!(
            (d.to, d.reason.as_str()),
            (2, "1 replica below the minimum 2")
        );
        // No samples: nothing to decide.
        assert_eq!(decide(&p, 3, &[None, None, None], &mut h, 0), None);
        // The formula's 8 is held to the maximum.
        let d = decide(&p, 2, &[Some(2.0), Some(2.0)], &mut h, 0).unwrap();
        assert_eq!(d.to, 4);
        assert_eq!(
            d.reason,
            "average cpu 200% of target 50% over 2 replicas: desired ceil(2 x 200/50) = 8, max 4"
        );
    }

    #[test]
    fn up_at_once_down_after_the_window() {
        let p = policy(1, 4, 50.0, 10);
        let mut h = History::default();
        let busy = [Some(0.96), Some(0.96)];
        // First look at a policy: up at once.
        let d = decide(&p, 2, &busy, &mut h, 0).unwrap();
        assert_eq!((d.from, d.to), (2, 4));
        assert_eq!(
            d.reason,
            "average cpu 96% of target 50% over 2 replicas: desired ceil(2 x 96/50) = 4, max 4"
        );
        // Load gone: the window's highest recommendation (4) holds the replicas.
        let idle = [Some(0.01); 4];
        for t in [3, 6, 9] {
            assert_eq!(decide(&p, 4, &idle, &mut h, t * NS), None, "at {t}s");
        }
        // 10 s after the last 4, the highest recommendation is 1: down to 1.
        let d = decide(&p, 4, &idle, &mut h, 12 * NS).unwrap();
        assert_eq!((d.from, d.to), (4, 1));
        assert_eq!(
            d.reason,
            "average cpu 1% of target 50% over 4 replicas: desired ceil(4 x 1/50) = 1, min 1"
        );
    }

    #[test]
    fn down_to_the_highest_recommendation_of_the_window() {
        let p = policy(1, 8, 50.0, 10);
        let mut h = History::default();
        // The first evaluation seeds the history with the current count.
        assert_eq!(decide(&p, 6, &[Some(0.25); 6], &mut h, 0), None);
        assert_eq!(decide(&p, 6, &[Some(0.25); 6], &mut h, 5 * NS), None);
        assert_eq!(decide(&p, 6, &[Some(0.05); 6], &mut h, 8 * NS), None);
        // At 11 s the seed (6, at 0 s) is out of the window; 3 (5 s) is the highest left.
        let d = decide(&p, 6, &[Some(0.05); 6], &mut h, 11 * NS).unwrap();
        assert_eq!(d.to, 3);
        assert!(
            d.reason
                .ends_with("= 1, min 1; highest recommendation over the last 10s: 3"),
            "{}",
            d.reason
        );
        // Within the tolerance nothing changes and the replicas' own count is recorded.
        assert_eq!(decide(&p, 3, &[Some(0.5); 3], &mut h, 12 * NS), None);
        // A zero window scales down at once.
        let z = policy(1, 8, 50.0, 0);
        let mut h = History::default();
        assert_eq!(decide(&z, 4, &[Some(0.01); 4], &mut h, 0), None);
        assert_eq!(
            decide(&z, 4, &[Some(0.01); 4], &mut h, 1).map(|d| d.to),
            Some(1)
        );
    }

    fn task(id: &str, node: &str, state: TaskState) -> Task {
        Task {
            id: id.into(),
            version: 1,
            created_at: 0,
            updated_at: 0,
            service_id: "svc".into(),
            service_name: "web".into(),
            slot: 1,
            node_id: node.into(),
            spec: Default::default(),
            task_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus::new(state, "", 0),
            attempt: 0,
            healthy: None,
            restart_at: 0,
            retire: Default::default(),
            replaces: String::new(),
            ports: Vec::new(),
            networks: Vec::new(),
            addrs: BTreeMap::new(),
        }
    }

    /// An event as published: kind, action, id, attributes.
    type Published = (String, String, String, BTreeMap<String, String>);

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Published>>);

    impl EventSink for Recorder {
        fn publish(
            &self,
            kind: &str,
            action: &str,
            id: &str,
            attributes: BTreeMap<String, String>,
        ) {
            lock(&self.0).push((kind.into(), action.into(), id.into(), attributes));
        }
    }

    #[test]
    fn the_master_side_uses_fresh_samples_of_running_tasks_on_their_node() {
        let a = Autoscaler::default();
        assert!(a.due());
        assert!(!a.due());
        let svc = Service {
            id: "svc".into(),
            spec: ServiceSpec {
                name: "web".into(),
                mode: Mode::Replicated { replicas: 2 },
                labels: labels(&[(LABEL_MIN, "1"), (LABEL_MAX, "5"), (LABEL_CPU, "50")]),
                ..Default::default()
            },
            ..Default::default()
        };
        let t1 = task("t1", "n1", TaskState::Running);
        let t2 = task("t2", "n2", TaskState::Running);
        let mut gone = task("t3", "n2", TaskState::Running);
        gone.desired_state = TaskState::Shutdown;
        // Only the report of t1's own node counts; t3 is no longer wanted.
        a.record(
            "n1",
            &[
                TaskUsage {
                    id: "t1".into(),
                    cpu: 1.0,
                },
                TaskUsage {
                    id: "t2".into(),
                    cpu: 0.0,
                },
            ],
        );
        a.record(
            "n2",
            &[TaskUsage {
                id: "t3".into(),
                cpu: 0.0,
            }],
        );
        let tasks = vec![&t1, &t2, &gone];
        // t2 has no sample of its own: (100 + 0) / 2 = 50%, within the tolerance.
        assert!(a.evaluate([(&svc, tasks.clone())], 0).is_empty());
        a.record(
            "n2",
            &[TaskUsage {
                id: "t2".into(),
                cpu: 1.0,
            }],
        );
        let out = a.evaluate([(&svc, tasks)], NS);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0.as_str(), out[0].1.to), ("svc", 4));
        let rec = Arc::new(Recorder::default());
        a.set_sink(rec.clone());
        a.announce("svc", "web", &out[0].1);
        let events = lock(&rec.0);
        let (kind, action, id, attrs) = &events[0];
        assert_eq!(
            (kind.as_str(), action.as_str(), id.as_str()),
            ("service", "scale", "svc")
        );
        assert_eq!(attrs["name"], "web");
        assert_eq!(attrs["replicas.old"], "2");
        assert_eq!(attrs["replicas.new"], "4");
        assert_eq!(
            attrs["reason"],
            "average cpu 100% of target 50% over 2 replicas: desired ceil(2 x 100/50) = 4"
        );
    }

    #[test]
    fn a_decision_is_a_stored_versioned_replicas_change_and_an_event() {
        use crate::master::{Master, MasterConfig};
        let dir = tempfile::tempdir().unwrap();
        let cfg = MasterConfig {
            dir: dir.path().join("swarm"),
            listen: "127.0.0.1:0".parse().unwrap(),
            advertise: "127.0.0.1:2377".into(),
            heartbeat: Duration::from_secs(1),
            grace: Duration::from_secs(3),
            node_id: String::new(),
            store: Default::default(),
        };
        std::fs::create_dir_all(&cfg.dir).unwrap();
        let (m, _, _) = Master::init(cfg.clone(), Default::default()).unwrap();
        let rec = Arc::new(Recorder::default());
        m.set_event_sink(rec.clone());
        let mut spec = ServiceSpec {
            name: "web".into(),
            mode: Mode::Replicated { replicas: 1 },
            ..Default::default()
        };
        spec.task.image = "busybox".into();
        // Bad labels change nothing.
        spec.labels = labels(&[(LABEL_MIN, "3"), (LABEL_MAX, "2"), (LABEL_CPU, "50")]);
        let e = m.create_service(spec.clone()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert!(m.services().is_empty());
        spec.labels = labels(&[(LABEL_MIN, "2"), (LABEL_MAX, "4"), (LABEL_CPU, "50")]);
        m.create_service(spec).unwrap();
        let before = m.service("web").unwrap();
        // The first pass is due at once: 1 replica is below the minimum.
        m.reconcile().unwrap();
        let after = m.service("web").unwrap();
        assert_eq!(after.spec.replicas(), Some(2));
        assert!(after.version > before.version);
        assert_eq!(after.previous_spec, before.previous_spec);
        let slots: HashSet<u64> = m
            .tasks()
            .iter()
            .filter(|t| t.live())
            .map(|t| t.slot)
            .collect();
        assert_eq!(slots, HashSet::from([1, 2]));
        {
            let events = lock(&rec.0);
            assert_eq!(events.len(), 1, "{events:?}");
            assert_eq!(events[0].3["reason"], "1 replica below the minimum 2");
            assert_eq!(events[0].3["replicas.new"], "2");
        }
        // Not due again within the sync period: no second decision.
        m.reconcile().unwrap();
        assert_eq!(lock(&rec.0).len(), 1);
        // Stored: a reopened master has it.
        drop(m);
        let m = Master::open(cfg).unwrap();
        assert_eq!(m.service("web").unwrap().spec.replicas(), Some(2));
    }

    #[test]
    fn sampler_rates() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        let r = |task: &str, c: &str, ms: u64, ns: u64| Reading {
            task: task.into(),
            container: c.into(),
            cpu_ns: ns,
            at: t0 + Duration::from_millis(ms),
        };
        // First readings only set the baseline.
        assert!(s
            .update(vec![r("a", "ca", 0, 5_000_000_000), r("b", "cb", 0, 0)])
            .is_empty());
        // 2 s later: a used 2 s of CPU (one whole CPU), b 0.5 s (a quarter).
        let out = s.update(vec![
            r("a", "ca", 2000, 7_000_000_000),
            r("b", "cb", 2000, 500_000_000),
        ]);
        assert_eq!(
            out,
            vec![
                TaskUsage {
                    id: "a".into(),
                    cpu: 1.0
                },
                TaskUsage {
                    id: "b".into(),
                    cpu: 0.25
                },
            ]
        );
        // b's container is gone and came back as another one: a fresh baseline; a counter
        // that went back gives nothing.
        let out = s.update(vec![r("a", "ca", 4000, 1), r("b", "cb2", 4000, 10)]);
        assert!(out.is_empty(), "{out:?}");
    }
}
