//! End-to-end tests of the Docker Engine API contract with the real `docker` CLI 28:
//! every test starts a private daemon (berthd, or dockerd with `BERTH_E2E_PEER=dockerd`),
//! drives it with the CLI and asserts the CLI's output and exit codes.
//!
//! Run: `sudo cargo test -p berthd --test docker_cli -- --test-threads=2`
//! Against the reference: `BERTH_E2E_PEER=dockerd cargo test ...` (same expectations).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{poll, run_cmd, Bg, Daemon};

const LONG: Duration = Duration::from_secs(60);

/// Reads the first `n` non-empty stdout lines of a background CLI (within `timeout`).
fn first_lines(bg: &mut Bg, n: usize, timeout: Duration) -> Vec<String> {
    let out = bg.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    while lines.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.trim().is_empty() => {}
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    lines
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp as `docker logs -t` prints it
/// (`2026-12-02T06:29:01.123456789Z`).
fn rfc3339_unix(ts: &str) -> Option<f64> {
    let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss: f64 = t.next()?.parse().ok()?;
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((days * 86400 + hh * 3600 + mm * 60) as f64 + ss)
}

/// Runs a shell command line (for `script`, pipes) with the daemon's CLI environment.
fn sh(d: &Daemon, line: &str) -> support::Out {
    let mut c = Command::new("sh");
    c.args(["-c", line]);
    d.docker_env(&mut c);
    run_cmd(&mut c, Duration::from_secs(120))
}

#[test]
fn version_and_info_describe_the_server() {
    let Some(d) = Daemon::start("version_and_info") else {
        return;
    };

    let version = d.docker_ok(&["version"]);
    assert!(version.contains("Client:"), "{version}");
    assert!(version.contains("Server:"), "no Server section:\n{version}");
    assert!(version.contains("API version:"), "{version}");
    let os = d.docker_ok(&["version", "-f", "{{.Server.Os}}/{{.Server.Arch}}"]);
    assert!(os.starts_with("linux/"), "{os}");

    let info = d.docker_ok(&["info"]);
    assert!(info.contains("Server:"), "{info}");
    assert!(info.contains("Containers:"), "{info}");
    assert!(info.contains("Images:"), "{info}");
    assert_eq!(d.docker_ok(&["info", "-f", "{{.OSType}}"]), "linux");
    assert_eq!(d.docker_ok(&["info", "-f", "{{.Images}}"]), "1");
    let root = d.docker_ok(&["info", "-f", "{{.DockerRootDir}}"]);
    assert_eq!(
        root,
        d.data_root.to_string_lossy(),
        "info names our --data-root"
    );
}

#[test]
fn run_foreground_process_options() {
    let Some(d) = Daemon::start("run_foreground") else {
        return;
    };

    // Output and exit codes.
    assert_eq!(d.docker_ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi");
    d.docker_code(&["run", "--rm", "busybox", "sh", "-c", "exit 3"], 3);
    let o = d.docker_code(
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo to-err >&2; exit 0",
        ],
        0,
    );
    assert!(
        o.stderr.contains("to-err"),
        "stderr is passed through:\n{o}"
    );
    // A command that does not exist: 127 from the CLI with the daemon's message.
    let o = d.docker_fails(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_eq!(o.code, Some(127), "{o}");

    // Environment.
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-e",
            "GREETING=hello world",
            "busybox",
            "sh",
            "-c",
            "echo $GREETING"
        ]),
        "hello world"
    );
    let env_file = d.write_file("app.env", "A=1\nB=two words\n# comment\n");
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--env-file",
            &env_file,
            "busybox",
            "sh",
            "-c",
            "echo $A-$B"
        ]),
        "1-two words"
    );
    let path = d.docker_ok(&["run", "--rm", "busybox", "sh", "-c", "echo $PATH"]);
    assert!(path.contains("/bin"), "a default PATH is set: {path}");

    // Working directory (created when missing), user, hostname, entrypoint.
    assert_eq!(
        d.docker_ok(&["run", "--rm", "-w", "/tmp", "busybox", "pwd"]),
        "/tmp"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "-w", "/made/by/daemon", "busybox", "pwd"]),
        "/made/by/daemon"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "-u", "nobody", "busybox", "id", "-u"]),
        "65534"
    );
    let id = d.docker_ok(&["run", "--rm", "-u", "nobody", "busybox", "id"]);
    assert!(id.contains("uid=65534(nobody)"), "{id}");
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-u",
            "1234:5678",
            "busybox",
            "sh",
            "-c",
            "echo $(id -u):$(id -g)"
        ]),
        "1234:5678"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--hostname", "myhost", "busybox", "hostname"]),
        "myhost"
    );
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/echo",
            "busybox",
            "a",
            "b"
        ]),
        "a b"
    );

    // --init puts an init process at pid 1; without it the command is pid 1.
    assert_eq!(
        d.docker_ok(&["run", "--rm", "busybox", "sh", "-c", "echo $$"]),
        "1"
    );
    let pid = d.docker_ok(&["run", "--rm", "--init", "busybox", "sh", "-c", "echo $$"]);
    assert_ne!(pid, "1", "with --init the command is not pid 1");

    // --name and labels, visible in inspect and in ps filters.
    d.docker_ok(&[
        "run",
        "--name",
        "labelled",
        "-l",
        "app=web",
        "-l",
        "tier=front",
        "busybox",
        "true",
    ]);
    assert_eq!(
        d.inspect("labelled", "{{index .Config.Labels \"app\"}}"),
        "web"
    );
    assert_eq!(
        d.inspect("labelled", "{{index .Config.Labels \"tier\"}}"),
        "front"
    );
    assert_eq!(d.inspect("labelled", "{{.Name}}"), "/labelled");
    assert_eq!(
        d.docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "label=app=web",
            "--format",
            "{{.Names}}"
        ]),
        "labelled"
    );

    // A second container with the same name is a conflict.
    let o = d.docker_fails(&["run", "--name", "labelled", "busybox", "true"]);
    assert_eq!(o.code, Some(125), "{o}");
    assert!(
        o.stderr.contains("Conflict") && o.stderr.contains("is already in use"),
        "{o}"
    );

    // A bad restart policy is refused.
    let o = d.docker_fails(&["run", "--restart", "bogus", "busybox", "true"]);
    assert_eq!(o.code, Some(125), "{o}");
    assert!(o.stderr.contains("bogus"), "{o}");

    // No such container.
    let o = d.docker_fails(&["rm", "nope"]);
    assert_eq!(o.code, Some(1), "{o}");
    assert!(o.stderr.contains("No such container: nope"), "{o}");
    let o = d.docker_fails(&["inspect", "nope"]);
    assert!(
        o.stderr.contains("No such object: nope") || o.stderr.contains("No such container"),
        "{o}"
    );
}

