//! End-to-end tests of Dockerfile builds: `DOCKER_BUILDKIT=0 docker build` (the real CLI)
//! against a private berthd, then the images run and are inspected. One test builds the
//! same Dockerfiles with dockerd 20.10's classic builder and compares the image configs.
//!
//! Run: `sudo cargo test -p berthd --test build -- --test-threads=2`

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{run_cmd, Daemon, Out, Peer};

/// Writes a build context (files relative to it) under the daemon's work dir.
fn context(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.work.join(name);
    let _ = fs::remove_dir_all(&dir);
    for (path, text) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, text).expect("write context file");
    }
    dir
}

/// `docker build` with the classic builder.
fn build(d: &Daemon, dir: &Path, args: &[&str]) -> Out {
    let mut c = d.docker_cmd(&["build"]);
    c.args(args).arg(dir).env("DOCKER_BUILDKIT", "0");
    run_cmd(&mut c, Duration::from_secs(300))
}

#[track_caller]
fn build_ok(d: &Daemon, dir: &Path, args: &[&str]) -> String {
    let o = build(d, dir, args);
    assert!(
        o.ok(),
        "build failed:\n{o}\n--- daemon ---\n{}",
        d.log_tail(30)
    );
    o.stdout
}

fn config(d: &Daemon, image: &str) -> Value {
    let text = d.docker_ok(&["image", "inspect", "--format", "{{json .Config}}", image]);
    serde_json::from_str(&text).expect("config JSON")
}

fn no_containers_left(d: &Daemon) {
    let ps = d.docker_ok(&["ps", "-aq"]);
    assert!(ps.is_empty(), "build left containers behind: {ps}");
}

#[test]
fn single_stage_build_runs_caches_and_reruns_from_a_change() {
    let Some(d) = Daemon::start("single_stage") else {
        return;
    };
    let dir = context(
        &d,
        "single",
        &[
            (
                "Dockerfile",
                "# a comment\n\
                 FROM busybox\n\
                 LABEL org.example.name=\"single stage\" \\\n      version=1\n\
                 ENV GREETING=hello \\\n    TARGET=world\n\
                 WORKDIR /app\n\
                 COPY greet.sh data/ ./\n\
                 RUN chmod +x greet.sh && echo \"built by $(id -u)\" > built.txt && echo step-output\n\
                 EXPOSE 8080 53/udp\n\
                 VOLUME /data\n\
                 STOPSIGNAL SIGINT\n\
                 HEALTHCHECK --interval=5s --retries=2 CMD test -f /app/built.txt\n\
                 ENTRYPOINT [\"/app/greet.sh\"]\n\
                 CMD [\"default-arg\"]\n",
            ),
            ("greet.sh", "#!/bin/sh\necho \"$GREETING $TARGET: $*\"\n"),
            ("data/one.txt", "one\n"),
            ("data/sub/two.txt", "two\n"),
        ],
    );
    let out = build_ok(&d, &dir, &["-t", "single:1"]);
    assert!(out.contains("Step 1/12 : FROM busybox"), "{out}");
    assert!(out.contains("Step 6/12 : RUN chmod +x greet.sh"), "{out}");
    assert!(
        out.contains("\nstep-output\n"),
        "RUN output is streamed:\n{out}"
    );
    assert!(out.contains("Successfully tagged single:1"), "{out}");
    assert!(!out.contains("Using cache"), "{out}");
    no_containers_left(&d);

    // The image runs with its entrypoint, env, workdir and copied files.
    assert_eq!(
        d.docker_ok(&["run", "--rm", "single:1"]),
        "hello world: default-arg"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "single:1", "x", "y"]),
        "hello world: x y"
    );
    let ls = d.docker_ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "single:1",
        "-c",
        "pwd; cat built.txt one.txt sub/two.txt; stat -c %u:%g one.txt",
    ]);
    assert_eq!(ls, "/app\nbuilt by 0\none\ntwo\n0:0");
    let c = config(&d, "single:1");
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/app/greet.sh"]));
    assert_eq!(c["Cmd"], serde_json::json!(["default-arg"]));
    assert_eq!(c["Labels"]["org.example.name"], "single stage");
    assert_eq!(c["Labels"]["version"], "1");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some(), "{c}");
    assert!(c["ExposedPorts"].get("53/udp").is_some(), "{c}");
    assert!(c["Volumes"].get("/data").is_some(), "{c}");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "test -f /app/built.txt"], "Interval": 5_000_000_000u64, "Retries": 2})
    );
    let env = c["Env"].to_string();
    assert!(
        env.contains("GREETING=hello") && env.contains("TARGET=world"),
        "{env}"
    );
    // The image's health check runs in its containers.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--entrypoint",
        "sleep",
        "single:1",
        "60",
    ]);
    d.wait_for(
        "hc",
        "{{.State.Health.Status}}",
        "healthy",
        Duration::from_secs(30),
    );
    d.docker_ok(&["rm", "-f", "hc"]);

    // Unchanged: every step from the cache, the same image.
    let id1 = d.docker_ok(&["image", "inspect", "--format", "{{.Id}}", "single:1"]);
    let again = build_ok(&d, &dir, &["-t", "single:1"]);
    assert_eq!(again.matches("Using cache").count(), 11, "{again}");
    assert!(!again.contains("\nstep-output\n"), "{again}");
    let id2 = d.docker_ok(&["image", "inspect", "--format", "{{.Id}}", "single:1"]);
    assert_eq!(id1, id2);

    // A changed source reruns from its COPY on; the steps before stay cached.
    fs::write(dir.join("data/one.txt"), "uno\n").unwrap();
    let changed = build_ok(&d, &dir, &["-t", "single:2"]);
    assert_eq!(changed.matches("Using cache").count(), 3, "{changed}");
    assert!(changed.contains("\nstep-output\n"), "{changed}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--entrypoint", "cat", "single:2", "one.txt"]),
        "uno"
    );

    // --no-cache reruns everything; -q prints only the id.
    let nc = build_ok(&d, &dir, &["--no-cache", "-q"]);
    assert!(!nc.contains("Using cache"), "{nc}");
    let id = nc.trim();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "-q printed {nc:?}"
    );
    // `docker images` hides the intermediate images, `-a` shows them.
    let top = d.docker_ok(&["images", "-q"]).lines().count();
    let all = d.docker_ok(&["images", "-aq"]).lines().count();
    assert!(all > top + 10, "images: {top} shown, {all} with -a");
    // Removing a built image takes its untagged intermediate images along.
    let rmi = d.docker_ok(&["rmi", "single:2"]);
    assert!(rmi.matches("Deleted:").count() > 3, "{rmi}");
    no_containers_left(&d);
}

