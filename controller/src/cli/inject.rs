//! `faultctl inject KIND`: each kind's flags, and their conversion to the domain request
//! ([`crate::request`]) through the same constructors scenario documents use. Errors name
//! the flags: a request field is named by the clap argument whose id is the field's name
//! (`delay_correlation` is `--delay-correlation`, `duration` is `--for`).

use clap::{Args, CommandFactory, Subcommand};

use crate::error::CtlError;
use crate::request::{
    Cpu, CpuInput, DiskFill, DiskFillInput, Fault, Field, Inject, IoLimit, IoLimitInput, IoStress,
    IoStressInput, Kill, Kind, Labels, Memory, MemoryInput, Network, NetworkInput, Pause, Period,
    ProcessInput, RequestError, Text,
};

/// The fault kinds `inject` knows.
#[derive(Debug, Subcommand)]
pub enum InjectCommand {
    /// Send a signal (default KILL) to the selected processes, once or --every DUR.
    #[command(after_help = "\
Examples:
  faultctl inject kill --name nginx --count 1 --dry-run
  faultctl inject kill --pid 4242 --signal TERM
  faultctl inject kill --unit worker.service --percent 50 --every 30s --for 5m
  faultctl inject kill --cmdline 'java .*-jar app.jar' --user app --all
  faultctl inject kill --container 3f1c9a2b7d4e --name nginx --count 1

Selectors combine with AND; at least one is required. --all is the default pick.
Protected processes (pid 1, faultd, sshd, journald, ...) are never hit; --dry-run
shows exactly which processes would be hit and which were left alone, and why.

Exit codes: 0 ok, 2 bad input, 3 refused by policy, 4 nothing matched,
5 agent unreachable, 6 host cannot do it, 1 other.")]
    Kill(Box<KillArgs>),
    /// Stop the selected processes (SIGSTOP, or freeze their cgroup) for --for DUR.
    #[command(after_help = "\
Examples:
  faultctl inject pause --pid 4242 --for 10s
  faultctl inject pause --unit worker.service --for 30s --dry-run
  faultctl inject pause --name redis-server --count 1 --for 1m --label team=cache
  faultctl inject pause --container containerd://3f1c9a2b7d4e... --for 30s

A --cgroup, --unit or --container selector alone freezes the whole cgroup (and
thaws it on revert); otherwise each process gets SIGSTOP, and SIGCONT when the
fault ends. A container is named by its id or a unique prefix of 12+ hex digits
(docker ps, crictl ps, kubectl's containerID); --dry-run shows it, its cgroup,
processes and network namespace. A container that stops while a fault holds it
ends the fault (reverted: target gone).

Exit codes: 0 ok, 2 bad input, 3 refused by policy, 4 nothing matched,
5 agent unreachable, 6 host cannot do it, 1 other.")]
    Pause(Box<PauseArgs>),
    /// Delay, drop, duplicate, corrupt, reorder or rate-limit packets on an interface
    /// (tc/netem through rtnetlink) for --for DUR.
    #[command(
        visible_alias = "network",
        after_help = "\
Examples:
  faultctl inject net --iface eth0 --delay 50ms --for 2m
  faultctl inject net --iface eth0 --delay 40ms --jitter 10ms --distribution normal --for 5m
  faultctl inject net --iface eth0 --loss 1% --dst 10.0.3.0/24 --protocol tcp --dport 5432 --for 1m
  faultctl inject net --iface eth0 --pid 4242 --loss 20% --for 30s      # a container's eth0
  faultctl inject net --container 3f1c9a2b7d4e --delay 100ms --for 1m  # its eth0
  faultctl inject net --iface eth0 --direction ingress --delay 30ms --for 1m
  faultctl inject net --iface eth0 --rate 10mbit --for 10m --dry-run
  faultctl inject net --iface eth0 --blackhole --dst 10.0.3.0/24 --for 1m   # drop, not delay
  faultctl inject net --iface eth0 --blackhole --direction both --dst 10.0.3.0/24 --for 1m  # partition
  faultctl inject net --iface eth0 --dns --blackhole --for 1m          # DNS fails

Without --dst/--src/--dport/--sport/--protocol/--dns the whole interface is affected; with
them only matching packets are, and all other traffic is untouched. Any combination of
netem parameters fits in one fault. An interface whose root qdisc is the operator's
own (htb, tbf, fq, cake...) is refused and left alone. One network fault at a time per
interface and direction. Protected traffic (the limits' protected_ports, default 22, and
protected_cidrs; faultd's TCP port; a TCP caller's own connection) is always spared:
`faultctl status` shows it.

Exit codes: 0 ok, 2 bad input, 3 refused by policy, 4 not found,
5 agent unreachable, 6 host cannot do it (no netem module, foreign qdisc), 1 other."
    )]
    Net(Box<NetArgs>),
    /// Burn CPU in a capped cgroup: --percent of the node (or of the target cgroup's CPU
    /// limit), or --cores N --load P, for --for DUR.
    #[command(after_help = "\
Examples:
  faultctl inject cpu --percent 15 --for 60s
  faultctl inject cpu --cores 2 --load 50 --for 30s
  faultctl inject cpu --percent 50 --unit api.service --for 2m   # 50% of the unit's CPU limit
  faultctl inject cpu --percent 50 --container 3f1c9a2b7d4e --for 1m

The workers run in a faultline-owned cgroup whose cpu.max (v2) or cfs quota (v1) is
exactly the requested share, so they can never take more. Placed with --cgroup, --unit,
--pid or --container, they compete with that workload inside its cgroup, under its
limits.

Exit codes: 0 ok, 2 bad input, 3 refused by policy, 4 target not found,
5 agent unreachable, 6 host cannot do it, 1 other.")]
    Cpu(Box<CpuArgs>),
    /// Hold memory resident in a capped cgroup: --size or --percent, optionally --ramp.
    #[command(
        visible_alias = "memory",
        after_help = "\
Examples:
  faultctl inject mem --size 512MiB --for 60s
  faultctl inject mem --percent 5 --ramp 20s --for 2m
  faultctl inject mem --size 256MiB --cgroup /system.slice/api.service --for 1m
  faultctl inject mem --percent 50 --container 3f1c9a2b7d4e --for 1m

