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
    let (net_ok, net_detail) = match &host.net {
        Ok(k) => {
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
            let missing: Vec<String> = parts
                .iter()
                .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
                .collect();
            let mut d = format!(
                "kernel has {}",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            );
            if !missing.is_empty() {
                d.push_str(&format!("; missing {}", missing.join("; ")));
            }
            if k.netem.is_err() {
                d = format!("no sch_netem in this kernel ({d})");
            } else if k.prio.is_err() || k.u32.is_err() {
                d.push_str(" (traffic selection needs prio and u32)");
            }
            (k.netem.is_ok(), d)
        }
        Err(e) => (
            false,
            format!("cannot probe the kernel's traffic control: {e}"),
        ),
    };
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
    ]
}
