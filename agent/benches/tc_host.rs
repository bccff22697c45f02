//! Host benchmark: apply + revert of a tbf root on a veth in a scratch network namespace,
//! through faultline's netlink layer versus spawning `tc` for the same change
//! (`tc -n NS qdisc replace dev X root handle fa17: tbf rate 10mbit burst 32kbit latency
//! 400ms` then `tc -n NS qdisc del dev X root`). The host kernel has tbf but not netem.
//! Prints p50/p99 over 200 cycles and their ratios; asserts nothing.
//!
//! Run as root: `cargo bench -p faultline-agent --bench tc_host`

use std::process::Command;
use std::time::{Duration, Instant};

use faultline_agent::sys::netns::NetnsTarget;
use faultline_agent::sys::tc::{
    Direction, NetFault, Netem, Selection, Tbf, TbfLimit, Tc, probe_kernel, revert,
};

const CYCLES: usize = 200;

fn sh(args: &[&str]) {
    let s = Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect("spawn");
    assert!(s.success(), "{args:?} failed");
}

struct Ns(String);
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut v: Vec<Duration>) -> (Duration, Duration) {
    let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
    println!(
        "{name:<58} p50 {:>9.1} us   p99 {:>9.1} us",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
    (p50, p99)
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("tc_host: skipped, needs root (network namespaces)");
        return;
    }
    let ns = Ns(format!("flbench{}", std::process::id()));
    sh(&["ip", "netns", "add", &ns.0]);
    sh(&[
        "ip", "-n", &ns.0, "link", "add", "flbv0", "type", "veth", "peer", "name", "flbv1",
    ]);
    sh(&["ip", "-n", &ns.0, "link", "set", "flbv0", "up"]);
    let target = NetnsTarget::Named(ns.0.clone());
    let tbf = Tbf {
        bytes_per_sec: 1_250_000,
        burst: 4096,
        limit: TbfLimit::Latency(Duration::from_millis(400)),
        mtu: 0,
        mpu: 0,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // faultline, one connection kept open (as the agent keeps one per namespace).
    let netlink = rt.block_on(async {
        let tc = Tc::connect(&target).await.unwrap();
        let idx = tc.ifindex("flbv0").await.unwrap();
        for _ in 0..20 {
            tc.replace_root_tbf(idx, &tbf).await.unwrap();
            tc.delete_root(idx).await.unwrap();
        }
        let mut v = Vec::with_capacity(CYCLES);
        for _ in 0..CYCLES {
            let t = Instant::now();
            tc.replace_root_tbf(idx, &tbf).await.unwrap();
            assert!(tc.delete_root(idx).await.unwrap());
            v.push(t.elapsed());
        }
        v
    });
    // faultline, a fresh connection (setns thread + socket) and ifindex lookup per cycle.
    let fresh = rt.block_on(async {
        let mut v = Vec::with_capacity(CYCLES);
        for _ in 0..CYCLES {
            let t = Instant::now();
            let tc = Tc::connect(&target).await.unwrap();
            let idx = tc.ifindex("flbv0").await.unwrap();
            tc.replace_root_tbf(idx, &tbf).await.unwrap();
            assert!(tc.delete_root(idx).await.unwrap());
            v.push(t.elapsed());
        }
        v
    });
    // tc: two process spawns per cycle.
    let tc_args_add = [
        "-n", &ns.0, "qdisc", "replace", "dev", "flbv0", "root", "handle", "fa17:", "tbf", "rate",
        "10mbit", "burst", "32kbit", "latency", "400ms",
    ];
    let tc_args_del = ["-n", &ns.0, "qdisc", "del", "dev", "flbv0", "root"];
    for _ in 0..10 {
        sh(&[&["tc"][..], &tc_args_add].concat());
        sh(&[&["tc"][..], &tc_args_del].concat());
    }
    let mut spawn = Vec::with_capacity(CYCLES);
    let mut one_spawn = Vec::with_capacity(CYCLES);
    for _ in 0..CYCLES {
        let t = Instant::now();
        let s = Command::new("tc").args(tc_args_add).status().unwrap();
        let t1 = t.elapsed();
        let s2 = Command::new("tc").args(tc_args_del).status().unwrap();
        spawn.push(t.elapsed());
        one_spawn.push(t1);
        assert!(s.success() && s2.success());
    }

    println!("tc_host: apply + revert of a tbf root on a veth, {CYCLES} cycles each");
    let (n50, n99) = report("faultline netlink (open connection)", netlink);
    let (f50, f99) = report("faultline netlink (connect + ifindex each cycle)", fresh);
    let (s50, s99) = report("spawn `tc qdisc replace` + `tc qdisc del`", spawn);
    let (o50, _) = report("  of which one `tc qdisc replace` spawn", one_spawn);
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "ratio netlink/tc           p50 {:.3}   p99 {:.3}",
        r(n50, s50),
        r(n99, s99)
    );
    println!(
        "ratio netlink+connect/tc   p50 {:.3}   p99 {:.3}",
        r(f50, s50),
        r(f99, s99)
    );
    println!("ratio netlink/one tc spawn p50 {:.3}", r(n50, o50));

    // Where the kernel has netem (the VM tier), the same for a netem fault through
    // Tc::apply + revert (with its checks, journal-ready Undo and fresh revert
    // connection) versus `tc qdisc replace ... netem delay 50ms` + `tc qdisc del`.
    let support = rt.block_on(probe_kernel()).unwrap();
    if let Err(why) = support.netem {
        println!("netem: skipped ({why})");
        return;
    }
    let fault = NetFault {
        iface: "flbv0".into(),
        direction: Direction::Egress,
        netem: Netem::fixed_delay(Duration::from_millis(50)),
        selection: Selection::default(),
    };
    let (open, reconnect) = rt.block_on(async {
        let tc = Tc::connect(&target).await.unwrap();
        let (mut open, mut reconnect) = (Vec::with_capacity(CYCLES), Vec::with_capacity(CYCLES));
        for i in 0..CYCLES + 10 {
            let t = Instant::now();
            let undo = tc.apply(&fault).await.unwrap();
            tc.revert(&undo).await.unwrap();
            let d = t.elapsed();
            let t = Instant::now();
            let undo = tc.apply(&fault).await.unwrap();
            revert(&undo).await.unwrap();
            if i >= 10 {
                open.push(d);
                reconnect.push(t.elapsed());
            }
        }
        (open, reconnect)
    });
    let add = [
        "-n", &ns.0, "qdisc", "replace", "dev", "flbv0", "root", "handle", "fa17:", "netem",
        "delay", "50ms",
    ];
    let mut spawn = Vec::with_capacity(CYCLES);
    for i in 0..CYCLES + 10 {
        let t = Instant::now();
        let s = Command::new("tc").args(add).status().unwrap();
        let s2 = Command::new("tc").args(tc_args_del).status().unwrap();
        assert!(s.success() && s2.success());
        if i >= 10 {
            spawn.push(t.elapsed());
        }
    }
    println!("netem: apply + revert of `delay 50ms` on a veth, {CYCLES} cycles each");
    let (a50, a99) = report("faultline Tc::apply + Tc::revert (open connection)", open);
    let (c50, c99) = report(
        "faultline Tc::apply + revert() (connects to revert)",
        reconnect,
    );
    let (s50, s99) = report("spawn `tc qdisc replace ... netem` + `tc qdisc del`", spawn);
    println!(
        "ratio apply+revert/tc      p50 {:.3}   p99 {:.3}",
        r(a50, s50),
        r(a99, s99)
    );
    println!(
        "ratio apply+revert()/tc    p50 {:.3}   p99 {:.3}",
        r(c50, s50),
        r(c99, s99)
    );
}