#[test]
fn run_isolation_and_limits() {
    let Some(d) = Daemon::start("run_isolation") else {
        return;
    };

    // Read-only root, with a writable tmpfs.
    let o = d.docker_fails(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert!(o.stderr.contains("Read-only file system"), "{o}");
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/scratch",
            "busybox",
            "sh",
            "-c",
            "touch /scratch/x && echo ok"
        ]),
        "ok"
    );
    let mounts = d.docker_ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=8m",
        "busybox",
        "grep",
        " /scratch ",
        "/proc/mounts",
    ]);
    assert!(mounts.starts_with("tmpfs /scratch tmpfs"), "{mounts}");

    // Memory: recorded, applied in the cgroup, and a hog is OOM-killed (137).
    d.docker_ok(&["run", "--name", "mem", "--memory", "32m", "busybox", "true"]);
    assert_eq!(d.inspect("mem", "{{.HostConfig.Memory}}"), "33554432");
    let limit = d.docker_ok(&["run", "--rm", "--memory", "32m", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"]);
    assert_eq!(limit, "33554432");
    let o = d.docker(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "32m",
        "busybox",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(o.code, Some(137), "memory hog is OOM-killed:\n{o}");
    assert_eq!(
        d.inspect("hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );

    // CPU quota and pids limit.
    d.docker_ok(&[
        "run",
        "--name",
        "cpu",
        "--cpus",
        "0.5",
        "--pids-limit",
        "10",
        "busybox",
        "true",
    ]);
    assert_eq!(
        d.inspect("cpu", "{{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"),
        "500000000 10"
    );
    let quota = d.docker_ok(&[
        "run",
        "--rm",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max",
    ]);
    assert!(quota.starts_with("50000"), "cfs quota for 0.5 CPU: {quota}");
    let pids = d.docker_ok(&[
        "run",
        "--rm",
        "--pids-limit",
        "10",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(pids, "10");

    // Capabilities: CHOWN (bit 0) by default, dropped on request; NET_ADMIN (bit 12) added.
    let cap_eff = |extra: &[&str]| -> u64 {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sh", "-c", "grep CapEff /proc/self/status"]);
        let line = d.docker_ok(&args);
        let hex = line.split_whitespace().nth(1).unwrap_or("");
        u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("CapEff line: {line}"))
    };
    let default = cap_eff(&[]);
    assert!(
        default & 1 != 0,
        "CHOWN is a default capability: {default:x}"
    );
    assert!(
        default & (1 << 12) == 0,
        "NET_ADMIN is not a default capability: {default:x}"
    );
    assert!(
        default & (1 << 21) == 0,
        "SYS_ADMIN is not a default capability: {default:x}"
    );
    assert!(cap_eff(&["--cap-drop", "CHOWN"]) & 1 == 0);
    assert!(cap_eff(&["--cap-add", "NET_ADMIN"]) & (1 << 12) != 0);
    d.docker_ok(&["run", "--rm", "busybox", "chown", "nobody", "/tmp"]);
    let o = d.docker_fails(&[
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "busybox",
        "chown",
        "nobody",
        "/tmp",
    ]);
    assert!(o.stderr.contains("Operation not permitted"), "{o}");

    // no-new-privileges.
    let nnp = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "grep", "NoNewPrivs", "/proc/self/status"]);
        d.docker_ok(&args)
    };
    assert!(nnp(&[]).ends_with('0'), "{}", nnp(&[]));
    assert!(nnp(&["--security-opt", "no-new-privileges"]).ends_with('1'));

    // The container has its own pid namespace and cannot see the host's processes.
    let ps = d.docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ls /proc | grep -c '^[0-9]'",
    ]);
    let n: u32 = ps.parse().unwrap_or(999);
    assert!(
        n <= 3,
        "only the container's own processes are visible ({n})"
    );
}

