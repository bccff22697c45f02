//! What this host can do, per fault kind, for `Status`.

use faultline_proto::v1 as pb;

use crate::host::Host;

/// One entry per fault kind the API knows, supported or not and why.
pub fn kinds(host: &Host) -> Vec<pb::KindSupport> {
    let pidfd = crate::sys::proc::PidFd::open_checked(
        std::process::id() as i32,
        crate::sys::proc::info(std::process::id() as i32)
            .map(|i| i.starttime)
            .unwrap_or(0),
    );
    let (kill_ok, kill_detail) = match &pidfd {
        Ok(_) => (true, "signals through pidfds".to_string()),
        Err(e) => (
            false,
            format!("pidfd_open does not work on this kernel ({e}); Linux 5.3 or later is needed"),
        ),
    };
    let freeze = match host.cgroups() {
        Ok(c) => {
            let mut ways = Vec::new();
            if c.v2_root().is_some() {
                ways.push("v2 cgroup.freeze");
            }
            if c.v1_root("freezer").is_some() {
                ways.push("v1 freezer");
            }
            if ways.is_empty() {
                "SIGSTOP; no cgroup freezer, so whole-cgroup pauses are refused".to_string()
            } else {
                format!(
                    "SIGSTOP, or freezing a whole cgroup/unit ({})",
                    ways.join(", ")
                )
            }
        }
        Err(e) => format!("SIGSTOP only ({e})"),
    };
    let stress = match host.cgroups() {
        Ok(c) => match c.stress_backend() {
            Ok(b) => (
                true,
                format!(
                    "workers in a faultline-owned cgroup with a hard cap ({b:?} cpu/memory controllers)"
                ),
            ),
            Err(e) => (false, e.to_string()),
        },
        Err(e) => (false, e.to_string()),
    };
    let (net_ok, net_detail) = network(&host.net);
    vec![
        pb::KindSupport {
            kind: pb::FaultKind::Kill as i32,
            supported: kill_ok,
            detail: kill_detail.clone(),
        },
        pb::KindSupport {
            kind: pb::FaultKind::Pause as i32,
            supported: kill_ok,
            detail: if kill_ok { freeze } else { kill_detail },
        },
        pb::KindSupport {
            kind: pb::FaultKind::Network as i32,
            supported: net_ok,
            detail: net_detail,
        },
        pb::KindSupport {
            kind: pb::FaultKind::Cpu as i32,
            supported: stress.0,
            detail: stress.1.clone(),
        },
        pb::KindSupport {
            kind: pb::FaultKind::Memory as i32,
            supported: stress.0,
            detail: stress.1,
        },
        pb::KindSupport {
            kind: pb::FaultKind::DiskFill as i32,
            supported: true,
            detail: "one tagged file per fault, taken with fallocate (written blocks where a filesystem refuses it)".into(),
        },
        io_support(host),
        io_stress_support(host),
    ]
}

/// Whether io stress works here: a stress group (cpu and memory, v2 or v1) that
/// blk-throttle can cap (v1 blkio, or cgroup2 with the io controller).
fn io_stress_support(host: &Host) -> pb::KindSupport {
    let io = io_support(host);
    let (supported, detail) = match host.cgroups().map(|c| c.stress_backend()) {
        Ok(Ok(_)) if io.supported => (
            true,
            format!(
                "O_DIRECT workers in a faultline stress group; {}",
                io.detail
                    .replace(" (the target's parent must enable +io)", "")
            ),
        ),
        Ok(Ok(_)) => (false, io.detail),
        Ok(Err(e)) => (false, e.to_string()),
        Err(e) => (false, e.to_string()),
    };
    pb::KindSupport {
        kind: pb::FaultKind::IoStress as i32,
        supported,
        detail,
    }
}

