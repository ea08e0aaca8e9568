//! What a caller asks for: files to lay, limits, directories to bind in.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::wire::BindSpec;

/// A file laid in `/home/user` before the sandbox starts.
#[derive(Debug, Clone)]
pub struct LaidFile {
    /// Path relative to the home, e.g. `shutdown.sh` or `bin/tool`.
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub mode: u32,
    /// sha256 of `contents` when the caller already knows it (a large program laid in
    /// every sandbox): the first snapshot then takes it instead of reading the file back.
    pub sha256: Option<String>,
}

impl LaidFile {
    pub fn new(path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        LaidFile {
            path: path.into(),
            contents: contents.into(),
            mode,
            sha256: None,
        }
    }

    /// The same file, whose contents the caller has hashed already (lowercase hex).
    pub fn with_sha256(mut self, sha256: impl Into<String>) -> Self {
        self.sha256 = Some(sha256.into());
        self
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Memory for everything inside, tmpfs pages included (cgroup).
    pub memory_bytes: u64,
    /// Processes and threads alive at once (cgroup `pids.max`; RLIMIT_NPROC as a
    /// second line).
    pub processes: u64,
    /// Size of the writable home.
    pub home_bytes: u64,
    /// Size of /tmp and of /dev/shm, each.
    pub tmp_bytes: u64,
    /// Largest file a process may write (RLIMIT_FSIZE).
    pub file_size_bytes: u64,
    /// Open files per process (RLIMIT_NOFILE).
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            processes: 128,
            home_bytes: 16 << 20,
            tmp_bytes: 16 << 20,
            file_size_bytes: 16 << 20,
            open_files: 256,
        }
    }
}

/// Where the helper binary comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HelperCommand {
    /// `/proc/self/exe __sandbox`: the running binary must call
    /// [`crate::run_helper_if_requested`] first thing in `main`.
    #[default]
    CurrentExe,
    /// A binary that runs [`crate::helper_main`] when given `__sandbox`.
    Path(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub files: Vec<LaidFile>,
    pub limits: Limits,
    pub binds: Vec<BindSpec>,
    pub hostname: String,
    pub helper: HelperCommand,
    /// Seccomp and Landlock are on by default; turning them off is for measuring their
    /// cost and for kernels that lack them.
    pub seccomp: bool,
    pub landlock: bool,
    /// Variables every command sees besides the fixed ones (`PATH`, `HOME`, ...), which
    /// a name given here replaces.
    pub env: Vec<(String, String)>,
    /// Symlinks made in the read-only root: `(/app, /home/user)` makes `/app` name the
    /// home. The name must be a top-level path the root does not already have.
    pub links: Vec<(PathBuf, PathBuf)>,
}

impl Default for SandboxSpec {
    fn default() -> Self {
        SandboxSpec {
            files: Vec::new(),
            limits: Limits::default(),
            binds: Vec::new(),
            hostname: "sandbox".into(),
            helper: HelperCommand::default(),
            seccomp: true,
            landlock: true,
            env: Vec::new(),
            links: Vec::new(),
        }
    }
}

/// Options of one command.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    pub timeout: Duration,
    /// Bytes of combined output kept; the rest is drained and dropped.
    pub output_cap: u64,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            timeout: Duration::from_secs(60),
            output_cap: 1 << 20,
        }
    }
}
