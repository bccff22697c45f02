//! The inventory: a file (TOML or YAML) naming the agents of a fleet, their addresses,
//! TLS settings and labels; label selection (`role=db,zone=a`) and the fleet blast radius
//! (`--max-nodes`, `--max-percent`, a random pick repeatable with `--seed`).
//!
//! ```toml
//! [defaults]              # TLS settings every agent inherits (optional)
//! ca = "/etc/faultline/ca.pem"
//! cert = "/etc/faultline/client.pem"
//! key = "/etc/faultline/client.key"
//! # server_name = "faultd.faultline.svc"   # agents sharing one certificate, dialled by IP
//!
//! [[agents]]
//! name = "db-1"
//! address = "https://db-1.internal:7070"
//! labels = { role = "db", zone = "a" }
//!
//! [[agents]]
//! name = "app-1"
//! address = "unix:///run/faultline/faultd.sock"
//! labels = { role = "app", zone = "a" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use faultline_proto::v1::agent_client::AgentClient;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use serde::Deserialize;
use tonic::transport::Channel;

use crate::client::ConnectError;

/// Why an inventory, a selector or a blast-radius limit was refused.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid inventory {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("invalid selector {text:?}: {reason}")]
    BadSelector { text: String, reason: String },
    #[error("the selector {selector:?} matches no agent of the inventory ({total} agents)")]
    NoMatch { selector: String, total: usize },
    #[error("invalid fleet blast radius: {0}")]
    BadLimit(String),
}

/// TLS settings for an agent (paths to PEM files). Relative paths are taken relative to
/// the inventory file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The CA that signed the agent's certificate.
    pub ca: Option<PathBuf>,
    /// faultctl's client certificate.
    pub cert: Option<PathBuf>,
    /// faultctl's client key.
    pub key: Option<PathBuf>,
    /// The name to check the agent's certificate for, instead of the address's host:
    /// agents that share one certificate (a Kubernetes DaemonSet's Secret) are dialled
    /// by IP and checked for this name.
    pub server_name: Option<String>,
}

impl TlsSettings {
    fn or(&self, d: &TlsSettings) -> TlsSettings {
        TlsSettings {
            ca: self.ca.clone().or_else(|| d.ca.clone()),
            cert: self.cert.clone().or_else(|| d.cert.clone()),
            key: self.key.clone().or_else(|| d.key.clone()),
            server_name: self.server_name.clone().or_else(|| d.server_name.clone()),
        }
    }

    fn rebase(&mut self, dir: &Path) {
        for p in [&mut self.ca, &mut self.cert, &mut self.key]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Whether any setting is given.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none() && self.server_name.is_none()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: TlsSettings,
    #[serde(default)]
    agents: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    address: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    server_name: Option<String>,
}

/// One agent of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    pub name: String,
    /// `unix:///path`, `http://host:port` or `https://host:port`.
    pub address: String,
    pub labels: BTreeMap<String, String>,
    /// The agent's own TLS settings merged over the file's `[defaults]`.
    pub tls: TlsSettings,
}

impl Node {
    /// Whether every `key=value` (and `key!=value`) of `sel` holds. The key `name` also
    /// matches the node's name.
    pub fn matches(&self, sel: &Selector) -> bool {
        sel.terms.iter().all(|t| {
            let have = if t.key == "name" && !self.labels.contains_key("name") {
                Some(&self.name)
            } else {
                self.labels.get(&t.key)
            };
            let eq = have.is_some_and(|v| t.values.iter().any(|w| w == v));
            eq != t.negated
        })
    }

    /// Connects to this agent, with mutual TLS for `https://` agents (the inventory's
    /// ca/cert/key).
    pub async fn connect(&self) -> Result<AgentClient<Channel>, ConnectError> {
        let tls = crate::client::TlsFiles {
            ca: self.tls.ca.clone(),
            cert: self.tls.cert.clone(),
            key: self.tls.key.clone(),
            server_name: self.tls.server_name.clone(),
        };
        crate::client::connect_with(&self.address, &tls).await
    }
}

/// A parsed inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Where it came from.
    pub source: PathBuf,
    pub nodes: Vec<Node>,
}