#[test]
fn volumes_and_bind_mounts() {
    let Some(d) = Daemon::start("volumes") else {
        return;
    };

    // A bind-mounted host file is visible; read-only binds refuse writes.
    let host_dir = d.work.join("share");
    std::fs::create_dir_all(&host_dir).expect("mkdir share");
    std::fs::write(host_dir.join("hello.txt"), "from the host\n").expect("write");
    let bind = format!("{}:/mnt/share", host_dir.display());
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            &bind,
            "busybox",
            "cat",
            "/mnt/share/hello.txt"
        ]),
        "from the host"
    );
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo back > /mnt/share/back.txt",
    ]);
    assert_eq!(
        std::fs::read_to_string(host_dir.join("back.txt")).unwrap_or_default(),
        "back\n"
    );
    let ro = format!("{bind}:ro");
    let o = d.docker_fails(&["run", "--rm", "-v", &ro, "busybox", "touch", "/mnt/share/x"]);
    assert!(o.stderr.contains("Read-only file system"), "{o}");

    // A named volume, created on first use, keeps data for the next container.
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data1:/data",
        "busybox",
        "sh",
        "-c",
        "echo persisted > /data/f",
    ]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "data1:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "persisted"
    );
    assert!(d
        .docker_ok(&["volume", "ls", "-q"])
        .lines()
        .any(|l| l == "data1"));

    // volume create / ls / inspect / rm.
    assert_eq!(d.docker_ok(&["volume", "create", "v1"]), "v1");
    assert!(d
        .docker_ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .lines()
        .any(|l| l == "v1 local"));
    assert_eq!(
        d.docker_ok(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "v1"]),
        "v1 local"
    );
    let mp = d.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "v1"]);
    assert!(mp.starts_with('/'), "{mp}");
    // A volume in use cannot be removed.
    d.docker_ok(&["run", "--name", "user", "-v", "v1:/v", "busybox", "true"]);
    let o = d.docker_fails(&["volume", "rm", "v1"]);
    assert!(o.stderr.contains("in use"), "{o}");
    d.docker_ok(&["rm", "user"]);
    assert_eq!(d.docker_ok(&["volume", "rm", "v1"]), "v1");
    assert!(!d
        .docker_ok(&["volume", "ls", "-q"])
        .lines()
        .any(|l| l == "v1"));
    let o = d.docker_fails(&["volume", "inspect", "v1"]);
    assert!(
        o.stderr.contains("no such volume") || o.stderr.contains("No such volume"),
        "{o}"
    );

    // rm -v removes a container's anonymous volume.
    d.docker_ok(&["run", "--name", "anon", "-v", "/anon", "busybox", "true"]);
    let anon = d.inspect("anon", "{{range .Mounts}}{{.Name}}{{end}}");
    assert_eq!(anon.len(), 64, "anonymous volume name: {anon}");
    assert!(d.docker_ok(&["volume", "ls", "-q"]).contains(&anon));
    d.docker_ok(&["rm", "-v", "anon"]);
    assert!(
        !d.docker_ok(&["volume", "ls", "-q"]).contains(&anon),
        "rm -v removed {anon}"
    );

    // prune removes unused anonymous volumes.
    d.docker_ok(&["run", "--name", "anon2", "-v", "/anon", "busybox", "true"]);
    let anon2 = d.inspect("anon2", "{{range .Mounts}}{{.Name}}{{end}}");
    d.docker_ok(&["rm", "anon2"]);
    assert!(d.docker_ok(&["volume", "ls", "-q"]).contains(&anon2));
    let pruned = d.docker_ok(&["volume", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    assert!(
        !d.docker_ok(&["volume", "ls", "-q"]).contains(&anon2),
        "prune removed {anon2}"
    );
}

#[test]
fn restart_policy_health_and_stop_signals() {
    let Some(d) = Daemon::start("restart_health") else {
        return;
    };

    // on-failure:2 restarts a failing container twice, then leaves it exited.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    d.wait_for(
        "flaky",
        "{{.RestartCount}} {{.State.Status}}",
        "2 exited",
        LONG,
    );
    assert_eq!(
        d.inspect(
            "flaky",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:2"
    );
    assert_eq!(d.inspect("flaky", "{{.State.ExitCode}}"), "1");

    // Health checks: healthy and unhealthy, in inspect and in ps.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.wait_for("fine", "{{.State.Health.Status}}", "healthy", LONG);
    d.wait_for("sick", "{{.State.Health.Status}}", "unhealthy", LONG);
    let status = |name: &str| {
        d.docker_ok(&[
            "ps",
            "--filter",
            &format!("name=^{name}$"),
            "--format",
            "{{.Status}}",
        ])
    };
    // (the name filter is a regular expression, anchored here)
    let fine = status("fine");
    assert!(
        fine.contains("(healthy)"),
        "ps --filter name=^fine$ status: {fine:?}"
    );
    let sick = status("sick");
    assert!(
        sick.contains("(unhealthy)"),
        "ps --filter name=^sick$ status: {sick:?}"
    );
    assert_eq!(
        d.docker_ok(&[
            "ps",
            "--filter",
            "health=unhealthy",
            "--format",
            "{{.Names}}"
        ]),
        "sick"
    );
    d.docker_ok(&["rm", "-f", "fine", "sick"]);

    // --stop-signal: docker stop sends it, the trap decides the exit code.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 11' USR1; while true; do sleep 0.2; done",
    ]);
    assert_eq!(d.inspect("usr1", "{{.Config.StopSignal}}"), "USR1");
    d.wait_for("usr1", "{{.State.Running}}", "true", LONG);
    assert_eq!(d.docker_ok(&["stop", "usr1"]), "usr1");
    assert_eq!(
        d.inspect("usr1", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 11"
    );

    // --stop-timeout: a process that ignores SIGTERM is killed after it (137).
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "--stop-timeout",
        "1",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.2; done",
    ]);
    assert_eq!(d.inspect("stubborn", "{{.Config.StopTimeout}}"), "1");
    assert_eq!(d.docker_ok(&["stop", "stubborn"]), "stubborn");
    assert_eq!(
        d.inspect("stubborn", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );
}

