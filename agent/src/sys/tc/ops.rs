//! Traffic-control operations over rtnetlink, inside any network namespace.
//!
//! [`Tc`] is a netlink connection bound to one namespace. [`Tc::apply`] installs a
//! [`NetFault`] and returns the exact [`Undo`]; [`revert`] puts the interface back and
//! treats a vanished namespace or interface as already reverted.
//!
//! What gets installed (faultline never runs `tc`; these are the equivalent commands):
//!
//! - egress, no selection:
//!   `tc qdisc replace dev IF root handle fa17: netem ...`
//! - egress with a selection:
//!   `tc qdisc replace dev IF root handle fa17: prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1`,
//!   `tc qdisc add dev IF parent fa17:4 handle fa18: netem ...`,
//!   `tc filter add dev IF parent fa17: protocol ip|ipv6 prio 4|5 u32 match ... flowid fa17:4` (one per
//!   [`U32Match`]);
//! - protected traffic ([`Exempt`], not empty): the prio root above even for a
//!   whole-interface fault, with `tc filter add dev IF parent fa17: protocol ip|ipv6
//!   prio 1|2 u32 match ip sport 22 0xffff flowid fa17:2` (and the like, ARP at prio 3;
//!   see [`super::exempt`]) ahead of the selection's filters (prio 4|5), and for a
//!   whole-interface fault `tc filter add dev IF parent fa17: protocol all prio 6 u32
//!   match u32 0 0 flowid fa17:4` after them;
//! - ingress: `ip link add flifbXXXX type ifb`, `ip link set flifbXXXX up`, the egress
//!   setup above on the IFB, then `tc qdisc add dev IF handle ffff: ingress` and
//!   `tc filter add dev IF parent ffff: protocol all prio 1 u32 match u32 0 0 action
//!   mirred egress redirect dev flifbXXXX`.
//!
//! Nothing is clobbered: a root that is not a kernel default (and an ingress qdisc of
//! any kind, for ingress faults) makes `apply` fail with
//! [`NetError::ForeignRootQdisc`] before anything changes.

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_DUMP, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::tc::{
    TcActionAttribute, TcActionMirrorOption, TcActionOption, TcAttribute, TcFilterU32Option,
    TcMessage, TcOption,
};
use rtnetlink::sys::Socket;
use rtnetlink::{LinkIfb, LinkUnspec, LinkVeth};
use serde::{Deserialize, Serialize};

use super::error::NetError;
use super::exempt::{
    EXEMPT_BAND, Exempt, PRIO_ALL, PRIO_EXEMPT_ARP, PRIO_EXEMPT_V4, PRIO_EXEMPT_V6, PRIO_SELECT_V4,
    PRIO_SELECT_V6,
};
use super::filter::{ETH_P_IP, ETH_P_IPV6, GACT, Selection, TC_ACT_SHOT, TCA_GACT_PARMS, U32Match};
use super::msg::{self, INGRESS_HANDLE, INGRESS_PARENT, Mode, ROOT};
use super::netem::Netem;
use super::qdisc::{Prio, RootKind, Tbf, classify_root, handle_str};
use super::{CHILD_MAJOR, FAULT_BAND, IFB_PREFIX, ROOT_MAJOR};
use crate::sys::netns::{self, NetnsId, NetnsTarget};

/// faultline's root handle, `fa17:`.
pub const ROOT_HANDLE: u32 = (ROOT_MAJOR as u32) << 16;
/// The netem child under the prio root, `fa18:`.
pub const CHILD_HANDLE: u32 = (CHILD_MAJOR as u32) << 16;

/// Which way the fault acts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Packets the interface sends.
    #[default]
    Egress,
    /// Packets the interface receives (shaped on an IFB device).
    Ingress,
    /// Both, as one fault: the egress setup on the interface and the ingress one on an
    /// IFB device, installed and reverted together.
    Both,
}

impl Direction {
    /// `egress`, `ingress` or `both`, as the API writes it.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
            Direction::Both => "both",
        }
    }
}

/// A network fault at the sys level: where, which way, what, and for which packets.
#[derive(Clone, Debug, PartialEq)]
pub struct NetFault {
    pub iface: String,
    pub direction: Direction,
    pub netem: Netem,
    /// Empty: the whole interface.
    pub selection: Selection,
}

/// An IFB device faultline created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfbRecord {
    pub name: String,
    pub ifindex: u32,
}

/// Exactly what [`Tc::apply`] changed, enough to put it back (serialisable for the
/// journal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub netns: NetnsTarget,
    /// Identity of the namespace at apply time: a different namespace at the same path
    /// or pid later means ours is gone.
    pub netns_id: NetnsId,
    pub iface: String,
    pub ifindex: u32,
    pub direction: Direction,
    /// The kernel-default root qdisc kind that was there before ("noqueue", ...,
    /// or "none") on the device faultline shaped (the interface, or the IFB).
    pub previous_root: String,
    /// The root faultline installed: "netem" or "prio".
    pub installed_root: String,
    /// Number of u32 filters steering into the netem band (0 without a selection).
    pub filters: usize,
    /// Number of u32 filters steering protected traffic past the fault (removed with
    /// the root; counted for the record).
    #[serde(default)]
    pub exemptions: usize,
    /// For ingress faults: the IFB device (the ingress qdisc on `iface` is implied).
    pub ifb: Option<IfbRecord>,
}

/// How a revert ended. Both are success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reverted {
    /// faultline's qdiscs (and IFB) were removed; the kernel default is back.
    Restored,
    /// The namespace or interface no longer exists (a stopped container), or the root
    /// is no longer faultline's: nothing left to undo. Says what was missing.
    AlreadyGone(String),
}

/// One qdisc from a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QdiscInfo {
    pub ifindex: u32,
    pub kind: String,
    pub handle: u32,
    pub parent: u32,
    /// Raw TCA_OPTIONS payload for kinds netlink-packet-route does not model (netem,
    /// prio, tbf, ...); `None` otherwise.
    pub options: Option<Vec<u8>>,
}

/// One u32 filter from a dump (enough to verify and to sweep).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterInfo {
    pub parent: u32,
    pub prio: u16,
    /// ETH_P_* in host order.
    pub protocol: u16,
    pub kind: String,
    pub classid: Option<u32>,
    pub keys: usize,
    /// ifindex a mirred action redirects to, if any.
    pub redirect_to: Option<u32>,
    /// A gact action drops what the filter matches (a blackhole's filter).
    pub drops: bool,
}

/// What the running kernel can do, for the agent's Status. `Err` says why not.
#[derive(Clone, Debug)]
pub struct KernelSupport {
    pub netem: Result<(), String>,
    pub prio: Result<(), String>,
    pub tbf: Result<(), String>,
    pub u32: Result<(), String>,
    pub mirred: Result<(), String>,
    pub ifb: Result<(), String>,
    /// The modules the probe found missing (`sch_netem`, `sch_prio`, `cls_u32`,
    /// `act_mirred`, `ifb`, `sch_ingress`): the kernel answered that the kind is unknown.
    pub missing: Vec<String>,
}

