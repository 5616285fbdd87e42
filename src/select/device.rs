//! Diversity sampling with the distance updates on a libtorch device (the GPU, where the
//! embeddings of a GPU run already are); the picks themselves are the CPU code's, so both paths
//! draw the same random numbers in the same order.
use super::diversity::{sample_with, Embeddings, SelectError};
use rand::Rng;
use tch::{Device, Kind, Tensor};

/// [`super::diversity_sample`] with each pick's O(N·d) distance pass on `device`; only the N
/// nearest distances come back to the host per pick.
pub fn diversity_sample_on(
    emb: &Embeddings,
    k: usize,
    temperature: f64,
    labeled: &[usize],
    rng: &mut impl Rng,
    device: Device,
) -> Result<Vec<usize>, SelectError> {
    let n = emb.len() as i64;
    let matrix = Tensor::from_slice(emb.values()).view([n, -1]).to_device(device);
    let mut nearest_on_device = Tensor::full([n], f64::INFINITY, (Kind::Float, device));
    sample_with(emb.len(), k, temperature, labeled, rng, |nearest, center| {
        let d = (&matrix - matrix.get(center as i64)).square().sum_dim_intlist(&[1i64][..], false, Kind::Float);
        nearest_on_device = nearest_on_device.minimum(&d);
        nearest_on_device.to_device(Device::Cpu).copy_data(nearest, nearest.len());
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::diversity_sample;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Continuous random data has no ties, so the device path must pick exactly what the CPU
    /// path picks, for k-center greedy and for k-means++ seeding alike.
    #[test]
    fn device_path_picks_what_the_cpu_path_picks() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let data: Vec<f32> = (0..600 * 7).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        let emb = Embeddings::new(&data, 7).unwrap();
        for (t, labeled) in [(0.0, vec![]), (0.5, vec![3, 9]), (0.1, vec![])] {
            let cpu = diversity_sample(&emb, 40, t, &labeled, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
            let dev =
                diversity_sample_on(&emb, 40, t, &labeled, &mut ChaCha8Rng::seed_from_u64(1), Device::Cpu).unwrap();
            assert_eq!(cpu, dev, "T = {t}");
        }
        let too_many = diversity_sample_on(&emb, 601, 0.0, &[], &mut rng, Device::Cpu);
        assert!(matches!(too_many, Err(SelectError::TooMany { .. })));
    }
}
