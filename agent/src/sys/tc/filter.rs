//! Traffic selection as u32 filters (iproute2's `tc/f_u32.c` key packing) and the
//! mirred redirect used for ingress faults. Encoding goes through netlink-packet-route's
//! `TcFilterU32Option` / `TcU32Selector` / `TcActionMirror`, which encode these
//! correctly (checked against iproute2's bytes in the golden tests).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rtnetlink::packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirrorOption, TcActionOption,
    TcActionType, TcFilterU32Option, TcHandle, TcMirror, TcMirrorActionType, TcU32Key,
    TcU32Selector, TcU32SelectorFlags,
};

use rtnetlink::packet_core::DefaultNla;

use super::error::NetError;

/// An address prefix, IPv4 or IPv6 (`10.0.0.0/8`, `2001:db8::/32`, or a bare address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    fn max_len(addr: &IpAddr) -> u8 {
        if addr.is_ipv4() { 32 } else { 128 }
    }
}

impl FromStr for Cidr {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = |why: &str| NetError::invalid("cidr", format!("{s:?}: {why}"));
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad("not an IPv4 or IPv6 address"))?;
        let max = Cidr::max_len(&addr);
        let prefix_len = match l {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| bad(&format!("prefix length must be 0..={max}")))?,
        };
        Ok(Cidr { addr, prefix_len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// An inclusive port range (`80` or `1000-2000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = || {
            NetError::invalid(
                "port",
                format!("{s:?}: expected PORT or FIRST-LAST with FIRST <= LAST"),
            )
        };
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

impl PortRange {
    /// The range as (value, mask) blocks, each a power-of-two size aligned to its size:
    /// what one u32 key can match. `1000-2000` gives 8 blocks; a single port one.
    pub fn blocks(&self) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        let mut lo = self.first as u32;
        let hi = self.last as u32;
        while lo <= hi {
            // Largest block starting at lo that is aligned and stays within hi.
            let mut size = if lo == 0 {
                1 << 16
            } else {
                lo & lo.wrapping_neg()
            };
            while lo + size - 1 > hi {
                size >>= 1;
            }
            out.push((lo as u16, (0x1_0000 - size) as u16));
            lo += size;
        }
        out
    }
}

/// IP protocols a selection can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpProto {
    Tcp,
    Udp,
    /// ICMP for IPv4 filters, ICMPv6 for IPv6 filters.
    Icmp,
}

impl IpProto {
    fn number(self, v6: bool) -> u8 {
        match (self, v6) {
            (IpProto::Tcp, _) => 6,
            (IpProto::Udp, _) => 17,
            (IpProto::Icmp, false) => 1,
            (IpProto::Icmp, true) => 58,
        }
    }
}

impl FromStr for IpProto {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        match s {
            "tcp" => Ok(IpProto::Tcp),
            "udp" => Ok(IpProto::Udp),
            "icmp" => Ok(IpProto::Icmp),
            _ => Err(NetError::invalid(
                "protocol",
                format!("{s:?}: expected tcp, udp or icmp"),
            )),
        }
    }
}

/// Which packets a fault applies to. Several `dst` (or `src`) prefixes are
/// alternatives; the fields are combined with AND. An empty selection means the whole
/// interface.
///
/// Ports are matched at the fixed offsets iproute2's `match ip dport` uses (a 20-byte
/// IPv4 header, no IPv6 extension headers), so give a protocol with ports: without one,
/// the same bytes of other protocols' headers are compared too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub dst: Vec<Cidr>,
    pub src: Vec<Cidr>,
    pub dport: Option<PortRange>,
    pub sport: Option<PortRange>,
    pub protocol: Option<IpProto>,
}

/// Ethernet protocol numbers as `tcmsg.tcm_info` wants them (host order here; the
/// message builder converts).
pub const ETH_P_ALL: u16 = 0x0003;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;

/// One u32 filter: the ethernet protocol it is attached for and its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct U32Match {
    /// ETH_P_IP or ETH_P_IPV6 (or ETH_P_ALL for a match-all).
    pub protocol: u16,
    pub keys: Vec<TcU32Key>,
}

/// The generic action's kind (`act_gact`), its parameters attribute and the verdict
/// that drops (`include/uapi/linux/tc_act/tc_gact.h`, `pkt_cls.h`).
pub const GACT: &str = "gact";
pub const TCA_GACT_PARMS: u16 = 2;
pub const TC_ACT_SHOT: u32 = 2;

/// At most this many filters per fault (the product of prefixes and port blocks).
pub const MAX_FILTERS: usize = 256;

