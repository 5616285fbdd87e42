//! Batched augmentation on the model's device: random crop after reflect padding, and flips.
//!
//! The random offsets and flips are drawn from the caller's seeded RNG (not libtorch's), so a
//! run's augmentations are reproducible and its RNG state can be checkpointed.
use rand::Rng;
use tch::{Kind, Tensor};

/// What augmentation to apply.
#[derive(Debug, Clone, Copy)]
pub struct AugmentParams {
    /// Reflect padding before the random crop; 0 disables cropping.
    pub crop_padding: i64,
    /// Random horizontal flips with probability 1/2.
    pub horizontal_flip: bool,
}

/// Augments a float batch `[B, C, H, W]` (already on its device), one random draw per image.
pub fn augment_batch(x: &Tensor, params: AugmentParams, rng: &mut impl Rng) -> Tensor {
    let size = x.size();
    let (b, h, w) = (size[0], size[2], size[3]);
    let device = x.device();
    let mut out = x.shallow_clone();
    let p = params.crop_padding;
    if p > 0 {
        let padded = x.reflection_pad2d([p, p, p, p]);
        let oy: Vec<i64> = (0..b).map(|_| rng.random_range(0..=2 * p)).collect();
        let ox: Vec<i64> = (0..b).map(|_| rng.random_range(0..=2 * p)).collect();
        let rows = Tensor::from_slice(&oy).to_device(device).view([b, 1, 1])
            + Tensor::arange(h, (Kind::Int64, device)).view([1, h, 1]);
        let cols = Tensor::from_slice(&ox).to_device(device).view([b, 1, 1])
            + Tensor::arange(w, (Kind::Int64, device)).view([1, 1, w]);
        let bi = Tensor::arange(b, (Kind::Int64, device)).view([b, 1, 1]);
        // Advanced indexing around the channel slice yields [B, H, W, C].
        out = padded.index(&[Some(bi), None, Some(rows), Some(cols)]).permute([0, 3, 1, 2]).contiguous();
    }
    if params.horizontal_flip {
        let flips: Vec<bool> = (0..b).map(|_| rng.random_bool(0.5)).collect();
        let mask = Tensor::from_slice(&flips).to_device(device).view([b, 1, 1, 1]);
        out = out.flip([3]).where_self(&mask, &out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use tch::Device;

    fn to_vec4(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap()
    }

    /// Independent reference: crop one image by explicit reflect indexing.
    fn reflect(i: i64, n: i64) -> i64 {
        if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        }
    }

    #[test]
    fn crops_match_a_scalar_reflect_reference() {
        let (b, c, h, w, p) = (3i64, 2i64, 5i64, 6i64, 2i64);
        let x = Tensor::arange(b * c * h * w, (Kind::Float, Device::Cpu)).view([b, c, h, w]);
        let params = AugmentParams { crop_padding: p, horizontal_flip: false };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let y = augment_batch(&x, params, &mut rng);
        assert_eq!(y.size(), vec![b, c, h, w]);
        // Replay the same draws to get the offsets.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let oy: Vec<i64> = (0..b).map(|_| rng.random_range(0..=2 * p)).collect();
        let ox: Vec<i64> = (0..b).map(|_| rng.random_range(0..=2 * p)).collect();
        let xs = to_vec4(&x);
        let ys = to_vec4(&y);
        for bi in 0..b {
            for ci in 0..c {
                for r in 0..h {
                    for q in 0..w {
                        let sr = reflect(r + oy[bi as usize] - p, h);
                        let sq = reflect(q + ox[bi as usize] - p, w);
                        let want = xs[(((bi * c + ci) * h + sr) * w + sq) as usize];
                        let got = ys[(((bi * c + ci) * h + r) * w + q) as usize];
                        assert_eq!(got, want, "b{bi} c{ci} r{r} q{q}");
                    }
                }
            }
        }
    }

    #[test]
    fn flips_mirror_whole_images_only() {
        let x = Tensor::arange(64 * 4, (Kind::Float, Device::Cpu)).view([64, 1, 2, 2]);
        let params = AugmentParams { crop_padding: 0, horizontal_flip: true };
        let y = augment_batch(&x, params, &mut ChaCha8Rng::seed_from_u64(1));
        let flipped = x.flip([3]);
        let mut n_flipped = 0;
        for i in 0..64 {
            let same = y.get(i).equal(&x.get(i));
            let flip = y.get(i).equal(&flipped.get(i));
            assert!(same ^ flip, "image {i} neither original nor mirrored");
            n_flipped += flip as i32;
        }
        assert!((16..=48).contains(&n_flipped), "{n_flipped} of 64 flipped");
    }
}
