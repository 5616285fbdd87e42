//! ssal: semi-supervised active learning with diversity-based sampling — experiments, sweeps and
//! statistics. The binary (`src/main.rs`) is a thin wrapper over [`cli`].
//!
//! The modules marked `torch` need libtorch (the default `torch` feature); everything else — the
//! config, sweeps, schedulers, the result contract, the store, statistics, reports, plots and
//! CPU diversity sampling — builds and is tested without it (`--no-default-features`).
pub mod analysis;
pub mod atomic_file;
pub mod cache;
pub mod cli;
pub mod config;
#[cfg(feature = "torch")]
pub mod data;
#[cfg(feature = "torch")]
pub mod embed;
#[cfg(feature = "torch")]
pub mod experiment;
pub mod interrupt;
pub mod metrics;
#[cfg(feature = "torch")]
pub mod models;
pub mod progress;
#[cfg(feature = "torch")]
pub mod queries;
pub mod report;
pub mod result;
pub mod scheduler;
pub mod seeds;
pub mod select;
pub mod stats;
pub mod store;
pub mod sweep;
#[cfg(feature = "torch")]
pub mod train;
