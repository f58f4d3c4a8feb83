//! The CNI 1.0 protocol: finding plugin executables, running one with `CNI_*` variables and
//! its config on stdin, parsing results and errors, and running a conflist (prevResult
//! chaining on ADD, reverse order on DEL, capabilities into runtimeConfig) the way libcni does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{NetError, Result};

/// Where plugins are looked for by default: Debian's package, then the upstream location.
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Del,
    Check,
    Version,
}

impl CniCommand {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
            CniCommand::Version => "VERSION",
        }
    }
}

/// The per-invocation arguments every plugin of a conflist gets.
#[derive(Debug, Clone)]
pub struct RuntimeArgs {
    pub container_id: String,
    /// The netns path (`/proc/<pid>/ns/net`, `/run/netns/NAME`); empty on a DEL whose
    /// namespace is gone, which the plugins accept.
    pub netns: String,
    pub ifname: String,
}

/// A CNI error object (`{"code", "msg", "details"}`) on a failing plugin's stdout.
#[derive(Debug, Deserialize)]
struct CniErrorBody {
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// The plugin search path. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Plugins {
    dirs: Vec<PathBuf>,
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins {
            dirs: DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

impl Plugins {
    /// Search `dirs`, in order.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Plugins { dirs }
    }

    /// The directories searched.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The executable of plugin `plugin` (a bare name such as `bridge`).
    pub fn find(&self, plugin: &str) -> Result<PathBuf> {
        let not_found = || NetError::PluginNotFound {
            plugin: plugin.to_string(),
            dirs: self.dirs.iter().map(|d| d.display().to_string()).collect(),
        };
        if plugin.is_empty() || plugin.contains('/') || plugin == "." || plugin == ".." {
            return Err(not_found());
        }
        self.dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| is_executable(p))
            .ok_or_else(not_found)
    }

