//! The server's one retry policy: exponential backoff with jitter, from the `backon` crate.
//!
//! Every retry loop (the upload queue, the background flush, generation claims) takes its
//! delays from [`Backoff`]. Delays start in [25 ms, 50 ms) and double up to [2.5 s, 5 s): each
//! is the exponential step plus a random part of up to the same amount, so that the timelines
//! of a node retrying against one struggling store spread their attempts out instead of
//! arriving together.
//!
//! The random part is seeded from what retries (a tenant and timeline id), not from the clock:
//! two timelines draw different delays, and a simulation that replays a seed replays the same
//! delays.

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// The first step.
pub const FIRST: Duration = Duration::from_millis(25);
/// The longest step (a delay is at most twice a step).
pub const LONGEST: Duration = Duration::from_millis(2500);

/// Retry delays for one loop.
#[derive(Debug)]
pub struct Backoff {
    seed: u64,
    longest: Duration,
    delays: ExponentialBackoff,
}

impl Backoff {
    /// Delays seeded from `ids` (the bytes of the ids of what retries), for background work.
    pub fn new(ids: &[&[u8]]) -> Backoff {
        Backoff::capped(ids, LONGEST)
    }

    /// Delays whose step stops growing at `longest`: for retries a request waits on (a
    /// generation claim), which must fail in seconds, not minutes, when the store is down.
    pub fn capped(ids: &[&[u8]], longest: Duration) -> Backoff {
        assert!(
            longest >= FIRST,
            "a cap of {longest:?} is below the first step"
        );
        let seed = ids.iter().fold(0u64, |s, b| {
            s.rotate_left(32) ^ u64::from(crc32c::crc32c(b))
        });
        Backoff {
            seed,
            longest,
            delays: build(seed, longest),
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        // Built without a limit on attempts, so the iterator never ends; a fresh one if it did.
        match self.delays.next() {
            Some(d) => d,
            None => {
                self.reset();
                FIRST
            }
        }
    }

    /// Starts over from the first step (after an attempt that made progress).
    pub fn reset(&mut self) {
        self.seed = self.seed.wrapping_add(1);
        self.delays = build(self.seed, self.longest);
    }
}

fn build(seed: u64, longest: Duration) -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(FIRST)
        .with_max_delay(longest)
        .with_factor(2.0)
        .with_jitter()
        .with_jitter_seed(seed)
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_their_envelope_and_start_over_on_reset() {
        // Ids drawn per run: the envelope holds for any seed.
        let ids = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_le_bytes();
        let mut b = Backoff::new(&[&ids, b"timeline"]);
        let mut step = FIRST;
        for _ in 0..20 {
            let d = b.next_delay();
            // backon computes in f32 seconds: allow for its rounding.
            let (low, high) = (step.mul_f64(0.999), step.mul_f64(2.001));
            assert!(
                d >= low && d < high,
                "{d:?} outside [{step:?}, 2 x {step:?}) for ids {ids:?}"
            );
            step = (step * 2).min(LONGEST);
        }
        b.reset();
        let d = b.next_delay();
        assert!(d >= FIRST && d < FIRST * 2, "{d:?} after a reset");
    }

    #[test]
    fn two_timelines_draw_different_delays_and_one_draws_the_same_twice() {
        let draw = |ids: &[&[u8]]| {
            let mut b = Backoff::new(ids);
            (0..8).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        let a = draw(&[b"tenant", b"timeline a"]);
        assert_eq!(a, draw(&[b"tenant", b"timeline a"]));
        assert_ne!(a, draw(&[b"tenant", b"timeline b"]));
    }
}