/// A static binary compiled on the host (Rust's std only, static C runtime): the build
/// copies it into a stage, runs it there, and copies its output and itself into scratch.
fn static_binary(dir: &Path) -> Option<()> {
    let src = dir.join("hello.rs");
    fs::write(
        &src,
        "fn main() { let a: Vec<String> = std::env::args().skip(1).collect(); println!(\"static hello {}\", a.join(\" \")); }\n",
    )
    .ok()?;
    let o = run_cmd(
        Command::new("rustc")
            .args(["-O", "-C", "target-feature=+crt-static", "-o"])
            .arg(dir.join("hello"))
            .arg(&src),
        Duration::from_secs(120),
    );
    if !o.ok() {
        eprintln!("rustc could not build a static binary:\n{o}");
        return None;
    }
    Some(())
}

#[test]
fn multi_stage_copies_a_static_binary_into_scratch_and_target_stops_early() {
    let Some(d) = Daemon::start("multi_stage") else {
        return;
    };
    let dir = context(
        &d,
        "multi",
        &[(
            "Dockerfile",
            "FROM busybox AS build\n\
             COPY hello /out/hello\n\
             RUN /out/hello from-stage > /out/greeting.txt\n\
             \n\
             FROM busybox AS unused-test\n\
             RUN echo this stage is only for --target && touch /marker\n\
             \n\
             FROM scratch\n\
             COPY --from=build /out/ /\n\
             ENTRYPOINT [\"/hello\"]\n",
        )],
    );
    if static_binary(&dir).is_none() {
        panic!("rustc is part of the toolchain CI builds with; it must build a static binary");
    }
    let out = build_ok(&d, &dir, &["-t", "static:1"]);
    assert!(out.contains("Step 6/8 : FROM scratch"), "{out}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "static:1", "x"]),
        "static hello x"
    );
    // The scratch image holds exactly what was copied.
    let hist = d.docker_ok(&["history", "-q", "static:1"]);
    assert!(!hist.is_empty());
    let ctr = d.docker_ok(&["create", "static:1"]);
    let tar_list = {
        let tmp = d.work.join("static.tar");
        let mut c = d.docker_cmd(&["export", "-o"]);
        c.arg(&tmp).arg(&ctr);
        assert!(run_cmd(&mut c, Duration::from_secs(60)).ok());
        let o = run_cmd(
            Command::new("tar").arg("-tf").arg(&tmp),
            Duration::from_secs(30),
        );
        o.stdout
    };
    assert!(
        tar_list.contains("greeting.txt") && tar_list.contains("hello"),
        "{tar_list}"
    );
    assert!(
        !tar_list.contains("bin/busybox"),
        "scratch got busybox: {tar_list}"
    );
    d.docker_ok(&["rm", &ctr]);
    let greeting = {
        let mut c = d.docker_cmd(&["cp"]);
        let dst = d.work.join("greeting.txt");
        let ctr = d.docker_ok(&["create", "static:1"]);
        c.arg(format!("{ctr}:/greeting.txt")).arg(&dst);
        assert!(run_cmd(&mut c, Duration::from_secs(30)).ok());
        d.docker_ok(&["rm", &ctr]);
        fs::read_to_string(dst).unwrap()
    };
    assert_eq!(greeting, "static hello from-stage\n");

    // --target builds up to that stage only.
    let t = build_ok(&d, &dir, &["--target", "unused-test", "-t", "stage:test"]);
    assert!(!t.contains("FROM scratch"), "{t}");
    d.docker_ok(&["run", "--rm", "stage:test", "test", "-f", "/marker"]);
    let bad = build(&d, &dir, &["--target", "nosuch"]);
    assert!(!bad.ok());
    assert!(
        bad.stderr.contains("failed to reach build target nosuch"),
        "{bad}"
    );
    no_containers_left(&d);
}

