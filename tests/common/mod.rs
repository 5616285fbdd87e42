//! Synthetic datasets in the real on-disk formats, and what tests read back, for tests.
#![allow(dead_code)]
use std::io::Write;
use std::path::Path;

/// A 28×28 image of class `c`: stripes whose orientation (c mod 2) and width (c / 2 + 1 pixels)
/// code the class, plus noise; a texture survives crops, flips and global pooling.
pub fn pattern(c: u8, noise: u64) -> Vec<u8> {
    let width = (c / 2 + 1) as usize;
    let mut s = noise.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut img = vec![0u8; 28 * 28];
    for r in 0..28 {
        for q in 0..28 {
            let along = if c % 2 == 0 { r } else { q };
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let base = if (along / width) % 2 == 0 { 180 } else { 20 };
            img[r * 28 + q] = base + (s >> 59) as u8;
        }
    }
    img
}

fn idx_bytes(magic: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, magic];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn write_file(path: &Path, bytes: &[u8], gz: bool) {
    if gz {
        let f = std::fs::File::create(path.with_extension("gz")).unwrap();
        let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    } else {
        std::fs::write(path, bytes).unwrap();
    }
}

/// Writes a Fashion-MNIST-shaped IDX dataset with `n_train`/`n_test` images of 10 classes.
pub fn write_idx_dataset(dir: &Path, n_train: usize, n_test: usize, gz: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n, salt) in [("train", n_train, 0u64), ("t10k", n_test, 1_000_000)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let pixels: Vec<u8> = labels.iter().enumerate().flat_map(|(i, &c)| pattern(c, salt + i as u64)).collect();
        write_file(&dir.join(format!("{prefix}-images-idx3-ubyte")), &idx_bytes(3, &[n as u32, 28, 28], &pixels), gz);
        write_file(&dir.join(format!("{prefix}-labels-idx1-ubyte")), &idx_bytes(1, &[n as u32], &labels), gz);
    }
}

/// Writes `cfg` to `dir/cfg.toml`, runs `ssal run --out dir/out` with extra environment
/// variables, and returns its output and the parsed `result.json` (Null when none was written).
pub fn run_config(cfg: &str, dir: &Path, env: &[(&str, &Path)]) -> (std::process::Output, serde_json::Value) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cfg.toml"), cfg).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ssal"));
    cmd.args(["run", "--config", dir.join("cfg.toml").to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let json = std::fs::read_to_string(dir.join("out/result.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (out, json)
}

/// A 12×9 PNG of one colour set by `value`.
pub fn write_png(path: &Path, value: u8) {
    image::RgbImage::from_pixel(12, 9, image::Rgb([value, value / 2, 255 - value])).save(path).unwrap();
}

/// Writes an image folder: one sub-folder per `(class, n)` holding `img_000.png` … of colours
/// 0, 10, 20, …, so that (class, colour) names an image.
pub fn write_image_folder(dir: &Path, classes: &[(&str, usize)]) {
    for &(class, n) in classes {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..n {
            write_png(&dir.join(class).join(format!("img_{i:03}.png")), (i * 10) as u8);
        }
    }
}

/// The RotNet embedding entries (`.npy` files) in the embedding cache `cache` (`$SSAL_CACHE`).
pub fn cached_embeddings(cache: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(cache.join("embeddings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .collect()
}
