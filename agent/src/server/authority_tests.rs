//! The rewriter against hand-built HTTP/2 byte streams, against random ones, and in
//! front of a real h2 server (the one tonic uses).

use super::*;

use rand::{Rng, SeedableRng};

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn fields(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn request(authority: &str, path: &str) -> Fields {
    fields(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("te", "trailers"),
        ("content-type", "application/grpc"),
        (
            "user-agent",
            "grpc-python/1.85.3 grpc-c/52.0.0 (linux; chttp2)",
        ),
        ("grpc-accept-encoding", "identity, deflate, gzip"),
    ])
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame_header(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out
}

/// SETTINGS (empty), WINDOW_UPDATE: what a client sends after the preface.
fn opening() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x8, 0, 0, &[0, 0x0f, 0, 0]));
    out
}

/// A client's HPACK encoder: indexes every new field (loona-hpack's strategy), so later
/// blocks refer to the dynamic table.
struct Client {
    enc: loona_hpack::Encoder<'static>,
}

impl Client {
    fn new() -> Client {
        Client {
            enc: loona_hpack::Encoder::new(),
        }
    }

    fn block(&mut self, f: &Fields) -> Vec<u8> {
        self.enc
            .encode(f.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
    }
}

/// Runs `input` through a rewriter in chunks of `chunk` bytes.
fn run(input: &[u8], chunk: usize) -> (Vec<u8>, Rewriter) {
    let mut rw = Rewriter::new();
    let mut out = Vec::new();
    for c in input.chunks(chunk.max(1)) {
        rw.feed(c).expect("feed");
        out.extend_from_slice(rw.output());
        let n = rw.output().len();
        rw.consume(n);
    }
    rw.finish();
    out.extend_from_slice(rw.output());
    (out, rw)
}

/// Parses frames after the preface: (type, flags, stream, payload).
fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    assert!(bytes.starts_with(PREFACE), "the preface goes first");
    let mut b = &bytes[PREFACE.len()..];
    let mut out = Vec::new();
    while !b.is_empty() {
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        assert!(len <= MAX_FRAME, "frame of {len} bytes");
        out.push((b[3], b[4], stream, b[9..9 + len].to_vec()));
        b = &b[9 + len..];
    }
    out
}

/// Decodes every header block of a (rewritten) stream as the server does, with one
/// decoder for the connection: (stream, flags of HEADERS, fields).
fn blocks(bytes: &[u8]) -> Vec<(u32, u8, Fields)> {
    let mut dec = loona_hpack::Decoder::new();
    let mut out = Vec::new();
    let mut cur: Option<(u32, u8, Vec<u8>)> = None;
    for (kind, flags, stream, payload) in frames(bytes) {
        match kind {
            HEADERS => {
                assert!(cur.is_none());
                let (_, frag) = split_headers(flags, &payload).unwrap();
                cur = Some((stream, flags, frag.to_vec()));
            }
            CONTINUATION => {
                let c = cur.as_mut().expect("continuation after headers");
                assert_eq!(c.0, stream);
                c.2.extend_from_slice(&payload);
            }
            _ => {
                assert!(cur.is_none(), "no frame inside a header block");
                continue;
            }
        }
        if flags & END_HEADERS != 0 {
            let (stream, hflags, frag) = cur.take().unwrap();
            let f = dec.decode(&frag).expect("the rewritten block decodes");
            out.push((stream, hflags, f));
        }
    }
    assert!(cur.is_none(), "every block ended");
    out
}

fn with_authority(f: &Fields, a: &str) -> Fields {
    f.iter()
        .map(|(n, v)| {
            if n == b":authority" {
                (n.clone(), a.as_bytes().to_vec())
            } else {
                (n.clone(), v.clone())
            }
        })
        .collect()
}

#[test]
fn authority_validity_is_h2s() {
    for ok in [
        "localhost",
        "localhost:50051",
        "127.0.0.1:7",
        "[::1]:9",
        "a.b-c_d~e",
    ] {
        assert!(valid_authority(ok.as_bytes()), "{ok}");
    }
    for bad in [
        "/run/faultline/faultd.sock",
        "%2Frun%2Ffaultline%2Ffaultd.sock",
        "",
        "a b",
    ] {
        assert!(!valid_authority(bad.as_bytes()), "{bad}");
    }
}

