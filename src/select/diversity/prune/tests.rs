//! The pruned sampler against the unpruned one (`diversity_sample_unpruned`, the reference):
//! identical picks on random, clustered and adversarial data, for every pruning policy; the
//! grouped draw's distribution by χ² tests against exact enumeration.
use super::projection::{Projection, DIRECTIONS};
use super::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Prunes and streams in turn, switching at every chance: exercises both transitions.
const FLAPPING: Policy = Policy {
    start_pruned: false,
    adaptive: true,
    window: 2,
    probe_every: 1,
    stay_above: f64::INFINITY,
    start_above: f64::NEG_INFINITY,
    parallel_values: PRUNED_PARALLEL_VALUES,
    project_from_dim: projection::MIN_DIM,
};

/// Always prunes, with the projection bound at every width (most cases are narrower than
/// `projection::MIN_DIM`).
const PROJECTED: Policy = Policy { project_from_dim: 0, ..Policy::ALWAYS };

/// [`PROJECTED`], sharing every pass with rayon's threads (when there are several): the test
/// cases are too small to reach the threaded pruned pass otherwise.
const THREADED: Policy = Policy { parallel_values: 0, ..PROJECTED };

const POLICIES: [(&str, Policy); 5] = [
    ("auto", Policy::AUTO),
    ("always", Policy::ALWAYS),
    ("flapping", FLAPPING),
    ("projected", PROJECTED),
    ("threaded", THREADED),
];

fn reference(emb: &Embeddings, k: usize, t: f64, labeled: &[usize], seed: u64) -> Vec<usize> {
    diversity_sample_unpruned(emb, k, t, labeled, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

fn pruned(
    emb: &Embeddings,
    k: usize,
    t: f64,
    labeled: &[usize],
    seed: u64,
    policy: Policy,
) -> (Vec<usize>, DiversityStats) {
    sample(emb, k, t, labeled, &mut ChaCha8Rng::seed_from_u64(seed), Draw::IndexOrder, policy).unwrap()
}

/// Asserts identical picks for T ∈ {0, 0.5, 1} (and the public entry points), every policy,
/// two seeds; returns the stats of `Policy::ALWAYS` per temperature (seed 0).
fn assert_identical(emb: &Embeddings, k: usize, labeled: &[usize], case: &str) -> Vec<DiversityStats> {
    let mut always = Vec::new();
    for t in [0.0, 0.5, 1.0] {
        for seed in 0..2 {
            let want = reference(emb, k, t, labeled, seed);
            for (name, policy) in POLICIES {
                let (got, stats) = pruned(emb, k, t, labeled, seed, policy);
                assert_eq!(got, want, "{case}: T = {t}, seed {seed}, {name}");
                assert_eq!(stats.skipped + stats.point_evaluations, stats.points * stats.centres);
                if name == "always" && seed == 0 {
                    always.push(stats);
                }
            }
            let public = crate::select::diversity_sample(emb, k, t, labeled, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(public.unwrap(), want, "{case}: T = {t}, seed {seed}, diversity_sample");
        }
    }
    always
}

fn gaussian(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.sample::<f32, _>(StandardNormal)).collect()
}

/// `clusters` centres with unit-normal coordinates × `spread`, points around them with σ = `sigma`.
fn mixture(n: usize, dim: usize, clusters: usize, spread: f32, sigma: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.sample::<f32, _>(StandardNormal) * spread).collect();
    let mut data = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.random_range(0..clusters);
        for j in 0..dim {
            data.push(centres[c * dim + j] + rng.sample::<f32, _>(StandardNormal) * sigma);
        }
    }
    data
}

#[test]
fn identical_picks_on_gaussian_data() {
    for (n, dim) in [(1500, 16), (800, 5)] {
        let data = gaussian(n, dim, 1);
        let emb = Embeddings::new(&data, dim).unwrap();
        assert_identical(&emb, 60, &[], &format!("gaussian {n}×{dim}"));
        assert_identical(&emb, 60, &[7, 300], &format!("gaussian {n}×{dim}, labeled"));
    }
}

