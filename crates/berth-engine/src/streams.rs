//! What flows out of and into a container: logs (from the shim while it runs, from the
//! json-file once it is gone), attach, resize, exec sessions, top and statistics.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use berth_shim::jsonlog;
use berth_shim::protocol::{AttachRequest, LogsRequest};
use serde_json::json;

use crate::error::{io_err, Error, Result};
use crate::inner::{lock, Ctr, Inner};
use crate::model::*;
use crate::{bundle, now_rfc3339};

impl Inner {
    pub fn logs(&self, name: &str, o: LogsOptions) -> Result<Stream> {
        let ctr = self.find(name)?;
        let c = ctr.get();
        let tty = c.spec.tty;
        let (stdout, stderr) = if !o.stdout && !o.stderr {
            (true, true)
        } else {
            (o.stdout, o.stderr)
        };
        if let (Some(shim), true) = (ctr.shim(), c.state.running()) {
            let conn = shim
                .logs(LogsRequest {
                    follow: o.follow,
                    tail: o.tail,
                    since: (o.since > 0).then_some(o.since),
                    until: (o.until > 0).then_some(o.until),
                    timestamps: o.timestamps,
                    stdout,
                    stderr,
                })
                .map_err(|e| Error::Shim {
                    id: c.id.clone(),
                    source: e,
                })?;
            return Ok(Stream { conn, tty });
        }
        // The shim is gone: read the file.
        let filter = jsonlog::Filter {
            stdout,
            stderr,
            since: (o.since > 0).then_some(o.since),
            until: (o.until > 0).then_some(o.until),
        };
        let entries = jsonlog::read_log(std::path::Path::new(&c.log_path), &filter, o.tail);
        let (ours, mut theirs) = UnixStream::pair().map_err(io_err("socketpair"))?;
        std::thread::spawn(move || {
            for e in entries {
                let mut data = Vec::new();
                if o.timestamps {
                    data.extend_from_slice(e.time.as_bytes());
                    data.push(b' ');
                }
                data.extend_from_slice(&e.log);
                let r = if tty {
                    theirs.write_all(&data)
                } else {
                    berth_shim::frame::write_frame(&mut theirs, e.stream.frame_type(), &data)
                };
                if r.is_err() {
                    return;
                }
            }
        });
        Ok(Stream { conn: ours, tty })
    }

    pub fn attach(self: &Arc<Inner>, name: &str, o: AttachOptions) -> Result<Stream> {
        let ctr = self.find(name)?;
        let c = ctr.get();
        if !o.stream {
            return self.logs(
                name,
                LogsOptions {
                    stdout: o.stdout,
                    stderr: o.stderr,
                    ..Default::default()
                },
            );
        }
        let tty = c.spec.tty;
        if c.state.status == Status::Paused {
            return Err(Error::Conflict(
                "You cannot attach to a paused container, unpause it first".into(),
            ));
        }
        if let (Some(shim), true) = (ctr.shim(), c.state.running()) {
            let conn = shim
                .attach(AttachRequest {
                    stdin: o.stdin && c.spec.open_stdin,
                    stdout: o.stdout,
                    stderr: o.stderr,
                    logs: o.logs,
                })
                .map_err(|e| Error::Shim {
                    id: c.id.clone(),
                    source: e,
                })?;
            self.event("container", "attach", &c, &[]);
            return Ok(Stream { conn, tty });
        }
        let conn = self.attach_pending(&ctr, o)?;
        self.event("container", "attach", &c, &[]);
        Ok(Stream { conn, tty })
    }

    pub fn resize(&self, name: &str, height: u16, width: u16) -> Result<()> {
        let ctr = self.find(name)?;
        let c = ctr.get();
        match ctr.shim() {
            Some(shim) if c.state.running() => {
                shim.resize(height, width).map_err(|e| Error::Shim {
                    id: c.id.clone(),
                    source: e,
                })
            }
            _ => Err(Error::Conflict(format!(
                "cannot resize container {}: it is not running",
                c.id
            ))),
        }
    }

    // ---- exec ------------------------------------------------------------------------