/// Whether io limits work here: blk-throttle through v1 blkio or cgroup v2 io.max.
fn io_support(host: &Host) -> pb::KindSupport {
    let (supported, detail) = match host.cgroups() {
        Ok(c) => match c.v1_root("blkio") {
            Some(r) if r.join("blkio.throttle.write_bps_device").exists() => (
                true,
                "blk-throttle through cgroup v1 blkio.throttle.*".to_string(),
            ),
            Some(_) => (
                false,
                "the v1 blkio hierarchy has no blkio.throttle files: the kernel lacks CONFIG_BLK_DEV_THROTTLING".to_string(),
            ),
            None => match c.v2_root() {
                Some(r) if std::fs::read_to_string(r.join("cgroup.controllers"))
                    .is_ok_and(|s| s.split_whitespace().any(|x| x == "io")) =>
                {
                    (
                        true,
                        "blk-throttle through cgroup v2 io.max (the target's parent must enable +io)".to_string(),
                    )
                }
                Some(_) => (
                    false,
                    "cgroup2 offers no io controller here (cgroup.controllers lacks io)".to_string(),
                ),
                None => (false, "no blkio or cgroup2 hierarchy".to_string()),
            },
        },
        Err(e) => (false, e.to_string()),
    };
    pb::KindSupport {
        kind: pb::FaultKind::IoLimit as i32,
        supported,
        detail,
    }
}

/// Whether network faults work here, and what the kernel has: each fact once (the
/// missing module's own message says what it is needed for and how to load it).
fn network(probe: &Result<crate::sys::tc::KernelSupport, String>) -> (bool, String) {
    let k = match probe {
        Ok(k) => k,
        Err(e) => {
            return (
                false,
                format!("cannot probe the kernel's traffic control: {e}"),
            );
        }
    };
    let parts = [
        ("netem", &k.netem),
        ("prio", &k.prio),
        ("u32", &k.u32),
        ("mirred", &k.mirred),
        ("ifb", &k.ifb),
    ];
    let have: Vec<&str> = parts
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| *n)
        .collect();
    let have = if have.is_empty() {
        "none of netem, prio, u32, mirred, ifb".to_string()
    } else {
        have.join(", ")
    };
    let missing = |skip: &str| -> Vec<String> {
        parts
            .iter()
            .filter(|(n, _)| *n != skip)
            .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
            .collect()
    };
    match &k.netem {
        Err(e) => {
            let mut d = format!("{e}; the kernel has {have}");
            let others = missing("netem");
            if !others.is_empty() {
                d.push_str(&format!("; also missing {}", others.join("; ")));
            }
            (false, d)
        }
        Ok(()) => {
            let mut d = format!("kernel has {have}");
            let others = missing("netem");
            if !others.is_empty() {
                d.push_str(&format!("; missing {}", others.join("; ")));
            }
            if k.prio.is_err() || k.u32.is_err() {
                d.push_str(" (traffic selection needs prio and u32)");
            }
            (true, d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::tc::{KernelSupport, NetError};

    fn gone(module: &str, what: &str) -> Result<(), String> {
        Err(NetError::MissingKernelModule {
            module: module.into(),
            what: what.into(),
        }
        .to_string())
    }

    fn all() -> KernelSupport {
        KernelSupport {
            netem: Ok(()),
            prio: Ok(()),
            tbf: Ok(()),
            u32: Ok(()),
            mirred: Ok(()),
            ifb: Ok(()),
            missing: Vec::new(),
        }
    }

    #[test]
    fn a_missing_netem_is_said_once() {
        let k = KernelSupport {
            netem: gone("sch_netem", "install a netem root qdisc"),
            prio: gone("sch_prio", "install a prio root qdisc"),
            ..all()
        };
        let (ok, d) = network(&Ok(k));
        assert!(!ok);
        assert_eq!(
            d,
            "this kernel has no sch_netem (needed to install a netem root qdisc): load it with \
             `modprobe sch_netem` or use a kernel that has it; the kernel has u32, mirred, ifb; \
             also missing prio: this kernel has no sch_prio (needed to install a prio root \
             qdisc): load it with `modprobe sch_prio` or use a kernel that has it"
        );
        assert_eq!(
            d.matches("sch_netem").count(),
            2,
            "named, and how to load it"
        );
        let (ok, d) = network(&Ok(all()));
        assert!(ok);
        assert_eq!(d, "kernel has netem, prio, u32, mirred, ifb");
    }
}
