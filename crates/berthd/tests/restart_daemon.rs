//! End-to-end test that containers outlive the daemon: 20 containers keep running
//! while berthd is killed with SIGKILL, and a new berthd on the same directories finds
//! them all again, stops them and reports their exit codes.

mod support;

use std::time::Duration;

use support::{pid_alive, Daemon, Peer};

const COUNT: usize = 20;
const TRAPPED: &str = "trap 'exit 7' TERM; while true; do sleep 1; done";

#[test]
fn containers_survive_a_daemon_killed_with_sigkill() {
    let Some(mut d) = Daemon::start("restart_daemon") else {
        return;
    };

    let names: Vec<String> = (0..COUNT).map(|i| format!("survivor{i}")).collect();
    for name in &names {
        d.docker_ok(&["run", "-d", "--name", name, "busybox", "sh", "-c", TRAPPED]);
    }
    for name in &names {
        d.wait_for(name, "{{.State.Running}}", "true", Duration::from_secs(60));
    }
    assert_eq!(d.docker_ok(&["ps", "-q"]).lines().count(), COUNT);
    let pids: Vec<i32> = names
        .iter()
        .map(|n| {
            let p = d.inspect(n, "{{.State.Pid}}");
            p.parse().unwrap_or_else(|_| panic!("{n}: State.Pid {p:?}"))
        })
        .collect();
    assert!(pids.iter().all(|p| *p > 0 && pid_alive(*p)), "{pids:?}");

    if d.peer == Peer::Berthd {
        // The daemon dies without any chance to clean up.
        let daemon_pid = d.pid().expect("daemon pid");
        d.kill9();
        assert!(!pid_alive(daemon_pid as i32), "berthd is gone");
        let dead: Vec<(&String, &i32)> = names
            .iter()
            .zip(&pids)
            .filter(|(_, p)| !pid_alive(**p))
            .collect();
        assert!(dead.is_empty(), "containers died with the daemon: {dead:?}");

        // A new daemon on the same directories finds them all, still running.
        d.launch();
        assert_eq!(
            d.docker_ok(&["ps", "-q"]).lines().count(),
            COUNT,
            "berthd found its containers again:\n{}",
            d.docker_ok(&["ps", "-a"])
        );
        for (name, pid) in names.iter().zip(&pids) {
            assert_eq!(d.inspect(name, "{{.State.Status}}"), "running");
            assert_eq!(
                d.inspect(name, "{{.State.Pid}}"),
                pid.to_string(),
                "{name} keeps its pid"
            );
        }
        // Logs and exec still reach the adopted containers.
        d.docker_ok(&["exec", &names[0], "true"]);
    } else {
        // dockerd 20.10 without --live-restore stops its containers when it dies or
        // exits, and with it restores them through containerd, not on its own: the
        // kill -9 part is the berthd contract only.
        eprintln!(
            "restart_daemon: peer mode ({:?}): skipping the kill -9 / restart part (berthd only)",
            d.peer
        );
    }

    // Stopping them all delivers SIGTERM to each; the trap's exit code is recorded.
    let mut args = vec!["stop".to_string()];
    args.extend(names.iter().cloned());
    let stopped = d.docker_ok(&args);
    assert_eq!(stopped.lines().count(), COUNT, "{stopped}");
    for name in &names {
        assert_eq!(
            d.inspect(name, "{{.State.Status}} {{.State.ExitCode}}"),
            "exited 7",
            "{name}"
        );
    }
    assert_eq!(d.docker_ok(&["ps", "-q"]), "");
    assert!(
        pids.iter().all(|p| !pid_alive(*p)),
        "container processes are gone"
    );
}