#[test]
fn args_and_env_interplay() {
    let Some(d) = Daemon::start("args_env") else {
        return;
    };
    let dir = context(
        &d,
        "args",
        &[(
            "Dockerfile",
            "ARG BASE=busybox\n\
             ARG TAGGED\n\
             FROM ${BASE}:latest\n\
             ARG TAGGED\n\
             ARG VERSION=1.0\n\
             ARG SHADOWED=from-arg\n\
             ENV SHADOWED=from-env APP_VERSION=v${VERSION} UNSET=${NOPE:-fallback}\n\
             RUN echo \"run sees VERSION=$VERSION SHADOWED=$SHADOWED TAGGED=$TAGGED\" && echo \"$VERSION\" > /version\n\
             CMD echo \"$APP_VERSION $UNSET\"\n",
        )],
    );
    let out = build_ok(
        &d,
        &dir,
        &[
            "--build-arg",
            "VERSION=2.5",
            "--build-arg",
            "TAGGED=yes",
            "--build-arg",
            "EXTRA=x",
            "-t",
            "args:1",
        ],
    );
    assert!(
        out.contains("run sees VERSION=2.5 SHADOWED=from-env TAGGED=yes"),
        "{out}"
    );
    assert!(
        out.contains("One or more build-args [EXTRA] were not consumed"),
        "{out}"
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "args:1"]), "v2.5 fallback");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "args:1", "cat", "/version"]),
        "2.5"
    );
    // Build args are not part of the image's environment.
    let env = config(&d, "args:1")["Env"].to_string();
    assert!(!env.contains("VERSION=2.5\""), "{env}");
    assert!(!env.contains("TAGGED"), "{env}");
    assert!(env.contains("APP_VERSION=v2.5"), "{env}");
    // Another value of a used arg misses the cache from the first step that uses it.
    let other = build_ok(
        &d,
        &dir,
        &["--build-arg", "VERSION=3", "--build-arg", "TAGGED=yes"],
    );
    assert!(other.contains("run sees VERSION=3"), "{other}");
}

