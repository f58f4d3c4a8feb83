//! Real containers checking the config.json features the lifecycle tests do not: process
//! attributes, devices, sysctls, cgroup values, namespaces joined by path, --no-pivot.

mod support;

use serde_json::json;
use support::{unique_id, Bundle, OutputExt, Runc};

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root");
    false
}

/// Runs `script` in a fresh busybox container after `edit` changes its config; returns stdout.
fn run_with(edit: impl FnOnce(&mut serde_json::Value), script: &str) -> String {
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sh", "-c", script]);
    bundle.config_mut(edit);
    runc.run(&bundle, &unique_id("cfg"))
        .assert_success()
        .stdout_str()
}

#[test]
fn process_attributes_reach_the_process() {
    if !root() {
        return;
    }
    let out = run_with(
        |c| {
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [20, 30], "umask": 63});
            c["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1536},
                {"type": "RLIMIT_NPROC", "hard": 100, "soft": 50}
            ]);
            c["process"]["oomScoreAdj"] = json!(321);
            c["process"]["env"] = json!(["PATH=/bin", "GREETING=hi there"]);
            c["process"]["cwd"] = json!("/tmp");
            c["process"]["noNewPrivileges"] = json!(true);
        },
        "id -u; id -g; id -G; umask; ulimit -n; ulimit -Hn; ulimit -u; cat /proc/self/oom_score_adj; \
         echo \"$GREETING\"; pwd; grep NoNewPrivs /proc/self/status",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    let groups: Vec<&str> = lines[2].split_whitespace().collect();
    assert!(groups.contains(&"20") && groups.contains(&"30"), "{out}");
    assert_eq!(lines[3], "0077");
    assert_eq!(lines[4], "1536");
    assert_eq!(lines[5], "2048");
    assert_eq!(lines[6], "50");
    assert_eq!(lines[7], "321");
    assert_eq!(lines[8], "hi there");
    assert_eq!(lines[9], "/tmp");
    assert!(lines[10].ends_with('1'), "{out}");
}

#[test]
fn devices_sysctl_and_domainname() {
    if !root() {
        return;
    }
    let out = run_with(
        |c| {
            c["linux"]["devices"] = json!([
                {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 0, "gid": 0}
            ]);
            c["linux"]["resources"]["devices"] = json!([
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}
            ]);
            c["linux"]["sysctl"] = json!({"kernel.shm_rmid_forced": "1", "net.ipv4.ip_forward": "1"});
            c["domainname"] = json!("berth.example");
            // A host device bound in but not allowed by the device cgroup (runc's defaults are
            // appended after the config's rules and cannot be denied; /dev/kmsg is not one).
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/dev/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]
            }));
        },
        "ls -l /dev/mynull; echo x > /dev/mynull && echo wrote; cat /proc/sys/kernel/shm_rmid_forced; \
         cat /proc/sys/net/ipv4/ip_forward; cat /proc/sys/kernel/domainname; (echo x > /dev/kmsg) 2>&1 || true",
    );
    assert!(out.starts_with("crw-------"), "{out}");
    assert!(out.contains("1,   3") || out.contains("1, 3"), "{out}");
    assert!(out.contains("wrote"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[2], "1");
    assert_eq!(lines[3], "1");
    assert_eq!(lines[4], "berth.example");
    // /dev/kmsg (1:11) is not allowed by the device cgroup.
    assert!(out.contains("Operation not permitted"), "{out}");
}

/// The v1 blkio weight file this host has: none without the BFQ (or CFQ) I/O scheduler.
fn blkio_weight_file() -> Option<&'static str> {
    ["blkio.bfq.weight", "blkio.weight"].into_iter().find(|f| {
        std::path::Path::new("/sys/fs/cgroup/blkio")
            .join(f)
            .exists()
    })
}

#[test]
fn cgroup_values_are_applied() {
    if !root() {
        return;
    }
    let weight = blkio_weight_file();
    let out = run_with(
        |c| {
            c["linux"]["resources"] = json!({
                "memory": {"limit": 67108864, "reservation": 33554432},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
                "pids": {"limit": 42},
            });
            if weight.is_some() {
                c["linux"]["resources"]["blockIO"] = json!({"weight": 300});
            }
        },
        &format!(
            "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes \
             cpu/cpu.shares cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpuset/cpuset.cpus pids/pids.max{}",
            weight.map(|f| format!(" blkio/{f}")).unwrap_or_default()
        ),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..7],
        ["67108864", "33554432", "512", "50000", "100000", "0", "42"],
        "{out}"
    );
    if weight.is_some() {
        // bfq's file reads "default 300".
        assert!(lines[7].ends_with("300"), "{out}");
    }
}