The pages are touched and stay resident. The cgroup's memory cap sits just above the
size, so a runaway is OOM-killed inside it and the node carries on; the fault is then
reported failed. A fault that would leave the node with less than max(10% of RAM,
512 MiB) available is refused before anything starts.

Exit codes: 0 ok, 2 bad input, 3 refused by policy, 4 target not found,
5 agent unreachable, 6 host cannot do it, 1 other."
    )]
    Mem(Box<MemArgs>),
    /// Fill the filesystem holding --path: --size more, to --percent used, or until only
    /// --free is left, optionally over --ramp, for --for DUR.
    #[command(after_help = "\
Examples:
  faultctl inject disk-fill --path /var/lib/app --percent 90 --for 5m
  faultctl inject disk-fill --path /data --size 10GiB --ramp 2m --for 10m
  faultctl inject disk-fill --path /var/log --free 500MiB --for 1m --dry-run

The space is taken by one file, .faultline-fill-<instance>-<token>, created directly
in --path with fallocate (or written zeros where the filesystem refuses fallocate);
revert removes it and the space is back. Sizes are binary (KiB, MiB, GiB); percent
and free count as df does (free: what unprivileged users can still write).
The node's limits refuse a fill that would push the filesystem past
disk.max_used_percent or leave less than disk.min_free, and any fill of a protected
filesystem (disk.protected_paths, and always the one holding faultd's state dir).
One fill per filesystem at a time. --dry-run shows the file, the size and the
filesystem's use before and after.

Exit codes: 0 ok, 2 bad input, 3 refused by policy, 4 not found,
5 agent unreachable, 6 host cannot do it, 1 other.")]
    DiskFill(Box<DiskFillArgs>),
    /// Throttle a cgroup's I/O on one block device (blk-throttle: cgroup v2 io.max, v1
    /// blkio.throttle.*) for --for DUR; the values in force before are restored exactly.
    #[command(after_help = "\
Examples:
  faultctl inject io-limit --unit api.service --path /var/lib/api --write-bps 4MiB --for 2m
  faultctl inject io-limit --cgroup /system.slice/db.service --device /dev/nvme0n1 \\
      --read-iops 200 --write-iops 200 --for 5m
  faultctl inject io-limit --container 3f1c9a2b7d4e --path /data --read-bps 1MiB --for 1m

Rates are sizes per second (KiB, MiB, GiB); iops are operations per second. --path means
the device of the filesystem holding it; a partition means its whole disk (where
blk-throttle applies). Only the keys given change; revert writes back exactly what was
there (a limit the operator set before included). One io limit per cgroup and device.
On cgroup v2 the target's parent must have the io controller enabled (+io in its
cgroup.subtree_control, or IOAccounting=yes on a systemd unit): faultline refuses with
that fix rather than change the hierarchy. The node's limits set the lowest rates
(io.min_bps, io.min_iops).

Exit codes: 0 ok, 2 bad input, 3 refused by policy, 4 target not found,
5 agent unreachable, 6 host cannot do it (no io controller), 1 other.")]
    IoLimit(Box<IoLimitArgs>),
    /// Load a disk with direct I/O (O_DIRECT) for --for DUR: worker processes read and/or
    /// write their own files in --path, inside a faultline cgroup capped by blk-throttle.
    #[command(after_help = "\
Examples:
  faultctl inject io-stress --path /var/lib/app --for 1m
  faultctl inject io-stress --path /data --workers 4 --size 256MiB --mode mixed --for 5m
  faultctl inject io-stress --path /data --write-bps 8MiB --for 30s --dry-run

Each worker is `faultd __stress-io` (killed with faultd: parent-death signal, and the
first the OOM killer takes) doing O_DIRECT reads and/or writes of 1 MiB blocks on its
own file, .faultline-io-<instance>-<token>-<n>, directly in --path, so every byte
reaches the device: a tmpfs or overlay refuses. --mode write (the default) rewrites
the file over and over; read writes it once and then reads it over and over; mixed
alternates. The workers run in a faultline-owned cgroup whose blk-throttle (v1
blkio.throttle, v2 io.max) caps them at the limits' io.stress_max_bps or the lower
--read-bps / --write-bps. Revert (or --for running out, or faultd restarting after a
crash) kills the workers and removes the files and the group. The node's limits
bound the workers (io.stress_max_workers) and keep disk.min_free free; a filesystem
in disk.protected_paths is refused. Sizes are multiples of 4KiB (default 64MiB).

Exit codes: 0 ok, 2 bad input, 3 refused by policy, 4 not found,
5 agent unreachable, 6 host cannot do it, 1 other.")]
    IoStress(Box<IoStressArgs>),
}

/// `faultctl inject io-stress`.
#[derive(Debug, Clone, Args)]
pub struct IoStressArgs {
    /// A directory on the disk's filesystem (absolute); the workers' files go in it.
    #[arg(long, value_name = "DIR")]
    pub path: String,
    /// Worker processes (default 1).
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// Each worker's file, e.g. 64MiB (default; a multiple of 4KiB).
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// read, write (default) or mixed.
    #[arg(long, value_name = "MODE", value_parser = ["read", "write", "mixed"])]
    pub mode: Option<String>,
    /// Cap the workers' reads at this many bytes per second, e.g. 8MiB.
    #[arg(long, value_name = "SIZE")]
    pub read_bps: Option<String>,
    /// Cap the workers' writes at this many bytes per second, e.g. 8MiB.
    #[arg(long, value_name = "SIZE")]
    pub write_bps: Option<String>,
    /// How long the fault lasts (required), e.g. 30s, 5m.
    #[arg(long = "for", value_name = "DUR")]
    pub duration: String,
    #[command(flatten)]
    pub common: CommonInjectArgs,
}

