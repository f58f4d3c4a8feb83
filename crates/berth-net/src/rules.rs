//! The iptables rules the plugins leave behind. CNI DEL removes what a plugin added for one
//! container, but not what plugins share between containers: the portmap and firewall
//! plugins' base chains (`CNI-HOSTPORT-*`, `CNI-FORWARD`, `CNI-ADMIN`,
//! `CNI-ISOLATION-STAGE-*`) with the jumps to them from the built-in chains, and the
//! firewall plugin's `ingressPolicy: same-bridge` rules, which name a bridge. These functions
//! take them away once nothing uses them; both read `iptables-save` and apply one
//! `iptables-restore --noflush` script per table, which parses the rules' quoting itself.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{NetError, Result};

/// The chains the portmap and firewall plugins share between all their containers.
const SHARED: [(&str, &str); 7] = [
    ("nat", "CNI-HOSTPORT-DNAT"),
    ("nat", "CNI-HOSTPORT-MASQ"),
    ("nat", "CNI-HOSTPORT-SETMARK"),
    ("filter", "CNI-FORWARD"),
    ("filter", "CNI-ADMIN"),
    ("filter", "CNI-ISOLATION-STAGE-1"),
    ("filter", "CNI-ISOLATION-STAGE-2"),
];

/// A rule of a shared chain that is part of its skeleton, not there for a container: the
/// portmap plugin's mark and masquerade, the firewall plugin's jump to its admin chain and
/// its `RETURN`s.
fn skeleton(chain: &str, rule: &str) -> bool {
    match chain {
        "CNI-HOSTPORT-SETMARK" => rule.contains("-j MARK"),
        "CNI-HOSTPORT-MASQ" => rule.contains("-j MASQUERADE") && rule.contains("--mark"),
        "CNI-FORWARD" => rule.ends_with("-j CNI-ADMIN"),
        "CNI-ISOLATION-STAGE-1" | "CNI-ISOLATION-STAGE-2" => rule.ends_with("-j RETURN"),
        _ => false,
    }
}

fn command_err(command: &str, reason: impl ToString) -> NetError {
    NetError::Command {
        command: command.to_string(),
        reason: reason.to_string(),
    }
}

