//! Lets stock grpc-core clients (Python, Java, C++, Ruby, C#) call faultd over the Unix
//! socket: they send the socket path, or its %-encoding, as the HTTP/2 `:authority`
//! (`/run/faultline/faultd.sock`, `%2Frun%2Ffaultline%2Ffaultd.sock`), which is not an
//! authority RFC 3986 allows, and the HTTP/2 server under tonic (hyperium/h2) resets
//! every such stream with PROTOCOL_ERROR (hyperium/h2#487, open).
//!
//! [`AuthorityFix`] sits between an accepted Unix-socket connection and the server and
//! rewrites what the client sends, at the frame level:
//!
//! - The connection preface and every frame other than HEADERS and CONTINUATION pass
//!   through untouched (DATA is streamed, never buffered whole).
//! - Each header block (a HEADERS frame and its CONTINUATIONs) is collected and decoded
//!   with an HPACK decoder ([`super::hpack`]) that follows the client's dynamic table.
//! - While every `:authority` is valid (faultctl, grpc-go, grpcurl, anything that sends
//!   `localhost`), the original frames go through byte for byte.
//! - From the first block whose `:authority` h2 would refuse, the connection switches to
//!   rewriting, for good: every block is re-encoded as literals without indexing (so the
//!   server's HPACK table is never touched again and cannot fall out of step with the
//!   client's, which only our decoder follows from then on), with that `:authority`
//!   replaced by `localhost`. Padding is dropped, the priority fields and END_STREAM
//!   kept, and a block longer than 16 KiB (the smallest SETTINGS_MAX_FRAME_SIZE a server
//!   may announce) is split into CONTINUATION frames.
//!
//! Anything the adapter cannot follow before it rewrites (not HTTP/2, a frame sequence
//! h2 itself rejects, an HPACK error) turns it into a plain pipe, so h2 answers as it
//! would without it. Once rewriting, such input ends the connection with an I/O error.
//!
//! Only the Unix socket gets this: over TCP the client names a real host.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame payload we emit: the protocol's minimum SETTINGS_MAX_FRAME_SIZE.
const MAX_FRAME: usize = 16_384;
/// The largest header block (compressed) we collect; h2 refuses far smaller ones.
const MAX_BLOCK: usize = 1 << 20;
/// The largest decoded header list we re-encode.
const MAX_DECODED: usize = 4 << 20;
/// The largest dynamic table a client may ask for. h2 announces none, so the client's
/// limit is the default 4096 and h2 fails the connection above it; this bound only
/// keeps our table's memory small whatever the client sends.
const MAX_TABLE: usize = 64 << 10;

/// What the server is told instead of an invalid `:authority`.
pub const REPLACEMENT: &str = "localhost";

/// Whether h2 would accept `v` as `:authority` (it parses it as an [`http::uri::Authority`]).
pub fn valid_authority(v: &[u8]) -> bool {
    http::uri::Authority::try_from(v).is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Matching the connection preface; the count of bytes matched so far.
    Preface(usize),
    /// Following frames.
    Frames,
    /// Passing everything through for the rest of the connection.
    Pipe,
}

/// A header block being collected.
#[derive(Debug, Default)]
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as received, to forward unchanged while not rewriting.
    raw: Vec<u8>,
}

/// The byte-level rewriter of the client-to-server direction, independent of any I/O:
/// [`feed`](Rewriter::feed) what the client sent, take [`output`](Rewriter::output).
pub struct Rewriter {
    phase: Phase,
    /// Bytes of the current pass-through frame's payload still to copy.
    passthrough: usize,
    pending: Vec<u8>,
    out: Vec<u8>,
    block: Option<Block>,
    decoder: super::hpack::Decoder,
    /// The decoded fields of the block at hand, kept between blocks to save allocations:
    /// (name, value) ranges into `arena`.
    fields: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    arena: Vec<u8>,
    rewriting: bool,
    /// The first invalid authority seen (for the log line), once rewriting.
    replaced: Option<Vec<u8>>,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewriter")
            .field("phase", &self.phase)
            .field("rewriting", &self.rewriting)
            .finish_non_exhaustive()
    }
}

