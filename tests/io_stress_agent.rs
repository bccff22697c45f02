//! End-to-end io stress: the real `faultd` and `faultctl` start `faultd __stress-io`
//! workers doing O_DIRECT writes on tagged files in a test directory on the host's
//! ext4 root (/var/tmp: a tmpfs refuses O_DIRECT), inside a faultline stress group
//! whose v1 blkio group caps them (`--write-bps`); the group's
//! `blkio.throttle.io_service_bytes` shows their writes at that rate. TTL, revert and
//! SIGKILL + restart each leave no worker, file or group behind. Bad input changes
//! nothing. cgroup v2 (`io.max` on the group) is not exercised here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline_tests::agent::{Agent, AgentOptions, eventually, fault_id, stderr};
use faultline_tests::require;

const LIMITS: &str = "profile = \"staging\"\n";

/// The io stress workers writing in `dir`: (pid, blkio group path).
fn workers(dir: &Path) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !cmd.contains("__stress-io") || !cmd.contains(dir.to_str().unwrap()) {
            continue;
        }
        let cg = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        let blkio = cg
            .lines()
            .find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, ctl, path) = (p.next()?, p.next()?, p.next()?);
                ctl.split(',')
                    .any(|c| c == "blkio")
                    .then(|| path.to_string())
            })
            .unwrap_or_default();
        out.push((pid, blkio));
    }
    out
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// Bytes written to `dev` by the group, per its blk-throttle statistics.
fn written(group: &Path, dev: &str) -> u64 {
    std::fs::read_to_string(group.join("blkio.throttle.io_service_bytes"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{dev} Write "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn io_stress_workers_do_capped_direct_io_in_their_group_and_leave_nothing() {
    require!("root");
    const TEST: &str =
        "io_stress_agent::io_stress_workers_do_capped_direct_io_in_their_group_and_leave_nothing";
    let Some(blkio) = faultline_tests::caps::v1_mount("blkio")
        .filter(|r| r.join("blkio.throttle.write_bps_device").exists())
    else {
        faultline_tests::skip(
            TEST,
            "blkio-v1",
            "no v1 blkio throttling (the host tier has it; cgroup2 io.max is not tested here)",
        );
        return;
    };
    if faultline_tests::caps::v1_mount("cpu").is_none() {
        faultline_tests::skip(TEST, "blkio-v1", "no v1 cpu hierarchy for the stress group");
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("faultline-iostress-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let dir = work.path().canonicalize().unwrap();
    let d = dir.to_str().unwrap();
    let dev = {
        use std::os::unix::fs::MetadataExt;
        let n = std::fs::metadata(&dir).unwrap().dev();
        let (ma, mi) = (nix::sys::stat::major(n), nix::sys::stat::minor(n));
        faultline_agent::fault::io::throttle_device(ma, mi).expect("a block device")
    };
    let mut agent = Agent::start_with(AgentOptions {
        limits: Some(LIMITS.into()),
        ..Default::default()
    });
    let inject = |a: &Agent, dur: &str| {
        a.ctl_json(&[
            "inject",
            "io-stress",
            "--path",
            d,
            "--workers",
            "2",
            "--size",
            "8MiB",
            "--write-bps",
            "4MiB",
            "--for",
            dur,
        ])
    };

    // TTL: the workers run in a faultline group, capped; then everything goes.
    let out = inject(&agent, "4s");
    let started = Instant::now();
    assert!(eventually(Duration::from_secs(2), || workers(&dir).len() == 2));
    let ws = workers(&dir);
    let path = ws[0].1.clone();
    assert!(
        ws.iter().all(|(_, p)| *p == path)
            && path
                .rsplit('/')
                .next()
                .unwrap()
                .starts_with("faultline-stress-"),
        "{ws:?}"
    );
    let group = blkio.join(path.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(group.join("blkio.throttle.write_bps_device"))
            .unwrap()
            .trim(),
        format!("{dev} 4194304")
    );
    let fs = files(&dir);
    assert_eq!(fs.len(), 2, "{fs:?}");
    assert!(
        fs.iter().all(|f| f
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".faultline-io-")),
        "{fs:?}"
    );
    // Throughput in the group's own statistics, at the cap.
    std::thread::sleep(Duration::from_millis(300));
    let (b0, t0) = (written(&group, &dev), Instant::now());
    std::thread::sleep(Duration::from_millis(1500));
    let (b1, t1) = (written(&group, &dev), Instant::now());
    let rate = (b1 - b0) as f64 / (t1 - t0).as_secs_f64() / (1u64 << 20) as f64;
    eprintln!("io-stress --write-bps 4MiB: the group wrote {rate:.2} MiB/s");
    assert!((2.0..=4.6).contains(&rate), "{rate:.2} MiB/s under 4 MiB/s");
    assert!(
        eventually(Duration::from_secs(8), || workers(&dir).is_empty()
            && files(&dir).is_empty()
            && !group.exists()),
        "after the TTL ({:?}): workers {:?}, files {:?}, group {}",
        started.elapsed(),
        workers(&dir),
        files(&dir),
        group.exists()
    );
    let _ = out;

    // Revert.
    let out = inject(&agent, "5m");
    assert!(eventually(Duration::from_secs(2), || workers(&dir).len() == 2));
    let group = blkio.join(workers(&dir)[0].1.trim_start_matches('/'));
    agent.ctl_json(&["revert", &fault_id(&out)]);
    assert!(workers(&dir).is_empty(), "{:?}", workers(&dir));
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    assert!(!group.exists());

    // SIGKILL of faultd: the workers die with it (parent-death signal); the restart
    // sweeps the files and the group.
    inject(&agent, "5m");
    assert!(eventually(Duration::from_secs(2), || workers(&dir).len() == 2));
    let group = blkio.join(workers(&dir)[0].1.trim_start_matches('/'));
    agent.crash();
    assert!(eventually(Duration::from_secs(2), || workers(&dir).is_empty()));
    assert_eq!(files(&dir).len(), 2);
    let again = Agent::start_with(AgentOptions {
        limits: Some(LIMITS.into()),
        state_dir: Some(agent.state_dir()),
        ..Default::default()
    });
    assert!(
        eventually(Duration::from_secs(3), || files(&dir).is_empty()
            && !group.exists()),
        "after restart: files {:?}, group {}",
        files(&dir),
        group.exists()
    );

    // Bad input changes nothing.
    let missing = dir.join("missing");
    for (args, code, needle) in [
        (vec!["--path", "var/tmp"], 2, "not an absolute path"),
        (vec!["--path", missing.to_str().unwrap()], 2, "No such file"),
        (vec!["--path", "/proc"], 2, "no block device"),
        (vec!["--path", d, "--workers", "0"], 2, "at least 1 worker"),
        (
            vec!["--path", d, "--workers", "9"],
            3,
            "io.stress_max_workers",
        ),
        (vec!["--path", d, "--write-bps", "0MiB"], 2, "--write-bps"),
        (
            vec!["--path", d, "--write-bps", "1GiB"],
            3,
            "io.stress_max_bps",
        ),
        (vec!["--path", d, "--size", "1000B"], 2, "4KiB"),
    ] {
        let mut a = vec!["inject", "io-stress"];
        a.extend_from_slice(&args);
        a.extend_from_slice(&["--for", "10s"]);
        let out = again.ctl(&a);
        assert_eq!(out.status.code(), Some(code), "{a:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{a:?}: {}", stderr(&out));
        assert!(files(&dir).is_empty() && workers(&dir).is_empty());
    }
    // --dry-run says what it would do and does nothing.
    let out = again.ctl(&[
        "inject",
        "io-stress",
        "--path",
        d,
        "--for",
        "10s",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("O_DIRECT"), "{text}");
    assert!(files(&dir).is_empty() && workers(&dir).is_empty());
    drop(again);

    // A protected filesystem is refused.
    let guarded = Agent::start_with(AgentOptions {
        limits: Some(format!("{LIMITS}[disk]\nprotected_paths = [{d:?}]\n")),
        ..Default::default()
    });
    let out = guarded.ctl(&["inject", "io-stress", "--path", d, "--for", "10s"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("protected"), "{}", stderr(&out));
    assert!(files(&dir).is_empty() && workers(&dir).is_empty());
}
