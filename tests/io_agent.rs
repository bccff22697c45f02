//! End-to-end io limit: the real `faultd` and `faultctl` throttle a test cgroup's
//! `O_DIRECT` writes on the disk holding a test directory, measured by `dd`'s wall time;
//! the operator's own value comes back exactly on revert and after SIGKILL + restart.
//! On the host: blk-throttle through the v1 blkio hierarchy, on the disk of /var/tmp. In
//! the VM tier: cgroup2 `io.max` on the scratch virtio disk (`FAULTLINE_SCRATCH_DISK`,
//! ext4, mounted by the test).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use faultline_tests::agent::{Agent, AgentOptions, eventually, fault_id, stderr};
use faultline_tests::require;

const LIMITS: &str = "profile = \"staging\"\n";

/// A test-made v1 blkio group, removed on drop.
struct Group {
    dir: PathBuf,
}

impl Group {
    fn new(root: &Path) -> Group {
        let dir = root.join(faultline_tests::disk::unique("io"));
        std::fs::create_dir(&dir).unwrap();
        Group { dir }
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Writes `mib` MiB with O_DIRECT from inside the group; returns MiB/s (by dd's
    /// wall time: coreutils' and busybox's dd report differently).
    fn write_rate(&self, file: &Path, mib: u64) -> f64 {
        let t0 = std::time::Instant::now();
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg("echo $$ > \"$0/cgroup.procs\" && exec dd if=/dev/zero of=\"$1\" bs=1M count=\"$2\" oflag=direct")
            .arg(&self.dir)
            .arg(file)
            .arg(mib.to_string())
            .output()
            .unwrap();
        let secs = t0.elapsed().as_secs_f64();
        assert!(out.status.success(), "dd: {}", stderr(&out));
        let _ = std::fs::remove_file(file);
        mib as f64 / secs
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// How the kernel throttles here: the file the limit shows in, and its lines.
struct Backend {
    file: &'static str,
    /// The operator's value, as written.
    operator: fn(&str) -> String,
    /// What the file reads for a 4 MiB/s write limit.
    limited: fn(&str, &str) -> bool,
    /// Clears the test's value.
    clear: fn(&str) -> String,
}

const V1: Backend = Backend {
    file: "blkio.throttle.write_bps_device",
    operator: |dev| format!("{dev} 1048576000"),
    limited: |dev, text| text == format!("{dev} 4194304"),
    clear: |dev| format!("{dev} 0"),
};

const V2: Backend = Backend {
    file: "io.max",
    operator: |dev| format!("{dev} wbps=1048576000"),
    limited: |dev, text| {
        text.lines()
            .any(|l| l.starts_with(&format!("{dev} ")) && l.contains(" wbps=4194304"))
    },
    clear: |dev| format!("{dev} wbps=max"),
};

#[test]
fn write_bps_throttles_a_cgroup_and_revert_restores_the_value_before() {
    require!("root");
    const TEST: &str =
        "io_agent::write_bps_throttles_a_cgroup_and_revert_restores_the_value_before";
    let v1 = faultline_tests::caps::v1_mount("blkio")
        .filter(|r| r.join("blkio.throttle.write_bps_device").exists());
    let v2 = faultline_tests::caps::v2_mount().filter(|r| {
        std::fs::read_to_string(r.join("cgroup.subtree_control"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"))
    });
    let scratch = std::env::var("FAULTLINE_SCRATCH_DISK").ok();
    let (root, backend, base, _mounted) = match (v1, v2, scratch) {
        (Some(r), ..) => (r, V1, PathBuf::from("/var/tmp"), None),
        (None, Some(r), Some(disk)) => {
            let m = faultline_tests::disk::Tmpfs::device("io", &disk, "ext4");
            (r, V2, m.dir.clone(), Some(m))
        }
        _ => {
            faultline_tests::skip(
                TEST,
                "blk-throttle",
                "neither v1 blkio throttling nor cgroup2 io with a scratch disk (FAULTLINE_SCRATCH_DISK, the VM tier)",
            );
            return;
        }
    };
    let work = tempfile::Builder::new()
        .prefix("faultline-io-")
        .tempdir_in(&base)
        .unwrap();
    let file = work.path().join("direct");
    let g = Group::new(&root);
    let dev = {
        use std::os::unix::fs::MetadataExt;
        let d = std::fs::metadata(work.path()).unwrap().dev();
        let (ma, mi) = (nix::sys::stat::major(d), nix::sys::stat::minor(d));
        faultline_agent::fault::io::throttle_device(ma, mi).expect("a block device")
    };
    // The operator's own limit, which the fault must put back exactly.
    std::fs::write(g.dir.join(backend.file), (backend.operator)(&dev)).unwrap();
    let before = g.read(backend.file);
    let mut agent = Agent::start_with(AgentOptions {
        limits: Some(LIMITS.into()),
        ..Default::default()
    });
    let inject = |a: &Agent| {
        a.ctl_json(&[
            "inject",
            "io-limit",
            "--cgroup",
            g.dir.to_str().unwrap(),
            "--path",
            work.path().to_str().unwrap(),
            "--write-bps",
            "4MiB",
            "--for",
            "5m",
        ])
    };
    let out = inject(&agent);
    assert!(
        (backend.limited)(&dev, &g.read(backend.file)),
        "{}",
        g.read(backend.file)
    );
    let limited = g.write_rate(&file, 16);
    eprintln!("io-limit --write-bps 4MiB: dd wrote at {limited:.2} MiB/s");
    assert!(
        (limited - 4.0).abs() <= 0.4,
        "{limited:.2} MiB/s under a 4 MiB/s limit"
    );
    // One limit per cgroup and device.
    let again = agent.ctl(&[
        "inject",
        "io-limit",
        "--cgroup",
        g.dir.to_str().unwrap(),
        "--path",
        work.path().to_str().unwrap(),
        "--read-bps",
        "4MiB",
        "--for",
        "5m",
    ]);
    assert_eq!(again.status.code(), Some(6), "{}", stderr(&again));
    assert!(
        stderr(&again).contains(&fault_id(&out)),
        "{}",
        stderr(&again)
    );
    agent.ctl_json(&["revert", &fault_id(&out)]);
    assert_eq!(g.read(backend.file), before);
    let free = g.write_rate(&file, 16);
    eprintln!("after revert: dd wrote at {free:.2} MiB/s");
    assert!(free >= 5.0 * limited, "{free:.2} MiB/s after revert");

    // SIGKILL with the limit on: the next start restores the operator's value.
    inject(&agent);
    assert!(
        (backend.limited)(&dev, &g.read(backend.file)),
        "{}",
        g.read(backend.file)
    );
    agent.crash();
    let _again = Agent::start_with(AgentOptions {
        limits: Some(LIMITS.into()),
        state_dir: Some(agent.state_dir()),
        ..Default::default()
    });
    assert!(
        eventually(Duration::from_secs(2), || g.read(backend.file) == before),
        "restored after restart: {}",
        g.read(backend.file)
    );
    // Bad input changes nothing.
    for (args, code, needle) in [
        (
            vec!["--device", "/dev/null", "--write-bps", "4MiB"],
            2,
            "not a block device",
        ),
        (
            vec!["--path", "/proc", "--write-bps", "4MiB"],
            2,
            "no block device",
        ),
        (
            vec![
                "--path",
                work.path().to_str().unwrap(),
                "--write-bps",
                "1KiB",
            ],
            3,
            "io.min_bps",
        ),
    ] {
        let mut a = vec!["inject", "io-limit", "--cgroup", g.dir.to_str().unwrap()];
        a.extend_from_slice(&args);
        a.extend_from_slice(&["--for", "10s"]);
        let out = _again.ctl(&a);
        assert_eq!(out.status.code(), Some(code), "{a:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{a:?}: {}", stderr(&out));
        assert_eq!(g.read(backend.file), before);
    }
    let out = _again.ctl(&[
        "inject",
        "io-limit",
        "--cgroup",
        "/faultline-no-such-group",
        "--path",
        work.path().to_str().unwrap(),
        "--write-bps",
        "4MiB",
        "--for",
        "10s",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    std::fs::write(g.dir.join(backend.file), (backend.clear)(&dev)).unwrap();
}
