//! Capability probes. Each answers `Ok(())` when the running kernel (or machine) has the
//! capability, or `Err(why)` when the kernel itself says it lacks it. A probe that breaks
//! for any other reason (no `ip` binary, a failed `unshare`, a tc syntax error, a leftover
//! probe cgroup) panics: a broken probe must never read as "this kernel lacks X" and turn
//! a test into a skip. Names:
//!
//! - `root`: running as uid 0.
//! - `cgroup-v1-freezer`: a v1 freezer hierarchy is mounted.
//! - `cgroup2`: a cgroup v2 hierarchy is mounted (controllers or not).
//! - `cgroup2-freeze`: v2 child groups have `cgroup.freeze`.
//! - `cgroup2-controllers`: the v2 root offers the cpu and memory controllers.
//! - `cgroup-v1-cpu-memory`: v1 cpu and memory hierarchies are mounted (v1 stress groups).
//! - `netem`, `prio`, `tbf`, `u32`, `ifb`, `mirred`: the kernel has that qdisc /
//!   classifier / link / action, probed with iproute2 (never with faultline's own code) in
//!   a throwaway network namespace, never in the root one. Only the kernel's own answers
//!   for an unknown kind ("Specified qdisc kind is unknown", "TC classifier not found",
//!   "Failed to load TC action module", "Unknown device type", or a bare ENOENT /
//!   EOPNOTSUPP from an old iproute2) count as missing.
//! - `openssh`: OpenSSH's `ssh-keygen` (with `-Y verify`), `ssh-agent` and `ssh-add` are
//!   on `PATH` (Debian's openssh-client; `tests/install-deps` installs it).
//! - `podman`: real containers run here (podman with runc, busybox-static; a throwaway
//!   container is started and removed, see [`crate::container`]).
//! - `prometheus`, `chromium`: Debian's Prometheus server (unpacked by tests/interop-deps,
//!   see [`crate::interop::prometheus`]) / Chromium (installed by tests/install-deps) is
//!   there (missing if the binary is absent; a binary whose `--version` fails is a broken
//!   probe).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// What a probe found out: the capability is missing (a skip), or the probe itself broke
/// (a failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The kernel (or machine) answered that it lacks the capability.
    Missing(String),
    /// The probe could not ask: anything but the kernel's "unknown kind".
    Broken(String),
}

impl Probe {
    fn missing(why: impl Into<String>) -> Probe {
        Probe::Missing(why.into())
    }
    fn broken(why: impl Into<String>) -> Probe {
        Probe::Broken(why.into())
    }
}

/// See the module docs for the names. `Err(why)` if the capability is missing; panics if
/// the probe broke (see [`try_probe`]).
pub fn probe(capability: &str) -> Result<(), String> {
    match try_probe(capability) {
        Ok(()) => Ok(()),
        Err(Probe::Missing(why)) => Err(why),
        Err(Probe::Broken(why)) => panic!(
            "the probe for capability {capability:?} broke: {why} (a broken probe is a failure, not a missing capability)"
        ),
    }
}

