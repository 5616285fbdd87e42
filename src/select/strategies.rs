//! Query strategies: given the current model's view of a candidate pool (class probabilities,
//! penultimate features, consistency), choose the next images to label.
use super::{diversity_sample, Embeddings, SelectError};
use crate::config::QueryStrategy;
use rand::seq::index::sample;
use rand::Rng;

/// The model's view of the labeled points and the candidates, row-major, on the CPU.
#[derive(Debug, Clone)]
pub struct PoolView {
    pub num_classes: usize,
    pub feature_dim: usize,
    /// Rows: labeled points first (`n_labeled` of them), then candidates.
    pub n_labeled: usize,
    pub probs: Vec<f32>,
    pub features: Vec<f32>,
    /// Consistency c_i = Σ_c Var[p_c] over the original and N_a augmented views (Eq. 3).
    pub consistency: Vec<f32>,
}

impl PoolView {
    fn rows(&self) -> usize {
        self.consistency.len()
    }
    fn candidates(&self) -> std::ops::Range<usize> {
        self.n_labeled..self.rows()
    }
    fn prob_row(&self, i: usize) -> &[f32] {
        &self.probs[i * self.num_classes..(i + 1) * self.num_classes]
    }
    fn feature_row(&self, i: usize) -> &[f32] {
        &self.features[i * self.feature_dim..(i + 1) * self.feature_dim]
    }
}

/// Shannon entropy of a probability vector (natural log).
pub fn entropy(p: &[f32]) -> f64 {
    p.iter().filter(|&&x| x > 0.0).map(|&x| -(x as f64) * (x as f64).ln()).sum()
}