    /// Run one plugin once. `conf` is its full network config (name, cniVersion, type,
    /// prevResult, runtimeConfig...). Returns the parsed stdout on success (`None` when the
    /// plugin printed nothing, as DEL does), or the plugin's CNI error.
    pub fn exec(
        &self,
        command: CniCommand,
        args: &RuntimeArgs,
        network: &str,
        conf: &Value,
    ) -> Result<Option<Value>> {
        let plugin = conf
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let path = self.find(&plugin)?;
        let stdin = serde_json::to_vec(conf).map_err(|e| NetError::BadResult {
            plugin: plugin.clone(),
            command: command.as_str(),
            network: network.to_string(),
            reason: e.to_string(),
        })?;
        let cni_path = std::env::join_paths(&self.dirs)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Plugins exec iptables, ip6tables and modprobe: make sure sbin is searched.
        let mut path_env = std::env::var("PATH").unwrap_or_default();
        for d in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
            if !path_env.split(':').any(|p| p == d) {
                if !path_env.is_empty() {
                    path_env.push(':');
                }
                path_env.push_str(d);
            }
        }
        let exec_err = |source| NetError::PluginExec {
            plugin: plugin.clone(),
            path: path.clone(),
            source,
        };
        let mut child = Command::new(&path)
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", &args.container_id)
            .env("CNI_NETNS", &args.netns)
            .env("CNI_IFNAME", &args.ifname)
            .env("CNI_PATH", cni_path)
            .env("PATH", path_env)
            .env_remove("CNI_ARGS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(exec_err)?;
        if let Some(mut pipe) = child.stdin.take() {
            // A plugin that exits without reading its config reports why on stdout; a write
            // error here (EPIPE) says nothing more.
            let _ = pipe.write_all(&stdin);
        }
        let out = child.wait_with_output().map_err(exec_err)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let (code, msg, details) = match serde_json::from_slice::<CniErrorBody>(&out.stdout) {
                Ok(e) => (e.code, e.msg, e.details),
                Err(_) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let text = if stderr.trim().is_empty() {
                        stdout.trim().to_string()
                    } else {
                        stderr.trim().to_string()
                    };
                    (0, format!("{}: {text}", out.status), String::new())
                }
            };
            return Err(NetError::Plugin {
                plugin,
                command: command.as_str(),
                network: network.to_string(),
                code,
                msg,
                details,
            });
        }
        if stdout.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&stdout)
            .map(Some)
            .map_err(|e| NetError::BadResult {
                plugin,
                command: command.as_str(),
                network: network.to_string(),
                reason: format!("{e}: {}", stdout.trim()),
            })
    }

    /// The CNI versions a plugin supports (`CNI_COMMAND=VERSION`).
    pub fn versions(&self, plugin: &str) -> Result<Vec<String>> {
        let args = RuntimeArgs {
            container_id: String::new(),
            netns: String::new(),
            ifname: String::new(),
        };
        let conf = serde_json::json!({"cniVersion": crate::config::CNI_VERSION, "type": plugin});
        let v = self.exec(CniCommand::Version, &args, "", &conf)?;
        Ok(v.as_ref()
            .and_then(|v| v.get("supportedVersions"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Run a conflist like libcni:
    /// - ADD: each plugin in order, with `prevResult` set to the result of the one before;
    ///   returns the last result;
    /// - CHECK: each plugin in order, each with `prevResult` = `cached` (the ADD result);
    /// - DEL: each plugin in reverse order, each with `prevResult` = `cached` when known. DEL
    ///   goes on past a failing plugin (to free what the others hold) and returns the first
    ///   error.
    ///
    /// Each plugin gets `name` and `cniVersion` from the list, and a `runtimeConfig` with the
    /// entries of `runtime_config` whose key it declares in its `capabilities`.
    pub fn run_conflist(
        &self,
        command: CniCommand,
        conflist: &Value,
        runtime_config: &Map<String, Value>,
        args: &RuntimeArgs,
        cached: Option<&Value>,
    ) -> Result<Option<Value>> {
        let network = conflist
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let version = conflist
            .get("cniVersion")
            .cloned()
            .unwrap_or_else(|| Value::from(crate::config::CNI_VERSION));
        let plugins: Vec<&Value> = conflist
            .get("plugins")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let build = |plugin: &Value, prev: Option<&Value>| -> Value {
            let mut conf = plugin.as_object().cloned().unwrap_or_default();
            conf.insert("name".into(), Value::from(network.clone()));
            conf.insert("cniVersion".into(), version.clone());
            if let Some(prev) = prev {
                conf.insert("prevResult".into(), prev.clone());
            }
            let mut rc = Map::new();
            if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
                for (k, on) in caps {
                    if on.as_bool() == Some(true) {
                        if let Some(v) = runtime_config.get(k) {
                            rc.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            if !rc.is_empty() {
                conf.insert("runtimeConfig".into(), Value::Object(rc));
            }
            Value::Object(conf)
        };
        match command {
            CniCommand::Add => {
                let mut prev: Option<Value> = None;
                for p in &plugins {
                    let conf = build(p, prev.as_ref());
                    if let Some(r) = self.exec(command, args, &network, &conf)? {
                        prev = Some(r);
                    }
                }
                Ok(prev)
            }
            CniCommand::Check | CniCommand::Version => {
                for p in &plugins {
                    match self.exec(command, args, &network, &build(p, cached)) {
                        Ok(_) => {}
                        Err(e) if is_portmap_ipv6_check_bug(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(None)
            }
            CniCommand::Del => {
                let mut first = None;
                for p in plugins.iter().rev() {
                    if let Err(e) = self.exec(command, args, &network, &build(p, cached)) {
                        first.get_or_insert(e);
                    }
                }
                match first {
                    Some(e) => Err(e),
                    None => Ok(None),
                }
            }
        }
    }
}

/// portmap up to plugins 1.2 looks for IPv6 DNAT chains on CHECK even for a container with
/// only IPv4 addresses, and fails (containernetworking/plugins#819). That error says nothing
/// about the IPv4 rules, which it checked first, so CHECK lets it pass.
fn is_portmap_ipv6_check_bug(e: &NetError) -> bool {
    matches!(e, NetError::Plugin { plugin, command: "CHECK", msg, .. }
        if plugin == "portmap" && msg.starts_with("could not check ipv6 dnat"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake plugin: a shell script that records its env and stdin and prints `reply`.
    fn fake(dir: &Path, name: &str, reply: &str, exit: i32) {
        let log = dir.join("log");
        let script = format!(
            "#!/bin/sh\nin=$(cat)\nprintf '%s %s %s %s %s\\n' \"$CNI_COMMAND\" \"{name}\" \"$CNI_CONTAINERID\" \"$CNI_IFNAME\" \"$CNI_NETNS\" >> {log}\nprintf '%s\\n' \"$in\" >> {log}\nprintf '%s' '{reply}'\nexit {exit}\n",
            log = log.display()
        );
        let p = dir.join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn args() -> RuntimeArgs {
        RuntimeArgs {
            container_id: "c1".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn conflist_chains_prev_result_and_capabilities() {
        let d = tempfile::tempdir().unwrap();
        fake(
            d.path(),
            "one",
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}"#,
            0,
        );
        fake(
            d.path(),
            "two",
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.3/24"}]}"#,
            0,
        );
        let plugins = Plugins::new(vec![d.path().join("missing"), d.path().to_path_buf()]);
        let list = serde_json::json!({"cniVersion":"1.0.0","name":"n1","plugins":[
            {"type":"one","capabilities":{"ips":true}},
            {"type":"two","capabilities":{"portMappings":true}}]});
        let mut rc = Map::new();
        rc.insert("ips".into(), serde_json::json!(["10.0.0.9/24"]));
        rc.insert("portMappings".into(), serde_json::json!([{"hostPort":1}]));
        let r = plugins
            .run_conflist(CniCommand::Add, &list, &rc, &args(), None)
            .unwrap()
            .unwrap();
        assert_eq!(r["ips"][0]["address"], "10.0.0.3/24");
        let log = std::fs::read_to_string(d.path().join("log")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines[0], "ADD one c1 eth0 /run/netns/x");
        let c1: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(c1["name"], "n1");
        assert_eq!(c1["cniVersion"], "1.0.0");
        assert!(c1.get("prevResult").is_none());
        assert_eq!(
            c1["runtimeConfig"],
            serde_json::json!({"ips":["10.0.0.9/24"]})
        );
        let c2: Value = serde_json::from_str(lines[3]).unwrap();
        assert_eq!(c2["prevResult"]["ips"][0]["address"], "10.0.0.2/24");
        assert_eq!(
            c2["runtimeConfig"],
            serde_json::json!({"portMappings":[{"hostPort":1}]})
        );

        std::fs::remove_file(d.path().join("log")).unwrap();
        plugins
            .run_conflist(CniCommand::Del, &list, &rc, &args(), Some(&r))
            .unwrap();
        let log = std::fs::read_to_string(d.path().join("log")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert!(lines[0].starts_with("DEL two"));
        assert!(lines[2].starts_with("DEL one"));
        let c: Value = serde_json::from_str(lines[3]).unwrap();
        assert_eq!(c["prevResult"]["ips"][0]["address"], "10.0.0.3/24");
    }

    #[test]
    fn errors_name_plugin_code_and_msg() {
        let d = tempfile::tempdir().unwrap();
        fake(
            d.path(),
            "bad",
            r#"{"cniVersion":"1.0.0","code":7,"msg":"no luck","details":"really"}"#,
            1,
        );
        fake(d.path(), "ok", "", 0);
        let plugins = Plugins::new(vec![d.path().to_path_buf()]);
        let list = serde_json::json!({"cniVersion":"1.0.0","name":"n1","plugins":[{"type":"ok"},{"type":"bad"}]});
        let e = plugins
            .run_conflist(CniCommand::Add, &list, &Map::new(), &args(), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cni plugin bad ADD on network \"n1\" failed: code 7: no luck (really)"
        );
        // DEL runs every plugin even when one fails.
        std::fs::remove_file(d.path().join("log")).unwrap();
        assert!(plugins
            .run_conflist(CniCommand::Del, &list, &Map::new(), &args(), None)
            .is_err());
        let log = std::fs::read_to_string(d.path().join("log")).unwrap();
        assert!(log.contains("DEL ok"), "{log}");
        let e = plugins.find("nope").unwrap_err().to_string();
        assert!(e.starts_with("cni plugin \"nope\" not found in "), "{e}");
        assert!(plugins.find("../bad").is_err());
    }
}
