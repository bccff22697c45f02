//! End-to-end disk fill: the real `faultd` and `faultctl` on a tmpfs the test mounts
//! (and unmounts), checked with `df`: the filesystem's use reaches the target, the space
//! comes back on revert, after SIGKILL + restart and after `faultd cleanup`, and bad
//! input is refused with nothing created.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use faultline_tests::agent::{Agent, AgentOptions, eventually, fault_id, stderr};
use faultline_tests::disk::{Tmpfs as Scratch, df};
use faultline_tests::require;

/// Limits for a small test filesystem: staging, with a floor of 1 MiB.
const LIMITS: &str = "profile = \"staging\"\n[disk]\nmin_free = \"1MiB\"\nmax_used_percent = 95\n";

fn used_percent(p: &Path) -> f64 {
    let (u, a) = df(p);
    u as f64 * 100.0 / (u + a) as f64
}

fn agent(state_dir: Option<PathBuf>) -> Agent {
    Agent::start_with(AgentOptions {
        limits: Some(LIMITS.into()),
        state_dir,
        ..Default::default()
    })
}

#[test]
fn fill_to_a_percent_and_revert_returns_the_space() {
    require!("root");
    let s = Scratch::mount("pct", 64);
    let before = df(&s.dir);
    let agent = agent(None);
    let out = agent.ctl_json(&[
        "inject",
        "disk-fill",
        "--path",
        s.path(),
        "--percent",
        "80",
        "--for",
        "60s",
    ]);
    let id = fault_id(&out);
    let pct = used_percent(&s.dir);
    eprintln!("disk fill to 80%: df says {pct:.2}% used");
    assert!((pct - 80.0).abs() <= 1.0, "used {pct:.2}%, asked 80%");
    let files = s.fill_files();
    assert_eq!(files.len(), 1, "one tagged file: {files:?}");
    let listed = agent.ctl_json(&["get", &id]);
    assert_eq!(listed["kind"], "disk-fill", "{listed}");
    assert_eq!(listed["state"], "active", "{listed}");
    // One fill per filesystem.
    let out = agent.ctl(&[
        "inject",
        "disk-fill",
        "--path",
        s.path(),
        "--size",
        "1MiB",
        "--for",
        "10s",
    ]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "fault {id} is already filling the same filesystem"
        )),
        "{}",
        stderr(&out)
    );
    agent.ctl_json(&["revert", &id]);
    assert!(s.fill_files().is_empty(), "the file is removed");
    let after = df(&s.dir);
    assert_eq!(
        after.0, before.0,
        "the space is back: {before:?} -> {after:?}"
    );
}

#[test]
fn fill_by_size_and_by_free_and_the_ramp_grows() {
    require!("root");
    let s = Scratch::mount("size", 64);
    let agent = agent(None);
    let (used0, avail0) = df(&s.dir);
    let out = agent.ctl_json(&[
        "inject",
        "disk-fill",
        "--path",
        s.path(),
        "--size",
        "16MiB",
        "--for",
        "60s",
    ]);
    let (used1, _) = df(&s.dir);
    assert_eq!(used1 - used0, 16 << 20, "16 MiB more used");
    agent.ctl_json(&["revert", &fault_id(&out)]);
    assert_eq!(df(&s.dir).0, used0);

    let out = agent.ctl_json(&[
        "inject",
        "disk-fill",
        "--path",
        s.path(),
        "--free",
        "8MiB",
        "--for",
        "60s",
    ]);
    let (_, avail) = df(&s.dir);
    assert_eq!(avail, 8 << 20, "8 MiB left of {avail0}");
    agent.ctl_json(&["revert", &fault_id(&out)]);

    let out = agent.ctl_json(&[
        "inject",
        "disk-fill",
        "--path",
        s.path(),
        "--size",
        "32MiB",
        "--ramp",
        "2s",
        "--for",
        "60s",
    ]);
    let early = df(&s.dir).0 - used0;
    assert!(early < 32 << 20, "not all at once: {early}");
    assert!(
        eventually(Duration::from_secs(10), || df(&s.dir).0 - used0 == 32 << 20),
        "the ramp reaches 32 MiB: {}",
        df(&s.dir).0 - used0
    );
    agent.ctl_json(&["revert", &fault_id(&out)]);
    assert_eq!(df(&s.dir).0, used0);
    assert!(s.fill_files().is_empty());
}

