//! Reading the sandbox's writable tree from the host without trusting it.
//!
//! The model controls every byte and every inode type under its home: a laid file may
//! have become a symlink to a host file, a FIFO that blocks a plain `read`, or a huge
//! file. Every open here is relative to a directory descriptor, refuses symlinks at
//! each component (`O_NOFOLLOW`), never blocks (`O_NONBLOCK`), and accepts only regular
//! files, read up to a cap.

use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: not a regular file (it is a {kind})")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path}: larger than the {cap}-byte cap")]
    TooLarge { path: String, cap: u64 },
    #[error("{path}: no such file")]
    Missing { path: String },
    #[error("{path}: a path component is a symlink or not a directory")]
    Symlink { path: String },
    #[error("{path}: path must be relative to the home and must not contain '..'")]
    BadPath { path: String },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a NUL-terminated CString alive for the call; open only reads it.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by open and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat` that never follows a symlink and never blocks.
pub(crate) fn open_at(dir: &OwnedFd, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(name)?;
    // SAFETY: `c` is a NUL-terminated CString alive for the call and `dir` a descriptor we own; openat only reads them.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by openat and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn kind_name(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "regular file",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        _ => "unknown file type",
    }
}

pub(crate) fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    let st = nix::sys::stat::fstat(fd).map_err(io::Error::from)?;
    Ok(st)
}

/// Reads at most `cap` bytes of `rel` under `home`; a file larger than that is an error,
/// never a silent truncation.
pub(crate) fn read_file(home: OwnedFd, rel: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let show = rel.display().to_string();
    let io_err = |source: io::Error| ReadError::Io {
        path: show.clone(),
        source,
    };
    let mut names = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => names.push(name.as_bytes().to_vec()),
            Component::CurDir => {}
            _ => return Err(ReadError::BadPath { path: show }),
        }
    }
    let Some(file_name) = names.pop() else {
        return Err(ReadError::BadPath { path: show });
    };
    let mut dir = home;
    for name in &names {
        dir = open_at(&dir, name, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| classify(e, &show))?;
    }
    let fd = open_at(&dir, &file_name, libc::O_RDONLY).map_err(|e| classify(e, &show))?;
    let st = fstat(&fd).map_err(io_err)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(ReadError::NotRegular {
            path: show,
            kind: kind_name(st.st_mode),
        });
    }
    let mut data = Vec::new();
    File::from(fd)
        .take(cap + 1)
        .read_to_end(&mut data)
        .map_err(io_err)?;
    if data.len() as u64 > cap {
        return Err(ReadError::TooLarge { path: show, cap });
    }
    Ok(data)
}

fn classify(e: io::Error, path: &str) -> ReadError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => ReadError::Missing { path: path.into() },
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => ReadError::Symlink { path: path.into() },
        _ => ReadError::Io {
            path: path.into(),
            source: e,
        },
    }
}

/// sha256 of `data` as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes a regular file through its descriptor, reading at most `cap` bytes; returns
/// None when the file is larger.
pub(crate) fn sha256_fd(fd: OwnedFd, cap: u64) -> io::Result<Option<String>> {
    let mut hasher = Sha256::new();
    let mut reader = File::from(fd).take(cap + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((total <= cap).then(|| hex(&hasher.finalize())))
}
