//! End-to-end io limit: the real `faultd` and `faultctl` throttle a test cgroup's
//! `O_DIRECT` writes on the disk holding a test directory (blk-throttle through the v1
//! blkio hierarchy on the host), measured by `dd`; the operator's own value comes back
//! exactly on revert and after SIGKILL + restart.

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
        let dir = root.join(format!(
            "faultline-io-{}-{:08x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        ));
        std::fs::create_dir(&dir).unwrap();
        Group { dir }
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Writes `mib` MiB with O_DIRECT from inside the group; returns dd's MiB/s.
    fn write_rate(&self, file: &Path, mib: u64) -> f64 {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg("echo $$ > \"$0/cgroup.procs\" && exec dd if=/dev/zero of=\"$1\" bs=1M count=\"$2\" oflag=direct")
            .arg(&self.dir)
            .arg(file)
            .arg(mib.to_string())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "dd: {err}");
        // "16777216 bytes (17 MB, 16 MiB) copied, 4.00012 s, 4.2 MB/s"
        let line = err.lines().last().unwrap_or_default();
        let bytes: f64 = line.split_whitespace().next().unwrap().parse().unwrap();
        let secs: f64 = line
            .split(", ")
            .find(|p| p.ends_with(" s"))
            .and_then(|p| p.trim_end_matches(" s").parse().ok())
            .unwrap_or_else(|| panic!("dd's time in {line:?}"));
        bytes / secs / (1 << 20) as f64
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn write_bps_throttles_a_cgroup_and_revert_restores_the_value_before() {
    require!("root");
    const TEST: &str =
        "io_agent::write_bps_throttles_a_cgroup_and_revert_restores_the_value_before";
    let Some(root) = faultline_tests::caps::v1_mount("blkio")
        .filter(|r| r.join("blkio.throttle.write_bps_device").exists())
    else {
        faultline_tests::skip(
            TEST,
            "cgroup-v1-blkio-throttle",
            "no v1 blkio hierarchy with blkio.throttle.* (the VM's cgroup2 io.max is not covered yet)",
        );
        return;
    };
    let work = tempfile::Builder::new()
        .prefix("faultline-io-")
        .tempdir_in("/var/tmp")
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
    let before = format!("{dev} 1048576000");
    std::fs::write(g.dir.join("blkio.throttle.write_bps_device"), &before).unwrap();
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
    assert_eq!(
        g.read("blkio.throttle.write_bps_device"),
        format!("{dev} 4194304")
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
    assert_eq!(g.read("blkio.throttle.write_bps_device"), before);
    let free = g.write_rate(&file, 16);
    eprintln!("after revert: dd wrote at {free:.2} MiB/s");
    assert!(free >= 5.0 * limited, "{free:.2} MiB/s after revert");

    // SIGKILL with the limit on: the next start restores the operator's value.
    inject(&agent);
    assert_eq!(
        g.read("blkio.throttle.write_bps_device"),
        format!("{dev} 4194304")
    );
    agent.crash();
    let _again = Agent::start_with(AgentOptions {
        limits: Some(LIMITS.into()),
        state_dir: Some(agent.state_dir()),
        ..Default::default()
    });
    assert!(
        eventually(Duration::from_secs(2), || g
            .read("blkio.throttle.write_bps_device")
            == before),
        "restored after restart: {}",
        g.read("blkio.throttle.write_bps_device")
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
        assert_eq!(g.read("blkio.throttle.write_bps_device"), before);
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
    std::fs::write(
        g.dir.join("blkio.throttle.write_bps_device"),
        format!("{dev} 0"),
    )
    .unwrap();
}
