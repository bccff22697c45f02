//! Protected traffic: the flows every network fault steers past itself, so that no
//! fault can cut an operator's SSH session or a controller's connection to the agent.
//!
//! An [`Exempt`] becomes u32 filters on faultline's prio root, ahead of the fault's own
//! (lower `prio` numbers are consulted first), that classify protected packets into an
//! ordinary band ([`EXEMPT_BAND`], `fa17:2`) instead of the fault band (`fa17:4`):
//!
//! - a protected port P, both ways: `match ip sport P 0xffff` and `match ip dport P
//!   0xffff` (and the `ip6` twins), so the replies of a session that either end opened
//!   are spared too;
//! - a protected prefix C: `match ip dst C` and `match ip src C`;
//! - a protected flow A:P (the TCP caller of an Inject): `match ip dst A/32 match ip
//!   dport P` (packets to it) and `match ip src A/32 match ip sport P` (packets from it).
//!
//! - address resolution, whenever anything is protected: every ARP packet (`protocol
//!   arp ... match u32 0 0`) and IPv6 neighbour discovery (ICMPv6 types 133-137:
//!   `match ip6 protocol 58 0xff match u8 TYPE MASK at 40`). Without them a protected
//!   flow dies once the neighbour cache entries expire (tens of seconds), because a
//!   whole-interface fault would drop the ARP replies and neighbour advertisements.
//!
//! Ports are matched without a protocol, at the offsets iproute2's `match ip dport` uses:
//! TCP and UDP alike. Other protocols whose header bytes happen to hold the same value
//! at that offset are spared too, which errs on the side of safety.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use rtnetlink::packet_route::tc::TcU32Key;

use super::error::NetError;
use super::filter::{Cidr, ETH_P_ARP, ETH_P_IPV6, PortRange, Selection, U32Match, pack_field};

/// The prio band (1-based class minor) protected flows are steered into: `fa17:2`, the
/// band the priomap gives ordinary traffic.
pub const EXEMPT_BAND: u16 = 2;
/// Filter priorities on faultline's prio root: exemptions first (IPv4, IPv6), then the
/// fault's selection (IPv4, IPv6), then the match-all of a whole-interface fault.
pub const PRIO_EXEMPT_V4: u16 = 1;
pub const PRIO_EXEMPT_V6: u16 = 2;
pub const PRIO_EXEMPT_ARP: u16 = 3;
pub const PRIO_SELECT_V4: u16 = 4;
pub const PRIO_SELECT_V6: u16 = 5;
pub const PRIO_ALL: u16 = 6;

/// Traffic no fault may touch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exempt {
    /// Source or destination port, TCP or UDP, IPv4 or IPv6.
    pub ports: Vec<u16>,
    /// Source or destination address.
    pub cidrs: Vec<Cidr>,
    /// One peer's address and port (to it and from it).
    pub flows: Vec<SocketAddr>,
}

impl Exempt {
    /// Nothing protected: a fault applies exactly as selected.
    pub fn none() -> Exempt {
        Exempt::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.cidrs.is_empty() && self.flows.is_empty()
    }

