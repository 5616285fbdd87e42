//! The experiment configuration: the one contract between sweeps, runs, results and reports.
//!
//! Every field has a documented default so a config file only states what differs. Unknown keys
//! are rejected so a misspelt field cannot silently fall back to its default.
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Errors reading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// One complete experiment: data, model, labeled set, training method and seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Which dataset to load and how.
    pub dataset: DatasetConfig,
    /// Network architecture. Default: `small_cnn`.
    pub model: ModelKind,
    /// How the labeled set is chosen.
    pub labeled: LabeledConfig,
    /// How the initial labeled set is chosen when `labeled.indices` is not given.
    pub init: InitConfig,
    /// Self-supervised RotNet embedding settings (used when `init.embedding = "rotnet"`).
    pub rotnet: RotNetConfig,
    /// Active-learning cycles after the initial set: budgets and query strategy.
    pub query: QueryConfig,
    /// Training algorithm. Default: `mixmatch`.
    pub method: Method,
    /// Optimisation, EMA and evaluation settings.
    pub train: TrainConfig,
    /// MixMatch hyper-parameters (ignored by `supervised`).
    pub mixmatch: MixMatchConfig,
    /// Seed every random choice of the run flows from. Default: 0.
    pub seed: u64,
    /// Where to compute. Default: `auto` (CUDA when available).
    pub device: DeviceChoice,
}

/// Which dataset and where its files are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetConfig {
    /// Dataset format. Default: `fashion_mnist`.
    pub name: DatasetName,
    /// Directory holding the files. Default: `/usr/share/datasets/fashion-mnist` for
    /// Fashion-MNIST (Debian's `dataset-fashion-mnist`); required for the others.
    pub path: Option<PathBuf>,
    /// Image folders only: fraction of each class held out for testing. Default: 0.1.
    pub test_fraction: f64,
    /// Image folders only: images are resized to this square size. Default: 224.
    pub image_size: u32,
    /// Use only this many training images (a seeded random subset), for quick runs. Default: all.
    pub train_subset: Option<usize>,
    /// Use only this many test images (a seeded random subset), for quick runs. Default: all.
    pub test_subset: Option<usize>,
    /// Seed of the image-folder train/test split and of `test_subset`. Set it when runs with
    /// different seeds must share one split: a paper's fixed split, or an imported embedding,
    /// whose rows are the training images of one split. Default: the run's seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    /// Reflect padding of the random crop, in pixels; 0 disables cropping. Default: 4.
    pub crop_padding: i64,
    /// Random horizontal flips in augmentation. Default: true.
    pub horizontal_flip: bool,
}

impl DatasetConfig {
    /// The seed of the train/test split (and test subset) in a run seeded with `run_seed`.
    pub fn split_seed_for(&self, run_seed: u64) -> u64 {
        self.split_seed.unwrap_or(run_seed)
    }
}

/// The supported dataset formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetName {
    /// IDX files (raw or `.gz`), 28×28 grey-scale, 10 classes.
    #[default]
    FashionMnist,
    /// CIFAR-10 binary batches, 32×32 colour, 10 classes.
    Cifar10,
    /// One sub-folder per class (Caltech-101 layout), split into train/test by `split_seed`.
    ImageFolder,
}

/// The supported architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A four-layer CNN sized for 28×28 inputs, fast on a CPU.
    #[default]
    SmallCnn,
    /// Wide ResNet 28-2 as used by MixMatch (about 1.47 M parameters).
    Wrn28_2,
    /// ResNet-18 (about 11.2 M parameters), for larger images.
    Resnet18,
}

/// How the labeled set is formed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabeledConfig {
    /// Number of initial labeled training images, chosen by `init.strategy` (random or diversity
    /// sampling, from the seed). Default: 100.
    pub size: usize,
    /// Explicit training-set indices to label instead of a random draw. Default: none.
    pub indices: Option<Vec<usize>>,
}

/// Initial labeled-set selection (paper, Section IV-A).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// `random` (uniform draw) or `diversity` (diversity-based sampling on the embedding).
    /// Default: `random`.
    pub strategy: InitStrategy,
    /// Temperature T of diversity sampling: 0 is k-center greedy, 0.5 k-means++ seeding (the
    /// paper's choice). Default: 0.5.
    pub temperature: f64,
    /// Embedding used for diversity sampling and the diversity metric of the initial set:
    /// `none`, `rotnet` (trained on the training pool, cached) or `npy` (imported). Default: `none`.
    pub embedding: EmbeddingSource,
    /// For `embedding = "npy"`: an N × d float32/float64 matrix whose rows are the training
    /// images in dataset order (after `train_subset`). Default: none.
    pub embedding_path: Option<PathBuf>,
}

/// Initial-set strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitStrategy {
    /// Uniformly at random.
    #[default]
    Random,
    /// Diversity-based sampling with temperature `init.temperature`.
    Diversity,
}

/// Where initial-set embeddings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingSource {
    /// No embedding (random initial sets only; no diversity metric).
    #[default]
    None,
    /// A RotNet trained on the unlabeled training pool.
    Rotnet,
    /// An imported `.npy` matrix (`init.embedding_path`).
    Npy,
}