impl KernelSupport {
    /// The first module `fault` needs that this kernel lacks, as the error applying it
    /// would end with ([`Tc::apply`] takes the same steps in the same order), so a dry
    /// run can fail the way the inject would without touching anything.
    pub fn check(&self, fault: &NetFault) -> Result<(), NetError> {
        self.check_exempt(fault, &Exempt::none(), false)
    }

    /// [`KernelSupport::check`] for [`Tc::apply_exempt`]: protected traffic needs the
    /// prio root and u32 even for a whole-interface fault.
    pub fn check_exempt(
        &self,
        fault: &NetFault,
        exempt: &Exempt,
        blackhole: bool,
    ) -> Result<(), NetError> {
        let need = |module: &str, what: &str| {
            if self.missing.iter().any(|m| m == module) {
                Err(NetError::MissingKernelModule {
                    module: module.into(),
                    what: what.into(),
                })
            } else {
                Ok(())
            }
        };
        if fault.direction != Direction::Egress {
            need("ifb", "create an IFB device for ingress shaping")?;
        }
        if blackhole {
            need("sch_prio", "install a prio root qdisc")?;
            need("cls_u32", "add a u32 filter")?;
        } else if fault.selection.is_empty() && exempt.is_empty() {
            need("sch_netem", "install a netem root qdisc")?;
        } else if fault.selection.is_empty() {
            // A whole-interface fault is netem first to whoever asks for it; the prio
            // root that spares protected traffic comes second. (The apply installs
            // the prio root first, but the engine runs this check before any apply.)
            need("sch_netem", "install netem for the whole interface")?;
            need(
                "sch_prio",
                "install a prio root qdisc that spares protected traffic",
            )?;
            need("cls_u32", "add a u32 filter")?;
        } else {
            need("sch_prio", "install a prio root qdisc")?;
            need("sch_netem", "install netem on the prio fault band")?;
            need("cls_u32", "add a u32 filter")?;
        }
        if fault.direction != Direction::Egress {
            need("sch_ingress", "add an ingress qdisc")?;
            need("cls_u32", "add a u32 filter")?;
            need("act_mirred", "redirect ingress traffic to an IFB device")?;
        }
        Ok(())
    }
}

/// A probe's outcome for [`KernelSupport`]: the text, and a missing module noted.
fn probed(r: Result<(), NetError>, missing: &mut Vec<String>) -> Result<(), String> {
    if let Err(NetError::MissingKernelModule { module, .. }) = &r
        && !missing.contains(module)
    {
        missing.push(module.clone());
    }
    r.map_err(|e| e.to_string())
}

/// A failed request: the kernel's errno, or a socket-level failure.
#[derive(Debug)]
enum Fail {
    Errno(i32),
    Io(String),
}

fn module_for(kind: &str) -> String {
    match kind {
        "u32" => "cls_u32".into(),
        "mirred" => "act_mirred".into(),
        "gact" => "act_gact".into(),
        "ifb" => "ifb".into(),
        "veth" => "veth".into(),
        k => format!("sch_{k}"),
    }
}

/// Maps a failure of `op`. `kind` is the qdisc/classifier/action/link kind whose
/// absence an ENOENT (EOPNOTSUPP for links) means.
fn fail(op: &str, kind: Option<&str>, f: Fail) -> NetError {
    match f {
        Fail::Errno(e) if e == libc::EPERM || e == libc::EACCES => {
            NetError::Permission { op: op.into() }
        }
        Fail::Errno(e)
            if kind.is_some()
                && (e == libc::ENOENT || (kind == Some("ifb") && e == libc::EOPNOTSUPP)) =>
        {
            NetError::MissingKernelModule {
                module: module_for(kind.unwrap_or_default()),
                what: op.into(),
            }
        }
        Fail::Errno(e) => NetError::Kernel {
            op: op.into(),
            source: io::Error::from_raw_os_error(e),
        },
        Fail::Io(detail) => NetError::NetlinkIo {
            op: op.into(),
            detail,
        },
    }
}

fn is_gone(f: &Fail) -> bool {
    matches!(f, Fail::Errno(e) if *e == libc::ENODEV || *e == libc::ENOENT || *e == libc::EINVAL)
}

static IFB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh IFB name: `flifb` + 10 hex digits (pid and a counter), 15 bytes.
fn ifb_name() -> String {
    let n = IFB_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{IFB_PREFIX}{:05x}{:05x}",
        std::process::id() & 0xf_ffff,
        n & 0xf_ffff
    )
}

/// How long a request waits for the kernel's answer before failing (the kernel answers
/// at once; this only bounds a pathological hang of a blocked agent thread).
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The receive buffer: a dump's parts are at most 32 KiB (the kernel's cap).
const RECV_BUF: usize = 64 * 1024;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;

/// A netlink connection bound to one network namespace.
///
/// Requests are synchronous `send`/`recv` pairs on a blocking socket, made on the
/// calling thread: the kernel handles a rtnetlink request inside `sendmsg` and has the
/// answer queued when it returns (a dump's next part is built inside `recvmsg`), so
/// nothing waits on another task. The methods stay `async` for their callers.
pub struct Tc {
    /// One request at a time.
    sock: Mutex<Socket>,
    seq: AtomicU32,
    target: NetnsTarget,
}

impl std::fmt::Debug for Tc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tc").field("target", &self.target).finish()
    }
}

impl Tc {
    /// Opens a NETLINK_ROUTE socket inside `target` (created on a thread that joined
    /// the namespace).
    pub async fn connect(target: &NetnsTarget) -> Result<Tc, NetError> {
        netns::route_socket_in(target)
            .and_then(|fd| Self::from_fd(fd, target.clone()))
            .map_err(|source| NetError::Netns {
                netns: target.to_string(),
                source,
            })
    }

