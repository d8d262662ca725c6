//! The CLI's saved login: server address and access token in `<config dir>/hush/session.json` (mode 0600).

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What `hush login` saves.
#[derive(Debug, Serialize, Deserialize)]
pub struct Session {
    /// Server URL the token was issued by.
    pub server: String,
    /// CA bundle the server's certificate is checked against (`--ca-cert` at login); absolute, so commands
    /// run from any folder find it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// The bearer token.
    pub access_token: String,
    /// RFC 3339 expiry, for the "log in again" hint.
    pub expires_at: String,
}

impl Session {
    /// The session file: `$HUSH_CONFIG_DIR/session.json`, else the user config dir.
    pub fn path() -> anyhow::Result<PathBuf> {
        let dir = match std::env::var_os("HUSH_CONFIG_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => dirs::config_dir().context("no user config directory; set HUSH_CONFIG_DIR")?.join("hush"),
        };
        Ok(dir.join("session.json"))
    }

    /// Reads the saved session.
    pub fn load() -> anyhow::Result<Self> {
        let path = Self::path()?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("not logged in ({} missing): run `hush login` first", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }

    /// Saves the session, readable only by the user.
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = Self::path()?;
        let json = serde_json::to_vec_pretty(self)?;
        crate::fs_private::write_private(&path, &json).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}
