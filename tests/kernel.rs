//! Canaries for the real-kernel tier: they prove that the kernel under test really has what
//! the VM tier exists for. `netem_delay_canary` measures that a netem delay on a veth pair
//! really delays packets; `cgroup2_cpu_max_memory_max_canary` writes and reads back
//! `cpu.max` and `memory.max` in a cgroup v2 child. Both skip on a kernel without those
//! (the CI host) and must run in the VM, whose tier sets `FAULTLINE_REQUIRE`.

use std::fs::File;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use faultline_tests::caps::{Probe, iproute2, run_iproute2, v2_mount};
use faultline_tests::{require, unique_name};

/// Runs an iproute2 tool and panics with its stderr if it fails.
fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(iproute2(tool))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`{tool} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace (`ip netns add NAME`), deleted on drop (`ip netns del NAME`),
/// which also removes every link inside it.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new() -> Self {
        let name = unique_name("fltest-");
        run("ip", &["netns", "add", &name]);
        NetNs { name }
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs `f` on a new thread that has entered this namespace; sockets it makes stay in it.
    fn run_in<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let ns = File::open(self.path())
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.path().display()));
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("setns into the test namespace");
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let out = Command::new(iproute2("ip"))
            .args(["netns", "del", &self.name])
            .output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            faultline_tests::leftover(format!("network namespace {}: {out:?}", self.name));
        }
    }
}

/// Round trips of `count` UDP datagrams from `client` (in namespace `from`) to an echo
/// server at `server` (in namespace `to`).
fn udp_round_trips(
    from: &NetNs,
    to: &NetNs,
    client: &str,
    server: &str,
    count: usize,
) -> Vec<Duration> {
    let echo = to.run_in(|| UdpSocket::bind(format!("{server}:0")).expect("bind echo server"));
    let echo_addr = echo.local_addr().unwrap();
    echo.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 64];
            while let Ok((n, peer)) = echo.recv_from(&mut buf) {
                if &buf[..n] == b"quit" {
                    break;
                }
                let _ = echo.send_to(&buf[..n], peer);
            }
        });
        let sock = from.run_in(|| UdpSocket::bind(format!("{client}:0")).expect("bind client"));
        sock.connect(echo_addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rtts = Vec::with_capacity(count);
        let mut buf = [0u8; 64];
        // One unmeasured datagram first: it pays for neighbour resolution.
        for i in 0..=count {
            let msg = format!("ping {i}");
            let t = Instant::now();
            sock.send(msg.as_bytes()).unwrap();
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no echo for datagram {i} within 5 s: {e}"));
            assert_eq!(&buf[..n], msg.as_bytes());
            if i > 0 {
                rtts.push(t.elapsed());
            }
        }
        sock.send(b"quit").unwrap();
        rtts
    })
}

/// `ip netns add` x2; `ip -n A link add X type veth peer name Y netns B`; addresses; then
/// `tc -n A qdisc add dev X root netem delay 100ms` must add 100 ms to the UDP round trip.
#[test]
fn netem_delay_canary() {
    require!("root", "netem");
    let a = NetNs::new();
    let b = NetNs::new();
    let (va, vb) = (unique_name("fla"), unique_name("flb"));
    run(
        "ip",
        &[
            "-n", &a.name, "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns",
            &b.name,
        ],
    );
    for (ns, dev, addr) in [(&a, &va, "10.199.0.1/30"), (&b, &vb, "10.199.0.2/30")] {
        run("ip", &["-n", &ns.name, "addr", "add", addr, "dev", dev]);
        run("ip", &["-n", &ns.name, "link", "set", dev, "up"]);
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
    }

    let before = udp_round_trips(&a, &b, "10.199.0.1", "10.199.0.2", 10);
    run(
        "tc",
        &[
            "-n", &a.name, "qdisc", "add", "dev", &va, "root", "netem", "delay", "100ms",
        ],
    );
    let shown = run("tc", &["-n", &a.name, "qdisc", "show", "dev", &va]);
    assert!(
        shown.contains("netem") && shown.contains("delay 100ms"),
        "tc qdisc show does not list the netem delay: {shown}"
    );
    let after = udp_round_trips(&a, &b, "10.199.0.1", "10.199.0.2", 10);

    let min = |v: &[Duration]| v.iter().min().copied().unwrap();
    let (min_before, min_after) = (min(&before), min(&after));
    println!("round trip without netem: {before:?}");
    println!("round trip with netem delay 100ms: {after:?}");
    println!(
        "added delay (min): {:?}",
        min_after.saturating_sub(min_before)
    );
    assert!(
        min_before < Duration::from_millis(50),
        "the round trip is already {min_before:?} without netem: the canary cannot tell"
    );
    // netem holds every packet for at least 100 ms; slack only for clock granularity.
    assert!(
        min_after >= Duration::from_millis(99),
        "netem delay 100ms gave a round trip of only {min_after:?}: packets were not delayed"
    );
    // docs/testing.md: the round trip grows by 100 ms; 20 ms of slack for a loaded
    // machine and an emulated guest's timers.
    let added = min_after.saturating_sub(min_before);
    assert!(
        added <= Duration::from_millis(120),
        "netem delay 100ms added {added:?} to the round trip ({min_before:?} -> {min_after:?}): more than 100 ms + 20 ms"
    );
}

/// A cgroup v2 child (`mkdir`), removed on drop (`rmdir`).
struct Cgroup {
    path: PathBuf,
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.path) {
            faultline_tests::leftover(format!("cgroup {}: rmdir: {e}", self.path.display()));
        }
    }
}

/// `mkdir /sys/fs/cgroup/X; echo "50000 100000" > X/cpu.max; echo 67108864 > X/memory.max`,
/// read both back, `rmdir X`.
#[test]
fn cgroup2_cpu_max_memory_max_canary() {
    require!("root", "cgroup2-controllers");
    let root = v2_mount().expect("cgroup2 mount");
    let enabled = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
    for c in ["cpu", "memory"] {
        assert!(
            enabled.split_whitespace().any(|e| e == c),
            "the {c} controller is offered but not enabled for children of {}: \
             echo +{c} > {}/cgroup.subtree_control",
            root.display(),
            root.display()
        );
    }
    let cg = Cgroup {
        path: root.join(unique_name("fltest-")),
    };
    std::fs::create_dir(&cg.path).unwrap_or_else(|e| panic!("mkdir {}: {e}", cg.path.display()));

    let write = |file: &str, value: &str| {
        std::fs::write(cg.path.join(file), value)
            .unwrap_or_else(|e| panic!("echo {value} > {}/{file}: {e}", cg.path.display()))
    };
    let read = |file: &str| {
        std::fs::read_to_string(cg.path.join(file))
            .unwrap_or_else(|e| panic!("cat {}/{file}: {e}", cg.path.display()))
            .trim()
            .to_string()
    };
    assert_eq!(
        read("cpu.max"),
        "max 100000",
        "a new group starts unlimited"
    );
    write("cpu.max", "50000 100000");
    assert_eq!(read("cpu.max"), "50000 100000");
    write("memory.max", &(64u64 << 20).to_string());
    assert_eq!(read("memory.max"), "67108864");

    let path = cg.path.clone();
    drop(cg);
    assert!(
        !path.exists(),
        "{} still exists after rmdir",
        path.display()
    );
}

/// The network probes work in a namespace of their own: the root namespace's links and
/// qdiscs (`ip -o link show`, `tc qdisc show`) are the same before and after all of them.
#[test]
fn capability_probes_leave_the_root_namespace_alone() {
    require!("root");
    let snapshot = || {
        (
            run("ip", &["-o", "link", "show"]),
            run("tc", &["qdisc", "show"]),
        )
    };
    let before = snapshot();
    for cap in ["netem", "prio", "tbf", "u32", "ifb", "mirred"] {
        // Present or not, the answer must come without side effects, and from the kernel.
        let answer = faultline_tests::caps::probe_tc_kind(cap);
        println!("{cap}: {answer:?}");
        assert!(
            !matches!(answer, Err(Probe::Broken(_))),
            "the {cap} probe broke: {answer:?}"
        );
    }
    let after = snapshot();
    assert!(
        !after.0.contains("flprobe"),
        "a probe link leaked into the root namespace:\n{}",
        after.0
    );
    assert_eq!(before, after, "probing changed the root namespace");
}

/// Only the kernel's own "unknown kind" answer reads as a missing capability: a kind no
/// kernel has is missing; a tc syntax error, a device that does not exist and a program
/// that does not exist are broken probes (a test failure, never a skip).
#[test]
fn probe_failures_other_than_an_unknown_kind_fail() {
    require!("root");
    let ns = NetNs::new();
    let n = ns.name.as_str();
    let unknown = run_iproute2(
        "tc",
        &[
            "-n",
            n,
            "qdisc",
            "add",
            "dev",
            "lo",
            "root",
            "faultlinenosuchkind",
        ],
    );
    assert!(matches!(unknown, Err(Probe::Missing(_))), "{unknown:?}");
    let syntax = run_iproute2(
        "tc",
        &["-n", n, "qdisc", "add", "dev", "lo", "root", "tbf", "rate"],
    );
    assert!(matches!(syntax, Err(Probe::Broken(_))), "{syntax:?}");
    let no_dev = run_iproute2(
        "tc",
        &[
            "-n",
            n,
            "qdisc",
            "add",
            "dev",
            "flnosuchdev0",
            "root",
            "tbf",
            "rate",
            "1mbit",
            "burst",
            "32kbit",
            "latency",
            "400ms",
        ],
    );
    assert!(matches!(no_dev, Err(Probe::Broken(_))), "{no_dev:?}");
    let no_tool = run_iproute2("faultline-no-such-tool", &["-V"]);
    assert!(matches!(no_tool, Err(Probe::Broken(_))), "{no_tool:?}");
}
