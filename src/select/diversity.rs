//! Diversity-based sampling (Buchert et al., Eq. 1–2): repeatedly pick point i with probability
//! ∝ d_i^(1/T), d_i being its distance to the nearest already-selected point.
//!
//! T = 0 is k-center greedy (argmax, ties to the lowest index), T = 0.5 is k-means++ seeding.
//! Without labeled points the first pick is uniform at random from the seed, as in the Coreset
//! reference (BADGE's reference instead takes the largest-norm point; here that behaviour comes
//! from the query strategies, which seed with the labeled set).
use rand::Rng;

mod prune;
pub use prune::{diversity_sample_stats, DiversityOptions, DiversityStats, Draw, Pruning};

/// Errors in the inputs of a selection, each saying what is wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectError {
    #[error("embeddings: {0}")]
    Embeddings(String),
    #[error("k = {k} but only {available} unlabeled points remain")]
    TooMany { k: usize, available: usize },
    #[error("labeled index {index} out of range: there are {n} points")]
    LabeledOutOfRange { index: usize, n: usize },
    #[error("temperature must be finite and >= 0, got {0}")]
    Temperature(f64),
}

/// A borrowed row-major `n × dim` matrix of finite `f32` embeddings.
#[derive(Debug, Clone, Copy)]
pub struct Embeddings<'a> {
    data: &'a [f32],
    dim: usize,
}

impl<'a> Embeddings<'a> {
    /// Checks shape and finiteness once, so sampling can trust the data.
    pub fn new(data: &'a [f32], dim: usize) -> Result<Self, SelectError> {
        if dim == 0 || data.is_empty() || data.len() % dim != 0 {
            return Err(SelectError::Embeddings(format!("{} values do not form rows of width {dim}", data.len())));
        }
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            return Err(SelectError::Embeddings(format!(
                "non-finite value {} at row {}, column {}",
                data[pos],
                pos / dim,
                pos % dim
            )));
        }
        Ok(Embeddings { data, dim })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Always false: construction rejects empty matrices.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The row-major values.
    pub fn values(&self) -> &'a [f32] {
        self.data
    }

    fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Squared L2 distance with eight independent accumulators (so the loop vectorises).
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            let d = x[j] - y[j];
            acc[j] += d * d;
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += (x - y) * (x - y);
    }
    acc.iter().sum::<f32>() + tail
}

/// Lowers each nearest squared distance with the distance to `center`, over all cores in chunks.
fn update_nearest(emb: &Embeddings, nearest: &mut [f32], center: usize) {
    let c = emb.row(center);
    let lower = |base: usize, part: &mut [f32]| {
        for (j, slot) in part.iter_mut().enumerate() {
            let d = squared_distance(emb.row(base + j), c);
            if d < *slot {
                *slot = d;
            }
        }
    };
    // Below ~64k values a thread costs more than it saves.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads == 1 || emb.data.len() < 1 << 16 {
        return lower(0, nearest);
    }
    let chunk = nearest.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (ci, part) in nearest.chunks_mut(chunk).enumerate() {
            s.spawn(move || lower(ci * chunk, part));
        }
    });
}

/// Draws an index with probability ∝ d^(1/T) = (d²)^(1/(2T)), computed relative to the largest
/// distance in log space so that any T > 0 neither overflows nor underflows to all zeros.
/// T = 0 takes the argmax. Selected points have distance 0 and weight 0.
fn pick(nearest: &[f32], temperature: f64, rng: &mut impl Rng) -> Option<usize> {
    let (arg, &max) =
        nearest.iter().enumerate().fold(
            (0, &f32::NEG_INFINITY),
            |best, (i, d)| {
                if *d > *best.1 {
                    (i, d)
                } else {
                    best
                }
            },
        );
    if !(max > 0.0) {
        return None;
    }
    if temperature == 0.0 {
        return Some(arg);
    }
    Some(draw_index_order(nearest, max, arg, temperature, rng))
}

