//! The index-order draw at T = 0.5 without walking every point: the same pick as
//! [`super::super::draw_index_order`] for the same random number, proved by rounding-error bounds,
//! else (about once in 10⁵ draws) computed by that walk itself.
//!
//! The reference draw takes the weights wᵢ = fl(dᵢ / max) in index order, their sequential f64
//! sum t, u₀ = fl(r·t) for one uniform r, and walks uᵢ₊₁ = fl(uᵢ − wᵢ) over the positive weights
//! to the first i with uᵢ < wᵢ (the last positive weight if rounding runs past the end). With
//! Sᵢ = Σⱼ₍ⱼ₍ᵢ₎ wⱼ exactly, every rounding there is at most 2⁻⁵³ times a value ≤ t(1 + O(Nε)),
//! so |t − S_N| ≤ N·ε·S_N and |uᵢ − (r·t − Sᵢ)| ≤ (N + 1)·ε·S_N (ε = 2⁻⁵³, up to factors
//! 1 + O(Nε)). Here the distances' sums over blocks of [`BLOCK`] points are kept (renewed only
//! for the blocks whose distances changed), which give S̃ᵢ and t̃ within (N/BLOCK + BLOCK + 4)·ε·S_N
//! of Sᵢ and S_N. The pick i* located with them is the reference's when ũ = r·t̃ lies at least
//! [`Self::margin`] (which exceeds twice the sum of those bounds) above S̃ᵢ* and below
//! S̃ᵢ*₊₁: then every earlier positive weight has uⱼ ≥ wⱼ (as Sⱼ₊₁ ≤ Sᵢ*) and uᵢ* < wᵢ*. For
//! N = 60,000 the margin is about 5·10⁻¹¹ of the total, while a pick's own weight is typically
//! 10⁻⁵ of it: the walk is needed about once in 10⁵ draws.
use super::super::walk_with;

/// Points per block sum.
pub(super) const BLOCK: usize = 32;

/// The nearest distances' block sums (f64, in index order within a block) and which are stale.
#[derive(Debug, Default)]
pub(super) struct BlockSums {
    sums: Vec<f64>,
    stale: Vec<bool>,
    stale_list: Vec<u32>,
    all_stale: bool,
}

impl BlockSums {
    pub(super) fn new(n: usize) -> Self {
        let blocks = n.div_ceil(BLOCK);
        BlockSums { sums: vec![0.0; blocks], stale: vec![false; blocks], stale_list: Vec::new(), all_stale: true }
    }

    /// Point `x`'s distance changed.
    pub(super) fn changed(&mut self, x: usize) {
        let b = x / BLOCK;
        if !self.stale[b] {
            self.stale[b] = true;
            self.stale_list.push(b as u32);
        }
    }

    /// Any distance may have changed.
    pub(super) fn all_changed(&mut self) {
        self.all_stale = true;
    }

    fn refresh(&mut self, nearest: &[f32]) {
        let block_sum =
            |b: usize| nearest[b * BLOCK..((b + 1) * BLOCK).min(nearest.len())].iter().map(|&d| d as f64).sum();
        if self.all_stale {
            for (b, s) in self.sums.iter_mut().enumerate() {
                *s = block_sum(b);
            }
            self.stale.fill(false);
            self.stale_list.clear();
            self.all_stale = false;
            return;
        }
        for b in self.stale_list.drain(..) {
            let b = b as usize;
            self.sums[b] = block_sum(b);
            self.stale[b] = false;
        }
    }

    /// How far ũ must lie from the located boundaries, given the approximate total `total`.
    fn margin(n: usize, total: f64) -> f64 {
        (8.0 * n as f64 + 8.0 * BLOCK as f64 + 64.0) * f64::powi(2.0, -53) * total
    }

    /// The reference's pick for T = 0.5 given the largest distance `max` (finite, > 0), its
    /// first index `arg`, and the uniform number `r`: see the module notes. `margin_scale`
    /// multiplies the margin (1 outside tests; tests force the walk with a huge one).
    pub(super) fn draw(&mut self, nearest: &[f32], max: f32, arg: usize, r: f64, margin_scale: f64) -> usize {
        self.refresh(nearest);
        let max = max as f64;
        let total = self.sums.iter().sum::<f64>() / max;
        let u = r * total;
        let margin = Self::margin(nearest.len(), total) * margin_scale;
        if let Some(i) = self.locate_checked(nearest, max, u, margin) {
            return i;
        }
        let weights = nearest.iter().map(|&d| d as f64 / max);
        walk_with(weights, arg, r)
    }

