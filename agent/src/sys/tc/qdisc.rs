//! prio and tbf options (iproute2 6.1's `tc/q_prio.c`, `tc/q_tbf.c`), plus the
//! classification of a root qdisc as a kernel default or somebody else's.

use std::time::Duration;

use super::error::NetError;
use super::wire::{NlaWriter, attrs, u32_at, u32s};

const TCA_OPTIONS: u16 = 2;

/// `struct tc_prio_qopt`: `tc qdisc add ... prio bands N priomap P0 .. P15`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prio {
    pub bands: u32,
    pub priomap: [u8; 16],
}

/// iproute2's (and the kernel's) default priomap for 3 bands.
pub const DEFAULT_PRIOMAP: [u8; 16] = [1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];

impl Prio {
    /// faultline's selective root: the three usual bands (default priomap, so ordinary
    /// traffic is scheduled as under pfifo_fast) plus a fourth band that only u32
    /// filters send packets to, with netem attached to it.
    pub fn with_fault_band() -> Prio {
        Prio {
            bands: 4,
            priomap: DEFAULT_PRIOMAP,
        }
    }

    /// TCA_OPTIONS payload: the raw struct followed by an empty nested TCA_OPTIONS, as
    /// iproute2's `addattr_nest_compat` writes it.
    pub fn encode(&self) -> Result<Vec<u8>, NetError> {
        if !(2..=16).contains(&self.bands) {
            return Err(NetError::invalid(
                "prio bands",
                format!("{} is not in 2..=16", self.bands),
            ));
        }
        if let Some(b) = self.priomap.iter().find(|&&b| b as u32 >= self.bands) {
            return Err(NetError::invalid(
                "prio priomap",
                format!("band {b} does not exist"),
            ));
        }
        let mut raw = self.bands.to_ne_bytes().to_vec();
        raw.extend_from_slice(&self.priomap);
        let mut w = NlaWriter::new();
        w.raw(&raw).attr(TCA_OPTIONS, &[]);
        Ok(w.into_bytes())
    }

    pub fn decode(options: &[u8]) -> Result<Prio, NetError> {
        if options.len() < 20 {
            return Err(NetError::Decode {
                what: "prio options".into(),
                detail: "shorter than struct tc_prio_qopt".into(),
            });
        }
        let mut priomap = [0u8; 16];
        priomap.copy_from_slice(&options[4..20]);
        Ok(Prio {
            bands: u32_at(options, 0).unwrap_or(0),
            priomap,
        })
    }
}

/// How much a tbf may queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TbfLimit {
    /// `limit BYTES`.
    Bytes(u32),
    /// `latency TIME`: iproute2 derives the byte limit from it.
    Latency(Duration),
}

/// Token bucket filter: `tc qdisc add ... tbf rate RATE burst BYTES (limit BYTES |
/// latency TIME) [mtu BYTES] [mpu BYTES]`. No peakrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tbf {
    pub bytes_per_sec: u64,
    pub burst: u32,
    pub limit: TbfLimit,
    /// 0: iproute2's default (2047, cell_log 3).
    pub mtu: u32,
    pub mpu: u32,
}

const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RTAB: u16 = 2;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const LINKLAYER_ETHERNET: u8 = 1;

/// iproute2's `tc_calc_xmittime`: microseconds to send `size` bytes at `rate`, in ticks.
fn xmittime(rate: u64, size: u32) -> u32 {
    let us = (1_000_000.0 * (size as f64 / rate as f64)) as u32;
    (us as f64 * 15.625) as u32
}

impl Tbf {
    /// TCA_OPTIONS payload (a plain nest): PARMS, BURST, RATE64 (rates of 2^32 B/s and
    /// more), RTAB.
    pub fn encode(&self) -> Result<Vec<u8>, NetError> {
        if self.bytes_per_sec == 0 {
            return Err(NetError::invalid(
                "tbf rate",
                "a rate of 0 would stop all traffic",
            ));
        }
        if self.burst == 0 {
            return Err(NetError::invalid(
                "tbf burst",
                "the burst must be at least one byte",
            ));
        }
        let rate32 = u32::try_from(self.bytes_per_sec).unwrap_or(u32::MAX);
        let limit = match self.limit {
            TbfLimit::Bytes(b) => b,
            TbfLimit::Latency(d) => {
                let us = d.as_micros().min(u32::MAX as u128) as f64;
                (self.bytes_per_sec as f64 * us / 1_000_000.0 + self.burst as f64) as u32
            }
        };
        if limit == 0 {
            return Err(NetError::invalid(
                "tbf limit",
                "a limit of 0 bytes drops everything",
            ));
        }
        let mtu = if self.mtu == 0 { 2047 } else { self.mtu };
        let mut cell_log = 0u32;
        while (mtu >> cell_log) > 255 {
            cell_log += 1;
        }
        let rtab: Vec<u32> = (0..256u32)
            .map(|i| xmittime(rate32 as u64, ((i + 1) << cell_log).max(self.mpu)))
            .collect();
        // struct tc_ratespec: cell_log u8, linklayer u8, overhead u16, cell_align s16,
        // mpu u16, rate u32.
        let mut ratespec = vec![cell_log as u8, LINKLAYER_ETHERNET];
        ratespec.extend_from_slice(&0u16.to_ne_bytes());
        ratespec.extend_from_slice(&(-1i16).to_ne_bytes());
        ratespec.extend_from_slice(&(self.mpu as u16).to_ne_bytes());
        ratespec.extend_from_slice(&rate32.to_ne_bytes());
        let mut parms = ratespec;
        parms.extend_from_slice(&[0u8; 12]); // peakrate
        parms.extend_from_slice(&u32s(&[limit, xmittime(rate32 as u64, self.burst), 0]));
        let mut w = NlaWriter::new();
        w.attr(TCA_TBF_PARMS, &parms);
        w.attr(TCA_TBF_BURST, &self.burst.to_ne_bytes());
        if self.bytes_per_sec >= 1 << 32 {
            w.attr(TCA_TBF_RATE64, &self.bytes_per_sec.to_ne_bytes());
        }
        w.attr(TCA_TBF_RTAB, &u32s(&rtab));
        Ok(w.into_bytes())
    }

