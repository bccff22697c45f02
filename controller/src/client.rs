//! Connecting to a `faultd` agent. All transport choices live here: the Unix socket,
//! `https://` with mutual TLS (a CA to check the agent, a client certificate and key to
//! prove who we are), and plaintext `http://` (only for test doubles: faultd itself never
//! serves plaintext TCP).

use std::time::Duration;

use faultline_proto::v1::agent_client::AgentClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

/// The default agent address: `faultd`'s Unix socket.
pub const DEFAULT_AGENT: &str = "unix:///run/faultline/faultd.sock";

/// How long [`connect`] waits for the agent before it gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address is not one faultctl understands.
    #[error("invalid agent address {uri:?}: {reason}")]
    BadUri { uri: String, reason: String },
    /// Nothing answered, or the transport failed.
    #[error("cannot reach faultd at {uri}: {reason}{}", hint_suffix(.hint))]
    Unreachable {
        uri: String,
        reason: String,
        hint: Option<String>,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
}

/// Where an agent address points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `unix:///path/to/socket` (also `unix:/path`).
    Unix(std::path::PathBuf),
    /// `http://host:port` (plaintext gRPC; for tests).
    Http(String),
    /// `https://host:port` (gRPC over mutual TLS).
    Https(String),
}

/// The files for mutual TLS: the CA that signed the agent's certificate, and our own
/// certificate and key (PEM).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    /// The name the agent's certificate must carry, when it is not the address's host
    /// (agents dialled by IP that share one certificate).
    pub server_name: Option<String>,
}

impl TlsFiles {
    fn config(&self, uri: &str) -> Result<ClientTlsConfig, ConnectError> {
        let missing: Vec<&str> = [
            ("--ca", &self.ca),
            ("--cert", &self.cert),
            ("--key", &self.key),
        ]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
        if !missing.is_empty() {
            return Err(ConnectError::BadUri {
                uri: uri.to_string(),
                reason: format!(
                    "https needs mutual TLS: give {} (or FAULTLINE_CA, FAULTLINE_CERT, FAULTLINE_KEY, or ca/cert/key in ~/.config/faultline/faultctl.toml)",
                    missing.join(", ")
                ),
            });
        }
        let read = |p: &std::path::PathBuf, what: &str| {
            std::fs::read(p).map_err(|e| ConnectError::BadUri {
                uri: uri.to_string(),
                reason: format!("cannot read {what} {}: {}", p.display(), io_message(&e)),
            })
        };
        let ca = read(self.ca.as_ref().expect("checked"), "CA certificate")?;
        let cert = read(self.cert.as_ref().expect("checked"), "client certificate")?;
        let key = read(self.key.as_ref().expect("checked"), "client key")?;
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .identity(Identity::from_pem(cert, key));
        Ok(match &self.server_name {
            Some(name) => config.domain_name(name.clone()),
            None => config,
        })
    }
}

/// Parses an agent address: `unix:///path`, `unix:/path`, `https://host:port` or
/// `http://host:port`.
pub fn parse_target(uri: &str) -> Result<Target, ConnectError> {
    let bad = |reason: &str| ConnectError::BadUri {
        uri: uri.to_string(),
        reason: reason.to_string(),
    };
    if let Some(rest) = uri.strip_prefix("unix:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err(bad(
                "a unix socket path must be absolute (write unix:///run/faultline/faultd.sock)",
            ));
        }
        return Ok(Target::Unix(path.into()));
    }
    if uri.starts_with("http://") {
        Uri::try_from(uri).map_err(|e| bad(&e.to_string()))?;
        return Ok(Target::Http(uri.to_string()));
    }
    if uri.starts_with("https://") {
        Uri::try_from(uri).map_err(|e| bad(&e.to_string()))?;
        return Ok(Target::Https(uri.to_string()));
    }
    Err(bad(
        "expected unix:///path/to/faultd.sock or https://host:port",
    ))
}

/// Connects to the agent at `uri` (see [`parse_target`]), waiting at most
/// [`CONNECT_TIMEOUT`]. The connection is made eagerly, so an agent that is not there is
/// reported here, with a hint, rather than on the first call.
pub async fn connect(uri: &str) -> Result<AgentClient<Channel>, ConnectError> {
    connect_with(uri, &TlsFiles::default()).await
}

