//! Stress workers: the CPU duty-cycle loop and the memory hog that `faultd` runs by
//! re-executing its own binary with a hidden subcommand (`faultd __stress-cpu --load 50
//! --period-us 100000`, `faultd __stress-mem --size BYTES --ramp-ms MS`), and
//! [`spawn_worker`], which starts one inside a faultline-owned cgroup with a parent-death
//! signal and `oom_score_adj` 1000.
//!
//! The cgroup's hard cap (see [`crate::sys::cgroup::Cgroups::create_owned`]) is what
//! guarantees the limit; the worker's own loop aims at the requested load within it.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::time::{ClockId, ClockNanosleepFlags, clock_gettime, clock_nanosleep};

use crate::sys::cgroup::{CgroupError, CgroupRef, CpuMax, Limits};

/// The hidden subcommand of a CPU worker.
pub const CPU_SUBCOMMAND: &str = "__stress-cpu";
/// The hidden subcommand of a memory worker.
pub const MEM_SUBCOMMAND: &str = "__stress-mem";
/// The hidden subcommand of an I/O worker.
pub const IO_SUBCOMMAND: &str = "__stress-io";
/// The block an I/O worker reads and writes at a time (O_DIRECT, 4 KiB aligned).
pub const IO_CHUNK: u64 = 1 << 20;
/// O_DIRECT wants offsets, lengths and buffers aligned to the logical block size; 4 KiB
/// covers every common device.
pub const IO_ALIGN: u64 = 4096;
/// The default duty-cycle period.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(100);
/// The CFS period used for the hard caps, µs.
pub const CAP_PERIOD_US: u64 = 100_000;

/// Errors of the stress layer.
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    #[error("invalid stress worker arguments {args:?}: {why}")]
    InvalidArgs { args: Vec<String>, why: String },
    #[error("cannot start stress worker {}: {source}; check that the binary exists and that the cgroup {cgroup} is writable", exe.display())]
    Spawn {
        exe: PathBuf,
        cgroup: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

/// What a worker process does; parsed from and rendered to its hidden subcommand.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerCommand {
    /// Busy for `load_percent` of every `period` (CPU time of the worker's thread).
    Cpu { load_percent: f64, period: Duration },
    /// Allocate `size_bytes`, touched so it is resident, growing linearly over `ramp`;
    /// then hold it.
    Mem { size_bytes: u64, ramp: Duration },
    /// Direct I/O (O_DIRECT) on `file`, `size_bytes` long, over and over.
    Io {
        file: PathBuf,
        size_bytes: u64,
        mode: IoMode,
    },
}

/// What an I/O worker does with its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoMode {
    /// Rewrite the file, pass after pass.
    Write,
    /// Write it once, then read it, pass after pass.
    Read,
    /// A write pass, then a read pass, over and over.
    Mixed,
}

impl IoMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IoMode::Write => "write",
            IoMode::Read => "read",
            IoMode::Mixed => "mixed",
        }
    }

    pub fn parse(s: &str) -> Option<IoMode> {
        match s {
            "write" => Some(IoMode::Write),
            "read" => Some(IoMode::Read),
            "mixed" => Some(IoMode::Mixed),
            _ => None,
        }
    }
}

impl WorkerCommand {
    /// The arguments after the executable: `["__stress-cpu", "--load", "50",
    /// "--period-us", "100000"]` or `["__stress-mem", "--size", "BYTES", "--ramp-ms", "MS"]`.
    pub fn to_args(&self) -> Vec<String> {
        match self {
            WorkerCommand::Cpu {
                load_percent,
                period,
            } => vec![
                CPU_SUBCOMMAND.into(),
                "--load".into(),
                load_percent.to_string(),
                "--period-us".into(),
                period.as_micros().to_string(),
            ],
            WorkerCommand::Mem { size_bytes, ramp } => vec![
                MEM_SUBCOMMAND.into(),
                "--size".into(),
                size_bytes.to_string(),
                "--ramp-ms".into(),
                ramp.as_millis().to_string(),
            ],
            WorkerCommand::Io {
                file,
                size_bytes,
                mode,
            } => vec![
                IO_SUBCOMMAND.into(),
                "--file".into(),
                file.display().to_string(),
                "--size".into(),
                size_bytes.to_string(),
                "--mode".into(),
                mode.as_str().into(),
            ],
        }
    }

