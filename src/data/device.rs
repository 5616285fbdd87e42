//! The dataset on the compute device: copied there once as `u8`, normalised and augmented per
//! batch there.
use super::{augment_batch, index_tensor, AugmentParams, Dataset};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// The dataset moved to the compute device once, as `u8`, with its normalisation.
pub struct DeviceData<'a> {
    pub dataset: &'a Dataset,
    pub device: Device,
    pub train_images: Tensor,
    pub train_labels: Tensor,
    pub test_images: Tensor,
    pub test_labels: Tensor,
    pub augment: AugmentParams,
    /// Normalisation constants, `[1, C, 1, 1]` on the device (made once, used every batch).
    mean: Tensor,
    std: Tensor,
}

impl<'a> DeviceData<'a> {
    /// Copies the splits to `device`.
    pub fn new(dataset: &'a Dataset, device: Device, augment: AugmentParams) -> Self {
        let (mean, std) = dataset.normalisation(device);
        DeviceData {
            mean,
            std,
            dataset,
            device,
            train_images: dataset.train.images.to_device(device),
            train_labels: dataset.train.labels.to_device(device),
            test_images: dataset.test.images.to_device(device),
            test_labels: dataset.test.labels.to_device(device),
            augment,
        }
    }

    /// A `u8` batch already on the device as normalised `f32`.
    pub fn normalise(&self, images: &Tensor) -> Tensor {
        (images.to_kind(Kind::Float) / 255.0 - &self.mean) / &self.std
    }

    /// Normalised training images at `indices` (not augmented).
    pub fn train_batch(&self, indices: &[usize]) -> Tensor {
        let idx = index_tensor(indices).to_device(self.device);
        self.normalise(&self.train_images.index_select(0, &idx))
    }

    /// Normalised, augmented training images at `indices`.
    pub fn augmented_batch(&self, indices: &[usize], rng: &mut ChaCha8Rng) -> Tensor {
        augment_batch(&self.train_batch(indices), self.augment, rng)
    }

    /// Labels of training images at `indices`.
    pub fn train_label_batch(&self, indices: &[usize]) -> Tensor {
        self.train_labels.index_select(0, &index_tensor(indices).to_device(self.device))
    }
}
