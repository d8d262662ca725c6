//! Where the root key comes from: `--root-key` / `HUSH_ROOT_KEY`, the output of `--root-key-command` /
//! `HUSH_ROOT_KEY_COMMAND`, or (with neither) the key file in the data dir. Two flags at once are refused rather
//! than ranked, so an operator never runs with a key other than the one they think.

use std::{path::Path, process::Stdio, time::Duration};

use tokio::io::AsyncReadExt;
use zeroize::Zeroizing;

use super::{
    KeyError,
    key_file::{KeyFile, Missing},
};
use crate::{config::RootKeyFlags, crypto::RootKey, store::Store};

/// How long `--root-key-command` may take: a secret manager CLI answers in seconds; one waiting for an
/// interactive login must not hang the start forever.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Most stdout a key command may print (a base64 key is 44 bytes; the rest is room for whitespace).
const COMMAND_OUTPUT_LIMIT: u64 = 4096;

/// One way of getting the root key.
pub enum KeySource {
    /// `--root-key` / `HUSH_ROOT_KEY`.
    Value(Zeroizing<String>),
    /// `--root-key-command` / `HUSH_ROOT_KEY_COMMAND`.
    Command(String),
    /// The key file in the data dir.
    File(KeyFile),
}

impl KeySource {
    /// The source `flags` name; the data dir's key file when they name none.
    pub fn from_flags(flags: &RootKeyFlags, data_dir: &Path) -> Result<Self, KeyError> {
        match (&flags.root_key, &flags.root_key_command) {
            (Some(_), Some(_)) => Err(KeyError::TwoSources),
            (Some(value), None) => Ok(Self::Value(Zeroizing::new(value.clone()))),
            (None, Some(command)) => Ok(Self::Command(command.clone())),
            (None, None) => Ok(Self::File(KeyFile::in_dir(data_dir))),
        }
    }

    /// Where the key comes from, for messages: the flag and its variable, or the file's path.
    pub fn origin(&self) -> String {
        match self {
            Self::Value(_) => "--root-key (HUSH_ROOT_KEY)".into(),
            Self::Command(_) => "--root-key-command (HUSH_ROOT_KEY_COMMAND)".into(),
            Self::File(file) => file.path().display().to_string(),
        }
    }

    /// The data dir's key file, when the key comes from it.
    pub fn key_file(&self) -> Option<&KeyFile> {
        match self {
            Self::File(file) => Some(file),
            _ => None,
        }
    }

    /// Reads the key. The key file is settled against `store` first (an interrupted rotation is finished); a
    /// missing key file is generated or refused as `missing` says.
    pub async fn load(&self, store: &Store, missing: Missing) -> Result<RootKey, KeyError> {
        let malformed = || KeyError::Malformed { origin: self.origin() };
        match self {
            Self::Value(value) => RootKey::from_base64(value).map_err(|_| malformed()),
            Self::Command(command) => {
                let output = run(command).await?;
                let text = std::str::from_utf8(&output).map_err(|_| malformed())?;
                RootKey::from_base64(text).map_err(|_| malformed())
            }
            Self::File(file) => file.settle(store, missing).await,
        }
    }
}

/// Runs `command` with `sh -c` and returns its stdout. Its stderr goes to ours (a secret manager's "not logged
/// in" is what the operator needs to see); its stdout is never shown, whatever happens.
async fn run(command: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| KeyError::Command(format!("could not be started: {error}")))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let finished = tokio::time::timeout(COMMAND_TIMEOUT, async {
        // Allocated once, so no copy of the key is left behind in a buffer that grew.
        let mut output = Zeroizing::new(Vec::with_capacity(COMMAND_OUTPUT_LIMIT as usize + 1));
        // One byte over the limit tells "too much" from "exactly the limit".
        (&mut stdout).take(COMMAND_OUTPUT_LIMIT + 1).read_to_end(&mut output).await?;
        drop(stdout);
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, output))
    })
    .await;
    let (status, output) = match finished {
        Err(_) => {
            return Err(KeyError::Command(format!("did not finish within {} s", COMMAND_TIMEOUT.as_secs())));
        }
        Ok(Err(error)) => return Err(KeyError::Command(format!("failed: {error}"))),
        Ok(Ok(done)) => done,
    };
    // Size first: a command cut off after the limit dies of SIGPIPE, and that is not what went wrong.
    if output.len() as u64 > COMMAND_OUTPUT_LIMIT {
        return Err(KeyError::Command(format!(
            "printed more than {COMMAND_OUTPUT_LIMIT} bytes; it must print the key only"
        )));
    }
    if !status.success() {
        let how =
            status.code().map_or_else(|| "was killed by a signal".to_owned(), |code| format!("exited with {code}"));
        return Err(KeyError::Command(format!("{how}; its output is not shown")));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_prints_the_key() {
        let key = RootKey::generate();
        let output = run(&format!("echo '{}'", key.to_base64().as_str())).await.unwrap();
        assert!(RootKey::from_base64(std::str::from_utf8(&output).unwrap()).unwrap().is(&key));
    }

    #[tokio::test]
    async fn failures_never_show_the_output() {
        let failed = run("echo SECRET-OUTPUT; exit 3").await.unwrap_err().to_string();
        assert!(failed.contains("exited with 3") && !failed.contains("SECRET"), "{failed}");
        let killed = run("kill -9 $$").await.unwrap_err().to_string();
        assert!(killed.contains("signal"), "{killed}");
        let flood = run("yes SECRET-OUTPUT | head -c 100000").await.unwrap_err().to_string();
        assert!(flood.contains("more than 4096 bytes") && !flood.contains("SECRET"), "{flood}");
    }

    #[test]
    fn two_sources_are_refused() {
        let flags = RootKeyFlags { root_key: Some("a".into()), root_key_command: Some("b".into()) };
        assert!(matches!(KeySource::from_flags(&flags, Path::new("/d")), Err(KeyError::TwoSources)));
        let flags = RootKeyFlags::default();
        let source = KeySource::from_flags(&flags, Path::new("/d")).unwrap();
        assert_eq!(source.origin(), "/d/root.key");
    }
}
