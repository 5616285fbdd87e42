//! Self-supervised embeddings of the training pool for initial-set selection: a RotNet trained on
//! all training images (cached by content hash), or a matrix imported from `.npy`, whose
//! sidecar proves which training images its rows are.
use crate::config::{DatasetName, EmbeddingSource, ExperimentConfig, RotNetConfig};
use crate::data::{DeviceData, EpochSampler};
use crate::models::RotNet;
use crate::progress::Progress;
use crate::select::{read_embeddings_npy, SelectError};
use crate::train::{load_state, named_variables, restore_variables, save_state, Adam};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use tch::{nn, Kind, Tensor};

/// A row-major N × d embedding matrix, one row per training image.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingMatrix {
    pub values: Vec<f32>,
    pub dim: usize,
}

/// Errors obtaining embeddings.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error("{path}: {rows} rows but the training pool has {pool} images")]
    Rows { path: PathBuf, rows: usize, pool: usize },
    #[error("embedding cache {path}: {message}")]
    Cache { path: PathBuf, message: String },
    #[error(
        "{npy}: its rows belong to another image list or split: {sidecar} records {} rows hashing to {}, \
         this config's training split has {} rows hashing to {}; compute the embedding in the order \
         `ssal data rows --config CONFIG` prints",
        .recorded.rows, short(&.recorded.blake3), .expected.rows, short(&.expected.blake3)
    )]
    RowOrder { npy: PathBuf, sidecar: PathBuf, recorded: RowsSidecar, expected: RowsSidecar },
    #[error(
        "{npy}: no {sidecar} saying which images its rows are (an image folder's training rows depend \
         on its split): compute the embedding in the order `ssal data rows --config CONFIG` prints, then \
         write the sidecar with `ssal data rows --config CONFIG --write-sidecar {npy}`"
    )]
    NoSidecar { npy: PathBuf, sidecar: PathBuf },
    #[error("{path}: {message}")]
    Sidecar { path: PathBuf, message: String },
    /// A stop was asked for while RotNet trained; its state is saved next to the cache entry
    /// (when it has one), and the next run with the same RotNet config goes on from there.
    #[error("RotNet training stopped at step {step} by a signal")]
    Interrupted { step: usize },
}

/// The first characters of a hash, enough to tell two apart in a message.
fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// The sidecar `FILE.npy.rows.json` of an imported embedding: which training images its rows
/// are, in order, as a hash, so that an embedding computed on another image list or split is
/// refused instead of silently pairing features with the wrong images.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowsSidecar {
    /// Number of rows.
    pub rows: usize,
    /// BLAKE3 (hex) of `ssal-rows-v1`, the dataset format and each row's name (as `ssal data
    /// rows` prints them), each followed by a newline.
    pub blake3: String,
}

impl RowsSidecar {
    /// The sidecar describing the training rows `rows` (`Dataset::train_rows`) of a `dataset`.
    pub fn of(dataset: DatasetName, rows: &[String]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(format!("ssal-rows-v1\n{}\n", crate::config::config_name(&dataset)).as_bytes());
        for row in rows {
            h.update(row.as_bytes());
            h.update(b"\n");
        }
        RowsSidecar { rows: rows.len(), blake3: h.finalize().to_hex().to_string() }
    }

    /// Where the sidecar of embedding `npy` lives: `npy` with `.rows.json` appended.
    pub fn path_for(npy: &Path) -> PathBuf {
        let mut name = npy.as_os_str().to_owned();
        name.push(".rows.json");
        PathBuf::from(name)
    }

    /// Writes the sidecar of `npy`, an embedding of a `dataset`'s training `rows` in order, after
    /// checking its row count; returns the sidecar's path. Fails as a run would on a bad `.npy`.
    pub fn write_for(npy: &Path, dataset: DatasetName, rows: &[String]) -> Result<PathBuf, EmbedError> {
        let (values, dim) = read_embeddings_npy(npy)?;
        check_rows(npy, values.len() / dim, rows.len())?;
        let path = Self::path_for(npy);
        let text = serde_json::to_string(&Self::of(dataset, rows)).expect("serialises") + "\n";
        crate::atomic_file::write(&path, text.as_bytes())
            .map_err(|e| EmbedError::Sidecar { path: path.clone(), message: format!("cannot write: {e}") })?;
        Ok(path)
    }

    /// Refuses `npy` unless its sidecar matches a `dataset`'s training `rows`. Image folders need
    /// a sidecar (their row order depends on the split); for the built-in datasets, whose order
    /// is fixed, a missing one is accepted.
    fn check(npy: &Path, dataset: DatasetName, rows: &[String]) -> Result<(), EmbedError> {
        let sidecar = Self::path_for(npy);
        let text = match std::fs::read_to_string(&sidecar) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match dataset {
                    DatasetName::ImageFolder => Err(EmbedError::NoSidecar { npy: npy.to_path_buf(), sidecar }),
                    DatasetName::FashionMnist | DatasetName::Cifar10 => Ok(()),
                };
            }
            Err(e) => return Err(EmbedError::Sidecar { path: sidecar, message: e.to_string() }),
        };
        let recorded: Self = serde_json::from_str(&text)
            .map_err(|e| EmbedError::Sidecar { path: sidecar.clone(), message: format!("not a rows sidecar ({e})") })?;
        let expected = Self::of(dataset, rows);
        if recorded != expected {
            return Err(EmbedError::RowOrder { npy: npy.to_path_buf(), sidecar, recorded, expected });
        }
        Ok(())
    }
}