    /// The u32 matches whose union is the protected traffic (each classifies into
    /// [`EXEMPT_BAND`]). Duplicates (a port listed twice) are dropped.
    pub fn matches(&self) -> Result<Vec<U32Match>, NetError> {
        let port = |p: u16| Some(PortRange { first: p, last: p });
        let mut sels = Vec::new();
        for &p in &self.ports {
            sels.push(Selection {
                sport: port(p),
                ..Default::default()
            });
            sels.push(Selection {
                dport: port(p),
                ..Default::default()
            });
        }
        for &c in &self.cidrs {
            sels.push(Selection {
                dst: vec![c],
                ..Default::default()
            });
            sels.push(Selection {
                src: vec![c],
                ..Default::default()
            });
        }
        for f in &self.flows {
            let host = host_cidr(f.ip());
            sels.push(Selection {
                dst: vec![host],
                dport: port(f.port()),
                ..Default::default()
            });
            sels.push(Selection {
                src: vec![host],
                sport: port(f.port()),
                ..Default::default()
            });
        }
        let mut out: Vec<U32Match> = Vec::new();
        for s in sels {
            for m in s.matches()? {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        if !out.is_empty() {
            out.extend(neighbour_resolution());
        }
        Ok(out)
    }
}

/// ARP, and ICMPv6 neighbour discovery (router solicitation 133, advertisement 134,
/// neighbour solicitation 135, advertisement 136, redirect 137) as three type blocks:
/// the traffic a protected flow needs to keep its neighbour entries alive.
fn neighbour_resolution() -> Vec<U32Match> {
    let mut out = vec![U32Match {
        protocol: ETH_P_ARP,
        ..U32Match::all()
    }];
    for (ty, mask) in [(133u32, 0xffu32), (134, 0xfe), (136, 0xfe)] {
        let mut keys: Vec<TcU32Key> = Vec::new();
        pack_field(&mut keys, 58, 0xff, 6, 8);
        pack_field(&mut keys, ty, mask, 40, 8);
        out.push(U32Match {
            protocol: ETH_P_IPV6,
            keys,
        });
    }
    out
}

/// The /32 (or /128) of one address; an IPv4-mapped IPv6 address (a dual-stack
/// listener's view of an IPv4 peer) as the IPv4 address the packets carry.
pub fn host_cidr(a: IpAddr) -> Cidr {
    let addr = a.to_canonical();
    Cidr {
        addr,
        prefix_len: if addr.is_ipv4() { 32 } else { 128 },
    }
}

impl fmt::Display for Exempt {
    /// `ports 22, 7443; 10.0.0.0/8; flow 10.1.2.3:50522`, or `nothing`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.ports.is_empty() {
            let p: Vec<String> = self.ports.iter().map(|p| p.to_string()).collect();
            parts.push(format!(
                "port{} {}",
                if p.len() == 1 { "" } else { "s" },
                p.join(", ")
            ));
        }
        for c in &self.cidrs {
            parts.push(c.to_string());
        }
        for a in &self.flows {
            parts.push(format!(
                "flow {}",
                SocketAddr::new(a.ip().to_canonical(), a.port())
            ));
        }
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::filter::{ETH_P_IP, ETH_P_IPV6};
    use super::*;

    #[test]
    fn a_port_is_spared_both_ways_in_both_families() {
        let e = Exempt {
            ports: vec![22, 22],
            ..Default::default()
        };
        let m = e.matches().unwrap();
        // sport and dport, IPv4 and IPv6; the duplicate port adds nothing; then ARP and
        // the three neighbour discovery blocks.
        assert_eq!(m.len(), 4 + 4);
        assert_eq!(m[4].protocol, ETH_P_ARP);
        let m = &m[..4];
        assert_eq!(m.iter().filter(|m| m.protocol == ETH_P_IP).count(), 2);
        assert_eq!(m.iter().filter(|m| m.protocol == ETH_P_IPV6).count(), 2);
        assert!(m.iter().all(|m| m.keys.len() == 1));
        // sport 22 sits in the high half of the word at offset 20, dport 22 in the low.
        let v4: Vec<_> = m.iter().filter(|m| m.protocol == ETH_P_IP).collect();
        assert_eq!(
            (v4[0].keys[0].val, v4[0].keys[0].mask),
            (22 << 16, 0xffff_0000)
        );
        assert_eq!((v4[1].keys[0].val, v4[1].keys[0].mask), (22, 0xffff));
        assert_eq!(v4[0].keys[0].off, 20);
    }

    #[test]
    fn a_flow_is_spared_to_and_from_the_peer_only() {
        let e = Exempt {
            flows: vec!["[::ffff:10.1.2.3]:50522".parse().unwrap()],
            ..Default::default()
        };
        let m = e.matches().unwrap();
        // A mapped address is matched as the IPv4 address on the wire.
        assert_eq!(m.len(), 2 + 4);
        assert!(
            m[..2]
                .iter()
                .all(|m| m.protocol == ETH_P_IP && m.keys.len() == 2)
        );
        assert_eq!(e.to_string(), "flow 10.1.2.3:50522");
        let c = Exempt {
            cidrs: vec!["2001:db8::/32".parse().unwrap()],
            ports: vec![22, 7443],
            ..Default::default()
        };
        assert_eq!(c.matches().unwrap().len(), 2 * 4 + 2 + 4);
        assert_eq!(c.to_string(), "ports 22, 7443; 2001:db8::/32");
        assert_eq!(Exempt::none().to_string(), "nothing");
        assert!(Exempt::none().matches().unwrap().is_empty());
    }
}
