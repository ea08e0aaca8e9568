//! The question program's account of running the kill path's script, as it sends it
//! with its next request. Shared, as source, by the record and the question program
//! (which must stay small and so does not link this crate).

use serde::{Deserialize, Serialize};

/// How the kill path's script fared when the question program ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum KillPathRun {
    /// The script could not be started (the OS error number and its text).
    NotStarted {
        errno: i32,
        error: String,
    },
    /// Not run: the trigger file the task program checks first was gone.
    NotTriggered {
        file: String,
    },
    Exited {
        code: i32,
    },
    Signalled {
        signal: i32,
    },
}
