//! What a Unix-socket client sends, after the HTTP/2 preface, through the `:authority`
//! rewriter (`server::authority::Rewriter`), fed in chunks whose size the first byte
//! picks. Never a panic, and what it holds stays bounded by the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut rw = faultline_agent::server::authority::Rewriter::new();
    let input = [PREFACE, rest].concat();
    for c in input.chunks(chunk) {
        if rw.feed(c).is_err() {
            return;
        }
        let n = rw.output().len();
        rw.consume(n);
    }
    rw.finish();
});
