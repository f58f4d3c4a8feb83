//! Placement: filter the nodes a task may go to (ready, active, constraints, resources left
//! over the reservations of the tasks already there), then score them: spread (fewest tasks
//! of the service, spread preferences first, then fewest tasks at all) by default,
//! bin-packing (the fullest node that still fits) as an option. Pure: the master feeds it its
//! state and writes the decisions.

use std::collections::HashMap;

use crate::model::{Availability, Node, NodeState, Resources, Role, Task, TaskTemplate};

/// A parsed `--constraint`: `node.role==manager`, `node.labels.zone!=b`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    key: String,
    equal: bool,
    value: String,
}

impl Constraint {
    /// Swarm's keys: node.id, node.hostname, node.role, node.platform.os,
    /// node.platform.arch, node.labels.*, engine.labels.*.
    pub fn parse(s: &str) -> Result<Constraint, String> {
        let (key, value, equal) = if let Some((k, v)) = s.split_once("==") {
            (k, v, true)
        } else if let Some((k, v)) = s.split_once("!=") {
            (k, v, false)
        } else {
            return Err(format!(
                "constraint expected one operator from ==, !=: {s:?}"
            ));
        };
        let key = key.trim().to_string();
        let value = value.trim().to_string();
        let known = matches!(
            key.to_ascii_lowercase().as_str(),
            "node.id" | "node.hostname" | "node.role" | "node.platform.os" | "node.platform.arch"
        ) || key.starts_with("node.labels.")
            || key.starts_with("engine.labels.");
        if !known {
            return Err(format!("constraint {s:?}: unknown key {key:?} (node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.KEY)"));
        }
        if value.is_empty() {
            return Err(format!("constraint {s:?}: empty value"));
        }
        if key.eq_ignore_ascii_case("node.role") && !matches!(value.as_str(), "manager" | "worker")
        {
            return Err(format!(
                "constraint {s:?}: node.role is manager or worker, not {value:?}"
            ));
        }
        Ok(Constraint { key, equal, value })
    }

    pub fn matches(&self, node: &Node) -> bool {
        let actual: Option<&str> = match self.key.to_ascii_lowercase().as_str() {
            "node.id" => Some(&node.id),
            "node.hostname" => Some(&node.description.hostname),
            "node.role" => Some(match node.spec.role {
                Role::Manager => "manager",
                Role::Worker => "worker",
            }),
            "node.platform.os" => Some(&node.description.os),
            "node.platform.arch" => Some(&node.description.arch),
            _ => self
                .key
                .strip_prefix("node.labels.")
                .and_then(|k| node.spec.labels.get(k).map(String::as_str)),
        };
        match actual {
            // Swarm compares ids and hostnames case-insensitively, labels exactly.
            Some(a) if self.key.starts_with("node.labels.") => (a == self.value) == self.equal,
            Some(a) => a.eq_ignore_ascii_case(&self.value) == self.equal,
            None => !self.equal,
        }
    }
}

/// Parses all of a template's constraints; the first bad one is the error.
pub fn parse_constraints(list: &[String]) -> Result<Vec<Constraint>, String> {
    list.iter().map(|c| Constraint::parse(c)).collect()
}

/// The spread descriptor of `--placement-pref spread=node.labels.zone`.
pub fn validate_spread(descriptor: &str) -> Result<(), String> {
    if descriptor.starts_with("node.labels.") || descriptor.starts_with("engine.labels.") {
        Ok(())
    } else {
        Err(format!(
            "invalid placement preference spread={descriptor}: the descriptor must be node.labels.KEY"
        ))
    }
}

struct Slot {
    /// Host ports (port, protocol) taken by the tasks placed here.
    ports: std::collections::HashSet<(u16, String)>,
    reserved: Resources,
    total: usize,
    by_service: HashMap<String, usize>,
}

/// The nodes and what is already placed on them, updated as tasks are placed.
pub struct Scheduler<'a> {
    nodes: Vec<&'a Node>,
    slots: Vec<Slot>,
    index: HashMap<&'a str, usize>,
}

