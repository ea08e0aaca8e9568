//! The byte protocol between the supervisor, the helper and the sandbox's PID 1.
//!
//! Every message is a frame: a little-endian `u32` length and a JSON header, then a
//! little-endian `u32` length and raw bytes (command output is not always UTF-8, and
//! JSON-escaping megabytes of it would cost more than the call itself).

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// Largest header we accept: headers are small; anything bigger is a protocol error.
const MAX_HEADER: usize = 1 << 20;
/// Largest body we accept (bodies are capped command output).
const MAX_BODY: usize = 1 << 30;

/// Everything the helper needs to build one sandbox. Sent as the first frame on the
/// helper's stdin, because the helper starts with an empty environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelperConfig {
    /// Host uid/gid to drop to before creating the namespaces (root mode only).
    pub host_ids: Option<(u32, u32)>,
    /// `cgroup.procs` files the helper writes its own pid into while still root.
    pub cgroup_procs: Vec<PathBuf>,
    pub rlimits: Rlimits,
    /// Empty host directory the new root is assembled on (inside the new mount namespace).
    pub root_dir: PathBuf,
    /// What `/home/user` is.
    pub home: HomeMount,
    pub tmp_size_bytes: u64,
    /// Host directories bound at the given absolute path inside the sandbox.
    pub binds: Vec<BindSpec>,
    pub hostname: String,
    pub seccomp: bool,
    pub landlock: bool,
    /// See [`crate::SandboxSpec::env`].
    pub env: Vec<(String, String)>,
    /// See [`crate::SandboxSpec::links`].
    pub links: Vec<(PathBuf, PathBuf)>,
}

/// The sandbox's home.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HomeMount {
    /// A tmpfs of this size, mounted by PID 1 in the sandbox's own mount namespace (root
    /// mode): it appears in no other namespace, so creating a sandbox never copies the
    /// homes of the others, and the supervisor reaches it through a directory descriptor.
    Tmpfs { size_bytes: u64 },
    /// A host directory bound read-write (rootless mode).
    Bind { host: PathBuf },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BindSpec {
    pub host: PathBuf,
    pub inside: PathBuf,
    pub writable: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Rlimits {
    pub nproc: Option<u64>,
    pub fsize: u64,
    pub nofile: u64,
    /// Address-space cap, used only when no memory cgroup enforces a limit.
    pub address_space: Option<u64>,
}

/// What PID 1 says once it is ready, or why it could not start.
#[derive(Debug, Serialize, Deserialize)]
pub enum Hello {
    Ready { protections: Vec<String> },
    Failed { stage: String, message: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExecRequest {
    pub command: String,
    pub timeout_ms: u64,
    pub output_cap: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExecReplyHeader {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub truncated: bool,
    pub duration_us: u64,
}

pub fn write_frame<W: Write, H: Serialize>(w: &mut W, header: &H, body: &[u8]) -> io::Result<()> {
    let header = serde_json::to_vec(header).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(8 + header.len() + body.len());
    buf.extend_from_slice(&(header.len() as u32).to_le_bytes());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}

pub fn read_frame<R: Read, H: DeserializeOwned>(r: &mut R) -> io::Result<(H, Vec<u8>)> {
    let header_len = read_len(r, MAX_HEADER)?;
    let mut header = vec![0; header_len];
    r.read_exact(&mut header)?;
    let body_len = read_len(r, MAX_BODY)?;
    let mut body = vec![0; body_len];
    r.read_exact(&mut body)?;
    let header = serde_json::from_slice(&header)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((header, body))
}

fn read_len<R: Read>(r: &mut R, max: usize) -> io::Result<usize> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    Ok(len)
}

/// Waits until `fd` is readable (or at its end) for at most `timeout`; false on timeout
/// or error. A pidfd turns readable when its process exits.
pub fn wait_readable(fd: std::os::fd::BorrowedFd, timeout: std::time::Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let left = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        match poll(&mut [PollFd::new(fd, PollFlags::POLLIN)], left) {
            Ok(n) => return n > 0,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_binary_bodies() {
        let mut buf = Vec::new();
        let req = ExecRequest {
            command: "echo hi".into(),
            timeout_ms: 5,
            output_cap: 7,
        };
        write_frame(&mut buf, &req, &[0, 255, 10]).unwrap();
        let (back, body): (ExecRequest, _) = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back.command, "echo hi");
        assert_eq!(back.timeout_ms, 5);
        assert_eq!(body, vec![0, 255, 10]);
    }

    #[test]
    fn oversized_header_is_refused() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&(u32::MAX).to_le_bytes());
        let err = read_frame::<_, ExecRequest>(&mut buf.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
