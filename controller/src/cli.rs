//! The command line of `faultctl` (clap derive). [`crate::run`] executes a parsed [`Cli`].

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::{DEFAULT_AGENT, TlsFiles};
use crate::exit_codes_text;

/// `faultctl`: drive a faultline agent (`faultd`).
#[derive(Debug, Parser)]
#[command(
    name = "faultctl",
    version,
    about = "Drive faultd, the faultline fault-injection agent, from the command line",
    after_help = MAIN_AFTER_HELP,
)]
pub struct Cli {
    /// Agent address: unix:///path/to/faultd.sock or https://host:port (mutual TLS)
    /// [default: `agent` in ~/.config/faultline/faultctl.toml, else unix:///run/faultline/faultd.sock].
    #[arg(long, global = true, env = "FAULTLINE_AGENT", value_name = "URI")]
    pub agent: Option<String>,
    /// For https: the CA certificate (PEM) that signed the agent's certificate.
    #[arg(long, global = true, env = "FAULTLINE_CA", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// For https: this client's certificate (PEM); its CN or SAN is the identity the
    /// agent maps to a role.
    #[arg(long, global = true, env = "FAULTLINE_CERT", value_name = "FILE")]
    pub cert: Option<std::path::PathBuf>,
    /// For https: this client's private key (PEM).
    #[arg(long, global = true, env = "FAULTLINE_KEY", value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,
    /// Output format: table for people, json for scripts.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Inventory file (TOML, or YAML for .yaml/.yml) naming the fleet's agents: the
    /// command then runs on every selected agent at once, one result row per node.
    #[arg(long, global = true, env = "FAULTLINE_INVENTORY", value_name = "FILE")]
    pub inventory: Option<std::path::PathBuf>,
    /// Which agents of the inventory: labels, e.g. role=db,zone=a (also key!=v, key=a|b).
    #[arg(long, global = true, value_name = "LABELS", requires = "inventory")]
    pub select: Option<String>,
    /// Fleet blast radius: touch at most N of the selected agents, picked at random.
    #[arg(long, global = true, value_name = "N", conflicts_with = "max_percent")]
    pub max_nodes: Option<usize>,
    /// Fleet blast radius: touch at most P percent of the selected agents (at least one).
    #[arg(long, global = true, value_name = "P")]
    pub max_percent: Option<f64>,
    /// Seed of the random pick, to repeat one (printed with every pick).
    #[arg(long, global = true, value_name = "SEED")]
    pub seed: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

/// `~/.config/faultline/faultctl.toml` (or under `$XDG_CONFIG_HOME`): defaults for
/// `agent`, `ca`, `cert` and `key`; flags and environment variables win.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtlConfig {
    pub agent: Option<String>,
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

impl CtlConfig {
    /// Where the config file is looked for.
    pub fn default_path() -> Option<std::path::PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".config"))
            })?;
        Some(base.join("faultline/faultctl.toml"))
    }

    /// Reads the file at `path` if it exists.
    pub fn load(path: &std::path::Path) -> Result<CtlConfig, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => toml::from_str(&t).map_err(|e| format!("{}: {}", path.display(), e.message())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CtlConfig::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

impl Cli {
    /// The agent address and TLS files: flags and environment first, then `file`.
    pub fn endpoint(&self, file: &CtlConfig) -> (String, TlsFiles) {
        (
            self.agent
                .clone()
                .or_else(|| file.agent.clone())
                .unwrap_or_else(|| DEFAULT_AGENT.to_string()),
            TlsFiles {
                ca: self.ca.clone().or_else(|| file.ca.clone()),
                cert: self.cert.clone().or_else(|| file.cert.clone()),
                key: self.key.clone().or_else(|| file.key.clone()),
                server_name: None,
            },
        )
    }
}

const MAIN_AFTER_HELP: &str = concat!(
    "Examples:\n",
    "  faultctl status\n",
    "  faultctl inject kill --name nginx --count 1 --dry-run\n",
    "  faultctl inject pause --unit worker.service --for 30s --label game-day=gd-42\n",
    "  faultctl list --all -o json\n",
    "  faultctl abort --reason \"game day over\"\n",
    "  faultctl --inventory fleet.toml --select role=db status\n",
    "  faultctl --inventory fleet.toml --select role=app --max-nodes 1 inject kill --name worker\n",
    "  faultctl run --dry-run examples/kill-worker.yaml\n",
    "  faultctl --agent https://node1:7443 --ca ca.pem --cert alice.pem --key alice.key status\n",
    "\n",
    "Remote agents: https:// with mutual TLS; --ca/--cert/--key, FAULTLINE_CA/_CERT/_KEY,\n",
    "or agent/ca/cert/key in ~/.config/faultline/faultctl.toml (flags win).\n",
    "\n",
    "Selectors (inject kill|pause): --pid, --name, --cmdline, --cgroup, --unit, --user.\n",
    "Every selector given must match (they combine with AND); at least one is required.\n",
    "pid 1, kernel threads, faultd and its ancestors, and the processes and units the\n",
    "agent's limits file protects are never hit.\n",
    "\n",
    exit_codes_text!()
);

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned tables and sentences.
    Table,
    /// One JSON document per command (`watch`: one object per line).
    Json,
}

