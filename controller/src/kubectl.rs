//! `faultctl inventory from-kubectl`: an inventory of the agents a Kubernetes cluster
//! runs as the DaemonSet of `deploy/kubernetes/`, from what `kubectl ... -o json` prints.
//!
//! The input is one or more JSON documents (lists or single objects): the DaemonSet's
//! pods (`kubectl get pods -n faultline -l app.kubernetes.io/name=faultd -o json`), and,
//! for selector labels, the nodes (`kubectl get nodes -o json`). Each running, ready
//! pod becomes one agent: named after its node, at `https://<node address>:<grpc port>`,
//! labelled with its node's labels. Pods that are not running and ready are left out,
//! with a warning naming them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

/// The label the DaemonSet's pods carry, and the default pod filter.
pub const DAEMONSET_LABEL: (&str, &str) = ("app.kubernetes.io/name", "faultd");
/// The container port name of faultd's gRPC (mutual TLS) listener in the DaemonSet.
pub const GRPC_PORT_NAME: &str = "grpc";

/// How to turn pods into an inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The agents' port when the pods do not name a `grpc` container port.
    pub port: Option<u16>,
    /// TLS files written under `[defaults]` (made absolute).
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The name the agents' shared certificate carries; default `faultd.<namespace>.svc`.
    pub server_name: Option<String>,
    /// Keep only pods with this `key=value` label; default [`DAEMONSET_LABEL`].
    pub pod_label: Option<(String, String)>,
}

/// Why the input could not be converted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KubectlError {
    #[error("invalid kubectl JSON on stdin: {0}")]
    Json(String),
    #[error("{0}")]
    NoAgents(String),
    #[error("pod {pod}: {reason}")]
    Pod { pod: String, reason: String },
}

/// The converted inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// TOML, as `--inventory` reads it.
    pub toml: String,
    /// The same inventory as JSON (for `-o json`).
    pub json: String,
    /// How many agents it names.
    pub agents: usize,
    /// What was left out or is missing, one sentence each.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct FileOut {
    #[serde(skip_serializing_if = "Defaults::is_empty")]
    defaults: Defaults,
    agents: Vec<AgentOut>,
}

#[derive(Debug, Default, Serialize)]
struct Defaults {
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<String>,
}

impl Defaults {
    fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none() && self.server_name.is_none()
    }
}

