//! Choosing which images to label: diversity-based sampling with temperature (the paper's
//! Eq. 1–2), used for initial sets and, on model embeddings, by the query strategies.
#[cfg(feature = "torch")]
mod device;
mod diversity;
mod npy;
#[cfg(feature = "torch")]
mod pool;
mod strategies;

#[cfg(feature = "torch")]
pub use device::diversity_sample_on;
pub use diversity::{
    diversity_sample, diversity_sample_stats, DiversityOptions, DiversityStats, Draw, Embeddings, Pruning, SelectError,
};
pub use npy::read_embeddings_npy;
#[cfg(feature = "torch")]
pub use pool::score_pool;
pub use strategies::{consistency_embedding, entropy, gradient_embedding, query, top_k, PoolView};
