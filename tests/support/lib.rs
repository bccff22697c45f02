//! Shared support for faultline's privileged and end-to-end tests.
//!
//! # Skips
//!
//! A test that needs something the running kernel lacks calls [`need`] (or the
//! [`require!`] macro) with a capability name. If the capability is missing, the test
//! prints one line `SKIP <test>: needs <capability>: <why>`, appends the same line to
//! the file named by `FAULTLINE_SKIP_LOG` (if set), and returns early: libtest counts it
//! as passed and the tier runner subtracts it into the "skipped" figure.
//!
//! A tier that exists to run some capability sets `FAULTLINE_REQUIRE` to a comma list
//! of capability names (the VM tier sets every network kind and cgroup2 capability; CI's
//! host tier the cgroup capabilities of the host's cgroup mode): a test that would skip
//! for one of those fails instead, so a skip can never hide a tier's reason to exist.
//! A probe that breaks (rather than hearing the kernel say "unknown kind") fails the
//! test: see [`caps`].
//!
//! # Leftovers
//!
//! Cleanup guards that cannot remove what their test made call [`leftover`], which fails
//! the test: a namespace, cgroup or process left behind is a bug, not a warning.

use std::io::Write;
use std::path::PathBuf;

pub mod agent;
pub mod caps;
pub mod chromium;
pub mod container;
pub mod disk;
pub mod fake_agent;
pub mod fleet;
pub mod interop;
pub mod pki;
pub mod prom_server;
pub mod service;
pub mod sim;

/// Whether `capability` is available; `Err(why)` if not. See [`caps`] for the names.
pub fn probe(capability: &str) -> Result<(), String> {
    caps::probe(capability)
}

/// Returns true if the test may go on. If `capability` is missing, records the skip and
/// returns false, or panics if the tier requires that capability (`FAULTLINE_REQUIRE`).
pub fn need(test: &str, capability: &str) -> bool {
    match probe(capability) {
        Ok(()) => true,
        Err(why) => {
            skip(test, capability, &why);
            false
        }
    }
}

/// Records that `test` is skipped for lack of `capability` (one `SKIP` line on stderr
/// and in `FAULTLINE_SKIP_LOG`), or panics if the tier requires that capability
/// (`FAULTLINE_REQUIRE`). For tests with probes of their own; [`need`] calls it.
pub fn skip(test: &str, capability: &str, why: &str) {
    let required = std::env::var("FAULTLINE_REQUIRE")
        .unwrap_or_default()
        .split(',')
        .any(|c| c.trim() == capability);
    let line = format!("SKIP {test}: needs {capability}: {why}");
    if required {
        panic!("{line} (but this tier requires {capability}: FAULTLINE_REQUIRE)");
    }
    eprintln!("{line}");
    if let Ok(path) = std::env::var("FAULTLINE_SKIP_LOG") {
        // A skip the runner cannot count would be counted as a pass: fail instead.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}"))
            .unwrap_or_else(|e| panic!("cannot record the skip in {path}: {e}"));
    }
}

/// A cleanup guard could not remove `what`: fails the test (panics), or, if the thread
/// is already panicking (a second panic would abort the whole binary), says so on stderr
/// next to the first failure.
pub fn leftover(what: impl std::fmt::Display) {
    let line = format!("LEFTOVER: {what}");
    if std::thread::panicking() {
        eprintln!("{line}");
    } else {
        panic!("{line}");
    }
}

/// `require!("netem")` at the top of a test: skips the test (see [`need`]) unless the
/// capability is present. Several capabilities may be listed.
#[macro_export]
macro_rules! require {
    ($($cap:expr),+ $(,)?) => {
        $(
            if !$crate::need(
                {
                    fn f() {}
                    let name = std::any::type_name_of_val(&f);
                    name.strip_suffix("::f").unwrap_or(name)
                },
                $cap,
            ) {
                return;
            }
        )+
    };
}

/// The directory holding the built `faultd` and `faultctl`: `FAULTLINE_BIN_DIR` if set,
/// else the cargo target profile directory this test binary was built into.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("FAULTLINE_BIN_DIR") {
        return PathBuf::from(d);
    }
    // target/<profile>/deps/<test-binary>
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a parent dir");
    deps.parent().expect("deps has a parent dir").to_path_buf()
}

/// Full path of a workspace binary (`faultd`, `faultctl`).
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: build the workspace first (cargo build) or set FAULTLINE_BIN_DIR",
        p.display()
    );
    p
}

/// A name unique to this process and call, short enough for an interface name (<= 15
/// bytes with a 4-byte prefix): `prefix` + 11 hex characters.
/// The `q`th percentile (nearest rank, 0..=100) of the benchmarks' timings; sorts `v`.
pub fn quantile(v: &mut [std::time::Duration], q: usize) -> std::time::Duration {
    v.sort();
    v[(v.len() * q / 100).min(v.len() - 1)]
}

pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!("{prefix}{:06x}{:05x}", pid & 0xff_ffff, n & 0xf_ffff)
}
