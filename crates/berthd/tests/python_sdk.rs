//! End-to-end test of the Docker Engine API contract with the Python `docker` SDK:
//! a virtualenv (cached under target/, keyed by the SDK version) drives a private
//! daemon through create, start, exec_run, streamed logs, stop, wait and remove.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{run_cmd, Daemon};

/// The SDK version the test pins; changing it makes a fresh virtualenv.
const SDK: &str = "docker==7.2.0";

/// A virtualenv with the SDK installed, reused between runs when its stamp matches.
fn sdk_python() -> Result<PathBuf, String> {
    let key = SDK.replace("==", "-");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("python-sdk-{key}"));
    let python = venv.join("bin/python");
    let stamp = venv.join("berth-e2e.stamp");
    if fs::read_to_string(&stamp)
        .map(|s| s == SDK)
        .unwrap_or(false)
        && python.exists()
    {
        return Ok(python);
    }
    let _ = fs::remove_dir_all(&venv);
    let o = run_cmd(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        Duration::from_secs(120),
    );
    if !o.ok() {
        return Err(format!(
            "python3 -m venv failed (install python3-venv):\n{o}"
        ));
    }
    let o = run_cmd(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SDK,
        ]),
        Duration::from_secs(300),
    );
    if !o.ok() {
        let _ = fs::remove_dir_all(&venv);
        return Err(format!("pip install {SDK} failed:\n{o}"));
    }
    fs::write(&stamp, SDK).map_err(|e| format!("write {}: {e}", stamp.display()))?;
    Ok(python)
}

const SCRIPT: &str = r#"
import sys, docker

sock = sys.argv[1]
c = docker.DockerClient(base_url="unix://" + sock, version="auto", timeout=60)
assert c.ping() is True
print("api", c.version()["ApiVersion"])
assert any("busybox:latest" in i.tags for i in c.images.list()), c.images.list()

# One-shot run, output returned.
out = c.containers.run("busybox", ["echo", "hi from run"], remove=True)
assert out == b"hi from run\n", out

# create, start.
ctr = c.containers.create(
    "busybox",
    ["sh", "-c", "trap 'exit 7' TERM; for i in 1 2 3; do echo line$i; sleep 0.3; done; while true; do sleep 0.2; done"],
    name="sdk-box",
    environment={"X": "from-env"},
    labels={"made-by": "sdk"},
)
assert ctr.status == "created", ctr.status
ctr.start()
ctr.reload()
assert ctr.status == "running", ctr.status
assert ctr.labels["made-by"] == "sdk"

# exec_run: output and exit code.
r = ctr.exec_run(["sh", "-c", "echo exec-$X; exit 3"])
assert r.exit_code == 3 and r.output == b"exec-from-env\n", r
r = ctr.exec_run("id -u", user="nobody")
assert r.exit_code == 0 and r.output.strip() == b"65534", r
r = ctr.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
assert r.output == (b"out\n", b"err\n"), r

# logs(stream=True, follow=True): read lines as they come.
lines, buf = [], b""
for chunk in ctr.logs(stream=True, follow=True):
    buf += chunk
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        lines.append(line.decode())
    if len(lines) >= 3:
        break
assert lines[:3] == ["line1", "line2", "line3"], lines
print("logs", " ".join(lines[:3]))

# stop (SIGTERM -> trap), wait, remove.
ctr.stop(timeout=10)
res = ctr.wait(timeout=60)
assert res["StatusCode"] == 7, res
ctr.reload()
assert ctr.status == "exited" and ctr.attrs["State"]["ExitCode"] == 7, ctr.attrs["State"]
ctr.remove()
names = [x.name for x in c.containers.list(all=True)]
assert "sdk-box" not in names, names

# Errors map to the SDK's exception types.
try:
    c.containers.get("nope")
    raise SystemExit("get nope did not fail")
except docker.errors.NotFound as e:
    assert "No such container" in str(e), e

# Volumes.
v = c.volumes.create("sdk-vol")
assert v.name == "sdk-vol"
v.remove()

# images.build: a context directory, build args, the log stream, a failing build.
import io, os, tempfile
ctx = tempfile.mkdtemp()
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write("FROM busybox\nARG WHO=nobody\nCOPY msg.txt /msg.txt\nRUN echo built-for-$WHO\nCMD [\"cat\", \"/msg.txt\"]\n")
with open(os.path.join(ctx, "msg.txt"), "w") as f:
    f.write("from the sdk\n")
img, logs = c.images.build(path=ctx, tag="sdk-built:1", buildargs={"WHO": "sdk"}, rm=True)
text = "".join(l.get("stream", "") for l in logs)
assert "built-for-sdk" in text, text
assert "sdk-built:1" in img.tags, img.tags
out = c.containers.run("sdk-built:1", remove=True)
assert out == b"from the sdk\n", out
bad = io.BytesIO(b"FROM busybox\nRUN exit 4\n")
try:
    c.images.build(fileobj=bad, tag="sdk-bad:1")
    raise SystemExit("a failing build did not raise")
except docker.errors.BuildError as e:
    assert "returned a non-zero code: 4" in str(e), e
print("build ok")
print("sdk ok")
"#;

#[test]
fn python_sdk_drives_a_container() {
    let Some(d) = Daemon::start("python_sdk") else {
        return;
    };
    let python = match sdk_python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("skipping python_sdk_drives_a_container: {why}");
            return;
        }
    };
    let script = d.write_file("sdk_test.py", SCRIPT);
    let o = run_cmd(
        Command::new(&python).arg(&script).arg(&d.socket),
        Duration::from_secs(180),
    );
    assert!(
        o.ok(),
        "python SDK script failed:\n{o}\n--- daemon log ---\n{}",
        d.log_tail(40)
    );
    assert!(o.stdout.contains("logs line1 line2 line3"), "{o}");
    assert!(o.stdout.contains("build ok"), "{o}");
    assert!(o.stdout.trim_end().ends_with("sdk ok"), "{o}");
}
