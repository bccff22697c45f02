//! Host-tier network tests: faultline's netlink tc layer against the real kernel, each
//! test in its own network namespace(s). What the host kernel has (tbf, u32, mirred,
//! ifb, ingress) is exercised for real; netem/prio are checked to fail with a clear
//! missing-module error where the kernel lacks them (and to work where it has them).

#[path = "net_common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Link, Pair, kernel};
use faultline_agent::sys::netns::NetnsTarget;
use faultline_agent::sys::tc::{
    Chance, Direction, IfbRecord, Loss, NetError, NetFault, Netem, Percent, Reverted, Selection,
    Tbf, TbfLimit, Tc, U32Match, Undo, revert,
};
use faultline_tests::require;

const FA17: u32 = 0xfa17_0000;

fn delay_fault(iface: &str) -> NetFault {
    NetFault {
        iface: iface.into(),
        direction: Direction::Egress,
        netem: Netem::fixed_delay(Duration::from_millis(50)),
        selection: Selection::default(),
    }
}

fn tcp_80_to(cidr: &str) -> Selection {
    Selection {
        dst: vec![cidr.parse().unwrap()],
        dport: Some("80".parse().unwrap()),
        protocol: Some("tcp".parse().unwrap()),
        ..Default::default()
    }
}

/// tbf encoded by faultline, applied through netlink, read back by `tc -j`, equals what
/// `tc` itself installs for the same parameters on a twin veth; deleting our root
/// restores the kernel default.
#[tokio::test]
async fn tbf_through_netlink_reads_back_like_tc() {
    require!("root");
    need_tc!("tbf");
    let p = Pair::new();
    let tc = Tc::connect(&p.ns.target()).await.unwrap();
    let idx = tc.ifindex(&p.a).await.unwrap();
    let before = p.ns.root_kind(&p.a);
    // rate 10mbit burst 32kbit latency 400ms
    let tbf = Tbf {
        bytes_per_sec: 1_250_000,
        burst: 4096,
        limit: TbfLimit::Latency(Duration::from_millis(400)),
        mtu: 0,
        mpu: 0,
    };
    tc.replace_root_tbf(idx, &tbf).await.unwrap();
    p.ns.tc(&[
        "qdisc", "replace", "dev", &p.b, "root", "handle", "fa17:", "tbf", "rate", "10mbit",
        "burst", "32kbit", "latency", "400ms",
    ]);
    let ours = p.ns.qdiscs_json(&p.a);
    let twin = p.ns.qdiscs_json(&p.b);
    let root = |j: &serde_json::Value| {
        j.as_array()
            .unwrap()
            .iter()
            .find(|q| q["root"] == true)
            .cloned()
            .unwrap()
    };
    let (o, t) = (root(&ours), root(&twin));
    assert_eq!(o["kind"], "tbf");
    assert_eq!(o["handle"], "fa17:");
    assert_eq!(o["options"], t["options"], "ours {o} vs tc's {t}");
    assert_eq!(o["options"]["rate"], 1_250_000);
    // Our own dump reader agrees.
    let q = tc.root_qdisc(idx).await.unwrap().unwrap();
    assert_eq!((q.kind.as_str(), q.handle), ("tbf", FA17));
    assert_eq!(
        Tbf::decode_rate_limit(q.options.as_deref().unwrap()).map(|r| r.0),
        Some(1_250_000)
    );

    assert!(tc.delete_root(idx).await.unwrap());
    assert_eq!(p.ns.root_kind(&p.a), before);
    assert!(
        !tc.delete_root(idx).await.unwrap(),
        "a second delete finds nothing of ours"
    );
}