impl Inventory {
    /// Reads an inventory: `.yaml`/`.yml` as YAML, anything else as TOML.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let dir = path.parent().unwrap_or(Path::new("."));
        Inventory::parse(&text, yaml, dir)
            .map_err(|reason| InventoryError::Parse {
                path: path.to_path_buf(),
                reason,
            })
            .map(|mut inv| {
                inv.source = path.to_path_buf();
                inv
            })
    }

    /// Parses inventory text; relative TLS paths are joined to `dir`.
    pub fn parse(text: &str, yaml: bool, dir: &Path) -> Result<Inventory, String> {
        let file: File = if yaml {
            serde_saphyr::from_str(text).map_err(|e| e.to_string())?
        } else {
            toml::from_str(text).map_err(|e| e.to_string())?
        };
        let mut defaults = file.defaults;
        defaults.rebase(dir);
        let mut nodes: Vec<Node> = Vec::with_capacity(file.agents.len());
        // Name and address -> the position (1-based) of the agent that first gave it.
        let mut names: std::collections::HashMap<String, usize> = Default::default();
        let mut addresses: std::collections::HashMap<String, (usize, String)> = Default::default();
        for (i, e) in file.agents.into_iter().enumerate() {
            let at = i + 1;
            if e.name.trim().is_empty() {
                return Err(format!("agent #{at} has an empty name"));
            }
            if let Some(first) = names.insert(e.name.clone(), at) {
                return Err(format!(
                    "agent name {:?} is given twice (agents #{first} and #{at}): names must be unique",
                    e.name
                ));
            }
            if let Some((first, other)) = addresses.insert(e.address.clone(), (at, e.name.clone()))
            {
                return Err(format!(
                    "address {} is given twice (agents {other:?} #{first} and {:?} #{at}): one agent, one entry",
                    e.address, e.name
                ));
            }
            crate::client::parse_target(&e.address)
                .or_else(|err| {
                    if e.address.starts_with("https://") {
                        Ok(crate::client::Target::Http(e.address.clone()))
                    } else {
                        Err(err)
                    }
                })
                .map_err(|err| format!("agent {}: {err}", e.name))?;
            let mut tls = TlsSettings {
                ca: e.ca,
                cert: e.cert,
                key: e.key,
                server_name: e.server_name,
            };
            tls.rebase(dir);
            nodes.push(Node {
                name: e.name,
                address: e.address,
                labels: e.labels,
                tls: tls.or(&defaults),
            });
        }
        if nodes.is_empty() {
            return Err("it lists no agents (add [[agents]] entries)".into());
        }
        Ok(Inventory {
            source: PathBuf::new(),
            nodes,
        })
    }

    /// The nodes `sel` matches, in inventory order; an error if none does.
    pub fn select(&self, sel: &Selector) -> Result<Vec<Node>, InventoryError> {
        let v: Vec<Node> = self
            .nodes
            .iter()
            .filter(|n| n.matches(sel))
            .cloned()
            .collect();
        if v.is_empty() {
            return Err(InventoryError::NoMatch {
                selector: sel.text.clone(),
                total: self.nodes.len(),
            });
        }
        Ok(v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    key: String,
    values: Vec<String>,
    negated: bool,
}

/// A label selector: comma-separated `key=value`, `key!=value`, `key=a|b`; every term
/// must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    text: String,
    terms: Vec<Term>,
}

impl Selector {
    /// Parses `role=db,zone=a`.
    pub fn parse(text: &str) -> Result<Selector, InventoryError> {
        let bad = |reason: &str| InventoryError::BadSelector {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v, negated) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, false)
            } else {
                return Err(bad(&format!(
                    "{part:?} is not key=value (write e.g. role=db,zone=a)"
                )));
            };
            let k = k.trim();
            if k.is_empty() {
                return Err(bad(&format!("{part:?} has an empty key")));
            }
            terms.push(Term {
                key: k.to_string(),
                values: v.split('|').map(|s| s.trim().to_string()).collect(),
                negated,
            });
        }
        Ok(Selector {
            text: text.to_string(),
            terms,
        })
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The fleet blast radius: how many of the selected nodes may be touched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BlastRadius {
    /// Every selected node.
    All,
    /// At most N nodes.
    MaxNodes(usize),
    /// At most P percent of the selected nodes (rounded down, at least one).
    MaxPercent(f64),
}

