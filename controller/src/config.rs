//! faultctl's own settings file.

use std::path::{Path, PathBuf};

/// `~/.config/faultline/faultctl.toml` (or under `$XDG_CONFIG_HOME`): defaults for
/// `agent`, `ca`, `cert` and `key`; flags and environment variables win.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtlConfig {
    pub agent: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl CtlConfig {
    /// Where the config file is looked for.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
        Some(base.join("faultline/faultctl.toml"))
    }

    /// Reads the file at `path` if it exists.
    pub fn load(path: &Path) -> Result<CtlConfig, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => toml::from_str(&t).map_err(|e| format!("{}: {}", path.display(), e.message())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CtlConfig::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}