#[test]
fn detached_containers_ps_logs_and_attach() {
    let Some(d) = Daemon::start("ps_logs") else {
        return;
    };

    let id = d.docker_ok(&["run", "-d", "--name", "runner", "busybox", "sleep", "1000"]);
    assert_eq!(id.len(), 64, "run -d prints the full id: {id}");
    d.docker_ok(&["run", "-d", "--name", "done", "busybox", "true"]);
    d.wait_for("done", "{{.State.Status}}", "exited", LONG);

    // ps, ps -a, -q, filters, format.
    let ps = d.docker_ok(&["ps"]);
    assert!(ps.starts_with("CONTAINER ID"), "{ps}");
    assert!(ps.contains("runner") && !ps.contains("done"), "{ps}");
    let all = d.docker_ok(&["ps", "-a"]);
    assert!(
        all.contains("runner") && all.contains("done") && all.contains("Exited (0)"),
        "{all}"
    );
    assert_eq!(d.docker_ok(&["ps", "-q"]), id[..12]);
    assert_eq!(d.docker_ok(&["ps", "-q", "--no-trunc"]), id);
    assert_eq!(d.docker_ok(&["ps", "-aq"]).lines().count(), 2);
    assert_eq!(
        d.docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "name=done",
            "--format",
            "{{.Names}}"
        ]),
        "done"
    );
    assert_eq!(
        d.docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--format",
            "{{.Names}}"
        ]),
        "done"
    );
    assert_eq!(d.docker_ok(&["ps", "--format", "{{.Names}}"]), "runner");
    assert_eq!(
        d.docker_ok(&["ps", "--format", "{{.Names}} {{.Image}} {{.Command}}"]),
        "runner busybox \"sleep 1000\""
    );
    assert_eq!(
        d.docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "name=runner",
            "--filter",
            "name=done",
            "-q"
        ])
        .lines()
        .count(),
        2,
        "same-key filters OR"
    );
    assert_eq!(
        d.docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "name=runner",
            "--filter",
            "status=exited",
            "-q"
        ]),
        "",
        "different keys AND"
    );

    // logs -f follows a live container: read the first lines, then stop it.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; i=0; while true; do echo line$i; i=$((i+1)); sleep 0.3; done",
    ]);
    let mut follow = Bg(d.docker_spawn(&["logs", "-f", "ticker"]));
    let lines = first_lines(&mut follow, 3, LONG);
    assert_eq!(
        lines,
        ["line0", "line1", "line2"],
        "logs -f streams lines as they come"
    );
    drop(follow);
    d.docker_ok(&["stop", "ticker"]);
    // logs -f of a stopped container ends by itself.
    let o = d.docker_ok(&["logs", "-f", "ticker"]);
    assert!(o.starts_with("line0\nline1\nline2"), "{o}");

    // --tail, -t, --since, and stderr kept apart from stdout.
    d.docker_ok(&[
        "run",
        "--name",
        "logger",
        "busybox",
        "sh",
        "-c",
        "echo early; echo oops >&2; sleep 2; echo late1; echo late2",
    ]);
    let all = d.docker(&["logs", "logger"]);
    assert_eq!(all.stdout, "early\nlate1\nlate2\n");
    assert_eq!(all.stderr, "oops\n");
    assert_eq!(
        d.docker_ok(&["logs", "--tail", "2", "logger"]),
        "late1\nlate2"
    );
    let stamped = d.docker_ok(&["logs", "-t", "logger"]);
    let first = stamped.lines().next().unwrap_or("");
    let (ts, text) = first.split_once(' ').unwrap_or(("", ""));
    assert_eq!(text, "early", "{stamped}");
    let early = rfc3339_unix(ts).unwrap_or_else(|| panic!("timestamp {ts:?}"));
    assert!(
        (early - now_unix()).abs() < 600.0,
        "timestamp {ts} is about now"
    );
    let since = format!("{:.9}", early + 1.0);
    assert_eq!(
        d.docker_ok(&["logs", "--since", &since, "logger"]),
        "late1\nlate2"
    );

    // attach to a running container sees its output.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do echo tick; sleep 0.3; done",
    ]);
    let mut attach = Bg(d.docker_spawn(&["attach", "--no-stdin", "chatty"]));
    assert_eq!(first_lines(&mut attach, 2, LONG), ["tick", "tick"]);
    drop(attach);
    // attach with stdin: what we send comes back.
    d.docker_ok(&["run", "-d", "-i", "--name", "echoer", "busybox", "cat"]);
    // (`cat` keeps running when the attach ends: the container's stdin is not
    // closed by a detaching client, so the client is killed, not waited for.)
    let mut attach = Bg(d.docker_spawn_stdin(&["attach", "--sig-proxy=false", "echoer"]));
    let mut stdin = attach.0.stdin.take().expect("piped stdin");
    stdin
        .write_all(b"ping over attach\n")
        .expect("write to attach");
    assert_eq!(first_lines(&mut attach, 1, LONG), ["ping over attach"]);
    drop(stdin);
    drop(attach);
    d.docker_ok(&[
        "rm", "-f", "runner", "done", "ticker", "logger", "chatty", "echoer",
    ]);
}

