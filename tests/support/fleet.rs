//! A fleet of real `faultd` agents on this machine (each its own socket and state dir)
//! with an inventory naming them, for driving the real `faultctl` at it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::agent::{Agent, AgentOptions, wait_timeout};
use crate::bin;

/// `n` agents and an inventory naming them node-1..node-n, all `role=app`, zones a/b.
pub struct Fleet {
    pub agents: Vec<Agent>,
    pub dir: tempfile::TempDir,
    pub inventory: PathBuf,
}

impl Fleet {
    pub fn start(n: usize) -> Fleet {
        Fleet::of((0..n).map(|_| Agent::start_staging()).collect())
    }

    /// One agent with the `staging` limits and `config` lines (e.g. `metrics_listen`).
    pub fn start_one(config: &str) -> Fleet {
        Fleet::of(vec![Agent::start_with(AgentOptions {
            limits: Some("profile = \"staging\"\n".into()),
            config: Some(config.to_string()),
            ..Default::default()
        })])
    }

    fn of(agents: Vec<Agent>) -> Fleet {
        let dir = tempfile::Builder::new()
            .prefix("faultline-fleet-")
            .tempdir()
            .unwrap();
        let mut inv = String::new();
        for (i, a) in agents.iter().enumerate() {
            inv += &format!(
                "[[agents]]\nname = \"node-{}\"\naddress = \"{}\"\nlabels = {{ role = \"app\", zone = \"{}\" }}\n\n",
                i + 1,
                a.uri(),
                if i % 2 == 0 { "a" } else { "b" }
            );
        }
        let inventory = dir.path().join("fleet.toml");
        std::fs::write(&inventory, inv).unwrap();
        Fleet {
            agents,
            dir,
            inventory,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `faultctl --inventory FLEET ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run faultctl")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("faultctl"));
        c.arg("--inventory")
            .arg(&self.inventory)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Active faults on agent `i`.
    pub fn active(&self, i: usize) -> Vec<serde_json::Value> {
        self.agents[i].ctl_json(&["list"])["faults"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Every fault (ended too) on agent `i`.
    pub fn all_faults(&self, i: usize) -> Vec<serde_json::Value> {
        self.agents[i].ctl_json(&["list", "--all"])["faults"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A command's status, stdout and stderr, for assertion messages.
pub use crate::agent::output_text as text;

/// The one report JSON in `dir`.
pub fn report_in(dir: &Path) -> (PathBuf, serde_json::Value) {
    let p = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .unwrap_or_else(|| panic!("no report in {}", dir.display()));
    let v = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    (p, v)
}

/// Milliseconds since the Unix epoch (the clock reports stamp samples with).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `faultctl run SCENARIO --report-dir REPORTS EXTRA...` in the background, its output
/// collected in files of the fleet's directory; killed when dropped.
pub struct Run {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Run {
    pub fn start(fleet: &Fleet, scenario: &Path, reports: &Path, extra: &[&str]) -> Run {
        let out = fleet.path("run.out");
        let err = fleet.path("run.err");
        let mut args = vec![
            "run",
            scenario.to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let child = fleet
            .command(&args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn faultctl run");
        Run { child, out, err }
    }

    /// What the run has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Waits for the end (at most `t`) and returns its output.
    pub fn finish(mut self, t: Duration) -> Output {
        let status = wait_timeout(&mut self.child, t).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!(
                "faultctl run did not end within {t:?}:\n{}",
                std::fs::read_to_string(&self.err).unwrap_or_default()
            )
        });
        Output {
            status,
            stdout: std::fs::read(&self.out).unwrap_or_default(),
            stderr: std::fs::read(&self.err).unwrap_or_default(),
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
