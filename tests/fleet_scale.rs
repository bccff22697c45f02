//! faultctl at fleet scale, against the light agent simulator (`faultline_tests::sim`:
//! faultd's engine per agent, no kernel): the real `faultctl` binary on 1,000 agents
//! over Unix sockets and on a few hundred over mutual TLS; an unreachable tenth, a node
//! that hangs, bad inventories and a selector that matches nothing; abort reaching every
//! node; a scenario holding a lease on every node without a lapse. No privileges needed.
//! Nothing here is timed: the figures are bench-fleet's (docs/faultctl.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use faultline_agent::limits::Limits;
use faultline_tests::bin;
use faultline_tests::pki::Ca;
use faultline_tests::sim::{Sim, SimTls};

/// A simulated fleet with an inventory; `extra` is appended to the inventory.
struct SimFleet {
    // Dropped first: the servers stop before the runtime goes.
    sim: Sim,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    inventory: PathBuf,
}

impl SimFleet {
    fn start(n: usize, extra: &str) -> SimFleet {
        SimFleet::start_with(n, extra, false)
    }

    fn start_with(n: usize, extra: &str, tls: bool) -> SimFleet {
        // The simulated agents' sockets and their connections live in this process.
        faultline_controller::fanout::raise_open_files();
        let dir = tempfile::Builder::new()
            .prefix("faultline-sim-")
            .tempdir()
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (files, defaults) = if tls {
            let ca = Ca::new(dir.path(), "sim-ca");
            let (cert, key) = ca.leaf(dir.path(), "sim-agent", false);
            let (cc, ck) = ca.leaf(dir.path(), "faultctl", false);
            let d = format!(
                "ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                ca.pem.display(),
                cc.display(),
                ck.display()
            );
            (
                Some(SimTls {
                    cert,
                    key,
                    client_ca: ca.pem.clone(),
                }),
                d,
            )
        } else {
            (None, String::new())
        };
        let sim = rt
            .block_on(Sim::start(
                n,
                dir.path(),
                &Limits::staging(),
                files.as_ref(),
            ))
            .unwrap();
        let inventory = dir.path().join("fleet.toml");
        std::fs::write(&inventory, sim.inventory(&defaults) + extra).unwrap();
        SimFleet {
            sim,
            rt,
            dir,
            inventory,
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        ctl_with(&self.inventory, args)
    }

    fn json(&self, args: &[&str]) -> (Output, Vec<serde_json::Value>) {
        let mut a = vec!["-o", "json"];
        a.extend_from_slice(args);
        let out = self.ctl(&a);
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (out, rows)
    }
}

fn ctl_with(inventory: &Path, args: &[&str]) -> Output {
    Command::new(bin("faultctl"))
        .arg("--inventory")
        .arg(inventory)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run faultctl")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Inventory entries for `n` agents whose sockets do not exist.
fn missing(dir: &Path, n: usize) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "[[agents]]\nname = \"gone-{i:03}\"\naddress = \"unix://{}/gone-{i}.sock\"\nlabels = {{ role = \"sim\" }}\n",
                dir.display()
            )
        })
        .collect()
}

#[test]
fn status_of_1000_agents_is_summarised_by_outcome_and_json_has_every_row() {
    let f = SimFleet::start(1000, "");
    let (out, rows) = f.json(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows.len(), 1000);
    assert!(rows.iter().all(|r| r["ok"] == true), "{}", text(&out));
    assert_eq!(rows[999]["node"], "node-01000");
    assert_eq!(rows[999]["result"]["hostname"], "node-01000");

    let out = f.ctl(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.starts_with("RESULT"), "{t}");
    assert!(
        t.contains("1,000 of 1,000 nodes ok (one row per outcome; every node's row: -o json)"),
        "{t}"
    );
    // One row per outcome, not per node.
    assert!(t.lines().count() < 30, "{t}");
}

