//! netem options: encoder producing exactly what iproute2 6.1's `tc/q_netem.c` sends,
//! and a decoder for what the kernel's `net/sched/sch_netem.c` dumps back.
//!
//! TCA_OPTIONS of a netem qdisc is a raw `struct tc_netem_qopt` followed by attributes
//! (not a nest), in this order: TCA_NETEM_CORR, REORDER, ECN, CORRUPT, SLOT, LOSS
//! (nested, NLA_F_NESTED), RATE64, RATE, DELAY_DIST.
//!
//! Times travel as psched ticks in `tc_netem_qopt` (as iproute2 6.1 sends them). The
//! kernel's tick is fixed at 64 ns (PSCHED_SHIFT 6; `/proc/net/psched` reads
//! `000003e8 00000040 000f4240 3b9aca00` on every kernel since 2.6.31), so iproute2's
//! conversion is `ticks = trunc(microseconds * 15.625)`. The kernel dumps the exact
//! values back as TCA_NETEM_LATENCY64/JITTER64 in nanoseconds.

use std::time::Duration;

use super::dist::Distribution;
use super::error::NetError;
use super::wire::{NLA_F_NESTED, NlaWriter, attrs, u32_at, u32s};

// include/uapi/linux/pkt_sched.h
const TCA_NETEM_CORR: u16 = 1;
const TCA_NETEM_DELAY_DIST: u16 = 2;
const TCA_NETEM_REORDER: u16 = 3;
const TCA_NETEM_CORRUPT: u16 = 4;
const TCA_NETEM_LOSS: u16 = 5;
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_ECN: u16 = 7;
const TCA_NETEM_RATE64: u16 = 8;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;
const TCA_NETEM_SLOT: u16 = 12;
const NETEM_LOSS_GI: u16 = 1;
const NETEM_LOSS_GE: u16 = 2;
/// `sizeof(struct tc_netem_qopt)`.
const QOPT_LEN: usize = 24;

/// psched ticks per microsecond (see the module docs).
const TICKS_PER_USEC: f64 = 15.625;
/// Nanoseconds per psched tick.
const NSEC_PER_TICK: u64 = 64;

/// A probability as the kernel stores it: a fraction of `u32::MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(pub u32);

impl Percent {
    pub const ZERO: Percent = Percent(0);
    pub const ALL: Percent = Percent(u32::MAX);

    /// From a percentage in 0..=100, rounded as iproute2 does
    /// (`rint(pct / 100 * UINT32_MAX)`). `None` if out of range or not a number.
    pub fn new(pct: f64) -> Option<Percent> {
        if !(0.0..=100.0).contains(&pct) {
            return None;
        }
        Some(Percent::from_fraction(pct / 100.0))
    }

    fn from_fraction(f: f64) -> Percent {
        Percent((f * u32::MAX as f64).round_ties_even() as u32)
    }

    /// The percentage, 0..=100.
    pub fn as_percent(self) -> f64 {
        self.0 as f64 * 100.0 / u32::MAX as f64
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// Delay with optional jitter, correlation and jitter distribution.
/// `tc ... netem delay LATENCY [JITTER [CORRELATION]] [distribution NAME]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Delay {
    pub latency: Duration,
    pub jitter: Duration,
    pub correlation: Percent,
    /// The kernel does not dump the table back: a decoded [`Delay`] always says
    /// [`Distribution::Uniform`].
    pub distribution: Distribution,
}

/// A probability with a correlation to the previous decision
/// (`duplicate P [C]`, `corrupt P [C]`, `loss random P [C]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chance {
    pub probability: Percent,
    pub correlation: Percent,
}

/// Packet loss models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// `loss random P [C]`: independent (or correlated) random loss.
    Random(Chance),
    /// `loss gemodel p [r [1-h [1-k]]]`: Gilbert-Elliott two-state model.
    GilbertElliott(GilbertElliott),
    /// `loss state p13 [p31 [p32 [p23 [p14]]]]`: 4-state Markov model (GI).
    FourState(FourState),
}

