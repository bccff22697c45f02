//! `stress-bench`: measures faultline's confined CPU and memory stress on this host, next
//! to `stress-ng` in the same kind of cgroup when it is installed; also the worker host
//! for the privileged stress tests (it answers faultd's hidden worker subcommands).
//!
//! ```text
//! stress-bench bench [--seconds 10] [--targets 5,15,50,100] [--mem-mib 64,256,1024] [--no-weight]
//! stress-bench __stress-cpu --load P [--period-us US]     # a worker, as faultd runs it
//! stress-bench __stress-mem --size BYTES [--ramp-ms MS]
//! stress-bench __hold --parent own|PATH --name NAME --workers N --load P [--mem BYTES]
//! ```
//! `__hold` creates the group, starts the workers inside it, prints one line
//! `READY <pid> <pid>...` and sleeps: a stand-in for faultd in the parent-death test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use faultline_agent::sys::cgroup::{Cgroups, Limits, OwnedGroup, ParentSpec};
use faultline_agent::sys::stress::{
    self, CPU_SUBCOMMAND, MEM_SUBCOMMAND, WorkerCommand, plan_cpu_share, spawn_worker,
};

const USAGE: &str = "\
stress-bench: faultline's confined CPU and memory stress on this host, next to stress-ng
in the same kind of cgroup when it is installed (root, a cgroup hierarchy with the cpu and
memory controllers). It reports; it does not gate. Also the worker host for the
privileged stress tests.

Usage:
  stress-bench bench [--seconds 10] [--targets 5,15,50,100] [--mem-mib 64,256,1024] [--no-weight]
  stress-bench __stress-cpu --load P [--period-us US]     # a worker, as faultd runs it
  stress-bench __stress-mem --size BYTES [--ramp-ms MS]
  stress-bench __hold --parent own|PATH --name NAME --workers N --load P [--mem BYTES]

  --seconds S      each measuring window (default 10)
  --targets LIST   CPU loads to measure, percent of the node (default 5,15,50,100)
  --mem-mib LIST   memory sizes to measure, MiB (default 64,256,1024)
  --no-weight      leave the group's CPU weight at the default

Examples:
  sudo target/release/stress-bench bench
  sudo target/debug/stress-bench bench --seconds 1 --targets 5 --mem-mib 16   # a smoke run
";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some("bench") if args.iter().any(|a| a == "-h" || a == "--help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(CPU_SUBCOMMAND) | Some(MEM_SUBCOMMAND) => WorkerCommand::from_args(&args)?.run(),
        Some("__hold") => hold(&args[1..]),
        Some("bench") | None => bench(args.get(1..).unwrap_or(&[])),
        Some(other) => bail!("unknown subcommand {other:?}: use bench, __hold or a worker"),
    }
}

/// `--key value` pairs.
fn opt<'a>(args: &'a [String], key: &str) -> Option<&'a str> {
    args.windows(2).find(|w| w[0] == key).map(|w| w[1].as_str())
}

fn hold(args: &[String]) -> anyhow::Result<()> {
    let cg = Cgroups::detect()?;
    let parent = match opt(args, "--parent").unwrap_or("own") {
        "own" => ParentSpec::Own,
        p => ParentSpec::Path(p.to_string()),
    };
    let name = opt(args, "--name").context("--name is required")?;
    let workers: u32 = opt(args, "--workers").unwrap_or("1").parse()?;
    let load: f64 = opt(args, "--load").unwrap_or("5").parse()?;
    let mem: Option<u64> = opt(args, "--mem").map(str::parse).transpose()?;
    let plan = stress::plan_cpu_cores(workers, load);
    let caps = Limits {
        memory_max: mem.map(stress::memory_cap),
        ..plan.limits()
    };
    let group = cg.create_owned(&parent, name, &caps)?;
    let exe = std::env::current_exe()?;
    let mut pids = Vec::new();
    let mut children = Vec::new();
    for _ in 0..workers {
        let cmd = WorkerCommand::Cpu {
            load_percent: load,
            period: stress::DEFAULT_PERIOD,
        };
        let c = spawn_worker(&exe, &cmd.to_args(), &group.groups)?;
        pids.push(c.id().to_string());
        children.push(c);
    }
    if let Some(size) = mem {
        let cmd = WorkerCommand::Mem {
            size_bytes: size,
            ramp: Duration::ZERO,
        };
        let c = spawn_worker(&exe, &cmd.to_args(), &group.groups)?;
        pids.push(c.id().to_string());
        children.push(c);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {}", pids.join(" "))?;
    out.flush()?;
    drop(out);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A measurement group with its workers; removed on drop.
struct Run<'a> {
    cg: &'a Cgroups,
    group: OwnedGroup,
    children: Vec<Child>,
    started: Instant,
}

impl Run<'_> {
    fn cpu_usec(&self) -> anyhow::Result<u64> {
        self.cg
            .owned_usage(&self.group)?
            .cpu_usec
            .context("no cpu usage counter in the group")
    }

    fn stop(mut self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        self.cg.remove_owned(&self.group, Duration::from_secs(5))?;
        for c in &mut self.children {
            c.wait()?;
        }
        self.children.clear();
        Ok(t.elapsed())
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        let _ = self.cg.remove_owned(&self.group, Duration::from_secs(5));
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start<'a>(
    cg: &'a Cgroups,
    name: &str,
    caps: Limits,
    cmds: &[(PathBuf, Vec<String>)],
) -> anyhow::Result<Run<'a>> {
    let started = Instant::now();
    let group = cg.create_owned(&ParentSpec::Path("/".into()), name, &caps)?;
    let mut run = Run {
        cg,
        group,
        children: Vec::new(),
        started,
    };
    for (exe, args) in cmds {
        run.children
            .push(spawn_worker(exe, args, &run.group.groups)?);
    }
    Ok(run)
}

