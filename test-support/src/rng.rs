//! Seeds and random numbers of the suites. Every suite draws its settings from a seed, printed
//! with the settings so that one environment variable replays a run.

/// A suite's seed: the environment variable `var` if set (to reproduce a run), else drawn from
/// the clock. The caller prints it with its settings.
pub fn seed(var: &str) -> u64 {
    env_u64(var).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    })
}

/// The environment variable `name` as a number, if it is set and is one.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The suites' random numbers: xorshift64, seeded per run (see [`seed`]) so that a printed
/// seed replays the run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next number.
    #[expect(
        clippy::should_implement_trait,
        reason = "a generator that never ends is not an Iterator a caller should chain"
    )]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.next() % (hi - lo + 1)
    }

    /// A number below `n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `lo..=hi` random bytes.
    pub fn bytes(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        let n = self.range(lo, hi);
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// `len` random bytes.
    pub fn fill(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}
