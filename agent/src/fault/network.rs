//! Network faults: netem on one interface of one network namespace, through rtnetlink
//! ([`crate::sys::tc`]); never by running `tc`.
//!
//! `plan` connects to the target namespace, checks the interface exists and its root
//! qdisc is a kernel default (an operator's own is refused, naming it), and says what
//! it would do; `apply` installs it and returns the exact undo (what was there before,
//! what faultline added), which the journal keeps; `revert` removes what faultline added,
//! and counts a namespace or interface that has gone away as reverted.

use std::net::SocketAddr;
use std::time::Duration;

use faultline_proto::describe;
use faultline_proto::units::{format_duration, format_rate};
use faultline_proto::v1 as pb;

use super::{Applied, Plan, Undo};
use crate::error::FaultError;
use crate::host::Host;
use crate::limits::Limits;
use crate::sys::container::{Container, ContainerQuery};
use crate::sys::netns::NetnsTarget;
use crate::sys::tc::{self, Direction, Loss, NetError, NetFault, RootKind, Tc};

/// A validated network fault: its netem parameters and traffic selection passed
/// [`tc::Netem::validate`] and [`tc::Selection::matches`] when it was made, the one place
/// the domain checks them.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    target: NetnsTarget,
    /// A container's namespace instead of `target`: resolved when planned, to the
    /// namespace of its first process.
    container: Option<ContainerQuery>,
    fault: NetFault,
    /// The TCP caller whose Inject this is: its flow is spared.
    caller: Option<SocketAddr>,
    /// Drop the selected packets (gact) instead of netem.
    blackhole: bool,
    /// The selection is DNS (destination port 53, UDP and TCP): shown as such.
    dns: bool,
}

impl NetworkSpec {
    /// Refuses what iproute2 or the kernel would, naming the parameter
    /// (`spec.network.netem.<parameter>`).
    pub fn new(target: NetnsTarget, fault: NetFault) -> Result<NetworkSpec, FaultError> {
        fault.netem.validate().map_err(net_error)?;
        fault.selection.matches().map_err(net_error)?;
        Ok(NetworkSpec {
            target,
            container: None,
            fault,
            caller: None,
            blackhole: false,
            dns: false,
        })
    }

    /// Drops every selected packet instead of netem (the netem parameters are unused).
    pub fn set_blackhole(&mut self) {
        self.blackhole = true;
    }

    /// The selection is DNS (its port 53 without a protocol came from `dns`).
    pub fn set_dns(&mut self) {
        self.dns = true;
    }

    /// Whether it drops every selected packet.
    pub fn blackhole(&self) -> bool {
        self.blackhole
    }

    /// Spares the flow of the TCP caller at `addr` (the controller that injects it).
    pub fn protect_caller(&mut self, addr: SocketAddr) {
        self.caller = Some(addr);
    }

    /// The traffic this fault steers past itself on `host`: the limits' protected ports
    /// and prefixes, faultd's own TCP listen port, and the caller's flow.
    pub fn exempt(&self, host: &Host) -> tc::Exempt {
        let mut e = host_exempt(host);
        e.flows.extend(self.caller);
        e
    }

    /// A fault in a container's network namespace (found when planned).
    pub fn in_container(
        container: ContainerQuery,
        fault: NetFault,
    ) -> Result<NetworkSpec, FaultError> {
        let mut spec = NetworkSpec::new(NetnsTarget::Current, fault)?;
        spec.container = Some(container);
        Ok(spec)
    }

    /// The namespace it applies in, as the spec gives it (a container's is found by
    /// [`plan`]: see [`Plan::netns`]).
    pub fn target(&self) -> &NetnsTarget {
        &self.target
    }

    /// The container whose namespace it applies in, if it names one.
    pub fn container(&self) -> Option<&ContainerQuery> {
        self.container.as_ref()
    }

    /// The interface, direction, netem parameters and selection.
    pub fn fault(&self) -> &NetFault {
        &self.fault
    }