#[test]
fn a_blkio_weight_the_host_cannot_apply_is_refused_by_name() {
    if !root() || blkio_weight_file().is_some() {
        return;
    }
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["true"]);
    bundle.config_mut(|c| c["linux"]["resources"] = json!({"blockIO": {"weight": 300}}));
    let id = unique_id("cfg");
    let err = runc.run(&bundle, &id).assert_failure();
    assert!(
        err.contains("blkio weight: neither blkio.weight nor blkio.bfq.weight exists"),
        "{err}"
    );
    // Nothing is left of it.
    assert!(!runc.containers().contains(&id));
}

#[test]
fn masked_and_readonly_paths() {
    if !root() {
        return;
    }
    let out = run_with(
        |c| {
            c["linux"]["maskedPaths"] = json!(["/proc/kallsyms", "/proc/scsi", "/does/not/exist"]);
            c["linux"]["readonlyPaths"] = json!(["/proc/sys", "/etc"]);
            c["root"]["readonly"] = json!(false);
        },
        "wc -c < /proc/kallsyms; ls /proc/scsi 2>/dev/null | wc -l; (echo 1 > /proc/sys/kernel/shm_rmid_forced) 2>&1; \
         (touch /etc/new) 2>&1; touch /tmp/ok && echo tmp-writable",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "{out}");
    assert_eq!(lines[1].trim(), "0", "{out}");
    assert!(lines[2].contains("Read-only file system"), "{out}");
    assert!(lines[3].contains("Read-only file system"), "{out}");
    assert_eq!(lines[4], "tmp-writable");
}

#[test]
fn joins_namespaces_by_path() {
    if !root() {
        return;
    }
    let runc = Runc::new();
    let first = Bundle::busybox(&["sleep", "1000"]);
    first.config_mut(|c| c["hostname"] = json!("first"));
    let id = unique_id("ns-owner");
    runc.output_detached(["run", "-d", "--bundle", first.path().to_str().unwrap(), &id])
        .assert_success();
    let state: serde_json::Value =
        serde_json::from_slice(&runc.output(["state", &id]).assert_success().stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();

    let second = Bundle::busybox(&[
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo",
    ]);
    second.config_mut(|c| {
        let nss = c["linux"]["namespaces"].as_array_mut().unwrap();
        for ns in nss.iter_mut() {
            if ns["type"] == "uts" {
                ns["path"] = json!(format!("/proc/{pid}/ns/uts"));
            }
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{pid}/ns/pid"));
            }
        }
        c["hostname"] = json!(null);
    });
    let out = runc
        .run(&second, &unique_id("ns-joiner"))
        .assert_success()
        .stdout_str();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "first", "{out}");
    // The joiner sees the first container's sleep as pid 1: same pid namespace.
    assert_eq!(lines[1].trim(), "sleep 1000", "{out}");
    runc.output(["delete", "-f", &id]).assert_success();
}

#[test]
fn no_pivot_runs_in_a_chroot() {
    if !root() {
        return;
    }
    let runc = Runc::new();
    let bundle = Bundle::busybox(&["sh", "-c", "ls /; cat /etc/passwd | head -1"]);
    let out = runc
        .output([
            "run",
            "--no-pivot",
            "--bundle",
            bundle.path().to_str().unwrap(),
            &unique_id("nopivot"),
        ])
        .assert_success()
        .stdout_str();
    assert!(out.contains("bin") && out.contains("proc"), "{out}");
    assert!(out.contains("root:x:0:0"), "{out}");
}

#[test]
fn log_file_gets_json_errors() {
    if !root() {
        return;
    }
    let runc = Runc::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let out = runc.output([
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        "no-such-container",
    ]);
    out.assert_failure();
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"].as_str().unwrap().contains("no-such-container"),
        "{text}"
    );
}

#[test]
fn systemd_cgroup_is_refused_clearly() {
    let runc = Runc::new();
    let err = runc.output(["--systemd-cgroup", "list"]).assert_failure();
    assert!(
        err.contains("systemd cgroup driver is not supported"),
        "{err}"
    );
}
