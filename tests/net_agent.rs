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
        // Issue #15: a blackhole needs allow_blackhole (false in production); it takes no
        // netem parameter; --dns takes no port or protocol.
        (
            &["--iface", &p.a, "--blackhole"],
            3,
            "network.allow_blackhole",
        ),
        (
            &["--iface", &p.a, "--blackhole", "--direction", "both"],
            3,
            "network.allow_blackhole",
        ),
        (
            &["--iface", &p.a, "--blackhole", "--delay", "10ms"],
            2,
            "takes no --delay",
        ),
        (
            &["--iface", &p.a, "--dns", "--delay", "10ms", "--dport", "53"],
            2,
            "takes no --dport",
        ),
        (
            &[
                "--iface",
                &p.a,
                "--dns",
                "--delay",
                "10ms",
                "--protocol",
                "udp",
            ],
            2,
            "takes no --protocol",
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
    // Port 22 is protected by default: a whole-interface fault is faultline's prio root
    // with the netem on its fault band, and the exemption filters ahead of a match-all.
    assert_eq!(
        (kind.as_str(), handle.as_str()),
        ("prio", "fa17:"),
        "faultline's tagged prio root"
    );
    let q = p.ns.qdiscs_json(&p.a);
    let opts = &q
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["kind"] == "netem")
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
    assert_ingress_undone(&p, &p.a);
}

/// No IFB device is left in `p`'s namespace and `dev` has no ingress qdisc.
fn assert_ingress_undone(p: &Pair, dev: &str) {
    assert!(
        !p.ns.links().contains("flifb"),
        "IFB removed: {}",
        p.ns.links()
    );
    assert!(
        !p.ns.tc(&["qdisc", "show", "dev", dev]).contains("ingress"),
        "ingress qdisc removed"
    );
}