/// Gilbert-Elliott loss model, in the terms of tc-netem(8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GilbertElliott {
    /// Probability of moving from the good to the bad state.
    pub p: Percent,
    /// Probability of moving from the bad to the good state (iproute2 default 1 - p).
    pub r: Percent,
    /// Loss probability in the bad state (tc's `1-h`; iproute2 default 100 %).
    pub loss_bad: Percent,
    /// Loss probability in the good state (tc's `1-k`; default 0).
    pub loss_good: Percent,
}

impl GilbertElliott {
    /// `loss gemodel P`: iproute2's defaults for the other three.
    pub fn simple(p: Percent) -> Self {
        GilbertElliott {
            p,
            r: Percent(u32::MAX - p.0),
            loss_bad: Percent::ALL,
            loss_good: Percent::ZERO,
        }
    }
}

/// 4-state Markov loss model (`loss state`), transition probabilities as tc-netem(8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FourState {
    pub p13: Percent,
    pub p31: Percent,
    pub p32: Percent,
    pub p23: Percent,
    pub p14: Percent,
}

/// `reorder P [C] gap N`: with delay set, every Nth packet (probabilistically) goes out
/// immediately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reorder {
    pub probability: Percent,
    pub correlation: Percent,
    /// 0 means iproute2's default, 1.
    pub gap: u32,
}

/// `rate RATE [PACKETOVERHEAD [CELLSIZE [CELLOVERHEAD]]]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    /// Bytes per second (tc's `10mbit` is 1 250 000).
    pub bytes_per_sec: u64,
    pub packet_overhead: i32,
    pub cell_size: u32,
    pub cell_overhead: i32,
}

/// `slot MIN_DELAY [MAX_DELAY] [packets N] [bytes N]`: bursty delivery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// 0: no limit.
    pub max_packets: i32,
    /// 0: no limit.
    pub max_bytes: i32,
}

/// Every netem parameter faultline can set. `Netem::default()` is a plain
/// `netem` (limit 1000, nothing else).
#[derive(Clone, Debug, PartialEq)]
pub struct Netem {
    /// Queue limit in packets (`limit N`, default 1000).
    pub limit: u32,
    pub delay: Option<Delay>,
    pub loss: Option<Loss>,
    pub duplicate: Option<Chance>,
    pub corrupt: Option<Chance>,
    pub reorder: Option<Reorder>,
    pub rate: Option<Rate>,
    /// `ecn`: mark instead of dropping (needs a loss model).
    pub ecn: bool,
    pub slot: Option<Slot>,
}

impl Default for Netem {
    fn default() -> Self {
        Netem {
            limit: 1000,
            delay: None,
            loss: None,
            duplicate: None,
            corrupt: None,
            reorder: None,
            rate: None,
            ecn: false,
            slot: None,
        }
    }
}

fn ticks(d: Duration, parameter: &'static str) -> Result<u32, NetError> {
    // iproute2: get_time() gives whole microseconds, tc_core_time2tick() truncates.
    let us = d.as_micros();
    let t = (us as f64 * TICKS_PER_USEC) as u64;
    u32::try_from(t)
        .ok()
        .filter(|_| us <= u32::MAX as u128)
        .ok_or_else(|| {
            NetError::invalid(
                parameter,
                format!("{d:?} is too large (at most about 274 s)"),
            )
        })
}