#[test]
fn dockerignore_user_chown_and_heredocs() {
    let Some(d) = Daemon::start("ignore_user") else {
        return;
    };
    let dir = context(
        &d,
        "ignore",
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 RUN echo 'app:x:1500:1500::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1500:' >> /etc/group && mkdir -p /home/app && chown app:app /home/app\n\
                 COPY --chown=app:app . /home/app/src/\n\
                 RUN <<EOF\n\
                 set -e\n\
                 echo heredoc-script-ran\n\
                 mkdir -p /opt/tool\n\
                 EOF\n\
                 COPY <<CONF /etc/tool.conf\n\
                 name=tool\n\
                 CONF\n\
                 USER app\n\
                 WORKDIR /home/app/src\n\
                 RUN touch made-by-app && id -u > whoami\n",
            ),
            (".dockerignore", "# not sent\n*.log\nsecret/\n**/*.tmp\n!keep.log\n"),
            ("main.txt", "main\n"),
            ("debug.log", "log\n"),
            ("keep.log", "kept\n"),
            ("secret/key", "hidden\n"),
            ("nested/a.tmp", "tmp\n"),
            ("nested/b.txt", "b\n"),
        ],
    );
    let out = build_ok(&d, &dir, &["-t", "ignore:1"]);
    assert!(out.contains("heredoc-script-ran"), "{out}");
    let listing = d.docker_ok(&[
        "run",
        "--rm",
        "ignore:1",
        "sh",
        "-c",
        "find . -type f | sort; stat -c %U:%G main.txt nested made-by-app; cat whoami /etc/tool.conf; id -un; test -d /opt/tool && echo tool-dir",
    ]);
    assert_eq!(
        listing,
        "./.dockerignore\n./Dockerfile\n./keep.log\n./made-by-app\n./main.txt\n./nested/b.txt\n./whoami\n\
         app:app\napp:app\napp:app\n1500\nname=tool\napp\ntool-dir"
    );
    assert_eq!(config(&d, "ignore:1")["User"], "app");
}

#[test]
fn add_unpacks_local_archives_chmod_wildcards_and_the_escape_directive() {
    let Some(d) = Daemon::start("add_archives") else {
        return;
    };
    let dir = context(
        &d,
        "add",
        &[
            (
                "Dockerfile",
                "# escape=`\n\
                 FROM --platform=linux/amd64 busybox\n\
                 ADD bundle.tar.gz /opt/\n\
                 ADD plain.txt /opt/plain.txt\n\
                 COPY --chmod=0750 tools/*.sh /usr/local/bin/\n\
                 RUN echo one `\n\
                     two > /joined\n",
            ),
            ("plain.txt", "plain\n"),
            ("tools/a.sh", "#!/bin/sh\necho a\n"),
            ("tools/b.sh", "#!/bin/sh\necho b\n"),
            ("tools/c.txt", "not a script\n"),
            ("payload/inner/file.txt", "from the archive\n"),
        ],
    );
    let o = run_cmd(
        Command::new("tar")
            .arg("-C")
            .arg(dir.join("payload"))
            .arg("-czf")
            .arg(dir.join("bundle.tar.gz"))
            .arg("inner"),
        Duration::from_secs(30),
    );
    assert!(o.ok(), "{o}");
    let out = build_ok(&d, &dir, &["-t", "add:1"]);
    assert!(out.contains("--platform=linux/amd64 is ignored"), "{out}");
    let got = d.docker_ok(&[
        "run",
        "--rm",
        "add:1",
        "sh",
        "-c",
        "cat /opt/inner/file.txt /opt/plain.txt /joined; stat -c %a /usr/local/bin/a.sh /usr/local/bin/b.sh; ls /usr/local/bin; a.sh",
    ]);
    assert_eq!(
        got,
        "from the archive\nplain\none two\n750\n750\na.sh\nb.sh\na"
    );
}

#[test]
fn bad_dockerfiles_and_failing_steps_name_the_line_and_leave_nothing() {
    let Some(d) = Daemon::start("bad_builds") else {
        return;
    };
    let images_before = d.docker_ok(&["images", "-aq"]);
    // A typo: a parse error naming the line, before anything runs.
    let typo = context(
        &d,
        "typo",
        &[("Dockerfile", "FROM busybox\nRUN echo ok\nRUNN echo typo\n")],
    );
    let o = build(&d, &typo, &[]);
    assert!(!o.ok());
    assert!(
        o.stderr.contains("Dockerfile:3") && o.stderr.contains("unknown instruction: RUNN"),
        "{o}"
    );
    assert_eq!(d.docker_ok(&["images", "-aq"]), images_before);
    // A missing source file, an unknown base image, a URL for ADD.
    for (name, text, want) in [
        (
            "nofile",
            "FROM busybox\nCOPY missing.txt /\n",
            "missing.txt",
        ),
        ("nobase", "FROM nosuch/image:1\n", "nosuch/image:1"),
        (
            "url",
            "FROM busybox\nADD http://example.com/x /x\n",
            "no network",
        ),
        (
            "noarg",
            "FROM busybox\nCOPY onlyone\n",
            "requires at least two arguments",
        ),
    ] {
        let c = context(&d, name, &[("Dockerfile", text)]);
        let o = build(&d, &c, &[]);
        assert!(!o.ok(), "{name} built:\n{o}");
        assert!(o.stderr.contains(want), "{name}: {o}");
        assert!(
            o.stderr.contains("Dockerfile:"),
            "{name} names no line: {o}"
        );
    }
    // A failing RUN: the build stops with that step's exit code and output.
    let fail = context(
        &d,
        "fail",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo before\nRUN echo about-to-fail; exit 3\nRUN echo never\n",
        )],
    );
    let o = build(&d, &fail, &["-t", "fail:1"]);
    assert_eq!(o.code, Some(3), "{o}");
    assert!(o.stdout.contains("about-to-fail"), "{o}");
    assert!(!o.stdout.contains("never"), "{o}");
    assert!(
        o.stderr.contains("Dockerfile:3") && o.stderr.contains("returned a non-zero code: 3"),
        "{o}"
    );
    no_containers_left(&d);
    assert!(d.docker(&["image", "inspect", "fail:1"]).code != Some(0));
}

