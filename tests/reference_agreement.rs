//! ssal's k-center greedy (diversity sampling at T = 0) against the benchmark's independent NumPy
//! reference (`benches/reference/reference.py`, BADGE-style `init_centers` with scikit-learn's
//! distances): on a small random matrix both must pick the same points in the same order. This
//! also keeps the benchmark's reference honest. Needs the venv of scripts/setup.sh ($SSAL_VENV);
//! without it the test fails under CI and is skipped elsewhere.
#![cfg(feature = "torch")] // runs experiments: needs the libtorch build
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ssal::select::{diversity_sample, Embeddings};
use std::path::PathBuf;
use std::process::Command;
use tch::Tensor;

fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("SSAL_VENV").map(|v| PathBuf::from(v).join("bin/python"));
    let found = venv
        .filter(|p| p.is_file())
        .filter(|p| Command::new(p).args(["-c", "import numpy, sklearn"]).status().is_ok_and(|s| s.success()));
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must have $SSAL_VENV with numpy and scikit-learn");
        eprintln!("skipped: no $SSAL_VENV with numpy and scikit-learn (run under scripts/test.sh)");
    }
    found
}

#[test]
fn k_center_greedy_matches_the_numpy_reference() {
    let Some(python) = python() else { return };
    let (n, d, k, first) = (400usize, 6usize, 25usize, 17usize);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Points on a coarse grid plus noise: well-separated distances, so rounding cannot reorder picks.
    let values: Vec<f32> = (0..n * d).map(|_| rng.random_range(0..10) as f32 + rng.random::<f32>() * 0.1).collect();
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    Tensor::from_slice(&values).view([n as i64, d as i64]).write_npy(&npy).unwrap();
    let emb = Embeddings::new(&values, d).unwrap();
    let ours = diversity_sample(&emb, k, 0.0, &[first], &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/reference/reference.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(["diversity", "--embeddings", npy.to_str().unwrap(), "--k", &k.to_string(), "--temperature", "0"])
        .args(["--first", &first.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs: Vec<usize> =
        answer["chosen"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(ours, theirs);
}