fn ns_i64(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Netem {
    /// `netem delay LATENCY`: a fixed delay and nothing else.
    pub fn fixed_delay(latency: Duration) -> Netem {
        Netem {
            delay: Some(Delay {
                latency,
                jitter: Duration::ZERO,
                correlation: Percent::ZERO,
                distribution: Distribution::Uniform,
            }),
            ..Netem::default()
        }
    }

    /// Checks what iproute2 and the kernel would refuse, with a message naming the
    /// parameter.
    pub fn validate(&self) -> Result<(), NetError> {
        let latency = self.delay.as_ref().map(|d| d.latency).unwrap_or_default();
        if let Some(d) = &self.delay {
            ticks(d.latency, "delay")?;
            ticks(d.jitter, "jitter")?;
            if d.distribution != Distribution::Uniform
                && (d.latency.is_zero() || d.jitter.is_zero())
            {
                return Err(NetError::invalid(
                    "distribution",
                    "a delay distribution needs both a delay and a jitter",
                ));
            }
            if d.latency.is_zero() && !d.jitter.is_zero() {
                return Err(NetError::invalid("jitter", "jitter needs a delay"));
            }
        }
        if let Some(r) = &self.reorder {
            if !r.probability.is_zero() && ticks(latency, "delay")? == 0 {
                return Err(NetError::invalid(
                    "reorder",
                    "reordering needs a delay (packets not reordered are delayed)",
                ));
            }
            if r.probability.is_zero() && r.gap > 0 {
                return Err(NetError::invalid("gap", "gap needs a reorder probability"));
            }
        }
        if self.ecn && self.loss.is_none() {
            return Err(NetError::invalid("ecn", "ecn needs a loss model"));
        }
        if let Some(r) = &self.rate
            && r.bytes_per_sec == 0
        {
            return Err(NetError::invalid(
                "rate",
                "a rate of 0 would stop all traffic",
            ));
        }
        if let Some(s) = &self.slot
            && s.max_delay < s.min_delay
        {
            return Err(NetError::invalid("slot", "max delay is below min delay"));
        }
        if self.limit == 0 {
            return Err(NetError::invalid(
                "limit",
                "a limit of 0 packets drops everything",
            ));
        }
        Ok(())
    }

    /// The payload of TCA_OPTIONS, byte for byte as `tc qdisc add ... netem ...` sends
    /// it (iproute2 6.1). Validates first.
    ///
    /// One deliberate difference: iproute2 6.1 forgets the duplicate correlation
    /// (`duplicate 5% 10%`) unless another correlation is also given, because it does
    /// not count it as a reason to send TCA_NETEM_CORR; faultline sends it.
    pub fn encode(&self) -> Result<Vec<u8>, NetError> {
        self.validate()?;
        let (lat, jit, delay_corr) = match &self.delay {
            Some(d) => (
                ticks(d.latency, "delay")?,
                ticks(d.jitter, "jitter")?,
                d.correlation,
            ),
            None => (0, 0, Percent::ZERO),
        };
        let (loss, loss_corr) = match &self.loss {
            Some(Loss::Random(c)) => (c.probability, c.correlation),
            _ => (Percent::ZERO, Percent::ZERO),
        };
        let dup = self.duplicate.unwrap_or_default();
        let corrupt = self.corrupt.filter(|c| !c.probability.is_zero());
        let reorder = self.reorder.filter(|r| !r.probability.is_zero());
        let gap = reorder.map(|r| r.gap.max(1)).unwrap_or(0);

        let mut w = NlaWriter::new();
        w.raw(&u32s(&[
            lat,
            self.limit,
            loss.0,
            gap,
            dup.probability.0,
            jit,
        ]));

        let corr_needed = !delay_corr.is_zero()
            || !loss_corr.is_zero()
            || !dup.correlation.is_zero()
            || reorder.is_some_and(|r| !r.correlation.is_zero())
            || corrupt.is_some_and(|c| !c.correlation.is_zero());
        if corr_needed {
            w.attr(
                TCA_NETEM_CORR,
                &u32s(&[delay_corr.0, loss_corr.0, dup.correlation.0]),
            );
        }
        if let Some(r) = reorder {
            w.attr(
                TCA_NETEM_REORDER,
                &u32s(&[r.probability.0, r.correlation.0]),
            );
        }
        if self.ecn {
            w.attr(TCA_NETEM_ECN, &1u32.to_ne_bytes());
        }
        if let Some(c) = corrupt {
            w.attr(
                TCA_NETEM_CORRUPT,
                &u32s(&[c.probability.0, c.correlation.0]),
            );
        }
        if let Some(s) = &self.slot {
            let mut b = Vec::with_capacity(40);
            b.extend_from_slice(&ns_i64(s.min_delay).to_ne_bytes());
            b.extend_from_slice(&ns_i64(s.max_delay).to_ne_bytes());
            b.extend_from_slice(&s.max_packets.to_ne_bytes());
            b.extend_from_slice(&s.max_bytes.to_ne_bytes());
            b.extend_from_slice(&0i64.to_ne_bytes()); // dist_delay
            b.extend_from_slice(&0i64.to_ne_bytes()); // dist_jitter
            w.attr(TCA_NETEM_SLOT, &b);
        }
        match &self.loss {
            Some(Loss::FourState(g)) => {
                w.nest(TCA_NETEM_LOSS | NLA_F_NESTED, |n| {
                    n.attr(
                        NETEM_LOSS_GI,
                        &u32s(&[g.p13.0, g.p31.0, g.p32.0, g.p14.0, g.p23.0]),
                    );
                });
            }
            Some(Loss::GilbertElliott(g)) => {
                w.nest(TCA_NETEM_LOSS | NLA_F_NESTED, |n| {
                    n.attr(
                        NETEM_LOSS_GE,
                        &u32s(&[g.p.0, g.r.0, u32::MAX - g.loss_bad.0, g.loss_good.0]),
                    );
                });
            }
            _ => {}
        }
        if let Some(r) = &self.rate {
            let rate32 = if r.bytes_per_sec >= 1 << 32 {
                w.attr(TCA_NETEM_RATE64, &r.bytes_per_sec.to_ne_bytes());
                u32::MAX
            } else {
                r.bytes_per_sec as u32
            };
            let mut b = u32s(&[rate32]);
            b.extend_from_slice(&r.packet_overhead.to_ne_bytes());
            b.extend_from_slice(&r.cell_size.to_ne_bytes());
            b.extend_from_slice(&r.cell_overhead.to_ne_bytes());
            w.attr(TCA_NETEM_RATE, &b);
        }
        if let Some(d) = &self.delay
            && let Some(table) = d.distribution.table()
        {
            let b: Vec<u8> = table.iter().flat_map(|v| v.to_ne_bytes()).collect();
            w.attr(TCA_NETEM_DELAY_DIST, &b);
        }
        Ok(w.into_bytes())
    }

    /// Reads a TCA_OPTIONS payload (from the kernel's dump or from [`Netem::encode`])
    /// back into parameters. The delay distribution table is not dumped by the kernel,
    /// so [`Delay::distribution`] comes back as `Uniform`. Zero probabilities come back
    /// as `None`.
    pub fn decode(options: &[u8]) -> Result<Netem, NetError> {
        let bad = |detail: &str| NetError::Decode {
            what: "netem options".into(),
            detail: detail.into(),
        };
        if options.len() < QOPT_LEN {
            return Err(bad("shorter than struct tc_netem_qopt"));
        }
        let q = |i| u32_at(options, i).unwrap_or(0);
        let (lat_t, limit, loss, gap, dup, jit_t) = (q(0), q(1), q(2), q(3), q(4), q(5));
        let mut latency = Duration::from_nanos(lat_t as u64 * NSEC_PER_TICK);
        let mut jitter = Duration::from_nanos(jit_t as u64 * NSEC_PER_TICK);
        let mut corr = [0u32; 3];
        let mut reorder = None;
        let mut corrupt = None;
        let mut model = None;
        let mut rate = None;
        let mut rate64 = None;
        let mut ecn = false;
        let mut slot = None;
        for (kind, p) in attrs(&options[QOPT_LEN..]) {
            match kind {
                TCA_NETEM_CORR => {
                    for (i, c) in corr.iter_mut().enumerate() {
                        *c = u32_at(p, i).ok_or_else(|| bad("short TCA_NETEM_CORR"))?;
                    }
                }
                TCA_NETEM_REORDER => {
                    reorder = Some((
                        u32_at(p, 0).ok_or_else(|| bad("short TCA_NETEM_REORDER"))?,
                        u32_at(p, 1).unwrap_or(0),
                    ))
                }
                TCA_NETEM_CORRUPT => {
                    corrupt = Some(Chance {
                        probability: Percent(
                            u32_at(p, 0).ok_or_else(|| bad("short TCA_NETEM_CORRUPT"))?,
                        ),
                        correlation: Percent(u32_at(p, 1).unwrap_or(0)),
                    })
                }
                TCA_NETEM_ECN => ecn = u32_at(p, 0).unwrap_or(0) != 0,
                TCA_NETEM_RATE => {
                    if p.len() < 16 {
                        return Err(bad("short TCA_NETEM_RATE"));
                    }
                    rate = Some(Rate {
                        bytes_per_sec: u32_at(p, 0).unwrap_or(0) as u64,
                        packet_overhead: u32_at(p, 1).unwrap_or(0) as i32,
                        cell_size: u32_at(p, 2).unwrap_or(0),
                        cell_overhead: u32_at(p, 3).unwrap_or(0) as i32,
                    })
                }
                TCA_NETEM_RATE64 => {
                    rate64 = Some(u64::from_ne_bytes(
                        p.get(..8)
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| bad("short TCA_NETEM_RATE64"))?,
                    ))
                }
                TCA_NETEM_LATENCY64 | TCA_NETEM_JITTER64 => {
                    let ns = i64::from_ne_bytes(
                        p.get(..8)
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| bad("short 64-bit time"))?,
                    );
                    let d = Duration::from_nanos(ns.max(0) as u64);
                    if kind == TCA_NETEM_LATENCY64 {
                        latency = d;
                    } else {
                        jitter = d;
                    }
                }
                TCA_NETEM_SLOT => {
                    if p.len() < 24 {
                        return Err(bad("short TCA_NETEM_SLOT"));
                    }
                    let i64_at =
                        |o: usize| i64::from_ne_bytes(p[o..o + 8].try_into().unwrap_or([0; 8]));
                    let i32_at =
                        |o: usize| i32::from_ne_bytes(p[o..o + 4].try_into().unwrap_or([0; 4]));
                    let s = Slot {
                        min_delay: Duration::from_nanos(i64_at(0).max(0) as u64),
                        max_delay: Duration::from_nanos(i64_at(8).max(0) as u64),
                        max_packets: i32_at(16),
                        max_bytes: i32_at(20),
                    };
                    // The kernel reports "no limit" as INT_MAX.
                    slot = Some(Slot {
                        max_packets: if s.max_packets == i32::MAX {
                            0
                        } else {
                            s.max_packets
                        },
                        max_bytes: if s.max_bytes == i32::MAX {
                            0
                        } else {
                            s.max_bytes
                        },
                        ..s
                    });
                }
                TCA_NETEM_LOSS => {
                    for (k, m) in attrs(p) {
                        let v = |i| Percent(u32_at(m, i).unwrap_or(0));
                        match k {
                            NETEM_LOSS_GI => {
                                model = Some(Loss::FourState(FourState {
                                    p13: v(0),
                                    p31: v(1),
                                    p32: v(2),
                                    p14: v(3),
                                    p23: v(4),
                                }))
                            }
                            NETEM_LOSS_GE => {
                                model = Some(Loss::GilbertElliott(GilbertElliott {
                                    p: v(0),
                                    r: v(1),
                                    loss_bad: Percent(u32::MAX - v(2).0),
                                    loss_good: v(3),
                                }))
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if let (Some(r), Some(r64)) = (rate.as_mut(), rate64) {
            r.bytes_per_sec = r64;
        }
        let chance = |p: u32, c: u32| {
            (p != 0).then_some(Chance {
                probability: Percent(p),
                correlation: Percent(c),
            })
        };
        Ok(Netem {
            limit,
            delay: (!latency.is_zero() || !jitter.is_zero()).then_some(Delay {
                latency,
                jitter,
                correlation: Percent(corr[0]),
                distribution: Distribution::Uniform,
            }),
            loss: model.or(chance(loss, corr[1]).map(Loss::Random)),
            duplicate: chance(dup, corr[2]),
            corrupt: corrupt.filter(|c| !c.probability.is_zero()),
            reorder: reorder.filter(|r| r.0 != 0).map(|(p, c)| Reorder {
                probability: Percent(p),
                correlation: Percent(c),
                gap,
            }),
            rate: rate.filter(|r| r.bytes_per_sec != 0),
            ecn,
            slot: slot.filter(|s| !(s.min_delay.is_zero() && s.max_delay.is_zero())),
        })
    }
}