/// RotNet training for initial-set embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RotNetConfig {
    /// Optimisation steps. Default: 1500.
    pub steps: usize,
    /// Images per batch (each seen in all four rotations). Default: 64.
    pub batch_size: usize,
    /// Width w of the first block; the embedding has 2w dimensions (w = 96 gives the RotNet
    /// paper's 192-d CIFAR-10 features). Default: 32.
    pub width: i64,
    /// Adam learning rate. Default: 0.002.
    pub lr: f64,
    /// Seed of the RotNet's training. Default: the run's seed.
    pub seed: Option<u64>,
}

/// The active-learning cycles (paper, Sections IV-B and V-A3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Images added in each cycle after the initial set (paper, CIFAR-10:
    /// [50, 50, 250, 250, 250]). Default: none (a single training on the initial set).
    pub budgets: Vec<usize>,
    /// Query strategy. Default: `random`.
    pub strategy: QueryStrategy,
    /// Augmented views N_a for consistency (paper: 50 on CIFAR-10, 10 on Caltech-101). Default: 10.
    pub augmentations: usize,
    /// Temperature of diversity sampling on consistency-based embeddings (paper: 0, k-center
    /// greedy). Default: 0.
    pub temperature: f64,
    /// Score only this many unlabeled images per cycle, drawn at random from the seed (keeps
    /// consistency affordable on a CPU). Default: the whole unlabeled pool.
    pub pool_subset: Option<usize>,
}

/// Query strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryStrategy {
    /// Uniformly at random.
    #[default]
    Random,
    /// Highest predictive entropy first.
    Entropy,
    /// k-center greedy on penultimate features, labeled points as initial centres.
    Coreset,
    /// k-means++ seeding on gradient embeddings (p − onehot(argmax p)) ⊗ f.
    Badge,
    /// Highest consistency score (sum of class-wise prediction variances) first (Gao et al.).
    Consistency,
    /// The paper's method: diversity sampling on g_i = consistency_i · f_i (Eq. 4).
    ConsistencyEmbedding,
}

/// Training algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Cross-entropy on the labeled set only (with augmentation).
    Supervised,
    /// MixMatch on labeled + unlabeled data.
    #[default]
    Mixmatch,
}

/// Optimiser, EMA and evaluation settings shared by all methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimisation steps; 0 stops after choosing (and measuring) the labeled set. Default: 1000.
    pub steps: usize,
    /// Labeled batch size (MixMatch uses as many unlabeled images per augmentation). Default: 64.
    pub batch_size: usize,
    /// Adam learning rate. Default: 0.002 (MixMatch).
    pub lr: f64,
    /// Decoupled weight decay: conv/linear weights are multiplied by (1 − this) after each step.
    /// Default: 0.00004 (MixMatch: 0.02 × lr).
    pub weight_decay: f64,
    /// EMA decay of the evaluated model. Default: 0.999.
    pub ema_decay: f64,
    /// Warm the EMA up with decay min(ema_decay, (1+t)/(10+t)) (TensorFlow's `num_updates`
    /// rule) so short runs are not dominated by the random initialisation. Default: true.
    pub ema_warmup: bool,
    /// Evaluate the EMA model on the test set every this many steps. Default: 100.
    pub eval_every: usize,
    /// The reported accuracy is the median of the last this many evaluations
    /// (paper: 20 on CIFAR-10, 6 on Caltech-101). Default: 5.
    pub median_of: usize,
    /// Batch size of evaluation and feature extraction. Default: 512.
    pub eval_batch_size: usize,
    /// A query cycle continues from the previous cycle's weights (network and EMA; the optimiser
    /// starts afresh) instead of a new random initialisation, so that a small per-cycle budget
    /// accumulates over the cycles. The paper is silent on this; it is common in AL practice.
    /// Default: false (every cycle trains from scratch).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warm_start: bool,
    /// Evaluate on this many test images (a fixed subset drawn from the run's seed) at every
    /// evaluation except the last `median_of`, which use the whole test set and give the reported
    /// accuracy; makes frequent learning-curve points cheap. Default: none (always the whole set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_subset: Option<usize>,
    /// Average the batch-norm running statistics into the EMA model with the weights' decay (as
    /// TensorFlow MixMatch's EMA of every model variable does) instead of copying the live
    /// network's (as CoinCheung's FixMatch port does). Measured (docs/reproduction.md section 5):
    /// it removes the supervised EMA model's transient collapses (evaluations 5× smoother, no
    /// cost in accuracy), so new sweeps should set it. Default: false (copied), which keeps every
    /// earlier run's behaviour and job id.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ema_average_batch_norm: bool,
}

/// MixMatch hyper-parameters (Berthelot et al. 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixMatchConfig {
    /// Augmentations per unlabeled image for label guessing (K). Default: 2.
    pub augmentations: usize,
    /// Sharpening temperature of the guessed labels. Default: 0.5.
    pub temperature: f64,
    /// MixUp Beta(α, α) parameter. Default: 0.75.
    pub alpha: f64,
    /// Weight of the unlabeled loss λ_u after ramp-up. Default: 75.
    pub lambda_u: f64,
    /// Steps over which λ_u ramps up linearly from 0 (paper: 16 epochs of 1024 steps). Default: 16384.
    pub rampup_steps: usize,
    /// The ramp-up as a fraction of `train.steps` instead (MixMatch's own setting: 16 of 1,024
    /// epochs ≈ 0.016), so that a short CPU run ramps up as a long one does; replaces
    /// `rampup_steps` when set. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rampup_fraction: Option<f64>,
}

