//! Bad inputs through the real binary: each is refused before any work with one error line that
//! names the problem and where it is, and exit code 2.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ssal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssal")).args(args).output().unwrap()
}

/// Asserts exit 2 and a single stderr line containing every needle; returns that line.
fn refused(o: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one error line expected: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
    err
}

/// A float32 `rows × cols` `.npy` file (format 1.0, written by hand), with `cut` bytes removed
/// from its end.
fn write_npy(path: &Path, rows: usize, cols: usize, cut: usize) -> PathBuf {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for i in 0..rows * cols {
        bytes.extend_from_slice(&((i % 7) as f32).to_le_bytes());
    }
    bytes.truncate(bytes.len() - cut);
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

#[test]
fn select_refuses_a_truncated_npy_duplicate_or_out_of_range_labels_and_k_0() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let good = write_npy(&d.join("good.npy"), 5, 3, 0);
    let select = |x: &Path, k: &str, extra: &[&str]| {
        ssal(&[&["select", "--embeddings", x.to_str().unwrap(), "--k", k, "--temperature", "0"][..], extra].concat())
    };
    let o = select(&good, "2", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);

    // The last row lost 6 of its 12 bytes: 60 announced, 54 there.
    let cut = write_npy(&d.join("cut.npy"), 5, 3, 6);
    refused(&select(&cut, "2", &[]), &["cut.npy", "truncated", "5 × 3", "60 bytes", "54 bytes"]);

    let labeled = |name: &str, text: &str| {
        std::fs::write(d.join(name), text).unwrap();
        d.join(name).to_string_lossy().into_owned()
    };
    let dup = labeled("dup.txt", "# start\n0\n3\n0\n");
    refused(&select(&good, "1", &["--labeled", &dup]), &["dup.txt:4", "0", "twice", "line 2"]);
    let far = labeled("far.txt", "1\n5\n");
    refused(&select(&good, "1", &["--labeled", &far]), &["far.txt:2", "5", "out of range", "5 rows"]);

    refused(&select(&good, "0", &[]), &["--k 0"]);
    // k = 0 is refused before the embeddings are read.
    refused(&select(&d.join("missing.npy"), "0", &[]), &["--k 0"]);
}

/// A tiny run's config on the synthetic dataset in `data` (400 training images), plus `extra`.
#[cfg(feature = "torch")]
fn config(data: &Path, extra: &str) -> String {
    format!(
        "method = \"supervised\"\ndevice = \"cpu\"\n[dataset]\npath = \"{}\"\n[labeled]\nsize = 20\n[train]\nsteps = 5\nbatch_size = 8\n\
         eval_every = 5\nmedian_of = 1\n{extra}",
        data.display()
    )
}

/// Asserts that the run was refused before it started training and wrote no result.
#[cfg(feature = "torch")]
fn refused_run(out: &Output, result: &serde_json::Value, needles: &[&str]) {
    let err = refused(out, needles);
    assert!(!err.contains("training on"), "{err}");
    assert!(result.is_null(), "{result}");
}

#[test]
#[cfg(feature = "torch")] // runs experiments
fn run_refuses_sizes_the_pool_cannot_hold_before_training() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 400, 50, false);
    let run = |name: &str, cfg: String| common::run_config(&cfg, &t.path().join(name), &[]);

    // A batch larger than the whole pool would allocate until the machine gives out.
    let (out, r) = run("batch", config(&data, "").replace("batch_size = 8", "batch_size = 100000"));
    refused_run(&out, &r, &["train.batch_size", "100000", "400 images", "20 of them labeled"]);
    // Without training no batch is drawn (initial-set runs keep the default batch size).
    let no_training =
        config(&data, "").replace("batch_size = 8", "batch_size = 100000").replace("steps = 5", "steps = 0");
    let (out, _) = run("select-only", no_training);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // 20 initial labels + 300 + 200 queried > 400 images.
    let (out, r) = run("budgets", config(&data, "[query]\nbudgets = [300, 200]\n"));
    refused_run(&out, &r, &["query.budgets", "500", "380 unlabeled", "400 images"]);

    // A budget larger than the candidates scored per cycle.
    let (out, r) = run("subset", config(&data, "[query]\nbudgets = [50]\npool_subset = 30\n"));
    refused_run(&out, &r, &["query.budgets[0] = 50", "query.pool_subset = 30"]);

    // More initial labels than images.
    let (out, r) = run("size", config(&data, "").replace("size = 20", "size = 401"));
    refused_run(&out, &r, &["labeled.size = 401", "400 images"]);

    // A truncated imported embedding is refused when it is read, before the initial set.
    let npy = write_npy(&t.path().join("emb.npy"), 400, 4, 1);
    let init = format!(
        "[init]\nstrategy = \"diversity\"\ntemperature = 0\nembedding = \"npy\"\nembedding_path = \"{}\"\n",
        npy.display()
    );
    let (out, r) = run("npy", config(&data, &init));
    refused_run(&out, &r, &["emb.npy", "truncated", "400 × 4"]);

    // The same settings within the pool run (a batch may be larger than the labeled set: it
    // cycles through it).
    let ok = config(&data, "[query]\nbudgets = [30]\npool_subset = 100\n").replace("batch_size = 8", "batch_size = 64");
    let (out, r) = run("ok", ok);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r["labeled_indices"].as_array().unwrap().len(), 50);
}

