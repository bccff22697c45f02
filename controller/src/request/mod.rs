//! The domain request: a fault to inject, typed and checked. The command line
//! (`crate::cli`) and scenario documents (`crate::scenario`) both produce it, from the same
//! input forms ([`FaultInput`] and the kinds' `*Input`) through the same constructors;
//! only this module turns it into `faultline.v1`.
//!
//! What is checked here is what the controller must turn into numbers (durations,
//! percentages written as text, sizes, rates, labels) and which fields go together. What
//! the agent knows better (limits, signal names, regexes, users, whether a selector
//! matches, the ranges of CPU and memory amounts) is left to it: one source of truth.
//!
//! Errors name the domain field ([`RequestError`]); each edge renders that name its own way.
//!
//! A new fault kind is one file here (its input form, its type with the constructor and
//! its conversion to the proto: a [`Kind`]) plus its line in `fault_kinds!`.

mod disk;
mod error;
mod io;
mod network;
mod process;
mod stress;
mod value;

use faultline_proto::v1;
use serde::Deserialize;

pub use disk::{DiskFill, DiskFillInput, FillAmount};
pub use error::{Field, RequestError};
pub use io::{IoLimit, IoLimitInput, IoStress, IoStressInput};
pub use network::{GilbertElliott, Namespace, Netem, Network, NetworkInput, Selection};
pub use process::{Kill, Pause, Pick, ProcessInput, Selector, Targets};
pub use stress::{Cpu, CpuAmount, CpuInput, Memory, MemoryAmount, MemoryInput, Placement};
pub use value::{Labels, Percent, Period, Rate, Size, Span, Text};

/// What each fault kind's request provides: its input form (a document's keys, the
/// command line's flags), the constructor that checks it, and its spec in `faultline.v1`.
pub trait Kind: Sized {
    /// The unchecked form both edges fill in.
    type Input;
    /// The checked request; a refusal names the input's field.
    fn new(input: &Self::Input) -> Result<Self, RequestError>;
    /// The spec as sent.
    fn to_proto(&self) -> v1::fault_spec::Kind;
}

/// The registry of fault kinds, `document_key: Type`: the [`Fault`] enum, a document's
/// `inject:` keys ([`FaultInput`]) and [`KINDS`] come from this one list, so a new kind
/// is its file (a [`Kind`]) and one line here.
macro_rules! fault_kinds {
    ($($key:ident: $kind:ident),+ $(,)?) => {
        /// The fault kinds, as documents name them.
        pub const KINDS: &[&str] = &[$(stringify!($key)),+];

        /// A fault of one kind.
        // One per inject: the size of a variant does not matter.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum Fault {
            $($kind($kind)),+
        }

        impl Fault {
            fn to_proto(&self) -> v1::fault_spec::Kind {
                match self {
                    $(Fault::$kind(k) => k.to_proto()),+
                }
            }
        }

        /// A fault as a document gives it: exactly one kind (`inject: {kill: {...}}`).
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FaultInput {
            $(pub $key: Option<<$kind as Kind>::Input>),+
        }

        impl FaultInput {
            /// The kinds given, by name.
            pub fn kinds(&self) -> Vec<&'static str> {
                let mut v = Vec::new();
                $(if self.$key.is_some() {
                    v.push(stringify!($key));
                })+
                v
            }

            /// The first kind given, built.
            fn first(&self) -> Option<Result<Fault, RequestError>> {
                $(if let Some(i) = &self.$key {
                    return Some($kind::new(i).map(Fault::$kind));
                })+
                None
            }
        }
    };
}

fault_kinds! {
    kill: Kill,
    pause: Pause,
    network: Network,
    cpu: Cpu,
    memory: Memory,
    disk_fill: DiskFill,
    io_limit: IoLimit,
    io_stress: IoStress,
}

impl Fault {
    /// The spec as sent.
    pub fn spec(&self) -> v1::FaultSpec {
        v1::FaultSpec {
            kind: Some(self.to_proto()),
        }
    }
}

