//! What a seed draws (its configuration and random stream) and the counts of a run.

use super::*;

/// splitmix64: the schedule, the configuration and the records follow from the seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    /// Log-uniform in `[lo, hi]`.
    pub(crate) fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        let x = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (a + (b - a) * x).exp() as u64
    }
}

/// What a seed draws.
#[derive(Debug, Clone)]
pub(crate) struct SimConfig {
    pub(crate) target_size: u64,
    pub(crate) compaction_threshold: usize,
    pub(crate) image_threshold: usize,
    pub(crate) gc_horizon: u64,
    pub(crate) checkpoint_distance: u64,
    pub(crate) keys: u128,
    pub(crate) hot_keys: u128,
    pub(crate) faults: SimFaults,
    /// Waiting writes released after each step, at most (the store's pace).
    pub(crate) background_releases: u64,
}

impl SimConfig {
    pub(crate) fn draw(rng: &mut Rng) -> SimConfig {
        let keys = u128::from(rng.range(4, 64));
        SimConfig {
            target_size: rng.log_range(16 << 10, 1 << 20),
            compaction_threshold: rng.range(2, 10) as usize,
            image_threshold: rng.range(1, 5) as usize,
            gc_horizon: match rng.range(0, 3) {
                0 => 0,
                1 => rng.range(1, 60),
                2 => rng.range(60, 600),
                _ => rng.range(600, 100_000),
            },
            checkpoint_distance: rng.log_range(4 << 10, 128 << 10),
            keys,
            hot_keys: (keys / 4).max(1),
            faults: SimFaults {
                fail_before: rng.range(0, 10) as f64 / 100.0,
                fail_after: rng.range(0, 10) as f64 / 100.0,
                late: rng.range(0, 10) as f64 / 100.0,
            },
            background_releases: rng.range(0, 3),
        }
    }

    pub(crate) fn conf(&self, mutation: Option<Mutation>) -> PageServerConf {
        let mut c = PageServerConf::defaults(Path::new(WORKDIR));
        c.remote_storage = RemoteStorageConfig::Local {
            local_path: PathBuf::from("/unused"),
        };
        c.compaction_target_size = self.target_size;
        c.compaction_threshold = self.compaction_threshold;
        c.image_creation_threshold = self.image_threshold;
        c.gc_horizon = self.gc_horizon;
        c.checkpoint_distance = self.checkpoint_distance;
        // The schedule runs compaction and GC itself.
        c.compaction_period = Duration::from_secs(10 * 365 * 24 * 3600);
        c.layer_map_mutation = mutation;
        c
    }
}

/// Counts over a run.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) seeds: u64,
    pub(crate) steps: u64,
    pub(crate) reads: u64,
    pub(crate) straddled_reads: u64,
    pub(crate) multi_output_compactions: u64,
    pub(crate) single_output_compactions: u64,
    pub(crate) images: u64,
    pub(crate) gc_removed: u64,
    pub(crate) resets: u64,
    pub(crate) restarts: u64,
    pub(crate) duplicates_refused: u64,
    pub(crate) faults_fired: u64,
    pub(crate) late_landed: u64,
    pub(crate) late_after_retry: u64,
    pub(crate) compactions_with_uploads_pending: u64,
    pub(crate) checkpoints_timed_out: u64,
}

impl Stats {
    pub(crate) fn add(&mut self, o: &Stats) {
        self.seeds += o.seeds;
        self.steps += o.steps;
        self.reads += o.reads;
        self.straddled_reads += o.straddled_reads;
        self.multi_output_compactions += o.multi_output_compactions;
        self.single_output_compactions += o.single_output_compactions;
        self.images += o.images;
        self.gc_removed += o.gc_removed;
        self.resets += o.resets;
        self.restarts += o.restarts;
        self.duplicates_refused += o.duplicates_refused;
        self.faults_fired += o.faults_fired;
        self.late_landed += o.late_landed;
        self.late_after_retry += o.late_after_retry;
        self.compactions_with_uploads_pending += o.compactions_with_uploads_pending;
        self.checkpoints_timed_out += o.checkpoints_timed_out;
    }
}
