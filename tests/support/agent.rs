//! A real `faultd` on a temporary socket and state dir, and the real `faultctl` pointed
//! at it.
//!
//! Where the agent's stress groups live in cgroup v2 (its root offers cpu and memory),
//! faultd makes its own group a parent for them: it moves every process of that group
//! into a leaf and enables controllers in the group and its ancestors. Started straight
//! from a test, its group would be the test runner's. So on such a host every agent here
//! starts inside a v2 group of the test's own ([`CgroupHome`]), removed when dropped, and
//! the root's `cgroup.subtree_control` is put back as it was ([`RootControllers`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `faultd`, stopped with SIGTERM (and reaped) when dropped.
pub struct Agent {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// The v2 group it was started in (dropped after the agent: fields drop after
    /// `Drop::drop` has stopped it).
    pub home: Option<Arc<CgroupHome>>,
}

/// Enables the cpu and memory controllers in the cgroup2 root's `cgroup.subtree_control`
/// while any holder lives, and disables again, when the last holder goes, those it had to
/// enable: tests leave the root as they found it. Process-wide (tests run on threads).
pub struct RootControllers {
    root: PathBuf,
}

static ROOT_CONTROLLERS: Mutex<(usize, Vec<String>)> = Mutex::new((0, Vec::new()));

impl RootControllers {
    pub fn acquire() -> RootControllers {
        let root = crate::caps::v2_mount().expect("a cgroup2 hierarchy is mounted");
        let mut g = ROOT_CONTROLLERS.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            let file = root.join("cgroup.subtree_control");
            let on = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            for c in ["cpu", "memory"] {
                if !on.split_whitespace().any(|x| x == c) {
                    std::fs::write(&file, format!("+{c}"))
                        .unwrap_or_else(|e| panic!("echo +{c} > {}: {e}", file.display()));
                    g.1.push(c.to_string());
                }
            }
        }
        g.0 += 1;
        RootControllers { root }
    }
}

impl Drop for RootControllers {
    fn drop(&mut self) {
        let mut g = ROOT_CONTROLLERS.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            let file = self.root.join("cgroup.subtree_control");
            for c in std::mem::take(&mut g.1) {
                if let Err(e) = std::fs::write(&file, format!("-{c}")) {
                    crate::leftover(format!(
                        "the {c} controller the tests enabled in {} (echo -{c}: {e})",
                        file.display()
                    ));
                }
            }
        }
    }
}

/// A cgroup v2 group of the test's own directly under the root (`fltagent-…`, a name no
/// sweep of faultline's touches) for agents to start in; on drop, kills whatever is still
/// inside (`cgroup.kill`), removes it and everything below, and fails the test if it
/// cannot. Share one between agents that must see each other's stress groups (the crash
/// loop's restarts).
pub struct CgroupHome {
    pub dir: PathBuf,
    _root: RootControllers,
}

impl CgroupHome {
    /// A home if this host needs one (stress on cgroup v2), else `None`.
    pub fn if_needed() -> Option<Arc<CgroupHome>> {
        crate::probe("cgroup2-controllers")
            .is_ok()
            .then(|| Arc::new(CgroupHome::new()))
    }

    pub fn new() -> CgroupHome {
        let root = RootControllers::acquire();
        let dir = root.root.join(crate::unique_name("fltagent-"));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let home = CgroupHome { dir, _root: root };
        std::fs::create_dir(home.leaf())
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", home.leaf().display()));
        home
    }

    /// Where agents start: the leaf faultd would move itself into (`AGENT_LEAF`), so
    /// that the home itself stays free of processes and a restarted agent can join
    /// after the first enabled controllers in the home.
    pub fn leaf(&self) -> PathBuf {
        self.dir.join(faultline_agent::sys::cgroup::AGENT_LEAF)
    }

    /// Every group at and below the home, deepest first.
    fn groups(&self) -> Vec<PathBuf> {
        let mut all = vec![self.dir.clone()];
        let mut i = 0;
        while i < all.len() {
            for e in std::fs::read_dir(&all[i]).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    all.push(e.path());
                }
            }
            i += 1;
        }
        all.reverse();
        all
    }
}

impl Default for CgroupHome {
    fn default() -> Self {
        CgroupHome::new()
    }
}

impl Drop for CgroupHome {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let mut left = Vec::new();
        for g in self.groups() {
            let gone = eventually(Duration::from_secs(5), || {
                std::fs::remove_dir(&g).is_ok() || !g.exists()
            });
            if !gone {
                left.push(format!(
                    "{} (processes: {})",
                    g.display(),
                    read_trim(&g.join("cgroup.procs")).replace('\n', " ")
                ));
            }
        }
        if !left.is_empty() {
            crate::leftover(format!(
                "cgroups not removed within 5 s: {}",
                left.join(", ")
            ));
        }
    }
}

