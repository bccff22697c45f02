//! Whole netlink requests (header + tcmsg + attributes), built without a socket so the
//! golden tests can compare them with what `tc` sends.

use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::tc::{TcAttribute, TcFilterU32Option, TcHandle, TcMessage, TcOption};

const TCA_OPTIONS: u16 = 2;

/// TC_H_ROOT.
pub const ROOT: u32 = 0xffff_ffff;
/// TC_H_INGRESS (the ingress qdisc's parent).
pub const INGRESS_PARENT: u32 = 0xffff_fff1;
/// The ingress qdisc's handle, `ffff:`.
pub const INGRESS_HANDLE: u32 = 0xffff_0000;

/// How a NEW request treats an existing object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `tc ... add`: NLM_F_CREATE | NLM_F_EXCL.
    Add,
    /// `tc ... replace`: NLM_F_CREATE | NLM_F_REPLACE.
    Replace,
}

impl Mode {
    fn flags(self) -> u16 {
        NLM_F_REQUEST
            | NLM_F_ACK
            | match self {
                Mode::Add => NLM_F_CREATE | NLM_F_EXCL,
                Mode::Replace => NLM_F_CREATE | NLM_F_REPLACE,
            }
    }
}

fn tcmsg(ifindex: u32, parent: u32, handle: u32, info: u32) -> TcMessage {
    let mut m = TcMessage::default();
    m.header.index = ifindex as i32;
    m.header.parent = TcHandle::from(parent);
    m.header.handle = TcHandle::from(handle);
    m.header.info = info;
    m
}

fn finish(payload: RouteNetlinkMessage, flags: u16) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut nl = NetlinkMessage::from(payload);
    nl.header.flags = flags;
    nl.finalize();
    nl
}

/// RTM_NEWQDISC with `kind` and a raw TCA_OPTIONS payload (the shape netem, prio and
/// tbf need; `TcAttribute::Options` would nest one level too deep).
pub fn new_qdisc(
    mode: Mode,
    ifindex: u32,
    parent: u32,
    handle: u32,
    kind: &str,
    options: Option<Vec<u8>>,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = tcmsg(ifindex, parent, handle, 0);
    m.attributes.push(TcAttribute::Kind(kind.into()));
    if let Some(o) = options {
        m.attributes
            .push(TcAttribute::Other(DefaultNla::new(TCA_OPTIONS, o)));
    }
    finish(RouteNetlinkMessage::NewQueueDiscipline(m), mode.flags())
}

/// RTM_DELQDISC: `tc qdisc del dev X root` (parent ROOT, handle 0) or a given handle.
pub fn del_qdisc(ifindex: u32, parent: u32, handle: u32) -> NetlinkMessage<RouteNetlinkMessage> {
    let m = tcmsg(ifindex, parent, handle, 0);
    finish(
        RouteNetlinkMessage::DelQueueDiscipline(m),
        NLM_F_REQUEST | NLM_F_ACK,
    )
}

/// RTM_GETQDISC dump of every qdisc in the namespace (`tc qdisc show`).
pub fn dump_qdiscs() -> NetlinkMessage<RouteNetlinkMessage> {
    finish(
        RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
}

/// RTM_GETTFILTER dump of the filters under `parent` on `ifindex` (`tc filter show`).
pub fn dump_filters(ifindex: u32, parent: u32) -> NetlinkMessage<RouteNetlinkMessage> {
    let m = tcmsg(ifindex, parent, 0, 0);
    finish(
        RouteNetlinkMessage::GetTrafficFilter(m),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
}

/// RTM_NEWTFILTER for a u32 filter:
/// `tc filter add dev X parent P protocol PROTO prio PRIO u32 ...`.
/// `protocol` is an ETH_P_* value in host order.
pub fn new_u32_filter(
    mode: Mode,
    ifindex: u32,
    parent: u32,
    prio: u16,
    protocol: u16,
    options: Vec<TcFilterU32Option>,
) -> NetlinkMessage<RouteNetlinkMessage> {
    // tcm_info: priority in the upper 16 bits, protocol in network order below.
    let info = ((prio as u32) << 16) | protocol.to_be() as u32;
    let mut m = tcmsg(ifindex, parent, 0, info);
    m.attributes.push(TcAttribute::Kind("u32".into()));
    m.attributes.push(TcAttribute::Options(
        options.into_iter().map(TcOption::U32).collect(),
    ));
    finish(RouteNetlinkMessage::NewTrafficFilter(m), mode.flags())
}

/// RTM_GETLINK of the interface named `name` (`ip link show NAME`).
pub fn get_link_by_name(name: &str) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.into()));
    finish(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST | NLM_F_ACK)
}

/// RTM_GETLINK of the interface with index `ifindex`.
pub fn get_link_by_index(ifindex: u32) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    finish(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST | NLM_F_ACK)
}

/// RTM_GETLINK dump of every interface in the namespace (`ip link show`).
pub fn dump_links() -> NetlinkMessage<RouteNetlinkMessage> {
    finish(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
}

/// RTM_NEWLINK creating the device `link` describes (`ip link add ...`), failing if
/// its name is taken.
pub fn new_link(link: LinkMessage) -> NetlinkMessage<RouteNetlinkMessage> {
    finish(RouteNetlinkMessage::NewLink(link), Mode::Add.flags())
}

/// RTM_SETLINK changing an existing device (`ip link set ...`).
pub fn set_link(link: LinkMessage) -> NetlinkMessage<RouteNetlinkMessage> {
    finish(
        RouteNetlinkMessage::SetLink(link),
        NLM_F_REQUEST | NLM_F_ACK,
    )
}

/// RTM_DELLINK of the interface with index `ifindex` (`ip link del`).
pub fn del_link(ifindex: u32) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    finish(RouteNetlinkMessage::DelLink(m), NLM_F_REQUEST | NLM_F_ACK)
}

/// The raw bytes of a request (for the golden tests).
pub fn to_bytes(m: &NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}
