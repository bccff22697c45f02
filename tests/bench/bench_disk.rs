//! `bench-disk`: a 1 GiB disk fill through a real `faultd` against the `fallocate`
//! command for the same size on the same filesystem.
//!
//! Each run times `fallocate -l SIZE FILE` (the command, spawn included) and removes the
//! file; then the Inject RPC of a disk fill of the same size until it returns (the file
//! is fully allocated by then: no ramp), checked by the file's blocks; then the Revert
//! RPC until it returns, after which the file must be gone. Reports the medians, the
//! fill's ratio to `fallocate` and the revert time. The filesystem is a tmpfs the bench
//! mounts (SIZE + 256 MiB), or `--dir DIR` (any filesystem other than the state dir's:
//! the agent's state dir then goes on a small tmpfs of its own). Needs root. It reports;
//! it does not gate.
//!
//! Run: `cargo build --bins && target/debug/bench-disk [--runs 10] [--mib 1024] [--dir DIR]`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use faultline_proto::v1 as pb;
use faultline_tests::agent::{Agent, AgentOptions};
use faultline_tests::disk::Tmpfs;

/// A disk fill through a real faultd against the fallocate command (needs root).
#[derive(Debug, clap::Parser)]
#[command(
    name = "bench-disk",
    about = "A disk fill's Inject and Revert through a real faultd against `fallocate -l` of the same size on the same filesystem (medians, ratio). Needs root; reports, never gates.",
    after_help = "Examples:\n  sudo target/debug/bench-disk --runs 20                  # 1 GiB on a tmpfs it mounts\n  sudo target/debug/bench-disk --runs 10 --dir /var/tmp   # another filesystem\n  sudo target/debug/bench-disk --runs 1 --mib 8           # a smoke run"
)]
struct Args {
    /// Timed runs of each (fallocate, Inject, Revert).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Size of each fill in MiB.
    #[arg(long, default_value_t = 1024)]
    mib: u64,
    /// Fill this directory's filesystem instead of a tmpfs the bench mounts (not the
    /// filesystem of the agent's state dir).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(v: &mut [Duration]) -> Duration {
    faultline_tests::quantile(v, 50)
}

/// Bytes of real blocks a file holds.
fn allocated(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map(|m| m.blocks() * 512).unwrap_or(0)
}

/// The fill file in `dir`, if there is one.
fn fill_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".faultline-fill-"))
        })
}

fn fill(dir: &Path, bytes: u64) -> pb::InjectRequest {
    pb::InjectRequest {
        spec: Some(pb::FaultSpec {
            kind: Some(pb::fault_spec::Kind::DiskFill(pb::DiskFillSpec {
                path: dir.display().to_string(),
                size_bytes: bytes,
                ..Default::default()
            })),
        }),
        duration_ms: 300_000,
        labels: HashMap::new(),
        dry_run: false,
        lease_id: String::new(),
    }
}

fn main() -> anyhow::Result<()> {
    let Args { runs, mib, dir } = <Args as clap::Parser>::parse();
    anyhow::ensure!(runs > 0, "--runs must be at least 1");
    anyhow::ensure!(mib > 0, "--mib must be at least 1");
    let bytes = mib << 20;
    let (_fs, dir, state_fs): (Option<Tmpfs>, PathBuf, Option<Tmpfs>) = match dir {
        Some(d) => (None, d, Some(Tmpfs::mount("bench-state", 16))),
        None => {
            let t = Tmpfs::mount("bench", mib + 256);
            let d = t.dir.clone();
            (Some(t), d, None)
        }
    };
    let fstype = String::from_utf8_lossy(
        &Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(&dir)
            .output()?
            .stdout,
    )
    .trim()
    .to_string();
    let agent = Agent::start_with(AgentOptions {
        limits: Some("profile = \"staging\"\n[disk]\nmin_free = \"16MiB\"\n".into()),
        state_dir: state_fs.as_ref().map(|t| t.dir.join("state")),
        ..Default::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (mut cmd, mut inj, mut rev) = (Vec::new(), Vec::new(), Vec::new());
    let file = dir.join("bench-disk-fallocate");
    rt.block_on(async {
        let mut client = faultline_controller::connect(&agent.uri()).await?;
        for run in 0..runs {
            let t0 = Instant::now();
            let st = Command::new("fallocate")
                .args(["-l", &bytes.to_string()])
                .arg(&file)
                .status()?;
            cmd.push(t0.elapsed());
            anyhow::ensure!(st.success(), "fallocate failed");
            anyhow::ensure!(
                allocated(&file) >= bytes,
                "run {run}: fallocate took no space"
            );
            std::fs::remove_file(&file)?;

            let t0 = Instant::now();
            let r = client.inject(fill(&dir, bytes)).await?.into_inner();
            inj.push(t0.elapsed());
            let filled =
                fill_file(&dir).ok_or_else(|| anyhow::anyhow!("run {run}: no fill file"))?;
            anyhow::ensure!(
                allocated(&filled) >= bytes,
                "run {run}: the fill took {} of {bytes} bytes",
                allocated(&filled)
            );
            let id = r.fault.map(|f| f.id).unwrap_or_default();
            let t0 = Instant::now();
            client
                .revert(pb::RevertRequest {
                    id,
                    reason: "bench-disk".into(),
                })
                .await?;
            rev.push(t0.elapsed());
            anyhow::ensure!(
                fill_file(&dir).is_none(),
                "run {run}: the fill file is still there after revert"
            );
        }
        anyhow::Ok(())
    })?;
    let (c, i, r) = (median(&mut cmd), median(&mut inj), median(&mut rev));
    println!(
        "bench-disk: {mib} MiB on {fstype} ({}), {runs} runs: fallocate command median {} (min {}), disk-fill Inject median {} (min {}): ratio {:.2}; Revert median {} (max {})",
        dir.display(),
        ms(c),
        ms(cmd[0]),
        ms(i),
        ms(inj[0]),
        i.as_secs_f64() / c.as_secs_f64(),
        ms(r),
        ms(rev[rev.len() - 1]),
    );
    Ok(())
}
