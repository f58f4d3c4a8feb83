//! Seccomp filters and capability sets applied for real, in forked children (needs root).
//!
//! Each scenario forks; the child applies the filter or capabilities, makes the syscalls and
//! reports through its exit status (0 = as expected, anything else is a code listed in the
//! scenario). Scenarios are serialised so no other test thread is busy while we fork.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_runtime::{capabilities, seccomp};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{LinuxCapabilities, LinuxSeccomp};

static FORK_LOCK: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root");
    false
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Runs `child` in a forked process and returns its exit code.
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    let _guard = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: the child only runs `child` and then `_exit`s; the other test threads are
    // parked on FORK_LOCK or the harness channel, so no lock is held across the fork.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(99);
            // SAFETY: leaves the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => wait_exit(child),
    }
}

fn wait_exit(child: Pid) -> i32 {
    match waitpid(child, None).expect("waitpid") {
        WaitStatus::Exited(_, code) => code,
        other => panic!("child did not exit normally: {other:?}"),
    }
}

fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).expect("test profile")
}

#[test]
fn errno_ret_is_returned_for_mkdir() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let target = CString::new(
        dir.path()
            .join("blocked")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("path");
    for errno_ret in [libc::ENOSYS, libc::EACCES] {
        let p = profile(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": {errno_ret}}}]}}"#
        ));
        let target = target.clone();
        let code = in_child(move || {
            let Ok(ctx) = seccomp::build(&p) else {
                return 201;
            };
            match seccomp::load(&ctx) {
                Ok(None) => {}
                Ok(Some(_)) => return 202,
                Err(_) => return 203,
            }
            // SAFETY: `target` is a valid NUL-terminated path.
            if unsafe { libc::mkdir(target.as_ptr(), 0o755) } == 0 {
                return 204;
            }
            errno()
        });
        assert_eq!(code, errno_ret, "mkdir should fail with errno {errno_ret}");
        assert!(!dir.path().join("blocked").exists());
    }
}

#[test]
fn arg_comparisons_select_the_calls() {
    if !is_root() {
        return;
    }
    // Distinct indices: one rule, all conditions must match (kill(self, 0) only).
    let code = in_child(|| {
        let me = std::process::id();
        let p = profile(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                  "args": [{{"index": 0, "value": {me}, "op": "SCMP_CMP_EQ"}},
                           {{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}}]}}]}}"#
        ));
        let Ok(ctx) = seccomp::build(&p) else {
            return 201;
        };
        if seccomp::load(&ctx).is_err() {
            return 203;
        }
        let me = me as libc::pid_t;
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(me, 0) } == 0 || errno() != libc::EACCES {
            return 10;
        }
        // SAFETY: SIGCONT to ourselves is a no-op for a running process.
        if unsafe { libc::kill(me, libc::SIGCONT) } != 0 {
            return 11;
        }
        // SAFETY: signal 0 to our parent only checks that it exists.
        if unsafe { libc::kill(libc::getppid(), 0) } != 0 {
            return 12;
        }
        0
    });
    assert_eq!(code, 0, "kill(self, 0) blocked, others allowed");

    // Repeated index: one rule per condition, so either condition blocks.
    let code = in_child(|| {
        let p = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_NE"},
                          {"index": 1, "value": 18, "op": "SCMP_CMP_NE"}]}]}"#,
        );
        let Ok(ctx) = seccomp::build(&p) else {
            return 201;
        };
        if seccomp::load(&ctx).is_err() {
            return 203;
        }
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(me, 0) } == 0 || errno() != libc::EACCES {
            return 10;
        }
        // SAFETY: SIGCONT to ourselves is a no-op for a running process.
        if unsafe { libc::kill(me, libc::SIGCONT) } == 0 || errno() != libc::EACCES {
            return 11;
        }
        0
    });
    assert_eq!(code, 0, "repeated index: each condition is its own rule");

    // MASKED_EQ: value is the mask, valueTwo the datum; (sig & 0x10) == 0x10 is blocked.
    let code = in_child(|| {
        let p = profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 1, "value": 16, "valueTwo": 16, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
        );
        let Ok(ctx) = seccomp::build(&p) else {
            return 201;
        };
        if seccomp::load(&ctx).is_err() {
            return 203;
        }
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        // SAFETY: SIGCONT (18 = 0x12) to ourselves is a no-op for a running process.
        if unsafe { libc::kill(me, libc::SIGCONT) } == 0 || errno() != libc::EACCES {
            return 10;
        }
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(me, 0) } != 0 {
            return 11;
        }
        0
    });
    assert_eq!(code, 0, "masked comparison");
}

