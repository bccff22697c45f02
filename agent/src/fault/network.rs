//! Network faults: netem on one interface of one network namespace, through rtnetlink
//! ([`crate::sys::tc`]); never by running `tc`.
//!
//! `plan` connects to the target namespace, checks the interface exists and its root
//! qdisc is a kernel default (an operator's own is refused, naming it), and says what
//! it would do; `apply` installs it and returns the exact undo (what was there before,
//! what faultline added), which the journal keeps; `revert` removes what faultline added,
//! and counts a namespace or interface that has gone away as reverted.

use std::time::Duration;

use faultline_proto::units::{format_duration, format_rate};

use super::{Applied, Plan, Undo};
use crate::error::FaultError;
use crate::limits::Limits;
use crate::sys::netns::NetnsTarget;
use crate::sys::tc::{self, Direction, Loss, NetError, NetFault, Netem, RootKind, Tc};

/// A validated network fault.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    pub target: NetnsTarget,
    pub fault: NetFault,
}

/// Maps the tc layer's errors onto what a caller can do about them.
pub fn net_error(e: NetError) -> FaultError {
    match e {
        NetError::UnknownInterface { .. } => {
            FaultError::invalid("spec.network.iface", e.to_string())
        }
        NetError::InvalidParameter { parameter, reason } => {
            FaultError::invalid(format!("spec.network.netem.{parameter}"), reason)
        }
        NetError::ForeignRootQdisc { .. } | NetError::MissingKernelModule { .. } => {
            FaultError::Precondition(e.to_string())
        }
        NetError::Netns { .. } => FaultError::NotFound(e.to_string()),
        NetError::Permission { .. } => FaultError::Unauthorized(e.to_string()),
        other => FaultError::Failed(other.to_string()),
    }
}

fn pct(p: tc::Percent) -> f64 {
    p.as_percent()
}

/// The long-run loss rate of a netem loss model, in percent.
pub fn loss_percent(l: &Loss) -> f64 {
    match l {
        Loss::Random(c) => pct(c.probability),
        Loss::GilbertElliott(ge) => {
            let (p, r) = (pct(ge.p), pct(ge.r));
            if p + r == 0.0 {
                return pct(ge.loss_good);
            }
            let bad = p / (p + r);
            bad * pct(ge.loss_bad) + (1.0 - bad) * pct(ge.loss_good)
        }
        // Upper bound: the worst state's chance of losing.
        Loss::FourState(f) => pct(f.p13).max(pct(f.p14)),
    }
}

/// Checks a network spec against the limits; names the limit on refusal.
pub fn check(
    spec: &NetworkSpec,
    limits: &Limits,
    refuse: impl Fn(&str, String, String) -> FaultError,
) -> Result<(), FaultError> {
    let n = &limits.network;
    let f = &spec.fault;
    if n.protected_interfaces.contains(&f.iface) {
        return Err(FaultError::Protected(format!(
            "interface {:?} is protected (limits: network.protected_interfaces)",
            f.iface
        )));
    }
    let e = &f.netem;
    if let Some(d) = &e.delay {
        if d.latency > n.max_delay {
            return Err(refuse(
                "network.max_delay",
                format_duration(n.max_delay),
                format_duration(d.latency),
            ));
        }
        if d.jitter > n.max_jitter {
            return Err(refuse(
                "network.max_jitter",
                format_duration(n.max_jitter),
                format_duration(d.jitter),
            ));
        }
    }
    let over = |value: f64, max: f64, name: &str| -> Result<(), FaultError> {
        // A netem probability is quantized to 1/u32::MAX (2.3e-8 %): a request of
        // exactly the maximum comes back a hair above it.
        if value > max + 1e-7 {
            Err(refuse(name, format!("{max}%"), format!("{value:.4}%")))
        } else {
            Ok(())
        }
    };
    if let Some(l) = &e.loss {
        over(
            loss_percent(l),
            n.max_loss_percent,
            "network.max_loss_percent",
        )?;
    }
    if let Some(c) = &e.duplicate {
        over(
            pct(c.probability),
            n.max_duplicate_percent,
            "network.max_duplicate_percent",
        )?;
    }
    if let Some(c) = &e.corrupt {
        over(
            pct(c.probability),
            n.max_corrupt_percent,
            "network.max_corrupt_percent",
        )?;
    }
    if let Some(r) = &e.reorder {
        over(
            pct(r.probability),
            n.max_reorder_percent,
            "network.max_reorder_percent",
        )?;
    }
    if let Some(r) = &e.rate {
        let bits = r.bytes_per_sec.saturating_mul(8);
        if bits < n.min_rate_bits {
            return Err(refuse(
                "network.min_rate",
                format_rate(n.min_rate_bits),
                format_rate(bits),
            ));
        }
    }
    Ok(())
}