#[test]
fn an_unreachable_tenth_fails_per_node_and_the_rest_are_injected_then_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let f = SimFleet::start(900, &missing(dir.path(), 100));
    let (out, rows) = f.json(&[
        "--retries",
        "0",
        "inject",
        "pause",
        "--pid",
        "4242",
        "--for",
        "5m",
    ]);
    // Every failure is "unreachable": the fleet's exit code says so.
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_eq!(rows.len(), 1000);
    let failed: Vec<_> = rows.iter().filter(|r| r["ok"] != true).collect();
    assert_eq!(failed.len(), 100, "{}", text(&out));
    for r in &failed {
        let name = r["node"].as_str().unwrap();
        let e = r["error"].as_str().unwrap();
        assert!(name.starts_with("gone-"), "{r}");
        assert!(
            e.contains(r["address"].as_str().unwrap()) && e.contains("No such file"),
            "{r}"
        );
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("100 of 1000 nodes failed: gone-001") && err.contains("and 90 more"),
        "{err}"
    );
    assert_eq!(
        f.sim.active_faults(),
        900,
        "the reachable nodes are injected"
    );

    // The table: the 100 failures are one outcome, the 900 successes another.
    let out = f.ctl(&["--retries", "0", "list"]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("error   100"), "{t}");
    assert!(t.contains("900 of 1,000 nodes ok, 100 failed"), "{t}");

    // Abort reaches every reachable node: nothing is left.
    let (out, rows) = f.json(&["--retries", "0", "abort", "--reason", "sim test"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_eq!(rows.iter().filter(|r| r["ok"] == true).count(), 900);
    assert_eq!(f.sim.active_faults(), 0, "{}", text(&out));
}

#[test]
fn a_node_that_never_answers_times_out_alone() {
    let f = SimFleet::start(20, "");
    // Accepts connections (the kernel's backlog) but never speaks.
    let hung = f.dir.path().join("hung.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&hung).unwrap();
    let inv = f.dir.path().join("with-hung.toml");
    std::fs::write(
        &inv,
        std::fs::read_to_string(&f.inventory).unwrap()
            + &format!(
                "[[agents]]\nname = \"hung\"\naddress = \"unix://{}\"\n",
                hung.display()
            ),
    )
    .unwrap();
    let out = ctl_with(&inv, &["--node-timeout", "1s", "-o", "json", "status"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.iter().filter(|r| r["ok"] == true).count(), 20);
    let h = rows.iter().find(|r| r["node"] == "hung").unwrap();
    let e = h["error"].as_str().unwrap();
    assert!(
        e.contains("no answer within 1s") && e.contains("hung.sock"),
        "{e}"
    );
}

#[test]
fn bad_fleet_input_is_refused_before_any_agent_is_touched() {
    let f = SimFleet::start(50, "");
    let inv = std::fs::read_to_string(&f.inventory).unwrap();
    let first_addr = f.sim.addresses[0].clone();
    let inject = ["inject", "pause", "--pid", "4242", "--for", "1m"];
    for (what, extra, want) in [
        (
            "a duplicate name",
            "[[agents]]\nname = \"node-00007\"\naddress = \"unix:///nowhere.sock\"\n".to_string(),
            "agent name \"node-00007\" is given twice (agents #7 and #51)".to_string(),
        ),
        (
            "a duplicate address",
            format!("[[agents]]\nname = \"again\"\naddress = \"{first_addr}\"\n"),
            format!(
                "address {first_addr} is given twice (agents \"node-00001\" #1 and \"again\" #51)"
            ),
        ),
    ] {
        let p = f.dir.path().join("bad.toml");
        std::fs::write(&p, format!("{inv}{extra}")).unwrap();
        let out = ctl_with(&p, &inject);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&want), "{what}: {err}");
        assert!(out.stdout.is_empty(), "{what}: {}", text(&out));
    }
    let mut args = vec!["--select", "role=nothing"];
    args.extend_from_slice(&inject);
    let out = f.ctl(&args);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the selector \"role=nothing\" matches no agent of the inventory (50 agents)"),
        "{err}"
    );
    for (flag, value, want) in [
        ("--concurrency", "0", "--concurrency 0 is outside 1..=4096"),
        ("--node-timeout", "soon", "--node-timeout \"soon\""),
        ("--retries", "99", "--retries 99 is more than 10"),
    ] {
        let out = f.ctl(&[flag, value, "status"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(want),
            "{}",
            text(&out)
        );
    }
    assert_eq!(f.sim.active_faults(), 0);
}

#[test]
fn status_over_mutual_tls_reaches_every_agent() {
    let f = SimFleet::start_with(200, "", true);
    let (out, rows) = f.json(&["--concurrency", "32", "status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows.len(), 200);
    assert!(rows.iter().all(|r| r["ok"] == true));
    assert!(
        rows[0]["address"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
}

/// A simulated agent's lease lapses like faultd's (so a count of 0 lapses means
/// something): a lease nobody renews ends its faults at its deadline.
#[test]
fn a_simulated_lease_that_is_not_renewed_lapses_and_reverts() {
    let f = SimFleet::start(1, "");
    let agent = &f.sim.addresses[0];
    let run = |args: &[&str]| {
        let out = Command::new(bin("faultctl"))
            .arg("--agent")
            .arg(agent)
            .args(args)
            .arg("-o")
            .arg("json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let lease = run(&["lease", "open", "--ttl", "1s"]);
    let id = lease["id"].as_str().expect("lease id").to_string();
    run(&[
        "inject", "pause", "--pid", "4242", "--for", "5m", "--lease", &id,
    ]);
    assert_eq!(f.sim.active_faults(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while f.sim.active_faults() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(f.sim.active_faults(), 0);
    assert_eq!(f.sim.lease_lapses(), 1);
}

/// A scenario on 300 nodes holds a lease on every one (TTL 3s, renewed every second)
/// through a 10 s step: no lease lapses, and every fault is ended at the close. Over Unix
/// sockets every renewal is made on a new connection.
#[test]
fn a_scenario_holds_300_leases_without_a_lapse() {
    holds_leases(300, false);
}

/// The same over mutual TLS, where the connection to each node is kept for the run.
#[test]
fn a_scenario_over_mutual_tls_holds_100_leases_without_a_lapse() {
    holds_leases(100, true);
}

fn holds_leases(n: usize, tls: bool) {
    let f = SimFleet::start_with(n, "", tls);
    let doc = f.dir.path().join("hold.yaml");
    std::fs::write(
        &doc,
        "name: sim-hold\ninventory: fleet.toml\nmax_duration: 2m\nlease_ttl: 3s\nbaseline: 0s\n\
         steps:\n  - name: pause everywhere\n    select: role=sim\n    inject:\n      pause: {pid: 4242}\n    duration: 10s\n",
    )
    .unwrap();
    let reports = f.dir.path().join("reports");
    let out = Command::new(bin("faultctl"))
        .arg("run")
        .arg("--report-dir")
        .arg(&reports)
        .arg(&doc)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(f.sim.lease_lapses(), 0, "{}", text(&out));
    assert_eq!(f.sim.active_faults(), 0, "{}", text(&out));
    let _ = &f.rt;
}