    pub fn exec_create(&self, name: &str, spec: ExecSpec) -> Result<String> {
        let ctr = self.find(name)?;
        let c = ctr.get();
        if c.state.status == Status::Paused {
            return Err(Error::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        if !c.state.running() || ctr.shim().is_none() {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if spec.cmd.is_empty() {
            return Err(Error::Invalid("No exec command specified".into()));
        }
        if let Some(w) = spec.workdir.as_deref().filter(|w| !w.is_empty()) {
            if !w.starts_with('/') {
                return Err(Error::Invalid(format!(
                    "the working directory '{w}' is invalid, it needs to be an absolute path"
                )));
            }
        }
        let id = bundle::random_id().map_err(io_err("/dev/urandom"))?;
        lock(&self.execs).insert(
            id.clone(),
            Exec {
                id: id.clone(),
                container_id: c.id.clone(),
                spec,
                ..Default::default()
            },
        );
        lock(&ctr.rec).exec_ids.push(id.clone());
        self.event("container", "exec_create", &c, &[]);
        Ok(id)
    }

    fn exec_get(&self, id: &str) -> Result<Exec> {
        lock(&self.execs)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchExec(id.to_string()))
    }

    pub fn exec_start(&self, id: &str, detach: bool) -> Result<Option<Stream>> {
        let e = self.exec_get(id)?;
        if e.running || e.exit_code.is_some() {
            return Err(Error::Conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        let ctr = self.find(&e.container_id)?;
        let c = ctr.get();
        let shim = match ctr.shim() {
            Some(s) if c.state.running() => s,
            _ => {
                return Err(Error::Conflict(format!(
                    "Container {} is not running",
                    c.id
                )))
            }
        };
        let process = self.exec_process(&c, &e.spec)?;
        let conn = shim
            .exec(id, process, e.spec.tty, e.spec.attach_stdin && !detach)
            .map_err(|err| Error::Shim {
                id: c.id.clone(),
                source: err,
            })?;
        let pid = shim.exec_state(id).map(|s| s.pid).unwrap_or(0);
        let size = match lock(&self.execs).get_mut(id) {
            Some(x) => {
                x.running = true;
                x.pid = pid;
                x.spec.console_size
            }
            None => e.spec.console_size,
        };
        let [h, w] = size;
        if e.spec.tty && h > 0 && w > 0 {
            let _ = shim.resize_exec(id, h, w);
        }
        self.event("container", "exec_start", &c, &[("execID", id.to_string())]);
        if detach {
            let mut conn = conn;
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut conn, &mut std::io::sink());
            });
            return Ok(None);
        }
        Ok(Some(Stream {
            conn,
            tty: e.spec.tty,
        }))
    }

    /// The OCI process of an exec: the container's env, user, cwd and capabilities with the
    /// exec's overrides.
    fn exec_process(&self, c: &Container, s: &ExecSpec) -> Result<serde_json::Value> {
        let dir = Ctr::dir(self, &c.id);
        let config_path = dir.join("config.json");
        let text = std::fs::read(&config_path).map_err(io_err(&config_path))?;
        let config: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| Error::Internal(format!("{}: {e}", config_path.display())))?;
        let mut p = config["process"].clone();
        p["args"] = json!(s.cmd);
        p["terminal"] = json!(s.tty);
        let mut env: Vec<String> = p["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for kv in &s.env {
            let k = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
            env.retain(|e| e.split_once('=').map(|(ek, _)| ek).unwrap_or(e) != k);
            env.push(kv.clone());
        }
        p["env"] = json!(env);
        if let Some(w) = s.workdir.as_deref().filter(|w| !w.is_empty()) {
            p["cwd"] = json!(w);
        }
        if let Some(u) = s.user.as_deref().filter(|u| !u.is_empty()) {
            let rootfs = std::path::Path::new(&c.rootfs);
            let passwd = bundle::read_in_root(rootfs, "etc/passwd").unwrap_or_default();
            let group = bundle::read_in_root(rootfs, "etc/group").unwrap_or_default();
            let user = bundle::resolve_user(u, &passwd, &group)?;
            p["user"] = json!({
                "uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids,
            });
        }
        if s.privileged {
            let all = crate::spec::ALL_CAPS;
            p["capabilities"] = json!({ "bounding": all, "effective": all, "permitted": all });
        }
        Ok(p)
    }