    fn from_fd(fd: std::os::fd::OwnedFd, target: NetnsTarget) -> io::Result<Tc> {
        use nix::sys::socket::{setsockopt, sockopt};
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0),
        )?;
        let raw = fd.into_raw_fd();
        // SAFETY: `raw` comes from an OwnedFd we just released, so the Socket becomes
        // its only owner (and closes it); it is a valid, blocking NETLINK_ROUTE socket.
        #[allow(unsafe_code)]
        let sock = unsafe { Socket::from_raw_fd(raw) };
        Ok(Tc {
            sock: Mutex::new(sock),
            seq: AtomicU32::new(0),
            target,
        })
    }

    /// The namespace this connection acts in.
    pub fn target(&self) -> &NetnsTarget {
        &self.target
    }

    /// Sends `m` and collects the answer: the messages of a dump until its end, or a
    /// request's replies until the kernel's acknowledgement (asked for on every
    /// request that is not a dump). A kernel error is [`Fail::Errno`].
    async fn request(
        &self,
        mut m: NetlinkMessage<RouteNetlinkMessage>,
    ) -> Result<Vec<RouteNetlinkMessage>, Fail> {
        let dump = m.header.flags & NLM_F_DUMP == NLM_F_DUMP;
        if !dump {
            m.header.flags |= NLM_F_ACK;
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        m.header.sequence_number = seq;
        m.finalize();
        let bytes = msg::to_bytes(&m);
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = Vec::with_capacity(RECV_BUF);
        let kernel = rtnetlink::sys::SocketAddr::new(0, 0);
        loop {
            match sock.send_to(&bytes, &kernel, 0) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fail::Io(format!("netlink send: {e}"))),
            }
        }
        let mut out = Vec::new();
        loop {
            buf.clear();
            let n = match sock.recv(&mut buf, libc::MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(Fail::Io(format!(
                        "no answer from the kernel within {} s",
                        ANSWER_TIMEOUT.as_secs()
                    )));
                }
                Err(e) => return Err(Fail::Io(format!("netlink receive: {e}"))),
            };
            if n > buf.len() {
                return Err(Fail::Io(format!(
                    "a netlink answer of {n} bytes exceeds the {RECV_BUF} byte buffer"
                )));
            }
            if let Some(end) = read_answer(&buf[..n], seq, &mut out)? {
                return end.map(|()| out);
            }
        }
    }

    /// Index of interface `iface` (`ip link show IFACE`).
    pub async fn ifindex(&self, iface: &str) -> Result<u32, NetError> {
        let unknown = || NetError::UnknownInterface {
            iface: iface.into(),
            netns: self.target.to_string(),
        };
        match self.request(msg::get_link_by_name(iface)).await {
            Ok(answers) => answers
                .into_iter()
                .find_map(|m| match m {
                    RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                    _ => None,
                })
                .ok_or_else(unknown),
            Err(Fail::Errno(e)) if e == libc::ENODEV || e == libc::ENOENT => Err(unknown()),
            Err(f) => Err(fail(&format!("look up interface {iface:?}"), None, f)),
        }
    }

    /// Name of the interface with index `ifindex`, `None` if there is none
    /// (`ip link show` by index).
    pub async fn link_name(&self, ifindex: u32) -> Result<Option<String>, NetError> {
        match self.request(msg::get_link_by_index(ifindex)).await {
            Ok(answers) => Ok(answers.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => link_name(l),
                _ => None,
            })),
            Err(f) if is_gone(&f) => Ok(None),
            Err(f) => Err(fail(&format!("look up interface index {ifindex}"), None, f)),
        }
    }

    /// Every qdisc of `ifindex` (`tc qdisc show dev IF`).
    pub async fn qdiscs(&self, ifindex: u32) -> Result<Vec<QdiscInfo>, NetError> {
        let answers = self
            .request(msg::dump_qdiscs())
            .await
            .map_err(|f| fail("dump qdiscs", None, f))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewQueueDiscipline(t) if t.header.index as u32 == ifindex => {
                    Some(qdisc_info(&t))
                }
                _ => None,
            })
            .collect())
    }

    /// The root qdisc of `ifindex`, if any (`tc qdisc show dev IF root`).
    pub async fn root_qdisc(&self, ifindex: u32) -> Result<Option<QdiscInfo>, NetError> {
        Ok(self
            .qdiscs(ifindex)
            .await?
            .into_iter()
            .find(|q| q.parent == ROOT))
    }

    /// The ingress (or clsact) qdisc of `ifindex`, if any.
    pub async fn ingress_qdisc(&self, ifindex: u32) -> Result<Option<QdiscInfo>, NetError> {
        Ok(self
            .qdiscs(ifindex)
            .await?
            .into_iter()
            .find(|q| q.parent == INGRESS_PARENT))
    }

    /// Classifies the root of `ifindex`: kernel default, ours, or foreign.
    pub async fn root_kind(&self, ifindex: u32) -> Result<RootKind, NetError> {
        let root = self.root_qdisc(ifindex).await?;
        Ok(match root {
            None => classify_root(None, 0, ROOT_MAJOR),
            Some(q) => classify_root(Some(&q.kind), q.handle, ROOT_MAJOR),
        })
    }

    /// u32 (and other) filters of `ifindex` under `parent` (`tc filter show dev IF parent P`).
    pub async fn filters(&self, ifindex: u32, parent: u32) -> Result<Vec<FilterInfo>, NetError> {
        let answers = self
            .request(msg::dump_filters(ifindex, parent))
            .await
            .map_err(|f| fail("dump filters", None, f))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewTrafficFilter(t) => filter_info(&t),
                _ => None,
            })
            .collect())
    }

    /// Whether a filter of `ifindex`'s ingress qdisc redirects to a device `to` accepts.
    pub async fn redirects_ingress_to(
        &self,
        ifindex: u32,
        to: impl Fn(u32) -> bool,
    ) -> Result<bool, NetError> {
        Ok(self
            .filters(ifindex, INGRESS_HANDLE)
            .await?
            .iter()
            .any(|f| f.redirect_to.is_some_and(&to)))
    }

    /// The netem parameters in force on `ifindex` (faultline's root netem, or its
    /// netem child under the prio root), decoded from the kernel's dump.
    pub async fn netem_state(&self, ifindex: u32) -> Result<Option<Netem>, NetError> {
        for q in self.qdiscs(ifindex).await? {
            if q.kind == "netem" && (q.handle == ROOT_HANDLE || q.handle == CHILD_HANDLE) {
                return Netem::decode(q.options.as_deref().unwrap_or_default()).map(Some);
            }
        }
        Ok(None)
    }

    /// Sends a RTM_NEWQDISC built by [`msg::new_qdisc`] for a qdisc of `kind`.
    async fn new_qdisc(
        &self,
        m: NetlinkMessage<RouteNetlinkMessage>,
        kind: &str,
        what: &str,
    ) -> Result<(), NetError> {
        self.request(m)
            .await
            .map(|_| ())
            .map_err(|f| fail(what, Some(kind), f))
    }

    /// `tc qdisc replace dev IF root handle fa17: netem ...` (no checks: see [`Tc::apply`]).
    pub async fn replace_root_netem(&self, ifindex: u32, netem: &Netem) -> Result<(), NetError> {
        let o = netem.encode()?;
        self.new_qdisc(
            msg::new_qdisc(Mode::Replace, ifindex, ROOT, ROOT_HANDLE, "netem", Some(o)),
            "netem",
            "install a netem root qdisc",
        )
        .await
    }

    /// `tc qdisc replace dev IF root handle fa17: tbf rate R burst B limit L`: used by
    /// tests and the host benchmark (the host kernel has tbf, not netem).
    pub async fn replace_root_tbf(&self, ifindex: u32, tbf: &Tbf) -> Result<(), NetError> {
        let o = tbf.encode()?;
        self.new_qdisc(
            msg::new_qdisc(Mode::Replace, ifindex, ROOT, ROOT_HANDLE, "tbf", Some(o)),
            "tbf",
            "install a tbf root qdisc",
        )
        .await
    }

    /// `tc qdisc replace dev IF root handle fa17: prio bands 4 priomap ...`,
    /// `tc qdisc add dev IF parent fa17:4 handle fa18: netem ...`, then one
    /// `tc filter add dev IF parent fa17: protocol P prio 1|2|3 u32 match ... flowid fa17:2`
    /// per `exempt` match, then one `... prio 4|5 u32 match ... flowid fa17:4` per
    /// `matches`; an empty `matches` adds a match-all (`protocol all prio 6 u32 match u32
    /// 0 0 flowid fa17:4`) so that everything else takes the fault. Removes the root again
    /// if a later step fails. `netem` None: a blackhole, no netem child, and the fault's
    /// filters drop (`... u32 match ... action drop`) instead of classifying.
    pub async fn install_prio_netem(
        &self,
        ifindex: u32,
        netem: Option<&Netem>,
        exempt: &[U32Match],
        matches: &[U32Match],
    ) -> Result<(), NetError> {
        let netem_opts = netem.map(Netem::encode).transpose()?;
        let prio = Prio::with_fault_band().encode()?;
        self.new_qdisc(
            msg::new_qdisc(
                Mode::Replace,
                ifindex,
                ROOT,
                ROOT_HANDLE,
                "prio",
                Some(prio),
            ),
            "prio",
            "install a prio root qdisc",
        )
        .await?;
        let rest = async {
            if let Some(netem_opts) = netem_opts {
                self.new_qdisc(
                    msg::new_qdisc(
                        Mode::Add,
                        ifindex,
                        ROOT_HANDLE | FAULT_BAND as u32,
                        CHILD_HANDLE,
                        "netem",
                        Some(netem_opts),
                    ),
                    "netem",
                    "install netem on the prio fault band",
                )
                .await?;
            }
            for m in exempt {
                let prio = match m.protocol {
                    ETH_P_IP => PRIO_EXEMPT_V4,
                    ETH_P_IPV6 => PRIO_EXEMPT_V6,
                    _ => PRIO_EXEMPT_ARP,
                };
                self.add_u32_filter(
                    ifindex,
                    ROOT_HANDLE,
                    prio,
                    m,
                    ROOT_HANDLE | EXEMPT_BAND as u32,
                )
                .await?;
            }
            let all = [U32Match::all()];
            let (matches, everything) = if matches.is_empty() {
                (&all[..], true)
            } else {
                (matches, false)
            };
            for m in matches {
                let prio = match (everything, m.protocol == ETH_P_IP) {
                    (true, _) => PRIO_ALL,
                    (false, true) => PRIO_SELECT_V4,
                    (false, false) => PRIO_SELECT_V6,
                };
                if netem.is_some() {
                    self.add_u32_filter(
                        ifindex,
                        ROOT_HANDLE,
                        prio,
                        m,
                        ROOT_HANDLE | FAULT_BAND as u32,
                    )
                    .await?;
                } else {
                    self.request(msg::new_u32_filter(
                        Mode::Add,
                        ifindex,
                        ROOT_HANDLE,
                        prio,
                        m.protocol,
                        m.drop(),
                    ))
                    .await
                    .map_err(|f| fail("add a u32 filter that drops (gact)", Some("gact"), f))?;
                }
            }
            Ok::<(), NetError>(())
        };
        if let Err(e) = rest.await {
            let _ = self.delete_root(ifindex).await;
            return Err(e);
        }
        Ok(())
    }

    /// `tc filter add dev IF parent PARENT protocol ip|ipv6 prio PRIO u32 match ...
    /// flowid CLASSID`.
    pub async fn add_u32_filter(
        &self,
        ifindex: u32,
        parent: u32,
        prio: u16,
        m: &U32Match,
        classid: u32,
    ) -> Result<(), NetError> {
        self.request(msg::new_u32_filter(
            Mode::Add,
            ifindex,
            parent,
            prio,
            m.protocol,
            m.classify(classid),
        ))
        .await
        .map(|_| ())
        .map_err(|f| fail("add a u32 filter", Some("u32"), f))
    }

    /// `tc qdisc del dev IF root handle fa17:`: deletes faultline's root only (the
    /// kernel refuses if the root has another handle), which restores the kernel
    /// default. `Ok(false)` if there was nothing of ours to delete.
    pub async fn delete_root(&self, ifindex: u32) -> Result<bool, NetError> {
        match self
            .request(msg::del_qdisc(ifindex, ROOT, ROOT_HANDLE))
            .await
        {
            Ok(_) => Ok(true),
            Err(f) if is_gone(&f) => Ok(false),
            Err(f) => Err(fail("delete faultline's root qdisc", None, f)),
        }
    }

    /// `tc qdisc add dev IF handle ffff: ingress`.
    pub async fn add_ingress(&self, ifindex: u32) -> Result<(), NetError> {
        self.new_qdisc(
            msg::new_qdisc(
                Mode::Add,
                ifindex,
                INGRESS_PARENT,
                INGRESS_HANDLE,
                "ingress",
                None,
            ),
            "ingress",
            "add an ingress qdisc",
        )
        .await
    }

    /// `tc qdisc del dev IF ingress`. `Ok(false)` if there was none.
    pub async fn delete_ingress(&self, ifindex: u32) -> Result<bool, NetError> {
        match self
            .request(msg::del_qdisc(ifindex, INGRESS_PARENT, INGRESS_HANDLE))
            .await
        {
            Ok(_) => Ok(true),
            Err(f) if is_gone(&f) => Ok(false),
            Err(f) => Err(fail("delete the ingress qdisc", None, f)),
        }
    }

    /// `tc filter add dev IF parent ffff: protocol all prio 1 u32 match u32 0 0 action
    /// mirred egress redirect dev IFB`.
    pub async fn redirect_ingress(&self, ifindex: u32, to_ifindex: u32) -> Result<(), NetError> {
        let all = U32Match::all();
        self.request(msg::new_u32_filter(
            Mode::Add,
            ifindex,
            INGRESS_HANDLE,
            1,
            all.protocol,
            all.redirect(to_ifindex),
        ))
        .await
        .map(|_| ())
        .map_err(|f| match f {
            Fail::Errno(e) if e == libc::ENOENT => NetError::MissingKernelModule {
                module: "cls_u32 or act_mirred".into(),
                what: "redirect ingress traffic to an IFB device".into(),
            },
            f => fail("redirect ingress traffic to an IFB device", None, f),
        })
    }

    /// `ip link add NAME type ifb && ip link set NAME up`; returns the new index.
    pub async fn create_ifb(&self, name: &str) -> Result<u32, NetError> {
        let op = format!("create IFB device {name}");
        self.request(msg::new_link(LinkIfb::new(name).build()))
            .await
            .map_err(|f| fail(&op, Some("ifb"), f))?;
        let idx = self.ifindex(name).await?;
        if let Err(f) = self
            .request(msg::set_link(LinkUnspec::new_with_index(idx).up().build()))
            .await
        {
            let _ = self.delete_link(idx).await;
            return Err(fail(&format!("set {name} up"), None, f));
        }
        Ok(idx)
    }

    /// `ip link add NAME type veth peer name PEER` (tests and probes).
    pub async fn create_veth(&self, name: &str, peer: &str) -> Result<(), NetError> {
        self.request(msg::new_link(LinkVeth::new(name, peer).build()))
            .await
            .map(|_| ())
            .map_err(|f| fail(&format!("create veth pair {name}/{peer}"), Some("veth"), f))
    }

    /// `ip link del dev INDEX`. `Ok(false)` if it was already gone.
    pub async fn delete_link(&self, ifindex: u32) -> Result<bool, NetError> {
        match self.request(msg::del_link(ifindex)).await {
            Ok(_) => Ok(true),
            Err(f) if is_gone(&f) => Ok(false),
            Err(f) => Err(fail(&format!("delete interface index {ifindex}"), None, f)),
        }
    }

    /// Installs the egress setup for `netem`/`selection` on `ifindex`, whose root must
    /// be a kernel default. Returns (previous root kind, installed root kind, filters).
    async fn install_on(
        &self,
        iface: &str,
        ifindex: u32,
        netem: Option<&Netem>,
        selection: &Selection,
        exempt: &[U32Match],
    ) -> Result<(String, String, usize), NetError> {
        let matches = selection.matches()?;
        if let Some(n) = netem {
            n.validate()?;
        }
        let previous = match self.root_qdisc(ifindex).await? {
            None => "none".to_string(),
            Some(q) => match classify_root(Some(&q.kind), q.handle, ROOT_MAJOR) {
                RootKind::KernelDefault(k) => k,
                RootKind::Ours(_) | RootKind::Foreign { .. } => {
                    return Err(NetError::ForeignRootQdisc {
                        iface: iface.into(),
                        kind: q.kind,
                        handle: handle_str(q.handle),
                        place: "root",
                    });
                }
            },
        };
        if let (Some(netem), true) = (netem, matches.is_empty() && exempt.is_empty()) {
            self.replace_root_netem(ifindex, netem).await?;
            Ok((previous, "netem".into(), 0))
        } else {
            self.install_prio_netem(ifindex, netem, exempt, &matches)
                .await?;
            Ok((previous, "prio".into(), matches.len().max(1)))
        }
    }

    /// Applies `fault` in this namespace and returns how to undo it. Checks everything
    /// (interface exists, parameters valid, root is a kernel default, no ingress qdisc
    /// for ingress faults) before changing anything; on a partial failure removes what
    /// it added and returns the first error.
    pub async fn apply(&self, fault: &NetFault) -> Result<Undo, NetError> {
        self.apply_exempt(fault, &Exempt::none(), false).await
    }

    /// [`Tc::apply`], steering `exempt` past the fault (on the IFB for an ingress
    /// fault): see [`super::exempt`]. `blackhole`: drop the selected packets (gact) and
    /// ignore `fault.netem`.
    pub async fn apply_exempt(
        &self,
        fault: &NetFault,
        exempt: &Exempt,
        blackhole: bool,
    ) -> Result<Undo, NetError> {
        let netem = (!blackhole).then_some(&fault.netem);
        let exempt_matches = exempt.matches()?;
        let ifindex = self.ifindex(&fault.iface).await?;
        let netns_id = self.identity()?;
        let mut undo = Undo {
            netns: self.target.clone(),
            netns_id,
            iface: fault.iface.clone(),
            ifindex,
            direction: fault.direction,
            previous_root: String::new(),
            installed_root: String::new(),
            filters: 0,
            exemptions: exempt_matches.len(),
            ifb: None,
        };
        let egress = fault.direction != Direction::Ingress;
        let ingress = fault.direction != Direction::Egress;
        if ingress {
            // Everything the ingress half would refuse, before the egress half changes
            // anything.
            fault.selection.matches()?;
            if let Some(n) = netem {
                n.validate()?;
            }
            if let Some(q) = self.ingress_qdisc(ifindex).await? {
                return Err(NetError::ForeignRootQdisc {
                    iface: fault.iface.clone(),
                    kind: q.kind,
                    handle: handle_str(q.handle),
                    place: "ingress",
                });
            }
        }
        if egress {
            let (prev, inst, n) = self
                .install_on(
                    &fault.iface,
                    ifindex,
                    netem,
                    &fault.selection,
                    &exempt_matches,
                )
                .await?;
            (undo.previous_root, undo.installed_root, undo.filters) = (prev, inst, n);
        }
        if ingress {
            let name = ifb_name();
            let ifb = match self.create_ifb(&name).await {
                Ok(i) => i,
                Err(e) => {
                    if egress {
                        let _ = self.delete_root(ifindex).await;
                    }
                    return Err(e);
                }
            };
            // Both directions: the incoming half matches the same flows from the other
            // end (`--dst N` cuts what comes from N).
            let selection = if egress {
                fault.selection.mirrored()
            } else {
                fault.selection.clone()
            };
            let rest = async {
                let r = self
                    .install_on(&name, ifb, netem, &selection, &exempt_matches)
                    .await?;
                self.add_ingress(ifindex).await?;
                if let Err(e) = self.redirect_ingress(ifindex, ifb).await {
                    let _ = self.delete_ingress(ifindex).await;
                    return Err(e);
                }
                Ok::<_, NetError>(r)
            };
            match rest.await {
                Ok((prev, inst, n)) => {
                    if egress {
                        // Both: the interface's root is what the undo restores; the
                        // IFB's filters and exemptions count too.
                        undo.filters += n;
                        undo.exemptions += exempt_matches.len();
                    } else {
                        (undo.previous_root, undo.installed_root, undo.filters) = (prev, inst, n);
                    }
                    undo.ifb = Some(IfbRecord { name, ifindex: ifb });
                }
                Err(e) => {
                    let _ = self.delete_link(ifb).await;
                    if egress {
                        let _ = self.delete_root(ifindex).await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(undo)
    }

    fn identity(&self) -> Result<NetnsId, NetError> {
        self.target.identity().map_err(|source| NetError::Netns {
            netns: self.target.to_string(),
            source,
        })
    }

    /// Reverts `undo` through this open connection (cheaper than [`revert`], which
    /// connects first). Same outcomes as [`revert`]; refuses an `undo` made in another
    /// namespace than this connection's.
    pub async fn revert(&self, undo: &Undo) -> Result<Reverted, NetError> {
        if undo.netns != self.target {
            return Err(NetError::invalid(
                "undo",
                format!(
                    "it belongs to {}, this connection is in {}",
                    undo.netns, self.target
                ),
            ));
        }
        if let Some(r) = namespace_gone(undo)? {
            return Ok(r);
        }
        self.revert_in_place(undo).await
    }

    /// [`Tc::revert`] without looking the namespace up by the undo's path: for a caller
    /// that holds the applied namespace open itself (a container's, whose path names a
    /// process that may have exited), so this connection is in it.
    pub async fn revert_in_place(&self, undo: &Undo) -> Result<Reverted, NetError> {
        let mut gone = Vec::new();
        // The device by its index: a rename (`ip link set dev X name Y`) keeps the index,
        // and the qdiscs with it, so a renamed interface still has faultline's root to
        // remove. Only a root with faultline's handle is ever deleted (the kernel refuses
        // `del ... root handle fa17:` on another), so an index that now names another
        // device costs nothing of anyone's but a faultline root's.
        let name_now = self.link_name(undo.ifindex).await?;
        let iface_there = name_now.is_some();
        let renamed = iface_there && name_now.as_deref() != Some(undo.iface.as_str());
        if !iface_there {
            gone.push(format!("interface {:?}", undo.iface));
        }
        if let Some(ifb) = &undo.ifb {
            // The redirect first: a mirred action whose device vanished drops packets.
            // Under another name, the ingress qdisc goes only if it redirects to our IFB.
            if iface_there
                && let Some(q) = self.ingress_qdisc(undo.ifindex).await?
                && q.kind == "ingress"
                && (!renamed
                    || self
                        .redirects_ingress_to(undo.ifindex, |t| t == ifb.ifindex)
                        .await?)
            {
                self.delete_ingress(undo.ifindex).await?;
            }
            if self.link_name(ifb.ifindex).await?.as_deref() == Some(ifb.name.as_str()) {
                self.delete_link(ifb.ifindex).await?;
            } else {
                gone.push(format!("IFB device {:?}", ifb.name));
            }
        }
        if undo.direction != Direction::Ingress
            && iface_there
            && !self.delete_root(undo.ifindex).await?
        {
            gone.push(format!("faultline's root qdisc on {:?}", undo.iface));
        }
        if gone.is_empty() {
            Ok(Reverted::Restored)
        } else {
            Ok(Reverted::AlreadyGone(format!(
                "{} no longer exist(s)",
                gone.join(" and ")
            )))
        }
    }
}

impl Tc {
    /// Every interface of this namespace: (index, name) (`ip link show`).
    pub async fn links(&self) -> Result<Vec<(u32, String)>, NetError> {
        let answers = self
            .request(msg::dump_links())
            .await
            .map_err(|f| fail("list interfaces", None, f))?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => link_name(l).map(|n| (l.header.index, n)),
                _ => None,
            })
            .collect())
    }

    /// Removes every faultline leftover in this namespace, journal or not, found by its
    /// tags: root qdiscs with handle `fa17:` (`tc qdisc del dev X root handle fa17:`),
    /// ingress qdiscs whose filters redirect to an `flifb*` device (`tc qdisc del dev X
    /// ingress`), then the `flifb*` devices (`ip link del flifb...`). Returns one line
    /// per thing removed.
    pub async fn sweep(&self) -> Result<Vec<String>, NetError> {
        let links = self.links().await?;
        let ifbs: Vec<&(u32, String)> = links
            .iter()
            .filter(|(_, n)| n.starts_with(IFB_PREFIX))
            .collect();
        let mut done = Vec::new();
        for (idx, name) in &links {
            if let Some(q) = self.root_qdisc(*idx).await?
                && (q.handle >> 16) as u16 == ROOT_MAJOR
                && self.delete_root(*idx).await?
            {
                done.push(format!(
                    "deleted {} root qdisc {} on {name}",
                    q.kind,
                    handle_str(q.handle)
                ));
            }
            if !ifbs.is_empty()
                && let Some(q) = self.ingress_qdisc(*idx).await?
                && q.kind == "ingress"
            {
                let to_ours = self
                    .redirects_ingress_to(*idx, |t| ifbs.iter().any(|(i, _)| *i == t))
                    .await?;
                if to_ours && self.delete_ingress(*idx).await? {
                    done.push(format!(
                        "deleted the ingress qdisc redirecting {name} to an IFB"
                    ));
                }
            }
        }
        for (idx, name) in ifbs {
            if self.delete_link(*idx).await? {
                done.push(format!("deleted IFB device {name}"));
            }
        }
        Ok(done)
    }
}