    /// Parses what [`WorkerCommand::to_args`] renders (the subcommand first).
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<WorkerCommand, StressError> {
        let all: Vec<String> = args.iter().map(|s| s.as_ref().to_string()).collect();
        let bad = |why: String| StressError::InvalidArgs {
            args: all.clone(),
            why,
        };
        let mut it = all.iter();
        let sub = it.next().ok_or_else(|| bad("no subcommand".into()))?;
        let mut opts = std::collections::HashMap::new();
        while let Some(k) = it.next() {
            let v = it.next().ok_or_else(|| bad(format!("{k} needs a value")))?;
            opts.insert(k.as_str(), v.as_str());
        }
        let num = |k: &str, default: Option<f64>| -> Result<f64, StressError> {
            match (opts.get(k), default) {
                (Some(v), _) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| bad(format!("{k} {v:?} is not a non-negative number"))),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(bad(format!("{k} is required"))),
            }
        };
        let known = |allowed: &[&str]| -> Result<(), StressError> {
            match opts.keys().find(|k| !allowed.contains(k)) {
                Some(k) => Err(bad(format!("unknown option {k}"))),
                None => Ok(()),
            }
        };
        match sub.as_str() {
            CPU_SUBCOMMAND => {
                known(&["--load", "--period-us"])?;
                let load = num("--load", None)?;
                if load <= 0.0 || load > 100.0 {
                    return Err(bad(format!("--load {load} is not in (0, 100]")));
                }
                let period_us = num("--period-us", Some(DEFAULT_PERIOD.as_micros() as f64))?;
                if !(1000.0..=10_000_000.0).contains(&period_us) {
                    return Err(bad(format!(
                        "--period-us {period_us} is not between 1000 and 10000000"
                    )));
                }
                Ok(WorkerCommand::Cpu {
                    load_percent: load,
                    period: Duration::from_micros(period_us as u64),
                })
            }
            MEM_SUBCOMMAND => {
                known(&["--size", "--ramp-ms"])?;
                let size = opts
                    .get("--size")
                    .ok_or_else(|| bad("--size is required".into()))?;
                let size_bytes: u64 =
                    size.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        bad(format!("--size {size:?} is not a positive byte count"))
                    })?;
                let ramp_ms = num("--ramp-ms", Some(0.0))?;
                Ok(WorkerCommand::Mem {
                    size_bytes,
                    ramp: Duration::from_millis(ramp_ms as u64),
                })
            }
            IO_SUBCOMMAND => {
                known(&["--file", "--size", "--mode"])?;
                let file = PathBuf::from(
                    opts.get("--file")
                        .ok_or_else(|| bad("--file is required".into()))?,
                );
                if !file.is_absolute() {
                    return Err(bad(format!("--file {} is not absolute", file.display())));
                }
                let size = opts
                    .get("--size")
                    .ok_or_else(|| bad("--size is required".into()))?;
                let size_bytes: u64 = size
                    .parse()
                    .ok()
                    .filter(|s: &u64| *s > 0 && s.is_multiple_of(IO_ALIGN))
                    .ok_or_else(|| {
                        bad(format!(
                            "--size {size:?} is not a positive multiple of {IO_ALIGN}"
                        ))
                    })?;
                let m = opts.get("--mode").copied().unwrap_or("write");
                let mode = IoMode::parse(m)
                    .ok_or_else(|| bad(format!("--mode {m:?} is not read, write or mixed")))?;
                Ok(WorkerCommand::Io {
                    file,
                    size_bytes,
                    mode,
                })
            }
            other => Err(bad(format!(
                "unknown subcommand {other:?} (expected {CPU_SUBCOMMAND}, {MEM_SUBCOMMAND} or {IO_SUBCOMMAND})"
            ))),
        }
    }

    /// Runs the worker; never returns (it ends when killed).
    pub fn run(&self) -> ! {
        match self {
            WorkerCommand::Cpu {
                load_percent,
                period,
            } => run_cpu_worker(*load_percent, *period),
            WorkerCommand::Mem { size_bytes, ramp } => run_mem_worker(*size_bytes, *ramp),
            WorkerCommand::Io {
                file,
                size_bytes,
                mode,
            } => match run_io_worker(file, *size_bytes, *mode, None) {
                Ok(()) => std::process::exit(0),
                Err(e) => {
                    eprintln!("faultd {IO_SUBCOMMAND}: {}: {e}", file.display());
                    std::process::exit(1)
                }
            },
        }
    }
}

