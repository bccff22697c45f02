//! Real containers for the tests: Debian's `podman` with `runc`, started from a root file
//! system made of a static busybox (no image registry is needed or reachable), with no
//! network (`--network none`: podman touches no link of the root namespace), a unique
//! name, and removed (`podman rm -f -t 0`) when dropped.
//!
//! `crun`, podman's default runtime, refuses the build hosts' hybrid cgroups; the two
//! `--ulimit` flags avoid runc's setrlimit refusal there (see
//! `../shared/kernel-notes.md`, "Containers on this machine").

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where Debian's busybox-static puts its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// busybox applets linked into the root file system.
const APPLETS: &[&str] = &[
    "sh", "sleep", "cat", "true", "ip", "ping", "nc", "echo", "ls", "kill", "yes", "date",
];

/// A running container, removed when dropped.
pub struct Container {
    pub name: String,
    /// The full id (64 hex digits).
    pub id: String,
    /// Its first process, as the host sees it.
    pub pid: i32,
    rootfs: Option<tempfile::TempDir>,
}

fn podman(args: &[&str]) -> Result<String, String> {
    let out = Command::new("podman")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run podman (apt-get install podman runc): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "`podman {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A root file system with busybox and its applets under `bin/`.
fn rootfs() -> Result<tempfile::TempDir, String> {
    let t = tempfile::Builder::new()
        .prefix("faultline-rootfs-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    std::fs::copy(BUSYBOX, bin.join("busybox"))
        .map_err(|e| format!("cannot copy {BUSYBOX} (apt-get install busybox-static): {e}"))?;
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(a)).map_err(|e| e.to_string())?;
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(t.path().join(d)).map_err(|e| e.to_string())?;
    }
    Ok(t)
}

/// A unique container name: `faultline-TAG-PID-N`.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "faultline-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Container {
    /// Starts `cmd` (e.g. `["/bin/sleep", "300"]`) in a new container named after `tag`.
    pub fn start(tag: &str, cmd: &[&str]) -> Result<Container, String> {
        Container::start_with(tag, &[], cmd)
    }

    /// [`Container::start`] with more `podman run` options (e.g. `--network host`).
    pub fn start_with(tag: &str, opts: &[&str], cmd: &[&str]) -> Result<Container, String> {
        let root = rootfs()?;
        let name = unique_name(tag);
        let rootfs_path = root.path().to_string_lossy().into_owned();
        let mut args = vec![
            "--runtime",
            "runc",
            "run",
            "-d",
            "--name",
            &name,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        if !opts.iter().any(|o| o.starts_with("--network")) {
            args.extend(["--network", "none"]);
        }
        args.extend(opts);
        args.extend(["--rootfs", &rootfs_path]);
        args.extend(cmd);
        let id = podman(&args)?;
        let mut c = Container {
            name,
            id,
            pid: 0,
            rootfs: Some(root),
        };
        c.pid = c
            .inspect("{{.State.Pid}}")?
            .parse()
            .map_err(|e| format!("podman inspect gave no pid: {e}"))?;
        if c.id.len() != 64 {
            return Err(format!("podman printed {:?}, not a 64-digit id", c.id));
        }
        Ok(c)
    }

    /// `podman inspect -f FORMAT NAME`.
    pub fn inspect(&self, format: &str) -> Result<String, String> {
        podman(&["inspect", "-f", format, &self.name])
    }

    /// `podman exec NAME CMD...`: its stdout, or why it failed.
    pub fn exec(&self, cmd: &[&str]) -> Result<String, String> {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend(cmd);
        podman(&args)
    }

    /// The container's state as podman sees it (`running`, `paused`, `exited`).
    pub fn status(&self) -> Result<String, String> {
        self.inspect("{{.State.Status}}")
    }

    /// Whether the container's first process still runs.
    pub fn running(&self) -> bool {
        self.inspect("{{.State.Running}}").as_deref() == Ok("true")
    }

    /// The container's cgroup path (`/libpod_parent/libpod-ID` here), from
    /// `/proc/PID/cgroup`'s first line that names the id.
    pub fn cgroup(&self) -> Result<String, String> {
        let text = std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid))
            .map_err(|e| format!("cannot read /proc/{}/cgroup: {e}", self.pid))?;
        text.lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .find(|p| p.contains(&self.id))
            .map(str::to_string)
            .ok_or_else(|| format!("/proc/{}/cgroup does not name {}", self.pid, self.id))
    }

    /// `podman rm -f -t 0`: kills and removes the container now.
    pub fn remove(&mut self) -> Result<(), String> {
        let r = podman(&["rm", "-f", "-t", "0", &self.name]).map(|_| ());
        self.rootfs.take();
        r
    }

    /// The root file system directory (for files a test puts in).
    pub fn rootfs(&self) -> Option<&Path> {
        self.rootfs.as_ref().map(|t| t.path())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.rootfs.is_some() {
            let _ = self.remove();
        }
    }
}

/// Whether real containers can run here: podman, runc and busybox installed, and a
/// throwaway container runs `/bin/true`. `Err(why)` otherwise.
pub fn probe() -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("not running as root (rootful podman)".into());
    }
    for (bin, pkg) in [("podman", "podman"), ("runc", "runc")] {
        if !on_path(bin) {
            return Err(format!("{bin} is not installed (apt-get install {pkg})"));
        }
    }
    if !Path::new(BUSYBOX).is_file() {
        return Err(format!(
            "{BUSYBOX} is missing (apt-get install busybox-static)"
        ));
    }
    let mut c = Container::start("probe", &["/bin/sleep", "30"])?;
    c.remove()
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Removes the containers named `faultline-TAG-PID-N` whose test process PID is gone
/// (left by a crashed run; a running test's own are kept). Returns how many.
pub fn sweep(tag: &str) -> usize {
    let names = podman(&[
        "ps",
        "-a",
        "--filter",
        &format!("name=^faultline-{tag}-"),
        "--format",
        "{{.Names}}",
    ])
    .unwrap_or_default();
    names
        .lines()
        .filter(|n| {
            let pid = n
                .strip_prefix(&format!("faultline-{tag}-"))
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists())
        })
        .filter(|n| podman(&["rm", "-f", "-t", "0", n]).is_ok())
        .count()
}

/// `PathBuf` of `/proc/PID/ns/net` of the container's first process.
pub fn netns_path(c: &Container) -> PathBuf {
    PathBuf::from(format!("/proc/{}/ns/net", c.pid))
}
