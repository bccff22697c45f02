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

use std::path::Path;

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
        other => Err(format!("unknown capability {other:?} (a bug in the test)")),
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