/// Puts back what [`Tc::apply`] changed. Idempotent: a namespace that no longer exists
/// (or was replaced by another at the same path or pid), an interface that vanished,
/// or a root that is no longer ours gives [`Reverted::AlreadyGone`], not an error.
pub async fn revert(undo: &Undo) -> Result<Reverted, NetError> {
    if let Some(r) = namespace_gone(undo)? {
        return Ok(r);
    }
    let tc = Tc::connect(&undo.netns).await?;
    tc.revert_in_place(undo).await
}

/// `Some(AlreadyGone)` if `undo`'s namespace no longer exists or is another one now.
fn namespace_gone(undo: &Undo) -> Result<Option<Reverted>, NetError> {
    match undo.netns.identity() {
        Ok(id) if id == undo.netns_id => Ok(None),
        Ok(_) => Ok(Some(Reverted::AlreadyGone(format!(
            "{} was replaced by another namespace",
            undo.netns
        )))),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            Ok(Some(Reverted::AlreadyGone(format!(
                "{} no longer exists",
                undo.netns
            ))))
        }
        Err(source) => Err(NetError::Netns {
            netns: undo.netns.to_string(),
            source,
        }),
    }
}

/// Probes, in a throwaway network namespace on a veth pair (never the caller's), which
/// of netem, prio, tbf, u32, mirred and ifb this kernel has. The namespace disappears
/// with the probe's socket.
pub async fn probe_kernel() -> Result<KernelSupport, NetError> {
    let tc = netns::run_in_new(netns::new_route_socket)
        .and_then(|fd| Tc::from_fd(fd, NetnsTarget::Path("(throwaway probe namespace)".into())))
        .map_err(|source| NetError::Netns {
            netns: "a new throwaway network namespace".into(),
            source,
        })?;
    tc.create_veth("flprobe0", "flprobe1").await?;
    let v0 = tc.ifindex("flprobe0").await?;
    let v1 = tc.ifindex("flprobe1").await?;
    let mut missing = Vec::new();
    let netem = probed(
        tc.replace_root_netem(v0, &Netem::default()).await,
        &mut missing,
    );
    let _ = tc.delete_root(v0).await;
    let prio_opts = Prio::with_fault_band().encode()?;
    let prio_msg = msg::new_qdisc(
        Mode::Replace,
        v0,
        ROOT,
        ROOT_HANDLE,
        "prio",
        Some(prio_opts),
    );
    let prio = probed(
        tc.new_qdisc(prio_msg, "prio", "install a prio root qdisc")
            .await,
        &mut missing,
    );
    let _ = tc.delete_root(v0).await;
    let tbf = probed(
        tc.replace_root_tbf(
            v0,
            &Tbf {
                bytes_per_sec: 125_000,
                burst: 1600,
                limit: super::qdisc::TbfLimit::Bytes(3000),
                mtu: 0,
                mpu: 0,
            },
        )
        .await,
        &mut missing,
    );
    let _ = tc.delete_root(v0).await;
    let ingress = tc.add_ingress(v0).await;
    let (u32r, mirred) = match probed(ingress, &mut missing) {
        Err(e) => (
            Err(format!("no ingress qdisc to attach it to: {e}")),
            Err("not probed: no ingress qdisc".to_string()),
        ),
        Ok(()) => {
            let all = U32Match::all();
            let u = tc
                .request(msg::new_u32_filter(
                    Mode::Add,
                    v0,
                    INGRESS_HANDLE,
                    1,
                    all.protocol,
                    all.classify(1),
                ))
                .await
                .map(|_| ())
                .map_err(|f| fail("add a u32 filter", Some("u32"), f));
            let u = probed(u, &mut missing);
            let m = tc
                .request(msg::new_u32_filter(
                    Mode::Add,
                    v0,
                    INGRESS_HANDLE,
                    2,
                    all.protocol,
                    all.redirect(v1),
                ))
                .await
                .map(|_| ())
                .map_err(|f| fail("add a mirred redirect", Some("mirred"), f));
            let m = probed(m, &mut missing);
            (u, m)
        }
    };
    let ifb = probed(tc.create_ifb("flprobeifb").await.map(|_| ()), &mut missing);
    Ok(KernelSupport {
        netem,
        prio,
        tbf,
        u32: u32r,
        mirred,
        ifb,
        missing,
    })
}

