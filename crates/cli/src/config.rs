//! The CLI's configuration file: the endpoint, project, token and CA file `kiln auth login`
//! saved.
//!
//! `$KILN_CONFIG`, else `$XDG_CONFIG_HOME/kiln/config.yaml`, else `~/.config/kiln/config.yaml`.
//! Flags and environment variables win over the file. The file holds a secret, so it is written
//! readable by its owner only.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// What the file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Default project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Certificates trusted for the endpoint besides the system's (`--ca-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// Where the file is.
pub fn path() -> PathBuf {
    if let Some(path) = std::env::var_os("KILN_CONFIG") {
        return PathBuf::from(path);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("kiln/config.yaml")
}

/// Reads the file; a missing file is an empty configuration.
pub fn load() -> anyhow::Result<Config> {
    let path = path();
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_norway::from_str(&text)
            .with_context(|| format!("reading the Kiln config {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the file, owner-readable only.
pub fn save(config: &Config) -> anyhow::Result<PathBuf> {
    let path = path();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let text = serde_norway::to_string(config)?;
    let temporary = path.with_extension("yaml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
