//! The Kubernetes path end to end, without a cluster: `kubectl get pods -o json` of the
//! DaemonSet (as the fixture in controller/testdata, pointed at 127.0.0.1) through
//! `faultctl inventory from-kubectl`, then `faultctl --inventory` over mutual TLS to a
//! real faultd whose certificate carries only the DaemonSet's shared name
//! (`faultd.faultline.svc`), not the address it is dialled at.

use std::io::Write;
use std::process::{Command, Stdio};

use faultline_tests::agent::{Agent, AgentOptions};
use faultline_tests::pki::{Ca, free_port, tls_config};
use faultline_tests::require;

/// One running, ready DaemonSet pod on node `node`, its grpc port `port`, on 127.0.0.1.
fn pod(node: &str, port: u16) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"faultd-{node}","namespace":"faultline",
        "labels":{{"app.kubernetes.io/name":"faultd"}}}},
        "spec":{{"nodeName":"{node}","hostNetwork":true,"containers":[{{"name":"faultd",
        "ports":[{{"name":"grpc","containerPort":{port}}},{{"name":"metrics","containerPort":9464}}]}}]}},
        "status":{{"phase":"Running","hostIP":"127.0.0.1","podIP":"127.0.0.1",
        "conditions":[{{"type":"Ready","status":"True"}}]}}}}"#
    )
}

fn node(name: &str, zone: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}","labels":{{"topology.kubernetes.io/zone":"{zone}"}}}}}}"#
    )
}

fn faultctl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(faultline_tests::bin("faultctl"))
        .args(args)
        .env_remove("FAULTLINE_AGENT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run faultctl");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kubectl_json_becomes_an_inventory_that_reaches_an_agent_with_the_shared_certificate() {
    require!("root");
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new(pki.path(), "fleet-ca");
    let (cert, key) = ca.leaf_dns_only(pki.path(), "faultd.faultline.svc");
    let (ccert, ckey) = ca.leaf(pki.path(), "gameday", false);
    let port = free_port();
    let agent = Agent::start_with(AgentOptions {
        config: Some(tls_config(
            port,
            &cert,
            &key,
            &ca.pem,
            "operator = [\"gameday\"]\n",
        )),
        ..Default::default()
    });
    // Pods first, then nodes, as two documents, the way the docs pipe them.
    let input = format!(
        "{{\"kind\":\"List\",\"items\":[{}]}}\n{{\"kind\":\"List\",\"items\":[{}]}}",
        pod("kind-worker", port),
        node("kind-worker", "zone-a")
    );
    let (ca_s, cc_s, ck_s) = (
        ca.pem.to_str().unwrap(),
        ccert.to_str().unwrap(),
        ckey.to_str().unwrap(),
    );
    let (ok, toml, err) = faultctl(
        &[
            "--ca",
            ca_s,
            "--cert",
            cc_s,
            "--key",
            ck_s,
            "inventory",
            "from-kubectl",
        ],
        Some(&input),
    );
    assert!(ok, "from-kubectl failed: {err}");
    assert!(
        toml.contains("server_name = \"faultd.faultline.svc\""),
        "{toml}"
    );
    assert!(
        toml.contains(&format!("address = \"https://127.0.0.1:{port}\"")),
        "{toml}"
    );
    let inv = pki.path().join("fleet.toml");
    std::fs::write(&inv, &toml).unwrap();
    let inv_s = inv.to_str().unwrap();

    // Selected by its node's label, reached at 127.0.0.1, checked for the shared name.
    let (ok, out, err) = faultctl(
        &[
            "--inventory",
            inv_s,
            "--select",
            "topology.kubernetes.io/zone=zone-a",
            "-o",
            "json",
            "status",
        ],
        None,
    );
    assert!(
        ok,
        "status over the inventory failed: {err}\n{out}\nagent log:\n{}",
        agent.log_text()
    );
    assert!(out.contains("kind-worker"), "{out}");

    // The same without server_name: the certificate does not name 127.0.0.1.
    let without = toml.replace("server_name = \"faultd.faultline.svc\"\n", "");
    assert_ne!(without, toml);
    std::fs::write(&inv, &without).unwrap();
    let (ok, out, err) = faultctl(&["--inventory", inv_s, "status"], None);
    assert!(!ok, "a certificate without the address was accepted: {out}");
    assert!(
        out.contains("certificate not valid for name \"127.0.0.1\""),
        "{err}\n{out}"
    );
}