/// An interface renamed under a fault (`ip link set dev X name Y`) is the same device,
/// with the same index and faultline's qdiscs still on it: the revert removes them there
/// (the root, the ingress redirect and the IFB of a `both` fault) rather than calling
/// the interface gone and leaving netem on it.
#[test]
fn a_fault_on_an_interface_renamed_under_it_is_still_reverted() {
    require!("root", "netem", "ifb");
    let agent = Agent::start();
    let p = Pair::new();
    let id = fault_id(&agent.ctl_json(&[
        "inject",
        "net",
        "--netns",
        &p.ns.name,
        "--iface",
        &p.a,
        "--direction",
        "both",
        "--delay",
        "10ms",
        "--for",
        "60s",
    ]));
    assert_eq!(root(&p, &p.a).1, "fa17:");
    let renamed = format!("{}r", &p.a[..p.a.len().min(14)]);
    p.ns.ip(&["link", "set", "dev", &p.a, "down"]);
    p.ns.ip(&["link", "set", "dev", &p.a, "name", &renamed]);
    p.ns.ip(&["link", "set", "dev", &renamed, "up"]);
    assert_eq!(
        root(&p, &renamed).1,
        "fa17:",
        "the qdiscs follow the rename"
    );
    let out = agent.ctl(&["revert", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = agent.ctl_json(&["get", &id]);
    assert_eq!(got["state"], "reverted", "{got}");
    let why = got["end_reason"].as_str().unwrap();
    assert!(!why.contains("nothing left to undo"), "{why}");
    assert_eq!(root(&p, &renamed).0, "noqueue", "kernel default restored");
    assert_ingress_undone(&p, &renamed);
}

#[test]
fn crash_recovery_removes_the_netem() {
    require!("root", "netem");
    let mut agent = Agent::start();
    let p = Pair::new();
    agent.ctl_json(&[
        "inject", "net", "--netns", &p.ns.name, "--iface", &p.a, "--delay", "10ms", "--for", "5m",
    ]);
    assert_eq!(root(&p, &p.a).0, "prio");
    assert!(
        p.ns.tc(&["filter", "show", "dev", &p.a])
            .contains("flowid fa17:2"),
        "exemption filters in place"
    );
    agent.crash();
    assert_eq!(root(&p, &p.a).0, "prio", "a crash leaves the fault");
    let _again = Agent::start_with(AgentOptions {
        state_dir: Some(agent.state_dir()),
        ..Default::default()
    });
    assert_eq!(
        root(&p, &p.a).0,
        "noqueue",
        "recovered before the agent listens"
    );
    assert_eq!(
        p.ns.tc(&["filter", "show", "dev", &p.a]).trim(),
        "",
        "no exemption filter left behind"
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
    assert_eq!(root(&p, &p.a).0, "prio");
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

    /// Kills its process, as a runtime's stop does (the group stays until drop).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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
    assert_eq!((kind.as_str(), handle.as_str()), ("prio", "fa17:"));
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

#[test]
fn netem_by_container_id_ends_as_target_gone_when_the_container_stops() {
    require!("root", "netem", "cgroup2");
    let agent = Agent::start();
    let p = Pair::new();
    let mut c = FakeContainer::start(&p);
    let prefix = c.id[..12].to_string();
    let out = agent.ctl_json(&[
        "inject",
        "net",
        "--container",
        &prefix,
        "--iface",
        &p.a,
        "--delay",
        "30ms",
        "--for",
        "60s",
    ]);
    let id = fault_id(&out);
    assert_eq!(root(&p, &p.a).0, "prio");
    // The container's process ends; its namespace lives on (pinned in /run/netns), so
    // the undo has something to do: faultd must still remove its netem.
    let started = std::time::Instant::now();
    c.stop();
    let mut got = serde_json::Value::Null;
    assert!(
        eventually(Duration::from_secs(5), || {
            got = agent.ctl_json(&["get", &id]);
            got["state"] != "active"
        }),
        "still active 5 s after its container stopped: {got}"
    );
    println!(
        "ended {:?} after the stop: {} ({})",
        started.elapsed(),
        got["state"],
        got["end_reason"]
    );
    assert_eq!(got["state"], "reverted", "{got}");
    let why = got["end_reason"].as_str().unwrap();
    assert!(
        why.starts_with(&format!("target gone: container {prefix} stopped")),
        "{why}"
    );
    assert_eq!(root(&p, &p.a).0, "noqueue");
}

/// An `ip netns` namespace deleted while a fault is in it: faultd's revert finds no
/// namespace at the path any more and says there was nothing left to undo; the netlink
/// connection the fault held goes with it, so the namespace really ends then (the veth
/// whose other end lives in a second namespace vanishes from there).
#[test]
fn a_namespace_deleted_under_a_fault_is_released_by_its_revert() {
    require!("root", "netem");
    let agent = Agent::start();
    let mut l = net_common::Link::new();
    let id = fault_id(&agent.ctl_json(&[
        "inject",
        "net",
        "--netns",
        &l.left.name,
        "--iface",
        &l.a,
        "--delay",
        "10ms",
        "--for",
        "60s",
    ]));
    let name = l.left.name.clone();
    l.left.delete();
    let out = agent.ctl(&["revert", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = agent.ctl_json(&["get", &id]);
    assert_eq!(got["state"], "reverted", "{got}");
    let why = got["end_reason"].as_str().unwrap();
    assert!(
        why.contains("nothing left to undo") && why.contains(&name),
        "{why}"
    );
    let mut links = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            links = l.right.links();
            !links.contains(&l.b)
        }),
        "{} still exists 10 s after the revert: the deleted namespace lives on\n{links}",
        l.b
    );
}

/// A TCP listener bound inside `ns` that answers every connection by echoing what it
/// reads, until dropped with the namespace.
fn tcp_echo_in(ns: &net_common::Netns, bind: &str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let bind = bind.to_string();
    let l = ns
        .target()
        .run_in(move || std::net::TcpListener::bind(bind))
        .expect("listen in the namespace");
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Connects from inside `ns` to `to` (3 s to complete the handshake), sends a line and
/// reads it back: `Ok` only if the connection completed and carried data both ways.
fn tcp_round_trip(ns: &net_common::Netns, to: std::net::SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut s = ns
        .target()
        .run_in(move || std::net::TcpStream::connect_timeout(&to, Duration::from_secs(3)))
        .map_err(|e| format!("connect to {to}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let msg = b"faultline protected traffic\n";
    s.write_all(msg)
        .map_err(|e| format!("write to {to}: {e}"))?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got)
        .map_err(|e| format!("read back from {to}: {e}"))?;
    if got != msg {
        return Err(format!("{to} echoed {got:?}"));
    }
    Ok(())
}

/// Issue #15: with `--loss 100%` on a veth (egress, then ingress through an IFB), a TCP
/// connection from the peer namespace to a listener on port 22 still completes and
/// carries data; one to port 8080 does not. The exemptions show in the dry run, in
/// `get` and in `status`, and go with the revert.
#[test]
fn port_22_crosses_a_total_loss_fault_both_ways_and_8080_does_not() {
    require!("root", "netem", "prio", "u32", "ifb", "mirred");
    let agent = Agent::start_with(AgentOptions {
        limits: Some("profile = \"staging\"\n[network]\nmax_loss_percent = 100\n".into()),
        ..Default::default()
    });
    let l = net_common::Link::new();
    let ssh = tcp_echo_in(&l.left, "10.77.0.1:22");
    let web = tcp_echo_in(&l.left, "10.77.0.1:8080");
    // IPv6 too: the ip6 exemption filters (ports at offset 40 of the IPv6 header).
    let ssh6 = tcp_echo_in(&l.left, "[fd77::1]:22");
    let web6 = tcp_echo_in(&l.left, "[fd77::1]:8080");
    tcp_round_trip(&l.right, ssh6).expect("IPv6 port 22 before the fault");
    tcp_round_trip(&l.right, ssh).expect("port 22 before the fault");
    tcp_round_trip(&l.right, web).expect("port 8080 before the fault");
    let status = agent.ctl_json(&["status"]);
    assert_eq!(status["protected_traffic"], "port 22", "{status}");
    for direction in ["egress", "ingress"] {
        let args = |dry: bool| {
            let mut a = vec![
                "inject",
                "net",
                "--netns",
                &l.left.name,
                "--iface",
                &l.a,
                "--direction",
                direction,
                "--loss",
                "100%",
                "--for",
                "60s",
            ];
            if dry {
                a.push("--dry-run");
            }
            a
        };
        let dry = agent.ctl(&args(true));
        assert!(dry.status.success(), "{}", stderr(&dry));
        let shown = String::from_utf8_lossy(&dry.stdout).to_string();
        assert!(
            shown.contains("sparing protected traffic (port 22)"),
            "the dry run shows the exemptions: {shown}"
        );
        let id = fault_id(&agent.ctl_json(&args(false)));
        let got = agent.ctl_json(&["get", &id]);
        assert!(
            got.to_string()
                .contains("sparing protected traffic (port 22)"),
            "get shows the exemptions: {got}"
        );
        // The device that carries the fault: the veth itself, or its IFB.
        let dev = if direction == "egress" {
            l.a.clone()
        } else {
            l.left
                .links()
                .split_whitespace()
                .find_map(|w| {
                    w.trim_end_matches(':')
                        .split('@')
                        .next()
                        .filter(|n| n.starts_with("flifb"))
                        .map(str::to_string)
                })
                .expect("an IFB device")
        };
        let filters = l.left.tc(&["filter", "show", "dev", &dev]);
        assert!(
            filters.contains("flowid fa17:2") && filters.contains("flowid fa17:4"),
            "{direction}: exemption filters ahead of the match-all on {dev}: {filters}"
        );
        tcp_round_trip(&l.right, ssh)
            .unwrap_or_else(|e| panic!("{direction}: port 22 under --loss 100%: {e}"));
        tcp_round_trip(&l.right, ssh6)
            .unwrap_or_else(|e| panic!("{direction}: IPv6 port 22 under --loss 100%: {e}"));
        let cut = tcp_round_trip(&l.right, web);
        assert!(
            cut.is_err(),
            "{direction}: port 8080 crossed a --loss 100% fault"
        );
        assert!(
            tcp_round_trip(&l.right, web6).is_err(),
            "{direction}: IPv6 port 8080 crossed a --loss 100% fault"
        );
        let out = agent.ctl(&["revert", &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(l.left.root_kind(&l.a), "noqueue", "{direction}");
        assert_eq!(
            l.left.tc(&["filter", "show", "dev", &l.a]).trim(),
            "",
            "{direction}: no filter left behind"
        );
        assert!(
            !l.left.links().contains("flifb"),
            "{direction}: IFB removed"
        );
        tcp_round_trip(&l.right, web)
            .unwrap_or_else(|e| panic!("{direction}: port 8080 after the revert: {e}"));
    }
}

/// Whether a datagram sent from `from` (bound to `src`, in its namespace) reaches a
/// socket bound to `dst` in `to`'s namespace within 1 s (3 tries).
fn udp_reaches(from: &net_common::Netns, src: &str, to: &net_common::Netns, dst: &str) -> bool {
    let rx = net_common::udp_in(to, dst);
    rx.set_read_timeout(Some(Duration::from_millis(350)))
        .unwrap();
    let tx = net_common::udp_in(from, &format!("{src}:0"));
    let to_addr = rx.local_addr().unwrap();
    let mut buf = [0u8; 16];
    (0..3).any(|_| {
        tx.send_to(b"partition?", to_addr).unwrap();
        rx.recv(&mut buf).is_ok()
    })
}

/// Everything of the veth's traffic control and the namespace's links, as iproute2
/// shows them: what a revert must restore exactly.
fn tc_state(l: &net_common::Link) -> String {
    let names: Vec<String> = l
        .left
        .links()
        .lines()
        .map(|s| s.split(':').nth(1).unwrap_or("").trim().to_string())
        .collect();
    format!(
        "{}\n{}\n{}\n{}\nlinks: {names:?}",
        l.left.tc(&["qdisc", "show", "dev", &l.a]),
        l.left.tc(&["filter", "show", "dev", &l.a]),
        l.left.tc(&["filter", "show", "dev", &l.a, "ingress"]),
        l.left.tc(&["class", "show", "dev", &l.a]),
    )
}

/// Two networks on one veth pair: 10.77.0.0/24 (the Link's) and 10.78.0.0/24.
fn two_networks() -> net_common::Link {
    let l = net_common::Link::new();
    l.left.ip(&["addr", "add", "10.78.0.1/24", "dev", &l.a]);
    l.right.ip(&["addr", "add", "10.78.0.2/24", "dev", &l.b]);
    l
}

/// `--blackhole --direction both --dst 10.77.0.0/24` on the Link's left end for 5
/// minutes: a partition from that network. Returns the fault's id.
fn partition(agent: &Agent, l: &net_common::Link) -> String {
    fault_id(&agent.ctl_json(&[
        "inject",
        "net",
        "--netns",
        &l.left.name,
        "--iface",
        &l.a,
        "--blackhole",
        "--direction",
        "both",
        "--dst",
        "10.77.0.0/24",
        "--for",
        "5m",
    ]))
}

/// Issue #15: `--blackhole --direction both --dst` a /24 cuts exactly that network, both
/// ways (a datagram neither leaves for it nor arrives from it), leaves the other network
/// and port 22 alone, is one fault with one id, and its revert restores the qdiscs,
/// filters and links exactly as they were (IFB included).
#[test]
fn partition_from_a_24_cuts_it_both_ways_and_reverts_exactly() {
    require!("root", "netem", "prio", "u32", "ifb", "mirred");
    let agent = Agent::start_staging();
    let l = two_networks();
    let ssh = tcp_echo_in(&l.left, "10.77.0.1:22");
    let web = tcp_echo_in(&l.left, "10.77.0.1:8080");
    let before = tc_state(&l);
    for (a, b) in [("10.77.0.1", "10.77.0.2"), ("10.78.0.1", "10.78.0.2")] {
        assert!(udp_reaches(&l.left, a, &l.right, &format!("{b}:7101")));
        assert!(udp_reaches(&l.right, b, &l.left, &format!("{a}:7102")));
    }
    let id = partition(&agent, &l);
    // One fault: the prio root on the veth, the ingress redirect, and an IFB; the
    // filters drop (gact) after the exemptions.
    assert_eq!(l.left.root_kind(&l.a), "prio");
    let egress = l.left.tc(&["filter", "show", "dev", &l.a]);
    assert!(
        egress.contains("action order 1: gact action drop") && egress.contains("flowid fa17:2"),
        "{egress}"
    );
    assert!(l.left.links().contains("flifb"), "{}", l.left.links());
    assert_eq!(
        agent.ctl_json(&["list"])["faults"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "one fault for both directions"
    );
    // Cut both ways from 10.77.0.0/24, not from 10.78.0.0/24.
    assert!(
        !udp_reaches(&l.left, "10.77.0.1", &l.right, "10.77.0.2:7103"),
        "a datagram left for the partitioned network"
    );
    assert!(
        !udp_reaches(&l.right, "10.77.0.2", &l.left, "10.77.0.1:7104"),
        "a datagram arrived from the partitioned network"
    );
    assert!(udp_reaches(
        &l.left,
        "10.78.0.1",
        &l.right,
        "10.78.0.2:7105"
    ));
    assert!(udp_reaches(
        &l.right,
        "10.78.0.2",
        &l.left,
        "10.78.0.1:7106"
    ));
    tcp_round_trip(&l.right, ssh).expect("port 22 is spared by the partition");
    assert!(tcp_round_trip(&l.right, web).is_err(), "8080 is cut");
    // Another fault on the same interface, either direction, conflicts with it.
    for d in ["egress", "ingress"] {
        let o = agent.ctl(&[
            "inject",
            "net",
            "--netns",
            &l.left.name,
            "--iface",
            &l.a,
            "--direction",
            d,
            "--delay",
            "10ms",
            "--for",
            "60s",
        ]);
        assert_eq!(o.status.code(), Some(6), "{d}: {}", stderr(&o));
        assert!(stderr(&o).contains(&id), "{d}: {}", stderr(&o));
    }
    let o = agent.ctl(&["revert", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        tc_state(&l),
        before,
        "the revert restores everything exactly"
    );
    assert!(udp_reaches(
        &l.left,
        "10.77.0.1",
        &l.right,
        "10.77.0.2:7107"
    ));
    assert!(udp_reaches(
        &l.right,
        "10.77.0.2",
        &l.left,
        "10.77.0.1:7108"
    ));
}

/// Issue #15: a crash under a partition leaves it in place; the next start reverts it,
/// exemption filters, ingress redirect and IFB included; and `faultd cleanup` sweeps one
/// whose journal is gone, by its tags.
#[test]
fn crash_recovery_and_cleanup_sweep_a_partition_and_its_exemptions() {
    require!("root", "netem", "prio", "u32", "ifb", "mirred");
    let mut agent = Agent::start_staging();
    let l = two_networks();
    let before = tc_state(&l);
    partition(&agent, &l);
    agent.crash();
    let during = tc_state(&l);
    assert!(
        during.contains("flowid fa17:2") && during.contains("flifb"),
        "a crash leaves the fault: {during}"
    );
    let again = Agent::start_with(AgentOptions {
        state_dir: Some(agent.state_dir()),
        limits: Some("profile = \"staging\"\n".into()),
        ..Default::default()
    });
    assert_eq!(tc_state(&l), before, "recovered before the agent listens");
    // The same fault again, then a crash and a lost journal: only the sweep can find it.
    let mut again = again;
    partition(&again, &l);
    again.crash();
    // `again` runs on the first agent's state dir (its own `state_dir()` is unused).
    let state = agent.state_dir();
    let journal = state.join("journal");
    for e in std::fs::read_dir(&journal).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    assert_ne!(tc_state(&l), before);
    let out = std::process::Command::new(faultline_tests::bin("faultd"))
        .arg("cleanup")
        .arg("--state-dir")
        .arg(&state)
        .arg("--config")
        .arg(again.config_path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tc_state(&l), before, "the sweep removed everything");
}

/// Issue #15: faultd serving mutual TLS on the veth it blackholes. A controller in the
/// peer namespace injects a whole-interface blackhole in both directions over TLS: its
/// own connection is spared (the caller's flow and faultd's port are exemptions), so it
/// can still `status`, `list`, `get` and `revert` over TLS from new connections, while
/// every other flow across the veth is cut.
#[test]
fn a_tls_controller_across_a_blackholed_veth_keeps_control() {
    require!("root", "netem", "prio", "u32", "ifb", "mirred");
    let l = net_common::Link::new();
    let pki = tempfile::tempdir().unwrap();
    let ca = faultline_tests::pki::Ca::new(pki.path(), "fl15-ca");
    let (cert, key) = ca.leaf_at(pki.path(), "node15", "10.77.0.1".parse().unwrap());
    let (alice, alice_key) = ca.leaf(pki.path(), "alice", false);
    let port = 7443;
    let agent = Agent::start_with(AgentOptions {
        limits: Some("profile = \"staging\"\n".into()),
        netns: Some(l.left.name.clone()),
        config: Some(format!(
            "listen = \"10.77.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n[roles]\noperator = [\"alice\"]\n",
            cert.display(),
            key.display(),
            ca.pem.display()
        )),
        ..Default::default()
    });
    let web = tcp_echo_in(&l.left, "10.77.0.1:8080");
    let ssh = tcp_echo_in(&l.left, "10.77.0.1:22");
    let ctl = |args: &[&str]| -> std::process::Output {
        std::process::Command::new("ip")
            .args(["netns", "exec", &l.right.name])
            .arg(faultline_tests::bin("faultctl"))
            .args(["--agent", &format!("https://10.77.0.1:{port}")])
            .arg("--ca")
            .arg(&ca.pem)
            .arg("--cert")
            .arg(&alice)
            .arg("--key")
            .arg(&alice_key)
            .args(["-o", "json"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let json = |o: std::process::Output| -> serde_json::Value {
        assert!(o.status.success(), "{}\n{}", stderr(&o), agent.log_text());
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let status = json(ctl(&["status"]));
    assert_eq!(
        status["protected_traffic"],
        format!("ports 22, {port}"),
        "{status}"
    );
    let out = json(ctl(&[
        "inject",
        "net",
        "--netns",
        &l.left.name,
        "--iface",
        &l.a,
        "--blackhole",
        "--direction",
        "both",
        "--for",
        "60s",
    ]));
    let id = fault_id(&out);
    // The Inject's own connection is an exemption: its address and port, both ways.
    let got = json(ctl(&["get", &id]));
    let text = got.to_string();
    assert!(
        text.contains(&format!(
            "sparing protected traffic (ports 22, {port}; flow 10.77.0.2:"
        )),
        "{got}"
    );
    let filters = l.left.tc(&["filter", "show", "dev", &l.a]);
    assert!(
        filters.contains("match 0a4d0002/ffffffff at 16") && filters.contains("gact action drop"),
        "a filter sparing packets to the caller, ahead of the drop: {filters}"
    );
    // Everything else across the veth is cut, both ways; SSH is not.
    tcp_round_trip(&l.right, ssh).expect("port 22 crosses a blackhole in both directions");
    assert!(tcp_round_trip(&l.right, web).is_err(), "8080 is blackholed");
    assert!(!udp_reaches(
        &l.left,
        "10.77.0.1",
        &l.right,
        "10.77.0.2:7201"
    ));
    assert!(!udp_reaches(
        &l.right,
        "10.77.0.2",
        &l.left,
        "10.77.0.1:7202"
    ));
    // The controller keeps control from new connections.
    let list = json(ctl(&["list"]));
    assert_eq!(list["faults"][0]["id"], id.as_str(), "{list}");
    let o = ctl(&["revert", &id]);
    assert!(o.status.success(), "revert over TLS: {}", stderr(&o));
    assert_eq!(l.left.root_kind(&l.a), "noqueue");
    assert!(!l.left.links().contains("flifb"));
    tcp_round_trip(&l.right, web).expect("8080 after the revert");
}

/// Issue #15: `--dns --blackhole` drops DNS, UDP and TCP to port 53, and nothing else;
/// the revert lets it through again.
#[test]
fn dns_blackhole_drops_udp_and_tcp_port_53_only() {
    require!("root", "prio", "u32");
    let agent = Agent::start_staging();
    let l = net_common::Link::new();
    let dns_tcp = tcp_echo_in(&l.right, "10.77.0.2:53");
    let other_tcp = tcp_echo_in(&l.right, "10.77.0.2:5353");
    assert!(udp_reaches(&l.left, "10.77.0.1", &l.right, "10.77.0.2:53"));
    tcp_round_trip(&l.left, dns_tcp).expect("TCP 53 before the fault");
    let id = fault_id(&agent.ctl_json(&[
        "inject",
        "net",
        "--netns",
        &l.left.name,
        "--iface",
        &l.a,
        "--dns",
        "--blackhole",
        "--for",
        "60s",
    ]));
    let got = agent.ctl_json(&["get", &id]);
    assert!(
        got.to_string().contains("DNS (dport 53, udp and tcp)"),
        "{got}"
    );
    assert!(
        !udp_reaches(&l.left, "10.77.0.1", &l.right, "10.77.0.2:53"),
        "a DNS query over UDP left"
    );
    assert!(
        tcp_round_trip(&l.left, dns_tcp).is_err(),
        "DNS over TCP left"
    );
    assert!(udp_reaches(
        &l.left,
        "10.77.0.1",
        &l.right,
        "10.77.0.2:5353"
    ));
    tcp_round_trip(&l.left, other_tcp).expect("TCP 5353 is not DNS");
    let o = agent.ctl(&["revert", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(udp_reaches(&l.left, "10.77.0.1", &l.right, "10.77.0.2:53"));
    tcp_round_trip(&l.left, dns_tcp).expect("TCP 53 after the revert");
}