#[test]
fn valid_authorities_pass_byte_for_byte_in_any_chunking() {
    let mut c = Client::new();
    let mut input = opening();
    for (i, path) in ["/faultline.v1.Agent/Status", "/faultline.v1.Agent/List"]
        .iter()
        .enumerate()
    {
        let stream = 1 + 2 * i as u32;
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            stream,
            &c.block(&request("localhost", path)),
        ));
        input.extend(frame(0x0, END_STREAM, stream, &[0, 0, 0, 0, 2, 8, 1]));
    }
    // A PING and a big DATA frame go through as they are.
    input.extend(frame(0x6, 0, 0, &[7; 8]));
    input.extend(frame(0x0, 0, 5, &vec![0xab; 40_000]));
    for chunk in [1, 2, 7, 9, 100, 4096, input.len()] {
        let (out, rw) = run(&input, chunk);
        assert_eq!(out, input, "chunk {chunk}");
        assert!(!rw.rewriting());
    }
}

#[test]
fn socket_path_authority_is_replaced_and_later_blocks_follow_the_clients_table() {
    for authority in [
        "/run/faultline/faultd.sock",
        "%2Frun%2Ffaultline%2Ffaultd.sock",
    ] {
        let mut c = Client::new();
        let mut input = opening();
        let mut sent = Vec::new();
        for i in 0..5u32 {
            let f = request(authority, &format!("/faultline.v1.Agent/Get{i}"));
            input.extend(frame(HEADERS, END_HEADERS, 1 + 2 * i, &c.block(&f)));
            input.extend(frame(0x0, END_STREAM, 1 + 2 * i, &[0, 0, 0, 0, 0]));
            sent.push(f);
        }
        for chunk in [1, 3, 64, input.len()] {
            let (out, rw) = run(&input, chunk);
            assert!(rw.rewriting());
            assert_eq!(rw.replaced(), Some(authority.as_bytes()));
            let got = blocks(&out);
            assert_eq!(got.len(), 5);
            for (i, (stream, flags, f)) in got.into_iter().enumerate() {
                assert_eq!(stream, 1 + 2 * i as u32);
                assert_eq!(flags, END_HEADERS);
                assert_eq!(f, with_authority(&sent[i], REPLACEMENT), "block {i}");
            }
            // The DATA frames are untouched.
            let data: Vec<_> = frames(&out).into_iter().filter(|f| f.0 == 0).collect();
            assert_eq!(data.len(), 5);
        }
    }
}

#[test]
fn switching_midway_keeps_the_earlier_blocks_as_sent() {
    // A valid block first (goes through raw and into the server's table), then a
    // per-call authority that is a path: rewritten from there on.
    let mut c = Client::new();
    let mut input = opening();
    let first = frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &c.block(&request("localhost", "/a")),
    );
    input.extend(&first);
    let second = request("/tmp/x.sock", "/a");
    input.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &c.block(&second),
    ));
    let third = request("localhost", "/a");
    input.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        5,
        &c.block(&third),
    ));
    let (out, rw) = run(&input, 5);
    assert!(rw.rewriting());
    let mut expected_prefix = opening();
    expected_prefix.extend(&first);
    assert!(out.starts_with(&expected_prefix), "the first block is raw");
    let got = blocks(&out);
    assert_eq!(got[0].2, request("localhost", "/a"));
    assert_eq!(got[1].2, with_authority(&second, REPLACEMENT));
    assert_eq!(got[2].2, third, "a valid authority is kept while rewriting");
}

#[test]
fn padding_priority_and_continuation_in_big_blocks_out() {
    let mut c = Client::new();
    let mut f = request("/run/faultline/faultd.sock", "/faultline.v1.Agent/Inject");
    f.push((b"x-big".to_vec(), vec![b'v'; 40_000]));
    let block = c.block(&f);
    // In: HEADERS (padded, with priority, no END_HEADERS) + two CONTINUATIONs.
    let (a, rest) = block.split_at(100);
    let (b, d) = rest.split_at(rest.len() / 2);
    let mut payload = vec![3u8];
    payload.extend([0x80, 0, 0, 1, 200]);
    payload.extend(a);
    payload.extend([0, 0, 0]);
    let mut input = opening();
    input.extend(frame(HEADERS, PADDED | PRIORITY, 1, &payload));
    input.extend(frame(CONTINUATION, 0, 1, b));
    input.extend(frame(CONTINUATION, END_HEADERS, 1, d));
    let (out, _) = run(&input, 1000);
    let fr = frames(&out);
    let heads: Vec<_> = fr.iter().filter(|f| f.0 == HEADERS).collect();
    assert_eq!(heads.len(), 1);
    assert_eq!(
        heads[0].1, PRIORITY,
        "priority kept, no padding, more to come"
    );
    assert_eq!(&heads[0].3[..5], &[0x80, 0, 0, 1, 200]);
    assert!(fr.iter().filter(|f| f.0 == CONTINUATION).count() >= 2);
    assert_eq!(fr.last().unwrap().1, END_HEADERS);
    let got = blocks(&out);
    assert_eq!(got[0].2, with_authority(&f, REPLACEMENT));
}

