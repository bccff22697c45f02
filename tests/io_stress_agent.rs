//! End-to-end io stress: the real `faultd` and `faultctl` start `faultd __stress-io`
//! workers doing O_DIRECT writes on tagged files in a test directory, inside a faultline
//! stress group that caps them (`--write-bps`); the group's own statistics show their
//! writes at that rate. On the host: v1 blkio (`blkio.throttle.write_bps_device`,
//! `blkio.throttle.io_service_bytes`) on the disk of /var/tmp (a tmpfs refuses
//! O_DIRECT). In the VM tier: cgroup2 (`io.max`, `io.stat`) on the scratch virtio disk
//! (`FAULTLINE_SCRATCH_DISK`, ext4, mounted by the test); there faultd's own
//! `cgroup.subtree_control` must read as before once the faults are gone. TTL, revert
//! and SIGKILL + restart each leave no worker, file or group behind. Bad input changes
//! nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline_tests::agent::{Agent, AgentOptions, eventually, fault_id, stderr};
use faultline_tests::require;

// The scratch disk is 256 MiB: the staging floor (256 MiB free) would refuse any file.
const LIMITS: &str = "profile = \"staging\"\n[disk]\nmin_free = \"1MiB\"\n";

/// The io stress workers writing in `dir`: (pid, group path in the blkio hierarchy, or
/// in cgroup2 when `v2`).
fn workers(dir: &Path, v2: bool) -> Vec<(i32, String)> {
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
                let (id, ctl, path) = (p.next()?, p.next()?, p.next()?);
                let hit = if v2 {
                    id == "0" && ctl.is_empty()
                } else {
                    ctl.split(',').any(|c| c == "blkio")
                };
                hit.then(|| path.to_string())
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

/// Bytes written to `dev` by the group, per its blk-throttle statistics (v1) or its
/// `io.stat` (v2: `MAJ:MIN rbytes=R wbytes=W ...`).
fn written(group: &Path, dev: &str, v2: bool) -> u64 {
    if v2 {
        return std::fs::read_to_string(group.join("io.stat"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{dev} ")))
            .flat_map(|l| l.split_whitespace())
            .find_map(|kv| kv.strip_prefix("wbytes=").and_then(|v| v.parse().ok()))
            .unwrap_or(0);
    }
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
    let v1 = faultline_tests::caps::v1_mount("blkio")
        .filter(|r| r.join("blkio.throttle.write_bps_device").exists())
        .filter(|_| faultline_tests::caps::v1_mount("cpu").is_some());
    let v2 = faultline_tests::caps::v2_mount().filter(|r| {
        std::fs::read_to_string(r.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"))
    });
    let scratch = std::env::var("FAULTLINE_SCRATCH_DISK").ok();
    let (root, is_v2, base, _mounted) = match (v1, v2, scratch) {
        (Some(r), ..) => (r, false, PathBuf::from("/var/tmp"), None),
        (None, Some(r), Some(disk)) => {
            let m = faultline_tests::disk::Tmpfs::device("iostress", &disk, "ext4");
            (r, true, m.dir.clone(), Some(m))
        }
        _ => {
            faultline_tests::skip(
                TEST,
                "blk-throttle",
                "neither v1 blkio throttling (with a v1 cpu hierarchy) nor cgroup2 io with a scratch disk (FAULTLINE_SCRATCH_DISK, the VM tier)",
            );
            return;
        }
    };
    let work = tempfile::Builder::new()
        .prefix("faultline-iostress-")
        .tempdir_in(&base)
        .unwrap();
    let dir = work.path().canonicalize().unwrap();
    let d = dir.to_str().unwrap();
    let dev = {
        use std::os::unix::fs::MetadataExt;
        let n = std::fs::metadata(&dir).unwrap().dev();
        let (ma, mi) = (nix::sys::stat::major(n), nix::sys::stat::minor(n));
        faultline_agent::fault::io::throttle_device(ma, mi).expect("a block device")
    };
    // On v2, faultd's own subtree: its `io` controller must be as before afterwards.
    let home = is_v2.then(|| std::sync::Arc::new(faultline_tests::agent::CgroupHome::new()));
    let io_on = || {
        home.as_ref().map(|h| {
            std::fs::read_to_string(h.dir.join("cgroup.subtree_control"))
                .unwrap()
                .split_whitespace()
                .any(|c| c == "io")
        })
    };
    let io_before = io_on();
    let mut agent = Agent::start_with(AgentOptions {
        limits: Some(LIMITS.into()),
        home: home.clone(),
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
    // Each worker creates its file when it starts: wait for the files too.
    assert!(eventually(Duration::from_secs(2), || workers(&dir, is_v2)
        .len()
        == 2
        && files(&dir).len() == 2));
    let ws = workers(&dir, is_v2);
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
    let group = root.join(path.trim_start_matches('/'));
    if is_v2 {
        let max = std::fs::read_to_string(group.join("io.max")).unwrap();
        assert!(
            max.lines()
                .any(|l| l.starts_with(&format!("{dev} ")) && l.contains(" wbps=4194304")),
            "io.max: {max}"
        );
    } else {
        assert_eq!(
            std::fs::read_to_string(group.join("blkio.throttle.write_bps_device"))
                .unwrap()
                .trim(),
            format!("{dev} 4194304")
        );
    }
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
    let (b0, t0) = (written(&group, &dev, is_v2), Instant::now());
    std::thread::sleep(Duration::from_millis(1500));
    let (b1, t1) = (written(&group, &dev, is_v2), Instant::now());
    let rate = (b1 - b0) as f64 / (t1 - t0).as_secs_f64() / (1u64 << 20) as f64;
    eprintln!("io-stress --write-bps 4MiB: the group wrote {rate:.2} MiB/s");
    // v2 is held to the cap within 10 %; v1's statistics lag behind it on the host.
    let ok = if is_v2 { 3.6..=4.4 } else { 2.0..=4.6 };
    assert!(ok.contains(&rate), "{rate:.2} MiB/s under 4 MiB/s");
    assert!(
        eventually(Duration::from_secs(8), || workers(&dir, is_v2).is_empty()
            && files(&dir).is_empty()
            && !group.exists()),
        "after the TTL ({:?}): workers {:?}, files {:?}, group {}",
        started.elapsed(),
        workers(&dir, is_v2),
        files(&dir),
        group.exists()
    );
    let _ = out;
    assert_eq!(
        io_on(),
        io_before,
        "faultd's subtree io controller after the TTL"
    );

    // Revert.
    let out = inject(&agent, "5m");
    assert!(eventually(Duration::from_secs(2), || workers(&dir, is_v2)
        .len()
        == 2));
    let group = root.join(workers(&dir, is_v2)[0].1.trim_start_matches('/'));
    // One io stress per node at a time: a second is refused, naming the first.
    let second = agent.ctl(&[
        "inject",
        "io-stress",
        "--path",
        d,
        "--size",
        "4MiB",
        "--for",
        "1m",
    ]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(6), "{err}");
    assert!(
        err.contains(&fault_id(&out)) && err.contains("one io stress per node"),
        "{err}"
    );
    assert_eq!(workers(&dir, is_v2).len(), 2, "the refusal started nothing");
    agent.ctl_json(&["revert", &fault_id(&out)]);
    assert!(
        workers(&dir, is_v2).is_empty(),
        "{:?}",
        workers(&dir, is_v2)
    );
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    assert!(!group.exists());
    assert_eq!(
        io_on(),
        io_before,
        "faultd's subtree io controller after revert"
    );

    // SIGKILL of faultd: the workers die with it (parent-death signal); the restart
    // sweeps the files and the group.
    inject(&agent, "5m");
    // Each worker creates its file when it starts: wait for both files too, or the
    // crash can come before a worker made its own (seen once in the VM tier).
    assert!(eventually(Duration::from_secs(2), || workers(&dir, is_v2)
        .len()
        == 2
        && files(&dir).len() == 2));
    let group = root.join(workers(&dir, is_v2)[0].1.trim_start_matches('/'));
    agent.crash();
    assert!(eventually(Duration::from_secs(2), || workers(&dir, is_v2).is_empty()));
    assert_eq!(files(&dir).len(), 2);
    let again = Agent::start_with(AgentOptions {
        limits: Some(LIMITS.into()),
        state_dir: Some(agent.state_dir()),
        home: home.clone(),
        ..Default::default()
    });
    assert!(
        eventually(Duration::from_secs(3), || files(&dir).is_empty()
            && !group.exists()),
        "after restart: files {:?}, group {}",
        files(&dir),
        group.exists()
    );
    assert!(
        eventually(Duration::from_secs(2), || io_on() == io_before),
        "faultd's subtree io controller after restart"
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
        assert!(files(&dir).is_empty() && workers(&dir, is_v2).is_empty());
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
    assert!(files(&dir).is_empty() && workers(&dir, is_v2).is_empty());
    drop(again);

    // A protected filesystem is refused.
    let guarded = Agent::start_with(AgentOptions {
        limits: Some(format!("{LIMITS}protected_paths = [{d:?}]\n")),
        ..Default::default()
    });
    let out = guarded.ctl(&["inject", "io-stress", "--path", d, "--for", "10s"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("protected"), "{}", stderr(&out));
    assert!(files(&dir).is_empty() && workers(&dir, is_v2).is_empty());
}