impl FaultInput {
    /// The fault; an error names the kind's field.
    pub fn build(&self) -> Result<Fault, RequestError> {
        match (self.kinds().len(), self.first()) {
            (1, Some(fault)) => fault,
            (given, _) => Err(RequestError::Kinds { given }),
        }
    }
}

/// An inject: the fault, how long it lasts, its labels, and how it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Inject {
    pub fault: Fault,
    /// Required by the agent for faults that last; a one-shot kill has none.
    pub duration: Option<Period>,
    pub labels: Labels,
    /// Resolve and check only; change nothing.
    pub dry_run: bool,
    /// Bind the fault to this lease.
    pub lease: Option<String>,
}

impl Inject {
    /// An inject of `fault` with no duration, labels or lease.
    pub fn new(fault: Fault) -> Inject {
        Inject {
            fault,
            duration: None,
            labels: Labels::default(),
            dry_run: false,
            lease: None,
        }
    }

    /// The request as sent to the agent.
    pub fn to_proto(&self) -> v1::InjectRequest {
        v1::InjectRequest {
            spec: Some(self.fault.spec()),
            duration_ms: self.duration.map_or(0, Period::as_millis),
            labels: self.labels.to_proto(),
            dry_run: self.dry_run,
            lease_id: self.lease.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use v1::fault_spec::Kind;

    fn doc(yaml: &str) -> Result<Fault, RequestError> {
        serde_saphyr::from_str::<FaultInput>(yaml).unwrap().build()
    }

    fn kind(f: &Fault) -> Kind {
        f.spec().kind.unwrap()
    }

    #[test]
    fn scenario_steps_take_blackhole_direction_both_and_dns() {
        let Kind::Network(n) = kind(
            &doc("network: {iface: eth0, blackhole: true, direction: both, dst: [10.0.3.0/24]}\n")
                .unwrap(),
        ) else {
            panic!()
        };
        assert!(n.blackhole);
        assert_eq!(n.direction, "both");
        assert_eq!(n.selection.unwrap().dst, ["10.0.3.0/24"]);
        let Kind::Network(n) =
            kind(&doc("network: {iface: eth0, dns: true, delay: 300ms}\n").unwrap())
        else {
            panic!()
        };
        assert!(n.selection.unwrap().dns && !n.blackhole);
        // Refused before anything is sent, naming the fields.
        assert_eq!(
            doc("network: {iface: eth0, blackhole: true, delay: 10ms, loss: 5%}\n")
                .unwrap_err()
                .to_string(),
            "a blackhole (it drops every selected packet) takes no delay or loss"
        );
        assert_eq!(
            doc("network: {iface: eth0, dns: true, blackhole: true, dport: 53, protocol: udp}\n")
                .unwrap_err()
                .to_string(),
            "dns (it selects destination port 53, UDP and TCP) takes no dport or protocol"
        );
    }

    #[test]
    fn every_kind_with_a_target_takes_a_container() {
        let id = "containerd://75bd73545e7023a79a68ca9c3590f63ef1397b86ab461edfab5e0a8456d68212";
        let Kind::Pause(p) = kind(&doc(&format!("pause: {{container: '{id}'}}\n")).unwrap()) else {
            panic!()
        };
        assert_eq!(p.selector.unwrap().container.as_deref(), Some(id));
        let Kind::Kill(k) = kind(&doc("kill: {container: 75bd73545e70, name: sleep}\n").unwrap())
        else {
            panic!()
        };
        let sel = k.selector.unwrap();
        assert_eq!(
            (sel.container.as_deref(), sel.name.as_deref()),
            (Some("75bd73545e70"), Some("sleep"))
        );
        // A container's network namespace, eth0 inside it by default.
        let Kind::Network(n) =
            kind(&doc("network: {container: 75bd73545e70, delay: 10ms}\n").unwrap())
        else {
            panic!()
        };
        assert_eq!(
            (
                n.iface.as_str(),
                n.container.as_str(),
                n.pid,
                n.netns.as_str()
            ),
            ("eth0", "75bd73545e70", 0, "")
        );
        let Kind::Network(n) =
            kind(&doc("network: {container: 75bd73545e70, iface: net1, delay: 10ms}\n").unwrap())
        else {
            panic!()
        };
        assert_eq!(n.iface, "net1");
        let Kind::Cpu(c) = kind(&doc("cpu: {percent: 50, container: 75bd73545e70}\n").unwrap())
        else {
            panic!()
        };
        assert_eq!(c.placement.unwrap().container, "75bd73545e70");
        let Kind::Memory(m) =
            kind(&doc("memory: {size: 64MiB, container: 75bd73545e70}\n").unwrap())
        else {
            panic!()
        };
        assert_eq!(m.placement.unwrap().container, "75bd73545e70");
    }

    #[test]
    fn a_document_builds_every_kind() {
        let Kind::Kill(k) = kind(&doc("kill: {name: worker, count: 1, every: 30s}\n").unwrap())
        else {
            panic!()
        };
        assert_eq!(k.selector.unwrap().name.as_deref(), Some("worker"));
        assert_eq!(k.pick.unwrap().mode, Some(v1::pick::Mode::Count(1)));
        assert_eq!((k.signal.as_str(), k.every_ms), ("KILL", 30_000));
        let Kind::Network(n) = kind(
            &doc("network: {iface: eth0, delay: 100ms, jitter: 10ms, loss: 2, dport: 5432, protocol: tcp, dst: [10.0.0.0/8], loss_gemodel: '1%,10%'}\n")
                .unwrap(),
        ) else {
            panic!()
        };
        assert_eq!((n.iface.as_str(), n.direction.as_str()), ("eth0", "egress"));
        let e = n.netem.unwrap();
        assert_eq!(
            (e.delay_us, e.jitter_us, e.loss_percent),
            (100_000, 10_000, 2.0)
        );
        let g = e.loss_gemodel.unwrap();
        assert_eq!((g.p, g.r, g.loss_bad, g.loss_good), (1.0, 10.0, 100.0, 0.0));
        let s = n.selection.unwrap();
        assert_eq!((s.dport.as_str(), s.protocol.as_str()), ("5432", "tcp"));
        let Kind::Cpu(c) = kind(&doc("cpu: {cores: 2, load: 50, unit: api.service}\n").unwrap())
        else {
            panic!()
        };
        assert_eq!((c.percent, c.cores, c.load), (0.0, 2, 50.0));
        assert_eq!(c.placement.unwrap().unit, "api.service");
        let Kind::Memory(m) = kind(&doc("memory: {size: 64MiB, ramp: 2s}\n").unwrap()) else {
            panic!()
        };
        assert_eq!((m.size_bytes, m.ramp_ms), (64 << 20, 2000));
        let Kind::DiskFill(d) =
            kind(&doc("disk_fill: {path: /var/lib/app, free: 1GiB, ramp: 30s}\n").unwrap())
        else {
            panic!()
        };
        assert_eq!(
            (d.path.as_str(), d.free_bytes, d.ramp_ms, d.size_bytes),
            ("/var/lib/app", 1 << 30, 30_000, 0)
        );
        let Kind::IoLimit(l) = kind(
            &doc("io_limit: {unit: api.service, path: /var/lib/api, write_bps: 4MiB, read_iops: 100}\n")
                .unwrap(),
        ) else {
            panic!()
        };
        assert_eq!(
            (l.path.as_str(), l.write_bps, l.read_iops, l.read_bps),
            ("/var/lib/api", 4 << 20, 100, 0)
        );
        assert_eq!(l.target.unwrap().unit, "api.service");
        let Kind::IoStress(s) = kind(
            &doc(
                "io_stress: {path: /data, workers: 2, size: 8MiB, mode: mixed, write_bps: 4MiB}\n",
            )
            .unwrap(),
        ) else {
            panic!()
        };
        assert_eq!(
            (
                s.path.as_str(),
                s.workers,
                s.size_bytes,
                s.mode.as_str(),
                s.write_bps,
                s.read_bps
            ),
            ("/data", 2, 8 << 20, "mixed", 4 << 20, 0)
        );
    }

    #[test]
    fn refusals_name_the_documents_fields() {
        let e = |y: &str| doc(y).unwrap_err().to_string();
        assert_eq!(
            e("{}\n"),
            "give exactly one fault kind (kill, pause, network, cpu, memory, disk_fill, io_limit, io_stress), got 0"
        );
        assert_eq!(
            e("kill: {pid: 1}\npause: {pid: 1}\n"),
            "give exactly one fault kind (kill, pause, network, cpu, memory, disk_fill, io_limit, io_stress), got 2"
        );
        assert_eq!(
            e("pause: {pid: 1, signal: TERM}\n"),
            "pause takes no signal"
        );
        assert_eq!(
            e("kill: {pid: 1, all: true, count: 1}\n"),
            "give one of all, count, percent"
        );
        assert_eq!(
            e("kill: {pid: 1, every: 0s}\n"),
            "invalid every: \"0s\" is zero: a duration must be at least 1ms"
        );
        assert_eq!(
            e("network: {iface: eth1, loss: 200%}\n"),
            "invalid loss: \"200%\" is not in 0..=100%"
        );
        assert_eq!(
            e("network: {iface: eth1, rate: 0kbit}\n"),
            "invalid rate: a rate of 0 would stop all traffic"
        );
        assert_eq!(
            e("network: {iface: eth1, netns: x, pid: 1}\n"),
            "give one of netns, pid, container"
        );
        assert_eq!(e("network: {loss: 1%}\n"), "give iface, or container");
        assert_eq!(
            e("cpu: {percent: 5, pid: 1, container: 75bd73545e70}\n"),
            "give one of cgroup, unit, pid, container"
        );
        assert_eq!(e("cpu: {cores: 2}\n"), "give percent, or cores with load");
        assert_eq!(
            e("cpu: {percent: 5, unit: a, pid: 1}\n"),
            "give one of cgroup, unit, pid, container"
        );
        assert_eq!(e("memory: {ramp: 1s}\n"), "give size, or percent");
        assert_eq!(
            e("disk_fill: {path: /d, size: 1GiB, free: 1GiB}\n"),
            "give one of size, percent, free"
        );
        assert_eq!(
            e("disk_fill: {path: d, size: 1GiB}\n"),
            "invalid path: \"d\" is not an absolute path"
        );
        assert_eq!(e("disk_fill: {size: 1GiB}\n"), "give path");
        assert_eq!(
            e("io_stress: {path: data}\n"),
            "invalid path: \"data\" is not an absolute path"
        );
        assert_eq!(
            e("io_stress: {path: /data, workers: 0}\n"),
            "invalid workers: give at least 1 worker"
        );
        assert_eq!(
            e("io_stress: {path: /data, write_bps: 0MiB}\n"),
            "invalid write_bps: must be more than 0"
        );
        assert_eq!(
            e("io_limit: {device: /dev/vdb, write_bps: 4MiB}\n"),
            "give cgroup, or unit, or pid, or container"
        );
        assert_eq!(
            e("io_limit: {unit: a.service, path: /data}\n"),
            "give read_bps, or write_bps, or read_iops, or write_iops"
        );
        assert_eq!(
            e("io_limit: {unit: a.service, write_bps: 4MiB}\n"),
            "give device, or path"
        );
        assert_eq!(
            e("memory: {size: 0MiB}\n"),
            "invalid size: must be more than 0"
        );
        assert!(serde_saphyr::from_str::<FaultInput>("network: {iface: eth1, los: 2%}\n").is_err());
    }
}