impl MixMatchConfig {
    /// The ramp-up in steps for a training run of `train_steps` steps.
    pub fn rampup_steps_for(&self, train_steps: usize) -> usize {
        match self.rampup_fraction {
            Some(f) => (f * train_steps as f64).round() as usize,
            None => self.rampup_steps,
        }
    }

    /// Why λ_u cannot do its job in a run of `train_steps` steps: it does not reach half its
    /// final weight before the run ends (MixMatch is then mostly supervised training).
    pub fn rampup_warning(&self, train_steps: usize) -> Option<String> {
        let ramp = self.rampup_steps_for(train_steps);
        if train_steps == 0 || 2 * train_steps >= ramp {
            return None;
        }
        let reached = self.lambda_u * train_steps as f64 / ramp as f64;
        Some(format!(
            "mixmatch: lambda_u ramps up over {ramp} steps but training stops after {train_steps}: it reaches \
             {reached:.2} of {} ({:.0} %); set mixmatch.rampup_fraction (MixMatch's own is 0.016) or fewer \
             mixmatch.rampup_steps",
            self.lambda_u,
            100.0 * train_steps as f64 / ramp as f64
        ))
    }
}

/// Fields whose value has no effect when another field has a given value: (field or `prefix.`,
/// deciding field, its value). Configs still hold defaults for them, which a report must not
/// present as if they mattered.
const INERT_WHEN: &[(&str, &str, &str)] =
    &[("mixmatch.", "method", "supervised"), ("init.temperature", "init.strategy", "random")];

/// Whether `field` (a dotted config path) has no effect, given the values of other fields
/// (`value_of` answers `None` where that value is unknown or mixed).
pub fn is_inert(field: &str, value_of: impl Fn(&str) -> Option<String>) -> bool {
    INERT_WHEN.iter().any(|&(pattern, decider, when)| {
        let matches = if pattern.ends_with('.') { field.starts_with(pattern) } else { field == pattern };
        matches && value_of(decider).is_some_and(|v| v == when)
    })
}

/// Compute device selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// CUDA device 0 when available, else the CPU.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// CUDA device 0; an error when CUDA is unavailable.
    Cuda,
}

// The defaults of each section, one `Default` per struct: serde fills every field a file leaves
// out from them (struct-level `#[serde(default)]`), the field docs state them, and job ids are
// the differences from them (`content_hash`).
impl Default for InitConfig {
    fn default() -> Self {
        Self {
            strategy: InitStrategy::default(),
            temperature: 0.5,
            embedding: EmbeddingSource::default(),
            embedding_path: None,
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            budgets: Vec::new(),
            strategy: QueryStrategy::default(),
            augmentations: 10,
            temperature: 0.0,
            pool_subset: None,
        }
    }
}

impl Default for RotNetConfig {
    fn default() -> Self {
        Self { steps: 1500, batch_size: 64, width: 32, lr: 0.002, seed: None }
    }
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self {
            name: DatasetName::default(),
            path: None,
            test_fraction: 0.1,
            image_size: 224,
            train_subset: None,
            test_subset: None,
            split_seed: None,
            crop_padding: 4,
            horizontal_flip: true,
        }
    }
}

impl Default for LabeledConfig {
    fn default() -> Self {
        Self { size: 100, indices: None }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 64,
            lr: 0.002,
            weight_decay: 0.00004,
            ema_decay: 0.999,
            ema_warmup: true,
            eval_every: 100,
            median_of: 5,
            eval_batch_size: 512,
            warm_start: false,
            eval_subset: None,
            ema_average_batch_norm: false,
        }
    }
}

impl Default for MixMatchConfig {
    fn default() -> Self {
        Self {
            augmentations: 2,
            temperature: 0.5,
            alpha: 0.75,
            lambda_u: 75.0,
            rampup_steps: 16 * 1024,
            rampup_fraction: None,
        }
    }
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetConfig::default(),
            model: ModelKind::default(),
            labeled: LabeledConfig::default(),
            init: InitConfig::default(),
            rotnet: RotNetConfig::default(),
            query: QueryConfig::default(),
            method: Method::default(),
            train: TrainConfig::default(),
            mixmatch: MixMatchConfig::default(),
            seed: 0,
            device: DeviceChoice::default(),
        }
    }
}

/// The default location of Debian's `dataset-fashion-mnist` files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

