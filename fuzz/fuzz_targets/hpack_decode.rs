//! faultd's HPACK decoder (`server::hpack`) against loona-hpack on the same header
//! blocks, one connection's table for both: never a panic, and wherever both decode a
//! block they give the same fields (after either fails, the tables may differ: stop).
//! The first byte splits the input into blocks at multiples of it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let mut ours = faultline_agent::server::hpack::Decoder::new(64 << 10);
    let mut theirs = loona_hpack::Decoder::new();
    theirs.set_max_allowed_table_size(64 << 10);
    for block in rest.chunks(usize::from(split).max(1)) {
        let mut got = Vec::new();
        let a = ours.decode(block, |n, v| got.push((n.to_vec(), v.to_vec())));
        let b = theirs.decode(block);
        match (a, b) {
            (Ok(()), Ok(want)) => {
                let want: Vec<(Vec<u8>, Vec<u8>)> = want
                    .into_iter()
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect();
                assert_eq!(got, want, "the decoders disagree on {block:02x?}");
            }
            _ => return,
        }
    }
});
