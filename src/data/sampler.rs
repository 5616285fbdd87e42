//! Batches of indices drawn in shuffled passes over a pool (the training loops' and RotNet's).
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Draws batches from a pool in shuffled passes, reshuffling when a pass is used up, so every
/// index appears equally often; pools smaller than a batch are simply cycled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochSampler {
    pool: Vec<usize>,
    order: Vec<usize>,
}

impl EpochSampler {
    /// A sampler over `pool`.
    pub fn new(pool: &[usize]) -> Self {
        assert!(!pool.is_empty(), "cannot sample from an empty pool");
        EpochSampler { pool: pool.to_vec(), order: Vec::new() }
    }

    /// The next `n` indices.
    pub fn next_batch(&mut self, n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.order.is_empty() {
                self.order = self.pool.clone();
                self.order.shuffle(rng);
            }
            let take = (n - out.len()).min(self.order.len());
            out.extend(self.order.drain(self.order.len() - take..));
        }
        out
    }
}
