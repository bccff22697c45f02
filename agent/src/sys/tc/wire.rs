//! Minimal netlink attribute (NLA / rtattr) writer and reader for the option blobs that
//! netlink-packet-route does not model (netem, prio, tbf). Layout as in
//! `include/uapi/linux/netlink.h`: a 4-byte header (u16 length including the header,
//! u16 type), the payload, then padding to a multiple of 4 bytes.

/// NLA_F_NESTED, set by iproute2 on some nests (netem's TCA_NETEM_LOSS).
pub const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends attributes to a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct NlaWriter {
    buf: Vec<u8>,
}

impl NlaWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Raw bytes (a C struct that precedes the attributes, as in netem's and prio's
    /// TCA_OPTIONS).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        let pad = align4(self.buf.len()) - self.buf.len();
        self.buf.extend(std::iter::repeat_n(0, pad));
        self
    }

    /// One attribute with `payload`.
    pub fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.buf
            .extend_from_slice(&u16::try_from(len).expect("nla too long").to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.raw(payload)
    }

    /// A nested attribute whose payload is what `f` writes.
    pub fn nest(&mut self, kind: u16, f: impl FnOnce(&mut NlaWriter)) -> &mut Self {
        let mut inner = NlaWriter::new();
        f(&mut inner);
        self.attr(kind, &inner.buf)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Iterates over the attributes in `buf`: (type without flags, payload). Stops at the
/// first malformed header.
pub fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > rest.len() {
            return None;
        }
        let payload = &rest[4..len];
        rest = &rest[align4(len).min(rest.len())..];
        Some((kind, payload))
    })
}

/// Little helper to serialise C structs made of native-endian 32-bit fields.
pub fn u32s(fields: &[u32]) -> Vec<u8> {
    fields.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Reads native-endian u32 number `i` of `buf`, if present.
pub fn u32_at(buf: &[u8], i: usize) -> Option<u32> {
    let b = buf.get(i * 4..i * 4 + 4)?;
    Some(u32::from_ne_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_pads_and_iterates() {
        let mut w = NlaWriter::new();
        w.attr(1, b"abc").attr(2, &[]).nest(3 | NLA_F_NESTED, |n| {
            n.attr(4, &7u32.to_ne_bytes());
        });
        let b = w.into_bytes();
        assert_eq!(&b[..8], &[7, 0, 1, 0, b'a', b'b', b'c', 0]);
        let got: Vec<(u16, Vec<u8>)> = attrs(&b).map(|(k, p)| (k, p.to_vec())).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (1, b"abc".to_vec()));
        assert_eq!(got[1], (2, vec![]));
        assert_eq!(got[2].0, 3);
        let inner: Vec<_> = attrs(&got[2].1).collect();
        assert_eq!(inner, vec![(4, &7u32.to_ne_bytes()[..])]);
    }
}
