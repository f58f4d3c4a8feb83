//! Wire samples: request bodies exactly as the docker CLI 28.2 and the Python SDK send them
//! (the CLI's recorded against a socket that answered `Api-Version: 1.43`), and replies in
//! the shape dockerd writes, parsed and written back.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// `docker run -d -p 8080:80 -e A=1 -v vol:/data --restart on-failure:3
/// --health-cmd 'wget -qO- localhost || exit 1' --health-interval 5s --health-timeout 2s
/// --health-retries 3 --health-start-period 10s --memory 64m --cpus 0.5 --name web
/// -l app=web busybox httpd -f`
const CLI_RUN_D: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["A=1"],"Cmd":["httpd","-f"],"Healthcheck":{"Test":["CMD-SHELL","wget -qO- localhost || exit 1"],"Interval":5000000000,"Timeout":2000000000,"StartPeriod":10000000000,"Retries":3},"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{"app":"web"},"HostConfig":{"Binds":["vol:/data"],"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":67108864,"NanoCpus":500000000,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}"#;

/// `docker run -d --read-only --tmpfs /run:rw,size=64m --init --cap-add NET_ADMIN
/// --cap-drop ALL --security-opt no-new-privileges --pids-limit 20 --stop-signal SIGINT
/// --stop-timeout 5 --ulimit nofile=1024:2048 --device /dev/fuse --entrypoint /bin/sh -w /srv
/// -u 1000:1000 --hostname h1 --rm busybox -c 'echo hi'`
const CLI_RUN_HARDENED: &str = r#"{"Hostname":"h1","Domainname":"","User":"1000:1000","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["-c","echo hi"],"Image":"busybox","Volumes":{},"WorkingDir":"/srv","Entrypoint":["/bin/sh"],"OnBuild":null,"Labels":{},"StopSignal":"SIGINT","StopTimeout":5,"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":["CAP_NET_ADMIN"],"CapDrop":["ALL"],"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":true,"SecurityOpt":["no-new-privileges"],"Tmpfs":{"/run":"rw,size=64m"},"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[{"PathOnHost":"/dev/fuse","PathInContainer":"/dev/fuse","CgroupPermissions":"rwm"}],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":20,"Ulimits":[{"Name":"nofile","Hard":2048,"Soft":1024}],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null,"Init":true},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}"#;

/// `docker exec -d -e X=1 -u root -w /tmp c1 sh -c 'echo hi'`: create, then start.
const CLI_EXEC_CREATE: &str = r#"{"User":"root","Privileged":false,"Tty":false,"AttachStdin":false,"AttachStderr":false,"AttachStdout":false,"Detach":true,"DetachKeys":"","Env":["X=1"],"WorkingDir":"/tmp","Cmd":["sh","-c","echo hi"]}"#;
const CLI_EXEC_START: &str = r#"{"Detach":true,"Tty":false}"#;

/// docker-py 7 `containers.create("busybox", "echo hi", environment={"A": "1"},
/// ports={"80/tcp": 8080}, volumes={"vol": {"bind": "/data", "mode": "rw"}},
/// restart_policy={"Name": "on-failure", "MaximumRetryCount": 3}, mem_limit="64m",
/// nano_cpus=500000000, healthcheck={"test": "true"}, labels={"app": "web"})`: top-level
/// `None`s are dropped, nested ones (the health check's) are sent as `null`.
const PY_CREATE: &str = r#"{"Tty": false, "OpenStdin": false, "StdinOnce": false, "AttachStdin": false, "AttachStdout": false, "AttachStderr": false, "Env": ["A=1"], "Cmd": ["echo", "hi"], "Image": "busybox", "NetworkDisabled": false, "Labels": {"app": "web"}, "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": null, "Timeout": null, "Retries": null, "StartPeriod": null}, "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}}, "HostConfig": {"NetworkMode": "default", "Binds": ["vol:/data:rw"], "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}, "Memory": 67108864, "NanoCpus": 500000000}}"#;