    /// As the API writes it (defaults filled in): what `Get` shows, and what the
    /// shared describer ([`faultline_proto::describe`]) puts in words.
    pub fn to_proto(&self) -> pb::NetworkSpec {
        to_proto(self)
    }
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
    if spec.blackhole {
        if !n.allow_blackhole {
            return Err(refuse(
                "network.allow_blackhole",
                "false".into(),
                "a blackhole".into(),
            ));
        }
        return Ok(());
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

fn where_(spec: &NetworkSpec, target: &NetnsTarget, container: Option<&Container>) -> String {
    let dir = spec.fault.direction.name();
    match container {
        Some(c) => format!(
            "{} {dir} in container {}'s {target}",
            spec.fault.iface,
            c.short_id()
        ),
        None => format!("{} {dir} in {target}", spec.fault.iface),
    }
}

/// The traffic every network fault on `host` spares, whoever injects it: the limits'
/// protected ports and prefixes, and faultd's own TCP listen port.
pub fn host_exempt(host: &Host) -> tc::Exempt {
    let n = &host.limits.network;
    let mut ports = n.protected_ports.clone();
    if let Some(p) = host.listen_port.get()
        && !ports.contains(p)
    {
        ports.push(*p);
    }
    tc::Exempt {
        ports,
        cidrs: n.protected_cidrs.clone(),
        flows: Vec::new(),
    }
}

/// `, sparing protected traffic (ports 22, 7443; flow 10.1.2.3:50522)`, or nothing
/// when nothing is protected: how a plan, `get` and the record show the exemptions.
pub fn describe_exempt(e: &tc::Exempt) -> String {
    if e.is_empty() {
        String::new()
    } else {
        format!(", sparing protected traffic ({e})")
    }
}

/// The namespace of the container `q` names: its first process's, held by path and
/// checked by inode when applied. A container on the host's network is refused (the
/// fault would shape the node's own interface).
fn container_netns(q: &ContainerQuery) -> Result<(NetnsTarget, Container), FaultError> {
    const FIELD: &str = "spec.network.container";
    let c = super::find_container(q, FIELD)?;
    match c.netns {
        Some(n) if n.host => Err(FaultError::Precondition(format!(
            "container {} ({}) uses the node's own network namespace (host network, net:[{}]): a network fault on it would shape the node's interfaces; target the node explicitly (no --container) if that is what you mean",
            c.short_id(),
            c.runtime,
            n.inode
        ))),
        Some(n) => Ok((
            NetnsTarget::Path(format!("/proc/{}/ns/net", n.pid).into()),
            c,
        )),
        None => Err(FaultError::NotFound(format!(
            "container {} ({}): cannot read /proc/{}/ns/net (its first process exited?)",
            c.short_id(),
            c.runtime,
            c.init
        ))),
    }
}

/// Resolves the target and checks it can take the fault, with every check the apply
/// would fail on (the namespace, the interface, the root qdisc, the kernel's modules as
/// probed at start); changes nothing. This is all a dry run does.
pub async fn plan(spec: &NetworkSpec, host: &Host) -> Result<Plan, FaultError> {
    let (target, container) = match &spec.container {
        Some(q) => {
            let q = q.clone();
            let (t, c) = super::blocking(move || container_netns(&q)).await?;
            (t, Some(c))
        }
        None => (spec.target.clone(), None),
    };
    let tc = Tc::connect(&target).await.map_err(net_error)?;
    let ifindex = tc.ifindex(&spec.fault.iface).await.map_err(net_error)?;
    let root = match spec.fault.direction {
        Direction::Egress | Direction::Both => {
            match tc.root_kind(ifindex).await.map_err(net_error)? {
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
            }
        }
        Direction::Ingress => "ingress redirect to an IFB device".to_string(),
    };
    // The same FailedPrecondition the apply would end with (no sch_netem, say). If the
    // start-up probe could not run, the apply is the check.
    let exempt = spec.exempt(host);
    exempt.matches().map_err(net_error)?;
    if let Ok(k) = &host.net {
        k.check_exempt(&spec.fault, &exempt, spec.blackhole)
            .map_err(net_error)?;
    }
    let id = target
        .identity()
        .map_err(|e| FaultError::NotFound(format!("network namespace {target}: {e}")))?;
    // One fault per interface and direction: `both` takes the two.
    let key = |d: &str| format!("net:{}:{}:{}:{d}", id.0, id.1, spec.fault.iface);
    let conflict_key = match spec.fault.direction {
        Direction::Both => format!("{}|{}", key("egress"), key("ingress")),
        d => key(d.name()),
    };
    let root = if spec.fault.direction == Direction::Both {
        format!("{root}, and ingress through an IFB device")
    } else {
        root
    };
    let wire = spec.to_proto();
    let what = if spec.blackhole {
        "blackhole (drop, tc action gact)".to_string()
    } else {
        format!("netem {}", describe::netem(&wire.netem.unwrap_or_default()))
    };
    let description = format!(
        "{what} on {} (replacing {root}) for {}{}",
        where_(spec, &target, container.as_ref()),
        describe::selection(&wire.selection.unwrap_or_default()),
        describe_exempt(&exempt)
    );
    Ok(Plan {
        targets: Vec::new(),
        excluded: Vec::new(),
        freeze: None,
        description,
        conflict_key: Some(conflict_key),
        stress: None,
        fill: None,
        io: None,
        io_stress: None,
        container,
        netns: Some((target, id)),
        tc: Some(tc),
    })
}

/// Installs the fault; returns the exact undo.
pub async fn apply(spec: &NetworkSpec, mut plan: Plan, host: &Host) -> Result<Applied, FaultError> {
    let target = plan
        .netns
        .as_ref()
        .map(|(t, _)| t.clone())
        .unwrap_or_else(|| spec.target.clone());
    // The plan's connection: opened in the namespace the plan resolved and checked.
    let tc = match plan.tc.take() {
        Some(tc) => tc,
        None => Tc::connect(&target).await.map_err(net_error)?,
    };
    // A container's namespace is held by its first process's path: if that process
    // exited since the plan, the path names another namespace (or none). Refuse rather
    // than shape a namespace nobody asked for.
    if let Some((_, planned)) = &plan.netns
        && spec.container.is_some()
        && target.identity().ok().as_ref() != Some(planned)
    {
        return Err(FaultError::NotFound(format!(
            "{target} is no longer the one planned (its process exited): nothing was changed"
        )));
    }
    // Hold a container's namespace open, checked to be the planned one, before it
    // changes (see `Pin`).
    let pin = match &plan.netns {
        Some((_, planned)) if spec.container.is_some() => Pin::open(&target, planned),
        _ => None,
    };
    let undo = tc
        .apply_exempt(&spec.fault, &spec.exempt(host), spec.blackhole)
        .await
        .map_err(net_error)?;
    Ok(Applied {
        description: format!(
            "{} (was {}, now faultline's {}{})",
            plan.description,
            undo.previous_root,
            undo.installed_root,
            if undo.filters + undo.exemptions > 0 {
                format!(" with {} u32 filters", undo.filters + undo.exemptions)
            } else {
                String::new()
            }
        ),
        undo: Undo::Net(Box::new(undo), Held { pin, tc: Some(tc) }),
        targets: Vec::new(),
    })
}

/// A container's network namespace, held open by the agent while its fault is active,
/// so that the undo can still enter it after the container's process (the path the
/// journal keeps, `/proc/PID/ns/net`) has exited: a pod's namespace outlives any one
/// container, and netem must not be left in it. Closed when the undo is dropped.
#[derive(Debug)]
pub struct Pin(std::fs::File);

impl Pin {
    /// Opens `target`'s namespace file if it is still the namespace `planned`.
    fn open(target: &NetnsTarget, planned: &crate::sys::netns::NetnsId) -> Option<Pin> {
        use std::os::unix::fs::MetadataExt;
        let f = target.open().ok()?;
        let m = f.metadata().ok()?;
        ((m.dev(), m.ino()) == *planned).then_some(Pin(f))
    }

    /// The held namespace, by this process's descriptor: the same namespace (and
    /// identity) as at apply time for as long as the pin lives.
    fn target(&self) -> NetnsTarget {
        use std::os::fd::AsRawFd;
        NetnsTarget::Path(format!("/proc/self/fd/{}", self.0.as_raw_fd()).into())
    }
}

/// What an active network fault keeps open for its revert: the apply's netlink
/// connection (a revert then opens none; one socket per active network fault), and a
/// container's namespace ([`Pin`]).
#[derive(Debug, Default)]
pub struct Held {
    pub pin: Option<Pin>,
    pub tc: Option<Tc>,
}

/// [`revert`], through what the fault holds. A pinned namespace is reverted in place
/// (it is the applied one for as long as the pin lives); otherwise the namespace at the
/// undo's path is checked first, as [`revert`] does, and a missing or replaced one is
/// already reverted.
pub async fn revert_held(undo: &tc::Undo, held: Held) -> Result<Option<String>, FaultError> {
    let reverted = match (held.tc, &held.pin) {
        (Some(tc), Some(_)) => tc.revert_in_place(undo).await,
        (Some(tc), None) if tc.target() == &undo.netns => tc.revert(undo).await,
        (_, Some(p)) => {
            let mut u = undo.clone();
            u.netns = p.target();
            tc::revert(&u).await
        }
        (_, None) => tc::revert(undo).await,
    };
    match reverted.map_err(net_error)? {
        tc::Reverted::Restored => Ok(None),
        tc::Reverted::AlreadyGone(why) => Ok(Some(why)),
    }
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
    if u.filters + u.exemptions > 0 {
        s.push_str(&format!(" and its {} filters", u.filters + u.exemptions));
    }
    if let Some(ifb) = &u.ifb {
        s.push_str(&format!(
            ", the ingress redirect and IFB device {}",
            ifb.name
        ));
    }
    s
}

fn to_proto(n: &NetworkSpec) -> pb::NetworkSpec {
    let e = &n.fault.netem;
    let p = |x: tc::Percent| x.as_percent();
    let mut m = pb::NetemSpec {
        limit: e.limit,
        ..Default::default()
    };
    if let Some(d) = &e.delay {
        m.delay_us = d.latency.as_micros() as u64;
        m.jitter_us = d.jitter.as_micros() as u64;
        m.delay_correlation = p(d.correlation);
        m.distribution = d.distribution.name().to_string();
    }
    match &e.loss {
        Some(tc::Loss::Random(c)) => {
            m.loss_percent = p(c.probability);
            m.loss_correlation = p(c.correlation);
        }
        Some(tc::Loss::GilbertElliott(g)) => {
            m.loss_gemodel = Some(pb::GilbertElliott {
                p: p(g.p),
                r: p(g.r),
                loss_bad: p(g.loss_bad),
                loss_good: p(g.loss_good),
            });
        }
        _ => {}
    }
    if let Some(c) = &e.duplicate {
        m.duplicate_percent = p(c.probability);
        m.duplicate_correlation = p(c.correlation);
    }
    if let Some(c) = &e.corrupt {
        m.corrupt_percent = p(c.probability);
        m.corrupt_correlation = p(c.correlation);
    }
    if let Some(r) = &e.reorder {
        m.reorder_percent = p(r.probability);
        m.reorder_correlation = p(r.correlation);
        m.gap = r.gap;
    }
    if let Some(r) = &e.rate {
        m.rate_bits_per_sec = r.bytes_per_sec * 8;
    }
    let s = &n.fault.selection;
    let ports = |r: &Option<tc::PortRange>| match r {
        Some(r) if r.first == r.last => r.first.to_string(),
        Some(r) => format!("{}-{}", r.first, r.last),
        None => String::new(),
    };
    let (netns, pid) = match &n.target {
        NetnsTarget::Current => (String::new(), 0),
        NetnsTarget::Named(x) => (x.clone(), 0),
        NetnsTarget::Path(x) => (x.display().to_string(), 0),
        NetnsTarget::Pid(p) => (String::new(), *p as i32),
    };
    pb::NetworkSpec {
        iface: n.fault.iface.clone(),
        netns,
        pid,
        container: n
            .container
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        direction: n.fault.direction.name().into(),
        netem: Some(m),
        blackhole: n.blackhole,
        selection: Some(pb::TrafficSelector {
            dst: s.dst.iter().map(|c| c.to_string()).collect(),
            src: s.src.iter().map(|c| c.to_string()).collect(),
            dport: if n.dns {
                String::new()
            } else {
                ports(&s.dport)
            },
            dns: n.dns,
            sport: ports(&s.sport),
            protocol: s
                .protocol
                .map(|p| format!("{p:?}").to_lowercase())
                .unwrap_or_default(),
        }),
    }
}

/// A duration from microseconds, for conversions.
pub fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}