#[test]
fn identical_picks_on_a_tight_mixture_skipping_most_distances() {
    // 6000 × 16 values ≥ 2¹⁶: the threaded passes (streaming and pruned) run here.
    let data = mixture(6000, 16, 40, 10.0, 0.02, 2);
    let emb = Embeddings::new(&data, 16).unwrap();
    let always = assert_identical(&emb, 200, &[], "mixture");
    for (t, stats) in [0.0, 0.5, 1.0].iter().zip(&always) {
        assert!(stats.skipped_fraction() > 0.6, "T = {t}: {stats:?}");
        assert!(stats.centre_evaluations < stats.skipped / 10, "T = {t}: {stats:?}");
    }
    for t in [0.0, 0.5] {
        let (_, auto) = pruned(&emb, 200, t, &[], 0, Policy::AUTO);
        assert!(auto.pruned_centres > 100 && auto.skipped_fraction() > 0.5, "auto, T = {t}: {auto:?}");
    }
    let labeled: Vec<usize> = (0..6000).step_by(97).collect();
    assert_identical(&emb, 150, &labeled, "mixture, labeled");
}

#[test]
fn auto_stays_streaming_where_bounds_cannot_help() {
    // High-dimensional Gaussian: all centres about equally far, nothing can be ruled out.
    let data = gaussian(1000, 64, 3);
    let emb = Embeddings::new(&data, 64).unwrap();
    for t in [0.0, 0.5] {
        let want = reference(&emb, 50, t, &[], 4);
        let (got, stats) = pruned(&emb, 50, t, &[], 4, Policy::AUTO);
        assert_eq!(got, want);
        assert_eq!((stats.pruned_centres, stats.switches), (0, 0), "{stats:?}");
        assert!(stats.centre_evaluations < 50 * 50 / 4, "{stats:?}");
    }
}

#[test]
fn identical_picks_with_ties_and_duplicate_points() {
    // A 3-d grid with 7 distinct points repeated: equal distances everywhere, and zero distances
    // once every distinct point is selected (the uniform fallback).
    let data: Vec<f32> = (0..300).map(|i| (i % 7) as f32).collect();
    let emb = Embeddings::new(&data, 3).unwrap();
    assert_identical(&emb, 30, &[0, 1], "grid duplicates, labeled");
    assert_identical(&emb, 98, &[0, 1], "grid duplicates, all but the labeled");
    assert_identical(&emb, 40, &[], "grid duplicates");
    // Integer lattice in 2-d: many exact distance ties between distinct points.
    let data: Vec<f32> = (0..400).flat_map(|i| [(i % 20) as f32, (i / 20) as f32]).collect();
    let emb = Embeddings::new(&data, 2).unwrap();
    assert_identical(&emb, 80, &[], "lattice");
    assert_identical(&emb, 80, &[210], "lattice, centre labeled");
}

#[test]
fn identical_picks_when_all_points_are_equal() {
    let data = vec![1.5f32; 50 * 4];
    let emb = Embeddings::new(&data, 4).unwrap();
    assert_identical(&emb, 10, &[], "all equal");
    assert_identical(&emb, 49, &[3], "all equal, labeled");
    assert_identical(&emb, 50, &[], "all equal, k = N");
}

#[test]
fn identical_picks_on_one_cluster() {
    let data = mixture(1200, 6, 1, 5.0, 0.3, 4);
    let emb = Embeddings::new(&data, 6).unwrap();
    assert_identical(&emb, 100, &[], "one cluster");
    assert_identical(&emb, 100, &[11], "one cluster, labeled");
}

#[test]
fn identical_picks_for_k_equal_to_n() {
    let data = mixture(60, 2, 5, 4.0, 0.1, 5);
    let emb = Embeddings::new(&data, 2).unwrap();
    assert_identical(&emb, 60, &[], "k = N");
    assert_identical(&emb, 57, &[4, 0, 4, 59], "k = N − labeled, repeated labeled");
}