/// netem's parameters in tc's words: `delay 50ms 10ms 25% distribution normal loss 1%`.
pub fn describe_netem(e: &Netem) -> String {
    let mut out = Vec::new();
    if let Some(d) = &e.delay {
        let mut s = format!("delay {}", format_duration(d.latency));
        if !d.jitter.is_zero() {
            s.push_str(&format!(" {}", format_duration(d.jitter)));
            if !d.correlation.is_zero() {
                s.push_str(&format!(" {}%", pct(d.correlation)));
            }
            if d.distribution != tc::Distribution::Uniform {
                s.push_str(&format!(" distribution {}", d.distribution.name()));
            }
        }
        out.push(s);
    }
    match &e.loss {
        Some(Loss::Random(c)) => out.push(chance("loss", c)),
        Some(Loss::GilbertElliott(g)) => out.push(format!(
            "loss gemodel {}% {}% {}% {}%",
            pct(g.p),
            pct(g.r),
            pct(g.loss_bad),
            pct(g.loss_good)
        )),
        Some(Loss::FourState(_)) => out.push("loss state (4-state model)".into()),
        None => {}
    }
    if let Some(c) = &e.duplicate {
        out.push(chance("duplicate", c));
    }
    if let Some(c) = &e.corrupt {
        out.push(chance("corrupt", c));
    }
    if let Some(r) = &e.reorder {
        let mut s = format!("reorder {}%", pct(r.probability));
        if !r.correlation.is_zero() {
            s.push_str(&format!(" {}%", pct(r.correlation)));
        }
        if r.gap > 0 {
            s.push_str(&format!(" gap {}", r.gap));
        }
        out.push(s);
    }
    if let Some(r) = &e.rate {
        out.push(format!(
            "rate {}",
            format_rate(r.bytes_per_sec.saturating_mul(8))
        ));
    }
    if e.limit != Netem::default().limit {
        out.push(format!("limit {}", e.limit));
    }
    out.join(" ")
}

fn chance(word: &str, c: &tc::Chance) -> String {
    if c.correlation.is_zero() {
        format!("{word} {}%", pct(c.probability))
    } else {
        format!("{word} {}% {}%", pct(c.probability), pct(c.correlation))
    }
}

fn where_(spec: &NetworkSpec) -> String {
    let dir = match spec.fault.direction {
        Direction::Egress => "egress",
        Direction::Ingress => "ingress",
    };
    format!("{} {dir} in {}", spec.fault.iface, spec.target)
}