/// What one datagram of an answer says: see [`read_answer`].
type Verdict = Result<Option<Result<(), Fail>>, Fail>;

/// Reads one datagram of the answer to request `seq` into `out`. `Some(Ok)`: the answer
/// is complete (a dump's end, or the acknowledgement); `Some(Err)`: the kernel refused
/// the request; `None`: more is to come. Messages of another sequence (a stale answer)
/// are skipped, and so are replies the codec cannot decode (as `rtnetlink` does).
fn read_answer(mut buf: &[u8], seq: u32, out: &mut Vec<RouteNetlinkMessage>) -> Verdict {
    let word = |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    while buf.len() >= NLMSG_HDRLEN {
        let len = word(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(Fail::Io(format!(
                "malformed netlink answer: a message of {len} bytes in {} left",
                buf.len()
            )));
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let this = &buf[..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        if word(this, 8) != seq {
            continue;
        }
        match kind {
            // The error code: 0 acknowledges, negative is -errno. A dump's end carries
            // the dump's error the same way (0 when it went through).
            NLMSG_ERROR | NLMSG_DONE => {
                let code = if this.len() >= NLMSG_HDRLEN + 4 {
                    word(this, NLMSG_HDRLEN) as i32
                } else {
                    0
                };
                return Ok(Some(if code < 0 {
                    Err(Fail::Errno(-code))
                } else {
                    Ok(())
                }));
            }
            _ => {
                if let Ok(NetlinkMessage {
                    payload: NetlinkPayload::InnerMessage(m),
                    ..
                }) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(this)
                {
                    out.push(m);
                }
            }
        }
    }
    Ok(None)
}

fn link_name(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn options_bytes(t: &TcMessage) -> Option<Vec<u8>> {
    use rtnetlink::packet_core::Nla;
    t.attributes.iter().find_map(|a| match a {
        TcAttribute::Options(o) => match o.as_slice() {
            [TcOption::Other(nla)] => {
                let mut b = vec![0; nla.value_len()];
                nla.emit_value(&mut b);
                Some(b)
            }
            _ => None,
        },
        _ => None,
    })
}

fn qdisc_info(t: &TcMessage) -> QdiscInfo {
    QdiscInfo {
        ifindex: t.header.index as u32,
        kind: t
            .attributes
            .iter()
            .find_map(|a| match a {
                TcAttribute::Kind(k) => Some(k.clone()),
                _ => None,
            })
            .unwrap_or_default(),
        handle: t.header.handle.into(),
        parent: t.header.parent.into(),
        options: options_bytes(t),
    }
}

fn filter_info(t: &TcMessage) -> Option<FilterInfo> {
    let kind = t.attributes.iter().find_map(|a| match a {
        TcAttribute::Kind(k) => Some(k.clone()),
        _ => None,
    })?;
    let mut info = FilterInfo {
        parent: t.header.parent.into(),
        prio: (t.header.info >> 16) as u16,
        protocol: u16::from_be((t.header.info & 0xffff) as u16),
        kind,
        classid: None,
        keys: 0,
        redirect_to: None,
        drops: false,
    };
    let mut has_options = false;
    for a in &t.attributes {
        if let TcAttribute::Options(opts) = a {
            for o in opts {
                if let TcOption::U32(u) = o {
                    has_options = true;
                    match u {
                        TcFilterU32Option::ClassId(c) => info.classid = Some((*c).into()),
                        TcFilterU32Option::Selector(s) => info.keys = s.keys.len(),
                        TcFilterU32Option::Action(acts) => {
                            for act in acts {
                                let gact = act
                                    .attributes
                                    .iter()
                                    .any(|a| matches!(a, TcActionAttribute::Kind(k) if k == GACT));
                                for aa in &act.attributes {
                                    if let TcActionAttribute::Options(ao) = aa {
                                        for x in ao {
                                            match x {
                                                TcActionOption::Mirror(
                                                    TcActionMirrorOption::Parms(p),
                                                ) => info.redirect_to = Some(p.ifindex),
                                                TcActionOption::Other(nla)
                                                    if gact
                                                        && rtnetlink::packet_core::Nla::kind(
                                                            nla,
                                                        ) == TCA_GACT_PARMS =>
                                                {
                                                    info.drops |= gact_drops(nla);
                                                }
                                                _ => {}
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    // The kernel also dumps a bare entry per u32 hash table (no options): skip those.
    has_options.then_some(info)
}

/// Whether a gact action's `struct tc_gact` (`TCA_GACT_PARMS`) says `TC_ACT_SHOT`.
fn gact_drops(nla: &rtnetlink::packet_core::DefaultNla) -> bool {
    use rtnetlink::packet_core::Nla;
    let mut b = vec![0; nla.value_len()];
    nla.emit_value(&mut b);
    b.get(8..12)
        .map(|a| u32::from_ne_bytes(a.try_into().expect("4 bytes")) == TC_ACT_SHOT)
        .unwrap_or(false)
}

/// A dumped qdisc with its options decoded when it is one of ours.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedQdisc {
    pub info: QdiscInfo,
    pub netem: Option<Netem>,
    pub prio: Option<Prio>,
    /// tbf: (bytes per second, limit in bytes).
    pub tbf: Option<(u64, u32)>,
}

/// What [`decode_dump_message`] found in one netlink message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A qdisc, and its options decoded when it is one of ours (netem, prio, tbf).
    Qdisc(Box<DecodedQdisc>),
    Filter(Option<FilterInfo>),
    Other,
}

/// Decodes one message of a `RTM_GETQDISC`/`RTM_GETTFILTER` dump answer from its wire
/// bytes, the way [`Tc::qdiscs`], [`Tc::filters`] and [`Tc::netem_state`] read them.
/// Pure (no socket): the fuzz target `netlink_dump` drives it with arbitrary bytes.
pub fn decode_dump_message(buf: &[u8]) -> Result<Decoded, String> {
    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(buf).map_err(|e| e.to_string())?;
    Ok(match m.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewQueueDiscipline(t)) => {
            let q = qdisc_info(&t);
            let opts = q.options.clone().unwrap_or_default();
            let (netem, prio, tbf) = match q.kind.as_str() {
                "netem" => (Netem::decode(&opts).ok(), None, None),
                "prio" => (None, Prio::decode(&opts).ok(), None),
                "tbf" => (None, None, Tbf::decode_rate_limit(&opts)),
                _ => (None, None, None),
            };
            Decoded::Qdisc(Box::new(DecodedQdisc {
                info: q,
                netem,
                prio,
                tbf,
            }))
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewTrafficFilter(t)) => {
            Decoded::Filter(filter_info(&t))
        }
        _ => Decoded::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support(missing: &[&str]) -> KernelSupport {
        let r = |m: &str| {
            if missing.contains(&m) {
                Err(format!("no {m}"))
            } else {
                Ok(())
            }
        };
        KernelSupport {
            netem: r("sch_netem"),
            prio: r("sch_prio"),
            tbf: Ok(()),
            u32: r("cls_u32"),
            mirred: r("act_mirred"),
            ifb: r("ifb"),
            missing: missing.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn fault(direction: Direction, selected: bool) -> NetFault {
        let mut selection = Selection::default();
        if selected {
            selection.dst = vec!["10.0.0.0/8".parse().unwrap()];
        }
        NetFault {
            iface: "veth0".into(),
            direction,
            netem: Netem::default(),
            selection,
        }
    }

    fn first_missing(k: &KernelSupport, f: &NetFault) -> Option<String> {
        match k.check(f) {
            Ok(()) => None,
            Err(NetError::MissingKernelModule { module, .. }) => Some(module),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn kernel_check_names_the_first_module_the_apply_would_miss() {
        let none = support(&[]);
        for d in [Direction::Egress, Direction::Ingress] {
            for sel in [false, true] {
                assert_eq!(first_missing(&none, &fault(d, sel)), None);
            }
        }
        let k = support(&["sch_netem", "sch_prio"]);
        let plain = fault(Direction::Egress, false);
        assert_eq!(first_missing(&k, &plain).as_deref(), Some("sch_netem"));
        assert_eq!(
            k.check(&plain).unwrap_err().to_string(),
            "this kernel has no sch_netem (needed to install a netem root qdisc): load it with `modprobe sch_netem` or use a kernel that has it"
        );
        // With a selection the prio root goes in first, as in `Tc::apply`.
        assert_eq!(
            first_missing(&k, &fault(Direction::Egress, true)).as_deref(),
            Some("sch_prio")
        );
        let k = support(&["ifb", "act_mirred"]);
        assert_eq!(
            first_missing(&k, &fault(Direction::Ingress, false)).as_deref(),
            Some("ifb")
        );
        assert_eq!(first_missing(&k, &fault(Direction::Egress, true)), None);
        let k = support(&["act_mirred"]);
        assert_eq!(
            first_missing(&k, &fault(Direction::Ingress, false)).as_deref(),
            Some("act_mirred")
        );
    }

    /// One netlink message: header (length, type, flags, sequence, port) and payload.
    fn nlmsg(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut b = Vec::new();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(payload);
        b.resize(b.len().next_multiple_of(4), 0);
        b
    }

    /// An NLMSG_ERROR (or NLMSG_DONE) carrying `code`.
    fn coded(kind: u16, seq: u32, code: i32) -> Vec<u8> {
        nlmsg(kind, seq, &code.to_ne_bytes())
    }

    /// A qdisc as a dump answers it.
    fn qdisc(seq: u32, ifindex: i32, kind: &str) -> Vec<u8> {
        let mut t = TcMessage::default();
        t.header.index = ifindex;
        t.attributes.push(TcAttribute::Kind(kind.into()));
        let mut m = NetlinkMessage::from(RouteNetlinkMessage::NewQueueDiscipline(t));
        m.header.sequence_number = seq;
        m.finalize();
        msg::to_bytes(&m)
    }

    fn read(buf: &[u8], seq: u32) -> (Verdict, Vec<RouteNetlinkMessage>) {
        let mut out = Vec::new();
        (read_answer(buf, seq, &mut out), out)
    }

    #[test]
    fn an_acknowledgement_ends_a_request_and_an_error_code_is_its_errno() {
        let (r, out) = read(&coded(NLMSG_ERROR, 7, 0), 7);
        assert!(matches!(r, Ok(Some(Ok(())))), "{r:?}");
        assert!(out.is_empty());
        let (r, _) = read(&coded(NLMSG_ERROR, 7, -libc::EEXIST), 7);
        assert!(
            matches!(r, Ok(Some(Err(Fail::Errno(e)))) if e == libc::EEXIST),
            "{r:?}"
        );
    }

    #[test]
    fn a_dump_is_collected_across_datagrams_until_its_end() {
        // Two qdiscs in one datagram: more to come.
        let mut first = qdisc(3, 2, "noqueue");
        first.extend(qdisc(3, 5, "netem"));
        let mut out = Vec::new();
        assert!(matches!(read_answer(&first, 3, &mut out), Ok(None)));
        assert!(matches!(
            read_answer(&qdisc(3, 9, "prio"), 3, &mut out),
            Ok(None)
        ));
        let r = read_answer(&coded(NLMSG_DONE, 3, 0), 3, &mut out);
        assert!(matches!(r, Ok(Some(Ok(())))), "{r:?}");
        let kinds: Vec<(i32, String)> = out
            .iter()
            .map(|m| match m {
                RouteNetlinkMessage::NewQueueDiscipline(t) => (t.header.index, qdisc_info(t).kind),
                other => panic!("not a qdisc: {other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (2, "noqueue".into()),
                (5, "netem".into()),
                (9, "prio".into())
            ]
        );
        // A dump that failed says so in its end.
        let (r, _) = read(&coded(NLMSG_DONE, 3, -libc::EMSGSIZE), 3);
        assert!(
            matches!(r, Ok(Some(Err(Fail::Errno(e)))) if e == libc::EMSGSIZE),
            "{r:?}"
        );
    }

    #[test]
    fn stale_and_undecodable_messages_are_skipped() {
        // An earlier request's error and a message of an unknown type, then our ack.
        let mut b = coded(NLMSG_ERROR, 6, -libc::ENOENT);
        b.extend(nlmsg(0x7ff0, 7, &[1, 2, 3]));
        b.extend(coded(NLMSG_ERROR, 7, 0));
        let (r, out) = read(&b, 7);
        assert!(matches!(r, Ok(Some(Ok(())))), "{r:?}");
        assert!(out.is_empty(), "{out:?}");
        // Only the stale one: the answer is still to come.
        let (r, _) = read(&coded(NLMSG_ERROR, 6, 0), 7);
        assert!(matches!(r, Ok(None)), "{r:?}");
    }

    #[test]
    fn a_malformed_length_is_an_error_not_a_panic() {
        let mut short = coded(NLMSG_ERROR, 1, 0);
        short[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(matches!(read(&short, 1).0, Err(Fail::Io(_))));
        let mut long = coded(NLMSG_ERROR, 1, 0);
        long[..4].copy_from_slice(&4096u32.to_ne_bytes());
        assert!(matches!(read(&long, 1).0, Err(Fail::Io(_))));
        // A last message whose padding the datagram does not carry is still read.
        let mut unpadded = nlmsg(NLMSG_ERROR, 1, &[0, 0, 0, 0, 9]);
        unpadded.truncate(NLMSG_HDRLEN + 5);
        assert!(matches!(read(&unpadded, 1).0, Ok(Some(Ok(())))));
        // Fewer bytes than a header: nothing read, nothing ended.
        assert!(matches!(read(&[0, 1, 2], 1).0, Ok(None)));
    }
}