/// Like [`probe`], but returns a broken probe as [`Probe::Broken`] instead of panicking.
pub fn try_probe(capability: &str) -> Result<(), Probe> {
    match capability {
        "root" => {
            if nix::unistd::Uid::effective().is_root() {
                Ok(())
            } else {
                Err(Probe::missing("not running as root"))
            }
        }
        "cgroup-v1-freezer" => v1_mount_checked("freezer")?
            .map(|_| ())
            .ok_or_else(|| Probe::missing("no cgroup v1 freezer hierarchy is mounted")),
        "cgroup-v1-cpu-memory" => match (v1_mount_checked("cpu")?, v1_mount_checked("memory")?) {
            (Some(_), Some(_)) => Ok(()),
            _ => Err(Probe::missing(
                "no cgroup v1 cpu and memory hierarchies are mounted",
            )),
        },
        "cgroup2" => v2_mount_checked()?
            .map(|_| ())
            .ok_or_else(|| Probe::missing("no cgroup2 hierarchy is mounted")),
        "cgroup2-freeze" => cached(capability, probe_cgroup2_freeze),
        "cgroup2-controllers" => {
            let root = v2_mount_checked()?
                .ok_or_else(|| Probe::missing("no cgroup2 hierarchy is mounted"))?;
            let file = root.join("cgroup.controllers");
            let c = std::fs::read_to_string(&file)
                .map_err(|e| Probe::broken(format!("cannot read {}: {e}", file.display())))?;
            let have: Vec<&str> = c.split_whitespace().collect();
            if have.contains(&"cpu") && have.contains(&"memory") {
                Ok(())
            } else {
                Err(Probe::missing(format!(
                    "the cgroup2 root at {} offers controllers [{}], not cpu and memory",
                    root.display(),
                    c.trim()
                )))
            }
        }
        "netem" | "prio" | "tbf" | "u32" | "ifb" | "mirred" => cached(capability, probe_tc_kind),
        "podman" => cached(capability, |_| {
            crate::container::probe().map_err(Probe::missing)
        }),
        "openssh" => {
            for tool in ["ssh-keygen", "ssh-agent", "ssh-add"] {
                // ssh-agent and ssh-add have no --version: a usage error still proves the
                // binary runs.
                Command::new(tool).arg("-?").output().map_err(|e| {
                    Probe::missing(format!("cannot run {tool} (install openssh-client): {e}"))
                })?;
            }
            let help = Command::new("ssh-keygen")
                .arg("-?")
                .output()
                .map_err(|e| Probe::broken(format!("cannot run ssh-keygen: {e}")))?;
            if !String::from_utf8_lossy(&help.stderr).contains("-Y verify") {
                return Err(Probe::missing(
                    "this ssh-keygen has no -Y verify (OpenSSH 8.2 or later)",
                ));
            }
            Ok(())
        }
        "prometheus" => cached(capability, |_| match crate::interop::prometheus() {
            Ok(bin) => runs(&bin, "prometheus"),
            Err(why) => Err(Probe::missing(why)),
        }),
        "chromium" => cached(capability, |_| runs(&crate::chromium::binary(), "chromium")),
        other => Err(Probe::broken(format!(
            "unknown capability {other:?} (a bug in the test)"
        ))),
    }
}

/// Whether `bin --version` runs and exits 0 (`package` names the Debian package): missing
/// if `bin` is not there, broken if it is and does not run.
fn runs(bin: &Path, package: &str) -> Result<(), Probe> {
    if !bin.is_file() {
        return Err(Probe::missing(format!(
            "{} is not installed (Debian's {package} package: tests/install-deps installs it)",
            bin.display()
        )));
    }
    match Command::new(bin).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(Probe::broken(format!(
            "`{} --version` failed ({}): {}",
            bin.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) => Err(Probe::broken(format!("cannot run {}: {e}", bin.display()))),
    }
}

/// The capability the agent's CPU and memory stress needs on this host, for a skip's
/// label: `cgroup2-controllers` where the host has no v1 cpu or memory hierarchy (a pure
/// cgroup2 host, the VM tier), else `cgroup-v1-cpu-memory`. The agent itself uses v2 when
/// its root offers cpu and memory, else v1 cpu and memory.
pub fn stress_capability() -> &'static str {
    if v1_mount("cpu").is_some() || v1_mount("memory").is_some() {
        "cgroup-v1-cpu-memory"
    } else {
        "cgroup2-controllers"
    }
}

/// Whether the agent can run CPU and memory stress here (v2 with cpu and memory, or v1
/// cpu and memory); `Err(why)` names what is missing.
pub fn stress() -> Result<(), String> {
    if probe("cgroup2-controllers").is_ok() || probe("cgroup-v1-cpu-memory").is_ok() {
        Ok(())
    } else {
        Err(format!(
            "neither cgroup2 with the cpu and memory controllers nor v1 cpu and memory hierarchies ({} here)",
            if v2_mount().is_some() && v1_mount("cpu").is_none() {
                "cgroup2 only"
            } else {
                "v1 without cpu or memory"
            }
        ))
    }
}

/// `cgroup.freeze` in a fresh v2 child named for this process: mkdir, look, rmdir. Any
/// error but "no cgroup2 mounted" is a broken probe (a leftover probe group, EROFS...).
fn probe_cgroup2_freeze(_: &str) -> Result<(), Probe> {
    let root =
        v2_mount_checked()?.ok_or_else(|| Probe::missing("no cgroup2 hierarchy is mounted"))?;
    // cgroup.freeze exists in every non-root v2 group on kernels >= 5.2.
    let dir = root.join(crate::unique_name("faultline-probe-"));
    std::fs::create_dir(&dir)
        .map_err(|e| Probe::broken(format!("cannot create {}: {e}", dir.display())))?;
    let ok = dir.join("cgroup.freeze").exists();
    std::fs::remove_dir(&dir)
        .map_err(|e| Probe::broken(format!("cannot remove {}: {e}", dir.display())))?;
    if ok {
        Ok(())
    } else {
        Err(Probe::missing(format!(
            "cgroup2 groups have no cgroup.freeze (no {} after mkdir)",
            dir.join("cgroup.freeze").display()
        )))
    }
}