fn now_ns(clock: ClockId) -> i128 {
    // Both clocks always exist on Linux; a failure would be a kernel bug.
    let t = clock_gettime(clock).unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128
}

fn timespec(ns: i128) -> nix::sys::time::TimeSpec {
    nix::sys::time::TimeSpec::new((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64)
}

/// The CPU worker: in every `period`, spins until its thread has used `load_percent`
/// of the period in CPU time (`CLOCK_THREAD_CPUTIME_ID`, so time lost to other tasks
/// or to throttling is made up within the period, never beyond it), then sleeps until
/// the period's end (`clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`). At 100 % it
/// never sleeps. Never returns.
pub fn run_cpu_worker(load_percent: f64, period: Duration) -> ! {
    let load = load_percent.clamp(0.0, 100.0) / 100.0;
    let period_ns = period.as_nanos().max(1) as i128;
    let busy_ns = (period_ns as f64 * load) as i128;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    if load >= 1.0 {
        loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.rotate_left(5) ^ 0x2545_f491_4f6c_dd1d);
            }
        }
    }
    let mut next = now_ns(ClockId::CLOCK_MONOTONIC);
    loop {
        let end = next + period_ns;
        let cpu0 = now_ns(ClockId::CLOCK_THREAD_CPUTIME_ID);
        if busy_ns > 0 {
            loop {
                for _ in 0..2_000 {
                    x = std::hint::black_box(x.rotate_left(5) ^ 0x2545_f491_4f6c_dd1d);
                }
                if now_ns(ClockId::CLOCK_THREAD_CPUTIME_ID) - cpu0 >= busy_ns
                    || now_ns(ClockId::CLOCK_MONOTONIC) >= end
                {
                    break;
                }
            }
        }
        let _ = clock_nanosleep(
            ClockId::CLOCK_MONOTONIC,
            ClockNanosleepFlags::TIMER_ABSTIME,
            &timespec(end),
        );
        next = end;
        // After a long stall (frozen, stopped), start afresh rather than catch up.
        let now = now_ns(ClockId::CLOCK_MONOTONIC);
        if now > next + period_ns {
            next = now;
        }
    }
}

/// How much the memory worker allocates at a time.
const MEM_CHUNK: u64 = 8 << 20;

/// The memory worker: allocates `size_bytes` in chunks, writing every byte so that every
/// page is resident (a zero-filled allocation would stay unbacked), growing linearly
/// over `ramp` (at once if zero); then holds it. Never returns.
/// Direct I/O on `file` (created if missing, mode 0600): `size_bytes` in [`IO_CHUNK`]
/// blocks from a 4 KiB-aligned buffer, with `O_DIRECT` so every byte reaches the device
/// (and the cgroup's blk-throttle and io statistics see it). Runs until killed, or for
/// `passes` passes (tests).
pub fn run_io_worker(
    file: &Path,
    size_bytes: u64,
    mode: IoMode,
    passes: Option<u64>,
) -> std::io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_DIRECT)
        .open(file)?;
    let chunk = IO_CHUNK.min(size_bytes) as usize;
    // An aligned window of a larger buffer: no allocator tricks needed.
    let mut raw = vec![0u8; chunk + IO_ALIGN as usize];
    let off = raw.as_ptr().align_offset(IO_ALIGN as usize);
    let buf = &mut raw[off..off + chunk];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    let pass = |write: bool, buf: &mut [u8]| -> std::io::Result<()> {
        let mut at = 0u64;
        while at < size_bytes {
            let n = (size_bytes - at).min(chunk as u64) as usize;
            if write {
                f.write_all_at(&buf[..n], at)?;
            } else {
                f.read_exact_at(&mut buf[..n], at)?;
            }
            at += n as u64;
        }
        Ok(())
    };
    if mode == IoMode::Read {
        pass(true, buf)?;
    }
    let mut done = 0u64;
    loop {
        if passes.is_some_and(|p| done >= p) {
            return Ok(());
        }
        match mode {
            IoMode::Write => pass(true, buf)?,
            IoMode::Read => pass(false, buf)?,
            IoMode::Mixed => {
                pass(true, buf)?;
                pass(false, buf)?;
            }
        }
        done += 1;
    }
}

