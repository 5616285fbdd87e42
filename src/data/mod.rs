//! Datasets held in memory as `u8` image tensors, normalised per batch on the model's device.
mod augment;
mod cifar;
mod device;
mod folder;
mod idx;
mod sampler;

pub use augment::{augment_batch, AugmentParams};
pub use cifar::load_cifar10;
pub use device::DeviceData;
pub use folder::load_image_folder;
pub use idx::load_fashion_mnist;
pub use sampler::EpochSampler;

use crate::config::{DatasetName, ExperimentConfig};
use crate::seeds::Stream;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Errors reading a dataset; each names the file or folder at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

impl DataError {
    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        DataError::Format { path: path.to_path_buf(), message: message.into() }
    }
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }
}

/// One split of a dataset: images as `u8` `[N, C, H, W]` on the CPU, labels as `i64` `[N]`.
#[derive(Debug)]
pub struct Split {
    pub images: Tensor,
    pub labels: Tensor,
}

impl Split {
    /// Builds a split from raw bytes, checking that sizes agree.
    pub(crate) fn from_raw(
        pixels: Vec<u8>,
        labels: Vec<u8>,
        shape: [i64; 3],
        origin: &Path,
    ) -> Result<Self, DataError> {
        let per = (shape[0] * shape[1] * shape[2]) as usize;
        if pixels.len() != labels.len() * per {
            return Err(DataError::format(
                origin,
                format!("{} images but {} labels", pixels.len() / per.max(1), labels.len()),
            ));
        }
        let n = labels.len() as i64;
        Ok(Split {
            images: Tensor::from_slice(&pixels).view([n, shape[0], shape[1], shape[2]]),
            labels: Tensor::from_slice(&labels).to_kind(Kind::Int64),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    /// True when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels as a plain vector.
    pub fn label_vec(&self) -> Vec<i64> {
        Vec::<i64>::try_from(&self.labels).expect("labels are i64")
    }

    /// The rows at `indices`, as a new split.
    pub fn select(&self, indices: &[usize]) -> Split {
        let idx = index_tensor(indices);
        Split { images: self.images.index_select(0, &idx), labels: self.labels.index_select(0, &idx) }
    }
}

/// A dataset with its train/test splits and normalisation constants.
#[derive(Debug)]
pub struct Dataset {
    pub name: DatasetName,
    pub train: Split,
    pub test: Split,
    pub num_classes: usize,
    /// Per-channel mean and standard deviation on the [0, 1] scale.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Which image each training row is, in row order: its path relative to the dataset folder
    /// (image folders) or its index in the training file(s) (built-in datasets). An imported
    /// embedding proves against it that its rows are these images (`crate::embed::RowsSidecar`).
    pub train_rows: Vec<String>,
}

impl Dataset {
    /// Loads the dataset a config names and applies its seeded train/test subsets. The image-folder
    /// split and the test subset follow `dataset.split_seed`; the training subset, the run's seed.
    pub fn load(config: &ExperimentConfig) -> Result<Self, DataError> {
        let dir = config.dataset_dir()?;
        let split_seed = config.dataset.split_seed_for(config.seed);
        let mut ds = match config.dataset.name {
            DatasetName::FashionMnist => load_fashion_mnist(&dir)?,
            DatasetName::Cifar10 => load_cifar10(&dir)?,
            DatasetName::ImageFolder => {
                load_image_folder(&dir, config.dataset.image_size, config.dataset.test_fraction, split_seed)?
            }
        };
        if let Some(n) = config.dataset.train_subset {
            let idx = seeded_subset(ds.train.len(), n, Stream::TrainSubset.rng(config.seed), "train_subset")?;
            ds.train = ds.train.select(&idx);
            ds.train_rows = idx.iter().map(|&i| std::mem::take(&mut ds.train_rows[i])).collect();
        }
        if let Some(n) = config.dataset.test_subset {
            ds.test =
                ds.test.select(&seeded_subset(ds.test.len(), n, Stream::TestSubset.rng(split_seed), "test_subset")?);
        }
        Ok(ds)
    }

    /// Channels, height and width of the images.
    pub fn image_shape(&self) -> [i64; 3] {
        let s = self.train.images.size();
        [s[1], s[2], s[3]]
    }

    /// Per-channel mean and standard deviation as `[1, C, 1, 1]` `f32` tensors on `device`.
    pub fn normalisation(&self, device: Device) -> (Tensor, Tensor) {
        let c = self.mean.len() as i64;
        let t = |v: &[f64]| Tensor::from_slice(v).to_kind(Kind::Float).view([1, c, 1, 1]).to_device(device);
        (t(&self.mean), t(&self.std))
    }
}

/// Per-channel mean and standard deviation of `u8` images on the [0, 1] scale.
pub fn channel_stats(images: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let x = images.to_kind(Kind::Double) / 255.0;
    let mean = x.mean_dim(&[0i64, 2, 3][..], false, Kind::Double);
    let std = x.std_dim(&[0i64, 2, 3][..], false, false);
    (Vec::<f64>::try_from(&mean).unwrap(), Vec::<f64>::try_from(&std).unwrap())
}

/// An `i64` index tensor from `usize` indices.
pub fn index_tensor(indices: &[usize]) -> Tensor {
    let v: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_slice(&v)
}

/// The training rows of a built-in dataset: each image's index in its training file(s).
pub(crate) fn indexed_rows(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// The sorted indices of a seeded random subset of `n` of a split's `len` images.
fn seeded_subset(len: usize, n: usize, mut rng: ChaCha8Rng, what: &str) -> Result<Vec<usize>, DataError> {
    if n == 0 || n > len {
        return Err(DataError::Config(crate::config::ConfigError::Invalid(format!(
            "dataset.{what} = {n} but the split has {len} images"
        ))));
    }
    let mut idx = sample(&mut rng, len, n).into_vec();
    idx.sort_unstable();
    Ok(idx)
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}
