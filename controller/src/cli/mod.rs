//! The command line of `faultctl`: the edge where clap lives (and nowhere else but
//! `main.rs`). It parses flags into the controller's own types ([`crate::request`],
//! [`crate::op::Op`], [`crate::fleet::Selection`], [`crate::scenario::RunOptions`]) and
//! [`run`] executes a parsed [`Cli`].
//!
//! - this file: the global flags and the subcommands;
//! - [`inject`]: each fault kind's flags, and their conversion to the domain request;
//! - [`run`]: what each command does, and its output.

pub mod inject;
mod run;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use inject::{
    CommonInjectArgs, CpuArgs, InjectCall, InjectCommand, KillArgs, MemArgs, NetArgs, PauseArgs,
    PickArgs, PlacementArgs, SelectorArgs,
};
pub use run::run;

use crate::client::{DEFAULT_AGENT, TlsFiles};
use crate::config::CtlConfig;
use crate::exit_codes_text;
use crate::render::Format;

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
    /// With --inventory: how many agents are spoken to at the same time (1-4096).
    #[arg(long, global = true, env = "FAULTLINE_CONCURRENCY", value_name = "N", default_value_t = crate::fanout::FANOUT)]
    pub concurrency: usize,
    /// With --inventory: the most one node may take (connecting and its call); a node
    /// past it is reported as unreachable, the others go on.
    #[arg(long, global = true, value_name = "DUR", default_value = crate::fleet::NODE_TIMEOUT)]
    pub node_timeout: String,
    /// With --inventory: how many more times a node's connection is tried when it fails
    /// (nothing was sent, so it is safe for every command).
    #[arg(long, global = true, value_name = "N", default_value_t = crate::fleet::RETRIES)]
    pub retries: u32,
    #[command(subcommand)]
    pub command: Command,
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
    "  faultctl --inventory fleet.toml --concurrency 256 --node-timeout 5s -o json status\n",
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
    /// Markdown (`report summary` only).
    Md,
    /// A self-contained HTML page (`report summary` only).
    Html,
}

impl From<Output> for Format {
    fn from(o: Output) -> Format {
        match o {
            Output::Table | Output::Md | Output::Html => Format::Table,
            Output::Json => Format::Json,
        }
    }
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
  faultctl --inventory fleet.toml run examples/db-delay.yaml --sign-key ~/.ssh/id_ed25519
  faultctl run drill.yaml --sign-agent --sign-key ~/.ssh/id_ed25519.pub
  faultctl run drill.yaml --report-dir reports/ -o json
  faultctl run drill.yaml --report-format html --sign-key drill.key

The scenario format is described in docs/faultctl.md. A probe may carry SLO abort
conditions over a sliding window (abort: {error_rate: 0.5%, p99: 150ms, window: 30s});
prometheus probes check a PromQL query's value (prometheus: {url, query, max, min}).
Ctrl-C aborts every fault the run made and still writes the report. If faultctl dies,
the agents revert on their own when its leases lapse (lease_ttl in the scenario).")]
    Run(RunArgs),
    /// Make an OpenSSH ed25519 key for signing reports (FILE and FILE.pub).
    #[command(after_help = "\
Examples:
  faultctl keygen drill.key
  faultctl keygen ~/.ssh/faultline_drill --comment alice@example.com

The key is the one `ssh-keygen -t ed25519 -N ''` makes: any OpenSSH key (in a file or in
ssh-agent) signs reports as well. faultctl prints the allowed_signers line that trusts it.")]
    Keygen {
        /// Where to write the private key (mode 0600, unencrypted); the public key goes to
        /// FILE.pub.
        file: std::path::PathBuf,
        /// The key's comment, recorded in reports as the signer's identity [default:
        /// user@host].
        #[arg(long, short = 'C', value_name = "TEXT")]
        comment: Option<String>,
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
        after_help = "Examples:\n  faultctl report verify reports/db-delay-r1a2b3.json --allowed-signers allowed_signers\n  faultctl report summary /var/lib/faultline/reports --since 30d -o html > chaos.html"
    )]
    Report(ReportCommand),
    /// Freeze chaos on this host: every `faultctl run` (and scheduled drill) is skipped,
    /// recorded as a skipped report, until `faultctl thaw` or --until.
    #[command(after_help = "\
Examples:
  sudo faultctl freeze --reason \"release week\" --until 2026-12-24T08:00:00Z
  sudo faultctl freeze --reason \"incident INC-4711\" --until 4h
  faultctl freeze --show
  sudo faultctl thaw

