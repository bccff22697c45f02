//! End-to-end network faults: the real `faultd` driven by the real `faultctl`, checked
//! with iproute2 inside throwaway namespaces (never the root namespace's links).

mod net_common;

use std::time::Duration;

use faultline_tests::agent::{Agent, AgentOptions, eventually, fault_id, stderr};
use faultline_tests::require;
use net_common::{Pair, kernel};

/// The root qdisc's (kind, handle) as `tc -j qdisc show` reports it.
fn root(p: &Pair, dev: &str) -> (String, String) {
    let j = p.ns.qdiscs_json(dev);
    j.as_array()
        .unwrap()
        .iter()
        .find(|q| q["root"] == true)
        .map(|q| {
            (
                q["kind"].as_str().unwrap().to_string(),
                q["handle"].as_str().unwrap_or("").to_string(),
            )
        })
        .unwrap_or(("none".into(), String::new()))
}

#[test]
fn bad_network_input_is_refused_and_changes_nothing() {
    require!("root");
    let agent = Agent::start();
    let p = Pair::new();
    let before = p.ns.tc(&["qdisc", "show", "dev", &p.a]);
    let ns = p.ns.name.clone();
    let base = ["inject", "net", "--netns", ns.as_str(), "--for", "30s"];
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--iface", "nosuchif0", "--delay", "10ms"], 2, "nosuchif0"),
        (&["--iface", &p.a, "--loss", "150%"], 2, "--loss"),
        (&["--iface", &p.a, "--delay", "-5ms"], 2, "negative"),
        (&["--iface", &p.a, "--jitter", "5ms"], 2, "jitter"),
        (
            &["--iface", &p.a, "--delay", "10ms", "--dst", "10.0.0.300/24"],
            2,
            "dst",
        ),
        (
            &[
                "--iface",
                &p.a,
                "--delay",
                "10ms",
                "--protocol",
                "tcp",
                "--dport",
                "90-80",
            ],
            2,
            "dport",
        ),
        (&["--iface", &p.a, "--rate", "0mbit"], 2, "rate"),
        (
            &[
                "--iface",
                &p.a,
                "--delay",
                "10ms",
                "--direction",
                "sideways",
            ],
            2,
            "direction",
        ),
        (&["--iface", &p.a], 2, "netem"),
        (
            &["--iface", &p.a, "--delay", "60ms"],
            3,
            "network.max_delay",
        ),
        (
            &["--iface", &p.a, "--loss", "2%"],
            3,
            "network.max_loss_percent",
        ),
        (
            &["--iface", &p.a, "--rate", "100kbit"],
            3,
            "network.min_rate",
        ),
    ];
    for (extra, code, needle) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        let out = agent.ctl(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "faultctl {args:?}: {err}");
        assert!(
            err.contains(needle),
            "faultctl {args:?}: error should mention {needle:?}: {err}"
        );
        assert_eq!(
            p.ns.tc(&["qdisc", "show", "dev", &p.a]),
            before,
            "faultctl {args:?} changed the qdiscs"
        );
    }
    let listed = agent.ctl_json(&["list", "--all"]);
    assert!(
        !listed.to_string().contains("\"network\""),
        "nothing recorded: {listed}"
    );
}

#[test]
fn foreign_root_qdisc_is_refused_and_untouched() {
    require!("root", "tbf");
    let agent = Agent::start();
    let p = Pair::new();
    p.ns.tc(&[
        "qdisc", "add", "dev", &p.a, "root", "handle", "7:", "tbf", "rate", "1mbit", "burst",
        "32kbit", "latency", "400ms",
    ]);
    let before = p.ns.tc(&["qdisc", "show", "dev", &p.a]);
    let out = agent.ctl(&[
        "inject", "net", "--netns", &p.ns.name, "--iface", &p.a, "--delay", "10ms", "--for", "30s",
    ]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "host cannot do it: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("tbf"),
        "names the operator's qdisc: {}",
        stderr(&out)
    );
    assert_eq!(p.ns.tc(&["qdisc", "show", "dev", &p.a]), before);
}

