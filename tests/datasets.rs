//! Dataset readers on small synthetic files of each real format, good and broken.
#![cfg(feature = "torch")] // runs experiments: needs the libtorch build
mod common;

use ssal::config::{DatasetName, ExperimentConfig};
use ssal::data::{load_cifar10, load_fashion_mnist, load_image_folder, Dataset};
use std::path::Path;

#[test]
fn idx_raw_and_gz_give_the_same_data() {
    let t = tempfile::tempdir().unwrap();
    common::write_idx_dataset(&t.path().join("raw"), 30, 10, false);
    common::write_idx_dataset(&t.path().join("gz"), 30, 10, true);
    let a = load_fashion_mnist(&t.path().join("raw")).unwrap();
    let b = load_fashion_mnist(&t.path().join("gz")).unwrap();
    assert_eq!(a.train.images.size(), vec![30, 1, 28, 28]);
    assert_eq!(a.test.len(), 10);
    assert!(a.train.images.equal(&b.train.images));
    assert_eq!(a.train.label_vec()[..12], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    // Pixel (r, c) of image 0 equals the generator's value.
    let want = common::pattern(0, 0);
    assert_eq!(a.train.images.int64_value(&[0, 0, 3, 4]), want[3 * 28 + 4] as i64);
}

fn expect_error(dir: &Path, needles: &[&str]) {
    let e = load_fashion_mnist(dir).unwrap_err().to_string();
    for n in needles {
        assert!(e.contains(n), "error {e:?} lacks {n:?}");
    }
}

#[test]
fn broken_idx_files_are_named() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    common::write_idx_dataset(d, 20, 10, false);
    // Truncated images.
    let p = d.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
    expect_error(d, &["train-images-idx3-ubyte", "truncated"]);
    // Wrong magic.
    let mut bad = bytes.clone();
    bad[3] = 1;
    std::fs::write(&p, &bad).unwrap();
    expect_error(d, &["train-images-idx3-ubyte", "magic"]);
    std::fs::write(&p, &bytes).unwrap();
    // Label/image count mismatch: labels for 10 test images, images for 20.
    std::fs::copy(d.join("t10k-labels-idx1-ubyte"), d.join("train-labels-idx1-ubyte")).unwrap();
    expect_error(d, &["train-labels-idx1-ubyte", "10 labels but 20 images"]);
    // Missing file.
    std::fs::remove_file(d.join("train-labels-idx1-ubyte")).unwrap();
    expect_error(d, &["train-labels-idx1-ubyte", "missing"]);
}

fn cifar_record(label: u8, fill: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend(std::iter::repeat_n(fill, 3072));
    r
}

#[test]
fn cifar10_binary_batches() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    for i in 1..=5u8 {
        let recs: Vec<u8> = (0..4u8).flat_map(|j| cifar_record((i + j) % 10, i * 10 + j)).collect();
        std::fs::write(d.join(format!("data_batch_{i}.bin")), recs).unwrap();
    }
    std::fs::write(d.join("test_batch.bin"), cifar_record(7, 99)).unwrap();
    let ds = load_cifar10(d).unwrap();
    assert_eq!(ds.train.images.size(), vec![20, 3, 32, 32]);
    assert_eq!(ds.test.label_vec(), vec![7]);
    assert_eq!(ds.train.label_vec()[4], 2); // batch 2, record 0
    assert_eq!(ds.train.images.int64_value(&[5, 2, 31, 31]), 21);
    // Truncated batch.
    std::fs::write(d.join("data_batch_3.bin"), &cifar_record(1, 1)[..100]).unwrap();
    let e = load_cifar10(d).unwrap_err().to_string();
    assert!(e.contains("data_batch_3.bin") && e.contains("truncated"), "{e}");
    // Bad label.
    std::fs::write(d.join("data_batch_3.bin"), cifar_record(12, 1)).unwrap();
    let e = load_cifar10(d).unwrap_err().to_string();
    assert!(e.contains("data_batch_3.bin") && e.contains("label 12"), "{e}");
}

#[test]
fn image_folder_split_is_stratified_seeded_and_resized() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    common::write_image_folder(d, &[("airplane", 10), ("bonsai", 20), ("cup", 5)]);
    std::fs::write(d.join("cup").join("notes.txt"), "not an image").unwrap();
    let a = load_image_folder(d, 16, 0.1, 1).unwrap();
    assert_eq!(a.num_classes, 3);
    assert_eq!(a.train.images.size(), vec![35 - 4, 3, 16, 16]);
    // round(10·0.1)=1, round(20·0.1)=2, round(5·0.1)=1 (at least one) test images per class.
    let mut test_counts = [0; 3];
    for l in a.test.label_vec() {
        test_counts[l as usize] += 1;
    }
    assert_eq!(test_counts, [1, 2, 1]);
    // Same seed, same split; another seed, another split.
    let b = load_image_folder(d, 16, 0.1, 1).unwrap();
    assert!(a.test.images.equal(&b.test.images));
    let c = load_image_folder(d, 16, 0.1, 2).unwrap();
    assert!(!a.test.images.equal(&c.test.images));
    // Normalisation constants come from the training images.
    assert_eq!(a.mean.len(), 3);
    assert!(a.std.iter().all(|s| *s > 0.0));
}

