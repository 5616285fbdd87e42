//! The CIFAR-10 binary format: records of one label byte and 3×32×32 pixel bytes.
use super::{indexed_rows, DataError, Dataset, Split};
use crate::config::DatasetName;
use std::path::Path;

const RECORD: usize = 1 + 3 * 32 * 32;

/// Loads `data_batch_1..5.bin` and `test_batch.bin` from `dir`.
pub fn load_cifar10(dir: &Path) -> Result<Dataset, DataError> {
    let train_files: Vec<_> = (1..=5).map(|i| dir.join(format!("data_batch_{i}.bin"))).collect();
    let train = read_batches(&train_files)?;
    let test = read_batches(&[dir.join("test_batch.bin")])?;
    Ok(Dataset {
        name: DatasetName::Cifar10,
        train_rows: indexed_rows(train.len()),
        train,
        test,
        num_classes: 10,
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.2470, 0.2435, 0.2616],
    })
}

fn read_batches(files: &[std::path::PathBuf]) -> Result<Split, DataError> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for path in files {
        let buf = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        if buf.is_empty() || buf.len() % RECORD != 0 {
            return Err(DataError::format(
                path,
                format!(
                    "size {} is not a positive multiple of the {RECORD}-byte CIFAR-10 record (truncated?)",
                    buf.len()
                ),
            ));
        }
        for (i, rec) in buf.chunks_exact(RECORD).enumerate() {
            if rec[0] >= 10 {
                return Err(DataError::format(path, format!("record {i}: label {} outside 0..10", rec[0])));
            }
            labels.push(rec[0]);
            pixels.extend_from_slice(&rec[1..]);
        }
    }
    Split::from_raw(pixels, labels, [3, 32, 32], &files[0])
}