The freeze is one file, /etc/faultline/freeze (FAULTLINE_FREEZE_FILE names another):
only root may set or lift it, everyone's faultctl reads it. A run it stops touches no
node, prints the reason and who froze it, writes a report with outcome \"skipped\" and
exits 7. It stops faultctl on this host; it is not enforced by the agents.")]
    Freeze(FreezeArgs),
    /// Lift the chaos freeze (`faultctl freeze`).
    #[command(after_help = "Example:\n  sudo faultctl thaw")]
    Thaw,
    /// Scheduled drills: systemd timers that run a scenario on a calendar.
    #[command(
        subcommand,
        after_help = "\
Examples:
  sudo faultctl schedule add latency-nightly drills/latency.yaml --on-calendar \"*-*-* 02:00:00 UTC\" \\
      --randomized-delay 10m --sign-key /etc/faultline/drill.key
  sudo faultctl schedule add cpu-tuesday drills/cpu.yaml --on-calendar \"Tue *-*-* 10:00 UTC\"
  faultctl schedule list
  sudo faultctl schedule run latency-nightly
  sudo faultctl schedule remove latency-nightly

A drill NAME is the timer faultline-drill@NAME.timer (Persistent: a run missed while the
host was off happens at boot) and the service faultline-drill@NAME.service, which runs
the scenario copied to /etc/faultline/drills/NAME/ with a lease on every node; reports
go to /var/lib/faultline/reports/NAME/. A chaos freeze (faultctl freeze) turns each run
into a recorded skip. docs/faultctl.md \"Scheduled drills\" has the details."
    )]
    Schedule(ScheduleCommand),
}

/// `faultctl schedule ...`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Install and start a drill's timer: check everything first, copy the scenario and
    /// its inventory to /etc/faultline/drills/NAME/, write the timer's calendar.
    #[command(after_help = "\
Examples:
  sudo faultctl schedule add latency-nightly drills/latency.yaml --on-calendar \"*-*-* 02:00:00 UTC\"
  sudo faultctl schedule add mem-thursday drills/mem.yaml --on-calendar \"Thu *-*-* 14:00 UTC\" \\
      --randomized-delay 30m --report-dir /srv/chaos/reports --sign-key /etc/faultline/drill.key

--on-calendar is systemd's (systemd.time(7)): check one with `systemd-analyze calendar SPEC`.")]
    Add {
        /// The drill's name: letters, digits, - _ . (it becomes faultline-drill@NAME).
        name: String,
        /// The scenario (YAML), checked and copied.
        file: std::path::PathBuf,
        /// When to run: a systemd calendar spec (daily, "*-*-* 02:00:00 UTC", "Tue 10:00").
        #[arg(long, value_name = "SPEC")]
        on_calendar: String,
        /// Start each run up to this much later, at random (RandomizedDelaySec): 10m, 1h.
        #[arg(long, value_name = "DUR")]
        randomized_delay: Option<String>,
        /// Where the reports go [default: /var/lib/faultline/reports/NAME].
        #[arg(long, value_name = "DIR")]
        report_dir: Option<std::path::PathBuf>,
        /// Sign every report with this OpenSSH private key (readable by root).
        #[arg(long, value_name = "FILE")]
        sign_key: Option<std::path::PathBuf>,
    },
    /// Every drill: calendar, next run (as systemd computes it), last result.
    #[command(after_help = "Examples:\n  faultctl schedule list\n  faultctl schedule list -o json")]
    List,
    /// Stop and remove a drill's timer and its copy of the scenario (reports stay).
    #[command(after_help = "Example:\n  sudo faultctl schedule remove latency-nightly")]
    Remove {
        /// The drill's name.
        name: String,
    },
    /// Run a drill now (systemctl start faultline-drill@NAME.service; waits for the end).
    #[command(after_help = "Example:\n  sudo faultctl schedule run latency-nightly")]
    Run {
        /// The drill's name.
        name: String,
    },
    /// The service's ExecStart: `faultctl run` of the drill's copy, with its settings.
    #[command(
        hide = true,
        after_help = "Example:\n  faultctl schedule exec latency-nightly"
    )]
    Exec {
        /// The drill's name.
        name: String,
    },
}

/// `faultctl freeze`.
#[derive(Debug, Clone, Args)]
pub struct FreezeArgs {
    /// Why chaos is frozen: printed to everyone whose run it stops, and recorded in the
    /// skipped reports.
    #[arg(long, value_name = "TEXT", required_unless_present = "show")]
    pub reason: Option<String>,
    /// When the freeze ends by itself: a time (2026-12-24T08:00:00Z; without a zone,
    /// UTC) or a duration from now (4h, 3d) [default: at `faultctl thaw`].
    #[arg(long, value_name = "TIME", conflicts_with = "show")]
    pub until: Option<String>,
    /// Print the freeze in effect (if any) and change nothing.
    #[arg(long, conflicts_with = "reason")]
    pub show: bool,
}

