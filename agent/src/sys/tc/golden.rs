//! Golden tests: faultline's requests against the bytes iproute2's own `tc` sent for the
//! same command line (fixtures captured by `testdata/capture.sh`). Only nlmsg_seq,
//! nlmsg_pid and tcmsg's ifindex are ignored.

use std::time::Duration;

use super::dist::Distribution;
use super::filter::{
    Cidr, ETH_P_ALL, ETH_P_IP, ETH_P_IPV6, IpProto, PortRange, Selection, U32Match,
};
use super::msg::{self, INGRESS_HANDLE, INGRESS_PARENT, Mode, ROOT};
use super::netem::*;
use super::qdisc::{Prio, Tbf, TbfLimit};

const FA17: u32 = 0xfa17_0000;

struct Fixture {
    cmd: String,
    ifb_ifindex: Option<u32>,
    bytes: Vec<u8>,
}

fn fixture(name: &str) -> Fixture {
    let path = format!(
        "{}/src/sys/tc/testdata/{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut f = Fixture {
        cmd: String::new(),
        ifb_ifindex: None,
        bytes: vec![],
    };
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# cmd: ") {
            f.cmd = c.into();
        } else if let Some(i) = line.strip_prefix("# ifb-ifindex: ") {
            f.ifb_ifindex = Some(i.trim().parse().unwrap());
        } else if !line.starts_with('#') {
            let l = line.trim();
            f.bytes.extend(
                (0..l.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap()),
            );
        }
    }
    f
}

/// Zeroes seq (8..12), pid (12..16) and tcm_ifindex (20..24).
fn masked(mut b: Vec<u8>) -> Vec<u8> {
    for i in (8..16).chain(20..24) {
        if i < b.len() {
            b[i] = 0;
        }
    }
    b
}

fn hexdump(b: &[u8]) -> String {
    b.chunks(16)
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{:04x}: {}\n",
                i * 16,
                c.iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect()
}

fn check(name: &str, ours: Vec<u8>) {
    let f = fixture(name);
    let (want, got) = (masked(f.bytes), masked(ours));
    if want != got {
        let first = want
            .iter()
            .zip(&got)
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(got.len()));
        panic!(
            "{name}: our request differs from iproute2's for `{}` at byte {first} (lengths {} vs {})\nours:\n{}\niproute2:\n{}",
            f.cmd,
            got.len(),
            want.len(),
            hexdump(&got[..got.len().min(512)]),
            hexdump(&want[..want.len().min(512)])
        );
    }
}

