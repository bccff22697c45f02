//! `faultctl`: the command-line controller for faultd. See `faultctl --help`.

use std::io::Write;

use clap::Parser;
use faultline_controller::{Cli, run};

/// A fleet command may keep a connection per node open while it runs (a scenario's
/// leases on 10,000 nodes over TLS): the soft limit on open files is raised to the hard
/// one.
fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn main() {
    // clap prints usage errors itself and exits 2 (bad input); --help/--version exit 0.
    let cli = Cli::parse();
    raise_nofile();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("faultctl: error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout();
    let result = rt.block_on(run(&cli, &mut out));
    let _ = out.flush();
    if let Err(e) = result {
        // A closed pipe (faultctl list | head) is not an error worth a message.
        if let faultline_controller::CtlError::Output(io) = &e
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(0);
        }
        eprintln!("faultctl: error: {e}");
        std::process::exit(e.exit_code() as i32);
    }
}