impl<'a> Scheduler<'a> {
    /// `placed`: the live tasks that already have a node.
    pub fn new<'t>(nodes: &'a [Node], placed: impl IntoIterator<Item = &'t Task>) -> Self {
        let nodes: Vec<&Node> = nodes.iter().collect();
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut slots: Vec<Slot> = nodes
            .iter()
            .map(|_| Slot {
                ports: Default::default(),
                reserved: Resources::default(),
                total: 0,
                by_service: HashMap::new(),
            })
            .collect();
        for t in placed {
            if let Some(&i) = index.get(t.node_id.as_str()) {
                add(&mut slots[i], t);
            }
        }
        Scheduler {
            nodes,
            slots,
            index,
        }
    }

    /// Places one task: the chosen node's id, or the `no suitable node (...)` reason. A task
    /// with a `node_id` already (global services) is only checked against that node.
    pub fn place(&mut self, task: &Task) -> Result<String, String> {
        let cons = parse_constraints(&task.spec.placement.constraints)?;
        let mut not_ready = 0;
        let mut unavailable = 0;
        let mut constrained = 0;
        let mut no_room = 0;
        let mut port_taken = 0;
        let mut best: Option<(usize, Key)> = None;
        let candidates: Vec<usize> = if task.node_id.is_empty() {
            (0..self.nodes.len()).collect()
        } else {
            self.index
                .get(task.node_id.as_str())
                .copied()
                .into_iter()
                .collect()
        };
        let groups = if task.spec.placement.spread.is_empty() {
            None
        } else {
            Some(self.group_counts(&task.service_id, &task.spec.placement.spread))
        };
        for i in candidates {
            let node = self.nodes[i];
            if node.state != NodeState::Ready {
                not_ready += 1;
                continue;
            }
            if node.spec.availability != Availability::Active {
                unavailable += 1;
                continue;
            }
            if !cons.iter().all(|c| c.matches(node)) {
                constrained += 1;
                continue;
            }
            if !fits(node, &self.slots[i].reserved, &task.spec) {
                no_room += 1;
                continue;
            }
            if task.ports.iter().any(|p| {
                p.published != 0
                    && p.mode == "host"
                    && self.slots[i]
                        .ports
                        .contains(&(p.published, p.protocol.clone()))
            }) {
                port_taken += 1;
                continue;
            }
            let key = self.key(i, task, groups.as_ref());
            if best.as_ref().is_none_or(|(_, k)| key < *k) {
                best = Some((i, key));
            }
        }
        match best {
            Some((i, _)) => {
                add(&mut self.slots[i], task);
                Ok(self.nodes[i].id.clone())
            }
            None => {
                let mut why = Vec::new();
                let n = |k: usize| if k == 1 { "node" } else { "nodes" };
                if not_ready > 0 {
                    why.push(format!("{not_ready} {} not available", n(not_ready)));
                }
                if unavailable > 0 {
                    why.push(format!("{unavailable} {} not active", n(unavailable)));
                }
                if constrained > 0 {
                    why.push(format!(
                        "scheduling constraints not satisfied on {constrained} {}",
                        n(constrained)
                    ));
                }
                if no_room > 0 {
                    why.push(format!(
                        "insufficient resources on {no_room} {}",
                        n(no_room)
                    ));
                }
                if port_taken > 0 {
                    why.push(format!(
                        "host-mode port already in use on {port_taken} {}",
                        n(port_taken)
                    ));
                }
                if why.is_empty() {
                    why.push("no nodes in the cluster".into());
                }
                Err(format!("no suitable node ({})", why.join("; ")))
            }
        }
    }

    /// Forgets a placed task (it was shut down in this round).
    pub fn remove(&mut self, task: &Task) {
        if let Some(&i) = self.index.get(task.node_id.as_str()) {
            let s = &mut self.slots[i];
            s.reserved.nano_cpus -= task.spec.reservations.nano_cpus;
            s.reserved.memory_bytes -= task.spec.reservations.memory_bytes;
            s.total = s.total.saturating_sub(1);
            for p in task.ports.iter().filter(|p| p.mode == "host") {
                s.ports.remove(&(p.published, p.protocol.clone()));
            }
            if let Some(c) = s.by_service.get_mut(&task.service_id) {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// Tasks of `service` per value of each spread descriptor.
    fn group_counts(&self, service: &str, spread: &[String]) -> Vec<HashMap<String, usize>> {
        spread
            .iter()
            .map(|d| {
                let mut m: HashMap<String, usize> = HashMap::new();
                for (i, n) in self.nodes.iter().enumerate() {
                    let c = self.slots[i].by_service.get(service).copied().unwrap_or(0);
                    *m.entry(label_value(n, d)).or_default() += c;
                }
                m
            })
            .collect()
    }

    fn key(&self, i: usize, task: &Task, groups: Option<&Vec<HashMap<String, usize>>>) -> Key {
        let s = &self.slots[i];
        let node = self.nodes[i];
        let mine = s.by_service.get(&task.service_id).copied().unwrap_or(0);
        let spread: Vec<usize> = match groups {
            Some(g) => task
                .spec
                .placement
                .spread
                .iter()
                .zip(g)
                .map(|(d, m)| m.get(&label_value(node, d)).copied().unwrap_or(0))
                .collect(),
            None => Vec::new(),
        };
        if task.spec.placement.binpack {
            // Fullest first: the most reserved memory, then the most tasks.
            Key {
                spread,
                first: u64::MAX - s.reserved.memory_bytes.max(0) as u64,
                second: usize::MAX - s.total,
                third: 0,
            }
        } else {
            Key {
                spread,
                first: mine as u64,
                second: s.total,
                third: 0,
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    spread: Vec<usize>,
    first: u64,
    second: usize,
    third: usize,
}

fn label_value(node: &Node, descriptor: &str) -> String {
    descriptor
        .strip_prefix("node.labels.")
        .and_then(|k| node.spec.labels.get(k).cloned())
        .unwrap_or_default()
}

fn add(slot: &mut Slot, t: &Task) {
    for p in t
        .ports
        .iter()
        .filter(|p| p.published != 0 && p.mode == "host")
    {
        slot.ports.insert((p.published, p.protocol.clone()));
    }
    slot.reserved.nano_cpus += t.spec.reservations.nano_cpus;
    slot.reserved.memory_bytes += t.spec.reservations.memory_bytes;
    slot.total += 1;
    *slot.by_service.entry(t.service_id.clone()).or_default() += 1;
}

fn fits(node: &Node, reserved: &Resources, spec: &TaskTemplate) -> bool {
    let want = spec.reservations;
    (want.nano_cpus == 0 || reserved.nano_cpus + want.nano_cpus <= node.description.nano_cpus)
        && (want.memory_bytes == 0
            || reserved.memory_bytes + want.memory_bytes <= node.description.memory_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn node(id: &str, role: Role, labels: &[(&str, &str)]) -> Node {
        Node {
            id: id.into(),
            spec: NodeSpec {
                role,
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
            description: NodeDescription {
                hostname: format!("host-{id}"),
                nano_cpus: 2_000_000_000,
                memory_bytes: 1 << 30,
                os: "linux".into(),
                arch: "x86_64".into(),
                ..Default::default()
            },
            state: NodeState::Ready,
            ..Default::default()
        }
    }

    fn task(service: &str, slot: u64) -> Task {
        Task {
            id: format!("{service}-{slot}"),
            version: 1,
            created_at: 0,
            updated_at: 0,
            service_id: service.into(),
            service_name: service.into(),
            slot,
            node_id: String::new(),
            spec: TaskTemplate::default(),
            task_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus::new(TaskState::Pending, "", 0),
            attempt: 0,
            healthy: None,
            restart_at: 0,
            retire: Retire::Keep,
            replaces: String::new(),
            ports: Vec::new(),
            networks: Vec::new(),
            addrs: Default::default(),
        }
    }

    fn counts(placed: &[String]) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for p in placed {
            *m.entry(p.clone()).or_default() += 1;
        }
        m
    }

    #[test]
    fn spread_balances_within_one() {
        let nodes: Vec<Node> = (0..7)
            .map(|i| node(&format!("n{i}"), Role::Worker, &[]))
            .collect();
        let mut s = Scheduler::new(&nodes, []);
        let placed: Vec<String> = (1..=30)
            .map(|i| s.place(&task("web", i)).unwrap())
            .collect();
        let c = counts(&placed);
        let (min, max) = (c.values().min().unwrap(), c.values().max().unwrap());
        assert_eq!(c.len(), 7);
        assert!(max - min <= 1, "{c:?}");
    }

    #[test]
    fn spread_counts_other_services_second() {
        let nodes = vec![node("a", Role::Worker, &[]), node("b", Role::Worker, &[])];
        let mut other = task("db", 1);
        other.node_id = "a".into();
        let mut s = Scheduler::new(&nodes, [&other]);
        assert_eq!(s.place(&task("web", 1)).unwrap(), "b");
        assert_eq!(s.place(&task("web", 2)).unwrap(), "a");
    }

    #[test]
    fn constraints_filter() {
        let nodes = vec![
            node("m", Role::Manager, &[("zone", "x")]),
            node("w1", Role::Worker, &[("zone", "y")]),
            node("w2", Role::Worker, &[]),
        ];
        let mut s = Scheduler::new(&nodes, []);
        let mut t = task("web", 1);
        t.spec.placement.constraints = vec!["node.role==manager".into()];
        assert_eq!(s.place(&t).unwrap(), "m");
        t.spec.placement.constraints = vec!["node.labels.zone==y".into()];
        assert_eq!(s.place(&t).unwrap(), "w1");
        t.spec.placement.constraints = vec!["node.hostname==HOST-W2".into()];
        assert_eq!(s.place(&t).unwrap(), "w2");
        t.spec.placement.constraints =
            vec!["node.labels.zone!=x".into(), "node.role!=manager".into()];
        let p = s.place(&t).unwrap();
        assert!(p == "w1" || p == "w2");
        t.spec.placement.constraints = vec!["node.labels.zone==nowhere".into()];
        assert_eq!(
            s.place(&t).unwrap_err(),
            "no suitable node (scheduling constraints not satisfied on 3 nodes)"
        );
    }

    #[test]
    fn bad_constraints_are_named() {
        assert!(Constraint::parse("node.role=manager")
            .unwrap_err()
            .contains("operator"));
        assert!(Constraint::parse("node.color==red")
            .unwrap_err()
            .contains("unknown key"));
        assert!(Constraint::parse("node.role==boss")
            .unwrap_err()
            .contains("manager or worker"));
        assert!(validate_spread("zone").is_err());
        assert!(validate_spread("node.labels.zone").is_ok());
    }

    #[test]
    fn reservations_and_availability() {
        let mut nodes = vec![node("a", Role::Worker, &[]), node("b", Role::Worker, &[])];
        nodes[1].spec.availability = Availability::Drain;
        let mut s = Scheduler::new(&nodes, []);
        let mut t = task("big", 1);
        t.spec.reservations.memory_bytes = 600 << 20;
        assert_eq!(s.place(&t).unwrap(), "a");
        assert_eq!(
            s.place(&t).unwrap_err(),
            "no suitable node (1 node not active; insufficient resources on 1 node)"
        );
        nodes[0].state = NodeState::Down;
        let mut s = Scheduler::new(&nodes, []);
        assert!(s.place(&t).unwrap_err().contains("1 node not available"));
    }

    #[test]
    fn spread_preference_over_zones() {
        let nodes = vec![
            node("a1", Role::Worker, &[("zone", "a")]),
            node("a2", Role::Worker, &[("zone", "a")]),
            node("a3", Role::Worker, &[("zone", "a")]),
            node("b1", Role::Worker, &[("zone", "b")]),
        ];
        let mut s = Scheduler::new(&nodes, []);
        let mut t = task("web", 1);
        t.spec.placement.spread = vec!["node.labels.zone".into()];
        let placed: Vec<String> = (0..4).map(|_| s.place(&t).unwrap()).collect();
        let b = placed.iter().filter(|p| *p == "b1").count();
        assert_eq!(b, 2, "{placed:?}");
    }

    #[test]
    fn binpack_fills_one_node_first() {
        let nodes = vec![node("a", Role::Worker, &[]), node("b", Role::Worker, &[])];
        let mut s = Scheduler::new(&nodes, []);
        let mut t = task("web", 1);
        t.spec.placement.binpack = true;
        t.spec.reservations.memory_bytes = 256 << 20;
        let placed: Vec<String> = (0..4).map(|_| s.place(&t).unwrap()).collect();
        assert_eq!(counts(&placed).len(), 1, "{placed:?}");
        assert!(s.place(&t).is_ok(), "the second node takes the fifth");
    }

    #[test]
    fn published_ports_take_one_task_per_node() {
        let nodes = vec![node("a", Role::Worker, &[]), node("b", Role::Worker, &[])];
        let mut s = Scheduler::new(&nodes, []);
        let mut t = task("web", 1);
        t.ports = vec![PortConfig {
            protocol: "tcp".into(),
            target: 80,
            published: 8080,
            mode: "host".into(),
        }];
        let a = s.place(&t).unwrap();
        let b = s.place(&t).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            s.place(&t).unwrap_err(),
            "no suitable node (host-mode port already in use on 2 nodes)"
        );
    }

    #[test]
    fn global_task_checks_its_node() {
        let mut nodes = vec![node("a", Role::Worker, &[]), node("b", Role::Manager, &[])];
        nodes[0].spec.availability = Availability::Pause;
        let mut s = Scheduler::new(&nodes, []);
        let mut t = task("agent", 0);
        t.node_id = "b".into();
        assert_eq!(s.place(&t).unwrap(), "b");
        t.node_id = "a".into();
        assert!(s.place(&t).unwrap_err().contains("not active"));
    }
}
