//! `faultd`'s own configuration (`/etc/faultline/faultd.toml`): where it listens, where
//! it keeps state, who may change things. Blast-radius limits live in their own file
//! ([`crate::limits`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::Role;
use crate::limits::line_col;

/// Where the config is read from when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/faultline/faultd.toml";
/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/faultline";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from, or `embedded defaults`.
    pub source: String,
    /// The Unix socket `faultd` serves on.
    pub socket: PathBuf,
    /// Where the agent keeps its state.
    pub state_dir: PathBuf,
    /// Groups (besides uid 0) whose members may call mutating RPCs over the socket.
    pub operator_groups: Vec<String>,
    /// The limits file, if the config names one (`--limits` wins).
    pub limits: Option<PathBuf>,
    /// Log filter (`info`, `debug`, `faultline_agent=debug`...).
    pub log: String,
    /// `fdatasync` each audit line (survives power loss, costs a disk flush per RPC).
    pub audit_fsync: bool,
    /// Prometheus endpoint address; None: off (`metrics_listen = ""`).
    pub metrics_listen: Option<SocketAddr>,
    /// TCP address for gRPC over mutual TLS; None: Unix socket only.
    pub listen: Option<SocketAddr>,
    /// PEM server certificate chain, private key and client CA bundle for `listen`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    /// TLS client identity (certificate CN or SAN DNS name) -> role.
    pub roles: BTreeMap<String, Role>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: "embedded defaults".into(),
            socket: PathBuf::from(faultline_proto::DEFAULT_SOCKET),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            operator_groups: vec![],
            limits: None,
            log: "info".into(),
            audit_fsync: false,
            metrics_listen: Some(
                crate::metrics::DEFAULT_METRICS_LISTEN
                    .parse()
                    .expect("a valid address"),
            ),
            listen: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            roles: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{col}: {message}")]
    Syntax {
        file: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("{file}:{line}: field {field}: {message}")]
    Field {
        file: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    socket: Option<toml::Spanned<String>>,
    state_dir: Option<toml::Spanned<String>>,
    operator_groups: Option<Vec<toml::Spanned<String>>>,
    limits: Option<toml::Spanned<String>>,
    log: Option<String>,
    audit_fsync: Option<bool>,
    metrics_listen: Option<toml::Spanned<String>>,
    listen: Option<toml::Spanned<String>>,
    tls_cert: Option<toml::Spanned<String>>,
    tls_key: Option<toml::Spanned<String>>,
    tls_client_ca: Option<toml::Spanned<String>>,
    roles: Option<RawRoles>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoles {
    #[serde(default)]
    operator: Vec<toml::Spanned<String>>,
    #[serde(default)]
    viewer: Vec<toml::Spanned<String>>,
}

/// The server's TLS files.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// `HOST:PORT` with a literal IP (`127.0.0.1:9464`, `[::1]:7443`).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!("{s:?} is not an address: write IP:PORT, e.g. 127.0.0.1:9464 or [::]:7443")
    })
}