/// [`connect`], with the files `https://` needs.
pub async fn connect_with(uri: &str, tls: &TlsFiles) -> Result<AgentClient<Channel>, ConnectError> {
    let target = parse_target(uri)?;
    let tls_config = match &target {
        Target::Https(_) => Some(tls.config(uri)?),
        _ => None,
    };
    let attempt = async {
        match &target {
            Target::Unix(path) => {
                let path = path.clone();
                // The authority is a placeholder: the connector ignores it.
                Endpoint::from_static("http://[::]:50051")
                    .connect_timeout(CONNECT_TIMEOUT)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    }))
                    .await
            }
            Target::Http(u) => {
                Endpoint::from_shared(u.clone())?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .connect()
                    .await
            }
            Target::Https(u) => {
                Endpoint::from_shared(u.clone())?
                    .tls_config(tls_config.clone().expect("built above"))?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .connect()
                    .await
            }
        }
    };
    let channel = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(ch)) => ch,
        Ok(Err(e)) => return Err(unreachable(uri, &target, &e)),
        Err(_) => {
            return Err(ConnectError::Unreachable {
                uri: uri.to_string(),
                reason: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                hint: Some("is faultd running and healthy?".into()),
            });
        }
    };
    Ok(AgentClient::new(channel))
}

fn unreachable(uri: &str, target: &Target, err: &tonic::transport::Error) -> ConnectError {
    // Find the innermost I/O error: it says what actually went wrong.
    let mut io: Option<&std::io::Error> = None;
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = src {
        if let Some(ioe) = e.downcast_ref::<std::io::Error>() {
            io = Some(ioe);
        }
        src = e.source();
    }
    let (reason, hint) = match io {
        Some(e) => {
            let hint = match (e.kind(), target) {
                (std::io::ErrorKind::PermissionDenied, Target::Unix(_)) => Some(
                    "the socket is for root and the faultd group: run as root or join the group"
                        .to_string(),
                ),
                (
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused,
                    Target::Unix(_),
                ) => Some("is faultd running? start it with: sudo faultd".to_string()),
                (std::io::ErrorKind::ConnectionRefused, Target::Http(_) | Target::Https(_)) => {
                    Some("is faultd listening there?".to_string())
                }
                _ => None,
            };
            (io_message(e), hint)
        }
        None => (
            error_chain(err),
            matches!(target, Target::Https(_)).then(|| {
                "check --ca (the CA that signed the agent's certificate) and that the agent's CA signed --cert"
                    .to_string()
            }),
        ),
    };
    ConnectError::Unreachable {
        uri: uri.to_string(),
        reason,
        hint,
    }
}

/// An I/O error's text without the "(os error N)" suffix.
fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut src = err.source();
    while let Some(e) = src {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        src = e.source();
    }
    parts.join(": ")
}

/// The agent's message; when the agent gave none, the code in words. A transport
/// failure mid-call says the agent went away.
pub fn status_text(s: &tonic::Status) -> String {
    let msg = s.message().trim();
    match (s.code(), msg.is_empty()) {
        (tonic::Code::Unavailable, _) => format!(
            "faultd is unavailable: {}",
            if msg.is_empty() {
                "connection lost"
            } else {
                msg
            }
        ),
        (code, true) => format!("the agent answered {code:?} with no message"),
        (_, false) => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_agent_addresses() {
        assert_eq!(
            parse_target("unix:///run/faultline/faultd.sock").unwrap(),
            Target::Unix("/run/faultline/faultd.sock".into())
        );
        assert_eq!(
            parse_target("unix:/tmp/x.sock").unwrap(),
            Target::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            parse_target("http://127.0.0.1:7070").unwrap(),
            Target::Http("http://127.0.0.1:7070".into())
        );
        assert!(parse_target("unix://relative").is_err());
        assert_eq!(
            parse_target("https://h:1").unwrap(),
            Target::Https("https://h:1".into())
        );
        assert!(parse_target("/run/x.sock").is_err());
    }

    #[tokio::test]
    async fn https_without_files_names_the_missing_flags() {
        let err = connect("https://127.0.0.1:1")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("give --ca, --cert, --key"), "{err}");
    }

    #[tokio::test]
    async fn missing_socket_is_one_clear_line() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("unix://{}/nope.sock", dir.path().display());
        let err = connect(&uri).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot reach faultd at {uri}: No such file or directory \
                 (is faultd running? start it with: sudo faultd)"
            )
        );
    }
}
