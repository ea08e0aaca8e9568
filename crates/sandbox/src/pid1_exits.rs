//! When each sandbox's PID 1 exited, as the kernel says it. The notice of a death that
//! the zygote relays (PID 1's exit status, through the helper, the zygote and a reader
//! thread) came up to 1.3 s late at 1000 sandboxes on two cores; a pidfd of PID 1 turns
//! readable the moment it exits, so one thread waiting on all of them dates each death
//! to within its own wake-up. The relayed notice still decides that, and how, the
//! machine died; this only dates it.

use crate::sandbox::DeathWatch;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime};

struct Watcher {
    epoll: Epoll,
    /// By descriptor number (unique while the descriptor is held here).
    watched: Mutex<HashMap<u64, (OwnedFd, DeathWatch)>>,
}

fn watcher() -> Option<&'static Watcher> {
    static WATCHER: OnceLock<Option<&'static Watcher>> = OnceLock::new();
    *WATCHER.get_or_init(|| {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ok()?;
        // One per process, for its whole life.
        let watcher: &'static Watcher = Box::leak(Box::new(Watcher {
            epoll,
            watched: Mutex::new(HashMap::new()),
        }));
        std::thread::Builder::new()
            .name("pid1-exits".into())
            .spawn(move || watcher.run())
            .ok()?;
        Some(watcher)
    })
}

/// Dates `death` by `pidfd`, a pidfd of the sandbox's PID 1, once it turns readable.
/// False if it cannot be watched (the death is then dated by its notice).
pub(crate) fn watch(pidfd: OwnedFd, death: DeathWatch) -> bool {
    let Some(watcher) = watcher() else {
        return false;
    };
    let key = pidfd.as_raw_fd() as u64;
    let mut watched = watcher.watched.lock().unwrap_or_else(|e| e.into_inner());
    // Added while the map is held, so the thread finds the entry of any event.
    let event = EpollEvent::new(EpollFlags::EPOLLIN, key);
    if watcher.epoll.add(&pidfd, event).is_err() {
        return false;
    }
    watched.insert(key, (pidfd, death));
    true
}

impl Watcher {
    fn run(&self) {
        let mut events = [EpollEvent::empty(); 64];
        loop {
            let ready = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(_) => return,
            };
            let at = (Instant::now(), SystemTime::now());
            let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            for event in &events[..ready] {
                if let Some((pidfd, death)) = watched.remove(&event.data()) {
                    let _ = self.epoll.delete(&pidfd);
                    death.exited(at);
                }
            }
        }
    }
}
