//! VM-tier network tests: they need netem (and prio, ifb, u32, mirred), which the host
//! kernel lacks, so they skip on the host and run inside the guest booted from a stock
//! distribution kernel. Each test has its own namespace(s) and veth pair.
//!
//! iproute2 is the reference reader: every parameter family faultline applies is read
//! back with `tc -s -d -j qdisc show` and compared with what `tc` itself installs for
//! the same parameters on a twin veth. Effects are measured with UDP round trips.

#[path = "net_common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Echo, Link, Pair, udp_in, udp_rtts};
use faultline_agent::sys::netns::NetnsTarget;
use faultline_agent::sys::tc::{
    Chance, Delay, Direction, Distribution, FourState, GilbertElliott, Loss, NetFault, Netem,
    Percent, Rate, Reorder, Reverted, Selection, Tc, revert,
};
use faultline_tests::require;

fn pct(p: f64) -> Percent {
    Percent::new(p).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn delay(lat: u64, jit: u64, corr: f64, d: Distribution) -> Option<Delay> {
    Some(Delay {
        latency: ms(lat),
        jitter: ms(jit),
        correlation: pct(corr),
        distribution: d,
    })
}

fn chance(p: f64, c: f64) -> Option<Chance> {
    Some(Chance {
        probability: pct(p),
        correlation: pct(c),
    })
}

/// (faultline's parameters, the same as `tc ... netem` arguments)
fn families() -> Vec<(Netem, &'static str)> {
    let d = Netem::default;
    vec![
        (
            Netem {
                delay: delay(100, 10, 25.0, Distribution::Uniform),
                ..d()
            },
            "delay 100ms 10ms 25%",
        ),
        (
            Netem {
                delay: delay(100, 10, 0.0, Distribution::Normal),
                ..d()
            },
            "delay 100ms 10ms distribution normal",
        ),
        (
            Netem {
                delay: delay(50, 20, 0.0, Distribution::Pareto),
                ..d()
            },
            "delay 50ms 20ms distribution pareto",
        ),
        (
            Netem {
                delay: delay(80, 5, 10.0, Distribution::ParetoNormal),
                ..d()
            },
            "delay 80ms 5ms 10% distribution paretonormal",
        ),
        (
            Netem {
                loss: Some(Loss::Random(chance(20.0, 25.0).unwrap())),
                ..d()
            },
            "loss random 20% 25%",
        ),
        (
            Netem {
                loss: Some(Loss::GilbertElliott(GilbertElliott {
                    p: pct(1.0),
                    r: pct(10.0),
                    loss_bad: pct(70.0),
                    loss_good: pct(0.1),
                })),
                ..d()
            },
            "loss gemodel 1% 10% 70% 0.1%",
        ),
        (
            Netem {
                loss: Some(Loss::FourState(FourState {
                    p13: pct(1.0),
                    p31: pct(10.0),
                    p32: pct(20.0),
                    p23: pct(5.0),
                    p14: pct(0.5),
                })),
                ..d()
            },
            "loss state 1% 10% 20% 5% 0.5%",
        ),
        (
            Netem {
                loss: Some(Loss::Random(chance(1.0, 0.0).unwrap())),
                ecn: true,
                ..d()
            },
            "loss 1% ecn",
        ),
        (
            Netem {
                duplicate: chance(5.0, 0.0),
                ..d()
            },
            "duplicate 5%",
        ),
        (
            Netem {
                corrupt: chance(0.1, 20.0),
                ..d()
            },
            "corrupt 0.1% 20%",
        ),
        (
            Netem {
                delay: delay(10, 0, 0.0, Distribution::Uniform),
                reorder: Some(Reorder {
                    probability: pct(25.0),
                    correlation: pct(50.0),
                    gap: 5,
                }),
                ..d()
            },
            "delay 10ms reorder 25% 50% gap 5",
        ),
        (
            Netem {
                rate: Some(Rate {
                    bytes_per_sec: 1_250_000,
                    ..Default::default()
                }),
                ..d()
            },
            "rate 10mbit",
        ),
        (
            Netem {
                limit: 5000,
                delay: delay(30, 0, 0.0, Distribution::Uniform),
                ..d()
            },
            "limit 5000 delay 30ms",
        ),
        (
            Netem {
                limit: 2000,
                delay: delay(100, 10, 25.0, Distribution::Uniform),
                loss: Some(Loss::Random(chance(0.3, 25.0).unwrap())),
                duplicate: chance(1.0, 0.0),
                corrupt: chance(0.1, 0.0),
                reorder: Some(Reorder {
                    probability: pct(5.0),
                    correlation: pct(50.0),
                    gap: 3,
                }),
                rate: Some(Rate {
                    bytes_per_sec: 12_500_000,
                    ..Default::default()
                }),
                ..d()
            },
            "limit 2000 delay 100ms 10ms 25% loss 0.3% 25% duplicate 1% corrupt 0.1% reorder 5% 50% gap 3 rate 100mbit",
        ),
    ]
}

fn root_options(ns: &common::Netns, dev: &str) -> serde_json::Value {
    let j: serde_json::Value =
        serde_json::from_str(&ns.tc(&["-s", "-d", "-j", "qdisc", "show", "dev", dev])).unwrap();
    let root = j
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["root"] == true)
        .cloned()
        .expect("a root qdisc");
    assert_eq!(root["kind"], "netem", "{root}");
    root["options"].clone()
}

