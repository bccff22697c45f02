//! Running a scenario: the steps in order (parallel groups at once), each fault step
//! picking its nodes, injecting bound to the run's lease on each, holding, reverting and
//! timing recovery; the probes, the lease renewal and the progress line alongside; any
//! abort (a probe failing N times in a row, a probe's SLO breached over its window,
//! Ctrl-C, the maximum duration, a lost lease) stops the steps at once. The end of a run
//! is [`super::cleanup`]'s.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_proto::v1::agent_client::AgentClient;
use faultline_proto::v1::{OpenLeaseRequest, RenewLeaseRequest, RevertRequest};
use tonic::transport::Channel;

use super::document::{Scenario, Step};
use super::report::{NodeStep, Recovery, Report, RunRecord, StepReport, TimelineEntry};
use crate::clock::now_ms;
use crate::inventory::{Inventory, Node};
use crate::probe::{self, Breach, Probe, Shared};

/// One agent the run touched: the lease faultctl holds on it, and over mutual TLS its
/// connection.
///
/// Over Unix sockets (and plain TCP) no connection is kept between calls: a kept
/// connection (tonic channel, HTTP/2 state and buffers) costs tens of KiB, which at
/// 10,000 nodes is most of faultctl's memory, while connecting again is a socket and an
/// HTTP/2 preface. Over TLS a new connection costs a handshake on both sides, so it is
/// kept for the run.
pub(super) struct Held {
    pub(super) node: Node,
    kept: Option<AgentClient<Channel>>,
    pub(super) lease_id: String,
}

impl Held {
    /// A client for this node: the kept connection, or a new one.
    pub(super) async fn client(&self) -> Result<AgentClient<Channel>, String> {
        match &self.kept {
            Some(c) => Ok(c.clone()),
            None => self.node.connect().await.map_err(|e| e.to_string()),
        }
    }
}

/// Whether a connection to `address` is worth keeping for the whole run (a TLS
/// handshake per call is not cheap; a Unix-socket connect is).
fn keep_connection(address: &str) -> bool {
    address.starts_with("https://")
}

/// How many nodes the lease renewal, the reverts and the cleanup speak to at once.
/// Each is a connection in flight (over Unix sockets made for the call), so this bounds
/// the memory of a round; 64 renew 10,000 leases in about 1.5 s (release build).
pub(super) const ROUND_CONCURRENCY: usize = crate::fanout::FANOUT;

/// What the run records as it goes.
struct Record {
    timeline: Vec<TimelineEntry>,
    steps: Vec<StepReport>,
    /// The step in progress, for the progress line.
    current: String,
    tty: bool,
}

/// A run in progress: shared by the steps, the probes, the lease renewal and the
/// progress line.
pub(super) struct Runner {
    pub(super) sc: Scenario,
    inv: Inventory,
    seed: u64,
    pub(super) run_id: String,
    holder: String,
    deadline: Instant,
    t0: Instant,
    /// One cell per node: the lease is opened once, by whichever step needs it first,
    /// without holding up steps on other nodes.
    held: Mutex<BTreeMap<String, Arc<tokio::sync::OnceCell<Arc<Held>>>>>,
    record: Mutex<Record>,
    probes: Vec<(Probe, Shared)>,
    abort_tx: tokio::sync::watch::Sender<Option<Abort>>,
}

/// Why and when a run was aborted.
#[derive(Debug, Clone)]
struct Abort {
    reason: String,
    at_ms: u64,
    /// The SLO breach, when that was the reason.
    breach: Option<Breach>,
}

impl Runner {
    pub(super) fn log(&self, event: String) {
        let mut s = self.record.lock().expect("lock");
        let at_ms = now_ms();
        let clear = if s.tty { "\r\x1b[K" } else { "" };
        eprintln!(
            "{clear}[{} +{:.3}s] {event}",
            crate::render::absolute(at_ms),
            self.t0.elapsed().as_secs_f64()
        );
        s.timeline.push(TimelineEntry { at_ms, event });
    }

    fn abort(&self, reason: String) {
        self.abort_with(reason, None);
    }