#[test]
fn exec_in_running_containers() {
    let Some(d) = Daemon::start("exec") else {
        return;
    };
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "FROM_RUN=1",
        "busybox",
        "sleep",
        "1000",
    ]);

    assert_eq!(d.docker_ok(&["exec", "box", "echo", "inside"]), "inside");
    d.docker_code(&["exec", "box", "sh", "-c", "exit 5"], 5);
    assert_eq!(
        d.docker_ok(&["exec", "box", "sh", "-c", "echo $FROM_RUN"]),
        "1",
        "exec inherits the container env"
    );
    assert_eq!(
        d.docker_ok(&["exec", "-e", "X=y z", "box", "sh", "-c", "echo $X"]),
        "y z"
    );
    assert_eq!(
        d.docker_ok(&["exec", "-u", "nobody", "box", "id", "-u"]),
        "65534"
    );
    assert_eq!(d.docker_ok(&["exec", "-w", "/etc", "box", "pwd"]), "/etc");
    // exec shares the container's pid namespace: it sees sleep as pid 1.
    assert_eq!(
        d.docker_ok(&["exec", "box", "cat", "/proc/1/cmdline"])
            .replace('\0', " ")
            .trim(),
        "sleep 1000"
    );
    // stdin reaches exec -i.
    let o = d.docker_stdin(&["exec", "-i", "box", "cat"], b"through stdin\n");
    assert_eq!(o.stdout, "through stdin\n", "{o:?}");

    // exec -d returns at once and the command runs.
    d.docker_ok(&[
        "exec",
        "-d",
        "box",
        "sh",
        "-c",
        "sleep 0.5; echo bg > /tmp/detached",
    ]);
    let got = poll(LONG, || {
        let o = d.docker(&["exec", "box", "cat", "/tmp/detached"]);
        (o.ok() && o.out() == "bg").then_some(())
    });
    assert!(got.is_some(), "exec -d wrote /tmp/detached");

    // -it under a real pty (script(1) gives the CLI a terminal).
    let o = sh(
        &d,
        "script -qec \"docker exec -it box sh -c 'tty; echo ok'\" /dev/null",
    );
    assert!(o.ok(), "{o}");
    assert!(
        o.stdout.contains("/dev/pts/") && o.stdout.contains("ok"),
        "{o}"
    );
    let o = sh(
        &d,
        "script -qec \"docker run --rm -it busybox sh -c 'tty; echo ok'\" /dev/null",
    );
    assert!(o.ok(), "{o}");
    assert!(
        o.stdout.contains("/dev/pts/") && o.stdout.contains("ok"),
        "{o}"
    );
    // The terminal's exit code comes back through -it as well.
    let o = sh(
        &d,
        "script -qec \"docker run --rm -it busybox sh -c 'exit 4'\" /dev/null; echo rc=$?",
    );
    assert!(o.stdout.contains("rc=4"), "{o}");
    // Without a terminal, -t is refused by the CLI before it reaches the daemon.
    let o = d.docker_fails(&["exec", "-it", "box", "true"]);
    assert!(o.stderr.contains("not a TTY"), "{o}");

    // exec into a stopped container fails.
    d.docker_ok(&["run", "--name", "stopped", "busybox", "true"]);
    let o = d.docker_fails(&["exec", "stopped", "true"]);
    assert!(o.stderr.contains("is not running"), "{o}");
    d.docker_ok(&["rm", "-f", "box", "stopped"]);
}

