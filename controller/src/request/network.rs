//! Network faults: netem on an interface, optionally for selected traffic only.

use faultline_proto::v1::{self, fault_spec};
use serde::Deserialize;

use super::error::at_most_one;
use super::value::{opt, opt_span};
use super::{Kind, Percent, Rate, RequestError, Span, Text};

/// A network fault as a document or the command line gives it (`network:`; the flags of
/// `faultctl inject net` without their dashes).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInput {
    /// Required, but for a container, whose `eth0` is the default.
    pub iface: Option<String>,
    pub netns: Option<String>,
    pub pid: Option<i32>,
    pub container: Option<String>,
    pub direction: Option<String>,
    pub delay: Option<Text>,
    pub jitter: Option<Text>,
    pub delay_correlation: Option<Text>,
    pub distribution: Option<String>,
    pub loss: Option<Text>,
    pub loss_correlation: Option<Text>,
    pub loss_gemodel: Option<Text>,
    pub duplicate: Option<Text>,
    pub duplicate_correlation: Option<Text>,
    pub corrupt: Option<Text>,
    pub corrupt_correlation: Option<Text>,
    pub reorder: Option<Text>,
    pub reorder_correlation: Option<Text>,
    pub gap: Option<u32>,
    pub rate: Option<Text>,
    pub limit: Option<u32>,
    #[serde(default)]
    pub dst: Vec<String>,
    #[serde(default)]
    pub src: Vec<String>,
    pub dport: Option<Text>,
    pub sport: Option<Text>,
    pub protocol: Option<String>,
    /// Drop every selected packet (gact) instead of netem.
    #[serde(default)]
    pub blackhole: bool,
    /// Select DNS: destination port 53, UDP and TCP (no dport, sport or protocol).
    #[serde(default)]
    pub dns: bool,
}

/// Which network namespace the interface is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// faultd's own.
    Agent,
    /// A name under /run/netns, or a path.
    Named(String),
    /// The namespace of this process (a container's).
    OfPid(i32),
    /// The namespace of this container (an id or a prefix the agent resolves).
    OfContainer(String),
}

/// netem's parameters; `None` is "not set".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Netem {
    pub delay: Option<Span>,
    pub jitter: Option<Span>,
    pub delay_correlation: Option<Percent>,
    pub distribution: Option<String>,
    pub loss: Option<Percent>,
    pub loss_correlation: Option<Percent>,
    pub loss_gemodel: Option<GilbertElliott>,
    pub duplicate: Option<Percent>,
    pub duplicate_correlation: Option<Percent>,
    pub corrupt: Option<Percent>,
    pub corrupt_correlation: Option<Percent>,
    pub reorder: Option<Percent>,
    pub reorder_correlation: Option<Percent>,
    pub gap: Option<u32>,
    pub rate: Option<Rate>,
    pub limit: Option<u32>,
}

/// netem's `loss gemodel p r [1-h [1-k]]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    pub p: Percent,
    pub r: Percent,
    pub loss_bad: Percent,
    pub loss_good: Percent,
}

impl Netem {
    /// The parameters given, by their domain names.
    pub fn given(&self) -> Vec<super::error::Field> {
        let Netem {
            delay,
            jitter,
            delay_correlation,
            distribution,
            loss,
            loss_correlation,
            loss_gemodel,
            duplicate,
            duplicate_correlation,
            corrupt,
            corrupt_correlation,
            reorder,
            reorder_correlation,
            gap,
            rate,
            limit,
        } = self;
        [
            ("delay", delay.is_some()),
            ("jitter", jitter.is_some()),
            ("delay_correlation", delay_correlation.is_some()),
            ("distribution", distribution.is_some()),
            ("loss", loss.is_some()),
            ("loss_correlation", loss_correlation.is_some()),
            ("loss_gemodel", loss_gemodel.is_some()),
            ("duplicate", duplicate.is_some()),
            ("duplicate_correlation", duplicate_correlation.is_some()),
            ("corrupt", corrupt.is_some()),
            ("corrupt_correlation", corrupt_correlation.is_some()),
            ("reorder", reorder.is_some()),
            ("reorder_correlation", reorder_correlation.is_some()),
            ("gap", gap.is_some()),
            ("rate", rate.is_some()),
            ("limit", limit.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, g)| g.then_some(f))
        .collect()
    }
}

impl GilbertElliott {
    /// `P,R[,1-H[,1-K]]` in percent.
    pub fn parse(text: &str) -> Result<GilbertElliott, String> {
        let parts: Vec<&str> = text.split(',').collect();
        if !(2..=4).contains(&parts.len()) {
            return Err(format!(
                "{text:?}: write P,R[,1-H[,1-K]] in percent, e.g. 1%,10%"
            ));
        }
        let v: Vec<Percent> = parts
            .iter()
            .map(|p| Percent::parse(p))
            .collect::<Result<_, _>>()?;
        Ok(GilbertElliott {
            p: v[0],
            r: v[1],
            loss_bad: v.get(2).copied().unwrap_or(Percent::MAX),
            loss_good: v.get(3).copied().unwrap_or_default(),
        })
    }
}

/// Which packets; empty: all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub dst: Vec<String>,
    pub src: Vec<String>,
    pub dport: Option<String>,
    pub sport: Option<String>,
    pub protocol: Option<String>,
    /// Destination port 53, UDP and TCP.
    pub dns: bool,
}

/// netem on one interface, in one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub iface: String,
    pub namespace: Namespace,
    /// `egress` or `ingress` (the agent checks the word).
    pub direction: String,
    pub netem: Netem,
    pub selection: Selection,
    /// Drop the selected packets instead of netem.
    pub blackhole: bool,
}