/// Runs `ssal data rows --config CFG` plus `extra`.
#[cfg(feature = "torch")]
fn data_rows(cfg: &Path, extra: &[&str]) -> Output {
    ssal(&[&["data", "rows", "--config", cfg.to_str().unwrap()][..], extra].concat())
}

/// `[init]` choosing 4 images by k-center greedy on the imported embedding `npy`.
#[cfg(feature = "torch")]
fn npy_init(npy: &Path) -> String {
    format!(
        "[init]\nstrategy = \"diversity\"\ntemperature = 0\nembedding = \"npy\"\nembedding_path = \"{}\"\n",
        npy.display()
    )
}

#[test]
#[cfg(feature = "torch")] // runs experiments
fn run_refuses_an_image_folder_embedding_of_another_split_or_without_sidecar() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("folder");
    // 31 training images with the default test fraction 0.1 (1 + 2 + 1 held out).
    common::write_image_folder(&data, &[("airplane", 10), ("bonsai", 20), ("cup", 5)]);
    let npy = write_npy(&t.path().join("emb.npy"), 31, 2, 0);
    let cfg = |split_seed: u64| {
        format!(
            "device = \"cpu\"\nseed = 3\n[dataset]\nname = \"image_folder\"\npath = \"{}\"\nimage_size = 16\n\
             split_seed = {split_seed}\n[labeled]\nsize = 4\n[train]\nsteps = 0\n{}",
            data.display(),
            npy_init(&npy)
        )
    };
    let run = |name: &str, split_seed| common::run_config(&cfg(split_seed), &t.path().join(name), &[]);
    let cfg0 = t.path().join("split0.toml");
    std::fs::write(&cfg0, cfg(0)).unwrap();

    // Without a sidecar nothing says which images the rows are: refused, naming the fix.
    let (out, r) = run("none", 0);
    refused_run(&out, &r, &["emb.npy", "emb.npy.rows.json", "ssal data rows --config", "--write-sidecar"]);

    // The training images in row order, as the feature extractor must follow them.
    let o = data_rows(&cfg0, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(String::from).collect();
    assert_eq!(rows.len(), 31);
    assert!(rows.iter().all(|r| r.ends_with(".png") && data.join(r).is_file()), "{rows:?}");

    // A sidecar is written only for an embedding with one row per training image.
    let short = write_npy(&t.path().join("short.npy"), 30, 2, 0);
    refused(&data_rows(&cfg0, &["--write-sidecar", short.to_str().unwrap()]), &["short.npy", "30 rows", "31 images"]);
    let o = data_rows(&cfg0, &["--write-sidecar", npy.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.path().join("emb.npy.rows.json").is_file());

    // Split seed 0, as the sidecar says: accepted, for any run seed.
    let (out, r) = run("right", 0);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r["labeled_indices"].as_array().unwrap().len(), 4);
    // Split seed 1: as many training images, other ones.
    let (out, r) = run("wrong", 1);
    refused_run(&out, &r, &["emb.npy", "emb.npy.rows.json", "another image list or split", "31 rows"]);
}

#[test]
#[cfg(feature = "torch")] // runs experiments
fn a_built_in_dataset_embedding_needs_no_sidecar_but_a_present_one_is_checked() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 400, 50, false);
    let npy = write_npy(&t.path().join("emb.npy"), 40, 2, 0);
    // 40 of the 400 images, drawn with the run's seed.
    let cfg = |seed: u64| {
        format!("seed = {seed}\n{}", config(&data, &npy_init(&npy)))
            .replace("[dataset]\n", "[dataset]\ntrain_subset = 40\n")
            .replace("steps = 5", "steps = 0")
            .replace("size = 20", "size = 4")
    };
    let run = |name: &str, seed| common::run_config(&cfg(seed), &t.path().join(name), &[]);
    let (out, _) = run("old", 0);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let cfg0 = t.path().join("seed0.toml");
    std::fs::write(&cfg0, cfg(0)).unwrap();
    let o = data_rows(&cfg0, &[]);
    let rows = String::from_utf8_lossy(&o.stdout).lines().map(|l| l.parse::<usize>().unwrap()).collect::<Vec<_>>();
    assert_eq!(rows.len(), 40);
    assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows[39] < 400, "{rows:?}");
    let o = data_rows(&cfg0, &["--write-sidecar", npy.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (out, _) = run("same", 0);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Seed 1 draws another 40 images.
    let (out, r) = run("other", 1);
    refused_run(&out, &r, &["emb.npy.rows.json", "another image list or split"]);
}