fn pct(p: f64) -> Percent {
    Percent::new(p).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn netem_root(name: &str, n: Netem) {
    let m = msg::new_qdisc(
        Mode::Replace,
        3,
        ROOT,
        FA17,
        "netem",
        Some(n.encode().unwrap()),
    );
    check(name, msg::to_bytes(&m));
}

fn delay(latency: Duration, jitter: Duration, corr: f64, d: Distribution) -> Option<Delay> {
    Some(Delay {
        latency,
        jitter,
        correlation: pct(corr),
        distribution: d,
    })
}

#[test]
fn netem_delay() {
    netem_root(
        "netem_delay",
        Netem {
            delay: delay(ms(100), ms(0), 0.0, Distribution::Uniform),
            ..Default::default()
        },
    );
}

#[test]
fn netem_delay_jitter() {
    netem_root(
        "netem_delay_jitter",
        Netem {
            delay: delay(ms(20), ms(3), 0.0, Distribution::Uniform),
            ..Default::default()
        },
    );
}

#[test]
fn netem_delay_distributions() {
    netem_root(
        "netem_delay_normal",
        Netem {
            delay: delay(ms(100), ms(10), 25.0, Distribution::Normal),
            ..Default::default()
        },
    );
    netem_root(
        "netem_delay_pareto",
        Netem {
            delay: delay(ms(50), ms(20), 0.0, Distribution::Pareto),
            ..Default::default()
        },
    );
    netem_root(
        "netem_delay_paretonormal",
        Netem {
            delay: delay(ms(80), ms(5), 10.0, Distribution::ParetoNormal),
            ..Default::default()
        },
    );
}

#[test]
fn netem_loss_models() {
    netem_root(
        "netem_loss_random",
        Netem {
            loss: Some(Loss::Random(Chance {
                probability: pct(20.0),
                correlation: pct(25.0),
            })),
            ..Default::default()
        },
    );
    netem_root(
        "netem_loss_gemodel",
        Netem {
            loss: Some(Loss::GilbertElliott(GilbertElliott {
                p: pct(1.0),
                r: pct(10.0),
                loss_bad: pct(70.0),
                loss_good: pct(0.1),
            })),
            ..Default::default()
        },
    );
    netem_root(
        "netem_loss_state",
        Netem {
            loss: Some(Loss::FourState(FourState {
                p13: pct(1.0),
                p31: pct(10.0),
                p32: pct(20.0),
                p23: pct(5.0),
                p14: pct(0.5),
            })),
            ..Default::default()
        },
    );
    netem_root(
        "netem_loss_ecn",
        Netem {
            loss: Some(Loss::Random(Chance {
                probability: pct(1.0),
                correlation: Percent::ZERO,
            })),
            ecn: true,
            ..Default::default()
        },
    );
}

#[test]
fn netem_duplicate_corrupt_reorder() {
    // iproute2 6.1 drops the duplicate correlation (10%) unless another correlation is
    // given, so its bytes are those of `duplicate 5%`; see Netem::encode.
    netem_root(
        "netem_duplicate",
        Netem {
            duplicate: Some(Chance {
                probability: pct(5.0),
                correlation: Percent::ZERO,
            }),
            ..Default::default()
        },
    );
    netem_root(
        "netem_corrupt",
        Netem {
            corrupt: Some(Chance {
                probability: pct(0.1),
                correlation: pct(20.0),
            }),
            ..Default::default()
        },
    );
    netem_root(
        "netem_reorder",
        Netem {
            delay: delay(ms(10), ms(0), 0.0, Distribution::Uniform),
            reorder: Some(Reorder {
                probability: pct(25.0),
                correlation: pct(50.0),
                gap: 5,
            }),
            ..Default::default()
        },
    );
}

#[test]
fn netem_rate_limit_slot() {
    netem_root(
        "netem_rate",
        Netem {
            rate: Some(Rate {
                bytes_per_sec: 1_250_000,
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    netem_root(
        "netem_rate64",
        Netem {
            rate: Some(Rate {
                bytes_per_sec: 6_250_000_000,
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    netem_root(
        "netem_limit",
        Netem {
            limit: 5000,
            delay: delay(ms(30), ms(0), 0.0, Distribution::Uniform),
            ..Default::default()
        },
    );
    netem_root(
        "netem_slot",
        Netem {
            slot: Some(Slot {
                min_delay: Duration::from_micros(800),
                max_delay: Duration::from_micros(1200),
                max_packets: 8,
                max_bytes: 6000,
            }),
            ..Default::default()
        },
    );
}

#[test]
fn netem_combined() {
    netem_root(
        "netem_combined",
        Netem {
            limit: 2000,
            delay: delay(ms(100), ms(10), 25.0, Distribution::Uniform),
            loss: Some(Loss::Random(Chance {
                probability: pct(0.3),
                correlation: pct(25.0),
            })),
            duplicate: Some(Chance {
                probability: pct(1.0),
                correlation: Percent::ZERO,
            }),
            corrupt: Some(Chance {
                probability: pct(0.1),
                correlation: Percent::ZERO,
            }),
            reorder: Some(Reorder {
                probability: pct(5.0),
                correlation: pct(50.0),
                gap: 3,
            }),
            rate: Some(Rate {
                bytes_per_sec: 12_500_000,
                ..Default::default()
            }),
            ..Default::default()
        },
    );
}

#[test]
fn netem_child_of_prio() {
    let n = Netem {
        delay: delay(ms(50), ms(0), 0.0, Distribution::Uniform),
        loss: Some(Loss::Random(Chance {
            probability: pct(20.0),
            correlation: Percent::ZERO,
        })),
        ..Default::default()
    };
    let m = msg::new_qdisc(
        Mode::Replace,
        3,
        FA17 | 4,
        0xfa18_0000,
        "netem",
        Some(n.encode().unwrap()),
    );
    check("netem_child", msg::to_bytes(&m));
}

#[test]
fn prio_with_fault_band() {
    let m = msg::new_qdisc(
        Mode::Replace,
        3,
        ROOT,
        FA17,
        "prio",
        Some(Prio::with_fault_band().encode().unwrap()),
    );
    check("prio4", msg::to_bytes(&m));
}

fn tbf(name: &str, t: Tbf) {
    let m = msg::new_qdisc(
        Mode::Replace,
        3,
        ROOT,
        FA17,
        "tbf",
        Some(t.encode().unwrap()),
    );
    check(name, msg::to_bytes(&m));
}

#[test]
fn tbf_variants() {
    // rate 10mbit burst 32kbit latency 400ms
    tbf(
        "tbf_latency",
        Tbf {
            bytes_per_sec: 1_250_000,
            burst: 4096,
            limit: TbfLimit::Latency(ms(400)),
            mtu: 0,
            mpu: 0,
        },
    );
    // rate 1gbit burst 128k limit 100000
    tbf(
        "tbf_limit",
        Tbf {
            bytes_per_sec: 125_000_000,
            burst: 131072,
            limit: TbfLimit::Bytes(100000),
            mtu: 0,
            mpu: 0,
        },
    );
    // rate 50gbit burst 1m latency 50ms
    tbf(
        "tbf_rate64",
        Tbf {
            bytes_per_sec: 6_250_000_000,
            burst: 1 << 20,
            limit: TbfLimit::Latency(ms(50)),
            mtu: 0,
            mpu: 0,
        },
    );
}

#[test]
fn del_root_and_ingress() {
    check("del_root", msg::to_bytes(&msg::del_qdisc(3, ROOT, 0)));
    check(
        "ingress",
        msg::to_bytes(&msg::new_qdisc(
            Mode::Replace,
            3,
            INGRESS_PARENT,
            INGRESS_HANDLE,
            "ingress",
            None,
        )),
    );
}

fn one_filter(s: Selection) -> U32Match {
    let mut m = s.matches().unwrap();
    assert_eq!(m.len(), 1, "{s:?}");
    m.remove(0)
}

fn u32_flowid(name: &str, prio: u16, m: U32Match) {
    let req = msg::new_u32_filter(Mode::Add, 3, FA17, prio, m.protocol, m.classify(FA17 | 4));
    check(name, msg::to_bytes(&req));
}

fn c(s: &str) -> Cidr {
    s.parse().unwrap()
}

#[test]
fn u32_filters() {
    u32_flowid(
        "u32_dst4",
        1,
        one_filter(Selection {
            dst: vec![c("10.1.0.0/16")],
            ..Default::default()
        }),
    );
    u32_flowid(
        "u32_src6",
        2,
        one_filter(Selection {
            src: vec![c("2001:db8::/32")],
            ..Default::default()
        }),
    );
    // `match ip dport 8080 0xffff` and `match ip protocol 6 0xff`: IPv4 halves of
    // port-only and protocol-only selections.
    let dport = Selection {
        dport: Some(PortRange {
            first: 8080,
            last: 8080,
        }),
        ..Default::default()
    }
    .matches()
    .unwrap();
    assert_eq!(dport[0].protocol, ETH_P_IP);
    u32_flowid("u32_dport", 3, dport[0].clone());
    let proto = Selection {
        protocol: Some(IpProto::Tcp),
        ..Default::default()
    }
    .matches()
    .unwrap();
    u32_flowid("u32_protocol", 4, proto[0].clone());
    u32_flowid(
        "u32_v4_combined",
        5,
        one_filter(Selection {
            dst: vec![c("10.1.2.3/32")],
            src: vec![c("192.168.0.0/24")],
            protocol: Some(IpProto::Udp),
            sport: Some(PortRange {
                first: 5296,
                last: 5311,
            }),
            ..Default::default()
        }),
    );
    let v6 = one_filter(Selection {
        dst: vec![c("2001:db8:1::/48")],
        protocol: Some(IpProto::Tcp),
        dport: Some(PortRange {
            first: 443,
            last: 443,
        }),
        ..Default::default()
    });
    assert_eq!(v6.protocol, ETH_P_IPV6);
    u32_flowid("u32_v6_combined", 6, v6);
}

#[test]
fn u32_mirred_redirect() {
    let f = fixture("u32_mirred");
    let ifb = f.ifb_ifindex.expect("fixture names the ifb's ifindex");
    let all = U32Match::all();
    assert_eq!(all.protocol, ETH_P_ALL);
    let req = msg::new_u32_filter(
        Mode::Add,
        3,
        INGRESS_HANDLE,
        1,
        all.protocol,
        all.redirect(ifb),
    );
    check("u32_mirred", msg::to_bytes(&req));
}

#[test]
fn duplicate_correlation_is_sent() {
    let n = Netem {
        duplicate: Some(Chance {
            probability: pct(5.0),
            correlation: pct(10.0),
        }),
        ..Default::default()
    };
    let d = Netem::decode(&n.encode().unwrap()).unwrap();
    assert_eq!(d.duplicate, n.duplicate);
}

/// Property test: decode(encode(x)) == x over many pseudo-random parameter sets whose
/// times are whole psched ticks (multiples of 8 us) and whose probabilities are non-zero.
#[test]
fn netem_roundtrip_property() {
    let seed = std::cell::Cell::new(0x2545_f491_4f6c_dd1du64);
    let next = || {
        let mut s = seed.get();
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        seed.set(s);
        s
    };
    let p = || Percent(1 + (next() % (u32::MAX as u64 - 1)) as u32);
    for _ in 0..2000 {
        let mut n = Netem::default();
        let r = next();
        n.limit = 1 + (r % 100_000) as u32;
        let lat = Duration::from_micros(8 * (1 + next() % 1_000_000));
        if r & 1 != 0 {
            n.delay = Some(Delay {
                latency: lat,
                jitter: Duration::from_micros(8 * (next() % 10_000)),
                correlation: p(),
                distribution: Distribution::Uniform,
            });
        }
        n.loss = match (r >> 1) % 4 {
            0 => None,
            1 => Some(Loss::Random(Chance {
                probability: p(),
                correlation: p(),
            })),
            2 => Some(Loss::GilbertElliott(GilbertElliott {
                p: p(),
                r: p(),
                loss_bad: p(),
                loss_good: p(),
            })),
            _ => Some(Loss::FourState(FourState {
                p13: p(),
                p31: p(),
                p32: p(),
                p23: p(),
                p14: p(),
            })),
        };
        if r & 8 != 0 {
            n.duplicate = Some(Chance {
                probability: p(),
                correlation: p(),
            });
        }
        if r & 16 != 0 {
            n.corrupt = Some(Chance {
                probability: p(),
                correlation: p(),
            });
        }
        if r & 32 != 0 && n.delay.is_some() {
            n.reorder = Some(Reorder {
                probability: p(),
                correlation: p(),
                gap: 1 + (next() % 100) as u32,
            });
        }
        if r & 64 != 0 {
            n.rate = Some(Rate {
                bytes_per_sec: 1 + next() % (1 << 40),
                packet_overhead: (next() % 100) as i32 - 50,
                cell_size: (next() % 100) as u32,
                cell_overhead: (next() % 10) as i32,
            });
        }
        n.ecn = r & 128 != 0 && n.loss.is_some();
        if r & 256 != 0 {
            let a = Duration::from_micros(next() % 10_000);
            n.slot = Some(Slot {
                min_delay: a,
                max_delay: a * 2 + Duration::from_micros(1),
                max_packets: 3,
                max_bytes: 0,
            });
        }
        let bytes = n.encode().unwrap();
        assert_eq!(Netem::decode(&bytes).unwrap(), n, "roundtrip of {n:?}");
    }
}

#[test]
fn netem_validation() {
    let bad = [
        Netem {
            delay: delay(ms(0), ms(5), 0.0, Distribution::Uniform),
            ..Default::default()
        },
        Netem {
            delay: delay(ms(10), ms(0), 0.0, Distribution::Normal),
            ..Default::default()
        },
        Netem {
            reorder: Some(Reorder {
                probability: pct(5.0),
                correlation: Percent::ZERO,
                gap: 0,
            }),
            ..Default::default()
        },
        Netem {
            ecn: true,
            ..Default::default()
        },
        Netem {
            rate: Some(Rate::default()),
            ..Default::default()
        },
        Netem {
            limit: 0,
            ..Default::default()
        },
        Netem {
            delay: delay(Duration::from_secs(300), ms(0), 0.0, Distribution::Uniform),
            ..Default::default()
        },
    ];
    for n in bad {
        assert!(n.encode().is_err(), "{n:?} should be refused");
    }
    assert!(Percent::new(100.5).is_none());
    assert!(Percent::new(-1.0).is_none());
    assert!(Percent::new(f64::NAN).is_none());
    assert_eq!(Percent::new(100.0), Some(Percent::ALL));
}

/// Our request for `tc filter add dev X parent fa17: protocol P prio PRIO u32 match ...
/// flowid fa17:BAND`, checked against iproute2's bytes, then read back by the dump
/// decoder (the kernel echoes a filter in the same layout): prio, protocol, class and
/// key count come back as sent.
fn u32_readback(name: &str, prio: u16, m: U32Match, band: u16) {
    let classid = FA17 | band as u32;
    let opts = m.classify(classid);
    u32_check_and_decode(name, prio, &m, opts, Some(classid), false);
}

/// Checks our request against iproute2's bytes, then decodes both (ours and the
/// fixture) as the kernel's dump would be read: (class, drops) as given.
fn u32_check_and_decode(
    name: &str,
    prio: u16,
    m: &U32Match,
    opts: Vec<rtnetlink::packet_route::tc::TcFilterU32Option>,
    classid: Option<u32>,
    drops: bool,
) {
    let req = msg::new_u32_filter(Mode::Add, 3, FA17, prio, m.protocol, opts);
    let bytes = msg::to_bytes(&req);
    check(name, bytes.clone());
    for b in [bytes, fixture(name).bytes] {
        match super::ops::decode_dump_message(&b).unwrap() {
            super::ops::Decoded::Filter(Some(f)) => {
                assert_eq!(
                    (f.parent, f.prio, f.protocol, f.kind.as_str()),
                    (FA17, prio, m.protocol, "u32"),
                    "{name}"
                );
                assert_eq!(
                    (f.classid, f.keys, f.drops),
                    (classid, m.keys.len(), drops),
                    "{name}"
                );
            }
            other => panic!("{name}: decoded as {other:?}"),
        }
    }
}

#[test]
fn exemption_filters_and_the_match_all() {
    use super::FAULT_BAND;
    use super::exempt::{EXEMPT_BAND, Exempt, PRIO_ALL, PRIO_EXEMPT_V4, PRIO_EXEMPT_V6};
    let ssh = Exempt {
        ports: vec![22],
        ..Default::default()
    }
    .matches()
    .unwrap();
    // sport then dport for IPv4, then the same for IPv6.
    u32_readback("exempt_sport4", PRIO_EXEMPT_V4, ssh[0].clone(), EXEMPT_BAND);
    assert_eq!(ssh[3].protocol, ETH_P_IPV6);
    u32_readback("exempt_dport6", PRIO_EXEMPT_V6, ssh[3].clone(), EXEMPT_BAND);
    let flow = Exempt {
        flows: vec!["10.1.2.3:50522".parse().unwrap()],
        ..Default::default()
    }
    .matches()
    .unwrap();
    u32_readback("exempt_flow4", PRIO_EXEMPT_V4, flow[0].clone(), EXEMPT_BAND);
    let net = Exempt {
        cidrs: vec![c("10.9.0.0/16")],
        ..Default::default()
    }
    .matches()
    .unwrap();
    // dst then src.
    u32_readback("exempt_src4", PRIO_EXEMPT_V4, net[1].clone(), EXEMPT_BAND);
    u32_readback("match_all", PRIO_ALL, U32Match::all(), FAULT_BAND);
    // Address resolution rides along with any exemption: ARP, then ICMPv6 neighbour
    // discovery as three type blocks (133, 134-135, 136-137).
    let n = ssh.len();
    assert_eq!(n, 8);
    assert_eq!(ssh[4].protocol, super::filter::ETH_P_ARP);
    u32_readback(
        "exempt_arp",
        super::exempt::PRIO_EXEMPT_ARP,
        ssh[4].clone(),
        EXEMPT_BAND,
    );
    u32_readback("exempt_nd6", PRIO_EXEMPT_V6, ssh[6].clone(), EXEMPT_BAND);
}

/// `... u32 match ... action drop`: a gact with TC_ACT_SHOT and no class, byte-exact
/// with iproute2, read back by the decoder as a dropping filter.
fn u32_drop(name: &str, prio: u16, m: U32Match) {
    let opts = m.drop();
    u32_check_and_decode(name, prio, &m, opts, None, true);
}

#[test]
fn blackhole_filters_drop_with_gact() {
    u32_drop(
        "drop_dst4",
        super::exempt::PRIO_SELECT_V4,
        one_filter(Selection {
            dst: vec![c("10.1.0.0/24")],
            ..Default::default()
        }),
    );
    u32_drop("drop_all", super::exempt::PRIO_ALL, U32Match::all());
    // A classifying filter is not read as dropping.
    let req = msg::new_u32_filter(
        Mode::Add,
        3,
        FA17,
        5,
        U32Match::all().protocol,
        U32Match::all().classify(FA17 | 4),
    );
    match super::ops::decode_dump_message(&msg::to_bytes(&req)).unwrap() {
        super::ops::Decoded::Filter(Some(f)) => assert!(!f.drops),
        other => panic!("{other:?}"),
    }
}
