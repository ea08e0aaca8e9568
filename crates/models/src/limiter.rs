//! Per-provider concurrency that backs off on 429 and grows back: additive increase,
//! multiplicative decrease, shared by every model of one provider in the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Notify;

#[derive(Debug)]
pub struct AdaptiveLimit {
    state: Mutex<State>,
    notify: Notify,
}

#[derive(Debug)]
struct State {
    limit: usize,
    max: usize,
    in_flight: usize,
    successes: usize,
}

/// Successes needed at the current limit before it grows by one.
const GROW_AFTER: usize = 8;

impl AdaptiveLimit {
    pub fn new(max: usize) -> Self {
        AdaptiveLimit {
            state: Mutex::new(State {
                limit: max.max(1),
                max: max.max(1),
                in_flight: 0,
                successes: 0,
            }),
            notify: Notify::new(),
        }
    }

    /// Waits for a slot; the slot is released when the permit drops.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    return Permit {
                        limit: self.clone(),
                    };
                }
            }
            notified.await;
        }
    }

    /// The provider said 429: halve the limit.
    pub fn throttled(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.limit = (s.limit / 2).max(1);
        s.successes = 0;
    }

    pub fn succeeded(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.successes += 1;
        if s.successes >= GROW_AFTER && s.limit < s.max {
            s.limit += 1;
            s.successes = 0;
            drop(s);
            self.notify.notify_waiters();
        }
    }

    pub fn current(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).limit
    }
}

pub struct Permit {
    limit: Arc<AdaptiveLimit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.limit.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight -= 1;
        drop(s);
        self.limit.notify.notify_waiters();
    }
}

/// The process-wide limit of one provider (created at `max` on first use).
pub fn for_provider(provider: &str, max: usize) -> Arc<AdaptiveLimit> {
    static LIMITS: OnceLock<Mutex<HashMap<String, Arc<AdaptiveLimit>>>> = OnceLock::new();
    let map = LIMITS.get_or_init(Default::default);
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(provider.to_string())
        .or_insert_with(|| Arc::new(AdaptiveLimit::new(max)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn halves_on_429_and_grows_back() {
        let limit = Arc::new(AdaptiveLimit::new(8));
        limit.throttled();
        assert_eq!(limit.current(), 4);
        limit.throttled();
        limit.throttled();
        limit.throttled();
        assert_eq!(limit.current(), 1);
        for _ in 0..GROW_AFTER {
            limit.succeeded();
        }
        assert_eq!(limit.current(), 2);
        let a = limit.acquire().await;
        let _b = limit.acquire().await;
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), limit.acquire()).await;
        assert!(waiting.is_err(), "a third permit must wait at limit 2");
        drop(a);
        tokio::time::timeout(std::time::Duration::from_millis(50), limit.acquire())
            .await
            .expect("released slot");
    }
}
