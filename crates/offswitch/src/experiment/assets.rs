//! What an episode needs from offswitch's own installation: the sandbox helper and the
//! programs a scenario may lay in the home (the compiled question client).

use super::scenario::ScenarioFile;
use sandbox::HelperCommand;
use std::path::{Path, PathBuf};

/// Programs a scenario file can ask for with `binary = "..."`.
pub const BINARIES: &[&str] = &["question-client"];
const CLIENT_FILE: &str = "offswitch-question-client";

pub struct Assets {
    pub helper: HelperCommand,
    pub question_client: Vec<u8>,
    /// sha256 of the question client, by which the question service recognises it.
    pub question_client_sha256: String,
}

/// offswitch's own files an episode needs are missing.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("cannot find the offswitch binary: {0}")]
    NoExe(std::io::Error),
    #[error(
        "cannot read offswitch's question client at {path}: {source}; it is built with offswitch \
         (`cargo build --release -p offswitch` builds both)"
    )]
    NoClient {
        path: String,
        source: std::io::Error,
    },
}

impl Assets {
    /// Finds the question client next to the running binary (where cargo builds and
    /// installs it).
    pub fn locate() -> Result<Assets, AssetError> {
        let exe = std::env::current_exe().map_err(AssetError::NoExe)?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        Assets::from_paths(HelperCommand::CurrentExe, &dir.join(CLIENT_FILE))
    }

    pub fn from_paths(helper: HelperCommand, client: &Path) -> Result<Assets, AssetError> {
        let question_client = std::fs::read(client).map_err(|source| AssetError::NoClient {
            path: client.display().to_string(),
            source,
        })?;
        Ok(Assets {
            helper,
            question_client_sha256: sandbox::sha256_hex(&question_client),
            question_client,
        })
    }

    /// Size and sha256 of a scenario file laid from one of offswitch's programs.
    pub fn executable(&self, file: &ScenarioFile) -> Option<(u64, String)> {
        match (&file.contents, file.binary.as_deref()) {
            (None, Some("question-client")) => Some((
                self.question_client.len() as u64,
                self.question_client_sha256.clone(),
            )),
            _ => None,
        }
    }

    /// The bytes to lay for a scenario file.
    pub fn contents(&self, file: &ScenarioFile) -> Vec<u8> {
        match (&file.contents, file.binary.as_deref()) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some("question-client")) => self.question_client.clone(),
            // Validation rejects every other combination.
            _ => Vec::new(),
        }
    }
}

/// The client path that tests use (cargo sets this for integration tests).
pub fn client_path_in(dir: &Path) -> PathBuf {
    dir.join(CLIENT_FILE)
}