impl Network {
    /// The direction when none is given.
    pub const DIRECTION: &'static str = "egress";
    /// The interface when a container is given and no interface.
    pub const CONTAINER_IFACE: &'static str = "eth0";
}

impl Kind for Network {
    type Input = NetworkInput;

    fn new(i: &Self::Input) -> Result<Self, RequestError> {
        at_most_one(&[
            ("netns", i.netns.is_some()),
            ("pid", i.pid.is_some()),
            ("container", i.container.is_some()),
        ])?;
        let namespace = match (&i.netns, i.pid, &i.container) {
            (Some(n), ..) => Namespace::Named(n.clone()),
            (None, Some(p), _) => Namespace::OfPid(p),
            (None, None, Some(c)) => Namespace::OfContainer(c.clone()),
            (None, None, None) => Namespace::Agent,
        };
        let iface = match (&i.iface, &namespace) {
            (Some(f), _) => f.clone(),
            (None, Namespace::OfContainer(_)) => Network::CONTAINER_IFACE.into(),
            (None, _) => {
                return Err(RequestError::Missing {
                    any_of: &[&["iface"], &["container"]],
                });
            }
        };
        let pct = |field, t: &Option<Text>| opt(field, t, Percent::parse);
        let netem = Netem {
            delay: opt_span("delay", &i.delay)?,
            jitter: opt_span("jitter", &i.jitter)?,
            delay_correlation: pct("delay_correlation", &i.delay_correlation)?,
            distribution: i.distribution.clone(),
            loss: pct("loss", &i.loss)?,
            loss_correlation: pct("loss_correlation", &i.loss_correlation)?,
            loss_gemodel: opt("loss_gemodel", &i.loss_gemodel, GilbertElliott::parse)?,
            duplicate: pct("duplicate", &i.duplicate)?,
            duplicate_correlation: pct("duplicate_correlation", &i.duplicate_correlation)?,
            corrupt: pct("corrupt", &i.corrupt)?,
            corrupt_correlation: pct("corrupt_correlation", &i.corrupt_correlation)?,
            reorder: pct("reorder", &i.reorder)?,
            reorder_correlation: pct("reorder_correlation", &i.reorder_correlation)?,
            gap: i.gap,
            rate: opt("rate", &i.rate, Rate::parse)?,
            limit: i.limit,
        };
        if i.blackhole && netem != Netem::default() {
            return Err(RequestError::NotTaken {
                kind: "a blackhole (it drops every selected packet)",
                fields: netem.given(),
            });
        }
        if i.dns {
            let given: Vec<_> = [
                ("dport", i.dport.is_some()),
                ("sport", i.sport.is_some()),
                ("protocol", i.protocol.is_some()),
            ]
            .into_iter()
            .filter_map(|(f, g)| g.then_some(f))
            .collect();
            if !given.is_empty() {
                return Err(RequestError::NotTaken {
                    kind: "dns (it selects destination port 53, UDP and TCP)",
                    fields: given,
                });
            }
        }
        let text = |t: &Option<Text>| t.as_ref().map(|t| t.0.clone());
        Ok(Network {
            blackhole: i.blackhole,
            iface,
            namespace,
            direction: i
                .direction
                .clone()
                .unwrap_or_else(|| Network::DIRECTION.into()),
            netem,
            selection: Selection {
                dst: i.dst.clone(),
                src: i.src.clone(),
                dport: text(&i.dport),
                sport: text(&i.sport),
                protocol: i.protocol.clone(),
                dns: i.dns,
            },
        })
    }

    fn to_proto(&self) -> fault_spec::Kind {
        let e = &self.netem;
        let pct = |p: Option<Percent>| p.map_or(0.0, Percent::value);
        let netem = v1::NetemSpec {
            delay_us: e.delay.map_or(0, Span::as_micros),
            jitter_us: e.jitter.map_or(0, Span::as_micros),
            delay_correlation: pct(e.delay_correlation),
            distribution: e.distribution.clone().unwrap_or_default(),
            loss_percent: pct(e.loss),
            loss_correlation: pct(e.loss_correlation),
            loss_gemodel: e.loss_gemodel.map(|g| v1::GilbertElliott {
                p: g.p.value(),
                r: g.r.value(),
                loss_bad: g.loss_bad.value(),
                loss_good: g.loss_good.value(),
            }),
            duplicate_percent: pct(e.duplicate),
            duplicate_correlation: pct(e.duplicate_correlation),
            corrupt_percent: pct(e.corrupt),
            corrupt_correlation: pct(e.corrupt_correlation),
            reorder_percent: pct(e.reorder),
            reorder_correlation: pct(e.reorder_correlation),
            gap: e.gap.unwrap_or(0),
            rate_bits_per_sec: e.rate.map_or(0, Rate::bits_per_sec),
            limit: e.limit.unwrap_or(0),
        };
        let (netns, pid, container) = match &self.namespace {
            Namespace::Agent => (String::new(), 0, String::new()),
            Namespace::Named(n) => (n.clone(), 0, String::new()),
            Namespace::OfPid(p) => (String::new(), *p, String::new()),
            Namespace::OfContainer(c) => (String::new(), 0, c.clone()),
        };
        let s = &self.selection;
        fault_spec::Kind::Network(v1::NetworkSpec {
            iface: self.iface.clone(),
            netns,
            pid,
            container,
            direction: self.direction.clone(),
            netem: Some(netem),
            blackhole: self.blackhole,
            selection: Some(v1::TrafficSelector {
                dst: s.dst.clone(),
                src: s.src.clone(),
                dport: s.dport.clone().unwrap_or_default(),
                sport: s.sport.clone().unwrap_or_default(),
                protocol: s.protocol.clone().unwrap_or_default(),
                dns: s.dns,
            }),
        })
    }
}
