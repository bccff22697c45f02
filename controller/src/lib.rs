//! faultline-controller: the library behind `faultctl`. Dependencies run one way, the
//! command line at the edge:
//!
//! ```text
//! cli (clap) ─┬─▶ scenario ─┬─▶ fanout, probe, inventory ─▶ client
//!             ├─▶ fleet ────┤
//!             └─▶ op ───────┴─▶ lease, client, request ─▶ faultline.v1
//!                               (request alone turns a fault into faultline.v1)
//! render: pure, answers to text; JSON is the proto's serde mapping
//! ```
//!
//! - [`request`]: the domain request, typed and checked; the CLI and scenario documents
//!   both produce it, and only it converts to `faultline.v1`.
//! - [`op`]: one command on one agent ([`op::Op`]) and its typed [`answer::Answer`].
//! - [`fleet`]: an op on every selected node of an inventory, one typed result per node.
//! - [`scenario`]: game-day documents, runs, dry runs, cleanup and reports.
//! - [`render`]: answers as tables and one-line summaries.
//! - [`client`], [`inventory`], [`lease`], [`probe`], [`sign`], [`config`]: transports,
//!   the fleet file, leases, steady-state probes, report signatures, faultctl's settings.
//! - [`error::CtlError`] and [`error::exit_code_for`]: the one mapping from failures to
//!   exit codes.
//! - [`cli`]: the command line (the only module that knows clap); [`run`] executes a
//!   parsed [`Cli`], writing to any `Write` (the binary passes stdout; tests a buffer).

pub mod answer;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod fanout;
pub mod fleet;
pub mod freeze;
pub mod inventory;
pub mod kubectl;
pub mod lease;
pub mod op;
pub mod probe;
pub mod render;
pub mod request;
pub mod scenario;
pub mod schedule;
pub mod sign;
pub mod summary;

pub use cli::{Cli, Command, InjectCommand, LeaseCommand, Output, run};
pub use client::{ConnectError, connect};
pub use error::{CtlError, ExitCode, exit_code_for};
