//! `faultd`'s own configuration (`/etc/faultline/faultd.toml`): where it listens, where
//! it keeps state, who may change things. Blast-radius limits live in their own file
//! ([`crate::limits`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

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
        Ok(c)
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
        let e = Config::parse("sockett = \"/x\"\n", f)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/faultline/faultd.toml:1:1:"), "{e}");
        assert!(e.contains("sockett"), "{e}");
    }
}