/// `faultctl inject io-limit`.
#[derive(Debug, Clone, Args)]
pub struct IoLimitArgs {
    /// The cgroup to throttle: a path (`/system.slice/x.service`, or under /sys/fs/cgroup).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["unit", "pid", "container"])]
    pub cgroup: Option<String>,
    /// The cgroup of this systemd unit.
    #[arg(long, value_name = "NAME.service", conflicts_with_all = ["pid", "container"])]
    pub unit: Option<String>,
    /// The cgroup of this process.
    #[arg(long, value_name = "PID", conflicts_with = "container")]
    pub pid: Option<i32>,
    /// The cgroup of this container: its id or a unique prefix of 12+ hex digits.
    #[arg(long, value_name = "ID")]
    pub container: Option<String>,
    /// The block device, e.g. /dev/vdb (a partition means its disk).
    #[arg(long, value_name = "DEV", conflicts_with = "path")]
    pub device: Option<String>,
    /// Or: a path whose filesystem's device is meant.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Read bytes per second, e.g. 4MiB.
    #[arg(long, value_name = "SIZE")]
    pub read_bps: Option<String>,
    /// Write bytes per second, e.g. 4MiB.
    #[arg(long, value_name = "SIZE")]
    pub write_bps: Option<String>,
    /// Read operations per second.
    #[arg(long, value_name = "N")]
    pub read_iops: Option<u64>,
    /// Write operations per second.
    #[arg(long, value_name = "N")]
    pub write_iops: Option<u64>,
    /// How long the fault lasts (required), e.g. 30s, 5m.
    #[arg(long = "for", value_name = "DUR")]
    pub duration: String,
    #[command(flatten)]
    pub common: CommonInjectArgs,
}

/// `faultctl inject disk-fill`.
#[derive(Debug, Clone, Args)]
#[group(id = "amount", required = true, multiple = false, args = ["size", "percent", "free"])]
pub struct DiskFillArgs {
    /// A directory on the filesystem to fill (absolute); the fill file goes in it.
    #[arg(long, value_name = "DIR")]
    pub path: String,
    /// Use this much more: 512MiB, 10GiB...
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// Fill until the filesystem is P percent used.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub percent: Option<f64>,
    /// Fill until only SIZE is left available.
    #[arg(long, value_name = "SIZE")]
    pub free: Option<String>,
    /// Grow linearly to the size over this long.
    #[arg(long, value_name = "DUR")]
    pub ramp: Option<String>,
    /// How long the fault lasts (required), e.g. 30s, 5m.
    #[arg(long = "for", value_name = "DUR")]
    pub duration: String,
    #[command(flatten)]
    pub common: CommonInjectArgs,
}

/// Where stress runs (default: faultd's own cgroup subtree).
#[derive(Debug, Clone, Default, Args)]
#[group(id = "placement", multiple = false)]
#[command(next_help_heading = "Placement (one of; default faultd's own subtree)")]
pub struct PlacementArgs {
    /// Inside this cgroup (and under its limits).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Inside this systemd unit's cgroup.
    #[arg(long, value_name = "NAME.service")]
    pub unit: Option<String>,
    /// Inside this process's cgroup.
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,
    /// Inside this container's cgroup (and under its limits): its id or a unique prefix
    /// of 12+ hex digits.
    #[arg(long, value_name = "ID")]
    pub container: Option<String>,
}

/// `faultctl inject cpu`.
#[derive(Debug, Clone, Args)]
pub struct CpuArgs {
    /// Percent of the node's CPU capacity (or of the target cgroup's CPU limit).
    #[arg(long, value_name = "P", allow_negative_numbers = true, conflicts_with_all = ["cores", "load"])]
    pub percent: Option<f64>,
    /// Number of workers (with --load).
    #[arg(long, value_name = "N", requires = "load")]
    pub cores: Option<u32>,
    /// Duty cycle of each worker, percent (with --cores).
    #[arg(
        long,
        value_name = "P",
        allow_negative_numbers = true,
        requires = "cores"
    )]
    pub load: Option<f64>,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// How long the fault lasts (required), e.g. 30s, 5m.
    #[arg(long = "for", value_name = "DUR")]
    pub duration: String,
    #[command(flatten)]
    pub common: CommonInjectArgs,
}

/// `faultctl inject mem`.
#[derive(Debug, Clone, Args)]
pub struct MemArgs {
    /// Size to hold resident: 512MiB, 2GiB...
    #[arg(long, value_name = "SIZE", conflicts_with = "percent")]
    pub size: Option<String>,
    /// Percent of RAM (or of the target cgroup's memory limit).
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub percent: Option<f64>,
    /// Grow linearly to the size over this long.
    #[arg(long, value_name = "DUR")]
    pub ramp: Option<String>,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// How long the fault lasts (required), e.g. 30s, 5m.
    #[arg(long = "for", value_name = "DUR")]
    pub duration: String,
    #[command(flatten)]
    pub common: CommonInjectArgs,
}