/// The draw of [`pick`] for T > 0, given the largest distance `max > 0` and its first index `arg`:
/// one uniform number against the cumulative weights in index order. Shared by the pruned sampler
/// so that both draw bit for bit the same.
fn draw_index_order(nearest: &[f32], max: f32, arg: usize, temperature: f64, rng: &mut impl Rng) -> usize {
    let (log_max, exponent) = ((max as f64).ln(), 1.0 / (2.0 * temperature));
    if exponent == 1.0 {
        // T = 0.5 (k-means++): the weight is d² itself, no logarithms needed, and cheaper to
        // compute twice than to store (the sum and the walk are sequential chains either way).
        let max = max as f64;
        return walk(nearest.iter().map(|&d| d as f64 / max), arg, rng);
    }
    let weights: Vec<f64> =
        nearest.iter().map(|&d| if d > 0.0 { (((d as f64).ln() - log_max) * exponent).exp() } else { 0.0 }).collect();
    walk(weights.iter().copied(), arg, rng)
}

/// One uniform number times the total of `weights`, located in their running sum ([`locate`]);
/// `fallback` if no weight is positive. The weights are summed and walked in the same order.
fn walk(weights: impl Iterator<Item = f64> + Clone, fallback: usize, rng: &mut impl Rng) -> usize {
    walk_with(weights, fallback, rng.random::<f64>())
}

/// [`walk`] given its uniform number `r`.
fn walk_with(weights: impl Iterator<Item = f64> + Clone, fallback: usize, r: f64) -> usize {
    let total: f64 = weights.clone().sum();
    locate(weights, r * total).map_or(fallback, |(i, _)| i)
}

/// Where `u` falls in the running sum of `weights`: the first index whose weight exceeds what is
/// left of `u` after subtracting the positive weights before it, with that rest; when rounding
/// left `u` at or past the total, the last positive weight's index. None if none is positive.
/// Shared by the index-order draw and the pruned sampler's grouped draw.
fn locate(weights: impl Iterator<Item = f64>, mut u: f64) -> Option<(usize, f64)> {
    let mut last_positive = None;
    for (i, w) in weights.enumerate() {
        if w > 0.0 {
            if u < w {
                return Some((i, u));
            }
            u -= w;
            last_positive = Some((i, u));
        }
    }
    last_positive
}

/// Selects `k` new rows of `emb` by diversity-based sampling with temperature `temperature`,
/// starting from the `labeled` rows (or one uniformly random row when there are none).
/// Returns the chosen row indices in the order chosen. Each pick costs at most one pass over the
/// matrix (plus one distance per centre while pruning): with [`Pruning::Auto`] the points whose
/// nearest centre provably cannot change are not read (see [`diversity_sample_stats`]); the picks
/// are the unpruned sampler's, pick for pick.
pub fn diversity_sample(
    emb: &Embeddings,
    k: usize,
    temperature: f64,
    labeled: &[usize],
    rng: &mut (impl Rng + Send),
) -> Result<Vec<usize>, SelectError> {
    diversity_sample_stats(emb, k, temperature, labeled, rng, DiversityOptions::default()).map(|(chosen, _)| chosen)
}

/// The unpruned sampler: one full distance pass per centre. The reference of the pruned one.
fn diversity_sample_unpruned(
    emb: &Embeddings,
    k: usize,
    temperature: f64,
    labeled: &[usize],
    rng: &mut impl Rng,
) -> Result<Vec<usize>, SelectError> {
    sample_with(emb.len(), k, temperature, labeled, rng, |nearest, center| update_nearest(emb, nearest, center))
}

/// Checks a sampling request (T, the labeled indices, k against what is left) and returns the
/// selected-mask of the labeled points; shared by the unpruned and the pruned sampler so that
/// both refuse the same requests in the same order.
pub(super) fn check_request(n: usize, k: usize, temperature: f64, labeled: &[usize]) -> Result<Vec<bool>, SelectError> {
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(SelectError::Temperature(temperature));
    }
    let mut is_selected = vec![false; n];
    for &i in labeled {
        if i >= n {
            return Err(SelectError::LabeledOutOfRange { index: i, n });
        }
        is_selected[i] = true;
    }
    let available = n - is_selected.iter().filter(|s| **s).count();
    if k > available {
        return Err(SelectError::TooMany { k, available });
    }
    Ok(is_selected)
}

