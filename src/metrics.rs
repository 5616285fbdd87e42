//! Metrics of a selected set (paper, Sections V-A4 and VI-A): class histogram, class-distribution
//! distance (Eq. 6) and diversity. Pure functions.

/// Number of selected items per class.
pub fn class_histogram(labels: &[usize], num_classes: usize) -> Vec<usize> {
    let mut h = vec![0; num_classes];
    for &l in labels {
        h[l] += 1;
    }
    h
}

/// Eq. 6: d = max_c |p̃_c − p_c|, the largest gap between the selected set's class proportions
/// and the source dataset's (`reference`, which should sum to 1).
pub fn class_distribution_distance(selected: &[usize], reference: &[f64]) -> f64 {
    let h = class_histogram(selected, reference.len());
    let n = selected.len().max(1) as f64;
    h.iter().zip(reference).map(|(&c, &p)| (c as f64 / n - p).abs()).fold(0.0, f64::max)
}

/// Diversity: the mean L2 distance over all unordered pairs of the given rows of a row-major
/// `dim`-wide embedding matrix (NaN for fewer than two rows).
pub fn diversity(embeddings: &[f32], dim: usize, rows: &[usize]) -> f64 {
    if rows.len() < 2 {
        return f64::NAN;
    }
    let row = |i: usize| &embeddings[i * dim..(i + 1) * dim];
    let mut total = 0.0f64;
    for (a, &i) in rows.iter().enumerate() {
        for &j in &rows[a + 1..] {
            let d2: f64 = row(i).iter().zip(row(j)).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
            total += d2.sqrt();
        }
    }
    total / (rows.len() * (rows.len() - 1) / 2) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_distance_hand_computed() {
        // 10 selected: 5 of class 0, 3 of class 1, 2 of class 2; reference uniform over 3 classes.
        let sel = [0, 0, 0, 0, 0, 1, 1, 1, 2, 2];
        let d = class_distribution_distance(&sel, &[1.0 / 3.0; 3]);
        assert!((d - (0.5 - 1.0 / 3.0)).abs() < 1e-12);
        // A perfectly balanced set has distance 0; a single-class set 1 − p.
        assert_eq!(class_distribution_distance(&[0, 1, 2, 3], &[0.25; 4]), 0.0);
        assert!((class_distribution_distance(&[2, 2], &[0.25; 4]) - 0.75).abs() < 1e-12);
        assert_eq!(class_histogram(&sel, 4), vec![5, 3, 2, 0]);
    }

    #[test]
    fn diversity_hand_computed() {
        // Three points of a 3-4-5 triangle: mean of 3, 4, 5 is 4.
        let emb = [0f32, 0., 3., 0., 0., 4., 9., 9.];
        assert!((diversity(&emb, 2, &[0, 1, 2]) - 4.0).abs() < 1e-12);
        assert!(diversity(&emb, 2, &[3]).is_nan());
    }
}