    /// (bytes per second, limit in bytes) from a kernel dump of tbf options.
    pub fn decode_rate_limit(options: &[u8]) -> Option<(u64, u32)> {
        let mut rate = None;
        let mut limit = None;
        let mut rate64 = None;
        for (k, p) in attrs(options) {
            match k {
                TCA_TBF_PARMS => {
                    rate = u32_at(p, 2).map(u64::from);
                    limit = u32_at(p, 6);
                }
                TCA_TBF_RATE64 => {
                    rate64 = p
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_ne_bytes)
                }
                _ => {}
            }
        }
        Some((rate64.or(rate)?, limit?))
    }
}

/// What sits at an interface's root (or ingress) today, as far as faultline cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootKind {
    /// Nothing attached, or a qdisc the kernel attached by itself (noqueue,
    /// pfifo_fast, pfifo, fq_codel, mq, with handle `0:`): deleting the root restores it.
    KernelDefault(String),
    /// faultline's own (tagged handle major).
    Ours(String),
    /// Anything else: an operator's setup. Never touched.
    Foreign { kind: String, handle: u32 },
}

/// Qdisc kinds the kernel attaches by itself to a new interface.
pub const KERNEL_DEFAULT_KINDS: &[&str] =
    &["noqueue", "pfifo_fast", "pfifo", "fq_codel", "mq", "noop"];

/// Classifies a root qdisc from its kind and handle. Only a qdisc the kernel attached
/// by itself counts as a default: a default kind with handle `0:`. The same kind with a
/// handle (which `tc qdisc add/replace` always gets, `8001:` if none is given) was set
/// up by someone, may carry tuned parameters, and is foreign.
pub fn classify_root(kind: Option<&str>, handle: u32, our_major: u16) -> RootKind {
    match kind {
        None => RootKind::KernelDefault("none".into()),
        Some(k) if (handle >> 16) as u16 == our_major && handle != 0 => RootKind::Ours(k.into()),
        Some(k) if handle >> 16 == 0 && KERNEL_DEFAULT_KINDS.contains(&k) => {
            RootKind::KernelDefault(k.into())
        }
        Some(k) => RootKind::Foreign {
            kind: k.into(),
            handle,
        },
    }
}

/// `tc` notation of a handle: `fa17:` or `fa17:4`.
pub fn handle_str(h: u32) -> String {
    let (maj, min) = (h >> 16, h & 0xffff);
    if min == 0 {
        format!("{maj:x}:")
    } else {
        format!("{maj:x}:{min:x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        assert_eq!(
            classify_root(None, 0, 0xfa17),
            RootKind::KernelDefault("none".into())
        );
        assert_eq!(
            classify_root(Some("noqueue"), 0, 0xfa17),
            RootKind::KernelDefault("noqueue".into())
        );
        assert_eq!(
            classify_root(Some("netem"), 0xfa17_0000, 0xfa17),
            RootKind::Ours("netem".into())
        );
        assert_eq!(
            classify_root(Some("tbf"), 0x8001_0000, 0xfa17),
            RootKind::Foreign {
                kind: "tbf".into(),
                handle: 0x8001_0000
            }
        );
        assert_eq!(handle_str(0xfa17_0000), "fa17:");
        assert_eq!(handle_str(0xfa17_0004), "fa17:4");
    }

    #[test]
    fn prio_roundtrip_and_validation() {
        let p = Prio::with_fault_band();
        assert_eq!(Prio::decode(&p.encode().unwrap()).unwrap(), p);
        assert!(
            Prio {
                bands: 2,
                priomap: DEFAULT_PRIOMAP
            }
            .encode()
            .is_err()
        );
        assert!(
            Prio {
                bands: 1,
                priomap: [0; 16]
            }
            .encode()
            .is_err()
        );
    }

    #[test]
    fn tbf_decodes_what_it_encodes() {
        let t = Tbf {
            bytes_per_sec: 125_000,
            burst: 1600,
            limit: TbfLimit::Bytes(3000),
            mtu: 0,
            mpu: 0,
        };
        assert_eq!(
            Tbf::decode_rate_limit(&t.encode().unwrap()),
            Some((125_000, 3000))
        );
        let big = Tbf {
            bytes_per_sec: 6_250_000_000,
            ..t
        };
        assert_eq!(
            Tbf::decode_rate_limit(&big.encode().unwrap()),
            Some((6_250_000_000, 3000))
        );
        assert!(
            Tbf {
                bytes_per_sec: 0,
                ..t
            }
            .encode()
            .is_err()
        );
    }
}
