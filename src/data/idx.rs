//! The IDX format of (Fashion-)MNIST: big-endian magic, dimension sizes, then `u8` data.
use super::{indexed_rows, read_maybe_gz, DataError, Dataset, Split};
use crate::config::DatasetName;
use std::path::{Path, PathBuf};

/// Loads Fashion-MNIST (or MNIST) IDX files, raw or gzipped, from `dir`.
pub fn load_fashion_mnist(dir: &Path) -> Result<Dataset, DataError> {
    let train = load_pair(dir, "train")?;
    let test = load_pair(dir, "t10k")?;
    Ok(Dataset {
        name: DatasetName::FashionMnist,
        train_rows: indexed_rows(train.len()),
        train,
        test,
        num_classes: 10,
        mean: vec![0.2860],
        std: vec![0.3530],
    })
}

fn load_pair(dir: &Path, prefix: &str) -> Result<Split, DataError> {
    let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (dims, pixels) = parse_idx(&read_maybe_gz(&images_path)?, 3, &images_path)?;
    let (ldims, labels) = parse_idx(&read_maybe_gz(&labels_path)?, 1, &labels_path)?;
    if dims[0] != ldims[0] {
        return Err(DataError::format(
            &labels_path,
            format!("{} labels but {} images in {}", ldims[0], dims[0], images_path.display()),
        ));
    }
    if let Some(bad) = labels.iter().find(|&&l| l >= 10) {
        return Err(DataError::format(&labels_path, format!("label {bad} outside 0..10")));
    }
    Split::from_raw(pixels, labels, [1, dims[1] as i64, dims[2] as i64], &images_path)
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    for name in [stem.to_string(), format!("{stem}.gz")] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DataError::format(
        &dir.join(stem),
        "missing (looked for the raw and the .gz file; on Debian: apt-get install dataset-fashion-mnist)",
    ))
}

/// Parses an IDX buffer of unsigned bytes with `ndims` dimensions, checking magic and length.
pub(crate) fn parse_idx(buf: &[u8], ndims: usize, path: &Path) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    if buf.len() < 4 {
        return Err(DataError::format(path, "truncated: no IDX header"));
    }
    let expected = [0, 0, 0x08, ndims as u8];
    if buf[..4] != expected {
        return Err(DataError::format(
            path,
            format!("wrong magic number {:02x?}, expected {:02x?} (u8 data, {ndims} dims)", &buf[..4], expected),
        ));
    }
    let header = 4 + 4 * ndims;
    if buf.len() < header {
        return Err(DataError::format(path, "truncated IDX header"));
    }
    let dims: Vec<usize> =
        (0..ndims).map(|i| u32::from_be_bytes(buf[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize).collect();
    let want = dims.iter().product::<usize>();
    let have = buf.len() - header;
    if have != want {
        return Err(DataError::format(
            path,
            format!("truncated or oversized: dimensions {dims:?} need {want} data bytes, file has {have}"),
        ));
    }
    Ok((dims, buf[header..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: [u8; 4], dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_a_tiny_image_file() {
        let buf = idx([0, 0, 8, 3], &[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let (dims, data) = parse_idx(&buf, 3, Path::new("x")).unwrap();
        assert_eq!(dims, vec![2, 2, 3]);
        assert_eq!(data[11], 11);
    }

    #[test]
    fn rejects_bad_magic_and_truncation() {
        let p = Path::new("imgs.idx");
        let e = parse_idx(&idx([0, 0, 9, 3], &[1, 1, 1], &[0]), 3, p).unwrap_err().to_string();
        assert!(e.contains("imgs.idx") && e.contains("magic"), "{e}");
        let e = parse_idx(&idx([0, 0, 8, 3], &[2, 2, 2], &[0; 7]), 3, p).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("8"), "{e}");
    }
}