/// `faultctl inject net`.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// The interface, e.g. eth0 [required, but with --container: eth0].
    #[arg(long, value_name = "NAME", required_unless_present = "container")]
    pub iface: Option<String>,
    /// Act in another network namespace: a name under /run/netns, or a path.
    #[arg(long, value_name = "NAME|PATH", conflicts_with_all = ["pid", "container"])]
    pub netns: Option<String>,
    /// Act in the network namespace of this process (a container's).
    #[arg(long, value_name = "PID", conflicts_with = "container")]
    pub pid: Option<i32>,
    /// Act in this container's network namespace: its id or a unique prefix of 12+ hex
    /// digits.
    #[arg(long, value_name = "ID")]
    pub container: Option<String>,
    /// egress (packets sent), ingress (packets received, shaped on an IFB device), or
    /// both as one fault (with --blackhole and --dst/--src: a partition).
    #[arg(long, value_name = "DIR", default_value = "egress")]
    pub direction: String,
    /// Added delay, e.g. 50ms.
    #[arg(
        long,
        value_name = "DUR",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub delay: Option<String>,
    /// Delay variation (needs --delay).
    #[arg(
        long,
        value_name = "DUR",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub jitter: Option<String>,
    /// Correlation of successive delays, percent.
    #[arg(
        long,
        value_name = "PCT",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub delay_correlation: Option<String>,
    /// Jitter distribution: uniform, normal, pareto, paretonormal.
    #[arg(long, value_name = "NAME", help_heading = "netem")]
    pub distribution: Option<String>,
    /// Random loss, percent (e.g. 1% or 0.5).
    #[arg(
        long,
        value_name = "PCT",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub loss: Option<String>,
    /// Correlation of successive losses, percent.
    #[arg(
        long,
        value_name = "PCT",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub loss_correlation: Option<String>,
    /// Gilbert-Elliott loss model instead of --loss: P,R[,1-H[,1-K]] in percent.
    #[arg(long, value_name = "P,R[,1-H[,1-K]]", help_heading = "netem")]
    pub loss_gemodel: Option<String>,
    /// Duplicate packets, percent.
    #[arg(
        long,
        value_name = "PCT",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub duplicate: Option<String>,
    /// Correlation of duplications, percent.
    #[arg(
        long,
        value_name = "PCT",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub duplicate_correlation: Option<String>,
    /// Corrupt packets (a random bit flip), percent.
    #[arg(
        long,
        value_name = "PCT",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub corrupt: Option<String>,
    /// Correlation of corruptions, percent.
    #[arg(
        long,
        value_name = "PCT",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub corrupt_correlation: Option<String>,
    /// Send this percentage of packets at once, the rest delayed (needs --delay).
    #[arg(
        long,
        value_name = "PCT",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub reorder: Option<String>,
    /// Correlation of reorderings, percent.
    #[arg(
        long,
        value_name = "PCT",
        help_heading = "netem",
        allow_hyphen_values = true
    )]
    pub reorder_correlation: Option<String>,
    /// Reorder every Nth packet (needs --reorder).
    #[arg(long, value_name = "N", help_heading = "netem")]
    pub gap: Option<u32>,
    /// Rate limit, e.g. 10mbit, 512kbit.
    #[arg(long, value_name = "RATE", help_heading = "netem")]
    pub rate: Option<String>,
    /// netem queue length in packets (default 1000).
    #[arg(long, value_name = "PACKETS", help_heading = "netem")]
    pub limit: Option<u32>,
    /// Only packets to this CIDR (repeatable; IPv4 or IPv6).
    #[arg(
        long,
        value_name = "CIDR",
        help_heading = "Traffic selection (combine with AND)"
    )]
    pub dst: Vec<String>,
    /// Only packets from this CIDR (repeatable).
    #[arg(
        long,
        value_name = "CIDR",
        help_heading = "Traffic selection (combine with AND)"
    )]
    pub src: Vec<String>,
    /// Only this destination port or range (needs --protocol).
    #[arg(
        long,
        value_name = "PORT[-PORT]",
        help_heading = "Traffic selection (combine with AND)"
    )]
    pub dport: Option<String>,
    /// Only this source port or range (needs --protocol).
    #[arg(
        long,
        value_name = "PORT[-PORT]",
        help_heading = "Traffic selection (combine with AND)"
    )]
    pub sport: Option<String>,
    /// Only tcp, udp or icmp.
    #[arg(
        long,
        value_name = "PROTO",
        help_heading = "Traffic selection (combine with AND)"
    )]
    pub protocol: Option<String>,
    /// DNS: destination port 53, UDP and TCP (not with --dport, --sport, --protocol);
    /// with --blackhole (resolution fails) or --delay (resolution is slow).
    #[arg(long, help_heading = "Traffic selection (combine with AND)")]
    pub dns: bool,
    /// Drop every selected packet (tc action gact drop: no queue) instead of netem; not
    /// with netem parameters. Needs the limit network.allow_blackhole (production:
    /// false). With --dst/--src and --direction both: a partition from those networks.
    #[arg(long)]
    pub blackhole: bool,
    /// How long the fault lasts (required), e.g. 30s, 5m.
    #[arg(long = "for", value_name = "DUR")]
    pub duration: String,
    #[command(flatten)]
    pub common: CommonInjectArgs,
}

/// Which processes: every flag given must match.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Selectors (combine with AND)")]
pub struct SelectorArgs {
    /// Exactly this process id.
    #[arg(long, value_name = "PID", allow_negative_numbers = true)]
    pub pid: Option<i32>,
    /// Exact command name (/proc/PID/comm, at most 15 bytes).
    #[arg(long, value_name = "COMM")]
    pub name: Option<String>,
    /// Regular expression searched in the command line.
    #[arg(long, value_name = "REGEX")]
    pub cmdline: Option<String>,
    /// A cgroup path (/system.slice/x.service, or /sys/fs/cgroup/...) and its descendants.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// A systemd unit, e.g. nginx.service.
    #[arg(long, value_name = "NAME.service")]
    pub unit: Option<String>,
    /// A user name or numeric uid (real uid).
    #[arg(long, value_name = "NAME|UID")]
    pub user: Option<String>,
    /// A container's processes: its id or a unique prefix of 12+ hex digits (as docker
    /// ps, crictl ps or kubectl's containerID show it).
    #[arg(long, value_name = "ID")]
    pub container: Option<String>,
}

/// How many of the matches: one of --all (default), --count, --percent.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "pick", multiple = false)]
#[command(next_help_heading = "Pick (one of; default --all)")]
pub struct PickArgs {
    /// Every match.
    #[arg(long)]
    pub all: bool,
    /// N matches chosen at random.
    #[arg(long, value_name = "N")]
    pub count: Option<u32>,
    /// P percent of the matches (rounded up, at least one), chosen at random.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub percent: Option<f64>,
}

/// Flags every inject kind shares.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonInjectArgs {
    /// Resolve the targets and check the limits, but change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A label recorded with the fault (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Bind the fault to an existing lease: if its holder stops renewing it, the agent
    /// reverts the fault.
    #[arg(long, value_name = "LEASE_ID")]
    pub lease: Option<String>,
    /// Hold a lease bound to the fault and stay running until the fault ends; Ctrl-C
    /// (or SIGTERM) reverts it, and if faultctl dies the agent reverts it within the TTL.
    #[arg(long, conflicts_with_all = ["lease", "dry_run"])]
    pub hold: bool,
    /// The held lease's TTL (renewed every third of it).
    #[arg(long, value_name = "DUR", default_value = crate::lease::DEFAULT_TTL, requires = "hold")]
    pub hold_ttl: String,
}