#[test]
fn identical_picks_with_labeled_starting_centres() {
    let data = mixture(2000, 8, 12, 6.0, 0.05, 6);
    let emb = Embeddings::new(&data, 8).unwrap();
    assert_identical(&emb, 80, &[1999, 5, 700, 5, 12], "labeled, unsorted with a repeat");
    let every_tenth: Vec<usize> = (0..2000).step_by(10).collect();
    assert_identical(&emb, 120, &every_tenth, "200 labeled");
}

/// Six tight clusters on a line 10 apart, their centre rows first (to be labeled), each with an
/// outlier 30 above its centre (rows 246..252): every group's largest distance is an outlier's
/// 900, which no other centre is 60 away from, so no group can be skipped whole, while the tight
/// members are far below every per-point cut.
fn clusters_with_outliers() -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut data: Vec<f32> = (0..6).flat_map(|i| [10.0 * i as f32, 0.0]).collect();
    for i in 0..6 {
        for _ in 0..40 {
            let noise: [f32; 2] = [rng.sample(StandardNormal), rng.sample(StandardNormal)];
            data.extend([10.0 * i as f32 + 0.05 * noise[0], 0.05 * noise[1]]);
        }
    }
    data.extend((0..6).flat_map(|i| [10.0 * i as f32, 30.0]));
    data
}

#[test]
fn per_point_bounds_skip_where_no_group_can_be_skipped() {
    let data = clusters_with_outliers();
    let emb = Embeddings::new(&data, 2).unwrap();
    let labeled: Vec<usize> = (0..6).collect();
    // Two picks: the passes of the 6 labeled centres and of the first pick (an outlier, 900 from
    // its centre; ties to the lowest index) all read every group that has members to move.
    for t in [0.0, 0.5] {
        let want = reference(&emb, 2, t, &labeled, 0);
        let (got, stats) = pruned(&emb, 2, t, &labeled, 0, Policy::ALWAYS);
        assert_eq!(got, want, "T = {t}");
        assert_eq!(stats.centres, 7);
        assert!(stats.skipped_in_read_groups > 0, "T = {t}: {stats:?}");
        assert_eq!(stats.skipped, stats.skipped_in_read_groups, "T = {t}: a group was skipped whole: {stats:?}");
    }
    assert_eq!(reference(&emb, 2, 0.0, &labeled, 0), vec![246, 249]); // 247, 248: near 246
                                                                      // Longer runs, where groups also get skipped whole, at every temperature and policy.
    let always = assert_identical(&emb, 60, &labeled, "clusters with outliers, labeled");
    assert!(always.iter().all(|s| s.skipped_in_read_groups > 0 && s.skipped > s.skipped_in_read_groups));
    assert_identical(&emb, 60, &[], "clusters with outliers");
}

#[test]
fn identical_picks_in_one_dimension() {
    let data = gaussian(3000, 1, 7);
    let emb = Embeddings::new(&data, 1).unwrap();
    let always = assert_identical(&emb, 150, &[], "1-d gaussian");
    assert!(always[0].skipped_fraction() > 0.5, "{:?}", always[0]); // on a line most groups are far
    let data: Vec<f32> = (0..500).map(|i| ((i * 37) % 101) as f32).collect(); // integer ties
    let emb = Embeddings::new(&data, 1).unwrap();
    assert_identical(&emb, 120, &[3], "1-d integers");
}

#[test]
fn identical_picks_at_extreme_magnitudes() {
    // Distances overflowing f32 to infinity (points at ±3e38) and underflowing to subnormals.
    let data = [0f32, 1., 2., 3e38, -3e38, 2.5e38, 5., -1.];
    let emb = Embeddings::new(&data, 1).unwrap();
    for t in [0.0, 0.5, 1.0] {
        for labeled in [vec![], vec![0], vec![3]] {
            let want = reference(&emb, 5, t, &labeled, 1);
            for (name, policy) in POLICIES {
                assert_eq!(pruned(&emb, 5, t, &labeled, 1, policy).0, want, "T = {t}, {labeled:?}, {name}");
            }
        }
    }
    let data: Vec<f32> = (0..200).map(|i| i as f32 * 1e-21 + if i % 2 == 0 { 0.0 } else { 1e-19 }).collect();
    let emb = Embeddings::new(&data, 2).unwrap();
    assert_identical(&emb, 40, &[], "subnormal distances");
}

