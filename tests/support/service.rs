//! Small HTTP servers on 127.0.0.1 for the end-to-end tests: a service under test whose
//! answers (status, added latency) the test decides per request, and a Prometheus
//! exporter whose one gauge the test sets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How the service answers one request.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub status: u16,
    /// Slept before answering.
    pub delay: Duration,
}

impl From<u16> for Reply {
    fn from(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
        }
    }
}

/// A tiny HTTP/1.1 server: each request (one per connection) is answered as `reply()`
/// says. Its threads live as long as the test process.
pub struct Service {
    pub addr: SocketAddr,
}

impl Service {
    pub fn start<R: Into<Reply>>(reply: impl Fn() -> R + Send + Sync + 'static) -> Service {
        Service::serve(move || {
            let r: Reply = reply().into();
            (r, "text/plain".to_string(), "ok".to_string())
        })
    }

    /// `answer()` gives the reply, the content type and the body.
    fn serve(answer: impl Fn() -> (Reply, String, String) + Send + Sync + 'static) -> Service {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 2048];
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = c.read(&mut buf);
                    let (r, ctype, body) = answer();
                    if !r.delay.is_zero() {
                        std::thread::sleep(r.delay);
                    }
                    let _ = write!(
                        c,
                        "HTTP/1.1 {} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        r.status,
                        body.len()
                    );
                });
            }
        });
        Service { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

/// A Prometheus exporter on 127.0.0.1: `GET /metrics` answers `NAME VALUE` in the text
/// exposition format, with the value the test last set.
pub struct Exporter {
    pub service: Service,
    value: Arc<AtomicU64>,
}

impl Exporter {
    /// Serves the gauge `name` (documented as such), starting at `value`.
    pub fn start(name: &str, value: f64) -> Exporter {
        let v = Arc::new(AtomicU64::new(value.to_bits()));
        let (name, shared) = (name.to_string(), v.clone());
        let service = Service::serve(move || {
            let x = f64::from_bits(shared.load(Ordering::SeqCst));
            (
                Reply::from(200),
                "text/plain; version=0.0.4".into(),
                format!("# HELP {name} A value the test sets.\n# TYPE {name} gauge\n{name} {x}\n"),
            )
        });
        Exporter { service, value: v }
    }

    pub fn set(&self, value: f64) {
        self.value.store(value.to_bits(), Ordering::SeqCst);
    }

    /// `127.0.0.1:PORT`, for a scrape config.
    pub fn target(&self) -> String {
        self.service.addr.to_string()
    }
}