#[test]
fn what_h2_rejects_passes_through_unless_rewriting() {
    // A DATA frame inside a header block: before any rewrite, everything goes through
    // unchanged (h2 answers PROTOCOL_ERROR itself).
    let mut c = Client::new();
    let block = c.block(&request("localhost", "/a"));
    let mut input = opening();
    input.extend(frame(HEADERS, 0, 1, &block));
    input.extend(frame(0x0, 0, 1, b"zz"));
    input.extend(frame(CONTINUATION, END_HEADERS, 1, &[]));
    let (out, rw) = run(&input, 4);
    assert_eq!(out, input);
    assert!(!rw.rewriting());

    // Not HTTP/2 at all.
    let http1 = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(run(http1, 3).0, http1);
    // A short preface and EOF.
    assert_eq!(run(&PREFACE[..10], 4).0, &PREFACE[..10]);

    // Once rewriting, the same input ends the connection.
    let mut c = Client::new();
    let mut rw = Rewriter::new();
    let mut input = opening();
    input.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &c.block(&request("/s", "/a")),
    ));
    input.extend(frame(HEADERS, 0, 3, &c.block(&request("/s", "/b"))));
    input.extend(frame(0x0, 0, 3, b"zz"));
    let err = rw.feed(&input).unwrap_err();
    assert!(err.to_string().contains("inside a header block"), "{err}");
}

#[test]
fn hpack_errors_before_rewriting_leave_the_connection_to_h2() {
    let mut input = opening();
    // Index 200 does not exist.
    input.extend(frame(HEADERS, END_HEADERS, 1, &[0x80 | 0x7f, 0x49]));
    input.extend(frame(0x6, 0, 0, &[1; 8]));
    let (out, rw) = run(&input, 7);
    assert_eq!(out, input);
    assert!(!rw.rewriting());
}

/// Random valid client streams (random header sets, table size updates, padding,
/// priority, CONTINUATION splits, DATA, chunking): the rewritten stream carries the same
/// header lists with only invalid authorities replaced, and the same DATA.
#[test]
fn random_streams_round_trip() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x18_a17);
    let names = ["x-a", "x-b", "grpc-timeout", "x-lease", "te", "x-c"];
    for round in 0..300 {
        let mut c = Client::new();
        let mut input = opening();
        let mut sent = Vec::new();
        let mut data = Vec::new();
        let bad = rng.random_bool(0.5);
        for i in 0..rng.random_range(1..8u32) {
            let stream = 1 + 2 * i;
            let authority = if bad && rng.random_bool(0.7) {
                "/tmp/faultline-x/faultd.sock"
            } else {
                "localhost"
            };
            let mut f = request(authority, &format!("/p/{}", rng.random_range(0..4)));
            for _ in 0..rng.random_range(0..6) {
                let n = names[rng.random_range(0..names.len())];
                let v: String = (0..rng.random_range(0..300))
                    .map(|_| rng.random_range(b'a'..=b'z') as char)
                    .collect();
                f.push((n.as_bytes().to_vec(), v.into_bytes()));
            }
            let mut block = Vec::new();
            if rng.random_bool(0.1) {
                // A dynamic table size update at the start (shrink, then back).
                let size = rng.random_range(0..4096);
                loona_hpack::encoder::encode_integer_into(size, 5, 0x20, &mut block).unwrap();
                c.enc.set_max_table_size(size);
            }
            block.extend(c.block(&f));
            sent.push(f);
            let padded = rng.random_bool(0.3);
            let prio = rng.random_bool(0.3);
            let cut = rng.random_range(0..=block.len());
            let mut payload = Vec::new();
            let mut flags = 0;
            if padded {
                flags |= PADDED;
                payload.push(5);
            }
            if prio {
                flags |= PRIORITY;
                payload.extend([0, 0, 0, 0, 16]);
            }
            payload.extend(&block[..cut]);
            if padded {
                payload.extend([0; 5]);
            }
            let split = cut < block.len();
            if !split {
                flags |= END_HEADERS;
            }
            input.extend(frame(HEADERS, flags, stream, &payload));
            if split {
                input.extend(frame(CONTINUATION, END_HEADERS, stream, &block[cut..]));
            }
            let d: Vec<u8> = (0..rng.random_range(0..3000))
                .map(|_| rng.random())
                .collect();
            input.extend(frame(0x0, END_STREAM, stream, &d));
            data.push(d);
        }
        let chunk = rng.random_range(1..200);
        let (out, rw) = run(&input, chunk);
        if !rw.rewriting() {
            assert_eq!(out, input, "round {round}: untouched");
            continue;
        }
        let got = blocks(&out);
        assert_eq!(got.len(), sent.len(), "round {round}");
        for (i, (_, _, f)) in got.iter().enumerate() {
            let auth = sent[i]
                .iter()
                .find(|(n, _)| n == b":authority")
                .map(|(_, v)| v.clone())
                .unwrap();
            let want = if valid_authority(&auth) {
                sent[i].clone()
            } else {
                with_authority(&sent[i], REPLACEMENT)
            };
            assert_eq!(f, &want, "round {round} block {i}");
        }
        let got_data: Vec<Vec<u8>> = frames(&out)
            .into_iter()
            .filter(|f| f.0 == 0)
            .map(|f| f.3)
            .collect();
        assert_eq!(got_data, data, "round {round}");
    }
}

