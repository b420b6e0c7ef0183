//! Locks a panic elsewhere cannot turn into a failure of every later request (#13, brief
//! section 6: no request may poison state that other requests share).
//!
//! The std locks of this crate guard maps and small records whose every critical section
//! leaves them consistent (an insert, a remove, a clone, a replace): a panic in a thread that
//! held one cannot have left a half-made change behind, so the poison flag carries no
//! information and these helpers ignore it. The one lock whose critical sections make
//! several-step changes, a timeline's `layers`, is not taken through them: a timeline that
//! finds it poisoned marks itself broken and refuses to change or read its layers.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Mutex::lock`] that ignores poisoning.
pub trait MutexExt<T> {
    /// Locks; a panic of an earlier holder is ignored.
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T>;
}

impl<T> MutexExt<T> for Mutex<T> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`RwLock::read`] and [`RwLock::write`] that ignore poisoning.
pub trait RwLockExt<T> {
    /// Locks for reading; a panic of an earlier writer is ignored.
    fn read_unpoisoned(&self) -> RwLockReadGuard<'_, T>;
    /// Locks for writing; a panic of an earlier writer is ignored.
    fn write_unpoisoned(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T> RwLockExt<T> for RwLock<T> {
    fn read_unpoisoned(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }
    fn write_unpoisoned(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_locked_does_not_fail_later_lockers() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let r = std::sync::Arc::new(RwLock::new(2));
        let (m2, r2) = (m.clone(), r.clone());
        let joined = std::thread::spawn(move || {
            let _a = m2.lock().unwrap();
            let _b = r2.write().unwrap();
            panic!("holder panics");
        })
        .join();
        assert!(joined.is_err());
        assert!(m.is_poisoned() && r.is_poisoned());
        assert_eq!(*m.lock_unpoisoned(), 1);
        assert_eq!(*r.read_unpoisoned(), 2);
        *r.write_unpoisoned() = 3;
        assert_eq!(*r.read_unpoisoned(), 3);
    }
}