fn parse_create(text: &str) -> ContainerCreateRequest {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn cli_run_detached_with_ports_volume_restart_health_limits() {
    let r = parse_create(CLI_RUN_D);
    let c = &r.config;
    assert_eq!(c.image, "busybox");
    assert_eq!(c.cmd.as_ref().unwrap().as_slice(), ["httpd", "-f"]);
    assert_eq!(c.entrypoint, None);
    assert_eq!(c.env.as_deref(), Some(&["A=1".to_string()][..]));
    assert!(c.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
    assert_eq!(c.labels.as_ref().unwrap()["app"], "web");
    let hc = c.healthcheck.as_ref().unwrap();
    assert_eq!(
        hc.test.as_deref().unwrap(),
        ["CMD-SHELL", "wget -qO- localhost || exit 1"]
    );
    assert_eq!(hc.interval, 5_000_000_000);
    assert_eq!(hc.timeout, 2_000_000_000);
    assert_eq!(hc.start_period, 10_000_000_000);
    assert_eq!(hc.retries, 3);

    let h = r.host_config.as_ref().unwrap();
    assert_eq!(h.binds.as_deref().unwrap(), ["vol:/data"]);
    assert_eq!(h.network_mode, "default");
    let pb = &h.port_bindings.as_ref().unwrap()["80/tcp"];
    assert_eq!(
        pb.as_deref().unwrap(),
        [PortBinding {
            host_ip: "".into(),
            host_port: "8080".into()
        }]
    );
    assert_eq!(h.restart_policy.name, "on-failure");
    assert_eq!(h.restart_policy.maximum_retry_count, 3);
    assert_eq!(h.resources.memory, 64 << 20);
    assert_eq!(h.resources.nano_cpus, 500_000_000);
    assert_eq!(h.resources.memory_swappiness, Some(-1));
    assert_eq!(h.resources.pids_limit, Some(0));
    assert_eq!(h.init, None);
    let eps = r.networking_config.unwrap().endpoints_config.unwrap();
    assert!(eps.contains_key("default"));
}

#[test]
fn cli_run_hardened() {
    let r = parse_create(CLI_RUN_HARDENED);
    let c = &r.config;
    assert_eq!(c.entrypoint.as_ref().unwrap().as_slice(), ["/bin/sh"]);
    assert_eq!(c.cmd.as_ref().unwrap().as_slice(), ["-c", "echo hi"]);
    assert_eq!(c.env, None);
    assert_eq!(
        (c.user.as_str(), c.working_dir.as_str()),
        ("1000:1000", "/srv")
    );
    assert_eq!(c.hostname, "h1");
    assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(c.stop_timeout, Some(5));
    let h = r.host_config.unwrap();
    assert!(h.readonly_rootfs && h.auto_remove);
    assert_eq!(h.init, Some(true));
    assert_eq!(h.tmpfs.unwrap()["/run"], "rw,size=64m");
    assert_eq!(h.cap_add.unwrap().as_slice(), ["CAP_NET_ADMIN"]);
    assert_eq!(h.cap_drop.unwrap().as_slice(), ["ALL"]);
    assert_eq!(h.security_opt.unwrap(), ["no-new-privileges"]);
    assert_eq!(h.resources.pids_limit, Some(20));
    assert_eq!(
        h.resources.ulimits.unwrap(),
        [Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048
        }]
    );
    assert_eq!(
        h.resources.devices.unwrap()[0],
        DeviceMapping {
            path_on_host: "/dev/fuse".into(),
            path_in_container: "/dev/fuse".into(),
            cgroup_permissions: "rwm".into()
        }
    );
    assert_eq!(h.restart_policy.name, "no");
    assert_eq!(h.port_bindings.unwrap().len(), 0);
}

#[test]
fn python_sdk_create_with_nulls() {
    let r = parse_create(PY_CREATE);
    let hc = r.config.healthcheck.unwrap();
    assert_eq!(hc.test.unwrap(), ["CMD-SHELL", "true"]);
    assert_eq!((hc.interval, hc.retries), (0, 0));
    assert_eq!(r.config.hostname, "", "absent string");
    let h = r.host_config.unwrap();
    assert_eq!(h.binds.unwrap(), ["vol:/data:rw"]);
    assert_eq!(h.resources.memory, 67108864);
    assert_eq!(h.resources.pids_limit, None);
    assert_eq!(h.console_size, [0, 0]);
    assert!(r.config.volumes.unwrap().contains_key("/data"));
}

#[test]
fn wrong_types_are_errors_not_defaults() {
    // A list where Docker wants a map fails (as in dockerd), also inside flattened fields.
    let err = serde_json::from_str::<ContainerCreateRequest>(
        r#"{"Image":"busybox","Volumes":["/data"]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
    let err = serde_json::from_str::<ContainerCreateRequest>(
        r#"{"Image":"busybox","HostConfig":{"Memory":"64m"}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
}

#[test]
fn entrypoint_and_cmd_as_string_or_array() {
    let s = parse_create(r#"{"Image":"x","Entrypoint":"/bin/sh -c","Cmd":"echo hi"}"#);
    assert_eq!(s.config.entrypoint.unwrap().as_slice(), ["/bin/sh -c"]);
    assert_eq!(s.config.cmd.unwrap().as_slice(), ["echo hi"]);
    let a = parse_create(r#"{"Image":"x","Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"]}"#);
    assert_eq!(a.config.entrypoint.unwrap().as_slice(), ["/bin/sh", "-c"]);
    // `--entrypoint ""` resets the image's entrypoint.
    let e = parse_create(r#"{"Image":"x","Entrypoint":[""]}"#);
    assert_eq!(e.config.entrypoint.unwrap().as_slice(), [""]);
    let n = parse_create(r#"{"Image":"x","Entrypoint":null,"Cmd":null}"#);
    assert_eq!((n.config.entrypoint, n.config.cmd), (None, None));
}

#[test]
fn create_round_trips_through_our_types() {
    let r = parse_create(CLI_RUN_D);
    let text = serde_json::to_string(&r).unwrap();
    let again = parse_create(&text);
    assert_eq!(again, r);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["HostConfig"]["Memory"], json!(67108864));
    assert_eq!(v["Cmd"], json!(["httpd", "-f"]));
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
}

#[test]
fn cli_exec_bodies() {
    let c: ExecCreateRequest = serde_json::from_str(CLI_EXEC_CREATE).unwrap();
    assert_eq!(c.cmd.unwrap().as_slice(), ["sh", "-c", "echo hi"]);
    assert_eq!(c.env.unwrap(), ["X=1"]);
    assert_eq!((c.user.as_str(), c.working_dir.as_str()), ("root", "/tmp"));
    assert!(c.detach && !c.tty && !c.attach_stdout);
    let s: ExecStartRequest = serde_json::from_str(CLI_EXEC_START).unwrap();
    assert!(s.detach && !s.tty);
    assert_eq!(s.console_size, None);

    let inspect: ExecInspect = serde_json::from_str(
        r#"{"CanRemove":false,"ContainerID":"c1","DetachKeys":"","ExitCode":null,"ID":"e1",
            "OpenStderr":true,"OpenStdin":false,"OpenStdout":true,"ProcessConfig":{"arguments":
            ["-c","exit 5"],"entrypoint":"sh","privileged":false,"tty":false,"user":""},
            "Running":true,"Pid":4242}"#,
    )
    .unwrap();
    assert_eq!(inspect.exit_code, None);
    assert_eq!(inspect.process_config.entrypoint, "sh");
    assert_eq!(inspect.pid, 4242);
    let out: Value = serde_json::to_value(&inspect).unwrap();
    assert_eq!(out["ExitCode"], Value::Null);
    assert_eq!(out["ProcessConfig"]["arguments"], json!(["-c", "exit 5"]));
}

#[test]
fn inspect_writes_ports_and_networks_as_objects() {
    let empty = ContainerInspect::default();
    let v = serde_json::to_value(&empty).unwrap();
    assert_eq!(v["NetworkSettings"]["Ports"], json!({}));
    assert_eq!(v["NetworkSettings"]["Networks"], json!({}));
    assert_eq!(v["Mounts"], json!([]));
    assert_eq!(v["Args"], json!([]));
    assert!(v["State"].get("Health").is_none());
    // Go-style nil slices stay null, as dockerd writes them.
    assert_eq!(v["Config"]["Env"], Value::Null);

    // And a daemon's null is read as an empty object.
    let parsed: ContainerInspect = serde_json::from_str(
        r#"{"Id":"abc","NetworkSettings":{"Ports":null,"Networks":null},"Mounts":null}"#,
    )
    .unwrap();
    assert!(parsed.network_settings.ports.is_empty());
    let back = serde_json::to_value(&parsed).unwrap();
    assert_eq!(back["NetworkSettings"]["Ports"], json!({}));
    assert_eq!(back["NetworkSettings"]["Networks"], json!({}));
}

#[test]
fn inspect_as_dockerd_writes_it() {
    let text = r#"{"Id":"4f2c","Created":"2024-05-01T10:00:00.123456789Z","Path":"sh",
      "Args":["-c","exit 3"],"State":{"Status":"exited","Running":false,"Paused":false,
      "Restarting":false,"OOMKilled":false,"Dead":false,"Pid":0,"ExitCode":3,"Error":"",
      "StartedAt":"2024-05-01T10:00:01Z","FinishedAt":"2024-05-01T10:00:02Z",
      "Health":{"Status":"unhealthy","FailingStreak":3,"Log":[{"Start":"2024-05-01T10:00:01Z",
      "End":"2024-05-01T10:00:01.5Z","ExitCode":1,"Output":"nope\n"}]}},
      "Image":"sha256:ab12","ResolvConfPath":"/var/lib/docker/containers/4f2c/resolv.conf",
      "LogPath":"/var/lib/docker/containers/4f2c/4f2c-json.log","Name":"/web","RestartCount":2,
      "Driver":"overlay2","Platform":"linux","ExecIDs":null,
      "HostConfig":{"Binds":["vol:/data"],"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},
        "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"Memory":67108864,
        "NanoCpus":500000000,"PidsLimit":null,"ConsoleSize":[0,0],"Tmpfs":{"/run":""}},
      "GraphDriver":{"Data":{"MergedDir":"/m"},"Name":"overlay2"},
      "Mounts":[{"Type":"volume","Name":"vol","Source":"/var/lib/docker/volumes/vol/_data",
        "Destination":"/data","Driver":"local","Mode":"z","RW":true,"Propagation":""}],
      "Config":{"Hostname":"4f2c","Env":["A=1","PATH=/bin"],"Cmd":["sh","-c","exit 3"],
        "Image":"busybox","Entrypoint":null,"Labels":{},"ExposedPorts":{"80/tcp":{}},
        "Healthcheck":{"Test":["CMD-SHELL","false"],"Interval":5000000000}},
      "NetworkSettings":{"Bridge":"","SandboxID":"s1","Ports":{"80/tcp":[{"HostIp":"0.0.0.0",
        "HostPort":"8080"}],"443/tcp":null},"IPAddress":"172.17.0.2","IPPrefixLen":16,
        "Networks":{"bridge":{"IPAMConfig":null,"NetworkID":"n1","EndpointID":"e1",
        "Gateway":"172.17.0.1","IPAddress":"172.17.0.2","IPPrefixLen":16,"MacAddress":"02:42:ac:11:00:02"}}}}"#;
    let i: ContainerInspect = serde_json::from_str(text).unwrap();
    assert_eq!(i.state.exit_code, 3);
    let health = i.state.health.as_ref().unwrap();
    assert_eq!(
        (health.status.as_str(), health.failing_streak),
        ("unhealthy", 3)
    );
    assert_eq!(health.log[0].output, "nope\n");
    assert_eq!(i.name, "/web");
    assert_eq!(i.restart_count, 2);
    assert_eq!(i.host_config.resources.memory, 64 << 20);
    assert_eq!(i.mounts[0].name, "vol");
    assert!(i.mounts[0].rw);
    assert_eq!(i.network_settings.ports["443/tcp"], None);
    assert_eq!(
        i.network_settings.ports["80/tcp"].as_ref().unwrap()[0].host_port,
        "8080"
    );
    assert_eq!(i.network_settings.networks["bridge"].network_id, "n1");
    let back = serde_json::to_value(&i).unwrap();
    assert_eq!(back["NetworkSettings"]["Ports"]["443/tcp"], Value::Null);
    assert_eq!(back["State"]["OOMKilled"], json!(false));
    assert_eq!(back["Mounts"][0]["RW"], json!(true));
}

#[test]
fn summary_as_ps_reads_it() {
    let s = ContainerSummary {
        id: "4f2c".into(),
        names: vec!["/web".into()],
        state: "running".into(),
        status: status_text(StatusInput::Running {
            since: Duration::from_secs(2),
            paused: false,
            health: None,
        }),
        ..Default::default()
    };
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["NetworkSettings"], json!({"Networks": {}}));
    assert_eq!(v["Ports"], json!([]));
    assert_eq!(v["Labels"], json!({}));
    assert_eq!(v["Names"], json!(["/web"]));
    assert_eq!(v["Status"], "Up 2 seconds");
    assert!(v.get("SizeRw").is_none());

    let parsed: Vec<ContainerSummary> = serde_json::from_str(
        r#"[{"Id":"4f2c","Names":["/web"],"Image":"busybox","ImageID":"sha256:ab",
        "Command":"httpd -f","Created":1714557600,"Ports":[{"IP":"0.0.0.0","PrivatePort":80,
        "PublicPort":8080,"Type":"tcp"},{"PrivatePort":443,"Type":"tcp"}],"SizeRw":12,
        "Labels":{"app":"web"},"State":"running","Status":"Up About a minute (unhealthy)",
        "HostConfig":{"NetworkMode":"default"},"NetworkSettings":{"Networks":{"bridge":
        {"NetworkID":"n1","IPAddress":"172.17.0.2"}}},"Mounts":[]}]"#,
    )
    .unwrap();
    assert_eq!(parsed[0].ports[0].public_port, Some(8080));
    assert_eq!(parsed[0].ports[1].public_port, None);
    assert_eq!(parsed[0].size_rw, Some(12));
    assert_eq!(
        parsed[0].network_settings.networks["bridge"].ip_address,
        "172.17.0.2"
    );
}

#[test]
fn ps_status_text() {
    let s = |i| status_text(i);
    let run = |secs, health| StatusInput::Running {
        since: Duration::from_secs(secs),
        paused: false,
        health,
    };
    assert_eq!(s(run(0, None)), "Up Less than a second");
    assert_eq!(s(run(1, None)), "Up 1 second");
    assert_eq!(
        s(run(75, Some("unhealthy"))),
        "Up About a minute (unhealthy)"
    );
    assert_eq!(
        s(run(5, Some("starting"))),
        "Up 5 seconds (health: starting)"
    );
    assert_eq!(s(run(3 * 3600, Some("healthy"))), "Up 3 hours (healthy)");
    assert_eq!(
        s(StatusInput::Running {
            since: Duration::from_secs(600),
            paused: true,
            health: None
        }),
        "Up 10 minutes (Paused)"
    );
    assert_eq!(
        s(StatusInput::Exited {
            exit_code: 0,
            since: Duration::from_secs(3)
        }),
        "Exited (0) 3 seconds ago"
    );
    assert_eq!(
        s(StatusInput::Restarting {
            exit_code: 1,
            since: Duration::from_millis(200)
        }),
        "Restarting (1) Less than a second ago"
    );
    assert_eq!(s(StatusInput::Created), "Created");
    assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    assert_eq!(human_duration(Duration::from_secs(20 * 86400)), "2 weeks");
    assert_eq!(human_duration(Duration::from_secs(90 * 86400)), "3 months");
    assert_eq!(
        human_duration(Duration::from_secs(3 * 365 * 86400)),
        "3 years"
    );
}

#[test]
fn wait_top_changes_prune() {
    let w: ContainerWaitResponse =
        serde_json::from_str(r#"{"StatusCode":3,"Error":null}"#).unwrap();
    assert_eq!((w.status_code, w.error.clone()), (3, None));
    assert_eq!(
        serde_json::to_string(&w).unwrap(),
        r#"{"StatusCode":3,"Error":null}"#
    );
    let w: ContainerWaitResponse =
        serde_json::from_str(r#"{"StatusCode":-1,"Error":{"Message":"no such process"}}"#).unwrap();
    assert_eq!(w.error.unwrap().message, "no such process");

    let top: ContainerTopResponse = serde_json::from_str(
        r#"{"Processes":[["root","1234","1200","0","10:00","?","00:00:00","sleep 1000"]],
        "Titles":["UID","PID","PPID","C","STIME","TTY","TIME","CMD"]}"#,
    )
    .unwrap();
    assert_eq!(top.titles[1], "PID");
    assert_eq!(top.processes[0][7], "sleep 1000");

    let ch: Vec<ContainerChange> = serde_json::from_str(
        r#"[{"Kind":0,"Path":"/etc"},{"Kind":1,"Path":"/etc/x"},{"Kind":2,"Path":"/tmp/y"}]"#,
    )
    .unwrap();
    assert_eq!(ch[1].kind, ContainerChange::ADDED);

    let p: ContainersPruneResponse =
        serde_json::from_str(r#"{"ContainersDeleted":null,"SpaceReclaimed":0}"#).unwrap();
    assert_eq!(p.containers_deleted, None);
    let p: ImagesPruneResponse = serde_json::from_str(
        r#"{"ImagesDeleted":[{"Untagged":"x:1"},{"Deleted":"sha256:ab"}],"SpaceReclaimed":42}"#,
    )
    .unwrap();
    assert_eq!(
        p.images_deleted.unwrap()[1].deleted.as_deref(),
        Some("sha256:ab")
    );
    let p: VolumesPruneResponse =
        serde_json::from_str(r#"{"VolumesDeleted":["v1"],"SpaceReclaimed":7}"#).unwrap();
    assert_eq!(p.space_reclaimed, 7);
}

#[test]
fn stats_as_docker_stats_reads_it() {
    let text = r#"{"read":"2024-05-01T10:00:01.5Z","preread":"2024-05-01T10:00:00.5Z",
      "pids_stats":{"current":3,"limit":20},"blkio_stats":{"io_service_bytes_recursive":
      [{"major":8,"minor":0,"op":"Read","value":4096}],"io_serviced_recursive":null,
      "io_queue_recursive":null,"io_service_time_recursive":null,"io_wait_time_recursive":null,
      "io_merged_recursive":null,"io_time_recursive":null,"sectors_recursive":null},
      "num_procs":0,"storage_stats":{},"cpu_stats":{"cpu_usage":{"total_usage":2000000,
      "percpu_usage":[1000000,1000000],"usage_in_kernelmode":500000,"usage_in_usermode":1500000},
      "system_cpu_usage":9000000000,"online_cpus":2,"throttling_data":{"periods":0,
      "throttled_periods":0,"throttled_time":0}},"precpu_stats":{"cpu_usage":{"total_usage":0,
      "usage_in_kernelmode":0,"usage_in_usermode":0},"throttling_data":{"periods":0,
      "throttled_periods":0,"throttled_time":0}},"memory_stats":{"usage":1048576,
      "max_usage":2097152,"stats":{"total_inactive_file":4096,"cache":8192},"limit":67108864},
      "name":"/web","id":"4f2c","networks":{"eth0":{"rx_bytes":10,"rx_packets":1,"rx_errors":0,
      "rx_dropped":0,"tx_bytes":20,"tx_packets":2,"tx_errors":0,"tx_dropped":0}}}"#;
    let s: StatsResponse = serde_json::from_str(text).unwrap();
    assert_eq!(
        s.cpu_stats.cpu_usage.percpu_usage.as_deref(),
        Some(&[1000000, 1000000][..])
    );
    assert_eq!(s.cpu_stats.online_cpus, 2);
    assert_eq!(s.memory_stats.stats["total_inactive_file"], 4096);
    assert_eq!(s.memory_stats.limit, 64 << 20);
    assert_eq!(s.pids_stats.limit, 20);
    assert_eq!(s.networks.as_ref().unwrap()["eth0"].tx_bytes, 20);
    assert_eq!(
        s.blkio_stats.io_service_bytes_recursive.as_ref().unwrap()[0].op,
        "Read"
    );
    let back = serde_json::to_value(&s).unwrap();
    assert_eq!(back["blkio_stats"]["io_serviced_recursive"], Value::Null);
    assert!(back["precpu_stats"].get("system_cpu_usage").is_none());
    assert_eq!(serde_json::from_value::<StatsResponse>(back).unwrap(), s);
}

#[test]
fn images_and_volumes() {
    let list: Vec<ImageSummary> = serde_json::from_str(
        r#"[{"Containers":-1,"Created":1714557600,"Id":"sha256:ab","Labels":null,
        "ParentId":"","RepoDigests":null,"RepoTags":["busybox:latest"],"SharedSize":-1,
        "Size":4261550,"VirtualSize":4261550}]"#,
    )
    .unwrap();
    assert!(list[0].labels.is_empty() && list[0].repo_digests.is_empty());
    let v = serde_json::to_value(&list[0]).unwrap();
    assert_eq!(v["Labels"], json!({}));
    assert_eq!(v["RepoDigests"], json!([]));

    let inspect: ImageInspect = serde_json::from_str(
        r#"{"Id":"sha256:ab","RepoTags":["bb:test"],"RepoDigests":[],"Parent":"","Comment":
        "Imported from -","Created":"2024-05-01T10:00:00Z","Container":"","ContainerConfig":
        {"Hostname":"","Cmd":null,"Image":"","Env":null,"Labels":null},"DockerVersion":
        "20.10.24+dfsg1","Author":"","Config":null,"Architecture":"amd64","Os":"linux",
        "Size":1000,"VirtualSize":1000,"GraphDriver":{"Data":null,"Name":"vfs"},"RootFS":
        {"Type":"layers","Layers":["sha256:cd"]},"Metadata":{"LastTagTime":"2024-05-01T10:00:00Z"}}"#,
    )
    .unwrap();
    assert!(inspect.container_config.is_some());
    assert_eq!(inspect.config, None);
    assert_eq!(inspect.root_fs.layers, ["sha256:cd"]);
    let v = serde_json::to_value(&inspect).unwrap();
    assert!(v.get("ContainerConfig").is_some(), "kept for old compose");

    let h: Vec<HistoryItem> = serde_json::from_str(
        r#"[{"Comment":"Imported from -","Created":1714557600,"CreatedBy":"","Id":"sha256:ab",
        "Size":1000,"Tags":["bb:test"]},{"Comment":"","Created":0,"CreatedBy":"/bin/sh",
        "Id":"<missing>","Size":0,"Tags":null}]"#,
    )
    .unwrap();
    assert_eq!(h[1].id, "<missing>");
    assert!(h[1].tags.is_empty());

    let del: Vec<ImageDeleteResponseItem> =
        serde_json::from_str(r#"[{"Untagged":"bb:test"},{"Deleted":"sha256:ab"}]"#).unwrap();
    assert_eq!(del[0].untagged.as_deref(), Some("bb:test"));
    assert_eq!(
        serde_json::to_string(&del[1]).unwrap(),
        r#"{"Deleted":"sha256:ab"}"#
    );

    let req: VolumeCreateRequest = serde_json::from_str(
        r#"{"Name":"v1","Driver":"local","DriverOpts":{},"Labels":{"a":"b"}}"#,
    )
    .unwrap();
    assert_eq!(req.labels.unwrap()["a"], "b");
    let vols: VolumeListResponse = serde_json::from_str(
        r#"{"Volumes":[{"CreatedAt":"2024-05-01T10:00:00Z","Driver":"local","Labels":null,
        "Mountpoint":"/var/lib/docker/volumes/v1/_data","Name":"v1","Options":null,
        "Scope":"local"}],"Warnings":null}"#,
    )
    .unwrap();
    assert_eq!(vols.volumes[0].name, "v1");
    let v = serde_json::to_value(&vols).unwrap();
    assert_eq!(v["Volumes"][0]["Labels"], json!({}));
    assert_eq!(v["Warnings"], json!([]));
}