#[test]
fn grouped_draw_is_identical_at_t0_and_valid_otherwise() {
    let data = mixture(3000, 8, 20, 8.0, 0.05, 8);
    let emb = Embeddings::new(&data, 8).unwrap();
    for policy in [Policy::AUTO, Policy::ALWAYS, FLAPPING] {
        let grouped = sample(&emb, 100, 0.0, &[], &mut ChaCha8Rng::seed_from_u64(2), Draw::Grouped, policy).unwrap().0;
        assert_eq!(grouped, reference(&emb, 100, 0.0, &[], 2));
        for t in [0.5, 1.0, 0.05] {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let (got, stats) = sample(&emb, 100, t, &[1, 2], &mut rng, Draw::Grouped, policy).unwrap();
            let mut distinct = got.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 100);
            assert!(!got.contains(&1) && !got.contains(&2));
            if policy.start_pruned {
                // k-means++-like draws find every cluster: each of the 20 gets a pick.
                assert!(stats.skipped_fraction() > 0.5, "T = {t}: {stats:?}");
            }
        }
    }
}

/// The 0.9999 quantile of χ² with `df` degrees of freedom (Wilson–Hilferty).
fn chi2_quantile_9999(df: usize) -> f64 {
    let (df, z) = (df as f64, 3.719);
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + z * a.sqrt()).powi(3)
}

/// χ² of observed counts against expected probabilities, pooling cells expected below 5.
fn chi2(counts: &[usize], p: &[f64], trials: usize) -> (f64, usize) {
    let (mut stat, mut cells, mut pooled) = (0.0, 0, (0.0, 0.0));
    for (&c, &p) in counts.iter().zip(p) {
        let e = p * trials as f64;
        if e < 5.0 {
            pooled = (pooled.0 + c as f64, pooled.1 + e);
        } else {
            stat += (c as f64 - e).powi(2) / e;
            cells += 1;
        }
    }
    if pooled.1 > 0.0 {
        stat += (pooled.0 - pooled.1).powi(2) / pooled.1.max(1e-9);
        cells += 1;
    }
    (stat, cells - 1)
}

#[test]
fn grouped_draw_follows_d_to_the_one_over_t_over_two_picks() {
    // On a line, labeled 0 and 10: two groups. The joint law of two picks, enumerated exactly.
    let xs = [0f32, 10., 1., 2.5, 4., 7., 9., 13.];
    let emb = Embeddings::new(&xs, 1).unwrap();
    let labeled = [0, 1];
    let cand: Vec<usize> = (2..xs.len()).collect();
    for t in [0.5, 1.0, 0.25] {
        let weight = |i: usize, centres: &[usize]| {
            let d2 = centres.iter().map(|&c| ((xs[i] - xs[c]) as f64).powi(2)).fold(f64::INFINITY, f64::min);
            d2.powf(1.0 / (2.0 * t))
        };
        let mut p = vec![0.0; xs.len() * xs.len()];
        let w1: f64 = cand.iter().map(|&i| weight(i, &labeled)).sum();
        for &i in &cand {
            let after = [0, 1, i];
            let w2: f64 = cand.iter().filter(|&&j| j != i).map(|&j| weight(j, &after)).sum();
            for &j in cand.iter().filter(|&&j| j != i) {
                p[i * xs.len() + j] = weight(i, &labeled) / w1 * weight(j, &after) / w2;
            }
        }
        let trials = 40_000;
        let mut counts = vec![0usize; xs.len() * xs.len()];
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        for _ in 0..trials {
            let got = sample(&emb, 2, t, &labeled, &mut rng, Draw::Grouped, Policy::ALWAYS).unwrap().0;
            counts[got[0] * xs.len() + got[1]] += 1;
        }
        let (stat, df) = chi2(&counts, &p, trials);
        assert!(stat < chi2_quantile_9999(df), "T = {t}: χ² = {stat} with {df} df");
    }
}