/// Busy and total CPU time of the whole node so far, in seconds (`/proc/stat` cpu line).
fn node_cpu_times() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let hz = 100.0; // USER_HZ
    let total: f64 = v.iter().sum::<f64>() / hz;
    let idle = (v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0)) / hz;
    (total - idle, total)
}

/// Time from start until a 100 ms window first reaches 90 % of `target_cpus`, then the
/// mean CPU use in CPUs over `window` (after 1 s of settling), and the CPUs that
/// everything else on the node used meanwhile.
fn measure_cpu(
    run: &Run,
    target_cpus: f64,
    window: Duration,
) -> anyhow::Result<(Duration, f64, f64)> {
    let mut reach = None;
    let mut last = (Instant::now(), run.cpu_usec()?);
    while run.started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        let now = (Instant::now(), run.cpu_usec()?);
        let rate = (now.1 - last.1) as f64 / 1e6 / (now.0 - last.0).as_secs_f64();
        if reach.is_none() && rate >= 0.9 * target_cpus {
            reach = Some(now.0 - run.started);
        }
        last = now;
        if reach.is_some() && run.started.elapsed() >= Duration::from_secs(1) {
            break;
        }
    }
    let (t0, u0, n0) = (Instant::now(), run.cpu_usec()?, node_cpu_times());
    std::thread::sleep(window);
    let (t1, u1, n1) = (Instant::now(), run.cpu_usec()?, node_cpu_times());
    let secs = (t1 - t0).as_secs_f64();
    let cpus = (u1 - u0) as f64 / 1e6 / secs;
    let others = ((n1.0 - n0.0) / secs - cpus).max(0.0);
    Ok((reach.unwrap_or(Duration::MAX), cpus, others))
}

fn fmt_reach(d: Duration) -> String {
    if d == Duration::MAX {
        ">3000".into()
    } else {
        format!("{}", d.as_millis())
    }
}