/// faultctl's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// What the agent is, what this host can do, and the active faults.
    #[command(after_help = "Example:\n  faultctl status\n  faultctl status -o json | jq .kinds")]
    Status,
    /// The agent's effective blast-radius limits (read-only).
    #[command(after_help = "Example:\n  faultctl limits")]
    Limits,
    /// Active faults (with --all, also recently ended ones).
    #[command(after_help = "Examples:\n  faultctl list\n  faultctl list --all -o json")]
    List {
        /// Include recently ended faults.
        #[arg(long)]
        all: bool,
    },
    /// One fault in full.
    #[command(after_help = "Example:\n  faultctl get f-3k9x2a")]
    Get {
        /// The fault id (from `inject` or `list`).
        id: String,
    },
    /// Revert one fault now.
    #[command(after_help = "Example:\n  faultctl revert f-3k9x2a --reason \"seen enough\"")]
    Revert {
        /// The fault id.
        id: String,
        /// Why (recorded with the fault).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revert every active fault now, and print what happened to each.
    #[command(after_help = "Example:\n  faultctl abort --reason \"customer impact\"")]
    Abort {
        /// Why (recorded with each fault).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print lifecycle events as they happen, until Ctrl-C.
    #[command(
        after_help = "Examples:\n  faultctl watch --replay\n  faultctl watch -o json | jq -c 'select(.type == \"refused\")'"
    )]
    Watch {
        /// Start with one `injected` event per fault already active.
        #[arg(long)]
        replay: bool,
        /// Hold a lease while watching (its id is printed first): bind faults to it with
        /// `inject --lease ID`, and they are reverted if this watch dies.
        #[arg(long)]
        hold: bool,
        /// The held lease's TTL.
        #[arg(long, value_name = "DUR", default_value = crate::lease::DEFAULT_TTL, requires = "hold")]
        ttl: String,
    },
    /// Open, renew or close a lease (a dead-man switch for faults bound to it).
    #[command(
        subcommand,
        after_help = "Examples:\n  faultctl lease open --ttl 30s\n  faultctl inject pause --pid 4242 --for 5m --lease l-1a2b3c4d\n  faultctl lease renew l-1a2b3c4d\n  faultctl lease close l-1a2b3c4d --revert"
    )]
    Lease(LeaseCommand),
    /// Inject a fault.
    #[command(
        subcommand,
        after_help = "Examples:\n  faultctl inject kill --pid 4242 --signal TERM\n  faultctl inject pause --name worker --count 1 --for 30s --dry-run\n\nSee faultctl inject kill --help and faultctl inject pause --help for the selectors."
    )]
    Inject(InjectCommand),
    /// Run a game-day scenario: probes, steps, aborts, leases, and a report.
    #[command(after_help = "\
Examples:
  faultctl run --dry-run examples/kill-worker.yaml
  faultctl --inventory fleet.toml run examples/db-delay.yaml --sign-key drill.key
  faultctl run drill.yaml --report-dir reports/ -o json

