//! Image folders with one sub-folder per class (Caltech-101 layout), split by a seeded,
//! stratified draw and resized to a square.
use super::{channel_stats, DataError, Dataset, Split};
use crate::config::DatasetName;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Loads `dir/<class>/<image>` files; classes are the sorted sub-folder names.
///
/// Each class keeps `round(n · test_fraction)` images (at least one when it has two or more)
/// for testing, drawn with `seed` (the config's `dataset.split_seed`), so the split is
/// stratified and reproducible. The training rows are named by their paths relative to `dir`.
pub fn load_image_folder(dir: &Path, size: u32, test_fraction: f64, seed: u64) -> Result<Dataset, DataError> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    if classes.len() < 2 {
        return Err(DataError::format(dir, format!("needs at least 2 class sub-folders, found {}", classes.len())));
    }
    let mut rng = crate::seeds::Stream::FolderSplit.rng(seed);
    let (mut train_files, mut test_files) = (Vec::new(), Vec::new());
    for (label, class_dir) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(class_dir)
            .map_err(|e| DataError::io(class_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        if files.is_empty() {
            return Err(DataError::format(class_dir, "class folder holds no .jpg/.jpeg/.png image"));
        }
        files.sort();
        files.shuffle(&mut rng);
        let n = files.len();
        let n_test = if n >= 2 { ((n as f64 * test_fraction).round() as usize).clamp(1, n - 1) } else { 0 };
        for (i, f) in files.into_iter().enumerate() {
            if i < n_test {
                test_files.push((f, label as u8))
            } else {
                train_files.push((f, label as u8))
            }
        }
    }
    let train = decode_all(&train_files, size)?;
    let test = decode_all(&test_files, size)?;
    let (mean, std) = channel_stats(&train.images);
    let train_rows =
        train_files.iter().map(|(f, _)| f.strip_prefix(dir).unwrap_or(f).to_string_lossy().into_owned()).collect();
    Ok(Dataset { name: DatasetName::ImageFolder, train, test, num_classes: classes.len(), mean, std, train_rows })
}

/// Decodes and resizes images on all cores, keeping the input order.
fn decode_all(files: &[(PathBuf, u8)], size: u32) -> Result<Split, DataError> {
    let per = (3 * size * size) as usize;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len().max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<u8>, DataError>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut out = Vec::with_capacity(part.len() * per);
                    for (path, _) in part {
                        out.extend(decode_chw(path, size)?);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("decoder thread panicked")).collect()
    });
    let mut pixels = Vec::with_capacity(files.len() * per);
    for p in parts {
        pixels.extend(p?);
    }
    let labels = files.iter().map(|(_, l)| *l).collect();
    Split::from_raw(pixels, labels, [3, size as i64, size as i64], Path::new("image folder"))
}

fn decode_chw(path: &Path, size: u32) -> Result<Vec<u8>, DataError> {
    let img = image::open(path).map_err(|e| DataError::format(path, format!("cannot decode image: {e}")))?;
    let rgb = img.resize_exact(size, size, image::imageops::FilterType::Triangle).to_rgb8();
    let hw = (size * size) as usize;
    let mut chw = vec![0u8; 3 * hw];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * hw + i] = px[c];
        }
    }
    Ok(chw)
}