fn rss_anon(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("RssAnon:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn bench(args: &[String]) -> anyhow::Result<()> {
    let cg = Cgroups::detect()?;
    let backend = cg.stress_backend()?;
    let secs: u64 = opt(args, "--seconds").unwrap_or("10").parse()?;
    let window = Duration::from_secs(secs);
    let targets: Vec<f64> = opt(args, "--targets")
        .unwrap_or("5,15,50,100")
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let mem_mib: Vec<u64> = opt(args, "--mem-mib")
        .unwrap_or("64,256,1024")
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let no_weight = args.iter().any(|a| a == "--no-weight");
    let ncpus = stress::node_cpus() as f64;
    let exe = std::env::current_exe()?;
    let stress_ng = ["/usr/bin/stress-ng", "/usr/local/bin/stress-ng"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists());
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "stress-bench: {ncpus} CPUs, cgroup mode {}, stress backend {backend:?}, {secs} s windows, group CPU weight {}, loadavg before: {}",
        cg.mode(),
        if no_weight {
            "default (--no-weight)"
        } else {
            "100 per worker"
        },
        loadavg.trim()
    );
    println!(
        "stress-ng: {}",
        stress_ng.map_or("not installed (apt-get install stress-ng)".into(), |p| p
            .display()
            .to_string())
    );
    println!();
    println!(
        "| target % of node | plan (workers x duty) | cap quota/period us | faultline % | error pts | reach ms | revert ms | others % | stress-ng % | error pts | reach ms | others % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, &target) in targets.iter().enumerate() {
        let plan = plan_cpu_share(target, ncpus);
        let mut caps = plan.limits();
        if no_weight {
            caps.cpu_weight = None;
        }
        let target_cpus = target / 100.0 * ncpus;
        let cmd = WorkerCommand::Cpu {
            load_percent: plan.load_percent,
            period: stress::DEFAULT_PERIOD,
        };
        let cmds: Vec<(PathBuf, Vec<String>)> = (0..plan.workers)
            .map(|_| (exe.clone(), cmd.to_args()))
            .collect();
        let name = format!("faultline-bench-{}-{i}", std::process::id());
        let run = start(&cg, &name, caps, &cmds)?;
        let (reach, cpus, others) = measure_cpu(&run, target_cpus, window)?;
        let revert = run.stop()?;
        let pct = cpus / ncpus * 100.0;
        let mut ng = (
            "-".to_string(),
            "-".to_string(),
            "-".to_string(),
            "-".to_string(),
        );
        if let Some(sng) = stress_ng {
            let args = vec![
                "--cpu".to_string(),
                plan.workers.to_string(),
                "--cpu-load".to_string(),
                format!("{}", plan.load_percent.round() as u64),
                "--timeout".to_string(),
                format!("{}s", secs + 6),
                "--quiet".to_string(),
            ];
            let name = format!("faultline-bench-{}-{i}-ng", std::process::id());
            let run = start(&cg, &name, caps, &[(sng.to_path_buf(), args)])?;
            let (reach, cpus, others) = measure_cpu(&run, target_cpus, window)?;
            run.stop()?;
            let p = cpus / ncpus * 100.0;
            ng = (
                format!("{p:.2}"),
                format!("{:+.2}", p - target),
                fmt_reach(reach),
                format!("{:.0}", others / ncpus * 100.0),
            );
        }
        println!(
            "| {target} | {} x {:.1} % | {}/{} | {pct:.2} | {:+.2} | {} | {} | {:.0} | {} | {} | {} | {} |",
            plan.workers,
            plan.load_percent,
            plan.cap.quota_us.unwrap_or(0),
            plan.cap.period_us,
            pct - target,
            fmt_reach(reach),
            revert.as_millis(),
            others / ncpus * 100.0,
            ng.0,
            ng.1,
            ng.2,
            ng.3
        );
    }
    println!(
        "(others %: the node's CPU used by everything else during the same window, from /proc/stat)"
    );
    println!();
    println!(
        "| requested MiB | ramp | cap MiB | cgroup memory MiB | error % | worker RssAnon MiB | error % | reach ms | revert ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, &mib) in mem_mib.iter().enumerate() {
        for ramp in [Duration::ZERO, Duration::from_secs(2)] {
            let size = mib << 20;
            let cap = stress::memory_cap(size);
            let caps = Limits {
                cpu: None,
                memory_max: Some(cap),
                cpu_weight: None,
            };
            let cmd = WorkerCommand::Mem {
                size_bytes: size,
                ramp,
            };
            let name = format!(
                "faultline-bench-{}-m{i}-{}",
                std::process::id(),
                ramp.as_secs()
            );
            let run = start(&cg, &name, caps, &[(exe.clone(), cmd.to_args())])?;
            let pid = run.children[0].id();
            // Reached when the worker's anonymous RSS is within 1 % of the size.
            let mut reach = Duration::MAX;
            while run.started.elapsed() < ramp + Duration::from_secs(20) {
                if rss_anon(pid).is_some_and(|r| r as f64 >= size as f64 * 0.99) {
                    reach = run.started.elapsed();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(500));
            let charged = run
                .cg
                .owned_usage(&run.group)?
                .memory_bytes
                .context("no memory counter")?;
            let rss = rss_anon(pid).unwrap_or(0);
            let revert = run.stop()?;
            let m = |b: u64| b as f64 / (1 << 20) as f64;
            let err = |b: u64| (b as f64 - size as f64) / size as f64 * 100.0;
            println!(
                "| {mib} | {} s | {:.1} | {:.1} | {:+.2} | {:.1} | {:+.2} | {} | {} |",
                ramp.as_secs(),
                m(cap),
                m(charged),
                err(charged),
                m(rss),
                err(rss),
                if reach == Duration::MAX {
                    "never".into()
                } else {
                    reach.as_millis().to_string()
                },
                revert.as_millis()
            );
        }
    }
    println!();
    println!(
        "loadavg after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}