/// Mount point of the cgroup v2 hierarchy, if any.
pub fn v2_mount() -> Option<std::path::PathBuf> {
    v2_mount_checked().unwrap_or_else(|e| panic!("{e:?}"))
}

/// Mount point of the v1 hierarchy carrying `controller`, if any.
pub fn v1_mount(controller: &str) -> Option<std::path::PathBuf> {
    v1_mount_checked(controller).unwrap_or_else(|e| panic!("{e:?}"))
}

fn v2_mount_checked() -> Result<Option<PathBuf>, Probe> {
    Ok(mounts()?
        .into_iter()
        .find(|(fstype, _, _)| fstype == "cgroup2")
        .map(|(_, p, _)| p.into()))
}

fn v1_mount_checked(controller: &str) -> Result<Option<PathBuf>, Probe> {
    Ok(mounts()?
        .into_iter()
        .find(|(fstype, _, opts)| fstype == "cgroup" && opts.split(',').any(|o| o == controller))
        .map(|(_, p, _)| p.into()))
}

/// (fstype, mount point, super options) of every mount, from /proc/self/mountinfo.
fn mounts() -> Result<Vec<(String, String, String)>, Probe> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Probe::broken(format!("cannot read /proc/self/mountinfo: {e}")))?;
    Ok(text
        .lines()
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
        .collect())
}

/// Runs `probe` once per process for `capability` and remembers the answer: the network
/// probes each build a namespace, which costs a few milliseconds.
fn cached(capability: &str, probe: fn(&str) -> Result<(), Probe>) -> Result<(), Probe> {
    static CACHE: OnceLock<Mutex<HashMap<String, Result<(), Probe>>>> = OnceLock::new();
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

/// The kernel's own answers for a kind it does not have (netlink extack messages, or the
/// bare errno an iproute2 without extack support prints).
const UNKNOWN_KIND: &[&str] = &[
    "Specified qdisc kind is unknown",
    "TC classifier not found",
    "Failed to load TC action module",
    "Unknown device type",
    "RTNETLINK answers: No such file or directory",
    "RTNETLINK answers: Operation not supported",
];

/// Runs an iproute2 tool. The kernel's "unknown kind" answer is [`Probe::Missing`]; any
/// other failure (no such program, a syntax error, EEXIST, EPERM...) is
/// [`Probe::Broken`]. Both carry the command line and its stderr.
pub fn run_iproute2(tool: &str, args: &[&str]) -> Result<(), Probe> {
    let line = format!("{tool} {}", args.join(" "));
    let out = Command::new(iproute2(tool))
        .args(args)
        .output()
        .map_err(|e| Probe::broken(format!("cannot run `{line}` (is iproute2 installed?): {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let why = format!("`{line}` failed: {err}");
    if UNKNOWN_KIND.iter().any(|m| err.contains(m)) {
        Err(Probe::Missing(why))
    } else {
        Err(Probe::Broken(why))
    }
}

/// Probes a qdisc / classifier / link / action kind (`netem`, `prio`, `tbf`, `u32`,
/// `ifb`, `mirred`) by trying it with iproute2 in a brand-new network namespace that only
/// a short-lived thread is in: the namespace, its veth pair and every qdisc die with the
/// thread, and the root namespace is never touched. Not cached: [`probe`] caches.
pub fn probe_tc_kind(capability: &str) -> Result<(), Probe> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(Probe::missing(
            "not running as root, so no network namespace can be made to probe in",
        ));
    }
    let capability = capability.to_string();
    std::thread::spawn(move || -> Result<(), Probe> {
        // Only this thread (and the iproute2 processes it spawns) moves.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            Probe::broken(format!("cannot unshare a network namespace: {e}"))
        })?;
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
            "mirred" => {
                // The u32 filter carries the action; without u32 the answer is about u32.
                tc("qdisc add dev flprobe0 ingress")?;
                tc("filter add dev flprobe0 parent ffff: protocol ip prio 1 u32 match ip dst 10.0.0.1/32 action mirred egress redirect dev flprobe1")
            }
            other => Err(Probe::broken(format!(
                "no tc probe for {other:?} (a bug in the test support)"
            ))),
        }
    })
    .join()
    .unwrap_or_else(|_| Err(Probe::broken("the probe thread panicked")))
}