/// `faultctl run`.
#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("signing").args(["sign_key", "sign_agent"]).multiple(true))]
pub struct RunArgs {
    /// The scenario (YAML).
    pub file: std::path::PathBuf,
    /// Validate every step against each agent's limits (dry-run Inject); touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where to write the report (NAME-RUNID.json, .md and .html).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub report_dir: std::path::PathBuf,
    /// Which report files to write, comma-separated: json (the record), md, html (a
    /// self-contained page with a chart per probe).
    #[arg(
        long,
        value_name = "FORMATS",
        value_delimiter = ',',
        default_value = "json,md,html"
    )]
    pub report_format: Vec<ReportFormat>,
    /// Sign every report file (an SSH signature, FILE.sig) with this OpenSSH private key
    /// (ed25519, ECDSA or RSA; from ssh-keygen or faultctl keygen). With --sign-agent:
    /// the public key (FILE.pub) of the ssh-agent key to sign with.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<std::path::PathBuf>,
    /// Sign through ssh-agent (SSH_AUTH_SOCK): for passphrase-protected keys and keys
    /// on hardware. Without --sign-key, the agent's only key.
    #[arg(long)]
    pub sign_agent: bool,
    /// The signer's identity recorded in the report [default: the key's comment].
    #[arg(long, value_name = "WHO", requires = "signing")]
    pub sign_identity: Option<String>,
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

/// A report file format (`--report-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Json,
    Md,
    Html,
}

impl ReportFormat {
    /// The set of files to write.
    pub fn files(list: &[ReportFormat]) -> crate::scenario::FileFormats {
        crate::scenario::FileFormats {
            json: list.contains(&ReportFormat::Json),
            markdown: list.contains(&ReportFormat::Md),
            html: list.contains(&ReportFormat::Html),
        }
    }
}

/// `faultctl report ...`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Sum up many reports per scenario: runs, completed/failed/aborted/skipped, success
    /// rate, recovery p50/p95/mean, issues found, last and next run, signatures.
    #[command(after_help = "\
Examples:
  faultctl report summary /var/lib/faultline/reports
  faultctl report summary reports/ --since 7d -o md
  faultctl report summary /var/lib/faultline/reports --public-key drill.key.pub -o html > chaos.html
  faultctl report summary reports/ -o json | jq '.scenarios[] | {scenario, success_rate_percent}'

Reads every faultline report (*.json) under each DIR, recursively. success rate:
completed / (completed + failed + aborted); skipped runs (a chaos freeze) do not count.
recovery: each step's measured recovery and each abort's recovery, p50/p95 by nearest
rank. Signatures: without --public-key/--allowed-signers each REPORT.sig is checked
against its own key (intact or not); with one, against that trust. The next run comes
from this host's faultline-drill@ timers (faultctl schedule).")]
    Summary {
        /// Directories of reports (e.g. /var/lib/faultline/reports, or a run's --report-dir).
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<std::path::PathBuf>,
        /// Only reports of runs started within this long before now (30d, 7d, 12h)
        /// [default: all].
        #[arg(long, value_name = "DUR")]
        since: Option<String>,
        /// Check signatures against exactly this public key.
        #[arg(long, value_name = "FILE", conflicts_with = "allowed_signers")]
        public_key: Option<std::path::PathBuf>,
        /// Check signatures against a git-style allowed_signers file.
        #[arg(long, value_name = "FILE")]
        allowed_signers: Option<std::path::PathBuf>,
    },
    /// Check a report's signature (REPORT.sig) and say who signed it: exit 0 if it holds.
    #[command(after_help = "\
Examples:
  faultctl report verify r.json --allowed-signers allowed_signers
  faultctl report verify r.json --allowed-signers allowed_signers --identity alice@example.com
  ssh-keygen -Y verify -f allowed_signers -I alice@example.com -n faultline-report@faultline -s r.json.sig < r.json

allowed_signers is git's and ssh-keygen's format, one trusted key a line:
  alice@example.com namespaces=\"faultline-report@faultline\" ssh-ed25519 AAAAC3Nza...

Exit 0: the signature holds and the file trusts the key; 1: it does not; 2: bad input
(a malformed allowed_signers line is named with its file and line).")]
    Verify {
        /// The report file (JSON or Markdown) that was signed.
        report: std::path::PathBuf,
        /// The signature file [default: REPORT.sig].
        #[arg(long, value_name = "FILE")]
        sig: Option<std::path::PathBuf>,
        /// Who may sign: a git-style allowed_signers file (ssh-keygen(1), ALLOWED SIGNERS).
        #[arg(
            long,
            value_name = "FILE",
            env = "FAULTLINE_ALLOWED_SIGNERS",
            conflicts_with = "public_key"
        )]
        allowed_signers: Option<std::path::PathBuf>,
        /// The identity the signer must have in allowed_signers (ssh-keygen -Y verify -I)
        /// [default: any the file gives the key].
        #[arg(long, value_name = "WHO", requires = "allowed_signers")]
        identity: Option<String>,
        /// Trust exactly this public key (an OpenSSH .pub, or an old
        /// faultline-ed25519-public file). With neither this nor --allowed-signers, the
        /// key in the signature is used: that proves the report intact, not who signed it.
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
            matches!(cli.command, Command::Inject(InjectCommand::Pause(ref p)) if p.duration == "-5s")
        );
    }
}