fn save(table: &str) -> Result<String> {
    let command = format!("iptables-save -t {table}");
    let out = Command::new("iptables-save")
        .args(["-t", table])
        .output()
        .map_err(|e| command_err(&command, e))?;
    if !out.status.success() {
        return Err(command_err(
            &command,
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn restore(table: &str, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let command = format!("iptables-restore --noflush (table {table})");
    let mut script = format!("*{table}\n");
    for l in lines {
        script.push_str(l);
        script.push('\n');
    }
    script.push_str("COMMIT\n");
    let mut child = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| command_err(&command, e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| command_err(&command, e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| command_err(&command, e))?;
    if !out.status.success() {
        return Err(command_err(
            &command,
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(())
}

/// `(chain, rule)` for every `-A` line of a dump; `rule` is the whole line.
fn rules(dump: &str) -> impl Iterator<Item = (&str, &str)> {
    dump.lines()
        .filter(|l| l.starts_with("-A "))
        .map(|l| (l.split_whitespace().nth(1).unwrap_or_default(), l))
}

/// The lines that delete the rules of `dump` (one table) that `pick` selects.
fn deletions<'a>(dump: &'a str, pick: impl Fn(&str, &str) -> bool + 'a) -> Vec<String> {
    rules(dump)
        .filter(|(chain, rule)| pick(chain, rule))
        .map(|(_, rule)| format!("-D {}", &rule[3..]))
        .collect()
}

/// Removes the firewall plugin's isolation rules that name these bridges (`-i BR ! -o BR`,
/// `-o BR`): the plugin adds them (if missing) on each ADD and never removes them, since it
/// cannot know when a bridge's last container has gone. Call once no container is attached
/// to the bridges.
pub fn remove_bridge_rules(bridges: &[&str]) -> Result<()> {
    let dump = save("filter")?;
    let needles: Vec<String> = bridges
        .iter()
        .flat_map(|b| [format!("-i {b} "), format!("-o {b} ")])
        .collect();
    let lines = deletions(&dump, |chain, rule| {
        chain.starts_with("CNI-ISOLATION-") && needles.iter().any(|n| rule.contains(n.as_str()))
    });
    restore("filter", &lines)
}

/// Removes the bridge plugin's masquerade rules of one container: the jump from
/// `POSTROUTING` (commented `name: "NET" id: "CID"`) and the chain it jumps to. The plugin
/// removes them itself only when DEL is given the container's namespace (it reads the
/// addresses from the interface there), so a DEL without one leaves them.
pub fn remove_masquerade_rules(network: &str, container_id: &str) -> Result<()> {
    let dump = save("nat")?;
    let tag = masquerade_tag(network, container_id);
    let hit = |chain: &str, rule: &str| !chain.starts_with("CNI-") && rule.contains(&tag);
    let mut chains: Vec<&str> = rules(&dump)
        .filter(|(chain, rule)| hit(chain, rule))
        .filter_map(|(_, rule)| rule.rsplit_once("-j ").map(|(_, t)| t.trim()))
        .filter(|t| t.starts_with("CNI-") && !SHARED.iter().any(|(_, c)| c == t))
        .collect();
    chains.sort();
    chains.dedup();
    let mut lines = deletions(&dump, hit);
    for c in &chains {
        if dump.lines().any(|l| l.starts_with(&format!(":{c} "))) {
            lines.push(format!("-F {c}"));
            lines.push(format!("-X {c}"));
        }
    }
    restore("nat", &lines)
}

/// The bridge plugin's comment on a container's rules as `iptables-save` prints it.
fn masquerade_tag(network: &str, container_id: &str) -> String {
    format!("name: \\\"{network}\\\" id: \\\"{container_id}\\\"")
}

/// What [`prune_idle_chains`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruned {
    /// The shared chains were there and held nothing but their skeleton: they are gone.
    Removed,
    /// None of the shared chains exists.
    Absent,
    /// A shared chain still serves a container (Berth's or another CNI user's): left alone.
    InUse,
}

/// Takes the plugins' shared chains away once no container uses them: when every rule left
/// in them is part of their skeleton and no other `CNI-` chain (a container's own DNAT or
/// masquerade chain) exists, the jumps to them from the built-in chains go, then the chains.
/// The plugins make them again on the next ADD. Another CNI user's containers (podman,
/// containerd) keep them in use, so they are never taken from under it.
pub fn prune_idle_chains() -> Result<Pruned> {
    let mut dumps = Vec::new();
    let mut present = false;
    for table in ["nat", "filter"] {
        let dump = save(table)?;
        for decl in dump.lines().filter_map(|l| l.strip_prefix(':')) {
            let chain = decl.split_whitespace().next().unwrap_or_default();
            if !chain.starts_with("CNI-") {
                continue;
            }
            if !SHARED.contains(&(table, chain)) {
                return Ok(Pruned::InUse);
            }
            present = true;
        }
        let busy = rules(&dump)
            .any(|(chain, rule)| SHARED.contains(&(table, chain)) && !skeleton(chain, rule));
        if busy {
            return Ok(Pruned::InUse);
        }
        dumps.push((table, dump));
    }
    if !present {
        return Ok(Pruned::Absent);
    }
    for (table, dump) in &dumps {
        let shared: Vec<&str> = SHARED
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, c)| *c)
            .filter(|c| dump.lines().any(|l| l.starts_with(&format!(":{c} "))))
            .collect();
        let mut lines = deletions(dump, |chain, rule| {
            !chain.starts_with("CNI-")
                && shared.iter().any(|c| {
                    rule.ends_with(&format!("-j {c}")) || rule.contains(&format!("-j {c} "))
                })
        });
        lines.extend(shared.iter().map(|c| format!("-F {c}")));
        lines.extend(shared.iter().map(|c| format!("-X {c}")));
        restore(table, &lines)?;
    }
    Ok(Pruned::Removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAT: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark 0x2000/0x2000
COMMIT
";

    #[test]
    fn skeleton_rules_are_told_from_container_rules() {
        for (chain, rule) in rules(NAT) {
            if chain.starts_with("CNI-") {
                assert!(skeleton(chain, rule), "{rule}");
            }
        }
        assert!(!skeleton(
            "CNI-HOSTPORT-DNAT",
            "-A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 8080 -j CNI-DN-1234"
        ));
        assert!(!skeleton(
            "CNI-FORWARD",
            "-A CNI-FORWARD -d 10.88.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        ));
        assert!(skeleton(
            "CNI-FORWARD",
            "-A CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN"
        ));
    }

    #[test]
    fn the_masquerade_tag_is_the_plugins_comment_as_saved() {
        let saved = r#"-A POSTROUTING -s 10.214.9.3/32 -m comment --comment "name: \"back\" id: \"c1\"" -j CNI-0ddd61ca05835fc689967129"#;
        assert!(saved.contains(&masquerade_tag("back", "c1")));
        assert!(!saved.contains(&masquerade_tag("back", "c")));
    }

    #[test]
    fn deletions_keep_the_rule_text_and_its_quotes() {
        let d = deletions(NAT, |chain, rule| {
            !chain.starts_with("CNI-") && rule.contains("-j CNI-HOSTPORT-")
        });
        assert_eq!(
            d,
            vec![
                "-D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT".to_string(),
                "-D POSTROUTING -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ"
                    .to_string(),
            ]
        );
    }
}