/// Every netem parameter family: applied by faultline, read back by `tc -s -d -j`, equal
/// to what `tc` installs from the command line; the decoder reads both kernel dumps back
/// into the parameters given; revert restores the default root.
#[tokio::test]
async fn netem_families_read_back_like_tc() {
    require!("root");
    need_tc!("netem");
    let p = Pair::new();
    let tc = Tc::connect(&p.ns.target()).await.unwrap();
    let (ia, ib) = (
        tc.ifindex(&p.a).await.unwrap(),
        tc.ifindex(&p.b).await.unwrap(),
    );
    for (netem, args) in families() {
        let fault = NetFault {
            iface: p.a.clone(),
            direction: Direction::Egress,
            netem: netem.clone(),
            selection: Selection::default(),
        };
        let undo = tc
            .apply(&fault)
            .await
            .unwrap_or_else(|e| panic!("{args}: {e}"));
        let mut cmd = vec![
            "qdisc", "replace", "dev", &p.b, "root", "handle", "fa17:", "netem",
        ];
        cmd.extend(args.split_whitespace());
        p.ns.tc(&cmd);
        assert_eq!(
            root_options(&p.ns, &p.a),
            root_options(&p.ns, &p.b),
            "`netem {args}`"
        );
        let mut want = netem.clone();
        if let Some(d) = want.delay.as_mut() {
            d.distribution = Distribution::Uniform; // not dumped by the kernel
        }
        assert_eq!(
            tc.netem_state(ia).await.unwrap(),
            Some(want.clone()),
            "decoding ours: `netem {args}`"
        );
        assert_eq!(
            tc.netem_state(ib).await.unwrap(),
            Some(want),
            "decoding tc's: `netem {args}`"
        );
        assert_eq!(revert(&undo).await.unwrap(), Reverted::Restored);
        assert_eq!(p.ns.root_kind(&p.a), "noqueue");
        p.ns.tc(&["qdisc", "del", "dev", &p.b, "root"]);
    }
}