/// `faultctl inject kill`.
#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub selector: SelectorArgs,
    #[command(flatten)]
    pub pick: PickArgs,
    /// Signal by name (KILL, TERM, SIGTERM) or number.
    #[arg(long, default_value = "KILL", value_name = "SIGNAL")]
    pub signal: String,
    /// Kill again every DUR, re-resolving the selector each time (needs --for).
    #[arg(
        long,
        value_name = "DUR",
        requires = "duration",
        allow_hyphen_values = true
    )]
    pub every: Option<String>,
    /// How long the repeated kill runs (e.g. 5m).
    #[arg(long = "for", value_name = "DUR", allow_hyphen_values = true)]
    pub duration: Option<String>,
    #[command(flatten)]
    pub common: CommonInjectArgs,
}

/// `faultctl inject pause`.
#[derive(Debug, Clone, Args)]
pub struct PauseArgs {
    #[command(flatten)]
    pub selector: SelectorArgs,
    #[command(flatten)]
    pub pick: PickArgs,
    /// How long the processes stay stopped (e.g. 30s).
    #[arg(
        long = "for",
        value_name = "DUR",
        required = true,
        allow_hyphen_values = true
    )]
    pub duration: String,
    #[command(flatten)]
    pub common: CommonInjectArgs,
}

/// An inject as the command line asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectCall {
    pub inject: Inject,
    /// With `--hold`: the TTL of the lease faultctl holds while the fault lives.
    pub hold: Option<Period>,
}

/// One fault kind's flags: the fault they ask for, its duration and the shared flags.
trait KindFlags {
    /// The fault, built by the domain request's constructor.
    fn fault(&self) -> Result<Fault, RequestError>;
    /// `--for`.
    fn duration(&self) -> Option<&str>;
    fn common(&self) -> &CommonInjectArgs;
}

impl InjectCommand {
    /// The subcommand's name and its flags.
    fn flags(&self) -> (&'static str, &dyn KindFlags) {
        match self {
            InjectCommand::Kill(a) => ("kill", a.as_ref()),
            InjectCommand::Pause(a) => ("pause", a.as_ref()),
            InjectCommand::Net(a) => ("net", a.as_ref()),
            InjectCommand::Cpu(a) => ("cpu", a.as_ref()),
            InjectCommand::Mem(a) => ("mem", a.as_ref()),
            InjectCommand::DiskFill(a) => ("disk-fill", a.as_ref()),
            InjectCommand::IoLimit(a) => ("io-limit", a.as_ref()),
            InjectCommand::IoStress(a) => ("io-stress", a.as_ref()),
        }
    }

    /// The request; bad input is refused naming the flag.
    pub fn request(&self) -> Result<InjectCall, CtlError> {
        self.build()
            .map_err(|e| CtlError::Input(e.message(&|f| self.flag(f))))
    }

    fn build(&self) -> Result<InjectCall, RequestError> {
        let (_, flags) = self.flags();
        let c = flags.common();
        let mut inject = Inject::new(flags.fault()?);
        inject.duration = flags
            .duration()
            .map(|d| Period::field("duration", d))
            .transpose()?;
        inject.labels = Labels::from_pairs("labels", &c.labels)?;
        inject.dry_run = c.dry_run;
        inject.lease = c.lease.clone();
        let hold = match c.hold {
            true => Some(Period::field("hold_ttl", &c.hold_ttl)?),
            false => None,
        };
        Ok(InjectCall { inject, hold })
    }

    /// The flag of a request field: the long name of the argument whose id is the field.
    fn flag(&self, field: Field) -> String {
        let cli = super::Cli::command();
        cli.find_subcommand("inject")
            .and_then(|i| i.find_subcommand(self.flags().0))
            .and_then(|c| c.get_arguments().find(|a| a.get_id() == field))
            .and_then(|a| a.get_long())
            .map_or_else(|| field.to_string(), |l| format!("--{l}"))
    }
}

fn text(v: &Option<String>) -> Option<Text> {
    v.clone().map(Text)
}

impl SelectorArgs {
    fn input(&self, pick: &PickArgs) -> ProcessInput {
        ProcessInput {
            pid: self.pid,
            name: self.name.clone(),
            cmdline: self.cmdline.clone(),
            cgroup: self.cgroup.clone(),
            unit: self.unit.clone(),
            user: self.user.clone(),
            container: self.container.clone(),
            all: pick.all,
            count: pick.count,
            percent: pick.percent,
            signal: None,
            every: None,
        }
    }
}

impl KindFlags for KillArgs {
    fn fault(&self) -> Result<Fault, RequestError> {
        Ok(Fault::Kill(Kill::new(&self.input())?))
    }

    fn duration(&self) -> Option<&str> {
        self.duration.as_deref()
    }

    fn common(&self) -> &CommonInjectArgs {
        &self.common
    }
}

impl KillArgs {
    fn input(&self) -> ProcessInput {
        ProcessInput {
            signal: Some(self.signal.clone()),
            every: text(&self.every),
            ..self.selector.input(&self.pick)
        }
    }
}

impl KindFlags for PauseArgs {
    fn fault(&self) -> Result<Fault, RequestError> {
        Ok(Fault::Pause(Pause::new(&self.input())?))
    }

    fn duration(&self) -> Option<&str> {
        Some(&self.duration)
    }

    fn common(&self) -> &CommonInjectArgs {
        &self.common
    }
}

impl PauseArgs {
    fn input(&self) -> ProcessInput {
        self.selector.input(&self.pick)
    }
}

impl KindFlags for NetArgs {
    fn fault(&self) -> Result<Fault, RequestError> {
        Ok(Fault::Network(Network::new(&self.input())?))
    }