#[test]
fn grouped_draw_single_pick_frequencies_on_a_mixture() {
    // Many groups after 30 picks; the 31st pick's law is ∝ d^(1/T) over the current distances.
    let data = mixture(300, 3, 6, 3.0, 0.4, 9);
    let emb = Embeddings::new(&data, 3).unwrap();
    let start = reference(&emb, 30, 0.0, &[0], 0);
    let mut labeled = vec![0];
    labeled.extend(&start);
    let n = emb.len();
    let nearest: Vec<f64> = (0..n)
        .map(|i| labeled.iter().map(|&c| squared_distance(emb.row(i), emb.row(c)) as f64).fold(f64::INFINITY, f64::min))
        .collect();
    for t in [0.5, 1.0] {
        let w: Vec<f64> = nearest.iter().map(|d| d.powf(1.0 / (2.0 * t))).collect();
        let total: f64 = w.iter().sum();
        let p: Vec<f64> = w.iter().map(|w| w / total).collect();
        let trials = 60_000;
        let mut counts = vec![0usize; n];
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        for _ in 0..trials {
            counts[sample(&emb, 1, t, &labeled, &mut rng, Draw::Grouped, Policy::ALWAYS).unwrap().0[0]] += 1;
        }
        let (stat, df) = chi2(&counts, &p, trials);
        assert!(stat < chi2_quantile_9999(df), "T = {t}: χ² = {stat} with {df} df");
    }
}

#[test]
fn skip_test_is_sound_at_the_triangle_boundary() {
    // x between g and c on a line through random directions: d(x, c) = d(x, g) exactly when
    // d(g, c) = 2·d(x, g); whenever the bound skips, no computed distance may drop.
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    for dim in [1, 3, 8, 17, 64] {
        let bounds = Bounds::new(dim).unwrap();
        let mut skips = 0;
        for trial in 0..4000 {
            let g: Vec<f32> = (0..dim).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
            let v: Vec<f32> = (0..dim).map(|_| rng.sample::<f32, _>(StandardNormal) * 0.3).collect();
            let eps = [0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3][trial % 6] as f32;
            let x: Vec<f32> = g.iter().zip(&v).map(|(g, v)| g + v).collect();
            let c: Vec<f32> = g.iter().zip(&v).map(|(g, v)| g + 2.0 * (1.0 + eps) * v).collect();
            let (r, q) = (squared_distance(&x, &g), squared_distance(&g, &c));
            let cut = bounds.cut(q);
            if bounds.separated(q, bounds.threshold(r)) || r <= cut {
                skips += 1;
                assert!(squared_distance(&x, &c) >= r, "dim {dim}, eps {eps}");
            }
            // The cut is the threshold inverted: proven, and within 10⁻⁴ of the exact q/4.
            assert!(bounds.separated(q, bounds.threshold(cut)), "dim {dim}: q {q}, cut {cut}");
            assert!(cut as f64 >= q as f64 / 4.0 * (1.0 - 1e-4), "dim {dim}: q {q}, cut {cut}");
        }
        assert!(skips > 0, "dim {dim}: the bound should be tight enough to skip at ε = 1e-3");
    }
    // Nothing to prove from an infinite or zero centre distance; tiny ones prove tiny cuts.
    let bounds = Bounds::new(8).unwrap();
    assert_eq!((bounds.cut(f32::INFINITY), bounds.cut(0.0)), (0.0, 0.0));
    for q in [1e-38f32, 1e-30, 3e38, f32::MAX] {
        let cut = bounds.cut(q);
        assert!(cut <= q / 4.0 && (cut == 0.0 || bounds.separated(q, bounds.threshold(cut))), "q {q}: cut {cut}");
    }
    assert!(bounds.cut(1e-30) > 2e-31 && bounds.cut(f32::MAX) > 8e37);
    // Zero radius is never a reason to read a group, and infinite ones are always read.
    let bounds = Bounds::new(4).unwrap();
    assert!(!bounds.separated(f32::INFINITY, bounds.threshold(1.0)));
    assert!(bounds.threshold(f32::INFINITY).is_infinite());
}