impl ExperimentConfig {
    /// Parses a TOML config; errors name the file and the offending key and line.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: origin.to_path_buf(), message: e.to_string() })?;
        config.validate().map_err(|e| match e {
            ConfigError::Invalid(message) => ConfigError::Parse { path: origin.to_path_buf(), message },
            other => other,
        })?;
        Ok(config)
    }

    /// Reads and validates a TOML config file. An empty file (nothing but whitespace) is refused:
    /// it is far more likely cut short (a copy or a write that did not finish) than meant, and
    /// running it would silently train every default; a comment alone runs the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        if text.trim().is_empty() {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message:
                    "the file is empty (to run every default on purpose, write a comment in it, e.g. `# defaults`)"
                        .into(),
            });
        }
        Self::from_toml_str(&text, path)
    }

    /// Canonical TOML text of the full config (defaults filled in): what a sweep writes as a
    /// job's `config.toml`.
    pub fn canonical_toml(&self) -> String {
        toml::to_string(self).expect("config serialises to TOML")
    }

    /// The config's identity, its job id: the first 16 hex digits of the BLAKE3 hash of
    /// `{"config":DELTA,"schema":CONFIG_SCHEMA_VERSION}` as canonical JSON (compact, keys sorted),
    /// where DELTA holds only the values that differ from [`ExperimentConfig::default()`],
    /// compared field by field through the tables (see [`config_delta`]). A config that spells
    /// out a default and one that leaves it out are the same experiment and get the same id, and
    /// a release that adds a field (whose default reproduces the old behaviour) changes no id.
    /// Equal configs share it; changing any value away from, or back to, its default alters it.
    pub fn content_hash(&self) -> String {
        let config = serde_json::to_value(self).expect("config serialises to JSON");
        identity_hash(&config_delta(&config, default_json()), CONFIG_SCHEMA_VERSION)
    }

    /// The id this config had before ids were taken from its differences to the defaults
    /// (ssal up to schema version 1): the hash of the whole config as compact JSON in field
    /// order, defaults included. Sweeps and results written then carry it; they are recognised
    /// by it and re-keyed. `None` when the config sets a field that did not exist then (no older
    /// ssal can have written it). Frozen: computed from [`LEGACY_FIELDS`], not from the struct,
    /// so that adding fields does not change it.
    pub fn legacy_content_hash(&self) -> Option<String> {
        legacy_hash(&serde_json::to_value(self).expect("config serialises to JSON"), default_json())
    }

    /// The config as dotted field paths (`mixmatch.lambda_u`, `query.strategy`, …) mapped to
    /// their values as text: strings bare, numbers and booleans as JSON writes them, lists as
    /// compact JSON; optional fields that are not set are absent. Reports group and filter by
    /// these, and the results store indexes them.
    pub fn fields(&self) -> std::collections::BTreeMap<String, String> {
        field_map(&serde_json::to_value(self).expect("config serialises to JSON"))
    }

    /// The dataset directory, with the Fashion-MNIST default applied.
    pub fn dataset_dir(&self) -> Result<PathBuf, ConfigError> {
        match (&self.dataset.path, self.dataset.name) {
            (Some(p), _) => Ok(p.clone()),
            (None, DatasetName::FashionMnist) => Ok(PathBuf::from(FASHION_MNIST_DIR)),
            (None, other) => Err(ConfigError::Invalid(format!(
                "dataset.path is required for dataset.name = \"{}\"",
                config_name(&other)
            ))),
        }
    }

    /// Checks value ranges that serde's types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let t = &self.train;
        if let Some(f) = self.mixmatch.rampup_fraction {
            if !(f > 0.0 && f <= 1.0) {
                return bad(format!("mixmatch.rampup_fraction must be in (0, 1], got {f}"));
            }
        }
        if t.eval_subset == Some(0) {
            return bad("train.eval_subset must be positive (leave it out to evaluate on the whole test set)".into());
        }
        if t.batch_size == 0 || t.eval_every == 0 || t.median_of == 0 || t.eval_batch_size == 0 {
            return bad("train.batch_size, eval_every, median_of and eval_batch_size must be positive".into());
        }
        if !(t.lr > 0.0) || !(0.0..1.0).contains(&t.weight_decay) || !(0.0..1.0).contains(&t.ema_decay) {
            return bad("train.lr must be > 0, weight_decay and ema_decay in [0, 1)".into());
        }
        if !(self.dataset.test_fraction > 0.0 && self.dataset.test_fraction < 1.0) {
            return bad(format!("dataset.test_fraction must be in (0, 1), got {}", self.dataset.test_fraction));
        }
        if self.dataset.image_size < 8 || self.dataset.crop_padding < 0 {
            return bad("dataset.image_size must be >= 8 and crop_padding >= 0".into());
        }
        if self.labeled.indices.is_none() && self.labeled.size == 0 {
            return bad("labeled.size must be positive".into());
        }
        let i = &self.init;
        if !(i.temperature.is_finite() && i.temperature >= 0.0) {
            return bad(format!("init.temperature must be finite and >= 0, got {}", i.temperature));
        }
        if i.strategy == InitStrategy::Diversity && i.embedding == EmbeddingSource::None {
            return bad("init.strategy = \"diversity\" needs init.embedding = \"rotnet\" or \"npy\"".into());
        }
        if (i.embedding == EmbeddingSource::Npy) != i.embedding_path.is_some() {
            return bad("init.embedding_path is required with, and only with, init.embedding = \"npy\"".into());
        }
        let q = &self.query;
        if q.budgets.contains(&0) || q.augmentations == 0 || q.pool_subset == Some(0) {
            return bad("query.budgets, augmentations and pool_subset must be positive".into());
        }
        if !(q.temperature.is_finite() && q.temperature >= 0.0) {
            return bad(format!("query.temperature must be finite and >= 0, got {}", q.temperature));
        }
        if !q.budgets.is_empty() && self.train.steps == 0 {
            return bad("query.budgets need a trained model: train.steps must be positive".into());
        }
        let r = &self.rotnet;
        if r.steps == 0 || r.batch_size == 0 || r.width <= 0 || !(r.lr > 0.0) {
            return bad("rotnet.steps, batch_size, width and lr must be positive".into());
        }
        let m = &self.mixmatch;
        if m.augmentations == 0 || !(m.temperature > 0.0) || !(m.alpha > 0.0) || m.lambda_u < 0.0 {
            return bad("mixmatch.augmentations, temperature and alpha must be positive, lambda_u >= 0".into());
        }
        Ok(())
    }
}