/// Indices of the `k` largest scores, largest first (ties: lower index first).
pub fn top_k(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// BADGE's gradient embedding of the last layer under the predicted label:
/// (p − onehot(argmax p)) ⊗ f, one row of `classes × dim` per point.
pub fn gradient_embedding(view: &PoolView, rows: std::ops::Range<usize>) -> Vec<f32> {
    let (c, d) = (view.num_classes, view.feature_dim);
    let mut out = Vec::with_capacity(rows.len() * c * d);
    for i in rows {
        let p = view.prob_row(i);
        let argmax = (0..c).fold(0, |best, j| if p[j] > p[best] { j } else { best });
        let f = view.feature_row(i);
        for (j, &pj) in p.iter().enumerate() {
            let g = pj - if j == argmax { 1.0 } else { 0.0 };
            out.extend(f.iter().map(|&x| g * x));
        }
    }
    out
}

/// The paper's consistency-based embedding (Eq. 4): g_i = c_i · f_i for every row.
pub fn consistency_embedding(view: &PoolView) -> Vec<f32> {
    (0..view.rows()).flat_map(|i| view.feature_row(i).iter().map(move |&x| view.consistency[i] * x)).collect()
}

/// Chooses `k` candidates; returns candidate positions (0-based among the candidates), in the
/// order chosen. `temperature` is used by the consistency-embedding strategy only.
pub fn query(
    strategy: QueryStrategy,
    view: &PoolView,
    k: usize,
    temperature: f64,
    rng: &mut (impl Rng + Send),
) -> Result<Vec<usize>, SelectError> {
    let m = view.rows() - view.n_labeled;
    if k > m {
        return Err(SelectError::TooMany { k, available: m });
    }
    let l = view.n_labeled;
    let labeled: Vec<usize> = (0..l).collect();
    let shift = |v: Vec<usize>| v.into_iter().map(|i| i - l).collect::<Vec<_>>();
    Ok(match strategy {
        QueryStrategy::Random => sample(rng, m, k).into_vec(),
        QueryStrategy::Entropy => {
            let s: Vec<f64> = view.candidates().map(|i| entropy(view.prob_row(i))).collect();
            top_k(&s, k)
        }
        QueryStrategy::Consistency => {
            let s: Vec<f64> = view.candidates().map(|i| view.consistency[i] as f64).collect();
            top_k(&s, k)
        }
        QueryStrategy::Coreset => {
            let emb = Embeddings::new(&view.features, view.feature_dim)?;
            shift(diversity_sample(&emb, k, 0.0, &labeled, rng)?)
        }
        QueryStrategy::ConsistencyEmbedding => {
            let g = consistency_embedding(view);
            let emb = Embeddings::new(&g, view.feature_dim)?;
            shift(diversity_sample(&emb, k, temperature, &labeled, rng)?)
        }
        QueryStrategy::Badge => {
            // As BADGE's init_centers: the largest-norm gradient embedding first, then k-means++.
            let g = gradient_embedding(view, view.candidates());
            let dim = view.num_classes * view.feature_dim;
            let norms: Vec<f64> = g.chunks(dim).map(|r| r.iter().map(|&x| (x as f64).powi(2)).sum()).collect();
            let first = top_k(&norms, 1)[0];
            let emb = Embeddings::new(&g, dim)?;
            let mut chosen = vec![first];
            if k > 1 {
                chosen.extend(diversity_sample(&emb, k - 1, 0.5, &[first], rng)?);
            }
            chosen.truncate(k);
            chosen
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// One labeled point and four candidates, 2 classes, 1-D features.
    fn view() -> PoolView {
        PoolView {
            num_classes: 2,
            feature_dim: 1,
            n_labeled: 1,
            probs: vec![0.9, 0.1, /* candidates */ 0.5, 0.5, 0.99, 0.01, 0.7, 0.3, 0.6, 0.4],
            features: vec![0.0, 1.0, 10.0, 2.0, 5.0],
            consistency: vec![0.0, 0.05, 0.01, 0.15, 0.1],
        }
    }

    #[test]
    fn entropy_and_top_k() {
        assert!((entropy(&[0.5, 0.5]) - std::f64::consts::LN_2).abs() < 1e-12);
        assert_eq!(entropy(&[1.0, 0.0]), 0.0);
        assert_eq!(top_k(&[0.1, 0.5, 0.5, 0.2], 3), vec![1, 2, 3]);
    }

    #[test]
    fn score_ranking_strategies() {
        let v = view();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // Entropy: candidate 0 (0.5/0.5) then 3 (0.6/0.4) then 2 (0.7/0.3).
        assert_eq!(query(QueryStrategy::Entropy, &v, 3, 0.0, &mut rng).unwrap(), vec![0, 3, 2]);
        // Consistency: largest variance first: 0.15 (cand 2), 0.1 (cand 3), 0.05 (cand 0).
        assert_eq!(query(QueryStrategy::Consistency, &v, 3, 0.0, &mut rng).unwrap(), vec![2, 3, 0]);
        let r = query(QueryStrategy::Random, &v, 4, 0.0, &mut rng).unwrap();
        let mut s = r.clone();
        s.sort();
        assert_eq!(s, vec![0, 1, 2, 3]);
    }

    #[test]
    fn coreset_starts_from_the_labeled_centres() {
        // Labeled at 0; candidates at 1, 10, 2, 5: farthest 10 (cand 1), then 5 (cand 3: d=5 vs 2: d=2).
        assert_eq!(
            query(QueryStrategy::Coreset, &view(), 2, 0.0, &mut ChaCha8Rng::seed_from_u64(0)).unwrap(),
            vec![1, 3]
        );
    }

    #[test]
    fn consistency_embedding_weighs_features_by_consistency() {
        let v = view();
        // g = c·f: labeled 0; candidates 0.05, 0.1, 0.3, 0.5. k-center from the labeled point at 0
        // takes 0.5 (cand 3); then the nearest distances are 0.05, 0.1 and min(0.3, 0.2) = 0.2 (cand 2).
        let g = consistency_embedding(&v);
        for (a, b) in g.iter().zip([0.0, 0.05, 0.1, 0.3, 0.5]) {
            assert!((a - b).abs() < 1e-6);
        }
        let got = query(QueryStrategy::ConsistencyEmbedding, &v, 2, 0.0, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        assert_eq!(got, vec![3, 2]);
    }

    #[test]
    fn badge_gradient_embedding_and_first_pick() {
        let v = view();
        // Candidate 1: p = (0.99, 0.01), argmax 0, f = 10 → g = (−0.01·10, 0.01·10) = (−0.1, 0.1).
        let g = gradient_embedding(&v, 2..3);
        assert!((g[0] + 0.1).abs() < 1e-6 && (g[1] - 0.1).abs() < 1e-6);
        // Norms²: cand0 (0.5·1)²·2 = 0.5; cand1 0.02; cand2 (0.3·2)²·2 = 0.72; cand3 (0.4·5)²·2 = 8.
        let got = query(QueryStrategy::Badge, &v, 1, 0.0, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        assert_eq!(got, vec![3]);
        let got = query(QueryStrategy::Badge, &v, 4, 0.0, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        let mut s = got.clone();
        s.sort();
        assert_eq!(s, vec![0, 1, 2, 3]);
    }
}