#[test]
fn container_lifecycle_commands() {
    let Some(d) = Daemon::start("lifecycle") else {
        return;
    };
    let trap_loop = "trap 'exit 0' TERM; while true; do sleep 0.2; done";

    d.docker_ok(&[
        "run", "-d", "--name", "life", "busybox", "sh", "-c", trap_loop,
    ]);
    assert_eq!(d.inspect("life", "{{.State.Status}}"), "running");
    let pid1 = d.inspect("life", "{{.State.Pid}}");
    assert!(
        pid1.parse::<u32>().map(|p| p > 0).unwrap_or(false),
        "{pid1}"
    );

    // top and stats.
    let top = d.docker_ok(&["top", "life"]);
    assert!(
        top.starts_with("UID") && top.contains("PID") && top.contains("sh -c"),
        "{top}"
    );
    let stats = d.docker_ok(&["stats", "--no-stream", "life"]);
    assert!(
        stats.contains("MEM USAGE") && stats.contains("life"),
        "{stats}"
    );
    let mem = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        "life",
    ]);
    assert!(mem.starts_with("life ") && mem.contains("iB"), "{mem}");

    // pause / unpause.
    assert_eq!(d.docker_ok(&["pause", "life"]), "life");
    assert_eq!(
        d.inspect("life", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    let ps = d.docker_ok(&["ps", "--filter", "name=life", "--format", "{{.Status}}"]);
    assert!(ps.contains("(Paused)"), "{ps}");
    assert_eq!(
        d.docker_ok(&["ps", "--filter", "status=paused", "--format", "{{.Names}}"]),
        "life"
    );
    assert_eq!(d.docker_ok(&["unpause", "life"]), "life");
    assert_eq!(d.inspect("life", "{{.State.Status}}"), "running");

    // rename.
    d.docker_ok(&["rename", "life", "renamed"]);
    assert_eq!(d.inspect("renamed", "{{.Name}}"), "/renamed");
    d.docker_fails(&["inspect", "life"]);

    // restart gives a new process.
    assert_eq!(d.docker_ok(&["restart", "renamed"]), "renamed");
    assert_eq!(d.inspect("renamed", "{{.State.Status}}"), "running");
    assert_ne!(d.inspect("renamed", "{{.State.Pid}}"), pid1);

    // stop: SIGTERM and the trap's exit code.
    assert_eq!(d.docker_ok(&["stop", "renamed"]), "renamed");
    assert_eq!(
        d.inspect(
            "renamed",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.Pid}}"
        ),
        "exited 0 0"
    );
    // start again, then kill: SIGKILL is 137.
    assert_eq!(d.docker_ok(&["start", "renamed"]), "renamed");
    assert_eq!(d.docker_ok(&["kill", "renamed"]), "renamed");
    d.wait_for(
        "renamed",
        "{{.State.Status}} {{.State.ExitCode}}",
        "exited 137",
        LONG,
    );
    // kill -s delivers the named signal.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "hup",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 9' HUP; while true; do sleep 0.2; done",
    ]);
    d.docker_ok(&["kill", "-s", "HUP", "hup"]);
    d.wait_for("hup", "{{.State.ExitCode}}", "9", LONG);
    let o = d.docker_fails(&["kill", "hup"]);
    assert!(o.stderr.contains("is not running"), "{o}");

    // wait prints the exit code.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "waiter",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 4",
    ]);
    assert_eq!(d.docker_ok(&["wait", "waiter"]), "4");
    assert_eq!(
        d.docker_ok(&["wait", "waiter"]),
        "4",
        "wait on an exited container returns at once"
    );

    // inspect shapes that clients depend on.
    assert_eq!(d.inspect("waiter", "{{.State.Status}}"), "exited");
    assert_eq!(d.inspect("waiter", "{{.Config.Image}}"), "busybox");
    assert!(d.inspect("waiter", "{{.Image}}").starts_with("sha256:"));
    let json = d.docker_ok(&["inspect", "waiter"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("inspect prints JSON");
    assert!(
        v[0]["NetworkSettings"]["Ports"].is_object() || v[0]["NetworkSettings"]["Ports"].is_null()
    );
    assert!(
        v[0]["NetworkSettings"]["Networks"].is_object(),
        "Networks is an object: {}",
        v[0]["NetworkSettings"]
    );
    assert!(v[0]["Created"]
        .as_str()
        .map(|s| s.contains('T'))
        .unwrap_or(false));

    // rm: a running container needs -f; rm -f removes it.
    d.docker_ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "1000"]);
    let o = d.docker_fails(&["rm", "busy"]);
    assert!(
        o.stderr.contains("running") && o.stderr.contains("force"),
        "{o}"
    );
    assert_eq!(d.docker_ok(&["rm", "-f", "busy"]), "busy");
    assert_eq!(
        d.docker_ok(&["ps", "-a", "--filter", "name=busy", "-q"]),
        ""
    );
    d.docker_ok(&["rm", "renamed", "hup", "waiter"]);
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");

    // run --rm removes the container when it exits.
    d.docker_ok(&["run", "--rm", "--name", "gone", "busybox", "true"]);
    assert_eq!(
        d.docker_ok(&["ps", "-a", "--filter", "name=gone", "-q"]),
        ""
    );
}