#[test]
fn version_info_events_df() {
    let v: VersionResponse = serde_json::from_str(
        r#"{"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"20.10.24+dfsg1",
        "Details":{"ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux"}}],
        "Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12","GitCommit":"5d6db84",
        "GoVersion":"go1.19.8","Os":"linux","Arch":"amd64","KernelVersion":"6.1.0","BuildTime":"x"}"#,
    )
    .unwrap();
    assert_eq!(
        (v.api_version.as_str(), v.min_api_version.as_str()),
        ("1.41", "1.12")
    );
    assert_eq!(
        v.components[0].details.as_ref().unwrap()["ApiVersion"],
        "1.41"
    );
    let back = serde_json::to_value(&v).unwrap();
    assert_eq!(back["MinAPIVersion"], "1.12");
    assert!(back.get("Experimental").is_none());

    let info: SystemInfo = serde_json::from_str(
        r#"{"ID":"X:Y","Containers":2,"ContainersRunning":1,"ContainersPaused":0,
        "ContainersStopped":1,"Images":3,"Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"]],
        "Plugins":{"Volume":["local"],"Network":["bridge","host"],"Authorization":null,"Log":["json-file"]},
        "MemoryLimit":true,"SwapLimit":false,"CPUShares":true,"CPUSet":true,"IPv4Forwarding":true,
        "NFd":30,"NGoroutines":40,"SystemTime":"2024-05-01T10:00:00.1Z","LoggingDriver":"json-file",
        "CgroupDriver":"cgroupfs","CgroupVersion":"1","NEventsListener":0,"KernelVersion":"6.1.0",
        "OperatingSystem":"Debian GNU/Linux 12 (bookworm)","OSVersion":"12","OSType":"linux",
        "Architecture":"x86_64","IndexServerAddress":"https://index.docker.io/v1/",
        "RegistryConfig":{"InsecureRegistryCIDRs":["127.0.0.0/8"],"IndexConfigs":{"docker.io":
        {"Name":"docker.io","Mirrors":[],"Secure":true,"Official":true}},"Mirrors":[]},"NCPU":2,
        "MemTotal":25769803776,"DockerRootDir":"/var/lib/docker","Name":"host","Labels":[],
        "ServerVersion":"20.10.24+dfsg1","Runtimes":{"runc":{"path":"runc"}},"DefaultRuntime":"runc",
        "Swarm":{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,
        "Error":"","RemoteManagers":null},"LiveRestoreEnabled":false,"Isolation":"","InitBinary":
        "docker-init","ContainerdCommit":{"ID":"1.6.20","Expected":"1.6.20"},"RuncCommit":
        {"ID":"1.1.5","Expected":"1.1.5"},"InitCommit":{"ID":"","Expected":""},"SecurityOptions":
        ["name=seccomp,profile=default"],"Warnings":null}"#,
    )
    .unwrap();
    assert_eq!(info.ncpu, 2);
    assert_eq!(info.os_type, "linux");
    assert_eq!(info.driver_status.as_ref().unwrap()[0][1], "extfs");
    assert_eq!(info.runtimes["runc"].path, "runc");
    assert_eq!(info.swarm.local_node_state, "inactive");
    assert_eq!(info.containerd_commit.id, "1.6.20");
    let back = serde_json::to_value(&info).unwrap();
    for key in [
        "ID",
        "NCPU",
        "OSType",
        "CPUShares",
        "IPv4Forwarding",
        "NFd",
        "NGoroutines",
        "OSVersion",
    ] {
        assert!(back.get(key).is_some(), "{key} in {back}");
    }
    assert_eq!(back["Runtimes"]["runc"], json!({"path": "runc"}));

    let e: EventMessage = serde_json::from_str(
        r#"{"status":"die","id":"4f2c","from":"bb:test","Type":"container","Action":"die",
        "Actor":{"ID":"4f2c","Attributes":{"exitCode":"3","image":"bb:test","name":"web"}},
        "scope":"local","time":1714557600,"timeNano":1714557600123456789}"#,
    )
    .unwrap();
    assert_eq!((e.r#type.as_str(), e.action.as_str()), ("container", "die"));
    assert_eq!(e.actor.attributes["exitCode"], "3");
    assert_eq!(e.time_nano, 1714557600123456789);
    let back = serde_json::to_value(&e).unwrap();
    assert_eq!(back["timeNano"], json!(1714557600123456789i64));
    assert_eq!(back["Actor"]["ID"], "4f2c");
    assert_eq!(back["status"], "die");
    let daemon = serde_json::to_value(EventMessage {
        r#type: "daemon".into(),
        action: "reload".into(),
        ..Default::default()
    })
    .unwrap();
    assert!(daemon.get("status").is_none() && daemon.get("from").is_none());

    let df: SystemDfResponse = serde_json::from_str(
        r#"{"LayersSize":1000,"Images":[{"Id":"sha256:ab","Containers":1,"Size":1000,
        "SharedSize":0,"RepoTags":["bb:test"]}],"Containers":[{"Id":"4f2c","Names":["/web"],
        "SizeRw":0,"SizeRootFs":1000}],"Volumes":[{"Name":"v1","UsageData":{"RefCount":1,
        "Size":0}}],"BuildCache":null}"#,
    )
    .unwrap();
    assert_eq!(df.images[0].containers, 1);
    assert_eq!(df.volumes[0].usage_data.as_ref().unwrap().ref_count, 1);
    assert!(df.build_cache.is_empty());
}

#[test]
fn progress_messages() {
    let lines = [
        r#"{"status":"sha256:ab12"}"#,
        r#"{"stream":"Loaded image: bb:test\n"}"#,
        r#"{"status":"Downloading","progressDetail":{"current":10,"total":100},"progress":"[=>  ]","id":"cd34"}"#,
        r#"{"errorDetail":{"message":"pull access denied"},"error":"pull access denied"}"#,
        r#"{"aux":{"ID":"sha256:ef"}}"#,
    ];
    let m: Vec<JsonMessage> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(m[0].status.as_deref(), Some("sha256:ab12"));
    assert_eq!(m[1].stream.as_deref(), Some("Loaded image: bb:test\n"));
    assert_eq!(m[2].progress_detail.as_ref().unwrap().total, Some(100));
    assert_eq!(m[3].error_message(), Some("pull access denied"));
    assert_eq!(m[4].aux.as_ref().unwrap()["ID"], "sha256:ef");
    assert_eq!(serde_json::to_string(&m[1]).unwrap(), lines[1]);
}
