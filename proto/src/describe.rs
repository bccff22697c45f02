//! `faultline.v1` network faults in words, one rendering for agent and controller:
//! netem parameters as `tc` writes them (`delay 50ms 10ms 25% distribution normal
//! loss 1% 25%`), correlations, gap and queue limit included, and the traffic a fault
//! selects (`dst 10.0.0.0/8 protocol tcp dport 5432`, or `all traffic`).

use crate::units::{format_ms, format_rate};
use crate::v1::{NetemSpec, NetworkSpec, TrafficSelector};

/// netem's default queue limit (packets), which a description leaves out.
pub const DEFAULT_LIMIT: u32 = 1000;

/// A percentage without the noise of netem's 32-bit fixed point (`25`, not
/// `25.000000005820766`): at most six decimals, trailing zeros dropped.
pub fn percent(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// A time in microseconds: whole milliseconds as `50ms`/`1.5s`, the rest as `1500us`.
pub fn micros(us: u64) -> String {
    if us.is_multiple_of(1000) {
        format_ms(us / 1000)
    } else {
        format!("{us}us")
    }
}

/// `word P%` or `word P% C%` (with a correlation).
fn chance(word: &str, p: f64, correlation: f64) -> String {
    if correlation == 0.0 {
        format!("{word} {}%", percent(p))
    } else {
        format!("{word} {}% {}%", percent(p), percent(correlation))
    }
}

/// netem's parameters in tc's words; `no netem parameters` when none is set.
pub fn netem(e: &NetemSpec) -> String {
    let mut out = Vec::new();
    let distribution = e.distribution.trim();
    let distribution =
        (!distribution.is_empty() && distribution != "uniform").then_some(distribution);
    if e.delay_us > 0 || e.jitter_us > 0 || e.delay_correlation != 0.0 || distribution.is_some() {
        let mut s = format!("delay {}", micros(e.delay_us));
        if e.jitter_us > 0 || e.delay_correlation != 0.0 {
            s.push_str(&format!(" {}", micros(e.jitter_us)));
            if e.delay_correlation != 0.0 {
                s.push_str(&format!(" {}%", percent(e.delay_correlation)));
            }
        }
        if let Some(d) = distribution {
            s.push_str(&format!(" distribution {d}"));
        }
        out.push(s);
    }
    if let Some(g) = &e.loss_gemodel {
        out.push(format!(
            "loss gemodel {}% {}% {}% {}%",
            percent(g.p),
            percent(g.r),
            percent(g.loss_bad),
            percent(g.loss_good)
        ));
    } else if e.loss_percent != 0.0 || e.loss_correlation != 0.0 {
        out.push(chance("loss", e.loss_percent, e.loss_correlation));
    }
    for (word, p, c) in [
        ("duplicate", e.duplicate_percent, e.duplicate_correlation),
        ("corrupt", e.corrupt_percent, e.corrupt_correlation),
    ] {
        if p != 0.0 || c != 0.0 {
            out.push(chance(word, p, c));
        }
    }
    if e.reorder_percent != 0.0 || e.reorder_correlation != 0.0 || e.gap > 0 {
        let mut s = chance("reorder", e.reorder_percent, e.reorder_correlation);
        if e.gap > 0 {
            s.push_str(&format!(" gap {}", e.gap));
        }
        out.push(s);
    }
    if e.rate_bits_per_sec > 0 {
        out.push(format!("rate {}", format_rate(e.rate_bits_per_sec)));
    }
    if e.limit != 0 && e.limit != DEFAULT_LIMIT {
        out.push(format!("limit {}", e.limit));
    }
    if out.is_empty() {
        return "no netem parameters".into();
    }
    out.join(" ")
}

/// The packets a fault applies to: `dst 10.0.0.0/8,10.1.0.0/16 protocol tcp dport 80`,
/// or `all traffic`.
pub fn selection(s: &TrafficSelector) -> String {
    let mut parts = Vec::new();
    for (word, cidrs) in [("dst", &s.dst), ("src", &s.src)] {
        if !cidrs.is_empty() {
            parts.push(format!("{word} {}", cidrs.join(",")));
        }
    }
    for (word, v) in [
        ("protocol", &s.protocol),
        ("dport", &s.dport),
        ("sport", &s.sport),
    ] {
        if !v.trim().is_empty() {
            parts.push(format!("{word} {}", v.trim()));
        }
    }
    if s.dns {
        parts.push("DNS (dport 53, udp and tcp)".into());
    }
    if parts.is_empty() {
        "all traffic".into()
    } else {
        parts.join(" ")
    }
}

/// A network fault: `network eth0 (netns web) egress: delay 50ms loss 1%; dst
/// 10.0.0.0/8`.
pub fn network(n: &NetworkSpec) -> String {
    let ns = if n.pid > 0 {
        format!(" (netns of pid {})", n.pid)
    } else if !n.container.is_empty() {
        format!(" (netns of container {})", n.container)
    } else if !n.netns.is_empty() {
        format!(" (netns {})", n.netns)
    } else {
        String::new()
    };
    let direction = match n.direction.trim() {
        "" => "egress",
        d => d,
    };
    let what = if n.blackhole {
        "blackhole (drop)".to_string()
    } else {
        netem(&n.netem.clone().unwrap_or_default())
    };
    format!(
        "network {}{ns} {direction}: {what}; {}",
        n.iface,
        selection(&n.selection.clone().unwrap_or_default())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::GilbertElliott;

    #[test]
    fn every_netem_parameter_is_described() {
        let e = NetemSpec {
            delay_us: 50_000,
            jitter_us: 10_000,
            delay_correlation: 25.0,
            distribution: "normal".into(),
            loss_percent: 1.0,
            loss_correlation: 25.000000005820766,
            loss_gemodel: None,
            duplicate_percent: 2.0,
            duplicate_correlation: 10.0,
            corrupt_percent: 0.1,
            corrupt_correlation: 5.0,
            reorder_percent: 25.0,
            reorder_correlation: 50.0,
            gap: 5,
            rate_bits_per_sec: 1_000_000,
            limit: 5000,
        };
        assert_eq!(
            netem(&e),
            "delay 50ms 10ms 25% distribution normal loss 1% 25% duplicate 2% 10% \
             corrupt 0.1% 5% reorder 25% 50% gap 5 rate 1mbit limit 5000"
        );
    }

    #[test]
    fn only_what_is_set() {
        let e = NetemSpec {
            delay_us: 40_000,
            ..Default::default()
        };
        assert_eq!(netem(&e), "delay 40ms");
        let e = NetemSpec {
            delay_us: 1500,
            delay_correlation: 10.0,
            limit: DEFAULT_LIMIT,
            ..Default::default()
        };
        assert_eq!(netem(&e), "delay 1500us 0s 10%");
        let e = NetemSpec {
            delay_us: 100_000,
            jitter_us: 10_000,
            distribution: "uniform".into(),
            ..Default::default()
        };
        assert_eq!(netem(&e), "delay 100ms 10ms");
        assert_eq!(netem(&NetemSpec::default()), "no netem parameters");
        let e = NetemSpec {
            loss_gemodel: Some(GilbertElliott {
                p: 1.0,
                r: 10.0,
                loss_bad: 70.0,
                loss_good: 0.1,
            }),
            ..Default::default()
        };
        assert_eq!(netem(&e), "loss gemodel 1% 10% 70% 0.1%");
    }

    #[test]
    fn network_and_selection() {
        let n = NetworkSpec {
            iface: "eth0".into(),
            netns: "web".into(),
            pid: 0,
            container: String::new(),
            direction: String::new(),
            netem: Some(NetemSpec {
                delay_us: 50_000,
                loss_percent: 1.0,
                ..Default::default()
            }),
            selection: Some(TrafficSelector {
                dst: vec!["10.0.0.0/8".into(), "fd00::/8".into()],
                src: vec![],
                dport: "5432".into(),
                sport: "1000-2000".into(),
                protocol: "tcp".into(),
                dns: false,
            }),
            blackhole: false,
        };
        assert_eq!(
            network(&n),
            "network eth0 (netns web) egress: delay 50ms loss 1%; \
             dst 10.0.0.0/8,fd00::/8 protocol tcp dport 5432 sport 1000-2000"
        );
        let n = NetworkSpec {
            iface: "veth1".into(),
            pid: 42,
            direction: "ingress".into(),
            ..n
        };
        assert!(network(&n).starts_with("network veth1 (netns of pid 42) ingress: "));
        let partition = NetworkSpec {
            direction: "both".into(),
            blackhole: true,
            netem: None,
            selection: Some(TrafficSelector {
                dst: vec!["10.0.3.0/24".into()],
                ..Default::default()
            }),
            ..n.clone()
        };
        assert_eq!(
            network(&partition),
            "network veth1 (netns of pid 42) both: blackhole (drop); dst 10.0.3.0/24"
        );
        let dns = TrafficSelector {
            dns: true,
            ..Default::default()
        };
        assert_eq!(selection(&dns), "DNS (dport 53, udp and tcp)");
        let n = NetworkSpec {
            pid: 0,
            netns: String::new(),
            container: "3f2a9c1b7d4e".into(),
            ..n
        };
        assert!(
            network(&n).starts_with("network veth1 (netns of container 3f2a9c1b7d4e) ingress: ")
        );
        assert_eq!(selection(&TrafficSelector::default()), "all traffic");
    }

    #[test]
    fn percentages_drop_fixed_point_noise() {
        assert_eq!(percent(25.000000005820766), "25");
        assert_eq!(percent(0.1), "0.1");
        assert_eq!(percent(33.3333333), "33.333333");
        assert_eq!(percent(0.0), "0");
    }
}