#[test]
fn events_report_the_lifecycle() {
    let Some(d) = Daemon::start("events") else {
        return;
    };
    let since = format!("{}", now_unix().floor() as u64);
    d.docker_ok(&["run", "--name", "ev", "busybox", "true"]);
    d.docker_ok(&["run", "--name", "other", "busybox", "true"]);
    let until = format!("{}", now_unix().ceil() as u64 + 1);

    let actions = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=ev",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = actions.lines().collect();
    let pos = |a: &str| {
        actions
            .iter()
            .position(|x| *x == a)
            .unwrap_or_else(|| panic!("no {a} event in {actions:?}"))
    };
    assert!(
        pos("create") < pos("start") && pos("start") < pos("die"),
        "{actions:?}"
    );
    let who = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.name}} {{.Type}} {{.Actor.Attributes.exitCode}}",
    ]);
    assert_eq!(
        who.lines().collect::<Vec<_>>(),
        ["ev container 0", "other container 0"]
    );
    let json = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=ev",
        "--filter",
        "event=start",
        "--format",
        "{{json .}}",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(json.lines().next().unwrap_or("")).expect("event JSON");
    assert_eq!(v["status"], "start");
    assert_eq!(v["Type"], "container");
    assert_eq!(v["from"], "busybox");
    assert!(
        v["id"].as_str().map(|s| s.len() == 64).unwrap_or(false),
        "{v}"
    );

    // A live stream sees an event as it happens.
    let mut live = Bg(d.docker_spawn(&[
        "events",
        "--filter",
        "container=late",
        "--filter",
        "event=start",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]));
    thread::sleep(Duration::from_millis(500));
    d.docker_ok(&["run", "--name", "late", "busybox", "true"]);
    assert_eq!(first_lines(&mut live, 1, LONG), ["start late"]);
}

#[test]
fn container_filesystem_cp_export_diff_commit() {
    let Some(d) = Daemon::start("filesystem") else {
        return;
    };
    d.docker_ok(&["run", "-d", "--name", "fs", "busybox", "sleep", "1000"]);

    // cp host -> container, container -> host.
    let src = d.write_file("to-container.txt", "copied in\n");
    d.docker_ok(&["cp", &src, "fs:/tmp/in.txt"]);
    assert_eq!(
        d.docker_ok(&["exec", "fs", "cat", "/tmp/in.txt"]),
        "copied in"
    );
    d.docker_ok(&[
        "exec",
        "fs",
        "sh",
        "-c",
        "mkdir -p /out/sub && echo out > /out/sub/f",
    ]);
    let dest = d.work.join("from-container");
    d.docker_ok(&["cp", "fs:/out", &dest.to_string_lossy()]);
    assert_eq!(
        std::fs::read_to_string(dest.join("sub/f")).unwrap_or_default(),
        "out\n"
    );
    let o = d.docker_fails(&["cp", "fs:/no/such/file", &d.work.to_string_lossy()]);
    assert!(
        // dockerd 20.10: "Could not find the file /no/such/file in container fs".
        o.stderr.contains("Could not find the file") || o.stderr.contains("No such"),
        "{o}"
    );
    // cp to stdout writes a tar stream.
    let o = sh(&d, "docker cp fs:/tmp/in.txt - | tar -xO");
    assert_eq!(o.out(), "copied in", "{o}");

    // diff lists what changed against the image.
    let diff = d.docker_ok(&["diff", "fs"]);
    let lines: Vec<&str> = diff.lines().collect();
    assert!(lines.contains(&"A /tmp/in.txt"), "{diff}");
    assert!(lines.contains(&"C /tmp"), "{diff}");
    assert!(lines.contains(&"A /out/sub/f"), "{diff}");

    // export writes the container's filesystem.
    let tar = d.work.join("fs.tar");
    d.docker_ok(&["export", "-o", &tar.to_string_lossy(), "fs"]);
    let o = run_cmd(Command::new("tar").arg("-tf").arg(&tar), LONG);
    assert!(o.ok(), "{o}");
    let names: Vec<&str> = o
        .stdout
        .lines()
        .map(|l| l.trim_start_matches("./"))
        .collect();
    assert!(
        names.contains(&"bin/busybox") && names.contains(&"tmp/in.txt"),
        "export lists: {:?}",
        &names[..names.len().min(20)]
    );

    // commit, then run the committed image.
    let img = d.docker_ok(&["commit", "-c", "ENV COMMITTED=yes", "fs", "committed:1"]);
    assert!(img.starts_with("sha256:"), "{img}");
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "committed:1",
            "sh",
            "-c",
            "cat /tmp/in.txt; echo $COMMITTED"
        ]),
        "copied in\nyes"
    );
    assert!(d
        .docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .any(|l| l == "committed:1"));
    d.docker_ok(&["rm", "-f", "fs"]);
}