/// The fields of an image config a Dockerfile sets.
const FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

fn normalized(c: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for f in FIELDS {
        let v = c.get(*f).cloned().unwrap_or(Value::Null);
        // dockerd writes empty collections as null or {}; both mean unset.
        let v = match &v {
            Value::Object(o) if o.is_empty() => Value::Null,
            Value::Array(a) if a.is_empty() => Value::Null,
            Value::String(s) if s.is_empty() => Value::Null,
            _ => v,
        };
        out.insert(f.to_string(), v);
    }
    Value::Object(out)
}

#[test]
fn image_configs_match_dockerds_classic_builder() {
    let Some(berth) = Daemon::start_peer("configs_berthd", Peer::Berthd) else {
        return;
    };
    let Some(docker) = Daemon::start_peer("configs_dockerd", Peer::Dockerd) else {
        return;
    };
    let dockerfiles = [
        (
            "meta",
            "FROM busybox\n\
             ARG V=1\n\
             ENV A=1 B=\"two words\" C=${V}\n\
             ENV PATH=/opt/bin:$PATH\n\
             LABEL a=b \"c d\"=e\n\
             MAINTAINER someone\n\
             EXPOSE 80 443/tcp 53/udp\n\
             VOLUME [\"/v1\", \"/v2\"]\n\
             VOLUME /v3\n\
             USER 1000:1000\n\
             WORKDIR /w\n\
             WORKDIR sub\n\
             STOPSIGNAL SIGUSR1\n\
             SHELL [\"/bin/sh\", \"-ec\"]\n\
             HEALTHCHECK --interval=10s --timeout=3s --start-period=1s --retries=4 CMD [\"true\"]\n\
             ONBUILD RUN echo child\n\
             CMD echo shell form\n",
        ),
        (
            "entry",
            "FROM busybox\n\
             CMD [\"a\"]\n\
             ENTRYPOINT echo hi\n\
             HEALTHCHECK NONE\n",
        ),
        (
            "files",
            "FROM busybox\n\
             WORKDIR /app\n\
             COPY . .\n\
             RUN cat f.txt\n\
             ENTRYPOINT [\"cat\"]\n\
             CMD [\"f.txt\"]\n",
        ),
    ];
    for (name, text) in dockerfiles {
        let mut configs = Vec::new();
        for d in [&berth, &docker] {
            let dir = context(d, name, &[("Dockerfile", text), ("f.txt", "f\n")]);
            let tag = format!("cmp-{name}:1");
            build_ok(d, &dir, &["-t", &tag]);
            configs.push(normalized(&config(d, &tag)));
        }
        assert_eq!(
            configs[0], configs[1],
            "{name}: berthd's config (left) differs from dockerd's (right)"
        );
    }
    // ONBUILD triggers run in a child build, in both.
    for d in [&berth, &docker] {
        let dir = context(d, "child", &[("Dockerfile", "FROM cmp-meta:1\n")]);
        let out = build_ok(d, &dir, &["-t", "child:1"]);
        assert!(out.contains("child"), "{:?}: {out}", d.peer);
    }
    let (a, b) = (
        normalized(&config(&berth, "child:1")),
        normalized(&config(&docker, "child:1")),
    );
    assert_eq!(a, b, "child of an ONBUILD image");
}