impl BlastRadius {
    /// From `--max-nodes` / `--max-percent` (at most one may be given).
    pub fn from_flags(
        max_nodes: Option<usize>,
        max_percent: Option<f64>,
    ) -> Result<BlastRadius, InventoryError> {
        match (max_nodes, max_percent) {
            (Some(_), Some(_)) => Err(InventoryError::BadLimit(
                "give --max-nodes or --max-percent, not both".into(),
            )),
            (Some(0), _) => Err(InventoryError::BadLimit(
                "max nodes 0 would touch nothing; give at least 1".into(),
            )),
            (Some(n), None) => Ok(BlastRadius::MaxNodes(n)),
            (None, Some(p)) if !(p > 0.0 && p <= 100.0) => Err(InventoryError::BadLimit(format!(
                "max percent {p} is outside (0, 100]"
            ))),
            (None, Some(p)) => Ok(BlastRadius::MaxPercent(p)),
            (None, None) => Ok(BlastRadius::All),
        }
    }

    /// How many of `n` selected nodes may be touched.
    pub fn allowed(&self, n: usize) -> usize {
        match *self {
            BlastRadius::All => n,
            BlastRadius::MaxNodes(m) => m.min(n),
            BlastRadius::MaxPercent(p) => (((n as f64) * p / 100.0).floor() as usize).clamp(1, n),
        }
    }
}

/// The outcome of a pick: which nodes, out of how many, with which seed.
#[derive(Debug, Clone)]
pub struct Pick {
    pub nodes: Vec<Node>,
    pub selected: usize,
    /// The seed of the random pick (None when every selected node was taken).
    pub seed: Option<u64>,
}

impl Pick {
    /// One line saying what was picked, e.g. `picked 1 of 3 selected nodes (--seed 42): db-2`.
    pub fn describe(&self) -> String {
        let mut names: Vec<String> = self.nodes.iter().take(12).map(|n| n.name.clone()).collect();
        if self.nodes.len() > 12 {
            names.push(format!("and {} more", self.nodes.len() - 12));
        }
        match self.seed {
            Some(s) => format!(
                "picked {} of {} selected nodes at random (repeat with --seed {s}): {}",
                self.nodes.len(),
                self.selected,
                names.join(", ")
            ),
            None => format!("{} (all {} selected)", names.join(", "), self.selected),
        }
    }
}

