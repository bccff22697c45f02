//! The HPACK decoder (RFC 7541) behind the `:authority` adapter ([`super::authority`]):
//! it follows a client's dynamic table and hands each decoded field to a callback.
//!
//! Ours rather than a crate's because the adapter decodes every request's header block
//! on faultd's hot path: loona-hpack (used here before) builds a two-level `HashMap` of
//! the whole Huffman code for every Huffman string and then decodes bit by bit through
//! it, which cost ~40 µs of a ~100 µs `Status` (`bench-api`); httlib-hpack drains its
//! input `Vec` field by field, quadratic in a block's length. This one decodes
//! Huffman strings with the canonical code's per-length ranges (no tables built per
//! call), hands out raw strings as slices of the block, and allocates only for entries
//! added to the dynamic table. loona-hpack stays as a test dependency: the tests check
//! this decoder against its encoder, and against RFC 7541 Appendix C.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The block ends inside a field.
    Truncated,
    /// An integer longer than the decoder accepts (2^28 and more).
    IntegerOverflow,
    /// Index 0, or past the static and dynamic tables.
    BadIndex(usize),
    /// A Huffman string with EOS in it, or padding that is not a prefix of EOS (or is
    /// longer than 7 bits).
    Huffman,
    /// A dynamic table size update above what the decoder allows.
    TableSize(usize),
}

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The code length of each symbol (0-255, then EOS) in RFC 7541 Appendix B. The code
/// is canonical (codes of one length are consecutive, in symbol order, and each length
/// continues where the shorter one ended), so the lengths define it; a test checks the
/// codes they give against the appendix's.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

const MAX_CODE_LENGTH: usize = 30;
const EOS: u16 = 256;

/// The canonical code by length: codes of length `l` are `first[l]..first[l] + count[l]`
/// and decode to `symbols[offset[l] + (code - first[l])]`.
struct Canonical {
    first: [u32; MAX_CODE_LENGTH + 1],
    count: [u32; MAX_CODE_LENGTH + 1],
    offset: [u16; MAX_CODE_LENGTH + 1],
    symbols: [u16; 257],
}

fn canonical() -> &'static Canonical {
    static CODE: OnceLock<Canonical> = OnceLock::new();
    CODE.get_or_init(|| {
        let mut c = Canonical {
            first: [0; MAX_CODE_LENGTH + 1],
            count: [0; MAX_CODE_LENGTH + 1],
            offset: [0; MAX_CODE_LENGTH + 1],
            symbols: [0; 257],
        };
        let mut order: Vec<u16> = (0..257).collect();
        order.sort_by_key(|&s| (CODE_LENGTHS[usize::from(s)], s));
        for &l in &CODE_LENGTHS {
            c.count[usize::from(l)] += 1;
        }
        let (mut code, mut at) = (0u32, 0u16);
        for l in 1..=MAX_CODE_LENGTH {
            code <<= 1;
            c.first[l] = code;
            c.offset[l] = at;
            code += c.count[l];
            at += c.count[l] as u16;
        }
        c.symbols.copy_from_slice(&order);
        c
    })
}

/// The canonical code of `symbol` and its length (for tests and the encoder in them).
#[cfg(test)]
pub fn code_of(symbol: u16) -> (u32, u8) {
    let c = canonical();
    let len = CODE_LENGTHS[usize::from(symbol)];
    let l = usize::from(len);
    let rank = c.symbols[usize::from(c.offset[l])..]
        .iter()
        .position(|&s| s == symbol)
        .expect("every symbol has a code");
    (c.first[l] + rank as u32, len)
}

/// Decodes a Huffman-coded string (RFC 7541 §5.2) into `out` (cleared first).
pub fn huffman_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let c = canonical();
    out.clear();
    out.reserve(input.len() * 8 / 5 + 1);
    let (mut code, mut len) = (0u32, 0usize);
    for &byte in input {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            let rank = code.wrapping_sub(c.first[len]);
            if rank < c.count[len] {
                let s = c.symbols[usize::from(c.offset[len]) + rank as usize];
                if s == EOS {
                    return Err(Error::Huffman);
                }
                out.push(s as u8);
                code = 0;
                len = 0;
            } else if len == MAX_CODE_LENGTH {
                // Only EOS is 30 bits long and it is a leaf: unreachable for a complete
                // code, kept so a bad table could never index past the arrays.
                return Err(Error::Huffman);
            }
        }
    }
    // Padding: at most 7 bits, all ones (the most significant bits of EOS).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(Error::Huffman);
    }
    Ok(())
}