#[test]
fn dropped_chown_capability_makes_chown_fail() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("owned");
    std::fs::write(&file, b"x").expect("write");
    let path = CString::new(file.clone().into_os_string().into_encoded_bytes()).expect("path");

    // What we hold (the host may have withheld some), minus CAP_CHOWN.
    let held = caps::read(None, caps::CapSet::Permitted).expect("read permitted");
    let all_but_chown: Vec<String> = capabilities::known_names()
        .into_iter()
        .filter(|n| n != "CAP_CHOWN")
        .filter(|n| capabilities::parse(n).is_ok_and(|c| held.contains(&c)))
        .collect();
    let spec: LinuxCapabilities = serde_json::from_value(serde_json::json!({
        "bounding": all_but_chown,
        "effective": all_but_chown,
        "permitted": all_but_chown,
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"],
    }))
    .expect("capabilities");
    let sets = capabilities::from_spec(&spec).expect("from_spec");
    assert!(
        sets.unsupported.is_empty(),
        "{:?}",
        sets.unsupported_names()
    );

    let code = in_child(move || {
        // SAFETY: `path` is a valid NUL-terminated path.
        if unsafe { libc::chown(path.as_ptr(), 1, 1) } != 0 {
            return 10; // root should be able to chown before the drop
        }
        // SAFETY: as above.
        if unsafe { libc::chown(path.as_ptr(), 0, 0) } != 0 {
            return 11;
        }
        if capabilities::apply_bounding(&sets).is_err() {
            return 20;
        }
        if let Err(e) = capabilities::apply_process_sets(&sets) {
            eprintln!("{e}");
            return 21;
        }
        if caps::has_cap(None, caps::CapSet::Bounding, caps::Capability::CAP_CHOWN).unwrap_or(true)
        {
            return 30;
        }
        if caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_CHOWN).unwrap_or(true)
        {
            return 31;
        }
        if !caps::has_cap(None, caps::CapSet::Ambient, caps::Capability::CAP_KILL).unwrap_or(false)
        {
            return 32;
        }
        // SAFETY: as above.
        if unsafe { libc::chown(path.as_ptr(), 1, 1) } == 0 {
            return 40;
        }
        if errno() != libc::EPERM {
            return 41;
        }
        0
    });
    assert_eq!(code, 0, "chown must fail with EPERM without CAP_CHOWN");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&file).expect("stat").uid(), 0);
}

/// A child loads a filter with SCMP_ACT_NOTIFY for getppid, sends the notify fd and the
/// container process state to our listener, and gets our answer as getppid's result.
#[test]
fn notify_fd_reaches_the_agent_and_the_agent_answers() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let p = profile(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": {path},
            "listenerMetadata": "berth-test",
            "syscalls": [{{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}}]}}"#,
        path = serde_json::Value::from(sock.to_str().expect("utf-8 path"))
    ));
    const ANSWER: i64 = 4242;

    let _guard = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: see in_child; the child only runs the closure below and `_exit`s.
    let child = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(|| {
                let Ok(ctx) = seccomp::build(&p) else {
                    return 201;
                };
                let fd = match seccomp::load(&ctx) {
                    Ok(Some(fd)) => fd,
                    Ok(None) => return 202,
                    Err(_) => return 203,
                };
                // SAFETY: getpid has no preconditions.
                let pid = unsafe { libc::getpid() };
                let state = serde_json::json!({
                    "ociVersion": "1.2.0", "id": "notify-test", "status": "creating",
                    "pid": pid, "bundle": "/nonexistent",
                });
                let (Some(listener), Some(meta)) = (p.listener_path(), p.listener_metadata())
                else {
                    return 204;
                };
                if seccomp::send_notify_fd(listener, &fd, pid, meta, &state).is_err() {
                    return 205;
                }
                drop(fd);
                // SAFETY: getppid has no preconditions; the agent answers it.
                let got = unsafe { libc::getppid() };
                if i64::from(got) == ANSWER {
                    0
                } else {
                    206
                }
            })
            .unwrap_or(99);
            // SAFETY: leaves the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };

    let agent = || -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Ok(WaitStatus::Exited(_, code)) =
                        waitpid(child, Some(WaitPidFlag::WNOHANG))
                    {
                        return Err(format!("child exited early with {code}"));
                    }
                    if Instant::now() > deadline {
                        return Err("no connection from the child".into());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<UnixAddr>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(|e| format!("recvmsg: {e}"))?;
            let mut fd = None;
            for c in msg.cmsgs().map_err(|e| e.to_string())? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    // SAFETY: the kernel just installed these fds for us; we own them.
                    fd = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
                }
            }
            (msg.bytes, fd)
        };
        let fd = fd.ok_or("no fd in the message")?;
        let mut payload = buf[..n].to_vec();
        stream
            .read_to_end(&mut payload)
            .map_err(|e| format!("read: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_slice(&payload).map_err(|e| format!("json: {e}"))?;
        let expect = |field: &str, want: serde_json::Value| -> Result<(), String> {
            if v[field] == want {
                Ok(())
            } else {
                Err(format!("{field}: got {} want {want}", v[field]))
            }
        };
        expect("ociVersion", "1.2.0".into())?;
        expect("fds", serde_json::json!(["seccompFd"]))?;
        expect("pid", child.as_raw().into())?;
        expect("metadata", "berth-test".into())?;
        if v["state"]["id"] != "notify-test" {
            return Err(format!("state: {}", v["state"]));
        }

        let req = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd())
            .map_err(|e| format!("receive: {e}"))?;
        let name = req.data.syscall.get_name().map_err(|e| e.to_string())?;
        if name != "getppid" || req.pid != child.as_raw() as u32 {
            return Err(format!("unexpected request for {name} from {}", req.pid));
        }
        libseccomp::ScmpNotifResp::new_val(req.id, ANSWER, libseccomp::ScmpNotifRespFlags::empty())
            .respond(fd.as_raw_fd())
            .map_err(|e| format!("respond: {e}"))
    };
    if let Err(e) = agent() {
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        panic!("agent: {e}");
    }
    assert_eq!(
        wait_exit(child),
        0,
        "getppid must return the agent's answer"
    );
}