The scenario format is described in docs/faultctl.md. Ctrl-C aborts every fault the run
made and still writes the report. If faultctl dies, the agents revert on their own when
its leases lapse (lease_ttl in the scenario).")]
    Run(RunArgs),
    /// Make an ed25519 key pair for signing reports (FILE and FILE.pub).
    #[command(after_help = "Example:\n  faultctl keygen drill.key")]
    Keygen {
        /// Where to write the secret key (mode 0600); the public key goes to FILE.pub.
        file: std::path::PathBuf,
        /// Overwrite an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Make an inventory (for --inventory) of the agents a Kubernetes cluster runs.
    #[command(
        subcommand,
        after_help = "Example:\n  { kubectl get pods -n faultline -l app.kubernetes.io/name=faultd -o json; kubectl get nodes -o json; } \\\n    | faultctl --ca ca.pem --cert gameday.pem --key gameday.key inventory from-kubectl > fleet.toml"
    )]
    Inventory(InventoryCommand),
    /// Work with drill reports.
    #[command(
        subcommand,
        after_help = "Example:\n  faultctl report verify reports/db-delay-r1a2b3.json --public-key drill.key.pub"
    )]
    Report(ReportCommand),
}

/// `faultctl run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The scenario (YAML).
    pub file: std::path::PathBuf,
    /// Validate every step against each agent's limits (dry-run Inject); touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where to write the report (NAME-RUNID.json and .md).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub report_dir: std::path::PathBuf,
    /// Sign the report with this ed25519 key (from faultctl keygen): writes REPORT.sig.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<std::path::PathBuf>,
}

/// `faultctl inventory ...`.
#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Read `kubectl get pods -o json` of faultd's DaemonSet (and `kubectl get nodes -o
    /// json`, for labels) on stdin; print an inventory: one agent per node, at
    /// https://NODE-IP:GRPC-PORT, labelled with its node's labels.
    #[command(after_help = "\
Examples:
  { kubectl get pods -n faultline -l app.kubernetes.io/name=faultd -o json
    kubectl get nodes -o json; } \\
    | faultctl --ca ca.pem --cert gameday.pem --key gameday.key inventory from-kubectl > fleet.toml
  faultctl --inventory fleet.toml --select topology.kubernetes.io/zone=eu-west-1a status

Pods that are not running and ready are left out (named on stderr). --ca, --cert and
--key (made absolute) and the name of the agents' shared certificate go under
[defaults]. docs/kubernetes.md has the whole set-up.")]
    FromKubectl(FromKubectlArgs),
}

/// `faultctl inventory from-kubectl`.
#[derive(Debug, Clone, Args)]
pub struct FromKubectlArgs {
    /// The agents' gRPC port, when the pods name no container port "grpc".
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// The name the agents' shared certificate carries (checked instead of the node IP)
    /// [default: faultd.NAMESPACE.svc].
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Keep only pods with this label [default: app.kubernetes.io/name=faultd].
    #[arg(long, value_name = "KEY=VALUE")]
    pub pod_label: Option<String>,
}

/// `faultctl report ...`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Check a report's signature (REPORT.sig): exit 0 if it is intact.
    #[command(after_help = "Example:\n  faultctl report verify r.json --public-key drill.key.pub")]
    Verify {
        /// The report file (JSON or Markdown) that was signed.
        report: std::path::PathBuf,
        /// The signature file (default REPORT.sig).
        #[arg(long, value_name = "FILE")]
        sig: Option<std::path::PathBuf>,
        /// The public key to trust (FILE.pub from keygen). Without it, the key in the
        /// signature file is used, which proves the report is intact, not who signed it.
        #[arg(long, value_name = "FILE")]
        public_key: Option<std::path::PathBuf>,
    },
}

/// `faultctl lease ...`.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Open a lease; prints its id. Renew it within the TTL or its faults are reverted.
    #[command(
        after_help = "Example:\n  id=$(faultctl lease open --ttl 30s)\n  faultctl inject pause --unit batch.service --for 5m --lease $id\n  faultctl lease renew $id    # within every 30 s, or the pause is reverted"
    )]
    Open {
        /// How long the lease lives without a renewal (1s up to the limits' max_lease_ttl).
        #[arg(long, value_name = "DUR", default_value = crate::lease::DEFAULT_TTL)]
        ttl: String,
    },
    /// Renew a lease once (pushes its expiry one TTL into the future).
    #[command(after_help = "Example:\n  faultctl lease renew l-1a2b3c4d")]
    Renew {
        /// The lease id (from `lease open`).
        id: String,
    },
    /// Release a lease; its faults run on to their own end unless --revert.
    #[command(after_help = "Example:\n  faultctl lease close l-1a2b3c4d --revert")]
    Close {
        /// The lease id.
        id: String,
        /// Revert the faults bound to it first.
        #[arg(long)]
        revert: bool,
    },
}

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