/// With a selection: prio root, netem on band 4, u32 filters at prefs 4 and 5 (1-3 are
/// the exemption filters' when traffic is protected); qdiscs and filters read
/// back like `tc`'s own for the same commands, and revert restores exactly the qdiscs
/// and filters that were there before.
#[tokio::test]
async fn selection_installs_like_tc_and_reverts_exactly() {
    require!("root");
    need_tc!("netem", "prio", "u32");
    let p = Pair::new();
    let tc = Tc::connect(&p.ns.target()).await.unwrap();
    let before_q = p.ns.tc(&["-d", "qdisc", "show", "dev", &p.a]);
    let before_f = p.ns.tc(&["filter", "show", "dev", &p.a]);
    let selection = Selection {
        dst: vec![
            "10.1.0.0/16".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        dport: Some("8080".parse().unwrap()),
        protocol: Some("tcp".parse().unwrap()),
        ..Default::default()
    };
    let netem = Netem {
        delay: delay(50, 0, 0.0, Distribution::Uniform),
        ..Default::default()
    };
    let undo = tc
        .apply(&NetFault {
            iface: p.a.clone(),
            direction: Direction::Egress,
            netem,
            selection,
        })
        .await
        .unwrap();
    assert_eq!((undo.installed_root.as_str(), undo.filters), ("prio", 2));
    let b = p.b.as_str();
    for c in [
        format!(
            "qdisc replace dev {b} root handle fa17: prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1"
        ),
        format!("qdisc add dev {b} parent fa17:4 handle fa18: netem delay 50ms"),
        format!(
            "filter add dev {b} parent fa17: protocol ip prio 4 u32 match ip dst 10.1.0.0/16 match ip protocol 6 0xff match ip dport 8080 0xffff flowid fa17:4"
        ),
        format!(
            "filter add dev {b} parent fa17: protocol ipv6 prio 5 u32 match ip6 dst 2001:db8::/32 match ip6 protocol 6 0xff match ip6 dport 8080 0xffff flowid fa17:4"
        ),
    ] {
        p.ns.tc(&c.split_whitespace().collect::<Vec<_>>());
    }
    let strip = |s: String| -> Vec<serde_json::Value> {
        let j: serde_json::Value = serde_json::from_str(&s).unwrap();
        j.as_array()
            .unwrap()
            .iter()
            .map(|q| serde_json::json!([q["kind"], q["handle"], q["parent"], q["options"]]))
            .collect()
    };
    assert_eq!(
        strip(p.ns.tc(&["-d", "-j", "qdisc", "show", "dev", &p.a])),
        strip(p.ns.tc(&["-d", "-j", "qdisc", "show", "dev", &p.b]))
    );
    assert_eq!(
        p.ns.tc(&["filter", "show", "dev", &p.a]),
        p.ns.tc(&["filter", "show", "dev", &p.b])
    );
    assert_eq!(revert(&undo).await.unwrap(), Reverted::Restored);
    assert_eq!(p.ns.tc(&["-d", "qdisc", "show", "dev", &p.a]), before_q);
    assert_eq!(p.ns.tc(&["filter", "show", "dev", &p.a]), before_f);
}

/// The 10th percentile of the answered round trips. A netem delay shifts every packet
/// by the same amount, while an emulated guest's noise only ever adds time, so a low
/// quantile measures the added delay more steadily than the median.
fn low_rtt(v: &[Option<Duration>]) -> Duration {
    let mut ok: Vec<Duration> = v.iter().flatten().copied().collect();
    assert!(
        ok.len() > v.len() / 2,
        "too few answers: {} of {}",
        ok.len(),
        v.len()
    );
    ok.sort();
    ok[ok.len() / 10]
}

fn assert_added(name: &str, before: Duration, after: Duration, want: Duration) {
    let added = after.saturating_sub(before);
    let err = (added.as_secs_f64() - want.as_secs_f64()).abs();
    eprintln!("{name}: round trip {before:?} -> {after:?}, added {added:?} (want {want:?})");
    assert!(
        err <= want.as_secs_f64() * 0.10,
        "{name}: added {added:?}, want {want:?} within 10%"
    );
}

fn delay_fault(iface: &str, lat_ms: u64) -> NetFault {
    NetFault {
        iface: iface.into(),
        direction: Direction::Egress,
        netem: Netem {
            delay: delay(lat_ms, 0, 0.0, Distribution::Uniform),
            ..Default::default()
        },
        selection: Selection::default(),
    }
}

/// `delay 50ms` on the echo server's side adds 50 ms to the round trip, within 10 %.
#[tokio::test]
async fn delay_50ms_adds_50ms() {
    require!("root");
    need_tc!("netem");
    let l = Link::new();
    let echo = Echo::start(&l.left, &format!("{}:7007", l.a_addr));
    let client = udp_in(&l.right, "0.0.0.0:0");
    let base = low_rtt(&udp_rtts(&client, echo.addr, 50, ms(10), ms(1000)));
    let tc = Tc::connect(&l.left.target()).await.unwrap();
    let undo = tc.apply(&delay_fault(&l.a, 50)).await.unwrap();
    let with = low_rtt(&udp_rtts(&client, echo.addr, 50, ms(10), ms(1000)));
    assert_added("delay 50ms", base, with, ms(50));
    assert_eq!(revert(&undo).await.unwrap(), Reverted::Restored);
    let after = low_rtt(&udp_rtts(&client, echo.addr, 50, ms(10), ms(1000)));
    assert!(
        after < base + ms(5),
        "after revert {after:?} vs before {base:?}"
    );
}

/// `loss 20%` over 2000 probes: the measured loss rate lies inside the 99.9 % interval
/// of a binomial(2000, 0.2) proportion.
#[tokio::test]
async fn loss_20pct_is_binomial() {
    require!("root");
    need_tc!("netem");
    let l = Link::new();
    let echo = Echo::start(&l.left, &format!("{}:7007", l.a_addr));
    let client = udp_in(&l.right, "0.0.0.0:0");
    // Warm up neighbour caches so no probe waits on ARP.
    assert!(
        udp_rtts(&client, echo.addr, 5, ms(10), ms(1000))
            .iter()
            .all(|r| r.is_some())
    );
    let tc = Tc::connect(&l.left.target()).await.unwrap();
    let mut f = delay_fault(&l.a, 0);
    f.netem.delay = None;
    f.netem.loss = Some(Loss::Random(chance(20.0, 0.0).unwrap()));
    let undo = tc.apply(&f).await.unwrap();
    let n = 2000;
    let r = udp_rtts(&client, echo.addr, n, ms(1), ms(1500));
    revert(&undo).await.unwrap();
    let lost = r.iter().filter(|x| x.is_none()).count() as f64 / n as f64;
    // Normal approximation of the binomial, two-sided 99.9 %: z = 3.2905.
    let half = 3.2905 * (0.2f64 * 0.8 / n as f64).sqrt();
    eprintln!(
        "loss 20%: measured {:.4}, interval [{:.4}, {:.4}]",
        lost,
        0.2 - half,
        0.2 + half
    );
    assert!(
        (lost - 0.2).abs() <= half,
        "measured loss {lost} outside [{}, {}]",
        0.2 - half,
        0.2 + half
    );
}

/// With a selection (`--dst` + `--dport` + udp), only matching replies are delayed; the
/// other flow's round trip is unchanged.
#[tokio::test]
async fn selection_delays_only_matching_traffic() {
    require!("root");
    need_tc!("netem", "prio", "u32");
    let l = Link::new();
    let echo = Echo::start(&l.left, &format!("{}:7007", l.a_addr));
    let hit = udp_in(&l.right, &format!("{}:9001", l.b_addr));
    let miss = udp_in(&l.right, &format!("{}:9002", l.b_addr));
    let base_hit = low_rtt(&udp_rtts(&hit, echo.addr, 40, ms(10), ms(1000)));
    let base_miss = low_rtt(&udp_rtts(&miss, echo.addr, 40, ms(10), ms(1000)));
    let tc = Tc::connect(&l.left.target()).await.unwrap();
    let mut f = delay_fault(&l.a, 50);
    f.selection = Selection {
        dst: vec![format!("{}/32", l.b_addr).parse().unwrap()],
        dport: Some("9001".parse().unwrap()),
        protocol: Some("udp".parse().unwrap()),
        ..Default::default()
    };
    let undo = tc.apply(&f).await.unwrap();
    let with_hit = low_rtt(&udp_rtts(&hit, echo.addr, 40, ms(10), ms(1000)));
    let with_miss = low_rtt(&udp_rtts(&miss, echo.addr, 40, ms(10), ms(1000)));
    revert(&undo).await.unwrap();
    assert_added("matching flow", base_hit, with_hit, ms(50));
    assert!(
        with_miss < base_miss + ms(5),
        "other flow: {base_miss:?} -> {with_miss:?}"
    );
}

/// `--direction ingress`: incoming packets are delayed (through an IFB); revert removes
/// the redirect, the ingress qdisc and the IFB.
#[tokio::test]
async fn ingress_delays_incoming_packets() {
    require!("root");
    need_tc!("netem", "ifb", "u32", "mirred");
    let l = Link::new();
    let echo = Echo::start(&l.left, &format!("{}:7007", l.a_addr));
    let client = udp_in(&l.right, "0.0.0.0:0");
    let base = low_rtt(&udp_rtts(&client, echo.addr, 40, ms(10), ms(1000)));
    let tc = Tc::connect(&l.left.target()).await.unwrap();
    let mut f = delay_fault(&l.a, 50);
    f.direction = Direction::Ingress;
    let undo = tc.apply(&f).await.unwrap();
    let ifb = undo.ifb.clone().expect("an IFB");
    assert!(l.left.links().contains(&ifb.name));
    let with = low_rtt(&udp_rtts(&client, echo.addr, 40, ms(10), ms(1000)));
    assert_added("ingress delay 50ms", base, with, ms(50));
    // Our own side's egress is untouched: the delay is on the way in.
    assert_eq!(l.left.root_kind(&l.a), "noqueue");
    assert_eq!(revert(&undo).await.unwrap(), Reverted::Restored);
    assert!(!l.left.links().contains(&ifb.name));
    assert!(
        l.left
            .tc(&["qdisc", "show", "dev", &l.a, "ingress"])
            .trim()
            .is_empty()
    );
    let after = low_rtt(&udp_rtts(&client, echo.addr, 40, ms(10), ms(1000)));
    assert!(
        after < base + ms(5),
        "after revert {after:?} vs before {base:?}"
    );
}

/// A fault in the namespace of a process (`--pid`) affects that namespace only.
#[tokio::test]
async fn pid_namespace_fault_stays_there() {
    require!("root");
    need_tc!("netem");
    let target = Link::new();
    let other = Link::new();
    let mut child = faultline_tests::agent::KillOnDrop::new(
        std::process::Command::new(common::program("ip"))
            .args(["netns", "exec", &target.left.name, "sleep", "60"])
            .spawn()
            .unwrap(),
    );
    let want = target.left.target().identity().unwrap();
    let pid = NetnsTarget::Pid(child.id());
    for _ in 0..400 {
        if pid.identity().ok() == Some(want) {
            break;
        }
        std::thread::sleep(ms(5));
    }
    let e1 = Echo::start(&target.left, &format!("{}:7007", target.a_addr));
    let e2 = Echo::start(&other.left, &format!("{}:7007", other.a_addr));
    let c1 = udp_in(&target.right, "0.0.0.0:0");
    let c2 = udp_in(&other.right, "0.0.0.0:0");
    let (b1, b2) = (
        low_rtt(&udp_rtts(&c1, e1.addr, 30, ms(10), ms(1000))),
        low_rtt(&udp_rtts(&c2, e2.addr, 30, ms(10), ms(1000))),
    );
    // Both links use the same interface names? No: unique names; apply on the target's.
    let tc = Tc::connect(&pid).await.unwrap();
    let undo = tc.apply(&delay_fault(&target.a, 50)).await.unwrap();
    assert_eq!(undo.netns, pid);
    let (w1, w2) = (
        low_rtt(&udp_rtts(&c1, e1.addr, 30, ms(10), ms(1000))),
        low_rtt(&udp_rtts(&c2, e2.addr, 30, ms(10), ms(1000))),
    );
    assert_eq!(revert(&undo).await.unwrap(), Reverted::Restored);
    let _ = child.kill();
    let _ = child.wait();
    assert_added("pid namespace", b1, w1, ms(50));
    assert!(w2 < b2 + ms(5), "the other namespace: {b2:?} -> {w2:?}");
    assert_eq!(other.left.root_kind(&other.a), "noqueue");
}

/// `bench-net` smoked with 2 cycles (it needs netem, so it runs here, in the VM tier;
/// tests/bench-smoke runs the other benchmarks on the host): a benchmark that no longer
/// runs fails the tier. Its figures are printed, never judged.
#[test]
fn bench_net_runs() {
    require!("root");
    need_tc!("netem");
    let out = std::process::Command::new(faultline_tests::bin("bench-net"))
        .args(["--n", "2"])
        .output()
        .expect("run bench-net");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "bench-net failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("gRPC via faultctl's client"), "{stdout}");
}

/// `bench-exempt` (protected traffic's cost) smoked with 2 cycles, for the same reason.
#[test]
fn bench_exempt_runs() {
    require!("root");
    need_tc!("netem");
    let out = std::process::Command::new(faultline_tests::bin("bench-exempt"))
        .args(["--n", "2"])
        .output()
        .expect("run bench-exempt");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "bench-exempt failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("whole interface, ingress"), "{stdout}");
}