/// How to start an agent.
#[derive(Default, Clone)]
pub struct AgentOptions {
    /// Limits file text (written to a root-owned 0600 file); None: embedded defaults.
    pub limits: Option<String>,
    /// Extra arguments.
    pub args: Vec<String>,
    /// Extra faultd.toml lines (appended; e.g. `metrics_listen = "127.0.0.1:0"`, TLS
    /// keys and `[roles]` last since a table ends the top level).
    pub config: Option<String>,
    /// Reuse this state dir (e.g. a crashed agent's) instead of a fresh one.
    pub state_dir: Option<PathBuf>,
    /// Extra environment variables (e.g. the test-only
    /// `FAULTLINE_TEST_CRASH_AFTER_JOURNAL=1`).
    pub env: Vec<(String, String)>,
    /// Start in this v2 group (see [`CgroupHome`]); None: a fresh one if the host needs it.
    pub home: Option<Arc<CgroupHome>>,
    /// Return once the socket accepts connections, before crash recovery is done
    /// (health NOT_SERVING); [`Agent::wait_ready`] waits for the rest.
    pub listening_only: bool,
    /// Run faultd inside this network namespace (a name under /run/netns), entered with
    /// `nsenter --net` (which, unlike `ip netns exec`, leaves /sys and the cgroup mounts
    /// alone): its TCP listener is then on that namespace's interfaces.
    pub netns: Option<String>,
}

impl Agent {
    /// Starts `faultd` with the embedded production limits.
    pub fn start() -> Agent {
        Agent::start_with(AgentOptions::default())
    }

    /// Starts `faultd` with the `staging` profile (10 concurrent faults).
    pub fn start_staging() -> Agent {
        Agent::start_with(AgentOptions {
            limits: Some("profile = \"staging\"\n".into()),
            ..Default::default()
        })
    }