    pub fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        {
            // Not started yet (a client may resize as soon as it has the 101): the size is
            // applied once the process has its tty.
            let mut execs = lock(&self.execs);
            let e = execs
                .get_mut(id)
                .ok_or_else(|| Error::NoSuchExec(id.to_string()))?;
            if !e.running && e.exit_code.is_none() {
                e.spec.console_size = [height, width];
                return Ok(());
            }
        }
        let e = self.exec_get(id)?;
        let ctr = self.find(&e.container_id)?;
        match ctr.shim() {
            Some(shim) => shim
                .resize_exec(id, height, width)
                .map_err(|err| Error::Shim {
                    id: e.container_id.clone(),
                    source: err,
                }),
            None => Err(Error::Conflict(format!(
                "Container {} is not running",
                e.container_id
            ))),
        }
    }

    pub fn exec_inspect(&self, id: &str) -> Result<Exec> {
        let mut e = self.exec_get(id)?;
        if e.running {
            let state = self
                .find(&e.container_id)
                .ok()
                .and_then(|c| c.shim())
                .and_then(|s| s.exec_state(id).ok());
            match state {
                Some(s) if !s.running => {
                    e.running = false;
                    e.exit_code = s.exit_code;
                }
                Some(_) => {}
                // The container (and its shim) has gone: the exec died with it.
                None => {
                    e.running = false;
                    e.exit_code = e.exit_code.or(Some(137));
                }
            }
            if !e.running {
                if let Some(x) = lock(&self.execs).get_mut(id) {
                    x.running = false;
                    x.exit_code = e.exit_code;
                }
                if let Ok(ctr) = self.find(&e.container_id) {
                    self.event(
                        "container",
                        "exec_die",
                        &ctr.get(),
                        &[
                            ("execID", id.to_string()),
                            ("exitCode", e.exit_code.unwrap_or(0).to_string()),
                        ],
                    );
                }
            }
        }
        Ok(e)
    }

    // ---- top and stats ---------------------------------------------------------------

    pub fn top(&self, name: &str, ps_args: Option<&str>) -> Result<Top> {
        let ctr = self.find(name)?;
        let c = ctr.get();
        if !c.state.running() {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let out = self.runtime(&["ps", "--format", "json", &c.id])?;
        let pids: Vec<i64> = serde_json::from_str(out.trim())
            .map_err(|e| Error::Internal(format!("runtime ps {}: {e}", c.id)))?;
        let args: Vec<&str> = ps_args
            .filter(|a| !a.trim().is_empty())
            .unwrap_or("-ef")
            .split_whitespace()
            .collect();
        let ps = std::process::Command::new("ps")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(io_err("ps"))?;
        if !ps.status.success() {
            return Err(Error::Invalid(format!(
                "ps {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&ps.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&ps.stdout), &pids)
    }

    pub fn stats(&self, name: &str) -> Result<Stats> {
        let ctr = self.find(name)?;
        let c = ctr.get();
        let mut s = Stats {
            read: now_rfc3339(),
            online_cpus: online_cpus(),
            system_cpu: system_cpu_nanos(),
            ..Default::default()
        };
        if !c.state.running() {
            return Ok(s);
        }
        let cg = berth_cgroups::manager(&format!("/berth/{}", c.id))
            .map_err(|e| Error::Internal(format!("cgroups of {}: {e}", c.id)))?;
        let st = cg
            .stats()
            .map_err(|e| Error::Internal(format!("cgroup stats of {}: {e}", c.id)))?;
        s.pids = st.pids.current;
        s.pids_limit = (st.pids.limit > 0).then_some(st.pids.limit);
        s.cpu_total = st.cpu.usage.total;
        s.cpu_kernel = st.cpu.usage.kernel;
        s.cpu_user = st.cpu.usage.user;
        s.cpu_per_cpu = st.cpu.usage.percpu.clone();
        s.memory_usage = st.memory.usage.usage;
        s.memory_max_usage = st.memory.usage.max;
        s.memory_limit = match st.memory.usage.limit {
            0 | u64::MAX => host_mem_total(),
            l if l >= (1 << 62) => host_mem_total(),
            l => l,
        };
        s.memory_stats = st.memory.raw.clone();
        if st.memory.cache > 0 {
            s.memory_stats
                .entry("cache".into())
                .or_insert(st.memory.cache);
        }
        for e in &st.blkio.io_service_bytes_recursive {
            match e.op.to_ascii_lowercase().as_str() {
                "read" => s.blkio_read += e.value,
                "write" => s.blkio_write += e.value,
                _ => {}
            }
        }
        Ok(s)
    }
}

/// The rows of `ps` output whose PID column is one of `pids`.
pub(crate) fn parse_ps(out: &str, pids: &[i64]) -> Result<Top> {
    let mut lines = out.lines();
    let header = lines
        .next()
        .ok_or_else(|| Error::Internal("ps printed nothing".into()))?;
    let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::Invalid("Couldn't find PID field in ps output".into()))?;
    let n = titles.len();
    let mut processes = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        if fields.len() < n {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i64>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) keeps its spaces.
        let mut row: Vec<String> = fields[..n - 1].iter().map(|s| s.to_string()).collect();
        row.push(fields[n - 1..].join(" "));
        processes.push(row);
    }
    Ok(Top { titles, processes })
}

pub(crate) fn online_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// The host's CPU time in nanoseconds, from the `cpu` line of /proc/stat (USER_HZ ticks).
fn system_cpu_nanos() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    ticks * (1_000_000_000 / hz)
}

pub(crate) fn host_mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Reads everything a stream sends into separate stdout and stderr (framed streams).
pub fn demux(mut r: impl Read) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    berth_shim::frame::demux_all(&mut r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_of_the_container_only() {
        let out = "UID   PID  PPID  C STIME TTY TIME CMD\n\
                   root    1     0  0 10:00 ?   00:00:01 /sbin/init\n\
                   root  420     1  0 10:01 ?   00:00:00 sleep 100 now\n";
        let t = parse_ps(out, &[420]).unwrap();
        assert_eq!(t.titles.len(), 8);
        assert_eq!(t.processes.len(), 1);
        assert_eq!(t.processes[0][1], "420");
        assert_eq!(t.processes[0][7], "sleep 100 now");
        assert!(parse_ps("USER COMMAND\nroot x\n", &[1]).is_err());
    }
}