/// iproute2's `pack_key`: merge into an existing key at the same offset, else append.
fn pack(keys: &mut Vec<TcU32Key>, val: u32, mask: u32, off: i32) {
    let val = val & mask;
    if let Some(k) = keys.iter_mut().find(|k| k.off == off && k.offmask == 0) {
        k.val |= val;
        k.mask |= mask;
        return;
    }
    let mut k = TcU32Key::default();
    k.val = val;
    k.mask = mask;
    k.off = off;
    keys.push(k);
}

fn pack_prefix(keys: &mut Vec<TcU32Key>, c: &Cidr, off: i32) {
    let bytes = match c.addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let plen = c.prefix_len as usize;
    for (w, chunk) in bytes.chunks(4).enumerate() {
        let start = w * 32;
        if start >= plen {
            break;
        }
        let bits = (plen - start).min(32);
        let mask = if bits == 32 {
            u32::MAX
        } else {
            !(u32::MAX >> bits)
        };
        let val = u32::from_be_bytes(chunk.try_into().expect("4 bytes"));
        pack(keys, val, mask, off + 4 * w as i32);
    }
}

/// iproute2's pack_key16/pack_key8 for a field at byte offset `off`.
pub(super) fn pack_field(keys: &mut Vec<TcU32Key>, val: u32, mask: u32, off: i32, width_bits: u32) {
    let shift = 32 - width_bits - 8 * (off as u32 & 3);
    pack(keys, val << shift, mask << shift, off & !3);
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.dst.is_empty()
            && self.src.is_empty()
            && self.dport.is_none()
            && self.sport.is_none()
            && self.protocol.is_none()
    }

    /// The same flows seen from the other end: destination and source swapped (prefixes
    /// and ports). The ingress half of a fault in both directions uses it, so `--dst N`
    /// cuts the packets to N and the packets from N.
    pub fn mirrored(&self) -> Selection {
        Selection {
            dst: self.src.clone(),
            src: self.dst.clone(),
            dport: self.sport,
            sport: self.dport,
            protocol: self.protocol,
        }
    }

    /// The u32 filters that together select exactly the matching packets (their union).
    /// Keys appear in the order dst, src, protocol, sport, dport, merged as iproute2
    /// merges them.
    pub fn matches(&self) -> Result<Vec<U32Match>, NetError> {
        if self.is_empty() {
            return Ok(vec![]);
        }
        let any_v4 = self.dst.iter().chain(&self.src).any(|c| c.addr.is_ipv4());
        let any_v6 = self.dst.iter().chain(&self.src).any(|c| c.addr.is_ipv6());
        let families: Vec<bool> = match (any_v4, any_v6) {
            (false, false) => vec![false, true],
            (true, false) => vec![false],
            (false, true) => vec![true],
            (true, true) => vec![false, true],
        };
        let sports = self
            .sport
            .map(|p| p.blocks().into_iter().map(Some).collect())
            .unwrap_or(vec![None]);
        let dports = self
            .dport
            .map(|p| p.blocks().into_iter().map(Some).collect())
            .unwrap_or(vec![None]);
        let mut out = Vec::new();
        for v6 in families {
            let of_family = |v: &Vec<Cidr>| -> Vec<Option<Cidr>> {
                if v.is_empty() {
                    vec![None]
                } else {
                    v.iter()
                        .filter(|c| c.addr.is_ipv6() == v6)
                        .copied()
                        .map(Some)
                        .collect()
                }
            };
            let dsts = of_family(&self.dst);
            let srcs = of_family(&self.src);
            let (src_off, dst_off, proto_off, ports_off) =
                if v6 { (8, 24, 6, 40) } else { (12, 16, 9, 20) };
            for d in &dsts {
                for s in &srcs {
                    for sp in &sports {
                        for dp in &dports {
                            let mut keys = Vec::new();
                            if let Some(d) = d {
                                pack_prefix(&mut keys, d, dst_off);
                            }
                            if let Some(s) = s {
                                pack_prefix(&mut keys, s, src_off);
                            }
                            if let Some(p) = self.protocol {
                                pack_field(&mut keys, p.number(v6) as u32, 0xff, proto_off, 8);
                            }
                            if let Some((v, m)) = sp {
                                pack_field(&mut keys, *v as u32, *m as u32, ports_off, 16);
                            }
                            if let Some((v, m)) = dp {
                                pack_field(&mut keys, *v as u32, *m as u32, ports_off + 2, 16);
                            }
                            out.push(U32Match {
                                protocol: if v6 { ETH_P_IPV6 } else { ETH_P_IP },
                                keys,
                            });
                            if out.len() > MAX_FILTERS {
                                return Err(NetError::invalid(
                                    "selection",
                                    format!(
                                        "it needs more than {MAX_FILTERS} u32 filters; use fewer prefixes or narrower port ranges"
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

impl U32Match {
    /// `match u32 0 0`: every packet.
    pub fn all() -> U32Match {
        let mut k = TcU32Key::default();
        k.val = 0;
        k.mask = 0;
        U32Match {
            protocol: ETH_P_ALL,
            keys: vec![k],
        }
    }

    fn selector(&self) -> TcU32Selector {
        let mut sel = TcU32Selector::default();
        sel.flags = TcU32SelectorFlags::Terminal;
        sel.nkeys = self.keys.len() as u8;
        sel.keys = self.keys.clone();
        sel
    }

    /// Options of `u32 match ... flowid CLASSID`.
    pub fn classify(&self, classid: u32) -> Vec<TcFilterU32Option> {
        vec![
            TcFilterU32Option::ClassId(TcHandle::from(classid)),
            TcFilterU32Option::Selector(self.selector()),
        ]
    }

    /// Options of `u32 match ... action drop` (a gact action with `TC_ACT_SHOT`): the
    /// packet is dropped at classification, before any queue (a blackhole).
    pub fn drop(&self) -> Vec<TcFilterU32Option> {
        // struct tc_gact { index, capab, action, refcnt, bindcnt }, host order.
        let mut parms = Vec::with_capacity(20);
        for v in [0u32, 0, TC_ACT_SHOT, 0, 0] {
            parms.extend_from_slice(&v.to_ne_bytes());
        }
        let mut act = TcAction::default();
        act.tab = 1;
        act.attributes = vec![
            TcActionAttribute::Kind(GACT.into()),
            TcActionAttribute::Options(vec![TcActionOption::Other(DefaultNla::new(
                TCA_GACT_PARMS,
                parms,
            ))]),
        ];
        vec![
            TcFilterU32Option::Action(vec![act]),
            TcFilterU32Option::Selector(self.selector()),
        ]
    }

    /// Options of `u32 match ... action mirred egress redirect dev IFB`.
    pub fn redirect(&self, to_ifindex: u32) -> Vec<TcFilterU32Option> {
        let mut generic = TcActionGeneric::default();
        generic.action = TcActionType::Stolen;
        let mut mirror = TcMirror::default();
        mirror.generic = generic;
        mirror.eaction = TcMirrorActionType::EgressRedir;
        mirror.ifindex = to_ifindex;
        let mut act = TcAction::default();
        act.tab = 1;
        act.attributes = vec![
            TcActionAttribute::Kind("mirred".into()),
            TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
                mirror,
            ))]),
        ];
        vec![
            TcFilterU32Option::Action(vec![act]),
            TcFilterU32Option::Selector(self.selector()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_blocks_cover_exactly() {
        for (a, b) in [
            (80, 80),
            (1000, 2000),
            (0, 65535),
            (1, 1),
            (65535, 65535),
            (5296, 5311),
            (1, 65534),
        ] {
            let r = PortRange { first: a, last: b };
            let blocks = r.blocks();
            let mut covered = Vec::new();
            for (v, m) in &blocks {
                let size = (!*m as u32 & 0xffff) + 1;
                assert_eq!(v & !m, 0, "block {v}/{m:#x} is aligned");
                covered.extend((*v as u32)..(*v as u32 + size));
            }
            let want: Vec<u32> = (a as u32..=b as u32).collect();
            assert_eq!(covered, want, "{a}-{b}");
        }
        assert_eq!(
            PortRange {
                first: 80,
                last: 80
            }
            .blocks(),
            vec![(80, 0xffff)]
        );
        assert_eq!(
            PortRange {
                first: 1000,
                last: 2000
            }
            .blocks()
            .len(),
            8
        );
    }

    #[test]
    fn parse_inputs() {
        assert_eq!("10.0.0.0/8".parse::<Cidr>().unwrap().prefix_len, 8);
        assert_eq!("2001:db8::1".parse::<Cidr>().unwrap().prefix_len, 128);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert_eq!(
            "1000-2000".parse::<PortRange>().unwrap(),
            PortRange {
                first: 1000,
                last: 2000
            }
        );
        assert!("2000-1000".parse::<PortRange>().is_err());
        assert!("70000".parse::<PortRange>().is_err());
        assert!("sctp".parse::<IpProto>().is_err());
    }

    #[test]
    fn selection_cross_product() {
        let s = Selection {
            dst: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            dport: Some("80-81".parse().unwrap()),
            protocol: Some(IpProto::Tcp),
            ..Default::default()
        };
        let m = s.matches().unwrap();
        // one v4 and one v6 prefix, one port block (80/0xfffe)
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].protocol, ETH_P_IP);
        assert_eq!(m[1].protocol, ETH_P_IPV6);
        assert!(Selection::default().matches().unwrap().is_empty());
        // ports without prefixes: both families
        let p = Selection {
            dport: Some("53".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(p.matches().unwrap().len(), 2);
    }
}