/// faultline's u32 filters (IPv4 and IPv6, prefix + protocol + port range) read back by
/// `tc filter show` exactly like the filters `tc` makes from the equivalent command
/// lines, under an htb root (the host has no prio).
#[tokio::test]
async fn u32_filters_read_back_like_tc() {
    require!("root");
    need_tc!("u32");
    let p = Pair::new();
    for dev in [&p.a, &p.b] {
        p.ns.tc(&["qdisc", "add", "dev", dev, "root", "handle", "1:", "htb"]);
    }
    let tc = Tc::connect(&p.ns.target()).await.unwrap();
    let idx = tc.ifindex(&p.a).await.unwrap();
    let sel = Selection {
        dst: vec![
            "10.1.0.0/16".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        dport: Some("80-81".parse().unwrap()),
        protocol: Some("tcp".parse().unwrap()),
        ..Default::default()
    };
    let matches = sel.matches().unwrap();
    assert_eq!(matches.len(), 2, "one IPv4 and one IPv6 filter");
    for m in &matches {
        let prio = if m.protocol == 0x0800 { 1 } else { 2 };
        tc.add_u32_filter(idx, 0x1_0000, prio, m, 0x1_0004)
            .await
            .unwrap();
    }
    let f = |args: &str| {
        let mut v = vec!["filter", "add", "dev", &p.b, "parent", "1:"];
        v.extend(args.split_whitespace());
        p.ns.tc(&v);
    };
    f(
        "protocol ip prio 1 u32 match ip dst 10.1.0.0/16 match ip protocol 6 0xff match ip dport 80 0xfffe flowid 1:4",
    );
    f(
        "protocol ipv6 prio 2 u32 match ip6 dst 2001:db8::/32 match ip6 protocol 6 0xff match ip6 dport 80 0xfffe flowid 1:4",
    );
    let ours = p.ns.tc(&["filter", "show", "dev", &p.a]);
    let twin = p.ns.tc(&["filter", "show", "dev", &p.b]);
    assert!(ours.contains("match 0a010000/ffff0000 at 16"), "{ours}");
    assert_eq!(ours, twin);
    let dumped = tc.filters(idx, 0x1_0000).await.unwrap();
    let real: Vec<_> = dumped.iter().filter(|f| f.classid.is_some()).collect();
    assert_eq!(real.len(), 2, "{dumped:?}");
    assert!(
        real.iter()
            .all(|f| f.classid == Some(0x1_0004) && f.kind == "u32")
    );
}

/// An IFB device, an ingress qdisc and a u32 match-all filter with a mirred redirect,
/// made through netlink: `tc` reads the redirect back, packets arriving on the
/// interface really pass through the IFB, and revert removes all of it.
#[tokio::test]
async fn ingress_redirect_to_ifb_for_real() {
    require!("root");
    need_tc!("ifb", "u32", "mirred");
    let l = Link::new();
    let tc = Tc::connect(&l.left.target()).await.unwrap();
    let idx = tc.ifindex(&l.a).await.unwrap();
    // flifb + 10 hex digits: at most 15 bytes, an interface name's limit.
    let ifb_name = format!("flifb{}", &faultline_tests::unique_name("x")[2..]);
    let ifb = tc.create_ifb(&ifb_name).await.unwrap();
    tc.add_ingress(idx).await.unwrap();
    tc.redirect_ingress(idx, ifb).await.unwrap();

    let shown = l.left.tc(&["filter", "show", "dev", &l.a, "ingress"]);
    assert!(
        shown.contains(&format!(
            "mirred (Egress Redirect to device {ifb_name}) stolen"
        )),
        "{shown}"
    );
    assert!(shown.contains("match 00000000/00000000 at 0"), "{shown}");
    let dumped = tc.filters(idx, 0xffff_0000).await.unwrap();
    assert!(
        dumped.iter().any(|f| f.redirect_to == Some(ifb)),
        "{dumped:?}"
    );
    assert!(l.left.links().contains(&ifb_name));

    let tx = || -> u64 {
        l.left
            .exec(&[
                "cat",
                &format!("/sys/class/net/{ifb_name}/statistics/tx_packets"),
            ])
            .trim()
            .parse()
            .unwrap()
    };
    let echo = common::Echo::start(&l.left, &format!("{}:7007", l.a_addr));
    let client = common::udp_in(&l.right, "0.0.0.0:0");
    let before = tx();
    let rtts = common::udp_rtts(
        &client,
        echo.addr,
        5,
        Duration::from_millis(20),
        Duration::from_secs(2),
    );
    let after = tx();
    assert!(
        rtts.iter().all(|r| r.is_some()),
        "every probe came back through the IFB: {rtts:?}"
    );
    assert!(
        after >= before + 5,
        "the IFB forwarded {} packets, expected at least the 5 probes",
        after - before
    );

    let undo = Undo {
        netns: l.left.target(),
        netns_id: l.left.target().identity().unwrap(),
        iface: l.a.clone(),
        ifindex: idx,
        direction: Direction::Ingress,
        previous_root: "noqueue".into(),
        installed_root: "none".into(),
        filters: 0,
        exemptions: 0,
        ifb: Some(IfbRecord {
            name: ifb_name.clone(),
            ifindex: ifb,
        }),
    };
    assert_eq!(revert(&undo).await.unwrap(), Reverted::Restored);
    assert!(!l.left.links().contains(&ifb_name), "the IFB is gone");
    assert_eq!(tc.ingress_qdisc(idx).await.unwrap(), None);
    assert!(
        l.left
            .tc(&["filter", "show", "dev", &l.a, "ingress"])
            .trim()
            .is_empty()
    );
    // Traffic still flows without the redirect.
    let rtts = common::udp_rtts(
        &client,
        echo.addr,
        3,
        Duration::from_millis(10),
        Duration::from_secs(2),
    );
    assert!(rtts.iter().all(|r| r.is_some()), "{rtts:?}");
    // Reverting again is harmless.
    assert!(matches!(
        revert(&undo).await.unwrap(),
        Reverted::AlreadyGone(_)
    ));
}

/// An operator's own tbf root (made with `tc`) is refused, named, and left exactly as it
/// was; same for an existing ingress qdisc when the fault is an ingress one.
#[tokio::test]
async fn foreign_roots_are_refused_and_untouched() {
    require!("root");
    need_tc!("tbf");
    let p = Pair::new();
    p.ns.tc(&[
        "qdisc", "add", "dev", &p.a, "root", "handle", "1:", "tbf", "rate", "1mbit", "burst",
        "32kbit", "latency", "400ms",
    ]);
    let before = p.ns.qdiscs_json(&p.a);
    let tc = Tc::connect(&p.ns.target()).await.unwrap();
    for selection in [Selection::default(), tcp_80_to("10.0.0.0/8")] {
        let fault = NetFault {
            selection,
            ..delay_fault(&p.a)
        };
        let err = tc.apply(&fault).await.unwrap_err();
        match &err {
            NetError::ForeignRootQdisc {
                iface,
                kind,
                handle,
                place,
            } => {
                assert_eq!(
                    (iface.as_str(), kind.as_str(), handle.as_str(), *place),
                    (p.a.as_str(), "tbf", "1:", "root")
                );
            }
            other => panic!("expected ForeignRootQdisc, got {other:?}"),
        }
        assert!(
            err.to_string().contains("foreign tbf qdisc (handle 1:)"),
            "{err}"
        );
        assert_eq!(p.ns.qdiscs_json(&p.a), before, "state unchanged");
    }

    p.ns.tc(&["qdisc", "add", "dev", &p.b, "handle", "ffff:", "ingress"]);
    let before_b = p.ns.qdiscs_json(&p.b);
    let fault = NetFault {
        direction: Direction::Ingress,
        ..delay_fault(&p.b)
    };
    let err = tc.apply(&fault).await.unwrap_err();
    assert!(
        matches!(&err, NetError::ForeignRootQdisc { kind, place: "ingress", .. } if kind == "ingress"),
        "{err:?}"
    );
    assert_eq!(p.ns.qdiscs_json(&p.b), before_b);
    assert!(!p.ns.links().contains("flifb"), "no IFB left behind");

    // An operator's own pfifo (a default kind, but given a handle by tc) is foreign.
    let q = Pair::new();
    q.ns.tc(&[
        "qdisc", "replace", "dev", &q.a, "root", "pfifo", "limit", "777",
    ]);
    let before = q.ns.qdiscs_json(&q.a);
    let tc = Tc::connect(&q.ns.target()).await.unwrap();
    let err = tc.apply(&delay_fault(&q.a)).await.unwrap_err();
    assert!(
        matches!(&err, NetError::ForeignRootQdisc { kind, .. } if kind == "pfifo"),
        "{err:?}"
    );
    assert_eq!(q.ns.qdiscs_json(&q.a), before);
}

/// netem (and prio, for a selection) either work, or fail naming the missing module
/// with nothing left behind: on this host kernel, the latter.
#[tokio::test]
async fn netem_and_prio_work_or_name_the_missing_module() {
    require!("root");
    let k = kernel();
    let p = Pair::new();
    let tc = Tc::connect(&p.ns.target()).await.unwrap();
    let idx = tc.ifindex(&p.a).await.unwrap();
    let before = p.ns.qdiscs_json(&p.a);

    let mut fault = delay_fault(&p.a);
    fault.netem.loss = Some(Loss::Random(Chance {
        probability: Percent::new(20.0).unwrap(),
        correlation: Percent::ZERO,
    }));
    match (tc.apply(&fault).await, &k.netem) {
        (Err(NetError::MissingKernelModule { module, .. }), Err(_)) => {
            assert_eq!(module, "sch_netem");
            assert_eq!(p.ns.qdiscs_json(&p.a), before, "nothing changed");
        }
        (Ok(undo), Ok(())) => {
            let got = tc
                .netem_state(idx)
                .await
                .unwrap()
                .expect("netem is installed");
            assert_eq!(got, fault.netem);
            assert_eq!(revert(&undo).await.unwrap(), Reverted::Restored);
            assert_eq!(p.ns.qdiscs_json(&p.a), before);
        }
        (r, k) => panic!("apply gave {r:?} but the probe says netem: {k:?}"),
    }
    let err_text = NetError::MissingKernelModule {
        module: "sch_netem".into(),
        what: "install a netem root qdisc".into(),
    }
    .to_string();
    assert_eq!(
        err_text,
        "this kernel has no sch_netem (needed to install a netem root qdisc): load it with `modprobe sch_netem` or use a kernel that has it"
    );

    let sel_fault = NetFault {
        selection: tcp_80_to("10.9.0.0/16"),
        ..fault.clone()
    };
    match (tc.apply(&sel_fault).await, &k.prio, &k.netem) {
        (Err(NetError::MissingKernelModule { module, .. }), Err(_), _) => {
            assert_eq!(module, "sch_prio")
        }
        (Err(NetError::MissingKernelModule { module, .. }), Ok(()), Err(_)) => {
            assert_eq!(module, "sch_netem")
        }
        (Ok(undo), Ok(()), Ok(())) => {
            assert_eq!(undo.installed_root, "prio");
            assert_eq!(revert(&undo).await.unwrap(), Reverted::Restored);
        }
        (r, kp, kn) => panic!("apply gave {r:?}; probe: prio {kp:?}, netem {kn:?}"),
    }
    assert_eq!(p.ns.qdiscs_json(&p.a), before, "nothing left behind");

    let in_fault = NetFault {
        direction: Direction::Ingress,
        ..fault
    };
    if k.netem.is_err() {
        let err = tc.apply(&in_fault).await.unwrap_err();
        assert!(
            matches!(&err, NetError::MissingKernelModule { module, .. } if module == "sch_netem"),
            "{err:?}"
        );
        assert!(!p.ns.links().contains("flifb"), "the IFB was removed again");
        assert_eq!(tc.ingress_qdisc(idx).await.unwrap(), None);
    }
}

fn tbf_undo(ns: &NetnsTarget, iface: &str, ifindex: u32) -> Undo {
    Undo {
        netns: ns.clone(),
        netns_id: ns.identity().unwrap(),
        iface: iface.into(),
        ifindex,
        direction: Direction::Egress,
        previous_root: "noqueue".into(),
        installed_root: "tbf".into(),
        filters: 0,
        exemptions: 0,
        ifb: None,
    }
}

/// Revert restores the default; a vanished interface or namespace counts as reverted
/// (a distinct Ok outcome), and so does reverting twice.
#[tokio::test]
async fn revert_restores_and_vanished_targets_count_as_reverted() {
    require!("root");
    need_tc!("tbf");
    let tbf = Tbf {
        bytes_per_sec: 125_000,
        burst: 1600,
        limit: TbfLimit::Bytes(3000),
        mtu: 0,
        mpu: 0,
    };

    // Normal revert, then again.
    let p = Pair::new();
    let tc = Tc::connect(&p.ns.target()).await.unwrap();
    let idx = tc.ifindex(&p.a).await.unwrap();
    tc.replace_root_tbf(idx, &tbf).await.unwrap();
    let undo = tbf_undo(&p.ns.target(), &p.a, idx);
    assert_eq!(revert(&undo).await.unwrap(), Reverted::Restored);
    assert_eq!(p.ns.root_kind(&p.a), "noqueue");
    assert!(
        matches!(tc.revert(&undo).await.unwrap(), Reverted::AlreadyGone(w) if w.contains("root qdisc"))
    );
    // Through an open connection too, but only one in the undo's namespace.
    tc.replace_root_tbf(idx, &tbf).await.unwrap();
    let elsewhere = Tc::connect(&NetnsTarget::Current).await.unwrap();
    assert!(matches!(
        elsewhere.revert(&undo).await,
        Err(NetError::InvalidParameter { .. })
    ));
    assert_eq!(tc.revert(&undo).await.unwrap(), Reverted::Restored);
    assert_eq!(p.ns.root_kind(&p.a), "noqueue");

    // The interface disappears.
    tc.replace_root_tbf(idx, &tbf).await.unwrap();
    p.ns.ip(&["link", "del", &p.a]);
    match revert(&undo).await.unwrap() {
        Reverted::AlreadyGone(w) => assert!(w.contains(&p.a), "{w}"),
        r => panic!("{r:?}"),
    }

    // The namespace disappears.
    let mut q = Pair::new();
    let tc = Tc::connect(&q.ns.target()).await.unwrap();
    let idx = tc.ifindex(&q.a).await.unwrap();
    tc.replace_root_tbf(idx, &tbf).await.unwrap();
    let undo = tbf_undo(&q.ns.target(), &q.a, idx);
    drop(tc);
    q.ns.delete();
    match revert(&undo).await.unwrap() {
        Reverted::AlreadyGone(w) => assert!(w.contains("no longer exists"), "{w}"),
        r => panic!("{r:?}"),
    }

    // Undo survives the journal (serde) unchanged.
    let json = serde_json::to_string(&undo).unwrap();
    assert_eq!(serde_json::from_str::<Undo>(&json).unwrap(), undo);
}

/// A namespace named by a process id is the process's: the interface is found there
/// and not in the test's own namespace.
#[tokio::test]
async fn pid_target_acts_in_the_process_namespace() {
    require!("root");
    let p = Pair::new();
    let mut child = faultline_tests::agent::KillOnDrop::new(
        std::process::Command::new(common::program("ip"))
            .args(["netns", "exec", &p.ns.name, "sleep", "30"])
            .spawn()
            .unwrap(),
    );
    // `ip netns exec` execs the command in place: wait until the pid is in the namespace.
    let want = p.ns.target().identity().unwrap();
    let pid = NetnsTarget::Pid(child.id());
    for _ in 0..200 {
        if pid.identity().ok() == Some(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let tc = Tc::connect(&pid).await.unwrap();
    assert!(tc.ifindex(&p.a).await.is_ok());
    let here = Tc::connect(&NetnsTarget::Current).await.unwrap();
    let err = here.ifindex(&p.a).await.unwrap_err();
    assert!(matches!(err, NetError::UnknownInterface { .. }), "{err:?}");
    assert!(err.to_string().contains(&p.a));
    let _ = child.kill();
    let _ = child.wait();
    // A namespace path that does not exist is a clear error, not a panic.
    let err = Tc::connect(&NetnsTarget::Named("faultline-no-such-ns".into()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("faultline-no-such-ns"), "{err}");
}

/// Bad input is refused before anything changes.
#[tokio::test]
async fn bad_input_changes_nothing() {
    require!("root");
    let p = Pair::new();
    let tc = Tc::connect(&p.ns.target()).await.unwrap();
    let before = p.ns.qdiscs_json(&p.a);
    let err = tc.apply(&delay_fault("flnosuchif0")).await.unwrap_err();
    assert!(
        matches!(&err, NetError::UnknownInterface { iface, .. } if iface == "flnosuchif0"),
        "{err:?}"
    );
    let mut jitter_only = delay_fault(&p.a);
    jitter_only.netem.delay.as_mut().unwrap().latency = Duration::ZERO;
    jitter_only.netem.delay.as_mut().unwrap().jitter = Duration::from_millis(5);
    let mut zero_rate = delay_fault(&p.a);
    zero_rate.netem.rate = Some(Default::default());
    let mut too_long = delay_fault(&p.a);
    too_long.netem.delay.as_mut().unwrap().latency = Duration::from_secs(3600);
    for f in [jitter_only, zero_rate, too_long] {
        let err = tc.apply(&f).await.unwrap_err();
        assert!(matches!(err, NetError::InvalidParameter { .. }), "{err:?}");
    }
    assert!(
        "10.0.0.0/40"
            .parse::<faultline_agent::sys::tc::Cidr>()
            .is_err()
    );
    assert!(
        "90-80"
            .parse::<faultline_agent::sys::tc::PortRange>()
            .is_err()
    );
    assert!(Percent::new(120.0).is_none());
    assert_eq!(p.ns.qdiscs_json(&p.a), before);
}

/// The probe runs in a throwaway namespace and finds what this host has.
#[tokio::test]
async fn probe_reports_what_the_kernel_has() {
    require!("root");
    let k = kernel();
    eprintln!("kernel support: {k:?}");
    for (name, r) in [
        ("tbf", &k.tbf),
        ("u32", &k.u32),
        ("mirred", &k.mirred),
        ("ifb", &k.ifb),
    ] {
        // Every kernel faultline targets has these; the host's kernel notes say so too.
        assert!(r.is_ok(), "{name}: {r:?}");
    }
    if let Err(w) = &k.netem {
        assert!(w.contains("sch_netem"), "{w}");
    }
    let _ = U32Match::all();
}

/// The sweep finds faultline's leftovers by their tags alone (no journal) and removes
/// them, leaving the operator's own qdiscs alone.
#[tokio::test]
async fn sweep_removes_tagged_leftovers_only() {
    require!("root");
    need_tc!("tbf", "ifb", "u32", "mirred");
    let p = Pair::new();
    let tc = Tc::connect(&p.ns.target()).await.unwrap();
    let (ia, ib) = (
        tc.ifindex(&p.a).await.unwrap(),
        tc.ifindex(&p.b).await.unwrap(),
    );
    let tbf = Tbf {
        bytes_per_sec: 125_000,
        burst: 1600,
        limit: TbfLimit::Bytes(3000),
        mtu: 0,
        mpu: 0,
    };
    tc.replace_root_tbf(ia, &tbf).await.unwrap();
    p.ns.tc(&[
        "qdisc", "add", "dev", &p.b, "root", "handle", "1:", "tbf", "rate", "1mbit", "burst",
        "32kbit", "latency", "400ms",
    ]);
    let ifb_name = format!("flifb{}", &faultline_tests::unique_name("x")[2..]);
    let ifb = tc.create_ifb(&ifb_name).await.unwrap();
    tc.add_ingress(ib).await.unwrap();
    tc.redirect_ingress(ib, ifb).await.unwrap();
    let operator_b = p.ns.tc(&["qdisc", "show", "dev", &p.b, "root"]);

    let done = tc.sweep().await.unwrap();
    assert_eq!(done.len(), 3, "{done:?}");
    assert_eq!(p.ns.root_kind(&p.a), "noqueue");
    assert_eq!(tc.ingress_qdisc(ib).await.unwrap(), None);
    assert!(!p.ns.links().contains(&ifb_name));
    assert_eq!(
        p.ns.tc(&["qdisc", "show", "dev", &p.b, "root"]),
        operator_b,
        "the operator's tbf stays"
    );
    assert!(
        tc.sweep().await.unwrap().is_empty(),
        "nothing left the second time"
    );
}