impl Default for Rewriter {
    fn default() -> Self {
        Rewriter::new()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Rewriter {
    pub fn new() -> Rewriter {
        let decoder = super::hpack::Decoder::new(MAX_TABLE);
        Rewriter {
            phase: Phase::Preface(0),
            passthrough: 0,
            pending: Vec::new(),
            out: Vec::new(),
            block: None,
            decoder,
            fields: Vec::new(),
            arena: Vec::new(),
            rewriting: false,
            replaced: None,
        }
    }

    /// Whether the connection is being rewritten (some `:authority` was invalid).
    pub fn rewriting(&self) -> bool {
        self.rewriting
    }

    /// The first invalid `:authority` this connection sent, once it has.
    pub fn replaced(&self) -> Option<&[u8]> {
        self.replaced.as_deref()
    }

    /// Bytes ready for the server.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Drops the first `n` bytes of [`output`](Rewriter::output) (the server has them).
    pub fn consume(&mut self, n: usize) {
        self.out.drain(..n);
    }

    /// The client closed its side: whatever is still held goes out as it came.
    pub fn finish(&mut self) {
        if let Phase::Preface(matched) = self.phase {
            self.out.extend_from_slice(&PREFACE[..matched]);
            self.phase = Phase::Pipe;
        }
        if let Some(b) = self.block.take() {
            self.out.extend_from_slice(&b.raw);
        }
        self.out.append(&mut self.pending);
    }

    /// Takes more of what the client sent. An error means the connection must end.
    pub fn feed(&mut self, data: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        let mut at = 0;
        let res = self.step(&mut at);
        self.pending.drain(..at);
        res
    }

    fn step(&mut self, at: &mut usize) -> io::Result<()> {
        loop {
            let input = &self.pending[*at..];
            match self.phase {
                Phase::Pipe => {
                    self.out.extend_from_slice(input);
                    *at = self.pending.len();
                    return Ok(());
                }
                Phase::Preface(matched) => {
                    let want = &PREFACE[matched..];
                    let n = want.len().min(input.len());
                    if input[..n] != want[..n] {
                        // Not HTTP/2 with prior knowledge: not ours to touch.
                        self.out.extend_from_slice(&PREFACE[..matched]);
                        self.phase = Phase::Pipe;
                        continue;
                    }
                    *at += n;
                    if matched + n < PREFACE.len() {
                        self.phase = Phase::Preface(matched + n);
                        return Ok(());
                    }
                    self.out.extend_from_slice(PREFACE);
                    self.phase = Phase::Frames;
                }
                Phase::Frames => {
                    if self.passthrough > 0 {
                        let n = self.passthrough.min(input.len());
                        self.out.extend_from_slice(&input[..n]);
                        *at += n;
                        self.passthrough -= n;
                        if self.passthrough > 0 {
                            return Ok(());
                        }
                        continue;
                    }
                    if input.len() < FRAME_HEADER {
                        return Ok(());
                    }
                    let len = u32::from_be_bytes([0, input[0], input[1], input[2]]) as usize;
                    let kind = input[3];
                    let flags = input[4];
                    let stream =
                        u32::from_be_bytes([input[5], input[6], input[7], input[8]]) & 0x7fff_ffff;
                    if kind != HEADERS && kind != CONTINUATION {
                        if self.block.is_some() {
                            self.violation("a frame inside a header block")?;
                            continue;
                        }
                        self.out.extend_from_slice(&input[..FRAME_HEADER]);
                        *at += FRAME_HEADER;
                        self.passthrough = len;
                        continue;
                    }
                    let held = self.block.as_ref().map_or(0, |b| b.raw.len());
                    if held + FRAME_HEADER + len > MAX_BLOCK {
                        self.violation("a header block over 1 MiB")?;
                        continue;
                    }
                    if input.len() < FRAME_HEADER + len {
                        return Ok(());
                    }
                    let frame_end = *at + FRAME_HEADER + len;
                    let raw = self.pending[*at..frame_end].to_vec();
                    let payload = &raw[FRAME_HEADER..];
                    let fragment = if kind == HEADERS {
                        if self.block.is_some() || stream == 0 {
                            self.violation("HEADERS inside a header block, or on stream 0")?;
                            continue;
                        }
                        let Some((priority, fragment)) = split_headers(flags, payload) else {
                            self.violation("HEADERS padding or priority longer than the frame")?;
                            continue;
                        };
                        self.block = Some(Block {
                            stream,
                            end_stream: flags & END_STREAM != 0,
                            priority,
                            ..Block::default()
                        });
                        fragment
                    } else {
                        if self.block.as_ref().is_none_or(|b| b.stream != stream) {
                            self.violation("CONTINUATION outside its header block")?;
                            continue;
                        }
                        payload
                    };
                    let block = self.block.as_mut().expect("a block is open");
                    block.fragment.extend_from_slice(fragment);
                    block.raw.extend_from_slice(&raw);
                    *at = frame_end;
                    if flags & END_HEADERS != 0 {
                        let block = self.block.take().expect("a block is open");
                        self.finish_block(block)?;
                    }
                }
            }
        }
    }

    /// Input h2 itself would reject: before rewriting, pass it (and everything after)
    /// through so h2 answers as usual; once rewriting, end the connection.
    fn violation(&mut self, what: &str) -> io::Result<()> {
        if self.rewriting {
            return Err(invalid(format!(
                "HTTP/2 from the client: {what} (connection ended)"
            )));
        }
        if let Some(b) = self.block.take() {
            self.out.extend_from_slice(&b.raw);
        }
        self.phase = Phase::Pipe;
        Ok(())
    }

    fn finish_block(&mut self, block: Block) -> io::Result<()> {
        let res = self.decode_block(block);
        if self.arena.capacity() > 64 << 10 {
            // One big block must not keep the connection's memory up for good.
            self.arena = Vec::new();
            self.fields = Vec::new();
        }
        res
    }

    /// Decodes a complete header block and forwards it: as it came while not rewriting,
    /// re-encoded with `:authority` replaced once rewriting.
    fn decode_block(&mut self, block: Block) -> io::Result<()> {
        let mut size = 0usize;
        let mut bad: Option<Vec<u8>> = None;
        let (fields, arena) = (&mut self.fields, &mut self.arena);
        fields.clear();
        arena.clear();
        let decoded = self.decoder.decode(&block.fragment, |name, value| {
            if name == b":authority" && bad.is_none() && !valid_authority(value) {
                bad = Some(value.to_vec());
            }
            size += name.len() + value.len() + 32;
            if size <= MAX_DECODED {
                let n = arena.len()..arena.len() + name.len();
                arena.extend_from_slice(name);
                let v = arena.len()..arena.len() + value.len();
                arena.extend_from_slice(value);
                fields.push((n, v));
            }
        });
        if let Err(e) = decoded {
            if self.rewriting {
                return Err(invalid(format!(
                    "HPACK error in a header block from the client: {e:?} (connection ended)"
                )));
            }
            // Our table no longer follows the client's: never rewrite this connection.
            // h2 decodes the block itself and answers as it would anyway.
            self.out.extend_from_slice(&block.raw);
            self.phase = Phase::Pipe;
            return Ok(());
        }
        if bad.is_some() && !self.rewriting {
            self.rewriting = true;
            self.replaced = bad.clone();
        }
        if !self.rewriting {
            self.out.extend_from_slice(&block.raw);
            return Ok(());
        }
        if size > MAX_DECODED {
            return Err(invalid(format!(
                "a header list of {size} bytes from the client, over {MAX_DECODED} (connection ended)"
            )));
        }
        let mut encoded = Vec::with_capacity(block.fragment.len() * 2);
        for (name, value) in &self.fields {
            let (name, value) = (&self.arena[name.clone()], &self.arena[value.clone()]);
            let value: &[u8] = if name == b":authority" && !valid_authority(value) {
                REPLACEMENT.as_bytes()
            } else {
                value
            };
            encode_literal(&mut encoded, name, value);
        }
        emit_block(
            &mut self.out,
            block.stream,
            block.end_stream,
            block.priority,
            &encoded,
        );
        Ok(())
    }
}

/// Splits a HEADERS payload into its priority fields and header block fragment, without
/// the padding; None if the padding or priority fields do not fit.
fn split_headers(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut p = payload;
    let mut pad = 0usize;
    if flags & PADDED != 0 {
        pad = *p.first()? as usize;
        p = &p[1..];
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let f: [u8; 5] = p.get(..5)?.try_into().ok()?;
        priority = Some(f);
        p = &p[5..];
    }
    let end = p.len().checked_sub(pad)?;
    Some((priority, &p[..end]))
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); `flags` fills the high bits.
fn encode_int(out: &mut Vec<u8>, n: u32, flags: u8, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// One field as "literal header field without indexing, new name" (RFC 7541 §6.2.2),
/// strings without Huffman coding.
fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    encode_int(out, 7, 0, name.len());
    out.extend_from_slice(name);
    encode_int(out, 7, 0, value.len());
    out.extend_from_slice(value);
}

/// A header block as HEADERS (+ CONTINUATION) frames of at most [`MAX_FRAME`] bytes.
fn emit_block(
    out: &mut Vec<u8>,
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: &[u8],
) {
    let first_room = MAX_FRAME - priority.map_or(0, |_| 5);
    let (first, mut rest) = block.split_at(block.len().min(first_room));
    let mut flags = 0u8;
    if end_stream {
        flags |= END_STREAM;
    }
    if priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    let len = first.len() + priority.map_or(0, |_| 5);
    frame_header(out, len, HEADERS, flags, stream);
    if let Some(p) = priority {
        out.extend_from_slice(&p);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = tail;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        frame_header(out, chunk.len(), CONTINUATION, flags, stream);
        out.extend_from_slice(chunk);
    }
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let l = (len as u32).to_be_bytes();
    out.extend_from_slice(&[l[1], l[2], l[3], kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

/// An accepted connection with the client-to-server direction passed through a
/// [`Rewriter`]; writes go straight to the client.
pub struct AuthorityFix<S> {
    inner: S,
    rw: Rewriter,
    eof: bool,
    logged: bool,
    peer: String,
}

impl<S> std::fmt::Debug for AuthorityFix<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityFix")
            .field("rw", &self.rw)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<S> AuthorityFix<S> {
    /// `peer` names the client in the one debug line logged when a connection switches
    /// to rewriting.
    pub fn new(inner: S, peer: String) -> AuthorityFix<S> {
        AuthorityFix {
            inner,
            rw: Rewriter::new(),
            eof: false,
            logged: false,
            peer,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let ready = this.rw.output();
            if !ready.is_empty() {
                let n = ready.len().min(buf.remaining());
                buf.put_slice(&ready[..n]);
                this.rw.consume(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut tmp = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut tmp);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.rw.finish();
                this.eof = true;
                continue;
            }
            this.rw.feed(rb.filled())?;
            if !this.logged
                && let Some(a) = this.rw.replaced()
            {
                this.logged = true;
                tracing::debug!(
                    peer = %this.peer,
                    authority = %String::from_utf8_lossy(a),
                    "client sent a socket path as :authority (grpc-core does); serving it as {REPLACEMENT}"
                );
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected
    for AuthorityFix<S>
{
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
