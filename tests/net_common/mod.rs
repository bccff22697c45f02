//! Helpers shared by the network test files: scratch namespaces with veth pairs,
//! cleaned up by Drop (also on panic), and iproute2 as the reference reader.
#![allow(dead_code)]

use std::process::{Command, Output};

use faultline_agent::sys::netns::NetnsTarget;
use faultline_agent::sys::tc::{KernelSupport, probe_kernel};
use faultline_tests::unique_name;

/// Runs a command, panicking with its stderr if it fails.
pub fn run(args: &[&str]) -> String {
    let out = try_run(args);
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// iproute2's binaries by full path where they are there: inside the busybox guest a
/// bare `ip` or `tc` may be busybox's own limited applet.
pub fn program(name: &str) -> &str {
    match name {
        "ip" if std::path::Path::new("/usr/sbin/ip").exists() => "/usr/sbin/ip",
        "tc" if std::path::Path::new("/usr/sbin/tc").exists() => "/usr/sbin/tc",
        other => other,
    }
}

pub fn try_run(args: &[&str]) -> Output {
    Command::new(program(args[0]))
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]))
}

/// A scratch network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique_name("fltn");
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn target(&self) -> NetnsTarget {
        NetnsTarget::Named(self.name.clone())
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// `ip netns exec NS ARGS...`, checked.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// `ip netns exec NS ARGS...`, unchecked.
    pub fn try_exec(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        try_run(&v)
    }

    /// `tc ARGS...` inside the namespace.
    pub fn tc(&self, args: &[&str]) -> String {
        let mut v = vec![program("tc")];
        v.extend_from_slice(args);
        self.exec(&v)
    }

    /// `tc -j qdisc show dev IF`, parsed.
    pub fn qdiscs_json(&self, dev: &str) -> serde_json::Value {
        serde_json::from_str(&self.tc(&["-j", "qdisc", "show", "dev", dev]))
            .expect("tc -j output is JSON")
    }

    /// Kind of the root qdisc as `tc` reports it.
    pub fn root_kind(&self, dev: &str) -> String {
        let j = self.qdiscs_json(dev);
        j.as_array()
            .unwrap()
            .iter()
            .find(|q| q["root"] == true)
            .map(|q| q["kind"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "none".into())
    }

    pub fn links(&self) -> String {
        self.ip(&["-o", "link", "show"])
    }

    pub fn delete(&mut self) {
        if !self.name.is_empty() {
            let out = try_run(&["ip", "netns", "del", &self.name]);
            if !out.status.success() {
                faultline_tests::leftover(format!(
                    "network namespace {}: ip netns del: {}",
                    self.name,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            self.name.clear();
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}

/// One namespace holding both ends of a veth pair (`a` and `b`), both up.
pub struct Pair {
    pub ns: Netns,
    pub a: String,
    pub b: String,
}

impl Pair {
    pub fn new() -> Pair {
        let ns = Netns::new();
        let a = unique_name("flva");
        let b = unique_name("flvb");
        ns.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ns.ip(&["link", "set", &a, "up"]);
        ns.ip(&["link", "set", &b, "up"]);
        Pair { ns, a, b }
    }
}

/// Two namespaces joined by a veth pair with addresses: `a` (10.x.y.1, fd00::1) in
/// `left`, `b` (10.x.y.2, fd00::2) in `right`, so traffic between them crosses the veth.
pub struct Link {
    pub left: Netns,
    pub right: Netns,
    pub a: String,
    pub b: String,
    pub a_addr: String,
    pub b_addr: String,
}

impl Link {
    pub fn new() -> Link {
        let left = Netns::new();
        let right = Netns::new();
        let a = unique_name("flla");
        let b = unique_name("fllb");
        left.ip(&[
            "link",
            "add",
            &a,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "netns",
            &right.name,
        ]);
        left.ip(&["addr", "add", "10.77.0.1/24", "dev", &a]);
        right.ip(&["addr", "add", "10.77.0.2/24", "dev", &b]);
        left.ip(&["-6", "addr", "add", "fd77::1/64", "dev", &a, "nodad"]);
        right.ip(&["-6", "addr", "add", "fd77::2/64", "dev", &b, "nodad"]);
        left.ip(&["link", "set", &a, "up"]);
        right.ip(&["link", "set", &b, "up"]);
        Link {
            left,
            right,
            a,
            b,
            a_addr: "10.77.0.1".into(),
            b_addr: "10.77.0.2".into(),
        }
    }
}

/// The kernel's support, probed once per test binary.
pub fn kernel() -> &'static KernelSupport {
    static K: std::sync::OnceLock<KernelSupport> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(probe_kernel())
                .expect("probe the kernel")
        })
        .join()
        .unwrap()
    })
}

/// `faultline_tests::need`: the tc capabilities (netem, prio, tbf, u32, ifb, mirred)
/// are probed by tests/support/caps.rs with iproute2, never by faultline's own code.
pub fn need(test: &str, cap: &str) -> bool {
    faultline_tests::need(test, cap)
}

/// `need_tc!("netem", "prio")` at the top of a test.
#[macro_export]
macro_rules! need_tc {
    ($($cap:expr),+ $(,)?) => {
        $(
            if !common::need(
                {
                    fn f() {}
                    let name = std::any::type_name_of_val(&f);
                    let name = name.strip_suffix("::f").unwrap_or(name);
                    // #[tokio::test] puts the body in a closure.
                    name.trim_end_matches("::{{closure}}")
                },
                $cap,
            ) {
                return;
            }
        )+
    };
}

/// A UDP socket created inside `ns` (it stays there; use it from any thread).
pub fn udp_in(ns: &Netns, bind: &str) -> std::net::UdpSocket {
    let bind = bind.to_string();
    ns.target()
        .run_in(move || std::net::UdpSocket::bind(bind))
        .expect("bind a UDP socket in the namespace")
}

/// A UDP echo server in a namespace, stopped on drop.
pub struct Echo {
    pub addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    /// Echoes every datagram sent to `bind` (e.g. "10.77.0.1:7007") inside `ns`.
    pub fn start(ns: &Netns, bind: &str) -> Echo {
        let sock = udp_in(ns, bind);
        sock.set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        });
        Echo {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `n` numbered datagrams from `client` to `to`, one every `gap`, and returns each
/// one's round-trip time (`None`: no answer within `timeout` of sending). Replies to
/// earlier probes that arrive late are matched by number.
pub fn udp_rtts(
    client: &std::net::UdpSocket,
    to: std::net::SocketAddr,
    n: usize,
    gap: std::time::Duration,
    timeout: std::time::Duration,
) -> Vec<Option<std::time::Duration>> {
    use std::time::Instant;
    let mut sent: Vec<Instant> = Vec::with_capacity(n);
    let mut rtt: Vec<Option<std::time::Duration>> = vec![None; n];
    client
        .set_read_timeout(Some(std::time::Duration::from_millis(1)))
        .unwrap();
    let mut buf = [0u8; 64];
    let mut drain =
        |sent: &Vec<Instant>, rtt: &mut Vec<Option<std::time::Duration>>, until: Instant| {
            while Instant::now() < until {
                if let Ok(len) = client.recv(&mut buf)
                    && len >= 8
                {
                    let i = u64::from_be_bytes(buf[..8].try_into().unwrap()) as usize;
                    if i < sent.len() && rtt[i].is_none() {
                        let d = sent[i].elapsed();
                        if d <= timeout {
                            rtt[i] = Some(d);
                        }
                    }
                }
            }
        };
    for i in 0..n {
        sent.push(Instant::now());
        client
            .send_to(&(i as u64).to_be_bytes(), to)
            .expect("send a probe");
        drain(&sent, &mut rtt, Instant::now() + gap);
    }
    drain(&sent, &mut rtt, Instant::now() + timeout);
    rtt
}
