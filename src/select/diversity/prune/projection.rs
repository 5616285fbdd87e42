//! A second, cheaper bound for the members a pruned pass must read: their coordinates in a few
//! principal directions of the data. For an orthonormal m × d matrix P, ‖P(x − c)‖ ≤ ‖x − c‖,
//! so m values per point give a lower bound of every point–centre distance. On the RotNet
//! features (64-d) the top 8 directions hold 93 % of the variance, and the bound rules out about
//! 90 % of the members that the triangle inequality leaves to read, at 8 of their 64 values.
//!
//! The bound is made exact in the same sense as [`super::Bounds`]: [`Projection::skips`] is
//! true only when the computed `squared_distance(x, c)` provably is not below x's distance, so
//! the pruned pass stays pick for pick the unpruned one. The proof has to cover the float
//! arithmetic of everything used: P is only nearly orthonormal, the coordinates are computed in
//! f64 and stored as f32, and the bound itself is summed in f32 (see [`Projection::new`]).
use rayon::prelude::*;

/// Principal directions used (coordinates stored per point; fewer directions when the data spans
/// fewer, the rest of the coordinates being 0). Below [`MIN_DIM`] the full distance is cheap
/// enough.
pub(super) const DIRECTIONS: usize = 8;
/// Rows narrower than this are not projected (a check would cost a quarter of a row or more).
pub(super) const MIN_DIM: usize = 32;
/// Rows the directions are estimated from (evenly spaced over the matrix): the bound is exact
/// for any directions, their quality only decides how much it rules out.
const SAMPLE_ROWS: usize = 2048;
/// Subspace (power) iterations for the directions.
const ITERATIONS: usize = 5;
/// No projection is made unless its directions hold at least this fraction of the sample's
/// variance: otherwise most of every distance lies outside them and the bound rules out little
/// (on the 200,000 × 64 isotropic mixture of the benchmarks, where it ruled out nothing, making
/// it cost 15 % of the sampling time; on the RotNet features they hold 93 %).
const MIN_VARIANCE_HELD: f64 = 0.5;

/// The points' coordinates in [`DIRECTIONS`] principal directions, and the two constants of the
/// bound.
#[derive(Debug)]
pub(super) struct Projection {
    /// Row-major N × [`DIRECTIONS`] coordinates, as f32.
    coords: Vec<f32>,
    /// [`Projection::skips`]' threshold is `alpha · u + beta`.
    alpha: f32,
    beta: f32,
}

impl Projection {
    /// The projection of the `n × dim` matrix `values` onto up to [`DIRECTIONS`] directions, or
    /// `None` where no useful bound exists (the data has no spread, its directions hold under
    /// [`MIN_VARIANCE_HELD`] of the variance, or magnitudes overflow).
    /// Directions the data does not span have coordinate 0 and add nothing to the bound.
    /// `gamma` and `abs` are [`super::Bounds`]' rounding constants of `squared_distance`.
    ///
    /// The proof. Let P̂ be the f64 directions (rows) and μ the f64 mean of the sample; for real numbers
    /// P̂(x − μ) − P̂(c − μ) = P̂(x − c) exactly. The stored coordinate ẑᵢ differs from the exact
    /// (P̂(x − μ))ᵢ by at most δ = (2⁻²⁴ + (d + 2)·2⁻⁵³)·(1 + ε)·R: f64 subtraction and a d-term
    /// f64 dot product (error ≤ (d + 2)·2⁻⁵³·Σⱼ|P̂ᵢⱼ||xⱼ − μⱼ| ≤ (d + 2)·2⁻⁵³·‖p̂ᵢ‖·‖x − μ‖),
    /// then rounding to f32, with R ≥ maxₓ ‖x − μ‖ (over all points) and ‖p̂ᵢ‖² ≤ 1 + ε. Hence the stored
    /// difference ŵ = ẑₓ − ẑ_c is within E = 2·√m·δ of P̂(x − c). With ε ≥ ‖P̂P̂ᵀ − I‖_F (f64
    /// Gram matrix, plus slack), ‖P̂v‖² ≤ (1 + ε)‖v‖². The f32 sum of squares `lb` of ŵ is at
    /// most κ·‖ŵ‖² (+ underflow, 2⁻¹²⁰ in `beta`), κ = 1 + 1.01·(m + 4)·2⁻²⁴. If
    /// lb ≥ κ·((1 + η)·A² + (1 + 1/η)·E²) with A² = (1 + ε)(u + a)/(1 − γ), then
    /// ‖ŵ‖ ≥ A + E, ‖P̂(x − c)‖ ≥ A, ‖x − c‖² ≥ (u + a)/(1 − γ), and the computed
    /// s(x, c) ≥ (1 − γ)‖x − c‖² − a ≥ u: the unpruned pass would not lower u either.
    /// That threshold is alpha·u + beta; both are rounded up by 10⁻⁶, more than the two f32
    /// roundings of evaluating it.
    pub(super) fn new(values: &[f32], dim: usize, gamma: f64, abs: f64) -> Option<Projection> {
        let n = values.len() / dim;
        let row = |i: usize| &values[i * dim..][..dim];
        // Any origin μ makes the bound exact; the sample's mean is a good one and costs O(sample).
        let picked: Vec<usize> = (0..n).step_by(n.div_ceil(SAMPLE_ROWS).max(1)).collect();
        let mut mean = vec![0f64; dim];
        for &i in &picked {
            for (m, &v) in mean.iter_mut().zip(row(i)) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= picked.len() as f64);
        let centred = |i: usize| row(i).iter().zip(&mean).map(|(&v, m)| v as f64 - m);
        let sample: Vec<Vec<f64>> = picked.iter().map(|&i| centred(i).collect()).collect();
        let basis = principal_directions(&sample, dim, DIRECTIONS.min(dim))?;
        let total: f64 = sample.iter().map(|x| dot(x, x)).sum();
        let held: f64 = sample.iter().map(|x| basis.iter().map(|p| dot(p, x).powi(2)).sum::<f64>()).sum();
        if !(held >= MIN_VARIANCE_HELD * total) {
            return None;
        }
        // The bound below counts all DIRECTIONS coordinates (the padding ones are exact zeros).
        let dims = DIRECTIONS;

        let mut gram_error = 0f64;
        for (i, p) in basis.iter().enumerate() {
            for (j, q) in basis.iter().enumerate() {
                let dot = dot(p, q);
                gram_error += (dot - if i == j { 1.0 } else { 0.0 }).powi(2);
            }
        }
        let eps = gram_error.sqrt() + 1e-12;
        let mut coords = vec![0f32; n * DIRECTIONS];
        let radius = coords
            .par_chunks_mut(DIRECTIONS)
            .enumerate()
            .map_init(
                || vec![0f64; dim],
                |x, (i, out)| {
                    x.iter_mut().zip(centred(i)).for_each(|(slot, v)| *slot = v);
                    for (z, p) in out.iter_mut().zip(&basis) {
                        *z = dot(p, x) as f32;
                    }
                    dot(x, x).sqrt()
                },
            )
            .reduce(|| 0.0, f64::max)
            * (1.0 + 1e-9);
        let delta = (f64::powi(2.0, -24) + (dim as f64 + 2.0) * f64::powi(2.0, -53)) * (1.0 + eps) * radius;
        // Plus 2⁻¹⁴⁹ per coordinate: rounding to f32 near zero is absolute, not relative.
        let spread = 2.0 * (dims as f64).sqrt() * (delta + f64::powi(2.0, -149));
        let kappa = 1.0 + 1.01 * (dims as f64 + 4.0) * f64::powi(2.0, -24);
        let eta = 1e-3;
        let alpha = kappa * (1.0 + eta) * (1.0 + eps) / (1.0 - gamma);
        let beta = alpha * abs + kappa * (1.0 + 1.0 / eta) * spread * spread + kappa * f64::powi(2.0, -120);
        let (alpha, beta) = ((alpha * (1.0 + 1e-6)) as f32, (beta * (1.0 + 1e-6)) as f32);
        let usable = alpha.is_finite() && beta.is_finite() && coords.iter().all(|z| z.is_finite());
        usable.then_some(Projection { coords, alpha, beta })
    }

