//! Summary statistics and significance tests over per-seed results. Pure functions, no I/O;
//! Student's t distribution comes from `statrs`.
use statrs::distribution::{ContinuousCDF, StudentsT};

/// n, mean, sample standard deviation, standard error and a 95 % t confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub se: f64,
    pub ci95: (f64, f64),
}

/// A t-test's statistic, degrees of freedom and two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    pub t: f64,
    pub df: f64,
    pub p: f64,
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn variance(xs: &[f64]) -> f64 {
    let m = mean(xs);
    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() as f64 - 1.0)
}

/// The t statistic of a mean difference over its standard error; a difference of exactly zero
/// with zero spread (identical samples) is t = 0, not 0/0.
fn t_statistic(difference: f64, se: f64) -> f64 {
    if difference == 0.0 && se == 0.0 {
        0.0
    } else {
        difference / se
    }
}

fn two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    let dist = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    2.0 * dist.sf(t.abs())
}

/// Summarises a sample; with one value the spread, SE and CI are NaN (unknown, not zero).
pub fn summarize(xs: &[f64]) -> Summary {
    let n = xs.len();
    let m = if n == 0 { f64::NAN } else { mean(xs) };
    if n < 2 {
        return Summary { n, mean: m, sd: f64::NAN, se: f64::NAN, ci95: (f64::NAN, f64::NAN) };
    }
    let sd = variance(xs).sqrt();
    let se = sd / (n as f64).sqrt();
    let q = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("df > 0").inverse_cdf(0.975);
    Summary { n, mean: m, sd, se, ci95: (m - q * se, m + q * se) }
}

/// Welch's unequal-variance t-test of mean(a) − mean(b).
pub fn welch_t_test(a: &[f64], b: &[f64]) -> TTest {
    if a.len() < 2 || b.len() < 2 {
        return TTest { t: f64::NAN, df: f64::NAN, p: f64::NAN };
    }
    let (va, vb) = (variance(a) / a.len() as f64, variance(b) / b.len() as f64);
    let t = t_statistic(mean(a) - mean(b), (va + vb).sqrt());
    // With no spread in either sample the degrees of freedom are 0/0; the smaller n − 1 bounds them.
    let df = if va + vb == 0.0 {
        (a.len().min(b.len()) - 1) as f64
    } else {
        (va + vb).powi(2) / (va * va / (a.len() as f64 - 1.0) + vb * vb / (b.len() as f64 - 1.0))
    };
    TTest { t, df, p: two_sided_p(t, df) }
}

/// Paired t-test over matched values (same seeds): a one-sample test of the differences.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> TTest {
    assert_eq!(a.len(), b.len(), "paired samples must have equal length");
    if a.len() < 2 {
        return TTest { t: f64::NAN, df: f64::NAN, p: f64::NAN };
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let df = (d.len() - 1) as f64;
    let t = t_statistic(mean(&d), variance(&d).sqrt() / (d.len() as f64).sqrt());
    TTest { t, df, p: two_sided_p(t, df) }
}

/// Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in input order.
/// NaN p-values are left NaN and not counted as comparisons.
pub fn holm_bonferroni(ps: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..ps.len()).filter(|&i| !ps[i].is_nan()).collect();
    order.sort_by(|&i, &j| ps[i].total_cmp(&ps[j]));
    let m = order.len();
    let mut out = vec![f64::NAN; ps.len()];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max((m - rank) as f64 * ps[i]);
        out[i] = running.min(1.0);
    }
    out
}

/// Cohen's d with the pooled standard deviation: the effect size of mean(a) − mean(b).
pub fn cohens_d(a: &[f64], b: &[f64]) -> f64 {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let pooled = (((na - 1.0) * variance(a) + (nb - 1.0) * variance(b)) / (na + nb - 2.0)).sqrt();
    (mean(a) - mean(b)) / pooled
}

/// Cohen's d_z for paired samples: the mean of the differences over their standard deviation
/// (the effect size that goes with the paired t-test: t = d_z·√n).
pub fn cohens_dz(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "paired samples must have equal length");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    mean(&d) / variance(&d).sqrt()
}

/// Normalised area under a learning curve: the trapezoid integral of `y` over the label axis
/// `x` divided by the axis' width, i.e. the curve's mean height (in `y`'s unit). `points` must
/// be sorted by `x`; fewer than two distinct `x` give NaN.
pub fn normalized_auc(points: &[(f64, f64)]) -> f64 {
    let (Some(first), Some(last)) = (points.first(), points.last()) else { return f64::NAN };
    let width = last.0 - first.0;
    if width <= 0.0 {
        return f64::NAN;
    }
    points.windows(2).map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0).sum::<f64>() / width
}

