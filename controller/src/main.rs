//! `faultctl`: the command-line controller for faultd. See `faultctl --help`.

use std::io::Write;

use clap::Parser;
use faultline_controller::{Cli, run};

fn main() {
    // clap prints usage errors itself and exits 2 (bad input); --help/--version exit 0.
    let cli = Cli::parse();
    faultline_controller::fanout::raise_open_files();
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