pub fn run_mem_worker(size_bytes: u64, ramp: Duration) -> ! {
    let start = Instant::now();
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut have: u64 = 0;
    while have < size_bytes {
        let target = if ramp.is_zero() {
            size_bytes
        } else {
            let f = (start.elapsed().as_secs_f64() / ramp.as_secs_f64()).min(1.0);
            ((size_bytes as f64 * f) as u64).min(size_bytes)
        };
        while have < target {
            let n = (target - have).min(MEM_CHUNK) as usize;
            // A non-zero fill is a memset over the fresh mapping: every page is written.
            held.push(vec![0xa5u8; n]);
            have += n as u64;
        }
        if have < size_bytes {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    std::hint::black_box(&held);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The node's online CPU count (`getconf _NPROCESSORS_ONLN`), the capacity that "percent
/// of the node" refers to. Unlike `std::thread::available_parallelism`, it ignores the
/// agent's own affinity mask and cgroup quota.
pub fn node_cpus() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .filter(|n| *n > 0)
        .map_or(1, |n| n as u32)
}

/// A CPU stress plan: how many workers, each at what duty cycle, under what hard cap,
/// with what CPU weight for the group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPlan {
    pub workers: u32,
    pub load_percent: f64,
    pub cap: CpuMax,
    /// v2-scale weight for the group: 100 per worker, so that the group competes like
    /// that many ordinary busy processes (a group otherwise weighs as one process).
    pub weight: u64,
}

impl CpuPlan {
    /// The caps to create the group with ([`Limits`] without a memory limit).
    pub fn limits(&self) -> Limits {
        Limits {
            cpu: Some(self.cap),
            memory_max: None,
            cpu_weight: Some(self.weight),
        }
    }
}

fn plan(workers: u32, load_percent: f64) -> CpuPlan {
    let total = workers as f64 * load_percent / 100.0;
    CpuPlan {
        workers,
        load_percent,
        cap: CpuMax {
            quota_us: Some(((total * CAP_PERIOD_US as f64).round() as u64).max(1000)),
            period_us: CAP_PERIOD_US,
        },
        weight: (100 * workers as u64).min(10_000),
    }
}

/// `percent` of a capacity of `cpus` CPUs (the node's CPU count, or a cgroup limit in
/// CPUs), spread evenly: one worker per CPU of the capacity (rounded up), each at the
/// same duty cycle, under a cap of exactly that share (`cpu.max` "QUOTA 100000").
/// Spreading keeps each worker's duty below 100 %, so time lost to other tasks can be
/// made up within the period.
pub fn plan_cpu_share(percent: f64, cpus: f64) -> CpuPlan {
    let total = (percent / 100.0 * cpus).max(0.0);
    let workers = cpus.ceil().max(1.0) as u32;
    plan(workers, (total / workers as f64 * 100.0).min(100.0))
}

/// `cores` workers each at `load_percent`, capped at their sum.
pub fn plan_cpu_cores(cores: u32, load_percent: f64) -> CpuPlan {
    plan(cores, load_percent)
}

/// The memory cap for a worker asked to hold `size_bytes`: just above it (2 % plus
/// 16 MiB for the worker's own binary, stack and page tables).
pub fn memory_cap(size_bytes: u64) -> u64 {
    size_bytes + size_bytes / 50 + (16 << 20)
}

struct SpawnRequest {
    cmd: Command,
    reply: mpsc::Sender<std::io::Result<Child>>,
}

/// The thread that forks every worker. `PR_SET_PDEATHSIG` fires when the *thread* that
/// forked the child exits, so forking from a short-lived thread (a tokio blocking-pool
/// thread idles out after 10 s) would kill the workers early. This one lives as long as
/// the process.
fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("faultline-spawn".into())
            .spawn(move || {
                for mut req in rx {
                    let _ = req.reply.send(req.cmd.spawn());
                }
            })
            .expect("cannot start the worker spawner thread");
        tx
    })
}

