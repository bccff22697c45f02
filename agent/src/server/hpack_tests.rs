//! The decoder against RFC 7541's own examples (Appendix C, with and without Huffman
//! coding, with evictions), against loona-hpack on random blocks, and on bad input.

use super::*;

use rand::{Rng, SeedableRng};

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode(d: &mut Decoder, block: &[u8]) -> Result<Fields, Error> {
    let mut out = Vec::new();
    d.decode(block, |n, v| out.push((n.to_vec(), v.to_vec())))?;
    Ok(out)
}

fn fields(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// loona-hpack's decoder on the same block, as a second opinion.
fn loona(d: &mut loona_hpack::Decoder<'static>, block: &[u8]) -> Fields {
    d.decode(block)
        .unwrap()
        .into_iter()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect()
}

/// A step of an RFC example: the block (hex), its fields, the table size after it.
type Step<'a> = (&'a str, &'a [(&'a str, &'a str)], usize);

/// Each step: the block, the fields it carries, the table size after it.
fn rfc_sequence(table_max: usize, steps: &[Step]) {
    let mut ours = Decoder::new(table_max);
    let mut theirs = loona_hpack::Decoder::new();
    theirs.set_max_table_size(table_max);
    for (i, (block, want, size)) in steps.iter().enumerate() {
        let block = hex(block);
        let got = decode(&mut ours, &block).unwrap_or_else(|e| panic!("step {i}: {e:?}"));
        assert_eq!(got, fields(want), "step {i}");
        assert_eq!(
            got,
            loona(&mut theirs, &block),
            "step {i}: loona-hpack disagrees"
        );
        assert_eq!(ours.table_size(), *size, "step {i}: table size");
    }
}

/// The appendix's codes, spot-checked: both ends, every length class near the edges.
#[test]
fn lengths_give_the_appendix_codes() {
    for (symbol, code, len) in [
        (0u16, 0x1ff8u32, 13u8),
        (1, 0x7fffd8, 23),
        (10, 0x3ffffffc, 30),
        (32, 0x14, 6),
        (48, 0x0, 5),
        (97, 0x3, 5),
        (116, 0x9, 5),
        (58, 0x5c, 7),
        (88, 0xfc, 8),
        (60, 0x7ffc, 15),
        (123, 0x7ffe, 15),
        (92, 0x7fff0, 19),
        (128, 0xfffe6, 20),
        (255, 0x3ffffee, 26),
        (EOS, 0x3fffffff, 30),
    ] {
        assert_eq!(code_of(symbol), (code, len), "symbol {symbol}");
    }
}

/// RFC 7541 C.3 and C.4: three requests on one connection, and the table's size after
/// each.
const C_REQUESTS: [(&[(&str, &str)], usize); 3] = [
    (
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ],
        57,
    ),
    (
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ],
        110,
    ),
    (
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ],
        164,
    ),
];

fn rfc_requests(blocks: [&str; 3]) {
    let steps: Vec<Step> = blocks
        .iter()
        .zip(C_REQUESTS)
        .map(|(b, (f, size))| (*b, f, size))
        .collect();
    rfc_sequence(4096, &steps);
}

/// RFC 7541 C.3: requests without Huffman coding.
#[test]
fn rfc_c3_requests() {
    rfc_requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

/// RFC 7541 C.4: the same requests, Huffman-coded.
#[test]
fn rfc_c4_requests_huffman() {
    rfc_requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

/// RFC 7541 C.6: responses, Huffman-coded, in a 256-byte table that evicts.
#[test]
fn rfc_c6_responses_huffman_with_eviction() {
    let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    rfc_sequence(
        256,
        &[
            (
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                &[
                    (":status", "302"),
                    ("cache-control", "private"),
                    ("date", date1),
                    ("location", "https://www.example.com"),
                ],
                222,
            ),
            (
                "4883 640e ffc1 c0bf",
                &[
                    (":status", "307"),
                    ("cache-control", "private"),
                    ("date", date1),
                    ("location", "https://www.example.com"),
                ],
                222,
            ),
            (
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                &[
                    (":status", "200"),
                    ("cache-control", "private"),
                    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                    ("location", "https://www.example.com"),
                    ("content-encoding", "gzip"),
                    (
                        "set-cookie",
                        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
                    ),
                ],
                215,
            ),
        ],
    );
}

/// A Huffman encoder from [`code_of`], for the round trips.
fn huffman_encode(s: &[u8]) -> Vec<u8> {
    let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
    for &b in s {
        let (code, len) = code_of(u16::from(b));
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        // Pad with the most significant bits of EOS (ones).
        out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
    out
}

/// An integer with a 7-bit prefix.
fn encode_int(out: &mut Vec<u8>, flags: u8, mut v: usize) {
    if v < 127 {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | 127);
    v -= 127;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8], huffman: bool) {
    out.push(0x00);
    for s in [name, value] {
        let coded = if huffman {
            huffman_encode(s)
        } else {
            s.to_vec()
        };
        encode_int(out, if huffman { 0x80 } else { 0 }, coded.len());
        out.extend_from_slice(&coded);
    }
}

#[test]
fn huffman_round_trips_every_byte() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut all: Vec<u8> = (0..=255).collect();
    all.extend((0..=255u8).rev());
    let mut cases = vec![Vec::new(), b"a".to_vec(), all];
    for _ in 0..500 {
        let n = rng.random_range(0..64);
        cases.push((0..n).map(|_| rng.random()).collect());
    }
    let mut out = Vec::new();
    for c in &cases {
        huffman_decode(&huffman_encode(c), &mut out).unwrap();
        assert_eq!(&out, c);
    }
    // The same strings as literal fields of one block.
    let mut block = Vec::new();
    for c in &cases {
        literal(&mut block, b"x-name", c, true);
    }
    let got = decode(&mut Decoder::default(), &block).unwrap();
    assert_eq!(got.len(), cases.len());
    for (g, c) in got.iter().zip(&cases) {
        assert_eq!((&g.0[..], &g.1), (&b"x-name"[..], c));
    }
}

/// loona-hpack's encoder (it indexes every new field, so later blocks lean on the
/// dynamic table, with evictions once it fills) against our decoder and its own.
#[test]
fn random_blocks_decode_as_loona_hpack_decodes_them() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _conn in 0..20 {
        let mut enc = loona_hpack::Encoder::new();
        let mut ours = Decoder::new(64 << 10);
        let mut theirs = loona_hpack::Decoder::new();
        let names: Vec<Vec<u8>> = (0..12)
            .map(|i| format!("x-field-{i}").into_bytes())
            .chain([b":authority".to_vec(), b":path".to_vec()])
            .collect();
        for _block in 0..60 {
            let n = rng.random_range(1..12);
            let list: Fields = (0..n)
                .map(|_| {
                    let name = names[rng.random_range(0..names.len())].clone();
                    let len = rng.random_range(0..300);
                    let value = (0..len).map(|_| rng.random_range(b' '..=b'~')).collect();
                    (name, value)
                })
                .collect();
            let block = enc.encode(list.iter().map(|(n, v)| (&n[..], &v[..])));
            let got = decode(&mut ours, &block).unwrap();
            assert_eq!(got, list);
            assert_eq!(got, loona(&mut theirs, &block));
        }
    }
}