/// Picks at most `radius` of `selected` at random (with `seed`, or a fresh one that
/// [`Pick::seed`] reports). The picked nodes keep inventory order.
pub fn pick(selected: Vec<Node>, radius: BlastRadius, seed: Option<u64>) -> Pick {
    let n = selected.len();
    let k = radius.allowed(n);
    if k >= n {
        return Pick {
            nodes: selected,
            selected: n,
            seed: None,
        };
    }
    let seed = seed.unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let idx: Vec<usize> = (0..n).collect();
    let mut chosen: Vec<usize> = idx.choose_multiple(&mut rng, k).copied().collect();
    chosen.sort_unstable();
    Pick {
        nodes: chosen.into_iter().map(|i| selected[i].clone()).collect(),
        selected: n,
        seed: Some(seed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INV: &str = r#"
[defaults]
ca = "ca.pem"

[[agents]]
name = "db-1"
address = "unix:///run/db1.sock"
labels = { role = "db", zone = "a" }

[[agents]]
name = "db-2"
address = "https://db-2:7070"
cert = "/abs/c.pem"
labels = { role = "db", zone = "b" }

[[agents]]
name = "app-1"
address = "http://127.0.0.1:7070"
labels = { role = "app", zone = "a" }
"#;

    fn inv() -> Inventory {
        Inventory::parse(INV, false, Path::new("/etc/fl")).unwrap()
    }

    fn names(v: &[Node]) -> Vec<&str> {
        v.iter().map(|n| n.name.as_str()).collect()
    }

    #[test]
    fn toml_and_yaml_agree() {
        let yaml = r#"
defaults:
  ca: ca.pem
agents:
  - name: db-1
    address: unix:///run/db1.sock
    labels: {role: db, zone: a}
  - name: db-2
    address: https://db-2:7070
    cert: /abs/c.pem
    labels: {role: db, zone: b}
  - name: app-1
    address: http://127.0.0.1:7070
    labels: {role: app, zone: a}
"#;
        let y = Inventory::parse(yaml, true, Path::new("/etc/fl")).unwrap();
        assert_eq!(y.nodes, inv().nodes);
        let db2 = &y.nodes[1];
        assert_eq!(db2.tls.ca.as_deref(), Some(Path::new("/etc/fl/ca.pem")));
        assert_eq!(db2.tls.cert.as_deref(), Some(Path::new("/abs/c.pem")));
        assert_eq!(db2.tls.key, None);
    }

    #[test]
    fn bad_inventories_say_why() {
        let e = Inventory::parse(
            "[[agents]]\nname='a'\naddress='ftp://x'\n",
            false,
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.starts_with("agent a: invalid agent address"), "{e}");
        let e = Inventory::parse(
            "[[agents]]\nname='a'\naddress='unix:///a'\n[[agents]]\nname='a'\naddress='unix:///b'\n",
            false,
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "agent name \"a\" is given twice (agents #1 and #2): names must be unique"
        );
        let e = Inventory::parse(
            "[[agents]]\nname='a'\naddress='unix:///a'\n[[agents]]\nname='b'\naddress='unix:///b'\n[[agents]]\nname='c'\naddress='unix:///a'\n",
            false,
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "address unix:///a is given twice (agents \"a\" #1 and \"c\" #3): one agent, one entry"
        );
        let e = Inventory::parse("", false, Path::new(".")).unwrap_err();
        assert!(e.contains("lists no agents"), "{e}");
        let e = Inventory::parse(
            "[[agents]]\nname='a'\naddress='unix:///a'\nlabel={}\n",
            false,
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("label"), "{e}");
    }

    #[test]
    fn selectors() {
        let i = inv();
        let s = |t: &str| {
            i.select(&Selector::parse(t).unwrap())
                .map(|v| names(&v).join(" "))
        };
        assert_eq!(s("role=db").unwrap(), "db-1 db-2");
        assert_eq!(s("role=db,zone=a").unwrap(), "db-1");
        assert_eq!(s("zone!=a").unwrap(), "db-2");
        assert_eq!(s("role=db|app,zone=a").unwrap(), "db-1 app-1");
        assert_eq!(s("name=app-1").unwrap(), "app-1");
        assert_eq!(s("").unwrap(), "db-1 db-2 app-1");
        assert_eq!(
            s("role=cache").unwrap_err().to_string(),
            "the selector \"role=cache\" matches no agent of the inventory (3 agents)"
        );
        assert!(Selector::parse("role").is_err());
        assert!(Selector::parse("=db").is_err());
    }

    #[test]
    fn blast_radius_never_exceeds_and_seed_repeats() {
        let nodes: Vec<Node> = (0..10)
            .map(|i| Node {
                name: format!("n{i}"),
                address: format!("unix:///n{i}"),
                labels: BTreeMap::new(),
                tls: TlsSettings::default(),
            })
            .collect();
        let p = pick(nodes.clone(), BlastRadius::MaxNodes(3), Some(7));
        assert_eq!(p.nodes.len(), 3);
        assert_eq!(p.seed, Some(7));
        let q = pick(nodes.clone(), BlastRadius::MaxNodes(3), Some(7));
        assert_eq!(names(&p.nodes), names(&q.nodes));
        let all = pick(nodes.clone(), BlastRadius::MaxNodes(30), None);
        assert_eq!(all.nodes.len(), 10);
        assert_eq!(all.seed, None);
        assert_eq!(BlastRadius::MaxPercent(25.0).allowed(10), 2);
        assert_eq!(BlastRadius::MaxPercent(1.0).allowed(10), 1);
        assert_eq!(BlastRadius::MaxPercent(100.0).allowed(10), 10);
        // Different seeds eventually pick differently.
        let picks: std::collections::HashSet<Vec<String>> = (0..20)
            .map(|s| {
                pick(nodes.clone(), BlastRadius::MaxNodes(1), Some(s))
                    .nodes
                    .iter()
                    .map(|n| n.name.clone())
                    .collect()
            })
            .collect();
        assert!(picks.len() > 1);
        assert!(BlastRadius::from_flags(Some(1), Some(5.0)).is_err());
        assert!(BlastRadius::from_flags(Some(0), None).is_err());
        assert!(BlastRadius::from_flags(None, Some(0.0)).is_err());
        assert!(BlastRadius::from_flags(None, Some(101.0)).is_err());
    }

    #[tokio::test]
    async fn https_agents_without_tls_files_are_refused_clearly() {
        let i = inv();
        let e = i.nodes[1].connect().await.unwrap_err().to_string();
        assert!(e.contains("https needs mutual TLS"), "{e}");
    }
}
