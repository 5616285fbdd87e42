//! Every random stream of a run, derived from its seed in one place: each draw (initial set,
//! cycles, RotNet, evaluation subset, dataset subsets and splits) has its own stream, so adding
//! or changing one never shifts another, and the same seed gives the same run. The derivations
//! are frozen: changing one changes every result of that stream (the pinned run in
//! `tests/al_loop.rs` and the dataset tests guard them).
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The streams a run draws from, each the seed it derives from mixed with its own constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// A random initial labeled set, or the diversity sampler's draws for one (run seed).
    InitialSet,
    /// RotNet training: batches and rotations (`rotnet.seed`, default the run seed).
    Rotnet,
    /// The fixed test subset of `train.eval_subset` (run seed).
    EvalSubset,
    /// `dataset.train_subset` (run seed).
    TrainSubset,
    /// `dataset.test_subset` (split seed).
    TestSubset,
    /// The train/test split of an image folder (split seed).
    FolderSplit,
    /// The augmented views with which `score-queries` scores picks under its common model (the
    /// common run's seed).
    CommonScoring,
}

impl Stream {
    /// The constant mixed into the seed (XOR), fixed when the stream was introduced.
    fn salt(self) -> u64 {
        /// Mixed into every dataset subset's seed (train and test alike, on top of the test's own).
        const SUBSET: u64 = 0x5eed_5b5e7;
        match self {
            Stream::InitialSet => 0x1abe1,
            Stream::Rotnet => 0x0707,
            Stream::EvalSubset => 0x6576_616c_5f73_7562,
            Stream::TrainSubset => SUBSET,
            Stream::TestSubset => 0x7e57 ^ SUBSET,
            Stream::FolderSplit => 0xf01d_e5,
            // Introduced as the seed itself, before streams had constants.
            Stream::CommonScoring => 0,
        }
    }

    /// This stream's generator for `seed` (the run's, RotNet's or the split's, as documented).
    pub fn rng(self, seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed ^ self.salt())
    }
}

/// Cycle `cycle`'s generator (batches, augmentation, MixUp, queries) and libtorch seed (weight
/// initialisation). Cycle 0 uses the run's seed itself, later cycles derived ones, so any cycle
/// can be re-run (on resume, or by `score-queries`) exactly as in an uninterrupted run.
pub fn cycle(seed: u64, cycle: usize) -> (ChaCha8Rng, i64) {
    if cycle == 0 {
        return (ChaCha8Rng::seed_from_u64(seed), seed as i64);
    }
    let derived = seed ^ (cycle as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (ChaCha8Rng::seed_from_u64(derived), (derived >> 1) as i64)
}

/// The libtorch seed of RotNet's weight initialisation for `seed` (`rotnet.seed` or the run's).
pub fn rotnet_torch(seed: u64) -> i64 {
    seed as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    /// The derivations as they were written before they moved here (frozen values).
    #[test]
    fn streams_are_the_seed_xor_their_frozen_constants() {
        let first = |mut r: ChaCha8Rng| r.next_u64();
        let plain = |s: u64| first(ChaCha8Rng::seed_from_u64(s));
        assert_eq!(first(Stream::InitialSet.rng(7)), plain(7 ^ 0x1abe1));
        assert_eq!(first(Stream::Rotnet.rng(7)), plain(7 ^ 0x0707));
        assert_eq!(first(Stream::EvalSubset.rng(7)), plain(7 ^ 0x6576_616c_5f73_7562));
        assert_eq!(first(Stream::TrainSubset.rng(7)), plain(7 ^ 0x5eed_5b5e7));
        assert_eq!(first(Stream::TestSubset.rng(7)), plain((7 ^ 0x7e57) ^ 0x5eed_5b5e7));
        assert_eq!(first(Stream::FolderSplit.rng(7)), plain(7 ^ 0xf01d_e5));
        assert_eq!(first(Stream::CommonScoring.rng(7)), plain(7));
        let (rng0, torch0) = cycle(7, 0);
        assert_eq!((first(rng0), torch0), (plain(7), 7));
        let derived = 7 ^ 2u64.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let (rng2, torch2) = cycle(7, 2);
        assert_eq!((first(rng2), torch2), (plain(derived), (derived >> 1) as i64));
    }

    #[test]
    fn streams_differ_from_each_other_and_between_seeds() {
        let all = [
            Stream::InitialSet,
            Stream::Rotnet,
            Stream::EvalSubset,
            Stream::TrainSubset,
            Stream::TestSubset,
            Stream::FolderSplit,
        ];
        let mut firsts: Vec<u64> = all.iter().map(|s| s.rng(1).next_u64()).collect();
        firsts.push(cycle(1, 0).0.next_u64());
        firsts.push(cycle(1, 1).0.next_u64());
        let n = firsts.len();
        firsts.sort_unstable();
        firsts.dedup();
        assert_eq!(firsts.len(), n);
        assert_ne!(Stream::InitialSet.rng(1).next_u64(), Stream::InitialSet.rng(2).next_u64());
    }
}