/// The version of what the config's defaults *mean*, hashed into every job id
/// ([`ExperimentConfig::content_hash`]). Ids only hold the values that differ from the
/// defaults, so a config that leaves a field out names whatever that field's default does.
/// Bump this when that changes: a field's default value changes, or code changes what an
/// existing default does. Every job id then changes (a result computed under the old default is
/// of another experiment and is not reused). Do not bump it for a new field whose default
/// reproduces the old behaviour (configs that leave it out keep their ids: that is the point),
/// for a new value of an enum, or for a fix that leaves every default's behaviour as it was.
/// History: 1 — ids from the differences to the defaults (before: the whole config, see
/// [`ExperimentConfig::legacy_content_hash`]).
pub const CONFIG_SCHEMA_VERSION: u32 = 1;

/// The default config as JSON, computed once.
fn default_json() -> &'static serde_json::Value {
    static DEFAULT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| serde_json::to_value(ExperimentConfig::default()).expect("config serialises to JSON"))
}

/// The name a unit enum value has in config files and reports (`consistency_embedding`), so that
/// every printed table spells it as the user wrote it, never as Rust's `Debug` does.
pub fn config_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => panic!("config_name is for unit enum values, which serialise to a string"),
    }
}

/// The part of `config` (a config's JSON form) that differs from `default`: tables are compared
/// key by key and keep only differing keys (`None` when none differs); any other value (a
/// number, string, list, `null`) is kept whole when it is not equal to the default's. An
/// optional field's default is unset (`null`, or absent when it is left out of the JSON while
/// unset), so setting it to any value, even the one its absence stands for, is a difference. A
/// key the default lacks is a difference unless it is `null`.
pub fn config_delta(config: &serde_json::Value, default: &serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    match (config, default) {
        (Value::Object(c), Value::Object(d)) => {
            let differing: serde_json::Map<String, Value> = c
                .iter()
                .filter_map(|(k, v)| match d.get(k) {
                    Some(dv) => config_delta(v, dv).map(|x| (k.clone(), x)),
                    None => (!v.is_null()).then(|| (k.clone(), v.clone())),
                })
                .collect();
            (!differing.is_empty()).then_some(Value::Object(differing))
        }
        (c, d) if c == d => None,
        (c, _) => Some(c.clone()),
    }
}

/// The id of a config whose differences to the defaults are `delta`, under schema `version`.
fn identity_hash(delta: &Option<serde_json::Value>, version: u32) -> String {
    blake3::hash(identity_text(delta, version).as_bytes()).to_hex()[..16].to_string()
}

/// The text [`identity_hash`] hashes: `{"config":DELTA,"schema":VERSION}`, canonical JSON.
fn identity_text(delta: &Option<serde_json::Value>, version: u32) -> String {
    let mut text = String::from("{\"config\":");
    canonical_json(delta.as_ref().unwrap_or(&serde_json::json!({})), &mut text);
    text.push_str(&format!(",\"schema\":{version}}}"));
    text
}

/// Writes `v` as canonical JSON: compact, object keys in byte order, whatever order the map
/// keeps them in.
fn canonical_json(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("a string serialises"));
                out.push(':');
                canonical_json(&m[k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).expect("a value serialises")),
    }
}

/// The config fields of schema 0, in the order its ids serialised them: (field, its sub-fields
/// for a table). A sub-field ending in `?` was left out while unset. Frozen: a field added
/// later is not listed (see [`legacy_hash`]).
const LEGACY_FIELDS: &[(&str, &[&str])] = &[
    (
        "dataset",
        &[
            "name",
            "path",
            "test_fraction",
            "image_size",
            "train_subset",
            "test_subset",
            "split_seed?",
            "crop_padding",
            "horizontal_flip",
        ],
    ),
    ("model", &[]),
    ("labeled", &["size", "indices"]),
    ("init", &["strategy", "temperature", "embedding", "embedding_path"]),
    ("rotnet", &["steps", "batch_size", "width", "lr", "seed"]),
    ("query", &["budgets", "strategy", "augmentations", "temperature", "pool_subset"]),
    ("method", &[]),
    (
        "train",
        &[
            "steps",
            "batch_size",
            "lr",
            "weight_decay",
            "ema_decay",
            "ema_warmup",
            "eval_every",
            "median_of",
            "eval_batch_size",
            "warm_start?",
            "eval_subset?",
        ],
    ),
    ("mixmatch", &["augmentations", "temperature", "alpha", "lambda_u", "rampup_steps", "rampup_fraction?"]),
    ("seed", &[]),
    ("device", &[]),
];

