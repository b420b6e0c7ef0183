//! Configuring failpoints at run time: the actions of the `fail` crate, plus `exit` (the
//! process ends at once, as in a crash) and observable pauses, for `PUT /v1/failpoints`, the
//! `FAILPOINTS` environment variable and the tests. The `fail` crate's registry is one per
//! process, so this reaches the failpoints of `layer-format` as well as the server's.

/// Configures failpoint `name` with `actions` in the `fail` crate's syntax, plus the action
/// `exit`, which ends the process at once (no destructors, no flushing), as a crash would, and
/// `N*off->exit`, which lets `N` evaluations pass and exits at the next.
/// An empty `actions` or `off` removes it. Only meaningful with the `testing` feature.
///
/// `pause` and `N*pause` are observable pauses (see [`paused`]): the first `N` evaluations (every
/// one for `pause`) block until the failpoint is configured again. Every configuration of a
/// name releases the threads paused at it.
pub fn configure(name: &str, actions: &str) -> Result<(), String> {
    pauses::release(name);
    match actions.trim() {
        "" | "off" => {
            fail::remove(name);
            Ok(())
        }
        "exit" => fail::cfg_callback(name, || std::process::exit(77)),
        actions if actions.ends_with("*off->exit") => {
            let skip: u64 = actions
                .trim_end_matches("*off->exit")
                .trim()
                .parse()
                .map_err(|_| format!("bad count in {actions:?}"))?;
            let left = std::sync::atomic::AtomicU64::new(skip);
            fail::cfg_callback(name, move || {
                let passed = left.fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                );
                if passed.is_err() {
                    std::process::exit(77);
                }
            })
        }
        actions => match pauses::parse(actions) {
            Some(count) => {
                pauses::arm(name, count);
                let owned = name.to_string();
                fail::cfg_callback(name, move || pauses::pause_here(&owned))
            }
            None => fail::cfg(name, actions),
        },
    }
}

/// A failpoint configured with `pause`: how often it was evaluated and how many threads wait
/// at it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseState {
    /// The failpoint's name.
    pub name: String,
    /// Evaluations since it was configured.
    pub hits: u64,
    /// Threads blocked at it now.
    pub waiting: usize,
}

/// Every failpoint configured with `pause` since start-up, with its current state.
pub fn paused() -> Vec<PauseState> {
    pauses::snapshot()
}

mod pauses {
    //! Observable pauses. A paused thread waits on a condition variable until the epoch of its
    //! failpoint changes (any new configuration). On a multi-threaded tokio worker the wait runs
    //! under `block_in_place`, so that a pause inside async code never starves the runtime.

    use super::PauseState;
    use std::collections::BTreeMap;
    use std::sync::{Condvar, Mutex, MutexGuard};

    #[derive(Debug, Default)]
    struct Entry {
        /// Pauses left; `u64::MAX` pauses every evaluation.
        remaining: u64,
        epoch: u64,
        hits: u64,
        waiting: usize,
    }

    static STATE: Mutex<BTreeMap<String, Entry>> = Mutex::new(BTreeMap::new());
    static CHANGED: Condvar = Condvar::new();

    fn lock() -> MutexGuard<'static, BTreeMap<String, Entry>> {
        STATE.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `pause` → `Some(None)`, `N*pause` → `Some(Some(N))`, anything else → `None`.
    pub(super) fn parse(actions: &str) -> Option<Option<u64>> {
        if actions == "pause" {
            return Some(None);
        }
        let (n, action) = actions.split_once('*')?;
        if action.trim() != "pause" {
            return None;
        }
        n.trim().parse().ok().map(Some)
    }

    pub(super) fn arm(name: &str, count: Option<u64>) {
        let mut s = lock();
        let e = s.entry(name.to_string()).or_default();
        e.remaining = count.unwrap_or(u64::MAX);
        e.hits = 0;
    }

    /// Disarms `name` and wakes the threads paused at it.
    pub(super) fn release(name: &str) {
        let mut s = lock();
        if let Some(e) = s.get_mut(name) {
            e.remaining = 0;
            e.epoch += 1;
            CHANGED.notify_all();
        }
    }

    pub(super) fn pause_here(name: &str) {
        let mut s = lock();
        let Some(e) = s.get_mut(name) else { return };
        e.hits += 1;
        match e.remaining {
            0 => return,
            u64::MAX => {}
            _ => e.remaining -= 1,
        }
        e.waiting += 1;
        let epoch = e.epoch;
        tracing::info!(failpoint = name, "paused at failpoint");
        let wait = move || {
            while s.get(name).is_some_and(|e| e.epoch == epoch) {
                s = CHANGED.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            if let Some(e) = s.get_mut(name) {
                e.waiting -= 1;
            }
        };
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_worker {
            tokio::task::block_in_place(wait);
        } else {
            wait();
        }
        tracing::info!(failpoint = name, "resumed at failpoint");
    }

    pub(super) fn snapshot() -> Vec<PauseState> {
        lock()
            .iter()
            .map(|(name, e)| PauseState {
                name: name.clone(),
                hits: e.hits,
                waiting: e.waiting,
            })
            .collect()
    }
}

/// Configures every `name=actions` of a `FAILPOINTS` value (`;`-separated), as
/// [`configure`] does. The `fail` crate reads `FAILPOINTS` itself only through its own
/// actions, which lack `exit` and the observable pause, so the value is split here.
pub fn configure_all(spec: &str) -> Result<(), String> {
    for item in spec.split(';').filter(|s| !s.trim().is_empty()) {
        let (name, actions) = item
            .split_once('=')
            .ok_or_else(|| format!("FAILPOINTS entry {item:?} is not name=actions"))?;
        configure(name.trim(), actions.trim()).map_err(|e| format!("failpoint {name}: {e}"))?;
    }
    Ok(())
}

/// Whether failpoints are compiled into this build.
pub const fn enabled() -> bool {
    cfg!(feature = "testing")
}

#[cfg(test)]
#[cfg(feature = "testing")]
mod tests {
    use super::*;

    #[test]
    fn a_failpoints_value_configures_each_entry_and_names_a_bad_one() {
        configure_all("control-test-a=return; control-test-b=2*pause;").unwrap();
        assert!(
            paused()
                .iter()
                .any(|p| p.name == "control-test-b" && p.waiting == 0)
        );
        let e = configure_all("control-test-a=off;nonsense").unwrap_err();
        assert!(e.contains("\"nonsense\" is not name=actions"), "{e}");
        let e = configure_all("control-test-a=3*off->exit;control-test-c=x*off->exit").unwrap_err();
        assert!(e.contains("failpoint control-test-c"), "{e}");
        configure_all("control-test-a=off;control-test-b=off").unwrap();
    }
}