#[test]
fn images_save_load_import_prune() {
    let Some(d) = Daemon::start("images") else {
        return;
    };

    let images = d.docker_ok(&["images"]);
    assert!(
        images.starts_with("REPOSITORY") && images.contains("busybox"),
        "{images}"
    );
    assert_eq!(
        d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest"
    );
    let id = d.docker_ok(&["images", "-q", "--no-trunc", "busybox"]);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(
        d.docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}} {{.Architecture}}",
            "busybox"
        ])
        .split(' ')
        .next(),
        Some("linux")
    );
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]),
        id
    );
    assert_eq!(
        d.docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{len .RootFS.Layers}}",
            "busybox"
        ]),
        "1"
    );
    let history = d.docker_ok(&["image", "history", "busybox"]);
    assert!(
        history.starts_with("IMAGE") && history.lines().count() >= 2,
        "{history}"
    );
    let o = d.docker_fails(&["image", "inspect", "nosuch:image"]);
    assert!(
        o.stderr.contains("No such image") || o.stderr.contains("No such object"),
        "{o}"
    );

    // tag and rm.
    d.docker_ok(&["tag", "busybox", "mytag:1"]);
    assert_eq!(d.docker_ok(&["images", "-q", "--no-trunc", "mytag:1"]), id);
    let untag = d.docker_ok(&["image", "rm", "mytag:1"]);
    assert!(untag.contains("Untagged: mytag:1"), "{untag}");
    assert_eq!(d.docker_ok(&["images", "-q", "mytag"]), "");

    // save and load round trip.
    d.docker_ok(&["tag", "busybox", "saved:1"]);
    let archive = d.work.join("saved.tar");
    d.docker_ok(&["save", "-o", &archive.to_string_lossy(), "saved:1"]);
    let o = run_cmd(Command::new("tar").arg("-tf").arg(&archive), LONG);
    assert!(
        o.stdout.lines().any(|l| l == "manifest.json"),
        "docker-archive has manifest.json:\n{o}"
    );
    d.docker_ok(&["image", "rm", "saved:1"]);
    let loaded = d.docker_ok(&["load", "-i", &archive.to_string_lossy()]);
    assert!(loaded.contains("Loaded image: saved:1"), "{loaded}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "saved:1", "echo", "loaded"]),
        "loaded"
    );
    // save to stdout and load from stdin.
    let o = sh(&d, "docker save saved:1 | docker load");
    assert!(o.ok() && o.stdout.contains("saved:1"), "{o}");

    // import from stdin with a tag, then run it.
    let tar = d.busybox_tarball();
    let o = sh(
        &d,
        &format!("docker import - imported:1 < {}", tar.display()),
    );
    assert!(o.ok() && o.out().starts_with("sha256:"), "{o}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "imported:1", "echo", "imported"]),
        "imported"
    );
    assert!(d
        .docker_ok(&["image", "history", "imported:1"])
        .contains("Imported from -"));

    // image prune removes dangling images only.
    let dangling = d.docker_ok(&["import", &tar.to_string_lossy()]);
    assert!(dangling.starts_with("sha256:"));
    assert!(d
        .docker_ok(&["images", "-q", "--no-trunc", "--filter", "dangling=true"])
        .contains(&dangling));
    let pruned = d.docker_ok(&["image", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    assert_eq!(
        d.docker_ok(&["images", "-q", "--filter", "dangling=true"]),
        ""
    );
    assert!(d
        .docker_ok(&["images", "--format", "{{.Repository}}"])
        .lines()
        .any(|l| l == "busybox"));

    // An image used by a container cannot be removed without -f.
    d.docker_ok(&["run", "--name", "user", "imported:1", "true"]);
    let imported_id = d.docker_ok(&["images", "-q", "imported:1"]);
    d.docker_ok(&["tag", "imported:1", "imported:2"]);
    d.docker_ok(&["image", "rm", "imported:2"]);
    let o = d.docker_fails(&["image", "rm", &imported_id]);
    assert!(
        o.stderr.contains("conflict") || o.stderr.contains("being used"),
        "{o}"
    );

    // system df and system prune.
    let df = d.docker_ok(&["system", "df"]);
    assert!(
        df.contains("Images") && df.contains("Containers") && df.contains("Local Volumes"),
        "{df}"
    );
    let pruned = d.docker_ok(&["system", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "system prune removed the stopped container"
    );
    assert!(d
        .docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .any(|l| l == "busybox:latest"));
}

#[test]
fn dropping_the_daemon_leaves_nothing_behind() {
    let Some(d) = Daemon::start("cleanup") else {
        return;
    };
    d.docker_ok(&[
        "run", "-d", "--name", "running", "-v", "vol:/v", "busybox", "sleep", "1000",
    ]);
    d.docker_ok(&["run", "-d", "--name", "frozen", "busybox", "sleep", "1000"]);
    d.docker_ok(&["pause", "frozen"]);
    d.docker_ok(&[
        "run", "-d", "--name", "tmpfs", "--tmpfs", "/t", "busybox", "sleep", "1000",
    ]);
    let pids: Vec<i32> = ["running", "frozen", "tmpfs"]
        .iter()
        .map(|n| d.inspect(n, "{{.State.Pid}}").parse().unwrap_or(0))
        .collect();
    assert!(
        pids.iter().all(|p| *p > 0 && support::pid_alive(*p)),
        "{pids:?}"
    );
    let ids: Vec<String> = d
        .docker_ok(&["ps", "-aq", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 3);
    let (dir, tag) = (d.dir.clone(), d.tag.clone());
    drop(d);

    let cgroups = support::cgroups_named(&ids, &tag);
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");

    assert!(!dir.exists(), "{} removed", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let needle = dir.to_string_lossy().into_owned();
    assert!(!mounts.contains(&needle), "no mounts left under {needle}");
    assert!(
        pids.iter().all(|p| !support::pid_alive(*p)),
        "container processes gone: {pids:?}"
    );
    let left: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect();
    assert!(left.is_empty(), "processes left: {left:?}");
}