    /// The first abort wins; later ones are ignored.
    fn abort_with(&self, reason: String, breach: Option<Breach>) {
        self.abort_tx.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(Abort {
                    reason,
                    at_ms: now_ms(),
                    breach,
                });
                true
            } else {
                false
            }
        });
    }

    /// The lease for `node`, opened on first use, and a client for it.
    async fn hold(&self, node: &Node) -> Result<(Arc<Held>, AgentClient<Channel>), String> {
        let cell = self
            .held
            .lock()
            .expect("lock")
            .entry(node.name.clone())
            .or_default()
            .clone();
        let mut opened = None;
        let h = cell
            .get_or_try_init(|| async {
                let mut client = node.connect().await.map_err(|e| e.to_string())?;
                let lease = client
                    .open_lease(OpenLeaseRequest {
                        ttl_ms: self.sc.lease_ttl.0.as_millis() as u64,
                        holder: self.holder.clone(),
                    })
                    .await
                    .map_err(|s| {
                        format!("cannot open a lease: {}", crate::client::status_text(&s))
                    })?
                    .into_inner();
                self.log(format!(
                    "{}: lease {} opened (ttl {})",
                    node.name, lease.id, self.sc.lease_ttl
                ));
                let kept = keep_connection(&node.address).then(|| client.clone());
                opened = Some(client);
                Ok::<_, String>(Arc::new(Held {
                    node: node.clone(),
                    kept,
                    lease_id: lease.id,
                }))
            })
            .await?
            .clone();
        let client = match opened {
            Some(c) => c,
            None => h.client().await?,
        };
        Ok((h, client))
    }

    /// The lease held on the node named `name`, if any.
    fn held_on(&self, name: &str) -> Option<Arc<Held>> {
        self.held
            .lock()
            .expect("lock")
            .get(name)
            .and_then(|c| c.get().cloned())
    }

    /// Every node with an open lease.
    pub(super) fn held_now(&self) -> Vec<Arc<Held>> {
        self.held
            .lock()
            .expect("lock")
            .values()
            .filter_map(|c| c.get().cloned())
            .collect()
    }

    /// Renews every lease, [`ROUND_CONCURRENCY`] nodes at a time; a lease that cannot be
    /// renewed (or whose node does not answer within half the TTL, which would hold up
    /// the round for every other node) aborts the run.
    async fn renew_all(&self) {
        let held = self.held_now();
        let limit = self.sc.lease_ttl.0 / 2;
        let results = crate::fanout::fan_out_with(&held, ROUND_CONCURRENCY, |h| async move {
            let id = h.lease_id.clone();
            let renew = async {
                let mut c = h.client().await?;
                c.renew_lease(RenewLeaseRequest { id })
                    .await
                    .map(drop)
                    .map_err(|s| s.message().to_string())
            };
            let r = match tokio::time::timeout(limit, renew).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "no answer within {} (half the lease TTL)",
                    humantime::format_duration(limit)
                )),
            };
            r.err()
                .map(|e| format!("{}: lease renewal failed: {e}", h.node.name))
        })
        .await;
        for msg in results.into_iter().flatten() {
            self.log(msg.clone());
            self.abort(msg);
        }
    }

    async fn run_steps(self: &Arc<Self>) {
        let total = self.sc.steps.len();
        for (i, step) in self.sc.steps.iter().enumerate() {
            let idx = (i + 1).to_string();
            let title = step.title(&idx);
            self.record.lock().expect("lock").current = format!("{}/{total} {title}", i + 1);
            if let Some(w) = step.wait {
                self.log(format!("step {idx} ({title}): waiting {w}"));
                tokio::time::sleep(w.0).await;
            } else if let Some(group) = &step.parallel {
                self.log(format!(
                    "step {idx} ({title}): {} steps in parallel",
                    group.len()
                ));
                let futs = group.iter().enumerate().map(|(j, s)| {
                    let me = self.clone();
                    let at = format!("{idx}.{}", j + 1);
                    async move {
                        if let Some(w) = s.wait {
                            tokio::time::sleep(w.0).await;
                        } else {
                            me.fault_step(s, &at).await;
                        }
                    }
                });
                futures::future::join_all(futs).await;
            } else {
                self.fault_step(step, &idx).await;
            }
        }
    }

    /// Inject on the picked nodes, hold, revert, wait for recovery.
    async fn fault_step(self: &Arc<Self>, step: &Step, at: &str) {
        let title = step.title(at);
        let mut rep = StepReport {
            index: at.to_string(),
            name: title.clone(),
            select: step.select.clone().unwrap_or_default(),
            started_at_ms: now_ms(),
            ..Default::default()
        };
        let slot = {
            let mut s = self.record.lock().expect("lock");
            s.steps.push(rep.clone());
            s.steps.len() - 1
        };
        let save = |rep: &StepReport| {
            self.record.lock().expect("lock").steps[slot] = rep.clone();
        };
        let inject = match step.inject_for(&self.sc.name, &self.run_id, &title) {
            Ok(r) => r,
            Err(e) => {
                rep.error = Some(e);
                save(&rep);
                return;
            }
        };
        let spec = inject.fault.spec();
        rep.kind = crate::render::spec_text(Some(&spec));
        let pick = match step.pick(&self.inv, self.seed) {
            Ok(p) => p,
            Err(e) => {
                self.log(format!("step {at} ({title}): {e}"));
                rep.error = Some(e);
                save(&rep);
                return;
            }
        };
        rep.pick = pick.describe();
        self.log(format!("step {at} ({title}): {}; {}", rep.kind, rep.pick));
        rep.injected_at_ms = Some(now_ms());
        // Until the agents answer, each picked node is "no answer" (what an abort leaves).
        rep.nodes = pick
            .nodes
            .iter()
            .map(|n| NodeStep {
                node: n.name.clone(),
                error: Some("no answer: the run was aborted during the inject".into()),
                ..Default::default()
            })
            .collect();
        save(&rep);
        let results = crate::fanout::fan_out(&pick.nodes, |node| {
            let me = self.clone();
            let mut inject = inject.clone();
            async move {
                let mut ns = NodeStep {
                    node: node.name.clone(),
                    ..Default::default()
                };
                let (h, mut client) = match me.hold(node).await {
                    Ok(h) => h,
                    Err(e) => {
                        ns.error = Some(e);
                        return ns;
                    }
                };
                inject.lease = Some(h.lease_id.clone());
                match client.inject(inject.to_proto()).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        let f = r.fault.unwrap_or_default();
                        ns.ok = true;
                        ns.fault_id = Some(f.id.clone());
                        ns.state = crate::render::state_name(f.state);
                        ns.targets = r.targets.iter().map(|t| t.pid).collect();
                        ns.plan = r.plan;
                    }
                    Err(s) => ns.error = Some(crate::client::status_text(&s)),
                }
                ns
            }
        })
        .await;
        rep.nodes = results;
        for n in &rep.nodes {
            match (&n.fault_id, &n.error) {
                (Some(id), _) => self.log(format!(
                    "{}: injected {id} ({}), pids {:?}",
                    n.node, n.state, n.targets
                )),
                (None, Some(e)) => self.log(format!("{}: inject FAILED: {e}", n.node)),
                _ => {}
            }
        }
        save(&rep);
        if rep.nodes.iter().all(|n| n.fault_id.is_none()) {
            // Nothing was injected anywhere: there is no fault to end and nothing to
            // recover from, so no recovery time is measured.
            rep.recovery = Recovery::NoFaultApplied;
            rep.ended_at_ms = Some(now_ms());
            self.log(format!("step {at} ({title}): no fault applied on any node"));
            save(&rep);
            return;
        }
        // Hold: the fault's own duration unless `hold` says otherwise (one-shot: none).
        let hold = match (step.hold, inject.duration) {
            (Some(h), _) => h.0,
            (None, Some(d)) => d.as_duration(),
            (None, None) => Duration::ZERO,
        };
        let lasting = rep
            .nodes
            .iter()
            .any(|n| n.fault_id.is_some() && n.state == "active");
        if lasting && !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
        // Revert what is still active.
        let reverted_at = now_ms();
        let to_revert: Vec<(usize, String)> = rep
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.state == "active")
            .filter_map(|(i, n)| n.fault_id.clone().map(|id| (i, id)))
            .collect();
        let reason = format!("scenario {} step {title} done", self.sc.name);
        let nodes = &rep.nodes;
        let outcomes = crate::fanout::fan_out_with(&to_revert, ROUND_CONCURRENCY, |(i, id)| {
            let reason = reason.clone();
            async move {
                let name = &nodes[*i].node;
                let h = self.held_on(name)?;
                let r = match h.client().await {
                    Ok(mut c) => c
                        .revert(RevertRequest {
                            id: id.clone(),
                            reason,
                        })
                        .await
                        .map_err(|s| (s.code() == tonic::Code::NotFound, s.message().to_string())),
                    Err(e) => Err((false, e)),
                };
                Some(match r {
                    Ok(r) => {
                        let f = r.into_inner().fault.unwrap_or_default();
                        format!("reverted ({})", crate::render::state_name(f.state))
                    }
                    Err((true, _)) => "already ended".into(),
                    Err((false, e)) => {
                        let m = format!("revert failed: {e}");
                        self.log(format!("{name}: {id}: {m}"));
                        m
                    }
                })
            }
        })
        .await;
        for ((i, _), out) in to_revert.iter().zip(outcomes) {
            if out.is_some() {
                rep.nodes[*i].revert = out;
            }
        }
        rep.reverted_at_ms = Some(reverted_at);
        self.log(format!(
            "step {at} ({title}): faults ended; waiting for recovery"
        ));
        save(&rep);
        // Recovery: every probe back to steady state.
        rep.recovery_ms = self.wait_recovery(reverted_at).await;
        rep.recovery = match rep.recovery_ms {
            Some(_) => Recovery::Recovered,
            None => Recovery::NotRecovered,
        };
        rep.ended_at_ms = Some(now_ms());
        match rep.recovery_ms {
            Some(ms) => self.log(format!("step {at} ({title}): recovered in {ms}ms")),
            None => self.log(format!(
                "step {at} ({title}): NOT recovered within {}",
                self.sc.recovery.timeout
            )),
        }
        save(&rep);
    }

    /// Waits until every probe has `consecutive_ok` ok samples in a row from `from_ms`;
    /// returns the recovery time (ms after `from_ms`) or None on timeout.
    pub(super) async fn wait_recovery(&self, from_ms: u64) -> Option<u64> {
        let deadline = Instant::now() + self.sc.recovery.timeout.0;
        loop {
            let mut worst: Option<u64> = Some(0);
            for (_, st) in &self.probes {
                let st = st.lock().expect("lock");
                let r = probe::recovered_at(&st.samples, from_ms, self.sc.recovery.consecutive_ok);
                worst = match (worst, r) {
                    (Some(w), Some(t)) => Some(w.max(t.saturating_sub(from_ms))),
                    _ => None,
                };
            }
            if worst.is_some() {
                return worst;
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs the scenario `sc` on `inv` (probes, steps, aborts, cleanup) and returns its report
/// and, if it was aborted, why.
pub(super) async fn drill(sc: Scenario, inv: Inventory, seed: u64) -> (Report, Option<String>) {
    let run_id = format!("r{:08x}", rand::random::<u32>());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let (abort_tx, mut abort_rx) = tokio::sync::watch::channel(None);
    let probes: Vec<(Probe, Shared)> = sc
        .probes
        .iter()
        .map(|p| (p.clone(), Shared::default()))
        .collect();
    let started = Instant::now();
    let runner = Arc::new(Runner {
        deadline: started + sc.max_duration.0,
        t0: started,
        holder: format!(
            "faultctl run {} ({run_id}) on {host} pid {}",
            sc.name,
            std::process::id()
        ),
        seed,
        run_id: run_id.clone(),
        inv,
        held: Default::default(),
        record: Mutex::new(Record {
            timeline: Vec::new(),
            steps: Vec::new(),
            current: "baseline".into(),
            tty: std::io::stderr().is_terminal(),
        }),
        probes,
        abort_tx,
        sc,
    });
    let started_at_ms = now_ms();
    runner.log(format!(
        "scenario {:?} run {run_id} started (seed {seed}, max duration {})",
        runner.sc.name, runner.sc.max_duration
    ));
    // Probes.
    let mut tasks = Vec::new();
    for (spec, st) in runner.probes.clone() {
        let me = runner.clone();
        tasks.push(tokio::spawn(async move {
            let can_abort =
                me.sc.abort.probes.is_empty() || me.sc.abort.probes.contains(&spec.name);
            let mut tick = tokio::time::interval(spec.interval.0);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let s = spec.sample().await;
                let note = match (s.ok, s.error.clone()) {
                    (true, _) => None,
                    (false, e) => Some(e.unwrap_or_default()),
                };
                let (was, streak, breach) = {
                    let mut g = st.lock().expect("lock");
                    let was = g.failing_streak;
                    g.failing_streak = if s.ok { 0 } else { was + 1 };
                    g.samples.push(s);
                    let breach = spec
                        .slo
                        .as_ref()
                        .and_then(|slo| slo.check(&spec.name, &g.samples));
                    (was, g.failing_streak, breach)
                };
                match note {
                    None if was > 0 => {
                        me.log(format!("probe {} ok again after {was} failures", spec.name))
                    }
                    Some(e) if streak == 1 => me.log(format!("probe {} failing: {e}", spec.name)),
                    _ => {}
                }
                let n = me.sc.abort.probe_failures;
                if can_abort && n > 0 && streak == n {
                    me.abort(format!("probe {} failed {n} times in a row", spec.name));
                }
                if let Some(b) = breach {
                    me.abort_with(b.to_string(), Some(b));
                }
            }
        }));
    }
    // Lease renewal, every third of the TTL from the start of one round to the next (a
    // round over 10,000 nodes takes a while: sleeping a third after it would stretch the
    // period by that much); stopped before the leases are closed.
    let renewal = {
        let me = runner.clone();
        tokio::spawn(async move {
            let every = me.sc.lease_ttl.0 / 3;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.renew_all().await;
            }
        })
    };
    // Progress line on a terminal.
    if std::io::stderr().is_terminal() {
        let me = runner.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let left = me.deadline.saturating_duration_since(Instant::now());
                let health: Vec<String> = me
                    .probes
                    .iter()
                    .map(|(p, st)| {
                        let g = st.lock().expect("lock");
                        match g.samples.last() {
                            Some(s) if s.ok => {
                                format!("{} ok {}ms", p.name, s.latency_us / 1000)
                            }
                            Some(_) => format!("{} FAIL x{}", p.name, g.failing_streak),
                            None => format!("{} -", p.name),
                        }
                    })
                    .collect();
                let cur = me.record.lock().expect("lock").current.clone();
                eprint!(
                    "\r\x1b[K{} | step {cur} | {}s left | {}",
                    me.sc.name,
                    left.as_secs(),
                    health.join(", ")
                );
            }
        }));
    }
    let steps = async {
        let _ = tokio::time::timeout(runner.sc.baseline.0, std::future::pending::<()>()).await;
        runner.log(format!("baseline of {} taken", runner.sc.baseline));
        runner.run_steps().await;
    };
    let ctrl_c = tokio::signal::ctrl_c();
    let aborted = |reason: String| Abort {
        reason,
        at_ms: now_ms(),
        breach: None,
    };
    let abort: Option<Abort> = tokio::select! {
        () = steps => None,
        r = abort_rx.wait_for(Option::is_some) => r.ok().and_then(|v| v.clone()),
        _ = ctrl_c => Some(aborted("interrupted (Ctrl-C)".into())),
        () = tokio::time::sleep_until(runner.deadline.into()) => {
            Some(aborted(format!("max_duration {} reached", runner.sc.max_duration)))
        }
    };
    let abort_reason = abort.as_ref().map(|a| a.reason.clone());
    renewal.abort();
    if let Some(r) = &abort_reason {
        runner.log(format!("ABORT: {r}: reverting every fault of this run"));
    }
    let cleanup = runner.cleanup(abort_reason.as_deref().unwrap_or("")).await;
    let faults_ended_at_ms = now_ms();
    for c in &cleanup {
        runner.log(format!(
            "{}: lease {} closed, {} reverted{}",
            c.node,
            c.lease_id,
            c.reverted,
            if c.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.detail.join("; "))
            }
        ));
    }
    let abort_recovery_ms = if abort_reason.is_some() && !runner.probes.is_empty() {
        let from = now_ms();
        let r = runner.wait_recovery(from).await;
        runner.log(match r {
            Some(ms) => format!("recovered {ms}ms after the abort"),
            None => "NOT recovered after the abort".into(),
        });
        r
    } else {
        None
    };
    for t in &tasks {
        t.abort();
    }
    if runner.record.lock().expect("lock").tty {
        eprint!("\r\x1b[K");
    }
    runner.log(format!(
        "scenario {:?} {}",
        runner.sc.name,
        if abort_reason.is_some() {
            "aborted"
        } else {
            "finished"
        }
    ));
    let record = runner.record.lock().expect("lock");
    let probe_data: Vec<(Probe, Vec<probe::Sample>)> = runner
        .probes
        .iter()
        .map(|(p, st)| (p.clone(), st.lock().expect("lock").samples.clone()))
        .collect();
    let report = Report::build(
        &runner.sc,
        RunRecord {
            run_id,
            seed,
            inventory: runner.inv.source.display().to_string(),
            started_at_ms,
            ended_at_ms: now_ms(),
            abort_reason: abort_reason.clone(),
            aborted_at_ms: abort.as_ref().map(|a| a.at_ms),
            abort_condition: abort.and_then(|a| a.breach),
            abort_recovery_ms,
            faults_ended_at_ms: Some(faults_ended_at_ms),
            steps: record.steps.clone(),
            timeline: record.timeline.clone(),
            cleanup,
        },
        &probe_data,
    );
    drop(record);
    (report, abort_reason)
}