/// The sampling loop, given `lower(nearest, center)` that lowers every nearest squared distance
/// with the distance to row `center` (on the CPU, or on a device in `select::device`).
pub(super) fn sample_with(
    n: usize,
    k: usize,
    temperature: f64,
    labeled: &[usize],
    rng: &mut impl Rng,
    mut lower: impl FnMut(&mut [f32], usize),
) -> Result<Vec<usize>, SelectError> {
    let mut is_selected = check_request(n, k, temperature, labeled)?;
    let mut nearest = vec![f32::INFINITY; n];
    for (i, _) in is_selected.iter().enumerate().filter(|(_, s)| **s) {
        lower(&mut nearest, i);
    }
    let mut chosen = Vec::with_capacity(k);
    while chosen.len() < k {
        let next = if chosen.is_empty() && labeled.is_empty() {
            rng.random_range(0..n)
        } else {
            // Duplicates of selected points leave only zero distances: fall back to uniform.
            pick(&nearest, temperature, rng).unwrap_or_else(|| {
                let free: Vec<usize> = (0..n).filter(|&i| !is_selected[i]).collect();
                free[rng.random_range(0..free.len())]
            })
        };
        is_selected[next] = true;
        chosen.push(next);
        lower(&mut nearest, next);
        nearest[next] = 0.0;
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn line(xs: &[f32]) -> Vec<f32> {
        xs.to_vec()
    }

    #[test]
    fn k_center_greedy_hand_computed() {
        // Points on a line: 0, 1, 2, 10, 11, 20. Labeled {0}.
        // Picks: 20 (d=20), then 10 (d=10 vs 11→9, 2→2), then 2 or 1? d(1)=1, d(2)=2, d(11)=1 → 2.
        let data = line(&[0., 1., 2., 10., 11., 20.]);
        let e = Embeddings::new(&data, 1).unwrap();
        let got = diversity_sample(&e, 3, 0.0, &[0], &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        assert_eq!(got, vec![5, 3, 2]);
    }

    #[test]
    fn two_dimensional_k_center() {
        // Square corners and the centre. Starting at a corner (1,1): the opposite corner is
        // farthest (2√2); then the two others tie at 2 and the lower index wins; then the centre.
        let data = vec![1., 1., -1., 1., -1., -1., 1., -1., 0., 0.];
        let e = Embeddings::new(&data, 2).unwrap();
        let got = diversity_sample(&e, 3, 0.0, &[0], &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
        assert_eq!(got, vec![2, 1, 3]);
        // Starting at the centre every corner stays at √2 until picked: ties → 0, 1, 2.
        let got = diversity_sample(&e, 3, 0.0, &[4], &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn tiny_temperature_equals_argmax() {
        // Points 2^i − 1 on a line: at every step the farthest point is twice as far as the
        // runner-up, so at T = 0.001 its probability is 1 − O(2^−1000).
        let data: Vec<f32> = (0..12).map(|i| ((1u32 << i) - 1) as f32).collect();
        let e = Embeddings::new(&data, 1).unwrap();
        let greedy = diversity_sample(&e, 6, 0.0, &[0], &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert_eq!(greedy, vec![11, 10, 9, 8, 7, 6]);
        for seed in 0..5 {
            let cold = diversity_sample(&e, 6, 0.001, &[0], &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            assert_eq!(cold, greedy);
        }
    }

    #[test]
    fn extreme_temperatures_stay_finite() {
        // d^(1/0.01) = d^100 overflows f64 for d = 1e4 if computed directly.
        let data = line(&[0., 1e4, 2e4, 3e4]);
        let e = Embeddings::new(&data, 1).unwrap();
        let got = diversity_sample(&e, 1, 0.01, &[0], &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        assert_eq!(got, vec![3]);
        // and tiny distances do not underflow to all-zero weights.
        let data = line(&[0., 1e-20, 2e-20]);
        let e = Embeddings::new(&data, 1).unwrap();
        let got = diversity_sample(&e, 2, 0.01, &[0], &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn frequencies_follow_d_to_the_one_over_t() {
        // Labeled point at 0; candidates at distances 1, 2, 3. Expected p ∝ d^(1/T).
        let data = line(&[0., 1., 2., 3.]);
        let e = Embeddings::new(&data, 1).unwrap();
        for t in [0.5, 1.0, 0.25] {
            let w: Vec<f64> = [1f64, 2., 3.].iter().map(|d| d.powf(1.0 / t)).collect();
            let total: f64 = w.iter().sum();
            let trials = 20_000;
            let mut counts = [0usize; 3];
            let mut rng = ChaCha8Rng::seed_from_u64(42);
            for _ in 0..trials {
                counts[diversity_sample(&e, 1, t, &[0], &mut rng).unwrap()[0] - 1] += 1;
            }
            let chi2: f64 = (0..3)
                .map(|i| {
                    let exp = trials as f64 * w[i] / total;
                    (counts[i] as f64 - exp).powi(2) / exp
                })
                .sum();
            // 13.816 is the 0.999 quantile of χ² with 2 degrees of freedom.
            assert!(chi2 < 13.816, "T={t}: counts {counts:?}, chi2 {chi2}");
        }
    }

    #[test]
    fn no_point_is_picked_twice_and_labeled_are_excluded() {
        let data: Vec<f32> = (0..60).map(|i| (i % 7) as f32).collect(); // many duplicates
        let e = Embeddings::new(&data, 3).unwrap();
        let got = diversity_sample(&e, 15, 0.5, &[0, 1], &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let mut s = got.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 15);
        assert!(!got.contains(&0) && !got.contains(&1));
        // Everything but the labeled points can be drawn.
        assert_eq!(diversity_sample(&e, 18, 0.0, &[0, 1], &mut ChaCha8Rng::seed_from_u64(3)).unwrap().len(), 18);
    }

    #[test]
    fn index_order_draw_is_pinned() {
        // The draw for T > 0 as it was first written (weights collected, summed, walked): these
        // picks pin it bit for bit, so a faster formulation cannot change what a seed picks.
        let data: Vec<f32> = (0..1200u32).map(|i| (i.wrapping_mul(7919) % 1009) as f32 / 37.0).collect();
        let e = Embeddings::new(&data, 4).unwrap();
        let pinned: [(f64, [usize; 12]); 3] = [
            (0.5, [107, 28, 118, 169, 64, 261, 65, 110, 296, 39, 101, 297]),
            (1.0, [107, 27, 119, 166, 64, 261, 65, 110, 295, 35, 101, 296]),
            (0.25, [105, 26, 116, 163, 61, 263, 63, 118, 295, 37, 109, 293]),
        ];
        for (t, want) in pinned {
            let got = diversity_sample(&e, 12, t, &[5], &mut ChaCha8Rng::seed_from_u64(11)).unwrap();
            assert_eq!(got, want, "T = {t}");
        }
    }

    #[test]
    fn bad_inputs_are_explained() {
        let data = [0f32, 1., 2., f32::NAN];
        assert!(matches!(Embeddings::new(&data, 2), Err(SelectError::Embeddings(m)) if m.contains("row 1, column 1")));
        let data = [0f32, 1., 2.];
        assert!(Embeddings::new(&data, 2).is_err());
        let e = Embeddings::new(&data, 1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(diversity_sample(&e, 3, 0.5, &[0], &mut rng), Err(SelectError::TooMany { k: 3, available: 2 }));
        assert_eq!(
            diversity_sample(&e, 1, 0.5, &[7], &mut rng),
            Err(SelectError::LabeledOutOfRange { index: 7, n: 3 })
        );
        assert_eq!(diversity_sample(&e, 1, -1.0, &[], &mut rng), Err(SelectError::Temperature(-1.0)));
    }
}