/// An image-folder config on `dir` (16×16 images) with the given run and split seeds.
fn folder_config(dir: &Path, seed: u64, split_seed: Option<u64>) -> ExperimentConfig {
    let mut cfg = ExperimentConfig { seed, ..Default::default() };
    cfg.dataset.name = DatasetName::ImageFolder;
    cfg.dataset.path = Some(dir.to_path_buf());
    cfg.dataset.image_size = 16;
    cfg.dataset.test_fraction = 0.5;
    cfg.dataset.split_seed = split_seed;
    cfg
}

#[test]
fn split_seed_fixes_the_image_folder_split_across_run_seeds() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    common::write_image_folder(d, &[("airplane", 10), ("bonsai", 20), ("cup", 5)]);
    let load = |seed, split_seed| Dataset::load(&folder_config(d, seed, split_seed)).unwrap();
    // Two run seeds, one split seed: one split.
    let (a, b) = (load(1, Some(0)), load(2, Some(0)));
    assert_eq!(a.train_rows, b.train_rows);
    assert!(a.test.images.equal(&b.test.images) && a.test.labels.equal(&b.test.labels));
    // Rows are named by their paths in the folder: 5 + 10 + 2 of 35 images train.
    assert_eq!(a.train_rows.len(), 17);
    assert!(
        a.train_rows
            .iter()
            .all(|r| r.starts_with("airplane/img_") || r.starts_with("bonsai/img_") || r.starts_with("cup/img_")),
        "{:?}",
        a.train_rows
    );
    // Another split seed, another split.
    assert_ne!(load(1, Some(1)).train_rows, a.train_rows);
    // Left out, the run's seed splits, as before the field existed.
    let old = load_image_folder(d, 16, 0.5, 3).unwrap();
    let none = load(3, None);
    assert_eq!(none.train_rows, old.train_rows);
    assert!(none.test.images.equal(&old.test.images));
    assert_ne!(load(4, None).train_rows, none.train_rows);
    // The test subset follows the split seed too: one evaluation set for every run seed.
    let subset = |seed, split_seed| {
        let mut cfg = folder_config(d, seed, split_seed);
        cfg.dataset.test_subset = Some(5);
        Dataset::load(&cfg).unwrap().test
    };
    let (x, y) = (subset(1, Some(0)), subset(2, Some(0)));
    assert!(x.images.equal(&y.images) && x.labels.equal(&y.labels));
    let (x, y) = (subset(1, Some(0)), subset(1, Some(1)));
    assert!(!(x.images.equal(&y.images) && x.labels.equal(&y.labels)));
}

#[test]
fn image_folder_errors_name_the_folder_or_file() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir(d.join("a")).unwrap();
    std::fs::create_dir(d.join("b_empty")).unwrap();
    common::write_png(&d.join("a").join("x.png"), 1);
    let e = load_image_folder(d, 16, 0.1, 0).unwrap_err().to_string();
    assert!(e.contains("b_empty") && e.contains("no .jpg"), "{e}");
    std::fs::write(d.join("b_empty").join("broken.png"), b"\x89PNG garbage").unwrap();
    let e = load_image_folder(d, 16, 0.1, 0).unwrap_err().to_string();
    assert!(e.contains("broken.png") && e.contains("decode"), "{e}");
}

#[test]
fn subsets_are_seeded_and_sized() {
    let t = tempfile::tempdir().unwrap();
    common::write_idx_dataset(t.path(), 50, 20, true);
    let mut cfg = ExperimentConfig::default();
    cfg.dataset.name = DatasetName::FashionMnist;
    cfg.dataset.path = Some(t.path().to_path_buf());
    cfg.dataset.train_subset = Some(25);
    cfg.dataset.test_subset = Some(7);
    let a = Dataset::load(&cfg).unwrap();
    assert_eq!((a.train.len(), a.test.len()), (25, 7));
    assert!(a.train.images.equal(&Dataset::load(&cfg).unwrap().train.images));
    cfg.dataset.train_subset = Some(51);
    assert!(Dataset::load(&cfg).unwrap_err().to_string().contains("train_subset = 51"));
}