fn cstring(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other(format!("path {} contains a NUL byte", p.display())))
}

/// `echo -n DATA > PATH` with raw syscalls only (async-signal-safe, for `pre_exec`).
fn write_raw(path: &CString, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: path is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is open; data is a valid buffer of data.len() bytes.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: fd is open and ours; closed once.
    unsafe { libc::close(fd) };
    if n != data.len() as isize {
        return Err(err);
    }
    Ok(())
}

/// Starts `exe args...` as a stress worker with stdin from /dev/null (stdout and stderr
/// inherited); see [`spawn_worker_cmd`]. Reap the returned child with [`Child::wait`]
/// once it has been killed.
/// Shell: `(echo 1000 > /proc/self/oom_score_adj; echo $BASHPID > .../cgroup.procs;
/// exec setpriv --pdeathsig KILL EXE ARGS) < /dev/null`.
pub fn spawn_worker<S: AsRef<std::ffi::OsStr>>(
    exe: &Path,
    args: &[S],
    cgroup: &[CgroupRef],
) -> Result<Child, StressError> {
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null());
    spawn_worker_cmd(cmd, cgroup)
}

/// Starts `cmd` as a stress worker: in the child, before `exec`,
/// `PR_SET_PDEATHSIG(SIGKILL)` (so it dies with this process), a check that this process
/// is still its parent, `oom_score_adj` 1000 (the OOM killer picks it first), and
/// `echo 0 > cgroup.procs` in every part of `cgroup` (so it is confined before it runs a
/// single instruction of its own). The fork happens on a thread that lives as long as
/// the process, since the parent-death signal follows the forking thread.
pub fn spawn_worker_cmd(mut cmd: Command, cgroup: &[CgroupRef]) -> Result<Child, StressError> {
    let exe = PathBuf::from(cmd.get_program());
    let cg_names = cgroup
        .iter()
        .map(|g| g.dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let spawn_err = |source: std::io::Error| StressError::Spawn {
        exe: exe.clone(),
        cgroup: cg_names.clone(),
        source,
    };
    // Everything the child needs is allocated here, before fork.
    let procs: Vec<CString> = cgroup
        .iter()
        .map(|g| cstring(&g.dir.join("cgroup.procs")))
        .collect::<Result<_, _>>()
        .map_err(spawn_err)?;
    let oom = cstring(Path::new("/proc/self/oom_score_adj")).map_err(spawn_err)?;
    let parent = std::process::id() as i32;
    let pre_exec = move || -> std::io::Result<()> {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
        // The parent may have died before the prctl: then no signal would ever come.
        // (ESRCH, built without allocating: "no such process", the parent.)
        if nix::unistd::getppid().as_raw() != parent {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        write_raw(&oom, b"1000")?;
        for p in &procs {
            write_raw(p, b"0")?;
        }
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec; it only makes raw syscalls
    // (prctl, getppid, open, write, close) on memory allocated before the fork, and
    // allocates nothing (errors are raw OS errors), so it is async-signal-safe.
    unsafe { cmd.pre_exec(pre_exec) };
    let (tx, rx) = mpsc::channel();
    spawner()
        .send(SpawnRequest { cmd, reply: tx })
        .map_err(|_| spawn_err(std::io::Error::other("the spawner thread is gone")))?;
    rx.recv()
        .map_err(|_| spawn_err(std::io::Error::other("the spawner thread is gone")))?
        .map_err(spawn_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_args_round_trip() {
        for c in [
            WorkerCommand::Cpu {
                load_percent: 37.5,
                period: Duration::from_millis(100),
            },
            WorkerCommand::Mem {
                size_bytes: 64 << 20,
                ramp: Duration::from_secs(3),
            },
            WorkerCommand::Io {
                file: PathBuf::from("/var/tmp/.faultline-io-x-0"),
                size_bytes: 8 << 20,
                mode: IoMode::Mixed,
            },
        ] {
            assert_eq!(WorkerCommand::from_args(&c.to_args()).unwrap(), c);
        }
        assert_eq!(
            WorkerCommand::from_args(&["__stress-cpu", "--load", "50"]).unwrap(),
            WorkerCommand::Cpu {
                load_percent: 50.0,
                period: DEFAULT_PERIOD
            }
        );
    }

    #[test]
    fn worker_args_are_checked() {
        for (args, want) in [
            (vec!["__stress-cpu", "--load", "0"], "not in (0, 100]"),
            (vec!["__stress-cpu", "--load", "150"], "not in (0, 100]"),
            (
                vec!["__stress-cpu", "--load", "x"],
                "not a non-negative number",
            ),
            (vec!["__stress-cpu"], "--load is required"),
            (vec!["__stress-cpu", "--load"], "--load needs a value"),
            (
                vec!["__stress-cpu", "--load", "5", "--bogus", "1"],
                "unknown option --bogus",
            ),
            (
                vec!["__stress-mem", "--size", "0"],
                "not a positive byte count",
            ),
            (vec!["__stress-disk"], "unknown subcommand"),
        ] {
            let e = WorkerCommand::from_args(&args).unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn cpu_plans() {
        // 15 % of 2 CPUs: two workers at 15 %, cap 0.3 CPU, weight of two processes.
        let p = plan_cpu_share(15.0, 2.0);
        assert_eq!(p.workers, 2);
        assert!((p.load_percent - 15.0).abs() < 1e-9);
        assert_eq!(p.cap.quota_us, Some(30_000));
        assert_eq!(p.cap.period_us, 100_000);
        assert_eq!(p.weight, 200);
        // 100 % of 2: two at 100 %.
        let p = plan_cpu_share(100.0, 2.0);
        assert_eq!((p.workers, p.load_percent), (2, 100.0));
        assert_eq!(p.cap.quota_us, Some(200_000));
        // 50 % of a 0.5-CPU cgroup limit: one worker at 25 %.
        let p = plan_cpu_share(50.0, 0.5);
        assert_eq!((p.workers, p.load_percent), (1, 25.0));
        assert_eq!(p.cap.quota_us, Some(25_000));
        let p = plan_cpu_cores(3, 40.0);
        assert_eq!((p.workers, p.cap.quota_us), (3, Some(120_000)));
        assert_eq!(p.limits().cpu_weight, Some(300));
        assert!(memory_cap(1 << 30) > 1 << 30);
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        let count: u32 = online
            .trim()
            .split(',')
            .map(|r| match r.split_once('-') {
                Some((a, b)) => b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap() + 1,
                None => 1,
            })
            .sum();
        assert_eq!(node_cpus(), count);
    }

    #[test]
    fn io_worker_args_are_checked() {
        for (args, why) in [
            (vec!["__stress-io", "--size", "4096"], "--file is required"),
            (
                vec!["__stress-io", "--file", "rel", "--size", "4096"],
                "not absolute",
            ),
            (
                vec!["__stress-io", "--file", "/x", "--size", "100"],
                "multiple of 4096",
            ),
            (
                vec![
                    "__stress-io",
                    "--file",
                    "/x",
                    "--size",
                    "4096",
                    "--mode",
                    "r",
                ],
                "not read, write or mixed",
            ),
        ] {
            let e = WorkerCommand::from_args(&args).unwrap_err().to_string();
            assert!(e.contains(why), "{args:?}: {e}");
        }
    }

    /// O_DIRECT needs a real filesystem (tmpfs refuses it): the crate's own directory.
    #[test]
    fn io_worker_does_direct_io_on_a_real_filesystem() {
        let d = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let f = d.path().join("io");
        for mode in [IoMode::Write, IoMode::Read, IoMode::Mixed] {
            match run_io_worker(&f, 3 << 20, mode, Some(2)) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    eprintln!("skipped: this filesystem refuses O_DIRECT ({e})");
                    return;
                }
                Err(e) => panic!("{mode:?}: {e}"),
            }
            assert_eq!(std::fs::metadata(&f).unwrap().len(), 3 << 20);
        }
        let data = std::fs::read(&f).unwrap();
        assert_eq!(data[1], 38);
    }
}