impl Config {
    /// Parses a config file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            ConfigError::Syntax {
                file: file.to_path_buf(),
                line,
                col,
                message: e.message().trim().to_string(),
            }
        })?;
        let mut c = Config {
            source: file.display().to_string(),
            ..Config::default()
        };
        let abs = |v: &toml::Spanned<String>, field: &str| -> Result<PathBuf, ConfigError> {
            let p = PathBuf::from(v.get_ref());
            if !p.is_absolute() {
                return Err(ConfigError::Field {
                    file: file.to_path_buf(),
                    line: line_col(text, v.span().start).0,
                    field: field.into(),
                    message: format!("{:?} must be an absolute path", v.get_ref()),
                });
            }
            Ok(p)
        };
        if let Some(s) = &raw.socket {
            c.socket = abs(s, "socket")?;
        }
        if let Some(s) = &raw.state_dir {
            c.state_dir = abs(s, "state_dir")?;
        }
        if let Some(s) = &raw.limits {
            c.limits = Some(abs(s, "limits")?);
        }
        if let Some(gs) = &raw.operator_groups {
            for g in gs {
                if g.get_ref().is_empty() || g.get_ref().contains(char::is_whitespace) {
                    return Err(ConfigError::Field {
                        file: file.to_path_buf(),
                        line: line_col(text, g.span().start).0,
                        field: "operator_groups".into(),
                        message: format!("{:?} is not a group name", g.get_ref()),
                    });
                }
            }
            c.operator_groups = gs.iter().map(|g| g.get_ref().clone()).collect();
        }
        if let Some(l) = raw.log {
            c.log = l;
        }
        if let Some(f) = raw.audit_fsync {
            c.audit_fsync = f;
        }
        let addr = |v: &toml::Spanned<String>, field: &str| -> Result<SocketAddr, ConfigError> {
            parse_addr(v.get_ref()).map_err(|message| ConfigError::Field {
                file: file.to_path_buf(),
                line: line_col(text, v.span().start).0,
                field: field.into(),
                message,
            })
        };
        if let Some(m) = &raw.metrics_listen {
            c.metrics_listen = if m.get_ref().is_empty() {
                None
            } else {
                Some(addr(m, "metrics_listen")?)
            };
        }
        if let Some(l) = &raw.listen {
            c.listen = if l.get_ref().is_empty() {
                None
            } else {
                Some(addr(l, "listen")?)
            };
        }
        if let Some(p) = &raw.tls_cert {
            c.tls_cert = Some(abs(p, "tls_cert")?);
        }
        if let Some(p) = &raw.tls_key {
            c.tls_key = Some(abs(p, "tls_key")?);
        }
        if let Some(p) = &raw.tls_client_ca {
            c.tls_client_ca = Some(abs(p, "tls_client_ca")?);
        }
        if let Some(r) = &raw.roles {
            for (role, names) in [(Role::Viewer, &r.viewer), (Role::Operator, &r.operator)] {
                for n in names {
                    let name = n.get_ref();
                    if name.is_empty() || name.len() > 255 || name.contains(char::is_whitespace) {
                        return Err(ConfigError::Field {
                            file: file.to_path_buf(),
                            line: line_col(text, n.span().start).0,
                            field: format!("roles.{}", role.name()),
                            message: format!(
                                "{name:?} is not a certificate identity (a CN or DNS name)"
                            ),
                        });
                    }
                    if let Some(prev) = c.roles.insert(name.clone(), role)
                        && prev != role
                    {
                        return Err(ConfigError::Field {
                            file: file.to_path_buf(),
                            line: line_col(text, n.span().start).0,
                            field: format!("roles.{}", role.name()),
                            message: format!(
                                "{name:?} is listed as both viewer and operator; keep one"
                            ),
                        });
                    }
                }
            }
        }
        Ok(c)
    }

    /// The TLS files for `listen`, or a message naming the missing keys.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, String> {
        let Some(addr) = self.listen else {
            return Ok(None);
        };
        let missing: Vec<&str> = [
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("tls_client_ca", &self.tls_client_ca),
        ]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "refusing to listen on {addr} without mutual TLS: set {} in faultd.toml (faultd never serves plaintext TCP; see docs/security.md)",
                missing.join(", ")
            ));
        }
        Ok(Some(TlsFiles {
            cert: self.tls_cert.clone().expect("checked"),
            key: self.tls_key.clone().expect("checked"),
            client_ca: self.tls_client_ca.clone().expect("checked"),
        }))
    }

    /// Reads `path` if given (it must exist), else [`DEFAULT_CONFIG_PATH`] if it exists,
    /// else the embedded defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(t) => Config::parse(&t, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Config::default())
            }
            Err(e) => Err(ConfigError::Read {
                file: path,
                source: e,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_file_matches_embedded_defaults() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../systemd/faultd.toml"
        ))
        .unwrap();
        let f = Path::new("/etc/faultline/faultd.toml");
        let mut c = Config::parse(&crate::limits::tests::uncomment(&text), f).unwrap();
        c.source = "embedded defaults".into();
        let want = Config {
            operator_groups: vec!["faultline".into()],
            limits: Some(PathBuf::from(crate::limits::DEFAULT_LIMITS_PATH)),
            ..Config::default()
        };
        assert_eq!(c, want);
    }

    #[test]
    fn parses_and_names_bad_fields() {
        let f = Path::new("/etc/faultline/faultd.toml");
        let c =
            Config::parse("socket = \"/tmp/x.sock\"\noperator_groups = [\"sre\"]\n", f).unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.operator_groups, vec!["sre".to_string()]);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        let e = Config::parse("\nstate_dir = \"relative\"\n", f)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/faultline/faultd.toml:2: field state_dir: \"relative\" must be an absolute path"
        );
        let c = Config::parse(
            "listen = \"127.0.0.1:7443\"\nmetrics_listen = \"\"\n[roles]\noperator = [\"alice\"]\nviewer = [\"grafana\"]\n",
            f,
        )
        .unwrap();
        assert_eq!(c.metrics_listen, None);
        assert_eq!(c.roles.get("alice"), Some(&Role::Operator));
        assert_eq!(c.roles.get("grafana"), Some(&Role::Viewer));
        assert_eq!(
            c.tls_files().unwrap_err(),
            "refusing to listen on 127.0.0.1:7443 without mutual TLS: set tls_cert, tls_key, tls_client_ca in faultd.toml (faultd never serves plaintext TCP; see docs/security.md)"
        );
        let e = Config::parse("listen = \"localhost\"\n", f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("field listen"), "{e}");
        let e = Config::parse("[roles]\noperator = [\"a\"]\nviewer = [\"a\"]\n", f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("both viewer and operator"), "{e}");
        let e = Config::parse("sockett = \"/x\"\n", f)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/faultline/faultd.toml:1:1:"), "{e}");
        assert!(e.contains("sockett"), "{e}");
    }
}