/// Where an initial-set embedding came from (for the run's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingOrigin {
    /// `init.embedding = "none"`.
    None,
    /// An imported `.npy`.
    Imported,
    /// A RotNet embedding found in the cache (possibly after waiting for another process that
    /// was training it).
    Cached,
    /// A RotNet trained by this process and written to the cache.
    Trained,
}

/// The embedding a config asks for, or `None` for `init.embedding = "none"`. A RotNet embedding
/// is trained at most once per cache: the cache entry is locked (an OS file lock next to it)
/// while it is looked up and trained, so a second process with the same RotNet config waits for
/// the first and then reads its result.
pub fn embeddings_for(
    config: &ExperimentConfig,
    data: &DeviceData,
    progress: &dyn Progress,
) -> Result<(Option<EmbeddingMatrix>, EmbeddingOrigin), EmbedError> {
    let pool = data.dataset.train.len();
    match config.init.embedding {
        EmbeddingSource::None => Ok((None, EmbeddingOrigin::None)),
        EmbeddingSource::Npy => {
            let path = config.init.embedding_path.as_ref().expect("validated");
            RowsSidecar::check(path, data.dataset.name, &data.dataset.train_rows)?;
            let (values, dim) = read_embeddings_npy(path)?;
            check_rows(path, values.len() / dim, pool)?;
            Ok((Some(EmbeddingMatrix { values, dim }), EmbeddingOrigin::Imported))
        }
        EmbeddingSource::Rotnet => {
            let path = crate::cache::rotnet_entry(config);
            let _lock = lock_cache_entry(&path)?;
            if path.is_file() {
                let (values, dim) = read_embeddings_npy(&path)?;
                check_rows(&path, values.len() / dim, pool)?;
                return Ok((Some(EmbeddingMatrix { values, dim }), EmbeddingOrigin::Cached));
            }
            let state = path.with_extension("state.ot");
            let eval_batch = config.train.eval_batch_size;
            let m = train_rotnet(&config.rotnet, config.seed, eval_batch, data, progress, Some(&state))?;
            write_npy_atomic(&path, &m)?;
            let _ = std::fs::remove_file(&state);
            Ok((Some(m), EmbeddingOrigin::Trained))
        }
    }
}

/// Takes the exclusive lock `<entry>.lock` of a cache entry, waiting while another process holds
/// it (the lock goes with the process, however it ends).
fn lock_cache_entry(entry: &Path) -> Result<std::fs::File, EmbedError> {
    let lock = entry.with_extension("npy.lock");
    let err = |e: std::io::Error| EmbedError::Cache { path: lock.clone(), message: e.to_string() };
    std::fs::create_dir_all(lock.parent().expect("has parent")).map_err(err)?;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock).map_err(err)?;
    file.lock().map_err(err)?;
    Ok(file)
}

fn check_rows(path: &Path, rows: usize, pool: usize) -> Result<(), EmbedError> {
    if rows != pool {
        return Err(EmbedError::Rows { path: path.to_path_buf(), rows, pool });
    }
    Ok(())
}

fn write_npy_atomic(path: &Path, m: &EmbeddingMatrix) -> Result<(), EmbedError> {
    let rows = (m.values.len() / m.dim) as i64;
    crate::atomic_file::replace(path, |tmp| {
        Tensor::from_slice(&m.values).view([rows, m.dim as i64]).write_npy(tmp).map_err(std::io::Error::other)
    })
    .map_err(|e| EmbedError::Cache { path: path.to_path_buf(), message: e.to_string() })
}

/// The four rotations of a batch (0°, 90°, 180°, 270°) and their labels.
pub fn rotations(x: &Tensor) -> (Tensor, Tensor) {
    let b = x.size()[0];
    let xs = Tensor::cat(&[x.shallow_clone(), x.rot90(1, [2, 3]), x.rot90(2, [2, 3]), x.rot90(3, [2, 3])], 0);
    let labels = Tensor::arange(4, (Kind::Int64, x.device())).repeat_interleave_self_int(b, 0, None);
    (xs, labels)
}

/// Where a stopped RotNet training is, saved in its state file (with the network's variables
/// and Adam's moments as tensors).
#[derive(serde::Serialize, serde::Deserialize)]
struct RotnetProgress {
    /// Steps finished (as many as Adam has taken).
    step: usize,
    rng: ChaCha8Rng,
    sampler: EpochSampler,
}

