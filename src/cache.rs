//! The embedding cache's layout: where it is and which entry a config's RotNet embedding has.
//! Pure config hashing, kept out of the torch layer so that the sweep planner (which may run in
//! the analysis-only build on a login node) groups jobs by the embedding they share and sees
//! which entries already exist; `embed` fills the entries.
use crate::config::{DatasetName, EmbeddingSource, ExperimentConfig};
use std::path::PathBuf;

/// The cache directory: `$SSAL_CACHE` or `~/.cache/ssal`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("SSAL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ssal"))
}

/// Content key of a RotNet embedding: everything that determines it, and nothing else.
pub fn rotnet_cache_key(config: &ExperimentConfig) -> String {
    let mut rot = config.rotnet.clone();
    rot.seed = Some(rot.seed.unwrap_or(config.seed));
    let dataset = toml::to_string(&config.dataset).expect("serialises");
    let rotnet = toml::to_string(&rot).expect("serialises");
    // The training pool depends on the run seed through a drawn subset, and through an image
    // folder's split unless `dataset.split_seed` fixes it; include the seed only then.
    let subset_seed = if config.dataset.train_subset.is_some() { config.seed } else { 0 };
    let split = match config.dataset.name {
        DatasetName::ImageFolder => format!("split_seed={}\n", config.dataset.split_seed_for(config.seed)),
        DatasetName::FashionMnist | DatasetName::Cifar10 => String::new(),
    };
    // v2: RotNet trains with the project's Adam (`train::Adam`, checkpointable) instead of tch's;
    // the same algorithm, but not the same rounding, so v1 entries are not reused.
    let text = format!("rotnet-v2\n{dataset}\n{rotnet}\nsubset_seed={subset_seed}\n{split}");
    blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
}

/// The cache file of `config`'s RotNet embedding (`<cache>/embeddings/rotnet-<key>.npy`),
/// whether or not it exists yet.
pub fn rotnet_entry(config: &ExperimentConfig) -> PathBuf {
    cache_dir().join("embeddings").join(format!("rotnet-{}.npy", rotnet_cache_key(config)))
}

/// The key of the RotNet embedding a run of `config` needs (`init.embedding = "rotnet"`), or
/// `None` when it needs none (then it shares no preparation with other runs).
pub fn needed_rotnet_key(config: &ExperimentConfig) -> Option<String> {
    (config.init.embedding == EmbeddingSource::Rotnet).then(|| rotnet_cache_key(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_tracks_what_matters() {
        let a = ExperimentConfig::default();
        let mut b = a.clone();
        b.train.steps = 7; // irrelevant to the embedding
        b.init.temperature = 0.0;
        assert_eq!(rotnet_cache_key(&a), rotnet_cache_key(&b));
        b.rotnet.seed = Some(0); // equals the default (the run's seed 0)
        assert_eq!(rotnet_cache_key(&a), rotnet_cache_key(&b));
        b.rotnet.width = 8;
        assert_ne!(rotnet_cache_key(&a), rotnet_cache_key(&b));
        let mut c = a.clone();
        c.seed = 1;
        assert_ne!(rotnet_cache_key(&a), rotnet_cache_key(&c));
        // An image folder's split follows the run seed even when the RotNet's seed is fixed.
        let folder = |seed, split_seed| {
            let mut f = ExperimentConfig { seed, ..Default::default() };
            f.dataset.name = DatasetName::ImageFolder;
            f.dataset.split_seed = split_seed;
            f.rotnet.seed = Some(5);
            rotnet_cache_key(&f)
        };
        assert_ne!(folder(0, None), folder(1, None));
        assert_eq!(folder(0, Some(2)), folder(1, Some(2)));
        assert_ne!(folder(0, Some(2)), folder(0, Some(3)));
    }

    #[test]
    fn only_rotnet_runs_need_a_key() {
        let mut c = ExperimentConfig::default();
        c.init.embedding = EmbeddingSource::None;
        assert_eq!(needed_rotnet_key(&c), None);
        c.init.embedding = EmbeddingSource::Rotnet;
        assert_eq!(needed_rotnet_key(&c), Some(rotnet_cache_key(&c)));
        assert!(rotnet_entry(&c).ends_with(format!("embeddings/rotnet-{}.npy", rotnet_cache_key(&c))));
    }
}