/// Ranks of `values` (1 = best; ties share the mean of their ranks; NaN values get NaN).
pub fn ranks(values: &[f64], higher_is_better: bool) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).filter(|&i| !values[i].is_nan()).collect();
    order.sort_by(|&i, &j| {
        let o = values[i].total_cmp(&values[j]);
        if higher_is_better {
            o.reverse()
        } else {
            o
        }
    });
    let mut out = vec![f64::NAN; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + 1 + end) as f64 / 2.0; // mean of ranks start+1 ..= end
        for &i in &order[start..end] {
            out[i] = rank;
        }
        start = end;
    }
    out
}

/// One two-sample comparison and how it was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleComparison {
    /// Paired over seeds (else Welch's test on all values).
    pub paired: bool,
    pub test: TTest,
    /// Cohen's d_z when paired, Cohen's d otherwise.
    pub effect_size: f64,
}

/// Compares two samples keyed by seed the one way every table and matrix of a report does:
/// paired over seeds when `allow_paired` and both hold exactly the same seeds (runs of one seed
/// share their initial set or data draw), Welch's test on all values otherwise. `None` when a
/// side has fewer than two values (nothing to test).
pub fn compare_samples(
    a: &std::collections::BTreeMap<i64, f64>,
    b: &std::collections::BTreeMap<i64, f64>,
    allow_paired: bool,
) -> Option<SampleComparison> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let paired = allow_paired && a.len() == b.len() && a.keys().all(|s| b.contains_key(s));
    let (x, y): (Vec<f64>, Vec<f64>) = (a.values().copied().collect(), b.values().copied().collect());
    Some(if paired {
        SampleComparison { paired, test: paired_t_test(&x, &y), effect_size: cohens_dz(&x, &y) }
    } else {
        SampleComparison { paired, test: welch_t_test(&x, &y), effect_size: cohens_d(&x, &y) }
    })
}

/// Compares each (key, sample, baseline sample) pair as [`compare_samples`] does and
/// Holm-adjusts the p-values over the family: every table's tests against its baseline row.
/// Pairs with nothing to test are left out; each result carries its Holm-adjusted p-value.
pub fn compare_with_baseline_family<K>(
    pairs: Vec<(K, &std::collections::BTreeMap<i64, f64>, &std::collections::BTreeMap<i64, f64>)>,
    allow_paired: bool,
) -> Vec<(K, SampleComparison, f64)> {
    let tested: Vec<(K, SampleComparison)> =
        pairs.into_iter().filter_map(|(key, a, b)| compare_samples(a, b, allow_paired).map(|c| (key, c))).collect();
    let adjusted = holm_bonferroni(&tested.iter().map(|(_, c)| c.test.p).collect::<Vec<_>>());
    tested.into_iter().zip(adjusted).map(|((key, c), p_holm)| (key, c, p_holm)).collect()
}