/// Trains a RotNet on every training image (labels unused) and embeds the whole pool in batches
/// of `eval_batch_size`. Seeds its own RNGs from `rotnet.seed` (default: the run's seed). When a
/// stop is asked for (`interrupt`) it saves its state to `state` (if given) and returns
/// `Interrupted`; given a saved `state`, it goes on from there and ends with the embedding an
/// uninterrupted training gives.
pub fn train_rotnet(
    rc: &RotNetConfig,
    run_seed: u64,
    eval_batch_size: usize,
    data: &DeviceData,
    progress: &dyn Progress,
    state: Option<&Path>,
) -> Result<EmbeddingMatrix, EmbedError> {
    let seed = rc.seed.unwrap_or(run_seed);
    tch::manual_seed(crate::seeds::rotnet_torch(seed));
    let vs = nn::VarStore::new(data.device);
    let [c, _, _] = data.dataset.image_shape();
    let net = RotNet::new(&vs.root(), c, rc.width);
    crate::models::use_channels_last(&vs);
    let mut opt = Adam::new(vs.trainable_variables(), rc.lr);
    let pool: Vec<usize> = (0..data.dataset.train.len()).collect();
    let mut at =
        RotnetProgress { step: 0, rng: crate::seeds::Stream::Rotnet.rng(seed), sampler: EpochSampler::new(&pool) };
    if let Some(path) = state.filter(|p| p.exists()) {
        let bad = |message: String| EmbedError::Cache {
            path: path.to_path_buf(),
            message: format!("{message}; delete it to train RotNet from the start"),
        };
        let (saved, tensors): (RotnetProgress, _) = load_state(path).map_err(bad)?;
        restore_variables(&tensors, "net", &vs).map_err(bad)?;
        if !opt.restore(&tensors, saved.step as i64) {
            return Err(bad("its optimizer state does not fit this RotNet".into()));
        }
        at = saved;
        progress.note(&format!("RotNet resumed at step {} of {}", at.step, rc.steps));
    }
    progress.begin("rotnet", rc.steps as u64, at.step as u64);
    while at.step < rc.steps {
        if crate::interrupt::requested() {
            if let Some(path) = state {
                let mut tensors = named_variables("net", &vs);
                tensors.extend(opt.named_state());
                save_state(path, &at, tensors)
                    .map_err(|message| EmbedError::Cache { path: path.to_path_buf(), message })?;
            }
            return Err(EmbedError::Interrupted { step: at.step });
        }
        let idx = at.sampler.next_batch(rc.batch_size, &mut at.rng);
        let (xs, ys) = rotations(&data.augmented_batch(&idx, &mut at.rng));
        let logits = net.rotation_logits(&xs, true);
        let loss = logits.cross_entropy_for_logits(&ys);
        opt.backward_step(&loss);
        at.step += 1;
        progress.step();
        if at.step % 100 == 0 {
            let acc = logits.argmax(1, false).eq_tensor(&ys).to_kind(Kind::Float).mean(Kind::Float);
            progress.status(&format!(
                "loss {:.3} · rotation acc {:.1}%",
                loss.double_value(&[]),
                100.0 * acc.double_value(&[])
            ));
        }
    }
    progress.end();
    let dim = net.embedding_dim() as usize;
    let mut values = Vec::with_capacity(pool.len() * dim);
    tch::no_grad(|| {
        for chunk in pool.chunks(eval_batch_size) {
            let e = net.embed(&data.train_batch(chunk)).to_device(tch::Device::Cpu).contiguous();
            values.extend(Vec::<f32>::try_from(e.view([-1])).expect("f32"));
        }
    });
    Ok(EmbeddingMatrix { values, dim })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_are_exact_quarter_turns() {
        // A 2×2 image [[1, 2], [3, 4]]: 90° counter-clockwise is [[2, 4], [1, 3]].
        let x = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 1, 2, 2]);
        let (xs, ys) = rotations(&x);
        let v = Vec::<f32>::try_from(xs.view([-1])).unwrap();
        assert_eq!(v, vec![1., 2., 3., 4., 2., 4., 1., 3., 4., 3., 2., 1., 3., 1., 4., 2.]);
        assert_eq!(Vec::<i64>::try_from(ys).unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn rows_sidecar_hashes_the_documented_text() {
        let rows = ["cup/b.png".to_string(), "airplane/a.png".to_string()];
        let s = RowsSidecar::of(DatasetName::ImageFolder, &rows);
        let want = blake3::hash(b"ssal-rows-v1\nimage_folder\ncup/b.png\nairplane/a.png\n").to_hex().to_string();
        assert_eq!(s, RowsSidecar { rows: 2, blake3: want });
        // Another order, another dataset format: another sidecar.
        assert_ne!(s, RowsSidecar::of(DatasetName::ImageFolder, &[rows[1].clone(), rows[0].clone()]));
        assert_ne!(s, RowsSidecar::of(DatasetName::Cifar10, &rows));
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("{{\"rows\":2,\"blake3\":\"{}\"}}", s.blake3));
        assert_eq!(RowsSidecar::path_for(Path::new("d/x.npy")), Path::new("d/x.npy.rows.json"));
    }
}
