//! faultd.toml and limits.toml parsing: any text gives a config or an error naming a
//! line, never a panic.
#![no_main]

use std::path::Path;

use faultline_agent::config::Config;
use faultline_agent::limits::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::parse(text, Path::new("/etc/faultline/faultd.toml"));
    let _ = Limits::parse(text, Path::new("/etc/faultline/limits.toml"));
});