/// The schema-0 id of a config's JSON form (see [`ExperimentConfig::legacy_content_hash`]):
/// the BLAKE3 hash of the compact JSON that serde wrote for the whole config, rebuilt from
/// [`LEGACY_FIELDS`]. A field not listed there must hold its default (else `None`: no older ssal
/// wrote that config); a listed field the JSON lacks is taken from `default` (for a field that
/// is left out at its default in a later release).
fn legacy_hash(config: &serde_json::Value, default: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let (c, d) = (config.as_object()?, default.as_object()?);
    let listed = |table: &str, field: &str| {
        LEGACY_FIELDS
            .iter()
            .any(|(t, subs)| *t == table && (field.is_empty() || subs.iter().any(|s| s.trim_end_matches('?') == field)))
    };
    // Fields schema 0 did not have must be at their defaults.
    for (k, v) in c {
        match (v, d.get(k)) {
            (Value::Object(sub), Some(Value::Object(dsub))) if listed(k, "") => {
                for (f, fv) in sub.iter().filter(|(f, _)| !listed(k, f)) {
                    if config_delta(fv, dsub.get(f).unwrap_or(&Value::Null)).is_some() {
                        return None;
                    }
                }
            }
            _ if listed(k, "") => {}
            (v, dv) => {
                if config_delta(v, dv.unwrap_or(&Value::Null)).is_some() {
                    return None;
                }
            }
        }
    }
    let json = |v: &Value| serde_json::to_string(v).expect("a value serialises");
    let mut out = String::from("{");
    for (i, (table, subs)) in LEGACY_FIELDS.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"{table}\":"));
        let value = c.get(*table).or_else(|| d.get(*table))?;
        if subs.is_empty() {
            out.push_str(&json(value));
            continue;
        }
        let (tv, dv) = (value.as_object()?, d.get(*table).and_then(Value::as_object));
        out.push('{');
        let mut first = true;
        for sub in *subs {
            let (name, optional) = match sub.strip_suffix('?') {
                Some(name) => (name, true),
                None => (*sub, false),
            };
            let default_value = dv.and_then(|dv| dv.get(name));
            let field = match tv.get(name) {
                // Left out while unset (or, should it become written, while at its default).
                Some(v) if optional && (v.is_null() || Some(v) == default_value) => continue,
                Some(v) => v,
                None if optional => continue,
                None => default_value.unwrap_or(&Value::Null),
            };
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&format!("\"{name}\":{}", json(field)));
        }
        out.push('}');
    }
    out.push('}');
    Some(blake3::hash(out.as_bytes()).to_hex()[..16].to_string())
}

/// Boolean fields left out of a config's JSON when false (so that adding them kept every earlier
/// job id and result): absent means false, in configs of any ssal version.
const FALSE_WHEN_ABSENT: [&str; 2] = ["train.warm_start", "train.ema_average_batch_norm"];

