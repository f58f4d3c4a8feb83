//! Health checks: while a container with a `Healthcheck` runs, one thread runs the probe in
//! it through its shim every interval, keeps the last five results, and turns the status
//! `starting` → `healthy`/`unhealthy`, with a `health_status: …` event on each change.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::inner::{lock, Ctr, Inner};
use crate::model::*;
use crate::now_rfc3339;

const DEFAULT_INTERVAL: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
const DEFAULT_RETRIES: i64 = 3;
/// Output kept per probe.
const MAX_OUTPUT: usize = 4096;

impl Inner {
    pub(crate) fn spawn_health(self: &Arc<Inner>, ctr: Arc<Ctr>) {
        let c = ctr.get();
        let Some(h) = c.config.healthcheck.clone() else {
            return;
        };
        let argv: Vec<String> = match h.test.first().map(String::as_str) {
            Some("CMD") => h.test[1..].to_vec(),
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")],
            _ => return,
        };
        if argv.is_empty() {
            return;
        }
        let started = c.state.started_at.clone();
        let inner = self.clone();
        std::thread::spawn(move || {
            let interval = Duration::from_nanos(pos(h.interval, DEFAULT_INTERVAL) as u64);
            let timeout = Duration::from_nanos(pos(h.timeout, DEFAULT_TIMEOUT) as u64);
            let retries = if h.retries > 0 {
                h.retries
            } else {
                DEFAULT_RETRIES
            };
            let start_period = Duration::from_nanos(h.start_period.max(0) as u64);
            let began = Instant::now();
            let mut n = 0u64;
            loop {
                // Sleep one interval, waking early if the container stops.
                let deadline = Instant::now() + interval;
                {
                    let mut r = lock(&ctr.rec);
                    while Instant::now() < deadline
                        && r.state.running()
                        && r.state.started_at == started
                    {
                        let left = deadline.saturating_duration_since(Instant::now());
                        r = ctr
                            .cv
                            .wait_timeout(r, left)
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0);
                    }
                    if !r.state.running() || r.state.started_at != started {
                        return;
                    }
                    if r.state.status == Status::Paused {
                        continue;
                    }
                }
                n += 1;
                let (code, output, start, end) = inner.probe(&ctr, &argv, n, timeout);
                let in_start_period = began.elapsed() < start_period;
                let changed = {
                    let mut r = lock(&ctr.rec);
                    if !r.state.running() || r.state.started_at != started {
                        return;
                    }
                    let health = r.state.health.get_or_insert_with(Health::default);
                    let before = health.status;
                    health.log.push(HealthLogEntry {
                        start,
                        end,
                        exit_code: code,
                        output,
                    });
                    if health.log.len() > 5 {
                        health.log.remove(0);
                    }
                    if code == 0 {
                        health.failing_streak = 0;
                        health.status = HealthStatus::Healthy;
                    } else if !in_start_period || before != HealthStatus::Starting {
                        // As Docker: failures within the start period are forgiven only until
                        // the first success.
                        health.failing_streak += 1;
                        if health.failing_streak >= retries {
                            health.status = HealthStatus::Unhealthy;
                        }
                    }
                    (before != health.status).then_some(health.status)
                };
                inner.save_quiet(&ctr);
                if let Some(status) = changed {
                    inner.event(
                        "container",
                        &format!("health_status: {}", status.as_str()),
                        &ctr.get(),
                        &[],
                    );
                }
            }
        });
    }

    /// Runs one probe; returns its exit code (-1 when it could not run or timed out), its
    /// output and its start and end times.
    fn probe(
        &self,
        ctr: &Ctr,
        argv: &[String],
        n: u64,
        timeout: Duration,
    ) -> (i64, String, String, String) {
        let start = now_rfc3339();
        let fail = |msg: String| (-1, msg, start.clone(), now_rfc3339());
        let Some(shim) = ctr.shim() else {
            return fail("container is not running".into());
        };
        let c = ctr.get();
        let config_path = Ctr::dir(self, &c.id).join("config.json");
        let process = match std::fs::read(&config_path)
            .ok()
            .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        {
            Some(cfg) => {
                let mut p = cfg["process"].clone();
                p["args"] = json!(argv);
                p["terminal"] = json!(false);
                p
            }
            None => return fail(format!("read {}", config_path.display())),
        };
        let id = format!("health-{n}");
        let mut conn = match shim.exec(&id, process, false, false) {
            Ok(c) => c,
            Err(e) => return fail(e.to_string()),
        };
        let _ = conn.set_read_timeout(Some(timeout));
        let deadline = Instant::now() + timeout;
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let mut timed_out = false;
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => raw.extend_from_slice(&buf[..k]),
                Err(_) => {
                    timed_out = Instant::now() >= deadline;
                    break;
                }
            }
            if Instant::now() >= deadline {
                timed_out = true;
                break;
            }
        }
        let (out, err) = crate::streams::demux(&raw[..]).unwrap_or_default();
        let mut output = String::from_utf8_lossy(&out).into_owned();
        output.push_str(&String::from_utf8_lossy(&err));
        output.truncate(MAX_OUTPUT);
        if timed_out {
            if let Ok(s) = shim.exec_state(&id) {
                if s.pid > 0 {
                    // SAFETY: kill(2) on a pid the shim reported for this exec.
                    unsafe { libc::kill(s.pid, libc::SIGKILL) };
                }
            }
            return (
                -1,
                format!("Health check exceeded timeout ({}s)", timeout.as_secs_f64()),
                start,
                now_rfc3339(),
            );
        }
        // The stream ends when the process has exited; the shim then knows its code.
        let mut code = -1;
        for _ in 0..100 {
            match shim.exec_state(&id) {
                Ok(s) if !s.running => {
                    code = s.exit_code.unwrap_or(-1) as i64;
                    break;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        (code, output, start, now_rfc3339())
    }
}

fn pos(v: i64, default: i64) -> i64 {
    if v > 0 {
        v
    } else {
        default
    }
}
