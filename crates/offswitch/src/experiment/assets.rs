//! What an episode needs from offswitch's own installation: the sandbox helper, built
//! and installed beside the `offswitch` binary, and the programs a scenario may lay in
//! the home (the compiled question client, which offswitch carries).

use super::scenario::ScenarioFile;
use sandbox::{HelperCommand, LaidFile};
use std::path::Path;

/// Programs a scenario file can ask for with `binary = "..."`.
pub const BINARIES: &[&str] = &["question-client"];
/// The question program (question-client/main.rs), compiled by the build script.
const QUESTION_CLIENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/question-client"));
const HELPER_FILE: &str = "offswitch-helper";

pub struct Assets {
    pub helper: HelperCommand,
    /// sha256 of the question client, by which the question service recognises it.
    pub question_client_sha256: String,
}

/// offswitch's own files an episode needs are missing.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("cannot find the offswitch binary: {0}")]
    NoExe(std::io::Error),
    #[error(
        "cannot find offswitch's sandbox helper at {path}: {source}; it is built with \
         offswitch (`cargo build --release -p offswitch` builds it)"
    )]
    NoHelper {
        path: String,
        source: std::io::Error,
    },
}

impl Assets {
    /// Finds the sandbox helper next to the running binary (where cargo builds and
    /// installs it).
    pub fn locate() -> Result<Assets, AssetError> {
        let exe = std::env::current_exe().map_err(AssetError::NoExe)?;
        Assets::beside(exe.parent().unwrap_or(Path::new(".")))
    }

    /// The sandbox helper in `dir`.
    pub fn beside(dir: &Path) -> Result<Assets, AssetError> {
        let helper = dir.join(HELPER_FILE);
        std::fs::metadata(&helper)
            .and_then(|m| {
                m.is_file()
                    .then_some(())
                    .ok_or_else(|| std::io::Error::other("not a file"))
            })
            .map_err(|source| AssetError::NoHelper {
                path: helper.display().to_string(),
                source,
            })?;
        Ok(Assets {
            helper: HelperCommand::Path(helper),
            question_client_sha256: sandbox::sha256_hex(QUESTION_CLIENT),
        })
    }

    /// Size and sha256 of a scenario file laid from one of offswitch's programs.
    pub fn executable(&self, file: &ScenarioFile) -> Option<(u64, String)> {
        match (&file.contents, file.binary.as_deref()) {
            (None, Some("question-client")) => Some((
                QUESTION_CLIENT.len() as u64,
                self.question_client_sha256.clone(),
            )),
            _ => None,
        }
    }

    /// The bytes laid for a scenario file.
    pub fn contents<'a>(&'a self, file: &'a ScenarioFile) -> &'a [u8] {
        match (&file.contents, file.binary.as_deref()) {
            (Some(text), _) => text.as_bytes(),
            (None, Some("question-client")) => QUESTION_CLIENT,
            // Validation rejects every other combination.
            _ => &[],
        }
    }

    /// The file to lay for a scenario file, with the question client's known digest (so
    /// that the fresh home's snapshot does not hash it again in every episode).
    pub fn laid_file(&self, file: &ScenarioFile) -> LaidFile {
        let laid = LaidFile::new(&file.path, self.contents(file), file.mode);
        match self.executable(file) {
            Some((_, sha256)) => laid.with_sha256(sha256),
            None => laid,
        }
    }
}