    fn duration(&self) -> Option<&str> {
        Some(&self.duration)
    }

    fn common(&self) -> &CommonInjectArgs {
        &self.common
    }
}

impl NetArgs {
    fn input(&self) -> NetworkInput {
        NetworkInput {
            iface: self.iface.clone(),
            netns: self.netns.clone(),
            pid: self.pid,
            container: self.container.clone(),
            direction: Some(self.direction.clone()),
            delay: text(&self.delay),
            jitter: text(&self.jitter),
            delay_correlation: text(&self.delay_correlation),
            distribution: self.distribution.clone(),
            loss: text(&self.loss),
            loss_correlation: text(&self.loss_correlation),
            loss_gemodel: text(&self.loss_gemodel),
            duplicate: text(&self.duplicate),
            duplicate_correlation: text(&self.duplicate_correlation),
            corrupt: text(&self.corrupt),
            corrupt_correlation: text(&self.corrupt_correlation),
            reorder: text(&self.reorder),
            reorder_correlation: text(&self.reorder_correlation),
            gap: self.gap,
            rate: text(&self.rate),
            limit: self.limit,
            dst: self.dst.clone(),
            src: self.src.clone(),
            dport: text(&self.dport),
            sport: text(&self.sport),
            protocol: self.protocol.clone(),
            blackhole: self.blackhole,
            dns: self.dns,
        }
    }
}

impl KindFlags for CpuArgs {
    fn fault(&self) -> Result<Fault, RequestError> {
        Ok(Fault::Cpu(Cpu::new(&self.input())?))
    }

    fn duration(&self) -> Option<&str> {
        Some(&self.duration)
    }

    fn common(&self) -> &CommonInjectArgs {
        &self.common
    }
}

impl CpuArgs {
    fn input(&self) -> CpuInput {
        CpuInput {
            percent: self.percent,
            cores: self.cores,
            load: self.load,
            cgroup: self.placement.cgroup.clone(),
            unit: self.placement.unit.clone(),
            pid: self.placement.pid,
            container: self.placement.container.clone(),
        }
    }
}

impl KindFlags for MemArgs {
    fn fault(&self) -> Result<Fault, RequestError> {
        Ok(Fault::Memory(Memory::new(&self.input())?))
    }

    fn duration(&self) -> Option<&str> {
        Some(&self.duration)
    }

    fn common(&self) -> &CommonInjectArgs {
        &self.common
    }
}

impl MemArgs {
    fn input(&self) -> MemoryInput {
        MemoryInput {
            size: text(&self.size),
            percent: self.percent,
            ramp: text(&self.ramp),
            cgroup: self.placement.cgroup.clone(),
            unit: self.placement.unit.clone(),
            pid: self.placement.pid,
            container: self.placement.container.clone(),
        }
    }
}

impl KindFlags for DiskFillArgs {
    fn fault(&self) -> Result<Fault, RequestError> {
        Ok(Fault::DiskFill(DiskFill::new(&DiskFillInput {
            path: Some(self.path.clone()),
            size: text(&self.size),
            percent: self.percent,
            free: text(&self.free),
            ramp: text(&self.ramp),
        })?))
    }

    fn duration(&self) -> Option<&str> {
        Some(&self.duration)
    }

    fn common(&self) -> &CommonInjectArgs {
        &self.common
    }
}

impl KindFlags for IoStressArgs {
    fn fault(&self) -> Result<Fault, RequestError> {
        Ok(Fault::IoStress(IoStress::new(&IoStressInput {
            path: Some(self.path.clone()),
            workers: self.workers,
            size: text(&self.size),
            mode: self.mode.clone(),
            read_bps: text(&self.read_bps),
            write_bps: text(&self.write_bps),
        })?))
    }

    fn duration(&self) -> Option<&str> {
        Some(&self.duration)
    }

    fn common(&self) -> &CommonInjectArgs {
        &self.common
    }
}

impl KindFlags for IoLimitArgs {
    fn fault(&self) -> Result<Fault, RequestError> {
        Ok(Fault::IoLimit(IoLimit::new(&IoLimitInput {
            cgroup: self.cgroup.clone(),
            unit: self.unit.clone(),
            pid: self.pid,
            container: self.container.clone(),
            device: self.device.clone(),
            path: self.path.clone(),
            read_bps: text(&self.read_bps),
            write_bps: text(&self.write_bps),
            read_iops: self.read_iops,
            write_iops: self.write_iops,
        })?))
    }

    fn duration(&self) -> Option<&str> {
        Some(&self.duration)
    }

