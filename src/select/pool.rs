//! The current model's view of a set of training images: class probabilities, penultimate
//! features and consistency (Eq. 3), from one batched forward pass over the original and N_a
//! augmented views of each image.
use super::PoolView;
use crate::data::DeviceData;
use crate::models::Network;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// Scores `labeled` then `candidates` (training indices) with `net` in evaluation mode. Checks
/// between batches whether a stop was asked for (scoring a large pool takes minutes).
pub fn score_pool(
    net: &Network,
    data: &DeviceData,
    labeled: &[usize],
    candidates: &[usize],
    augmentations: usize,
    batch_size: usize,
    rng: &mut ChaCha8Rng,
) -> Result<PoolView, crate::interrupt::Stopped> {
    let rows: Vec<usize> = labeled.iter().chain(candidates).copied().collect();
    let views = augmentations + 1;
    let chunk = (batch_size / views).max(1);
    let (mut probs, mut features, mut consistency) = (Vec::new(), Vec::new(), Vec::new());
    let mut num_classes = 0;
    tch::no_grad(|| {
        for part in rows.chunks(chunk) {
            if crate::interrupt::requested() {
                return Err(crate::interrupt::Stopped);
            }
            let x = data.train_batch(part);
            let mut all = vec![x.shallow_clone()];
            all.extend((0..augmentations).map(|_| crate::data::augment_batch(&x, data.augment, rng)));
            let (logits, feats) = net.model.forward_features(&Tensor::cat(&all, 0), false);
            let p = logits.softmax(1, Kind::Float);
            let b = part.len() as i64;
            num_classes = p.size()[1] as usize;
            // [views, B, C] → population variance over views, summed over classes.
            let var = p.view([views as i64, b, -1]).var_dim(&[0i64][..], false, false).sum_dim_intlist(
                &[1i64][..],
                false,
                Kind::Float,
            );
            let cpu =
                |t: Tensor| Vec::<f32>::try_from(t.to_device(tch::Device::Cpu).contiguous().view([-1])).expect("f32");
            probs.extend(cpu(p.narrow(0, 0, b)));
            features.extend(cpu(feats.narrow(0, 0, b)));
            consistency.extend(cpu(var));
        }
        Ok(())
    })?;
    Ok(PoolView {
        num_classes,
        feature_dim: net.model.feature_dim() as usize,
        n_labeled: labeled.len(),
        probs,
        features,
        consistency,
    })
}