#[test]
fn table_size_updates_and_oversized_entries_evict() {
    let mut d = Decoder::new(8192);
    let mut block = Vec::new();
    // Literal with incremental indexing, new name: 40 + 10 + 32 = 82 bytes each.
    for i in 0..3 {
        block.push(0x40);
        let name = format!("x-name-{i:033}");
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(10);
        block.extend_from_slice(b"0123456789");
    }
    decode(&mut d, &block).unwrap();
    assert_eq!(d.table_size(), 3 * 82);
    // 62 is the newest entry.
    assert_eq!(
        decode(&mut d, &[0x80 | 62]).unwrap()[0].0,
        format!("x-name-{:033}", 2).into_bytes()
    );
    // Shrink to two entries: the oldest goes.
    decode(&mut d, &[0x3f, 0xa5, 0x01]).unwrap(); // 31 + 165 = 196
    assert_eq!(d.table_size(), 164);
    assert_eq!(decode(&mut d, &[0x80 | 64]), Err(Error::BadIndex(64)));
    // An entry larger than the whole table empties it.
    let mut big = vec![0x40, 100];
    big.extend_from_slice(&[b'n'; 100]);
    big.extend_from_slice(&[100]);
    big.extend_from_slice(&[b'v'; 100]);
    decode(&mut d, &big).unwrap();
    assert_eq!(d.table_size(), 0);
    assert_eq!(decode(&mut d, &[0x80 | 62]), Err(Error::BadIndex(62)));
    // Above what the decoder allows.
    assert_eq!(
        decode(&mut d, &[0x3f, 0xe2, 0x3f]),
        Err(Error::TableSize(8193))
    );
}

#[test]
fn bad_blocks_are_errors() {
    let mut d = Decoder::default();
    assert_eq!(decode(&mut d, &[0x80]), Err(Error::BadIndex(0)));
    assert_eq!(decode(&mut d, &[0x80 | 62]), Err(Error::BadIndex(62)));
    assert_eq!(decode(&mut d, &[0xff]), Err(Error::Truncated));
    assert_eq!(
        decode(&mut d, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        Err(Error::IntegerOverflow)
    );
    // A literal whose value runs past the block.
    assert_eq!(
        decode(&mut d, &[0x00, 0x01, b'a', 0x05, b'b']),
        Err(Error::Truncated)
    );
    // Huffman: EOS inside the string (30 ones, then padding ones).
    assert_eq!(
        decode(&mut d, &[0x00, 0x01, b'a', 0x84, 0xff, 0xff, 0xff, 0xff]),
        Err(Error::Huffman)
    );
    // Padding longer than 7 bits: 'a' (00011) then 11 ones.
    assert_eq!(
        decode(&mut d, &[0x00, 0x01, b'a', 0x82, 0x1f, 0xff]),
        Err(Error::Huffman)
    );
    // Padding that is not ones: 'a' (00011) then 000.
    assert_eq!(
        decode(&mut d, &[0x00, 0x01, b'a', 0x81, 0x18]),
        Err(Error::Huffman)
    );
    // The same with the right padding decodes.
    assert_eq!(
        decode(&mut d, &[0x00, 0x01, b'a', 0x81, 0x1f]).unwrap(),
        fields(&[("a", "a")])
    );
}

#[test]
fn garbage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..20_000 {
        let n = rng.random_range(0..40);
        let b: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        let mut d = Decoder::new(64 << 10);
        let _ = decode(&mut d, &b);
    }
}