/// Flattens a config's JSON form into dotted field paths → value text (see
/// [`ExperimentConfig::fields`]); also reads configs stored by older ssal versions. The booleans
/// of [`FALSE_WHEN_ABSENT`] are always present, so that reports show and filter them as `false`.
pub fn field_map(config: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut std::collections::BTreeMap<String, String>) {
        let key = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
        match v {
            serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| walk(&key(k), v, out)),
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk("", config, &mut out);
    for field in FALSE_WHEN_ABSENT {
        out.entry(field.to_string()).or_insert_with(|| "false".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_left_out_when_false_are_fields_all_the_same() {
        let mut c = ExperimentConfig::default();
        let json = serde_json::to_value(&c).unwrap();
        for field in FALSE_WHEN_ABSENT {
            let (table, key) = field.split_once('.').unwrap();
            assert!(json[table].get(key).is_none(), "{field} is left out when false");
            assert_eq!(c.fields()[field], "false", "{field}");
        }
        c.train.warm_start = true;
        c.train.ema_average_batch_norm = true;
        let fields = c.fields();
        assert_eq!(
            (fields["train.warm_start"].as_str(), fields["train.ema_average_batch_norm"].as_str()),
            ("true", "true")
        );
        // A config of an older ssal, before these fields existed, reads as false.
        assert_eq!(field_map(&serde_json::json!({"train": {"steps": 5}}))["train.warm_start"], "false");
    }

    #[test]
    fn config_names_are_spelled_as_in_config_files() {
        assert_eq!(config_name(&QueryStrategy::ConsistencyEmbedding), "consistency_embedding");
        assert_eq!(config_name(&Method::Mixmatch), "mixmatch");
        let parsed =
            ExperimentConfig::from_toml_str("[query]\nstrategy = \"consistency_embedding\"", Path::new("x.toml"));
        assert_eq!(config_name(&parsed.unwrap().query.strategy), "consistency_embedding");
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = ExperimentConfig::from_toml_str("", Path::new("x.toml")).unwrap();
        assert_eq!(c, ExperimentConfig::default());
        assert_eq!(c.train.lr, 0.002);
        assert_eq!(c.train.weight_decay, 0.00004);
        assert_eq!(c.mixmatch.rampup_steps, 16384);
        assert_eq!(c.dataset_dir().unwrap(), PathBuf::from(FASHION_MNIST_DIR));
    }

    #[test]
    fn misspelt_key_is_named_with_its_line() {
        let err = ExperimentConfig::from_toml_str("seed = 1\n[train]\nstep = 5\n", Path::new("cfg.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cfg.toml"), "{err}");
        assert!(err.contains("step"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a = ExperimentConfig::default();
        let mut b = a.clone();
        assert_eq!(a.content_hash(), b.content_hash());
        b.seed = 1;
        assert_ne!(a.content_hash(), b.content_hash());
        // Round trip through the canonical text keeps the hash.
        let c = ExperimentConfig::from_toml_str(&b.canonical_toml(), Path::new("c")).unwrap();
        assert_eq!(c.content_hash(), b.content_hash());
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let err = ExperimentConfig::from_toml_str("[dataset]\ntest_fraction = 1.5\n", Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("test_fraction") && err.contains("a.toml"), "{err}");
        assert!(ExperimentConfig::from_toml_str("[dataset]\nname = \"cifar10\"\n", Path::new("b"))
            .unwrap()
            .dataset_dir()
            .is_err());
        let e = ExperimentConfig::from_toml_str("[init]\nstrategy = \"diversity\"\n", Path::new("d.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("init.embedding") && e.contains("d.toml"), "{e}");
        let e = ExperimentConfig::from_toml_str("[init]\nembedding = \"npy\"\n", Path::new("e.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("embedding_path"), "{e}");
    }

    #[test]
    fn inert_fields_follow_the_deciding_value() {
        let of = |pairs: &'static [(&'static str, &'static str)]| {
            move |f: &str| pairs.iter().find(|(k, _)| *k == f).map(|(_, v)| v.to_string())
        };
        assert!(is_inert("mixmatch.lambda_u", of(&[("method", "supervised")])));
        assert!(!is_inert("mixmatch.lambda_u", of(&[("method", "mixmatch")])));
        assert!(!is_inert("mixmatch.lambda_u", of(&[])), "unknown or mixed method: shown as it is");
        assert!(is_inert("init.temperature", of(&[("init.strategy", "random")])));
        assert!(!is_inert("init.temperature", of(&[("init.strategy", "diversity")])));
        assert!(!is_inert("train.steps", of(&[("method", "supervised"), ("init.strategy", "random")])));
    }

    /// A config that sets a table field, a list, optional fields and skip-when-unset fields.
    const CUSTOM: &str = "seed = 3\nmethod = \"supervised\"\n[dataset]\ntrain_subset = 1000\nsplit_seed = 7\n\
                          [train]\nsteps = 50\nwarm_start = true\n[query]\nbudgets = [10, 20]\nstrategy = \"entropy\"\n";

    fn parse(text: &str) -> ExperimentConfig {
        ExperimentConfig::from_toml_str(text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn an_empty_file_is_refused_and_a_comment_alone_runs_the_defaults() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("config.toml");
        for empty in ["", " \n\t\n"] {
            std::fs::write(&path, empty).unwrap();
            let e = ExperimentConfig::load(&path).unwrap_err().to_string();
            assert!(e.contains("config.toml") && e.contains("the file is empty"), "{e}");
        }
        std::fs::write(&path, "# defaults\n").unwrap();
        assert_eq!(ExperimentConfig::load(&path).unwrap(), ExperimentConfig::default());
    }

    #[test]
    fn every_default_spelled_out_and_none_give_one_id() {
        // The canonical TOML spells out every field (the skip-when-unset ones added by hand).
        let spelled =
            ExperimentConfig::default().canonical_toml().replace("[train]\n", "[train]\nwarm_start = false\n");
        assert!(spelled.contains("lambda_u = 75.0") && spelled.contains("warm_start = false"), "{spelled}");
        assert_eq!(parse(&spelled).content_hash(), parse("").content_hash());
        // The same for a config with values of its own: written in full or only what differs.
        let custom = parse(CUSTOM);
        let full = custom.canonical_toml();
        assert!(full.contains("lambda_u = 75.0") && full.contains("rampup_steps = 16384"), "{full}");
        assert_eq!(parse(&full).content_hash(), custom.content_hash());
        // A default written next to the values of its own changes nothing either.
        let more = CUSTOM.replace("[train]\n", "[train]\nlr = 0.002\nema_warmup = true\n");
        assert_eq!(parse(&more).content_hash(), custom.content_hash());
    }

    #[test]
    fn the_id_holds_only_what_differs_from_the_defaults_table_by_table() {
        let mut c = ExperimentConfig::default();
        assert_eq!(config_delta(&serde_json::to_value(&c).unwrap(), default_json()), None);
        c.mixmatch.lambda_u = 10.0;
        c.dataset.train_subset = Some(100);
        let delta = config_delta(&serde_json::to_value(&c).unwrap(), default_json()).unwrap();
        assert_eq!(delta, serde_json::json!({"dataset": {"train_subset": 100}, "mixmatch": {"lambda_u": 10.0}}));
        // Any value changed changes the id; changed back, the id is back.
        let base = ExperimentConfig::default().content_hash();
        let changed = c.content_hash();
        assert_ne!(changed, base);
        for edit in [
            |c: &mut ExperimentConfig| c.seed = 1,
            |c: &mut ExperimentConfig| c.query.budgets = vec![10],
            |c: &mut ExperimentConfig| c.train.warm_start = true,
            |c: &mut ExperimentConfig| c.dataset.split_seed = Some(0),
            |c: &mut ExperimentConfig| c.method = Method::Supervised,
        ] {
            let mut d = c.clone();
            edit(&mut d);
            assert_ne!(d.content_hash(), changed, "{d:?}");
        }
        c.mixmatch.lambda_u = 75.0;
        c.dataset.train_subset = None;
        assert_eq!(c.content_hash(), base);
        // Setting an optional field to what its absence stands for is a difference (the split
        // seed defaults to the run's seed, 0 here): two ids for one experiment, never one id
        // for two.
        c.dataset.split_seed = Some(0);
        assert_ne!(c.content_hash(), base);
    }

    #[test]
    fn the_schema_version_enters_the_id() {
        let c = parse(CUSTOM);
        let delta = config_delta(&serde_json::to_value(&c).unwrap(), default_json());
        assert_eq!(identity_hash(&delta, CONFIG_SCHEMA_VERSION), c.content_hash());
        assert_ne!(identity_hash(&delta, CONFIG_SCHEMA_VERSION + 1), c.content_hash());
        assert_ne!(identity_hash(&None, CONFIG_SCHEMA_VERSION + 1), ExperimentConfig::default().content_hash());
    }

    #[test]
    fn ids_are_pinned() {
        // Computed when the rule was introduced (schema 1). If this fails, the id rule changed:
        // every sweep's jobs would get new ids. Change the rule only with a migration.
        assert_eq!(CONFIG_SCHEMA_VERSION, 1);
        assert_eq!(ExperimentConfig::default().content_hash(), "fd445f347ef92e0e");
        assert_eq!(parse(CUSTOM).content_hash(), "b491fb8b38a172e7");
        // What is hashed, spelled out.
        let delta = config_delta(&serde_json::to_value(parse(CUSTOM)).unwrap(), default_json());
        assert_eq!(
            identity_text(&delta, 1),
            r#"{"config":{"dataset":{"split_seed":7,"train_subset":1000},"method":"supervised","query":{"budgets":[10,20],"strategy":"entropy"},"seed":3,"train":{"steps":50,"warm_start":true}},"schema":1}"#
        );
        assert_eq!(identity_text(&None, 1), r#"{"config":{},"schema":1}"#);
    }

    #[test]
    fn legacy_ids_are_the_whole_config_hashes_of_older_ssal() {
        // Computed by ssal 766dcab (ids hashed the whole config) for the same two configs.
        assert_eq!(ExperimentConfig::default().legacy_content_hash().as_deref(), Some("fcc0a63bd81f9c2b"));
        assert_eq!(parse(CUSTOM).legacy_content_hash().as_deref(), Some("4cc1bfe8d4e6521d"));
        // While the config has only schema-0 fields, that is serde's JSON of the whole config.
        for c in [ExperimentConfig::default(), parse(CUSTOM)] {
            let whole = blake3::hash(&serde_json::to_vec(&c).unwrap()).to_hex()[..16].to_string();
            assert_eq!(c.legacy_content_hash(), Some(whole));
        }
        // A field added later: at its default it leaves the legacy id alone; set, no older ssal
        // wrote the config, so there is no legacy id.
        let custom = serde_json::to_value(parse(CUSTOM)).unwrap();
        let with = |field: &str, value: serde_json::Value, default: serde_json::Value| {
            let (mut c, mut d) = (custom.clone(), default_json().clone());
            c["train"][field] = value;
            d["train"][field] = default;
            legacy_hash(&c, &d)
        };
        assert_eq!(with("new_knob", 3.into(), 3.into()).as_deref(), Some("4cc1bfe8d4e6521d"));
        assert_eq!(with("new_knob", 4.into(), 3.into()), None);
        // A schema-0 field written at its default by a later release (no longer skipped).
        assert_eq!(
            with("eval_subset", serde_json::Value::Null, serde_json::Value::Null).as_deref(),
            Some("4cc1bfe8d4e6521d")
        );
    }

    #[test]
    fn split_seed_defaults_to_the_run_seed_and_left_out_keeps_every_job_id() {
        // The default config's hash from before dataset.split_seed existed.
        assert_eq!(ExperimentConfig::default().legacy_content_hash().as_deref(), Some("fcc0a63bd81f9c2b"));
        let d = DatasetConfig::default();
        assert_eq!((d.split_seed, d.split_seed_for(7)), (None, 7));
        let c = ExperimentConfig::from_toml_str("seed = 7\n[dataset]\nsplit_seed = 0\n", Path::new("s.toml")).unwrap();
        assert_eq!(c.dataset.split_seed_for(c.seed), 0);
        assert_ne!(c.content_hash(), ExperimentConfig { seed: 7, ..Default::default() }.content_hash());
        assert_eq!(c.fields()["dataset.split_seed"], "0");
    }

    #[test]
    fn rampup_fraction_arithmetic_and_warning() {
        let mut m = MixMatchConfig::default();
        // The default 16,384-step ramp over a 300-step run: λ_u reaches 75 · 300 / 16384 = 1.37.
        let w = m.rampup_warning(300).expect("warns");
        assert!(
            w.contains("16384 steps") && w.contains("after 300") && w.contains("1.37 of 75") && w.contains("(2 %)"),
            "{w}"
        );
        assert_eq!(m.rampup_steps_for(300), 16384);
        // Half the final weight exactly at the end is enough.
        assert!(m.rampup_warning(8192).is_none());
        m.rampup_fraction = Some(0.016);
        assert_eq!(m.rampup_steps_for(5000), 80);
        assert_eq!(m.rampup_steps_for(300), 5);
        assert!(m.rampup_warning(300).is_none());
        // Unset, the fraction is not serialised: every legacy job id stays what it was.
        let default_text = serde_json::to_string(&MixMatchConfig::default()).unwrap();
        assert!(!default_text.contains("rampup_fraction"), "{default_text}");
        let bad = ExperimentConfig {
            mixmatch: MixMatchConfig { rampup_fraction: Some(0.0), ..Default::default() },
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("rampup_fraction"));
    }
}