#[test]
fn sigkill_then_restart_or_cleanup_removes_the_fill() {
    require!("root");
    let s = Scratch::mount("crash", 64);
    let used0 = df(&s.dir).0;
    let mut a = agent(None);
    a.ctl_json(&[
        "inject",
        "disk-fill",
        "--path",
        s.path(),
        "--percent",
        "50",
        "--for",
        "5m",
    ]);
    assert_eq!(s.fill_files().len(), 1);
    a.crash();
    assert_eq!(s.fill_files().len(), 1, "the file outlives the agent");
    let state = a.state_dir();
    let again = agent(Some(state.clone()));
    assert!(
        s.fill_files().is_empty(),
        "the restart removed it\n{}",
        again.log_text()
    );
    assert_eq!(df(&s.dir).0, used0, "space back after restart");

    // A file the journal does not know (lost between the intent and the apply, say):
    // `faultd cleanup` finds it by its tag in the directories fills noted.
    let mut again = again;
    again.ctl_json(&[
        "inject",
        "disk-fill",
        "--path",
        s.path(),
        "--size",
        "8MiB",
        "--for",
        "5m",
    ]);
    again.crash();
    for e in std::fs::read_dir(state.join("journal")).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    assert_eq!(s.fill_files().len(), 1);
    let out = Command::new(faultline_tests::bin("faultd"))
        .arg("cleanup")
        .arg("--state-dir")
        .arg(&state)
        .arg("--config")
        .arg(again.config_path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("removed disk fill file"), "{text}");
    assert!(s.fill_files().is_empty(), "{text}");
    assert_eq!(df(&s.dir).0, used0, "space back after cleanup");
}

