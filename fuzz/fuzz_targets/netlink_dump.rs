//! One message of a qdisc/filter dump from the kernel (bytes) -> the agent's decoded
//! view (qdisc, netem/prio/tbf options, u32 filter). Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = faultline_agent::sys::tc::ops::decode_dump_message(data);
});