/// The pairwise penalty matrix of Ash et al. 2020 (BADGE, ICLR, Sec. 5): `by_budget[b][r]` holds
/// row r's values by seed at budget b. For every pair of rows and budget, a two-sided t-test
/// chosen by [`compare_samples`] at level `alpha`; when significant, the better row's entry
/// against the other gains 1/(number of budgets). Entry [i][j] is thus the share of budgets at
/// which row i beat row j; a column's sum says how often that row was beaten.
pub fn penalty_matrix(
    by_budget: &[Vec<Option<&std::collections::BTreeMap<i64, f64>>>],
    rows: usize,
    higher_is_better: bool,
    allow_paired: bool,
    alpha: f64,
) -> Vec<Vec<f64>> {
    let mut p = vec![vec![0.0; rows]; rows];
    let weight = 1.0 / by_budget.len() as f64;
    for cells in by_budget {
        for i in 0..rows {
            for j in i + 1..rows {
                let (Some(a), Some(b)) = (cells[i], cells[j]) else { continue };
                let Some(SampleComparison { test, .. }) = compare_samples(a, b, allow_paired) else { continue };
                if !(test.p < alpha) {
                    continue;
                }
                let i_better = (test.t > 0.0) == higher_is_better;
                if i_better {
                    p[i][j] += weight;
                } else {
                    p[j][i] += weight;
                }
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values computed once with SciPy 1.17.1 (scipy.stats.sem, t.interval,
    // ttest_ind(equal_var=False), ttest_rel) on these samples.
    const A: [f64; 5] = [0.871, 0.862, 0.880, 0.869, 0.875];
    const B: [f64; 5] = [0.850, 0.861, 0.848, 0.866, 0.857];

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn summary_matches_scipy() {
        let s = summarize(&A);
        close(s.mean, 0.8714, 1e-12);
        close(s.sd, 0.006730527468185542, 1e-12);
        close(s.se, 0.0030099833886584847, 1e-12);
        close(s.ci95.0, 0.8630429463538325, 1e-9);
        close(s.ci95.1, 0.8797570536461676, 1e-9);
        let one = summarize(&[0.5]);
        assert_eq!(one.mean, 0.5);
        assert!(one.se.is_nan());
    }

    #[test]
    fn welch_matches_scipy() {
        let w = welch_t_test(&A, &B);
        close(w.t, 3.3275869103104267, 1e-9);
        close(w.df, 7.907311299978169, 1e-9);
        close(w.p, 0.010596181343654547, 1e-7);
        let w = welch_t_test(&[1.0, 2.0, 3.5], &[1.2, 2.9, 3.0, 4.4]);
        close(w.t, -0.7241717792859681, 1e-9);
        close(w.df, 4.562808492615939, 1e-9);
        close(w.p, 0.5043637319324941, 1e-7);
    }

    #[test]
    fn paired_matches_scipy() {
        let p = paired_t_test(&A, &B);
        close(p.t, 2.583903609560829, 1e-9);
        assert_eq!(p.df, 4.0);
        close(p.p, 0.061075298914380835, 1e-7);
    }

    #[test]
    fn samples_without_spread() {
        // Identical samples: no evidence of a difference (SciPy gives NaN here; p = 1 is the limit).
        let same = [0.25, 0.5, 0.75];
        let p = paired_t_test(&same, &same);
        assert_eq!((p.t, p.df, p.p), (0.0, 2.0, 1.0));
        let w = welch_t_test(&[0.5, 0.5, 0.5], &[0.5, 0.5]);
        assert_eq!((w.t, w.df, w.p), (0.0, 1.0, 1.0));
        // A constant non-zero shift of every pair: t is infinite and p is 0.
        let shifted = paired_t_test(&[1.0, 2.0, 3.0], &[0.0, 1.0, 2.0]);
        assert_eq!((shifted.t, shifted.p), (f64::INFINITY, 0.0));
        let apart = welch_t_test(&[1.0, 1.0], &[0.0, 0.0]);
        assert_eq!((apart.t, apart.p), (f64::INFINITY, 0.0));
    }

    #[test]
    fn holm_hand_computed() {
        // Sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, max(0.04·1, 0.06) = 0.06.
        let adj = holm_bonferroni(&[0.01, 0.04, 0.03, 0.005]);
        for (g, w) in adj.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            close(*g, w, 1e-12);
        }
        assert_eq!(holm_bonferroni(&[0.6, 0.9])[1], 1.0);
        let with_nan = holm_bonferroni(&[f64::NAN, 0.02]);
        assert!(with_nan[0].is_nan());
        close(with_nan[1], 0.02, 1e-15);
    }

    #[test]
    fn tiny_p_values_do_not_cancel_to_zero() {
        // SciPy 1.17.1: 2 * t.sf(20, 18) = 9.632230754827327e-14 (1 − cdf would lose most digits).
        let p = two_sided_p(20.0, 18.0);
        assert!((p / 9.632230754827327e-14 - 1.0).abs() < 1e-6, "{p}");
    }

    #[test]
    fn cohens_d_closed_form() {
        // Pooled SD of A and B computed with NumPy (ddof = 1): d = 2.104550749748676.
        close(cohens_d(&A, &B), 2.104550749748676, 1e-9);
        // Shifting one sample by one pooled SD gives d = 1 exactly.
        let x = [1.0, 2.0, 3.0];
        let y: Vec<f64> = x.iter().map(|v| v - 1.0).collect();
        close(cohens_d(&x, &y), 1.0, 1e-12);
    }

    #[test]
    fn cohens_dz_closed_form() {
        // NumPy: d = A − B; d.mean() / d.std(ddof=1) = 1.1555568236570182.
        close(cohens_dz(&A, &B), 1.1555568236570182, 1e-9);
        // d_z · √n is the paired t statistic.
        close(cohens_dz(&A, &B) * 5f64.sqrt(), paired_t_test(&A, &B).t, 1e-9);
    }

    #[test]
    fn auc_hand_computed() {
        // Trapezoids (100→150: 50·(60+70)/2 = 3250; 150→300: 150·(70+80)/2 = 11250) over width 200.
        close(normalized_auc(&[(100.0, 60.0), (150.0, 70.0), (300.0, 80.0)]), 14500.0 / 200.0, 1e-12);
        // A flat curve's area is its height; one point has none.
        close(normalized_auc(&[(10.0, 5.0), (20.0, 5.0)]), 5.0, 1e-12);
        assert!(normalized_auc(&[(10.0, 5.0)]).is_nan());
    }

    #[test]
    fn ranks_with_ties() {
        assert_eq!(ranks(&[0.5, 0.9, 0.5, 0.1], true), vec![2.5, 1.0, 2.5, 4.0]);
        assert_eq!(ranks(&[0.5, 0.9, 0.1], false), vec![2.0, 3.0, 1.0]);
        let r = ranks(&[f64::NAN, 1.0], true);
        assert!(r[0].is_nan() && r[1] == 1.0);
    }

    #[test]
    fn penalty_matrix_hand_computed() {
        use std::collections::BTreeMap;
        let m = |v: &[f64]| -> BTreeMap<i64, f64> { v.iter().enumerate().map(|(s, x)| (s as i64, *x)).collect() };
        // Row 0 beats row 1 at both budgets (a constant shift: p = 0); row 2 equals row 0 at the
        // first budget (t = 0) and is beaten by both at the second (paired p of A vs B is 0.061,
        // not significant, so only the exact shifts count).
        let (r0a, r1a, r2a) = (m(&[1.0, 2.0, 3.0]), m(&[0.0, 1.0, 2.0]), m(&[1.0, 2.0, 3.0]));
        let (r0b, r1b, r2b) = (m(&[5.0, 6.0, 7.0]), m(&[4.0, 5.0, 6.0]), m(&[3.0, 4.0, 5.0]));
        let budgets = vec![vec![Some(&r0a), Some(&r1a), Some(&r2a)], vec![Some(&r0b), Some(&r1b), Some(&r2b)]];
        let p = penalty_matrix(&budgets, 3, true, true, 0.05);
        assert_eq!(p, vec![vec![0.0, 1.0, 0.5], vec![0.0, 0.0, 0.5], vec![0.0, 0.5, 0.0]]);
        // Lower is better: the wins swap sides.
        let q = penalty_matrix(&budgets, 3, false, true, 0.05);
        assert_eq!(q[1][0], 1.0);
        // A and B (paired p = 0.061) are no significant difference at α = 0.05, but are at 0.1.
        let (a, b) = (m(&A), m(&B));
        let one = vec![vec![Some(&a), Some(&b)]];
        assert_eq!(penalty_matrix(&one, 2, true, true, 0.05), vec![vec![0.0, 0.0], vec![0.0, 0.0]]);
        assert_eq!(penalty_matrix(&one, 2, true, true, 0.1), vec![vec![0.0, 1.0], vec![0.0, 0.0]]);
        // The report's --test welch: Welch's p = 0.010596 (SciPy) is significant at 0.05.
        assert_eq!(penalty_matrix(&one, 2, true, false, 0.05), vec![vec![0.0, 1.0], vec![0.0, 0.0]]);
    }

    #[test]
    fn compare_samples_pairs_only_identical_seed_sets() {
        use std::collections::BTreeMap;
        let m = |v: &[f64]| -> BTreeMap<i64, f64> { v.iter().enumerate().map(|(s, x)| (s as i64, *x)).collect() };
        let (a, b) = (m(&A), m(&B));
        let paired = compare_samples(&a, &b, true).unwrap();
        assert!(paired.paired);
        close(paired.test.p, 0.061075298914380835, 1e-7); // SciPy ttest_rel
        let welch = compare_samples(&a, &b, false).unwrap();
        assert!(!welch.paired);
        close(welch.test.p, 0.010596, 1e-6); // SciPy ttest_ind(equal_var=False)
                                             // One seed missing on one side: Welch on all values, not a pairing of the rest.
        let mut fewer = b.clone();
        fewer.remove(&4);
        let mixed = compare_samples(&a, &fewer, true).unwrap();
        assert!(!mixed.paired);
        close(mixed.test.p, welch_t_test(&A, &B[..4]).p, 1e-12);
        // A single value on either side: nothing to test (no NaN row in the report).
        assert!(compare_samples(&a, &m(&[0.5]), true).is_none());
    }

    #[test]
    fn a_family_against_its_baseline_is_holm_adjusted_and_skips_what_it_cannot_test() {
        use std::collections::BTreeMap;
        let m = |v: &[f64]| -> BTreeMap<i64, f64> { v.iter().enumerate().map(|(s, x)| (s as i64, *x)).collect() };
        let (a, b, single) = (m(&A), m(&B), m(&[0.5]));
        let family = compare_with_baseline_family(vec![("a", &a, &b), ("single", &single, &b), ("b", &b, &a)], true);
        assert_eq!(family.iter().map(|f| f.0).collect::<Vec<_>>(), ["a", "b"]);
        for (_, c, p_holm) in &family {
            // SciPy ttest_rel, either way round; Holm over two equal p-values doubles both.
            close(c.test.p, 0.061075298914380835, 1e-7);
            close(*p_holm, 2.0 * 0.061075298914380835, 1e-7);
        }
    }
}