A --cgroup or --unit selector freezes the whole cgroup (and thaws it on revert);
otherwise each process gets SIGSTOP, and SIGCONT when the fault ends.

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
  faultctl inject net --iface eth0 --direction ingress --delay 30ms --for 1m
  faultctl inject net --iface eth0 --rate 10mbit --for 10m --dry-run

Without --dst/--src/--dport/--sport/--protocol the whole interface is affected; with
them only matching packets are, and all other traffic is untouched. Any combination of
netem parameters fits in one fault. An interface whose root qdisc is the operator's
own (htb, tbf, fq, cake...) is refused and left alone. One network fault at a time per
interface and direction.

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

The workers run in a faultline-owned cgroup whose cpu.max (v2) or cfs quota (v1) is
exactly the requested share, so they can never take more. Placed with --cgroup, --unit
or --pid, they compete with that workload inside its cgroup, under its limits.

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

The pages are touched and stay resident. The cgroup's memory cap sits just above the
size, so a runaway is OOM-killed inside it and the node carries on; the fault is then
reported failed. A fault that would leave the node with less than max(10% of RAM,
512 MiB) available is refused before anything starts.

Exit codes: 0 ok, 2 bad input, 3 refused by policy, 4 target not found,
5 agent unreachable, 6 host cannot do it, 1 other."
    )]
    Mem(Box<MemArgs>),
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
    pub for_: String,
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
    pub for_: String,
    #[command(flatten)]
    pub common: CommonInjectArgs,
}

/// `faultctl inject net`.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// The interface, e.g. eth0.
    #[arg(long, value_name = "NAME")]
    pub iface: String,
    /// Act in another network namespace: a name under /run/netns, or a path.
    #[arg(long, value_name = "NAME|PATH", conflicts_with = "pid")]
    pub netns: Option<String>,
    /// Act in the network namespace of this process (a container's).
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,
    /// egress (packets sent) or ingress (packets received, shaped on an IFB device).
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
    /// How long the fault lasts (required), e.g. 30s, 5m.
    #[arg(long = "for", value_name = "DUR")]
    pub for_: String,
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
        requires = "for_",
        allow_hyphen_values = true
    )]
    pub every: Option<String>,
    /// How long the repeated kill runs (e.g. 5m).
    #[arg(
        long = "for",
        id = "for_",
        value_name = "DUR",
        allow_hyphen_values = true
    )]
    pub for_: Option<String>,
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
        id = "for_",
        value_name = "DUR",
        required = true,
        allow_hyphen_values = true
    )]
    pub for_: String,
    #[command(flatten)]
    pub common: CommonInjectArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_help_has_an_example() {
        let mut cmd = Cli::command();
        cmd.build();
        fn walk(c: &clap::Command, path: String) {
            let name = format!("{path} {}", c.get_name());
            let help = c
                .get_after_help()
                .map(|s| s.to_string())
                .unwrap_or_default();
            assert!(help.contains("faultctl "), "{name}: no example in --help");
            for s in c.get_subcommands() {
                if s.get_name() != "help" {
                    walk(s, name.clone());
                }
            }
        }
        walk(&cmd, String::new());
    }

    #[test]
    fn pick_flags_are_exclusive_and_for_is_required_for_pause() {
        assert!(
            Cli::try_parse_from([
                "faultctl", "inject", "kill", "--pid", "1", "--all", "--count", "2"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["faultctl", "inject", "pause", "--pid", "1"]).is_err());
        assert!(
            Cli::try_parse_from(["faultctl", "inject", "kill", "--pid", "1", "--every", "5s"])
                .is_err()
        );
        let cli =
            Cli::try_parse_from(["faultctl", "inject", "pause", "--pid", "1", "--for", "-5s"])
                .unwrap();
        assert!(
            matches!(cli.command, Command::Inject(InjectCommand::Pause(ref p)) if p.for_ == "-5s")
        );
    }
}
