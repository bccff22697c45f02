//! systemd integration (`sd_notify(3)`): readiness, watchdog keep-alives, stopping.
//!
//! Under `Type=notify` systemd hands the agent a datagram socket in `$NOTIFY_SOCKET`;
//! outside systemd (no such variable) every function here does nothing.
//!
//! - [`ready`] sends `READY=1` once the socket listens and crash recovery is done, and,
//!   when the unit sets `WatchdogSec=` (systemd passes `$WATCHDOG_USEC`), starts a task
//!   that sends `WATCHDOG=1` every half period, but only after a cheap call into the
//!   engine (it takes the registry lock) came back: a deadlocked engine, a wedged runtime
//!   or a stopped process (SIGSTOP) stops the pings, and systemd kills and restarts the
//!   agent (`Restart=on-failure`), whose crash recovery then reverts what it left.
//! - [`stopping`] sends `STOPPING=1` when the agent starts to revert everything and exit.
//!
//! Equivalent shell: `systemd-notify --ready`, `systemd-notify WATCHDOG=1`,
//! `systemd-notify --stopping`.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;

use crate::engine::Engine;

/// Sends `READY=1` (with a `STATUS=` line) and starts the watchdog task if systemd asked
/// for one. Returns the task, which runs until the runtime stops.
pub fn ready(engine: &Engine) -> Option<JoinHandle<()>> {
    let status = format!("STATUS=serving; {} active faults", engine.list(false).len());
    send(
        &[NotifyState::Ready, NotifyState::Custom(&status)],
        "READY=1",
    );
    let period = sd_notify::watchdog_enabled()?;
    Some(spawn_watchdog(engine.clone(), period))
}

/// Sends `STOPPING=1`: the agent is reverting every fault and will exit.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

/// The keep-alive interval for a watchdog period: half of it, as `sd_watchdog_enabled(3)`
/// recommends, and never zero.
pub fn ping_interval(period: Duration) -> Duration {
    (period / 2).max(Duration::from_millis(1))
}

fn spawn_watchdog(engine: Engine, period: Duration) -> JoinHandle<()> {
    let every = ping_interval(period);
    tracing::info!(
        watchdog_ms = period.as_millis() as u64,
        ping_ms = every.as_millis() as u64,
        "systemd watchdog enabled"
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // The liveness probe: the engine's registry lock must be free within one
            // interval. Run it off the runtime so a deadlock blocks a blocking-pool
            // thread, not a worker, and the miss is logged.
            let e = engine.clone();
            let probe = tokio::task::spawn_blocking(move || e.list(false).len());
            match tokio::time::timeout(every, probe).await {
                Ok(Ok(_)) => send(&[NotifyState::Watchdog], "WATCHDOG=1"),
                Ok(Err(err)) => {
                    tracing::error!(error = %err, "watchdog probe panicked; not pinging systemd")
                }
                Err(_) => tracing::error!(
                    waited_ms = every.as_millis() as u64,
                    "engine did not answer within the watchdog interval; not pinging systemd (it will restart faultd)"
                ),
            }
        }
    })
}

fn send(state: &[NotifyState], what: &str) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(message = what, error = %e, "cannot notify systemd ($NOTIFY_SOCKET)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_at_half_the_watchdog_period() {
        assert_eq!(
            ping_interval(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        assert_eq!(ping_interval(Duration::ZERO), Duration::from_millis(1));
    }
}
