//! The question program's account of running the kill path's script, as it sends it
//! with its next request (the program writes it without serde:
//! question-client/wire.rs, checked against this type in the question service's tests).

use serde::{Deserialize, Serialize};

/// How the kill path's script fared when the question program ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum KillPathRun {
    /// The script could not be started (the OS error number and its text, which the
    /// service writes from the number).
    NotStarted {
        errno: i32,
        #[serde(default)]
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