/// Arbitrary bytes after the preface never panic, and never grow memory past the caps.
#[test]
fn garbage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(487);
    for _ in 0..2000 {
        let mut input = opening();
        let n = rng.random_range(0..600);
        let mut junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        // Bias towards header frames with small lengths.
        if junk.len() >= 9 && rng.random_bool(0.7) {
            junk[0] = 0;
            junk[1] = 0;
            junk[2] = rng.random_range(0..64);
            junk[3] = if rng.random_bool(0.5) {
                HEADERS
            } else {
                CONTINUATION
            };
        }
        input.extend(junk);
        let mut rw = Rewriter::new();
        for c in input.chunks(rng.random_range(1..50)) {
            if rw.feed(c).is_err() {
                break;
            }
            let n = rw.output().len();
            rw.consume(n);
        }
        rw.finish();
    }
}

/// In front of the real h2 server: without the adapter h2 resets a stream whose
/// `:authority` is a socket path (hyperium/h2#487: if this starts failing, h2 has
/// fixed it and the adapter can go); with it, the request arrives as `localhost`.
#[tokio::test]
async fn the_real_h2_server_refuses_the_path_and_takes_the_rewrite() {
    async fn serve(fix: bool) -> (Option<http::Request<h2::RecvStream>>, Vec<u8>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut c = Client::new();
        let mut input = opening();
        input.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &c.block(&request(
                "%2Frun%2Ffaultline%2Ffaultd.sock",
                "/faultline.v1.Agent/Status",
            )),
        ));
        let (mut cr, mut cw) = tokio::io::split(client);
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        cw.write_all(&input).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(Ok(n)) =
                tokio::time::timeout(std::time::Duration::from_millis(300), cr.read(&mut buf)).await
            {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let req = if fix {
            let mut conn = h2::server::handshake(AuthorityFix::new(server, "test".into()))
                .await
                .unwrap();
            let r = tokio::time::timeout(std::time::Duration::from_secs(1), conn.accept()).await;
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            r.ok().flatten().map(|r| r.unwrap().0)
        } else {
            let mut conn = h2::server::handshake(server).await.unwrap();
            let r =
                tokio::time::timeout(std::time::Duration::from_millis(500), conn.accept()).await;
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            r.ok().flatten().map(|r| r.unwrap().0)
        };
        (req, reader.await.unwrap())
    }

    let (req, replies) = serve(false).await;
    assert!(req.is_none(), "h2 refuses the path");
    // RST_STREAM (type 3) on stream 1 with PROTOCOL_ERROR (1).
    let rst = [0, 0, 4, 3, 0, 0, 0, 0, 1, 0, 0, 0, 1];
    assert!(
        replies.windows(rst.len()).any(|w| w == rst),
        "RST_STREAM PROTOCOL_ERROR: {replies:02x?}"
    );

    let (req, _) = serve(true).await;
    let req = req.expect("h2 takes the rewritten request");
    assert_eq!(req.uri().authority().unwrap().as_str(), REPLACEMENT);
    assert_eq!(req.uri().path(), "/faultline.v1.Agent/Status");
    assert_eq!(req.headers()["content-type"], "application/grpc");
}