#[test]
fn bad_disk_fill_input_is_refused_and_nothing_is_created() {
    require!("root");
    let s = Scratch::mount("bad", 64);
    let agent = agent(None);
    let state = agent.state_dir();
    let missing = format!("{}/no-such-dir", s.path());
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["--path", "relative/dir", "--size", "1MiB"],
            2,
            "--path".into(),
        ),
        (
            vec!["--path", &missing, "--size", "1MiB"],
            2,
            "no-such-dir".into(),
        ),
        (
            vec!["--path", s.path(), "--percent", "97"],
            3,
            "disk.max_used_percent".into(),
        ),
        (
            vec!["--path", s.path(), "--size", "1GiB"],
            2,
            "available".into(),
        ),
        (
            vec!["--path", s.path(), "--free", "512KiB"],
            3,
            "disk.min_free".into(),
        ),
        (
            vec!["--path", state.to_str().unwrap(), "--size", "1MiB"],
            3,
            "state dir".into(),
        ),
        (vec!["--path", s.path()], 2, "--size".into()),
        (
            vec!["--path", s.path(), "--size", "1MiB", "--percent", "5"],
            2,
            "--percent".into(),
        ),
    ];
    for (args, code, needle) in &cases {
        let mut a = vec!["inject", "disk-fill"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--for", "10s"]);
        let out = agent.ctl(&a);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "faultctl {a:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(needle.as_str()),
            "faultctl {a:?}: {}",
            stderr(&out)
        );
        assert!(s.fill_files().is_empty(), "faultctl {a:?} created nothing");
    }
    // Already past the target.
    std::fs::write(s.dir.join("data"), vec![1u8; 40 << 20]).unwrap();
    let out = agent.ctl(&[
        "inject",
        "disk-fill",
        "--path",
        s.path(),
        "--percent",
        "30",
        "--for",
        "10s",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already"), "{}", stderr(&out));
    // A dry run says what it would do and does nothing.
    let out = agent.ctl_json(&[
        "inject",
        "disk-fill",
        "--path",
        s.path(),
        "--size",
        "4MiB",
        "--for",
        "10s",
        "--dry-run",
    ]);
    let plan = out["plan"].as_str().unwrap_or_default().to_string();
    assert!(
        plan.contains(".faultline-fill-") && plan.contains("4MiB"),
        "{out}"
    );
    assert!(s.fill_files().is_empty(), "a dry run created nothing");
    let listed = agent.ctl_json(&["list", "--all"]);
    assert!(
        !listed.to_string().contains("disk-fill"),
        "nothing started: {listed}"
    );
}

#[test]
fn the_health_guard_aborts_everything_when_a_path_runs_low_on_space() {
    require!("root");
    let s = Scratch::mount("guard", 64);
    let used0 = df(&s.dir).0;
    let agent = Agent::start_with(AgentOptions {
        limits: Some(format!(
            "{LIMITS}[health]\ninterval = \"200ms\"\nmin_disk_free = {{ \"{}\" = \"16MiB\" }}\n",
            s.path()
        )),
        ..Default::default()
    });
    let limits = agent.ctl_json(&["limits"]);
    assert!(
        limits
            .to_string()
            .contains(&format!("space available on {} below 16MiB", s.path())),
        "{limits}"
    );
    // Leaves 8 MiB: allowed by disk.min_free (1 MiB), below the guard's 16 MiB floor.
    let out = agent.ctl_json(&[
        "inject",
        "disk-fill",
        "--path",
        s.path(),
        "--free",
        "8MiB",
        "--for",
        "60s",
    ]);
    let id = fault_id(&out);
    assert!(
        eventually(
            Duration::from_secs(5),
            || agent.ctl_json(&["get", &id])["state"] == "reverted"
        ),
        "the guard reverted it: {}\n{}",
        agent.ctl_json(&["get", &id]),
        agent.log_text()
    );
    let got = agent.ctl_json(&["get", &id]);
    assert!(
        got["end_reason"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("health guard: space available on {} ", s.path())),
        "{got}"
    );
    assert!(s.fill_files().is_empty());
    assert_eq!(df(&s.dir).0, used0, "space back");
}

#[test]
fn fill_an_ext4_disk_to_a_percent_and_back() {
    require!("root");
    let Ok(disk) = std::env::var("FAULTLINE_SCRATCH_DISK") else {
        faultline_tests::skip(
            "disk_agent::fill_an_ext4_disk_to_a_percent_and_back",
            "scratch-disk",
            "no FAULTLINE_SCRATCH_DISK (the VM tier gives one)",
        );
        return;
    };
    let m = Scratch::device("ext4", &disk, "ext4");
    let before = df(&m.dir);
    let mut agent = agent(None);
    let out = agent.ctl_json(&[
        "inject",
        "disk-fill",
        "--path",
        m.dir.to_str().unwrap(),
        "--percent",
        "70",
        "--for",
        "60s",
    ]);
    let (u, a) = df(&m.dir);
    let pct = u as f64 * 100.0 / (u + a) as f64;
    eprintln!("ext4 disk fill to 70%: {pct:.2}% used");
    assert!((pct - 70.0).abs() <= 1.0, "used {pct:.2}%, asked 70%");
    agent.ctl_json(&["revert", &fault_id(&out)]);
    assert!(
        eventually(Duration::from_secs(5), || df(&m.dir).0 == before.0),
        "space back: {before:?} -> {:?}",
        df(&m.dir)
    );
    // And after SIGKILL + restart.
    agent.ctl_json(&[
        "inject",
        "disk-fill",
        "--path",
        m.dir.to_str().unwrap(),
        "--size",
        "64MiB",
        "--for",
        "60s",
    ]);
    assert!(df(&m.dir).0 >= before.0 + (64 << 20));
    agent.crash();
    let _again = self::agent(Some(agent.state_dir()));
    assert!(
        eventually(Duration::from_secs(5), || df(&m.dir).0 == before.0),
        "space back after restart: {before:?} -> {:?}",
        df(&m.dir)
    );
}