#[derive(Debug, Serialize)]
struct AgentOut {
    name: String,
    address: String,
    labels: BTreeMap<String, String>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Every object in the input: the items of lists, and single objects.
fn objects(input: &str) -> Result<Vec<Value>, KubectlError> {
    let mut out = Vec::new();
    for doc in serde_json::Deserializer::from_str(input).into_iter::<Value>() {
        let doc = doc.map_err(|e| KubectlError::Json(e.to_string()))?;
        match doc.get("items").and_then(Value::as_array) {
            Some(items) => out.extend(items.iter().cloned()),
            None if doc.get("kind").is_some() => out.push(doc),
            None => {
                return Err(KubectlError::Json(
                    "a document is neither a list (with items) nor a Kubernetes object (with kind)"
                        .into(),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(KubectlError::NoAgents(
            "the input holds no pods; pipe `kubectl get pods -n faultline -l app.kubernetes.io/name=faultd -o json` into it".into(),
        ));
    }
    Ok(out)
}

fn pod_name(p: &Value) -> String {
    format!(
        "{}/{}",
        str_at(p, &["metadata", "namespace"]).unwrap_or("default"),
        str_at(p, &["metadata", "name"]).unwrap_or("?")
    )
}

/// Why a pod is not serving, if it is not.
fn not_serving(p: &Value) -> Option<String> {
    let phase = str_at(p, &["status", "phase"]).unwrap_or("Unknown");
    if phase != "Running" {
        return Some(format!("is {phase}"));
    }
    let ready = p
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| str_at(c, &["type"]) == Some("Ready") && str_at(c, &["status"]) == Some("True"));
    if !ready {
        return Some(
            "is running but not ready (its readiness probe, `faultctl status`, fails)".into(),
        );
    }
    None
}

/// The pod's `grpc` container port.
fn grpc_port(p: &Value) -> Option<u16> {
    p.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .filter_map(|c| c.get("ports")?.as_array())
        .flatten()
        .find(|port| str_at(port, &["name"]) == Some(GRPC_PORT_NAME))?
        .get("containerPort")?
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
}

fn absolute(p: &Option<PathBuf>) -> Option<PathBuf> {
    p.as_ref().map(|p| {
        if p.is_absolute() {
            p.clone()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.clone())
        }
    })
}

/// Converts kubectl's JSON into an inventory.
pub fn convert(input: &str, opts: &Options) -> Result<Converted, KubectlError> {
    let objs = objects(input)?;
    let (lk, lv) = opts
        .pod_label
        .clone()
        .unwrap_or((DAEMONSET_LABEL.0.into(), DAEMONSET_LABEL.1.into()));
    let nodes: BTreeMap<&str, &Value> = objs
        .iter()
        .filter(|o| str_at(o, &["kind"]) == Some("Node"))
        .filter_map(|n| Some((str_at(n, &["metadata", "name"])?, n)))
        .collect();
    let all_pods: Vec<&Value> = objs
        .iter()
        .filter(|o| str_at(o, &["kind"]) == Some("Pod"))
        .collect();
    let pods: Vec<&Value> = all_pods
        .iter()
        .copied()
        .filter(|p| str_at(p, &["metadata", "labels", &lk]) == Some(lv.as_str()))
        .collect();
    if pods.is_empty() {
        return Err(KubectlError::NoAgents(if all_pods.is_empty() {
            "the input holds no pods; pipe `kubectl get pods -n faultline -l app.kubernetes.io/name=faultd -o json` into it".into()
        } else {
            format!(
                "none of the {} pods in the input is labelled {lk}={lv} (the DaemonSet's pods are); select them with `kubectl get pods -l {lk}={lv} -o json`",
                all_pods.len()
            )
        }));
    }
    let mut warnings = Vec::new();
    let mut agents: BTreeMap<String, AgentOut> = BTreeMap::new();
    let mut namespaces: Vec<String> = Vec::new();
    let mut unlabelled = Vec::new();
    for p in pods {
        let pod = pod_name(p);
        if let Some(why) = not_serving(p) {
            warnings.push(format!("left out pod {pod}: it {why}"));
            continue;
        }
        let Some(node) = str_at(p, &["spec", "nodeName"]) else {
            warnings.push(format!("left out pod {pod}: it is on no node"));
            continue;
        };
        let ip = str_at(p, &["status", "hostIP"])
            .or_else(|| str_at(p, &["status", "podIP"]))
            .ok_or_else(|| KubectlError::Pod {
                pod: pod.clone(),
                reason: "it has neither status.hostIP nor status.podIP".into(),
            })?;
        let ip: std::net::IpAddr = ip.parse().map_err(|_| KubectlError::Pod {
            pod: pod.clone(),
            reason: format!("status.hostIP {ip:?} is not an IP address"),
        })?;
        let port = grpc_port(p).or(opts.port).ok_or_else(|| KubectlError::Pod {
            pod: pod.clone(),
            reason: format!(
                "no container port is named {GRPC_PORT_NAME:?} (the DaemonSet names faultd's mutual-TLS listener so); give --port"
            ),
        })?;
        let address = match ip {
            std::net::IpAddr::V4(a) => format!("https://{a}:{port}"),
            std::net::IpAddr::V6(a) => format!("https://[{a}]:{port}"),
        };
        let labels: BTreeMap<String, String> = match nodes.get(node) {
            Some(n) => n
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            None => {
                unlabelled.push(node.to_string());
                BTreeMap::new()
            }
        };
        if let Some(ns) = str_at(p, &["metadata", "namespace"])
            && !namespaces.iter().any(|n| n == ns)
        {
            namespaces.push(ns.to_string());
        }
        if let Some(prev) = agents.get(node) {
            warnings.push(format!(
                "node {node} runs two ready faultd pods (a rollout?); kept the one at {}, left out pod {pod}",
                prev.address
            ));
            continue;
        }
        agents.insert(
            node.to_string(),
            AgentOut {
                name: node.to_string(),
                address,
                labels,
            },
        );
    }
    if agents.is_empty() {
        return Err(KubectlError::NoAgents(format!(
            "no faultd pod is running and ready: {}",
            warnings.join("; ")
        )));
    }
    if !unlabelled.is_empty() {
        warnings.push(format!(
            "no Node object for {} in the input, so no selector labels for them: pipe `kubectl get nodes -o json` in too",
            unlabelled.join(", ")
        ));
    }
    let server_name = opts
        .server_name
        .clone()
        .or_else(|| match namespaces.as_slice() {
            [ns] => Some(format!("faultd.{ns}.svc")),
            _ => None,
        });
    if opts.ca.is_none() || opts.cert.is_none() || opts.key.is_none() {
        warnings.push(
            "no --ca, --cert and --key given: add ca, cert and key under [defaults] before using the inventory (the agents speak mutual TLS only)".into(),
        );
    }
    let file = FileOut {
        defaults: Defaults {
            ca: absolute(&opts.ca),
            cert: absolute(&opts.cert),
            key: absolute(&opts.key),
            server_name,
        },
        agents: agents.into_values().collect(),
    };
    let toml = format!(
        "# faultline inventory: {} agents of faultd's DaemonSet (faultctl inventory from-kubectl).\n{}",
        file.agents.len(),
        toml::to_string(&file).map_err(|e| KubectlError::Json(e.to_string()))?
    );
    let json =
        serde_json::to_string_pretty(&file).map_err(|e| KubectlError::Json(e.to_string()))?;
    Ok(Converted {
        toml,
        json,
        agents: file.agents.len(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Inventory, Selector};
    use std::path::Path;

    const PODS: &str = include_str!("../testdata/kubectl-get-pods.json");
    const NODES: &str = include_str!("../testdata/kubectl-get-nodes.json");

    fn opts() -> Options {
        Options {
            ca: Some("/etc/faultline/ca.pem".into()),
            cert: Some("/etc/faultline/gameday.pem".into()),
            key: Some("/etc/faultline/gameday.key".into()),
            ..Options::default()
        }
    }

    #[test]
    fn pods_and_nodes_become_an_inventory_faultctl_reads() {
        let input = format!("{PODS}\n{NODES}");
        let c = convert(&input, &opts()).unwrap();
        assert_eq!(c.agents, 3);
        let inv = Inventory::parse(&c.toml, false, Path::new("/")).unwrap();
        let names: Vec<&str> = inv.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["worker-a1", "worker-a2", "worker-b1"]);
        let a1 = &inv.nodes[0];
        assert_eq!(a1.address, "https://10.0.1.11:7443");
        assert_eq!(
            a1.tls.ca.as_deref(),
            Some(Path::new("/etc/faultline/ca.pem"))
        );
        assert_eq!(a1.tls.server_name.as_deref(), Some("faultd.faultline.svc"));
        assert_eq!(
            a1.labels
                .get("topology.kubernetes.io/zone")
                .map(String::as_str),
            Some("eu-west-1a")
        );
        // Node labels select agents.
        let sel = |s: &str| -> Vec<String> {
            inv.select(&Selector::parse(s).unwrap())
                .unwrap()
                .into_iter()
                .map(|n| n.name)
                .collect()
        };
        assert_eq!(
            sel("topology.kubernetes.io/zone=eu-west-1a"),
            ["worker-a1", "worker-a2"]
        );
        assert_eq!(sel("pool=db"), ["worker-b1"]);
        assert_eq!(sel("name=worker-a2"), ["worker-a2"]);
        // The JSON form carries the same agents.
        let j: Value = serde_json::from_str(&c.json).unwrap();
        assert_eq!(j["agents"].as_array().unwrap().len(), 3);
        // The pending pod, the pod of another app, and the not-ready pod are named.
        assert_eq!(
            c.warnings,
            [
                "left out pod faultline/faultd-7xk2p: it is Pending",
                "left out pod faultline/faultd-q9z4c: it is running but not ready (its readiness probe, `faultctl status`, fails)",
            ]
        );
    }

    #[test]
    fn without_nodes_it_warns_and_without_tls_it_says_what_to_add() {
        let c = convert(PODS, &Options::default()).unwrap();
        assert_eq!(c.agents, 3);
        assert!(
            c.warnings.iter().any(|w| w
                == "no Node object for worker-a1, worker-a2, worker-b1 in the input, so no selector labels for them: pipe `kubectl get nodes -o json` in too"),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("no --ca, --cert and --key given"))
        );
        let inv = Inventory::parse(&c.toml, false, Path::new("/")).unwrap();
        assert!(inv.nodes.iter().all(|n| n.labels.is_empty()));
    }

    #[test]
    fn bad_input_says_what_to_run() {
        assert_eq!(
            convert("", &Options::default()).unwrap_err().to_string(),
            "the input holds no pods; pipe `kubectl get pods -n faultline -l app.kubernetes.io/name=faultd -o json` into it"
        );
        assert!(
            convert("{", &Options::default())
                .unwrap_err()
                .to_string()
                .starts_with("invalid kubectl JSON on stdin: ")
        );
        assert_eq!(
            convert("[1]", &Options::default()).unwrap_err().to_string(),
            "invalid kubectl JSON on stdin: a document is neither a list (with items) nor a Kubernetes object (with kind)"
        );
        assert_eq!(
            convert(NODES, &Options::default()).unwrap_err().to_string(),
            "the input holds no pods; pipe `kubectl get pods -n faultline -l app.kubernetes.io/name=faultd -o json` into it"
        );
        let other = Options {
            pod_label: Some(("app".into(), "nginx".into())),
            ..Options::default()
        };
        assert_eq!(
            convert(PODS, &other).unwrap_err().to_string(),
            "pod default/nginx-5d9c7: no container port is named \"grpc\" (the DaemonSet names faultd's mutual-TLS listener so); give --port"
        );
        let none = Options {
            pod_label: Some(("app".into(), "nope".into())),
            ..Options::default()
        };
        assert_eq!(
            convert(PODS, &none).unwrap_err().to_string(),
            "none of the 6 pods in the input is labelled app=nope (the DaemonSet's pods are); select them with `kubectl get pods -l app=nope -o json`"
        );
    }

    #[test]
    fn ports_ipv6_and_rollouts() {
        let pod = |name: &str, node: &str, ip: &str, ports: &str| {
            format!(
                r#"{{"kind":"Pod","metadata":{{"name":"{name}","namespace":"chaos","labels":{{"app.kubernetes.io/name":"faultd"}}}},
                "spec":{{"nodeName":"{node}","containers":[{{"name":"faultd","ports":[{ports}]}}]}},
                "status":{{"phase":"Running","hostIP":"{ip}","conditions":[{{"type":"Ready","status":"True"}}]}}}}"#
            )
        };
        let input = format!(
            "{}\n{}",
            pod(
                "f-1",
                "n1",
                "fd00::11",
                r#"{"name":"grpc","containerPort":9443}"#
            ),
            pod(
                "f-2",
                "n1",
                "fd00::11",
                r#"{"name":"grpc","containerPort":9443}"#
            )
        );
        let c = convert(&input, &Options::default()).unwrap();
        assert!(
            c.toml.contains("address = \"https://[fd00::11]:9443\""),
            "{}",
            c.toml
        );
        assert!(
            c.toml.contains("server_name = \"faultd.chaos.svc\""),
            "{}",
            c.toml
        );
        assert_eq!(c.agents, 1);
        assert!(c.warnings[0].starts_with("node n1 runs two ready faultd pods"));
        let noport = pod("f-3", "n3", "10.0.0.3", "");
        assert_eq!(
            convert(&noport, &Options::default())
                .unwrap_err()
                .to_string(),
            "pod chaos/f-3: no container port is named \"grpc\" (the DaemonSet names faultd's mutual-TLS listener so); give --port"
        );
        let o = Options {
            port: Some(7000),
            server_name: Some("agents.example".into()),
            ..Options::default()
        };
        let c = convert(&noport, &o).unwrap();
        assert!(c.toml.contains("https://10.0.0.3:7000"));
        assert!(c.toml.contains("server_name = \"agents.example\""));
    }
}
