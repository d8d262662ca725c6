//! The CLI's saved logins, one per profile: server address and access token in `<config dir>/hush/session.json`
//! for the default profile and `<config dir>/hush/profiles/<name>.json` for the others (mode 0600). The profile
//! of a run is `--profile` or `HUSH_PROFILE`, chosen once at start.

use std::{path::PathBuf, sync::OnceLock};

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

/// Longest profile name.
const MAX_PROFILE_LEN: usize = 64;

static PROFILE: OnceLock<Option<String>> = OnceLock::new();

/// Sets this run's profile (`None`: the default one); a name that could not be a file name is refused.
pub fn choose_profile(profile: Option<String>) -> anyhow::Result<()> {
    // An empty HUSH_PROFILE is unset, as the other HUSH_* variables are.
    let profile = profile.filter(|p| p != "default" && !p.is_empty());
    if let Some(name) = &profile {
        let valid = name.len() <= MAX_PROFILE_LEN
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        anyhow::ensure!(
            valid,
            "--profile '{name}': use 1 to {MAX_PROFILE_LEN} letters, digits, '_', '.' and '-', starting with a letter \
             or digit"
        );
    }
    let _ = PROFILE.set(profile);
    Ok(())
}

/// The command that logs this run's profile in.
pub fn login_command() -> String {
    match profile_name() {
        "default" => "hush login".to_owned(),
        name => format!("hush login --profile {name}"),
    }
}

/// This run's profile name, as people say it.
pub fn profile_name() -> &'static str {
    PROFILE.get().and_then(Option::as_deref).unwrap_or("default")
}

impl Session {
    /// The session file of this run's profile, under `$HUSH_CONFIG_DIR`, else the user config dir.
    pub fn path() -> anyhow::Result<PathBuf> {
        let dir = match std::env::var_os("HUSH_CONFIG_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => dirs::config_dir().context("no user config directory; set HUSH_CONFIG_DIR")?.join("hush"),
        };
        Ok(match PROFILE.get().and_then(Option::as_deref) {
            None => dir.join("session.json"),
            Some(name) => dir.join("profiles").join(format!("{name}.json")),
        })
    }

    /// Reads the saved session.
    pub fn load() -> anyhow::Result<Self> {
        let path = Self::path()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                anyhow::bail!("not logged in ({} missing): run `{}` first", path.display(), login_command())
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
        };
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