    pub fn start_with(opts: AgentOptions) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("faultline-e2e-")
            .tempdir()
            .expect("tempdir");
        let socket = dir.path().join("run/faultd.sock");
        let log = dir.path().join("faultd.log");
        let home = opts.home.clone().or_else(CgroupHome::if_needed);
        let netns: Vec<String> = match &opts.netns {
            Some(n) => vec![
                "nsenter".into(),
                format!("--net=/run/netns/{n}"),
                "--".into(),
            ],
            None => vec![],
        };
        let faultd = crate::bin("faultd");
        let mut cmd = match &home {
            // Joins the home before exec, so faultd's first look at its own group (the
            // recovery sweep at start) already sees the home.
            Some(h) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c")
                    .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$@\"")
                    .arg(h.leaf())
                    .args(&netns)
                    .arg(faultd);
                c
            }
            None if !netns.is_empty() => {
                let mut c = Command::new(&netns[0]);
                c.args(&netns[1..]).arg(faultd);
                c
            }
            None => Command::new(faultd),
        };
        cmd.arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(
                opts.state_dir
                    .clone()
                    .unwrap_or_else(|| dir.path().join("state")),
            )
            .arg("--config")
            .arg(dir.path().join("faultd.toml"));
        // Metrics off unless a test asks: parallel agents would fight over 9464.
        let extra = opts.config.clone().unwrap_or_default();
        let metrics = if extra.contains("metrics_listen") {
            ""
        } else {
            "metrics_listen = \"\"\n"
        };
        std::fs::write(
            dir.path().join("faultd.toml"),
            format!("log = \"info,faultline_agent=debug\"\n{metrics}{extra}"),
        )
        .unwrap();
        if let Some(l) = &opts.limits {
            let p = dir.path().join("limits.toml");
            std::fs::write(&p, l).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            cmd.arg("--limits").arg(&p);
        }
        cmd.args(&opts.args);
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        let logf = std::fs::File::create(&log).unwrap();
        cmd.stdout(Stdio::null()).stderr(logf);
        let child = cmd.spawn().expect("spawn faultd");
        let mut a = Agent {
            child: Some(child),
            dir,
            socket,
            log,
            home,
        };
        a.wait_ready_for(opts.listening_only);
        a
    }

    /// Waits until the agent listens and has finished crash recovery (SERVING).
    pub fn wait_ready(&mut self) {
        self.wait_ready_for(false)
    }

    fn wait_ready_for(&mut self, listening_only: bool) {
        // 30 s: a restart first recovers (reverts, removes stress groups), which is slow
        // in an emulated guest on a loaded host.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                if listening_only {
                    return;
                }
                // Listening comes before crash recovery; ready is SERVING, after it.
                let left = deadline.saturating_duration_since(Instant::now());
                if let Err(e) = crate::interop::wait_serving(&self.socket, left) {
                    panic!("faultd is not serving: {e}\n{}", self.log_text());
                }
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "faultd exited with {st} before listening:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = self.pid();
        panic!(
            "faultd (pid {pid}, state {:?}, wchan {:?}, cgroup {:?}) did not listen on {} within 30 s:\n{}",
            proc_state(pid),
            read_trim(Path::new(&format!("/proc/{pid}/wchan"))),
            read_trim(Path::new(&format!("/proc/{pid}/cgroup"))),
            self.socket.display(),
            self.log_text()
        );
    }

    /// The agent URI for faultctl.
    pub fn uri(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `faultctl --agent <this> ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(crate::bin("faultctl"))
            .arg("--agent")
            .arg(self.uri())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run faultctl")
    }

    /// Runs `faultctl -o json ARGS`, asserts success, parses stdout.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-o", "json"];
        a.extend_from_slice(args);
        let out = self.ctl(&a);
        assert!(
            out.status.success(),
            "faultctl {args:?} failed ({}):\nstdout: {}\nstderr: {}\nagent log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "faultctl {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The state dir it was started with (the default one: see `AgentOptions::state_dir`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Its config file (for `faultd cleanup --config`).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("faultd.toml")
    }

    /// Whether the process is still running (not reaped).
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL if still running, and reap: after a self-inflicted abort too.
    pub fn crash_if_alive(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL: a crash. Nothing is reverted.
    pub fn crash(&mut self) {
        let mut c = self.child.take().expect("running");
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Sends SIGTERM and waits for the exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        wait_timeout(&mut c, Duration::from_secs(10)).unwrap_or_else(|| {
            let _ = c.kill();
            panic!("faultd did not stop within 10 s of SIGTERM")
        })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            if wait_timeout(&mut c, Duration::from_secs(10)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Waits for a child up to `t`.
pub fn wait_timeout(c: &mut Child, t: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + t;
    loop {
        if let Ok(Some(st)) = c.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child process (by default `sleep 600`) killed and reaped when dropped.
pub struct Victim {
    pub child: Child,
}

impl Victim {
    /// `sleep 600` with argv[0] set to `tag`, so tests can select it by cmdline.
    pub fn sleep(tag: &str) -> Victim {
        use std::os::unix::process::CommandExt;
        let child = Command::new("sleep")
            .arg0(tag)
            .arg("600")
            .spawn()
            .expect("spawn sleep");
        let v = Victim { child };
        // Wait until it has exec'd (its cmdline is its own).
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if std::fs::read(format!("/proc/{}/cmdline", v.pid()))
                .map(|c| c.starts_with(tag.as_bytes()))
                .unwrap_or(false)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        v
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The state letter in /proc/PID/stat (`S`, `T`...), or None once reaped. A victim
    /// is a `sleep`: right after a SIGCONT or a thaw it is briefly runnable (`R`) before
    /// it sleeps again, so an `R` is given up to 200 ms to settle.
    pub fn state(&self) -> Option<char> {
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            let s = proc_state(self.pid());
            if s != Some('R') || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGCONT,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fault id in `faultctl -o json inject ...` (or `get`) output.
pub fn fault_id(v: &serde_json::Value) -> String {
    let id = v["fault"]["id"].as_str().or_else(|| v["id"].as_str());
    id.unwrap_or_else(|| panic!("no fault id in {v}"))
        .to_string()
}

/// A command's standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A command's exit status, standard output and standard error, for assert messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The real `sleep` executable first on PATH, symlinks resolved (coreutils', not a
/// busybox multi-call link, in the VM tier), for tests that copy it under a new name.
pub fn sleep_binary() -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|d| Path::new(d).join("sleep"))
        .find(|p| p.exists())
        .and_then(|p| p.canonicalize().ok())
        .expect("sleep is on PATH")
}

/// The state letter of a process from /proc/PID/stat.
pub fn proc_state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Polls `f` every 10 ms until it returns true or `t` passes; returns the last result.
pub fn eventually(t: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + t;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads a small file, trimmed.
pub fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A child process killed (SIGKILL) and reaped when dropped, however the test ends (a
/// failed assert included). Derefs to the `Child`; [`KillOnDrop::into_inner`] disarms it.
pub struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    pub fn new(c: Child) -> KillOnDrop {
        KillOnDrop(Some(c))
    }

    /// The child, no longer killed on drop (e.g. for `wait_with_output`).
    pub fn into_inner(mut self) -> Child {
        self.0.take().expect("a child")
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("a child")
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("a child")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
