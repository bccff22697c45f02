//! Capability probes. Each returns `Err(why)` when the running kernel (or machine) lacks
//! the capability. Names:
//!
//! - `root`: running as uid 0.
//! - `cgroup-v1-freezer`: a v1 freezer hierarchy is mounted.
//! - `cgroup2`: a cgroup v2 hierarchy is mounted (controllers or not).
//! - `cgroup2-freeze`: v2 child groups have `cgroup.freeze`.
//! - `cgroup2-controllers`: the v2 root offers the cpu and memory controllers.
//! - `cgroup-v1-cpu-memory`: v1 cpu and memory hierarchies are mounted (v1 stress groups).
//! - `netem`, `prio`, `tbf`, `u32`, `ifb`: the kernel has that qdisc / classifier / link
//!   (probed in a throwaway network namespace, never in the root one).
//! - `prometheus`, `chromium`: Debian's Prometheus server / Chromium is installed and
//!   runs (`--version`); tests/install-deps installs both.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// See the module docs for the names.
pub fn probe(capability: &str) -> Result<(), String> {
    match capability {
        "root" => {
            if nix::unistd::Uid::effective().is_root() {
                Ok(())
            } else {
                Err("not running as root".into())
            }
        }
        "cgroup-v1-freezer" => v1_mount("freezer")
            .map(|_| ())
            .ok_or_else(|| "no cgroup v1 freezer hierarchy is mounted".into()),
        "cgroup-v1-cpu-memory" => match (v1_mount("cpu"), v1_mount("memory")) {
            (Some(_), Some(_)) => Ok(()),
            _ => Err("no cgroup v1 cpu and memory hierarchies are mounted".into()),
        },
        "cgroup2" => v2_mount()
            .map(|_| ())
            .ok_or_else(|| "no cgroup2 hierarchy is mounted".into()),
        "cgroup2-freeze" => {
            let root = v2_mount().ok_or("no cgroup2 hierarchy is mounted")?;
            // cgroup.freeze exists in every non-root v2 group on kernels >= 5.2.
            let probe = root.join(format!("faultline-probe-{}", std::process::id()));
            std::fs::create_dir(&probe)
                .map_err(|e| format!("cannot create {}: {e}", probe.display()))?;
            let ok = probe.join("cgroup.freeze").exists();
            let _ = std::fs::remove_dir(&probe);
            if ok {
                Ok(())
            } else {
                Err("cgroup2 groups have no cgroup.freeze".into())
            }
        }
        "cgroup2-controllers" => {
            let root = v2_mount().ok_or("no cgroup2 hierarchy is mounted")?;
            let c = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let have: Vec<&str> = c.split_whitespace().collect();
            if have.contains(&"cpu") && have.contains(&"memory") {
                Ok(())
            } else {
                Err(format!(
                    "the cgroup2 root at {} offers controllers [{}], not cpu and memory",
                    root.display(),
                    c.trim()
                ))
            }
        }
        "netem" | "prio" | "tbf" | "u32" | "ifb" => cached(capability, probe_tc_kind),
        "prometheus" => cached(capability, |_| {
            runs(&crate::prom_server::binary(), "prometheus")
        }),
        "chromium" => cached(capability, |_| runs(&crate::chromium::binary(), "chromium")),
        other => Err(format!("unknown capability {other:?} (a bug in the test)")),
    }
}

/// Whether `bin --version` runs and exits 0 (`package` names the Debian package).
fn runs(bin: &Path, package: &str) -> Result<(), String> {
    if !bin.is_file() {
        return Err(format!(
            "{} is not installed (Debian's {package} package: tests/install-deps installs it)",
            bin.display()
        ));
    }
    match Command::new(bin).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`{} --version` failed ({}): {}",
            bin.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {}: {e}", bin.display())),
    }
}

/// Mount point of the cgroup v2 hierarchy, if any.
pub fn v2_mount() -> Option<std::path::PathBuf> {
    mounts()
        .into_iter()
        .find(|(fstype, _, _)| fstype == "cgroup2")
        .map(|(_, p, _)| p.into())
}

/// Mount point of the v1 hierarchy carrying `controller`, if any.
pub fn v1_mount(controller: &str) -> Option<std::path::PathBuf> {
    mounts()
        .into_iter()
        .find(|(fstype, _, opts)| fstype == "cgroup" && opts.split(',').any(|o| o == controller))
        .map(|(_, p, _)| p.into())
}

/// (fstype, mount point, super options) of every mount, from /proc/self/mountinfo.
fn mounts() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mp = left.split_whitespace().nth(4)?;
            let mut r = right.split_whitespace();
            let fstype = r.next()?;
            let _src = r.next()?;
            let opts = r.next().unwrap_or("");
            Some((fstype.to_string(), mp.to_string(), opts.to_string()))
        })
        .filter(|(_, mp, _)| Path::new(mp).is_absolute())
        .collect()
}

/// Runs `probe` once per process for `capability` and remembers the answer: the network
/// probes each build a namespace, which costs a few milliseconds.
fn cached(capability: &str, probe: fn(&str) -> Result<(), String>) -> Result<(), String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Result<(), String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(capability)
    {
        return r.clone();
    }
    let r = probe(capability);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(capability.to_string(), r.clone());
    r
}

/// Path of an iproute2 tool (`ip`, `tc`): the first of /usr/sbin, /sbin, /usr/bin, /bin
/// that has it, so that a busybox applet of the same name found earlier on `PATH` is not
/// taken for iproute2. Falls back to the bare name (a `PATH` lookup).
pub fn iproute2(tool: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(tool))
}

/// Runs an iproute2 tool; `Err` carries the command line and its stderr.
fn run_iproute2(tool: &str, args: &[&str]) -> Result<(), String> {
    let line = format!("{tool} {}", args.join(" "));
    let out = Command::new(iproute2(tool))
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{line}` (is iproute2 installed?): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{line}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Probes a qdisc / classifier / link kind (`netem`, `prio`, `tbf`, `u32`, `ifb`) by
/// trying it in a brand-new network namespace that only a short-lived thread is in: the
/// namespace, its veth pair and every qdisc die with the thread, and the root namespace is
/// never touched. Not cached: [`probe`] caches.
pub fn probe_tc_kind(capability: &str) -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("not running as root, so no network namespace can be made to probe in".into());
    }
    let capability = capability.to_string();
    std::thread::spawn(move || -> Result<(), String> {
        // Only this thread (and the iproute2 processes it spawns) moves.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("cannot unshare a network namespace: {e}"))?;
        run_iproute2("ip", &["link", "add", "flprobe0", "type", "veth", "peer", "name", "flprobe1"])?;
        let tc = |args: &str| run_iproute2("tc", &args.split(' ').collect::<Vec<_>>());
        match capability.as_str() {
            "netem" => tc("qdisc add dev flprobe0 root handle 1: netem delay 1ms"),
            "prio" => tc("qdisc add dev flprobe0 root handle 1: prio"),
            "tbf" => tc("qdisc add dev flprobe0 root tbf rate 1mbit burst 32kbit latency 400ms"),
            "u32" => {
                tc("qdisc add dev flprobe0 ingress")?;
                tc("filter add dev flprobe0 parent ffff: protocol ip prio 1 u32 match ip dst 10.0.0.1/32")
            }
            "ifb" => run_iproute2("ip", &["link", "add", "flprobe2", "type", "ifb"]),
            other => Err(format!("no tc probe for {other:?} (a bug in the test support)")),
        }
    })
    .join()
    .unwrap_or_else(|_| Err("the probe thread panicked".into()))
}