    fn common(&self) -> &CommonInjectArgs {
        &self.common
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use faultline_proto::v1::{InjectRequest, KillSpec, fault_spec, pick};

    fn call(args: &[&str]) -> Result<InjectCall, CtlError> {
        let mut v = vec!["faultctl", "inject"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).expect("clap accepts it").command {
            Command::Inject(i) => i.request(),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn parse(args: &[&str]) -> Result<InjectRequest, CtlError> {
        call(args).map(|c| c.inject.to_proto())
    }

    fn err(args: &[&str]) -> String {
        parse(args).unwrap_err().to_string()
    }

    fn kill(r: &InjectRequest) -> &KillSpec {
        match r.spec.as_ref().unwrap().kind.as_ref().unwrap() {
            fault_spec::Kind::Kill(k) => k,
            other => panic!("not a kill: {other:?}"),
        }
    }

    #[test]
    fn kill_defaults() {
        let r = parse(&["kill", "--pid", "4242"]).unwrap();
        let k = kill(&r);
        assert_eq!(k.signal, "KILL");
        assert_eq!(k.every_ms, 0);
        assert_eq!(r.duration_ms, 0);
        assert!(!r.dry_run);
        assert!(r.labels.is_empty());
        assert_eq!(k.pick.as_ref().unwrap().mode, Some(pick::Mode::All(true)));
        let s = k.selector.as_ref().unwrap();
        assert_eq!(s.pid, Some(4242));
        assert_eq!(
            (s.name.as_ref(), s.cmdline.as_ref(), s.user.as_ref()),
            (None, None, None)
        );
    }

    #[test]
    fn kill_with_everything() {
        let r = parse(&[
            "kill",
            "--name",
            "nginx",
            "--cmdline",
            "worker.*",
            "--cgroup",
            "/system.slice/x",
            "--unit",
            "nginx.service",
            "--user",
            "www-data",
            "--count",
            "2",
            "--signal",
            "TERM",
            "--every",
            "30s",
            "--for",
            "5m",
            "--dry-run",
            "--label",
            "a=b",
            "--label",
            "team=x=y",
            "--lease",
            "l-7",
        ])
        .unwrap();
        let k = kill(&r);
        assert_eq!(k.signal, "TERM");
        assert_eq!(k.every_ms, 30_000);
        assert_eq!(r.duration_ms, 300_000);
        assert_eq!(r.lease_id, "l-7");
        assert!(r.dry_run);
        assert_eq!(r.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(r.labels.get("team").map(String::as_str), Some("x=y"));
        assert_eq!(k.pick.as_ref().unwrap().mode, Some(pick::Mode::Count(2)));
        let s = k.selector.as_ref().unwrap();
        assert_eq!(s.name.as_deref(), Some("nginx"));
        assert_eq!(s.cmdline.as_deref(), Some("worker.*"));
        assert_eq!(s.cgroup.as_deref(), Some("/system.slice/x"));
        assert_eq!(s.unit.as_deref(), Some("nginx.service"));
        assert_eq!(s.user.as_deref(), Some("www-data"));
        assert_eq!(s.pid, None);
    }

    #[test]
    fn pause_with_percent() {
        let r = parse(&[
            "pause",
            "--unit",
            "w.service",
            "--percent",
            "50",
            "--for",
            "1m30s",
        ])
        .unwrap();
        assert_eq!(r.duration_ms, 90_000);
        match r.spec.unwrap().kind.unwrap() {
            fault_spec::Kind::Pause(p) => {
                assert_eq!(p.pick.unwrap().mode, Some(pick::Mode::Percent(50.0)));
                assert_eq!(p.selector.unwrap().unit.as_deref(), Some("w.service"));
            }
            other => panic!("not a pause: {other:?}"),
        }
    }

    #[test]
    fn semantic_checks_are_left_to_the_agent() {
        // Over 100 %, an unknown signal, a bad regex, an empty selector: all sent as given.
        let r = parse(&[
            "kill",
            "--percent",
            "150",
            "--signal",
            "BOGUS",
            "--cmdline",
            "(",
        ])
        .unwrap();
        assert_eq!(kill(&r).signal, "BOGUS");
        assert!(parse(&["kill"]).is_ok());
    }

    #[test]
    fn duration_errors_name_the_flag() {
        let e = err(&["pause", "--pid", "1", "--for", "-5s"]);
        assert_eq!(
            e,
            "invalid --for: \"-5s\" is negative: a duration must be positive"
        );
        let e = err(&["pause", "--pid", "1", "--for", "0s"]);
        assert_eq!(
            e,
            "invalid --for: \"0s\" is zero: a duration must be at least 1ms"
        );
        let e = err(&["kill", "--pid", "1", "--every", "10", "--for", "1m"]);
        assert_eq!(
            e,
            "invalid --every: \"10\" has no unit (write e.g. 10s or 10ms)"
        );
        let e = err(&["pause", "--pid", "1", "--for", "soon"]);
        assert!(
            e.starts_with("invalid --for: \"soon\" is not a duration"),
            "{e}"
        );
    }

    #[test]
    fn labels_must_be_key_value() {
        let e = parse(&["kill", "--pid", "1", "--label", "novalue"]).unwrap_err();
        assert_eq!(e.exit_code(), crate::ExitCode::BadInput);
        assert_eq!(
            e.to_string(),
            "invalid --label \"novalue\": expected KEY=VALUE with a non-empty key"
        );
        assert!(err(&["kill", "--pid", "1", "--label", "=v"]).contains("expected KEY=VALUE"));
        assert_eq!(
            err(&["kill", "--pid", "1", "--label", "a=1", "--label", "a=2"]),
            "invalid --label \"a=2\": the key is given twice"
        );
        // An empty value is allowed.
        assert_eq!(
            parse(&["kill", "--pid", "1", "--label", "k="])
                .unwrap()
                .labels["k"],
            ""
        );
    }

    #[test]
    fn every_kinds_errors_name_its_flags() {
        let net = |extra: &[&str]| {
            let mut v = vec!["net", "--iface", "eth0", "--for", "1m"];
            v.extend_from_slice(extra);
            err(&v)
        };
        assert_eq!(
            net(&["--loss", "200%"]),
            "invalid --loss: \"200%\" is not in 0..=100%"
        );
        assert!(
            net(&["--delay-correlation", "x"]).starts_with("invalid --delay-correlation: \"x\""),
            "{}",
            net(&["--delay-correlation", "x"])
        );
        assert_eq!(
            net(&["--loss-gemodel", "1"]),
            "invalid --loss-gemodel: \"1\": write P,R[,1-H[,1-K]] in percent, e.g. 1%,10%"
        );
        assert_eq!(
            net(&["--rate", "0kbit"]),
            "invalid --rate: a rate of 0 would stop all traffic"
        );
        assert!(net(&["--delay", "soon"]).starts_with("invalid --delay: \"soon\""));
        assert_eq!(
            err(&["cpu", "--for", "1m"]),
            "give --percent, or --cores with --load"
        );
        assert_eq!(err(&["mem", "--for", "1m"]), "give --size, or --percent");
        assert_eq!(
            err(&["mem", "--size", "0MiB", "--for", "1m"]),
            "invalid --size: must be more than 0"
        );
        assert!(
            err(&["mem", "--size", "1GiB", "--ramp", "x", "--for", "1m"])
                .starts_with("invalid --ramp: ")
        );
        assert_eq!(
            err(&[
                "pause",
                "--pid",
                "1",
                "--for",
                "1m",
                "--hold",
                "--hold-ttl",
                "0s"
            ]),
            "invalid --hold-ttl: \"0s\" is zero: a duration must be at least 1ms"
        );
        let c = call(&["pause", "--pid", "1", "--for", "1m", "--hold"]).unwrap();
        assert_eq!(c.hold.map(Period::as_millis), Some(30_000));
    }

    #[test]
    fn every_kind_converts() {
        let r = parse(&[
            "net",
            "--iface",
            "eth0",
            "--pid",
            "42",
            "--delay",
            "40ms",
            "--jitter",
            "10ms",
            "--distribution",
            "normal",
            "--loss",
            "1%",
            "--rate",
            "10mbit",
            "--dst",
            "10.0.3.0/24",
            "--protocol",
            "tcp",
            "--dport",
            "5432",
            "--for",
            "1m",
        ])
        .unwrap();
        let Some(fault_spec::Kind::Network(n)) = r.spec.unwrap().kind else {
            panic!("not a network spec")
        };
        assert_eq!(
            (n.iface.as_str(), n.pid, n.direction.as_str()),
            ("eth0", 42, "egress")
        );
        let e = n.netem.unwrap();
        assert_eq!(
            (e.delay_us, e.jitter_us, e.loss_percent),
            (40_000, 10_000, 1.0)
        );
        assert_eq!(
            (e.distribution.as_str(), e.rate_bits_per_sec),
            ("normal", 10_000_000)
        );
        let s = n.selection.unwrap();
        assert_eq!(
            (s.dst, s.dport, s.protocol),
            (vec!["10.0.3.0/24".to_string()], "5432".into(), "tcp".into())
        );
        let r = parse(&[
            "cpu",
            "--cores",
            "2",
            "--load",
            "50",
            "--unit",
            "a.service",
            "--for",
            "30s",
        ])
        .unwrap();
        let Some(fault_spec::Kind::Cpu(c)) = r.spec.unwrap().kind else {
            panic!("not a cpu spec")
        };
        assert_eq!(
            (c.cores, c.load, c.placement.unwrap().unit.as_str()),
            (2, 50.0, "a.service")
        );
        let r = parse(&[
            "disk-fill",
            "--path",
            "/data",
            "--percent",
            "90",
            "--ramp",
            "10s",
            "--for",
            "1m",
        ])
        .unwrap();
        let Some(fault_spec::Kind::DiskFill(d)) = r.spec.unwrap().kind else {
            panic!("disk fill");
        };
        assert_eq!(
            (d.path.as_str(), d.percent, d.ramp_ms),
            ("/data", 90.0, 10_000)
        );
        assert_eq!((d.size_bytes, d.free_bytes), (0, 0));
        let r = parse(&[
            "io-limit",
            "--unit",
            "api.service",
            "--device",
            "/dev/vdb",
            "--write-bps",
            "4MiB",
            "--for",
            "1m",
        ])
        .unwrap();
        let Some(fault_spec::Kind::IoLimit(l)) = r.spec.unwrap().kind else {
            panic!("io limit");
        };
        assert_eq!(
            (l.device.as_str(), l.write_bps, l.read_bps),
            ("/dev/vdb", 4 << 20, 0)
        );
        assert_eq!(
            err(&[
                "io-limit",
                "--unit",
                "a.service",
                "--device",
                "/dev/vdb",
                "--for",
                "1m"
            ]),
            "give --read-bps, or --write-bps, or --read-iops, or --write-iops"
        );
        assert_eq!(
            err(&[
                "io-limit",
                "--pid",
                "1",
                "--device",
                "vdb",
                "--read-iops",
                "5",
                "--for",
                "1m"
            ]),
            "invalid --device: \"vdb\" is not an absolute path"
        );
        let r = parse(&[
            "io-stress",
            "--path",
            "/data",
            "--workers",
            "2",
            "--size",
            "8MiB",
            "--write-bps",
            "4MiB",
            "--for",
            "1m",
        ])
        .unwrap();
        let Some(fault_spec::Kind::IoStress(s)) = r.spec.unwrap().kind else {
            panic!("io stress");
        };
        assert_eq!(
            (s.path.as_str(), s.workers, s.size_bytes, s.write_bps),
            ("/data", 2, 8 << 20, 4 << 20)
        );
        assert_eq!(
            err(&["io-stress", "--path", "data", "--for", "1m"]),
            "invalid --path: \"data\" is not an absolute path"
        );
        assert_eq!(
            err(&["io-stress", "--path", "/d", "--workers", "0", "--for", "1m"]),
            "invalid --workers: give at least 1 worker"
        );
        assert_eq!(
            err(&[
                "io-stress",
                "--path",
                "/d",
                "--write-bps",
                "0MiB",
                "--for",
                "1m"
            ]),
            "invalid --write-bps: must be more than 0"
        );
        let r = parse(&["disk-fill", "--path", "/d", "--free", "1GiB", "--for", "1m"]).unwrap();
        let Some(fault_spec::Kind::DiskFill(d)) = r.spec.unwrap().kind else {
            panic!("disk fill");
        };
        assert_eq!(d.free_bytes, 1 << 30);
        assert_eq!(
            err(&[
                "disk-fill",
                "--path",
                "data",
                "--size",
                "1GiB",
                "--for",
                "1m"
            ]),
            "invalid --path: \"data\" is not an absolute path"
        );
        assert_eq!(
            err(&[
                "disk-fill",
                "--path",
                "/d",
                "--percent",
                "120",
                "--for",
                "1m"
            ]),
            "invalid --percent: 120 is not in (0, 100]"
        );
        assert!(
            err(&["disk-fill", "--path", "/d", "--size", "0MiB", "--for", "1m"])
                .starts_with("invalid --size")
        );
        let r = parse(&["mem", "--size", "512MiB", "--ramp", "20s", "--for", "1m"]).unwrap();
        let Some(fault_spec::Kind::Memory(m)) = r.spec.unwrap().kind else {
            panic!("not a memory spec")
        };
        assert_eq!(
            (m.size_bytes, m.ramp_ms, r.duration_ms),
            (512 << 20, 20_000, 60_000)
        );
    }
}