    /// Point `i`'s coordinates.
    pub(super) fn of(&self, i: usize) -> &[f32] {
        &self.coords[i * DIRECTIONS..][..DIRECTIONS]
    }

    /// Whether a point with nearest squared distance `u` and coordinates `point` provably keeps
    /// `u` against the centre with coordinates `centre` (see [`Projection::new`]).
    #[inline]
    pub(super) fn skips(&self, point: &[f32; DIRECTIONS], centre: &[f32; DIRECTIONS], u: f32) -> bool {
        // A tree of sums (any order is covered by κ): the adds need not wait for each other.
        let sq: [f32; DIRECTIONS] = std::array::from_fn(|i| (point[i] - centre[i]) * (point[i] - centre[i]));
        let lb = ((sq[0] + sq[1]) + (sq[2] + sq[3])) + ((sq[4] + sq[5]) + (sq[6] + sq[7]));
        lb.is_finite() && lb >= self.alpha * u + self.beta
    }
}

/// Dot product with four accumulators (a single chain of f64 adds waits on each add; the
/// error bound used above holds in any order of summation).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for j in 0..4 {
            acc[j] += x[j] * y[j];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Up to `dims` orthonormal directions of largest variance of the (centred) `rows`, by
/// subspace iteration from evenly spaced rows, with Gram–Schmidt run twice per step; directions
/// the data does not span are dropped. `None` when none is left.
fn principal_directions(rows: &[Vec<f64>], dim: usize, dims: usize) -> Option<Vec<Vec<f64>>> {
    let step = rows.len().div_ceil(dims).max(1);
    let mut basis: Vec<Vec<f64>> = rows.iter().step_by(step).take(dims).cloned().collect();
    for _ in 0..ITERATIONS {
        basis = orthonormalise(basis);
        if basis.is_empty() {
            return None;
        }
        // basis ← Xᵀ X basis (the covariance times each direction, up to a factor).
        let mut next = vec![vec![0f64; dim]; basis.len()];
        for x in rows {
            for (p, out) in basis.iter().zip(next.iter_mut()) {
                let along = dot(p, x);
                out.iter_mut().zip(x).for_each(|(o, v)| *o += along * v);
            }
        }
        basis = next;
    }
    let basis = orthonormalise(basis);
    (!basis.is_empty()).then_some(basis)
}

/// Gram–Schmidt, twice over for accuracy; a vector left with under 10⁻⁹ of its length (or
/// none) is dropped.
fn orthonormalise(vectors: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(vectors.len());
    for mut v in vectors {
        let length = dot(&v, &v).sqrt();
        for _ in 0..2 {
            for q in &out {
                let along = dot(q, &v);
                v.iter_mut().zip(q).for_each(|(a, b)| *a -= along * b);
            }
        }
        let left = dot(&v, &v).sqrt();
        if left > 1e-9 * length && left.is_finite() {
            v.iter_mut().for_each(|a| *a /= left);
            out.push(v);
        }
    }
    out
}