#[test]
fn stats_and_errors() {
    let data = gaussian(100, 4, 11);
    let emb = Embeddings::new(&data, 4).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let never = DiversityOptions { pruning: Pruning::Never, draw: Draw::IndexOrder };
    let (got, stats) = diversity_sample_stats(&emb, 10, 0.5, &[3, 3, 4], &mut rng, never).unwrap();
    assert_eq!(got, reference(&emb, 10, 0.5, &[3, 3, 4], 0));
    assert_eq!((stats.centres, stats.skipped, stats.point_evaluations), (12, 0, 1200));
    assert_eq!(stats.skipped_in_read_groups, 0);
    for options in [DiversityOptions::default(), never] {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let too_many = diversity_sample_stats(&emb, 100, 0.0, &[1], &mut rng, options);
        assert_eq!(too_many, Err(SelectError::TooMany { k: 100, available: 99 }));
        let out_of_range = diversity_sample_stats(&emb, 1, 0.0, &[1, 100], &mut rng, options);
        assert_eq!(out_of_range, Err(SelectError::LabeledOutOfRange { index: 100, n: 100 }));
        let bad_t = diversity_sample_stats(&emb, 1, f64::NAN, &[100], &mut rng, options);
        assert!(matches!(bad_t, Err(SelectError::Temperature(t)) if t.is_nan()));
        assert_eq!(diversity_sample_stats(&emb, 0, 0.0, &[], &mut rng, options).unwrap().0, Vec::<usize>::new());
    }
}

/// The T = 0.5 draw from block sums, with its walk forced (a margin no draw can meet) and
/// unforced: the unpruned sampler's picks either way.
#[test]
fn block_sum_draw_and_its_walk_pick_alike() {
    let data = mixture(3000, 8, 12, 4.0, 0.5, 9);
    let emb = Embeddings::new(&data, 8).unwrap();
    for seed in 0..3 {
        let want = reference(&emb, 150, 0.5, &[], seed);
        for scale in [1.0, f64::INFINITY] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut s = Sampler::new(&emb, Bounds::new(8).unwrap(), 0.5, Draw::IndexOrder, Policy::ALWAYS);
            s.margin_scale = scale;
            let mut chosen = vec![rng.random_range(0..emb.len())];
            while chosen.len() < 150 {
                s.add_centre(*chosen.last().unwrap());
                chosen.push(s.pick(&mut rng).unwrap());
            }
            assert_eq!(chosen, want, "seed {seed}, margin scale {scale}");
        }
    }
}

/// `n` rows of width `dim` in `rank` random directions (coefficients N(0, scale²)), each row
/// shifted by +offset or −offset in every coordinate (two far clusters when offset ≫ scale).
fn low_rank(n: usize, dim: usize, rank: usize, scale: f32, offset: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let basis: Vec<f32> = (0..rank * dim).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
    let mut data = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let a: Vec<f32> = (0..rank).map(|_| rng.sample::<f32, _>(StandardNormal) * scale).collect();
        let shift = if rng.random::<bool>() { offset } else { -offset };
        data.extend((0..dim).map(|j| shift + (0..rank).map(|r| a[r] * basis[r * dim + j]).sum::<f32>()));
    }
    data
}