/// An integer with an `n`-bit prefix (RFC 7541 §5.1) at the start of `b`: the value and
/// the bytes it took.
fn integer(b: &[u8], n: u32) -> Result<(usize, usize), Error> {
    let mask = (1usize << n) - 1;
    let first = *b.first().ok_or(Error::Truncated)?;
    let mut v = usize::from(first) & mask;
    if v < mask {
        return Ok((v, 1));
    }
    let mut shift = 0;
    for (i, &byte) in b[1..].iter().enumerate() {
        if shift > 21 {
            return Err(Error::IntegerOverflow);
        }
        v += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok((v, i + 2));
        }
    }
    Err(Error::Truncated)
}

/// A string literal at the start of `b`: raw, a slice of `b`; Huffman-coded, decoded
/// into `scratch`. Returns whether it was Huffman-coded and the bytes it took.
fn string<'b>(b: &'b [u8], scratch: &mut Vec<u8>) -> Result<(Option<&'b [u8]>, usize), Error> {
    let huffman = b.first().ok_or(Error::Truncated)? & 0x80 != 0;
    let (len, n) = integer(b, 7)?;
    let raw = b.get(n..n + len).ok_or(Error::Truncated)?;
    if huffman {
        huffman_decode(raw, scratch)?;
        Ok((None, n + len))
    } else {
        Ok((Some(raw), n + len))
    }
}

/// A scratch buffer back for the next string: one huge string must not keep a
/// connection's memory up for good.
fn keep_small(mut v: Vec<u8>) -> Vec<u8> {
    const KEEP: usize = 16 << 10;
    if v.capacity() > KEEP {
        v.clear();
        v.shrink_to(KEEP);
    }
    v
}

/// A dynamic table entry: name, value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// One connection's decoder: the dynamic table follows the peer's encoder.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first (index 62 is `table[0]`).
    table: VecDeque<Entry>,
    /// The table's size as RFC 7541 §4.1 counts it (32 bytes per entry added).
    size: usize,
    /// The table's current maximum (4096 until the encoder updates it).
    max: usize,
    /// The largest maximum an update may set.
    allowed: usize,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(4096)
    }
}

impl Decoder {
    /// A decoder whose table size updates may go up to `allowed` bytes.
    pub fn new(allowed: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: 4096.min(allowed),
            allowed,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// The dynamic table's size in RFC 7541's accounting (for tests).
    #[cfg(test)]
    pub fn table_size(&self) -> usize {
        self.size
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), Error> {
        match index {
            0 => Err(Error::BadIndex(0)),
            1..=61 => Ok(STATIC_TABLE[index - 1]),
            _ => self
                .table
                .get(index - 62)
                .map(|(n, v)| (&n[..], &v[..]))
                .ok_or(Error::BadIndex(index)),
        }
    }

    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            let (n, v) = self
                .table
                .pop_back()
                .expect("a table over 0 bytes has entries");
            self.size -= n.len() + v.len() + 32;
        }
    }

    fn insert(&mut self, name: Box<[u8]>, value: Box<[u8]>) {
        let size = name.len() + value.len() + 32;
        if size > self.max {
            // RFC 7541 §4.4: an entry larger than the table empties it.
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max - size);
        self.size += size;
        self.table.push_front((name, value));
    }

    /// Decodes one header block, calling `field(name, value)` for each field in order.
    /// On an error the table may have changed: the connection cannot be followed any
    /// further.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), Error> {
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                // §6.1 indexed field.
                let (index, n) = integer(block, 7)?;
                let (name, value) = self.entry(index)?;
                field(name, value);
                block = &block[n..];
                continue;
            }
            if first & 0xe0 == 0x20 {
                // §6.3 dynamic table size update.
                let (max, n) = integer(block, 5)?;
                if max > self.allowed {
                    return Err(Error::TableSize(max));
                }
                self.max = max;
                self.evict_to(max);
                block = &block[n..];
                continue;
            }
            // §6.2 literals: with incremental indexing (01), without indexing (0000),
            // never indexed (0001).
            let indexing = first & 0xc0 == 0x40;
            let (index, mut at) = integer(block, if indexing { 6 } else { 4 })?;
            let mut name_scratch = std::mem::take(&mut self.name);
            let mut value_scratch = std::mem::take(&mut self.value);
            let res = (|| {
                let name: &[u8] = if index == 0 {
                    let (raw, n) = string(&block[at..], &mut name_scratch)?;
                    at += n;
                    raw.unwrap_or(&name_scratch)
                } else {
                    self.entry(index)?.0
                };
                let (raw, n) = string(&block[at..], &mut value_scratch)?;
                at += n;
                let value = raw.unwrap_or(&value_scratch);
                field(name, value);
                Ok::<_, Error>(indexing.then(|| (Box::from(name), Box::from(value))))
            })();
            self.name = keep_small(name_scratch);
            self.value = keep_small(value_scratch);
            if let Some((name, value)) = res? {
                self.insert(name, value);
            }
            block = &block[at..];
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "hpack_tests.rs"]
mod tests;