    /// The index whose weight straddles `u` in the block sums' running total, if `u` lies at
    /// least `margin` inside it.
    fn locate_checked(&self, nearest: &[f32], max: f64, u: f64, margin: f64) -> Option<usize> {
        let mut before = 0.0;
        for (b, &s) in self.sums.iter().enumerate() {
            let w = s / max;
            if before + w <= u {
                before += w;
                continue;
            }
            // rest = ũ − S̃ⱼ: what is left after the positive weights before j.
            let mut rest = u - before;
            for (j, &d) in nearest[b * BLOCK..((b + 1) * BLOCK).min(nearest.len())].iter().enumerate() {
                let w = d as f64 / max;
                if w > 0.0 {
                    if rest < w {
                        return (rest >= margin && w - rest >= margin).then_some(b * BLOCK + j);
                    }
                    rest -= w;
                }
            }
            return None;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The reference draw of `draw_index_order` at T = 0.5 for the uniform number `r`.
    fn reference(nearest: &[f32], r: f64) -> usize {
        let (arg, max) =
            nearest.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &d)| if d > b.1 { (i, d) } else { b });
        let max = max as f64;
        walk_with(nearest.iter().map(|&d| d as f64 / max), arg, r)
    }

    fn max_arg(nearest: &[f32]) -> (f32, usize) {
        nearest.iter().enumerate().fold((f32::NEG_INFINITY, 0), |b, (i, &d)| if d > b.0 { (d, i) } else { b })
    }

    /// Random distances with zeros, runs of equal values and a few huge and tiny ones; uniform
    /// numbers at random, at 0, just below 1, and exactly at (and next to) the running sums, where
    /// rounding decides the reference's pick: the block sums must give the same pick, and they
    /// must keep doing so as distances change (stale blocks).
    #[test]
    fn same_pick_as_the_index_order_walk() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for (n, case) in [(1, 0), (31, 1), (32, 2), (33, 3), (1000, 4), (5000, 5)] {
            let mut nearest: Vec<f32> = (0..n)
                .map(|i| match (case + i) % 7 {
                    0 => 0.0,
                    1 | 2 => 1.5,
                    3 => rng.random::<f32>() * 1e-30,
                    4 => rng.random::<f32>() * 1e30,
                    _ => rng.random::<f32>(),
                })
                .collect();
            nearest[n / 2] = nearest[n / 2].max(1.0);
            let mut sums = BlockSums::new(n);
            for round in 0..4 {
                let (max, arg) = max_arg(&nearest);
                let maxf = max as f64;
                let total: f64 = nearest.iter().map(|&d| d as f64 / maxf).sum();
                let mut rs: Vec<f64> = (0..200).map(|_| rng.random::<f64>()).collect();
                rs.extend([0.0, 1.0f64.next_down()]);
                let mut running = 0.0;
                for (i, &d) in nearest.iter().enumerate() {
                    running += d as f64 / maxf;
                    if i % 97 == 0 || i + 1 == n {
                        let r = running / total;
                        rs.extend([r, r.next_down(), r.next_up()].into_iter().filter(|r| (0.0..1.0).contains(r)));
                    }
                }
                for &r in &rs {
                    assert_eq!(
                        sums.draw(&nearest, max, arg, r, 1.0),
                        reference(&nearest, r),
                        "n {n}, round {round}, r {r}"
                    );
                }
                // Some distances drop (and a block goes to zeros) before the next round.
                for _ in 0..(n / 10).max(1) {
                    let x = rng.random_range(0..n);
                    nearest[x] *= rng.random::<f32>();
                    sums.changed(x);
                }
                for x in 0..n.min(BLOCK) {
                    nearest[x] = 0.0;
                    sums.changed(x);
                }
                nearest[n - 1] = nearest[n - 1].max(0.5);
                sums.changed(n - 1);
            }
        }
    }
}