fn selection_text(spec: &NetworkSpec) -> String {
    let s = &spec.fault.selection;
    let mut parts = Vec::new();
    if !s.dst.is_empty() {
        parts.push(format!(
            "dst {}",
            s.dst
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    if !s.src.is_empty() {
        parts.push(format!(
            "src {}",
            s.src
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    let ports = |p: &tc::PortRange| {
        if p.first == p.last {
            p.first.to_string()
        } else {
            format!("{}-{}", p.first, p.last)
        }
    };
    if let Some(p) = &s.dport {
        parts.push(format!("dport {}", ports(p)));
    }
    if let Some(p) = &s.sport {
        parts.push(format!("sport {}", ports(p)));
    }
    if let Some(p) = &s.protocol {
        parts.push(format!("protocol {p:?}").to_lowercase());
    }
    if parts.is_empty() {
        "all traffic".into()
    } else {
        parts.join(" ")
    }
}

/// Resolves the target and checks it can take the fault; changes nothing.
pub async fn plan(spec: &NetworkSpec) -> Result<Plan, FaultError> {
    let tc = Tc::connect(&spec.target).await.map_err(net_error)?;
    let ifindex = tc.ifindex(&spec.fault.iface).await.map_err(net_error)?;
    spec.fault.netem.validate().map_err(net_error)?;
    spec.fault.selection.matches().map_err(net_error)?;
    let root = match spec.fault.direction {
        Direction::Egress => match tc.root_kind(ifindex).await.map_err(net_error)? {
            RootKind::KernelDefault(k) => k,
            // Another fault's (the engine names it: one fault per interface and
            // direction), or a leftover that `apply` refuses and `faultd cleanup` removes.
            RootKind::Ours(k) => format!("faultline's own {k}"),
            RootKind::Foreign { kind, handle } => {
                return Err(net_error(NetError::ForeignRootQdisc {
                    iface: spec.fault.iface.clone(),
                    kind,
                    handle: format!("{:x}:", handle >> 16),
                    place: "root",
                }));
            }
        },
        Direction::Ingress => "ingress redirect to an IFB device".to_string(),
    };
    let id = spec
        .target
        .identity()
        .map_err(|e| FaultError::NotFound(format!("network namespace {}: {e}", spec.target)))?;
    let dir = match spec.fault.direction {
        Direction::Egress => "egress",
        Direction::Ingress => "ingress",
    };
    let description = format!(
        "netem {} on {} (replacing {root}) for {}",
        describe_netem(&spec.fault.netem),
        where_(spec),
        selection_text(spec)
    );
    Ok(Plan {
        targets: Vec::new(),
        excluded: Vec::new(),
        freeze: None,
        description,
        conflict_key: Some(format!("net:{}:{}:{}:{dir}", id.0, id.1, spec.fault.iface)),
        stress: None,
    })
}

/// Installs the fault; returns the exact undo.
pub async fn apply(spec: &NetworkSpec, plan: Plan) -> Result<Applied, FaultError> {
    let tc = Tc::connect(&spec.target).await.map_err(net_error)?;
    let undo = tc.apply(&spec.fault).await.map_err(net_error)?;
    Ok(Applied {
        description: format!(
            "{} (was {}, now faultline's {}{})",
            plan.description,
            undo.previous_root,
            undo.installed_root,
            if undo.filters > 0 {
                format!(" with {} u32 filters", undo.filters)
            } else {
                String::new()
            }
        ),
        undo: Undo::Net(Box::new(undo)),
        targets: Vec::new(),
    })
}

/// Removes what faultline added. `Ok(Some(why))` when there was nothing left to undo
/// (the namespace or interface went away).
pub async fn revert(undo: &tc::Undo) -> Result<Option<String>, FaultError> {
    match tc::revert(undo).await.map_err(net_error)? {
        tc::Reverted::Restored => Ok(None),
        tc::Reverted::AlreadyGone(why) => Ok(Some(why)),
    }
}

/// How the undo reads in the fault record.
pub fn describe_undo(u: &tc::Undo) -> String {
    let mut s = format!(
        "delete faultline's {} root on {} in {} (restores the kernel default {})",
        u.installed_root, u.iface, u.netns, u.previous_root
    );
    if u.filters > 0 {
        s.push_str(&format!(" and its {} filters", u.filters));
    }
    if let Some(ifb) = &u.ifb {
        s.push_str(&format!(
            ", the ingress redirect and IFB device {}",
            ifb.name
        ));
    }
    s
}

/// A duration from microseconds, for conversions.
pub fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}