#[test]
fn projection_bound_is_sound_at_its_boundary() {
    // Data in 5 directions, so the 8 principal directions hold nearly all of it and the bound is
    // nearly the distance itself. For pairs x, c: with u just above the computed s(x, c) (x
    // would move) the bound must not rule x out; with u 1 % below s it should, unless the
    // coordinates' rounding is large against the distances (`tight` false). Far clusters
    // (offset ≫ scale) make it so (without the rounding term E in the bound, the case at offset
    // 10⁵ rules out pairs that move), and tiny scales bring the absolute rounding terms in.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let cases = [
        (32, 1.0, 0.0, true),
        (64, 1.0, 0.0, true),
        (64, 1.0, 1e4, true),
        (64, 0.3, 1e5, false),
        (48, 1e-17, 0.0, true),
        (40, 1e15, 1e17, true),
    ];
    for (dim, scale, offset, tight) in cases {
        let (n, data) = (2000, low_rank(2000, dim, 5, scale, offset, 11));
        let bounds = Bounds::new(dim).unwrap();
        let projection = Projection::new(&data, dim, bounds.gamma, bounds.abs).unwrap();
        let coords = |i: usize| -> &[f32; DIRECTIONS] { projection.of(i).try_into().unwrap() };
        let row = |i: usize| &data[i * dim..][..dim];
        let (mut pairs, mut ruled_out) = (0, 0);
        for _ in 0..20_000 {
            let (x, c) = (rng.random_range(0..n), rng.random_range(0..n));
            let s = squared_distance(row(x), row(c));
            if !(s > 0.0) {
                continue;
            }
            pairs += 1;
            let case = format!("dim {dim}, scale {scale}, offset {offset}: s(x, c) = {s}");
            assert!(!projection.skips(coords(x), coords(c), s.next_up()), "{case}: u just above s was ruled out");
            assert!(!projection.skips(coords(x), coords(c), f32::INFINITY), "{case}: u = ∞ was ruled out");
            ruled_out += projection.skips(coords(x), coords(c), s * 0.99) as usize;
        }
        let enough = ruled_out * 10 > pairs * 9;
        assert!(enough || !tight, "dim {dim}, scale {scale}, offset {offset}: {ruled_out} of {pairs} ruled out");
    }
    // No spread, no bound; none either where 8 directions hold little of the variance.
    assert!(Projection::new(&[1.5; 64 * 10], 64, 1e-5, 1e-30).is_none());
    assert!(Projection::new(&gaussian(2000, 64, 16), 64, 1e-5, 1e-30).is_none());
    assert!(Projection::new(&gaussian(2000, 12, 16), 12, 1e-5, 1e-30).is_some());
}

#[test]
fn projection_rules_out_most_reads_on_low_rank_data_with_identical_picks() {
    // 64-d rows in 6 directions, two clusters: wide enough for the projection under every policy.
    let data = low_rank(4000, 64, 6, 1.0, 3.0, 13);
    let emb = Embeddings::new(&data, 64).unwrap();
    let always = assert_identical(&emb, 120, &[], "low rank");
    for (t, stats) in [0.0, 0.5, 1.0].iter().zip(&always) {
        assert!(stats.skipped_by_projection * 2 > stats.projection_checks, "T = {t}: {stats:?}");
        // Checked in every pass: every distance computed was first checked.
        assert!(stats.projection_checks >= stats.point_evaluations - 4000, "T = {t}: {stats:?}");
        assert!(stats.projection_checks > 0 && stats.skipped_by_projection <= stats.skipped_in_read_groups);
    }
    // Three far clusters, isotropic inside: the principal directions hold nearly all the
    // variance but miss the distances within a cluster, so the projection is checked for its
    // trial passes only (identical picks either way).
    let data = mixture(3000, 64, 3, 10.0, 0.05, 15);
    let emb = Embeddings::new(&data, 64).unwrap();
    for t in [0.0, 0.5] {
        let (picks, stats) = pruned(&emb, 150, t, &[], 0, Policy::ALWAYS);
        assert_eq!(picks, reference(&emb, 150, t, &[], 0), "isotropic clusters, T = {t}");
        assert!(stats.skipped_by_projection * 4 < stats.projection_checks, "T = {t}: {stats:?}");
        // Checked in every pass, every distance computed would have been checked first.
        assert!(stats.projection_checks < stats.point_evaluations, "T = {t}: {stats:?}");
    }
    // Narrow rows are not projected by default.
    let narrow = gaussian(500, 16, 14);
    let (_, stats) = pruned(&Embeddings::new(&narrow, 16).unwrap(), 30, 0.0, &[], 0, Policy::ALWAYS);
    assert_eq!(stats.projection_checks, 0);
}