#[test]
fn kernel_without_netem_is_failed_precondition() {
    require!("root");
    if kernel().netem.is_ok() {
        faultline_tests::skip(
            "net_agent::kernel_without_netem_is_failed_precondition",
            "a kernel without netem",
            "this kernel has sch_netem",
        );
        return;
    }
    let agent = Agent::start();
    let p = Pair::new();
    let before = p.ns.tc(&["qdisc", "show", "dev", &p.a]);
    let out = agent.ctl(&[
        "inject", "net", "--netns", &p.ns.name, "--iface", &p.a, "--delay", "10ms", "--for", "30s",
    ]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sch_netem"),
        "names the missing module: {}",
        stderr(&out)
    );
    assert_eq!(p.ns.tc(&["qdisc", "show", "dev", &p.a]), before);
    let status = agent.ctl_json(&["status"]);
    let net = status["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "network")
        .unwrap()
        .clone();
    assert_eq!(net["supported"], false, "{net}");
    assert!(
        net["detail"].as_str().unwrap().contains("sch_netem"),
        "{net}"
    );
}

#[test]
fn netem_applied_read_back_and_reverted() {
    require!("root", "netem");
    let agent = Agent::start();
    let p = Pair::new();
    assert_eq!(root(&p, &p.a).0, "noqueue");
    let out = agent.ctl_json(&[
        "inject",
        "net",
        "--netns",
        &p.ns.name,
        "--iface",
        &p.a,
        "--delay",
        "30ms",
        "--jitter",
        "5ms",
        "--distribution",
        "normal",
        "--loss",
        "0.5%",
        "--for",
        "60s",
    ]);
    let id = fault_id(&out);
    let (kind, handle) = root(&p, &p.a);
    assert_eq!(
        (kind.as_str(), handle.as_str()),
        ("netem", "fa17:"),
        "faultline's tagged netem root"
    );
    let q = p.ns.qdiscs_json(&p.a);
    let opts = &q
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["root"] == true)
        .unwrap()["options"];
    assert_eq!(opts["delay"]["delay"].as_f64(), Some(0.03), "{opts}");
    assert_eq!(opts["delay"]["jitter"].as_f64(), Some(0.005), "{opts}");
    assert_eq!(opts["loss-random"]["loss"].as_f64(), Some(0.005), "{opts}");
    let status = agent.ctl_json(&["status"]);
    let net = status["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "network")
        .unwrap()
        .clone();
    assert_eq!(net["supported"], true, "{net}");

    let out = agent.ctl(&["revert", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(root(&p, &p.a).0, "noqueue", "kernel default restored");
}

#[test]
fn one_network_fault_per_interface_and_direction() {
    require!("root", "netem");
    let agent = Agent::start_staging();
    let p = Pair::new();
    let first = fault_id(&agent.ctl_json(&[
        "inject", "net", "--netns", &p.ns.name, "--iface", &p.a, "--delay", "10ms", "--for", "60s",
    ]));
    let out = agent.ctl(&[
        "inject", "net", "--netns", &p.ns.name, "--iface", &p.a, "--loss", "1%", "--for", "60s",
    ]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&first),
        "names the active fault: {}",
        stderr(&out)
    );
    // The other end and the other direction are free.
    let second = agent.ctl_json(&[
        "inject", "net", "--netns", &p.ns.name, "--iface", &p.b, "--delay", "10ms", "--for", "60s",
    ]);
    fault_id(&second);
    let out = agent.ctl(&["abort"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(root(&p, &p.a).0, "noqueue");
    assert_eq!(root(&p, &p.b).0, "noqueue");
}

#[test]
fn ingress_fault_expires_and_removes_the_ifb() {
    require!("root", "netem", "ifb");
    let agent = Agent::start();
    let p = Pair::new();
    let out = agent.ctl_json(&[
        "inject",
        "net",
        "--netns",
        &p.ns.name,
        "--iface",
        &p.a,
        "--direction",
        "ingress",
        "--delay",
        "20ms",
        "--for",
        "1500ms",
    ]);
    let id = fault_id(&out);
    assert!(
        p.ns.links().contains("flifb"),
        "an IFB device carries the fault: {}",
        p.ns.links()
    );
    assert!(p.ns.tc(&["qdisc", "show", "dev", &p.a]).contains("ingress"));
    assert!(
        eventually(
            Duration::from_secs(10),
            || agent.ctl_json(&["get", &id])["state"] == "expired"
        ),
        "expires"
    );
    assert!(
        !p.ns.links().contains("flifb"),
        "IFB removed: {}",
        p.ns.links()
    );
    assert!(
        !p.ns.tc(&["qdisc", "show", "dev", &p.a]).contains("ingress"),
        "ingress qdisc removed"
    );
}

#[test]
fn crash_recovery_removes_the_netem() {
    require!("root", "netem");
    let mut agent = Agent::start();
    let p = Pair::new();
    agent.ctl_json(&[
        "inject", "net", "--netns", &p.ns.name, "--iface", &p.a, "--delay", "10ms", "--for", "5m",
    ]);
    assert_eq!(root(&p, &p.a).0, "netem");
    agent.crash();
    assert_eq!(root(&p, &p.a).0, "netem", "a crash leaves the fault");
    let _again = Agent::start_with(AgentOptions {
        state_dir: Some(agent.state_dir()),
        ..Default::default()
    });
    assert_eq!(
        root(&p, &p.a).0,
        "noqueue",
        "recovered before the agent listens"
    );
}

#[test]
fn pid_selects_the_process_network_namespace() {
    require!("root", "netem");
    let agent = Agent::start();
    let p = Pair::new();
    let mut child = faultline_tests::agent::KillOnDrop::new(
        std::process::Command::new("ip")
            .args(["netns", "exec", &p.ns.name])
            .arg(faultline_tests::agent::sleep_binary())
            .arg("600")
            .spawn()
            .unwrap(),
    );
    let pid = child.id();
    // Wait until the child has entered the namespace.
    let ns_ino = std::fs::metadata(format!("/run/netns/{}", p.ns.name)).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.ino()
    });
    assert!(eventually(Duration::from_secs(5), || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .map(|m| m.ino())
            .ok()
            == ns_ino.as_ref().ok().copied()
    }));
    let out = agent.ctl_json(&[
        "inject",
        "net",
        "--pid",
        &pid.to_string(),
        "--iface",
        &p.a,
        "--delay",
        "10ms",
        "--for",
        "60s",
    ]);
    let id = fault_id(&out);
    assert_eq!(root(&p, &p.a).0, "netem");
    agent.ctl(&["revert", &id]);
    assert_eq!(root(&p, &p.a).0, "noqueue");
    let _ = child.kill();
    let _ = child.wait();
}

/// A process in a namespace of its own and in a cgroup named as Docker's cgroupfs driver
/// names a container's (`/docker/<64 hex>` in cgroup2): what faultd sees of a container
/// in `/proc`, made where podman does not run (the VM guest has netem, not podman; the
/// host has podman, not netem: `containers::network_faults_enter_the_containers_namespace`).
/// The process, the group and the namespace go on drop.
struct FakeContainer {
    id: String,
    group: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl FakeContainer {
    fn start(p: &Pair) -> FakeContainer {
        let v2 = faultline_tests::caps::v2_mount().expect("cgroup2 mounted");
        let id: String = (0..4)
            .map(|_| format!("{:016x}", rand_u64()))
            .collect::<String>();
        let group = v2.join("docker").join(&id);
        std::fs::create_dir_all(&group).unwrap();
        let child = std::process::Command::new(net_common::program("ip"))
            .args(["netns", "exec", &p.ns.name])
            .arg(faultline_tests::agent::sleep_binary())
            .arg("300")
            .spawn()
            .unwrap();
        let c = FakeContainer {
            id,
            group,
            child: Some(child),
        };
        let pid = c.pid();
        std::fs::write(c.group.join("cgroup.procs"), pid.to_string()).unwrap();
        // `ip netns exec` execs in place: wait until the pid is in the namespace.
        let want = std::fs::metadata(format!("/run/netns/{}", p.ns.name)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert!(eventually(Duration::from_secs(5), || {
            std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == want.ino())
        }));
        c
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = eventually(Duration::from_secs(5), || {
            std::fs::remove_dir(&self.group).is_ok() || !self.group.exists()
        });
        if self.group.exists() {
            faultline_tests::leftover(format!("cgroup {}", self.group.display()));
        }
        // The shared parent goes when no other test uses it.
        let _ = std::fs::remove_dir(self.group.parent().unwrap());
    }
}

/// 64 random bits from the kernel.
fn rand_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    u64::from_le_bytes(b)
}

#[test]
fn netem_by_container_id_lands_in_the_containers_namespace() {
    require!("root", "netem", "cgroup2");
    let agent = Agent::start();
    let p = Pair::new();
    let c = FakeContainer::start(&p);
    let prefix = &c.id[..12];
    let out = agent.ctl_json(&[
        "inject",
        "net",
        "--container",
        prefix,
        "--iface",
        &p.a,
        "--delay",
        "30ms",
        "--for",
        "60s",
    ]);
    let id = fault_id(&out);
    assert_eq!(out["container"]["id"], c.id.as_str(), "{out}");
    assert_eq!(out["container"]["runtime"], "docker", "{out}");
    assert_eq!(out["container"]["netns_pid"], c.pid(), "{out}");
    // iproute2 reads faultline's netem in the container's namespace.
    let (kind, handle) = root(&p, &p.a);
    assert_eq!((kind.as_str(), handle.as_str()), ("netem", "fa17:"));
    let show = p.ns.tc(&["qdisc", "show", "dev", &p.a]);
    assert!(show.contains("delay 30ms"), "{show}");
    // The journal holds the namespace by path and identity, not the container.
    let journal =
        std::fs::read_to_string(agent.state_dir().join(format!("journal/{id}.json"))).unwrap();
    assert!(
        journal.contains(&format!("/proc/{}/ns/net", c.pid())),
        "{journal}"
    );
    let o = agent.ctl(&["revert", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(root(&p, &p.a).0, "noqueue");
}
